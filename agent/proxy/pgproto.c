/* PostgreSQL wire-protocol pieces the forwarder needs: first packet, ErrorResponse, key scan. */
#include "agent/proxy/pgproto.h"

#include <string.h>

enum { SCAN_SSL_REPLY = 0, SCAN_HDR, SCAN_BODY, SCAN_DONE };

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

enum pgp_first pgp_first_packet(const uint8_t *p, size_t n, struct pgp_packet *out)
{
    memset(out, 0, sizeof(*out));
    if (n < 4)
        return out->kind = PGP_NEED_MORE;
    uint32_t len = be32(p);
    if (len < 8 || len > PGP_STARTUP_MAX)
        return out->kind = PGP_BAD;
    out->len = len;
    if (n < 8 || n < len)
        return out->kind = PGP_NEED_MORE;
    uint32_t code = be32(p + 4);
    switch (code) {
    case PGP_CODE_SSL:
    case PGP_CODE_GSSENC:
        if (len != 8 || n != 8)
            return out->kind = PGP_BAD;
        return out->kind = code == PGP_CODE_SSL ? PGP_SSL : PGP_GSSENC;
    case PGP_CODE_CANCEL:
        if (len != PGP_CANCEL_LEN)
            return out->kind = PGP_BAD;
        out->cancel_pid = be32(p + 8);
        out->cancel_key = be32(p + 12);
        return out->kind = PGP_CANCEL;
    default:
        if (code >> 16 != PGP_PROTO_MAJOR)
            return out->kind = PGP_BAD;
        return out->kind = PGP_STARTUP;
    }
}

enum pgp_reply pgp_first_reply(const uint8_t *p, size_t n, size_t cap, char *code)
{
    if (code)
        code[0] = '\0';
    if (n == 0)
        return PGP_REPLY_MORE;
    if (p[0] != 'E')
        return PGP_REPLY_RELAY;
    if (n < 5)
        return PGP_REPLY_MORE;
    uint32_t len = be32(p + 1);
    if (len < 5 || (size_t)len + 1 > cap)
        return PGP_REPLY_RELAY;
    if (n < (size_t)len + 1)
        return PGP_REPLY_MORE;
    /* fields: a type byte and a NUL-terminated string each, then a final NUL */
    const uint8_t *f = p + 5, *end = p + 1 + len;
    const char *sqlstate = NULL;
    while (f < end && *f) {
        const uint8_t *nul = memchr(f + 1, 0, (size_t)(end - f - 1));
        if (!nul)
            return PGP_REPLY_RELAY; /* malformed: the client may make sense of it */
        if (*f == 'C' && nul - f - 1 == 5)
            sqlstate = (const char *)f + 1;
        f = nul + 1;
    }
    if (!sqlstate)
        return PGP_REPLY_RELAY;
    if (code) {
        memcpy(code, sqlstate, 5);
        code[5] = '\0';
    }
    bool retry = strncmp(sqlstate, "57P01", 5) == 0 || strncmp(sqlstate, "57P02", 5) == 0 ||
                 strncmp(sqlstate, "57P03", 5) == 0;
    return retry ? PGP_REPLY_RETRY : PGP_REPLY_RELAY;
}

/* Appends field type t and the NUL-terminated s at *pos; false if it does not fit. */
static bool add_field(uint8_t *out, size_t cap, size_t *pos, char t, const char *s)
{
    size_t l = strlen(s) + 1;
    if (*pos + 1 + l > cap)
        return false;
    out[(*pos)++] = (uint8_t)t;
    memcpy(out + *pos, s, l);
    *pos += l;
    return true;
}

size_t pgp_error_response(uint8_t *out, size_t cap, const char *code, const char *message)
{
    size_t pos = 5;
    if (cap < 6 || strlen(code) != 5)
        return 0;
    out[0] = 'E';
    if (!add_field(out, cap, &pos, 'S', "FATAL") || !add_field(out, cap, &pos, 'V', "FATAL") ||
        !add_field(out, cap, &pos, 'C', code) || !add_field(out, cap, &pos, 'M', message) ||
        pos + 1 > cap)
        return 0;
    out[pos++] = 0;
    put_be32(out + 1, (uint32_t)(pos - 1));
    return pos;
}

void pgp_scan_init(struct pgp_scan *s, bool expect_ssl_reply)
{
    memset(s, 0, sizeof(*s));
    s->state = expect_ssl_reply ? SCAN_SSL_REPLY : SCAN_HDR;
}

bool pgp_scan_done(const struct pgp_scan *s)
{
    return s->state == SCAN_DONE;
}

/* A complete header is in s->hdr: decide what to do with the body. */
static void scan_header(struct pgp_scan *s)
{
    uint32_t len = be32(s->hdr + 1);
    s->type = s->hdr[0];
    s->hdr_len = 0;
    if (len < 4 || s->type == 'E' || s->type == 'Z') {
        s->state = SCAN_DONE; /* an error, the session is ready (no key), or garbage */
        return;
    }
    if (s->type == 'K' && len != 12) {
        s->state = SCAN_DONE;
        return;
    }
    s->remaining = len - 4;
    s->body_len = 0;
    s->state = s->remaining ? SCAN_BODY : SCAN_HDR;
}

void pgp_scan_feed(struct pgp_scan *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->state != SCAN_DONE) {
        switch (s->state) {
        case SCAN_SSL_REPLY:
            /* 'N': the startup follows in clear; 'S' (TLS) or anything else: opaque from now. */
            s->state = p[0] == 'N' ? SCAN_HDR : SCAN_DONE;
            p++;
            n--;
            break;
        case SCAN_HDR: {
            size_t take = sizeof(s->hdr) - s->hdr_len;
            if (take > n)
                take = n;
            memcpy(s->hdr + s->hdr_len, p, take);
            s->hdr_len = (uint8_t)(s->hdr_len + take);
            p += take;
            n -= take;
            if (s->hdr_len == sizeof(s->hdr))
                scan_header(s);
            break;
        }
        case SCAN_BODY: {
            size_t take = s->remaining < n ? s->remaining : n;
            if (s->type == 'K') {
                memcpy(s->body + s->body_len, p, take); /* remaining <= 8 for 'K' */
                s->body_len = (uint8_t)(s->body_len + take);
            }
            p += take;
            n -= take;
            s->remaining -= (uint32_t)take;
            if (s->remaining == 0) {
                if (s->type == 'K') {
                    s->pid = be32(s->body);
                    s->key = be32(s->body + 4);
                    s->have_key = true;
                    s->state = SCAN_DONE;
                } else {
                    s->state = SCAN_HDR;
                }
            }
            break;
        }
        default:
            return;
        }
    }
}
