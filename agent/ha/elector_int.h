/* Election driver internals shared by agent/ha/elector.c and agent/ha/elector_io.c. */
#ifndef PGW_HA_ELECTOR_INT_H
#define PGW_HA_ELECTOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/dcs/dyncfg.h"
#include "agent/dcs/keys.h"
#include "agent/ha/election.h"
#include "agent/ha/elector.h"
#include "agent/ha/kvcache.h"
#include "agent/msgtypes.h"
#include "agent/settings.h"

struct etcd_client;
struct etcd_watch;
struct boottimer;

struct elector {
    struct pgw_config cfg;
    struct loop *loop;
    struct store *store;
    elector_send_fn send;
    void *send_arg;

    struct etcd_client *etcd;
    struct etcd_watch *watch;
    struct dcs_keys keys;
    char k_leader[DCS_KEY_MAX];
    char k_member[DCS_KEY_MAX];
    char k_members[DCS_KEY_MAX]; /* "<prefix>members/" */
    char k_config[DCS_KEY_MAX];
    char k_status[DCS_KEY_MAX];

    struct kvcache cache;
    bool dyn_checked;    /* dyn reflects the config key at dyn_mod_rev */
    int64_t dyn_mod_rev; /* mod_revision of the config key read (0: absent) */
    bool dyn_present;
    struct dcs_config dyn;
    bool config_unwritable; /* the local values do not make a valid `config` (logged once) */

    struct elect_config ec;
    struct elect_local local;
    char *member_value; /* wanted members/<me> value */
    size_t member_len;
    char *status_value; /* wanted `status` value (leader) */
    size_t status_len;
    int64_t optime; /* the leader's WAL position for `status` (0 until issue 4 provides it) */

    uint64_t tick_timer;
    struct boottimer *deadline;
    uint64_t stats_timer;
    uint64_t stats_requests;
    uint64_t stats_at_ms;
    bool in_step;
    bool again;
    bool failing; /* the last etcd request failed (logged once per streak) */

    bool route_sent;
    struct msg_route route;
    bool lease_sent_leader;
    struct msg_lease lease_msg;
};

/* ---- elector_io.c: one etcd action each; false when the request failed (the step stops) ---- */
bool elector_perform(struct elector *e, const struct elect_decision *d, const struct elect_view *v,
                     struct elect_result *r);
/* Fills the view from the cache (and the watch state). */
void elector_build_view(struct elector *e, struct elect_view *v);
/* Builds the wanted member and status values from the configuration. */
bool elector_build_values(struct elector *e);

#endif
