/* Leader election decision: a pure transition table over (etcd view, local state, timings, clock).
 */
#ifndef PGW_HA_ELECTION_H
#define PGW_HA_ELECTION_H

/*
 * Nothing here does I/O or reads a clock: the driver (agent/ha/elector.c) builds an elect_view
 * from its watch cache, calls elect_decide() with the CLOCK_BOOTTIME time, performs the one
 * action returned, and feeds the outcome back with elect_apply(). It repeats until the decision
 * is ELECT_ACT_NONE. So unit tests drive every transition without etcd.
 *
 * Fencing rule: the lease (and so the leader key under it) can only disappear from etcd after
 * sent + TTL, where `sent` is the moment the last successful grant/keepalive was SENT (etcd
 * starts its TTL when it receives the request, i.e. later). The leader stops acting as leader
 * at deadline = sent + TTL - margin, before any other node can win the key. Times are
 * CLOCK_BOOTTIME milliseconds: system-wide (the supervisor enforces the same deadline), never
 * affected by wall-clock jumps, and still counting while a process is stopped or the machine
 * is suspended.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/dcs/keys.h"

struct pgw_ha_settings;
struct dcs_config;

enum elect_state {
    ELECT_INIT = 0, /* no lease: grant one */
    ELECT_FOLLOWER, /* a lease and the member key; not the leader */
    ELECT_LEADER,   /* holds the leader key under our lease, deadline not passed */
    ELECT_FENCED,   /* was leader, stopped acting as one; the lease is to be abandoned */
    ELECT_STOPPED,  /* shut down: nothing more to do */
};

enum elect_action {
    ELECT_ACT_NONE = 0,
    ELECT_ACT_FENCE,        /* leader past its deadline (or lease lost, or fenced by the
                               supervisor): stop acting as leader at once, no I/O */
    ELECT_ACT_RELEASE,      /* shutdown as leader: delete the key only if it is still ours */
    ELECT_ACT_STEP_DOWN,    /* leader whose key is gone or someone else's: become follower */
    ELECT_ACT_ABANDON,      /* fenced: revoke the old lease (best effort) and never refresh it */
    ELECT_ACT_REVOKE,       /* shutdown as follower: revoke the lease (drops the member key) */
    ELECT_ACT_GRANT,        /* no lease: grant one (TTL = ttl) */
    ELECT_ACT_KEEPALIVE,    /* lease refresh due (every loop_wait) */
    ELECT_ACT_READ,         /* the watch cache is missing or stale: linearizable range read */
    ELECT_ACT_PUT_MEMBER,   /* members/<me> absent, outdated or under another lease */
    ELECT_ACT_ADOPT,        /* the key is ours under our lease (a race whose answer was lost) */
    ELECT_ACT_TAKEOVER,     /* the key has our name under a lease of a previous process:
                               txn value==me AND lease==that lease -> put under ours */
    ELECT_ACT_NOTE_LEADER,  /* the leader seen differs from the last one noted */
    ELECT_ACT_RACE,         /* no leader, eligible: txn create_revision(leader)==0 -> put */
    ELECT_ACT_WRITE_CONFIG, /* leader, `config` absent: write it from the local values */
    ELECT_ACT_WRITE_STATUS, /* leader, `status` differs from {"optime":..} */
    /* PostgreSQL management (only with elect_config.manage_pg) */
    ELECT_ACT_PG_DEMOTE,        /* a primary that is not (or no more) the leader: fast stop,
                                   start as a standby */
    ELECT_ACT_INIT_RACE,        /* no `initialize`, empty data dir: txn create(initialize, "") */
    ELECT_ACT_PG_BOOTSTRAP,     /* won `initialize`: initdb, configure, start, roles */
    ELECT_ACT_WRITE_INITIALIZE, /* bootstrapped: initialize = system identifier */
    ELECT_ACT_PG_CLONE,         /* empty data dir, a leader: pg_basebackup through our slot,
                                   start as its standby */
    ELECT_ACT_PG_RELEASE,       /* leader whose PostgreSQL died, a replica caught up: delete
                                   the key (if still ours) so that it fails over at once */
    ELECT_ACT_PG_START_PRIMARY, /* leader whose PostgreSQL is down and no replica caught up */
    ELECT_ACT_PG_PROMOTE,       /* leader whose PostgreSQL is in recovery; writes `history` */
    ELECT_ACT_PG_START_STANDBY, /* not leader, PostgreSQL down: start following the leader */
    ELECT_ACT_PG_FOLLOW,        /* a standby not following the current leader */
    ELECT_ACT_PG_SLOTS,         /* leader: one physical slot per other member, no stale ones */
    ELECT_ACT_PG_SWITCHOVER,    /* leader asked to hand over: checkpoint, fast stop, `status`
                                   = the shutdown checkpoint, release the key */
    ELECT_ACT_PG_REJOIN,        /* a former primary (or a standby behind a new timeline) with a
                                   leader to follow: check divergence, pg_rewind (or re-clone)
                                   when needed, start following */
    ELECT_ACT_SYNC,             /* leader: the `sync` key and synchronous_standby_names, in the
                                   safe order */
    ELECT_ACT_PG_RECONFIGURE,   /* the dynamic postgresql.parameters changed: rewrite, reload */
    ELECT_ACT_CLEAR_FAILOVER,   /* leader: the `failover` request is done, stale, not for this
                                   leader or impossible: clear it */
};

enum elect_fence_reason {
    ELECT_FENCE_NONE = 0,
    ELECT_FENCE_DEADLINE,   /* no renewal succeeded by sent + ttl - margin */
    ELECT_FENCE_LEASE_LOST, /* etcd said the lease does not exist */
    ELECT_FENCE_SUPERVISOR, /* the supervisor enforced the deadline (this process stalled) */
};

/* Effective timings (ms). */
struct elect_timings {
    uint64_t ttl_ms;
    uint64_t loop_wait_ms;
    uint64_t retry_timeout_ms;
    uint64_t margin_ms; /* fencing margin, always < ttl - loop_wait */
};

struct elect_config {
    char name[DCS_NAME_MAX]; /* this member */
    bool nofailover;         /* never race for (or take over) the leader key */
    struct elect_timings t;
    bool manage_pg;   /* drive the local PostgreSQL: the PG rows apply and the race needs a
                         healthy PostgreSQL; false = election only (as before issue 4) */
    int64_t max_lag;  /* maximum_lag_on_failover, bytes */
    int64_t priority; /* failover_priority tag: wins a tie at the same WAL position (>= 1) */
};

/* The local PostgreSQL as the driver last observed it. */
struct elect_pg {
    bool known;         /* observed at least once */
    bool datadir_empty; /* data_dir missing or empty: bootstrap or clone */
    bool datadir_ok;    /* data_dir holds a cluster */
    bool running;       /* a postmaster runs on data_dir */
    bool ready;         /* ... and answered the status query */
    bool in_recovery;
    bool slots_ok;         /* primary: one physical slot per other member, no stale ones */
    bool following_leader; /* standby: configured to stream from the current leader */
    int64_t lsn;           /* last known WAL position (kept while it is down), bytes */
    uint64_t sysid;        /* data_dir's system identifier (0: unknown) */
    bool was_primary;      /* stopped, and the control file says a primary ran on it last
                              (shut down, or crashed in production) */
    bool behind_timeline;  /* standby: the leader is on a later timeline than ours (the
                              divergence point must be checked once) */
};

/* What etcd says, as far as the driver knows (its watch cache plus its own writes). */
struct elect_view {
    bool valid; /* the cache holds a full read of the cluster prefix */
    bool fresh; /* the watch is up: changes arrive as they happen */
    bool has_leader;
    char leader[DCS_NAME_MAX];
    int64_t leader_lease;
    int64_t leader_create_rev; /* the leader's term */
    bool member_ok;            /* members/<me> holds the wanted value under our current lease */
    bool has_config;
    bool status_ok; /* `status` holds the wanted value */
    /* for PostgreSQL management */
    bool has_initialize;       /* `initialize` exists */
    bool initialize_set;       /* ... and holds a system identifier (not "" of a bootstrap) */
    uint64_t initialize_sysid; /* ... that one (0: unknown) */
    bool has_optime;           /* `status` gives the last leader's WAL position */
    int64_t optime;
    bool leader_conn;      /* the leader's member key gives its PostgreSQL address */
    int64_t peer_max_lsn;  /* highest xlog_location of the other running, failover-eligible
                              replicas (-1: none); in sync mode only the `sync` members count */
    int64_t peer_max_prio; /* highest failover_priority among those at peer_max_lsn */
    /* dynamic config */
    bool paused;    /* `config` pause: no automatic failover, start, stop or promotion */
    bool sync_mode; /* synchronous_mode */
    /* the `failover` key (switchover or manual failover) */
    bool has_failover;
    char failover_leader[DCS_NAME_MAX];    /* "" = any leader */
    char failover_candidate[DCS_NAME_MAX]; /* "" = any candidate */
    bool failover_due;                     /* not scheduled, or its time has come */
    bool failover_stale;                   /* scheduled, and missed by more than 1.5 loop_wait */
    bool candidate_ok; /* the candidate (with none named: some other member) is a running,
                          failover-eligible replica within the lag limit (in `sync` in sync
                          mode) */
    /* the `sync` key */
    bool sync_restricts;  /* sync mode and a non-empty `sync`: only its members may promote */
    bool sync_member;     /* this node is sync.leader or one of sync.sync_standby */
    bool sync_standby_up; /* sync mode: a running member listed in sync.sync_standby (it has
                             every acknowledged commit, whatever its published position) */
    bool sync_key_mine;   /* sync.leader is this node */
    bool sync_ok;         /* leader: `sync` and synchronous_standby_names are as wanted (or both
                             cleared outside sync mode) */
    bool params_ok;       /* the dynamic postgresql.parameters are the ones applied */
    struct elect_pg pg;
};

/* This process's own state. Plain data; elect_apply() is the only writer besides the driver's
 * elect_local_init() and elect_on_supervisor_fence(). */
struct elect_local {
    enum elect_state state;
    bool shutdown; /* SIGTERM: release and revoke, then STOPPED */
    int64_t lease_id;
    int64_t lease_ttl_s;     /* TTL etcd reported for the lease */
    uint64_t lease_sent_ms;  /* boot ms the last successful grant/keepalive was sent */
    uint64_t deadline_ms;    /* lease_sent + min(ttl, lease TTL) - margin; 0 without a lease */
    uint64_t next_lease_ms;  /* when to keepalive (or grant, in INIT) next */
    uint64_t next_read_ms;   /* when a stale view may be re-read next */
    int64_t abandoned_lease; /* the lease given up when fenced: never refreshed or adopted */
    int64_t term;            /* create_revision of our leader key while LEADER/FENCED */
    enum elect_fence_reason fence_pending; /* set by lease loss or the supervisor */
    enum elect_fence_reason fence_reason;  /* why the last FENCE happened (for logs) */
    bool noted;                            /* noted_leader is meaningful */
    char noted_leader[DCS_NAME_MAX];       /* "" = no leader */
    bool init_won;                /* we won `initialize`: bootstrapping (or bootstrapped) */
    bool demote_pending;          /* fenced or stepped down: the primary must become a standby */
    uint64_t pg_next_ms;          /* a failed PostgreSQL action is retried no earlier than this */
    uint64_t no_race_until_ms;    /* released on a PostgreSQL crash: let the replicas win */
    bool rejoin_check;            /* our data may have diverged from the leader's timeline (we were
                                     primary, or started a former primary as a standby): check
                                     before following a leader */
    uint64_t leaderless_since_ms; /* when the leader key was last seen to go */
    uint64_t rejoin_next_ms;      /* a failed rejoin is retried no earlier than this */
    uint64_t rejoin_wait_ms;      /* released voluntarily: keep PostgreSQL down until a new leader
                                     shows up (or this time passes) */
};

/* The outcome of the action the driver performed. */
struct elect_result {
    bool ok;             /* the request was answered (false: transport/server error) */
    bool lease_lost;     /* etcd said our lease does not exist */
    bool won;            /* RACE/TAKEOVER/RELEASE: the txn compare held */
    uint64_t sent_ms;    /* GRANT/KEEPALIVE: boot ms taken just before sending */
    int64_t lease_id;    /* GRANT */
    int64_t lease_ttl_s; /* GRANT/KEEPALIVE: TTL in the answer */
    int64_t term;        /* RACE/TAKEOVER won: the key's create_revision */
};

struct elect_decision {
    enum elect_action action;
    const char *rule;                     /* the transition-table row that fired, for logs */
    enum elect_fence_reason fence_reason; /* for ELECT_ACT_FENCE */
};

/* One row of the transition table (exposed so tests can check that each row is reachable). */
struct elect_input {
    const struct elect_config *cfg;
    const struct elect_view *view;
    const struct elect_local *local;
    uint64_t now_ms;
};
struct elect_rule {
    const char *name;
    unsigned states; /* bit (1u << enum elect_state) per state the row applies to */
    bool (*guard)(const struct elect_input *in);
    enum elect_action action;
};
const struct elect_rule *elect_rules(size_t *count);

/* The first row of the table that applies, or ELECT_ACT_NONE ("nothing to do until the next
 * event or tick"). Pure. */
struct elect_decision elect_decide(const struct elect_config *cfg, const struct elect_view *v,
                                   const struct elect_local *l, uint64_t now_ms);

/* Updates l after the driver performed d.action with result r (r may be NULL for the actions
 * without I/O: FENCE, STEP_DOWN, ADOPT, NOTE_LEADER). v is the view the decision was made on. */
void elect_apply(const struct elect_config *cfg, struct elect_local *l,
                 const struct elect_decision *d, const struct elect_view *v,
                 const struct elect_result *r, uint64_t now_ms);

/* A fresh INIT state; a stale view is re-read no earlier than now + loop_wait (the watch's own
 * first read usually comes first). */
void elect_local_init(struct elect_local *l, const struct elect_timings *t, uint64_t now_ms);

/* The supervisor enforced `deadline_ms` for `term`: if this process is still leader of that
 * term and has not renewed past that deadline, it fences (on its next decision). Returns true
 * if the message applies, false if it is stale (a renewal since, or another term). */
bool elect_on_supervisor_fence(struct elect_local *l, int64_t term, uint64_t deadline_ms);

/* ---- arithmetic ---- */

/* sent + min(ttl_ms, lease_ttl_s * 1000) - margin_ms (a lease_ttl_s <= 0 counts as ttl_ms);
 * `sent` itself when the margin eats the whole TTL. */
uint64_t elect_deadline(uint64_t sent_ms, uint64_t ttl_ms, int64_t lease_ttl_s, uint64_t margin_ms);

/* The margin actually used: the configured one, or (ttl - loop_wait) / 2 when the configured
 * one is not below ttl - loop_wait (possible with a dynamic ttl from etcd). */
uint64_t elect_margin(uint64_t ttl_ms, uint64_t loop_wait_ms, uint64_t margin_ms);

/* Effective timings: the dynamic `config` values (whole seconds, as Patroni stores them) when
 * present, else the local [ha] ones. A dynamic value equal to what elect_config_seconds()
 * makes of the local value keeps the local, more precise, milliseconds (so loop_wait = 500ms
 * survives a round trip through `config`). dyn may be NULL. */
struct elect_timings elect_timings_compute(const struct pgw_ha_settings *ha,
                                           const struct dcs_config *dyn);

/* The whole seconds written to `config` for the local values: ttl rounded up (a lease is never
 * shorter than configured), loop_wait and retry_timeout rounded down but at least 1. */
void elect_config_seconds(const struct pgw_ha_settings *ha, int64_t *ttl_s, int64_t *loop_wait_s,
                          int64_t *retry_timeout_s);

/* Lease TTL to ask etcd for: ttl rounded up to whole seconds (at least 1). */
int64_t elect_grant_ttl_s(uint64_t ttl_ms);

/* The action belongs to PostgreSQL management (a row that needs cfg->manage_pg; the race
 * and the election rows are not). */
bool elect_action_is_pg(enum elect_action a);

/* data_dir belongs to another cluster: its system identifier differs from `initialize`. Such
 * a node never starts PostgreSQL, never publishes its member key and never races (or takes
 * over) the leader key. */
bool elect_pg_foreign(const struct elect_config *cfg, const struct elect_view *v);

const char *elect_state_name(enum elect_state s);
const char *elect_action_name(enum elect_action a);
const char *elect_fence_reason_name(enum elect_fence_reason r);

#endif
