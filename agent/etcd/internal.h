/* etcd client internals shared by its files (codec, transport, watch); not for other modules. */
#ifndef PGW_ETCD_INTERNAL_H
#define PGW_ETCD_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "agent/etcd/etcd.h"
#include "agent/settings.h"

/* ---- base64 (standard alphabet, padded) and key ranges: b64.c ---- */

/* Encodes n bytes into a new NUL-terminated string; NULL on ENOMEM. */
char *etcd_b64_encode(const void *data, size_t n);
/* Decodes strictly (no whitespace, padding required, length a multiple of 4) into a new buffer
 * with a NUL after the data. 0, ETCD_E_PROTOCOL (invalid or longer than max decoded bytes) or
 * ETCD_E_NOMEM. */
int etcd_b64_decode(const char *in, size_t in_len, size_t max, char **out, size_t *out_len);
/* range_end of a prefix: the prefix without trailing 0xff bytes, last byte + 1; "\0" (one NUL
 * byte: every key >= key) when the prefix is empty or all 0xff. out has room for len + 1. */
size_t etcd_prefix_end(const char *key, size_t len, char *out);

/* ---- JSON field access (codec.c) ---- */

/* int64 given as a JSON string of decimal digits (etcd's encoding) or as an integer. A missing
 * field is 0 unless required. Returns false on a wrong type, bad digits or overflow. */
bool etcd_json_i64(const json_t *obj, const char *name, bool required, int64_t *out);
bool etcd_json_u64(const json_t *obj, const char *name, bool required, uint64_t *out);
/* Optional boolean (missing = false). */
bool etcd_json_bool(const json_t *obj, const char *name, bool *out);
/* Optional string (missing = ""); *out points into obj. */
bool etcd_json_str(const json_t *obj, const char *name, bool required, const char **out);
/* Base64 bytes field (missing = empty unless required); decoded copy with a NUL after it. */
int etcd_json_bytes(const json_t *obj, const char *name, bool required, char **out, size_t *len);
/* Optional array/object member: NULL if missing; false if present with another type. */
bool etcd_json_array(const json_t *obj, const char *name, json_t **out);
bool etcd_json_object(const json_t *obj, const char *name, json_t **out);

/* Parses a JSON document (objects only, duplicate keys rejected, size capped). */
json_t *etcd_json_load(const char *text, size_t len);
/* Serializes compactly, keys in insertion order; NULL on ENOMEM. */
char *etcd_json_dump(const json_t *j);

/* ---- errors (codec.c) ---- */

void etcd_error_set(struct etcd_error *e, int err, long http_status, int grpc_code,
                    const char *endpoint, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Maps an HTTP status, gRPC code (-1: none) and message to an enum etcd_err. */
int etcd_err_map(long http_status, int grpc_code, const char *message);
/* Fills e from an error answer: {"error":S,"code":N,"message":S} (3.4/3.5),
 * {"code":N,"message":S} (3.6), a stream's {"error":{"grpc_code"|"code":N,"message":S}}, or a
 * non-JSON body. Returns e->err. */
int etcd_error_from_body(long http_status, const char *body, size_t len, const char *endpoint,
                         struct etcd_error *e);
/* The same for an already parsed {"error":{...}} stream object. */
int etcd_error_from_json(long http_status, const json_t *obj, const char *endpoint,
                         struct etcd_error *e);

/* ---- request bodies (req.c); NULL on invalid arguments or ENOMEM ---- */

json_t *etcd_req_range(const struct etcd_range_req *r);
json_t *etcd_req_put(const struct etcd_put_req *r);
json_t *etcd_req_delete(const struct etcd_delete_req *r);
json_t *etcd_req_txn(const struct etcd_txn_req *r);
json_t *etcd_req_lease_grant(int64_t ttl_s, int64_t id);
json_t *etcd_req_lease_id(int64_t id); /* keepalive, revoke */
json_t *etcd_req_lease_ttl(int64_t id, bool keys);
json_t *etcd_req_auth(const char *user, const char *password);
json_t *etcd_req_watch(const char *prefix, int64_t start_revision, bool prev_kv);

/* ---- response parsing (resp.c): 0 or ETCD_E_PROTOCOL / ETCD_E_NOMEM; out cleared on error ---- */

int etcd_parse_header(const json_t *obj, bool required, struct etcd_header *h);
int etcd_parse_kv(const json_t *obj, struct etcd_kv *kv);
int etcd_parse_kvs(const json_t *arr, struct etcd_kv **kvs, size_t *n);
int etcd_parse_range(const json_t *obj, bool nested, struct etcd_range_result *r);
int etcd_parse_put(const json_t *obj, bool nested, struct etcd_put_result *r);
int etcd_parse_delete(const json_t *obj, bool nested, struct etcd_delete_result *r);
/* Checks the responses against the branch of req that was taken. */
int etcd_parse_txn(const json_t *obj, const struct etcd_txn_req *req, struct etcd_txn_result *r);
int etcd_parse_lease_grant(const json_t *obj, int64_t *id, int64_t *ttl);
/* The keepalive body {"result":{...}}: 0 with *ttl > 0, ETCD_E_LEASE_NOT_FOUND when TTL is
 * 0/absent, an error from a stream {"error":{...}}, or ETCD_E_PROTOCOL. */
int etcd_parse_keepalive(const json_t *obj, int64_t id, int64_t *ttl, struct etcd_error *e);
int etcd_parse_timetolive(const json_t *obj, struct etcd_lease_info *r);
/* *token points into obj. */
int etcd_parse_auth(const json_t *obj, const char **token);
/* {"etcdserver":"3.4.23","etcdcluster":"3.4.0"} -> cluster major/minor, server version. */
int etcd_parse_version(const json_t *obj, int *major, int *minor, const char **server);
/* Calls add(arg, url, len) for each clientURL of each member. */
int etcd_parse_members(const json_t *obj, void (*add)(void *arg, const char *url, size_t len),
                       void *arg);

/* One message of the watch stream. */
struct etcd_watch_msg {
    bool is_error; /* {"error":{...}}: err is filled */
    struct etcd_error err;
    struct etcd_header header;
    int64_t watch_id;
    bool created;
    bool canceled;
    int64_t compact_revision;
    char cancel_reason[256];
    struct etcd_event *events;
    size_t n_events;
};
int etcd_parse_watch_msg(const char *line, size_t len, struct etcd_watch_msg *m);
void etcd_watch_msg_clear(struct etcd_watch_msg *m);
void etcd_events_free(struct etcd_event *ev, size_t n);

/* ---- bounded byte buffer (stream.c) ---- */

struct etcd_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* appends beyond this fail */
};
/* false (and nothing appended) when it would exceed max or on ENOMEM. */
bool etcd_buf_append(struct etcd_buf *b, const void *data, size_t n);
void etcd_buf_reset(struct etcd_buf *b); /* keeps the storage */
void etcd_buf_free(struct etcd_buf *b);
/* A libcurl CURLOPT_WRITEFUNCTION appending to the etcd_buf in userdata (0 = abort on cap). */
size_t etcd_buf_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata);

/* Splits newline-delimited messages (the watch stream). */
struct etcd_stream {
    struct etcd_buf buf;
    size_t start;    /* first byte not yet returned */
    size_t scanned;  /* bytes from start already searched for '\n' */
    size_t max_line; /* longest message accepted */
};
void etcd_stream_init(struct etcd_stream *s, size_t max_line, size_t max_buffer);
void etcd_stream_free(struct etcd_stream *s);
void etcd_stream_reset(struct etcd_stream *s);
bool etcd_stream_feed(struct etcd_stream *s, const void *data, size_t n);
/* 1: (*line, *len) is the next message (without '\n', blank lines skipped; valid until the next
 * feed/next call); 0: need more bytes; -1: a message longer than max_line. */
int etcd_stream_next(struct etcd_stream *s, const char **line, size_t *len);

/* ---- the client (client.c, http.c) ---- */

struct etcd_client {
    struct pgw_etcd_settings s; /* copy; holds the password for re-authentication */
    char eps[ETCD_MAX_ENDPOINTS][ETCD_URL_MAX];
    size_t n_eps;
    size_t n_cfg; /* eps[0..n_cfg) are configured, the rest discovered */
    size_t cur;
    bool connected; /* version known and authenticated on eps[cur] */
    char api[16];   /* "/v3" or "/v3beta" */
    char server_version[32];
    char *token; /* auth token (secret) or NULL */
    CURL *easy;  /* unary requests (keep-alive) */
    struct etcd_buf resp;
    struct etcd_error last;
    uint64_t requests;
    /* A watch is told when an endpoint failed, so that it leaves that endpoint too. */
    void (*on_failover)(void *arg, const char *failed_endpoint);
    void *failover_arg;
};

bool etcd_have_auth(const struct etcd_client *c);
/* Applies the common options (HTTP/1.1, TLS files, host check, keepalive, no signals). */
bool etcd_http_setup(const struct etcd_client *c, CURL *h);
/* Content-Type, "Expect:", Authorization (if a token), and Grpc-Metadata-Hasleader when
 * require_leader. NULL on ENOMEM. */
struct curl_slist *etcd_http_headers(const struct etcd_client *c, bool require_leader);
/* The endpoint failed (reason: for the log): moves on to the next one if it is still the current
 * one. */
void etcd_client_failed(struct etcd_client *c, const char *endpoint, const char *reason);
/* Gets a new token (drops the old one first). */
int etcd_client_reauth(struct etcd_client *c);
/* POSTs body (consumed, may be NULL = build failure) to <api><path> with failover and one
 * re-authentication; on 0, *out is the parsed object (caller decrefs). require_leader adds the
 * Grpc-Metadata-Hasleader header. */
int etcd_call(struct etcd_client *c, const char *path, json_t *body, bool require_leader,
              json_t **out);
/* One HTTP exchange on the current endpoint, no failover: 0 with *status and c->resp filled,
 * or ETCD_E_TRANSPORT (c->last set). body NULL = GET. */
int etcd_http_exchange(struct etcd_client *c, const char *url, const char *body,
                       bool require_leader, bool with_token, long *status);

#endif
