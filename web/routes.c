/* The REST API's path table and handlers: health checks, status bodies, metrics, events,
 * migration jobs and the commands relayed to ha (Patroni's api.py semantics and codes). */
#include "web/routes.h"

#include <stdio.h>
#include <string.h>

#include "agent/msgtypes.h"
#include "platform/clock.h"
#include "web/dash.h"
#include "web/health.h"
#include "web/metrics.h"
#include "web/migrations.h"

enum handler {
    H_CHECK,        /* a health check (GET/HEAD/OPTIONS) */
    H_CLUSTER,      /* GET /cluster */
    H_HISTORY,      /* GET /history */
    H_CONFIG,       /* GET/PATCH/PUT /config */
    H_METRICS,      /* GET /metrics */
    H_EVENTS,       /* GET /events */
    H_MIGRATIONS,   /* GET /migrations */
    H_SWITCHOVER,   /* POST/DELETE /switchover */
    H_FAILOVER,     /* POST /failover */
    H_RESTART,      /* POST/DELETE /restart */
    H_RELOAD,       /* POST /reload */
    H_REINITIALIZE, /* POST /reinitialize */
    H_DASH,         /* /ui and everything under /ui/: the dashboard (web/dash.c) */
};

#define SAFE (WEB_GET | WEB_HEAD | WEB_OPTIONS)

struct web_route {
    const char *path;
    enum handler h;
    enum web_check check;
    unsigned methods;
    const char *allow;
};

static const struct web_route routes[] = {
    {"/", H_CHECK, WEB_CHECK_PRIMARY, SAFE, "GET, HEAD, OPTIONS"},
    {"/primary", H_CHECK, WEB_CHECK_PRIMARY, SAFE, "GET, HEAD, OPTIONS"},
    {"/master", H_CHECK, WEB_CHECK_PRIMARY, SAFE, "GET, HEAD, OPTIONS"},
    {"/read-write", H_CHECK, WEB_CHECK_PRIMARY, SAFE, "GET, HEAD, OPTIONS"},
    {"/leader", H_CHECK, WEB_CHECK_LEADER, SAFE, "GET, HEAD, OPTIONS"},
    {"/standby-leader", H_CHECK, WEB_CHECK_STANDBY_LEADER, SAFE, "GET, HEAD, OPTIONS"},
    {"/standby_leader", H_CHECK, WEB_CHECK_STANDBY_LEADER, SAFE, "GET, HEAD, OPTIONS"},
    {"/replica", H_CHECK, WEB_CHECK_REPLICA, SAFE, "GET, HEAD, OPTIONS"},
    {"/read-only", H_CHECK, WEB_CHECK_READ_ONLY, SAFE, "GET, HEAD, OPTIONS"},
    {"/sync", H_CHECK, WEB_CHECK_SYNC, SAFE, "GET, HEAD, OPTIONS"},
    {"/synchronous", H_CHECK, WEB_CHECK_SYNC, SAFE, "GET, HEAD, OPTIONS"},
    {"/async", H_CHECK, WEB_CHECK_ASYNC, SAFE, "GET, HEAD, OPTIONS"},
    {"/asynchronous", H_CHECK, WEB_CHECK_ASYNC, SAFE, "GET, HEAD, OPTIONS"},
    {"/read-only-sync", H_CHECK, WEB_CHECK_READ_ONLY_SYNC, SAFE, "GET, HEAD, OPTIONS"},
    {"/health", H_CHECK, WEB_CHECK_HEALTH, SAFE, "GET, HEAD, OPTIONS"},
    {"/liveness", H_CHECK, WEB_CHECK_LIVENESS, SAFE, "GET, HEAD, OPTIONS"},
    {"/readiness", H_CHECK, WEB_CHECK_READINESS, SAFE, "GET, HEAD, OPTIONS"},
    {"/patroni", H_CHECK, WEB_CHECK_STATUS, SAFE, "GET, HEAD, OPTIONS"},
    {"/cluster", H_CLUSTER, 0, SAFE, "GET, HEAD, OPTIONS"},
    {"/history", H_HISTORY, 0, SAFE, "GET, HEAD, OPTIONS"},
    {"/config", H_CONFIG, 0, SAFE | WEB_PATCH | WEB_PUT, "GET, HEAD, OPTIONS, PATCH, PUT"},
    {"/metrics", H_METRICS, 0, SAFE, "GET, HEAD, OPTIONS"},
    {"/events", H_EVENTS, 0, SAFE, "GET, HEAD, OPTIONS"},
    {"/migrations", H_MIGRATIONS, 0, SAFE, "GET, HEAD, OPTIONS"},
    {"/switchover", H_SWITCHOVER, 0, WEB_POST | WEB_DELETE | WEB_OPTIONS, "OPTIONS, POST, DELETE"},
    {"/failover", H_FAILOVER, 0, WEB_POST | WEB_OPTIONS, "OPTIONS, POST"},
    {"/restart", H_RESTART, 0, WEB_POST | WEB_DELETE | WEB_OPTIONS, "OPTIONS, POST, DELETE"},
    {"/reload", H_RELOAD, 0, WEB_POST | WEB_OPTIONS, "OPTIONS, POST"},
    {"/reinitialize", H_REINITIALIZE, 0, WEB_POST | WEB_OPTIONS, "OPTIONS, POST"},
    {"/ui", H_DASH, 0, WEB_GET | WEB_HEAD | WEB_POST, "GET, HEAD, POST"},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

const struct web_route *web_route_find(const char *path)
{
    char buf[64];
    size_t n = strlen(path);
    /* One trailing slash is tolerated ("/primary/"). */
    if (n > 1 && n < sizeof(buf) && path[n - 1] == '/') {
        memcpy(buf, path, n - 1);
        buf[n - 1] = '\0';
        path = buf;
    }
    for (size_t i = 0; i < NROUTES; i++)
        if (strcmp(routes[i].path, path) == 0)
            return &routes[i];
    if (strncmp(path, "/ui/", 4) == 0)
        return &routes[NROUTES - 1]; /* the dashboard's assets and data */
    return NULL;
}

const struct web_route *web_route_at(size_t i)
{
    return i < NROUTES ? &routes[i] : NULL;
}

const char *web_route_path(const struct web_route *rt)
{
    return rt->path;
}

bool web_route_self_auth(const struct web_route *rt)
{
    return rt->h == H_DASH;
}

unsigned web_route_methods(const struct web_route *rt)
{
    return rt->methods;
}

const char *web_route_allow(const struct web_route *rt)
{
    return rt->allow;
}

bool web_method_unsafe(enum web_method m)
{
    return m == WEB_POST || m == WEB_PUT || m == WEB_PATCH || m == WEB_DELETE;
}

enum web_method web_method_parse(const char *name)
{
    static const struct {
        const char *name;
        enum web_method m;
    } names[] = {{"GET", WEB_GET},      {"HEAD", WEB_HEAD}, {"OPTIONS", WEB_OPTIONS},
                 {"POST", WEB_POST},    {"PUT", WEB_PUT},   {"PATCH", WEB_PATCH},
                 {"DELETE", WEB_DELETE}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].m;
    return WEB_OTHER;
}

const char *web_query_get(const struct web_request *rq, const char *key)
{
    for (size_t i = 0; i < rq->nquery; i++)
        if (strcmp(rq->query[i].key, key) == 0)
            return rq->query[i].value;
    return NULL;
}

static const struct web_status *fresh_status(const struct web_ctx *ctx)
{
    const struct web_status *st = ctx->snap->st;
    return web_status_fresh(st, ctx->now_boot_ms()) ? st : NULL;
}

static void no_status(struct web_resp *out)
{
    web_resp_error(out, 503, "no current status from the ha process");
}

/* ---- safe endpoints ---- */

static void handle_check(const struct web_ctx *ctx, const struct web_route *rt,
                         const struct web_request *rq, struct web_resp *out)
{
    struct web_health_query q = {0};
    const char *lag = web_query_get(rq, "lag");
    /* Patroni: an unparsable lag means no limit. */
    q.has_lag = lag && web_parse_lag(lag, &q.max_lag);
    for (size_t i = 0; i < rq->nquery; i++) {
        if (strncmp(rq->query[i].key, "tag_", 4) != 0)
            continue;
        if (q.ntags == WEB_MAX_TAG_FILTERS) {
            web_resp_error(out, 400, "too many tag_ filters");
            return;
        }
        q.tags[q.ntags].key = rq->query[i].key + 4;
        q.tags[q.ntags].value = rq->query[i].value;
        q.ntags++;
    }
    const struct web_status *st = ctx->snap->st;
    int code = web_health_code(st, rt->check, &q, ctx->now_boot_ms());
    if (rq->method != WEB_GET) {
        web_resp_set(out, code, NULL, NULL, 0);
        return;
    }
    if (st && st->patroni_body.buf)
        web_resp_set(out, code, WEB_CT_JSON, st->patroni_body.buf, st->patroni_body.len);
    else {
        static const char unknown[] = "{\"state\":\"unknown\",\"role\":\"unknown\"}";
        web_resp_set(out, code, WEB_CT_JSON, unknown, sizeof(unknown) - 1);
    }
}

static void handle_body(const struct web_ctx *ctx,
                        const struct web_body *(*pick)(const struct web_status *),
                        const char *empty, int empty_code, struct web_resp *out)
{
    const struct web_status *st = fresh_status(ctx);
    if (!st) {
        no_status(out);
        return;
    }
    const struct web_body *b = pick(st);
    if (b->buf)
        web_resp_set(out, 200, WEB_CT_JSON, b->buf, b->len);
    else if (empty_code == 200)
        web_resp_set(out, 200, WEB_CT_JSON, empty, strlen(empty));
    else
        web_resp_error(out, empty_code, empty);
}

static const struct web_body *pick_cluster(const struct web_status *st)
{
    return &st->cluster_body;
}

static const struct web_body *pick_history(const struct web_status *st)
{
    return &st->history_body;
}

static const struct web_body *pick_config(const struct web_status *st)
{
    return &st->config_body;
}

static void handle_events(const struct web_ctx *ctx, const struct web_request *rq,
                          struct web_resp *out)
{
    if (!ctx->events) {
        web_resp_error(out, 503, "the event store is not available");
        return;
    }
    struct web_events_query q = {.limit = web_query_get(rq, "limit"),
                                 .kind = web_query_get(rq, "kind"),
                                 .since = web_query_get(rq, "since"),
                                 .before = web_query_get(rq, "before")};
    web_events_get(ctx->events, &q, out);
}

static void handle_migrations(const struct web_ctx *ctx, const struct web_request *rq,
                              struct web_resp *out)
{
    struct web_migs *m = ctx->dash ? web_dash_migs(ctx->dash) : NULL;
    if (!m) {
        web_resp_error(out, 503, "the migration store is not available");
        return;
    }
    web_migs_get(m, web_query_get(rq, "limit"), clock_wall_ms(), out);
}

/* ---- commands ---- */

static bool needs_content(const struct web_request *rq, struct web_resp *out)
{
    if (rq->body_len == 0 && !rq->has_content_length) {
        web_resp_error(out, 411, "Content-Length required");
        return false;
    }
    return true;
}

static json_t *new_cmd(const char *op, const struct web_request *rq)
{
    return json_pack("{s:s,s:s}", "op", op, "user", rq->user ? rq->user : "");
}

static enum web_dispatch send_cmd(const struct web_ctx *ctx, json_t *cmd, uint64_t timeout_ms,
                                  const struct web_cmd_wait *wait, web_cmd_done_fn done,
                                  void *token, uint64_t *cmd_id, struct web_resp *out)
{
    if (!cmd) {
        web_resp_error(out, 500, "out of memory");
        return WEB_DONE;
    }
    *cmd_id = web_cmds_start(ctx->cmds, cmd, timeout_ms, wait, done, token, out);
    return *cmd_id ? WEB_PENDING : WEB_DONE;
}

/* A string member, NULL when absent or null; *bad is set for another type. */
static const char *opt_string(const json_t *o, const char *key, bool *bad)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    const char *s = json_string_value(v);
    return s[0] ? s : NULL;
}

/* POST /switchover and /failover: Patroni's validation (400), then ha checks feasibility. */
static enum web_dispatch handle_switchover_post(const struct web_ctx *ctx, bool failover,
                                                const struct web_request *rq, web_cmd_done_fn done,
                                                void *token, uint64_t *cmd_id, struct web_resp *out)
{
    if (!needs_content(rq, out))
        return WEB_DONE;
    json_t *body = web_parse_body(rq->body, rq->body_len, false, out);
    if (!body)
        return WEB_DONE;
    const struct web_status *st = fresh_status(ctx);
    bool bad = false;
    const char *leader = opt_string(body, "leader", &bad);
    const char *candidate = opt_string(body, "candidate", &bad);
    if (!candidate)
        candidate = opt_string(body, "member", &bad);
    const char *scheduled_at = opt_string(body, "scheduled_at", &bad);
    const char *msg = NULL;
    if (bad)
        msg = "leader, candidate, member and scheduled_at must be strings";
    else if (failover && !candidate)
        msg = "Failover could be performed only to a specific candidate";
    else if (!failover && !leader)
        msg = "Switchover could be performed only from a specific leader";
    else if (!st) {
        json_decref(body);
        no_status(out);
        return WEB_DONE;
    }
    if (!msg && scheduled_at) {
        if (failover && !leader)
            msg = "Failover can't be scheduled";
        else if (st->paused)
            msg = "Can't schedule switchover in the paused state";
    }
    if (!msg && st->paused && !candidate)
        msg = "Switchover is possible only to a specific candidate in a paused state";
    if (failover && leader)
        failover = false; /* Patroni: a failover naming the leader is a switchover */
    if (!msg && leader && candidate && strcmp(leader, candidate) == 0)
        msg = "Switchover target and source are the same";
    if (msg) {
        web_resp_text(out, 400, msg);
        json_decref(body);
        return WEB_DONE;
    }
    json_t *cmd = new_cmd("switchover", rq);
    if (cmd) {
        if (leader)
            json_object_set_new(cmd, "leader", json_string(leader));
        if (candidate)
            json_object_set_new(cmd, "candidate", json_string(candidate));
        if (scheduled_at)
            json_object_set_new(cmd, "scheduled_at", json_string(scheduled_at));
        json_object_set_new(cmd, "failover", json_boolean(failover));
    }
    struct web_cmd_wait wait = {.enabled = !scheduled_at, .failover = failover};
    const char *current = web_status_leader_name(st);
    snprintf(wait.leader, sizeof(wait.leader), "%s", current ? current : "");
    snprintf(wait.candidate, sizeof(wait.candidate), "%s", candidate ? candidate : "");
    uint64_t lw = web_status_loop_wait_ms(st);
    wait.wait_ms =
        ctx->switchover_wait_ms ? ctx->switchover_wait_ms : 2 * (lw > 10000 ? lw : 10000);
    json_decref(body);
    return send_cmd(ctx, cmd, ctx->reply_timeout_ms, &wait, done, token, cmd_id, out);
}

static enum web_dispatch handle_restart_post(const struct web_ctx *ctx,
                                             const struct web_request *rq, web_cmd_done_fn done,
                                             void *token, uint64_t *cmd_id, struct web_resp *out)
{
    json_t *body = web_parse_body(rq->body, rq->body_len, true, out);
    if (!body)
        return WEB_DONE;
    const char *key;
    json_t *v;
    char msg[160];
    json_object_foreach(body, key, v)
    {
        bool known = strcmp(key, "schedule") == 0 || strcmp(key, "restart_pending") == 0 ||
                     strcmp(key, "postgres_version") == 0 || strcmp(key, "timeout") == 0 ||
                     strcmp(key, "role") == 0;
        if (!known) {
            snprintf(msg, sizeof(msg), "Unknown filter for the scheduled restart: %.100s", key);
            web_resp_text(out, 400, msg);
            json_decref(body);
            return WEB_DONE;
        }
        if (strcmp(key, "role") == 0) {
            const char *r = json_string_value(v);
            if (!r || (strcmp(r, "master") != 0 && strcmp(r, "primary") != 0 &&
                       strcmp(r, "replica") != 0)) {
                web_resp_text(out, 400, "PostgreSQL role should be either primary or replica");
                json_decref(body);
                return WEB_DONE;
            }
        }
    }
    json_t *cmd = new_cmd("restart", rq);
    if (cmd)
        json_object_update(cmd, body); /* only the five keys checked above */
    json_decref(body);
    return send_cmd(ctx, cmd, ctx->restart_timeout_ms, NULL, done, token, cmd_id, out);
}

static enum web_dispatch handle_reinit(const struct web_ctx *ctx, const struct web_request *rq,
                                       web_cmd_done_fn done, void *token, uint64_t *cmd_id,
                                       struct web_resp *out)
{
    json_t *body = web_parse_body(rq->body, rq->body_len, true, out);
    if (!body)
        return WEB_DONE;
    json_t *force = json_object_get(body, "force");
    if (force && !json_is_boolean(force)) {
        web_resp_error(out, 400, "force must be true or false");
        json_decref(body);
        return WEB_DONE;
    }
    json_t *cmd = new_cmd("reinitialize", rq);
    if (cmd)
        json_object_set_new(cmd, "force", json_boolean(json_is_true(force)));
    json_decref(body);
    return send_cmd(ctx, cmd, ctx->reply_timeout_ms, NULL, done, token, cmd_id, out);
}

static enum web_dispatch handle_config_write(const struct web_ctx *ctx,
                                             const struct web_request *rq, web_cmd_done_fn done,
                                             void *token, uint64_t *cmd_id, struct web_resp *out)
{
    if (!needs_content(rq, out))
        return WEB_DONE;
    json_t *body = web_parse_body(rq->body, rq->body_len, false, out);
    if (!body)
        return WEB_DONE;
    bool patch = rq->method == WEB_PATCH;
    json_t *cmd = new_cmd(patch ? "config_patch" : "config_put", rq);
    if (cmd)
        json_object_set(cmd, patch ? "patch" : "config", body);
    json_decref(body);
    return send_cmd(ctx, cmd, ctx->reply_timeout_ms, NULL, done, token, cmd_id, out);
}

static enum web_dispatch handle_simple(const struct web_ctx *ctx, const char *op,
                                       const struct web_request *rq, web_cmd_done_fn done,
                                       void *token, uint64_t *cmd_id, struct web_resp *out)
{
    return send_cmd(ctx, new_cmd(op, rq), ctx->reply_timeout_ms, NULL, done, token, cmd_id, out);
}

enum web_dispatch web_route_handle(const struct web_ctx *ctx, const struct web_route *rt,
                                   const struct web_request *rq, web_cmd_done_fn done, void *token,
                                   uint64_t *cmd_id, struct web_resp *out)
{
    *cmd_id = 0;
    if (rq->method == WEB_OPTIONS && rt->h != H_CHECK) {
        /* Patroni answers OPTIONS like HEAD; for the command endpoints there is nothing to
         * check, so OPTIONS only lists the methods. */
        web_resp_set(out, 200, NULL, NULL, 0);
        if (!(rt->methods & WEB_GET))
            out->allow = rt->allow;
        else if (rt->h == H_CLUSTER || rt->h == H_HISTORY || rt->h == H_CONFIG)
            out->status = fresh_status(ctx) ? 200 : 503;
        return WEB_DONE;
    }
    bool del = rq->method == WEB_DELETE;
    switch (rt->h) {
    case H_CHECK:
        handle_check(ctx, rt, rq, out);
        return WEB_DONE;
    case H_CLUSTER:
        handle_body(ctx, pick_cluster, "{\"members\":[]}", 200, out);
        return WEB_DONE;
    case H_HISTORY:
        handle_body(ctx, pick_history, "[]", 200, out);
        return WEB_DONE;
    case H_CONFIG:
        if (rq->method == WEB_PATCH || rq->method == WEB_PUT)
            return handle_config_write(ctx, rq, done, token, cmd_id, out);
        handle_body(ctx, pick_config, "the cluster has no config", 502, out);
        return WEB_DONE;
    case H_METRICS:
        web_metrics_render(ctx->snap, ctx->now_boot_ms(), out);
        return WEB_DONE;
    case H_EVENTS:
        handle_events(ctx, rq, out);
        return WEB_DONE;
    case H_MIGRATIONS:
        handle_migrations(ctx, rq, out);
        return WEB_DONE;
    case H_SWITCHOVER:
        if (del)
            return handle_simple(ctx, "switchover_cancel", rq, done, token, cmd_id, out);
        return handle_switchover_post(ctx, false, rq, done, token, cmd_id, out);
    case H_FAILOVER:
        return handle_switchover_post(ctx, true, rq, done, token, cmd_id, out);
    case H_RESTART:
        if (del)
            return handle_simple(ctx, "restart_cancel", rq, done, token, cmd_id, out);
        return handle_restart_post(ctx, rq, done, token, cmd_id, out);
    case H_RELOAD:
        return handle_simple(ctx, "reload", rq, done, token, cmd_id, out);
    case H_REINITIALIZE:
        return handle_reinit(ctx, rq, done, token, cmd_id, out);
    case H_DASH:
        web_dash_handle(ctx, rq, out);
        return WEB_DONE;
    }
    web_resp_error(out, 500, "unknown route");
    return WEB_DONE;
}
