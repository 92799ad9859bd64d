/* The proxy child: holds the forwarder's listening sockets and its routing table (the forwarder
 * itself is issue #5; for now a route change is only logged). */
#include <string.h>

#include "agent/child.h"
#include "agent/msgtypes.h"
#include "agent/node.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "proxy"

struct proxy {
    struct msg_route route; /* the latest route received */
    bool have_route;
};

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
    bool changed = !p->have_route || r.has_leader != p->route.has_leader ||
                   r.term != p->route.term || strcmp(r.leader, p->route.leader) != 0 ||
                   strcmp(r.host, p->route.host) != 0 || r.port != p->route.port;
    long long valid_ms =
        r.has_leader ? (long long)r.expiry_boot_ms - (long long)clock_boot_ms() : 0;
    if (changed)
        log_info("route", "from=%s leader=%s term=%lld host=%s port=%u self=%s valid_ms=%lld",
                 msgtypes_endpoint_name(hdr->src), r.has_leader ? r.leader : "none",
                 (long long)r.term, r.host[0] ? r.host : "-", (unsigned)r.port,
                 r.is_self ? "yes" : "no", valid_ms);
    else
        log_debug("route renewed", "leader=%s valid_ms=%lld", r.leader, valid_ms);
    p->route = r;
    p->have_route = true;
}

int proxy_main(void *app, int chan_fd)
{
    struct node *n = app;
    struct proxy p;
    memset(&p, 0, sizeof(p));
    const struct child_role role = {
        .name = "proxy", .endpoint = EP_PROXY, .on_message = proxy_message};
    return child_run(&role, &p, &n->cfg, chan_fd);
}
