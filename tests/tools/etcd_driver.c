/* Test driver for the etcd client: line commands on stdin, one JSON line per result on stdout. */
/*
 * Usage: etcd_driver --endpoints URLS [--user NAME] [--cacert F] [--cert F] [--key F]
 *                    [--timeout-ms N]          (password: env ETCD_DRIVER_PASSWORD)
 * Commands (tokens separated by spaces):
 *   put KEY VALUE [LEASE] | get KEY | getp PREFIX | del KEY | delp PREFIX
 *   create KEY VALUE LEASE        txn CREATE==0 -> put with lease, else range (holder)
 *   cas KEY CREATE_REV VALUE      txn CREATE==rev -> put
 *   casval KEY OLD NEW            txn VALUE==old -> put
 *   delif KEY CREATE_REV          txn CREATE==rev -> delete
 *   grant TTL [ID] | keepalive ID | revoke ID | ttl ID
 *   autokeep ID MS                keepalive every MS ms in the loop (0 stops)
 *   watch PREFIX [REV] | rewatch | unwatch | endpoint | stats | quit
 * Replies: {"cmd":..,"ok":true,...} or {"cmd":..,"ok":false,"err":..,"code":..,"message":..}.
 * Watch updates: {"event":"watch","what":"up|down|events|resync","t":<CLOCK_MONOTONIC ms>,...}.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "agent/etcd/etcd.h"
#include "agent/settings.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/loop.h"

struct driver {
    struct loop *l;
    struct etcd_client *c;
    struct etcd_watch *w;
    char line[65536];
    size_t len;
    int64_t keep_id;
    uint64_t keep_timer;
};

static void emit(json_t *o)
{
    json_object_set_new(o, "t", json_integer((json_int_t)clock_mono_ms()));
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(s);
    }
    json_decref(o);
}

static json_t *reply(const char *cmd, bool ok)
{
    return json_pack("{s:s,s:b}", "cmd", cmd, "ok", ok);
}

static void emit_err(struct driver *d, const char *cmd, int rc)
{
    const struct etcd_error *e = etcd_last_error(d->c);
    json_t *o = reply(cmd, false);
    json_object_set_new(o, "err", json_string(etcd_strerror(rc)));
    json_object_set_new(o, "rc", json_integer(rc));
    json_object_set_new(o, "code", json_integer(e->grpc_code));
    json_object_set_new(o, "http", json_integer(e->http_status));
    json_object_set_new(o, "message", json_string(e->message));
    json_object_set_new(o, "endpoint", json_string(e->endpoint));
    emit(o);
}

static json_t *kv_json(const struct etcd_kv *kv)
{
    return json_pack("{s:s%,s:s%,s:I,s:I,s:I,s:I}", "key", kv->key, kv->key_len, "value",
                     kv->value ? kv->value : "", kv->value ? kv->value_len : 0, "create_revision",
                     (json_int_t)kv->create_revision, "mod_revision", (json_int_t)kv->mod_revision,
                     "version", (json_int_t)kv->version, "lease", (json_int_t)kv->lease);
}

static json_t *kvs_json(const struct etcd_kv *kvs, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, kv_json(&kvs[i]));
    return a;
}

static int64_t num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

/* ---- watch ---- */

static const char *what_name(enum etcd_watch_what w)
{
    switch (w) {
    case ETCD_WATCH_UP:
        return "up";
    case ETCD_WATCH_DOWN:
        return "down";
    case ETCD_WATCH_EVENTS:
        return "events";
    case ETCD_WATCH_RESYNC:
        return "resync";
    }
    return "?";
}

static void on_watch(void *arg, const struct etcd_watch_update *u)
{
    (void)arg;
    json_t *o = json_pack("{s:s,s:s,s:I}", "event", "watch", "what", what_name(u->what), "revision",
                          (json_int_t)u->revision);
    if (u->what == ETCD_WATCH_DOWN)
        json_object_set_new(o, "reason", json_string(u->reason ? u->reason : ""));
    if (u->what == ETCD_WATCH_RESYNC)
        json_object_set_new(o, "kvs", kvs_json(u->kvs, u->n_kvs));
    if (u->what == ETCD_WATCH_EVENTS) {
        json_t *a = json_array();
        for (size_t i = 0; i < u->n_events; i++) {
            json_t *ev = kv_json(&u->events[i].kv);
            json_object_set_new(
                ev, "type", json_string(u->events[i].type == ETCD_EVENT_DELETE ? "DELETE" : "PUT"));
            json_array_append_new(a, ev);
        }
        json_object_set_new(o, "events", a);
    }
    emit(o);
}

static void on_keep(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct driver *d = arg;
    int64_t ttl = 0;
    int rc = etcd_lease_keepalive(d->c, d->keep_id, &ttl);
    json_t *o = json_pack("{s:s,s:b,s:I,s:s}", "event", "keepalive", "ok", rc == 0, "ttl",
                          (json_int_t)ttl, "endpoint", etcd_current_endpoint(d->c));
    if (rc != 0)
        json_object_set_new(o, "err", json_string(etcd_strerror(rc)));
    emit(o);
}

/* ---- commands ---- */

static void cmd_range(struct driver *d, const char *cmd, const char *key, bool prefix)
{
    struct etcd_range_result r;
    int rc = etcd_range(d->c, &(struct etcd_range_req){.key = key, .prefix = prefix}, &r);
    if (rc != 0)
        return emit_err(d, cmd, rc);
    json_t *o = reply(cmd, true);
    json_object_set_new(o, "rev", json_integer(r.header.revision));
    json_object_set_new(o, "count", json_integer(r.count));
    json_object_set_new(o, "kvs", kvs_json(r.kvs, r.n_kvs));
    etcd_range_result_clear(&r);
    emit(o);
}

static void cmd_delete(struct driver *d, const char *cmd, const char *key, bool prefix)
{
    struct etcd_delete_result r;
    int rc = etcd_delete(d->c, &(struct etcd_delete_req){.key = key, .prefix = prefix}, &r);
    if (rc != 0)
        return emit_err(d, cmd, rc);
    json_t *o = reply(cmd, true);
    json_object_set_new(o, "rev", json_integer(r.header.revision));
    json_object_set_new(o, "deleted", json_integer(r.deleted));
    etcd_delete_result_clear(&r);
    emit(o);
}

static void run_txn(struct driver *d, const char *cmd, const struct etcd_txn_req *req)
{
    struct etcd_txn_result r;
    int rc = etcd_txn(d->c, req, &r);
    if (rc != 0)
        return emit_err(d, cmd, rc);
    json_t *o = reply(cmd, true);
    json_object_set_new(o, "succeeded", json_boolean(r.succeeded));
    json_object_set_new(o, "rev", json_integer(r.header.revision));
    if (r.n_responses > 0 && r.responses[0].type == ETCD_OP_RANGE)
        json_object_set_new(o, "kvs",
                            kvs_json(r.responses[0].range.kvs, r.responses[0].range.n_kvs));
    etcd_txn_result_clear(&r);
    emit(o);
}

static void cmd_txn(struct driver *d, const char *cmd, char **a)
{
    if (strcmp(cmd, "create") == 0) {
        struct etcd_cmp cmp = {.target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = a[1]};
        struct etcd_op put = {
            .type = ETCD_OP_PUT,
            .put = {.key = a[1], .value = a[2], .value_len = strlen(a[2]), .lease = num(a[3])}};
        struct etcd_op get = {.type = ETCD_OP_RANGE, .range = {.key = a[1]}};
        run_txn(d, cmd,
                &(struct etcd_txn_req){.cmps = &cmp,
                                       .n_cmps = 1,
                                       .success = &put,
                                       .n_success = 1,
                                       .failure = &get,
                                       .n_failure = 1});
    } else if (strcmp(cmd, "cas") == 0) {
        struct etcd_cmp cmp = {
            .target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = a[1], .number = num(a[2])};
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .put = {.key = a[1], .value = a[3], .value_len = strlen(a[3])}};
        run_txn(d, cmd,
                &(struct etcd_txn_req){.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1});
    } else if (strcmp(cmd, "casval") == 0) {
        struct etcd_cmp cmp = {.target = ETCD_CMP_VALUE,
                               .op = ETCD_EQUAL,
                               .key = a[1],
                               .value = a[2],
                               .value_len = strlen(a[2])};
        struct etcd_op put = {.type = ETCD_OP_PUT,
                              .put = {.key = a[1], .value = a[3], .value_len = strlen(a[3])}};
        run_txn(d, cmd,
                &(struct etcd_txn_req){.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1});
    } else { /* delif */
        struct etcd_cmp cmp = {
            .target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = a[1], .number = num(a[2])};
        struct etcd_op del = {.type = ETCD_OP_DELETE, .del = {.key = a[1]}};
        run_txn(d, cmd,
                &(struct etcd_txn_req){.cmps = &cmp, .n_cmps = 1, .success = &del, .n_success = 1});
    }
}

static void cmd_lease(struct driver *d, const char *cmd, char **a)
{
    int64_t id = 0;
    int64_t ttl = 0;
    int rc;
    json_t *o;
    if (strcmp(cmd, "grant") == 0) {
        rc = etcd_lease_grant(d->c, num(a[1]), num(a[2]), &id, &ttl);
    } else if (strcmp(cmd, "keepalive") == 0) {
        id = num(a[1]);
        rc = etcd_lease_keepalive(d->c, id, &ttl);
    } else if (strcmp(cmd, "revoke") == 0) {
        id = num(a[1]);
        rc = etcd_lease_revoke(d->c, id);
    } else {
        struct etcd_lease_info info;
        rc = etcd_lease_timetolive(d->c, num(a[1]), true, &info);
        if (rc != 0)
            return emit_err(d, cmd, rc);
        o = reply(cmd, true);
        json_object_set_new(o, "id", json_integer(info.id));
        json_object_set_new(o, "ttl", json_integer(info.ttl));
        json_object_set_new(o, "granted_ttl", json_integer(info.granted_ttl));
        json_object_set_new(o, "keys", kvs_json(info.keys, info.n_keys));
        etcd_lease_info_clear(&info);
        return emit(o);
    }
    if (rc != 0)
        return emit_err(d, cmd, rc);
    o = reply(cmd, true);
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "ttl", json_integer(ttl));
    emit(o);
}

static void dispatch(struct driver *d, char *line)
{
    char *a[8] = {0};
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r", &save); t && n < 8; t = strtok_r(NULL, " \t\r", &save))
        a[n++] = t;
    if (n == 0)
        return;
    const char *cmd = a[0];
    static const struct {
        const char *name;
        size_t args;
    } need[] = {{"put", 3},       {"get", 2},     {"getp", 2},     {"del", 2},      {"delp", 2},
                {"create", 4},    {"cas", 4},     {"casval", 4},   {"delif", 3},    {"grant", 2},
                {"keepalive", 2}, {"revoke", 2},  {"ttl", 2},      {"autokeep", 3}, {"watch", 2},
                {"rewatch", 1},   {"unwatch", 1}, {"endpoint", 1}, {"stats", 1},    {"quit", 1}};
    size_t i;
    for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (strcmp(need[i].name, cmd) == 0)
            break;
    if (i == sizeof(need) / sizeof(need[0]) || n < need[i].args) {
        json_t *o = reply(cmd, false);
        json_object_set_new(o, "err", json_string("usage"));
        return emit(o);
    }
    if (strcmp(cmd, "put") == 0) {
        struct etcd_put_result r;
        int rc =
            etcd_put(d->c,
                     &(struct etcd_put_req){
                         .key = a[1], .value = a[2], .value_len = strlen(a[2]), .lease = num(a[3])},
                     &r);
        if (rc != 0)
            return emit_err(d, cmd, rc);
        json_t *o = reply(cmd, true);
        json_object_set_new(o, "rev", json_integer(r.header.revision));
        etcd_put_result_clear(&r);
        emit(o);
    } else if (strcmp(cmd, "get") == 0 || strcmp(cmd, "getp") == 0) {
        cmd_range(d, cmd, a[1], cmd[3] == 'p');
    } else if (strcmp(cmd, "del") == 0 || strcmp(cmd, "delp") == 0) {
        cmd_delete(d, cmd, a[1], cmd[3] == 'p');
    } else if (strcmp(cmd, "create") == 0 || strcmp(cmd, "cas") == 0 ||
               strcmp(cmd, "casval") == 0 || strcmp(cmd, "delif") == 0) {
        cmd_txn(d, cmd, a);
    } else if (strcmp(cmd, "grant") == 0 || strcmp(cmd, "keepalive") == 0 ||
               strcmp(cmd, "revoke") == 0 || strcmp(cmd, "ttl") == 0) {
        cmd_lease(d, cmd, a);
    } else if (strcmp(cmd, "autokeep") == 0) {
        if (d->keep_timer)
            loop_cancel_timer(d->l, d->keep_timer);
        d->keep_timer = 0;
        d->keep_id = num(a[1]);
        if (num(a[2]) > 0)
            d->keep_timer = loop_add_timer(d->l, 0, (uint64_t)num(a[2]), on_keep, d);
        emit(reply(cmd, true));
    } else if (strcmp(cmd, "watch") == 0) {
        etcd_watch_free(d->w);
        struct etcd_watch_opts o = {.prefix = a[1], .start_revision = num(a[2])};
        d->w = etcd_watch_new(d->c, d->l, &o, on_watch, d);
        emit(reply(cmd, d->w != NULL));
    } else if (strcmp(cmd, "rewatch") == 0) {
        if (d->w)
            etcd_watch_reconnect(d->w);
        emit(reply(cmd, d->w != NULL));
    } else if (strcmp(cmd, "unwatch") == 0) {
        etcd_watch_free(d->w);
        d->w = NULL;
        emit(reply(cmd, true));
    } else if (strcmp(cmd, "endpoint") == 0) {
        int rc = etcd_client_connect(d->c);
        if (rc != 0)
            return emit_err(d, cmd, rc);
        json_t *o = reply(cmd, true);
        json_t *eps = json_array();
        for (size_t k = 0; k < etcd_endpoint_count(d->c); k++)
            json_array_append_new(eps, json_string(etcd_endpoint(d->c, k)));
        json_object_set_new(o, "current", json_string(etcd_current_endpoint(d->c)));
        json_object_set_new(o, "version", json_string(etcd_server_version(d->c)));
        json_object_set_new(o, "endpoints", eps);
        emit(o);
    } else if (strcmp(cmd, "stats") == 0) {
        json_t *o = reply(cmd, true);
        json_object_set_new(o, "requests", json_integer((json_int_t)etcd_request_count(d->c)));
        emit(o);
    } else {
        emit(reply(cmd, true));
        loop_stop(d->l);
    }
}

static void on_stdin(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct driver *d = arg;
    ssize_t n = read(fd, d->line + d->len, sizeof(d->line) - 1 - d->len);
    if (n <= 0) {
        if (n < 0 && errno == EINTR)
            return;
        loop_del_fd(l, fd);
        loop_stop(l);
        return;
    }
    d->len += (size_t)n;
    char *nl;
    while ((nl = memchr(d->line, '\n', d->len)) != NULL) {
        *nl = '\0';
        size_t used = (size_t)(nl - d->line) + 1;
        dispatch(d, d->line);
        memmove(d->line, d->line + used, d->len - used);
        d->len -= used;
    }
    if (d->len == sizeof(d->line) - 1)
        d->len = 0; /* overlong line: dropped */
}

static void on_term(struct loop *l, int signo, void *arg)
{
    (void)signo;
    (void)arg;
    loop_stop(l);
}

int main(int argc, char **argv)
{
    struct pgw_etcd_settings s = {.request_timeout_ms = 1000};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *v = argv[i + 1];
        if (strcmp(k, "--endpoints") == 0)
            snprintf(s.endpoints, sizeof(s.endpoints), "%s", v);
        else if (strcmp(k, "--user") == 0)
            snprintf(s.username, sizeof(s.username), "%s", v);
        else if (strcmp(k, "--cacert") == 0)
            snprintf(s.cacert, sizeof(s.cacert), "%s", v);
        else if (strcmp(k, "--cert") == 0)
            snprintf(s.cert, sizeof(s.cert), "%s", v);
        else if (strcmp(k, "--key") == 0)
            snprintf(s.key, sizeof(s.key), "%s", v);
        else if (strcmp(k, "--timeout-ms") == 0)
            s.request_timeout_ms = (uint64_t)strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    const char *pw = getenv("ETCD_DRIVER_PASSWORD");
    if (pw)
        snprintf(s.password, sizeof(s.password), "%s", pw);
    log_setup(LOG_LVL_DEBUG, "driver");
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    struct driver d = {0};
    d.l = loop_new();
    d.c = d.l ? etcd_client_new(&s) : NULL;
    if (!d.c)
        return 1;
    loop_add_signal(d.l, SIGTERM, on_term, &d);
    loop_add_signal(d.l, SIGINT, on_term, &d);
    loop_add_fd(d.l, STDIN_FILENO, LOOP_READ, on_stdin, &d);
    emit(json_pack("{s:s}", "event", "ready"));
    loop_run(d.l);
    etcd_watch_free(d.w);
    etcd_client_free(d.c);
    loop_free(d.l);
    curl_global_cleanup();
    return 0;
}
