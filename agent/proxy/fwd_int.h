/* Internals of the forwarder shared by fwd.c (listeners, routes, counters) and conn.c. */
#ifndef PGW_PROXY_FWD_INT_H
#define PGW_PROXY_FWD_INT_H

#include "agent/proxy/cmap.h"
#include "agent/proxy/fwd.h"
#include "agent/proxy/pbuf.h"
#include "agent/proxy/pgproto.h"
#include "agent/proxy/route.h"

enum {
    FWD_REJECT_MAX = 64,   /* connections over the limit answered with 53300 at the same time */
    FWD_ACCEPT_BATCH = 64, /* accepts per readiness event */
    /* The client's first packet (a StartupMessage is typically 60-300 bytes) lives in a chunk of
     * this size from a pool of its own, not in a relay buffer: a held client costs ~1 KiB.
     * A longer startup packet is refused with a clear error. */
    FWD_FIRST_MAX = 1024
};

enum conn_state {
    CS_FIRST,      /* reading the client's first packet */
    CS_HELD,       /* waiting for a route (or for a retry after a failed connect) */
    CS_CONNECTING, /* upstream connect in progress; the first packet waits in `first` */
    CS_RELAY,      /* both legs up */
    CS_CLOSING,    /* upstream gone: flushing the last bytes or an error, then lingering */
};

/* The error a connection gets once its startup packet arrives (after 'N' to SSLRequest). */
enum conn_fail {
    FAIL_NONE = 0,
    FAIL_NO_PRIMARY,
    FAIL_NO_REPLICA,
    FAIL_TOO_MANY,
    FAIL_PROTOCOL,
    FAIL_TOO_LARGE
};

struct conn {
    struct cmap_entry ck; /* first: the cancel map hands back &ck */
    struct fwd *f;
    struct conn *prev, *next;
    int cfd, ufd;
    uint8_t port;  /* PROXY_PORT_RW / PROXY_PORT_RO */
    uint8_t state; /* enum conn_state */
    uint8_t fail;  /* enum conn_fail */
    bool counted;  /* counts against max_connections (false: a rejected one) */
    bool is_cancel;
    bool first_is_ssl;    /* the packet in `first` is an SSLRequest not answered yet */
    bool forwarded;       /* the first packet went upstream */
    bool shut;            /* CS_CLOSING: our side of the client leg is shut down */
    bool held;            /* counted in the port's `held` gauge */
    bool on_replica;      /* counted in the active count of the target replica */
    uint8_t retries;      /* failed connects in a row (backoff) */
    uint32_t cint, uint_; /* interest bits set in the loop */
    uint64_t timer;
    uint64_t held_since;    /* loop ms when holding began */
    uint64_t hold_deadline; /* set once: re-holds after a refusal do not extend it */
    bool deadline_set;
    int64_t term; /* of the route the upstream was chosen from */
    struct route_addr target;
    struct pbuf up;   /* client -> server (relay chunk) */
    struct pbuf down; /* server -> client (relay chunk) */
    /* What the client sent that the server has not answered yet (the first packet; after a
     * server's 'N' to SSLRequest, the StartupMessage), from the small pool: a server that
     * closes, refuses with 57P0x or is replaced before answering is retried elsewhere,
     * invisibly to the client. */
    struct pbuf first;
    /* Bytes from the server reach the client (no more retry). Until then `down` collects the
     * server's first message, which is relayed only once it is known not to be a 57P0x. */
    bool answered;
    struct pgp_scan scan;
};

struct fwd {
    struct loop *loop;
    struct fwd_config cfg;
    int lfd[PROXY_NPORTS];
    bool paused; /* listeners unwatched after EMFILE */
    uint64_t pause_timer;
    uint64_t last_fail_log_ms;
    uint64_t last_accept_err_ms;
    struct route_table route;
    struct cmap keys;
    struct pbuf_pool pool;  /* relay chunks (PBUF_CAP) */
    struct pbuf_pool small; /* first-packet chunks (FWD_FIRST_MAX) */
    struct conn *conns;     /* all client connections */
    size_t nconns;
    size_t ncounted;
    size_t nrejecting;
    struct msg_proxy_port_stats st[PROXY_NPORTS];
};

/* conn.c */
/* Takes an accepted client socket. False if it could not be set up (fd closed). */
bool conn_start(struct fwd *f, int cfd, uint8_t port, bool over_limit);
/* Closes both legs at once and frees c. */
void conn_free(struct conn *c);
/* The route changed: route a held connection, re-route or close one bound to a stale target. */
void conn_on_route(struct conn *c);

#endif
