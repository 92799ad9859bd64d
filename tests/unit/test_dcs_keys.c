/* Unit tests of agent/dcs/keys: Patroni key paths, prefix normalisation, range end, classification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#include "agent/dcs/keys.h"

static void test_prefix_normalised_like_patroni(void **state)
{
    (void)state;
    static const struct {
        const char *ns, *want;
    } cases[] = {
        {"/service", "/service/batman/"},
        {"service", "/service/batman/"},
        {"/service/", "/service/batman/"},
        {"//service//", "/service/batman/"},
        {"", "/batman/"},
        {"/", "/batman/"},
        {"/a/b", "/a/b/batman/"},
        {NULL, "/service/batman/"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dcs_keys k;
        assert_int_equal(dcs_keys_init(&k, cases[i].ns, "batman"), 0);
        assert_string_equal(k.prefix, cases[i].want);
        assert_int_equal(k.prefix_len, strlen(cases[i].want));
    }
}

static void test_prefix_rejects_bad_input(void **state)
{
    (void)state;
    struct dcs_keys k;
    char longscope[200];
    memset(longscope, 'a', sizeof(longscope) - 1);
    longscope[sizeof(longscope) - 1] = '\0';
    assert_int_equal(dcs_keys_init(&k, "/service", ""), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/service", NULL), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/service", "bat/man"), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/service", "bat man"), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/service", "bat\nman"), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/ser vice", "batman"), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/service?", "batman"), -EINVAL);
    assert_int_equal(dcs_keys_init(&k, "/service", longscope), -EINVAL);
    char longns[400];
    memset(longns, 'n', sizeof(longns) - 1);
    longns[0] = '/';
    longns[sizeof(longns) - 1] = '\0';
    assert_int_equal(dcs_keys_init(&k, longns, "batman"), -ENAMETOOLONG);
    assert_true(dcs_scope_valid("pg-cluster_1.prod"));
}

static void test_key_paths(void **state)
{
    (void)state;
    struct dcs_keys k;
    char out[DCS_KEY_MAX];
    static const struct {
        enum dcs_key_kind kind;
        const char *want;
    } cases[] = {
        {DCS_KEY_LEADER, "/service/batman/leader"},
        {DCS_KEY_CONFIG, "/service/batman/config"},
        {DCS_KEY_INITIALIZE, "/service/batman/initialize"},
        {DCS_KEY_HISTORY, "/service/batman/history"},
        {DCS_KEY_STATUS, "/service/batman/status"},
        {DCS_KEY_OPTIME_LEADER, "/service/batman/optime/leader"},
        {DCS_KEY_SYNC, "/service/batman/sync"},
        {DCS_KEY_FAILOVER, "/service/batman/failover"},
        {DCS_KEY_FAILSAFE, "/service/batman/failsafe"},
        {DCS_KEY_MEMBER, "/service/batman/members/"},
    };
    assert_int_equal(dcs_keys_init(&k, "/service", "batman"), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = dcs_key_path(&k, cases[i].kind, NULL, out, sizeof(out));
        assert_int_equal(n, (int)strlen(cases[i].want));
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(dcs_key_path(&k, DCS_KEY_MEMBER, "postgresql0", out, sizeof(out)),
                     (int)strlen("/service/batman/members/postgresql0"));
    assert_string_equal(out, "/service/batman/members/postgresql0");
    /* UTF-8 host names are fine; '/', control characters and empty names are not */
    assert_true(dcs_key_path(&k, DCS_KEY_MEMBER,
                             "n\xc3\xb6"
                             "de",
                             out, sizeof(out)) > 0);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_MEMBER, "a/b", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_MEMBER, "", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_MEMBER, "a\tb", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_MEMBER, "a\x7f", out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_OTHER, NULL, out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_FOREIGN, NULL, out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_key_path(&k, (enum dcs_key_kind)99, NULL, out, sizeof(out)), -EINVAL);
    /* exact fit and one byte short */
    assert_int_equal(dcs_key_path(&k, DCS_KEY_LEADER, NULL, out, 23), 22);
    assert_int_equal(dcs_key_path(&k, DCS_KEY_LEADER, NULL, out, 22), -ENAMETOOLONG);
    char longname[DCS_NAME_MAX + 1];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(dcs_key_path(&k, DCS_KEY_MEMBER, longname, out, sizeof(out)), -EINVAL);
    longname[DCS_NAME_MAX - 1] = '\0'; /* 255 bytes: the longest valid name */
    assert_true(dcs_key_path(&k, DCS_KEY_MEMBER, longname, out, sizeof(out)) > 0);
}

static void test_range_end(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(dcs_key_range_end("/service/batman/", 16, out, sizeof(out)), 16);
    assert_string_equal(out, "/service/batman0");
    assert_int_equal(dcs_key_range_end("ab\xff\xff", 4, out, sizeof(out)), 2);
    assert_memory_equal(out, "ac", 2);
    assert_int_equal(dcs_key_range_end("\xff", 1, out, sizeof(out)), 1);
    assert_int_equal(out[0], 0);
    assert_int_equal(dcs_key_range_end("", 0, out, sizeof(out)), 1);
    assert_int_equal(out[0], 0);
    assert_int_equal(dcs_key_range_end("abc", 3, out, 3), -ENAMETOOLONG);
}

static void test_classify(void **state)
{
    (void)state;
    struct dcs_keys k;
    char name[DCS_NAME_MAX];
    static const struct {
        const char *key;
        enum dcs_key_kind kind;
        const char *member;
    } cases[] = {
        {"/service/batman/leader", DCS_KEY_LEADER, ""},
        {"/service/batman/members/pg0", DCS_KEY_MEMBER, "pg0"},
        {"/service/batman/members/node-1.example.com", DCS_KEY_MEMBER, "node-1.example.com"},
        {"/service/batman/config", DCS_KEY_CONFIG, ""},
        {"/service/batman/initialize", DCS_KEY_INITIALIZE, ""},
        {"/service/batman/history", DCS_KEY_HISTORY, ""},
        {"/service/batman/status", DCS_KEY_STATUS, ""},
        {"/service/batman/optime/leader", DCS_KEY_OPTIME_LEADER, ""},
        {"/service/batman/sync", DCS_KEY_SYNC, ""},
        {"/service/batman/failover", DCS_KEY_FAILOVER, ""},
        {"/service/batman/failsafe", DCS_KEY_FAILSAFE, ""},
        {"/service/batman/members/", DCS_KEY_OTHER, ""},
        {"/service/batman/members/a/b", DCS_KEY_OTHER, ""},
        {"/service/batman/leaderx", DCS_KEY_OTHER, ""},
        {"/service/batman/lead", DCS_KEY_OTHER, ""},
        {"/service/batman/optime", DCS_KEY_OTHER, ""},
        {"/service/batman/0/leader", DCS_KEY_OTHER, ""}, /* a Citus group */
        {"/service/batman/", DCS_KEY_OTHER, ""},
        {"/service/batman", DCS_KEY_FOREIGN, ""},
        {"/service/batmanx/leader", DCS_KEY_FOREIGN, ""},
        {"/service/robin/leader", DCS_KEY_FOREIGN, ""},
        {"", DCS_KEY_FOREIGN, ""},
    };
    assert_int_equal(dcs_keys_init(&k, "/service", "batman"), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum dcs_key_kind kind =
            dcs_key_classify(&k, cases[i].key, strlen(cases[i].key), name, sizeof(name));
        if (kind != cases[i].kind)
            fail_msg("%s: got %s, want %s", cases[i].key, dcs_key_kind_name(kind),
                     dcs_key_kind_name(cases[i].kind));
        assert_string_equal(name, cases[i].member);
    }
    /* bytes, not C strings: a NUL inside a member name is refused, and len is honoured */
    static const char nul_key[] = "/service/batman/members/a\0b";
    assert_int_equal(dcs_key_classify(&k, nul_key, sizeof(nul_key) - 1, name, sizeof(name)),
                     DCS_KEY_OTHER);
    assert_int_equal(dcs_key_classify(&k, "/service/batman/leaderZZZ", 22, NULL, 0),
                     DCS_KEY_LEADER);
    /* a name that does not fit the caller's buffer is not silently truncated */
    assert_int_equal(dcs_key_classify(&k, "/service/batman/members/abcdef", 30, name, 4),
                     DCS_KEY_OTHER);
    assert_int_equal(dcs_key_classify(&k, NULL, 0, name, sizeof(name)), DCS_KEY_FOREIGN);
    assert_string_equal(dcs_key_kind_name(DCS_KEY_OPTIME_LEADER), "optime/leader");
    assert_string_equal(dcs_key_kind_name(DCS_KEY_MEMBER), "members");
    assert_string_equal(dcs_key_kind_name((enum dcs_key_kind)77), "unknown");
}

static void test_paths_classify_back(void **state)
{
    (void)state;
    struct dcs_keys k;
    char out[DCS_KEY_MAX], name[DCS_NAME_MAX];
    assert_int_equal(dcs_keys_init(&k, "pgw", "prod-1"), 0);
    for (int kind = DCS_KEY_LEADER; kind < DCS_KEY_FOREIGN; kind++) {
        const char *m = kind == DCS_KEY_MEMBER ? "db-2" : NULL;
        int n = dcs_key_path(&k, (enum dcs_key_kind)kind, m, out, sizeof(out));
        assert_true(n > 0);
        assert_int_equal(dcs_key_classify(&k, out, (size_t)n, name, sizeof(name)), kind);
    }
    assert_string_equal(name, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_normalised_like_patroni),
        cmocka_unit_test(test_prefix_rejects_bad_input),
        cmocka_unit_test(test_key_paths),
        cmocka_unit_test(test_range_end),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_paths_classify_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
