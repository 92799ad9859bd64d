/* Fixtures shared by the unit tests of the PostgreSQL rows of the election table. */
#ifndef PGW_TEST_ELECTION_FIXTURE_H
#define PGW_TEST_ELECTION_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "agent/ha/election.h"

enum { TTL = 5000, LOOP = 1000, MARGIN = 2000, LEASE = 0x77, OLD_LEASE = 0x55, T0 = 100000 };
enum { MIB = 1 << 20 };

static inline struct elect_config cfg(void)
{
    struct elect_config c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "n1");
    c.t = (struct elect_timings){
        .ttl_ms = TTL, .loop_wait_ms = LOOP, .retry_timeout_ms = 2000, .margin_ms = MARGIN};
    c.manage_pg = true;
    c.max_lag = MIB;
    c.priority = 1;
    return c;
}

/* A follower with a fresh lease, a valid view with our member key, no leader, an initialized
 * cluster whose `initialize` is set, and a running standby at 100 MiB. */
static inline void follower(struct elect_local *l, struct elect_view *v)
{
    struct elect_timings t = cfg().t;
    elect_local_init(l, &t, T0);
    l->state = ELECT_FOLLOWER;
    l->lease_id = LEASE;
    l->lease_ttl_s = 5;
    l->lease_sent_ms = T0;
    l->deadline_ms = T0 + TTL - MARGIN;
    l->next_lease_ms = T0 + LOOP;
    l->next_read_ms = T0 + LOOP;
    l->noted = true;
    memset(v, 0, sizeof(*v));
    v->valid = v->fresh = v->member_ok = v->has_config = v->status_ok = true;
    v->has_initialize = v->initialize_set = true;
    v->peer_max_lsn = -1;
    v->sync_ok = v->params_ok = true;
    v->pg = (struct elect_pg){.known = true,
                              .datadir_ok = true,
                              .running = true,
                              .ready = true,
                              .in_recovery = true,
                              .slots_ok = true,
                              .lsn = 100 * (int64_t)MIB};
}

static inline void set_leader(struct elect_view *v, struct elect_local *l, const char *name,
                              int64_t lease)
{
    v->has_leader = true;
    snprintf(v->leader, sizeof(v->leader), "%s", name);
    v->leader_lease = lease;
    v->leader_create_rev = 42;
    v->leader_conn = strcmp(name, "n1") != 0;
    snprintf(l->noted_leader, sizeof(l->noted_leader), "%s", name);
}

/* A following standby of leader n2. */
static inline void replica(struct elect_local *l, struct elect_view *v)
{
    follower(l, v);
    set_leader(v, l, "n2", 0x99);
    v->pg.following_leader = true;
}

/* Our leadership with a running primary. */
static inline void leader(struct elect_local *l, struct elect_view *v)
{
    follower(l, v);
    l->state = ELECT_LEADER;
    l->term = 42;
    set_leader(v, l, "n1", LEASE);
    v->pg.in_recovery = false;
    v->has_optime = true;
    v->optime = v->pg.lsn;
}

static inline enum elect_action decide(const struct elect_local *l, const struct elect_view *v)
{
    struct elect_config c = cfg();
    return elect_decide(&c, v, l, T0 + 10).action;
}

static inline void apply(struct elect_local *l, const struct elect_view *v, enum elect_action a,
                         bool ok, bool won)
{
    struct elect_config c = cfg();
    struct elect_decision d = elect_decide(&c, v, l, T0 + 10);
    assert_int_equal(d.action, a);
    struct elect_result r = {.ok = ok, .won = won, .term = 50};
    elect_apply(&c, l, &d, v, &r, T0 + 10);
}

#endif
