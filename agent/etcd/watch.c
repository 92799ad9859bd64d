/* etcd watch: a streaming POST /watch on a prefix, driven by the event loop via curl multi. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"
#include "platform/log.h"
#include "platform/loop.h"

#define LOG_MODULE "etcd"

enum {
    BACKOFF_FIRST_MS = 50,
    BACKOFF_MAX_MS = 2000,
    DEFAULT_IDLE_MS = 300000,
    STREAM_SLACK = 256 << 10, /* buffer beyond one message: what one socket read may add */
};

struct etcd_watch {
    struct etcd_client *c;
    struct loop *l;
    char *prefix;
    bool prev_kv;
    uint64_t idle_ms;
    etcd_watch_cb cb;
    void *arg;

    CURLM *multi;
    CURL *easy; /* the stream, NULL between connections */
    struct curl_slist *hdrs;
    char *body;
    char endpoint[ETCD_URL_MAX]; /* of the stream */
    struct etcd_stream stream;
    uint64_t curl_timer;
    uint64_t retry_timer;

    int64_t next_rev; /* 0: a RESYNC (range) comes first */
    bool up;
    bool down_reported;
    bool reauth;       /* get a new token before the next stream */
    unsigned failures; /* consecutive attempts that did not reach "created" */
    /* The stream must go (set anywhere, acted on outside libcurl and outside line parsing). */
    bool lost;
    bool lost_failover;
    char lost_reason[256];
    struct etcd_error err;

    unsigned depth; /* > 0 while inside a loop callback of ours */
    bool freed;     /* etcd_watch_free() was called inside; destroyed when depth drops to 0 */
};

static void schedule_connect(struct etcd_watch *w, uint64_t delay_ms);

/* ---- small helpers ---- */

static bool deliver(struct etcd_watch *w, const struct etcd_watch_update *u)
{
    w->cb(w->arg, u);
    return !w->freed;
}

static void mark_lost(struct etcd_watch *w, bool failover, const char *reason)
{
    if (!w->lost)
        snprintf(w->lost_reason, sizeof(w->lost_reason), "%s", reason);
    w->lost = true;
    w->lost_failover |= failover;
}

static uint64_t backoff_ms(const struct etcd_watch *w)
{
    if (w->failures <= 1)
        return 0; /* the first retry (usually on the next endpoint) is immediate */
    uint64_t d = BACKOFF_FIRST_MS;
    for (unsigned i = 2; i < w->failures && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

static void teardown_stream(struct etcd_watch *w)
{
    if (w->easy) {
        curl_multi_remove_handle(w->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
    curl_slist_free_all(w->hdrs);
    w->hdrs = NULL;
    free(w->body);
    w->body = NULL;
    etcd_stream_reset(&w->stream);
    w->up = false;
}

/* Reports the loss once (DOWN), then schedules the next attempt. False if freed meanwhile. */
static bool report_down(struct etcd_watch *w, const char *reason)
{
    bool was_up = w->up;
    w->up = false;
    w->failures++;
    if (was_up || !w->down_reported) {
        w->down_reported = true;
        if (was_up)
            log_warn("etcd watch lost", "endpoint=%s reason=\"%s\"", w->endpoint, reason);
        struct etcd_watch_update u = {.what = ETCD_WATCH_DOWN,
                                      .reason = reason,
                                      .revision = w->next_rev > 0 ? w->next_rev - 1 : 0};
        if (!deliver(w, &u))
            return false;
    }
    schedule_connect(w, backoff_ms(w));
    return true;
}

/* Acts on mark_lost(): drops the stream, fails over if asked, reports, reconnects. */
static void handle_lost(struct etcd_watch *w)
{
    char reason[sizeof(w->lost_reason)];
    bool failover = w->lost_failover;
    memcpy(reason, w->lost_reason, sizeof(reason));
    w->lost = false;
    w->lost_failover = false;
    bool had_stream = w->easy != NULL;
    teardown_stream(w);
    if (failover && had_stream)
        etcd_client_failed(w->c, w->endpoint, reason);
    report_down(w, reason);
}

/* ---- libcurl multi <-> loop glue ---- */

static void process(struct etcd_watch *w);

static void finish(struct etcd_watch *w);

static void on_fd(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    struct etcd_watch *w = arg;
    int mask = 0;
    if (events & LOOP_READ)
        mask |= CURL_CSELECT_IN;
    if (events & LOOP_WRITE)
        mask |= CURL_CSELECT_OUT;
    if (events & LOOP_ERR)
        mask |= CURL_CSELECT_ERR;
    int running;
    w->depth++;
    curl_multi_socket_action(w->multi, fd, mask, &running);
    process(w);
    w->depth--;
    finish(w);
}

static void on_curl_timer(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct etcd_watch *w = arg;
    int running;
    w->curl_timer = 0;
    w->depth++;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process(w);
    w->depth--;
    finish(w);
}

/* cppcheck-suppress constParameter ; the signature is libcurl's */
static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct etcd_watch *w = userp;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            loop_del_fd(w->l, s);
            curl_multi_assign(w->multi, s, NULL);
        }
        return 0;
    }
    uint32_t ev = 0;
    if (what & CURL_POLL_IN)
        ev |= LOOP_READ;
    if (what & CURL_POLL_OUT)
        ev |= LOOP_WRITE;
    int rc = socketp ? loop_mod_fd(w->l, s, ev) : loop_add_fd(w->l, s, ev, on_fd, w);
    if (rc == -EEXIST)
        rc = loop_mod_fd(w->l, s, ev);
    if (rc != 0) {
        log_warn("cannot watch etcd socket", "fd=%d err=%d", (int)s, rc);
        return -1;
    }
    if (!socketp)
        curl_multi_assign(w->multi, s, w);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct etcd_watch *w = userp;
    if (w->curl_timer) {
        loop_cancel_timer(w->l, w->curl_timer);
        w->curl_timer = 0;
    }
    if (timeout_ms >= 0) {
        w->curl_timer = loop_add_timer(w->l, (uint64_t)timeout_ms, 0, on_curl_timer, w);
        if (!w->curl_timer)
            return -1;
    }
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct etcd_watch *w = userdata;
    size_t n = size * nmemb;
    return etcd_stream_feed(&w->stream, ptr, n) ? n : 0;
}

/* ---- messages ---- */

static bool auth_problem(const char *reason)
{
    return strstr(reason, "user name is empty") || strstr(reason, "invalid auth token") ||
           strstr(reason, "auth store is old");
}

static void handle_msg(struct etcd_watch *w, const char *line, size_t len)
{
    struct etcd_watch_msg m;
    int rc = etcd_parse_watch_msg(line, len, &m);
    if (rc != 0) {
        etcd_error_set(&w->err, rc, 200, -1, w->endpoint, "malformed watch message");
        log_warn("malformed etcd watch message", "endpoint=%s bytes=%zu", w->endpoint, len);
        mark_lost(w, true, "malformed watch message");
        return;
    }
    if (m.is_error) {
        w->err = m.err;
        if (m.err.err == ETCD_E_AUTH)
            w->reauth = true;
        mark_lost(w, m.err.err == ETCD_E_UNAVAILABLE || m.err.err == ETCD_E_TRANSPORT,
                  m.err.message);
        goto out;
    }
    if (m.created && !m.canceled) {
        w->up = true;
        w->down_reported = false;
        w->failures = 0;
        log_info("etcd watch established", "endpoint=%s prefix=%s from_revision=%lld", w->endpoint,
                 w->prefix, (long long)w->next_rev);
        struct etcd_watch_update u = {.what = ETCD_WATCH_UP, .revision = m.header.revision};
        if (!deliver(w, &u))
            goto out;
    }
    if (m.n_events > 0) {
        int64_t last = m.events[m.n_events - 1].kv.mod_revision;
        if (last + 1 > w->next_rev)
            w->next_rev = last + 1;
        struct etcd_watch_update u = {.what = ETCD_WATCH_EVENTS,
                                      .revision = last,
                                      .events = m.events,
                                      .n_events = m.n_events};
        if (!deliver(w, &u))
            goto out;
    } else if (!m.created && !m.canceled && m.header.revision + 1 > w->next_rev) {
        w->next_rev = m.header.revision + 1; /* progress notification */
    }
    if (m.canceled) {
        if (m.compact_revision > 0) {
            log_info("etcd watch revision compacted, re-reading the prefix",
                     "prefix=%s wanted=%lld compact_revision=%lld", w->prefix,
                     (long long)w->next_rev, (long long)m.compact_revision);
            w->next_rev = 0;
            mark_lost(w, false, "revision compacted");
        } else if (auth_problem(m.cancel_reason)) {
            w->reauth = true;
            mark_lost(w, false, m.cancel_reason);
        } else {
            etcd_error_set(&w->err, ETCD_E_SERVER, 200, -1, w->endpoint, "%s", m.cancel_reason);
            mark_lost(w, true, m.cancel_reason[0] ? m.cancel_reason : "watch canceled");
        }
    }
out:
    etcd_watch_msg_clear(&m);
}

static long stream_status(struct etcd_watch *w)
{
    long status = 0;
    if (w->easy)
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static void transfer_done(struct etcd_watch *w, CURLcode res)
{
    long status = stream_status(w);
    if (res == CURLE_OK && status != 200 && status != 0) {
        const char *body = w->stream.buf.data ? w->stream.buf.data + w->stream.start : "";
        int err = etcd_error_from_body(status, body, w->stream.buf.len - w->stream.start,
                                       w->endpoint, &w->err);
        if (err == ETCD_E_AUTH)
            w->reauth = true;
        mark_lost(w, err == ETCD_E_UNAVAILABLE || err == ETCD_E_NOT_FOUND, w->err.message);
        return;
    }
    if (res == CURLE_OK)
        etcd_error_set(&w->err, ETCD_E_UNAVAILABLE, status, -1, w->endpoint,
                       "watch stream closed by the server");
    else if (res == CURLE_WRITE_ERROR)
        etcd_error_set(&w->err, ETCD_E_PROTOCOL, status, -1, w->endpoint,
                       "watch message larger than %d bytes", ETCD_MAX_WATCH_MSG);
    else
        etcd_error_set(&w->err, ETCD_E_TRANSPORT, status, -1, w->endpoint, "%s",
                       curl_easy_strerror(res));
    mark_lost(w, true, w->err.message);
}

/* Called after libcurl returned: hands complete messages out, then acts on the stream's end. */
static void process(struct etcd_watch *w)
{
    if (w->easy && stream_status(w) == 200) {
        const char *line;
        size_t len;
        int rc;
        while (!w->lost && !w->freed && (rc = etcd_stream_next(&w->stream, &line, &len)) != 0) {
            if (rc < 0) {
                etcd_error_set(&w->err, ETCD_E_PROTOCOL, 200, -1, w->endpoint,
                               "watch message larger than %d bytes", ETCD_MAX_WATCH_MSG);
                mark_lost(w, true, w->err.message);
                break;
            }
            handle_msg(w, line, len);
        }
    }
    if (w->freed)
        return;
    CURLMsg *msg;
    int left;
    while (!w->lost && (msg = curl_multi_info_read(w->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->easy)
            transfer_done(w, msg->data.result);
    if (w->lost)
        handle_lost(w);
}

/* ---- connecting ---- */

static bool resync(struct etcd_watch *w)
{
    struct etcd_range_result r;
    int rc = etcd_range(w->c, &(struct etcd_range_req){.key = w->prefix, .prefix = true}, &r);
    if (rc != 0) {
        w->err = *etcd_last_error(w->c);
        report_down(w, w->err.message);
        return false;
    }
    w->next_rev = r.header.revision + 1;
    struct etcd_watch_update u = {
        .what = ETCD_WATCH_RESYNC, .revision = r.header.revision, .kvs = r.kvs, .n_kvs = r.n_kvs};
    bool alive = deliver(w, &u);
    etcd_range_result_clear(&r);
    return alive;
}

static bool start_stream(struct etcd_watch *w)
{
    struct etcd_client *c = w->c;
    char url[ETCD_URL_MAX + 32];
    snprintf(w->endpoint, sizeof(w->endpoint), "%s", c->eps[c->cur]);
    snprintf(url, sizeof(url), "%s%s/watch", w->endpoint, c->api);
    json_t *body = etcd_req_watch(w->prefix, w->next_rev, w->prev_kv);
    w->body = body ? etcd_json_dump(body) : NULL;
    json_decref(body);
    w->hdrs = etcd_http_headers(c, true);
    w->easy = curl_easy_init();
    bool ok = w->body && w->hdrs && w->easy && etcd_http_setup(c, w->easy);
    long idle_s = (long)(w->idle_ms / 1000) > 0 ? (long)(w->idle_ms / 1000) : 1;
    ok = ok && curl_easy_setopt(w->easy, CURLOPT_URL, url) == CURLE_OK &&
         curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->hdrs) == CURLE_OK &&
         curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->body) == CURLE_OK &&
         curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_write) == CURLE_OK &&
         curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w) == CURLE_OK &&
         curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK &&
         curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_TIME, idle_s) == CURLE_OK &&
         curl_multi_add_handle(w->multi, w->easy) == CURLM_OK;
    if (!ok) {
        log_error("cannot start the etcd watch stream", "endpoint=%s", w->endpoint);
        teardown_stream(w);
        return false;
    }
    return true;
}

static void connect_now(struct etcd_watch *w)
{
    if (w->lost) {
        handle_lost(w);
        return;
    }
    if (w->easy)
        return; /* already streaming */
    int rc = etcd_client_connect(w->c);
    if (rc == 0 && w->reauth && etcd_have_auth(w->c)) {
        rc = etcd_client_reauth(w->c);
        w->reauth = rc != 0;
    }
    if (rc != 0) {
        w->err = *etcd_last_error(w->c);
        report_down(w, w->err.message);
        return;
    }
    if (w->next_rev == 0 && !resync(w))
        return;
    if (!start_stream(w))
        report_down(w, "cannot start the watch stream");
}

static void on_retry(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct etcd_watch *w = arg;
    w->retry_timer = 0;
    w->depth++;
    connect_now(w);
    w->depth--;
    finish(w);
}

static void schedule_connect(struct etcd_watch *w, uint64_t delay_ms)
{
    if (w->retry_timer)
        loop_cancel_timer(w->l, w->retry_timer);
    w->retry_timer = loop_add_timer(w->l, delay_ms, 0, on_retry, w);
    if (!w->retry_timer)
        log_error("cannot schedule the etcd watch reconnect");
}

/* The client gave up on an endpoint (a unary call failed there): leave it too. */
static void on_client_failover(void *arg, const char *failed)
{
    struct etcd_watch *w = arg;
    if (w->easy && strcmp(failed, w->endpoint) == 0) {
        mark_lost(w, false, "endpoint failed");
        schedule_connect(w, 0);
    }
}

/* ---- public ---- */

struct etcd_watch *etcd_watch_new(struct etcd_client *c, struct loop *l,
                                  const struct etcd_watch_opts *o, etcd_watch_cb cb, void *arg)
{
    if (!c || !l || !o || !o->prefix || !cb || o->start_revision < 0) {
        log_error("bad etcd watch options");
        return NULL;
    }
    struct etcd_watch *w = calloc(1, sizeof(*w));
    if (!w)
        goto nomem;
    w->c = c;
    w->l = l;
    w->cb = cb;
    w->arg = arg;
    w->prev_kv = o->prev_kv;
    w->idle_ms = o->idle_reconnect_ms ? o->idle_reconnect_ms : DEFAULT_IDLE_MS;
    w->next_rev = o->start_revision;
    w->err.grpc_code = -1;
    etcd_stream_init(&w->stream, ETCD_MAX_WATCH_MSG, ETCD_MAX_WATCH_MSG + STREAM_SLACK);
    w->prefix = strdup(o->prefix);
    w->multi = curl_multi_init();
    if (!w->prefix || !w->multi)
        goto nomem;
    if (curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w) != CURLM_OK ||
        curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w) != CURLM_OK)
        goto nomem;
    if (!c->on_failover) {
        c->on_failover = on_client_failover;
        c->failover_arg = w;
    }
    schedule_connect(w, 0);
    if (!w->retry_timer)
        goto nomem;
    return w;
nomem:
    log_error("cannot create the etcd watch");
    etcd_watch_free(w);
    return NULL;
}

static void destroy(struct etcd_watch *w)
{
    teardown_stream(w);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->curl_timer)
        loop_cancel_timer(w->l, w->curl_timer);
    if (w->retry_timer)
        loop_cancel_timer(w->l, w->retry_timer);
    if (w->c->on_failover == on_client_failover && w->c->failover_arg == w) {
        w->c->on_failover = NULL;
        w->c->failover_arg = NULL;
    }
    etcd_stream_free(&w->stream);
    free(w->prefix);
    free(w);
}

static void finish(struct etcd_watch *w)
{
    if (w->freed && w->depth == 0)
        destroy(w);
}

void etcd_watch_free(struct etcd_watch *w)
{
    if (!w)
        return;
    w->freed = true;
    finish(w);
}

bool etcd_watch_is_up(const struct etcd_watch *w)
{
    return w->up;
}

int64_t etcd_watch_next_revision(const struct etcd_watch *w)
{
    return w->next_rev;
}

void etcd_watch_reconnect(struct etcd_watch *w)
{
    mark_lost(w, false, "reconnect requested");
    schedule_connect(w, 0);
}

const struct etcd_error *etcd_watch_error(const struct etcd_watch *w)
{
    return &w->err;
}
