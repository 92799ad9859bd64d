/* `pgwarden migrate cutover` and `abort`: end an online migration (see migrate.h). */
#define LOG_MODULE "migrate"
#include "agent/migrate/job_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/store.h"
#include "platform/clock.h"

enum { CATCHUP_DEFAULT_S = 120, CATCHUP_POLL_MS = 100 };

/* A cutover/abort in progress: the job, the state it was claimed from, step times. */
struct cut {
    struct job *j;
    struct store_migration *m;
    char from_state[16];
    int64_t watcher_pid; /* the --online process, given back the job on a failed cutover */
    bool sub_exists, sub_gone;
    uint64_t t0, t_sync, t_seq, t_repl, t_verify, t_finish;
};

/* The password of the subscription's conninfo (read as the cluster's superuser) or of --from /
 * $PGWARDEN_MIGRATE_FROM into the passfile; else the passfile kept from before is used. */
static int source_password(struct cut *c)
{
    struct job *j = c->j;
    char err[1024], pw[MIG_STR] = "";
    const char *p[1] = {j->repl};
    PGresult *r = NULL;
    int rc = mig_exec(j->admin, "SELECT subconninfo FROM pg_subscription WHERE subname = $1", 1, p,
                      QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "reading the subscription", err);
    c->sub_exists = PQntuples(r) == 1;
    bool have = false;
    if (c->sub_exists) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(PQgetvalue(r, 0, 0), &perr);
        for (PQconninfoOption *o = opts; o && o->keyword; o++) {
            if (strcmp(o->keyword, "password") == 0 && o->val) {
                snprintf(pw, sizeof(pw), "%s", o->val);
                have = true;
            }
        }
        if (opts) {
            for (PQconninfoOption *o = opts; o->keyword; o++)
                if (o->val)
                    explicit_bzero(o->val, strlen(o->val));
            PQconninfoFree(opts);
        }
        PQfreemem(perr);
        explicit_bzero(PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    }
    PQclear(r);
    char *from = j->o.from ? j->o.from : getenv("PGWARDEN_MIGRATE_FROM");
    if (!have && from) {
        struct mig_url u;
        rc = mig_url_parse(from, &u, pw, sizeof(pw), err, sizeof(err));
        mig_url_scrub(j->o.from);
        if (rc < 0)
            return job_fail(j, MIG_EXIT_USAGE, "%s", err);
        have = true;
    }
    struct stat st;
    if (!have && stat(j->passfile, &st) == 0)
        return 0; /* kept from the --online run or an earlier cutover */
    rc = job_write_passfile(j, pw);
    explicit_bzero(pw, sizeof(pw));
    if (rc < 0)
        return job_fail(j, MIG_EXIT_FAILED, "cannot write the passfile %s: %s", j->passfile,
                        strerror(-rc));
    return 0;
}

static int connect_source(struct job *j)
{
    char ci[CONNINFO_CAP], err[1024];
    if (job_conninfo_src(j, "-cutover", ci, sizeof(ci)) < 0)
        return job_fail(j, MIG_EXIT_USAGE, "the source URL is too long");
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, &j->snap, err, sizeof(err));
    if (rc < 0) {
        PQfinish(j->snap);
        j->snap = NULL;
        if (rc == -ECANCELED)
            return job_fail(j, MIG_EXIT_FAILED, "interrupted");
        return job_fail(j, MIG_EXIT_UNAVAILABLE, "cannot connect to the source %s: %s", j->shown,
                        err);
    }
    long long v = 0;
    if (job_scalar_int(j->snap, j->sigfd, "SELECT current_setting('server_version_num')::int", 0,
                       NULL, &v, err, sizeof(err)) == 0)
        j->src_ver = (int)v;
    return 0;
}

/* Waits until the slot's confirmed_flush_lsn reaches the source's WAL position taken now. */
static int wait_caught_up(struct cut *c)
{
    struct job *j = c->j;
    char err[1024], lsn[64];
    PGresult *r = NULL;
    int rc = mig_exec(j->snap, "SELECT pg_current_wal_lsn()", 0, NULL, QUERY_MS, j->sigfd, &r, NULL,
                      err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "reading the source's WAL position", err);
    snprintf(lsn, sizeof(lsn), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    int limit_s = j->o.timeout_s ? j->o.timeout_s : CATCHUP_DEFAULT_S;
    uint64_t deadline = job_now_ms() + (uint64_t)limit_s * 1000;
    const char *p[2] = {lsn, j->repl};
    for (;;) {
        r = NULL;
        rc = mig_exec(j->snap,
                      "SELECT confirmed_flush_lsn >= $1::pg_lsn, greatest(pg_wal_lsn_diff($1::"
                      "pg_lsn, confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots WHERE "
                      "slot_name = $2",
                      2, p, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
        if (rc < 0)
            return job_fail_rc(j, rc, "following the replication slot on the source", err);
        if (PQntuples(r) != 1) {
            PQclear(r);
            return job_fail(j, MIG_EXIT_FAILED, "the replication slot %s is gone on the source",
                            j->repl);
        }
        bool done = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        int64_t lag = PQgetisnull(r, 0, 1) ? -1 : strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        PQclear(r);
        if (done)
            return 0;
        if (job_now_ms() > deadline) {
            char l[48];
            return job_fail(j, MIG_EXIT_FAILED,
                            "the cluster did not catch up with the source within %d s (lag %s "
                            "left): are the application's writes stopped? (--timeout S)",
                            limit_s, mig_fmt_lag(lag, l, sizeof(l)));
        }
        struct pollfd pf = {.fd = j->sigfd, .events = POLLIN};
        if (poll(&pf, 1, CATCHUP_POLL_MS) > 0 && (pf.revents & POLLIN))
            return job_fail(j, MIG_EXIT_FAILED, "interrupted while waiting for zero lag");
    }
}

/* Every table of the subscription has been copied (ready or synchronized). */
static int copy_finished(struct cut *c)
{
    struct job *j = c->j;
    char err[1024];
    const char *p[1] = {j->repl};
    PGresult *r = NULL;
    if (!c->sub_exists)
        return 0;
    int rc = mig_exec(j->stg,
                      "SELECT count(*) FILTER (WHERE sr.srsubstate IN ('r', 's')), count(*) FROM "
                      "pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid WHERE "
                      "s.subname = $1",
                      1, p, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "reading the subscription's tables", err);
    long long done = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    long long total = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (done < total)
        return job_fail(j, MIG_EXIT_FAILED,
                        "the initial copy is not finished (%lld/%lld tables): cut over once it "
                        "streams",
                        done, total);
    return 0;
}

/* setval() on the copy from the source's pg_sequences (sequences that were never used keep
 * their start). */
static int copy_sequences(struct job *j, int *n)
{
    char err[1024];
    PGresult *r = NULL;
    *n = 0;
    int rc = mig_exec(j->snap,
                      "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                      "last_value FROM pg_sequences WHERE last_value IS NOT NULL",
                      0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "reading the source's sequences", err);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        const char *p[2] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)};
        PGresult *x = NULL;
        rc = mig_exec(j->stg,
                      "SELECT setval(s, $2::bigint, true) FROM to_regclass($1) s WHERE s IS NOT "
                      "NULL",
                      2, p, QUERY_MS, j->sigfd, &x, NULL, err, sizeof(err));
        if (rc == 0 && PQntuples(x) == 1)
            (*n)++;
        PQclear(x);
        if (rc < 0)
            job_fail_rc(j, rc, "copying the sequences' values", err);
    }
    PQclear(r);
    return rc < 0 ? -1 : 0;
}

/* Nobody may be connected to the staging database when it is renamed (the --online process
 * lets go of it when it sees the cutover; anything else is ended). */
static void end_sessions(struct job *j)
{
    char err[512];
    const char *p[1] = {j->staging};
    PGresult *r = NULL;
    mig_exec(j->admin,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid "
             "<> pg_backend_pid()",
             1, p, QUERY_MS, -1, &r, NULL, err, sizeof(err));
    PQclear(r);
}

static int run_cutover(struct cut *c)
{
    struct job *j = c->j;
    uint64_t t = job_now_ms();
    if (job_connect_db(j, "postgres", "-cutover", &j->admin) < 0 || source_password(c) < 0)
        return -1;
    PQfinish(j->admin); /* job_preflight_target connects it again */
    j->admin = NULL;
    if (connect_source(j) < 0 || job_preflight_target(j) < 0)
        return -1;
    if (j->target_exists && j->o.replace)
        fprintf(stderr, "note: the existing database %s will be replaced\n", j->o.to);
    if (job_connect_db(j, j->staging, "-cutover", &j->stg) < 0 || copy_finished(c) < 0)
        return -1;
    /* the application has stopped writing: the source's side of the verification can run
     * while the copy catches up (the copy's side must wait for the subscription's end) */
    j->src_quiesced = true;
    job_srccheck_start(j);
    if (c->sub_exists && wait_caught_up(c) < 0)
        return -1;
    c->t_sync = job_now_ms() - t;
    t = job_now_ms();
    int nseq = 0;
    if (copy_sequences(j, &nseq) < 0)
        return -1;
    c->t_seq = job_now_ms() - t;
    t = job_now_ms();
    if (job_repl_teardown(j) < 0) {
        long long subs = 1;
        const char *p[1] = {j->repl};
        char err[256];
        job_scalar_int(j->stg, -1, "SELECT count(*) FROM pg_subscription WHERE subname = $1", 1, p,
                       &subs, err, sizeof(err));
        c->sub_gone = subs == 0;
        return -1;
    }
    c->sub_gone = true;
    c->t_repl = job_now_ms() - t;
    fprintf(stderr, "replication ended (%d sequence%s set); verifying\n", nseq,
            nseq == 1 ? "" : "s");
    PQfinish(j->stg);
    j->stg = NULL;
    t = job_now_ms();
    if (job_verify(j) < 0)
        return -1;
    c->t_verify = job_now_ms() - t;
    t = job_now_ms();
    end_sessions(j);
    if (job_finish(j) < 0)
        return -1;
    c->t_finish = job_now_ms() - t;
    return 0;
}

/* Loads the config, opens the store, picks the online job (--id or the newest) and claims it
 * (state -> to). Fills c. */
static int claim(struct cut *c, const char *cmd, const char *to)
{
    struct job *j = c->j;
    j->sigfd = job_setup_signals();
    if (j->sigfd < 0 || job_load_config(j) < 0 || job_open_store(j) < 0)
        return -1;
    if (!store_migration_get(j->st, j->o.id, c->m))
        return job_fail(j, MIG_EXIT_FAILED, "no migration %s", j->o.id ? "with that id" : "yet");
    struct store_migration *m = c->m;
    j->id = m->id;
    if (strcmp(m->mode, "online") != 0)
        return job_fail(j, MIG_EXIT_FAILED,
                        "migration %" PRId64 " is not an online migration (--online)", m->id);
    if (job_final_state(m->state))
        return job_fail(j, MIG_EXIT_FAILED, "migration %" PRId64 " is already %s", m->id, m->state);
    bool busy = !(strcmp(m->state, "copy") == 0 || strcmp(m->state, "streaming") == 0);
    if (busy && job_pid_alive(m->pid) && m->pid != getpid())
        return job_fail(j, MIG_EXIT_FAILED,
                        "migration %" PRId64 " is in %s by process %" PRId64 ": wait for it", m->id,
                        m->state, m->pid);
    if (!mig_job_online_lives(m) && strcmp(cmd, "cutover") == 0)
        return job_fail(j, MIG_EXIT_FAILED,
                        "migration %" PRId64 " was interrupted while being set up (%s): run "
                        "`pgwarden migrate abort` and start again",
                        m->id, m->state);
    /* "copy": the subscription's own state decides (the --online process may be detached) */
    bool changed = false;
    if (!store_migration_transition(j->st, m->id, clock_wall_ms(), m->state, to, getpid(),
                                    &changed) ||
        !changed)
        return job_fail(j, MIG_EXIT_FAILED,
                        "migration %" PRId64 " changed state meanwhile: try again", m->id);
    snprintf(c->from_state, sizeof(c->from_state), "%s", m->state);
    c->watcher_pid = m->pid;
    snprintf(j->staging, sizeof(j->staging), "%.63s", m->staging_db);
    snprintf(j->repl, sizeof(j->repl), "%s", m->repl_name);
    snprintf(j->shown, sizeof(j->shown), "%s", m->source);
    j->o.to = m->target_db;
    char pw[MIG_STR], err[512];
    int rc = mig_url_parse(m->source, &j->src, pw, sizeof(pw), err, sizeof(err));
    explicit_bzero(pw, sizeof(pw));
    if (rc < 0)
        return job_fail(j, MIG_EXIT_FAILED, "the recorded source: %s", err);
    return job_setup(j, false);
}

int mig_cutover_main(const struct mig_opts *o)
{
    struct cut c = {0};
    struct job *j = job_new(o);
    c.j = j;
    c.m = calloc(1, sizeof(*c.m));
    if (!j || !c.m) {
        fprintf(stderr, "pgwarden migrate cutover: out of memory\n");
        free(c.m);
        job_free(j);
        return MIG_EXIT_FAILED;
    }
    if (o->replace && !o->yes) {
        fprintf(stderr, "pgwarden migrate cutover: --replace drops the existing database: "
                        "confirm with --yes\n");
        free(c.m);
        job_free(j);
        return MIG_EXIT_USAGE;
    }
    int code = 0;
    if (claim(&c, "cutover", "cutover") < 0) {
        fprintf(stderr, "pgwarden migrate cutover: %s\n", j->err);
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
        goto out;
    }
    c.t0 = job_now_ms();
    j->start_ms = c.t0;
    fprintf(stderr,
            "cutover of migration %" PRId64 " (%s -> %s): the application's writes to the source "
            "must be stopped now (Heroku: heroku maintenance:on)\n",
            j->id, j->shown, j->o.to);
    if (run_cutover(&c) < 0) {
        bool changed = false;
        if (!c.sub_gone) /* nothing is lost: the replication goes on, cutover can be re-run */
            store_migration_transition(j->st, j->id, clock_wall_ms(), "cutover",
                                       strcmp(c.from_state, "copy") == 0 ? "copy" : "streaming",
                                       c.watcher_pid, &changed);
        else
            store_migration_progress(j->st, j->id, clock_wall_ms(), "cutover", 0, 0, 0, 0);
        fprintf(stderr, "pgwarden migrate cutover: migration %" PRId64 " NOT cut over: %s\n%s\n",
                j->id, j->err,
                c.sub_gone ? "The replication has ended; fix the cause and run `pgwarden migrate "
                             "cutover` again (it resumes), or `pgwarden migrate abort`."
                           : "The replication goes on; fix the cause and run `pgwarden migrate "
                             "cutover` again, or `pgwarden migrate abort`.");
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
        goto out;
    }
    uint64_t total = job_now_ms() - c.t0;
    store_migration_cutover_ms(j->st, j->id, (int64_t)total);
    job_phase(j, MIG_PH_DONE, 0, 0);
    store_migration_finish(j->st, j->id, clock_wall_ms(), "done", "", j->report_json);
    job_event(j, "done");
    job_remove_tree(j->workdir);
    printf("\nmigration %" PRId64 " cut over: %s (%zu table%s, %" PRIu64
           " rows) is in the cluster and verified.\n",
           j->id, j->o.to, j->rep.tables, j->rep.tables == 1 ? "" : "s", j->rep.rows);
    printf("cutover took %.2f s (the application's downtime): zero lag %.2f s, sequences %.2f s, "
           "replication ended %.2f s, verify %.2f s, rename %.2f s\n\n",
           (double)total / 1000, (double)c.t_sync / 1000, (double)c.t_seq / 1000,
           (double)c.t_repl / 1000, (double)c.t_verify / 1000, (double)c.t_finish / 1000);
    job_print_url(j);
out:
    free(c.m);
    job_free(j);
    return code;
}

int mig_abort_main(const struct mig_opts *o)
{
    struct cut c = {0};
    struct job *j = job_new(o);
    c.j = j;
    c.m = calloc(1, sizeof(*c.m));
    if (!j || !c.m) {
        fprintf(stderr, "pgwarden migrate abort: out of memory\n");
        free(c.m);
        job_free(j);
        return MIG_EXIT_FAILED;
    }
    int code = 0;
    char err[1024];
    if (claim(&c, "abort", "abort") < 0) {
        fprintf(stderr, "pgwarden migrate abort: %s\n", j->err);
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
        goto out;
    }
    bool clean =
        job_connect_db(j, "postgres", "-abort", &j->admin) == 0 && source_password(&c) == 0;
    if (clean && connect_source(j) < 0) {
        fprintf(stderr, "warning: %s\n", j->err);
        j->err[0] = '\0';
    }
    if (clean && job_connect_db(j, j->staging, "-abort", &j->stg) < 0) {
        j->err[0] = '\0'; /* no staging database (any more): nothing to drop there */
        PQfinish(j->stg);
        j->stg = NULL;
    }
    if (clean && job_repl_teardown(j) < 0)
        clean = false;
    PQfinish(j->stg);
    j->stg = NULL;
    if (j->admin && job_drop_database(j, j->staging, true, err, sizeof(err)) < 0) {
        clean = false;
        fprintf(stderr, "WARNING: could not drop %s: %s\n", j->staging, err);
    }
    char msg[sizeof(j->err) + 64];
    snprintf(msg, sizeof(msg), "aborted by `pgwarden migrate abort`%s%s", clean ? "" : ": ",
             clean ? "" : (j->err[0] ? j->err : "the cluster could not be reached"));
    store_migration_lag(j->st, j->id, clock_wall_ms(), -1);
    store_migration_finish(j->st, j->id, clock_wall_ms(), "failed", msg, NULL);
    job_event(j, "aborted");
    job_remove_tree(j->workdir);
    if (clean) {
        printf("migration %" PRId64 " aborted: subscription, replication slot, publication and "
               "the copy %s were dropped; the source is as it was\n",
               j->id, j->staging);
    } else {
        fprintf(stderr, "pgwarden migrate abort: migration %" PRId64 " marked failed, but: %s\n",
                j->id, msg);
        code = MIG_EXIT_FAILED;
    }
out:
    free(c.m);
    job_free(j);
    return code;
}
