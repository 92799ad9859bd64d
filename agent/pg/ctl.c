/* PostgreSQL lifecycle: initdb, start, stop with escalation, reload, promote, crash recovery. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int secs_of(int ms)
{
    int s = (ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

/* The spawn deadline of a pg_ctl call whose own wait (-t) is timeout_ms: pg_ctl itself
 * returns right after its -t; the margin only catches a hung pg_ctl. */
static int tool_deadline(int timeout_ms)
{
    int margin = timeout_ms / 2;
    margin = margin < 2000 ? 2000 : margin > PGI_TOOL_GRACE_MS ? PGI_TOOL_GRACE_MS : margin;
    return secs_of(timeout_ms) * 1000 + margin;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- initdb ---- */

static int write_pwfile(const struct pg_instance *pg, char *path, size_t cap, struct pg_error *err)
{
    if (pgi_path(path, cap, pg->run_dir, "pwfile.XXXXXX") < 0)
        return pgi_fail(err, "initdb", -ENAMETOOLONG, "run_dir is too long");
    int fd = mkstemp(path);
    if (fd < 0)
        return pgi_fail(err, "initdb", -errno, "cannot create a password file in %s: %s",
                        pg->run_dir, strerror(errno));
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    int rc = 0;
    size_t len = strlen(pg->superuser_password);
    if (fchmod(fd, 0600) < 0 || write(fd, pg->superuser_password, len) != (ssize_t)len ||
        write(fd, "\n", 1) != 1)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        (void)unlink(path);
        return pgi_fail(err, "initdb", rc, "cannot write the password file: %s", strerror(-rc));
    }
    return 0;
}

int pg_initdb(const struct pg_instance *pg, const struct pg_initdb_opts *o,
              const struct pg_conf *conf, struct pg_error *err)
{
    if (conf->standby)
        return pgi_fail(err, "initdb", -EINVAL, "a new cluster starts as a primary");
    enum pg_datadir_state ds;
    int rc = pg_datadir_probe(pg, &ds, err);
    if (rc < 0)
        return rc;
    if (ds != PG_DATADIR_MISSING && ds != PG_DATADIR_EMPTY)
        return pgi_fail(err, "initdb", -ENOTEMPTY, "data directory %s is not empty", pg->data_dir);
    rc = pg_run_dir_prepare(pg, err);
    if (rc < 0)
        return rc;
    char tool[PGI_PATH], pwfile[PGI_PATH] = "", pwarg[PGI_PATH + 16], locale[128], enc[64];
    if (pgi_tool(pg, "initdb", tool, sizeof(tool)) < 0)
        return pgi_fail(err, "initdb", -ENAMETOOLONG, "bin_dir is too long");
    snprintf(locale, sizeof(locale), "--locale=%s", o && o->locale ? o->locale : "C.UTF-8");
    snprintf(enc, sizeof(enc), "--encoding=%s", o && o->encoding ? o->encoding : "UTF8");
    const char *argv[16] = {tool,
                            "-D",
                            pg->data_dir,
                            "-U",
                            pg->superuser,
                            "--auth-local=trust",
                            "--auth-host=scram-sha-256",
                            "--data-checksums",
                            enc,
                            locale};
    int n = 10;
    if (pg->superuser_password[0]) {
        rc = write_pwfile(pg, pwfile, sizeof(pwfile), err);
        if (rc < 0)
            return rc;
        snprintf(pwarg, sizeof(pwarg), "--pwfile=%s", pwfile);
        argv[n++] = pwarg;
    }
    if (o && o->no_sync)
        argv[n++] = "--no-sync";
    argv[n] = NULL;
    log_info("initdb", "data_dir=%s superuser=%s", pg->data_dir, pg->superuser);
    struct spawn_result r;
    rc = pgi_run(pg, "initdb", argv, NULL, NULL, o && o->timeout_ms > 0 ? o->timeout_ms : 120000,
                 false, &r, err);
    spawn_result_free(&r);
    if (pwfile[0])
        (void)unlink(pwfile);
    if (rc < 0) {
        /* initdb removes what it made unless it was killed; the directory was empty before. */
        (void)pg_datadir_wipe(pg, NULL);
        return rc;
    }
    return pg_conf_apply(pg, conf, err);
}

/* ---- start ---- */

/* Processes of an earlier postmaster of this data directory that outlived it: backends exit
 * soon after their postmaster dies, but write to the data files until then. */
static size_t leftover_backends(const struct pg_instance *pg)
{
    char want[PATH_MAX];
    if (!realpath(pg->data_dir, want))
        return 0;
    size_t n = 0;
    DIR *d = opendir("/proc");
    const struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end, comm[32], state = 0, link[64], cwd[PATH_MAX];
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == getpid())
            continue;
        if (!pgi_proc_stat((pid_t)pid, comm, sizeof(comm), &state, NULL) ||
            strcmp(comm, "postgres") != 0 || state == 'Z' || state == 'X')
            continue;
        snprintf(link, sizeof(link), "/proc/%ld/cwd", pid);
        ssize_t l = readlink(link, cwd, sizeof(cwd) - 1);
        if (l <= 0)
            continue;
        cwd[l] = '\0';
        if (strcmp(cwd, want) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* A lock file (postmaster.pid, or the socket's .lock) naming a pid that still exists but is
 * not a running postmaster of ours (a zombie not yet reaped, or a reused pid) blocks the
 * start: PostgreSQL only checks kill(pid, 0). Remove such a file. A lock file whose pid is
 * gone is left to PostgreSQL, which then also checks the old shared memory segment. */
static int clear_lock(const char *path, struct pg_error *err)
{
    char *text = NULL;
    if (pgi_read_file(path, 4096, &text, NULL) < 0)
        return 0;
    char *end;
    long pid = strtol(text, &end, 10);
    free(text);
    if (pid <= 0 || !pgi_proc_stat((pid_t)pid, NULL, 0, NULL, NULL))
        return 0;
    if (unlink(path) < 0 && errno != ENOENT)
        return pgi_fail(err, "pg_ctl start", -errno, "cannot remove the stale %s: %s", path,
                        strerror(errno));
    log_info("removed a stale lock file", "path=%s pid=%ld", path, pid);
    return 0;
}

/* Called when no postmaster of ours runs: makes sure none of its processes is left and that no
 * stale lock file stops the new one. */
static int prepare_start(const struct pg_instance *pg, struct pg_error *err)
{
    uint64_t deadline = clock_mono_ms() + PGI_KILL_WAIT_MS;
    size_t n;
    while ((n = leftover_backends(pg)) > 0 && clock_mono_ms() < deadline)
        sleep_ms(20);
    if (n > 0)
        return pgi_fail(err, "pg_ctl start", -EBUSY,
                        "%zu processes of an earlier postmaster still run in %s", n, pg->data_dir);
    char path[PGI_PATH], name[32];
    snprintf(name, sizeof(name), ".s.PGSQL.%u.lock", (unsigned)pg->port);
    int rc = 0;
    if (pgi_path(path, sizeof(path), pg->data_dir, "postmaster.pid") == 0)
        rc = clear_lock(path, err);
    if (rc == 0 && pgi_path(path, sizeof(path), pg->run_dir, name) == 0)
        rc = clear_lock(path, err);
    return rc;
}

static int start_with(const struct pg_instance *pg, int timeout_ms, const char *opts,
                      struct pg_postmaster *pm, struct pg_error *err)
{
    const char *step = "pg_ctl start";
    struct pg_postmaster found;
    if (!pm)
        pm = &found;
    enum pg_datadir_state ds;
    int rc = pg_datadir_probe(pg, &ds, err);
    if (rc < 0)
        return rc;
    if (ds != PG_DATADIR_INITIALIZED)
        return pgi_fail(err, step, -ENOENT, "%s holds no PostgreSQL cluster", pg->data_dir);
    rc = pg_postmaster_find(pg, pm, err);
    if (rc == 0)
        return pgi_fail_quiet(err, step, -EALREADY, "already running (pid %d, %s)", (int)pm->pid,
                              pg_pm_status_name(pm->status));
    if (rc != -ESRCH)
        return rc;
    if ((rc = prepare_start(pg, err)) < 0 || (rc = pg_run_dir_prepare(pg, err)) < 0)
        return rc;
    char tool[PGI_PATH], secs[16];
    if (pgi_tool(pg, "pg_ctl", tool, sizeof(tool)) < 0)
        return pgi_fail(err, step, -ENAMETOOLONG, "bin_dir is too long");
    snprintf(secs, sizeof(secs), "%d", secs_of(timeout_ms));
    const char *argv[16] = {tool, "start", "-D", pg->data_dir, "-w",
                            "-t", secs,    "-l", pg->log_file, "-s"};
    int n = 10;
    if (opts) {
        argv[n++] = "-o";
        argv[n++] = opts;
    }
    argv[n] = NULL;
    log_info("starting PostgreSQL", "data_dir=%s port=%u", pg->data_dir, (unsigned)pg->port);
    struct spawn_result r;
    struct pg_error run_err;
    rc = pgi_run(pg, step, argv, NULL, NULL, tool_deadline(timeout_ms), true, &r, &run_err);
    spawn_result_free(&r);
    if (rc == -ETIMEDOUT || rc == -ECANCELED) {
        if (err)
            *err = run_err;
        return rc;
    }
    int frc = pg_postmaster_find(pg, pm, NULL);
    if (rc == 0 && frc == 0) {
        log_info("PostgreSQL started", "pid=%d status=%s", (int)pm->pid,
                 pg_pm_status_name(pm->status));
        return 0;
    }
    char logtail[PG_ERRMSG_MAX / 2];
    pgi_log_tail(pg, logtail, sizeof(logtail));
    if (frc == 0)
        return pgi_fail(err, step, -ETIMEDOUT,
                        "not ready within %d ms; postmaster pid %d is still %s; server log: %s",
                        timeout_ms, (int)pm->pid, pg_pm_status_name(pm->status), logtail);
    return pgi_fail(err, step, -EIO, "%s; server log (%s): %s",
                    rc < 0 ? run_err.msg : "the postmaster exited", pg->log_file, logtail);
}

int pg_start(const struct pg_instance *pg, int timeout_ms, struct pg_postmaster *pm,
             struct pg_error *err)
{
    return start_with(pg, timeout_ms, NULL, pm, err);
}

/* ---- stop ---- */

const char *pg_stop_mode_name(enum pg_stop_mode m)
{
    return m == PG_STOP_SMART ? "smart" : m == PG_STOP_FAST ? "fast" : "immediate";
}

static int ctl_stop(const struct pg_instance *pg, enum pg_stop_mode mode, int timeout_ms,
                    const struct pg_postmaster *pm, struct pg_error *err)
{
    char tool[PGI_PATH], secs[16], step[32];
    if (pgi_tool(pg, "pg_ctl", tool, sizeof(tool)) < 0)
        return pgi_fail(err, "pg_ctl stop", -ENAMETOOLONG, "bin_dir is too long");
    snprintf(secs, sizeof(secs), "%d", secs_of(timeout_ms));
    snprintf(step, sizeof(step), "pg_ctl stop %s", pg_stop_mode_name(mode));
    const char *argv[] = {tool, "stop", "-D", pg->data_dir, "-m", pg_stop_mode_name(mode),
                          "-w", "-t",   secs, "-s",         NULL};
    log_info("stopping PostgreSQL", "pid=%d mode=%s timeout_ms=%d", (int)pm->pid,
             pg_stop_mode_name(mode), timeout_ms);
    struct spawn_result r;
    struct pg_error e;
    int rc = pgi_run(pg, step, argv, NULL, NULL, tool_deadline(timeout_ms), true, &r, &e);
    spawn_result_free(&r);
    /* pg_ctl returns once postmaster.pid is gone, which the postmaster removes just before it
     * exits: give it that moment. */
    uint64_t deadline = clock_mono_ms() + (rc == 0 ? PGI_KILL_WAIT_MS : 0);
    while (pg_postmaster_alive(pm) && clock_mono_ms() < deadline)
        sleep_ms(5);
    if (!pg_postmaster_alive(pm))
        return 0; /* also when pg_ctl complained that it was already gone */
    if (rc == -ETIMEDOUT) {
        if (err)
            *err = e; /* pg_ctl itself hung: logged by pgi_run */
        return rc;
    }
    return pgi_fail(err, step, -ETIMEDOUT, "still running%s%s", rc < 0 ? ": " : "",
                    rc < 0 ? e.msg : "");
}

static pid_t proc_ppid(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    if (!rp || !rp[1] || !rp[2] || !rp[3])
        return -1;
    return (pid_t)strtol(rp + 4, NULL, 10); /* ") S <ppid>" */
}

/* The last resort: SIGKILL to the postmaster and its children (they would exit on their own
 * soon after the postmaster dies, but may hold the shared memory meanwhile). */
static int kill_postmaster(const struct pg_instance *pg, const struct pg_postmaster *pm,
                           struct pg_error *err)
{
    pid_t kids[512];
    size_t nk = 0;
    DIR *d = opendir("/proc");
    const struct dirent *e;
    while (d && (e = readdir(d)) != NULL && nk < sizeof(kids) / sizeof(kids[0])) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end == '\0' && pid > 0 && proc_ppid((pid_t)pid) == pm->pid)
            kids[nk++] = (pid_t)pid;
    }
    if (d)
        closedir(d);
    log_warn("killing the postmaster", "pid=%d children=%zu", (int)pm->pid, nk);
    if (pg_postmaster_alive(pm))
        (void)kill(pm->pid, SIGKILL);
    for (size_t i = 0; i < nk; i++)
        (void)kill(kids[i], SIGKILL);
    uint64_t deadline = clock_mono_ms() + PGI_KILL_WAIT_MS;
    while (pg_postmaster_alive(pm) && clock_mono_ms() < deadline)
        sleep_ms(10);
    if (pg_postmaster_alive(pm))
        return pgi_fail(err, "kill postmaster", -ETIMEDOUT, "pid %d survived SIGKILL (%s)",
                        (int)pm->pid, pg->data_dir);
    return 0;
}

int pg_stop(const struct pg_instance *pg, enum pg_stop_mode mode, int timeout_ms, bool escalate,
            struct pg_stop_result *res, struct pg_error *err)
{
    struct pg_stop_result local;
    if (!res)
        res = &local;
    *res = (struct pg_stop_result){.mode_used = mode};
    struct pg_postmaster pm;
    int rc = pg_postmaster_find(pg, &pm, err);
    if (rc == -ESRCH)
        return 0;
    if (rc < 0)
        return rc;
    res->was_running = true;
    rc = ctl_stop(pg, mode, timeout_ms, &pm, err);
    if (rc == 0 || !escalate)
        return rc;
    if (mode != PG_STOP_IMMEDIATE) {
        log_warn("escalating to an immediate shutdown", "pid=%d", (int)pm.pid);
        res->mode_used = PG_STOP_IMMEDIATE;
        if (ctl_stop(pg, PG_STOP_IMMEDIATE, PGI_IMMEDIATE_MS, &pm, err) == 0)
            return 0;
    }
    res->killed = true;
    return kill_postmaster(pg, &pm, err);
}

int pg_restart(const struct pg_instance *pg, enum pg_stop_mode mode, int stop_timeout_ms,
               int start_timeout_ms, struct pg_postmaster *pm, struct pg_error *err)
{
    int rc = pg_stop(pg, mode, stop_timeout_ms, true, NULL, err);
    if (rc < 0)
        return rc;
    return pg_start(pg, start_timeout_ms, pm, err);
}

/* ---- reload, promote, checkpoint ---- */

static int simple_ctl(const struct pg_instance *pg, const char *step, const char *cmd,
                      int timeout_ms, struct pg_error *err)
{
    char tool[PGI_PATH], secs[16];
    if (pgi_tool(pg, "pg_ctl", tool, sizeof(tool)) < 0)
        return pgi_fail(err, step, -ENAMETOOLONG, "bin_dir is too long");
    snprintf(secs, sizeof(secs), "%d", secs_of(timeout_ms));
    const char *argv[] = {tool, cmd, "-D", pg->data_dir, "-w", "-t", secs, "-s", NULL};
    struct spawn_result r;
    int rc = pgi_run(pg, step, argv, NULL, NULL, tool_deadline(timeout_ms), false, &r, err);
    spawn_result_free(&r);
    return rc;
}

int pg_reload(const struct pg_instance *pg, int timeout_ms, struct pg_error *err)
{
    struct pg_postmaster pm;
    int rc = pg_postmaster_find(pg, &pm, err);
    if (rc == -ESRCH)
        return pgi_fail_quiet(err, "pg_ctl reload", -ESRCH, "PostgreSQL is not running");
    if (rc < 0)
        return rc;
    rc = simple_ctl(pg, "pg_ctl reload", "reload", timeout_ms, err);
    if (rc == 0)
        log_info("PostgreSQL configuration reloaded", "pid=%d", (int)pm.pid);
    return rc;
}

int pg_promote(const struct pg_instance *pg, int timeout_ms, struct pg_error *err)
{
    struct pg_status st;
    int rc = pg_status_query(pg, &st, err);
    if (rc < 0)
        return rc;
    if (!st.in_recovery)
        return pgi_fail_quiet(err, "promote", -EALREADY, "not in recovery: already a primary");
    log_info("promoting PostgreSQL", "timeline=%u", st.timeline);
    rc = simple_ctl(pg, "pg_ctl promote", "promote", timeout_ms, err);
    if (rc < 0)
        return rc;
    rc = pg_status_query(pg, &st, err);
    if (rc < 0)
        return rc;
    if (st.in_recovery)
        return pgi_fail(err, "promote", -EIO, "pg_ctl promote returned but still in recovery");
    log_info("PostgreSQL promoted", "timeline=%u", st.timeline);
    return 0;
}

int pg_checkpoint(const struct pg_instance *pg, int timeout_ms, struct pg_error *err)
{
    int rc = -EIO;
    PGconn *c = pgi_connect_local(pg, timeout_ms, &rc, err);
    if (!c)
        return rc;
    PGresult *res;
    rc = pgi_exec(pg, c, "checkpoint", "CHECKPOINT", 0, NULL,
                  clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 60000), NULL, &res,
                  err);
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* ---- crash recovery ---- */

static bool clean_state(enum pg_cluster_state s)
{
    return s == PG_STATE_SHUT_DOWN || s == PG_STATE_SHUT_DOWN_IN_RECOVERY;
}

static int single_user_recovery(const struct pg_instance *pg, int timeout_ms, struct pg_error *err)
{
    char tool[PGI_PATH];
    if (pgi_tool(pg, "postgres", tool, sizeof(tool)) < 0)
        return pgi_fail(err, "crash recovery", -ENAMETOOLONG, "bin_dir is too long");
    const char *argv[] = {
        tool, "--single",         "-D",       pg->data_dir, "-c", "listen_addresses=",
        "-c", "archive_mode=off", "postgres", NULL};
    log_info("crash recovery in single-user mode", "data_dir=%s", pg->data_dir);
    struct spawn_result r;
    int rc = pgi_run(pg, "crash recovery", argv, NULL, NULL, timeout_ms, false, &r, err);
    spawn_result_free(&r);
    return rc;
}

static int standby_recovery(const struct pg_instance *pg, int timeout_ms, struct pg_error *err)
{
    log_info("crash recovery as a hidden standby", "data_dir=%s", pg->data_dir);
    struct pg_postmaster pm;
    int rc = start_with(pg, timeout_ms, "-c listen_addresses=''", &pm, err);
    if (rc == -ETIMEDOUT && pg_postmaster_find(pg, &pm, NULL) == 0)
        (void)ctl_stop(pg, PG_STOP_IMMEDIATE, PGI_IMMEDIATE_MS, &pm, NULL);
    if (rc < 0)
        return rc;
    return ctl_stop(pg, PG_STOP_FAST, timeout_ms, &pm, err);
}

int pg_ensure_clean_shutdown(const struct pg_instance *pg, int timeout_ms, struct pg_error *err)
{
    struct pg_controldata cd;
    int rc = pg_controldata_read(pg, &cd, err);
    if (rc < 0 || clean_state(cd.state))
        return rc;
    struct pg_postmaster pm;
    if (pg_postmaster_find(pg, &pm, NULL) == 0)
        return pgi_fail(err, "crash recovery", -EBUSY, "PostgreSQL is running (pid %d)",
                        (int)pm.pid);
    char sig[PGI_PATH];
    if (pgi_path(sig, sizeof(sig), pg->data_dir, "standby.signal") < 0)
        return pgi_fail(err, "crash recovery", -ENAMETOOLONG, "data_dir is too long");
    if ((rc = prepare_start(pg, err)) < 0)
        return rc;
    log_info("cluster was not shut down cleanly", "state=\"%s\"", pg_cluster_state_name(cd.state));
    if (pgi_file_exists(sig))
        rc = standby_recovery(pg, timeout_ms, err);
    else
        rc = single_user_recovery(pg, timeout_ms, err);
    if (rc < 0)
        return rc;
    rc = pg_controldata_read(pg, &cd, err);
    if (rc < 0)
        return rc;
    if (!clean_state(cd.state))
        return pgi_fail(err, "crash recovery", -EIO, "cluster state is still \"%s\"",
                        pg_cluster_state_name(cd.state));
    log_info("crash recovery done", "state=\"%s\"", pg_cluster_state_name(cd.state));
    return 0;
}
