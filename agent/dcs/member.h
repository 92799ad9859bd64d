/* DCS member value: the members/<name> JSON that Patroni's touch_member writes, with its tags. */
#ifndef PGW_DCS_MEMBER_H
#define PGW_DCS_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent/dcs/keys.h"
#include "agent/dcs/pyjson.h"

/* The Patroni release whose formats pgwarden writes. It goes into the member's "version" field,
 * because Patroni compares that field as a Patroni version: below 2.1.0 it keeps writing the
 * legacy optime/leader key, and above 1.5.6 it trusts "checkpoint_after_promote". pgwarden's own
 * version goes into the extra "pgwarden" field, which Patroni ignores. */
#define DCS_PATRONI_COMPAT_VERSION "3.0.2"

enum {
    DCS_URL_MAX = 512,         /* conn_url, api_url, proxy_url */
    DCS_WORD_MAX = 48,         /* state, role, version, replication_state texts */
    DCS_TAGS_EXTRA_MAX = 2048, /* custom tags as compact JSON */
    DCS_RESTART_MAX = 512,     /* scheduled_restart as compact JSON */
};

/* Member roles. PRIMARY is written as "master" (Patroni 3.0.2; 4.x readers accept both) and read
 * from "master" or "primary". UNKNOWN is a role this build does not know: decoded, never
 * encoded. */
enum dcs_role {
    DCS_ROLE_UNKNOWN = 0,
    DCS_ROLE_PRIMARY,
    DCS_ROLE_REPLICA,
    DCS_ROLE_STANDBY_LEADER,
    DCS_ROLE_DEMOTED,
    DCS_ROLE_PROMOTED,
    DCS_ROLE_UNINITIALIZED,
};

/* Member states, with Patroni's texts ("running", "creating replica", ...). */
enum dcs_state {
    DCS_STATE_UNKNOWN = 0,
    DCS_STATE_RUNNING,
    DCS_STATE_STARTING,
    DCS_STATE_STOPPING,
    DCS_STATE_STOPPED,
    DCS_STATE_RESTARTING,
    DCS_STATE_CRASHED,
    DCS_STATE_CREATING_REPLICA,
    DCS_STATE_INITIALIZING,     /* "initializing new cluster" */
    DCS_STATE_CUSTOM_BOOTSTRAP, /* "running custom bootstrap script" */
    DCS_STATE_START_FAILED,
    DCS_STATE_STOP_FAILED,
    DCS_STATE_INITDB_FAILED,
    DCS_STATE_CUSTOM_BOOTSTRAP_FAILED,
};

/* Member tags. Patroni writes a boolean tag only when it is true; custom tags keep their JSON. */
struct dcs_tags {
    bool nofailover;
    bool nofailover_set; /* the key was present (it then wins over failover_priority) */
    bool noloadbalance;
    bool clonefrom;
    bool nosync;
    bool has_failover_priority;
    int64_t failover_priority;        /* Patroni >= 3.2; <= 0 means nofailover */
    char replicatefrom[DCS_NAME_MAX]; /* "" = not set */
    char extra[DCS_TAGS_EXTRA_MAX];   /* other tags: a compact JSON object, or "" */
};

/* One member. Plain data (no pointers): copy freely. Text fields are "" when absent. */
struct dcs_member {
    char name[DCS_NAME_MAX];    /* from the key, not from the value */
    char conn_url[DCS_URL_MAX]; /* postgres://host:port/postgres, never with credentials */
    char api_url[DCS_URL_MAX];  /* http(s)://host:port/patroni */
    char proxy_url[DCS_URL_MAX];
    enum dcs_state state;
    char state_text[DCS_WORD_MAX]; /* as read (kept for states this build does not know) */
    enum dcs_role role;
    char role_text[DCS_WORD_MAX];
    char version[DCS_WORD_MAX]; /* Patroni version: DCS_PATRONI_COMPAT_VERSION when ours */
    bool has_xlog_location;
    int64_t xlog_location; /* bytes: current LSN on a primary, max(received, replayed) else */
    bool has_timeline;
    int64_t timeline;
    char replication_state[DCS_WORD_MAX]; /* "streaming", "in archive recovery" (Patroni >=3.0.4) */
    struct dcs_tags tags;
    bool pending_restart;
    bool pause;
    bool checkpoint_pending; /* written as "checkpoint_after_promote":false on a new primary until
                              * its first checkpoint after promotion is done */
    char scheduled_restart[DCS_RESTART_MAX]; /* compact JSON object {"schedule":..}, or "" */
    char agent_version[DCS_WORD_MAX];        /* "pgwarden" field: pgwarden's version, or "" */
    /* pgwarden's own fields (Patroni ignores unknown member fields): written after "pause" */
    bool has_server_version;
    int64_t server_version; /* "server_version": PostgreSQL's server_version_num */
    bool has_replay_lag_ms;
    int64_t replay_lag_ms; /* "replay_lag_ms": a replica's replay delay behind its upstream */
    bool has_clone_bytes;
    int64_t clone_bytes;       /* "clone_bytes": copied so far while "creating replica" */
    int64_t clone_total_bytes; /* "clone_total_bytes": the source's estimate; -1 (absent): none */
};

/* Zeroes m and sets version to DCS_PATRONI_COMPAT_VERSION and agent_version to pgwarden's. */
void dcs_member_init(struct dcs_member *m);

/* Decodes a members/<name> value. Accepts Patroni's JSON (unknown fields ignored, known fields
 * type-checked) and Governor's plain "postgres://...?application_name=<api_url>" form. Any
 * user:password@ in conn_url/api_url/proxy_url is dropped, so secrets never leave this function.
 * name (may be NULL) is copied into out->name. Returns false with err set on malformed input. */
/* How far a copy is, 0..100 (the total is the source's estimate: a copy may pass it); -1 when
 * there is no total. */
int dcs_clone_percent(int64_t done_bytes, int64_t total_bytes);

bool dcs_member_decode(const char *value, size_t len, const char *name, struct dcs_member *out,
                       struct dcs_err *err);

/* Encodes m as Patroni 3.0.2's touch_member does: compact JSON in the order conn_url, api_url,
 * state, role, version, proxy_url, checkpoint_after_promote, tags, pending_restart,
 * xlog_location, replication_state, timeline, scheduled_restart, pause, then "pgwarden".
 * Optional fields are written only when set. Refuses (false-like NULL with err) unknown
 * role/state, URLs that carry credentials or a wrong scheme, and an empty version. Returns a
 * malloc'd string (length in *len if len is not NULL). */
char *dcs_member_encode(const struct dcs_member *m, size_t *len, struct dcs_err *err);

/* All tags as one JSON object in Patroni's order (nofailover, failover_priority, clonefrom,
 * noloadbalance, replicatefrom, nosync, then custom tags); new reference, or NULL with err set
 * (for example when extra is not an object or repeats a known tag). */
json_t *dcs_tags_to_json(const struct dcs_tags *t, struct dcs_err *err);

/* Patroni's Tags.nofailover: an explicit nofailover wins, else failover_priority <= 0. */
bool dcs_tags_nofailover(const struct dcs_tags *t);
/* Patroni's Tags.failover_priority: 0 if nofailover is true, else the tag, default 1. */
int64_t dcs_tags_failover_priority(const struct dcs_tags *t);

/* Wire names: dcs_role_name(DCS_ROLE_PRIMARY) is "master"; UNKNOWN gives NULL. */
const char *dcs_role_name(enum dcs_role role);
enum dcs_role dcs_role_parse(const char *s); /* "master" and "primary" -> PRIMARY */
const char *dcs_state_name(enum dcs_state state);
enum dcs_state dcs_state_parse(const char *s);

/* "postgres://<host>:<port>/<dbname>" as Patroni's uri() (IPv6 hosts in brackets). Host must be
 * a plain host name or address (no '@', '/', spaces). Returns the length or -EINVAL /
 * -ENAMETOOLONG. */
int dcs_conn_url(const char *host, unsigned port, const char *dbname, char *out, size_t cap);
/* "http(s)://<host>:<port>/patroni" (the REST API's Patroni path). Same returns. */
int dcs_api_url(bool https, const char *host, unsigned port, char *out, size_t cap);

/* True if url holds a user or password ("scheme://user:pw@host/..."): any '@' between "://" and
 * the query counts, so that an unencoded '/' in a password cannot hide it. */
bool dcs_url_has_userinfo(const char *url);

#endif
