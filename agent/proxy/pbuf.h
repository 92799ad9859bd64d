/* Per-connection byte buffers of the forwarder, backed by fixed-size chunks from a free list. */
#ifndef PGW_PROXY_PBUF_H
#define PGW_PROXY_PBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A buffer holds its chunk only while it has bytes (an idle connection holds no memory); chunks
 * go back to the pool's free list, so relaying allocates nothing per packet. Each pool has its
 * own chunk size: the relay buffers use PBUF_CAP, the first packet of a client a small one. */
enum { PBUF_CAP = 16384 };

struct pbuf_chunk;

struct pbuf_pool {
    struct pbuf_chunk *free; /* free list */
    size_t nfree;
    size_t max_free; /* chunks kept beyond this are returned to malloc */
    size_t in_use;
    uint32_t chunk; /* bytes per chunk */
};

struct pbuf {
    uint8_t *mem; /* NULL when the buffer holds no chunk */
    uint32_t off; /* first pending byte */
    uint32_t len; /* pending bytes */
    uint32_t cap; /* size of the chunk held (that of the pool it came from) */
};

/* chunk: bytes per chunk (at least the size of a pointer). */
void pbuf_pool_init(struct pbuf_pool *p, uint32_t chunk, size_t max_free);
/* Frees the free list (chunks still held by buffers must have been released). */
void pbuf_pool_free(struct pbuf_pool *p);

/* Makes sure b has a chunk. False on out of memory (logged). */
bool pbuf_reserve(struct pbuf *b, struct pbuf_pool *p);
/* Drops the pending bytes and returns the chunk. */
void pbuf_release(struct pbuf *b, struct pbuf_pool *p);
/* Returns the chunk if no byte is pending. */
void pbuf_trim(struct pbuf *b, struct pbuf_pool *p);

static inline size_t pbuf_len(const struct pbuf *b)
{
    return b->len;
}
static inline const uint8_t *pbuf_data(const struct pbuf *b)
{
    return b->mem + b->off;
}
/* Bytes that can still be appended (0 without a chunk). */
size_t pbuf_space(const struct pbuf *b);
/* Appends up to n bytes (moving pending bytes to the front if needed); returns how many. */
size_t pbuf_append(struct pbuf *b, const void *d, size_t n);
void pbuf_consume(struct pbuf *b, size_t n);

/* One read(2) of at most pbuf_space() bytes into b (which must hold a chunk). Returns the
 * bytes read, 0 at end of file, -EAGAIN, -ENOBUFS if b is full, or -errno. */
ssize_t pbuf_read_fd(struct pbuf *b, int fd);
/* Sends pending bytes (MSG_NOSIGNAL) until all are gone or the socket is full. Returns the
 * bytes still pending (0: all sent), or -errno (EPIPE, ECONNRESET...). */
ssize_t pbuf_write_fd(struct pbuf *b, int fd);

#endif
