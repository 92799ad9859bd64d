/* ctl list and history: the cluster table and the timeline history, read from etcd. */
#include <stdlib.h>
#include <string.h>

#include "agent/ctl/ctl.h"

static void print_notes(const struct ctl_cluster *cl)
{
    if (cl->has_config && cl->config.pause)
        printf(" Maintenance mode: on\n");
    if (cl->has_failover && cl->failover.has_scheduled_at) {
        printf(" Switchover scheduled at: %s\n", cl->failover.scheduled_at);
        if (cl->failover.leader[0])
            printf("                    from: %s\n", cl->failover.leader);
        if (cl->failover.candidate[0])
            printf("                      to: %s\n", cl->failover.candidate);
    }
    if (cl->config_present && !cl->has_config)
        printf(" Config: invalid (%s)\n", cl->config_error);
    if (!cl->leader[0] && cl->n_members > 0)
        printf(" No leader\n");
}

int ctl_cmd_list(struct ctl_ctx *c)
{
    struct ctl_cluster cl;
    int rc = ctl_read_cluster(c, &cl);
    if (rc != CTL_OK)
        return rc;
    json_t *rows = ctl_list_json(&cl);
    if (!rows) {
        ctl_cluster_free(&cl);
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        return CTL_SOFTWARE;
    }
    rc = CTL_OK;
    if (c->o->json) {
        if (!ctl_print_json(rows, true))
            rc = CTL_SOFTWARE;
    } else {
        char *text = ctl_list_render(&cl, rows);
        if (!text) {
            fprintf(stderr, "pgwarden ctl: out of memory\n");
            rc = CTL_SOFTWARE;
        } else {
            fputs(text, stdout);
            free(text);
            print_notes(&cl);
        }
    }
    json_decref(rows);
    ctl_cluster_free(&cl);
    return rc;
}

int ctl_cmd_history(struct ctl_ctx *c)
{
    struct ctl_cluster cl;
    int rc = ctl_read_cluster(c, &cl);
    if (rc != CTL_OK)
        return rc;
    if (!cl.has_history && cl.history_error[0]) {
        fprintf(stderr, "pgwarden ctl: the history key is malformed: %s\n", cl.history_error);
        ctl_cluster_free(&cl);
        return CTL_DATAERR;
    }
    json_t *rows = json_array();
    static const char *const heads[] = {"TL", "LSN", "Reason", "Timestamp", "New Leader"};
    static const enum ctl_align align[] = {CTL_ALIGN_RIGHT, CTL_ALIGN_RIGHT, CTL_ALIGN_LEFT,
                                           CTL_ALIGN_LEFT, CTL_ALIGN_LEFT};
    struct ctl_table t;
    bool table_ok = rows && ctl_table_init(&t, 5, heads, align);
    bool ok = table_ok;
    for (size_t i = 0; ok && i < cl.history.n; i++) {
        const struct dcs_history_line *h = &cl.history.lines[i];
        char tl[24], lsn[24];
        snprintf(tl, sizeof(tl), "%lld", (long long)h->timeline);
        snprintf(lsn, sizeof(lsn), "%lld", (long long)h->lsn);
        const char *cells[] = {tl, lsn, h->reason ? h->reason : "",
                               h->timestamp ? h->timestamp : "",
                               h->new_leader ? h->new_leader : ""};
        json_t *r = json_pack("{s:I,s:I,s:s,s:s?,s:s?}", "TL", (json_int_t)h->timeline, "LSN",
                              (json_int_t)h->lsn, "Reason", cells[2], "Timestamp", h->timestamp,
                              "New Leader", h->new_leader);
        ok = r && json_array_append_new(rows, r) == 0 && ctl_table_add_row(&t, cells);
    }
    rc = CTL_OK;
    if (!ok) {
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        rc = CTL_SOFTWARE;
    } else if (c->o->json) {
        if (!ctl_print_json(rows, true))
            rc = CTL_SOFTWARE;
    } else {
        char *text = ctl_table_render(&t, NULL);
        if (text) {
            fputs(text, stdout);
            free(text);
        } else {
            rc = CTL_SOFTWARE;
        }
    }
    if (table_ok)
        ctl_table_free(&t);
    json_decref(rows);
    ctl_cluster_free(&cl);
    return rc;
}
