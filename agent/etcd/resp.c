/* etcd codec: strict parsing of gateway responses (kv, txn, lease, auth, members, watch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"

#define P ETCD_E_PROTOCOL

void etcd_kv_clear(struct etcd_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

static void kvs_free(struct etcd_kv *kvs, size_t n)
{
    for (size_t i = 0; kvs && i < n; i++)
        etcd_kv_clear(&kvs[i]);
    free(kvs);
}

void etcd_range_result_clear(struct etcd_range_result *r)
{
    if (!r)
        return;
    kvs_free(r->kvs, r->n_kvs);
    memset(r, 0, sizeof(*r));
}

void etcd_put_result_clear(struct etcd_put_result *r)
{
    if (!r)
        return;
    etcd_kv_clear(&r->prev_kv);
    memset(r, 0, sizeof(*r));
}

void etcd_delete_result_clear(struct etcd_delete_result *r)
{
    if (!r)
        return;
    kvs_free(r->prev_kvs, r->n_prev_kvs);
    memset(r, 0, sizeof(*r));
}

static void op_result_clear(struct etcd_op_result *o)
{
    switch (o->type) {
    case ETCD_OP_RANGE:
        etcd_range_result_clear(&o->range);
        break;
    case ETCD_OP_PUT:
        etcd_put_result_clear(&o->put);
        break;
    case ETCD_OP_DELETE:
        etcd_delete_result_clear(&o->del);
        break;
    }
}

void etcd_txn_result_clear(struct etcd_txn_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->responses && i < r->n_responses; i++)
        op_result_clear(&r->responses[i]);
    free(r->responses);
    memset(r, 0, sizeof(*r));
}

void etcd_lease_info_clear(struct etcd_lease_info *r)
{
    if (!r)
        return;
    kvs_free(r->keys, r->n_keys);
    memset(r, 0, sizeof(*r));
}

void etcd_events_free(struct etcd_event *ev, size_t n)
{
    for (size_t i = 0; ev && i < n; i++) {
        etcd_kv_clear(&ev[i].kv);
        etcd_kv_clear(&ev[i].prev_kv);
    }
    free(ev);
}

void etcd_watch_msg_clear(struct etcd_watch_msg *m)
{
    if (!m)
        return;
    etcd_events_free(m->events, m->n_events);
    memset(m, 0, sizeof(*m));
}

/* ---- pieces ---- */

int etcd_parse_header(const json_t *obj, bool required, struct etcd_header *h)
{
    memset(h, 0, sizeof(*h));
    json_t *hj;
    if (!etcd_json_object(obj, "header", &hj) || (!hj && required))
        return P;
    if (!hj)
        return 0;
    int64_t rev;
    if (!etcd_json_u64(hj, "cluster_id", false, &h->cluster_id) ||
        !etcd_json_u64(hj, "member_id", false, &h->member_id) ||
        !etcd_json_i64(hj, "revision", false, &rev) ||
        !etcd_json_u64(hj, "raft_term", false, &h->raft_term) || rev < 0)
        return P;
    h->revision = rev;
    return 0;
}

int etcd_parse_kv(const json_t *obj, struct etcd_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    if (!json_is_object(obj))
        return P;
    int rc = etcd_json_bytes(obj, "key", true, &kv->key, &kv->key_len);
    if (rc == 0)
        rc = etcd_json_bytes(obj, "value", false, &kv->value, &kv->value_len);
    if (rc == 0 && (!etcd_json_i64(obj, "create_revision", false, &kv->create_revision) ||
                    !etcd_json_i64(obj, "mod_revision", false, &kv->mod_revision) ||
                    !etcd_json_i64(obj, "version", false, &kv->version) ||
                    !etcd_json_i64(obj, "lease", false, &kv->lease) || kv->create_revision < 0 ||
                    kv->mod_revision < 0 || kv->version < 0))
        rc = P;
    if (rc != 0)
        etcd_kv_clear(kv);
    return rc;
}

int etcd_parse_kvs(const json_t *arr, struct etcd_kv **kvs, size_t *n)
{
    *kvs = NULL;
    *n = 0;
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return P;
    size_t count = json_array_size(arr);
    if (count == 0)
        return 0;
    struct etcd_kv *out = calloc(count, sizeof(*out));
    if (!out)
        return ETCD_E_NOMEM;
    for (size_t i = 0; i < count; i++) {
        int rc = etcd_parse_kv(json_array_get(arr, i), &out[i]);
        if (rc != 0) {
            kvs_free(out, i);
            return rc;
        }
    }
    *kvs = out;
    *n = count;
    return 0;
}

/* ---- kv ---- */

int etcd_parse_range(const json_t *obj, bool nested, struct etcd_range_result *r)
{
    memset(r, 0, sizeof(*r));
    json_t *kvs;
    int rc = etcd_parse_header(obj, !nested, &r->header);
    if (rc == 0 &&
        (!etcd_json_array(obj, "kvs", &kvs) || !etcd_json_i64(obj, "count", false, &r->count) ||
         !etcd_json_bool(obj, "more", &r->more) || r->count < 0))
        rc = P;
    if (rc == 0)
        rc = etcd_parse_kvs(kvs, &r->kvs, &r->n_kvs);
    if (rc == 0 && (size_t)r->count < r->n_kvs)
        rc = P;
    if (rc != 0)
        etcd_range_result_clear(r);
    return rc;
}

int etcd_parse_put(const json_t *obj, bool nested, struct etcd_put_result *r)
{
    memset(r, 0, sizeof(*r));
    json_t *prev;
    int rc = etcd_parse_header(obj, !nested, &r->header);
    if (rc == 0 && !etcd_json_object(obj, "prev_kv", &prev))
        rc = P;
    if (rc == 0 && prev) {
        rc = etcd_parse_kv(prev, &r->prev_kv);
        r->has_prev = rc == 0;
    }
    if (rc != 0)
        etcd_put_result_clear(r);
    return rc;
}

int etcd_parse_delete(const json_t *obj, bool nested, struct etcd_delete_result *r)
{
    memset(r, 0, sizeof(*r));
    json_t *prev;
    int rc = etcd_parse_header(obj, !nested, &r->header);
    if (rc == 0 && (!etcd_json_i64(obj, "deleted", false, &r->deleted) ||
                    !etcd_json_array(obj, "prev_kvs", &prev) || r->deleted < 0))
        rc = P;
    if (rc == 0)
        rc = etcd_parse_kvs(prev, &r->prev_kvs, &r->n_prev_kvs);
    if (rc != 0)
        etcd_delete_result_clear(r);
    return rc;
}

static const char *const op_response_names[] = {
    [ETCD_OP_RANGE] = "response_range",
    [ETCD_OP_PUT] = "response_put",
    [ETCD_OP_DELETE] = "response_delete_range",
};

static int parse_op_response(const json_t *item, enum etcd_op_type type, struct etcd_op_result *o)
{
    o->type = type;
    json_t *body;
    if (!json_is_object(item) || (unsigned)type > ETCD_OP_DELETE ||
        !etcd_json_object(item, op_response_names[type], &body) || !body)
        return P;
    switch (type) {
    case ETCD_OP_RANGE:
        return etcd_parse_range(body, true, &o->range);
    case ETCD_OP_PUT:
        return etcd_parse_put(body, true, &o->put);
    case ETCD_OP_DELETE:
        return etcd_parse_delete(body, true, &o->del);
    }
    return P;
}

int etcd_parse_txn(const json_t *obj, const struct etcd_txn_req *req, struct etcd_txn_result *r)
{
    memset(r, 0, sizeof(*r));
    json_t *arr;
    int rc = etcd_parse_header(obj, true, &r->header);
    if (rc == 0 && (!etcd_json_bool(obj, "succeeded", &r->succeeded) ||
                    !etcd_json_array(obj, "responses", &arr)))
        rc = P;
    if (rc != 0)
        return rc;
    const struct etcd_op *ops = r->succeeded ? req->success : req->failure;
    size_t n = r->succeeded ? req->n_success : req->n_failure;
    if ((arr ? json_array_size(arr) : 0) != n) {
        memset(r, 0, sizeof(*r));
        return P;
    }
    if (n == 0)
        return 0;
    r->responses = calloc(n, sizeof(*r->responses));
    if (!r->responses)
        return ETCD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = parse_op_response(json_array_get(arr, i), ops[i].type, &r->responses[i]);
        if (rc != 0)
            break;
        r->n_responses = i + 1;
    }
    if (rc != 0)
        etcd_txn_result_clear(r);
    return rc;
}

/* ---- lease ---- */

int etcd_parse_lease_grant(const json_t *obj, int64_t *id, int64_t *ttl)
{
    struct etcd_header h;
    const char *error;
    *id = 0;
    *ttl = 0;
    if (etcd_parse_header(obj, true, &h) != 0 || !etcd_json_i64(obj, "ID", true, id) ||
        !etcd_json_i64(obj, "TTL", true, ttl) || !etcd_json_str(obj, "error", false, &error) ||
        *error || *id <= 0 || *ttl <= 0) {
        *id = 0;
        *ttl = 0;
        return P;
    }
    return 0;
}

int etcd_parse_keepalive(const json_t *obj, int64_t id, int64_t *ttl, struct etcd_error *e)
{
    *ttl = 0;
    json_t *res;
    if (json_is_object(json_object_get(obj, "error")))
        return etcd_error_from_json(200, obj, e->endpoint, e);
    struct etcd_header h;
    int64_t got_id;
    if (!etcd_json_object(obj, "result", &res) || !res || etcd_parse_header(res, true, &h) != 0 ||
        !etcd_json_i64(res, "ID", true, &got_id) || got_id != id ||
        !etcd_json_i64(res, "TTL", false, ttl) || *ttl < 0) {
        *ttl = 0;
        etcd_error_set(e, P, 200, -1, e->endpoint, "malformed keepalive answer");
        return P;
    }
    if (*ttl == 0) {
        etcd_error_set(e, ETCD_E_LEASE_NOT_FOUND, 200, -1, e->endpoint, "lease expired");
        return ETCD_E_LEASE_NOT_FOUND;
    }
    return 0;
}

int etcd_parse_timetolive(const json_t *obj, struct etcd_lease_info *r)
{
    memset(r, 0, sizeof(*r));
    struct etcd_header h;
    json_t *keys;
    if (etcd_parse_header(obj, true, &h) != 0 || !etcd_json_i64(obj, "ID", true, &r->id) ||
        !etcd_json_i64(obj, "TTL", false, &r->ttl) ||
        !etcd_json_i64(obj, "grantedTTL", false, &r->granted_ttl) ||
        !etcd_json_array(obj, "keys", &keys) || r->ttl < -1 || r->granted_ttl < 0)
        goto bad;
    size_t n = keys ? json_array_size(keys) : 0;
    if (n == 0)
        return 0;
    r->keys = calloc(n, sizeof(*r->keys));
    if (!r->keys) {
        memset(r, 0, sizeof(*r));
        return ETCD_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *k = json_array_get(keys, i);
        if (!json_is_string(k))
            goto bad;
        int rc = etcd_b64_decode(json_string_value(k), json_string_length(k), ETCD_MAX_VALUE,
                                 &r->keys[i].key, &r->keys[i].key_len);
        if (rc != 0) {
            etcd_lease_info_clear(r);
            return rc;
        }
        r->n_keys = i + 1;
    }
    return 0;
bad:
    etcd_lease_info_clear(r);
    return P;
}

/* ---- auth, version, members ---- */

int etcd_parse_auth(const json_t *obj, const char **token)
{
    struct etcd_header h;
    if (etcd_parse_header(obj, false, &h) != 0 || !etcd_json_str(obj, "token", true, token) ||
        !**token || strlen(*token) > 4096)
        return P;
    for (const char *p = *token; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return P; /* it goes into an HTTP header */
    return 0;
}

static bool parse_major_minor(const char *v, int *major, int *minor)
{
    char *end;
    long ma = strtol(v, &end, 10);
    if (end == v || *end != '.' || ma < 0 || ma > 1000)
        return false;
    const char *p = end + 1;
    long mi = strtol(p, &end, 10);
    if (end == p || mi < 0 || mi > 1000)
        return false;
    *major = (int)ma;
    *minor = (int)mi;
    return true;
}

int etcd_parse_version(const json_t *obj, int *major, int *minor, const char **server)
{
    const char *cluster;
    if (!etcd_json_str(obj, "etcdserver", true, server) ||
        !etcd_json_str(obj, "etcdcluster", true, &cluster))
        return P;
    /* A member that has not joined yet reports etcdcluster "not_decided": use the server. */
    if (!parse_major_minor(cluster, major, minor) && !parse_major_minor(*server, major, minor))
        return P;
    return 0;
}

int etcd_parse_members(const json_t *obj, void (*add)(void *arg, const char *url, size_t len),
                       void *arg)
{
    json_t *members;
    struct etcd_header h;
    if (etcd_parse_header(obj, true, &h) != 0 || !etcd_json_array(obj, "members", &members))
        return P;
    size_t n = members ? json_array_size(members) : 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(members, i);
        json_t *urls;
        if (!json_is_object(m) || !etcd_json_array(m, "clientURLs", &urls))
            return P;
        for (size_t j = 0; urls && j < json_array_size(urls); j++)
            if (!json_is_string(json_array_get(urls, j)))
                return P;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *urls = json_object_get(json_array_get(members, i), "clientURLs");
        for (size_t j = 0; urls && j < json_array_size(urls); j++) {
            const json_t *u = json_array_get(urls, j);
            add(arg, json_string_value(u), json_string_length(u));
        }
    }
    return 0;
}

/* ---- watch ---- */

static int parse_event(const json_t *obj, struct etcd_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (!json_is_object(obj))
        return P;
    const json_t *type = json_object_get(obj, "type");
    if (!type || (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0) ||
        (json_is_integer(type) && json_integer_value(type) == 0))
        ev->type = ETCD_EVENT_PUT;
    else if ((json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0) ||
             (json_is_integer(type) && json_integer_value(type) == 1))
        ev->type = ETCD_EVENT_DELETE;
    else
        return P;
    json_t *kv;
    json_t *prev;
    if (!etcd_json_object(obj, "kv", &kv) || !kv || !etcd_json_object(obj, "prev_kv", &prev))
        return P;
    int rc = etcd_parse_kv(kv, &ev->kv);
    if (rc == 0 && prev) {
        rc = etcd_parse_kv(prev, &ev->prev_kv);
        ev->has_prev = rc == 0;
    }
    if (rc == 0 && ev->kv.mod_revision <= 0)
        rc = P; /* every event has a revision */
    if (rc != 0) {
        etcd_kv_clear(&ev->kv);
        etcd_kv_clear(&ev->prev_kv);
    }
    return rc;
}

int etcd_parse_watch_msg(const char *line, size_t len, struct etcd_watch_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->err.grpc_code = -1;
    if (len > ETCD_MAX_WATCH_MSG)
        return P;
    json_t *j = etcd_json_load(line, len);
    if (!j)
        return P;
    int rc = 0;
    json_t *res;
    json_t *evs;
    const char *reason;
    if (json_is_object(json_object_get(j, "error"))) {
        m->is_error = true;
        etcd_error_from_json(200, j, NULL, &m->err);
        goto out;
    }
    if (!etcd_json_object(j, "result", &res) || !res) {
        rc = P;
        goto out;
    }
    rc = etcd_parse_header(res, true, &m->header);
    if (rc == 0 && (!etcd_json_i64(res, "watch_id", false, &m->watch_id) ||
                    !etcd_json_bool(res, "created", &m->created) ||
                    !etcd_json_bool(res, "canceled", &m->canceled) ||
                    !etcd_json_i64(res, "compact_revision", false, &m->compact_revision) ||
                    !etcd_json_str(res, "cancel_reason", false, &reason) ||
                    !etcd_json_array(res, "events", &evs) || m->compact_revision < 0))
        rc = P;
    if (rc != 0)
        goto out;
    snprintf(m->cancel_reason, sizeof(m->cancel_reason), "%s", reason);
    size_t n = evs ? json_array_size(evs) : 0;
    if (n > 0) {
        m->events = calloc(n, sizeof(*m->events));
        if (!m->events) {
            rc = ETCD_E_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            rc = parse_event(json_array_get(evs, i), &m->events[i]);
            if (rc != 0)
                break;
            m->n_events = i + 1;
        }
    }
out:
    json_decref(j);
    if (rc != 0)
        etcd_watch_msg_clear(m);
    return rc;
}
