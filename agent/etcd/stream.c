/* etcd transport: bounded byte buffers and the newline-delimited watch stream splitter. */
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"

bool etcd_buf_append(struct etcd_buf *b, const void *data, size_t n)
{
    if (n == 0)
        return true;
    if (n > b->max || b->len > b->max - n)
        return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        char *p = realloc(b->data, cap);
        if (!p)
            return false;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0'; /* handy for parsers and messages; not counted */
    return true;
}

void etcd_buf_reset(struct etcd_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void etcd_buf_free(struct etcd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

size_t etcd_buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    size_t n = size * nmemb;
    return etcd_buf_append(userdata, ptr, n) ? n : 0;
}

void etcd_stream_init(struct etcd_stream *s, size_t max_line, size_t max_buffer)
{
    memset(s, 0, sizeof(*s));
    s->max_line = max_line;
    s->buf.max = max_buffer > max_line ? max_buffer : max_line + 1;
}

void etcd_stream_free(struct etcd_stream *s)
{
    etcd_buf_free(&s->buf);
    s->start = s->scanned = 0;
}

void etcd_stream_reset(struct etcd_stream *s)
{
    etcd_buf_reset(&s->buf);
    s->start = s->scanned = 0;
}

bool etcd_stream_feed(struct etcd_stream *s, const void *data, size_t n)
{
    if (s->start > 0 && s->buf.len + n > s->buf.max) {
        /* Drop the bytes already returned to make room. */
        memmove(s->buf.data, s->buf.data + s->start, s->buf.len - s->start);
        s->buf.len -= s->start;
        s->buf.data[s->buf.len] = '\0';
        s->start = 0;
    }
    return etcd_buf_append(&s->buf, data, n);
}

int etcd_stream_next(struct etcd_stream *s, const char **line, size_t *len)
{
    for (;;) {
        size_t avail = s->buf.len - s->start;
        const char *base = s->buf.data + s->start;
        const char *nl =
            avail > s->scanned ? memchr(base + s->scanned, '\n', avail - s->scanned) : NULL;
        if (!nl) {
            s->scanned = avail;
            if (avail > s->max_line)
                return -1;
            if (avail == 0 && s->start > 0) { /* everything consumed: rewind for free */
                s->buf.len = 0;
                s->start = 0;
                s->buf.data[0] = '\0';
            }
            return 0;
        }
        size_t n = (size_t)(nl - base);
        s->start += n + 1;
        s->scanned = 0;
        if (n > 0 && base[n - 1] == '\r')
            n--;
        if (n > s->max_line)
            return -1;
        if (n == 0)
            continue; /* blank line */
        *line = base;
        *len = n;
        return 1;
    }
}
