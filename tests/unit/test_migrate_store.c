/* Unit tests of the migration job rows in the SQLite store (schema versions 3 and 4). */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/store.h"
#include "platform/log.h"

struct fx {
    char dir[64];
    char err[512];
    struct store *s;
    struct store_migration m;
};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-migstore-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    log_setup(LOG_LVL_ERROR, "test");
    f->s = store_open(f->dir, f->err, sizeof(f->err));
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void test_job_lifecycle(void **state)
{
    struct fx *f = *state;
    struct store_migration *m = &f->m;
    assert_false(store_migration_get(f->s, 0, m)); /* none yet */
    assert_int_equal(m->id, 0);

    int64_t id = 0;
    assert_true(store_migration_start(f->s, 1000, "postgres://app@h:5432/shop?sslmode=require",
                                      "shop", "dump", 4242, &id));
    assert_true(id > 0);
    assert_true(store_migration_get(f->s, 0, m));
    assert_int_equal(m->id, id);
    assert_string_equal(m->state, "preflight");
    assert_string_equal(m->source, "postgres://app@h:5432/shop?sslmode=require");
    assert_string_equal(m->target_db, "shop");
    assert_string_equal(m->mode, "dump");
    assert_int_equal(m->pid, 4242);
    assert_int_equal(m->started_ms, 1000);
    assert_int_equal(m->finished_ms, 0);
    assert_string_equal(m->report, "{}");

    assert_true(store_migration_staging(f->s, id, "pgwarden_migrate_1"));
    assert_true(store_migration_progress(f->s, id, 2000, "restore", 10, 100, 1, 4));
    assert_true(store_migration_get(f->s, id, m));
    assert_string_equal(m->staging_db, "pgwarden_migrate_1");
    assert_string_equal(m->state, "restore");
    assert_int_equal(m->bytes_done, 10);
    assert_int_equal(m->bytes_total, 100);
    assert_int_equal(m->tables_done, 1);
    assert_int_equal(m->tables_total, 4);
    assert_int_equal(m->updated_ms, 2000);

    assert_true(store_migration_finish(f->s, id, 3000, "failed", "pg_restore exited with code 1",
                                       "{\"ok\":false}"));
    assert_true(store_migration_get(f->s, id, m));
    assert_string_equal(m->state, "failed");
    assert_int_equal(m->finished_ms, 3000);
    assert_string_equal(m->error, "pg_restore exited with code 1");
    assert_string_equal(m->report, "{\"ok\":false}");
    /* NULL keeps the stored report */
    assert_true(store_migration_finish(f->s, id, 3500, "failed", "again", NULL));
    assert_true(store_migration_get(f->s, id, m));
    assert_string_equal(m->report, "{\"ok\":false}");

    /* the newest job is the default; an older one by id */
    int64_t id2 = 0;
    assert_true(store_migration_start(f->s, 4000, "postgres://b@h/x", "x", NULL, 1, &id2));
    assert_true(id2 > id);
    assert_true(store_migration_get(f->s, 0, m));
    assert_int_equal(m->id, id2);
    assert_true(store_migration_get(f->s, id, m));
    assert_int_equal(m->id, id);
    assert_false(store_migration_get(f->s, id2 + 10, m));
}

static void test_secrets_masked_and_big_report(void **state)
{
    struct fx *f = *state;
    int64_t id = 0;
    /* callers pass URLs without password; a mistake is still masked */
    assert_true(
        store_migration_start(f->s, 1, "postgres://app:hunter2@h/db", "db", "dump", 1, &id));
    assert_true(store_migration_finish(
        f->s, id, 2, "failed", "connect postgres://app:hunter2@h/db password=hunter2", NULL));
    assert_true(store_migration_get(f->s, id, &f->m));
    assert_null(strstr(f->m.source, "hunter2"));
    assert_null(strstr(f->m.error, "hunter2"));
    size_t n = sizeof(f->m.report) + 100;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'x', n - 1);
    big[0] = '"';
    big[n - 2] = '"';
    big[n - 1] = '\0';
    assert_true(store_migration_finish(f->s, id, 3, "failed", "", big));
    assert_true(store_migration_get(f->s, id, &f->m));
    assert_string_equal(f->m.report, "{\"truncated\":true}");
    free(big);
}

static void test_old_schema_refuses(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-migstore-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->s = store_open_with_migrations(f->dir, store_schema_migrations(), 2, f->err, sizeof(f->err));
    assert_non_null(f->s);
    int64_t id = 0;
    assert_false(store_migration_start(f->s, 1, "x", "y", "dump", 1, &id));
    assert_false(store_migration_get(f->s, 0, &f->m));
}

static void test_online_fields(void **state)
{
    struct fx *f = *state;
    struct store_migration *m = &f->m;
    int64_t id = 0, dump_id = 0;
    assert_true(store_migration_start(f->s, 1, "postgres://a@h/d", "d", "dump", 7, &dump_id));
    assert_true(store_migration_get(f->s, dump_id, m));
    assert_int_equal(m->lag_bytes, -1); /* not applicable */
    assert_int_equal(m->cutover_ms, -1);
    assert_string_equal(m->repl_name, "");

    assert_true(store_migration_start(f->s, 2, "postgres://a@h/d", "d", "online", 7, &id));
    assert_true(store_migration_repl_name(f->s, id, "pgwarden_mig_2"));
    assert_true(store_migration_lag(f->s, id, 5000, 123456789012LL));
    assert_true(store_migration_get(f->s, id, m));
    assert_string_equal(m->mode, "online");
    assert_string_equal(m->repl_name, "pgwarden_mig_2");
    assert_int_equal(m->lag_bytes, 123456789012LL);
    assert_int_equal(m->updated_ms, 5000);
    assert_true(store_migration_lag(f->s, id, 6000, -42)); /* unknown */
    assert_true(store_migration_get(f->s, id, m));
    assert_int_equal(m->lag_bytes, -1);

    /* a transition only happens from the expected state, and records the pid */
    bool changed = true;
    assert_true(store_migration_transition(f->s, id, 7000, "streaming", "cutover", 99, &changed));
    assert_false(changed); /* still in preflight */
    assert_true(store_migration_transition(f->s, id, 7000, "preflight", "streaming", 98, &changed));
    assert_true(changed);
    assert_true(store_migration_transition(f->s, id, 8000, "streaming", "cutover", 99, &changed));
    assert_true(changed);
    assert_true(store_migration_transition(f->s, id, 8001, "streaming", "cutover", 100, &changed));
    assert_false(changed); /* a second cutover loses */
    assert_true(store_migration_cutover_ms(f->s, id, 2345));
    assert_true(store_migration_get(f->s, id, m));
    assert_string_equal(m->state, "cutover");
    assert_int_equal(m->pid, 99);
    assert_int_equal(m->updated_ms, 8000);
    assert_int_equal(m->cutover_ms, 2345);
    /* the other job is untouched */
    assert_true(store_migration_get(f->s, dump_id, m));
    assert_int_equal(m->lag_bytes, -1);
    assert_string_equal(m->state, "preflight");
}

/* A store at schema version 3 with a job gets the version-4 columns with their defaults. */
static void test_upgrade_from_v3(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-migstore-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->s = store_open_with_migrations(f->dir, store_schema_migrations(), 3, f->err, sizeof(f->err));
    assert_non_null(f->s);
    int64_t id = 0;
    assert_true(store_migration_start(f->s, 1, "postgres://a@h/d", "d", "dump", 1, &id));
    assert_false(store_migration_lag(f->s, id, 2, 10)); /* no column yet */
    store_close(f->s);
    f->s = store_open(f->dir, f->err, sizeof(f->err));
    assert_non_null(f->s);
    assert_int_equal(store_schema_version(f->s), 4);
    assert_true(store_migration_get(f->s, id, &f->m));
    assert_string_equal(f->m.target_db, "d");
    assert_int_equal(f->m.lag_bytes, -1);
    assert_int_equal(f->m.cutover_ms, -1);
    assert_true(store_migration_lag(f->s, id, 2, 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets_masked_and_big_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_schema_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_v3, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
