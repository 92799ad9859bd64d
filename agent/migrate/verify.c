/* Migration verification queries: table lists, catalog inventory, parallel per-table checks. */
#include "agent/migrate/mig_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/clock.h"

enum { CATALOG_TIMEOUT_MS = 300000, MAX_POLL = 130 };

#define USER_NS           MIG_USER_NS
#define NOT_EXT(cls, oid) MIG_NOT_EXT(cls, oid)

static const char tables_sql[] =
    "SELECT n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || "
    "quote_ident(c.relname), c.relname, pg_table_size(c.oid) FROM pg_class c JOIN pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND " USER_NS
    " AND " NOT_EXT("pg_class", "c.oid") " ORDER BY 4 DESC, 1";

static const char catalog_sql[] =
    "WITH ns AS (SELECT n.oid, n.nspname FROM pg_namespace n WHERE " USER_NS "), "
    "extm AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'), "
    "rel AS (SELECT c.oid, c.relkind, c.relname, ns.nspname FROM pg_class c JOIN ns ON ns.oid = "
    "c.relnamespace WHERE NOT EXISTS (SELECT 1 FROM extm WHERE extm.classid = "
    "'pg_class'::regclass AND extm.objid = c.oid)) "
    "SELECT 'schema', nspname, 'present' FROM ns WHERE NOT EXISTS (SELECT 1 FROM extm WHERE "
    "extm.classid = 'pg_namespace'::regclass AND extm.objid = ns.oid) "
    "UNION ALL SELECT 'extension', extname, 'installed' FROM pg_extension "
    "UNION ALL SELECT 'count', CASE relkind WHEN 'r' THEN 'tables' WHEN 'p' THEN 'partitioned "
    "tables' WHEN 'v' THEN 'views' WHEN 'm' THEN 'materialized views' WHEN 'S' THEN 'sequences' "
    "WHEN 'i' THEN 'indexes' WHEN 'I' THEN 'partitioned indexes' WHEN 'f' THEN 'foreign tables' "
    "ELSE 'composite types' END || ' in ' || nspname, count(*)::text FROM rel WHERE relkind IN "
    "('r', 'p', 'v', 'm', 'S', 'i', 'I', 'f', 'c') GROUP BY 2 "
    "UNION ALL SELECT 'count', CASE co.contype WHEN 'p' THEN 'primary keys' WHEN 'u' THEN "
    "'unique constraints' WHEN 'f' THEN 'foreign keys' WHEN 'c' THEN 'check constraints' WHEN "
    "'x' THEN 'exclusion constraints' ELSE 'constraints (' || co.contype::text || ')' END || ' in "
    "' || "
    "ns.nspname, count(*)::text FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace WHERE "
    "NOT EXISTS (SELECT 1 FROM extm WHERE extm.classid = 'pg_class'::regclass AND extm.objid = "
    "co.conrelid) GROUP BY 2 "
    "UNION ALL SELECT 'count', 'functions in ' || ns.nspname, count(*)::text FROM pg_proc p JOIN "
    "ns ON ns.oid = p.pronamespace WHERE NOT EXISTS (SELECT 1 FROM extm WHERE extm.classid = "
    "'pg_proc'::regclass AND extm.objid = p.oid) GROUP BY 2 "
    "UNION ALL SELECT 'count', 'triggers in ' || rel.nspname, count(*)::text FROM pg_trigger t "
    "JOIN rel ON rel.oid = t.tgrelid WHERE NOT t.tgisinternal GROUP BY 2 "
    "UNION ALL SELECT 'count', 'types in ' || ns.nspname, count(*)::text FROM pg_type ty JOIN ns "
    "ON ns.oid = ty.typnamespace WHERE ty.typtype IN ('e', 'd', 'r') AND NOT EXISTS (SELECT 1 "
    "FROM extm WHERE extm.classid = 'pg_type'::regclass AND extm.objid = ty.oid) GROUP BY 2 "
    "UNION ALL SELECT 'sequence', rel.nspname || '.' || rel.relname, coalesce(s.last_value::text, "
    "'not called') FROM rel JOIN pg_sequences s ON s.schemaname = rel.nspname AND "
    "s.sequencename = rel.relname WHERE rel.relkind = 'S' "
    "UNION ALL SELECT 'large_objects', 'count', count(*)::text FROM pg_largeobject_metadata";

int mig_tables_list(PGconn *c, int sigfd, struct mig_table **out, size_t *n, char *err, size_t cap)
{
    *out = NULL;
    *n = 0;
    PGresult *r = NULL;
    int rc = mig_exec(c, tables_sql, 0, NULL, CATALOG_TIMEOUT_MS, sigfd, &r, NULL, err, cap);
    if (rc < 0)
        return rc;
    int rows = PQntuples(r);
    struct mig_table *t = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*t));
    if (!t) {
        PQclear(r);
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < rows; i++) {
        snprintf(t[i].name, sizeof(t[i].name), "%s", PQgetvalue(r, i, 0));
        snprintf(t[i].sql, sizeof(t[i].sql), "%s", PQgetvalue(r, i, 1));
        snprintf(t[i].relname, sizeof(t[i].relname), "%s", PQgetvalue(r, i, 2));
        t[i].bytes = strtoull(PQgetvalue(r, i, 3), NULL, 10);
    }
    PQclear(r);
    *out = t;
    *n = (size_t)rows;
    return 0;
}

int mig_inventory_catalog(PGconn *c, int sigfd, struct mig_inventory *inv, char *err, size_t cap)
{
    PGresult *r = NULL;
    int rc = mig_exec(c, catalog_sql, 0, NULL, CATALOG_TIMEOUT_MS, sigfd, &r, NULL, err, cap);
    if (rc < 0)
        return rc;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = mig_inventory_add(inv, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    if (rc < 0)
        snprintf(err, cap, "out of memory");
    return rc;
}

enum mig_digest mig_digest_for(bool checksums, int src_ver)
{
    if (!checksums)
        return MIG_DIGEST_NONE;
    return src_ver >= 110000 ? MIG_DIGEST_HASH64 : MIG_DIGEST_MD5;
}

int mig_table_check_sql(const char *table_sql, enum mig_digest digest, char *out, size_t cap)
{
    int n;
    switch (digest) {
    case MIG_DIGEST_HASH64:
        /* ROW(r.*)::text costs about as much as the rest: one text, one hash, an exact sum */
        n = snprintf(out, cap,
                     "SELECT count(*), coalesce(sum(hashtextextended(ROW(r.*)::text, 0)), 0)::"
                     "text FROM ONLY %s AS r",
                     table_sql);
        break;
    case MIG_DIGEST_MD5:
        n = snprintf(out, cap,
                     "SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::"
                     "numeric), 0)::text || '/' || coalesce(sum(('x' || substr(h, 17, 16))::"
                     "bit(64)::bigint::numeric), 0)::text FROM (SELECT md5(ROW(r.*)::text) AS h "
                     "FROM ONLY %s AS r) q",
                     table_sql);
        break;
    default:
        n = snprintf(out, cap, "SELECT count(*) FROM ONLY %s", table_sql);
        break;
    }
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

/* One connection of the pool: which table it is checking (-1: idle). */
struct slot {
    struct mig_side *side;
    PGconn *c;
    long table;
    PGresult *keep;
};

static void record(struct slot *s, bool checksums)
{
    struct mig_table *t = &s->side->tables[s->table];
    PGresult *r = s->keep;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char msg[MIG_VALUE_MAX], one[MIG_VALUE_MAX - 8];
        mig_oneline(r ? PQresultErrorMessage(r) : "no result", one, sizeof(one));
        snprintf(msg, sizeof(msg), "error: %s", one);
        mig_inventory_set(s->side->inv, "rows", t->name, msg);
        if (checksums)
            mig_inventory_set(s->side->inv, "checksum", t->name, msg);
    } else {
        mig_inventory_set(s->side->inv, "rows", t->name, PQgetvalue(r, 0, 0));
        if (checksums)
            mig_inventory_set(s->side->inv, "checksum", t->name, PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    s->keep = NULL;
    t->done = true;
    s->table = -1;
}

static int dispatch(struct slot *s, size_t *next, enum mig_digest digest, char *err, size_t cap)
{
    if (*next >= s->side->ntables)
        return 0;
    char sql[4 * MIG_NAME_MAX + 512];
    struct mig_table *t = &s->side->tables[*next];
    if (mig_table_check_sql(t->sql, digest, sql, sizeof(sql)) < 0 || !PQsendQuery(s->c, sql)) {
        char one[256];
        mig_oneline(PQerrorMessage(s->c), one, sizeof(one));
        snprintf(err, cap, "lost the connection to the %s during verification: %s", s->side->what,
                 one);
        return -ECONNRESET;
    }
    s->table = (long)*next;
    t->started = true;
    (*next)++;
    return 0;
}

int mig_tables_check(struct mig_side *sides, size_t nsides, enum mig_digest digest, int sigfd,
                     void (*tick)(void *ctx, size_t done, size_t total), void *ctx, char *err,
                     size_t cap)
{
    struct slot slots[MAX_POLL - 1];
    size_t nslots = 0, total = 0, done = 0;
    size_t next[8] = {0};
    if (nsides > 8)
        return -EINVAL;
    for (size_t i = 0; i < nsides; i++) {
        total += sides[i].ntables;
        for (size_t k = 0; k < sides[i].nconns && nslots < MAX_POLL - 1; k++)
            slots[nslots++] = (struct slot){.side = &sides[i], .c = sides[i].conns[k], .table = -1};
    }
    uint64_t last_tick = 0;
    int rc = 0;
    while (rc == 0) {
        size_t busy = 0;
        for (size_t i = 0; rc == 0 && i < nslots; i++) {
            if (slots[i].table < 0)
                rc = dispatch(&slots[i], &next[slots[i].side - sides], digest, err, cap);
            if (slots[i].table >= 0)
                busy++;
        }
        if (rc < 0 || busy == 0)
            break;
        uint64_t now = clock_mono_ms();
        if (tick && now >= last_tick + 1000) {
            tick(ctx, done, total);
            last_tick = now;
        }
        struct pollfd pf[MAX_POLL];
        size_t np = 0;
        pf[np++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        for (size_t i = 0; i < nslots; i++)
            pf[np++] = (struct pollfd){.fd = slots[i].table >= 0 ? PQsocket(slots[i].c) : -1,
                                       .events = POLLIN};
        int pr = poll(pf, np, 1000);
        if (pr < 0)
            continue;
        if (sigfd >= 0 && (pf[0].revents & POLLIN)) {
            snprintf(err, cap, "interrupted");
            rc = -ECANCELED;
            break;
        }
        for (size_t i = 0; rc == 0 && i < nslots; i++) {
            struct slot *s = &slots[i];
            if (s->table < 0 || !pf[i + 1].revents)
                continue;
            if (!PQconsumeInput(s->c)) {
                char one[256];
                mig_oneline(PQerrorMessage(s->c), one, sizeof(one));
                snprintf(err, cap, "lost the connection to the %s during verification: %s",
                         s->side->what, one);
                rc = -ECONNRESET;
                break;
            }
            while (!PQisBusy(s->c)) {
                PGresult *r = PQgetResult(s->c);
                if (!r) {
                    record(s, digest != MIG_DIGEST_NONE);
                    done++;
                    break;
                }
                if (s->keep && PQresultStatus(s->keep) != PGRES_TUPLES_OK) {
                    PQclear(r); /* keep the first error */
                    continue;
                }
                PQclear(s->keep);
                s->keep = r;
            }
            if (s->table >= 0 && PQstatus(s->c) == CONNECTION_BAD) {
                char one[256];
                mig_oneline(PQerrorMessage(s->c), one, sizeof(one));
                snprintf(err, cap, "lost the connection to the %s during verification: %s",
                         s->side->what, one);
                rc = -ECONNRESET;
            }
        }
    }
    for (size_t i = 0; i < nslots; i++) {
        PQclear(slots[i].keep);
        slots[i].keep = NULL;
    }
    if (rc == 0 && tick)
        tick(ctx, done, total);
    return rc;
}
