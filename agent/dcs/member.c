/* DCS member value: the members/<name> JSON that Patroni's touch_member writes, with its tags. */
#include "agent/dcs/member.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {
    [DCS_ROLE_UNKNOWN] = NULL,
    [DCS_ROLE_PRIMARY] = "master",
    [DCS_ROLE_REPLICA] = "replica",
    [DCS_ROLE_STANDBY_LEADER] = "standby_leader",
    [DCS_ROLE_DEMOTED] = "demoted",
    [DCS_ROLE_PROMOTED] = "promoted",
    [DCS_ROLE_UNINITIALIZED] = "uninitialized",
};
#define NROLES (sizeof(role_names) / sizeof(role_names[0]))

static const char *const state_names[] = {
    [DCS_STATE_UNKNOWN] = NULL,
    [DCS_STATE_RUNNING] = "running",
    [DCS_STATE_STARTING] = "starting",
    [DCS_STATE_STOPPING] = "stopping",
    [DCS_STATE_STOPPED] = "stopped",
    [DCS_STATE_RESTARTING] = "restarting",
    [DCS_STATE_CRASHED] = "crashed",
    [DCS_STATE_CREATING_REPLICA] = "creating replica",
    [DCS_STATE_INITIALIZING] = "initializing new cluster",
    [DCS_STATE_CUSTOM_BOOTSTRAP] = "running custom bootstrap script",
    [DCS_STATE_START_FAILED] = "start failed",
    [DCS_STATE_STOP_FAILED] = "stop failed",
    [DCS_STATE_INITDB_FAILED] = "initdb failed",
    [DCS_STATE_CUSTOM_BOOTSTRAP_FAILED] = "custom bootstrap failed",
};
#define NSTATES (sizeof(state_names) / sizeof(state_names[0]))

/* Boolean tags, in Patroni's documented order around failover_priority and replicatefrom. */
static const char *const known_tags[] = {"nofailover",    "failover_priority", "clonefrom",
                                         "noloadbalance", "replicatefrom",     "nosync"};

const char *dcs_role_name(enum dcs_role role)
{
    return (unsigned)role < NROLES ? role_names[role] : NULL;
}

enum dcs_role dcs_role_parse(const char *s)
{
    if (!s)
        return DCS_ROLE_UNKNOWN;
    if (strcmp(s, "primary") == 0)
        return DCS_ROLE_PRIMARY;
    for (size_t i = 1; i < NROLES; i++) {
        if (strcmp(s, role_names[i]) == 0)
            return (enum dcs_role)i;
    }
    return DCS_ROLE_UNKNOWN;
}

const char *dcs_state_name(enum dcs_state state)
{
    return (unsigned)state < NSTATES ? state_names[state] : NULL;
}

enum dcs_state dcs_state_parse(const char *s)
{
    for (size_t i = 1; s && i < NSTATES; i++) {
        if (strcmp(s, state_names[i]) == 0)
            return (enum dcs_state)i;
    }
    return DCS_STATE_UNKNOWN;
}

int dcs_clone_percent(int64_t done_bytes, int64_t total_bytes)
{
    if (total_bytes <= 0)
        return -1;
    return done_bytes >= total_bytes ? 100 : (int)(done_bytes * 100 / total_bytes);
}

void dcs_member_init(struct dcs_member *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->version, sizeof(m->version), "%s", DCS_PATRONI_COMPAT_VERSION);
    m->clone_total_bytes = -1;
#ifdef PGW_VERSION
    snprintf(m->agent_version, sizeof(m->agent_version), "%s", PGW_VERSION);
#endif
}

bool dcs_tags_nofailover(const struct dcs_tags *t)
{
    if (t->nofailover_set)
        return t->nofailover;
    return t->has_failover_priority && t->failover_priority <= 0;
}

int64_t dcs_tags_failover_priority(const struct dcs_tags *t)
{
    if (t->nofailover_set && t->nofailover)
        return 0;
    return t->has_failover_priority ? t->failover_priority : 1;
}

/* ---- URLs -------------------------------------------------------------------------------- */

/* Start and length of the part of url where a "user:password@" may hide: from "://" to the
 * query. It deliberately runs past the first '/', since an unencoded '/' in a password would
 * otherwise end the authority early and leave the secret in place. False without "://". */
static bool url_authority(const char *url, size_t *start, size_t *len)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return false;
    *start = (size_t)(sep + 3 - url);
    *len = strcspn(url + *start, "?#");
    return true;
}

bool dcs_url_has_userinfo(const char *url)
{
    size_t start, len;
    return url && url_authority(url, &start, &len) && memchr(url + start, '@', len) != NULL;
}

/* Copies url into out without any "user:password@" part. */
static bool copy_url_no_userinfo(const char *url, size_t n, char *out, size_t cap)
{
    size_t start, alen, skip = 0;
    char tmp[DCS_URL_MAX];
    if (n >= sizeof(tmp) || n >= cap)
        return false;
    memcpy(tmp, url, n);
    tmp[n] = '\0';
    if (url_authority(tmp, &start, &alen)) {
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++) {
            if (tmp[start + i] == '@')
                at = tmp + start + i;
        }
        if (at)
            skip = (size_t)(at + 1 - (tmp + start));
    }
    if (skip) {
        memcpy(out, tmp, start);
        memcpy(out + start, tmp + start + skip, n - start - skip + 1);
    } else {
        memcpy(out, tmp, n + 1);
    }
    return true;
}

static int get_url(const json_t *obj, const char *key, char *out, struct dcs_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        dcs_errf(err, "member: '%s' must be a string, not %s", key, pyjson_type_name(v));
        return -EINVAL;
    }
    if (!copy_url_no_userinfo(json_string_value(v), json_string_length(v), out, DCS_URL_MAX)) {
        dcs_errf(err, "member: '%s' is longer than %d bytes", key, DCS_URL_MAX - 1);
        return -EINVAL;
    }
    return 1;
}

static bool host_ok(const char *host)
{
    if (!host || !*host)
        return false;
    for (const char *p = host; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("@/?#[]\\\"'", c))
            return false;
    }
    return true;
}

static int build_url(const char *scheme, const char *host, unsigned port, const char *path,
                     char *out, size_t cap)
{
    int n;
    if (!host_ok(host) || port == 0 || port > 65535)
        return -EINVAL;
    if (strchr(host, ':'))
        n = snprintf(out, cap, "%s://[%s]:%u/%s", scheme, host, port, path);
    else
        n = snprintf(out, cap, "%s://%s:%u/%s", scheme, host, port, path);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= cap)
        return -ENAMETOOLONG;
    return n;
}

int dcs_conn_url(const char *host, unsigned port, const char *dbname, char *out, size_t cap)
{
    if (!dbname || !*dbname || strpbrk(dbname, "/?#@ "))
        return -EINVAL;
    return build_url("postgres", host, port, dbname, out, cap);
}

int dcs_api_url(bool https, const char *host, unsigned port, char *out, size_t cap)
{
    return build_url(https ? "https" : "http", host, port, "patroni", out, cap);
}

/* ---- tags -------------------------------------------------------------------------------- */

static bool known_tag(const char *key)
{
    for (size_t i = 0; i < sizeof(known_tags) / sizeof(known_tags[0]); i++) {
        if (strcmp(key, known_tags[i]) == 0)
            return true;
    }
    return false;
}

/* Patroni reads failover_priority with parse_int(): an integer or a decimal string. */
static bool parse_priority(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (errno == 0 && end != s && *end == '\0') {
            *out = x;
            return true;
        }
    }
    return false;
}

static bool decode_tags(const json_t *obj, struct dcs_tags *t, struct dcs_err *err)
{
    const char *key;
    json_t *v;
    json_t *extra = NULL;
    bool ok = false;

    if (!json_is_object(obj))
        return dcs_errf(err, "member: 'tags' must be an object, not %s", pyjson_type_name(obj));
    json_object_foreach((json_t *)obj, key, v)
    {
        bool *flag = NULL;
        if (strcmp(key, "nofailover") == 0)
            flag = &t->nofailover;
        else if (strcmp(key, "noloadbalance") == 0)
            flag = &t->noloadbalance;
        else if (strcmp(key, "clonefrom") == 0)
            flag = &t->clonefrom;
        else if (strcmp(key, "nosync") == 0)
            flag = &t->nosync;
        if (flag) {
            if (json_is_null(v))
                continue;
            if (!json_is_boolean(v)) {
                dcs_errf(err, "member: tag '%s' must be true or false, not %s", key,
                         pyjson_type_name(v));
                goto out;
            }
            *flag = json_is_true(v);
            if (flag == &t->nofailover)
                t->nofailover_set = true;
        } else if (strcmp(key, "failover_priority") == 0) {
            if (json_is_null(v))
                continue;
            if (!parse_priority(v, &t->failover_priority)) {
                dcs_errf(err, "member: tag 'failover_priority' must be an integer");
                goto out;
            }
            t->has_failover_priority = true;
        } else if (strcmp(key, "replicatefrom") == 0) {
            if (json_is_null(v))
                continue;
            if (!pyjson_copy_str(v, t->replicatefrom, sizeof(t->replicatefrom), "member: tag", key,
                                 err))
                goto out;
        } else {
            if (!extra && !(extra = json_object()))
                goto oom;
            if (json_object_set(extra, key, v) != 0)
                goto oom;
        }
    }
    if (extra) {
        size_t n;
        char *s = pyjson_dump(extra, &n);
        if (!s || n >= sizeof(t->extra)) {
            free(s);
            dcs_errf(err, "member: custom tags exceed %zu bytes", sizeof(t->extra) - 1);
            goto out;
        }
        memcpy(t->extra, s, n + 1);
        free(s);
    }
    ok = true;
    goto out;
oom:
    dcs_errf(err, "member: out of memory");
out:
    json_decref(extra);
    return ok;
}

static bool put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

json_t *dcs_tags_to_json(const struct dcs_tags *t, struct dcs_err *err)
{
    json_t *o = json_object(), *extra = NULL;
    if (!o)
        goto oom;
    /* As Patroni's _filter_tags: false booleans are left out, except an explicit nofailover
     * next to failover_priority (it overrides the priority). */
    if ((t->nofailover || (t->nofailover_set && t->has_failover_priority)) &&
        !put(o, "nofailover", json_boolean(t->nofailover)))
        goto oom;
    if (t->has_failover_priority &&
        !put(o, "failover_priority", json_integer(t->failover_priority)))
        goto oom;
    if (t->clonefrom && !put(o, "clonefrom", json_true()))
        goto oom;
    if (t->noloadbalance && !put(o, "noloadbalance", json_true()))
        goto oom;
    if (t->replicatefrom[0] && !put(o, "replicatefrom", json_string(t->replicatefrom)))
        goto oom;
    if (t->nosync && !put(o, "nosync", json_true()))
        goto oom;
    if (t->extra[0]) {
        const char *key;
        json_t *v;
        extra = pyjson_load(t->extra, strlen(t->extra), "member: custom tags", err);
        if (!extra)
            goto fail;
        if (!json_is_object(extra)) {
            dcs_errf(err, "member: custom tags must be a JSON object");
            goto fail;
        }
        json_object_foreach(extra, key, v)
        {
            if (known_tag(key)) {
                dcs_errf(err, "member: custom tags repeat the known tag '%s'", key);
                goto fail;
            }
            if (json_object_set(o, key, v) != 0)
                goto oom;
        }
        json_decref(extra);
    }
    return o;
oom:
    dcs_errf(err, "member: out of memory");
fail:
    json_decref(extra);
    json_decref(o);
    return NULL;
}

/* ---- decode ------------------------------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Governor's "postgres://u:p@host:port/db?application_name=<api_url>" member value. */
static bool decode_governor(const char *value, size_t len, struct dcs_member *out,
                            struct dcs_err *err)
{
    size_t qpos = 0;
    if (memchr(value, '\0', len))
        return dcs_errf(err, "member: NUL byte in URL value");
    while (qpos < len && value[qpos] != '?' && value[qpos] != '#' && value[qpos] != '\0')
        qpos++;
    if (!copy_url_no_userinfo(value, qpos, out->conn_url, sizeof(out->conn_url)))
        return dcs_errf(err, "member: URL value longer than %d bytes", DCS_URL_MAX - 1);
    if (qpos < len && value[qpos] == '?') {
        const char *q = value + qpos + 1, *end = value + len;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            const char *item_end = amp ? amp : end;
            static const char key[] = "application_name=";
            if ((size_t)(item_end - q) >= sizeof(key) - 1 && memcmp(q, key, sizeof(key) - 1) == 0) {
                size_t o = 0;
                for (const char *p = q + sizeof(key) - 1; p < item_end; p++) {
                    int c = (unsigned char)*p;
                    if (c == '+')
                        c = ' ';
                    else if (c == '%' && item_end - p >= 3 && hexval(p[1]) >= 0 &&
                             hexval(p[2]) >= 0) {
                        c = hexval(p[1]) * 16 + hexval(p[2]);
                        p += 2;
                    }
                    if (c == 0 || o + 1 >= sizeof(out->api_url))
                        return dcs_errf(err, "member: bad application_name in URL value");
                    out->api_url[o++] = (char)c;
                }
                out->api_url[o] = '\0';
                char clean[DCS_URL_MAX];
                if (copy_url_no_userinfo(out->api_url, o, clean, sizeof(clean)))
                    memcpy(out->api_url, clean, strlen(clean) + 1);
                break;
            }
            q = item_end + 1;
        }
    }
    return true;
}

static bool read_word(const json_t *obj, const char *key, char *out, struct dcs_err *err)
{
    return pyjson_get_str(obj, key, out, DCS_WORD_MAX, "member", err) >= 0;
}

bool dcs_member_decode(const char *value, size_t len, const char *name, struct dcs_member *out,
                       struct dcs_err *err)
{
    json_t *root = NULL, *v;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    if (name && snprintf(out->name, sizeof(out->name), "%s", name) >= (int)sizeof(out->name))
        return dcs_errf(err, "member: name too long");
    if (!value || len == 0)
        return dcs_errf(err, "member: empty value");
    if (len > DCS_VALUE_MAX)
        return dcs_errf(err, "member: value of %zu bytes exceeds the limit", len);
    if (len >= 8 && memcmp(value, "postgres", 8) == 0)
        return decode_governor(value, len, out, err);

    root = pyjson_load(value, len, "member", err);
    if (!root)
        return false;
    if (!json_is_object(root)) {
        dcs_errf(err, "member: value must be a JSON object, not %s", pyjson_type_name(root));
        goto out;
    }
    if (get_url(root, "conn_url", out->conn_url, err) < 0 ||
        get_url(root, "api_url", out->api_url, err) < 0 ||
        get_url(root, "proxy_url", out->proxy_url, err) < 0)
        goto out;
    if (!read_word(root, "state", out->state_text, err) ||
        !read_word(root, "role", out->role_text, err) ||
        !read_word(root, "version", out->version, err) ||
        !read_word(root, "replication_state", out->replication_state, err) ||
        !read_word(root, "pgwarden", out->agent_version, err))
        goto out;
    out->state = dcs_state_parse(out->state_text);
    out->role = dcs_role_parse(out->role_text);

    int r = pyjson_get_int(root, "xlog_location", 0, INT64_MAX, &out->xlog_location, "member", err);
    if (r < 0)
        goto out;
    out->has_xlog_location = r > 0;
    r = pyjson_get_int(root, "timeline", 0, UINT32_MAX, &out->timeline, "member", err);
    if (r < 0)
        goto out;
    out->has_timeline = r > 0;

    r = pyjson_get_int(root, "server_version", 0, INT32_MAX, &out->server_version, "member", err);
    if (r < 0)
        goto out;
    out->has_server_version = r > 0;
    r = pyjson_get_int(root, "replay_lag_ms", 0, INT64_MAX, &out->replay_lag_ms, "member", err);
    if (r < 0)
        goto out;
    out->has_replay_lag_ms = r > 0;
    r = pyjson_get_int(root, "clone_bytes", 0, INT64_MAX, &out->clone_bytes, "member", err);
    if (r < 0)
        goto out;
    out->has_clone_bytes = r > 0;
    out->clone_total_bytes = -1;
    if (pyjson_get_int(root, "clone_total_bytes", 0, INT64_MAX, &out->clone_total_bytes, "member",
                       err) < 0)
        goto out;
    if (pyjson_get_bool(root, "pending_restart", &out->pending_restart, "member", err) < 0 ||
        pyjson_get_bool(root, "pause", &out->pause, "member", err) < 0)
        goto out;
    bool cap_done = true;
    r = pyjson_get_bool(root, "checkpoint_after_promote", &cap_done, "member", err);
    if (r < 0)
        goto out;
    out->checkpoint_pending = r > 0 && !cap_done;

    v = json_object_get(root, "tags");
    if (v && !json_is_null(v) && !decode_tags(v, &out->tags, err))
        goto out;

    v = json_object_get(root, "scheduled_restart");
    if (v && !json_is_null(v)) {
        size_t n;
        char *s;
        if (!json_is_object(v)) {
            dcs_errf(err, "member: 'scheduled_restart' must be an object, not %s",
                     pyjson_type_name(v));
            goto out;
        }
        s = pyjson_dump(v, &n);
        if (!s || n >= sizeof(out->scheduled_restart)) {
            free(s);
            dcs_errf(err, "member: 'scheduled_restart' exceeds %zu bytes",
                     sizeof(out->scheduled_restart) - 1);
            goto out;
        }
        memcpy(out->scheduled_restart, s, n + 1);
        free(s);
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

/* ---- encode ------------------------------------------------------------------------------ */

static bool check_url(const char *url, const char *key, bool required, const char *const *schemes,
                      struct dcs_err *err)
{
    if (!url[0])
        return required ? dcs_errf(err, "member: '%s' is required", key) : true;
    if (dcs_url_has_userinfo(url))
        return dcs_errf(err, "member: '%s' must not carry a user or password", key);
    for (; *schemes; schemes++) {
        if (strncmp(url, *schemes, strlen(*schemes)) == 0)
            return true;
    }
    return dcs_errf(err, "member: '%s' has an unexpected scheme", key);
}

char *dcs_member_encode(const struct dcs_member *m, size_t *len, struct dcs_err *err)
{
    static const char *const pg_schemes[] = {"postgres://", "postgresql://", NULL};
    static const char *const http_schemes[] = {"http://", "https://", NULL};
    const char *state = dcs_state_name(m->state), *role = dcs_role_name(m->role);
    json_t *o = NULL, *tags = NULL;
    char *text = NULL;

    if (!check_url(m->conn_url, "conn_url", true, pg_schemes, err) ||
        !check_url(m->api_url, "api_url", true, http_schemes, err) ||
        !check_url(m->proxy_url, "proxy_url", false, pg_schemes, err))
        return NULL;
    if (!state || !role) {
        dcs_errf(err, "member: cannot write an unknown %s", state ? "role" : "state");
        return NULL;
    }
    if (!m->version[0]) {
        dcs_errf(err, "member: 'version' is required");
        return NULL;
    }
    if (m->has_xlog_location && m->xlog_location < 0) {
        dcs_errf(err, "member: 'xlog_location' must not be negative");
        return NULL;
    }
    if (!(o = json_object()))
        goto oom;
    if (!put(o, "conn_url", json_string(m->conn_url)) ||
        !put(o, "api_url", json_string(m->api_url)) || !put(o, "state", json_string(state)) ||
        !put(o, "role", json_string(role)) || !put(o, "version", json_string(m->version)))
        goto oom;
    if (m->proxy_url[0] && !put(o, "proxy_url", json_string(m->proxy_url)))
        goto oom;
    if (m->checkpoint_pending && !put(o, "checkpoint_after_promote", json_false()))
        goto oom;
    if (!(tags = dcs_tags_to_json(&m->tags, err)))
        goto fail;
    if (json_object_size(tags) > 0) {
        if (json_object_set(o, "tags", tags) != 0)
            goto oom;
    }
    if (m->pending_restart && !put(o, "pending_restart", json_true()))
        goto oom;
    if (m->has_xlog_location && !put(o, "xlog_location", json_integer(m->xlog_location)))
        goto oom;
    if (m->replication_state[0] && !put(o, "replication_state", json_string(m->replication_state)))
        goto oom;
    if (m->has_timeline && m->timeline > 0 && !put(o, "timeline", json_integer(m->timeline)))
        goto oom;
    if (m->scheduled_restart[0]) {
        json_t *sr = pyjson_load(m->scheduled_restart, strlen(m->scheduled_restart),
                                 "member: scheduled_restart", err);
        if (!sr)
            goto fail;
        if (!json_is_object(sr)) {
            json_decref(sr);
            dcs_errf(err, "member: 'scheduled_restart' must be an object");
            goto fail;
        }
        if (!put(o, "scheduled_restart", sr))
            goto oom;
    }
    if (m->pause && !put(o, "pause", json_true()))
        goto oom;
    if (m->has_server_version && !put(o, "server_version", json_integer(m->server_version)))
        goto oom;
    if (m->has_replay_lag_ms && !put(o, "replay_lag_ms", json_integer(m->replay_lag_ms)))
        goto oom;
    if (m->has_clone_bytes && !put(o, "clone_bytes", json_integer(m->clone_bytes)))
        goto oom;
    if (m->has_clone_bytes && m->clone_total_bytes >= 0 &&
        !put(o, "clone_total_bytes", json_integer(m->clone_total_bytes)))
        goto oom;
    if (m->agent_version[0] && !put(o, "pgwarden", json_string(m->agent_version)))
        goto oom;
    text = pyjson_dump(o, len);
    if (!text)
        goto oom;
    goto done;
oom:
    dcs_errf(err, "member: out of memory or value not representable");
fail:
    free(text);
    text = NULL;
done:
    json_decref(tags);
    json_decref(o);
    return text;
}
