/* The control file: pg_controldata parsing, the system identifier check, checkpoint record end. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *text;
    enum pg_cluster_state state;
} state_names[] = {
    {"starting up", PG_STATE_STARTING_UP},
    {"shut down", PG_STATE_SHUT_DOWN},
    {"shut down in recovery", PG_STATE_SHUT_DOWN_IN_RECOVERY},
    {"shutting down", PG_STATE_SHUTTING_DOWN},
    {"in crash recovery", PG_STATE_IN_CRASH_RECOVERY},
    {"in archive recovery", PG_STATE_IN_ARCHIVE_RECOVERY},
    {"in production", PG_STATE_IN_PRODUCTION},
};

const char *pg_cluster_state_name(enum pg_cluster_state s)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (state_names[i].state == s)
            return state_names[i].text;
    }
    return "unknown";
}

static bool parse_u32(const char *v, uint32_t *out)
{
    uint64_t x;
    if (!pgi_parse_u64(v, &x) || x > UINT32_MAX)
        return false;
    *out = (uint32_t)x;
    return true;
}

enum {
    SEEN_SYSID = 1,
    SEEN_STATE = 2,
    SEEN_CKPT = 4,
    SEEN_REDO = 8,
    SEEN_TLI = 16,
    SEEN_REQUIRED = 31,
};

/* Applies one "key: value" line; false if a known key has a malformed value. */
static bool control_line(const char *key, const char *v, struct pg_controldata *o, int *seen)
{
    bool ok = true;
    if (strcmp(key, "Database system identifier") == 0) {
        ok = pgi_parse_u64(v, &o->system_id);
        *seen |= SEEN_SYSID;
    } else if (strcmp(key, "Database cluster state") == 0) {
        o->state = PG_STATE_UNKNOWN;
        for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
            if (strcmp(v, state_names[i].text) == 0)
                o->state = state_names[i].state;
        }
        *seen |= SEEN_STATE;
    } else if (strcmp(key, "Latest checkpoint location") == 0) {
        ok = pg_lsn_parse(v, &o->checkpoint_lsn) == 0;
        *seen |= SEEN_CKPT;
    } else if (strcmp(key, "Latest checkpoint's REDO location") == 0) {
        ok = pg_lsn_parse(v, &o->redo_lsn) == 0;
        *seen |= SEEN_REDO;
    } else if (strcmp(key, "Latest checkpoint's TimeLineID") == 0) {
        ok = parse_u32(v, &o->timeline);
        *seen |= SEEN_TLI;
    } else if (strcmp(key, "Latest checkpoint's PrevTimeLineID") == 0) {
        ok = parse_u32(v, &o->prev_timeline);
    } else if (strcmp(key, "Minimum recovery ending location") == 0) {
        ok = pg_lsn_parse(v, &o->min_recovery_lsn) == 0;
    } else if (strcmp(key, "Min recovery ending loc's timeline") == 0) {
        ok = parse_u32(v, &o->min_recovery_tli);
    } else if (strcmp(key, "wal_log_hints setting") == 0) {
        o->wal_log_hints = strcmp(v, "on") == 0;
    } else if (strcmp(key, "Data page checksum version") == 0) {
        ok = parse_u32(v, &o->checksum_version);
    }
    return ok;
}

int pg_controldata_parse(const char *text, struct pg_controldata *out)
{
    memset(out, 0, sizeof(*out));
    int seen = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[512];
        if (n >= sizeof(line))
            n = sizeof(line) - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl ? nl + 1 : NULL;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\r'))
            v[--vl] = '\0';
        if (!control_line(line, v, out, &seen))
            return -EBADMSG;
    }
    return (seen & SEEN_REQUIRED) == SEEN_REQUIRED ? 0 : -EBADMSG;
}

int pg_controldata_read(const struct pg_instance *pg, struct pg_controldata *out,
                        struct pg_error *err)
{
    char tool[PGI_PATH];
    if (pgi_tool(pg, "pg_controldata", tool, sizeof(tool)) < 0)
        return pgi_fail(err, "pg_controldata", -ENAMETOOLONG, "bin_dir is too long");
    const char *argv[] = {tool, "-D", pg->data_dir, NULL};
    struct spawn_result r;
    int rc = pgi_run(pg, "pg_controldata", argv, NULL, NULL, 30000, false, &r, err);
    if (rc == 0) {
        rc = pg_controldata_parse(r.output, out);
        if (rc < 0)
            rc = pgi_fail(err, "pg_controldata", rc, "cannot parse the output of %s", tool);
    }
    spawn_result_free(&r);
    return rc;
}

int pg_sysid_check(const struct pg_instance *pg, const char *expected, struct pg_error *err)
{
    uint64_t want;
    if (!pgi_parse_u64(expected, &want))
        return pgi_fail(err, "system identifier", -EINVAL,
                        "the cluster's system identifier \"%.40s\" is not a number", expected);
    struct pg_controldata cd;
    int rc = pg_controldata_read(pg, &cd, err);
    if (rc < 0)
        return rc;
    if (cd.system_id != want)
        return pgi_fail(err, "system identifier", -EXDEV,
                        "data directory %s belongs to database system %" PRIu64
                        ", but the cluster was initialized with system identifier %" PRIu64
                        " (etcd initialize key): this node's data is from another cluster",
                        pg->data_dir, cd.system_id, want);
    return 0;
}

int pg_waldump_checkpoint_end_parse(const char *text, uint64_t lsn, uint64_t *end)
{
    char rec[48], at[64];
    snprintf(rec, sizeof(rec), ", lsn: %" PRIX32 "/%08" PRIX32 ", prev ", (uint32_t)(lsn >> 32),
             (uint32_t)lsn);
    char l[PG_LSN_STRLEN];
    snprintf(at, sizeof(at), "error in WAL record at %s: invalid record length at ",
             pg_lsn_format(lsn, l, sizeof(l)));
    int records = 0;
    bool ours = false;
    const char *errline = NULL;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n >= 5 && strncmp(p, "rmgr:", 5) == 0) {
            records++;
            const char *hit = strstr(p, rec);
            ours = ours || (hit && hit < p + n);
        }
        const char *hit = strstr(p, at);
        if (hit && hit < p + n)
            errline = hit + strlen(at);
        p = nl ? nl + 1 : NULL;
    }
    if (records != 1 || !ours || !errline)
        return -ENOENT;
    /* "<END>: wanted 24, got 0" (up to PG 15) or "<END>: expected at least 24, got 0". */
    const char *colon = strchr(errline, ':');
    if (!colon || (size_t)(colon - errline) >= PG_LSN_STRLEN)
        return -ENOENT;
    char buf[PG_LSN_STRLEN];
    memcpy(buf, errline, (size_t)(colon - errline));
    buf[colon - errline] = '\0';
    if (strncmp(colon, ": wanted ", 9) != 0 && strncmp(colon, ": expected at least ", 20) != 0)
        return -ENOENT;
    return pg_lsn_parse(buf, end) == 0 ? 0 : -ENOENT;
}
