/* Web authentication: users with PBKDF2-SHA256 hashes, Basic auth, sessions, allowlist, limits. */
#ifndef PGW_WEB_AUTH_H
#define PGW_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/settings.h"
#include "platform/config.h"

/* The dashboard session cookie's name: Set-Cookie: pgw_session=<value>; HttpOnly; Secure
 * (with TLS); SameSite=Strict; Path=/. The CSRF token travels in the X-CSRF-Token header. */
#define WEB_AUTH_COOKIE      "pgw_session"
#define WEB_AUTH_CSRF_HEADER "X-CSRF-Token"

enum {
    WEB_AUTH_USER_MAX = 64,       /* user names: 63 bytes + NUL */
    WEB_AUTH_TOKEN_LEN = 43,      /* base64url of 32 random bytes (cookie value, CSRF token) */
    WEB_AUTH_TOKEN_CAP = 44,      /* WEB_AUTH_TOKEN_LEN + NUL */
    WEB_AUTH_HASH_LINE_MAX = 160, /* "pbkdf2-sha256$iter$salt$hash" + NUL */
    WEB_AUTH_ITER_DEFAULT = 600000,
    WEB_AUTH_ITER_MIN = 1000,
    WEB_AUTH_ITER_MAX = 10000000,
    WEB_AUTH_SALT_LEN = 16,            /* bytes of salt `pgwarden passwd` draws */
    WEB_AUTH_CACHE_MS = 5 * 60 * 1000, /* how long a verified Basic credential is remembered */
    WEB_AUTH_RL_BURST = 5,             /* failed logins per client address before 429 */
    WEB_AUTH_RL_REFILL_MS = 10 * 1000, /* then one more per this many ms */
};

enum web_auth_role { WEB_ROLE_READONLY = 0, WEB_ROLE_ADMIN };

enum web_auth_result {
    WEB_AUTH_OK,
    WEB_AUTH_UNAUTHORIZED, /* 401: no or wrong credentials (send WWW-Authenticate: Basic) */
    WEB_AUTH_FORBIDDEN,    /* 403: outside the allowlist, readonly user + write, CSRF, or no
                              users configured and the peer is not loopback */
    WEB_AUTH_RATE_LIMITED, /* 429: too many failed logins from this address */
};

struct web_auth;

/* Builds the authenticator from [web] users, users_file, allowlist and session_timeout.
 * NULL on error (logged). */
struct web_auth *web_auth_new(const struct pgw_web_settings *s);
void web_auth_free(struct web_auth *a);

/* Applies new settings (SIGHUP): users, allowlist and timeout are replaced; sessions of users
 * that still exist are kept (their role is looked up again on each request); the credential
 * cache is emptied. On error (logged) nothing changes. 0 or -EINVAL/-ENOMEM. */
int web_auth_reload(struct web_auth *a, const struct pgw_web_settings *s);

/* Authenticates one request that needs it (unsafe endpoints, dashboard data). In this order:
 *   - the peer must be in the allowlist (403);
 *   - with no users configured: OK (user "anonymous"), except needs_write from a peer that is
 *     not loopback (403);
 *   - "Authorization: Basic ..." is checked if present (401 if wrong, 429 while the peer is
 *     rate-limited), else the WEB_AUTH_COOKIE session in cookie_header (401 if none/expired);
 *   - a readonly user with needs_write gets 403.
 * On OK, user_out (may be NULL) gets the user's name.
 * IMPORTANT: a cookie (session) is sent by browsers automatically. For a request with
 * needs_write that carries no Authorization header, also call web_auth_csrf_ok() (or use
 * web_auth_check_csrf() which does both). */
enum web_auth_result web_auth_check(struct web_auth *a, const struct sockaddr *peer,
                                    const char *authorization_header, const char *cookie_header,
                                    bool needs_write, char *user_out, size_t user_cap);

/* web_auth_check() that also requires, for needs_write requests authenticated by the session
 * cookie, csrf_header (may be NULL) to be the session's CSRF token (403 otherwise). */
enum web_auth_result web_auth_check_csrf(struct web_auth *a, const struct sockaddr *peer,
                                         const char *authorization_header,
                                         const char *cookie_header, const char *csrf_header,
                                         bool needs_write, char *user_out, size_t user_cap);

/* Dashboard login (POST of a form): checks the password (allowlist, rate limit and logging as
 * for Basic) and creates a session. cookie_value_out gets the value for WEB_AUTH_COOKIE and
 * csrf_out the CSRF token for the page (both WEB_AUTH_TOKEN_LEN characters; caps at least
 * WEB_AUTH_TOKEN_CAP). Sessions end after [web] session_timeout without a request, after 12
 * hours in any case, on logout, or when the oldest one gives way to a new one (256 kept).
 * Returns OK, UNAUTHORIZED (also when no users are configured), FORBIDDEN or RATE_LIMITED. */
enum web_auth_result web_auth_login(struct web_auth *a, const struct sockaddr *peer,
                                    const char *user, const char *password, char *cookie_value_out,
                                    size_t cap, char *csrf_out, size_t csrf_cap);

/* Ends the session named by cookie_header. True if there was one. */
bool web_auth_logout(struct web_auth *a, const char *cookie_header);

/* True if cookie_header names a live session whose CSRF token is csrf_header. */
bool web_auth_csrf_ok(struct web_auth *a, const char *cookie_header, const char *csrf_header);

/* Name and role of the live session in cookie_header (for the dashboard page); false if none.
 * Does not refresh the idle timer. */
bool web_auth_session_user(struct web_auth *a, const char *cookie_header, char *user_out,
                           size_t user_cap, enum web_auth_role *role_out);

/* Number of users configured (0: the loopback-only default applies). */
size_t web_auth_user_count(const struct web_auth *a);

/* ---- pure helpers (also used by settings checks, `pgwarden passwd` and the tests) ---- */

/* PBKDF2-HMAC-SHA256. 0 or a negative mbedTLS/errno code. */
int web_auth_pbkdf2(const void *password, size_t plen, const uint8_t *salt, size_t slen,
                    unsigned iterations, uint8_t *out, size_t olen);

/* Hashes password with a fresh random salt into "pbkdf2-sha256$iter$salt$hash" (standard
 * base64 without padding). 0 or -errno. */
int web_auth_hash_password(const char *password, unsigned iterations, char *out, size_t cap);

/* A parsed hash: PBKDF2-SHA256 parameters and the expected key. */
struct web_auth_hash {
    unsigned iterations;
    uint8_t salt[64];
    size_t salt_len; /* 8..64 */
    uint8_t key[64];
    size_t key_len; /* 16..64 */
};
/* Parses "pbkdf2-sha256$iter$salt$hash" (base64 with or without padding). */
bool web_auth_hash_parse(const char *s, size_t len, struct web_auth_hash *out);
/* The inverse of web_auth_hash_parse. Returns the length like snprintf, or -EINVAL. */
int web_auth_hash_format(const struct web_auth_hash *h, char *out, size_t cap);

/* Parses "Basic <base64(user:password)>" into user and password (NUL-terminated). False on a
 * different scheme, bad base64, no ':', an empty or over-long user, control characters in the
 * user, or a NUL anywhere. */
bool web_auth_parse_basic(const char *header, char *user, size_t user_cap, char *password,
                          size_t password_cap);

/* Cross-field checks of [web] users, users_file and allowlist for settings_finish: each
 * problem is one error with `where`. */
bool web_auth_check_settings(const struct pgw_web_settings *s, const char *where,
                             struct cfg_errors *e);

/* For tests: the clock (ms, monotonic) used for expiry and rate limits. */
void web_auth_set_clock(struct web_auth *a, uint64_t (*now_ms)(void *arg), void *arg);
/* For tests: PBKDF2 computations done so far (the cache avoids them). */
uint64_t web_auth_pbkdf2_count(const struct web_auth *a);

/* `pgwarden passwd [--stdin] [--iterations N] [USER [ROLE]]`: reads a password (no echo on a
 * terminal, asked twice; --stdin: one line from standard input) and prints the hash, or the
 * whole "USER:ROLE:hash" users item. Returns the exit status. */
int web_passwd_main(int argc, char **argv);

#endif
