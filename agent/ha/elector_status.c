/* Election driver: the status snapshot for the web process (MSG_STATUS, see agent/msgtypes.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "agent/dcs/member.h"
#include "agent/dcs/values.h"
#include "agent/ha/elector_int.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

/* The value of key parsed as JSON (new reference), or NULL. */
static json_t *cached_json(struct elector *e, const char *key)
{
    const struct kvc_entry *en = kvc_get(&e->cache, key);
    return en ? json_loadb(en->value, en->value_len, 0, NULL) : NULL;
}

static void set_new(json_t *o, const char *k, json_t *v)
{
    if (v)
        json_object_set_new(o, k, v);
}

/* "tags" when there is any. */
static void set_tags(json_t *o, const struct dcs_tags *t)
{
    json_t *tags = dcs_tags_to_json(t, NULL);
    if (tags && json_object_size(tags) > 0)
        set_new(o, "tags", tags);
    else
        json_decref(tags);
}

/* Patroni's replication list on the primary (this step's pg_stat_replication rows). */
static json_t *replication(const struct elector *e)
{
    const struct pg_replica *rows = e->repl;
    size_t n = e->repl_valid ? e->nrepl : 0;
    json_t *a = json_array();
    if (!a)
        return a;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "usename", e->pg.replication_user,
                         "application_name", rows[i].application_name, "client_addr",
                         rows[i].client_addr, "state", rows[i].state, "sync_state",
                         rows[i].sync_state, "sync_priority", rows[i].sync_priority));
    return a;
}

/* The body of GET /patroni for this node. */
static json_t *patroni_body(struct elector *e, const struct elect_view *v, const struct dcs_sync *s)
{
    const struct elect_pg *p = &e->pgv;
    const struct pg_status *st = &e->last_st;
    json_t *o = json_object();
    if (!o)
        return NULL;
    const char *state = !e->manage_pg ? "stopped"
                        : p->ready    ? "running"
                        : p->running  ? "starting"
                                      : "stopped";
    set_new(o, "state", json_string(state));
    bool primary = p->ready && !p->in_recovery;
    set_new(o, "role", json_string(primary ? "master" : "replica"));
    if (p->ready) {
        set_new(o, "server_version", json_integer(st->server_version));
        set_new(o, "timeline", json_integer(e->timeline));
        if (primary) {
            set_new(o, "xlog", json_pack("{s:I}", "location", (json_int_t)p->lsn));
            set_new(o, "replication", replication(e));
        } else {
            set_new(o, "xlog",
                    json_pack("{s:I,s:I,s:n,s:b}", "received_location", (json_int_t)st->receive_lsn,
                              "replayed_location", (json_int_t)st->replay_lsn, "replayed_timestamp",
                              "paused", st->replay_paused));
        }
    }
    if (e->dcs_last_seen_s)
        set_new(o, "dcs_last_seen", json_integer(e->dcs_last_seen_s));
    if (e->sysid) {
        char sys[32];
        snprintf(sys, sizeof(sys), "%" PRIu64, e->sysid);
        set_new(o, "database_system_identifier", json_string(sys));
    }
    set_new(o, "patroni",
            json_pack("{s:s,s:s,s:s,s:s}", "version", DCS_PATRONI_COMPAT_VERSION, "scope",
                      e->cfg.etcd.scope, "name", e->ec.name, "pgwarden", PGW_VERSION));
    struct dcs_member m;
    dcs_member_init(&m);
    if (e->cfg.ha.nofailover) {
        m.tags.nofailover = m.tags.nofailover_set = true;
    }
    m.tags.nosync = e->cfg.ha.nosync;
    if (e->cfg.ha.failover_priority != 1) {
        m.tags.has_failover_priority = true;
        m.tags.failover_priority = e->cfg.ha.failover_priority;
    }
    set_tags(o, &m.tags);
    if (v->paused)
        set_new(o, "pause", json_true());
    if (e->pending_restart && p->ready)
        set_new(o, "pending_restart", json_true());
    if (dcs_sync_matches(s, e->ec.name, false))
        set_new(o, "sync_standby", json_true());
    if (v->valid && !v->has_leader)
        set_new(o, "cluster_unlocked", json_true());
    /* pgwarden's own (issue 9): what cannot be written, while it lasts */
    struct store_health h;
    store_health(e->store, &h);
    if (!e->store || h.failing)
        set_new(o, "state_store", json_string(e->store ? h.error : "not open"));
    if (e->data_disk_full)
        set_new(o, "data_directory", json_string("disk full"));
    return o;
}

/* The body of GET /cluster. */
static json_t *cluster_body(struct elector *e, const struct elect_view *v, const struct dcs_sync *s)
{
    json_t *members = json_array();
    struct dcs_member *m = malloc(sizeof(*m));
    size_t pos = 0, plen = strlen(e->k_members);
    const struct kvc_entry *en;
    while (m && members && (en = kvc_next_prefix(&e->cache, e->k_members, &pos)) != NULL) {
        const char *name = en->key + plen;
        if (!dcs_member_decode(en->value, en->value_len, name, m, NULL))
            continue;
        bool leader = v->has_leader && strcmp(v->leader, name) == 0;
        const char *role = leader                             ? "leader"
                           : dcs_sync_matches(s, name, false) ? "sync_standby"
                                                              : "replica";
        char host[PG_HOST_MAX] = "";
        uint16_t port = 0;
        elector_parse_conn_url(m->conn_url, host, sizeof(host), &port);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "name", name, "role", role, "state",
                              m->state_text[0] ? m->state_text : dcs_state_name(m->state),
                              "api_url", m->api_url, "host", host, "port", port);
        if (!o)
            continue;
        if (m->has_timeline)
            set_new(o, "timeline", json_integer(m->timeline));
        set_tags(o, &m->tags);
        if (m->pending_restart)
            set_new(o, "pending_restart", json_true());
        if (!leader) {
            if (v->has_optime && m->has_xlog_location)
                set_new(
                    o, "lag",
                    json_integer(v->optime > m->xlog_location ? v->optime - m->xlog_location : 0));
            else
                set_new(o, "lag", json_string("unknown"));
        }
        if (m->has_xlog_location)
            set_new(o, "xlog_location", json_integer(m->xlog_location));
        if (m->has_server_version)
            set_new(o, "server_version", json_integer(m->server_version));
        if (m->has_replay_lag_ms)
            set_new(o, "lag_s", json_real((double)m->replay_lag_ms / 1000.0));
        if (m->has_clone_bytes) {
            json_t *cl = json_pack("{s:I}", "bytes", (json_int_t)m->clone_bytes);
            if (cl && m->clone_total_bytes >= 0)
                set_new(cl, "total_bytes", json_integer(m->clone_total_bytes));
            if (cl)
                set_new(o, "clone", cl);
        }
        json_array_append_new(members, o);
    }
    free(m);
    json_t *c = json_pack("{s:o}", "members", members ? members : json_array());
    if (c && v->paused)
        set_new(c, "pause", json_true());
    if (c && v->has_failover && v->failover_leader[0]) {
        json_t *f = cached_json(e, e->k_failover);
        json_t *at = f ? json_object_get(f, "scheduled_at") : NULL;
        if (json_is_string(at))
            set_new(c, "scheduled_switchover",
                    json_pack("{s:O,s:s,s:s}", "at", at, "from", v->failover_leader, "to",
                              v->failover_candidate));
        json_decref(f);
    }
    return c;
}

static json_t *sync_body(const struct dcs_sync *s)
{
    if (!s->leader[0])
        return json_null();
    json_t *names = json_array();
    for (size_t i = 0; i < s->nstandby && names; i++)
        json_array_append_new(names, json_string(s->standby[i]));
    return json_pack("{s:s,s:o}", "leader", s->leader, "sync_standby",
                     names ? names : json_array());
}

/* The snapshot without its times (compared with the last one sent). */
static json_t *snapshot(struct elector *e)
{
    struct elect_view v;
    elector_build_view(e, &v);
    struct dcs_sync s;
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_sync);
    if (!en || !dcs_sync_decode(en->value, en->value_len, &s, NULL))
        memset(&s, 0, sizeof(s));
    bool primary_ok = !e->manage_pg || (e->pgv.ready && !e->pgv.in_recovery);
    uint64_t until = e->local.state == ELECT_LEADER && primary_ok ? e->local.deadline_ms : 0;
    json_t *o =
        json_pack("{s:I,s:I,s:I,s:b,s:I,s:b,s:b}", "ttl_ms", (json_int_t)e->ec.t.ttl_ms,
                  "loop_wait_ms", (json_int_t)e->ec.t.loop_wait_ms, "leader_until_boot_ms",
                  (json_int_t)until, "dcs_ok", !e->failing, "dcs_last_seen",
                  (json_int_t)e->dcs_last_seen_s, "paused", v.paused, "sync_mode", v.sync_mode);
    if (!o)
        return NULL;
    set_new(o, "optime", v.has_optime ? json_integer(v.optime) : json_null());
    set_new(o, "sync", sync_body(&s));
    set_new(o, "patroni", patroni_body(e, &v, &s));
    set_new(o, "cluster", cluster_body(e, &v, &s));
    json_t *h = cached_json(e, e->k_history);
    set_new(o, "history", json_is_array(h) ? h : json_array());
    if (h && !json_is_array(h))
        json_decref(h);
    json_t *f = v.has_failover ? cached_json(e, e->k_failover) : NULL;
    set_new(o, "failover", json_is_object(f) ? f : json_null());
    if (f && !json_is_object(f))
        json_decref(f);
    json_t *c = cached_json(e, e->k_config);
    set_new(o, "config", json_is_object(c) ? c : json_null());
    if (c && !json_is_object(c))
        json_decref(c);
    return o;
}

void elector_status_publish(struct elector *e)
{
    if (!e->manage_pg && !e->cache.valid)
        return;
    json_t *o = snapshot(e);
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    uint64_t now = clock_boot_ms();
    bool changed = body && (!e->status_sent || strcmp(body, e->status_sent) != 0);
    if (!body || (!changed && now < e->status_sent_ms + e->ec.t.loop_wait_ms)) {
        free(body);
        json_decref(o);
        return;
    }
    json_object_set_new(o, "boot_ms", json_integer((json_int_t)now));
    json_object_set_new(o, "wall_ms", json_integer((json_int_t)clock_wall_ms()));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    size_t len = text ? strlen(text) : 0;
    if (text && len <= MSG_MAX_PAYLOAD) {
        int r = e->send(e->send_arg, EP_WEB, MSG_STATUS, text, (uint32_t)len);
        if (r < 0 && r != -EPIPE && r != -ECONNRESET && r != -EAGAIN)
            log_debug("status not sent", "err=%d", r);
    } else if (text) {
        log_warn("status snapshot too large to send", "bytes=%zu", len);
    }
    free(text);
    free(e->status_sent);
    e->status_sent = body;
    e->status_sent_ms = now;
}
