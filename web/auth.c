/* Web authentication: request checks, credential cache, failed-login limits and sessions. */
#include "web/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "platform/clock.h"
#include "platform/log.h"
#include "web/auth_int.h"

#define LOG_MODULE "auth"

enum {
    MAC_LEN = 32,
    CACHE_SLOTS = 64,
    RL_SLOTS = 1024,
    SESSION_SLOTS = 256,
    SESSION_MAX_AGE_MS = 12 * 60 * 60 * 1000,
    PASSWORD_MAX = 1024,
};

/* A verified Basic credential: HMAC(key, user NUL password), valid until `expires`. */
struct cache_slot {
    uint8_t mac[MAC_LEN];
    char user[WEB_AUTH_USER_MAX];
    uint64_t expires; /* 0: free */
};

/* Failed-login credit of one client address (IPv6: its /64): a token bucket in ms. */
struct rl_slot {
    uint8_t key[16];
    uint64_t credit_ms; /* WEB_AUTH_RL_REFILL_MS per allowed failure */
    uint64_t updated;   /* 0: free */
    bool warned;
};

struct session {
    uint8_t token_mac[MAC_LEN]; /* HMAC(key, cookie value) */
    uint8_t csrf_mac[MAC_LEN];  /* HMAC(key, CSRF token) */
    char user[WEB_AUTH_USER_MAX];
    uint64_t created, last; /* created == 0: free */
};

struct web_auth {
    struct auth_conf conf;
    uint8_t key[MAC_LEN]; /* random per process: cache and session MACs */
    struct cache_slot cache[CACHE_SLOTS];
    struct rl_slot rl[RL_SLOTS];
    struct session sessions[SESSION_SLOTS];
    uint64_t (*now_ms)(void *arg);
    void *now_arg;
    uint64_t pbkdf2_count;
};

static uint64_t default_now(void *arg)
{
    (void)arg;
    return clock_mono_ms() + 1; /* never 0: 0 marks free slots */
}

static uint64_t now(const struct web_auth *a)
{
    uint64_t t = a->now_ms(a->now_arg);
    return t ? t : 1;
}

static void log_err(void *arg, const char *msg)
{
    (void)arg;
    log_error("bad [web] authentication settings", "error=\"%s\"", msg);
}

struct web_auth *web_auth_new(const struct pgw_web_settings *s)
{
    struct web_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        log_error("out of memory");
        return NULL;
    }
    a->now_ms = default_now;
    if (getrandom(a->key, sizeof(a->key), 0) != (ssize_t)sizeof(a->key)) {
        log_error("getrandom failed", "errno=%d", errno);
        free(a);
        return NULL;
    }
    if (!auth_conf_load(s, &a->conf, log_err, NULL)) {
        mbedtls_platform_zeroize(a, sizeof(*a));
        free(a);
        return NULL;
    }
    if (a->conf.nusers == 0)
        log_info("no [web] users: unsafe endpoints only from loopback addresses");
    return a;
}

void web_auth_free(struct web_auth *a)
{
    if (!a)
        return;
    auth_conf_free(&a->conf);
    mbedtls_platform_zeroize(a, sizeof(*a));
    free(a);
}

int web_auth_reload(struct web_auth *a, const struct pgw_web_settings *s)
{
    struct auth_conf c;
    if (!auth_conf_load(s, &c, log_err, NULL))
        return -EINVAL;
    auth_conf_free(&a->conf);
    a->conf = c;
    mbedtls_platform_zeroize(a->cache, sizeof(a->cache));
    log_info("authentication settings reloaded", "users=%zu networks=%zu", c.nusers, c.nnets);
    return 0;
}

void web_auth_set_clock(struct web_auth *a, uint64_t (*now_ms)(void *arg), void *arg)
{
    a->now_ms = now_ms ? now_ms : default_now;
    a->now_arg = arg;
}

uint64_t web_auth_pbkdf2_count(const struct web_auth *a)
{
    return a->pbkdf2_count;
}

size_t web_auth_user_count(const struct web_auth *a)
{
    return a->conf.nusers;
}

static void mac(const struct web_auth *a, const void *d1, size_t l1, const void *d2, size_t l2,
                uint8_t out[MAC_LEN])
{
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    if (mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) != 0 ||
        mbedtls_md_hmac_starts(&ctx, a->key, sizeof(a->key)) != 0 ||
        mbedtls_md_hmac_update(&ctx, d1, l1) != 0 ||
        (l2 > 0 && mbedtls_md_hmac_update(&ctx, (const uint8_t *)"\0", 1) != 0) ||
        (l2 > 0 && mbedtls_md_hmac_update(&ctx, d2, l2) != 0) ||
        mbedtls_md_hmac_finish(&ctx, out) != 0) {
        /* cannot happen with SHA-256 compiled in; a random value matches nothing */
        if (getrandom(out, MAC_LEN, 0) != MAC_LEN)
            memset(out, 0xa5, MAC_LEN);
    }
    mbedtls_md_free(&ctx);
}

static const struct auth_user *find_user(const struct web_auth *a, const char *name)
{
    for (size_t i = 0; i < a->conf.nusers; i++) {
        if (strcmp(a->conf.users[i].name, name) == 0)
            return &a->conf.users[i];
    }
    return NULL;
}

static void copy_user(char *out, size_t cap, const char *name)
{
    if (out && cap > 0)
        snprintf(out, cap, "%s", name);
}

/* A user name from a request, safe to log: printable ASCII except quotes and backslashes. */
static void log_name(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 1 < cap; in++)
        out[o++] = (*in >= 0x20 && *in < 0x7f && *in != '"' && *in != '\\') ? *in : '?';
    out[o] = '\0';
}

/* ---- failed-login limits ---- */

static void rl_key(const uint8_t peer[16], uint8_t key[16])
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    memcpy(key, peer, 16);
    if (memcmp(peer, mapped, 12) != 0)
        memset(key + 8, 0, 8); /* IPv6: one bucket per /64, which one client usually holds */
}

static void rl_refill(struct rl_slot *s, uint64_t t)
{
    const uint64_t full = (uint64_t)WEB_AUTH_RL_BURST * WEB_AUTH_RL_REFILL_MS;
    uint64_t gain = t > s->updated ? t - s->updated : 0;
    s->credit_ms = s->credit_ms + gain >= full ? full : s->credit_ms + gain;
    s->updated = t;
}

/* The slot of a peer, or NULL if it has none (it then has full credit). */
static struct rl_slot *rl_find(struct web_auth *a, const uint8_t key[16])
{
    for (size_t i = 0; i < RL_SLOTS; i++) {
        if (a->rl[i].updated != 0 && memcmp(a->rl[i].key, key, 16) == 0)
            return &a->rl[i];
    }
    return NULL;
}

static bool rl_limited(struct web_auth *a, bool have_peer, const uint8_t peer[16])
{
    uint8_t key[16];
    if (!have_peer)
        return false;
    rl_key(peer, key);
    struct rl_slot *s = rl_find(a, key);
    if (!s)
        return false;
    rl_refill(s, now(a));
    return s->credit_ms < WEB_AUTH_RL_REFILL_MS;
}

static void rl_fail(struct web_auth *a, bool have_peer, const uint8_t peer[16], const char *shown)
{
    const uint64_t full = (uint64_t)WEB_AUTH_RL_BURST * WEB_AUTH_RL_REFILL_MS;
    uint8_t key[16];
    if (!have_peer)
        return;
    rl_key(peer, key);
    uint64_t t = now(a);
    struct rl_slot *s = rl_find(a, key);
    if (!s) { /* a free slot, or one back at full credit, or else the least recently used */
        struct rl_slot *lru = &a->rl[0];
        for (size_t i = 0; i < RL_SLOTS && !s; i++) {
            struct rl_slot *c = &a->rl[i];
            uint64_t gain = t > c->updated ? t - c->updated : 0;
            if (c->updated == 0 || c->credit_ms + gain >= full)
                s = c;
            else if (c->updated < lru->updated)
                lru = c;
        }
        s = s ? s : lru;
        memcpy(s->key, key, 16);
        s->credit_ms = full;
        s->updated = t;
        s->warned = false;
    }
    rl_refill(s, t);
    s->credit_ms = s->credit_ms >= WEB_AUTH_RL_REFILL_MS ? s->credit_ms - WEB_AUTH_RL_REFILL_MS : 0;
    if (s->credit_ms < WEB_AUTH_RL_REFILL_MS && !s->warned) {
        s->warned = true;
        log_warn("too many failed logins: client rate-limited", "peer=%s", shown);
    } else if (s->credit_ms >= WEB_AUTH_RL_REFILL_MS) {
        s->warned = false;
    }
}

/* ---- password verification with a cache ---- */

static bool cache_lookup(struct web_auth *a, const uint8_t m[MAC_LEN], const char *user)
{
    uint64_t t = now(a);
    bool hit = false;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_slot *c = &a->cache[i];
        if (c->expires == 0)
            continue;
        if (c->expires <= t) {
            mbedtls_platform_zeroize(c, sizeof(*c));
            continue;
        }
        if (mbedtls_ct_memcmp(c->mac, m, MAC_LEN) == 0 && strcmp(c->user, user) == 0)
            hit = true;
    }
    return hit;
}

static void cache_store(struct web_auth *a, const uint8_t m[MAC_LEN], const char *user)
{
    struct cache_slot *slot = &a->cache[0];
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        if (a->cache[i].expires < slot->expires)
            slot = &a->cache[i]; /* a free slot (0) or the one expiring first */
    }
    memcpy(slot->mac, m, MAC_LEN);
    snprintf(slot->user, sizeof(slot->user), "%s", user);
    slot->expires = now(a) + WEB_AUTH_CACHE_MS;
}

/* Checks user/password: the cache first, then PBKDF2 (also for an unknown user, against a dummy
 * hash, so that timing does not tell which users exist). */
static const struct auth_user *verify(struct web_auth *a, const char *user, const char *password)
{
    size_t ulen = strlen(user), plen = strlen(password);
    uint8_t m[MAC_LEN];
    mac(a, user, ulen, password, plen > 0 ? plen : 0, m);
    const struct auth_user *u = find_user(a, user);
    if (u && plen > 0 && cache_lookup(a, m, user))
        return u;
    struct web_auth_hash dummy = {.iterations = a->conf.nusers ? a->conf.users[0].hash.iterations
                                                               : WEB_AUTH_ITER_MIN,
                                  .salt_len = 16,
                                  .key_len = 32};
    const struct web_auth_hash *h = u ? &u->hash : &dummy;
    uint8_t got[sizeof(h->key)];
    a->pbkdf2_count++;
    bool ok = web_auth_pbkdf2(password, plen, h->salt, h->salt_len, h->iterations, got,
                              h->key_len) == 0 &&
              mbedtls_ct_memcmp(got, h->key, h->key_len) == 0 && u != NULL && plen > 0;
    mbedtls_platform_zeroize(got, sizeof(got));
    if (ok)
        cache_store(a, m, user);
    mbedtls_platform_zeroize(m, sizeof(m));
    return ok ? u : NULL;
}

/* Rate limit, verification and logging shared by Basic auth and the login form. */
static enum web_auth_result password_login(struct web_auth *a, const struct sockaddr *peer,
                                           bool have_peer, const uint8_t pk[16], const char *user,
                                           const char *password, const struct auth_user **out)
{
    char shown_peer[64], shown_user[WEB_AUTH_USER_MAX];
    auth_peer_text(peer, shown_peer, sizeof(shown_peer));
    log_name(user, shown_user, sizeof(shown_user));
    if (rl_limited(a, have_peer, pk)) {
        log_debug("login refused: rate-limited", "user=\"%s\" peer=%s", shown_user, shown_peer);
        return WEB_AUTH_RATE_LIMITED;
    }
    *out = verify(a, user, password);
    if (!*out) {
        log_warn("authentication failed", "user=\"%s\" peer=%s", shown_user, shown_peer);
        rl_fail(a, have_peer, pk, shown_peer);
        return WEB_AUTH_UNAUTHORIZED;
    }
    return WEB_AUTH_OK;
}

/* ---- sessions ---- */

/* Finds the value of cookie `name` in a Cookie header; false if absent. */
static bool cookie_value(const char *header, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = header;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            *val = p + nlen + 1;
            *vlen = len - nlen - 1;
            while (*vlen > 0 && ((*val)[*vlen - 1] == ' ' || (*val)[*vlen - 1] == '\t'))
                (*vlen)--;
            return true;
        }
        p = end;
    }
    return false;
}

static bool token_shape_ok(const char *t, size_t len)
{
    if (len != WEB_AUTH_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* The live session named by cookie_header, or NULL; expired sessions found on the way end. */
static struct session *session_find(struct web_auth *a, const char *cookie_header)
{
    const char *v;
    size_t vlen;
    if (!cookie_header || !cookie_value(cookie_header, WEB_AUTH_COOKIE, &v, &vlen) ||
        !token_shape_ok(v, vlen))
        return NULL;
    uint8_t m[MAC_LEN];
    mac(a, v, vlen, NULL, 0, m);
    uint64_t t = now(a);
    struct session *found = NULL;
    for (size_t i = 0; i < SESSION_SLOTS; i++) {
        struct session *s = &a->sessions[i];
        if (s->created == 0)
            continue;
        if (t - s->last >= a->conf.session_timeout_ms || t - s->created >= SESSION_MAX_AGE_MS) {
            mbedtls_platform_zeroize(s, sizeof(*s));
            continue;
        }
        if (mbedtls_ct_memcmp(s->token_mac, m, MAC_LEN) == 0)
            found = s;
    }
    return found;
}

static bool new_token(char out[WEB_AUTH_TOKEN_CAP])
{
    uint8_t raw[32];
    bool ok = getrandom(raw, sizeof(raw), 0) == (ssize_t)sizeof(raw) &&
              auth_b64_encode(raw, sizeof(raw), true, false, out, WEB_AUTH_TOKEN_CAP) ==
                  WEB_AUTH_TOKEN_LEN;
    mbedtls_platform_zeroize(raw, sizeof(raw));
    return ok;
}

enum web_auth_result web_auth_login(struct web_auth *a, const struct sockaddr *peer,
                                    const char *user, const char *password, char *cookie_value_out,
                                    size_t cap, char *csrf_out, size_t csrf_cap)
{
    uint8_t pk[16];
    bool have_peer = auth_peer_key(peer, pk);
    if (cap < WEB_AUTH_TOKEN_CAP || csrf_cap < WEB_AUTH_TOKEN_CAP || !user || !password)
        return WEB_AUTH_UNAUTHORIZED;
    cookie_value_out[0] = csrf_out[0] = '\0';
    if (a->conf.nnets > 0) {
        bool in = false;
        for (size_t i = 0; have_peer && i < a->conf.nnets && !in; i++)
            in = auth_net_match(&a->conf.nets[i], pk);
        if (!in)
            return WEB_AUTH_FORBIDDEN;
    }
    if (a->conf.nusers == 0 || strlen(user) >= WEB_AUTH_USER_MAX ||
        strlen(password) >= PASSWORD_MAX)
        return WEB_AUTH_UNAUTHORIZED;
    const struct auth_user *u = NULL;
    enum web_auth_result r = password_login(a, peer, have_peer, pk, user, password, &u);
    if (r != WEB_AUTH_OK)
        return r;
    char tok[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP];
    if (!new_token(tok) || !new_token(csrf)) {
        log_error("getrandom failed", "errno=%d", errno);
        return WEB_AUTH_UNAUTHORIZED;
    }
    uint64_t t = now(a);
    struct session *slot = &a->sessions[0];
    for (size_t i = 0; i < SESSION_SLOTS; i++) { /* free, expired, or least recently used */
        struct session *s = &a->sessions[i];
        if (s->created == 0 || t - s->last >= a->conf.session_timeout_ms) {
            slot = s;
            break;
        }
        if (s->last < slot->last)
            slot = s;
    }
    mac(a, tok, WEB_AUTH_TOKEN_LEN, NULL, 0, slot->token_mac);
    mac(a, csrf, WEB_AUTH_TOKEN_LEN, NULL, 0, slot->csrf_mac);
    snprintf(slot->user, sizeof(slot->user), "%s", u->name);
    slot->created = slot->last = t;
    memcpy(cookie_value_out, tok, WEB_AUTH_TOKEN_CAP);
    memcpy(csrf_out, csrf, WEB_AUTH_TOKEN_CAP);
    mbedtls_platform_zeroize(tok, sizeof(tok));
    mbedtls_platform_zeroize(csrf, sizeof(csrf));
    char shown_peer[64];
    auth_peer_text(peer, shown_peer, sizeof(shown_peer));
    log_info("dashboard login", "user=\"%s\" peer=%s", u->name, shown_peer);
    return WEB_AUTH_OK;
}

bool web_auth_logout(struct web_auth *a, const char *cookie_header)
{
    struct session *s = session_find(a, cookie_header);
    if (!s)
        return false;
    log_info("dashboard logout", "user=\"%s\"", s->user);
    mbedtls_platform_zeroize(s, sizeof(*s));
    return true;
}

static bool csrf_match(const struct web_auth *a, const struct session *s, const char *csrf)
{
    if (!csrf)
        return false;
    size_t len = strlen(csrf);
    while (len > 0 && (csrf[len - 1] == ' ' || csrf[len - 1] == '\t'))
        len--;
    while (len > 0 && (*csrf == ' ' || *csrf == '\t')) {
        csrf++;
        len--;
    }
    if (!token_shape_ok(csrf, len))
        return false;
    uint8_t m[MAC_LEN];
    mac(a, csrf, len, NULL, 0, m);
    return mbedtls_ct_memcmp(m, s->csrf_mac, MAC_LEN) == 0;
}

bool web_auth_csrf_ok(struct web_auth *a, const char *cookie_header, const char *csrf_header)
{
    const struct session *s = session_find(a, cookie_header);
    return s && csrf_match(a, s, csrf_header);
}

bool web_auth_session_user(struct web_auth *a, const char *cookie_header, char *user_out,
                           size_t user_cap, enum web_auth_role *role_out)
{
    const struct session *s = session_find(a, cookie_header);
    const struct auth_user *u = s ? find_user(a, s->user) : NULL;
    if (!u)
        return false;
    copy_user(user_out, user_cap, u->name);
    if (role_out)
        *role_out = u->role;
    return true;
}

/* ---- request checks ---- */

static enum web_auth_result check(struct web_auth *a, const struct sockaddr *peer,
                                  const char *authz, const char *cookie, bool enforce_csrf,
                                  const char *csrf, bool needs_write, char *user_out,
                                  size_t user_cap)
{
    uint8_t pk[16];
    bool have_peer = auth_peer_key(peer, pk);
    if (a->conf.nnets > 0) {
        bool in = false;
        for (size_t i = 0; have_peer && i < a->conf.nnets && !in; i++)
            in = auth_net_match(&a->conf.nets[i], pk);
        if (!in) {
            char shown[64];
            auth_peer_text(peer, shown, sizeof(shown));
            log_debug("request from outside the allowlist", "peer=%s", shown);
            return WEB_AUTH_FORBIDDEN;
        }
    }
    if (a->conf.nusers == 0) {
        if (needs_write && !auth_peer_loopback(peer))
            return WEB_AUTH_FORBIDDEN;
        copy_user(user_out, user_cap, "anonymous");
        return WEB_AUTH_OK;
    }
    const struct auth_user *u = NULL;
    struct session *s = NULL;
    if (authz && *authz) {
        char user[WEB_AUTH_USER_MAX], password[PASSWORD_MAX];
        if (!web_auth_parse_basic(authz, user, sizeof(user), password, sizeof(password)))
            return WEB_AUTH_UNAUTHORIZED;
        enum web_auth_result r = password_login(a, peer, have_peer, pk, user, password, &u);
        mbedtls_platform_zeroize(password, sizeof(password));
        if (r != WEB_AUTH_OK)
            return r;
    } else {
        s = session_find(a, cookie);
        u = s ? find_user(a, s->user) : NULL;
        if (!u)
            return WEB_AUTH_UNAUTHORIZED;
        s->last = now(a);
    }
    if (needs_write && u->role != WEB_ROLE_ADMIN)
        return WEB_AUTH_FORBIDDEN;
    if (needs_write && s && enforce_csrf && !csrf_match(a, s, csrf))
        return WEB_AUTH_FORBIDDEN;
    copy_user(user_out, user_cap, u->name);
    return WEB_AUTH_OK;
}

enum web_auth_result web_auth_check(struct web_auth *a, const struct sockaddr *peer,
                                    const char *authorization_header, const char *cookie_header,
                                    bool needs_write, char *user_out, size_t user_cap)
{
    return check(a, peer, authorization_header, cookie_header, false, NULL, needs_write, user_out,
                 user_cap);
}

enum web_auth_result web_auth_check_csrf(struct web_auth *a, const struct sockaddr *peer,
                                         const char *authorization_header,
                                         const char *cookie_header, const char *csrf_header,
                                         bool needs_write, char *user_out, size_t user_cap)
{
    return check(a, peer, authorization_header, cookie_header, true, csrf_header, needs_write,
                 user_out, user_cap);
}
