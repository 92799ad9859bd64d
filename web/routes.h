/* Dispatch of the REST API: the path table, allowed methods, and the handler of each endpoint. */
#ifndef PGW_WEB_ROUTES_H
#define PGW_WEB_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "web/commands.h"
#include "web/events.h"
#include "web/resp.h"
#include "web/snapshot.h"

enum web_method {
    WEB_GET = 1,
    WEB_HEAD = 2,
    WEB_OPTIONS = 4,
    WEB_POST = 8,
    WEB_PUT = 16,
    WEB_PATCH = 32,
    WEB_DELETE = 64,
    WEB_OTHER = 128,
};

enum { WEB_MAX_QUERY = 32 };

struct web_kv {
    const char *key;
    const char *value; /* "" for a key without a value */
};

/* What a handler sees of a request (strings owned by the caller for the call's duration). */
struct web_request {
    enum web_method method;
    const char *path;
    size_t nquery;
    struct web_kv query[WEB_MAX_QUERY];
    const char *body;
    size_t body_len;
    bool has_content_length; /* the request had a Content-Length header */
    const char *user;        /* the authenticated user, "" if none */
    /* Headers and peer for the dashboard's own authentication (web/dash*.c); NULL if absent. */
    const char *cookie, *authorization, *csrf, *if_none_match, *accept_encoding, *origin, *host;
    const struct sockaddr *peer;
};

/* What the handlers use: the snapshot, the command table, the event store, the clock. */
struct web_ctx {
    struct web_snapshot *snap;
    struct web_cmds *cmds;
    struct web_events *events;
    uint64_t reply_timeout_ms;   /* how long ha has to answer a command */
    uint64_t restart_timeout_ms; /* the same for POST /restart (ha restarts PostgreSQL first) */
    uint64_t switchover_wait_ms; /* wait for the new leader; 0: 2 * max(10 s, loop_wait) */
    uint64_t (*now_boot_ms)(void);
    struct web_auth *auth; /* sessions of the dashboard (NULL: it refuses logins) */
    struct web_dash *dash; /* the dashboard's store readers: samples, migrations (NULL: none) */
    bool tls;              /* served over TLS: cookies get Secure */
};

struct web_route;
struct web_auth;
struct web_dash;
struct sockaddr;

/* The route of a path (without the query), or NULL (404). */
const struct web_route *web_route_find(const char *path);
/* The i-th route of the table in table order, or NULL past the end (for the generated API
 * reference, tools/docgen.c), and its path ("/ui" also serves everything under /ui/). */
const struct web_route *web_route_at(size_t i);
const char *web_route_path(const struct web_route *rt);
/* Bit set of enum web_method the route accepts. */
unsigned web_route_methods(const struct web_route *rt);
/* The Allow header value of the route ("GET, HEAD, OPTIONS", ...). */
const char *web_route_allow(const struct web_route *rt);
/* True for the dashboard's routes (/ui...), which authenticate requests themselves (login). */
bool web_route_self_auth(const struct web_route *rt);
/* POST, PUT, PATCH and DELETE change the cluster and need authentication. */
bool web_method_unsafe(enum web_method m);
/* enum web_method of an HTTP method name (WEB_OTHER for anything else). */
enum web_method web_method_parse(const char *name);
/* The value of a query parameter, or NULL. */
const char *web_query_get(const struct web_request *rq, const char *key);

enum web_dispatch { WEB_DONE, WEB_PENDING };

/* Handles the request. WEB_DONE: the answer is in *out. WEB_PENDING: a command was sent to ha
 * (its id in *cmd_id); done(token, resp) delivers the answer later. The method must be one the
 * route accepts. */
enum web_dispatch web_route_handle(const struct web_ctx *ctx, const struct web_route *rt,
                                   const struct web_request *rq, web_cmd_done_fn done, void *token,
                                   uint64_t *cmd_id, struct web_resp *out);

#endif
