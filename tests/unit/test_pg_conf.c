/* Unit tests for agent/pg configuration: quoting, include file, pg_hba, passfile, slot names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "agent/pg/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

enum { BUF = 65536 };

static void instance(struct pg_instance *pg)
{
    memset(pg, 0, sizeof(*pg));
    snprintf(pg->bin_dir, sizeof(pg->bin_dir), "/usr/lib/postgresql/15/bin");
    snprintf(pg->data_dir, sizeof(pg->data_dir), "/var/lib/pgwarden/data");
    snprintf(pg->run_dir, sizeof(pg->run_dir), "/var/lib/pgwarden/state/pg");
    snprintf(pg->log_file, sizeof(pg->log_file), "/var/lib/pgwarden/state/postgresql.log");
    snprintf(pg->listen_host, sizeof(pg->listen_host), "10.0.0.5");
    pg->port = 5433;
    snprintf(pg->name, sizeof(pg->name), "node-1");
    snprintf(pg->superuser, sizeof(pg->superuser), "postgres");
    snprintf(pg->superuser_password, sizeof(pg->superuser_password), "Sup3r:secret\\x");
    snprintf(pg->replication_user, sizeof(pg->replication_user), "replicator");
    snprintf(pg->replication_password, sizeof(pg->replication_password), "r3pl'secret");
}

/* The value of `name = '...'` in a rendered conf, unquoted as PostgreSQL's parser does. */
static char *conf_value(const char *conf, const char *name, char *out, size_t cap)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s = ", name);
    const char *p = strstr(conf, key);
    if (!p)
        return NULL;
    p += strlen(key);
    size_t o = 0;
    if (*p != '\'') {
        while (*p && *p != '\n' && o + 1 < cap)
            out[o++] = *p++;
        out[o] = '\0';
        return out;
    }
    for (p++; *p && o + 1 < cap; p++) {
        if (*p == '\'' && p[1] == '\'') {
            out[o++] = '\'';
            p++;
        } else if (*p == '\\' && p[1]) {
            out[o++] = *++p;
        } else if (*p == '\'') {
            break;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

static const char *conninfo_get(PQconninfoOption *opts, const char *key)
{
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, key) == 0)
            return o->val;
    }
    return NULL;
}

static void test_conf_quote(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(pg_conf_quote("plain", out, sizeof(out)), 0);
    assert_string_equal(out, "'plain'");
    assert_int_equal(pg_conf_quote("it's a \\ test", out, sizeof(out)), 0);
    assert_string_equal(out, "'it''s a \\\\ test'");
    assert_int_equal(pg_conf_quote("", out, sizeof(out)), 0);
    assert_string_equal(out, "''");
    assert_int_equal(pg_conf_quote("a\nb", out, sizeof(out)), -EINVAL);
    assert_int_equal(pg_conf_quote("a\tb", out, sizeof(out)), -EINVAL);
    assert_int_equal(pg_conf_quote("0123456789", out, 13), 0);
    assert_int_equal(pg_conf_quote("0123456789", out, 12), -ENOSPC);
    assert_int_equal(pg_conf_quote("''", out, 6), -ENOSPC);
    assert_int_equal(pg_conf_quote("''", out, 7), 0);
    assert_string_equal(out, "''''''");
}

static void test_conninfo_quote(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(pg_conninfo_quote("host.example", out, sizeof(out)), 0);
    assert_string_equal(out, "host.example");
    assert_int_equal(pg_conninfo_quote("two words", out, sizeof(out)), 0);
    assert_string_equal(out, "'two words'");
    assert_int_equal(pg_conninfo_quote("it's\\", out, sizeof(out)), 0);
    assert_string_equal(out, "'it\\'s\\\\'");
    assert_int_equal(pg_conninfo_quote("", out, sizeof(out)), 0);
    assert_string_equal(out, "''");
    assert_int_equal(pg_conninfo_quote("a=b", out, sizeof(out)), 0);
    assert_string_equal(out, "'a=b'");
    assert_int_equal(pg_conninfo_quote("abcdef", out, 6), -ENOSPC);
    assert_int_equal(pg_conninfo_quote("a b", out, 5), -ENOSPC);
}

/* libpq must read back exactly what we meant, whatever the names hold. */
static void test_conninfo_round_trip(void **state)
{
    (void)state;
    struct pg_instance pg;
    instance(&pg);
    snprintf(pg.run_dir, sizeof(pg.run_dir), "/run/pg warden/it's");
    snprintf(pg.name, sizeof(pg.name), "node 'a' \\ b");
    snprintf(pg.replication_user, sizeof(pg.replication_user), "rep user");
    char ci[2048];
    assert_int_equal(
        pg_replication_conninfo_render(&pg, "db1.example", 5432, pg.name, ci, sizeof(ci)), 0);
    assert_null(strstr(ci, "secret"));
    assert_null(strstr(ci, "password"));
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(ci, &errmsg);
    assert_non_null(opts);
    assert_string_equal(conninfo_get(opts, "host"), "db1.example");
    assert_string_equal(conninfo_get(opts, "port"), "5432");
    assert_string_equal(conninfo_get(opts, "user"), "rep user");
    assert_string_equal(conninfo_get(opts, "passfile"), "/run/pg warden/it's/pgpass");
    assert_string_equal(conninfo_get(opts, "application_name"), "node 'a' \\ b");
    assert_null(conninfo_get(opts, "password"));
    assert_string_equal(conninfo_get(opts, "gssencmode"), "disable");
    assert_string_equal(conninfo_get(opts, "connect_timeout"), "5");
    PQconninfoFree(opts);

    assert_int_equal(pg_conninfo_render(&pg, "h", 1, "u", "my db", NULL, ci, sizeof(ci)), 0);
    opts = PQconninfoParse(ci, &errmsg);
    assert_non_null(opts);
    assert_string_equal(conninfo_get(opts, "dbname"), "my db");
    assert_null(conninfo_get(opts, "application_name"));
    PQconninfoFree(opts);
    assert_int_equal(pg_conninfo_render(&pg, "", 1, "u", NULL, NULL, ci, sizeof(ci)), -EINVAL);
    assert_int_equal(pg_conninfo_render(&pg, "h", 1, "u", NULL, NULL, ci, 20), -ENOSPC);
}

static void test_conf_primary(void **state)
{
    (void)state;
    struct pg_instance pg;
    instance(&pg);
    const struct pg_param params[] = {
        {"shared_buffers", "256MB"},
        {"port", "1234"},          /* owned by pgwarden: ignored */
        {"Listen_Addresses", "*"}, /* case-insensitive */
        {"wal_level", "minimal"},  /* would break replication: ignored */
        {"log_line_prefix", "%m [%p] it's "},
        {"max_connections", "250"}, /* overrides the default written above it */
        {"pg_stat_statements.max", "1000"},
    };
    struct pg_conf conf = {.params = params, .nparams = sizeof(params) / sizeof(params[0])};
    char *buf = malloc(BUF), v[512];
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_string_equal(conf_value(buf, "listen_addresses", v, sizeof(v)), "10.0.0.5");
    assert_string_equal(conf_value(buf, "port", v, sizeof(v)), "5433");
    assert_string_equal(conf_value(buf, "unix_socket_directories", v, sizeof(v)),
                        "/var/lib/pgwarden/state/pg");
    assert_string_equal(conf_value(buf, "unix_socket_permissions", v, sizeof(v)), "0700");
    assert_string_equal(conf_value(buf, "wal_level", v, sizeof(v)), "replica");
    assert_string_equal(conf_value(buf, "hot_standby", v, sizeof(v)), "on");
    assert_string_equal(conf_value(buf, "wal_log_hints", v, sizeof(v)), "on");
    assert_string_equal(conf_value(buf, "max_wal_senders", v, sizeof(v)), "10");
    assert_string_equal(conf_value(buf, "max_replication_slots", v, sizeof(v)), "10");
    assert_string_equal(conf_value(buf, "wal_keep_size", v, sizeof(v)), "128MB");
    assert_string_equal(conf_value(buf, "hot_standby_feedback", v, sizeof(v)), "off");
    assert_string_equal(conf_value(buf, "shared_buffers", v, sizeof(v)), "256MB");
    assert_string_equal(conf_value(buf, "log_line_prefix", v, sizeof(v)), "%m [%p] it's ");
    assert_string_equal(conf_value(buf, "pg_stat_statements.max", v, sizeof(v)), "1000");
    assert_string_equal(conf_value(buf, "primary_conninfo", v, sizeof(v)), "");
    assert_string_equal(conf_value(buf, "primary_slot_name", v, sizeof(v)), "");
    assert_string_equal(conf_value(buf, "recovery_target_timeline", v, sizeof(v)), "latest");
    /* Ignored parameters do not appear; the caller's max_connections comes last. */
    assert_null(strstr(buf, "1234"));
    assert_null(strstr(buf, "Listen_Addresses"));
    assert_null(strstr(buf, "minimal"));
    const char *def = strstr(buf, "max_connections = 100");
    const char *over = strstr(buf, "max_connections = '250'");
    assert_non_null(def);
    assert_non_null(over);
    assert_true(over > def);
    assert_null(strstr(buf, "secret"));
    free(buf);
}

static void test_sync_standby_names(void **state)
{
    (void)state;
    char out[128];
    const char *one[] = {"n2"};
    const char *two[] = {"pg-1", "we\"ird"};
    assert_int_equal(pg_sync_names_render(NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(pg_sync_names_render(one, 1, out, sizeof(out)), 0);
    assert_string_equal(out, "1 (\"n2\")");
    assert_int_equal(pg_sync_names_render(two, 2, out, sizeof(out)), 0);
    assert_string_equal(out, "2 (\"pg-1\",\"we\"\"ird\")");
    assert_int_equal(pg_sync_names_render(two, 2, out, 8), -ENOSPC);
    /* pgwarden owns the setting: a dynamic parameter cannot override it */
    struct pg_instance pg;
    instance(&pg);
    const struct pg_param params[] = {{"synchronous_standby_names", "*"}};
    struct pg_conf conf = {.params = params, .nparams = 1, .sync_standby_names = "1 (\"n2\")"};
    char *buf = malloc(BUF), v[512];
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_string_equal(conf_value(buf, "synchronous_standby_names", v, sizeof(v)), "1 (\"n2\")");
    assert_null(strstr(buf, "= '*'"));
    conf.sync_standby_names = NULL;
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_string_equal(conf_value(buf, "synchronous_standby_names", v, sizeof(v)), "");
    free(buf);
}

static void test_conf_standby(void **state)
{
    (void)state;
    struct pg_instance pg;
    instance(&pg);
    const struct pg_param params[] = {{"wal_level", "logical"}};
    struct pg_conf conf = {.standby = true,
                           .upstream_host = "10.0.0.7",
                           .upstream_port = 5432,
                           .slot = "node_1",
                           .max_connections = 50,
                           .max_wal_senders = 5,
                           .max_replication_slots = 6,
                           .wal_keep_size = "1GB",
                           .hot_standby_feedback = true,
                           .params = params,
                           .nparams = 1};
    char *buf = malloc(BUF), v[1024];
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_string_equal(conf_value(buf, "max_connections", v, sizeof(v)), "50");
    assert_string_equal(conf_value(buf, "max_wal_senders", v, sizeof(v)), "5");
    assert_string_equal(conf_value(buf, "max_replication_slots", v, sizeof(v)), "6");
    assert_string_equal(conf_value(buf, "wal_keep_size", v, sizeof(v)), "1GB");
    assert_string_equal(conf_value(buf, "hot_standby_feedback", v, sizeof(v)), "on");
    assert_non_null(strstr(buf, "wal_level = 'logical'"));
    assert_string_equal(conf_value(buf, "primary_slot_name", v, sizeof(v)), "node_1");
    assert_non_null(conf_value(buf, "primary_conninfo", v, sizeof(v)));
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(v, &errmsg);
    assert_non_null(opts);
    assert_string_equal(conninfo_get(opts, "host"), "10.0.0.7");
    assert_string_equal(conninfo_get(opts, "user"), "replicator");
    assert_string_equal(conninfo_get(opts, "application_name"), "node-1");
    assert_string_equal(conninfo_get(opts, "passfile"), "/var/lib/pgwarden/state/pg/pgpass");
    PQconninfoFree(opts);
    assert_null(strstr(buf, "secret"));

    /* A standby without upstream: read-only, no conninfo, no slot. */
    conf.upstream_host = NULL;
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_string_equal(conf_value(buf, "primary_conninfo", v, sizeof(v)), "");
    assert_string_equal(conf_value(buf, "primary_slot_name", v, sizeof(v)), "");
    free(buf);
}

static void test_conf_errors(void **state)
{
    (void)state;
    struct pg_instance pg;
    instance(&pg);
    char *buf = malloc(BUF);
    struct pg_error e;
    const struct pg_param newline[] = {{"log_line_prefix", "a\nport = 1"}};
    struct pg_conf conf = {.params = newline, .nparams = 1};
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    assert_string_equal(e.step, "config");
    assert_non_null(strstr(e.msg, "log_line_prefix"));
    const struct pg_param badname[] = {{"x = 1\ny", "2"}};
    conf.params = badname;
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    const struct pg_param nullval[] = {{"work_mem", NULL}};
    conf.params = nullval;
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    conf = (struct pg_conf){
        .standby = true, .upstream_host = "h", .upstream_port = 1, .slot = "Bad-Slot"};
    assert_int_equal(pg_conf_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    conf.slot = NULL;
    assert_int_equal(pg_conf_render(&pg, &conf, buf, 100, &e), -ENOSPC);
    free(buf);
}

static void test_hba(void **state)
{
    (void)state;
    struct pg_instance pg;
    instance(&pg);
    struct pg_conf conf = {0};
    char *buf = malloc(BUF);
    assert_int_equal(pg_hba_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_non_null(strstr(buf, "\nlocal   all          all "));
    assert_non_null(strstr(buf, "\nlocal   replication  all "));
    assert_non_null(strstr(buf, "host    replication  \"replicator\"         0.0.0.0/0"));
    assert_non_null(strstr(buf, "host    all          all                  ::/0"));
    assert_non_null(strstr(buf, "scram-sha-256\n"));
    assert_null(strstr(buf, "trust\nhost    all          all                  0.0.0.0/0    "
                            "           trust"));

    conf.hba_networks = " 10.0.0.0/8 , 192.168.1.0/24,fe80::/10 ";
    conf.host_auth = "md5";
    assert_int_equal(pg_hba_render(&pg, &conf, buf, BUF, NULL), 0);
    assert_non_null(strstr(buf, "host    replication  \"replicator\"         10.0.0.0/8"));
    assert_non_null(strstr(buf, "host    all          all                  192.168.1.0/24"));
    assert_non_null(strstr(buf, "fe80::/10               md5\n"));
    assert_null(strstr(buf, "0.0.0.0/0"));
    /* Replication lines come before the catch-all lines. */
    assert_true(strstr(buf, "replication  \"replicator\"         fe80::/10") <
                strstr(buf, "all          all                  10.0.0.0/8"));

    struct pg_error e;
    conf.hba_networks = "10.0.0.0/8 trust";
    assert_int_equal(pg_hba_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    conf.hba_networks = "10.0.0.0/8,\"all\"";
    assert_int_equal(pg_hba_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    conf.hba_networks = NULL;
    conf.host_auth = "trust\nhost all all 0.0.0.0/0 trust";
    assert_int_equal(pg_hba_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    conf.host_auth = NULL;
    snprintf(pg.replication_user, sizeof(pg.replication_user), "a\"b");
    assert_int_equal(pg_hba_render(&pg, &conf, buf, BUF, &e), -EINVAL);
    free(buf);
}

static void test_passfile(void **state)
{
    (void)state;
    struct pg_instance pg;
    instance(&pg);
    char buf[512];
    assert_int_equal(pg_passfile_render(&pg, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "*:*:*:replicator:r3pl'secret\n"
                             "*:*:*:postgres:Sup3r\\:secret\\\\x\n");
    pg.replication_password[0] = '\0';
    snprintf(pg.superuser, sizeof(pg.superuser), "ad:min");
    assert_int_equal(pg_passfile_render(&pg, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "*:*:*:ad\\:min:Sup3r\\:secret\\\\x\n");
    pg.superuser_password[0] = '\0';
    assert_int_equal(pg_passfile_render(&pg, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    instance(&pg);
    assert_int_equal(pg_passfile_render(&pg, buf, 20), -ENOSPC);
}

static void test_slot_names(void **state)
{
    (void)state;
    char out[PG_SLOT_NAME_MAX];
    assert_int_equal(pg_slot_name_from_member("pg-node.1", out), 0);
    assert_string_equal(out, "pg_node_1");
    assert_int_equal(pg_slot_name_from_member("Node_A", out), 0);
    assert_string_equal(out, "node_a");
    assert_int_equal(pg_slot_name_from_member("a b", out), 0);
    assert_string_equal(out, "au0032b"); /* Patroni: 'u%04d' of the code point */
    assert_int_equal(pg_slot_name_from_member("z\xc3\xbc", out), 0); /* U+00FC */
    assert_string_equal(out, "zu0252");
    char longname[100];
    memset(longname, 'x', 99);
    longname[99] = '\0';
    assert_int_equal(pg_slot_name_from_member(longname, out), 0);
    assert_int_equal(strlen(out), 63);
    assert_true(pg_slot_name_valid(out));
    assert_int_equal(pg_slot_name_from_member("", out), -EINVAL);
    assert_true(pg_slot_name_valid("node_1"));
    assert_false(pg_slot_name_valid("Node_1"));
    assert_false(pg_slot_name_valid("a-b"));
    assert_false(pg_slot_name_valid(""));
    assert_false(pg_slot_name_valid(longname));
}

static void test_instance_check(void **state)
{
    (void)state;
    struct pg_instance pg;
    struct pg_error e;
    instance(&pg);
    assert_int_equal(pg_instance_check(&pg, &e), 0);
    snprintf(pg.run_dir, sizeof(pg.run_dir), "/var/lib/pgwarden/data/run");
    assert_int_equal(pg_instance_check(&pg, &e), -EINVAL);
    snprintf(pg.run_dir, sizeof(pg.run_dir), "/%0100d", 0);
    assert_int_equal(pg_instance_check(&pg, &e), -ENAMETOOLONG);
    assert_non_null(strstr(e.msg, "socket path"));
    instance(&pg);
    snprintf(pg.run_dir, sizeof(pg.run_dir), "/run/a,b");
    assert_int_equal(pg_instance_check(&pg, &e), -EINVAL);
    instance(&pg);
    snprintf(pg.data_dir, sizeof(pg.data_dir), "relative");
    assert_int_equal(pg_instance_check(&pg, &e), -EINVAL);
    instance(&pg);
    pg.superuser[0] = '\0';
    assert_int_equal(pg_instance_check(&pg, &e), -EINVAL);
    instance(&pg);
    pg.port = 0;
    assert_int_equal(pg_instance_check(&pg, &e), -EINVAL);
}

static void test_instance_from_config(void **state)
{
    (void)state;
    struct pgw_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.node.name, sizeof(cfg.node.name), "n2");
    snprintf(cfg.node.state_dir, sizeof(cfg.node.state_dir), "/var/lib/pgwarden");
    snprintf(cfg.postgresql.bin_dir, sizeof(cfg.postgresql.bin_dir), "/usr/lib/postgresql/15/bin");
    snprintf(cfg.postgresql.data_dir, sizeof(cfg.postgresql.data_dir), "/srv/pg");
    snprintf(cfg.postgresql.listen.host, sizeof(cfg.postgresql.listen.host), "0.0.0.0");
    cfg.postgresql.listen.port = 5432;
    snprintf(cfg.postgresql.superuser, sizeof(cfg.postgresql.superuser), "postgres");
    snprintf(cfg.postgresql.superuser_password, sizeof(cfg.postgresql.superuser_password), "s");
    snprintf(cfg.postgresql.replication_user, sizeof(cfg.postgresql.replication_user), "repl");
    struct pg_instance pg;
    assert_int_equal(pg_instance_init(&pg, &cfg, NULL), 0);
    assert_string_equal(pg.run_dir, "/var/lib/pgwarden/pg");
    assert_string_equal(pg.log_file, "/var/lib/pgwarden/postgresql.log");
    assert_string_equal(pg.listen_host, "0.0.0.0");
    assert_int_equal(pg.port, 5432);
    assert_string_equal(pg.name, "n2");
    assert_string_equal(pg.replication_user, "repl");
    assert_string_equal(pg.superuser_password, "s");
    assert_int_equal(pg.connect_timeout_ms, 3000);
    assert_int_equal(pg.query_timeout_ms, 5000);
    /* The state directory holding the data directory would put the socket inside it. */
    snprintf(cfg.postgresql.data_dir, sizeof(cfg.postgresql.data_dir), "/var/lib/pgwarden");
    assert_int_equal(pg_instance_init(&pg, &cfg, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_quote),
        cmocka_unit_test(test_conninfo_quote),
        cmocka_unit_test(test_conninfo_round_trip),
        cmocka_unit_test(test_conf_primary),
        cmocka_unit_test(test_conf_standby),
        cmocka_unit_test(test_sync_standby_names),
        cmocka_unit_test(test_conf_errors),
        cmocka_unit_test(test_hba),
        cmocka_unit_test(test_passfile),
        cmocka_unit_test(test_slot_names),
        cmocka_unit_test(test_instance_check),
        cmocka_unit_test(test_instance_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
