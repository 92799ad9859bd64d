/* The dashboard's live state: the latest ha status snapshot plus this node's forwarder counters. */
#include <string.h>

#include "web/dash.h"
#include "web/health.h"

static json_t *port_json(const struct msg_proxy_port_stats *p)
{
    json_t *o = json_pack(
        "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "active", (json_int_t)p->active, "held",
        (json_int_t)p->held, "total", (json_int_t)p->total, "rejected", (json_int_t)p->rejected,
        "hold_timeouts", (json_int_t)p->hold_timeouts, "bytes_up", (json_int_t)p->bytes_up,
        "bytes_down", (json_int_t)p->bytes_down, "connect_failures",
        (json_int_t)p->connect_failures, "cancels", (json_int_t)p->cancels, "held_count",
        (json_int_t)p->held_count, "held_ms_sum", (json_int_t)p->held_ms_sum);
    return o;
}

static json_t *proxy_json(const struct web_snapshot *snap, uint64_t now_boot_ms)
{
    if (!snap->has_proxy)
        return json_null();
    const struct msg_proxy_stats *ps = &snap->proxy;
    uint64_t age = now_boot_ms > snap->proxy_boot_ms ? now_boot_ms - snap->proxy_boot_ms : 0;
    return json_pack("{s:I,s:b,s:s,s:I,s:{s:o,s:o}}", "age_ms", (json_int_t)age, "has_leader",
                     ps->has_leader != 0, "leader", ps->leader, "term", (json_int_t)ps->term,
                     "ports", "rw", port_json(&ps->port[PROXY_PORT_RW]), "ro",
                     port_json(&ps->port[PROXY_PORT_RO]));
}

json_t *web_dash_state(const struct web_snapshot *snap, uint64_t now_boot_ms, int64_t now_wall_ms)
{
    const struct web_status *st = snap->st;
    json_t *o = json_pack("{s:I,s:I}", "server_ms", (json_int_t)now_wall_ms, "status_seq",
                          (json_int_t)snap->status_count);
    if (!o)
        return NULL;
    json_object_set_new(o, "proxy", proxy_json(snap, now_boot_ms));
    if (!st) {
        json_object_set_new(o, "node", json_string(""));
        json_object_set_new(o, "fresh", json_false());
        json_object_set_new(o, "status", json_null());
        return o;
    }
    uint64_t age = now_boot_ms > st->boot_ms ? now_boot_ms - st->boot_ms : 0;
    json_object_set_new(o, "node", json_string(st->name));
    json_object_set_new(o, "scope", json_string(st->scope));
    json_object_set_new(o, "fresh", json_boolean(web_status_fresh(st, now_boot_ms)));
    json_object_set_new(o, "status_age_ms", json_integer((json_int_t)age));
    const char *leader = web_status_leader_name(st);
    json_object_set_new(o, "leader", leader ? json_string(leader) : json_null());
    json_object_set(o, "status", st->root);
    return o;
}
