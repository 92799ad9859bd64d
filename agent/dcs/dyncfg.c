/* DCS config value: Patroni's dynamic configuration JSON, typed with defaults and validation. */
#include "agent/dcs/dyncfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/dcs/mergepatch.h"

void dcs_config_defaults(struct dcs_config *c)
{
    memset(c, 0, sizeof(*c));
    c->ttl = DCS_DEFAULT_TTL;
    c->loop_wait = DCS_DEFAULT_LOOP_WAIT;
    c->retry_timeout = DCS_DEFAULT_RETRY_TIMEOUT;
    c->maximum_lag_on_failover = DCS_DEFAULT_MAX_LAG_ON_FAILOVER;
    c->maximum_lag_on_syncnode = -1;
    c->primary_start_timeout = DCS_DEFAULT_PRIMARY_START_TIMEOUT;
    c->synchronous_node_count = 1;
    c->member_slots_ttl = DCS_DEFAULT_MEMBER_SLOTS_TTL;
    c->use_pg_rewind = true;
    c->use_slots = true;
}

void dcs_config_free(struct dcs_config *c)
{
    json_decref(c->raw);
    c->raw = NULL;
}

const char *dcs_sync_mode_name(enum dcs_sync_mode m)
{
    switch (m) {
    case DCS_SYNC_ON:
        return "on";
    case DCS_SYNC_QUORUM:
        return "quorum";
    default:
        return "off";
    }
}

/* ---- tolerant scalar readers (Patroni's int() and parse_bool()) ------------------------- */

/* 1 read, 0 absent/null, -EINVAL wrong. */
static int get_int(const json_t *obj, const char *key, int64_t *out, const char *what,
                   struct dcs_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *p = s;
        char *end;
        while (isspace((unsigned char)*p))
            p++;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        bool digits = end != p && isdigit((unsigned char)end[-1]);
        while (isspace((unsigned char)*end))
            end++;
        if (errno == 0 && digits && *end == '\0') {
            *out = x;
            return 1;
        }
    }
    dcs_errf(err, "%s: '%s' must be an integer, not %s", what, key, pyjson_type_name(v));
    return -EINVAL;
}

/* Seconds: an integer, or a string with PostgreSQL's time units as Patroni reads it ("30min",
 * "2h", "90s", "1d", "5000ms"; no unit = seconds). */
static int get_seconds(const json_t *obj, const char *key, int64_t *out, const char *what,
                       struct dcs_err *err)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000}};
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        for (size_t i = 0; end != s && errno == 0 && i < sizeof(units) / sizeof(units[0]); i++) {
            if (strcmp(end, units[i].unit) == 0 && x >= 0 && x <= INT64_MAX / units[i].ms) {
                *out = x * units[i].ms / 1000;
                return 1;
            }
        }
    }
    return get_int(obj, key, out, what, err);
}

static int get_bool(const json_t *obj, const char *key, bool *out, const char *what,
                    struct dcs_err *err)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 1;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = json_integer_value(v) == 1;
        return 1;
    }
    if (json_is_string(v)) {
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(json_string_value(v), yes[i]) == 0) {
                *out = true;
                return 1;
            }
            if (strcasecmp(json_string_value(v), no[i]) == 0) {
                *out = false;
                return 1;
            }
        }
    }
    dcs_errf(err, "%s: '%s' must be a boolean (true/false, on/off), not %s", what, key,
             pyjson_type_name(v));
    return -EINVAL;
}

/* ---- decode ------------------------------------------------------------------------------ */

static bool check_postgresql(const json_t *pg, struct dcs_config *c, struct dcs_err *err)
{
    const json_t *params, *hba;

    if (!json_is_object(pg))
        return dcs_errf(err, "config: 'postgresql' must be an object, not %s",
                        pyjson_type_name(pg));
    if (get_bool(pg, "use_pg_rewind", &c->use_pg_rewind, "config: postgresql", err) < 0 ||
        get_bool(pg, "use_slots", &c->use_slots, "config: postgresql", err) < 0)
        return false;
    params = json_object_get(pg, "parameters");
    if (params && !json_is_null(params)) {
        const char *key;
        const json_t *v;
        if (!json_is_object(params))
            return dcs_errf(err, "config: 'postgresql.parameters' must be an object, not %s",
                            pyjson_type_name(params));
        json_object_foreach((json_t *)params, key, v)
        {
            if (!(json_is_string(v) || json_is_number(v) || json_is_boolean(v)))
                return dcs_errf(err,
                                "config: parameter '%.64s' must be a string, number or "
                                "boolean, not %s",
                                key, pyjson_type_name(v));
        }
    }
    hba = json_object_get(pg, "pg_hba");
    if (hba && !json_is_null(hba)) {
        size_t i;
        const json_t *v;
        if (!json_is_array(hba))
            return dcs_errf(err, "config: 'postgresql.pg_hba' must be a list of strings");
        json_array_foreach(hba, i, v)
        {
            if (!json_is_string(v))
                return dcs_errf(err, "config: postgresql.pg_hba[%zu] must be a string, not %s", i,
                                pyjson_type_name(v));
        }
    }
    return true;
}

static bool check_shapes(const json_t *root, struct dcs_err *err)
{
    const json_t *v = json_object_get(root, "slots");
    json_t *item;

    if (json_object_get(root, "watchdog"))
        return dcs_errf(err, "config: 'watchdog' is local configuration; Patroni rejects a "
                             "dynamic config that contains it");
    if (v && !json_is_null(v)) {
        const char *key;
        if (!json_is_object(v))
            return dcs_errf(err, "config: 'slots' must be an object, not %s", pyjson_type_name(v));
        json_object_foreach((json_t *)v, key, item)
        {
            if (!json_is_object(item) && !json_is_null(item))
                return dcs_errf(err, "config: slot '%.64s' must be an object or null", key);
        }
    }
    v = json_object_get(root, "ignore_slots");
    if (v && !json_is_null(v)) {
        size_t i;
        if (!json_is_array(v))
            return dcs_errf(err, "config: 'ignore_slots' must be a list of objects");
        json_array_foreach(v, i, item)
        {
            if (!json_is_object(item))
                return dcs_errf(err, "config: ignore_slots[%zu] must be an object", i);
        }
    }
    v = json_object_get(root, "standby_cluster");
    if (v && !json_is_null(v) && !json_is_object(v))
        return dcs_errf(err, "config: 'standby_cluster' must be an object, not %s",
                        pyjson_type_name(v));
    return true;
}

static bool read_sync_mode(const json_t *root, struct dcs_config *c, struct dcs_err *err)
{
    const json_t *v = json_object_get(root, "synchronous_mode");
    bool on = false;
    int r;
    if (json_is_string(v) && strcasecmp(json_string_value(v), "quorum") == 0) {
        c->synchronous_mode = DCS_SYNC_QUORUM;
        return true;
    }
    r = get_bool(root, "synchronous_mode", &on, "config", err);
    if (r < 0)
        return false;
    c->synchronous_mode = on ? DCS_SYNC_ON : DCS_SYNC_OFF;
    return true;
}

bool dcs_config_from_json(json_t *root, struct dcs_config *out, struct dcs_err *err)
{
    const json_t *pg;
    struct dcs_config c;

    dcs_config_defaults(out);
    dcs_config_defaults(&c);
    if (!json_is_object(root))
        return dcs_errf(err, "config: value must be a JSON object, not %s",
                        root ? pyjson_type_name(root) : "missing");
    if (!check_shapes(root, err))
        return false;
    const struct {
        const char *key;
        int64_t *dst;
    } ints[] = {
        {"ttl", &c.ttl},
        {"loop_wait", &c.loop_wait},
        {"retry_timeout", &c.retry_timeout},
        {"maximum_lag_on_failover", &c.maximum_lag_on_failover},
        {"maximum_lag_on_syncnode", &c.maximum_lag_on_syncnode},
        {"master_start_timeout", &c.primary_start_timeout}, /* legacy, overridden below */
        {"primary_start_timeout", &c.primary_start_timeout},
        {"primary_stop_timeout", &c.primary_stop_timeout},
        {"synchronous_node_count", &c.synchronous_node_count},
        {"max_timelines_history", &c.max_timelines_history},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (get_int(root, ints[i].key, ints[i].dst, "config", err) < 0)
            return false;
    }
    if (get_seconds(root, "member_slots_ttl", &c.member_slots_ttl, "config", err) < 0)
        return false;
    if (!read_sync_mode(root, &c, err) ||
        get_bool(root, "synchronous_mode_strict", &c.synchronous_mode_strict, "config", err) < 0 ||
        get_bool(root, "failsafe_mode", &c.failsafe_mode, "config", err) < 0 ||
        get_bool(root, "check_timeline", &c.check_timeline, "config", err) < 0 ||
        get_bool(root, "pause", &c.pause, "config", err) < 0)
        return false;
    pg = json_object_get(root, "postgresql");
    if (pg && !json_is_null(pg) && !check_postgresql(pg, &c, err))
        return false;
    c.standby_cluster = json_is_object(json_object_get(root, "standby_cluster"));
    if (!dcs_config_validate(&c, err))
        return false;
    c.raw = json_incref(root);
    *out = c;
    return true;
}

bool dcs_config_decode(const char *value, size_t len, struct dcs_config *out, struct dcs_err *err)
{
    json_t *root = pyjson_load(value, len, "config", err);
    bool ok;
    dcs_config_defaults(out);
    if (!root)
        return false;
    ok = dcs_config_from_json(root, out, err);
    json_decref(root);
    return ok;
}

bool dcs_config_validate(const struct dcs_config *c, struct dcs_err *err)
{
    if (c->ttl < DCS_TTL_MIN || c->ttl > DCS_TTL_MAX)
        return dcs_errf(err, "config: ttl %lld is outside %d..%d seconds", (long long)c->ttl,
                        DCS_TTL_MIN, DCS_TTL_MAX);
    if (c->loop_wait < DCS_LOOP_WAIT_MIN || c->loop_wait > DCS_TTL_MAX)
        return dcs_errf(err, "config: loop_wait %lld is outside %d..%d seconds",
                        (long long)c->loop_wait, DCS_LOOP_WAIT_MIN, DCS_TTL_MAX);
    if (c->retry_timeout < DCS_RETRY_TIMEOUT_MIN || c->retry_timeout > DCS_TTL_MAX)
        return dcs_errf(err, "config: retry_timeout %lld is outside %d..%d seconds",
                        (long long)c->retry_timeout, DCS_RETRY_TIMEOUT_MIN, DCS_TTL_MAX);
    if (c->ttl < 2 * c->loop_wait)
        return dcs_errf(err, "config: ttl (%lld) must be at least twice loop_wait (%lld)",
                        (long long)c->ttl, (long long)c->loop_wait);
    if (c->loop_wait + 2 * c->retry_timeout > c->ttl)
        return dcs_errf(err,
                        "config: loop_wait + 2 * retry_timeout (%lld) must not exceed ttl (%lld)",
                        (long long)(c->loop_wait + 2 * c->retry_timeout), (long long)c->ttl);
    if (c->maximum_lag_on_failover < 0)
        return dcs_errf(err, "config: maximum_lag_on_failover must not be negative");
    if (c->maximum_lag_on_syncnode < -1)
        return dcs_errf(err, "config: maximum_lag_on_syncnode must be -1 (off) or more");
    if (c->primary_start_timeout < 0 || c->primary_stop_timeout < 0)
        return dcs_errf(err, "config: primary_start_timeout and primary_stop_timeout must not "
                             "be negative");
    if (c->synchronous_node_count < 1 || c->synchronous_node_count > DCS_SYNC_NODE_COUNT_MAX)
        return dcs_errf(err, "config: synchronous_node_count %lld is outside 1..%d",
                        (long long)c->synchronous_node_count, DCS_SYNC_NODE_COUNT_MAX);
    if (c->max_timelines_history < 0)
        return dcs_errf(err, "config: max_timelines_history must not be negative");
    if (c->member_slots_ttl < 0)
        return dcs_errf(err, "config: member_slots_ttl must not be negative");
    return true;
}

/* ---- encode ------------------------------------------------------------------------------ */

static bool set_new(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

/* Sets key when always, when obj has it already, or when the value is not Patroni's default. */
static bool set_int(json_t *obj, const char *key, int64_t v, bool always, int64_t patroni_def)
{
    if (!always && !json_object_get(obj, key) && v == patroni_def)
        return true;
    return set_new(obj, key, json_integer(v));
}

static bool set_bool(json_t *obj, const char *key, bool v, bool always)
{
    if (!always && !json_object_get(obj, key) && !v)
        return true;
    return set_new(obj, key, json_boolean(v));
}

static bool encode_typed(json_t *o, const struct dcs_config *c)
{
    json_t *pg;
    if (!set_int(o, "ttl", c->ttl, true, 0) || !set_int(o, "loop_wait", c->loop_wait, true, 0) ||
        !set_int(o, "retry_timeout", c->retry_timeout, true, 0) ||
        !set_int(o, "maximum_lag_on_failover", c->maximum_lag_on_failover, true, 0) ||
        !set_int(o, "maximum_lag_on_syncnode", c->maximum_lag_on_syncnode, false, -1))
        return false;
    /* A config that only has the legacy key keeps using it. */
    if (json_object_get(o, "master_start_timeout") &&
        !json_object_get(o, "primary_start_timeout")) {
        if (!set_new(o, "master_start_timeout", json_integer(c->primary_start_timeout)))
            return false;
    } else if (!set_int(o, "primary_start_timeout", c->primary_start_timeout, false,
                        DCS_DEFAULT_PRIMARY_START_TIMEOUT)) {
        return false;
    }
    if (!set_int(o, "primary_stop_timeout", c->primary_stop_timeout, false, 0))
        return false;
    if (c->synchronous_mode != DCS_SYNC_OFF || json_object_get(o, "synchronous_mode")) {
        json_t *m = c->synchronous_mode == DCS_SYNC_QUORUM
                        ? json_string("quorum")
                        : json_boolean(c->synchronous_mode == DCS_SYNC_ON);
        if (!set_new(o, "synchronous_mode", m))
            return false;
    }
    if (!set_bool(o, "synchronous_mode_strict", c->synchronous_mode_strict, false) ||
        !set_int(o, "synchronous_node_count", c->synchronous_node_count, false, 1) ||
        !set_bool(o, "failsafe_mode", c->failsafe_mode, false) ||
        !set_bool(o, "check_timeline", c->check_timeline, false) ||
        !set_int(o, "max_timelines_history", c->max_timelines_history, false, 0) ||
        !set_bool(o, "pause", c->pause, false))
        return false;
    pg = json_object_get(o, "postgresql");
    if (!json_is_object(pg)) {
        if (!set_new(o, "postgresql", json_object()))
            return false;
        pg = json_object_get(o, "postgresql");
    }
    return set_bool(pg, "use_pg_rewind", c->use_pg_rewind, true) &&
           set_bool(pg, "use_slots", c->use_slots, true);
}

char *dcs_config_encode(const struct dcs_config *c, size_t *len, struct dcs_err *err)
{
    json_t *o;
    char *text = NULL;

    if (!dcs_config_validate(c, err))
        return NULL;
    if (c->raw && !json_is_object(c->raw)) {
        dcs_errf(err, "config: raw value is not an object");
        return NULL;
    }
    o = c->raw ? json_deep_copy(c->raw) : json_object();
    if (o && encode_typed(o, c))
        text = pyjson_dump(o, len);
    if (!text)
        dcs_errf(err, "config: out of memory or value not representable");
    json_decref(o);
    return text;
}

char *dcs_config_dump(const struct dcs_config *c, size_t *len)
{
    if (c->raw)
        return pyjson_dump(c->raw, len);
    json_t *empty = json_object();
    char *s = empty ? pyjson_dump(empty, len) : NULL;
    json_decref(empty);
    return s;
}

bool dcs_config_patch(const struct dcs_config *cur, const char *patch, size_t len,
                      struct dcs_config *out, bool *changed, struct dcs_err *err)
{
    json_t *p, *result;
    bool ok;

    dcs_config_defaults(out);
    p = pyjson_load(patch, len, "config patch", err);
    if (!p)
        return false;
    if (!json_is_object(p)) {
        dcs_errf(err, "config patch: must be a JSON object, not %s", pyjson_type_name(p));
        json_decref(p);
        return false;
    }
    result = dcs_merge_patch_changed(cur ? cur->raw : NULL, p, changed);
    json_decref(p);
    if (!result)
        return dcs_errf(err, "config patch: out of memory");
    ok = dcs_config_from_json(result, out, err);
    json_decref(result);
    return ok;
}

/* ---- accessors --------------------------------------------------------------------------- */

const json_t *dcs_config_parameters(const struct dcs_config *c)
{
    const json_t *p = json_object_get(json_object_get(c->raw, "postgresql"), "parameters");
    return json_is_object(p) ? p : NULL;
}

const json_t *dcs_config_pg_hba(const struct dcs_config *c)
{
    const json_t *p = json_object_get(json_object_get(c->raw, "postgresql"), "pg_hba");
    return json_is_array(p) ? p : NULL;
}

bool dcs_config_param_text(const json_t *v, char *out, size_t cap)
{
    int n;
    switch (json_typeof(v)) {
    case JSON_STRING:
        n = snprintf(out, cap, "%s", json_string_value(v));
        break;
    case JSON_INTEGER:
        n = snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        return pyjson_format_real(json_real_value(v), out, cap);
    case JSON_TRUE:
        n = snprintf(out, cap, "on");
        break;
    case JSON_FALSE:
        n = snprintf(out, cap, "off");
        break;
    default:
        return false;
    }
    return n >= 0 && (size_t)n < cap;
}
