/* Web TLS terminator: mbedTLS handshakes in the epoll loop, plaintext relayed to the HTTP server.
 */
#include "web/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "platform/log.h"
#include "web/auth_int.h"

#define LOG_MODULE "tls"

enum { RELAY_BUF = 16 * 1024 };

/* One loaded configuration; connections hold a reference so a reload never frees it under
 * them. */
struct tls_cfg {
    unsigned refs;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_x509_crt ca;
    mbedtls_pk_context key;
    int verify; /* enum pgw_verify_client */
};

struct tls_conn {
    struct tls_conn *prev, *next;
    struct web_tls *t;
    struct tls_cfg *cfg;
    mbedtls_ssl_context ssl;
    int net_fd;    /* TCP socket to the client */
    int plain_fd;  /* our end of the socketpair, -1 before the hand-off */
    int handed_fd; /* the end given to the HTTP server (for web_tls_client_verified) */
    uint32_t net_ev, plain_ev;
    uint64_t timer;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    bool established, client_verified;
    bool net_eof;    /* the client sent close_notify or closed */
    bool plain_eof;  /* the HTTP server closed its end */
    bool plain_shut; /* we shut down writing to the HTTP server */
    bool plain_hup;
    bool plain_registered;   /* the HTTP server closed: read what is left, then stop watching */
    size_t in_off, in_len;   /* client -> server bytes in `in` */
    size_t out_off, out_len; /* server -> client bytes in `out` */
    uint8_t in[RELAY_BUF];
    uint8_t out[RELAY_BUF];
};

struct web_tls {
    struct loop *loop;
    int listen_fd;
    bool accepting;
    uint64_t resume_timer; /* accepting paused after EMFILE/ENFILE */
    web_tls_hand_off_fn hand_off;
    void *arg;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    struct tls_cfg *cfg;
    struct tls_conn *conns;
    size_t nconns;
    size_t max_conns;
    uint64_t handshake_timeout_ms;
    struct web_tls_stats stats;
};

static void tls_errstr(int rc, char *buf, size_t cap)
{
    mbedtls_strerror(rc, buf, cap);
    for (char *p = buf; *p; p++) {
        if (*p == '"')
            *p = '\'';
    }
}

static void cfg_put(struct tls_cfg *c)
{
    if (!c || --c->refs > 0)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_pk_free(&c->key);
    free(c);
}

/* Loads the files named in s into a new configuration (refs = 1). NULL on error (logged). */
static struct tls_cfg *tls_cfg_load(struct web_tls *t, const struct pgw_web_settings *s)
{
    struct tls_cfg *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("out of memory");
        return NULL;
    }
    c->refs = 1;
    c->verify = s->verify_client;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_pk_init(&c->key);
    const char *what = NULL, *file = NULL;
    int rc = 0;
    if (s->tls_cert[0] == '\0' || s->tls_key[0] == '\0') {
        log_error("[web] tls_cert and tls_key are needed for TLS");
        cfg_put(c);
        return NULL;
    }
    if ((rc = mbedtls_x509_crt_parse_file(&c->cert, s->tls_cert)) != 0) {
        what = "cannot load the TLS certificate", file = s->tls_cert;
    } else if ((rc = mbedtls_pk_parse_keyfile(&c->key, s->tls_key, NULL, mbedtls_ctr_drbg_random,
                                              &t->drbg)) != 0) {
        what = "cannot load the TLS private key", file = s->tls_key;
    } else if ((rc = mbedtls_pk_check_pair(&c->cert.pk, &c->key, mbedtls_ctr_drbg_random,
                                           &t->drbg)) != 0) {
        what = "the TLS private key does not match the certificate", file = s->tls_key;
    } else if (s->tls_ca[0] != '\0' && (rc = mbedtls_x509_crt_parse_file(&c->ca, s->tls_ca)) != 0) {
        what = "cannot load the TLS client CA", file = s->tls_ca;
    } else if (s->verify_client != PGW_VERIFY_NONE && s->tls_ca[0] == '\0') {
        what = "verify_client needs tls_ca", file = "", rc = MBEDTLS_ERR_SSL_BAD_CONFIG;
    } else if ((rc = mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_SERVER,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
        what = "TLS configuration failed", file = "";
    } else {
        mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &t->drbg);
        mbedtls_ssl_conf_min_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
        if (s->tls_ca[0] != '\0')
            mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
        mbedtls_ssl_conf_authmode(
            &c->conf, s->verify_client == PGW_VERIFY_REQUIRED   ? MBEDTLS_SSL_VERIFY_REQUIRED
                      : s->verify_client == PGW_VERIFY_OPTIONAL ? MBEDTLS_SSL_VERIFY_OPTIONAL
                                                                : MBEDTLS_SSL_VERIFY_NONE);
        if ((rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key)) != 0)
            what = "TLS configuration failed", file = s->tls_cert;
    }
    if (what) {
        char err[160];
        tls_errstr(rc, err, sizeof(err));
        log_error(what, "file=\"%s\" error=\"%s\"", file, err);
        cfg_put(c);
        return NULL;
    }
    return c;
}

/* ---- connections ---- */

static void conn_close(struct tls_conn *c)
{
    struct web_tls *t = c->t;
    if (c->timer)
        loop_cancel_timer(t->loop, c->timer);
    loop_del_fd(t->loop, c->net_fd);
    close(c->net_fd);
    if (c->plain_fd >= 0) {
        if (c->plain_registered)
            loop_del_fd(t->loop, c->plain_fd);
        close(c->plain_fd);
    }
    mbedtls_ssl_free(&c->ssl);
    cfg_put(c->cfg);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->nconns--;
    t->stats.active = t->nconns;
    free(c);
    if (!t->accepting && t->resume_timer == 0 && t->nconns < t->max_conns &&
        loop_mod_fd(t->loop, t->listen_fd, LOOP_READ) == 0)
        t->accepting = true;
}

static void set_events(struct loop *l, int fd, uint32_t *cur, uint32_t want)
{
    if (fd >= 0 && *cur != want && loop_mod_fd(l, fd, want) == 0)
        *cur = want;
}

static int net_send(void *ctx, const unsigned char *buf, size_t len)
{
    int fd = *(int *)ctx;
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET
                                                 : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int net_recv(void *ctx, unsigned char *buf, size_t len)
{
    int fd = *(int *)ctx;
    ssize_t n = recv(fd, buf, len, 0);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return MBEDTLS_ERR_SSL_WANT_READ;
    return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
}

static void peer_text(const struct tls_conn *c, char *out, size_t cap)
{
    auth_peer_text((const struct sockaddr *)&c->peer, out, cap);
}

static void on_plain(struct loop *l, int fd, uint32_t events, void *arg);
static void on_timeout(struct loop *l, uint64_t id, void *arg);

/* The HTTP server closed its end: stop watching it (a hangup would be reported forever) and
 * give the client tls_handshake_timeout to take the rest of the response and the close_notify,
 * so that a client that stops reading cannot hold a connection slot. */
static void plain_done(struct tls_conn *c)
{
    struct web_tls *t = c->t;
    c->plain_eof = true;
    if (c->plain_registered) {
        loop_del_fd(t->loop, c->plain_fd);
        c->plain_registered = false;
    }
    if (c->timer == 0)
        c->timer = loop_add_timer(t->loop, t->handshake_timeout_ms, 0, on_timeout, c);
}

/* After the handshake: checks an optional client certificate, then hands the plaintext end of
 * a new socketpair to the HTTP server. False if the connection was closed. */
static bool established(struct tls_conn *c)
{
    struct web_tls *t = c->t;
    char peer[64];
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&c->ssl);
    uint32_t vr = mbedtls_ssl_get_verify_result(&c->ssl);
    if (crt && vr != 0 && c->cfg->verify != PGW_VERIFY_NONE) {
        peer_text(c, peer, sizeof(peer));
        log_info("TLS client certificate refused", "peer=%s flags=0x%x", peer, (unsigned)vr);
        t->stats.handshake_errors++;
        conn_close(c);
        return false;
    }
    c->client_verified = crt != NULL && vr == 0 && c->cfg->verify != PGW_VERIFY_NONE;
    c->established = true;
    t->stats.handshakes++;
    if (c->timer) {
        loop_cancel_timer(t->loop, c->timer);
        c->timer = 0;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        log_error("socketpair failed", "errno=%d", errno);
        conn_close(c);
        return false;
    }
    int rc = loop_add_fd(t->loop, sv[0], LOOP_READ, on_plain, c);
    if (rc != 0) {
        log_error("cannot watch the plaintext socket", "errno=%d", -rc);
        close(sv[0]);
        close(sv[1]);
        conn_close(c);
        return false;
    }
    c->plain_fd = sv[0];
    c->plain_ev = LOOP_READ;
    c->plain_registered = true;
    c->handed_fd = sv[1];
    rc = t->hand_off(t->arg, sv[1], (const struct sockaddr *)&c->peer, c->peer_len);
    if (rc != 0) {
        peer_text(c, peer, sizeof(peer));
        log_warn("HTTP server refused a TLS connection", "peer=%s errno=%d", peer, -rc);
        c->handed_fd = -1;
        conn_close(c);
        return false;
    }
    return true;
}

/* Moves bytes both ways until nothing more can move now, then sets the fd interests.
 * May close (free) c. */
static void pump(struct tls_conn *c)
{
    struct web_tls *t = c->t;
    bool net_rd = false, net_wr = false, plain_rd = false;
    int r;
    char peer[64], err[120];
    if (!c->established) {
        r = mbedtls_ssl_handshake(&c->ssl);
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
            set_events(t->loop, c->net_fd, &c->net_ev,
                       r == MBEDTLS_ERR_SSL_WANT_READ ? LOOP_READ : LOOP_WRITE);
            return;
        }
        if (r != 0) {
            peer_text(c, peer, sizeof(peer));
            tls_errstr(r, err, sizeof(err));
            log_debug("TLS handshake failed", "peer=%s error=\"%s\"", peer, err);
            t->stats.handshake_errors++;
            conn_close(c);
            return;
        }
        if (!established(c))
            return;
    }
    for (bool progress = true; progress;) {
        progress = false;
        net_rd = net_wr = plain_rd = false;
        /* client -> server */
        while (!c->net_eof && c->in_len < RELAY_BUF) {
            r = mbedtls_ssl_read(&c->ssl, c->in + c->in_len, RELAY_BUF - c->in_len);
            if (r > 0) {
                c->in_len += (size_t)r;
                progress = true;
            } else if (r == MBEDTLS_ERR_SSL_WANT_READ) {
                net_rd = true;
                break;
            } else if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
                net_wr = true;
                break;
            } else if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
                       r == MBEDTLS_ERR_SSL_CONN_EOF || r == MBEDTLS_ERR_NET_CONN_RESET) {
                c->net_eof = true;
                progress = true;
            } else {
                peer_text(c, peer, sizeof(peer));
                tls_errstr(r, err, sizeof(err));
                log_debug("TLS read failed", "peer=%s error=\"%s\"", peer, err);
                conn_close(c);
                return;
            }
        }
        while (c->in_off < c->in_len) {
            ssize_t n = send(c->plain_fd, c->in + c->in_off, c->in_len - c->in_off, MSG_NOSIGNAL);
            if (n > 0) {
                c->in_off += (size_t)n;
                progress = true;
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else { /* the server end is gone: nothing more to deliver */
                conn_close(c);
                return;
            }
        }
        if (c->in_off == c->in_len)
            c->in_off = c->in_len = 0;
        if (c->net_eof && c->in_len == 0 && !c->plain_shut) {
            shutdown(c->plain_fd, SHUT_WR);
            c->plain_shut = true;
        }
        /* server -> client */
        if (c->out_len == 0 && !c->plain_eof) {
            ssize_t n = recv(c->plain_fd, c->out, RELAY_BUF, 0);
            if (n > 0) {
                c->out_len = (size_t)n;
                progress = true;
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                plain_done(c);
                progress = true;
            } else {
                plain_rd = true;
            }
        }
        while (c->out_off < c->out_len) {
            r = mbedtls_ssl_write(&c->ssl, c->out + c->out_off, c->out_len - c->out_off);
            if (r > 0) {
                c->out_off += (size_t)r;
                progress = true;
            } else if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ) {
                *(r == MBEDTLS_ERR_SSL_WANT_WRITE ? &net_wr : &net_rd) = true;
                break;
            } else {
                conn_close(c); /* the client is gone */
                return;
            }
        }
        if (c->out_off == c->out_len)
            c->out_off = c->out_len = 0;
        if (c->plain_eof && c->out_len == 0) { /* the server is done: say goodbye, then close */
            r = mbedtls_ssl_close_notify(&c->ssl);
            if (r == MBEDTLS_ERR_SSL_WANT_WRITE) {
                set_events(t->loop, c->net_fd, &c->net_ev, LOOP_WRITE);
                return;
            }
            conn_close(c);
            return;
        }
    }
    uint32_t nev = (net_rd ? LOOP_READ : 0) | (net_wr ? LOOP_WRITE : 0);
    uint32_t pev = (c->in_len > c->in_off ? LOOP_WRITE : 0) | (plain_rd ? LOOP_READ : 0);
    set_events(t->loop, c->net_fd, &c->net_ev, nev);
    if (c->plain_hup && c->plain_registered) {
        /* a hangup is reported whatever the interest: stop watching, or it would spin while
         * the client is slow; the bytes left are read as the client drains (net events) */
        loop_del_fd(t->loop, c->plain_fd);
        c->plain_registered = false;
    } else if (c->plain_registered) {
        set_events(t->loop, c->plain_fd, &c->plain_ev, pev);
    }
}

static void on_net(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    struct tls_conn *c = arg;
    if (events & LOOP_ERR) { /* reset or error (we never shut down our sending side first) */
        conn_close(c);
        return;
    }
    pump(c);
}

static void on_plain(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    struct tls_conn *c = arg;
    if (events & LOOP_ERR)
        c->plain_hup = true;
    pump(c);
}

static void on_timeout(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct tls_conn *c = arg;
    char peer[64];
    c->timer = 0;
    peer_text(c, peer, sizeof(peer));
    if (c->established) {
        log_debug("TLS client did not take the end of its response in time", "peer=%s", peer);
    } else {
        log_debug("TLS handshake timed out", "peer=%s", peer);
        c->t->stats.handshake_timeouts++;
    }
    conn_close(c);
}

static void conn_new(struct web_tls *t, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("out of memory");
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->t = t;
    c->net_fd = fd;
    c->plain_fd = c->handed_fd = -1;
    c->peer = *ss;
    c->peer_len = len;
    c->cfg = t->cfg;
    c->cfg->refs++;
    mbedtls_ssl_init(&c->ssl);
    int rc = mbedtls_ssl_setup(&c->ssl, &c->cfg->conf);
    if (rc == 0)
        rc = loop_add_fd(t->loop, fd, LOOP_READ, on_net, c);
    if (rc != 0) {
        log_error("cannot set up a TLS connection", "error=%d", rc);
        mbedtls_ssl_free(&c->ssl);
        cfg_put(c->cfg);
        close(fd);
        free(c);
        return;
    }
    c->net_ev = LOOP_READ;
    mbedtls_ssl_set_bio(&c->ssl, &c->net_fd, net_send, net_recv, NULL);
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->nconns++;
    t->stats.accepted++;
    t->stats.active = t->nconns;
    c->timer = loop_add_timer(t->loop, t->handshake_timeout_ms, 0, on_timeout, c);
    if (c->timer == 0)
        conn_close(c);
}

static void on_resume(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    struct web_tls *t = arg;
    t->resume_timer = 0;
    if (!t->accepting && t->nconns < t->max_conns && loop_mod_fd(l, t->listen_fd, LOOP_READ) == 0)
        t->accepting = true;
}

static void on_accept(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct web_tls *t = arg;
    while (t->nconns < t->max_conns) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            log_warn("accept failed: pausing for 100ms", "errno=%d", errno);
            if (t->accepting && t->resume_timer == 0 && loop_mod_fd(l, fd, 0) == 0) {
                t->accepting = false;
                t->resume_timer = loop_add_timer(l, 100, 0, on_resume, t);
            }
            return;
        }
        conn_new(t, c, &ss, len);
    }
    if (t->accepting && loop_mod_fd(l, fd, 0) == 0) {
        t->accepting = false;
        t->stats.limit_pauses++;
        log_debug("TLS connection limit reached: accepting paused", "limit=%zu", t->max_conns);
    }
}

/* ---- public ---- */

static void apply_limits(struct web_tls *t, const struct pgw_web_settings *s)
{
    t->handshake_timeout_ms = s->tls_handshake_timeout_ms ? s->tls_handshake_timeout_ms : 10000;
    t->max_conns = s->tls_max_connections > 0 ? (size_t)s->tls_max_connections : 256;
}

struct web_tls *web_tls_new(struct loop *l, int listen_fd, const struct pgw_web_settings *s,
                            web_tls_hand_off_fn hand_off, void *arg)
{
    struct web_tls *t = calloc(1, sizeof(*t));
    if (!t) {
        log_error("out of memory");
        return NULL;
    }
    t->loop = l;
    t->listen_fd = listen_fd;
    t->hand_off = hand_off;
    t->arg = arg;
    apply_limits(t, s);
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    static const unsigned char pers[] = "pgwarden web tls";
    psa_status_t ps = psa_crypto_init(); /* TLS 1.3 in mbedTLS 3.6 uses PSA */
    int rc =
        mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, pers, sizeof(pers) - 1);
    if (ps != PSA_SUCCESS || rc != 0) {
        log_error("cannot seed the TLS random generator", "psa=%d error=%d", (int)ps, rc);
    } else if ((t->cfg = tls_cfg_load(t, s)) != NULL) {
        rc = loop_add_fd(l, listen_fd, LOOP_READ, on_accept, t);
        if (rc == 0) {
            t->accepting = true;
            log_info("TLS enabled", "verify_client=%s max_connections=%zu",
                     s->verify_client == PGW_VERIFY_REQUIRED   ? "required"
                     : s->verify_client == PGW_VERIFY_OPTIONAL ? "optional"
                                                               : "none",
                     t->max_conns);
            return t;
        }
        log_error("cannot watch the TLS listen socket", "errno=%d", -rc);
    }
    cfg_put(t->cfg);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
    return NULL;
}

void web_tls_free(struct web_tls *t)
{
    if (!t)
        return;
    t->accepting = true; /* no resume from conn_close */
    while (t->conns)
        conn_close(t->conns);
    if (t->resume_timer)
        loop_cancel_timer(t->loop, t->resume_timer);
    loop_del_fd(t->loop, t->listen_fd);
    cfg_put(t->cfg);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t);
}

int web_tls_reload(struct web_tls *t, const struct pgw_web_settings *s)
{
    struct tls_cfg *c = tls_cfg_load(t, s);
    if (!c) {
        log_warn("TLS reload failed: keeping the previous certificate");
        return -EINVAL;
    }
    cfg_put(t->cfg);
    t->cfg = c;
    apply_limits(t, s);
    if (!t->accepting && t->nconns < t->max_conns &&
        loop_mod_fd(t->loop, t->listen_fd, LOOP_READ) == 0)
        t->accepting = true;
    log_info("TLS certificate reloaded");
    return 0;
}

bool web_tls_client_verified(const struct web_tls *t, int plain_fd)
{
    for (const struct tls_conn *c = t->conns; c; c = c->next) { /* newest first */
        if (c->handed_fd == plain_fd && c->established)
            return c->client_verified;
    }
    return false;
}

void web_tls_get_stats(const struct web_tls *t, struct web_tls_stats *out)
{
    *out = t->stats;
    out->active = t->nconns;
}
