/* Migration preflight: the source, the cluster, disk space, confirmation. */
#define LOG_MODULE "migrate"
#include "agent/migrate/job_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/settings.h"

/* ---- preflight ---- */

int job_preflight_source(struct job *j)
{
    char ci[CONNINFO_CAP], err[1024];
    if (job_conninfo_src(j, "", ci, sizeof(ci)) < 0)
        return job_fail(j, MIG_EXIT_USAGE, "the source URL is too long");
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, &j->snap, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ECANCELED)
            return job_fail(j, MIG_EXIT_FAILED, "interrupted");
        return job_fail(j, MIG_EXIT_UNAVAILABLE, "cannot connect to the source %s: %s", j->shown,
                        err);
    }
    PGresult *r = NULL;
    rc = mig_exec(j->snap,
                  "SELECT current_setting('server_version_num')::int, "
                  "pg_database_size(current_database()), pg_encoding_to_char(encoding), "
                  "datcollate, datctype, current_setting('server_version') FROM pg_database "
                  "WHERE datname = current_database()",
                  0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "source preflight query", err);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return job_fail(j, MIG_EXIT_FAILED, "source preflight: the database is not in pg_database");
    }
    j->src_ver = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    j->src_size = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    snprintf(j->enc, sizeof(j->enc), "%s", PQgetvalue(r, 0, 2));
    snprintf(j->collate, sizeof(j->collate), "%s", PQgetvalue(r, 0, 3));
    snprintf(j->ctype, sizeof(j->ctype), "%s", PQgetvalue(r, 0, 4));
    snprintf(j->src_ver_s, sizeof(j->src_ver_s), "%s", PQgetvalue(r, 0, 5));
    PQclear(r);
    if (j->src_ver < MIN_SOURCE_VERSION)
        return job_fail(j, MIG_EXIT_FAILED,
                        "the source runs PostgreSQL %s: pgwarden migrate needs 10 or later",
                        j->src_ver_s);
    rc = mig_tables_list(j->snap, j->sigfd, &j->tables, &j->ntables, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "listing the source's tables", err);
    for (size_t i = 0; i < j->ntables; i++)
        j->table_bytes += j->tables[i].bytes;
    return 0;
}

static int missing_extensions(struct job *j)
{
    char err[1024];
    PGresult *s = NULL, *t = NULL;
    int rc = mig_exec(j->snap, "SELECT extname FROM pg_extension ORDER BY 1", 0, NULL, QUERY_MS,
                      j->sigfd, &s, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "listing the source's extensions", err);
    rc = mig_exec(j->admin, "SELECT name FROM pg_available_extensions", 0, NULL, QUERY_MS, j->sigfd,
                  &t, NULL, err, sizeof(err));
    if (rc < 0) {
        PQclear(s);
        return job_fail_rc(j, rc, "listing the cluster's extensions", err);
    }
    char missing[1024] = "";
    size_t o = 0;
    for (int i = 0; i < PQntuples(s); i++) {
        bool have = false;
        for (int k = 0; !have && k < PQntuples(t); k++)
            have = strcmp(PQgetvalue(s, i, 0), PQgetvalue(t, k, 0)) == 0;
        if (!have && o < sizeof(missing))
            o += (size_t)snprintf(missing + o, sizeof(missing) - o, "%s%s", o ? ", " : "",
                                  PQgetvalue(s, i, 0));
    }
    PQclear(s);
    PQclear(t);
    if (missing[0])
        return job_fail(j, MIG_EXIT_FAILED,
                        "the cluster lacks extensions that the source uses: %s (install them on "
                        "every node, e.g. the postgresql-15-<name> package, then retry)",
                        missing);
    return 0;
}

int job_drop_database(struct job *j, const char *name, bool force, char *err, size_t cap)
{
    char q[200], sql[300];
    mig_quote_ident(j->admin, name, q, sizeof(q));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s%s", q, force ? " WITH (FORCE)" : "");
    return mig_exec_cmd(j->admin, sql, QUERY_MS, -1, err, cap);
}

int job_preflight_target(struct job *j)
{
    char ci[CONNINFO_CAP], err[1024];
    if (job_conninfo_tgt(j, "postgres", "", ci, sizeof(ci)) < 0)
        return job_fail(j, MIG_EXIT_CONFIG, "the cluster's connection settings are too long");
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, &j->admin, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ECANCELED)
            return job_fail(j, MIG_EXIT_FAILED, "interrupted");
        return job_fail(j, MIG_EXIT_UNAVAILABLE,
                        "cannot reach the cluster's leader through the read-write forwarder "
                        "%s:%u as %s: %s",
                        j->tgt.host, (unsigned)j->tgt.port, j->tgt.user, err);
    }
    PGresult *r = NULL;
    rc = mig_exec(j->admin,
                  "SELECT current_setting('server_version_num')::int, "
                  "current_setting('data_directory'), inet_server_port(), pg_is_in_recovery()",
                  0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "cluster preflight query", err);
    j->tgt_ver = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    char real_cfg[PATH_MAX];
    bool same_dir = realpath(j->cfg->postgresql.data_dir, real_cfg) &&
                    strcmp(real_cfg, PQgetvalue(r, 0, 1)) == 0;
    j->local_leader =
        same_dir && strtol(PQgetvalue(r, 0, 2), NULL, 10) == (long)j->cfg->postgresql.listen.port;
    bool standby = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    PQclear(r);
    if (standby)
        return job_fail(j, MIG_EXIT_UNAVAILABLE,
                        "the read-write forwarder %s:%u leads to a standby: the cluster has no "
                        "writable leader now",
                        j->tgt.host, (unsigned)j->tgt.port);
    if (j->src_ver / 10000 > j->tgt_ver / 10000)
        return job_fail(j, MIG_EXIT_FAILED,
                        "the source runs PostgreSQL %s, newer than the cluster's %d: its pg_dump "
                        "cannot read it",
                        j->src_ver_s, j->tgt_ver / 10000);
    if (j->stale_staging[0]) {
        if (job_drop_database(j, j->stale_staging, true, err, sizeof(err)) == 0)
            fprintf(stderr, "note: dropped %s, left by the interrupted migration\n",
                    j->stale_staging);
    }
    if (missing_extensions(j) < 0)
        return -1;
    const char *p[1] = {j->o.to};
    long long exists = 0;
    rc = job_scalar_int(j->admin, j->sigfd, "SELECT count(*) FROM pg_database WHERE datname = $1",
                        1, p, &exists, err, sizeof(err));
    if (rc < 0)
        return job_fail_rc(j, rc, "checking the target database", err);
    j->target_exists = exists > 0;
    if (!j->target_exists)
        return 0;
    PGconn *c = NULL;
    if (job_conninfo_tgt(j, j->o.to, "", ci, sizeof(ci)) < 0 ||
        mig_connect(ci, CONNECT_MS, j->sigfd, &c, err, sizeof(err)) < 0)
        return job_fail(j, MIG_EXIT_FAILED,
                        "the target database %s exists but cannot be opened: %s", j->o.to, err);
    long long objects = 0;
    rc = job_scalar_int(
        c, j->sigfd,
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%') "
        "+ (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = "
        "p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) "
        "+ (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')",
        0, NULL, &objects, err, sizeof(err));
    PQfinish(c);
    if (rc < 0)
        return job_fail_rc(j, rc, "checking the target database", err);
    if (objects > 0 && !j->o.replace)
        return job_fail(j, MIG_EXIT_FAILED,
                        "the target database %s already exists and is not empty (%lld objects): "
                        "choose another name, or use --replace (the old database is dropped only "
                        "after the new copy is verified)",
                        j->o.to, objects);
    return 0;
}

static uint64_t free_bytes(const char *path, dev_t *dev)
{
    struct statvfs v;
    struct stat st;
    if (statvfs(path, &v) < 0 || stat(path, &st) < 0)
        return UINT64_MAX;
    *dev = st.st_dev;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

int job_preflight_space(struct job *j)
{
    char a[32], b[32];
    dev_t dump_dev = 0, data_dev = 0;
    uint64_t dump_need = j->table_bytes + (64u << 20);
    uint64_t dump_free = free_bytes(j->workdir, &dump_dev);
    if (j->local_leader) {
        uint64_t data_need = j->src_size + j->src_size / 10 + (64u << 20);
        uint64_t data_free = free_bytes(j->cfg->postgresql.data_dir, &data_dev);
        if (data_dev == dump_dev && data_free != UINT64_MAX) {
            data_need += dump_need;
        }
        if (data_free < data_need)
            return job_fail(j, MIG_EXIT_FAILED,
                            "not enough disk space for the copy: %s needs about %s free (the "
                            "database and the dump), it has %s",
                            j->cfg->postgresql.data_dir, mig_fmt_bytes(data_need, a, sizeof(a)),
                            mig_fmt_bytes(data_free, b, sizeof(b)));
        if (data_dev == dump_dev)
            return 0;
    }
    if (dump_free < dump_need)
        return job_fail(j, MIG_EXIT_FAILED,
                        "not enough disk space for the dump: %s needs about %s free, it has %s",
                        j->workdir, mig_fmt_bytes(dump_need, a, sizeof(a)),
                        mig_fmt_bytes(dump_free, b, sizeof(b)));
    return 0;
}

int job_confirm(struct job *j)
{
    char sz[32];
    char how[600];
    if (j->o.online)
        snprintf(how, sizeof(how),
                 "  how    logical replication: the schema now, then a publication on the "
                 "source and a subscription in the cluster copy the data and follow the "
                 "source's changes\n"
                 "  note   the application keeps running on the source; when the copy streams, "
                 "stop its writes and run `pgwarden migrate cutover`\n");
    else
        snprintf(how, sizeof(how),
                 "  how    pg_dump/pg_restore with %d job%s, then verification of row counts%s\n"
                 "  note   the copy is a snapshot of the source taken now: stop the "
                 "application's writes first (Heroku: heroku maintenance:on)\n",
                 j->o.jobs, j->o.jobs == 1 ? "" : "s", j->o.checksums ? " and row checksums" : "");
    fprintf(stderr,
            "migration %" PRId64 ":\n"
            "  from   %s (PostgreSQL %s, %s, %zu tables)\n"
            "  to     database %s on the cluster's leader via %s:%u (PostgreSQL %d)%s\n"
            "%s",
            j->id, j->shown, j->src_ver_s, mig_fmt_bytes(j->src_size, sz, sizeof(sz)), j->ntables,
            j->o.to, j->tgt.host, (unsigned)j->tgt.port, j->tgt_ver / 10000,
            j->target_exists
                ? (j->o.replace ? " (REPLACES the existing database)" : " (existing, empty)")
                : "",
            how);
    if (j->o.yes)
        return 0;
    if (!isatty(STDIN_FILENO)) {
        if (j->o.replace)
            return job_fail(j, MIG_EXIT_USAGE,
                            "--replace drops the existing database %s: confirm with --yes",
                            j->o.to);
        return 0;
    }
    fprintf(stderr, "Proceed? [y/N] ");
    fflush(stderr);
    struct pollfd pf[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                           {.fd = j->sigfd, .events = POLLIN}};
    char ans[16] = "";
    if (poll(pf, 2, -1) > 0 && (pf[0].revents & POLLIN) && !(pf[1].revents & POLLIN)) {
        ssize_t n = read(STDIN_FILENO, ans, sizeof(ans) - 1);
        ans[n > 0 ? n : 0] = '\0';
    }
    if (ans[0] != 'y' && ans[0] != 'Y')
        return job_fail(j, MIG_EXIT_FAILED, "not confirmed: nothing was changed");
    return 0;
}
