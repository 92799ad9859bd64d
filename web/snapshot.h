/* The web process's view of the node: the latest ha status snapshot and proxy counters. */
#ifndef PGW_WEB_SNAPSHOT_H
#define PGW_WEB_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/msgtypes.h"

/* A pre-serialized JSON body (compact), NUL-terminated; len excludes the NUL. */
struct web_body {
    char *buf;
    size_t len;
};

/* One parsed MSG_STATUS. The json_t pointers point into `root` (borrowed, may be NULL). */
struct web_status {
    json_t *root;
    uint64_t boot_ms;              /* CLOCK_BOOTTIME when ha built it (receive time if absent) */
    int64_t wall_ms;               /* epoch ms */
    uint64_t ttl_ms, loop_wait_ms; /* 0 when absent: the defaults 10 s / 1 s apply */
    uint64_t leader_until_boot_ms; /* 0 when this node does not hold the leader key */
    bool dcs_ok, paused, sync_mode;
    int64_t dcs_last_seen; /* epoch s, 0 when never */
    bool has_optime;
    int64_t optime; /* the leader's WAL position from `status`, bytes */
    json_t *sync;   /* {"leader", "sync_standby": [..]} or NULL */
    json_t *patroni, *cluster, *history, *config, *failover;
    bool has_failover_field; /* "failover" was in the snapshot (null or an object) */
    /* Derived from `patroni`: */
    const char *state; /* "running", ... ("" when absent) */
    const char *role;  /* "master"/"primary"/"replica"/"standby_leader" ("" when absent) */
    const char *name;  /* patroni.name (or cluster member), "" when absent */
    const char *scope;
    bool has_replayed;
    int64_t replayed_location, received_location, xlog_location;
    json_t *tags; /* patroni.tags object or NULL */
    /* Cached bodies (compact JSON), built once per snapshot for the fast paths. */
    struct web_body patroni_body, cluster_body, history_body, config_body;
};

struct web_snapshot {
    struct web_status *st; /* NULL until the first valid MSG_STATUS */
    uint64_t status_count; /* how many were accepted */
    bool has_proxy;
    uint64_t proxy_boot_ms; /* when the last proxy stats arrived */
    struct msg_proxy_stats proxy;
};

void web_snapshot_init(struct web_snapshot *s);
void web_snapshot_clear(struct web_snapshot *s);

/* Parses a MSG_STATUS payload (JSON object, not NUL-terminated) received at now_boot_ms and
 * makes it the current status. False (logged once) if it is not a JSON object; the previous
 * snapshot then stays. */
bool web_snapshot_set_status(struct web_snapshot *s, const void *json, size_t len,
                             uint64_t now_boot_ms);
void web_snapshot_set_proxy(struct web_snapshot *s, const struct msg_proxy_stats *ps,
                            uint64_t now_boot_ms);

/* ttl_ms / loop_wait_ms of a status with the defaults applied (10 s, 1 s). */
uint64_t web_status_ttl_ms(const struct web_status *st);
uint64_t web_status_loop_wait_ms(const struct web_status *st);
/* The name of the current leader from cluster.members (role leader/standby_leader), or NULL. */
const char *web_status_leader_name(const struct web_status *st);
/* True if the role names a primary ("master" or "primary"). */
bool web_role_is_primary(const char *role);

#endif
