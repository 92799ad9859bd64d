/* demo processes: start a server in its own session as the run user with its output in a log
 * file, reap it, stop a group of them with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/demo/demo.h"

enum { STOP_TICK_MS = 100, KILL_WAIT_MS = 5000, MAX_CLOSE_FD = 65536 };

/* Where the child failed, reported with errno through a close-on-exec pipe. */
enum { STAGE_SETUP = 1, STAGE_USER, STAGE_CHDIR, STAGE_EXEC };
static const char *const stage_names[] = {"?", "setup", "switch user", "chdir", "exec"};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* fd moved above 2 (close-on-exec), or -1. */
static int above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

/* Closes every fd above 2 but keep (> 2). */
static void close_others(int keep)
{
#ifdef SYS_close_range
    if ((keep == 3 || syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u) == 0) &&
        syscall(SYS_close_range, (unsigned)keep + 1, UINT_MAX, 0u) == 0)
        return;
#endif
    for (int fd = 3; fd < MAX_CLOSE_FD; fd++) {
        if (fd != keep)
            close(fd);
    }
}

/* In the child after fork: async-signal-safe calls only. Never returns. */
__attribute__((noreturn)) static void child_exec(const char *const *argv, char *const *envp,
                                                 const char *cwd, const struct demo_user *u,
                                                 int null_fd, int log_fd, int err_fd)
{
    int report[2] = {STAGE_SETUP, 0};
    if (setsid() < 0 || dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
        goto fail;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        goto fail;
    report[0] = STAGE_USER;
    if (u->drop && (setgroups(0, NULL) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0))
        goto fail;
    report[0] = STAGE_CHDIR;
    if (cwd && chdir(cwd) < 0)
        goto fail;
    close_others(err_fd);
    report[0] = STAGE_EXEC;
    execve(argv[0], (char *const *)argv, envp);
fail:
    report[1] = errno;
    ssize_t w;
    do {
        w = write(err_fd, report, sizeof(report));
    } while (w < 0 && errno == EINTR);
    _exit(127);
}

int demo_proc_start(struct demo_proc *p, const char *const *argv, char *const *envp,
                    const char *cwd, const struct demo_user *u)
{
    int errp[2] = {-1, -1};
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log_fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
    int rc = 0;
    p->pid = 0;
    p->exited = false;
    p->status = 0;
    if (null_fd < 0 || log_fd < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        rc = -errno;
        fprintf(stderr, "pgwarden demo: cannot start %s (%s): %s\n", p->name, p->log,
                strerror(-rc));
        goto out;
    }
    if (u->drop && fchown(log_fd, u->uid, u->gid) != 0)
        fprintf(stderr, "pgwarden demo: chown %s: %s\n", p->log, strerror(errno));
    /* None of them may sit on 0-2, which the child replaces. */
    null_fd = above_stdio(null_fd);
    log_fd = above_stdio(log_fd);
    errp[1] = above_stdio(errp[1]);
    fflush(NULL);
    pid_t pid = errp[1] < 0 || null_fd < 0 || log_fd < 0 ? -1 : fork();
    if (pid < 0) {
        rc = -errno;
        fprintf(stderr, "pgwarden demo: cannot start %s: %s\n", p->name, strerror(-rc));
        goto out;
    }
    if (pid == 0)
        child_exec(argv, envp, cwd, u, null_fd, log_fd, errp[1]);
    close(errp[1]);
    errp[1] = -1;
    int report[2];
    ssize_t n;
    do {
        n = read(errp[0], report, sizeof(report));
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(report)) {
        int st = report[0] >= 1 && report[0] <= STAGE_EXEC ? report[0] : 0;
        fprintf(stderr, "pgwarden demo: cannot start %s (%s): %s: %s\n", p->name, argv[0],
                stage_names[st], strerror(report[1]));
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        rc = report[1] ? -report[1] : -EIO;
        goto out;
    }
    p->pid = pid;
out:
    if (null_fd >= 0)
        close(null_fd);
    if (log_fd >= 0)
        close(log_fd);
    if (errp[0] >= 0)
        close(errp[0]);
    if (errp[1] >= 0)
        close(errp[1]);
    return rc;
}

bool demo_proc_reap(struct demo_proc *p)
{
    if (p->pid <= 0 || p->exited)
        return false;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r != p->pid)
        return false;
    p->status = status;
    p->exited = true;
    return true;
}

void demo_proc_describe(const struct demo_proc *p, char *out, size_t cap)
{
    if (WIFEXITED(p->status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
    else
        snprintf(out, cap, "stopped");
}

/* True if a SIGINT or SIGTERM is waiting on the signalfd (other signals are consumed). */
static bool interrupted(int sig_fd, int wait_ms)
{
    struct pollfd pfd = {.fd = sig_fd, .events = POLLIN};
    if (sig_fd < 0) {
        poll(NULL, 0, wait_ms);
        return false;
    }
    if (poll(&pfd, 1, wait_ms) <= 0)
        return false;
    struct signalfd_siginfo si;
    bool stop = false;
    while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
            stop = true;
    }
    return stop;
}

static size_t running(struct demo_proc *const *procs, size_t n)
{
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        demo_proc_reap(procs[i]);
        if (procs[i]->pid > 0 && !procs[i]->exited)
            left++;
    }
    return left;
}

int demo_proc_stop(struct demo_proc *const *procs, size_t n, int sig, int timeout_ms, int sig_fd)
{
    for (size_t i = 0; i < n; i++) {
        if (procs[i]->pid > 0 && !procs[i]->exited && !demo_proc_reap(procs[i]))
            kill(procs[i]->pid, sig);
    }
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (running(procs, n) > 0 && now_ms() < deadline) {
        if (interrupted(sig_fd, STOP_TICK_MS)) {
            printf("demo: interrupted again: killing what is left\n");
            break;
        }
    }
    int killed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct demo_proc *p = procs[i];
        if (p->pid <= 0 || p->exited)
            continue;
        killed++;
        fprintf(stderr, "pgwarden demo: %s (pid %d) did not stop in time: killing it\n", p->name,
                (int)p->pid);
        kill(-p->pid, SIGKILL); /* its session: the server and what it forked */
        kill(p->pid, SIGKILL);
    }
    deadline = now_ms() + KILL_WAIT_MS;
    while (running(procs, n) > 0 && now_ms() < deadline)
        poll(NULL, 0, 20);
    return killed;
}

void demo_proc_tail(const struct demo_proc *p, int lines)
{
    FILE *f = fopen(p->log, "r");
    if (!f)
        return;
    enum { TAIL_BYTES = 8192 };
    char *buf = malloc(TAIL_BYTES + 1);
    if (!buf) {
        fclose(f);
        return;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    long from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
    size_t len = fseek(f, from, SEEK_SET) == 0 ? fread(buf, 1, TAIL_BYTES, f) : 0;
    buf[len] = '\0';
    fclose(f);
    const char *start = buf + len;
    int seen = 0;
    while (start > buf) {
        if (start[-1] == '\n' && start != buf + len && ++seen > lines)
            break;
        start--;
    }
    fprintf(stderr, "---- last lines of %s ----\n", p->log);
    for (const char *line = start; *line;) {
        size_t l = strcspn(line, "\n");
        fprintf(stderr, "  %.*s\n", (int)l, line);
        line += l + (line[l] ? 1 : 0);
    }
    free(buf);
}
