/* PostgreSQL configuration files pgwarden owns: the include file, pg_hba.conf, passfile, signal. */
#define LOG_MODULE "pg"
#include "agent/pg/internal.h"

#include "platform/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { CONF_BUF = 64 * 1024, CONNINFO_MAX = 2048 };

#define INCLUDE_LINE "include = '" PG_CONF_FILE "'"
#define MANAGED_HDR                                                                                \
    "# Managed by pgwarden: rewritten whenever the node's configuration changes. Do not edit;\n"   \
    "# set parameters in the cluster configuration instead.\n"

/* A bounded string builder: overflow is remembered and reported once at the end. */
struct sb {
    char *buf;
    size_t cap, len;
    bool overflow;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
    if (b->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        b->buf[b->len] = '\0';
        return;
    }
    b->len += (size_t)n;
}

/* ---- quoting ---- */

int pg_conf_quote(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (cap < 3)
        return -ENOSPC;
    out[o++] = '\'';
    for (const char *p = in; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return -EINVAL;
        bool esc = c == '\'' || c == '\\';
        if (o + (esc ? 2 : 1) + 2 > cap)
            return -ENOSPC;
        if (esc)
            out[o++] = (char)c; /* '' and \\ */
        out[o++] = (char)c;
    }
    out[o++] = '\'';
    out[o] = '\0';
    return 0;
}

int pg_conninfo_quote(const char *in, char *out, size_t cap)
{
    bool plain = in[0] != '\0' && strcspn(in, " \t\r\n'\\=") == strlen(in);
    size_t o = 0;
    if (plain) {
        size_t n = strlen(in);
        if (n + 1 > cap)
            return -ENOSPC;
        memcpy(out, in, n + 1);
        return 0;
    }
    if (cap < 3)
        return -ENOSPC;
    out[o++] = '\'';
    for (const char *p = in; *p; p++) {
        bool esc = *p == '\'' || *p == '\\';
        if (o + (esc ? 2 : 1) + 2 > cap)
            return -ENOSPC;
        if (esc)
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '\'';
    out[o] = '\0';
    return 0;
}

static int conninfo_kv(struct sb *b, const char *key, const char *value)
{
    char q[PGI_PATH * 2 + 8];
    int rc = pg_conninfo_quote(value, q, sizeof(q));
    if (rc < 0)
        return rc;
    sb_add(b, "%s%s=%s", b->len ? " " : "", key, q);
    return 0;
}

int pg_conninfo_render(const struct pg_instance *pg, const char *host, uint16_t port,
                       const char *user, const char *dbname, const char *application_name,
                       char *buf, size_t cap)
{
    if (!host || !host[0] || !user || !user[0] || cap == 0)
        return -EINVAL;
    struct sb b = {.buf = buf, .cap = cap};
    buf[0] = '\0';
    char portbuf[8], passfile[PGI_PATH];
    snprintf(portbuf, sizeof(portbuf), "%u", (unsigned)port);
    if (pgi_path(passfile, sizeof(passfile), pg->run_dir, PG_PASSFILE_NAME) < 0)
        return -ENAMETOOLONG;
    int rc = conninfo_kv(&b, "host", host);
    if (rc == 0)
        rc = conninfo_kv(&b, "port", portbuf);
    if (rc == 0)
        rc = conninfo_kv(&b, "user", user);
    if (rc == 0 && dbname && dbname[0])
        rc = conninfo_kv(&b, "dbname", dbname);
    if (rc == 0)
        rc = conninfo_kv(&b, "passfile", passfile);
    if (rc == 0 && application_name && application_name[0])
        rc = conninfo_kv(&b, "application_name", application_name);
    if (rc == 0)
        sb_add(&b, " gssencmode=disable");
    if (rc < 0)
        return rc;
    return b.overflow ? -ENOSPC : 0;
}

int pg_replication_conninfo_render(const struct pg_instance *pg, const char *host, uint16_t port,
                                   const char *application_name, char *buf, size_t cap)
{
    int rc =
        pg_conninfo_render(pg, host, port, pg->replication_user, NULL, application_name, buf, cap);
    if (rc < 0)
        return rc;
    struct sb b = {.buf = buf, .cap = cap, .len = strlen(buf)};
    sb_add(&b, " connect_timeout=5 keepalives=1 keepalives_idle=5 keepalives_interval=2 "
               "keepalives_count=3");
    return b.overflow ? -ENOSPC : 0;
}

/* ---- slot names ---- */

bool pg_slot_name_valid(const char *slot)
{
    size_t n = strlen(slot);
    if (n == 0 || n >= PG_SLOT_NAME_MAX)
        return false;
    for (const char *p = slot; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    }
    return true;
}

/* Decodes one UTF-8 sequence; an invalid byte stands for itself. */
static uint32_t utf8_next(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    uint32_t c = p[0];
    int extra = c >= 0xf0 && c < 0xf8 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    if (c >= 0xf8)
        extra = 0;
    uint32_t v = extra == 3 ? (c & 0x07) : extra == 2 ? (c & 0x0f) : extra == 1 ? (c & 0x1f) : c;
    for (int i = 1; i <= extra; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *pp = p + 1;
            return c;
        }
        v = (v << 6) | (p[i] & 0x3f);
    }
    *pp = p + 1 + extra;
    return v;
}

int pg_slot_name_from_member(const char *member, char out[PG_SLOT_NAME_MAX])
{
    if (!member || !member[0])
        return -EINVAL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)member;
    while (*p && o < PG_SLOT_NAME_MAX - 1) {
        uint32_t c = utf8_next(&p);
        if (c >= 'A' && c <= 'Z')
            c = c - 'A' + 'a';
        char piece[16];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
            snprintf(piece, sizeof(piece), "%c", (char)c);
        else if (c == '-' || c == '.')
            snprintf(piece, sizeof(piece), "_");
        else
            snprintf(piece, sizeof(piece), "u%04u", (unsigned)c);
        for (const char *q = piece; *q && o < PG_SLOT_NAME_MAX - 1; q++)
            out[o++] = *q;
    }
    out[o] = '\0';
    return 0;
}

int pg_sync_names_render(const char *const *names, size_t n, char *out, size_t cap)
{
    if (cap == 0)
        return -ENOSPC;
    struct sb b = {.buf = out, .cap = cap};
    out[0] = '\0';
    if (n == 0)
        return 0;
    sb_add(&b, "%zu (", n);
    for (size_t i = 0; i < n; i++) {
        sb_add(&b, "%s\"", i ? "," : "");
        for (const char *p = names[i]; *p; p++) {
            if (*p == '"')
                sb_add(&b, "\"\"");
            else
                sb_add(&b, "%c", *p);
        }
        sb_add(&b, "\"");
    }
    sb_add(&b, ")");
    return b.overflow ? -ENOSPC : 0;
}

/* ---- postgresql.pgwarden.conf ---- */

static const char *const protected_params[] = {
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_permissions",
    "unix_socket_group",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "include",
    "include_if_exists",
    "include_dir",
    "primary_conninfo",
    "primary_slot_name",
    "hot_standby",
    "recovery_target_timeline",
    "synchronous_standby_names",
};

static bool param_name_ok(const char *s)
{
    if (!s || !s[0] || strlen(s) > 128)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.'))
            return false;
    }
    return true;
}

/* True if pgwarden owns this parameter (or this value of it). */
static bool param_protected(const struct pg_param *p)
{
    for (size_t i = 0; i < sizeof(protected_params) / sizeof(protected_params[0]); i++) {
        if (strcasecmp(p->name, protected_params[i]) == 0)
            return true;
    }
    if (strcasecmp(p->name, "wal_level") == 0)
        return strcasecmp(p->value, "replica") != 0 && strcasecmp(p->value, "logical") != 0;
    return false;
}

static int conf_kv(struct sb *b, const char *name, const char *value, struct pg_error *err)
{
    char q[CONNINFO_MAX * 2 + 8];
    int rc = pg_conf_quote(value, q, sizeof(q));
    if (rc == -EINVAL)
        return pgi_fail(err, "config", rc, "parameter %s: control characters in its value", name);
    if (rc < 0)
        return pgi_fail(err, "config", rc, "parameter %s: value too long", name);
    sb_add(b, "%s = %s\n", name, q);
    return 0;
}

int pg_conf_render(const struct pg_instance *pg, const struct pg_conf *conf, char *buf, size_t cap,
                   struct pg_error *err)
{
    if (cap == 0)
        return -ENOSPC;
    struct sb b = {.buf = buf, .cap = cap};
    buf[0] = '\0';
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)pg->port);
    sb_add(&b, "%s\n", MANAGED_HDR);
    int rc = conf_kv(&b, "listen_addresses", pg->listen_host, err);
    sb_add(&b, "port = %s\n", port);
    if (rc == 0)
        rc = conf_kv(&b, "unix_socket_directories", pg->run_dir, err);
    sb_add(&b, "unix_socket_permissions = 0700\n"
               "password_encryption = 'scram-sha-256'\n"
               "wal_level = 'replica'\n"
               "hot_standby = on\n"
               "wal_log_hints = on\n");
    sb_add(&b, "max_wal_senders = %d\n", conf->max_wal_senders > 0 ? conf->max_wal_senders : 10);
    sb_add(&b, "max_replication_slots = %d\n",
           conf->max_replication_slots > 0 ? conf->max_replication_slots : 10);
    if (rc == 0)
        rc = conf_kv(&b, "wal_keep_size", conf->wal_keep_size ? conf->wal_keep_size : "128MB", err);
    sb_add(&b, "max_connections = %d\n", conf->max_connections > 0 ? conf->max_connections : 100);
    sb_add(&b, "hot_standby_feedback = %s\n", conf->hot_standby_feedback ? "on" : "off");

    if (conf->nparams)
        sb_add(&b, "\n# cluster parameters\n");
    for (size_t i = 0; rc == 0 && i < conf->nparams; i++) {
        const struct pg_param *p = &conf->params[i];
        if (!param_name_ok(p->name) || !p->value) {
            char shown[64];
            pgi_redact(pg, p->name ? p->name : "(null)", shown, sizeof(shown));
            rc = pgi_fail(err, "config", -EINVAL, "bad parameter name \"%s\"", shown);
            break;
        }
        if (param_protected(p)) {
            log_warn("parameter managed by pgwarden: ignored", "name=%s", p->name);
            continue;
        }
        rc = conf_kv(&b, p->name, p->value, err);
    }

    sb_add(&b, "\n# synchronous replication\n");
    if (rc == 0)
        rc = conf_kv(&b, "synchronous_standby_names",
                     conf->sync_standby_names ? conf->sync_standby_names : "", err);

    sb_add(&b, "\n# recovery\n");
    const char *slot = conf->slot && conf->slot[0] ? conf->slot : "";
    if (rc == 0 && slot[0] && !pg_slot_name_valid(slot))
        rc = pgi_fail(err, "config", -EINVAL, "bad replication slot name \"%s\"", slot);
    char ci[CONNINFO_MAX] = "";
    bool upstream = conf->standby && conf->upstream_host && conf->upstream_host[0];
    if (rc == 0 && upstream) {
        rc = pg_replication_conninfo_render(pg, conf->upstream_host, conf->upstream_port, pg->name,
                                            ci, sizeof(ci));
        if (rc < 0)
            rc = pgi_fail(err, "config", rc, "cannot build primary_conninfo");
    }
    if (rc == 0) {
        rc = conf_kv(&b, "primary_conninfo", ci, err);
        if (rc == 0)
            rc = conf_kv(&b, "primary_slot_name", upstream ? slot : "", err);
        sb_add(&b, "recovery_target_timeline = 'latest'\n");
    }
    if (rc < 0)
        return rc;
    if (b.overflow)
        return pgi_fail(err, "config", -ENOSPC, "configuration larger than %zu bytes", cap);
    return 0;
}

/* ---- pg_hba.conf ---- */

static bool hba_token_ok(const char *s, size_t n, const char *extra)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(extra, c)))
            return false;
    }
    return true;
}

int pg_hba_render(const struct pg_instance *pg, const struct pg_conf *conf, char *buf, size_t cap,
                  struct pg_error *err)
{
    if (cap == 0)
        return -ENOSPC;
    const char *nets =
        conf->hba_networks && conf->hba_networks[0] ? conf->hba_networks : "0.0.0.0/0,::/0";
    const char *auth = conf->host_auth && conf->host_auth[0] ? conf->host_auth : "scram-sha-256";
    if (!hba_token_ok(auth, strlen(auth), "-"))
        return pgi_fail(err, "config", -EINVAL, "bad auth method \"%s\"", auth);
    if (strchr(pg->replication_user, '"'))
        return pgi_fail(err, "config", -EINVAL, "replication_user holds a '\"'");
    struct sb b = {.buf = buf, .cap = cap};
    buf[0] = '\0';
    sb_add(&b, "%s\n", MANAGED_HDR);
    sb_add(&b, "# TYPE  DATABASE     USER                 ADDRESS                 METHOD\n");
    sb_add(&b, "local   all          all                                          trust\n");
    sb_add(&b, "local   replication  all                                          trust\n");
    for (int pass = 0; pass < 2; pass++) {
        for (const char *p = nets; *p;) {
            while (*p == ' ' || *p == ',')
                p++;
            if (!*p)
                break;
            size_t n = strcspn(p, ",");
            size_t t = n;
            while (t > 0 && p[t - 1] == ' ')
                t--;
            if (!hba_token_ok(p, t, ".:/_-"))
                return pgi_fail(err, "config", -EINVAL, "bad network \"%.*s\" in hba networks",
                                (int)t, p);
            char user[PGW_NAME_MAX + 4];
            snprintf(user, sizeof(user), "\"%s\"", pg->replication_user);
            sb_add(&b, "host    %-12s %-20s %-23.*s %s\n", pass == 0 ? "replication" : "all",
                   pass == 0 ? user : "all", (int)t, p, auth);
            p += n;
        }
    }
    if (b.overflow)
        return pgi_fail(err, "config", -ENOSPC, "pg_hba.conf larger than %zu bytes", cap);
    return 0;
}

/* ---- passfile ---- */

static void pass_field(struct sb *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == ':' || *p == '\\')
            sb_add(b, "\\%c", *p);
        else
            sb_add(b, "%c", *p);
    }
}

int pg_passfile_render(const struct pg_instance *pg, char *buf, size_t cap)
{
    if (cap == 0)
        return -ENOSPC;
    struct sb b = {.buf = buf, .cap = cap};
    buf[0] = '\0';
    const char *users[2] = {pg->replication_user, pg->superuser};
    const char *pws[2] = {pg->replication_password, pg->superuser_password};
    for (int i = 0; i < 2; i++) {
        if (!pws[i][0] || !users[i][0])
            continue;
        sb_add(&b, "*:*:*:");
        pass_field(&b, users[i]);
        sb_add(&b, ":");
        pass_field(&b, pws[i]);
        sb_add(&b, "\n");
    }
    return b.overflow ? -ENOSPC : 0;
}

/* ---- apply ---- */

static int ensure_include(const struct pg_instance *pg, struct pg_error *err)
{
    char path[PGI_PATH];
    if (pgi_path(path, sizeof(path), pg->data_dir, "postgresql.conf") < 0)
        return pgi_fail(err, "config", -ENAMETOOLONG, "data_dir is too long");
    char *text = NULL;
    size_t len = 0;
    int rc = pgi_read_file(path, 16 << 20, &text, &len);
    if (rc == -ENOENT) {
        text = strdup("");
        rc = text ? 0 : -ENOMEM;
    }
    if (rc < 0)
        return pgi_fail(err, "config", rc, "cannot read %s: %s", path, strerror(-rc));
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n == strlen(INCLUDE_LINE) && memcmp(p, INCLUDE_LINE, n) == 0) {
            free(text);
            return 0;
        }
        p = nl ? nl + 1 : NULL;
    }
    size_t cap = len + 256;
    char *out = malloc(cap);
    if (!out) {
        free(text);
        return pgi_fail(err, "config", -ENOMEM, "out of memory");
    }
    int n = snprintf(out, cap,
                     "%s%s\n# Added by pgwarden: the settings it manages, last so that they "
                     "win.\n" INCLUDE_LINE "\n",
                     text, len && text[len - 1] != '\n' ? "\n" : "");
    free(text);
    rc = pgi_write_file(path, out, (size_t)n, 0600);
    free(out);
    if (rc < 0)
        return pgi_fail(err, "config", rc, "cannot write %s: %s", path, strerror(-rc));
    return 0;
}

static int write_in_data(const struct pg_instance *pg, const char *name, const char *text,
                         struct pg_error *err)
{
    char path[PGI_PATH];
    if (pgi_path(path, sizeof(path), pg->data_dir, name) < 0)
        return pgi_fail(err, "config", -ENAMETOOLONG, "data_dir is too long");
    int rc = pgi_write_file(path, text, strlen(text), 0600);
    if (rc < 0)
        return pgi_fail(err, "config", rc, "cannot write %s: %s", path, strerror(-rc));
    return 0;
}

int pg_conf_apply(const struct pg_instance *pg, const struct pg_conf *conf, struct pg_error *err)
{
    enum pg_datadir_state ds;
    int rc = pg_datadir_probe(pg, &ds, err);
    if (rc < 0)
        return rc;
    if (ds != PG_DATADIR_INITIALIZED)
        return pgi_fail(err, "config", -ENOENT, "%s holds no PostgreSQL cluster", pg->data_dir);
    rc = pg_run_dir_prepare(pg, err);
    if (rc < 0)
        return rc;
    /* Both rendered before either is written: a bad value changes nothing. */
    char *buf = malloc(CONF_BUF), *hba = malloc(CONF_BUF);
    if (!buf || !hba)
        rc = pgi_fail(err, "config", -ENOMEM, "out of memory");
    if (rc == 0)
        rc = pg_conf_render(pg, conf, buf, CONF_BUF, err);
    if (rc == 0)
        rc = pg_hba_render(pg, conf, hba, CONF_BUF, err);
    if (rc == 0)
        rc = write_in_data(pg, PG_CONF_FILE, buf, err);
    if (rc == 0)
        rc = write_in_data(pg, "pg_hba.conf", hba, err);
    free(buf);
    free(hba);
    if (rc == 0)
        rc = ensure_include(pg, err);
    if (rc < 0)
        return rc;
    char sig[PGI_PATH];
    if (pgi_path(sig, sizeof(sig), pg->data_dir, "standby.signal") < 0)
        return pgi_fail(err, "config", -ENAMETOOLONG, "data_dir is too long");
    bool has = pgi_file_exists(sig);
    if (conf->standby && !has) {
        rc = pgi_write_file(sig, "", 0, 0600);
        if (rc < 0)
            return pgi_fail(err, "config", rc, "cannot create %s: %s", sig, strerror(-rc));
    } else if (!conf->standby && has && unlink(sig) < 0) {
        return pgi_fail(err, "config", -errno, "cannot remove %s: %s", sig, strerror(errno));
    }
    log_info("configuration written", "role=%s upstream=%s:%u slot=%s",
             conf->standby ? "standby" : "primary",
             conf->upstream_host && conf->upstream_host[0] ? conf->upstream_host : "-",
             (unsigned)conf->upstream_port, conf->slot && conf->slot[0] ? conf->slot : "-");
    return 0;
}
