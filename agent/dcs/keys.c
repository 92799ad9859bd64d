/* DCS keys: Patroni's etcd key paths under /<namespace>/<scope>/ and their classification. */
#include "agent/dcs/keys.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

/* Key names relative to the prefix, indexed by enum dcs_key_kind (members is a folder). */
static const char *const key_names[] = {
    [DCS_KEY_OTHER] = NULL,
    [DCS_KEY_LEADER] = "leader",
    [DCS_KEY_MEMBER] = "members/",
    [DCS_KEY_CONFIG] = "config",
    [DCS_KEY_INITIALIZE] = "initialize",
    [DCS_KEY_HISTORY] = "history",
    [DCS_KEY_STATUS] = "status",
    [DCS_KEY_OPTIME_LEADER] = "optime/leader",
    [DCS_KEY_SYNC] = "sync",
    [DCS_KEY_FAILOVER] = "failover",
    [DCS_KEY_FAILSAFE] = "failsafe",
    [DCS_KEY_FOREIGN] = NULL,
};

enum { SCOPE_MAX = 128 };

bool dcs_name_valid_n(const char *name, size_t len)
{
    if (!name || len == 0 || len >= DCS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return false;
    }
    return true;
}

bool dcs_name_valid(const char *name)
{
    return name && dcs_name_valid_n(name, strnlen(name, DCS_NAME_MAX));
}

bool dcs_scope_valid(const char *scope)
{
    size_t len;
    if (!scope)
        return false;
    len = strnlen(scope, SCOPE_MAX + 1);
    if (len == 0 || len > SCOPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!(isalnum((unsigned char)scope[i]) || scope[i] == '_' || scope[i] == '.' ||
              scope[i] == '-'))
            return false;
    }
    return true;
}

int dcs_keys_init(struct dcs_keys *k, const char *namespace, const char *scope)
{
    char joined[DCS_PREFIX_MAX * 2];
    size_t pos = 0;

    memset(k, 0, sizeof(*k));
    if (!namespace)
    namespace = "/service";
    if (!dcs_scope_valid(scope))
        return -EINVAL;
    for (const char *p = namespace; *p; p++) {
        if (!(isalnum((unsigned char)*p) || strchr("_.-/", *p)))
            return -EINVAL;
    }
    if (strlen(namespace) + strlen(scope) + 4 > sizeof(joined))
        return -ENAMETOOLONG;
    /* '/'.join(['', namespace, scope]) + '/', then collapse runs of '/' as Patroni does. */
    const char *parts[] = {"/", namespace, "/", scope, "/"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        for (const char *p = parts[i]; *p; p++) {
            if (*p == '/' && pos > 0 && joined[pos - 1] == '/')
                continue;
            joined[pos++] = *p;
        }
    }
    joined[pos] = '\0';
    if (pos >= sizeof(k->prefix))
        return -ENAMETOOLONG;
    memcpy(k->prefix, joined, pos + 1);
    k->prefix_len = pos;
    return 0;
}

int dcs_key_path(const struct dcs_keys *k, enum dcs_key_kind kind, const char *member, char *out,
                 size_t cap)
{
    size_t nlen, mlen = 0, total;

    if (kind <= DCS_KEY_OTHER || kind >= DCS_KEY_FOREIGN || !key_names[kind])
        return -EINVAL;
    if (kind == DCS_KEY_MEMBER && member) {
        if (!dcs_name_valid(member))
            return -EINVAL;
        mlen = strlen(member);
    }
    nlen = strlen(key_names[kind]);
    total = k->prefix_len + nlen + mlen;
    if (total + 1 > cap)
        return -ENAMETOOLONG;
    memcpy(out, k->prefix, k->prefix_len);
    memcpy(out + k->prefix_len, key_names[kind], nlen);
    if (mlen)
        memcpy(out + k->prefix_len + nlen, member, mlen);
    out[total] = '\0';
    return (int)total;
}

int dcs_key_range_end(const char *key, size_t len, char *out, size_t cap)
{
    size_t n = len;
    while (n > 0 && (unsigned char)key[n - 1] == 0xff)
        n--;
    if (n == 0) {
        if (cap < 2)
            return -ENAMETOOLONG;
        out[0] = '\0';
        out[1] = '\0';
        return 1;
    }
    if (n + 1 > cap)
        return -ENAMETOOLONG;
    memcpy(out, key, n);
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    out[n] = '\0';
    return (int)n;
}

enum dcs_key_kind dcs_key_classify(const struct dcs_keys *k, const char *key, size_t len,
                                   char *member, size_t cap)
{
    const char *rel;
    size_t rlen;

    if (member && cap)
        member[0] = '\0';
    if (!key || len < k->prefix_len || memcmp(key, k->prefix, k->prefix_len) != 0)
        return DCS_KEY_FOREIGN;
    rel = key + k->prefix_len;
    rlen = len - k->prefix_len;
    for (int kind = DCS_KEY_LEADER; kind < DCS_KEY_FOREIGN; kind++) {
        const char *name = key_names[kind];
        size_t nlen = strlen(name);
        if (kind == DCS_KEY_MEMBER) {
            if (rlen <= nlen || memcmp(rel, name, nlen) != 0)
                continue;
            const char *m = rel + nlen;
            size_t mlen = rlen - nlen;
            if (!dcs_name_valid_n(m, mlen)) /* also refuses NUL and '/' */
                return DCS_KEY_OTHER;
            if (member) {
                if (mlen >= cap)
                    return DCS_KEY_OTHER;
                memcpy(member, m, mlen);
                member[mlen] = '\0';
            }
            return DCS_KEY_MEMBER;
        }
        if (rlen == nlen && memcmp(rel, name, nlen) == 0)
            return (enum dcs_key_kind)kind;
    }
    return DCS_KEY_OTHER;
}

const char *dcs_key_kind_name(enum dcs_key_kind kind)
{
    switch (kind) {
    case DCS_KEY_MEMBER:
        return "members";
    case DCS_KEY_OTHER:
        return "other";
    case DCS_KEY_FOREIGN:
        return "foreign";
    default:
        break;
    }
    if (kind > DCS_KEY_OTHER && kind < DCS_KEY_FOREIGN)
        return key_names[kind];
    return "unknown";
}
