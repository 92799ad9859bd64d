/* Unit tests of agent/ctl table rendering and the `list` rows built from decoded etcd keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/ctl/ctl.h"

static void test_table_basic(void **state)
{
    (void)state;
    static const char *const heads[] = {"Member", "TL"};
    static const enum ctl_align align[] = {CTL_ALIGN_LEFT, CTL_ALIGN_RIGHT};
    struct ctl_table t;
    assert_true(ctl_table_init(&t, 2, heads, align));
    const char *r1[] = {"n1", "2"};
    const char *r2[] = {"node-two", "10"};
    assert_true(ctl_table_add_row(&t, r1));
    assert_true(ctl_table_add_row(&t, r2));
    char *s = ctl_table_render(&t, NULL);
    assert_non_null(s);
    assert_string_equal(s, "+----------+----+\n"
                           "| Member   | TL |\n"
                           "+----------+----+\n"
                           "| n1       |  2 |\n"
                           "| node-two | 10 |\n"
                           "+----------+----+\n");
    free(s);
    ctl_table_free(&t);
}

static void test_table_title_in_border(void **state)
{
    (void)state;
    static const char *const heads[] = {"Member", "Host", "Role"};
    struct ctl_table t;
    assert_true(ctl_table_init(&t, 3, heads, NULL));
    const char *r[] = {"n1", "127.0.0.1:5432", "Leader"};
    assert_true(ctl_table_add_row(&t, r));
    char *s = ctl_table_render(&t, "Cluster: x (1)");
    assert_non_null(s);
    assert_string_equal(s, "+ Cluster: x (1) ---------+--------+\n"
                           "| Member | Host           | Role   |\n"
                           "+--------+----------------+--------+\n"
                           "| n1     | 127.0.0.1:5432 | Leader |\n"
                           "+--------+----------------+--------+\n");
    free(s);
    /* a title longer than the border goes on its own line */
    s = ctl_table_render(&t, "Cluster: a-very-long-cluster-name-here (7212345678901234567)");
    assert_non_null(s);
    assert_true(
        strncmp(s, "Cluster: a-very-long-cluster-name-here (7212345678901234567)\n+---", 64) == 0);
    free(s);
    ctl_table_free(&t);
}

static void test_table_empty_and_escapes(void **state)
{
    (void)state;
    static const char *const heads[] = {"A"};
    struct ctl_table t;
    assert_true(ctl_table_init(&t, 1, heads, NULL));
    char *s = ctl_table_render(&t, NULL);
    assert_string_equal(s, "+---+\n| A |\n+---+\n+---+\n");
    free(s);
    const char *bad[] = {"x\x1b[2Jy\n"};
    assert_true(ctl_table_add_row(&t, bad));
    const char *null_cell[] = {NULL};
    assert_true(ctl_table_add_row(&t, null_cell));
    s = ctl_table_render(&t, NULL);
    assert_null(strchr(s, '\x1b'));
    assert_non_null(strstr(s, "| x?[2Jy? |"));
    assert_non_null(strstr(s, "|         |"));
    free(s);
    ctl_table_free(&t);
}

static void test_table_utf8_and_truncation(void **state)
{
    (void)state;
    assert_int_equal(ctl_text_width("h\xc3\xa9llo"), 5);
    assert_int_equal(ctl_text_width(""), 0);
    static const char *const heads[] = {"Name", "Detail"};
    struct ctl_table t;
    assert_true(ctl_table_init(&t, 2, heads, NULL));
    ctl_table_set_max_width(&t, 1, 8);
    const char *r[] = {"n\xc3\xa9", "0123456789abcdef"};
    assert_true(ctl_table_add_row(&t, r));
    char *s = ctl_table_render(&t, NULL);
    assert_non_null(s);
    assert_non_null(strstr(s, "| n\xc3\xa9   | 01234... |"));
    assert_non_null(strstr(s, "+------+----------+"));
    free(s);
    ctl_table_free(&t);
}

/* A cluster as `list` sees it, built through the same decoder as the etcd reader. */
static void add(struct ctl_cluster *cl, const struct dcs_keys *k, const char *key,
                const char *value)
{
    char full[DCS_KEY_MAX];
    snprintf(full, sizeof(full), "%s%s", k->prefix, key);
    ctl_cluster_add_kv(cl, k, full, strlen(full), value, strlen(value), 7, NULL);
}

static void build_cluster(struct ctl_cluster *cl, struct dcs_keys *k)
{
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->scope, sizeof(cl->scope), "batman");
    assert_int_equal(dcs_keys_init(k, "/service", "batman"), 0);
    add(cl, k, "members/pg2",
        "{\"conn_url\":\"postgres://10.0.0.2:5432/postgres\",\"api_url\":\"http://10.0.0.2:8008/"
        "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\","
        "\"xlog_location\":48234496,\"timeline\":4}");
    add(cl, k, "members/pg0",
        "{\"conn_url\":\"postgres://10.0.0.1:5432/postgres\",\"api_url\":\"http://10.0.0.1:8008/"
        "patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\","
        "\"xlog_location\":50331648,\"timeline\":4}");
    add(cl, k, "members/pg1",
        "{\"conn_url\":\"postgres://10.0.0.3:5433/postgres\",\"state\":\"creating replica\","
        "\"role\":\"replica\",\"version\":\"3.0.2\",\"pending_restart\":true,"
        "\"clone_bytes\":6291456,\"clone_total_bytes\":25165824}");
    add(cl, k, "members/broken", "{\"timeline\":\"x\"}");
    add(cl, k, "leader", "pg0");
    add(cl, k, "initialize", "7212345678901234567");
    add(cl, k, "status", "{\"optime\":50331648}");
    add(cl, k, "sync", "{\"leader\":\"pg0\",\"sync_standby\":\"pg2\"}");
    add(cl, k, "config", "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"pause\":true}");
    add(cl, k, "history",
        "[[3,25623960,\"no recovery target specified\","
        "\"2019-09-23T16:57:57+02:00\",\"pg0\"]]");
    ctl_cluster_finish(cl);
}

static void test_cluster_decode(void **state)
{
    (void)state;
    struct ctl_cluster cl;
    struct dcs_keys k;
    build_cluster(&cl, &k);
    assert_int_equal(cl.n_members, 3);
    assert_int_equal(cl.n_bad, 1);
    assert_string_equal(cl.members[0].name, "pg0"); /* sorted */
    assert_string_equal(cl.leader, "pg0");
    assert_true(cl.has_config);
    assert_true(cl.config.pause);
    assert_int_equal(cl.config_mod_revision, 7);
    assert_true(cl.has_history);
    assert_int_equal(cl.history.n, 1);
    int64_t lsn = 0;
    assert_true(ctl_cluster_last_lsn(&cl, &lsn));
    assert_int_equal(lsn, 50331648);
    assert_non_null(ctl_cluster_member(&cl, "pg1"));
    assert_null(ctl_cluster_member(&cl, "broken"));
    ctl_cluster_free(&cl);
}

static void test_list_rows_and_table(void **state)
{
    (void)state;
    struct ctl_cluster cl;
    struct dcs_keys k;
    build_cluster(&cl, &k);
    json_t *rows = ctl_list_json(&cl);
    assert_non_null(rows);
    char *js = json_dumps(rows, JSON_COMPACT);
    assert_string_equal(
        js, "[{\"Cluster\":\"batman\",\"Member\":\"pg0\",\"Host\":\"10.0.0.1:5432\",\"Role\":"
            "\"Leader\",\"State\":\"running\",\"TL\":4},"
            "{\"Cluster\":\"batman\",\"Member\":\"pg1\",\"Host\":\"10.0.0.3:5433\",\"Role\":"
            "\"Replica\",\"State\":\"creating replica\",\"Lag in MB\":\"unknown\","
            "\"Pending restart\":\"*\",\"Copied\":\"25% of 24 MB\"},"
            "{\"Cluster\":\"batman\",\"Member\":\"pg2\",\"Host\":\"10.0.0.2:5432\",\"Role\":"
            "\"Sync Standby\",\"State\":\"running\",\"TL\":4,\"Lag in MB\":2}]");
    free(js);
    char *text = ctl_list_render(&cl, rows);
    assert_non_null(text);
    assert_true(strncmp(text, "+ Cluster: batman (7212345678901234567) ", 40) == 0);
    assert_non_null(strstr(text, "| pg0    | 10.0.0.1:5432 | Leader       | running          |  4 "
                                 "|           |              |                 |\n"));
    assert_non_null(strstr(text, "| Sync Standby |"));
    if (!strstr(text, "| Lag in MB | Copied       | Pending restart |") ||
        !strstr(text, "| 25% of 24 MB | *               |"))
        fail_msg("the Copied column:\n%s", text);
    free(text);
    json_decref(rows);
    ctl_cluster_free(&cl);
}

static void test_list_without_initialize_or_leader(void **state)
{
    (void)state;
    struct ctl_cluster cl;
    struct dcs_keys k;
    memset(&cl, 0, sizeof(cl));
    snprintf(cl.scope, sizeof(cl.scope), "c1");
    assert_int_equal(dcs_keys_init(&k, "service", "c1"), 0);
    add(&cl, &k, "members/a",
        "{\"conn_url\":\"postgres://[::1]:5432/postgres\",\"state\":\"running\","
        "\"role\":\"replica\",\"xlog_location\":10}");
    ctl_cluster_finish(&cl);
    assert_false(cl.has_config);
    json_t *rows = ctl_list_json(&cl);
    const json_t *r = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(r, "Host")), "[::1]:5432");
    assert_string_equal(json_string_value(json_object_get(r, "Lag in MB")), "unknown");
    char *text = ctl_list_render(&cl, rows);
    assert_true(strncmp(text, "+ Cluster: c1 (uninitialized) ", 30) == 0);
    free(text);
    json_decref(rows);
    ctl_cluster_free(&cl);
}

static void test_conn_host(void **state)
{
    (void)state;
    char h[64];
    ctl_conn_host("postgres://10.1.1.1:5432/postgres", h, sizeof(h));
    assert_string_equal(h, "10.1.1.1:5432");
    ctl_conn_host("postgres://host", h, sizeof(h));
    assert_string_equal(h, "host");
    ctl_conn_host("nonsense", h, sizeof(h));
    assert_string_equal(h, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_basic),
        cmocka_unit_test(test_table_title_in_border),
        cmocka_unit_test(test_table_empty_and_escapes),
        cmocka_unit_test(test_table_utf8_and_truncation),
        cmocka_unit_test(test_cluster_decode),
        cmocka_unit_test(test_list_rows_and_table),
        cmocka_unit_test(test_list_without_initialize_or_leader),
        cmocka_unit_test(test_conn_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
