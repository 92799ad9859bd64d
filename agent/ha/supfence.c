/* Supervisor side of fencing: enforces the leader lease deadline when the ha process stalls. */
#include "agent/ha/supfence.h"

#include <stdlib.h>
#include <string.h>

#include "agent/ha/boottimer.h"
#include "agent/msgtypes.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "fence"

struct supfence {
    struct boottimer *timer;
    supfence_send_fn send;
    void *send_arg;
    bool armed;
    int64_t term;
    uint64_t deadline;
    unsigned count;
};

static void fence(struct supfence *f, const char *reason)
{
    uint64_t now = clock_boot_ms();
    f->armed = false;
    f->count++;
    log_warn("fencing", "by=supervisor reason=\"%s\" term=%lld deadline_boot_ms=%llu late_ms=%lld",
             reason, (long long)f->term, (unsigned long long)f->deadline,
             (long long)now - (long long)f->deadline);
    struct msg_route none;
    memset(&none, 0, sizeof(none));
    int r = f->send(f->send_arg, EP_PROXY, MSG_ROUTE, &none, sizeof(none));
    if (r < 0)
        log_warn("cannot tell the proxy to stop routing writes", "err=%d", r);
    const struct msg_fence m = {.term = f->term, .deadline_boot_ms = f->deadline};
    r = f->send(f->send_arg, EP_HA, MSG_FENCE, &m, sizeof(m));
    if (r < 0)
        log_info("ha not told about the fence", "err=%d", r);
}

static void on_timer(void *arg)
{
    struct supfence *f = arg;
    if (f->armed && clock_boot_ms() >= f->deadline)
        fence(f, "ha did not renew the leader lease before its deadline");
}

struct supfence *supfence_new(struct loop *l, supfence_send_fn send, void *send_arg)
{
    struct supfence *f = calloc(1, sizeof(*f));
    if (!f) {
        log_error("out of memory");
        return NULL;
    }
    f->send = send;
    f->send_arg = send_arg;
    f->timer = boottimer_new(l, on_timer, f);
    if (!f->timer) {
        free(f);
        return NULL;
    }
    return f;
}

void supfence_free(struct supfence *f)
{
    if (!f)
        return;
    boottimer_free(f->timer);
    free(f);
}

void supfence_forget(struct supfence *f)
{
    if (!f)
        return;
    boottimer_forget(f->timer);
    free(f);
}

void supfence_on_lease(struct supfence *f, const struct msg_lease *m)
{
    if (!m->leader) {
        if (f->armed)
            log_info("leader lease given up by ha", "term=%lld", (long long)m->term);
        f->armed = false;
        boottimer_disarm(f->timer);
        return;
    }
    bool was_armed = f->armed;
    f->term = m->term;
    f->deadline = m->deadline_boot_ms;
    f->armed = true;
    if (clock_boot_ms() >= m->deadline_boot_ms) {
        boottimer_disarm(f->timer);
        fence(f, "the lease deadline had passed when ha reported it");
        return;
    }
    if (!was_armed)
        log_info("enforcing the leader lease deadline", "term=%lld in_ms=%lld", (long long)m->term,
                 (long long)(m->deadline_boot_ms - clock_boot_ms()));
    if (!boottimer_arm(f->timer, m->deadline_boot_ms))
        fence(f, "cannot arm the deadline timer");
}

bool supfence_armed(const struct supfence *f)
{
    return f->armed;
}

unsigned supfence_count(const struct supfence *f)
{
    return f->count;
}
