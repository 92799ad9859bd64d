/* PostgreSQL status through libpq: recovery state, WAL positions, replication, slots, roles. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A local connection and a deadline for one short operation. */
struct op {
    PGconn *c;
    uint64_t deadline;
};

static int op_open(const struct pg_instance *pg, struct op *op, struct pg_error *err)
{
    int qt = pg->query_timeout_ms > 0 ? pg->query_timeout_ms : 5000;
    int rc = -EIO;
    op->c = pgi_connect_local(pg, qt, &rc, err);
    op->deadline = clock_mono_ms() + (uint64_t)qt;
    return op->c ? 0 : rc;
}

static const char status_sql[] =
    "SELECT pg_is_in_recovery(),"
    " current_setting('server_version_num'),"
    " (SELECT system_identifier FROM pg_control_system()),"
    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END,"
    " CASE WHEN pg_is_in_recovery() THEN NULL"
    "  ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
    " pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(),"
    " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,"
    /* a standby's timeline: its last restartpoint's, or the later one its minimum recovery
     * point is on (pg_rewind sets it on the new timeline; replay moves it forward) */
    " greatest((SELECT timeline_id FROM pg_control_checkpoint()),"
    "  (SELECT min_recovery_end_timeline FROM pg_control_recovery())),"
    " current_setting('data_checksums'),"
    " r.status, r.received_tli, r.sender_host, r.sender_port, r.slot_name,"
    " (SELECT count(*) > 0 FROM pg_settings WHERE pending_restart),"
    " CASE WHEN NOT pg_is_in_recovery()"
    "   OR pg_last_wal_receive_lsn() IS NULL"
    "   OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0"
    "  ELSE greatest(0, (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)"
    "   ::bigint) END,"
    " current_setting('synchronous_standby_names')"
    " FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true";

int pg_status_query(const struct pg_instance *pg, struct pg_status *st, struct pg_error *err)
{
    memset(st, 0, sizeof(*st));
    struct op op;
    int rc = op_open(pg, &op, err);
    if (rc < 0)
        return rc;
    PGresult *r;
    rc = pgi_exec(pg, op.c, "status query", status_sql, 0, NULL, op.deadline, NULL, &r, err);
    if (rc == 0 && PQntuples(r) != 1)
        rc = pgi_fail(err, "status query", -EIO, "expected one row, got %d", PQntuples(r));
    if (rc == 0) {
        uint64_t v = 0;
        st->in_recovery = pgi_get_bool(r, 0, 0);
        if (pgi_get_u64(r, 0, 1, &v))
            st->server_version = (int)v;
        (void)pgi_get_u64(r, 0, 2, &st->system_id);
        uint64_t cur = 0, tli = 0, ckpt_tli = 0, recv_tli = 0;
        (void)pgi_get_lsn(r, 0, 3, &cur);
        (void)pgi_get_u64(r, 0, 4, &tli);
        (void)pgi_get_lsn(r, 0, 5, &st->receive_lsn);
        (void)pgi_get_lsn(r, 0, 6, &st->replay_lsn);
        st->replay_paused = pgi_get_bool(r, 0, 7);
        (void)pgi_get_u64(r, 0, 8, &ckpt_tli);
        st->checksums = pgi_get_bool(r, 0, 9);
        char status[32];
        pgi_get_str(r, 0, 10, status, sizeof(status));
        st->streaming = strcmp(status, "streaming") == 0;
        (void)pgi_get_u64(r, 0, 11, &recv_tli);
        pgi_get_str(r, 0, 12, st->upstream_host, sizeof(st->upstream_host));
        if (pgi_get_u64(r, 0, 13, &v) && v <= 65535)
            st->upstream_port = (uint16_t)v;
        pgi_get_str(r, 0, 14, st->upstream_slot, sizeof(st->upstream_slot));
        st->pending_restart = pgi_get_bool(r, 0, 15);
        (void)pgi_get_u64(r, 0, 16, &st->replay_lag_ms);
        pgi_get_str(r, 0, 17, st->sync_standby_names, sizeof(st->sync_standby_names));
        if (st->in_recovery) {
            st->wal_lsn = st->receive_lsn > st->replay_lsn ? st->receive_lsn : st->replay_lsn;
            /* The checkpoint's (or minimum recovery point's) timeline lags a standby that
             * already follows a new one; WAL received on a later timeline means the standby is
             * on it, streaming now or not (a walreceiver reconnecting after a failover). */
            st->timeline = (uint32_t)(recv_tli > ckpt_tli ? recv_tli : ckpt_tli);
        } else {
            st->wal_lsn = cur;
            st->timeline = (uint32_t)tli;
        }
    }
    PQclear(r);
    PQfinish(op.c);
    return rc;
}

static const char replication_sql[] =
    "SELECT pid, application_name, coalesce(host(client_addr), ''), state, sync_state,"
    " sync_priority, sent_lsn, write_lsn, flush_lsn, replay_lsn,"
    " (extract(epoch FROM write_lag) * 1000)::bigint,"
    " (extract(epoch FROM flush_lag) * 1000)::bigint,"
    " (extract(epoch FROM replay_lag) * 1000)::bigint"
    " FROM pg_stat_replication ORDER BY application_name, pid";

/* Runs a list query and fills one calloc'd array element per row with fill(). On failure the
 * array is freed and *rows is NULL. */
static int list_query(const struct pg_instance *pg, const char *step, const char *sql,
                      size_t elem_size, void (*fill)(PGresult *r, int row, void *elem), void **rows,
                      size_t *n, struct pg_error *err)
{
    *rows = NULL;
    *n = 0;
    struct op op;
    int rc = op_open(pg, &op, err);
    if (rc < 0)
        return rc;
    PGresult *r;
    rc = pgi_exec(pg, op.c, step, sql, 0, NULL, op.deadline, NULL, &r, err);
    int nt = rc == 0 ? PQntuples(r) : 0;
    if (nt > 0) {
        *rows = calloc((size_t)nt, elem_size);
        if (!*rows)
            rc = pgi_fail(err, step, -ENOMEM, "out of memory");
    }
    for (int i = 0; rc == 0 && i < nt; i++)
        fill(r, i, (char *)*rows + (size_t)i * elem_size);
    if (rc == 0)
        *n = (size_t)nt;
    else {
        free(*rows);
        *rows = NULL;
    }
    PQclear(r);
    PQfinish(op.c);
    return rc;
}

static void fill_replica(PGresult *r, int i, void *elem)
{
    struct pg_replica *x = elem;
    int64_t v;
    x->pid = pgi_get_i64(r, i, 0, &v) ? (int)v : 0;
    pgi_get_str(r, i, 1, x->application_name, sizeof(x->application_name));
    pgi_get_str(r, i, 2, x->client_addr, sizeof(x->client_addr));
    pgi_get_str(r, i, 3, x->state, sizeof(x->state));
    pgi_get_str(r, i, 4, x->sync_state, sizeof(x->sync_state));
    x->sync_priority = pgi_get_i64(r, i, 5, &v) ? (int)v : 0;
    (void)pgi_get_lsn(r, i, 6, &x->sent_lsn);
    (void)pgi_get_lsn(r, i, 7, &x->write_lsn);
    (void)pgi_get_lsn(r, i, 8, &x->flush_lsn);
    (void)pgi_get_lsn(r, i, 9, &x->replay_lsn);
    x->write_lag_ms = pgi_get_i64(r, i, 10, &v) ? v : -1;
    x->flush_lag_ms = pgi_get_i64(r, i, 11, &v) ? v : -1;
    x->replay_lag_ms = pgi_get_i64(r, i, 12, &v) ? v : -1;
}

int pg_replication_list(const struct pg_instance *pg, struct pg_replica **rows, size_t *n,
                        struct pg_error *err)
{
    return list_query(pg, "replication query", replication_sql, sizeof(**rows), fill_replica,
                      (void **)rows, n, err);
}

static void fill_slot(PGresult *r, int i, void *elem)
{
    struct pg_slot *s = elem;
    char type[16];
    pgi_get_str(r, i, 0, s->name, sizeof(s->name));
    pgi_get_str(r, i, 1, type, sizeof(type));
    s->physical = strcmp(type, "physical") == 0;
    s->active = pgi_get_bool(r, i, 2);
    (void)pgi_get_lsn(r, i, 3, &s->restart_lsn);
}

int pg_slots_list(const struct pg_instance *pg, struct pg_slot **rows, size_t *n,
                  struct pg_error *err)
{
    return list_query(pg, "slots query",
                      "SELECT slot_name, slot_type, active, restart_lsn FROM pg_replication_slots"
                      " ORDER BY slot_name",
                      sizeof(**rows), fill_slot, (void **)rows, n, err);
}

/* Runs one statement with one parameter; maps the SQLSTATEs the slot functions raise. */
static int slot_op(const struct pg_instance *pg, const char *step, const char *sql,
                   const char *name, struct pg_error *err)
{
    if (!name || !pg_slot_name_valid(name))
        return pgi_fail(err, step, -EINVAL, "bad slot name \"%s\"", name ? name : "(null)");
    struct op op;
    int rc = op_open(pg, &op, err);
    if (rc < 0)
        return rc;
    PGresult *r;
    const char *params[1] = {name};
    rc = pgi_exec(pg, op.c, step, sql, 1, params, op.deadline, "42710 42704 55006 25006", &r, err);
    PQclear(r);
    PQfinish(op.c);
    if (rc == -EIO && err && err->sqlstate[0]) {
        if (strcmp(err->sqlstate, "42710") == 0)
            rc = -EEXIST;
        else if (strcmp(err->sqlstate, "42704") == 0)
            rc = -ENOENT;
        else if (strcmp(err->sqlstate, "55006") == 0)
            rc = -EBUSY;
        else if (strcmp(err->sqlstate, "25006") == 0)
            rc = -EROFS;
    }
    if (rc == 0)
        log_info("replication slot changed", "op=\"%s\" slot=%s", step, name);
    return rc;
}

int pg_slot_create(const struct pg_instance *pg, const char *name, struct pg_error *err)
{
    return slot_op(pg, "create slot", "SELECT pg_create_physical_replication_slot($1, true)", name,
                   err);
}

int pg_slot_drop(const struct pg_instance *pg, const char *name, struct pg_error *err)
{
    return slot_op(pg, "drop slot", "SELECT pg_drop_replication_slot($1)", name, err);
}

/* ---- roles ---- */

/* "ALTER ROLE <ident> WITH <attrs> PASSWORD <verifier>" (or CREATE): the password goes as a
 * SCRAM verifier, so neither the statement nor a server log line carries it in clear. */
static int role_stmt(const struct pg_instance *pg, struct op *op, const char *verb,
                     const char *user, const char *password, const char *attrs,
                     struct pg_error *err)
{
    char *ident = PQescapeIdentifier(op->c, user, strlen(user));
    char *verifier = NULL, *lit = NULL, *sql = NULL;
    int rc = 0;
    if (!ident) {
        rc = pgi_fail(err, "roles", -EINVAL, "cannot quote the role name");
        goto out;
    }
    if (password && password[0]) {
        verifier = PQencryptPasswordConn(op->c, password, user, "scram-sha-256");
        lit = verifier ? PQescapeLiteral(op->c, verifier, strlen(verifier)) : NULL;
        if (!lit) {
            rc = pgi_fail(err, "roles", -EIO, "cannot compute the password verifier of %s", user);
            goto out;
        }
    }
    size_t cap = strlen(ident) + (lit ? strlen(lit) : 4) + 128;
    sql = malloc(cap);
    if (!sql) {
        rc = pgi_fail(err, "roles", -ENOMEM, "out of memory");
        goto out;
    }
    snprintf(sql, cap, "%s ROLE %s WITH %s PASSWORD %s", verb, ident, attrs, lit ? lit : "NULL");
    PGresult *r;
    rc = pgi_exec(pg, op->c, "roles", sql, 0, NULL, op->deadline, "25006", &r, err);
    PQclear(r);
    if (rc == -EIO && err && strcmp(err->sqlstate, "25006") == 0)
        rc = pgi_fail_quiet(err, "roles", -EROFS, "read-only: not a primary");
    else if (rc == 0)
        log_info("role set up", "role=%s verb=%s password=%s", user, verb, lit ? "set" : "none");
out:
    if (sql)
        explicit_bzero(sql, strlen(sql));
    free(sql);
    PQfreemem(lit);
    PQfreemem(verifier);
    PQfreemem(ident);
    return rc;
}

int pg_roles_setup(const struct pg_instance *pg, struct pg_error *err)
{
    struct op op;
    int rc = op_open(pg, &op, err);
    if (rc < 0)
        return rc;
    op.deadline = clock_mono_ms() + 30000; /* role changes can wait on locks */
    PGresult *r;
    const char *params[1] = {pg->replication_user};
    rc = pgi_exec(pg, op.c, "roles", "SELECT 1 FROM pg_roles WHERE rolname = $1", 1, params,
                  op.deadline, NULL, &r, err);
    bool exists = rc == 0 && PQntuples(r) > 0;
    PQclear(r);
    if (rc == 0) {
        if (!pg->replication_password[0])
            log_warn("replication_password is empty: standbys on other hosts cannot log in",
                     "role=%s", pg->replication_user);
        if (strcmp(pg->replication_user, pg->superuser) != 0)
            rc = role_stmt(pg, &op, exists ? "ALTER" : "CREATE", pg->replication_user,
                           pg->replication_password, "LOGIN REPLICATION", err);
    }
    if (rc == 0 && pg->superuser_password[0])
        rc = role_stmt(pg, &op, "ALTER", pg->superuser, pg->superuser_password, "LOGIN", err);
    PQfinish(op.c);
    return rc;
}

/* ---- a peer, over a replication connection ---- */

int pg_peer_identify(const struct pg_instance *pg, const char *host, uint16_t port,
                     struct pg_peer_identity *id, struct pg_tl_switch **hist, size_t *n,
                     struct pg_error *err)
{
    memset(id, 0, sizeof(*id));
    *hist = NULL;
    *n = 0;
    int rc = pg_run_dir_prepare(pg, err);
    if (rc < 0)
        return rc;
    PGconn *c = pgi_connect_peer(pg, host, port, pg->replication_user, true, &rc, err);
    if (!c)
        return rc;
    uint64_t deadline =
        clock_mono_ms() + (uint64_t)(pg->query_timeout_ms > 0 ? pg->query_timeout_ms : 5000);
    PGresult *r;
    rc = pgi_exec(pg, c, "IDENTIFY_SYSTEM", "IDENTIFY_SYSTEM", 0, NULL, deadline, NULL, &r, err);
    if (rc == 0) {
        uint64_t tli = 0;
        if (PQntuples(r) != 1 || PQnfields(r) < 3 || !pgi_get_u64(r, 0, 0, &id->system_id) ||
            !pgi_get_u64(r, 0, 1, &tli) || tli == 0 || tli > UINT32_MAX ||
            !pgi_get_lsn(r, 0, 2, &id->lsn))
            rc = pgi_fail(err, "IDENTIFY_SYSTEM", -EBADMSG, "unexpected answer from %s:%u", host,
                          (unsigned)port);
        id->timeline = (uint32_t)tli;
    }
    PQclear(r);
    if (rc == 0 && id->timeline > 1) {
        char sql[48];
        snprintf(sql, sizeof(sql), "TIMELINE_HISTORY %u", id->timeline);
        rc = pgi_exec(pg, c, "TIMELINE_HISTORY", sql, 0, NULL, deadline, NULL, &r, err);
        if (rc == 0 && (PQntuples(r) != 1 || PQnfields(r) < 2))
            rc = pgi_fail(err, "TIMELINE_HISTORY", -EBADMSG, "unexpected answer");
        if (rc == 0) {
            rc = pg_timeline_history_parse(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), hist,
                                           n);
            if (rc < 0)
                rc = pgi_fail(err, "TIMELINE_HISTORY", rc,
                              "cannot parse the history of "
                              "timeline %u",
                              id->timeline);
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}
