/* Unit tests of the election table's switchover, rejoin, sync, pause, priority and parameter rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/ha/election.h"

#include "election_fixture.h"

static void request(struct elect_view *v, const char *from, const char *to)
{
    v->has_failover = true;
    v->failover_due = true;
    snprintf(v->failover_leader, sizeof(v->failover_leader), "%s", from);
    snprintf(v->failover_candidate, sizeof(v->failover_candidate), "%s", to);
}

/* ---- switchover, leader side ---- */

static void test_switchover_hands_over(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    request(&v, "n1", "n2");
    v.candidate_ok = true;
    apply(&l, &v, ELECT_ACT_PG_SWITCHOVER, true, true);
    assert_int_equal(l.state, ELECT_FOLLOWER);
    assert_true(l.rejoin_check);
    assert_true(l.rejoin_wait_ms > T0 + 10);
    assert_false(l.demote_pending);
    /* its PostgreSQL is down and no leader yet: it waits for the new one instead of starting */
    v.pg.running = v.pg.ready = false;
    v.pg.was_primary = true;
    v.has_leader = false;
    l.noted_leader[0] = '\0'; /* the deletion was noted */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* the new leader appears: divergence check, then follow */
    set_leader(&v, &l, "n2", 0x99);
    apply(&l, &v, ELECT_ACT_PG_REJOIN, true, false);
    assert_false(l.rejoin_check);
}

static void test_switchover_failure_keeps_leadership(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    request(&v, "", "");
    v.candidate_ok = true;
    apply(&l, &v, ELECT_ACT_PG_SWITCHOVER, false, false);
    assert_int_equal(l.state, ELECT_LEADER);
    assert_true(l.pg_next_ms > T0 + 10); /* not retried in a tight loop */
}

static void test_switchover_requests_cleared_or_waiting(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    /* no eligible candidate: cancelled */
    request(&v, "n1", "n3");
    assert_int_equal(decide(&l, &v), ELECT_ACT_CLEAR_FAILOVER);
    /* addressed to another leader: cleared */
    request(&v, "n9", "n3");
    v.candidate_ok = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_CLEAR_FAILOVER);
    /* we are the candidate (the switchover to us is done): cleared */
    request(&v, "n2", "n1");
    assert_int_equal(decide(&l, &v), ELECT_ACT_CLEAR_FAILOVER);
    /* scheduled in the future: nothing yet */
    request(&v, "n1", "n3");
    v.failover_due = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* scheduled and missed: cleared */
    v.failover_due = true;
    v.failover_stale = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_CLEAR_FAILOVER);
    /* paused: only a switchover to a named candidate */
    v.failover_stale = false;
    v.paused = true;
    request(&v, "n1", "");
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    request(&v, "n1", "n3");
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_SWITCHOVER);
}

/* ---- the race with a failover request ---- */

static void test_race_with_failover_request(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    l.leaderless_since_ms = T0; /* the key went a moment ago */
    v.has_optime = true;
    v.optime = v.pg.lsn;
    /* we are named: we race even though a peer published a higher position */
    request(&v, "n2", "n1");
    v.peer_max_lsn = v.pg.lsn + 100;
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
    /* ... but not before the old leader's shutdown checkpoint has arrived */
    v.optime = v.pg.lsn + 1;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.optime = v.pg.lsn;
    /* another node is named and able: we wait */
    v.peer_max_lsn = -1;
    request(&v, "n2", "n3");
    v.candidate_ok = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* the named node cannot: the usual rules */
    v.candidate_ok = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
    /* the old leader of a switchover to any does not race while someone else can */
    request(&v, "n1", "");
    v.candidate_ok = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* a TTL after the key went, the request no longer steers: the usual rules */
    request(&v, "n2", "n3");
    l.next_lease_ms = l.next_read_ms = l.deadline_ms = T0 + 10 * TTL;
    struct elect_config c = cfg();
    assert_int_equal(elect_decide(&c, &v, &l, T0 + TTL - 1).action, ELECT_ACT_NONE);
    assert_int_equal(elect_decide(&c, &v, &l, T0 + TTL).action, ELECT_ACT_RACE);
}

static void test_leader_key_gone_is_timed(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    replica(&l, &v);
    v.has_leader = false;
    apply(&l, &v, ELECT_ACT_NOTE_LEADER, true, false);
    assert_int_equal(l.leaderless_since_ms, T0 + 10);
}

/* ---- synchronous mode ---- */

static void test_sync_restricts_promotion(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.sync_mode = v.sync_restricts = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.sync_member = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
}

static void test_sync_leader_crash_releases_to_sync_standby(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    v.sync_mode = v.sync_restricts = v.sync_key_mine = v.sync_member = true;
    v.pg.running = v.pg.ready = false;
    v.peer_max_lsn = v.pg.lsn - 16 * MIB; /* its published position lags behind */
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_START_PRIMARY);
    v.sync_standby_up = true; /* but PostgreSQL confirmed it as synchronous */
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_RELEASE);
}

static void test_sync_leader_claims_key_then_promotes(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    v.pg.in_recovery = true; /* just won the race */
    v.sync_mode = true;
    v.sync_ok = false;
    apply(&l, &v, ELECT_ACT_SYNC, true, false);
    v.sync_key_mine = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_PROMOTE);
    v.pg.in_recovery = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_SYNC);
    v.sync_ok = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* sync mode off, leftovers to clear */
    v.sync_mode = false;
    v.sync_ok = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_SYNC);
}

/* ---- pause ---- */

static void test_pause_stops_automatic_actions(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.paused = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE); /* no failover */
    request(&v, "", "n1");
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE); /* a manual failover to us */
    v.has_failover = false;
    v.pg.in_recovery = false; /* our own primary, key expired while paused: take it back */
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
    /* a standby that stopped is not started */
    v.pg.in_recovery = true;
    v.pg.running = v.pg.ready = false;
    set_leader(&v, &l, "n2", 0x99);
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* the leader's crashed PostgreSQL is neither restarted nor released */
    leader(&l, &v);
    v.paused = true;
    v.pg.running = v.pg.ready = false;
    v.peer_max_lsn = v.pg.lsn;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
}

/* ---- rejoin ---- */

static void test_rejoin_of_a_former_primary(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.pg.running = v.pg.ready = false;
    v.pg.in_recovery = false;
    v.pg.was_primary = true;
    /* no leader, nothing released recently: start read-only and take part in the race */
    apply(&l, &v, ELECT_ACT_PG_START_STANDBY, true, false);
    assert_true(l.rejoin_check);
    /* running read-only, a leader shows up: check before following */
    v.pg.was_primary = false;
    v.pg.running = v.pg.ready = v.pg.in_recovery = true;
    set_leader(&v, &l, "n2", 0x99);
    apply(&l, &v, ELECT_ACT_PG_REJOIN, false, false);
    assert_true(l.rejoin_check);
    assert_true(l.rejoin_next_ms >= T0 + 10 + TTL); /* a failed rewind waits a TTL */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* ... but the race is not held up by it: the leader goes, we may take over */
    v.has_leader = false;
    apply(&l, &v, ELECT_ACT_NOTE_LEADER, true, false);
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
    /* a new leader: a new attempt at once */
    set_leader(&v, &l, "n3", 0x98);
    snprintf(l.noted_leader, sizeof(l.noted_leader), "n2");
    apply(&l, &v, ELECT_ACT_NOTE_LEADER, true, false);
    assert_int_equal(l.rejoin_next_ms, 0);
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_REJOIN);
}

static void test_standby_behind_new_timeline_checks_first(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    replica(&l, &v);
    v.pg.following_leader = false;
    v.pg.behind_timeline = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_REJOIN);
    v.pg.behind_timeline = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_FOLLOW);
}

static void test_release_and_demote_mark_for_rejoin(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    v.pg.running = v.pg.ready = false;
    v.peer_max_lsn = v.pg.lsn;
    apply(&l, &v, ELECT_ACT_PG_RELEASE, true, true);
    assert_true(l.rejoin_check);
    assert_true(l.rejoin_wait_ms > T0 + 10);
    assert_true(l.no_race_until_ms > T0 + 10);
    /* once another node leads, the hold-off on racing ends (it may become its sync standby
     * and the next candidate) */
    set_leader(&v, &l, "n2", 0x99);
    snprintf(l.noted_leader, sizeof(l.noted_leader), "%s", "");
    apply(&l, &v, ELECT_ACT_NOTE_LEADER, true, false);
    assert_int_equal(l.no_race_until_ms, 0);
    follower(&l, &v);
    set_leader(&v, &l, "n2", 0x99);
    v.pg.in_recovery = false;
    apply(&l, &v, ELECT_ACT_PG_DEMOTE, true, false);
    assert_true(l.rejoin_check);
}

/* ---- failover priority ---- */

static void test_priority_breaks_ties(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.peer_max_lsn = v.pg.lsn;
    v.peer_max_prio = 5;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.peer_max_prio = 1; /* same as ours: both may race, the txn decides */
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
    v.peer_max_lsn = v.pg.lsn - 1; /* ahead of a higher-priority peer: ours */
    v.peer_max_prio = 9;
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
}

/* ---- dynamic parameters ---- */

static void test_parameters_reapplied(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    replica(&l, &v);
    v.params_ok = false;
    apply(&l, &v, ELECT_ACT_PG_RECONFIGURE, true, false);
    v.pg.ready = false; /* not while it cannot be reloaded */
    v.pg.running = true;
    assert_int_not_equal(decide(&l, &v), ELECT_ACT_PG_RECONFIGURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switchover_hands_over),
        cmocka_unit_test(test_switchover_failure_keeps_leadership),
        cmocka_unit_test(test_switchover_requests_cleared_or_waiting),
        cmocka_unit_test(test_race_with_failover_request),
        cmocka_unit_test(test_leader_key_gone_is_timed),
        cmocka_unit_test(test_sync_restricts_promotion),
        cmocka_unit_test(test_sync_leader_claims_key_then_promotes),
        cmocka_unit_test(test_sync_leader_crash_releases_to_sync_standby),
        cmocka_unit_test(test_pause_stops_automatic_actions),
        cmocka_unit_test(test_rejoin_of_a_former_primary),
        cmocka_unit_test(test_standby_behind_new_timeline_checks_first),
        cmocka_unit_test(test_release_and_demote_mark_for_rejoin),
        cmocka_unit_test(test_priority_breaks_ties),
        cmocka_unit_test(test_parameters_reapplied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
