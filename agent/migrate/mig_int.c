/* Migration plumbing: libpq connect/exec with deadlines and cancellation, tool child processes. */
#include "agent/migrate/mig_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "platform/clock.h"
#include "platform/log.h"

extern char **environ;

/* ---- messages ---- */

void mig_oneline(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    bool space = false;
    if (cap == 0)
        return;
    for (const char *p = in ? in : ""; *p && o + 1 < cap; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            space = o > 0;
            continue;
        }
        if (space) {
            if (o + 2 >= cap)
                break;
            out[o++] = ' ';
            space = false;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
    char *tmp = malloc(cap * 2 + 16);
    if (tmp) {
        log_redact(out, tmp, cap * 2 + 16);
        snprintf(out, cap, "%s", tmp);
        free(tmp);
    }
}

/* ---- libpq ---- */

static bool cancelled(int sigfd)
{
    if (sigfd < 0)
        return false;
    struct pollfd pf = {.fd = sigfd, .events = POLLIN};
    return poll(&pf, 1, 0) > 0;
}

static int remaining(uint64_t deadline)
{
    if (deadline == 0)
        return 1000;
    uint64_t now = clock_mono_ms();
    if (now >= deadline)
        return 0;
    return deadline - now > 1000 ? 1000 : (int)(deadline - now);
}

int mig_connect(const char *conninfo, int timeout_ms, int sigfd, PGconn **out, char *err,
                size_t cap)
{
    *out = NULL;
    uint64_t deadline = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 15000);
    PGconn *c = PQconnectStart(conninfo);
    if (!c) {
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    PostgresPollingStatusType st =
        PQstatus(c) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    int rc = 0;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            mig_oneline(PQerrorMessage(c), err, cap);
            rc = -ECONNREFUSED;
            break;
        }
        if (cancelled(sigfd)) {
            snprintf(err, cap, "interrupted");
            rc = -ECANCELED;
            break;
        }
        int left = remaining(deadline);
        if (left == 0) {
            snprintf(err, cap, "no connection within %d s",
                     (timeout_ms > 0 ? timeout_ms : 15000) / 1000);
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd pf = {.fd = PQsocket(c),
                            .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int r = poll(&pf, 1, left);
        if (r < 0 && errno != EINTR) {
            snprintf(err, cap, "poll: %s", strerror(errno));
            rc = -errno;
            break;
        }
        if (r > 0)
            st = PQconnectPoll(c);
    }
    if (rc < 0) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void cancel_query(PGconn *c)
{
    PGcancel *cn = PQgetCancel(c);
    if (cn) {
        char buf[256];
        PQcancel(cn, buf, sizeof(buf));
        PQfreeCancel(cn);
    }
}

int mig_exec(PGconn *c, const char *sql, int nparams, const char *const *params, int timeout_ms,
             int sigfd, PGresult **res, char *sqlstate, char *err, size_t cap)
{
    *res = NULL;
    if (sqlstate)
        sqlstate[0] = '\0';
    int ok = nparams > 0 ? PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0)
                         : PQsendQuery(c, sql);
    if (!ok) {
        mig_oneline(PQerrorMessage(c), err, cap);
        return -ECONNRESET;
    }
    uint64_t deadline = timeout_ms > 0 ? clock_mono_ms() + (uint64_t)timeout_ms : 0;
    PGresult *keep = NULL;
    for (;;) {
        while (!PQisBusy(c)) {
            PGresult *r = PQgetResult(c);
            if (!r)
                goto done;
            ExecStatusType ks = keep ? PQresultStatus(keep) : PGRES_COMMAND_OK;
            if (keep && ks != PGRES_TUPLES_OK && ks != PGRES_COMMAND_OK) {
                PQclear(r);
                continue;
            }
            PQclear(keep);
            keep = r;
        }
        if (cancelled(sigfd) || (deadline && remaining(deadline) == 0)) {
            bool intr = cancelled(sigfd);
            cancel_query(c);
            while (1) { /* drain what the cancel produces */
                PGresult *r = PQgetResult(c);
                if (!r)
                    break;
                PQclear(r);
            }
            PQclear(keep);
            snprintf(err, cap, intr ? "interrupted" : "no answer within %d s", timeout_ms / 1000);
            return intr ? -ECANCELED : -ETIMEDOUT;
        }
        struct pollfd pf = {.fd = PQsocket(c), .events = POLLIN};
        int r = poll(&pf, 1, deadline ? remaining(deadline) : 1000);
        if (r < 0 && errno != EINTR) {
            PQclear(keep);
            snprintf(err, cap, "poll: %s", strerror(errno));
            return -EIO;
        }
        if (r > 0 && !PQconsumeInput(c)) {
            PQclear(keep);
            mig_oneline(PQerrorMessage(c), err, cap);
            if (!err[0])
                snprintf(err, cap, "connection lost");
            return -ECONNRESET;
        }
    }
done:
    if (!keep) {
        snprintf(err, cap, "no result");
        return -EIO;
    }
    ExecStatusType s = PQresultStatus(keep);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
        *res = keep;
        return 0;
    }
    const char *state = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
    if (sqlstate)
        snprintf(sqlstate, 6, "%s", state ? state : "");
    mig_oneline(PQresultErrorMessage(keep), err, cap);
    PQclear(keep);
    if (PQstatus(c) == CONNECTION_BAD)
        return -ECONNRESET;
    return -EIO;
}

int mig_exec_cmd(PGconn *c, const char *sql, int timeout_ms, int sigfd, char *err, size_t cap)
{
    PGresult *r = NULL;
    int rc = mig_exec(c, sql, 0, NULL, timeout_ms, sigfd, &r, NULL, err, cap);
    PQclear(r);
    return rc;
}

char *mig_quote_ident(PGconn *c, const char *name, char *out, size_t cap)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    snprintf(out, cap, "%s", q ? q : "\"\"");
    PQfreemem(q);
    return out;
}

/* ---- child processes ---- */

static bool env_dropped(const char *kv)
{
    return strncmp(kv, "PG", 2) == 0 || strncmp(kv, "LC_", 3) == 0 ||
           strncmp(kv, "LANG=", 5) == 0 || strncmp(kv, "LANGUAGE=", 9) == 0;
}

int mig_child_start(struct mig_child *ch, const char *const *argv)
{
    memset(ch, 0, sizeof(*ch));
    ch->pid = -1;
    ch->fd = -1;
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    const char **envp = calloc(n + 2, sizeof(*envp));
    if (!envp)
        return -ENOMEM;
    size_t o = 0;
    for (char **e = environ; e && *e; e++)
        if (!env_dropped(*e))
            envp[o++] = *e;
    envp[o++] = "LC_ALL=C";
    envp[o] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        int e = -errno;
        free(envp);
        return e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        free(envp);
        return e;
    }
    if (pid == 0) {
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        /* a migrate process that dies (even by SIGKILL) takes its tools with it */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
#ifdef SYS_close_range
        syscall(SYS_close_range, 3u, ~0u, 0u);
#endif
        execve(argv[0], (char *const *)argv, (char *const *)envp);
        char msg[512];
        int len =
            snprintf(msg, sizeof(msg), "%s: error: cannot run it: %s\n", argv[0], strerror(errno));
        if (len > 0 && write(1, msg, (size_t)len) < 0)
            _exit(127);
        _exit(127);
    }
    close(p[1]);
    free(envp);
    setpgid(pid, pid); /* also from the parent: no race with a kill right after */
    ch->pid = pid;
    ch->fd = p[0];
    fcntl(ch->fd, F_SETFL, fcntl(ch->fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Keeps the last lines that look like errors (and, separately, the last line of all). */
static void keep_line(struct mig_child *ch, const char *line)
{
    snprintf(ch->last, sizeof(ch->last), "%s", line);
    if (!strstr(line, "error") && !strstr(line, "ERROR") && !strstr(line, "FATAL") &&
        !strstr(line, "detail:") && !strstr(line, "DETAIL") && !strstr(line, "could not") &&
        !strstr(line, "warning"))
        return;
    size_t ln = strlen(line);
    if (ln >= sizeof(ch->errors))
        return;
    size_t have = strlen(ch->errors);
    while (have + ln + 4 > sizeof(ch->errors)) { /* drop the oldest line */
        char *nl = strstr(ch->errors, " | ");
        if (!nl) {
            ch->errors[0] = '\0';
            have = 0;
            break;
        }
        memmove(ch->errors, nl + 3, strlen(nl + 3) + 1);
        have = strlen(ch->errors);
    }
    snprintf(ch->errors + have, sizeof(ch->errors) - have, "%s%s", have ? " | " : "", line);
}

int mig_child_read(struct mig_child *ch, void (*on_line)(void *ctx, const char *line), void *ctx)
{
    if (ch->fd < 0)
        return 1;
    for (;;) {
        ssize_t r = read(ch->fd, ch->buf + ch->len, sizeof(ch->buf) - 1 - ch->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0) {
            if (ch->len) { /* a last line without newline */
                ch->buf[ch->len] = '\0';
                keep_line(ch, ch->buf);
                if (on_line)
                    on_line(ctx, ch->buf);
                ch->len = 0;
            }
            close(ch->fd);
            ch->fd = -1;
            return 1;
        }
        ch->len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < ch->len; i++) {
            if (ch->buf[i] != '\n')
                continue;
            ch->buf[i] = '\0';
            keep_line(ch, ch->buf + start);
            if (on_line)
                on_line(ctx, ch->buf + start);
            start = i + 1;
        }
        if (start == 0 && ch->len == sizeof(ch->buf) - 1) { /* an overlong line: cut */
            ch->buf[ch->len] = '\0';
            keep_line(ch, ch->buf);
            start = ch->len;
        }
        memmove(ch->buf, ch->buf + start, ch->len - start);
        ch->len -= start;
    }
}

bool mig_child_reap(struct mig_child *ch)
{
    if (ch->pid <= 0)
        return true;
    int st;
    pid_t r = waitpid(ch->pid, &st, WNOHANG);
    if (r == 0)
        return false;
    if (r == ch->pid) {
        ch->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        ch->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    } else {
        ch->exit_code = -1;
    }
    ch->pid = -1;
    return true;
}

void mig_child_kill(struct mig_child *ch)
{
    if (ch->pid > 0) {
        kill(-ch->pid, SIGTERM);
        for (int i = 0; i < 50 && !mig_child_reap(ch); i++) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (ch->pid > 0) {
            kill(-ch->pid, SIGKILL);
            int st;
            waitpid(ch->pid, &st, 0);
            ch->pid = -1;
            ch->exit_code = -1;
            ch->term_signal = SIGKILL;
        }
    }
    if (ch->fd >= 0) {
        close(ch->fd);
        ch->fd = -1;
    }
}
