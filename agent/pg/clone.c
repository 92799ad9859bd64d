/* Replicas: clone a primary with pg_basebackup, and point a standby at a new upstream. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Not the member name: the copy's WAL stream shows as "streaming" in the leader's
 * pg_stat_replication, where it must not be taken for this member's standby (in synchronous mode
 * it was named the synchronous standby while the copy was still being made). The name also finds
 * the copy in the source's pg_stat_progress_basebackup. A member name cannot contain a space. */
static void clone_app_name(const struct pg_instance *pg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s clone", pg->name);
}

int pg_clone(const struct pg_instance *pg, const struct pg_clone_opts *o,
             const struct pg_conf *conf, struct pg_error *err)
{
    const char *step = "pg_basebackup";
    if (!o->host || !o->host[0] || o->port == 0)
        return pgi_fail(err, step, -EINVAL, "no host to clone from");
    if (o->slot && o->slot[0] && !pg_slot_name_valid(o->slot))
        return pgi_fail(err, step, -EINVAL, "bad slot name \"%s\"", o->slot);
    enum pg_datadir_state ds;
    int rc = pg_datadir_probe(pg, &ds, err);
    if (rc < 0)
        return rc;
    if (ds != PG_DATADIR_MISSING && ds != PG_DATADIR_EMPTY)
        return pgi_fail(err, step, -ENOTEMPTY, "data directory %s is not empty", pg->data_dir);
    rc = pg_run_dir_prepare(pg, err);
    if (rc < 0)
        return rc;
    char tool[PGI_PATH], ci[2048];
    if (pgi_tool(pg, "pg_basebackup", tool, sizeof(tool)) < 0)
        return pgi_fail(err, step, -ENAMETOOLONG, "bin_dir is too long");
    char app[PGW_NAME_MAX + 8];
    clone_app_name(pg, app, sizeof(app));
    rc = pg_replication_conninfo_render(pg, o->host, o->port, app, ci, sizeof(ci));
    if (rc < 0)
        return pgi_fail(err, step, rc, "cannot build the conninfo");
    const char *argv[16] = {tool, "-D",     pg->data_dir, "-d",   ci,
                            "-X", "stream", "-c",         "fast", "--no-password"};
    int n = 10;
    if (o->slot && o->slot[0]) {
        argv[n++] = "-S";
        argv[n++] = o->slot;
        if (o->create_slot)
            argv[n++] = "-C";
    }
    argv[n] = NULL;
    log_info("cloning", "source=%s:%u slot=%s data_dir=%s", o->host, (unsigned)o->port,
             o->slot && o->slot[0] ? o->slot : "-", pg->data_dir);
    struct spawn_result r;
    rc = pgi_run(pg, step, argv, NULL, NULL, o->timeout_ms, false, &r, err);
    spawn_result_free(&r);
    if (rc < 0) {
        /* pg_basebackup cleans up after itself unless it was killed: make sure. */
        (void)pg_datadir_wipe(pg, NULL);
        return rc;
    }
    log_info("clone done", "source=%s:%u", o->host, (unsigned)o->port);
    return pg_conf_apply(pg, conf, err);
}

int pg_clone_progress(const struct pg_instance *pg, const char *host, uint16_t port,
                      struct pg_clone_progress *p, struct pg_error *err)
{
    memset(p, 0, sizeof(*p));
    p->total_bytes = -1;
    int rc = 0;
    struct pg_instance quiet = *pg; /* a short connect: the copy is what matters */
    quiet.connect_timeout_ms = 1000;
    PGconn *c = pgi_connect_peer(&quiet, host, port, pg->superuser, false, &rc, err);
    if (!c)
        return rc;
    char app[PGW_NAME_MAX + 8];
    clone_app_name(pg, app, sizeof(app));
    const char *params[] = {app};
    PGresult *r = NULL;
    rc = pgi_exec(pg, c, "clone progress",
                  "SELECT p.backup_streamed, p.backup_total FROM "
                  "pg_stat_progress_basebackup p JOIN pg_stat_activity a ON a.pid = p.pid "
                  "WHERE a.application_name = $1 ORDER BY a.backend_start DESC LIMIT 1",
                  1, params, clock_mono_ms() + 2000, NULL, &r, err);
    if (rc == 0 && PQntuples(r) != 1)
        rc = -ENOENT;
    if (rc == 0) {
        if (!pgi_get_i64(r, 0, 0, &p->done_bytes))
            p->done_bytes = 0;
        if (!pgi_get_i64(r, 0, 1, &p->total_bytes))
            p->total_bytes = -1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int pg_follow(const struct pg_instance *pg, const struct pg_conf *conf, int timeout_ms,
              struct pg_error *err)
{
    struct pg_postmaster pm;
    int rc = pg_postmaster_find(pg, &pm, err);
    if (rc < 0 && rc != -ESRCH)
        return rc;
    bool running = rc == 0;
    if (running) {
        struct pg_status st;
        rc = pg_status_query(pg, &st, err);
        if (rc < 0)
            return rc;
        if (!st.in_recovery)
            return pgi_fail(err, "follow", -EBUSY,
                            "PostgreSQL runs as a primary: stop it before it follows %s",
                            conf->upstream_host ? conf->upstream_host : "nobody");
    }
    rc = pg_conf_apply(pg, conf, err);
    if (rc < 0 || !running)
        return rc;
    return pg_reload(pg, timeout_ms, err);
}
