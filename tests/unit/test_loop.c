/* Unit tests for platform/loop: fds, timer order and cancel, signals, stop, many timers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "platform/clock.h"
#include "platform/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Safety net: every loop_run in these tests is bounded by a guard timer (generous for qemu). */
enum { GUARD_MS = 20000 };

static void guard_fired(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    *(bool *)arg = true;
    loop_stop(l);
}

static void stop_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    loop_stop(l);
}

/* ---- fds ---- */

struct fd_rec {
    int calls;
    int fd;
    uint32_t events;
    char buf[16];
    ssize_t nread;
};

static void fd_read_cb(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    struct fd_rec *r = arg;
    r->calls++;
    r->fd = fd;
    r->events = events;
    r->nread = read(fd, r->buf, sizeof(r->buf));
}

static void test_fd_readiness(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    struct fd_rec r = {0};
    assert_int_equal(loop_add_fd(l, p[0], LOOP_READ, fd_read_cb, &r), 0);
    assert_int_equal(loop_add_fd(l, p[0], LOOP_READ, fd_read_cb, &r), -EEXIST);
    assert_int_equal(loop_add_fd(l, -1, LOOP_READ, fd_read_cb, &r), -EBADF);

    /* Nothing written: no callback. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.calls, 0);

    assert_int_equal(write(p[1], "hi", 2), 2);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.fd, p[0]);
    assert_true(r.events & LOOP_READ);
    assert_false(r.events & LOOP_ERR);
    assert_int_equal(r.nread, 2);
    assert_memory_equal(r.buf, "hi", 2);

    /* Write interest on the write end via loop_mod_fd of a second registration. */
    struct fd_rec w = {0};
    assert_int_equal(loop_add_fd(l, p[1], 0, fd_read_cb, &w), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_mod_fd(l, p[1], LOOP_WRITE), 0);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(w.calls, 1);
    assert_true(w.events & LOOP_WRITE);
    assert_int_equal(loop_del_fd(l, p[1]), 0);
    assert_int_equal(loop_mod_fd(l, p[1], LOOP_READ), -ENOENT);

    /* Closing the writer: hangup is reported as READ|ERR and read returns 0. */
    close(p[1]);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.events & (LOOP_READ | LOOP_ERR), LOOP_READ | LOOP_ERR);
    assert_int_equal(r.nread, 0);

    assert_int_equal(loop_del_fd(l, p[0]), 0);
    assert_int_equal(loop_del_fd(l, p[0]), -ENOENT);
    close(p[0]);
    loop_free(l);
}

/* Two pipes ready in the same batch: whichever callback runs first deletes the other fd. */
struct del_pair {
    int fds[2];
    int calls[2];
    int del_rc;
};

static void del_other_cb(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct del_pair *d = arg;
    int me = fd == d->fds[0] ? 0 : 1;
    d->calls[me]++;
    d->del_rc = loop_del_fd(l, d->fds[1 - me]);
}

static void test_del_fd_in_same_batch(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    int a[2], b[2];
    assert_int_equal(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(b, O_CLOEXEC | O_NONBLOCK), 0);
    struct del_pair d = {.fds = {a[0], b[0]}};
    assert_int_equal(loop_add_fd(l, a[0], LOOP_READ, del_other_cb, &d), 0);
    assert_int_equal(loop_add_fd(l, b[0], LOOP_READ, del_other_cb, &d), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "y", 1), 1);

    /* Both are ready before epoll_wait: one batch holds both events. */
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(d.calls[0] + d.calls[1], 1);
    assert_int_equal(d.del_rc, 0);
    /* The survivor keeps firing (level-triggered), the deleted one never does. */
    int survivor = d.calls[0] ? 0 : 1;
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(d.calls[survivor], 2);
    assert_int_equal(d.calls[1 - survivor], 0);

    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    loop_free(l);
}

/* Deleting, closing and re-registering the same fd number inside a batch: the stale event of
 * the old registration must not reach the new callback. */
struct reuse_ctx {
    int fds[2]; /* read ends, registered */
    int writers[2];
    int first_calls;
    int new_calls;
    int new_fd;
};

static void reuse_new_cb(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    struct reuse_ctx *c = arg;
    c->new_calls++;
}

static void reuse_first_cb(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct reuse_ctx *c = arg;
    c->first_calls++;
    int other = fd == c->fds[0] ? 1 : 0;
    int victim = c->fds[other];
    assert_int_equal(loop_del_fd(l, victim), 0);
    close(victim);
    close(c->writers[other]);
    /* The lowest free fd number is the one just closed: dup a readable fd into it. */
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, victim);
    assert_int_equal(nfd, victim);
    c->new_fd = nfd;
    assert_int_equal(loop_add_fd(l, nfd, LOOP_READ, reuse_new_cb, c), 0);
    /* Make this callback's own fd non-ready so only the new registration could fire later. */
    char buf[8];
    assert_true(read(fd, buf, sizeof(buf)) > 0);
    assert_int_equal(loop_del_fd(l, fd), 0);
}

static void test_fd_number_reuse_in_batch(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    int a[2], b[2];
    assert_int_equal(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(b, O_CLOEXEC | O_NONBLOCK), 0);
    struct reuse_ctx c = {.fds = {a[0], b[0]}, .writers = {a[1], b[1]}, .new_fd = -1};
    assert_int_equal(loop_add_fd(l, a[0], LOOP_READ, reuse_first_cb, &c), 0);
    assert_int_equal(loop_add_fd(l, b[0], LOOP_READ, reuse_first_cb, &c), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "y", 1), 1);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(c.first_calls, 1);
    assert_int_equal(c.new_calls, 0);
    /* The new registration watches a drained pipe: still nothing. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.new_calls, 0);
    int own = c.new_fd == a[0] ? b[0] : a[0];
    int own_w = c.new_fd == a[0] ? b[1] : a[1];
    assert_int_equal(write(own_w, "z", 1), 1);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(c.new_calls, 1);
    assert_int_equal(loop_del_fd(l, c.new_fd), 0);
    close(c.new_fd);
    close(own);
    close(own_w);
    loop_free(l);
}

/* ---- timers ---- */

struct order_rec {
    int order[8];
    int n;
    int expect;
};

struct order_arg {
    struct order_rec *rec;
    int tag;
};

static void order_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    struct order_arg *a = arg;
    a->rec->order[a->rec->n++] = a->tag;
    if (a->rec->n == a->rec->expect)
        loop_stop(l);
}

static void test_timers_deadline_order(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct order_rec rec = {.expect = 4};
    struct order_arg args[4] = {{&rec, 30}, {&rec, 10}, {&rec, 20}, {&rec, 0}};
    uint64_t start = clock_mono_ms();
    for (int i = 0; i < 4; i++)
        assert_true(loop_add_timer(l, (uint64_t)args[i].tag * 2, 0, order_cb, &args[i]) > 0);
    bool guard = false;
    assert_true(loop_add_timer(l, GUARD_MS, 0, guard_fired, &guard) > 0);
    assert_int_equal(loop_run(l), 0);
    assert_false(guard);
    assert_int_equal(rec.n, 4);
    assert_int_equal(rec.order[0], 0);
    assert_int_equal(rec.order[1], 10);
    assert_int_equal(rec.order[2], 20);
    assert_int_equal(rec.order[3], 30);
    /* The last one (60 ms) cannot have fired early. */
    assert_true(clock_mono_ms() - start >= 60);
    loop_free(l);
}

static void count_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    (*(int *)arg)++;
}

static void test_repeating_timer_count(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    int count = 0;
    uint64_t rep = loop_add_timer(l, 10, 10, count_cb, &count);
    assert_true(rep > 0);
    uint64_t first = loop_timer_deadline(l, rep);
    assert_true(first > 0);
    assert_true(loop_add_timer(l, 300, 0, stop_cb, NULL) > 0);
    assert_int_equal(loop_run(l), 0);
    /* 30 periods fit in 300 ms; never more (no bursts), loosely at least a few (slow qemu). */
    assert_in_range(count, 5, 30);
    /* No drift: the next deadline stays on the original 10 ms grid. */
    uint64_t next = loop_timer_deadline(l, rep);
    assert_true(next > first);
    assert_int_equal((next - first) % 10, 0);
    assert_true(loop_cancel_timer(l, rep));
    assert_false(loop_cancel_timer(l, rep));
    assert_int_equal(loop_timer_count(l), 0);
    loop_free(l);
}

/* A repeating timer whose callback blocks for several periods fires once, not in a burst. */
struct slow_ctx {
    int count;
};

static void slow_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct slow_ctx *c = arg;
    if (c->count++ == 0)
        usleep(55 * 1000);
}

static void test_repeating_timer_skips_missed(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct slow_ctx c = {0};
    uint64_t id = loop_add_timer(l, 0, 10, slow_cb, &c);
    uint64_t first = loop_timer_deadline(l, id);
    /* First iteration fires it once and sleeps 55 ms (5+ missed periods). */
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(c.count, 1);
    /* The missed periods are skipped: the next deadline is after the sleep, on the grid. */
    uint64_t next = loop_timer_deadline(l, id);
    assert_true(next >= first + 60);
    assert_int_equal((next - first) % 10, 0);
    /* And it then fires exactly once per iteration again. */
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(c.count, 2);
    assert_true(loop_timer_deadline(l, id) >= next + 10);
    assert_true(loop_cancel_timer(l, id));
    loop_free(l);
}

struct cancel_ctx {
    uint64_t self_id;
    uint64_t victim_id;
    int self_calls;
    int victim_calls;
    int canceller_calls;
    bool self_cancel_rc;
    bool victim_cancel_rc;
    bool own_oneshot_rc;
};

static void self_cancel_cb(struct loop *l, uint64_t id, void *arg)
{
    struct cancel_ctx *c = arg;
    assert_int_equal(id, c->self_id);
    c->self_calls++;
    c->self_cancel_rc = loop_cancel_timer(l, id);
}

static void victim_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    ((struct cancel_ctx *)arg)->victim_calls++;
}

static void canceller_cb(struct loop *l, uint64_t id, void *arg)
{
    struct cancel_ctx *c = arg;
    c->canceller_calls++;
    c->victim_cancel_rc = loop_cancel_timer(l, c->victim_id);
    /* Cancelling a one-shot timer from its own callback: harmless, reports nothing pending. */
    c->own_oneshot_rc = loop_cancel_timer(l, id);
}

static void test_cancel_from_callback(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct cancel_ctx c = {0};
    c.self_id = loop_add_timer(l, 5, 5, self_cancel_cb, &c);
    assert_true(loop_add_timer(l, 10, 0, canceller_cb, &c) > 0);
    /* Same deadline as the canceller but added later: it is still pending when cancelled. */
    c.victim_id = loop_add_timer(l, 10, 0, victim_cb, &c);
    assert_true(loop_add_timer(l, 80, 0, stop_cb, NULL) > 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.self_calls, 1);
    assert_true(c.self_cancel_rc);
    assert_int_equal(c.canceller_calls, 1);
    assert_true(c.victim_cancel_rc);
    assert_false(c.own_oneshot_rc);
    assert_int_equal(c.victim_calls, 0);
    assert_int_equal(loop_timer_count(l), 0);
    assert_false(loop_cancel_timer(l, c.victim_id));
    assert_false(loop_cancel_timer(l, 0));
    assert_false(loop_cancel_timer(l, 12345678));
    loop_free(l);
}

/* A callback adding a delay-0 timer: it fires on the next iteration, not the current one. */
struct chain_ctx {
    int fired;
    int readd;
};

static void chain_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    struct chain_ctx *c = arg;
    c->fired++;
    if (c->readd-- > 0)
        assert_true(loop_add_timer(l, 0, 0, chain_cb, c) > 0);
}

static void fd_adds_timer_cb(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    char b;
    assert_int_equal(read(fd, &b, 1), 1);
    assert_true(loop_add_timer(l, 0, 0, chain_cb, arg) > 0);
}

static void test_timer_added_in_callback_fires_next_iteration(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    /* A timer that keeps re-adding itself with delay 0 cannot starve the loop. */
    struct chain_ctx c = {.readd = 1000};
    assert_true(loop_add_timer(l, 0, 0, chain_cb, &c) > 0);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(c.fired, 1);
    assert_int_equal(loop_timer_count(l), 1);
    assert_int_equal(loop_run_once(l, 5000), 1);
    assert_int_equal(c.fired, 2);

    /* From an fd callback: not in the same iteration's timer pass either. */
    struct chain_ctx d = {.readd = 0};
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(loop_add_fd(l, p[0], LOOP_READ, fd_adds_timer_cb, &d), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    /* c's pending timer fires here too, d's new one does not. */
    assert_int_equal(loop_run_once(l, 5000), 2);
    assert_int_equal(c.fired, 3);
    assert_int_equal(d.fired, 0);
    assert_int_equal(loop_run_once(l, 5000), 2);
    assert_int_equal(d.fired, 1);
    assert_int_equal(c.fired, 4);
    loop_del_fd(l, p[0]);
    close(p[0]);
    close(p[1]);
    loop_free(l);
}

/* ---- signals and stop ---- */

struct sig_rec {
    int calls;
    int signo;
};

static void sig_cb(struct loop *l, int signo, void *arg)
{
    struct sig_rec *r = arg;
    r->calls++;
    r->signo = signo;
    loop_stop(l);
}

static void test_signal_delivery(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct sig_rec r1 = {0}, r2 = {0};
    assert_int_equal(loop_add_signal(l, SIGUSR1, sig_cb, &r1), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR2, sig_cb, &r2), 0);
    assert_int_equal(loop_add_signal(l, SIGKILL, sig_cb, &r1), -EINVAL);
    assert_int_equal(loop_add_signal(l, 0, sig_cb, &r1), -EINVAL);
    /* Blocked now: raise() leaves it pending for the signalfd instead of killing us. */
    sigset_t cur;
    assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
    assert_true(sigismember(&cur, SIGUSR1));
    assert_int_equal(raise(SIGUSR1), 0);
    bool guard = false;
    uint64_t g = loop_add_timer(l, GUARD_MS, 0, guard_fired, &guard);
    assert_int_equal(loop_run(l), 0);
    assert_false(guard);
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.signo, SIGUSR1);
    assert_int_equal(r2.calls, 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(loop_run(l), 0);
    assert_false(guard);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.signo, SIGUSR2);
    assert_int_equal(r1.calls, 1);
    assert_true(loop_cancel_timer(l, g));
    loop_free(l);
}

static void test_stop_ends_run(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    int ticks = 0;
    uint64_t start = clock_mono_ms();
    assert_true(loop_add_timer(l, 1, 1, count_cb, &ticks) > 0);
    assert_true(loop_add_timer(l, 30, 0, stop_cb, NULL) > 0);
    bool guard = false;
    uint64_t g = loop_add_timer(l, GUARD_MS, 0, guard_fired, &guard);
    assert_int_equal(loop_run(l), 0);
    uint64_t took = clock_mono_ms() - start;
    assert_false(guard);
    assert_true(took >= 30);
    assert_true(took < GUARD_MS);
    assert_true(ticks > 0);
    /* The stop request was consumed: the loop runs again until the next stop. */
    int before = ticks;
    assert_true(loop_add_timer(l, 20, 0, stop_cb, NULL) > 0);
    assert_int_equal(loop_run(l), 0);
    // cppcheck-suppress knownConditionTrueFalse ; count_cb increments ticks through a pointer
    assert_true(ticks > before);
    assert_true(loop_cancel_timer(l, g));
    loop_free(l);
}

/* ---- many timers ---- */

enum { MANY = 10000 };

struct many_ctx {
    uint64_t deadline[MANY];
    uint64_t ids[MANY];
    bool cancelled[MANY];
    int fired_idx[MANY];
    uint64_t fired_now[MANY];
    int nfired;
    int expect;
};

struct many_arg {
    struct many_ctx *c;
    int idx;
};

static void many_cb(struct loop *l, uint64_t id, void *arg)
{
    struct many_arg *a = arg;
    struct many_ctx *c = a->c;
    assert_int_equal(id, c->ids[a->idx]);
    assert_true(c->nfired < MANY);
    c->fired_idx[c->nfired] = a->idx;
    c->fired_now[c->nfired] = loop_now_ms(l);
    if (++c->nfired == c->expect)
        loop_stop(l);
}

/* Sorted by deadline, ties in the order they were added. */
static bool fired_in_order(const struct many_ctx *c, int prev, int cur)
{
    if (c->deadline[prev] != c->deadline[cur])
        return c->deadline[prev] < c->deadline[cur];
    return prev < cur;
}

static void test_many_timers_sorted(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    struct many_ctx *c = calloc(1, sizeof(*c));
    struct many_arg *args = calloc(MANY, sizeof(*args));
    assert_non_null(c);
    assert_non_null(args);
    srand(12345);
    for (int i = 0; i < MANY; i++) {
        args[i] = (struct many_arg){c, i};
        c->ids[i] = loop_add_timer(l, (uint64_t)(rand() % 300), 0, many_cb, &args[i]);
        assert_true(c->ids[i] > 0);
        c->deadline[i] = loop_timer_deadline(l, c->ids[i]);
        assert_true(c->deadline[i] > 0);
    }
    assert_int_equal(loop_timer_count(l), MANY);
    /* Cancel a third of them at random positions in the heap. */
    c->expect = MANY;
    for (int i = 0; i < MANY; i += 3) {
        assert_true(loop_cancel_timer(l, c->ids[i]));
        c->cancelled[i] = true;
        c->expect--;
    }
    assert_int_equal(loop_timer_count(l), (size_t)c->expect);
    bool guard = false;
    uint64_t g = loop_add_timer(l, GUARD_MS, 0, guard_fired, &guard);
    assert_int_equal(loop_run(l), 0);
    assert_false(guard);
    assert_int_equal(c->nfired, c->expect);
    for (int k = 0; k < c->nfired; k++) {
        int i = c->fired_idx[k];
        assert_false(c->cancelled[i]);
        assert_true(c->fired_now[k] >= c->deadline[i]);
        if (k > 0)
            assert_true(fired_in_order(c, c->fired_idx[k - 1], i));
    }
    assert_true(loop_cancel_timer(l, g));
    assert_int_equal(loop_timer_count(l), 0);
    free(args);
    free(c);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_readiness),
        cmocka_unit_test(test_del_fd_in_same_batch),
        cmocka_unit_test(test_fd_number_reuse_in_batch),
        cmocka_unit_test(test_timers_deadline_order),
        cmocka_unit_test(test_repeating_timer_count),
        cmocka_unit_test(test_repeating_timer_skips_missed),
        cmocka_unit_test(test_cancel_from_callback),
        cmocka_unit_test(test_timer_added_in_callback_fires_next_iteration),
        cmocka_unit_test(test_signal_delivery),
        cmocka_unit_test(test_stop_ends_run),
        cmocka_unit_test(test_many_timers_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
