/* Unit tests for strict etcd response parsing from bodies recorded on etcd 3.4.23, and mangled. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"

#define HDR                                                                                        \
    "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":"                           \
    "\"13668033151171901709\",\"revision\":\"8\",\"raft_term\":\"2\"}"
#define LEADER_B64 "L3NlcnZpY2UvYzEvbGVhZGVy" /* /service/c1/leader */

static json_t *load(const char *s)
{
    return etcd_json_load(s, strlen(s));
}

/* Parses body as a range answer; returns the parser's result (out cleared on failure). */
static int range_of(const char *body, struct etcd_range_result *r)
{
    json_t *j = load(body);
    if (!j) {
        memset(r, 0, sizeof(*r));
        return ETCD_E_PROTOCOL;
    }
    int rc = etcd_parse_range(j, false, r);
    json_decref(j);
    return rc;
}

static void test_range(void **state)
{
    (void)state;
    struct etcd_range_result r;
    const char *with = "{" HDR ",\"kvs\":[{\"key\":\"" LEADER_B64 "\",\"create_revision\":\"8\","
                       "\"mod_revision\":\"8\",\"version\":\"1\",\"value\":\"cGcw\"}],"
                       "\"count\":\"1\"}";
    assert_int_equal(range_of(with, &r), 0);
    assert_int_equal(r.header.revision, 8);
    assert_true(r.header.cluster_id == 15118495548433857066ULL);
    assert_true(r.header.member_id == 13668033151171901709ULL);
    assert_int_equal(r.n_kvs, 1);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.kvs[0].key, "/service/c1/leader");
    assert_int_equal(r.kvs[0].key_len, 18);
    assert_string_equal(r.kvs[0].value, "pg0");
    assert_int_equal(r.kvs[0].create_revision, 8);
    assert_int_equal(r.kvs[0].lease, 0);
    etcd_range_result_clear(&r);
    etcd_range_result_clear(&r); /* twice is fine */

    /* a missing key: no kvs and no count */
    assert_int_equal(range_of("{" HDR "}", &r), 0);
    assert_int_equal(r.n_kvs, 0);
    assert_null(r.kvs);
    assert_int_equal(r.count, 0);
    etcd_range_result_clear(&r);

    /* an empty value is omitted by etcd */
    assert_int_equal(range_of("{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"lease\":\"77\"}],"
                              "\"count\":\"1\",\"more\":true}",
                              &r),
                     0);
    assert_string_equal(r.kvs[0].value, "");
    assert_int_equal(r.kvs[0].value_len, 0);
    assert_int_equal(r.kvs[0].lease, 77);
    assert_true(r.more);
    etcd_range_result_clear(&r);
}

static void test_range_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "{",
        "{" HDR ",\"kvs\":[{\"key\":\"" LEADER_B64 "\"", /* truncated */
        "[]",
        "{}",                                                       /* no header */
        "{\"header\":[]}",                                          /* header not an object */
        "{\"header\":{\"revision\":8.5}}",                          /* not an integer */
        "{\"header\":{\"revision\":\"-3\"}}",                       /* negative revision */
        "{" HDR ",\"kvs\":{}}",                                     /* kvs not an array */
        "{" HDR ",\"kvs\":[5],\"count\":\"1\"}",                    /* kv not an object */
        "{" HDR ",\"kvs\":[{\"value\":\"cGcw\"}],\"count\":\"1\"}", /* kv without a key */
        "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"value\":42}],\"count\":\"1\"}", /* value a number */
        "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"value\":\"cGc\"}],\"count\":\"1\"}", /* bad b64 */
        "{" HDR ",\"kvs\":[{\"key\":\"a w==\"}],\"count\":\"1\"}",
        "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"version\":\"x\"}],\"count\":\"1\"}",
        "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"99999999999999999999\"}]}",
        "{" HDR ",\"kvs\":[{\"key\":\"aw==\"},{\"key\":\"aw==\"}],\"count\":\"1\"}", /* count<n */
        "{" HDR ",\"count\":\"-1\"}",
        "{" HDR ",\"more\":\"yes\"}",
        "{" HDR ",\"count\":\"1\",\"count\":\"2\"}", /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct etcd_range_result r;
        assert_int_not_equal(range_of(bad[i], &r), 0);
        assert_null(r.kvs);
        assert_int_equal(r.n_kvs, 0);
    }
}

static void test_huge_value(void **state)
{
    (void)state;
    /* a value whose decoded size is one byte over the cap */
    size_t n = (size_t)ETCD_MAX_VALUE + 3;
    char *raw = malloc(n);
    assert_non_null(raw);
    memset(raw, 'v', n);
    char *b64 = etcd_b64_encode(raw, n);
    size_t blen = strlen(b64) + 200;
    char *body = malloc(blen);
    snprintf(body, blen, "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"value\":\"%s\"}],\"count\":\"1\"}",
             b64);
    struct etcd_range_result r;
    assert_int_equal(range_of(body, &r), ETCD_E_PROTOCOL);
    /* at the cap it is fine */
    free(b64);
    b64 = etcd_b64_encode(raw, ETCD_MAX_VALUE);
    snprintf(body, blen, "{" HDR ",\"kvs\":[{\"key\":\"aw==\",\"value\":\"%s\"}],\"count\":\"1\"}",
             b64);
    assert_int_equal(range_of(body, &r), 0);
    assert_int_equal(r.kvs[0].value_len, ETCD_MAX_VALUE);
    etcd_range_result_clear(&r);
    free(b64);
    free(body);
    free(raw);
    /* a body over the size cap is not even parsed */
    assert_null(etcd_json_load("{}", (size_t)ETCD_MAX_BODY + 1));
}

static void test_put_delete(void **state)
{
    (void)state;
    struct etcd_put_result p;
    json_t *j = load("{" HDR ",\"prev_kv\":{\"key\":\"L3N2Yy9jb25maWc=\",\"create_revision\":"
                     "\"2\",\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"aGVsbG8=\"}}");
    assert_int_equal(etcd_parse_put(j, false, &p), 0);
    assert_true(p.has_prev);
    assert_string_equal(p.prev_kv.key, "/svc/config");
    assert_string_equal(p.prev_kv.value, "hello");
    etcd_put_result_clear(&p);
    json_decref(j);
    j = load("{" HDR ",\"prev_kv\":\"x\"}");
    assert_int_equal(etcd_parse_put(j, false, &p), ETCD_E_PROTOCOL);
    json_decref(j);

    struct etcd_delete_result d;
    j = load("{" HDR ",\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"aw==\",\"value\":\"eA==\"}]}");
    assert_int_equal(etcd_parse_delete(j, false, &d), 0);
    assert_int_equal(d.deleted, 1);
    assert_int_equal(d.n_prev_kvs, 1);
    assert_string_equal(d.prev_kvs[0].value, "x");
    etcd_delete_result_clear(&d);
    json_decref(j);
    j = load("{" HDR "}"); /* nothing deleted: "deleted" omitted */
    assert_int_equal(etcd_parse_delete(j, false, &d), 0);
    assert_int_equal(d.deleted, 0);
    json_decref(j);
    j = load("{" HDR ",\"deleted\":true}");
    assert_int_equal(etcd_parse_delete(j, false, &d), ETCD_E_PROTOCOL);
    json_decref(j);
}

/* The leader race of the reference: CREATE == 0 -> put, else range. */
static const struct etcd_cmp race_cmp = {
    .target = ETCD_CMP_CREATE, .op = ETCD_EQUAL, .key = "/service/c1/leader"};
static const struct etcd_op race_put = {
    .type = ETCD_OP_PUT, .put = {.key = "/service/c1/leader", .value = "pg1", .value_len = 3}};
static const struct etcd_op race_get = {.type = ETCD_OP_RANGE,
                                        .range = {.key = "/service/c1/leader"}};
static const struct etcd_txn_req race = {.cmps = &race_cmp,
                                         .n_cmps = 1,
                                         .success = &race_put,
                                         .n_success = 1,
                                         .failure = &race_get,
                                         .n_failure = 1};

static int txn_of(const char *body, struct etcd_txn_result *r)
{
    json_t *j = load(body);
    if (!j)
        return ETCD_E_PROTOCOL;
    int rc = etcd_parse_txn(j, &race, r);
    json_decref(j);
    return rc;
}

static void test_txn(void **state)
{
    (void)state;
    struct etcd_txn_result r;
    /* won */
    assert_int_equal(txn_of("{" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":"
                            "{\"header\":{\"revision\":\"5\"}}}]}",
                            &r),
                     0);
    assert_true(r.succeeded);
    assert_int_equal(r.n_responses, 1);
    assert_int_equal(r.responses[0].type, ETCD_OP_PUT);
    assert_int_equal(r.responses[0].put.header.revision, 5);
    etcd_txn_result_clear(&r);
    /* lost: no "succeeded" at all (recorded) */
    assert_int_equal(txn_of("{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision"
                            "\":\"8\"},\"kvs\":[{\"key\":\"" LEADER_B64 "\",\"create_revision\":"
                            "\"8\",\"mod_revision\":\"8\",\"version\":\"1\",\"value\":\"cGcw\"}],"
                            "\"count\":\"1\"}}]}",
                            &r),
                     0);
    assert_false(r.succeeded);
    assert_int_equal(r.responses[0].type, ETCD_OP_RANGE);
    assert_string_equal(r.responses[0].range.kvs[0].value, "pg0");
    etcd_txn_result_clear(&r);
    /* mismatches with the request */
    const char *bad[] = {
        "{" HDR ",\"succeeded\":true}", /* missing responses */
        "{" HDR ",\"succeeded\":true,\"responses\":[{\"response_range\":{}}]}", /* wrong type */
        "{" HDR ",\"responses\":[{\"response_range\":{}},{\"response_range\":{}}]}", /* 2 vs 1 */
        "{" HDR ",\"succeeded\":\"true\",\"responses\":[]}",
        "{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"!\"}]}}]}",
        "{" HDR ",\"responses\":[7]}",
        "{\"succeeded\":true,\"responses\":[{\"response_put\":{}}]}", /* no header */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(txn_of(bad[i], &r), 0);
        assert_null(r.responses);
        assert_int_equal(r.n_responses, 0);
    }
}

static void test_lease(void **state)
{
    (void)state;
    int64_t id;
    int64_t ttl;
    json_t *j = load("{" HDR ",\"ID\":\"4111120248187814681\",\"TTL\":\"10\"}");
    assert_int_equal(etcd_parse_lease_grant(j, &id, &ttl), 0);
    assert_true(id == 4111120248187814681LL);
    assert_int_equal(ttl, 10);
    json_decref(j);
    const char *bad_grant[] = {"{" HDR ",\"TTL\":\"10\"}", "{" HDR ",\"ID\":\"5\"}",
                               "{" HDR ",\"ID\":\"5\",\"TTL\":\"10\",\"error\":\"x\"}",
                               "{" HDR ",\"ID\":5.0,\"TTL\":\"10\"}"};
    for (size_t i = 0; i < sizeof(bad_grant) / sizeof(bad_grant[0]); i++) {
        j = load(bad_grant[i]);
        assert_int_equal(etcd_parse_lease_grant(j, &id, &ttl), ETCD_E_PROTOCOL);
        assert_int_equal(id, 0);
        json_decref(j);
    }

    struct etcd_error e = {0};
    j = load("{\"result\":{" HDR ",\"ID\":\"4242\",\"TTL\":\"10\"}}");
    assert_int_equal(etcd_parse_keepalive(j, 4242, &ttl, &e), 0);
    assert_int_equal(ttl, 10);
    json_decref(j);
    /* expired: TTL absent (recorded) or "0" */
    j = load("{\"result\":{" HDR ",\"ID\":\"4242\"}}");
    assert_int_equal(etcd_parse_keepalive(j, 4242, &ttl, &e), ETCD_E_LEASE_NOT_FOUND);
    assert_int_equal(ttl, 0);
    json_decref(j);
    j = load("{\"result\":{" HDR ",\"ID\":\"4242\",\"TTL\":\"0\"}}");
    assert_int_equal(etcd_parse_keepalive(j, 4242, &ttl, &e), ETCD_E_LEASE_NOT_FOUND);
    json_decref(j);
    /* a stream error in either gateway shape */
    j = load("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
             "leader\",\"http_status\":\"Service Unavailable\"}}");
    assert_int_equal(etcd_parse_keepalive(j, 4242, &ttl, &e), ETCD_E_UNAVAILABLE);
    assert_int_equal(e.grpc_code, 14);
    json_decref(j);
    j = load("{\"error\":{\"code\":5,\"message\":\"etcdserver: requested lease not found\"}}");
    assert_int_equal(etcd_parse_keepalive(j, 4242, &ttl, &e), ETCD_E_LEASE_NOT_FOUND);
    json_decref(j);
    const char *bad_ka[] = {"{" HDR ",\"ID\":\"4242\",\"TTL\":\"10\"}", /* not wrapped */
                            "{\"result\":{" HDR ",\"ID\":\"4243\",\"TTL\":\"10\"}}", /* other ID */
                            "{\"result\":{" HDR ",\"TTL\":\"10\"}}",
                            "{\"result\":{" HDR ",\"ID\":\"4242\",\"TTL\":\"-4\"}}",
                            "{\"result\":{\"ID\":\"4242\",\"TTL\":\"10\"}}",
                            "{\"result\":[]}"};
    for (size_t i = 0; i < sizeof(bad_ka) / sizeof(bad_ka[0]); i++) {
        j = load(bad_ka[i]);
        assert_int_equal(etcd_parse_keepalive(j, 4242, &ttl, &e), ETCD_E_PROTOCOL);
        json_decref(j);
    }

    struct etcd_lease_info info;
    j = load("{" HDR ",\"ID\":\"4242\",\"TTL\":\"9\",\"grantedTTL\":\"10\",\"keys\":[\"" LEADER_B64
             "\"]}");
    assert_int_equal(etcd_parse_timetolive(j, &info), 0);
    assert_int_equal(info.ttl, 9);
    assert_int_equal(info.granted_ttl, 10);
    assert_int_equal(info.n_keys, 1);
    assert_string_equal(info.keys[0].key, "/service/c1/leader");
    etcd_lease_info_clear(&info);
    json_decref(j);
    j = load("{" HDR ",\"ID\":\"4242\",\"TTL\":\"-1\"}"); /* recorded: no such lease */
    assert_int_equal(etcd_parse_timetolive(j, &info), 0);
    assert_int_equal(info.ttl, -1);
    json_decref(j);
    j = load("{" HDR ",\"ID\":\"4242\",\"keys\":[\"L3\",\"aw==\"]}");
    assert_int_equal(etcd_parse_timetolive(j, &info), ETCD_E_PROTOCOL);
    assert_null(info.keys);
    json_decref(j);
}

static void url_count(void *arg, const char *url, size_t len)
{
    (void)url;
    (void)len;
    (*(int *)arg)++;
}

static void test_auth_version_members(void **state)
{
    (void)state;
    const char *token;
    json_t *j = load("{" HDR ",\"token\":\"NXDzUuROhqOWLfTI.38\"}");
    assert_int_equal(etcd_parse_auth(j, &token), 0);
    assert_string_equal(token, "NXDzUuROhqOWLfTI.38");
    json_decref(j);
    const char *bad_auth[] = {"{" HDR "}", "{" HDR ",\"token\":\"\"}", "{" HDR ",\"token\":7}",
                              "{" HDR ",\"token\":\"a\\r\\nX-Evil: 1\"}"};
    for (size_t i = 0; i < sizeof(bad_auth) / sizeof(bad_auth[0]); i++) {
        j = load(bad_auth[i]);
        assert_int_equal(etcd_parse_auth(j, &token), ETCD_E_PROTOCOL);
        json_decref(j);
    }

    int major;
    int minor;
    const char *server;
    j = load("{\"etcdserver\":\"3.4.23\",\"etcdcluster\":\"3.4.0\"}");
    assert_int_equal(etcd_parse_version(j, &major, &minor, &server), 0);
    assert_int_equal(major, 3);
    assert_int_equal(minor, 4);
    assert_string_equal(server, "3.4.23");
    json_decref(j);
    j = load("{\"etcdserver\":\"3.6.1\",\"etcdcluster\":\"not_decided\"}");
    assert_int_equal(etcd_parse_version(j, &major, &minor, &server), 0);
    assert_int_equal(minor, 6);
    json_decref(j);
    j = load("{\"etcdserver\":3}");
    assert_int_equal(etcd_parse_version(j, &major, &minor, &server), ETCD_E_PROTOCOL);
    json_decref(j);

    int n = 0;
    j = load("{" HDR ",\"members\":[{\"ID\":\"3319\",\"name\":\"r1\",\"peerURLs\":[\"http://a:2380"
             "\"],\"clientURLs\":[\"https://127.0.0.1:23790\",\"https://[::1]:23790\"]},"
             "{\"ID\":\"5\",\"peerURLs\":[\"http://b:2380\"]}]}");
    assert_int_equal(etcd_parse_members(j, url_count, &n), 0);
    assert_int_equal(n, 2);
    json_decref(j);
    n = 0;
    j = load("{" HDR ",\"members\":[{\"clientURLs\":[\"http://a:1\",5]}]}");
    assert_int_equal(etcd_parse_members(j, url_count, &n), ETCD_E_PROTOCOL);
    assert_int_equal(n, 0); /* nothing taken from a bad list */
    json_decref(j);
}

/* ---- watch messages and the stream splitter ---- */

static const char *const watch_stream =
    "{\"result\":{" HDR ",\"created\":true}}\n"
    "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"" LEADER_B64 "\",\"create_revision\":"
    "\"9\",\"mod_revision\":\"9\",\"version\":\"1\",\"value\":\"bm9kZTI=\",\"lease\":\"77\"}},"
    "{\"kv\":{\"key\":\"aw==\",\"create_revision\":\"9\",\"mod_revision\":\"9\",\"version\":"
    "\"1\"}}]}}\n"
    "{\"result\":{" HDR ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"" LEADER_B64 "\","
    "\"mod_revision\":\"11\"},\"prev_kv\":{\"key\":\"" LEADER_B64 "\",\"create_revision\":\"8\","
    "\"mod_revision\":\"9\",\"version\":\"2\",\"value\":\"bm9kZTM=\"}}]}}\n"
    "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"raft_term\":\"2\"},\"canceled\":true,"
    "\"compact_revision\":\"9\"}}\n";

struct tally {
    int messages, created, events, deletes, compacted;
    int64_t last_rev;
};

static void count_msg(struct tally *t, const char *line, size_t len)
{
    struct etcd_watch_msg m;
    assert_int_equal(etcd_parse_watch_msg(line, len, &m), 0);
    t->messages++;
    t->created += m.created;
    t->events += (int)m.n_events;
    for (size_t i = 0; i < m.n_events; i++) {
        t->deletes += m.events[i].type == ETCD_EVENT_DELETE;
        t->last_rev = m.events[i].kv.mod_revision;
    }
    if (m.canceled && m.compact_revision == 9)
        t->compacted++;
    etcd_watch_msg_clear(&m);
}

static void check_tally(const struct tally *t)
{
    assert_int_equal(t->messages, 4);
    assert_int_equal(t->created, 1);
    assert_int_equal(t->events, 3);
    assert_int_equal(t->deletes, 1);
    assert_int_equal(t->compacted, 1);
    assert_int_equal(t->last_rev, 11);
}

static void test_watch_msgs(void **state)
{
    (void)state;
    /* the events message, field by field */
    const char *p = strchr(watch_stream, '\n') + 1;
    const char *e = strchr(p, '\n');
    struct etcd_watch_msg m;
    assert_int_equal(etcd_parse_watch_msg(p, (size_t)(e - p), &m), 0);
    assert_int_equal(m.n_events, 2);
    assert_int_equal(m.events[0].type, ETCD_EVENT_PUT);
    assert_string_equal(m.events[0].kv.key, "/service/c1/leader");
    assert_string_equal(m.events[0].kv.value, "node2");
    assert_int_equal(m.events[0].kv.lease, 77);
    assert_int_equal(m.events[1].kv.value_len, 0);
    etcd_watch_msg_clear(&m);
    /* the delete with prev_kv */
    p = e + 1;
    e = strchr(p, '\n');
    assert_int_equal(etcd_parse_watch_msg(p, (size_t)(e - p), &m), 0);
    assert_int_equal(m.events[0].type, ETCD_EVENT_DELETE);
    assert_true(m.events[0].has_prev);
    assert_string_equal(m.events[0].prev_kv.value, "node3");
    etcd_watch_msg_clear(&m);

    /* cancel reasons, stream errors */
    const char *cancel = "{\"result\":{" HDR ",\"created\":true,\"canceled\":true,"
                         "\"cancel_reason\":\"rpc error: etcdserver: user name is empty\"}}";
    assert_int_equal(etcd_parse_watch_msg(cancel, strlen(cancel), &m), 0);
    assert_true(m.created && m.canceled);
    assert_non_null(strstr(m.cancel_reason, "user name is empty"));
    const char *err = "{\"error\":{\"grpc_code\":16,\"http_code\":401,\"message\":\"etcdserver: "
                      "invalid auth token\"}}";
    assert_int_equal(etcd_parse_watch_msg(err, strlen(err), &m), 0);
    assert_true(m.is_error);
    assert_int_equal(m.err.err, ETCD_E_AUTH);

    const char *bad[] = {
        "{\"result\":{" HDR ",\"events\":[{\"type\":\"PATCH\",\"kv\":{\"key\":\"aw==\","
        "\"mod_revision\":\"3\"}}]}}",
        "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"aw==\"}}]}}", /* no revision */
        "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"3\","
        "\"value\":5}}]}}",
        "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"a\",\"mod_revision\":\"3\"}}]}}",
        "{\"result\":{" HDR ",\"events\":[{}]}}",
        "{\"result\":{" HDR ",\"events\":{}}}",
        "{\"result\":{" HDR ",\"canceled\":1}}",
        "{\"result\":{" HDR ",\"compact_revision\":\"x\"}}",
        "{\"result\":{" HDR ",\"created\":true}", /* truncated */
        "{\"result\":{\"created\":true}}",        /* no header */
        "{\"result\":7}",
        "{}",
        "null",
        "{\"result\":{" HDR "}}garbage",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(etcd_parse_watch_msg(bad[i], strlen(bad[i]), &m), ETCD_E_PROTOCOL);
        assert_null(m.events);
    }
}

static void test_stream_split_every_byte(void **state)
{
    (void)state;
    size_t total = strlen(watch_stream);
    /* feed in pieces of every size from 1 byte to the whole stream */
    for (size_t piece = 1; piece <= total; piece = piece < 64 ? piece + 1 : piece * 2) {
        struct etcd_stream s;
        struct tally t = {0};
        etcd_stream_init(&s, 4096, 8192);
        for (size_t off = 0; off < total; off += piece) {
            size_t n = total - off < piece ? total - off : piece;
            assert_true(etcd_stream_feed(&s, watch_stream + off, n));
            const char *line;
            size_t len;
            int rc;
            while ((rc = etcd_stream_next(&s, &line, &len)) == 1)
                count_msg(&t, line, len);
            assert_int_equal(rc, 0);
        }
        check_tally(&t);
        etcd_stream_free(&s);
    }
}

static void test_stream_limits(void **state)
{
    (void)state;
    struct etcd_stream s;
    const char *line;
    size_t len;
    etcd_stream_init(&s, 16, 64);
    /* CRLF and blank lines */
    assert_true(etcd_stream_feed(&s, "\r\n\nabc\r\n", 8));
    assert_int_equal(etcd_stream_next(&s, &line, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(line, "abc", 3);
    assert_int_equal(etcd_stream_next(&s, &line, &len), 0);
    /* a line over max_line is reported as soon as it is known to be too long */
    assert_true(etcd_stream_feed(&s, "0123456789abcdefXYZ", 19));
    assert_int_equal(etcd_stream_next(&s, &line, &len), -1);
    etcd_stream_reset(&s);
    /* the buffer never grows beyond max */
    for (int i = 0; i < 100; i++) {
        if (!etcd_stream_feed(&s, "0123456789", 10))
            break;
        assert_true(s.buf.len <= 64);
    }
    assert_false(etcd_stream_feed(&s,
                                  "0123456789012345678901234567890123456789012345678901234"
                                  "5678901234567890",
                                  70));
    etcd_stream_free(&s);

    /* many short lines through a small buffer: consumed space is reused */
    etcd_stream_init(&s, 16, 32);
    for (int i = 0; i < 1000; i++) {
        assert_true(etcd_stream_feed(&s, "{\"a\":1}\n", 8));
        assert_int_equal(etcd_stream_next(&s, &line, &len), 1);
        assert_int_equal(len, 7);
    }
    etcd_stream_free(&s);
}

/* Every prefix of a valid message is rejected cleanly (no crash, no leak). */
static void test_truncated_everywhere(void **state)
{
    (void)state;
    const char *p = strchr(watch_stream, '\n') + 1;
    size_t n = (size_t)(strchr(p, '\n') - p);
    for (size_t cut = 0; cut < n; cut++) {
        struct etcd_watch_msg m;
        assert_int_equal(etcd_parse_watch_msg(p, cut, &m), ETCD_E_PROTOCOL);
        assert_null(etcd_json_load(p, cut));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_range_malformed),
        cmocka_unit_test(test_huge_value),
        cmocka_unit_test(test_put_delete),
        cmocka_unit_test(test_txn),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_auth_version_members),
        cmocka_unit_test(test_watch_msgs),
        cmocka_unit_test(test_stream_split_every_byte),
        cmocka_unit_test(test_stream_limits),
        cmocka_unit_test(test_truncated_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
