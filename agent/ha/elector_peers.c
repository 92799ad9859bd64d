/* Election driver: the view's failover request, sync state, peers and parameters from the cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/dcs/member.h"
#include "agent/dcs/values.h"
#include "agent/ha/elector_int.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

/* The `sync` key (an empty state when absent or unreadable). */
static void read_sync(struct elector *e, struct dcs_sync *s)
{
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_sync);
    if (!en || !dcs_sync_decode(en->value, en->value_len, s, NULL))
        memset(s, 0, sizeof(*s));
}

/* The `failover` key: a request (possibly scheduled), or false when there is none. */
static bool read_failover(struct elector *e, struct dcs_failover *f)
{
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_failover);
    struct dcs_err err = {{0}};
    if (!en)
        return false;
    if (!dcs_failover_decode(en->value, en->value_len, f, &err)) {
        log_debug("ignoring an unreadable failover key", "err=\"%s\"", err.msg);
        return false;
    }
    return !dcs_failover_empty(f);
}

/* A member that could take over: running replica, failover-eligible, within the lag limit
 * of `top`, and a `sync` member when sync restricts promotion. */
static bool eligible(const struct elector *e, const struct dcs_member *m, const struct dcs_sync *s,
                     bool restricts, int64_t top)
{
    if (m->state != DCS_STATE_RUNNING || m->role != DCS_ROLE_REPLICA ||
        dcs_tags_nofailover(&m->tags) || !m->has_xlog_location)
        return false;
    if (restricts && !dcs_sync_matches(s, m->name, true))
        return false;
    return top <= 0 || m->xlog_location + e->ec.max_lag >= top;
}

/* A switchover candidate must also be streaming (when its key says how it replicates: Patroni
 * before 3.0.4 does not), or it would never receive the old leader's shutdown checkpoint. */
static bool streams(const struct dcs_member *m)
{
    return !m->replication_state[0] || strcmp(m->replication_state, "streaming") == 0;
}

void elector_peers_view(struct elector *e, struct elect_view *v)
{
    struct dcs_sync s;
    struct dcs_failover f;
    read_sync(e, &s);
    v->paused = elector_paused(e);
    v->sync_mode = elector_sync_mode(e);
    v->sync_restricts = v->sync_mode && s.leader[0] != '\0';
    v->sync_member = dcs_sync_matches(&s, e->ec.name, true);
    v->sync_key_mine = strcasecmp(s.leader, e->ec.name) == 0;
    v->params_ok = elector_params_ok(e);
    v->sync_ok = elector_sync_ok(e, v);
    if (read_failover(e, &f)) {
        v->has_failover = true;
        snprintf(v->failover_leader, sizeof(v->failover_leader), "%s", f.leader);
        snprintf(v->failover_candidate, sizeof(v->failover_candidate), "%s", f.candidate);
        int64_t now = (int64_t)clock_wall_ms();
        v->failover_due = !f.has_scheduled_at || now >= f.scheduled_at_ms;
        v->failover_stale =
            f.has_scheduled_at && now - f.scheduled_at_ms > (int64_t)(e->ec.t.loop_wait_ms * 3 / 2);
    }
    /* The position candidates are measured against: ours when we lead, else the last leader's. */
    int64_t top = e->local.state == ELECT_LEADER ? v->pg.lsn : v->has_optime ? v->optime : 0;
    struct dcs_member *m = malloc(sizeof(*m));
    size_t pos = 0, plen = strlen(e->k_members);
    const struct kvc_entry *en;
    v->peer_max_lsn = -1;
    v->peer_max_prio = 0;
    uint32_t leader_tli = 0;
    while (m && (en = kvc_next_prefix(&e->cache, e->k_members, &pos)) != NULL) {
        const char *name = en->key + plen;
        if (strcmp(name, e->ec.name) == 0 ||
            !dcs_member_decode(en->value, en->value_len, name, m, NULL))
            continue;
        if (v->has_leader && strcmp(name, v->leader) == 0 && m->has_timeline && m->timeline > 0)
            leader_tli = (uint32_t)m->timeline;
        bool is_old_leader =
            v->has_failover && v->failover_leader[0] && strcasecmp(name, v->failover_leader) == 0;
        /* The leader hands over only to a streaming replica within the lag limit; the others,
         * once the key is gone, just wait for a named candidate that can still take it (it
         * checks its own position against the shutdown checkpoint itself). */
        bool leading = e->local.state == ELECT_LEADER;
        if (v->has_failover && !is_old_leader &&
            (v->failover_candidate[0] ? strcasecmp(name, v->failover_candidate) == 0 : true) &&
            eligible(e, m, &s, v->sync_restricts, leading ? top : 0) && (!leading || streams(m)))
            v->candidate_ok = true;
        if (v->sync_restricts && dcs_sync_matches(&s, name, false) &&
            m->state == DCS_STATE_RUNNING && !dcs_tags_nofailover(&m->tags))
            v->sync_standby_up = true;
        if (!eligible(e, m, &s, v->sync_restricts, 0))
            continue;
        int64_t prio = dcs_tags_failover_priority(&m->tags);
        if (m->xlog_location > v->peer_max_lsn) {
            v->peer_max_lsn = m->xlog_location;
            v->peer_max_prio = prio;
        } else if (m->xlog_location == v->peer_max_lsn && prio > v->peer_max_prio) {
            v->peer_max_prio = prio;
        }
    }
    free(m);
    /* A standby whose leader moved to a later timeline checks the fork point once. */
    v->pg.behind_timeline =
        v->pg.ready && v->pg.in_recovery && leader_tli > e->timeline &&
        !(e->checked_leader_tli == leader_tli && strcmp(e->checked_leader, v->leader) == 0);
}
