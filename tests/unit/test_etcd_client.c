/* Unit tests for the etcd client without a server: endpoints, failover errors, watch DOWN. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/etcd/etcd.h"
#include "agent/settings.h"
#include "platform/loop.h"

static int setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

/* A loopback port with nothing listening (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_endpoints(void **state)
{
    (void)state;
    struct pgw_etcd_settings s = {.request_timeout_ms = 500};
    snprintf(s.endpoints, sizeof(s.endpoints),
             "a:2379,http://b:2379/,https://c:2379,http://b:2379,http://[::1]:2379");
    struct etcd_client *c = etcd_client_new(&s);
    assert_non_null(c);
    assert_int_equal(etcd_endpoint_count(c), 4); /* the duplicate is dropped */
    assert_string_equal(etcd_endpoint(c, 0), "http://a:2379");
    assert_string_equal(etcd_endpoint(c, 1), "http://b:2379");
    assert_string_equal(etcd_endpoint(c, 2), "https://c:2379");
    assert_string_equal(etcd_endpoint(c, 3), "http://[::1]:2379");
    assert_null(etcd_endpoint(c, 4));
    assert_string_equal(etcd_current_endpoint(c), "");
    etcd_client_free(c);

    /* with TLS files, a bare host:port means https */
    snprintf(s.endpoints, sizeof(s.endpoints), "a:2379");
    snprintf(s.cacert, sizeof(s.cacert), "/etc/ca.pem");
    c = etcd_client_new(&s);
    assert_non_null(c);
    assert_string_equal(etcd_endpoint(c, 0), "https://a:2379");
    etcd_client_free(c);

    const char *bad[] = {"",       "ftp://x:1",    "http://", "https:///", "unix:///run/etcd.sock",
                         "a:1/v3", "http://a:1/v3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(s.endpoints, sizeof(s.endpoints), "%s", bad[i]);
        assert_null(etcd_client_new(&s));
    }
}

static void test_unreachable(void **state)
{
    (void)state;
    struct pgw_etcd_settings s = {.request_timeout_ms = 500};
    int p1 = dead_port();
    int p2 = dead_port();
    snprintf(s.endpoints, sizeof(s.endpoints), "http://127.0.0.1:%d,http://127.0.0.1:%d", p1, p2);
    struct etcd_client *c = etcd_client_new(&s);
    assert_non_null(c);
    struct etcd_range_result r;
    assert_int_equal(etcd_range(c, &(struct etcd_range_req){.key = "/k"}, &r), ETCD_E_TRANSPORT);
    assert_null(r.kvs);
    const struct etcd_error *e = etcd_last_error(c);
    assert_int_equal(e->err, ETCD_E_TRANSPORT);
    assert_int_equal(e->http_status, 0);
    assert_true(e->message[0] != '\0');
    assert_non_null(strstr(e->endpoint, "http://127.0.0.1:"));
    assert_true(etcd_request_count(c) >= 2); /* both endpoints were tried */
    int64_t ttl = 5;
    assert_int_equal(etcd_lease_keepalive(c, 7, &ttl), ETCD_E_TRANSPORT);
    assert_int_equal(ttl, 0);
    /* invalid arguments never reach the network */
    uint64_t before = etcd_request_count(c);
    assert_int_equal(etcd_put(c, &(struct etcd_put_req){.key = NULL}, NULL), ETCD_E_INVALID);
    assert_int_equal(etcd_lease_grant(c, 0, 0, NULL, NULL), ETCD_E_INVALID);
    assert_int_equal(etcd_request_count(c), before);
    etcd_client_free(c);
}

struct watch_rec {
    int up, down, other;
    struct etcd_watch *w;
    bool free_in_cb;
};

static void on_update(void *arg, const struct etcd_watch_update *u)
{
    struct watch_rec *r = arg;
    if (u->what == ETCD_WATCH_DOWN) {
        r->down++;
        assert_non_null(u->reason);
        if (r->free_in_cb) {
            etcd_watch_free(r->w); /* allowed from the callback */
            r->w = NULL;
        }
    } else if (u->what == ETCD_WATCH_UP) {
        r->up++;
    } else {
        r->other++;
    }
}

static void stop_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    loop_stop(l);
}

static void test_watch_down_and_free(void **state)
{
    (void)state;
    struct pgw_etcd_settings s = {.request_timeout_ms = 300};
    snprintf(s.endpoints, sizeof(s.endpoints), "http://127.0.0.1:%d", dead_port());
    struct etcd_client *c = etcd_client_new(&s);
    struct loop *l = loop_new();
    assert_non_null(c);
    assert_non_null(l);
    struct etcd_watch_opts o = {.prefix = "/service/c1/"};
    assert_null(etcd_watch_new(c, l, &(struct etcd_watch_opts){.prefix = NULL}, on_update, NULL));

    /* DOWN is reported once, however many retries follow */
    struct watch_rec r = {0};
    r.w = etcd_watch_new(c, l, &o, on_update, &r);
    assert_non_null(r.w);
    loop_add_timer(l, 1500, 0, stop_cb, NULL);
    loop_run(l);
    assert_int_equal(r.down, 1);
    assert_int_equal(r.up, 0);
    assert_int_equal(r.other, 0);
    assert_false(etcd_watch_is_up(r.w));
    assert_int_equal(etcd_watch_error(r.w)->err, ETCD_E_TRANSPORT);
    etcd_watch_free(r.w);

    /* freed from inside its own callback */
    struct watch_rec r2 = {.free_in_cb = true};
    r2.w = etcd_watch_new(c, l, &o, on_update, &r2);
    loop_add_timer(l, 500, 0, stop_cb, NULL);
    loop_run(l);
    assert_int_equal(r2.down, 1);
    assert_null(r2.w);
    assert_int_equal(loop_timer_count(l), 0); /* nothing left behind */

    loop_free(l);
    etcd_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_watch_down_and_free),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
