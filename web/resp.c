/* Building HTTP answers (JSON, text, errors) and checking request bodies against the limits. */
#include "web/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/log.h"

#define LOG_MODULE "web"

void web_resp_clear(struct web_resp *r)
{
    if (!r->body_static)
        free(r->body);
    free(r->cookies);
    memset(r, 0, sizeof(*r));
}

void web_resp_move(struct web_resp *dst, struct web_resp *src)
{
    web_resp_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

bool web_resp_set(struct web_resp *r, int status, const char *ctype, const char *body, size_t len)
{
    web_resp_clear(r);
    r->status = status;
    r->ctype = ctype;
    if (len == 0)
        return true;
    r->body = malloc(len);
    if (!r->body) {
        log_error("out of memory for a response", "len=%zu", len);
        r->status = 500;
        r->ctype = NULL;
        return false;
    }
    memcpy(r->body, body, len);
    r->len = len;
    return true;
}

bool web_resp_json(struct web_resp *r, int status, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        web_resp_clear(r);
        log_error("cannot serialize a response");
        r->status = 500;
        return false;
    }
    web_resp_clear(r);
    r->status = status;
    r->ctype = WEB_CT_JSON;
    r->body = s;
    r->len = strlen(s);
    return true;
}

void web_resp_error(struct web_resp *r, int status, const char *message)
{
    json_t *o = json_pack("{s:s}", "error", message ? message : "error");
    if (!o || !web_resp_json(r, status, o)) {
        static const char fallback[] = "{\"error\":\"out of memory\"}";
        web_resp_set(r, status, WEB_CT_JSON, fallback, sizeof(fallback) - 1);
    }
    json_decref(o);
}

void web_resp_text(struct web_resp *r, int status, const char *text)
{
    web_resp_set(r, status, WEB_CT_TEXT, text, strlen(text));
}

bool web_json_depth_ok(const char *buf, size_t len, int max_depth)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"')
            in_str = true;
        else if (ch == '{' || ch == '[') {
            if (++depth > max_depth)
                return false;
        } else if (ch == '}' || ch == ']')
            depth--;
    }
    return true;
}

json_t *web_parse_body(const char *buf, size_t len, bool optional, struct web_resp *r)
{
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i == len) {
        if (optional)
            return json_object();
        web_resp_error(r, 400, "a JSON object body is required");
        return NULL;
    }
    if (!web_json_depth_ok(buf, len, WEB_MAX_JSON_DEPTH)) {
        web_resp_error(r, 400, "JSON nested too deeply");
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        char msg[256];
        snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d column %d)", err.text, err.line,
                 err.column);
        web_resp_error(r, 400, msg);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        web_resp_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return v;
}
