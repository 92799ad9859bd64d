/* Unit tests of agent/ctl command-line parsing, usage errors and REST URL building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/ctl/ctl.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* getopt may permute argv, so each case gets its own writable copy. */
static int parse(struct ctl_opts *o, char *err, size_t cap, int argc, const char *const *argv)
{
    static char *copy[32];
    static char store[32][128];
    assert_true(argc < 32);
    for (int i = 0; i < argc; i++) {
        snprintf(store[i], sizeof(store[i]), "%s", argv[i]);
        copy[i] = store[i];
    }
    copy[argc] = NULL;
    return ctl_parse_args(argc, copy, o, err, cap);
}

static void test_global_and_command_options(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    const char *a[] = {"ctl", "-c", "/etc/x.conf", "list", "--json"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(a), a), CTL_OK);
    assert_string_equal(o.command, "list");
    assert_string_equal(o.config_path, "/etc/x.conf");
    assert_true(o.json);
    assert_int_equal(o.n_args, 0);

    const char *b[] = {"ctl", "edit-config", "--set", "a.b=1",  "-s",
                       "c=2", "--pg",        "x.y=3", "--force"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(b), b), CTL_OK);
    assert_int_equal(o.n_sets, 2);
    assert_string_equal(o.sets[0], "a.b=1");
    assert_string_equal(o.sets[1], "c=2");
    assert_int_equal(o.n_pgs, 1);
    assert_true(o.force);

    const char *c[] = {"ctl",         "switchover", "--leader",    "n1",
                       "--candidate", "n2",         "--scheduled", "2030-01-01T00:00:00+00:00",
                       "-t",          "30"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(c), c), CTL_OK);
    assert_string_equal(o.leader, "n1");
    assert_string_equal(o.candidate, "n2");
    assert_int_equal(o.timeout_s, 30);

    const char *d[] = {"ctl", "restart", "n1", "n2", "--force"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(d), d), CTL_OK);
    assert_int_equal(o.n_args, 2);
    assert_string_equal(o.args[0], "n1");

    const char *e[] = {"ctl", "events", "n2", "--limit", "5", "--kind", "role"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(e), e), CTL_OK);
    assert_int_equal(o.limit, 5);
    assert_string_equal(o.kind, "role");
}

static void test_help(void **state)
{
    (void)state;
    struct ctl_opts o;
    char err[256];
    const char *a[] = {"ctl", "--help"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(a), a), CTL_OK);
    assert_string_equal(o.command, "help");
    const char *b[] = {"ctl", "help"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(b), b), CTL_OK);
    assert_string_equal(o.command, "help");
    const char *c[] = {"ctl", "list", "-h"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(c), c), CTL_OK);
    assert_string_equal(o.command, "help");
}

static void test_usage_errors(void **state)
{
    (void)state;
    static const struct {
        const char *argv[8];
        int argc;
        const char *msg;
    } cases[] = {
        {{"ctl"}, 1, "no command"},
        {{"ctl", "frobnicate"}, 2, "unknown command"},
        {{"ctl", "list", "--bogus"}, 3, "unknown option"},
        {{"ctl", "list", "-Z"}, 3, "unknown option '-Z'"},
        {{"ctl", "list", "--candidate", "n2"}, 4, "does not apply"},
        {{"ctl", "pause", "--force"}, 3, "does not apply"},
        {{"ctl", "list", "--via-etcd"}, 3, "does not apply"},
        {{"ctl", "edit-config"}, 2, "needs --set"},
        {{"ctl", "failover"}, 2, "needs --candidate"},
        {{"ctl", "restart"}, 2, "at least one member"},
        {{"ctl", "list", "a", "b"}, 4, "at most one argument"},
        {{"ctl", "events", "--limit", "0"}, 4, "--limit"},
        {{"ctl", "events", "--limit", "12x"}, 4, "--limit"},
        {{"ctl", "pause", "--timeout", "-1"}, 4, "--timeout"},
        {{"ctl", "list", "-c"}, 3, "needs a value"},
        {{"ctl", "edit-config", "--set"}, 3, "needs a value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_opts o;
        char err[256] = "";
        assert_int_equal(parse(&o, err, sizeof(err), cases[i].argc, cases[i].argv), CTL_USAGE);
        if (!strstr(err, cases[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].msg);
    }
}

static void test_ctl_main_usage_exit_codes(void **state)
{
    (void)state;
    /* usage errors are found before any config file is read */
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    char a0[] = "ctl", a1[] = "nosuch";
    char *argv1[] = {a0, a1, NULL};
    assert_int_equal(ctl_main(2, argv1), CTL_USAGE);
    char b1[] = "list", b2[] = "-c", b3[] = "/nonexistent/pgwarden.conf";
    char *argv2[] = {a0, b1, b2, b3, NULL};
    assert_int_equal(ctl_main(4, argv2), CTL_CONFIG);
    fclose(stderr);
    stderr = saved;
    assert_int_equal(ctl_command_allowed("nosuch"), -1);
    assert_true(ctl_command_allowed("edit-config") & CTL_O_SET);
    assert_false(ctl_command_allowed("list") & CTL_O_FORCE);
}

static void test_api_endpoint(void **state)
{
    (void)state;
    char out[128];
    assert_true(ctl_api_endpoint("http://10.0.0.1:8008/patroni", "/switchover", out, sizeof(out)));
    assert_string_equal(out, "http://10.0.0.1:8008/switchover");
    assert_true(
        ctl_api_endpoint("https://[::1]:8443/patroni", "/events?limit=5", out, sizeof(out)));
    assert_string_equal(out, "https://[::1]:8443/events?limit=5");
    assert_true(ctl_api_endpoint("http://h:1", "restart", out, sizeof(out)));
    assert_string_equal(out, "http://h:1/restart");
    assert_false(ctl_api_endpoint("", "/x", out, sizeof(out)));
    assert_false(ctl_api_endpoint("postgres://h:5432/db", "/x", out, sizeof(out)));
    assert_false(ctl_api_endpoint("http:///patroni", "/x", out, sizeof(out)));
    assert_false(ctl_api_endpoint("http://h:8008/patroni", "/switchover", out, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_global_and_command_options),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_ctl_main_usage_exit_codes),
        cmocka_unit_test(test_api_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
