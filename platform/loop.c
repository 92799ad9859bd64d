/* Event loop: epoll fd readiness, a min-heap of timers and signals through one signalfd. */
#define LOG_MODULE "loop"
#include "platform/loop.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

enum { LOOP_BATCH = 64, LOOP_NSIG = 65 };

/* A watched fd, stored at index fd. `gen` changes at every registration so that an event
 * from an earlier registration of the same fd number in the current batch is ignored. */
struct loop_fd {
    loop_fd_cb cb;
    void *arg;
    uint32_t gen; /* 0 = slot unused */
};

enum timer_state { TIMER_FREE = 0, TIMER_PENDING, TIMER_FIRING, TIMER_CANCELLED };

struct loop_timer {
    uint64_t deadline;
    uint64_t interval;
    uint64_t seq; /* insertion order: breaks deadline ties, marks timers added this round */
    loop_timer_cb cb;
    void *arg;
    uint32_t gen;      /* high half of the id, bumped when the slot is reused */
    uint32_t heap_pos; /* index in heap while PENDING; next free slot while FREE */
    enum timer_state state;
};

struct loop_sig {
    loop_signal_cb cb;
    void *arg;
};

struct loop {
    int epfd;
    int sigfd;
    bool stopping;
    uint64_t now;
    uint64_t timer_seq;
    uint32_t fd_gen;

    struct loop_fd *fds; /* indexed by fd */
    size_t nfds;

    struct loop_timer *timers; /* slots; ids refer to them */
    size_t ntimers;
    uint32_t free_timer; /* head of the free slot list, UINT32_MAX when empty */
    uint32_t *heap;      /* slot indices ordered by (deadline, seq) */
    size_t heap_len;

    sigset_t sigmask;
    struct loop_sig sigs[LOOP_NSIG];
    struct epoll_event events[LOOP_BATCH];
};

#define NO_SLOT UINT32_MAX

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l) {
        log_error("out of memory creating loop", "size=%zu", sizeof(*l));
        return NULL;
    }
    l->sigfd = -1;
    l->free_timer = NO_SLOT;
    sigemptyset(&l->sigmask);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        log_error("epoll_create1 failed", "err=\"%s\"", strerror(errno));
        free(l);
        return NULL;
    }
    l->now = clock_mono_ms();
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->sigfd >= 0)
        close(l->sigfd);
    close(l->epfd);
    free(l->fds);
    free(l->timers);
    free(l->heap);
    free(l);
}

/* ---- fds ---- */

static uint32_t to_epoll(uint32_t events)
{
    uint32_t ev = 0;
    if (events & LOOP_READ)
        ev |= EPOLLIN;
    if (events & LOOP_WRITE)
        ev |= EPOLLOUT;
    return ev;
}

static uint32_t from_epoll(uint32_t ev)
{
    uint32_t events = 0;
    if (ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP))
        events |= LOOP_READ;
    if (ev & EPOLLOUT)
        events |= LOOP_WRITE;
    if (ev & (EPOLLHUP | EPOLLERR))
        events |= LOOP_READ | LOOP_ERR;
    return events;
}

static bool fd_table_reserve(struct loop *l, int fd)
{
    if ((size_t)fd < l->nfds)
        return true;
    size_t n = l->nfds ? l->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct loop_fd *p = realloc(l->fds, n * sizeof(*p));
    if (!p)
        return false;
    memset(p + l->nfds, 0, (n - l->nfds) * sizeof(*p));
    l->fds = p;
    l->nfds = n;
    return true;
}

static struct loop_fd *fd_entry(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nfds || l->fds[fd].gen == 0)
        return NULL;
    return &l->fds[fd];
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
    if (fd < 0)
        return -EBADF;
    if ((events & ~(uint32_t)(LOOP_READ | LOOP_WRITE)) || !cb)
        return -EINVAL;
    if (fd_entry(l, fd))
        return -EEXIST;
    if (!fd_table_reserve(l, fd)) {
        log_error("out of memory adding fd", "fd=%d", fd);
        return -ENOMEM;
    }
    if (++l->fd_gen == 0)
        l->fd_gen = 1;
    struct epoll_event ev = {.events = to_epoll(events)};
    ev.data.u64 = ((uint64_t)l->fd_gen << 32) | (uint32_t)fd;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = errno;
        log_error("epoll_ctl add failed", "fd=%d err=\"%s\"", fd, strerror(err));
        return -err;
    }
    l->fds[fd] = (struct loop_fd){.cb = cb, .arg = arg, .gen = l->fd_gen};
    return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
    struct loop_fd *e = fd_entry(l, fd);
    if (!e)
        return -ENOENT;
    if (events & ~(uint32_t)(LOOP_READ | LOOP_WRITE))
        return -EINVAL;
    struct epoll_event ev = {.events = to_epoll(events)};
    ev.data.u64 = ((uint64_t)e->gen << 32) | (uint32_t)fd;
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
        int err = errno;
        log_error("epoll_ctl mod failed", "fd=%d err=\"%s\"", fd, strerror(err));
        return -err;
    }
    return 0;
}

int loop_del_fd(struct loop *l, int fd)
{
    struct loop_fd *e = fd_entry(l, fd);
    if (!e)
        return -ENOENT;
    e->gen = 0; /* pending events of this registration are now ignored */
    e->cb = NULL;
    e->arg = NULL;
    if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0) {
        int err = errno;
        /* EBADF/ENOENT: the fd was closed first; the kernel already forgot it. */
        if (err == EBADF || err == ENOENT)
            return 0;
        log_error("epoll_ctl del failed", "fd=%d err=\"%s\"", fd, strerror(err));
        return -err;
    }
    return 0;
}

/* ---- timers: binary min-heap of slot indices ---- */

static bool timer_before(const struct loop *l, uint32_t a, uint32_t b)
{
    const struct loop_timer *ta = &l->timers[a], *tb = &l->timers[b];
    return ta->deadline < tb->deadline || (ta->deadline == tb->deadline && ta->seq < tb->seq);
}

static void heap_set(struct loop *l, size_t pos, uint32_t slot)
{
    l->heap[pos] = slot;
    l->timers[slot].heap_pos = (uint32_t)pos;
}

static void heap_up(struct loop *l, size_t pos)
{
    uint32_t slot = l->heap[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!timer_before(l, slot, l->heap[parent]))
            break;
        heap_set(l, pos, l->heap[parent]);
        pos = parent;
    }
    heap_set(l, pos, slot);
}

static void heap_down(struct loop *l, size_t pos)
{
    uint32_t slot = l->heap[pos];
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= l->heap_len)
            break;
        if (child + 1 < l->heap_len && timer_before(l, l->heap[child + 1], l->heap[child]))
            child++;
        if (!timer_before(l, l->heap[child], slot))
            break;
        heap_set(l, pos, l->heap[child]);
        pos = child;
    }
    heap_set(l, pos, slot);
}

/* The heap has room for every slot (grown together), so a push never allocates. */
static void heap_push(struct loop *l, uint32_t slot)
{
    l->heap[l->heap_len] = slot;
    heap_up(l, l->heap_len++);
}

static void heap_remove(struct loop *l, size_t pos)
{
    uint32_t last = l->heap[--l->heap_len];
    if (pos == l->heap_len)
        return;
    heap_set(l, pos, last);
    if (pos > 0 && timer_before(l, last, l->heap[(pos - 1) / 2]))
        heap_up(l, pos);
    else
        heap_down(l, pos);
}

static bool timers_grow(struct loop *l)
{
    size_t n = l->ntimers ? l->ntimers * 2 : 64;
    if (n >= NO_SLOT)
        return false;
    struct loop_timer *t = realloc(l->timers, n * sizeof(*t));
    if (!t)
        return false;
    l->timers = t;
    uint32_t *h = realloc(l->heap, n * sizeof(*h));
    if (!h)
        return false; /* the larger slot array is kept; slots stay unused until heap grows */
    l->heap = h;
    for (size_t i = n; i > l->ntimers; i--) {
        struct loop_timer *s = &t[i - 1];
        memset(s, 0, sizeof(*s));
        s->heap_pos = l->free_timer;
        l->free_timer = (uint32_t)(i - 1);
    }
    l->ntimers = n;
    return true;
}

static void timer_release(struct loop *l, uint32_t slot)
{
    struct loop_timer *t = &l->timers[slot];
    t->state = TIMER_FREE;
    t->cb = NULL;
    t->arg = NULL;
    t->heap_pos = l->free_timer;
    l->free_timer = slot;
}

uint64_t loop_add_timer(struct loop *l, uint64_t delay_ms, uint64_t interval_ms, loop_timer_cb cb,
                        void *arg)
{
    if (!cb)
        return 0;
    if (l->free_timer == NO_SLOT && !timers_grow(l)) {
        log_error("out of memory adding timer", "timers=%zu", l->ntimers);
        return 0;
    }
    uint32_t slot = l->free_timer;
    struct loop_timer *t = &l->timers[slot];
    l->free_timer = t->heap_pos;
    if (++t->gen == 0)
        t->gen = 1;
    /* The fresh clock (not the cached one): a callback may have run for a long time. */
    uint64_t now = clock_mono_ms();
    t->deadline = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
    t->interval = interval_ms;
    t->seq = l->timer_seq++;
    t->cb = cb;
    t->arg = arg;
    t->state = TIMER_PENDING;
    heap_push(l, slot);
    return ((uint64_t)t->gen << 32) | ((uint64_t)slot + 1);
}

static struct loop_timer *timer_lookup(const struct loop *l, uint64_t id, uint32_t *slot_out)
{
    uint64_t low = id & 0xffffffffu;
    if (low == 0 || low > l->ntimers)
        return NULL;
    uint32_t slot = (uint32_t)(low - 1);
    struct loop_timer *t = &l->timers[slot];
    if (t->state == TIMER_FREE || t->gen != (uint32_t)(id >> 32))
        return NULL;
    *slot_out = slot;
    return t;
}

bool loop_cancel_timer(struct loop *l, uint64_t id)
{
    uint32_t slot;
    struct loop_timer *t = timer_lookup(l, id, &slot);
    if (!t)
        return false;
    switch (t->state) {
    case TIMER_PENDING:
        heap_remove(l, t->heap_pos);
        timer_release(l, slot);
        return true;
    case TIMER_FIRING:
        t->state = TIMER_CANCELLED; /* released by run_timers after the callback */
        return t->interval > 0;
    default:
        return false;
    }
}

uint64_t loop_timer_deadline(const struct loop *l, uint64_t id)
{
    uint32_t slot;
    const struct loop_timer *t = timer_lookup(l, id, &slot);
    return (t && t->state == TIMER_PENDING) ? t->deadline : 0;
}

size_t loop_timer_count(const struct loop *l)
{
    return l->heap_len;
}

/* Fires timers due at l->now that existed before this iteration (seq < barrier). */
static int run_timers(struct loop *l, uint64_t barrier)
{
    int fired = 0;
    while (l->heap_len > 0) {
        uint32_t slot = l->heap[0];
        struct loop_timer *t = &l->timers[slot];
        if (t->deadline > l->now || t->seq >= barrier)
            break;
        heap_remove(l, 0);
        t->state = TIMER_FIRING;
        uint64_t id = ((uint64_t)t->gen << 32) | ((uint64_t)slot + 1);
        loop_timer_cb cb = t->cb;
        void *arg = t->arg;
        cb(l, id, arg);
        fired++;
        t = &l->timers[slot]; /* the callback may have grown the slot array */
        if (t->state == TIMER_FIRING && t->interval > 0) {
            /* Next period strictly after the fresh clock (the callback may have blocked), on
             * the original grid: no drift, and missed periods are skipped, not burst. */
            uint64_t now = clock_mono_ms();
            uint64_t missed = (now - t->deadline) / t->interval + 1;
            bool overflow = missed > (UINT64_MAX - t->deadline) / t->interval;
            t->deadline = overflow ? UINT64_MAX : t->deadline + missed * t->interval;
            t->seq = l->timer_seq++;
            t->state = TIMER_PENDING;
            heap_push(l, slot);
        } else {
            timer_release(l, slot);
        }
    }
    return fired;
}

/* ---- signals ---- */

static void signal_ready(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    (void)arg;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(si))
            return; /* EAGAIN: drained */
        int signo = (int)si.ssi_signo;
        if (signo > 0 && signo < LOOP_NSIG && l->sigs[signo].cb)
            l->sigs[signo].cb(l, signo, l->sigs[signo].arg);
    }
}

int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *arg)
{
    if (signo <= 0 || signo >= LOOP_NSIG || signo == SIGKILL || signo == SIGSTOP || !cb)
        return -EINVAL;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    sigset_t mask = l->sigmask;
    if (sigaddset(&mask, signo) < 0)
        return -EINVAL;
    /* Block first: a signal arriving between the two calls then waits in the signalfd. */
    if (sigprocmask(SIG_BLOCK, &one, NULL) < 0) {
        int err = errno;
        log_error("sigprocmask failed", "signo=%d err=\"%s\"", signo, strerror(err));
        return -err;
    }
    int fd = signalfd(l->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        log_error("signalfd failed", "signo=%d err=\"%s\"", signo, strerror(err));
        return -err;
    }
    if (l->sigfd < 0) {
        int rc = loop_add_fd(l, fd, LOOP_READ, signal_ready, NULL);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        l->sigfd = fd;
    }
    l->sigmask = mask;
    l->sigs[signo] = (struct loop_sig){.cb = cb, .arg = arg};
    return 0;
}

/* ---- running ---- */

static int wait_timeout(const struct loop *l, int max_wait_ms)
{
    if (l->heap_len == 0)
        return max_wait_ms < 0 ? -1 : max_wait_ms;
    uint64_t deadline = l->timers[l->heap[0]].deadline;
    uint64_t now = clock_mono_ms();
    uint64_t wait = deadline > now ? deadline - now : 0;
    if (wait > INT_MAX)
        wait = INT_MAX;
    if (max_wait_ms >= 0 && wait > (uint64_t)max_wait_ms)
        wait = (uint64_t)max_wait_ms;
    return (int)wait;
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
    int n = epoll_wait(l->epfd, l->events, LOOP_BATCH, wait_timeout(l, max_wait_ms));
    if (n < 0) {
        if (errno != EINTR) {
            int err = errno;
            log_error("epoll_wait failed", "err=\"%s\"", strerror(err));
            return -err;
        }
        n = 0;
    }
    l->now = clock_mono_ms();
    uint64_t barrier = l->timer_seq;
    int ran = 0;
    for (int i = 0; i < n; i++) {
        uint64_t data = l->events[i].data.u64;
        int fd = (int)(uint32_t)data;
        struct loop_fd *e = fd_entry(l, fd);
        if (!e || e->gen != (uint32_t)(data >> 32))
            continue; /* deleted (or re-added) by an earlier callback of this batch */
        loop_fd_cb cb = e->cb;
        void *arg = e->arg;
        cb(l, fd, from_epoll(l->events[i].events), arg);
        ran++;
    }
    return ran + run_timers(l, barrier);
}

int loop_run(struct loop *l)
{
    int rc = 0;
    while (!l->stopping) {
        rc = loop_run_once(l, -1);
        if (rc < 0)
            break;
    }
    l->stopping = false;
    return rc < 0 ? rc : 0;
}

void loop_stop(struct loop *l)
{
    l->stopping = true;
}

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now;
}

int loop_signal_fd(const struct loop *l)
{
    return l->sigfd;
}
