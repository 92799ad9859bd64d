/* demo cluster view: etcd member health and each node's /patroni answer (role, replication). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent/ctl/ctl.h"
#include "agent/demo/demo.h"

enum { PROBE_TIMEOUT_MS = 1500 };

/* GET http://127.0.0.1:port/path; the JSON body of a 200 answer, or NULL. */
static json_t *get_json(long long port, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%lld%s", port, path);
    struct ctl_rest_opts ro = {.timeout_ms = PROBE_TIMEOUT_MS};
    struct ctl_rest_result r;
    json_t *v = NULL;
    if (ctl_rest_call(&ro, "GET", url, NULL, &r) == 0 && r.status == 200)
        v = json_loadb(r.body, r.len, 0, NULL);
    ctl_rest_result_clear(&r);
    return v;
}

bool demo_etcd_healthy(long long client_port)
{
    json_t *v = get_json(client_port, "/health");
    const char *h = json_string_value(json_object_get(v, "health"));
    bool ok = h && strcmp(h, "true") == 0;
    json_decref(v);
    return ok;
}

/* Replication connections of a primary's /patroni body in state "streaming". */
static int streaming(const json_t *body)
{
    const json_t *rep = json_object_get(body, "replication");
    size_t i;
    const json_t *row;
    int n = 0;
    json_array_foreach(rep, i, row)
    {
        const char *st = json_string_value(json_object_get(row, "state"));
        n += st && strcmp(st, "streaming") == 0;
    }
    return n;
}

static void append(char *out, size_t cap, const char *name, const char *what)
{
    size_t len = strlen(out);
    if (len < cap)
        snprintf(out + len, cap - len, "%s%s: %s", len ? ", " : "", name, what);
}

/* The member state ("creating replica", "starting"...) of name in a /cluster body, or NULL. */
static const char *member_state(const json_t *cluster, const char *name)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(cluster, "members"), i, m)
    {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n && strcmp(n, name) == 0)
            return json_string_value(json_object_get(m, "state"));
    }
    return NULL;
}

/* One node's line of the summary, and its part of the view. */
static void read_node(const struct demo_state *st, int i, json_t **cluster, struct demo_view *v)
{
    char name[16], what[64];
    snprintf(name, sizeof(name), "n%d", i + 1);
    json_t *b = get_json(st->port[i].web, "/patroni");
    if (!b) {
        append(v->summary, sizeof(v->summary), name, "no answer yet");
        return;
    }
    v->answering++;
    const char *role = json_string_value(json_object_get(b, "role"));
    const char *state = json_string_value(json_object_get(b, "state"));
    bool running = state && strcmp(state, "running") == 0;
    if (running && role && (strcmp(role, "master") == 0 || strcmp(role, "primary") == 0)) {
        int s = streaming(b);
        if (v->primary < 0) {
            v->primary = i;
            v->streaming = s;
            snprintf(v->leader_name, sizeof(v->leader_name), "%s", name);
        }
        snprintf(what, sizeof(what), "primary, %d replica%s streaming", s, s == 1 ? "" : "s");
    } else if (running) {
        v->replicas_running++;
        snprintf(what, sizeof(what), "replica");
    } else {
        /* The member key says more than "stopped" while a replica is being cloned. */
        if (!*cluster)
            *cluster = get_json(st->port[i].web, "/cluster");
        const char *ms = member_state(*cluster, name);
        snprintf(what, sizeof(what), "%s", ms ? ms : state ? state : "?");
    }
    append(v->summary, sizeof(v->summary), name, what);
    json_decref(b);
}

void demo_view_read(const struct demo_state *st, struct demo_view *v)
{
    json_t *cluster = NULL;
    memset(v, 0, sizeof(*v));
    v->primary = -1;
    for (int i = 0; i < DEMO_NODES; i++)
        read_node(st, i, &cluster, v);
    json_decref(cluster);
}

bool demo_view_ready(const struct demo_view *v)
{
    return v->primary >= 0 && v->streaming >= DEMO_NODES - 1 &&
           v->replicas_running >= DEMO_NODES - 1;
}
