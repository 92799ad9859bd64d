/* SQLite store of one node: events, meta and samples in <state_dir>/pgwarden.db. */
#ifndef PGW_STORE_H
#define PGW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* The file name of the store inside the state directory. */
#define STORE_DB_NAME "pgwarden.db"
/* PRAGMA application_id of a pgwarden database ("PGWD"), set by the first migration. */
#define STORE_APPLICATION_ID 0x50475744

/* One row of the events table as returned by store_events_list(). Text fields are always
 * NUL-terminated; kind and member are cut at a UTF-8 character boundary when too long; a
 * detail that does not fit is replaced by {"truncated":true} so that it stays valid JSON.
 * `truncated` tells that one of the text fields was cut or replaced. */
struct store_event {
    int64_t id, ts_ms, term;
    char kind[32];
    char member[64];
    char detail[1024];
    bool truncated;
};

/* Opens (creating if needed) <state_dir>/pgwarden.db, checks it, and migrates its schema
 * forward to store_latest_schema_version(). On failure returns NULL with one clear message in
 * err (may be NULL) that is also logged once: state directory missing, not a directory or not
 * writable; file not a valid pgwarden database (not SQLite, corrupt, foreign); database created
 * by a newer pgwarden; WAL mode unavailable; a migration that failed (rolled back). */
struct store *store_open(const char *state_dir, char *err, size_t errlen);

/* For tests: like store_open() but with the given ordered list of forward migrations instead
 * of the built-in one (migrations[i] brings the schema from version i to i + 1; it must not
 * contain BEGIN/COMMIT). The list must be a prefix of the built-in list, optionally followed
 * by extra migrations; statements on tables that do not exist yet are not prepared and their
 * functions fail. */
struct store *store_open_with_migrations(const char *state_dir, const char *const migrations[],
                                         int n, char *err, size_t errlen);

/* Finalizes the statements and closes the database. NULL-safe. */
void store_close(struct store *s);

/* The database file path (for messages). */
const char *store_path(const struct store *s);

/* PRAGMA user_version of the open database, or <0 on error. */
int store_schema_version(struct store *s);
/* The schema version that this pgwarden creates (the number of built-in migrations). */
int store_latest_schema_version(void);

/* Explicit transaction (BEGIN IMMEDIATE) around many writes, e.g. a batch of samples.
 * store_begin() fails if a transaction is already open. If store_commit() fails, the
 * transaction is rolled back. store_rollback() is a no-op outside a transaction. */
bool store_begin(struct store *s);
bool store_commit(struct store *s);
bool store_rollback(struct store *s);

/* Appends an event. `kind` is required (free text, e.g. "role_change", "failover"); `member`
 * NULL means ""; `detail_json` NULL means "{}". Secrets in detail (URL passwords, password=...
 * pairs) are masked with log_redact() before storing, but callers should pass redacted text.
 * The new row id goes to *id_out if id_out is not NULL. */
bool store_event_add(struct store *s, int64_t ts_ms, const char *kind, const char *member,
                     int64_t term, const char *detail_json, int64_t *id_out);

/* Lists up to `max` events, newest first, with id < before_id (before_id <= 0: from the newest)
 * and, if kind_filter is not NULL, kind == kind_filter. Page on with the last id returned.
 * Returns the number of events written to out, or <0 on error. */
int store_events_list(struct store *s, int64_t before_id, const char *kind_filter,
                      struct store_event *out, int max);

/* Retention: deletes events with ts_ms < older_than_ts_ms (rule off if older_than_ts_ms <= 0),
 * then the oldest ones beyond the newest keep_at_most (rule off if keep_at_most <= 0). */
bool store_events_prune(struct store *s, int64_t older_than_ts_ms, int64_t keep_at_most);

/* Key/value settings of the node. Values go through log_redact() like event details.
 * store_meta_get() returns false if the key is absent (out = "") or on error, including a
 * value that does not fit in cap (logged). */
bool store_meta_set(struct store *s, const char *key, const char *value);
bool store_meta_get(struct store *s, const char *key, char *out, size_t cap);

/* Health of the writes (events, meta, samples, their transactions and retention). A failing
 * episode starts with a failed write, logged once as an error ("cannot write the state
 * store"), and ends with the next write that reaches the file, logged once ("state store
 * writable again"); the failures in between are counted, not logged. */
struct store_health {
    bool failing;      /* the last write failed */
    char error[96];    /* reason of the current or last episode: "disk full", SQLite's text */
    int64_t since_ms;  /* wall ms of the episode's first failure */
    int64_t until_ms;  /* wall ms of the write that ended it; 0 while failing */
    uint64_t failures; /* failed writes in the current or last episode */
    uint64_t episodes; /* episodes so far */
};
/* A copy of the health of s (all zero for NULL). */
void store_health(const struct store *s, struct store_health *out);

/* Appends one metric sample (member NULL means ""); value must not be NaN. */
bool store_sample_add(struct store *s, int64_t ts_ms, const char *member, const char *metric,
                      double value);
/* Retention of samples: deletes those with ts_ms < older_than_ts_ms. */
bool store_samples_prune(struct store *s, int64_t older_than_ts_ms);

/* ---- migration jobs (`pgwarden migrate`, schema versions 3 and 4) ---- */

/* One row of the migrations table. Texts are NUL-terminated and cut to fit; a report that does
 * not fit is replaced by {"truncated":true}. finished_ms is 0 while the job runs. */
struct store_migration {
    int64_t id, started_ms, updated_ms, finished_ms, pid;
    char mode[16];
    char source[512]; /* a URL without its password */
    char target_db[128];
    char staging_db[128];
    char state[16]; /* preflight, dump, restore, verify, finish, done, failed; online mode:
                       preflight, schema, copy, streaming, cutover, verify, done, failed */
    int64_t bytes_done, bytes_total, tables_done, tables_total;
    char error[1024];
    char report[16384]; /* JSON */
    /* schema version 4 (online mode) */
    int64_t lag_bytes;  /* replication lag of an online job in bytes; -1 when not applicable */
    int64_t cutover_ms; /* duration of the cutover (application downtime); -1 when none */
    char repl_name[64]; /* publication, subscription and slot name of an online job, or "" */
};

/* Creates a job in state "preflight". source goes through log_redact() (callers pass a URL
 * without password anyway). */
bool store_migration_start(struct store *s, int64_t ts_ms, const char *source,
                           const char *target_db, const char *mode, int64_t pid, int64_t *id_out);
bool store_migration_staging(struct store *s, int64_t id, const char *staging_db);
/* Progress of a running job (state = its current phase). */
bool store_migration_progress(struct store *s, int64_t id, int64_t ts_ms, const char *state,
                              int64_t bytes_done, int64_t bytes_total, int64_t tables_done,
                              int64_t tables_total);
/* The end of a job: state "done" or "failed", error text ("" when none; redacted), report JSON
 * (NULL keeps the stored one). */
bool store_migration_finish(struct store *s, int64_t id, int64_t ts_ms, const char *state,
                            const char *error, const char *report_json);
/* Job `id`, or the newest one when id <= 0. False when there is none (out->id = 0) or on
 * error. */
bool store_migration_get(struct store *s, int64_t id, struct store_migration *out);
/* Online jobs (schema version 4). The replication lag in bytes (-1: unknown / not applicable);
 * touches updated_ms, not the state. */
bool store_migration_lag(struct store *s, int64_t id, int64_t ts_ms, int64_t lag_bytes);
/* The publication/subscription/slot name of an online job. */
bool store_migration_repl_name(struct store *s, int64_t id, const char *repl_name);
/* The cutover's duration in ms (the application downtime). */
bool store_migration_cutover_ms(struct store *s, int64_t id, int64_t cutover_ms);
/* Moves job id from state `from` to state `to` and records pid, atomically: *changed = false
 * (and true returned) when the job is not in state `from` (someone else moved it). */
bool store_migration_transition(struct store *s, int64_t id, int64_t ts_ms, const char *from,
                                const char *to, int64_t pid, bool *changed);
/* The ids of the `max` newest jobs, newest first, in ids[]. The number written, or <0 on error. */
int store_migration_ids(struct store *s, int64_t *ids, int max);

/* ---- internal to agent/store.c and agent/store_schema.c (not for other modules) ---- */
struct sqlite3;

/* The built-in migration list (store_latest_schema_version() entries). */
const char *const *store_schema_migrations(void);
/* Before SQLite touches it: an existing non-empty file at path must start with the SQLite
 * header, else it is refused (SQLite itself takes a 1-byte file for an empty database and
 * overwrites it). Fills err, does not log. */
bool store_schema_check_header(const char *path, char *err, size_t errlen);
/* Reads the schema, runs PRAGMA quick_check, checks application_id and that user_version is at
 * most `known`. Fills err, does not log. */
bool store_schema_validate(struct sqlite3 *db, const char *path, int known, char *err,
                           size_t errlen);
/* Applies migrations[user_version..n-1], each in its own BEGIN IMMEDIATE transaction with the
 * user_version bump; a failure rolls back that migration and names its version in err. */
bool store_schema_migrate(struct sqlite3 *db, const char *path, const char *const migrations[],
                          int n, char *err, size_t errlen);
/* PRAGMA user_version, or <0 on error. */
int store_schema_user_version(struct sqlite3 *db);

#endif
