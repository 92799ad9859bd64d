/* Election driver of the ha process: the step loop, timers, watch, reports and messages. */
#include "agent/ha/elector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/dcs/member.h"
#include "agent/etcd/etcd.h"
#include "agent/ha/boottimer.h"
#include "agent/ha/elector_int.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/loop.h"

#define LOG_MODULE "election"

enum {
    MAX_ACTIONS_PER_STEP = 24, /* a step normally takes 0-4 actions */
    STATS_PERIOD_MS = 10000,
};

static void step(struct elector *e);

/* ---- events ---- */

/* Logged already; the SQLite row is for the dashboard and the API. */
static void record(struct elector *e, const char *kind, int64_t term, json_t *detail)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    if (!e->store || !store_event_add(e->store, clock_wall_ms(), kind, e->ec.name, term,
                                      text ? text : "{}", NULL))
        log_warn("cannot record an event", "kind=%s", kind);
    free(text);
}

static const char *how_acquired(enum elect_action a)
{
    switch (a) {
    case ELECT_ACT_RACE:
        return "race";
    case ELECT_ACT_TAKEOVER:
        return "takeover";
    default:
        return "adopt";
    }
}

/* Logs and records what the action changed. */
static void report(struct elector *e, const struct elect_local *before,
                   const struct elect_decision *d, const struct elect_view *v,
                   const struct elect_result *r)
{
    const struct elect_local *l = &e->local;
    uint64_t now = clock_boot_ms();
    if (before->state != ELECT_LEADER && l->state == ELECT_LEADER) {
        log_info("acquired leadership", "term=%lld how=%s lease=%llx deadline_in_ms=%lld",
                 (long long)l->term, how_acquired(d->action), (unsigned long long)l->lease_id,
                 (long long)(l->deadline_ms - now));
        record(e, "role_change", l->term,
               json_pack("{s:s,s:s,s:s}", "event", "acquired leadership", "role", "leader", "how",
                         how_acquired(d->action)));
        return;
    }
    switch (d->action) {
    case ELECT_ACT_FENCE: {
        long long late = (long long)now - (long long)before->deadline_ms;
        log_warn("fencing", "by=ha reason=\"%s\" term=%lld deadline_boot_ms=%llu late_ms=%lld",
                 elect_fence_reason_name(d->fence_reason), (long long)before->term,
                 (unsigned long long)before->deadline_ms, late);
        record(e, "fencing", before->term,
               json_pack("{s:s,s:s,s:I}", "by", "ha", "reason",
                         elect_fence_reason_name(d->fence_reason), "late_ms", (json_int_t)late));
        log_warn("lost leadership", "term=%lld reason=fenced", (long long)before->term);
        record(e, "role_change", before->term,
               json_pack("{s:s,s:s,s:s}", "event", "lost leadership", "role", "replica", "reason",
                         "fenced"));
        break;
    }
    case ELECT_ACT_STEP_DOWN: {
        const char *reason =
            v->has_leader ? "leader key held by another member or lease" : "leader key deleted";
        log_warn("lost leadership", "term=%lld reason=\"%s\" holder=%s", (long long)before->term,
                 reason, v->has_leader ? v->leader : "none");
        record(e, "role_change", before->term,
               json_pack("{s:s,s:s,s:s}", "event", "lost leadership", "role", "replica", "reason",
                         reason));
        break;
    }
    case ELECT_ACT_RELEASE:
        if (l->state == ELECT_LEADER)
            break; /* the request failed (logged); the deadline still applies */
        log_info("lost leadership", "term=%lld reason=shutdown released=%s",
                 (long long)before->term, r->won ? "yes" : "no (not ours any more)");
        record(e, "role_change", before->term,
               json_pack("{s:s,s:s,s:s}", "event", "lost leadership", "role", "replica", "reason",
                         "shutdown"));
        break;
    case ELECT_ACT_ABANDON:
        log_info("abandoned the fenced lease; rejoining as a follower", "lease=%llx",
                 (unsigned long long)l->abandoned_lease);
        break;
    case ELECT_ACT_NOTE_LEADER:
        if (!v->has_leader) {
            if (before->noted_leader[0])
                log_info("leader key gone", "previous=%s", before->noted_leader);
        } else if (strcmp(v->leader, e->ec.name) != 0) {
            log_info("leader changed", "leader=%s previous=%s term=%lld", v->leader,
                     before->noted_leader[0] ? before->noted_leader : "none",
                     (long long)v->leader_create_rev);
            record(e, "role_change", v->leader_create_rev,
                   json_pack("{s:s,s:s,s:s}", "event", "leader changed", "leader", v->leader,
                             "previous", before->noted_leader));
        }
        break;
    default:
        if (before->lease_id != 0 && l->lease_id == 0 && l->state == ELECT_INIT)
            log_warn("lease lost; granting a new one", "lease=%llx",
                     (unsigned long long)before->lease_id);
        break;
    }
}

/* ---- messages to the supervisor and the proxy ---- */

static void send_msg(struct elector *e, uint8_t dst, uint16_t type, const void *p, uint32_t len)
{
    int r = e->send(e->send_arg, dst, type, p, len);
    if (r == -EPIPE || r == -ECONNRESET)
        log_debug("message not sent: supervisor gone", "type=%s",
                  msg_type_name(msgtypes_specs, msgtypes_nspecs, type));
    else if (r < 0)
        log_warn("message not sent", "dst=%s type=%s err=%d", msgtypes_endpoint_name(dst),
                 msg_type_name(msgtypes_specs, msgtypes_nspecs, type), r);
}

/* "postgres://host:port/db" -> host, port (IPv6 in brackets). False if it does not parse. */
bool elector_parse_conn_url(const char *url, char *host, size_t cap, uint16_t *port)
{
    const char *p = strstr(url, "://");
    if (!p)
        return false;
    p += 3;
    const char *at = strchr(p, '@'); /* never present in our values, tolerated in others */
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash))
        p = at + 1;
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--) {
        if (p[i - 1] == ':') {
            colon = p + i - 1;
            break;
        }
        if (p[i - 1] == ']')
            break;
    }
    size_t hl = colon ? (size_t)(colon - p) : n;
    unsigned long v = 5432;
    if (colon) {
        char *end;
        v = strtoul(colon + 1, &end, 10);
        if (end != p + n || v == 0 || v > 65535)
            return false;
    }
    if (hl >= 2 && p[0] == '[' && p[hl - 1] == ']') {
        p++;
        hl -= 2;
    }
    if (hl == 0 || hl >= cap)
        return false;
    memcpy(host, p, hl);
    host[hl] = '\0';
    *port = (uint16_t)v;
    return true;
}

/* members/<name> decoded into m (false if absent or unreadable). */
static bool member_of(struct elector *e, const char *name, struct dcs_member *m)
{
    char key[DCS_KEY_MAX];
    if (dcs_key_path(&e->keys, DCS_KEY_MEMBER, name, key, sizeof(key)) < 0)
        return false;
    const struct kvc_entry *en = kvc_get(&e->cache, key);
    return en && dcs_member_decode(en->value, en->value_len, name, m, NULL);
}

/* Running replicas for the read-only port, with their lag behind `top` (-1: unknown). */
static void route_replicas(struct elector *e, struct msg_route *r, int64_t top,
                           struct dcs_member *m)
{
    size_t pos = 0, plen = strlen(e->k_members);
    const struct kvc_entry *en;
    while (r->n_replicas < MSG_ROUTE_REPLICAS_MAX &&
           (en = kvc_next_prefix(&e->cache, e->k_members, &pos)) != NULL) {
        const char *name = en->key + plen;
        struct msg_route_replica *rep = &r->replicas[r->n_replicas];
        if (!dcs_member_decode(en->value, en->value_len, name, m, NULL) ||
            m->role != DCS_ROLE_REPLICA || m->state != DCS_STATE_RUNNING ||
            !elector_parse_conn_url(m->conn_url, rep->host, sizeof(rep->host), &rep->port))
            continue;
        snprintf(rep->name, sizeof(rep->name), "%s", name);
        rep->lag_bytes = top >= 0 && m->has_xlog_location
                             ? (m->xlog_location < top ? top - m->xlog_location : 0)
                             : -1;
        r->n_replicas++;
    }
}

/* The forwarder's table. The leader is routed to only once its PostgreSQL accepts writes (its
 * own observation, or on other nodes its member key: running primary), so that a client held
 * during a failover never lands on a server still in recovery. */
static void wanted_route(struct elector *e, const struct elect_view *v, struct msg_route *r)
{
    const struct elect_local *l = &e->local;
    memset(r, 0, sizeof(*r));
    bool alive = l->lease_id != 0 && clock_boot_ms() < l->deadline_ms;
    int64_t top = -1;
    struct dcs_member *m = malloc(sizeof(*m));
    if (!m)
        return;
    if (l->state == ELECT_LEADER) {
        /* lags from the published positions, as every other node computes them */
        top = member_of(e, e->ec.name, m) && m->has_xlog_location ? m->xlog_location : -1;
        bool draining = e->busy_state == DCS_STATE_STOPPING;
        if (!e->manage_pg || (e->pgv.ready && !e->pgv.in_recovery)) {
            r->has_leader = 1;
            r->draining = draining;
            r->is_self = 1;
            r->term = l->term;
            r->expiry_boot_ms = l->deadline_ms;
            snprintf(r->leader, sizeof(r->leader), "%s", e->ec.name);
            snprintf(r->host, sizeof(r->host), "%s", e->cfg.postgresql.connect_address.host);
            r->port = e->cfg.postgresql.connect_address.port;
        }
    } else if (alive && v->has_leader && strcmp(v->leader, e->ec.name) != 0 &&
               member_of(e, v->leader, m)) {
        /* A follower routes to the leader it sees for as long as its own lease is alive;
         * never to itself (a key with our name and no leadership is a stale one). */
        top = m->has_xlog_location ? m->xlog_location : -1;
        bool stopping = m->state == DCS_STATE_STOPPING;
        if (!e->manage_pg ||
            (m->role == DCS_ROLE_PRIMARY && (m->state == DCS_STATE_RUNNING || stopping))) {
            r->has_leader = 1;
            r->draining = e->manage_pg && stopping;
            r->term = v->leader_create_rev;
            r->expiry_boot_ms = l->deadline_ms;
            snprintf(r->leader, sizeof(r->leader), "%s", v->leader);
            elector_parse_conn_url(m->conn_url, r->host, sizeof(r->host), &r->port);
        }
    }
    if (alive && l->state != ELECT_FENCED)
        route_replicas(e, r, top, m);
    if (r->n_replicas > 0 && !r->has_leader)
        r->expiry_boot_ms = l->deadline_ms;
    free(m);
}

/* Sends MSG_ROUTE when the route (or its expiry) changed. */
static void publish_route(struct elector *e, const struct elect_view *v)
{
    struct msg_route r;
    wanted_route(e, v, &r);
    if (!e->route_sent || memcmp(&r, &e->route, sizeof(r)) != 0) {
        e->route = r;
        e->route_sent = true;
        send_msg(e, EP_PROXY, MSG_ROUTE, &r, sizeof(r));
    }
}

/* Sends MSG_ROUTE when the route changed, MSG_LEASE after each renewal while leader and once
 * when leadership ends, and the status snapshot outside a step. */
static void publish(struct elector *e)
{
    struct elect_view v;
    elector_build_view(e, &v);
    const struct elect_local *l = &e->local;
    if (l->state == ELECT_LEADER) {
        if (!e->lease_sent_leader || e->lease_msg.deadline_boot_ms != l->deadline_ms ||
            e->lease_msg.term != l->term) {
            e->lease_msg = (struct msg_lease){
                .term = l->term, .deadline_boot_ms = l->deadline_ms, .leader = 1};
            e->lease_sent_leader = true;
            send_msg(e, EP_SUP, MSG_LEASE, &e->lease_msg, sizeof(e->lease_msg));
        }
    } else if (e->lease_sent_leader) {
        e->lease_msg.leader = 0;
        e->lease_sent_leader = false;
        send_msg(e, EP_SUP, MSG_LEASE, &e->lease_msg, sizeof(e->lease_msg));
    }
    publish_route(e, &v);
    if (!e->in_step)
        elector_status_publish(e); /* once per step, not per action */
}

/* ---- timers ---- */

static void on_tick(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct elector *e = arg;
    e->tick_timer = 0;
    step(e);
}

static void on_deadline(void *arg)
{
    struct elector *e = arg;
    log_debug("lease deadline timer fired", "state=%s", elect_state_name(e->local.state));
    step(e);
}

static void schedule(struct elector *e)
{
    const struct elect_local *l = &e->local;
    if (e->tick_timer)
        loop_cancel_timer(e->loop, e->tick_timer);
    e->tick_timer = 0;
    if (e->deadline) {
        if (l->state == ELECT_LEADER) {
            if (boottimer_expiry(e->deadline) != l->deadline_ms)
                boottimer_arm(e->deadline, l->deadline_ms);
        } else {
            boottimer_disarm(e->deadline);
        }
    }
    if (l->state == ELECT_STOPPED || l->shutdown)
        return;
    uint64_t now = clock_boot_ms();
    uint64_t wake = now + e->ec.t.loop_wait_ms;
    if (l->next_lease_ms < wake)
        wake = l->next_lease_ms;
    bool stale = !e->cache.valid || !(e->watch && etcd_watch_is_up(e->watch));
    if (stale && l->next_read_ms < wake)
        wake = l->next_read_ms;
    e->tick_timer = loop_add_timer(e->loop, wake > now ? wake - now : 0, 0, on_tick, e);
}

static void on_stats(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct elector *e = arg;
    uint64_t now = clock_boot_ms();
    uint64_t total = etcd_request_count(e->etcd);
    double secs = (double)(now - e->stats_at_ms) / 1000.0;
    log_debug("etcd requests", "total=%llu per_s=%.2f state=%s", (unsigned long long)total,
              secs > 0 ? (double)(total - e->stats_requests) / secs : 0.0,
              elect_state_name(e->local.state));
    e->stats_requests = total;
    e->stats_at_ms = now;
}

/* ---- the step ---- */

/* The dynamic config from the cache decides the timings (re-read only when the cache changed). */
static void refresh_timings(struct elector *e)
{
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_config);
    int64_t rev = en ? en->mod_rev : 0;
    if (e->dyn_checked && e->dyn_mod_rev == rev)
        return;
    e->dyn_checked = true;
    e->dyn_mod_rev = rev;
    struct dcs_config next;
    struct dcs_err err = {{0}};
    bool present = false;
    if (en) {
        present = dcs_config_decode(en->value, en->value_len, &next, &err);
        if (!present)
            log_warn("ignoring an invalid config key; using the local [ha] values", "err=\"%s\"",
                     err.msg);
    }
    struct elect_timings t = elect_timings_compute(&e->cfg.ha, present ? &next : NULL);
    if (memcmp(&t, &e->ec.t, sizeof(t)) != 0)
        log_info("timings",
                 "ttl_ms=%llu loop_wait_ms=%llu retry_timeout_ms=%llu margin_ms=%llu "
                 "source=%s",
                 (unsigned long long)t.ttl_ms, (unsigned long long)t.loop_wait_ms,
                 (unsigned long long)t.retry_timeout_ms, (unsigned long long)t.margin_ms,
                 present ? "config key" : "local");
    e->ec.t = t;
    if (e->dyn_present)
        dcs_config_free(&e->dyn);
    e->dyn_present = present;
    if (present)
        e->dyn = next;
    elector_build_values(e); /* the member key carries `pause` */
}

static void step(struct elector *e)
{
    if (e->in_step) {
        e->again = true;
        return;
    }
    e->in_step = true;
    do {
        e->again = false;
        for (int i = 0; i < MAX_ACTIONS_PER_STEP; i++) {
            refresh_timings(e);
            elector_pg_observe(e);
            struct elect_view v;
            elector_build_view(e, &v);
            struct elect_decision d = elect_decide(&e->ec, &v, &e->local, clock_boot_ms());
            if (d.action == ELECT_ACT_NONE)
                break;
            log_debug("decision", "state=%s action=%s rule=\"%s\"",
                      elect_state_name(e->local.state), elect_action_name(d.action), d.rule);
            struct elect_local before = e->local;
            struct elect_result r;
            bool go_on = elector_perform(e, &d, &v, &r);
            elect_apply(&e->ec, &e->local, &d, &v, &r, clock_boot_ms());
            report(e, &before, &d, &v, &r);
            publish(e); /* a fence reaches the proxy before any further I/O */
            if (!go_on)
                break;
            if (i == MAX_ACTIONS_PER_STEP - 1)
                log_warn("election step did not settle", "last_action=%s",
                         elect_action_name(d.action));
        }
    } while (e->again);
    e->in_step = false;
    publish(e);
    schedule(e);
}

void elector_publish_now(struct elector *e)
{
    publish(e);
}

void elector_step_now(struct elector *e)
{
    step(e);
}

void elector_step_soon(struct elector *e)
{
    if (e->tick_timer)
        loop_cancel_timer(e->loop, e->tick_timer);
    e->tick_timer = loop_add_timer(e->loop, 0, 0, on_tick, e);
}

/* ---- watch ---- */

static void on_watch(void *arg, const struct etcd_watch_update *u)
{
    struct elector *e = arg;
    switch (u->what) {
    case ETCD_WATCH_UP:
    case ETCD_WATCH_DOWN:
        break;
    case ETCD_WATCH_RESYNC:
        kvc_resync(&e->cache, u->kvs, u->n_kvs, u->revision);
        kvc_caught_up(&e->cache, u->revision);
        break;
    case ETCD_WATCH_EVENTS:
        for (size_t i = 0; i < u->n_events; i++) {
            const struct etcd_event *ev = &u->events[i];
            /* A member key that appears (a member that starts copying the leader's data) or goes
             * away: the leader looks at its slots in this step, not up to loop_wait later, so
             * that a member's slot exists before the copy ends and its standby asks for it. */
            if (e->local.state == ELECT_LEADER &&
                strncmp(ev->kv.key, e->k_members, strlen(e->k_members)) == 0 &&
                (ev->type == ETCD_EVENT_DELETE || ev->kv.create_revision == ev->kv.mod_revision))
                e->pg_obs_force = true;
            if (ev->type == ETCD_EVENT_DELETE)
                kvc_delete(&e->cache, ev->kv.key, ev->kv.mod_revision);
            else
                kvc_put(&e->cache, ev->kv.key, ev->kv.value ? ev->kv.value : "",
                        ev->kv.value ? ev->kv.value_len : 0, ev->kv.create_revision,
                        ev->kv.mod_revision, ev->kv.lease);
        }
        kvc_caught_up(&e->cache, u->revision);
        break;
    }
    if (u->what != ETCD_WATCH_DOWN)
        e->dcs_last_seen_s = (int64_t)(clock_wall_ms() / 1000);
    /* The forwarder's route first, from the cache alone (a leader that starts draining must
     * stop getting new clients before the step's PostgreSQL queries), then the step at once:
     * a deleted leader key is raced for within milliseconds. The step publishes the rest. */
    struct elect_view v;
    elector_build_view(e, &v);
    publish_route(e, &v);
    step(e);
}

/* ---- lifecycle ---- */

static bool set_config(struct elector *e, const struct pgw_config *cfg)
{
    e->cfg = *cfg;
    snprintf(e->ec.name, sizeof(e->ec.name), "%s", cfg->node.name);
    e->ec.nofailover = cfg->ha.nofailover || cfg->ha.failover_priority <= 0;
    e->ec.priority = cfg->ha.failover_priority;
    e->ec.max_lag = (int64_t)cfg->ha.maximum_lag_on_failover;
    e->ec.manage_pg = e->manage_pg = cfg->ha.manage_postgresql;
    e->dyn_checked = false; /* re-derive the timings */
    if (e->ec.t.ttl_ms == 0)
        e->ec.t = elect_timings_compute(&cfg->ha, NULL);
    return elector_build_values(e);
}

static bool make_keys(struct elector *e)
{
    const struct pgw_etcd_settings *s = &e->cfg.etcd;
    if (dcs_keys_init(&e->keys, s->namespace, s->scope) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_LEADER, NULL, e->k_leader, sizeof(e->k_leader)) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_MEMBER, e->ec.name, e->k_member, sizeof(e->k_member)) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_MEMBER, NULL, e->k_members, sizeof(e->k_members)) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_CONFIG, NULL, e->k_config, sizeof(e->k_config)) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_STATUS, NULL, e->k_status, sizeof(e->k_status)) < 0) {
        log_error("cannot build the etcd keys", "namespace=%s scope=%s name=%s", s->namespace,
                  s->scope, e->ec.name);
        return false;
    }
    return true;
}

struct elector *elector_new(const struct pgw_config *cfg, struct loop *l, struct store *store,
                            elector_send_fn send, void *send_arg)
{
    struct elector *e = calloc(1, sizeof(*e));
    if (!e) {
        log_error("out of memory");
        return NULL;
    }
    e->loop = l;
    e->store = store;
    e->send = send;
    e->send_arg = send_arg;
    kvc_init(&e->cache);
    if (!set_config(e, cfg) || !make_keys(e) || (e->manage_pg && !elector_pg_init(e)))
        goto fail;
    e->etcd = etcd_client_new(&e->cfg.etcd);
    e->deadline = boottimer_new(l, on_deadline, e);
    if (!e->etcd || !e->deadline)
        goto fail;
    elect_local_init(&e->local, &e->ec.t, clock_boot_ms());
    return e;
fail:
    elector_free(e);
    return NULL;
}

static void on_start(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct elector *e = arg;
    e->tick_timer = 0;
    step(e);
}

bool elector_start(struct elector *e)
{
    const struct etcd_watch_opts o = {.prefix = e->keys.prefix, .idle_reconnect_ms = 120000};
    e->watch = etcd_watch_new(e->etcd, e->loop, &o, on_watch, e);
    if (!e->watch)
        return false;
    e->stats_at_ms = clock_boot_ms();
    e->stats_timer = loop_add_timer(e->loop, STATS_PERIOD_MS, STATS_PERIOD_MS, on_stats, e);
    e->tick_timer = loop_add_timer(e->loop, 0, 0, on_start, e);
    if (!elector_samples_start(e))
        log_warn("no dashboard samples: cannot add their timer");
    log_info("election started", "member=%s prefix=%s nofailover=%s ttl_ms=%llu loop_wait_ms=%llu",
             e->ec.name, e->keys.prefix, e->ec.nofailover ? "yes" : "no",
             (unsigned long long)e->ec.t.ttl_ms, (unsigned long long)e->ec.t.loop_wait_ms);
    return e->tick_timer != 0;
}

void elector_reconfigure(struct elector *e, const struct pgw_config *cfg)
{
    if (!set_config(e, cfg))
        log_warn("keeping the previous member value");
    step(e);
}

void elector_supervisor_fenced(struct elector *e, const struct msg_fence *m)
{
    if (elect_on_supervisor_fence(&e->local, m->term, m->deadline_boot_ms)) {
        step(e);
        return;
    }
    log_info("supervisor fence does not apply",
             "term=%lld fence_deadline_boot_ms=%llu state=%s "
             "own_term=%lld own_deadline_boot_ms=%llu",
             (long long)m->term, (unsigned long long)m->deadline_boot_ms,
             elect_state_name(e->local.state), (long long)e->local.term,
             (unsigned long long)e->local.deadline_ms);
    /* The supervisor dropped the route and its timer: give both back if we still lead. */
    e->route_sent = false;
    e->lease_sent_leader = false;
    publish(e);
}

void elector_shutdown(struct elector *e)
{
    if (!e)
        return;
    etcd_watch_free(e->watch);
    e->watch = NULL;
    if (e->manage_pg && elector_paused(e)) {
        /* Maintenance mode: PostgreSQL keeps running and the lease expires by itself, so an
         * agent started again within the TTL takes its key back without any change. */
        log_info("paused: leaving postgresql running and the leader key to expire", "state=%s",
                 elect_state_name(e->local.state));
        return;
    }
    if (e->manage_pg) {
        /* Before the key goes: no write may land after another node could promote. The
         * leader hands over: `status` tells the replicas where its WAL ends. */
        elector_handover_stop(e);
    }
    e->local.shutdown = true;
    step(e);
    if (e->local.state != ELECT_STOPPED)
        log_warn("shutdown without releasing everything in etcd; the lease expires by itself",
                 "state=%s", elect_state_name(e->local.state));
}

void elector_handle_command(struct elector *e, const void *json, uint32_t len)
{
    elector_command(e, json, len);
}

void elector_free(struct elector *e)
{
    if (!e)
        return;
    etcd_watch_free(e->watch);
    elector_pg_free(e);
    if (e->tick_timer)
        loop_cancel_timer(e->loop, e->tick_timer);
    if (e->stats_timer)
        loop_cancel_timer(e->loop, e->stats_timer);
    elector_samples_stop(e);
    elector_command_free(e);
    boottimer_free(e->deadline);
    etcd_client_free(e->etcd);
    kvc_free(&e->cache);
    if (e->dyn_present)
        dcs_config_free(&e->dyn);
    free(e->repl);
    free(e->member_value);
    free(e->status_value);
    free(e->status_sent);
    free(e);
}

uint64_t elector_etcd_requests(const struct elector *e)
{
    return etcd_request_count(e->etcd);
}
