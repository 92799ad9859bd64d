/* Unit tests of agent/dcs/dyncfg: dynamic config defaults, Patroni samples, validation, PATCH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/dcs/dyncfg.h"

/* The config example of patroni-compat.md, with parameters filled in. */
static const char patroni_sample[] =
    "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"maximum_lag_on_failover\":1048576,"
    "\"postgresql\":{\"use_pg_rewind\":true,\"use_slots\":true,\"parameters\":{\"wal_level\":"
    "\"replica\",\"hot_standby\":\"on\",\"max_connections\":100,\"max_wal_senders\":10,"
    "\"wal_log_hints\":\"on\",\"checkpoint_completion_target\":0.9,\"archive_mode\":false}}}";

/* What patronictl edit-config / a YAML bootstrap.dcs section typically leaves behind. */
static const char patroni_full[] =
    "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"maximum_lag_on_failover\":1048576,"
    "\"master_start_timeout\":0,\"synchronous_mode\":true,\"synchronous_mode_strict\":false,"
    "\"synchronous_node_count\":2,\"failsafe_mode\":true,\"check_timeline\":true,"
    "\"max_timelines_history\":50,\"postgresql\":{\"use_pg_rewind\":false,\"use_slots\":true,"
    "\"pg_hba\":[\"host replication replicator 0.0.0.0/0 md5\",\"host all all 0.0.0.0/0 md5\"],"
    "\"parameters\":{\"max_connections\":200},\"recovery_conf\":{\"restore_command\":\"cp x y\"}}"
    ",\"slots\":{\"logical_a\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":"
    "\"pgoutput\"},\"phys\":null},\"ignore_slots\":[{\"name\":\"debezium\"}],\"standby_cluster\":"
    "{\"host\":\"10.1.0.1\",\"port\":5432},\"custom_key\":{\"kept\":[1,2.5,\"x\"]}}";

static void decode_ok(const char *v, struct dcs_config *c)
{
    struct dcs_err err = {{0}};
    if (!dcs_config_decode(v, strlen(v), c, &err))
        fail_msg("decode failed: %s", err.msg);
}

static void decode_fails(const char *v, const char *needle)
{
    struct dcs_config c;
    struct dcs_err err = {{0}};
    if (dcs_config_decode(v, strlen(v), &c, &err)) {
        dcs_config_free(&c);
        fail_msg("accepted %s", v);
    }
    assert_null(c.raw);
    if (needle && !strstr(err.msg, needle))
        fail_msg("error '%s' lacks '%s'", err.msg, needle);
}

static char *encode_ok(const struct dcs_config *c)
{
    struct dcs_err err = {{0}};
    char *s = dcs_config_encode(c, NULL, &err);
    if (!s)
        fail_msg("encode failed: %s", err.msg);
    return s;
}

static void test_defaults(void **state)
{
    (void)state;
    struct dcs_config c;
    decode_ok("{}", &c);
    assert_int_equal(c.ttl, 10);
    assert_int_equal(c.loop_wait, 1);
    assert_int_equal(c.retry_timeout, 3);
    assert_int_equal(c.maximum_lag_on_failover, 1048576);
    assert_int_equal(c.maximum_lag_on_syncnode, -1);
    assert_int_equal(c.primary_start_timeout, 300);
    assert_int_equal(c.primary_stop_timeout, 0);
    assert_int_equal(c.synchronous_node_count, 1);
    assert_int_equal(c.member_slots_ttl, 1800);
    assert_int_equal(c.synchronous_mode, DCS_SYNC_OFF);
    assert_false(c.synchronous_mode_strict);
    assert_false(c.failsafe_mode);
    assert_false(c.check_timeline);
    assert_false(c.pause);
    assert_true(c.use_pg_rewind);
    assert_true(c.use_slots);
    assert_false(c.standby_cluster);
    assert_null(dcs_config_parameters(&c));
    assert_null(dcs_config_pg_hba(&c));
    dcs_config_free(&c);

    /* a fresh config from the defaults: the keys Patroni would default differently are explicit */
    dcs_config_defaults(&c);
    char *s = encode_ok(&c);
    assert_string_equal(s, "{\"ttl\":10,\"loop_wait\":1,\"retry_timeout\":3,"
                           "\"maximum_lag_on_failover\":1048576,\"postgresql\":{"
                           "\"use_pg_rewind\":true,\"use_slots\":true}}");
    free(s);
    s = dcs_config_dump(&c, NULL);
    assert_string_equal(s, "{}");
    free(s);
}

static void test_patroni_sample(void **state)
{
    (void)state;
    struct dcs_config c;
    char text[64];
    decode_ok(patroni_sample, &c);
    assert_int_equal(c.ttl, 30);
    assert_int_equal(c.loop_wait, 10);
    assert_int_equal(c.retry_timeout, 10);
    assert_true(c.use_pg_rewind);
    const json_t *p = dcs_config_parameters(&c);
    assert_non_null(p);
    assert_true(dcs_config_param_text(json_object_get(p, "wal_level"), text, sizeof(text)));
    assert_string_equal(text, "replica");
    assert_true(dcs_config_param_text(json_object_get(p, "max_connections"), text, sizeof(text)));
    assert_string_equal(text, "100");
    assert_true(dcs_config_param_text(json_object_get(p, "checkpoint_completion_target"), text,
                                      sizeof(text)));
    assert_string_equal(text, "0.9");
    assert_true(dcs_config_param_text(json_object_get(p, "archive_mode"), text, sizeof(text)));
    assert_string_equal(text, "off");
    assert_false(dcs_config_param_text(json_object_get(p, "wal_level"), text, 3));
    assert_false(dcs_config_param_text(p, text, sizeof(text)));
    /* round trip: byte-identical (key order, 0.9 stays 0.9, false stays false) */
    char *s = encode_ok(&c);
    assert_string_equal(s, patroni_sample);
    free(s);
    s = dcs_config_dump(&c, NULL);
    assert_string_equal(s, patroni_sample);
    free(s);
    dcs_config_free(&c);
}

static void test_patroni_full_round_trip(void **state)
{
    (void)state;
    struct dcs_config c;
    decode_ok(patroni_full, &c);
    assert_int_equal(c.primary_start_timeout, 0); /* legacy master_start_timeout */
    assert_int_equal(c.synchronous_mode, DCS_SYNC_ON);
    assert_int_equal(c.synchronous_node_count, 2);
    assert_true(c.failsafe_mode);
    assert_true(c.check_timeline);
    assert_int_equal(c.max_timelines_history, 50);
    assert_false(c.use_pg_rewind);
    assert_true(c.standby_cluster);
    assert_int_equal(json_array_size(dcs_config_pg_hba(&c)), 2);
    char *s = encode_ok(&c);
    assert_string_equal(s, patroni_full); /* unknown keys and every section survive */
    free(s);
    /* typed edits land in place; the legacy key stays the one that is used */
    c.ttl = 40;
    c.primary_start_timeout = 10;
    c.synchronous_mode = DCS_SYNC_OFF;
    c.pause = true;
    s = encode_ok(&c);
    assert_non_null(strstr(s, "{\"ttl\":40,\"loop_wait\":10,"));
    assert_non_null(strstr(s, "\"master_start_timeout\":10,\"synchronous_mode\":false,"));
    assert_null(strstr(s, "primary_start_timeout"));
    assert_non_null(strstr(s, "\"custom_key\":{\"kept\":[1,2.5,\"x\"]},\"pause\":true}"));
    free(s);
    dcs_config_free(&c);
}

static void test_patroni_tolerant_scalars(void **state)
{
    (void)state;
    struct dcs_config c;
    decode_ok(
        "{\"ttl\":\" 30 \",\"loop_wait\":\"10\",\"synchronous_mode\":\"on\","
        "\"synchronous_mode_strict\":\"TRUE\",\"failsafe_mode\":1,\"check_timeline\":"
        "\"no\",\"pause\":\"yes\",\"postgresql\":{\"use_slots\":\"off\",\"use_pg_rewind\":0}}",
        &c);
    assert_int_equal(c.ttl, 30);
    assert_int_equal(c.loop_wait, 10);
    assert_int_equal(c.synchronous_mode, DCS_SYNC_ON);
    assert_true(c.synchronous_mode_strict);
    assert_true(c.failsafe_mode);
    assert_false(c.check_timeline);
    assert_true(c.pause);
    assert_false(c.use_slots);
    assert_false(c.use_pg_rewind);
    /* the encoder normalises them */
    char *s = encode_ok(&c);
    assert_non_null(strstr(s, "\"ttl\":30,\"loop_wait\":10,\"synchronous_mode\":true,"
                              "\"synchronous_mode_strict\":true,\"failsafe_mode\":true,"
                              "\"check_timeline\":false,\"pause\":true"));
    free(s);
    dcs_config_free(&c);
    decode_ok("{\"synchronous_mode\":\"quorum\",\"synchronous_node_count\":2}", &c);
    assert_int_equal(c.synchronous_mode, DCS_SYNC_QUORUM);
    assert_string_equal(dcs_sync_mode_name(c.synchronous_mode), "quorum");
    s = encode_ok(&c);
    assert_non_null(strstr(s, "\"synchronous_mode\":\"quorum\""));
    free(s);
    dcs_config_free(&c);
    decode_ok("{\"ttl\":null,\"pause\":null}", &c);
    assert_int_equal(c.ttl, 10);
    dcs_config_free(&c);
    /* member_slots_ttl (Patroni 4): seconds, or a string with a time unit; kept as written */
    static const struct {
        const char *json;
        int64_t secs;
    } ttls[] = {{"0", 0},
                {"90", 90},
                {"\"120\"", 120},
                {"\"30min\"", 1800},
                {"\"2h\"", 7200},
                {"\"1d\"", 86400},
                {"\"45s\"", 45},
                {"\"5000ms\"", 5},
                {"\"10 min\"", 600},
                {"null", 1800}};
    for (size_t i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
        char json[64];
        snprintf(json, sizeof(json), "{\"member_slots_ttl\":%s}", ttls[i].json);
        decode_ok(json, &c);
        assert_int_equal(c.member_slots_ttl, ttls[i].secs);
        s = encode_ok(&c);
        if (strcmp(ttls[i].json, "null") != 0) {
            char kept[64];
            snprintf(kept, sizeof(kept), "\"member_slots_ttl\":%s", ttls[i].json);
            if (!strstr(s, kept))
                fail_msg("%s not kept in %s", kept, s);
        }
        free(s);
        dcs_config_free(&c);
    }
}

static void test_validation_errors(void **state)
{
    (void)state;
    struct dcs_config ok;
    /* the boundaries are allowed: ttl == 2 * loop_wait == loop_wait + 2 * retry_timeout */
    decode_ok("{\"ttl\":4,\"loop_wait\":2,\"retry_timeout\":1}", &ok);
    dcs_config_free(&ok);
    decode_ok("{\"ttl\":20,\"loop_wait\":10,\"retry_timeout\":5}", &ok);
    dcs_config_free(&ok);
    decode_fails("{\"ttl\":3,\"loop_wait\":2,\"retry_timeout\":1}", "at least twice loop_wait");
    decode_fails("{\"ttl\":39,\"loop_wait\":20,\"retry_timeout\":1}", "at least twice loop_wait");
    decode_fails("{\"ttl\":10,\"loop_wait\":1,\"retry_timeout\":5}", "must not exceed ttl");
    decode_fails("{\"ttl\":1}", "ttl 1 is outside");
    decode_fails("{\"ttl\":100000}", "outside");
    decode_fails("{\"loop_wait\":0}", "loop_wait 0");
    decode_fails("{\"retry_timeout\":0}", "retry_timeout 0");
    decode_fails("{\"retry_timeout\":-3}", "retry_timeout");
    decode_fails("{\"maximum_lag_on_failover\":-1}", "maximum_lag_on_failover");
    decode_fails("{\"maximum_lag_on_syncnode\":-2}", "maximum_lag_on_syncnode");
    decode_fails("{\"primary_start_timeout\":-1}", "primary_start_timeout");
    decode_fails("{\"primary_stop_timeout\":-1}", "primary_stop_timeout");
    decode_fails("{\"synchronous_node_count\":0}", "synchronous_node_count");
    decode_fails("{\"synchronous_node_count\":33}", "synchronous_node_count");
    decode_fails("{\"max_timelines_history\":-1}", "max_timelines_history");
    decode_fails("{\"member_slots_ttl\":-1}", "member_slots_ttl");
    decode_fails("{\"member_slots_ttl\":\"30 fortnights\"}", "member_slots_ttl");
    decode_fails("{\"member_slots_ttl\":\"-5min\"}", "member_slots_ttl");
    decode_fails("{\"member_slots_ttl\":true}", "member_slots_ttl");
    /* types */
    decode_fails("{\"ttl\":true}", "'ttl' must be an integer");
    decode_fails("{\"ttl\":30.5}", "'ttl' must be an integer");
    decode_fails("{\"ttl\":\"30s\"}", "'ttl' must be an integer");
    decode_fails("{\"ttl\":\"\"}", "'ttl' must be an integer");
    decode_fails("{\"ttl\":[30]}", "'ttl' must be an integer");
    decode_fails("{\"synchronous_mode\":\"maybe\"}", "'synchronous_mode' must be a boolean");
    decode_fails("{\"failsafe_mode\":2}", "'failsafe_mode'");
    decode_fails("{\"pause\":{}}", "'pause'");
    decode_fails("{\"postgresql\":[]}", "'postgresql' must be an object");
    decode_fails("{\"postgresql\":{\"use_slots\":\"sometimes\"}}", "use_slots");
    decode_fails("{\"postgresql\":{\"parameters\":[]}}", "parameters");
    decode_fails("{\"postgresql\":{\"parameters\":{\"shared_buffers\":{\"v\":1}}}}",
                 "parameter 'shared_buffers'");
    decode_fails("{\"postgresql\":{\"parameters\":{\"x\":null}}}", "parameter 'x'");
    decode_fails("{\"postgresql\":{\"pg_hba\":\"host all all 0/0 md5\"}}", "pg_hba");
    decode_fails("{\"postgresql\":{\"pg_hba\":[\"ok\",1]}}", "pg_hba[1]");
    decode_fails("{\"slots\":[]}", "'slots'");
    decode_fails("{\"slots\":{\"a\":1}}", "slot 'a'");
    decode_fails("{\"ignore_slots\":{}}", "ignore_slots");
    decode_fails("{\"ignore_slots\":[1]}", "ignore_slots[0]");
    decode_fails("{\"standby_cluster\":\"x\"}", "standby_cluster");
    decode_fails("{\"watchdog\":{\"mode\":\"off\"}}", "watchdog");
    /* not a config at all */
    decode_fails("[]", "must be a JSON object");
    decode_fails("null", "must be a JSON object");
    decode_fails("{\"ttl\":", "invalid JSON");
    decode_fails("", "empty");

    struct dcs_config c;
    struct dcs_err err = {{0}};
    dcs_config_defaults(&c);
    c.ttl = 2;
    assert_null(dcs_config_encode(&c, NULL, &err));
    assert_non_null(strstr(err.msg, "must not exceed ttl"));
    assert_false(dcs_config_from_json(NULL, &c, &err));
    dcs_config_defaults(&c);
    c.raw = json_array();
    assert_null(dcs_config_encode(&c, NULL, &err));
    dcs_config_free(&c);
}

static void test_patch(void **state)
{
    (void)state;
    struct dcs_config cur, next, again;
    struct dcs_err err = {{0}};
    bool changed = false;
    decode_ok(patroni_sample, &cur);

    const char *p1 = "{\"ttl\":40,\"pause\":true,\"postgresql\":{\"parameters\":{"
                     "\"max_connections\":200,\"archive_mode\":null}}}";
    assert_true(dcs_config_patch(&cur, p1, strlen(p1), &next, &changed, &err));
    assert_true(changed);
    assert_int_equal(next.ttl, 40);
    assert_true(next.pause);
    char *s = dcs_config_dump(&next, NULL);
    assert_string_equal(s, "{\"ttl\":40,\"loop_wait\":10,\"retry_timeout\":10,"
                           "\"maximum_lag_on_failover\":1048576,\"postgresql\":{"
                           "\"use_pg_rewind\":true,\"use_slots\":true,\"parameters\":{"
                           "\"wal_level\":\"replica\",\"hot_standby\":\"on\",\"max_connections\":"
                           "200,\"max_wal_senders\":10,\"wal_log_hints\":\"on\","
                           "\"checkpoint_completion_target\":0.9}},\"pause\":true}");
    free(s);

    /* patronictl resume: {"pause": null} deletes the key */
    const char *p2 = "{\"pause\":null}";
    assert_true(dcs_config_patch(&next, p2, strlen(p2), &again, &changed, &err));
    assert_true(changed);
    assert_false(again.pause);
    assert_null(json_object_get(again.raw, "pause"));
    dcs_config_free(&again);

    /* a patch that changes nothing */
    const char *p3 = "{\"ttl\":40}";
    assert_true(dcs_config_patch(&next, p3, strlen(p3), &again, &changed, &err));
    assert_false(changed);
    dcs_config_free(&again);

    /* invalid results and invalid patches are refused; the current config is untouched */
    const char *bad[] = {"{\"ttl\":15}",
                         "{\"loop_wait\":100}",
                         "[1]",
                         "\"x\"",
                         "{",
                         "{\"postgresql\":{\"use_slots\":[]}}",
                         "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(dcs_config_patch(&next, bad[i], strlen(bad[i]), &again, &changed, &err));
        assert_null(again.raw);
    }
    assert_int_equal(next.ttl, 40);
    assert_int_equal(json_integer_value(json_object_get(next.raw, "ttl")), 40);

    /* a patch on a missing config builds it from {} */
    assert_true(dcs_config_patch(NULL, p3, strlen(p3), &again, NULL, &err));
    s = dcs_config_dump(&again, NULL);
    assert_string_equal(s, "{\"ttl\":40}");
    free(s);
    dcs_config_free(&again);
    dcs_config_free(&next);
    dcs_config_free(&cur);
}

static void test_mutations_never_crash(void **state)
{
    (void)state;
    const char *const samples[] = {patroni_sample, patroni_full};
    uint32_t seed = 99;
    struct dcs_config c;
    struct dcs_err err;
    for (size_t s = 0; s < 2; s++) {
        size_t len = strlen(samples[s]);
        char *buf = malloc(len);
        assert_non_null(buf);
        for (size_t cut = 0; cut < len; cut++) {
            memcpy(buf, samples[s], cut);
            if (dcs_config_decode(buf, cut, &c, &err))
                dcs_config_free(&c);
        }
        for (int round = 0; round < 3000; round++) {
            memcpy(buf, samples[s], len);
            for (int k = 0; k < 3; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % len] = (char)(seed >> 16);
            }
            if (dcs_config_decode(buf, len, &c, &err)) {
                free(dcs_config_encode(&c, NULL, &err));
                dcs_config_free(&c);
            }
        }
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_patroni_sample),
        cmocka_unit_test(test_patroni_full_round_trip),
        cmocka_unit_test(test_patroni_tolerant_scalars),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_mutations_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
