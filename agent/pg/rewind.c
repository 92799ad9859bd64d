/* Rejoin helpers: timeline history, the divergence decision, and pg_rewind from a new primary. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- timeline history ---- */

int pg_timeline_history_parse(const char *text, size_t len, struct pg_tl_switch **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    struct pg_tl_switch *v = NULL;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        char line[256];
        size_t ll = (size_t)(le - p);
        if (ll >= sizeof(line))
            ll = sizeof(line) - 1;
        memcpy(line, p, ll);
        line[ll] = '\0';
        p = nl ? nl + 1 : end;
        char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        char *e;
        errno = 0;
        unsigned long tli = strtoul(s, &e, 10);
        if (errno || e == s || tli == 0 || tli > UINT32_MAX || (*e != '\t' && *e != ' '))
            goto bad;
        s = e;
        while (*s == '\t' || *s == ' ')
            s++;
        size_t tl = strcspn(s, " \t\r");
        char lsn[PG_LSN_STRLEN];
        if (tl == 0 || tl >= sizeof(lsn))
            goto bad;
        memcpy(lsn, s, tl);
        lsn[tl] = '\0';
        uint64_t sp;
        if (pg_lsn_parse(lsn, &sp) < 0)
            goto bad;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct pg_tl_switch *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                free(v);
                return -ENOMEM;
            }
            v = nv;
        }
        v[(*n)++] = (struct pg_tl_switch){.tli = (uint32_t)tli, .switchpoint = sp};
    }
    *out = v;
    return 0;
bad:
    free(v);
    *n = 0;
    return -EBADMSG;
}

/* ---- the decision ---- */

static bool say(char *why, size_t cap, bool verdict, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool say(char *why, size_t cap, bool verdict, const char *fmt, ...)
{
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return verdict;
}

bool pg_diverged(const struct pg_local_position *local, uint32_t primary_tli,
                 const struct pg_tl_switch *hist, size_t n, char *why, size_t why_cap)
{
    char a[PG_LSN_STRLEN], b[PG_LSN_STRLEN];
    if (local->timeline > primary_tli)
        return say(why, why_cap, true, "local timeline %u is ahead of the primary's %u",
                   local->timeline, primary_tli);
    if (local->timeline == primary_tli)
        return say(why, why_cap, false, "same timeline %u as the primary", primary_tli);
    for (size_t i = 0; i < n; i++) {
        const struct pg_tl_switch *h = &hist[i];
        if (h->tli == local->timeline) {
            pg_lsn_format(h->switchpoint, b, sizeof(b));
            if (local->in_recovery)
                return say(why, why_cap, local->lsn > h->switchpoint,
                           "standby at %s on timeline %u, which the primary left at %s",
                           pg_lsn_format(local->lsn, a, sizeof(a)), h->tli, b);
            if (!local->checkpoint_end)
                return say(why, why_cap, true,
                           "end of the local shutdown checkpoint unknown; timeline %u ended at "
                           "%s on the primary",
                           h->tli, b);
            return say(why, why_cap, local->checkpoint_end != h->switchpoint,
                       "local shutdown checkpoint ends at %s, timeline %u ended at %s on the "
                       "primary",
                       pg_lsn_format(local->checkpoint_end, a, sizeof(a)), h->tli, b);
        }
        if (h->tli > local->timeline)
            return say(why, why_cap, true, "local timeline %u is not in the primary's history",
                       local->timeline);
    }
    return say(why, why_cap, true, "local timeline %u is not in the history of timeline %u",
               local->timeline, primary_tli);
}

/* ---- where the local WAL ends ---- */

static void checkpoint_end(const struct pg_instance *pg, uint32_t tli, uint64_t lsn, uint64_t *end)
{
    *end = 0;
    char tool[PGI_PATH], wal[PGI_PATH], tlis[16], lsns[PG_LSN_STRLEN];
    if (pgi_tool(pg, "pg_waldump", tool, sizeof(tool)) < 0 ||
        pgi_path(wal, sizeof(wal), pg->data_dir, "pg_wal") < 0)
        return;
    snprintf(tlis, sizeof(tlis), "%u", tli);
    const char *argv[] = {tool, "-p", wal, "-t", tlis, "-s", pg_lsn_format(lsn, lsns, sizeof(lsns)),
                          "-n", "2",  NULL};
    struct spawn_result r;
    struct pg_error e;
    (void)pgi_run(pg, "pg_waldump", argv, NULL, NULL, 30000, true, &r, &e);
    if (r.output && pg_waldump_checkpoint_end_parse(r.output, lsn, end) < 0) {
        char tail[256];
        pgi_tail(pg, r.output, 2, tail, sizeof(tail));
        pgi_log_safe(tail);
        log_warn("cannot tell where the shutdown checkpoint ends", "lsn=%s out=\"%s\"", lsns, tail);
    }
    spawn_result_free(&r);
}

static int local_position(const struct pg_instance *pg, struct pg_controldata *cd,
                          struct pg_local_position *out, struct pg_error *err)
{
    memset(out, 0, sizeof(*out));
    struct pg_postmaster pm;
    if (pg_postmaster_find(pg, &pm, NULL) == 0)
        return pgi_fail(err, "local position", -EBUSY, "PostgreSQL is running (pid %d)",
                        (int)pm.pid);
    int rc = pg_controldata_read(pg, cd, err);
    if (rc < 0)
        return rc;
    if (cd->state != PG_STATE_SHUT_DOWN && cd->state != PG_STATE_SHUT_DOWN_IN_RECOVERY)
        return pgi_fail(err, "local position", -EAGAIN,
                        "cluster state is \"%s\": crash recovery first",
                        pg_cluster_state_name(cd->state));
    if (cd->state == PG_STATE_SHUT_DOWN_IN_RECOVERY && cd->min_recovery_lsn &&
        cd->min_recovery_tli) {
        out->in_recovery = true;
        out->timeline = cd->min_recovery_tli;
        out->lsn = cd->min_recovery_lsn;
        return 0;
    }
    out->timeline = cd->timeline;
    out->lsn = cd->checkpoint_lsn;
    checkpoint_end(pg, cd->timeline, cd->checkpoint_lsn, &out->checkpoint_end);
    return 0;
}

int pg_local_position_read(const struct pg_instance *pg, struct pg_local_position *out,
                           struct pg_error *err)
{
    struct pg_controldata cd;
    return local_position(pg, &cd, out, err);
}

/* Asks the primary for its identity and history and compares with local. */
static int diverged_from(const struct pg_instance *pg, const char *host, uint16_t port,
                         uint64_t sysid, const struct pg_local_position *local, bool *diverged,
                         char *why, size_t why_cap, struct pg_error *err)
{
    struct pg_peer_identity id;
    struct pg_tl_switch *hist = NULL;
    size_t n = 0;
    int rc = pg_peer_identify(pg, host, port, &id, &hist, &n, err);
    if (rc < 0)
        return rc;
    if (id.system_id != sysid) {
        free(hist);
        return pgi_fail(err, "divergence check", -EXDEV,
                        "%s:%u is database system %" PRIu64 ", the local data is %" PRIu64, host,
                        (unsigned)port, id.system_id, sysid);
    }
    char reason[256];
    *diverged = pg_diverged(local, id.timeline, hist, n, reason, sizeof(reason));
    free(hist);
    if (why && why_cap)
        snprintf(why, why_cap, "%s", reason);
    log_info("divergence checked", "primary=%s:%u diverged=%s why=\"%s\"", host, (unsigned)port,
             *diverged ? "yes" : "no", reason);
    return 0;
}

int pg_check_diverged(const struct pg_instance *pg, const char *host, uint16_t port, bool *diverged,
                      char *why, size_t why_cap, struct pg_error *err)
{
    struct pg_controldata cd;
    struct pg_local_position local;
    int rc = local_position(pg, &cd, &local, err);
    if (rc < 0)
        return rc;
    return diverged_from(pg, host, port, cd.system_id, &local, diverged, why, why_cap, err);
}

int pg_check_diverged_running(const struct pg_instance *pg, const char *host, uint16_t port,
                              bool *diverged, char *why, size_t why_cap, struct pg_error *err)
{
    struct pg_status st;
    int rc = pg_status_query(pg, &st, err);
    if (rc < 0)
        return rc;
    if (!st.in_recovery)
        return pgi_fail(err, "divergence check", -EINVAL, "PostgreSQL is not a standby");
    const struct pg_local_position local = {
        .timeline = st.timeline, .lsn = st.wal_lsn, .in_recovery = true};
    return diverged_from(pg, host, port, st.system_id, &local, diverged, why, why_cap, err);
}

/* ---- pg_rewind ---- */

/* pg_rewind reads the source's timeline from its control file, which a fresh primary only
 * updates at its first checkpoint after promotion: ask for that checkpoint when missing. */
static int source_checkpoint(const struct pg_instance *pg, const char *host, uint16_t port,
                             int timeout_ms, struct pg_error *err)
{
    int rc = -EIO;
    PGconn *c = pgi_connect_peer(pg, host, port, pg->superuser, false, &rc, err);
    if (!c)
        return rc;
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    PGresult *r;
    rc = pgi_exec(pg, c, "source timeline",
                  "SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint()),"
                  " CASE WHEN pg_is_in_recovery() THEN 0 ELSE ('x' || substr(pg_walfile_name("
                  "pg_current_wal_lsn()), 1, 8))::bit(32)::int END",
                  0, NULL, deadline, NULL, &r, err);
    uint64_t ckpt = 0, cur = 0;
    bool need = rc == 0 && !pgi_get_bool(r, 0, 0) && pgi_get_u64(r, 0, 1, &ckpt) &&
                pgi_get_u64(r, 0, 2, &cur) && ckpt < cur;
    PQclear(r);
    if (need) {
        log_info("checkpoint on the source before pg_rewind",
                 "source=%s:%u control_tli=%" PRIu64 " tli=%" PRIu64, host, (unsigned)port, ckpt,
                 cur);
        rc = pgi_exec(pg, c, "source checkpoint", "CHECKPOINT", 0, NULL, deadline, NULL, &r, err);
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

struct saved_file {
    const char *name;
    char *data;
    size_t len;
};

int pg_rewind_run(const struct pg_instance *pg, const char *host, uint16_t port,
                  const struct pg_conf *conf, int timeout_ms, struct pg_error *err)
{
    const char *step = "pg_rewind";
    if (timeout_ms <= 0)
        timeout_ms = 600000;
    int rc = pg_run_dir_prepare(pg, err);
    if (rc == 0)
        rc = pg_ensure_clean_shutdown(pg, timeout_ms, err);
    if (rc == 0)
        rc = source_checkpoint(pg, host, port, timeout_ms, err);
    if (rc < 0)
        return rc;
    char tool[PGI_PATH], target[PGI_PATH + 32], ci[2048], source[2048 + 32];
    if (pgi_tool(pg, "pg_rewind", tool, sizeof(tool)) < 0)
        return pgi_fail(err, step, -ENAMETOOLONG, "bin_dir is too long");
    rc = pg_conninfo_render(pg, host, port, pg->superuser, "postgres", "pgwarden", ci, sizeof(ci));
    if (rc < 0)
        return pgi_fail(err, step, rc, "cannot build the source conninfo");
    snprintf(target, sizeof(target), "--target-pgdata=%s", pg->data_dir);
    snprintf(source, sizeof(source), "--source-server=%s", ci);

    /* pg_rewind copies the source's configuration files: keep ours. */
    struct saved_file saved[] = {{"postgresql.conf", NULL, 0}, {"pg_ident.conf", NULL, 0}};
    enum { NSAVED = sizeof(saved) / sizeof(saved[0]) };
    for (size_t i = 0; i < NSAVED; i++) {
        char path[PGI_PATH];
        if (pgi_path(path, sizeof(path), pg->data_dir, saved[i].name) == 0)
            (void)pgi_read_file(path, 16 << 20, &saved[i].data, &saved[i].len);
    }
    const char *argv[] = {tool, target, source, NULL};
    log_info("rewinding", "data_dir=%s source=%s:%u", pg->data_dir, host, (unsigned)port);
    struct spawn_result r;
    rc = pgi_run(pg, step, argv, NULL, NULL, timeout_ms, false, &r, err);
    spawn_result_free(&r);
    for (size_t i = 0; i < NSAVED; i++) {
        char path[PGI_PATH];
        if (saved[i].data && pgi_path(path, sizeof(path), pg->data_dir, saved[i].name) == 0) {
            int wrc = pgi_write_file(path, saved[i].data, saved[i].len, 0600);
            if (wrc < 0 && rc == 0)
                rc = pgi_fail(err, step, wrc, "cannot restore %s: %s", path, strerror(-wrc));
        }
        free(saved[i].data);
    }
    if (rc < 0)
        return rc;
    log_info("rewind done", "data_dir=%s", pg->data_dir);
    return pg_conf_apply(pg, conf, err);
}
