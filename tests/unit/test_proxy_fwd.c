/* Unit tests for the forwarder engine over loopback sockets: relay, holding, timeouts, limits,
 * leader changes, cancel routing, backpressure and peers that go away. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/proxy/fwd_int.h"
#include "platform/clock.h"
#include "platform/net.h"

struct fx {
    struct loop *l;
    int lfd[2]; /* the forwarder's rw and ro ports */
    uint16_t lport[2];
    int up[2]; /* two fake PostgreSQL servers */
    uint16_t upport[2];
    struct fwd_config cfg;
    struct fwd *f;
};

static uint16_t local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static int listener(uint16_t *port)
{
    int fd = net_listen_tcp("127.0.0.1", 0, 256);
    assert_true(fd >= 0);
    *port = local_port(fd);
    return fd;
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->l = loop_new();
    assert_non_null(x->l);
    for (int i = 0; i < 2; i++) {
        x->lfd[i] = listener(&x->lport[i]);
        x->up[i] = listener(&x->upport[i]);
    }
    x->cfg = (struct fwd_config){.hold_timeout_ms = 5000,
                                 .max_connections = 100,
                                 .ro_max_lag = 1024,
                                 .ro_fallback_leader = true,
                                 .first_packet_ms = 300,
                                 .connect_ms = 1000,
                                 .retry_ms = 50,
                                 .linger_ms = 300,
                                 .user_timeout_ms = 5000,
                                 .keepalive_idle_s = 10};
    *state = x;
    return 0;
}

static void start(struct fx *x)
{
    x->f = fwd_new(x->l, x->lfd[0], x->lfd[1], &x->cfg);
    assert_non_null(x->f);
}

static int teardown(void **state)
{
    struct fx *x = *state;
    fwd_free(x->f);
    for (int i = 0; i < 2; i++) {
        close(x->lfd[i]);
        close(x->up[i]);
    }
    loop_free(x->l);
    free(x);
    return 0;
}

static void pump(struct fx *x, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (clock_mono_ms() < end)
        loop_run_once(x->l, 5);
}

/* leader: index of the fake server that leads (-1: none); replicas: bitmask of the others. */
static void route(struct fx *x, int leader, int64_t term, int replicas, int64_t lag)
{
    struct msg_route *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->term = term;
    m->expiry_boot_ms = clock_boot_ms() + 60000;
    if (leader >= 0) {
        m->has_leader = 1;
        snprintf(m->leader, sizeof(m->leader), "n%d", leader);
        snprintf(m->host, sizeof(m->host), "127.0.0.1");
        m->port = x->upport[leader];
    }
    for (int i = 0; i < 2; i++) {
        if (!(replicas & (1 << i)))
            continue;
        struct msg_route_replica *r = &m->replicas[m->n_replicas++];
        snprintf(r->host, sizeof(r->host), "127.0.0.1");
        snprintf(r->name, sizeof(r->name), "n%d", i);
        r->port = x->upport[i];
        r->lag_bytes = lag;
    }
    fwd_set_route(x->f, m);
    free(m);
}

static int client(struct fx *x, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(x->lport[port])};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t startup(uint8_t *out)
{
    static const char params[] = "user\0postgres\0database\0postgres\0";
    size_t len = 8 + sizeof(params);
    put32(out, (uint32_t)len);
    put32(out + 4, 196608);
    memcpy(out + 8, params, sizeof(params));
    return len;
}

static void send_all(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void send_startup(int fd)
{
    uint8_t b[64];
    send_all(fd, b, startup(b));
}

static void send_request(int fd, uint32_t code)
{
    uint8_t b[8];
    put32(b, 8);
    put32(b + 4, code);
    send_all(fd, b, 8);
}

/* Pumps the loop while reading up to n bytes from fd; stops at n, at end of file or at the
 * timeout. Returns the bytes read; *eof tells whether the peer closed (or reset). */
static size_t recv_some(struct fx *x, int fd, void *buf, size_t n, int timeout_ms, bool *eof)
{
    size_t got = 0;
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    if (eof)
        *eof = false;
    while (got < n && clock_mono_ms() < end) {
        loop_run_once(x->l, 2);
        ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (eof)
                *eof = true;
            break;
        }
    }
    return got;
}

static bool wait_eof(struct fx *x, int fd, int timeout_ms)
{
    uint8_t b[256];
    bool eof = false;
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    while (!eof && clock_mono_ms() < end)
        recv_some(x, fd, b, sizeof(b), 20, &eof);
    return eof;
}

static int accept_up(struct fx *x, int i, int timeout_ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    do {
        loop_run_once(x->l, 2);
        int fd = accept4(x->up[i], NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
    } while (clock_mono_ms() < end);
    return -1;
}

/* Reads an ErrorResponse and returns its SQLSTATE in code[6]; asserts the close after it. */
static void expect_error(struct fx *x, int fd, const char *want_code)
{
    uint8_t b[PGP_ERROR_MAX];
    bool eof;
    size_t n = recv_some(x, fd, b, 5, 3000, &eof);
    assert_int_equal(n, 5);
    assert_int_equal(b[0], 'E');
    uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    assert_true(len > 4 && len < sizeof(b) - 1);
    n = recv_some(x, fd, b + 5, len - 4, 3000, &eof);
    assert_int_equal(n, len - 4);
    const char *code = NULL;
    for (const char *p = (const char *)b + 5; *p; p += strlen(p) + 1) {
        if (*p == 'C')
            code = p + 1;
    }
    assert_non_null(code);
    assert_string_equal(code, want_code);
    assert_true(wait_eof(x, fd, 3000));
}

/* AuthenticationOk, BackendKeyData(pid, key), ReadyForQuery. */
static size_t server_hello(uint8_t *b, uint32_t pid, uint32_t key)
{
    static const uint8_t r[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    size_t n = sizeof(r);
    memcpy(b, r, n);
    b[n++] = 'K';
    put32(b + n, 12);
    put32(b + n + 4, pid);
    put32(b + n + 8, key);
    n += 12;
    static const uint8_t z[] = {'Z', 0, 0, 0, 5, 'I'};
    memcpy(b + n, z, sizeof(z));
    return n + sizeof(z);
}

static size_t count_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ---- tests ---- */

static void test_relay_and_key(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t want[64], got[256];
    size_t n = startup(want);
    assert_int_equal(recv_some(x, u, got, n, 2000, NULL), n);
    assert_memory_equal(got, want, n);
    n = server_hello(want, 4711, 0xabcdef01);
    send_all(u, want, n);
    assert_int_equal(recv_some(x, c, got, n, 2000, NULL), n);
    assert_memory_equal(got, want, n);
    assert_int_equal(x->f->keys.count, 1);
    send_all(c, "Q\0\0\0\x0dSELECT 1\0", 14);
    assert_int_equal(recv_some(x, u, got, 14, 2000, NULL), 14);
    assert_memory_equal(got, "Q\0\0\0\x0dSELECT 1\0", 14);
    struct msg_proxy_stats st;
    fwd_stats(x->f, &st);
    assert_int_equal(st.port[PROXY_PORT_RW].active, 1);
    assert_int_equal(st.port[PROXY_PORT_RW].bytes_up, startup(want) + 14);
    assert_int_equal(st.port[PROXY_PORT_RW].bytes_down, server_hello(want, 1, 1));
    assert_true(st.has_leader);
    assert_string_equal(st.leader, "n0");
    close(c);
    assert_true(wait_eof(x, u, 2000));
    pump(x, 20);
    assert_int_equal(fwd_connections(x->f), 0);
    assert_int_equal(x->f->keys.count, 0);
    assert_int_equal(x->f->pool.in_use, 0);
    close(u);
}

static void test_held_then_served(void **state)
{
    struct fx *x = *state;
    start(x);
    int c = client(x, PROXY_PORT_RW);
    send_request(c, PGP_CODE_SSL);
    pump(x, 150);
    struct msg_proxy_stats st;
    fwd_stats(x->f, &st);
    assert_int_equal(st.port[PROXY_PORT_RW].held, 1);
    assert_false(st.has_leader);
    route(x, 1, 3, 0, 0);
    int u = accept_up(x, 1, 2000);
    assert_true(u >= 0);
    uint8_t got[8];
    assert_int_equal(recv_some(x, u, got, 8, 2000, NULL), 8);
    assert_int_equal(got[7], PGP_CODE_SSL & 0xff);
    send_all(u, "N", 1);
    assert_int_equal(recv_some(x, c, got, 1, 2000, NULL), 1);
    assert_int_equal(got[0], 'N');
    /* the StartupMessage that follows is relayed, and the key is found after the 'N' */
    send_startup(c);
    uint8_t want[64];
    size_t n = startup(want);
    assert_int_equal(recv_some(x, u, got, 8, 2000, NULL), 8);
    uint8_t rest[64];
    assert_int_equal(recv_some(x, u, rest, n - 8, 2000, NULL), n - 8);
    n = server_hello(want, 1, 2);
    send_all(u, want, n);
    uint8_t back[64];
    assert_int_equal(recv_some(x, c, back, n, 2000, NULL), n);
    assert_int_equal(x->f->keys.count, 1);
    fwd_stats(x->f, &st);
    assert_int_equal(st.port[PROXY_PORT_RW].held, 0);
    assert_int_equal(st.port[PROXY_PORT_RW].held_count, 1);
    uint64_t hist = 0;
    for (int i = 0; i < PROXY_HELD_BUCKETS; i++)
        hist += st.port[PROXY_PORT_RW].held_hist[i];
    assert_int_equal(hist, 1);
    assert_true(st.port[PROXY_PORT_RW].held_ms_sum >= 100);
    close(c);
    close(u);
}

static void test_hold_timeout_startup(void **state)
{
    struct fx *x = *state;
    x->cfg.hold_timeout_ms = 200;
    start(x);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    uint64_t t0 = clock_mono_ms();
    expect_error(x, c, "57P03");
    assert_true(clock_mono_ms() - t0 >= 150);
    struct msg_proxy_stats st;
    fwd_stats(x->f, &st);
    assert_int_equal(st.port[PROXY_PORT_RW].hold_timeouts, 1);
    close(c);
    pump(x, 20);
    assert_int_equal(fwd_connections(x->f), 0);
}

static void test_hold_timeout_ssl(void **state)
{
    struct fx *x = *state;
    x->cfg.hold_timeout_ms = 200;
    start(x);
    int c = client(x, PROXY_PORT_RW);
    send_request(c, PGP_CODE_SSL);
    uint8_t b[1];
    assert_int_equal(recv_some(x, c, b, 1, 3000, NULL), 1);
    assert_int_equal(b[0], 'N');
    send_startup(c);
    expect_error(x, c, "57P03");
    close(c);
}

static void test_hold_timeout_zero_refuses_at_once(void **state)
{
    struct fx *x = *state;
    x->cfg.hold_timeout_ms = 0;
    start(x);
    int c = client(x, PROXY_PORT_RO); /* read-only: no replica, no leader */
    send_startup(c);
    uint64_t t0 = clock_mono_ms();
    expect_error(x, c, "57P03");
    assert_true(clock_mono_ms() - t0 < 1000);
    close(c);
}

static void test_gssenc_refused_then_ssl_held(void **state)
{
    struct fx *x = *state;
    start(x);
    int c = client(x, PROXY_PORT_RW);
    send_request(c, PGP_CODE_GSSENC);
    uint8_t b[1];
    assert_int_equal(recv_some(x, c, b, 1, 2000, NULL), 1);
    assert_int_equal(b[0], 'N');
    send_request(c, PGP_CODE_SSL);
    pump(x, 50);
    assert_int_equal(x->f->st[PROXY_PORT_RW].held, 1);
    close(c);
    pump(x, 20);
    assert_int_equal(fwd_connections(x->f), 0);
    assert_int_equal(x->f->st[PROXY_PORT_RW].held, 0);
}

static void test_silent_client_closed(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    uint64_t t0 = clock_mono_ms();
    assert_true(wait_eof(x, c, 3000));
    assert_true(clock_mono_ms() - t0 >= 250);
    assert_int_equal(fwd_connections(x->f), 0);
    assert_int_equal(accept4(x->up[0], NULL, NULL, SOCK_NONBLOCK), -1); /* never connected */
    close(c);
}

static void test_bad_first_packet(void **state)
{
    struct fx *x = *state;
    start(x);
    int c = client(x, PROXY_PORT_RW);
    send_all(c, "GET / HTTP/1.1\r\n\r\n", 18);
    expect_error(x, c, "08P01");
    close(c);
    /* a client that closes in the middle of its startup packet */
    c = client(x, PROXY_PORT_RW);
    uint8_t b[64];
    startup(b);
    send_all(c, b, 10);
    pump(x, 20);
    close(c);
    pump(x, 20);
    assert_int_equal(fwd_connections(x->f), 0);
    assert_int_equal(x->f->pool.in_use, 0);
}

static void test_connection_limit(void **state)
{
    struct fx *x = *state;
    x->cfg.max_connections = 1;
    start(x);
    int c1 = client(x, PROXY_PORT_RW);
    send_startup(c1);
    pump(x, 30);
    int c2 = client(x, PROXY_PORT_RW);
    send_startup(c2);
    expect_error(x, c2, "53300");
    int c3 = client(x, PROXY_PORT_RO); /* the limit spans both ports; SSL first */
    send_request(c3, PGP_CODE_SSL);
    uint8_t b[1];
    assert_int_equal(recv_some(x, c3, b, 1, 2000, NULL), 1);
    assert_int_equal(b[0], 'N');
    send_startup(c3);
    expect_error(x, c3, "53300");
    struct msg_proxy_stats st;
    fwd_stats(x->f, &st);
    assert_int_equal(st.port[PROXY_PORT_RW].rejected + st.port[PROXY_PORT_RO].rejected, 2);
    assert_int_equal(st.port[PROXY_PORT_RW].active, 1);
    close(c2);
    close(c3);
    /* the held one is still served */
    route(x, 0, 1, 0, 0);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    close(u);
    close(c1);
}

static void test_leader_change_closes_sessions(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_true(recv_some(x, u, b, startup(b), 2000, NULL) > 0);
    /* a renewal (same term and address) keeps the session */
    route(x, 0, 1, 0, 0);
    send_all(u, "x", 1);
    assert_int_equal(recv_some(x, c, b, 1, 2000, NULL), 1);
    /* a new term: the session is closed at once, both legs */
    route(x, 1, 2, 0, 0);
    assert_true(wait_eof(x, c, 1000));
    assert_true(wait_eof(x, u, 1000));
    close(c);
    close(u);
    /* new clients go to the new leader */
    c = client(x, PROXY_PORT_RW);
    send_startup(c);
    u = accept_up(x, 1, 2000);
    assert_true(u >= 0);
    send_all(u, "R", 1);
    assert_int_equal(recv_some(x, c, b, 1, 2000, NULL), 1);
    /* a fence ("no leader") closes too */
    route(x, -1, 0, 0, 0);
    assert_true(wait_eof(x, c, 1000));
    close(c);
    close(u);
}

/* A server that closes, or stops being the leader, before its first byte: the client does not
 * notice; its startup packet goes to the next upstream. */
static void test_unanswered_startup_rerouted(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_request(c, PGP_CODE_SSL);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_int_equal(recv_some(x, u, b, 8, 2000, NULL), 8);
    close(u);                  /* e.g. a server shutting down */
    u = accept_up(x, 0, 2000); /* retried (after a short backoff) */
    assert_true(u >= 0);
    assert_int_equal(recv_some(x, u, b, 8, 2000, NULL), 8);
    /* the leader changes while the server has not answered: re-routed, not closed */
    route(x, 1, 2, 0, 0);
    int u2 = accept_up(x, 1, 2000);
    assert_true(u2 >= 0);
    assert_int_equal(recv_some(x, u2, b, 8, 2000, NULL), 8);
    assert_int_equal(b[7], PGP_CODE_SSL & 0xff);
    send_all(u2, "N", 1);
    assert_int_equal(recv_some(x, c, b, 1, 2000, NULL), 1);
    assert_int_equal(b[0], 'N');
    assert_int_equal(x->f->st[PROXY_PORT_RW].connect_failures, 1);
    close(u);
    close(u2);
    close(c);
}

static void test_cancel_routed_by_key(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 2, 0); /* leader up0, replica up1 */
    int c = client(x, PROXY_PORT_RO);
    send_startup(c);
    int u = accept_up(x, 1, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_true(recv_some(x, u, b, startup(b), 2000, NULL) > 0);
    size_t n = server_hello(b, 5, 6);
    send_all(u, b, n);
    assert_int_equal(recv_some(x, c, b, n, 2000, NULL), n);
    /* a cancel for that session, even on the read-write port, goes to up1 */
    int k = client(x, PROXY_PORT_RW);
    uint8_t cr[16];
    put32(cr, 16);
    put32(cr + 4, PGP_CODE_CANCEL);
    put32(cr + 8, 5);
    put32(cr + 12, 6);
    send_all(k, cr, 16);
    int uc = accept_up(x, 1, 2000);
    assert_true(uc >= 0);
    assert_int_equal(recv_some(x, uc, b, 16, 2000, NULL), 16);
    assert_memory_equal(b, cr, 16);
    close(uc); /* the server closes after a cancel */
    assert_true(wait_eof(x, k, 2000));
    close(k);
    /* an unknown key goes to the leader */
    k = client(x, PROXY_PORT_RW);
    put32(cr + 12, 7);
    send_all(k, cr, 16);
    uc = accept_up(x, 0, 2000);
    assert_true(uc >= 0);
    assert_int_equal(recv_some(x, uc, b, 16, 2000, NULL), 16);
    close(uc);
    close(k);
    assert_int_equal(x->f->st[PROXY_PORT_RW].cancels, 2);
    close(c);
    close(u);
}

static void test_backpressure_bounded(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    int small = 256 << 10; /* above the loopback MSS, or TCP stalls on zero-window probes */
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    send_startup(c);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_true(recv_some(x, u, b, startup(b), 2000, NULL) > 0);
    /* more than the kernel buffers of the legs can hold (they grow to several MiB on loopback) */
    enum { TOTAL = 32 << 20 };
    setsockopt(u, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    uint8_t *out = malloc(TOTAL), *in = malloc(TOTAL);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < TOTAL; i++)
        out[i] = (uint8_t)(i * 131 + (i >> 13));
    /* the server writes while the client reads nothing: the server soon cannot write more */
    size_t sent = 0;
    uint64_t end = clock_mono_ms() + 500;
    while (clock_mono_ms() < end && sent < TOTAL) {
        ssize_t w = send(u, out + sent, TOTAL - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        loop_run_once(x->l, 2);
        assert_true(x->f->pool.in_use <= 2);
    }
    bool stalled = sent < TOTAL;
    if (!stalled) {
        free(out);
        free(in);
    }
    assert_true(stalled);
    /* now the client reads everything, in order */
    size_t got = 0;
    end = clock_mono_ms() + 20000;
    while (got < TOTAL && clock_mono_ms() < end) {
        if (sent < TOTAL) {
            ssize_t w = send(u, out + sent, TOTAL - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        loop_run_once(x->l, 1);
        ssize_t r = recv(c, in + got, TOTAL - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        assert_true(x->f->pool.in_use <= 2);
    }
    assert_int_equal(got, TOTAL);
    assert_memory_equal(in, out, TOTAL);
    free(out);
    free(in);
    close(c);
    close(u);
}

static void test_server_closes_mid_packet(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_true(recv_some(x, u, b, startup(b), 2000, NULL) > 0);
    /* AuthenticationOk, then half a header, then the server dies: the client gets both */
    send_all(u, "R\0\0\0\x08\0\0\0\0E\0\0", 12);
    close(u);
    bool eof;
    assert_int_equal(recv_some(x, c, b, sizeof(b), 2000, &eof), 12);
    assert_true(eof || wait_eof(x, c, 2000));
    close(c);
    pump(x, 20);
    assert_int_equal(fwd_connections(x->f), 0);
}

/* A server that dies in the middle of its first message (an ErrorResponse being collected):
 * the client has seen nothing, so it is sent to the next server. */
static void test_server_dies_mid_first_error(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    size_t n = startup(b);
    assert_int_equal(recv_some(x, u, b, n, 2000, NULL), n);
    send_all(u, "E\0\0", 3);
    pump(x, 20);
    close(u);
    bool eof;
    assert_int_equal(recv_some(x, c, b, 1, 100, &eof), 0);
    assert_false(eof);
    u = accept_up(x, 0, 2000); /* retried after the backoff */
    assert_true(u >= 0);
    assert_int_equal(recv_some(x, u, b, n, 2000, NULL), n);
    close(u);
    close(c);
}

/* FATAL 57P03 ("the database system is shutting down") as the server's first message: the
 * client does not see it; the same startup packet goes to the next leader. */
static void test_refused_57p03_rerouted(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    uint8_t want[64], b[PGP_ERROR_MAX];
    size_t n = startup(want);
    uint8_t err[PGP_ERROR_MAX];
    size_t en =
        pgp_error_response(err, sizeof(err), "57P03", "the database system is shutting down");
    for (int i = 0; i < 2; i++) { /* refused twice by the same server (the route still names it) */
        int u = accept_up(x, 0, 2000);
        assert_true(u >= 0);
        assert_int_equal(recv_some(x, u, b, n, 2000, NULL), n);
        assert_memory_equal(b, want, n);
        send_all(u, err, 10); /* in two pieces: collected whole before deciding */
        pump(x, 10);
        send_all(u, err + 10, en - 10);
        pump(x, 10);
        close(u);
    }
    assert_int_equal(x->f->st[PROXY_PORT_RW].held, 1);
    route(x, 1, 2, 0, 0);
    int u = accept_up(x, 1, 2000);
    assert_true(u >= 0);
    assert_int_equal(recv_some(x, u, b, n, 2000, NULL), n);
    assert_memory_equal(b, want, n);
    n = server_hello(want, 9, 10);
    send_all(u, want, n);
    assert_int_equal(recv_some(x, c, b, n, 2000, NULL), n); /* the hello, not the error */
    assert_memory_equal(b, want, n);
    assert_int_equal(x->f->keys.count, 1);
    assert_int_equal(x->f->st[PROXY_PORT_RW].connect_failures, 2);
    assert_int_equal(x->f->small.in_use, 0); /* the copy of the startup packet is gone */
    close(u);
    close(c);
}

/* Another error (bad password, unknown database) is the client's business: relayed. */
static void test_other_first_error_relayed(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_true(recv_some(x, u, b, startup(b), 2000, NULL) > 0);
    uint8_t err[PGP_ERROR_MAX];
    size_t en = pgp_error_response(err, sizeof(err), "3D000", "database does not exist");
    send_all(u, err, en);
    close(u);
    expect_error(x, c, "3D000");
    close(c);
}

/* SSLRequest answered 'N' by a server that then refuses the StartupMessage with 57P03: the
 * client keeps its 'N' and the next server gets the StartupMessage alone. */
static void test_ssl_refused_then_57p03_rerouted(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_request(c, PGP_CODE_SSL);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[PGP_ERROR_MAX], want[64];
    assert_int_equal(recv_some(x, u, b, 8, 2000, NULL), 8);
    send_all(u, "N", 1);
    assert_int_equal(recv_some(x, c, b, 1, 2000, NULL), 1);
    assert_int_equal(b[0], 'N');
    send_startup(c);
    size_t n = startup(want);
    assert_int_equal(recv_some(x, u, b, n, 2000, NULL), n);
    size_t en = pgp_error_response(b, sizeof(b), "57P01", "terminating connection");
    send_all(u, b, en);
    close(u);
    route(x, 1, 2, 0, 0);
    u = accept_up(x, 1, 2000);
    assert_true(u >= 0);
    assert_int_equal(recv_some(x, u, b, n, 2000, NULL), n);
    assert_memory_equal(b, want, n); /* no SSLRequest first */
    n = server_hello(want, 1, 2);
    send_all(u, want, n);
    assert_int_equal(recv_some(x, c, b, n, 2000, NULL), n);
    assert_memory_equal(b, want, n);
    close(u);
    close(c);
}

/* Refusals do not extend the hold: a server that keeps refusing ends in 57P03 at the deadline. */
static void test_refusals_bounded_by_hold_timeout(void **state)
{
    struct fx *x = *state;
    x->cfg.hold_timeout_ms = 400;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    uint64_t t0 = clock_mono_ms();
    uint8_t err[PGP_ERROR_MAX], b[128];
    size_t en = pgp_error_response(err, sizeof(err), "57P03", "the database system is starting up");
    int refused = 0;
    while (clock_mono_ms() - t0 < 2000) {
        int u = accept_up(x, 0, 50);
        if (u < 0) {
            ssize_t r = recv(c, b, 1, MSG_PEEK | MSG_DONTWAIT);
            if (r > 0)
                break;
            continue;
        }
        recv_some(x, u, b, startup(b), 500, NULL);
        send_all(u, err, en);
        close(u);
        refused++;
    }
    assert_true(refused >= 2);
    expect_error(x, c, "57P03"); /* the forwarder's own "no primary available" */
    assert_true(clock_mono_ms() - t0 < 1500);
    close(c);
}

static void test_startup_too_long(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    uint8_t big[FWD_FIRST_MAX + 100];
    memset(big, 'a', sizeof(big));
    put32(big, sizeof(big));
    put32(big + 4, 196608);
    big[sizeof(big) - 1] = 0;
    send_all(c, big, 64); /* the length alone decides */
    expect_error(x, c, "08P01");
    close(c);
    assert_int_equal(accept4(x->up[0], NULL, NULL, SOCK_NONBLOCK), -1);
    /* one just under the limit goes through */
    c = client(x, PROXY_PORT_RW);
    put32(big, FWD_FIRST_MAX);
    big[FWD_FIRST_MAX - 1] = 0;
    send_all(c, big, FWD_FIRST_MAX);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t got[FWD_FIRST_MAX];
    assert_int_equal(recv_some(x, u, got, FWD_FIRST_MAX, 2000, NULL), FWD_FIRST_MAX);
    assert_memory_equal(got, big, FWD_FIRST_MAX);
    close(u);
    close(c);
}

/* Held clients keep their startup packet in a small chunk, not in a relay buffer. */
static void test_held_clients_use_small_chunks(void **state)
{
    struct fx *x = *state;
    start(x);
    enum { N = 50 };
    int c[N];
    for (int i = 0; i < N; i++) {
        c[i] = client(x, PROXY_PORT_RW);
        send_startup(c[i]);
    }
    pump(x, 100);
    assert_int_equal(x->f->st[PROXY_PORT_RW].held, N);
    assert_int_equal(x->f->small.in_use, N);
    assert_int_equal(x->f->pool.in_use, 0);
    for (int i = 0; i < N; i++)
        close(c[i]);
    pump(x, 50);
    assert_int_equal(fwd_connections(x->f), 0);
    assert_int_equal(x->f->small.in_use, 0);
}

static void test_connect_failure_held_and_retried(void **state)
{
    struct fx *x = *state;
    start(x);
    /* up1 stops listening: connects are refused */
    close(x->up[1]);
    x->up[1] = -1;
    route(x, 1, 1, 0, 0);
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    pump(x, 300);
    struct msg_proxy_stats st;
    fwd_stats(x->f, &st);
    assert_true(st.port[PROXY_PORT_RW].connect_failures >= 2);
    assert_int_equal(st.port[PROXY_PORT_RW].held, 1);
    route(x, 0, 2, 0, 0);
    int u = accept_up(x, 0, 2000);
    assert_true(u >= 0);
    uint8_t b[128];
    assert_int_equal(recv_some(x, u, b, startup(b), 2000, NULL), startup(b));
    close(u);
    close(c);
    x->up[1] = listener(&x->upport[1]);
}

static void test_ro_least_connections_and_fallback(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, -1, 0, 3, 0); /* both are replicas, no leader */
    int c[4], u[4];
    int per[2] = {0, 0};
    for (int i = 0; i < 4; i++) {
        c[i] = client(x, PROXY_PORT_RO);
        send_startup(c[i]);
        pump(x, 20);
        u[i] = -1;
        for (int j = 0; j < 2 && u[i] < 0; j++) {
            u[i] = accept_up(x, j, 50);
            if (u[i] >= 0)
                per[j]++;
        }
        assert_true(u[i] >= 0);
    }
    assert_int_equal(per[0], 2);
    assert_int_equal(per[1], 2);
    /* too far behind: the leader takes read-only clients */
    route(x, 0, 1, 2, 1 << 20);
    int d = client(x, PROXY_PORT_RO);
    send_startup(d);
    int ud = accept_up(x, 0, 2000);
    assert_true(ud >= 0);
    close(ud);
    close(d);
    /* no fallback: held */
    x->cfg.ro_fallback_leader = false;
    fwd_set_config(x->f, &x->cfg);
    d = client(x, PROXY_PORT_RO);
    send_startup(d);
    pump(x, 50);
    assert_int_equal(x->f->st[PROXY_PORT_RO].held, 1);
    close(d);
    for (int i = 0; i < 4; i++) {
        close(c[i]);
        close(u[i]);
    }
}

static void test_many_connections_no_leak(void **state)
{
    struct fx *x = *state;
    start(x);
    route(x, 0, 1, 0, 0);
    size_t before = count_fds();
    for (int i = 0; i < 1000; i++) {
        int c = client(x, i % 3 ? PROXY_PORT_RW : PROXY_PORT_RO);
        if (i % 2)
            send_startup(c);
        int u = i % 2 ? accept_up(x, 0, 2000) : -1;
        assert_true(i % 2 == 0 || u >= 0);
        close(c);
        if (u >= 0) {
            assert_true(wait_eof(x, u, 2000));
            close(u);
        }
        loop_run_once(x->l, 0);
    }
    pump(x, 50);
    assert_int_equal(fwd_connections(x->f), 0);
    assert_int_equal(x->f->pool.in_use, 0);
    assert_int_equal(x->f->small.in_use, 0);
    assert_int_equal(count_fds(), before);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_relay_and_key),
        T(test_held_then_served),
        T(test_hold_timeout_startup),
        T(test_hold_timeout_ssl),
        T(test_hold_timeout_zero_refuses_at_once),
        T(test_gssenc_refused_then_ssl_held),
        T(test_silent_client_closed),
        T(test_bad_first_packet),
        T(test_connection_limit),
        T(test_leader_change_closes_sessions),
        T(test_unanswered_startup_rerouted),
        T(test_cancel_routed_by_key),
        T(test_backpressure_bounded),
        T(test_server_closes_mid_packet),
        T(test_server_dies_mid_first_error),
        T(test_refused_57p03_rerouted),
        T(test_other_first_error_relayed),
        T(test_ssl_refused_then_57p03_rerouted),
        T(test_refusals_bounded_by_hold_timeout),
        T(test_startup_too_long),
        T(test_held_clients_use_small_chunks),
        T(test_connect_failure_held_and_retried),
        T(test_ro_least_connections_and_fallback),
        T(test_many_connections_no_leak),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
