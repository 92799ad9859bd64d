/* libpq helpers for PostgreSQL control: connect and query with deadlines, result fields. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/clock.h"
#include "platform/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_KEYS = 16 };

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = clock_mono_ms();
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    return left > 60 * 60 * 1000 ? 60 * 60 * 1000 : (int)left;
}

/* Connects asynchronously so that the whole connect (DNS aside) respects the deadline; libpq's
 * own connect_timeout is only honoured by its blocking functions. */
static PGconn *connect_deadline(const struct pg_instance *pg, const char *const *keys,
                                const char *const *vals, const char *where, int *rcp,
                                struct pg_error *err)
{
    int timeout = pg->connect_timeout_ms > 0 ? pg->connect_timeout_ms : 3000;
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout;
    char msg[PG_ERRMSG_MAX / 2];
    int rc;
    PGconn *c = PQconnectStartParams(keys, vals, 0);
    if (!c) {
        rc = pgi_fail(err, "connect", -ENOMEM, "%s: out of memory", where);
        goto fail;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    if (PQstatus(c) == CONNECTION_BAD)
        st = PGRES_POLLING_FAILED;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            pgi_tail(pg, PQerrorMessage(c), 3, msg, sizeof(msg));
            rc = pgi_fail_quiet(err, "connect", -ECONNREFUSED, "%s: %s", where, msg);
            goto fail;
        }
        int left = remaining_ms(deadline);
        if (left == 0) {
            rc = pgi_fail_quiet(err, "connect", -ETIMEDOUT, "%s: no connection within %d ms", where,
                                timeout);
            goto fail;
        }
        struct pollfd pf = {.fd = PQsocket(c),
                            .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int r = poll(&pf, 1, left);
        if (r < 0 && errno != EINTR) {
            rc = pgi_fail(err, "connect", -errno, "%s: poll: %s", where, strerror(errno));
            goto fail;
        }
        if (r > 0)
            st = PQconnectPoll(c);
    }
    return c;
fail:
    PQfinish(c);
    if (rcp)
        *rcp = rc;
    return NULL;
}

static void secs_str(char *buf, size_t cap, int ms)
{
    int s = (ms + 999) / 1000;
    snprintf(buf, cap, "%d", s < 2 ? 2 : s);
}

PGconn *pgi_connect_local(const struct pg_instance *pg, int stmt_timeout_ms, int *rc,
                          struct pg_error *err)
{
    char port[8], ct[16], opts[64];
    snprintf(port, sizeof(port), "%u", (unsigned)pg->port);
    secs_str(ct, sizeof(ct), pg->connect_timeout_ms);
    snprintf(opts, sizeof(opts), "-c statement_timeout=%d",
             stmt_timeout_ms > 0 ? stmt_timeout_ms : 0);
    const char *keys[MAX_KEYS] = {
        "host",    "port",       "user", "dbname", "connect_timeout", "options", "application_name",
        "sslmode", "gssencmode", NULL};
    const char *vals[MAX_KEYS] = {pg->run_dir, port,       pg->superuser, "postgres", ct,
                                  opts,        "pgwarden", "disable",     "disable",  NULL};
    char where[PGI_PATH + 32];
    snprintf(where, sizeof(where), "local PostgreSQL (socket %s, port %u)", pg->run_dir,
             (unsigned)pg->port);
    return connect_deadline(pg, keys, vals, where, rc, err);
}

PGconn *pgi_connect_peer(const struct pg_instance *pg, const char *host, uint16_t port,
                         const char *user, bool replication, int *rc, struct pg_error *err)
{
    char portbuf[8], ct[16], passfile[PGI_PATH];
    snprintf(portbuf, sizeof(portbuf), "%u", (unsigned)port);
    secs_str(ct, sizeof(ct), pg->connect_timeout_ms);
    if (pgi_path(passfile, sizeof(passfile), pg->run_dir, PG_PASSFILE_NAME) < 0) {
        if (rc)
            *rc = -ENAMETOOLONG;
        pgi_fail(err, "connect", -ENAMETOOLONG, "run_dir is too long");
        return NULL;
    }
    const char *keys[MAX_KEYS] = {"host",
                                  "port",
                                  "user",
                                  "dbname",
                                  "passfile",
                                  "connect_timeout",
                                  "application_name",
                                  "gssencmode",
                                  replication ? "replication" : NULL,
                                  NULL};
    const char *vals[MAX_KEYS] = {host,       portbuf,   user,
                                  "postgres", passfile,  ct,
                                  "pgwarden", "disable", replication ? "true" : NULL,
                                  NULL};
    char where[PG_HOST_MAX + 64];
    snprintf(where, sizeof(where), "%s:%u as %s%s", host, (unsigned)port, user,
             replication ? " (replication)" : "");
    return connect_deadline(pg, keys, vals, where, rc, err);
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
}

static bool sqlstate_in(const char *state, const char *list)
{
    if (!state || !list || strlen(state) != 5)
        return false;
    for (const char *p = list; (p = strstr(p, state)) != NULL; p += 5) {
        bool start = p == list || p[-1] == ' ';
        bool end = p[5] == '\0' || p[5] == ' ';
        if (start && end)
            return true;
    }
    return false;
}

int pgi_exec(const struct pg_instance *pg, PGconn *c, const char *step, const char *sql,
             int nparams, const char *const *params, uint64_t deadline_ms, const char *quiet,
             PGresult **res, struct pg_error *err)
{
    *res = NULL;
    if (err)
        err->sqlstate[0] = '\0';
    char msg[PG_ERRMSG_MAX / 2];
    int ok = nparams > 0 ? PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0)
                         : PQsendQuery(c, sql);
    if (!ok) {
        pgi_tail(pg, PQerrorMessage(c), 3, msg, sizeof(msg));
        return pgi_fail(err, step, -ECONNRESET, "cannot send the query: %s", msg);
    }
    PGresult *keep = NULL;
    for (;;) {
        while (!PQisBusy(c)) {
            PGresult *r = PQgetResult(c);
            if (!r)
                goto done;
            if (keep && !result_ok(keep)) {
                PQclear(r); /* the first error is what we report */
                continue;
            }
            PQclear(keep);
            keep = r;
        }
        int left = remaining_ms(deadline_ms);
        if (left == 0) {
            PQclear(keep);
            return pgi_fail(err, step, -ETIMEDOUT,
                            "no answer in time (the query may go on "
                            "until statement_timeout)");
        }
        struct pollfd pf = {.fd = PQsocket(c), .events = POLLIN};
        int r = poll(&pf, 1, left);
        if (r < 0 && errno != EINTR) {
            PQclear(keep);
            return pgi_fail(err, step, -errno, "poll: %s", strerror(errno));
        }
        if (r > 0 && !PQconsumeInput(c)) {
            PQclear(keep);
            pgi_tail(pg, PQerrorMessage(c), 3, msg, sizeof(msg));
            return pgi_fail(err, step, -ECONNRESET, "connection lost: %s", msg);
        }
    }
done:
    if (!keep)
        return pgi_fail(err, step, -EIO, "no result");
    if (result_ok(keep)) {
        *res = keep;
        return 0;
    }
    const char *state = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
    if (err)
        snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
    pgi_tail(pg, PQresultErrorMessage(keep), 3, msg, sizeof(msg));
    bool q = sqlstate_in(state, quiet);
    PQclear(keep);
    if (q) {
        if (err) {
            snprintf(err->step, sizeof(err->step), "%s", step);
            snprintf(err->msg, sizeof(err->msg), "%s", msg);
        }
        return -EIO;
    }
    return pgi_fail(err, step, -EIO, "%s", msg);
}

/* ---- result fields ---- */

bool pgi_get_lsn(const PGresult *r, int row, int col, uint64_t *out)
{
    *out = 0;
    if (PQgetisnull(r, row, col))
        return false;
    return pg_lsn_parse(PQgetvalue(r, row, col), out) == 0;
}

bool pgi_get_u64(const PGresult *r, int row, int col, uint64_t *out)
{
    *out = 0;
    if (PQgetisnull(r, row, col))
        return false;
    return pgi_parse_u64(PQgetvalue(r, row, col), out);
}

bool pgi_get_i64(const PGresult *r, int row, int col, int64_t *out)
{
    *out = 0;
    if (PQgetisnull(r, row, col))
        return false;
    const char *s = PQgetvalue(r, row, col);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

bool pgi_get_bool(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return false;
    const char *v = PQgetvalue(r, row, col);
    return strcmp(v, "t") == 0 || strcmp(v, "on") == 0 || strcmp(v, "true") == 0;
}

void pgi_get_str(const PGresult *r, int row, int col, char *out, size_t cap)
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    snprintf(out, cap, "%s", v);
}
