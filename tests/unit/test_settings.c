/* Unit tests of pgwarden's key table and settings (agent/settings) and its example config file. */
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

/* ---- fixtures and helpers ------------------------------------------------------------------ */

#include "tests/unit/cfg_fixture.h"

/* Asserts the text form of [section] name in c. */
static void assert_fmt(const char *section, const char *name, const struct pgw_config *c,
                       const char *want)
{
    char out[512];
    const struct cfg_key *k = cfg_find(settings_keys, settings_nkeys, section, name);
    assert_non_null(k);
    assert_int_equal(cfg_format_value(k, c, out, sizeof(out)), (int)strlen(want));
    assert_string_equal(out, want);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_table_is_valid(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_true(cfg_defaults(settings_keys, settings_nkeys, &s, &f->e));
    assert_count(f, 0);
    assert_true(settings_nkeys > 30);
    /* the [log] level enum has the order of enum log_level */
    const struct cfg_key *k = cfg_find(settings_keys, settings_nkeys, "log", "level");
    assert_non_null(k);
    for (int lvl = LOG_LVL_DEBUG; lvl <= LOG_LVL_ERROR; lvl++) {
        char v[64];
        snprintf(v, sizeof(v), "PGWARDEN_LOG_LEVEL=%s", log_level_name((enum log_level)lvl));
        char *env[] = {v, NULL};
        assert_true(cfg_load_env(settings_keys, settings_nkeys, &s, env, &f->e));
        assert_int_equal(s.log.level, lvl);
    }
    /* passwords are secret, and reloadable keys are the ones the brief allows */
    assert_true(cfg_find(settings_keys, settings_nkeys, "etcd", "password")->flags & CFG_SECRET);
    assert_true(
        cfg_find(settings_keys, settings_nkeys, "postgresql", "replication_password")->flags &
        CFG_SECRET);
    assert_false(cfg_find(settings_keys, settings_nkeys, "proxy", "rw_listen")->flags &
                 CFG_RELOADABLE);
    assert_true(cfg_find(settings_keys, settings_nkeys, "proxy", "hold_timeout")->flags &
                CFG_RELOADABLE);
}

static void test_settings_defaults(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_true(sload(f, "", NULL, &s));
    assert_string_equal(s.node.state_dir, "/var/lib/pgwarden");
    assert_int_equal(s.log.level, LOG_LVL_INFO);
    assert_string_equal(s.etcd.endpoints, "http://127.0.0.1:2379");
    assert_string_equal(s.etcd.namespace, "/service");
    assert_int_equal(s.etcd.request_timeout_ms, 2000);
    assert_string_equal(s.postgresql.bin_dir, "/usr/lib/postgresql/15/bin");
    assert_string_equal(s.postgresql.connect_address.host, "127.0.0.1"); /* = listen */
    assert_int_equal(s.postgresql.connect_address.port, 5432);
    assert_int_equal(s.ha.ttl_ms, 10000);
    assert_int_equal(s.ha.loop_wait_ms, 1000);
    assert_int_equal(s.ha.retry_timeout_ms, 3000);
    assert_int_equal(s.ha.maximum_lag_on_failover, 1048576);
    assert_int_equal(s.proxy.rw_listen.port, 5000);
    assert_int_equal(s.proxy.ro_listen.port, 5001);
    assert_int_equal(s.proxy.max_connections, 1000);
    assert_int_equal(s.web.listen.port, 8008);
    assert_int_equal(s.supervisor.max_restarts, 5);
    assert_int_equal(s.supervisor.restart_window_ms, 60000);
}

static void test_settings_secrets(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_true(sload(f, "[postgresql]\nsuperuser_password = \"hunter2 #x\"\n", NULL, &s));
    assert_string_equal(s.postgresql.superuser_password, "hunter2 #x");
    assert_fmt("postgresql", "superuser_password", &s, "***");
    assert_fmt("postgresql", "replication_password", &s, "");
    assert_fmt("postgresql", "superuser", &s, "postgres");
}

static void test_env_override(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    char *env[] = {"PATH=/bin",
                   "PGWARDEN_HA_TTL=20s",
                   "PGWARDEN_DEMO_DIR=/tmp/x",
                   "PGWARDEN_LOG_LEVEL=debug",
                   "PGWARDEN_ETCD_PASSWORD=pw",
                   "pgwarden_ha_ttl=1h",
                   "PGWARDEN_ETCD_USERNAME=u",
                   NULL};
    assert_true(sload(f, "[ha]\nttl = 10s\n", env, &s));
    assert_int_equal(s.ha.ttl_ms, 20000);
    assert_int_equal(s.log.level, LOG_LVL_DEBUG);
    assert_string_equal(s.etcd.password, "pw");

    /* env alone provides required keys */
    f->e.count = 0;
    char *env2[] = {"PGWARDEN_NODE_NAME=n2", "PGWARDEN_ETCD_SCOPE=s",
                    "PGWARDEN_POSTGRESQL_DATA_DIR=/pg", NULL};
    assert_true(settings_load(NULL, env2, &s, &f->e));
    assert_string_equal(s.node.name, "n2");
}

struct seen {
    int applied, restart;
    char names[8][64];
};

static void record(const struct cfg_key *k, bool applied, void *arg)
{
    struct seen *s = arg;
    int i = s->applied + s->restart;
    if (i < 8)
        snprintf(s->names[i], sizeof(s->names[i]), "%s.%s=%d", k->section, k->name, applied);
    if (applied)
        s->applied++;
    else
        s->restart++;
}

static void test_reload_diff(void **state)
{
    struct fx *f = *state;
    struct pgw_config cur, next;
    assert_true(sload(f, "", NULL, &cur));
    assert_true(sload(f,
                      "[log]\nlevel = warn\n[proxy]\nmax_connections = 7\nrw_listen = "
                      "127.0.0.1:6000\n[ha]\nttl = 20s\n",
                      NULL, &next));
    struct seen s = {0};
    size_t changed = cfg_diff_reload(settings_keys, settings_nkeys, &cur, &next, record, &s);
    assert_int_equal(changed, 4);
    assert_int_equal(s.applied, 3);
    assert_int_equal(s.restart, 1);
    assert_int_equal(cur.log.level, LOG_LVL_WARN);
    assert_int_equal(cur.proxy.max_connections, 7);
    assert_int_equal(cur.ha.ttl_ms, 20000);
    assert_int_equal(cur.proxy.rw_listen.port, 5000); /* needs a restart: not applied */
    assert_string_equal(s.names[0], "log.level=1");
    assert_string_equal(s.names[1], "ha.ttl=1");
    assert_string_equal(s.names[2], "proxy.rw_listen=0");
    assert_string_equal(s.names[3], "proxy.max_connections=1");
    /* second pass: only the non-reloadable key still differs */
    memset(&s, 0, sizeof(s));
    assert_int_equal(cfg_diff_reload(settings_keys, settings_nkeys, &cur, &next, record, &s), 1);
    assert_int_equal(s.restart, 1);
    assert_int_equal(cfg_diff_reload(settings_keys, settings_nkeys, &next, &next, NULL, NULL), 0);
}

static void test_settings_cross_checks(void **state)
{
    struct fx *f = *state;
    struct pgw_config s;
    assert_false(sload(f,
                       "[proxy]\nro_listen = 127.0.0.1:5000\n[web]\nlisten = 0.0.0.0:5432\n"
                       "[node]\nstate_dir = var/lib\n",
                       NULL, &s));
    assert_count(f, 3);
    assert_error(f, 0, 0, "[node] state_dir must be an absolute path");
    assert_error(f, 1, 0, "[postgresql] listen and [web] listen must differ (both use port 5432)");
    assert_error(f, 2, 0, "[proxy] rw_listen and [proxy] ro_listen must differ");

    f->e.count = 0;
    assert_false(sload(f,
                       "[ha]\nttl = 2s\nloop_wait = 1s\nretry_timeout = 1s\n"
                       "[etcd]\nendpoints = 127.0.0.1:2379\nnamespace = service/\n"
                       "[web]\ntls_cert = /c\n",
                       NULL, &s));
    assert_count(f, 7);
    assert_error(f, 0, 0, "[etcd] namespace must look like /service");
    assert_error(f, 1, 0, "'127.0.0.1:2379' is not an http:// or https:// URL");
    assert_error(f, 2, 0, "[web] tls_cert and tls_key must be set together");
    assert_error(f, 3, 0, "ttl (2000ms) must be more than twice loop_wait");
    assert_error(f, 4, 0, "loop_wait + 2 * retry_timeout (3000ms) must not exceed ttl");
    assert_error(f, 5, 0, "fencing_margin");
    assert_error(f, 6, 0, "request_timeout must not exceed");

    f->e.count = 0;
    write_file(f->path, "[node]\nname = pg 1\n[etcd]\nscope = demo\n[postgresql]\n"
                        "data_dir = /d\nlisten = 0.0.0.0:5432\n");
    assert_false(settings_load(f->path, NULL, &s, &f->e));
    assert_count(f, 2);
    assert_error(f, 0, 0, "connect_address must be set when listen is a wildcard");
    assert_error(f, 1, 0, "[node] name 'pg 1' may only contain");

    f->e.count = 0;
    assert_false(sload(f,
                       "[etcd]\npassword = pw\ncert = /c\ncacert = ca.pem\n"
                       "[web]\ntls_ca = /ca\nlisten = [::]:5001\n"
                       "[postgresql]\nconnect_address = 0.0.0.0:5432\n",
                       NULL, &s));
    assert_count(f, 6);
    assert_error(f, 0, 0, "[postgresql] connect_address must not be a wildcard");
    assert_error(f, 1, 0, "[etcd] cacert must be an absolute path");
    assert_error(f, 2, 0, "[etcd] cert and key must be set together");
    assert_error(f, 3, 0, "[web] tls_ca needs tls_cert");
    assert_error(f, 4, 0, "[etcd] password is set but username is not");
    assert_error(f, 5, 0, "[proxy] ro_listen and [web] listen must differ (both use port 5001)");
    for (size_t i = 0; i < f->e.count; i++)
        assert_null(strstr(f->e.items[i].msg, "pw"));

    f->e.count = 0;
    assert_true(sload(f, "[postgresql]\nlisten = 0.0.0.0:5432\nconnect_address = 10.0.0.2:5432\n",
                      NULL, &s));
    assert_string_equal(s.postgresql.connect_address.host, "10.0.0.2");
}

/* Finds the example config: next to the sources, from the repository root or PGW_SRCDIR. */
static void example_path(char *out, size_t cap)
{
    const char *src = getenv("PGW_SRCDIR");
    const char *rel = "platform/pgwarden.conf.example";
    const char *slash = strrchr(__FILE__, '/'); /* .../tests/unit/test_settings.c */
    if (src)
        snprintf(out, cap, "%s/%s", src, rel);
    else if (access(rel, R_OK) == 0 || !slash)
        snprintf(out, cap, "%s", rel);
    else
        snprintf(out, cap, "%.*s/../../%s", (int)(slash - __FILE__), __FILE__, rel);
}

static void test_example_config(void **state)
{
    struct fx *f = *state;
    char path[512];
    example_path(path, sizeof(path));
    struct pgw_config ex, def;
    bool ok = settings_load(path, NULL, &ex, &f->e);
    if (!ok) {
        cfg_errors_print(&f->e, stderr);
        fail_msg("example config %s does not load (run from the repository root or set "
                 "PGW_SRCDIR)",
                 path);
    }
    assert_true(cfg_defaults(settings_keys, settings_nkeys, &def, &f->e));
    /* every key is written out in its section, with the table's default */
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    bool present[CFG_MAX_KEYS] = {false};
    char line[512], section[64] = "";
    while (fgets(line, sizeof(line), fp)) {
        char name[64];
        if (sscanf(line, "[%63[a-z0-9_]]", name) == 1)
            snprintf(section, sizeof(section), "%s", name);
        else if (sscanf(line, "%63[a-z0-9_] =", name) == 1) {
            const struct cfg_key *k = cfg_find(settings_keys, settings_nkeys, section, name);
            assert_non_null(k);
            present[k - settings_keys] = true;
        }
    }
    fclose(fp);
    for (size_t i = 0; i < settings_nkeys; i++) {
        const struct cfg_key *k = &settings_keys[i];
        if (!present[i])
            fail_msg("example config lacks [%s] %s", k->section, k->name);
        if (!k->def)
            continue;
        char a[512], b[512];
        cfg_format_value(k, &ex, a, sizeof(a));
        cfg_format_value(k, &def, b, sizeof(b));
        if (strcmp(a, b) != 0)
            fail_msg("example [%s] %s = %s but the default is %s", k->section, k->name, a, b);
    }
}

int main(void)
{
    log_setup(LOG_LVL_WARN, "test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table_is_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_cross_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
