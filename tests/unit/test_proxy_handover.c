/* Unit tests of the forwarder at a change of leader: sessions closed, unanswered startups and
 * 57P0x refusals sent to the next server, a draining leader's sessions kept and new ones held. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proxy_fixture.h"

static void test_leader_change_closes_sessions(void **state)
{
    struct fx *x = *state;
    int c, u;
    uint8_t b[128];
    leader_session(x, &c, &u);
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
    int c, u;
    leader_ssl_session(x, &c, &u);
    uint8_t b[128];
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

/* SSLRequest answered 'N' by a server that then refuses the StartupMessage with 57P03: the
 * client keeps its 'N' and the next server gets the StartupMessage alone. */
static void test_ssl_refused_then_57p03_rerouted(void **state)
{
    struct fx *x = *state;
    int c, u;
    leader_ssl_session(x, &c, &u);
    uint8_t b[PGP_ERROR_MAX], want[64];
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

/* Another error (bad password, unknown database) is the client's business: relayed. */
static void test_other_first_error_relayed(void **state)
{
    struct fx *x = *state;
    int c, u;
    leader_session(x, &c, &u);
    uint8_t err[PGP_ERROR_MAX];
    size_t en = pgp_error_response(err, sizeof(err), "3D000", "database does not exist");
    send_all(u, err, en);
    close(u);
    expect_error(x, c, "3D000");
    close(c);
}

/* A leader that starts handing over (draining): its established sessions go on (a client
 * mid-authentication is not cut off), new clients are held; the next leader then gets the held
 * client and the old sessions are closed. */
static void test_draining_keeps_sessions_holds_new(void **state)
{
    struct fx *x = *state;
    int a, ua;
    uint8_t b[128];
    leader_session(x, &a, &ua);
    size_t n = server_hello(b, 7, 9);
    send_all(ua, b, n);
    assert_int_equal(recv_some(x, a, b, n, 2000, NULL), n);
    route_ex(x, 0, 1, 0, 0, true);
    /* the session still relays both ways */
    send_all(ua, "x", 1);
    assert_int_equal(recv_some(x, a, b, 1, 2000, NULL), 1);
    assert_int_equal(b[0], 'x');
    send_all(a, "q", 1);
    assert_int_equal(recv_some(x, ua, b, 1, 2000, NULL), 1);
    assert_int_equal(b[0], 'q');
    /* a new client is held, not sent to the draining leader */
    int c = client(x, PROXY_PORT_RW);
    send_startup(c);
    assert_int_equal(accept_up(x, 0, 300), -1);
    assert_int_equal(x->f->st[PROXY_PORT_RW].held, 1);
    struct msg_proxy_stats st;
    fwd_stats(x->f, &st);
    assert_int_equal(st.has_leader, 0);
    /* the next leader: the old session is closed, the held client served there */
    route(x, 1, 2, 0, 0);
    assert_true(wait_eof(x, a, 1000));
    assert_true(wait_eof(x, ua, 1000));
    int uc = accept_up(x, 1, 2000);
    assert_true(uc >= 0);
    assert_int_equal(recv_some(x, uc, b, startup(b), 2000, NULL), startup(b));
    assert_int_equal(x->f->st[PROXY_PORT_RW].held, 0);
    close(a);
    close(ua);
    close(c);
    close(uc);
}

/* A startup the draining leader has not answered yet goes back to holding (its upstream leg is
 * closed) and is replayed to the next leader, invisibly to the client. */
static void test_draining_unanswered_replayed_to_next_leader(void **state)
{
    struct fx *x = *state;
    int c, u;
    uint8_t b[128];
    leader_session(x, &c, &u);
    route_ex(x, 0, 1, 0, 0, true);
    assert_true(wait_eof(x, u, 1000));
    bool eof = false;
    assert_int_equal(recv_some(x, c, b, 1, 200, &eof), 0);
    assert_false(eof);
    route(x, 1, 2, 0, 0);
    int u2 = accept_up(x, 1, 2000);
    assert_true(u2 >= 0);
    assert_int_equal(recv_some(x, u2, b, startup(b), 2000, NULL), startup(b));
    size_t n = server_hello(b, 3, 4);
    send_all(u2, b, n);
    assert_int_equal(recv_some(x, c, b, n, 2000, NULL), n);
    close(c);
    close(u);
    close(u2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_leader_change_closes_sessions),
        T(test_unanswered_startup_rerouted),
        T(test_refused_57p03_rerouted),
        T(test_ssl_refused_then_57p03_rerouted),
        T(test_refusals_bounded_by_hold_timeout),
        T(test_server_dies_mid_first_error),
        T(test_other_first_error_relayed),
        T(test_draining_keeps_sessions_holds_new),
        T(test_draining_unanswered_replayed_to_next_leader),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
