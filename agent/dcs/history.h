/* DCS history value: Patroni's list of [timeline, lsn, reason, timestamp, new_leader] lines. */
#ifndef PGW_DCS_HISTORY_H
#define PGW_DCS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/dcs/pyjson.h"

enum { DCS_HISTORY_MAX = 100000 }; /* lines accepted from the DCS */

/* One line of a timeline history file, enriched by Patroni with when and to whom. */
struct dcs_history_line {
    int64_t timeline; /* the timeline that ended (the new one is timeline + 1) */
    int64_t lsn;      /* switch point in bytes */
    char *reason;     /* from the .history file, e.g. "no recovery target specified" */
    char *timestamp;  /* ISO-8601 time of the promotion, or NULL (old 3-item lines) */
    char *new_leader; /* who was promoted, or NULL (3- and 4-item lines) */
};

struct dcs_history {
    size_t n;
    size_t cap;                     /* allocated lines */
    struct dcs_history_line *lines; /* owned */
};

/* Decodes the JSON list. Lines have 3 to 5 items: integer timeline (>= 1) and LSN (>= 0), then
 * strings (a null timestamp or leader reads as absent). "[]" is an empty history. On failure
 * out is empty. Free with dcs_history_free(). */
bool dcs_history_decode(const char *value, size_t len, struct dcs_history *out,
                        struct dcs_err *err);
/* Compact JSON; each line has 3, 4 or 5 items depending on which of timestamp and new_leader
 * are set (a new_leader needs a timestamp). */
char *dcs_history_encode(const struct dcs_history *h, size_t *len, struct dcs_err *err);
void dcs_history_free(struct dcs_history *h);

/* Appends a line (strings copied; timestamp and new_leader may be NULL). False on bad input
 * (timeline < 1, lsn < 0, reason NULL) or allocation failure. */
bool dcs_history_append(struct dcs_history *h, int64_t timeline, int64_t lsn, const char *reason,
                        const char *timestamp, const char *new_leader);
/* Keeps only the last max lines (Patroni's max_timelines_history); max 0 keeps all. */
void dcs_history_truncate(struct dcs_history *h, size_t max);
/* Patroni's Cluster.timeline: last line's timeline + 1, or 1 for an empty history. */
int64_t dcs_history_cluster_timeline(const struct dcs_history *h);

#endif
