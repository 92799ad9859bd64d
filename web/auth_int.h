/* Web authentication internals shared by web/auth*.c: base64, user lists, networks. */
#ifndef PGW_WEB_AUTH_INT_H
#define PGW_WEB_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "web/auth.h"

/* Standard base64 (url=false) or base64url (url=true), with or without '=' padding.
 * Encode: returns the length written (NUL-terminated), or -EINVAL if cap is too small.
 * Decode: accepts padding only at the end; returns the decoded length, or -EINVAL on a bad
 * character, a bad length, or an output that does not fit. */
int auth_b64_encode(const uint8_t *in, size_t len, bool url, bool pad, char *out, size_t cap);
int auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

struct auth_user {
    char name[WEB_AUTH_USER_MAX];
    enum web_auth_role role;
    struct web_auth_hash hash;
};

/* An allowed network; IPv4 is stored as IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix + 96). */
struct auth_net {
    uint8_t addr[16];
    unsigned prefix;
};

/* What the settings give: users and networks. */
struct auth_conf {
    struct auth_user *users;
    size_t nusers;
    struct auth_net *nets;
    size_t nnets;
    uint64_t session_timeout_ms;
};

/* Reports one problem (a sentence without the value of any secret). */
typedef void (*auth_err_fn)(void *arg, const char *msg);

/* Parses [web] users, users_file and allowlist; calls err for every problem. True if none. */
bool auth_conf_load(const struct pgw_web_settings *s, struct auth_conf *out, auth_err_fn err,
                    void *arg);
void auth_conf_free(struct auth_conf *c);

/* Parses one "name:role:hash" users item. */
bool auth_user_parse(const char *item, size_t len, struct auth_user *out, const char **why);

/* The peer as a 16-byte IPv6 address (IPv4 mapped). False for NULL or a non-IP family. */
bool auth_peer_key(const struct sockaddr *sa, uint8_t out[16]);
bool auth_net_match(const struct auth_net *n, const uint8_t addr[16]);
/* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, or an AF_UNIX peer. */
bool auth_peer_loopback(const struct sockaddr *sa);
/* Numeric text of the peer address for logs ("?" when unknown). */
void auth_peer_text(const struct sockaddr *sa, char *out, size_t cap);

#endif
