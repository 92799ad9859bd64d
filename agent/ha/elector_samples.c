/* Election driver: metric samples for the dashboard charts, and the health of the node's disks. */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <jansson.h>

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

/* PostgreSQL's data directory is "full" below one WAL segment free (a primary PANICs when it
 * cannot create the next one), and no longer so above four. */
#define DATA_DISK_FULL_BYTES (16ull << 20)
#define DATA_DISK_OK_BYTES   (64ull << 20)

/* A write failure is logged once per episode by the store itself. */
static void add(struct elector *e, int64_t ts, const char *member, const char *metric, double v)
{
    store_sample_add(e->store, ts, member, metric, v);
}

static void record(struct elector *e, const char *kind, json_t *detail)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    if (!text ||
        !store_event_add(e->store, clock_wall_ms(), kind, e->ec.name, e->local.term, text, NULL))
        log_warn("cannot record an event", "kind=%s", kind);
    free(text);
}

/* A failing episode of the state store (logged by the store; shown by the status while it
 * lasts) becomes an event once writes work again. */
static void store_check(struct elector *e)
{
    struct store_health h;
    store_health(e->store, &h);
    if (h.failing || h.episodes == e->store_episodes_recorded)
        return;
    e->store_episodes_recorded = h.episodes;
    record(e, "state_store",
           json_pack("{s:s,s:s,s:I,s:I,s:I}", "event", "writable again", "reason", h.error,
                     "failures", (json_int_t)h.failures, "since_ms", (json_int_t)h.since_ms,
                     "down_ms", (json_int_t)(h.until_ms - h.since_ms)));
}

bool elector_data_disk_full(struct elector *e)
{
    struct statvfs sv;
    if (!e->manage_pg || statvfs(e->pg.data_dir, &sv) != 0)
        return e->data_disk_full; /* no data directory yet: unchanged */
    unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
    bool full = avail < (e->data_disk_full ? DATA_DISK_OK_BYTES : DATA_DISK_FULL_BYTES);
    if (full == e->data_disk_full)
        return full;
    e->data_disk_full = full;
    if (full)
        log_error("the filesystem of the data directory is full: postgresql is not started until "
                  "space is freed",
                  "data_dir=%s free_bytes=%llu", e->pg.data_dir, avail);
    else
        log_info("the filesystem of the data directory has free space again",
                 "data_dir=%s free_bytes=%llu", e->pg.data_dir, avail);
    record(e, "postgresql",
           json_pack("{s:s,s:I}", "event",
                     full ? "data directory disk full" : "data directory disk space back",
                     "free_bytes", (json_int_t)avail));
    return full;
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
    elector_data_disk_full(e);
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
    store_check(e);
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
