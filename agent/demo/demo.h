/* demo: `pgwarden demo`, a local three-node cluster (three etcd members, three agents) on loopback.
 */
#ifndef PGW_DEMO_H
#define PGW_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "agent/settings.h"
#include "web/auth.h"

/* `pgwarden demo [--dir DIR] [--reset] [--etcd PATH] [--bin-dir PGBIN]` (argv[0] is "demo").
 * Returns the exit status: 0 after a clean Ctrl-C/SIGTERM stop. */
int demo_main(int argc, char **argv);

/* ---- internals shared by the agent/demo files and the tests ---------------------------------- */

enum {
    DEMO_NODES = 3,
    DEMO_SECRET_CAP = 64, /* generated passwords: DEMO_PW_LEN characters + NUL */
    DEMO_PW_LEN = 24,
    DEMO_EX_USAGE = 64,
    DEMO_EX_UNAVAILABLE = 69, /* a needed program is missing */
    DEMO_EX_SOFTWARE = 70,
    DEMO_EX_CANTCREAT = 73, /* the demo folder is unusable */
    DEMO_EX_TEMPFAIL = 75,  /* another demo runs on the folder */
};

#define DEMO_DEFAULT_DIR    "/var/tmp/pgwarden-demo"
#define DEMO_DEFAULT_ETCD   "/usr/bin/etcd"
#define DEMO_DEFAULT_PG_BIN "/usr/lib/postgresql/15/bin"
#define DEMO_SCOPE          "demo"
#define DEMO_ADMIN_USER     "admin"
#define DEMO_STATE_FILE     "demo.state"
#define DEMO_LOCK_FILE      "demo.lock"
#define DEMO_PASSWORD_FILE  "admin.password"
#define DEMO_ETCD_TOKEN     "pgwarden-demo"

struct demo_opts {
    char dir[PGW_PATH_MAX]; /* absolute */
    bool reset;
    char etcd[PGW_PATH_MAX];    /* etcd executable */
    char bin_dir[PGW_PATH_MAX]; /* PostgreSQL 15 programs */
};

/* The command line into o (defaults filled). 0, or DEMO_EX_USAGE after printing the problem;
 * -1 after printing the help (exit 0). */
int demo_parse_args(int argc, char **argv, struct demo_opts *o);

/* Ports of one member: its etcd member and its pgwarden node. */
struct demo_ports {
    long long etcd_client, etcd_peer, pg, rw, ro, web;
};

/* What a demo folder keeps between runs (DIR/demo.state, 0600). */
struct demo_state {
    struct demo_ports port[DEMO_NODES];
    char superuser_password[DEMO_SECRET_CAP];
    char replication_password[DEMO_SECRET_CAP];
    char admin_password[DEMO_SECRET_CAP];
    char admin_hash[WEB_AUTH_HASH_LINE_MAX];
};

/* Reads path into st. 0, -ENOENT when the file does not exist, -EINVAL when it is malformed
 * (the problems are printed on stderr). */
int demo_state_load(const char *path, struct demo_state *st);
/* Writes st to path (0600, replaced atomically). 0 or -errno (printed). */
int demo_state_save(const char *path, const struct demo_state *st);
/* A fresh state: random passwords, the admin hash, and free ports. 0 or -errno (printed). */
int demo_state_new(struct demo_state *st);

/* ---- ports (ports.c) ---- */

/* True if a TCP server could bind 127.0.0.1:port now. */
bool demo_port_free(long long port);
/* Assigns every port of st: the fixed default of each role when it is free, otherwise a free one
 * picked by the kernel. When keep is true, the ports already in st are kept where they are free.
 * Never hands out a port twice. `changed` (may be NULL) gets the number of ports that moved.
 * 0 or -errno (printed). */
int demo_ports_assign(struct demo_state *st, bool keep, int *changed);

/* ---- the folder (files.c) ---- */

/* Who the servers run as: the postgres user when started as root, else the caller. */
struct demo_user {
    uid_t uid;
    gid_t gid;
    bool drop; /* setgid/setuid in the children */
    char name[PGW_NAME_MAX];
    char home[PGW_PATH_MAX];
};

int demo_user_resolve(struct demo_user *u);

/* Creates dir (0755) and takes its lock (DIR/demo.lock with our PID, flock). Returns the lock
 * fd (close-on-exec, held until exit) or -errno; -EBUSY when another demo holds it (the message
 * with its PID is printed). */
int demo_lock(const char *dir, const struct demo_user *u);
/* Removes everything in dir except the lock file. 0 or -errno (printed). */
int demo_wipe(const char *dir);
/* Creates the folders of the members (0700, owned by u). 0 or -errno (printed). */
int demo_make_dirs(const char *dir, const struct demo_user *u);
/* Writes DIR/nI.conf for every node and checks each with the settings loader, and
 * DIR/admin.password. 0 or -errno (printed). */
int demo_write_configs(const struct demo_opts *o, const struct demo_state *st,
                       const struct demo_user *u);
/* True if u can use dir and run exe (forks a probe that drops to u). Prints the problem. */
bool demo_user_can_use(const struct demo_user *u, const char *dir, const char *exe);
/* snprintf into out; false (printed) if it does not fit. */
bool demo_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- processes (proc.c) ---- */

struct demo_proc {
    char name[32];
    pid_t pid;   /* 0: not running */
    int status;  /* wait status once reaped */
    bool exited; /* reaped */
    char log[PGW_PATH_MAX];
};

/* Starts argv as u (in its own session, default signal mask, stdin /dev/null, stdout and stderr
 * appended to p->log, cwd, environment envp). 0 or -errno (printed, also when exec fails). */
int demo_proc_start(struct demo_proc *p, const char *const *argv, char *const *envp,
                    const char *cwd, const struct demo_user *u);
/* Reaps p if it has exited (WNOHANG). True if it exited now. */
bool demo_proc_reap(struct demo_proc *p);
/* "exited with status 1" / "killed by signal 9" into out. */
void demo_proc_describe(const struct demo_proc *p, char *out, size_t cap);
/* Sends sig to the running processes procs[0..n), then waits up to timeout_ms for them to exit;
 * the stragglers' sessions get SIGKILL. A SIGINT/SIGTERM readable on sig_fd (if >= 0) meanwhile
 * cuts the wait short. Returns the number of processes that needed SIGKILL. */
int demo_proc_stop(struct demo_proc *const *procs, size_t n, int sig, int timeout_ms, int sig_fd);
/* Prints the last lines of p's log on stderr, indented. */
void demo_proc_tail(const struct demo_proc *p, int lines);

/* ---- stopping (stop.c) ---- */

/* Stops the demo in order: the replica nodes, then the leader's node (leader: index or -1), then
 * any PostgreSQL left running in DIR/nI/data, then the etcd members, then any other child left
 * (this process is their subreaper). Prints what it does. Returns the number of processes that
 * had to be killed. */
int demo_stop_all(struct demo_proc *nodes, struct demo_proc *etcd, const char *dir, int leader,
                  int sig_fd);

/* ---- the cluster as seen through the members' APIs (cluster.c) ---- */

/* True if the etcd member answers GET /health with health "true". */
bool demo_etcd_healthy(long long client_port);

struct demo_view {
    int answering;                  /* nodes whose API answered /patroni */
    int primary;                    /* index of the primary node, -1 if none */
    int streaming;                  /* replication connections in state streaming on it */
    int replicas_running;           /* nodes running as replicas */
    char summary[256];              /* "n1: primary (2 streaming), n2: replica, n3: starting" */
    char leader_name[PGW_NAME_MAX]; /* "" when none */
};

/* Asks every node's /patroni. */
void demo_view_read(const struct demo_state *st, struct demo_view *v);
/* A primary whose replicas all stream. */
bool demo_view_ready(const struct demo_view *v);

/* ---- output (banner.c) ---- */

/* Prints the URLs, the login, DATABASE_URL, the etcd endpoints and the "try this" lines. */
void demo_print_banner(FILE *out, const struct demo_opts *o, const struct demo_state *st,
                       const struct demo_view *v, const char *exe);

#endif
