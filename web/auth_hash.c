/* Web authentication primitives: base64, PBKDF2-SHA256 hash lines, HTTP Basic parsing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "web/auth.h"
#include "web/auth_int.h"

#define HASH_SCHEME "pbkdf2-sha256"

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int auth_b64_encode(const uint8_t *in, size_t len, bool url, bool pad, char *out, size_t cap)
{
    const char *abc = url ? B64_URL : B64_STD;
    size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : (pad ? 4 : len % 3 + 1));
    if (need + 1 > cap || need > INT32_MAX)
        return -EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t rest = len - i;
        if (rest > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (rest > 2)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (rest > 1)
            out[o++] = abc[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (rest > 2)
            out[o++] = abc[v & 63];
        else if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

/* Value of a base64 character (standard or url alphabet), or -1. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t pad = 0;
    while (pad < 2 && len > 0 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad > 0 && (len + pad) % 4 != 0)
        return -EINVAL;
    if (len % 4 == 1 || len > INT32_MAX)
        return -EINVAL;
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > cap)
        return -EINVAL;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (int)o;
}

/* HMAC-SHA256 of a 32-byte message from precomputed inner/outer pad states: 2 compressions. */
static int hmac32(const mbedtls_sha256_context *ipad, const mbedtls_sha256_context *opad,
                  const uint8_t in[32], uint8_t out[32])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_clone(&c, ipad);
    int rc = mbedtls_sha256_update(&c, in, 32);
    rc = rc ? rc : mbedtls_sha256_finish(&c, out);
    mbedtls_sha256_clone(&c, opad);
    rc = rc ? rc : mbedtls_sha256_update(&c, out, 32);
    rc = rc ? rc : mbedtls_sha256_finish(&c, out);
    mbedtls_sha256_free(&c);
    return rc;
}

/* PBKDF2-HMAC-SHA256 (RFC 8018) on mbedTLS's SHA-256 with the pad states computed once:
 * half the work of mbedtls_pkcs5_pbkdf2_hmac_ext, which restarts HMAC every iteration (the
 * unit tests check both against the RFC 7914 vectors). */
int web_auth_pbkdf2(const void *password, size_t plen, const uint8_t *salt, size_t slen,
                    unsigned iterations, uint8_t *out, size_t olen)
{
    if (iterations == 0 || olen == 0 || olen > UINT32_MAX)
        return -EINVAL;
    uint8_t k[64] = {0}, pad[64], u[32], t[32], ctr[4];
    mbedtls_sha256_context ipad, opad, c;
    mbedtls_sha256_init(&ipad);
    mbedtls_sha256_init(&opad);
    mbedtls_sha256_init(&c);
    int rc = 0;
    if (plen > sizeof(k))
        rc = mbedtls_sha256(password, plen, k, 0);
    else if (plen > 0)
        memcpy(k, password, plen);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    rc = rc ? rc : mbedtls_sha256_starts(&ipad, 0);
    rc = rc ? rc : mbedtls_sha256_update(&ipad, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    rc = rc ? rc : mbedtls_sha256_starts(&opad, 0);
    rc = rc ? rc : mbedtls_sha256_update(&opad, pad, 64);
    for (uint32_t block = 1; rc == 0 && olen > 0; block++) {
        ctr[0] = (uint8_t)(block >> 24);
        ctr[1] = (uint8_t)(block >> 16);
        ctr[2] = (uint8_t)(block >> 8);
        ctr[3] = (uint8_t)block;
        mbedtls_sha256_clone(&c, &ipad); /* U1 = HMAC(P, S || INT(block)) */
        rc = mbedtls_sha256_update(&c, salt, slen);
        rc = rc ? rc : mbedtls_sha256_update(&c, ctr, 4);
        rc = rc ? rc : mbedtls_sha256_finish(&c, u);
        mbedtls_sha256_clone(&c, &opad);
        rc = rc ? rc : mbedtls_sha256_update(&c, u, 32);
        rc = rc ? rc : mbedtls_sha256_finish(&c, u);
        memcpy(t, u, 32);
        for (unsigned i = 1; rc == 0 && i < iterations; i++) {
            rc = hmac32(&ipad, &opad, u, u);
            for (int j = 0; j < 32; j++)
                t[j] ^= u[j];
        }
        size_t n = olen < 32 ? olen : 32;
        memcpy(out, t, n);
        out += n;
        olen -= n;
    }
    mbedtls_sha256_free(&ipad);
    mbedtls_sha256_free(&opad);
    mbedtls_sha256_free(&c);
    mbedtls_platform_zeroize(k, sizeof(k));
    mbedtls_platform_zeroize(pad, sizeof(pad));
    mbedtls_platform_zeroize(u, sizeof(u));
    mbedtls_platform_zeroize(t, sizeof(t));
    return rc;
}

int web_auth_hash_format(const struct web_auth_hash *h, char *out, size_t cap)
{
    char salt[100], key[100];
    if (h->salt_len > sizeof(h->salt) || h->key_len > sizeof(h->key) || h->iterations == 0 ||
        auth_b64_encode(h->salt, h->salt_len, false, false, salt, sizeof(salt)) < 0 ||
        auth_b64_encode(h->key, h->key_len, false, false, key, sizeof(key)) < 0)
        return -EINVAL;
    int n = snprintf(out, cap, HASH_SCHEME "$%u$%s$%s", h->iterations, salt, key);
    return n < 0 ? -EINVAL : n;
}

/* Splits "a$b$c" into fields: each call gives the next one; false once all were given. */
struct fields {
    const char *p, *end;
    bool done;
};

static bool next_field(struct fields *c, const char **f, size_t *flen)
{
    if (c->done)
        return false;
    const char *d = memchr(c->p, '$', (size_t)(c->end - c->p));
    *f = c->p;
    *flen = (size_t)((d ? d : c->end) - c->p);
    if (d)
        c->p = d + 1;
    else
        c->done = true;
    return true;
}

bool web_auth_hash_parse(const char *s, size_t len, struct web_auth_hash *out)
{
    struct fields c = {.p = s, .end = s + len};
    const char *f;
    size_t flen;
    memset(out, 0, sizeof(*out));
    if (!next_field(&c, &f, &flen) || flen != strlen(HASH_SCHEME) ||
        memcmp(f, HASH_SCHEME, flen) != 0)
        return false;
    if (!next_field(&c, &f, &flen) || flen == 0 || flen > 9)
        return false;
    unsigned long iter = 0;
    for (size_t i = 0; i < flen; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        iter = iter * 10 + (unsigned long)(f[i] - '0');
    }
    if (iter < WEB_AUTH_ITER_MIN || iter > WEB_AUTH_ITER_MAX)
        return false;
    out->iterations = (unsigned)iter;
    if (!next_field(&c, &f, &flen))
        return false;
    int n = auth_b64_decode(f, flen, out->salt, sizeof(out->salt));
    if (n < 8)
        return false;
    out->salt_len = (size_t)n;
    if (!next_field(&c, &f, &flen) || !c.done)
        return false;
    n = auth_b64_decode(f, flen, out->key, sizeof(out->key));
    if (n < 16)
        return false;
    out->key_len = (size_t)n;
    return true;
}

int web_auth_hash_password(const char *password, unsigned iterations, char *out, size_t cap)
{
    struct web_auth_hash h = {
        .iterations = iterations, .salt_len = WEB_AUTH_SALT_LEN, .key_len = 32};
    if (iterations < WEB_AUTH_ITER_MIN || iterations > WEB_AUTH_ITER_MAX)
        return -EINVAL;
    if (getrandom(h.salt, h.salt_len, 0) != (ssize_t)h.salt_len)
        return errno ? -errno : -EIO;
    int rc = web_auth_pbkdf2(password, strlen(password), h.salt, h.salt_len, iterations, h.key,
                             h.key_len);
    if (rc != 0)
        return -EINVAL;
    rc = web_auth_hash_format(&h, out, cap);
    mbedtls_platform_zeroize(&h, sizeof(h));
    return rc < 0 || (size_t)rc >= cap ? -EINVAL : 0;
}

bool web_auth_parse_basic(const char *header, char *user, size_t user_cap, char *password,
                          size_t password_cap)
{
    if (!header || user_cap == 0 || password_cap == 0)
        return false;
    user[0] = password[0] = '\0';
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "Basic", 5) != 0 || (header[5] != ' ' && header[5] != '\t'))
        return false;
    const char *b = header + 5;
    while (*b == ' ' || *b == '\t')
        b++;
    size_t blen = strlen(b);
    while (blen > 0 && (b[blen - 1] == ' ' || b[blen - 1] == '\t'))
        blen--;
    uint8_t buf[1024];
    int n = auth_b64_decode(b, blen, buf, sizeof(buf));
    bool ok = false;
    if (n > 0 && memchr(buf, '\0', (size_t)n) == NULL) {
        const uint8_t *colon = memchr(buf, ':', (size_t)n);
        size_t ulen = colon ? (size_t)(colon - buf) : 0;
        size_t plen = colon ? (size_t)n - ulen - 1 : 0;
        ok =
            colon && ulen > 0 && ulen < user_cap && ulen < WEB_AUTH_USER_MAX && plen < password_cap;
        for (size_t i = 0; ok && i < ulen; i++)
            ok = buf[i] >= 0x20 && buf[i] != 0x7f;
        if (ok) {
            memcpy(user, buf, ulen);
            user[ulen] = '\0';
            memcpy(password, colon + 1, plen);
            password[plen] = '\0';
        }
    }
    mbedtls_platform_zeroize(buf, sizeof(buf));
    return ok;
}
