/* Migration job internals shared by job*.c, online.c and cutover.c: the job and its steps. */
#ifndef PGW_MIG_JOB_H
#define PGW_MIG_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/migrate/mig_int.h"
#include "platform/config.h"

struct store;
struct store_migration;
struct job_srccheck;

enum {
    CONNECT_MS = 15000,
    QUERY_MS = 60000,
    PROGRESS_QUERY_MS = 5000,
    STORE_EVERY_MS = 2000,
    PLAIN_EVERY_MS = 10000,
    MAX_JOBS = 64,
    PATH_CAP = 600,
    CONNINFO_CAP = 4096,
    MIN_SOURCE_VERSION = 100000,
};

#define DEFAULT_CONFIG "/etc/pgwarden/pgwarden.conf"
#define TAMPER_ENV     "PGWARDEN_MIGRATE_TEST_TAMPER_SQL"

struct job {
    struct mig_opts o;
    struct pgw_config *cfg;
    struct store *st;
    int64_t id;
    int sigfd;
    struct mig_url src, tgt;
    char shown[MIG_DISPLAY_MAX];
    char workdir[PATH_CAP], passfile[PATH_CAP + 16], dumpdir[PATH_CAP + 16];
    char app[64], staging[64], stale_staging[128];
    PGconn *snap;  /* source: preflight, then the exported snapshot's transaction */
    PGconn *admin; /* cluster leader, database postgres */
    char snapshot[128];
    int src_ver, tgt_ver;
    char src_ver_s[64];
    uint64_t src_size;
    char enc[64], collate[256], ctype[256];
    struct mig_table *tables;
    size_t ntables;
    uint64_t table_bytes;
    bool staging_created, target_exists, local_leader;
    struct mig_progress prog;
    bool tty, show;
    uint64_t last_print_ms, last_store_ms, start_ms;
    uint64_t phase_ms[MIG_PH_COUNT]; /* time spent in each phase */
    struct mig_child child;
    uint64_t inflight;
    int exit_code;
    char err[2048];
    char *report_json;
    struct mig_report rep;
    /* online mode */
    char repl[64]; /* publication = subscription = slot name */
    char *sub_ci;  /* the subscription's conninfo, with the password (CONNINFO_CAP, wiped) */
    bool src_super, pub_created, sub_created;
    PGconn *stg; /* the staging database (subscription, sequences) */
    int64_t lag; /* bytes, -1 unknown */
    long long repl_errors;
    struct job_srccheck *srccheck; /* the source's verification, running during the restore */
    bool src_quiesced;             /* cutover: the application no longer writes to the source */
};

int job_fail(struct job *j, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error from mig_connect/mig_exec: interrupted or failed (1). */
int job_fail_rc(struct job *j, int rc, const char *what, const char *msg);
uint64_t job_now_ms(void);

/* progress (job.c) */
void job_store_progress(struct job *j, bool force);
void job_show_progress(struct job *j, bool final);
void job_phase(struct job *j, enum mig_phase ph, uint64_t bytes_total, uint64_t tables_total);
void job_tables_reset(struct job *j);
void job_tables_sample(struct job *j);

/* setup helpers (job.c) */
struct job *job_new(const struct mig_opts *o);
void job_free(struct job *j); /* closes connections and the store, wipes the conninfo */
int job_setup_signals(void);
int job_load_config(struct job *j);
int job_open_store(struct job *j);
/* Names (app, staging unless set), workdir/passfile/dumpdir (fresh: emptied), the cluster's
 * connection settings. */
int job_setup(struct job *j, bool fresh);
/* (Re)writes the 0600 passfile: the source's line (when src_password is not empty) and the
 * cluster superuser's. */
int job_write_passfile(struct job *j, const char *src_password);
int job_make_dir(const char *path);
void job_remove_tree(const char *path);
int job_conninfo_src(struct job *j, const char *suffix, char *out, size_t cap);
int job_conninfo_tgt(struct job *j, const char *db, const char *suffix, char *out, size_t cap);
int job_scalar_int(PGconn *c, int sigfd, const char *sql, int nparams, const char *const *params,
                   long long *out, char *err, size_t cap);
bool job_pid_alive(int64_t pid);
bool job_final_state(const char *s);
void job_print_done(struct job *j);
/* DATABASE_URL through the forwarder and how to set it (Heroku). */
void job_print_url(struct job *j);
void job_event(struct job *j, const char *what);

/* preflight (job_pre.c) */
int job_drop_database(struct job *j, const char *name, bool force, char *err, size_t cap);
int job_preflight_source(struct job *j);
int job_preflight_target(struct job *j);
int job_preflight_space(struct job *j);
int job_confirm(struct job *j);

/* copy (job_copy.c) */
int job_run_tool(struct job *j, const char *tool, const char *const *argv, PGconn *progress_c,
                 int progress_ver, const char *progress_app);
int job_take_snapshot(struct job *j);
int job_dump(struct job *j);
int job_create_staging(struct job *j);
int job_restore(struct job *j);

/* verification and finish (job_verify.c) */
/* Starts the source's side of the verification in a thread, on the exported snapshot (to run
 * while pg_restore does) or on a quiesced source (a cutover: while the copy catches up).
 * Nothing when neither, or when no thread can be made (job_verify() then checks both). */
void job_srccheck_start(struct job *j);
/* Stops (if running) and frees it. */
void job_srccheck_stop(struct job *j);
int job_verify(struct job *j);
int job_finish(struct job *j);
void job_cleanup_staging(struct job *j);

/* online mode (online.c): the `--online` process; its exit status */
int job_online_main(struct job *j);
/* Shared by online.c and cutover.c */
int job_connect_db(struct job *j, const char *db, const char *suffix, PGconn **out);
/* Source lag of the slot in bytes (-1: unknown); 0 or -errno with err. */
int job_slot_lag(struct job *j, int64_t *lag, char *err, size_t cap);
/* Drops the subscription (in the staging database; slot_name = NONE first when the source
 * cannot be reached), then the slot (if still there) and the publication on the source when
 * j->snap is connected. Each step is skipped when already done. 0 or -1 with j->err. */
int job_repl_teardown(struct job *j);

/* cutover.c */
int mig_cutover_main(const struct mig_opts *o);
int mig_abort_main(const struct mig_opts *o);

#endif
