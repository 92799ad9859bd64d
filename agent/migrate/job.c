/* Migration job: entry, setup, progress display and recording, the end of a job. */
#define LOG_MODULE "migrate"
#include "agent/migrate/job_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/settings.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"

extern char **environ;

int job_fail(struct job *j, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int job_fail(struct job *j, int code, const char *fmt, ...)
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
int job_fail_rc(struct job *j, int rc, const char *what, const char *msg)
{
    if (rc == -ECANCELED)
        return job_fail(j, MIG_EXIT_FAILED, "interrupted (%s)", what);
    return job_fail(j, MIG_EXIT_FAILED, "%s: %s", what, msg);
}

uint64_t job_now_ms(void)
{
    return clock_mono_ms();
}

/* ---- progress ---- */

void job_store_progress(struct job *j, bool force)
{
    uint64_t now = job_now_ms();
    if (!force && now < j->last_store_ms + STORE_EVERY_MS)
        return;
    j->last_store_ms = now;
    store_migration_progress(j->st, j->id, clock_wall_ms(), mig_phase_name(j->prog.phase),
                             (int64_t)j->prog.bytes_done, (int64_t)j->prog.bytes_total,
                             (int64_t)j->prog.tables_done, (int64_t)j->prog.tables_total);
}

void job_show_progress(struct job *j, bool final)
{
    job_store_progress(j, final);
    if (!j->show)
        return;
    uint64_t now = job_now_ms();
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

void job_phase(struct job *j, enum mig_phase ph, uint64_t bytes_total, uint64_t tables_total)
{
    j->phase_ms[j->prog.phase] += job_now_ms() - j->prog.phase_start_ms;
    mig_progress_phase(&j->prog, ph, job_now_ms());
    j->prog.bytes_total = bytes_total;
    j->prog.tables_total = tables_total;
    j->last_print_ms = 0;
    job_store_progress(j, true);
}

void job_tables_reset(struct job *j)
{
    for (size_t i = 0; i < j->ntables; i++)
        j->tables[i].started = j->tables[i].done = false;
    j->inflight = 0;
}

void job_tables_sample(struct job *j)
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
    mig_progress_sample(&j->prog, done, job_now_ms());
}
/* ---- setup ---- */

int job_make_dir(const char *path)
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

void job_remove_tree(const char *path)
{
    struct stat st;
    if (path[0] && lstat(path, &st) == 0)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int job_write_passfile(struct job *j, const char *src_password)
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
    if (unlink(j->passfile) < 0 && errno != ENOENT) {
        explicit_bzero(buf, sizeof(buf));
        return -errno;
    }
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

int job_conninfo_src(struct job *j, const char *suffix, char *out, size_t cap)
{
    char app[96];
    snprintf(app, sizeof(app), "%s%s", j->app, suffix);
    return mig_url_conninfo(&j->src, NULL, j->passfile, app, out, cap);
}

int job_conninfo_tgt(struct job *j, const char *db, const char *suffix, char *out, size_t cap)
{
    char app[96];
    snprintf(app, sizeof(app), "%s%s", j->app, suffix);
    return mig_url_conninfo(&j->tgt, db, j->passfile, app, out, cap);
}

int job_scalar_int(PGconn *c, int sigfd, const char *sql, int nparams, const char *const *params,
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

bool job_pid_alive(int64_t pid)
{
    return pid > 0 && pid <= INT_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

bool job_final_state(const char *s)
{
    return strcmp(s, "done") == 0 || strcmp(s, "failed") == 0;
}

/* A job left "running" by a migrate process that died: mark it failed, drop its staging. */
static void adopt_stale(struct job *j)
{
    struct store_migration *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    if (store_migration_get(j->st, 0, m) && !job_final_state(m->state) && !job_pid_alive(m->pid) &&
        !mig_job_online_lives(m)) {
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

void job_print_url(struct job *j)
{
    char host[256];
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

void job_print_done(struct job *j)
{
    char sz[32], dur[32];
    printf("\nmigration %" PRId64 " done in %s: %s (%s, %zu table%s, %" PRIu64
           " rows) is in the cluster and verified.\n\n",
           j->id,
           mig_fmt_duration((int64_t)((job_now_ms() - j->start_ms) / 1000), dur, sizeof(dur)),
           j->o.to, mig_fmt_bytes(j->src_size, sz, sizeof(sz)), j->rep.tables,
           j->rep.tables == 1 ? "" : "s", j->rep.rows);
    printf("times: preflight %.1f s, dump %.1f s, restore %.1f s, verify %.1f s, finish %.1f s\n\n",
           (double)j->phase_ms[MIG_PH_PREFLIGHT] / 1000, (double)j->phase_ms[MIG_PH_DUMP] / 1000,
           (double)j->phase_ms[MIG_PH_RESTORE] / 1000, (double)j->phase_ms[MIG_PH_VERIFY] / 1000,
           (double)j->phase_ms[MIG_PH_FINISH] / 1000);
    job_print_url(j);
}

void job_event(struct job *j, const char *what)
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

int job_setup_signals(void)
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

int job_load_config(struct job *j)
{
    const char *path = j->o.config ? j->o.config : getenv("PGWARDEN_CONFIG");
    if (!path)
        path = DEFAULT_CONFIG;
    struct cfg_errors *errs = calloc(1, sizeof(*errs));
    j->cfg = calloc(1, sizeof(*j->cfg));
    if (!errs || !j->cfg) {
        free(errs);
        return job_fail(j, MIG_EXIT_FAILED, "out of memory");
    }
    bool ok = settings_load(path, environ, j->cfg, errs);
    if (!ok) {
        cfg_errors_print(errs, stderr);
        free(errs);
        return job_fail(j, MIG_EXIT_CONFIG, "%s: bad config file", path);
    }
    free(errs);
    return 0;
}

int job_open_store(struct job *j)
{
    char err[2048];
    struct stat sd;
    /* root would leave root-owned files (SQLite -wal/-shm, dumps) that the node cannot use */
    if (geteuid() == 0 && stat(j->cfg->node.state_dir, &sd) == 0 && sd.st_uid != 0)
        return job_fail(j, MIG_EXIT_USAGE,
                        "run pgwarden migrate as the user that owns %s (uid %u), e.g. sudo -u "
                        "postgres pgwarden migrate ...",
                        j->cfg->node.state_dir, (unsigned)sd.st_uid);
    j->st = store_open(j->cfg->node.state_dir, err, sizeof(err));
    if (!j->st)
        return job_fail(j, MIG_EXIT_FAILED, "cannot open the node's store: %s", err);
    return 0;
}

int job_setup(struct job *j, bool fresh)
{
    snprintf(j->app, sizeof(j->app), "pgwarden-migrate-%" PRId64, j->id);
    if (!j->staging[0])
        snprintf(j->staging, sizeof(j->staging), "pgwarden_migrate_%" PRId64, j->id);
    char base[PATH_CAP];
    snprintf(base, sizeof(base), "%s/migrate", j->cfg->node.state_dir);
    int n = snprintf(j->workdir, sizeof(j->workdir), "%s/%" PRId64, base, j->id);
    if (n < 0 || (size_t)n >= sizeof(j->workdir) - 16)
        return job_fail(j, MIG_EXIT_CONFIG, "state_dir is too long");
    snprintf(j->passfile, sizeof(j->passfile), "%s/pgpass", j->workdir);
    snprintf(j->dumpdir, sizeof(j->dumpdir), "%s/dump", j->workdir);
    if (fresh)
        job_remove_tree(j->workdir); /* a leftover of a job with the same id (a new store) */
    int rc = job_make_dir(base);
    if (rc == 0)
        rc = job_make_dir(j->workdir);
    if (rc < 0)
        return job_fail(j, MIG_EXIT_FAILED, "cannot create %s: %s", j->workdir, strerror(-rc));
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
    return 0;
}

static int prepare(struct job *j, char *password)
{
    if (job_open_store(j) < 0)
        return -1;
    adopt_stale(j);
    if (!store_migration_start(j->st, clock_wall_ms(), j->shown, j->o.to,
                               j->o.online ? "online" : "dump", getpid(), &j->id))
        return job_fail(j, MIG_EXIT_FAILED, "cannot record the job in %s", store_path(j->st));
    job_event(j, "started");
    if (job_setup(j, true) < 0)
        return -1;
    if (j->o.online) { /* the subscription's conninfo holds the password (see migrate.h) */
        j->sub_ci = calloc(1, CONNINFO_CAP);
        if (!j->sub_ci || mig_sub_conninfo(&j->src, password, j->sub_ci, CONNINFO_CAP) < 0)
            return job_fail(j, MIG_EXIT_USAGE, "the source URL is too long");
    }
    int rc = job_write_passfile(j, password);
    explicit_bzero(password, MIG_STR);
    if (rc < 0)
        return job_fail(j, MIG_EXIT_FAILED, "cannot write the passfile %s: %s", j->passfile,
                        strerror(-rc));
    return 0;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    job_srccheck_stop(j);
    PQfinish(j->snap);
    PQfinish(j->admin);
    PQfinish(j->stg);
    store_close(j->st);
    if (j->sigfd >= 0)
        close(j->sigfd);
    free(j->tables);
    free(j->report_json);
    mig_report_free(&j->rep);
    free(j->cfg);
    if (j->sub_ci) {
        explicit_bzero(j->sub_ci, CONNINFO_CAP);
        free(j->sub_ci);
    }
    free(j);
}

struct job *job_new(const struct mig_opts *o)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->o = *o;
    j->sigfd = -1;
    j->child.pid = -1;
    j->child.fd = -1;
    j->start_ms = job_now_ms();
    j->prog.phase_start_ms = j->start_ms;
    j->tty = isatty(STDERR_FILENO);
    j->show = !o->no_progress;
    j->lag = -1;
    return j;
}

static int run(struct job *j)
{
    if (job_preflight_source(j) < 0 || job_preflight_target(j) < 0 || job_preflight_space(j) < 0 ||
        job_confirm(j) < 0)
        return -1;
    if (job_take_snapshot(j) < 0 || job_dump(j) < 0)
        return -1;
    job_srccheck_start(j); /* the source's side of the verification, during the restore */
    if (job_restore(j) < 0 || job_verify(j) < 0 || job_finish(j) < 0)
        return -1;
    return 0;
}

static int migrate_run(struct mig_opts *o)
{
    struct job *j = job_new(o);
    char password[MIG_STR];
    int code;
    if (!j) {
        fprintf(stderr, "pgwarden migrate: out of memory\n");
        return MIG_EXIT_FAILED;
    }
    char *from = o->from ? o->from : getenv("PGWARDEN_MIGRATE_FROM");
    if (!from) {
        fprintf(stderr, "pgwarden migrate: --from URL is required (or set "
                        "PGWARDEN_MIGRATE_FROM)\n");
        job_free(j);
        return MIG_EXIT_USAGE;
    }
    int rc = mig_url_parse(from, &j->src, password, sizeof(password), j->err, sizeof(j->err));
    mig_url_scrub(o->from); /* `ps` no longer shows the password */
    if (rc < 0) {
        explicit_bzero(password, sizeof(password));
        fprintf(stderr, "pgwarden migrate: %s\n", j->err);
        job_free(j);
        return MIG_EXIT_USAGE;
    }
    mig_url_display(&j->src, j->shown, sizeof(j->shown));
    j->sigfd = job_setup_signals();
    if (j->sigfd < 0 || job_load_config(j) < 0 || prepare(j, password) < 0) {
        explicit_bzero(password, sizeof(password));
        fprintf(stderr, "pgwarden migrate: %s\n", j->err[0] ? j->err : "cannot set up signals");
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
        if (j->id > 0) {
            store_migration_finish(j->st, j->id, clock_wall_ms(), "failed", j->err, NULL);
            job_remove_tree(j->workdir);
        }
        goto out;
    }
    if (j->o.online) {
        code = job_online_main(j);
        goto out;
    }
    rc = run(j);
    job_srccheck_stop(j); /* before the snapshot's connection goes */
    if (j->tty && j->show && rc < 0)
        fprintf(stderr, "\n");
    mig_child_kill(&j->child);
    if (j->snap) {
        PQfinish(j->snap);
        j->snap = NULL;
    }
    if (rc < 0)
        job_cleanup_staging(j);
    job_remove_tree(j->workdir);
    if (rc == 0) {
        job_phase(j, MIG_PH_DONE, 0, 0);
        j->prog.bytes_total = j->prog.bytes_done = j->table_bytes;
        j->prog.tables_total = j->prog.tables_done = j->ntables;
        job_store_progress(j, true);
        store_migration_finish(j->st, j->id, clock_wall_ms(), "done", "", j->report_json);
        job_event(j, "done");
        job_print_done(j);
        code = 0;
    } else {
        store_migration_finish(j->st, j->id, clock_wall_ms(), "failed", j->err, j->report_json);
        job_event(j, "failed");
        fprintf(stderr, "pgwarden migrate: migration %" PRId64 " FAILED: %s\n", j->id, j->err);
        code = j->exit_code ? j->exit_code : MIG_EXIT_FAILED;
    }
out:
    job_free(j);
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
        return mig_cutover_main(&o);
    case MIG_CMD_ABORT:
        return mig_abort_main(&o);
    case MIG_CMD_RUN:
        break;
    }
    return migrate_run(&o);
}
