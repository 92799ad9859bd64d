/* demo folder: the user the servers run as, the lock, reset, member folders and config files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/demo/demo.h"
#include "platform/config.h"

#define RUN_USER "postgres"

bool demo_path(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "pgwarden demo: path too long: %s...\n", out);
        return false;
    }
    return true;
}

/* Copies the /etc/passwd entry of name (or of uid when name is NULL) into u. Read directly, not
 * through NSS, which a static binary cannot load. */
static bool passwd_lookup(const char *name, uid_t uid, struct demo_user *u)
{
    FILE *f = fopen("/etc/passwd", "re");
    const struct passwd *pw;
    bool found = false;
    while (f && !found && (pw = fgetpwent(f)) != NULL) {
        if (name ? strcmp(pw->pw_name, name) != 0 : pw->pw_uid != uid)
            continue;
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
        snprintf(u->home, sizeof(u->home), "%s", pw->pw_dir && pw->pw_dir[0] ? pw->pw_dir : "/");
        found = true;
    }
    if (f)
        fclose(f);
    return found;
}

int demo_user_resolve(struct demo_user *u)
{
    memset(u, 0, sizeof(*u));
    bool root = geteuid() == 0;
    if (!passwd_lookup(root ? RUN_USER : NULL, getuid(), u)) {
        if (root)
            fprintf(stderr,
                    "pgwarden demo: the '%s' user does not exist (it comes with "
                    "PostgreSQL: apt-get install postgresql-15)\n",
                    RUN_USER);
        else
            fprintf(stderr, "pgwarden demo: cannot look up user %d\n", (int)getuid());
        return -ENOENT;
    }
    u->drop = root && u->uid != 0;
    return 0;
}

/* Makes path owned by the servers' user (when started as root). */
static void give(const char *path, const struct demo_user *u)
{
    if (u->drop && lchown(path, u->uid, u->gid) != 0)
        fprintf(stderr, "pgwarden demo: chown %s: %s\n", path, strerror(errno));
}

/* mkdir -p; the last component gets `mode` and is given to u. */
static int make_dir(const char *path, mode_t mode, const struct demo_user *u)
{
    char tmp[PGW_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            int err = errno;
            fprintf(stderr, "pgwarden demo: cannot create %s: %s\n", tmp, strerror(err));
            return -err;
        }
        *p = '/';
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        int err = errno;
        fprintf(stderr, "pgwarden demo: cannot create %s: %s\n", path, strerror(err));
        return -err;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "pgwarden demo: %s is not a folder\n", path);
        return -ENOTDIR;
    }
    give(path, u);
    return 0;
}

/* 0 if dir does not exist, is empty (but for the lock file) or holds a demo state file;
 * -ENOTEMPTY (printed) for any other folder, which the demo must never use or wipe. */
static int check_demo_dir(const char *dir)
{
    char state[PGW_PATH_MAX];
    if (!demo_path(state, sizeof(state), "%s/%s", dir, DEMO_STATE_FILE))
        return -ENAMETOOLONG;
    if (access(state, F_OK) == 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    const struct dirent *de;
    int others = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            strcmp(de->d_name, DEMO_LOCK_FILE) != 0)
            others++;
    }
    closedir(d);
    if (others == 0)
        return 0;
    fprintf(stderr,
            "pgwarden demo: %s is not empty and is not a demo folder (no %s): refusing to use "
            "it; pick another --dir\n",
            dir, DEMO_STATE_FILE);
    return -ENOTEMPTY;
}

int demo_lock(const char *dir, const struct demo_user *u)
{
    char path[PGW_PATH_MAX];
    int rc = check_demo_dir(dir);
    if (rc < 0)
        return rc;
    rc = make_dir(dir, 0755, u);
    if (rc < 0)
        return rc;
    if (!demo_path(path, sizeof(path), "%s/%s", dir, DEMO_LOCK_FILE))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        int err = errno;
        fprintf(stderr, "pgwarden demo: cannot open %s: %s\n", path, strerror(err));
        return -err;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        close(fd);
        if (err == EWOULDBLOCK) {
            fprintf(stderr,
                    "pgwarden demo: another demo (pid %s) is running on %s; stop it first "
                    "(Ctrl-C in its terminal, or kill -INT %s)\n",
                    buf[0] ? buf : "?", dir, buf[0] ? buf : "<pid>");
            return -EBUSY;
        }
        fprintf(stderr, "pgwarden demo: cannot lock %s: %s\n", path, strerror(err));
        return -err;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int err = errno;
        fprintf(stderr, "pgwarden demo: cannot write %s: %s\n", path, strerror(err));
        close(fd);
        return -err;
    }
    if (u->drop && fchown(fd, u->uid, u->gid) != 0)
        fprintf(stderr, "pgwarden demo: chown %s: %s\n", path, strerror(errno));
    return fd;
}

static int wipe_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level == 0 || (ftw->level == 1 && strcmp(path + ftw->base, DEMO_LOCK_FILE) == 0))
        return 0;
    if (remove(path) != 0) {
        fprintf(stderr, "pgwarden demo: cannot remove %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int demo_wipe(const char *dir)
{
    int rc = check_demo_dir(dir);
    if (rc < 0)
        return rc;
    if (nftw(dir, wipe_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0)
        return -EIO;
    return 0;
}

int demo_make_dirs(const char *dir, const struct demo_user *u)
{
    static const char *const parts[] = {"logs", "etcd", "n%d", "n%d/state", "n%d/data"};
    char rel[32], path[PGW_PATH_MAX];
    for (int i = 1; i <= DEMO_NODES; i++) {
        for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
            if (i > 1 && k < 2)
                continue;
            snprintf(rel, sizeof(rel), parts[k], i);
            if (!demo_path(path, sizeof(path), "%s/%s", dir, rel))
                return -ENAMETOOLONG;
            int rc = make_dir(path, k == 0 ? 0755 : 0700, u);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Writes text to path (mode, given to u). 0 or -errno (printed). */
static int write_text(const char *path, const char *text, mode_t mode, const struct demo_user *u)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
        int err = errno;
        fprintf(stderr, "pgwarden demo: cannot write %s: %s\n", path, strerror(err));
        if (fd >= 0)
            close(fd);
        return -err;
    }
    close(fd);
    give(path, u);
    return 0;
}

/* A config value in double quotes (the reader's escapes: \" and \\). */
static void quoted(char *out, size_t cap, const char *v)
{
    size_t o = 0;
    if (cap < 3) {
        if (cap)
            out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (; *v && o + 3 < cap; v++) {
        if (*v == '"' || *v == '\\')
            out[o++] = '\\';
        out[o++] = *v;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* The config text of node i (1-based). */
static bool node_config(char *out, size_t cap, const struct demo_opts *o,
                        const struct demo_state *st, int i)
{
    const struct demo_ports *p = &st->port[i - 1];
    char state_dir[PGW_PATH_MAX + 16], data_dir[PGW_PATH_MAX + 16], bin_dir[PGW_PATH_MAX + 16];
    char path[PGW_PATH_MAX];
    if (!demo_path(path, sizeof(path), "%s/n%d/state", o->dir, i))
        return false;
    quoted(state_dir, sizeof(state_dir), path);
    if (!demo_path(path, sizeof(path), "%s/n%d/data", o->dir, i))
        return false;
    quoted(data_dir, sizeof(data_dir), path);
    quoted(bin_dir, sizeof(bin_dir), o->bin_dir);
    int n = snprintf(
        out, cap,
        "# Node n%d of the pgwarden demo in %s, written by `pgwarden demo` on every start\n"
        "# (edit platform/pgwarden.conf.example for a real node; this file holds passwords).\n"
        "\n[node]\nname = n%d\nstate_dir = %s\n"
        "\n[log]\nlevel = info\n"
        "\n[etcd]\nendpoints = http://127.0.0.1:%lld,http://127.0.0.1:%lld,http://127.0.0.1:%lld\n"
        "scope = " DEMO_SCOPE "\n"
        "\n[postgresql]\nbin_dir = %s\ndata_dir = %s\nlisten = 127.0.0.1:%lld\n"
        "superuser_password = %s\nreplication_password = %s\n"
        "\n[proxy]\nrw_listen = 127.0.0.1:%lld\nro_listen = 127.0.0.1:%lld\n"
        "\n[web]\nlisten = 127.0.0.1:%lld\nusers = " DEMO_ADMIN_USER ":admin:%s\n"
        "\n[supervisor]\nshutdown_timeout = 20s\n",
        i, o->dir, i, state_dir, st->port[0].etcd_client, st->port[1].etcd_client,
        st->port[2].etcd_client, bin_dir, data_dir, p->pg, st->superuser_password,
        st->replication_password, p->rw, p->ro, p->web, st->admin_hash);
    return n > 0 && (size_t)n < cap;
}

/* Loads path with the agent's own settings loader, so a bad file is caught before any start. */
static bool config_ok(const char *path)
{
    struct pgw_config *cfg = calloc(1, sizeof(*cfg));
    struct cfg_errors *e = calloc(1, sizeof(*e));
    bool ok = cfg && e && settings_load(path, NULL, cfg, e);
    if (!ok && e)
        cfg_errors_print(e, stderr);
    if (!cfg || !e)
        fprintf(stderr, "pgwarden demo: out of memory\n");
    free(cfg);
    free(e);
    return ok;
}

int demo_write_configs(const struct demo_opts *o, const struct demo_state *st,
                       const struct demo_user *u)
{
    char path[PGW_PATH_MAX];
    enum { TEXT_CAP = 8192 };
    char *text = malloc(TEXT_CAP);
    int rc = 0;
    if (!text) {
        fprintf(stderr, "pgwarden demo: out of memory\n");
        return -ENOMEM;
    }
    for (int i = 1; i <= DEMO_NODES && rc == 0; i++) {
        if (!demo_path(path, sizeof(path), "%s/n%d.conf", o->dir, i) ||
            !node_config(text, TEXT_CAP, o, st, i)) {
            rc = -ENAMETOOLONG;
            break;
        }
        rc = write_text(path, text, 0600, u);
        if (rc == 0 && !config_ok(path))
            rc = -EINVAL;
    }
    if (rc == 0 && demo_path(path, sizeof(path), "%s/%s", o->dir, DEMO_PASSWORD_FILE)) {
        snprintf(text, TEXT_CAP, "%s\n", st->admin_password);
        rc = write_text(path, text, 0600, u);
    }
    explicit_bzero(text, TEXT_CAP);
    free(text);
    return rc;
}

bool demo_user_can_use(const struct demo_user *u, const char *dir, const char *exe)
{
    if (!u->drop)
        return true;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "pgwarden demo: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0)
            _exit(3);
        if (access(dir, R_OK | W_OK | X_OK) != 0)
            _exit(1);
        _exit(access(exe, X_OK) == 0 ? 0 : 2);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 3;
    if (code == 1)
        fprintf(stderr,
                "pgwarden demo: the %s user cannot use %s (a parent folder is not searchable "
                "by it?); pick a --dir under /var/tmp or /tmp\n",
                u->name, dir);
    else if (code == 2)
        fprintf(stderr,
                "pgwarden demo: the %s user cannot run %s (copy the binary somewhere "
                "it can reach, e.g. /usr/local/bin)\n",
                u->name, exe);
    else if (code != 0)
        fprintf(stderr, "pgwarden demo: cannot switch to the %s user\n", u->name);
    return code == 0;
}
