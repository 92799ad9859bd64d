/* The ha child: owns the SQLite store and runs the HA state machine (election + PostgreSQL). */
#include <stdio.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/child.h"
#include "agent/ha/elector.h"
#include "agent/msgtypes.h"
#include "agent/node.h"
#include "agent/store.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

struct ha {
    struct store *store;
    struct elector *elector;
    bool curl_ready;
};

static int send_via_child(void *arg, uint8_t dst, uint16_t type, const void *payload, uint32_t len)
{
    return child_send(arg, dst, type, payload, len);
}

static void ha_stop(struct child *c, void *data);

static bool ha_start(struct child *c, void *data)
{
    struct ha *ha = data;
    const struct pgw_config *cfg = child_config(c);
    char err[512];
    char detail[128];

    /* The supervisor checked the store at start: failing now is a full disk or an I/O error,
     * which must not stop the HA loop (logged by store_open; events and samples are lost). */
    ha->store = store_open(cfg->node.state_dir, err, sizeof(err));
    if (!ha->store)
        log_error("running without the state store", "state_dir=%s", cfg->node.state_dir);
    snprintf(detail, sizeof(detail), "{\"pid\":%d,\"version\":\"%s\"}", (int)getpid(), PGW_VERSION);
    if (ha->store) /* a failed write is logged by the store, once per episode */
        store_event_add(ha->store, clock_wall_ms(), "agent_start", cfg->node.name, 0, detail, NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        goto fail;
    }
    ha->curl_ready = true;
    ha->elector = elector_new(cfg, child_loop(c), ha->store, send_via_child, c);
    if (ha->elector && elector_start(ha->elector))
        return true;
fail:
    ha_stop(c, data);
    return false;
}

static void ha_message(struct child *c, const struct msg_hdr *hdr, const void *payload,
                       uint32_t len, void *data)
{
    (void)c;
    struct ha *ha = data;
    if (hdr->type == MSG_FENCE && ha->elector)
        elector_supervisor_fenced(ha->elector, payload);
    else if (hdr->type == MSG_PROXY_STATS && ha->elector && len == sizeof(struct msg_proxy_stats))
        elector_proxy_stats(ha->elector, payload);
    else if (hdr->type == MSG_COMMAND && ha->elector)
        elector_handle_command(ha->elector, payload, len);
}

static void ha_reload(struct child *c, void *data)
{
    struct ha *ha = data;
    if (ha->elector)
        elector_reconfigure(ha->elector, child_config(c));
}

static void ha_stop(struct child *c, void *data)
{
    (void)c;
    struct ha *ha = data;
    elector_shutdown(ha->elector);
    elector_free(ha->elector);
    ha->elector = NULL;
    if (ha->curl_ready)
        curl_global_cleanup();
    ha->curl_ready = false;
    store_close(ha->store);
    ha->store = NULL;
}

int ha_main(void *app, int chan_fd)
{
    struct node *n = app;
    struct ha ha = {0};
    const struct child_role role = {.name = "ha",
                                    .endpoint = EP_HA,
                                    .start = ha_start,
                                    .on_message = ha_message,
                                    .on_reload = ha_reload,
                                    .stop = ha_stop};
    return child_run(&role, &ha, &n->cfg, chan_fd);
}
