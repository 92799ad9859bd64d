/* etcd client: key-value calls (range, put, delete, txn) over the gateway. */
#include <string.h>

#include "agent/etcd/internal.h"

/* Records a parse failure of an answer as the call's error. */
static int parsed(struct etcd_client *c, const char *what, int rc)
{
    if (rc != 0)
        etcd_error_set(&c->last, rc, 200, -1, c->eps[c->cur], "malformed %s answer", what);
    return rc;
}

int etcd_range(struct etcd_client *c, const struct etcd_range_req *req,
               struct etcd_range_result *out)
{
    json_t *resp;
    memset(out, 0, sizeof(*out));
    int rc = etcd_call(c, "/kv/range", etcd_req_range(req), false, &resp);
    if (rc != 0)
        return rc;
    rc = parsed(c, "range", etcd_parse_range(resp, false, out));
    json_decref(resp);
    return rc;
}

int etcd_put(struct etcd_client *c, const struct etcd_put_req *req, struct etcd_put_result *out)
{
    json_t *resp;
    struct etcd_put_result tmp = {0};
    struct etcd_put_result *r = out ? out : &tmp;
    memset(r, 0, sizeof(*r));
    int rc = etcd_call(c, "/kv/put", etcd_req_put(req), false, &resp);
    if (rc != 0)
        return rc;
    rc = parsed(c, "put", etcd_parse_put(resp, false, r));
    json_decref(resp);
    if (!out)
        etcd_put_result_clear(&tmp);
    return rc;
}

int etcd_delete(struct etcd_client *c, const struct etcd_delete_req *req,
                struct etcd_delete_result *out)
{
    json_t *resp;
    struct etcd_delete_result tmp = {0};
    struct etcd_delete_result *r = out ? out : &tmp;
    memset(r, 0, sizeof(*r));
    int rc = etcd_call(c, "/kv/deleterange", etcd_req_delete(req), false, &resp);
    if (rc != 0)
        return rc;
    rc = parsed(c, "deleterange", etcd_parse_delete(resp, false, r));
    json_decref(resp);
    if (!out)
        etcd_delete_result_clear(&tmp);
    return rc;
}

int etcd_txn(struct etcd_client *c, const struct etcd_txn_req *req, struct etcd_txn_result *out)
{
    json_t *resp;
    memset(out, 0, sizeof(*out));
    int rc = etcd_call(c, "/kv/txn", req ? etcd_req_txn(req) : NULL, false, &resp);
    if (rc != 0)
        return rc;
    rc = parsed(c, "txn", etcd_parse_txn(resp, req, out));
    json_decref(resp);
    return rc;
}
