/* Online migration, pure parts: the source's logical-replication checks, names, SQL, lag text. */
#include "agent/migrate/migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends one numbered problem line to out. */
static void problem(char *out, size_t cap, size_t *o, int *n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void problem(char *out, size_t cap, size_t *o, int *n, const char *fmt, ...)
{
    (*n)++;
    if (*o >= cap)
        return;
    int w = snprintf(out + *o, cap - *o, "%s  - ", *o ? "\n" : "");
    if (w > 0)
        *o = *o + (size_t)w >= cap ? cap : *o + (size_t)w;
    if (*o >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(out + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (w > 0)
        *o = *o + (size_t)w >= cap ? cap : *o + (size_t)w;
}

int mig_logical_check(const struct mig_logical_facts *f, bool ri_full, char *out, size_t cap)
{
    size_t o = 0;
    int n = 0;
    if (cap)
        out[0] = '\0';
    if (f->version < 100000)
        problem(out, cap, &o, &n,
                "the source runs PostgreSQL %d.%d: logical replication needs 10 "
                "or later",
                f->version / 10000, f->version % 10000 / 100);
    if (strcmp(f->wal_level, "logical") != 0)
        problem(out, cap, &o, &n,
                "wal_level is '%s' on the source: it must be 'logical' (ALTER SYSTEM SET "
                "wal_level = logical and a restart; on RDS: rds.logical_replication = 1)",
                f->wal_level);
    if (!f->superuser && !f->replication)
        problem(out, cap, &o, &n,
                "the source user has neither the REPLICATION attribute nor superuser (ALTER ROLE "
                "... REPLICATION; on RDS: GRANT rds_replication)");
    else if (!f->replication_conn_ok)
        problem(out, cap, &o, &n, "a replication connection to the source is refused: %s",
                f->replication_conn_err[0] ? f->replication_conn_err : "unknown reason");
    if (!f->superuser && !f->can_create)
        problem(out, cap, &o, &n,
                "the source user cannot create a publication (it needs CREATE on the database)");
    if (!f->superuser && f->tables_not_owned > 0)
        problem(out, cap, &o, &n,
                "the source user owns neither all the tables (%lld are owned by other roles: "
                "a publication can only list tables that its creator owns) nor is it a superuser",
                f->tables_not_owned);
    if (f->slots_free < MIG_ONLINE_SLOTS)
        problem(out, cap, &o, &n,
                "the source has %d free replication slot%s (max_replication_slots): online mode "
                "needs %d (one for the subscription, one per table being copied)",
                f->slots_free, f->slots_free == 1 ? "" : "s", MIG_ONLINE_SLOTS);
    if (f->senders_free < MIG_ONLINE_SLOTS)
        problem(out, cap, &o, &n,
                "the source has %d free WAL sender%s (max_wal_senders): online mode needs %d",
                f->senders_free, f->senders_free == 1 ? "" : "s", MIG_ONLINE_SLOTS);
    if (f->large_objects > 0)
        problem(out, cap, &o, &n,
                "the source holds %lld large object%s: logical replication does not copy them "
                "(use the dump mode, without --online)",
                f->large_objects, f->large_objects == 1 ? "" : "s");
    if (f->nnokey > 0 && !ri_full)
        problem(out, cap, &o, &n,
                "%zu table%s without a primary key or replica identity (%s): once published, "
                "UPDATE and DELETE on %s fail on the source; add a primary key, or pass "
                "--replica-identity-full (sets REPLICA IDENTITY FULL on %s)",
                f->nnokey, f->nnokey == 1 ? "" : "s", f->nokey, f->nnokey == 1 ? "it" : "them",
                f->nnokey == 1 ? "it" : "them");
    return n;
}

int mig_repl_name(int64_t id, uint64_t salt, char *out, size_t cap)
{
    int n = snprintf(out, cap, "pgwarden_mig_%" PRId64 "_%08" PRIx64, id, salt & 0xffffffffu);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

char *mig_publication_sql(const char *name, bool all_tables, const char *const *tables, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    if (!f)
        return NULL;
    fprintf(f, "CREATE PUBLICATION %s", name);
    if (all_tables) {
        fprintf(f, " FOR ALL TABLES");
    } else {
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s%s", i ? ", " : " FOR TABLE ", tables[i]);
    }
    if (fclose(f) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

int mig_sub_conninfo(const struct mig_url *u, const char *password, char *out, size_t cap)
{
    int rc = mig_url_conninfo(u, NULL, NULL, NULL, out, cap);
    if (rc < 0 || !password || !password[0])
        return rc;
    size_t o = strlen(out);
    const char *pre = " password='";
    for (const char *p = pre; *p; p++) {
        if (o + 1 >= cap)
            return -ENOSPC;
        out[o++] = *p;
    }
    for (const char *p = password; *p; p++) {
        if (o + 3 >= cap)
            return -ENOSPC;
        if (*p == '\'' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    if (o + 2 > cap)
        return -ENOSPC;
    out[o++] = '\'';
    out[o] = '\0';
    return 0;
}

char *mig_fmt_lag(int64_t lag_bytes, char *out, size_t cap)
{
    char b[32];
    if (lag_bytes < 0)
        snprintf(out, cap, "unknown");
    else if (lag_bytes == 0)
        snprintf(out, cap, "0 B (in sync)");
    else
        snprintf(out, cap, "%s", mig_fmt_bytes((uint64_t)lag_bytes, b, sizeof(b)));
    return out;
}

char *mig_online_line(enum mig_phase ph, uint64_t tables_done, uint64_t tables_total,
                      int64_t lag_bytes, long long errors, char *out, size_t cap)
{
    char lag[48], err[64] = "";
    if (errors > 0)
        snprintf(err, sizeof(err), ", %lld replication error%s (see the leader's log)", errors,
                 errors == 1 ? "" : "s");
    if (ph == MIG_PH_COPY)
        snprintf(out, cap, "initial copy: %" PRIu64 "/%" PRIu64 " tables copied, lag %s%s",
                 tables_done, tables_total, mig_fmt_lag(lag_bytes, lag, sizeof(lag)), err);
    else
        snprintf(out, cap, "%s: lag %s%s", mig_phase_name(ph),
                 mig_fmt_lag(lag_bytes, lag, sizeof(lag)), err);
    return out;
}
