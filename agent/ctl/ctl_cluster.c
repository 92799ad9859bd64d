/* ctl cluster view: the Patroni keys of one cluster decoded, and the `list` rows built from them.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/ctl/ctl.h"

void ctl_cluster_free(struct ctl_cluster *cl)
{
    if (!cl)
        return;
    free(cl->members);
    dcs_config_free(&cl->config);
    dcs_history_free(&cl->history);
    memset(cl, 0, sizeof(*cl));
}

static void warn_bad(struct ctl_cluster *cl, FILE *warn, const char *what, const char *msg)
{
    cl->n_bad++;
    if (warn)
        fprintf(warn, "pgwarden ctl: warning: ignoring malformed %s: %s\n", what, msg);
}

static void add_member(struct ctl_cluster *cl, const char *name, const char *value, size_t len,
                       FILE *warn)
{
    struct dcs_err err = {{0}};
    struct dcs_member m;
    if (!dcs_member_decode(value, len, name, &m, &err)) {
        warn_bad(cl, warn, "member value", err.msg);
        return;
    }
    struct dcs_member *n = realloc(cl->members, (cl->n_members + 1) * sizeof(*n));
    if (!n) {
        warn_bad(cl, warn, "member value", "out of memory");
        return;
    }
    cl->members = n;
    cl->members[cl->n_members++] = m;
}

void ctl_cluster_add_kv(struct ctl_cluster *cl, const struct dcs_keys *k, const char *key,
                        size_t key_len, const char *value, size_t value_len, int64_t mod_rev,
                        FILE *warn)
{
    char name[DCS_NAME_MAX];
    struct dcs_err err = {{0}};
    const char *v = value ? value : "";
    switch (dcs_key_classify(k, key, key_len, name, sizeof(name))) {
    case DCS_KEY_MEMBER:
        add_member(cl, name, v, value_len, warn);
        break;
    case DCS_KEY_LEADER:
        if (!dcs_leader_decode(v, value_len, cl->leader, sizeof(cl->leader), &err)) {
            cl->leader[0] = '\0';
            warn_bad(cl, warn, "leader", err.msg);
        }
        break;
    case DCS_KEY_INITIALIZE:
        cl->has_initialize = dcs_initialize_decode(v, value_len, &cl->init, &err);
        if (!cl->has_initialize)
            warn_bad(cl, warn, "initialize", err.msg);
        break;
    case DCS_KEY_SYNC:
        cl->has_sync = dcs_sync_decode(v, value_len, &cl->sync, &err);
        if (!cl->has_sync)
            warn_bad(cl, warn, "sync", err.msg);
        break;
    case DCS_KEY_STATUS:
        cl->has_status = dcs_status_decode(v, value_len, &cl->status, &err);
        if (!cl->has_status)
            warn_bad(cl, warn, "status", err.msg);
        break;
    case DCS_KEY_OPTIME_LEADER:
        cl->has_optime_legacy = dcs_optime_decode(v, value_len, &cl->optime_legacy, &err);
        break;
    case DCS_KEY_FAILOVER:
        cl->has_failover = dcs_failover_decode(v, value_len, &cl->failover, &err);
        if (!cl->has_failover)
            warn_bad(cl, warn, "failover", err.msg);
        else if (dcs_failover_empty(&cl->failover))
            cl->has_failover = false;
        break;
    case DCS_KEY_CONFIG:
        cl->config_present = true;
        cl->config_mod_revision = mod_rev;
        dcs_config_free(&cl->config);
        cl->has_config = dcs_config_decode(v, value_len, &cl->config, &err);
        if (!cl->has_config)
            snprintf(cl->config_error, sizeof(cl->config_error), "%s", err.msg);
        break;
    case DCS_KEY_HISTORY:
        dcs_history_free(&cl->history);
        cl->has_history = dcs_history_decode(v, value_len, &cl->history, &err);
        if (!cl->has_history)
            snprintf(cl->history_error, sizeof(cl->history_error), "%s", err.msg);
        break;
    default:
        break;
    }
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dcs_member *)a)->name, ((const struct dcs_member *)b)->name);
}

void ctl_cluster_finish(struct ctl_cluster *cl)
{
    if (cl->n_members > 1)
        qsort(cl->members, cl->n_members, sizeof(*cl->members), member_cmp);
    if (!cl->config_present)
        dcs_config_defaults(&cl->config);
}

const struct dcs_member *ctl_cluster_member(const struct ctl_cluster *cl, const char *name)
{
    for (size_t i = 0; name && i < cl->n_members; i++)
        if (strcmp(cl->members[i].name, name) == 0)
            return &cl->members[i];
    return NULL;
}

bool ctl_cluster_last_lsn(const struct ctl_cluster *cl, int64_t *lsn)
{
    if (cl->has_status && cl->status.has_optime) {
        *lsn = cl->status.optime;
        return true;
    }
    if (cl->has_optime_legacy) {
        *lsn = cl->optime_legacy;
        return true;
    }
    const struct dcs_member *l = ctl_cluster_member(cl, cl->leader);
    if (l && l->has_xlog_location) {
        *lsn = l->xlog_location;
        return true;
    }
    return false;
}

void ctl_conn_host(const char *conn_url, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = strstr(conn_url, "://");
    if (!p)
        return;
    p += 3;
    const char *at = strchr(p, '@'); /* never expected (decode drops credentials) */
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash))
        p = at + 1;
    size_t n = slash ? (size_t)(slash - p) : strcspn(p, "?");
    snprintf(out, cap, "%.*s", (int)n, p);
}

/* Patroni's role title: Leader, Standby Leader, Sync Standby, Replica. */
static const char *role_title(const struct ctl_cluster *cl, const struct dcs_member *m)
{
    if (cl->leader[0] && strcmp(cl->leader, m->name) == 0)
        return m->role == DCS_ROLE_STANDBY_LEADER ? "Standby Leader" : "Leader";
    if (cl->has_sync && dcs_sync_matches(&cl->sync, m->name, false))
        return "Sync Standby";
    return "Replica";
}

json_t *ctl_list_json(const struct ctl_cluster *cl)
{
    json_t *rows = json_array();
    int64_t last = 0;
    bool have_last = ctl_cluster_last_lsn(cl, &last);
    for (size_t i = 0; rows && i < cl->n_members; i++) {
        const struct dcs_member *m = &cl->members[i];
        char host[DCS_URL_MAX];
        ctl_conn_host(m->conn_url, host, sizeof(host));
        const char *role = role_title(cl, m);
        json_t *r =
            json_pack("{s:s,s:s,s:s,s:s,s:s}", "Cluster", cl->scope, "Member", m->name, "Host",
                      host, "Role", role, "State", m->state_text[0] ? m->state_text : "unknown");
        if (!r) {
            json_decref(rows);
            return NULL;
        }
        if (m->has_timeline)
            json_object_set_new(r, "TL", json_integer((json_int_t)m->timeline));
        if (strcmp(role, "Leader") != 0 && strcmp(role, "Standby Leader") != 0) {
            if (m->has_xlog_location && have_last) {
                int64_t lag = last > m->xlog_location ? last - m->xlog_location : 0;
                json_object_set_new(r, "Lag in MB",
                                    json_integer((json_int_t)((lag + 524288) / 1048576)));
            } else {
                json_object_set_new(r, "Lag in MB", json_string("unknown"));
            }
        }
        if (m->pending_restart)
            json_object_set_new(r, "Pending restart", json_string("*"));
        if (m->has_clone_bytes) { /* a copy in progress, as its source reports it */
            char copied[64];
            int pct = dcs_clone_percent(m->clone_bytes, m->clone_total_bytes);
            if (pct >= 0)
                snprintf(copied, sizeof(copied), "%d%% of %lld MB", pct,
                         (long long)((m->clone_total_bytes + 524288) / 1048576));
            else
                snprintf(copied, sizeof(copied), "%lld MB",
                         (long long)((m->clone_bytes + 524288) / 1048576));
            json_object_set_new(r, "Copied", json_string(copied));
        }
        if (json_array_append_new(rows, r) != 0) {
            json_decref(rows);
            return NULL;
        }
    }
    return rows;
}

static void cell_of(const json_t *row, const char *key, char *out, size_t cap)
{
    const json_t *v = json_object_get(row, key);
    if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else
        out[0] = '\0';
}

char *ctl_list_render(const struct ctl_cluster *cl, const json_t *rows)
{
    static const char *const all[] = {"Member", "Host",      "Role",   "State",
                                      "TL",     "Lag in MB", "Copied", "Pending restart"};
    static const enum ctl_align all_align[] = {CTL_ALIGN_LEFT,  CTL_ALIGN_LEFT,  CTL_ALIGN_LEFT,
                                               CTL_ALIGN_LEFT,  CTL_ALIGN_RIGHT, CTL_ALIGN_RIGHT,
                                               CTL_ALIGN_RIGHT, CTL_ALIGN_LEFT};
    enum { NCOLS = sizeof(all) / sizeof(all[0]), NFIXED = 6 };
    const char *heads[NCOLS];
    enum ctl_align align[NCOLS];
    size_t ncols = 0, i;
    const json_t *row;
    for (size_t c = 0; c < NCOLS; c++) {
        bool used = c < NFIXED; /* the optional columns only when a row has them */
        json_array_foreach(rows, i, row) used = used || json_object_get(row, all[c]) != NULL;
        if (used) {
            heads[ncols] = all[c];
            align[ncols++] = all_align[c];
        }
    }
    struct ctl_table t;
    if (!ctl_table_init(&t, ncols, heads, align))
        return NULL;
    json_array_foreach(rows, i, row)
    {
        char cells[NCOLS][DCS_URL_MAX];
        const char *ptrs[NCOLS];
        for (size_t c = 0; c < ncols; c++) {
            cell_of(row, heads[c], cells[c], sizeof(cells[c]));
            ptrs[c] = cells[c];
        }
        if (!ctl_table_add_row(&t, ptrs)) {
            ctl_table_free(&t);
            return NULL;
        }
    }
    char title[PGW_NAME_MAX + DCS_SYSID_MAX + 32];
    if (cl->has_initialize && cl->init.sysid[0])
        snprintf(title, sizeof(title), "Cluster: %s (%s)", cl->scope, cl->init.sysid);
    else if (cl->has_initialize && cl->init.racing)
        snprintf(title, sizeof(title), "Cluster: %s (initializing)", cl->scope);
    else
        snprintf(title, sizeof(title), "Cluster: %s (uninitialized)", cl->scope);
    char *out = ctl_table_render(&t, title);
    ctl_table_free(&t);
    return out;
}
