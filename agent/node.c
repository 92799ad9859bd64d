/* `pgwarden run`: load the config, check the state folder, bind sockets and supervise the children.
 */
#include "agent/node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/ha/supfence.h"
#include "agent/msgtypes.h"
#include "agent/store.h"
#include "platform/config.h"
#include "platform/log.h"
#include "platform/net.h"
#include "platform/supervisor.h"

#define LOG_MODULE "node"

enum { EX_DATAERR_ = 65, EX_CANTCREAT_ = 73, EX_CONFIG_ = 78, LISTEN_BACKLOG = 512 };

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Each child keeps only the listening sockets of its own role. */
static void in_child(void *app, const struct sup_child_spec *spec)
{
    struct node *n = app;
    if (spec->id != EP_PROXY) {
        close_fd(&n->proxy_rw_fd);
        close_fd(&n->proxy_ro_fd);
    }
    if (spec->id != EP_WEB)
        close_fd(&n->web_fd);
    /* The fence timer belongs to the supervisor's loop. */
    supfence_forget(n->fence);
    n->fence = NULL;
    n->sup = NULL;
}

static int send_to_child(void *arg, uint8_t dst, uint16_t type, const void *payload, uint32_t len)
{
    struct node *n = arg;
    return sup_send(n->sup, dst, type, payload, len);
}

/* Messages addressed to the supervisor itself. */
static void on_message(struct sup *s, const struct msg_hdr *hdr, const void *payload, void *app)
{
    (void)s;
    struct node *n = app;
    if (hdr->type == MSG_LEASE && hdr->src == EP_HA && n->fence)
        supfence_on_lease(n->fence, payload);
}

static void log_change(const struct cfg_key *k, bool applied, void *arg)
{
    (void)arg;
    if (applied)
        log_info("setting changed", "key=%s.%s", k->section, k->name);
    else
        log_warn("setting changed; restart needed to apply it", "key=%s.%s", k->section, k->name);
}

static void on_reload(struct sup *s, void *app)
{
    struct node *n = app;
    struct cfg_errors errs;
    struct pgw_config *next = calloc(1, sizeof(*next));
    if (!next) {
        log_error("out of memory reloading config");
        return;
    }
    memset(&errs, 0, sizeof(errs));
    if (!settings_load(n->config_path, environ, next, &errs)) {
        for (size_t i = 0; i < errs.count; i++)
            log_error("config reload rejected", "where=\"%s\" problem=\"%s\"", errs.items[i].where,
                      errs.items[i].msg);
        goto out;
    }
    size_t changed = cfg_diff_reload(settings_keys, settings_nkeys, &n->cfg, next, log_change, n);
    log_set_level((enum log_level)n->cfg.log.level);
    log_info("config reloaded", "changed=%zu", changed);
    sup_broadcast(s, MSG_CONFIG, &n->cfg, sizeof(n->cfg));
out:
    free(next);
}

/* The state folder and the SQLite file must be usable before any child starts, so that a
 * problem is reported once instead of as a crash loop. */
static int check_state(const struct pgw_config *cfg)
{
    const char *dir = cfg->node.state_dir;
    struct stat st;
    char err[512];

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        log_error("state folder does not exist or is not a folder", "path=%s", dir);
        return EX_CANTCREAT_;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        log_error("state folder is not writable", "path=%s uid=%d err=\"%s\"", dir, (int)getuid(),
                  strerror(errno));
        return EX_CANTCREAT_;
    }
    struct store *st_db = store_open(dir, err, sizeof(err));
    if (!st_db)
        return EX_DATAERR_; /* store_open logged the reason */
    store_close(st_db);
    return 0;
}

static bool bind_sockets(struct node *n)
{
    const struct pgw_config *c = &n->cfg;
    n->proxy_rw_fd =
        net_listen_tcp(c->proxy.rw_listen.host, c->proxy.rw_listen.port, LISTEN_BACKLOG);
    n->proxy_ro_fd =
        net_listen_tcp(c->proxy.ro_listen.host, c->proxy.ro_listen.port, LISTEN_BACKLOG);
    n->web_fd = net_listen_tcp(c->web.listen.host, c->web.listen.port, LISTEN_BACKLOG);
    return n->proxy_rw_fd >= 0 && n->proxy_ro_fd >= 0 && n->web_fd >= 0;
}

int node_run(const char *config_path)
{
    int rc = 1;
    struct cfg_errors errs;
    struct sup *sup = NULL;
    struct node *n = calloc(1, sizeof(*n));

    log_setup(LOG_LVL_INFO, "supervisor");
    if (!n) {
        log_error("out of memory");
        return 1;
    }
    n->config_path = config_path;
    n->proxy_rw_fd = n->proxy_ro_fd = n->web_fd = -1;
    memset(&errs, 0, sizeof(errs));
    if (!settings_load(config_path, environ, &n->cfg, &errs)) {
        cfg_errors_print(&errs, stderr);
        rc = EX_CONFIG_;
        goto out;
    }
    log_set_level((enum log_level)n->cfg.log.level);
    log_info("starting", "version=%s node=%s config=%s pid=%d", PGW_VERSION, n->cfg.node.name,
             config_path, (int)getpid());
    rc = check_state(&n->cfg);
    if (rc != 0)
        goto out;
    rc = 1;
    if (!bind_sockets(n))
        goto out;

    const struct sup_child_spec children[] = {
        {"ha", EP_HA, ha_main},
        {"proxy", EP_PROXY, proxy_main},
        {"web", EP_WEB, web_main},
    };
    const struct sup_config scfg = {
        .policy = {.max_restarts = (int)n->cfg.supervisor.max_restarts,
                   .window_ms = n->cfg.supervisor.restart_window_ms,
                   .backoff_min_ms = 100,
                   .backoff_max_ms = 5000,
                   .stable_ms = 10000},
        .shutdown_timeout_ms = n->cfg.supervisor.shutdown_timeout_ms,
        .specs = msgtypes_specs,
        .nspecs = msgtypes_nspecs,
        .hello_type = MSG_HELLO,
    };
    const struct sup_hooks hooks = {
        .app = n, .in_child = in_child, .on_reload = on_reload, .on_message = on_message};
    sup = sup_new(&scfg, &hooks, children, sizeof(children) / sizeof(children[0]));
    if (!sup) {
        log_error("cannot create the supervisor");
        goto out;
    }
    n->sup = sup;
    n->fence = supfence_new(sup_loop(sup), send_to_child, n);
    if (!n->fence)
        goto out;
    if (n->cfg.ha.manage_postgresql)
        supfence_stop_postgres(n->fence, n->cfg.postgresql.data_dir);
    rc = sup_run(sup);
out:
    supfence_free(n->fence);
    n->fence = NULL;
    sup_free(sup);
    close_fd(&n->proxy_rw_fd);
    close_fd(&n->proxy_ro_fd);
    close_fd(&n->web_fd);
    free(n);
    return rc;
}
