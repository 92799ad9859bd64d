/* Deadline timer on CLOCK_BOOTTIME: a timerfd watched by the event loop, for lease deadlines. */
#include "agent/ha/boottimer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "platform/log.h"
#include "platform/loop.h"

#define LOG_MODULE "boottimer"

struct boottimer {
    struct loop *loop;
    int fd;
    uint64_t expiry;
    boottimer_cb cb;
    void *arg;
};

static void on_fd(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    struct boottimer *t = arg;
    uint64_t ticks;
    if (read(fd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks))
        return; /* EAGAIN: re-armed or disarmed since the event was queued */
    t->expiry = 0;
    t->cb(t->arg);
}

struct boottimer *boottimer_new(struct loop *l, boottimer_cb cb, void *arg)
{
    struct boottimer *t = calloc(1, sizeof(*t));
    if (!t) {
        log_error("out of memory");
        return NULL;
    }
    t->loop = l;
    t->cb = cb;
    t->arg = arg;
    t->fd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->fd < 0) {
        log_error("cannot create a CLOCK_BOOTTIME timer", "err=\"%s\"", strerror(errno));
        free(t);
        return NULL;
    }
    int r = loop_add_fd(l, t->fd, LOOP_READ, on_fd, t);
    if (r < 0) {
        log_error("cannot watch the deadline timer", "err=\"%s\"", strerror(-r));
        close(t->fd);
        free(t);
        return NULL;
    }
    return t;
}

void boottimer_free(struct boottimer *t)
{
    if (!t)
        return;
    loop_del_fd(t->loop, t->fd);
    close(t->fd);
    free(t);
}

void boottimer_forget(struct boottimer *t)
{
    if (!t)
        return;
    close(t->fd);
    free(t);
}

static bool set(struct boottimer *t, uint64_t at_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(at_ms / 1000u);
    its.it_value.tv_nsec = (long)(at_ms % 1000u) * 1000000L;
    if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        log_error("cannot set the deadline timer", "err=\"%s\"", strerror(errno));
        return false;
    }
    return true;
}

bool boottimer_arm(struct boottimer *t, uint64_t at_boot_ms)
{
    /* An all-zero it_value disarms: the earliest real expiry is 1 ms after boot. */
    if (!set(t, at_boot_ms ? at_boot_ms : 1))
        return false;
    t->expiry = at_boot_ms ? at_boot_ms : 1;
    return true;
}

void boottimer_disarm(struct boottimer *t)
{
    if (t->expiry == 0)
        return;
    (void)set(t, 0);
    t->expiry = 0;
    uint64_t ticks;
    (void)!read(t->fd, &ticks, sizeof(ticks)); /* drop an expiry not yet handled */
}

uint64_t boottimer_expiry(const struct boottimer *t)
{
    return t->expiry;
}
