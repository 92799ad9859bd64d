/* Watch cache: the keys under the cluster prefix as last seen, ordered by etcd revision. */
#include "agent/ha/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "agent/etcd/etcd.h"
#include "platform/log.h"

#define LOG_MODULE "kvcache"

void kvc_init(struct kvcache *c)
{
    memset(c, 0, sizeof(*c));
}

static void entry_clear(struct kvc_entry *e)
{
    free(e->key);
    free(e->value);
    memset(e, 0, sizeof(*e));
}

void kvc_free(struct kvcache *c)
{
    for (size_t i = 0; i < c->n; i++)
        entry_clear(&c->e[i]);
    free(c->e);
    kvc_init(c);
}

static struct kvc_entry *find(const struct kvcache *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->e[i].key, key) == 0)
            return &c->e[i];
    }
    return NULL;
}

static struct kvc_entry *add(struct kvcache *c, const char *key)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct kvc_entry *e = realloc(c->e, cap * sizeof(*e));
        if (!e)
            return NULL;
        c->e = e;
        c->cap = cap;
    }
    struct kvc_entry *e = &c->e[c->n];
    memset(e, 0, sizeof(*e));
    e->key = strdup(key);
    if (!e->key)
        return NULL;
    c->n++;
    return e;
}

static void remove_at(struct kvcache *c, size_t i)
{
    entry_clear(&c->e[i]);
    c->e[i] = c->e[c->n - 1];
    c->n--;
}

static bool set_value(struct kvc_entry *e, const char *value, size_t len, int64_t create_rev,
                      int64_t mod_rev, int64_t lease)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return false;
    if (len)
        memcpy(copy, value, len);
    copy[len] = '\0';
    free(e->value);
    e->value = copy;
    e->value_len = len;
    e->create_rev = create_rev;
    e->mod_rev = mod_rev;
    e->lease = lease;
    e->present = true;
    return true;
}

bool kvc_put(struct kvcache *c, const char *key, const char *value, size_t value_len,
             int64_t create_rev, int64_t mod_rev, int64_t lease)
{
    struct kvc_entry *e = find(c, key);
    if (e && e->mod_rev >= mod_rev)
        return false;
    if (!e)
        e = add(c, key);
    if (!e || !set_value(e, value, value_len, create_rev, mod_rev, lease)) {
        log_error("out of memory caching a key", "key=%s", key);
        return false;
    }
    c->generation++;
    return true;
}

bool kvc_delete(struct kvcache *c, const char *key, int64_t rev)
{
    struct kvc_entry *e = find(c, key);
    if (e && e->mod_rev >= rev)
        return false;
    if (!e) {
        if (rev <= c->revision)
            return false; /* nothing known, and no older event can come any more */
        e = add(c, key);
        if (!e) {
            log_error("out of memory caching a key", "key=%s", key);
            return false;
        }
    }
    bool was_present = e->present;
    free(e->value);
    e->value = NULL;
    e->value_len = 0;
    e->present = false;
    e->mod_rev = rev;
    e->create_rev = 0;
    e->lease = 0;
    if (was_present)
        c->generation++;
    return was_present;
}

static const struct etcd_kv *find_kv(const struct etcd_kv *kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kvs[i].key, key) == 0)
            return &kvs[i];
    }
    return NULL;
}

bool kvc_resync(struct kvcache *c, const struct etcd_kv *kvs, size_t n, int64_t revision)
{
    bool changed = !c->valid;
    /* Known keys: replaced, or deleted when absent, unless known at a later revision. */
    for (size_t i = 0; i < c->n;) {
        struct kvc_entry *e = &c->e[i];
        if (e->mod_rev > revision) {
            i++;
            continue;
        }
        const struct etcd_kv *kv = find_kv(kvs, n, e->key);
        if (kv) {
            if (!e->present || e->mod_rev != kv->mod_revision || e->lease != kv->lease)
                changed = true;
            if (!set_value(e, kv->value ? kv->value : "", kv->value ? kv->value_len : 0,
                           kv->create_revision, kv->mod_revision, kv->lease))
                log_error("out of memory caching a key", "key=%s", e->key);
            i++;
        } else {
            /* absent at `revision`: a tombstone, so that a late watch event cannot bring it
             * back (kvc_caught_up() drops it once the watch has passed `revision`) */
            changed |= e->present;
            free(e->value);
            e->value = NULL;
            e->value_len = 0;
            e->present = false;
            e->create_rev = 0;
            e->lease = 0;
            e->mod_rev = revision;
            i++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (find(c, kvs[i].key))
            continue;
        if (!kvc_put(c, kvs[i].key, kvs[i].value ? kvs[i].value : "",
                     kvs[i].value ? kvs[i].value_len : 0, kvs[i].create_revision,
                     kvs[i].mod_revision, kvs[i].lease))
            continue;
        changed = true;
    }
    c->valid = true;
    if (revision > c->revision)
        c->revision = revision;
    if (changed)
        c->generation++;
    return changed;
}

void kvc_caught_up(struct kvcache *c, int64_t revision)
{
    if (revision > c->revision)
        c->revision = revision;
    for (size_t i = 0; i < c->n;) {
        if (!c->e[i].present && c->e[i].mod_rev <= c->revision)
            remove_at(c, i);
        else
            i++;
    }
}

const struct kvc_entry *kvc_get(const struct kvcache *c, const char *key)
{
    const struct kvc_entry *e = find(c, key);
    return e && e->present ? e : NULL;
}

const struct kvc_entry *kvc_next_prefix(const struct kvcache *c, const char *prefix, size_t *pos)
{
    size_t plen = strlen(prefix);
    for (; *pos < c->n; (*pos)++) {
        const struct kvc_entry *e = &c->e[*pos];
        if (e->present && strncmp(e->key, prefix, plen) == 0) {
            (*pos)++;
            return e;
        }
    }
    return NULL;
}
