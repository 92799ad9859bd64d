/* Unit tests of agent/migrate source URL parsing, display, argv scrub, passfile and conninfo. */
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

struct parsed {
    struct mig_url u;
    char pw[MIG_STR];
    char err[512];
    int rc;
};

static struct parsed *parse(const char *url)
{
    static struct parsed p;
    memset(&p, 0, sizeof(p));
    p.rc = mig_url_parse(url, &p.u, p.pw, sizeof(p.pw), p.err, sizeof(p.err));
    return &p;
}

static void test_heroku_url(void **state)
{
    (void)state;
    struct parsed *p = parse("postgres://u1ab:pAss%3Aw%40rd%2F@ec2-1-2-3-4.compute-1.amazonaws.com"
                             ":5432/d9xyz?sslmode=require");
    assert_int_equal(p->rc, 0);
    assert_string_equal(p->u.user, "u1ab");
    assert_string_equal(p->pw, "pAss:w@rd/");
    assert_true(p->u.has_password);
    assert_string_equal(p->u.host, "ec2-1-2-3-4.compute-1.amazonaws.com");
    assert_int_equal(p->u.port, 5432);
    assert_string_equal(p->u.dbname, "d9xyz");
    assert_string_equal(mig_url_param(&p->u, "sslmode"), "require");
    assert_null(mig_url_param(&p->u, "sslrootcert"));
    /* the password is kept nowhere in the parsed URL */
    static unsigned char raw[sizeof(struct mig_url)];
    memcpy(raw, &p->u, sizeof(raw));
    assert_null(memmem(raw, sizeof(raw), "pAss", 4));
    char shown[MIG_DISPLAY_MAX];
    mig_url_display(&p->u, shown, sizeof(shown));
    assert_string_equal(shown, "postgres://u1ab@ec2-1-2-3-4.compute-1.amazonaws.com:5432/"
                               "d9xyz?sslmode=require");
}

static void test_defaults_ipv6_and_query_password(void **state)
{
    (void)state;
    struct parsed *p = parse("postgresql://alice@[::1]/");
    assert_int_equal(p->rc, 0);
    assert_string_equal(p->u.host, "::1");
    assert_int_equal(p->u.port, 5432);
    assert_string_equal(p->u.dbname, "alice"); /* libpq's default: the user name */
    assert_false(p->u.has_password);
    assert_string_equal(p->pw, "");
    char shown[MIG_DISPLAY_MAX];
    assert_string_equal(mig_url_display(&p->u, shown, sizeof(shown)),
                        "postgres://alice@[::1]:5432/alice");

    p = parse("postgres://bob@[2001:db8::5]:6543/my%20db?password=pw%26x&sslmode=verify-full&"
              "sslrootcert=/etc/ca.pem&connect_timeout=7");
    assert_int_equal(p->rc, 0);
    assert_string_equal(p->pw, "pw&x");
    assert_true(p->u.has_password);
    assert_int_equal(p->u.port, 6543);
    assert_string_equal(p->u.dbname, "my db");
    assert_int_equal(p->u.nparams, 3);
    mig_url_display(&p->u, shown, sizeof(shown));
    assert_null(strstr(shown, "pw"));
    assert_string_equal(shown, "postgres://bob@[2001:db8::5]:6543/my%20db?sslmode=verify-full&"
                               "sslrootcert=%2Fetc%2Fca.pem&connect_timeout=7");
    /* a password holding '@' unencoded: the last '@' ends the user info */
    p = parse("postgres://carol:a@b@host/db");
    assert_int_equal(p->rc, 0);
    assert_string_equal(p->pw, "a@b");
    assert_string_equal(p->u.host, "host");
}

static void test_bad_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url, *msg;
    } cases[] = {
        {"", "empty"},
        {"mysql://u:SECRETPW@h/db", "postgres://"},
        {"postgres://u:SECRETPW@/db", "no host"},
        {"postgres://u:SECRETPW@h:0/db", "port"},
        {"postgres://u:SECRETPW@h:65536/db", "port"},
        {"postgres://u:SECRETPW@h:54x/db", "port"},
        {"postgres://u:SECRETPW@h:/db", "empty port"},
        {"postgres://u:SECRETPW@[::1/db", "IPv6"},
        {"postgres://u:SECRETPW@h1,h2/db", "several hosts"},
        {"postgres://u:SECRETPW@h/db?sslmode=maybe", "sslmode"},
        {"postgres://u:SECRETPW@h/db?host=evil", "unsupported parameter 'host'"},
        {"postgres://u:SECRETPW@h/db?passfile=/x", "unsupported parameter"},
        {"postgres://u:SECRETPW@h/db?sslmode", "without '='"},
        {"postgres://u:SECRET%zzPW@h/db", "password is malformed"},
        {"postgres://u%00:SECRETPW@h/db", "user name"},
        {"postgres://h/db", "no user name"},
        {"postgres://u:SECRET PW@h/db", "spaces"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct parsed *p = parse(cases[i].url);
        if (p->rc != -EINVAL || !strstr(p->err, cases[i].msg))
            fail_msg("%s: rc %d err '%s'", cases[i].url, p->rc, p->err);
        assert_null(strstr(p->err, "SECRET"));
    }
}

static void test_scrub(void **state)
{
    (void)state;
    char a[] = "postgres://u:topsecret@h:5432/db?sslmode=require";
    assert_true(mig_url_scrub(a));
    assert_string_equal(a, "postgres://u:*********@h:5432/db?sslmode=require");
    char b[] = "postgres://u@h/db?sslmode=require&password=xyz&x=1";
    assert_true(mig_url_scrub(b));
    assert_string_equal(b, "postgres://u@h/db?sslmode=require&password=***&x=1");
    char c[] = "postgres://u@h/db";
    assert_false(mig_url_scrub(c));
    assert_string_equal(c, "postgres://u@h/db");
    char d[] = "postgres://u:p@ss@h/db";
    assert_true(mig_url_scrub(d));
    assert_string_equal(d, "postgres://u:****@h/db");
    assert_false(mig_url_scrub(NULL));
}

static void test_passfile_line(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(mig_passfile_line("db.example.com", 5432, "u:1", "p\\w:d", out, sizeof(out)),
                     0);
    assert_string_equal(out, "db.example.com:5432:*:u\\:1:p\\\\w\\:d\n");
    assert_int_equal(mig_passfile_line("h", 1, "u", "pw", out, 8), -ENOSPC);
}

static void test_conninfo(void **state)
{
    (void)state;
    struct parsed *p = parse("postgres://o'neil:pw@h.example:5433/shop?sslmode=require&"
                             "application_name=theirs");
    assert_int_equal(p->rc, 0);
    char ci[1024];
    assert_int_equal(
        mig_url_conninfo(&p->u, NULL, "/run/x/pgpass", "pgwarden-migrate-3", ci, sizeof(ci)), 0);
    assert_string_equal(ci, "host='h.example' port='5433' user='o\\'neil' dbname='shop' "
                            "passfile='/run/x/pgpass' sslmode='require' "
                            "application_name='pgwarden-migrate-3' connect_timeout='10'");
    assert_null(strstr(ci, "pw"));
    assert_int_equal(mig_url_conninfo(&p->u, "other", NULL, NULL, ci, sizeof(ci)), 0);
    assert_string_equal(ci, "host='h.example' port='5433' user='o\\'neil' dbname='other' "
                            "sslmode='require' application_name='theirs' connect_timeout='10'");
    assert_int_equal(mig_url_conninfo(&p->u, NULL, NULL, NULL, ci, 20), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heroku_url),
        cmocka_unit_test(test_defaults_ipv6_and_query_password),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_scrub),
        cmocka_unit_test(test_passfile_line),
        cmocka_unit_test(test_conninfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
