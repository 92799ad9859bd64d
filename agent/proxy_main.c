/* The proxy child: runs the forwarder on the listening sockets, feeds it ha's routes and sends
 * its counters to web. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/child.h"
#include "agent/msgtypes.h"
#include "agent/node.h"
#include "agent/proxy/fwd.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "proxy"

enum { STATS_INTERVAL_MS = 1000, SPARE_FDS = 64 };

struct proxy {
    struct node *node;
    struct child *child;
    struct fwd *fwd;
    uint64_t stats_timer;
    struct msg_route route; /* the latest route received */
    bool have_route;
};

/* Each client takes two descriptors (client and upstream legs): raise the soft limit. */
static void raise_fd_limit(long long max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_connections * 2 + SPARE_FDS;
    if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open file limit", "err=\"%s\"", strerror(errno));
    }
    if (rl.rlim_cur < want)
        log_warn("open file limit below what max_connections needs", "limit=%llu needed=%llu",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

static void log_route(const struct msg_hdr *hdr, const struct msg_route *r, bool changed)
{
    long long valid_ms =
        r->has_leader ? (long long)r->expiry_boot_ms - (long long)clock_boot_ms() : 0;
    char reps[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < r->n_replicas && i < MSG_ROUTE_REPLICAS_MAX && used < sizeof(reps);
         i++) {
        int n = snprintf(reps + used, sizeof(reps) - used, "%s%s:%lld", i ? "," : "",
                         r->replicas[i].name, (long long)r->replicas[i].lag_bytes);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (changed)
        log_info("route",
                 "from=%s leader=%s term=%lld host=%s port=%u self=%s replicas=%u lags=\"%s\" "
                 "valid_ms=%lld",
                 msgtypes_endpoint_name(hdr->src), r->has_leader ? r->leader : "none",
                 (long long)r->term, r->host[0] ? r->host : "-", (unsigned)r->port,
                 r->is_self ? "yes" : "no", (unsigned)r->n_replicas, reps, valid_ms);
    else
        log_debug("route renewed", "leader=%s lags=\"%s\" valid_ms=%lld", r->leader, reps,
                  valid_ms);
}

static bool same_replicas(const struct msg_route *a, const struct msg_route *b)
{
    if (a->n_replicas != b->n_replicas)
        return false;
    for (size_t i = 0; i < a->n_replicas && i < MSG_ROUTE_REPLICAS_MAX; i++) {
        const struct msg_route_replica *x = &a->replicas[i], *y = &b->replicas[i];
        if (x->port != y->port || strcmp(x->host, y->host) != 0)
            return false;
    }
    return true;
}

static void proxy_message(struct child *c, const struct msg_hdr *hdr, const void *payload,
                          uint32_t len, void *data)
{
    (void)c;
    (void)len; /* the channel checked it against the type's size */
    struct proxy *p = data;
    if (hdr->type != MSG_ROUTE)
        return;
    struct msg_route r;
    memcpy(&r, payload, sizeof(r));
    r.leader[sizeof(r.leader) - 1] = '\0';
    r.host[sizeof(r.host) - 1] = '\0';
    if (r.n_replicas > MSG_ROUTE_REPLICAS_MAX)
        r.n_replicas = MSG_ROUTE_REPLICAS_MAX;
    for (size_t i = 0; i < r.n_replicas; i++) {
        r.replicas[i].host[sizeof(r.replicas[i].host) - 1] = '\0';
        r.replicas[i].name[sizeof(r.replicas[i].name) - 1] = '\0';
    }
    bool changed = !p->have_route || r.has_leader != p->route.has_leader ||
                   r.term != p->route.term || strcmp(r.leader, p->route.leader) != 0 ||
                   strcmp(r.host, p->route.host) != 0 || r.port != p->route.port ||
                   !same_replicas(&r, &p->route);
    log_route(hdr, &r, changed);
    p->route = r;
    p->have_route = true;
    fwd_set_route(p->fwd, &r);
}

static void on_stats(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct proxy *p = arg;
    struct msg_proxy_stats st;
    fwd_stats(p->fwd, &st);
    /* web shows them live; ha keeps samples of them for the dashboard charts */
    static const uint8_t to[] = {EP_WEB, EP_HA};
    for (size_t i = 0; i < sizeof(to); i++) {
        int r = child_send(p->child, to[i], MSG_PROXY_STATS, &st, sizeof(st));
        if (r < 0 && r != -EAGAIN && r != -EPIPE && r != -ECONNRESET)
            log_debug("stats not sent", "dst=%s err=%d", msgtypes_endpoint_name(to[i]), r);
    }
}

static bool proxy_start(struct child *c, void *data)
{
    struct proxy *p = data;
    const struct pgw_config *cfg = child_config(c);
    struct fwd_config fc;
    p->child = c;
    raise_fd_limit(cfg->proxy.max_connections);
    fwd_config_from_settings(&cfg->proxy, &fc);
    p->fwd = fwd_new(child_loop(c), p->node->proxy_rw_fd, p->node->proxy_ro_fd, &fc);
    if (!p->fwd)
        return false;
    p->stats_timer =
        loop_add_timer(child_loop(c), STATS_INTERVAL_MS, STATS_INTERVAL_MS, on_stats, p);
    log_info("forwarder ready", "rw=%s:%u ro=%s:%u hold_timeout_ms=%llu max_connections=%lld",
             cfg->proxy.rw_listen.host, (unsigned)cfg->proxy.rw_listen.port,
             cfg->proxy.ro_listen.host, (unsigned)cfg->proxy.ro_listen.port,
             (unsigned long long)cfg->proxy.hold_timeout_ms, cfg->proxy.max_connections);
    return true;
}

static void proxy_reload(struct child *c, void *data)
{
    struct proxy *p = data;
    const struct pgw_config *cfg = child_config(c);
    struct fwd_config fc;
    raise_fd_limit(cfg->proxy.max_connections);
    fwd_config_from_settings(&cfg->proxy, &fc);
    fwd_set_config(p->fwd, &fc);
}

static void proxy_stop(struct child *c, void *data)
{
    struct proxy *p = data;
    if (p->stats_timer)
        loop_cancel_timer(child_loop(c), p->stats_timer);
    fwd_free(p->fwd);
    p->fwd = NULL;
}

int proxy_main(void *app, int chan_fd)
{
    struct node *n = app;
    struct proxy p;
    memset(&p, 0, sizeof(p));
    p.node = n;
    const struct child_role role = {.name = "proxy",
                                    .endpoint = EP_PROXY,
                                    .start = proxy_start,
                                    .on_message = proxy_message,
                                    .on_reload = proxy_reload,
                                    .stop = proxy_stop};
    return child_run(&role, &p, &n->cfg, chan_fd);
}
