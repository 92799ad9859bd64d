/* Fuzz target: the etcd watch stream (newline-delimited JSON in HTTP chunks) and its messages. */
#include "agent/etcd/internal.h"
#include "tests/fuzz/fuzz.h"

/*
 * Input: byte 0 picks the chunk size (1..64) in which the rest arrives, as libcurl would hand it
 * over. The lines must come out the same as when the whole stream arrives at once, and each
 * line goes through etcd_parse_watch_msg.
 */

enum { MAX_LINE = 4096, MAX_BUFFER = 8192, MAX_LINES = 4096 };

struct seen {
    size_t n;
    uint64_t hash[MAX_LINES];
    bool overflow; /* a line longer than MAX_LINE */
};

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h ^ n;
}

/* Takes every complete line out of s; false once a line was too long (the watch restarts). */
static bool drain(struct etcd_stream *s, struct seen *out, bool parse)
{
    const char *line;
    size_t len;
    int rc;
    while ((rc = etcd_stream_next(s, &line, &len)) == 1) {
        FUZZ_ASSERT(len > 0 && len <= MAX_LINE);
        if (out->n < MAX_LINES)
            out->hash[out->n] = fnv(line, len);
        out->n++;
        if (parse) {
            struct etcd_watch_msg m;
            memset(&m, 0, sizeof(m));
            if (etcd_parse_watch_msg(line, len, &m) == 0) {
                FUZZ_ASSERT(m.n_events == 0 || m.events != NULL);
                FUZZ_ASSERT(memchr(m.cancel_reason, '\0', sizeof(m.cancel_reason)) != NULL);
            }
            etcd_watch_msg_clear(&m);
        }
    }
    if (rc < 0)
        out->overflow = true;
    return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size == 0)
        return 0;
    size_t chunk = (size_t)(data[0] % 64) + 1;
    const uint8_t *p = data + 1;
    size_t n = size - 1;

    static struct seen whole, parts;
    memset(&whole, 0, sizeof(whole));
    memset(&parts, 0, sizeof(parts));
    struct etcd_stream a, b;
    etcd_stream_init(&a, MAX_LINE, MAX_BUFFER);
    etcd_stream_init(&b, MAX_LINE, MAX_BUFFER);

    /* The whole stream in pieces of at most MAX_BUFFER bytes (the buffer's limit). */
    bool a_ok = true;
    for (size_t off = 0; off < n && a_ok; off += MAX_BUFFER) {
        size_t k = n - off < MAX_BUFFER ? n - off : MAX_BUFFER;
        a_ok = etcd_stream_feed(&a, p + off, k) && drain(&a, &whole, false);
    }
    bool b_ok = true;
    for (size_t off = 0; off < n && b_ok; off += chunk) {
        uint8_t *piece = fuzz_copy(p + off, n - off < chunk ? n - off : chunk);
        b_ok = etcd_stream_feed(&b, piece, n - off < chunk ? n - off : chunk) &&
               drain(&b, &parts, true);
        free(piece);
    }
    /* Where both read everything, they saw the same lines. */
    if (a_ok && b_ok) {
        FUZZ_ASSERT(whole.n == parts.n);
        for (size_t i = 0; i < whole.n && i < MAX_LINES; i++)
            FUZZ_ASSERT(whole.hash[i] == parts.hash[i]);
    }
    etcd_stream_free(&a);
    etcd_stream_free(&b);
    return 0;
}
