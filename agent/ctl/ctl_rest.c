/* ctl REST client: one libcurl request to a member's REST API, with Basic auth and TLS options. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "agent/ctl/ctl.h"

enum { REST_BODY_MAX = 4 << 20, REST_CONNECT_TIMEOUT_MS = 5000 };

bool ctl_api_endpoint(const char *api_url, const char *path, char *out, size_t cap)
{
    if (!api_url ||
        (strncasecmp(api_url, "http://", 7) != 0 && strncasecmp(api_url, "https://", 8) != 0))
        return false;
    const char *host = strstr(api_url, "://") + 3;
    size_t hostlen = strcspn(host, "/?#");
    if (hostlen == 0)
        return false;
    int base = (int)((size_t)(host - api_url) + hostlen);
    int n = snprintf(out, cap, "%.*s%s%s", base, api_url, path[0] == '/' ? "" : "/", path);
    return n > 0 && (size_t)n < cap;
}

struct body_buf {
    char *p;
    size_t len;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct body_buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > REST_BODY_MAX) {
        b->too_big = true;
        return 0;
    }
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, ptr, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

void ctl_rest_result_clear(struct ctl_rest_result *r)
{
    if (!r)
        return;
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int ctl_rest_call(const struct ctl_rest_opts *o, const char *method, const char *url,
                  const char *body, struct ctl_rest_result *out)
{
    memset(out, 0, sizeof(*out));
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(out->error, sizeof(out->error), "cannot set up libcurl");
        return -1;
    }
    struct body_buf b = {0};
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)REST_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 30000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pgwarden-ctl/" PGW_VERSION);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (o->username && o->username[0]) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, o->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, o->password ? o->password : "");
    }
    if (o->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (o->cacert && o->cacert[0]) {
        curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
    }
    if (o->cert && o->cert[0] && o->key && o->key[0]) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, o->key);
    }
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    } else {
        ret = -1;
        /* "Not there": refused, unresolvable, or a timeout before the connection was made
         * (a timeout while waiting for the answer means the request may have been acted on). */
        curl_off_t connected = 0;
        curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
        out->unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                           rc == CURLE_COULDNT_RESOLVE_PROXY ||
                           (rc == CURLE_OPERATION_TIMEDOUT && connected == 0);
        snprintf(out->error, sizeof(out->error), "%s",
                 b.too_big ? "answer too large" : (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (ret == 0) {
        out->body = b.p ? b.p : strdup("");
        out->len = b.p ? b.len : 0;
        if (!out->body) {
            snprintf(out->error, sizeof(out->error), "out of memory");
            return -1;
        }
    } else {
        free(b.p);
    }
    return ret;
}
