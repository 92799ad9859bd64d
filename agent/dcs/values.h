/* DCS small values: leader, initialize, optime/leader, status, sync, failover and failsafe. */
#ifndef PGW_DCS_VALUES_H
#define PGW_DCS_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/dcs/isotime.h"
#include "agent/dcs/keys.h"
#include "agent/dcs/member.h"
#include "agent/dcs/pyjson.h"

enum {
    DCS_SYSID_MAX = 24,        /* a uint64 in decimal + NUL */
    DCS_SLOT_NAME_MAX = 64,    /* PostgreSQL NAMEDATALEN */
    DCS_STATUS_SLOTS_MAX = 64, /* entries of status.slots / status.retain_slots */
    DCS_SYNC_MAX = 32,         /* names in sync.sync_standby */
    DCS_FAILSAFE_MAX = 32,     /* members in failsafe */
};

/* ---- leader: the plain member name (not JSON) ---- */

/* Copies the value into name after checking it with dcs_name_valid_n(). The value to write is the
 * name itself. */
bool dcs_leader_decode(const char *value, size_t len, char *name, size_t cap, struct dcs_err *err);

/* ---- initialize: "" during the bootstrap race, then the system identifier in decimal ---- */

struct dcs_initialize {
    bool racing;               /* value "": someone is bootstrapping */
    char sysid[DCS_SYSID_MAX]; /* "7212345678901234567" */
    uint64_t sysid_num;
};
bool dcs_initialize_decode(const char *value, size_t len, struct dcs_initialize *out,
                           struct dcs_err *err);
/* Writes the decimal sysid (no quotes, no JSON); returns its length or -ENAMETOOLONG. */
int dcs_initialize_encode(uint64_t sysid, char *out, size_t cap);

/* ---- optime/leader (legacy): the LSN in bytes as a decimal string ---- */

bool dcs_optime_decode(const char *value, size_t len, int64_t *lsn, struct dcs_err *err);
int dcs_optime_encode(int64_t lsn, char *out, size_t cap);

/* ---- status: {"optime":<lsn>,"slots":{"<slot>":<lsn>},"retain_slots":[...]} ---- */

struct dcs_slot_lsn {
    char name[DCS_SLOT_NAME_MAX];
    int64_t lsn;
};

struct dcs_status {
    bool has_optime;
    int64_t optime; /* the leader's last known WAL position, in bytes */
    size_t nslots;  /* confirmed_flush_lsn of permanent logical slots */
    struct dcs_slot_lsn slots[DCS_STATUS_SLOTS_MAX];
    size_t nretain; /* Patroni >= 4.0: physical slots to keep */
    char retain_slots[DCS_STATUS_SLOTS_MAX][DCS_SLOT_NAME_MAX];
};
/* Accepts the object form and, as Patroni's Status.from_node, a bare integer (legacy). optime
 * may also be a decimal string (Patroni reads it with int()). */
bool dcs_status_decode(const char *value, size_t len, struct dcs_status *out, struct dcs_err *err);
/* {"optime":N} then "slots" if nslots > 0, then "retain_slots" if nretain > 0 (as Patroni's
 * write_status). has_optime is required. */
char *dcs_status_encode(const struct dcs_status *s, size_t *len, struct dcs_err *err);

/* ---- sync: {"leader":"pg0","sync_standby":"pg1,pg2"} (or null), Patroni 4 adds "quorum" ---- */

struct dcs_sync {
    char leader[DCS_NAME_MAX]; /* "" = empty sync state (no leader) */
    size_t nstandby;
    char standby[DCS_SYNC_MAX][DCS_NAME_MAX];
    bool has_quorum;
    int64_t quorum;
};
/* An empty value, "null" and "{}" decode to an empty state. sync_standby is split on ',' with
 * blanks trimmed and empty items dropped (SyncState._str_to_list). */
bool dcs_sync_decode(const char *value, size_t len, struct dcs_sync *out, struct dcs_err *err);
/* {"leader":L,"sync_standby":"a,b"} with the names sorted and comma-joined, or null when there
 * are none; "quorum" goes between them when has_quorum (Patroni 4's order). */
char *dcs_sync_encode(const struct dcs_sync *s, size_t *len, struct dcs_err *err);
/* Patroni's SyncState.matches(): case-insensitive membership in sync_standby (plus the leader if
 * check_leader); false for an empty state. */
bool dcs_sync_matches(const struct dcs_sync *s, const char *name, bool check_leader);

/* ---- failover: {"leader":..,"member":..,"scheduled_at":..}; {} means "none" ---- */

struct dcs_failover {
    char leader[DCS_NAME_MAX];    /* switchover from this leader; "" = any */
    char candidate[DCS_NAME_MAX]; /* the DCS key says "member" (the REST body says "candidate") */
    bool has_scheduled_at;
    int64_t scheduled_at_ms;         /* epoch ms, UTC */
    char scheduled_at[DCS_TIME_MAX]; /* as read, for display */
};
/* An empty value, "null" and "{}" decode to an empty request (dcs_failover_empty()). A value that
 * is not JSON is the legacy "leader:candidate" form. scheduled_at must carry a time zone. */
bool dcs_failover_decode(const char *value, size_t len, struct dcs_failover *out,
                         struct dcs_err *err);
/* Patroni's manual_failover() order: leader, member, scheduled_at (written in UTC as
 * "2019-09-24T12:00:00+00:00"); an empty request gives "{}" (how Patroni clears the key). */
char *dcs_failover_encode(const struct dcs_failover *f, size_t *len, struct dcs_err *err);
bool dcs_failover_empty(const struct dcs_failover *f);

/* ---- failsafe: {"<member>":"<api_url>",...} ---- */

struct dcs_failsafe_entry {
    char name[DCS_NAME_MAX];
    char api_url[DCS_URL_MAX];
};
struct dcs_failsafe {
    size_t n;
    struct dcs_failsafe_entry e[DCS_FAILSAFE_MAX];
};
bool dcs_failsafe_decode(const char *value, size_t len, struct dcs_failsafe *out,
                         struct dcs_err *err);
char *dcs_failsafe_encode(const struct dcs_failsafe *f, size_t *len, struct dcs_err *err);
/* The entry for name, or NULL. */
const struct dcs_failsafe_entry *dcs_failsafe_find(const struct dcs_failsafe *f, const char *name);

#endif
