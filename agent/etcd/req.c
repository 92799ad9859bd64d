/* etcd codec: request bodies built from typed C structs (int64 as strings, bytes as base64). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"

/* Each setter takes ownership of nothing and reports failure through *ok, so that a builder
 * reads as a flat list of fields and checks once at the end. */

static void set_new(json_t *o, const char *name, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(o, name, v) != 0)
        *ok = false;
}

static void set_i64(json_t *o, const char *name, int64_t v, bool *ok)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    set_new(o, name, json_string(buf), ok);
}

static void set_bytes(json_t *o, const char *name, const void *data, size_t n, bool *ok)
{
    if (n > ETCD_MAX_VALUE || (n > 0 && !data)) {
        *ok = false;
        return;
    }
    char *b = etcd_b64_encode(data, n);
    if (!b) {
        *ok = false;
        return;
    }
    set_new(o, name, json_string(b), ok);
    free(b);
}

static void set_true(json_t *o, const char *name, bool flag, bool *ok)
{
    if (flag)
        set_new(o, name, json_true(), ok);
}

/* key plus, for a prefix, range_end. */
static void set_key(json_t *o, const char *key, bool prefix, bool *ok)
{
    if (!key) {
        *ok = false;
        return;
    }
    size_t len = strlen(key);
    set_bytes(o, "key", key, len, ok);
    if (!prefix || !*ok)
        return;
    char *end = malloc(len + 1);
    if (!end) {
        *ok = false;
        return;
    }
    size_t n = etcd_prefix_end(key, len, end);
    set_bytes(o, "range_end", end, n, ok);
    free(end);
}

static json_t *finish(json_t *o, bool ok)
{
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *etcd_req_range(const struct etcd_range_req *r)
{
    json_t *o = json_object();
    bool ok = o && r;
    if (!ok)
        return finish(o, false);
    set_key(o, r->key, r->prefix, &ok);
    if (r->limit < 0 || r->revision < 0)
        ok = false;
    if (r->limit > 0)
        set_i64(o, "limit", r->limit, &ok);
    if (r->revision > 0)
        set_i64(o, "revision", r->revision, &ok);
    set_true(o, "serializable", r->serializable, &ok);
    set_true(o, "keys_only", r->keys_only, &ok);
    set_true(o, "count_only", r->count_only, &ok);
    return finish(o, ok);
}

json_t *etcd_req_put(const struct etcd_put_req *r)
{
    json_t *o = json_object();
    bool ok = o && r;
    if (!ok)
        return finish(o, false);
    set_key(o, r->key, false, &ok);
    set_bytes(o, "value", r->value, r->value_len, &ok);
    if (r->lease < 0)
        ok = false;
    if (r->lease != 0)
        set_i64(o, "lease", r->lease, &ok);
    set_true(o, "prev_kv", r->prev_kv, &ok);
    return finish(o, ok);
}

json_t *etcd_req_delete(const struct etcd_delete_req *r)
{
    json_t *o = json_object();
    bool ok = o && r;
    if (!ok)
        return finish(o, false);
    set_key(o, r->key, r->prefix, &ok);
    set_true(o, "prev_kv", r->prev_kv, &ok);
    return finish(o, ok);
}

/* The only place that names compare targets, results and fields. */
static const struct {
    const char *target;
    const char *field;
} cmp_names[] = {
    [ETCD_CMP_VERSION] = {"VERSION", "version"}, [ETCD_CMP_CREATE] = {"CREATE", "create_revision"},
    [ETCD_CMP_MOD] = {"MOD", "mod_revision"},    [ETCD_CMP_VALUE] = {"VALUE", "value"},
    [ETCD_CMP_LEASE] = {"LEASE", "lease"},
};
static const char *const cmp_results[] = {
    [ETCD_EQUAL] = "EQUAL",
    [ETCD_GREATER] = "GREATER",
    [ETCD_LESS] = "LESS",
    [ETCD_NOT_EQUAL] = "NOT_EQUAL",
};

static json_t *cmp_json(const struct etcd_cmp *c)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    if (!ok || (unsigned)c->target > ETCD_CMP_LEASE || (unsigned)c->op > ETCD_NOT_EQUAL)
        return finish(o, false);
    set_new(o, "target", json_string(cmp_names[c->target].target), &ok);
    set_key(o, c->key, false, &ok);
    set_new(o, "result", json_string(cmp_results[c->op]), &ok);
    if (c->target == ETCD_CMP_VALUE)
        set_bytes(o, cmp_names[c->target].field, c->value, c->value_len, &ok);
    else
        set_i64(o, cmp_names[c->target].field, c->number, &ok);
    return finish(o, ok);
}

static json_t *op_json(const struct etcd_op *op)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    if (!ok)
        return NULL;
    switch (op->type) {
    case ETCD_OP_RANGE:
        set_new(o, "request_range", etcd_req_range(&op->range), &ok);
        break;
    case ETCD_OP_PUT:
        set_new(o, "request_put", etcd_req_put(&op->put), &ok);
        break;
    case ETCD_OP_DELETE:
        set_new(o, "request_delete_range", etcd_req_delete(&op->del), &ok);
        break;
    default:
        ok = false;
    }
    return finish(o, ok);
}

static void set_ops(json_t *o, const char *name, const struct etcd_op *ops, size_t n, bool *ok)
{
    if (n == 0)
        return;
    json_t *a = json_array();
    if (!a || !ops) {
        json_decref(a);
        *ok = false;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, op_json(&ops[i])) != 0)
            *ok = false;
    set_new(o, name, a, ok);
}

json_t *etcd_req_txn(const struct etcd_txn_req *r)
{
    json_t *o = json_object();
    bool ok = o && r;
    if (!ok)
        return finish(o, false);
    if (r->n_cmps > 0) {
        json_t *a = json_array();
        if (!a || !r->cmps)
            ok = false;
        for (size_t i = 0; ok && i < r->n_cmps; i++)
            if (json_array_append_new(a, cmp_json(&r->cmps[i])) != 0)
                ok = false;
        if (ok)
            set_new(o, "compare", a, &ok);
        else
            json_decref(a);
    }
    set_ops(o, "success", r->success, r->n_success, &ok);
    set_ops(o, "failure", r->failure, r->n_failure, &ok);
    return finish(o, ok);
}

json_t *etcd_req_lease_grant(int64_t ttl_s, int64_t id)
{
    json_t *o = json_object();
    bool ok = o && ttl_s > 0 && id >= 0;
    if (!ok)
        return finish(o, false);
    set_i64(o, "TTL", ttl_s, &ok);
    if (id != 0)
        set_i64(o, "ID", id, &ok);
    return finish(o, ok);
}

json_t *etcd_req_lease_id(int64_t id)
{
    json_t *o = json_object();
    bool ok = o && id > 0;
    if (!ok)
        return finish(o, false);
    set_i64(o, "ID", id, &ok);
    return finish(o, ok);
}

json_t *etcd_req_lease_ttl(int64_t id, bool keys)
{
    json_t *o = etcd_req_lease_id(id);
    bool ok = o != NULL;
    if (!ok)
        return NULL;
    set_true(o, "keys", keys, &ok);
    return finish(o, ok);
}

json_t *etcd_req_auth(const char *user, const char *password)
{
    json_t *o = json_object();
    bool ok = o && user && password;
    if (!ok)
        return finish(o, false);
    set_new(o, "name", json_string(user), &ok);
    set_new(o, "password", json_string(password), &ok);
    return finish(o, ok);
}

json_t *etcd_req_watch(const char *prefix, int64_t start_revision, bool prev_kv)
{
    json_t *o = json_object();
    json_t *c = json_object();
    bool ok = o && c && prefix && start_revision >= 0;
    if (!ok) {
        json_decref(c);
        return finish(o, false);
    }
    set_key(c, prefix, true, &ok);
    if (start_revision > 0)
        set_i64(c, "start_revision", start_revision, &ok);
    set_true(c, "prev_kv", prev_kv, &ok);
    set_true(c, "progress_notify", true, &ok);
    set_new(o, "create_request", c, &ok);
    return finish(o, ok);
}
