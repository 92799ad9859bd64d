/* Unit tests of the online migration's pure parts: preflight verdict, names, SQL, lag text. */
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

/* A source that allows everything: a non-superuser owner with REPLICATION. */
static struct mig_logical_facts good(void)
{
    struct mig_logical_facts f = {
        .version = 150004,
        .replication = true,
        .can_create = true,
        .replication_conn_ok = true,
        .slots_free = 10,
        .senders_free = 10,
    };
    snprintf(f.wal_level, sizeof(f.wal_level), "logical");
    return f;
}

static int count_lines(const char *s)
{
    int n = *s ? 1 : 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_logical_check(void **state)
{
    (void)state;
    char out[2048];
    struct mig_logical_facts f = good();
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 0);
    assert_string_equal(out, "");

    /* each problem is named, with what to do */
    f = good();
    snprintf(f.wal_level, sizeof(f.wal_level), "replica");
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "wal_level is 'replica'"));
    assert_non_null(strstr(out, "wal_level = logical"));

    f = good();
    f.replication = false;
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "REPLICATION attribute"));

    f = good();
    f.replication_conn_ok = false;
    snprintf(f.replication_conn_err, sizeof(f.replication_conn_err), "no pg_hba.conf entry");
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "replication connection to the source is refused: no pg_hba"));

    f = good();
    f.slots_free = 1;
    f.senders_free = 0;
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "1 free replication slot (max_replication_slots)"));
    assert_non_null(strstr(out, "0 free WAL senders"));

    f = good();
    f.tables_not_owned = 2;
    f.can_create = false;
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "2 are owned by other roles"));
    assert_non_null(strstr(out, "CREATE on the database"));
    f.superuser = true; /* a superuser publishes FOR ALL TABLES */
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 0);

    f = good();
    f.large_objects = 3;
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "3 large objects"));
    assert_non_null(strstr(out, "dump mode"));

    /* tables without a key: refused unless --replica-identity-full */
    f = good();
    f.nnokey = 2;
    snprintf(f.nokey, sizeof(f.nokey), "public.a, s.\"B\"");
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "2 tables without a primary key"));
    assert_non_null(strstr(out, "public.a, s.\"B\""));
    assert_non_null(strstr(out, "--replica-identity-full"));
    assert_int_equal(mig_logical_check(&f, true, out, sizeof(out)), 0);

    /* everything at once: one line each; a small buffer is cut, the count stays */
    f = good();
    f.version = 90600;
    snprintf(f.wal_level, sizeof(f.wal_level), "minimal");
    f.replication = false;
    f.slots_free = 0;
    f.senders_free = 0;
    f.large_objects = 1;
    f.nnokey = 1;
    snprintf(f.nokey, sizeof(f.nokey), "t");
    assert_int_equal(mig_logical_check(&f, false, out, sizeof(out)), 7);
    assert_int_equal(count_lines(out), 7);
    assert_non_null(strstr(out, "PostgreSQL 9.6"));
    assert_non_null(strstr(out, "1 large object:"));
    char small[40];
    assert_int_equal(mig_logical_check(&f, false, small, sizeof(small)), 7);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_names_and_sql(void **state)
{
    (void)state;
    char name[64];
    assert_int_equal(mig_repl_name(12, 0x123456789abcULL, name, sizeof(name)), 0);
    assert_string_equal(name, "pgwarden_mig_12_56789abc");
    assert_int_equal(mig_repl_name(12, 0, name, 10), -ENOSPC);

    const char *t[] = {"public.t", "\"Sales\".\"Orders\""};
    char *sql = mig_publication_sql("pgwarden_mig_1_0000abcd", false, t, 2);
    assert_non_null(sql);
    assert_string_equal(
        sql, "CREATE PUBLICATION pgwarden_mig_1_0000abcd FOR TABLE public.t, \"Sales\".\"Orders\"");
    free(sql);
    sql = mig_publication_sql("p", true, t, 2);
    assert_string_equal(sql, "CREATE PUBLICATION p FOR ALL TABLES");
    free(sql);
    sql = mig_publication_sql("p", false, NULL, 0); /* no tables yet: an empty publication */
    assert_string_equal(sql, "CREATE PUBLICATION p");
    free(sql);
}

static void test_sub_conninfo(void **state)
{
    (void)state;
    struct mig_url u;
    char pw[64], err[128], ci[1024];
    assert_int_equal(mig_url_parse("postgres://app:s%27e%5Cc@db.example.com:6543/shop?sslmode="
                                   "require",
                                   &u, pw, sizeof(pw), err, sizeof(err)),
                     0);
    assert_string_equal(pw, "s'e\\c");
    assert_int_equal(mig_sub_conninfo(&u, pw, ci, sizeof(ci)), 0);
    /* the server's libpq reads it: quoted values, the quote and backslash escaped, no passfile
     * and no application_name (the walsender shows the subscription's name) */
    assert_non_null(strstr(ci, "host='db.example.com'"));
    assert_non_null(strstr(ci, "port='6543'"));
    assert_non_null(strstr(ci, "user='app'"));
    assert_non_null(strstr(ci, "dbname='shop'"));
    assert_non_null(strstr(ci, "sslmode='require'"));
    assert_non_null(strstr(ci, " password='s\\'e\\\\c'"));
    assert_null(strstr(ci, "passfile"));
    assert_null(strstr(ci, "application_name"));
    /* without a password: none in the conninfo */
    assert_int_equal(mig_sub_conninfo(&u, "", ci, sizeof(ci)), 0);
    assert_null(strstr(ci, "password"));
    /* too small: -ENOSPC, never a cut password */
    size_t need = strlen(ci);
    assert_int_equal(mig_sub_conninfo(&u, pw, ci, need + 12), -ENOSPC);
    assert_int_equal(mig_sub_conninfo(&u, pw, ci, 20), -ENOSPC);
}

static void test_lag_text(void **state)
{
    (void)state;
    char out[200];
    assert_string_equal(mig_fmt_lag(-1, out, sizeof(out)), "unknown");
    assert_string_equal(mig_fmt_lag(0, out, sizeof(out)), "0 B (in sync)");
    assert_string_equal(mig_fmt_lag(512, out, sizeof(out)), "512 B");
    assert_string_equal(mig_fmt_lag(3 * 1024 * 1024 / 2, out, sizeof(out)), "1.5 MB");
    assert_string_equal(mig_online_line(MIG_PH_COPY, 3, 7, -1, 0, out, sizeof(out)),
                        "initial copy: 3/7 tables copied, lag unknown");
    assert_string_equal(mig_online_line(MIG_PH_STREAMING, 7, 7, 0, 0, out, sizeof(out)),
                        "streaming: lag 0 B (in sync)");
    assert_string_equal(mig_online_line(MIG_PH_STREAMING, 7, 7, 2048, 2, out, sizeof(out)),
                        "streaming: lag 2.0 KB, 2 replication errors (see the leader's log)");
    assert_string_equal(mig_phase_name(MIG_PH_SCHEMA), "schema");
    assert_string_equal(mig_phase_name(MIG_PH_COPY), "copy");
    assert_string_equal(mig_phase_name(MIG_PH_STREAMING), "streaming");
    assert_string_equal(mig_phase_name(MIG_PH_CUTOVER), "cutover");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logical_check),
        cmocka_unit_test(test_names_and_sql),
        cmocka_unit_test(test_sub_conninfo),
        cmocka_unit_test(test_lag_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
