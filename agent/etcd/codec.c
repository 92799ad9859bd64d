/* etcd codec: typed JSON field access, int64-as-string numbers and error-body mapping. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"

const char *etcd_strerror(int err)
{
    switch (err) {
    case ETCD_OK:
        return "ok";
    case ETCD_E_TRANSPORT:
        return "etcd unreachable";
    case ETCD_E_UNAVAILABLE:
        return "etcd unavailable";
    case ETCD_E_PROTOCOL:
        return "malformed etcd response";
    case ETCD_E_LEASE_NOT_FOUND:
        return "lease not found";
    case ETCD_E_NOT_FOUND:
        return "not found";
    case ETCD_E_COMPACTED:
        return "revision compacted";
    case ETCD_E_AUTH:
        return "authentication failed";
    case ETCD_E_PERMISSION:
        return "permission denied";
    case ETCD_E_INVALID:
        return "invalid request";
    case ETCD_E_SERVER:
        return "etcd error";
    case ETCD_E_NOMEM:
        return "out of memory";
    default:
        return "unknown etcd error";
    }
}

/* ---- numbers ---- */

static bool parse_digits(const char *s, bool allow_minus, bool *neg, unsigned long long *out)
{
    *neg = false;
    if (*s == '-' && allow_minus) {
        *neg = true;
        s++;
    }
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || !end || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool etcd_json_i64(const json_t *obj, const char *name, bool required, int64_t *out)
{
    *out = 0;
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return !required;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) > 20)
        return false;
    bool neg;
    unsigned long long u;
    if (!parse_digits(json_string_value(v), true, &neg, &u))
        return false;
    if (neg) {
        if (u > (unsigned long long)INT64_MAX + 1)
            return false;
        *out = u == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (unsigned long long)INT64_MAX)
            return false;
        *out = (int64_t)u;
    }
    return true;
}

bool etcd_json_u64(const json_t *obj, const char *name, bool required, uint64_t *out)
{
    *out = 0;
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return !required;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return false;
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) > 20)
        return false;
    bool neg;
    unsigned long long u;
    if (!parse_digits(json_string_value(v), false, &neg, &u))
        return false;
    *out = u;
    return true;
}

bool etcd_json_bool(const json_t *obj, const char *name, bool *out)
{
    *out = false;
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return true;
    if (!json_is_boolean(v))
        return false;
    *out = json_is_true(v);
    return true;
}

bool etcd_json_str(const json_t *obj, const char *name, bool required, const char **out)
{
    *out = "";
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return !required;
    if (!json_is_string(v))
        return false;
    *out = json_string_value(v);
    return true;
}

int etcd_json_bytes(const json_t *obj, const char *name, bool required, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    const json_t *v = json_object_get(obj, name);
    if (!v) {
        if (required)
            return ETCD_E_PROTOCOL;
        *out = calloc(1, 1);
        return *out ? 0 : ETCD_E_NOMEM;
    }
    if (!json_is_string(v))
        return ETCD_E_PROTOCOL;
    return etcd_b64_decode(json_string_value(v), json_string_length(v), ETCD_MAX_VALUE, out, len);
}

bool etcd_json_array(const json_t *obj, const char *name, json_t **out)
{
    *out = json_object_get(obj, name);
    if (!*out)
        return true;
    return json_is_array(*out);
}

bool etcd_json_object(const json_t *obj, const char *name, json_t **out)
{
    *out = json_object_get(obj, name);
    if (!*out)
        return true;
    return json_is_object(*out);
}

json_t *etcd_json_load(const char *text, size_t len)
{
    if (!text || len == 0 || len > ETCD_MAX_BODY)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

char *etcd_json_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT);
}

/* ---- errors ---- */

void etcd_error_set(struct etcd_error *e, int err, long http_status, int grpc_code,
                    const char *endpoint, const char *fmt, ...)
{
    e->err = err;
    e->http_status = http_status;
    e->grpc_code = grpc_code;
    if (endpoint != e->endpoint) /* callers may pass e->endpoint itself */
        snprintf(e->endpoint, sizeof(e->endpoint), "%s", endpoint ? endpoint : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

static bool has(const char *msg, const char *needle)
{
    return msg && strstr(msg, needle) != NULL;
}

/* gRPC codes (google.golang.org/grpc/codes). */
enum {
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16,
};

int etcd_err_map(long http_status, int grpc_code, const char *message)
{
    switch (grpc_code) {
    case GRPC_NOT_FOUND:
        return has(message, "lease") ? ETCD_E_LEASE_NOT_FOUND : ETCD_E_NOT_FOUND;
    case GRPC_OUT_OF_RANGE:
        return has(message, "compacted") ? ETCD_E_COMPACTED : ETCD_E_INVALID;
    case GRPC_UNAUTHENTICATED:
        return ETCD_E_AUTH;
    case GRPC_PERMISSION_DENIED:
        return ETCD_E_PERMISSION;
    case GRPC_UNAVAILABLE:
    case GRPC_DEADLINE_EXCEEDED:
    case GRPC_RESOURCE_EXHAUSTED:
        return ETCD_E_UNAVAILABLE;
    case GRPC_INVALID_ARGUMENT:
        if (has(message, "user name is empty") || has(message, "invalid auth token") ||
            has(message, "authentication failed") || has(message, "auth store is old"))
            return ETCD_E_AUTH;
        return ETCD_E_INVALID;
    case -1:
        break;
    default:
        return http_status >= 500 ? ETCD_E_UNAVAILABLE : ETCD_E_SERVER;
    }
    if (http_status == 401)
        return ETCD_E_AUTH;
    if (http_status == 403)
        return ETCD_E_PERMISSION;
    if (http_status == 404)
        return ETCD_E_NOT_FOUND;
    if (http_status >= 500)
        return ETCD_E_UNAVAILABLE;
    if (http_status >= 400)
        return ETCD_E_INVALID;
    return ETCD_E_PROTOCOL;
}

/* Keeps printable ASCII only, so a server message can be logged as is. */
static void copy_printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[o] = '\0';
}

static int error_fill(long http_status, const json_t *obj, const char *endpoint,
                      struct etcd_error *e)
{
    int64_t code = -1;
    const char *msg = "";
    bool ok = etcd_json_str(obj, "message", false, &msg);
    const json_t *jc = json_object_get(obj, "code") ? json_object_get(obj, "code")
                                                    : json_object_get(obj, "grpc_code");
    if (jc && !json_is_integer(jc))
        ok = false;
    else if (jc)
        code = json_integer_value(jc);
    if (code < -1 || code > 1000)
        ok = false;
    if (!ok) {
        etcd_error_set(e, ETCD_E_PROTOCOL, http_status, -1, endpoint,
                       "malformed error body (HTTP %ld)", http_status);
        return e->err;
    }
    if (!*msg)
        etcd_json_str(obj, "error", false, &msg);
    int err = etcd_err_map(http_status, (int)code, msg);
    etcd_error_set(e, err, http_status, (int)code, endpoint, "%s", "");
    copy_printable(e->message, sizeof(e->message), msg, strlen(msg));
    return err;
}

int etcd_error_from_json(long http_status, const json_t *obj, const char *endpoint,
                         struct etcd_error *e)
{
    const json_t *inner = json_object_get(obj, "error");
    if (json_is_object(inner))
        return error_fill(http_status, inner, endpoint, e);
    return error_fill(http_status, obj, endpoint, e);
}

int etcd_error_from_body(long http_status, const char *body, size_t len, const char *endpoint,
                         struct etcd_error *e)
{
    json_t *j = etcd_json_load(body, len);
    if (!j) {
        int err = etcd_err_map(http_status, -1, NULL);
        etcd_error_set(e, err, http_status, -1, endpoint, "HTTP %ld: ", http_status);
        size_t used = strlen(e->message);
        copy_printable(e->message + used, sizeof(e->message) - used, body ? body : "",
                       len < 120 ? len : 120);
        return err;
    }
    int err = etcd_error_from_json(http_status, j, endpoint, e);
    json_decref(j);
    return err;
}
