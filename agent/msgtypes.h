/* Message endpoints and types exchanged between the supervisor and the ha, proxy and web children.
 */
#ifndef PGW_MSGTYPES_H
#define PGW_MSGTYPES_H

#include <stddef.h>
#include <stdint.h>

#include "platform/msg.h"

/* Endpoint ids: the supervisor is 0 and routes every message to its destination. */
enum msg_endpoint { EP_SUP = 0, EP_HA = 1, EP_PROXY = 2, EP_WEB = 3, EP_ALL = 0xff };

enum msg_type {
    MSG_HELLO = 1,  /* child -> supervisor: the child is up (struct msg_hello) */
    MSG_CONFIG = 2, /* supervisor -> children: configuration after a reload (struct pgw_config) */
    MSG_LEASE = 3,  /* ha -> supervisor: leader lease renewed / given up (struct msg_lease) */
    MSG_ROUTE = 4,  /* ha or supervisor -> proxy: where writes go (struct msg_route) */
    MSG_FENCE = 5,  /* supervisor -> ha: the supervisor fenced on ha's behalf (struct msg_fence) */
    MSG_PROXY_STATS = 6, /* proxy -> web, every second: forwarder counters (msg_proxy_stats) */
    MSG_STATUS = 7,      /* ha -> web: status snapshot, JSON text (see below) */
    MSG_COMMAND = 8,     /* web -> ha: an operator command, JSON text */
    MSG_REPLY = 9,       /* ha -> web: the outcome of a command, JSON text */
};

/*
 * MSG_STATUS, MSG_COMMAND and MSG_REPLY carry one compact JSON object (UTF-8, not
 * NUL-terminated, 2 .. MSG_MAX_PAYLOAD bytes). ha sends MSG_STATUS after every change and at
 * least every loop_wait:
 *   {"boot_ms": CLOCK_BOOTTIME ms when built, "wall_ms": epoch ms,
 *    "ttl_ms", "loop_wait_ms",
 *    "leader_until_boot_ms": the lease deadline while this node holds the leader key, else 0
 *                            (/primary is 200 only while CLOCK_BOOTTIME is below it),
 *    "dcs_ok": the last etcd request succeeded, "dcs_last_seen": epoch s of the last success,
 *    "paused", "sync_mode": bools,
 *    "optime": the leader's last WAL position in bytes from `status`, or null,
 *    "sync": {"leader":..,"sync_standby":[names]} or null,
 *    "patroni": the body of GET /patroni (Patroni's fields: state, postmaster_start_time,
 *               role, server_version, timeline, xlog{..}, replication[..], dcs_last_seen,
 *               database_system_identifier, patroni{version,scope,name}, tags, pause,
 *               pending_restart, sync_standby, cluster_unlocked, scheduled_restart; and
 *               pgwarden's own, present only while it lasts: "state_store": why the SQLite
 *               store cannot be written, e.g. "disk full" ("not open" if the ha process
 *               could not open it); "data_directory": "disk full"
 *               when PostgreSQL's data directory has less than a WAL segment free),
 *    "cluster": the body of GET /cluster ({"members":[..], "pause"?, "scheduled_switchover"?}),
 *    "history": the `history` list ([] when none), "config": the `config` object or null,
 *    "events_seq": the highest SQLite event id written (for the dashboard to refresh)}
 * web sends MSG_COMMAND {"id": n, "op": "...", ...}; ha answers MSG_REPLY {"id": n, "status":
 * HTTP status, "body": JSON value (object, or a string for Patroni's plain-text answers)}.
 * Operations (Patroni semantics and codes, see shared/reference/patroni-compat.md section 2):
 *   "switchover" {leader?, candidate?, scheduled_at?, failover: bool}  writes `failover`
 *        (200 {"scheduled": false} / 202 scheduled; 400 / 412 / 503 with a message);
 *        web then waits for the leader change in the snapshots (200/503 as Patroni)
 *   "switchover_cancel" {}        200 / 404 / 409
 *   "restart" {schedule?, restart_pending?, role?, postgres_version?, timeout?}
 *   "restart_cancel" {}           200 / 404
 *   "reload" {}                   202
 *   "reinitialize" {force?}       200 / 503
 *   "config_patch" {patch: {...}} 200 {new config} / 409 / 503 / 400
 *   "config_put" {config: {...}}  200 / 502 / 400
 *   "pause" {} / "resume" {}      200 (a config_patch of "pause")
 */

enum { MSG_NAME_MAX = 256, MSG_HOST_MAX = 256, MSG_ROUTE_REPLICAS_MAX = 8 };

struct msg_hello {
    int32_t pid;
    char role[16];
};

/* Sent by ha after every successful renewal of the lease while it is leader (leader = 1), and
 * once with leader = 0 when it stops being leader. The supervisor fences on ha's behalf if
 * CLOCK_BOOTTIME reaches deadline_boot_ms with no fresher MSG_LEASE (ha stalled or died). */
struct msg_lease {
    int64_t term;              /* create_revision of the leader key */
    uint64_t deadline_boot_ms; /* CLOCK_BOOTTIME ms: lease sent + ttl - fencing margin */
    uint8_t leader;
    uint8_t pad[7];
};

/* A replica the read-only port may use (one entry of struct msg_route). */
struct msg_route_replica {
    int64_t lag_bytes; /* how far its replay is behind the leader's WAL position; < 0 unknown */
    uint16_t port;     /* of its PostgreSQL */
    uint8_t pad[6];
    char name[MSG_NAME_MAX]; /* member name */
    char host[MSG_HOST_MAX]; /* from its conn_url */
};

/* The routing table of the forwarder: where the leader's PostgreSQL is. has_leader = 0 means
 * "no leader: do not route writes anywhere" (also what a fence sends). The route is valid until
 * expiry_boot_ms (CLOCK_BOOTTIME); after that the forwarder must fail closed. The replicas are
 * the running, streaming replicas (not the leader) the read-only port balances over; they are
 * also only trusted until expiry_boot_ms. */
struct msg_route {
    int64_t term;            /* create_revision of the leader key, 0 when none */
    uint64_t expiry_boot_ms; /* 0 when has_leader = 0 */
    uint16_t port;           /* of the leader's PostgreSQL (0 if unknown) */
    uint8_t has_leader;
    uint8_t is_self; /* the leader is this node */
    /* The leader is handing over (its member key says "stopping"): new connections are held,
     * connections not answered yet go back to holding, established sessions stay until its
     * PostgreSQL stops them, so a client mid-authentication is not cut off. */
    uint8_t draining;
    uint8_t pad[3];
    char leader[MSG_NAME_MAX]; /* member name, "" when none */
    char host[MSG_HOST_MAX];   /* from the leader's conn_url, "" if unknown */
    uint16_t n_replicas;       /* entries used in replicas[] (at most MSG_ROUTE_REPLICAS_MAX) */
    uint8_t pad2[6];
    struct msg_route_replica replicas[MSG_ROUTE_REPLICAS_MAX];
};

/* The supervisor's fence of the deadline it had for term (from the last MSG_LEASE). */
struct msg_fence {
    int64_t term;
    uint64_t deadline_boot_ms;
};

/* Held-time histogram of the forwarder: bucket i counts connections released (served or timed
 * out) after waiting at most PROXY_HELD_BOUNDS_MS[i] ms; the last bucket counts the rest. */
#define PROXY_HELD_BOUNDS_MS                                                                       \
    {                                                                                              \
        10, 100, 500, 1000, 2000, 5000, 10000, 30000                                               \
    }
enum { PROXY_HELD_BUCKETS = 9, PROXY_PORT_RW = 0, PROXY_PORT_RO = 1, PROXY_NPORTS = 2 };

/* Counters of one forwarder port; totals are since the proxy process started. */
struct msg_proxy_port_stats {
    uint64_t active;           /* client connections open now (held ones included) */
    uint64_t held;             /* client connections waiting for a primary/replica now */
    uint64_t total;            /* client connections accepted */
    uint64_t rejected;         /* refused with 53300 (over max_connections) */
    uint64_t hold_timeouts;    /* given up with 57P03 after hold_timeout */
    uint64_t bytes_up;         /* client -> server */
    uint64_t bytes_down;       /* server -> client */
    uint64_t connect_failures; /* upstream connects that failed or timed out */
    uint64_t cancels;          /* CancelRequests forwarded */
    uint64_t held_count;       /* connections that were held, and released */
    uint64_t held_ms_sum;      /* total time those were held */
    uint64_t held_hist[PROXY_HELD_BUCKETS];
};

/* The forwarder's counters and its view of the route (sent by proxy to web every second). */
struct msg_proxy_stats {
    int64_t term;            /* of the route in use, 0 when none */
    uint64_t expiry_boot_ms; /* of the route in use */
    uint8_t has_leader;      /* the route names a leader and has not expired */
    uint8_t pad[7];
    char leader[MSG_NAME_MAX];
    struct msg_proxy_port_stats port[PROXY_NPORTS]; /* PROXY_PORT_RW, PROXY_PORT_RO */
};

extern const struct msg_spec msgtypes_specs[];
extern const size_t msgtypes_nspecs;

const char *msgtypes_endpoint_name(uint8_t ep);

#endif
