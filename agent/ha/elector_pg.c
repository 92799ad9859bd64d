/* Election driver, PostgreSQL side: observes the local server and performs the PG actions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/dcs/history.h"
#include "agent/dcs/isotime.h"
#include "agent/dcs/member.h"
#include "agent/dcs/values.h"
#include "agent/etcd/etcd.h"
#include "agent/ha/elector_int.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/loop.h"

#define LOG_MODULE "ha"

enum {
    START_TIMEOUT_MS = 60000,
    STANDBY_START_WAIT_MS = 5000, /* a standby may need the leader's WAL to become ready */
    STOP_TIMEOUT_MS = 30000,
    PROMOTE_TIMEOUT_MS = 30000,
    FOLLOW_TIMEOUT_MS = 10000,
};

static void on_postmaster_exit(struct pg_watch *w, pid_t pid, void *arg);

void elector_pg_event(struct elector *e, const char *what)
{
    char detail[128];
    snprintf(detail, sizeof(detail), "{\"event\":\"%s\"}", what);
    if (!e->store || !store_event_add(e->store, clock_wall_ms(), "postgresql", e->ec.name,
                                      e->local.term, detail, NULL))
        log_warn("cannot record an event", "kind=postgresql event=\"%s\"", what);
}

/* ---- lifecycle ---- */

bool elector_pg_init(struct elector *e)
{
    struct pg_error err;
    if (pg_instance_init(&e->pg, &e->cfg, &err) < 0 ||
        pg_slot_name_from_member(e->ec.name, e->slot) < 0)
        return false; /* logged by pg_instance_init; a valid member name always makes a slot */
    if (dcs_key_path(&e->keys, DCS_KEY_INITIALIZE, NULL, e->k_initialize, sizeof(e->k_initialize)) <
            0 ||
        dcs_key_path(&e->keys, DCS_KEY_HISTORY, NULL, e->k_history, sizeof(e->k_history)) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_SYNC, NULL, e->k_sync, sizeof(e->k_sync)) < 0 ||
        dcs_key_path(&e->keys, DCS_KEY_FAILOVER, NULL, e->k_failover, sizeof(e->k_failover)) < 0) {
        log_error("cannot build the etcd keys");
        return false;
    }
    e->pg.cancel_fd = loop_signal_fd(e->loop); /* SIGTERM interrupts pg_ctl, pg_rewind... */
    e->pg.busy_tick = elector_busy_tick;       /* the lease outlives a long copy or rewind */
    e->pg.busy_arg = e;
    e->pg_obs_force = true;
    return true;
}

void elector_pg_free(struct elector *e)
{
    free(e->params_applied);
    e->params_applied = NULL;
    pg_watch_stop(e->pm_watch);
    e->pm_watch = NULL;
}

/* Watches the postmaster pm (at once notified of its death: pidfd in the loop). */
static void watch_postmaster(struct elector *e, const struct pg_postmaster *pm)
{
    if (e->pm_watch && e->pm_pid == pm->pid)
        return;
    pg_watch_stop(e->pm_watch);
    e->pm_watch = pg_watch_start(e->loop, pm, 0, on_postmaster_exit, e);
    e->pm_pid = e->pm_watch ? pm->pid : 0;
    if (e->pm_watch)
        log_info("watching the postmaster", "pid=%d", (int)pm->pid);
}

static void on_postmaster_exit(struct pg_watch *w, pid_t pid, void *arg)
{
    struct elector *e = arg;
    pg_watch_stop(w);
    if (e->pm_watch == w)
        e->pm_watch = NULL;
    e->pm_pid = 0;
    log_warn("postmaster exited", "pid=%d role=%s", (int)pid, elect_state_name(e->local.state));
    e->pg_obs_force = true;
    elector_step_now(e);
}

/* ---- observation ---- */

void elector_pg_observe(struct elector *e)
{
    if (!e->manage_pg)
        return;
    uint64_t now = clock_boot_ms();
    if (!e->pg_obs_force && now < e->pg_obs_next_ms)
        return;
    e->pg_obs_force = false;
    e->pg_obs_next_ms = now + e->ec.t.loop_wait_ms;
    struct elect_pg p = {.known = true, .lsn = e->pgv.lsn, .slots_ok = true};
    enum pg_datadir_state ds = PG_DATADIR_OTHER;
    if (pg_datadir_probe(&e->pg, &ds, NULL) < 0)
        ds = PG_DATADIR_OTHER;
    p.datadir_empty = ds == PG_DATADIR_MISSING || ds == PG_DATADIR_EMPTY;
    p.datadir_ok = ds == PG_DATADIR_INITIALIZED;
    struct pg_postmaster pm;
    if (p.datadir_ok && pg_postmaster_find(&e->pg, &pm, NULL) == 0) {
        p.running = true;
        watch_postmaster(e, &pm);
        struct pg_status st;
        if (pg_status_query(&e->pg, &st, NULL) == 0) {
            p.ready = true;
            e->last_st = st;
            if (!e->ssn_known && !st.in_recovery) {
                /* adopted a running primary: keep its synchronous standbys as they are */
                snprintf(e->ssn, sizeof(e->ssn), "%s", st.sync_standby_names);
                e->ssn_known = true;
            }
            if (st.pending_restart != e->pending_restart) {
                log_info(st.pending_restart ? "a changed parameter needs a restart"
                                            : "no parameter waits for a restart");
                e->pending_restart = st.pending_restart;
                elector_build_values(e);
            }
            p.in_recovery = st.in_recovery;
            p.lsn = (int64_t)st.wal_lsn;
            e->sysid = st.system_id;
            p.sysid = st.system_id;
            e->timeline = st.timeline;
        }
    }
    struct pg_controldata cd;
    if (p.datadir_ok && !p.ready && pg_controldata_read(&e->pg, &cd, NULL) == 0) {
        p.sysid = cd.system_id;
        p.was_primary =
            !p.running && (cd.state == PG_STATE_SHUT_DOWN || cd.state == PG_STATE_IN_PRODUCTION ||
                           cd.state == PG_STATE_SHUTTING_DOWN);
    }
    if (p.ready && !p.in_recovery && e->local.state == ELECT_LEADER)
        p.slots_ok = elector_slots_ok(e);
    free(e->repl);
    e->repl = NULL;
    e->nrepl = 0;
    e->repl_valid =
        p.ready && !p.in_recovery && pg_replication_list(&e->pg, &e->repl, &e->nrepl, NULL) == 0;
    if (p.ready && !p.in_recovery && e->local.state == ELECT_LEADER)
        elector_sync_observe(e);
    else
        e->sync.valid = false;
    if (memcmp(&p, &e->pgv, sizeof(p)) != 0) {
        if (p.running != e->pgv.running || p.in_recovery != e->pgv.in_recovery ||
            p.ready != e->pgv.ready)
            log_info("postgresql", "running=%s ready=%s in_recovery=%s lsn=%lld",
                     p.running ? "yes" : "no", p.ready ? "yes" : "no", p.in_recovery ? "yes" : "no",
                     (long long)p.lsn);
        e->pgv = p;
        if (p.ready && !p.in_recovery)
            e->optime = p.lsn;
        elector_build_values(e);
    }
}

void elector_pg_member(const struct elector *e, struct dcs_member *m)
{
    const struct elect_pg *p = &e->pgv;
    if (!e->manage_pg)
        return;
    m->state = p->ready ? DCS_STATE_RUNNING : p->running ? DCS_STATE_STARTING : DCS_STATE_STOPPED;
    if (e->busy_state != DCS_STATE_UNKNOWN)
        m->state = e->busy_state;
    if (e->busy_state == DCS_STATE_CREATING_REPLICA && e->has_clone_progress) {
        m->has_clone_bytes = true;
        m->clone_bytes = e->clone_progress.done_bytes;
        m->clone_total_bytes = e->clone_progress.total_bytes;
    }
    m->role = p->ready && !p->in_recovery ? DCS_ROLE_PRIMARY : DCS_ROLE_REPLICA;
    if (p->ready) {
        m->has_xlog_location = true;
        m->xlog_location = p->lsn;
        m->has_timeline = true;
        m->timeline = e->timeline;
        if (p->in_recovery)
            snprintf(m->replication_state, sizeof(m->replication_state), "%s",
                     e->last_st.streaming ? "streaming" : "in archive recovery");
    }
    if (p->ready) {
        m->has_server_version = true;
        m->server_version = e->last_st.server_version;
        if (p->in_recovery) {
            m->has_replay_lag_ms = true; /* rounded: the key is rewritten only on a real change */
            m->replay_lag_ms = (int64_t)(e->last_st.replay_lag_ms / 100 * 100);
        }
    }
    m->pending_restart = e->pending_restart && p->ready;
    if (e->restart_schedule[0])
        snprintf(m->scheduled_restart, sizeof(m->scheduled_restart), "{\"schedule\":\"%s\"}",
                 e->restart_schedule);
    m->pause = elector_paused(e);
}

bool elector_paused(const struct elector *e)
{
    return e->dyn_present && e->dyn.pause;
}

bool elector_sync_mode(const struct elector *e)
{
    return e->dyn_present && e->dyn.synchronous_mode == DCS_SYNC_ON;
}

/* Logs (once per mismatch) that data_dir belongs to another cluster, and records an event. */
static void note_foreign(struct elector *e, const struct elect_view *v)
{
    if (!elect_pg_foreign(&e->ec, v)) {
        if (e->foreign_noted != 0 && v->initialize_set && v->pg.datadir_ok && v->pg.sysid != 0)
            log_info("data directory now matches the cluster", "system_identifier=%" PRIu64,
                     v->pg.sysid);
        if (!v->pg.datadir_ok || (v->initialize_set && v->pg.sysid != 0))
            e->foreign_noted = 0;
        return;
    }
    if (e->foreign_noted == v->pg.sysid)
        return;
    e->foreign_noted = v->pg.sysid;
    log_error("data directory belongs to another cluster: refusing to start PostgreSQL and to "
              "join the cluster",
              "data_dir=%s data_dir_system_identifier=%" PRIu64
              " cluster_system_identifier=%" PRIu64,
              e->pg.data_dir, v->pg.sysid, v->initialize_sysid);
    char detail[160];
    snprintf(detail, sizeof(detail),
             "{\"event\":\"data directory belongs to another cluster\",\"data_dir_sysid\":"
             "\"%" PRIu64 "\",\"cluster_sysid\":\"%" PRIu64 "\"}",
             v->pg.sysid, v->initialize_sysid);
    if (!e->store || !store_event_add(e->store, clock_wall_ms(), "postgresql", e->ec.name,
                                      e->local.term, detail, NULL))
        log_warn("cannot record an event", "kind=postgresql event=\"foreign data directory\"");
}

bool elector_leader_address(struct elector *e, const char *leader, char *host, size_t cap,
                            uint16_t *port, uint32_t *timeline)
{
    char key[DCS_KEY_MAX];
    if (dcs_key_path(&e->keys, DCS_KEY_MEMBER, leader, key, sizeof(key)) < 0)
        return false;
    const struct kvc_entry *en = kvc_get(&e->cache, key);
    struct dcs_member *m = en ? malloc(sizeof(*m)) : NULL;
    bool ok = m && dcs_member_decode(en->value, en->value_len, leader, m, NULL) &&
              elector_parse_conn_url(m->conn_url, host, cap, port);
    if (timeline)
        *timeline = ok && m->has_timeline && m->timeline > 0 ? (uint32_t)m->timeline : 0;
    free(m);
    return ok;
}

void elector_pg_view(struct elector *e, struct elect_view *v)
{
    if (!e->manage_pg)
        return;
    v->pg = e->pgv;
    v->peer_max_lsn = -1;
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_initialize);
    if (en) {
        struct dcs_initialize in;
        v->has_initialize = true;
        v->initialize_set =
            dcs_initialize_decode(en->value, en->value_len, &in, NULL) && !in.racing;
        if (v->initialize_set)
            v->initialize_sysid = in.sysid_num;
    }
    note_foreign(e, v);
    en = kvc_get(&e->cache, e->k_status);
    struct dcs_status st;
    if (en && dcs_status_decode(en->value, en->value_len, &st, NULL) && st.has_optime) {
        v->has_optime = true;
        v->optime = st.optime;
    }
    if (v->has_leader && strcmp(v->leader, e->ec.name) != 0) {
        char host[PG_HOST_MAX];
        uint16_t port = 0;
        v->leader_conn = elector_leader_address(e, v->leader, host, sizeof(host), &port, NULL);
        v->pg.following_leader = v->leader_conn && strcmp(e->upstream, v->leader) == 0 &&
                                 strcmp(e->upstream_host, host) == 0 && e->upstream_port == port;
    }
    elector_peers_view(e, v);
}

/* ---- actions ---- */

/* The `config` postgresql.parameters object (borrowed), or NULL. */
static const json_t *dyn_params(const struct elector *e)
{
    return e->dyn_present ? dcs_config_parameters(&e->dyn) : NULL;
}

/* Fills e->params from `config` (values that are not scalars are skipped, logged once per
 * config revision by the caller's reconfigure). Returns the count. */
static size_t build_params(struct elector *e)
{
    const json_t *params = dyn_params(e);
    size_t n = 0, used = 0;
    const char *name;
    json_t *val;
    if (!params)
        return 0;
    json_object_foreach((json_t *)params, name, val)
    {
        char text[1024];
        size_t nl = strlen(name) + 1, tl;
        if (n >= PG_PARAMS_MAX || !dcs_config_param_text(val, text, sizeof(text)))
            continue;
        tl = strlen(text) + 1;
        if (used + nl + tl > sizeof(e->params_buf))
            break;
        memcpy(e->params_buf + used, name, nl);
        e->params[n].name = e->params_buf + used;
        used += nl;
        memcpy(e->params_buf + used, text, tl);
        e->params[n].value = e->params_buf + used;
        used += tl;
        n++;
    }
    return n;
}

/* Compact JSON of the wanted parameters ("{}" without any); malloc'd, NULL on failure. */
static char *params_wanted(const struct elector *e)
{
    const json_t *params = dyn_params(e);
    return params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
}

void elector_make_conf(struct elector *e, struct pg_conf *c, bool standby, const char *host,
                       uint16_t port)
{
    memset(c, 0, sizeof(*c));
    c->hot_standby_feedback = true;
    c->standby = standby;
    c->params = e->params;
    c->nparams = build_params(e);
    c->sync_standby_names = standby ? "" : e->ssn;
    char *want = params_wanted(e); /* what this configuration carries */
    if (want) {
        free(e->params_applied);
        e->params_applied = want;
    }
    if (standby && host && host[0]) {
        c->upstream_host = host;
        c->upstream_port = port;
        c->slot = e->slot;
    }
}

/* The standby configuration for the current leader (none when there is none, or it is us). */
static void standby_target(struct elector *e, const struct elect_view *v, char *host, size_t cap,
                           uint16_t *port)
{
    host[0] = '\0';
    *port = 0;
    e->upstream[0] = '\0';
    if (v->has_leader && strcmp(v->leader, e->ec.name) != 0 &&
        elector_leader_address(e, v->leader, host, cap, port, NULL))
        snprintf(e->upstream, sizeof(e->upstream), "%s", v->leader);
    else
        host[0] = '\0';
    snprintf(e->upstream_host, sizeof(e->upstream_host), "%s", host);
    e->upstream_port = *port;
}

int elector_start_standby(struct elector *e, const struct elect_view *v, bool stop_first)
{
    struct pg_error err;
    char host[PG_HOST_MAX];
    uint16_t port;
    struct pg_conf c;
    int rc = 0;
    if (stop_first) {
        struct pg_stop_result sr;
        rc = pg_stop(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, true, &sr, &err);
    }
    standby_target(e, v, host, sizeof(host), &port);
    elector_make_conf(e, &c, true, host, port);
    if (rc == 0)
        rc = pg_conf_apply(&e->pg, &c, &err);
    if (rc == 0)
        rc = pg_start(&e->pg, STANDBY_START_WAIT_MS, NULL, &err);
    struct pg_postmaster pm;
    if (rc == -ECANCELED)
        e->start_cancelled = true; /* the postmaster may be starting: stopped at shutdown */
    if (rc != 0 && rc != -EALREADY && !e->start_cancelled &&
        pg_postmaster_find(&e->pg, &pm, NULL) == 0) {
        /* Not consistent yet (it needs WAL from the leader): it goes on recovering while the
         * HA loop goes on; the observation shows when it is ready. */
        log_info("postgresql started as a standby, still recovering", "pid=%d upstream=%s",
                 (int)pm.pid, host[0] ? e->upstream : "none");
        return 0;
    }
    if (rc == -EALREADY)
        rc = 0;
    if (rc == 0)
        log_info("postgresql started as a standby", "upstream=%s", host[0] ? e->upstream : "none");
    return rc;
}

static int start_primary(struct elector *e)
{
    struct pg_error err;
    struct pg_conf c;
    elector_make_conf(e, &c, false, NULL, 0);
    int rc = pg_conf_apply(&e->pg, &c, &err);
    if (rc == 0)
        rc = pg_start(&e->pg, START_TIMEOUT_MS, NULL, &err);
    if (rc == -EALREADY)
        rc = 0;
    e->upstream[0] = '\0';
    if (rc == 0)
        log_info("postgresql started as the primary");
    return rc;
}

static int bootstrap(struct elector *e)
{
    struct pg_error err;
    struct pg_conf c;
    const struct pg_initdb_opts o = {0};
    elector_make_conf(e, &c, false, NULL, 0);
    log_info("bootstrapping a new cluster", "data_dir=%s", e->pg.data_dir);
    e->busy_state = DCS_STATE_INITIALIZING;
    elector_put_member_now(e);
    int rc = pg_initdb(&e->pg, &o, &c, &err);
    e->busy_state = DCS_STATE_UNKNOWN;
    elector_build_values(e);
    if (rc == 0)
        rc = pg_start(&e->pg, START_TIMEOUT_MS, NULL, &err);
    if (rc == 0)
        rc = pg_roles_setup(&e->pg, &err);
    if (rc == 0) {
        log_info("cluster bootstrapped");
        elector_pg_event(e, "bootstrapped");
    }
    return rc;
}

static int clone_leader(struct elector *e, const struct elect_view *v)
{
    struct pg_error err;
    char host[PG_HOST_MAX];
    uint16_t port;
    struct pg_conf c;
    standby_target(e, v, host, sizeof(host), &port);
    if (!host[0])
        return -EAGAIN;
    elector_make_conf(e, &c, true, host, port);
    /* No slot for the copy itself: pg_basebackup keeps the WAL it streams with a temporary one.
     * This member's slot is the leader's to create, as soon as it sees the member key written
     * below; a copy started before that failed ("slot does not exist") and was retried a loop
     * later. The standby then streams through its slot (should it ask first, it asks again
     * wal_retrieve_retry_interval later), and wal_keep_size covers the moment between. */
    const struct pg_clone_opts o = {.host = host, .port = port};
    log_info("cloning the leader", "leader=%s standby_slot=%s", v->leader, e->slot);
    e->busy_state = DCS_STATE_CREATING_REPLICA;
    snprintf(e->clone_host, sizeof(e->clone_host), "%s", host);
    e->clone_port = port;
    e->has_clone_progress = false;
    e->clone_logged_tenth = 0;
    elector_put_member_now(e);
    int rc = pg_clone(&e->pg, &o, &c, &err);
    e->busy_state = DCS_STATE_UNKNOWN;
    e->clone_port = 0;
    e->has_clone_progress = false;
    elector_build_values(e);
    if (rc == 0)
        rc = pg_start(&e->pg, START_TIMEOUT_MS, NULL, &err);
    if (rc == 0) {
        log_info("replica created", "leader=%s", v->leader);
        elector_pg_event(e, "replica created");
    }
    return rc;
}

void elector_clone_tick(struct elector *e)
{
    struct pg_clone_progress p;
    if (pg_clone_progress(&e->pg, e->clone_host, e->clone_port, &p, NULL) < 0)
        return;
    const struct pg_clone_progress *was = &e->clone_progress;
    bool changed = !e->has_clone_progress || p.done_bytes != was->done_bytes ||
                   p.total_bytes != was->total_bytes;
    e->clone_progress = p;
    e->has_clone_progress = true;
    int pct = dcs_clone_percent(p.done_bytes, p.total_bytes);
    if (pct / 10 > e->clone_logged_tenth) {
        e->clone_logged_tenth = pct / 10;
        log_info("copying the leader's data", "done_bytes=%lld total_bytes=%lld percent=%d",
                 (long long)p.done_bytes, (long long)p.total_bytes, pct);
    }
    if (changed) {
        elector_put_member_now(e);
        elector_status_publish(e);
    }
}

static int follow(struct elector *e, const struct elect_view *v)
{
    struct pg_error err;
    char host[PG_HOST_MAX];
    uint16_t port;
    struct pg_conf c;
    standby_target(e, v, host, sizeof(host), &port);
    elector_make_conf(e, &c, true, host, port);
    int rc = pg_follow(&e->pg, &c, FOLLOW_TIMEOUT_MS, &err);
    if (rc == 0)
        log_info("following the leader", "leader=%s", e->upstream);
    else
        e->upstream[0] = '\0';
    return rc;
}

/* Appends [old timeline, switch lsn, reason, time, me] to `history`. Best effort (logged). */
static void write_history(struct elector *e, uint32_t old_tli, int64_t lsn)
{
    struct dcs_history h = {0};
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_history);
    if (en && !dcs_history_decode(en->value, en->value_len, &h, NULL))
        memset(&h, 0, sizeof(h));
    char ts[40];
    if (dcs_time_format(clock_wall_ms(), ts, sizeof(ts)) < 0)
        ts[0] = '\0';
    size_t len = 0;
    char *value = NULL;
    if (dcs_history_append(&h, old_tli, lsn, "no recovery target specified", ts[0] ? ts : NULL,
                           e->ec.name))
        value = dcs_history_encode(&h, &len, NULL);
    dcs_history_free(&h);
    struct etcd_put_result pr;
    const struct etcd_put_req req = {.key = e->k_history, .value = value, .value_len = len};
    if (!value || etcd_put(e->etcd, &req, &pr) != 0) {
        log_warn("cannot write the history key", "timeline=%u", old_tli);
        free(value);
        return;
    }
    kvc_put(&e->cache, e->k_history, value, len, en ? en->create_rev : pr.header.revision,
            pr.header.revision, 0);
    etcd_put_result_clear(&pr);
    free(value);
}

static int promote(struct elector *e)
{
    struct pg_error err;
    uint32_t old_tli = e->timeline;
    int64_t lsn = e->pgv.lsn;
    int rc = pg_promote(&e->pg, PROMOTE_TIMEOUT_MS, &err);
    if (rc == -EALREADY)
        rc = 0;
    if (rc != 0)
        return rc;
    /* Strict synchronous mode: no commit returns before a standby has it (Patroni's '*'). */
    snprintf(e->ssn, sizeof(e->ssn), "%s",
             elector_sync_mode(e) && e->dyn.synchronous_mode_strict ? "*" : "");
    e->ssn_known = true;
    struct pg_conf c;
    elector_make_conf(e, &c, false, NULL, 0);
    if (pg_conf_apply(&e->pg, &c, &err) < 0 || pg_reload(&e->pg, FOLLOW_TIMEOUT_MS, &err) < 0)
        log_warn("promoted, but cannot rewrite the configuration as a primary");
    e->upstream[0] = '\0';
    /* The switch is from the timeline before the new one (the observed one may be stale). */
    struct pg_status st;
    if (pg_status_query(&e->pg, &st, NULL) == 0 && st.timeline > 1)
        old_tli = st.timeline - 1;
    log_info("promoted", "previous_timeline=%u lsn=%lld", old_tli, (long long)lsn);
    elector_pg_event(e, "promoted");
    if (old_tli > 0)
        write_history(e, old_tli, lsn);
    /* the replicas follow us at once: their slots must exist before their walreceivers ask
     * (a missing slot costs them wal_retrieve_retry_interval, 5 s, per attempt) */
    if (elector_slots_sync(e) < 0)
        log_warn("promoted, but the replication slots are not all in place yet");
    return 0;
}

static bool init_race(struct elector *e, struct elect_result *r)
{
    const struct etcd_cmp cmp = {
        .target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = e->k_initialize, .number = 0};
    const struct etcd_op put = {.type = ETCD_OP_PUT,
                                .put = {.key = e->k_initialize, .value = "", .value_len = 0}};
    const struct etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1};
    struct etcd_txn_result t;
    if (etcd_txn(e->etcd, &req, &t) != 0) {
        log_warn("initialize race failed", "err=\"%s\"", etcd_last_error(e->etcd)->message);
        return false;
    }
    r->ok = true;
    r->won = t.succeeded;
    if (t.succeeded)
        kvc_put(&e->cache, e->k_initialize, "", 0, t.header.revision, t.header.revision, 0);
    log_info(t.succeeded ? "won the initialize race" : "initialize race lost", "revision=%lld",
             (long long)t.header.revision);
    etcd_txn_result_clear(&t);
    return true;
}

static bool write_initialize(struct elector *e, struct elect_result *r)
{
    char v[32];
    int n = dcs_initialize_encode(e->sysid, v, sizeof(v));
    struct etcd_put_result pr;
    const struct etcd_put_req req = {.key = e->k_initialize, .value = v, .value_len = (size_t)n};
    if (n <= 0 || e->sysid == 0 || etcd_put(e->etcd, &req, &pr) != 0) {
        log_warn("cannot write the initialize key");
        return false;
    }
    kvc_put(&e->cache, e->k_initialize, v, (size_t)n, pr.header.revision, pr.header.revision, 0);
    etcd_put_result_clear(&pr);
    log_info("initialize key written", "system_identifier=%s", v);
    r->ok = true;
    return true;
}

/* The dynamic parameters changed: rewrite the configuration for the current role, reload. */
static int reconfigure(struct elector *e, const struct elect_view *v)
{
    struct pg_error err;
    struct pg_conf c;
    char *want = params_wanted(e);
    if (!want)
        return -ENOMEM;
    if (v->pg.in_recovery)
        elector_make_conf(e, &c, true, e->upstream_host, e->upstream_port);
    else
        elector_make_conf(e, &c, false, NULL, 0);
    int rc = pg_conf_apply(&e->pg, &c, &err);
    if (rc == 0)
        rc = pg_reload(&e->pg, FOLLOW_TIMEOUT_MS, &err);
    if (rc == 0) {
        log_info("dynamic parameters applied", "parameters=%s", want);
        free(e->params_applied);
        e->params_applied = want;
        return 0;
    }
    free(want);
    return rc;
}

bool elector_params_ok(struct elector *e)
{
    char *want = params_wanted(e);
    bool ok = want && e->params_applied && strcmp(want, e->params_applied) == 0;
    free(want);
    return ok;
}

bool elector_pg_perform(struct elector *e, const struct elect_decision *d,
                        const struct elect_view *v, struct elect_result *r)
{
    int rc = 0;
    e->pg_obs_force = true;
    switch (d->action) {
    case ELECT_ACT_PG_BOOTSTRAP:
    case ELECT_ACT_PG_CLONE:
    case ELECT_ACT_PG_START_PRIMARY:
    case ELECT_ACT_PG_START_STANDBY:
    case ELECT_ACT_PG_REJOIN:
        if (elector_data_disk_full(e)) { /* logged and recorded once per episode */
            r->ok = false;
            return false;
        }
        break;
    default:
        break;
    }
    switch (d->action) {
    case ELECT_ACT_INIT_RACE:
        return init_race(e, r);
    case ELECT_ACT_WRITE_INITIALIZE:
        return write_initialize(e, r);
    case ELECT_ACT_PG_RELEASE:
        log_warn("postgresql is down on the leader and a replica is caught up: releasing the "
                 "leader key",
                 "peer_lsn=%lld optime=%lld", (long long)v->peer_max_lsn, (long long)v->optime);
        elector_pg_event(e, "crashed on the leader; key released");
        return elector_release_key(e, d, r);
    case ELECT_ACT_PG_DEMOTE: {
        struct pg_stop_result sr;
        struct pg_error err;
        log_warn("demoting postgresql: stopping it; it follows the next leader once checked",
                 "reason=%s", e->local.state == ELECT_FENCED ? "fenced" : "not the leader");
        rc = pg_stop(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, true, &sr, &err);
        e->ssn[0] = '\0';
        e->ssn_known = true;
        if (rc == 0)
            elector_pg_event(e, "demoted");
        break;
    }
    case ELECT_ACT_PG_SWITCHOVER:
        rc = elector_switchover(e, v, r);
        break;
    case ELECT_ACT_PG_REJOIN:
        rc = elector_rejoin(e, v);
        break;
    case ELECT_ACT_SYNC:
        rc = elector_sync_perform(e, v);
        break;
    case ELECT_ACT_PG_RECONFIGURE:
        rc = reconfigure(e, v);
        break;
    case ELECT_ACT_CLEAR_FAILOVER:
        r->ok = elector_clear_failover(e, v);
        return r->ok;
    case ELECT_ACT_PG_BOOTSTRAP:
        rc = bootstrap(e);
        break;
    case ELECT_ACT_PG_CLONE:
        rc = clone_leader(e, v);
        break;
    case ELECT_ACT_PG_START_PRIMARY:
        log_warn("postgresql is down on the leader and no replica is caught up: restarting it");
        rc = start_primary(e);
        break;
    case ELECT_ACT_PG_PROMOTE:
        rc = promote(e);
        break;
    case ELECT_ACT_PG_START_STANDBY:
        rc = elector_start_standby(e, v, false);
        break;
    case ELECT_ACT_PG_FOLLOW:
        rc = follow(e, v);
        break;
    case ELECT_ACT_PG_SLOTS:
        rc = elector_slots_sync(e);
        break;
    default:
        return true;
    }
    r->ok = rc == 0;
    elector_pg_observe(e);
    return rc == 0;
}
