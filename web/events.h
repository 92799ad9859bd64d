/* /events: the node's event history read from the SQLite store. */
#ifndef PGW_WEB_EVENTS_H
#define PGW_WEB_EVENTS_H

#include <stdbool.h>

#include "web/resp.h"

struct web_events;

/* Remembers the state folder; the store is opened on the first request (and again after a
 * failure). NULL on ENOMEM. */
struct web_events *web_events_new(const char *state_dir);
void web_events_free(struct web_events *e);

/* The parameters of GET /events (strings from the query, each may be NULL). */
struct web_events_query {
    const char *limit;  /* 1..1000, default 100 */
    const char *kind;   /* exact kind */
    const char *since;  /* only events with id > since */
    const char *before; /* only events with id < before (paging, newest first) */
};

/* Answers GET /events: 200 {"events":[...], "next_before": oldest id listed or 0}, 400 for a bad
 * parameter, 503 if the store cannot be opened or read. */
void web_events_get(struct web_events *e, const struct web_events_query *q, struct web_resp *out);

#endif
