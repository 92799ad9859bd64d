/* Unit tests of the supervisor-side fence and the CLOCK_BOOTTIME deadline timer on a real loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/ha/boottimer.h"
#include "agent/ha/supfence.h"
#include "agent/msgtypes.h"
#include "platform/clock.h"
#include "platform/loop.h"

enum { GUARD_MS = 20000, MAX_SENT = 8 };

struct sent {
    uint8_t dst;
    uint16_t type;
    union {
        struct msg_route route;
        struct msg_fence fence;
    };
};

struct rig {
    struct loop *loop;
    struct supfence *f;
    struct sent sent[MAX_SENT];
    int n;
    int fail_with; /* what send returns (0 = delivered) */
};

static int fake_send(void *arg, uint8_t dst, uint16_t type, const void *payload, uint32_t len)
{
    struct rig *r = arg;
    if (r->n < MAX_SENT) {
        struct sent *s = &r->sent[r->n++];
        memset(s, 0, sizeof(*s));
        s->dst = dst;
        s->type = type;
        if (type == MSG_ROUTE && len == sizeof(s->route))
            memcpy(&s->route, payload, len);
        if (type == MSG_FENCE && len == sizeof(s->fence))
            memcpy(&s->fence, payload, len);
    }
    return r->fail_with;
}

static void stop_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    loop_stop(l);
}

static int setup(void **state)
{
    static struct rig r;
    memset(&r, 0, sizeof(r));
    r.loop = loop_new();
    assert_non_null(r.loop);
    r.f = supfence_new(r.loop, fake_send, &r);
    assert_non_null(r.f);
    *state = &r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    supfence_free(r->f);
    loop_free(r->loop);
    return 0;
}

/* Runs the loop for ms (bounded). */
static void run_for(struct rig *r, uint64_t ms)
{
    loop_add_timer(r->loop, ms, 0, stop_cb, NULL);
    uint64_t guard = loop_add_timer(r->loop, GUARD_MS, 0, stop_cb, NULL);
    loop_run(r->loop);
    loop_cancel_timer(r->loop, guard);
}

static struct msg_lease lease(int64_t term, uint64_t deadline, bool leader)
{
    struct msg_lease m;
    memset(&m, 0, sizeof(m));
    m.term = term;
    m.deadline_boot_ms = deadline;
    m.leader = leader ? 1 : 0;
    return m;
}

static void test_fences_at_deadline(void **state)
{
    struct rig *r = *state;
    uint64_t t0 = clock_boot_ms();
    struct msg_lease m = lease(42, t0 + 80, true);
    supfence_on_lease(r->f, &m);
    assert_true(supfence_armed(r->f));
    run_for(r, 40);
    assert_int_equal(supfence_count(r->f), 0);
    assert_int_equal(r->n, 0);
    run_for(r, 200);
    uint64_t t1 = clock_boot_ms();
    assert_int_equal(supfence_count(r->f), 1);
    assert_false(supfence_armed(r->f));
    assert_true(t1 >= t0 + 80);
    /* the proxy gets "no leader" first, then ha is told */
    assert_int_equal(r->n, 2);
    assert_int_equal(r->sent[0].dst, EP_PROXY);
    assert_int_equal(r->sent[0].type, MSG_ROUTE);
    assert_int_equal(r->sent[0].route.has_leader, 0);
    assert_int_equal(r->sent[1].dst, EP_HA);
    assert_int_equal(r->sent[1].type, MSG_FENCE);
    assert_int_equal(r->sent[1].fence.term, 42);
    assert_int_equal(r->sent[1].fence.deadline_boot_ms, t0 + 80);
    /* once only */
    run_for(r, 50);
    assert_int_equal(supfence_count(r->f), 1);
}

static void test_renewals_keep_it_quiet(void **state)
{
    struct rig *r = *state;
    for (int i = 0; i < 6; i++) {
        struct msg_lease m = lease(7, clock_boot_ms() + 60, true);
        supfence_on_lease(r->f, &m);
        run_for(r, 30);
    }
    assert_int_equal(supfence_count(r->f), 0);
    /* leadership given up: disarmed, no fence even long after */
    struct msg_lease off = lease(7, 0, false);
    supfence_on_lease(r->f, &off);
    assert_false(supfence_armed(r->f));
    run_for(r, 120);
    assert_int_equal(supfence_count(r->f), 0);
    assert_int_equal(r->n, 0);
}

static void test_deadline_already_passed(void **state)
{
    struct rig *r = *state;
    uint64_t now = clock_boot_ms();
    struct msg_lease m = lease(3, now > 5 ? now - 5 : 0, true);
    supfence_on_lease(r->f, &m);
    assert_int_equal(supfence_count(r->f), 1);
    assert_false(supfence_armed(r->f));
    /* a renewal after a fence re-arms (a legitimate renewal proves the lease never expired) */
    struct msg_lease fresh = lease(3, clock_boot_ms() + 50, true);
    supfence_on_lease(r->f, &fresh);
    assert_true(supfence_armed(r->f));
    run_for(r, 150);
    assert_int_equal(supfence_count(r->f), 2);
}

static void test_send_failures_do_not_stop_the_fence(void **state)
{
    struct rig *r = *state;
    r->fail_with = -32; /* the proxy and ha are gone */
    struct msg_lease m = lease(9, clock_boot_ms() + 10, true);
    supfence_on_lease(r->f, &m);
    run_for(r, 100);
    assert_int_equal(supfence_count(r->f), 1);
    assert_int_equal(r->n, 2);
}

/* ---- boottimer ---- */

static void count_cb(void *arg)
{
    (*(int *)arg)++;
}

static void test_boottimer(void **state)
{
    struct rig *r = *state;
    int fired = 0;
    struct boottimer *t = boottimer_new(r->loop, count_cb, &fired);
    assert_non_null(t);
    assert_int_equal(boottimer_expiry(t), 0);
    uint64_t at = clock_boot_ms() + 40;
    assert_true(boottimer_arm(t, at));
    assert_int_equal(boottimer_expiry(t), at);
    run_for(r, 10);
    assert_int_equal(fired, 0);
    run_for(r, 100);
    assert_int_equal(fired, 1);
    assert_true(clock_boot_ms() >= at);
    assert_int_equal(boottimer_expiry(t), 0);
    /* re-arming replaces; disarming cancels */
    assert_true(boottimer_arm(t, clock_boot_ms() + 500));
    assert_true(boottimer_arm(t, clock_boot_ms() + 20));
    run_for(r, 100);
    assert_int_equal(fired, 2);
    assert_true(boottimer_arm(t, clock_boot_ms() + 20));
    boottimer_disarm(t);
    run_for(r, 80);
    assert_int_equal(fired, 2);
    /* a deadline in the past fires at once (late, not lost) */
    assert_true(boottimer_arm(t, clock_boot_ms() - 1000));
    run_for(r, 20);
    assert_int_equal(fired, 3);
    boottimer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fences_at_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renewals_keep_it_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_already_passed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_failures_do_not_stop_the_fence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boottimer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
