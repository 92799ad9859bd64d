/* An HTTP answer being built (status, body, content type, extra headers) and request limits. */
#ifndef PGW_WEB_RESP_H
#define PGW_WEB_RESP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define WEB_CT_JSON "application/json"
#define WEB_CT_TEXT "text/plain; charset=utf-8"
#define WEB_CT_PROM "text/plain; version=0.0.4; charset=utf-8"

enum {
    WEB_MAX_BODY = 64 * 1024, /* request bodies above this get 413 */
    WEB_MAX_JSON_DEPTH = 32,  /* nesting of request JSON; deeper gets 400 */
};

struct web_resp {
    int status;        /* 0: not set */
    char *body;        /* malloc'd, NULL for none */
    size_t len;        /* bytes of body */
    const char *ctype; /* static string, NULL for none */
    const char *allow; /* Allow header for 405 (static), or NULL */
    bool www_auth;     /* add WWW-Authenticate: Basic realm="pgwarden" */
    /* Dashboard extras (web/dash*.c); all optional. */
    bool body_static;          /* body points to constant memory (embedded assets): not freed */
    bool page_headers;         /* add the dashboard's security headers (CSP, nosniff, ...) */
    const char *cache_control; /* static string; NULL: "no-store" */
    const char *etag;          /* static string (quoted), or NULL */
    const char *encoding;      /* Content-Encoding (static), or NULL */
    const char *vary;          /* Vary (static), or NULL */
    const char *location;      /* Location (static), or NULL */
    char *cookies;             /* malloc'd Set-Cookie values separated by '\n', or NULL */
};

/* Drops the body and resets r to "not set". */
void web_resp_clear(struct web_resp *r);
/* Moves src into dst (dst cleared first; src left empty). */
void web_resp_move(struct web_resp *dst, struct web_resp *src);
/* A copy of len bytes as the body. False on ENOMEM (r then holds a 500 without a body). */
bool web_resp_set(struct web_resp *r, int status, const char *ctype, const char *body, size_t len);
/* The compact JSON of v (not consumed) as the body. */
bool web_resp_json(struct web_resp *r, int status, const json_t *v);
/* {"error": message} with status. */
void web_resp_error(struct web_resp *r, int status, const char *message);
/* A plain-text body (Patroni's plain answers, e.g. "reload scheduled"). */
void web_resp_text(struct web_resp *r, int status, const char *text);

/* True if the JSON text nests objects/arrays at most max_depth deep (strings are skipped). */
bool web_json_depth_ok(const char *buf, size_t len, int max_depth);
/* Parses a request body: NULL with an error in r (400) if it is not JSON, too deep, or not an
 * object. An empty body gives an empty object when optional, else 400. */
json_t *web_parse_body(const char *buf, size_t len, bool optional, struct web_resp *r);

#endif
