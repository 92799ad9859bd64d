/* Fuzz target: etcd JSON-gateway answers (range, put, delete, txn, lease, auth, version, errors).
 */
#include "agent/etcd/internal.h"
#include "tests/fuzz/fuzz.h"

/* Every parser sees the same document, as if it were the answer to its request. */

static void add_url(void *arg, const char *url, size_t len)
{
    size_t *n = arg;
    FUZZ_ASSERT(url != NULL && memchr(url, '\0', len) == NULL);
    (*n)++;
}

static void parse_all(const json_t *j)
{
    struct etcd_header h;
    etcd_parse_header(j, true, &h);
    etcd_parse_header(j, false, &h);

    for (int nested = 0; nested < 2; nested++) {
        struct etcd_range_result rr;
        if (etcd_parse_range(j, nested, &rr) == 0)
            etcd_range_result_clear(&rr);
        struct etcd_put_result pr;
        if (etcd_parse_put(j, nested, &pr) == 0)
            etcd_put_result_clear(&pr);
        struct etcd_delete_result dr;
        if (etcd_parse_delete(j, nested, &dr) == 0)
            etcd_delete_result_clear(&dr);
    }

    /* A txn whose branches hold one op of each kind (the answer must match them). */
    static const struct etcd_op ops[] = {
        {.type = ETCD_OP_RANGE, .range = {.key = "/service/demo/leader"}},
        {.type = ETCD_OP_PUT,
         .put = {.key = "/service/demo/leader", .value = "n1", .value_len = 2}},
        {.type = ETCD_OP_DELETE, .del = {.key = "/service/demo/leader", .prev_kv = true}},
    };
    static const struct etcd_cmp cmp = {.key = "/service/demo/leader", .target = ETCD_CMP_CREATE};
    const struct etcd_txn_req txn = {
        .cmps = &cmp, .n_cmps = 1, .success = ops, .n_success = 3, .failure = ops, .n_failure = 1};
    struct etcd_txn_result tr;
    if (etcd_parse_txn(j, &txn, &tr) == 0) {
        FUZZ_ASSERT(tr.n_responses == (tr.succeeded ? 3u : 1u));
        etcd_txn_result_clear(&tr);
    }

    int64_t id, ttl;
    etcd_parse_lease_grant(j, &id, &ttl);
    struct etcd_error err;
    memset(&err, 0, sizeof(err));
    if (etcd_parse_keepalive(j, 42, &ttl, &err) == 0)
        FUZZ_ASSERT(ttl > 0);
    struct etcd_lease_info li;
    if (etcd_parse_timetolive(j, &li) == 0)
        etcd_lease_info_clear(&li);
    const char *token;
    etcd_parse_auth(j, &token);
    int major, minor;
    const char *server;
    etcd_parse_version(j, &major, &minor, &server);
    size_t nurls = 0;
    etcd_parse_members(j, add_url, &nurls);

    struct etcd_kv kv;
    if (etcd_parse_kv(j, &kv) == 0)
        etcd_kv_clear(&kv);
    struct etcd_kv *kvs;
    size_t n;
    json_t *arr = NULL;
    if (etcd_json_array(j, "kvs", &arr) && arr && etcd_parse_kvs(arr, &kvs, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            etcd_kv_clear(&kvs[i]);
        free(kvs);
    }
    memset(&err, 0, sizeof(err));
    etcd_error_from_json(400, j, "http://127.0.0.1:2379", &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *text = fuzz_cstr(data, size);
    json_t *j = etcd_json_load(text, size);
    if (j) {
        parse_all(j);
        json_decref(j);
    }
    /* Error bodies, JSON or not, for the statuses the client sees. */
    static const long statuses[] = {200, 400, 401, 404, 500, 503};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct etcd_error err;
        memset(&err, 0, sizeof(err));
        int rc = etcd_error_from_body(statuses[i], text, size, "http://127.0.0.1:2379", &err);
        FUZZ_ASSERT(rc == err.err);
        FUZZ_ASSERT(memchr(err.message, '\0', sizeof(err.message)) != NULL);
    }
    /* The base64 of kv keys and values. */
    char *out;
    size_t out_len;
    if (etcd_b64_decode(text, size, 1u << 20, &out, &out_len) == 0) {
        char *again = etcd_b64_encode(out, out_len);
        FUZZ_ASSERT(again && strlen(again) == size); /* same length (bits may differ) */
        free(again);
        free(out);
    }
    free(text);
    return 0;
}
