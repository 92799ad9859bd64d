/* ctl operations: switchover/failover (REST, else the etcd failover key), member ops, events. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "agent/ctl/ctl.h"
#include "agent/etcd/etcd.h"
#include "platform/clock.h"

enum {
    SWITCH_WAIT_DEFAULT_S = 60,
    SWITCH_REST_TIMEOUT_MS = 90000, /* the API waits up to 2 * max(10 s, loop_wait) itself */
    MEMBER_OP_TIMEOUT_MS = 120000,  /* a restart may take pg_ctl's whole timeout */
    EVENTS_TIMEOUT_MS = 15000,
    CANCEL_GRACE_MS = 3000, /* a cleared request with no leader change: the leader refused */
    MSG_MAX = 1024,
};

/* A readable one-line message from an answer body: {"error": ...}, else the text. */
static void body_message(const char *body, char *out, size_t cap)
{
    json_t *j = json_loads(body ? body : "", JSON_DECODE_ANY, NULL);
    const char *s = body ? body : "";
    if (json_is_object(j)) {
        const json_t *e = json_object_get(j, "error");
        if (!e)
            e = json_object_get(j, "message");
        if (json_is_string(e))
            s = json_string_value(e);
    } else if (json_is_string(j)) {
        s = json_string_value(j);
    }
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        out[n++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : (ch < 0x20 ? '?' : (char)ch);
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    json_decref(j);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- switchover / failover ---- */

struct switch_req {
    bool failover;
    char leader[DCS_NAME_MAX];    /* current leader ("" none) */
    char candidate[DCS_NAME_MAX]; /* "" = any */
    bool scheduled;
    int64_t scheduled_ms;
    char scheduled_at[DCS_TIME_MAX];
};

static int check_switch(const struct ctl_ctx *c, const struct ctl_cluster *cl, struct switch_req *r)
{
    const struct ctl_opts *o = c->o;
    snprintf(r->leader, sizeof(r->leader), "%s", cl->leader);
    if (o->leader) {
        if (!cl->leader[0]) {
            fprintf(stderr, "pgwarden ctl: the cluster has no leader (use failover --candidate)\n");
            return CTL_FAIL;
        }
        if (strcmp(o->leader, cl->leader) != 0) {
            fprintf(stderr, "pgwarden ctl: '%s' is not the leader (the leader is '%s')\n",
                    o->leader, cl->leader);
            return CTL_FAIL;
        }
        r->failover = false; /* Patroni: a failover naming the leader is a switchover */
    }
    if (!r->failover && !cl->leader[0]) {
        fprintf(stderr, "pgwarden ctl: the cluster has no leader: use "
                        "'failover --candidate MEMBER'\n");
        return CTL_FAIL;
    }
    if (o->candidate) {
        const struct dcs_member *m = ctl_cluster_member(cl, o->candidate);
        if (!m) {
            fprintf(stderr, "pgwarden ctl: '%s' is not a member of cluster '%s'\n", o->candidate,
                    cl->scope);
            return CTL_FAIL;
        }
        if (cl->leader[0] && strcmp(o->candidate, cl->leader) == 0) {
            fprintf(stderr, "pgwarden ctl: '%s' is already the leader\n", o->candidate);
            return CTL_FAIL;
        }
        if (dcs_tags_nofailover(&m->tags)) {
            fprintf(stderr, "pgwarden ctl: '%s' is tagged nofailover and cannot be promoted\n",
                    o->candidate);
            return CTL_FAIL;
        }
        snprintf(r->candidate, sizeof(r->candidate), "%s", o->candidate);
    } else if (cl->n_members < 2) {
        fprintf(stderr, "pgwarden ctl: no other member can take over\n");
        return CTL_FAIL;
    }
    if (o->scheduled && strcmp(o->scheduled, "now") != 0) {
        bool tz;
        if (r->failover) {
            fprintf(stderr, "pgwarden ctl: a failover cannot be scheduled\n");
            return CTL_USAGE;
        }
        if (!dcs_time_parse(o->scheduled, &r->scheduled_ms, &tz) ||
            dcs_time_format(r->scheduled_ms, r->scheduled_at, sizeof(r->scheduled_at)) < 0) {
            fprintf(stderr,
                    "pgwarden ctl: --scheduled: '%s' is not an ISO 8601 time "
                    "(e.g. 2030-01-31T12:00:00+00:00)\n",
                    o->scheduled);
            return CTL_USAGE;
        }
        if (cl->has_config && cl->config.pause) {
            fprintf(stderr, "pgwarden ctl: a switchover cannot be scheduled while paused\n");
            return CTL_FAIL;
        }
        r->scheduled = true;
    }
    if (cl->has_config && cl->config.pause && !r->candidate[0]) {
        fprintf(stderr, "pgwarden ctl: while paused, a switchover needs --candidate\n");
        return CTL_FAIL;
    }
    return CTL_OK;
}

/* Writes the Patroni failover key (plain put, as POST /switchover and patronictl do). *written
 * gets the value (malloc'd) on success. */
static int write_failover_key(struct ctl_ctx *c, const struct switch_req *r, char **written)
{
    struct dcs_failover f;
    memset(&f, 0, sizeof(f));
    if (!r->failover)
        snprintf(f.leader, sizeof(f.leader), "%s", r->leader);
    snprintf(f.candidate, sizeof(f.candidate), "%s", r->candidate);
    if (r->scheduled) {
        f.has_scheduled_at = true;
        f.scheduled_at_ms = r->scheduled_ms;
    }
    struct dcs_err err = {{0}};
    size_t len = 0;
    char *value = dcs_failover_encode(&f, &len, &err);
    char key[DCS_KEY_MAX];
    if (!value || dcs_key_path(&c->keys, DCS_KEY_FAILOVER, NULL, key, sizeof(key)) < 0) {
        fprintf(stderr, "pgwarden ctl: cannot build the failover request: %s\n", err.msg);
        free(value);
        return CTL_SOFTWARE;
    }
    struct etcd_put_req put = {.key = key, .value = value, .value_len = len};
    int rc = etcd_put(c->etcd, &put, NULL);
    if (rc != 0) {
        free(value);
        return ctl_etcd_fail(c, "cannot write the failover key", rc);
    }
    *written = value;
    return CTL_OK;
}

/* Clears the failover key ("{}", as Patroni does) if it still holds our request. */
static void withdraw_failover_key(struct ctl_ctx *c, const char *written)
{
    char key[DCS_KEY_MAX];
    if (dcs_key_path(&c->keys, DCS_KEY_FAILOVER, NULL, key, sizeof(key)) < 0)
        return;
    struct etcd_cmp cmp = {.target = ETCD_CMP_VALUE,
                           .op = ETCD_EQUAL,
                           .key = key,
                           .value = written,
                           .value_len = strlen(written)};
    struct etcd_op put = {.type = ETCD_OP_PUT, .put = {.key = key, .value = "{}", .value_len = 2}};
    struct etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1};
    struct etcd_txn_result res = {0};
    int rc = etcd_txn(c->etcd, &req, &res);
    if (rc == 0 && res.succeeded)
        fprintf(stderr, "pgwarden ctl: withdrew the request from the failover key\n");
    else if (rc != 0)
        fprintf(stderr, "pgwarden ctl: could not withdraw the request from the failover key: %s\n",
                etcd_strerror(rc));
    etcd_txn_result_clear(&res);
}

/* Polls etcd until the leader changes as requested. */
static int wait_leader_change(struct ctl_ctx *c, const struct switch_req *r, char *new_leader,
                              size_t cap)
{
    long timeout_s = c->o->timeout_s > 0 ? c->o->timeout_s : SWITCH_WAIT_DEFAULT_S;
    uint64_t start = clock_mono_ms(), cleared_at = 0;
    for (;;) {
        struct ctl_cluster cl;
        int rc = ctl_read_cluster(c, &cl);
        if (rc != CTL_OK)
            return rc;
        bool changed = cl.leader[0] && strcmp(cl.leader, r->leader) != 0;
        bool pending = cl.has_failover;
        snprintf(new_leader, cap, "%s", cl.leader);
        ctl_cluster_free(&cl);
        if (changed) {
            if (r->candidate[0] && strcmp(new_leader, r->candidate) != 0) {
                fprintf(stderr, "pgwarden ctl: '%s' became the leader, not '%s'\n", new_leader,
                        r->candidate);
                return CTL_FAIL;
            }
            return CTL_OK;
        }
        uint64_t now = clock_mono_ms();
        if (!pending && !new_leader[0])
            cleared_at = 0; /* the handover is in progress: no leader for a moment */
        else if (!pending && cleared_at == 0)
            cleared_at = now;
        if (cleared_at && now - cleared_at >= CANCEL_GRACE_MS) {
            fprintf(stderr, "pgwarden ctl: the leader dropped the request without a change (see "
                            "'pgwarden ctl events')\n");
            return CTL_FAIL;
        }
        if (now - start >= (uint64_t)timeout_s * 1000) {
            fprintf(stderr, "pgwarden ctl: no leader change within %ld s\n", timeout_s);
            return CTL_FAIL;
        }
        sleep_ms(250);
    }
}

static int switch_via_etcd(struct ctl_ctx *c, const struct switch_req *r)
{
    char *written = NULL;
    int rc = write_failover_key(c, r, &written);
    if (rc != CTL_OK)
        return rc;
    const char *what = r->failover ? "failover" : "switchover";
    if (r->scheduled) {
        if (c->o->json)
            printf("{\"ok\":true,\"via\":\"etcd\",\"scheduled_at\":\"%s\"}\n", r->scheduled_at);
        else
            printf("Wrote the failover key: %s scheduled at %s\n", what, r->scheduled_at);
        free(written);
        return CTL_OK;
    }
    if (!c->o->json)
        printf("Wrote the failover key; waiting for the leader to change...\n");
    char new_leader[DCS_NAME_MAX] = "";
    rc = wait_leader_change(c, r, new_leader, sizeof(new_leader));
    if (rc != CTL_OK)
        withdraw_failover_key(c, written); /* never leave a surprise switchover behind */
    free(written);
    if (rc != CTL_OK)
        return rc;
    if (c->o->json) {
        json_t *j = json_pack("{s:b,s:s,s:s}", "ok", 1, "via", "etcd", "leader", new_leader);
        bool ok = j && ctl_print_json(j, true);
        json_decref(j);
        return ok ? CTL_OK : CTL_SOFTWARE;
    }
    printf("Successfully %s to \"%s\"\n", r->failover ? "failed over" : "switched over",
           new_leader);
    return CTL_OK;
}

static bool ask_switch(const struct ctl_ctx *c, const struct switch_req *r)
{
    char q[3 * DCS_NAME_MAX + 128];
    if (r->failover && !r->leader[0])
        snprintf(q, sizeof(q), "Are you sure you want to failover cluster %s to %s?",
                 c->cfg->etcd.scope, r->candidate);
    else
        snprintf(q, sizeof(q),
                 "Are you sure you want to %s cluster %s, demoting current leader "
                 "%s%s%s?",
                 r->failover ? "failover" : "switchover", c->cfg->etcd.scope, r->leader,
                 r->candidate[0] ? " in favour of " : "", r->candidate);
    return ctl_confirm(q);
}

static json_t *switch_body(const struct switch_req *r)
{
    json_t *b = json_object();
    if (!b)
        return NULL;
    if (!r->failover)
        json_object_set_new(b, "leader", json_string(r->leader));
    json_object_set_new(b, "candidate", r->candidate[0] ? json_string(r->candidate) : json_null());
    json_object_set_new(b, "scheduled_at",
                        r->scheduled ? json_string(r->scheduled_at) : json_null());
    return b;
}

int ctl_cmd_switchover(struct ctl_ctx *c, bool failover)
{
    struct ctl_cluster cl;
    int rc = ctl_read_cluster(c, &cl);
    if (rc != CTL_OK)
        return rc;
    struct switch_req r;
    memset(&r, 0, sizeof(r));
    r.failover = failover;
    rc = check_switch(c, &cl, &r);
    if (rc != CTL_OK || (!c->o->force && !ask_switch(c, &r))) {
        ctl_cluster_free(&cl);
        return rc != CTL_OK ? rc : CTL_FAIL;
    }
    const struct dcs_member *target = ctl_cluster_member(&cl, r.leader[0] ? r.leader : r.candidate);
    char url[DCS_URL_MAX + 32] = "";
    bool have_url =
        target && ctl_api_endpoint(target->api_url, r.failover ? "/failover" : "/switchover", url,
                                   sizeof(url));
    ctl_cluster_free(&cl);
    const char *what = r.failover ? "failover" : "switchover";
    if (c->o->via_etcd)
        return switch_via_etcd(c, &r);
    if (!have_url) {
        fprintf(stderr, "pgwarden ctl: '%s' publishes no REST API address; using etcd\n",
                r.leader[0] ? r.leader : r.candidate);
        return switch_via_etcd(c, &r);
    }
    json_t *body = switch_body(&r);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        return CTL_SOFTWARE;
    }
    struct ctl_rest_opts ro;
    ctl_rest_opts_init(c, &ro, SWITCH_REST_TIMEOUT_MS);
    struct ctl_rest_result res;
    int call = ctl_rest_call(&ro, "POST", url, text, &res);
    free(text);
    char msg[MSG_MAX];
    if (call != 0) {
        rc = CTL_UNAVAILABLE;
        if (res.unreachable) {
            fprintf(stderr,
                    "pgwarden ctl: the REST API at %s is not reachable (%s); writing the "
                    "failover key to etcd instead\n",
                    url, res.error);
            rc = switch_via_etcd(c, &r);
        } else {
            fprintf(stderr, "pgwarden ctl: %s request to %s failed: %s\n", what, url, res.error);
        }
        ctl_rest_result_clear(&res);
        return rc;
    }
    body_message(res.body, msg, sizeof(msg));
    long st = res.status;
    ctl_rest_result_clear(&res);
    if (st == 404 || st == 501) {
        fprintf(stderr,
                "pgwarden ctl: %s answers HTTP %ld; writing the failover key to etcd "
                "instead\n",
                url, st);
        return switch_via_etcd(c, &r);
    }
    if (st == 401 || st == 403) {
        fprintf(stderr,
                "pgwarden ctl: %s refused (HTTP %ld: %s); give --username and "
                "--password-file\n",
                what, st, msg);
        return CTL_NOPERM;
    }
    if (st != 200 && st != 202) {
        fprintf(stderr, "pgwarden ctl: %s failed (HTTP %ld): %s\n", what, st, msg);
        return CTL_FAIL;
    }
    if (c->o->json) {
        json_t *j = json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "via", "rest", "status", (json_int_t)st,
                              "message", msg);
        bool ok = j && ctl_print_json(j, true);
        json_decref(j);
        return ok ? CTL_OK : CTL_SOFTWARE;
    }
    printf("%s\n", msg);
    if (!r.scheduled) {
        struct ctl_cluster now;
        if (ctl_read_cluster(c, &now) == CTL_OK) {
            json_t *rows = ctl_list_json(&now);
            char *table = rows ? ctl_list_render(&now, rows) : NULL;
            if (table)
                fputs(table, stdout);
            free(table);
            json_decref(rows);
            ctl_cluster_free(&now);
        }
    }
    return CTL_OK;
}

/* ---- restart / reload / reinit ---- */

int ctl_cmd_member_op(struct ctl_ctx *c, const char *op)
{
    const struct ctl_opts *o = c->o;
    struct ctl_cluster cl;
    int rc = ctl_read_cluster(c, &cl);
    if (rc != CTL_OK)
        return rc;
    for (int i = 0; i < o->n_args; i++) {
        if (!ctl_cluster_member(&cl, o->args[i])) {
            fprintf(stderr, "pgwarden ctl: '%s' is not a member of cluster '%s'\n", o->args[i],
                    cl.scope);
            ctl_cluster_free(&cl);
            return CTL_FAIL;
        }
    }
    bool reinit = strcmp(op, "reinit") == 0;
    if (!o->force) {
        char q[256];
        snprintf(q, sizeof(q), "Are you sure you want to %s %s%s?", op, o->args[0],
                 o->n_args > 1 ? " and the other members named" : "");
        if (!ctl_confirm(q)) {
            ctl_cluster_free(&cl);
            return CTL_FAIL;
        }
    }
    const char *path = reinit                       ? "/reinitialize"
                       : strcmp(op, "restart") == 0 ? "/restart"
                                                    : "/reload";
    const char *body = reinit ? (o->force ? "{\"force\":true}" : "{\"force\":false}")
                       : strcmp(op, "restart") == 0 ? "{}"
                                                    : NULL;
    struct ctl_rest_opts ro;
    ctl_rest_opts_init(c, &ro, MEMBER_OP_TIMEOUT_MS);
    json_t *results = json_array();
    rc = CTL_OK;
    for (int i = 0; i < o->n_args; i++) {
        const struct dcs_member *m = ctl_cluster_member(&cl, o->args[i]);
        char url[DCS_URL_MAX + 32], msg[MSG_MAX] = "";
        long st = 0;
        int this_rc = CTL_OK;
        if (!ctl_api_endpoint(m->api_url, path, url, sizeof(url))) {
            snprintf(msg, sizeof(msg), "the member publishes no REST API address");
            this_rc = CTL_UNAVAILABLE;
        } else {
            struct ctl_rest_result res;
            if (ctl_rest_call(&ro, "POST", url, body, &res) != 0) {
                snprintf(msg, sizeof(msg), "the REST API at %s is not reachable: %s", url,
                         res.error);
                this_rc = CTL_UNAVAILABLE;
            } else {
                st = res.status;
                body_message(res.body, msg, sizeof(msg));
                if (st == 401 || st == 403)
                    this_rc = CTL_NOPERM;
                else if (st != 200 && st != 202)
                    this_rc = CTL_FAIL;
            }
            ctl_rest_result_clear(&res);
        }
        if (this_rc != CTL_OK) {
            char http[32] = "";
            if (st)
                snprintf(http, sizeof(http), " (HTTP %ld)", st);
            fprintf(stderr, "pgwarden ctl: %s %s failed%s: %s\n", op, m->name, http, msg);
            if (rc == CTL_OK)
                rc = this_rc;
        } else if (!o->json) {
            printf("Success: %s on member %s%s%s\n", op, m->name, msg[0] ? ": " : "", msg);
        }
        json_t *r = json_pack("{s:s,s:b,s:I,s:s}", "member", m->name, "ok", this_rc == CTL_OK,
                              "status", (json_int_t)st, "message", msg);
        if (results && r)
            json_array_append_new(results, r);
        else
            json_decref(r);
    }
    if (o->json && results && !ctl_print_json(results, true) && rc == CTL_OK)
        rc = CTL_SOFTWARE;
    json_decref(results);
    ctl_cluster_free(&cl);
    return rc;
}

/* ---- events ---- */

/* The events URL: a member's api_url, or this node's [web] listen address. */
static int events_url(struct ctl_ctx *c, char *url, size_t cap)
{
    char base[DCS_URL_MAX + 16];
    if (c->o->n_args == 1) {
        struct ctl_cluster cl;
        int rc = ctl_read_cluster(c, &cl);
        if (rc != CTL_OK)
            return rc;
        const struct dcs_member *m = ctl_cluster_member(&cl, c->o->args[0]);
        bool ok = m && ctl_api_endpoint(m->api_url, "/events", base, sizeof(base));
        if (!m)
            fprintf(stderr, "pgwarden ctl: '%s' is not a member of cluster '%s'\n", c->o->args[0],
                    cl.scope);
        else if (!ok)
            fprintf(stderr, "pgwarden ctl: '%s' publishes no REST API address\n", m->name);
        ctl_cluster_free(&cl);
        if (!ok)
            return m ? CTL_UNAVAILABLE : CTL_FAIL;
    } else {
        const struct cfg_addr *a = &c->cfg->web.listen;
        const char *host = a->host;
        if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
            host = "127.0.0.1";
        else if (strcmp(host, "::") == 0)
            host = "::1";
        bool v6 = strchr(host, ':') != NULL;
        snprintf(base, sizeof(base), "%s://%s%s%s:%u/events",
                 c->cfg->web.tls_cert[0] ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
                 (unsigned)a->port);
    }
    char *kind = NULL;
    if (c->o->kind) {
        kind = curl_easy_escape(NULL, c->o->kind, 0);
        if (!kind)
            return CTL_SOFTWARE;
    }
    int n = snprintf(url, cap, "%s?limit=%ld%s%s", base, c->o->limit > 0 ? c->o->limit : 20L,
                     kind ? "&kind=" : "", kind ? kind : "");
    curl_free(kind);
    return n > 0 && (size_t)n < cap ? CTL_OK : CTL_USAGE;
}

static int print_events(const json_t *events)
{
    static const char *const heads[] = {"ID", "Time", "Kind", "Member", "Term", "Detail"};
    static const enum ctl_align align[] = {CTL_ALIGN_RIGHT, CTL_ALIGN_LEFT,  CTL_ALIGN_LEFT,
                                           CTL_ALIGN_LEFT,  CTL_ALIGN_RIGHT, CTL_ALIGN_LEFT};
    struct ctl_table t;
    if (!ctl_table_init(&t, 6, heads, align))
        return CTL_SOFTWARE;
    ctl_table_set_max_width(&t, 5, 72);
    size_t i;
    const json_t *ev;
    bool ok = true;
    json_array_foreach(events, i, ev)
    {
        char id[24], term[24];
        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(ev, "id")));
        snprintf(term, sizeof(term), "%lld",
                 (long long)json_integer_value(json_object_get(ev, "term")));
        const json_t *d = json_object_get(ev, "detail");
        char *detail = json_is_string(d) ? strdup(json_string_value(d))
                       : d               ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY)
                                         : strdup("");
        const char *cells[] = {id,
                               json_string_value(json_object_get(ev, "ts")),
                               json_string_value(json_object_get(ev, "kind")),
                               json_string_value(json_object_get(ev, "member")),
                               term,
                               detail ? detail : ""};
        ok = ok && ctl_table_add_row(&t, cells);
        free(detail);
    }
    char *text = ok ? ctl_table_render(&t, NULL) : NULL;
    ctl_table_free(&t);
    if (!text)
        return CTL_SOFTWARE;
    fputs(text, stdout);
    free(text);
    return CTL_OK;
}

int ctl_cmd_events(struct ctl_ctx *c)
{
    char url[DCS_URL_MAX + 256];
    int rc = events_url(c, url, sizeof(url));
    if (rc != CTL_OK)
        return rc;
    struct ctl_rest_opts ro;
    ctl_rest_opts_init(c, &ro, EVENTS_TIMEOUT_MS);
    struct ctl_rest_result res;
    if (ctl_rest_call(&ro, "GET", url, NULL, &res) != 0) {
        fprintf(stderr, "pgwarden ctl: the REST API at %s is not reachable: %s\n", url, res.error);
        ctl_rest_result_clear(&res);
        return CTL_UNAVAILABLE;
    }
    if (res.status != 200) {
        char msg[MSG_MAX];
        body_message(res.body, msg, sizeof(msg));
        fprintf(stderr, "pgwarden ctl: GET %s: HTTP %ld: %s\n", url, res.status, msg);
        rc = res.status == 401 || res.status == 403 ? CTL_NOPERM
             : res.status == 503                    ? CTL_UNAVAILABLE
                                                    : CTL_FAIL;
        ctl_rest_result_clear(&res);
        return rc;
    }
    json_t *j = json_loads(res.body, 0, NULL);
    ctl_rest_result_clear(&res);
    const json_t *events = json_object_get(j, "events");
    if (!json_is_array(events)) {
        fprintf(stderr, "pgwarden ctl: GET %s: unexpected answer (no events list)\n", url);
        json_decref(j);
        return CTL_DATAERR;
    }
    if (c->o->json)
        rc = ctl_print_json(events, true) ? CTL_OK : CTL_SOFTWARE;
    else
        rc = print_events(events);
    json_decref(j);
    return rc;
}
