/* The dashboard's samples reader: metric series from the samples table of the node's SQLite. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agent/settings.h"
#include "agent/store.h"
#include "platform/log.h"
#include "web/dash.h"
#include "web/migrations.h"

#define LOG_MODULE "web"

enum { BUSY_TIMEOUT_MS = 200, METRIC_MAX = 63 };

struct web_dash {
    char path[PGW_PATH_MAX + 32];
    sqlite3 *db;           /* read-only, opened on the first request; NULL after a failure */
    struct web_migs *migs; /* the migration jobs (GET /migrations) */
};

struct web_dash *web_dash_new(const char *state_dir)
{
    struct web_dash *d = calloc(1, sizeof(*d));
    if (!d) {
        log_error("out of memory for the samples reader");
        return NULL;
    }
    snprintf(d->path, sizeof(d->path), "%s/%s", state_dir ? state_dir : ".", STORE_DB_NAME);
    d->migs = web_migs_new(state_dir);
    if (!d->migs) {
        free(d);
        return NULL;
    }
    return d;
}

struct web_migs *web_dash_migs(const struct web_dash *d)
{
    return d->migs;
}

static void close_db(struct web_dash *d)
{
    if (d->db)
        sqlite3_close_v2(d->db);
    d->db = NULL;
}

void web_dash_free(struct web_dash *d)
{
    if (!d)
        return;
    close_db(d);
    web_migs_free(d->migs);
    free(d);
}

/* [a-z0-9_.] names (what ha writes); also keeps odd bytes out of the answer. */
static bool name_ok(const char *s, size_t max, bool allow_dash)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              (allow_dash && (c == '-' || (c >= 'A' && c <= 'Z')))))
            return false;
    }
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* The query: false (answer in out) on a bad parameter. */
struct samples_q {
    const char *metric, *member;
    int64_t since;
};

static bool parse_query(const struct web_request *rq, int64_t now, struct samples_q *q,
                        struct web_resp *out)
{
    q->metric = web_query_get(rq, "metric");
    q->member = web_query_get(rq, "member");
    if (!q->metric || !name_ok(q->metric, METRIC_MAX, false)) {
        web_resp_error(out, 400, "metric is required: 1 to 63 of a-z, 0-9, '_' and '.'");
        return false;
    }
    if (q->member && !name_ok(q->member, 63, true)) {
        web_resp_error(out, 400, "member must be a member name");
        return false;
    }
    const char *since = web_query_get(rq, "since_ms");
    q->since = now - 3600 * 1000;
    if (since && !parse_i64(since, &q->since)) {
        web_resp_error(out, 400, "since_ms must be an epoch time in milliseconds");
        return false;
    }
    if (q->since < now - WEB_DASH_SAMPLES_WINDOW_MS)
        q->since = now - WEB_DASH_SAMPLES_WINDOW_MS;
    return true;
}

static bool open_db(struct web_dash *d)
{
    if (d->db)
        return true;
    int rc = sqlite3_open_v2(d->path, &d->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_debug("samples store not readable", "path=%s err=\"%s\"", d->path,
                  d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
        close_db(d);
        return false;
    }
    sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
    return true;
}

/* Appends the rows to series ({member: [[ts, v], ...]}). False when the table cannot be read
 * (absent: an older store, or ha writes no samples yet). */
static bool read_rows(struct web_dash *d, const struct samples_q *q, json_t *series)
{
    static const char sql[] = "SELECT member, ts_ms, value FROM samples WHERE metric = ?1 AND "
                              "ts_ms >= ?2 AND (?3 IS NULL OR member = ?3) ORDER BY ts_ms "
                              "LIMIT ?4";
    sqlite3_stmt *stmt = NULL;
    if (!open_db(d))
        return false;
    if (sqlite3_prepare_v2(d->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        log_debug("samples not readable", "err=\"%s\"", sqlite3_errmsg(d->db));
        close_db(d); /* reopened next time: the schema may have been created since */
        return false;
    }
    sqlite3_bind_text(stmt, 1, q->metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, q->since);
    if (q->member)
        sqlite3_bind_text(stmt, 3, q->member, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(stmt, 3);
    sqlite3_bind_int(stmt, 4, WEB_DASH_SAMPLES_MAX);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *member = (const char *)sqlite3_column_text(stmt, 0);
        json_t *list = json_object_get(series, member ? member : "");
        if (!list) {
            list = json_array();
            json_object_set_new(series, member ? member : "", list);
        }
        json_array_append_new(list, json_pack("[I,f]", (json_int_t)sqlite3_column_int64(stmt, 1),
                                              sqlite3_column_double(stmt, 2)));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) {
        log_debug("samples read failed", "err=\"%s\"", sqlite3_errmsg(d->db));
        close_db(d);
        return false;
    }
    return true;
}

void web_dash_samples(struct web_dash *d, const struct web_request *rq, int64_t now_wall_ms,
                      struct web_resp *out)
{
    struct samples_q q;
    if (!parse_query(rq, now_wall_ms, &q, out))
        return;
    json_t *series = json_object();
    bool ok = series && read_rows(d, &q, series);
    json_t *o = json_pack("{s:s,s:I,s:b,s:o}", "metric", q.metric, "since_ms", (json_int_t)q.since,
                          "available", ok, "series", series ? series : json_object());
    if (!o || !web_resp_json(out, 200, o))
        web_resp_error(out, 500, "out of memory");
    json_decref(o);
}
