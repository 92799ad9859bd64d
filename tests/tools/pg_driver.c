/* Test driver for agent/pg: one action per run, one JSON line on stdout (exit 0 ok, 1 failed). */
/*
 * Usage: pg_driver [options] COMMAND [ARGS]
 * Options: --data DIR --run-dir DIR (required) --bin-dir DIR --log-file F --listen HOST:PORT
 *          --name N --superuser U --repl-user U --timeout-ms N --param K=V (repeatable)
 *          --standby --upstream HOST:PORT --slot S --hba-networks NETS --create-slot
 *          --no-sync --mode smart|fast|immediate --no-escalate --poll-ms N
 *          (passwords: env PGD_SUPERUSER_PASSWORD, PGD_REPLICATION_PASSWORD)
 * Commands: initdb | start | stop | restart | reload | promote | checkpoint | roles | status |
 *   replication | slots | slot-create NAME | slot-drop NAME | clone HOST:PORT | follow | apply |
 *   controldata | position | check-diverged HOST:PORT | rewind HOST:PORT | crash-recover |
 *   sysid-check ID | find | watch | render-conf | render-hba | probe | wipe
 * The configuration used by initdb/clone/follow/apply/rewind is built from the options
 * (standby with --standby or --upstream). `watch` prints {"event":"watching",...} then
 * {"event":"dead","t":<CLOCK_MONOTONIC ms>} when the postmaster exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/pg/pg.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/loop.h"

enum { MAX_PARAMS = 32 };

struct opts {
    struct pg_instance pg;
    struct pg_conf conf;
    struct pg_param params[MAX_PARAMS];
    char param_buf[MAX_PARAMS][256];
    char upstream_host[256];
    int timeout_ms;
    int poll_ms;
    bool create_slot, no_sync, escalate;
    enum pg_stop_mode mode;
    const char *cmd;
    const char *arg;
};

static void emit(json_t *o)
{
    json_object_set_new(o, "t", json_integer((json_int_t)clock_mono_ms()));
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(s);
    }
    json_decref(o);
}

static const char *errname(int rc)
{
    switch (-rc) {
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case EIO:
        return "EIO";
    case ECONNREFUSED:
        return "ECONNREFUSED";
    case ESRCH:
        return "ESRCH";
    case EALREADY:
        return "EALREADY";
    case ENOTEMPTY:
        return "ENOTEMPTY";
    case EXDEV:
        return "EXDEV";
    case EEXIST:
        return "EEXIST";
    case ENOENT:
        return "ENOENT";
    case EBUSY:
        return "EBUSY";
    case EINVAL:
        return "EINVAL";
    case EROFS:
        return "EROFS";
    case EAGAIN:
        return "EAGAIN";
    default:
        return "OTHER";
    }
}

static int finish(int rc, const struct pg_error *e, json_t *o)
{
    if (!o)
        o = json_object();
    json_object_set_new(o, "ok", json_boolean(rc == 0));
    if (rc != 0) {
        json_object_set_new(o, "rc", json_integer(rc));
        json_object_set_new(o, "err", json_string(errname(rc)));
        json_object_set_new(o, "step", json_string(e->step));
        json_object_set_new(o, "msg", json_string(e->msg));
        json_object_set_new(o, "sqlstate", json_string(e->sqlstate));
    }
    emit(o);
    return rc == 0 ? 0 : 1;
}

static json_t *lsn_json(uint64_t lsn)
{
    char b[PG_LSN_STRLEN];
    return json_string(pg_lsn_format(lsn, b, sizeof(b)));
}

static bool split_addr(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *c = strrchr(s, ':');
    if (!c || (size_t)(c - s) >= cap)
        return false;
    memcpy(host, s, (size_t)(c - s));
    host[c - s] = '\0';
    long p = strtol(c + 1, NULL, 10);
    if (p <= 0 || p > 65535)
        return false;
    *port = (uint16_t)p;
    return true;
}

static void set_str(char *dst, size_t cap, const char *v)
{
    snprintf(dst, cap, "%s", v ? v : "");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    struct pg_instance *pg = &o->pg;
    set_str(pg->bin_dir, sizeof(pg->bin_dir), "/usr/lib/postgresql/15/bin");
    set_str(pg->name, sizeof(pg->name), "n1");
    set_str(pg->superuser, sizeof(pg->superuser), "postgres");
    set_str(pg->replication_user, sizeof(pg->replication_user), "replicator");
    set_str(pg->listen_host, sizeof(pg->listen_host), "127.0.0.1");
    set_str(pg->superuser_password, sizeof(pg->superuser_password),
            getenv("PGD_SUPERUSER_PASSWORD"));
    set_str(pg->replication_password, sizeof(pg->replication_password),
            getenv("PGD_REPLICATION_PASSWORD"));
    pg->port = 5432;
    pg->connect_timeout_ms = 3000;
    pg->query_timeout_ms = 5000;
    o->timeout_ms = 60000;
    o->mode = PG_STOP_FAST;
    o->escalate = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--data") == 0 && v)
            set_str(pg->data_dir, sizeof(pg->data_dir), v);
        else if (strcmp(a, "--run-dir") == 0 && v)
            set_str(pg->run_dir, sizeof(pg->run_dir), v);
        else if (strcmp(a, "--bin-dir") == 0 && v)
            set_str(pg->bin_dir, sizeof(pg->bin_dir), v);
        else if (strcmp(a, "--log-file") == 0 && v)
            set_str(pg->log_file, sizeof(pg->log_file), v);
        else if (strcmp(a, "--listen") == 0 && v) {
            if (!split_addr(v, pg->listen_host, sizeof(pg->listen_host), &pg->port))
                return -1;
        } else if (strcmp(a, "--name") == 0 && v)
            set_str(pg->name, sizeof(pg->name), v);
        else if (strcmp(a, "--superuser") == 0 && v)
            set_str(pg->superuser, sizeof(pg->superuser), v);
        else if (strcmp(a, "--repl-user") == 0 && v)
            set_str(pg->replication_user, sizeof(pg->replication_user), v);
        else if (strcmp(a, "--timeout-ms") == 0 && v)
            o->timeout_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--poll-ms") == 0 && v)
            o->poll_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--param") == 0 && v && o->conf.nparams < MAX_PARAMS) {
            char *buf = o->param_buf[o->conf.nparams];
            set_str(buf, sizeof(o->param_buf[0]), v);
            char *eq = strchr(buf, '=');
            if (!eq)
                return -1;
            *eq = '\0';
            o->params[o->conf.nparams++] = (struct pg_param){.name = buf, .value = eq + 1};
        } else if (strcmp(a, "--upstream") == 0 && v) {
            if (!split_addr(v, o->upstream_host, sizeof(o->upstream_host), &o->conf.upstream_port))
                return -1;
            o->conf.upstream_host = o->upstream_host;
            o->conf.standby = true;
        } else if (strcmp(a, "--slot") == 0 && v)
            o->conf.slot = v;
        else if (strcmp(a, "--hba-networks") == 0 && v)
            o->conf.hba_networks = v;
        else if (strcmp(a, "--mode") == 0 && v)
            o->mode = strcmp(v, "smart") == 0  ? PG_STOP_SMART
                      : strcmp(v, "fast") == 0 ? PG_STOP_FAST
                                               : PG_STOP_IMMEDIATE;
        else {
            takes = false;
            if (strcmp(a, "--standby") == 0)
                o->conf.standby = true;
            else if (strcmp(a, "--create-slot") == 0)
                o->create_slot = true;
            else if (strcmp(a, "--no-sync") == 0)
                o->no_sync = true;
            else if (strcmp(a, "--no-escalate") == 0)
                o->escalate = false;
            else if (a[0] == '-' && a[1] == '-')
                return -1;
            else if (!o->cmd)
                o->cmd = a;
            else if (!o->arg)
                o->arg = a;
            else
                return -1;
        }
        if (takes)
            i++;
    }
    if (!o->cmd || !pg->data_dir[0] || !pg->run_dir[0])
        return -1;
    if (!pg->log_file[0])
        if (snprintf(pg->log_file, sizeof(pg->log_file), "%.240s.log", pg->run_dir) < 0)
            return -1;
    o->conf.params = o->params;
    o->conf.max_connections = 30;
    return 0;
}

static json_t *pm_json(const struct pg_postmaster *pm)
{
    return json_pack("{s:i,s:s,s:I,s:i,s:s,s:s,s:s}", "pid", (int)pm->pid, "data_dir", pm->data_dir,
                     "start_time", (json_int_t)pm->start_time, "port", (int)pm->port, "socket_dir",
                     pm->socket_dir, "listen", pm->listen_addr, "status",
                     pg_pm_status_name(pm->status));
}

static int cmd_status(const struct opts *o, struct pg_error *e)
{
    struct pg_status st;
    int rc = pg_status_query(&o->pg, &st, e);
    if (rc < 0)
        return finish(rc, e, NULL);
    char sysid[24];
    snprintf(sysid, sizeof(sysid), "%" PRIu64, st.system_id);
    json_t *j = json_pack(
        "{s:b,s:i,s:s,s:i,s:o,s:o,s:o,s:b,s:b,s:b,s:s,s:i,s:s}", "in_recovery", st.in_recovery,
        "server_version", st.server_version, "system_id", sysid, "timeline", (int)st.timeline,
        "wal_lsn", lsn_json(st.wal_lsn), "receive_lsn", lsn_json(st.receive_lsn), "replay_lsn",
        lsn_json(st.replay_lsn), "replay_paused", st.replay_paused, "checksums", st.checksums,
        "streaming", st.streaming, "upstream_host", st.upstream_host, "upstream_port",
        (int)st.upstream_port, "upstream_slot", st.upstream_slot);
    return finish(0, e, j);
}

static int cmd_replication(const struct opts *o, struct pg_error *e)
{
    struct pg_replica *rows;
    size_t n;
    int rc = pg_replication_list(&o->pg, &rows, &n, e);
    if (rc < 0)
        return finish(rc, e, NULL);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:I}", "application_name",
                         rows[i].application_name, "client_addr", rows[i].client_addr, "state",
                         rows[i].state, "sync_state", rows[i].sync_state, "write_lsn",
                         lsn_json(rows[i].write_lsn), "flush_lsn", lsn_json(rows[i].flush_lsn),
                         "replay_lsn", lsn_json(rows[i].replay_lsn), "replay_lag_ms",
                         (json_int_t)rows[i].replay_lag_ms));
    }
    free(rows);
    return finish(0, e, json_pack("{s:o}", "replicas", a));
}

static int cmd_slots(const struct opts *o, struct pg_error *e)
{
    struct pg_slot *rows;
    size_t n;
    int rc = pg_slots_list(&o->pg, &rows, &n, e);
    if (rc < 0)
        return finish(rc, e, NULL);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s,s:b,s:b,s:o}", "name", rows[i].name, "physical",
                                           rows[i].physical, "active", rows[i].active,
                                           "restart_lsn", lsn_json(rows[i].restart_lsn)));
    free(rows);
    return finish(0, e, json_pack("{s:o}", "slots", a));
}

static int cmd_controldata(const struct opts *o, struct pg_error *e)
{
    struct pg_controldata cd;
    int rc = pg_controldata_read(&o->pg, &cd, e);
    if (rc < 0)
        return finish(rc, e, NULL);
    char sysid[24];
    snprintf(sysid, sizeof(sysid), "%" PRIu64, cd.system_id);
    return finish(0, e,
                  json_pack("{s:s,s:s,s:i,s:o,s:o,s:o,s:i,s:i}", "system_id", sysid, "state",
                            pg_cluster_state_name(cd.state), "timeline", (int)cd.timeline,
                            "checkpoint_lsn", lsn_json(cd.checkpoint_lsn), "redo_lsn",
                            lsn_json(cd.redo_lsn), "min_recovery_lsn",
                            lsn_json(cd.min_recovery_lsn), "checksum_version",
                            (int)cd.checksum_version, "wal_log_hints", (int)cd.wal_log_hints));
}

struct watch_ctx {
    struct loop *l;
    bool dead;
};

static void on_dead(struct pg_watch *w, pid_t pid, void *arg)
{
    struct watch_ctx *c = arg;
    (void)w;
    emit(json_pack("{s:s,s:i}", "event", "dead", "pid", (int)pid));
    c->dead = true;
    loop_stop(c->l);
}

static int cmd_watch(const struct opts *o, struct pg_error *e)
{
    struct pg_postmaster pm;
    int rc = pg_postmaster_find(&o->pg, &pm, e);
    if (rc < 0)
        return finish(rc, e, NULL);
    struct watch_ctx c = {.l = loop_new()};
    if (!c.l)
        return 1;
    struct pg_watch *w = pg_watch_start(c.l, &pm, o->poll_ms, on_dead, &c);
    if (!w) {
        loop_free(c.l);
        return 1;
    }
    emit(json_pack("{s:s,s:i,s:b}", "event", "watching", "pid", (int)pm.pid, "pidfd",
                   pg_watch_uses_pidfd(w)));
    (void)loop_run(c.l);
    pg_watch_stop(w);
    loop_free(c.l);
    return c.dead ? 0 : 1;
}

static int run(struct opts *o)
{
    struct pg_error e = {0};
    const struct pg_instance *pg = &o->pg;
    const char *c = o->cmd;
    int rc = pg_instance_check(pg, &e);
    if (rc < 0)
        return finish(rc, &e, NULL);
    char host[256];
    uint16_t port = 0;
    bool addr = o->arg && split_addr(o->arg, host, sizeof(host), &port);
    if (strcmp(c, "initdb") == 0) {
        struct pg_initdb_opts io = {.no_sync = o->no_sync, .timeout_ms = o->timeout_ms};
        return finish(pg_initdb(pg, &io, &o->conf, &e), &e, NULL);
    }
    if (strcmp(c, "start") == 0 || strcmp(c, "restart") == 0) {
        struct pg_postmaster pm;
        rc = strcmp(c, "start") == 0
                 ? pg_start(pg, o->timeout_ms, &pm, &e)
                 : pg_restart(pg, o->mode, o->timeout_ms, o->timeout_ms, &pm, &e);
        return finish(rc, &e, rc == 0 ? json_pack("{s:o}", "postmaster", pm_json(&pm)) : NULL);
    }
    if (strcmp(c, "stop") == 0) {
        struct pg_stop_result res;
        rc = pg_stop(pg, o->mode, o->timeout_ms, o->escalate, &res, &e);
        return finish(rc, &e,
                      json_pack("{s:b,s:s,s:b}", "was_running", res.was_running, "mode_used",
                                pg_stop_mode_name(res.mode_used), "killed", res.killed));
    }
    if (strcmp(c, "reload") == 0)
        return finish(pg_reload(pg, o->timeout_ms, &e), &e, NULL);
    if (strcmp(c, "promote") == 0)
        return finish(pg_promote(pg, o->timeout_ms, &e), &e, NULL);
    if (strcmp(c, "checkpoint") == 0)
        return finish(pg_checkpoint(pg, o->timeout_ms, &e), &e, NULL);
    if (strcmp(c, "roles") == 0)
        return finish(pg_roles_setup(pg, &e), &e, NULL);
    if (strcmp(c, "status") == 0)
        return cmd_status(o, &e);
    if (strcmp(c, "replication") == 0)
        return cmd_replication(o, &e);
    if (strcmp(c, "slots") == 0)
        return cmd_slots(o, &e);
    if (strcmp(c, "slot-create") == 0 && o->arg)
        return finish(pg_slot_create(pg, o->arg, &e), &e, NULL);
    if (strcmp(c, "slot-drop") == 0 && o->arg)
        return finish(pg_slot_drop(pg, o->arg, &e), &e, NULL);
    if (strcmp(c, "clone") == 0 && addr) {
        struct pg_clone_opts co = {.host = host,
                                   .port = port,
                                   .slot = o->conf.slot,
                                   .create_slot = o->create_slot,
                                   .timeout_ms = o->timeout_ms};
        return finish(pg_clone(pg, &co, &o->conf, &e), &e, NULL);
    }
    if (strcmp(c, "follow") == 0)
        return finish(pg_follow(pg, &o->conf, o->timeout_ms, &e), &e, NULL);
    if (strcmp(c, "apply") == 0)
        return finish(pg_conf_apply(pg, &o->conf, &e), &e, NULL);
    if (strcmp(c, "controldata") == 0)
        return cmd_controldata(o, &e);
    if (strcmp(c, "position") == 0) {
        struct pg_local_position lp;
        rc = pg_local_position_read(pg, &lp, &e);
        return finish(rc, &e,
                      json_pack("{s:i,s:o,s:b,s:o}", "timeline", (int)lp.timeline, "lsn",
                                lsn_json(lp.lsn), "in_recovery", lp.in_recovery, "checkpoint_end",
                                lsn_json(lp.checkpoint_end)));
    }
    if (strcmp(c, "check-diverged") == 0 && addr) {
        bool div = false;
        char why[256] = "";
        rc = pg_check_diverged(pg, host, port, &div, why, sizeof(why), &e);
        return finish(rc, &e, json_pack("{s:b,s:s}", "diverged", div, "why", why));
    }
    if (strcmp(c, "rewind") == 0 && addr)
        return finish(pg_rewind_run(pg, host, port, &o->conf, o->timeout_ms, &e), &e, NULL);
    if (strcmp(c, "crash-recover") == 0)
        return finish(pg_ensure_clean_shutdown(pg, o->timeout_ms, &e), &e, NULL);
    if (strcmp(c, "sysid-check") == 0 && o->arg)
        return finish(pg_sysid_check(pg, o->arg, &e), &e, NULL);
    if (strcmp(c, "find") == 0) {
        struct pg_postmaster pm;
        rc = pg_postmaster_find(pg, &pm, &e);
        if (rc == -ESRCH)
            snprintf(e.msg, sizeof(e.msg), "no running postmaster");
        return finish(rc, &e, rc == 0 ? json_pack("{s:o}", "postmaster", pm_json(&pm)) : NULL);
    }
    if (strcmp(c, "watch") == 0)
        return cmd_watch(o, &e);
    if (strcmp(c, "probe") == 0) {
        enum pg_datadir_state ds = PG_DATADIR_MISSING;
        rc = pg_datadir_probe(pg, &ds, &e);
        static const char *const names[] = {"missing", "empty", "initialized", "other"};
        return finish(rc, &e, json_pack("{s:s}", "state", names[ds]));
    }
    if (strcmp(c, "wipe") == 0)
        return finish(pg_datadir_wipe(pg, &e), &e, NULL);
    if (strcmp(c, "render-conf") == 0 || strcmp(c, "render-hba") == 0) {
        enum { CAP = 65536 };
        char *buf = malloc(CAP);
        if (!buf)
            return 1;
        rc = c[7] == 'c' ? pg_conf_render(pg, &o->conf, buf, CAP, &e)
                         : pg_hba_render(pg, &o->conf, buf, CAP, &e);
        json_t *j = rc == 0 ? json_pack("{s:s}", "text", buf) : NULL;
        free(buf);
        return finish(rc, &e, j);
    }
    fprintf(stderr, "pg_driver: unknown command or missing argument: %s\n", c);
    return 2;
}

int main(int argc, char **argv)
{
    log_setup(LOG_LVL_DEBUG, "pg_driver");
    static struct opts o;
    if (parse_args(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: pg_driver --data DIR --run-dir DIR [options] COMMAND [ARG]\n");
        return 2;
    }
    return run(&o);
}
