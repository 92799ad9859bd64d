/* The postmaster: postmaster.pid parsing, identity checks for adoption, and death notification. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/log.h"
#include "platform/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { WATCH_POLL_MS = 100 };

const char *pg_pm_status_name(enum pg_pm_status s)
{
    switch (s) {
    case PG_PM_STARTING:
        return "starting";
    case PG_PM_STOPPING:
        return "stopping";
    case PG_PM_READY:
        return "ready";
    case PG_PM_STANDBY:
        return "standby";
    case PG_PM_UNKNOWN:
        break;
    }
    return "unknown";
}

static void copy_line(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int pg_postmaster_pid_parse(const char *text, struct pg_postmaster *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = text;
    for (int line = 1; p && *p && line <= 8; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char buf[PGW_PATH_MAX];
        copy_line(buf, sizeof(buf), p, n);
        if (n >= sizeof(buf)) /* a longer line was cut: trim what was kept, not past buf */
            n = sizeof(buf) - 1;
        while (n > 0 && buf[n - 1] == ' ')
            buf[--n] = '\0';
        const char *v = buf;
        while (*v == ' ')
            v++;
        uint64_t num = 0;
        switch (line) {
        case 1:
            if (!pgi_parse_u64(v, &num) || num == 0 || num > INT_MAX)
                return -EBADMSG;
            out->pid = (pid_t)num;
            break;
        case 2:
            copy_line(out->data_dir, sizeof(out->data_dir), v, strlen(v));
            break;
        case 3:
            if (pgi_parse_u64(v, &num))
                out->start_time = (int64_t)num;
            break;
        case 4:
            if (pgi_parse_u64(v, &num) && num <= 65535)
                out->port = (uint16_t)num;
            break;
        case 5:
            copy_line(out->socket_dir, sizeof(out->socket_dir), v, strlen(v));
            break;
        case 6:
            copy_line(out->listen_addr, sizeof(out->listen_addr), v, strlen(v));
            break;
        case 8:
            out->status = strcmp(v, "starting") == 0   ? PG_PM_STARTING
                          : strcmp(v, "stopping") == 0 ? PG_PM_STOPPING
                          : strcmp(v, "ready") == 0    ? PG_PM_READY
                          : strcmp(v, "standby") == 0  ? PG_PM_STANDBY
                                                       : PG_PM_UNKNOWN;
            break;
        default:
            break;
        }
        p = nl ? nl + 1 : NULL;
    }
    return out->pid > 0 ? 0 : -EBADMSG;
}

bool pg_postmaster_alive(const struct pg_postmaster *pm)
{
    char state = 0;
    uint64_t start = 0;
    if (pm->pid <= 0 || !pgi_proc_stat(pm->pid, NULL, 0, &state, &start))
        return false;
    if (state == 'Z' || state == 'X')
        return false;
    return pm->proc_start == 0 || start == pm->proc_start;
}

/* Is pid a postgres process whose working directory is data_dir (when we can tell)? */
static bool is_our_postmaster(const struct pg_instance *pg, pid_t pid, uint64_t *start)
{
    char comm[32], state = 0;
    if (!pgi_proc_stat(pid, comm, sizeof(comm), &state, start))
        return false;
    if (state == 'Z' || state == 'X')
        return false;
    if (strcmp(comm, "postgres") != 0 && strcmp(comm, "postmaster") != 0)
        return false;
    char link[64], cwd[PATH_MAX], want[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
    ssize_t n = readlink(link, cwd, sizeof(cwd) - 1);
    if (n < 0)
        return errno == EACCES || errno == EPERM; /* cannot tell: trust comm */
    cwd[n] = '\0';
    if (!realpath(pg->data_dir, want))
        return false;
    return strcmp(cwd, want) == 0;
}

int pg_postmaster_find(const struct pg_instance *pg, struct pg_postmaster *out,
                       struct pg_error *err)
{
    memset(out, 0, sizeof(*out));
    char path[PGI_PATH];
    if (pgi_path(path, sizeof(path), pg->data_dir, "postmaster.pid") < 0)
        return pgi_fail(err, "postmaster.pid", -ENAMETOOLONG, "data_dir is too long");
    char *text = NULL;
    int rc = pgi_read_file(path, 64 * 1024, &text, NULL);
    if (rc == -ENOENT || rc == -ENOTDIR)
        return -ESRCH;
    if (rc < 0)
        return pgi_fail(err, "postmaster.pid", rc, "cannot read %s: %s", path, strerror(-rc));
    if (text[0] == '\0') {
        free(text);
        return -ESRCH; /* a crash while the file was being created */
    }
    rc = pg_postmaster_pid_parse(text, out);
    free(text);
    if (rc < 0)
        return pgi_fail(err, "postmaster.pid", rc, "cannot parse %s", path);
    uint64_t start = 0;
    if (!is_our_postmaster(pg, out->pid, &start))
        return -ESRCH;
    out->proc_start = start;
    return 0;
}

/* ---- death notification ---- */

struct pg_watch {
    struct loop *l;
    pid_t pid;
    struct pg_postmaster pm;
    int pidfd;
    uint64_t timer;
    pg_watch_cb cb;
    void *arg;
    bool fired;
    bool via_pidfd;
};

static void disarm(struct pg_watch *w)
{
    if (w->pidfd >= 0) {
        (void)loop_del_fd(w->l, w->pidfd);
        close(w->pidfd);
        w->pidfd = -1;
    }
    if (w->timer) {
        (void)loop_cancel_timer(w->l, w->timer);
        w->timer = 0;
    }
}

/* Last thing the watch does: cb may free it. */
static void fire(struct pg_watch *w)
{
    if (w->fired)
        return;
    w->fired = true;
    disarm(w);
    log_warn("postmaster is gone", "pid=%d", (int)w->pid);
    w->cb(w, w->pid, w->arg);
}

static void on_pidfd(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    fire(arg);
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    struct pg_watch *w = arg;
    if (id != w->timer)
        return;
    if (w->via_pidfd)
        w->timer = 0; /* the one-shot "already gone" timer has fired */
    if (!pg_postmaster_alive(&w->pm))
        fire(w);
}

struct pg_watch *pg_watch_start(struct loop *l, const struct pg_postmaster *pm, int poll_ms,
                                pg_watch_cb cb, void *arg)
{
    struct pg_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        log_error("cannot watch the postmaster", "err=\"out of memory\"");
        return NULL;
    }
    *w = (struct pg_watch){.l = l, .pid = pm->pid, .pm = *pm, .pidfd = -1, .cb = cb, .arg = arg};
    if (w->pm.proc_start == 0)
        (void)pgi_proc_stat(pm->pid, NULL, 0, NULL, &w->pm.proc_start);
#ifdef SYS_pidfd_open
    if (poll_ms >= 0)
        w->pidfd = (int)syscall(SYS_pidfd_open, pm->pid, 0u);
#endif
    if (w->pidfd >= 0) {
        w->via_pidfd = true;
        (void)fcntl(w->pidfd, F_SETFD, FD_CLOEXEC);
        int rc = loop_add_fd(l, w->pidfd, LOOP_READ, on_pidfd, w);
        if (rc < 0) {
            log_error("cannot watch the postmaster", "pid=%d err=\"%s\"", (int)pm->pid,
                      strerror(-rc));
            close(w->pidfd);
            free(w);
            return NULL;
        }
        /* The pidfd refers to whatever had that pid when opened: if that is no longer the
         * postmaster we meant, report it gone. */
        if (!pg_postmaster_alive(&w->pm))
            w->timer = loop_add_timer(l, 0, 0, on_timer, w);
        log_info("watching the postmaster", "pid=%d via=pidfd", (int)pm->pid);
        return w;
    }
    int ms = poll_ms > 0 ? poll_ms : poll_ms < 0 ? -poll_ms : WATCH_POLL_MS;
    w->timer = loop_add_timer(l, 0, (uint64_t)ms, on_timer, w);
    if (!w->timer) {
        log_error("cannot watch the postmaster", "pid=%d err=\"out of memory\"", (int)pm->pid);
        free(w);
        return NULL;
    }
    log_info("watching the postmaster", "pid=%d via=poll interval_ms=%d", (int)pm->pid, ms);
    return w;
}

bool pg_watch_uses_pidfd(const struct pg_watch *w)
{
    return w && w->via_pidfd;
}

void pg_watch_stop(struct pg_watch *w)
{
    if (!w)
        return;
    disarm(w);
    free(w);
}
