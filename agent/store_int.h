/* Internals of the SQLite store shared by its files (store.c, store_migration.c). */
#ifndef PGW_AGENT_STORE_INT_H
#define PGW_AGENT_STORE_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/store.h"

enum stmt_id {
    ST_EVENT_ADD,
    ST_EVENTS_LIST,
    ST_EVENTS_LIST_KIND,
    ST_EVENTS_PRUNE_AGE,
    ST_EVENTS_PRUNE_COUNT,
    ST_META_SET,
    ST_META_GET,
    ST_SAMPLE_ADD,
    ST_SAMPLES_PRUNE,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT]; /* NULL if the schema does not have its tables */
    char path[1024];
    struct store_health health; /* writes through store_note_write() */
    int64_t changes_at_begin;   /* sqlite3_total_changes64() when the transaction began */
};

/* Health of the writes, after each write statement with its result code: a failing episode
 * starts with a failed write (logged once) and ends with the next write that reaches the file. */
void store_note_write(struct store *s, const sqlite3_stmt *st, int rc, const char *what);
/* Copies a column's text to dst, cut at a UTF-8 character boundary. True if it was cut. */
bool store_copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* log_redact() into a new buffer (free() it); NULL (logged) on allocation failure. */
char *store_redact_dup(const char *in);

#endif
