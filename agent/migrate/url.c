/* Migration source URL: parsing (password kept apart), display, argv scrub, passfile, conninfo. */
#include "agent/migrate/migrate.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const allowed_keys[] = {
    "sslmode",          "sslrootcert",          "sslcert", "sslkey", "sslcrl", "connect_timeout",
    "application_name", "target_session_attrs", "options",
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, e) into out. '+' stays '+' (URL paths, as libpq). -EINVAL on a bad
 * escape, a NUL byte or a value that does not fit. */
static int decode(const char *s, const char *e, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = s; p < e; p++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            if (e - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
                return -EINVAL;
            c = hexval(p[1]) * 16 + hexval(p[2]);
            if (c == 0)
                return -EINVAL;
            p += 2;
        }
        if (o + 1 >= cap)
            return -EINVAL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int fail(char *err, size_t cap, const char *msg)
{
    snprintf(err, cap, "bad source URL: %s", msg);
    return -EINVAL;
}

static bool key_allowed(const char *k)
{
    for (size_t i = 0; i < sizeof(allowed_keys) / sizeof(allowed_keys[0]); i++)
        if (strcmp(k, allowed_keys[i]) == 0)
            return true;
    return false;
}

static bool sslmode_ok(const char *v)
{
    static const char *const modes[] = {"disable", "allow",     "prefer",
                                        "require", "verify-ca", "verify-full"};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(v, modes[i]) == 0)
            return true;
    return false;
}

static int parse_query(const char *q, struct mig_url *out, char *password, size_t pw_cap, char *err,
                       size_t err_cap)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        const char *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (end == q) {
            q = amp ? amp + 1 : end;
            continue;
        }
        if (!eq)
            return fail(err, err_cap, "a query parameter without '='");
        char key[32];
        if (decode(q, eq, key, sizeof(key)) < 0)
            return fail(err, err_cap, "a bad query parameter name");
        if (strcmp(key, "password") == 0) {
            if (decode(eq + 1, end, password, pw_cap) < 0)
                return fail(err, err_cap, "the password parameter is malformed or too long");
            out->has_password = true;
        } else {
            if (!key_allowed(key)) {
                snprintf(err, err_cap,
                         "bad source URL: unsupported parameter '%s' (supported: sslmode, "
                         "sslrootcert, sslcert, sslkey, sslcrl, connect_timeout, "
                         "application_name, target_session_attrs, options)",
                         key);
                return -EINVAL;
            }
            if (out->nparams >= MIG_PARAMS_MAX)
                return fail(err, err_cap, "too many query parameters");
            char *val = out->vals[out->nparams];
            if (decode(eq + 1, end, val, MIG_STR) < 0)
                return fail(err, err_cap, "a query parameter value is malformed or too long");
            if (strcmp(key, "sslmode") == 0 && !sslmode_ok(val)) {
                snprintf(err, err_cap,
                         "bad source URL: sslmode '%s' (use disable, allow, prefer, require, "
                         "verify-ca or verify-full)",
                         val);
                return -EINVAL;
            }
            snprintf(out->keys[out->nparams], sizeof(out->keys[0]), "%s", key);
            out->nparams++;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

int mig_url_parse(const char *url, struct mig_url *out, char *password, size_t pw_cap, char *err,
                  size_t err_cap)
{
    memset(out, 0, sizeof(*out));
    if (pw_cap)
        password[0] = '\0';
    if (!url || !*url)
        return fail(err, err_cap, "empty");
    const char *p;
    if (strncmp(url, "postgres://", 11) == 0)
        p = url + 11;
    else if (strncmp(url, "postgresql://", 13) == 0)
        p = url + 13;
    else
        return fail(err, err_cap, "it must start with postgres:// or postgresql://");
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c < 0x21 || *c == 0x7f)
            return fail(err, err_cap, "it contains spaces or control characters");

    const char *auth_end = p + strcspn(p, "/?");
    const char *at = NULL;
    for (const char *c = p; c < auth_end; c++)
        if (*c == '@')
            at = c; /* the last '@': a password may hold one unencoded */
    const char *hp = p;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (decode(p, uend, out->user, sizeof(out->user)) < 0)
            return fail(err, err_cap, "the user name is malformed or too long");
        if (colon) {
            if (decode(colon + 1, at, password, pw_cap) < 0)
                return fail(err, err_cap, "the password is malformed or too long");
            out->has_password = true;
        }
        hp = at + 1;
    }
    /* host[:port], [v6]:port */
    const char *hend = auth_end;
    const char *port_s = NULL;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(hend - hp));
        if (!rb)
            return fail(err, err_cap, "an unterminated [IPv6] host");
        if (decode(hp + 1, rb, out->host, sizeof(out->host)) < 0)
            return fail(err, err_cap, "the host is malformed or too long");
        if (rb + 1 < hend) {
            if (rb[1] != ':')
                return fail(err, err_cap, "garbage after the [IPv6] host");
            port_s = rb + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(hend - hp));
        if (memchr(hp, ',', (size_t)(hend - hp)))
            return fail(err, err_cap, "several hosts are not supported");
        if (decode(hp, colon ? colon : hend, out->host, sizeof(out->host)) < 0)
            return fail(err, err_cap, "the host is malformed or too long");
        if (colon)
            port_s = colon + 1;
    }
    if (!out->host[0])
        return fail(err, err_cap, "no host");
    out->port = 5432;
    if (port_s) {
        long v = 0;
        if (port_s == hend)
            return fail(err, err_cap, "an empty port");
        for (const char *c = port_s; c < hend; c++) {
            if (!isdigit((unsigned char)*c) || v > 65535)
                return fail(err, err_cap, "the port must be a number 1..65535");
            v = v * 10 + (*c - '0');
        }
        if (v < 1 || v > 65535)
            return fail(err, err_cap, "the port must be a number 1..65535");
        out->port = (uint16_t)v;
    }
    const char *rest = auth_end;
    if (*rest == '/') {
        const char *dend = rest + 1 + strcspn(rest + 1, "?");
        if (decode(rest + 1, dend, out->dbname, sizeof(out->dbname)) < 0)
            return fail(err, err_cap, "the database name is malformed or too long");
        rest = dend;
    }
    if (*rest == '?') {
        int rc = parse_query(rest + 1, out, password, pw_cap, err, err_cap);
        if (rc < 0)
            return rc;
    }
    if (!out->user[0])
        return fail(err, err_cap, "no user name (postgres://USER:PASSWORD@HOST/DB)");
    if (!out->dbname[0])
        snprintf(out->dbname, sizeof(out->dbname), "%s", out->user);
    return 0;
}

const char *mig_url_param(const struct mig_url *u, const char *key)
{
    for (size_t i = 0; i < u->nparams; i++)
        if (strcmp(u->keys[i], key) == 0)
            return u->vals[i];
    return NULL;
}

/* Percent-encodes everything but unreserved characters. */
static size_t encode(const char *in, char *out, size_t cap, size_t o)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

static size_t append(char *out, size_t cap, size_t o, const char *s)
{
    int n = snprintf(out + o, cap - o, "%s", s);
    if (n < 0)
        return o;
    return (size_t)n >= cap - o ? cap - 1 : o + (size_t)n;
}

char *mig_url_display(const struct mig_url *u, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    out[0] = '\0';
    size_t o = append(out, cap, 0, "postgres://");
    o = encode(u->user, out, cap, o);
    o = append(out, cap, o, "@");
    bool v6 = strchr(u->host, ':') != NULL;
    if (v6)
        o = append(out, cap, o, "[");
    o = append(out, cap, o, u->host);
    char tail[16];
    snprintf(tail, sizeof(tail), "%s:%u/", v6 ? "]" : "", (unsigned)u->port);
    o = append(out, cap, o, tail);
    o = encode(u->dbname, out, cap, o);
    for (size_t i = 0; i < u->nparams; i++) {
        o = append(out, cap, o, i == 0 ? "?" : "&");
        o = append(out, cap, o, u->keys[i]);
        o = append(out, cap, o, "=");
        o = encode(u->vals[i], out, cap, o);
    }
    return out;
}

bool mig_url_scrub(char *url)
{
    if (!url)
        return false;
    bool found = false;
    char *p = strstr(url, "://");
    if (p) {
        p += 3;
        char *auth_end = p + strcspn(p, "/?");
        char *at = NULL;
        for (char *c = p; c < auth_end; c++)
            if (*c == '@')
                at = c;
        char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
        if (colon && colon + 1 < at) {
            memset(colon + 1, '*', (size_t)(at - colon - 1));
            found = true;
        }
    }
    /* ?password=... */
    for (char *q = strchr(url, '?'); q && *q; q++) {
        if ((q[0] == '?' || q[0] == '&') && strncmp(q + 1, "password=", 9) == 0) {
            char *v = q + 10;
            size_t n = strcspn(v, "&");
            if (n) {
                memset(v, '*', n);
                found = true;
            }
        }
    }
    return found;
}

/* Passfile escaping: ':' and '\' get a backslash. */
static int pf_field(const char *in, char *out, size_t cap, size_t *o)
{
    for (const char *p = in; *p; p++) {
        if (*p == ':' || *p == '\\') {
            if (*o + 1 >= cap)
                return -ENOSPC;
            out[(*o)++] = '\\';
        }
        if (*o + 1 >= cap)
            return -ENOSPC;
        out[(*o)++] = *p;
    }
    out[*o] = '\0';
    return 0;
}

int mig_passfile_line(const char *host, uint16_t port, const char *user, const char *password,
                      char *out, size_t cap)
{
    size_t o = 0;
    char portbuf[8];
    snprintf(portbuf, sizeof(portbuf), "%u", (unsigned)port);
    if (cap == 0)
        return -ENOSPC;
    out[0] = '\0';
    const char *fields[] = {host, portbuf, "*", user, password};
    for (size_t i = 0; i < 5; i++) {
        if (i > 0) {
            if (o + 1 >= cap)
                return -ENOSPC;
            out[o++] = ':';
            out[o] = '\0';
        }
        if (i == 2) {
            if (o + 1 >= cap)
                return -ENOSPC;
            out[o++] = '*';
            out[o] = '\0';
            continue;
        }
        int rc = pf_field(fields[i], out, cap, &o);
        if (rc < 0)
            return rc;
    }
    if (o + 1 >= cap)
        return -ENOSPC;
    out[o++] = '\n';
    out[o] = '\0';
    return 0;
}

/* key='value' with ' and \ escaped, appended with a leading space when not first. */
static int ci_pair(char *out, size_t cap, size_t *o, const char *key, const char *val)
{
    int n = snprintf(out + *o, cap - *o, "%s%s='", *o ? " " : "", key);
    if (n < 0 || (size_t)n >= cap - *o)
        return -ENOSPC;
    *o += (size_t)n;
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\') {
            if (*o + 1 >= cap)
                return -ENOSPC;
            out[(*o)++] = '\\';
        }
        if (*o + 1 >= cap)
            return -ENOSPC;
        out[(*o)++] = *p;
    }
    if (*o + 2 >= cap)
        return -ENOSPC;
    out[(*o)++] = '\'';
    out[*o] = '\0';
    return 0;
}

int mig_url_conninfo(const struct mig_url *u, const char *dbname, const char *passfile,
                     const char *application_name, char *out, size_t cap)
{
    size_t o = 0;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)u->port);
    if (cap == 0)
        return -ENOSPC;
    out[0] = '\0';
    int rc = ci_pair(out, cap, &o, "host", u->host);
    if (!rc)
        rc = ci_pair(out, cap, &o, "port", port);
    if (!rc)
        rc = ci_pair(out, cap, &o, "user", u->user);
    if (!rc)
        rc = ci_pair(out, cap, &o, "dbname", dbname ? dbname : u->dbname);
    if (!rc && passfile)
        rc = ci_pair(out, cap, &o, "passfile", passfile);
    for (size_t i = 0; !rc && i < u->nparams; i++) {
        if (application_name && strcmp(u->keys[i], "application_name") == 0)
            continue;
        rc = ci_pair(out, cap, &o, u->keys[i], u->vals[i]);
    }
    if (!rc && application_name)
        rc = ci_pair(out, cap, &o, "application_name", application_name);
    if (!rc && !mig_url_param(u, "connect_timeout"))
        rc = ci_pair(out, cap, &o, "connect_timeout", "10");
    return rc;
}
