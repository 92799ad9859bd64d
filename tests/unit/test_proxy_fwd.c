/* Unit tests for the forwarder engine over loopback sockets: relay, holding, timeouts, limits,
 * leader changes, cancel routing, backpressure and peers that go away. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proxy_fixture.h"

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
    int c, u;
    uint8_t b[128];
    leader_session(x, &c, &u);
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
        T(test_cancel_routed_by_key),
        T(test_backpressure_bounded),
        T(test_server_closes_mid_packet),
        T(test_startup_too_long),
        T(test_held_clients_use_small_chunks),
        T(test_connect_failure_held_and_retried),
        T(test_ro_least_connections_and_fallback),
        T(test_many_connections_no_leak),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
