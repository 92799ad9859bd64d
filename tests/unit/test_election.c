/* Unit tests of the pure election decision: every transition-table row, outcomes, deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/dcs/dyncfg.h"
#include "agent/ha/election.h"
#include "agent/settings.h"

enum { TTL = 10000, LOOP = 1000, MARGIN = 2000, LEASE = 0x77, OLD_LEASE = 0x55, T0 = 100000 };

static struct elect_config cfg(bool nofailover)
{
    struct elect_config c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "n1");
    c.nofailover = nofailover;
    c.t = (struct elect_timings){
        .ttl_ms = TTL, .loop_wait_ms = LOOP, .retry_timeout_ms = 3000, .margin_ms = MARGIN};
    return c;
}

/* A follower with a fresh lease (keepalive sent at T0), a valid and fresh view with our member
 * key in place, no leader, and nothing noted yet. */
static void follower(struct elect_local *l, struct elect_view *v)
{
    struct elect_timings t = cfg(false).t;
    elect_local_init(l, &t, T0);
    l->state = ELECT_FOLLOWER;
    l->lease_id = LEASE;
    l->lease_ttl_s = 10;
    l->lease_sent_ms = T0;
    l->deadline_ms = T0 + TTL - MARGIN;
    l->next_lease_ms = T0 + LOOP;
    l->next_read_ms = T0 + LOOP;
    l->noted = true;
    memset(v, 0, sizeof(*v));
    v->valid = true;
    v->fresh = true;
    v->member_ok = true;
    v->has_config = true;
    v->status_ok = true;
}

static void set_leader(struct elect_view *v, const char *name, int64_t lease, int64_t rev)
{
    v->has_leader = true;
    snprintf(v->leader, sizeof(v->leader), "%s", name);
    v->leader_lease = lease;
    v->leader_create_rev = rev;
}

/* Our leadership of term 42 under our lease. */
static void leader(struct elect_local *l, struct elect_view *v)
{
    follower(l, v);
    l->state = ELECT_LEADER;
    l->term = 42;
    snprintf(l->noted_leader, sizeof(l->noted_leader), "n1");
    set_leader(v, "n1", LEASE, 42);
}

/* ---- the table, row by row ---- */

enum scen_kind {
    K_FENCE_DEADLINE,
    K_FENCE_PENDING,
    K_RELEASE,
    K_STEP_DOWN_OTHER,
    K_STEP_DOWN_DELETED,
    K_STEP_DOWN_OTHER_LEASE,
    K_ABANDON,
    K_REVOKE_FOLLOWER,
    K_REVOKE_INIT,
    K_GRANT,
    K_GRANT_NOT_YET,
    K_KEEPALIVE_FOLLOWER,
    K_KEEPALIVE_LEADER,
    K_READ_INVALID,
    K_READ_STALE,
    K_READ_NOT_YET,
    K_PUT_MEMBER,
    K_ADOPT,
    K_TAKEOVER,
    K_NO_TAKEOVER_ABANDONED,
    K_NO_TAKEOVER_NOFAILOVER,
    K_NOTE_NEW_LEADER,
    K_NOTE_KEY_GONE,
    K_RACE,
    K_NO_RACE_NOFAILOVER,
    K_NO_RACE_LEASE_EXPIRED,
    K_NO_RACE_INVALID_VIEW,
    K_WRITE_CONFIG,
    K_WRITE_STATUS,
    K_LEADER_IDLE,
    K_FOLLOWER_IDLE,
    K_STALL_FENCES_FIRST,
    K_STOPPED,
};

struct scenario {
    enum scen_kind kind;
    enum elect_action want;
    const char *name;
};

static const struct scenario scenarios[] = {
    {K_FENCE_DEADLINE, ELECT_ACT_FENCE, "leader at its deadline fences"},
    {K_FENCE_PENDING, ELECT_ACT_FENCE, "leader with a fence request fences"},
    {K_RELEASE, ELECT_ACT_RELEASE, "leader on shutdown releases"},
    {K_STEP_DOWN_OTHER, ELECT_ACT_STEP_DOWN, "key held by another member"},
    {K_STEP_DOWN_DELETED, ELECT_ACT_STEP_DOWN, "key deleted"},
    {K_STEP_DOWN_OTHER_LEASE, ELECT_ACT_STEP_DOWN, "key has our name under another lease"},
    {K_ABANDON, ELECT_ACT_ABANDON, "fenced abandons its lease"},
    {K_REVOKE_FOLLOWER, ELECT_ACT_REVOKE, "follower on shutdown revokes"},
    {K_REVOKE_INIT, ELECT_ACT_REVOKE, "init on shutdown stops"},
    {K_GRANT, ELECT_ACT_GRANT, "no lease grants"},
    {K_GRANT_NOT_YET, ELECT_ACT_NONE, "grant retry not due"},
    {K_KEEPALIVE_FOLLOWER, ELECT_ACT_KEEPALIVE, "follower keepalive due"},
    {K_KEEPALIVE_LEADER, ELECT_ACT_KEEPALIVE, "leader keepalive due"},
    {K_READ_INVALID, ELECT_ACT_READ, "no view yet"},
    {K_READ_STALE, ELECT_ACT_READ, "watch down"},
    {K_READ_NOT_YET, ELECT_ACT_NONE, "stale view, read not due"},
    {K_PUT_MEMBER, ELECT_ACT_PUT_MEMBER, "member key outdated"},
    {K_ADOPT, ELECT_ACT_ADOPT, "key ours under our lease"},
    {K_TAKEOVER, ELECT_ACT_TAKEOVER, "key ours under a previous process's lease"},
    {K_NO_TAKEOVER_ABANDONED, ELECT_ACT_NONE, "never take back a fenced lease's key"},
    {K_NO_TAKEOVER_NOFAILOVER, ELECT_ACT_NONE, "nofailover never takes over"},
    {K_NOTE_NEW_LEADER, ELECT_ACT_NOTE_LEADER, "another leader appears"},
    {K_NOTE_KEY_GONE, ELECT_ACT_NOTE_LEADER, "the leader key disappears"},
    {K_RACE, ELECT_ACT_RACE, "no leader and eligible races"},
    {K_NO_RACE_NOFAILOVER, ELECT_ACT_NONE, "nofailover never races"},
    {K_NO_RACE_LEASE_EXPIRED, ELECT_ACT_NONE, "no race on a lease past its deadline"},
    {K_NO_RACE_INVALID_VIEW, ELECT_ACT_NONE, "no race without a view"},
    {K_WRITE_CONFIG, ELECT_ACT_WRITE_CONFIG, "leader writes a missing config"},
    {K_WRITE_STATUS, ELECT_ACT_WRITE_STATUS, "leader writes an outdated status"},
    {K_LEADER_IDLE, ELECT_ACT_NONE, "renewed leader stays leader"},
    {K_FOLLOWER_IDLE, ELECT_ACT_NONE, "follower of a live leader waits"},
    {K_STALL_FENCES_FIRST, ELECT_ACT_FENCE, "after a stall the fence comes before anything"},
    {K_STOPPED, ELECT_ACT_NONE, "stopped does nothing"},
};

static struct elect_decision run(enum scen_kind k)
{
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    uint64_t now = T0 + 10;
    follower(&l, &v);
    switch (k) {
    case K_FENCE_DEADLINE:
        leader(&l, &v);
        now = l.deadline_ms;
        break;
    case K_FENCE_PENDING:
        leader(&l, &v);
        l.fence_pending = ELECT_FENCE_SUPERVISOR;
        break;
    case K_RELEASE:
        leader(&l, &v);
        l.shutdown = true;
        break;
    case K_STEP_DOWN_OTHER:
        leader(&l, &v);
        set_leader(&v, "n2", 0x99, 50);
        break;
    case K_STEP_DOWN_DELETED:
        leader(&l, &v);
        v.has_leader = false;
        break;
    case K_STEP_DOWN_OTHER_LEASE:
        leader(&l, &v);
        v.leader_lease = 0x99;
        break;
    case K_ABANDON:
        leader(&l, &v);
        l.state = ELECT_FENCED;
        now = l.deadline_ms + 5000;
        break;
    case K_REVOKE_FOLLOWER:
        l.shutdown = true;
        break;
    case K_REVOKE_INIT:
        l.state = ELECT_INIT;
        l.lease_id = 0;
        l.shutdown = true;
        break;
    case K_GRANT:
        elect_local_init(&l, &c.t, T0);
        break;
    case K_GRANT_NOT_YET:
        elect_local_init(&l, &c.t, T0);
        l.next_lease_ms = T0 + 500;
        break;
    case K_KEEPALIVE_FOLLOWER:
        now = l.next_lease_ms;
        set_leader(&v, "n2", 0x99, 50);
        break;
    case K_KEEPALIVE_LEADER:
        leader(&l, &v);
        now = l.next_lease_ms;
        break;
    case K_READ_INVALID:
        v.valid = false;
        l.next_lease_ms = T0 + 5000;
        now = l.next_read_ms;
        break;
    case K_READ_STALE:
        v.fresh = false;
        l.next_lease_ms = T0 + 5000;
        now = l.next_read_ms;
        break;
    case K_READ_NOT_YET:
        v.fresh = false;
        set_leader(&v, "n2", 0x99, 50);
        snprintf(l.noted_leader, sizeof(l.noted_leader), "n2");
        break;
    case K_PUT_MEMBER:
        v.member_ok = false;
        break;
    case K_ADOPT:
        set_leader(&v, "n1", LEASE, 42);
        break;
    case K_TAKEOVER:
        set_leader(&v, "n1", OLD_LEASE, 42);
        break;
    case K_NO_TAKEOVER_ABANDONED:
        set_leader(&v, "n1", OLD_LEASE, 42);
        l.abandoned_lease = OLD_LEASE;
        snprintf(l.noted_leader, sizeof(l.noted_leader), "n1");
        break;
    case K_NO_TAKEOVER_NOFAILOVER:
        c.nofailover = true;
        set_leader(&v, "n1", OLD_LEASE, 42);
        snprintf(l.noted_leader, sizeof(l.noted_leader), "n1");
        break;
    case K_NOTE_NEW_LEADER:
        set_leader(&v, "n2", 0x99, 50);
        snprintf(l.noted_leader, sizeof(l.noted_leader), "n3");
        break;
    case K_NOTE_KEY_GONE:
        snprintf(l.noted_leader, sizeof(l.noted_leader), "n2");
        break;
    case K_RACE:
        break;
    case K_NO_RACE_NOFAILOVER:
        c.nofailover = true;
        break;
    case K_NO_RACE_LEASE_EXPIRED:
        now = l.deadline_ms;
        l.next_lease_ms = now + 100; /* a keepalive retry is scheduled */
        l.next_read_ms = now + 100;
        break;
    case K_NO_RACE_INVALID_VIEW:
        v.valid = false;
        break;
    case K_WRITE_CONFIG:
        leader(&l, &v);
        v.has_config = false;
        break;
    case K_WRITE_STATUS:
        leader(&l, &v);
        v.status_ok = false;
        break;
    case K_LEADER_IDLE:
        leader(&l, &v);
        break;
    case K_FOLLOWER_IDLE:
        set_leader(&v, "n2", 0x99, 50);
        snprintf(l.noted_leader, sizeof(l.noted_leader), "n2");
        break;
    case K_STALL_FENCES_FIRST:
        /* SIGSTOP longer than the TTL: every timer is late, the keepalive is overdue, the cache
         * still shows our key. The first decision must be the fence. */
        leader(&l, &v);
        now = l.deadline_ms + 7000;
        v.member_ok = false;
        v.status_ok = false;
        break;
    case K_STOPPED:
        l.state = ELECT_STOPPED;
        l.shutdown = true;
        v.valid = false;
        break;
    }
    return elect_decide(&c, &v, &l, now);
}

static void test_every_row(void **state)
{
    (void)state;
    size_t nrules;
    const struct elect_rule *rules = elect_rules(&nrules);
    bool hit[32] = {false};
    assert_true(nrules <= 32);
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        struct elect_decision d = run(scenarios[i].kind);
        if (d.action != scenarios[i].want)
            fail_msg("%s: got %s (rule \"%s\"), want %s", scenarios[i].name,
                     elect_action_name(d.action), d.rule, elect_action_name(scenarios[i].want));
        for (size_t r = 0; r < nrules; r++) {
            if (d.action != ELECT_ACT_NONE && strcmp(rules[r].name, d.rule) == 0)
                hit[r] = true;
        }
    }
    for (size_t r = 0; r < nrules; r++) {
        if (!hit[r] && !elect_action_is_pg(rules[r].action)) /* test_election_pg.c */
            fail_msg("transition-table row \"%s\" is not covered", rules[r].name);
    }
}

static void test_fence_reasons(void **state)
{
    (void)state;
    assert_int_equal(run(K_FENCE_DEADLINE).fence_reason, ELECT_FENCE_DEADLINE);
    assert_int_equal(run(K_FENCE_PENDING).fence_reason, ELECT_FENCE_SUPERVISOR);
    assert_int_equal(run(K_STALL_FENCES_FIRST).fence_reason, ELECT_FENCE_DEADLINE);
}

/* ---- outcomes, as sequences ---- */

/* Decide, check the action, apply the result. */
static void expect(const struct elect_config *c, struct elect_local *l, const struct elect_view *v,
                   uint64_t now, enum elect_action want, const struct elect_result *r)
{
    struct elect_decision d = elect_decide(c, v, l, now);
    if (d.action != want)
        fail_msg("state %s: got %s (rule \"%s\"), want %s", elect_state_name(l->state),
                 elect_action_name(d.action), d.rule, elect_action_name(want));
    elect_apply(c, l, &d, v, r, now);
}

static void test_start_race_win_and_renew(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v = {0};
    elect_local_init(&l, &c.t, T0);
    /* no lease: grant; the deadline counts from when the grant was SENT */
    struct elect_result r = {.ok = true, .sent_ms = T0, .lease_id = LEASE, .lease_ttl_s = 10};
    expect(&c, &l, &v, T0 + 30, ELECT_ACT_GRANT, &r);
    assert_int_equal(l.state, ELECT_FOLLOWER);
    assert_int_equal(l.deadline_ms, T0 + TTL - MARGIN);
    assert_int_equal(l.next_lease_ms, T0 + LOOP);
    /* the watch's first read arrives: no leader, member key missing */
    v.valid = v.fresh = v.has_config = v.status_ok = true;
    expect(&c, &l, &v, T0 + 40, ELECT_ACT_PUT_MEMBER, &(struct elect_result){.ok = true});
    v.member_ok = true;
    expect(&c, &l, &v, T0 + 41, ELECT_ACT_NOTE_LEADER, NULL);
    assert_true(l.noted);
    assert_string_equal(l.noted_leader, "");
    expect(&c, &l, &v, T0 + 42, ELECT_ACT_RACE,
           &(struct elect_result){.ok = true, .won = true, .term = 7});
    assert_int_equal(l.state, ELECT_LEADER);
    assert_int_equal(l.term, 7);
    assert_string_equal(l.noted_leader, "n1");
    set_leader(&v, "n1", LEASE, 7);
    expect(&c, &l, &v, T0 + 43, ELECT_ACT_NONE, NULL);
    /* renewal every loop_wait moves the deadline to the new send time */
    r = (struct elect_result){.ok = true, .sent_ms = T0 + LOOP + 3, .lease_ttl_s = 10};
    expect(&c, &l, &v, T0 + LOOP + 3, ELECT_ACT_KEEPALIVE, &r);
    assert_int_equal(l.deadline_ms, T0 + LOOP + 3 + TTL - MARGIN);
    assert_int_equal(l.next_lease_ms, T0 + 2 * LOOP + 3);
    expect(&c, &l, &v, T0 + LOOP + 20, ELECT_ACT_NONE, NULL);
    assert_int_equal(l.state, ELECT_LEADER);
}

static void test_race_lost_follows(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    expect(&c, &l, &v, T0 + 5, ELECT_ACT_RACE, &(struct elect_result){.ok = true, .won = false});
    assert_int_equal(l.state, ELECT_FOLLOWER);
    set_leader(&v, "n2", 0x99, 9); /* the failure branch read the winner */
    expect(&c, &l, &v, T0 + 6, ELECT_ACT_NOTE_LEADER, NULL);
    assert_string_equal(l.noted_leader, "n2");
    expect(&c, &l, &v, T0 + 7, ELECT_ACT_NONE, NULL);
}

static void test_grant_failure_retries_after_loop_wait(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v = {0};
    elect_local_init(&l, &c.t, T0);
    expect(&c, &l, &v, T0, ELECT_ACT_GRANT, &(struct elect_result){.ok = false});
    assert_int_equal(l.state, ELECT_INIT);
    expect(&c, &l, &v, T0 + LOOP - 1, ELECT_ACT_NONE, NULL);
    expect(&c, &l, &v, T0 + LOOP, ELECT_ACT_GRANT, NULL);
}

static void test_keepalive_failure_then_fence(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    uint64_t deadline = l.deadline_ms;
    /* etcd unreachable: keepalives fail, the deadline does not move */
    uint64_t now = l.next_lease_ms;
    while (now < deadline) {
        expect(&c, &l, &v, now, ELECT_ACT_KEEPALIVE, &(struct elect_result){.ok = false});
        assert_int_equal(l.deadline_ms, deadline);
        assert_true(l.next_lease_ms > now);
        now = l.next_lease_ms;
    }
    expect(&c, &l, &v, deadline, ELECT_ACT_FENCE, NULL);
    assert_int_equal(l.state, ELECT_FENCED);
    assert_int_equal(l.fence_reason, ELECT_FENCE_DEADLINE);
    expect(&c, &l, &v, deadline + 1, ELECT_ACT_ABANDON, &(struct elect_result){.ok = true});
    assert_int_equal(l.state, ELECT_INIT);
    assert_int_equal(l.lease_id, 0);
    assert_int_equal(l.abandoned_lease, LEASE);
    assert_int_equal(l.term, 0);
    /* etcd back: a new lease; our old key (still in the cache) is neither refreshed, adopted
     * nor taken over: the node waits as a follower for the key to expire */
    struct elect_result g = {
        .ok = true, .sent_ms = deadline + 50, .lease_id = 0x88, .lease_ttl_s = 10};
    expect(&c, &l, &v, deadline + 50, ELECT_ACT_GRANT, &g);
    assert_int_equal(l.state, ELECT_FOLLOWER);
    v.member_ok = true;
    expect(&c, &l, &v, deadline + 60, ELECT_ACT_NONE, NULL);
    /* the old key expires: race again like anyone else */
    v.has_leader = false;
    expect(&c, &l, &v, deadline + 70, ELECT_ACT_NOTE_LEADER, NULL);
    expect(&c, &l, &v, deadline + 71, ELECT_ACT_RACE, NULL);
}

static void test_lease_lost_as_leader_fences(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    expect(&c, &l, &v, l.next_lease_ms, ELECT_ACT_KEEPALIVE,
           &(struct elect_result){.lease_lost = true});
    assert_int_equal(l.state, ELECT_LEADER);
    struct elect_decision d = elect_decide(&c, &v, &l, l.next_lease_ms + 1);
    assert_int_equal(d.action, ELECT_ACT_FENCE);
    assert_int_equal(d.fence_reason, ELECT_FENCE_LEASE_LOST);
}

static void test_lease_lost_as_follower_regrants(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    set_leader(&v, "n2", 0x99, 5);
    snprintf(l.noted_leader, sizeof(l.noted_leader), "n2");
    expect(&c, &l, &v, l.next_lease_ms, ELECT_ACT_KEEPALIVE,
           &(struct elect_result){.lease_lost = true});
    assert_int_equal(l.state, ELECT_INIT);
    assert_int_equal(l.lease_id, 0);
    struct elect_result g = {.ok = true, .sent_ms = T0 + LOOP, .lease_id = 0x88, .lease_ttl_s = 10};
    expect(&c, &l, &v, T0 + LOOP, ELECT_ACT_GRANT, &g);
    /* the member key is under the old lease: re-put under the new one */
    v.member_ok = false;
    expect(&c, &l, &v, T0 + LOOP + 1, ELECT_ACT_PUT_MEMBER, &(struct elect_result){.ok = true});
    /* a put that finds the lease gone starts over too */
    expect(&c, &l, &v, T0 + LOOP + 2, ELECT_ACT_PUT_MEMBER,
           &(struct elect_result){.lease_lost = true});
    assert_int_equal(l.state, ELECT_INIT);
}

static void test_shutdown_sequences(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    l.shutdown = true;
    expect(&c, &l, &v, T0 + 5, ELECT_ACT_RELEASE, &(struct elect_result){.ok = true, .won = true});
    assert_int_equal(l.state, ELECT_FOLLOWER);
    v.has_leader = false;
    expect(&c, &l, &v, T0 + 6, ELECT_ACT_REVOKE, &(struct elect_result){.ok = true});
    assert_int_equal(l.state, ELECT_STOPPED);
    expect(&c, &l, &v, T0 + 7, ELECT_ACT_NONE, NULL);

    /* a release etcd did not answer leaves the leader in place (the deadline still rules) */
    leader(&l, &v);
    l.shutdown = true;
    expect(&c, &l, &v, T0 + 5, ELECT_ACT_RELEASE, &(struct elect_result){.ok = false});
    assert_int_equal(l.state, ELECT_LEADER);
    expect(&c, &l, &v, l.deadline_ms, ELECT_ACT_FENCE, NULL);

    /* a leader past its deadline at shutdown fences first and never touches the key */
    leader(&l, &v);
    l.shutdown = true;
    expect(&c, &l, &v, l.deadline_ms + 1, ELECT_ACT_FENCE, NULL);
    expect(&c, &l, &v, l.deadline_ms + 2, ELECT_ACT_ABANDON, &(struct elect_result){.ok = true});
    assert_int_equal(l.state, ELECT_STOPPED);
}

static void test_supervisor_fence(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    /* another term, or a deadline older than ours (renewed since): stale */
    assert_false(elect_on_supervisor_fence(&l, 41, l.deadline_ms));
    assert_false(elect_on_supervisor_fence(&l, 42, l.deadline_ms - 1));
    assert_int_equal(l.fence_pending, ELECT_FENCE_NONE);
    /* the deadline we still have: applies, and the next decision is the fence */
    assert_true(elect_on_supervisor_fence(&l, 42, l.deadline_ms));
    struct elect_decision d = elect_decide(&c, &v, &l, T0 + 20);
    assert_int_equal(d.action, ELECT_ACT_FENCE);
    assert_int_equal(d.fence_reason, ELECT_FENCE_SUPERVISOR);
    elect_apply(&c, &l, &d, &v, NULL, T0 + 20);
    assert_int_equal(l.state, ELECT_FENCED);
    assert_int_equal(l.fence_pending, ELECT_FENCE_NONE);
    /* a follower ignores it */
    follower(&l, &v);
    assert_false(elect_on_supervisor_fence(&l, 0, l.deadline_ms));
}

static void test_adopt_and_takeover(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    set_leader(&v, "n1", LEASE, 42);
    expect(&c, &l, &v, T0 + 5, ELECT_ACT_ADOPT, NULL);
    assert_int_equal(l.state, ELECT_LEADER);
    assert_int_equal(l.term, 42);

    follower(&l, &v);
    set_leader(&v, "n1", OLD_LEASE, 42);
    expect(&c, &l, &v, T0 + 5, ELECT_ACT_TAKEOVER,
           &(struct elect_result){.ok = true, .won = false});
    assert_int_equal(l.state, ELECT_FOLLOWER);
    expect(&c, &l, &v, T0 + 6, ELECT_ACT_TAKEOVER,
           &(struct elect_result){.ok = true, .won = true, .term = 42});
    assert_int_equal(l.state, ELECT_LEADER);
    assert_int_equal(l.term, 42);

    /* never adopt with a lease past its deadline */
    follower(&l, &v);
    set_leader(&v, "n1", LEASE, 42);
    snprintf(l.noted_leader, sizeof(l.noted_leader), "n1");
    l.next_lease_ms = l.next_read_ms = l.deadline_ms + 100;
    expect(&c, &l, &v, l.deadline_ms, ELECT_ACT_NONE, NULL);
}

static void test_step_down_then_race_again(void **state)
{
    (void)state;
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    v.has_leader = false; /* deleted by an operator */
    expect(&c, &l, &v, T0 + 5, ELECT_ACT_STEP_DOWN, NULL);
    assert_int_equal(l.state, ELECT_FOLLOWER);
    assert_int_equal(l.term, 0);
    expect(&c, &l, &v, T0 + 6, ELECT_ACT_NOTE_LEADER, NULL);
    expect(&c, &l, &v, T0 + 7, ELECT_ACT_RACE, NULL);
}

/* ---- arithmetic ---- */

static void test_deadline_arithmetic(void **state)
{
    (void)state;
    /* sent-based: sent + ttl - margin */
    assert_int_equal(elect_deadline(1000, 10000, 10, 2000), 9000);
    /* the shorter of the configured and the lease's TTL */
    assert_int_equal(elect_deadline(1000, 10000, 5, 2000), 4000);
    assert_int_equal(elect_deadline(1000, 4500, 5, 2000), 3500);
    /* unknown lease TTL: the configured one */
    assert_int_equal(elect_deadline(1000, 10000, 0, 2000), 9000);
    /* a margin that eats the TTL: the deadline is the send time itself */
    assert_int_equal(elect_deadline(1000, 2000, 2, 2000), 1000);
    assert_int_equal(elect_deadline(1000, 2000, 2, 5000), 1000);
}

static void test_late_timer_after_stall(void **state)
{
    (void)state;
    /* A keepalive sent at S and answered 6 s later (the process was stopped in between)
     * renews nothing beyond S + ttl - margin: at the answer the deadline has passed. */
    struct elect_config c = cfg(false);
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    uint64_t sent = l.next_lease_ms;
    uint64_t answer = sent + TTL - MARGIN + 1;
    expect(&c, &l, &v, answer, ELECT_ACT_FENCE, NULL); /* checked before any keepalive */
    leader(&l, &v);
    struct elect_result r = {.ok = true, .sent_ms = sent, .lease_ttl_s = 10};
    expect(&c, &l, &v, sent, ELECT_ACT_KEEPALIVE, &r);
    assert_int_equal(l.deadline_ms, sent + TTL - MARGIN);
    expect(&c, &l, &v, answer, ELECT_ACT_FENCE, NULL);
}

static void test_margin(void **state)
{
    (void)state;
    assert_int_equal(elect_margin(10000, 1000, 2000), 2000);
    assert_int_equal(elect_margin(5000, 1000, 2000), 2000);
    /* not below ttl - loop_wait (a short dynamic ttl): half of it */
    assert_int_equal(elect_margin(3000, 1000, 2000), 1000);
    assert_int_equal(elect_margin(1000, 1000, 2000), 0);
}

static void test_timings(void **state)
{
    (void)state;
    struct pgw_ha_settings ha = {
        .ttl_ms = 4500, .loop_wait_ms = 500, .retry_timeout_ms = 1500, .fencing_margin_ms = 2000};
    int64_t ttl, lw, rt;
    elect_config_seconds(&ha, &ttl, &lw, &rt);
    assert_int_equal(ttl, 5);
    assert_int_equal(lw, 1);
    assert_int_equal(rt, 1);
    struct elect_timings t = elect_timings_compute(&ha, NULL);
    assert_int_equal(t.ttl_ms, 4500);
    assert_int_equal(t.loop_wait_ms, 500);
    assert_int_equal(t.margin_ms, 2000);

    struct dcs_config dyn;
    dcs_config_defaults(&dyn);
    /* what we would write: the local milliseconds stay */
    dyn.ttl = 5;
    dyn.loop_wait = 1;
    dyn.retry_timeout = 1;
    t = elect_timings_compute(&ha, &dyn);
    assert_int_equal(t.ttl_ms, 4500);
    assert_int_equal(t.loop_wait_ms, 500);
    /* someone else's values win */
    dyn.ttl = 30;
    dyn.loop_wait = 10;
    dyn.retry_timeout = 10;
    t = elect_timings_compute(&ha, &dyn);
    assert_int_equal(t.ttl_ms, 30000);
    assert_int_equal(t.loop_wait_ms, 10000);
    assert_int_equal(t.retry_timeout_ms, 10000);
    assert_int_equal(t.margin_ms, 2000);
    /* a dynamic ttl too short for the local margin clamps it */
    dyn.ttl = 3;
    dyn.loop_wait = 2;
    t = elect_timings_compute(&ha, &dyn);
    assert_int_equal(t.ttl_ms, 3000);
    assert_int_equal(t.loop_wait_ms, 2000);
    assert_int_equal(t.margin_ms, 500);

    assert_int_equal(elect_grant_ttl_s(4500), 5);
    assert_int_equal(elect_grant_ttl_s(10000), 10);
    assert_int_equal(elect_grant_ttl_s(0), 1);
    ha.loop_wait_ms = 2500;
    ha.retry_timeout_ms = 3000;
    elect_config_seconds(&ha, &ttl, &lw, &rt);
    assert_int_equal(lw, 2);
    assert_int_equal(rt, 3);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(elect_state_name(ELECT_LEADER), "leader");
    assert_string_equal(elect_action_name(ELECT_ACT_RACE), "race");
    assert_string_equal(elect_action_name(ELECT_ACT_WRITE_STATUS), "write_status");
    assert_string_equal(elect_fence_reason_name(ELECT_FENCE_LEASE_LOST), "lease lost");
    assert_string_equal(elect_state_name((enum elect_state)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row),
        cmocka_unit_test(test_fence_reasons),
        cmocka_unit_test(test_start_race_win_and_renew),
        cmocka_unit_test(test_race_lost_follows),
        cmocka_unit_test(test_grant_failure_retries_after_loop_wait),
        cmocka_unit_test(test_keepalive_failure_then_fence),
        cmocka_unit_test(test_lease_lost_as_leader_fences),
        cmocka_unit_test(test_lease_lost_as_follower_regrants),
        cmocka_unit_test(test_shutdown_sequences),
        cmocka_unit_test(test_supervisor_fence),
        cmocka_unit_test(test_adopt_and_takeover),
        cmocka_unit_test(test_step_down_then_race_again),
        cmocka_unit_test(test_deadline_arithmetic),
        cmocka_unit_test(test_late_timer_after_stall),
        cmocka_unit_test(test_margin),
        cmocka_unit_test(test_timings),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
