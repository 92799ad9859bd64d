/* Config: table-driven INI reader (typed keys, defaults, file, PGWARDEN_* env, reload diff). */
#ifndef PGW_CONFIG_H
#define PGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit status for a configuration error (sysexits EX_CONFIG); the caller exits with it. */
enum { CFG_EXIT = 78 };

enum {
    CFG_LINE_MAX = 4096, /* longest accepted line of a config file, without the newline */
    CFG_NAME_MAX = 63,   /* longest section or key name */
    CFG_MAX_KEYS = 256,  /* largest key table */
    CFG_ERRORS_MAX = 64, /* errors kept in a struct cfg_errors; later ones set `overflow` */
};

/* Value types and how each is stored at `offset` in the caller's struct:
 *   CFG_STR      char[size]          error if the value does not fit
 *   CFG_INT      long long           decimal, range [min, max]
 *   CFG_BOOL     bool                true/false/yes/no/on/off/1/0 (any case)
 *   CFG_DURATION uint64_t (ms)       10s 500ms 2m 1h; a plain number is seconds; range in ms
 *   CFG_SIZE     uint64_t (bytes)    512KiB 1MiB 1GiB 1TiB, 1kB 1MB 1GB 1TB (powers of 10),
 *                                    1B; a plain number is bytes; range in bytes
 *   CFG_ENUM     int                 index into enum_values "a|b|c" (matched in any case)
 *   CFG_ADDR     struct cfg_addr     host:port, [v6addr]:port; the host is stored without
 *                                    brackets. Port range [min, max] when max != 0, otherwise
 *                                    1..65535 (so port 0 needs an explicit .min = 0, .max = N)
 *   CFG_LIST     char[size]          comma-separated non-empty items, stored normalized "a,b,c"
 *                                    (spaces around items removed); iterate with cfg_list_next
 * For CFG_INT, CFG_DURATION and CFG_SIZE, min == max == 0 means "no range check".
 * Integers only: "1.5s" is an error. Numbers never wrap: an overflow is an error. */
enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL, CFG_DURATION, CFG_SIZE, CFG_ENUM, CFG_ADDR, CFG_LIST };

enum cfg_flags {
    CFG_RELOADABLE = 1u << 0, /* may change on reload without a restart */
    CFG_SECRET = 1u << 1,     /* value never printed (formatted as "***", omitted from errors) */
    CFG_OPTIONAL = 1u << 2,   /* with def == NULL: unset/empty is allowed (STR, LIST, ADDR) */
};

struct cfg_addr {
    char host[256]; /* "" when an optional address is unset */
    uint16_t port;
};

/* One key. A table is a const array of these; `def` (text, parsed like a file value) is applied
 * by cfg_defaults(). def == NULL without CFG_OPTIONAL makes the key required, which is allowed
 * for STR, LIST and ADDR only. Values of STR/LIST keys must be non-empty unless CFG_OPTIONAL.
 * `size` is the buffer size for STR/LIST; for other types it is 0 or the size of the stored type
 * (checked, so a table built with sizeof(field) catches a field of the wrong type). */
struct cfg_key {
    const char *section; /* [a-z0-9_], at most CFG_NAME_MAX */
    const char *name;    /* [a-z0-9_], at most CFG_NAME_MAX */
    enum cfg_type type;
    size_t offset; /* offsetof() into the caller's struct */
    size_t size;   /* see above */
    long long min; /* see enum cfg_type */
    long long max;
    const char *def;         /* default as text; NULL = required (or empty if CFG_OPTIONAL) */
    const char *enum_values; /* CFG_ENUM: "a|b|c" */
    unsigned flags;          /* enum cfg_flags */
    const char *help;        /* one line for docs */
};

/* Collected problems. `where` is "file:line", "env PGWARDEN_SECTION_KEY", the file name alone
 * (a missing required key or a cross-field check) or "table" (a defect in the key table).
 * Initialise with `struct cfg_errors e = {0};`. Messages never contain secret values. */
struct cfg_error {
    char where[300];
    char msg[300];
};
struct cfg_errors {
    size_t count;
    struct cfg_error items[CFG_ERRORS_MAX];
    bool overflow; /* more errors happened than fit in items */
};

/* Every function below appends to `e` (never clears it) and returns false if it added an error.
 * A value that fails to parse leaves the previous value in place. */

/* Checks the table (names, types, sizes, ranges, env name collisions) and applies every default
 * (zeroing keys without one). Table defects are reported with where "table". */
bool cfg_defaults(const struct cfg_key *t, size_t n, void *dst, struct cfg_errors *e);

/* Reads an INI file over dst. Syntax: "[section]", "key = value", whole-line "#" or ";"
 * comments, a trailing " #..." comment after an unquoted value (a '#' preceded by a space or
 * tab), blank lines, CRLF or LF, optional UTF-8 BOM. Values are trimmed; "double quoted" values
 * keep spaces and '#' and understand \" \\ \n. Unknown sections/keys (with a "did you mean"
 * hint), bad values, duplicate keys and lines longer than CFG_LINE_MAX are errors; reading goes
 * on to report every problem. An unreadable file is one error "cannot read config file X: ...". */
bool cfg_load_file(const struct cfg_key *t, size_t n, void *dst, const char *path,
                   struct cfg_errors *e);

/* Applies PGWARDEN_<SECTION>_<KEY>=value (upper case) from envp over dst; values are taken
 * verbatim (no trimming, quotes or comments). Bad values are errors ("env PGWARDEN_HA_TTL").
 * PGWARDEN_* names that are not keys are NOT errors, since PGWARDEN_ is also used for other
 * things (PGWARDEN_CONFIG, PGWARDEN_DEMO_DIR): a name that starts with a known section
 * (PGWARDEN_HA_TLL) is logged as a warning with a hint; others are ignored. */
bool cfg_load_env(const struct cfg_key *t, size_t n, void *dst, char *const *envp,
                  struct cfg_errors *e);

/* Reports each required key (def == NULL, not CFG_OPTIONAL) that is still empty; where = path
 * (or "config" when path is NULL). */
bool cfg_check_required(const struct cfg_key *t, size_t n, const void *dst, const char *path,
                        struct cfg_errors *e);

/* cfg_defaults + cfg_load_file (skipped if path is NULL) + cfg_load_env (skipped if envp is
 * NULL) + cfg_check_required. Stops after the defaults if the table itself is broken. */
bool cfg_load(const struct cfg_key *t, size_t n, void *dst, const char *path, char *const *envp,
              struct cfg_errors *e);

/* For every key whose value differs between cur and next: a CFG_RELOADABLE key is copied into
 * cur and reported with applied=true; any other key is left as is and reported with
 * applied=false (the caller logs "needs restart"). cb may be NULL. Returns the number of
 * changed keys (applied or not). */
size_t cfg_diff_reload(const struct cfg_key *t, size_t n, void *cur, const void *next,
                       void (*cb)(const struct cfg_key *k, bool applied, void *arg), void *arg);

/* Writes the value in a form the parser accepts again (durations as 1h/2m/10s/500ms, sizes as
 * GiB/MiB/KiB or bytes, addresses with brackets for IPv6). A set CFG_SECRET value gives "***"
 * (an empty one gives ""). Returns the length it needed, like snprintf, or -EINVAL. */
int cfg_format_value(const struct cfg_key *k, const void *src, char *out, size_t cap);

/* Finds a key by section and name; NULL if none. */
const struct cfg_key *cfg_find(const struct cfg_key *t, size_t n, const char *section,
                               const char *name);

/* Environment variable name of a key: "PGWARDEN_HA_TTL". Returns false if it does not fit. */
bool cfg_env_name(const struct cfg_key *k, char *out, size_t cap);

/* Iterates a CFG_LIST value: `const char *pos = list, *item; size_t len;`
 * `while (cfg_list_next(&pos, &item, &len)) ...` (item is not NUL-terminated). */
bool cfg_list_next(const char **pos, const char **item, size_t *len);
size_t cfg_list_count(const char *list);

/* Appends one error (printf-style message). Returns false (so `return cfg_errorf(...)` works). */
bool cfg_errorf(struct cfg_errors *e, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "where: message" per error, then a line if some were dropped. */
void cfg_errors_print(const struct cfg_errors *e, FILE *f);

/* Parsers shared with other modules (e.g. the HTTP API's ?lag=); false on a bad value. */
bool cfg_parse_duration_ms(const char *s, uint64_t *out);
bool cfg_parse_size(const char *s, uint64_t *out);

#endif
