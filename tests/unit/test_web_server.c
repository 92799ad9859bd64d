/* In-process tests of the REST server: MHD in our loop on a free 127.0.0.1 port, driven with raw
 * HTTP over sockets; commands answered by a fake ha (codes, bodies, limits, auth, waits). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/settings.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/net.h"
#include "web/auth.h"
#include "web/commands.h"
#include "web/events.h"
#include "web/routes.h"
#include "web/server.h"
#include "web/snapshot.h"

struct fx {
    struct loop *l;
    struct web_snapshot snap;
    struct web_cmds *cmds;
    struct web_events *events;
    struct web_auth *auth;
    struct web_server *srv;
    struct web_ctx ctx;
    struct pgw_web_settings ws;
    uint16_t port;
    char dir[64];
    /* the fake ha */
    int send_result;
    int ncmd;
    json_t *last_cmd;
};

struct http_resp {
    int status;
    char head[8192];
    char *body;
    size_t body_len;
};

static int fake_send(void *arg, uint16_t type, const void *payload, uint32_t len)
{
    struct fx *x = arg;
    assert_int_equal(type, MSG_COMMAND);
    if (x->send_result < 0)
        return x->send_result;
    json_decref(x->last_cmd);
    x->last_cmd = json_loadb(payload, len, 0, NULL);
    assert_non_null(x->last_cmd);
    x->ncmd++;
    return 0;
}

static void start_server(struct fx *x)
{
    int fd = net_listen_tcp("127.0.0.1", 0, 64);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    x->port = ntohs(a.sin_port);
    x->auth = web_auth_new(&x->ws);
    assert_non_null(x->auth);
    struct web_server_config sc = {.listen_fd = fd, .connection_timeout_s = 5};
    x->srv = web_server_new(x->l, &sc, &x->ctx, x->auth);
    assert_non_null(x->srv);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->l = loop_new();
    assert_non_null(x->l);
    web_snapshot_init(&x->snap);
    x->cmds = web_cmds_new(x->l, fake_send, x);
    snprintf(x->dir, sizeof(x->dir), "/tmp/pgw-web-test-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    x->events = web_events_new(x->dir);
    x->ws.session_timeout_ms = 30 * 60 * 1000;
    x->ctx = (struct web_ctx){.snap = &x->snap,
                              .cmds = x->cmds,
                              .events = x->events,
                              .reply_timeout_ms = 2000,
                              .restart_timeout_ms = 2000,
                              .switchover_wait_ms = 3000,
                              .now_boot_ms = clock_boot_ms};
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    web_server_free(x->srv);
    web_cmds_free(x->cmds);
    web_events_free(x->events);
    web_auth_free(x->auth);
    web_snapshot_clear(&x->snap);
    json_decref(x->last_cmd);
    loop_free(x->l);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

/* ---- crafted snapshots ---- */

static void set_status(struct fx *x, const char *role, const char *leader_name, const char *extra)
{
    char json[4096];
    uint64_t now = clock_boot_ms();
    bool primary = strcmp(role, "master") == 0;
    snprintf(json, sizeof(json),
             "{\"boot_ms\":%llu,\"wall_ms\":1700000000000,\"ttl_ms\":10000,"
             "\"loop_wait_ms\":1000,\"leader_until_boot_ms\":%llu,\"dcs_ok\":true,"
             "\"dcs_last_seen\":1700000000,\"paused\":false,\"sync_mode\":false,"
             "\"optime\":3145728,\"sync\":null,"
             "\"patroni\":{\"state\":\"running\",\"role\":\"%s\",\"server_version\":150004,"
             "\"timeline\":2,\"xlog\":%s,\"tags\":{\"dc\":\"east\"},"
             "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"demo\",\"name\":\"%s\"}},"
             "\"cluster\":{\"members\":[{\"name\":\"%s\",\"role\":\"leader\",\"state\":"
             "\"running\"},{\"name\":\"n2\",\"role\":\"replica\",\"state\":\"running\"}]},"
             "\"history\":[[1,25165984,\"no recovery target specified\"]],"
             "\"config\":{\"ttl\":10,\"loop_wait\":1}%s}",
             (unsigned long long)now, (unsigned long long)(primary ? now + 60000 : 0), role,
             primary ? "{\"location\":3145728}"
                     : "{\"received_location\":2097152,\"replayed_location\":2097152}",
             primary ? leader_name : "n2", leader_name, extra ? extra : "");
    assert_true(web_snapshot_set_status(&x->snap, json, strlen(json), now));
    web_cmds_on_status(x->cmds, x->snap.st);
}

/* ---- a tiny HTTP client over the loop ---- */

static int http_send(struct fx *x, const char *raw, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(x->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, raw + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EPIPE)
            break; /* the server answered early and closed */
        assert_true(n > 0);
        off += (size_t)n;
    }
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

/* Runs the loop until pred(x) or timeout; returns pred's last value. */
static bool pump_until(struct fx *x, bool (*pred)(struct fx *), int timeout_ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    while (!pred(x) && clock_mono_ms() < end)
        loop_run_once(x->l, 5);
    return pred(x);
}

static bool got_cmd(struct fx *x)
{
    return x->ncmd > 0;
}

/* Reads the whole answer (the request asked for Connection: close), pumping the loop. */
static void http_recv(struct fx *x, int fd, struct http_resp *r, int timeout_ms)
{
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t len = 0;
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        ssize_t n = recv(fd, buf + len, (1 << 20) - 1 - len, 0);
        if (n == 0)
            break;
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (errno == ECONNRESET)
            break;
        assert_true(errno == EAGAIN);
        assert_true(clock_mono_ms() < end);
        loop_run_once(x->l, 5);
    }
    close(fd);
    buf[len] = '\0';
    memset(r, 0, sizeof(*r));
    assert_true(len > 12);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    size_t hl = (size_t)(sep - buf) + 2;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    r->body_len = len - hl - 2;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
}

static int http_start(struct fx *x, const char *method, const char *path, const char *headers,
                      const char *body)
{
    char raw[70000];
    int n;
    if (body)
        n = snprintf(raw, sizeof(raw),
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%sContent-Length: "
                     "%zu\r\n\r\n%s",
                     method, path, headers ? headers : "", strlen(body), body);
    else
        n = snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n",
                     method, path, headers ? headers : "");
    assert_true(n > 0 && (size_t)n < sizeof(raw));
    return http_send(x, raw, (size_t)n);
}

static int http(struct fx *x, const char *method, const char *path, const char *headers,
                const char *body, struct http_resp *r)
{
    int fd = http_start(x, method, path, headers, body);
    http_recv(x, fd, r, 5000);
    return r->status;
}

static void resp_free(struct http_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* The value of a response header (case-insensitive name), or NULL. */
static const char *header(struct http_resp *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        char *line = p + 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ')
                v++;
            char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= cap)
                l = cap - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

static void expect(struct fx *x, const char *method, const char *path, int code)
{
    struct http_resp r;
    int got = http(x, method, path, NULL, NULL, &r);
    if (got != code)
        fail_msg("%s %s: expected %d, got %d (%s)", method, path, code, got, r.body);
    resp_free(&r);
}

/* The "error" member of a JSON error body. */
static void expect_json_error(struct http_resp *r)
{
    char ct[128];
    assert_non_null(header(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    assert_non_null(j);
    assert_non_null(json_string_value(json_object_get(j, "error")));
    json_decref(j);
}

/* ---- tests ---- */

static void test_leader_endpoints(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    static const char *const ok[] = {"/",          "/primary",   "/master",         "/read-write",
                                     "/leader",    "/read-only", "/health",         "/liveness",
                                     "/readiness", "/patroni",   "/cluster",        "/history",
                                     "/config",    "/metrics",   "/read-only-sync", "/primary/"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        expect(x, "GET", ok[i], 200);
    static const char *const bad[] = {"/replica",       "/sync",         "/synchronous",
                                      "/async",         "/asynchronous", "/standby-leader",
                                      "/standby_leader"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(x, "GET", bad[i], 503);
    /* The health body is /patroni's. */
    struct http_resp r;
    assert_int_equal(http(x, "GET", "/primary", NULL, NULL, &r), 200);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "master");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
    json_decref(j);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/replica", NULL, NULL, &r), 503);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "master");
    json_decref(j);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/cluster", NULL, NULL, &r), 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
    json_decref(j);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/history", NULL, NULL, &r), 200);
    assert_string_equal(r.body, "[[1,25165984,\"no recovery target specified\"]]");
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/config", NULL, NULL, &r), 200);
    assert_string_equal(r.body, "{\"ttl\":10,\"loop_wait\":1}");
    resp_free(&r);
}

static void test_head_options(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    assert_int_equal(http(x, "HEAD", "/primary", NULL, NULL, &r), 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    assert_int_equal(http(x, "OPTIONS", "/primary", NULL, NULL, &r), 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    assert_int_equal(http(x, "OPTIONS", "/", NULL, NULL, &r), 200);
    resp_free(&r);
    expect(x, "OPTIONS", "/replica", 503);
    expect(x, "HEAD", "/replica", 503);
    expect(x, "OPTIONS", "/read-only", 200);
    char allow[128];
    assert_int_equal(http(x, "OPTIONS", "/switchover", NULL, NULL, &r), 200);
    assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "OPTIONS, POST, DELETE");
    resp_free(&r);
}

static void test_replica_endpoints(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "replica", "n1", NULL); /* 1 MiB behind the leader */
    expect(x, "GET", "/primary", 503);
    expect(x, "GET", "/leader", 503);
    expect(x, "GET", "/replica", 200);
    expect(x, "GET", "/replica?lag=2MB", 200);
    expect(x, "GET", "/replica?lag=1MB", 200);
    expect(x, "GET", "/replica?lag=1023kB", 503);
    expect(x, "GET", "/replica?lag=100", 503);
    expect(x, "GET", "/replica?lag=bogus", 200); /* Patroni: unparsable means no limit */
    expect(x, "GET", "/replica?tag_dc=east", 200);
    expect(x, "GET", "/replica?tag_dc=west", 503);
    expect(x, "GET", "/replica?tag_rack=1", 503);
    expect(x, "GET", "/read-only?lag=10MB&tag_dc=east", 200);
    expect(x, "GET", "/async", 200);
    expect(x, "GET", "/sync", 503);
    expect(x, "GET", "/health", 200);
    expect(x, "GET", "/liveness", 200);
    expect(x, "GET", "/readiness", 200);
}

static void test_without_status(void **state)
{
    struct fx *x = *state;
    start_server(x);
    struct http_resp r;
    assert_int_equal(http(x, "GET", "/primary", NULL, NULL, &r), 503);
    assert_string_equal(r.body, "{\"state\":\"unknown\",\"role\":\"unknown\"}");
    resp_free(&r);
    expect(x, "GET", "/liveness", 503);
    expect(x, "GET", "/readiness", 503);
    expect(x, "GET", "/health", 503);
    expect(x, "GET", "/patroni", 503);
    assert_int_equal(http(x, "GET", "/cluster", NULL, NULL, &r), 503);
    expect_json_error(&r);
    resp_free(&r);
    expect(x, "GET", "/metrics", 200);
    /* A switchover needs the current leader from a snapshot. */
    assert_int_equal(http(x, "POST", "/switchover", NULL, "{\"leader\":\"n1\"}", &r), 503);
    resp_free(&r);
    assert_int_equal(x->ncmd, 0);
}

static void test_errors(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    char allow[128];
    assert_int_equal(http(x, "GET", "/nope", NULL, NULL, &r), 404);
    expect_json_error(&r);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/../../etc/passwd", NULL, NULL, &r), 404);
    expect_json_error(&r);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/primary/../cluster", NULL, NULL, &r), 404);
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/primary", NULL, "{}", &r), 405);
    expect_json_error(&r);
    assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD, OPTIONS");
    resp_free(&r);
    assert_int_equal(http(x, "PUT", "/switchover", NULL, "{}", &r), 405);
    assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "OPTIONS, POST, DELETE");
    resp_free(&r);
    assert_int_equal(http(x, "DELETE", "/config", NULL, NULL, &r), 405);
    assert_non_null(header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD, OPTIONS, PATCH, PUT");
    resp_free(&r);
    assert_int_equal(http(x, "BREW", "/primary", NULL, NULL, &r), 405);
    resp_free(&r);
    /* Bad JSON, wrong types, deep nesting, missing Content-Length. */
    assert_int_equal(http(x, "POST", "/switchover", NULL, "{\"leader\":", &r), 400);
    expect_json_error(&r);
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/switchover", NULL, "[\"n1\"]", &r), 400);
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/switchover", NULL, "{\"leader\":7}", &r), 400);
    resp_free(&r);
    char deep[200];
    memset(deep, '[', 99);
    memset(deep + 99, ']', 99);
    deep[198] = '\0';
    char body[256];
    snprintf(body, sizeof(body), "{\"a\":%s}", deep);
    assert_int_equal(http(x, "PATCH", "/config", NULL, body, &r), 400);
    expect_json_error(&r);
    resp_free(&r);
    assert_int_equal(http(x, "PATCH", "/config", NULL, NULL, &r), 411);
    expect_json_error(&r);
    resp_free(&r);
    assert_int_equal(x->ncmd, 0);
    /* Too many query parameters. */
    char path[1024] = "/primary?";
    for (int i = 0; i < 40; i++)
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "a%d=1&", i);
    assert_int_equal(http(x, "GET", path, NULL, NULL, &r), 400);
    expect_json_error(&r);
    resp_free(&r);
}

static void test_size_limits(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    /* A declared body above 64 KiB is refused before it is read. */
    int fd = http_send(x,
                       "PATCH /config HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       "Content-Length: 1000000\r\n\r\n{",
                       strlen("PATCH /config HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                              "Content-Length: 1000000\r\n\r\n{"));
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 413);
    expect_json_error(&r);
    resp_free(&r);
    /* A chunked body that grows above the cap. */
    char *big = malloc(70 * 1024);
    memset(big, ' ', 70 * 1024 - 1);
    big[0] = '{';
    big[70 * 1024 - 2] = '}';
    big[70 * 1024 - 1] = '\0';
    char *raw = malloc(80 * 1024);
    int n = snprintf(raw, 80 * 1024,
                     "PATCH /config HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     strlen(big), big);
    fd = http_send(x, raw, (size_t)n);
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    /* Headers above the per-connection memory: MHD answers 431 itself. */
    char *hdr = malloc(24 * 1024);
    snprintf(hdr, 24 * 1024, "X-Big: %0*d\r\n", 20 * 1024, 0);
    assert_int_equal(http(x, "GET", "/primary", hdr, NULL, &r), 431);
    resp_free(&r);
    free(hdr);
    free(raw);
    free(big);
    assert_int_equal(x->ncmd, 0);
    expect(x, "GET", "/primary", 200); /* still serving */
}

/* Starts a request, waits for its command, answers it as ha with status/body. */
static void command_roundtrip(struct fx *x, const char *method, const char *path, const char *body,
                              const char *expect_op, int status, const char *reply_body,
                              struct http_resp *r)
{
    x->ncmd = 0;
    int fd = http_start(x, method, path, NULL, body);
    assert_true(pump_until(x, got_cmd, 5000));
    assert_string_equal(json_string_value(json_object_get(x->last_cmd, "op")), expect_op);
    json_int_t id = json_integer_value(json_object_get(x->last_cmd, "id"));
    assert_true(id > 0);
    char reply[1024];
    int n = snprintf(reply, sizeof(reply), "{\"id\":%lld,\"status\":%d,\"body\":%s}", (long long)id,
                     status, reply_body);
    web_cmds_on_reply(x->cmds, reply, (size_t)n);
    http_recv(x, fd, r, 5000);
}

static void test_commands(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    char ct[128];
    command_roundtrip(x, "POST", "/reload", NULL, "reload", 202, "\"reload scheduled\"", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "reload scheduled");
    assert_non_null(header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "text/plain; charset=utf-8");
    resp_free(&r);
    command_roundtrip(x, "PATCH", "/config", "{\"ttl\":20,\"pause\":null}", "config_patch", 200,
                      "{\"ttl\":20}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ttl\":20}");
    json_t *patch = json_object_get(x->last_cmd, "patch");
    assert_int_equal(json_integer_value(json_object_get(patch, "ttl")), 20);
    assert_true(json_is_null(json_object_get(patch, "pause")));
    resp_free(&r);
    command_roundtrip(x, "PUT", "/config", "{\"ttl\":30}", "config_put", 409,
                      "\"Config changed meanwhile\"", &r);
    assert_int_equal(r.status, 409);
    resp_free(&r);
    command_roundtrip(x, "POST", "/restart", "{\"role\":\"primary\",\"timeout\":30}", "restart",
                      200, "\"restarted successfully\"", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(x->last_cmd, "role")), "primary");
    resp_free(&r);
    command_roundtrip(x, "DELETE", "/restart", NULL, "restart_cancel", 404,
                      "\"no restart is scheduled\"", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    command_roundtrip(x, "POST", "/reinitialize", "{\"force\":true}", "reinitialize", 503,
                      "\"I am the leader, can not reinitialize\"", &r);
    assert_int_equal(r.status, 503);
    assert_true(json_is_true(json_object_get(x->last_cmd, "force")));
    resp_free(&r);
    command_roundtrip(x, "DELETE", "/switchover", NULL, "switchover_cancel", 404,
                      "\"no switchover is scheduled\"", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* Bad restart filters never reach ha. */
    x->ncmd = 0;
    assert_int_equal(http(x, "POST", "/restart", NULL, "{\"colour\":1}", &r), 400);
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/restart", NULL, "{\"role\":\"boss\"}", &r), 400);
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/reinitialize", NULL, "{\"force\":\"yes\"}", &r), 400);
    resp_free(&r);
    assert_int_equal(x->ncmd, 0);
    assert_int_equal(web_cmds_pending(x->cmds), 0);
}

static void test_command_timeout_and_send_failure(void **state)
{
    struct fx *x = *state;
    x->ctx.reply_timeout_ms = 200;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    assert_int_equal(http(x, "POST", "/reload", NULL, NULL, &r), 503);
    assert_string_equal(r.body, "{\"error\":\"ha did not answer\"}");
    resp_free(&r);
    assert_int_equal(web_cmds_pending(x->cmds), 0);
    /* A late reply is ignored. */
    char reply[128];
    int n = snprintf(reply, sizeof(reply), "{\"id\":%lld,\"status\":202,\"body\":\"x\"}",
                     (long long)json_integer_value(json_object_get(x->last_cmd, "id")));
    web_cmds_on_reply(x->cmds, reply, (size_t)n);
    web_cmds_on_reply(x->cmds, "garbage", 7);
    x->send_result = -EPIPE;
    assert_int_equal(http(x, "POST", "/reload", NULL, NULL, &r), 503);
    assert_string_equal(r.body, "{\"error\":\"ha is not reachable\"}");
    resp_free(&r);
    x->send_result = -EAGAIN;
    assert_int_equal(http(x, "POST", "/reload", NULL, NULL, &r), 503);
    assert_string_equal(r.body, "{\"error\":\"ha is busy\"}");
    resp_free(&r);
}

static void test_switchover_validation(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    assert_int_equal(http(x, "POST", "/failover", NULL, "{}", &r), 400);
    assert_string_equal(r.body, "Failover could be performed only to a specific candidate");
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/switchover", NULL, "{\"candidate\":\"n2\"}", &r), 400);
    assert_string_equal(r.body, "Switchover could be performed only from a specific leader");
    resp_free(&r);
    assert_int_equal(
        http(x, "POST", "/switchover", NULL, "{\"leader\":\"n1\",\"candidate\":\"n1\"}", &r), 400);
    assert_string_equal(r.body, "Switchover target and source are the same");
    resp_free(&r);
    assert_int_equal(x->ncmd, 0);
    set_status(x, "master", "n1", ",\"paused\":true");
    assert_true(x->snap.st->paused);
    assert_int_equal(http(x, "POST", "/switchover", NULL, "{\"leader\":\"n1\"}", &r), 400);
    assert_string_equal(r.body,
                        "Switchover is possible only to a specific candidate in a paused state");
    resp_free(&r);
    assert_int_equal(http(x, "POST", "/switchover", NULL,
                          "{\"leader\":\"n1\",\"candidate\":\"n2\",\"scheduled_at\":"
                          "\"2030-01-01T00:00:00+00:00\"}",
                          &r),
                     400);
    assert_string_equal(r.body, "Can't schedule switchover in the paused state");
    resp_free(&r);
    assert_int_equal(x->ncmd, 0);
}

static void test_switchover_waits_for_leader(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    /* ha accepts; web waits for a snapshot with another leader. */
    int fd = http_start(x, "POST", "/switchover", NULL, "{\"leader\":\"n1\",\"candidate\":\"n2\"}");
    assert_true(pump_until(x, got_cmd, 5000));
    assert_false(json_is_true(json_object_get(x->last_cmd, "failover")));
    assert_string_equal(json_string_value(json_object_get(x->last_cmd, "candidate")), "n2");
    char reply[256];
    int n = snprintf(reply, sizeof(reply),
                     "{\"id\":%lld,\"status\":200,\"body\":{\"scheduled\":false}}",
                     (long long)json_integer_value(json_object_get(x->last_cmd, "id")));
    web_cmds_on_reply(x->cmds, reply, (size_t)n);
    for (int i = 0; i < 20; i++)
        loop_run_once(x->l, 5);
    assert_int_equal(web_cmds_pending(x->cmds), 1);
    set_status(x, "master", "n1", NULL); /* no change yet */
    assert_int_equal(web_cmds_pending(x->cmds), 1);
    set_status(x, "replica", "n2", NULL);
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Successfully switched over to \"n2\"");
    resp_free(&r);

    /* A failover that ends on another member than asked. */
    x->ncmd = 0;
    fd = http_start(x, "POST", "/failover", NULL, "{\"candidate\":\"n3\"}");
    assert_true(pump_until(x, got_cmd, 5000));
    assert_true(json_is_true(json_object_get(x->last_cmd, "failover")));
    n = snprintf(reply, sizeof(reply),
                 "{\"id\":%lld,\"status\":200,\"body\":{\"scheduled\":false}}",
                 (long long)json_integer_value(json_object_get(x->last_cmd, "id")));
    web_cmds_on_reply(x->cmds, reply, (size_t)n);
    set_status(x, "replica", "n4", NULL);
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "Failed over to \"n4\" instead of \"n3\"");
    resp_free(&r);

    /* Scheduled: ha's 202 is the answer. */
    command_roundtrip(x, "POST", "/switchover",
                      "{\"leader\":\"n4\",\"scheduled_at\":\"2030-01-01T00:00:00+00:00\"}",
                      "switchover", 202, "\"Switchover scheduled\"", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "Switchover scheduled");
    resp_free(&r);

    /* ha refuses: its code and text are relayed. */
    command_roundtrip(x, "POST", "/switchover", "{\"leader\":\"n9\"}", "switchover", 412,
                      "\"leader name does not match\"", &r);
    assert_int_equal(r.status, 412);
    assert_string_equal(r.body, "leader name does not match");
    resp_free(&r);
}

static void test_switchover_failed_and_unknown(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", ",\"failover\":null");
    struct http_resp r;
    command_roundtrip(x, "POST", "/switchover", "{\"leader\":\"n1\"}", "switchover", 200,
                      "{\"scheduled\":false}", &r);
    /* command_roundtrip's recv would wait; this one answers through snapshots instead. */
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "Switchover status unknown");
    resp_free(&r);
    /* The failover key appears, then vanishes without a leader change. */
    x->ncmd = 0;
    int fd = http_start(x, "POST", "/switchover", NULL, "{\"leader\":\"n1\"}");
    assert_true(pump_until(x, got_cmd, 5000));
    char reply[256];
    int n = snprintf(reply, sizeof(reply),
                     "{\"id\":%lld,\"status\":200,\"body\":{\"scheduled\":false}}",
                     (long long)json_integer_value(json_object_get(x->last_cmd, "id")));
    web_cmds_on_reply(x->cmds, reply, (size_t)n);
    set_status(x, "master", "n1", ",\"failover\":{\"leader\":\"n1\"}");
    set_status(x, "master", "n1", ",\"failover\":null");
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "Switchover failed");
    resp_free(&r);
}

static void test_auth(void **state)
{
    struct fx *x = *state;
    char hash[WEB_AUTH_HASH_LINE_MAX];
    assert_int_equal(web_auth_hash_password("s3cret", WEB_AUTH_ITER_MIN, hash, sizeof(hash)), 0);
    snprintf(x->ws.users, sizeof(x->ws.users), "alice:admin:%s,bob:readonly:%s", hash, hash);
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    char v[128];
    assert_int_equal(http(x, "POST", "/reload", NULL, NULL, &r), 401);
    assert_non_null(header(&r, "WWW-Authenticate", v, sizeof(v)));
    assert_string_equal(v, "Basic realm=\"pgwarden\"");
    expect_json_error(&r);
    resp_free(&r);
    /* alice:wrong */
    assert_int_equal(
        http(x, "POST", "/reload", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n", NULL, &r), 401);
    resp_free(&r);
    /* Repeated failures from one address: 429 (the auth module's limit). */
    int limited = 0;
    for (int i = 0; i < WEB_AUTH_RL_BURST + 2; i++) {
        http(x, "POST", "/reload", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n", NULL, &r);
        assert_true(r.status == 401 || r.status == 429);
        if (r.status == 429) {
            expect_json_error(&r);
            limited++;
        }
        resp_free(&r);
    }
    assert_true(limited > 0);
    web_auth_free(x->auth); /* a fresh limiter for the rest */
    x->auth = NULL;
    web_server_free(x->srv);
    start_server(x);
    /* bob:s3cret is read-only */
    assert_int_equal(
        http(x, "POST", "/reload", "Authorization: Basic Ym9iOnMzY3JldA==\r\n", NULL, &r), 403);
    resp_free(&r);
    assert_int_equal(x->ncmd, 0);
    /* GET needs nothing. */
    expect(x, "GET", "/primary", 200);
    /* alice:s3cret */
    x->ncmd = 0;
    int fd = http_start(x, "POST", "/reload", "Authorization: Basic YWxpY2U6czNjcmV0\r\n", NULL);
    assert_true(pump_until(x, got_cmd, 5000));
    assert_string_equal(json_string_value(json_object_get(x->last_cmd, "user")), "alice");
    char reply[128];
    int n =
        snprintf(reply, sizeof(reply), "{\"id\":%lld,\"status\":202,\"body\":\"reload scheduled\"}",
                 (long long)json_integer_value(json_object_get(x->last_cmd, "id")));
    web_cmds_on_reply(x->cmds, reply, (size_t)n);
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 202);
    resp_free(&r);
}

static void test_events(void **state)
{
    struct fx *x = *state;
    char err[256];
    struct store *st = store_open(x->dir, err, sizeof(err));
    assert_non_null(st);
    assert_true(
        store_event_add(st, 1700000000000, "role_change", "n1", 3, "{\"to\":\"master\"}", NULL));
    assert_true(store_event_add(st, 1700000001000, "failover", "n2", 4, NULL, NULL));
    assert_true(
        store_event_add(st, 1700000002000, "role_change", "n2", 4, "{\"to\":\"replica\"}", NULL));
    store_close(st);
    start_server(x);
    struct http_resp r;
    assert_int_equal(http(x, "GET", "/events", NULL, NULL, &r), 200);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    json_t *evs = json_object_get(j, "events");
    assert_int_equal(json_array_size(evs), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "id")), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 2), "ts")),
                        "2023-11-14T22:13:20+00:00");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(evs, 2), "detail"), "to")),
        "master");
    json_decref(j);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/events?limit=1&kind=role_change", NULL, NULL, &r), 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    evs = json_object_get(j, "events");
    assert_int_equal(json_array_size(evs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "id")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "next_before")), 3);
    json_decref(j);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/events?since=1", NULL, NULL, &r), 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 2);
    json_decref(j);
    resp_free(&r);
    assert_int_equal(http(x, "GET", "/events?before=3&kind=role_change", NULL, NULL, &r), 200);
    j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
    json_decref(j);
    resp_free(&r);
    static const char *const bad[] = {"/events?limit=0", "/events?limit=abc", "/events?limit=1001",
                                      "/events?since=-1", "/events?kind="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(http(x, "GET", bad[i], NULL, NULL, &r), 400);
        expect_json_error(&r);
        resp_free(&r);
    }
}

static void test_metrics_endpoint(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    char ct[128];
    assert_int_equal(http(x, "GET", "/metrics", NULL, NULL, &r), 200);
    assert_non_null(header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "patroni_primary{scope=\"demo\",name=\"n1\"} 1\n"));
    resp_free(&r);
}

static void test_plain_connection_seam(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(
        web_server_add_plain_connection(x->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
    const char req[] = "GET /primary HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(sv[1], req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    struct http_resp r;
    http_recv(x, sv[1], &r, 5000);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* Unsafe requests through the seam see the peer address (loopback: allowed, no users). */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(
        web_server_add_plain_connection(x->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
    const char post[] = "POST /reload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(sv[1], post, sizeof(post) - 1), (ssize_t)(sizeof(post) - 1));
    x->ncmd = 0;
    assert_true(pump_until(x, got_cmd, 5000));
    close(sv[1]);
    /* Non-loopback peer and no users: 403. */
    peer.sin_addr.s_addr = htonl(0x0a000001);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(
        web_server_add_plain_connection(x->srv, sv[0], (struct sockaddr *)&peer, sizeof(peer)), 0);
    assert_int_equal(write(sv[1], post, sizeof(post) - 1), (ssize_t)(sizeof(post) - 1));
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    http_recv(x, sv[1], &r, 5000);
    assert_int_equal(r.status, 403);
    resp_free(&r);
}

static bool never_verified(void *arg, int fd)
{
    int *calls = arg;
    (*calls)++;
    return fd < 0;
}

static void test_client_certificate_required(void **state)
{
    struct fx *x = *state;
    int fd = net_listen_tcp("127.0.0.1", 0, 64);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    x->port = ntohs(a.sin_port);
    x->auth = web_auth_new(&x->ws);
    int calls = 0;
    struct web_server_config sc = {
        .listen_fd = fd, .client_verified = never_verified, .client_verified_arg = &calls};
    x->srv = web_server_new(x->l, &sc, &x->ctx, x->auth);
    assert_non_null(x->srv);
    set_status(x, "master", "n1", NULL);
    struct http_resp r;
    assert_int_equal(http(x, "POST", "/reload", NULL, NULL, &r), 403);
    expect_json_error(&r);
    resp_free(&r);
    assert_int_equal(calls, 1);
    expect(x, "GET", "/primary", 200); /* safe endpoints need no certificate */
    assert_int_equal(calls, 1);
    assert_int_equal(x->ncmd, 0);
}

static void test_client_gone_while_pending(void **state)
{
    struct fx *x = *state;
    x->ctx.reply_timeout_ms = 300;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    int fd = http_start(x, "POST", "/reload", NULL, NULL);
    assert_true(pump_until(x, got_cmd, 5000));
    close(fd);
    for (int i = 0; i < 100 && web_cmds_pending(x->cmds) > 0; i++)
        loop_run_once(x->l, 10);
    assert_int_equal(web_cmds_pending(x->cmds), 0);
    expect(x, "GET", "/primary", 200);
    /* Shutdown with a request still waiting answers it. */
    x->ctx.reply_timeout_ms = 60000;
    x->ncmd = 0;
    fd = http_start(x, "POST", "/reload", NULL, NULL);
    assert_true(pump_until(x, got_cmd, 5000));
    web_server_free(x->srv);
    x->srv = NULL;
    assert_int_equal(web_cmds_pending(x->cmds), 0);
    close(fd);
}

static void test_keepalive(void **state)
{
    struct fx *x = *state;
    start_server(x);
    set_status(x, "master", "n1", NULL);
    const char two[] = "GET /primary HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /replica HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int fd = http_send(x, two, sizeof(two) - 1);
    struct http_resp r;
    http_recv(x, fd, &r, 5000);
    assert_int_equal(r.status, 200);
    if (!strstr(r.body, "HTTP/1.1 503"))
        fail_msg("second answer missing: %s %s", r.head, r.body);
    resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leader_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout_and_send_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switchover_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switchover_waits_for_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switchover_failed_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_connection_seam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_certificate_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
