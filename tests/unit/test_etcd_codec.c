/* Unit tests for the etcd codec: base64, range ends, request bodies, numbers, error bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"
#include "agent/settings.h"

/* Dumps a built body compactly and compares it with the expected text; frees the body. */
static void assert_body(json_t *body, const char *expected)
{
    assert_non_null(body);
    char *s = etcd_json_dump(body);
    assert_non_null(s);
    assert_string_equal(s, expected);
    free(s);
    json_decref(body);
}

/* ---- base64 ---- */

static void test_b64_roundtrip(void **state)
{
    (void)state;
    static const struct {
        const char *plain;
        const char *b64;
    } cases[] = {{"", ""},
                 {"f", "Zg=="},
                 {"fo", "Zm8="},
                 {"foo", "Zm9v"},
                 {"/service/c1/leader", "L3NlcnZpY2UvYzEvbGVhZGVy"},
                 {"/pg/cluster1/leader", "L3BnL2NsdXN0ZXIxL2xlYWRlcg=="},
                 {"node1", "bm9kZTE="}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *enc = etcd_b64_encode(cases[i].plain, strlen(cases[i].plain));
        assert_string_equal(enc, cases[i].b64);
        free(enc);
        char *dec;
        size_t n;
        assert_int_equal(etcd_b64_decode(cases[i].b64, strlen(cases[i].b64), 100, &dec, &n), 0);
        assert_int_equal(n, strlen(cases[i].plain));
        assert_memory_equal(dec, cases[i].plain, n);
        assert_int_equal(dec[n], '\0');
        free(dec);
    }
    /* binary bytes, including NUL and 0xff */
    const unsigned char bin[] = {0, 0xff, 0x10, 0x80, 0};
    char *enc = etcd_b64_encode(bin, sizeof(bin));
    char *dec;
    size_t n;
    assert_int_equal(etcd_b64_decode(enc, strlen(enc), 100, &dec, &n), 0);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(dec, bin, n);
    free(enc);
    free(dec);
}

static void test_b64_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "Zg",   "Zg=",  "Z===", "====",     "Zm9v\n",          "Zm 9", "Zm9v=", "Zg=a",
        "=Zg=", "Zm-_", "Zm9",  "Zg==Zg==", "\xc3\xa9\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *dec = (char *)1;
        size_t n = 7;
        assert_int_equal(etcd_b64_decode(bad[i], strlen(bad[i]), 100, &dec, &n), ETCD_E_PROTOCOL);
        assert_null(dec);
        assert_int_equal(n, 0);
    }
    /* over the cap */
    char *dec;
    size_t n;
    assert_int_equal(etcd_b64_decode("Zm9vYmFy", 8, 5, &dec, &n), ETCD_E_PROTOCOL);
    assert_int_equal(etcd_b64_decode("Zm9vYmFy", 8, 6, &dec, &n), 0);
    free(dec);
}

static void test_prefix_end(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(etcd_prefix_end("/svc/", 5, out), 5);
    assert_memory_equal(out, "/svc0", 5);
    assert_int_equal(etcd_prefix_end("a\xff\xff", 3, out), 1);
    assert_memory_equal(out, "b", 1);
    assert_int_equal(etcd_prefix_end("\xff", 1, out), 1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(etcd_prefix_end("", 0, out), 1);
    assert_int_equal(out[0], '\0');
}

/* ---- request bodies ---- */

static void test_req_range(void **state)
{
    (void)state;
    assert_body(etcd_req_range(&(struct etcd_range_req){.key = "/svc/config"}),
                "{\"key\":\"L3N2Yy9jb25maWc=\"}");
    assert_body(etcd_req_range(&(struct etcd_range_req){.key = "/svc/",
                                                        .prefix = true,
                                                        .limit = 10,
                                                        .revision = 9007199254740993LL,
                                                        .serializable = true,
                                                        .keys_only = true,
                                                        .count_only = true}),
                "{\"key\":\"L3N2Yy8=\",\"range_end\":\"L3N2YzA=\",\"limit\":\"10\","
                "\"revision\":\"9007199254740993\",\"serializable\":true,\"keys_only\":true,"
                "\"count_only\":true}");
    assert_null(etcd_req_range(&(struct etcd_range_req){.key = NULL}));
    assert_null(etcd_req_range(&(struct etcd_range_req){.key = "a", .limit = -1}));
    assert_null(etcd_req_range(NULL));
}

static void test_req_put_delete(void **state)
{
    (void)state;
    assert_body(etcd_req_put(&(struct etcd_put_req){.key = "/svc/config",
                                                    .value = "hello2",
                                                    .value_len = 6,
                                                    .lease = 2324035599199342092LL,
                                                    .prev_kv = true}),
                "{\"key\":\"L3N2Yy9jb25maWc=\",\"value\":\"aGVsbG8y\","
                "\"lease\":\"2324035599199342092\",\"prev_kv\":true}");
    /* an empty value is sent explicitly */
    assert_body(etcd_req_put(&(struct etcd_put_req){.key = "k"}),
                "{\"key\":\"aw==\",\"value\":\"\"}");
    assert_null(etcd_req_put(&(struct etcd_put_req){.key = "k", .value = NULL, .value_len = 3}));
    assert_null(etcd_req_put(&(struct etcd_put_req){.key = "k", .lease = -5}));
    assert_null(etcd_req_put(
        &(struct etcd_put_req){.key = "k", .value = "x", .value_len = (size_t)ETCD_MAX_VALUE + 1}));
    assert_body(
        etcd_req_delete(&(struct etcd_delete_req){.key = "/svc/", .prefix = true, .prev_kv = true}),
        "{\"key\":\"L3N2Yy8=\",\"range_end\":\"L3N2YzA=\",\"prev_kv\":true}");
}

static void test_req_txn(void **state)
{
    (void)state;
    const char *k = "/pg/cluster1/leader";
    struct etcd_cmp cmps[] = {
        {.target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = k, .number = 0},
        {.target = ETCD_CMP_MOD, .op = ETCD_LESS, .key = k, .number = 5},
        {.target = ETCD_CMP_VERSION, .op = ETCD_GREATER, .key = k, .number = 1},
        {.target = ETCD_CMP_VALUE,
         .op = ETCD_NOT_EQUAL,
         .key = k,
         .value = "node1",
         .value_len = 5},
        {.target = ETCD_CMP_LEASE, .op = ETCD_EQUAL, .key = k, .number = 2324035599199342092LL},
    };
    struct etcd_op success[] = {
        {.type = ETCD_OP_PUT,
         .put = {.key = k, .value = "node1", .value_len = 5, .lease = 2324035599199342092LL}},
        {.type = ETCD_OP_DELETE, .del = {.key = "/x"}},
    };
    struct etcd_op failure[] = {{.type = ETCD_OP_RANGE, .range = {.key = k}}};
    struct etcd_txn_req req = {.cmps = cmps,
                               .n_cmps = 5,
                               .success = success,
                               .n_success = 2,
                               .failure = failure,
                               .n_failure = 1};
    const char *K = "\"L3BnL2NsdXN0ZXIxL2xlYWRlcg==\"";
    char expected[2048];
    snprintf(expected, sizeof(expected),
             "{\"compare\":["
             "{\"target\":\"CREATE\",\"key\":%s,\"result\":\"EQUAL\",\"create_revision\":\"0\"},"
             "{\"target\":\"MOD\",\"key\":%s,\"result\":\"LESS\",\"mod_revision\":\"5\"},"
             "{\"target\":\"VERSION\",\"key\":%s,\"result\":\"GREATER\",\"version\":\"1\"},"
             "{\"target\":\"VALUE\",\"key\":%s,\"result\":\"NOT_EQUAL\",\"value\":\"bm9kZTE=\"},"
             "{\"target\":\"LEASE\",\"key\":%s,\"result\":\"EQUAL\","
             "\"lease\":\"2324035599199342092\"}],"
             "\"success\":[{\"request_put\":{\"key\":%s,\"value\":\"bm9kZTE=\","
             "\"lease\":\"2324035599199342092\"}},"
             "{\"request_delete_range\":{\"key\":\"L3g=\"}}],"
             "\"failure\":[{\"request_range\":{\"key\":%s}}]}",
             K, K, K, K, K, K, K);
    assert_body(etcd_req_txn(&req), expected);

    /* no compares, no failure branch */
    struct etcd_txn_req plain = {.success = success, .n_success = 1};
    json_t *b = etcd_req_txn(&plain);
    assert_non_null(b);
    assert_null(json_object_get(b, "compare"));
    assert_null(json_object_get(b, "failure"));
    json_decref(b);

    /* a bad target, op or nested op makes the whole body fail */
    struct etcd_cmp bad_cmp = {.target = (enum etcd_cmp_target)9, .key = k};
    assert_null(etcd_req_txn(&(struct etcd_txn_req){.cmps = &bad_cmp, .n_cmps = 1}));
    struct etcd_op bad_op = {.type = ETCD_OP_PUT, .put = {.key = NULL}};
    assert_null(etcd_req_txn(&(struct etcd_txn_req){.success = &bad_op, .n_success = 1}));
    assert_null(etcd_req_txn(&(struct etcd_txn_req){.cmps = NULL, .n_cmps = 2}));
}

static void test_req_lease_auth_watch(void **state)
{
    (void)state;
    assert_body(etcd_req_lease_grant(10, 0), "{\"TTL\":\"10\"}");
    assert_body(etcd_req_lease_grant(10, 4242), "{\"TTL\":\"10\",\"ID\":\"4242\"}");
    assert_null(etcd_req_lease_grant(0, 0));
    assert_null(etcd_req_lease_grant(10, -1));
    assert_body(etcd_req_lease_id(2324035599199342092LL), "{\"ID\":\"2324035599199342092\"}");
    assert_null(etcd_req_lease_id(0));
    assert_body(etcd_req_lease_ttl(7, true), "{\"ID\":\"7\",\"keys\":true}");
    assert_body(etcd_req_auth("agent", "agentpw"), "{\"name\":\"agent\",\"password\":\"agentpw\"}");
    assert_body(etcd_req_watch("/service/c1/", 11, true),
                "{\"create_request\":{\"key\":\"L3NlcnZpY2UvYzEv\","
                "\"range_end\":\"L3NlcnZpY2UvYzEw\",\"start_revision\":\"11\",\"prev_kv\":true,"
                "\"progress_notify\":true}}");
    assert_body(etcd_req_watch("/p/", 0, false),
                "{\"create_request\":{\"key\":\"L3Av\",\"range_end\":\"L3Aw\","
                "\"progress_notify\":true}}");
}

/* ---- numbers ---- */

static void test_json_int64(void **state)
{
    (void)state;
    json_t *o = json_loads("{\"s\":\"9223372036854775807\",\"neg\":\"-1\",\"min\":"
                           "\"-9223372036854775808\",\"n\":42,\"over\":\"9223372036854775808\","
                           "\"plus\":\"+1\",\"sp\":\" 1\",\"hex\":\"0x10\",\"empty\":\"\","
                           "\"frac\":1.5,\"b\":true,\"nul\":null,\"tail\":\"12a\","
                           "\"u\":\"18446744073709551615\",\"long\":\"000000000000000000001\"}",
                           0, NULL);
    assert_non_null(o);
    int64_t v;
    assert_true(etcd_json_i64(o, "s", true, &v));
    assert_true(v == INT64_MAX);
    assert_true(etcd_json_i64(o, "neg", true, &v));
    assert_true(v == -1);
    assert_true(etcd_json_i64(o, "min", true, &v));
    assert_true(v == INT64_MIN);
    assert_true(etcd_json_i64(o, "n", true, &v));
    assert_true(v == 42);
    assert_true(etcd_json_i64(o, "missing", false, &v));
    assert_true(v == 0);
    assert_false(etcd_json_i64(o, "missing", true, &v));
    const char *bad[] = {"over", "plus", "sp",   "hex", "empty", "frac",
                         "b",    "nul",  "tail", "u",   "long"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(etcd_json_i64(o, bad[i], false, &v));
    uint64_t u;
    assert_true(etcd_json_u64(o, "u", true, &u));
    assert_true(u == UINT64_MAX);
    assert_false(etcd_json_u64(o, "neg", true, &u));
    json_decref(o);
}

/* ---- errors ---- */

static void test_error_bodies(void **state)
{
    (void)state;
    struct etcd_error e;
    /* etcd 3.4/3.5 shape (recorded from 3.4.23) */
    const char *b34 = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                      "\"etcdserver: requested lease not found\",\"code\":5}";
    assert_int_equal(etcd_error_from_body(404, b34, strlen(b34), "http://a:1", &e),
                     ETCD_E_LEASE_NOT_FOUND);
    assert_int_equal(e.grpc_code, 5);
    assert_int_equal(e.http_status, 404);
    assert_string_equal(e.message, "etcdserver: requested lease not found");
    assert_string_equal(e.endpoint, "http://a:1");
    /* etcd 3.6 shape: no "error" field */
    const char *b36 = "{\"code\":11,\"message\":\"etcdserver: mvcc: required revision has been "
                      "compacted\",\"details\":[]}";
    assert_int_equal(etcd_error_from_body(400, b36, strlen(b36), "", &e), ETCD_E_COMPACTED);
    assert_int_equal(e.grpc_code, 11);
    static const struct {
        long http;
        const char *body;
        int err;
    } cases[] = {
        {401, "{\"code\":16,\"message\":\"etcdserver: invalid auth token\"}", ETCD_E_AUTH},
        {400,
         "{\"error\":\"etcdserver: user name is empty\",\"code\":3,\"message\":"
         "\"etcdserver: user name is empty\"}",
         ETCD_E_AUTH},
        {403, "{\"code\":7,\"message\":\"etcdserver: permission denied\"}", ETCD_E_PERMISSION},
        {503, "{\"code\":14,\"message\":\"etcdserver: no leader\"}", ETCD_E_UNAVAILABLE},
        {400, "{\"code\":11,\"message\":\"etcdserver: too large lease TTL\"}", ETCD_E_INVALID},
        {400,
         "{\"error\":\"illegal base64 data at input byte 0\",\"message\":\"illegal base64 "
         "data at input byte 0\",\"code\":3}",
         ETCD_E_INVALID},
        {404, "{\"code\":5,\"message\":\"etcdserver: user not found\"}", ETCD_E_NOT_FOUND},
        {502, "<html>bad gateway</html>", ETCD_E_UNAVAILABLE},
        {405, "Method Not Allowed\n", ETCD_E_INVALID},
        {401, "", ETCD_E_AUTH},
        {500, "{\"code\":\"14\",\"message\":\"x\"}", ETCD_E_PROTOCOL}, /* code not a number */
        {500, "{\"code\":14,\"message\":123}", ETCD_E_PROTOCOL},       /* message not a string */
        {400, "{\"code\":3,\"message\":\"trunc", ETCD_E_INVALID},      /* truncated JSON */
        {200, "[1,2]", ETCD_E_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(
            etcd_error_from_body(cases[i].http, cases[i].body, strlen(cases[i].body), "", &e),
            cases[i].err);
    /* control characters never reach the message */
    const char *ctl = "{\"code\":9,\"message\":\"a\\nb\\u0001c\"}";
    etcd_error_from_body(400, ctl, strlen(ctl), "", &e);
    assert_string_equal(e.message, "a?b?c");
    for (int err = ETCD_E_NOMEM; err <= 0; err++)
        assert_non_null(etcd_strerror(err));
}

static void test_cluster_prefix(void **state)
{
    (void)state;
    struct pgw_etcd_settings s = {.namespace = "/service", .scope = "batman"};
    char out[64];
    assert_true(etcd_cluster_prefix(&s, out, sizeof(out)));
    assert_string_equal(out, "/service/batman/");
    snprintf(s.namespace, sizeof(s.namespace), "service/");
    assert_true(etcd_cluster_prefix(&s, out, sizeof(out)));
    assert_string_equal(out, "/service/batman/");
    snprintf(s.namespace, sizeof(s.namespace), "/");
    assert_true(etcd_cluster_prefix(&s, out, sizeof(out)));
    assert_string_equal(out, "/batman/");
    assert_false(etcd_cluster_prefix(&s, out, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_roundtrip),        cmocka_unit_test(test_b64_invalid),
        cmocka_unit_test(test_prefix_end),           cmocka_unit_test(test_req_range),
        cmocka_unit_test(test_req_put_delete),       cmocka_unit_test(test_req_txn),
        cmocka_unit_test(test_req_lease_auth_watch), cmocka_unit_test(test_json_int64),
        cmocka_unit_test(test_error_bodies),         cmocka_unit_test(test_cluster_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
