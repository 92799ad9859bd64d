/* Unit tests of web/tls: real handshakes (curl, openssl s_client), client certificates, reload. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/settings.h"
#include "platform/log.h"
#include "platform/loop.h"
#include "platform/net.h"
#include "web/tls.h"

enum { BIG = 3 * 1024 * 1024 };

struct fx {
    char dir[64];
    struct loop *loop;
    int listen_fd;
    uint16_t port;
    struct web_tls *tls;
    struct pgw_web_settings s;
    pthread_t thread;
    atomic_bool stop;
    bool running;
    int handoffs;
    int refuse; /* hand_off fails */
    int bad_peer;
};

/* A tiny HTTP responder on the plaintext end: GET / -> "ok verified=N", GET /big -> BIG bytes,
 * POST -> "got=<body bytes>". */
struct resp {
    struct fx *f;
    int fd;
    char req[8192];
    size_t rlen;
    bool hdr_done, is_big, is_post;
    size_t body_need, body_got;
    char *out;
    size_t olen, ooff;
};

static void resp_close(struct loop *l, struct resp *r)
{
    loop_del_fd(l, r->fd);
    close(r->fd);
    free(r->out);
    free(r);
}

static void resp_build(struct resp *r)
{
    char body[64];
    size_t blen;
    if (r->is_big) {
        blen = BIG;
    } else if (r->is_post) {
        blen = (size_t)snprintf(body, sizeof(body), "got=%zu", r->body_got);
    } else {
        blen = (size_t)snprintf(body, sizeof(body), "ok verified=%d",
                                web_tls_client_verified(r->f->tls, r->fd) ? 1 : 0);
    }
    char hdr[128];
    int hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", blen);
    r->out = malloc((size_t)hl + blen);
    memcpy(r->out, hdr, (size_t)hl);
    if (r->is_big) {
        for (size_t i = 0; i < blen; i++)
            r->out[hl + i] = (char)('a' + i % 23);
    } else {
        memcpy(r->out + hl, body, blen);
    }
    r->olen = (size_t)hl + blen;
}

static void on_resp(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct resp *r = arg;
    while (!r->out) {
        char buf[16384];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            resp_close(l, r);
            return;
        }
        size_t used = 0;
        if (!r->hdr_done) {
            size_t take =
                (size_t)n < sizeof(r->req) - 1 - r->rlen ? (size_t)n : sizeof(r->req) - 1 - r->rlen;
            memcpy(r->req + r->rlen, buf, take);
            r->rlen += take;
            r->req[r->rlen] = '\0';
            char *end = strstr(r->req, "\r\n\r\n");
            if (!end)
                continue;
            r->hdr_done = true;
            size_t hdr_len = (size_t)(end + 4 - r->req);
            used = take - (r->rlen - hdr_len);
            r->is_big = strncmp(r->req, "GET /big ", 9) == 0;
            r->is_post = strncmp(r->req, "POST ", 5) == 0;
            const char *cl = strcasestr(r->req, "\r\nContent-Length:");
            if (cl)
                r->body_need = strtoul(cl + 17, NULL, 10);
        }
        r->body_got += (size_t)n - used;
        if (r->body_got >= r->body_need)
            resp_build(r);
    }
    while (r->ooff < r->olen) {
        ssize_t n = send(fd, r->out + r->ooff, r->olen - r->ooff, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            loop_mod_fd(l, fd, LOOP_WRITE);
            return;
        }
        if (n <= 0)
            break;
        r->ooff += (size_t)n;
    }
    resp_close(l, r);
}

static int hand_off(void *arg, int fd, const struct sockaddr *peer, socklen_t len)
{
    struct fx *f = arg;
    f->handoffs++;
    if (!peer || peer->sa_family != AF_INET || len != sizeof(struct sockaddr_in) ||
        ((const struct sockaddr_in *)peer)->sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        f->bad_peer++;
    if (f->refuse) {
        close(fd);
        return -EIO;
    }
    struct resp *r = calloc(1, sizeof(*r));
    r->f = f;
    r->fd = fd;
    if (loop_add_fd(f->loop, fd, LOOP_READ, on_resp, r) != 0) {
        close(fd);
        free(r);
        return -EIO;
    }
    return 0;
}

/* ---- fixture: certificates, loop thread ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#define NEWKEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

static bool make_certs(const char *d)
{
    return sh("cd %s && openssl req -x509 " NEWKEY " -keyout a.key -out a.crt -days 2 "
              "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null"
              " && openssl req -x509 " NEWKEY " -keyout b.key -out b.crt -days 2 "
              "-subj /CN=localhost-b -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
              "2>/dev/null"
              " && openssl req -x509 " NEWKEY " -keyout ca.key -out ca.crt -days 2 "
              "-subj /CN=test-ca 2>/dev/null"
              " && openssl req " NEWKEY " -keyout cl.key -out cl.csr -subj /CN=client 2>/dev/null"
              " && openssl x509 -req -in cl.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
              "-out cl.crt -days 2 2>/dev/null"
              " && openssl req -x509 " NEWKEY " -keyout rogue.key -out rogue.crt -days 2 "
              "-subj /CN=client 2>/dev/null"
              " && echo garbage > bad.crt",
              d) == 0;
}

static void set_files(struct fx *f, const char *cert, const char *key, const char *ca, int verify)
{
    snprintf(f->s.tls_cert, sizeof(f->s.tls_cert), "%s/%s", f->dir, cert);
    snprintf(f->s.tls_key, sizeof(f->s.tls_key), "%s/%s", f->dir, key);
    if (ca)
        snprintf(f->s.tls_ca, sizeof(f->s.tls_ca), "%s/%s", f->dir, ca);
    else
        f->s.tls_ca[0] = '\0';
    f->s.verify_client = verify;
}

static void stop_check(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    struct fx *f = arg;
    if (atomic_load(&f->stop))
        loop_stop(l);
}

static void *loop_thread(void *arg)
{
    struct fx *f = arg;
    loop_run(f->loop);
    return NULL;
}

static void start(struct fx *f)
{
    atomic_store(&f->stop, false);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_thread, f), 0);
    f->running = true;
}

static void stop(struct fx *f)
{
    if (!f->running)
        return;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    f->running = false;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-test-tls-XXXXXX");
    if (!mkdtemp(f->dir) || !make_certs(f->dir)) {
        fprintf(stderr, "cannot create test certificates with openssl in %s\n", f->dir);
        return -1;
    }
    f->loop = loop_new();
    f->listen_fd = net_listen_tcp("127.0.0.1", 0, 64);
    if (!f->loop || f->listen_fd < 0)
        return -1;
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    getsockname(f->listen_fd, (struct sockaddr *)&sin, &sl);
    f->port = ntohs(sin.sin_port);
    loop_add_timer(f->loop, 5, 5, stop_check, f);
    f->s.tls_handshake_timeout_ms = 10000;
    f->s.tls_max_connections = 64;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    stop(f);
    web_tls_free(f->tls);
    close(f->listen_fd);
    loop_free(f->loop);
    sh("rm -rf %s", f->dir);
    free(f);
    return 0;
}

static void new_tls(struct fx *f)
{
    f->tls = web_tls_new(f->loop, f->listen_fd, &f->s, hand_off, f);
    assert_non_null(f->tls);
}

/* ---- client side ---- */

struct buf {
    char *p;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    char *np = realloc(b->p, b->len + sz * n + 1);
    if (!np)
        return 0;
    b->p = np;
    memcpy(b->p + b->len, p, sz * n);
    b->len += sz * n;
    b->p[b->len] = '\0';
    return sz * n;
}

struct req {
    const char *path;
    const char *ca;   /* file name in the fixture dir */
    const char *cert; /* client certificate (with .key of the same stem) */
    long version;     /* CURL_SSLVERSION_* or 0 */
    size_t post_len;  /* > 0: POST this many bytes */
};

/* Performs one request; returns the curl result and the body in *out (caller frees out->p). */
static CURLcode fetch(struct fx *f, const struct req *rq, struct buf *out)
{
    char url[128], ca[128], cert[128], key[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", (unsigned)f->port,
             rq->path ? rq->path : "/");
    snprintf(ca, sizeof(ca), "%s/%s", f->dir, rq->ca ? rq->ca : "a.crt");
    CURL *c = curl_easy_init();
    assert_non_null(c);
    memset(out, 0, sizeof(*out));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (rq->version)
        curl_easy_setopt(c, CURLOPT_SSLVERSION, rq->version);
    if (rq->cert) {
        snprintf(cert, sizeof(cert), "%s/%s.crt", f->dir, rq->cert);
        snprintf(key, sizeof(key), "%s/%s.key", f->dir, rq->cert);
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    char *post = NULL;
    if (rq->post_len) {
        post = malloc(rq->post_len);
        memset(post, 'x', rq->post_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->post_len);
    }
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status != 200)
        rc = CURLE_HTTP_RETURNED_ERROR;
    curl_easy_cleanup(c);
    free(post);
    return rc;
}

static void expect_body(struct fx *f, const struct req *rq, const char *want)
{
    struct buf b;
    CURLcode rc = fetch(f, rq, &b);
    if (rc != CURLE_OK)
        fail_msg("request %s failed: %s", rq->path ? rq->path : "/", curl_easy_strerror(rc));
    assert_non_null(b.p);
    assert_string_equal(b.p, want);
    free(b.p);
}

static void expect_fail(struct fx *f, const struct req *rq)
{
    struct buf b;
    CURLcode rc = fetch(f, rq, &b);
    free(b.p);
    if (rc == CURLE_OK)
        fail_msg("request %s should have failed", rq->path ? rq->path : "/");
}

/* ---- tests ---- */

static void test_https_and_relay(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", NULL, PGW_VERIFY_NONE);
    new_tls(f);
    start(f);
    expect_body(f, &(struct req){0}, "ok verified=0");
    expect_body(f, &(struct req){.version = CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2},
                "ok verified=0");
    expect_body(f, &(struct req){.version = CURL_SSLVERSION_TLSv1_3}, "ok verified=0");
    /* big response and big upload through the bounded buffers */
    struct buf b;
    assert_int_equal(fetch(f, &(struct req){.path = "/big"}, &b), CURLE_OK);
    assert_int_equal(b.len, BIG);
    for (size_t i = 0; i < b.len; i += 4099)
        assert_int_equal(b.p[i], 'a' + i % 23);
    free(b.p);
    expect_body(f, &(struct req){.path = "/up", .post_len = 2 * 1024 * 1024 + 17}, "got=2097169");
    /* a client that does not trust the certificate */
    expect_fail(f, &(struct req){.ca = "b.crt"});
    usleep(300 * 1000);
    stop(f);
    struct web_tls_stats st;
    web_tls_get_stats(f->tls, &st);
    assert_int_equal(f->bad_peer, 0);
    /* the untrusted client's handshake never completed on the server; whether the server saw
     * an alert or a plain close before it (counted as an error or not) depends on timing */
    assert_int_equal(st.handshakes, 5);
    assert_int_equal(st.active, 0);
    /* a refused hand-off closes the connection */
    f->refuse = 1;
    start(f);
    expect_fail(f, &(struct req){0});
    stop(f);
}

/* openssl s_client: TLS 1.2 works, TLS 1.1 is refused by the server. */
static void test_tls11_refused(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", NULL, PGW_VERIFY_NONE);
    new_tls(f);
    start(f);
    assert_int_equal(sh("openssl s_client -connect 127.0.0.1:%u -tls1_2 </dev/null >/dev/null "
                        "2>&1",
                        (unsigned)f->port),
                     0);
    int rc = sh("openssl s_client -connect 127.0.0.1:%u -tls1_1 -cipher DEFAULT@SECLEVEL=0 "
                "</dev/null >/dev/null 2>&1",
                (unsigned)f->port);
    stop(f);
    assert_int_not_equal(rc, 0);
    struct web_tls_stats st;
    web_tls_get_stats(f->tls, &st);
    assert_int_equal(st.accepted, 2);   /* the TLS 1.1 client did connect... */
    assert_int_equal(st.handshakes, 1); /* ...and the server refused its handshake */
    assert_int_equal(st.handshake_errors, 1);
}

static void test_client_cert_required(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", "ca.crt", PGW_VERIFY_REQUIRED);
    new_tls(f);
    start(f);
    expect_fail(f, &(struct req){0});
    expect_fail(f, &(struct req){.cert = "rogue"});
    expect_body(f, &(struct req){.cert = "cl"}, "ok verified=1");
    expect_body(f,
                &(struct req){.cert = "cl",
                              .version = CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2},
                "ok verified=1");
    assert_int_equal(sh("openssl s_client -connect 127.0.0.1:%u -cert %s/cl.crt -key %s/cl.key "
                        "</dev/null >/dev/null 2>&1",
                        (unsigned)f->port, f->dir, f->dir),
                     0);
    stop(f);
    struct web_tls_stats st;
    web_tls_get_stats(f->tls, &st);
    assert_int_equal(f->handoffs, 3);
}

static void test_client_cert_optional(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", "ca.crt", PGW_VERIFY_OPTIONAL);
    new_tls(f);
    start(f);
    expect_body(f, &(struct req){0}, "ok verified=0");
    expect_body(f, &(struct req){.cert = "cl"}, "ok verified=1");
    expect_fail(f, &(struct req){.cert = "rogue"});
    stop(f);
}

static void test_reload(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", NULL, PGW_VERIFY_NONE);
    new_tls(f);
    start(f);
    expect_body(f, &(struct req){0}, "ok verified=0");
    stop(f);
    /* broken files: the old certificate stays */
    set_files(f, "bad.crt", "b.key", NULL, PGW_VERIFY_NONE);
    assert_int_equal(web_tls_reload(f->tls, &f->s), -EINVAL);
    set_files(f, "b.crt", "a.key", NULL, PGW_VERIFY_NONE); /* key of another certificate */
    assert_int_equal(web_tls_reload(f->tls, &f->s), -EINVAL);
    set_files(f, "a.crt", "a.key", "missing.crt", PGW_VERIFY_REQUIRED);
    assert_int_equal(web_tls_reload(f->tls, &f->s), -EINVAL);
    start(f);
    expect_body(f, &(struct req){0}, "ok verified=0");
    stop(f);
    /* the new certificate */
    set_files(f, "b.crt", "b.key", NULL, PGW_VERIFY_NONE);
    assert_int_equal(web_tls_reload(f->tls, &f->s), 0);
    start(f);
    expect_body(f, &(struct req){.ca = "b.crt"}, "ok verified=0");
    expect_fail(f, &(struct req){.ca = "a.crt"});
    stop(f);
    /* and client verification switched on by a reload */
    set_files(f, "b.crt", "b.key", "ca.crt", PGW_VERIFY_REQUIRED);
    assert_int_equal(web_tls_reload(f->tls, &f->s), 0);
    start(f);
    expect_fail(f, &(struct req){.ca = "b.crt"});
    expect_body(f, &(struct req){.ca = "b.crt", .cert = "cl"}, "ok verified=1");
    stop(f);
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

/* True if the server closed fd within ms. */
static bool closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    char c;
    return recv(fd, &c, 1, 0) <= 0;
}

static void test_handshake_timeout_and_limit(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", NULL, PGW_VERIFY_NONE);
    f->s.tls_handshake_timeout_ms = 300;
    f->s.tls_max_connections = 2;
    new_tls(f);
    start(f);
    int a = tcp_connect(f->port), b = tcp_connect(f->port), c = tcp_connect(f->port);
    usleep(100 * 1000);
    stop(f);
    struct web_tls_stats st;
    web_tls_get_stats(f->tls, &st);
    assert_int_equal(st.accepted, 2); /* the third waits in the backlog */
    assert_int_equal(st.active, 2);
    assert_int_equal(st.limit_pauses, 1);
    start(f);
    /* the two silent clients are dropped after the handshake timeout; then the third is
     * accepted, and dropped in turn */
    assert_true(closed_within(a, 5000));
    assert_true(closed_within(b, 5000));
    assert_true(closed_within(c, 5000));
    /* garbage instead of a ClientHello */
    int d = tcp_connect(f->port);
    assert_int_equal(send(d, "GET / HTTP/1.0\r\n\r\n", 18, 0), 18);
    assert_true(closed_within(d, 5000));
    /* a normal client still works (with a timeout that a slow sanitized or emulated handshake
     * meets, applied by a reload) */
    stop(f);
    f->s.tls_handshake_timeout_ms = 10000;
    assert_int_equal(web_tls_reload(f->tls, &f->s), 0);
    start(f);
    expect_body(f, &(struct req){0}, "ok verified=0");
    stop(f);
    web_tls_get_stats(f->tls, &st);
    assert_int_equal(st.accepted, 5);
    assert_int_equal(st.handshake_timeouts, 3);
    assert_int_equal(st.handshake_errors, 1);
    assert_int_equal(st.active, 0);
    close(a);
    close(b);
    close(c);
    close(d);
}

/* Free with open connections: everything is released (ASan checks leaks). */
static void test_free_with_open_connections(void **state)
{
    struct fx *f = *state;
    set_files(f, "a.crt", "a.key", NULL, PGW_VERIFY_NONE);
    new_tls(f);
    start(f);
    int a = tcp_connect(f->port);
    usleep(50 * 1000);
    stop(f);
    web_tls_free(f->tls);
    f->tls = NULL;
    assert_true(closed_within(a, 1000));
    close(a);
    set_files(f, "missing.crt", "a.key", NULL, PGW_VERIFY_NONE);
    assert_null(web_tls_new(f->loop, f->listen_fd, &f->s, hand_off, f));
}

int main(void)
{
    log_setup(LOG_LVL_ERROR, "test");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_https_and_relay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls11_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert_optional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_open_connections, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
