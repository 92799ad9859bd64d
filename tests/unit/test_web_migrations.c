/* Unit tests of web/migrations.c: job states, interrupted jobs, rate and ETA, no secret shown. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/store.h"
#include "platform/log.h"
#include "web/dash.h"
#include "agent/migrate/migrate.h"
#include "web/migrations.h"
#include "web/routes.h"
#include "tmpdir_fixture.h"

enum { MB = 1024 * 1024 };
static const int64_t T0 = 1800000000000LL; /* a job's start, epoch ms */

static struct store_migration *job(const char *mode, const char *state)
{
    struct store_migration *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->id = 7;
    m->pid = 4242;
    m->started_ms = T0;
    m->updated_ms = T0;
    m->lag_bytes = -1;
    m->cutover_ms = -1;
    snprintf(m->mode, sizeof(m->mode), "%s", mode);
    snprintf(m->state, sizeof(m->state), "%s", state);
    snprintf(m->source, sizeof(m->source),
             "postgres://app@db.example.com:5432/shop?sslmode=require");
    snprintf(m->target_db, sizeof(m->target_db), "shop");
    snprintf(m->report, sizeof(m->report), "{}");
    return m;
}

static json_int_t int_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static bool is_null(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return v && json_is_null(v);
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    assert_non_null(s);
    return s;
}

/* ---- states ---- */

static void test_shown_state(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "restore");
    assert_string_equal(mig_job_shown_state(m, true), "restore");
    assert_string_equal(mig_job_shown_state(m, false), "interrupted");
    snprintf(m->state, sizeof(m->state), "done");
    assert_string_equal(mig_job_shown_state(m, false), "done");
    snprintf(m->state, sizeof(m->state), "failed");
    assert_string_equal(mig_job_shown_state(m, true), "failed");
    /* an online job streams in the cluster with or without its process, not before */
    snprintf(m->mode, sizeof(m->mode), "online");
    const char *lives[] = {"copy", "streaming", "cutover", "verify", "finish"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(m->state, sizeof(m->state), "%s", lives[i]);
        assert_true(mig_job_online_lives(m));
        assert_string_equal(mig_job_shown_state(m, false), lives[i]);
    }
    const char *not_yet[] = {"preflight", "schema"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(m->state, sizeof(m->state), "%s", not_yet[i]);
        assert_false(mig_job_online_lives(m));
        assert_string_equal(mig_job_shown_state(m, false), "interrupted");
        assert_string_equal(mig_job_shown_state(m, true), not_yet[i]);
    }
    snprintf(m->mode, sizeof(m->mode), "dump");
    snprintf(m->state, sizeof(m->state), "verify");
    assert_false(mig_job_online_lives(m));
    assert_string_equal(mig_job_shown_state(m, false), "interrupted");
    free(m);
}

static void test_pid_alive(void **state)
{
    (void)state;
    assert_true(mig_pid_alive(getpid()));
    assert_true(mig_pid_alive(1)); /* another user's process (EPERM) still counts */
    assert_false(mig_pid_alive(0));
    assert_false(mig_pid_alive(-5));
    assert_false(mig_pid_alive((int64_t)1 << 40));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_false(mig_pid_alive(child)); /* reaped: gone */
}

static void test_interrupted_job(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "restore");
    m->updated_ms = T0 + 8000;
    m->bytes_done = 10 * MB;
    m->bytes_total = 40 * MB;
    json_t *o = web_mig_json(m, false, NULL, T0 + 60000);
    assert_string_equal(str_of(o, "state"), "interrupted");
    assert_string_equal(str_of(o, "phase"), "restore");
    assert_true(json_is_false(json_object_get(o, "running")));
    assert_true(json_is_false(json_object_get(o, "alive")));
    assert_true(json_is_false(json_object_get(o, "finished")));
    assert_true(is_null(o, "finished_ms"));
    assert_true(is_null(o, "rate_bps") && is_null(o, "eta_s"));
    assert_int_equal(int_of(o, "elapsed_ms"), 8000); /* until its last sign of life */
    assert_int_equal(int_of(o, "percent"), 25);
    json_decref(o);
    free(m);
}

/* ---- rate and ETA ---- */

static void test_rate_eta_from_job_start(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "dump");
    m->updated_ms = T0 + 10000;
    m->bytes_done = 25 * MB;
    m->bytes_total = 100 * MB;
    m->tables_done = 1;
    m->tables_total = 4;
    json_t *o = web_mig_json(m, true, NULL, T0 + 11000);
    assert_string_equal(str_of(o, "state"), "dump");
    assert_true(json_is_true(json_object_get(o, "running")));
    assert_int_equal(int_of(o, "rate_bps"), 25 * MB / 10); /* 2.5 MB/s */
    assert_int_equal(int_of(o, "eta_s"), 30);              /* 75 MB at 2.5 MB/s */
    assert_int_equal(int_of(o, "percent"), 25);
    assert_int_equal(int_of(o, "elapsed_ms"), 11000);
    assert_int_equal(int_of(o, "tables_done"), 1);
    assert_int_equal(int_of(o, "tables_total"), 4);
    json_decref(o);

    /* less than a second of progress: no estimate yet */
    m->updated_ms = T0 + 900;
    o = web_mig_json(m, true, NULL, T0 + 900);
    assert_true(is_null(o, "rate_bps") && is_null(o, "eta_s"));
    json_decref(o);
    free(m);
}

static void test_rate_eta_from_basis(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "restore");
    m->updated_ms = T0 + 30000;
    m->bytes_done = 25 * MB;
    m->bytes_total = 100 * MB;
    /* the restore phase watched from T0 + 24 s at 10 MB: 15 MB in 6 s */
    struct web_mig_basis b = {T0 + 24000, 10 * MB, 0};
    json_t *o = web_mig_json(m, true, &b, T0 + 30000);
    assert_int_equal(int_of(o, "rate_bps"), 15 * MB / 6);
    assert_int_equal(int_of(o, "eta_s"), 30);
    json_decref(o);

    /* no progress since the basis: rate 0, ETA unknown (not infinite) */
    b = (struct web_mig_basis){T0 + 24000, 25 * MB, 0};
    o = web_mig_json(m, true, &b, T0 + 30000);
    assert_int_equal(int_of(o, "rate_bps"), 0);
    assert_true(is_null(o, "eta_s"));
    json_decref(o);

    /* a phase counted in tables only (verify): ETA by tables, no byte rate */
    snprintf(m->state, sizeof(m->state), "verify");
    m->bytes_done = m->bytes_total = 0;
    m->tables_done = 3;
    m->tables_total = 12;
    b = (struct web_mig_basis){T0 + 21000, 0, 0};
    o = web_mig_json(m, true, &b, T0 + 30000);
    assert_true(is_null(o, "rate_bps"));
    assert_int_equal(int_of(o, "eta_s"), 27); /* 9 tables at 3 per 9 s */
    assert_int_equal(int_of(o, "percent"), 25);
    json_decref(o);

    /* all counted: nothing left */
    m->tables_done = 12;
    o = web_mig_json(m, true, &b, T0 + 30000);
    assert_int_equal(int_of(o, "eta_s"), 0);
    json_decref(o);
    free(m);
}

static void test_eta_capped(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "dump");
    m->updated_ms = T0 + 1000000000LL; /* 11.6 days for one byte of a petabyte */
    m->bytes_done = 1;
    m->bytes_total = (int64_t)1 << 50;
    json_t *o = web_mig_json(m, true, NULL, m->updated_ms);
    assert_int_equal(int_of(o, "eta_s"), 100 * 24 * 3600);
    json_decref(o);
    free(m);
}

static void test_pick_basis(void **state)
{
    (void)state;
    struct web_mig_seen seen = {0};
    struct web_mig_basis b;
    struct store_migration *m = job("dump", "restore");
    /* first look, mid-phase: the job's start */
    m->updated_ms = T0 + 20000;
    m->bytes_done = 5 * MB;
    web_mig_pick_basis(&seen, m, &b);
    assert_true(b.ms == T0 && b.bytes == 0 && b.tables == 0);
    /* the same phase watched for less than WEB_MIGS_OBSERVE_MS: still the job's start */
    m->updated_ms = T0 + 21000;
    m->bytes_done = 6 * MB;
    web_mig_pick_basis(&seen, m, &b);
    assert_true(b.ms == T0);
    /* watched long enough: from the first look */
    m->updated_ms = T0 + 22000;
    m->bytes_done = 8 * MB;
    web_mig_pick_basis(&seen, m, &b);
    assert_true(b.ms == T0 + 20000 && b.bytes == 5 * MB);
    /* the next phase begins under our eyes: measured from it at once */
    snprintf(m->state, sizeof(m->state), "verify");
    m->updated_ms = T0 + 24000;
    m->bytes_done = 0;
    m->tables_done = 0;
    web_mig_pick_basis(&seen, m, &b);
    assert_true(b.ms == T0 + 24000 && b.bytes == 0);
    m->updated_ms = T0 + 25000;
    m->tables_done = 2;
    web_mig_pick_basis(&seen, m, &b);
    assert_true(b.ms == T0 + 24000 && b.tables == 0);
    /* another job: forgotten */
    m->id = 8;
    web_mig_pick_basis(&seen, m, &b);
    assert_true(b.ms == T0 && seen.id == 8 && !seen.from_start);
    free(m);
}

/* ---- results, online jobs, secrets ---- */

static void test_done_and_failed(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "done");
    m->updated_ms = m->finished_ms = T0 + 40000;
    m->bytes_done = m->bytes_total = 80 * MB;
    m->tables_done = m->tables_total = 4;
    snprintf(m->report, sizeof(m->report),
             "{\"ok\":true,\"compared\":9,\"tables\":4,\"rows\":1022500,\"checksums\":true,"
             "\"differences\":[]}");
    json_t *o = web_mig_json(m, false, NULL, T0 + 99000);
    assert_string_equal(str_of(o, "state"), "done");
    assert_true(json_is_true(json_object_get(o, "finished")));
    assert_true(json_is_false(json_object_get(o, "running")));
    assert_int_equal(int_of(o, "finished_ms"), T0 + 40000);
    assert_int_equal(int_of(o, "elapsed_ms"), 40000);
    assert_int_equal(int_of(o, "percent"), 100);
    assert_int_equal(int_of(o, "rate_bps"), 2 * MB); /* average over the job */
    assert_int_equal(int_of(o, "eta_s"), 0);
    json_t *v = json_object_get(o, "verification");
    assert_true(json_is_true(json_object_get(v, "ok")) &&
                json_is_true(json_object_get(v, "checksums")));
    assert_int_equal(int_of(v, "tables"), 4);
    assert_int_equal(int_of(v, "rows"), 1022500);
    assert_int_equal(int_of(v, "differences"), 0);
    json_decref(o);

    snprintf(m->state, sizeof(m->state), "failed");
    snprintf(m->error, sizeof(m->error), "verification: 2 differences");
    snprintf(
        m->report, sizeof(m->report),
        "{\"ok\":false,\"tables\":4,\"rows\":10,\"checksums\":false,\"differences\":[{\"kind\":"
        "\"rows\",\"object\":\"a\",\"source\":\"1\",\"target\":\"2\"}],\"more_differences\":1}");
    m->bytes_done = 3;
    o = web_mig_json(m, false, NULL, T0 + 99000);
    assert_string_equal(str_of(o, "state"), "failed");
    assert_string_equal(str_of(o, "error"), "verification: 2 differences");
    assert_true(is_null(o, "rate_bps") && is_null(o, "eta_s"));
    v = json_object_get(o, "verification");
    assert_true(json_is_false(json_object_get(v, "ok")));
    assert_int_equal(int_of(v, "differences"), 2);
    json_decref(o);

    /* a report that is not one (truncated, or none yet): no verification */
    snprintf(m->report, sizeof(m->report), "{\"truncated\":true}");
    o = web_mig_json(m, false, NULL, T0);
    assert_true(is_null(o, "verification"));
    json_decref(o);
    free(m);
}

static void test_online_lag(void **state)
{
    (void)state;
    struct store_migration *m = job("online", "streaming");
    m->lag_bytes = 4096;
    json_t *o = web_mig_json(m, true, NULL, T0);
    assert_int_equal(int_of(o, "lag_bytes"), 4096);
    assert_true(is_null(o, "cutover_ms"));
    assert_true(json_is_true(json_object_get(o, "running")));
    assert_true(json_is_false(json_object_get(o, "detached")));
    json_decref(o);
    /* its process gone: still streaming (detached), the lag as last stored, no estimates */
    m->updated_ms = T0 + 5000;
    m->bytes_done = 10;
    m->bytes_total = 20;
    o = web_mig_json(m, false, NULL, T0 + 9000);
    assert_string_equal(str_of(o, "state"), "streaming");
    assert_true(json_is_true(json_object_get(o, "running")));
    assert_true(json_is_true(json_object_get(o, "detached")));
    assert_true(json_is_false(json_object_get(o, "alive")));
    assert_true(is_null(o, "rate_bps") && is_null(o, "eta_s"));
    assert_int_equal(int_of(o, "lag_bytes"), 4096);
    assert_int_equal(int_of(o, "elapsed_ms"), 9000);
    json_decref(o);
    m->lag_bytes = -1; /* unknown */
    m->cutover_ms = 1800;
    o = web_mig_json(m, true, NULL, T0);
    assert_true(is_null(o, "lag_bytes"));
    assert_int_equal(int_of(o, "cutover_ms"), 1800);
    json_decref(o);
    /* a dump job has no lag, whatever the column holds */
    snprintf(m->mode, sizeof(m->mode), "dump");
    m->lag_bytes = 0;
    o = web_mig_json(m, true, NULL, T0);
    assert_true(is_null(o, "lag_bytes") && is_null(o, "cutover_ms"));
    json_decref(o);
    free(m);
}

static void test_no_password_in_output(void **state)
{
    (void)state;
    struct store_migration *m = job("dump", "failed");
    /* rows written by hand or by an older build could hold one: never shown */
    snprintf(m->source, sizeof(m->source), "postgres://app:Hunter2-secret@db.example.com/shop");
    snprintf(m->error, sizeof(m->error),
             "connection to postgres://app:Hunter2-secret@db.example.com/shop failed; "
             "conninfo password=Hunter2-secret host=x");
    json_t *o = web_mig_json(m, false, NULL, T0);
    char *text = json_dumps(o, JSON_COMPACT);
    assert_non_null(text);
    assert_null(strstr(text, "Hunter2"));
    assert_non_null(strstr(str_of(o, "source"), "db.example.com/shop"));
    assert_non_null(strstr(str_of(o, "error"), "connection to postgres://app:"));
    free(text);
    json_decref(o);
    free(m);
}

/* ---- GET /migrations over a real store ---- */

struct env {
    char dir[TMPDIR_CAP];
    struct web_dash *dash;
};

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    tmpdir_make(e->dir, "pgw-migs");
    e->dash = web_dash_new(e->dir);
    assert_non_null(e->dash);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    web_dash_free(e->dash);
    tmpdir_remove(e->dir);
    free(e);
    return 0;
}

static uint64_t boot_ms(void)
{
    return 1000;
}

static json_t *get(struct env *e, const char *limit, int want_status)
{
    struct web_ctx ctx = {.now_boot_ms = boot_ms, .dash = e->dash};
    struct web_request rq = {.method = WEB_GET, .path = "/migrations", .user = ""};
    if (limit) {
        rq.nquery = 1;
        rq.query[0] = (struct web_kv){"limit", limit};
    }
    const struct web_route *rt = web_route_find("/migrations");
    assert_non_null(rt);
    assert_false(web_route_self_auth(rt));
    struct web_resp out = {0};
    uint64_t cmd = 0;
    assert_int_equal(web_route_handle(&ctx, rt, &rq, NULL, NULL, &cmd, &out), WEB_DONE);
    assert_int_equal(out.status, want_status);
    json_t *j = json_loadb(out.body, out.len, 0, NULL);
    web_resp_clear(&out);
    assert_non_null(j);
    return j;
}

static void test_endpoint(void **state)
{
    struct env *e = *state;
    json_t *j = get(e, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "migrations")), 0);
    json_decref(j);

    char err[256];
    struct store *st = store_open(e->dir, err, sizeof(err));
    assert_non_null(st);
    pid_t gone = fork();
    assert_true(gone >= 0);
    if (gone == 0)
        _exit(0);
    assert_int_equal(waitpid(gone, NULL, 0), gone);
    int64_t a, b, c;
    /* a finished job, one whose process died mid-restore, and one running in this process */
    assert_true(store_migration_start(st, T0, "postgres://app@src/a", "a", "dump", 1, &a));
    assert_true(store_migration_progress(st, a, T0 + 1000, "done", 10, 10, 1, 1));
    assert_true(store_migration_finish(st, a, T0 + 2000, "done", "", "{\"ok\":true}"));
    assert_true(
        store_migration_start(st, T0, "postgres://app:pw-in-url@src/b", "b", "dump", gone, &b));
    assert_true(store_migration_progress(st, b, T0 + 5000, "restore", 5, 10, 0, 2));
    assert_true(store_migration_start(st, T0, "postgres://app@src/c", "c", "dump", getpid(), &c));
    assert_true(store_migration_progress(st, c, T0 + 4000, "dump", 4 * MB, 16 * MB, 1, 4));
    store_close(st);

    j = get(e, NULL, 200);
    json_t *list = json_object_get(j, "migrations");
    assert_int_equal(json_array_size(list), 3);
    json_t *jc = json_array_get(list, 0), *jb = json_array_get(list, 1),
           *ja = json_array_get(list, 2);
    assert_int_equal(int_of(jc, "id"), c);
    assert_string_equal(str_of(jc, "state"), "dump");
    assert_true(json_is_true(json_object_get(jc, "running")));
    assert_int_equal(int_of(jc, "rate_bps"), MB); /* 4 MB in the 4 s since the start */
    assert_int_equal(int_of(jc, "eta_s"), 12);
    assert_string_equal(str_of(jb, "state"), "interrupted");
    assert_string_equal(str_of(jb, "phase"), "restore");
    assert_string_equal(str_of(ja, "state"), "done");
    assert_true(json_is_true(json_object_get(json_object_get(ja, "verification"), "ok")));
    char *text = json_dumps(j, JSON_COMPACT);
    assert_null(strstr(text, "pw-in-url")); /* redacted by the store, and again here */
    free(text);
    assert_true(json_is_integer(json_object_get(j, "server_ms")));
    json_decref(j);

    j = get(e, "1", 200);
    assert_int_equal(json_array_size(json_object_get(j, "migrations")), 1);
    assert_int_equal(int_of(json_array_get(json_object_get(j, "migrations"), 0), "id"), c);
    json_decref(j);
    const char *bad[] = {"0", "21", "abc", "", "-1"};
    for (size_t i = 0; i < 5; i++)
        json_decref(get(e, bad[i], 400));
}

int main(void)
{
    log_setup(LOG_LVL_ERROR, "test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shown_state),
        cmocka_unit_test(test_pid_alive),
        cmocka_unit_test(test_interrupted_job),
        cmocka_unit_test(test_rate_eta_from_job_start),
        cmocka_unit_test(test_rate_eta_from_basis),
        cmocka_unit_test(test_eta_capped),
        cmocka_unit_test(test_pick_basis),
        cmocka_unit_test(test_done_and_failed),
        cmocka_unit_test(test_online_lag),
        cmocka_unit_test(test_no_password_in_output),
        cmocka_unit_test_setup_teardown(test_endpoint, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
