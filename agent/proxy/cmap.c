/* Cancel-key map: the BackendKeyData (pid, key) of each session -> the session it names. */
#include "agent/proxy/cmap.h"

#include <stdlib.h>
#include <string.h>

#include "platform/log.h"

#define LOG_MODULE "proxy"

static size_t slot(const struct cmap *m, uint32_t pid, uint32_t key)
{
    uint64_t h = ((uint64_t)pid << 32 | key) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & m->mask;
}

bool cmap_init(struct cmap *m, size_t nbuckets)
{
    size_t n = 16;
    while (n < nbuckets)
        n *= 2;
    memset(m, 0, sizeof(*m));
    m->buckets = calloc(n, sizeof(*m->buckets));
    if (!m->buckets) {
        log_error("out of memory for the cancel-key map", "buckets=%zu", n);
        return false;
    }
    m->mask = n - 1;
    return true;
}

void cmap_free(struct cmap *m)
{
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

void cmap_put(struct cmap *m, struct cmap_entry *e)
{
    if (e->linked)
        return;
    struct cmap_entry **b = &m->buckets[slot(m, e->pid, e->key)];
    e->next = *b;
    *b = e;
    e->linked = true;
    m->count++;
}

void cmap_del(struct cmap *m, struct cmap_entry *e)
{
    if (!e->linked)
        return;
    for (struct cmap_entry **p = &m->buckets[slot(m, e->pid, e->key)]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
    e->next = NULL;
    e->linked = false;
    m->count--;
}

struct cmap_entry *cmap_get(const struct cmap *m, uint32_t pid, uint32_t key)
{
    for (struct cmap_entry *e = m->buckets[slot(m, pid, key)]; e; e = e->next) {
        if (e->pid == pid && e->key == key)
            return e;
    }
    return NULL;
}
