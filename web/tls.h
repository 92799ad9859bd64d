/* Web TLS terminator: mbedTLS handshakes in the epoll loop, plaintext relayed to the HTTP server.
 */
#ifndef PGW_WEB_TLS_H
#define PGW_WEB_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/settings.h"
#include "platform/loop.h"

struct web_tls;

/* Receives the plaintext end of a socketpair (non-blocking, close-on-exec) once a TLS handshake
 * is done, with the client's TCP address. It takes ownership of plain_fd in every case (closes
 * it on failure, as MHD_add_connection does). 0 or -errno. */
typedef int (*web_tls_hand_off_fn)(void *arg, int plain_fd, const struct sockaddr *peer,
                                   socklen_t len);

/* Accepts TLS clients on listen_fd (non-blocking, listening; it stays the caller's) in loop l
 * using [web] tls_cert, tls_key, tls_ca, verify_client, tls_handshake_timeout and
 * tls_max_connections: TLS 1.2 minimum; verify_client required fails a handshake without a
 * valid client certificate, optional fails one with an invalid certificate. Decrypted bytes go
 * both ways through the socketpair with bounded buffers (a slow side stops reading the other).
 * At tls_max_connections, accepting pauses until a connection ends. NULL on error (logged). */
struct web_tls *web_tls_new(struct loop *l, int listen_fd, const struct pgw_web_settings *s,
                            web_tls_hand_off_fn hand_off, void *arg);

/* Closes every TLS connection, stops watching listen_fd (not closed) and frees t. */
void web_tls_free(struct web_tls *t);

/* Reads the certificate, key and CA files again (SIGHUP) and applies verify_client, the
 * handshake timeout and the connection limit. New handshakes use the new files; open
 * connections keep theirs. On failure (logged) the old configuration stays. 0 or -errno. */
int web_tls_reload(struct web_tls *t, const struct pgw_web_settings *s);

/* True if the connection whose plaintext end was handed off as plain_fd presented a client
 * certificate that verified against tls_ca. */
bool web_tls_client_verified(const struct web_tls *t, int plain_fd);

struct web_tls_stats {
    uint64_t accepted;         /* TCP connections accepted */
    uint64_t handshakes;       /* handshakes completed */
    uint64_t handshake_errors; /* failed handshakes (bad client, version, certificate) */
    uint64_t handshake_timeouts;
    uint64_t active;       /* connections open now */
    uint64_t limit_pauses; /* times accepting paused at tls_max_connections */
};
void web_tls_get_stats(const struct web_tls *t, struct web_tls_stats *out);

#endif
