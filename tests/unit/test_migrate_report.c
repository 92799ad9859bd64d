/* Unit tests of agent/migrate progress arithmetic, tool line parsing and verification reports. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/migrate/mig_int.h"

static void test_progress_fraction_rate_eta(void **state)
{
    (void)state;
    struct mig_progress p = {0};
    mig_progress_phase(&p, MIG_PH_RESTORE, 10000);
    p.bytes_total = 1000;
    p.tables_total = 4;
    assert_int_equal(mig_progress_eta_s(&p, 10500), -1); /* nothing done, < 1 s */
    mig_progress_sample(&p, 0, 10400);                   /* too soon for a rate sample */
    assert_true(p.rate_bps == 0);
    mig_progress_sample(&p, 100, 11000); /* 100 B in 1 s */
    assert_true(p.rate_bps > 99.9 && p.rate_bps < 100.1);
    assert_true(mig_progress_fraction(&p) > 0.099 && mig_progress_fraction(&p) < 0.101);
    /* elapsed 1 s for 10 %: 9 s by time; 900 B at 100 B/s: 9 s by rate */
    assert_int_equal(mig_progress_eta_s(&p, 11000), 9);
    mig_progress_sample(&p, 500, 12000); /* 400 B in 1 s: smoothed 0.7*100 + 0.3*400 */
    assert_true(p.rate_bps > 189.9 && p.rate_bps < 190.1);
    /* by time: 2 s for 50 % -> 2 s; by rate: 500/190 = 2.63 s; mean 2.3 -> 2 */
    assert_int_equal(mig_progress_eta_s(&p, 12000), 2);
    mig_progress_sample(&p, 400, 13000); /* bytes never go backwards */
    assert_int_equal(p.bytes_done, 500);
    mig_progress_sample(&p, 1000, 14000);
    assert_int_equal(mig_progress_eta_s(&p, 14000), 0);
    mig_progress_sample(&p, 5000, 15000); /* beyond the estimate: capped at 100 % */
    assert_true(mig_progress_fraction(&p) == 1.0);
    /* no byte total: by tables */
    mig_progress_phase(&p, MIG_PH_VERIFY, 0);
    p.tables_total = 8;
    p.tables_done = 2;
    assert_true(mig_progress_fraction(&p) == 0.25);
    assert_int_equal(mig_progress_eta_s(&p, 4000), 12);
    p.tables_total = 0;
    assert_true(mig_progress_fraction(&p) == 0);
    assert_int_equal(mig_progress_eta_s(&p, 4000), -1);
}

static void test_formats_and_line(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(mig_fmt_bytes(0, b, sizeof(b)), "0 B");
    assert_string_equal(mig_fmt_bytes(1023, b, sizeof(b)), "1023 B");
    assert_string_equal(mig_fmt_bytes(1536, b, sizeof(b)), "1.5 KB");
    assert_string_equal(mig_fmt_bytes(5ull << 30, b, sizeof(b)), "5.0 GB");
    assert_string_equal(mig_fmt_duration(-1, b, sizeof(b)), "--:--");
    assert_string_equal(mig_fmt_duration(65, b, sizeof(b)), "1:05");
    assert_string_equal(mig_fmt_duration(3723, b, sizeof(b)), "1:02:03");
    struct mig_progress p = {0};
    mig_progress_phase(&p, MIG_PH_DUMP, 0);
    p.bytes_total = 4ull << 20;
    p.tables_total = 40;
    p.tables_done = 12;
    mig_progress_sample(&p, 1ull << 20, 2000);
    char line[300];
    mig_progress_line(&p, 2000, 10, line, sizeof(line));
    assert_string_equal(line, "[##........]  25% dump    1.0 MB/4.0 MB 12/40 tables 512.0 KB/s "
                              "ETA 0:06");
    mig_progress_line(&p, 2000, 0, line, sizeof(line));
    assert_string_equal(line, " 25% dump    1.0 MB/4.0 MB 12/40 tables 512.0 KB/s ETA 0:06");
    assert_string_equal(mig_phase_name(MIG_PH_FAILED), "failed");
    mig_progress_phase(&p, MIG_PH_VERIFY, 0);
    p.tables_total = 8;
    p.tables_done = 6;
    mig_progress_line(&p, 3000, 4, line, sizeof(line));
    assert_string_equal(line, "[###.]  75% verify  6/8 tables ETA 0:01");
}

static void test_tool_lines(void **state)
{
    (void)state;
    char n[MIG_NAME_MAX];
    assert_int_equal(
        mig_parse_tool_line("pg_dump: dumping contents of table \"sales.orders\"", n, sizeof(n)),
        MIG_LINE_TABLE_STARTED);
    assert_string_equal(n, "sales.orders");
    assert_int_equal(
        mig_parse_tool_line("pg_restore: processing data for table \"a.\"q\"\"", n, sizeof(n)),
        MIG_LINE_TABLE_STARTED);
    assert_string_equal(n, "a.\"q\"");
    assert_int_equal(
        mig_parse_tool_line("pg_restore: finished item 3345 TABLE DATA t1", n, sizeof(n)),
        MIG_LINE_TABLE_FINISHED);
    assert_string_equal(n, "t1");
    assert_int_equal(
        mig_parse_tool_line("pg_dump: finished item 3346 TABLE DATA my table\r", n, sizeof(n)),
        MIG_LINE_TABLE_FINISHED);
    assert_string_equal(n, "my table");
    assert_int_equal(
        mig_parse_tool_line("pg_restore: finished item 3202 CONSTRAINT t1 t1_pkey", n, sizeof(n)),
        MIG_LINE_OTHER);
    assert_int_equal(mig_parse_tool_line("pg_dump: reading schemas", n, sizeof(n)), MIG_LINE_OTHER);
    assert_int_equal(mig_parse_tool_line("NOTICE: dumping contents of table \"x\"", n, sizeof(n)),
                     MIG_LINE_OTHER);
    assert_int_equal(mig_parse_tool_line("pg_dump: dumping contents of table \"\"", n, sizeof(n)),
                     MIG_LINE_OTHER);
}

static void add(struct mig_inventory *inv, const char *k, const char *n, const char *v)
{
    assert_int_equal(mig_inventory_add(inv, k, n, v), 0);
}

static void test_compare_identical(void **state)
{
    (void)state;
    struct mig_inventory s, t;
    mig_inventory_init(&s);
    mig_inventory_init(&t);
    /* different order on each side, many items (growth) */
    for (int i = 0; i < 100; i++) {
        char name[32], v[32];
        snprintf(name, sizeof(name), "public.t%03d", i);
        snprintf(v, sizeof(v), "%d", i * 10);
        add(&s, "rows", name, v);
        snprintf(name, sizeof(name), "public.t%03d", 99 - i);
        snprintf(v, sizeof(v), "%d", (99 - i) * 10);
        add(&t, "rows", name, v);
    }
    add(&s, "checksum", "public.t000", "0/0");
    add(&t, "checksum", "public.t000", "0/0");
    add(&s, "count", "indexes in public", "3");
    add(&t, "count", "indexes in public", "3");
    add(&s, "count", "views in s", "0"); /* a zero count listed on one side only */
    struct mig_report rep;
    assert_int_equal(mig_compare(&s, &t, &rep), 0);
    assert_int_equal(rep.compared, 103);
    assert_int_equal(rep.tables, 100);
    assert_int_equal(rep.rows, 49500);
    assert_true(rep.checksums);
    char *json = mig_report_json(&rep, 10);
    assert_non_null(json);
    assert_string_equal(json, "{\"ok\":true,\"compared\":103,\"tables\":100,\"rows\":49500,"
                              "\"checksums\":true,\"differences\":[]}");
    free(json);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mig_report_print(&rep, 10, f);
    fclose(f);
    assert_non_null(strstr(buf, "verified: 100 tables, 49500 rows, 103 checks (with row "
                                "checksums): source and copy are identical"));
    free(buf);
    mig_report_free(&rep);
    mig_inventory_free(&s);
    mig_inventory_free(&t);
}

static void test_compare_differences(void **state)
{
    (void)state;
    struct mig_inventory s, t;
    mig_inventory_init(&s);
    mig_inventory_init(&t);
    add(&s, "rows", "sales.orders", "20000");
    add(&t, "rows", "sales.orders", "19999");
    add(&s, "checksum", "sales.orders", "11/22");
    add(&t, "checksum", "sales.orders", "11/23");
    add(&s, "rows", "sales.gone", "5");   /* missing on the copy */
    add(&t, "rows", "public.extra", "0"); /* only on the copy */
    add(&s, "sequence", "sales.invoice_no", "4242");
    add(&t, "sequence", "sales.invoice_no", "1000");
    add(&s, "count", "foreign keys in sales", "2");
    add(&s, "rows", "a.secret", "error: permission denied for table secret");
    add(&t, "rows", "a.secret", "error: permission denied for table secret");
    add(&s, "extension", "hstore", "installed");
    add(&t, "extension", "hstore", "installed");
    assert_int_equal(mig_inventory_set(&t, "extension", "hstore", "installed"), 0);
    assert_int_equal(t.n, 6);
    struct mig_report rep;
    assert_int_equal(mig_compare(&s, &t, &rep), 7);
    /* sorted by kind, then object */
    const char *want[][4] = {
        {"checksum", "sales.orders", "11/22", "11/23"},
        {"count", "foreign keys in sales", "2", "0"},
        {"rows", "a.secret", "error: permission denied for table secret",
         "error: permission denied for table secret"},
        {"rows", "public.extra", "(missing)", "0"},
        {"rows", "sales.gone", "5", "(missing)"},
        {"rows", "sales.orders", "20000", "19999"},
        {"sequence", "sales.invoice_no", "4242", "1000"},
    };
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(rep.diffs[i].kind, want[i][0]);
        assert_string_equal(rep.diffs[i].name, want[i][1]);
        assert_string_equal(rep.diffs[i].source, want[i][2]);
        assert_string_equal(rep.diffs[i].target, want[i][3]);
    }
    assert_int_equal(rep.tables, 3);
    assert_int_equal(rep.rows, 20005);
    char *json = mig_report_json(&rep, 2);
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    assert_non_null(o);
    assert_true(json_is_false(json_object_get(o, "ok")));
    assert_int_equal(json_array_size(json_object_get(o, "differences")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "more_differences")), 5);
    json_t *d0 = json_array_get(json_object_get(o, "differences"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "object")), "sales.orders");
    assert_string_equal(json_string_value(json_object_get(d0, "target")), "11/23");
    json_decref(o);
    free(json);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mig_report_print(&rep, 3, f);
    fclose(f);
    assert_non_null(strstr(buf, "verification FAILED: 7 differences"));
    assert_non_null(strstr(buf, "sales.orders"));
    assert_non_null(strstr(buf, "... and 4 more"));
    free(buf);
    mig_report_free(&rep);
    mig_inventory_free(&s);
    mig_inventory_free(&t);
}

static void test_compare_empty_and_long_values(void **state)
{
    (void)state;
    struct mig_inventory s, t;
    mig_inventory_init(&s);
    mig_inventory_init(&t);
    struct mig_report rep;
    assert_int_equal(mig_compare(&s, &t, &rep), 0);
    assert_int_equal(rep.compared, 0);
    mig_report_free(&rep);
    char longname[400];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    add(&s, "rows", longname, "1"); /* cut to fit, still compared */
    add(&t, "rows", longname, "1");
    assert_int_equal(strlen(s.items[0].name), MIG_NAME_MAX - 1);
    assert_int_equal(mig_compare(&s, &t, &rep), 0);
    mig_report_free(&rep);
    mig_inventory_free(&s);
    mig_inventory_free(&t);
}

static void test_table_check_sql(void **state)
{
    (void)state;
    char sql[1024];
    assert_int_equal(mig_table_check_sql("\"s\".\"T\"", MIG_DIGEST_NONE, sql, sizeof(sql)), 0);
    assert_string_equal(sql, "SELECT count(*) FROM ONLY \"s\".\"T\"");
    assert_int_equal(mig_table_check_sql("public.t", MIG_DIGEST_MD5, sql, sizeof(sql)), 0);
    /* order-independent: sums of the two 64-bit halves of each row's md5, no sort, no limit */
    assert_non_null(strstr(sql, "SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))"));
    assert_non_null(strstr(sql, "substr(h, 17, 16)"));
    assert_non_null(strstr(sql, "FROM (SELECT md5(ROW(r.*)::text) AS h FROM ONLY public.t AS r)"));
    assert_null(strstr(sql, "ORDER BY"));
    assert_int_equal(mig_table_check_sql("public.t", MIG_DIGEST_MD5, sql, 40), -ENOSPC);
    /* the cheaper digest: one row text, one 64-bit hash per row, an exact (numeric) sum */
    assert_int_equal(mig_table_check_sql("public.t", MIG_DIGEST_HASH64, sql, sizeof(sql)), 0);
    assert_string_equal(sql, "SELECT count(*), coalesce(sum(hashtextextended(ROW(r.*)::text, 0)), "
                             "0)::text FROM ONLY public.t AS r");
    assert_int_equal(mig_table_check_sql("public.t", MIG_DIGEST_HASH64, sql, 40), -ENOSPC);
    /* which digest: none without --verify checksums, md5 for a PostgreSQL 10 source */
    assert_int_equal(mig_digest_for(false, 150000), MIG_DIGEST_NONE);
    assert_int_equal(mig_digest_for(true, 150004), MIG_DIGEST_HASH64);
    assert_int_equal(mig_digest_for(true, 110000), MIG_DIGEST_HASH64);
    assert_int_equal(mig_digest_for(true, 100023), MIG_DIGEST_MD5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress_fraction_rate_eta),
        cmocka_unit_test(test_formats_and_line),
        cmocka_unit_test(test_tool_lines),
        cmocka_unit_test(test_compare_identical),
        cmocka_unit_test(test_compare_differences),
        cmocka_unit_test(test_compare_empty_and_long_values),
        cmocka_unit_test(test_table_check_sql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
