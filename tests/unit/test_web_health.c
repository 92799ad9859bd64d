/* Unit tests for the REST health predicates: each endpoint's code from crafted ha snapshots
 * (leader/replica, lag units, tags, sync/async, stale or missing snapshots, liveness). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "web/health.h"
#include "web/snapshot.h"

enum { T0 = 1000000, TTL = 10000 };

/* Options of a crafted snapshot. */
struct spec {
    const char *role;  /* "master" / "replica" / "standby_leader" */
    const char *state; /* "running" */
    bool leader;       /* holds the leader key: lease until T0 + TTL */
    bool paused, dcs_ok, sync_mode, in_sync;
    long long optime, replayed; /* optime < 0: null */
    const char *tags;           /* JSON object text or NULL */
    uint64_t boot_ms;           /* 0: T0 */
};

static struct web_snapshot snap;

static int teardown(void **state)
{
    (void)state;
    web_snapshot_clear(&snap);
    return 0;
}

static const struct web_status *make(const struct spec *s)
{
    char json[2048], optime[32];
    if (s->optime < 0)
        snprintf(optime, sizeof(optime), "null");
    else
        snprintf(optime, sizeof(optime), "%lld", s->optime);
    bool primary = strcmp(s->role, "replica") != 0;
    char xlog[128];
    if (primary)
        snprintf(xlog, sizeof(xlog), "{\"location\":%lld}", s->optime < 0 ? 0 : s->optime);
    else
        snprintf(xlog, sizeof(xlog),
                 "{\"received_location\":%lld,\"replayed_location\":%lld,\"paused\":false}",
                 s->replayed, s->replayed);
    snprintf(json, sizeof(json),
             "{\"boot_ms\":%llu,\"wall_ms\":1700000000000,\"ttl_ms\":%d,\"loop_wait_ms\":1000,"
             "\"leader_until_boot_ms\":%llu,\"dcs_ok\":%s,\"dcs_last_seen\":1700000000,"
             "\"paused\":%s,\"sync_mode\":%s,\"optime\":%s,"
             "\"sync\":{\"leader\":\"n1\",\"sync_standby\":[%s]},"
             "\"patroni\":{\"state\":\"%s\",\"role\":\"%s\",\"xlog\":%s,\"timeline\":1,"
             "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"demo\",\"name\":\"me\"}%s%s},"
             "\"cluster\":{\"members\":[]},\"history\":[],\"config\":null}",
             (unsigned long long)(s->boot_ms ? s->boot_ms : T0), TTL,
             (unsigned long long)(s->leader ? T0 + TTL : 0), s->dcs_ok ? "true" : "false",
             s->paused ? "true" : "false", s->sync_mode ? "true" : "false", optime,
             s->in_sync ? "\"me\"" : "\"other\"", s->state ? s->state : "running", s->role, xlog,
             s->tags ? ",\"tags\":" : "", s->tags ? s->tags : "");
    assert_true(web_snapshot_set_status(&snap, json, strlen(json), T0));
    return snap.st;
}

static int code(const struct web_status *st, enum web_check c, const char *lag, uint64_t now)
{
    struct web_health_query q = {0};
    if (lag) {
        assert_true(web_parse_lag(lag, &q.max_lag));
        q.has_lag = true;
    }
    return web_health_code(st, c, &q, now);
}

static int code_tags(const struct web_status *st, enum web_check c, const char *k, const char *v)
{
    struct web_health_query q = {.ntags = 1};
    q.tags[0].key = k;
    q.tags[0].value = v;
    return web_health_code(st, c, &q, T0 + 1);
}

static void test_parse_lag(void **state)
{
    (void)state;
    int64_t v;
    assert_true(web_parse_lag("1024", &v));
    assert_int_equal(v, 1024);
    assert_true(web_parse_lag("0", &v));
    assert_int_equal(v, 0);
    assert_true(web_parse_lag("1kB", &v));
    assert_int_equal(v, 1024);
    assert_true(web_parse_lag("10MB", &v));
    assert_int_equal(v, 10 * 1024 * 1024);
    assert_true(web_parse_lag("1GB", &v));
    assert_int_equal(v, 1024LL * 1024 * 1024);
    assert_true(web_parse_lag("2TB", &v));
    assert_int_equal(v, 2LL * 1024 * 1024 * 1024 * 1024);
    assert_true(web_parse_lag("1.5MB", &v));
    assert_int_equal(v, 1572864);
    assert_true(web_parse_lag("16 MB", &v));
    assert_int_equal(v, 16 * 1024 * 1024);
    assert_true(web_parse_lag("100B", &v));
    assert_int_equal(v, 100);
    assert_false(web_parse_lag("1mb", &v)); /* units are case-sensitive, as in Patroni */
    assert_false(web_parse_lag("1KB", &v));
    assert_false(web_parse_lag("abc", &v));
    assert_false(web_parse_lag("", &v));
    assert_false(web_parse_lag("10 MB extra", &v));
    assert_false(web_parse_lag("99999999999TB", &v));
    assert_false(web_parse_lag(NULL, &v));
}

static void test_tag_match(void **state)
{
    (void)state;
    json_t *o =
        json_loads("{\"s\":\"east\",\"t\":true,\"f\":false,\"i\":3,\"r\":1.5,\"n\":null}", 0, NULL);
    assert_non_null(o);
    assert_true(web_tag_matches(json_object_get(o, "s"), "east"));
    assert_false(web_tag_matches(json_object_get(o, "s"), "East"));
    assert_true(web_tag_matches(json_object_get(o, "t"), "true"));
    assert_false(web_tag_matches(json_object_get(o, "t"), "True"));
    assert_true(web_tag_matches(json_object_get(o, "f"), "false"));
    assert_true(web_tag_matches(json_object_get(o, "i"), "3"));
    assert_true(web_tag_matches(json_object_get(o, "r"), "1.5"));
    assert_false(web_tag_matches(json_object_get(o, "n"), "null"));
    assert_false(web_tag_matches(json_object_get(o, "missing"), "x"));
    json_decref(o);
}

static void test_leader_row(void **state)
{
    (void)state;
    const struct spec s = {.role = "master", .leader = true, .dcs_ok = true, .optime = 5000};
    const struct web_status *st = make(&s);
    uint64_t now = T0 + 1;
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_LEADER, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_STANDBY_LEADER, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_SYNC, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY_SYNC, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_HEALTH, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_READINESS, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_STATUS, NULL, now), 200);
}

static void test_primary_lease_expiry(void **state)
{
    (void)state;
    const struct spec s = {.role = "master", .leader = true, .dcs_ok = true, .optime = 1};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, T0 + TTL - 1), 200);
    /* The lease deadline passed: /primary fails at once, even before the snapshot is stale. */
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, T0 + TTL), 503);
    assert_int_equal(code(st, WEB_CHECK_LEADER, NULL, T0 + TTL + 5), 503);
    /* A primary whose loop is a ttl old fails liveness; /health only needs the snapshot. */
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, T0 + TTL), 503);
    assert_int_equal(code(st, WEB_CHECK_HEALTH, NULL, T0 + TTL), 200);
}

static void test_replica_row(void **state)
{
    (void)state;
    const struct spec s = {.role = "replica", .dcs_ok = true, .optime = 1000, .replayed = 900};
    const struct web_status *st = make(&s);
    uint64_t now = T0 + 1;
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_LEADER, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_SYNC, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY_SYNC, NULL, now), 503);
    assert_int_equal(code(st, WEB_CHECK_HEALTH, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, now), 200);
    assert_int_equal(code(st, WEB_CHECK_READINESS, NULL, now), 200);
}

static void test_replica_lag(void **state)
{
    (void)state;
    const struct spec s = {
        .role = "replica", .dcs_ok = true, .optime = 3 * 1024 * 1024, .replayed = 1024 * 1024};
    const struct web_status *st = make(&s);
    uint64_t now = T0 + 1;
    /* 2 MiB behind. */
    assert_int_equal(code(st, WEB_CHECK_REPLICA, "1MB", now), 503);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, "2MB", now), 200); /* lag > n fails, = passes */
    assert_int_equal(code(st, WEB_CHECK_REPLICA, "2097151", now), 503);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, "3072kB", now), 200);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, "1GB", now), 200);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY, "1MB", now), 503);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, "1MB", now), 503);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, "10MB", now), 200);
    /* Without the leader's optime nothing is lagging. */
    const struct spec s2 = {.role = "replica", .dcs_ok = true, .optime = -1, .replayed = 1};
    st = make(&s2);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, "0", now), 200);
}

static void test_replica_not_running_or_noloadbalance(void **state)
{
    (void)state;
    const struct spec s = {.role = "replica", .state = "starting", .dcs_ok = true};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_HEALTH, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_READINESS, NULL, T0), 503);
    const struct spec s2 = {.role = "replica", .dcs_ok = true, .tags = "{\"noloadbalance\":true}"};
    st = make(&s2);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_HEALTH, NULL, T0), 200);
    const struct spec s3 = {.role = "replica", .dcs_ok = true, .tags = "{\"noloadbalance\":false}"};
    st = make(&s3);
    assert_int_equal(code(st, WEB_CHECK_REPLICA, NULL, T0), 200);
}

static void test_tags(void **state)
{
    (void)state;
    const struct spec s = {.role = "replica",
                           .dcs_ok = true,
                           .tags = "{\"dc\":\"east\",\"nofailover\":true,\"prio\":2}"};
    const struct web_status *st = make(&s);
    assert_int_equal(code_tags(st, WEB_CHECK_REPLICA, "dc", "east"), 200);
    assert_int_equal(code_tags(st, WEB_CHECK_REPLICA, "dc", "west"), 503);
    assert_int_equal(code_tags(st, WEB_CHECK_REPLICA, "rack", "1"), 503);
    assert_int_equal(code_tags(st, WEB_CHECK_REPLICA, "nofailover", "true"), 200);
    assert_int_equal(code_tags(st, WEB_CHECK_REPLICA, "prio", "2"), 200);
    assert_int_equal(code_tags(st, WEB_CHECK_HEALTH, "dc", "west"), 503);
    assert_int_equal(code_tags(st, WEB_CHECK_READ_ONLY, "dc", "west"), 503);
    /* The leader paths ignore tag filters. */
    const struct spec p = {.role = "master", .leader = true, .dcs_ok = true, .tags = "{}"};
    st = make(&p);
    assert_int_equal(code_tags(st, WEB_CHECK_PRIMARY, "dc", "west"), 200);
    assert_int_equal(code_tags(st, WEB_CHECK_LEADER, "dc", "west"), 200);
    assert_int_equal(code_tags(st, WEB_CHECK_READ_ONLY, "dc", "west"), 503);
}

static void test_sync_async(void **state)
{
    (void)state;
    const struct spec s = {.role = "replica", .dcs_ok = true, .sync_mode = true, .in_sync = true};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_SYNC, NULL, T0), 200);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY_SYNC, NULL, T0), 200);
    const struct spec s2 = {.role = "replica", .dcs_ok = true, .sync_mode = true};
    st = make(&s2);
    assert_int_equal(code(st, WEB_CHECK_SYNC, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, NULL, T0), 200);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY_SYNC, NULL, T0), 503);
    /* The sync key only counts in synchronous mode. */
    const struct spec s3 = {.role = "replica", .dcs_ok = true, .in_sync = true};
    st = make(&s3);
    assert_int_equal(code(st, WEB_CHECK_SYNC, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_ASYNC, NULL, T0), 200);
}

static void test_stale_and_missing(void **state)
{
    (void)state;
    for (int c = WEB_CHECK_PRIMARY; c <= WEB_CHECK_STATUS; c++)
        assert_int_equal(web_health_code(NULL, (enum web_check)c, NULL, T0), 503);
    const struct spec s = {.role = "replica", .dcs_ok = true};
    const struct web_status *st = make(&s);
    assert_true(web_status_fresh(st, T0 + 2 * TTL));
    assert_false(web_status_fresh(st, T0 + 2 * TTL + 1));
    for (int c = WEB_CHECK_PRIMARY; c <= WEB_CHECK_STATUS; c++)
        assert_int_equal(web_health_code(st, (enum web_check)c, NULL, T0 + 2 * TTL + 1), 503);
    /* A paused cluster keeps /liveness up while the snapshot is fresh. */
    const struct spec p = {.role = "master", .paused = true, .dcs_ok = true, .leader = true};
    st = make(&p);
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, T0 + TTL + 1), 200);
}

static void test_liveness_replica_two_ttl(void **state)
{
    (void)state;
    const struct spec s = {.role = "replica", .dcs_ok = true};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, T0 + TTL + 1), 200);
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, T0 + 2 * TTL - 1), 200);
    assert_int_equal(code(st, WEB_CHECK_LIVENESS, NULL, T0 + 2 * TTL), 503);
}

static void test_readiness_dcs(void **state)
{
    (void)state;
    const struct spec s = {.role = "replica", .dcs_ok = false};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_READINESS, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_HEALTH, NULL, T0), 200);
}

static void test_paused_without_dcs(void **state)
{
    (void)state;
    /* Patroni: paused and no DCS view, the leader answer follows the role. */
    const struct spec s = {.role = "master", .paused = true, .dcs_ok = false};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, T0), 200);
    const struct spec s2 = {.role = "master", .paused = false, .dcs_ok = false};
    st = make(&s2);
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, T0), 503);
}

static void test_standby_leader(void **state)
{
    (void)state;
    const struct spec s = {.role = "standby_leader", .leader = true, .dcs_ok = true};
    const struct web_status *st = make(&s);
    assert_int_equal(code(st, WEB_CHECK_PRIMARY, NULL, T0), 503);
    assert_int_equal(code(st, WEB_CHECK_LEADER, NULL, T0), 200);
    assert_int_equal(code(st, WEB_CHECK_STANDBY_LEADER, NULL, T0), 200);
    assert_int_equal(code(st, WEB_CHECK_READ_ONLY, NULL, T0), 200);
}

static void test_snapshot_parse(void **state)
{
    (void)state;
    assert_false(web_snapshot_set_status(&snap, "[1]", 3, T0));
    assert_false(web_snapshot_set_status(&snap, "{bad", 4, T0));
    assert_null(snap.st);
    const char *j = "{\"patroni\":{\"role\":\"replica\",\"state\":\"running\"},"
                    "\"cluster\":{\"members\":[{\"name\":\"a\",\"role\":\"replica\"},"
                    "{\"name\":\"b\",\"role\":\"leader\"}]}}";
    assert_true(web_snapshot_set_status(&snap, j, strlen(j), T0 + 7));
    assert_int_equal(snap.st->boot_ms, T0 + 7); /* receive time when boot_ms is missing */
    assert_int_equal(web_status_ttl_ms(snap.st), 10000);
    assert_int_equal(web_status_loop_wait_ms(snap.st), 1000);
    assert_string_equal(web_status_leader_name(snap.st), "b");
    assert_string_equal(snap.st->cluster_body.buf, "{\"members\":[{\"name\":\"a\",\"role\":"
                                                   "\"replica\"},{\"name\":\"b\",\"role\":"
                                                   "\"leader\"}]}");
    assert_null(snap.st->config_body.buf);
    /* A bad snapshot keeps the previous one. */
    assert_false(web_snapshot_set_status(&snap, "nope", 4, T0));
    assert_non_null(snap.st);
    assert_int_equal(snap.status_count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_parse_lag, teardown),
        cmocka_unit_test_teardown(test_tag_match, teardown),
        cmocka_unit_test_teardown(test_leader_row, teardown),
        cmocka_unit_test_teardown(test_primary_lease_expiry, teardown),
        cmocka_unit_test_teardown(test_replica_row, teardown),
        cmocka_unit_test_teardown(test_replica_lag, teardown),
        cmocka_unit_test_teardown(test_replica_not_running_or_noloadbalance, teardown),
        cmocka_unit_test_teardown(test_tags, teardown),
        cmocka_unit_test_teardown(test_sync_async, teardown),
        cmocka_unit_test_teardown(test_stale_and_missing, teardown),
        cmocka_unit_test_teardown(test_liveness_replica_two_ttl, teardown),
        cmocka_unit_test_teardown(test_readiness_dcs, teardown),
        cmocka_unit_test_teardown(test_paused_without_dcs, teardown),
        cmocka_unit_test_teardown(test_standby_leader, teardown),
        cmocka_unit_test_teardown(test_snapshot_parse, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
