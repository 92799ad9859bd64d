/* DCS JSON: bounded strict parsing, typed field readers and Python-identical compact output. */
#include "agent/dcs/pyjson.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool dcs_errf(struct dcs_err *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return false;
}

const char *pyjson_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

json_t *pyjson_load(const char *text, size_t len, const char *what, struct dcs_err *err)
{
    json_error_t jerr;
    json_t *v;

    if (!text || len == 0) {
        dcs_errf(err, "%s: empty value", what);
        return NULL;
    }
    if (len > DCS_VALUE_MAX) {
        dcs_errf(err, "%s: value of %zu bytes exceeds the %d-byte limit", what, len, DCS_VALUE_MAX);
        return NULL;
    }
    v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!v)
        dcs_errf(err, "%s: invalid JSON at line %d column %d: %s", what, jerr.line, jerr.column,
                 jerr.text);
    return v;
}

/* ---- output ------------------------------------------------------------------------------ */

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > DCS_VALUE_MAX + 1) {
        o->failed = true;
        return;
    }
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

/* Decodes one UTF-8 sequence at s (n bytes left). Returns its length, or 0 if it is invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t need;
    uint32_t c = s[0], min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        need = 2, c &= 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        need = 3, c &= 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        need = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return need;
}

/* Python's ensure_ascii string escaping: printable ASCII (0x20-0x7E) as is, the usual short
 * escapes, everything else as lowercase \uXXXX (UTF-16 surrogate pairs above U+FFFF). */
static void out_quoted(struct out *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    char esc[16];

    out_add(o, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c <= 0x7E && c != '"' && c != '\\') {
            run++;
            i++;
            continue;
        }
        out_add(o, (const char *)s + i - run, run);
        run = 0;
        const char *short_esc = NULL;
        switch (c) {
        case '"':
            short_esc = "\\\"";
            break;
        case '\\':
            short_esc = "\\\\";
            break;
        case '\n':
            short_esc = "\\n";
            break;
        case '\r':
            short_esc = "\\r";
            break;
        case '\t':
            short_esc = "\\t";
            break;
        case '\b':
            short_esc = "\\b";
            break;
        case '\f':
            short_esc = "\\f";
            break;
        default:
            break;
        }
        if (short_esc) {
            out_str(o, short_esc);
            i++;
            continue;
        }
        uint32_t cp;
        size_t used = utf8_decode(s + i, n - i, &cp);
        if (used == 0) {
            o->failed = true; /* jansson only holds valid UTF-8; never emit garbage */
            return;
        }
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", (unsigned)(0xD800 | (v >> 10)),
                     (unsigned)(0xDC00 | (v & 0x3FF)));
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
        }
        out_str(o, esc);
        i += used;
    }
    out_add(o, (const char *)s + i - run, run);
    out_add(o, "\"", 1);
}

bool pyjson_format_real(double d, char *out, size_t cap)
{
    char sci[40], digits[24];
    int prec, exp10, ndig = 0, decpt;
    const char *p;
    size_t pos = 0;

    if (!isfinite(d) || cap < 32)
        return false;
    /* Shortest %e representation that reads back as the same double (Python's repr). */
    for (prec = 0; prec < 17; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    p = sci;
    if (*p == '-')
        p++;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && ndig < (int)sizeof(digits) - 1)
            digits[ndig++] = *p;
    }
    digits[ndig] = '\0';
    exp10 = (*p == 'e') ? (int)strtol(p + 1, NULL, 10) : 0;
    while (ndig > 1 && digits[ndig - 1] == '0')
        digits[--ndig] = '\0';
    decpt = exp10 + 1;
    if (digits[0] == '0') /* zero: %e gives 0e+00 */
        decpt = 1;

    char buf[64];
    if (signbit(d))
        buf[pos++] = '-';
    if (decpt <= -4 || decpt > 16) {
        buf[pos++] = digits[0];
        if (ndig > 1) {
            buf[pos++] = '.';
            memcpy(buf + pos, digits + 1, (size_t)ndig - 1);
            pos += (size_t)ndig - 1;
        }
        snprintf(buf + pos, sizeof(buf) - pos, "e%c%02d", decpt - 1 < 0 ? '-' : '+',
                 abs(decpt - 1));
    } else if (decpt <= 0) {
        buf[pos++] = '0';
        buf[pos++] = '.';
        for (int i = 0; i < -decpt; i++)
            buf[pos++] = '0';
        memcpy(buf + pos, digits, (size_t)ndig);
        pos += (size_t)ndig;
        buf[pos] = '\0';
    } else if (decpt >= ndig) {
        memcpy(buf + pos, digits, (size_t)ndig);
        pos += (size_t)ndig;
        for (int i = ndig; i < decpt; i++)
            buf[pos++] = '0';
        buf[pos++] = '.';
        buf[pos++] = '0';
        buf[pos] = '\0';
    } else {
        memcpy(buf + pos, digits, (size_t)decpt);
        pos += (size_t)decpt;
        buf[pos++] = '.';
        memcpy(buf + pos, digits + decpt, (size_t)(ndig - decpt));
        pos += (size_t)(ndig - decpt);
        buf[pos] = '\0';
    }
    if (strlen(buf) >= cap)
        return false;
    memcpy(out, buf, strlen(buf) + 1);
    return true;
}

static void out_value(struct out *o, const json_t *v, int depth)
{
    char num[48];
    if (o->failed)
        return;
    if (depth > DCS_JSON_MAX_DEPTH) {
        o->failed = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *item;
        bool first = true;
        out_add(o, "{", 1);
        json_object_keylen_foreach((json_t *)v, key, klen, item)
        {
            if (!first)
                out_add(o, ",", 1);
            first = false;
            out_quoted(o, key, klen);
            out_add(o, ":", 1);
            out_value(o, item, depth + 1);
        }
        out_add(o, "}", 1);
        break;
    }
    case JSON_ARRAY:
        out_add(o, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                out_add(o, ",", 1);
            out_value(o, json_array_get(v, i), depth + 1);
        }
        out_add(o, "]", 1);
        break;
    case JSON_STRING:
        out_quoted(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out_str(o, num);
        break;
    case JSON_REAL:
        if (!pyjson_format_real(json_real_value(v), num, sizeof(num)))
            o->failed = true;
        else
            out_str(o, num);
        break;
    case JSON_TRUE:
        out_str(o, "true");
        break;
    case JSON_FALSE:
        out_str(o, "false");
        break;
    case JSON_NULL:
        out_str(o, "null");
        break;
    }
}

char *pyjson_dump(const json_t *v, size_t *len)
{
    struct out o = {0};
    if (!v)
        return NULL;
    out_value(&o, v, 0);
    if (o.failed || !o.p) {
        free(o.p);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.p;
}

/* ---- field readers ----------------------------------------------------------------------- */

bool pyjson_copy_str(const json_t *v, char *out, size_t cap, const char *what, const char *key,
                     struct dcs_err *err)
{
    if (!json_is_string(v))
        return dcs_errf(err, "%s: '%s' must be a string, not %s", what, key, pyjson_type_name(v));
    size_t n = json_string_length(v);
    if (n >= cap)
        return dcs_errf(err, "%s: '%s' is %zu bytes long, the limit is %zu", what, key, n, cap - 1);
    memcpy(out, json_string_value(v), n + 1);
    return true;
}

int pyjson_get_str(const json_t *obj, const char *key, char *out, size_t cap, const char *what,
                   struct dcs_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    return pyjson_copy_str(v, out, cap, what, key, err) ? 1 : -EINVAL;
}

int pyjson_get_int(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                   const char *what, struct dcs_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        dcs_errf(err, "%s: '%s' must be an integer, not %s", what, key, pyjson_type_name(v));
        return -EINVAL;
    }
    json_int_t i = json_integer_value(v);
    if (i < min || i > max) {
        dcs_errf(err, "%s: '%s' is %lld, outside %lld..%lld", what, key, (long long)i,
                 (long long)min, (long long)max);
        return -EINVAL;
    }
    *out = i;
    return 1;
}

int pyjson_get_bool(const json_t *obj, const char *key, bool *out, const char *what,
                    struct dcs_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        dcs_errf(err, "%s: '%s' must be true or false, not %s", what, key, pyjson_type_name(v));
        return -EINVAL;
    }
    *out = json_is_true(v);
    return 1;
}
