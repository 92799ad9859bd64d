/* etcd codec: strict standard base64 for the gateway's bytes fields, and prefix range ends. */
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_b64_encode(const void *data, size_t n)
{
    const unsigned char *in = data;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t out_len = (n + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

int etcd_b64_decode(const char *in, size_t in_len, size_t max, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (in_len % 4 != 0)
        return ETCD_E_PROTOCOL;
    size_t pad = 0;
    if (in_len >= 4 && in[in_len - 1] == '=')
        pad = in[in_len - 2] == '=' ? 2 : 1;
    size_t n = in_len / 4 * 3 - pad;
    if (n > max)
        return ETCD_E_PROTOCOL;
    char *buf = malloc(n + 1);
    if (!buf)
        return ETCD_E_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        bool last = i + 4 == in_len;
        int v[4];
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + (size_t)k];
            if (ch == '=' && last && (size_t)k >= 4 - pad) {
                v[k] = 0;
                continue;
            }
            v[k] = b64_value(ch);
            if (v[k] < 0)
                goto bad;
        }
        unsigned bits =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        buf[o++] = (char)(bits >> 16);
        if (!last || pad < 2)
            buf[o++] = (char)((bits >> 8) & 0xff);
        if (!last || pad < 1)
            buf[o++] = (char)(bits & 0xff);
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
bad:
    free(buf);
    return ETCD_E_PROTOCOL;
}

size_t etcd_prefix_end(const char *key, size_t len, char *out)
{
    size_t n = len;
    while (n > 0 && (unsigned char)key[n - 1] == 0xff)
        n--;
    if (n == 0) {
        out[0] = '\0';
        return 1;
    }
    memcpy(out, key, n);
    out[n - 1] = (char)((unsigned char)key[n - 1] + 1);
    return n;
}
