/* The latest ha status snapshot (parsed once, bodies pre-serialized) and proxy counters. */
#include "web/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "platform/log.h"

#define LOG_MODULE "web"

enum { DEFAULT_TTL_MS = 10000, DEFAULT_LOOP_WAIT_MS = 1000 };

void web_snapshot_init(struct web_snapshot *s)
{
    memset(s, 0, sizeof(*s));
}

static void body_free(struct web_body *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = 0;
}

static void status_free(struct web_status *st)
{
    if (!st)
        return;
    body_free(&st->patroni_body);
    body_free(&st->cluster_body);
    body_free(&st->history_body);
    body_free(&st->config_body);
    json_decref(st->root);
    free(st);
}

void web_snapshot_clear(struct web_snapshot *s)
{
    status_free(s->st);
    web_snapshot_init(s);
}

static bool body_set(struct web_body *b, const json_t *v)
{
    if (!v || json_is_null(v))
        return true;
    b->buf = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!b->buf)
        return false;
    b->len = strlen(b->buf);
    return true;
}

/* An integer (or a non-negative real) member; false when absent or of another type. */
static bool get_i64(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9.2e18 && d < 9.2e18)) /* converting it would be undefined behaviour */
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

static uint64_t get_u64(const json_t *obj, const char *key, uint64_t dflt)
{
    int64_t v;
    return get_i64(obj, key, &v) && v >= 0 ? (uint64_t)v : dflt;
}

static const char *get_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static json_t *get_obj(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_object(v) ? v : NULL;
}

static void derive_patroni(struct web_status *st)
{
    json_t *p = st->patroni;
    st->state = get_str(p, "state");
    st->role = get_str(p, "role");
    json_t *meta = get_obj(p, "patroni");
    st->name = get_str(meta, "name");
    st->scope = get_str(meta, "scope");
    json_t *xlog = get_obj(p, "xlog");
    st->has_replayed = get_i64(xlog, "replayed_location", &st->replayed_location);
    if (!get_i64(xlog, "received_location", &st->received_location))
        st->received_location = 0;
    if (!get_i64(xlog, "location", &st->xlog_location))
        st->xlog_location = 0;
    st->tags = get_obj(p, "tags");
}

static struct web_status *status_parse(const void *json, size_t len, uint64_t now_boot_ms)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, 0, &err);
    if (!json_is_object(root)) {
        log_warn("status snapshot rejected", "err=\"%s\" len=%zu",
                 root ? "not an object" : err.text, len);
        json_decref(root);
        return NULL;
    }
    struct web_status *st = calloc(1, sizeof(*st));
    if (!st) {
        log_error("out of memory for a status snapshot");
        json_decref(root);
        return NULL;
    }
    st->root = root;
    st->boot_ms = get_u64(root, "boot_ms", now_boot_ms);
    if (!get_i64(root, "wall_ms", &st->wall_ms))
        st->wall_ms = 0;
    st->ttl_ms = get_u64(root, "ttl_ms", 0);
    st->loop_wait_ms = get_u64(root, "loop_wait_ms", 0);
    st->leader_until_boot_ms = get_u64(root, "leader_until_boot_ms", 0);
    st->dcs_ok = json_is_true(json_object_get(root, "dcs_ok"));
    st->paused = json_is_true(json_object_get(root, "paused"));
    st->sync_mode = json_is_true(json_object_get(root, "sync_mode"));
    if (!get_i64(root, "dcs_last_seen", &st->dcs_last_seen))
        st->dcs_last_seen = 0;
    st->has_optime = get_i64(root, "optime", &st->optime);
    st->sync = get_obj(root, "sync");
    st->patroni = get_obj(root, "patroni");
    st->cluster = get_obj(root, "cluster");
    st->history = json_object_get(root, "history");
    st->config = get_obj(root, "config");
    st->has_failover_field = json_object_get(root, "failover") != NULL;
    st->failover = get_obj(root, "failover");
    derive_patroni(st);
    if (!body_set(&st->patroni_body, st->patroni) || !body_set(&st->cluster_body, st->cluster) ||
        !body_set(&st->history_body, json_is_array(st->history) ? st->history : NULL) ||
        !body_set(&st->config_body, st->config)) {
        log_error("out of memory serializing a status snapshot");
        status_free(st);
        return NULL;
    }
    return st;
}

bool web_snapshot_set_status(struct web_snapshot *s, const void *json, size_t len,
                             uint64_t now_boot_ms)
{
    struct web_status *st = status_parse(json, len, now_boot_ms);
    if (!st)
        return false;
    status_free(s->st);
    s->st = st;
    s->status_count++;
    return true;
}

void web_snapshot_set_proxy(struct web_snapshot *s, const struct msg_proxy_stats *ps,
                            uint64_t now_boot_ms)
{
    s->proxy = *ps;
    s->proxy.leader[sizeof(s->proxy.leader) - 1] = '\0';
    s->has_proxy = true;
    s->proxy_boot_ms = now_boot_ms;
}

uint64_t web_status_ttl_ms(const struct web_status *st)
{
    return st && st->ttl_ms ? st->ttl_ms : DEFAULT_TTL_MS;
}

uint64_t web_status_loop_wait_ms(const struct web_status *st)
{
    return st && st->loop_wait_ms ? st->loop_wait_ms : DEFAULT_LOOP_WAIT_MS;
}

const char *web_status_leader_name(const struct web_status *st)
{
    if (!st)
        return NULL;
    json_t *members = json_object_get(st->cluster, "members");
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *role = get_str(m, "role");
        if (strcmp(role, "leader") == 0 || strcmp(role, "standby_leader") == 0) {
            const char *name = get_str(m, "name");
            return name[0] ? name : NULL;
        }
    }
    return NULL;
}

bool web_role_is_primary(const char *role)
{
    return role && (strcmp(role, "master") == 0 || strcmp(role, "primary") == 0);
}
