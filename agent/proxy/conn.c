/* One client connection of the forwarder: first packet, holding, upstream connect, relay, close.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/proxy/fwd_int.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "proxy"

static const uint64_t held_bounds[PROXY_HELD_BUCKETS - 1] = PROXY_HELD_BOUNDS_MS;

static const struct {
    const char *code;
    const char *msg;
} fail_text[] = {
    [FAIL_NONE] = {"XX000", "internal error"},
    [FAIL_NO_PRIMARY] = {"57P03", "no primary available"},
    [FAIL_NO_REPLICA] = {"57P03", "no replica or primary available"},
    [FAIL_TOO_MANY] = {"53300", "sorry, too many clients already (pgwarden forwarder)"},
    [FAIL_PROTOCOL] = {"08P01", "invalid startup packet"},
    [FAIL_TOO_LARGE] = {"08P01",
                        "startup packet longer than 1024 bytes (pgwarden forwarder limit)"},
};
_Static_assert(FWD_FIRST_MAX == 1024, "the FAIL_TOO_LARGE message names the limit");

static const char *port_name(const struct conn *c)
{
    return c->port == PROXY_PORT_RW ? "rw" : "ro";
}

static void on_timer(struct loop *l, uint64_t id, void *arg);
static void on_client(struct loop *l, int fd, uint32_t events, void *arg);
static void on_upstream(struct loop *l, int fd, uint32_t events, void *arg);
static bool conn_route(struct conn *c);

/* ---- small helpers ---- */

static void clear_timer(struct conn *c)
{
    if (c->timer)
        loop_cancel_timer(c->f->loop, c->timer);
    c->timer = 0;
}

static void set_timer(struct conn *c, uint64_t delay_ms)
{
    clear_timer(c);
    c->timer = loop_add_timer(c->f->loop, delay_ms, 0, on_timer, c);
    if (!c->timer)
        log_error("cannot arm a connection timer", "port=%s", port_name(c));
}

/* Bytes in `down` that may go to the client now (not a server's first message under review). */
static bool down_ready(const struct conn *c)
{
    return pbuf_len(&c->down) && (c->answered || c->state != CS_RELAY);
}

/* Sets the interest bits each leg needs in its state (only calling epoll when they change). */
static void watch(struct conn *c)
{
    struct loop *l = c->f->loop;
    uint32_t ci = 0, ui = 0;
    switch (c->state) {
    case CS_FIRST:
        ci = LOOP_READ;
        break;
    case CS_HELD:
    case CS_CONNECTING:
        /* notices a client that leaves; keeps what it sends with the first packet */
        ci = !c->first.mem || pbuf_space(&c->first) ? LOOP_READ : 0;
        break;
    case CS_RELAY:
        ci = pbuf_len(&c->up) == 0 ? LOOP_READ : 0; /* backpressure: upstream has not taken it */
        /* before the answer, the server's first message is collected whole */
        ui = pbuf_len(&c->down) == 0 || !c->answered ? LOOP_READ : 0;
        if (pbuf_len(&c->up))
            ui |= LOOP_WRITE;
        break;
    case CS_CLOSING:
        ci = c->shut ? LOOP_READ : 0;
        break;
    default:
        break;
    }
    if (down_ready(c))
        ci |= LOOP_WRITE;
    if (c->state == CS_CONNECTING)
        ui = LOOP_WRITE;
    if (ci != c->cint && loop_mod_fd(l, c->cfd, ci) == 0)
        c->cint = ci;
    if (c->ufd >= 0 && ui != c->uint_ && loop_mod_fd(l, c->ufd, ui) == 0)
        c->uint_ = ui;
}

/* Ends holding: updates the gauge and the held-time histogram. */
static void unheld(struct conn *c)
{
    if (!c->held)
        return;
    struct msg_proxy_port_stats *st = &c->f->st[c->port];
    uint64_t now = loop_now_ms(c->f->loop);
    uint64_t d = now > c->held_since ? now - c->held_since : 0;
    size_t b = 0;
    while (b < PROXY_HELD_BUCKETS - 1 && d > held_bounds[b])
        b++;
    st->held_hist[b]++;
    st->held_count++;
    st->held_ms_sum += d;
    st->held--;
    c->held = false;
}

static void close_upstream(struct conn *c)
{
    struct fwd *f = c->f;
    if (c->ufd >= 0) {
        loop_del_fd(f->loop, c->ufd);
        close(c->ufd);
        c->ufd = -1;
        c->uint_ = 0;
    }
    if (c->on_replica) {
        int i = route_find_replica(&f->route, &c->target);
        if (i >= 0 && f->route.replicas[i].active > 0)
            f->route.replicas[i].active--;
        c->on_replica = false;
    }
    cmap_del(&f->keys, &c->ck);
}

void conn_free(struct conn *c)
{
    struct fwd *f = c->f;
    clear_timer(c);
    unheld(c);
    close_upstream(c);
    loop_del_fd(f->loop, c->cfd);
    close(c->cfd);
    pbuf_release(&c->up, &f->pool);
    pbuf_release(&c->down, &f->pool);
    pbuf_release(&c->first, &f->small);
    if (c->prev)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    f->nconns--;
    if (c->counted) {
        f->ncounted--;
        f->st[c->port].active--;
    } else {
        f->nrejecting--;
    }
    free(c);
}

/* Sends what waits for the client. False if the client is gone (c freed). */
static bool flush_down(struct conn *c)
{
    ssize_t w = pbuf_write_fd(&c->down, c->cfd);
    if (w < 0) {
        log_debug("client write failed", "port=%s err=\"%s\"", port_name(c), strerror((int)-w));
        conn_free(c);
        return false;
    }
    pbuf_trim(&c->down, &c->f->pool);
    return true;
}

/* CS_CLOSING: once everything is sent, shut our side and wait for the client to close (a close
 * with unread input would reset the connection and could destroy the reply). */
static bool closing_progress(struct conn *c)
{
    if (pbuf_len(&c->down) && !flush_down(c))
        return false;
    if (!pbuf_len(&c->down) && !c->shut) {
        shutdown(c->cfd, SHUT_WR);
        c->shut = true;
    }
    return true;
}

static bool enter_closing(struct conn *c)
{
    close_upstream(c);
    pbuf_release(&c->up, &c->f->pool);
    pbuf_release(&c->first, &c->f->small);
    c->first_is_ssl = false;
    c->answered = true; /* what is in `down` goes to the client */
    c->state = CS_CLOSING;
    c->shut = false;
    set_timer(c, c->f->cfg.linger_ms);
    return closing_progress(c);
}

/* Queues bytes for the client and sends what it can. False if c was freed. */
static bool reply(struct conn *c, const void *d, size_t n)
{
    if (!pbuf_reserve(&c->down, &c->f->pool) || pbuf_append(&c->down, d, n) != n) {
        conn_free(c);
        return false;
    }
    return flush_down(c);
}

/* Answers with a FATAL ErrorResponse and closes gracefully. False if c was freed. */
static bool fail_now(struct conn *c, enum conn_fail why)
{
    uint8_t msg[PGP_ERROR_MAX];
    size_t n = pgp_error_response(msg, sizeof(msg), fail_text[why].code, fail_text[why].msg);
    close_upstream(c);
    pbuf_release(&c->up, &c->f->pool);
    pbuf_release(&c->first, &c->f->small);
    pbuf_release(&c->down, &c->f->pool); /* the error is the only thing the client gets */
    c->answered = true;
    if (!reply(c, msg, n))
        return false;
    return enter_closing(c);
}

/* ---- holding ---- */

/* The hold ran out: 57P03, after 'N' if the client asked for TLS. False if c was freed. */
static bool hold_expired(struct conn *c)
{
    struct fwd *f = c->f;
    uint64_t held_ms = loop_now_ms(f->loop) - c->held_since;
    unheld(c);
    f->st[c->port].hold_timeouts++;
    log_info("held connection timed out", "port=%s held_ms=%llu", port_name(c),
             (unsigned long long)held_ms);
    c->fail = c->port == PROXY_PORT_RW ? FAIL_NO_PRIMARY : FAIL_NO_REPLICA;
    if (!c->first_is_ssl)
        return fail_now(c, (enum conn_fail)c->fail);
    /* Refuse TLS, then the error follows the StartupMessage the client sends in clear. */
    pbuf_release(&c->first, &f->small);
    c->first_is_ssl = false;
    c->state = CS_FIRST;
    set_timer(c, f->cfg.first_packet_ms);
    return reply(c, "N", 1);
}

/* Holds c until a route allows it, or until retry_ms (a failed upstream) if > 0. */
static bool hold(struct conn *c, uint64_t retry_ms)
{
    struct fwd *f = c->f;
    uint64_t now = loop_now_ms(f->loop);
    if (!c->held) {
        c->held = true;
        c->held_since = now;
        f->st[c->port].held++;
    }
    if (!c->deadline_set) {
        c->deadline_set = true;
        c->hold_deadline = now + f->cfg.hold_timeout_ms;
    }
    c->state = CS_HELD;
    if (now >= c->hold_deadline)
        return hold_expired(c);
    uint64_t delay = c->hold_deadline - now;
    if (retry_ms && retry_ms < delay)
        delay = retry_ms;
    set_timer(c, delay);
    return true;
}

/* ---- upstream ---- */

static void tune_upstream(const struct fwd *f, int fd)
{
    int one = 1;
    int idle = (int)f->cfg.keepalive_idle_s, intvl = 5, cnt = 3;
    unsigned int ut = f->cfg.user_timeout_ms;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if (idle > 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    }
    if (ut > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
}

/* The upstream could not take c (connect failed, closed or refused before answering): hold and
 * retry with a backoff, the first packet still in `first`. False if c was freed. */
static bool retry_later(struct conn *c, const char *why)
{
    struct fwd *f = c->f;
    f->st[c->port].connect_failures++;
    uint64_t now = loop_now_ms(f->loop);
    if (now - f->last_fail_log_ms >= 1000 || f->last_fail_log_ms == 0) {
        char addr[80];
        f->last_fail_log_ms = now;
        log_warn("cannot connect to PostgreSQL", "port=%s target=%s err=\"%s\"", port_name(c),
                 route_addr_str(&c->target, addr, sizeof(addr)), why);
    }
    close_upstream(c);
    pbuf_release(&c->up, &f->pool);
    pbuf_release(&c->down, &f->pool);
    if (c->is_cancel) {
        conn_free(c);
        return false;
    }
    uint64_t backoff = f->cfg.retry_ms << (c->retries < 4 ? c->retries : 4);
    if (c->retries < UINT8_MAX)
        c->retries++;
    return hold(c, backoff ? backoff : 1);
}

static bool connect_failed(struct conn *c, int err)
{
    return retry_later(c, strerror(err));
}

/* Starts a non-blocking connect of c to t. `replica` >= 0: counts c on that replica. False if c
 * was freed. */
static bool connect_to(struct conn *c, const struct route_addr *t, int replica)
{
    struct fwd *f = c->f;
    c->target = *t;
    c->term = f->route.term;
    int fd = socket(t->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return connect_failed(c, errno);
    tune_upstream(f, fd);
    c->ufd = fd;
    if (replica >= 0) {
        f->route.replicas[replica].active++;
        c->on_replica = true;
    }
    if (loop_add_fd(f->loop, fd, LOOP_WRITE, on_upstream, c) < 0)
        return connect_failed(c, ENOMEM);
    c->uint_ = LOOP_WRITE;
    if (connect(fd, &t->u.sa, t->len) < 0 && errno != EINPROGRESS)
        return connect_failed(c, errno);
    c->state = CS_CONNECTING;
    set_timer(c, f->cfg.connect_ms);
    return true;
}

/* Forgets the upstream of a connection whose server has not answered: what was sent to it and
 * what it sent; `first` is sent again to the next one. */
static void unforward(struct conn *c)
{
    close_upstream(c);
    pbuf_release(&c->up, &c->f->pool);
    pbuf_release(&c->down, &c->f->pool);
    c->forwarded = false;
}

/* The upstream closed or failed. Before its answer the client is held and retried; after it,
 * what the server sent is flushed and the client leg closed. False if c was freed. */
static bool upstream_lost(struct conn *c, int err)
{
    if (!c->answered) {
        unforward(c);
        return connect_failed(c, err ? err : ECONNRESET);
    }
    log_debug("server closed", "port=%s err=\"%s\"", port_name(c), err ? strerror(err) : "eof");
    return enter_closing(c);
}

/* The upstream leg is up: forward the first packet and relay. False if c was freed. */
static bool connected(struct conn *c)
{
    clear_timer(c);
    unheld(c);
    c->retries = 0;
    c->state = CS_RELAY;
    c->forwarded = true;
    c->answered = c->is_cancel; /* a cancel is never replayed */
    pgp_scan_init(&c->scan, c->first_is_ssl);
    if (!pbuf_reserve(&c->up, &c->f->pool) || !pbuf_reserve(&c->first, &c->f->small)) {
        conn_free(c);
        return false;
    }
    pbuf_append(&c->up, pbuf_data(&c->first), pbuf_len(&c->first)); /* up is empty here */
    if (c->answered)
        pbuf_release(&c->first, &c->f->small);
    ssize_t w = pbuf_write_fd(&c->up, c->ufd);
    if (w < 0)
        return upstream_lost(c, (int)-w);
    pbuf_trim(&c->up, &c->f->pool);
    return true;
}

/* Where c goes now: connects, or holds. False if c was freed. */
static bool conn_route(struct conn *c)
{
    struct fwd *f = c->f;
    uint64_t now_boot = clock_boot_ms();
    if (c->port == PROXY_PORT_RW) {
        const struct route_addr *t = route_rw(&f->route, now_boot);
        if (t)
            return connect_to(c, t, -1);
        return hold(c, 0);
    }
    int pick = route_ro_pick(&f->route, now_boot, f->cfg.ro_max_lag, f->cfg.ro_fallback_leader);
    if (pick >= 0)
        return connect_to(c, &f->route.replicas[pick].addr, pick);
    if (pick == ROUTE_PICK_LEADER)
        return connect_to(c, &f->route.leader, -1);
    return hold(c, 0);
}

/* A CancelRequest goes to the server of the session it names (or, unknown, to the leader when
 * it came on the read-write port); the server then closes. False if c was freed. */
static bool start_cancel(struct conn *c, const struct pgp_packet *pk)
{
    struct fwd *f = c->f;
    c->is_cancel = true;
    f->st[c->port].cancels++;
    const struct cmap_entry *e = cmap_get(&f->keys, pk->cancel_pid, pk->cancel_key);
    struct route_addr t;
    if (e) {
        t = ((const struct conn *)(const void *)e)->target;
    } else {
        const struct route_addr *l = route_rw(&f->route, clock_boot_ms());
        if (!l) {
            log_debug("cancel request for an unknown session dropped", "port=%s", port_name(c));
            conn_free(c);
            return false;
        }
        t = *l;
    }
    return connect_to(c, &t, -1);
}

/* ---- client side ---- */

/* The first packet may be complete in `up`. False if c was freed. */
static bool on_first_data(struct conn *c)
{
    struct pgp_packet pk;
    switch (pgp_first_packet(pbuf_data(&c->first), pbuf_len(&c->first), &pk)) {
    case PGP_NEED_MORE:
        if (pk.len > FWD_FIRST_MAX) {
            log_info("startup packet too long", "port=%s len=%u max=%d", port_name(c),
                     (unsigned)pk.len, FWD_FIRST_MAX);
            return fail_now(c, FAIL_TOO_LARGE);
        }
        return true;
    case PGP_GSSENC:
        pbuf_release(&c->first, &c->f->small);
        return reply(c, "N", 1); /* no GSS encryption; the client goes on with SSL or clear */
    case PGP_SSL:
        if (c->fail) {
            pbuf_release(&c->first, &c->f->small);
            return reply(c, "N", 1);
        }
        c->first_is_ssl = true;
        return conn_route(c);
    case PGP_STARTUP:
        if (c->fail)
            return fail_now(c, (enum conn_fail)c->fail);
        c->first_is_ssl = false;
        return conn_route(c);
    case PGP_CANCEL:
        if (c->fail) {
            conn_free(c);
            return false;
        }
        return start_cancel(c, &pk);
    case PGP_BAD:
    default:
        log_debug("invalid first packet", "port=%s bytes=%zu", port_name(c), pbuf_len(&c->first));
        return fail_now(c, FAIL_PROTOCOL);
    }
}

/* Reads client bytes into b (a buffer of pool p). Returns > 0 bytes read, 0 if nothing now;
 * < 0 c was freed. */
static ssize_t read_client(struct conn *c, struct pbuf *b, struct pbuf_pool *p)
{
    if (!pbuf_reserve(b, p)) {
        conn_free(c);
        return -1;
    }
    ssize_t r = pbuf_read_fd(b, c->cfd);
    if (r == -EAGAIN || r == -ENOBUFS) {
        if (b != &c->first)
            pbuf_trim(b, p);
        return 0;
    }
    if (r <= 0) {
        log_debug("client left", "port=%s state=%d err=\"%s\"", port_name(c), c->state,
                  r == 0 ? "eof" : strerror((int)-r));
        conn_free(c);
        return -1;
    }
    c->f->st[c->port].bytes_up += (uint64_t)r;
    return r;
}

/* CS_RELAY: client -> server; only called with `up` empty. False if c was freed. */
static bool pump_up(struct conn *c)
{
    ssize_t r = read_client(c, &c->up, &c->f->pool);
    if (r <= 0)
        return r == 0;
    if (!c->answered && pbuf_append(&c->first, pbuf_data(&c->up), (size_t)r) != (size_t)r) {
        /* too much to replay: this upstream is the only one; its reply goes out as it is */
        c->answered = true;
        pbuf_release(&c->first, &c->f->small);
        if (pbuf_len(&c->down) && !flush_down(c))
            return false;
    }
    ssize_t w = pbuf_write_fd(&c->up, c->ufd);
    if (w < 0)
        return upstream_lost(c, (int)-w);
    pbuf_trim(&c->up, &c->f->pool);
    return true;
}

/* CS_CLOSING: discard what the client still sends until it closes. False if c was freed. */
static bool drain_client(struct conn *c)
{
    uint8_t sink[512];
    for (;;) {
        ssize_t r = read(c->cfd, sink, sizeof(sink));
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        conn_free(c);
        return false;
    }
}

static void on_client(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    struct conn *c = arg;
    if (events & LOOP_ERR) {
        conn_free(c); /* reset, or both directions closed */
        return;
    }
    if ((events & LOOP_WRITE) && down_ready(c)) {
        if (c->state == CS_CLOSING ? !closing_progress(c) : !flush_down(c))
            return;
    }
    if (events & LOOP_READ) {
        switch (c->state) {
        case CS_FIRST: {
            ssize_t r = read_client(c, &c->first, &c->f->small);
            if (r < 0 || (r > 0 && !on_first_data(c)))
                return;
            break;
        }
        case CS_HELD:
        case CS_CONNECTING: {
            ssize_t r = read_client(c, &c->first, &c->f->small);
            if (r < 0)
                return;
            if (r > 0 && c->first_is_ssl) { /* must wait for the answer to SSLRequest */
                conn_free(c);
                return;
            }
            break;
        }
        case CS_RELAY:
            if (!pbuf_len(&c->up) && !pump_up(c))
                return;
            break;
        case CS_CLOSING:
            if (c->shut && !drain_client(c))
                return;
            break;
        default:
            break;
        }
    }
    watch(c);
}

/* ---- server side ---- */

/* The server's answer to an SSLRequest (first byte in `down`). 'N': relayed, and the
 * StartupMessage the client now sends in clear is what a next server receives, without the
 * SSLRequest; anything else (TLS) makes the session opaque. False if c was freed. */
static bool review_ssl_reply(struct conn *c)
{
    bool refused = pbuf_data(&c->down)[0] == 'N' && pbuf_len(&c->down) == 1;
    c->first_is_ssl = false;
    if (!refused) {
        c->answered = true;
        pbuf_release(&c->first, &c->f->small);
        return flush_down(c);
    }
    pbuf_consume(&c->first, pbuf_len(&c->first)); /* the SSLRequest is not sent again */
    if (!flush_down(c))
        return false;
    if (pbuf_len(&c->down)) { /* the client did not take even that byte: no retry from here */
        c->answered = true;
        pbuf_release(&c->first, &c->f->small);
    }
    return true;
}

/* CS_RELAY before the answer: `down` holds the start of the server's reply. A FATAL 57P0x as
 * its first message (a server shutting down or starting up at the moment of connect) sends the
 * client to the next server, as a connect failure would; anything else is relayed. False if c
 * was freed. */
static bool review_reply(struct conn *c)
{
    if (c->first_is_ssl)
        return review_ssl_reply(c);
    char code[6];
    switch (pgp_first_reply(pbuf_data(&c->down), pbuf_len(&c->down), PBUF_CAP, code)) {
    case PGP_REPLY_MORE:
        return true;
    case PGP_REPLY_RETRY: {
        char why[64];
        snprintf(why, sizeof(why), "server refused the session: SQLSTATE %s", code);
        unforward(c);
        return retry_later(c, why);
    }
    case PGP_REPLY_RELAY:
    default:
        c->answered = true;
        pbuf_release(&c->first, &c->f->small);
        return flush_down(c);
    }
}

/* CS_RELAY: server -> client; called with `down` empty, or before the answer. False if c was
 * freed. */
static bool pump_down(struct conn *c)
{
    struct fwd *f = c->f;
    if (!pbuf_reserve(&c->down, &f->pool)) {
        conn_free(c);
        return false;
    }
    ssize_t r = pbuf_read_fd(&c->down, c->ufd);
    if (r == -EAGAIN || r == -ENOBUFS) {
        pbuf_trim(&c->down, &f->pool);
        return true;
    }
    if (r <= 0) {
        pbuf_trim(&c->down, &f->pool);
        return upstream_lost(c, (int)-r);
    }
    f->st[c->port].bytes_down += (uint64_t)r;
    if (!pgp_scan_done(&c->scan)) {
        pgp_scan_feed(&c->scan, pbuf_data(&c->down) + pbuf_len(&c->down) - r, (size_t)r);
        if (c->scan.have_key && !c->is_cancel) {
            c->ck.pid = c->scan.pid;
            c->ck.key = c->scan.key;
            cmap_put(&f->keys, &c->ck);
        }
    }
    if (!c->answered)
        return review_reply(c);
    return flush_down(c);
}

static bool connect_done(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err)
        return connect_failed(c, err);
    return connected(c);
}

static void on_upstream(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    struct conn *c = arg;
    if (c->state == CS_CONNECTING) {
        if (!connect_done(c))
            return;
        watch(c);
        return;
    }
    if (c->state != CS_RELAY)
        return;
    if ((events & LOOP_WRITE) && pbuf_len(&c->up)) {
        ssize_t w = pbuf_write_fd(&c->up, c->ufd);
        if (w < 0) {
            if (upstream_lost(c, (int)-w))
                watch(c);
            return;
        }
        pbuf_trim(&c->up, &c->f->pool);
    }
    if (events & LOOP_READ) {
        if (!pbuf_len(&c->down) || !c->answered) {
            if (!pump_down(c))
                return;
        } else if (events & LOOP_ERR) {
            if (!upstream_lost(c, ECONNRESET))
                return;
        }
    }
    watch(c);
}

/* ---- timers, start, route changes ---- */

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    struct conn *c = arg;
    c->timer = 0;
    switch (c->state) {
    case CS_FIRST:
        log_debug("client sent no startup packet in time", "port=%s", port_name(c));
        conn_free(c);
        return;
    case CS_HELD:
        if (loop_now_ms(l) >= c->hold_deadline) {
            if (!hold_expired(c))
                return;
        } else if (!conn_route(c)) {
            return;
        }
        break;
    case CS_CONNECTING:
        if (!connect_failed(c, ETIMEDOUT))
            return;
        break;
    case CS_CLOSING:
        conn_free(c);
        return;
    default:
        return;
    }
    watch(c);
}

bool conn_start(struct fwd *f, int cfd, uint8_t port, bool over_limit)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("out of memory for a connection");
        close(cfd);
        return false;
    }
    c->f = f;
    c->cfd = cfd;
    c->ufd = -1;
    c->port = port;
    c->state = CS_FIRST;
    c->counted = !over_limit;
    c->fail = over_limit ? FAIL_TOO_MANY : FAIL_NONE;
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (loop_add_fd(f->loop, cfd, LOOP_READ, on_client, c) < 0) {
        close(cfd);
        free(c);
        return false;
    }
    c->cint = LOOP_READ;
    c->next = f->conns;
    if (f->conns)
        f->conns->prev = c;
    f->conns = c;
    f->nconns++;
    f->st[port].total++;
    if (c->counted) {
        f->ncounted++;
        f->st[port].active++;
    } else {
        f->nrejecting++;
        f->st[port].rejected++;
    }
    set_timer(c, f->cfg.first_packet_ms);
    return true;
}

/* True if c's upstream is a leader that is handing over: a connection it has not answered yet
 * goes back to holding (its first packet is replayed to the next leader). */
static bool draining_target(const struct conn *c, const struct route_table *r)
{
    return r->draining && route_addr_equal(&c->target, &r->leader);
}

/* True if c's upstream is no longer where the route sends its port. */
static bool stale(const struct conn *c, const struct route_table *r)
{
    bool to_leader = r->has_leader && route_addr_equal(&c->target, &r->leader);
    if (c->port == PROXY_PORT_RW)
        return !(to_leader && c->term == r->term);
    return !(to_leader || route_find_replica(r, &c->target) >= 0);
}

void conn_on_route(struct conn *c)
{
    struct fwd *f = c->f;
    if (c->is_cancel)
        return;
    switch (c->state) {
    case CS_HELD:
        if (!conn_route(c))
            return;
        break;
    case CS_CONNECTING:
        if (!stale(c, &f->route) && !draining_target(c, &f->route))
            return;
        close_upstream(c); /* the first packet is still here: send it to the new place */
        if (!conn_route(c))
            return;
        break;
    case CS_RELAY:
        if (!stale(c, &f->route) && (c->answered || !draining_target(c, &f->route)))
            return;
        if (!c->answered) { /* nothing came back yet: send the first packet elsewhere */
            unforward(c);
            if (!conn_route(c))
                return;
            break;
        }
        log_debug("closing a session to a former upstream", "port=%s", port_name(c));
        conn_free(c);
        return;
    default:
        return;
    }
    watch(c);
}
