/* Common scaffolding of a child process: event loop, signals, the channel to the supervisor,
 * reloads. */
#ifndef PGW_CHILD_H
#define PGW_CHILD_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/settings.h"
#include "platform/loop.h"
#include "platform/msg.h"

struct child;

/* Role-specific handlers; any may be NULL. */
struct child_role {
    const char *name;
    uint8_t endpoint;
    /* Called once the loop exists, before the hello is sent. Returns false to exit with status 1.
     */
    bool (*start)(struct child *c, void *data);
    /* A message other than hello/config arrived. */
    void (*on_message)(struct child *c, const struct msg_hdr *hdr, const void *payload,
                       uint32_t len, void *data);
    /* The configuration was reloaded (reloadable keys already applied to child_config()). */
    void (*on_reload)(struct child *c, void *data);
    /* The loop ended (SIGTERM/SIGINT or the supervisor went away): release resources. */
    void (*stop)(struct child *c, void *data);
};

/* Runs the child until SIGTERM/SIGINT or until the supervisor's end of the channel closes.
 * `cfg` is the process's copy of the configuration. Returns the exit status. */
int child_run(const struct child_role *role, void *data, struct pgw_config *cfg, int chan_fd);

struct loop *child_loop(struct child *c);
struct pgw_config *child_config(struct child *c);
int child_send(struct child *c, uint8_t dst, uint16_t type, const void *payload, uint32_t len);

#endif
