/* Health-check predicates of the Patroni REST API (api.py do_GET), from the ha snapshot. */
#include "web/health.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OK = 200, UNAVAILABLE = 503 };

bool web_parse_lag(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"kB", 1024.0},
                 {"MB", 1024.0 * 1024},
                 {"GB", 1024.0 * 1024 * 1024},
                 {"TB", 1024.0 * 1024 * 1024 * 1024}};
    if (!s)
        return false;
    while (*s == ' ' || *s == '\t')
        s++;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!(*p >= '0' && *p <= '9'))
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    char num[64];
    size_t n = (size_t)(p - s);
    if (n >= sizeof(num))
        return false;
    memcpy(num, s, n);
    num[n] = '\0';
    errno = 0;
    char *end;
    double v = strtod(num, &end);
    if (errno != 0 || *end != '\0')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        double r = round(v * units[i].mult);
        if (!(r > -9.2e18 && r < 9.2e18))
            return false;
        *out = (int64_t)r;
        return true;
    }
    return false;
}

bool web_tag_matches(const json_t *tag, const char *want)
{
    char buf[64];
    const char *have = NULL;
    if (!tag || json_is_null(tag) || !want)
        return false;
    if (json_is_string(tag))
        have = json_string_value(tag);
    else if (json_is_true(tag))
        have = "true";
    else if (json_is_false(tag))
        have = "false";
    else if (json_is_integer(tag)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(tag));
        have = buf;
    } else if (json_is_real(tag)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(tag));
        have = buf;
    }
    return have && strcmp(have, want) == 0;
}

/* Python truthiness of a tag value (Patroni's bool(tags.get('noloadbalance'))). */
static bool truthy(const json_t *v)
{
    if (!v)
        return false;
    switch (json_typeof(v)) {
    case JSON_TRUE:
        return true;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return false;
    }
}

bool web_status_fresh(const struct web_status *st, uint64_t now_boot_ms)
{
    if (!st)
        return false;
    return now_boot_ms <= st->boot_ms || now_boot_ms - st->boot_ms <= 2 * web_status_ttl_ms(st);
}

static bool is_leader(const struct web_status *st, uint64_t now)
{
    /* Patroni: without a DCS view in a paused cluster the answer is based on the role. */
    if (st->paused && !st->dcs_ok)
        return web_role_is_primary(st->role) || strcmp(st->role, "standby_leader") == 0;
    return st->leader_until_boot_ms > 0 && now < st->leader_until_boot_ms;
}

static bool is_lagging(const struct web_status *st, const struct web_health_query *q)
{
    if (!q || !q->has_lag || !st->has_optime || st->optime == 0)
        return false;
    int64_t replayed = st->has_replayed ? st->replayed_location : 0;
    /* optime > replayed + lag, without overflowing. */
    return (double)st->optime > (double)replayed + (double)q->max_lag;
}

static bool replica_ok(const struct web_status *st, const struct web_health_query *q)
{
    return strcmp(st->role, "replica") == 0 && strcmp(st->state, "running") == 0 &&
           !truthy(json_object_get(st->tags, "noloadbalance")) && !is_lagging(st, q);
}

static bool tags_ok(const struct web_status *st, const struct web_health_query *q)
{
    if (!q)
        return true;
    for (size_t i = 0; i < q->ntags && i < WEB_MAX_TAG_FILTERS; i++)
        if (!web_tag_matches(json_object_get(st->tags, q->tags[i].key), q->tags[i].value))
            return false;
    return true;
}

/* Whether this node is a synchronous standby per the sync key (needs synchronous mode). */
static bool is_sync_member(const struct web_status *st)
{
    if (!st->sync_mode || !st->sync || !st->name[0])
        return false;
    json_t *list = json_object_get(st->sync, "sync_standby");
    if (json_is_string(list))
        return strcmp(json_string_value(list), st->name) == 0;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        if (json_is_string(m) && strcmp(json_string_value(m), st->name) == 0)
            return true;
    }
    return false;
}

static bool check(const struct web_status *st, enum web_check c, const struct web_health_query *q,
                  uint64_t now)
{
    bool leader = is_leader(st, now);
    bool standby_cluster = strcmp(st->role, "standby_leader") == 0;
    bool primary = leader && !standby_cluster;
    bool standby_leader = leader && standby_cluster;
    switch (c) {
    case WEB_CHECK_PRIMARY:
        return primary;
    case WEB_CHECK_LEADER:
        return leader;
    case WEB_CHECK_STANDBY_LEADER:
        return standby_leader;
    case WEB_CHECK_REPLICA:
        return replica_ok(st, q);
    case WEB_CHECK_READ_ONLY:
        return primary || standby_leader || replica_ok(st, q);
    case WEB_CHECK_SYNC:
        return is_sync_member(st) && replica_ok(st, q);
    case WEB_CHECK_ASYNC:
        return !is_sync_member(st) && replica_ok(st, q);
    case WEB_CHECK_READ_ONLY_SYNC:
        return primary || standby_leader || (is_sync_member(st) && replica_ok(st, q));
    case WEB_CHECK_HEALTH:
        return strcmp(st->state, "running") == 0;
    case WEB_CHECK_LIVENESS: {
        if (st->paused)
            return true;
        uint64_t ttl = web_status_ttl_ms(st);
        uint64_t limit = web_role_is_primary(st->role) || standby_cluster ? ttl : 2 * ttl;
        return now <= st->boot_ms || now - st->boot_ms < limit;
    }
    case WEB_CHECK_READINESS:
        return leader || (strcmp(st->state, "running") == 0 && st->dcs_ok);
    case WEB_CHECK_STATUS:
        return true;
    }
    return false;
}

/* Patroni ignores ?tag_ filters on the leader paths (and liveness/readiness have none). */
static bool uses_tags(enum web_check c)
{
    return c == WEB_CHECK_REPLICA || c == WEB_CHECK_READ_ONLY || c == WEB_CHECK_SYNC ||
           c == WEB_CHECK_ASYNC || c == WEB_CHECK_READ_ONLY_SYNC || c == WEB_CHECK_HEALTH;
}

int web_health_code(const struct web_status *st, enum web_check c, const struct web_health_query *q,
                    uint64_t now_boot_ms)
{
    if (!web_status_fresh(st, now_boot_ms))
        return UNAVAILABLE;
    if (!check(st, c, q, now_boot_ms))
        return UNAVAILABLE;
    return !uses_tags(c) || tags_ok(st, q) ? OK : UNAVAILABLE;
}
