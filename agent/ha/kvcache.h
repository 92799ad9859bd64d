/* Watch cache: the keys under the cluster prefix as last seen, ordered by etcd revision. */
#ifndef PGW_HA_KVCACHE_H
#define PGW_HA_KVCACHE_H

/*
 * Fed by the watch (events and full resyncs), by linearizable reads, and by this node's own
 * writes as soon as etcd acknowledged them (as Patroni's KVCache). Every change carries the
 * etcd revision at which it happened, and a change older than what the cache already knows
 * for that key is ignored: an own write at revision 100 is never undone by a watch event or
 * a resync of revision 90 that arrives later. Deleted keys leave a tombstone until the watch
 * has caught up with the deletion's revision.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct etcd_kv;

struct kvc_entry {
    char *key;
    char *value; /* NUL-terminated copy; NULL for a tombstone */
    size_t value_len;
    int64_t create_rev;
    int64_t mod_rev; /* for a tombstone: the deletion's revision */
    int64_t lease;
    bool present;
};

struct kvcache {
    struct kvc_entry *e;
    size_t n;
    size_t cap;
    bool valid;          /* a full read of the prefix has been merged */
    int64_t revision;    /* highest revision delivered by the watch or a full read */
    uint64_t generation; /* bumped on every change (lets users re-parse lazily) */
};

void kvc_init(struct kvcache *c);
void kvc_free(struct kvcache *c);

/* A PUT of key at mod_rev. Returns true if the cache changed (false: older than known, or out
 * of memory, which is logged). */
bool kvc_put(struct kvcache *c, const char *key, const char *value, size_t value_len,
             int64_t create_rev, int64_t mod_rev, int64_t lease);
/* A DELETE of key at rev. True if the cache changed. */
bool kvc_delete(struct kvcache *c, const char *key, int64_t rev);
/* The full state of the prefix at `revision` (a watch resync or a read): keys absent from kvs
 * become tombstones at `revision` and present ones are replaced, except entries the cache knows
 * at a later revision. Marks the cache valid. A watch resync is followed by kvc_caught_up(). */
bool kvc_resync(struct kvcache *c, const struct etcd_kv *kvs, size_t n, int64_t revision);
/* The watch delivered everything up to `revision`: tombstones at or below it are dropped. */
void kvc_caught_up(struct kvcache *c, int64_t revision);

/* The entry of key if it is present (not a tombstone), else NULL. */
const struct kvc_entry *kvc_get(const struct kvcache *c, const char *key);
/* Present entries whose key starts with prefix, in cache order: call with *pos = 0 first. */
const struct kvc_entry *kvc_next_prefix(const struct kvcache *c, const char *prefix, size_t *pos);

#endif
