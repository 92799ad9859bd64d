/* Fuzz target: a REST API request (method, path, query, headers, body) through the route table. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "platform/loop.h"
#include "web/commands.h"
#include "web/health.h"
#include "web/routes.h"
#include "web/snapshot.h"
#include "tests/fuzz/fuzz.h"

/*
 * Input, like HTTP/1.1 without the version: "METHOD /path?query\n", header lines
 * "Name: value\n", a blank line, then the body. libmicrohttpd parses the real request; this
 * feeds what it hands over (decoded path and query, headers, body) to the same dispatch the
 * server runs (web/server.c dispatch()), against no status, a primary's and a replica's. A
 * command that reaches ha stays pending and is cancelled. Every answer has a valid status.
 */

enum { T0 = 1000000 };

static const char primary_json[] =
    "{\"boot_ms\":1000000,\"wall_ms\":1700000000000,\"ttl_ms\":10000,\"loop_wait_ms\":1000,"
    "\"leader_until_boot_ms\":1060000,\"dcs_ok\":true,\"dcs_last_seen\":1700000000,"
    "\"paused\":false,\"sync_mode\":true,\"optime\":3145728,"
    "\"sync\":{\"leader\":\"n1\",\"sync_standby\":[\"n2\"]},"
    "\"patroni\":{\"state\":\"running\",\"role\":\"master\",\"server_version\":150004,"
    "\"timeline\":2,\"xlog\":{\"location\":3145728},\"tags\":{\"dc\":\"east\",\"rack\":3,"
    "\"nofailover\":false,\"ssd\":true,\"zone\":null},"
    "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"demo\",\"name\":\"n1\"}},"
    "\"cluster\":{\"members\":[{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\"},"
    "{\"name\":\"n2\",\"role\":\"sync_standby\",\"state\":\"streaming\",\"lag\":0}]},"
    "\"history\":[[1,25165984,\"no recovery target specified\"]],"
    "\"config\":{\"ttl\":10,\"loop_wait\":1},\"failover\":null}";

static const char replica_json[] =
    "{\"boot_ms\":1000000,\"wall_ms\":1700000000000,\"ttl_ms\":10000,\"loop_wait_ms\":1000,"
    "\"leader_until_boot_ms\":0,\"dcs_ok\":true,\"dcs_last_seen\":1700000000,"
    "\"paused\":true,\"sync_mode\":false,\"optime\":3145728,\"sync\":null,"
    "\"patroni\":{\"state\":\"running\",\"role\":\"replica\",\"timeline\":2,"
    "\"xlog\":{\"received_location\":2097152,\"replayed_location\":2097152,\"paused\":false},"
    "\"tags\":{\"dc\":\"west\",\"nosync\":true},"
    "\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"demo\",\"name\":\"n2\"}},"
    "\"cluster\":{\"members\":[{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\"}]},"
    "\"history\":[],\"config\":null}";

static struct loop *loop;
static struct web_cmds *cmds;
static struct web_snapshot snaps[3]; /* none, primary, replica */
static struct web_ctx ctxs[3];
static unsigned sent;

static uint64_t now_ms(void)
{
    return T0 + 500;
}

static int send_stub(void *arg, uint16_t type, const void *payload, uint32_t len)
{
    (void)arg;
    (void)type;
    FUZZ_ASSERT(payload != NULL && len > 0);
    sent++;
    return 0;
}

static void done_stub(void *token, struct web_resp *resp)
{
    (void)token;
    web_resp_clear(resp);
}

static void setup(void)
{
    fuzz_quiet();
    loop = loop_new();
    FUZZ_ASSERT(loop != NULL);
    cmds = web_cmds_new(loop, send_stub, NULL);
    FUZZ_ASSERT(cmds != NULL);
    for (int i = 0; i < 3; i++) {
        web_snapshot_init(&snaps[i]);
        ctxs[i] = (struct web_ctx){.snap = &snaps[i],
                                   .cmds = cmds,
                                   .reply_timeout_ms = 1000,
                                   .restart_timeout_ms = 1000,
                                   .now_boot_ms = now_ms};
    }
    FUZZ_ASSERT(web_snapshot_set_status(&snaps[1], primary_json, sizeof(primary_json) - 1, T0));
    FUZZ_ASSERT(web_snapshot_set_status(&snaps[2], replica_json, sizeof(replica_json) - 1, T0));
}

/* In place, as the server gets them from libmicrohttpd: '+' is a space in the query only. */
static void unescape(char *s, bool plus)
{
    for (char *p = s; plus && *p; p++) {
        if (*p == '+')
            *p = ' ';
    }
    MHD_http_unescape(s);
}

static char *next_line(char **p)
{
    char *line = *p;
    if (!line)
        return NULL;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
    } else {
        *p = NULL;
    }
    return line;
}

static void header(struct web_request *rq, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp(line, "Content-Length") == 0)
        rq->has_content_length = true;
    else if (strcasecmp(line, "Cookie") == 0)
        rq->cookie = v;
    else if (strcasecmp(line, "Authorization") == 0)
        rq->authorization = v;
    else if (strcasecmp(line, "X-CSRF-Token") == 0)
        rq->csrf = v;
    else if (strcasecmp(line, "If-None-Match") == 0)
        rq->if_none_match = v;
    else if (strcasecmp(line, "Accept-Encoding") == 0)
        rq->accept_encoding = v;
    else if (strcasecmp(line, "Origin") == 0)
        rq->origin = v;
    else if (strcasecmp(line, "Host") == 0)
        rq->host = v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop)
        setup();
    char *text = fuzz_cstr(data, size);
    /* The body is everything after the first blank line, NULs included. */
    const char *body = "";
    size_t body_len = 0;
    const uint8_t *blank = memmem(data, size, "\n\n", 2);
    if (blank) {
        body = text + (blank - data) + 2;
        body_len = size - (size_t)(blank - data) - 2;
        text[blank - data + 1] = '\0';
    }
    char *pos = text;
    char *reqline = next_line(&pos);
    if (!reqline || strlen(reqline) > 8192) {
        free(text);
        return 0;
    }
    char *sp = strchr(reqline, ' ');
    char *target = sp ? sp + 1 : reqline + strlen(reqline);
    if (sp)
        *sp = '\0';
    struct sockaddr_in peer = {.sin_family = AF_INET};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct web_request rq = {.method = web_method_parse(reqline),
                             .user = "fuzz",
                             .peer = (const struct sockaddr *)&peer};
    char *q = strchr(target, '?');
    if (q)
        *q++ = '\0';
    unescape(target, false);
    rq.path = target;
    bool too_many = false;
    for (char *item = q; item && *item;) {
        char *amp = strchr(item, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(item, '=');
        if (eq)
            *eq = '\0';
        unescape(item, true);
        if (eq)
            unescape(eq + 1, true);
        if (rq.nquery == WEB_MAX_QUERY) {
            too_many = true; /* the server answers 400 */
            break;
        }
        rq.query[rq.nquery].key = item;
        rq.query[rq.nquery].value = eq ? eq + 1 : "";
        rq.nquery++;
        item = amp ? amp + 1 : NULL;
    }
    for (char *line; (line = next_line(&pos)) != NULL && *line;)
        header(&rq, line);
    rq.body = body;
    rq.body_len = body_len;

    const struct web_route *rt = web_route_find(rq.path);
    web_method_unsafe(rq.method);
    if (rt && !too_many && (web_route_methods(rt) & rq.method)) {
        FUZZ_ASSERT(web_route_allow(rt) != NULL);
        for (int i = 0; i < 3; i++) {
            struct web_resp out = {0};
            uint64_t id = 0;
            if (web_route_handle(&ctxs[i], rt, &rq, done_stub, NULL, &id, &out) == WEB_PENDING) {
                FUZZ_ASSERT(id != 0);
                web_cmds_cancel(cmds, id);
            } else {
                FUZZ_ASSERT(out.status >= 100 && out.status <= 599);
                FUZZ_ASSERT(out.body != NULL || out.len == 0);
            }
            web_resp_clear(&out);
        }
    }
    /* The health-check query pieces on their own. */
    const char *lag = web_query_get(&rq, "lag");
    int64_t v;
    if (lag)
        web_parse_lag(lag, &v);
    free(text);
    return 0;
}
