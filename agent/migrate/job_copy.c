/* Migration copy: pg_dump/pg_restore children with progress, snapshot, staging database. */
#define LOG_MODULE "migrate"
#include "agent/migrate/job_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/settings.h"
#include "agent/store.h"

/* A pg_dump/pg_restore --verbose line. */
static void on_tool_line(void *ctx, const char *line)
{
    struct job *j = ctx;
    char name[MIG_NAME_MAX];
    enum mig_line_kind k = mig_parse_tool_line(line, name, sizeof(name));
    if (k == MIG_LINE_TABLE_STARTED) {
        for (size_t i = 0; i < j->ntables; i++) {
            struct mig_table *t = &j->tables[i];
            if (j->o.jobs == 1 && t->started && !t->done)
                t->done = true; /* serial: the previous table is finished */
        }
        for (size_t i = 0; i < j->ntables; i++) {
            if (strcmp(j->tables[i].name, name) == 0) {
                j->tables[i].started = true;
                break;
            }
        }
    } else if (k == MIG_LINE_TABLE_FINISHED) {
        struct mig_table *pick = NULL;
        for (size_t i = 0; i < j->ntables; i++) {
            struct mig_table *t = &j->tables[i];
            if (t->done || strcmp(t->relname, name) != 0)
                continue;
            if (!pick || (t->started && !pick->started))
                pick = t;
        }
        if (pick)
            pick->done = true;
    }
}

/* Bytes that COPY has processed so far in the tool's sessions (PostgreSQL 14+). */
static void poll_inflight(struct job *j, PGconn *c, int version, const char *app)
{
    char sql[512], err[256];
    PGresult *r = NULL;
    if (version < 140000) {
        j->inflight = 0;
        return;
    }
    snprintf(sql, sizeof(sql),
             "SELECT pg_stat_clear_snapshot(); SELECT coalesce(sum(p.bytes_processed), 0) FROM "
             "pg_stat_progress_copy p JOIN pg_stat_activity a ON a.pid = p.pid WHERE "
             "a.application_name = '%s'",
             app);
    if (mig_exec(c, sql, 0, NULL, PROGRESS_QUERY_MS, -1, &r, NULL, err, sizeof(err)) == 0 &&
        PQntuples(r) == 1)
        j->inflight = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
}

/* Runs a tool to its end with progress; the source snapshot connection is checked every
 * second (a source that goes away fails the job at once). */
int job_run_tool(struct job *j, const char *tool, const char *const *argv, PGconn *progress_c,
                 int progress_ver, const char *progress_app)
{
    int rc = mig_child_start(&j->child, argv);
    if (rc < 0)
        return job_fail(j, MIG_EXIT_FAILED, "cannot start %s: %s", tool, strerror(-rc));
    uint64_t deadline = j->o.timeout_s ? j->start_ms + (uint64_t)j->o.timeout_s * 1000 : 0;
    uint64_t last_poll = 0;
    bool eof = false;
    for (;;) {
        struct pollfd pf[2] = {{.fd = j->child.fd, .events = POLLIN},
                               {.fd = j->sigfd, .events = POLLIN}};
        int pr = poll(pf, 2, eof ? 100 : 1000);
        if (pr > 0 && (pf[1].revents & POLLIN)) {
            mig_child_kill(&j->child);
            return job_fail(j, MIG_EXIT_FAILED, "interrupted during %s: %s stopped",
                            mig_phase_name(j->prog.phase), tool);
        }
        if (pr > 0 && pf[0].revents)
            eof = mig_child_read(&j->child, on_tool_line, j) == 1;
        if (eof && mig_child_reap(&j->child))
            break;
        uint64_t now = job_now_ms();
        if (deadline && now > deadline) {
            mig_child_kill(&j->child);
            return job_fail(j, MIG_EXIT_FAILED, "%s did not finish within --timeout %d s: stopped",
                            tool, j->o.timeout_s);
        }
        if (now >= last_poll + 1000) {
            last_poll = now;
            char err[512];
            /* the snapshot must stay: the verification reads the source through it */
            if (j->snapshot[0] &&
                mig_exec_cmd(j->snap, "SELECT 1", PROGRESS_QUERY_MS, -1, err, sizeof(err)) < 0) {
                mig_child_kill(&j->child);
                return job_fail(j, MIG_EXIT_FAILED,
                                "lost the connection to the source during %s: %s",
                                mig_phase_name(j->prog.phase), err);
            }
            if (progress_c)
                poll_inflight(j, progress_c, progress_ver, progress_app);
            job_tables_sample(j);
            job_show_progress(j, false);
        }
    }
    if (j->child.exit_code != 0) {
        const char *why = j->child.errors[0] ? j->child.errors : j->child.last;
        char what[64];
        if (j->child.term_signal)
            snprintf(what, sizeof(what), "was killed by signal %d", j->child.term_signal);
        else
            snprintf(what, sizeof(what), "exited with code %d", j->child.exit_code);
        if (j->child.errors[0] == '\0' && strstr(j->child.last, "No space left"))
            why = j->child.last;
        return job_fail(j, MIG_EXIT_FAILED, "%s %s: %s", tool, what, why);
    }
    for (size_t i = 0; i < j->ntables; i++)
        j->tables[i].done = true;
    j->inflight = 0;
    job_tables_sample(j);
    j->prog.bytes_done = j->prog.bytes_total;
    job_show_progress(j, true);
    return 0;
}

/* ---- copy ---- */

int job_take_snapshot(struct job *j)
{
    char err[1024];
    PGresult *r = NULL;
    int rc = mig_exec_cmd(j->snap, MIG_SESSION_SQL, QUERY_MS, j->sigfd, err, sizeof(err));
    if (rc == 0)
        rc = mig_exec_cmd(j->snap, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", QUERY_MS,
                          j->sigfd, err, sizeof(err));
    if (rc == 0)
        rc = mig_exec(j->snap, "SELECT pg_export_snapshot()", 0, NULL, QUERY_MS, j->sigfd, &r, NULL,
                      err, sizeof(err));
    if (rc == -ECANCELED || rc == -ECONNRESET)
        return job_fail_rc(j, rc, "exporting a snapshot of the source", err);
    if (rc < 0) {
        fprintf(stderr,
                "warning: the source cannot export a snapshot (%s): the verification compares "
                "with the source as it is then\n",
                err);
        mig_exec_cmd(j->snap, "ROLLBACK", QUERY_MS, -1, err, sizeof(err));
        return 0;
    }
    snprintf(j->snapshot, sizeof(j->snapshot), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int job_dump(struct job *j)
{
    char ci[CONNINFO_CAP], jobs[16], snap[160], pg_dump[PGW_PATH_MAX + 16];
    snprintf(pg_dump, sizeof(pg_dump), "%s/pg_dump", j->cfg->postgresql.bin_dir);
    snprintf(jobs, sizeof(jobs), "%d", j->o.jobs);
    snprintf(snap, sizeof(snap), "--snapshot=%s", j->snapshot);
    if (job_conninfo_src(j, "-dump", ci, sizeof(ci)) < 0)
        return job_fail(j, MIG_EXIT_USAGE, "the source URL is too long");
    const char *argv[16] = {pg_dump,    "--format=directory", "--jobs",        jobs,       "--file",
                            j->dumpdir, "--verbose",          "--no-password", "--dbname", ci};
    size_t n = 10;
    if (j->snapshot[0])
        argv[n++] = snap;
    if (j->o.online) { /* online mode: the schema only; the subscription copies the data */
        argv[n++] = "--schema-only";
        argv[n++] = "--no-publications";
        argv[n++] = "--no-subscriptions";
        job_phase(j, MIG_PH_SCHEMA, 0, j->ntables);
    } else {
        job_phase(j, MIG_PH_DUMP, j->table_bytes, j->ntables);
    }
    job_tables_reset(j);
    char app[96];
    snprintf(app, sizeof(app), "%s-dump", j->app);
    return job_run_tool(j, "pg_dump", argv, j->snap, j->src_ver, app);
}

int job_create_staging(struct job *j)
{
    char q[200], sql[2048], err[1024], enc[200], col[600], ct[600];
    mig_quote_ident(j->admin, j->staging, q, sizeof(q));
    char *e = PQescapeLiteral(j->admin, j->enc, strlen(j->enc));
    char *c = PQescapeLiteral(j->admin, j->collate, strlen(j->collate));
    char *t = PQescapeLiteral(j->admin, j->ctype, strlen(j->ctype));
    snprintf(enc, sizeof(enc), "%s", e ? e : "'UTF8'");
    snprintf(col, sizeof(col), "%s", c ? c : "'C'");
    snprintf(ct, sizeof(ct), "%s", t ? t : "'C'");
    PQfreemem(e);
    PQfreemem(c);
    PQfreemem(t);
    snprintf(sql, sizeof(sql),
             "CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s", q, enc,
             col, ct);
    int rc = mig_exec_cmd(j->admin, sql, QUERY_MS, j->sigfd, err, sizeof(err));
    if (rc == -EIO) { /* the source's locale does not exist here: the cluster's default */
        fprintf(stderr,
                "note: the cluster has no locale %s/%s: the copy uses the cluster's default "
                "locale with encoding %s\n",
                j->collate, j->ctype, j->enc);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0 ENCODING %s", q, enc);
        rc = mig_exec_cmd(j->admin, sql, QUERY_MS, j->sigfd, err, sizeof(err));
    }
    if (rc < 0)
        return job_fail_rc(j, rc, "creating the staging database on the leader", err);
    j->staging_created = true;
    store_migration_staging(j->st, j->id, j->staging);
    return 0;
}

int job_restore(struct job *j)
{
    char ci[CONNINFO_CAP], jobs[16], pg_restore[PGW_PATH_MAX + 16];
    if (job_create_staging(j) < 0)
        return -1;
    snprintf(pg_restore, sizeof(pg_restore), "%s/pg_restore", j->cfg->postgresql.bin_dir);
    snprintf(jobs, sizeof(jobs), "%d", j->o.jobs);
    if (job_conninfo_tgt(j, j->staging, "-restore", ci, sizeof(ci)) < 0)
        return job_fail(j, MIG_EXIT_CONFIG, "the cluster's connection settings are too long");
    const char *argv[] = {
        pg_restore,  "--jobs",        jobs,       "--no-owner", "--no-acl", "--exit-on-error",
        "--verbose", "--no-password", "--dbname", ci,           j->dumpdir, NULL};
    if (!j->o.online)
        job_phase(j, MIG_PH_RESTORE, j->table_bytes, j->ntables);
    job_tables_reset(j);
    char app[96];
    snprintf(app, sizeof(app), "%s-restore", j->app);
    return job_run_tool(j, "pg_restore", argv, j->admin, j->tgt_ver, app);
}
