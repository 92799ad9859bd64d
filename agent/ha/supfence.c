/* Supervisor side of fencing: enforces the leader lease deadline when the ha process stalls. */
#include "agent/ha/supfence.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
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
    char *pg_data_dir; /* NULL: PostgreSQL not managed */
};

/* SIGINT to the postmaster of data_dir: a fast shutdown, without blocking. */
static void stop_postgres(const char *data_dir)
{
    char path[4200], comm[64] = "";
    long pid = 0;
    snprintf(path, sizeof(path), "%s/postmaster.pid", data_dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return; /* not running */
    if (fscanf(fp, "%ld", &pid) != 1)
        pid = 0;
    fclose(fp);
    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
    fp = pid > 1 ? fopen(path, "r") : NULL;
    if (fp) {
        if (!fgets(comm, sizeof(comm), fp))
            comm[0] = '\0';
        fclose(fp);
    }
    if (strncmp(comm, "postgres", 8) != 0)
        return; /* stale pid file */
    if (kill((pid_t)pid, SIGINT) < 0)
        log_warn("cannot stop postgresql", "pid=%ld err=\"%s\"", pid, strerror(errno));
    else
        log_warn("stopping postgresql (fast) after fencing", "pid=%ld", pid);
}

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
    if (f->pg_data_dir)
        stop_postgres(f->pg_data_dir);
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

void supfence_stop_postgres(struct supfence *f, const char *data_dir)
{
    free(f->pg_data_dir);
    f->pg_data_dir = strdup(data_dir);
    if (!f->pg_data_dir)
        log_warn("out of memory: a fence will not stop postgresql");
}

void supfence_free(struct supfence *f)
{
    if (!f)
        return;
    free(f->pg_data_dir);
    boottimer_free(f->timer);
    free(f);
}

void supfence_forget(struct supfence *f)
{
    if (!f)
        return;
    boottimer_forget(f->timer);
    free(f->pg_data_dir);
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
