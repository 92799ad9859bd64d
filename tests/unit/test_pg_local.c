/* Unit tests for agent/pg without PostgreSQL: files it writes, data dir probe, postmaster watch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "agent/pg/pg.h"
#include "platform/clock.h"
#include "platform/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Upper bounds are loose: the arm64 build runs under qemu-user. */
enum { SLACK_MS = 3000 };

struct env {
    char root[64];
    struct pg_instance pg;
};

static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int mode_of(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->root, sizeof(e->root), "/tmp/test_pg_local.XXXXXX");
    assert_non_null(mkdtemp(e->root));
    struct pg_instance *pg = &e->pg;
    snprintf(pg->bin_dir, sizeof(pg->bin_dir), "/usr/lib/postgresql/15/bin");
    snprintf(pg->data_dir, sizeof(pg->data_dir), "%s/data", e->root);
    snprintf(pg->run_dir, sizeof(pg->run_dir), "%s/run", e->root);
    snprintf(pg->log_file, sizeof(pg->log_file), "%s/pg.log", e->root);
    snprintf(pg->listen_host, sizeof(pg->listen_host), "127.0.0.1");
    pg->port = 5999;
    snprintf(pg->name, sizeof(pg->name), "n1");
    snprintf(pg->superuser, sizeof(pg->superuser), "postgres");
    snprintf(pg->superuser_password, sizeof(pg->superuser_password), "su-secret");
    snprintf(pg->replication_user, sizeof(pg->replication_user), "replicator");
    snprintf(pg->replication_password, sizeof(pg->replication_password), "rep-secret");
    pg->connect_timeout_ms = 1000;
    pg->query_timeout_ms = 1000;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->root);
    assert_int_equal(system(cmd), 0);
    free(e);
    return 0;
}

/* A directory that looks like a cluster to pg_datadir_probe. */
static void fake_cluster(const struct pg_instance *pg)
{
    assert_int_equal(mkdir(pg->data_dir, 0700), 0);
    char global[512];
    snprintf(global, sizeof(global), "%s/global", pg->data_dir);
    assert_int_equal(mkdir(global, 0700), 0);
    put(pg->data_dir, "PG_VERSION", "15\n");
    put(global, "pg_control", "x");
    put(pg->data_dir, "postgresql.conf", "# sample\nshared_buffers = 16MB");
}

static void test_probe_and_wipe(void **state)
{
    struct env *e = *state;
    struct pg_instance *pg = &e->pg;
    enum pg_datadir_state ds;
    assert_int_equal(pg_datadir_probe(pg, &ds, NULL), 0);
    assert_int_equal(ds, PG_DATADIR_MISSING);
    assert_int_equal(mkdir(pg->data_dir, 0755), 0);
    assert_int_equal(pg_datadir_probe(pg, &ds, NULL), 0);
    assert_int_equal(ds, PG_DATADIR_EMPTY);
    put(pg->data_dir, "junk", "x");
    assert_int_equal(pg_datadir_probe(pg, &ds, NULL), 0);
    assert_int_equal(ds, PG_DATADIR_OTHER);
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/a", pg->data_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof(sub), "%s/a/b", pg->data_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(sub, "deep", "x");
    char link[512];
    snprintf(link, sizeof(link), "%s/lnk", pg->data_dir);
    assert_int_equal(symlink("/etc", link), 0); /* removed, never followed */
    assert_int_equal(pg_datadir_wipe(pg, NULL), 0);
    assert_int_equal(pg_datadir_probe(pg, &ds, NULL), 0);
    assert_int_equal(ds, PG_DATADIR_EMPTY);
    assert_int_equal(mode_of(e->root, "data"), 0700);
    assert_int_equal(access("/etc", F_OK), 0);
    assert_int_equal(rmdir(pg->data_dir), 0);
    fake_cluster(pg);
    assert_int_equal(pg_datadir_probe(pg, &ds, NULL), 0);
    assert_int_equal(ds, PG_DATADIR_INITIALIZED);
}

static void test_conf_apply(void **state)
{
    struct env *e = *state;
    struct pg_instance *pg = &e->pg;
    struct pg_conf conf = {0};
    struct pg_error err;
    /* Not a cluster. */
    assert_int_equal(pg_conf_apply(pg, &conf, &err), -ENOENT);
    fake_cluster(pg);
    assert_int_equal(pg_conf_apply(pg, &conf, &err), 0);
    char *inc = slurp(pg->data_dir, PG_CONF_FILE);
    assert_non_null(inc);
    assert_non_null(strstr(inc, "port = 5999\n"));
    assert_null(strstr(inc, "secret"));
    free(inc);
    char *hba = slurp(pg->data_dir, "pg_hba.conf");
    assert_non_null(strstr(hba, "\"replicator\""));
    free(hba);
    char *main_conf = slurp(pg->data_dir, "postgresql.conf");
    assert_non_null(strstr(main_conf, "shared_buffers = 16MB\n"));
    assert_non_null(strstr(main_conf, "\ninclude = 'postgresql.pgwarden.conf'\n"));
    free(main_conf);
    assert_int_equal(mode_of(pg->data_dir, PG_CONF_FILE), 0600);
    assert_int_equal(mode_of(pg->data_dir, "pg_hba.conf"), 0600);
    assert_int_equal(mode_of(pg->data_dir, "standby.signal"), -1);
    assert_int_equal(mode_of(e->root, "run"), 0700);
    assert_int_equal(mode_of(pg->run_dir, PG_PASSFILE_NAME), 0600);
    char *pass = slurp(pg->run_dir, PG_PASSFILE_NAME);
    assert_string_equal(pass, "*:*:*:replicator:rep-secret\n*:*:*:postgres:su-secret\n");
    free(pass);

    /* Standby: the signal file appears; the include line is not added twice. */
    conf = (struct pg_conf){
        .standby = true, .upstream_host = "10.1.1.1", .upstream_port = 5432, .slot = "n1"};
    assert_int_equal(pg_conf_apply(pg, &conf, &err), 0);
    assert_int_equal(mode_of(pg->data_dir, "standby.signal"), 0600);
    main_conf = slurp(pg->data_dir, "postgresql.conf");
    const char *first = strstr(main_conf, "include = 'postgresql.pgwarden.conf'");
    assert_non_null(first);
    assert_null(strstr(first + 1, "include = 'postgresql.pgwarden.conf'"));
    free(main_conf);
    inc = slurp(pg->data_dir, PG_CONF_FILE);
    assert_non_null(strstr(inc, "primary_slot_name = 'n1'"));
    assert_non_null(strstr(inc, "host=10.1.1.1"));
    assert_null(strstr(inc, "secret"));
    free(inc);

    /* Back to primary: the signal goes away. A bad parameter leaves the old files. */
    conf = (struct pg_conf){0};
    assert_int_equal(pg_conf_apply(pg, &conf, &err), 0);
    assert_int_equal(mode_of(pg->data_dir, "standby.signal"), -1);
    const struct pg_param bad[] = {{"work_mem", "1\n"}};
    conf.params = bad;
    conf.nparams = 1;
    assert_int_equal(pg_conf_apply(pg, &conf, &err), -EINVAL);
    assert_string_equal(err.step, "config");
    inc = slurp(pg->data_dir, PG_CONF_FILE);
    assert_null(strstr(inc, "work_mem"));
    free(inc);
}

/* ---- postmaster.pid and the watch ---- */

/* A child that calls itself "postgres" and works in dir, like a postmaster. */
static pid_t fake_postmaster(const char *dir)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)prctl(PR_SET_NAME, "postgres", 0, 0, 0);
        if (chdir(dir) < 0)
            _exit(1);
        for (;;)
            pause();
    }
    return pid;
}

static void write_pidfile(const struct pg_instance *pg, pid_t pid)
{
    char text[1024];
    snprintf(text, sizeof(text), "%d\n%s\n1795659443\n%u\n%s\n127.0.0.1\n  0 0\nready   \n",
             (int)pid, pg->data_dir, (unsigned)pg->port, pg->run_dir);
    put(pg->data_dir, "postmaster.pid", text);
}

/* Waits until the child runs as "postgres" in its directory. */
static void wait_ready(const struct pg_instance *pg, struct pg_postmaster *pm)
{
    uint64_t deadline = clock_mono_ms() + SLACK_MS;
    while (pg_postmaster_find(pg, pm, NULL) != 0 && clock_mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(pg_postmaster_find(pg, pm, NULL), 0);
}

static void test_postmaster_find(void **state)
{
    struct env *e = *state;
    struct pg_instance *pg = &e->pg;
    struct pg_postmaster pm;
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -ESRCH); /* no data dir */
    fake_cluster(pg);
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -ESRCH); /* no file */
    put(pg->data_dir, "postmaster.pid", "");
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -ESRCH);
    put(pg->data_dir, "postmaster.pid", "garbage\n");
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -EBADMSG);
    /* Our own pid: alive, but not a postgres process. */
    write_pidfile(pg, getpid());
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -ESRCH);

    pid_t child = fake_postmaster(pg->data_dir);
    write_pidfile(pg, child);
    wait_ready(pg, &pm);
    assert_int_equal(pm.pid, child);
    assert_int_equal(pm.port, 5999);
    assert_true(pm.proc_start > 0);
    assert_true(pg_postmaster_alive(&pm));
    /* Another process with that pid (same pid, other start time) is not it. */
    struct pg_postmaster other = pm;
    other.proc_start++;
    assert_false(pg_postmaster_alive(&other));
    /* A postgres process working in another directory is not ours. */
    pid_t elsewhere = fake_postmaster(e->root);
    write_pidfile(pg, elsewhere);
    usleep(100000);
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -ESRCH);
    kill(elsewhere, SIGKILL);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(elsewhere, NULL, 0), elsewhere);
    assert_int_equal(waitpid(child, NULL, 0), child);
    write_pidfile(pg, child);
    assert_int_equal(pg_postmaster_find(pg, &pm, NULL), -ESRCH); /* dead */
}

struct watch_ctx {
    struct loop *l;
    int fired;
    pid_t pid;
    uint64_t at;
};

static void on_dead(struct pg_watch *w, pid_t pid, void *arg)
{
    struct watch_ctx *c = arg;
    c->fired++;
    c->pid = pid;
    c->at = clock_mono_ms();
    pg_watch_stop(w); /* allowed from the callback */
    loop_stop(c->l);
}

static void on_guard(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    loop_stop(l);
}

/* Kills a fake postmaster and measures how long the watch takes to report it. */
static void watch_death(struct env *e, int poll_ms, bool want_pidfd_possible)
{
    struct pg_instance *pg = &e->pg;
    fake_cluster(pg);
    pid_t child = fake_postmaster(pg->data_dir);
    write_pidfile(pg, child);
    struct pg_postmaster pm;
    wait_ready(pg, &pm);
    struct watch_ctx c = {.l = loop_new()};
    assert_non_null(c.l);
    struct pg_watch *w = pg_watch_start(c.l, &pm, poll_ms, on_dead, &c);
    assert_non_null(w);
    if (!want_pidfd_possible)
        assert_false(pg_watch_uses_pidfd(w));
    /* Nothing fires while it lives. */
    assert_true(loop_run_once(c.l, 150) >= 0);
    assert_int_equal(c.fired, 0);
    uint64_t killed = clock_mono_ms();
    assert_int_equal(kill(child, SIGKILL), 0);
    (void)loop_add_timer(c.l, SLACK_MS, 0, on_guard, NULL);
    assert_int_equal(loop_run(c.l), 0);
    assert_int_equal(c.fired, 1);
    assert_int_equal(c.pid, child);
    assert_true(c.at - killed < (uint64_t)SLACK_MS);
    print_message("    death reported after %llu ms (%s)\n", (unsigned long long)(c.at - killed),
                  poll_ms < 0 ? "poll" : "pidfd or poll");
    assert_int_equal(waitpid(child, NULL, 0), child);
    loop_free(c.l);
}

static void test_watch_pidfd(void **state)
{
    watch_death(*state, 0, true);
}

static void test_watch_poll(void **state)
{
    watch_death(*state, -20, false);
}

static void test_watch_already_gone(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    struct pg_postmaster pm = {.pid = child, .proc_start = 1};
    struct watch_ctx c = {.l = loop_new()};
    struct pg_watch *w = pg_watch_start(c.l, &pm, 0, on_dead, &c);
    assert_non_null(w);
    (void)loop_add_timer(c.l, SLACK_MS, 0, on_guard, NULL);
    assert_int_equal(loop_run(c.l), 0);
    assert_int_equal(c.fired, 1);
    loop_free(c.l);
}

static void test_watch_stop_before_death(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    struct pg_postmaster pm = {.pid = child};
    struct watch_ctx c = {.l = loop_new()};
    struct pg_watch *w = pg_watch_start(c.l, &pm, 0, on_dead, &c);
    assert_non_null(w);
    pg_watch_stop(w);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_true(loop_run_once(c.l, 200) >= 0);
    assert_int_equal(c.fired, 0);
    assert_int_equal(loop_timer_count(c.l), 0);
    loop_free(c.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_and_wipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postmaster_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_pidfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_poll, setup, teardown),
        cmocka_unit_test(test_watch_already_gone),
        cmocka_unit_test(test_watch_stop_before_death),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
