/* The forwarder's routing table: the leader and the replicas from ha, their expiry, the picks. */
#ifndef PGW_PROXY_ROUTE_H
#define PGW_PROXY_ROUTE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent/msgtypes.h"

/* A resolved PostgreSQL address. */
struct route_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } u;
    socklen_t len; /* 0: unresolved / none */
};

struct route_replica {
    struct route_addr addr;
    int64_t lag_bytes; /* < 0 unknown */
    uint32_t active;   /* read-only connections to it now */
    char name[64];
};

struct route_table {
    bool has_leader; /* as received; see route_rw() for "usable now" */
    bool draining;   /* the leader hands over: no new connection goes there */
    int64_t term;
    uint64_t expiry_boot_ms;
    struct route_addr leader;
    char leader_name[64];
    char leader_host[MSG_HOST_MAX]; /* as received, to skip resolving an unchanged host */
    uint16_t leader_port;
    uint16_t n_replicas;
    struct route_replica replicas[MSG_ROUTE_REPLICAS_MAX];
    char replica_host[MSG_ROUTE_REPLICAS_MAX][MSG_HOST_MAX];
    uint16_t replica_port[MSG_ROUTE_REPLICAS_MAX];
};

/* Where a read-only connection goes (route_ro_pick): a replica index >= 0, or one of these. */
enum { ROUTE_PICK_LEADER = -1, ROUTE_PICK_NONE = -2 };

/* Resolves host:port (numeric first; a name is looked up with getaddrinfo, which may block).
 * False if it does not resolve (logged). */
bool route_resolve(const char *host, uint16_t port, struct route_addr *out);
bool route_addr_equal(const struct route_addr *a, const struct route_addr *b);
/* "host:port" (IPv6 in brackets) for logs. */
const char *route_addr_str(const struct route_addr *a, char *buf, size_t cap);

/* Builds `next` from message m, keeping resolutions and replica connection counts of `prev`
 * for unchanged entries. A leader or replica whose host does not resolve is left out. */
void route_apply(const struct route_table *prev, const struct msg_route *m,
                 struct route_table *next);

/* The leader's address if the table names one, it is not draining and the table has not expired
 * at now_boot_ms; NULL otherwise (the forwarder then holds new read-write connections). */
const struct route_addr *route_rw(const struct route_table *t, uint64_t now_boot_ms);

/* Least connections over the replicas whose lag is known and <= max_lag; ties go to the first.
 * None qualifies (or the table expired): ROUTE_PICK_LEADER if fallback and the leader is
 * usable, else ROUTE_PICK_NONE. */
int route_ro_pick(const struct route_table *t, uint64_t now_boot_ms, uint64_t max_lag,
                  bool fallback_leader);

/* The replica with this address, or -1. */
int route_find_replica(const struct route_table *t, const struct route_addr *a);

/* True if connections routed to the leader of `a` must be closed under `b` (the leader is gone,
 * or another one, or another term; not when it only started draining). */
bool route_leader_changed(const struct route_table *a, const struct route_table *b);

#endif
