/* Unit tests of agent/demo: command line, state file round trip, port assignment. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/demo/demo.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* getopt permutes argv: each case parses its own writable copy. */
static int parse(struct demo_opts *o, int argc, const char *const *argv)
{
    static char *copy[16];
    static char store[16][256];
    assert_true(argc < 16);
    for (int i = 0; i < argc; i++) {
        snprintf(store[i], sizeof(store[i]), "%s", argv[i]);
        copy[i] = store[i];
    }
    copy[argc] = NULL;
    return demo_parse_args(argc, copy, o);
}

static void test_args(void **state)
{
    (void)state;
    struct demo_opts o;
    const char *a[] = {"demo"};
    assert_int_equal(parse(&o, ARGC(a), a), 0);
    assert_string_equal(o.dir, DEMO_DEFAULT_DIR);
    assert_string_equal(o.etcd, DEMO_DEFAULT_ETCD);
    assert_string_equal(o.bin_dir, DEMO_DEFAULT_PG_BIN);
    assert_false(o.reset);

    const char *b[] = {"demo",   "--dir",     "/srv/d//",  "--reset",
                       "--etcd", "/opt/etcd", "--bin-dir", "/opt/pg/bin"};
    assert_int_equal(parse(&o, ARGC(b), b), 0);
    assert_string_equal(o.dir, "/srv/d");
    assert_true(o.reset);
    assert_string_equal(o.etcd, "/opt/etcd");
    assert_string_equal(o.bin_dir, "/opt/pg/bin");

    /* A relative folder becomes absolute. */
    char cwd[512], want[600];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/rel/d", cwd);
    const char *c[] = {"demo", "--dir", "rel/d"};
    if (strlen(want) <= 70) {
        assert_int_equal(parse(&o, ARGC(c), c), 0);
        assert_string_equal(o.dir, want);
    }

    const char *bad[][3] = {{"demo", "--bogus", NULL},
                            {"demo", "--dir", "/"},
                            {"demo", "--dir", ""},
                            {"demo", "extra", NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(&o, bad[i][2] ? 3 : 2, bad[i]), DEMO_EX_USAGE);
    char long_dir[128];
    memset(long_dir, 'x', sizeof(long_dir) - 1);
    long_dir[0] = '/';
    long_dir[sizeof(long_dir) - 1] = '\0';
    const char *d[] = {"demo", "--dir", long_dir};
    assert_int_equal(parse(&o, ARGC(d), d), DEMO_EX_USAGE); /* the socket path would not fit */
    const char *h[] = {"demo", "--help"};
    assert_int_equal(parse(&o, ARGC(h), h), -1);
}

static void fill(struct demo_state *st)
{
    memset(st, 0, sizeof(*st));
    for (int i = 0; i < DEMO_NODES; i++) {
        st->port[i] = (struct demo_ports){.etcd_client = 40001 + i,
                                          .etcd_peer = 40011 + i,
                                          .pg = 40021 + i,
                                          .rw = 40031 + i,
                                          .ro = 40041 + i,
                                          .web = 40051 + i};
    }
    snprintf(st->superuser_password, sizeof(st->superuser_password), "Su1234567890abcdefghijkl");
    snprintf(st->replication_password, sizeof(st->replication_password), "Re1234567890");
    snprintf(st->admin_password, sizeof(st->admin_password), "Ad1234567890");
    snprintf(st->admin_hash, sizeof(st->admin_hash), "pbkdf2-sha256$1000$c2FsdHNhbHQ$aGFzaA");
}

static void test_state_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgw-demo-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, DEMO_STATE_FILE);

    struct demo_state a, b;
    assert_int_equal(demo_state_load(path, &b), -ENOENT);
    fill(&a);
    assert_int_equal(demo_state_save(path, &a), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    memset(&b, 0xff, sizeof(b));
    assert_int_equal(demo_state_load(path, &b), 0);
    assert_memory_equal(a.port, b.port, sizeof(a.port));
    assert_string_equal(a.superuser_password, b.superuser_password);
    assert_string_equal(a.replication_password, b.replication_password);
    assert_string_equal(a.admin_password, b.admin_password);
    assert_string_equal(a.admin_hash, b.admin_hash);

    /* A damaged file is reported, not half-used. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[ports]\nn1_pg = 99999\n", f);
    fclose(f);
    assert_int_equal(demo_state_load(path, &b), -EINVAL);

    unlink(path);
    rmdir(dir);
}

static void test_ports_assign(void **state)
{
    (void)state;
    struct demo_state st;
    memset(&st, 0, sizeof(st));
    assert_int_equal(demo_ports_assign(&st, false, NULL), 0);
    long long seen[DEMO_NODES * 6];
    size_t n = 0;
    for (int i = 0; i < DEMO_NODES; i++) {
        const struct demo_ports *p = &st.port[i];
        const long long all[] = {p->etcd_client, p->etcd_peer, p->pg, p->rw, p->ro, p->web};
        for (size_t k = 0; k < 6; k++) {
            assert_true(all[k] > 0 && all[k] <= 65535);
            for (size_t j = 0; j < n; j++)
                assert_true(seen[j] != all[k]); /* never twice */
            seen[n++] = all[k];
        }
    }
    /* Kept where free; a busy one moves and is counted. */
    struct demo_state again = st;
    int moved = -1;
    assert_int_equal(demo_ports_assign(&again, true, &moved), 0);
    assert_int_equal(moved, 0);
    assert_memory_equal(again.port, st.port, sizeof(st.port));
    assert_true(demo_port_free(st.port[0].web));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_ports_assign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
