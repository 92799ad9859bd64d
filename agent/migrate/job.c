/* Migration job: preflight, snapshot, pg_dump, pg_restore, verification, finish or clean up. */
#define LOG_MODULE "migrate"
#include "agent/migrate/mig_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "agent/settings.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/config.h"
#include "platform/log.h"

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

extern char **environ;

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
    uint64_t phase_ms[MIG_PH_FAILED + 1]; /* time spent in each phase */
    struct mig_child child;
    uint64_t inflight;
    int exit_code;
    char err[2048];
    char *report_json;
    struct mig_report rep;
};

static int fail(struct job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct job *j, int code, const char *fmt, ...)
{
    char msg[sizeof(j->err)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_redact(msg, j->err, sizeof(j->err));
    j->exit_code = code;
    return -1;
}

/* An error from mig_connect/mig_exec: unreachable (69) or failed (1); interrupted (1). */
static int fail_rc(struct job *j, int rc, const char *what, const char *msg)
{
    if (rc == -ECANCELED)
        return fail(j, MIG_EXIT_FAILED, "interrupted (%s)", what);
    return fail(j, MIG_EXIT_FAILED, "%s: %s", what, msg);
}

static uint64_t now_ms(void)
{
    return clock_mono_ms();
}

/* ---- progress ---- */

static void store_progress(struct job *j, bool force)
{
    uint64_t now = now_ms();
    if (!force && now < j->last_store_ms + STORE_EVERY_MS)
        return;
    j->last_store_ms = now;
    store_migration_progress(j->st, j->id, clock_wall_ms(), mig_phase_name(j->prog.phase),
                             (int64_t)j->prog.bytes_done, (int64_t)j->prog.bytes_total,
                             (int64_t)j->prog.tables_done, (int64_t)j->prog.tables_total);
}

static void show_progress(struct job *j, bool final)
{
    store_progress(j, final);
    if (!j->show)
        return;
    uint64_t now = now_ms();
    char line[300];
    if (j->tty) {
        mig_progress_line(&j->prog, now, 30, line, sizeof(line));
        fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
    } else if (final || now >= j->last_print_ms + PLAIN_EVERY_MS) {
        mig_progress_line(&j->prog, now, 0, line, sizeof(line));
        fprintf(stderr, "progress: %s\n", line);
        j->last_print_ms = now;
    }
    fflush(stderr);
}

static void phase(struct job *j, enum mig_phase ph, uint64_t bytes_total, uint64_t tables_total)
{
    j->phase_ms[j->prog.phase] += now_ms() - j->prog.phase_start_ms;
    mig_progress_phase(&j->prog, ph, now_ms());
    j->prog.bytes_total = bytes_total;
    j->prog.tables_total = tables_total;
    j->last_print_ms = 0;
    store_progress(j, true);
}

static void tables_reset(struct job *j)
{
    for (size_t i = 0; i < j->ntables; i++)
        j->tables[i].started = j->tables[i].done = false;
    j->inflight = 0;
}

static void tables_sample(struct job *j)
{
    uint64_t done = 0, n = 0;
    for (size_t i = 0; i < j->ntables; i++) {
        if (j->tables[i].done) {
            done += j->tables[i].bytes;
            n++;
        }
    }
    done += j->inflight;
    if (j->prog.bytes_total && done >= j->prog.bytes_total)
        done = j->prog.bytes_total - 1; /* 100 % only when the tool has finished */
    j->prog.tables_done = n;
    mig_progress_sample(&j->prog, done, now_ms());
}

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
static int run_tool(struct job *j, const char *tool, const char *const *argv, PGconn *progress_c,
                    int progress_ver, const char *progress_app)
{
    int rc = mig_child_start(&j->child, argv);
    if (rc < 0)
        return fail(j, MIG_EXIT_FAILED, "cannot start %s: %s", tool, strerror(-rc));
    uint64_t deadline = j->o.timeout_s ? j->start_ms + (uint64_t)j->o.timeout_s * 1000 : 0;
    uint64_t last_poll = 0;
    bool eof = false;
    for (;;) {
        struct pollfd pf[2] = {{.fd = j->child.fd, .events = POLLIN},
                               {.fd = j->sigfd, .events = POLLIN}};
        int pr = poll(pf, 2, eof ? 100 : 1000);
        if (pr > 0 && (pf[1].revents & POLLIN)) {
            mig_child_kill(&j->child);
            return fail(j, MIG_EXIT_FAILED, "interrupted during %s: %s stopped",
                        mig_phase_name(j->prog.phase), tool);
        }
        if (pr > 0 && pf[0].revents)
            eof = mig_child_read(&j->child, on_tool_line, j) == 1;
        if (eof && mig_child_reap(&j->child))
            break;
        uint64_t now = now_ms();
        if (deadline && now > deadline) {
            mig_child_kill(&j->child);
            return fail(j, MIG_EXIT_FAILED, "%s did not finish within --timeout %d s: stopped",
                        tool, j->o.timeout_s);
        }
        if (now >= last_poll + 1000) {
            last_poll = now;
            char err[512];
            /* the snapshot must stay: the verification reads the source through it */
            if (j->snapshot[0] &&
                mig_exec_cmd(j->snap, "SELECT 1", PROGRESS_QUERY_MS, -1, err, sizeof(err)) < 0) {
                mig_child_kill(&j->child);
                return fail(j, MIG_EXIT_FAILED, "lost the connection to the source during %s: %s",
                            mig_phase_name(j->prog.phase), err);
            }
            if (progress_c)
                poll_inflight(j, progress_c, progress_ver, progress_app);
            tables_sample(j);
            show_progress(j, false);
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
        return fail(j, MIG_EXIT_FAILED, "%s %s: %s", tool, what, why);
    }
    for (size_t i = 0; i < j->ntables; i++)
        j->tables[i].done = true;
    j->inflight = 0;
    tables_sample(j);
    j->prog.bytes_done = j->prog.bytes_total;
    show_progress(j, true);
    return 0;
}

/* ---- setup ---- */

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? errno : 0;
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (path[0] && lstat(path, &st) == 0)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_passfile(struct job *j, const char *src_password)
{
    char buf[4 * (MIG_STR * 2 + 16)], line[2 * (MIG_STR * 2 + 16)];
    size_t o = 0;
    buf[0] = '\0';
    if (src_password[0] && mig_passfile_line(j->src.host, j->src.port, j->src.user, src_password,
                                             line, sizeof(line)) == 0)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s", line);
    if (j->cfg->postgresql.superuser_password[0] &&
        mig_passfile_line(j->tgt.host, j->tgt.port, j->tgt.user,
                          j->cfg->postgresql.superuser_password, line, sizeof(line)) == 0 &&
        o < sizeof(buf))
        snprintf(buf + o, sizeof(buf) - o, "%s", line);
    explicit_bzero(line, sizeof(line));
    int fd = open(j->passfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = fd < 0 ? -errno : 0;
    size_t len = strnlen(buf, sizeof(buf));
    if (rc == 0 && write(fd, buf, len) != (ssize_t)len)
        rc = -EIO;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

static int conninfo_src(struct job *j, const char *suffix, char *out, size_t cap)
{
    char app[96];
    snprintf(app, sizeof(app), "%s%s", j->app, suffix);
    return mig_url_conninfo(&j->src, NULL, j->passfile, app, out, cap);
}

static int conninfo_tgt(struct job *j, const char *db, const char *suffix, char *out, size_t cap)
{
    char app[96];
    snprintf(app, sizeof(app), "%s%s", j->app, suffix);
    return mig_url_conninfo(&j->tgt, db, j->passfile, app, out, cap);
}

static int scalar_int(PGconn *c, int sigfd, const char *sql, int nparams, const char *const *params,
                      long long *out, char *err, size_t cap)
{
    PGresult *r = NULL;
    int rc = mig_exec(c, sql, nparams, params, QUERY_MS, sigfd, &r, NULL, err, cap);
    if (rc < 0)
        return rc;
    *out = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

static bool pid_alive(int64_t pid)
{
    return pid > 0 && pid <= INT_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static bool final_state(const char *s)
{
    return strcmp(s, "done") == 0 || strcmp(s, "failed") == 0;
}

/* A job left "running" by a migrate process that died: mark it failed, drop its staging. */
static void adopt_stale(struct job *j)
{
    struct store_migration *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    if (store_migration_get(j->st, 0, m) && !final_state(m->state) && !pid_alive(m->pid)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "interrupted: the migrate process (pid %" PRId64 ") ended during %s", m->pid,
                 m->state);
        store_migration_finish(j->st, m->id, clock_wall_ms(), "failed", msg, NULL);
        snprintf(j->stale_staging, sizeof(j->stale_staging), "%s", m->staging_db);
        fprintf(stderr, "note: migration %" PRId64 " was %s; it is now marked failed\n", m->id,
                msg);
    }
    free(m);
}

/* ---- preflight ---- */

static int preflight_source(struct job *j)
{
    char ci[CONNINFO_CAP], err[1024];
    if (conninfo_src(j, "", ci, sizeof(ci)) < 0)
        return fail(j, MIG_EXIT_USAGE, "the source URL is too long");
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, &j->snap, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ECANCELED)
            return fail(j, MIG_EXIT_FAILED, "interrupted");
        return fail(j, MIG_EXIT_UNAVAILABLE, "cannot connect to the source %s: %s", j->shown, err);
    }
    PGresult *r = NULL;
    rc = mig_exec(j->snap,
                  "SELECT current_setting('server_version_num')::int, "
                  "pg_database_size(current_database()), pg_encoding_to_char(encoding), "
                  "datcollate, datctype, current_setting('server_version') FROM pg_database "
                  "WHERE datname = current_database()",
                  0, NULL, QUERY_MS, j->sigfd, &r, NULL, err, sizeof(err));
    if (rc < 0)
        return fail_rc(j, rc, "source preflight query", err);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return fail(j, MIG_EXIT_FAILED, "source preflight: the database is not in pg_database");
    }
    j->src_ver = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    j->src_size = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    snprintf(j->enc, sizeof(j->enc), "%s", PQgetvalue(r, 0, 2));
    snprintf(j->collate, sizeof(j->collate), "%s", PQgetvalue(r, 0, 3));
    snprintf(j->ctype, sizeof(j->ctype), "%s", PQgetvalue(r, 0, 4));
    snprintf(j->src_ver_s, sizeof(j->src_ver_s), "%s", PQgetvalue(r, 0, 5));
    PQclear(r);
    if (j->src_ver < MIN_SOURCE_VERSION)
        return fail(j, MIG_EXIT_FAILED,
                    "the source runs PostgreSQL %s: pgwarden migrate needs 10 or later",
                    j->src_ver_s);
    rc = mig_tables_list(j->snap, j->sigfd, &j->tables, &j->ntables, err, sizeof(err));
    if (rc < 0)
        return fail_rc(j, rc, "listing the source's tables", err);
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
        return fail_rc(j, rc, "listing the source's extensions", err);
    rc = mig_exec(j->admin, "SELECT name FROM pg_available_extensions", 0, NULL, QUERY_MS, j->sigfd,
                  &t, NULL, err, sizeof(err));
    if (rc < 0) {
        PQclear(s);
        return fail_rc(j, rc, "listing the cluster's extensions", err);
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
        return fail(j, MIG_EXIT_FAILED,
                    "the cluster lacks extensions that the source uses: %s (install them on "
                    "every node, e.g. the postgresql-15-<name> package, then retry)",
                    missing);
    return 0;
}

static int drop_database(struct job *j, const char *name, bool force, char *err, size_t cap)
{
    char q[200], sql[300];
    mig_quote_ident(j->admin, name, q, sizeof(q));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s%s", q, force ? " WITH (FORCE)" : "");
    return mig_exec_cmd(j->admin, sql, QUERY_MS, -1, err, cap);
}

static int preflight_target(struct job *j)
{
    char ci[CONNINFO_CAP], err[1024];
    if (conninfo_tgt(j, "postgres", "", ci, sizeof(ci)) < 0)
        return fail(j, MIG_EXIT_CONFIG, "the cluster's connection settings are too long");
    int rc = mig_connect(ci, CONNECT_MS, j->sigfd, &j->admin, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ECANCELED)
            return fail(j, MIG_EXIT_FAILED, "interrupted");
        return fail(j, MIG_EXIT_UNAVAILABLE,
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
        return fail_rc(j, rc, "cluster preflight query", err);
    j->tgt_ver = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    char real_cfg[PATH_MAX];
    bool same_dir = realpath(j->cfg->postgresql.data_dir, real_cfg) &&
                    strcmp(real_cfg, PQgetvalue(r, 0, 1)) == 0;
    j->local_leader =
        same_dir && strtol(PQgetvalue(r, 0, 2), NULL, 10) == (long)j->cfg->postgresql.listen.port;
    bool standby = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    PQclear(r);
    if (standby)
        return fail(j, MIG_EXIT_UNAVAILABLE,
                    "the read-write forwarder %s:%u leads to a standby: the cluster has no "
                    "writable leader now",
                    j->tgt.host, (unsigned)j->tgt.port);
    if (j->src_ver / 10000 > j->tgt_ver / 10000)
        return fail(j, MIG_EXIT_FAILED,
                    "the source runs PostgreSQL %s, newer than the cluster's %d: its pg_dump "
                    "cannot read it",
                    j->src_ver_s, j->tgt_ver / 10000);
    if (j->stale_staging[0]) {
        if (drop_database(j, j->stale_staging, true, err, sizeof(err)) == 0)
            fprintf(stderr, "note: dropped %s, left by the interrupted migration\n",
                    j->stale_staging);
    }
    if (missing_extensions(j) < 0)
        return -1;
    const char *p[1] = {j->o.to};
    long long exists = 0;
    rc = scalar_int(j->admin, j->sigfd, "SELECT count(*) FROM pg_database WHERE datname = $1", 1, p,
                    &exists, err, sizeof(err));
    if (rc < 0)
        return fail_rc(j, rc, "checking the target database", err);
    j->target_exists = exists > 0;
    if (!j->target_exists)
        return 0;
    PGconn *c = NULL;
    if (conninfo_tgt(j, j->o.to, "", ci, sizeof(ci)) < 0 ||
        mig_connect(ci, CONNECT_MS, j->sigfd, &c, err, sizeof(err)) < 0)
        return fail(j, MIG_EXIT_FAILED, "the target database %s exists but cannot be opened: %s",
                    j->o.to, err);
    long long objects = 0;
    rc = scalar_int(c, j->sigfd,
                    "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%') "
                    "+ (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = "
                    "p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) "
                    "+ (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')",
                    0, NULL, &objects, err, sizeof(err));
    PQfinish(c);
    if (rc < 0)
        return fail_rc(j, rc, "checking the target database", err);
    if (objects > 0 && !j->o.replace)
        return fail(j, MIG_EXIT_FAILED,
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

static int preflight_space(struct job *j)
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
            return fail(j, MIG_EXIT_FAILED,
                        "not enough disk space for the copy: %s needs about %s free (the "
                        "database and the dump), it has %s",
                        j->cfg->postgresql.data_dir, mig_fmt_bytes(data_need, a, sizeof(a)),
                        mig_fmt_bytes(data_free, b, sizeof(b)));
        if (data_dev == dump_dev)
            return 0;
    }
    if (dump_free < dump_need)
        return fail(j, MIG_EXIT_FAILED,
                    "not enough disk space for the dump: %s needs about %s free, it has %s",
                    j->workdir, mig_fmt_bytes(dump_need, a, sizeof(a)),
                    mig_fmt_bytes(dump_free, b, sizeof(b)));
    return 0;
}

static int confirm(struct job *j)
{
    char sz[32];
    fprintf(stderr,
            "migration %" PRId64 ":\n"
            "  from   %s (PostgreSQL %s, %s, %zu tables)\n"
            "  to     database %s on the cluster's leader via %s:%u (PostgreSQL %d)%s\n"
            "  how    pg_dump/pg_restore with %d job%s, then verification of row counts%s\n"
            "  note   the copy is a snapshot of the source taken now: stop the application's "
            "writes first (Heroku: heroku maintenance:on)\n",
            j->id, j->shown, j->src_ver_s, mig_fmt_bytes(j->src_size, sz, sizeof(sz)), j->ntables,
            j->o.to, j->tgt.host, (unsigned)j->tgt.port, j->tgt_ver / 10000,
            j->target_exists
                ? (j->o.replace ? " (REPLACES the existing database)" : " (existing, empty)")
                : "",
            j->o.jobs, j->o.jobs == 1 ? "" : "s", j->o.checksums ? " and row checksums" : "");
    if (j->o.yes)
        return 0;
    if (!isatty(STDIN_FILENO)) {
        if (j->o.replace)
            return fail(j, MIG_EXIT_USAGE,
                        "--replace drops the existing database %s: confirm with --yes", j->o.to);
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
        return fail(j, MIG_EXIT_FAILED, "not confirmed: nothing was changed");
    return 0;
}

/* ---- copy ---- */

static int take_snapshot(struct job *j)
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
        return fail_rc(j, rc, "exporting a snapshot of the source", err);
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

static int dump(struct job *j)
{
    char ci[CONNINFO_CAP], jobs[16], snap[160], pg_dump[PGW_PATH_MAX + 16];
    snprintf(pg_dump, sizeof(pg_dump), "%s/pg_dump", j->cfg->postgresql.bin_dir);
    snprintf(jobs, sizeof(jobs), "%d", j->o.jobs);
    snprintf(snap, sizeof(snap), "--snapshot=%s", j->snapshot);
    if (conninfo_src(j, "-dump", ci, sizeof(ci)) < 0)
        return fail(j, MIG_EXIT_USAGE, "the source URL is too long");
    const char *argv[] = {pg_dump,
                          "--format=directory",
                          "--jobs",
                          jobs,
                          "--file",
                          j->dumpdir,
                          "--verbose",
                          "--no-password",
                          "--dbname",
                          ci,
                          j->snapshot[0] ? snap : NULL,
                          NULL};
    phase(j, MIG_PH_DUMP, j->table_bytes, j->ntables);
    tables_reset(j);
    char app[96];
    snprintf(app, sizeof(app), "%s-dump", j->app);
    return run_tool(j, "pg_dump", argv, j->snap, j->src_ver, app);
}

static int create_staging(struct job *j)
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
        return fail_rc(j, rc, "creating the staging database on the leader", err);
    j->staging_created = true;
    store_migration_staging(j->st, j->id, j->staging);
    return 0;
}

static int restore(struct job *j)
{
    char ci[CONNINFO_CAP], jobs[16], pg_restore[PGW_PATH_MAX + 16];
    if (create_staging(j) < 0)
        return -1;
    snprintf(pg_restore, sizeof(pg_restore), "%s/pg_restore", j->cfg->postgresql.bin_dir);
    snprintf(jobs, sizeof(jobs), "%d", j->o.jobs);
    if (conninfo_tgt(j, j->staging, "-restore", ci, sizeof(ci)) < 0)
        return fail(j, MIG_EXIT_CONFIG, "the cluster's connection settings are too long");
    const char *argv[] = {
        pg_restore,  "--jobs",        jobs,       "--no-owner", "--no-acl", "--exit-on-error",
        "--verbose", "--no-password", "--dbname", ci,           j->dumpdir, NULL};
    phase(j, MIG_PH_RESTORE, j->table_bytes, j->ntables);
    tables_reset(j);
    char app[96];
    snprintf(app, sizeof(app), "%s-restore", j->app);
    return run_tool(j, "pg_restore", argv, j->admin, j->tgt_ver, app);
}

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
static int verify_conn(struct job *j, bool source, PGconn **out, char *err, size_t cap)
{
    char ci[CONNINFO_CAP];
    int rc = source ? conninfo_src(j, "-verify", ci, sizeof(ci))
                    : conninfo_tgt(j, j->staging, "-verify", ci, sizeof(ci));
    if (rc < 0) {
        snprintf(err, cap, "connection settings too long");
        return rc;
    }
    rc = mig_connect(ci, CONNECT_MS, j->sigfd, out, err, cap);
    if (rc == 0)
        rc = mig_exec_cmd(*out, MIG_SESSION_SQL, QUERY_MS, j->sigfd, err, cap);
    if (rc == 0 && source)
        rc = mig_exec_cmd(*out, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", QUERY_MS,
                          j->sigfd, err, cap);
    if (rc == 0 && source && j->snapshot[0]) {
        char sql[256];
        snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", j->snapshot);
        rc = mig_exec_cmd(*out, sql, QUERY_MS, j->sigfd, err, cap);
    }
    return rc;
}

static int verify_open(struct job *j, struct verify_conns *v)
{
    char err[1024];
    for (int i = 0; i < j->o.jobs; i++) {
        PGconn *c = NULL;
        int rc = verify_conn(j, true, &c, err, sizeof(err));
        if (c)
            v->src[v->nsrc++] = c;
        if (rc < 0)
            return fail_rc(j, rc, "opening verification connections to the source", err);
        c = NULL;
        rc = verify_conn(j, false, &c, err, sizeof(err));
        if (c)
            v->dst[v->ndst++] = c;
        if (rc < 0)
            return fail_rc(j, rc, "opening verification connections to the copy", err);
    }
    return 0;
}

static void verify_tick(void *ctx, size_t done, size_t total)
{
    struct job *j = ctx;
    j->prog.tables_total = total;
    j->prog.tables_done = done;
    mig_progress_sample(&j->prog, 0, now_ms());
    show_progress(j, false);
}

static int verify(struct job *j)
{
    struct verify_conns v = {0};
    struct mig_inventory src, dst;
    struct mig_table *st = NULL, *dt = NULL;
    size_t nst = 0, ndt = 0;
    char err[1024];
    int rc = -1;
    mig_inventory_init(&src);
    mig_inventory_init(&dst);
    phase(j, MIG_PH_VERIFY, 0, 2 * j->ntables);
    if (verify_open(j, &v) < 0)
        goto out;
    const char *tamper = getenv(TAMPER_ENV);
    if (tamper && *tamper) {
        fprintf(stderr, "warning: test hook %s: changing the copy before verification\n",
                TAMPER_ENV);
        mig_exec_cmd(v.dst[0], tamper, QUERY_MS, j->sigfd, err, sizeof(err));
    }
    int r = mig_tables_list(v.src[0], j->sigfd, &st, &nst, err, sizeof(err));
    if (r == 0)
        r = mig_inventory_catalog(v.src[0], j->sigfd, &src, err, sizeof(err));
    if (r < 0) {
        fail_rc(j, r, "reading the source's catalog", err);
        goto out;
    }
    r = mig_tables_list(v.dst[0], j->sigfd, &dt, &ndt, err, sizeof(err));
    if (r == 0)
        r = mig_inventory_catalog(v.dst[0], j->sigfd, &dst, err, sizeof(err));
    if (r < 0) {
        fail_rc(j, r, "reading the copy's catalog", err);
        goto out;
    }
    struct mig_side sides[2] = {
        {.what = "source",
         .conns = v.src,
         .nconns = v.nsrc,
         .tables = st,
         .ntables = nst,
         .inv = &src},
        {.what = "copy",
         .conns = v.dst,
         .nconns = v.ndst,
         .tables = dt,
         .ntables = ndt,
         .inv = &dst},
    };
    r = mig_tables_check(sides, 2, j->o.checksums, j->sigfd, verify_tick, j, err, sizeof(err));
    if (r < 0) {
        fail_rc(j, r, "verification", err);
        goto out;
    }
    show_progress(j, true);
    int nd = mig_compare(&src, &dst, &j->rep);
    if (nd < 0) {
        fail(j, MIG_EXIT_FAILED, "verification: out of memory");
        goto out;
    }
    j->report_json = mig_report_json(&j->rep, 200);
    mig_report_print(&j->rep, 50, stdout);
    fflush(stdout);
    if (nd > 0) {
        fail(j, MIG_EXIT_FAILED,
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

static int finish(struct job *j)
{
    char err[1024], q[200], q2[200], sql[500];
    phase(j, MIG_PH_FINISH, 0, 0);
    if (j->snap) {
        PQfinish(j->snap); /* ends the snapshot's transaction */
        j->snap = NULL;
    }
    if (j->target_exists && drop_database(j, j->o.to, j->o.replace, err, sizeof(err)) < 0)
        return fail(j, MIG_EXIT_FAILED,
                    "cannot drop the existing database %s to put the copy in its place: %s",
                    j->o.to, err);
    mig_quote_ident(j->admin, j->staging, q, sizeof(q));
    mig_quote_ident(j->admin, j->o.to, q2, sizeof(q2));
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s", q, q2);
    int rc = mig_exec_cmd(j->admin, sql, QUERY_MS, -1, err, sizeof(err));
    if (rc < 0)
        return fail(j, MIG_EXIT_FAILED, "cannot rename %s to %s: %s", j->staging, j->o.to, err);
    j->staging_created = false;
    return 0;
}

/* On failure: the staging database is dropped, or marked when it cannot be. */
static void cleanup_staging(struct job *j)
{
    char err[1024] = "no connection to the leader";
    if (!j->staging_created)
        return;
    if (!j->admin || PQstatus(j->admin) != CONNECTION_OK) {
        char ci[CONNINFO_CAP];
        PQfinish(j->admin);
        j->admin = NULL;
        if (conninfo_tgt(j, "postgres", "", ci, sizeof(ci)) == 0)
            mig_connect(ci, CONNECT_MS, -1, &j->admin, err, sizeof(err));
    }
    if (j->admin && drop_database(j, j->staging, true, err, sizeof(err)) == 0) {
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

static void print_done(struct job *j)
{
    char host[256], sz[32], dur[32];
    const char *h = j->cfg->proxy.rw_listen.host;
    if (!h[0] || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0) {
        if (gethostname(host, sizeof(host)) < 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
    } else {
        snprintf(host, sizeof(host), strchr(h, ':') ? "[%s]" : "%s", h);
    }
    char user[3 * MIG_STR], db[3 * MIG_STR];
    struct mig_url u = {0};
    snprintf(u.user, sizeof(u.user), "%s", j->cfg->postgresql.superuser);
    snprintf(u.dbname, sizeof(u.dbname), "%s", j->o.to);
    snprintf(u.host, sizeof(u.host), "x");
    char tmp[MIG_DISPLAY_MAX];
    mig_url_display(&u, tmp, sizeof(tmp)); /* postgres://USER@x:0/DB, percent-encoded */
    char *at = strchr(tmp + 11, '@');
    char *slash = at ? strchr(at, '/') : NULL;
    snprintf(user, sizeof(user), "%.*s", at ? (int)(at - tmp - 11) : 0, tmp + 11);
    snprintf(db, sizeof(db), "%s", slash ? slash + 1 : "");
    printf("\nmigration %" PRId64 " done in %s: %s (%s, %zu table%s, %" PRIu64
           " rows) is in the cluster and verified.\n\n",
           j->id, mig_fmt_duration((int64_t)((now_ms() - j->start_ms) / 1000), dur, sizeof(dur)),
           j->o.to, mig_fmt_bytes(j->src_size, sz, sizeof(sz)), j->rep.tables,
           j->rep.tables == 1 ? "" : "s", j->rep.rows);
    printf("times: preflight %.1f s, dump %.1f s, restore %.1f s, verify %.1f s, finish %.1f s\n\n",
           (double)j->phase_ms[MIG_PH_PREFLIGHT] / 1000, (double)j->phase_ms[MIG_PH_DUMP] / 1000,
           (double)j->phase_ms[MIG_PH_RESTORE] / 1000, (double)j->phase_ms[MIG_PH_VERIFY] / 1000,
           (double)j->phase_ms[MIG_PH_FINISH] / 1000);
    printf("DATABASE_URL=postgres://%s@%s:%u/%s\n\n", user, host,
           (unsigned)j->cfg->proxy.rw_listen.port, db);
    printf("This goes through the cluster's read-write forwarder, which always reaches the "
           "current leader.\nAdd the password of %s (postgres://%s:PASSWORD@...), or create an "
           "application role.\n\nFor a Heroku app:\n"
           "  heroku addons:destroy heroku-postgresql -a APP   # remove the Postgres add-on "
           "(it owns DATABASE_URL)\n"
           "  heroku config:set DATABASE_URL='postgres://%s:PASSWORD@%s:%u/%s' -a APP\n"
           "  heroku maintenance:off -a APP\n",
           j->cfg->postgresql.superuser, user, user, host, (unsigned)j->cfg->proxy.rw_listen.port,
           db);
    fflush(stdout);
}

static void event(struct job *j, const char *what)
{
    char *d = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&d, &n);
    if (!f)
        return;
    fprintf(f, "{\"migration\":%" PRId64 ",\"what\":\"%s\",\"target\":\"", j->id, what);
    for (const char *p = j->o.to; *p; p++)
        fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 0x20 ? "?" : "%c"),
                *p);
    fprintf(f, "\"}");
    fclose(f);
    store_event_add(j->st, clock_wall_ms(), "migration", j->cfg->node.name, 0, d, NULL);
    free(d);
}

/* ---- entry ---- */

static int setup_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

static int load_config(struct job *j)
{
    const char *path = j->o.config ? j->o.config : getenv("PGWARDEN_CONFIG");
    if (!path)
        path = DEFAULT_CONFIG;
    struct cfg_errors *errs = calloc(1, sizeof(*errs));
    j->cfg = calloc(1, sizeof(*j->cfg));
    if (!errs || !j->cfg) {
        free(errs);
        return fail(j, MIG_EXIT_FAILED, "out of memory");
    }
    bool ok = settings_load(path, environ, j->cfg, errs);
    if (!ok) {
        cfg_errors_print(errs, stderr);
        free(errs);
        return fail(j, MIG_EXIT_CONFIG, "%s: bad config file", path);
    }
    free(errs);
    return 0;
}

static int prepare(struct job *j, char *password)
{
    char err[2048];
    struct stat sd;
    /* root would leave root-owned files (SQLite -wal/-shm, dumps) that the node cannot use */
    if (geteuid() == 0 && stat(j->cfg->node.state_dir, &sd) == 0 && sd.st_uid != 0)
        return fail(j, MIG_EXIT_USAGE,
                    "run pgwarden migrate as the user that owns %s (uid %u), e.g. sudo -u "
                    "postgres pgwarden migrate ...",
                    j->cfg->node.state_dir, (unsigned)sd.st_uid);
    j->st = store_open(j->cfg->node.state_dir, err, sizeof(err));
    if (!j->st)
        return fail(j, MIG_EXIT_FAILED, "cannot open the node's store: %s", err);
    adopt_stale(j);
    if (!store_migration_start(j->st, clock_wall_ms(), j->shown, j->o.to, "dump", getpid(), &j->id))
        return fail(j, MIG_EXIT_FAILED, "cannot record the job in %s", store_path(j->st));
    event(j, "started");
    snprintf(j->app, sizeof(j->app), "pgwarden-migrate-%" PRId64, j->id);
    snprintf(j->staging, sizeof(j->staging), "pgwarden_migrate_%" PRId64, j->id);
    char base[PATH_CAP];
    snprintf(base, sizeof(base), "%s/migrate", j->cfg->node.state_dir);
    int n = snprintf(j->workdir, sizeof(j->workdir), "%s/%" PRId64, base, j->id);
    if (n < 0 || (size_t)n >= sizeof(j->workdir) - 16)
        return fail(j, MIG_EXIT_CONFIG, "state_dir is too long");
    snprintf(j->passfile, sizeof(j->passfile), "%s/pgpass", j->workdir);
    snprintf(j->dumpdir, sizeof(j->dumpdir), "%s/dump", j->workdir);
    remove_tree(j->workdir); /* a leftover of a job with the same id (a recreated store) */
    int rc = make_dir(base);
    if (rc == 0)
        rc = make_dir(j->workdir);
    if (rc < 0)
        return fail(j, MIG_EXIT_FAILED, "cannot create %s: %s", j->workdir, strerror(-rc));
    /* the cluster: through this node's read-write forwarder, as the superuser */
    const char *h = j->cfg->proxy.rw_listen.host;
    snprintf(j->tgt.host, sizeof(j->tgt.host), "%s",
             !h[0] || strcmp(h, "0.0.0.0") == 0 ? "127.0.0.1"
             : strcmp(h, "::") == 0             ? "::1"
                                                : h);
    j->tgt.port = j->cfg->proxy.rw_listen.port;
    snprintf(j->tgt.user, sizeof(j->tgt.user), "%s", j->cfg->postgresql.superuser);
    snprintf(j->tgt.dbname, sizeof(j->tgt.dbname), "postgres");
    j->tgt.nparams = 2;
    snprintf(j->tgt.keys[0], sizeof(j->tgt.keys[0]), "sslmode");
    snprintf(j->tgt.vals[0], sizeof(j->tgt.vals[0]), "prefer");
    snprintf(j->tgt.keys[1], sizeof(j->tgt.keys[1]), "gssencmode");
    snprintf(j->tgt.vals[1], sizeof(j->tgt.vals[1]), "disable");
    rc = write_passfile(j, password);
    explicit_bzero(password, MIG_STR);
    if (rc < 0)
        return fail(j, MIG_EXIT_FAILED, "cannot write the passfile %s: %s", j->passfile,
                    strerror(-rc));
    return 0;
}

static int run(struct job *j)
{
    if (preflight_source(j) < 0 || preflight_target(j) < 0 || preflight_space(j) < 0 ||
        confirm(j) < 0)
        return -1;
    if (take_snapshot(j) < 0 || dump(j) < 0 || restore(j) < 0 || verify(j) < 0 || finish(j) < 0)
        return -1;
    return 0;
}

static int migrate_run(struct mig_opts *o)
{
    struct job *j = calloc(1, sizeof(*j));
    char password[MIG_STR];
    int code;
    if (!j) {
        fprintf(stderr, "pgwarden migrate: out of memory\n");
        return MIG_EXIT_FAILED;
    }
    j->o = *o;
    j->sigfd = -1;
    j->child.pid = -1;
    j->child.fd = -1;
    j->start_ms = now_ms();
    j->prog.phase_start_ms = j->start_ms;
    j->tty = isatty(STDERR_FILENO);
    j->show = !o->no_progress;
    char *from = o->from ? o->from : getenv("PGWARDEN_MIGRATE_FROM");
    if (!from) {
        fprintf(stderr, "pgwarden migrate: --from URL is required (or set "
                        "PGWARDEN_MIGRATE_FROM)\n");
        free(j);
        return MIG_EXIT_USAGE;
    }
    int rc = mig_url_parse(from, &j->src, password, sizeof(password), j->err, sizeof(j->err));
    mig_url_scrub(o->from); /* `ps` no longer shows the password */
    if (rc < 0) {
        explicit_bzero(password, sizeof(password));
        fprintf(stderr, "pgwarden migrate: %s\n", j->err);
        free(j);
        return MIG_EXIT_USAGE;
    }
    mig_url_display(&j->src, j->shown, sizeof(j->shown));
    if (o->online) {
        explicit_bzero(password, sizeof(password));
        fprintf(stderr, "pgwarden migrate --online: not available in this build (use the "
                        "dump mode: stop writes to the source, then migrate)\n");
        free(j);
        return MIG_EXIT_UNAVAILABLE;
    }
    j->sigfd = setup_signals();
    if (j->sigfd < 0 || load_config(j) < 0 || prepare(j, password) < 0) {
        explicit_bzero(password, sizeof(password));
        fprintf(stderr, "pgwarden migrate: %s\n", j->err[0] ? j->err : "cannot set up signals");
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
        if (j->id > 0) {
            store_migration_finish(j->st, j->id, clock_wall_ms(), "failed", j->err, NULL);
            remove_tree(j->workdir);
        }
        goto out;
    }
    rc = run(j);
    if (j->tty && j->show && rc < 0)
        fprintf(stderr, "\n");
    mig_child_kill(&j->child);
    if (j->snap) {
        PQfinish(j->snap);
        j->snap = NULL;
    }
    if (rc < 0)
        cleanup_staging(j);
    remove_tree(j->workdir);
    if (rc == 0) {
        phase(j, MIG_PH_DONE, 0, 0);
        j->prog.bytes_total = j->prog.bytes_done = j->table_bytes;
        j->prog.tables_total = j->prog.tables_done = j->ntables;
        store_progress(j, true);
        store_migration_finish(j->st, j->id, clock_wall_ms(), "done", "", j->report_json);
        event(j, "done");
        print_done(j);
        code = 0;
    } else {
        store_migration_finish(j->st, j->id, clock_wall_ms(), "failed", j->err, j->report_json);
        event(j, "failed");
        fprintf(stderr, "pgwarden migrate: migration %" PRId64 " FAILED: %s\n", j->id, j->err);
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
    }
out:
    PQfinish(j->admin);
    store_close(j->st);
    if (j->sigfd >= 0)
        close(j->sigfd);
    free(j->tables);
    free(j->report_json);
    mig_report_free(&j->rep);
    free(j->cfg);
    free(j);
    return code;
}

int migrate_main(int argc, char **argv)
{
    struct mig_opts o;
    char err[512];
    log_setup(LOG_LVL_ERROR, "migrate");
    if (mig_opts_parse(argc, argv, &o, err, sizeof(err)) < 0) {
        for (int i = 1; i < argc; i++) /* the password must not stay visible in `ps` */
            if (strstr(argv[i], "://"))
                mig_url_scrub(argv[i]);
        fprintf(stderr, "pgwarden migrate: %s (see pgwarden migrate --help)\n", err);
        return MIG_EXIT_USAGE;
    }
    switch (o.command) {
    case MIG_CMD_HELP:
        mig_usage(stdout);
        return 0;
    case MIG_CMD_STATUS:
        return mig_status_main(&o);
    case MIG_CMD_CUTOVER:
        fprintf(stderr, "pgwarden migrate cutover: not available in this build (the online "
                        "mode is not implemented yet)\n");
        return MIG_EXIT_UNAVAILABLE;
    case MIG_CMD_RUN:
        break;
    }
    return migrate_run(&o);
}
