/* Web authentication settings: [web] users, users_file and allowlist parsing; peer addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/platform_util.h>

#include "web/auth.h"
#include "web/auth_int.h"

enum { USERS_FILE_MAX = 1 << 20 }; /* bytes of [web] users_file */

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len >= WEB_AUTH_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '@' || c == '-' || c >= 0x80;
        if (!ok)
            return false;
    }
    return true;
}

bool auth_user_parse(const char *item, size_t len, struct auth_user *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *c1 = memchr(item, ':', len);
    const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - item)) : NULL;
    if (!c2) {
        *why = "must look like name:role:pbkdf2-sha256$... (see pgwarden passwd)";
        return false;
    }
    size_t nlen = (size_t)(c1 - item), rlen = (size_t)(c2 - c1 - 1);
    if (!name_ok(item, nlen)) {
        *why = "user name must be 1..63 bytes of A-Z a-z 0-9 _ . @ - or UTF-8";
        return false;
    }
    memcpy(out->name, item, nlen);
    if (rlen == 5 && memcmp(c1 + 1, "admin", 5) == 0) {
        out->role = WEB_ROLE_ADMIN;
    } else if (rlen == 8 && memcmp(c1 + 1, "readonly", 8) == 0) {
        out->role = WEB_ROLE_READONLY;
    } else {
        *why = "role must be admin or readonly";
        return false;
    }
    if (!web_auth_hash_parse(c2 + 1, len - (size_t)(c2 + 1 - item), &out->hash)) {
        *why = "hash must be pbkdf2-sha256$<iterations 1000..10000000>$<salt base64>$<hash "
               "base64> (see pgwarden passwd)";
        return false;
    }
    return true;
}

/* Reports a problem with context; returns false. */
static bool report(auth_err_fn err, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool report(auth_err_fn err, void *arg, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err(arg, msg);
    return false;
}

static bool add_user(struct auth_conf *c, const struct auth_user *u, const char *where,
                     auth_err_fn err, void *arg)
{
    for (size_t i = 0; i < c->nusers; i++) {
        if (strcmp(c->users[i].name, u->name) == 0)
            return report(err, arg, "%s: user '%s' is defined twice", where, u->name);
    }
    struct auth_user *n = realloc(c->users, (c->nusers + 1) * sizeof(*n));
    if (!n)
        return report(err, arg, "%s: out of memory", where);
    c->users = n;
    c->users[c->nusers++] = *u;
    return true;
}

/* Parses one users item; `where` names it in messages ("[web] users item 2", "file:3"). */
static bool parse_user_item(struct auth_conf *c, const char *item, size_t len, const char *where,
                            auth_err_fn err, void *arg)
{
    struct auth_user u;
    const char *why = "";
    bool ok = auth_user_parse(item, len, &u, &why) ? add_user(c, &u, where, err, arg)
                                                   : report(err, arg, "%s: %s", where, why);
    mbedtls_platform_zeroize(&u, sizeof(u));
    return ok;
}

static bool load_users_file(struct auth_conf *c, const char *path, auth_err_fn err, void *arg)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return report(err, arg, "[web] users_file %s: cannot read: %s", path, strerror(errno));
    /* a device or a FIFO (/dev/zero, say) would never end: only a bounded regular file */
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > USERS_FILE_MAX) {
        fclose(f);
        return report(err, arg, "[web] users_file %s: not a regular file of at most %d bytes", path,
                      USERS_FILE_MAX);
    }
    char line[1024], where[PGW_PATH_MAX + 32];
    bool ok = true;
    unsigned no = 0;
    while (fgets(line, sizeof(line), f)) {
        no++;
        size_t len = strlen(line);
        snprintf(where, sizeof(where), "%s:%u", path, no);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            ok = report(err, arg, "%s: line too long", where);
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n') {
            }
            continue;
        }
        const char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        len = strlen(s);
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                           s[len - 1] == '\t'))
            len--;
        if (len == 0 || s[0] == '#')
            continue;
        ok = parse_user_item(c, s, len, where, err, arg) && ok;
    }
    if (ferror(f))
        ok = report(err, arg, "[web] users_file %s: read error", path);
    fclose(f);
    mbedtls_platform_zeroize(line, sizeof(line));
    return ok;
}

static bool parse_net(const char *item, size_t len, struct auth_net *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        errno = 0;
        prefix = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end != '\0' || prefix < 0)
            return false;
    }
    memset(out, 0, sizeof(*out));
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        if (prefix > 32)
            return false;
        out->addr[10] = out->addr[11] = 0xff;
        memcpy(out->addr + 12, &v4, 4);
        out->prefix = (unsigned)(prefix < 0 ? 32 : prefix) + 96;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        if (prefix > 128)
            return false;
        out->prefix = (unsigned)(prefix < 0 ? 128 : prefix);
    } else {
        return false;
    }
    for (unsigned i = out->prefix; i < 128; i++) /* clear host bits */
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return true;
}

bool auth_conf_load(const struct pgw_web_settings *s, struct auth_conf *out, auth_err_fn err,
                    void *arg)
{
    memset(out, 0, sizeof(*out));
    out->session_timeout_ms = s->session_timeout_ms ? s->session_timeout_ms : 30 * 60 * 1000;
    bool ok = true;
    const char *pos = s->users, *item;
    size_t len, no = 0;
    char where[64];
    while (cfg_list_next(&pos, &item, &len)) {
        snprintf(where, sizeof(where), "[web] users item %zu", ++no);
        ok = parse_user_item(out, item, len, where, err, arg) && ok;
    }
    if (s->users_file[0] != '\0')
        ok = load_users_file(out, s->users_file, err, arg) && ok;
    pos = s->allowlist;
    while (cfg_list_next(&pos, &item, &len)) {
        struct auth_net n;
        if (!parse_net(item, len, &n)) {
            ok = report(err, arg, "[web] allowlist: '%.*s' is not an address or CIDR network",
                        (int)(len > 60 ? 60 : len), item);
            continue;
        }
        struct auth_net *nn = realloc(out->nets, (out->nnets + 1) * sizeof(*nn));
        if (!nn) {
            ok = report(err, arg, "[web] allowlist: out of memory");
            break;
        }
        out->nets = nn;
        out->nets[out->nnets++] = n;
    }
    if (!ok)
        auth_conf_free(out);
    return ok;
}

void auth_conf_free(struct auth_conf *c)
{
    if (c->users)
        mbedtls_platform_zeroize(c->users, c->nusers * sizeof(*c->users));
    free(c->users);
    free(c->nets);
    memset(c, 0, sizeof(*c));
}

struct settings_err {
    const char *where;
    struct cfg_errors *e;
};

static void settings_err(void *arg, const char *msg)
{
    struct settings_err *se = arg;
    cfg_errorf(se->e, se->where, "%s", msg);
}

bool web_auth_check_settings(const struct pgw_web_settings *s, const char *where,
                             struct cfg_errors *e)
{
    struct settings_err se = {.where = where ? where : "config", .e = e};
    struct auth_conf c;
    if (!auth_conf_load(s, &c, settings_err, &se))
        return false;
    auth_conf_free(&c);
    return true;
}

bool auth_peer_key(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

bool auth_net_match(const struct auth_net *n, const uint8_t addr[16])
{
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (addr[full] & mask) == n->addr[full];
}

bool auth_peer_loopback(const struct sockaddr *sa)
{
    static const uint8_t v6_loop[16] = {[15] = 1};
    static const struct auth_net v4_loop = {.addr = {[10] = 0xff, [11] = 0xff, [12] = 127},
                                            .prefix = 104};
    uint8_t k[16];
    if (sa && sa->sa_family == AF_UNIX)
        return true;
    if (!auth_peer_key(sa, k))
        return false;
    return memcmp(k, v6_loop, 16) == 0 || auth_net_match(&v4_loop, k);
}

void auth_peer_text(const struct sockaddr *sa, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_UNIX)
        snprintf(out, cap, "unix");
}
