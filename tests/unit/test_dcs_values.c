/* Unit tests of agent/dcs/values and history: leader, initialize, optime, status, sync, failover,
 * failsafe, history. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/dcs/history.h"
#include "agent/dcs/values.h"

#define S(x) x, strlen(x)

static void assert_err(const struct dcs_err *err, const char *needle)
{
    if (!strstr(err->msg, needle))
        fail_msg("error '%s' lacks '%s'", err->msg, needle);
}

/* ---- leader, initialize, optime ---------------------------------------------------------- */

static void test_leader(void **state)
{
    (void)state;
    char name[DCS_NAME_MAX];
    struct dcs_err err = {{0}};
    assert_true(dcs_leader_decode(S("postgresql0"), name, sizeof(name), &err));
    assert_string_equal(name, "postgresql0");
    /* the value is the bytes of the name: not JSON, no trailing newline */
    assert_false(dcs_leader_decode(S("\"pg0\"\n"), name, sizeof(name), &err));
    assert_false(dcs_leader_decode(S(""), name, sizeof(name), &err));
    assert_false(dcs_leader_decode(S("a/b"), name, sizeof(name), &err));
    assert_false(dcs_leader_decode("a\0b", 3, name, sizeof(name), &err));
    assert_false(dcs_leader_decode(NULL, 0, name, sizeof(name), &err));
    assert_false(dcs_leader_decode(S("abcdef"), name, 4, &err));
    assert_err(&err, "longer");
}

static void test_initialize(void **state)
{
    (void)state;
    struct dcs_initialize in;
    struct dcs_err err = {{0}};
    char out[DCS_SYSID_MAX];
    assert_true(dcs_initialize_decode(S(""), &in, &err));
    assert_true(in.racing);
    assert_true(dcs_initialize_decode(S("7212345678901234567"), &in, &err));
    assert_false(in.racing);
    assert_string_equal(in.sysid, "7212345678901234567");
    assert_true(in.sysid_num == 7212345678901234567ULL);
    assert_true(dcs_initialize_decode(S("18446744073709551615"), &in, &err));
    assert_false(dcs_initialize_decode(S("18446744073709551616"), &in, &err));
    assert_false(dcs_initialize_decode(S("\"7212345678901234567\""), &in, &err));
    assert_false(dcs_initialize_decode(S("72123x"), &in, &err));
    assert_false(dcs_initialize_decode(S("-1"), &in, &err));
    assert_false(dcs_initialize_decode(S("123456789012345678901"), &in, &err));
    assert_int_equal(dcs_initialize_encode(7212345678901234567ULL, out, sizeof(out)), 19);
    assert_string_equal(out, "7212345678901234567");
    assert_int_equal(dcs_initialize_encode(1, out, 1), -ENAMETOOLONG);
}

static void test_optime_legacy(void **state)
{
    (void)state;
    int64_t lsn = 0;
    struct dcs_err err = {{0}};
    char out[32];
    assert_true(dcs_optime_decode(S("50331856"), &lsn, &err));
    assert_int_equal(lsn, 50331856);
    assert_false(dcs_optime_decode(S("9223372036854775808"), &lsn, &err));
    assert_false(dcs_optime_decode(S(""), &lsn, &err));
    assert_false(dcs_optime_decode(S("1.5"), &lsn, &err));
    assert_int_equal(dcs_optime_encode(50331856, out, sizeof(out)), 8);
    assert_string_equal(out, "50331856");
    assert_int_equal(dcs_optime_encode(-1, out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_optime_encode(123, out, 2), -ENAMETOOLONG);
}

/* ---- status ------------------------------------------------------------------------------ */

static void test_status(void **state)
{
    (void)state;
    struct dcs_status st;
    struct dcs_err err = {{0}};
    const char *patroni = "{\"optime\":67108992,\"slots\":{\"logical_a\":67100000,\"b\":1}}";
    assert_true(dcs_status_decode(S(patroni), &st, &err));
    assert_true(st.has_optime);
    assert_int_equal(st.optime, 67108992);
    assert_int_equal(st.nslots, 2);
    assert_string_equal(st.slots[0].name, "logical_a");
    assert_int_equal(st.slots[0].lsn, 67100000);
    char *s = dcs_status_encode(&st, NULL, &err);
    assert_string_equal(s, patroni);
    free(s);

    assert_true(dcs_status_decode(S("{\"optime\":5}"), &st, &err));
    s = dcs_status_encode(&st, NULL, &err);
    assert_string_equal(s, "{\"optime\":5}");
    free(s);

    /* Patroni 4 retain_slots; a legacy bare integer; optime as a string (Patroni's int()) */
    assert_true(
        dcs_status_decode(S("{\"optime\":7,\"retain_slots\":[\"pg0\",\"pg1\"]}"), &st, &err));
    assert_int_equal(st.nretain, 2);
    assert_string_equal(st.retain_slots[1], "pg1");
    s = dcs_status_encode(&st, NULL, &err);
    assert_string_equal(s, "{\"optime\":7,\"retain_slots\":[\"pg0\",\"pg1\"]}");
    free(s);
    assert_true(dcs_status_decode(S("12345"), &st, &err));
    assert_int_equal(st.optime, 12345);
    assert_true(dcs_status_decode(S("{\"optime\":\"99\"}"), &st, &err));
    assert_int_equal(st.optime, 99);
    assert_true(dcs_status_decode(S("{}"), &st, &err));
    assert_false(st.has_optime);
    assert_null(dcs_status_encode(&st, NULL, &err));

    static const char *const bad[] = {
        "{\"optime\":-1}",
        "{\"optime\":1.5}",
        "{\"optime\":\"x\"}",
        "{\"slots\":[]}",
        "{\"slots\":{\"a\":\"1\"}}",
        "{\"slots\":{\"a\":-5}}",
        "{\"retain_slots\":{}}",
        "{\"retain_slots\":[1]}",
        "[]",
        "-5",
        "\"1\"",
        "{",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dcs_status_decode(S(bad[i]), &st, &err))
            fail_msg("accepted %s", bad[i]);
    }
    /* more slots than fit */
    char big[8192];
    size_t pos = (size_t)snprintf(big, sizeof(big), "{\"optime\":1,\"slots\":{");
    for (int i = 0; i <= DCS_STATUS_SLOTS_MAX; i++)
        pos += (size_t)snprintf(big + pos, sizeof(big) - pos, "%s\"s%d\":%d", i ? "," : "", i, i);
    snprintf(big + pos, sizeof(big) - pos, "}}");
    assert_false(dcs_status_decode(S(big), &st, &err));
    assert_err(&err, "more than");
    char longslot[200];
    snprintf(longslot, sizeof(longslot), "{\"slots\":{\"%070d\":1}}", 0);
    assert_false(dcs_status_decode(S(longslot), &st, &err));
}

/* ---- sync -------------------------------------------------------------------------------- */

static void test_sync(void **state)
{
    (void)state;
    struct dcs_sync sy;
    struct dcs_err err = {{0}};
    const char *patroni = "{\"leader\":\"pg0\",\"sync_standby\":\"pg1,pg2\"}";
    assert_true(dcs_sync_decode(S(patroni), &sy, &err));
    assert_string_equal(sy.leader, "pg0");
    assert_int_equal(sy.nstandby, 2);
    assert_string_equal(sy.standby[1], "pg2");
    char *s = dcs_sync_encode(&sy, NULL, &err);
    assert_string_equal(s, patroni);
    free(s);
    assert_true(dcs_sync_matches(&sy, "PG1", false));
    assert_false(dcs_sync_matches(&sy, "pg0", false));
    assert_true(dcs_sync_matches(&sy, "pg0", true));
    assert_false(dcs_sync_matches(&sy, "pg3", true));
    assert_false(dcs_sync_matches(&sy, NULL, true));

    /* the race winner's value; names are sorted on write */
    assert_true(dcs_sync_decode(S("{\"leader\":\"pg1\",\"sync_standby\":null}"), &sy, &err));
    assert_int_equal(sy.nstandby, 0);
    s = dcs_sync_encode(&sy, NULL, &err);
    assert_string_equal(s, "{\"leader\":\"pg1\",\"sync_standby\":null}");
    free(s);
    assert_true(
        dcs_sync_decode(S("{\"leader\":\"b\",\"sync_standby\":\" z , ,a,m \"}"), &sy, &err));
    assert_int_equal(sy.nstandby, 3);
    assert_string_equal(sy.standby[0], "z");
    s = dcs_sync_encode(&sy, NULL, &err);
    assert_string_equal(s, "{\"leader\":\"b\",\"sync_standby\":\"a,m,z\"}");
    free(s);

    /* Patroni 4 quorum */
    assert_true(
        dcs_sync_decode(S("{\"leader\":\"a\",\"quorum\":1,\"sync_standby\":\"b,c\"}"), &sy, &err));
    assert_true(sy.has_quorum);
    assert_int_equal(sy.quorum, 1);
    s = dcs_sync_encode(&sy, NULL, &err);
    assert_string_equal(s, "{\"leader\":\"a\",\"quorum\":1,\"sync_standby\":\"b,c\"}");
    free(s);

    /* empty states */
    static const char *const empty[] = {"", "  ", "null", "{}", "{\"leader\":null}"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_true(dcs_sync_decode(S(empty[i]), &sy, &err));
        assert_string_equal(sy.leader, "");
        assert_false(dcs_sync_matches(&sy, "a", true));
    }
    assert_null(dcs_sync_encode(&sy, NULL, &err)); /* a leader is required */
    static const char *const bad[] = {"[]",
                                      "{\"leader\":1}",
                                      "{\"sync_standby\":[\"a\"]}",
                                      "{\"leader\":\"a\",\"quorum\":\"1\"}",
                                      "{\"leader\":\"a\",\"quorum\":-1}",
                                      "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dcs_sync_decode(S(bad[i]), &sy, &err))
            fail_msg("accepted %s", bad[i]);
    }
    memset(&sy, 0, sizeof(sy));
    snprintf(sy.leader, sizeof(sy.leader), "a");
    sy.nstandby = 1;
    snprintf(sy.standby[0], sizeof(sy.standby[0]), "x,y");
    assert_null(dcs_sync_encode(&sy, NULL, &err));
    sy.nstandby = DCS_SYNC_MAX + 1;
    assert_null(dcs_sync_encode(&sy, NULL, &err));
    char many[4096];
    size_t pos = (size_t)snprintf(many, sizeof(many), "{\"leader\":\"a\",\"sync_standby\":\"");
    for (int i = 0; i <= DCS_SYNC_MAX; i++)
        pos += (size_t)snprintf(many + pos, sizeof(many) - pos, "n%d,", i);
    snprintf(many + pos, sizeof(many) - pos, "\"}");
    assert_false(dcs_sync_decode(S(many), &sy, &err));
}

/* ---- failover ---------------------------------------------------------------------------- */

static void test_failover(void **state)
{
    (void)state;
    struct dcs_failover f;
    struct dcs_err err = {{0}};
    const char *patroni =
        "{\"leader\":\"pg0\",\"member\":\"pg1\",\"scheduled_at\":\"2019-09-24T12:00:00+00:00\"}";
    assert_true(dcs_failover_decode(S(patroni), &f, &err));
    assert_string_equal(f.leader, "pg0");
    assert_string_equal(f.candidate, "pg1");
    assert_true(f.has_scheduled_at);
    assert_int_equal(f.scheduled_at_ms, 1569326400000LL);
    char *s = dcs_failover_encode(&f, NULL, &err);
    assert_string_equal(s, patroni);
    free(s);

    /* another zone is kept as an instant and written in UTC */
    assert_true(dcs_failover_decode(
        S("{\"leader\":\"pg0\",\"scheduled_at\":\"2016-01-14T10:09:57.1394+01:00\"}"), &f, &err));
    assert_string_equal(f.scheduled_at, "2016-01-14T10:09:57.1394+01:00");
    s = dcs_failover_encode(&f, NULL, &err);
    assert_string_equal(
        s, "{\"leader\":\"pg0\",\"scheduled_at\":\"2016-01-14T09:09:57.139000+00:00\"}");
    free(s);

    /* cleared and empty forms */
    static const char *const empty[] = {"{}", "", "null", " "};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_true(dcs_failover_decode(S(empty[i]), &f, &err));
        assert_true(dcs_failover_empty(&f));
    }
    s = dcs_failover_encode(&f, NULL, &err);
    assert_string_equal(s, "{}");
    free(s);
    /* a candidate only (failover) */
    assert_true(dcs_failover_decode(S("{\"member\":\"pg2\"}"), &f, &err));
    assert_false(dcs_failover_empty(&f));
    s = dcs_failover_encode(&f, NULL, &err);
    assert_string_equal(s, "{\"member\":\"pg2\"}");
    free(s);
    /* the REST body's "candidate" is not a DCS field (Patroni ignores it as well) */
    assert_true(dcs_failover_decode(S("{\"candidate\":\"pg2\"}"), &f, &err));
    assert_true(dcs_failover_empty(&f));

    /* legacy "leader:candidate" */
    assert_true(dcs_failover_decode(S("pg0:pg1"), &f, &err));
    assert_string_equal(f.leader, "pg0");
    assert_string_equal(f.candidate, "pg1");
    assert_true(dcs_failover_decode(S(" pg0 : pg1 :x"), &f, &err));
    assert_string_equal(f.leader, "pg0");
    assert_string_equal(f.candidate, "pg1");
    assert_true(dcs_failover_decode(S("pg0"), &f, &err));
    assert_string_equal(f.leader, "pg0");
    assert_string_equal(f.candidate, "");
    assert_true(dcs_failover_decode(S(":pg1"), &f, &err));
    assert_string_equal(f.leader, "");
    assert_string_equal(f.candidate, "pg1");

    static const char *const bad[] = {
        "{\"leader\":1}",
        "{\"member\":[]}",
        "{\"scheduled_at\":12}",
        "{\"leader\":\"a\",\"scheduled_at\":\"tomorrow\"}",
        "{\"leader\":\"a\",\"scheduled_at\":\"2019-09-24T12:00:00\"}", /* no zone */
        "[\"a\"]",
        "{\"leader\":\"a\"",
        "a/b:c",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dcs_failover_decode(S(bad[i]), &f, &err))
            fail_msg("accepted %s", bad[i]);
    }
    memset(&f, 0, sizeof(f));
    snprintf(f.leader, sizeof(f.leader), "a/b");
    assert_null(dcs_failover_encode(&f, NULL, &err));
    memset(&f, 0, sizeof(f));
    f.has_scheduled_at = true;
    f.scheduled_at_ms = INT64_MAX;
    assert_null(dcs_failover_encode(&f, NULL, &err));
}

/* ---- failsafe ---------------------------------------------------------------------------- */

static void test_failsafe(void **state)
{
    (void)state;
    struct dcs_failsafe fs;
    struct dcs_err err = {{0}};
    const char *patroni =
        "{\"pg0\":\"http://10.0.0.1:8008/patroni\",\"pg1\":\"http://10.0.0.2:8008/patroni\"}";
    assert_true(dcs_failsafe_decode(S(patroni), &fs, &err));
    assert_int_equal(fs.n, 2);
    assert_string_equal(dcs_failsafe_find(&fs, "pg1")->api_url, "http://10.0.0.2:8008/patroni");
    assert_null(dcs_failsafe_find(&fs, "pg9"));
    assert_null(dcs_failsafe_find(&fs, NULL));
    char *s = dcs_failsafe_encode(&fs, NULL, &err);
    assert_string_equal(s, patroni);
    free(s);
    assert_true(dcs_failsafe_decode(S("{}"), &fs, &err));
    assert_int_equal(fs.n, 0);
    s = dcs_failsafe_encode(&fs, NULL, &err);
    assert_string_equal(s, "{}");
    free(s);
    static const char *const bad[] = {"[]",
                                      "{\"pg0\":1}",
                                      "{\"a/b\":\"http://x/patroni\"}",
                                      "{\"pg0\":\"http://u:p@x/patroni\"}",
                                      "",
                                      "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dcs_failsafe_decode(S(bad[i]), &fs, &err))
            fail_msg("accepted %s", bad[i]);
    }
    char many[8192];
    size_t pos = (size_t)snprintf(many, sizeof(many), "{");
    for (int i = 0; i <= DCS_FAILSAFE_MAX; i++)
        pos += (size_t)snprintf(many + pos, sizeof(many) - pos, "%s\"n%d\":\"http://h/p\"",
                                i ? "," : "", i);
    snprintf(many + pos, sizeof(many) - pos, "}");
    assert_false(dcs_failsafe_decode(S(many), &fs, &err));
    memset(&fs, 0, sizeof(fs));
    fs.n = 1;
    snprintf(fs.e[0].name, sizeof(fs.e[0].name), "pg0");
    snprintf(fs.e[0].api_url, sizeof(fs.e[0].api_url), "http://a:b@h/patroni");
    assert_null(dcs_failsafe_encode(&fs, NULL, &err));
}

/* ---- history ----------------------------------------------------------------------------- */

static void test_history(void **state)
{
    (void)state;
    struct dcs_history h;
    struct dcs_err err = {{0}};
    const char *patroni =
        "[[1,25623960,\"no recovery target specified\",\"2019-09-23T16:57:57+02:00\",\"pg0\"]]";
    assert_true(dcs_history_decode(S(patroni), &h, &err));
    assert_int_equal(h.n, 1);
    assert_int_equal(h.lines[0].timeline, 1);
    assert_int_equal(h.lines[0].lsn, 25623960);
    assert_string_equal(h.lines[0].reason, "no recovery target specified");
    assert_string_equal(h.lines[0].timestamp, "2019-09-23T16:57:57+02:00");
    assert_string_equal(h.lines[0].new_leader, "pg0");
    assert_int_equal(dcs_history_cluster_timeline(&h), 2);
    char *s = dcs_history_encode(&h, NULL, &err);
    assert_string_equal(s, patroni);
    free(s);

    /* older 3- and 4-item lines, appended lines, truncation */
    assert_true(dcs_history_append(&h, 2, 33554432, "no recovery target specified", NULL, NULL));
    assert_true(dcs_history_append(&h, 3, 50331856, "x", "2020-01-01T00:00:00+00:00", NULL));
    s = dcs_history_encode(&h, NULL, &err);
    assert_string_equal(s, "[[1,25623960,\"no recovery target specified\",\"2019-09-23T16:57:57+"
                           "02:00\",\"pg0\"],[2,33554432,\"no recovery target specified\"],[3,"
                           "50331856,\"x\",\"2020-01-01T00:00:00+00:00\"]]");
    struct dcs_history back;
    assert_true(dcs_history_decode(S(s), &back, &err));
    assert_int_equal(back.n, 3);
    assert_null(back.lines[1].timestamp);
    assert_null(back.lines[2].new_leader);
    dcs_history_free(&back);
    free(s);
    assert_int_equal(dcs_history_cluster_timeline(&h), 4);
    dcs_history_truncate(&h, 0);
    assert_int_equal(h.n, 3);
    dcs_history_truncate(&h, 2);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.lines[0].timeline, 2);
    assert_false(dcs_history_append(&h, 0, 1, "x", NULL, NULL));
    assert_false(dcs_history_append(&h, 1, -1, "x", NULL, NULL));
    assert_false(dcs_history_append(&h, 1, 1, NULL, NULL, NULL));
    dcs_history_free(&h);
    dcs_history_free(&h); /* idempotent */

    assert_true(dcs_history_decode(S("[]"), &h, &err));
    assert_int_equal(h.n, 0);
    assert_int_equal(dcs_history_cluster_timeline(&h), 1);
    s = dcs_history_encode(&h, NULL, &err);
    assert_string_equal(s, "[]");
    free(s);
    assert_true(dcs_history_decode(S("[[4,1,\"r\",null,null]]"), &h, &err));
    assert_null(h.lines[0].timestamp);
    dcs_history_free(&h);

    static const char *const bad[] = {
        "{}",
        "[1]",
        "[[1,2]]",
        "[[1,2,\"r\",\"t\",\"l\",\"x\"]]",
        "[[0,2,\"r\"]]",
        "[[1,-2,\"r\"]]",
        "[[\"1\",2,\"r\"]]",
        "[[1,2.5,\"r\"]]",
        "[[1,2,3]]",
        "[[1,2,\"r\",4]]",
        "[[1,2,\"r\",\"t\",[]]]",
        "[[1,2,\"r\"]",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dcs_history_decode(S(bad[i]), &h, &err))
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(h.n, 0);
        assert_null(h.lines);
    }
    /* a leader without a timestamp cannot be written */
    memset(&h, 0, sizeof(h));
    assert_true(dcs_history_append(&h, 1, 1, "r", NULL, "pg0"));
    assert_null(dcs_history_encode(&h, NULL, &err));
    dcs_history_free(&h);
}

static void test_history_large(void **state)
{
    (void)state;
    struct dcs_history h = {0};
    struct dcs_err err = {{0}};
    for (int i = 1; i <= 5000; i++)
        assert_true(dcs_history_append(&h, i, (int64_t)i * 16777216, "no recovery target specified",
                                       "2019-09-23T16:57:57+02:00", "node-with-a-longer-name"));
    size_t len = 0;
    char *s = dcs_history_encode(&h, &len, &err);
    assert_non_null(s);
    struct dcs_history back;
    assert_true(dcs_history_decode(s, len, &back, &err));
    assert_int_equal(back.n, 5000);
    assert_int_equal(dcs_history_cluster_timeline(&back), 5001);
    dcs_history_free(&back);
    free(s);
    dcs_history_free(&h);
}

/* ---- robustness -------------------------------------------------------------------------- */

static void test_mutations_never_crash(void **state)
{
    (void)state;
    const char *const samples[] = {
        "{\"optime\":67108992,\"slots\":{\"logical_a\":67100000}}",
        "{\"leader\":\"pg0\",\"sync_standby\":\"pg1,pg2\",\"quorum\":1}",
        "{\"leader\":\"pg0\",\"member\":\"pg1\",\"scheduled_at\":\"2019-09-24T12:00:00+00:00\"}",
        "{\"pg0\":\"http://10.0.0.1:8008/patroni\",\"pg1\":\"http://10.0.0.2:8008/patroni\"}",
        "[[1,25623960,\"no recovery target specified\",\"2019-09-23T16:57:57+02:00\",\"pg0\"]]",
    };
    uint32_t seed = 7;
    for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
        size_t len = strlen(samples[s]);
        char *buf = malloc(len);
        assert_non_null(buf);
        for (int round = 0; round < 2000 + (int)len; round++) {
            size_t n = len;
            memcpy(buf, samples[s], len);
            if (round < (int)len) {
                n = (size_t)round; /* every truncation */
            } else {
                for (int k = 0; k < 3; k++) {
                    seed = seed * 1103515245u + 12345u;
                    buf[(seed >> 8) % len] = (char)(seed >> 16);
                }
            }
            struct dcs_err err;
            struct dcs_status st;
            struct dcs_sync sy;
            struct dcs_failover f;
            struct dcs_failsafe fs;
            struct dcs_history h;
            struct dcs_initialize in;
            int64_t lsn;
            char name[DCS_NAME_MAX];
            if (dcs_status_decode(buf, n, &st, &err) && st.has_optime)
                free(dcs_status_encode(&st, NULL, &err));
            if (dcs_sync_decode(buf, n, &sy, &err) && sy.leader[0])
                free(dcs_sync_encode(&sy, NULL, &err));
            if (dcs_failover_decode(buf, n, &f, &err))
                free(dcs_failover_encode(&f, NULL, &err));
            if (dcs_failsafe_decode(buf, n, &fs, &err))
                free(dcs_failsafe_encode(&fs, NULL, &err));
            if (dcs_history_decode(buf, n, &h, &err)) {
                free(dcs_history_encode(&h, NULL, &err));
                dcs_history_free(&h);
            }
            (void)dcs_initialize_decode(buf, n, &in, &err);
            (void)dcs_optime_decode(buf, n, &lsn, &err);
            (void)dcs_leader_decode(buf, n, name, sizeof(name), &err);
        }
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader),        cmocka_unit_test(test_initialize),
        cmocka_unit_test(test_optime_legacy), cmocka_unit_test(test_status),
        cmocka_unit_test(test_sync),          cmocka_unit_test(test_failover),
        cmocka_unit_test(test_failsafe),      cmocka_unit_test(test_history),
        cmocka_unit_test(test_history_large), cmocka_unit_test(test_mutations_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
