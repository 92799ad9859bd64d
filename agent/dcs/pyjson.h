/* DCS JSON: bounded strict parsing, typed field readers and Python-identical compact output. */
#ifndef PGW_DCS_PYJSON_H
#define PGW_DCS_PYJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum {
    /* Largest value accepted from or written to etcd: etcd's default --max-request-bytes. */
    DCS_VALUE_MAX = 1572864,
    /* Deepest JSON nesting the dumper writes (jansson's parser stops at 2048 as well). */
    DCS_JSON_MAX_DEPTH = 2048,
    DCS_ERR_CAP = 240,
};

/* Why a decode or encode failed: one line, never containing secrets, e.g.
 * "member: 'timeline' must be an integer, not a string". */
struct dcs_err {
    char msg[DCS_ERR_CAP];
};

/* Formats into err (when err is not NULL) and returns false, so that `return dcs_errf(...)`
 * reads naturally in bool functions. */
bool dcs_errf(struct dcs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "object", "array", "string", "integer", "real", "boolean", "null". */
const char *pyjson_type_name(const json_t *v);

/* Parses len bytes of text as one JSON value of any type (as Python's json.loads: the last of
 * duplicate keys wins; NUL bytes and non-UTF-8 are refused; nesting is limited). `what` names the
 * value in messages ("config"). Returns a new reference, or NULL with err set. */
json_t *pyjson_load(const char *text, size_t len, const char *what, struct dcs_err *err);

/* Serializes v exactly as Python's json.dumps(v, separators=(',', ':')) does: no spaces, keys in
 * insertion order, ensure_ascii escapes (\u00e9, surrogate pairs, lowercase hex, DEL escaped) and
 * floats in repr() form (0.9, 1e-05, 1e+16, 2.0). Returns a malloc'd NUL-terminated string (its
 * length in *len when len is not NULL), or NULL on allocation failure, nesting deeper than
 * DCS_JSON_MAX_DEPTH, or an output larger than DCS_VALUE_MAX. */
char *pyjson_dump(const json_t *v, size_t *len);

/* Writes Python's repr() of a finite double into out (cap >= 32). Returns false if d is not
 * finite or out is too small. */
bool pyjson_format_real(double d, char *out, size_t cap);

/* Field readers for objects. A missing key and a JSON null both mean "absent" (Python's
 * dict.get() returns None for both). Each returns 1 when the field was read, 0 when absent, and
 * -EINVAL (with err set to "<what>: '<key>' must be ...") when the type or range is wrong. */

/* A string; longer than cap - 1 bytes is an error. */
int pyjson_get_str(const json_t *obj, const char *key, char *out, size_t cap, const char *what,
                   struct dcs_err *err);
/* An integer (not a real, not a numeric string) within [min, max]. */
int pyjson_get_int(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                   const char *what, struct dcs_err *err);
/* true or false. */
int pyjson_get_bool(const json_t *obj, const char *key, bool *out, const char *what,
                    struct dcs_err *err);

/* Copies a JSON string value into out. Returns false with err set if v is not a string or is
 * longer than cap - 1 bytes. `what` and `key` only build the message. */
bool pyjson_copy_str(const json_t *v, char *out, size_t cap, const char *what, const char *key,
                     struct dcs_err *err);

#endif
