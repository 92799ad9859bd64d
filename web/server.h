/* The HTTP server: libmicrohttpd driven by the process's epoll loop (no MHD threads). */
#ifndef PGW_WEB_SERVER_H
#define PGW_WEB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "platform/loop.h"
#include "web/routes.h"

struct web_server;
struct web_auth;

struct web_server_config {
    int listen_fd;                 /* listening TCP socket MHD accepts on (the server owns it
                                      from then on), or -1 when connections arrive only through
                                      web_server_add_plain_connection (TLS) */
    unsigned connection_limit;     /* open connections; 0: 256 */
    unsigned connection_timeout_s; /* idle or slow client; 0: 10 s */
    size_t memory_limit;           /* per connection (request line + headers must fit); 0:
                                      16 KiB, which caps the headers at about 8 KiB */
    /* Unsafe requests with TLS client verification required: true if the connection whose
     * plaintext fd is given presented a verified client certificate. NULL: not required. */
    bool (*client_verified)(void *arg, int fd);
    void *client_verified_arg;
};

/* Starts MHD in loop l with the handlers' context ctx (kept by pointer) and the authenticator
 * auth (kept by pointer; NULL refuses every unsafe request with 403). NULL on failure (logged).
 */
struct web_server *web_server_new(struct loop *l, const struct web_server_config *cfg,
                                  const struct web_ctx *ctx, struct web_auth *auth);

/* Answers pending commands with 503, closes every connection and frees s. NULL-safe. */
void web_server_free(struct web_server *s);

/* Hands MHD a connected plaintext socket (the TLS terminator's end of a socketpair) with the
 * client's address. Takes ownership of fd in every case. 0 or -errno. */
int web_server_add_plain_connection(struct web_server *s, int fd, const struct sockaddr *peer,
                                    socklen_t len);

/* The same with a void * first argument (web_tls_hand_off_fn). */
int web_server_hand_off(void *server, int fd, const struct sockaddr *peer, socklen_t len);

/* Lets MHD process what is pending (after a command finished elsewhere, a new snapshot...). */
void web_server_kick(struct web_server *s);

#endif
