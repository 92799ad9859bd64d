/* Operator commands sent to ha (MSG_COMMAND) and matched with its MSG_REPLY, with timeouts and
 * Patroni's wait for the leader change after a switchover or failover. */
#ifndef PGW_WEB_COMMANDS_H
#define PGW_WEB_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/loop.h"
#include "web/resp.h"
#include "web/snapshot.h"

struct web_cmds;

/* Sends a message to ha (child_send to EP_HA in the web process). 0 or -errno. */
typedef int (*web_send_fn)(void *arg, uint16_t type, const void *payload, uint32_t len);
/* A command finished: take the answer from *resp (web_resp_move). Called from a loop callback
 * (never from inside web_cmds_start), exactly once per started command unless cancelled. */
typedef void (*web_cmd_done_fn)(void *token, struct web_resp *resp);

/* After ha accepted a non-scheduled switchover/failover (200), wait for the leader change. */
struct web_cmd_wait {
    bool enabled;
    bool failover;       /* wording: "failed over" instead of "switched over" */
    char leader[256];    /* the leader when the request came ("" if none) */
    char candidate[256]; /* "" when any member will do */
    uint64_t wait_ms;    /* Patroni: 2 * max(10, loop_wait) seconds */
};

struct web_cmds *web_cmds_new(struct loop *l, web_send_fn send, void *send_arg);
/* Frees the table; pending commands are dropped without calling their done callbacks (call
 * web_cmds_abort_all first to answer them). NULL-safe. */
void web_cmds_free(struct web_cmds *c);

/* Sends cmd (an object with "op"; "id" is added; the reference is consumed) and remembers it.
 * Returns the id (> 0), or 0 with an error answer in *err (413 too large for the channel, 503
 * ha unreachable, 500 out of memory). wait may be NULL. */
uint64_t web_cmds_start(struct web_cmds *c, json_t *cmd, uint64_t reply_timeout_ms,
                        const struct web_cmd_wait *wait, web_cmd_done_fn done, void *token,
                        struct web_resp *err);
/* The requester went away: forget the command (its reply will be ignored). */
void web_cmds_cancel(struct web_cmds *c, uint64_t id);
/* A MSG_REPLY payload from ha. */
void web_cmds_on_reply(struct web_cmds *c, const void *json, size_t len);
/* A new status snapshot: commands waiting for a leader change look at it. */
void web_cmds_on_status(struct web_cmds *c, const struct web_status *st);
/* Answers every pending command with 503 (shutdown). */
void web_cmds_abort_all(struct web_cmds *c);
size_t web_cmds_pending(const struct web_cmds *c);

#endif
