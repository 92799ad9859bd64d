/* Leader election decision: the transition table, the outcome of each action, deadline arithmetic.
 */
#include "agent/ha/election.h"

#include <stdio.h>
#include <string.h>

#include "agent/dcs/dyncfg.h"
#include "agent/settings.h"

#define S(st) (1u << (st))

/* ---- guards (pure predicates over the input) ---- */

static bool key_has_my_name(const struct elect_input *in)
{
    return in->view->valid && in->view->has_leader && strcmp(in->view->leader, in->cfg->name) == 0;
}

static bool lease_alive(const struct elect_input *in)
{
    return in->local->lease_id != 0 && in->now_ms < in->local->deadline_ms;
}

static bool g_fence_due(const struct elect_input *in)
{
    return in->now_ms >= in->local->deadline_ms || in->local->fence_pending != ELECT_FENCE_NONE;
}

static bool g_shutdown(const struct elect_input *in)
{
    return in->local->shutdown;
}

static bool g_always(const struct elect_input *in)
{
    (void)in;
    return true;
}

static bool g_key_not_ours(const struct elect_input *in)
{
    return in->view->valid &&
           (!key_has_my_name(in) || in->view->leader_lease != in->local->lease_id);
}

static bool g_lease_due(const struct elect_input *in)
{
    return in->now_ms >= in->local->next_lease_ms;
}

static bool g_read_due(const struct elect_input *in)
{
    return (!in->view->valid || !in->view->fresh) && in->now_ms >= in->local->next_read_ms;
}

bool elect_pg_foreign(const struct elect_config *cfg, const struct elect_view *v)
{
    return cfg->manage_pg && v->initialize_set && v->pg.datadir_ok && v->pg.sysid != 0 &&
           v->initialize_sysid != 0 && v->pg.sysid != v->initialize_sysid;
}

static bool foreign(const struct elect_input *in)
{
    return elect_pg_foreign(in->cfg, in->view);
}

static bool g_member_outdated(const struct elect_input *in)
{
    return in->view->valid && !in->view->member_ok && lease_alive(in) && !foreign(in);
}

static bool g_adoptable(const struct elect_input *in)
{
    return key_has_my_name(in) && in->view->leader_lease == in->local->lease_id && lease_alive(in);
}

static bool g_takeover(const struct elect_input *in)
{
    const struct elect_local *l = in->local;
    return key_has_my_name(in) && !in->cfg->nofailover && in->view->leader_lease != l->lease_id &&
           in->view->leader_lease != l->abandoned_lease && lease_alive(in) && !foreign(in);
}

static bool g_leader_changed(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    const struct elect_local *l = in->local;
    if (!v->valid)
        return false;
    const char *seen = v->has_leader ? v->leader : "";
    return !l->noted || strcmp(seen, l->noted_leader) != 0;
}

/* ---- PostgreSQL guards (only with cfg->manage_pg) ---- */

static bool pg_may_act(const struct elect_input *in)
{
    return in->cfg->manage_pg && in->view->pg.known && in->now_ms >= in->local->pg_next_ms &&
           !elect_pg_foreign(in->cfg, in->view);
}

static bool pg_rows(const struct elect_input *in)
{
    return pg_may_act(in) && in->view->valid;
}

static bool leader_is_other(const struct elect_input *in)
{
    return in->view->has_leader && strcmp(in->view->leader, in->cfg->name) != 0;
}

static bool pg_primary(const struct elect_input *in)
{
    return in->view->pg.ready && !in->view->pg.in_recovery;
}

/* A replica is at most maximum_lag_on_failover behind the leader's last known position. */
static bool replica_caught_up(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    int64_t top = v->pg.lsn;
    if (v->has_optime && v->optime > top)
        top = v->optime;
    if (v->sync_restricts && v->sync_standby_up)
        return true; /* PostgreSQL confirmed it: nothing acknowledged is missing there */
    return v->peer_max_lsn >= 0 && v->peer_max_lsn + in->cfg->max_lag >= top;
}

static bool is_me(const struct elect_input *in, const char *name)
{
    return strcmp(name, in->cfg->name) == 0;
}

/* A former primary, or a standby behind the leader's timeline: check before following. */
static bool unverified(const struct elect_input *in)
{
    return in->local->rejoin_check || in->view->pg.was_primary || in->view->pg.behind_timeline;
}

/* Patroni's is_healthiest_node, with the peers' positions from their member keys, the
 * `failover` request, the `sync` key and pause. */
static bool pg_healthy_for_race(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    if (!in->cfg->manage_pg)
        return true;
    if (!pg_may_act(in) || !v->initialize_set || !v->pg.ready ||
        in->now_ms < in->local->no_race_until_ms)
        return false;
    if (!v->pg.in_recovery)
        return true; /* the primary we bootstrapped or adopted (also when paused) */
    /* A `failover` request steers the race for a TTL after the leader key went; then the
     * usual rules apply, so that a candidate that never shows up cannot block the cluster. */
    bool steer = v->has_failover && in->now_ms < in->local->leaderless_since_ms + in->cfg->t.ttl_ms;
    bool named = steer && v->failover_candidate[0];
    bool me_named = named && is_me(in, v->failover_candidate);
    bool graceful = steer && v->failover_leader[0] && v->has_optime;
    if (v->paused &&
        !(v->has_failover && v->failover_candidate[0] && is_me(in, v->failover_candidate)))
        return false;
    if (v->sync_restricts && !v->sync_member)
        return false;
    if (steer && v->failover_leader[0] && is_me(in, v->failover_leader) && v->candidate_ok)
        return false; /* the leader that asked to hand over */
    if (graceful && v->pg.lsn < v->optime)
        return false; /* a switchover loses nothing: the shutdown checkpoint must be here */
    if (v->has_optime && v->pg.lsn + in->cfg->max_lag < v->optime)
        return false;
    if (me_named)
        return true;
    if (named && v->candidate_ok)
        return false; /* the named candidate can take it */
    if (v->peer_max_lsn > v->pg.lsn)
        return false;
    return v->peer_max_lsn < v->pg.lsn || v->peer_max_prio <= in->cfg->priority;
}

static bool g_can_race(const struct elect_input *in)
{
    return in->view->valid && !in->view->has_leader && !in->cfg->nofailover && lease_alive(in) &&
           pg_healthy_for_race(in);
}

static bool g_pg_demote(const struct elect_input *in)
{
    const struct elect_local *l = in->local;
    if (!pg_may_act(in) || !pg_primary(in))
        return false;
    return l->demote_pending || l->state == ELECT_FENCED ||
           (in->view->valid && leader_is_other(in));
}

static bool g_init_race(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    return pg_rows(in) && !v->has_initialize && !v->has_leader && v->pg.datadir_empty &&
           !in->cfg->nofailover && !in->local->init_won && lease_alive(in);
}

static bool g_bootstrap(const struct elect_input *in)
{
    return pg_rows(in) && in->local->init_won && in->view->pg.datadir_empty;
}

static bool g_write_initialize(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    return pg_rows(in) && in->local->init_won && v->has_initialize && !v->initialize_set &&
           pg_primary(in);
}

static bool g_clone(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    return pg_rows(in) && !v->paused && v->pg.datadir_empty && !in->local->init_won &&
           v->initialize_set && leader_is_other(in) && v->leader_conn;
}

static bool pg_down(const struct elect_input *in)
{
    return pg_rows(in) && !in->view->paused && in->view->pg.datadir_ok && !in->view->pg.running;
}

/* A follower's stopped PostgreSQL starts as a standby, except a former primary that released
 * the key: it waits (up to rejoin_wait_ms) for the new leader, to follow it at once. */
static bool g_start_standby(const struct elect_input *in)
{
    if (!pg_down(in))
        return false;
    bool no_leader = !in->view->has_leader || !leader_is_other(in) || !in->view->leader_conn;
    return !(no_leader && unverified(in) && in->now_ms < in->local->rejoin_wait_ms);
}

static bool g_rejoin(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    if (!pg_rows(in) || v->paused || !v->pg.datadir_ok || !unverified(in) || !leader_is_other(in) ||
        !v->leader_conn || in->now_ms < in->local->rejoin_next_ms)
        return false;
    return !v->pg.running || (v->pg.ready && v->pg.in_recovery);
}

/* The leader acts on a `failover` request addressed to it (or to any leader). */
static bool failover_for_me(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    return v->valid && v->has_failover && v->failover_due && !v->failover_stale &&
           (!v->failover_leader[0] || is_me(in, v->failover_leader)) &&
           !(v->failover_candidate[0] && is_me(in, v->failover_candidate));
}

static bool g_switchover(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    return pg_rows(in) && pg_primary(in) && failover_for_me(in) && v->candidate_ok &&
           (!v->paused || v->failover_candidate[0]);
}

/* Done (we are the candidate, or the request named another leader), stale, or impossible. */
static bool g_clear_failover(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    if (!v->valid || !v->has_failover)
        return false;
    if (v->failover_stale || (v->failover_leader[0] && !is_me(in, v->failover_leader)) ||
        (v->failover_candidate[0] && is_me(in, v->failover_candidate)))
        return true;
    return in->cfg->manage_pg && failover_for_me(in) && pg_primary(in) && !v->candidate_ok;
}

static bool g_sync(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    if (!pg_rows(in))
        return false;
    if (v->sync_mode && !v->sync_key_mine)
        return true; /* won the race: claim `sync` before promoting */
    return pg_primary(in) && !v->sync_ok;
}

static bool g_reconfigure(const struct elect_input *in)
{
    return pg_rows(in) && in->view->pg.ready && !in->view->params_ok;
}

static bool g_pg_release(const struct elect_input *in)
{
    return pg_down(in) && replica_caught_up(in);
}

static bool g_promote(const struct elect_input *in)
{
    return pg_rows(in) && in->view->pg.ready && in->view->pg.in_recovery;
}

static bool g_pg_down(const struct elect_input *in)
{
    return pg_down(in);
}

static bool g_follow(const struct elect_input *in)
{
    const struct elect_view *v = in->view;
    return pg_rows(in) && v->pg.ready && v->pg.in_recovery && leader_is_other(in) &&
           v->leader_conn && !v->pg.following_leader && !unverified(in);
}

static bool g_slots(const struct elect_input *in)
{
    return pg_rows(in) && pg_primary(in) && !in->view->pg.slots_ok;
}

static bool g_config_missing(const struct elect_input *in)
{
    return in->view->valid && !in->view->has_config;
}

static bool g_status_outdated(const struct elect_input *in)
{
    return in->view->valid && !in->view->status_ok;
}

/* The transition table: the first row whose state matches and whose guard holds fires. The
 * order is the priority: safety (fence, release) first, then the lease, then the view, then
 * the race, then the leader's housekeeping. */
static const struct elect_rule rules[] = {
    {"leader deadline passed or fence requested", S(ELECT_LEADER), g_fence_due, ELECT_ACT_FENCE},
    {"shutdown while leader", S(ELECT_LEADER), g_shutdown, ELECT_ACT_RELEASE},
    {"leader key gone or not ours", S(ELECT_LEADER), g_key_not_ours, ELECT_ACT_STEP_DOWN},
    {"primary without leadership: demote", S(ELECT_FENCED) | S(ELECT_INIT) | S(ELECT_FOLLOWER),
     g_pg_demote, ELECT_ACT_PG_DEMOTE},
    {"fenced: abandon the lease", S(ELECT_FENCED), g_always, ELECT_ACT_ABANDON},
    {"shutdown", S(ELECT_INIT) | S(ELECT_FOLLOWER), g_shutdown, ELECT_ACT_REVOKE},
    {"no lease", S(ELECT_INIT), g_lease_due, ELECT_ACT_GRANT},
    {"keepalive due", S(ELECT_FOLLOWER) | S(ELECT_LEADER), g_lease_due, ELECT_ACT_KEEPALIVE},
    {"view missing or stale", S(ELECT_FOLLOWER) | S(ELECT_LEADER), g_read_due, ELECT_ACT_READ},
    {"member key outdated", S(ELECT_FOLLOWER) | S(ELECT_LEADER), g_member_outdated,
     ELECT_ACT_PUT_MEMBER},
    {"leader key ours under our lease", S(ELECT_FOLLOWER), g_adoptable, ELECT_ACT_ADOPT},
    {"leader key ours under an old lease", S(ELECT_FOLLOWER), g_takeover, ELECT_ACT_TAKEOVER},
    {"leader changed", S(ELECT_FOLLOWER) | S(ELECT_LEADER), g_leader_changed,
     ELECT_ACT_NOTE_LEADER},
    {"no initialize, empty data dir: race for it", S(ELECT_FOLLOWER), g_init_race,
     ELECT_ACT_INIT_RACE},
    {"won initialize: bootstrap", S(ELECT_FOLLOWER), g_bootstrap, ELECT_ACT_PG_BOOTSTRAP},
    {"bootstrapped: write initialize", S(ELECT_FOLLOWER) | S(ELECT_LEADER), g_write_initialize,
     ELECT_ACT_WRITE_INITIALIZE},
    {"empty data dir: clone the leader", S(ELECT_FOLLOWER), g_clone, ELECT_ACT_PG_CLONE},
    {"failover request done, stale, for another leader or impossible: clear it", S(ELECT_LEADER),
     g_clear_failover, ELECT_ACT_CLEAR_FAILOVER},
    {"leader's PostgreSQL down, a replica caught up: release", S(ELECT_LEADER), g_pg_release,
     ELECT_ACT_PG_RELEASE},
    {"leader's PostgreSQL down: start it", S(ELECT_LEADER), g_pg_down, ELECT_ACT_PG_START_PRIMARY},
    {"synchronous replication state outdated", S(ELECT_LEADER), g_sync, ELECT_ACT_SYNC},
    {"leader in recovery: promote", S(ELECT_LEADER), g_promote, ELECT_ACT_PG_PROMOTE},
    {"switchover requested and a candidate is ready", S(ELECT_LEADER), g_switchover,
     ELECT_ACT_PG_SWITCHOVER},
    {"former primary or new timeline: check divergence and follow", S(ELECT_FOLLOWER), g_rejoin,
     ELECT_ACT_PG_REJOIN},
    {"PostgreSQL down: start as a standby", S(ELECT_FOLLOWER), g_start_standby,
     ELECT_ACT_PG_START_STANDBY},
    {"standby not following the leader", S(ELECT_FOLLOWER), g_follow, ELECT_ACT_PG_FOLLOW},
    {"no leader and eligible", S(ELECT_FOLLOWER), g_can_race, ELECT_ACT_RACE},
    {"config missing", S(ELECT_LEADER), g_config_missing, ELECT_ACT_WRITE_CONFIG},
    {"status outdated", S(ELECT_LEADER), g_status_outdated, ELECT_ACT_WRITE_STATUS},
    {"replication slots outdated", S(ELECT_LEADER), g_slots, ELECT_ACT_PG_SLOTS},
    {"dynamic parameters changed", S(ELECT_LEADER) | S(ELECT_FOLLOWER), g_reconfigure,
     ELECT_ACT_PG_RECONFIGURE},
};

const struct elect_rule *elect_rules(size_t *count)
{
    *count = sizeof(rules) / sizeof(rules[0]);
    return rules;
}

struct elect_decision elect_decide(const struct elect_config *cfg, const struct elect_view *v,
                                   const struct elect_local *l, uint64_t now_ms)
{
    const struct elect_input in = {.cfg = cfg, .view = v, .local = l, .now_ms = now_ms};
    struct elect_decision d = {.action = ELECT_ACT_NONE, .rule = "idle"};
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (!(rules[i].states & S(l->state)) || !rules[i].guard(&in))
            continue;
        d.action = rules[i].action;
        d.rule = rules[i].name;
        if (d.action == ELECT_ACT_FENCE)
            d.fence_reason =
                l->fence_pending != ELECT_FENCE_NONE ? l->fence_pending : ELECT_FENCE_DEADLINE;
        return d;
    }
    return d;
}

/* ---- outcomes ---- */

static void lease_renewed(const struct elect_config *cfg, struct elect_local *l,
                          const struct elect_result *r)
{
    l->lease_ttl_s = r->lease_ttl_s;
    l->lease_sent_ms = r->sent_ms;
    l->deadline_ms = elect_deadline(r->sent_ms, cfg->t.ttl_ms, r->lease_ttl_s, cfg->t.margin_ms);
    l->next_lease_ms = r->sent_ms + cfg->t.loop_wait_ms;
}

static void forget_lease(struct elect_local *l)
{
    if (l->lease_id != 0)
        l->abandoned_lease = l->lease_id;
    l->lease_id = 0;
    l->lease_ttl_s = 0;
    l->deadline_ms = 0;
}

/* etcd said the lease is gone: a leader fences (its key went with the lease); anyone else just
 * starts over with a new lease. */
static void lease_lost(struct elect_local *l, uint64_t now_ms)
{
    if (l->state == ELECT_LEADER) {
        l->fence_pending = ELECT_FENCE_LEASE_LOST;
        return;
    }
    forget_lease(l);
    l->state = l->shutdown ? ELECT_STOPPED : ELECT_INIT;
    l->next_lease_ms = now_ms;
}

static void became_leader(const struct elect_config *cfg, struct elect_local *l, int64_t term)
{
    l->state = ELECT_LEADER;
    l->demote_pending = false;
    l->term = term;
    l->fence_pending = ELECT_FENCE_NONE;
    l->rejoin_check = false; /* our timeline is the cluster's now */
    l->noted = true;
    snprintf(l->noted_leader, sizeof(l->noted_leader), "%s", cfg->name);
}

static uint64_t retry_delay(const struct elect_config *cfg)
{
    uint64_t d = cfg->t.loop_wait_ms / 2;
    return d < 100 ? 100 : d;
}

void elect_apply(const struct elect_config *cfg, struct elect_local *l,
                 const struct elect_decision *d, const struct elect_view *v,
                 const struct elect_result *r, uint64_t now_ms)
{
    static const struct elect_result none = {0};
    if (!r)
        r = &none;
    if (r->lease_lost && d->action != ELECT_ACT_ABANDON && d->action != ELECT_ACT_REVOKE) {
        lease_lost(l, now_ms);
        return;
    }
    switch (d->action) {
    case ELECT_ACT_NONE:
        break;
    case ELECT_ACT_FENCE:
        l->demote_pending = cfg->manage_pg;
        l->state = ELECT_FENCED;
        l->fence_reason = d->fence_reason;
        l->fence_pending = ELECT_FENCE_NONE;
        break;
    case ELECT_ACT_RELEASE:
        if (!r->ok)
            break; /* etcd did not answer: still the holder until the deadline */
        l->state = ELECT_FOLLOWER;
        l->term = 0;
        break;
    case ELECT_ACT_STEP_DOWN:
        l->demote_pending = cfg->manage_pg;
        l->state = ELECT_FOLLOWER;
        l->term = 0;
        break;
    case ELECT_ACT_PG_RELEASE:
        if (!r->ok) {
            l->pg_next_ms = now_ms + retry_delay(cfg);
            break;
        }
        l->state = ELECT_FOLLOWER;
        l->term = 0;
        l->no_race_until_ms = now_ms + cfg->t.ttl_ms;
        l->rejoin_check = true;
        l->rejoin_wait_ms = now_ms + cfg->t.ttl_ms;
        break;
    case ELECT_ACT_PG_SWITCHOVER:
        if (!r->ok) {
            l->pg_next_ms = now_ms + retry_delay(cfg);
            break;
        }
        l->state = ELECT_FOLLOWER;
        l->term = 0;
        l->demote_pending = false;
        l->rejoin_check = true;
        l->rejoin_wait_ms = now_ms + cfg->t.ttl_ms;
        break;
    case ELECT_ACT_PG_REJOIN:
        if (r->ok)
            l->rejoin_check = false;
        else /* not at once against the same leader (a failed rewind is costly); a new
                leader resets it, and the other rows (the race) are not held up */
            l->rejoin_next_ms = now_ms + cfg->t.ttl_ms;
        break;
    case ELECT_ACT_CLEAR_FAILOVER:
        break;
    case ELECT_ACT_INIT_RACE:
        if (r->ok && r->won)
            l->init_won = true;
        else if (!r->ok)
            l->pg_next_ms = now_ms + retry_delay(cfg);
        break;
    case ELECT_ACT_PG_DEMOTE:
    case ELECT_ACT_PG_BOOTSTRAP:
    case ELECT_ACT_WRITE_INITIALIZE:
    case ELECT_ACT_PG_CLONE:
    case ELECT_ACT_PG_START_PRIMARY:
    case ELECT_ACT_PG_PROMOTE:
    case ELECT_ACT_PG_START_STANDBY:
    case ELECT_ACT_PG_FOLLOW:
    case ELECT_ACT_PG_SLOTS:
    case ELECT_ACT_SYNC:
    case ELECT_ACT_PG_RECONFIGURE:
        if (!r->ok) {
            l->pg_next_ms = now_ms + cfg->t.loop_wait_ms;
        } else if (d->action == ELECT_ACT_PG_DEMOTE) {
            l->demote_pending = false;
            l->rejoin_check = true; /* stopped: follow the next leader only after a check */
        } else if (d->action == ELECT_ACT_WRITE_INITIALIZE) {
            l->init_won = false; /* done: the key now names the cluster */
        } else if (d->action == ELECT_ACT_PG_START_STANDBY && v->pg.was_primary) {
            l->rejoin_check = true; /* read-only until a leader shows up: check it then */
        } else if (d->action == ELECT_ACT_PG_CLONE || d->action == ELECT_ACT_PG_BOOTSTRAP) {
            l->rejoin_check = false;
        }
        break;
    case ELECT_ACT_ABANDON:
        forget_lease(l);
        l->term = 0;
        l->state = l->shutdown ? ELECT_STOPPED : ELECT_INIT;
        l->next_lease_ms = now_ms;
        break;
    case ELECT_ACT_REVOKE:
        l->lease_id = 0;
        l->deadline_ms = 0;
        l->state = ELECT_STOPPED;
        break;
    case ELECT_ACT_GRANT:
        if (r->ok && r->lease_id != 0) {
            l->lease_id = r->lease_id;
            lease_renewed(cfg, l, r);
            l->state = ELECT_FOLLOWER;
        } else {
            l->next_lease_ms = now_ms + cfg->t.loop_wait_ms;
        }
        break;
    case ELECT_ACT_KEEPALIVE:
        if (r->ok)
            lease_renewed(cfg, l, r);
        else
            l->next_lease_ms = now_ms + retry_delay(cfg);
        break;
    case ELECT_ACT_READ:
        l->next_read_ms = now_ms + cfg->t.loop_wait_ms;
        break;
    case ELECT_ACT_ADOPT:
        became_leader(cfg, l, v->leader_create_rev);
        break;
    case ELECT_ACT_TAKEOVER:
    case ELECT_ACT_RACE:
        if (r->ok && r->won)
            became_leader(cfg, l, r->term);
        break;
    case ELECT_ACT_NOTE_LEADER:
        if (!v->has_leader && (!l->noted || l->noted_leader[0]))
            l->leaderless_since_ms = now_ms;
        if (v->has_leader && strcmp(v->leader, cfg->name) != 0) {
            l->no_race_until_ms = 0; /* a new leader took over: the hold-off did its job */
            l->rejoin_next_ms = 0;   /* and it is worth a new rejoin attempt */
        }
        l->noted = true;
        snprintf(l->noted_leader, sizeof(l->noted_leader), "%s", v->has_leader ? v->leader : "");
        break;
    case ELECT_ACT_PUT_MEMBER:
    case ELECT_ACT_WRITE_CONFIG:
    case ELECT_ACT_WRITE_STATUS:
        break; /* the driver's cache holds the result */
    }
}

void elect_local_init(struct elect_local *l, const struct elect_timings *t, uint64_t now_ms)
{
    memset(l, 0, sizeof(*l));
    l->state = ELECT_INIT;
    l->next_lease_ms = now_ms;
    l->next_read_ms = now_ms + t->loop_wait_ms;
}

bool elect_on_supervisor_fence(struct elect_local *l, int64_t term, uint64_t deadline_ms)
{
    if (l->state != ELECT_LEADER || l->term != term || l->deadline_ms > deadline_ms)
        return false;
    l->fence_pending = ELECT_FENCE_SUPERVISOR;
    return true;
}

/* ---- arithmetic ---- */

uint64_t elect_deadline(uint64_t sent_ms, uint64_t ttl_ms, int64_t lease_ttl_s, uint64_t margin_ms)
{
    uint64_t ttl = ttl_ms;
    if (lease_ttl_s > 0 && (uint64_t)lease_ttl_s * 1000u < ttl)
        ttl = (uint64_t)lease_ttl_s * 1000u;
    return ttl > margin_ms ? sent_ms + ttl - margin_ms : sent_ms;
}

uint64_t elect_margin(uint64_t ttl_ms, uint64_t loop_wait_ms, uint64_t margin_ms)
{
    uint64_t room = ttl_ms > loop_wait_ms ? ttl_ms - loop_wait_ms : 0;
    return margin_ms < room ? margin_ms : room / 2;
}

int64_t elect_grant_ttl_s(uint64_t ttl_ms)
{
    uint64_t s = (ttl_ms + 999) / 1000;
    return s < 1 ? 1 : (int64_t)s;
}

void elect_config_seconds(const struct pgw_ha_settings *ha, int64_t *ttl_s, int64_t *loop_wait_s,
                          int64_t *retry_timeout_s)
{
    *ttl_s = elect_grant_ttl_s(ha->ttl_ms);
    *loop_wait_s = ha->loop_wait_ms < 2000 ? 1 : (int64_t)(ha->loop_wait_ms / 1000);
    *retry_timeout_s = ha->retry_timeout_ms < 2000 ? 1 : (int64_t)(ha->retry_timeout_ms / 1000);
}

static uint64_t pick(int64_t dyn_s, int64_t local_s, uint64_t local_ms)
{
    if (dyn_s <= 0 || dyn_s == local_s)
        return local_ms;
    return (uint64_t)dyn_s * 1000u;
}

struct elect_timings elect_timings_compute(const struct pgw_ha_settings *ha,
                                           const struct dcs_config *dyn)
{
    struct elect_timings t = {.ttl_ms = ha->ttl_ms,
                              .loop_wait_ms = ha->loop_wait_ms,
                              .retry_timeout_ms = ha->retry_timeout_ms};
    if (dyn) {
        int64_t ttl_s, lw_s, rt_s;
        elect_config_seconds(ha, &ttl_s, &lw_s, &rt_s);
        t.ttl_ms = pick(dyn->ttl, ttl_s, ha->ttl_ms);
        t.loop_wait_ms = pick(dyn->loop_wait, lw_s, ha->loop_wait_ms);
        t.retry_timeout_ms = pick(dyn->retry_timeout, rt_s, ha->retry_timeout_ms);
    }
    t.margin_ms = elect_margin(t.ttl_ms, t.loop_wait_ms, ha->fencing_margin_ms);
    return t;
}

bool elect_action_is_pg(enum elect_action a)
{
    return a >= ELECT_ACT_PG_DEMOTE && a <= ELECT_ACT_CLEAR_FAILOVER;
}

/* ---- names ---- */

const char *elect_state_name(enum elect_state s)
{
    static const char *const names[] = {"init", "follower", "leader", "fenced", "stopped"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == ELECT_STOPPED + 1, "one name per state");
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

const char *elect_action_name(enum elect_action a)
{
    static const char *const names[] = {
        "none",           "fence",          "release",          "step_down",    "abandon",
        "revoke",         "grant",          "keepalive",        "read",         "put_member",
        "adopt",          "takeover",       "note_leader",      "race",         "write_config",
        "write_status",   "pg_demote",      "init_race",        "pg_bootstrap", "write_initialize",
        "pg_clone",       "pg_release",     "pg_start_primary", "pg_promote",   "pg_start_standby",
        "pg_follow",      "pg_slots",       "pg_switchover",    "pg_rejoin",    "sync",
        "pg_reconfigure", "clear_failover",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == ELECT_ACT_CLEAR_FAILOVER + 1,
                   "one name per action");
    return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

const char *elect_fence_reason_name(enum elect_fence_reason r)
{
    static const char *const names[] = {"none", "lease deadline passed", "lease lost",
                                        "supervisor enforced the lease deadline"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
