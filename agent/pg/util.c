/* PostgreSQL control helpers: instance setup, errors and redaction, tool runs, files, LSNs. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

enum { LOG_TAIL_BYTES = 4096, SECRET_MIN_LEN = 3 };

/* ---- errors ---- */

static void copy_str(char *out, size_t cap, const char *in)
{
    if (cap == 0)
        return;
    size_t n = strnlen(in, cap - 1);
    memcpy(out, in, n);
    out[n] = '\0';
}

static void vfill(struct pg_error *err, const char *step, const char *fmt, va_list ap, char *msg,
                  size_t cap)
{
    vsnprintf(msg, cap, fmt, ap);
    if (err) {
        copy_str(err->step, sizeof(err->step), step);
        copy_str(err->msg, sizeof(err->msg), msg);
    }
}

/* A logfmt field value must not carry '"' or '\': the log line quotes it. */
void pgi_log_safe(char *s)
{
    for (; *s; s++) {
        if (*s == '"')
            *s = '\'';
        else if (*s == '\\')
            *s = '/';
    }
}

int pgi_fail(struct pg_error *err, const char *step, int rc, const char *fmt, ...)
{
    char msg[PG_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfill(err, step, fmt, ap, msg, sizeof(msg));
    va_end(ap);
    pgi_log_safe(msg);
    log_error("step failed", "step=\"%s\" rc=%d err=\"%s\"", step, rc, msg);
    return rc;
}

int pgi_fail_quiet(struct pg_error *err, const char *step, int rc, const char *fmt, ...)
{
    char msg[PG_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfill(err, step, fmt, ap, msg, sizeof(msg));
    va_end(ap);
    pgi_log_safe(msg);
    log_warn("step did not succeed", "step=\"%s\" rc=%d err=\"%s\"", step, rc, msg);
    return rc;
}

static int fill_only(struct pg_error *err, const char *step, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fill_only(struct pg_error *err, const char *step, int rc, const char *fmt, ...)
{
    char msg[PG_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vfill(err, step, fmt, ap, msg, sizeof(msg));
    va_end(ap);
    return rc;
}

/* ---- redaction ---- */

/* Replaces every occurrence of secret in buf by "***" (never longer than the secret). */
static void mask_secret(char *buf, const char *secret)
{
    size_t sl = strlen(secret);
    if (sl < SECRET_MIN_LEN)
        return;
    char *p = buf;
    while ((p = strstr(p, secret)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + sl, strlen(p + sl) + 1);
        p += 3;
    }
}

void pgi_redact(const struct pg_instance *pg, const char *in, char *out, size_t cap)
{
    if (cap == 0)
        return;
    log_redact(in, out, cap);
    if (!pg)
        return;
    mask_secret(out, pg->superuser_password);
    mask_secret(out, pg->replication_password);
}

void pgi_tail(const struct pg_instance *pg, const char *text, int lines, char *out, size_t cap)
{
    if (cap == 0)
        return;
    out[0] = '\0';
    if (!text)
        return;
    const char *end = text + strlen(text);
    const char *start = end;
    int found = 0;
    /* Walk back over `lines` non-empty lines. */
    while (start > text && found < lines) {
        const char *p = start;
        while (p > text && (p[-1] == '\n' || p[-1] == '\r'))
            p--;
        if (p == text)
            break;
        while (p > text && p[-1] != '\n' && p[-1] != '\r')
            p--;
        start = p;
        found++;
    }
    char joined[PG_ERRMSG_MAX];
    size_t o = 0;
    for (const char *p = start; p < end && o + 4 < sizeof(joined);) {
        const char *nl = p;
        while (nl < end && *nl != '\n' && *nl != '\r')
            nl++;
        if (nl > p) {
            if (o > 0) {
                memcpy(joined + o, " | ", 3);
                o += 3;
            }
            size_t n = (size_t)(nl - p);
            if (n > sizeof(joined) - 1 - o)
                n = sizeof(joined) - 1 - o;
            memcpy(joined + o, p, n);
            o += n;
        }
        p = nl < end ? nl + 1 : end;
    }
    joined[o] = '\0';
    pgi_redact(pg, joined, out, cap);
}

/* ---- paths and instance ---- */

int pgi_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int pgi_tool(const struct pg_instance *pg, const char *tool, char *out, size_t cap)
{
    return pgi_path(out, cap, pg->bin_dir, tool);
}

static bool has_ctl(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

static bool name_ok(const char *s)
{
    return s[0] != '\0' && !has_ctl(s) && !strchr(s, '"');
}

int pg_instance_check(const struct pg_instance *pg, struct pg_error *err)
{
    const char *step = "config";
    if (pg->data_dir[0] != '/' || pg->run_dir[0] != '/' || pg->bin_dir[0] != '/')
        return pgi_fail(err, step, -EINVAL, "bin_dir, data_dir and run_dir must be absolute");
    if (has_ctl(pg->data_dir) || has_ctl(pg->run_dir) || strchr(pg->run_dir, ',') ||
        has_ctl(pg->log_file))
        return pgi_fail(err, step, -EINVAL,
                        "data_dir, run_dir and log_file must not hold control characters (nor "
                        "run_dir a comma)");
    size_t dl = strlen(pg->data_dir);
    if (strncmp(pg->run_dir, pg->data_dir, dl) == 0 &&
        (pg->run_dir[dl] == '/' || pg->run_dir[dl] == '\0'))
        return pgi_fail(err, step, -EINVAL, "run_dir %s must be outside data_dir", pg->run_dir);
    struct sockaddr_un sa;
    if (strlen(pg->run_dir) + sizeof("/.s.PGSQL.65535") > sizeof(sa.sun_path))
        return pgi_fail(err, step, -ENAMETOOLONG,
                        "socket path %s/.s.PGSQL.%u is longer than %zu bytes: use a shorter "
                        "state_dir",
                        pg->run_dir, (unsigned)pg->port, sizeof(sa.sun_path) - 1);
    if (!name_ok(pg->superuser) || !name_ok(pg->replication_user))
        return pgi_fail(err, step, -EINVAL,
                        "superuser and replication_user must be non-empty, without '\"' or "
                        "control characters");
    if (has_ctl(pg->name) || has_ctl(pg->listen_host) || pg->port == 0)
        return pgi_fail(err, step, -EINVAL, "bad node name, listen host or port");
    return 0;
}

int pg_instance_init(struct pg_instance *pg, const struct pgw_config *cfg, struct pg_error *err)
{
    memset(pg, 0, sizeof(*pg));
    const struct pgw_postgresql_settings *s = &cfg->postgresql;
    copy_str(pg->bin_dir, sizeof(pg->bin_dir), s->bin_dir);
    copy_str(pg->data_dir, sizeof(pg->data_dir), s->data_dir);
    if (pgi_path(pg->run_dir, sizeof(pg->run_dir), cfg->node.state_dir, "pg") < 0 ||
        pgi_path(pg->log_file, sizeof(pg->log_file), cfg->node.state_dir, "postgresql.log") < 0)
        return pgi_fail(err, "config", -ENAMETOOLONG, "state_dir is too long");
    copy_str(pg->listen_host, sizeof(pg->listen_host), s->listen.host);
    pg->port = s->listen.port;
    copy_str(pg->name, sizeof(pg->name), cfg->node.name);
    copy_str(pg->superuser, sizeof(pg->superuser), s->superuser);
    copy_str(pg->superuser_password, sizeof(pg->superuser_password), s->superuser_password);
    copy_str(pg->replication_user, sizeof(pg->replication_user), s->replication_user);
    copy_str(pg->replication_password, sizeof(pg->replication_password), s->replication_password);
    pg->connect_timeout_ms = 3000;
    pg->query_timeout_ms = 5000;
    return pg_instance_check(pg, err);
}

int pg_run_dir_prepare(const struct pg_instance *pg, struct pg_error *err)
{
    const char *step = "run dir";
    if (mkdir(pg->run_dir, 0700) < 0 && errno != EEXIST)
        return pgi_fail(err, step, -errno, "cannot create %s: %s", pg->run_dir, strerror(errno));
    struct stat st;
    if (stat(pg->run_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return pgi_fail(err, step, -ENOTDIR, "%s is not a directory", pg->run_dir);
    if ((st.st_mode & 077) != 0 && chmod(pg->run_dir, 0700) < 0)
        return pgi_fail(err, step, -errno, "cannot chmod 0700 %s: %s", pg->run_dir,
                        strerror(errno));
    char buf[2 * (PGW_NAME_MAX + PGW_SECRET_MAX) * 2 + 64];
    int rc = pg_passfile_render(pg, buf, sizeof(buf));
    if (rc < 0)
        return pgi_fail(err, step, rc, "cannot render the passfile");
    char path[PGI_PATH];
    if (pgi_path(path, sizeof(path), pg->run_dir, PG_PASSFILE_NAME) < 0)
        return pgi_fail(err, step, -ENAMETOOLONG, "run_dir is too long");
    rc = pgi_write_file(path, buf, strlen(buf), 0600);
    explicit_bzero(buf, sizeof(buf));
    if (rc < 0)
        return pgi_fail(err, step, rc, "cannot write %s: %s", path, strerror(-rc));
    return 0;
}

int pg_datadir_probe(const struct pg_instance *pg, enum pg_datadir_state *out, struct pg_error *err)
{
    DIR *d = opendir(pg->data_dir);
    if (!d) {
        if (errno == ENOENT) {
            *out = PG_DATADIR_MISSING;
            return 0;
        }
        return pgi_fail(err, "data dir", -errno, "cannot open %s: %s", pg->data_dir,
                        strerror(errno));
    }
    size_t n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    if (n == 0) {
        *out = PG_DATADIR_EMPTY;
        return 0;
    }
    char a[PGI_PATH], b[PGI_PATH];
    if (pgi_path(a, sizeof(a), pg->data_dir, "PG_VERSION") < 0 ||
        pgi_path(b, sizeof(b), pg->data_dir, "global/pg_control") < 0)
        return pgi_fail(err, "data dir", -ENAMETOOLONG, "data_dir is too long");
    *out = pgi_file_exists(a) && pgi_file_exists(b) ? PG_DATADIR_INITIALIZED : PG_DATADIR_OTHER;
    return 0;
}

static int wipe_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    if (ftw->level == 0)
        return 0;
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    return rc < 0 ? errno : 0;
}

int pg_datadir_wipe(const struct pg_instance *pg, struct pg_error *err)
{
    struct pg_postmaster pm;
    if (pg_postmaster_find(pg, &pm, NULL) == 0)
        return pgi_fail(err, "wipe data dir", -EBUSY, "a postmaster (pid %d) is running on %s",
                        (int)pm.pid, pg->data_dir);
    if (!pgi_file_exists(pg->data_dir))
        return 0;
    int rc = nftw(pg->data_dir, wipe_one, 32, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        int e = rc > 0 ? rc : errno;
        return pgi_fail(err, "wipe data dir", -e, "cannot empty %s: %s", pg->data_dir, strerror(e));
    }
    if (chmod(pg->data_dir, 0700) < 0)
        return pgi_fail(err, "wipe data dir", -errno, "cannot chmod %s: %s", pg->data_dir,
                        strerror(errno));
    log_info("data directory emptied", "data_dir=%s", pg->data_dir);
    return 0;
}

/* ---- tools ---- */

static bool env_dropped(const char *kv)
{
    return strncmp(kv, "PG", 2) == 0 || strncmp(kv, "LC_", 3) == 0 ||
           strncmp(kv, "LANG=", 5) == 0 || strncmp(kv, "LANGUAGE=", 9) == 0;
}

/* A NULL-terminated copy of environ without PG and locale variables, plus ours. */
static const char **env_build(const struct pg_instance *pg, const char *const *extra,
                              char *passfile_kv, size_t kv_cap)
{
    size_t n = 0, ne = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    for (const char *const *e = extra; e && *e; e++)
        ne++;
    const char **out = calloc(n + ne + 4, sizeof(*out));
    if (!out)
        return NULL;
    size_t o = 0;
    for (char **e = environ; e && *e; e++) {
        if (!env_dropped(*e))
            out[o++] = *e;
    }
    out[o++] = "LC_ALL=C";
    snprintf(passfile_kv, kv_cap, "PGPASSFILE=%s/%s", pg->run_dir, PG_PASSFILE_NAME);
    out[o++] = passfile_kv;
    for (const char *const *e = extra; e && *e; e++)
        out[o++] = *e;
    out[o] = NULL;
    return out;
}

int pgi_run(const struct pg_instance *pg, const char *step, const char *const *argv,
            const char *const *env, const char *stdin_data, int timeout_ms, bool quiet,
            struct spawn_result *r, struct pg_error *err)
{
    char passfile_kv[PGI_PATH + 16];
    const char **envp = env_build(pg, env, passfile_kv, sizeof(passfile_kv));
    if (!envp) {
        memset(r, 0, sizeof(*r));
        return pgi_fail(err, step, -ENOMEM, "out of memory");
    }
    struct spawn_opts o = {.argv = argv,
                           .envp = envp,
                           .cwd =
                               pg->run_dir[0] && pgi_file_exists(pg->run_dir) ? pg->run_dir : "/",
                           .timeout_ms = timeout_ms,
                           .kill_grace_ms = 2000,
                           .out_cap = 256 * 1024,
                           .stdin_data = stdin_data,
                           .cancel_fd = pg->cancel_fd,
                           .tick = pg->busy_tick,
                           .tick_arg = pg->busy_arg};
    int rc = spawn_run(&o, r);
    free(envp);
    char tail[PG_ERRMSG_MAX / 2];
    if (rc < 0)
        return pgi_fail(err, step, rc, "cannot run %s: %s", argv[0], strerror(-rc));
    pgi_tail(pg, r->output, PGI_TAIL_LINES, tail, sizeof(tail));
    if (r->cancelled)
        return pgi_fail(err, step, -ECANCELED, "%s stopped: this process is shutting down",
                        argv[0]);
    if (r->timed_out)
        return pgi_fail(err, step, -ETIMEDOUT, "%s did not finish within %d ms and was killed%s%s",
                        argv[0], timeout_ms, tail[0] ? ": " : "", tail);
    if (r->exit_code == 0)
        return 0;
    char what[64];
    if (r->term_signal)
        snprintf(what, sizeof(what), "was killed by signal %d", r->term_signal);
    else
        snprintf(what, sizeof(what), "exited with code %d", r->exit_code);
    if (quiet)
        return fill_only(err, step, -EIO, "%s %s%s%s", argv[0], what, tail[0] ? ": " : "", tail);
    return pgi_fail(err, step, -EIO, "%s %s%s%s", argv[0], what, tail[0] ? ": " : "", tail);
}

/* ---- files ---- */

bool pgi_file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int fsync_parent(const char *path)
{
    char dir[PGI_PATH];
    copy_str(dir, sizeof(dir), path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int pgi_write_file(const char *path, const char *data, size_t len, int mode)
{
    char tmp[PGI_PATH];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (fchmod(fd, (mode_t)mode) < 0)
        rc = -errno;
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            rc = -errno;
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        (void)unlink(tmp);
        return rc;
    }
    return fsync_parent(path);
}

int pgi_read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            if (cap >= max) {
                rc = -EFBIG;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            buf = p;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -errno;
        else if (r == 0)
            break;
        else
            n += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

void pgi_log_tail(const struct pg_instance *pg, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = open(pg->log_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[LOG_TAIL_BYTES + 1];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, LOG_TAIL_BYTES, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    pgi_tail(pg, buf, 4, out, cap);
}

/* ---- /proc ---- */

bool pgi_proc_stat(pid_t pid, char *comm, size_t comm_cap, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
    if (!lp || !rp || rp < lp || rp[1] != ' ')
        return false;
    if (comm && comm_cap) {
        size_t cl = (size_t)(rp - lp - 1);
        if (cl >= comm_cap)
            cl = comm_cap - 1;
        memcpy(comm, lp + 1, cl);
        comm[cl] = '\0';
    }
    /* After ") ": field 3 (state) is token 0, field 22 (starttime) is token 19. */
    char *p = rp + 2;
    if (state)
        *state = *p;
    for (int i = 0; i < 19 && p; i++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p)
        return false;
    if (start)
        *start = strtoull(p, NULL, 10);
    return true;
}

/* ---- numbers and LSNs ---- */

bool pgi_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

static int hex_part(const char *s, const char *end, uint32_t *out)
{
    size_t n = (size_t)(end - s);
    if (n == 0 || n > 8)
        return -EINVAL;
    uint32_t v = 0;
    for (const char *p = s; p < end; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            return -EINVAL;
        v = (v << 4) | (uint32_t)d;
    }
    *out = v;
    return 0;
}

int pg_lsn_parse(const char *s, uint64_t *out)
{
    if (!s)
        return -EINVAL;
    const char *slash = strchr(s, '/');
    if (!slash)
        return -EINVAL;
    uint32_t hi, lo;
    if (hex_part(s, slash, &hi) < 0 || hex_part(slash + 1, slash + 1 + strlen(slash + 1), &lo) < 0)
        return -EINVAL;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
}

char *pg_lsn_format(uint64_t lsn, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return buf;
}
