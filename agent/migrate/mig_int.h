/* Migration internals shared by agent/migrate sources: libpq helpers, child tools, the job. */
#ifndef PGW_MIG_INT_H
#define PGW_MIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "agent/migrate/migrate.h"

/* Joins a multi-line libpq message into one line and masks secrets (log_redact). */
void mig_oneline(const char *in, char *out, size_t cap);

/* Connects (async, with a deadline; sigfd readable = interrupted). 0, -ECONNREFUSED (the
 * server refused: err has libpq's reason), -ETIMEDOUT, -ECANCELED. */
int mig_connect(const char *conninfo, int timeout_ms, int sigfd, PGconn **out, char *err,
                size_t cap);
/* Runs sql (text parameters) and waits; timeout_ms <= 0: none. *res = the last result on 0.
 * -EIO (SQL error: err, sqlstate), -ECONNRESET (connection lost), -ETIMEDOUT, -ECANCELED (the
 * query is cancelled on the server in both cases). */
int mig_exec(PGconn *c, const char *sql, int nparams, const char *const *params, int timeout_ms,
             int sigfd, PGresult **res, char *sqlstate, char *err, size_t cap);
int mig_exec_cmd(PGconn *c, const char *sql, int timeout_ms, int sigfd, char *err, size_t cap);
char *mig_quote_ident(PGconn *c, const char *name, char *out, size_t cap);

/* A pg_dump/pg_restore child: own process group, environment without PG* and locale
 * variables (LC_ALL=C), stdout+stderr on one non-blocking pipe read line by line. */
struct mig_child {
    pid_t pid;
    int fd;
    char buf[8192];
    size_t len;
    char last[512];    /* the last line */
    char errors[1024]; /* the last error-looking lines, joined with " | " */
    int exit_code;
    int term_signal;
};
int mig_child_start(struct mig_child *ch, const char *const *argv);
/* Reads what is available; calls on_line for each complete line. 1 at EOF, else 0. */
int mig_child_read(struct mig_child *ch, void (*on_line)(void *ctx, const char *line), void *ctx);
/* true once the child has exited (exit_code/term_signal set). */
bool mig_child_reap(struct mig_child *ch);
/* SIGTERM to the group, then SIGKILL after 5 s; reaps. */
void mig_child_kill(struct mig_child *ch);

/* `pgwarden migrate status` (status.c). */
int mig_status_main(const struct mig_opts *o);

/* ---- verification (verify.c) ---- */

/* SQL conditions: n (pg_namespace) is a user schema; an object is not part of an extension. */
#define MIG_USER_NS                                                                                \
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE "                \
    "'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
#define MIG_NOT_EXT(cls, oid)                                                                      \
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '" cls                                \
    "'::regclass AND d.objid = " oid " AND d.deptype = 'e')"

/* Session settings that make row text identical on both sides. */
#define MIG_SESSION_SQL                                                                            \
    "SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; "           \
    "SET extra_float_digits = 1; SET bytea_output = 'hex'; SET lc_monetary = 'C'; "                \
    "SET statement_timeout = 0"

struct mig_table {
    char name[MIG_NAME_MAX];        /* schema.table as shown */
    char sql[2 * MIG_NAME_MAX + 8]; /* quoted for SQL */
    char relname[64];
    uint64_t bytes; /* pg_table_size on the source */
    bool started, done;
};

/* The user tables (relkind r, not members of an extension) with their sizes. *out malloc'd. */
int mig_tables_list(PGconn *c, int sigfd, struct mig_table **out, size_t *n, char *err, size_t cap);
/* Adds the catalog items (schemas, object counts per schema, extensions, sequence values,
 * large objects) of the database c is connected to. */
int mig_inventory_catalog(PGconn *c, int sigfd, struct mig_inventory *inv, char *err, size_t cap);
/* How a table's rows are checked: count only, or count + an order-independent checksum. */
enum mig_digest {
    MIG_DIGEST_NONE,
    /* the exact sum over the rows of hashtextextended(row text, 0), a 64-bit hash (PostgreSQL
     * 11+ on both sides): about 4x cheaper than md5 */
    MIG_DIGEST_HASH64,
    /* the sums of the two 64-bit halves of md5(row text): for a PostgreSQL 10 source */
    MIG_DIGEST_MD5,
};
/* The digest for a source of server_version_num src_ver (the cluster is newer). Pure. */
enum mig_digest mig_digest_for(bool checksums, int src_ver);
/* The SQL of one table's check: SELECT count(*)[, checksum text]. -ENOSPC. Pure. */
int mig_table_check_sql(const char *table_sql, enum mig_digest digest, char *out, size_t cap);

/* A side of the verification: its connections run the per-table checks. */
struct mig_side {
    const char *what; /* "source", "copy" */
    PGconn **conns;
    size_t nconns;
    struct mig_table *tables;
    size_t ntables;
    struct mig_inventory *inv;
};
/* Runs every table's check on both sides, up to nconns at a time per side; tick(ctx, done,
 * total) about once a second. 0, or -ECONNRESET/-ECANCELED with err. Query errors become
 * "error: ..." values (differences). */
int mig_tables_check(struct mig_side *sides, size_t nsides, enum mig_digest digest, int sigfd,
                     void (*tick)(void *ctx, size_t done, size_t total), void *ctx, char *err,
                     size_t cap);

#endif
