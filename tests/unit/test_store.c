/* Unit tests of agent/store: open checks, WAL, migrations, events, meta, samples, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/store.h"

#include "store_fixture.h"

/* ---- raw SQLite access to the file, independent of the store ---- */

static int64_t raw_int(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void raw_text(const char *db, const char *sql, char *out, size_t cap)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static void raw_exec(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void write_file(const char *path, const void *data, size_t len, off_t at, bool trunc)
{
    int fd = open(path, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0600);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
    close(fd);
}

/* Deterministic garbage that never starts with the SQLite header. */
static void garbage(unsigned char *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
    buf[0] = 0xA5;
}

static struct store *open_ok(struct fx *f)
{
    struct store *s = store_open(f->dir, f->err, sizeof(f->err));
    if (!s)
        fail_msg("store_open: %s", f->err);
    assert_string_equal(f->err, "");
    return s;
}

static void add_event(struct store *s, int64_t ts, const char *kind, const char *detail)
{
    assert_true(store_event_add(s, ts, kind, "node1", 3, detail, NULL));
}

/* ---- open, WAL, schema ---- */

static void test_open_creates_wal_latest(void **state)
{
    struct fx *f = *state;
    char buf[64];
    char wal[160];

    assert_false(file_exists(f->db));
    struct store *s = open_ok(f);
    assert_true(file_exists(f->db));
    assert_string_equal(store_path(s), f->db);
    assert_int_equal(store_latest_schema_version(), 4);
    assert_int_equal(store_schema_version(s), store_latest_schema_version());

    int64_t id = 0;
    assert_true(store_event_add(s, 1000, "agent_start", "node1", 0, NULL, &id));
    assert_true(id > 0);
    snprintf(wal, sizeof(wal), "%s-wal", f->db);
    assert_true(file_exists(wal));
    raw_text(f->db, "PRAGMA journal_mode", buf, sizeof(buf));
    assert_string_equal(buf, "wal");
    assert_int_equal(raw_int(f->db, "PRAGMA application_id"), STORE_APPLICATION_ID);
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 4);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                    "AND name IN ('events', 'meta', 'samples')"),
                     3);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
                                    "AND name IN ('events_ts_ms', 'events_kind', "
                                    "'samples_metric_member_ts')"),
                     3);
    store_close(s);
    /* The last close checkpoints the WAL into the main file and removes it. */
    assert_false(file_exists(wal));
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events"), 1);
}

static void test_reopen_keeps_data(void **state)
{
    struct fx *f = *state;
    struct store_event ev[4];
    char v[32];

    struct store *s = open_ok(f);
    add_event(s, 10, "role_change", "{\"to\":\"primary\"}");
    add_event(s, 20, "failover", NULL);
    assert_true(store_meta_set(s, "cluster_id", "abc"));
    assert_true(store_sample_add(s, 10, "node1", "lag_bytes", 42.5));
    store_close(s);

    s = open_ok(f);
    assert_int_equal(store_events_list(s, 0, NULL, ev, 4), 2);
    assert_string_equal(ev[0].kind, "failover");
    assert_string_equal(ev[0].detail, "{}");
    assert_string_equal(ev[1].kind, "role_change");
    assert_string_equal(ev[1].detail, "{\"to\":\"primary\"}");
    assert_true(store_meta_get(s, "cluster_id", v, sizeof(v)));
    assert_string_equal(v, "abc");
    store_close(s);
    assert_int_equal(raw_int(f->db, "SELECT value * 10 FROM samples WHERE metric = 'lag_bytes'"),
                     425);
}

/* ---- events ---- */

static void test_events_order_filter_paging(void **state)
{
    struct fx *f = *state;
    struct store_event ev[8];
    int64_t ids[5];
    static const char *const kinds[] = {"role_change", "failover", "role_change", "failover",
                                        "switchover"};

    struct store *s = open_ok(f);
    for (int i = 0; i < 5; i++)
        assert_true(store_event_add(s, 100 + i, kinds[i], i == 4 ? NULL : "node2", 7 + i,
                                    i == 4 ? NULL : "{\"i\":1}", &ids[i]));
    for (int i = 1; i < 5; i++)
        assert_true(ids[i] > ids[i - 1]);

    assert_int_equal(store_events_list(s, 0, NULL, ev, 8), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ev[i].id, ids[4 - i]);
        assert_int_equal(ev[i].ts_ms, 100 + 4 - i);
        assert_int_equal(ev[i].term, 7 + 4 - i);
        assert_string_equal(ev[i].kind, kinds[4 - i]);
        assert_false(ev[i].truncated);
    }
    assert_string_equal(ev[0].member, "");
    assert_string_equal(ev[0].detail, "{}");
    assert_string_equal(ev[1].member, "node2");
    assert_string_equal(ev[1].detail, "{\"i\":1}");

    /* kind filter, newest first */
    assert_int_equal(store_events_list(s, 0, "failover", ev, 8), 2);
    assert_int_equal(ev[0].id, ids[3]);
    assert_int_equal(ev[1].id, ids[1]);
    assert_int_equal(store_events_list(s, 0, "fencing", ev, 8), 0);

    /* paging with before_id */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 2), 2);
    assert_int_equal(ev[0].id, ids[4]);
    assert_int_equal(ev[1].id, ids[3]);
    assert_int_equal(store_events_list(s, ev[1].id, NULL, ev, 2), 2);
    assert_int_equal(ev[0].id, ids[2]);
    assert_int_equal(ev[1].id, ids[1]);
    assert_int_equal(store_events_list(s, ev[1].id, NULL, ev, 2), 1);
    assert_int_equal(ev[0].id, ids[0]);
    assert_int_equal(store_events_list(s, ev[0].id, NULL, ev, 2), 0);
    assert_int_equal(store_events_list(s, ids[3], "failover", ev, 8), 1);
    assert_int_equal(ev[0].id, ids[1]);
    assert_int_equal(store_events_list(s, -5, "switchover", ev, 8), 1);
    assert_int_equal(ev[0].id, ids[4]);

    /* argument checks */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 0), 0);
    assert_true(store_events_list(s, 0, NULL, ev, -1) < 0);
    assert_true(store_events_list(s, 0, NULL, NULL, 3) < 0);
    assert_false(store_event_add(s, 1, NULL, "n", 0, NULL, NULL));
    assert_false(store_event_add(s, 1, "", "n", 0, NULL, NULL));
    assert_int_equal(store_events_list(s, 0, NULL, ev, 8), 5);
    store_close(s);
}

static void test_long_fields_truncated(void **state)
{
    struct fx *f = *state;
    struct store_event ev[3];
    char kind[41], member[65], detail[2001], fits[1024];

    memset(kind, 'k', sizeof(kind) - 1);
    kind[sizeof(kind) - 1] = '\0';
    /* 62 ASCII bytes then a 2-byte character: 64 bytes, one more than fits */
    memset(member, 'm', 62);
    memcpy(member + 62, "\xc3\xa9", 3);
    memset(detail, 'd', sizeof(detail) - 1);
    detail[0] = '"';
    detail[sizeof(detail) - 2] = '"';
    detail[sizeof(detail) - 1] = '\0';
    memset(fits, 'x', sizeof(fits) - 1);
    fits[0] = '"';
    fits[sizeof(fits) - 2] = '"';
    fits[sizeof(fits) - 1] = '\0';

    struct store *s = open_ok(f);
    assert_true(store_event_add(s, 1, kind, member, 1, detail, NULL));
    assert_true(store_event_add(s, 2, "ok", "m", 1, fits, NULL));
    memset(ev, 0x55, sizeof(ev));
    assert_int_equal(store_events_list(s, 0, NULL, ev, 3), 2);

    assert_false(ev[0].truncated);
    assert_string_equal(ev[0].kind, "ok");
    assert_string_equal(ev[0].detail, fits); /* exactly 1023 bytes: kept */

    assert_true(ev[1].truncated);
    assert_int_equal(strlen(ev[1].kind), sizeof(ev[1].kind) - 1);
    assert_int_equal(strncmp(ev[1].kind, kind, sizeof(ev[1].kind) - 1), 0);
    assert_int_equal(strlen(ev[1].member), 62); /* not cut inside the 2-byte character */
    assert_int_equal(strncmp(ev[1].member, member, 62), 0);
    assert_string_equal(ev[1].detail, "{\"truncated\":true}");
    assert_int_equal(ev[1].term, 1);
    store_close(s);
    /* the full values stay in the database */
    assert_int_equal(raw_int(f->db, "SELECT length(detail) FROM events WHERE ts_ms = 1"), 2000);
    assert_int_equal(raw_int(f->db, "SELECT length(kind) FROM events WHERE ts_ms = 1"), 40);
}

static void test_prune(void **state)
{
    struct fx *f = *state;
    struct store_event ev[16];

    struct store *s = open_ok(f);
    for (int i = 1; i <= 10; i++)
        add_event(s, i, "restart", NULL);
    assert_true(store_events_prune(s, 0, 0)); /* both rules off */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 16), 10);

    assert_true(store_events_prune(s, 3, 0)); /* ts 1 and 2 go */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 16), 8);
    assert_int_equal(ev[7].ts_ms, 3);

    assert_true(store_events_prune(s, 0, 5)); /* keep the newest 5 */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 16), 5);
    assert_int_equal(ev[0].ts_ms, 10);
    assert_int_equal(ev[4].ts_ms, 6);

    assert_true(store_events_prune(s, 0, 50)); /* fewer than the limit: nothing goes */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 16), 5);

    assert_true(store_begin(s)); /* inside a caller's transaction */
    assert_true(store_events_prune(s, 8, 1));
    assert_true(store_commit(s));
    assert_int_equal(store_events_list(s, 0, NULL, ev, 16), 1);
    assert_int_equal(ev[0].ts_ms, 10);

    assert_true(store_events_prune(s, 1000, 0));
    assert_int_equal(store_events_list(s, 0, NULL, ev, 16), 0);
    store_close(s);
}

/* ---- meta, samples ---- */

static void test_meta(void **state)
{
    struct fx *f = *state;
    char v[16];
    char big[64];

    struct store *s = open_ok(f);
    assert_false(store_meta_get(s, "absent", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(store_meta_set(s, "k", "one"));
    assert_true(store_meta_get(s, "k", v, sizeof(v)));
    assert_string_equal(v, "one");
    assert_true(store_meta_set(s, "k", "two"));
    assert_true(store_meta_get(s, "k", v, sizeof(v)));
    assert_string_equal(v, "two");
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM meta"), 1);

    assert_true(store_meta_set(s, "empty", ""));
    snprintf(v, sizeof(v), "x");
    assert_true(store_meta_get(s, "empty", v, sizeof(v)));
    assert_string_equal(v, "");

    assert_true(store_meta_set(s, "long", "0123456789abcdef")); /* 16 bytes */
    assert_false(store_meta_get(s, "long", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(store_meta_get(s, "long", big, sizeof(big)));
    assert_string_equal(big, "0123456789abcdef");

    assert_true(store_meta_set(s, "src", "postgres://app:hunter2@db.example/prod"));
    assert_true(store_meta_get(s, "src", big, sizeof(big)));
    assert_null(strstr(big, "hunter2"));
    assert_string_equal(big, "postgres://app:***@db.example/prod");

    assert_false(store_meta_set(s, NULL, "v"));
    assert_false(store_meta_set(s, "k", NULL));
    store_close(s);
}

static void test_samples(void **state)
{
    struct fx *f = *state;

    struct store *s = open_ok(f);
    assert_true(store_sample_add(s, 100, "node1", "lag_bytes", 1.0));
    assert_true(store_sample_add(s, 200, NULL, "lag_bytes", INFINITY));
    assert_true(store_sample_add(s, 300, "node2", "tps", -3.25));
    assert_false(store_sample_add(s, 400, "node2", "tps", NAN));
    assert_false(store_sample_add(s, 400, "node2", NULL, 1));
    assert_false(store_sample_add(s, 400, "node2", "", 1));
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM samples"), 3);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM samples WHERE member = ''"), 1);
    assert_true(store_samples_prune(s, 250));
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM samples"), 1);
    assert_int_equal(raw_int(f->db, "SELECT ts_ms FROM samples"), 300);
    store_close(s);
}

/* ---- secrets ---- */

static void test_detail_redacted(void **state)
{
    struct fx *f = *state;
    struct store_event ev[2];
    char raw[512];

    struct store *s = open_ok(f);
    assert_true(store_event_add(s, 1, "config_change", "n1", 1,
                                "{\"src\":\"postgres://u:secret@h/db\",\"ci\":\"host=h "
                                "password=hunter2 user=x\",\"tail\":\"end\"}",
                                NULL));
    assert_int_equal(store_events_list(s, 0, NULL, ev, 2), 1);
    assert_null(strstr(ev[0].detail, "secret"));
    assert_null(strstr(ev[0].detail, "hunter2"));
    assert_non_null(strstr(ev[0].detail, "postgres://u:***@h/db"));
    assert_non_null(strstr(ev[0].detail, "password=***"));
    assert_non_null(strstr(ev[0].detail, "\"tail\":\"end\"}")); /* masking may grow: not cut */
    store_close(s);
    /* at rest, read by another connection */
    raw_text(f->db, "SELECT detail FROM events", raw, sizeof(raw));
    assert_null(strstr(raw, "secret"));
    assert_null(strstr(raw, "hunter2"));
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events WHERE instr(detail, 'secret') "
                                    "OR instr(detail, 'hunter2')"),
                     0);
}

/* ---- transactions ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_transactions(void **state)
{
    struct fx *f = *state;
    struct store_event ev[2];

    struct store *s = open_ok(f);
    assert_true(store_rollback(s)); /* no-op outside a transaction */

    assert_true(store_begin(s));
    assert_false(store_begin(s)); /* no nesting */
    add_event(s, 1, "failover", NULL);
    assert_true(store_rollback(s));
    assert_int_equal(store_events_list(s, 0, NULL, ev, 2), 0);

    double t0 = now_s();
    assert_true(store_begin(s));
    for (int i = 0; i < 10000; i++)
        assert_true(store_event_add(s, i, "restart", "node1", i, "{\"n\":1}", NULL));
    assert_true(store_commit(s));
    double took = now_s() - t0;
    assert_true(took < 20.0);
    print_message("10000 events in one transaction: %.3f s\n", took);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events"), 10000);
    assert_int_equal(store_events_list(s, 0, NULL, ev, 2), 2);
    assert_int_equal(ev[0].ts_ms, 9999);
    assert_false(store_commit(s)); /* nothing to commit */
    store_close(s);
}

static void test_two_connections(void **state)
{
    struct fx *f = *state;
    struct store_event ev[2];

    struct store *a = open_ok(f);
    struct store *b = open_ok(f); /* e.g. ha writes while ctl reads */
    assert_true(store_begin(a));
    add_event(a, 1, "switchover", NULL);
    assert_int_equal(store_events_list(b, 0, NULL, ev, 2), 0); /* not committed yet */
    assert_true(store_commit(a));
    assert_int_equal(store_events_list(b, 0, NULL, ev, 2), 1);
    assert_string_equal(ev[0].kind, "switchover");
    store_close(a);
    store_close(b);
}

/* ---- migrations ---- */

static void test_forward_migration(void **state)
{
    struct fx *f = *state;
    struct store_event ev[4];
    const char *const *all = store_schema_migrations();

    struct store *s = store_open_with_migrations(f->dir, all, 1, f->err, sizeof(f->err));
    assert_non_null(s);
    assert_int_equal(store_schema_version(s), 1);
    add_event(s, 1, "role_change", "{\"a\":1}");
    add_event(s, 2, "failover", NULL);
    assert_true(store_meta_set(s, "k", "v"));
    assert_false(store_sample_add(s, 1, "n", "m", 1.0)); /* no samples table at version 1 */
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE name = 'samples'"),
                     0);
    store_close(s);

    s = store_open_with_migrations(f->dir, all, 2, f->err, sizeof(f->err));
    assert_non_null(s);
    assert_int_equal(store_schema_version(s), 2);
    assert_int_equal(store_events_list(s, 0, NULL, ev, 4), 2);
    assert_string_equal(ev[1].detail, "{\"a\":1}");
    assert_string_equal(ev[0].kind, "failover");
    assert_true(store_sample_add(s, 1, "n", "m", 1.0));
    store_close(s);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM samples"), 1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM meta WHERE key = 'k'"), 1);

    /* the built-in list migrates it to the latest version, data intact */
    s = open_ok(f);
    assert_int_equal(store_schema_version(s), store_latest_schema_version());
    store_close(s);
}

static void test_failing_migration_rolls_back(void **state)
{
    struct fx *f = *state;
    struct store_event ev[2];
    const char *const *all = store_schema_migrations();
    const char *const bad[] = {all[0], all[1], all[2], all[3],
                               "CREATE TABLE probe(a);"
                               "INSERT INTO meta(key, value) VALUES('probe', 'x');"
                               "THIS IS NOT SQL;"};

    struct store *s = open_ok(f);
    add_event(s, 1, "agent_start", NULL);
    store_close(s);

    s = store_open_with_migrations(f->dir, bad, 5, f->err, sizeof(f->err));
    assert_null(s);
    assert_non_null(strstr(f->err, "schema migration to version 5 failed"));
    assert_non_null(strstr(f->err, "syntax error"));
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 4);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE name = 'probe'"), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM meta"), 0);

    s = open_ok(f); /* still usable, data intact */
    assert_int_equal(store_events_list(s, 0, NULL, ev, 2), 1);
    store_close(s);
}

static void test_failing_first_migration(void **state)
{
    struct fx *f = *state;
    const char *const bad[] = {"CREATE TABLE t1(a); CREATE TABLE t2(;"};

    assert_null(store_open_with_migrations(f->dir, bad, 1, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "schema migration to version 1 failed"));
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 0);
    assert_int_equal(raw_int(f->db, "PRAGMA application_id"), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema"), 0);

    struct store *s = open_ok(f); /* the empty file is still a fresh store */
    assert_int_equal(store_schema_version(s), store_latest_schema_version());
    store_close(s);
}

static void test_newer_version_refused(void **state)
{
    struct fx *f = *state;

    store_close(open_ok(f));
    raw_exec(f->db, "PRAGMA user_version = 7");
    assert_null(store_open(f->dir, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, f->db));
    assert_non_null(strstr(f->err, "newer pgwarden"));
    assert_non_null(strstr(f->err, "schema version 7"));
    assert_non_null(strstr(f->err, "up to version 4"));
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 7);

    /* a test list shorter than the file's version is refused the same way */
    raw_exec(f->db, "PRAGMA user_version = 2");
    assert_null(
        store_open_with_migrations(f->dir, store_schema_migrations(), 1, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "schema version 2"));
    assert_non_null(strstr(f->err, "up to version 1"));
}

/* ---- bad files and directories ---- */

static void assert_not_db(struct fx *f, const unsigned char *content, size_t len)
{
    char want[512];
    unsigned char back[8192];

    assert_true(len <= sizeof(back));
    write_file(f->db, content, len, 0, true);
    assert_null(store_open(f->dir, f->err, sizeof(f->err)));
    snprintf(want, sizeof(want), "%s is not a valid pgwarden database: file is not a database",
             f->db);
    assert_string_equal(f->err, want);
    /* the file is left as it was */
    int fd = open(f->db, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, back, sizeof(back)), (ssize_t)len);
    close(fd);
    assert_memory_equal(back, content, len);
}

static void test_garbage_file(void **state)
{
    struct fx *f = *state;
    unsigned char junk[4096];

    garbage(junk, sizeof(junk), 1);
    assert_not_db(f, junk, sizeof(junk));
    assert_not_db(f, junk, 10);
    assert_not_db(f, junk, 1);           /* SQLite alone would take it for an empty database */
    memcpy(junk, "SQLite format 3", 16); /* right header, nonsense page size */
    assert_not_db(f, junk, sizeof(junk));
}

static void test_corrupt_pages(void **state)
{
    struct fx *f = *state;
    char prefix[256];
    char detail[600];
    unsigned char junk[4096];
    struct stat st;

    memset(detail, 'x', sizeof(detail) - 1);
    detail[0] = '"';
    detail[sizeof(detail) - 2] = '"';
    detail[sizeof(detail) - 1] = '\0';
    struct store *s = open_ok(f);
    assert_true(store_begin(s));
    for (int i = 0; i < 200; i++)
        add_event(s, i, "restart", detail);
    assert_true(store_commit(s));
    store_close(s);

    /* keep page 1 (the schema), trash every other page */
    int64_t page = raw_int(f->db, "PRAGMA page_size");
    assert_int_equal(stat(f->db, &st), 0);
    assert_true(st.st_size > 8 * page);
    garbage(junk, sizeof(junk), 2);
    for (off_t at = (off_t)page; at < st.st_size; at += (off_t)sizeof(junk))
        write_file(f->db, junk, sizeof(junk), at, false);

    assert_null(store_open(f->dir, f->err, sizeof(f->err)));
    snprintf(prefix, sizeof(prefix), "%s is not a valid pgwarden database: ", f->db);
    assert_int_equal(strncmp(f->err, prefix, strlen(prefix)), 0);
}

static void test_foreign_database(void **state)
{
    struct fx *f = *state;

    raw_exec(f->db, "CREATE TABLE accounts(id INTEGER)");
    assert_null(store_open(f->dir, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "is not a valid pgwarden database: it has tables"));
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema"), 1);

    raw_exec(f->db, "PRAGMA application_id = 1234; PRAGMA user_version = 1");
    assert_null(store_open(f->dir, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "application_id is 0x000004d2"));
}

static void test_bad_state_dir(void **state)
{
    struct fx *f = *state;
    char path[160];
    char want[256];

    snprintf(path, sizeof(path), "%s/missing", f->dir);
    assert_null(store_open(path, f->err, sizeof(f->err)));
    snprintf(want, sizeof(want), "state directory %s does not exist", path);
    assert_string_equal(f->err, want);
    assert_false(file_exists(path));

    snprintf(path, sizeof(path), "%s/plain", f->dir);
    write_file(path, "x", 1, 0, true);
    assert_null(store_open(path, f->err, sizeof(f->err)));
    snprintf(want, sizeof(want), "state directory %s is not a directory", path);
    assert_string_equal(f->err, want);

    assert_null(store_open(NULL, f->err, sizeof(f->err)));
    assert_string_equal(f->err, "state directory is not set");
    assert_null(store_open("", NULL, 0)); /* no err buffer: no crash */

    /* pgwarden.db is a directory */
    assert_int_equal(mkdir(f->db, 0700), 0);
    assert_null(store_open(f->dir, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "not a regular file"));
    assert_int_equal(rmdir(f->db), 0);

    /* trailing slashes do not change the file name */
    snprintf(path, sizeof(path), "%s//", f->dir);
    struct store *s = store_open(path, f->err, sizeof(f->err));
    assert_non_null(s);
    assert_string_equal(store_path(s), f->db);
    store_close(s);
}

/* In a child process (so root's permission override can be dropped): opening must fail with
 * "is not writable" and must not create the database file. Exits 0 when it behaved so. */
static bool open_refused_unwritable(struct fx *f, bool db_may_exist)
{
    bool existed = file_exists(f->db);
    if (store_open(f->dir, f->err, sizeof(f->err)) != NULL)
        return false;
    if (!strstr(f->err, "is not writable"))
        return false;
    return db_may_exist || (!existed && !file_exists(f->db));
}

static int run_unprivileged(struct fx *f, bool db_may_exist)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* Root ignores permission bits: become "nobody" for the check. */
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        _exit(open_refused_unwritable(f, db_may_exist) ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_readonly_dir(void **state)
{
    struct fx *f = *state;
    uid_t uid = geteuid() == 0 ? 65534 : geteuid();

    assert_int_equal(chown(f->dir, uid, uid), 0);
    assert_int_equal(chmod(f->dir, 0555), 0);
    assert_int_equal(run_unprivileged(f, false), 0);
    assert_int_equal(chmod(f->dir, 0700), 0);

    store_close(open_ok(f));
    assert_int_equal(chown(f->db, uid, uid), 0);
    assert_int_equal(chmod(f->db, 0444), 0);
    assert_int_equal(run_unprivileged(f, true), 0);
}

static void test_null_store(void **state)
{
    (void)state;
    struct store_event ev[1];
    char v[8];

    store_close(NULL);
    assert_int_equal(store_schema_version(NULL), -1);
    assert_false(store_event_add(NULL, 1, "k", "m", 0, NULL, NULL));
    assert_int_equal(store_events_list(NULL, 0, NULL, ev, 1), -1);
    assert_false(store_events_prune(NULL, 1, 1));
    assert_false(store_meta_set(NULL, "k", "v"));
    assert_false(store_meta_get(NULL, "k", v, sizeof(v)));
    assert_false(store_sample_add(NULL, 1, "m", "x", 1));
    assert_false(store_samples_prune(NULL, 1));
    assert_false(store_begin(NULL));
    assert_false(store_commit(NULL));
    assert_false(store_rollback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_wal_latest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_order_filter_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_fields_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detail_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_migration_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_first_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_state_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_dir, setup, teardown),
        cmocka_unit_test(test_null_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
