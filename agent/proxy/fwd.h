/* The forwarder: accepts clients on the read-write and read-only ports and relays them. */
#ifndef PGW_PROXY_FWD_H
#define PGW_PROXY_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/msgtypes.h"
#include "agent/settings.h"
#include "platform/loop.h"

struct fwd;

struct fwd_config {
    uint64_t hold_timeout_ms;  /* a connection waits this long for a primary (0: refuse at once) */
    uint32_t max_connections;  /* client connections at the same time */
    uint64_t ro_max_lag;       /* bytes */
    bool ro_fallback_leader;   /* read-only clients go to the leader when no replica qualifies */
    uint64_t first_packet_ms;  /* a client that sends no startup packet is closed after this */
    uint64_t connect_ms;       /* upstream connect timeout */
    uint64_t retry_ms;         /* a held connection retries a failed upstream after this */
    uint64_t linger_ms;        /* after an error reply, wait this long for the client to close */
    uint32_t user_timeout_ms;  /* TCP_USER_TIMEOUT of the upstream leg */
    uint32_t keepalive_idle_s; /* keepalive of the upstream leg */
};

/* The configuration from [proxy], with the fixed timeouts. */
void fwd_config_from_settings(const struct pgw_proxy_settings *s, struct fwd_config *out);

/* Starts accepting on the listening sockets (either may be -1); they stay owned by the caller.
 * NULL on failure (logged). */
struct fwd *fwd_new(struct loop *l, int rw_fd, int ro_fd, const struct fwd_config *cfg);
/* Closes every connection and stops watching the listening sockets. */
void fwd_free(struct fwd *f);

/* Applies a reloaded configuration (new limits apply to new connections; a shorter
 * hold_timeout to new holds). */
void fwd_set_config(struct fwd *f, const struct fwd_config *cfg);
/* A new routing table from ha (or the supervisor's fence): held connections are routed if it
 * allows; connections to a leader that is no longer the leader are closed at once. */
void fwd_set_route(struct fwd *f, const struct msg_route *m);
/* The counters, for MSG_PROXY_STATS. */
void fwd_stats(const struct fwd *f, struct msg_proxy_stats *out);
/* Client connections open now (held and rejected ones included). */
size_t fwd_connections(const struct fwd *f);

#endif
