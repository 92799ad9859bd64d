/* Process spawn: run a program with a timeout, captured output and optional stdin data. */
#define LOG_MODULE "spawn"
#include "platform/spawn.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    SPAWN_DEFAULT_GRACE_MS = 2000,
    SPAWN_DEFAULT_CAP = 64 * 1024,
    SPAWN_CHUNK = 16 * 1024,
    SPAWN_TICK_MS = 10,           /* exit polling when pidfd_open is unavailable */
    SPAWN_DEFAULT_TICK_MS = 1000, /* o->tick when o->tick_ms is not set */
    SPAWN_MAX_CLOSE = 65536,      /* fallback close loop bound when close_range is unavailable */
};

/* Where the child failed, reported with its errno through the exec error pipe. */
enum { STAGE_SETUP = 1, STAGE_CHDIR, STAGE_EXEC };
static const char *const stage_names[] = {"?", "setup", "chdir", "exec"};

/* Everything one run needs; the child uses only what was prepared before fork. */
struct spawn_ctx {
    const struct spawn_opts *o;
    struct spawn_result *r;
    char path[PATH_MAX];
    char *const *envp;
    int out_r, out_w;     /* output pipe */
    int in_par, in_child; /* stdin: socketpair ends, or -1 and /dev/null */
    int err_r, err_w;     /* exec error report pipe, close-on-exec */
    int max_fd;           /* for the fallback close loop */
    pid_t pid;
    int pidfd;
    size_t cap, alloc;
    size_t in_len, in_off;
    bool exited;
    int stage; /* 0 running, 1 SIGTERM sent, 2 SIGKILL sent */
    uint64_t start, deadline;
    uint64_t next_tick; /* when o->tick is due */
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* execvp-like lookup done in the parent, so the child only calls execve. */
static int resolve_path(const char *name, char *out, size_t cap)
{
    if (name[0] == '\0')
        return -ENOENT;
    if (strchr(name, '/')) {
        if ((size_t)snprintf(out, cap, "%s", name) >= cap)
            return -ENAMETOOLONG;
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int err = -ENOENT;
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        int n = dlen ? snprintf(out, cap, "%.*s/%s", (int)dlen, p, name)
                     : snprintf(out, cap, "./%s", name);
        struct stat st;
        if (n > 0 && (size_t)n < cap && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(out, X_OK) == 0)
                return 0;
            err = -EACCES;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return err;
}

static int fd_above_stdio(int fd)
{
    return fd > 2 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static void close_from(int lo, int hi, int max_fd)
{
    if (lo > hi)
        return;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0u) == 0)
        return;
#endif
    for (int fd = lo; fd <= hi && fd <= max_fd; fd++)
        close(fd);
}

/* In the child after fork: only async-signal-safe calls. Never returns. */
__attribute__((noreturn)) static void child_exec(const struct spawn_ctx *c)
{
    int report[2] = {STAGE_SETUP, 0}; /* stage, errno */
    int err_fd = fd_above_stdio(c->err_w);
    int in_fd = fd_above_stdio(c->in_child);
    int out_fd = fd_above_stdio(c->out_w);
    if (err_fd < 0 || in_fd < 0 || out_fd < 0)
        goto fail;
    if (setpgid(0, 0) < 0)
        goto fail;
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        goto fail;
    report[0] = STAGE_CHDIR;
    if (c->o->cwd && chdir(c->o->cwd) < 0)
        goto fail;
    report[0] = STAGE_SETUP;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL); /* EINVAL for libc-reserved ones: fine */
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        goto fail;
    /* Everything we open is close-on-exec already; this also covers others' leaks. */
    close_from(3, err_fd - 1, c->max_fd);
    close_from(err_fd + 1, INT_MAX, c->max_fd);
    report[0] = STAGE_EXEC;
    execve(c->path, (char *const *)c->o->argv, c->envp);
fail:
    report[1] = errno;
    if (err_fd >= 0) {
        ssize_t w;
        do {
            w = write(err_fd, report, sizeof(report));
        } while (w < 0 && errno == EINTR);
    }
    _exit(127);
}

/* Appends output, keeping the first `cap` bytes. */
static void out_append(struct spawn_ctx *c, const char *data, size_t n)
{
    struct spawn_result *r = c->r;
    size_t room = c->cap - r->output_len;
    size_t take = n;
    if (take > room) {
        take = room;
        r->output_truncated = true;
    }
    if (take == 0)
        return;
    if (r->output_len + take + 1 > c->alloc) {
        size_t want = c->alloc * 2;
        while (want < r->output_len + take + 1)
            want *= 2;
        if (want > c->cap + 1)
            want = c->cap + 1;
        char *p = realloc(r->output, want);
        if (!p) {
            r->output_truncated = true; /* keep what we have; drain the rest */
            return;
        }
        r->output = p;
        c->alloc = want;
    }
    memcpy(r->output + r->output_len, data, take);
    r->output_len += take;
    r->output[r->output_len] = '\0';
}

/* Reads what is available. False once EOF (or an error) closed the pipe. */
static bool out_drain(struct spawn_ctx *c)
{
    char chunk[SPAWN_CHUNK];
    for (;;) {
        ssize_t n = read(c->out_r, chunk, sizeof(chunk));
        if (n > 0) {
            out_append(c, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        close_fd(&c->out_r);
        return false;
    }
}

static void in_feed(struct spawn_ctx *c)
{
    while (c->in_off < c->in_len) {
        ssize_t n = send(c->in_par, c->o->stdin_data + c->in_off, c->in_len - c->in_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break; /* EPIPE: the child does not read its stdin; fine */
    }
    close_fd(&c->in_par); /* EOF for the child */
}

static bool child_has_exited(const struct spawn_ctx *c)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == ECHILD; /* should not happen; do not spin forever */
    return si.si_pid != 0;
}

/* Sends the timeout signals when their deadline has passed. */
static void check_deadline(struct spawn_ctx *c, uint64_t now, bool cancel)
{
    if (c->stage == 0 && (cancel || (c->o->timeout_ms > 0 && now >= c->deadline))) {
        if (cancel)
            c->r->cancelled = true;
        else
            c->r->timed_out = true;
        c->stage = 1;
        int grace = c->o->kill_grace_ms > 0 ? c->o->kill_grace_ms : SPAWN_DEFAULT_GRACE_MS;
        c->deadline = now + (uint64_t)grace;
        log_warn(cancel ? "program cancelled, sending SIGTERM"
                        : "program timed out, sending SIGTERM",
                 "prog=%s timeout_ms=%d grace_ms=%d", c->o->argv[0], c->o->timeout_ms, grace);
        (void)kill(-c->pid, SIGTERM);
    } else if (c->stage == 1 && now >= c->deadline) {
        c->stage = 2;
        log_warn("program still running after SIGTERM, sending SIGKILL", "prog=%s", c->o->argv[0]);
        (void)kill(-c->pid, SIGKILL);
    }
}

static int tick_interval(const struct spawn_opts *o)
{
    return o->tick_ms > 0 ? o->tick_ms : SPAWN_DEFAULT_TICK_MS;
}

static int poll_timeout(const struct spawn_ctx *c, uint64_t now)
{
    int t = -1;
    bool armed = (c->stage == 0 && c->o->timeout_ms > 0) || c->stage == 1;
    if (armed) {
        uint64_t left = c->deadline > now ? c->deadline - now : 0;
        t = left > INT_MAX ? INT_MAX : (int)left;
    }
    if (c->pidfd < 0 && (t < 0 || t > SPAWN_TICK_MS))
        t = SPAWN_TICK_MS;
    if (c->o->tick) {
        uint64_t left = c->next_tick > now ? c->next_tick - now : 0;
        if (t < 0 || left < (uint64_t)t)
            t = (int)left;
    }
    return t;
}

static void maybe_tick(struct spawn_ctx *c)
{
    if (!c->o->tick || clock_mono_ms() < c->next_tick)
        return;
    c->o->tick(c->o->tick_arg);
    c->next_tick = clock_mono_ms() + (uint64_t)tick_interval(c->o);
}

/* Runs until the child has exited (not yet reaped). */
static void supervise(struct spawn_ctx *c)
{
    bool cancel = false;
    while (!c->exited) {
        maybe_tick(c);
        check_deadline(c, clock_mono_ms(), cancel);
        struct pollfd pf[4];
        int n = 0, i_out = -1, i_in = -1, i_pid = -1, i_cancel = -1;
        if (c->out_r >= 0) {
            i_out = n;
            pf[n++] = (struct pollfd){.fd = c->out_r, .events = POLLIN};
        }
        if (c->in_par >= 0) {
            i_in = n;
            pf[n++] = (struct pollfd){.fd = c->in_par, .events = POLLOUT};
        }
        if (c->pidfd >= 0) {
            i_pid = n;
            pf[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
        }
        if (c->o->cancel_fd > 0 && c->stage == 0) {
            i_cancel = n;
            pf[n++] = (struct pollfd){.fd = c->o->cancel_fd, .events = POLLIN};
        }
        int rc = poll(pf, (nfds_t)n, poll_timeout(c, clock_mono_ms()));
        if (rc < 0 && errno != EINTR) {
            log_error("poll failed", "prog=%s err=\"%s\"", c->o->argv[0], strerror(errno));
            c->exited = true; /* fall back to a blocking reap */
            return;
        }
        if (rc > 0 && i_out >= 0 && pf[i_out].revents)
            (void)out_drain(c);
        if (rc > 0 && i_in >= 0 && pf[i_in].revents)
            in_feed(c);
        if (rc > 0 && i_cancel >= 0 && pf[i_cancel].revents)
            cancel = true;
        if (i_pid >= 0)
            c->exited = rc > 0 && pf[i_pid].revents != 0;
        else
            c->exited = child_has_exited(c);
    }
    /* Whatever the child wrote before exiting is in the pipe now; do not wait for EOF
     * (a daemonized grandchild may hold the pipe open). */
    if (c->out_r >= 0)
        (void)out_drain(c);
}

static int start_child(struct spawn_ctx *c)
{
    int pfd[2], efd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    c->out_r = pfd[0];
    c->out_w = pfd[1];
    if (pipe2(efd, O_CLOEXEC) < 0)
        return -errno;
    c->err_r = efd[0];
    c->err_w = efd[1];
    if (fcntl(c->out_r, F_SETFL, O_NONBLOCK) < 0)
        return -errno;
    if (c->o->stdin_data) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            return -errno;
        c->in_par = sv[0];
        c->in_child = sv[1];
        if (shutdown(c->in_par, SHUT_RD) < 0)
            return -errno;
        c->in_len = strlen(c->o->stdin_data);
    } else {
        c->in_child = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (c->in_child < 0)
            return -errno;
    }
    c->pid = fork();
    if (c->pid < 0)
        return -errno;
    if (c->pid == 0)
        child_exec(c);
    (void)setpgid(c->pid, c->pid); /* also done by the child; whoever is first wins */
    close_fd(&c->out_w);
    close_fd(&c->err_w);
    close_fd(&c->in_child);
    if (c->in_par >= 0 && fcntl(c->in_par, F_SETFL, O_NONBLOCK) < 0)
        log_warn("cannot make stdin socket nonblocking", "err=\"%s\"", strerror(errno));

    /* EOF: execve succeeded (the pipe was close-on-exec). Else the stage and errno. */
    int report[2] = {0, 0};
    ssize_t n;
    do {
        n = read(c->err_r, report, sizeof(report));
    } while (n < 0 && errno == EINTR);
    close_fd(&c->err_r);
    if (n != (ssize_t)sizeof(report))
        return 0;
    int err = report[1] > 0 ? report[1] : EIO;
    int stage = report[0] >= STAGE_SETUP && report[0] <= STAGE_EXEC ? report[0] : 0;
    log_error("cannot start program", "prog=%s stage=%s err=\"%s\"", c->o->argv[0],
              stage_names[stage], strerror(err));
    return -err;
}

static void reap(struct spawn_ctx *c)
{
    int status = 0;
    pid_t w;
    do {
        w = waitpid(c->pid, &status, 0);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        log_error("waitpid failed", "pid=%d err=\"%s\"", (int)c->pid, strerror(errno));
        c->r->exit_code = -1;
        return;
    }
    if (WIFEXITED(status)) {
        c->r->exit_code = WEXITSTATUS(status);
    } else {
        c->r->exit_code = -1;
        c->r->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
}

int spawn_run(const struct spawn_opts *o, struct spawn_result *r)
{
    memset(r, 0, sizeof(*r));
    if (!o || !o->argv || !o->argv[0])
        return -EINVAL;
    struct spawn_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct spawn_ctx){.o = o,
                            .r = r,
                            .out_r = -1,
                            .out_w = -1,
                            .in_par = -1,
                            .in_child = -1,
                            .err_r = -1,
                            .err_w = -1,
                            .pid = -1,
                            .pidfd = -1,
                            .max_fd = SPAWN_MAX_CLOSE,
                            .envp = o->envp ? (char *const *)o->envp : environ};
    int rc = 0;
    c->cap = o->out_cap ? o->out_cap : SPAWN_DEFAULT_CAP;
    c->alloc = (c->cap < 4096 ? c->cap : 4096) + 1;
    r->output = malloc(c->alloc);
    if (!r->output) {
        rc = -ENOMEM;
        goto out;
    }
    r->output[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < SPAWN_MAX_CLOSE)
        c->max_fd = (int)rl.rlim_cur;

    rc = resolve_path(o->argv[0], c->path, sizeof(c->path));
    if (rc < 0) {
        log_error("cannot start program", "prog=%s err=\"%s\"", o->argv[0], strerror(-rc));
        goto out;
    }
    c->start = clock_mono_ms();
    c->deadline = c->start + (o->timeout_ms > 0 ? (uint64_t)o->timeout_ms : 0);
    c->next_tick = c->start + (uint64_t)tick_interval(o);
    rc = start_child(c);
    if (rc < 0) {
        if (c->pid > 0)
            reap(c); /* the child reported its failure (logged) and exited */
        else
            log_error("cannot start program", "prog=%s err=\"%s\"", o->argv[0], strerror(-rc));
        goto out;
    }
#ifdef SYS_pidfd_open
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0u); /* -1 on old kernels: poll instead */
#endif
    if (c->in_par >= 0)
        in_feed(c);
    supervise(c);
    if (r->timed_out)
        (void)kill(-c->pid, SIGKILL); /* stragglers in the group; the zombie holds the pgid */
    reap(c);
    r->elapsed_ms = clock_mono_ms() - c->start;

out:
    close_fd(&c->out_r);
    close_fd(&c->out_w);
    close_fd(&c->in_par);
    close_fd(&c->in_child);
    close_fd(&c->err_r);
    close_fd(&c->err_w);
    close_fd(&c->pidfd);
    free(c);
    if (rc < 0) {
        /* Nothing ran: no output, and no exit status that could pass for the program's. */
        free(r->output);
        memset(r, 0, sizeof(*r));
        r->exit_code = -1;
    }
    return rc;
}

void spawn_result_free(struct spawn_result *r)
{
    if (!r)
        return;
    free(r->output);
    r->output = NULL;
    r->output_len = 0;
}
