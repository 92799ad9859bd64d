/* Health-check predicates of the Patroni REST API, computed from the latest ha snapshot (pure). */
#ifndef PGW_WEB_HEALTH_H
#define PGW_WEB_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "web/snapshot.h"

enum web_check {
    WEB_CHECK_PRIMARY,        /* / /primary /master /read-write */
    WEB_CHECK_LEADER,         /* /leader */
    WEB_CHECK_STANDBY_LEADER, /* /standby-leader /standby_leader */
    WEB_CHECK_REPLICA,        /* /replica */
    WEB_CHECK_READ_ONLY,      /* /read-only */
    WEB_CHECK_SYNC,           /* /sync /synchronous */
    WEB_CHECK_ASYNC,          /* /async /asynchronous */
    WEB_CHECK_READ_ONLY_SYNC, /* /read-only-sync */
    WEB_CHECK_HEALTH,         /* /health */
    WEB_CHECK_LIVENESS,       /* /liveness */
    WEB_CHECK_READINESS,      /* /readiness */
    WEB_CHECK_STATUS,         /* /patroni: 200 whenever the snapshot is fresh */
};

enum { WEB_MAX_TAG_FILTERS = 16 };

struct web_tag_filter {
    const char *key; /* without the "tag_" prefix */
    const char *value;
};

/* The query parameters a health check reads. */
struct web_health_query {
    bool has_lag;
    int64_t max_lag; /* bytes */
    size_t ntags;
    struct web_tag_filter tags[WEB_MAX_TAG_FILTERS];
};

/* Parses a lag as Patroni's parse_int(value, 'B'): an integer or decimal number, optional
 * spaces, then no unit or one of B, kB, MB, GB, TB (powers of 1024, case-sensitive). */
bool web_parse_lag(const char *s, int64_t *out);

/* Patroni's str(v).lower() of a tag value, compared with the query's value. */
bool web_tag_matches(const json_t *tag, const char *want);

/* A snapshot is fresh while it is at most 2*ttl old; none at all is never fresh. */
bool web_status_fresh(const struct web_status *st, uint64_t now_boot_ms);

/* 200 or 503 for the check, from the snapshot `st` (NULL: none yet) at now_boot_ms. q may be
 * NULL (no lag limit, no tag filter). */
int web_health_code(const struct web_status *st, enum web_check check,
                    const struct web_health_query *q, uint64_t now_boot_ms);

#endif
