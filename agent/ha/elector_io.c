/* Election driver I/O: the etcd request behind each decided action, and the view from the cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/dcs/member.h"
#include "agent/dcs/values.h"
#include "agent/etcd/etcd.h"
#include "agent/ha/elector_int.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "election"

/* ---- wanted values ---- */

static bool wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || host[0] == '\0';
}

bool elector_build_values(struct elector *e)
{
    const struct pgw_config *c = &e->cfg;
    struct dcs_member *m = malloc(sizeof(*m));
    struct dcs_err err = {{0}};
    bool ok = false;
    if (!m) {
        log_error("out of memory");
        return false;
    }
    dcs_member_init(m);
    /* The REST API's address for peers: [web] listen, or the PostgreSQL connect_address host
     * with the web port when web listens on a wildcard address. */
    const char *api_host =
        wildcard(c->web.listen.host) ? c->postgresql.connect_address.host : c->web.listen.host;
    if (dcs_conn_url(c->postgresql.connect_address.host, c->postgresql.connect_address.port,
                     "postgres", m->conn_url, sizeof(m->conn_url)) < 0 ||
        dcs_api_url(c->web.tls_cert[0] != '\0', api_host, c->web.listen.port, m->api_url,
                    sizeof(m->api_url)) < 0) {
        log_error("cannot build the member URLs", "host=%s", c->postgresql.connect_address.host);
        goto out;
    }
    /* Without PostgreSQL management: not running, not a primary. */
    m->state = DCS_STATE_STOPPED;
    m->role = DCS_ROLE_REPLICA;
    elector_pg_member(e, m);
    if (c->ha.nofailover) {
        m->tags.nofailover = true;
        m->tags.nofailover_set = true;
    }
    m->tags.nosync = c->ha.nosync;
    if (c->ha.failover_priority != 1) {
        m->tags.has_failover_priority = true;
        m->tags.failover_priority = c->ha.failover_priority;
    }
    size_t len = 0;
    char *value = dcs_member_encode(m, &len, &err);
    if (!value) {
        log_error("cannot encode the member value", "err=\"%s\"", err.msg);
        goto out;
    }
    free(e->member_value);
    e->member_value = value;
    e->member_len = len;

    struct dcs_status st = {.has_optime = true, .optime = e->optime};
    value = dcs_status_encode(&st, &len, &err);
    if (!value) {
        log_error("cannot encode the status value", "err=\"%s\"", err.msg);
        goto out;
    }
    free(e->status_value);
    e->status_value = value;
    e->status_len = len;
    ok = true;
out:
    free(m);
    return ok;
}

/* ---- view ---- */

static bool same_value(const struct kvc_entry *en, const char *value, size_t len)
{
    return en && value && en->value_len == len && memcmp(en->value, value, len) == 0;
}

void elector_build_view(struct elector *e, struct elect_view *v)
{
    memset(v, 0, sizeof(*v));
    v->valid = e->cache.valid;
    v->fresh = e->watch && etcd_watch_is_up(e->watch);
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_leader);
    if (en) {
        v->has_leader = true;
        /* A value that is not a valid name still means "someone holds it": never race then. */
        snprintf(v->leader, sizeof(v->leader), "%.*s", (int)en->value_len, en->value);
        v->leader_lease = en->lease;
        v->leader_create_rev = en->create_rev;
    }
    en = kvc_get(&e->cache, e->k_member);
    v->member_ok = en && e->local.lease_id != 0 && en->lease == e->local.lease_id &&
                   same_value(en, e->member_value, e->member_len);
    v->has_config = e->config_unwritable || kvc_get(&e->cache, e->k_config) != NULL;
    v->status_ok = same_value(kvc_get(&e->cache, e->k_status), e->status_value, e->status_len);
    elector_pg_view(e, v);
}

/* ---- helpers ---- */

static bool failed(struct elector *e, const struct elect_decision *d, int rc)
{
    const struct etcd_error *er = etcd_last_error(e->etcd);
    if (!e->failing)
        log_warn("etcd request failed", "action=%s err=%s message=\"%s\" endpoint=%s",
                 elect_action_name(d->action), etcd_strerror(rc), er->message, er->endpoint);
    e->failing = true;
    return false;
}

static void succeeded(struct elector *e)
{
    e->dcs_last_seen_s = (int64_t)(clock_wall_ms() / 1000);
    if (e->failing)
        log_info("etcd requests succeed again", "endpoint=%s", etcd_current_endpoint(e->etcd));
    e->failing = false;
}

/* A leader action must never start after the deadline (the decision was made a moment ago). */
static bool past_deadline(const struct elector *e)
{
    return e->local.state == ELECT_LEADER && clock_boot_ms() >= e->local.deadline_ms;
}

/* The failure branch of a txn reads the key: cache what it says. */
static void cache_range(struct elector *e, const char *key, const struct etcd_txn_result *t)
{
    if (t->n_responses == 0 || t->responses[0].type != ETCD_OP_RANGE)
        return;
    const struct etcd_range_result *rr = &t->responses[0].range;
    if (rr->n_kvs > 0)
        kvc_put(&e->cache, key, rr->kvs[0].value ? rr->kvs[0].value : "",
                rr->kvs[0].value ? rr->kvs[0].value_len : 0, rr->kvs[0].create_revision,
                rr->kvs[0].mod_revision, rr->kvs[0].lease);
    else
        kvc_delete(&e->cache, key, t->header.revision);
}

static int txn_put_or_read(struct elector *e, const struct etcd_cmp *cmps, size_t n_cmps,
                           const char *key, const char *value, size_t len, int64_t lease,
                           struct etcd_txn_result *out)
{
    const struct etcd_op put = {
        .type = ETCD_OP_PUT, .put = {.key = key, .value = value, .value_len = len, .lease = lease}};
    const struct etcd_op get = {.type = ETCD_OP_RANGE, .range = {.key = key}};
    const struct etcd_txn_req req = {.cmps = cmps,
                                     .n_cmps = n_cmps,
                                     .success = &put,
                                     .n_success = 1,
                                     .failure = &get,
                                     .n_failure = 1};
    return etcd_txn(e->etcd, &req, out);
}

/* ---- actions ---- */

static bool do_grant(struct elector *e, const struct elect_decision *d, struct elect_result *r)
{
    int64_t ttl_s = elect_grant_ttl_s(e->ec.t.ttl_ms);
    r->sent_ms = clock_boot_ms();
    int rc = etcd_lease_grant(e->etcd, ttl_s, 0, &r->lease_id, &r->lease_ttl_s);
    if (rc != 0)
        return failed(e, d, rc);
    r->ok = true;
    log_info("lease granted", "lease=%llx ttl_s=%lld", (unsigned long long)r->lease_id,
             (long long)r->lease_ttl_s);
    return true;
}

static bool do_keepalive(struct elector *e, const struct elect_decision *d, struct elect_result *r)
{
    r->sent_ms = clock_boot_ms();
    int rc = etcd_lease_keepalive(e->etcd, e->local.lease_id, &r->lease_ttl_s);
    if (rc == ETCD_E_LEASE_NOT_FOUND) {
        r->lease_lost = true;
        log_warn("lease lost", "lease=%llx state=%s", (unsigned long long)e->local.lease_id,
                 elect_state_name(e->local.state));
        return true;
    }
    if (rc != 0)
        return failed(e, d, rc);
    r->ok = true;
    return true;
}

static bool do_read(struct elector *e, const struct elect_decision *d, struct elect_result *r)
{
    struct etcd_range_result rr;
    const struct etcd_range_req req = {.key = e->keys.prefix, .prefix = true};
    int rc = etcd_range(e->etcd, &req, &rr);
    if (rc != 0)
        return failed(e, d, rc);
    kvc_resync(&e->cache, rr.kvs, rr.n_kvs, rr.header.revision);
    etcd_range_result_clear(&rr);
    r->ok = true;
    return true;
}

static bool do_put_member(struct elector *e, const struct elect_decision *d, struct elect_result *r)
{
    struct etcd_put_result pr;
    const struct etcd_put_req req = {.key = e->k_member,
                                     .value = e->member_value,
                                     .value_len = e->member_len,
                                     .lease = e->local.lease_id};
    int rc = etcd_put(e->etcd, &req, &pr);
    if (rc == ETCD_E_LEASE_NOT_FOUND) {
        r->lease_lost = true;
        return true;
    }
    if (rc != 0)
        return failed(e, d, rc);
    const struct kvc_entry *old = kvc_get(&e->cache, e->k_member);
    int64_t create = old ? old->create_rev : pr.header.revision;
    kvc_put(&e->cache, e->k_member, e->member_value, e->member_len, create, pr.header.revision,
            e->local.lease_id);
    etcd_put_result_clear(&pr);
    r->ok = true;
    log_debug("member key written", "lease=%llx", (unsigned long long)e->local.lease_id);
    return true;
}

void elector_put_member_now(struct elector *e)
{
    const struct elect_decision d = {.action = ELECT_ACT_PUT_MEMBER, .rule = "long action"};
    struct elect_result r;
    memset(&r, 0, sizeof(r));
    if (e->local.lease_id != 0 && elector_build_values(e))
        (void)do_put_member(e, &d, &r);
}

void elector_busy_tick(void *arg)
{
    struct elector *e = arg;
    if (e->local.state != ELECT_FOLLOWER || e->local.lease_id == 0)
        return;
    if (e->busy_state == DCS_STATE_CREATING_REPLICA && e->clone_port)
        elector_clone_tick(e);
    if (clock_boot_ms() < e->local.next_lease_ms)
        return;
    const struct elect_decision d = {.action = ELECT_ACT_KEEPALIVE,
                                     .rule = "keepalive while a tool runs"};
    struct elect_view v;
    elector_build_view(e, &v);
    struct elect_result r;
    (void)elector_perform(e, &d, &v, &r);
    elect_apply(&e->ec, &e->local, &d, &v, &r, clock_boot_ms());
}

/* RACE: create_revision(leader) == 0 -> put name under our lease, else read the holder.
 * TAKEOVER: value == name AND lease == the old lease -> put under our lease, else read. */
static bool do_leader_txn(struct elector *e, const struct elect_decision *d,
                          const struct elect_view *v, struct elect_result *r)
{
    const char *name = e->ec.name;
    size_t nlen = strlen(name);
    struct etcd_cmp cmps[2];
    size_t n = 0;
    if (d->action == ELECT_ACT_RACE) {
        cmps[n++] = (struct etcd_cmp){
            .target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = e->k_leader, .number = 0};
    } else {
        cmps[n++] = (struct etcd_cmp){.target = ETCD_CMP_VALUE,
                                      .op = ETCD_EQUAL,
                                      .key = e->k_leader,
                                      .value = name,
                                      .value_len = nlen};
        cmps[n++] = (struct etcd_cmp){.target = ETCD_CMP_LEASE,
                                      .op = ETCD_EQUAL,
                                      .key = e->k_leader,
                                      .number = v->leader_lease};
    }
    struct etcd_txn_result t;
    int rc = txn_put_or_read(e, cmps, n, e->k_leader, name, nlen, e->local.lease_id, &t);
    if (rc == ETCD_E_LEASE_NOT_FOUND) {
        r->lease_lost = true;
        return true;
    }
    if (rc != 0)
        return failed(e, d, rc);
    r->ok = true;
    r->won = t.succeeded;
    if (t.succeeded) {
        r->term = d->action == ELECT_ACT_RACE ? t.header.revision : v->leader_create_rev;
        kvc_put(&e->cache, e->k_leader, name, nlen, r->term, t.header.revision, e->local.lease_id);
    } else {
        cache_range(e, e->k_leader, &t);
        log_info(d->action == ELECT_ACT_RACE ? "leader race lost" : "leader key takeover refused",
                 "revision=%lld", (long long)t.header.revision);
    }
    etcd_txn_result_clear(&t);
    return true;
}

/* Voluntary release: delete the key only if it still holds our name under our lease. */
bool elector_release_key(struct elector *e, const struct elect_decision *d, struct elect_result *r)
{
    const char *name = e->ec.name;
    const struct etcd_cmp cmps[2] = {
        {.target = ETCD_CMP_VALUE,
         .op = ETCD_EQUAL,
         .key = e->k_leader,
         .value = name,
         .value_len = strlen(name)},
        {.target = ETCD_CMP_LEASE,
         .op = ETCD_EQUAL,
         .key = e->k_leader,
         .number = e->local.lease_id},
    };
    const struct etcd_op del = {.type = ETCD_OP_DELETE, .del = {.key = e->k_leader}};
    const struct etcd_txn_req req = {.cmps = cmps, .n_cmps = 2, .success = &del, .n_success = 1};
    struct etcd_txn_result t;
    int rc = etcd_txn(e->etcd, &req, &t);
    if (rc != 0)
        return failed(e, d, rc);
    r->ok = true;
    r->won = t.succeeded;
    if (t.succeeded)
        kvc_delete(&e->cache, e->k_leader, t.header.revision);
    etcd_txn_result_clear(&t);
    return true;
}

/* Best effort: the lease is given up either way, so the step always goes on. */
static bool do_revoke(struct elector *e, const struct elect_decision *d, struct elect_result *r)
{
    if (e->local.lease_id == 0 ||
        (d->action == ELECT_ACT_ABANDON && e->local.fence_reason == ELECT_FENCE_LEASE_LOST))
        return true;
    int rc = etcd_lease_revoke(e->etcd, e->local.lease_id);
    r->ok = rc == 0 || rc == ETCD_E_LEASE_NOT_FOUND;
    if (rc == 0)
        log_info("lease revoked", "lease=%llx", (unsigned long long)e->local.lease_id);
    else if (rc != ETCD_E_LEASE_NOT_FOUND)
        log_warn("cannot revoke the lease; it expires by itself", "lease=%llx err=%s",
                 (unsigned long long)e->local.lease_id, etcd_strerror(rc));
    return true;
}

static bool do_write_config(struct elector *e, const struct elect_decision *d,
                            struct elect_result *r)
{
    struct dcs_config c;
    struct dcs_err err = {{0}};
    size_t len = 0;
    dcs_config_defaults(&c);
    elect_config_seconds(&e->cfg.ha, &c.ttl, &c.loop_wait, &c.retry_timeout);
    c.maximum_lag_on_failover = (int64_t)e->cfg.ha.maximum_lag_on_failover;
    char *value = dcs_config_encode(&c, &len, &err);
    dcs_config_free(&c);
    if (!value) {
        log_warn("the local [ha] values make no valid config key; not writing it", "err=\"%s\"",
                 err.msg);
        e->config_unwritable = true;
        r->ok = true;
        return true;
    }
    const struct etcd_cmp cmp = {
        .target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = e->k_config, .number = 0};
    struct etcd_txn_result t;
    int rc = txn_put_or_read(e, &cmp, 1, e->k_config, value, len, 0, &t);
    if (rc != 0) {
        free(value);
        return failed(e, d, rc);
    }
    if (t.succeeded) {
        kvc_put(&e->cache, e->k_config, value, len, t.header.revision, t.header.revision, 0);
        log_info("config key written from the local values", "value=%s", value);
    } else {
        cache_range(e, e->k_config, &t);
    }
    etcd_txn_result_clear(&t);
    free(value);
    r->ok = true;
    return true;
}

static bool do_write_status(struct elector *e, const struct elect_decision *d,
                            struct elect_result *r)
{
    struct etcd_put_result pr;
    const struct etcd_put_req req = {
        .key = e->k_status, .value = e->status_value, .value_len = e->status_len};
    int rc = etcd_put(e->etcd, &req, &pr);
    if (rc != 0)
        return failed(e, d, rc);
    const struct kvc_entry *old = kvc_get(&e->cache, e->k_status);
    kvc_put(&e->cache, e->k_status, e->status_value, e->status_len,
            old ? old->create_rev : pr.header.revision, pr.header.revision, 0);
    etcd_put_result_clear(&pr);
    r->ok = true;
    return true;
}

bool elector_perform(struct elector *e, const struct elect_decision *d, const struct elect_view *v,
                     struct elect_result *r)
{
    bool ok = true;
    memset(r, 0, sizeof(*r));
    switch (d->action) {
    case ELECT_ACT_NOTE_LEADER:
        e->pg_obs_force = true; /* the race that may follow needs a fresh WAL position */
        r->ok = true;
        return true;
    case ELECT_ACT_NONE:
    case ELECT_ACT_FENCE:
    case ELECT_ACT_STEP_DOWN:
    case ELECT_ACT_ADOPT:
        r->ok = true;
        return true;
    case ELECT_ACT_RELEASE:
        ok = past_deadline(e) ? true : elector_release_key(e, d, r);
        break;
    case ELECT_ACT_ABANDON:
    case ELECT_ACT_REVOKE:
        ok = do_revoke(e, d, r);
        break;
    case ELECT_ACT_GRANT:
        ok = do_grant(e, d, r);
        break;
    case ELECT_ACT_KEEPALIVE:
        ok = do_keepalive(e, d, r);
        break;
    case ELECT_ACT_READ:
        ok = do_read(e, d, r);
        break;
    case ELECT_ACT_PUT_MEMBER:
        ok = do_put_member(e, d, r);
        break;
    case ELECT_ACT_TAKEOVER:
    case ELECT_ACT_RACE:
        ok = do_leader_txn(e, d, v, r);
        break;
    case ELECT_ACT_WRITE_CONFIG:
        ok = past_deadline(e) ? true : do_write_config(e, d, r);
        break;
    case ELECT_ACT_WRITE_STATUS:
        ok = past_deadline(e) ? true : do_write_status(e, d, r);
        break;
    case ELECT_ACT_PG_DEMOTE:
    case ELECT_ACT_INIT_RACE:
    case ELECT_ACT_PG_BOOTSTRAP:
    case ELECT_ACT_WRITE_INITIALIZE:
    case ELECT_ACT_PG_CLONE:
    case ELECT_ACT_PG_RELEASE:
    case ELECT_ACT_PG_START_PRIMARY:
    case ELECT_ACT_PG_PROMOTE:
    case ELECT_ACT_PG_START_STANDBY:
    case ELECT_ACT_PG_FOLLOW:
    case ELECT_ACT_PG_SLOTS:
    case ELECT_ACT_PG_SWITCHOVER:
    case ELECT_ACT_PG_REJOIN:
    case ELECT_ACT_SYNC:
    case ELECT_ACT_PG_RECONFIGURE:
    case ELECT_ACT_CLEAR_FAILOVER:
        ok = past_deadline(e) ? true : elector_pg_perform(e, d, v, r);
        break;
    }
    if (ok && r->ok)
        succeeded(e);
    return ok;
}
