/* /events: lists the node's events (newest first) from the SQLite store, with simple filters. */
#include "web/events.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/dcs/isotime.h"
#include "agent/settings.h"
#include "agent/store.h"
#include "platform/log.h"
#include "web/storeref.h"

#define LOG_MODULE "web"

enum { DEFAULT_LIMIT = 100, MAX_LIMIT = 1000 };

struct web_events {
    struct web_storeref store;
};

struct web_events *web_events_new(const char *state_dir)
{
    struct web_events *e = calloc(1, sizeof(*e));
    if (!e) {
        log_error("out of memory for the events reader");
        return NULL;
    }
    web_storeref_init(&e->store, state_dir);
    return e;
}

void web_events_free(struct web_events *e)
{
    if (!e)
        return;
    web_storeref_close(&e->store);
    free(e);
}

/* A decimal integer in [min, max]; NULL leaves *out unchanged. */
static bool parse_num(const char *s, long long min, long long max, long long *out)
{
    if (!s)
        return true;
    if (!*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static json_t *event_json(const struct store_event *ev)
{
    char ts[DCS_TIME_MAX];
    if (dcs_time_format(ev->ts_ms, ts, sizeof(ts)) < 0)
        ts[0] = '\0';
    json_t *detail = json_loads(ev->detail, 0, NULL);
    if (!detail)
        detail = json_string(ev->detail);
    json_t *o = json_pack("{s:I,s:s,s:I,s:s,s:s,s:I,s:o}", "id", (json_int_t)ev->id, "ts", ts,
                          "ts_ms", (json_int_t)ev->ts_ms, "kind", ev->kind, "member", ev->member,
                          "term", (json_int_t)ev->term, "detail", detail);
    if (o && ev->truncated)
        json_object_set_new(o, "truncated", json_true());
    return o;
}

void web_events_get(struct web_events *e, const struct web_events_query *q, struct web_resp *out)
{
    long long limit = DEFAULT_LIMIT, since = 0, before = 0;
    if (!parse_num(q->limit, 1, MAX_LIMIT, &limit)) {
        web_resp_error(out, 400, "limit must be an integer from 1 to 1000");
        return;
    }
    if (!parse_num(q->since, 0, INT64_MAX, &since) ||
        !parse_num(q->before, 0, INT64_MAX, &before)) {
        web_resp_error(out, 400, "since and before must be event ids (integers >= 0)");
        return;
    }
    if (q->kind &&
        (strlen(q->kind) == 0 || strlen(q->kind) >= sizeof(((struct store_event *)0)->kind))) {
        web_resp_error(out, 400, "kind must be 1 to 31 characters");
        return;
    }
    struct store *st = web_storeref_get(&e->store, "event", out);
    if (!st)
        return;
    struct store_event *evs = calloc((size_t)limit, sizeof(*evs));
    if (!evs) {
        log_error("out of memory listing events", "limit=%lld", limit);
        web_resp_error(out, 500, "out of memory");
        return;
    }
    int n = store_events_list(st, before, q->kind, evs, (int)limit);
    if (n < 0) {
        free(evs);
        web_storeref_failed(&e->store, "event", out);
        return;
    }
    json_t *list = json_array();
    json_int_t last = 0;
    for (int i = 0; list && i < n; i++) {
        if (evs[i].id <= since)
            break;
        json_t *ev = event_json(&evs[i]);
        if (!ev || json_array_append_new(list, ev) != 0) {
            json_decref(list);
            list = NULL;
            break;
        }
        last = (json_int_t)evs[i].id;
    }
    free(evs);
    json_t *body = list ? json_pack("{s:o,s:I}", "events", list, "next_before", last) : NULL;
    if (!body) {
        log_error("out of memory building the events answer");
        web_resp_error(out, 500, "out of memory");
        return;
    }
    web_resp_json(out, 200, body);
    json_decref(body);
}
