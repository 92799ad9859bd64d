/* Migration verification (source vs copy, the source's side early), finish, staging clean-up. */
#define LOG_MODULE "migrate"
#include "agent/migrate/job_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "platform/log.h"

/* ---- verification ---- */

struct verify_conns {
    PGconn *src[MAX_JOBS];
    PGconn *dst[MAX_JOBS];
    size_t nsrc, ndst;
};

static void verify_close(struct verify_conns *v)
{
    for (size_t i = 0; i < v->nsrc; i++)
        PQfinish(v->src[i]);
    for (size_t i = 0; i < v->ndst; i++)
        PQfinish(v->dst[i]);
    v->nsrc = v->ndst = 0;
}

/* One verification connection: session settings and, on the source, the exported snapshot. */
static int verify_conn(struct job *j, bool source, int sigfd, PGconn **out, char *err, size_t cap)
{
    char ci[CONNINFO_CAP];
    int rc = source ? job_conninfo_src(j, "-verify", ci, sizeof(ci))
                    : job_conninfo_tgt(j, j->staging, "-verify", ci, sizeof(ci));
    if (rc < 0) {
        snprintf(err, cap, "connection settings too long");
        return rc;
    }
    rc = mig_connect(ci, CONNECT_MS, sigfd, out, err, cap);
    if (rc == 0)
        rc = mig_exec_cmd(*out, MIG_SESSION_SQL, QUERY_MS, sigfd, err, cap);
    if (rc == 0 && source)
        rc = mig_exec_cmd(*out, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", QUERY_MS, sigfd,
                          err, cap);
    if (rc == 0 && source && j->snapshot[0]) {
        char sql[256];
        snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", j->snapshot);
        rc = mig_exec_cmd(*out, sql, QUERY_MS, sigfd, err, cap);
    }
    return rc;
}

static int verify_open(struct job *j, struct verify_conns *v, bool source)
{
    char err[1024];
    for (int i = 0; i < j->o.jobs; i++) {
        PGconn *c = NULL;
        int rc = source ? verify_conn(j, true, j->sigfd, &c, err, sizeof(err)) : 0;
        if (c)
            v->src[v->nsrc++] = c;
        if (rc < 0)
            return job_fail_rc(j, rc, "opening verification connections to the source", err);
        c = NULL;
        rc = verify_conn(j, false, j->sigfd, &c, err, sizeof(err));
        if (c)
            v->dst[v->ndst++] = c;
        if (rc < 0)
            return job_fail_rc(j, rc, "opening verification connections to the copy", err);
    }
    return 0;
}

/* The source's side of the verification, computed on the exported snapshot by a thread with its
 * own connections while pg_restore runs: job_verify() then only has the copy to check. */
struct job_srccheck {
    struct job *j;
    pthread_t th;
    int cancel_fd; /* an eventfd: readable = stop */
    atomic_bool finished;
    int rc;
    const char *what;
    char err[1024];
    PGconn *conns[MAX_JOBS];
    size_t nconns;
    struct mig_table *tables;
    size_t ntables;
    struct mig_inventory inv;
};

static void *srccheck_main(void *arg)
{
    struct job_srccheck *s = arg;
    struct job *j = s->j;
    int rc = 0;
    for (int i = 0; rc == 0 && i < j->o.jobs; i++) {
        PGconn *c = NULL;
        rc = verify_conn(j, true, s->cancel_fd, &c, s->err, sizeof(s->err));
        if (c)
            s->conns[s->nconns++] = c;
    }
    s->what = "opening verification connections to the source";
    if (rc == 0) {
        s->what = "reading the source's catalog";
        rc = mig_tables_list(s->conns[0], s->cancel_fd, &s->tables, &s->ntables, s->err,
                             sizeof(s->err));
        if (rc == 0)
            rc = mig_inventory_catalog(s->conns[0], s->cancel_fd, &s->inv, s->err, sizeof(s->err));
    }
    if (rc == 0) {
        s->what = "verification";
        struct mig_side side = {.what = "source",
                                .conns = s->conns,
                                .nconns = s->nconns,
                                .tables = s->tables,
                                .ntables = s->ntables,
                                .inv = &s->inv};
        rc = mig_tables_check(&side, 1, mig_digest_for(j->o.checksums, j->src_ver), s->cancel_fd,
                              NULL, NULL, s->err, sizeof(s->err));
    }
    for (size_t i = 0; i < s->nconns; i++)
        PQfinish(s->conns[i]);
    s->nconns = 0;
    s->rc = rc;
    atomic_store(&s->finished, true);
    return NULL;
}

void job_srccheck_start(struct job *j)
{
    if ((!j->snapshot[0] && !j->src_quiesced) || j->srccheck)
        return; /* a source that may change is read as late as possible */
    struct job_srccheck *s = calloc(1, sizeof(*s));
    if (!s)
        return;
    s->j = j;
    mig_inventory_init(&s->inv);
    atomic_init(&s->finished, false);
    s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->cancel_fd < 0 || pthread_create(&s->th, NULL, srccheck_main, s) != 0) {
        if (s->cancel_fd >= 0)
            close(s->cancel_fd);
        free(s);
        return; /* job_verify() checks both sides itself */
    }
    j->srccheck = s;
}

/* Waits for the thread (stopping it when cancel, or on a signal); returns its rc. */
static int srccheck_join(struct job *j, bool cancel)
{
    struct job_srccheck *s = j->srccheck;
    uint64_t one = 1;
    while (!cancel && !atomic_load(&s->finished)) {
        struct pollfd pf = {.fd = j->sigfd, .events = POLLIN};
        if (poll(&pf, 1, 200) > 0 && (pf.revents & POLLIN))
            cancel = true;
    }
    if (cancel && write(s->cancel_fd, &one, sizeof(one)) < 0)
        log_warn("cannot stop the source verification", "err=%s", strerror(errno));
    pthread_join(s->th, NULL);
    return cancel && s->rc == 0 ? -ECANCELED : s->rc;
}

void job_srccheck_stop(struct job *j)
{
    struct job_srccheck *s = j->srccheck;
    if (!s)
        return;
    srccheck_join(j, true);
    close(s->cancel_fd);
    free(s->tables);
    mig_inventory_free(&s->inv);
    free(s);
    j->srccheck = NULL;
}

static void verify_tick(void *ctx, size_t done, size_t total)
{
    struct job *j = ctx;
    j->prog.tables_total = total;
    j->prog.tables_done = done;
    mig_progress_sample(&j->prog, 0, job_now_ms());
    job_show_progress(j, false);
}

int job_verify(struct job *j)
{
    struct verify_conns v = {0};
    struct mig_inventory src, dst;
    struct mig_table *st = NULL, *dt = NULL;
    size_t nst = 0, ndt = 0;
    char err[1024];
    int rc = -1;
    mig_inventory_init(&src);
    mig_inventory_init(&dst);
    bool pre = j->srccheck != NULL; /* the source's side runs already */
    job_phase(j, MIG_PH_VERIFY, 0, (pre ? 1 : 2) * j->ntables);
    if (verify_open(j, &v, !pre) < 0)
        goto out;
    const char *tamper = getenv(TAMPER_ENV);
    if (tamper && *tamper) {
        fprintf(stderr, "warning: test hook %s: changing the copy before verification\n",
                TAMPER_ENV);
        mig_exec_cmd(v.dst[0], tamper, QUERY_MS, j->sigfd, err, sizeof(err));
    }
    int r = pre ? 0 : mig_tables_list(v.src[0], j->sigfd, &st, &nst, err, sizeof(err));
    if (r == 0 && !pre)
        r = mig_inventory_catalog(v.src[0], j->sigfd, &src, err, sizeof(err));
    if (r < 0) {
        job_fail_rc(j, r, "reading the source's catalog", err);
        goto out;
    }
    r = mig_tables_list(v.dst[0], j->sigfd, &dt, &ndt, err, sizeof(err));
    if (r == 0)
        r = mig_inventory_catalog(v.dst[0], j->sigfd, &dst, err, sizeof(err));
    if (r < 0) {
        job_fail_rc(j, r, "reading the copy's catalog", err);
        goto out;
    }
    struct mig_side sides[2] = {
        {.what = "copy",
         .conns = v.dst,
         .nconns = v.ndst,
         .tables = dt,
         .ntables = ndt,
         .inv = &dst},
        {.what = "source",
         .conns = v.src,
         .nconns = v.nsrc,
         .tables = st,
         .ntables = nst,
         .inv = &src},
    };
    r = mig_tables_check(sides, pre ? 1 : 2, mig_digest_for(j->o.checksums, j->src_ver), j->sigfd,
                         verify_tick, j, err, sizeof(err));
    if (r < 0) {
        job_fail_rc(j, r, "verification", err);
        goto out;
    }
    if (pre) { /* the source's inventory, from the thread */
        r = srccheck_join(j, false);
        struct job_srccheck *s = j->srccheck;
        if (r < 0) {
            job_fail_rc(j, r, s->what, s->err);
            goto out;
        }
        mig_inventory_free(&src);
        src = s->inv;
        mig_inventory_init(&s->inv);
    }
    job_show_progress(j, true);
    int nd = mig_compare(&src, &dst, &j->rep);
    if (nd < 0) {
        job_fail(j, MIG_EXIT_FAILED, "verification: out of memory");
        goto out;
    }
    j->report_json = mig_report_json(&j->rep, 200);
    mig_report_print(&j->rep, 50, stdout);
    fflush(stdout);
    if (nd > 0) {
        job_fail(j, MIG_EXIT_FAILED,
                 "verification found %d difference%s between the source and the copy (see the "
                 "report above)",
                 nd, nd == 1 ? "" : "s");
        goto out;
    }
    rc = 0;
out:
    verify_close(&v);
    free(st);
    free(dt);
    mig_inventory_free(&src);
    mig_inventory_free(&dst);
    return rc;
}

/* ---- finish and clean up ---- */

int job_finish(struct job *j)
{
    char err[1024], q[200], q2[200], sql[500];
    job_phase(j, MIG_PH_FINISH, 0, 0);
    if (j->snap) {
        PQfinish(j->snap); /* ends the snapshot's transaction */
        j->snap = NULL;
    }
    if (j->target_exists && job_drop_database(j, j->o.to, j->o.replace, err, sizeof(err)) < 0)
        return job_fail(j, MIG_EXIT_FAILED,
                        "cannot drop the existing database %s to put the copy in its place: %s",
                        j->o.to, err);
    mig_quote_ident(j->admin, j->staging, q, sizeof(q));
    mig_quote_ident(j->admin, j->o.to, q2, sizeof(q2));
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s", q, q2);
    int rc = mig_exec_cmd(j->admin, sql, QUERY_MS, -1, err, sizeof(err));
    if (rc < 0)
        return job_fail(j, MIG_EXIT_FAILED, "cannot rename %s to %s: %s", j->staging, j->o.to, err);
    j->staging_created = false;
    return 0;
}

/* On failure: the staging database is dropped, or marked when it cannot be. */
void job_cleanup_staging(struct job *j)
{
    char err[1024] = "no connection to the leader";
    if (!j->staging_created)
        return;
    if (!j->admin || PQstatus(j->admin) != CONNECTION_OK) {
        char ci[CONNINFO_CAP];
        PQfinish(j->admin);
        j->admin = NULL;
        if (job_conninfo_tgt(j, "postgres", "", ci, sizeof(ci)) == 0)
            mig_connect(ci, CONNECT_MS, -1, &j->admin, err, sizeof(err));
    }
    if (j->admin && job_drop_database(j, j->staging, true, err, sizeof(err)) == 0) {
        fprintf(stderr,
                "the incomplete copy (database %s) was dropped: the cluster is as "
                "it was\n",
                j->staging);
        j->staging_created = false;
        return;
    }
    char add[200];
    if (j->admin) {
        char q[200], sql[600];
        mig_quote_ident(j->admin, j->staging, q, sizeof(q));
        snprintf(sql, sizeof(sql),
                 "COMMENT ON DATABASE %s IS 'pgwarden migrate job %" PRId64
                 " FAILED: incomplete copy, never use it; drop it'",
                 q, j->id);
        char e2[256];
        mig_exec_cmd(j->admin, sql, QUERY_MS, -1, e2, sizeof(e2));
    }
    snprintf(add, sizeof(add),
             " [the incomplete copy, database %s, could not be dropped: drop it by hand]",
             j->staging);
    size_t l = strlen(j->err);
    snprintf(j->err + l, sizeof(j->err) - l, "%s", add);
    fprintf(stderr,
            "WARNING: could not drop the incomplete copy %s (%s): it is marked with a "
            "comment; drop it by hand\n",
            j->staging, err);
}
