/* GET /migrations: this node's `pgwarden migrate` jobs from its SQLite store, with progress. */
#ifndef PGW_WEB_MIGRATIONS_H
#define PGW_WEB_MIGRATIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/store.h"
#include "web/resp.h"

enum {
    WEB_MIGS_DEFAULT_LIMIT = 5, /* jobs GET /migrations lists without ?limit */
    WEB_MIGS_MAX_LIMIT = 20,
    WEB_MIGS_RATE_MIN_MS = 1000, /* a rate needs progress over at least this long */
    WEB_MIGS_OBSERVE_MS = 2000,  /* a phase watched this long gives its own rate basis */
};

struct web_migs;

/* Remembers the state folder; the store is opened on the first request (and again after a
 * failure). NULL on ENOMEM. */
struct web_migs *web_migs_new(const char *state_dir);
void web_migs_free(struct web_migs *m);

/* Answers GET /migrations?limit=N (1..20, default 5): 200 {"migrations": [job, ...] newest
 * first, "server_ms"} (an empty list when no job ever ran), 400 for a bad limit, 503 when the
 * store cannot be opened or read. A job is what web_mig_json() builds. */
void web_migs_get(struct web_migs *m, const char *limit, int64_t now_wall_ms, struct web_resp *out);

/* ---- parts, also used by the tests ---- */

/* Progress counters of a job at a known time: where its rate and ETA are measured from. */
struct web_mig_basis {
    int64_t ms, bytes, tables;
};

/* What the reader saw of the newest job: its phase and the counters when that phase was first
 * seen. The store keeps no phase start, and the counters restart at 0 in every phase. */
struct web_mig_seen {
    int64_t id;
    char state[16];
    struct web_mig_basis at;
    bool from_start; /* the phase change itself was seen: `at` is (close to) its start */
};

/* Records job m in seen and gives the basis of its rate: the phase as watched by this reader
 * once it saw the phase begin or watched it for WEB_MIGS_OBSERVE_MS, else the job's start
 * (started_ms, nothing done), the estimate of a first look. Pure. */
void web_mig_pick_basis(struct web_mig_seen *seen, const struct store_migration *m,
                        struct web_mig_basis *out);

/* One job as JSON: id, mode, state (mig_job_shown_state), phase (as stored), running (not
 * finished, and its process alive or an online job that lives), alive (its process), detached
 * (running without a process), finished, pid, source (no password), target_db, staging_db,
 * started_ms, updated_ms,
 * finished_ms (null while running), elapsed_ms, bytes_done/total, tables_done/total, percent
 * (bytes, or tables when the phase counts no bytes), rate_bps and eta_s (null when unknown:
 * measured from basis to updated_ms while the process lives; for a "done" job the average over
 * the whole job),
 * lag_bytes and cutover_ms (online jobs, null otherwise or when unknown), error ("" when none,
 * secrets masked), verification (ok, tables, rows, checksums, differences from the report, or
 * null). basis NULL: the job's start. NULL on ENOMEM. */
json_t *web_mig_json(const struct store_migration *m, bool alive, const struct web_mig_basis *basis,
                     int64_t now_wall_ms);

#endif
