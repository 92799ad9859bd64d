/* Election driver, replication slots: the leader keeps one physical slot per other member, and
 * the slot of a member that is gone for member_slots_ttl (Patroni 4), so it can come back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ha/elector_int.h"
#include "platform/clock.h"
#include "platform/log.h"

#define LOG_MODULE "ha"

static uint64_t member_slots_ttl_ms(const struct elector *e)
{
    int64_t s = e->dyn_present ? e->dyn.member_slots_ttl : DCS_DEFAULT_MEMBER_SLOTS_TTL;
    return s > 0 ? (uint64_t)s * 1000 : 0;
}

/* True while the left-over slot `name` is within its grace. The table holds exactly the slots
 * left over at the last look; a slot unseen for a while (leadership lapsed, the member came and
 * went) starts a new grace. */
static bool retained(struct elector *e, const char *name, uint64_t now, uint64_t gen_ms)
{
    uint64_t ttl = member_slots_ttl_ms(e);
    struct elector_slot_gone *g = NULL;
    for (size_t i = 0; i < e->n_slots_gone && !g; i++)
        if (strcmp(e->slots_gone[i].name, name) == 0)
            g = &e->slots_gone[i];
    if (!g) {
        if (ttl == 0 || e->n_slots_gone == ELECTOR_SLOTS_MAX)
            return false;
        g = &e->slots_gone[e->n_slots_gone++];
        snprintf(g->name, sizeof(g->name), "%s", name);
        g->since_ms = now;
        log_info("keeping the slot of a member that is gone", "slot=%s member_slots_ttl_s=%llu",
                 name, (unsigned long long)(ttl / 1000));
    } else if (now - g->seen_ms > 3 * e->ec.t.loop_wait_ms + 1000) {
        g->since_ms = now;
    }
    g->seen_ms = gen_ms;
    return now - g->since_ms < ttl;
}

/* Forgets the slots that were not left over at this look (gen_ms). */
static void forget_unseen(struct elector *e, uint64_t gen_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n_slots_gone; i++)
        if (e->slots_gone[i].seen_ms == gen_ms)
            e->slots_gone[k++] = e->slots_gone[i];
    e->n_slots_gone = k;
}

/* Wanted slots (one per other member) against what the primary has; fills missing/extra
 * (extra: inactive physical slots of nobody, past their grace). */
static bool slots_compare(struct elector *e, char (*missing)[PG_SLOT_NAME_MAX], size_t *n_missing,
                          char (*extra)[PG_SLOT_NAME_MAX], size_t *n_extra, size_t cap)
{
    struct pg_slot *rows = NULL;
    size_t n = 0;
    if (pg_slots_list(&e->pg, &rows, &n, NULL) < 0)
        return false;
    char want[ELECTOR_SLOTS_MAX][PG_SLOT_NAME_MAX];
    size_t nw = 0, pos = 0;
    const struct kvc_entry *en;
    size_t plen = strlen(e->k_members);
    while ((en = kvc_next_prefix(&e->cache, e->k_members, &pos)) != NULL &&
           nw < ELECTOR_SLOTS_MAX) {
        const char *name = en->key + plen;
        if (strcmp(name, e->ec.name) == 0 || pg_slot_name_from_member(name, want[nw]) < 0)
            continue;
        nw++;
    }
    *n_missing = *n_extra = 0;
    for (size_t i = 0; i < nw; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            found = strcmp(rows[j].name, want[i]) == 0;
        if (!found && *n_missing < cap)
            memcpy(missing[(*n_missing)++], want[i], PG_SLOT_NAME_MAX);
    }
    uint64_t now = clock_boot_ms();
    uint64_t gen_ms = now | 1; /* never 0, the value of a fresh entry */
    for (size_t j = 0; j < n; j++) {
        bool wanted = false;
        for (size_t i = 0; i < nw && !wanted; i++)
            wanted = strcmp(rows[j].name, want[i]) == 0;
        if (wanted || !rows[j].physical || rows[j].active)
            continue;
        if (!retained(e, rows[j].name, now, gen_ms) && *n_extra < cap)
            memcpy(extra[(*n_extra)++], rows[j].name, PG_SLOT_NAME_MAX);
    }
    forget_unseen(e, gen_ms);
    free(rows);
    return true;
}

bool elector_slots_ok(struct elector *e)
{
    char a[ELECTOR_SLOTS_MAX][PG_SLOT_NAME_MAX], b[ELECTOR_SLOTS_MAX][PG_SLOT_NAME_MAX];
    size_t na, nb;
    return slots_compare(e, a, &na, b, &nb, ELECTOR_SLOTS_MAX) && na == 0 && nb == 0;
}

int elector_slots_sync(struct elector *e)
{
    char a[ELECTOR_SLOTS_MAX][PG_SLOT_NAME_MAX], b[ELECTOR_SLOTS_MAX][PG_SLOT_NAME_MAX];
    size_t na, nb;
    struct pg_error err;
    if (!slots_compare(e, a, &na, b, &nb, ELECTOR_SLOTS_MAX))
        return -EIO;
    int rc = 0;
    for (size_t i = 0; i < na; i++) {
        int r = pg_slot_create(&e->pg, a[i], &err);
        if (r == 0)
            log_info("replication slot created", "slot=%s", a[i]);
        else if (r != -EEXIST)
            rc = r;
    }
    for (size_t i = 0; i < nb; i++) {
        int r = pg_slot_drop(&e->pg, b[i], &err);
        if (r == 0)
            log_info("replication slot dropped", "slot=%s", b[i]);
        else if (r != -ENOENT && r != -EBUSY)
            rc = r;
    }
    return rc;
}
