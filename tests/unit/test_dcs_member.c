/* Unit tests of agent/dcs/member: Patroni member values, tags, URLs, strictness and robustness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/dcs/member.h"

/* The replica example of patroni-compat.md (Ha.touch_member, Patroni 3.0.2). */
static const char replica_302[] =
    "{\"conn_url\":\"postgres://10.0.0.2:5432/postgres\",\"api_url\":\"http://10.0.0.2:8008/"
    "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\","
    "\"xlog_location\":50331856,\"timeline\":4}";

/* A Patroni 3.0.2 leader with every optional field, in touch_member's order. */
static const char leader_302[] =
    "{\"conn_url\":\"postgres://10.0.0.1:5432/postgres\",\"api_url\":\"https://10.0.0.1:8008/"
    "patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"proxy_url\":"
    "\"postgres://10.0.0.1:6432/postgres\",\"checkpoint_after_promote\":false,\"tags\":{"
    "\"nofailover\":true,\"clonefrom\":true,\"noloadbalance\":true,\"replicatefrom\":\"pg2\","
    "\"nosync\":true,\"dc\":\"east\",\"weight\":3},\"pending_restart\":true,\"xlog_location\":"
    "67108992,\"timeline\":5,\"scheduled_restart\":{\"schedule\":\"2023-05-01T10:00:00+00:00\","
    "\"postmaster_start_time\":\"2023-04-30 09:00:00.000 UTC\"},\"pause\":true}";

/* A Patroni 4.x replica: role "primary" elsewhere, replication_state, failover_priority, extra
 * fields this build does not know. */
static const char replica_4x[] =
    "{\"conn_url\":\"postgres://db3:5432/postgres\",\"api_url\":\"http://db3:8008/patroni\","
    "\"state\":\"streaming\",\"role\":\"replica\",\"version\":\"4.0.4\",\"tags\":{"
    "\"failover_priority\":2,\"nostream\":false},\"pending_restart\":true,"
    "\"pending_restart_reason\":{\"max_connections\":{\"old_value\":\"100\",\"new_value\":"
    "\"200\"}},\"xlog_location\":1234,\"replication_state\":\"streaming\",\"timeline\":7}";

static void decode_ok(const char *v, struct dcs_member *m)
{
    struct dcs_err err = {{0}};
    if (!dcs_member_decode(v, strlen(v), "pg", m, &err))
        fail_msg("decode failed: %s", err.msg);
}

static char *encode_ok(const struct dcs_member *m)
{
    struct dcs_err err = {{0}};
    size_t len = 0;
    char *s = dcs_member_encode(m, &len, &err);
    if (!s)
        fail_msg("encode failed: %s", err.msg);
    assert_int_equal(len, strlen(s));
    return s;
}

static void decode_fails(const char *v, const char *needle)
{
    struct dcs_member m;
    struct dcs_err err = {{0}};
    if (dcs_member_decode(v, strlen(v), "pg", &m, &err))
        fail_msg("accepted %s", v);
    if (needle && !strstr(err.msg, needle))
        fail_msg("error '%s' lacks '%s'", err.msg, needle);
}

static void test_decode_patroni_replica(void **state)
{
    (void)state;
    struct dcs_member m;
    decode_ok(replica_302, &m);
    assert_string_equal(m.name, "pg");
    assert_string_equal(m.conn_url, "postgres://10.0.0.2:5432/postgres");
    assert_string_equal(m.api_url, "http://10.0.0.2:8008/patroni");
    assert_int_equal(m.state, DCS_STATE_RUNNING);
    assert_int_equal(m.role, DCS_ROLE_REPLICA);
    assert_string_equal(m.version, "3.0.2");
    assert_true(m.has_xlog_location);
    assert_int_equal(m.xlog_location, 50331856);
    assert_true(m.has_timeline);
    assert_int_equal(m.timeline, 4);
    assert_false(m.pending_restart);
    assert_false(dcs_tags_nofailover(&m.tags));
    assert_int_equal(dcs_tags_failover_priority(&m.tags), 1);
    assert_string_equal(m.agent_version, "");
}

static void test_patroni_values_round_trip_byte_exact(void **state)
{
    (void)state;
    const char *const samples[] = {replica_302, leader_302};
    for (size_t i = 0; i < 2; i++) {
        struct dcs_member m;
        decode_ok(samples[i], &m);
        char *s = encode_ok(&m);
        assert_string_equal(s, samples[i]);
        free(s);
    }
}

static void test_decode_patroni_leader_all_fields(void **state)
{
    (void)state;
    struct dcs_member m;
    decode_ok(leader_302, &m);
    assert_int_equal(m.role, DCS_ROLE_PRIMARY);
    assert_string_equal(m.role_text, "master");
    assert_true(m.checkpoint_pending);
    assert_true(m.tags.nofailover);
    assert_true(m.tags.nofailover_set);
    assert_true(m.tags.clonefrom);
    assert_true(m.tags.noloadbalance);
    assert_true(m.tags.nosync);
    assert_string_equal(m.tags.replicatefrom, "pg2");
    assert_string_equal(m.tags.extra, "{\"dc\":\"east\",\"weight\":3}");
    assert_true(dcs_tags_nofailover(&m.tags));
    assert_int_equal(dcs_tags_failover_priority(&m.tags), 0);
    assert_true(m.pending_restart);
    assert_true(m.pause);
    assert_string_equal(m.proxy_url, "postgres://10.0.0.1:6432/postgres");
    assert_non_null(strstr(m.scheduled_restart, "\"schedule\":\"2023-05-01T10:00:00+00:00\""));
}

static void test_decode_patroni_4x_tolerated(void **state)
{
    (void)state;
    struct dcs_member m;
    decode_ok(replica_4x, &m);
    assert_int_equal(m.state, DCS_STATE_UNKNOWN); /* "streaming" is not a 3.0.2 state */
    assert_string_equal(m.state_text, "streaming");
    assert_int_equal(m.role, DCS_ROLE_REPLICA);
    assert_string_equal(m.replication_state, "streaming");
    assert_true(m.tags.has_failover_priority);
    assert_int_equal(m.tags.failover_priority, 2);
    assert_false(dcs_tags_nofailover(&m.tags));
    assert_string_equal(m.tags.extra, "{\"nostream\":false}");
    /* an unknown state is shown, never written back */
    struct dcs_err err = {{0}};
    assert_null(dcs_member_encode(&m, NULL, &err));
    assert_non_null(strstr(err.msg, "unknown state"));

    decode_ok("{\"role\":\"primary\",\"tags\":{\"failover_priority\":\"0\"}}", &m);
    assert_int_equal(m.role, DCS_ROLE_PRIMARY);
    assert_true(dcs_tags_nofailover(&m.tags)); /* priority <= 0 means nofailover */
    decode_ok("{\"tags\":{\"failover_priority\":0,\"nofailover\":false}}", &m);
    assert_false(dcs_tags_nofailover(&m.tags)); /* an explicit nofailover wins */
    assert_int_equal(dcs_tags_failover_priority(&m.tags), 0);
    decode_ok("{\"role\":\"standby_leader\",\"state\":\"creating replica\"}", &m);
    assert_int_equal(m.role, DCS_ROLE_STANDBY_LEADER);
    assert_int_equal(m.state, DCS_STATE_CREATING_REPLICA);
    decode_ok("{\"role\":\"leader-ish\"}", &m);
    assert_int_equal(m.role, DCS_ROLE_UNKNOWN);
    assert_string_equal(m.role_text, "leader-ish");
}

/* pgwarden's own fields survive a round trip; a member without them has none. */
static void test_server_version_and_replay_lag(void **state)
{
    (void)state;
    struct dcs_member m, back;
    dcs_member_init(&m);
    snprintf(m.conn_url, sizeof(m.conn_url), "postgres://10.0.0.4:5432/postgres");
    snprintf(m.api_url, sizeof(m.api_url), "http://10.0.0.4:8008/patroni");
    m.state = DCS_STATE_RUNNING;
    m.role = DCS_ROLE_REPLICA;
    m.has_server_version = true;
    m.server_version = 150018;
    m.has_replay_lag_ms = true;
    m.replay_lag_ms = 1200;
    char *text = encode_ok(&m);
    assert_non_null(strstr(text, "\"server_version\":150018,\"replay_lag_ms\":1200,"));
    decode_ok(text, &back);
    assert_true(back.has_server_version && back.server_version == 150018);
    assert_true(back.has_replay_lag_ms && back.replay_lag_ms == 1200);
    free(text);
    decode_ok("{\"conn_url\":\"postgres://h:5432/postgres\",\"state\":\"running\"}", &back);
    assert_false(back.has_server_version || back.has_replay_lag_ms || back.has_clone_bytes);
    assert_int_equal(back.clone_total_bytes, -1);

    /* a copy's progress: with the source's estimate, and without one */
    m.state = DCS_STATE_CREATING_REPLICA;
    m.has_server_version = m.has_replay_lag_ms = false;
    m.has_clone_bytes = true;
    m.clone_bytes = 6102016;
    m.clone_total_bytes = 23737856;
    text = encode_ok(&m);
    assert_non_null(strstr(text, "\"clone_bytes\":6102016,\"clone_total_bytes\":23737856"));
    decode_ok(text, &back);
    assert_true(back.has_clone_bytes && back.clone_bytes == 6102016);
    assert_int_equal(back.clone_total_bytes, 23737856);
    free(text);
    m.clone_total_bytes = -1;
    text = encode_ok(&m);
    assert_null(strstr(text, "clone_total_bytes"));
    decode_ok(text, &back);
    assert_true(back.has_clone_bytes && back.clone_total_bytes == -1);
    free(text);
    /* its percentage: none without a total, and never past 100 (the total is an estimate) */
    assert_int_equal(dcs_clone_percent(6102016, 23737856), 25);
    assert_int_equal(dcs_clone_percent(0, 23737856), 0);
    assert_int_equal(dcs_clone_percent(30000000, 23737856), 100);
    assert_int_equal(dcs_clone_percent(6102016, -1), -1);
    assert_int_equal(dcs_clone_percent(6102016, 0), -1);
    struct dcs_err err = {{0}};
    const char *bad = "{\"state\":\"creating replica\",\"clone_bytes\":-5}";
    assert_false(dcs_member_decode(bad, strlen(bad), "n2", &back, &err));
}

static void test_encode_ours(void **state)
{
    (void)state;
    struct dcs_member m;
    dcs_member_init(&m);
    assert_string_equal(m.version, DCS_PATRONI_COMPAT_VERSION);
    assert_int_equal(dcs_conn_url("10.0.0.3", 5432, "postgres", m.conn_url, sizeof(m.conn_url)),
                     (int)strlen("postgres://10.0.0.3:5432/postgres"));
    assert_true(dcs_api_url(false, "10.0.0.3", 8008, m.api_url, sizeof(m.api_url)) > 0);
    m.state = DCS_STATE_RUNNING;
    m.role = DCS_ROLE_PRIMARY;
    m.has_xlog_location = true;
    m.xlog_location = 100;
    m.has_timeline = true;
    m.timeline = 2;
    m.tags.nosync = true;
    m.tags.has_failover_priority = true;
    m.tags.failover_priority = 5;
    snprintf(m.tags.extra, sizeof(m.tags.extra), "{\"zone\":\"b\"}");
    char *s = encode_ok(&m);
    char want[1024];
    snprintf(want, sizeof(want),
             "{\"conn_url\":\"postgres://10.0.0.3:5432/postgres\",\"api_url\":\"http://10.0.0.3:"
             "8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\","
             "\"tags\":{\"failover_priority\":5,\"nosync\":true,\"zone\":\"b\"},"
             "\"xlog_location\":100,\"timeline\":2,\"pgwarden\":\"%s\"}",
             PGW_VERSION);
    assert_string_equal(s, want);
    /* and back */
    struct dcs_member back;
    decode_ok(s, &back);
    assert_string_equal(back.agent_version, PGW_VERSION);
    assert_int_equal(back.tags.failover_priority, 5);
    assert_true(back.tags.nosync);
    assert_string_equal(back.tags.extra, "{\"zone\":\"b\"}");
    char *again = encode_ok(&back);
    assert_string_equal(again, s);
    free(again);
    free(s);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    struct dcs_member m;
    struct dcs_err err = {{0}};
    dcs_member_init(&m);
    m.state = DCS_STATE_STOPPED;
    m.role = DCS_ROLE_REPLICA;
    snprintf(m.api_url, sizeof(m.api_url), "http://h:8008/patroni");
    assert_null(dcs_member_encode(&m, NULL, &err));
    assert_non_null(strstr(err.msg, "'conn_url' is required"));
    snprintf(m.conn_url, sizeof(m.conn_url), "postgres://rep:s3cret@h:5432/postgres");
    assert_null(dcs_member_encode(&m, NULL, &err));
    assert_non_null(strstr(err.msg, "user or password"));
    assert_null(strstr(err.msg, "s3cret"));
    snprintf(m.conn_url, sizeof(m.conn_url), "mysql://h:5432/postgres");
    assert_null(dcs_member_encode(&m, NULL, &err));
    snprintf(m.conn_url, sizeof(m.conn_url), "postgresql://h:5432/postgres");
    snprintf(m.api_url, sizeof(m.api_url), "ftp://h/patroni");
    assert_null(dcs_member_encode(&m, NULL, &err));
    snprintf(m.api_url, sizeof(m.api_url), "http://h:8008/patroni");
    m.role = DCS_ROLE_UNKNOWN;
    assert_null(dcs_member_encode(&m, NULL, &err));
    m.role = DCS_ROLE_DEMOTED;
    m.version[0] = '\0';
    assert_null(dcs_member_encode(&m, NULL, &err));
    snprintf(m.version, sizeof(m.version), "3.0.2");
    m.has_xlog_location = true;
    m.xlog_location = -1;
    assert_null(dcs_member_encode(&m, NULL, &err));
    m.xlog_location = 0;
    snprintf(m.tags.extra, sizeof(m.tags.extra), "{\"nosync\":true}");
    assert_null(dcs_member_encode(&m, NULL, &err));
    assert_non_null(strstr(err.msg, "known tag"));
    snprintf(m.tags.extra, sizeof(m.tags.extra), "[1]");
    assert_null(dcs_member_encode(&m, NULL, &err));
    snprintf(m.tags.extra, sizeof(m.tags.extra), "{bad");
    assert_null(dcs_member_encode(&m, NULL, &err));
    m.tags.extra[0] = '\0';
    snprintf(m.scheduled_restart, sizeof(m.scheduled_restart), "\"x\"");
    assert_null(dcs_member_encode(&m, NULL, &err));
    m.scheduled_restart[0] = '\0';
    snprintf(m.proxy_url, sizeof(m.proxy_url), "postgres://u:p@h:6432/postgres");
    assert_null(dcs_member_encode(&m, NULL, &err));
    m.proxy_url[0] = '\0';
    m.state = (enum dcs_state)1000;
    assert_null(dcs_member_encode(&m, NULL, &err));
    m.state = DCS_STATE_STOPPED;
    char *s = dcs_member_encode(&m, NULL, &err);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"state\":\"stopped\",\"role\":\"demoted\""));
    assert_non_null(strstr(s, "\"xlog_location\":0"));
    free(s);
}

static void test_credentials_dropped_on_decode(void **state)
{
    (void)state;
    struct dcs_member m;
    decode_ok("{\"conn_url\":\"postgres://admin:hunter2@10.0.0.9:5432/postgres\",\"api_url\":"
              "\"http://u:p@10.0.0.9:8008/patroni\"}",
              &m);
    assert_string_equal(m.conn_url, "postgres://10.0.0.9:5432/postgres");
    assert_string_equal(m.api_url, "http://10.0.0.9:8008/patroni");
    assert_false(dcs_url_has_userinfo(m.conn_url));
    assert_true(dcs_url_has_userinfo("postgres://a@h/db"));
    assert_false(dcs_url_has_userinfo("postgres://h/db?user=a@b"));
    assert_true(dcs_url_has_userinfo("postgres://u:pa/ss@h:5432/postgres"));
    decode_ok("{\"conn_url\":\"postgres://u:pa/ss@h:5432/postgres\"}", &m);
    assert_string_equal(m.conn_url, "postgres://h:5432/postgres");
    assert_false(dcs_url_has_userinfo("not a url"));
    assert_false(dcs_url_has_userinfo(NULL));
}

static void test_governor_url_value(void **state)
{
    (void)state;
    struct dcs_member m;
    decode_ok("postgres://replicator:rep-pass@10.0.0.4:5432/postgres?application_name="
              "http%3A%2F%2F10.0.0.4%3A8008%2Fpatroni",
              &m);
    assert_string_equal(m.conn_url, "postgres://10.0.0.4:5432/postgres");
    assert_string_equal(m.api_url, "http://10.0.0.4:8008/patroni");
    assert_int_equal(m.role, DCS_ROLE_UNKNOWN);
    decode_ok("postgres://10.0.0.5:5432/postgres", &m);
    assert_string_equal(m.conn_url, "postgres://10.0.0.5:5432/postgres");
    assert_string_equal(m.api_url, "");
    decode_ok("postgresql://h:1/postgres?sslmode=require&application_name=a+b%zz", &m);
    assert_string_equal(m.api_url, "a b%zz");
    decode_fails("postgres://h:1/postgres?application_name=%00", "application_name");
    static const char nul[] = "postgres://h:1/\0x";
    struct dcs_err err;
    assert_false(dcs_member_decode(nul, sizeof(nul) - 1, "pg", &m, &err));
}

static void test_url_builders(void **state)
{
    (void)state;
    char out[DCS_URL_MAX];
    assert_true(dcs_conn_url("::1", 5432, "postgres", out, sizeof(out)) > 0);
    assert_string_equal(out, "postgres://[::1]:5432/postgres");
    assert_true(dcs_api_url(true, "db1.example.com", 8443, out, sizeof(out)) > 0);
    assert_string_equal(out, "https://db1.example.com:8443/patroni");
    assert_int_equal(dcs_conn_url("h", 0, "postgres", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_conn_url("h", 70000, "postgres", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_conn_url("u:p@h", 1, "postgres", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_conn_url("", 1, "postgres", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_conn_url("h h", 1, "postgres", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_conn_url("h", 1, "a/b", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_conn_url("h", 1, "", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_api_url(false, NULL, 1, out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_api_url(false, "host", 8008, out, 10), -ENAMETOOLONG);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(dcs_role_name(DCS_ROLE_PRIMARY), "master");
    assert_int_equal(dcs_role_parse("master"), DCS_ROLE_PRIMARY);
    assert_int_equal(dcs_role_parse("primary"), DCS_ROLE_PRIMARY);
    assert_int_equal(dcs_role_parse("uninitialized"), DCS_ROLE_UNINITIALIZED);
    assert_int_equal(dcs_role_parse("promoted"), DCS_ROLE_PROMOTED);
    assert_int_equal(dcs_role_parse(NULL), DCS_ROLE_UNKNOWN);
    assert_null(dcs_role_name(DCS_ROLE_UNKNOWN));
    assert_null(dcs_role_name((enum dcs_role) - 1));
    for (int s = DCS_STATE_RUNNING; s <= DCS_STATE_CUSTOM_BOOTSTRAP_FAILED; s++)
        assert_int_equal(dcs_state_parse(dcs_state_name((enum dcs_state)s)), s);
    assert_string_equal(dcs_state_name(DCS_STATE_INITIALIZING), "initializing new cluster");
    assert_int_equal(dcs_state_parse("Running"), DCS_STATE_UNKNOWN);
}

static void test_wrong_types_are_errors(void **state)
{
    (void)state;
    decode_fails("{\"conn_url\":5}", "'conn_url' must be a string");
    decode_fails("{\"api_url\":[]}", "'api_url' must be a string");
    decode_fails("{\"state\":true}", "'state' must be a string");
    decode_fails("{\"role\":{}}", "'role' must be a string");
    decode_fails("{\"version\":3}", "'version' must be a string");
    decode_fails("{\"xlog_location\":\"50331856\"}", "'xlog_location' must be an integer");
    decode_fails("{\"xlog_location\":1.5}", "'xlog_location' must be an integer");
    decode_fails("{\"xlog_location\":-1}", "outside");
    decode_fails("{\"timeline\":\"4\"}", "'timeline' must be an integer");
    decode_fails("{\"timeline\":4294967296}", "outside");
    decode_fails("{\"pending_restart\":\"yes\"}", "'pending_restart' must be true or false");
    decode_fails("{\"pause\":1}", "'pause'");
    decode_fails("{\"checkpoint_after_promote\":\"false\"}", "checkpoint_after_promote");
    decode_fails("{\"tags\":[]}", "'tags' must be an object");
    decode_fails("{\"tags\":{\"nofailover\":\"true\"}}", "tag 'nofailover'");
    decode_fails("{\"tags\":{\"nosync\":1}}", "tag 'nosync'");
    decode_fails("{\"tags\":{\"failover_priority\":\"high\"}}", "failover_priority");
    decode_fails("{\"tags\":{\"failover_priority\":1.5}}", "failover_priority");
    decode_fails("{\"tags\":{\"replicatefrom\":7}}", "replicatefrom");
    decode_fails("{\"scheduled_restart\":\"soon\"}", "scheduled_restart");
    decode_fails("[]", "must be a JSON object");
    decode_fails("\"postgres\"", "must be a JSON object");
    decode_fails("{\"conn_url\":\"postgres://h/x\"", "invalid JSON");
    decode_fails("", "empty");
    /* known fields that are null are absent, unknown fields are ignored */
    struct dcs_member m;
    decode_ok("{\"timeline\":null,\"tags\":null,\"whatever\":{\"deep\":[1,2,3]},\"role\":null}",
              &m);
    assert_false(m.has_timeline);
    assert_int_equal(m.role, DCS_ROLE_UNKNOWN);
}

static void test_limits(void **state)
{
    (void)state;
    char *v = malloc(DCS_URL_MAX + 64);
    assert_non_null(v);
    int n = snprintf(v, 64, "{\"conn_url\":\"postgres://");
    memset(v + n, 'h', DCS_URL_MAX);
    snprintf(v + n + DCS_URL_MAX, 64, "\"}");
    decode_fails(v, "longer than");
    free(v);

    char tags[DCS_TAGS_EXTRA_MAX + 100];
    n = snprintf(tags, sizeof(tags), "{\"tags\":{\"big\":\"");
    memset(tags + n, 'x', DCS_TAGS_EXTRA_MAX);
    snprintf(tags + n + DCS_TAGS_EXTRA_MAX, 10, "\"}}");
    decode_fails(tags, "custom tags exceed");

    struct dcs_member m;
    struct dcs_err err;
    size_t big = DCS_VALUE_MAX + 10;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    assert_false(dcs_member_decode(huge, big, "pg", &m, &err));
    free(huge);
    char longname[DCS_NAME_MAX + 10];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(dcs_member_decode("{}", 2, longname, &m, &err));
    assert_false(dcs_member_decode(NULL, 0, NULL, &m, &err));
}

/* Truncations and byte flips of real values: errors or values, never a crash (ASan/UBSan). */
static void test_mutations_never_crash(void **state)
{
    (void)state;
    const char *const samples[] = {replica_302, leader_302, replica_4x};
    uint32_t seed = 12345;
    struct dcs_member m;
    struct dcs_err err;
    for (size_t s = 0; s < 3; s++) {
        size_t len = strlen(samples[s]);
        char *buf = malloc(len);
        assert_non_null(buf);
        for (size_t cut = 0; cut < len; cut++) {
            memcpy(buf, samples[s], cut);
            (void)dcs_member_decode(buf, cut, "pg", &m, &err);
        }
        for (int round = 0; round < 3000; round++) {
            memcpy(buf, samples[s], len);
            for (int k = 0; k < 3; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % len] = (char)(seed >> 16);
            }
            if (dcs_member_decode(buf, len, "pg", &m, &err)) {
                char *out = dcs_member_encode(&m, NULL, &err);
                free(out);
            }
        }
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_patroni_replica),
        cmocka_unit_test(test_patroni_values_round_trip_byte_exact),
        cmocka_unit_test(test_decode_patroni_leader_all_fields),
        cmocka_unit_test(test_decode_patroni_4x_tolerated),
        cmocka_unit_test(test_encode_ours),
        cmocka_unit_test(test_server_version_and_replay_lag),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_credentials_dropped_on_decode),
        cmocka_unit_test(test_governor_url_value),
        cmocka_unit_test(test_url_builders),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_wrong_types_are_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_mutations_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
