/* etcd client: lease calls (grant, keepalive, revoke, timetolive) over the gateway. */
#include <stdio.h>
#include <string.h>

#include "agent/etcd/internal.h"

static int malformed(struct etcd_client *c, const char *what, int rc)
{
    if (rc == ETCD_E_PROTOCOL || rc == ETCD_E_NOMEM)
        etcd_error_set(&c->last, rc, 200, -1, c->eps[c->cur], "malformed %s answer", what);
    return rc;
}

int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, int64_t id, int64_t *id_out,
                     int64_t *ttl_out)
{
    json_t *resp;
    int64_t got_id = 0;
    int64_t got_ttl = 0;
    int rc = etcd_call(c, "/lease/grant", etcd_req_lease_grant(ttl_s, id), false, &resp);
    if (rc == 0) {
        rc = malformed(c, "lease grant", etcd_parse_lease_grant(resp, &got_id, &got_ttl));
        if (rc == 0 && id != 0 && got_id != id)
            rc = malformed(c, "lease grant", ETCD_E_PROTOCOL);
        json_decref(resp);
    }
    if (id_out)
        *id_out = rc == 0 ? got_id : 0;
    if (ttl_out)
        *ttl_out = rc == 0 ? got_ttl : 0;
    return rc;
}

int etcd_lease_keepalive(struct etcd_client *c, int64_t id, int64_t *ttl_out)
{
    json_t *resp;
    int64_t ttl = 0;
    int rc = etcd_call(c, "/lease/keepalive", etcd_req_lease_id(id), true, &resp);
    if (rc == 0) {
        snprintf(c->last.endpoint, sizeof(c->last.endpoint), "%s", c->eps[c->cur]);
        rc = etcd_parse_keepalive(resp, id, &ttl, &c->last);
        json_decref(resp);
    }
    if (ttl_out)
        *ttl_out = rc == 0 ? ttl : 0;
    return rc;
}

int etcd_lease_revoke(struct etcd_client *c, int64_t id)
{
    json_t *resp;
    int rc = etcd_call(c, "/lease/revoke", etcd_req_lease_id(id), false, &resp);
    if (rc == 0) {
        struct etcd_header h;
        rc = malformed(c, "lease revoke", etcd_parse_header(resp, true, &h));
        json_decref(resp);
    }
    return rc;
}

int etcd_lease_timetolive(struct etcd_client *c, int64_t id, bool keys, struct etcd_lease_info *out)
{
    json_t *resp;
    memset(out, 0, sizeof(*out));
    int rc = etcd_call(c, "/lease/timetolive", etcd_req_lease_ttl(id, keys), false, &resp);
    if (rc == 0) {
        rc = malformed(c, "lease timetolive", etcd_parse_timetolive(resp, out));
        json_decref(resp);
    }
    return rc;
}
