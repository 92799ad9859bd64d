/* The forwarder: listening sockets, accept and connection limit, routes, counters. */
#include "agent/proxy/fwd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/proxy/fwd_int.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "proxy"

enum { POOL_MAX_FREE = 32, SMALL_MAX_FREE = 256, ACCEPT_PAUSE_MS = 100 };

void fwd_config_from_settings(const struct pgw_proxy_settings *s, struct fwd_config *out)
{
    memset(out, 0, sizeof(*out));
    out->hold_timeout_ms = s->hold_timeout_ms;
    out->max_connections = s->max_connections > 0 ? (uint32_t)s->max_connections : 1;
    out->ro_max_lag = s->ro_max_lag;
    out->ro_fallback_leader = s->ro_fallback_leader;
    out->first_packet_ms = 10000;
    out->connect_ms = 3000;
    out->retry_ms = 100;
    out->linger_ms = 2000;
    out->user_timeout_ms = 10000;
    out->keepalive_idle_s = 10;
}

static void listen_interest(struct fwd *f, uint32_t events)
{
    for (int i = 0; i < PROXY_NPORTS; i++) {
        if (f->lfd[i] >= 0)
            loop_mod_fd(f->loop, f->lfd[i], events);
    }
}

static void on_resume(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct fwd *f = arg;
    f->pause_timer = 0;
    f->paused = false;
    listen_interest(f, LOOP_READ);
}

/* Out of file descriptors: stop accepting for a moment instead of spinning on the backlog. */
static void pause_accepting(struct fwd *f, int err)
{
    uint64_t now = loop_now_ms(f->loop);
    if (f->last_accept_err_ms == 0 || now - f->last_accept_err_ms >= 1000) {
        f->last_accept_err_ms = now;
        log_warn("cannot accept clients; pausing", "err=\"%s\" open=%zu pause_ms=%d", strerror(err),
                 f->nconns, ACCEPT_PAUSE_MS);
    }
    if (f->paused)
        return;
    f->paused = true;
    listen_interest(f, 0);
    f->pause_timer = loop_add_timer(f->loop, ACCEPT_PAUSE_MS, 0, on_resume, f);
    if (!f->pause_timer) {
        f->paused = false;
        listen_interest(f, LOOP_READ);
    }
}

static void on_listen(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)events;
    struct fwd *f = arg;
    uint8_t port = fd == f->lfd[PROXY_PORT_RW] ? PROXY_PORT_RW : PROXY_PORT_RO;
    for (int i = 0; i < FWD_ACCEPT_BATCH; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            pause_accepting(f, err);
            return;
        }
        bool over = f->ncounted >= f->cfg.max_connections;
        if (over && f->nrejecting >= FWD_REJECT_MAX) {
            close(cfd); /* too many already waiting for their 53300 */
            f->st[port].total++;
            f->st[port].rejected++;
            continue;
        }
        if (over && f->nrejecting == 0)
            log_warn("connection limit reached; refusing new clients", "max_connections=%u",
                     f->cfg.max_connections);
        conn_start(f, cfd, port, over);
    }
}

struct fwd *fwd_new(struct loop *l, int rw_fd, int ro_fd, const struct fwd_config *cfg)
{
    struct fwd *f = calloc(1, sizeof(*f));
    if (!f) {
        log_error("out of memory for the forwarder");
        return NULL;
    }
    f->loop = l;
    f->cfg = *cfg;
    f->lfd[PROXY_PORT_RW] = rw_fd;
    f->lfd[PROXY_PORT_RO] = ro_fd;
    pbuf_pool_init(&f->pool, PBUF_CAP, POOL_MAX_FREE);
    pbuf_pool_init(&f->small, FWD_FIRST_MAX, SMALL_MAX_FREE);
    if (!cmap_init(&f->keys, cfg->max_connections))
        goto fail;
    for (int i = 0; i < PROXY_NPORTS; i++) {
        if (f->lfd[i] >= 0 && loop_add_fd(l, f->lfd[i], LOOP_READ, on_listen, f) < 0) {
            log_error("cannot watch a forwarder port", "port=%s", i == 0 ? "rw" : "ro");
            for (int j = 0; j < i; j++) {
                if (f->lfd[j] >= 0)
                    loop_del_fd(l, f->lfd[j]);
            }
            goto fail;
        }
    }
    return f;
fail:
    cmap_free(&f->keys);
    free(f);
    return NULL;
}

void fwd_free(struct fwd *f)
{
    if (!f)
        return;
    while (f->conns)
        conn_free(f->conns);
    for (int i = 0; i < PROXY_NPORTS; i++) {
        if (f->lfd[i] >= 0)
            loop_del_fd(f->loop, f->lfd[i]);
    }
    if (f->pause_timer)
        loop_cancel_timer(f->loop, f->pause_timer);
    cmap_free(&f->keys);
    pbuf_pool_free(&f->pool);
    pbuf_pool_free(&f->small);
    free(f);
}

void fwd_set_config(struct fwd *f, const struct fwd_config *cfg)
{
    f->cfg = *cfg;
}

void fwd_set_route(struct fwd *f, const struct msg_route *m)
{
    struct route_table *next = malloc(sizeof(*next));
    if (!next) {
        log_error("out of memory applying a route");
        return;
    }
    route_apply(&f->route, m, next);
    f->route = *next;
    free(next);
    struct conn *nx;
    for (struct conn *c = f->conns; c; c = nx) {
        nx = c->next; /* c may be freed; only c */
        conn_on_route(c);
    }
}

void fwd_stats(const struct fwd *f, struct msg_proxy_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->term = f->route.term;
    out->expiry_boot_ms = f->route.expiry_boot_ms;
    out->has_leader = route_rw(&f->route, clock_boot_ms()) != NULL;
    memcpy(out->leader, f->route.leader_name, sizeof(f->route.leader_name));
    memcpy(out->port, f->st, sizeof(out->port));
}

size_t fwd_connections(const struct fwd *f)
{
    return f->nconns;
}
