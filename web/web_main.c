/* The web child: the REST API server fed by ha's status snapshots and the proxy's counters. */
#include <string.h>

#include "agent/child.h"
#include "agent/msgtypes.h"
#include "agent/node.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "web/auth.h"
#include "web/commands.h"
#include "web/dash.h"
#include "web/events.h"
#include "web/routes.h"
#include "web/server.h"
#include "web/snapshot.h"
#include "web/tls.h"

#define LOG_MODULE "web"

enum {
    REPLY_TIMEOUT_MS = 30 * 1000,       /* ha answers a command within one loop */
    RESTART_TIMEOUT_MS = 5 * 60 * 1000, /* POST /restart waits for PostgreSQL */
};

struct web {
    struct node *node;
    struct child *child;
    struct web_snapshot snap;
    struct web_cmds *cmds;
    struct web_events *events;
    struct web_dash *dash;
    struct web_auth *auth;
    struct web_tls *tls;
    struct web_server *server;
    struct web_ctx ctx;
};

static int send_to_ha(void *arg, uint16_t type, const void *payload, uint32_t len)
{
    struct web *w = arg;
    return child_send(w->child, EP_HA, type, payload, len);
}

static bool client_verified(void *arg, int fd)
{
    struct web *w = arg;
    return w->tls && web_tls_client_verified(w->tls, fd);
}

static bool web_start(struct child *c, void *data)
{
    struct web *w = data;
    const struct pgw_config *cfg = child_config(c);
    w->child = c;
    web_snapshot_init(&w->snap);
    w->cmds = web_cmds_new(child_loop(c), send_to_ha, w);
    w->events = web_events_new(cfg->node.state_dir);
    w->dash = web_dash_new(cfg->node.state_dir);
    w->auth = web_auth_new(&cfg->web);
    if (!w->cmds || !w->events || !w->dash || !w->auth)
        return false;
    bool tls = cfg->web.tls_cert[0] != '\0';
    w->ctx = (struct web_ctx){.snap = &w->snap,
                              .cmds = w->cmds,
                              .events = w->events,
                              .reply_timeout_ms = REPLY_TIMEOUT_MS,
                              .restart_timeout_ms = RESTART_TIMEOUT_MS,
                              .now_boot_ms = clock_boot_ms,
                              .auth = w->auth,
                              .dash = w->dash,
                              .tls = tls};
    struct web_server_config sc = {.listen_fd = tls ? -1 : w->node->web_fd};
    if (tls && cfg->web.verify_client != PGW_VERIFY_NONE) {
        sc.client_verified = client_verified;
        sc.client_verified_arg = w;
    }
    if (!tls)
        w->node->web_fd = -1; /* the server owns it now */
    w->server = web_server_new(child_loop(c), &sc, &w->ctx, w->auth);
    if (!w->server)
        return false;
    if (tls) {
        w->tls =
            web_tls_new(child_loop(c), w->node->web_fd, &cfg->web, web_server_hand_off, w->server);
        if (!w->tls)
            return false;
    }
    log_info("http server listening", "addr=%s:%u tls=%s", cfg->web.listen.host,
             (unsigned)cfg->web.listen.port, tls ? "yes" : "no");
    return true;
}

static void web_message(struct child *c, const struct msg_hdr *hdr, const void *payload,
                        uint32_t len, void *data)
{
    (void)c;
    struct web *w = data;
    switch (hdr->type) {
    case MSG_STATUS:
        if (web_snapshot_set_status(&w->snap, payload, len, clock_boot_ms()))
            web_cmds_on_status(w->cmds, w->snap.st);
        break;
    case MSG_REPLY:
        web_cmds_on_reply(w->cmds, payload, len);
        break;
    case MSG_PROXY_STATS: {
        struct msg_proxy_stats ps;
        memcpy(&ps, payload, sizeof(ps)); /* the channel checked the size */
        web_snapshot_set_proxy(&w->snap, &ps, clock_boot_ms());
        break;
    }
    default:
        break;
    }
}

static void web_reload(struct child *c, void *data)
{
    struct web *w = data;
    const struct pgw_config *cfg = child_config(c);
    if (w->auth)
        web_auth_reload(w->auth, &cfg->web);
    if (w->tls)
        web_tls_reload(w->tls, &cfg->web);
}

static void web_stop(struct child *c, void *data)
{
    (void)c;
    struct web *w = data;
    web_server_free(w->server);
    w->server = NULL;
    web_tls_free(w->tls);
    w->tls = NULL;
    web_cmds_free(w->cmds);
    web_events_free(w->events);
    web_dash_free(w->dash);
    web_auth_free(w->auth);
    web_snapshot_clear(&w->snap);
}

int web_main(void *app, int chan_fd)
{
    struct web w = {.node = app};
    const struct child_role role = {.name = "web",
                                    .endpoint = EP_WEB,
                                    .start = web_start,
                                    .on_message = web_message,
                                    .on_reload = web_reload,
                                    .stop = web_stop};
    return child_run(&role, &w, &w.node->cfg, chan_fd);
}
