/* Cancel-key map: the BackendKeyData (pid, key) of each session -> the session it names. */
#ifndef PGW_PROXY_CMAP_H
#define PGW_PROXY_CMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Embedded in each connection (intrusive: the map allocates nothing per entry). */
struct cmap_entry {
    uint32_t pid;
    uint32_t key;
    struct cmap_entry *next;
    bool linked;
};

struct cmap {
    struct cmap_entry **buckets;
    size_t mask; /* bucket count - 1 (a power of two) */
    size_t count;
};

/* nbuckets is rounded up to a power of two. False on out of memory (logged). */
bool cmap_init(struct cmap *m, size_t nbuckets);
void cmap_free(struct cmap *m);
/* Links e (pid and key set) into the map; an entry already linked is left alone. */
void cmap_put(struct cmap *m, struct cmap_entry *e);
/* Unlinks e if it is linked. */
void cmap_del(struct cmap *m, struct cmap_entry *e);
/* The entry for (pid, key), or NULL. */
struct cmap_entry *cmap_get(const struct cmap *m, uint32_t pid, uint32_t key);

#endif
