/* DCS keys: Patroni's etcd key paths under /<namespace>/<scope>/ and their classification. */
#ifndef PGW_DCS_KEYS_H
#define PGW_DCS_KEYS_H

#include <stdbool.h>
#include <stddef.h>

enum {
    DCS_NAME_MAX = 256,   /* member name: 255 bytes + NUL (a DNS host name fits) */
    DCS_PREFIX_MAX = 320, /* "/<namespace>/<scope>/" + NUL */
    DCS_KEY_MAX = 640,    /* a full key + NUL */
};

/* What a key under the cluster prefix is (Patroni's AbstractDCS key names). */
enum dcs_key_kind {
    DCS_KEY_OTHER = 0,     /* under the prefix, but none of the keys below */
    DCS_KEY_LEADER,        /* leader: plain member name, under the owner's lease */
    DCS_KEY_MEMBER,        /* members/<name>: member JSON, under the member's lease */
    DCS_KEY_CONFIG,        /* config: dynamic configuration JSON */
    DCS_KEY_INITIALIZE,    /* initialize: system identifier ("" during the bootstrap race) */
    DCS_KEY_HISTORY,       /* history: JSON list of timeline switches */
    DCS_KEY_STATUS,        /* status: {"optime":..,"slots":{..}} (Patroni >= 2.1) */
    DCS_KEY_OPTIME_LEADER, /* optime/leader: legacy decimal LSN string */
    DCS_KEY_SYNC,          /* sync: {"leader":..,"sync_standby":..} */
    DCS_KEY_FAILOVER,      /* failover: {"leader":..,"member":..,"scheduled_at":..} or {} */
    DCS_KEY_FAILSAFE,      /* failsafe: {"<member>":"<api_url>",..} */
    DCS_KEY_FOREIGN,       /* not under this cluster's prefix at all */
};

/* The key prefix of one cluster, e.g. "/service/batman/". Plain data: copy freely. */
struct dcs_keys {
    char prefix[DCS_PREFIX_MAX];
    size_t prefix_len;
};

/* Builds the prefix as Patroni does: '/'.join(['', namespace, scope]) with runs of '/' collapsed,
 * then '/'. So "service", "/service" and "/service/" all give "/service/<scope>/", and "" or "/"
 * give "/<scope>/". namespace may hold A-Z a-z 0-9 _ . - and '/'; scope must be a valid
 * dcs_scope_valid() name. Returns 0, -EINVAL (bad characters, empty scope) or -ENAMETOOLONG. */
int dcs_keys_init(struct dcs_keys *k, const char *namespace, const char *scope);

/* Writes the full key of `kind` into out and returns its length, or -EINVAL (kind OTHER/FOREIGN,
 * or an invalid member name), -ENAMETOOLONG (out too small). For DCS_KEY_MEMBER, member names
 * the member; a NULL member gives the members folder "<prefix>members/" (for a range read). */
int dcs_key_path(const struct dcs_keys *k, enum dcs_key_kind kind, const char *member, char *out,
                 size_t cap);

/* etcd's range_end for "every key starting with key[0..len)": the key with its last byte that
 * is not 0xff incremented and the rest dropped ("/service/batman/" -> "/service/batman0").
 * An empty key or all-0xff bytes give the single byte "\0" (etcd: "to the end"). Returns the
 * length written (not NUL-terminated-counted; out is also NUL-terminated) or -ENAMETOOLONG. */
int dcs_key_range_end(const char *key, size_t len, char *out, size_t cap);

/* Classifies a key from a range or watch response (bytes, not NUL-terminated, as decoded from
 * base64). For DCS_KEY_MEMBER the member name is copied into member (cap >= DCS_NAME_MAX
 * recommended); a member key whose name is invalid, too long or holds a '/' is DCS_KEY_OTHER, as
 * Patroni ignores it. member may be NULL. */
enum dcs_key_kind dcs_key_classify(const struct dcs_keys *k, const char *key, size_t len,
                                   char *member, size_t cap);

/* "leader", "members", "config", ... (the key name), "other", "foreign". */
const char *dcs_key_kind_name(enum dcs_key_kind kind);

/* A member name usable in a key and as the leader value: 1..255 bytes, no '/', no control
 * characters (bytes < 0x20 or 0x7f). UTF-8 is allowed, as Patroni allows any host name. */
bool dcs_name_valid(const char *name);
bool dcs_name_valid_n(const char *name, size_t len);

/* A cluster name: 1..128 bytes of A-Z a-z 0-9 _ . - (the same rule as pgwarden's [etcd] scope). */
bool dcs_scope_valid(const char *scope);

#endif
