/* SQLite store of one node: opening, PRAGMAs, prepared statements and the data API. */
#include "agent/store.h"
#include "agent/store_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "store"

/* Each statement with the schema version that creates the tables it uses. */
static const struct {
    const char *sql;
    int min_version;
} stmt_defs[ST_COUNT] = {
    [ST_EVENT_ADD] = {"INSERT INTO events(ts_ms, kind, member, term, detail) VALUES(?1, ?2, ?3, "
                      "?4, ?5)",
                      1},
    [ST_EVENTS_LIST] = {"SELECT id, ts_ms, kind, member, term, detail FROM events WHERE id < ?1 "
                        "ORDER BY id DESC LIMIT ?2",
                        1},
    [ST_EVENTS_LIST_KIND] = {"SELECT id, ts_ms, kind, member, term, detail FROM events WHERE "
                             "kind = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?2",
                             1},
    [ST_EVENTS_PRUNE_AGE] = {"DELETE FROM events WHERE ts_ms < ?1", 1},
    [ST_EVENTS_PRUNE_COUNT] = {"DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY "
                               "id DESC LIMIT 1 OFFSET ?1)",
                               1},
    [ST_META_SET] = {"INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET "
                     "value = excluded.value",
                     1},
    [ST_META_GET] = {"SELECT value FROM meta WHERE key = ?1", 1},
    [ST_SAMPLE_ADD] = {"INSERT INTO samples(ts_ms, member, metric, value) VALUES(?1, ?2, ?3, ?4)",
                       2},
    [ST_SAMPLES_PRUNE] = {"DELETE FROM samples WHERE ts_ms < ?1", 2},
    [ST_BEGIN] = {"BEGIN IMMEDIATE", 0},
    [ST_COMMIT] = {"COMMIT", 0},
    [ST_ROLLBACK] = {"ROLLBACK", 0},
};

const char *store_path(const struct store *s)
{
    return s ? s->path : "";
}

/* ---- opening ---- */

/* Checks the state directory and builds <dir>/pgwarden.db into path. */
static bool check_dir(const char *dir, char *path, size_t cap, char *err, size_t errlen)
{
    struct stat st;

    if (!dir || !*dir) {
        snprintf(err, errlen, "state directory is not set");
        return false;
    }
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "state directory %s does not exist", dir);
        else
            snprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "state directory %s is not a directory", dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "state directory %s is not writable: %s", dir, strerror(errno));
        return false;
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    int n = snprintf(path, cap, "%.*s%s%s", (int)len, dir, dir[len - 1] == '/' ? "" : "/",
                     STORE_DB_NAME);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "state directory path is too long: %s", dir);
        return false;
    }
    if (access(path, F_OK) == 0 && access(path, R_OK | W_OK) != 0) {
        snprintf(err, errlen, "%s is not writable: %s", path, strerror(errno));
        return false;
    }
    return true;
}

/* Runs a PRAGMA that returns one value and checks that the value is `want`. */
static bool pragma_expect(sqlite3 *db, const char *sql, const char *want, const char *path,
                          char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char got[32] = "";

    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(got, sizeof(got), "%s", t ? (const char *)t : "");
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s failed: %s", path, sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return false;
    }
    sqlite3_finalize(st);
    if (strcmp(got, want) != 0) {
        snprintf(err, errlen, "%s: %s returned \"%s\", expected \"%s\"", path, sql, got, want);
        return false;
    }
    return true;
}

/* Connection settings that touch no file; before the first read so that it waits for locks. */
static void connection_setup(sqlite3 *db)
{
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    /* Harden: no writable_schema tricks, no double-quoted string literals. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)NULL);
}

/* The PRAGMAs of a validated database, each checked by reading it back. */
static bool configure(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    return pragma_expect(db, "PRAGMA busy_timeout", "5000", path, err, errlen) &&
           pragma_expect(db, "PRAGMA journal_mode = WAL", "wal", path, err, errlen) &&
           pragma_expect(db, "PRAGMA synchronous = NORMAL", "", path, err, errlen) &&
           pragma_expect(db, "PRAGMA synchronous", "1", path, err, errlen) &&
           pragma_expect(db, "PRAGMA foreign_keys = ON", "", path, err, errlen) &&
           pragma_expect(db, "PRAGMA foreign_keys", "1", path, err, errlen);
}

static bool prepare_all(struct store *s, int version, char *err, size_t errlen)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (stmt_defs[i].min_version > version)
            continue;
        if (sqlite3_prepare_v3(s->db, stmt_defs[i].sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: cannot prepare statement %d: %s", s->path, i,
                     sqlite3_errmsg(s->db));
            return false;
        }
    }
    return true;
}

struct store *store_open_with_migrations(const char *state_dir, const char *const migrations[],
                                         int n, char *err, size_t errlen)
{
    char msg[2048] = "";
    struct store *s = NULL;

    if (n < 0 || (n > 0 && !migrations)) {
        snprintf(msg, sizeof(msg), "invalid migration list");
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(msg, sizeof(msg), "out of memory");
        goto fail;
    }
    if (!check_dir(state_dir, s->path, sizeof(s->path), msg, sizeof(msg)) ||
        !store_schema_check_header(s->path, msg, sizeof(msg)))
        goto fail;
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, sizeof(msg), "cannot open %s: %s", s->path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    connection_setup(s->db);
    if (!store_schema_validate(s->db, s->path, n, msg, sizeof(msg)) ||
        !configure(s->db, s->path, msg, sizeof(msg)) ||
        !store_schema_migrate(s->db, s->path, migrations, n, msg, sizeof(msg)))
        goto fail;
    int version = store_schema_user_version(s->db);
    if (version < 0) {
        snprintf(msg, sizeof(msg), "%s: cannot read the schema version: %s", s->path,
                 sqlite3_errmsg(s->db));
        goto fail;
    }
    if (!prepare_all(s, version, msg, sizeof(msg)))
        goto fail;
    log_debug("opened", "path=%s schema_version=%d", s->path, version);
    if (err && errlen)
        err[0] = '\0';
    return s;
fail:
    log_error(msg, "state_dir=%s", state_dir ? state_dir : "(null)");
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    store_close(s);
    return NULL;
}

struct store *store_open(const char *state_dir, char *err, size_t errlen)
{
    return store_open_with_migrations(state_dir, store_schema_migrations(),
                                      store_latest_schema_version(), err, errlen);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("close failed", "path=%s err=%s", s->path, sqlite3_errmsg(s->db));
    free(s);
}

int store_schema_version(struct store *s)
{
    if (!s)
        return -1;
    int v = store_schema_user_version(s->db);
    if (v < 0)
        log_error("cannot read the schema version", "path=%s err=%s", s->path,
                  sqlite3_errmsg(s->db));
    return v;
}

/* ---- statement helpers ---- */

/* The prepared statement, or NULL (logged) if the store or its schema does not have it. */
static sqlite3_stmt *stmt(struct store *s, enum stmt_id id, const char *what)
{
    if (!s) {
        log_error("no store", "op=%s", what);
        return NULL;
    }
    if (!s->st[id])
        log_error("operation needs a newer schema", "op=%s path=%s", what, s->path);
    return s->st[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* A short reason for a failed write: "disk full" for SQLITE_FULL or ENOSPC. */
static void write_error_reason(struct store *s, int rc, char *out, size_t cap)
{
    int sys = sqlite3_system_errno(s->db);
    if ((rc & 0xff) == SQLITE_FULL || sys == ENOSPC)
        snprintf(out, cap, "disk full");
    else if (sys == EDQUOT)
        snprintf(out, cap, "disk quota exceeded");
    else
        snprintf(out, cap, "%s", sqlite3_errmsg(s->db));
}

/* Health of the writes: a failing episode starts with a failed write (logged once) and ends
 * with the next write that reaches the file (a commit that changed rows; logged once). */
void store_note_write(struct store *s, const sqlite3_stmt *st, int rc, const char *what)
{
    struct store_health *h = &s->health;
    if (rc == SQLITE_DONE && st == s->st[ST_BEGIN])
        s->changes_at_begin = sqlite3_total_changes64(s->db);
    if (rc != SQLITE_DONE) {
        h->failures++;
        if (h->failing)
            return;
        h->failing = true;
        h->episodes++;
        h->failures = 1;
        h->since_ms = clock_wall_ms();
        h->until_ms = 0;
        write_error_reason(s, rc, h->error, sizeof(h->error));
        log_error("cannot write the state store (further failures are not logged until a write "
                  "succeeds)",
                  "op=%s path=%s reason=\"%s\" err=\"%s\"", what, s->path, h->error,
                  sqlite3_errmsg(s->db));
        return;
    }
    if (!h->failing || !sqlite3_get_autocommit(s->db))
        return; /* nothing reached the file yet inside an explicit transaction */
    if (st == s->st[ST_COMMIT] ? sqlite3_total_changes64(s->db) == s->changes_at_begin
                               : sqlite3_changes64(s->db) == 0)
        return; /* nothing was written */
    h->failing = false;
    h->until_ms = clock_wall_ms();
    log_info("state store writable again", "path=%s reason=\"%s\" failures=%llu down_ms=%lld",
             s->path, h->error, (unsigned long long)h->failures,
             (long long)(h->until_ms - h->since_ms));
}

/* Steps a statement that returns no rows, then resets it. */
static bool step_done(struct store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (st != s->st[ST_ROLLBACK])
        store_note_write(s, st, rc, what);
    else if (rc != SQLITE_DONE)
        log_error("statement failed", "op=%s path=%s err=%s", what, s->path, sqlite3_errmsg(s->db));
    stmt_done(st);
    return rc == SQLITE_DONE;
}

void store_health(const struct store *s, struct store_health *out)
{
    if (s)
        *out = s->health;
    else
        memset(out, 0, sizeof(*out));
}

static bool bind_failed(struct store *s, sqlite3_stmt *st, const char *what)
{
    log_error("bind failed", "op=%s path=%s err=%s", what, s->path, sqlite3_errmsg(s->db));
    stmt_done(st);
    return false;
}

/* Copies a column's text to dst, cut at a UTF-8 character boundary. True if it was cut. */
bool store_copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    bool cut = n >= cap;
    if (cut) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
            n--;
    }
    if (n > 0)
        memcpy(dst, t, n);
    dst[n] = '\0';
    return cut;
}

/* log_redact() into a new buffer big enough for any masking ("***" may be longer than the
 * secret it replaces). Returns NULL (logged) on allocation failure. */
char *store_redact_dup(const char *in)
{
    size_t len = strlen(in);
    if (len > (SIZE_MAX - 16) / 2) {
        log_error("value too long", "bytes=%zu", len);
        return NULL;
    }
    size_t cap = 2 * len + 16;
    char *out = malloc(cap);
    if (!out) {
        log_error("out of memory", "bytes=%zu", cap);
        return NULL;
    }
    return log_redact(in, out, cap);
}

/* ---- transactions ---- */

bool store_begin(struct store *s)
{
    sqlite3_stmt *st = stmt(s, ST_BEGIN, "begin");
    return st && step_done(s, st, "begin");
}

bool store_rollback(struct store *s)
{
    sqlite3_stmt *st = stmt(s, ST_ROLLBACK, "rollback");
    if (!st)
        return false;
    if (sqlite3_get_autocommit(s->db))
        return true;
    return step_done(s, st, "rollback");
}

bool store_commit(struct store *s)
{
    sqlite3_stmt *st = stmt(s, ST_COMMIT, "commit");
    if (!st)
        return false;
    if (step_done(s, st, "commit"))
        return true;
    if (!sqlite3_get_autocommit(s->db))
        store_rollback(s);
    return false;
}

/* ---- events ---- */

bool store_event_add(struct store *s, int64_t ts_ms, const char *kind, const char *member,
                     int64_t term, const char *detail_json, int64_t *id_out)
{
    sqlite3_stmt *st = stmt(s, ST_EVENT_ADD, "event_add");
    if (!st)
        return false;
    if (!kind || !*kind) {
        log_error("event without kind", "path=%s", s->path);
        return false;
    }
    char *detail = store_redact_dup(detail_json ? detail_json : "{}");
    if (!detail)
        return false;
    bool ok = false;
    if (sqlite3_bind_int64(st, 1, ts_ms) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, member ? member : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(st, 4, term) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC) != SQLITE_OK) {
        bind_failed(s, st, "event_add");
        goto out;
    }
    if (!step_done(s, st, "event_add"))
        goto out;
    if (id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    ok = true;
out:
    free(detail);
    return ok;
}

int store_events_list(struct store *s, int64_t before_id, const char *kind_filter,
                      struct store_event *out, int max)
{
    enum stmt_id id = kind_filter ? ST_EVENTS_LIST_KIND : ST_EVENTS_LIST;
    sqlite3_stmt *st = stmt(s, id, "events_list");
    if (!st)
        return -1;
    if (max < 0 || (max > 0 && !out)) {
        log_error("invalid events_list arguments", "max=%d", max);
        return -1;
    }
    if (max == 0)
        return 0;
    if (sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, max) != SQLITE_OK ||
        (kind_filter && sqlite3_bind_text(st, 3, kind_filter, -1, SQLITE_STATIC) != SQLITE_OK)) {
        bind_failed(s, st, "events_list");
        return -1;
    }
    int n = 0;
    int rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_event *e = &out[n++];
        e->id = sqlite3_column_int64(st, 0);
        e->ts_ms = sqlite3_column_int64(st, 1);
        e->term = sqlite3_column_int64(st, 4);
        bool cut = store_copy_text(e->kind, sizeof(e->kind), st, 2);
        cut |= store_copy_text(e->member, sizeof(e->member), st, 3);
        if (store_copy_text(e->detail, sizeof(e->detail), st, 5)) {
            snprintf(e->detail, sizeof(e->detail), "{\"truncated\":true}");
            cut = true;
        }
        e->truncated = cut;
    }
    if (n < max && rc != SQLITE_DONE) {
        log_error("statement failed", "op=events_list path=%s err=%s", s->path,
                  sqlite3_errmsg(s->db));
        n = -1;
    }
    stmt_done(st);
    return n;
}

/* Runs a one-parameter DELETE. */
static bool delete_with(struct store *s, enum stmt_id id, int64_t arg, const char *what)
{
    sqlite3_stmt *st = stmt(s, id, what);
    if (!st)
        return false;
    if (sqlite3_bind_int64(st, 1, arg) != SQLITE_OK)
        return bind_failed(s, st, what);
    if (!step_done(s, st, what))
        return false;
    log_debug("pruned", "op=%s rows=%d", what, sqlite3_changes(s->db));
    return true;
}

bool store_events_prune(struct store *s, int64_t older_than_ts_ms, int64_t keep_at_most)
{
    if (!stmt(s, ST_EVENTS_PRUNE_AGE, "events_prune"))
        return false;
    bool own_tx = sqlite3_get_autocommit(s->db) != 0;
    if (own_tx && !store_begin(s))
        return false;
    if (older_than_ts_ms > 0 &&
        !delete_with(s, ST_EVENTS_PRUNE_AGE, older_than_ts_ms, "events_prune_age"))
        goto fail;
    if (keep_at_most > 0 &&
        !delete_with(s, ST_EVENTS_PRUNE_COUNT, keep_at_most, "events_prune_count"))
        goto fail;
    return !own_tx || store_commit(s);
fail:
    if (own_tx)
        store_rollback(s);
    return false;
}

/* ---- meta ---- */

bool store_meta_set(struct store *s, const char *key, const char *value)
{
    sqlite3_stmt *st = stmt(s, ST_META_SET, "meta_set");
    if (!st)
        return false;
    if (!key || !value) {
        log_error("meta_set without key or value", "path=%s", s->path);
        return false;
    }
    char *v = store_redact_dup(value);
    if (!v)
        return false;
    bool ok = false;
    if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC) != SQLITE_OK) {
        bind_failed(s, st, "meta_set");
        goto out;
    }
    ok = step_done(s, st, "meta_set");
out:
    free(v);
    return ok;
}

bool store_meta_get(struct store *s, const char *key, char *out, size_t cap)
{
    sqlite3_stmt *st = stmt(s, ST_META_GET, "meta_get");
    if (!st)
        return false;
    if (!key || !out || cap == 0) {
        log_error("invalid meta_get arguments", "path=%s", s->path);
        return false;
    }
    out[0] = '\0';
    if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK)
        return bind_failed(s, st, "meta_get");
    bool ok = false;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        size_t n = t ? (size_t)sqlite3_column_bytes(st, 0) : 0;
        if (n < cap) {
            if (n > 0)
                memcpy(out, t, n);
            out[n] = '\0';
            ok = true;
        } else {
            log_error("meta value does not fit", "key=%s bytes=%zu cap=%zu", key, n, cap);
        }
    } else if (rc != SQLITE_DONE) {
        log_error("statement failed", "op=meta_get path=%s err=%s", s->path, sqlite3_errmsg(s->db));
    }
    stmt_done(st);
    return ok;
}

/* ---- samples ---- */

bool store_sample_add(struct store *s, int64_t ts_ms, const char *member, const char *metric,
                      double value)
{
    sqlite3_stmt *st = stmt(s, ST_SAMPLE_ADD, "sample_add");
    if (!st)
        return false;
    if (!metric || !*metric || isnan(value)) {
        log_error("invalid sample", "path=%s metric=%s", s->path, metric ? metric : "(null)");
        return false;
    }
    if (sqlite3_bind_int64(st, 1, ts_ms) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, member ? member : "", -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, metric, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_double(st, 4, value) != SQLITE_OK)
        return bind_failed(s, st, "sample_add");
    return step_done(s, st, "sample_add");
}

bool store_samples_prune(struct store *s, int64_t older_than_ts_ms)
{
    return delete_with(s, ST_SAMPLES_PRUNE, older_than_ts_ms, "samples_prune");
}
