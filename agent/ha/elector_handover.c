/* Election driver: switchover, clearing the failover request, rejoin of a former primary, handover.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/dcs/values.h"
#include "agent/etcd/etcd.h"
#include "agent/ha/elector_int.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

enum {
    CHECKPOINT_TIMEOUT_MS = 30000,
    STOP_TIMEOUT_MS = 30000,
    START_TIMEOUT_MS = 60000,
    FOLLOW_TIMEOUT_MS = 10000,
    REWIND_TIMEOUT_MS = 600000,
    SHUTDOWN_RECHECKS = 10,
    DRAIN_MS = 800, /* long enough for a connection's authentication to finish */
};

/* `status` = {"optime": lsn}: where the replicas must be to take over without a loss. */
static bool write_optime(struct elector *e, int64_t lsn)
{
    e->optime = lsn;
    if (!elector_build_values(e))
        return false;
    struct etcd_put_result pr;
    const struct etcd_put_req req = {
        .key = e->k_status, .value = e->status_value, .value_len = e->status_len};
    if (etcd_put(e->etcd, &req, &pr) != 0) {
        log_warn("cannot write the status key", "optime=%" PRId64, lsn);
        return false;
    }
    const struct kvc_entry *old = kvc_get(&e->cache, e->k_status);
    kvc_put(&e->cache, e->k_status, e->status_value, e->status_len,
            old ? old->create_rev : pr.header.revision, pr.header.revision, 0);
    etcd_put_result_clear(&pr);
    return true;
}

/* Checkpoint (so that the stop is short), fast stop (the walsenders send everything to the
 * connected standbys first), then `status` = the shutdown checkpoint. */
static int stop_and_publish(struct elector *e, const char *why)
{
    struct pg_error err;
    struct pg_stop_result sr;
    if (pg_checkpoint(&e->pg, CHECKPOINT_TIMEOUT_MS, &err) < 0)
        log_warn("checkpoint before the stop failed; stopping anyway", "why=%s", why);
    int rc = pg_stop(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, true, &sr, &err);
    if (rc < 0)
        return rc;
    e->ssn[0] = '\0';
    e->ssn_known = true;
    struct pg_controldata cd;
    if (pg_controldata_read(&e->pg, &cd, &err) == 0 && cd.checkpoint_lsn > 0) {
        log_info("postgresql stopped", "why=%s mode=%s shutdown_checkpoint=%" PRIu64, why,
                 pg_stop_mode_name(sr.mode_used), cd.checkpoint_lsn);
        write_optime(e, (int64_t)cd.checkpoint_lsn);
    }
    return 0;
}

/* Every forwarder stops sending new clients here before the stop (they hold them until the
 * new leader accepts writes): our own at once, the other nodes' when they see our member key
 * say "stopping"; connections still being set up get a moment to finish. */
static void drain(struct elector *e)
{
    e->busy_state = DCS_STATE_STOPPING;
    elector_put_member_now(e);
    elector_publish_now(e);
    struct timespec ts = {.tv_nsec = DRAIN_MS * 1000000L};
    nanosleep(&ts, NULL);
}

int elector_switchover(struct elector *e, const struct elect_view *v, struct elect_result *r)
{
    log_info("switchover: handing over the leadership", "candidate=%s scheduled=%s",
             v->failover_candidate[0] ? v->failover_candidate : "any",
             v->failover_due ? "now" : "later");
    drain(e);
    int rc = stop_and_publish(e, "switchover");
    e->busy_state = DCS_STATE_UNKNOWN;
    elector_build_values(e);
    if (rc < 0) {
        log_error("switchover: cannot stop postgresql; staying the leader", "rc=%d", rc);
        return rc;
    }
    const struct elect_decision d = {.action = ELECT_ACT_PG_SWITCHOVER, .rule = "switchover"};
    if (!elector_release_key(e, &d, r) || !r->ok) {
        log_error("switchover: postgresql stopped but the key cannot be released; it expires "
                  "with the lease");
        return -EIO;
    }
    elector_pg_event(e, "switchover: demoted");
    return 0;
}

bool elector_clear_failover(struct elector *e, const struct elect_view *v)
{
    const char *why = v->failover_stale ? "stale scheduled request"
                      : (v->failover_candidate[0] && strcmp(v->failover_candidate, e->ec.name) == 0)
                          ? "done: this node is the leader now"
                      : (v->failover_leader[0] && strcmp(v->failover_leader, e->ec.name) != 0)
                          ? "addressed to another leader"
                          : "no eligible candidate";
    struct etcd_delete_result dr;
    const struct etcd_delete_req req = {.key = e->k_failover};
    if (etcd_delete(e->etcd, &req, &dr) != 0) {
        log_warn("cannot clear the failover key");
        return false;
    }
    kvc_delete(&e->cache, e->k_failover, dr.header.revision);
    etcd_delete_result_clear(&dr);
    if (strcmp(why, "done: this node is the leader now") == 0)
        log_info("failover request cleared", "why=\"%s\"", why);
    else
        log_warn("failover request cancelled", "why=\"%s\" leader=%s candidate=%s", why,
                 v->failover_leader[0] ? v->failover_leader : "any",
                 v->failover_candidate[0] ? v->failover_candidate : "any");
    return true;
}

/* pg_rewind from the leader, or (when allowed) an empty data directory for a new clone. */
static int rewind_or_wipe(struct elector *e, const char *host, uint16_t port)
{
    struct pg_error err;
    struct pg_conf c;
    bool use_rewind = !e->dyn_present || e->dyn.use_pg_rewind;
    int rc = -ENOTSUP;
    if (use_rewind) {
        elector_make_conf(e, &c, true, host, port);
        log_info("rewinding from the leader", "leader=%s", e->upstream);
        rc = pg_rewind_run(&e->pg, host, port, &c, REWIND_TIMEOUT_MS, &err);
        if (rc == 0) {
            elector_pg_event(e, "rewound");
            return 0;
        }
        if (rc == -ECANCELED)
            return rc; /* shutting down: never wipe for that */
    }
    if (!e->cfg.postgresql.remove_data_directory_on_rewind_failure) {
        log_error("the data directory diverged from the leader and cannot be rewound; it stays "
                  "stopped (remove_data_directory_on_rewind_failure is off)",
                  "use_pg_rewind=%s", use_rewind ? "yes" : "no");
        return rc;
    }
    log_warn("the data directory diverged and cannot be rewound: emptying it to clone the "
             "leader again",
             "use_pg_rewind=%s", use_rewind ? "yes" : "no");
    rc = pg_datadir_wipe(&e->pg, &err);
    if (rc == 0)
        elector_pg_event(e, "data directory removed for a new clone");
    return rc;
}

int elector_rejoin(struct elector *e, const struct elect_view *v)
{
    char host[PG_HOST_MAX];
    uint16_t port = 0;
    uint32_t tli = 0;
    struct pg_error err;
    bool diverged = false;
    char why[256] = "";
    if (!elector_leader_address(e, v->leader, host, sizeof(host), &port, &tli))
        return -EAGAIN;
    snprintf(e->upstream, sizeof(e->upstream), "%s", v->leader);
    int rc;
    if (v->pg.running) {
        rc = pg_check_diverged_running(&e->pg, host, port, &diverged, why, sizeof(why), &err);
        if (rc == 0 && !diverged) {
            struct pg_conf c;
            elector_make_conf(e, &c, true, host, port);
            rc = pg_follow(&e->pg, &c, FOLLOW_TIMEOUT_MS, &err);
            goto done;
        }
        struct pg_stop_result sr;
        if (rc == 0)
            rc = pg_stop(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, true, &sr, &err);
        if (rc < 0)
            goto done;
    }
    rc = pg_ensure_clean_shutdown(&e->pg, START_TIMEOUT_MS, &err);
    if (rc == 0)
        rc = pg_check_diverged(&e->pg, host, port, &diverged, why, sizeof(why), &err);
    if (rc == -EXDEV) {
        log_error("the leader belongs to another database system; not following it", "leader=%s",
                  v->leader);
        goto done;
    }
    if (rc == 0 && diverged) {
        log_warn("diverged from the leader's timeline", "leader=%s why=\"%s\"", v->leader, why);
        rc = rewind_or_wipe(e, host, port);
    }
    if (rc == 0) {
        enum pg_datadir_state ds = PG_DATADIR_OTHER;
        if (pg_datadir_probe(&e->pg, &ds, NULL) == 0 && ds != PG_DATADIR_INITIALIZED)
            goto done; /* wiped: the clone rule takes over */
        rc = elector_start_standby(e, v, false);
    }
done:
    if (rc == 0) {
        e->checked_leader_tli = tli;
        snprintf(e->checked_leader, sizeof(e->checked_leader), "%s", v->leader);
        log_info("following the leader after a divergence check", "leader=%s diverged=%s",
                 v->leader, diverged ? "yes (fixed)" : "no");
    }
    return rc;
}

void elector_handover_stop(struct elector *e)
{
    if (e->local.state != ELECT_LEADER || !e->pgv.ready || e->pgv.in_recovery) {
        /* A pg_ctl start cut short by this very SIGTERM may leave a postmaster that has not
         * written postmaster.pid yet: look again for a moment. */
        for (int i = 0; i < SHUTDOWN_RECHECKS; i++) {
            struct pg_stop_result sr;
            struct pg_error err;
            if (pg_stop(&e->pg, PG_STOP_FAST, STOP_TIMEOUT_MS, true, &sr, &err) == 0 &&
                sr.was_running)
                log_info("postgresql stopped", "mode=%s", pg_stop_mode_name(sr.mode_used));
            if (!e->start_cancelled)
                break;
            struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        return;
    }
    drain(e);
    if (stop_and_publish(e, "shutdown handover") == 0)
        elector_pg_event(e, "stopped for shutdown; leadership handed over");
    e->busy_state = DCS_STATE_UNKNOWN;
}
