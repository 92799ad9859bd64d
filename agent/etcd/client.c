/* etcd client: endpoint list and failover, version/prefix detection, authentication. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/etcd/internal.h"
#include "platform/config.h"
#include "platform/log.h"

#define LOG_MODULE "etcd"

/* Normalizes an endpoint: a scheme is added when missing (https when TLS files are set),
 * trailing slashes are dropped. False if it does not fit or has a foreign scheme. */
static bool normalize_endpoint(const struct pgw_etcd_settings *s, const char *item, size_t len,
                               char out[ETCD_URL_MAX])
{
    size_t skip = 0;
    const char *scheme = "";
    if (len > 7 && strncmp(item, "http://", 7) == 0)
        skip = 7;
    else if (len > 8 && strncmp(item, "https://", 8) == 0)
        skip = 8;
    else if (memmem(item, len, "://", 3) || memchr(item, '/', len))
        return false; /* another scheme, or a path without one */
    else
        scheme = (s->cacert[0] || s->cert[0]) ? "https://" : "http://";
    while (len > skip && item[len - 1] == '/')
        len--;
    if (len == skip || memchr(item + skip, '/', len - skip))
        return false; /* no host, or a path */
    int n = snprintf(out, ETCD_URL_MAX, "%s%.*s", scheme, (int)len, item);
    return n > 0 && n < ETCD_URL_MAX;
}

static bool endpoint_known(const struct etcd_client *c, const char *url)
{
    for (size_t i = 0; i < c->n_eps; i++)
        if (strcmp(c->eps[i], url) == 0)
            return true;
    return false;
}

struct etcd_client *etcd_client_new(const struct pgw_etcd_settings *s)
{
    struct etcd_client *c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("out of memory");
        return NULL;
    }
    c->s = *s;
    c->last.grpc_code = -1;
    c->resp.max = ETCD_MAX_BODY;
    const char *pos = s->endpoints;
    const char *item;
    size_t len;
    while (cfg_list_next(&pos, &item, &len)) {
        char url[ETCD_URL_MAX];
        if (!normalize_endpoint(s, item, len, url)) {
            log_error("bad etcd endpoint", "endpoint=%.*s", (int)len, item);
            goto fail;
        }
        if (endpoint_known(c, url))
            continue;
        if (c->n_eps == ETCD_MAX_ENDPOINTS) {
            log_warn("too many etcd endpoints, ignoring the rest", "max=%d", ETCD_MAX_ENDPOINTS);
            break;
        }
        memcpy(c->eps[c->n_eps++], url, sizeof(url));
    }
    if (c->n_eps == 0) {
        log_error("no etcd endpoint configured");
        goto fail;
    }
    c->n_cfg = c->n_eps;
    c->easy = curl_easy_init();
    if (!c->easy || !etcd_http_setup(c, c->easy)) {
        log_error("cannot set up libcurl (was curl_global_init called?)");
        goto fail;
    }
    return c;
fail:
    etcd_client_free(c);
    return NULL;
}

static void drop_token(struct etcd_client *c)
{
    if (c->token) {
        explicit_bzero(c->token, strlen(c->token));
        free(c->token);
        c->token = NULL;
    }
}

void etcd_client_free(struct etcd_client *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    etcd_buf_free(&c->resp);
    drop_token(c);
    explicit_bzero(c->s.password, sizeof(c->s.password));
    free(c);
}

bool etcd_have_auth(const struct etcd_client *c)
{
    return c->s.username[0] != '\0';
}

const struct etcd_error *etcd_last_error(const struct etcd_client *c)
{
    return &c->last;
}

const char *etcd_current_endpoint(const struct etcd_client *c)
{
    return c->connected ? c->eps[c->cur] : "";
}

const char *etcd_server_version(const struct etcd_client *c)
{
    return c->server_version;
}

size_t etcd_endpoint_count(const struct etcd_client *c)
{
    return c->n_eps;
}

const char *etcd_endpoint(const struct etcd_client *c, size_t i)
{
    return i < c->n_eps ? c->eps[i] : NULL;
}

uint64_t etcd_request_count(const struct etcd_client *c)
{
    return c->requests;
}

bool etcd_cluster_prefix(const struct pgw_etcd_settings *s, char *out, size_t cap)
{
    const char *ns = s->namespace;
    while (*ns == '/')
        ns++;
    size_t nl = strlen(ns);
    while (nl > 0 && ns[nl - 1] == '/')
        nl--;
    int n = nl ? snprintf(out, cap, "/%.*s/%s/", (int)nl, ns, s->scope)
               : snprintf(out, cap, "/%s/", s->scope);
    return n > 0 && (size_t)n < cap && s->scope[0] != '\0';
}

void etcd_client_failed(struct etcd_client *c, const char *endpoint, const char *reason)
{
    if (strcmp(c->eps[c->cur], endpoint) != 0)
        return; /* already moved on */
    char failed[ETCD_URL_MAX];
    memcpy(failed, c->eps[c->cur], sizeof(failed));
    c->cur = (c->cur + 1) % c->n_eps;
    c->connected = false;
    if (c->n_eps > 1)
        log_warn("etcd endpoint failed, trying the next one", "endpoint=%s next=%s err=\"%s\"",
                 failed, c->eps[c->cur], reason);
    if (c->on_failover)
        c->on_failover(c->failover_arg, failed);
}

/* ---- connect: version, auth, member list ---- */

static int get_version(struct etcd_client *c)
{
    char url[ETCD_URL_MAX + 16];
    long status;
    snprintf(url, sizeof(url), "%s/version", c->eps[c->cur]);
    int rc = etcd_http_exchange(c, url, NULL, false, false, &status);
    if (rc != 0)
        return rc;
    if (status != 200) {
        rc = etcd_error_from_body(status, c->resp.data, c->resp.len, c->eps[c->cur], &c->last);
        return rc == ETCD_E_NOT_FOUND ? ETCD_E_PROTOCOL : rc;
    }
    json_t *j = etcd_json_load(c->resp.data, c->resp.len);
    int major = 0;
    int minor = 0;
    const char *server = "";
    rc = j ? etcd_parse_version(j, &major, &minor, &server) : ETCD_E_PROTOCOL;
    if (rc == 0)
        snprintf(c->server_version, sizeof(c->server_version), "%s", server);
    json_decref(j);
    if (rc != 0) {
        etcd_error_set(&c->last, rc, status, -1, c->eps[c->cur], "malformed /version answer");
        return rc;
    }
    if (major < 3 || (major == 3 && minor < 3)) {
        etcd_error_set(&c->last, ETCD_E_INVALID, status, -1, c->eps[c->cur],
                       "etcd %d.%d is not supported (3.3 or later needed)", major, minor);
        return ETCD_E_INVALID;
    }
    snprintf(c->api, sizeof(c->api), "%s", major == 3 && minor == 3 ? "/v3beta" : "/v3");
    return 0;
}

int etcd_client_reauth(struct etcd_client *c)
{
    drop_token(c);
    char url[ETCD_URL_MAX + 40];
    snprintf(url, sizeof(url), "%s%s/auth/authenticate", c->eps[c->cur], c->api);
    json_t *body = etcd_req_auth(c->s.username, c->s.password);
    char *text = body ? etcd_json_dump(body) : NULL;
    json_decref(body);
    if (!text) {
        etcd_error_set(&c->last, ETCD_E_NOMEM, 0, -1, c->eps[c->cur], "cannot build request");
        return ETCD_E_NOMEM;
    }
    long status;
    int rc = etcd_http_exchange(c, url, text, false, false, &status);
    explicit_bzero(text, strlen(text));
    free(text);
    if (rc != 0)
        return rc;
    if (status != 200) {
        rc = etcd_error_from_body(status, c->resp.data, c->resp.len, c->eps[c->cur], &c->last);
        log_warn("etcd authentication failed", "endpoint=%s user=%s err=\"%s\"", c->eps[c->cur],
                 c->s.username, c->last.message);
        return rc;
    }
    json_t *j = etcd_json_load(c->resp.data, c->resp.len);
    const char *token = NULL;
    rc = j ? etcd_parse_auth(j, &token) : ETCD_E_PROTOCOL;
    if (rc == 0) {
        c->token = strdup(token);
        if (!c->token)
            rc = ETCD_E_NOMEM;
    }
    json_decref(j);
    explicit_bzero(c->resp.data, c->resp.len);
    if (rc != 0)
        etcd_error_set(&c->last, rc, status, -1, c->eps[c->cur], "malformed authenticate answer");
    return rc;
}

struct discovered {
    struct etcd_client *c;
    char urls[ETCD_MAX_ENDPOINTS][ETCD_URL_MAX];
    size_t n;
};

static void add_discovered(void *arg, const char *url, size_t len)
{
    struct discovered *d = arg;
    char norm[ETCD_URL_MAX];
    if (d->n == ETCD_MAX_ENDPOINTS || !normalize_endpoint(&d->c->s, url, len, norm))
        return;
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->urls[i], norm) == 0)
            return;
    memcpy(d->urls[d->n++], norm, sizeof(norm));
}

/* Configured endpoints first, then the members' clientURLs; the current one stays current. */
static void refresh_members(struct etcd_client *c)
{
    json_t *resp = NULL;
    char url[ETCD_URL_MAX + 40];
    long status;
    snprintf(url, sizeof(url), "%s%s/cluster/member/list", c->eps[c->cur], c->api);
    int rc = etcd_http_exchange(c, url, "{}", false, true, &status);
    if (rc == 0 && status == 200)
        resp = etcd_json_load(c->resp.data, c->resp.len);
    struct discovered *d = calloc(1, sizeof(*d));
    if (!resp || !d) {
        log_warn("cannot read the etcd member list", "endpoint=%s", c->eps[c->cur]);
        goto out;
    }
    d->c = c;
    if (etcd_parse_members(resp, add_discovered, d) != 0) {
        log_warn("malformed etcd member list", "endpoint=%s", c->eps[c->cur]);
        goto out;
    }
    char cur[ETCD_URL_MAX];
    memcpy(cur, c->eps[c->cur], sizeof(cur));
    size_t before = c->n_eps;
    c->n_eps = c->n_cfg;
    for (size_t i = 0; i < d->n && c->n_eps < ETCD_MAX_ENDPOINTS; i++)
        if (!endpoint_known(c, d->urls[i]))
            memcpy(c->eps[c->n_eps++], d->urls[i], ETCD_URL_MAX);
    c->cur = 0;
    for (size_t i = 0; i < c->n_eps; i++)
        if (strcmp(c->eps[i], cur) == 0)
            c->cur = i;
    if (strcmp(c->eps[c->cur], cur) != 0 && c->n_eps < ETCD_MAX_ENDPOINTS) {
        memcpy(c->eps[c->n_eps], cur, sizeof(cur)); /* a discovered one that left: keep it */
        c->cur = c->n_eps++;
    }
    if (c->n_eps != before)
        log_info("etcd endpoints refreshed", "count=%zu current=%s", c->n_eps, c->eps[c->cur]);
out:
    free(d);
    json_decref(resp);
}

/* Version, token and member list on the current endpoint. */
static int connect_current(struct etcd_client *c)
{
    int rc = get_version(c);
    if (rc == 0 && etcd_have_auth(c) && !c->token)
        rc = etcd_client_reauth(c);
    if (rc != 0)
        return rc;
    c->connected = true;
    refresh_members(c);
    log_info("connected to etcd", "endpoint=%s version=%s api=%s", c->eps[c->cur],
             c->server_version, c->api);
    return 0;
}

static bool failover_worthy(int err)
{
    return err == ETCD_E_TRANSPORT || err == ETCD_E_UNAVAILABLE || err == ETCD_E_PROTOCOL;
}

int etcd_client_connect(struct etcd_client *c)
{
    if (c->connected)
        return 0;
    for (size_t i = 0; i < c->n_eps; i++) {
        int rc = connect_current(c);
        if (rc == 0)
            return 0;
        if (!failover_worthy(rc))
            return rc;
        etcd_client_failed(c, c->eps[c->cur], c->last.message);
    }
    log_warn("no etcd endpoint reachable", "endpoints=%zu err=\"%s\"", c->n_eps, c->last.message);
    return c->last.err ? c->last.err : ETCD_E_TRANSPORT;
}

/* ---- one call with failover and one re-authentication ---- */

static int call_text(struct etcd_client *c, const char *path, const char *text, bool require_leader,
                     json_t **out)
{
    bool reauthed = false;
    int rc = ETCD_E_TRANSPORT;
    for (size_t tries = 0; tries < c->n_eps;) {
        if (!c->connected) {
            rc = connect_current(c);
            if (rc != 0 && failover_worthy(rc)) {
                etcd_client_failed(c, c->eps[c->cur], c->last.message);
                tries++;
                continue;
            }
            if (rc != 0)
                return rc;
        }
        char url[ETCD_URL_MAX + 64];
        long status;
        snprintf(url, sizeof(url), "%s%s%s", c->eps[c->cur], c->api, path);
        rc = etcd_http_exchange(c, url, text, require_leader, true, &status);
        if (rc == ETCD_E_TRANSPORT) {
            etcd_client_failed(c, c->eps[c->cur], c->last.message);
            tries++;
            continue;
        }
        if (rc != 0)
            return rc;
        if (status == 200) {
            *out = etcd_json_load(c->resp.data, c->resp.len);
            if (*out)
                return 0;
            etcd_error_set(&c->last, ETCD_E_PROTOCOL, status, -1, c->eps[c->cur],
                           "malformed JSON answer to %s", path);
            log_warn("malformed etcd answer", "endpoint=%s path=%s bytes=%zu", c->eps[c->cur], path,
                     c->resp.len);
            return ETCD_E_PROTOCOL;
        }
        rc = etcd_error_from_body(status, c->resp.data, c->resp.len, c->eps[c->cur], &c->last);
        if (rc == ETCD_E_AUTH && etcd_have_auth(c) && !reauthed) {
            reauthed = true;
            log_info("etcd token rejected, authenticating again", "endpoint=%s err=\"%s\"",
                     c->eps[c->cur], c->last.message);
            rc = etcd_client_reauth(c);
            if (rc == 0)
                continue;
            if (!failover_worthy(rc))
                return rc;
            etcd_client_failed(c, c->eps[c->cur], c->last.message);
            tries++;
            continue;
        }
        if (rc != ETCD_E_UNAVAILABLE)
            return rc;
        etcd_client_failed(c, c->eps[c->cur], c->last.message);
        tries++;
    }
    log_warn("etcd request failed on every endpoint", "path=%s endpoints=%zu err=\"%s\"", path,
             c->n_eps, c->last.message);
    return rc;
}

int etcd_call(struct etcd_client *c, const char *path, json_t *body, bool require_leader,
              json_t **out)
{
    *out = NULL;
    if (!body) {
        etcd_error_set(&c->last, ETCD_E_INVALID, 0, -1, "", "invalid request arguments (%s)", path);
        return ETCD_E_INVALID;
    }
    char *text = etcd_json_dump(body);
    json_decref(body);
    if (!text) {
        etcd_error_set(&c->last, ETCD_E_NOMEM, 0, -1, "", "out of memory");
        return ETCD_E_NOMEM;
    }
    int rc = call_text(c, path, text, require_leader, out);
    free(text);
    return rc;
}
