/* Common scaffolding of a child process: event loop, signals, the channel to the supervisor,
 * reloads. */
#include "agent/child.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/msgtypes.h"
#include "platform/config.h"
#include "platform/log.h"

#define LOG_MODULE "child"

struct child {
    const struct child_role *role;
    void *data;
    struct pgw_config *cfg;
    struct loop *loop;
    int chan;
    uint32_t seq;
    uint8_t *buf;
};

struct loop *child_loop(struct child *c)
{
    return c->loop;
}

struct pgw_config *child_config(struct child *c)
{
    return c->cfg;
}

int child_send(struct child *c, uint8_t dst, uint16_t type, const void *payload, uint32_t len)
{
    return msg_send(c->chan, type, c->role->endpoint, dst, ++c->seq, payload, len);
}

static void report_change(const struct cfg_key *k, bool applied, void *arg)
{
    (void)arg;
    if (!applied)
        log_debug("setting change ignored until restart", "key=%s.%s", k->section, k->name);
}

static void apply_config(struct child *c, const void *payload)
{
    /* The supervisor validated the new configuration; take the keys that may change live. */
    struct pgw_config *next = malloc(sizeof(*next));
    if (!next) {
        log_error("out of memory applying config");
        return;
    }
    memcpy(next, payload, sizeof(*next));
    size_t changed = cfg_diff_reload(settings_keys, settings_nkeys, c->cfg, next, report_change, c);
    free(next);
    log_set_level((enum log_level)c->cfg->log.level);
    log_debug("config applied", "changed=%zu", changed);
    /* Always: a reload also re-reads the files the settings name (TLS certificates, users
     * file) even when no setting changed. */
    if (c->role->on_reload)
        c->role->on_reload(c, c->data);
}

static void on_channel(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct child *c = arg;
    for (;;) {
        struct msg_hdr hdr;
        int r = msg_recv(fd, msgtypes_specs, msgtypes_nspecs, &hdr, c->buf, MSG_MAX_PAYLOAD);
        if (r == -EAGAIN)
            return;
        if (r == -EBADMSG)
            continue;
        if (r < 0) {
            log_info("supervisor gone, exiting");
            loop_stop(l);
            return;
        }
        if (hdr.type == MSG_CONFIG)
            apply_config(c, c->buf);
        else if (c->role->on_message)
            c->role->on_message(c, &hdr, c->buf, (uint32_t)r, c->data);
    }
}

static void on_signal(struct loop *l, int signo, void *arg)
{
    (void)arg;
    log_info("stopping", "signal=%d", signo);
    loop_stop(l);
}

int child_run(const struct child_role *role, void *data, struct pgw_config *cfg, int chan_fd)
{
    int rc = 1;
    struct child c = {.role = role, .data = data, .cfg = cfg, .chan = chan_fd};
    bool started = false;

    log_setup((enum log_level)cfg->log.level, role->name);
    c.buf = malloc(MSG_MAX_PAYLOAD);
    c.loop = loop_new();
    if (!c.buf || !c.loop) {
        log_error("cannot allocate the event loop");
        goto out;
    }
    if (loop_add_signal(c.loop, SIGTERM, on_signal, &c) < 0 ||
        loop_add_signal(c.loop, SIGINT, on_signal, &c) < 0 ||
        loop_add_fd(c.loop, chan_fd, LOOP_READ, on_channel, &c) < 0) {
        log_error("cannot set up the event loop");
        goto out;
    }
    /* SIGHUP goes to the supervisor, which re-reads the file and sends us the result. */
    signal(SIGHUP, SIG_IGN);
    if (role->start && !role->start(&c, data))
        goto out;
    started = true;
    struct msg_hello hello = {.pid = (int32_t)getpid()};
    snprintf(hello.role, sizeof(hello.role), "%s", role->name);
    int r = child_send(&c, EP_SUP, MSG_HELLO, &hello, sizeof(hello));
    if (r < 0) {
        log_error("cannot greet the supervisor", "err=%s", strerror(-r));
        goto out;
    }
    log_info("child running", "pid=%d", (int)getpid());
    r = loop_run(c.loop);
    rc = r < 0 ? 1 : 0;
out:
    if (started && role->stop)
        role->stop(&c, data);
    loop_free(c.loop);
    free(c.buf);
    close(chan_fd);
    return rc;
}
