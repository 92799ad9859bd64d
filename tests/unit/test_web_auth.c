/* Unit tests of web/auth: PBKDF2, hash lines, Basic parsing, roles, allowlist, limits, sessions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/pkcs5.h>

#include "agent/settings.h"
#include "platform/config.h"
#include "platform/log.h"
#include "web/auth.h"
#include "web/auth_int.h"

/* ---- helpers ---- */

static void hex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
    }
    return ss;
}
struct wrap {
    struct sockaddr_storage ss;
};
#define SA(ip) ((const struct sockaddr *)&((struct wrap){addr(ip)}).ss)

/* "Basic base64(user:password)". */
static void basic(const char *user, const char *password, char *out, size_t cap)
{
    char raw[512];
    int n = snprintf(raw, sizeof(raw), "%s:%s", user, password);
    int p = snprintf(out, cap, "Basic ");
    assert_true(auth_b64_encode((const uint8_t *)raw, (size_t)n, false, true, out + p,
                                cap - (size_t)p) > 0);
}

struct clock {
    uint64_t ms;
};
static uint64_t fake_now(void *arg)
{
    return ((struct clock *)arg)->ms;
}

struct env {
    struct pgw_web_settings s;
    struct web_auth *a;
    struct clock clk;
};

/* alice (admin, "sécret"), bob (readonly, "hunter2"); hashes with 1000 iterations. */
static void make_users(struct pgw_web_settings *s)
{
    char h1[WEB_AUTH_HASH_LINE_MAX], h2[WEB_AUTH_HASH_LINE_MAX];
    assert_int_equal(web_auth_hash_password("s\xc3\xa9"
                                            "cret",
                                            1000, h1, sizeof(h1)),
                     0);
    assert_int_equal(web_auth_hash_password("hunter2", 1000, h2, sizeof(h2)), 0);
    snprintf(s->users, sizeof(s->users), "alice:admin:%s,bob:readonly:%s", h1, h2);
    s->session_timeout_ms = 30 * 60 * 1000;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    make_users(&e->s);
    e->a = web_auth_new(&e->s);
    if (!e->a)
        return -1;
    e->clk.ms = 1000000;
    web_auth_set_clock(e->a, fake_now, &e->clk);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    web_auth_free(e->a);
    free(e);
    return 0;
}

/* ---- PBKDF2 and hash lines ---- */

static void test_pbkdf2_vectors(void **state)
{
    (void)state;
    uint8_t out[64], want[64];
    /* RFC 7914 section 11 */
    hex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b3"
        "9d77ef317c71b845b1e30bd509112041d3a19783",
        want, 64);
    assert_int_equal(web_auth_pbkdf2("passwd", 6, (const uint8_t *)"salt", 4, 1, out, 64), 0);
    assert_memory_equal(out, want, 64);
    hex("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b"
        "51c9b3176a272bdebba1d078478f62b397f33c8d",
        want, 64);
    assert_int_equal(web_auth_pbkdf2("Password", 8, (const uint8_t *)"NaCl", 4, 80000, out, 64), 0);
    assert_memory_equal(out, want, 64);
    /* the common PBKDF2-HMAC-SHA256 vectors (password / salt) */
    hex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b", want, 32);
    assert_int_equal(web_auth_pbkdf2("password", 8, (const uint8_t *)"salt", 4, 1, out, 32), 0);
    assert_memory_equal(out, want, 32);
    hex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a", want, 32);
    assert_int_equal(web_auth_pbkdf2("password", 8, (const uint8_t *)"salt", 4, 4096, out, 32), 0);
    assert_memory_equal(out, want, 32);
    assert_int_not_equal(web_auth_pbkdf2("p", 1, (const uint8_t *)"s", 1, 0, out, 32), 0);
}

/* Our pad-state PBKDF2 agrees with mbedTLS's own, also for keys longer than a block. */
static void test_pbkdf2_matches_mbedtls(void **state)
{
    (void)state;
    char pw[200];
    uint8_t salt[20], a[40], b[40];
    for (size_t len = 0; len < sizeof(pw); len += 37) {
        for (size_t i = 0; i < len; i++)
            pw[i] = (char)('a' + (i * 7 + len) % 26);
        for (size_t i = 0; i < sizeof(salt); i++)
            salt[i] = (uint8_t)(i * 13 + len);
        assert_int_equal(web_auth_pbkdf2(pw, len, salt, sizeof(salt), 3, a, sizeof(a)), 0);
        assert_int_equal(mbedtls_pkcs5_pbkdf2_hmac_ext(MBEDTLS_MD_SHA256, (const uint8_t *)pw, len,
                                                       salt, sizeof(salt), 3, sizeof(b), b),
                         0);
        assert_memory_equal(a, b, sizeof(a));
    }
}

static void test_hash_line_round_trip(void **state)
{
    (void)state;
    char line[WEB_AUTH_HASH_LINE_MAX], again[WEB_AUTH_HASH_LINE_MAX];
    assert_int_equal(web_auth_hash_password("pw", 1000, line, sizeof(line)), 0);
    assert_true(strncmp(line, "pbkdf2-sha256$1000$", 19) == 0);
    struct web_auth_hash h;
    assert_true(web_auth_hash_parse(line, strlen(line), &h));
    assert_int_equal(h.iterations, 1000);
    assert_int_equal(h.salt_len, WEB_AUTH_SALT_LEN);
    assert_int_equal(h.key_len, 32);
    uint8_t k[32];
    assert_int_equal(web_auth_pbkdf2("pw", 2, h.salt, h.salt_len, h.iterations, k, 32), 0);
    assert_memory_equal(k, h.key, 32);
    assert_true(web_auth_hash_format(&h, again, sizeof(again)) > 0);
    assert_string_equal(line, again);
    /* two hashes of one password differ (random salt) */
    assert_int_equal(web_auth_hash_password("pw", 1000, again, sizeof(again)), 0);
    assert_string_not_equal(line, again);
    /* padded base64 (e.g. written by Python) is accepted */
    const char *padded = "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$"
                         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_true(web_auth_hash_parse(padded, strlen(padded), &h));
    assert_int_equal(h.salt_len, 16);
    assert_int_equal(h.key_len, 32);
    const char *bad[] = {
        "",
        "pbkdf2-sha256",
        "pbkdf2-sha1$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$999$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$10000001$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$1e3$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$1000$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* short salt */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAA",                      /* short key */
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAA*A$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$",
        "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (web_auth_hash_parse(bad[i], strlen(bad[i]), &h))
            fail_msg("accepted bad hash line %zu: %s", i, bad[i]);
    }
}

static void test_base64(void **state)
{
    (void)state;
    uint8_t out[16];
    char enc[32];
    assert_int_equal(auth_b64_decode("Zm9vYg==", 8, out, sizeof(out)), 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(auth_b64_decode("Zm9vYg", 6, out, sizeof(out)), 4);
    assert_int_equal(auth_b64_decode("Zm9vY", 5, out, sizeof(out)), -EINVAL);
    assert_int_equal(auth_b64_decode("Zm9=vYg=", 8, out, sizeof(out)), -EINVAL);
    assert_int_equal(auth_b64_decode("Zm9vYg=", 7, out, sizeof(out)), -EINVAL);
    assert_int_equal(auth_b64_decode("Zm 9v", 5, out, sizeof(out)), -EINVAL);
    assert_int_equal(auth_b64_decode("Zm9vYmFy", 8, out, 5), -EINVAL);
    assert_int_equal(auth_b64_encode((const uint8_t *)"\xfb\xff", 2, true, false, enc, sizeof(enc)),
                     3);
    assert_string_equal(enc, "-_8");
    assert_int_equal(auth_b64_encode((const uint8_t *)"\xfb\xff", 2, false, true, enc, sizeof(enc)),
                     4);
    assert_string_equal(enc, "+/8=");
    assert_int_equal(auth_b64_encode((const uint8_t *)"abc", 3, false, true, enc, 4), -EINVAL);
}

/* ---- Basic header ---- */

static void test_basic_parsing(void **state)
{
    (void)state;
    char user[WEB_AUTH_USER_MAX], pw[256], h[512];
    basic("alice", "pa:ss word", h, sizeof(h));
    assert_true(web_auth_parse_basic(h, user, sizeof(user), pw, sizeof(pw)));
    assert_string_equal(user, "alice");
    assert_string_equal(pw, "pa:ss word"); /* only the first ':' separates */
    /* scheme in any case, extra blanks */
    assert_true(
        web_auth_parse_basic("  bAsIc   YWxpY2U6eA==  ", user, sizeof(user), pw, sizeof(pw)));
    assert_string_equal(pw, "x");
    /* UTF-8 user and password */
    basic("j\xc3\xbcrgen", "p\xc3\xa4ss\xe2\x82\xac", h, sizeof(h));
    assert_true(web_auth_parse_basic(h, user, sizeof(user), pw, sizeof(pw)));
    assert_string_equal(user, "j\xc3\xbcrgen");
    assert_string_equal(pw, "p\xc3\xa4ss\xe2\x82\xac");
    /* empty password parses (and is refused later) */
    basic("alice", "", h, sizeof(h));
    assert_true(web_auth_parse_basic(h, user, sizeof(user), pw, sizeof(pw)));
    assert_string_equal(pw, "");
    const char *bad[] = {
        "",
        "Bearer YWxpY2U6eA==",
        "Basic",
        "Basic ",
        "BasicYWxpY2U6eA==",
        "Basic YWxpY2U6eA=*", /* bad base64 */
        "Basic YWxpY2U6eA=",  /* bad padding */
        "Basic YWxpY2U=",     /* "alice": no colon */
        "Basic OnNlY3JldA==", /* ":secret": empty user */
        "Basic YWwAaWNlOng=", /* NUL in the user */
        "Basic YWxpY2U6eAB5", /* NUL in the password */
        "Basic YQlsaWNlOng=", /* tab (control character) in the user */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (web_auth_parse_basic(bad[i], user, sizeof(user), pw, sizeof(pw)))
            fail_msg("accepted bad header %zu: '%s'", i, bad[i]);
    }
    assert_false(web_auth_parse_basic(NULL, user, sizeof(user), pw, sizeof(pw)));
    /* a user name longer than 63 bytes, and a password longer than the buffer */
    char longname[100];
    memset(longname, 'u', 80);
    longname[80] = '\0';
    basic(longname, "x", h, sizeof(h));
    assert_false(web_auth_parse_basic(h, user, sizeof(user), pw, sizeof(pw)));
    basic("alice", "0123456789", h, sizeof(h));
    assert_false(web_auth_parse_basic(h, user, sizeof(user), pw, 8));
}

/* ---- request checks ---- */

static void test_basic_auth_roles(void **state)
{
    struct env *e = *state;
    char h[512], who[WEB_AUTH_USER_MAX];
    basic("alice",
          "s\xc3\xa9"
          "cret",
          h, sizeof(h));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, true, who, sizeof(who)),
                     WEB_AUTH_OK);
    assert_string_equal(who, "alice");
    basic("alice", "secret", h, sizeof(h)); /* not the UTF-8 one */
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, true, who, sizeof(who)),
                     WEB_AUTH_UNAUTHORIZED);
    basic("bob", "hunter2", h, sizeof(h));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, false, who, sizeof(who)),
                     WEB_AUTH_OK);
    assert_string_equal(who, "bob");
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, true, who, sizeof(who)),
                     WEB_AUTH_FORBIDDEN);
    basic("mallory", "hunter2", h, sizeof(h));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, false, who, sizeof(who)),
                     WEB_AUTH_UNAUTHORIZED);
    basic("alice", "", h, sizeof(h));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, false, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    /* nothing at all, garbage, or a loopback peer: still 401 once users exist */
    assert_int_equal(web_auth_check(e->a, SA("127.0.0.1"), NULL, NULL, true, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), "Basic !!!", "x=y", true, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(web_auth_user_count(e->a), 2);
}

static void test_cache(void **state)
{
    struct env *e = *state;
    char h[512];
    basic("alice",
          "s\xc3\xa9"
          "cret",
          h, sizeof(h));
    uint64_t n0 = web_auth_pbkdf2_count(e->a);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n0 + 1);
    for (int i = 0; i < 20; i++) /* polling: served from the cache, also from other peers */
        assert_int_equal(web_auth_check(e->a, SA("10.0.0.2"), h, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n0 + 1);
    /* a wrong password is never served from the cache */
    char bad[512];
    basic("alice",
          "s\xc3\xa9"
          "creT",
          bad, sizeof(bad));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.3"), bad, NULL, true, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n0 + 2);
    /* the cached role still applies: bob's cached credential cannot write */
    char hb[512];
    basic("bob", "hunter2", hb, sizeof(hb));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), hb, NULL, false, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), hb, NULL, true, NULL, 0),
                     WEB_AUTH_FORBIDDEN);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n0 + 3);
    /* after the cache lifetime, verified again */
    e->clk.ms += WEB_AUTH_CACHE_MS + 1;
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n0 + 4);
    /* a reload empties the cache */
    assert_int_equal(web_auth_reload(e->a, &e->s), 0);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.1"), h, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n0 + 5);
}

static void test_rate_limit(void **state)
{
    struct env *e = *state;
    char good[512], bad[512];
    basic("alice",
          "s\xc3\xa9"
          "cret",
          good, sizeof(good));
    basic("alice", "guess", bad, sizeof(bad));
    for (int i = 0; i < WEB_AUTH_RL_BURST; i++)
        assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), bad, NULL, true, NULL, 0),
                         WEB_AUTH_UNAUTHORIZED);
    uint64_t n = web_auth_pbkdf2_count(e->a);
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), bad, NULL, true, NULL, 0),
                     WEB_AUTH_RATE_LIMITED);
    /* even the right password waits: no oracle while limited, and no PBKDF2 work */
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), good, NULL, true, NULL, 0),
                     WEB_AUTH_RATE_LIMITED);
    assert_int_equal(web_auth_pbkdf2_count(e->a), n);
    /* another address is not affected (IPv4-mapped IPv6 is the same address) */
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.2"), good, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_check(e->a, SA("::ffff:192.0.2.1"), good, NULL, true, NULL, 0),
                     WEB_AUTH_RATE_LIMITED);
    /* one more attempt per 10 s */
    e->clk.ms += WEB_AUTH_RL_REFILL_MS - 1;
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), bad, NULL, true, NULL, 0),
                     WEB_AUTH_RATE_LIMITED);
    e->clk.ms += 1;
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), bad, NULL, true, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), good, NULL, true, NULL, 0),
                     WEB_AUTH_RATE_LIMITED);
    e->clk.ms += WEB_AUTH_RL_REFILL_MS;
    assert_int_equal(web_auth_check(e->a, SA("192.0.2.1"), good, NULL, true, NULL, 0), WEB_AUTH_OK);
    /* IPv6: one bucket per /64 */
    for (int i = 0; i < WEB_AUTH_RL_BURST; i++)
        assert_int_equal(web_auth_check(e->a, SA("2001:db8:1:2::1"), bad, NULL, true, NULL, 0),
                         WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(web_auth_check(e->a, SA("2001:db8:1:2::ffff"), good, NULL, true, NULL, 0),
                     WEB_AUTH_RATE_LIMITED);
    assert_int_equal(web_auth_check(e->a, SA("2001:db8:1:3::1"), good, NULL, true, NULL, 0),
                     WEB_AUTH_OK);
    /* the login form shares the limit */
    char cookie[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP];
    assert_int_equal(web_auth_login(e->a, SA("2001:db8:1:2::9"), "alice",
                                    "s\xc3\xa9"
                                    "cret",
                                    cookie, sizeof(cookie), csrf, sizeof(csrf)),
                     WEB_AUTH_RATE_LIMITED);
    /* after a full refill the address is forgotten: 5 failures again */
    e->clk.ms += WEB_AUTH_RL_BURST * WEB_AUTH_RL_REFILL_MS;
    for (int i = 0; i < WEB_AUTH_RL_BURST; i++)
        assert_int_equal(web_auth_check(e->a, SA("2001:db8:1:2::1"), bad, NULL, true, NULL, 0),
                         WEB_AUTH_UNAUTHORIZED);
}

static void test_allowlist(void **state)
{
    (void)state;
    struct pgw_web_settings s = {0};
    make_users(&s);
    snprintf(s.allowlist, sizeof(s.allowlist), "10.0.0.0/8,192.168.1.7,fd00::/16,::1");
    struct web_auth *a = web_auth_new(&s);
    assert_non_null(a);
    char h[512];
    basic("alice",
          "s\xc3\xa9"
          "cret",
          h, sizeof(h));
    const char *in[] = {"10.1.2.3", "10.255.255.255", "192.168.1.7", "fd00::1", "fd00:ffff::2",
                        "::1",      "::ffff:10.9.9.9"};
    const char *out[] = {"11.0.0.1", "192.168.1.8", "127.0.0.1",      "fd01::1",
                         "fe80::1",  "::2",         "::ffff:11.0.0.1"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        if (web_auth_check(a, SA(in[i]), h, NULL, true, NULL, 0) != WEB_AUTH_OK)
            fail_msg("%s should be allowed", in[i]);
    }
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++) {
        if (web_auth_check(a, SA(out[i]), h, NULL, true, NULL, 0) != WEB_AUTH_FORBIDDEN)
            fail_msg("%s should be refused", out[i]);
    }
    struct sockaddr_un_like {
        sa_family_t family;
    } unix_peer = {AF_UNIX};
    assert_int_equal(web_auth_check(a, (const struct sockaddr *)&unix_peer, h, NULL, true, NULL, 0),
                     WEB_AUTH_FORBIDDEN);
    assert_int_equal(web_auth_check(a, NULL, h, NULL, true, NULL, 0), WEB_AUTH_FORBIDDEN);
    char cookie[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP];
    assert_int_equal(web_auth_login(a, SA("11.0.0.1"), "alice",
                                    "s\xc3\xa9"
                                    "cret",
                                    cookie, sizeof(cookie), csrf, sizeof(csrf)),
                     WEB_AUTH_FORBIDDEN);
    web_auth_free(a);
}

static void test_no_users_loopback_only(void **state)
{
    (void)state;
    struct pgw_web_settings s = {0};
    struct web_auth *a = web_auth_new(&s);
    assert_non_null(a);
    assert_int_equal(web_auth_user_count(a), 0);
    char who[WEB_AUTH_USER_MAX];
    assert_int_equal(web_auth_check(a, SA("127.0.0.1"), NULL, NULL, true, who, sizeof(who)),
                     WEB_AUTH_OK);
    assert_string_equal(who, "anonymous");
    assert_int_equal(web_auth_check(a, SA("127.8.9.10"), NULL, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_check(a, SA("::1"), NULL, NULL, true, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_check(a, SA("::ffff:127.0.0.1"), NULL, NULL, true, NULL, 0),
                     WEB_AUTH_OK);
    assert_int_equal(web_auth_check(a, SA("10.0.0.1"), NULL, NULL, true, NULL, 0),
                     WEB_AUTH_FORBIDDEN);
    assert_int_equal(web_auth_check(a, SA("::2"), "Basic YWxpY2U6eA==", NULL, true, NULL, 0),
                     WEB_AUTH_FORBIDDEN);
    assert_int_equal(web_auth_check(a, NULL, NULL, NULL, true, NULL, 0), WEB_AUTH_FORBIDDEN);
    /* reads are open */
    assert_int_equal(web_auth_check(a, SA("10.0.0.1"), NULL, NULL, false, NULL, 0), WEB_AUTH_OK);
    /* and there is nobody to log in as */
    char cookie[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP];
    assert_int_equal(web_auth_login(a, SA("127.0.0.1"), "admin", "admin", cookie, sizeof(cookie),
                                    csrf, sizeof(csrf)),
                     WEB_AUTH_UNAUTHORIZED);
    web_auth_free(a);
}

/* ---- sessions ---- */

static void test_sessions(void **state)
{
    struct env *e = *state;
    char cookie[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP], hdr[200], who[WEB_AUTH_USER_MAX];
    assert_int_equal(web_auth_login(e->a, SA("10.0.0.5"), "alice", "wrong", cookie, sizeof(cookie),
                                    csrf, sizeof(csrf)),
                     WEB_AUTH_UNAUTHORIZED);
    assert_string_equal(cookie, "");
    assert_int_equal(web_auth_login(e->a, SA("10.0.0.5"), "alice",
                                    "s\xc3\xa9"
                                    "cret",
                                    cookie, sizeof(cookie), csrf, sizeof(csrf)),
                     WEB_AUTH_OK);
    assert_int_equal(strlen(cookie), WEB_AUTH_TOKEN_LEN);
    assert_int_equal(strlen(csrf), WEB_AUTH_TOKEN_LEN);
    assert_string_not_equal(cookie, csrf);
    snprintf(hdr, sizeof(hdr), "theme=dark; " WEB_AUTH_COOKIE "=%s; other=1", cookie);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, who, sizeof(who)),
                     WEB_AUTH_OK);
    assert_string_equal(who, "alice");
    enum web_auth_role role;
    assert_true(web_auth_session_user(e->a, hdr, who, sizeof(who), &role));
    assert_int_equal(role, WEB_ROLE_ADMIN);
    /* CSRF: writes through the cookie need the token */
    assert_true(web_auth_csrf_ok(e->a, hdr, csrf));
    assert_false(web_auth_csrf_ok(e->a, hdr, cookie));
    assert_false(web_auth_csrf_ok(e->a, hdr, NULL));
    assert_false(web_auth_csrf_ok(e->a, "x=1", csrf));
    assert_int_equal(web_auth_check_csrf(e->a, SA("10.0.0.6"), NULL, hdr, csrf, true, NULL, 0),
                     WEB_AUTH_OK);
    assert_int_equal(web_auth_check_csrf(e->a, SA("10.0.0.6"), NULL, hdr, NULL, true, NULL, 0),
                     WEB_AUTH_FORBIDDEN);
    assert_int_equal(web_auth_check_csrf(e->a, SA("10.0.0.6"), NULL, hdr, "x", true, NULL, 0),
                     WEB_AUTH_FORBIDDEN);
    assert_int_equal(web_auth_check_csrf(e->a, SA("10.0.0.6"), NULL, hdr, NULL, false, NULL, 0),
                     WEB_AUTH_OK);
    /* a forged or altered cookie */
    char forged[200];
    snprintf(forged, sizeof(forged), WEB_AUTH_COOKIE "=%s", cookie);
    forged[strlen(forged) - 1] ^= 1;
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, forged, false, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(
        web_auth_check(e->a, SA("10.0.0.6"), NULL, WEB_AUTH_COOKIE "=", false, NULL, 0),
        WEB_AUTH_UNAUTHORIZED);
    /* idle expiry, refreshed by use */
    e->clk.ms += e->s.session_timeout_ms - 1000;
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0), WEB_AUTH_OK);
    e->clk.ms += e->s.session_timeout_ms - 1000;
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0), WEB_AUTH_OK);
    e->clk.ms += e->s.session_timeout_ms;
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_false(web_auth_csrf_ok(e->a, hdr, csrf));
    /* logout */
    assert_int_equal(web_auth_login(e->a, SA("10.0.0.5"), "bob", "hunter2", cookie, sizeof(cookie),
                                    csrf, sizeof(csrf)),
                     WEB_AUTH_OK);
    snprintf(hdr, sizeof(hdr), WEB_AUTH_COOKIE "=%s", cookie);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0), WEB_AUTH_OK);
    assert_int_equal(web_auth_check_csrf(e->a, SA("10.0.0.6"), NULL, hdr, csrf, true, NULL, 0),
                     WEB_AUTH_FORBIDDEN); /* readonly */
    /* sessions survive a reload while the user exists */
    assert_int_equal(web_auth_reload(e->a, &e->s), 0);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0), WEB_AUTH_OK);
    assert_true(web_auth_logout(e->a, hdr));
    assert_false(web_auth_logout(e->a, hdr));
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    /* a session of a user removed by a reload stops working */
    assert_int_equal(web_auth_login(e->a, SA("10.0.0.5"), "bob", "hunter2", cookie, sizeof(cookie),
                                    csrf, sizeof(csrf)),
                     WEB_AUTH_OK);
    snprintf(hdr, sizeof(hdr), WEB_AUTH_COOKIE "=%s", cookie);
    struct pgw_web_settings only_alice = e->s;
    char *comma = strchr(only_alice.users, ',');
    *comma = '\0';
    assert_int_equal(web_auth_reload(e->a, &only_alice), 0);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, hdr, false, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    /* a bad reload changes nothing */
    struct pgw_web_settings broken = e->s;
    snprintf(broken.users, sizeof(broken.users), "carol:root:nope");
    assert_int_equal(web_auth_reload(e->a, &broken), -EINVAL);
    assert_int_equal(web_auth_user_count(e->a), 1);
}

/* Many logins: the oldest sessions give way, the newest keep working. */
static void test_session_capacity(void **state)
{
    struct env *e = *state;
    char first[200], last[200], cookie[WEB_AUTH_TOKEN_CAP], csrf[WEB_AUTH_TOKEN_CAP];
    for (int i = 0; i < 300; i++) {
        e->clk.ms += 1;
        assert_int_equal(web_auth_login(e->a, SA("10.0.0.5"), "alice",
                                        "s\xc3\xa9"
                                        "cret",
                                        cookie, sizeof(cookie), csrf, sizeof(csrf)),
                         WEB_AUTH_OK);
        snprintf(i == 0 ? first : last, sizeof(first), WEB_AUTH_COOKIE "=%s", cookie);
    }
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, first, false, NULL, 0),
                     WEB_AUTH_UNAUTHORIZED);
    assert_int_equal(web_auth_check(e->a, SA("10.0.0.6"), NULL, last, false, NULL, 0), WEB_AUTH_OK);
}

/* ---- settings ---- */

static void test_settings_checks(void **state)
{
    (void)state;
    struct pgw_web_settings s = {0};
    struct cfg_errors *e = calloc(1, sizeof(*e));
    make_users(&s);
    assert_true(web_auth_check_settings(&s, "f.conf", e));
    assert_int_equal(e->count, 0);
    /* duplicate user, bad role, bad name, bad hash, bad network: one error each */
    char line[WEB_AUTH_HASH_LINE_MAX];
    assert_int_equal(web_auth_hash_password("x", 1000, line, sizeof(line)), 0);
    snprintf(s.users, sizeof(s.users), "a:admin:%s,a:readonly:%s,b:root:%s,c d:admin:%s,e:admin:xx",
             line, line, line, line);
    snprintf(s.allowlist, sizeof(s.allowlist), "10.0.0.0/33,::1/129,nonsense,10.0.0.1/x,::1");
    assert_false(web_auth_check_settings(&s, "f.conf", e));
    assert_int_equal(e->count, 8);
    for (size_t i = 0; i < e->count; i++) {
        assert_string_equal(e->items[i].where, "f.conf");
        assert_null(strstr(e->items[i].msg, line)); /* no hash in messages */
    }
    assert_non_null(strstr(e->items[0].msg, "'a' is defined twice"));
    assert_non_null(strstr(e->items[1].msg, "role must be admin or readonly"));
    assert_non_null(strstr(e->items[2].msg, "user name"));
    assert_non_null(strstr(e->items[3].msg, "item 5: hash"));
    assert_non_null(strstr(e->items[4].msg, "'10.0.0.0/33'"));
    /* users_file */
    char dir[] = "/tmp/pgw-test-auth-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/users", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# users\n\n  carol:readonly:%s  \r\ndave:admin:%s\nbroken\n", line, line);
    fclose(f);
    memset(&s, 0, sizeof(s));
    snprintf(s.users_file, sizeof(s.users_file), "%s", path);
    e->count = 0;
    assert_false(web_auth_check_settings(&s, "f.conf", e));
    assert_int_equal(e->count, 1);
    assert_non_null(strstr(e->items[0].msg, ":5: must look like name:role:"));
    f = fopen(path, "w");
    fprintf(f, "carol:readonly:%s\ndave:admin:%s\n", line, line);
    fclose(f);
    e->count = 0;
    assert_true(web_auth_check_settings(&s, "f.conf", e));
    struct web_auth *a = web_auth_new(&s);
    assert_non_null(a);
    assert_int_equal(web_auth_user_count(a), 2);
    char h[512];
    basic("dave", "x", h, sizeof(h));
    assert_int_equal(web_auth_check(a, SA("10.0.0.1"), h, NULL, true, NULL, 0), WEB_AUTH_OK);
    web_auth_free(a);
    unlink(path);
    snprintf(s.users_file, sizeof(s.users_file), "%s", path);
    assert_false(web_auth_check_settings(&s, "f.conf", e));
    assert_null(web_auth_new(&s));
    /* a device that never ends (or a folder) is refused, not read forever */
    static const char *const not_files[] = {"/dev/zero", "/tmp"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(s.users_file, sizeof(s.users_file), "%s", not_files[i]);
        e->count = 0;
        assert_false(web_auth_check_settings(&s, "f.conf", e));
        assert_int_equal(e->count, 1);
        assert_non_null(strstr(e->items[0].msg, "not a regular file"));
    }
    rmdir(dir);
    free(e);
}

/* The whole config path: [web] keys through settings_load. */
static void test_settings_keys(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgw-test-auth-XXXXXX", path[64], line[WEB_AUTH_HASH_LINE_MAX];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/pgwarden.conf", dir);
    assert_int_equal(web_auth_hash_password("x", 1000, line, sizeof(line)), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "[node]\nname = n1\n[etcd]\nscope = s\n[postgresql]\ndata_dir = /d\n"
            "[web]\nusers = alice:admin:%s , bob:readonly:%s\nallowlist = 10.0.0.0/8, ::1\n"
            "session_timeout = 10m\ntls_max_connections = 5\n",
            line, line);
    fclose(f);
    struct pgw_config *c = calloc(1, sizeof(*c));
    struct cfg_errors *e = calloc(1, sizeof(*e));
    bool ok = settings_load(path, NULL, c, e);
    if (!ok)
        cfg_errors_print(e, stderr);
    assert_true(ok);
    assert_int_equal(c->web.session_timeout_ms, 600000);
    assert_int_equal(c->web.tls_max_connections, 5);
    assert_int_equal(c->web.tls_handshake_timeout_ms, 10000);
    assert_int_equal(c->web.verify_client, PGW_VERIFY_NONE);
    const struct cfg_key *k = cfg_find(settings_keys, settings_nkeys, "web", "users");
    char shown[64];
    cfg_format_value(k, c, shown, sizeof(shown));
    assert_string_equal(shown, "***");
    /* a bad users item is a config error */
    f = fopen(path, "w");
    fprintf(f,
            "[node]\nname = n1\n[etcd]\nscope = s\n[postgresql]\ndata_dir = /d\n"
            "[web]\nusers = alice:boss:%s\nverify_client = required\n",
            line);
    fclose(f);
    e->count = 0;
    assert_false(settings_load(path, NULL, c, e));
    assert_int_equal(e->count, 2);
    assert_non_null(strstr(e->items[0].msg, "verify_client"));
    assert_non_null(strstr(e->items[1].msg, "role must be"));
    unlink(path);
    rmdir(dir);
    free(c);
    free(e);
}

int main(void)
{
    log_setup(LOG_LVL_ERROR, "test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbkdf2_vectors),
        cmocka_unit_test(test_pbkdf2_matches_mbedtls),
        cmocka_unit_test(test_hash_line_round_trip),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_basic_parsing),
        cmocka_unit_test_setup_teardown(test_basic_auth_roles, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_cache, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, env_setup, env_teardown),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_no_users_loopback_only),
        cmocka_unit_test_setup_teardown(test_sessions, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_session_capacity, env_setup, env_teardown),
        cmocka_unit_test(test_settings_checks),
        cmocka_unit_test(test_settings_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
