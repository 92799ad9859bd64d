/* /metrics: Prometheus text with Patroni's metric names and pgwarden's forwarder counters. */
#include "web/metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/dcs/isotime.h"
#include "platform/log.h"
#include "web/health.h"

#define LOG_MODULE "web"

struct out {
    FILE *f;
    char labels[512]; /* {scope="..",name=".."} */
};

long web_metrics_version_number(const char *version)
{
    long parts[3] = {0, 0, 0};
    const char *p = version;
    if (!p)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (!(*p >= '0' && *p <= '9'))
            return i == 0 ? 0 : parts[0] * 10000 + parts[1] * 100 + parts[2];
        long v = 0;
        while (*p >= '0' && *p <= '9' && v < 100)
            v = v * 10 + (*p++ - '0');
        parts[i] = v > 99 ? 99 : v;
        if (*p != '.')
            break;
        p++;
    }
    return parts[0] * 10000 + parts[1] * 100 + parts[2];
}

/* Label values escape backslash, double quote and newline. */
static void escape_label(char *dst, size_t cap, const char *src)
{
    size_t j = 0;
    for (const char *s = src ? src : ""; *s && j + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            dst[j++] = '\\';
            dst[j++] = *s;
        } else if (*s == '\n') {
            dst[j++] = '\\';
            dst[j++] = 'n';
        } else
            dst[j++] = *s;
    }
    dst[j] = '\0';
}

static void gauge(struct out *o, const char *name, const char *help, double v)
{
    fprintf(o->f, "# HELP %s %s\n# TYPE %s gauge\n%s%s %.17g\n", name, help, name, name, o->labels,
            v);
}

static void gauge_i(struct out *o, const char *name, const char *help, long long v)
{
    fprintf(o->f, "# HELP %s %s\n# TYPE %s gauge\n%s%s %lld\n", name, help, name, name, o->labels,
            v);
}

static long long jint(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d > -9.2e18 && d < 9.2e18 ? (long long)d : 0; /* no undefined conversion */
    }
    return 0;
}

static bool jtrue(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

/* Seconds since the epoch of a timestamp string member, 0 when absent or unparsable. */
static double jtime(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    int64_t ms;
    bool tz;
    if (!s || !dcs_time_parse(s, &ms, &tz))
        return 0;
    return (double)ms / 1000.0;
}

static void patroni_metrics(struct out *o, const struct web_status *st)
{
    const json_t *p = st->patroni;
    const json_t *meta = json_object_get(p, "patroni");
    const json_t *xlog = json_object_get(p, "xlog");
    bool primary = web_role_is_primary(st->role);
    bool replica = strcmp(st->role, "replica") == 0;
    gauge_i(o, "patroni_version", "Patroni semver without periods.",
            web_metrics_version_number(json_string_value(json_object_get(meta, "version"))));
    gauge_i(o, "patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.",
            strcmp(st->state, "running") == 0);
    gauge(o, "patroni_postmaster_start_time", "Epoch seconds since Postgres started.",
          jtime(p, "postmaster_start_time"));
    gauge_i(o, "patroni_master", "Value is 1 if this node is the leader, 0 otherwise.", primary);
    gauge_i(o, "patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.", primary);
    gauge_i(o, "patroni_xlog_location",
            "Current location of the Postgres transaction log, 0 if this node is not the leader.",
            primary ? jint(xlog, "location") : 0);
    gauge_i(o, "patroni_standby_leader",
            "Value is 1 if this node is the standby_leader, 0 otherwise.",
            strcmp(st->role, "standby_leader") == 0);
    gauge_i(o, "patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.", replica);
    gauge_i(o, "patroni_sync_standby",
            "Value is 1 if this node is a sync standby replica, 0 otherwise.",
            jtrue(p, "sync_standby"));
    gauge_i(o, "patroni_xlog_received_location",
            "Current location of the received Postgres transaction log, 0 if this node is not a "
            "replica.",
            replica ? jint(xlog, "received_location") : 0);
    gauge_i(o, "patroni_xlog_replayed_location",
            "Current location of the replayed Postgres transaction log, 0 if this node is not a "
            "replica.",
            replica ? jint(xlog, "replayed_location") : 0);
    gauge(o, "patroni_xlog_replayed_timestamp",
          "Current timestamp of the replayed Postgres transaction log, 0 if null.",
          replica ? jtime(xlog, "replayed_timestamp") : 0);
    gauge_i(o, "patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
            replica && jtrue(xlog, "paused"));
    gauge_i(o, "patroni_postgres_server_version", "Version of Postgres (if running), 0 otherwise.",
            jint(p, "server_version"));
    gauge_i(o, "patroni_cluster_unlocked", "Value is 1 if the cluster is unlocked, 0 if locked.",
            jtrue(p, "cluster_unlocked"));
    gauge_i(o, "patroni_failsafe_mode_is_active",
            "Value is 1 if failsafe mode is active, 0 if inactive.",
            jtrue(p, "failsafe_mode_is_active"));
    gauge_i(o, "patroni_postgres_timeline",
            "Postgres timeline of this node (if running), 0 otherwise.", jint(p, "timeline"));
    gauge_i(o, "patroni_dcs_last_seen",
            "Epoch timestamp when DCS was last contacted successfully by Patroni.",
            (long long)st->dcs_last_seen);
    gauge_i(o, "patroni_pending_restart", "Value is 1 if the node needs a restart, 0 otherwise.",
            jtrue(p, "pending_restart"));
    gauge_i(o, "patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.",
            st->paused || jtrue(p, "pause"));
}

static void counter_port(struct out *o, const char *name, const char *help,
                         const struct msg_proxy_stats *ps, size_t offset, bool is_counter)
{
    static const char *const ports[PROXY_NPORTS] = {"rw", "ro"};
    fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
            is_counter ? "counter" : "gauge");
    for (int i = 0; i < PROXY_NPORTS; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&ps->port[i] + offset, sizeof(v));
        fprintf(o->f, "%s{port=\"%s\"} %llu\n", name, ports[i], (unsigned long long)v);
    }
}

#define PORT_FIELD(f) offsetof(struct msg_proxy_port_stats, f)

static void proxy_metrics(struct out *o, const struct msg_proxy_stats *ps, uint64_t now)
{
    static const char *const ports[PROXY_NPORTS] = {"rw", "ro"};
    static const uint64_t bounds[] = PROXY_HELD_BOUNDS_MS;
    gauge_i(o, "pgwarden_proxy_route_has_leader",
            "Value is 1 if the forwarder has an unexpired route to a leader.", ps->has_leader);
    long long valid =
        ps->has_leader && ps->expiry_boot_ms > now ? (long long)(ps->expiry_boot_ms - now) : 0;
    gauge(o, "pgwarden_proxy_route_valid_seconds",
          "Seconds until the forwarder's route expires, 0 when it has none.",
          (double)valid / 1000.0);
    counter_port(o, "pgwarden_proxy_active_connections", "Client connections open now.", ps,
                 PORT_FIELD(active), false);
    counter_port(o, "pgwarden_proxy_held_connections",
                 "Client connections waiting for a primary or replica now.", ps, PORT_FIELD(held),
                 false);
    counter_port(o, "pgwarden_proxy_connections_total", "Client connections accepted.", ps,
                 PORT_FIELD(total), true);
    counter_port(o, "pgwarden_proxy_rejected_total",
                 "Client connections refused over max_connections.", ps, PORT_FIELD(rejected),
                 true);
    counter_port(o, "pgwarden_proxy_hold_timeouts_total",
                 "Held client connections given up after hold_timeout.", ps,
                 PORT_FIELD(hold_timeouts), true);
    counter_port(o, "pgwarden_proxy_bytes_up_total", "Bytes relayed from clients to servers.", ps,
                 PORT_FIELD(bytes_up), true);
    counter_port(o, "pgwarden_proxy_bytes_down_total", "Bytes relayed from servers to clients.", ps,
                 PORT_FIELD(bytes_down), true);
    counter_port(o, "pgwarden_proxy_connect_failures_total",
                 "Upstream connections that failed or timed out.", ps, PORT_FIELD(connect_failures),
                 true);
    counter_port(o, "pgwarden_proxy_cancels_total", "CancelRequests forwarded.", ps,
                 PORT_FIELD(cancels), true);
    const char *h = "pgwarden_proxy_held_seconds";
    fprintf(o->f,
            "# HELP %s How long client connections were held before release.\n# TYPE %s "
            "histogram\n",
            h, h);
    for (int i = 0; i < PROXY_NPORTS; i++) {
        const struct msg_proxy_port_stats *p = &ps->port[i];
        unsigned long long cum = 0;
        for (int b = 0; b < PROXY_HELD_BUCKETS; b++) {
            cum += p->held_hist[b];
            if (b < PROXY_HELD_BUCKETS - 1)
                fprintf(o->f, "%s_bucket{port=\"%s\",le=\"%g\"} %llu\n", h, ports[i],
                        (double)bounds[b] / 1000.0, cum);
            else
                fprintf(o->f, "%s_bucket{port=\"%s\",le=\"+Inf\"} %llu\n", h, ports[i], cum);
        }
        fprintf(o->f, "%s_sum{port=\"%s\"} %g\n%s_count{port=\"%s\"} %llu\n", h, ports[i],
                (double)p->held_ms_sum / 1000.0, h, ports[i], (unsigned long long)p->held_count);
    }
}

bool web_metrics_render(const struct web_snapshot *s, uint64_t now_boot_ms, struct web_resp *out)
{
    struct out o = {0};
    char *buf = NULL;
    size_t len = 0;
    o.f = open_memstream(&buf, &len);
    if (!o.f) {
        log_error("out of memory rendering metrics");
        web_resp_error(out, 500, "out of memory");
        return false;
    }
    const struct web_status *st = s->st;
    if (st) {
        char scope[200], name[200];
        escape_label(scope, sizeof(scope), st->scope);
        escape_label(name, sizeof(name), st->name);
        snprintf(o.labels, sizeof(o.labels), "{scope=\"%s\",name=\"%s\"}", scope, name);
        patroni_metrics(&o, st);
        long long lease = st->leader_until_boot_ms > now_boot_ms
                              ? (long long)(st->leader_until_boot_ms - now_boot_ms)
                              : 0;
        gauge(&o, "pgwarden_leader_lease_remaining_seconds",
              "Seconds left on this node's leader lease, 0 when it does not hold it.",
              (double)lease / 1000.0);
        double age = now_boot_ms > st->boot_ms ? (double)(now_boot_ms - st->boot_ms) / 1000.0 : 0;
        gauge(&o, "pgwarden_status_age_seconds",
              "Age of the latest status snapshot the web process got from ha.", age);
    }
    gauge_i(&o, "pgwarden_status_available",
            "Value is 1 if the web process has a fresh status snapshot from ha.",
            web_status_fresh(st, now_boot_ms));
    o.labels[0] = '\0';
    if (s->has_proxy)
        proxy_metrics(&o, &s->proxy, now_boot_ms);
    bool ok = fflush(o.f) == 0 && !ferror(o.f);
    fclose(o.f);
    if (!ok || !buf) {
        free(buf);
        log_error("cannot render metrics");
        web_resp_error(out, 500, "cannot render metrics");
        return false;
    }
    web_resp_clear(out);
    out->status = 200;
    out->ctype = WEB_CT_PROM;
    out->body = buf;
    out->len = len;
    return true;
}
