/* Unit tests for the forwarder's wire protocol: first packets, ErrorResponse, key scanning. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "agent/proxy/pgproto.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A StartupMessage for user=postgres database=postgres; returns its length. */
static size_t startup(uint8_t *out)
{
    static const char params[] = "user\0postgres\0database\0postgres\0";
    size_t len = 8 + sizeof(params); /* sizeof includes the final terminator */
    put32(out, (uint32_t)len);
    put32(out + 4, 196608);
    memcpy(out + 8, params, sizeof(params));
    return len;
}

static void test_startup_complete_and_partial(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = startup(b);
    struct pgp_packet pk;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pgp_first_packet(b, i, &pk), PGP_NEED_MORE);
    assert_int_equal(pgp_first_packet(b, n, &pk), PGP_STARTUP);
    assert_int_equal(pk.len, n);
    /* pipelined bytes after a startup packet are tolerated (forwarded as they are) */
    assert_int_equal(pgp_first_packet(b, n + 3, &pk), PGP_STARTUP);
}

static void test_requests(void **state)
{
    (void)state;
    uint8_t b[32];
    struct pgp_packet pk;
    put32(b, 8);
    put32(b + 4, PGP_CODE_SSL);
    assert_int_equal(pgp_first_packet(b, 8, &pk), PGP_SSL);
    assert_int_equal(pgp_first_packet(b, 9, &pk), PGP_BAD); /* data before the answer */
    put32(b + 4, PGP_CODE_GSSENC);
    assert_int_equal(pgp_first_packet(b, 8, &pk), PGP_GSSENC);
    put32(b, 16);
    put32(b + 4, PGP_CODE_CANCEL);
    put32(b + 8, 4242);
    put32(b + 12, 0xdeadbeef);
    assert_int_equal(pgp_first_packet(b, 12, &pk), PGP_NEED_MORE);
    assert_int_equal(pgp_first_packet(b, 16, &pk), PGP_CANCEL);
    assert_int_equal(pk.cancel_pid, 4242);
    assert_int_equal(pk.cancel_key, 0xdeadbeef);
}

static void test_bad_packets(void **state)
{
    (void)state;
    uint8_t b[32] = {0};
    struct pgp_packet pk;
    put32(b, 4); /* too short */
    assert_int_equal(pgp_first_packet(b, 4, &pk), PGP_BAD);
    put32(b, PGP_STARTUP_MAX + 1); /* too long: rejected before it arrives */
    assert_int_equal(pgp_first_packet(b, 4, &pk), PGP_BAD);
    put32(b, 8);
    put32(b + 4, 2u << 16); /* protocol 2 */
    assert_int_equal(pgp_first_packet(b, 8, &pk), PGP_BAD);
    put32(b, 12);
    put32(b + 4, PGP_CODE_SSL); /* SSLRequest with a wrong length */
    assert_int_equal(pgp_first_packet(b, 12, &pk), PGP_BAD);
    put32(b, 12);
    put32(b + 4, PGP_CODE_CANCEL);
    assert_int_equal(pgp_first_packet(b, 12, &pk), PGP_BAD);
    /* HTTP at the PostgreSQL port */
    memcpy(b, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(pgp_first_packet(b, 16, &pk), PGP_BAD);
}

static void test_error_response(void **state)
{
    (void)state;
    uint8_t b[PGP_ERROR_MAX];
    size_t n = pgp_error_response(b, sizeof(b), "57P03", "no primary available");
    assert_true(n > 5);
    assert_int_equal(b[0], 'E');
    assert_int_equal(get32(b + 1), n - 1);
    assert_int_equal(b[n - 1], 0);
    /* fields: S FATAL, V FATAL, C 57P03, M message */
    const char *p = (const char *)b + 5;
    const char *want[] = {"SFATAL", "VFATAL", "C57P03", "Mno primary available"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(p, want[i]);
        p += strlen(p) + 1;
    }
    assert_int_equal(*p, 0);
    assert_int_equal(pgp_error_response(b, 10, "57P03", "no primary available"), 0);
    assert_int_equal(pgp_error_response(b, sizeof(b), "5703", "bad code"), 0);
}

static void test_first_reply(void **state)
{
    (void)state;
    uint8_t b[PGP_ERROR_MAX];
    char code[6];
    /* not an error: relayed from the first byte */
    assert_int_equal(pgp_first_reply((const uint8_t *)"R", 1, 16384, code), PGP_REPLY_RELAY);
    assert_string_equal(code, "");
    assert_int_equal(pgp_first_reply((const uint8_t *)"", 0, 16384, code), PGP_REPLY_MORE);
    /* 57P01/57P02/57P03 complete: retry; any prefix: more */
    const char *retry[] = {"57P01", "57P02", "57P03"};
    for (size_t i = 0; i < 3; i++) {
        size_t n =
            pgp_error_response(b, sizeof(b), retry[i], "the database system is shutting down");
        for (size_t k = 1; k < n; k++)
            assert_int_equal(pgp_first_reply(b, k, 16384, NULL), PGP_REPLY_MORE);
        assert_int_equal(pgp_first_reply(b, n, 16384, code), PGP_REPLY_RETRY);
        assert_string_equal(code, retry[i]);
    }
    /* another SQLSTATE, or an error longer than the buffer: relayed */
    size_t n = pgp_error_response(b, sizeof(b), "28P01", "password authentication failed");
    assert_int_equal(pgp_first_reply(b, n, 16384, code), PGP_REPLY_RELAY);
    assert_string_equal(code, "28P01");
    n = pgp_error_response(b, sizeof(b), "57P03", "x");
    assert_int_equal(pgp_first_reply(b, 5, n - 1, NULL), PGP_REPLY_RELAY);
    /* malformed: a field without its NUL, no code, a bad length */
    n = pgp_error_response(b, sizeof(b), "57P03", "x");
    b[n - 1] = 'x';
    b[n - 2] = 'x';
    assert_int_equal(pgp_first_reply(b, n, 16384, NULL), PGP_REPLY_RELAY);
    static const uint8_t nocode[] = {'E', 0, 0, 0, 12, 'S', 'F', 'A', 'T', 'A', 'L', 0, 0};
    assert_int_equal(pgp_first_reply(nocode, sizeof(nocode), 16384, code), PGP_REPLY_RELAY);
    static const uint8_t badlen[] = {'E', 0, 0, 0, 2};
    assert_int_equal(pgp_first_reply(badlen, sizeof(badlen), 16384, NULL), PGP_REPLY_RELAY);
}

/* Server bytes: AuthenticationOk, ParameterStatus, BackendKeyData(pid, key), ReadyForQuery. */
static size_t server_hello(uint8_t *b, uint32_t pid, uint32_t key)
{
    size_t n = 0;
    b[n++] = 'R';
    put32(b + n, 8);
    put32(b + n + 4, 0);
    n += 8;
    static const char ps[] = "server_version\0"
                             "15.5";
    b[n++] = 'S';
    put32(b + n, 4 + sizeof(ps));
    memcpy(b + n + 4, ps, sizeof(ps));
    n += 4 + sizeof(ps);
    b[n++] = 'K';
    put32(b + n, 12);
    put32(b + n + 4, pid);
    put32(b + n + 8, key);
    n += 12;
    b[n++] = 'Z';
    put32(b + n, 5);
    b[n + 4] = 'I';
    n += 5;
    return n;
}

static void test_scan_key_any_split(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = server_hello(b, 777, 0x01020304);
    for (size_t step = 1; step <= n; step++) {
        struct pgp_scan s;
        pgp_scan_init(&s, false);
        for (size_t off = 0; off < n; off += step)
            pgp_scan_feed(&s, b + off, off + step <= n ? step : n - off);
        assert_true(pgp_scan_done(&s));
        assert_true(s.have_key);
        assert_int_equal(s.pid, 777);
        assert_int_equal(s.key, 0x01020304);
    }
}

static void test_scan_ssl_reply(void **state)
{
    (void)state;
    uint8_t b[128];
    b[0] = 'N';
    size_t n = 1 + server_hello(b + 1, 9, 10);
    struct pgp_scan s;
    pgp_scan_init(&s, true);
    pgp_scan_feed(&s, b, n);
    assert_true(s.have_key);
    assert_int_equal(s.pid, 9);

    pgp_scan_init(&s, true); /* TLS: nothing more can be seen */
    pgp_scan_feed(&s, (const uint8_t *)"S", 1);
    assert_true(pgp_scan_done(&s));
    assert_false(s.have_key);
}

static void test_scan_stops_on_error_and_ready(void **state)
{
    (void)state;
    uint8_t e[PGP_ERROR_MAX];
    size_t n = pgp_error_response(e, sizeof(e), "28P01", "password authentication failed");
    struct pgp_scan s;
    pgp_scan_init(&s, false);
    pgp_scan_feed(&s, e, n);
    assert_true(pgp_scan_done(&s));
    assert_false(s.have_key);

    static const uint8_t z[] = {'Z', 0, 0, 0, 5, 'I'};
    pgp_scan_init(&s, false);
    pgp_scan_feed(&s, z, sizeof(z));
    assert_true(pgp_scan_done(&s));
    assert_false(s.have_key);

    static const uint8_t bad_k[] = {'K', 0, 0, 0, 9, 1, 2, 3, 4, 5};
    pgp_scan_init(&s, false);
    pgp_scan_feed(&s, bad_k, sizeof(bad_k));
    assert_true(pgp_scan_done(&s));
    assert_false(s.have_key);

    static const uint8_t bad_len[] = {'R', 0, 0, 0, 2};
    pgp_scan_init(&s, false);
    pgp_scan_feed(&s, bad_len, sizeof(bad_len));
    assert_true(pgp_scan_done(&s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_complete_and_partial),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_bad_packets),
        cmocka_unit_test(test_error_response),
        cmocka_unit_test(test_first_reply),
        cmocka_unit_test(test_scan_key_any_split),
        cmocka_unit_test(test_scan_ssl_reply),
        cmocka_unit_test(test_scan_stops_on_error_and_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
