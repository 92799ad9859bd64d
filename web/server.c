/* libmicrohttpd in external epoll mode inside our loop: request reading, limits, auth and
 * suspension of requests that wait for ha. */
#include "web/server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "platform/log.h"
#include "web/auth.h"
#include "web/dash.h"

#define LOG_MODULE "web"

enum {
    DEFAULT_CONN_LIMIT = 256,
    DEFAULT_CONN_TIMEOUT_S = 10,
    DEFAULT_MEMORY_LIMIT = 16 * 1024,
    BODY_INITIAL_CAP = 1024,
};

struct web_server {
    struct loop *loop;
    const struct web_ctx *ctx;
    struct web_auth *auth;
    struct web_server_config cfg;
    struct MHD_Daemon *d;
    int epfd;
    uint64_t timer;
    bool started; /* MHD logs after start are per-client noise: debug level */
};

/* State of a request that reads a body or waits for ha (MHD's per-request pointer). */
struct req {
    struct web_server *s;
    struct MHD_Connection *conn;
    const struct web_route *rt;
    enum web_method method;
    char *body;
    size_t len, cap;
    bool too_large;
    bool has_cl;
    bool suspended;
    bool answered;
    uint64_t cmd_id;
    char user[WEB_AUTH_USER_MAX];
    struct web_resp resp;
};

static void rearm(struct web_server *s);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct web_server *s = cls;
    char buf[256];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (s->started)
        log_debug("http", "mhd=\"%s\"", buf);
    else
        log_warn("http server", "mhd=\"%s\"", buf);
}

/* ---- answers ---- */

/* The optional headers of the dashboard's answers (see struct web_resp). */
static void add_dash_headers(struct MHD_Response *resp, const struct web_resp *r)
{
    if (r->etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
    if (r->encoding)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, r->encoding);
    if (r->vary)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, r->vary);
    if (r->location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    for (char *c = r->cookies; c && *c;) {
        char *nl = strchr(c, '\n');
        if (nl)
            *nl = '\0';
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, c);
        c = nl ? nl + 1 : NULL;
    }
    if (r->page_headers) {
        MHD_add_response_header(resp, "Content-Security-Policy", WEB_DASH_CSP);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
}

static enum MHD_Result queue(struct MHD_Connection *conn, enum web_method m, struct web_resp *r)
{
    struct MHD_Response *resp;
    if (r->body && r->len > 0 && m != WEB_HEAD && m != WEB_OPTIONS) {
        resp = MHD_create_response_from_buffer(
            r->len, r->body, r->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->body = NULL; /* MHD frees it (or it is constant) */
    } else
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        log_error("cannot create a response");
        web_resp_clear(r);
        return MHD_NO;
    }
    if (r->ctype && m != WEB_OPTIONS)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->www_auth)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"pgwarden\"");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            r->cache_control ? r->cache_control : "no-store");
    add_dash_headers(resp, r);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    web_resp_clear(r);
    return ret;
}

static enum MHD_Result queue_error(struct MHD_Connection *conn, enum web_method m, int status,
                                   const char *msg)
{
    struct web_resp r = {0};
    web_resp_error(&r, status, msg);
    return queue(conn, m, &r);
}

/* ---- request parsing ---- */

struct query_acc {
    struct web_request *rq;
    bool overflow;
};

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    struct query_acc *a = cls;
    if (a->rq->nquery == WEB_MAX_QUERY) {
        a->overflow = true;
        return MHD_NO;
    }
    a->rq->query[a->rq->nquery].key = key ? key : "";
    a->rq->query[a->rq->nquery].value = value ? value : "";
    a->rq->nquery++;
    return MHD_YES;
}

static bool fill_query(struct MHD_Connection *conn, struct web_request *rq)
{
    struct query_acc a = {.rq = rq};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query, &a);
    return !a.overflow;
}

static const struct sockaddr *peer_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

/* Patroni's check_access: client certificate (with TLS verify_client), then the
 * authenticator. True if denied: the error answer is queued and its MHD result is in *ret. */
static bool access_denied(struct web_server *s, struct MHD_Connection *conn, enum web_method m,
                          char *user, size_t cap, enum MHD_Result *ret)
{
    if (s->cfg.client_verified) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !s->cfg.client_verified(s->cfg.client_verified_arg, ci->connect_fd)) {
            *ret = queue_error(conn, m, 403, "Access is denied");
            return true;
        }
    }
    if (!s->auth) {
        *ret = queue_error(conn, m, 403, "Access is denied");
        return true;
    }
    const struct sockaddr *peer = peer_of(conn);
    const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *cookie = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie");
    const char *csrf = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, WEB_AUTH_CSRF_HEADER);
    if (!peer) {
        *ret = queue_error(conn, m, 403, "Access is denied");
        return true;
    }
    switch (web_auth_check_csrf(s->auth, peer, authz, cookie, csrf, true, user, cap)) {
    case WEB_AUTH_OK:
        return false;
    case WEB_AUTH_UNAUTHORIZED: {
        struct web_resp r = {0};
        web_resp_error(&r, 401, "authentication required");
        r.www_auth = true;
        *ret = queue(conn, m, &r);
        return true;
    }
    case WEB_AUTH_FORBIDDEN:
        *ret = queue_error(conn, m, 403, "Access is denied");
        return true;
    case WEB_AUTH_RATE_LIMITED:
        *ret = queue_error(conn, m, 429, "too many failed logins, try again later");
        return true;
    }
    *ret = queue_error(conn, m, 403, "Access is denied");
    return true;
}

/* Content-Length, if any: false (413 queued) when it is above the body cap. */
static bool length_ok(struct MHD_Connection *conn, enum web_method m, bool *has_cl,
                      enum MHD_Result *ret)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    *has_cl = cl != NULL;
    if (!cl)
        return true;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno != 0 || *end != '\0' || v > WEB_MAX_BODY) {
        *ret = queue_error(conn, m, 413, "request body too large");
        return false;
    }
    return true;
}

static void command_done(void *token, struct web_resp *resp)
{
    struct req *r = token;
    web_resp_move(&r->resp, resp);
    r->answered = true;
    r->cmd_id = 0;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
        web_server_kick(r->s);
    }
}

/* Runs the route once the request is complete (body read). */
static enum MHD_Result dispatch(struct web_server *s, struct MHD_Connection *conn, struct req *rq,
                                const struct web_route *rt, enum web_method m, const char *url)
{
    struct web_request wr = {.method = m, .path = url, .user = rq ? rq->user : ""};
    if (web_route_self_auth(rt)) {
        wr.cookie = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie");
        wr.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        wr.csrf = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, WEB_AUTH_CSRF_HEADER);
        wr.if_none_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
        wr.accept_encoding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding");
        wr.origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
        wr.host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
        wr.peer = peer_of(conn);
    }
    if (!fill_query(conn, &wr))
        return queue_error(conn, m, 400, "too many query parameters");
    if (rq) {
        wr.body = rq->body ? rq->body : "";
        wr.body_len = rq->len;
        wr.has_content_length = rq->has_cl;
    }
    struct web_resp out = {0};
    uint64_t id = 0;
    if (web_route_handle(s->ctx, rt, &wr, command_done, rq, &id, &out) == WEB_PENDING) {
        rq->cmd_id = id;
        rq->suspended = true;
        MHD_suspend_connection(conn);
        return MHD_YES;
    }
    return queue(conn, m, &out);
}

static bool body_append(struct req *rq, const char *data, size_t n)
{
    if (rq->too_large || rq->len + n > WEB_MAX_BODY) {
        rq->too_large = true;
        return true;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : BODY_INITIAL_CAP;
        while (cap < rq->len + n + 1)
            cap *= 2;
        char *b = realloc(rq->body, cap);
        if (!b)
            return false;
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = '\0';
    return true;
}

/* A request that is not an unsafe call of a known route: 404, 405 or a safe endpoint. */
static enum MHD_Result answer_simple(struct web_server *s, struct MHD_Connection *conn,
                                     const char *url, enum web_method m)
{
    const struct web_route *rt = web_route_find(url);
    enum web_method qm = m == WEB_OTHER ? WEB_GET : m;
    if (!rt)
        return queue_error(conn, qm, 404, "not found");
    if (!(web_route_methods(rt) & m)) {
        struct web_resp r = {0};
        web_resp_error(&r, 405, "method not allowed");
        r.allow = web_route_allow(rt);
        return queue(conn, qm, &r);
    }
    return dispatch(s, conn, NULL, rt, m, url);
}

/* The headers are in. Answers come only once the body was read (a response queued earlier
 * makes MHD close the connection with unread data, which a client may see as a reset), except
 * for a declared body above the cap. */
static enum MHD_Result first_call(struct web_server *s, struct MHD_Connection *conn,
                                  const char *url, const char *method, void **con_cls)
{
    enum web_method m = web_method_parse(method);
    const struct web_route *rt = web_route_find(url);
    bool has_cl;
    enum MHD_Result ret;
    if (!length_ok(conn, m == WEB_OTHER ? WEB_GET : m, &has_cl, &ret))
        return ret;
    if (!rt || !(web_route_methods(rt) & m) || !web_method_unsafe(m)) {
        *con_cls = s; /* answer_simple() on the last call; a body is discarded */
        return MHD_YES;
    }
    struct req *rq = calloc(1, sizeof(*rq));
    if (!rq) {
        log_error("out of memory for a request");
        return queue_error(conn, m, 500, "out of memory");
    }
    rq->s = s;
    rq->conn = conn;
    rq->rt = rt;
    rq->method = m;
    rq->has_cl = has_cl;
    *con_cls = rq;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct web_server *s = cls;
    if (!*con_cls)
        return first_call(s, conn, url, method, con_cls);
    if (*con_cls == s) {
        if (*upload_data_size > 0) {
            *upload_data_size = 0; /* not needed: discarded */
            return MHD_YES;
        }
        return answer_simple(s, conn, url, web_method_parse(method));
    }
    struct req *rq = *con_cls;
    if (rq->answered)
        return queue(conn, rq->method, &rq->resp);
    if (rq->suspended)
        return MHD_YES; /* not expected: MHD calls again only after a resume */
    if (*upload_data_size > 0) {
        if (!body_append(rq, upload_data, *upload_data_size)) {
            log_error("out of memory reading a request body");
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->too_large)
        return queue_error(conn, rq->method, 413, "request body too large");
    enum MHD_Result ret;
    if (!web_route_self_auth(rq->rt) &&
        access_denied(s, conn, rq->method, rq->user, sizeof(rq->user), &ret))
        return ret;
    return dispatch(s, conn, rq, rq->rt, rq->method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct web_server *s = cls;
    struct req *rq = *con_cls;
    if (!rq || *con_cls == s)
        return;
    if (rq->cmd_id && s->ctx->cmds)
        web_cmds_cancel(s->ctx->cmds, rq->cmd_id);
    web_resp_clear(&rq->resp);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* ---- the loop side ---- */

static void run(struct web_server *s)
{
    if (MHD_run(s->d) != MHD_YES)
        log_debug("MHD_run reported a problem");
    rearm(s);
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct web_server *s = arg;
    s->timer = 0;
    run(s);
}

static void on_epoll(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    run(arg);
}

/* One timer at MHD's next deadline (connection timeouts, pending work). */
static void rearm(struct web_server *s)
{
    uint64_t t;
    if (MHD_get_timeout64(s->d, &t) != MHD_YES) {
        if (s->timer)
            loop_cancel_timer(s->loop, s->timer);
        s->timer = 0;
        return;
    }
    uint64_t due = loop_now_ms(s->loop) + t;
    if (s->timer && loop_timer_deadline(s->loop, s->timer) == due)
        return;
    if (s->timer)
        loop_cancel_timer(s->loop, s->timer);
    s->timer = loop_add_timer(s->loop, t, 0, on_timer, s);
    if (!s->timer)
        log_error("cannot add the http timer");
}

void web_server_kick(struct web_server *s)
{
    if (s->timer)
        loop_cancel_timer(s->loop, s->timer);
    s->timer = loop_add_timer(s->loop, 0, 0, on_timer, s);
}

struct web_server *web_server_new(struct loop *l, const struct web_server_config *cfg,
                                  const struct web_ctx *ctx, struct web_auth *auth)
{
    struct web_server *s = calloc(1, sizeof(*s));
    if (!s) {
        log_error("out of memory for the http server");
        if (cfg->listen_fd >= 0)
            close(cfg->listen_fd);
        return NULL;
    }
    s->loop = l;
    s->ctx = ctx;
    s->auth = auth;
    s->cfg = *cfg;
    s->epfd = -1;
    unsigned limit = cfg->connection_limit ? cfg->connection_limit : DEFAULT_CONN_LIMIT;
    unsigned timeout =
        cfg->connection_timeout_s ? cfg->connection_timeout_s : DEFAULT_CONN_TIMEOUT_S;
    size_t mem = cfg->memory_limit ? cfg->memory_limit : DEFAULT_MEMORY_LIMIT;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (cfg->listen_fd < 0)
        flags |= MHD_USE_NO_LISTEN_SOCKET;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                            mhd_log, s, MHD_OPTION_LISTEN_SOCKET,
                            (MHD_socket)(cfg->listen_fd >= 0 ? cfg->listen_fd : MHD_INVALID_SOCKET),
                            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT,
                            timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->d) {
        log_error("cannot start the http server");
        if (cfg->listen_fd >= 0)
            close(cfg->listen_fd);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    s->epfd = di ? di->epoll_fd : -1;
    int r = s->epfd >= 0 ? loop_add_fd(l, s->epfd, LOOP_READ, on_epoll, s) : -EBADF;
    if (r < 0) {
        log_error("cannot watch the http server", "err=%d", r);
        MHD_stop_daemon(s->d);
        free(s);
        return NULL;
    }
    s->started = true;
    rearm(s);
    return s;
}

void web_server_free(struct web_server *s)
{
    if (!s)
        return;
    if (s->ctx->cmds)
        web_cmds_abort_all(s->ctx->cmds);
    MHD_run(s->d); /* lets the resumed requests answer */
    if (s->timer)
        loop_cancel_timer(s->loop, s->timer);
    loop_del_fd(s->loop, s->epfd);
    MHD_stop_daemon(s->d);
    free(s);
}

int web_server_add_plain_connection(struct web_server *s, int fd, const struct sockaddr *peer,
                                    socklen_t len)
{
    if (MHD_add_connection(s->d, fd, peer, len) != MHD_YES) {
        int err = errno ? errno : ENOMEM;
        log_warn("http server refused a connection", "err=\"%s\"", strerror(err));
        web_server_kick(s);
        return -err; /* MHD closed fd */
    }
    web_server_kick(s);
    return 0;
}

int web_server_hand_off(void *server, int fd, const struct sockaddr *peer, socklen_t len)
{
    return web_server_add_plain_connection(server, fd, peer, len);
}
