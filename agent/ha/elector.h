/* Election driver of the ha process: etcd lease, member key, leader race, fencing, watch wakeups.
 */
#ifndef PGW_HA_ELECTOR_H
#define PGW_HA_ELECTOR_H

/*
 * Runs agent/ha/election.h's pure decisions against etcd: it keeps a cache of the cluster prefix
 * from one long watch (own writes applied at once), steps whenever the watch reports a change,
 * a lease renewal is due (every loop_wait) or the leader's fencing deadline (CLOCK_BOOTTIME
 * timerfd) passes, performs the decided action with the blocking etcd client, and reports:
 *  - logs and SQLite events ("acquired leadership", "lost leadership", "leader changed",
 *    "fencing");
 *  - MSG_LEASE to the supervisor after every renewal while leader (the supervisor enforces the
 *    same deadline if this process stalls) and when leadership ends;
 *  - MSG_ROUTE to the proxy whenever the route changes or its expiry moves.
 *
 * With [ha] manage_postgresql (elector_pg.c) the same table also drives the local PostgreSQL:
 * bootstrap after winning `initialize`, clone of the leader through our slot, start, promote
 * (and `history`), follow, demote after a fence or under another leader, release of the key
 * when the leader's postmaster dies and a replica is caught up, the leader's slots; the
 * postmaster is watched through a pidfd, so its death starts a step at once; a running one is
 * adopted at start. The member key then publishes state, role, xlog_location and timeline,
 * and the leader writes status {"optime":<its WAL position>}. Shutdown stops PostgreSQL
 * (fast) before the key is released. Without it: state "stopped", role "replica", optime 0.
 */

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct store;
struct pgw_config;
struct msg_fence;

/* How the elector reaches the supervisor and the proxy (ha_main wires it to child_send()). */
typedef int (*elector_send_fn)(void *arg, uint8_t dst, uint16_t type, const void *payload,
                               uint32_t len);

struct elector;

/* Copies cfg. The caller has run curl_global_init(). NULL on failure (logged). */
struct elector *elector_new(const struct pgw_config *cfg, struct loop *l, struct store *store,
                            elector_send_fn send, void *send_arg);
/* Starts the watch and the first step (on the next loop iteration). False on failure. */
bool elector_start(struct elector *e);
/* The configuration was reloaded: timings, nofailover, member value. */
void elector_reconfigure(struct elector *e, const struct pgw_config *cfg);
/* MSG_FENCE from the supervisor. */
void elector_supervisor_fenced(struct elector *e, const struct msg_fence *m);
/* Voluntary shutdown, after the loop stopped: a leader deletes the leader key if it is still
 * ours; the lease is revoked (the member key goes with it). Blocks for the etcd calls. */
void elector_shutdown(struct elector *e);
/* An operator command from the web process (MSG_COMMAND JSON); the reply goes back as
 * MSG_REPLY. */
void elector_handle_command(struct elector *e, const void *json, uint32_t len);
void elector_free(struct elector *e);
/* The forwarder's counters (MSG_PROXY_STATS), kept for the dashboard samples. */
struct msg_proxy_stats;
void elector_proxy_stats(struct elector *e, const struct msg_proxy_stats *s);

/* Unary etcd requests sent by this process so far. */
uint64_t elector_etcd_requests(const struct elector *e);

#endif
