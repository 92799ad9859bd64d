/* Unit tests of web/dash*: embedded assets (ETag, gzip), login/logout/session, state, samples. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/settings.h"
#include "agent/store.h"
#include "platform/log.h"
#include "web/auth.h"
#include "web/dash.h"
#include "web/routes.h"
#include "tmpdir_fixture.h"

static uint64_t fixed_boot(void)
{
    return 100000;
}

struct env {
    struct pgw_web_settings s;
    struct web_auth *a;
    struct web_snapshot snap;
    struct web_ctx ctx;
    struct sockaddr_in peer;
    char dir[TMPDIR_CAP];
    struct web_dash *dash;
};

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char h1[WEB_AUTH_HASH_LINE_MAX], h2[WEB_AUTH_HASH_LINE_MAX];
    assert_int_equal(web_auth_hash_password("adminpw", 1000, h1, sizeof(h1)), 0);
    assert_int_equal(web_auth_hash_password("viewpw", 1000, h2, sizeof(h2)), 0);
    snprintf(e->s.users, sizeof(e->s.users), "alice:admin:%s,bob:readonly:%s", h1, h2);
    e->s.session_timeout_ms = 30 * 60 * 1000;
    e->a = web_auth_new(&e->s);
    assert_non_null(e->a);
    web_snapshot_init(&e->snap);
    tmpdir_make(e->dir, "pgw-dash");
    e->dash = web_dash_new(e->dir);
    e->ctx = (struct web_ctx){
        .snap = &e->snap, .now_boot_ms = fixed_boot, .auth = e->a, .dash = e->dash};
    e->peer.sin_family = AF_INET;
    e->peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    web_dash_free(e->dash);
    web_snapshot_clear(&e->snap);
    web_auth_free(e->a);
    tmpdir_remove(e->dir);
    free(e);
    return 0;
}

static struct web_request req(struct env *e, enum web_method m, const char *path)
{
    return (struct web_request){
        .method = m, .path = path, .peer = (const struct sockaddr *)&e->peer, .user = ""};
}

static json_t *body_json(const struct web_resp *r)
{
    json_t *v = json_loadb(r->body, r->len, 0, NULL);
    assert_non_null(v);
    return v;
}

/* ---- header helpers ---- */

static void test_etag_match(void **state)
{
    (void)state;
    assert_true(web_dash_etag_match("\"abc\"", "\"abc\""));
    assert_true(web_dash_etag_match("\"x\", \"abc\"", "\"abc\""));
    assert_true(web_dash_etag_match("W/\"abc\"", "\"abc\""));
    assert_true(web_dash_etag_match("*", "\"abc\""));
    assert_false(web_dash_etag_match("\"abcd\"", "\"abc\""));
    assert_false(web_dash_etag_match("", "\"abc\""));
    assert_false(web_dash_etag_match(NULL, "\"abc\""));
}

static void test_accepts_gzip(void **state)
{
    (void)state;
    assert_true(web_dash_accepts_gzip("gzip, deflate, br"));
    assert_true(web_dash_accepts_gzip("br;q=1.0, GZIP;q=0.5"));
    assert_true(web_dash_accepts_gzip("*"));
    assert_false(web_dash_accepts_gzip("gzip;q=0"));
    assert_false(web_dash_accepts_gzip("gzip;q=0.000"));
    assert_false(web_dash_accepts_gzip("identity"));
    assert_false(web_dash_accepts_gzip("xgzip"));
    assert_false(web_dash_accepts_gzip(NULL));
}

/* ---- assets ---- */

static void test_assets_embedded(void **state)
{
    (void)state;
    size_t total = 0;
    const char *need[] = {"index.html", "login.html", "app.js", "app.css"};
    for (size_t i = 0; i < 4; i++) {
        const struct web_asset *a = web_dash_asset(need[i]);
        assert_non_null(a);
        assert_true(a->len > 100);
        assert_true(a->etag[0] == '"' && a->etag[strlen(a->etag) - 1] == '"');
    }
    for (size_t i = 0; i < web_assets_count; i++)
        total += web_assets[i].len + web_assets[i].gz_len;
    assert_true(total < 150 * 1024); /* the budget, raw plus gzip */
    assert_null(web_dash_asset("nope.js"));
    /* no external scripts, fonts or styles */
    for (size_t i = 0; i < web_assets_count; i++) {
        const struct web_asset *a = &web_assets[i];
        assert_null(memmem(a->data, a->len, "src=\"http", 9));
        assert_null(memmem(a->data, a->len, "href=\"http", 10));
        assert_null(memmem(a->data, a->len, "@import", 7));
    }
}

static void test_serve_asset(void **state)
{
    struct env *e = *state;
    struct web_resp out = {0};
    struct web_request rq = req(e, WEB_GET, "/ui/");
    web_dash_handle(&e->ctx, &rq, &out);
    const struct web_asset *idx = web_dash_asset("index.html");
    assert_int_equal(out.status, 200);
    assert_string_equal(out.ctype, "text/html; charset=utf-8");
    assert_true(out.body_static && out.len == idx->len);
    assert_null(out.encoding);
    assert_true(out.page_headers);
    assert_string_equal(out.etag, idx->etag);
    web_resp_clear(&out);

    rq = req(e, WEB_GET, "/ui/app.js");
    rq.accept_encoding = "gzip";
    web_dash_handle(&e->ctx, &rq, &out);
    const struct web_asset *js = web_dash_asset("app.js");
    assert_int_equal(out.status, 200);
    assert_non_null(js->gz);
    assert_string_equal(out.encoding, "gzip");
    assert_int_equal(out.len, js->gz_len);
    assert_memory_equal(out.body, "\x1f\x8b", 2);
    web_resp_clear(&out);

    rq = req(e, WEB_GET, "/ui/app.css");
    rq.if_none_match = web_dash_asset("app.css")->etag;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 304);
    assert_null(out.body);
    web_resp_clear(&out);

    const char *bad[] = {"/ui/nope.js", "/ui/../etc/passwd", "/ui/.hidden", "/ui/a/b"};
    for (size_t i = 0; i < 4; i++) {
        rq = req(e, WEB_GET, bad[i]);
        web_dash_handle(&e->ctx, &rq, &out);
        assert_int_equal(out.status, 404);
        web_resp_clear(&out);
    }
    rq = req(e, WEB_POST, "/ui/app.js");
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 405);
    web_resp_clear(&out);
}

static void test_routes(void **state)
{
    (void)state;
    const struct web_route *ui = web_route_find("/ui");
    assert_non_null(ui);
    assert_true(web_route_self_auth(ui));
    assert_ptr_equal(web_route_find("/ui/"), ui);
    assert_ptr_equal(web_route_find("/ui/api/state"), ui);
    assert_null(web_route_find("/uix"));
    assert_false(web_route_self_auth(web_route_find("/switchover")));
    assert_false(web_route_self_auth(web_route_find("/")));
}

/* ---- login, session, logout ---- */

static char *cookie_of(const struct web_resp *r, const char *name, char *out, size_t cap)
{
    assert_non_null(r->cookies);
    char want[64];
    snprintf(want, sizeof(want), "%s=", name);
    const char *p = strstr(r->cookies, want);
    assert_non_null(p);
    p += strlen(want);
    size_t n = strcspn(p, ";\n");
    snprintf(out, cap, "%.*s", (int)n, p);
    return out;
}

static int do_login(struct env *e, const char *body, struct web_resp *out)
{
    struct web_request rq = req(e, WEB_POST, "/ui/api/login");
    rq.body = body;
    rq.body_len = strlen(body);
    rq.origin = "http://127.0.0.1:8008";
    rq.host = "127.0.0.1:8008";
    web_dash_handle(&e->ctx, &rq, out);
    return out->status;
}

static void test_login_flow(void **state)
{
    struct env *e = *state;
    struct web_resp out = {0};
    assert_int_equal(do_login(e, "{\"user\":\"alice\",\"password\":\"wrong\"}", &out), 401);
    assert_null(out.cookies);
    web_resp_clear(&out);
    assert_int_equal(do_login(e, "{\"user\":\"alice\"}", &out), 400);
    web_resp_clear(&out);
    assert_int_equal(do_login(e, "not json", &out), 400);
    web_resp_clear(&out);

    assert_int_equal(do_login(e, "{\"user\":\"alice\",\"password\":\"adminpw\"}", &out), 200);
    assert_non_null(strstr(out.cookies, "pgw_session="));
    assert_non_null(strstr(out.cookies, "HttpOnly; SameSite=Strict"));
    assert_null(strstr(out.cookies, "Secure"));
    char sess[64], csrf[64], cookie[160];
    cookie_of(&out, WEB_AUTH_COOKIE, sess, sizeof(sess));
    cookie_of(&out, WEB_DASH_CSRF_COOKIE, csrf, sizeof(csrf));
    assert_int_equal(strlen(sess), WEB_AUTH_TOKEN_LEN);
    json_t *j = body_json(&out);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "admin");
    assert_string_equal(json_string_value(json_object_get(j, "csrf")), csrf);
    json_decref(j);
    web_resp_clear(&out);
    snprintf(cookie, sizeof(cookie), "pgw_csrf=%s; pgw_session=%s", csrf, sess);

    /* the session identifies the user and role; a write with its token passes the API check */
    struct web_request rq = req(e, WEB_GET, "/ui/api/session");
    rq.cookie = cookie;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 200);
    j = body_json(&out);
    assert_string_equal(json_string_value(json_object_get(j, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "admin");
    json_decref(j);
    web_resp_clear(&out);
    char u[WEB_AUTH_USER_MAX];
    assert_int_equal(web_auth_check_csrf(e->a, rq.peer, NULL, cookie, csrf, true, u, sizeof(u)),
                     WEB_AUTH_OK);
    assert_int_equal(web_auth_check_csrf(e->a, rq.peer, NULL, cookie, NULL, true, u, sizeof(u)),
                     WEB_AUTH_FORBIDDEN);

    /* logout needs the CSRF token */
    rq = req(e, WEB_POST, "/ui/api/logout");
    rq.cookie = cookie;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 403);
    web_resp_clear(&out);
    rq.csrf = csrf;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 200);
    assert_non_null(strstr(out.cookies, "Max-Age=0"));
    web_resp_clear(&out);
    rq = req(e, WEB_GET, "/ui/api/state");
    rq.cookie = cookie;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 401);
    assert_false(out.www_auth); /* no browser Basic dialog: the page shows its login */
    web_resp_clear(&out);
}

static void test_login_origin_and_tls(void **state)
{
    struct env *e = *state;
    struct web_resp out = {0};
    struct web_request rq = req(e, WEB_POST, "/ui/api/login");
    const char *body = "{\"user\":\"bob\",\"password\":\"viewpw\"}";
    rq.body = body;
    rq.body_len = strlen(body);
    rq.host = "10.0.0.1:8008";
    rq.origin = "http://evil.example";
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 403);
    web_resp_clear(&out);
    e->ctx.tls = true;
    rq.origin = "http://10.0.0.1:8008"; /* not https while serving TLS */
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 403);
    web_resp_clear(&out);
    rq.origin = "https://10.0.0.1:8008";
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 200);
    assert_non_null(strstr(out.cookies, "HttpOnly; SameSite=Strict; Secure"));
    json_t *j = body_json(&out);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "readonly");
    json_decref(j);
    web_resp_clear(&out);
    rq = req(e, WEB_GET, "/ui/api/login");
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 405);
    web_resp_clear(&out);
    rq = req(e, WEB_POST, "/ui/api/state");
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 405);
    web_resp_clear(&out);
    rq = req(e, WEB_GET, "/ui/api/nothing");
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 404);
    web_resp_clear(&out);
}

/* ---- state ---- */

static void test_state(void **state)
{
    struct env *e = *state;
    struct web_resp out = {0};
    struct web_request rq = req(e, WEB_GET, "/ui/api/state");
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 401);
    web_resp_clear(&out);

    static const char st[] =
        "{\"boot_ms\":99500,\"dcs_ok\":true,\"dcs_last_seen\":1700000000,"
        "\"patroni\":{\"state\":\"running\",\"role\":\"master\",\"patroni\":{\"name\":\"n1\","
        "\"scope\":\"demo\"}},\"cluster\":{\"members\":[{\"name\":\"n1\",\"role\":\"leader\"},"
        "{\"name\":\"n2\",\"role\":\"replica\",\"lag\":16}]},\"history\":[]}";
    assert_true(web_snapshot_set_status(&e->snap, st, sizeof(st) - 1, 99500));
    struct msg_proxy_stats ps;
    memset(&ps, 0, sizeof(ps));
    ps.has_leader = 1;
    snprintf(ps.leader, sizeof(ps.leader), "n1");
    ps.port[PROXY_PORT_RW].active = 3;
    ps.port[PROXY_PORT_RW].held = 2;
    ps.port[PROXY_PORT_RW].held_count = 7;
    web_snapshot_set_proxy(&e->snap, &ps, 99000);

    char hdr[160];
    snprintf(hdr, sizeof(hdr), "Basic YWxpY2U6YWRtaW5wdw=="); /* alice:adminpw */
    rq.authorization = hdr;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 200);
    json_t *j = body_json(&out);
    assert_string_equal(json_string_value(json_object_get(j, "node")), "n1");
    assert_string_equal(json_string_value(json_object_get(j, "leader")), "n1");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "admin");
    assert_true(json_is_true(json_object_get(j, "fresh")));
    assert_int_equal(json_integer_value(json_object_get(j, "status_age_ms")), 500);
    json_t *rw = json_object_get(json_object_get(json_object_get(j, "proxy"), "ports"), "rw");
    assert_int_equal(json_integer_value(json_object_get(rw, "active")), 3);
    assert_int_equal(json_integer_value(json_object_get(rw, "held")), 2);
    assert_int_equal(json_integer_value(json_object_get(rw, "held_count")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "proxy"), "age_ms")),
                     1000);
    json_t *members =
        json_object_get(json_object_get(json_object_get(j, "status"), "cluster"), "members");
    assert_int_equal(json_array_size(members), 2);
    json_decref(j);
    web_resp_clear(&out);

    /* a readonly user sees the same, with its role */
    snprintf(hdr, sizeof(hdr), "Basic Ym9iOnZpZXdwdw=="); /* bob:viewpw */
    web_dash_handle(&e->ctx, &rq, &out);
    j = body_json(&out);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "readonly");
    json_decref(j);
    web_resp_clear(&out);

    /* no snapshot yet: a body that says so */
    struct web_snapshot empty;
    web_snapshot_init(&empty);
    j = web_dash_state(&empty, 1000, 5);
    assert_true(json_is_null(json_object_get(j, "status")));
    assert_true(json_is_null(json_object_get(j, "proxy")));
    assert_true(json_is_false(json_object_get(j, "fresh")));
    json_decref(j);
}

/* ---- samples ---- */

static void test_samples(void **state)
{
    struct env *e = *state;
    struct web_resp out = {0};
    char hdr[] = "Basic Ym9iOnZpZXdwdw==";
    struct web_request rq = req(e, WEB_GET, "/ui/api/samples");
    rq.authorization = hdr;
    rq.nquery = 1;
    rq.query[0] = (struct web_kv){"metric", "lag_bytes"};
    /* no database yet */
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 200);
    json_t *j = body_json(&out);
    assert_true(json_is_false(json_object_get(j, "available")));
    assert_null(json_object_get(j, "user")); /* samples carry no identity */
    json_decref(j);
    web_resp_clear(&out);

    int64_t now = 1800000000000LL;
    char err[256];
    struct store *st = store_open(e->dir, err, sizeof(err));
    assert_non_null(st);
    assert_true(store_sample_add(st, now - 2000, "n2", "lag_bytes", 100));
    assert_true(store_sample_add(st, now - 1000, "n2", "lag_bytes", 50));
    assert_true(store_sample_add(st, now - 1000, "n3", "lag_bytes", 7));
    assert_true(store_sample_add(st, now - 1000, "n3", "other", 1));
    assert_true(store_sample_add(st, now - 7200000, "n2", "lag_bytes", 9)); /* too old */
    store_close(st);

    web_dash_samples(e->dash, &rq, now, &out);
    assert_int_equal(out.status, 200);
    j = body_json(&out);
    assert_true(json_is_true(json_object_get(j, "available")));
    json_t *series = json_object_get(j, "series");
    assert_int_equal(json_object_size(series), 2);
    json_t *n2 = json_object_get(series, "n2");
    assert_int_equal(json_array_size(n2), 2);
    assert_int_equal(json_integer_value(json_array_get(json_array_get(n2, 0), 0)), now - 2000);
    assert_true(json_real_value(json_array_get(json_array_get(n2, 1), 1)) == 50.0);
    json_decref(j);
    web_resp_clear(&out);

    rq.nquery = 2;
    rq.query[1] = (struct web_kv){"member", "n3"};
    web_dash_samples(e->dash, &rq, now, &out);
    j = body_json(&out);
    assert_int_equal(json_object_size(json_object_get(j, "series")), 1);
    json_decref(j);
    web_resp_clear(&out);

    const char *bad[][2] = {{"metric", "x'; DROP"}, {"metric", ""}, {"since_ms", "abc"}};
    for (size_t i = 0; i < 3; i++) {
        rq.nquery = 1;
        if (strcmp(bad[i][0], "metric") == 0)
            rq.query[0] = (struct web_kv){bad[i][0], bad[i][1]};
        else {
            rq.query[0] = (struct web_kv){"metric", "lag_bytes"};
            rq.query[1] = (struct web_kv){bad[i][0], bad[i][1]};
            rq.nquery = 2;
        }
        web_dash_samples(e->dash, &rq, now, &out);
        assert_int_equal(out.status, 400);
        web_resp_clear(&out);
    }
}

/* The reads' shared prologue (identified()): who asks first, then the body. */
static void test_reads_prologue(void **state)
{
    struct env *e = *state;
    struct web_resp out = {0};
    const char *paths[] = {"/ui/api/session", "/ui/api/state", "/ui/api/samples"};
    char hdr[] = "Basic Ym9iOnZpZXdwdw=="; /* bob:viewpw */
    for (size_t i = 0; i < 3; i++) {
        struct web_request rq = req(e, WEB_GET, paths[i]);
        web_dash_handle(&e->ctx, &rq, &out);
        assert_int_equal(out.status, 401);
        web_resp_clear(&out);
        rq.authorization = "Basic Ym9iOndyb25n"; /* bob:wrong */
        web_dash_handle(&e->ctx, &rq, &out);
        assert_int_equal(out.status, 401);
        web_resp_clear(&out);
        rq.authorization = hdr;
        e->ctx.auth = NULL; /* no user table: nobody gets in */
        web_dash_handle(&e->ctx, &rq, &out);
        assert_int_equal(out.status, 403);
        web_resp_clear(&out);
        e->ctx.auth = e->a;
    }
    struct web_request rq = req(e, WEB_GET, "/ui/api/session");
    rq.authorization = hdr;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 200);
    json_t *j = body_json(&out);
    assert_string_equal(json_string_value(json_object_get(j, "user")), "bob");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "readonly");
    assert_int_equal(json_integer_value(json_object_get(j, "users")), 2);
    assert_true(json_is_false(json_object_get(j, "tls")));
    assert_int_equal(json_object_size(j), 4); /* the identity only */
    json_decref(j);
    web_resp_clear(&out);
    /* samples without a reader: 503 after the identification */
    rq = req(e, WEB_GET, "/ui/api/samples");
    rq.authorization = hdr;
    e->ctx.dash = NULL;
    web_dash_handle(&e->ctx, &rq, &out);
    assert_int_equal(out.status, 503);
    web_resp_clear(&out);
    e->ctx.dash = e->dash;
}

int main(void)
{
    log_setup(LOG_LVL_ERROR, "test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag_match),
        cmocka_unit_test(test_accepts_gzip),
        cmocka_unit_test(test_assets_embedded),
        cmocka_unit_test(test_routes),
        cmocka_unit_test_setup_teardown(test_serve_asset, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_login_flow, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_login_origin_and_tls, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_state, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_samples, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_reads_prologue, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
