/* GET /migrations: the node's migration jobs as JSON (state, progress, rate, ETA, lag, result). */
#include "web/migrations.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/migrate/migrate.h"
#include "agent/settings.h"
#include "platform/log.h"
#include "web/storeref.h"

#define LOG_MODULE "web"

enum { TEXT_CAP = 2048, ETA_MAX_S = 100 * 24 * 3600 };

struct web_migs {
    struct web_storeref store;
    struct store_migration m; /* the row being answered (too big for the stack) */
    struct web_mig_seen seen; /* the newest job as last seen, for its phase's rate */
};

struct web_migs *web_migs_new(const char *state_dir)
{
    struct web_migs *m = calloc(1, sizeof(*m));
    if (!m) {
        log_error("out of memory for the migrations reader");
        return NULL;
    }
    web_storeref_init(&m->store, state_dir);
    return m;
}

void web_migs_free(struct web_migs *m)
{
    if (!m)
        return;
    web_storeref_close(&m->store);
    free(m);
}

static bool finished_state(const char *state)
{
    return strcmp(state, "done") == 0 || strcmp(state, "failed") == 0;
}

void web_mig_pick_basis(struct web_mig_seen *seen, const struct store_migration *m,
                        struct web_mig_basis *out)
{
    struct web_mig_basis now = {m->updated_ms, m->bytes_done, m->tables_done};
    if (seen->id != m->id) {
        seen->id = m->id;
        snprintf(seen->state, sizeof(seen->state), "%s", m->state);
        seen->at = now;
        seen->from_start = false;
    } else if (strcmp(seen->state, m->state) != 0) {
        snprintf(seen->state, sizeof(seen->state), "%s", m->state);
        seen->at = now;
        seen->from_start = true;
    }
    bool watched = seen->from_start || m->updated_ms - seen->at.ms >= WEB_MIGS_OBSERVE_MS;
    *out = watched ? seen->at : (struct web_mig_basis){m->started_ms, 0, 0};
}

/* Rate (bytes/s, <0 unknown) and seconds left (<0 unknown) of a running job from basis to its
 * last update. The ETA counts what the progress bar counts: bytes, or tables without a byte
 * total. */
static void rate_eta(const struct store_migration *m, const struct web_mig_basis *b, double *rate,
                     int64_t *eta)
{
    *rate = -1;
    *eta = -1;
    int64_t win = m->updated_ms - b->ms;
    if (win < WEB_MIGS_RATE_MIN_MS)
        return;
    if ((m->bytes_total > 0 || m->bytes_done > 0) && m->bytes_done >= b->bytes)
        *rate = (double)(m->bytes_done - b->bytes) * 1000.0 / (double)win;
    int64_t done, base, total;
    if (m->bytes_total > 0) {
        done = m->bytes_done, base = b->bytes, total = m->bytes_total;
    } else if (m->tables_total > 0) {
        done = m->tables_done, base = b->tables, total = m->tables_total;
    } else {
        return;
    }
    if (done >= total) {
        *eta = 0;
    } else if (done > base) {
        double left = ceil((double)(total - done) * (double)win / (double)(done - base) / 1000.0);
        *eta = left > ETA_MAX_S ? ETA_MAX_S : (int64_t)left;
    }
}

static int percent(const struct store_migration *m)
{
    if (strcmp(m->state, "done") == 0)
        return 100;
    struct mig_progress p = {
        .bytes_done = (uint64_t)(m->bytes_done > 0 ? m->bytes_done : 0),
        .bytes_total = (uint64_t)(m->bytes_total > 0 ? m->bytes_total : 0),
        .tables_done = (uint64_t)(m->tables_done > 0 ? m->tables_done : 0),
        .tables_total = (uint64_t)(m->tables_total > 0 ? m->tables_total : 0),
    };
    return (int)floor(mig_progress_fraction(&p) * 100.0);
}

/* The verification summary of a report ({"ok", "tables", "rows", ...}), or JSON null. */
static json_t *verification(const char *report)
{
    json_t *r = json_loads(report, 0, NULL);
    json_t *ok = json_object_get(r, "ok");
    if (!json_is_boolean(ok)) {
        json_decref(r);
        return json_null();
    }
    size_t diffs = json_array_size(json_object_get(r, "differences"));
    json_int_t more = json_integer_value(json_object_get(r, "more_differences"));
    json_t *o = json_pack("{s:O,s:I,s:I,s:b,s:I}", "ok", ok, "tables",
                          json_integer_value(json_object_get(r, "tables")), "rows",
                          json_integer_value(json_object_get(r, "rows")), "checksums",
                          json_is_true(json_object_get(r, "checksums")), "differences",
                          (json_int_t)diffs + (more > 0 ? more : 0));
    json_decref(r);
    return o ? o : json_null();
}

static json_t *num_or_null(bool known, json_int_t v)
{
    return known ? json_integer(v) : json_null();
}

json_t *web_mig_json(const struct store_migration *m, bool alive, const struct web_mig_basis *basis,
                     int64_t now_wall_ms)
{
    char source[TEXT_CAP], error[TEXT_CAP];
    log_redact(m->source, source, sizeof(source)); /* stored without password; kept so */
    log_redact(m->error, error, sizeof(error));
    bool finished = finished_state(m->state);
    bool running = !finished && (alive || mig_job_online_lives(m));
    bool online = strcmp(m->mode, "online") == 0;
    struct web_mig_basis start = {m->started_ms, 0, 0};
    double rate = -1;
    int64_t eta = -1;
    if (running && alive) { /* without a process, the counters stand still */
        rate_eta(m, basis ? basis : &start, &rate, &eta);
    } else if (strcmp(m->state, "done") == 0 && m->finished_ms > m->started_ms) {
        rate = (double)m->bytes_done * 1000.0 / (double)(m->finished_ms - m->started_ms);
        eta = 0;
    }
    int64_t end = finished && m->finished_ms ? m->finished_ms
                  : running                  ? now_wall_ms
                                             : m->updated_ms;
    json_t *o = json_pack(
        "{s:I,s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:I,s:s,s:s,s:s,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:i}",
        "id", (json_int_t)m->id, "mode", m->mode, "state", mig_job_shown_state(m, alive), "phase",
        m->state, "running", running, "alive", !finished && alive, "detached", running && !alive,
        "finished", finished, "pid", (json_int_t)m->pid, "source", source, "target_db",
        m->target_db, "staging_db", m->staging_db, "started_ms", (json_int_t)m->started_ms,
        "updated_ms", (json_int_t)m->updated_ms, "finished_ms",
        num_or_null(m->finished_ms > 0, (json_int_t)m->finished_ms), "elapsed_ms",
        (json_int_t)(end > m->started_ms ? end - m->started_ms : 0), "bytes_done",
        (json_int_t)m->bytes_done, "bytes_total", (json_int_t)m->bytes_total, "tables_done",
        (json_int_t)m->tables_done, "tables_total", (json_int_t)m->tables_total, "percent",
        percent(m));
    if (!o)
        return NULL;
    json_object_set_new(o, "rate_bps", rate >= 0 ? json_integer((json_int_t)rate) : json_null());
    json_object_set_new(o, "eta_s", num_or_null(eta >= 0, (json_int_t)eta));
    json_object_set_new(o, "lag_bytes", num_or_null(online && m->lag_bytes >= 0, m->lag_bytes));
    json_object_set_new(o, "cutover_ms", num_or_null(online && m->cutover_ms >= 0, m->cutover_ms));
    json_object_set_new(o, "error", json_string(error));
    json_object_set_new(o, "verification", verification(m->report));
    return o;
}

/* A decimal integer in [1, WEB_MIGS_MAX_LIMIT]; NULL gives the default. */
static bool parse_limit(const char *s, int *out)
{
    *out = WEB_MIGS_DEFAULT_LIMIT;
    if (!s)
        return true;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || errno != 0 || *end != '\0' || v < 1 || v > WEB_MIGS_MAX_LIMIT)
        return false;
    *out = (int)v;
    return true;
}

void web_migs_get(struct web_migs *m, const char *limit, int64_t now_wall_ms, struct web_resp *out)
{
    int max;
    if (!parse_limit(limit, &max)) {
        web_resp_error(out, 400, "limit must be an integer from 1 to 20");
        return;
    }
    struct store *st = web_storeref_get(&m->store, "migration", out);
    if (!st)
        return;
    int64_t ids[WEB_MIGS_MAX_LIMIT];
    int n = store_migration_ids(st, ids, max);
    if (n < 0) {
        web_storeref_failed(&m->store, "migration", out);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; list && i < n; i++) {
        if (!store_migration_get(st, ids[i], &m->m))
            continue; /* gone since, or unreadable (logged): the other jobs are still shown */
        bool alive = !finished_state(m->m.state) && mig_pid_alive(m->m.pid);
        struct web_mig_basis b;
        if (i == 0)
            web_mig_pick_basis(&m->seen, &m->m, &b);
        json_t *job = web_mig_json(&m->m, alive, i == 0 ? &b : NULL, now_wall_ms);
        if (!job || json_array_append_new(list, job) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    json_t *body =
        list ? json_pack("{s:o,s:I}", "migrations", list, "server_ms", (json_int_t)now_wall_ms)
             : NULL;
    if (!body || !web_resp_json(out, 200, body)) {
        log_error("out of memory building the migrations answer");
        web_resp_error(out, 500, "out of memory");
    }
    json_decref(body);
}
