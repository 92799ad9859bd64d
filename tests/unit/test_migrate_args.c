/* Unit tests of agent/migrate command-line parsing and target database name checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/migrate/migrate.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* getopt permutes argv: each case parses its own writable copy. */
static int parse(struct mig_opts *o, char *err, size_t cap, int argc, const char *const *argv)
{
    static char *copy[32];
    static char store[32][256];
    assert_true(argc < 32);
    for (int i = 0; i < argc; i++) {
        snprintf(store[i], sizeof(store[i]), "%s", argv[i]);
        copy[i] = store[i];
    }
    copy[argc] = NULL;
    return mig_opts_parse(argc, copy, o, err, cap);
}

static void test_run_options(void **state)
{
    (void)state;
    struct mig_opts o;
    char err[256];
    const char *a[] = {
        "migrate",   "-c",  "/etc/p.conf", "--from",   "postgres://u@h/d", "--to", "shop",
        "--jobs",    "4",   "--replace",   "--verify", "checksums",        "-y",   "--no-progress",
        "--timeout", "3600"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(a), a), 0);
    assert_int_equal(o.command, MIG_CMD_RUN);
    assert_string_equal(o.config, "/etc/p.conf");
    assert_string_equal(o.from, "postgres://u@h/d");
    assert_string_equal(o.to, "shop");
    assert_int_equal(o.jobs, 4);
    assert_true(o.replace && o.checksums && o.yes && o.no_progress);
    assert_int_equal(o.timeout_s, 3600);
    assert_false(o.online);

    const char *b[] = {"migrate", "--to", "x"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(b), b), 0);
    assert_int_equal(o.jobs, 2); /* default */
    assert_false(o.checksums || o.replace || o.yes);
    assert_null(o.from); /* the caller falls back to $PGWARDEN_MIGRATE_FROM */

    const char *c[] = {"migrate", "--to", "x", "--verify", "counts", "--online", "-j1"};
    if (parse(&o, err, sizeof(err), ARGC(c), c) != 0)
        fail_msg("%s", err);
    assert_false(o.checksums);
    assert_true(o.online);
    assert_int_equal(o.jobs, 1);
}

static void test_subcommands(void **state)
{
    (void)state;
    struct mig_opts o;
    char err[256];
    const char *a[] = {"migrate", "-c", "/x.conf", "status", "--json", "--id", "7"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(a), a), 0);
    assert_int_equal(o.command, MIG_CMD_STATUS);
    assert_true(o.json);
    assert_int_equal(o.id, 7);
    assert_string_equal(o.config, "/x.conf");
    const char *b[] = {"migrate", "status"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(b), b), 0);
    assert_int_equal(o.id, 0);
    const char *c[] = {"migrate", "cutover"};
    if (parse(&o, err, sizeof(err), ARGC(c), c) != 0)
        fail_msg("%s", err);
    assert_int_equal(o.command, MIG_CMD_CUTOVER);
    const char *d[] = {"migrate", "--help"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(d), d), 0);
    assert_int_equal(o.command, MIG_CMD_HELP);
    const char *e[] = {"migrate", "help"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(e), e), 0);
    assert_int_equal(o.command, MIG_CMD_HELP);
}

static void test_usage_errors(void **state)
{
    (void)state;
    static const struct {
        const char *argv[8];
        const char *msg;
    } cases[] = {
        {{"migrate"}, "--to DBNAME is required"},
        {{"migrate", "--to", "x", "--jobs", "0"}, "--jobs: '0'"},
        {{"migrate", "--to", "x", "--jobs", "65"}, "--jobs"},
        {{"migrate", "--to", "x", "--jobs", "2x"}, "--jobs"},
        {{"migrate", "--to", "x", "--verify", "md5"}, "--verify: 'md5'"},
        {{"migrate", "--to", "x", "--timeout", "-1"}, "--timeout"},
        {{"migrate", "--to", "x", "--bogus"}, "unknown option --bogus"},
        {{"migrate", "--to"}, "needs a value"},
        {{"migrate", "--to", "x", "extra"}, "unknown migrate command 'extra'"},
        {{"migrate", "status", "more"}, "unexpected argument 'more'"},
        {{"migrate", "status", "--to", "x"}, "status takes only"},
        {{"migrate", "--to", "x", "--json"}, "options of `migrate status`"},
        {{"migrate", "status", "--id", "0"}, "--id"},
        {{"migrate", "--to", "template1"}, "system database"},
        {{"migrate", "--to", "pgwarden_migrate_3"}, "reserved"},
        {{"migrate", "--to", ""}, "1 to 63 bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int argc = 0;
        while (argc < 8 && cases[i].argv[argc])
            argc++;
        struct mig_opts o;
        char err[256] = "";
        int rc = parse(&o, err, sizeof(err), argc, cases[i].argv);
        if (rc != -EINVAL || !strstr(err, cases[i].msg))
            fail_msg("case %zu: rc %d err '%s' (want '%s')", i, rc, err, cases[i].msg);
    }
}

static void test_dbname(void **state)
{
    (void)state;
    char err[256];
    assert_true(mig_dbname_ok("shop", err, sizeof(err)));
    assert_true(mig_dbname_ok("My-App DB", err, sizeof(err)));
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = '\0';
    memset(n64, 'a', 64);
    n64[64] = '\0';
    assert_true(mig_dbname_ok(n63, err, sizeof(err)));
    assert_false(mig_dbname_ok(n64, err, sizeof(err)));
    assert_false(mig_dbname_ok("a\nb", err, sizeof(err)));
    assert_non_null(strstr(err, "control characters"));
    assert_false(mig_dbname_ok("postgres", err, sizeof(err)));
    assert_false(mig_dbname_ok(NULL, err, sizeof(err)));
}

static void test_main_exit_codes(void **state)
{
    (void)state;
    char a0[] = "migrate", a1[] = "--jobs", a2[] = "zero";
    char *bad[] = {a0, a1, a2, NULL};
    assert_int_equal(migrate_main(3, bad), MIG_EXIT_USAGE);
    char b1[] = "--to", b2[] = "x", b3[] = "--online", b4[] = "--from",
         b5[] = "postgres://u:hunter22@h/db", cf[] = "-c", cp[] = "/nonexistent/pgwarden.conf";
    char *online[] = {a0, cf, cp, b1, b2, b3, b4, b5, NULL};
    assert_int_equal(migrate_main(8, online), MIG_EXIT_CONFIG); /* no config file here */
    assert_string_equal(b5, "postgres://u:********@h/db");      /* scrubbed from argv */
    char c1[] = "cutover", c2[] = "abort";
    char *cut[] = {a0, c1, cf, cp, NULL};
    assert_int_equal(migrate_main(4, cut), MIG_EXIT_CONFIG);
    char *ab[] = {a0, c2, cf, cp, NULL};
    assert_int_equal(migrate_main(4, ab), MIG_EXIT_CONFIG);
    char d3[] = "--from", d4[] = "ftp://u:pw@h/db";
    char *badurl[] = {a0, b1, b2, d3, d4, NULL};
    assert_int_equal(migrate_main(5, badurl), MIG_EXIT_USAGE);
}

static void test_online_options(void **state)
{
    (void)state;
    struct mig_opts o;
    char err[256];
    const char *a[] = {"migrate",
                       "--online",
                       "--from",
                       "postgres://u@h/d",
                       "--to",
                       "shop",
                       "--replica-identity-full",
                       "-y"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(a), a), 0);
    assert_int_equal(o.command, MIG_CMD_RUN);
    assert_true(o.online && o.ri_full && o.yes);
    assert_false(o.checksums);

    const char *c[] = {"migrate",   "cutover", "--id",      "3",  "--verify", "checksums",
                       "--replace", "--yes",   "--timeout", "30", "-j",       "4"};
    if (parse(&o, err, sizeof(err), ARGC(c), c) != 0)
        fail_msg("%s", err);
    assert_int_equal(o.command, MIG_CMD_CUTOVER);
    assert_int_equal(o.id, 3);
    assert_true(o.checksums && o.replace && o.yes);
    assert_int_equal(o.timeout_s, 30);
    assert_int_equal(o.jobs, 4);

    const char *ab[] = {"migrate", "abort", "--from", "postgres://u:pw@h/d"};
    assert_int_equal(parse(&o, err, sizeof(err), ARGC(ab), ab), 0);
    assert_int_equal(o.command, MIG_CMD_ABORT);
    assert_int_equal(o.id, 0); /* the latest job */

    struct {
        const char *argv[8];
        int argc;
        const char *msg;
    } bad[] = {
        {{"migrate", "--online", "--to", "x", "--verify", "checksums"},
         6,
         "option of `migrate cutover`"},
        {{"migrate", "--to", "x", "--replica-identity-full"}, 4, "goes with --online"},
        {{"migrate", "cutover", "--to", "x"}, 4, "acts on a recorded online job"},
        {{"migrate", "cutover", "--online"}, 3, "acts on a recorded online job"},
        {{"migrate", "abort", "--json"}, 3, "acts on a recorded online job"},
        {{"migrate", "abort", "--replace"}, 3, "abort takes only"},
        {{"migrate", "status", "--replica-identity-full"}, 3, "status takes only"},
        {{"migrate", "frobnicate"}, 2, "(status, cutover, abort, help)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, err, sizeof(err), bad[i].argc, bad[i].argv), -EINVAL);
        if (!strstr(err, bad[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_options),     cmocka_unit_test(test_subcommands),
        cmocka_unit_test(test_usage_errors),    cmocka_unit_test(test_dbname),
        cmocka_unit_test(test_main_exit_codes), cmocka_unit_test(test_online_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
