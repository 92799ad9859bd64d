/* PostgreSQL control internals shared by the agent/pg sources: errors, tools, files, libpq. */
#ifndef PGW_PG_INTERNAL_H
#define PGW_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "agent/pg/pg.h"
#include "platform/spawn.h"

enum {
    PGI_TAIL_LINES = 6,        /* tool output lines quoted in an error */
    PGI_PATH = 512,            /* data_dir/file paths */
    PGI_KILL_WAIT_MS = 5000,   /* after SIGKILL of a postmaster */
    PGI_IMMEDIATE_MS = 10000,  /* stop escalation to immediate */
    PGI_TOOL_GRACE_MS = 10000, /* spawn deadline beyond pg_ctl's own -t */
};

/* Fills *err (may be NULL), logs it once at error level, returns rc. */
int pgi_fail(struct pg_error *err, const char *step, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, at warn level (an expected outcome the caller may handle). */
int pgi_fail_quiet(struct pg_error *err, const char *step, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Makes text safe inside a quoted logfmt field ('"' -> '\'', '\\' -> '/'). */
void pgi_log_safe(char *s);
/* log_redact() then every configured password replaced by "***". */
void pgi_redact(const struct pg_instance *pg, const char *in, char *out, size_t cap);
/* The last `lines` non-empty lines of text, joined with " | ", redacted. */
void pgi_tail(const struct pg_instance *pg, const char *text, int lines, char *out, size_t cap);

/* "<dir>/<name>" into out. -ENAMETOOLONG. */
int pgi_path(char *out, size_t cap, const char *dir, const char *name);
int pgi_tool(const struct pg_instance *pg, const char *tool, char *out, size_t cap);

/* Runs a tool through spawn_run with a cleaned environment (no PG* or locale variables from
 * the agent; LC_ALL=C so the output can be parsed; PGPASSFILE=<run_dir>/pgpass) plus `env`
 * ("K=V" strings, NULL-terminated, may be NULL). 0 when it exited 0 (*r holds the output; the
 * caller frees it with spawn_result_free in every case). Otherwise logs and fills err with the
 * step and the output's tail: -ETIMEDOUT, -EIO (non-zero exit or signal), -errno (not
 * started). With quiet, a non-zero exit is only filled in err (the caller decides). */
int pgi_run(const struct pg_instance *pg, const char *step, const char *const *argv,
            const char *const *env, const char *stdin_data, int timeout_ms, bool quiet,
            struct spawn_result *r, struct pg_error *err);

/* Atomic write: <path>.tmp, fsync, rename, fsync of the directory. 0 or -errno. */
int pgi_write_file(const char *path, const char *data, size_t len, int mode);
/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer. 0, -errno,
 * -EFBIG. */
int pgi_read_file(const char *path, size_t max, char **out, size_t *len);
bool pgi_file_exists(const char *path);
/* Last lines of the server log file into out ("" if unreadable). */
void pgi_log_tail(const struct pg_instance *pg, char *out, size_t cap);

/* Process identity from /proc/<pid>/stat: comm, state, starttime. false if gone. */
bool pgi_proc_stat(pid_t pid, char *comm, size_t comm_cap, char *state, uint64_t *start);

/* ---- libpq ---- */

/* Connects with a deadline (PQconnectStartParams + poll). Local: run_dir socket, superuser,
 * statement_timeout = stmt_timeout_ms. Peer: host/port over TCP with the passfile, as `user`;
 * replication = true opens a physical replication connection. NULL on failure (logged,
 * err filled; *rc = -ECONNREFUSED or -ETIMEDOUT when rc is not NULL). */
PGconn *pgi_connect_local(const struct pg_instance *pg, int stmt_timeout_ms, int *rc,
                          struct pg_error *err);
PGconn *pgi_connect_peer(const struct pg_instance *pg, const char *host, uint16_t port,
                         const char *user, bool replication, int *rc, struct pg_error *err);

/* Sends sql (with text parameters; simple protocol when nparams = 0) and waits for the
 * result until deadline_ms (CLOCK_MONOTONIC). On success *res is the last result (tuples or
 * command ok); PQclear it. On failure: -ETIMEDOUT, -ECONNRESET, or -EIO with err->sqlstate;
 * logged unless the SQLSTATE is in `quiet` (a space-separated list, may be NULL). */
int pgi_exec(const struct pg_instance *pg, PGconn *c, const char *step, const char *sql,
             int nparams, const char *const *params, uint64_t deadline_ms, const char *quiet,
             PGresult **res, struct pg_error *err);

/* Result field helpers: NULL text is "" and "missing". */
bool pgi_get_lsn(const PGresult *r, int row, int col, uint64_t *out);
bool pgi_get_u64(const PGresult *r, int row, int col, uint64_t *out);
bool pgi_get_i64(const PGresult *r, int row, int col, int64_t *out);
bool pgi_get_bool(const PGresult *r, int row, int col);
void pgi_get_str(const PGresult *r, int row, int col, char *out, size_t cap);

/* Strict decimal parse of the whole string. */
bool pgi_parse_u64(const char *s, uint64_t *out);

#endif
