/* Per-connection byte buffers of the forwarder, backed by fixed-size chunks from a free list. */
#include "agent/proxy/pbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "platform/log.h"

#define LOG_MODULE "proxy"

struct pbuf_chunk {
    struct pbuf_chunk *next;
};

void pbuf_pool_init(struct pbuf_pool *p, uint32_t chunk, size_t max_free)
{
    memset(p, 0, sizeof(*p));
    p->max_free = max_free;
    p->chunk = chunk < sizeof(struct pbuf_chunk) ? (uint32_t)sizeof(struct pbuf_chunk) : chunk;
}

void pbuf_pool_free(struct pbuf_pool *p)
{
    while (p->free) {
        struct pbuf_chunk *c = p->free;
        p->free = c->next;
        free(c);
    }
    p->nfree = 0;
}

bool pbuf_reserve(struct pbuf *b, struct pbuf_pool *p)
{
    if (b->mem)
        return true;
    if (p->free) {
        struct pbuf_chunk *c = p->free;
        p->free = c->next;
        p->nfree--;
        b->mem = (uint8_t *)c;
    } else {
        b->mem = malloc(p->chunk);
        if (!b->mem) {
            log_error("out of memory for a connection buffer", "size=%u", (unsigned)p->chunk);
            return false;
        }
    }
    p->in_use++;
    b->off = b->len = 0;
    b->cap = p->chunk;
    return true;
}

void pbuf_release(struct pbuf *b, struct pbuf_pool *p)
{
    if (!b->mem)
        return;
    if (p->nfree < p->max_free) {
        struct pbuf_chunk *c = (struct pbuf_chunk *)(void *)b->mem;
        c->next = p->free;
        p->free = c;
        p->nfree++;
    } else {
        free(b->mem);
    }
    p->in_use--;
    b->mem = NULL;
    b->off = b->len = b->cap = 0;
}

void pbuf_trim(struct pbuf *b, struct pbuf_pool *p)
{
    if (b->len == 0)
        pbuf_release(b, p);
}

size_t pbuf_space(const struct pbuf *b)
{
    return b->mem ? b->cap - b->len : 0;
}

/* Moves pending bytes to the front so that all free space is at the end. */
static void compact(struct pbuf *b)
{
    if (b->off == 0)
        return;
    if (b->len)
        memmove(b->mem, b->mem + b->off, b->len);
    b->off = 0;
}

size_t pbuf_append(struct pbuf *b, const void *d, size_t n)
{
    if (!b->mem)
        return 0;
    if (b->off + b->len + n > b->cap)
        compact(b);
    size_t room = b->cap - b->off - b->len;
    if (n > room)
        n = room;
    memcpy(b->mem + b->off + b->len, d, n);
    b->len += (uint32_t)n;
    return n;
}

void pbuf_consume(struct pbuf *b, size_t n)
{
    if (n >= b->len) {
        b->off = b->len = 0;
        return;
    }
    b->off += (uint32_t)n;
    b->len -= (uint32_t)n;
}

ssize_t pbuf_read_fd(struct pbuf *b, int fd)
{
    if (!b->mem)
        return -ENOBUFS;
    if (b->off + b->len == b->cap)
        compact(b);
    size_t room = b->cap - b->off - b->len;
    if (room == 0)
        return -ENOBUFS;
    for (;;) {
        ssize_t r = read(fd, b->mem + b->off + b->len, room);
        if (r >= 0) {
            b->len += (uint32_t)r;
            return r;
        }
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t pbuf_write_fd(struct pbuf *b, int fd)
{
    while (b->len > 0) {
        ssize_t w = send(fd, b->mem + b->off, b->len, MSG_NOSIGNAL);
        if (w > 0) {
            pbuf_consume(b, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return (ssize_t)b->len;
        return w < 0 ? -errno : -EPIPE;
    }
    b->off = 0;
    return 0;
}
