/* Unit tests of agent/ctl config edits: --set/--pg into a merge patch, and the config diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/ctl/ctl.h"

/* The patch built from sets (and pgs) as compact JSON, or NULL (err filled). */
static char *patch_of(const char *const *sets, size_t n, const char *const *pgs, size_t npg,
                      char *err, size_t cap)
{
    json_t *p = ctl_set_patch(sets, n, pgs, npg, err, cap);
    if (!p)
        return NULL;
    char *s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return s;
}

static void test_dotted_keys_and_types(void **state)
{
    (void)state;
    char err[200] = "";
    const char *sets[] = {"postgresql.parameters.work_mem=16MB",
                          "ttl=30",
                          "synchronous_mode=true",
                          "postgresql.use_slots=false",
                          "maximum_lag_on_failover=1.5",
                          "tags={\"a\":[1,2]}",
                          "quoted=\"42\""};
    char *s = patch_of(sets, 7, NULL, 0, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(s, "{\"postgresql\":{\"parameters\":{\"work_mem\":\"16MB\"},\"use_slots\":"
                           "false},\"ttl\":30,\"synchronous_mode\":true,"
                           "\"maximum_lag_on_failover\":1.5,\"tags\":{\"a\":[1,2]},"
                           "\"quoted\":\"42\"}");
    free(s);
}

static void test_null_and_empty_delete(void **state)
{
    (void)state;
    char err[200] = "";
    const char *sets[] = {"pause=null", "postgresql.parameters.work_mem="};
    char *s = patch_of(sets, 2, NULL, 0, err, sizeof(err));
    assert_string_equal(s, "{\"pause\":null,\"postgresql\":{\"parameters\":{\"work_mem\":null}}}");
    free(s);
}

static void test_pg_params_keep_dots_and_later_wins(void **state)
{
    (void)state;
    char err[200] = "";
    const char *sets[] = {"ttl=20", "ttl=25", "postgresql.parameters.work_mem=1MB"};
    const char *pgs[] = {"auto_explain.log_min_duration=100", "work_mem=2MB"};
    char *s = patch_of(sets, 3, pgs, 2, err, sizeof(err));
    assert_string_equal(s, "{\"ttl\":25,\"postgresql\":{\"parameters\":{\"work_mem\":\"2MB\","
                           "\"auto_explain.log_min_duration\":100}}}");
    free(s);
    /* a value with '=' inside keeps everything after the first '=' */
    const char *eq[] = {"postgresql.parameters.search_path=a=b"};
    s = patch_of(eq, 1, NULL, 0, err, sizeof(err));
    assert_string_equal(s, "{\"postgresql\":{\"parameters\":{\"search_path\":\"a=b\"}}}");
    free(s);
}

static void test_bad_items(void **state)
{
    (void)state;
    char err[200];
    static const char *const bad[] = {"novalue", "=1", ".a=1", "a.=1", "a..b=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        const char *one[] = {bad[i]};
        assert_null(patch_of(one, 1, NULL, 0, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    const char *conflict1[] = {"a=1", "a.b=2"};
    assert_null(patch_of(conflict1, 2, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "already set to a value"));
    const char *conflict2[] = {"a.b=1", "a=2"};
    assert_null(patch_of(conflict2, 2, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "already used as an object"));
    const char *pg_bad[] = {"noequals"};
    assert_null(patch_of(NULL, 0, pg_bad, 1, err, sizeof(err)));
}

static void test_patch_validates_through_dcs_config(void **state)
{
    (void)state;
    struct dcs_config cur, next;
    struct dcs_err derr = {{0}};
    const char *base = "{\"ttl\":10,\"loop_wait\":1,\"retry_timeout\":3,"
                       "\"postgresql\":{\"parameters\":{\"work_mem\":\"4MB\"}}}";
    assert_true(dcs_config_decode(base, strlen(base), &cur, &derr));
    char err[200];
    const char *sets[] = {"postgresql.parameters.work_mem=12MB", "pause=true"};
    json_t *p = ctl_set_patch(sets, 2, NULL, 0, err, sizeof(err));
    char *ptext = json_dumps(p, JSON_COMPACT);
    bool changed = false;
    assert_true(dcs_config_patch(&cur, ptext, strlen(ptext), &next, &changed, &derr));
    assert_true(changed);
    assert_true(next.pause);
    char *diff = ctl_config_diff(cur.raw, next.raw);
    assert_string_equal(diff, "-postgresql.parameters.work_mem: \"4MB\"\n"
                              "+postgresql.parameters.work_mem: \"12MB\"\n"
                              "+pause: true\n");
    free(diff);
    free(ptext);
    json_decref(p);
    dcs_config_free(&next);
    /* an invalid result is refused */
    const char *bad[] = {"ttl=1"};
    p = ctl_set_patch(bad, 1, NULL, 0, err, sizeof(err));
    ptext = json_dumps(p, JSON_COMPACT);
    assert_false(dcs_config_patch(&cur, ptext, strlen(ptext), &next, &changed, &derr));
    free(ptext);
    json_decref(p);
    dcs_config_free(&next);
    dcs_config_free(&cur);
}

static void test_diff(void **state)
{
    (void)state;
    json_t *a = json_loads("{\"x\":1,\"o\":{\"p\":1,\"q\":[1]},\"gone\":{\"k\":\"v\"}}", 0, NULL);
    json_t *b = json_loads("{\"x\":1,\"o\":{\"p\":2,\"q\":[1],\"n\":null},\"new\":{}}", 0, NULL);
    char *d = ctl_config_diff(a, b);
    assert_string_equal(d, "-o.p: 1\n+o.p: 2\n+o.n: null\n-gone.k: \"v\"\n+new: {}\n");
    free(d);
    d = ctl_config_diff(a, a);
    assert_string_equal(d, "");
    free(d);
    json_t *s = json_string("scalar");
    d = ctl_config_diff(a, s);
    assert_non_null(strstr(d, "+(root): \"scalar\"\n"));
    free(d);
    json_decref(s);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dotted_keys_and_types),
        cmocka_unit_test(test_null_and_empty_delete),
        cmocka_unit_test(test_pg_params_keep_dots_and_later_wins),
        cmocka_unit_test(test_bad_items),
        cmocka_unit_test(test_patch_validates_through_dcs_config),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
