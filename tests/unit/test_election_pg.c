/* Unit tests of the PostgreSQL rows of the pure election table: bootstrap, clone, promote... */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/ha/election.h"

#include "election_fixture.h"

/* ---- data directory of another cluster ---- */

static void test_foreign_datadir_blocks_start_and_race(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    struct elect_config c = cfg();
    follower(&l, &v);
    v.initialize_sysid = 7000000000000000001ULL;
    v.pg = (struct elect_pg){
        .known = true, .datadir_ok = true, .slots_ok = true, .sysid = 7000000000000000002ULL};
    assert_true(elect_pg_foreign(&c, &v));
    /* no leader: neither started nor racing */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* a running server of that data dir is not adopted for the race either */
    v.pg.running = v.pg.ready = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.pg.running = v.pg.ready = false;
    /* nor does it start as a standby under a leader */
    set_leader(&v, &l, "n2", 0x99);
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* nor take over a key with our name, nor publish the member key */
    set_leader(&v, &l, "n1", OLD_LEASE);
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.member_ok = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* the same data dir with the cluster's identifier starts (as before) */
    v.has_leader = false;
    l.noted_leader[0] = '\0';
    v.member_ok = true;
    v.pg.sysid = v.initialize_sysid;
    assert_false(elect_pg_foreign(&c, &v));
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_START_STANDBY);
    /* an unknown identifier (either side) is not a mismatch */
    v.pg.sysid = 0;
    assert_false(elect_pg_foreign(&c, &v));
    /* without PostgreSQL management there is nothing to compare */
    v.pg.sysid = 7000000000000000002ULL;
    c.manage_pg = false;
    assert_false(elect_pg_foreign(&c, &v));
}

/* ---- bootstrap ---- */

static void test_bootstrap_sequence(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.has_initialize = v.initialize_set = false;
    v.pg = (struct elect_pg){.known = true, .datadir_empty = true, .slots_ok = true};
    apply(&l, &v, ELECT_ACT_INIT_RACE, true, true);
    assert_true(l.init_won);
    v.has_initialize = true; /* "" while bootstrapping */
    apply(&l, &v, ELECT_ACT_PG_BOOTSTRAP, true, false);
    v.pg = (struct elect_pg){.known = true,
                             .datadir_ok = true,
                             .running = true,
                             .ready = true,
                             .slots_ok = true,
                             .lsn = 1000};
    apply(&l, &v, ELECT_ACT_WRITE_INITIALIZE, true, false);
    assert_false(l.init_won);
    v.initialize_set = true;
    apply(&l, &v, ELECT_ACT_RACE, true, true); /* a primary races without peers' checks */
    assert_int_equal(l.state, ELECT_LEADER);
}

static void test_bootstrap_race_lost_waits_then_clones(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.has_initialize = v.initialize_set = false;
    v.pg = (struct elect_pg){.known = true, .datadir_empty = true, .slots_ok = true};
    apply(&l, &v, ELECT_ACT_INIT_RACE, true, false);
    assert_false(l.init_won);
    v.has_initialize = true; /* someone else is bootstrapping */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.initialize_set = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE); /* no leader to clone yet */
    set_leader(&v, &l, "n2", 0x99);
    apply(&l, &v, ELECT_ACT_PG_CLONE, false, false); /* slot not there yet: retry later */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    l.pg_next_ms = 0;
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_CLONE);
    v.leader_conn = false; /* no address for the leader: cannot clone */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
}

static void test_nofailover_never_bootstraps(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.has_initialize = v.initialize_set = false;
    v.pg = (struct elect_pg){.known = true, .datadir_empty = true};
    struct elect_config c = cfg();
    c.nofailover = true;
    assert_int_equal(elect_decide(&c, &v, &l, T0 + 10).action, ELECT_ACT_NONE);
}

static void test_unmanaged_is_election_only(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.pg = (struct elect_pg){0}; /* nothing observed */
    struct elect_config c = cfg();
    c.manage_pg = false;
    assert_int_equal(elect_decide(&c, &v, &l, T0 + 10).action, ELECT_ACT_RACE);
    c.manage_pg = true; /* managed: no race before PostgreSQL is known healthy */
    assert_int_equal(elect_decide(&c, &v, &l, T0 + 10).action, ELECT_ACT_NONE);
}

/* ---- replicas ---- */

static void test_replica_follow_and_start(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    replica(&l, &v);
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.pg.following_leader = false;
    apply(&l, &v, ELECT_ACT_PG_FOLLOW, true, false);
    v.pg.following_leader = true;
    v.pg.running = v.pg.ready = false;
    apply(&l, &v, ELECT_ACT_PG_START_STANDBY, true, false);
}

static void test_leader_slots(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.pg.slots_ok = false;
    apply(&l, &v, ELECT_ACT_PG_SLOTS, true, false);
}

/* ---- failover ---- */

static void test_failover_race_and_promote(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    replica(&l, &v);
    v.has_leader = false;
    v.leader_conn = false;
    l.noted_leader[0] = '\0';
    v.has_optime = true;
    v.optime = v.pg.lsn + MIB; /* exactly at the maximum lag: still eligible */
    apply(&l, &v, ELECT_ACT_RACE, true, true);
    assert_int_equal(l.state, ELECT_LEADER);
    set_leader(&v, &l, "n1", LEASE);
    apply(&l, &v, ELECT_ACT_PG_PROMOTE, true, false);
}

static void test_no_race_when_lagging_or_behind_a_peer(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v);
    v.has_optime = true;
    v.optime = v.pg.lsn + MIB + 1;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.optime = v.pg.lsn;
    v.peer_max_lsn = v.pg.lsn + 1;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.peer_max_lsn = v.pg.lsn; /* a tie: both race, etcd picks */
    assert_int_equal(decide(&l, &v), ELECT_ACT_RACE);
    v.pg.ready = false; /* not answering */
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    v.pg.ready = true;
    v.initialize_set = false;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
}

/* ---- crash of PostgreSQL on the leader ---- */

static void test_leader_pg_crash_releases_when_replica_caught_up(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    v.pg.running = v.pg.ready = false;
    v.peer_max_lsn = v.pg.lsn - MIB;
    apply(&l, &v, ELECT_ACT_PG_RELEASE, true, true);
    assert_int_equal(l.state, ELECT_FOLLOWER);
    assert_true(l.no_race_until_ms >= T0 + TTL);
    /* it waits for the new leader to follow it (a former primary is checked first) ... */
    v.has_leader = false;
    l.noted_leader[0] = '\0';
    v.pg.was_primary = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
    /* ... and with none after a while, starts read-only, not racing while the replicas
     * take over */
    l.rejoin_wait_ms = T0;
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_START_STANDBY);
    v.pg.running = v.pg.ready = v.pg.in_recovery = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
}

static void test_leader_pg_crash_restarts_without_caught_up_replica(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    v.pg.running = v.pg.ready = false;
    v.peer_max_lsn = v.pg.lsn - MIB - 1;
    apply(&l, &v, ELECT_ACT_PG_START_PRIMARY, false, false);
    assert_int_equal(l.state, ELECT_LEADER);
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE); /* retried after loop_wait */
    v.peer_max_lsn = -1;                              /* no replica at all */
    l.pg_next_ms = 0;
    apply(&l, &v, ELECT_ACT_PG_START_PRIMARY, true, false);
    /* a release that etcd did not answer keeps the leadership */
    v.peer_max_lsn = v.pg.lsn;
    apply(&l, &v, ELECT_ACT_PG_RELEASE, false, false);
    assert_int_equal(l.state, ELECT_LEADER);
}

/* ---- agent restart: adoption ---- */

static void test_restart_adopts_running_primary(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    follower(&l, &v); /* the new ha process: a new lease */
    v.pg.in_recovery = false;
    set_leader(&v, &l, "n1", OLD_LEASE);
    /* our running primary and our key under the old process's lease: take it back, no demote */
    apply(&l, &v, ELECT_ACT_TAKEOVER, true, true);
    assert_int_equal(l.state, ELECT_LEADER);
    v.leader_lease = LEASE;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE); /* no restart, no promote */
}

/* ---- fencing and demotion ---- */

static void test_fence_demotes(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    l.fence_pending = ELECT_FENCE_SUPERVISOR;
    apply(&l, &v, ELECT_ACT_FENCE, true, false);
    assert_true(l.demote_pending);
    apply(&l, &v, ELECT_ACT_PG_DEMOTE, true, false);
    assert_false(l.demote_pending);
    v.pg.in_recovery = true;
    apply(&l, &v, ELECT_ACT_ABANDON, true, false);
    assert_int_equal(l.state, ELECT_INIT);
}

static void test_fence_demote_failure_still_abandons(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    l.deadline_ms = T0;
    apply(&l, &v, ELECT_ACT_FENCE, true, false);
    apply(&l, &v, ELECT_ACT_PG_DEMOTE, false, false);
    apply(&l, &v, ELECT_ACT_ABANDON, true, false);
    l.pg_next_ms = 0; /* demotion still pending in INIT */
    assert_int_equal(decide(&l, &v), ELECT_ACT_PG_DEMOTE);
}

static void test_primary_under_another_leader_demotes(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    replica(&l, &v);
    v.pg.in_recovery = false;
    apply(&l, &v, ELECT_ACT_PG_DEMOTE, true, false);
    /* a running primary with no leader at all (bootstrap before the race) is left alone */
    follower(&l, &v);
    v.pg.in_recovery = false;
    v.initialize_set = false;
    v.has_initialize = true;
    assert_int_equal(decide(&l, &v), ELECT_ACT_NONE);
}

static void test_step_down_demotes(void **state)
{
    (void)state;
    struct elect_local l;
    struct elect_view v;
    leader(&l, &v);
    set_leader(&v, &l, "n2", 0x99);
    apply(&l, &v, ELECT_ACT_STEP_DOWN, true, false);
    assert_true(l.demote_pending);
    apply(&l, &v, ELECT_ACT_PG_DEMOTE, true, false);
}

/* Every PostgreSQL row of the table is exercised above. */
static void test_every_pg_row_named(void **state)
{
    (void)state;
    size_t n;
    const struct elect_rule *rules = elect_rules(&n);
    size_t pg = 0;
    for (size_t i = 0; i < n; i++)
        pg += elect_action_is_pg(rules[i].action);
    assert_int_equal(pg, ELECT_ACT_CLEAR_FAILOVER - ELECT_ACT_PG_DEMOTE + 1);
    assert_string_equal(elect_action_name(ELECT_ACT_PG_SLOTS), "pg_slots");
    assert_string_equal(elect_action_name(ELECT_ACT_INIT_RACE), "init_race");
    assert_false(elect_action_is_pg(ELECT_ACT_RACE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_sequence),
        cmocka_unit_test(test_bootstrap_race_lost_waits_then_clones),
        cmocka_unit_test(test_nofailover_never_bootstraps),
        cmocka_unit_test(test_unmanaged_is_election_only),
        cmocka_unit_test(test_replica_follow_and_start),
        cmocka_unit_test(test_leader_slots),
        cmocka_unit_test(test_failover_race_and_promote),
        cmocka_unit_test(test_no_race_when_lagging_or_behind_a_peer),
        cmocka_unit_test(test_leader_pg_crash_releases_when_replica_caught_up),
        cmocka_unit_test(test_leader_pg_crash_restarts_without_caught_up_replica),
        cmocka_unit_test(test_restart_adopts_running_primary),
        cmocka_unit_test(test_fence_demotes),
        cmocka_unit_test(test_fence_demote_failure_still_abandons),
        cmocka_unit_test(test_primary_under_another_leader_demotes),
        cmocka_unit_test(test_step_down_demotes),
        cmocka_unit_test(test_every_pg_row_named),
        cmocka_unit_test(test_foreign_datadir_blocks_start_and_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
