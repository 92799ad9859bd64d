/* Config values: parse, compare and size the typed value of one config key. */
#include "platform/config_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform/log.h"

enum { SHOWN_MAX = 60 };

struct unit {
    const char *name;
    uint64_t mult;
};

static const struct unit duration_units[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60000},
    {"h", 3600000},
};

static const struct unit size_units[] = {
    {"b", 1},
    {"kib", 1ULL << 10},
    {"mib", 1ULL << 20},
    {"gib", 1ULL << 30},
    {"tib", 1ULL << 40},
    {"kb", 1000ULL},
    {"mb", 1000000ULL},
    {"gb", 1000000000ULL},
    {"tb", 1000000000000ULL},
};

/* "<digits>[ ]<unit>": 0, -EINVAL (syntax) or -ERANGE (does not fit in 64 bits). */
static int parse_unit_number(const char *s, const struct unit *u, size_t nu, uint64_t def_mult,
                             uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    uint64_t v = 0;
    bool overflow = false;
    for (; isdigit((unsigned char)*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    uint64_t mult = def_mult;
    if (*s) {
        size_t i = 0;
        while (i < nu && strcasecmp(s, u[i].name) != 0)
            i++;
        if (i == nu)
            return -EINVAL;
        mult = u[i].mult;
    }
    if (overflow || v > UINT64_MAX / mult)
        return -ERANGE;
    *out = v * mult;
    return 0;
}

bool cfg_parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_unit_number(s, duration_units, sizeof(duration_units) / sizeof(duration_units[0]),
                             1000, out) == 0;
}

bool cfg_parse_size(const char *s, uint64_t *out)
{
    return parse_unit_number(s, size_units, sizeof(size_units) / sizeof(size_units[0]), 1, out) ==
           0;
}

static int fmt_duration(uint64_t ms, char *out, size_t cap)
{
    static const struct unit by_size[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}};
    if (ms == 0)
        return snprintf(out, cap, "0s");
    for (size_t i = 0; i < sizeof(by_size) / sizeof(by_size[0]); i++) {
        if (ms % by_size[i].mult == 0)
            return snprintf(out, cap, "%llu%s", (unsigned long long)(ms / by_size[i].mult),
                            by_size[i].name);
    }
    return snprintf(out, cap, "%llums", (unsigned long long)ms);
}

static int fmt_size(uint64_t b, char *out, size_t cap)
{
    static const struct unit by_size[] = {
        {"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}};
    for (size_t i = 0; b != 0 && i < sizeof(by_size) / sizeof(by_size[0]); i++) {
        if (b % by_size[i].mult == 0)
            return snprintf(out, cap, "%llu%s", (unsigned long long)(b / by_size[i].mult),
                            by_size[i].name);
    }
    return snprintf(out, cap, "%llu", (unsigned long long)b);
}

size_t cfgval_storage_size(const struct cfg_key *k)
{
    switch (k->type) {
    case CFG_STR:
    case CFG_LIST:
        return k->size;
    case CFG_INT:
        return sizeof(long long);
    case CFG_BOOL:
        return sizeof(bool);
    case CFG_DURATION:
    case CFG_SIZE:
        return sizeof(uint64_t);
    case CFG_ENUM:
        return sizeof(int);
    case CFG_ADDR:
        return sizeof(struct cfg_addr);
    }
    return 0;
}

/* " 'value'" for messages (shortened, control characters shown as '?'); "" for secrets. */
static const char *shown(const struct cfg_key *k, const char *v, char *buf, size_t cap)
{
    if (k->flags & CFG_SECRET)
        return "";
    char red[512]; /* passwords inside URLs or conninfo are masked before shortening */
    log_redact(v, red, sizeof(red));
    size_t o = 0;
    buf[o++] = ' ';
    buf[o++] = '\'';
    for (size_t i = 0; red[i] && o + 6 < cap; i++) {
        if (i == SHOWN_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)red[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* Checks v against k's numeric range (no check when min == max == 0). */
static bool in_range_u64(const struct cfg_key *k, uint64_t v)
{
    if (k->min == 0 && k->max == 0)
        return true;
    return v >= (uint64_t)k->min && v <= (uint64_t)k->max;
}

static bool range_error(const struct cfg_key *k, char *err, size_t cap)
{
    char lo[32], hi[32];
    if (k->type == CFG_DURATION) {
        fmt_duration((uint64_t)k->min, lo, sizeof(lo));
        fmt_duration((uint64_t)k->max, hi, sizeof(hi));
    } else if (k->type == CFG_SIZE) {
        fmt_size((uint64_t)k->min, lo, sizeof(lo));
        fmt_size((uint64_t)k->max, hi, sizeof(hi));
    } else {
        snprintf(lo, sizeof(lo), "%lld", k->min);
        snprintf(hi, sizeof(hi), "%lld", k->max);
    }
    snprintf(err, cap, "out of range (must be between %s and %s)", lo, hi);
    return false;
}

/* Finds v in "a|b|c" (any case); returns the index or -1. */
static int enum_index(const char *values, const char *v)
{
    size_t vl = strlen(v);
    int idx = 0;
    for (const char *p = values;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == vl && len > 0 && strncasecmp(p, v, len) == 0)
            return idx;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

static bool host_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* "addr" or "addr%zone" (len bytes, not NUL-terminated) is a numeric IPv6 address. */
static bool valid_ipv6(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    const char *pct = memchr(s, '%', len);
    size_t alen = pct ? (size_t)(pct - s) : len;
    if (alen == 0 || alen >= sizeof(buf))
        return false;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET6, buf, &a) != 1)
        return false;
    if (!pct)
        return true;
    if (pct + 1 == s + len)
        return false; /* "%" without a zone */
    for (const char *p = pct + 1; p < s + len; p++) {
        if (!host_char((unsigned char)*p))
            return false;
    }
    return true;
}

/* A host of only digits and dots must be a dotted-quad IPv4 address; names pass. */
static bool valid_ipv4_or_name(const char *s, size_t len)
{
    char buf[INET_ADDRSTRLEN + 1];
    struct in_addr a;
    if (strspn(s, "0123456789.") < len)
        return true;
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a) == 1;
}

static bool parse_addr(const struct cfg_key *k, const char *v, struct cfg_addr *a, char *err,
                       size_t cap)
{
    const char *host = v, *host_end, *port;
    if (*v == '[') {
        host = v + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end[1] != ':') {
            snprintf(err, cap, "invalid address (expected [ipv6]:port, e.g. [::1]:5432)");
            return false;
        }
        if (!valid_ipv6(host, (size_t)(host_end - host))) {
            snprintf(err, cap, "invalid IPv6 address in brackets");
            return false;
        }
        port = host_end + 2;
    } else {
        host_end = strrchr(v, ':');
        if (!host_end) {
            snprintf(err, cap, "missing port (expected host:port, e.g. 127.0.0.1:5432)");
            return false;
        }
        for (const char *p = host; p < host_end; p++) {
            if (*p == ':') {
                snprintf(err, cap, "an IPv6 address needs brackets (e.g. [::1]:5432)");
                return false;
            }
            if (!host_char((unsigned char)*p)) {
                snprintf(err, cap, "invalid character in host (use a name, IPv4 or [IPv6])");
                return false;
            }
        }
        port = host_end + 1;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof(a->host)) {
        snprintf(err, cap, hl == 0 ? "missing host (expected host:port)" : "host name too long");
        return false;
    }
    if (*v != '[' && !valid_ipv4_or_name(host, hl)) {
        snprintf(err, cap, "invalid IPv4 address");
        return false;
    }
    long long lo = k->max != 0 ? k->min : 1, hi = k->max != 0 ? k->max : 65535;
    char *end;
    errno = 0;
    long long p = isdigit((unsigned char)*port) ? strtoll(port, &end, 10) : -1;
    if (p < 0 || errno != 0 || *end != '\0' || p < lo || p > hi) {
        snprintf(err, cap, "invalid port (must be a number between %lld and %lld)", lo, hi);
        return false;
    }
    memset(a, 0, sizeof(*a));
    memcpy(a->host, host, hl);
    a->port = (uint16_t)p;
    return true;
}

/* Normalizes a comma list into out (cap bytes) as "a,b,c"; with out == NULL only measures.
 * Returns the normalized length, -EINVAL for an empty item or -ENOSPC when it does not fit. */
static long list_normalize(const char *v, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = v;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0)
            return -EINVAL;
        if (o + len + (o ? 1 : 0) >= cap)
            return -ENOSPC;
        if (out) {
            if (o)
                out[o] = ',';
            memcpy(out + o + (o ? 1 : 0), p, len);
            out[o + len + (o ? 1 : 0)] = '\0';
        }
        o += len + (o ? 1 : 0);
        if (!comma)
            return (long)o;
        p = comma + 1;
    }
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return true;
        }
    }
    return false;
}

static bool set_number(const struct cfg_key *k, const char *v, char *field, char *err, size_t cap)
{
    char sv[SHOWN_MAX + 32];
    if (k->type == CFG_INT) {
        char *end;
        errno = 0;
        bool syntax = isdigit((unsigned char)v[0]) ||
                      ((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1]));
        long long x = syntax ? strtoll(v, &end, 10) : 0;
        if (!syntax || *end != '\0') {
            snprintf(err, cap, "invalid integer%s", shown(k, v, sv, sizeof(sv)));
            return false;
        }
        if (errno == ERANGE) {
            snprintf(err, cap, "integer too large%s", shown(k, v, sv, sizeof(sv)));
            return false;
        }
        if ((k->min != 0 || k->max != 0) && (x < k->min || x > k->max))
            return range_error(k, err, cap);
        memcpy(field, &x, sizeof(x));
        return true;
    }
    uint64_t x;
    bool dur = k->type == CFG_DURATION;
    int r =
        dur ? parse_unit_number(v, duration_units,
                                sizeof(duration_units) / sizeof(duration_units[0]), 1000, &x)
            : parse_unit_number(v, size_units, sizeof(size_units) / sizeof(size_units[0]), 1, &x);
    if (r == -ERANGE) {
        snprintf(err, cap, "%s too large%s", dur ? "duration" : "size",
                 shown(k, v, sv, sizeof(sv)));
        return false;
    }
    if (r < 0) {
        snprintf(err, cap, "invalid %s%s (%s)", dur ? "duration" : "size",
                 shown(k, v, sv, sizeof(sv)),
                 dur ? "use a whole number with ms, s, m or h, e.g. 500ms or 10s"
                     : "use a whole number with B, KiB, MiB, GiB, kB, MB or GB, e.g. 1MiB");
        return false;
    }
    if (!in_range_u64(k, x))
        return range_error(k, err, cap);
    memcpy(field, &x, sizeof(x));
    return true;
}

bool cfgval_set(const struct cfg_key *k, void *dst, const char *v, char *err, size_t cap)
{
    char *field = (char *)dst + k->offset;
    char sv[SHOWN_MAX + 32];
    bool stringy = k->type == CFG_STR || k->type == CFG_LIST || k->type == CFG_ADDR;
    if (v[0] == '\0' && stringy) {
        if (!(k->flags & CFG_OPTIONAL)) {
            snprintf(err, cap, "value must not be empty");
            return false;
        }
        memset(field, 0, cfgval_storage_size(k));
        return true;
    }
    switch (k->type) {
    case CFG_STR: {
        size_t len = strlen(v);
        if (len >= k->size) {
            snprintf(err, cap, "value too long (at most %zu bytes)", k->size - 1);
            return false;
        }
        memset(field, 0, k->size);
        memcpy(field, v, len);
        return true;
    }
    case CFG_LIST: {
        long r = list_normalize(v, NULL, k->size);
        if (r < 0) {
            snprintf(err, cap,
                     r == -EINVAL ? "empty item in list%s (use a,b,c)" : "list too long%s",
                     shown(k, v, sv, sizeof(sv)));
            return false;
        }
        memset(field, 0, k->size);
        list_normalize(v, field, k->size);
        return true;
    }
    case CFG_INT:
    case CFG_DURATION:
    case CFG_SIZE:
        return set_number(k, v, field, err, cap);
    case CFG_BOOL: {
        bool b;
        if (!parse_bool(v, &b)) {
            snprintf(err, cap, "invalid boolean%s (use true/false, yes/no, on/off or 1/0)",
                     shown(k, v, sv, sizeof(sv)));
            return false;
        }
        memcpy(field, &b, sizeof(b));
        return true;
    }
    case CFG_ENUM: {
        int idx = enum_index(k->enum_values, v);
        if (idx < 0) {
            snprintf(err, cap, "invalid value%s (expected one of %s)", shown(k, v, sv, sizeof(sv)),
                     k->enum_values);
            return false;
        }
        memcpy(field, &idx, sizeof(idx));
        return true;
    }
    case CFG_ADDR: {
        struct cfg_addr a;
        char why[160];
        if (!parse_addr(k, v, &a, why, sizeof(why))) {
            snprintf(err, cap, "%s%s", why, shown(k, v, sv, sizeof(sv)));
            return false;
        }
        memcpy(field, &a, sizeof(a));
        return true;
    }
    }
    snprintf(err, cap, "unsupported type %d", (int)k->type);
    return false;
}

int cfg_format_value(const struct cfg_key *k, const void *src, char *out, size_t cap)
{
    const char *field = (const char *)src + k->offset;
    bool stringy = k->type == CFG_STR || k->type == CFG_LIST;
    if (k->flags & CFG_SECRET)
        return snprintf(out, cap, "%s", (stringy && field[0] == '\0') ? "" : "***");
    switch (k->type) {
    case CFG_STR:
    case CFG_LIST:
        return snprintf(out, cap, "%.*s", (int)strnlen(field, k->size), field);
    case CFG_INT: {
        long long x;
        memcpy(&x, field, sizeof(x));
        return snprintf(out, cap, "%lld", x);
    }
    case CFG_BOOL: {
        bool b;
        memcpy(&b, field, sizeof(b));
        return snprintf(out, cap, "%s", b ? "true" : "false");
    }
    case CFG_DURATION:
    case CFG_SIZE: {
        uint64_t x;
        memcpy(&x, field, sizeof(x));
        return k->type == CFG_DURATION ? fmt_duration(x, out, cap) : fmt_size(x, out, cap);
    }
    case CFG_ENUM: {
        int idx;
        memcpy(&idx, field, sizeof(idx));
        const char *p = k->enum_values;
        for (int i = 0; p && i < idx; i++) {
            p = strchr(p, '|');
            p = p ? p + 1 : NULL;
        }
        if (!p || idx < 0)
            return snprintf(out, cap, "?");
        return snprintf(out, cap, "%.*s", (int)strcspn(p, "|"), p);
    }
    case CFG_ADDR: {
        struct cfg_addr a;
        memcpy(&a, field, sizeof(a));
        if (a.host[0] == '\0')
            return snprintf(out, cap, "%s", "");
        bool v6 = strchr(a.host, ':') != NULL;
        return snprintf(out, cap, v6 ? "[%.255s]:%u" : "%.255s:%u", a.host, (unsigned)a.port);
    }
    }
    return -EINVAL;
}

bool cfg_list_next(const char **pos, const char **item, size_t *len)
{
    const char *p = *pos;
    if (!p || *p == '\0')
        return false;
    size_t l = strcspn(p, ",");
    *item = p;
    *len = l;
    *pos = p[l] == ',' ? p + l + 1 : p + l;
    return true;
}

size_t cfg_list_count(const char *list)
{
    const char *pos = list, *item;
    size_t len, n = 0;
    while (cfg_list_next(&pos, &item, &len))
        n++;
    return n;
}

bool cfgval_same(const struct cfg_key *k, const void *a, const void *b)
{
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case CFG_STR:
    case CFG_LIST:
        return strncmp(fa, fb, k->size) == 0;
    case CFG_ADDR: {
        const struct cfg_addr *x = (const void *)fa, *y = (const void *)fb;
        return x->port == y->port && strncmp(x->host, y->host, sizeof(x->host)) == 0;
    }
    default:
        return memcmp(fa, fb, cfgval_storage_size(k)) == 0;
    }
}

bool cfgval_enum_ok(const char *values)
{
    return values && values[0] != '\0' && values[0] != '|' && !strstr(values, "||") &&
           values[strlen(values) - 1] != '|';
}
