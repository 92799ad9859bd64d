/* Election driver: synchronous replication on the leader (the `sync` key and the standby names). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/dcs/member.h"
#include "agent/dcs/values.h"
#include "agent/etcd/etcd.h"
#include "agent/ha/elector_int.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

enum { RELOAD_TIMEOUT_MS = 10000 };

/*
 * Safety rule (Patroni's order): every member listed in `sync` has been confirmed synchronous
 * by PostgreSQL, so any of them may be promoted without losing a committed transaction.
 * Removing a standby: `sync` first, then synchronous_standby_names. Adding one:
 * synchronous_standby_names first, then `sync` once pg_stat_replication shows it as sync.
 */

static bool in_list(char (*list)[DCS_NAME_MAX], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(list[i], name) == 0)
            return true;
    return false;
}

/* members/<name> exists, says running (not being copied, started or stopped) and is not tagged
 * nosync. */
static bool member_may_sync(struct elector *e, const char *name, struct dcs_member *m)
{
    char key[DCS_KEY_MAX];
    if (dcs_key_path(&e->keys, DCS_KEY_MEMBER, name, key, sizeof(key)) < 0)
        return false;
    const struct kvc_entry *en = kvc_get(&e->cache, key);
    return en && dcs_member_decode(en->value, en->value_len, name, m, NULL) && !m->tags.nosync &&
           m->state == DCS_STATE_RUNNING;
}

static int cmp_flush_desc(const void *a, const void *b)
{
    const struct pg_replica *x = a, *y = b;
    return x->flush_lsn < y->flush_lsn ? 1 : x->flush_lsn > y->flush_lsn ? -1 : 0;
}

void elector_sync_observe(struct elector *e)
{
    struct elector_sync_plan *p = &e->sync;
    memset(p, 0, sizeof(*p));
    if (!elector_sync_mode(e))
        return;
    if (!e->repl_valid)
        return; /* the plan stays invalid: nothing changes until PostgreSQL answers */
    /* a copy of this step's pg_stat_replication rows, sorted here by flush position */
    size_t n = e->nrepl;
    struct pg_replica *rows = malloc((n ? n : 1) * sizeof(*rows));
    if (!rows)
        return;
    if (n)
        memcpy(rows, e->repl, n * sizeof(*rows));
    struct dcs_sync s;
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_sync);
    if (!en || !dcs_sync_decode(en->value, en->value_len, &s, NULL))
        memset(&s, 0, sizeof(s));
    bool mine = strcasecmp(s.leader, e->ec.name) == 0;
    size_t want = e->dyn.synchronous_node_count > 0 ? (size_t)e->dyn.synchronous_node_count : 1;
    if (want > DCS_SYNC_MAX)
        want = DCS_SYNC_MAX;
    struct dcs_member *m = malloc(sizeof(*m));
    if (!m) {
        free(rows);
        return;
    }
    if (n > 1)
        qsort(rows, n, sizeof(rows[0]), cmp_flush_desc);
    /* Current sync standbys first (no needless switch), then by flush position. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n && p->npicked < want; i++) {
            const char *name = rows[i].application_name;
            bool current = mine && dcs_sync_matches(&s, name, false);
            if ((pass == 0) != current || strcmp(rows[i].state, "streaming") != 0 ||
                in_list(p->picked, p->npicked, name) || !member_may_sync(e, name, m))
                continue;
            snprintf(p->picked[p->npicked++], DCS_NAME_MAX, "%s", name);
        }
    }
    for (size_t i = 0; i < n && p->nconfirmed < DCS_SYNC_MAX; i++) {
        if ((strcmp(rows[i].sync_state, "sync") == 0 ||
             strcmp(rows[i].sync_state, "quorum") == 0) &&
            strcmp(rows[i].state, "streaming") == 0)
            snprintf(p->confirmed[p->nconfirmed++], DCS_NAME_MAX, "%s", rows[i].application_name);
    }
    free(m);
    free(rows);
    const char *names[DCS_SYNC_MAX];
    for (size_t i = 0; i < p->npicked; i++)
        names[i] = p->picked[i];
    if (p->npicked == 0)
        snprintf(p->ssn, sizeof(p->ssn), "%s", e->dyn.synchronous_mode_strict ? "*" : "");
    else if (pg_sync_names_render(names, p->npicked, p->ssn, sizeof(p->ssn)) < 0)
        return;
    p->valid = true;
}

/* The `sync` standbys wanted now: picked and confirmed. */
static size_t wanted_key(const struct elector *e, char (*out)[DCS_NAME_MAX])
{
    const struct elector_sync_plan *p = &e->sync;
    size_t n = 0;
    for (size_t i = 0; i < p->npicked; i++)
        if (in_list((char(*)[DCS_NAME_MAX])p->confirmed, p->nconfirmed, p->picked[i]))
            snprintf(out[n++], DCS_NAME_MAX, "%s", p->picked[i]);
    return n;
}

static bool same_set(const struct dcs_sync *s, char (*list)[DCS_NAME_MAX], size_t n)
{
    if (s->nstandby != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!in_list(list, n, s->standby[i]))
            return false;
    return true;
}

bool elector_sync_ok(struct elector *e, const struct elect_view *v)
{
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_sync);
    if (!v->sync_mode)
        return !(en && v->sync_key_mine) && e->ssn[0] == '\0';
    if (!e->sync.valid)
        return true; /* nothing known to act on */
    struct dcs_sync s;
    if (!en || !dcs_sync_decode(en->value, en->value_len, &s, NULL) || !v->sync_key_mine)
        return false;
    char want[DCS_SYNC_MAX][DCS_NAME_MAX];
    size_t n = wanted_key(e, want);
    return strcmp(e->ssn, e->sync.ssn) == 0 && same_set(&s, want, n);
}

/* Writes `sync` = {leader: me, sync_standby: list} if its mod revision is still the cached one. */
static int write_sync(struct elector *e, char (*list)[DCS_NAME_MAX], size_t n)
{
    struct dcs_sync s;
    memset(&s, 0, sizeof(s));
    snprintf(s.leader, sizeof(s.leader), "%s", e->ec.name);
    for (size_t i = 0; i < n; i++)
        snprintf(s.standby[s.nstandby++], DCS_NAME_MAX, "%s", list[i]);
    size_t len = 0;
    char *value = dcs_sync_encode(&s, &len, NULL);
    if (!value)
        return -ENOMEM;
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_sync);
    const struct etcd_cmp cmp = {.target = en ? ETCD_CMP_MOD : ETCD_CMP_CREATE,
                                 .op = ETCD_EQUAL,
                                 .key = e->k_sync,
                                 .number = en ? en->mod_rev : 0};
    const struct etcd_op put = {.type = ETCD_OP_PUT,
                                .put = {.key = e->k_sync, .value = value, .value_len = len}};
    const struct etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1};
    struct etcd_txn_result t;
    int rc = etcd_txn(e->etcd, &req, &t);
    if (rc != 0) {
        log_warn("cannot write the sync key", "err=\"%s\"", etcd_last_error(e->etcd)->message);
        free(value);
        return -EIO;
    }
    if (t.succeeded) {
        kvc_put(&e->cache, e->k_sync, value, len, en ? en->create_rev : t.header.revision,
                t.header.revision, 0);
        log_info("sync key written", "value=%s", value);
    } else {
        log_info("sync key changed meanwhile; reading it again");
        rc = -EAGAIN; /* the watch brings the new value */
    }
    etcd_txn_result_clear(&t);
    free(value);
    return rc;
}

static int set_ssn(struct elector *e, const char *ssn)
{
    struct pg_error err;
    struct pg_conf c;
    snprintf(e->ssn, sizeof(e->ssn), "%s", ssn);
    e->ssn_known = true;
    elector_make_conf(e, &c, false, NULL, 0);
    int rc = pg_conf_apply(&e->pg, &c, &err);
    if (rc == 0)
        rc = pg_reload(&e->pg, RELOAD_TIMEOUT_MS, &err);
    if (rc == 0)
        log_info("synchronous_standby_names set", "value=\"%s\"", ssn);
    return rc;
}

static int delete_sync(struct elector *e)
{
    struct etcd_delete_result dr;
    const struct etcd_delete_req req = {.key = e->k_sync};
    if (etcd_delete(e->etcd, &req, &dr) != 0) {
        log_warn("cannot delete the sync key");
        return -EIO;
    }
    kvc_delete(&e->cache, e->k_sync, dr.header.revision);
    etcd_delete_result_clear(&dr);
    log_info("synchronous mode off: sync key deleted");
    return 0;
}

int elector_sync_perform(struct elector *e, const struct elect_view *v)
{
    int rc = 0;
    if (!v->sync_mode) {
        if (v->sync_key_mine && kvc_get(&e->cache, e->k_sync))
            rc = delete_sync(e);
        if (rc == 0 && e->ssn[0])
            rc = set_ssn(e, "");
        return rc;
    }
    struct dcs_sync s;
    const struct kvc_entry *en = kvc_get(&e->cache, e->k_sync);
    if (!en || !dcs_sync_decode(en->value, en->value_len, &s, NULL))
        memset(&s, 0, sizeof(s));
    if (!v->sync_key_mine || !e->sync.valid) {
        /* Just won the race (maybe not promoted yet): only we may be promoted for now. */
        return write_sync(e, NULL, 0);
    }
    char want[DCS_SYNC_MAX][DCS_NAME_MAX];
    size_t nwant = wanted_key(e, want);
    if (strcmp(e->ssn, e->sync.ssn) != 0) {
        /* Remove first: keep only the current sync standbys that stay picked and confirmed. */
        char keep[DCS_SYNC_MAX][DCS_NAME_MAX];
        size_t nkeep = 0;
        for (size_t i = 0; i < s.nstandby; i++)
            if (in_list(want, nwant, s.standby[i]))
                snprintf(keep[nkeep++], DCS_NAME_MAX, "%s", s.standby[i]);
        if (nkeep != s.nstandby && (rc = write_sync(e, keep, nkeep)) < 0)
            return rc;
        return set_ssn(e, e->sync.ssn); /* `sync` grows at the next observation */
    }
    if (!same_set(&s, want, nwant))
        rc = write_sync(e, want, nwant);
    return rc;
}
