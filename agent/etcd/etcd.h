/* etcd v3 client over the JSON gateway (libcurl + jansson): kv, txn, lease, auth, TLS, watch. */
#ifndef PGW_ETCD_H
#define PGW_ETCD_H

/*
 * One client per process (the `ha` child). Not thread-safe; no global state of its own.
 * The caller runs curl_global_init(CURL_GLOBAL_DEFAULT) once before etcd_client_new() and
 * curl_global_cleanup() after the last etcd_client_free().
 *
 * Unary calls block for at most about (endpoints + 1) x request_timeout_ms: each call is tried
 * on the current endpoint and fails over to the next one on a connect error, a timeout, an
 * HTTP 5xx or gRPC Unavailable. An "invalid auth token" answer re-authenticates once and
 * retries. The endpoint list (the configured URLs plus the members' clientURLs, refreshed from
 * /cluster/member/list each time the client connects to an endpoint) and the API prefix
 * (/v3 for etcd >= 3.4, /v3beta for 3.3, from GET /version) are handled here.
 *
 * Every call returns 0 or a negative enum etcd_err; etcd_last_error() tells more. Results are
 * owned by the caller's struct and released with the matching *_clear() (which is safe on a
 * zeroed struct and after a failed call). Responses are parsed strictly: a malformed body is
 * ETCD_E_PROTOCOL, never a crash.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct pgw_etcd_settings;

enum {
    ETCD_MAX_BODY = 16 << 20,     /* largest unary response body accepted */
    ETCD_MAX_VALUE = 4 << 20,     /* largest decoded key or value accepted */
    ETCD_MAX_WATCH_MSG = 8 << 20, /* largest single watch stream message */
    ETCD_MAX_ENDPOINTS = 16,      /* configured + discovered endpoints kept */
    ETCD_URL_MAX = 256,
};

enum etcd_err {
    ETCD_OK = 0,
    ETCD_E_TRANSPORT = -1,       /* no endpoint answered: connect error, timeout, TLS failure */
    ETCD_E_UNAVAILABLE = -2,     /* HTTP 5xx or gRPC Unavailable (e.g. "no leader") everywhere */
    ETCD_E_PROTOCOL = -3,        /* malformed, truncated or unexpected response */
    ETCD_E_LEASE_NOT_FOUND = -4, /* "requested lease not found" (also: keepalive TTL 0/absent) */
    ETCD_E_NOT_FOUND = -5,       /* another gRPC NotFound */
    ETCD_E_COMPACTED = -6,       /* "required revision has been compacted" */
    ETCD_E_AUTH = -7,            /* bad credentials, or the token was rejected after renewal */
    ETCD_E_PERMISSION = -8,      /* gRPC PermissionDenied (RBAC) */
    ETCD_E_INVALID = -9,         /* the request was invalid (bad argument, too large, ...) */
    ETCD_E_SERVER = -10,         /* any other error answer */
    ETCD_E_NOMEM = -11,
};
const char *etcd_strerror(int err);

/* Details of the last failed call (also of a watch's last failure, see etcd_watch_error). */
struct etcd_error {
    int err;                     /* enum etcd_err */
    long http_status;            /* 0 if no HTTP answer */
    int grpc_code;               /* -1 if none */
    char message[256];           /* server message or transport error; never a secret */
    char endpoint[ETCD_URL_MAX]; /* where it happened */
};

/* ---- results ---- */

struct etcd_header {
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;
};

/* key and value are NUL-terminated copies (the lengths exclude the NUL; values may hold NULs). */
struct etcd_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

struct etcd_range_result {
    struct etcd_header header;
    struct etcd_kv *kvs; /* none when the key does not exist */
    size_t n_kvs;
    int64_t count; /* keys in the range (more than n_kvs with a limit or count_only) */
    bool more;
};
struct etcd_put_result {
    struct etcd_header header;
    bool has_prev;
    struct etcd_kv prev_kv; /* when has_prev (asked with prev_kv and the key existed) */
};
struct etcd_delete_result {
    struct etcd_header header;
    int64_t deleted;
    struct etcd_kv *prev_kvs; /* when asked with prev_kv */
    size_t n_prev_kvs;
};

void etcd_kv_clear(struct etcd_kv *kv);
void etcd_range_result_clear(struct etcd_range_result *r);
void etcd_put_result_clear(struct etcd_put_result *r);
void etcd_delete_result_clear(struct etcd_delete_result *r);

/* ---- requests (keys are NUL-terminated strings; values are bytes) ---- */

struct etcd_range_req {
    const char *key;
    bool prefix;       /* every key that starts with key ("" + prefix = all keys) */
    int64_t limit;     /* 0 = no limit */
    int64_t revision;  /* 0 = latest */
    bool serializable; /* local, possibly stale read: never decide leadership on it */
    bool keys_only;
    bool count_only;
};
struct etcd_put_req {
    const char *key;
    const void *value;
    size_t value_len;
    int64_t lease; /* 0 = none */
    bool prev_kv;
};
struct etcd_delete_req {
    const char *key;
    bool prefix;
    bool prev_kv;
};

/* Txn compare. The JSON field compared is chosen from the target by the library, so a compare
 * can only ever be on what its target says. */
enum etcd_cmp_target {
    ETCD_CMP_VERSION, /* number = version */
    ETCD_CMP_CREATE,  /* number = create_revision (0: the key does not exist) */
    ETCD_CMP_MOD,     /* number = mod_revision */
    ETCD_CMP_VALUE,   /* value, value_len */
    ETCD_CMP_LEASE,   /* number = lease ID (0: no lease) */
};
enum etcd_cmp_op { ETCD_EQUAL, ETCD_GREATER, ETCD_LESS, ETCD_NOT_EQUAL };
struct etcd_cmp {
    enum etcd_cmp_target target;
    enum etcd_cmp_op op;
    const char *key;
    int64_t number;
    const void *value;
    size_t value_len;
};

enum etcd_op_type { ETCD_OP_RANGE, ETCD_OP_PUT, ETCD_OP_DELETE };
struct etcd_op {
    enum etcd_op_type type;
    union {
        struct etcd_range_req range;
        struct etcd_put_req put;
        struct etcd_delete_req del;
    };
};
struct etcd_txn_req {
    const struct etcd_cmp *cmps; /* all must hold (AND) */
    size_t n_cmps;
    const struct etcd_op *success;
    size_t n_success;
    const struct etcd_op *failure;
    size_t n_failure;
};
struct etcd_op_result {
    enum etcd_op_type type;
    union {
        struct etcd_range_result range;
        struct etcd_put_result put;
        struct etcd_delete_result del;
    };
};
struct etcd_txn_result {
    struct etcd_header header;
    bool succeeded;                   /* false also when the answer omits it (etcd's default) */
    struct etcd_op_result *responses; /* one per op of the branch taken, same order and type */
    size_t n_responses;
};
void etcd_txn_result_clear(struct etcd_txn_result *r);

struct etcd_lease_info {
    int64_t id;
    int64_t ttl;          /* remaining seconds; -1 when the lease does not exist */
    int64_t granted_ttl;  /* 0 when the lease does not exist */
    struct etcd_kv *keys; /* with keys=true: only key/key_len are set */
    size_t n_keys;
};
void etcd_lease_info_clear(struct etcd_lease_info *r);

/* ---- client ---- */

struct etcd_client;

/* Copies the settings (endpoints, credentials, TLS files, request_timeout_ms). Does no I/O.
 * NULL on a bad endpoint list or out of memory (logged). */
struct etcd_client *etcd_client_new(const struct pgw_etcd_settings *s);
void etcd_client_free(struct etcd_client *c);

/* Connects to the current endpoint (failing over): GET /version, authenticate when a user is
 * set, refresh the endpoint list. Done lazily by every call; explicit use is optional. */
int etcd_client_connect(struct etcd_client *c);
const struct etcd_error *etcd_last_error(const struct etcd_client *c);
/* The endpoint in use ("" before the first connect) and the server version ("3.4.23"). */
const char *etcd_current_endpoint(const struct etcd_client *c);
const char *etcd_server_version(const struct etcd_client *c);
/* Endpoint list as used now (index 0..n-1), for diagnostics. */
size_t etcd_endpoint_count(const struct etcd_client *c);
const char *etcd_endpoint(const struct etcd_client *c, size_t i);
/* Number of unary HTTP requests sent so far (for the requests/s figure). */
uint64_t etcd_request_count(const struct etcd_client *c);

/* "/<namespace>/<scope>/" with exactly one slash between parts ("/service/batman/").
 * Returns false if it does not fit. */
bool etcd_cluster_prefix(const struct pgw_etcd_settings *s, char *out, size_t cap);

int etcd_range(struct etcd_client *c, const struct etcd_range_req *req,
               struct etcd_range_result *out);
/* out may be NULL. */
int etcd_put(struct etcd_client *c, const struct etcd_put_req *req, struct etcd_put_result *out);
int etcd_delete(struct etcd_client *c, const struct etcd_delete_req *req,
                struct etcd_delete_result *out);
int etcd_txn(struct etcd_client *c, const struct etcd_txn_req *req, struct etcd_txn_result *out);

/* id = 0 lets the server choose. *id_out and *ttl_out (either may be NULL) get the lease. */
int etcd_lease_grant(struct etcd_client *c, int64_t ttl_s, int64_t id, int64_t *id_out,
                     int64_t *ttl_out);
/* One keepalive. 0 with *ttl_out > 0, or ETCD_E_LEASE_NOT_FOUND (TTL 0 or absent: the lease
 * is gone). For fencing, take the time *before* the call as the moment it was sent. */
int etcd_lease_keepalive(struct etcd_client *c, int64_t id, int64_t *ttl_out);
/* Deletes the lease and every key attached to it. A lease that is already gone gives
 * ETCD_E_LEASE_NOT_FOUND. */
int etcd_lease_revoke(struct etcd_client *c, int64_t id);
int etcd_lease_timetolive(struct etcd_client *c, int64_t id, bool keys,
                          struct etcd_lease_info *out);

/* ---- watch: a streaming /watch on a prefix, driven by a platform/loop.h loop ---- */

enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE };
struct etcd_event {
    enum etcd_event_type type;
    struct etcd_kv kv; /* a DELETE has the key and mod_revision only */
    bool has_prev;
    struct etcd_kv prev_kv; /* with the prev_kv option */
};

enum etcd_watch_what {
    ETCD_WATCH_UP,     /* the stream is (re)established; revision = server revision */
    ETCD_WATCH_DOWN,   /* the stream is lost (reason), also just before the RESYNC that a
                          compaction causes; reported once until the next UP; it reconnects
                          by itself (first at once on the next endpoint, then with backoff) */
    ETCD_WATCH_EVENTS, /* events, in revision order; revision = last event's mod_revision */
    ETCD_WATCH_RESYNC, /* the full state of the prefix at `revision` (first start, compaction):
                          replace any cached copy; events continue from revision + 1 */
};
struct etcd_watch_update {
    enum etcd_watch_what what;
    int64_t revision;
    const struct etcd_event *events; /* EVENTS */
    size_t n_events;
    const struct etcd_kv *kvs; /* RESYNC */
    size_t n_kvs;
    const char *reason; /* DOWN */
};
/* Called from the loop (never from inside libcurl), so it may run the HA step at once and make
 * unary calls on the same client. It may call etcd_watch_free() on its own watch. The update
 * and everything it points to are valid during the call only. */
typedef void (*etcd_watch_cb)(void *arg, const struct etcd_watch_update *u);

struct etcd_watch_opts {
    const char *prefix;         /* required, e.g. the cluster prefix */
    int64_t start_revision;     /* 0: first a RESYNC (range of the prefix), then events after it */
    bool prev_kv;               /* events carry the previous key-value */
    uint64_t idle_reconnect_ms; /* reconnect when no byte arrived for this long; 0 = 300 s */
};
struct etcd_watch;

/* Starts on the next loop iteration (a connect and the first range may block the loop for
 * about a request timeout per endpoint, as every unary call). The client and the loop must
 * outlive it. The first watch of a client also leaves an endpoint as soon as a unary call of
 * that client failed there (a hung member keeps TCP alive but answers nothing).
 * NULL on out of memory / bad options (logged). */
struct etcd_watch *etcd_watch_new(struct etcd_client *c, struct loop *l,
                                  const struct etcd_watch_opts *o, etcd_watch_cb cb, void *arg);
void etcd_watch_free(struct etcd_watch *w);
/* True while a stream is established ("created" seen and not lost since). */
bool etcd_watch_is_up(const struct etcd_watch *w);
/* The next revision the watch will ask for after a reconnect. */
int64_t etcd_watch_next_revision(const struct etcd_watch *w);
/* Drops the stream and reconnects on the client's current endpoint (from the next revision). */
void etcd_watch_reconnect(struct etcd_watch *w);
const struct etcd_error *etcd_watch_error(const struct etcd_watch *w);

#endif
