/* Settings: pgwarden's configuration struct, its key table and cross-field validation. */
#include "agent/settings.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "platform/log.h"
#include "web/auth.h"

/* offset and size of a field of struct pgw_config, for the key table. */
#define AT(field)                                                                                  \
    .offset = offsetof(struct pgw_config, field), .size = sizeof(((struct pgw_config *)NULL)->field)

enum { MS = 1, SEC = 1000, MINUTE = 60 * SEC, HOUR = 60 * MINUTE };

/* clang-format off */
const struct cfg_key settings_keys[] = {
    {.section = "node", .name = "name", .type = CFG_STR, AT(node.name),
     .help = "unique member name of this node in the cluster ([A-Za-z0-9_.-], at most 63)"},
    {.section = "node", .name = "state_dir", .type = CFG_STR, AT(node.state_dir),
     .def = "/var/lib/pgwarden",
     .help = "absolute directory for the local state (SQLite, runtime files)"},

    {.section = "log", .name = "level", .type = CFG_ENUM, AT(log.level), .def = "info",
     .enum_values = "debug|info|warn|error", .flags = CFG_RELOADABLE,
     .help = "minimum level of log lines"},

    {.section = "etcd", .name = "endpoints", .type = CFG_LIST, AT(etcd.endpoints),
     .def = "http://127.0.0.1:2379",
     .help = "comma-separated etcd client URLs (http:// or https://)"},
    {.section = "etcd", .name = "namespace", .type = CFG_STR, AT(etcd.namespace),
     .def = "/service", .help = "key prefix; keys live under <namespace>/<scope>/ (as Patroni)"},
    {.section = "etcd", .name = "scope", .type = CFG_STR, AT(etcd.scope),
     .help = "cluster name, the same on every node ([A-Za-z0-9_.-])"},
    {.section = "etcd", .name = "username", .type = CFG_STR, AT(etcd.username),
     .flags = CFG_OPTIONAL, .help = "etcd user when etcd authentication is on"},
    {.section = "etcd", .name = "password", .type = CFG_STR, AT(etcd.password),
     .flags = CFG_OPTIONAL | CFG_SECRET, .help = "password of the etcd user"},
    {.section = "etcd", .name = "cacert", .type = CFG_STR, AT(etcd.cacert),
     .flags = CFG_OPTIONAL, .help = "CA certificate file that signed the etcd server certificates"},
    {.section = "etcd", .name = "cert", .type = CFG_STR, AT(etcd.cert),
     .flags = CFG_OPTIONAL, .help = "client certificate file for etcd (with key)"},
    {.section = "etcd", .name = "key", .type = CFG_STR, AT(etcd.key),
     .flags = CFG_OPTIONAL, .help = "client private key file for etcd (with cert)"},
    {.section = "etcd", .name = "request_timeout", .type = CFG_DURATION,
     AT(etcd.request_timeout_ms), .def = "2s", .min = 100 * MS, .max = 30 * SEC,
     .help = "timeout of one etcd request (at most ha.retry_timeout)"},

    {.section = "postgresql", .name = "bin_dir", .type = CFG_STR, AT(postgresql.bin_dir),
     .def = "/usr/lib/postgresql/15/bin",
     .help = "directory of pg_ctl, initdb, pg_basebackup, pg_rewind"},
    {.section = "postgresql", .name = "data_dir", .type = CFG_STR, AT(postgresql.data_dir),
     .help = "absolute PostgreSQL data directory"},
    {.section = "postgresql", .name = "listen", .type = CFG_ADDR, AT(postgresql.listen),
     .def = "127.0.0.1:5432", .help = "address PostgreSQL listens on"},
    {.section = "postgresql", .name = "connect_address", .type = CFG_ADDR,
     AT(postgresql.connect_address), .flags = CFG_OPTIONAL,
     .help = "address peers and the forwarder use to reach this PostgreSQL (default: listen)"},
    {.section = "postgresql", .name = "superuser", .type = CFG_STR, AT(postgresql.superuser),
     .def = "postgres", .help = "superuser pgwarden connects as"},
    {.section = "postgresql", .name = "superuser_password", .type = CFG_STR,
     AT(postgresql.superuser_password), .flags = CFG_OPTIONAL | CFG_SECRET,
     .help = "password of the superuser"},
    {.section = "postgresql", .name = "replication_user", .type = CFG_STR,
     AT(postgresql.replication_user), .def = "replicator",
     .help = "user replicas stream WAL as"},
    {.section = "postgresql", .name = "replication_password", .type = CFG_STR,
     AT(postgresql.replication_password), .flags = CFG_OPTIONAL | CFG_SECRET,
     .help = "password of the replication user"},
    {.section = "postgresql", .name = "remove_data_directory_on_rewind_failure",
     .type = CFG_BOOL, AT(postgresql.remove_data_directory_on_rewind_failure), .def = "true",
     .flags = CFG_RELOADABLE,
     .help = "a former primary that pg_rewind cannot bring back is cloned again from the leader"},

    {.section = "ha", .name = "ttl", .type = CFG_DURATION, AT(ha.ttl_ms), .def = "10s",
     .min = 2 * SEC, .max = HOUR, .flags = CFG_RELOADABLE,
     .help = "leader lease time to live"},
    {.section = "ha", .name = "loop_wait", .type = CFG_DURATION, AT(ha.loop_wait_ms), .def = "1s",
     .min = 100 * MS, .max = 10 * MINUTE, .flags = CFG_RELOADABLE,
     .help = "period of the HA loop (an etcd watch event wakes it earlier)"},
    {.section = "ha", .name = "retry_timeout", .type = CFG_DURATION, AT(ha.retry_timeout_ms),
     .def = "3s", .min = 100 * MS, .max = 10 * MINUTE, .flags = CFG_RELOADABLE,
     .help = "deadline of one etcd or PostgreSQL operation including retries"},
    {.section = "ha", .name = "maximum_lag_on_failover", .type = CFG_SIZE,
     AT(ha.maximum_lag_on_failover), .def = "1MiB", .flags = CFG_RELOADABLE,
     .help = "a replica further behind than this never takes part in a failover"},
    {.section = "ha", .name = "nofailover", .type = CFG_BOOL, AT(ha.nofailover), .def = "false",
     .flags = CFG_RELOADABLE, .help = "never promote this node"},
    {.section = "ha", .name = "nosync", .type = CFG_BOOL, AT(ha.nosync), .def = "false",
     .flags = CFG_RELOADABLE, .help = "never pick this node as a synchronous standby"},
    {.section = "ha", .name = "failover_priority", .type = CFG_INT, AT(ha.failover_priority),
     .def = "1", .min = 0, .max = 1000000, .flags = CFG_RELOADABLE,
     .help = "among replicas at the same WAL position the highest wins a failover (0: never)"},
    {.section = "ha", .name = "fencing_margin", .type = CFG_DURATION, AT(ha.fencing_margin_ms),
     .def = "2s", .max = 10 * MINUTE, .flags = CFG_RELOADABLE,
     .help = "a primary that cannot renew its lease fences itself this long before it expires"},
    {.section = "ha", .name = "manage_postgresql", .type = CFG_BOOL,
     AT(ha.manage_postgresql), .def = "true",
     .help = "bootstrap, clone, start, promote and demote the local PostgreSQL (off: election "
             "only)"},

    {.section = "proxy", .name = "rw_listen", .type = CFG_ADDR, AT(proxy.rw_listen),
     .def = "127.0.0.1:5000", .help = "forwarder address that always reaches the primary"},
    {.section = "proxy", .name = "ro_listen", .type = CFG_ADDR, AT(proxy.ro_listen),
     .def = "127.0.0.1:5001", .help = "forwarder address that reaches a healthy replica"},
    {.section = "proxy", .name = "hold_timeout", .type = CFG_DURATION, AT(proxy.hold_timeout_ms),
     .def = "30s", .max = HOUR, .flags = CFG_RELOADABLE,
     .help = "how long a new connection is held while there is no primary (0: refuse at once)"},
    {.section = "proxy", .name = "max_connections", .type = CFG_INT, AT(proxy.max_connections),
     .def = "1000", .min = 1, .max = 100000, .flags = CFG_RELOADABLE,
     .help = "client connections the forwarder accepts at the same time"},
    {.section = "proxy", .name = "ro_max_lag", .type = CFG_SIZE, AT(proxy.ro_max_lag),
     .def = "1MiB", .flags = CFG_RELOADABLE,
     .help = "replicas further behind the primary than this get no new read-only clients"},
    {.section = "proxy", .name = "ro_fallback_leader", .type = CFG_BOOL,
     AT(proxy.ro_fallback_leader), .def = "on", .flags = CFG_RELOADABLE,
     .help = "read-only clients go to the primary when no replica qualifies"},

    {.section = "web", .name = "listen", .type = CFG_ADDR, AT(web.listen), .def = "127.0.0.1:8008",
     .help = "REST API and dashboard address"},
    {.section = "web", .name = "tls_cert", .type = CFG_STR, AT(web.tls_cert),
     .flags = CFG_OPTIONAL, .help = "certificate file; with tls_key the API serves HTTPS"},
    {.section = "web", .name = "tls_key", .type = CFG_STR, AT(web.tls_key),
     .flags = CFG_OPTIONAL, .help = "private key file of tls_cert"},
    {.section = "web", .name = "tls_ca", .type = CFG_STR, AT(web.tls_ca),
     .flags = CFG_OPTIONAL, .help = "CA file to verify client certificates (needs tls_cert)"},
    {.section = "web", .name = "verify_client", .type = CFG_ENUM, AT(web.verify_client),
     .def = "none", .enum_values = "none|optional|required",
     .help = "client certificates checked against tls_ca: none, optional or required"},
    {.section = "web", .name = "users", .type = CFG_LIST, AT(web.users),
     .flags = CFG_OPTIONAL | CFG_SECRET | CFG_RELOADABLE,
     .help = "API users: name:admin|readonly:pbkdf2-sha256$... (pgwarden passwd), comma-separated"},
    {.section = "web", .name = "users_file", .type = CFG_STR, AT(web.users_file),
     .flags = CFG_OPTIONAL | CFG_RELOADABLE,
     .help = "absolute path of a file with one name:role:hash user per line"},
    {.section = "web", .name = "allowlist", .type = CFG_LIST, AT(web.allowlist),
     .flags = CFG_OPTIONAL | CFG_RELOADABLE,
     .help = "networks (CIDR, IPv4 or IPv6) allowed to use authenticated endpoints; empty: any"},
    {.section = "web", .name = "session_timeout", .type = CFG_DURATION,
     AT(web.session_timeout_ms), .def = "30m", .min = 1 * MINUTE, .max = 24 * HOUR,
     .flags = CFG_RELOADABLE, .help = "dashboard sessions end after this long without a request"},
    {.section = "web", .name = "tls_handshake_timeout", .type = CFG_DURATION,
     AT(web.tls_handshake_timeout_ms), .def = "10s", .min = 100 * MS, .max = 10 * MINUTE,
     .flags = CFG_RELOADABLE, .help = "a TLS handshake that takes longer is dropped"},
    {.section = "web", .name = "tls_max_connections", .type = CFG_INT,
     AT(web.tls_max_connections), .def = "256", .min = 1, .max = 100000,
     .flags = CFG_RELOADABLE, .help = "TLS connections open at the same time (more wait)"},

    {.section = "supervisor", .name = "max_restarts", .type = CFG_INT,
     AT(supervisor.max_restarts), .def = "5", .min = 1, .max = 100,
     .help = "child restarts allowed within restart_window before pgwarden gives up"},
    {.section = "supervisor", .name = "restart_window", .type = CFG_DURATION,
     AT(supervisor.restart_window_ms), .def = "60s", .min = 1 * SEC, .max = HOUR,
     .help = "window over which max_restarts is counted"},
    {.section = "supervisor", .name = "shutdown_timeout", .type = CFG_DURATION,
     AT(supervisor.shutdown_timeout_ms), .def = "10s", .min = 1 * SEC, .max = 10 * MINUTE,
     .help = "time children get to stop before they are killed"},
};
/* clang-format on */

const size_t settings_nkeys = sizeof(settings_keys) / sizeof(settings_keys[0]);

/* True if s is non-empty and only has [A-Za-z0-9_.-] (member and cluster names). */
static bool safe_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-'))
            return false;
    }
    return true;
}

static bool check_name(const char *v, const char *sec, const char *key, const char *where,
                       struct cfg_errors *e)
{
    if (safe_name(v))
        return true;
    return cfg_errorf(e, where, "[%s] %s '%.63s' may only contain A-Z a-z 0-9 _ . -", sec, key, v);
}

/* An optional path must be absolute when set; a required one must be set and absolute. */
static bool check_path(const char *v, bool required, const char *sec, const char *key,
                       const char *where, struct cfg_errors *e)
{
    if (v[0] == '/' || (!required && v[0] == '\0'))
        return true;
    return cfg_errorf(e, where, "[%s] %s must be an absolute path (starting with /)", sec, key);
}

static bool check_namespace(const char *ns, const char *where, struct cfg_errors *e)
{
    size_t len = strlen(ns);
    bool ok = ns[0] == '/' && strstr(ns, "//") == NULL && (len == 1 || ns[len - 1] != '/');
    for (const char *p = ns; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || strchr("_.-/", *p) != NULL;
    if (ok)
        return true;
    return cfg_errorf(e, where,
                      "[etcd] namespace must look like /service (a leading /, no // or "
                      "trailing /, A-Z a-z 0-9 _ . -)");
}

static bool check_endpoints(const char *list, const char *where, struct cfg_errors *e)
{
    const char *pos = list, *item;
    size_t len;
    bool ok = true;
    while (cfg_list_next(&pos, &item, &len)) {
        size_t skip = 0;
        if (len > 7 && strncasecmp(item, "http://", 7) == 0)
            skip = 7;
        else if (len > 8 && strncasecmp(item, "https://", 8) == 0)
            skip = 8;
        if (skip == 0 || item[skip] == '/' || memchr(item, ' ', len) != NULL) {
            char raw[128], shown[160];
            snprintf(raw, sizeof(raw), "%.*s", (int)len, item);
            log_redact(raw, shown, sizeof(shown)); /* a URL may carry user:password@ */
            ok = cfg_errorf(e, where, "[etcd] endpoints: '%s' is not an http:// or https:// URL",
                            shown);
        }
    }
    return ok;
}

static bool wildcard(const struct cfg_addr *a)
{
    return strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0;
}

/* True if binding both addresses would clash: same port on the same or a wildcard host. */
static bool addr_clash(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->port == b->port && (strcasecmp(a->host, b->host) == 0 || wildcard(a) || wildcard(b));
}

static bool check_listeners(const struct pgw_config *c, const char *where, struct cfg_errors *e)
{
    const struct {
        const char *name;
        const struct cfg_addr *a;
    } l[] = {
        {"[postgresql] listen", &c->postgresql.listen},
        {"[proxy] rw_listen", &c->proxy.rw_listen},
        {"[proxy] ro_listen", &c->proxy.ro_listen},
        {"[web] listen", &c->web.listen},
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++) {
        for (size_t j = i + 1; j < sizeof(l) / sizeof(l[0]); j++) {
            if (addr_clash(l[i].a, l[j].a))
                ok = cfg_errorf(e, where, "%s and %s must differ (both use port %u)", l[i].name,
                                l[j].name, (unsigned)l[i].a->port);
        }
    }
    return ok;
}

static bool check_timings(const struct pgw_config *c, const char *where, struct cfg_errors *e)
{
    const struct pgw_ha_settings *h = &c->ha;
    bool ok = true;
    if (h->ttl_ms <= 2 * h->loop_wait_ms)
        ok = cfg_errorf(e, where, "[ha] ttl (%llums) must be more than twice loop_wait (%llums)",
                        (unsigned long long)h->ttl_ms, (unsigned long long)h->loop_wait_ms);
    if (h->loop_wait_ms + 2 * h->retry_timeout_ms > h->ttl_ms)
        ok = cfg_errorf(e, where,
                        "[ha] loop_wait + 2 * retry_timeout (%llums) must not exceed ttl (%llums)",
                        (unsigned long long)(h->loop_wait_ms + 2 * h->retry_timeout_ms),
                        (unsigned long long)h->ttl_ms);
    if (h->ttl_ms > h->loop_wait_ms && h->fencing_margin_ms >= h->ttl_ms - h->loop_wait_ms)
        ok = cfg_errorf(e, where, "[ha] fencing_margin (%llums) must be less than ttl - loop_wait",
                        (unsigned long long)h->fencing_margin_ms);
    if (c->etcd.request_timeout_ms > h->retry_timeout_ms)
        ok = cfg_errorf(e, where, "[etcd] request_timeout must not exceed [ha] retry_timeout");
    return ok;
}

static bool check_tls(const struct pgw_config *c, const char *where, struct cfg_errors *e)
{
    bool ok = check_path(c->etcd.cacert, false, "etcd", "cacert", where, e);
    ok = check_path(c->etcd.cert, false, "etcd", "cert", where, e) && ok;
    ok = check_path(c->etcd.key, false, "etcd", "key", where, e) && ok;
    ok = check_path(c->web.tls_cert, false, "web", "tls_cert", where, e) && ok;
    ok = check_path(c->web.tls_key, false, "web", "tls_key", where, e) && ok;
    ok = check_path(c->web.tls_ca, false, "web", "tls_ca", where, e) && ok;
    if ((c->etcd.cert[0] == '\0') != (c->etcd.key[0] == '\0'))
        ok = cfg_errorf(e, where, "[etcd] cert and key must be set together");
    if ((c->web.tls_cert[0] == '\0') != (c->web.tls_key[0] == '\0'))
        ok = cfg_errorf(e, where, "[web] tls_cert and tls_key must be set together");
    if (c->web.tls_ca[0] != '\0' && c->web.tls_cert[0] == '\0')
        ok = cfg_errorf(e, where, "[web] tls_ca needs tls_cert and tls_key (HTTPS)");
    if (c->web.verify_client != PGW_VERIFY_NONE && c->web.tls_ca[0] == '\0')
        ok = cfg_errorf(e, where, "[web] verify_client = optional or required needs tls_ca");
    ok = check_path(c->web.users_file, false, "web", "users_file", where, e) && ok;
    ok = web_auth_check_settings(&c->web, where, e) && ok;
    if (c->etcd.password[0] != '\0' && c->etcd.username[0] == '\0')
        ok = cfg_errorf(e, where, "[etcd] password is set but username is not");
    return ok;
}

bool settings_finish(struct pgw_config *c, const char *where, struct cfg_errors *e)
{
    size_t before = e->count;
    bool overflow_before = e->overflow;
    if (!where)
        where = "config";
    if (c->postgresql.connect_address.host[0] == '\0') {
        c->postgresql.connect_address = c->postgresql.listen;
        if (wildcard(&c->postgresql.listen))
            cfg_errorf(e, where,
                       "[postgresql] connect_address must be set when listen is a wildcard "
                       "address (%s)",
                       c->postgresql.listen.host);
    } else if (wildcard(&c->postgresql.connect_address)) {
        cfg_errorf(e, where, "[postgresql] connect_address must not be a wildcard address");
    }
    check_name(c->node.name, "node", "name", where, e);
    check_name(c->etcd.scope, "etcd", "scope", where, e);
    check_namespace(c->etcd.namespace, where, e);
    check_endpoints(c->etcd.endpoints, where, e);
    check_path(c->node.state_dir, true, "node", "state_dir", where, e);
    check_path(c->postgresql.bin_dir, true, "postgresql", "bin_dir", where, e);
    check_path(c->postgresql.data_dir, true, "postgresql", "data_dir", where, e);
    check_tls(c, where, e);
    check_listeners(c, where, e);
    check_timings(c, where, e);
    return e->count == before && e->overflow == overflow_before;
}

bool settings_load(const char *path, char *const *envp, struct pgw_config *out,
                   struct cfg_errors *e)
{
    memset(out, 0, sizeof(*out));
    if (!cfg_load(settings_keys, settings_nkeys, out, path, envp, e))
        return false; /* cross-field checks on a half-read config would only add noise */
    return settings_finish(out, path, e);
}
