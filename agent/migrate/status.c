/* `pgwarden migrate status`: the last (or a given) migration job from the node's SQLite store. */
#include "agent/migrate/mig_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/settings.h"
#include "agent/store.h"
#include "platform/config.h"

#define DEFAULT_CONFIG "/etc/pgwarden/pgwarden.conf"

extern char **environ;

static char *iso(int64_t ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return out;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

/* The state to show: a job whose process is gone without finishing was interrupted. */
static const char *shown_state(const struct store_migration *m)
{
    return mig_job_shown_state(m, mig_pid_alive(m->pid));
}

static void print_json(const struct store_migration *m)
{
    json_error_t jerr;
    json_t *report = json_loads(m->report, 0, &jerr);
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:o}", "id",
        (json_int_t)m->id, "state", shown_state(m), "phase", m->state, "source", m->source,
        "target_db", m->target_db, "staging_db", m->staging_db, "pid", (json_int_t)m->pid,
        "started_ms", (json_int_t)m->started_ms, "updated_ms", (json_int_t)m->updated_ms,
        "finished_ms", (json_int_t)m->finished_ms, "bytes_done", (json_int_t)m->bytes_done,
        "bytes_total", (json_int_t)m->bytes_total, "tables_done", (json_int_t)m->tables_done,
        "tables_total", (json_int_t)m->tables_total, "error", m->error, "report",
        report ? report : json_object());
    if (o) {
        json_object_set_new(o, "mode", json_string(m->mode));
        json_object_set_new(o, "lag_bytes",
                            m->lag_bytes >= 0 ? json_integer(m->lag_bytes) : json_null());
        json_object_set_new(o, "cutover_ms",
                            m->cutover_ms >= 0 ? json_integer(m->cutover_ms) : json_null());
        json_object_set_new(o, "replication", json_string(m->repl_name));
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
}

static void print_text(const struct store_migration *m)
{
    char a[40], b[40], c[32], d[32];
    const char *state = shown_state(m);
    printf("migration %" PRId64 ": %s\n", m->id, state);
    printf("  mode      %s\n", m->mode);
    printf("  source    %s\n", m->source);
    printf("  target    %s%s%s%s\n", m->target_db, m->staging_db[0] ? " (staging database " : "",
           m->staging_db, m->staging_db[0] ? ")" : "");
    printf("  started   %s   updated %s   finished %s\n", iso(m->started_ms, a, sizeof(a)),
           iso(m->updated_ms, b, sizeof(b)),
           m->finished_ms ? iso(m->finished_ms, c, sizeof(c)) : "-");
    printf("  progress  %s: %s/%s, %" PRId64 "/%" PRId64 " tables\n", m->state,
           mig_fmt_bytes((uint64_t)(m->bytes_done > 0 ? m->bytes_done : 0), c, sizeof(c)),
           mig_fmt_bytes((uint64_t)(m->bytes_total > 0 ? m->bytes_total : 0), d, sizeof(d)),
           m->tables_done, m->tables_total);
    bool online = strcmp(m->mode, "online") == 0;
    if (online && m->repl_name[0])
        printf("  replication %s (publication on the source, subscription in the cluster)\n",
               m->repl_name);
    if (online && (strcmp(m->state, "copy") == 0 || strcmp(m->state, "streaming") == 0)) {
        char lag[48];
        printf("  lag       %s (as of %s)%s\n", mig_fmt_lag(m->lag_bytes, lag, sizeof(lag)),
               iso(m->updated_ms, b, sizeof(b)),
               mig_pid_alive(m->pid) ? "" : "; the --online process is not running (detached)");
        printf("  next      stop the application's writes, then `pgwarden migrate cutover --id "
               "%" PRId64 "` (or `pgwarden migrate abort --id %" PRId64 "`)\n",
               m->id, m->id);
    }
    if (online && m->cutover_ms >= 0)
        printf("  cutover   %.2f s (the application's downtime)\n", (double)m->cutover_ms / 1000);
    if (online && !mig_pid_alive(m->pid) &&
        (strcmp(m->state, "cutover") == 0 || strcmp(m->state, "verify") == 0 ||
         strcmp(m->state, "finish") == 0))
        printf("  note      the cutover (pid %" PRId64 ") ended without finishing: run `pgwarden "
               "migrate cutover --id %" PRId64 "` again\n",
               m->pid, m->id);
    if (strcmp(state, "interrupted") == 0)
        printf("  note      the migrate process (pid %" PRId64
               ") ended without finishing; the next `pgwarden migrate` marks it failed and "
               "drops %s\n",
               m->pid, m->staging_db[0] ? m->staging_db : "its staging database");
    else if (!m->finished_ms)
        printf("  running   in process %" PRId64 "\n", m->pid);
    if (m->error[0])
        printf("  error     %s\n", m->error);
    if (strcmp(m->report, "{}") != 0)
        printf("  report    %s\n", m->report);
}

int mig_status_main(const struct mig_opts *o)
{
    const char *path = o->config ? o->config : getenv("PGWARDEN_CONFIG");
    if (!path)
        path = DEFAULT_CONFIG;
    struct cfg_errors *errs = calloc(1, sizeof(*errs));
    struct pgw_config *cfg = calloc(1, sizeof(*cfg));
    struct store_migration *m = calloc(1, sizeof(*m));
    int code = MIG_EXIT_FAILED;
    struct store *st = NULL;
    char err[1024];
    if (!errs || !cfg || !m) {
        fprintf(stderr, "pgwarden migrate status: out of memory\n");
        goto out;
    }
    if (!settings_load(path, environ, cfg, errs)) {
        cfg_errors_print(errs, stderr);
        code = MIG_EXIT_CONFIG;
        goto out;
    }
    st = store_open(cfg->node.state_dir, err, sizeof(err));
    if (!st) {
        fprintf(stderr, "pgwarden migrate status: cannot open the node's store: %s\n", err);
        goto out;
    }
    if (!store_migration_get(st, o->id, m)) {
        if (o->id)
            fprintf(stderr, "pgwarden migrate status: no migration %lld\n", o->id);
        else
            fprintf(stderr, "pgwarden migrate status: no migration has run on this node\n");
        goto out;
    }
    if (o->json)
        print_json(m);
    else
        print_text(m);
    code = 0;
out:
    store_close(st);
    free(errs);
    free(cfg);
    free(m);
    return code;
}
