/* Store schema: the ordered forward migrations, file validation and the migration runner. */
#include "agent/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/log.h"

#define LOG_MODULE "store"

/* migrations[i] brings the schema from version i to i + 1. Append only; never edit a released
 * entry. No BEGIN/COMMIT inside: the runner wraps each one in its own transaction. */
static const char *const builtin_migrations[] = {
    /* 1: event history and node settings */
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  member TEXT NOT NULL DEFAULT '',"
    "  term INTEGER NOT NULL DEFAULT 0,"
    "  detail TEXT NOT NULL DEFAULT '{}'" /* JSON */
    ");"
    "CREATE INDEX events_ts_ms ON events(ts_ms);"
    "CREATE INDEX events_kind ON events(kind);"
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");",
    /* 2: metric samples for the dashboard charts */
    "CREATE TABLE samples ("
    "  ts_ms INTEGER NOT NULL,"
    "  member TEXT NOT NULL DEFAULT '',"
    "  metric TEXT NOT NULL,"
    "  value REAL NOT NULL"
    ");"
    "CREATE INDEX samples_metric_member_ts ON samples(metric, member, ts_ms);",
    /* 3: `pgwarden migrate` jobs (source without password; report is JSON) */
    "CREATE TABLE migrations ("
    "  id INTEGER PRIMARY KEY,"
    "  started_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  finished_ms INTEGER,"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  mode TEXT NOT NULL DEFAULT 'dump',"
    "  source TEXT NOT NULL,"
    "  target_db TEXT NOT NULL,"
    "  staging_db TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL,"
    "  bytes_done INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER NOT NULL DEFAULT 0,"
    "  tables_done INTEGER NOT NULL DEFAULT 0,"
    "  tables_total INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  report TEXT NOT NULL DEFAULT '{}'" /* JSON */
    ");",
    /* 4: online migrations (logical replication): replication lag in bytes (-1 when not
     * applicable), the cutover's duration (the application downtime, -1 until there is one),
     * the name of the publication/subscription/slot (never a password) */
    "ALTER TABLE migrations ADD COLUMN lag_bytes INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE migrations ADD COLUMN cutover_ms INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE migrations ADD COLUMN repl_name TEXT NOT NULL DEFAULT '';",
};

#define BUILTIN_COUNT ((int)(sizeof(builtin_migrations) / sizeof(builtin_migrations[0])))

const char *const *store_schema_migrations(void)
{
    return builtin_migrations;
}

int store_latest_schema_version(void)
{
    return BUILTIN_COUNT;
}

static void not_valid(char *err, size_t errlen, const char *path, const char *why)
{
    snprintf(err, errlen, "%s is not a valid pgwarden database: %s", path, why);
}

bool store_schema_check_header(const char *path, char *err, size_t errlen)
{
    static const char magic[16] = "SQLite format 3";
    char head[sizeof(magic)];
    struct stat st;
    bool ok = false;

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return true; /* created by SQLite */
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        not_valid(err, errlen, path, "not a regular file");
        goto out;
    }
    if (st.st_size == 0) {
        ok = true; /* empty: a new database (or WAL content not yet checkpointed) */
        goto out;
    }
    size_t want = (size_t)st.st_size < sizeof(head) ? (size_t)st.st_size : sizeof(head);
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, head + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, r < 0 ? strerror(errno) : "short");
            goto out;
        }
        got += (size_t)r;
    }
    if (want < sizeof(magic) || memcmp(head, magic, sizeof(magic)) != 0) {
        not_valid(err, errlen, path, "file is not a database");
        goto out;
    }
    ok = true;
out:
    close(fd);
    return ok;
}

/* Runs a one-row, one-column query; copies the text of the first column (or "" for no row). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    out[0] = '\0';
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int query_int64(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_MISUSE : rc;
}

int store_schema_user_version(sqlite3 *db)
{
    int64_t v = 0;
    if (query_int64(db, "PRAGMA user_version", &v) != SQLITE_OK || v < 0 || v > INT32_MAX)
        return -1;
    return (int)v;
}

bool store_schema_validate(sqlite3 *db, const char *path, int known, char *err, size_t errlen)
{
    char why[256];
    char check[512];
    int64_t tables = 0, app_id = 0, version = 0;

    /* The first read of the file: a file that is not a database fails here. */
    if (query_int64(db, "SELECT count(*) FROM sqlite_schema", &tables) != SQLITE_OK) {
        not_valid(err, errlen, path, sqlite3_errmsg(db));
        return false;
    }
    if (query_text(db, "PRAGMA quick_check", check, sizeof(check)) != SQLITE_OK) {
        not_valid(err, errlen, path, sqlite3_errmsg(db));
        return false;
    }
    if (strcmp(check, "ok") != 0) {
        /* First problem only: "*** in database main ***\nPage 7: ...\nPage 8: ..." */
        const char *first = check;
        if (strncmp(first, "*** ", 4) == 0 && strchr(first, '\n'))
            first = strchr(first, '\n') + 1;
        snprintf(why, sizeof(why), "quick_check: %.*s", (int)strcspn(first, "\n"), first);
        not_valid(err, errlen, path, why);
        return false;
    }
    if (query_int64(db, "PRAGMA application_id", &app_id) != SQLITE_OK ||
        query_int64(db, "PRAGMA user_version", &version) != SQLITE_OK) {
        not_valid(err, errlen, path, sqlite3_errmsg(db));
        return false;
    }
    if (version == 0 && app_id == 0 && tables > 0) {
        not_valid(err, errlen, path, "it has tables but no pgwarden schema");
        return false;
    }
    if (app_id != STORE_APPLICATION_ID && (version != 0 || app_id != 0)) {
        snprintf(why, sizeof(why), "application_id is 0x%08llx, expected 0x%08x",
                 (unsigned long long)(uint32_t)app_id, (unsigned)STORE_APPLICATION_ID);
        not_valid(err, errlen, path, why);
        return false;
    }
    if (version < 0 || version > known) {
        snprintf(err, errlen,
                 "%s was created by a newer pgwarden (schema version %lld; this pgwarden knows up "
                 "to version %d): refusing to open it",
                 path, (long long)version, known);
        return false;
    }
    return true;
}

/* Applies the migration that brings the schema from version `from` to from + 1, in the open
 * transaction. */
static bool apply_one(sqlite3 *db, const char *sql, int from, char *why, size_t cap)
{
    char *msg = NULL;
    char pragma[64];

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(why, cap, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return false;
    }
    if (from == 0) {
        snprintf(pragma, sizeof(pragma), "PRAGMA application_id = %d", STORE_APPLICATION_ID);
        if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(why, cap, "setting application_id: %s", sqlite3_errmsg(db));
            return false;
        }
    }
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", from + 1);
    if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(why, cap, "setting user_version: %s", sqlite3_errmsg(db));
        return false;
    }
    return true;
}

bool store_schema_migrate(sqlite3 *db, const char *path, const char *const migrations[], int n,
                          char *err, size_t errlen)
{
    char why[384];

    for (;;) {
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: cannot start a schema migration: %s", path,
                     sqlite3_errmsg(db));
            return false;
        }
        /* Re-read inside the write transaction: another process may have migrated meanwhile. */
        int from = store_schema_user_version(db);
        if (from < 0) {
            snprintf(err, errlen, "%s: cannot read the schema version: %s", path,
                     sqlite3_errmsg(db));
            goto fail;
        }
        if (from > n) {
            snprintf(err, errlen,
                     "%s was created by a newer pgwarden (schema version %d; this pgwarden knows "
                     "up to version %d): refusing to open it",
                     path, from, n);
            goto fail;
        }
        if (from == n) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* nothing was written */
            return true;
        }
        if (!apply_one(db, migrations[from], from, why, sizeof(why))) {
            snprintf(err, errlen, "%s: schema migration to version %d failed: %s", path, from + 1,
                     why);
            goto fail;
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: schema migration to version %d failed: commit: %s", path,
                     from + 1, sqlite3_errmsg(db));
            goto fail;
        }
        log_info("schema migrated", "path=%s from=%d to=%d", path, from, from + 1);
    }
fail:
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return false;
}
