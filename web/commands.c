/* Pending operator commands: id matching of ha's replies, timeouts, switchover result polling. */
#include "web/commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/msgtypes.h"
#include "platform/log.h"

#define LOG_MODULE "web"

enum cmd_state { WAIT_REPLY, WAIT_LEADER };

struct pending {
    struct pending *next;
    uint64_t id;
    enum cmd_state state;
    uint64_t timer;
    web_cmd_done_fn done;
    void *token;
    struct web_cmd_wait wait;
    bool saw_failover_key;
    struct web_cmds *owner;
};

struct web_cmds {
    struct loop *loop;
    web_send_fn send;
    void *send_arg;
    uint64_t next_id;
    struct pending *list;
    size_t count;
};

struct web_cmds *web_cmds_new(struct loop *l, web_send_fn send, void *send_arg)
{
    struct web_cmds *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("out of memory for the command table");
        return NULL;
    }
    c->loop = l;
    c->send = send;
    c->send_arg = send_arg;
    c->next_id = 1;
    return c;
}

static void unlink_pending(struct web_cmds *c, struct pending *p)
{
    for (struct pending **pp = &c->list; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            c->count--;
            break;
        }
    }
    if (p->timer)
        loop_cancel_timer(c->loop, p->timer);
    p->timer = 0;
}

/* Removes p and hands resp to its requester. */
static void finish(struct web_cmds *c, struct pending *p, struct web_resp *resp)
{
    unlink_pending(c, p);
    web_cmd_done_fn done = p->done;
    void *token = p->token;
    free(p);
    done(token, resp);
    web_resp_clear(resp);
}

void web_cmds_free(struct web_cmds *c)
{
    if (!c)
        return;
    while (c->list) {
        struct pending *p = c->list;
        unlink_pending(c, p);
        free(p);
    }
    free(c);
}

static struct pending *find(struct web_cmds *c, uint64_t id)
{
    for (struct pending *p = c->list; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static const char *verb(const struct pending *p)
{
    return p->wait.failover ? "fail" : "switch";
}

static void on_timeout(struct loop *l, uint64_t timer_id, void *arg)
{
    (void)l;
    (void)timer_id;
    struct pending *p = arg;
    struct web_cmds *c = p->owner;
    struct web_resp r = {0};
    p->timer = 0;
    if (p->state == WAIT_REPLY) {
        log_warn("ha did not answer a command in time", "id=%llu", (unsigned long long)p->id);
        web_resp_error(&r, 503, "ha did not answer");
    } else {
        char msg[64];
        snprintf(msg, sizeof(msg), "%s status unknown",
                 p->wait.failover ? "Failover" : "Switchover");
        web_resp_text(&r, 503, msg);
    }
    finish(c, p, &r);
}

uint64_t web_cmds_start(struct web_cmds *c, json_t *cmd, uint64_t reply_timeout_ms,
                        const struct web_cmd_wait *wait, web_cmd_done_fn done, void *token,
                        struct web_resp *err)
{
    uint64_t id = c->next_id++;
    struct pending *p = calloc(1, sizeof(*p));
    char *text = NULL;
    if (!p || json_object_set_new(cmd, "id", json_integer((json_int_t)id)) != 0 ||
        !(text = json_dumps(cmd, JSON_COMPACT))) {
        log_error("out of memory sending a command");
        web_resp_error(err, 500, "out of memory");
        goto fail;
    }
    size_t len = strlen(text);
    if (len > MSG_MAX_PAYLOAD) {
        web_resp_error(err, 413, "the command is too large");
        goto fail;
    }
    int r = c->send(c->send_arg, MSG_COMMAND, text, (uint32_t)len);
    if (r < 0) {
        log_warn("cannot send a command to ha", "op=%s err=%d",
                 json_string_value(json_object_get(cmd, "op")), r);
        web_resp_error(err, 503, r == -EAGAIN ? "ha is busy" : "ha is not reachable");
        goto fail;
    }
    p->id = id;
    p->done = done;
    p->token = token;
    p->owner = c;
    if (wait)
        p->wait = *wait;
    p->timer = loop_add_timer(c->loop, reply_timeout_ms, 0, on_timeout, p);
    if (!p->timer) {
        log_error("out of memory for a command timer");
        web_resp_error(err, 500, "out of memory");
        goto fail;
    }
    p->next = c->list;
    c->list = p;
    c->count++;
    free(text);
    json_decref(cmd);
    return id;
fail:
    free(text);
    free(p);
    json_decref(cmd);
    return 0;
}

void web_cmds_cancel(struct web_cmds *c, uint64_t id)
{
    struct pending *p = find(c, id);
    if (!p)
        return;
    unlink_pending(c, p);
    free(p);
}

/* ha's answer body: a JSON string is Patroni's plain text, anything else is JSON. */
static void reply_to_resp(int status, const json_t *body, struct web_resp *r)
{
    if (json_is_string(body))
        web_resp_set(r, status, WEB_CT_TEXT, json_string_value(body), json_string_length(body));
    else if (body && !json_is_null(body))
        web_resp_json(r, status, body);
    else
        web_resp_set(r, status, NULL, NULL, 0);
}

void web_cmds_on_reply(struct web_cmds *c, const void *json, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    json_t *jid = json_object_get(root, "id");
    json_t *jstatus = json_object_get(root, "status");
    if (!json_is_integer(jid) || !json_is_integer(jstatus) || json_integer_value(jstatus) < 100 ||
        json_integer_value(jstatus) > 599) {
        log_warn("bad command reply from ha", "len=%zu", len);
        json_decref(root);
        return;
    }
    struct pending *p = find(c, (uint64_t)json_integer_value(jid));
    if (!p || p->state != WAIT_REPLY) {
        log_debug("reply for a command nobody waits for", "id=%lld",
                  (long long)json_integer_value(jid));
        json_decref(root);
        return;
    }
    int status = (int)json_integer_value(jstatus);
    json_t *body = json_object_get(root, "body");
    if (status == 200 && p->wait.enabled && !json_is_true(json_object_get(body, "scheduled"))) {
        loop_cancel_timer(c->loop, p->timer);
        p->state = WAIT_LEADER;
        p->timer = loop_add_timer(c->loop, p->wait.wait_ms, 0, on_timeout, p);
        if (p->timer) {
            json_decref(root);
            return;
        }
        log_error("out of memory for a switchover wait timer");
        status = 503;
    }
    struct web_resp r = {0};
    reply_to_resp(status, body, &r);
    json_decref(root);
    finish(c, p, &r);
}

/* Patroni's poll_failover_result on one snapshot: true if p is decided (answer in r). */
static bool leader_outcome(struct pending *p, const struct web_status *st, struct web_resp *r)
{
    const char *leader = web_status_leader_name(st);
    if (leader && strcmp(leader, p->wait.leader) != 0) {
        char msg[600];
        if (!p->wait.candidate[0] || strcmp(p->wait.candidate, leader) == 0)
            snprintf(msg, sizeof(msg), "Successfully %sed over to \"%s\"", verb(p), leader);
        else
            snprintf(msg, sizeof(msg), "%sed over to \"%s\" instead of \"%s\"",
                     p->wait.failover ? "Fail" : "Switch", leader, p->wait.candidate);
        web_resp_text(r, 200, msg);
        return true;
    }
    if (st->has_failover_field) {
        if (st->failover)
            p->saw_failover_key = true;
        else if (p->saw_failover_key) {
            web_resp_text(r, 503, p->wait.failover ? "Failover failed" : "Switchover failed");
            return true;
        }
    }
    return false;
}

void web_cmds_on_status(struct web_cmds *c, const struct web_status *st)
{
    struct pending *p = c->list;
    while (p) {
        struct pending *next = p->next;
        struct web_resp r = {0};
        if (p->state == WAIT_LEADER && leader_outcome(p, st, &r))
            finish(c, p, &r);
        p = next;
    }
}

void web_cmds_abort_all(struct web_cmds *c)
{
    while (c->list) {
        struct web_resp r = {0};
        web_resp_error(&r, 503, "the web process is stopping");
        finish(c, c->list, &r);
    }
}

size_t web_cmds_pending(const struct web_cmds *c)
{
    return c->count;
}
