/* Settings: pgwarden's configuration struct, its key table and cross-field validation. */
#ifndef PGW_SETTINGS_H
#define PGW_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/config.h"

enum {
    PGW_NAME_MAX = 64,    /* node name, scope, user names (63 characters + NUL) */
    PGW_PATH_MAX = 256,   /* directories and TLS file paths */
    PGW_SECRET_MAX = 256, /* passwords */
};

/* [log] level: same order as enum log_level in platform/log.h. */
enum pgw_log_level { PGW_LOG_DEBUG = 0, PGW_LOG_INFO, PGW_LOG_WARN, PGW_LOG_ERROR };

struct pgw_node_settings {
    char name[PGW_NAME_MAX];      /* required; [A-Za-z0-9_.-] */
    char state_dir[PGW_PATH_MAX]; /* absolute; SQLite store and runtime files */
};

struct pgw_log_settings {
    int level; /* enum pgw_log_level; reloadable */
};

struct pgw_etcd_settings {
    char endpoints[1024];          /* "http://a:2379,https://b:2379" (iterate with cfg_list_next) */
    char namespace[128];           /* "/service"; key prefix is <namespace>/<scope>/ */
    char scope[PGW_NAME_MAX];      /* required cluster name */
    char username[PGW_NAME_MAX];   /* optional; needs password */
    char password[PGW_SECRET_MAX]; /* secret, optional */
    char cacert[PGW_PATH_MAX];     /* optional TLS files (absolute) */
    char cert[PGW_PATH_MAX];
    char key[PGW_PATH_MAX];
    uint64_t request_timeout_ms;
};

struct pgw_postgresql_settings {
    char bin_dir[PGW_PATH_MAX];
    char data_dir[PGW_PATH_MAX];     /* required */
    struct cfg_addr listen;          /* where PostgreSQL listens */
    struct cfg_addr connect_address; /* what peers use; = listen when not set */
    char superuser[PGW_NAME_MAX];
    char superuser_password[PGW_SECRET_MAX]; /* secret, optional */
    char replication_user[PGW_NAME_MAX];
    char replication_password[PGW_SECRET_MAX];    /* secret, optional */
    bool remove_data_directory_on_rewind_failure; /* re-clone when pg_rewind fails */
};

/* Local HA timings (the dynamic values in etcd `config` take precedence once bootstrapped). */
struct pgw_ha_settings {
    uint64_t ttl_ms;
    uint64_t loop_wait_ms;
    uint64_t retry_timeout_ms;
    uint64_t maximum_lag_on_failover; /* bytes */
    bool nofailover;
    bool nosync;                 /* never a synchronous standby */
    long long failover_priority; /* wins ties at the same WAL position; <= 0: nofailover */
    uint64_t fencing_margin_ms;  /* a primary fences itself this long before its lease expires */
    bool manage_postgresql;      /* drive the local PostgreSQL (false: election only) */
};

struct pgw_proxy_settings {
    struct cfg_addr rw_listen;
    struct cfg_addr ro_listen;
    uint64_t hold_timeout_ms;  /* reloadable */
    long long max_connections; /* reloadable */
    uint64_t ro_max_lag;       /* bytes; replicas further behind get no read-only clients */
    bool ro_fallback_leader;   /* read-only clients go to the leader when no replica qualifies */
};

struct pgw_web_settings {
    struct cfg_addr listen;
    char tls_cert[PGW_PATH_MAX]; /* optional; cert and key together enable HTTPS */
    char tls_key[PGW_PATH_MAX];
    char tls_ca[PGW_PATH_MAX]; /* optional; verifies client certificates */
    /* Authentication and TLS details (web/auth.h, web/tls.h). */
    int verify_client;                 /* enum pgw_verify_client */
    char users[4096];                  /* "name:role:pbkdf2-sha256$iter$salt$hash,..." (secret) */
    char users_file[PGW_PATH_MAX];     /* optional; one "name:role:hash" per line */
    char allowlist[1024];              /* CIDRs allowed to reach authenticated endpoints */
    uint64_t session_timeout_ms;       /* dashboard session idle expiry */
    uint64_t tls_handshake_timeout_ms; /* a TLS handshake must finish within this */
    long long tls_max_connections;     /* TLS connections open at the same time */
};

/* [web] verify_client: client certificates checked against tls_ca. */
enum pgw_verify_client { PGW_VERIFY_NONE = 0, PGW_VERIFY_OPTIONAL, PGW_VERIFY_REQUIRED };

struct pgw_supervisor_settings {
    long long max_restarts;
    uint64_t restart_window_ms;
    uint64_t shutdown_timeout_ms;
};

/* The whole configuration: plain data (no pointers), so it can be copied between processes. */
struct pgw_config {
    struct pgw_node_settings node;
    struct pgw_log_settings log;
    struct pgw_etcd_settings etcd;
    struct pgw_postgresql_settings postgresql;
    struct pgw_ha_settings ha;
    struct pgw_proxy_settings proxy;
    struct pgw_web_settings web;
    struct pgw_supervisor_settings supervisor;
};

extern const struct cfg_key settings_keys[];
extern const size_t settings_nkeys;

/* Defaults, then the file `path` (NULL: none), then PGWARDEN_* variables from envp (NULL: none),
 * then required keys and settings_finish(). Returns false if `e` got any error; the caller prints
 * them with cfg_errors_print() and exits with CFG_EXIT. */
bool settings_load(const char *path, char *const *envp, struct pgw_config *out,
                   struct cfg_errors *e);

/* Fills derived values (connect_address from listen) and checks rules that span keys: names,
 * absolute paths, distinct listen addresses, ttl > 2*loop_wait, loop_wait + 2*retry_timeout <=
 * ttl, fencing_margin < ttl - loop_wait, request_timeout <= retry_timeout, TLS pairs.
 * Errors use `where` (the config file name). */
bool settings_finish(struct pgw_config *c, const char *where, struct cfg_errors *e);

#endif
