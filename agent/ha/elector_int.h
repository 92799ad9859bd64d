/* Election driver internals shared by agent/ha/elector.c and agent/ha/elector_io.c. */
#ifndef PGW_HA_ELECTOR_INT_H
#define PGW_HA_ELECTOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/dcs/dyncfg.h"
#include "agent/dcs/keys.h"
#include "agent/ha/election.h"
#include "agent/ha/elector.h"
#include "agent/ha/kvcache.h"
#include "agent/msgtypes.h"
#include "agent/pg/pg.h"
#include "agent/settings.h"

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
    char slot[PG_SLOT_NAME_MAX]; /* our slot on the leader */
    char k_initialize[DCS_KEY_MAX];
    char k_history[DCS_KEY_MAX];

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

/* elector.c: a step at once (or right after the current one). */
void elector_step_now(struct elector *e);
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
/* elector_io.c: voluntary release of the leader key (value and lease ours). */
bool elector_release_key(struct elector *e, const struct elect_decision *d, struct elect_result *r);

#endif
