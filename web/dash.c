/* The dashboard's HTTP side: embedded assets (ETag, gzip), login, logout, session and state. */
#include "web/dash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform/clock.h"
#include "platform/log.h"
#include "web/auth.h"

#define LOG_MODULE "web"

enum { COOKIES_CAP = 512 };

const struct web_asset *web_dash_asset(const char *name)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].name, name) == 0)
            return &web_assets[i];
    return NULL;
}

/* One token of a comma-separated header list: [*p, *p + len) after trimming; false at the end. */
static bool next_item(const char **p, const char **item, size_t *len)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (!*s)
        return false;
    const char *e = strchr(s, ',');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    *p = s + n;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *item = s;
    *len = n;
    return true;
}

bool web_dash_etag_match(const char *if_none_match, const char *etag)
{
    if (!if_none_match || !etag)
        return false;
    size_t elen = strlen(etag);
    const char *p = if_none_match, *it;
    size_t n;
    while (next_item(&p, &it, &n)) {
        if (n == 1 && it[0] == '*')
            return true;
        if (n > 2 && it[0] == 'W' && it[1] == '/') { /* weak comparison for If-None-Match */
            it += 2;
            n -= 2;
        }
        if (n == elen && memcmp(it, etag, n) == 0)
            return true;
    }
    return false;
}

bool web_dash_accepts_gzip(const char *accept_encoding)
{
    const char *p = accept_encoding, *it;
    size_t n;
    if (!p)
        return false;
    while (next_item(&p, &it, &n)) {
        size_t name = 0;
        while (name < n && it[name] != ';' && it[name] != ' ')
            name++;
        if (!((name == 4 && strncasecmp(it, "gzip", 4) == 0) || (name == 1 && it[0] == '*')))
            continue;
        const char *q = memchr(it, '=', n);
        if (!q)
            return true;
        /* q=0, q=0.0, q=0.00...: refused; anything else accepts */
        for (q++; q < it + n; q++)
            if (*q != '0' && *q != '.' && *q != ' ')
                return true;
        return false;
    }
    return false;
}

/* The asset a path names: /ui and /ui/ the page, /ui/login the login page, /ui/NAME a file. */
static const struct web_asset *asset_of(const char *path)
{
    if (strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0)
        return web_dash_asset("index.html");
    if (strcmp(path, "/ui/login") == 0)
        return web_dash_asset("login.html");
    const char *name = path + 4; /* after "/ui/" */
    if (strchr(name, '/') || name[0] == '.' || name[0] == '\0')
        return NULL;
    return web_dash_asset(name);
}

static void not_allowed(struct web_resp *out, const char *allow)
{
    web_resp_error(out, 405, "method not allowed");
    out->allow = allow;
}

static void serve_asset(const struct web_request *rq, struct web_resp *out)
{
    const struct web_asset *a = asset_of(rq->path);
    if (!a) {
        web_resp_error(out, 404, "not found");
        return;
    }
    if (rq->method != WEB_GET && rq->method != WEB_HEAD) {
        not_allowed(out, "GET, HEAD");
        return;
    }
    web_resp_clear(out);
    bool gz = a->gz && web_dash_accepts_gzip(rq->accept_encoding);
    out->status = web_dash_etag_match(rq->if_none_match, a->etag) ? 304 : 200;
    out->ctype = a->ctype;
    out->etag = a->etag;
    out->cache_control = "no-cache"; /* revalidated with the ETag: a new build shows at once */
    out->vary = "Accept-Encoding";
    out->page_headers = true;
    if (out->status == 304)
        return;
    out->encoding = gz ? "gzip" : NULL;
    out->body_static = true;
    out->body = (char *)(gz ? a->gz : a->data);
    out->len = gz ? a->gz_len : a->len;
}

/* A POST from a page must come from this origin (login CSRF): Origin, when sent, is ours. */
static bool origin_ok(const struct web_ctx *ctx, const struct web_request *rq)
{
    if (!rq->origin)
        return true;
    if (!rq->host)
        return false;
    char want[300];
    snprintf(want, sizeof(want), "%s://%s", ctx->tls ? "https" : "http", rq->host);
    return strcmp(rq->origin, want) == 0;
}

static const char *role_name(enum web_auth_role r)
{
    return r == WEB_ROLE_ADMIN ? "admin" : "readonly";
}

static bool set_cookies(struct web_resp *out, bool tls, const char *session, const char *csrf)
{
    char *c = malloc(COOKIES_CAP);
    if (!c)
        return false;
    const char *sec = tls ? "; Secure" : "";
    const char *gone = session[0] ? "" : "; Max-Age=0";
    snprintf(c, COOKIES_CAP,
             WEB_AUTH_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s%s\n" WEB_DASH_CSRF_COOKIE
                             "=%s; Path=/; SameSite=Strict%s%s",
             session, sec, gone, csrf, sec, gone);
    free(out->cookies);
    out->cookies = c;
    return true;
}

static void auth_error(struct web_resp *out, enum web_auth_result r)
{
    switch (r) {
    case WEB_AUTH_UNAUTHORIZED:
        web_resp_error(out, 401, "not logged in");
        return;
    case WEB_AUTH_RATE_LIMITED:
        web_resp_error(out, 429, "too many failed logins, try again later");
        return;
    case WEB_AUTH_FORBIDDEN:
    case WEB_AUTH_OK:
        break;
    }
    web_resp_error(out, 403, "Access is denied");
}

static void login(const struct web_ctx *ctx, const struct web_request *rq, struct web_resp *out)
{
    if (rq->method != WEB_POST) {
        not_allowed(out, "POST");
        return;
    }
    if (!origin_ok(ctx, rq) || !ctx->auth) {
        web_resp_error(out, 403, "Access is denied");
        return;
    }
    json_t *body = web_parse_body(rq->body, rq->body_len, false, out);
    if (!body)
        return;
    const char *user = json_string_value(json_object_get(body, "user"));
    const char *password = json_string_value(json_object_get(body, "password"));
    if (!user || !password || !user[0]) {
        json_decref(body);
        web_resp_error(out, 400, "user and password are required strings");
        return;
    }
    char tok[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP];
    enum web_auth_result r =
        web_auth_login(ctx->auth, rq->peer, user, password, tok, sizeof(tok), csrf, sizeof(csrf));
    json_decref(body);
    if (r != WEB_AUTH_OK) {
        if (r == WEB_AUTH_UNAUTHORIZED)
            web_resp_error(out, 401, "wrong user name or password");
        else
            auth_error(out, r);
        return;
    }
    char cookie[WEB_AUTH_TOKEN_CAP + 16], name[WEB_AUTH_USER_MAX];
    snprintf(cookie, sizeof(cookie), WEB_AUTH_COOKIE "=%s", tok);
    enum web_auth_role role = WEB_ROLE_READONLY;
    if (!web_auth_session_user(ctx->auth, cookie, name, sizeof(name), &role))
        snprintf(name, sizeof(name), "?");
    json_t *o = json_pack("{s:s,s:s,s:s}", "user", name, "role", role_name(role), "csrf", csrf);
    if (!o || !web_resp_json(out, 200, o) || !set_cookies(out, ctx->tls, tok, csrf))
        web_resp_error(out, 500, "out of memory");
    json_decref(o);
}

static void logout(const struct web_ctx *ctx, const struct web_request *rq, struct web_resp *out)
{
    if (rq->method != WEB_POST) {
        not_allowed(out, "POST");
        return;
    }
    if (!origin_ok(ctx, rq) || !ctx->auth) {
        web_resp_error(out, 403, "Access is denied");
        return;
    }
    char name[WEB_AUTH_USER_MAX];
    if (web_auth_session_user(ctx->auth, rq->cookie, name, sizeof(name), NULL)) {
        if (!web_auth_csrf_ok(ctx->auth, rq->cookie, rq->csrf)) {
            web_resp_error(out, 403, "Access is denied (CSRF token missing or wrong)");
            return;
        }
        web_auth_logout(ctx->auth, rq->cookie);
    }
    json_t *o = json_pack("{s:b}", "ok", 1);
    if (!o || !web_resp_json(out, 200, o) || !set_cookies(out, ctx->tls, "", ""))
        web_resp_error(out, 500, "out of memory");
    json_decref(o);
}

/* Who asks (session or Basic; anonymous when no users are configured). False with the error
 * answer in out. No WWW-Authenticate: the page shows its own login. */
static bool identify(const struct web_ctx *ctx, const struct web_request *rq, char *user,
                     size_t cap, const char **role, struct web_resp *out)
{
    if (!ctx->auth) {
        web_resp_error(out, 403, "Access is denied");
        return false;
    }
    enum web_auth_result r =
        web_auth_check(ctx->auth, rq->peer, rq->authorization, rq->cookie, false, user, cap);
    if (r != WEB_AUTH_OK) {
        auth_error(out, r);
        return false;
    }
    char again[WEB_AUTH_USER_MAX];
    r = web_auth_check(ctx->auth, rq->peer, rq->authorization, rq->cookie, true, again,
                       sizeof(again));
    *role = r == WEB_AUTH_OK ? "admin" : "readonly";
    return true;
}

static void with_identity(json_t *o, const char *user, const char *role, const struct web_ctx *ctx)
{
    json_object_set_new(o, "user", json_string(user));
    json_object_set_new(o, "role", json_string(role));
    json_object_set_new(o, "users", json_integer((json_int_t)web_auth_user_count(ctx->auth)));
    json_object_set_new(o, "tls", json_boolean(ctx->tls));
}

/* Builds the body of an identified read (GET /ui/api/session, state, samples). NULL: the builder
 * answered in out itself (an error, or a body of its own), or out of memory if out is unset. */
typedef json_t *(*dash_body_fn)(const struct web_ctx *ctx, const struct web_request *rq,
                                struct web_resp *out);

/* The reads' shared prologue: who asks (the error answer otherwise), then the builder's body
 * with the caller's identity added, 200. */
static void identified(const struct web_ctx *ctx, const struct web_request *rq,
                       struct web_resp *out, dash_body_fn build)
{
    char user[WEB_AUTH_USER_MAX];
    const char *role;
    if (!identify(ctx, rq, user, sizeof(user), &role, out))
        return;
    json_t *o = build(ctx, rq, out);
    if (!o) {
        if (!out->status)
            web_resp_error(out, 500, "out of memory");
        return;
    }
    with_identity(o, user, role, ctx);
    if (!web_resp_json(out, 200, o))
        web_resp_error(out, 500, "out of memory");
    json_decref(o);
}

static json_t *session_body(const struct web_ctx *ctx, const struct web_request *rq,
                            struct web_resp *out)
{
    (void)ctx;
    (void)rq;
    (void)out;
    return json_object();
}

static json_t *state_body(const struct web_ctx *ctx, const struct web_request *rq,
                          struct web_resp *out)
{
    (void)rq;
    (void)out;
    return web_dash_state(ctx->snap, ctx->now_boot_ms(), clock_wall_ms());
}

/* Answers itself: the samples carry no identity. */
static json_t *samples_body(const struct web_ctx *ctx, const struct web_request *rq,
                            struct web_resp *out)
{
    if (!ctx->dash)
        web_resp_error(out, 503, "the sample store is not available");
    else
        web_dash_samples(ctx->dash, rq, clock_wall_ms(), out);
    return NULL;
}

void web_dash_handle(const struct web_ctx *ctx, const struct web_request *rq, struct web_resp *out)
{
    static const struct {
        const char *path;
        bool post;
        void (*fn)(const struct web_ctx *, const struct web_request *, struct web_resp *);
        dash_body_fn build; /* when fn is NULL: a read behind identified() */
    } api[] = {
        {"/ui/api/login", true, login, NULL},           {"/ui/api/logout", true, logout, NULL},
        {"/ui/api/session", false, NULL, session_body}, {"/ui/api/state", false, NULL, state_body},
        {"/ui/api/samples", false, NULL, samples_body},
    };
    if (strncmp(rq->path, "/ui/api/", 8) != 0) {
        if (rq->method == WEB_POST)
            not_allowed(out, "GET, HEAD");
        else
            serve_asset(rq, out);
        return;
    }
    for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
        if (strcmp(api[i].path, rq->path) != 0)
            continue;
        if (!api[i].post && rq->method == WEB_POST) {
            not_allowed(out, "GET, HEAD");
            return;
        }
        if (api[i].fn)
            api[i].fn(ctx, rq, out);
        else
            identified(ctx, rq, out, api[i].build);
        return;
    }
    web_resp_error(out, 404, "not found");
}
