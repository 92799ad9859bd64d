/* DCS history value: Patroni's list of [timeline, lsn, reason, timestamp, new_leader] lines. */
#include "agent/dcs/history.h"

#include <stdlib.h>
#include <string.h>

static void line_free(struct dcs_history_line *l)
{
    free(l->reason);
    free(l->timestamp);
    free(l->new_leader);
    memset(l, 0, sizeof(*l));
}

void dcs_history_free(struct dcs_history *h)
{
    for (size_t i = 0; h->lines && i < h->n; i++)
        line_free(&h->lines[i]);
    free(h->lines);
    h->lines = NULL;
    h->n = 0;
    h->cap = 0;
}

static bool dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return true;
    *out = strdup(s);
    return *out != NULL;
}

bool dcs_history_append(struct dcs_history *h, int64_t timeline, int64_t lsn, const char *reason,
                        const char *timestamp, const char *new_leader)
{
    struct dcs_history_line l = {.timeline = timeline, .lsn = lsn}, *grown;
    if (timeline < 1 || lsn < 0 || !reason || h->n >= DCS_HISTORY_MAX)
        return false;
    if (!dup_opt(reason, &l.reason) || !dup_opt(timestamp, &l.timestamp) ||
        !dup_opt(new_leader, &l.new_leader))
        goto fail;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        grown = realloc(h->lines, cap * sizeof(*h->lines));
        if (!grown)
            goto fail;
        h->lines = grown;
        h->cap = cap;
    }
    h->lines[h->n++] = l;
    return true;
fail:
    line_free(&l);
    return false;
}

void dcs_history_truncate(struct dcs_history *h, size_t max)
{
    if (max == 0 || h->n <= max)
        return;
    size_t drop = h->n - max;
    for (size_t i = 0; i < drop; i++)
        line_free(&h->lines[i]);
    memmove(h->lines, h->lines + drop, max * sizeof(*h->lines));
    h->n = max;
}

int64_t dcs_history_cluster_timeline(const struct dcs_history *h)
{
    return h->n ? h->lines[h->n - 1].timeline + 1 : 1;
}

/* Reads an optional string item (absent past the end, or null). */
static bool opt_str(const json_t *line, size_t i, const char **out, size_t idx, struct dcs_err *err)
{
    const json_t *v = json_array_get(line, i);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return dcs_errf(err, "history: line %zu item %zu must be a string, not %s", idx, i,
                        pyjson_type_name(v));
    *out = json_string_value(v);
    return true;
}

bool dcs_history_decode(const char *value, size_t len, struct dcs_history *out, struct dcs_err *err)
{
    json_t *root, *line;
    size_t idx;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    root = pyjson_load(value, len, "history", err);
    if (!root)
        return false;
    if (!json_is_array(root)) {
        dcs_errf(err, "history: value must be a JSON list, not %s", pyjson_type_name(root));
        goto out;
    }
    if (json_array_size(root) > DCS_HISTORY_MAX) {
        dcs_errf(err, "history: more than %d lines", DCS_HISTORY_MAX);
        goto out;
    }
    json_array_foreach(root, idx, line)
    {
        const json_t *tl = json_array_get(line, 0), *lsn = json_array_get(line, 1);
        const char *reason, *ts, *leader;
        if (!json_is_array(line) || json_array_size(line) < 3 || json_array_size(line) > 5) {
            dcs_errf(err, "history: line %zu must be a list of 3 to 5 items", idx);
            goto out;
        }
        if (!json_is_integer(tl) || json_integer_value(tl) < 1 || !json_is_integer(lsn) ||
            json_integer_value(lsn) < 0) {
            dcs_errf(err, "history: line %zu must start with a timeline >= 1 and an LSN >= 0", idx);
            goto out;
        }
        if (!opt_str(line, 2, &reason, idx, err) || !opt_str(line, 3, &ts, idx, err) ||
            !opt_str(line, 4, &leader, idx, err))
            goto out;
        if (!dcs_history_append(out, json_integer_value(tl), json_integer_value(lsn),
                                reason ? reason : "", ts, leader)) {
            dcs_errf(err, "history: out of memory");
            goto out;
        }
    }
    ok = true;
out:
    if (!ok)
        dcs_history_free(out);
    json_decref(root);
    return ok;
}

char *dcs_history_encode(const struct dcs_history *h, size_t *len, struct dcs_err *err)
{
    json_t *list = json_array();
    char *text = NULL;

    for (size_t i = 0; list && i < h->n; i++) {
        const struct dcs_history_line *l = &h->lines[i];
        json_t *line;
        if (l->timeline < 1 || l->lsn < 0 || !l->reason || (l->new_leader && !l->timestamp)) {
            dcs_errf(err, "history: line %zu is invalid", i);
            goto out;
        }
        line = json_pack("[IIs]", (json_int_t)l->timeline, (json_int_t)l->lsn, l->reason);
        if (line && ((l->timestamp && json_array_append_new(line, json_string(l->timestamp))) ||
                     (l->new_leader && json_array_append_new(line, json_string(l->new_leader))))) {
            json_decref(line);
            line = NULL;
        }
        if (!line || json_array_append_new(list, line) != 0) { /* append steals line */
            dcs_errf(err, "history: out of memory or value not representable");
            goto out;
        }
    }
    if (list)
        text = pyjson_dump(list, len);
    if (!text)
        dcs_errf(err, "history: out of memory or value not representable");
out:
    json_decref(list);
    return text;
}
