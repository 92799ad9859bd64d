/* Supervisor: forks the child processes, routes their messages and restarts crashed ones within
 * limits. */
#include "platform/supervisor.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/clock.h"
#include "platform/log.h"
#include "platform/loop.h"
#include "platform/sdnotify.h"

#define LOG_MODULE "supervisor"

enum sup_child_state { CHILD_DOWN, CHILD_RUNNING, CHILD_WAITING };

struct sup_child {
    struct sup_child_spec spec;
    enum sup_child_state state;
    pid_t pid;
    int fd;               /* supervisor end of the channel, -1 when down */
    uint64_t started_ms;  /* monotonic time of the last fork */
    unsigned consecutive; /* back-to-back crashes */
    uint64_t restart_timer;
    bool said_hello;
    uint32_t seq;
    struct sup *sup; /* back-pointer for timer callbacks */
};

struct sup {
    struct sup_config cfg;
    struct sup_hooks hooks;
    struct sup_child children[SUP_MAX_CHILDREN];
    size_t nchildren;
    struct sup_history history;
    struct loop *loop;
    bool stopping;
    bool ready;
    int exit_code;
    uint64_t kill_timer;
    uint8_t *buf; /* one message buffer for routing */
};

enum sup_verdict sup_policy_decide(const struct sup_policy *p, struct sup_history *h,
                                   uint64_t now_ms, uint64_t uptime_ms, unsigned *consecutive,
                                   uint64_t *delay_ms)
{
    size_t recent = 0;
    for (size_t i = 0; i < h->count; i++) {
        if (now_ms - h->times[i] < p->window_ms)
            recent++;
    }
    if ((long long)recent + 1 > p->max_restarts)
        return SUP_GIVE_UP;
    h->times[h->next] = now_ms;
    h->next = (h->next + 1) % SUP_HISTORY;
    if (h->count < SUP_HISTORY)
        h->count++;

    *consecutive = (uptime_ms >= p->stable_ms) ? 1 : *consecutive + 1;
    uint64_t d = p->backoff_min_ms;
    for (unsigned i = 1; i < *consecutive && d < p->backoff_max_ms; i++)
        d *= 2;
    *delay_ms = d < p->backoff_max_ms ? d : p->backoff_max_ms;
    return SUP_RESTART;
}

static struct sup_child *child_by_id(struct sup *s, uint8_t id)
{
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].spec.id == id)
            return &s->children[i];
    }
    return NULL;
}

static struct sup_child *child_by_pid(struct sup *s, pid_t pid)
{
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].pid == pid && s->children[i].state == CHILD_RUNNING)
            return &s->children[i];
    }
    return NULL;
}

struct sup *sup_new(const struct sup_config *cfg, const struct sup_hooks *hooks,
                    const struct sup_child_spec *children, size_t nchildren)
{
    if (nchildren == 0 || nchildren > SUP_MAX_CHILDREN)
        return NULL;
    struct sup *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->buf = malloc(MSG_MAX_PAYLOAD);
    s->loop = loop_new();
    if (!s->buf || !s->loop)
        goto fail;
    s->cfg = *cfg;
    s->hooks = *hooks;
    s->nchildren = nchildren;
    for (size_t i = 0; i < nchildren; i++) {
        s->children[i].spec = children[i];
        s->children[i].fd = -1;
        s->children[i].sup = s;
    }
    return s;
fail:
    sup_free(s);
    return NULL;
}

void sup_free(struct sup *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].fd >= 0)
            close(s->children[i].fd);
    }
    loop_free(s->loop);
    free(s->buf);
    free(s);
}

struct loop *sup_loop(struct sup *s)
{
    return s->loop;
}

pid_t sup_child_pid(const struct sup *s, uint8_t id)
{
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].spec.id == id && s->children[i].state == CHILD_RUNNING)
            return s->children[i].pid;
    }
    return 0;
}

int sup_send(struct sup *s, uint8_t dst, uint16_t type, const void *payload, uint32_t len)
{
    struct sup_child *c = child_by_id(s, dst);
    if (!c || c->fd < 0)
        return -ENOTCONN;
    return msg_send(c->fd, type, 0, dst, ++c->seq, payload, len);
}

int sup_broadcast(struct sup *s, uint16_t type, const void *payload, uint32_t len)
{
    int rc = 0;
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].fd < 0)
            continue;
        int r = sup_send(s, s->children[i].spec.id, type, payload, len);
        if (r < 0) {
            log_warn("message not delivered", "child=%s type=%s err=%s", s->children[i].spec.name,
                     msg_type_name(s->cfg.specs, s->cfg.nspecs, type), strerror(-r));
            rc = r;
        }
    }
    return rc;
}

static void on_child_msg(struct loop *l, int fd, uint32_t events, void *arg);
static void drain_child(struct sup *s, struct sup_child *from);

/* Runs in the forked child: a clean signal state, only its own channel, then its main. */
static void child_exec(struct sup *s, struct sup_child *c, int child_fd)
{
    sigset_t none;
    sigemptyset(&none);
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].fd >= 0)
            close(s->children[i].fd);
    }
    /* The child builds its own loop; the parent's epoll and signalfd must not leak into it. */
    loop_free(s->loop);
    s->loop = NULL;
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_SETMASK, &none, NULL);
    log_setup(LOG_LVL_INFO, c->spec.name);
    if (s->hooks.in_child)
        s->hooks.in_child(s->hooks.app, &c->spec);
    int rc = c->spec.main(s->hooks.app, child_fd);
    _exit(rc);
}

static bool child_start(struct sup *s, struct sup_child *c)
{
    int fds[2];
    int r = msg_pair(fds);
    if (r < 0) {
        log_error("cannot create channel", "child=%s err=%s", c->spec.name, strerror(-r));
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork failed", "child=%s err=%s", c->spec.name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        child_exec(s, c, fds[1]);
    }
    close(fds[1]);
    c->fd = fds[0];
    c->pid = pid;
    c->state = CHILD_RUNNING;
    c->started_ms = clock_mono_ms();
    c->said_hello = false;
    r = loop_add_fd(s->loop, c->fd, LOOP_READ, on_child_msg, s);
    if (r < 0)
        log_error("cannot watch channel", "child=%s err=%s", c->spec.name, strerror(-r));
    log_info("child started", "child=%s pid=%d", c->spec.name, (int)pid);
    return true;
}

static void close_channel(struct sup *s, struct sup_child *c)
{
    if (c->fd < 0)
        return;
    loop_del_fd(s->loop, c->fd);
    close(c->fd);
    c->fd = -1;
}

static void restart_due(struct loop *l, uint64_t timer_id, void *arg);

static void maybe_finish_stop(struct sup *s)
{
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].state == CHILD_RUNNING)
            return;
    }
    if (s->kill_timer)
        loop_cancel_timer(s->loop, s->kill_timer);
    s->kill_timer = 0;
    loop_stop(s->loop);
}

static void kill_all(struct loop *l, uint64_t timer_id, void *arg)
{
    (void)l;
    (void)timer_id;
    struct sup *s = arg;
    s->kill_timer = 0;
    for (size_t i = 0; i < s->nchildren; i++) {
        struct sup_child *c = &s->children[i];
        if (c->state == CHILD_RUNNING) {
            log_warn("child did not stop in time, killing", "child=%s pid=%d", c->spec.name,
                     (int)c->pid);
            kill(c->pid, SIGKILL);
        }
    }
}

static void begin_stop(struct sup *s, int exit_code)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->exit_code = exit_code;
    sdnotify_send("STOPPING=1");
    for (size_t i = 0; i < s->nchildren; i++) {
        struct sup_child *c = &s->children[i];
        if (c->state == CHILD_WAITING) {
            loop_cancel_timer(s->loop, c->restart_timer);
            c->state = CHILD_DOWN;
        }
        if (c->state == CHILD_RUNNING)
            kill(c->pid, SIGTERM);
    }
    s->kill_timer = loop_add_timer(s->loop, s->cfg.shutdown_timeout_ms, 0, kill_all, s);
    maybe_finish_stop(s);
}

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit=%d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "signal=%d", WTERMSIG(status));
    else
        snprintf(out, cap, "status=%d", status);
}

static void child_exited(struct sup *s, struct sup_child *c, int status)
{
    char how[32];
    uint64_t now = clock_mono_ms();
    uint64_t uptime = now - c->started_ms;

    describe_status(status, how, sizeof(how));
    drain_child(s, c);
    close_channel(s, c);
    c->state = CHILD_DOWN;
    c->pid = 0;
    if (s->stopping) {
        log_info("child stopped", "child=%s %s", c->spec.name, how);
        return;
    }
    log_warn("child exited", "child=%s %s uptime_ms=%llu", c->spec.name, how,
             (unsigned long long)uptime);
    uint64_t delay = 0;
    if (sup_policy_decide(&s->cfg.policy, &s->history, now, uptime, &c->consecutive, &delay) ==
        SUP_GIVE_UP) {
        log_error("restart intensity exceeded", "child=%s max_restarts=%d window_ms=%llu",
                  c->spec.name, s->cfg.policy.max_restarts,
                  (unsigned long long)s->cfg.policy.window_ms);
        begin_stop(s, SUP_EXIT_INTENSITY);
        return;
    }
    log_info("restarting child", "child=%s delay_ms=%llu", c->spec.name, (unsigned long long)delay);
    c->state = CHILD_WAITING;
    c->restart_timer = loop_add_timer(s->loop, delay, 0, restart_due, c);
}

static void restart_due(struct loop *l, uint64_t timer_id, void *arg)
{
    (void)l;
    (void)timer_id;
    struct sup_child *c = arg;
    struct sup *s = c->sup;
    c->restart_timer = 0;
    if (s->stopping || c->state != CHILD_WAITING)
        return;
    c->state = CHILD_DOWN;
    if (!child_start(s, c))
        begin_stop(s, SUP_EXIT_INTENSITY);
}

static void reap(struct sup *s)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        struct sup_child *c = child_by_pid(s, pid);
        if (c)
            child_exited(s, c, status);
    }
    if (s->stopping)
        maybe_finish_stop(s);
}

static void route(struct sup *s, struct sup_child *from, const struct msg_hdr *hdr, uint32_t len)
{
    if (hdr->type == s->cfg.hello_type && !from->said_hello) {
        from->said_hello = true;
        bool all = true;
        for (size_t i = 0; i < s->nchildren; i++)
            all = all && s->children[i].said_hello;
        if (all && !s->ready) {
            s->ready = true;
            log_info("ready", "children=%zu", s->nchildren);
            sdnotify_send("READY=1\nSTATUS=all children running");
            if (s->hooks.on_ready)
                s->hooks.on_ready(s, s->hooks.app);
        }
    }
    if (hdr->dst == 0) {
        if (s->hooks.on_message)
            s->hooks.on_message(s, hdr, s->buf, s->hooks.app);
        return;
    }
    struct sup_child *to = child_by_id(s, hdr->dst);
    if (!to || to->fd < 0) {
        log_debug("dropping message for absent child", "from=%s dst=%u type=%s", from->spec.name,
                  hdr->dst, msg_type_name(s->cfg.specs, s->cfg.nspecs, hdr->type));
        return;
    }
    int r = msg_send(to->fd, hdr->type, from->spec.id, hdr->dst, hdr->seq, s->buf, len);
    if (r < 0)
        log_warn("message not forwarded", "from=%s to=%s type=%s err=%s", from->spec.name,
                 to->spec.name, msg_type_name(s->cfg.specs, s->cfg.nspecs, hdr->type),
                 strerror(-r));
}

/* Reads every pending message of one child; also called when it exits, so its last words
 * are delivered before its channel closes. */
static void drain_child(struct sup *s, struct sup_child *from)
{
    for (int n = 0; n < 64 && from->fd >= 0; n++) {
        struct msg_hdr hdr;
        int r = msg_recv(from->fd, s->cfg.specs, s->cfg.nspecs, &hdr, s->buf, MSG_MAX_PAYLOAD);
        if (r == -EAGAIN)
            return;
        if (r == -EBADMSG)
            continue; /* logged by msg_recv */
        if (r < 0) {
            /* The child closed its end: it is exiting; SIGCHLD will follow. */
            close_channel(s, from);
            return;
        }
        if (hdr.src != from->spec.id) {
            log_warn("message with forged source dropped", "child=%s src=%u", from->spec.name,
                     hdr.src);
            continue;
        }
        route(s, from, &hdr, (uint32_t)r);
    }
}

static void on_child_msg(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    struct sup *s = arg;
    for (size_t i = 0; i < s->nchildren; i++) {
        if (s->children[i].fd == fd) {
            drain_child(s, &s->children[i]);
            return;
        }
    }
}

static void on_signal(struct loop *l, int signo, void *arg)
{
    (void)l;
    struct sup *s = arg;
    switch (signo) {
    case SIGCHLD:
        reap(s);
        break;
    case SIGTERM:
    case SIGINT:
        log_info("stopping", "signal=%d", signo);
        begin_stop(s, 0);
        break;
    case SIGHUP:
        sdnotify_send("RELOADING=1");
        if (s->hooks.on_reload)
            s->hooks.on_reload(s, s->hooks.app);
        sdnotify_send("READY=1");
        break;
    default:
        break;
    }
}

static void watchdog_tick(struct loop *l, uint64_t timer_id, void *arg)
{
    (void)l;
    (void)timer_id;
    (void)arg;
    sdnotify_send("WATCHDOG=1");
}

int sup_run(struct sup *s)
{
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        int r = loop_add_signal(s->loop, sigs[i], on_signal, s);
        if (r < 0) {
            log_error("cannot watch signal", "signal=%d err=%s", sigs[i], strerror(-r));
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    uint64_t wd = sdnotify_watchdog_usec();
    if (wd > 0)
        loop_add_timer(s->loop, wd / 2000, wd / 2000, watchdog_tick, s);
    for (size_t i = 0; i < s->nchildren; i++) {
        if (!child_start(s, &s->children[i])) {
            begin_stop(s, 1);
            break;
        }
    }
    int r = loop_run(s->loop);
    if (r < 0) {
        log_error("event loop failed", "err=%s", strerror(-r));
        return 1;
    }
    log_info("stopped", "exit=%d", s->exit_code);
    return s->exit_code;
}
