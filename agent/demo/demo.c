/* `pgwarden demo`: prepares the folder, starts etcd and the nodes, waits for the cluster, prints
 * how to use it, supervises until SIGINT/SIGTERM, then stops everything. */
#include "agent/demo/demo.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "platform/log.h"
#include "platform/loop.h"

enum {
    TICK_MS = 500,
    ETCD_START_MS = 60000,  /* etcd members must be healthy by then */
    SLOW_READY_MS = 180000, /* a cluster not ready by then gets a hint (the wait goes on) */
    WATCH_EVERY = 4,        /* ticks between two looks at the running cluster */
    ENV_MAX = 48,
    ENV_CAP = 512,
    TAIL_LINES = 15,
};

enum phase { PH_ETCD, PH_NODES, PH_RUNNING };

struct demo {
    struct demo_opts o;
    struct demo_state st;
    struct demo_user u;
    struct loop *loop;
    struct demo_proc etcd[DEMO_NODES];
    struct demo_proc node[DEMO_NODES];
    char exe[PATH_MAX];
    char env_buf[8][ENV_CAP];
    char *env[ENV_MAX];
    enum phase phase;
    uint64_t phase_ms; /* when the phase began */
    unsigned ticks;
    bool reused;
    bool slow_warned;
    bool failed;   /* the demo ends because of a failure, not a signal */
    bool stopping; /* loop_stop() was called: the current iteration does nothing more */
    struct demo_view view;
    char last_summary[sizeof(((struct demo_view *)NULL)->summary)];
    char leader[PGW_NAME_MAX];
};

/* ---- preparation ---- */

static bool executable(const char *path, const char *hint)
{
    if (access(path, X_OK) == 0)
        return true;
    fprintf(stderr, "pgwarden demo: %s: %s; %s\n", path, strerror(errno), hint);
    return false;
}

static bool programs_present(const struct demo_opts *o)
{
    static const char *const pg_tools[] = {"postgres", "initdb", "pg_ctl", "pg_basebackup",
                                           "pg_rewind"};
    bool ok = executable(o->etcd, "install Debian's etcd-server (apt-get install etcd-server) "
                                  "or pass --etcd PATH");
    for (size_t i = 0; i < sizeof(pg_tools) / sizeof(pg_tools[0]) && ok; i++) {
        char path[PGW_PATH_MAX];
        ok = demo_path(path, sizeof(path), "%s/%s", o->bin_dir, pg_tools[i]) &&
             executable(path, "install PostgreSQL 15 (apt-get install postgresql-15) or pass "
                              "--bin-dir DIR");
    }
    return ok;
}

/* A small fixed environment for the servers: no PGWARDEN_* override from ours can leak in. */
static void build_env(struct demo *d)
{
    size_t n = 0, b = 0;
    struct utsname un;
    d->env[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    d->env[n++] = "LANG=C.UTF-8";
    snprintf(d->env_buf[b], ENV_CAP, "HOME=%s", d->u.home);
    d->env[n++] = d->env_buf[b++];
    snprintf(d->env_buf[b], ENV_CAP, "USER=%s", d->u.name);
    d->env[n++] = d->env_buf[b++];
    snprintf(d->env_buf[b], ENV_CAP, "LOGNAME=%s", d->u.name);
    d->env[n++] = d->env_buf[b++];
    if (uname(&un) == 0 && strcmp(un.machine, "aarch64") == 0)
        d->env[n++] = "ETCD_UNSUPPORTED_ARCH=arm64"; /* etcd 3.4 refuses arm64 without it */
    for (char **e = environ; *e && n + 1 < ENV_MAX; e++) {
        if (strncmp(*e, "ASAN_", 5) == 0 || strncmp(*e, "UBSAN_", 6) == 0 ||
            strncmp(*e, "LSAN_", 5) == 0 || strncmp(*e, "TZ=", 3) == 0)
            d->env[n++] = *e;
    }
    d->env[n] = NULL;
}

/* Folder, lock, state (new or reused), member folders and configs. The lock fd, or -1. */
static int prepare(struct demo *d, int *exit_code)
{
    char state_path[PGW_PATH_MAX], etcd_data[PGW_PATH_MAX];
    *exit_code = DEMO_EX_CANTCREAT;
    int lock = demo_lock(d->o.dir, &d->u);
    if (lock < 0) {
        if (lock == -EBUSY)
            *exit_code = DEMO_EX_TEMPFAIL;
        return -1;
    }
    if (!demo_path(state_path, sizeof(state_path), "%s/%s", d->o.dir, DEMO_STATE_FILE) ||
        !demo_path(etcd_data, sizeof(etcd_data), "%s/etcd/e1.etcd", d->o.dir))
        goto fail;
    if (d->o.reset && access(state_path, F_OK) == 0) {
        if (demo_wipe(d->o.dir) < 0)
            goto fail;
        printf("demo: --reset: removed the previous demo in %s\n", d->o.dir);
    }
    int rc = demo_state_load(state_path, &d->st);
    if (rc == 0) {
        struct demo_ports before[DEMO_NODES];
        int moved = 0;
        memcpy(before, d->st.port, sizeof(before));
        if (demo_ports_assign(&d->st, true, &moved) < 0)
            goto fail;
        for (int i = 0; i < DEMO_NODES; i++) {
            if (before[i].etcd_peer != d->st.port[i].etcd_peer && access(etcd_data, F_OK) == 0) {
                fprintf(stderr,
                        "pgwarden demo: port %lld (etcd member e%d) is in use, and the etcd "
                        "cluster in %s is bound to it: free it, or start over with --reset\n",
                        before[i].etcd_peer, i + 1, d->o.dir);
                goto fail;
            }
        }
        d->reused = true;
        printf("demo: reusing the demo in %s from a previous run: same ports and passwords, the "
               "cluster resumes with its data (--reset starts over)\n",
               d->o.dir);
        if (moved)
            printf("demo: %d port%s of the previous run %s busy and moved\n", moved,
                   moved == 1 ? "" : "s", moved == 1 ? "was" : "were");
    } else if (rc == -ENOENT) {
        if (demo_state_new(&d->st) < 0)
            goto fail;
        printf("demo: new demo in %s\n", d->o.dir);
    } else {
        fprintf(stderr, "pgwarden demo: %s is damaged; start over with --reset\n", state_path);
        goto fail;
    }
    if (demo_state_save(state_path, &d->st) < 0)
        goto fail;
    if (d->u.drop && chown(state_path, d->u.uid, d->u.gid) != 0)
        fprintf(stderr, "pgwarden demo: chown %s: %s\n", state_path, strerror(errno));
    if (demo_make_dirs(d->o.dir, &d->u) < 0 || demo_write_configs(&d->o, &d->st, &d->u) < 0 ||
        !demo_user_can_use(&d->u, d->o.dir, d->exe))
        goto fail;
    *exit_code = 0;
    return lock;
fail:
    close(lock);
    return -1;
}

/* ---- starting ---- */

static bool start_etcd(struct demo *d)
{
    char cluster[512] = "", data[PGW_PATH_MAX], cwd[PGW_PATH_MAX], client[64], peer[64];
    size_t len = 0;
    for (int i = 0; i < DEMO_NODES; i++)
        len += (size_t)snprintf(cluster + len, sizeof(cluster) - len, "%se%d=http://127.0.0.1:%lld",
                                i ? "," : "", i + 1, d->st.port[i].etcd_peer);
    if (!demo_path(cwd, sizeof(cwd), "%s/etcd", d->o.dir))
        return false;
    printf("demo: starting etcd members e1..e%d (logs in %s/logs/)\n", DEMO_NODES, d->o.dir);
    for (int i = 0; i < DEMO_NODES; i++) {
        struct demo_proc *p = &d->etcd[i];
        snprintf(p->name, sizeof(p->name), "etcd e%d", i + 1);
        snprintf(client, sizeof(client), "http://127.0.0.1:%lld", d->st.port[i].etcd_client);
        snprintf(peer, sizeof(peer), "http://127.0.0.1:%lld", d->st.port[i].etcd_peer);
        char name[16];
        snprintf(name, sizeof(name), "e%d", i + 1);
        if (!demo_path(data, sizeof(data), "%s/etcd/e%d.etcd", d->o.dir, i + 1) ||
            !demo_path(p->log, sizeof(p->log), "%s/logs/e%d.log", d->o.dir, i + 1))
            return false;
        const char *argv[] = {d->o.etcd,
                              "--name",
                              name,
                              "--data-dir",
                              data,
                              "--listen-client-urls",
                              client,
                              "--advertise-client-urls",
                              client,
                              "--listen-peer-urls",
                              peer,
                              "--initial-advertise-peer-urls",
                              peer,
                              "--initial-cluster",
                              cluster,
                              "--initial-cluster-state",
                              "new",
                              "--initial-cluster-token",
                              DEMO_ETCD_TOKEN,
                              NULL};
        if (demo_proc_start(p, argv, d->env, cwd, &d->u) < 0)
            return false;
    }
    return true;
}

static bool start_nodes(struct demo *d)
{
    char conf[PGW_PATH_MAX], cwd[PGW_PATH_MAX];
    printf("demo: etcd is healthy; starting nodes n1..n%d (pgwarden run, PostgreSQL 15 as the %s "
           "user)%s\n",
           DEMO_NODES, d->u.name,
           d->reused ? "" : "; the first start runs initdb and two base backups");
    for (int i = 0; i < DEMO_NODES; i++) {
        struct demo_proc *p = &d->node[i];
        snprintf(p->name, sizeof(p->name), "node n%d", i + 1);
        if (!demo_path(conf, sizeof(conf), "%s/n%d.conf", d->o.dir, i + 1) ||
            !demo_path(cwd, sizeof(cwd), "%s/n%d", d->o.dir, i + 1) ||
            !demo_path(p->log, sizeof(p->log), "%s/logs/n%d.log", d->o.dir, i + 1))
            return false;
        const char *argv[] = {d->exe, "run", "-c", conf, NULL};
        if (demo_proc_start(p, argv, d->env, cwd, &d->u) < 0)
            return false;
    }
    return true;
}

/* ---- supervision (loop callbacks) ---- */

static void fail(struct demo *d, const char *why)
{
    fprintf(stderr, "pgwarden demo: %s\n", why);
    d->failed = true;
    d->stopping = true;
    loop_stop(d->loop);
}

static void on_stop_signal(struct loop *l, int signo, void *arg)
{
    struct demo *d = arg;
    d->stopping = true;
    printf("\ndemo: %s received\n", signo == SIGINT ? "interrupt" : strsignal(signo));
    loop_stop(l);
}

static struct demo_proc *find_proc(struct demo *d, pid_t pid)
{
    for (int i = 0; i < DEMO_NODES; i++) {
        if (d->node[i].pid == pid)
            return &d->node[i];
        if (d->etcd[i].pid == pid)
            return &d->etcd[i];
    }
    return NULL;
}

/* Reaps every exited child: ours are reported (and never restarted), orphans of the servers
 * (reparented to us as their subreaper) are just reaped. */
static void on_child(struct loop *l, int signo, void *arg)
{
    (void)l;
    (void)signo;
    struct demo *d = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct demo_proc *p = find_proc(d, pid);
        if (!p || p->exited)
            continue;
        p->exited = true;
        p->status = status;
        char how[96];
        demo_proc_describe(p, how, sizeof(how));
        bool is_etcd = p >= d->etcd && p < d->etcd + DEMO_NODES;
        fprintf(stderr,
                "pgwarden demo: %s (pid %d) %s unexpectedly; it is not restarted (%s). "
                "Ctrl-C stops the demo.\n",
                p->name, (int)pid, how,
                is_etcd ? "the cluster keeps working while a majority of etcd runs"
                        : "the other nodes take over");
        demo_proc_tail(p, TAIL_LINES);
    }
    int nodes_left = 0;
    for (int i = 0; i < DEMO_NODES; i++)
        nodes_left += d->node[i].pid > 0 && !d->node[i].exited;
    if (d->phase != PH_ETCD && nodes_left == 0)
        fail(d, "every node has exited; stopping the demo");
}

static void enter(struct demo *d, enum phase ph)
{
    d->phase = ph;
    d->phase_ms = loop_now_ms(d->loop);
}

static void tick_etcd(struct demo *d)
{
    int healthy = 0;
    for (int i = 0; i < DEMO_NODES; i++) {
        if (d->etcd[i].exited) {
            fail(d, "an etcd member exited while starting (see its log above)");
            return;
        }
        healthy += demo_etcd_healthy(d->st.port[i].etcd_client);
    }
    if (healthy == DEMO_NODES) {
        if (!start_nodes(d))
            fail(d, "cannot start the nodes");
        else
            enter(d, PH_NODES);
        return;
    }
    if (loop_now_ms(d->loop) - d->phase_ms > ETCD_START_MS) {
        for (int i = 0; i < DEMO_NODES; i++)
            demo_proc_tail(&d->etcd[i], TAIL_LINES);
        fail(d, "etcd did not become healthy within a minute (logs above)");
    }
}

static void tick_nodes(struct demo *d)
{
    demo_view_read(&d->st, &d->view);
    if (strcmp(d->view.summary, d->last_summary) != 0) {
        printf("demo: waiting for the cluster: %s\n", d->view.summary);
        snprintf(d->last_summary, sizeof(d->last_summary), "%s", d->view.summary);
    }
    if (demo_view_ready(&d->view)) {
        snprintf(d->leader, sizeof(d->leader), "%s", d->view.leader_name);
        demo_print_banner(stdout, &d->o, &d->st, &d->view, d->exe);
        enter(d, PH_RUNNING);
        return;
    }
    if (!d->slow_warned && loop_now_ms(d->loop) - d->phase_ms > SLOW_READY_MS) {
        d->slow_warned = true;
        fprintf(stderr,
                "pgwarden demo: the cluster is still not ready after %d minutes; the nodes' logs "
                "are in %s/logs/ (still waiting; Ctrl-C stops)\n",
                SLOW_READY_MS / 60000, d->o.dir);
    }
}

/* Tells about leader changes (a switchover, a killed leader...). */
static void tick_running(struct demo *d)
{
    if (++d->ticks % WATCH_EVERY != 0)
        return;
    demo_view_read(&d->st, &d->view);
    if (strcmp(d->view.leader_name, d->leader) == 0)
        return;
    if (d->view.leader_name[0])
        printf("demo: %s is now the primary%s%s%s; its postmaster: %s/%s/data/postmaster.pid\n",
               d->view.leader_name, d->leader[0] ? " (was " : "", d->leader,
               d->leader[0] ? ")" : "", d->o.dir, d->view.leader_name);
    else
        printf("demo: no primary at the moment (%s was; a failover is under way?)\n", d->leader);
    snprintf(d->leader, sizeof(d->leader), "%s", d->view.leader_name);
}

static void on_tick(struct loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    struct demo *d = arg;
    if (d->stopping)
        return;
    switch (d->phase) {
    case PH_ETCD:
        tick_etcd(d);
        break;
    case PH_NODES:
        tick_nodes(d);
        break;
    case PH_RUNNING:
        tick_running(d);
        break;
    }
}

/* ---- main ---- */

static int leader_index(const struct demo *d)
{
    for (int i = 0; i < DEMO_NODES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i + 1);
        if (strcmp(name, d->leader) == 0)
            return i;
    }
    return -1;
}

static int run(struct demo *d)
{
    static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
    d->loop = loop_new();
    if (!d->loop)
        return DEMO_EX_SOFTWARE;
    bool ok = loop_add_signal(d->loop, SIGCHLD, on_child, d) == 0;
    for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
        ok = ok && loop_add_signal(d->loop, stop_signals[i], on_stop_signal, d) == 0;
    ok = ok && loop_add_timer(d->loop, TICK_MS, TICK_MS, on_tick, d) != 0;
    if (!ok) {
        fprintf(stderr, "pgwarden demo: cannot set up the event loop\n");
        loop_free(d->loop);
        return DEMO_EX_SOFTWARE;
    }
    /* PostgreSQL daemonizes under pg_ctl: as the subreaper, we get what its agent leaves behind. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        fprintf(stderr, "pgwarden demo: cannot become a subreaper: %s\n", strerror(errno));
    enter(d, PH_ETCD);
    if (!start_etcd(d))
        d->failed = true;
    else if (loop_run(d->loop) < 0)
        d->failed = true;
    int killed =
        demo_stop_all(d->node, d->etcd, d->o.dir, leader_index(d), loop_signal_fd(d->loop));
    loop_free(d->loop);
    printf("demo: stopped%s; the data stays in %s (run again to resume, --reset to start over)\n",
           killed ? " (some processes had to be killed)" : "", d->o.dir);
    return d->failed ? 1 : 0;
}

int demo_main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_setup(LOG_LVL_WARN, "demo");
    struct demo *d = calloc(1, sizeof(*d));
    if (!d) {
        fprintf(stderr, "pgwarden demo: out of memory\n");
        return DEMO_EX_SOFTWARE;
    }
    int rc = demo_parse_args(argc, argv, &d->o);
    if (rc != 0) {
        free(d);
        return rc < 0 ? 0 : rc;
    }
    if (!realpath("/proc/self/exe", d->exe)) {
        fprintf(stderr, "pgwarden demo: cannot find my own executable: %s\n", strerror(errno));
        free(d);
        return DEMO_EX_SOFTWARE;
    }
    if (!programs_present(&d->o)) {
        free(d);
        return DEMO_EX_UNAVAILABLE;
    }
    if (demo_user_resolve(&d->u) < 0) {
        free(d);
        return DEMO_EX_UNAVAILABLE;
    }
    signal(SIGPIPE, SIG_IGN);
    int lock = prepare(d, &rc);
    if (lock < 0) {
        free(d);
        return rc;
    }
    build_env(d);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "pgwarden demo: cannot initialise libcurl\n");
        rc = DEMO_EX_SOFTWARE;
    } else {
        rc = run(d);
        curl_global_cleanup();
    }
    close(lock);
    explicit_bzero(&d->st, sizeof(d->st));
    free(d);
    return rc;
}
