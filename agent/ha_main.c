/* The ha child: owns the SQLite store and (in later issues) the HA loop with etcd and PostgreSQL.
 */
#include <stdio.h>
#include <unistd.h>

#include "agent/child.h"
#include "agent/msgtypes.h"
#include "agent/node.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

struct ha {
    struct store *store;
};

static bool ha_start(struct child *c, void *data)
{
    struct ha *ha = data;
    const struct pgw_config *cfg = child_config(c);
    char err[512];
    char detail[128];

    ha->store = store_open(cfg->node.state_dir, err, sizeof(err));
    if (!ha->store)
        return false;
    snprintf(detail, sizeof(detail), "{\"pid\":%d,\"version\":\"%s\"}", (int)getpid(), PGW_VERSION);
    if (!store_event_add(ha->store, clock_wall_ms(), "agent_start", cfg->node.name, 0, detail,
                         NULL))
        return false;
    return true;
}

static void ha_stop(struct child *c, void *data)
{
    (void)c;
    struct ha *ha = data;
    store_close(ha->store);
    ha->store = NULL;
}

int ha_main(void *app, int chan_fd)
{
    struct node *n = app;
    struct ha ha = {0};
    const struct child_role role = {
        .name = "ha", .endpoint = EP_HA, .start = ha_start, .stop = ha_stop};
    return child_run(&role, &ha, &n->cfg, chan_fd);
}
