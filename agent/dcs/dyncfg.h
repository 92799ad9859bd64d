/* DCS config value: Patroni's dynamic configuration JSON, typed with defaults and validation. */
#ifndef PGW_DCS_DYNCFG_H
#define PGW_DCS_DYNCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent/dcs/pyjson.h"

/* pgwarden's defaults for keys missing from `config` (DESIGN.md "Defaults"; where DESIGN.md is
 * silent, Patroni 3.0.2's __DEFAULT_CONFIG). They differ from Patroni's for ttl (30),
 * loop_wait (10), retry_timeout (10) and use_pg_rewind (false), which is why the encoder always
 * writes those keys explicitly. */
enum {
    DCS_DEFAULT_TTL = 10,
    DCS_DEFAULT_LOOP_WAIT = 1,
    DCS_DEFAULT_RETRY_TIMEOUT = 3,
    DCS_DEFAULT_MAX_LAG_ON_FAILOVER = 1048576,
    DCS_DEFAULT_PRIMARY_START_TIMEOUT = 300,
    DCS_DEFAULT_MEMBER_SLOTS_TTL = 1800, /* Patroni 4's "30min" */
    /* Accepted ranges (seconds). */
    DCS_TTL_MIN = 2,
    DCS_TTL_MAX = 3600,
    DCS_LOOP_WAIT_MIN = 1,
    DCS_RETRY_TIMEOUT_MIN = 1,
    DCS_SYNC_NODE_COUNT_MAX = 32,
};

enum dcs_sync_mode {
    DCS_SYNC_OFF = 0,
    DCS_SYNC_ON,
    DCS_SYNC_QUORUM, /* Patroni >= 4.0 "synchronous_mode": "quorum"; read, kept, not implemented */
};

struct dcs_config {
    int64_t ttl;                     /* seconds: leader lease */
    int64_t loop_wait;               /* seconds */
    int64_t retry_timeout;           /* seconds */
    int64_t maximum_lag_on_failover; /* bytes */
    int64_t maximum_lag_on_syncnode; /* bytes; <= 0 disables (default -1) */
    int64_t primary_start_timeout;   /* seconds (legacy key master_start_timeout) */
    int64_t primary_stop_timeout;    /* seconds; 0 = none */
    int64_t synchronous_node_count;  /* default 1 */
    int64_t max_timelines_history;   /* 0 = keep all */
    int64_t member_slots_ttl; /* seconds a vanished member's slot is kept (0 = drop at once); an
                                 integer of seconds or a string with a unit: "30min", "2h" */
    enum dcs_sync_mode synchronous_mode;
    bool synchronous_mode_strict;
    bool failsafe_mode;
    bool check_timeline;
    bool pause;
    bool use_pg_rewind;   /* postgresql.use_pg_rewind, default on */
    bool use_slots;       /* postgresql.use_slots, default on */
    bool standby_cluster; /* a standby_cluster section is present */
    /* The whole JSON object as read (owned, may be NULL): unknown keys, postgresql.parameters,
     * pg_hba, slots, ignore_slots, standby_cluster... survive a round trip through it. */
    json_t *raw;
};

/* Typed defaults and raw = NULL. */
void dcs_config_defaults(struct dcs_config *c);
/* Releases c->raw; c can be decoded into again. */
void dcs_config_free(struct dcs_config *c);

/* Decodes and validates a config value. Missing keys take the defaults. As Patroni reads them,
 * integers may also be decimal strings ("30"), and booleans may also be "on"/"off", "true"/
 * "false", "yes"/"no", "1"/"0" or 0/1; other types are errors. Refuses a "watchdog" section
 * (Patroni rejects such a config outright). On success out owns the parsed JSON in out->raw; on
 * failure out holds defaults and raw is NULL. */
bool dcs_config_decode(const char *value, size_t len, struct dcs_config *out, struct dcs_err *err);
/* The same from an already parsed object (a new reference is taken on success). */
bool dcs_config_from_json(json_t *root, struct dcs_config *out, struct dcs_err *err);

/* Range and cross-field checks: ttl in [2, 3600], loop_wait >= 1, retry_timeout >= 1,
 * ttl >= 2 * loop_wait, loop_wait + 2 * retry_timeout <= ttl (Patroni's documented rule; its
 * own defaults 30/10/10 pass), lags and timeouts >= 0 (maximum_lag_on_syncnode >= -1),
 * synchronous_node_count in [1, 32]. Stricter than Patroni 3.0.2, which enforces none of the
 * cross-field rules: a config that breaks them is reported, not used. */
bool dcs_config_validate(const struct dcs_config *c, struct dcs_err *err);

/* Validates c and writes it: a copy of raw (or {}) with the typed values set. ttl, loop_wait,
 * retry_timeout, maximum_lag_on_failover and postgresql.{use_pg_rewind,use_slots} are always
 * written; the other typed keys only when already present or different from Patroni's
 * default. New keys are appended in Patroni's bootstrap order. Returns compact JSON (malloc'd)
 * or NULL with err set. */
char *dcs_config_encode(const struct dcs_config *c, size_t *len, struct dcs_err *err);

/* raw written as is (compact, Patroni's json.dumps format), e.g. after a PATCH. NULL raw gives
 * "{}". Returns NULL on allocation failure. */
char *dcs_config_dump(const struct dcs_config *c, size_t *len);

/* PATCH /config: applies an RFC 7386 merge patch (a JSON object) to cur->raw, then decodes and
 * validates the result into out (out->raw is the patched object, to be written with
 * dcs_config_dump()). *changed (may be NULL) tells whether anything changed. Returns false with
 * err set if the patch is not a JSON object or the result is invalid. */
bool dcs_config_patch(const struct dcs_config *cur, const char *patch, size_t len,
                      struct dcs_config *out, bool *changed, struct dcs_err *err);

/* postgresql.parameters (borrowed; NULL if absent). Values are strings, integers, reals or
 * booleans (checked by decode). */
const json_t *dcs_config_parameters(const struct dcs_config *c);
/* postgresql.pg_hba (borrowed array of strings; NULL if absent). */
const json_t *dcs_config_pg_hba(const struct dcs_config *c);
/* A parameter value as text: strings as is (the caller quotes and escapes them for
 * postgresql.conf), integers in decimal, reals in Python's repr, booleans as on/off. Returns
 * false for other types or if out is too small. */
bool dcs_config_param_text(const json_t *v, char *out, size_t cap);

/* "off", "on", "quorum". */
const char *dcs_sync_mode_name(enum dcs_sync_mode m);

#endif
