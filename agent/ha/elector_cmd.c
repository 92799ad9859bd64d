/* Election driver: operator commands from the web process (MSG_COMMAND), answered with MSG_REPLY.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

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

enum { RESTART_TIMEOUT_MS = 60000, STOP_TIMEOUT_MS = 30000 };

struct reply {
    int status;
    json_t *body; /* owned */
};

static struct reply text(int status, const char *msg)
{
    return (struct reply){.status = status, .body = json_string(msg)};
}

static const char *str(const json_t *args, const char *k)
{
    const char *v = json_string_value(json_object_get(args, k));
    return v ? v : "";
}

/* A member that could take over (running replica, eligible, in `sync` in sync mode). */
static bool candidate_eligible(struct elector *e, const struct elect_view *v, const char *name)
{
    char key[DCS_KEY_MAX];
    struct dcs_member m;
    if (dcs_key_path(&e->keys, DCS_KEY_MEMBER, name, key, sizeof(key)) < 0)
        return false;
    const struct kvc_entry *en = kvc_get(&e->cache, key);
    if (!en || !dcs_member_decode(en->value, en->value_len, name, &m, NULL))
        return false;
    if (m.state != DCS_STATE_RUNNING || m.role != DCS_ROLE_REPLICA || dcs_tags_nofailover(&m.tags))
        return false;
    if (v->sync_restricts) {
        struct dcs_sync s;
        const struct kvc_entry *se = kvc_get(&e->cache, e->k_sync);
        if (!se || !dcs_sync_decode(se->value, se->value_len, &s, NULL) ||
            !dcs_sync_matches(&s, name, false))
            return false;
    }
    return true;
}

static bool any_candidate(struct elector *e, const struct elect_view *v, const char *except)
{
    size_t pos = 0, plen = strlen(e->k_members);
    const struct kvc_entry *en;
    while ((en = kvc_next_prefix(&e->cache, e->k_members, &pos)) != NULL) {
        const char *name = en->key + plen;
        if (strcmp(name, except) != 0 && candidate_eligible(e, v, name))
            return true;
    }
    return false;
}

/* POST /switchover and /failover (Patroni's checks and codes). */
static struct reply switchover(struct elector *e, const json_t *a)
{
    struct elect_view v;
    elector_build_view(e, &v);
    bool failover = json_is_true(json_object_get(a, "failover"));
    struct dcs_failover f;
    memset(&f, 0, sizeof(f));
    snprintf(f.leader, sizeof(f.leader), "%s", str(a, "leader"));
    snprintf(f.candidate, sizeof(f.candidate), "%s", str(a, "candidate"));
    const char *at = str(a, "scheduled_at");
    if (failover && !f.candidate[0])
        return text(400, "Failover could be performed only to a specific candidate");
    if (!failover && !f.leader[0])
        return text(400, "Switchover could be performed only from a specific leader");
    if (at[0]) {
        bool tz = false;
        if (!f.leader[0])
            return text(400, "Scheduled switchover could be performed only from a specific "
                             "leader");
        if (v.paused)
            return text(400, "Can't schedule switchover in the paused state");
        if (!dcs_time_parse(at, &f.scheduled_at_ms, &tz))
            return text(422, "Unable to parse scheduled timestamp. It should be in an "
                             "unambiguous format, e.g. ISO 8601");
        if (!tz)
            return text(400, "Timezone information is mandatory for the scheduled switchover");
        if (f.scheduled_at_ms < (int64_t)clock_wall_ms())
            return text(422, "Cannot schedule switchover in the past");
        f.has_scheduled_at = true;
    } else {
        if (v.paused && !f.candidate[0])
            return text(400, "Switchover is possible only to a specific candidate in a paused "
                             "state");
        if (f.leader[0] && (!v.has_leader || strcmp(f.leader, v.leader) != 0))
            return text(412, "leader name does not match");
        if (f.candidate[0] && f.leader[0] && strcmp(f.candidate, f.leader) == 0)
            return text(412, "Switchover target and source are the same");
        if (f.candidate[0] && !candidate_eligible(e, &v, f.candidate))
            return text(412, v.sync_restricts ? "candidate name does not match with sync_standby"
                                              : "candidate does not exist or is not healthy");
        if (!f.candidate[0] && !any_candidate(e, &v, v.has_leader ? v.leader : ""))
            return text(412, "No candidates found to switchover to");
    }
    size_t len = 0;
    char *value = dcs_failover_encode(&f, &len, NULL);
    struct etcd_put_result pr;
    const struct etcd_put_req req = {.key = e->k_failover, .value = value, .value_len = len};
    if (!value || etcd_put(e->etcd, &req, &pr) != 0) {
        free(value);
        return text(503, "failed to write failover key into DCS");
    }
    const struct kvc_entry *old = kvc_get(&e->cache, e->k_failover);
    kvc_put(&e->cache, e->k_failover, value, len, old ? old->create_rev : pr.header.revision,
            pr.header.revision, 0);
    etcd_put_result_clear(&pr);
    log_info(failover ? "failover requested" : "switchover requested", "value=%s", value);
    free(value);
    elector_step_now(e);
    if (f.has_scheduled_at)
        return text(202, "Switchover scheduled");
    return (struct reply){.status = 200,
                          .body = json_pack("{s:s,s:s,s:b}", "leader", f.leader, "candidate",
                                            f.candidate, "scheduled", 0)};
}

static struct reply switchover_cancel(struct elector *e)
{
    struct elect_view v;
    elector_build_view(e, &v);
    if (!v.has_failover || !v.failover_leader[0])
        return text(404, "no switchover is scheduled");
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_failover);
    const struct etcd_cmp cmp = {
        .target = ETCD_CMP_MOD, .op = ETCD_EQUAL, .key = e->k_failover, .number = en->mod_rev};
    const struct etcd_op put = {.type = ETCD_OP_PUT,
                                .put = {.key = e->k_failover, .value = "{}", .value_len = 2}};
    const struct etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1};
    struct etcd_txn_result t;
    if (etcd_txn(e->etcd, &req, &t) != 0)
        return text(503, "failed to write failover key into DCS");
    bool ok = t.succeeded;
    if (ok)
        kvc_put(&e->cache, e->k_failover, "{}", 2, en->create_rev, t.header.revision, 0);
    etcd_txn_result_clear(&t);
    if (!ok)
        return text(409, "the failover key changed meanwhile");
    log_info("scheduled switchover cancelled");
    return text(200, "scheduled switchover deleted");
}

/* Writes `config` if its mod revision is still rev (0: must not exist). */
static struct reply write_config(struct elector *e, const char *value, size_t len, int64_t rev)
{
    const struct etcd_cmp cmp = {.target = rev ? ETCD_CMP_MOD : ETCD_CMP_CREATE,
                                 .op = ETCD_EQUAL,
                                 .key = e->k_config,
                                 .number = rev};
    const struct etcd_op put = {.type = ETCD_OP_PUT,
                                .put = {.key = e->k_config, .value = value, .value_len = len}};
    const struct etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1};
    struct etcd_txn_result t;
    if (etcd_txn(e->etcd, &req, &t) != 0)
        return text(502, "failed to write the config key into DCS");
    bool ok = t.succeeded;
    etcd_txn_result_clear(&t);
    if (!ok)
        return text(409, "Config changed meanwhile (compare-and-swap failed)");
    log_info("config key written", "value=%s", value);
    json_t *body = json_loadb(value, len, 0, NULL);
    return (struct reply){.status = 200, .body = body ? body : json_object()};
}

static struct reply config_patch(struct elector *e, const json_t *patch)
{
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_config);
    struct dcs_config cur, next;
    struct dcs_err err = {{0}};
    if (!en)
        return text(503, "config is not set in DCS");
    if (!json_is_object(patch))
        return text(400, "the patch must be a JSON object");
    if (!dcs_config_decode(en->value, en->value_len, &cur, &err))
        return text(503, "the config key in DCS is invalid");
    char *ptext = json_dumps(patch, JSON_COMPACT);
    bool changed = false;
    bool ok = ptext && dcs_config_patch(&cur, ptext, strlen(ptext), &next, &changed, &err);
    free(ptext);
    int64_t rev = en->mod_rev;
    dcs_config_free(&cur);
    if (!ok)
        return text(400, err.msg[0] ? err.msg : "invalid config");
    size_t len = 0;
    char *value = dcs_config_dump(&next, &len);
    dcs_config_free(&next);
    if (!value)
        return text(500, "out of memory");
    struct reply r = write_config(e, value, len, rev);
    free(value);
    elector_step_now(e);
    return r;
}

static struct reply config_put(struct elector *e, const json_t *cfg)
{
    struct dcs_config next;
    struct dcs_err err = {{0}};
    if (!json_is_object(cfg) || !dcs_config_from_json((json_t *)cfg, &next, &err))
        return text(400, err.msg[0] ? err.msg : "the config must be a JSON object");
    size_t len = 0;
    char *value = dcs_config_dump(&next, &len);
    dcs_config_free(&next);
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_config);
    struct reply r =
        value ? write_config(e, value, len, en ? en->mod_rev : 0) : text(500, "out of memory");
    free(value);
    elector_step_now(e);
    return r;
}

/* "15.4" -> 150004 (PostgreSQL's server_version_num); 0 when it does not parse. */
static int64_t version_num(const char *v)
{
    char *end;
    long major = strtol(v, &end, 10);
    long minor = *end == '.' ? strtol(end + 1, &end, 10) : 0;
    return major >= 10 && *end == '\0' ? (int64_t)major * 10000 + minor : 0;
}

/* Patroni's restart conditions: pending restart, role, a version below the one given. */
static bool restart_conditions(struct elector *e, const json_t *a)
{
    const char *role = str(a, "role");
    const char *ver = str(a, "postgres_version");
    bool primary = e->pgv.ready && !e->pgv.in_recovery;
    if (json_is_true(json_object_get(a, "restart_pending")) && !e->pending_restart)
        return false;
    if (role[0] && strcasecmp(role, primary ? "master" : "replica") != 0 &&
        !(primary && strcasecmp(role, "primary") == 0))
        return false;
    return !ver[0] || (version_num(ver) > 0 && e->last_st.server_version < version_num(ver));
}

static bool restart_now(struct elector *e)
{
    struct pg_error err;
    log_info("restarting postgresql on request");
    int rc = pg_restart(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, RESTART_TIMEOUT_MS, NULL, &err);
    e->pg_obs_force = true;
    elector_pg_event(e, rc == 0 ? "restarted on request" : "restart on request failed");
    elector_step_now(e);
    return rc == 0;
}

static void clear_schedule(struct elector *e)
{
    if (e->restart_timer)
        loop_cancel_timer(e->loop, e->restart_timer);
    e->restart_timer = 0;
    json_decref(e->restart_args);
    e->restart_args = NULL;
    e->restart_schedule[0] = '\0';
    elector_build_values(e); /* drops scheduled_restart from the member key */
}

static void on_restart_due(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct elector *e = arg;
    e->restart_timer = 0;
    json_t *a = json_incref(e->restart_args);
    bool go = e->pgv.datadir_ok && restart_conditions(e, a);
    clear_schedule(e);
    if (!go)
        log_warn("scheduled restart skipped: its conditions do not hold");
    else if (!restart_now(e))
        log_warn("scheduled restart failed");
    json_decref(a);
}

/* POST /restart: now, or at `schedule`, when the conditions hold. */
static struct reply restart(struct elector *e, const json_t *a)
{
    const char *at = str(a, "schedule");
    if (!e->pgv.datadir_ok)
        return text(503, "postgresql is not initialized here");
    if (at[0]) {
        int64_t ms = 0;
        bool tz = false;
        if (elector_paused(e))
            return text(500, "Can't schedule restart in the paused state");
        if (e->restart_args)
            return text(409, "Cannot schedule restart: another restart is already scheduled");
        if (!dcs_time_parse(at, &ms, &tz))
            return text(422, "Unable to parse scheduled timestamp. It should be in an "
                             "unambiguous format, e.g. ISO 8601");
        if (!tz)
            return text(400, "Timezone information is mandatory for the scheduled restart");
        int64_t now = (int64_t)clock_wall_ms();
        if (ms < now)
            return text(422, "Cannot schedule restart in the past");
        e->restart_args = json_deep_copy(a);
        snprintf(e->restart_schedule, sizeof(e->restart_schedule), "%s", at);
        e->restart_timer = loop_add_timer(e->loop, (uint64_t)(ms - now), 0, on_restart_due, e);
        elector_build_values(e);
        log_info("restart scheduled", "at=%s", at);
        return text(202, "Restart scheduled");
    }
    if (!restart_conditions(e, a))
        return text(503, "restart conditions are not satisfied");
    return restart_now(e) ? text(200, "restarted successfully") : text(503, "restart failed");
}

/* POST /reinitialize: a replica throws its data away and clones the leader again. */
static struct reply reinitialize(struct elector *e)
{
    struct elect_view v;
    elector_build_view(e, &v);
    if (e->local.state == ELECT_LEADER)
        return text(503, "I am the leader, can not reinitialize");
    if (!v.has_leader)
        return text(503, "Cluster has no leader, can not reinitialize");
    struct pg_error err;
    struct pg_stop_result sr;
    log_warn("reinitializing on request: stopping postgresql and removing its data");
    if (pg_stop(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, true, &sr, &err) < 0 ||
        pg_datadir_wipe(&e->pg, &err) < 0)
        return text(503, "reinitialize failed");
    elector_pg_event(e, "reinitialize requested");
    e->pg_obs_force = true;
    elector_step_soon(e); /* the clone rule takes over, after this answer: a copy takes long */
    return text(200, "reinitialize started");
}

static struct reply dispatch(struct elector *e, const char *op, const json_t *a)
{
    if (!e->manage_pg && strcmp(op, "reload") != 0 && strncmp(op, "config", 6) != 0 &&
        strcmp(op, "pause") != 0 && strcmp(op, "resume") != 0)
        return text(503, "postgresql is not managed by this node");
    if (strcmp(op, "switchover") == 0)
        return switchover(e, a);
    if (strcmp(op, "switchover_cancel") == 0)
        return switchover_cancel(e);
    if (strcmp(op, "config_patch") == 0)
        return config_patch(e, json_object_get(a, "patch"));
    if (strcmp(op, "config_put") == 0)
        return config_put(e, json_object_get(a, "config"));
    if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0) {
        json_t *p =
            json_pack("{s:o}", "pause", strcmp(op, "pause") == 0 ? json_true() : json_null());
        struct reply r = config_patch(e, p);
        json_decref(p);
        return r;
    }
    if (strcmp(op, "restart") == 0)
        return restart(e, a);
    if (strcmp(op, "restart_cancel") == 0) {
        if (!e->restart_args)
            return text(404, "no restart is scheduled");
        clear_schedule(e);
        return text(200, "scheduled restart deleted");
    }
    if (strcmp(op, "reinitialize") == 0)
        return reinitialize(e);
    if (strcmp(op, "reload") == 0) {
        kill(getppid(), SIGHUP); /* the supervisor re-reads the file and tells every child */
        return text(202, "reload scheduled");
    }
    return text(400, "unknown operation");
}

void elector_command(struct elector *e, const char *json, size_t len)
{
    json_error_t jerr;
    json_t *a = json_loadb(json, len, 0, &jerr);
    json_int_t id = a ? json_integer_value(json_object_get(a, "id")) : 0;
    const char *op = a ? json_string_value(json_object_get(a, "op")) : NULL;
    struct reply r = op ? dispatch(e, op, a) : text(400, "bad command");
    const char *user = a ? json_string_value(json_object_get(a, "user")) : NULL;
    log_info("command", "op=%s status=%d user=%s", op ? op : "?", r.status, user ? user : "-");
    if (op && e->store) {
        json_t *d =
            json_pack("{s:s,s:i,s:s}", "op", op, "status", r.status, "user", user ? user : "-");
        char *dt = d ? json_dumps(d, JSON_COMPACT) : NULL;
        if (!dt || !store_event_add(e->store, clock_wall_ms(), "command", e->ec.name, e->local.term,
                                    dt, NULL))
            log_warn("cannot record an event", "kind=command");
        free(dt);
        json_decref(d);
    }
    json_t *out = json_pack("{s:I,s:i,s:o}", "id", id, "status", r.status, "body",
                            r.body ? r.body : json_null());
    char *t = out ? json_dumps(out, JSON_COMPACT) : NULL;
    if (t) {
        int rc = e->send(e->send_arg, EP_WEB, MSG_REPLY, t, (uint32_t)strlen(t));
        if (rc < 0)
            log_warn("command reply not sent", "op=%s err=%d", op ? op : "?", rc);
    }
    free(t);
    json_decref(out);
    json_decref(a);
}

void elector_command_free(struct elector *e)
{
    if (e->restart_timer)
        loop_cancel_timer(e->loop, e->restart_timer);
    e->restart_timer = 0;
    json_decref(e->restart_args);
    e->restart_args = NULL;
}
