/* Election driver: metric samples for the dashboard charts (replica lag, forwarder connections). */
#include <stdlib.h>
#include <string.h>

#include "agent/dcs/member.h"
#include "agent/ha/elector_int.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/loop.h"

#define LOG_MODULE "ha"

enum {
    SAMPLE_PERIOD_MS = 5000,
    RETENTION_MS = 24 * 3600 * 1000, /* a day of charts */
    PRUNE_EVERY = 720,               /* samples rounds between two prunes (an hour) */
};

static void add(struct elector *e, int64_t ts, const char *member, const char *metric, double v)
{
    if (!store_sample_add(e->store, ts, member, metric, v) && !e->samples_failing) {
        log_warn("cannot store a sample", "metric=%s", metric);
        e->samples_failing = true;
    }
}

/* One round: every member's WAL position and lag (from etcd), this node's forwarder. */
static void sample(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct elector *e = arg;
    int64_t ts = (int64_t)clock_wall_ms();
    struct elect_view v;
    elector_build_view(e, &v);
    struct dcs_member *m = malloc(sizeof(*m));
    size_t pos = 0, plen = strlen(e->k_members);
    const struct kvc_entry *en;
    if (!e->store || !m) {
        free(m);
        return;
    }
    store_begin(e->store);
    while ((en = kvc_next_prefix(&e->cache, e->k_members, &pos)) != NULL) {
        const char *name = en->key + plen;
        if (!dcs_member_decode(en->value, en->value_len, name, m, NULL) || !m->has_xlog_location)
            continue;
        add(e, ts, name, "xlog_location", (double)m->xlog_location);
        bool leader = v.has_leader && strcmp(v.leader, name) == 0;
        if (!leader && v.has_optime)
            add(e, ts, name, "lag_bytes",
                (double)(v.optime > m->xlog_location ? v.optime - m->xlog_location : 0));
    }
    if (e->have_proxy_stats) {
        const struct msg_proxy_stats *p = &e->proxy_stats;
        add(e, ts, e->ec.name, "proxy_rw_active", (double)p->port[PROXY_PORT_RW].active);
        add(e, ts, e->ec.name, "proxy_rw_held", (double)p->port[PROXY_PORT_RW].held);
        add(e, ts, e->ec.name, "proxy_ro_active", (double)p->port[PROXY_PORT_RO].active);
        add(e, ts, e->ec.name, "proxy_total",
            (double)(p->port[PROXY_PORT_RW].total + p->port[PROXY_PORT_RO].total));
    }
    store_commit(e->store);
    free(m);
    if (++e->sample_rounds % PRUNE_EVERY == 1)
        store_samples_prune(e->store, ts - RETENTION_MS);
}

bool elector_samples_start(struct elector *e)
{
    e->sample_timer = loop_add_timer(e->loop, SAMPLE_PERIOD_MS, SAMPLE_PERIOD_MS, sample, e);
    return e->sample_timer != 0;
}

void elector_samples_stop(struct elector *e)
{
    if (e->sample_timer)
        loop_cancel_timer(e->loop, e->sample_timer);
    e->sample_timer = 0;
}

void elector_proxy_stats(struct elector *e, const struct msg_proxy_stats *s)
{
    e->proxy_stats = *s;
    e->have_proxy_stats = true;
}
