/* Message endpoints and types exchanged between the supervisor and the ha, proxy and web children.
 */
#ifndef PGW_MSGTYPES_H
#define PGW_MSGTYPES_H

#include <stddef.h>
#include <stdint.h>

#include "platform/msg.h"

/* Endpoint ids: the supervisor is 0 and routes every message to its destination. */
enum msg_endpoint { EP_SUP = 0, EP_HA = 1, EP_PROXY = 2, EP_WEB = 3, EP_ALL = 0xff };

enum msg_type {
    MSG_HELLO = 1,  /* child -> supervisor: the child is up (struct msg_hello) */
    MSG_CONFIG = 2, /* supervisor -> children: configuration after a reload (struct pgw_config) */
    MSG_LEASE = 3,  /* ha -> supervisor: leader lease renewed / given up (struct msg_lease) */
    MSG_ROUTE = 4,  /* ha or supervisor -> proxy: where writes go (struct msg_route) */
    MSG_FENCE = 5,  /* supervisor -> ha: the supervisor fenced on ha's behalf (struct msg_fence) */
};

enum { MSG_NAME_MAX = 256, MSG_HOST_MAX = 256 };

struct msg_hello {
    int32_t pid;
    char role[16];
};

/* Sent by ha after every successful renewal of the lease while it is leader (leader = 1), and
 * once with leader = 0 when it stops being leader. The supervisor fences on ha's behalf if
 * CLOCK_BOOTTIME reaches deadline_boot_ms with no fresher MSG_LEASE (ha stalled or died). */
struct msg_lease {
    int64_t term;              /* create_revision of the leader key */
    uint64_t deadline_boot_ms; /* CLOCK_BOOTTIME ms: lease sent + ttl - fencing margin */
    uint8_t leader;
    uint8_t pad[7];
};

/* The routing table of the forwarder: where the leader's PostgreSQL is. has_leader = 0 means
 * "no leader: do not route writes anywhere" (also what a fence sends). The route is valid until
 * expiry_boot_ms (CLOCK_BOOTTIME); after that the forwarder must fail closed. */
struct msg_route {
    int64_t term;            /* create_revision of the leader key, 0 when none */
    uint64_t expiry_boot_ms; /* 0 when has_leader = 0 */
    uint16_t port;           /* of the leader's PostgreSQL (0 if unknown) */
    uint8_t has_leader;
    uint8_t is_self; /* the leader is this node */
    uint8_t pad[4];
    char leader[MSG_NAME_MAX]; /* member name, "" when none */
    char host[MSG_HOST_MAX];   /* from the leader's conn_url, "" if unknown */
};

/* The supervisor's fence of the deadline it had for term (from the last MSG_LEASE). */
struct msg_fence {
    int64_t term;
    uint64_t deadline_boot_ms;
};

extern const struct msg_spec msgtypes_specs[];
extern const size_t msgtypes_nspecs;

const char *msgtypes_endpoint_name(uint8_t ep);

#endif
