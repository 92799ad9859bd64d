/* Config: table-driven INI reader (typed keys, defaults, file, PGWARDEN_* env, reload diff). */
#include "platform/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform/config_value.h"
#include "platform/log.h"

#define LOG_MODULE "config"

enum { ENV_NAME_CAP = 160 };

static const char env_prefix[] = "PGWARDEN_";

/* ---- errors ---------------------------------------------------------------------------- */

bool cfg_errorf(struct cfg_errors *e, const char *where, const char *fmt, ...)
{
    if (e->count >= CFG_ERRORS_MAX) {
        e->overflow = true;
        return false;
    }
    struct cfg_error *it = &e->items[e->count++];
    snprintf(it->where, sizeof(it->where), "%s", where ? where : "config");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->msg, sizeof(it->msg), fmt, ap);
    va_end(ap);
    return false;
}

void cfg_errors_print(const struct cfg_errors *e, FILE *f)
{
    for (size_t i = 0; i < e->count && i < CFG_ERRORS_MAX; i++)
        fprintf(f, "%s: %s\n", e->items[i].where, e->items[i].msg);
    if (e->overflow)
        fprintf(f, "(more than %d errors; the rest are not shown)\n", CFG_ERRORS_MAX);
}

/* ---- names, lookup, hints -------------------------------------------------------------- */

static bool valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(islower(c) || isdigit(c) || c == '_'))
            return false;
    }
    return n > 0 && n <= CFG_NAME_MAX;
}

const struct cfg_key *cfg_find(const struct cfg_key *t, size_t n, const char *section,
                               const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].section, section) == 0 && strcmp(t[i].name, name) == 0)
            return &t[i];
    }
    return NULL;
}

static bool section_known(const struct cfg_key *t, size_t n, const char *section)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].section, section) == 0)
            return true;
    }
    return false;
}

bool cfg_env_name(const struct cfg_key *k, char *out, size_t cap)
{
    int r = snprintf(out, cap, "%s%s_%s", env_prefix, k->section, k->name);
    if (r < 0 || (size_t)r >= cap)
        return false;
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return true;
}

/* Levenshtein distance of two short names; SIZE_MAX if either is too long to compare. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > ENV_NAME_CAP || lb > ENV_NAME_CAP)
        return SIZE_MAX;
    size_t prev[ENV_NAME_CAP + 1], cur[ENV_NAME_CAP + 1];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
    }
    return prev[lb];
}

/* The closest section name within distance 2, or NULL. */
static const char *hint_section(const struct cfg_key *t, size_t n, const char *section)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(section, t[i].section);
        if (d < best_d) {
            best_d = d;
            best = t[i].section;
        }
    }
    return best;
}

/* Writes " (did you mean ...?)" for an unknown key, or "" when nothing is close. */
static void hint_key(const struct cfg_key *t, size_t n, const char *section, const char *name,
                     char *out, size_t cap)
{
    const struct cfg_key *best = NULL;
    size_t best_d = 3;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].section, section) != 0)
            continue;
        size_t d = edit_distance(name, t[i].name);
        if (d < best_d) {
            best_d = d;
            best = &t[i];
        }
    }
    if (best) {
        snprintf(out, cap, " (did you mean '%s'?)", best->name);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, name) == 0) {
            snprintf(out, cap, " (did you mean '%s' in [%s]?)", t[i].name, t[i].section);
            return;
        }
    }
}

/* ---- table check and defaults ----------------------------------------------------------- */

static bool check_key(const struct cfg_key *t, size_t i, struct cfg_errors *e)
{
    const struct cfg_key *k = &t[i];
    if (!k->section || !k->name || !valid_name(k->section) || !valid_name(k->name))
        return cfg_errorf(e, "table", "key #%zu: section and name must be [a-z0-9_]{1,%d}", i,
                          CFG_NAME_MAX);
    if ((unsigned)k->type > (unsigned)CFG_LIST)
        return cfg_errorf(e, "table", "[%s] %s: unknown type", k->section, k->name);
    bool buffer = k->type == CFG_STR || k->type == CFG_LIST;
    bool stringy = buffer || k->type == CFG_ADDR;
    if (buffer ? k->size < 2 : (k->size != 0 && k->size != cfgval_storage_size(k)))
        return cfg_errorf(e, "table", "[%s] %s: size %zu does not match the type", k->section,
                          k->name, k->size);
    if (k->type == CFG_ENUM && !cfgval_enum_ok(k->enum_values))
        return cfg_errorf(e, "table", "[%s] %s: bad enum_values", k->section, k->name);
    if (k->min > k->max && !(k->type == CFG_ADDR && k->max == 0))
        return cfg_errorf(e, "table", "[%s] %s: min > max", k->section, k->name);
    if ((k->type == CFG_DURATION || k->type == CFG_SIZE) && k->min < 0)
        return cfg_errorf(e, "table", "[%s] %s: negative min", k->section, k->name);
    if (k->type == CFG_ADDR && k->max != 0 && (k->min < 0 || k->max > 65535))
        return cfg_errorf(e, "table", "[%s] %s: port range outside 0..65535", k->section, k->name);
    if (!k->def && !stringy)
        return cfg_errorf(e, "table", "[%s] %s: only str, list and addr keys may lack a default",
                          k->section, k->name);
    char a[ENV_NAME_CAP], b[ENV_NAME_CAP];
    if (!cfg_env_name(k, a, sizeof(a)))
        return cfg_errorf(e, "table", "[%s] %s: name too long", k->section, k->name);
    for (size_t j = 0; j < i; j++) {
        if (cfg_env_name(&t[j], b, sizeof(b)) && strcmp(a, b) == 0)
            return cfg_errorf(e, "table", "[%s] %s: same name or env variable %s as [%s] %s",
                              k->section, k->name, a, t[j].section, t[j].name);
    }
    return true;
}

bool cfg_defaults(const struct cfg_key *t, size_t n, void *dst, struct cfg_errors *e)
{
    size_t before = e->count;
    bool overflow_before = e->overflow;
    if (n > CFG_MAX_KEYS)
        return cfg_errorf(e, "table", "%zu keys, at most %d supported", n, CFG_MAX_KEYS);
    for (size_t i = 0; i < n; i++) {
        if (!check_key(t, i, e))
            continue;
        const struct cfg_key *k = &t[i];
        char err[CFGVAL_ERR_CAP];
        if (!k->def) {
            memset((char *)dst + k->offset, 0, cfgval_storage_size(k));
        } else if (!cfgval_set(k, dst, k->def, err, sizeof(err))) {
            cfg_errorf(e, "table", "[%s] %s: bad default: %s", k->section, k->name, err);
        }
    }
    return e->count == before && e->overflow == overflow_before;
}

/* ---- file ------------------------------------------------------------------------------- */

struct reader {
    const struct cfg_key *t;
    size_t n;
    void *dst;
    const char *path;
    struct cfg_errors *e;
    size_t lineno;
    char section[CFG_NAME_MAX + 1];
    enum { SEC_NONE, SEC_KNOWN, SEC_UNKNOWN } sec;
    size_t first_line[CFG_MAX_KEYS]; /* line where each key was set in this file; 0 = not yet */
};

static void line_error(struct reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void line_error(struct reader *r, const char *fmt, ...)
{
    char where[300], msg[300];
    snprintf(where, sizeof(where), "%s:%zu", r->path, r->lineno);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cfg_errorf(r->e, where, "%s", msg);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    return s;
}

static bool comment_or_blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0' || *s == '#' || *s == ';';
}

static void parse_section(struct reader *r, char *s)
{
    char *close = strchr(s, ']');
    if (!close || !comment_or_blank(close + 1)) {
        line_error(r, "malformed section header (expected [section])");
        r->sec = SEC_UNKNOWN;
        return;
    }
    *close = '\0';
    char *name = trim(s + 1);
    if (!valid_name(name)) {
        line_error(r, "invalid section name '%.64s' (use a-z, 0-9 and _)", name);
        r->sec = SEC_UNKNOWN;
        return;
    }
    snprintf(r->section, sizeof(r->section), "%s", name);
    if (section_known(r->t, r->n, name)) {
        r->sec = SEC_KNOWN;
        return;
    }
    r->sec = SEC_UNKNOWN;
    const char *h = hint_section(r->t, r->n, name);
    if (h)
        line_error(r, "unknown section [%s] (did you mean [%s]?)", name, h);
    else
        line_error(r, "unknown section [%s]", name);
}

/* Decodes a quoted value in place (s points at the opening quote). Returns the text after the
 * closing quote, or NULL with *why set. */
static char *unquote(char *s, const char **why)
{
    char *w = s, *p = s + 1;
    for (;; p++) {
        if (*p == '\0') {
            *why = "missing closing quote";
            return NULL;
        }
        if (*p == '"')
            break;
        if (*p == '\\') {
            p++;
            if (*p == '"' || *p == '\\') {
                *w++ = *p;
            } else if (*p == 'n') {
                *w++ = '\n';
            } else {
                *why = "unknown escape in quoted value (use \\\", \\\\ or \\n)";
                return NULL;
            }
            continue;
        }
        *w++ = *p;
    }
    *w = '\0';
    return p + 1;
}

/* Extracts the value text after '=': quoted or unquoted with a trailing " #" comment. */
static char *value_text(struct reader *r, char *s)
{
    s = trim(s);
    if (*s == '"') {
        const char *why = NULL;
        char *rest = unquote(s, &why);
        if (!rest) {
            line_error(r, "%s", why);
            return NULL;
        }
        if (!comment_or_blank(rest)) {
            line_error(r, "unexpected text after the closing quote");
            return NULL;
        }
        return s;
    }
    for (char *p = s; *p; p++) {
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    return trim(s);
}

static void parse_assignment(struct reader *r, char *s)
{
    char *eq = strchr(s, '=');
    if (!eq) {
        line_error(r, "expected 'key = value' or '[section]'");
        return;
    }
    *eq = '\0';
    char *key = trim(s);
    if (!valid_name(key)) {
        line_error(r, "invalid key name '%.64s' (use a-z, 0-9 and _)", key);
        return;
    }
    if (r->sec == SEC_NONE) {
        line_error(r, "key '%s' is outside of any [section]", key);
        return;
    }
    if (r->sec == SEC_UNKNOWN)
        return; /* already reported at the section header */
    const struct cfg_key *k = cfg_find(r->t, r->n, r->section, key);
    if (!k) {
        char hint[160];
        hint_key(r->t, r->n, r->section, key, hint, sizeof(hint));
        line_error(r, "unknown key '%s' in [%s]%s", key, r->section, hint);
        return;
    }
    size_t idx = (size_t)(k - r->t);
    if (r->first_line[idx]) {
        line_error(r, "duplicate key '%s' in [%s] (first set on line %zu)", key, r->section,
                   r->first_line[idx]);
        return;
    }
    r->first_line[idx] = r->lineno;
    char *v = value_text(r, eq + 1);
    char err[CFGVAL_ERR_CAP];
    if (v && !cfgval_set(k, r->dst, v, err, sizeof(err)))
        line_error(r, "[%s] %s: %s", k->section, k->name, err);
}

/* Reads one line (without "\n" / "\r\n") into buf (CFG_LINE_MAX + 2 bytes). Returns false at
 * the end of the file; *too_long and *nul report lines the parser must reject. */
static bool read_line(FILE *f, char *buf, bool *too_long, bool *nul)
{
    size_t len = 0;
    int c;
    *too_long = *nul = false;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == '\0')
            *nul = true;
        if (len < CFG_LINE_MAX + 1)
            buf[len++] = (char)c;
        else
            *too_long = true;
    }
    if (c == EOF && len == 0 && !*too_long)
        return false;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (len > CFG_LINE_MAX)
        *too_long = true;
    buf[len] = '\0';
    return true;
}

bool cfg_load_file(const struct cfg_key *t, size_t n, void *dst, const char *path,
                   struct cfg_errors *e)
{
    size_t before = e->count;
    bool overflow_before = e->overflow;
    if (n > CFG_MAX_KEYS)
        return cfg_errorf(e, "table", "%zu keys, at most %d supported", n, CFG_MAX_KEYS);
    FILE *f = fopen(path, "r");
    if (!f)
        return cfg_errorf(e, path, "cannot read config file %s: %s", path, strerror(errno));
    struct reader *r = calloc(1, sizeof(*r));
    char *line = malloc(CFG_LINE_MAX + 2);
    if (!r || !line) {
        cfg_errorf(e, path, "cannot read config file %s: %s", path, strerror(ENOMEM));
        goto out;
    }
    *r = (struct reader){.t = t, .n = n, .dst = dst, .path = path, .e = e, .sec = SEC_NONE};
    bool too_long, nul;
    while (read_line(f, line, &too_long, &nul)) {
        r->lineno++;
        char *s = line;
        if (r->lineno == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3;
        if (too_long) {
            line_error(r, "line too long (more than %d characters)", CFG_LINE_MAX);
            continue;
        }
        if (nul) {
            line_error(r, "line contains a NUL byte");
            continue;
        }
        s = trim(s);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[')
            parse_section(r, s);
        else
            parse_assignment(r, s);
    }
    if (ferror(f))
        cfg_errorf(e, path, "cannot read config file %s: %s", path, strerror(errno));
out:
    free(line);
    free(r);
    fclose(f);
    return e->count == before && e->overflow == overflow_before;
}

/* ---- environment ------------------------------------------------------------------------ */

/* Logs a warning for a PGWARDEN_<SECTION>_... variable that names no key. */
static void warn_unknown_env(const struct cfg_key *t, size_t n, const char *name)
{
    char want[ENV_NAME_CAP], best[ENV_NAME_CAP] = "";
    bool looks_like_key = false;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        if (!cfg_env_name(&t[i], want, sizeof(want)))
            continue;
        size_t pre = strlen(env_prefix) + strlen(t[i].section) + 1;
        if (strncmp(name, want, pre) == 0)
            looks_like_key = true;
        size_t d = edit_distance(name, want);
        if (d < best_d) {
            best_d = d;
            snprintf(best, sizeof(best), "%s", want);
        }
    }
    if (!looks_like_key && best[0] == '\0')
        return;
    if (best[0])
        log_warn("unknown config variable in environment ignored", "name=%s hint=%s", name, best);
    else
        log_warn("unknown config variable in environment ignored", "name=%s", name);
}

bool cfg_load_env(const struct cfg_key *t, size_t n, void *dst, char *const *envp,
                  struct cfg_errors *e)
{
    size_t before = e->count;
    bool overflow_before = e->overflow;
    bool applied[CFG_MAX_KEYS] = {false};
    if (n > CFG_MAX_KEYS)
        return cfg_errorf(e, "table", "%zu keys, at most %d supported", n, CFG_MAX_KEYS);
    size_t plen = strlen(env_prefix);
    for (char *const *ep = envp; ep && *ep; ep++) {
        const char *entry = *ep;
        const char *eq = strchr(entry, '=');
        if (strncmp(entry, env_prefix, plen) != 0 || !eq || (size_t)(eq - entry) >= ENV_NAME_CAP)
            continue;
        char name[ENV_NAME_CAP], want[ENV_NAME_CAP];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - entry), entry);
        size_t i = 0;
        while (i < n && !(cfg_env_name(&t[i], want, sizeof(want)) && strcmp(want, name) == 0))
            i++;
        if (i == n) {
            warn_unknown_env(t, n, name);
            continue;
        }
        if (applied[i])
            continue; /* like getenv(): the first definition wins */
        applied[i] = true;
        char err[CFGVAL_ERR_CAP];
        if (!cfgval_set(&t[i], dst, eq + 1, err, sizeof(err))) {
            char where[ENV_NAME_CAP + 8];
            snprintf(where, sizeof(where), "env %s", name);
            cfg_errorf(e, where, "[%s] %s: %s", t[i].section, t[i].name, err);
        }
    }
    return e->count == before && e->overflow == overflow_before;
}

/* ---- required, load, reload ------------------------------------------------------------- */

static bool is_empty(const struct cfg_key *k, const void *src)
{
    const char *field = (const char *)src + k->offset;
    if (k->type == CFG_ADDR)
        return ((const struct cfg_addr *)(const void *)field)->host[0] == '\0';
    return (k->type == CFG_STR || k->type == CFG_LIST) && field[0] == '\0';
}

bool cfg_check_required(const struct cfg_key *t, size_t n, const void *dst, const char *path,
                        struct cfg_errors *e)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_key *k = &t[i];
        if (k->def || (k->flags & CFG_OPTIONAL) || !is_empty(k, dst))
            continue;
        char env[ENV_NAME_CAP];
        if (!cfg_env_name(k, env, sizeof(env)))
            env[0] = '\0';
        ok = cfg_errorf(e, path ? path : "config", "missing required key '%s' in [%s] (or set %s)",
                        k->name, k->section, env);
    }
    return ok;
}

bool cfg_load(const struct cfg_key *t, size_t n, void *dst, const char *path, char *const *envp,
              struct cfg_errors *e)
{
    size_t before = e->count;
    bool overflow_before = e->overflow;
    if (!cfg_defaults(t, n, dst, e))
        return false;
    if (path) {
        /* An unreadable file is one clear error, not a list of "missing key" follow-ups. */
        FILE *probe = fopen(path, "r");
        if (!probe)
            return cfg_load_file(t, n, dst, path, e);
        fclose(probe);
        cfg_load_file(t, n, dst, path, e);
    }
    if (envp)
        cfg_load_env(t, n, dst, envp, e);
    cfg_check_required(t, n, dst, path, e);
    return e->count == before && e->overflow == overflow_before;
}

size_t cfg_diff_reload(const struct cfg_key *t, size_t n, void *cur, const void *next,
                       void (*cb)(const struct cfg_key *k, bool applied, void *arg), void *arg)
{
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_key *k = &t[i];
        if (cfgval_same(k, cur, next))
            continue;
        changed++;
        bool apply = (k->flags & CFG_RELOADABLE) != 0;
        if (apply)
            memcpy((char *)cur + k->offset, (const char *)next + k->offset, cfgval_storage_size(k));
        if (cb)
            cb(k, apply, arg);
    }
    return changed;
}
