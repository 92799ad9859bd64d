/* Unit tests for /metrics text (Patroni names, forwarder counters) and the request limits
 * (JSON depth, body parsing, error bodies). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/metrics.h"
#include "web/resp.h"
#include "web/snapshot.h"

enum { T0 = 5000000 };

static const char primary_status[] =
    "{\"boot_ms\":5000000,\"ttl_ms\":10000,\"loop_wait_ms\":1000,"
    "\"leader_until_boot_ms\":5008000,\"dcs_ok\":true,\"dcs_last_seen\":1700000123,"
    "\"paused\":false,\"sync_mode\":false,\"optime\":123456,\"sync\":null,"
    "\"patroni\":{\"state\":\"running\",\"role\":\"master\",\"server_version\":150004,"
    "\"timeline\":3,\"xlog\":{\"location\":123456},\"postmaster_start_time\":"
    "\"2023-11-14 22:13:20.5+00:00\",\"pending_restart\":true,"
    "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"de\\\"mo\",\"name\":\"n1\"}},"
    "\"cluster\":{\"members\":[]},\"history\":[],\"config\":{}}";

/* The value of the sample line that starts with `prefix` (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* Every line is a comment or "name[{labels}] value" with a number. */
static bool well_formed(const char *text)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            return false; /* the exposition ends with a newline */
        if (*p != '#') {
            const char *sp = nl;
            while (sp > p && sp[-1] != ' ')
                sp--;
            char *end;
            if (sp == p || !((*p >= 'a' && *p <= 'z') || *p == '_'))
                return false;
            strtod(sp, &end);
            if (end != nl && strncmp(sp, "+Inf", 4) != 0)
                return false;
        }
        p = nl + 1;
    }
    return true;
}

static void test_version_number(void **state)
{
    (void)state;
    assert_int_equal(web_metrics_version_number("3.0.2"), 30002);
    assert_int_equal(web_metrics_version_number("4.10.1"), 41001);
    assert_int_equal(web_metrics_version_number("2.1"), 20100);
    assert_int_equal(web_metrics_version_number("0.1.0-dev"), 100);
    assert_int_equal(web_metrics_version_number("x"), 0);
    assert_int_equal(web_metrics_version_number(NULL), 0);
}

static void test_patroni_metrics(void **state)
{
    (void)state;
    struct web_snapshot s;
    web_snapshot_init(&s);
    assert_true(web_snapshot_set_status(&s, primary_status, strlen(primary_status), T0));
    struct web_resp r = {0};
    assert_true(web_metrics_render(&s, T0 + 2000, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, WEB_CT_PROM);
    char *t = strndup(r.body, r.len);
    const char *l = "{scope=\"de\\\"mo\",name=\"n1\"}";
    char key[256];
#define M(name) (snprintf(key, sizeof(key), "%s%s", name, l), sample(t, key))
    assert_true(M("patroni_version") == 30002);
    assert_true(M("patroni_postgres_running") == 1);
    assert_true(M("patroni_master") == 1);
    assert_true(M("patroni_primary") == 1);
    assert_true(M("patroni_replica") == 0);
    assert_true(M("patroni_xlog_location") == 123456);
    assert_true(M("patroni_sync_standby") == 0);
    assert_true(M("patroni_cluster_unlocked") == 0);
    assert_true(M("patroni_postgres_timeline") == 3);
    assert_true(M("patroni_postgres_server_version") == 150004);
    assert_true(M("patroni_dcs_last_seen") == 1700000123);
    assert_true(M("patroni_pending_restart") == 1);
    assert_true(M("patroni_is_paused") == 0);
    assert_true(M("patroni_postmaster_start_time") == 1700000000.5);
    assert_true(M("pgwarden_leader_lease_remaining_seconds") == 6);
    assert_true(M("pgwarden_status_age_seconds") == 2);
    assert_true(M("pgwarden_status_available") == 1);
#undef M
    assert_non_null(strstr(t, "# TYPE patroni_primary gauge\n"));
    assert_true(well_formed(t));
    assert_null(strstr(t, "pgwarden_proxy_")); /* no proxy stats yet */
    free(t);
    web_resp_clear(&r);
    web_snapshot_clear(&s);
}

static void test_proxy_metrics(void **state)
{
    (void)state;
    struct web_snapshot s;
    web_snapshot_init(&s);
    struct msg_proxy_stats ps;
    memset(&ps, 0, sizeof(ps));
    ps.has_leader = 1;
    ps.expiry_boot_ms = T0 + 1500;
    ps.port[PROXY_PORT_RW].active = 7;
    ps.port[PROXY_PORT_RW].total = 100;
    ps.port[PROXY_PORT_RO].bytes_down = 4096;
    ps.port[PROXY_PORT_RW].held_hist[0] = 2;
    ps.port[PROXY_PORT_RW].held_hist[3] = 1;
    ps.port[PROXY_PORT_RW].held_hist[PROXY_HELD_BUCKETS - 1] = 1;
    ps.port[PROXY_PORT_RW].held_count = 4;
    ps.port[PROXY_PORT_RW].held_ms_sum = 40500;
    web_snapshot_set_proxy(&s, &ps, T0);
    struct web_resp r = {0};
    assert_true(web_metrics_render(&s, T0, &r));
    char *t = strndup(r.body, r.len);
    assert_true(sample(t, "pgwarden_status_available") == 0);
    assert_true(sample(t, "pgwarden_proxy_route_has_leader") == 1);
    assert_true(sample(t, "pgwarden_proxy_route_valid_seconds") == 1.5);
    assert_true(sample(t, "pgwarden_proxy_active_connections{port=\"rw\"}") == 7);
    assert_true(sample(t, "pgwarden_proxy_connections_total{port=\"rw\"}") == 100);
    assert_true(sample(t, "pgwarden_proxy_bytes_down_total{port=\"ro\"}") == 4096);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_bucket{port=\"rw\",le=\"0.01\"}") == 2);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_bucket{port=\"rw\",le=\"0.5\"}") == 2);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_bucket{port=\"rw\",le=\"1\"}") == 3);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_bucket{port=\"rw\",le=\"30\"}") == 3);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_bucket{port=\"rw\",le=\"+Inf\"}") == 4);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_count{port=\"rw\"}") == 4);
    assert_true(sample(t, "pgwarden_proxy_held_seconds_sum{port=\"rw\"}") == 40.5);
    assert_non_null(strstr(t, "# TYPE pgwarden_proxy_connections_total counter\n"));
    assert_non_null(strstr(t, "# TYPE pgwarden_proxy_held_seconds histogram\n"));
    assert_null(strstr(t, "patroni_")); /* no status yet */
    assert_true(well_formed(t));
    free(t);
    web_resp_clear(&r);
    web_snapshot_clear(&s);
}

static void test_replica_metrics(void **state)
{
    (void)state;
    const char *j = "{\"boot_ms\":5000000,\"paused\":true,\"patroni\":{\"state\":\"running\","
                    "\"role\":\"replica\",\"sync_standby\":true,\"xlog\":{\"received_location\":"
                    "900,\"replayed_location\":800,\"replayed_timestamp\":null,\"paused\":true},"
                    "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"s\",\"name\":\"r\"}}}";
    struct web_snapshot s;
    web_snapshot_init(&s);
    assert_true(web_snapshot_set_status(&s, j, strlen(j), T0));
    struct web_resp r = {0};
    assert_true(web_metrics_render(&s, T0, &r));
    char *t = strndup(r.body, r.len);
    assert_true(sample(t, "patroni_replica{scope=\"s\",name=\"r\"}") == 1);
    assert_true(sample(t, "patroni_master{scope=\"s\",name=\"r\"}") == 0);
    assert_true(sample(t, "patroni_sync_standby{scope=\"s\",name=\"r\"}") == 1);
    assert_true(sample(t, "patroni_xlog_received_location{scope=\"s\",name=\"r\"}") == 900);
    assert_true(sample(t, "patroni_xlog_replayed_location{scope=\"s\",name=\"r\"}") == 800);
    assert_true(sample(t, "patroni_xlog_replayed_timestamp{scope=\"s\",name=\"r\"}") == 0);
    assert_true(sample(t, "patroni_xlog_paused{scope=\"s\",name=\"r\"}") == 1);
    assert_true(sample(t, "patroni_is_paused{scope=\"s\",name=\"r\"}") == 1);
    assert_true(sample(t, "patroni_xlog_location{scope=\"s\",name=\"r\"}") == 0);
    free(t);
    web_resp_clear(&r);
    web_snapshot_clear(&s);
}

static void test_json_depth(void **state)
{
    (void)state;
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_false(web_json_depth_ok(deep, sizeof(deep), WEB_MAX_JSON_DEPTH));
    assert_true(web_json_depth_ok(deep + 68, 64, WEB_MAX_JSON_DEPTH)); /* 32 deep */
    assert_false(web_json_depth_ok(deep + 67, 66, WEB_MAX_JSON_DEPTH));
    /* Brackets inside strings, including escaped quotes, do not count. */
    const char *s = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[[[\"}";
    assert_true(web_json_depth_ok(s, strlen(s), 2));
    assert_false(web_json_depth_ok("{{{", 3, 2));
}

static void test_parse_body(void **state)
{
    (void)state;
    struct web_resp r = {0};
    json_t *v = web_parse_body("", 0, true, &r);
    assert_non_null(v);
    assert_true(json_is_object(v));
    json_decref(v);
    assert_null(web_parse_body("  \n", 3, false, &r));
    assert_int_equal(r.status, 400);
    assert_null(web_parse_body("{\"a\":", 5, false, &r));
    assert_int_equal(r.status, 400);
    assert_string_equal(r.ctype, WEB_CT_JSON);
    json_t *err = json_loadb(r.body, r.len, 0, NULL);
    assert_non_null(json_string_value(json_object_get(err, "error")));
    json_decref(err);
    assert_null(web_parse_body("[1,2]", 5, false, &r));
    assert_int_equal(r.status, 400);
    assert_null(web_parse_body("{\"a\":1,\"a\":2}", 13, false, &r)); /* duplicate keys */
    assert_int_equal(r.status, 400);
    char deep[100];
    memset(deep, '[', 50);
    memset(deep + 50, ']', 50);
    assert_null(web_parse_body(deep, sizeof(deep), false, &r));
    assert_int_equal(r.status, 400);
    v = web_parse_body("{\"leader\":\"n1\"}", 15, false, &r);
    assert_non_null(v);
    json_decref(v);
    web_resp_clear(&r);
}

static void test_error_body(void **state)
{
    (void)state;
    struct web_resp r = {0};
    web_resp_error(&r, 404, "not \"found\"");
    assert_int_equal(r.status, 404);
    assert_string_equal(r.ctype, WEB_CT_JSON);
    assert_int_equal(r.len, strlen("{\"error\":\"not \\\"found\\\"\"}"));
    assert_memory_equal(r.body, "{\"error\":\"not \\\"found\\\"\"}", r.len);
    web_resp_text(&r, 202, "reload scheduled");
    assert_int_equal(r.status, 202);
    assert_string_equal(r.ctype, WEB_CT_TEXT);
    assert_memory_equal(r.body, "reload scheduled", r.len);
    struct web_resp d = {0};
    web_resp_move(&d, &r);
    assert_null(r.body);
    assert_int_equal(d.status, 202);
    web_resp_clear(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_number), cmocka_unit_test(test_patroni_metrics),
        cmocka_unit_test(test_proxy_metrics),  cmocka_unit_test(test_replica_metrics),
        cmocka_unit_test(test_json_depth),     cmocka_unit_test(test_parse_body),
        cmocka_unit_test(test_error_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
