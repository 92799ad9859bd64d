/* SQLite store of one node: the migration jobs' rows (`pgwarden migrate`, GET /migrations). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/store.h"
#include "agent/store_int.h"
#include "platform/log.h"

#define LOG_MODULE "store"

/* Prepares a one-off statement (migration jobs are written about once a second at most). */
static sqlite3_stmt *mig_prepare(struct store *s, const char *sql, const char *what)
{
    sqlite3_stmt *st = NULL;
    if (!s) {
        log_error("no store", "op=%s", what);
        return NULL;
    }
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("cannot prepare statement", "op=%s path=%s err=%s", what, s->path,
                  sqlite3_errmsg(s->db));
        return NULL;
    }
    return st;
}

/* Steps a one-off write that returns no rows (counted in the store's write health, which logs
 * a failure) and finalizes it. */
static bool mig_step(struct store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    store_note_write(s, st, rc, what);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE;
}

static bool mig_bind_failed(struct store *s, sqlite3_stmt *st, const char *what)
{
    log_error("bind failed", "op=%s path=%s err=%s", what, s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return false;
}

bool store_migration_start(struct store *s, int64_t ts_ms, const char *source,
                           const char *target_db, const char *mode, int64_t pid, int64_t *id_out)
{
    const char *what = "migration_start";
    sqlite3_stmt *st = mig_prepare(s,
                                   "INSERT INTO migrations(started_ms, updated_ms, pid, mode, "
                                   "source, target_db, state) VALUES(?1, ?1, ?2, ?3, ?4, ?5, "
                                   "'preflight')",
                                   what);
    if (!st)
        return false;
    char *src = store_redact_dup(source ? source : "");
    if (!src) {
        sqlite3_finalize(st);
        return false;
    }
    bool ok = false;
    if (sqlite3_bind_int64(st, 1, ts_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, pid) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, mode ? mode : "dump", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, src, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, target_db ? target_db : "", -1, SQLITE_STATIC) != SQLITE_OK) {
        mig_bind_failed(s, st, what);
        goto out;
    }
    ok = mig_step(s, st, what);
    if (ok && id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
out:
    free(src);
    return ok;
}

bool store_migration_staging(struct store *s, int64_t id, const char *staging_db)
{
    const char *what = "migration_staging";
    sqlite3_stmt *st = mig_prepare(s, "UPDATE migrations SET staging_db = ?2 WHERE id = ?1", what);
    if (!st)
        return false;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, staging_db ? staging_db : "", -1, SQLITE_STATIC) != SQLITE_OK) {
        return mig_bind_failed(s, st, what);
    }
    return mig_step(s, st, what);
}

bool store_migration_progress(struct store *s, int64_t id, int64_t ts_ms, const char *state,
                              int64_t bytes_done, int64_t bytes_total, int64_t tables_done,
                              int64_t tables_total)
{
    const char *what = "migration_progress";
    sqlite3_stmt *st = mig_prepare(s,
                                   "UPDATE migrations SET updated_ms = ?2, state = ?3, bytes_done "
                                   "= ?4, bytes_total = ?5, tables_done = ?6, tables_total = ?7 "
                                   "WHERE id = ?1",
                                   what);
    if (!st)
        return false;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, ts_ms) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, state ? state : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, bytes_done) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, bytes_total) != SQLITE_OK ||
        sqlite3_bind_int64(st, 6, tables_done) != SQLITE_OK ||
        sqlite3_bind_int64(st, 7, tables_total) != SQLITE_OK) {
        return mig_bind_failed(s, st, what);
    }
    return mig_step(s, st, what);
}

bool store_migration_finish(struct store *s, int64_t id, int64_t ts_ms, const char *state,
                            const char *error, const char *report_json)
{
    const char *what = "migration_finish";
    sqlite3_stmt *st = mig_prepare(s,
                                   "UPDATE migrations SET updated_ms = ?2, finished_ms = ?2, state "
                                   "= ?3, error = ?4, report = coalesce(?5, report) WHERE id = ?1",
                                   what);
    if (!st)
        return false;
    char *e = store_redact_dup(error ? error : "");
    char *r = report_json ? store_redact_dup(report_json) : NULL;
    bool ok = false;
    if (!e || (report_json && !r)) {
        sqlite3_finalize(st);
        goto out;
    }
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, ts_ms) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, state ? state : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, e, -1, SQLITE_STATIC) != SQLITE_OK ||
        (r ? sqlite3_bind_text(st, 5, r, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 5)) !=
            SQLITE_OK) {
        mig_bind_failed(s, st, what);
        goto out;
    }
    ok = mig_step(s, st, what);
out:
    free(e);
    free(r);
    return ok;
}

bool store_migration_get(struct store *s, int64_t id, struct store_migration *out)
{
    const char *what = "migration_get";
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = mig_prepare(
        s,
        "SELECT id, started_ms, updated_ms, coalesce(finished_ms, 0), pid, mode, source, "
        "target_db, staging_db, state, bytes_done, bytes_total, tables_done, tables_total, "
        "error, report, lag_bytes, cutover_ms, repl_name FROM migrations WHERE ?1 <= 0 OR id = "
        "?1 ORDER BY id DESC LIMIT 1",
        what);
    if (!st)
        return false;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        return mig_bind_failed(s, st, what);
    }
    int rc = sqlite3_step(st);
    bool ok = rc == SQLITE_ROW;
    if (ok) {
        int64_t *nums[] = {&out->id, &out->started_ms, &out->updated_ms, &out->finished_ms,
                           &out->pid};
        for (int i = 0; i < 5; i++)
            *nums[i] = sqlite3_column_int64(st, i);
        store_copy_text(out->mode, sizeof(out->mode), st, 5);
        store_copy_text(out->source, sizeof(out->source), st, 6);
        store_copy_text(out->target_db, sizeof(out->target_db), st, 7);
        store_copy_text(out->staging_db, sizeof(out->staging_db), st, 8);
        store_copy_text(out->state, sizeof(out->state), st, 9);
        out->bytes_done = sqlite3_column_int64(st, 10);
        out->bytes_total = sqlite3_column_int64(st, 11);
        out->tables_done = sqlite3_column_int64(st, 12);
        out->tables_total = sqlite3_column_int64(st, 13);
        store_copy_text(out->error, sizeof(out->error), st, 14);
        if (store_copy_text(out->report, sizeof(out->report), st, 15))
            snprintf(out->report, sizeof(out->report), "{\"truncated\":true}");
        out->lag_bytes = sqlite3_column_int64(st, 16);
        out->cutover_ms = sqlite3_column_int64(st, 17);
        store_copy_text(out->repl_name, sizeof(out->repl_name), st, 18);
    } else if (rc != SQLITE_DONE) {
        log_error("statement failed", "op=%s path=%s err=%s", what, s->path, sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(st);
    return ok;
}

/* Runs an UPDATE of job id (?1) with int64 parameters ?2.. (nnums of them) or one text ?2. */
static bool mig_update(struct store *s, const char *sql, const char *what, int64_t id,
                       const int64_t *nums, int nnums, const char *text)
{
    sqlite3_stmt *st = mig_prepare(s, sql, what);
    if (!st)
        return false;
    bool bound = sqlite3_bind_int64(st, 1, id) == SQLITE_OK;
    for (int i = 0; bound && i < nnums; i++)
        bound = sqlite3_bind_int64(st, 2 + i, nums[i]) == SQLITE_OK;
    if (bound && text)
        bound = sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC) == SQLITE_OK;
    if (!bound) {
        return mig_bind_failed(s, st, what);
    }
    return mig_step(s, st, what);
}

bool store_migration_lag(struct store *s, int64_t id, int64_t ts_ms, int64_t lag_bytes)
{
    const int64_t nums[] = {lag_bytes < 0 ? -1 : lag_bytes, ts_ms};
    return mig_update(s, "UPDATE migrations SET lag_bytes = ?2, updated_ms = ?3 WHERE id = ?1",
                      "migration_lag", id, nums, 2, NULL);
}

bool store_migration_repl_name(struct store *s, int64_t id, const char *repl_name)
{
    return mig_update(s, "UPDATE migrations SET repl_name = ?2 WHERE id = ?1",
                      "migration_repl_name", id, NULL, 0, repl_name ? repl_name : "");
}

bool store_migration_cutover_ms(struct store *s, int64_t id, int64_t cutover_ms)
{
    const int64_t nums[] = {cutover_ms};
    return mig_update(s, "UPDATE migrations SET cutover_ms = ?2 WHERE id = ?1",
                      "migration_cutover_ms", id, nums, 1, NULL);
}

bool store_migration_transition(struct store *s, int64_t id, int64_t ts_ms, const char *from,
                                const char *to, int64_t pid, bool *changed)
{
    const char *what = "migration_transition";
    *changed = false;
    sqlite3_stmt *st = mig_prepare(s,
                                   "UPDATE migrations SET updated_ms = ?2, state = ?4, pid = ?5 "
                                   "WHERE id = ?1 AND state = ?3",
                                   what);
    if (!st)
        return false;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, ts_ms) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, from ? from : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, to ? to : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, pid) != SQLITE_OK) {
        return mig_bind_failed(s, st, what);
    }
    bool ok = mig_step(s, st, what);
    if (ok)
        *changed = sqlite3_changes(s->db) == 1;
    return ok;
}

int store_migration_ids(struct store *s, int64_t *ids, int max)
{
    const char *what = "migration_ids";
    if (max <= 0)
        return 0;
    sqlite3_stmt *st = mig_prepare(s, "SELECT id FROM migrations ORDER BY id DESC LIMIT ?1", what);
    if (!st)
        return -1;
    if (sqlite3_bind_int(st, 1, max) != SQLITE_OK) {
        mig_bind_failed(s, st, what);
        return -1;
    }
    int n = 0, rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(st, 0);
    if (n < max && rc != SQLITE_DONE) {
        log_error("statement failed", "op=%s path=%s err=%s", what, s->path, sqlite3_errmsg(s->db));
        n = -1;
    }
    sqlite3_finalize(st);
    return n;
}
