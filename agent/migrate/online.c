/* Online migration (`--online`): replication preflight, set-up, live view of copy and lag. */
#define LOG_MODULE "migrate"
#include "agent/migrate/job_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/store.h"
#include "platform/clock.h"

enum { WATCH_MS = 1000, SUBSCRIBE_MS = 600000, NOKEY_MAX = 10000 };

static const char facts_sql[] =
    "SELECT current_setting('wal_level'), r.rolsuper OR EXISTS (SELECT 1 FROM pg_roles g WHERE "
    "g.rolname IN ('rds_superuser', 'cloudsqlsuperuser', 'azure_pg_admin') AND pg_has_role(r.oid, "
    "g.oid, 'MEMBER')), r.rolreplication OR r.rolsuper OR EXISTS (SELECT 1 FROM pg_roles g WHERE "
    "g.rolname = 'rds_replication' AND pg_has_role(r.oid, g.oid, 'MEMBER')), "
    "has_database_privilege(current_database(), 'CREATE'), "
    "current_setting('max_replication_slots')::int - (SELECT count(*) FROM "
    "pg_replication_slots)::int, current_setting('max_wal_senders')::int - (SELECT count(*) FROM "
    "pg_stat_replication)::int, (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
    "c.relnamespace WHERE c.relkind IN ('r', 'p') AND " MIG_USER_NS " AND " MIG_NOT_EXT(
        "pg_class", "c.oid") " AND NOT pg_has_role(r.oid, c.relowner, 'USAGE')), (SELECT count(*) "
                             "FROM pg_largeobject_metadata) FROM pg_roles r WHERE r.rolname = "
                             "current_user";

/* Tables that UPDATE/DELETE would fail on once published: no primary key, replica identity
 * default or nothing. */
static const char nokey_sql[] =
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN "
    "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND " MIG_USER_NS
    " AND " MIG_NOT_EXT("pg_class", "c.oid") " AND (c.relreplident = 'n' OR (c.relreplident = "
                                             "'d' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE "
                                             "i.indrelid = c.oid AND i.indisprimary))) ORDER BY 1";

int job_connect_db(struct job *j, const char *db, const char *suffix, PGconn **out)
{
    char ci[CONNINFO_CAP], err[1024];
    if (job_conninfo_tgt(j, db, suffix, ci, sizeof(ci)) < 0)
        return job_fail(j, MIG_EXIT_CONFIG, "the cluster's connection settings are too long");
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, out, err, sizeof(err));
    if (rc < 0) {
        PQfinish(*out);
        *out = NULL;
        if (rc == -ECANCELED)
            return job_fail(j, MIG_EXIT_FAILED, "interrupted");
        return job_fail(j, MIG_EXIT_UNAVAILABLE, "cannot connect to database %s of the cluster: %s",
                        db, err);
    }
    return 0;
}

int job_slot_lag(struct job *j, int64_t *lag, char *err, size_t cap)
{
    const char *p[1] = {j->repl};
    PGresult *r = NULL;
    *lag = -1;
    int rc = mig_exec(j->snap,
                      "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                      "FROM pg_replication_slots WHERE slot_name = $1",
                      1, p, PROGRESS_QUERY_MS, -1, &r, NULL, err, cap);
    if (rc < 0)
        return rc;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
        long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *lag = v < 0 ? 0 : v;
    }
    PQclear(r);
    return 0;
}

/* Best effort on the source: the slot (if left, e.g. after slot_name = NONE), the publication. */
static void source_teardown(struct job *j, char *left, size_t cap)
{
    char err[1024], sql[200];
    const char *p[1] = {j->repl};
    if (!j->snap || PQstatus(j->snap) != CONNECTION_OK) {
        snprintf(left, cap,
                 "on the source (unreachable): SELECT pg_drop_replication_slot('%s'); DROP "
                 "PUBLICATION IF EXISTS %s;",
                 j->repl, j->repl);
        return;
    }
    long long slots = 0;
    if (job_scalar_int(j->snap, -1,
                       "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", 1, p,
                       &slots, err, sizeof(err)) == 0 &&
        slots > 0) {
        /* a walsender that still holds it belongs to our subscription, which is gone */
        PGresult *r = NULL;
        mig_exec(j->snap,
                 "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE "
                 "slot_name = $1 AND active_pid IS NOT NULL",
                 1, p, QUERY_MS, -1, &r, NULL, err, sizeof(err));
        PQclear(r);
        r = NULL;
        int rc = -1;
        for (int i = 0; i < 50 && rc < 0; i++) { /* the walsender needs a moment to exit */
            rc = mig_exec(j->snap, "SELECT pg_drop_replication_slot($1)", 1, p, QUERY_MS, -1, &r,
                          NULL, err, sizeof(err));
            PQclear(r);
            r = NULL;
            if (rc < 0)
                usleep(100000);
        }
        if (rc < 0)
            snprintf(left, cap, "the replication slot %s on the source (%.300s)", j->repl, err);
    }
    snprintf(sql, sizeof(sql), "DROP PUBLICATION IF EXISTS %s", j->repl);
    if (mig_exec_cmd(j->snap, sql, QUERY_MS, -1, err, sizeof(err)) < 0) {
        size_t l = strlen(left);
        snprintf(left + l, cap - l, "%sthe publication %s on the source (%.300s)", l ? "; " : "",
                 j->repl, err);
    }
    j->pub_created = false;
}

int job_repl_teardown(struct job *j)
{
    char err[1024], left[1024] = "";
    const char *p[1] = {j->repl};
    if (!j->repl[0])
        return 0;
    long long subs = 0;
    if (j->stg &&
        job_scalar_int(j->stg, -1, "SELECT count(*) FROM pg_subscription WHERE subname = $1", 1, p,
                       &subs, err, sizeof(err)) < 0)
        return job_fail(j, MIG_EXIT_FAILED, "reading the cluster's subscriptions: %s", err);
    if (subs > 0) {
        char sql[300];
        snprintf(sql, sizeof(sql), "ALTER SUBSCRIPTION %s DISABLE", j->repl);
        int rc = mig_exec_cmd(j->stg, sql, QUERY_MS, -1, err, sizeof(err));
        snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION %s", j->repl);
        if (rc == 0)
            rc = mig_exec_cmd(j->stg, sql, QUERY_MS, -1, err, sizeof(err));
        if (rc < 0) { /* the source cannot drop the slot: detach it, drop it directly below */
            fprintf(stderr, "note: the subscription could not drop its slot (%s): detaching it\n",
                    err);
            snprintf(sql, sizeof(sql), "ALTER SUBSCRIPTION %s SET (slot_name = NONE)", j->repl);
            rc = mig_exec_cmd(j->stg, sql, QUERY_MS, -1, err, sizeof(err));
            snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION %s", j->repl);
            if (rc == 0)
                rc = mig_exec_cmd(j->stg, sql, QUERY_MS, -1, err, sizeof(err));
            if (rc < 0)
                return job_fail(j, MIG_EXIT_FAILED, "cannot drop the subscription %s: %s", j->repl,
                                err);
        }
    }
    j->sub_created = false;
    source_teardown(j, left, sizeof(left));
    if (left[0]) {
        fprintf(stderr, "WARNING: left on the source, drop by hand: %s\n", left);
        return job_fail(j, MIG_EXIT_FAILED, "could not drop %s", left);
    }
    return 0;
}

/* ---- preflight ---- */

static void replication_probe(struct job *j, struct mig_logical_facts *f)
{
    char ci[CONNINFO_CAP + 32], err[512];
    if (job_conninfo_src(j, "-probe", ci, CONNINFO_CAP) < 0) {
        snprintf(f->replication_conn_err, sizeof(f->replication_conn_err), "URL too long");
        return;
    }
    size_t l = strlen(ci);
    snprintf(ci + l, sizeof(ci) - l, " replication=database");
    PGconn *c = NULL;
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, &c, err, sizeof(err));
    if (rc == 0)
        rc = mig_exec_cmd(c, "IDENTIFY_SYSTEM", QUERY_MS, j->sigfd, err, sizeof(err));
    PQfinish(c);
    f->replication_conn_ok = rc == 0;
    if (rc < 0)
        snprintf(f->replication_conn_err, sizeof(f->replication_conn_err), "%.255s", err);
}

static int online_preflight(struct job *j)
{
    struct mig_logical_facts f = {.version = j->src_ver};
    char err[1024];
    PGresult *r = NULL;
    int rc = mig_exec(j->snap, facts_sql, 0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "online preflight on the source", err);
    if (PQntuples(r) == 1) {
        snprintf(f.wal_level, sizeof(f.wal_level), "%s", PQgetvalue(r, 0, 0));
        f.superuser = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
        f.replication = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
        f.can_create = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
        f.slots_free = (int)strtol(PQgetvalue(r, 0, 4), NULL, 10);
        f.senders_free = (int)strtol(PQgetvalue(r, 0, 5), NULL, 10);
        f.tables_not_owned = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
        f.large_objects = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
    }
    PQclear(r);
    r = NULL;
    rc = mig_exec(j->snap, nokey_sql, 0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "online preflight on the source", err);
    size_t o = 0;
    f.nnokey = (size_t)PQntuples(r);
    for (int i = 0; i < PQntuples(r) && o < sizeof(f.nokey); i++)
        o += (size_t)snprintf(f.nokey + o, sizeof(f.nokey) - o, "%s%s", i ? ", " : "",
                              PQgetvalue(r, i, 0));
    PQclear(r);
    if (f.superuser || f.replication)
        replication_probe(j, &f);
    j->src_super = f.superuser;
    char list[1800];
    int n = mig_logical_check(&f, j->o.ri_full, list, sizeof(list));
    if (n > 0)
        return job_fail(j, MIG_EXIT_FAILED,
                        "the source does not allow an online migration (nothing was changed):\n%s",
                        list);
    return 0;
}

/* ---- set-up: schema, publication, subscription ---- */

static int set_replica_identity(struct job *j)
{
    char err[1024], sql[600];
    PGresult *r = NULL;
    int rc = mig_exec(j->snap, nokey_sql, 0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    for (int i = 0; rc == 0 && i < PQntuples(r) && i < NOKEY_MAX; i++) {
        snprintf(sql, sizeof(sql), "ALTER TABLE %s REPLICA IDENTITY FULL", PQgetvalue(r, i, 0));
        rc = mig_exec_cmd(j->snap, sql, QUERY_MS, j->sigfd, err, sizeof(err));
        if (rc == 0)
            fprintf(stderr,
                    "note: %s has no primary key: set REPLICA IDENTITY FULL on the source\n",
                    PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc < 0 ? job_fail_rc(j, rc, "setting REPLICA IDENTITY FULL on the source", err) : 0;
}

static int create_publication(struct job *j)
{
    char err[1024];
    const char **names = calloc(j->ntables ? j->ntables : 1, sizeof(*names));
    if (!names)
        return job_fail(j, MIG_EXIT_FAILED, "out of memory");
    for (size_t i = 0; i < j->ntables; i++)
        names[i] = j->tables[i].sql;
    char *sql = mig_publication_sql(j->repl, j->src_super, names, j->ntables);
    free(names);
    if (!sql)
        return job_fail(j, MIG_EXIT_FAILED, "out of memory");
    int rc = mig_exec_cmd(j->snap, sql, QUERY_MS, j->sigfd, err, sizeof(err));
    free(sql);
    if (rc < 0)
        return job_fail_rc(j, rc, "creating the publication on the source", err);
    j->pub_created = true;
    return 0;
}

static int create_subscription(struct job *j)
{
    char err[1024];
    if (job_connect_db(j, j->staging, "-online", &j->stg) < 0)
        return -1;
    /* the statement holds the password: keep it out of the server's log */
    int rc = mig_exec_cmd(j->stg,
                          "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; "
                          "SET log_min_duration_statement = -1",
                          QUERY_MS, j->sigfd, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "preparing the subscription", err);
    char *lit = PQescapeLiteral(j->stg, j->sub_ci, strlen(j->sub_ci));
    size_t cap = strlen(j->sub_ci) * 2 + 512;
    char *sql = malloc(cap);
    if (!lit || !sql) {
        PQfreemem(lit);
        free(sql);
        return job_fail(j, MIG_EXIT_FAILED, "out of memory");
    }
    snprintf(sql, cap,
             "CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (copy_data = true, "
             "create_slot = true, slot_name = '%s')",
             j->repl, lit, j->repl, j->repl);
    explicit_bzero(lit, strlen(lit));
    PQfreemem(lit);
    rc = mig_exec_cmd(j->stg, sql, SUBSCRIBE_MS, j->sigfd, err, sizeof(err));
    explicit_bzero(sql, cap);
    free(sql);
    if (rc < 0)
        return job_fail_rc(j, rc, "creating the subscription in the cluster", err);
    j->sub_created = true;
    explicit_bzero(j->sub_ci, CONNINFO_CAP); /* from now on it is in pg_subscription only */
    mig_exec_cmd(j->stg, "RESET log_statement; RESET log_min_error_statement", QUERY_MS, -1, err,
                 sizeof(err));
    return 0;
}

static int online_setup(struct job *j)
{
    if (job_preflight_source(j) < 0 || online_preflight(j) < 0 || job_preflight_target(j) < 0)
        return -1;
    uint64_t table_bytes = j->table_bytes; /* no dump: only the data directory needs room */
    j->table_bytes = 0;
    int rc = job_preflight_space(j);
    j->table_bytes = table_bytes;
    if (rc < 0 || job_confirm(j) < 0)
        return -1;
    if (job_dump(j) < 0 || job_restore(j) < 0) /* the schema, into the staging database */
        return -1;
    job_remove_tree(j->dumpdir);
    if (mig_repl_name(j->id, (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 16), j->repl,
                      sizeof(j->repl)) < 0 ||
        !store_migration_repl_name(j->st, j->id, j->repl))
        return job_fail(j, MIG_EXIT_FAILED, "cannot record the replication name");
    store_migration_lag(j->st, j->id, clock_wall_ms(), -1);
    /* from here on the job lives without this process: if it dies, `abort` cleans up */
    job_phase(j, MIG_PH_COPY, j->table_bytes, j->ntables);
    if (j->o.ri_full && set_replica_identity(j) < 0)
        return -1;
    if (create_publication(j) < 0 || create_subscription(j) < 0)
        return -1;
    return 0;
}

/* ---- the live view ---- */

/* Tables copied (ready or synchronized) / total, bytes copied so far, replication errors. */
static int copy_state(struct job *j, char *err, size_t cap)
{
    const char *p[1] = {j->repl};
    PGresult *r = NULL;
    int rc = mig_exec(j->stg,
                      "SELECT count(*) FILTER (WHERE sr.srsubstate IN ('r', 's')), count(*), "
                      "coalesce(sum(pg_table_size(sr.srrelid)), 0), (SELECT coalesce(sum("
                      "apply_error_count + sync_error_count), 0) FROM pg_stat_subscription_stats "
                      "WHERE subname = $1) FROM pg_subscription_rel sr JOIN pg_subscription s ON "
                      "s.oid = sr.srsubid WHERE s.subname = $1",
                      1, p, PROGRESS_QUERY_MS, -1, &r, NULL, err, cap);
    if (rc < 0)
        return rc;
    if (PQntuples(r) == 1) {
        j->prog.tables_done = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        j->prog.tables_total = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        uint64_t bytes = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        if (j->prog.bytes_total && bytes >= j->prog.bytes_total)
            bytes = j->prog.bytes_total - 1;
        mig_progress_sample(&j->prog, bytes, job_now_ms());
        j->repl_errors = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    }
    PQclear(r);
    return 0;
}

static void show_line(struct job *j, bool force)
{
    char line[600];
    uint64_t now = job_now_ms();
    mig_online_line(j->prog.phase, j->prog.tables_done, j->prog.tables_total, j->lag,
                    j->repl_errors, line, sizeof(line));
    if (j->prog.phase == MIG_PH_COPY && j->prog.bytes_total) {
        char bar[300];
        mig_progress_line(&j->prog, now, j->tty ? 30 : 0, bar, sizeof(bar));
        snprintf(line + strlen(line), sizeof(line) - strlen(line), "  %s", bar);
    }
    if (!j->show)
        return;
    if (j->tty) {
        fprintf(stderr, "\r%.200s\033[K", line);
    } else if (force || now >= j->last_print_ms + PLAIN_EVERY_MS) {
        fprintf(stderr, "%s\n", line);
        j->last_print_ms = now;
    }
    fflush(stderr);
}

/* (Re)connects a lost connection: the source (lag) or the staging database (copy state). */
static void reconnect(struct job *j, bool source)
{
    PGconn **c = source ? &j->snap : &j->stg;
    if (*c && PQstatus(*c) == CONNECTION_OK)
        return;
    PQfinish(*c);
    *c = NULL;
    char ci[CONNINFO_CAP], err[512];
    int rc = source ? job_conninfo_src(j, "-watch", ci, sizeof(ci))
                    : job_conninfo_tgt(j, j->staging, "-watch", ci, sizeof(ci));
    if (rc == 0 && mig_connect(ci, CONNECT_MS, -1, c, err, sizeof(err)) < 0) {
        PQfinish(*c);
        *c = NULL;
    }
}

/* Once copied, the copy's rows get their hint bits and visibility map (else the cutover's row
 * counts would write them, during the downtime) and the planner its statistics. */
static void vacuum_copy(struct job *j)
{
    char err[512];
    fprintf(stderr, "%sinitial copy done: VACUUM ANALYZE of the copy...\n",
            j->tty && j->show ? "\n" : "");
    uint64_t t0 = job_now_ms();
    int rc = mig_exec_cmd(j->stg, "VACUUM (ANALYZE)", 0, j->sigfd, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "warning: VACUUM ANALYZE of the copy: %s\n", err);
    else
        fprintf(stderr, "VACUUM ANALYZE of the copy done in %.1f s\n",
                (double)(job_now_ms() - t0) / 1000);
}

/* Follows the job until it is cut over or aborted (by another process), or Ctrl-C. */
static int online_watch(struct job *j, struct store_migration *m)
{
    char err[512];
    uint64_t last_store = 0;
    bool said_cut = false;
    for (;;) {
        if (store_migration_get(j->st, j->id, m) && strcmp(m->state, "copy") != 0 &&
            strcmp(m->state, "streaming") != 0) {
            if (j->stg) { /* the cutover renames the staging database: let go of it */
                PQfinish(j->stg);
                j->stg = NULL;
            }
            if (j->tty && j->show && !said_cut)
                fprintf(stderr, "\n");
            if (strcmp(m->state, "done") == 0) {
                printf("migration %" PRId64 ": cut over by pid %" PRId64 " in %.1f s: %s is ready "
                       "in the cluster (see the cutover's output for the DATABASE_URL)\n",
                       j->id, m->pid, (double)m->cutover_ms / 1000, m->target_db);
                return 0;
            }
            if (strcmp(m->state, "failed") == 0) {
                fprintf(stderr, "pgwarden migrate: migration %" PRId64 " ended: %s\n", j->id,
                        m->error);
                return MIG_EXIT_FAILED;
            }
            if (!said_cut)
                fprintf(stderr, "migration %" PRId64 ": %s by pid %" PRId64 "...\n", j->id,
                        m->state, m->pid);
            said_cut = true;
        } else {
            reconnect(j, false);
            reconnect(j, true);
            bool known = j->stg && copy_state(j, err, sizeof(err)) == 0;
            if (j->stg && !known) {
                PQfinish(j->stg);
                j->stg = NULL;
            }
            if (!j->snap || job_slot_lag(j, &j->lag, err, sizeof(err)) < 0)
                j->lag = -1;
            /* pg_subscription_rel lists every table from CREATE SUBSCRIPTION on */
            if (j->prog.phase == MIG_PH_COPY && known &&
                j->prog.tables_done == j->prog.tables_total) {
                bool changed = false;
                j->prog.bytes_done = j->prog.bytes_total;
                job_store_progress(j, true); /* tables N/N, still "copy" */
                vacuum_copy(j);
                store_migration_transition(j->st, j->id, clock_wall_ms(), "copy", "streaming",
                                           getpid(), &changed);
                uint64_t tables = j->prog.tables_total;
                /* not job_phase(): the state was moved atomically above */
                mig_progress_phase(&j->prog, MIG_PH_STREAMING, job_now_ms());
                j->prog.tables_done = j->prog.tables_total = tables;
                if (changed)
                    fprintf(stderr,
                            "ready for the cutover (%" PRIu64 " tables copied): changes now stream "
                            "from the source. Stop the application's writes, then run `pgwarden "
                            "migrate cutover` (Ctrl-C here only detaches)\n",
                            tables);
            }
            uint64_t now = job_now_ms();
            if (now >= last_store + STORE_EVERY_MS) {
                last_store = now;
                store_migration_lag(j->st, j->id, clock_wall_ms(), j->lag);
                if (j->prog.phase == MIG_PH_COPY)
                    job_store_progress(j, true);
            }
            show_line(j, false);
        }
        struct pollfd pf = {.fd = j->sigfd, .events = POLLIN};
        if (poll(&pf, 1, WATCH_MS) > 0 && (pf.revents & POLLIN)) {
            if (j->tty && j->show)
                fprintf(stderr, "\n");
            fprintf(stderr,
                    "detached: the replication goes on in the cluster. `pgwarden migrate status` "
                    "shows the job; after stopping the application's writes, `pgwarden migrate "
                    "cutover` ends it (or `pgwarden migrate abort`).\n");
            return 0;
        }
    }
}

int job_online_main(struct job *j)
{
    int rc = online_setup(j);
    if (rc < 0) {
        if (j->tty && j->show)
            fprintf(stderr, "\n");
        mig_child_kill(&j->child);
        if (j->sub_created || j->pub_created) {
            if (!j->stg && j->staging_created)
                job_connect_db(j, j->staging, "-online", &j->stg);
            char keep[sizeof(j->err)];
            snprintf(keep, sizeof(keep), "%s", j->err);
            int code = j->exit_code;
            job_repl_teardown(j);
            snprintf(j->err, sizeof(j->err), "%s", keep);
            j->exit_code = code;
        }
        PQfinish(j->stg);
        j->stg = NULL;
        job_cleanup_staging(j);
        job_remove_tree(j->workdir);
        store_migration_finish(j->st, j->id, clock_wall_ms(), "failed", j->err, NULL);
        job_event(j, "failed");
        fprintf(stderr, "pgwarden migrate: migration %" PRId64 " FAILED: %s\n", j->id, j->err);
        return j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
    }
    fprintf(stderr,
            "migration %" PRId64 ": replication %s set up (source publication and cluster "
            "subscription); the initial copy runs in the cluster\n",
            j->id, j->repl);
    struct store_migration *m = calloc(1, sizeof(*m));
    if (!m)
        return MIG_EXIT_FAILED;
    int code = online_watch(j, m);
    free(m);
    return code;
}
