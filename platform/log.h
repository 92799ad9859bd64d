/* Logging: leveled logfmt lines on stderr with time, level, process role and module. */
#ifndef PGW_LOG_H
#define PGW_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Set the minimum level and the process role ("supervisor", "ha", "proxy", "web", "ctl"...).
 * Called once per process (and again after a reload that changes the level). */
void log_setup(enum log_level min_level, const char *role);
void log_set_level(enum log_level min_level);
/* The role printed with each line; useful for tests. */
const char *log_role(void);

/* Parse "debug", "info", "warn"/"warning", "error". Returns false on anything else. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

/* Writes one logfmt line:
 *   ts=2026-11-26T00:43:02.123Z level=info role=ha module=store msg="opened" <fields>
 * `msg` is quoted and escaped; `fields_fmt` is a printf format of extra key=value pairs
 * (may be ""). Control characters in the output are escaped so a line stays one line.
 * The whole line is emitted with a single write(2). Never pass secrets: use log_redact(). */
void log_write(enum log_level lvl, const char *module, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Each .c file that logs defines LOG_MODULE before using these, e.g. #define LOG_MODULE "store".
 * Usage: log_info("schema migrated", "from=%d to=%d", a, b);  or  log_info("started"); */
#define log_debug(msg, ...) log_write(LOG_LVL_DEBUG, LOG_MODULE, msg, "" __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_LVL_INFO, LOG_MODULE, msg, "" __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_LVL_WARN, LOG_MODULE, msg, "" __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_LVL_ERROR, LOG_MODULE, msg, "" __VA_ARGS__)

/* Copy `in` to `out` with secrets masked: the password of a URL (postgres://u:SECRET@h),
 * and the value of password=, passwd=, secret=, token= conninfo pairs become "***".
 * Always NUL-terminates `out` (truncating if needed). Returns out. */
char *log_redact(const char *in, char *out, size_t cap);

#endif
