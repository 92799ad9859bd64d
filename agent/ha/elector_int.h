/* Election driver internals shared by agent/ha/elector.c and agent/ha/elector_io.c. */
#ifndef PGW_HA_ELECTOR_INT_H
#define PGW_HA_ELECTOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/dcs/dyncfg.h"
#include "agent/dcs/keys.h"
#include "agent/dcs/values.h"
#include "agent/ha/election.h"
#include "agent/ha/elector.h"
#include "agent/ha/kvcache.h"
#include "agent/msgtypes.h"
#include "agent/pg/pg.h"
#include "agent/settings.h"

#include <jansson.h>

enum {
    PG_SSN_MAX = 2048,
    PG_PARAMS_MAX = 128,
    PG_PARAMS_BUF = 16384,
    ELECTOR_SLOTS_MAX = 32, /* members whose slots the leader keeps */
};

/* A slot on the leader whose member's key is gone, kept for member_slots_ttl (elector_slots.c) */
struct elector_slot_gone {
    char name[PG_SLOT_NAME_MAX];
    uint64_t since_ms; /* first seen without its member (boot clock) */
    uint64_t seen_ms;  /* last seen so */
};

struct etcd_client;
struct etcd_watch;
struct boottimer;

struct elector {
    struct pgw_config cfg;
    struct loop *loop;
    struct store *store;
    elector_send_fn send;
    void *send_arg;

    struct etcd_client *etcd;
    struct etcd_watch *watch;
    struct dcs_keys keys;
    char k_leader[DCS_KEY_MAX];
    char k_member[DCS_KEY_MAX];
    char k_members[DCS_KEY_MAX]; /* "<prefix>members/" */
    char k_config[DCS_KEY_MAX];
    char k_status[DCS_KEY_MAX];

    struct kvcache cache;
    bool dyn_checked;    /* dyn reflects the config key at dyn_mod_rev */
    int64_t dyn_mod_rev; /* mod_revision of the config key read (0: absent) */
    bool dyn_present;
    struct dcs_config dyn;
    bool config_unwritable; /* the local values do not make a valid `config` (logged once) */

    struct elect_config ec;
    struct elect_local local;
    char *member_value; /* wanted members/<me> value */
    size_t member_len;
    char *status_value; /* wanted `status` value (leader) */
    size_t status_len;
    int64_t optime; /* the leader's WAL position for `status` (0 until issue 4 provides it) */

    uint64_t tick_timer;
    struct boottimer *deadline;
    uint64_t stats_timer;
    uint64_t stats_requests;
    uint64_t stats_at_ms;
    bool in_step;
    bool again;
    bool failing; /* the last etcd request failed (logged once per streak) */

    /* PostgreSQL management (elector_pg.c) */
    bool manage_pg;
    struct pg_instance pg;
    struct pg_watch *pm_watch;
    pid_t pm_pid;
    struct elect_pg pgv;     /* last observation */
    uint64_t pg_obs_next_ms; /* next periodic observation */
    bool pg_obs_force;       /* observe at the next step (postmaster died, action done) */
    uint64_t sysid;
    uint64_t foreign_noted; /* data_dir sysid of the mismatch last logged (0: none) */
    uint32_t timeline;
    char upstream[DCS_NAME_MAX]; /* the leader our standby was configured to follow */
    char upstream_host[PG_HOST_MAX];
    uint16_t upstream_port;
    char slot[PG_SLOT_NAME_MAX];  /* our slot on the leader */
    char clone_host[PG_HOST_MAX]; /* the source while "creating replica" (clone_port 0: none) */
    uint16_t clone_port;
    bool has_clone_progress;
    struct pg_clone_progress clone_progress; /* the source's view, asked every second */
    int clone_logged_tenth;                  /* the last tenth of the copy logged */
    struct elector_slot_gone slots_gone[ELECTOR_SLOTS_MAX]; /* leader: slots kept for a while */
    size_t n_slots_gone;
    char k_initialize[DCS_KEY_MAX];
    char k_history[DCS_KEY_MAX];
    char k_sync[DCS_KEY_MAX];
    char k_failover[DCS_KEY_MAX];

    /* dynamic postgresql.parameters (elector_pg.c) */
    struct pg_param params[PG_PARAMS_MAX]; /* rebuilt by elector_make_conf from `config` */
    char params_buf[PG_PARAMS_BUF];        /* their text */
    char *params_applied;      /* compact JSON of the parameters last written, NULL: none yet */
    bool pending_restart;      /* PostgreSQL reports a parameter that needs a restart */
    bool start_cancelled;      /* a pg_ctl start was cut short by SIGTERM */
    enum dcs_state busy_state; /* published while a long action runs (creating replica...) */
    /* a scheduled restart (elector_cmd.c) */
    uint64_t restart_timer;
    json_t *restart_args;      /* the request, for its conditions at the time */
    char restart_schedule[64]; /* as requested, for the member key */
    struct pg_status last_st;  /* the last successful status query (for the REST snapshot) */
    /* pg_stat_replication as observed in this step on a running primary (valid false
     * otherwise): read once, used by the sync plan and by the status snapshot. */
    struct pg_replica *repl;
    size_t nrepl;
    bool repl_valid;
    int64_t dcs_last_seen_s;     /* epoch s of the last successful etcd request */
    char *status_sent;           /* the last MSG_STATUS sent, without its times */
    uint64_t status_sent_ms;     /* when it was sent */
    uint32_t checked_leader_tli; /* leader timeline our standby was last verified against */
    char checked_leader[DCS_NAME_MAX];

    /* synchronous replication (elector_sync.c) */
    char ssn[PG_SSN_MAX]; /* synchronous_standby_names we configured (primary) */
    bool ssn_known;       /* ssn holds what the running primary uses (read once after an agent
                             start, so a rewrite of the configuration never drops it) */
    struct elector_sync_plan {
        bool valid;                              /* computed from pg_stat_replication */
        size_t npicked, nconfirmed;              /* picked: wanted sync standbys */
        char picked[DCS_SYNC_MAX][DCS_NAME_MAX]; /* confirmed: PostgreSQL reports them sync */
        char confirmed[DCS_SYNC_MAX][DCS_NAME_MAX];
        char ssn[PG_SSN_MAX]; /* wanted synchronous_standby_names */
    } sync;

    /* dashboard samples and disk health (elector_samples.c) */
    uint64_t sample_timer;
    uint64_t sample_rounds;
    uint64_t store_episodes_recorded; /* state store failing episodes recorded as events */
    bool data_disk_full; /* PostgreSQL's data directory: less than a WAL segment free */
    bool have_proxy_stats;
    struct msg_proxy_stats proxy_stats;

    bool route_sent;
    struct msg_route route;
    bool lease_sent_leader;
    struct msg_lease lease_msg;
};

/* ---- elector_io.c: one etcd action each; false when the request failed (the step stops) ---- */
bool elector_perform(struct elector *e, const struct elect_decision *d, const struct elect_view *v,
                     struct elect_result *r);
/* Fills the view from the cache (and the watch state). */
void elector_build_view(struct elector *e, struct elect_view *v);
/* Builds the wanted member and status values from the configuration. */
bool elector_build_values(struct elector *e);

/* elector.c: sends the route (and lease, status) as they stand now, even inside a step. */
void elector_publish_now(struct elector *e);
/* elector.c: a step at once (or right after the current one). */
void elector_step_now(struct elector *e);
/* Runs the step from the loop, once the current callback has returned (a command answered
 * before a long action: the copy a reinitialize starts). */
void elector_step_soon(struct elector *e);
/* elector.c: "postgres://host:port/db" -> host, port. False if it does not parse. */
bool elector_parse_conn_url(const char *url, char *host, size_t cap, uint16_t *port);

/* ---- elector_pg.c: the local PostgreSQL ---- */
/* Instance, keys, slot name, adoption of a running postmaster. False on failure (logged). */
bool elector_pg_init(struct elector *e);
void elector_pg_free(struct elector *e);
/* Re-observes PostgreSQL when forced or every loop_wait; rebuilds the member value when the
 * observation changed. */
void elector_pg_observe(struct elector *e);
/* The PostgreSQL part of the view: from the cache (initialize, status, members) and the last
 * observation. */
void elector_pg_view(struct elector *e, struct elect_view *v);
/* Performs a PG action (elect_action_is_pg, plus INIT_RACE/WRITE_INITIALIZE/PG_RELEASE). */
bool elector_pg_perform(struct elector *e, const struct elect_decision *d,
                        const struct elect_view *v, struct elect_result *r);
/* Fills role/state/xlog_location/timeline of our member value. */
struct dcs_member;
void elector_pg_member(const struct elector *e, struct dcs_member *m);
/* The dynamic config's pause and synchronous_mode (false without a config key). */
bool elector_paused(const struct elector *e);
bool elector_sync_mode(const struct elector *e);
/* The primary's configuration (synchronous_standby_names and the dynamic parameters). */
void elector_make_conf(struct elector *e, struct pg_conf *c, bool standby, const char *host,
                       uint16_t port);
/* A PostgreSQL role change as an event row and a log line already written by the caller. */
void elector_pg_event(struct elector *e, const char *what);
/* The leader's PostgreSQL address (and timeline when published) from its member key. */
bool elector_leader_address(struct elector *e, const char *leader, char *host, size_t cap,
                            uint16_t *port, uint32_t *timeline);
/* Starts (stop_first: restarts) PostgreSQL as a standby of the leader in v (none: read-only). */
int elector_start_standby(struct elector *e, const struct elect_view *v, bool stop_first);

/* The dynamic parameters in `config` are the ones last applied. */
bool elector_params_ok(struct elector *e);

/* elector_slots.c (leader): true when the primary has a physical slot for each other member
 * and none left over (a slot whose member is gone counts only once member_slots_ttl passed). */
bool elector_slots_ok(struct elector *e);
/* Creates the missing slots, drops the inactive left-over ones. <0 on a failure (logged). */
int elector_slots_sync(struct elector *e);

/* elector_io.c: publishes members/<me> at once (a long action is starting). Best effort. */
void elector_put_member_now(struct elector *e);
/* Called every second while a PostgreSQL tool runs (the loop waits for it): a follower renews
 * its lease when due, so its member key ("creating replica", "rewinding"...) and the slot the
 * leader keeps for it outlive a copy that takes longer than the TTL. A leader never does: a
 * leader whose loop is stuck must run out of time and fence. */
void elector_busy_tick(void *arg);
/* elector_pg.c: during a copy, asks the source how far it is; publishes it in the member key
 * ("clone_bytes", "clone_total_bytes") and the status snapshot, logs each tenth. */
void elector_clone_tick(struct elector *e);

/* ---- elector_samples.c: samples every 5 s into SQLite for the dashboard charts ---- */
bool elector_samples_start(struct elector *e);
void elector_samples_stop(struct elector *e);
/* Whether the filesystem of PostgreSQL's data directory is full (less than a WAL segment
 * free; clears above 4 segments), checked now; a change is logged and recorded once. While it
 * is full, PostgreSQL is not (re)started: it would only fail again. */
bool elector_data_disk_full(struct elector *e);

/* ---- elector_status.c: MSG_STATUS for the web process (on change, at least every loop_wait) */
void elector_status_publish(struct elector *e);

/* ---- elector_cmd.c: MSG_COMMAND from the web process, answered with MSG_REPLY ---- */
void elector_command(struct elector *e, const char *json, size_t len);
/* Cancels a scheduled restart (shutdown). */
void elector_command_free(struct elector *e);

/* ---- elector_peers.c: the view's failover, sync and peer fields from the cache ---- */
void elector_peers_view(struct elector *e, struct elect_view *v);

/* ---- elector_sync.c: synchronous replication on the leader ---- */
/* Re-plans from pg_stat_replication (primary and sync mode only; else clears the plan). */
void elector_sync_observe(struct elector *e);
/* The plan is carried out: `sync` and synchronous_standby_names as wanted. */
bool elector_sync_ok(struct elector *e, const struct elect_view *v);
int elector_sync_perform(struct elector *e, const struct elect_view *v);

/* ---- elector_handover.c: switchover, clearing `failover`, rejoin, handover at shutdown ---- */
int elector_switchover(struct elector *e, const struct elect_view *v, struct elect_result *r);
bool elector_clear_failover(struct elector *e, const struct elect_view *v);
int elector_rejoin(struct elector *e, const struct elect_view *v);
/* SIGTERM on the leader: checkpoint, fast stop, `status` = the shutdown checkpoint (the key is
 * then released by the step). Paused: nothing (PostgreSQL keeps running). */
void elector_handover_stop(struct elector *e);

/* elector_io.c: voluntary release of the leader key (value and lease ours). */
bool elector_release_key(struct elector *e, const struct elect_decision *d, struct elect_result *r);

#endif
