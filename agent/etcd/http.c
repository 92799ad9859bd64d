/* etcd transport: libcurl handle options (HTTP/1.1, TLS, keepalive), headers, one exchange. */
#include <stdio.h>
#include <string.h>

#include "agent/etcd/internal.h"
#include "platform/log.h"

#define LOG_MODULE "etcd"

#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK)                                       \
            ok = false;                                                                            \
    } while (0)

bool etcd_http_setup(const struct etcd_client *c, CURL *h)
{
    bool ok = true;
    long timeout_ms = (long)c->s.request_timeout_ms;
    if (timeout_ms <= 0)
        timeout_ms = 2000;
    long keepalive_s = timeout_ms / 1000 > 0 ? timeout_ms / 1000 : 1;
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    /* The gateway shares its port with gRPC: never let ALPN pick HTTP/2. */
    SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(h, CURLOPT_TCP_NODELAY, 1L);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(h, CURLOPT_TCP_KEEPIDLE, keepalive_s);
    SETOPT(h, CURLOPT_TCP_KEEPINTVL, keepalive_s);
#if LIBCURL_VERSION_NUM >= 0x080900
    SETOPT(h, CURLOPT_TCP_KEEPCNT, 3L);
#endif
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->s.cacert[0])
        SETOPT(h, CURLOPT_CAINFO, c->s.cacert);
    if (c->s.cert[0]) {
        SETOPT(h, CURLOPT_SSLCERT, c->s.cert);
        SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->s.key[0]) {
        SETOPT(h, CURLOPT_SSLKEY, c->s.key);
        SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    SETOPT(h, CURLOPT_WRITEFUNCTION, etcd_buf_curl_write);
    return ok;
}

static struct curl_slist *headers(const struct etcd_client *c, bool require_leader, bool with_token)
{
    struct curl_slist *l = NULL;
    struct curl_slist *t;
#define ADD(str)                                                                                   \
    do {                                                                                           \
        t = curl_slist_append(l, (str));                                                           \
        if (!t)                                                                                    \
            goto fail;                                                                             \
        l = t;                                                                                     \
    } while (0)
    ADD("Content-Type: application/json");
    ADD("Expect:");
    if (require_leader)
        ADD("Grpc-Metadata-Hasleader: true");
    if (with_token && c->token) {
        char auth[4200];
        snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
        t = curl_slist_append(l, auth);
        explicit_bzero(auth, sizeof(auth));
        if (!t)
            goto fail;
        l = t;
    }
#undef ADD
    return l;
fail:
    curl_slist_free_all(l);
    return NULL;
}

struct curl_slist *etcd_http_headers(const struct etcd_client *c, bool require_leader)
{
    return headers(c, require_leader, true);
}

int etcd_http_exchange(struct etcd_client *c, const char *url, const char *body,
                       bool require_leader, bool with_token, long *status)
{
    CURL *h = c->easy;
    char errbuf[CURL_ERROR_SIZE];
    bool ok = true;
    *status = 0;
    errbuf[0] = '\0';
    etcd_buf_reset(&c->resp);
    struct curl_slist *hdrs = headers(c, require_leader, with_token);
    if (!hdrs) {
        etcd_error_set(&c->last, ETCD_E_NOMEM, 0, -1, c->eps[c->cur], "out of memory");
        return ETCD_E_NOMEM;
    }
    long timeout_ms = c->s.request_timeout_ms > 0 ? (long)c->s.request_timeout_ms : 2000;
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    SETOPT(h, CURLOPT_HTTPHEADER, hdrs);
    SETOPT(h, CURLOPT_WRITEDATA, &c->resp);
    SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
    if (body) {
        SETOPT(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        SETOPT(h, CURLOPT_POSTFIELDS, body);
    } else {
        SETOPT(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode res = ok ? curl_easy_perform(h) : CURLE_FAILED_INIT;
    c->requests++;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    if (res == CURLE_WRITE_ERROR) {
        etcd_error_set(&c->last, ETCD_E_PROTOCOL, 0, -1, c->eps[c->cur],
                       "response larger than %d bytes", ETCD_MAX_BODY);
        return ETCD_E_PROTOCOL;
    }
    if (res != CURLE_OK) {
        etcd_error_set(&c->last, ETCD_E_TRANSPORT, 0, -1, c->eps[c->cur], "%s",
                       errbuf[0] ? errbuf : curl_easy_strerror(res));
        return ETCD_E_TRANSPORT;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}
