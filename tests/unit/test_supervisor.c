/* Unit tests of the supervisor: the restart policy, and real forked children (restart, routing,
 * stop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/supervisor.h"

static const struct sup_policy policy = {.max_restarts = 3,
                                         .window_ms = 1000,
                                         .backoff_min_ms = 100,
                                         .backoff_max_ms = 800,
                                         .stable_ms = 5000};

static void test_policy_intensity(void **state)
{
    (void)state;
    struct sup_history h = {0};
    unsigned consecutive = 0;
    uint64_t delay = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            sup_policy_decide(&policy, &h, 100 + (uint64_t)i * 10, 0, &consecutive, &delay),
            SUP_RESTART);
    /* A fourth crash inside the window exceeds the intensity. */
    assert_int_equal(sup_policy_decide(&policy, &h, 200, 0, &consecutive, &delay), SUP_GIVE_UP);
    /* Once the window has passed, restarts are allowed again. */
    assert_int_equal(sup_policy_decide(&policy, &h, 1200, 0, &consecutive, &delay), SUP_RESTART);
}

static void test_policy_backoff(void **state)
{
    (void)state;
    struct sup_policy p = policy;
    p.max_restarts = 100;
    struct sup_history h = {0};
    unsigned consecutive = 0;
    uint64_t delay = 0;
    const uint64_t expect[] = {100, 200, 400, 800, 800};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        assert_int_equal(sup_policy_decide(&p, &h, 10 + i, 50, &consecutive, &delay), SUP_RESTART);
        assert_int_equal(delay, expect[i]);
    }
    /* A child that stayed up long enough starts over at the minimum backoff. */
    assert_int_equal(sup_policy_decide(&p, &h, 20, 6000, &consecutive, &delay), SUP_RESTART);
    assert_int_equal(delay, 100);
    assert_int_equal(consecutive, 1);
}

static void test_policy_window_is_sliding(void **state)
{
    (void)state;
    struct sup_history h = {0};
    unsigned consecutive = 0;
    uint64_t delay = 0;
    /* Crashes spaced wider than window/max never trip the limit. */
    for (uint64_t t = 0; t < 20000; t += 400)
        assert_int_equal(sup_policy_decide(&policy, &h, t, 0, &consecutive, &delay), SUP_RESTART);
}

/* ---- the runner, with real forked children ---- */
enum { T_HELLO = 1, T_PING = 2, T_PONG = 3 };
static const struct msg_spec specs[] = {
    {T_HELLO, "hello", 4, 4},
    {T_PING, "ping", 4, 4},
    {T_PONG, "pong", 4, 4},
};

struct app {
    int hellos;
    int pongs;
    pid_t first_pid;
    bool pid_changed;
    int stop_after_hellos;
};

/* Children never use cmocka assertions (they would unwind into the parent's copy of the test);
 * they exit with a distinctive status instead. */
static void send_hello(int fd, uint8_t id)
{
    int32_t pid = (int32_t)getpid();
    if (msg_send(fd, T_HELLO, id, 0, 1, &pid, sizeof(pid)) != 0)
        _exit(99);
}

static int crashing_main(void *app, int fd)
{
    (void)app;
    send_hello(fd, 1);
    return 3;
}

/* Waits for the supervisor to close our channel or for a SIGTERM (default action). */
static int wait_for_close(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return 1;
        char buf[64];
        if (recv(fd, buf, sizeof(buf), 0) == 0)
            return 0;
    }
}

static int idle_main(void *app, int fd)
{
    (void)app;
    send_hello(fd, 2);
    return wait_for_close(fd);
}

/* Child 1: says hello, sends a ping to child 2 and waits. Child 2 answers pings with a pong to
 * the supervisor. */
static int pinger_main(void *app, int fd)
{
    (void)app;
    send_hello(fd, 1);
    int32_t v = 42;
    if (msg_send(fd, T_PING, 1, 2, 2, &v, sizeof(v)) != 0)
        _exit(99);
    return wait_for_close(fd);
}

static int ponger_main(void *app, int fd)
{
    (void)app;
    send_hello(fd, 2);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        if (poll(&p, 1, -1) < 0)
            continue;
        struct msg_hdr h;
        int32_t v;
        int r = msg_recv(fd, specs, 3, &h, &v, sizeof(v));
        if (r == -EPIPE)
            return 0;
        if (r == (int)sizeof(v) && h.type == T_PING && h.src == 1) {
            v += 1;
            msg_send(fd, T_PONG, 2, 0, 3, &v, sizeof(v));
        }
    }
}

static void on_message(struct sup *s, const struct msg_hdr *hdr, const void *payload, void *arg)
{
    struct app *a = arg;
    int32_t v;
    memcpy(&v, payload, sizeof(v));
    if (hdr->type == T_HELLO && hdr->src == 1) {
        a->hellos++;
        if (a->first_pid == 0)
            a->first_pid = (pid_t)v;
        else if (a->first_pid != (pid_t)v)
            a->pid_changed = true;
        if (a->stop_after_hellos && a->hellos >= a->stop_after_hellos)
            kill(getpid(), SIGTERM);
    }
    if (hdr->type == T_PONG && hdr->src == 2 && v == 43) {
        a->pongs++;
        (void)s;
        kill(getpid(), SIGTERM);
    }
}

static struct sup_config runner_config(int max_restarts)
{
    struct sup_config c = {.policy = {.max_restarts = max_restarts,
                                      .window_ms = 60000,
                                      .backoff_min_ms = 1,
                                      .backoff_max_ms = 4,
                                      .stable_ms = 60000},
                           .shutdown_timeout_ms = 5000,
                           .specs = specs,
                           .nspecs = 3,
                           .hello_type = T_HELLO};
    return c;
}

static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_runner_gives_up_on_crash_loop(void **state)
{
    (void)state;
    struct app a = {0};
    const struct sup_child_spec kids[] = {{"crasher", 1, crashing_main}, {"idle", 2, idle_main}};
    struct sup_config cfg = runner_config(3);
    struct sup_hooks hooks = {.app = &a, .on_message = on_message};
    struct sup *s = sup_new(&cfg, &hooks, kids, 2);
    assert_non_null(s);
    assert_int_equal(sup_run(s), SUP_EXIT_INTENSITY);
    sup_free(s);
    /* The first start plus three restarts, each said hello from a new process. */
    assert_int_equal(a.hellos, 4);
    assert_true(a.pid_changed);
    assert_no_children();
}

static void test_runner_restarts_then_stops_cleanly(void **state)
{
    (void)state;
    struct app a = {.stop_after_hellos = 3};
    const struct sup_child_spec kids[] = {{"crasher", 1, crashing_main}, {"idle", 2, idle_main}};
    struct sup_config cfg = runner_config(10);
    struct sup_hooks hooks = {.app = &a, .on_message = on_message};
    struct sup *s = sup_new(&cfg, &hooks, kids, 2);
    assert_non_null(s);
    assert_int_equal(sup_run(s), 0);
    sup_free(s);
    assert_true(a.hellos >= 3);
    assert_no_children();
}

static void test_runner_routes_between_children(void **state)
{
    (void)state;
    struct app a = {0};
    const struct sup_child_spec kids[] = {{"pinger", 1, pinger_main}, {"ponger", 2, ponger_main}};
    struct sup_config cfg = runner_config(0);
    struct sup_hooks hooks = {.app = &a, .on_message = on_message};
    struct sup *s = sup_new(&cfg, &hooks, kids, 2);
    assert_non_null(s);
    assert_int_equal(sup_run(s), 0);
    sup_free(s);
    assert_int_equal(a.pongs, 1);
    assert_no_children();
}

static int stubborn_main(void *app, int fd)
{
    (void)app;
    signal(SIGTERM, SIG_IGN);
    send_hello(fd, 1);
    for (;;)
        pause();
    return 0;
}

static void on_ready_stop(struct sup *s, void *arg)
{
    (void)s;
    (void)arg;
    kill(getpid(), SIGTERM);
}

static void test_runner_kills_stubborn_child(void **state)
{
    (void)state;
    struct app a = {0};
    const struct sup_child_spec kids[] = {{"stubborn", 1, stubborn_main}};
    struct sup_config cfg = runner_config(0);
    cfg.shutdown_timeout_ms = 200;
    cfg.nspecs = 1;
    struct sup_hooks hooks = {.app = &a, .on_ready = on_ready_stop};
    struct sup *s = sup_new(&cfg, &hooks, kids, 1);
    assert_non_null(s);
    assert_int_equal(sup_run(s), 0);
    sup_free(s);
    assert_no_children();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_intensity),
        cmocka_unit_test(test_policy_backoff),
        cmocka_unit_test(test_policy_window_is_sliding),
        cmocka_unit_test(test_runner_gives_up_on_crash_loop),
        cmocka_unit_test(test_runner_restarts_then_stops_cleanly),
        cmocka_unit_test(test_runner_routes_between_children),
        cmocka_unit_test(test_runner_kills_stubborn_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
