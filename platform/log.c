/* Logging: leveled logfmt lines on stderr with time, level, process role and module. */
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Process-wide logging settings: derived from the config once per process. */
static struct {
    enum log_level min;
    char role[16];
} log_cfg = {LOG_LVL_INFO, "main"};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level min_level, const char *role)
{
    log_cfg.min = min_level;
    snprintf(log_cfg.role, sizeof(log_cfg.role), "%s", role ? role : "main");
}

void log_set_level(enum log_level min_level)
{
    log_cfg.min = min_level;
}

const char *log_role(void)
{
    return log_cfg.role;
}

bool log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_LVL_WARN;
        return true;
    }
    return false;
}

const char *log_level_name(enum log_level lvl)
{
    return (lvl >= LOG_LVL_DEBUG && lvl <= LOG_LVL_ERROR) ? level_names[lvl] : "?";
}

/* Appends `s` to buf at *len, escaping quotes, backslashes and control characters. */
static void append_escaped(char *buf, size_t cap, size_t *len, const char *s, bool quotes)
{
    for (; *s && *len + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (quotes && (c == '"' || c == '\\')) {
            buf[(*len)++] = '\\';
            buf[(*len)++] = (char)c;
        } else if (c == '\n') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            *len += (size_t)snprintf(buf + *len, cap - *len, "\\x%02x", c);
        } else {
            buf[(*len)++] = (char)c;
        }
    }
    buf[*len] = '\0';
}

static void append_raw(char *buf, size_t cap, size_t *len, const char *s)
{
    int n = snprintf(buf + *len, cap - *len, "%s", s);
    if (n > 0)
        *len = (*len + (size_t)n < cap) ? *len + (size_t)n : cap - 1;
}

void log_write(enum log_level lvl, const char *module, const char *msg, const char *fields_fmt, ...)
{
    if (lvl < log_cfg.min)
        return;
    char line[2048];
    char fields[1536];
    char head[128];
    struct timespec ts;
    struct tm tm;
    size_t len = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(head, sizeof(head),
             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s role=%s module=", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
             log_level_name(lvl), log_cfg.role);
    append_raw(line, sizeof(line), &len, head);
    append_escaped(line, sizeof(line), &len, module ? module : "-", false);
    append_raw(line, sizeof(line), &len, " msg=\"");
    append_escaped(line, sizeof(line), &len, msg ? msg : "", true);
    append_raw(line, sizeof(line), &len, "\"");

    va_list ap;
    va_start(ap, fields_fmt);
    vsnprintf(fields, sizeof(fields), fields_fmt, ap);
    va_end(ap);
    if (fields[0] != '\0') {
        append_raw(line, sizeof(line), &len, " ");
        append_escaped(line, sizeof(line), &len, fields, false);
    }
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* True if `key` (length n, case-insensitive) names a secret conninfo/config value. */
static bool secret_key(const char *key, size_t n)
{
    static const char *const keys[] = {"password", "passwd", "secret", "token", "sslpassword"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strlen(keys[i]) == n && strncasecmp(key, keys[i], n) == 0)
            return true;
    }
    return false;
}

static void out_put(char *out, size_t cap, size_t *o, char c)
{
    if (*o + 1 < cap)
        out[(*o)++] = c;
}

static void out_puts(char *out, size_t cap, size_t *o, const char *s)
{
    while (*s)
        out_put(out, cap, o, *s++);
}

/* Masks the password in "scheme://user:password@host" starting at p (just after "://"). */
static const char *redact_url_userinfo(const char *p, char *out, size_t cap, size_t *o)
{
    const char *at = NULL;
    const char *colon = NULL;
    for (const char *q = p; *q && *q != '/' && *q != ' ' && *q != '?' && *q != '#'; q++) {
        if (*q == '@')
            at = q;
        if (*q == ':' && !at && !colon)
            colon = q;
    }
    if (!at || !colon || colon > at)
        return p;
    for (const char *q = p; q <= colon; q++)
        out_put(out, cap, o, *q);
    out_puts(out, cap, o, "***");
    return at;
}

/* Skips a secret value at p: a 'quoted' conninfo value, a "quoted" JSON string, or a bare word
 * (ending at whitespace, '&', or a JSON delimiter). Returns the first character after it. */
static const char *skip_secret_value(const char *p)
{
    char quote = (*p == '\'' || *p == '"') ? *p : 0;
    if (quote) {
        for (p++; *p && *p != quote; p++) {
            if (*p == '\\' && p[1])
                p++;
        }
        return *p == quote ? p + 1 : p;
    }
    while (*p && !isspace((unsigned char)*p) && *p != '&' && *p != '"' && *p != '\\' && *p != '}')
        p++;
    return p;
}

char *log_redact(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return out;
    const char *p = in ? in : "";
    while (*p) {
        if (strncmp(p, "://", 3) == 0) {
            out_puts(out, cap, &o, "://");
            p = redact_url_userinfo(p + 3, out, cap, &o);
            continue;
        }
        /* A key at a word start: conninfo "k=v", URL query "?k=v", JSON "\"k\": v". */
        bool word_start = (p == in) || isspace((unsigned char)p[-1]) || p[-1] == '?' ||
                          p[-1] == '&' || p[-1] == ',' || p[-1] == '"' || p[-1] == '{';
        if (word_start && isalpha((unsigned char)*p)) {
            const char *k = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            size_t klen = (size_t)(p - k);
            const char *e = p;
            bool json_key = (k > in && k[-1] == '"' && *e == '"');
            if (json_key)
                e++;
            while (*e == ' ')
                e++;
            for (const char *q = k; q < p; q++)
                out_put(out, cap, &o, *q);
            if ((*e == '=' || (json_key && *e == ':')) && secret_key(k, klen)) {
                for (const char *q = p; q <= e; q++)
                    out_put(out, cap, &o, *q);
                p = e + 1;
                while (*p == ' ')
                    out_put(out, cap, &o, *p++);
                bool quoted = (*p == '"' && json_key);
                p = skip_secret_value(p);
                out_puts(out, cap, &o, quoted ? "\"***\"" : "***");
            }
            continue;
        }
        out_put(out, cap, &o, *p++);
    }
    out[o] = '\0';
    return out;
}
