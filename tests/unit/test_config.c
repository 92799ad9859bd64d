/* Unit tests of the config reader (platform/config) and pgwarden's key table (agent/settings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/settings.h"
#include "platform/config.h"
#include "platform/log.h"

/* ---- a test table with every type ---------------------------------------------------------- */

struct tcfg {
    char name[16];
    long long count;
    bool flag;
    uint64_t timeout_ms;
    uint64_t buf;
    int mode;
    struct cfg_addr addr;
    struct cfg_addr addr0;
    char list[32];
    char secret[24];
    char opt[32];
    char req[32];
};

#define AT(f) .offset = offsetof(struct tcfg, f), .size = sizeof(((struct tcfg *)NULL)->f)

static const struct cfg_key tkeys[] = {
    {.section = "main", .name = "name", .type = CFG_STR, AT(name), .def = "x"},
    {.section = "main",
     .name = "count",
     .type = CFG_INT,
     AT(count),
     .def = "10",
     .min = 1,
     .max = 100,
     .flags = CFG_RELOADABLE},
    {.section = "main", .name = "flag", .type = CFG_BOOL, AT(flag), .def = "false"},
    {.section = "main",
     .name = "timeout",
     .type = CFG_DURATION,
     AT(timeout_ms),
     .def = "5s",
     .min = 100,
     .max = 3600000},
    {.section = "main", .name = "buf", .type = CFG_SIZE, AT(buf), .def = "1MiB"},
    {.section = "main",
     .name = "mode",
     .type = CFG_ENUM,
     AT(mode),
     .def = "safe",
     .enum_values = "fast|safe|off"},
    {.section = "main", .name = "addr", .type = CFG_ADDR, AT(addr), .def = "127.0.0.1:80"},
    {.section = "main", .name = "list", .type = CFG_LIST, AT(list), .def = "a,b"},
    {.section = "more",
     .name = "addr0",
     .type = CFG_ADDR,
     AT(addr0),
     .def = "h:0",
     .min = 0,
     .max = 65535},
    {.section = "more",
     .name = "secret",
     .type = CFG_STR,
     AT(secret),
     .flags = CFG_SECRET | CFG_OPTIONAL | CFG_RELOADABLE},
    {.section = "more", .name = "opt", .type = CFG_STR, AT(opt), .flags = CFG_OPTIONAL},
    {.section = "more", .name = "req", .type = CFG_STR, AT(req)},
};
static const size_t ntkeys = sizeof(tkeys) / sizeof(tkeys[0]);

/* ---- fixtures and helpers ------------------------------------------------------------------ */

#include "tests/unit/cfg_fixture.h"

/* Loads text with the test table (defaults + file + required). */
static bool tload(struct fx *f, const char *text, struct tcfg *c)
{
    write_file(f->path, text);
    memset(c, 0, sizeof(*c));
    return cfg_load(tkeys, ntkeys, c, f->path, NULL, &f->e);
}

/* Asserts the text form of [section] name in c. */
static void assert_fmt(const char *section, const char *name, const struct tcfg *c,
                       const char *want)
{
    char out[512];
    const struct cfg_key *k = cfg_find(tkeys, ntkeys, section, name);
    assert_non_null(k);
    assert_int_equal(cfg_format_value(k, c, out, sizeof(out)), (int)strlen(want));
    assert_string_equal(out, want);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_valid_file_all_types(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    assert_true(tload(f,
                      "[main]\nname = hello\ncount = 42\nflag = yes\ntimeout = 250ms\n"
                      "buf = 512KiB\nmode = OFF\naddr = [::1]:5432\nlist = x , y,z\n"
                      "[more]\naddr0 = 0.0.0.0:0\nsecret = s3\nopt = o\nreq = r\n",
                      &c));
    assert_count(f, 0);
    assert_string_equal(c.name, "hello");
    assert_int_equal(c.count, 42);
    assert_true(c.flag);
    assert_int_equal(c.timeout_ms, 250);
    assert_int_equal(c.buf, 512 * 1024);
    assert_int_equal(c.mode, 2);
    assert_string_equal(c.addr.host, "::1");
    assert_int_equal(c.addr.port, 5432);
    assert_string_equal(c.list, "x,y,z");
    assert_string_equal(c.addr0.host, "0.0.0.0");
    assert_int_equal(c.addr0.port, 0);
    assert_string_equal(c.secret, "s3");
    assert_string_equal(c.opt, "o");
    assert_string_equal(c.req, "r");
}

static void test_defaults(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    memset(&c, 0x5a, sizeof(c));
    assert_true(cfg_defaults(tkeys, ntkeys, &c, &f->e));
    assert_string_equal(c.name, "x");
    assert_int_equal(c.count, 10);
    assert_false(c.flag);
    assert_int_equal(c.timeout_ms, 5000);
    assert_int_equal(c.buf, 1048576);
    assert_int_equal(c.mode, 1);
    assert_string_equal(c.addr.host, "127.0.0.1");
    assert_int_equal(c.addr.port, 80);
    assert_string_equal(c.list, "a,b");
    assert_string_equal(c.secret, ""); /* no default: zeroed */
    assert_string_equal(c.req, "");
}

static void test_comments_quotes_escapes(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    assert_true(tload(f,
                      "\xEF\xBB\xBF# comment\r\n; another\r\n\r\n  [main]  # trailing\r\n"
                      "  name = \"a #b\"   # real comment\r\n"
                      "list = p#q, r # comment\n"
                      "[more]\nreq = \" q\\\"x\\\\y\\nz \"\nopt = value ; not a comment\n"
                      "secret = \"\"\n",
                      &c));
    assert_string_equal(c.name, "a #b");
    assert_string_equal(c.list, "p#q,r");
    assert_string_equal(c.req, " q\"x\\y\nz ");
    assert_string_equal(c.opt, "value ; not a comment");
    assert_string_equal(c.secret, "");

    f->e.count = 0;
    assert_false(tload(f, "[more]\nreq = \"open\nopt = \"x\" y\nsecret = \"\\t\"\n", &c));
    assert_count(f, 4);
    assert_error(f, 0, 2, "missing closing quote");
    assert_error(f, 1, 3, "after the closing quote");
    assert_error(f, 2, 4, "unknown escape");
    assert_error(f, 3, 0, "missing required key 'req'");
}

static void test_unknown_key_hint(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f, "[ha]\ntll = 10s\nzzzzzz = 1\n[node]\nscope = x\n", NULL, &s));
    assert_count(f, 3);
    assert_error(f, 0, 8, "unknown key 'tll' in [ha] (did you mean 'ttl'?)");
    assert_error(f, 1, 9, "unknown key 'zzzzzz' in [ha]");
    assert_null(strstr(f->e.items[1].msg, "did you mean"));
    assert_error(f, 2, 11, "did you mean 'scope' in [etcd]?");
}

static void test_unknown_section(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f, "[hq]\nttl = 10s\nbogus = 1\n[zzzzzzzz]\n", NULL, &s));
    assert_count(f, 2); /* keys under an unknown section are not reported again */
    assert_error(f, 0, 7, "unknown section [hq] (did you mean [ha]?)");
    assert_error(f, 1, 10, "unknown section [zzzzzzzz]");
}

static void test_wrong_type(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f, "[ha]\nttl = abc\nnofailover = maybe\n", NULL, &s));
    assert_count(f, 2);
    assert_error(f, 0, 8, "[ha] ttl: invalid duration 'abc'");
    assert_error(f, 1, 9, "invalid boolean 'maybe'");
}

static void test_out_of_range(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f, "[proxy]\nmax_connections = 0\n[ha]\nttl = 1s\n", NULL, &s));
    assert_count(f, 2);
    assert_error(f, 0, 8, "out of range (must be between 1 and 100000)");
    assert_error(f, 1, 10, "out of range (must be between 2s and 1h)");
    f->e.count = 0;
    assert_true(sload(f, "[proxy]\nmax_connections = 100000\n", NULL, &s));
    assert_int_equal(s.proxy.max_connections, 100000);
}

static void test_duplicate_key(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f, "[ha]\nttl = 20s\n[ha]\nttl = 30s\n", NULL, &s));
    assert_count(f, 1);
    assert_error(f, 0, 10, "duplicate key 'ttl' in [ha] (first set on line 8)");
}

static void test_missing_required(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    write_file(f->path, "[node]\nname = pg1\n[postgresql]\ndata_dir = /d\n");
    assert_false(settings_load(f->path, NULL, &s, &f->e));
    assert_count(f, 1);
    assert_error(f, 0, 0, "missing required key 'scope' in [etcd] (or set PGWARDEN_ETCD_SCOPE)");

    /* an explicitly empty required value is an error at its line */
    struct tcfg c;
    f->e.count = 0;
    assert_false(tload(f, "[more]\nreq =\n", &c));
    assert_count(f, 2);
    assert_error(f, 0, 2, "value must not be empty");
    assert_error(f, 1, 0, "missing required key 'req'");
}

static void test_all_errors_reported(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f,
                       "[ha]\n"
                       "loop_wait = 1s\n"
                       "ttl = soon\n" /* line 9 */
                       "[proxy]\n"
                       "rw_listen = 127.0.0.1:5000\n"
                       "ro_listen = 127.0.0.1:99999\n" /* line 12 */
                       "# fine\n"
                       "[web]\n"
                       "lisen = 127.0.0.1:8008\n", /* line 15 */
                       NULL, &s));
    assert_count(f, 3);
    assert_error(f, 0, 9, "invalid duration");
    assert_error(f, 1, 12, "invalid port");
    assert_error(f, 2, 15, "did you mean 'listen'?");

    char buf[2048] = "";
    FILE *m = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(m);
    cfg_errors_print(&f->e, m);
    fclose(m);
    char line1[512];
    snprintf(line1, sizeof(line1), "%s:9: [ha] ttl: invalid duration 'soon'", f->path);
    assert_non_null(strstr(buf, line1));
}

static void test_many_errors_overflow(void **state)
{
    struct fx *f = *state;
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof(text), "[main]\n");
    for (int i = 0; i < 70; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "nope%d = 1\n", i);
    struct tcfg c;
    assert_false(tload(f, text, &c));
    assert_count(f, CFG_ERRORS_MAX);
    assert_true(f->e.overflow);
    char buf[65536] = "";
    FILE *m = fmemopen(buf, sizeof(buf), "w");
    assert_non_null(m);
    cfg_errors_print(&f->e, m);
    fclose(m);
    assert_non_null(strstr(buf, "more than 64 errors"));
}

static void test_env_override(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    char *env[] = {"PATH=/bin",
                   "PGWARDEN_MAIN_COUNT=7",
                   "pgwarden_main_flag=on",
                   "PGWARDEN_MAIN_COUNT=9",
                   "PGWARDEN_MORE_REQ=from env",
                   NULL};
    write_file(f->path, "[main]\ncount = 5\nflag = false\n[more]\nreq = from file\n");
    memset(&c, 0, sizeof(c));
    assert_true(cfg_load(tkeys, ntkeys, &c, f->path, env, &f->e));
    assert_int_equal(c.count, 7);           /* env wins over the file; the first definition wins */
    assert_false(c.flag);                   /* lower-case names are not config variables */
    assert_string_equal(c.req, "from env"); /* values are verbatim: no quotes or comments */
    /* env alone can provide a required key */
    memset(&c, 0, sizeof(c));
    char *env2[] = {"PGWARDEN_MORE_REQ=r", NULL};
    assert_true(cfg_load(tkeys, ntkeys, &c, NULL, env2, &f->e));
    assert_string_equal(c.req, "r");
}

static void test_env_unknown_warns(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    char *env[] = {"PGWARDEN_MAIN_CONT=5", "PGWARDEN_CONFIG=/etc/x", "PGWARDEN_MORE_REQ=r", NULL};
    /* capture stderr to see the warning */
    char logpath[128];
    snprintf(logpath, sizeof(logpath), "%s/stderr", f->dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *lf = fopen(logpath, "w+");
    assert_non_null(lf);
    dup2(fileno(lf), 2);
    memset(&c, 0, sizeof(c));
    bool ok = cfg_load(tkeys, ntkeys, &c, NULL, env, &f->e);
    dup2(saved, 2);
    close(saved);
    char out[4096] = "";
    rewind(lf);
    size_t n = fread(out, 1, sizeof(out) - 1, lf);
    out[n] = '\0';
    fclose(lf);
    unlink(logpath);
    assert_true(ok);
    assert_count(f, 0);
    assert_non_null(strstr(out, "name=PGWARDEN_MAIN_CONT hint=PGWARDEN_MAIN_COUNT"));
    assert_null(strstr(out, "PGWARDEN_CONFIG"));
}

static void test_env_bad_value(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    char *env[] = {"PGWARDEN_PROXY_MAX_CONNECTIONS=0", "PGWARDEN_HA_TTL= 10s", NULL};
    assert_false(sload(f, "", env, &s));
    assert_count(f, 2);
    assert_string_equal(f->e.items[0].where, "env PGWARDEN_PROXY_MAX_CONNECTIONS");
    assert_non_null(strstr(f->e.items[0].msg, "out of range"));
    assert_string_equal(f->e.items[1].where, "env PGWARDEN_HA_TTL");
}

static void test_missing_file(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(settings_load("/nonexistent/pgwarden.conf", NULL, &s, &f->e));
    assert_true(f->e.count >= 1);
    assert_string_equal(f->e.items[0].where, "/nonexistent/pgwarden.conf");
    assert_string_equal(f->e.items[0].msg,
                        "cannot read config file /nonexistent/pgwarden.conf: No such file or "
                        "directory");
    f->e.count = 0;
    struct tcfg c;
    assert_false(cfg_load_file(tkeys, ntkeys, &c, f->dir, &f->e)); /* a directory */
    assert_count(f, 1);
    assert_non_null(strstr(f->e.items[0].msg, "Is a directory"));
}

struct seen {
    int applied, restart;
};

static void count_change(const struct cfg_key *k, bool applied, void *arg)
{
    struct seen *s = arg;
    assert_int_equal(applied, (k->flags & CFG_RELOADABLE) != 0);
    if (applied)
        s->applied++;
    else
        s->restart++;
}

static void test_reload_diff_generic(void **state)
{
    struct fx *f = *state;
    struct tcfg cur, next;
    assert_true(tload(f, "[more]\nreq = r\n", &cur));
    assert_true(tload(f, "[main]\ncount = 11\nname = other\n[more]\nreq = r\nsecret = x\n", &next));
    struct seen s = {0};
    assert_int_equal(cfg_diff_reload(tkeys, ntkeys, &cur, &next, count_change, &s), 3);
    assert_int_equal(s.applied, 2); /* count, secret */
    assert_int_equal(s.restart, 1); /* name */
    assert_int_equal(cur.count, 11);
    assert_string_equal(cur.secret, "x");
    assert_string_equal(cur.name, "x"); /* not reloadable: unchanged */
}

static void test_secrets(void **state)
{
    struct fx *f = *state;
    /* a bad secret value is reported without the value, from the file and from env */
    struct tcfg c;
    char *env[] = {"PGWARDEN_MORE_SECRET=envsecretenvsecretenvsecret", NULL};
    write_file(f->path, "[more]\nreq = r\nsecret = topsecrettopsecrettopsecret\n");
    assert_false(cfg_load(tkeys, ntkeys, &c, f->path, env, &f->e));
    assert_count(f, 2);
    assert_error(f, 0, 3, "value too long");
    for (size_t i = 0; i < f->e.count; i++) {
        assert_null(strstr(f->e.items[i].msg, "topsecret"));
        assert_null(strstr(f->e.items[i].msg, "envsecret"));
    }

    /* a password inside a bad non-secret value (a URL) is masked in the message */
    f->e.count = 0;
    assert_false(tload(f, "[main]\naddr = http://u:pa55word@h:1/x\n[more]\nreq = r\n", &c));
    assert_count(f, 1);
    assert_error(f, 0, 2, "u:***@h");
    assert_null(strstr(f->e.items[0].msg, "pa55word"));
    struct pgw_config s2;
    f->e.count = 0;
    assert_false(sload(f, "[etcd]\nendpoints = ftp://root:pa55word@h:2379\n", NULL, &s2));
    assert_count(f, 1);
    assert_null(strstr(f->e.items[0].msg, "pa55word"));
    assert_error(f, 0, 0, "'ftp://root:***@h:2379' is not an http:// or https:// URL");
}

static void test_duration_size_units(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t ms;
    } dur[] = {{"10s", 10000},  {"500ms", 500}, {"2m", 120000},
               {"1h", 3600000}, {"7", 7000},    {"10 s", 10000},
               {"0", 0},        {"3MS", 3},     {"5124095576030h", 5124095576030ULL * 3600000ULL}};
    for (size_t i = 0; i < sizeof(dur) / sizeof(dur[0]); i++) {
        uint64_t v = 1;
        if (!cfg_parse_duration_ms(dur[i].in, &v) || v != dur[i].ms)
            fail_msg("duration '%s' gave %llu", dur[i].in, (unsigned long long)v);
    }
    static const char *const bad_dur[] = {"",
                                          "s",
                                          "1.5s",
                                          "-1s",
                                          "10x",
                                          "1 h m",
                                          "+1",
                                          " 1s",
                                          "99999999999999999999h",
                                          "5124095576031h",
                                          "18446744073709551616ms"};
    for (size_t i = 0; i < sizeof(bad_dur) / sizeof(bad_dur[0]); i++) {
        uint64_t v = 0;
        if (cfg_parse_duration_ms(bad_dur[i], &v))
            fail_msg("duration '%s' accepted as %llu", bad_dur[i], (unsigned long long)v);
    }
    static const struct {
        const char *in;
        uint64_t b;
    } sz[] = {{"1MiB", 1048576},    {"512KiB", 524288}, {"1GiB", 1073741824},
              {"1MB", 1000000},     {"1kB", 1000},      {"100", 100},
              {"2TiB", 2ULL << 40}, {"8 B", 8},         {"18446744073709551615", UINT64_MAX}};
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
        uint64_t v = 1;
        if (!cfg_parse_size(sz[i].in, &v) || v != sz[i].b)
            fail_msg("size '%s' gave %llu", sz[i].in, (unsigned long long)v);
    }
    static const char *const bad_sz[] = {"1.5MiB",         "1 XB", "MiB", "18446744073709551616",
                                         "17179869184GiB", "-1"};
    for (size_t i = 0; i < sizeof(bad_sz) / sizeof(bad_sz[0]); i++) {
        uint64_t v = 0;
        if (cfg_parse_size(bad_sz[i], &v))
            fail_msg("size '%s' accepted as %llu", bad_sz[i], (unsigned long long)v);
    }
}

static void test_overflow_in_file(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f,
                       "[ha]\nttl = 99999999999999999999h\nmaximum_lag_on_failover = "
                       "17179869184GiB\n",
                       NULL, &s));
    assert_count(f, 2);
    assert_error(f, 0, 8, "duration too large");
    assert_error(f, 1, 9, "size too large");
}

static void test_addr_parsing(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *in, *host;
        unsigned port;
        const char *formatted;
    } good[] = {
        {"127.0.0.1:5432", "127.0.0.1", 5432, "127.0.0.1:5432"},
        {"[::1]:5432", "::1", 5432, "[::1]:5432"},
        {"[fe80::1%eth0]:1", "fe80::1%eth0", 1, "[fe80::1%eth0]:1"},
        {"db-1.example.com:65535", "db-1.example.com", 65535, "db-1.example.com:65535"},
    };
    const struct cfg_key *k = cfg_find(tkeys, ntkeys, "main", "addr");
    assert_non_null(k);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[256];
        struct tcfg c;
        snprintf(text, sizeof(text), "[main]\naddr = %s\n[more]\nreq = r\n", good[i].in);
        if (!tload(f, text, &c))
            fail_msg("'%s' rejected: %s", good[i].in, f->e.items[0].msg);
        assert_string_equal(c.addr.host, good[i].host);
        assert_int_equal(c.addr.port, good[i].port);
        assert_fmt("main", "addr", &c, good[i].formatted);
    }
    static const char *const bad[] = {"localhost",   "::1:5432", "h:0",      "h:65536",
                                      "h:-1",        "h:abc",    ":5432",    "[::1]5432",
                                      "[]:5432",     "h:5432x",  "h:+5432",  "[zz::1]:5",
                                      "999.1.1.1:5", "a b:5",    "[::1%]:5", "[1.2.3.4]:5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        struct tcfg c;
        f->e.count = 0;
        snprintf(text, sizeof(text), "[main]\naddr = %s\n[more]\nreq = r\n", bad[i]);
        if (tload(f, text, &c))
            fail_msg("'%s' accepted", bad[i]);
        assert_count(f, 1);
        assert_error(f, 0, 2, "[main] addr:");
    }
    /* the IPv6 hint, and port 0 where the table allows it */
    struct tcfg c;
    f->e.count = 0;
    assert_false(tload(f, "[main]\naddr = ::1:5432\n[more]\nreq = r\n", &c));
    assert_error(f, 0, 2, "needs brackets");
    f->e.count = 0;
    assert_true(tload(f, "[more]\naddr0 = [::]:0\nreq = r\n", &c));
    assert_int_equal(c.addr0.port, 0);
}

static void test_lists_bools_enums(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    assert_true(tload(f,
                      "[main]\nlist = \" one ,two,  three \"\nflag = ON\nmode = Fast\n"
                      "[more]\nreq = r\n",
                      &c));
    assert_string_equal(c.list, "one,two,three");
    assert_true(c.flag);
    assert_int_equal(c.mode, 0);
    assert_int_equal(cfg_list_count(c.list), 3);
    const char *pos = c.list, *item;
    size_t len;
    assert_true(cfg_list_next(&pos, &item, &len));
    assert_true(cfg_list_next(&pos, &item, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(item, "two", 3);
    assert_true(cfg_list_next(&pos, &item, &len));
    assert_false(cfg_list_next(&pos, &item, &len));
    assert_fmt("main", "mode", &c, "fast");

    f->e.count = 0;
    assert_false(tload(f,
                       "[main]\nlist = a,,b\nmode = slow\nflag = 2\n"
                       "name = 0123456789abcdef\ncount = 12x\n[more]\nreq = r\n",
                       &c));
    assert_count(f, 5);
    assert_error(f, 0, 2, "empty item in list");
    assert_error(f, 1, 3, "expected one of fast|safe|off");
    assert_error(f, 2, 4, "invalid boolean");
    assert_error(f, 3, 5, "value too long (at most 15 bytes)");
    assert_error(f, 4, 6, "invalid integer '12x'");
    f->e.count = 0;
    assert_false(tload(f, "[main]\ncount = 99999999999999999999\n[more]\nreq = r\n", &c));
    assert_error(f, 0, 2, "integer too large");
    assert_string_equal(c.list, "a,b"); /* a bad value leaves the previous one */
    f->e.count = 0;
    assert_false(tload(f, "[main]\nlist = a,\nlist2 = 1\n[more]\nreq = r\n", &c));
    assert_error(f, 0, 2, "empty item");
    f->e.count = 0;
    assert_false(
        tload(f, "[main]\nlist = aaaaaaaaaa,bbbbbbbbbb,cccccccccc,dd\n[more]\nreq = r\n", &c));
    assert_error(f, 0, 2, "list too long");
}

static void test_syntax_errors(void **state)
{
    struct fx *f = *state;
    struct tcfg c;
    assert_false(
        tload(f, "name = x\n[main]\njust words\nTTL = 1\n[Main]\n[main\n[more]\nreq=r\n", &c));
    assert_count(f, 5);
    assert_error(f, 0, 1, "outside of any [section]");
    assert_error(f, 1, 3, "expected 'key = value'");
    assert_error(f, 2, 4, "invalid key name 'TTL'");
    assert_error(f, 3, 5, "invalid section name 'Main'");
    assert_error(f, 4, 6, "malformed section header");
}

static void test_long_line(void **state)
{
    struct fx *f = *state;
    char *text = malloc(6000);
    assert_non_null(text);
    int n = snprintf(text, 6000, "[main]\nname = ");
    memset(text + n, 'x', 5000);
    snprintf(text + n + 5000, 6000 - (size_t)n - 5000, "\ncount = 7\n[more]\nreq = r\n");
    struct tcfg c;
    bool ok = tload(f, text, &c);
    free(text);
    assert_false(ok);
    assert_count(f, 1);
    assert_error(f, 0, 2, "line too long (more than 4096 characters)");
    assert_int_equal(c.count, 7); /* reading went on after the long line */

    /* exactly 4096 characters (with CRLF) is fine for the reader */
    char *ok_text = malloc(4200);
    assert_non_null(ok_text);
    n = snprintf(ok_text, 4200, "[more]\nreq = ");
    memset(ok_text + n, 'y', (size_t)(4096 - n + 7));
    snprintf(ok_text + 4096 + 7, 4200 - 4096 - 7, "\r\n");
    f->e.count = 0;
    ok = tload(f, ok_text, &c);
    free(ok_text);
    assert_false(ok);
    assert_count(f, 2); /* the reader took the line; the value is too long for the key */
    assert_error(f, 0, 2, "value too long (at most 31 bytes)");

    /* 4097 characters is one too many */
    char *long_text = malloc(4200);
    assert_non_null(long_text);
    n = snprintf(long_text, 4200, "[more]\nreq = ");
    memset(long_text + n, 'y', (size_t)(4097 - n + 7));
    snprintf(long_text + 4097 + 7, 4200 - 4097 - 7, "\n");
    f->e.count = 0;
    ok = tload(f, long_text, &c);
    free(long_text);
    assert_false(ok);
    assert_count(f, 2);
    assert_error(f, 0, 2, "line too long");
    assert_error(f, 1, 0, "missing required key 'req'");
}

static void test_format_round_trip(void **state)
{
    struct fx *f = *state;
    struct tcfg a, b;
    assert_true(tload(f,
                      "[main]\ntimeout = 90s\nbuf = 1536KiB\ncount = 55\nflag = 1\n"
                      "addr = [::1]:1\nlist = \" a , b\"\n[more]\nreq = \"r r\"\n",
                      &a));
    assert_fmt("main", "timeout", &a, "90s");
    assert_fmt("main", "buf", &a, "1536KiB");
    assert_fmt("main", "count", &a, "55");
    assert_fmt("main", "flag", &a, "true");
    assert_fmt("main", "mode", &a, "safe");
    assert_fmt("main", "list", &a, "a,b");
    assert_fmt("more", "addr0", &a, "h:0");
    /* every value's text form parses back to the same value */
    struct cfg_errors e = {0};
    memset(&b, 0, sizeof(b));
    assert_true(cfg_defaults(tkeys, ntkeys, &b, &e));
    for (size_t i = 0; i < ntkeys; i++) {
        char out[256], env[128], var[512];
        assert_true(cfg_format_value(&tkeys[i], &a, out, sizeof(out)) >= 0);
        assert_true(cfg_env_name(&tkeys[i], env, sizeof(env)));
        snprintf(var, sizeof(var), "%s=%s", env, out);
        char *envp[] = {var, NULL};
        if (!cfg_load_env(tkeys, ntkeys, &b, envp, &e))
            fail_msg("%s did not parse back: %s", var, e.items[0].msg);
    }
    assert_int_equal(cfg_diff_reload(tkeys, ntkeys, &a, &b, NULL, NULL), 0);
    b.count++;
    assert_int_equal(cfg_diff_reload(tkeys, ntkeys, &a, &b, NULL, NULL), 1);
}

static void test_table_checks(void **state)
{
    struct fx *f = *state;
    static const struct cfg_key broken[] = {
        {.section = "a", .name = "Bad", .type = CFG_STR, .size = 8, .def = "x"},
        {.section = "a", .name = "n", .type = CFG_INT, .offset = 0},
        {.section = "a", .name = "s", .type = CFG_STR, .size = 8, .def = "x"},
        {.section = "a", .name = "s", .type = CFG_STR, .size = 8, .def = "y"},
        {.section = "a", .name = "i", .type = CFG_INT, .size = 4, .def = "1"},
        {.section = "a", .name = "d", .type = CFG_DURATION, .def = "1s", .min = 5000, .max = 9000},
        {.section = "a", .name = "e", .type = CFG_ENUM, .def = "x", .enum_values = "x||y"},
    };
    char buf[64];
    assert_false(cfg_defaults(broken, sizeof(broken) / sizeof(broken[0]), buf, &f->e));
    assert_count(f, 6);
    for (size_t i = 0; i < f->e.count; i++)
        assert_string_equal(f->e.items[i].where, "table");
    assert_non_null(strstr(f->e.items[1].msg, "may lack a default"));
    assert_non_null(strstr(f->e.items[2].msg, "same name"));
    assert_non_null(strstr(f->e.items[3].msg, "does not match the type"));
    assert_non_null(strstr(f->e.items[4].msg, "bad default"));
    assert_non_null(strstr(f->e.items[5].msg, "bad enum_values"));
}

int main(void)
{
    log_setup(LOG_LVL_WARN, "test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_file_all_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comments_quotes_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_errors_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_errors_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_unknown_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_diff_generic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_bad_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_size_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_in_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addr_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists_bools_enums, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
