/* PostgreSQL control: decision-free actions on the local PostgreSQL, each bounded by a timeout. */
#ifndef PGW_PG_H
#define PGW_PG_H

/*
 * What this module does: run initdb, pg_ctl, pg_basebackup, pg_rewind, pg_controldata and
 * pg_waldump through platform/spawn (timeout, process-group kill, captured output), query the
 * server through libpq (deadline on connect and on each query), write the configuration files
 * it owns, and watch the postmaster. It never decides a role: agent/ha calls these actions.
 *
 * Returns: 0 on success or a negative errno; the codes each function can return are listed
 * with it. Common ones: -ETIMEDOUT (the tool was killed at its deadline, or a query or connect
 * timed out), -EIO (the tool exited non-zero or SQL failed), -ECONNREFUSED (no connection),
 * -EINVAL (bad argument). Every failure fills *err (which may be NULL) with the step and a
 * message that ends with the tool's last output lines, and is logged once where it happens.
 * Passwords never appear in logs, error texts or files other than the passfile (below).
 *
 * Files (all written atomically: temp file, fsync, rename, fsync of the directory):
 *   <data_dir>/postgresql.pgwarden.conf  every setting pgwarden manages, recovery settings
 *                                       included; `include`d from the end of postgresql.conf,
 *                                       so it takes precedence over postgresql.conf (but
 *                                       postgresql.auto.conf, ALTER SYSTEM, still wins).
 *   <data_dir>/pg_hba.conf              rewritten entirely (see pg_hba_render).
 *   <data_dir>/standby.signal           present exactly when the node is configured standby.
 *   <run_dir>/pgpass                    0600 passfile with the replication and superuser
 *                                       passwords. primary_conninfo and every connection to a
 *                                       peer name it with passfile=, so no password is ever
 *                                       written into the data directory (and so none travels
 *                                       with pg_basebackup, pg_rewind or a backup of it).
 *   <run_dir>/.s.PGSQL.<port>           the server's only unix socket (unix_socket_directories
 *                                       = run_dir, unix_socket_permissions = 0700, run_dir
 *                                       0700): local connections are `trust`, which therefore
 *                                       only the OS user running PostgreSQL (and root) can use.
 *   <log_file>                          the postmaster's stderr (pg_ctl -l); set
 *                                       logging_collector in the dynamic parameters for
 *                                       rotated logs.
 *
 * Process model: PostgreSQL is started with `pg_ctl start -w`. pg_ctl forks the postmaster
 * into its own session (setsid), so killing the agent or its process group never reaches
 * PostgreSQL, and an agent that restarts adopts the running postmaster through
 * pg_postmaster_find() and watches it with pg_watch_start() (a pidfd: the postmaster is not
 * the agent's child, so waitpid cannot be used).
 *
 * Not thread-safe; no global state. Every function may block for at most about its timeout
 * (plus the connect timeout for those that also query the server).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/settings.h"

struct loop;

/* ------------------------------------------------------------------------------------------ */
/* Instance and errors                                                                        */

enum {
    PG_ERRMSG_MAX = 1024,
    PG_SLOT_NAME_MAX = 64, /* 63 characters + NUL */
    PG_LSN_STRLEN = 18,    /* "FFFFFFFF/FFFFFFFF" + NUL */
    PG_HOST_MAX = 256,
};

#define PG_CONF_FILE     "postgresql.pgwarden.conf"
#define PG_PASSFILE_NAME "pgpass"

struct pg_error {
    char step[32];           /* "initdb", "pg_ctl start", "connect", "status query", ... */
    char sqlstate[6];        /* SQLSTATE of a failed statement, "" otherwise */
    char msg[PG_ERRMSG_MAX]; /* one paragraph for humans; secrets redacted */
};

/* What pgwarden needs to drive one local PostgreSQL. Plain data: copy it freely. */
struct pg_instance {
    char bin_dir[PGW_PATH_MAX];
    char data_dir[PGW_PATH_MAX];
    char run_dir[PGW_PATH_MAX];  /* socket, passfile, temp files: 0700, outside data_dir */
    char log_file[PGW_PATH_MAX]; /* pg_ctl -l */
    char listen_host[PG_HOST_MAX];
    uint16_t port;
    char name[PGW_NAME_MAX]; /* member name: application_name of its walreceiver */
    char superuser[PGW_NAME_MAX];
    char superuser_password[PGW_SECRET_MAX];
    char replication_user[PGW_NAME_MAX];
    char replication_password[PGW_SECRET_MAX];
    int connect_timeout_ms; /* libpq connect deadline (default 3000) */
    int query_timeout_ms;   /* statement_timeout and client deadline of status queries (5000) */
    int cancel_fd;          /* > 0: tools are stopped when it becomes readable (-ECANCELED) */
    void (*busy_tick)(void *arg); /* non-NULL: called every second while a tool runs (the HA
                                     loop keeps its etcd lease during a long copy or rewind) */
    void *busy_arg;
};

/* Fills *pg from the configuration: [postgresql] keys, [node] name, run_dir =
 * <state_dir>/pg, log_file = <state_dir>/postgresql.log. Creates nothing.
 * -ENAMETOOLONG if the socket path <run_dir>/.s.PGSQL.<port> does not fit a sockaddr_un,
 * -EINVAL for names PostgreSQL's files cannot hold (quotes, control characters). */
int pg_instance_init(struct pg_instance *pg, const struct pgw_config *cfg, struct pg_error *err);
/* Checks a hand-filled instance like pg_instance_init does. */
int pg_instance_check(const struct pg_instance *pg, struct pg_error *err);

/* Creates run_dir (0700) and rewrites the passfile. Called by every action that needs them;
 * public for callers that connect to peers themselves. */
int pg_run_dir_prepare(const struct pg_instance *pg, struct pg_error *err);

enum pg_datadir_state {
    PG_DATADIR_MISSING,     /* no such directory */
    PG_DATADIR_EMPTY,       /* an empty directory */
    PG_DATADIR_INITIALIZED, /* PG_VERSION and global/pg_control exist */
    PG_DATADIR_OTHER,       /* not empty, but not a PostgreSQL cluster (or a half-made one) */
};
int pg_datadir_probe(const struct pg_instance *pg, enum pg_datadir_state *out,
                     struct pg_error *err);
/* Removes everything inside data_dir (the directory itself stays, mode 0700). -EBUSY if a
 * postmaster is running on it. For a re-clone after a failed rewind. */
int pg_datadir_wipe(const struct pg_instance *pg, struct pg_error *err);

/* ------------------------------------------------------------------------------------------ */
/* LSNs                                                                                       */

/* "16/B374D848" -> 0x16B374D848. -EINVAL on anything else (both halves 1..8 hex digits). */
int pg_lsn_parse(const char *s, uint64_t *out);
/* "%X/%X" like PostgreSQL. buf needs PG_LSN_STRLEN bytes. Returns buf. */
char *pg_lsn_format(uint64_t lsn, char *buf, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Configuration files                                                                        */

struct pg_param {
    const char *name; /* [A-Za-z0-9_.], e.g. "shared_buffers" or "pg_stat_statements.max" */
    const char *value;
};

/* The desired configuration of the node. Zero numbers mean the defaults shown. */
struct pg_conf {
    int max_connections;       /* 100 */
    int max_wal_senders;       /* 10 */
    int max_replication_slots; /* 10 */
    const char *wal_keep_size; /* "128MB" */
    bool hot_standby_feedback;
    /* Dynamic parameters (etcd config postgresql.parameters), written after the settings above
     * and therefore overriding them. Parameters pgwarden must own are ignored with a warning:
     * listen_addresses, port, unix_socket_*, data_directory, config/hba/ident_file, include*,
     * primary_conninfo, primary_slot_name, hot_standby, and wal_level other than
     * replica/logical. A value with control characters (newline...) is an error. */
    const struct pg_param *params;
    size_t nparams;
    /* synchronous_standby_names, owned by pgwarden in synchronous mode (a value in params is
     * ignored): NULL or "" = no synchronous standby (asynchronous commits). */
    const char *sync_standby_names;
    /* Role: a standby gets standby.signal and recovery_target_timeline = 'latest'; with an
     * upstream host also primary_conninfo (application_name = member name, passfile) and
     * primary_slot_name when slot is set. A standby without upstream stays read-only. */
    bool standby;
    const char *upstream_host; /* NULL or "": none */
    uint16_t upstream_port;
    const char *slot; /* primary_slot_name, [a-z0-9_]{1,63}; NULL or "": none */
    /* pg_hba.conf: comma-separated networks allowed over TCP ("0.0.0.0/0,::/0" when NULL) and
     * their auth method ("scram-sha-256" when NULL). */
    const char *hba_networks;
    const char *host_auth;
};

/* Renders postgresql.pgwarden.conf. Pure. -EINVAL (bad value/name/slot), -ENOSPC. */
int pg_conf_render(const struct pg_instance *pg, const struct pg_conf *conf, char *buf, size_t cap,
                   struct pg_error *err);
/* Renders pg_hba.conf:
 *   local all all trust / local replication all trust       (socket: 0700 dir, see above)
 *   host replication "<replication_user>" <net> <auth>       for each network
 *   host all all <net> <auth>                                for each network
 * Pure. -EINVAL (bad network or a user name with '"'), -ENOSPC. */
int pg_hba_render(const struct pg_instance *pg, const struct pg_conf *conf, char *buf, size_t cap,
                  struct pg_error *err);
/* Renders the passfile: "*:*:*:<user>:<password>" for the replication user and the superuser
 * (':' and '\' escaped), skipping empty passwords. Pure. -ENOSPC. */
int pg_passfile_render(const struct pg_instance *pg, char *buf, size_t cap);
/* A libpq conninfo "host=.. port=.. user=.. dbname=.. passfile=<run_dir>/pgpass
 * application_name=.. gssencmode=disable ..." with values quoted as libpq wants; never a
 * password. dbname and application_name may be NULL. Pure. -EINVAL, -ENOSPC. */
int pg_conninfo_render(const struct pg_instance *pg, const char *host, uint16_t port,
                       const char *user, const char *dbname, const char *application_name,
                       char *buf, size_t cap);
/* A replication conninfo to host:port as the replication user, with connect and TCP keepalive
 * timeouts (a source that vanished ends the stream in seconds): a standby's primary_conninfo
 * (application_name = the member name) or a copy's. */
int pg_replication_conninfo_render(const struct pg_instance *pg, const char *host, uint16_t port,
                                   const char *application_name, char *buf, size_t cap);
/* Quotes one value: postgresql.conf style ('it''s', backslash doubled) or libpq conninfo
 * style (quoted only when needed: 'it\'s'). -EINVAL for control characters (conf only),
 * -ENOSPC. Pure. */
int pg_conf_quote(const char *in, char *out, size_t cap);
/* synchronous_standby_names for the standbys names[0..n) (application_name = member name):
 * "" when n = 0, else 'N ("a","b")' with N = n (every listed standby must confirm; identifiers
 * double-quoted, '"' doubled). Pure. -ENOSPC. */
int pg_sync_names_render(const char *const *names, size_t n, char *out, size_t cap);
int pg_conninfo_quote(const char *in, char *out, size_t cap);
/* Patroni's slot_name_from_member_name: lowercase, '-' and '.' -> '_', any other character
 * outside [a-z0-9_] -> "u%04d" of its code point, cut at 63 characters. -EINVAL for "". */
int pg_slot_name_from_member(const char *member, char out[PG_SLOT_NAME_MAX]);
bool pg_slot_name_valid(const char *slot);

/* Writes postgresql.pgwarden.conf, pg_hba.conf and the passfile, adds the include line to
 * postgresql.conf if missing, creates or removes standby.signal. Takes effect on reload for
 * reloadable parameters (primary_conninfo and primary_slot_name are, since PG 13), else on
 * restart; creating or removing standby.signal needs a restart.
 * -ENOENT (data_dir is not a cluster), -EINVAL, -errno of the file system. */
int pg_conf_apply(const struct pg_instance *pg, const struct pg_conf *conf, struct pg_error *err);

/* ------------------------------------------------------------------------------------------ */
/* The postmaster                                                                             */

enum pg_pm_status { PG_PM_UNKNOWN, PG_PM_STARTING, PG_PM_STOPPING, PG_PM_READY, PG_PM_STANDBY };

/* postmaster.pid, plus the identity of the process. */
struct pg_postmaster {
    pid_t pid;
    char data_dir[PGW_PATH_MAX];
    int64_t start_time; /* epoch seconds */
    uint16_t port;
    char socket_dir[PGW_PATH_MAX];
    char listen_addr[PG_HOST_MAX];
    enum pg_pm_status status;
    uint64_t proc_start; /* /proc/<pid>/stat starttime: tells a reused pid (0 = unknown) */
};

/* Parses postmaster.pid text (lines: pid, data dir, start time, port, socket dir, listen
 * address, shmem key, status). The status line is optional (old servers, a file read while it
 * is written). Pure. -EBADMSG. */
int pg_postmaster_pid_parse(const char *text, struct pg_postmaster *out);
const char *pg_pm_status_name(enum pg_pm_status s);
/* Reads <data_dir>/postmaster.pid and verifies that the pid is alive, is a postgres process
 * (comm "postgres"/"postmaster") and, when /proc/<pid>/cwd is readable, runs in data_dir.
 * 0: running (*out filled); -ESRCH: no postmaster.pid, or a stale one (dead or reused pid);
 * -EBADMSG: unreadable file. Logs nothing for -ESRCH. */
int pg_postmaster_find(const struct pg_instance *pg, struct pg_postmaster *out,
                       struct pg_error *err);
/* True while that same process (pid and start time) exists and is not a zombie. */
bool pg_postmaster_alive(const struct pg_postmaster *pm);

/* Postmaster death notification from the event loop, without polling: a pidfd (Linux >= 5.3)
 * registered with the loop, readable when the process exits. Where pidfd_open fails (old
 * kernel, qemu-user) it falls back to checking the process every |poll_ms| ms (100 when 0;
 * a negative poll_ms always polls, for tests).
 * cb runs once, from the loop, when the process is gone (at the next iteration if it is
 * already gone). The watch must still be stopped with pg_watch_stop (safe from cb).
 * NULL on failure (logged). */
struct pg_watch;
typedef void (*pg_watch_cb)(struct pg_watch *w, pid_t pid, void *arg);
struct pg_watch *pg_watch_start(struct loop *l, const struct pg_postmaster *pm, int poll_ms,
                                pg_watch_cb cb, void *arg);
bool pg_watch_uses_pidfd(const struct pg_watch *w);
void pg_watch_stop(struct pg_watch *w);

/* ------------------------------------------------------------------------------------------ */
/* Actions (pg_ctl and friends)                                                               */

struct pg_initdb_opts {
    const char *locale;   /* "C.UTF-8" when NULL: code point order, stable across glibc */
    const char *encoding; /* "UTF8" when NULL */
    bool no_sync;         /* initdb --no-sync (tests) */
    int timeout_ms;       /* 120000 when 0 */
};
/* initdb --data-checksums -U superuser (password through a 0600 --pwfile in run_dir, removed
 * afterwards), --auth-local=trust --auth-host=scram-sha-256, then pg_conf_apply(conf)
 * (conf->standby must be false). data_dir must be missing or empty: -ENOTEMPTY otherwise. */
int pg_initdb(const struct pg_instance *pg, const struct pg_initdb_opts *o,
              const struct pg_conf *conf, struct pg_error *err);

/* pg_ctl start -w. First waits (5 s at most) until no process of an earlier postmaster of
 * data_dir is left (-EBUSY otherwise), then removes lock files (postmaster.pid, the socket's
 * .lock) that name a pid that exists but is not our postmaster: an unreaped zombie or a reused
 * pid would make PostgreSQL refuse to start. On success *pm (may be NULL) is the postmaster.
 * -EALREADY: already running (*pm filled); -ENOENT: no cluster in data_dir; -ETIMEDOUT: not
 * ready in time (a postmaster may still be starting: see pg_postmaster_find); -EIO: it failed
 * (the message holds the last lines of the server log). */
int pg_start(const struct pg_instance *pg, int timeout_ms, struct pg_postmaster *pm,
             struct pg_error *err);

enum pg_stop_mode { PG_STOP_SMART, PG_STOP_FAST, PG_STOP_IMMEDIATE };
const char *pg_stop_mode_name(enum pg_stop_mode m);
struct pg_stop_result {
    bool was_running;
    enum pg_stop_mode mode_used; /* the mode that stopped it (after escalation) */
    bool killed;                 /* SIGKILL was needed: an unclean stop */
};
/* pg_ctl stop -m <mode> -w within timeout_ms. With escalate: then immediate (10 s), then
 * SIGKILL of the postmaster and its children (5 s). 0 also when it was not running.
 * -ETIMEDOUT: still running. */
int pg_stop(const struct pg_instance *pg, enum pg_stop_mode mode, int timeout_ms, bool escalate,
            struct pg_stop_result *res, struct pg_error *err);
/* pg_stop (escalating) then pg_start. */
int pg_restart(const struct pg_instance *pg, enum pg_stop_mode mode, int stop_timeout_ms,
               int start_timeout_ms, struct pg_postmaster *pm, struct pg_error *err);
/* pg_ctl reload (SIGHUP). -ESRCH when not running. */
int pg_reload(const struct pg_instance *pg, int timeout_ms, struct pg_error *err);
/* pg_ctl promote -w, then checks pg_is_in_recovery() = false. -EALREADY: not in recovery.
 * No checkpoint is requested (pg_rewind_run asks the source for one when needed). */
int pg_promote(const struct pg_instance *pg, int timeout_ms, struct pg_error *err);
/* CHECKPOINT through libpq, statement_timeout = timeout_ms. */
int pg_checkpoint(const struct pg_instance *pg, int timeout_ms, struct pg_error *err);
/* Makes a stopped cluster "shut down" or "shut down in recovery" (what pg_rewind needs and
 * what tells the true end of its WAL): nothing if it already is. A crashed former primary
 * (no standby.signal) runs crash recovery in single-user mode (`postgres --single`, nobody can
 * connect; it ends with a shutdown checkpoint on its own timeline, as Patroni does). A crashed
 * standby is started as a standby with listen_addresses='' until consistent, then stopped fast
 * (no WAL of its own is written). -EBUSY if running. */
int pg_ensure_clean_shutdown(const struct pg_instance *pg, int timeout_ms, struct pg_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Status through libpq (local socket, superuser)                                            */

struct pg_status {
    bool in_recovery;
    int server_version; /* server_version_num, e.g. 150004 */
    uint64_t system_id;
    uint32_t timeline;    /* primary: of its current WAL; standby: received_tli when streaming,
                             else the last checkpoint's */
    uint64_t wal_lsn;     /* primary: pg_current_wal_lsn(); standby: max(receive, replay) */
    uint64_t receive_lsn; /* standby: pg_last_wal_receive_lsn(), 0 when none */
    uint64_t replay_lsn;  /* standby: pg_last_wal_replay_lsn(), 0 when none */
    bool replay_paused;
    bool checksums;
    bool streaming;       /* standby: a walreceiver with status "streaming" */
    bool pending_restart; /* a changed parameter needs a restart (pg_settings.pending_restart) */
    char sync_standby_names[256]; /* synchronous_standby_names in force (cut to fit) */
    uint64_t replay_lag_ms;       /* standby: age of the last replayed commit while WAL waits to be
                                     replayed (0 when replay has caught up with what was received) */
    char upstream_host[PG_HOST_MAX];
    uint16_t upstream_port;
    char upstream_slot[PG_SLOT_NAME_MAX];
};
/* -ECONNREFUSED (not running, not accepting connections yet), -ETIMEDOUT, -EIO. */
int pg_status_query(const struct pg_instance *pg, struct pg_status *st, struct pg_error *err);

/* One row of pg_stat_replication. Lags are -1 when NULL. */
struct pg_replica {
    int pid;
    char application_name[64];
    char client_addr[64];
    char state[16];      /* startup, catchup, streaming, backup, stopping */
    char sync_state[16]; /* async, potential, sync, quorum */
    int sync_priority;
    uint64_t sent_lsn, write_lsn, flush_lsn, replay_lsn;
    int64_t write_lag_ms, flush_lag_ms, replay_lag_ms;
};
/* *rows is malloc'd (free() it; NULL when n = 0). */
int pg_replication_list(const struct pg_instance *pg, struct pg_replica **rows, size_t *n,
                        struct pg_error *err);

struct pg_slot {
    char name[PG_SLOT_NAME_MAX];
    bool physical;
    bool active;
    uint64_t restart_lsn;
};
int pg_slots_list(const struct pg_instance *pg, struct pg_slot **rows, size_t *n,
                  struct pg_error *err);
/* A physical slot reserving WAL at once. -EEXIST, -EINVAL (name), -EROFS (standby). */
int pg_slot_create(const struct pg_instance *pg, const char *name, struct pg_error *err);
/* -ENOENT, -EBUSY (active), -EINVAL. */
int pg_slot_drop(const struct pg_instance *pg, const char *name, struct pg_error *err);
/* On a primary: creates the replication role (LOGIN REPLICATION) or updates it, and sets the
 * superuser's password. Passwords are sent as SCRAM verifiers (PQencryptPasswordConn), so the
 * statement never carries a clear-text password. -EROFS on a standby. */
int pg_roles_setup(const struct pg_instance *pg, struct pg_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Control file, timelines, rewind                                                            */

enum pg_cluster_state {
    PG_STATE_UNKNOWN,
    PG_STATE_STARTING_UP,
    PG_STATE_SHUT_DOWN,
    PG_STATE_SHUT_DOWN_IN_RECOVERY,
    PG_STATE_SHUTTING_DOWN,
    PG_STATE_IN_CRASH_RECOVERY,
    PG_STATE_IN_ARCHIVE_RECOVERY,
    PG_STATE_IN_PRODUCTION,
};
const char *pg_cluster_state_name(enum pg_cluster_state s);

struct pg_controldata {
    uint64_t system_id;
    enum pg_cluster_state state;
    uint64_t checkpoint_lsn;   /* Latest checkpoint location */
    uint64_t redo_lsn;         /* Latest checkpoint's REDO location */
    uint32_t timeline;         /* Latest checkpoint's TimeLineID */
    uint32_t prev_timeline;    /* Latest checkpoint's PrevTimeLineID */
    uint64_t min_recovery_lsn; /* Minimum recovery ending location */
    uint32_t min_recovery_tli; /* Min recovery ending loc's timeline */
    bool wal_log_hints;
    uint32_t checksum_version; /* Data page checksum version (0 = off) */
};
/* Parses `pg_controldata` output (run with LC_ALL=C). Pure. -EBADMSG if a needed line is
 * missing or malformed. */
int pg_controldata_parse(const char *text, struct pg_controldata *out);
int pg_controldata_read(const struct pg_instance *pg, struct pg_controldata *out,
                        struct pg_error *err);
/* Compares the data directory's system identifier with `expected` (the decimal value of the
 * etcd `initialize` key). 0 on a match, -EXDEV on a mismatch (the message names both). */
int pg_sysid_check(const struct pg_instance *pg, const char *expected, struct pg_error *err);

/* One line of a timeline history file: timeline `tli` ended (switched) at `switchpoint`. */
struct pg_tl_switch {
    uint32_t tli;
    uint64_t switchpoint;
};
/* Parses "<tli>\t<lsn>\t<reason>" lines (comments and blank lines skipped). *out is malloc'd
 * (NULL when n = 0). Pure. -EBADMSG, -ENOMEM. */
int pg_timeline_history_parse(const char *text, size_t len, struct pg_tl_switch **out, size_t *n);
/* The end of the checkpoint record at `lsn`, from `pg_waldump -n 2` output: the LSN of the
 * "invalid record length at X" error that follows a final shutdown checkpoint (as Patroni
 * does). Pure. -ENOENT when the output does not show that (another record follows). */
int pg_waldump_checkpoint_end_parse(const char *text, uint64_t lsn, uint64_t *end);

/* Where a stopped cluster's WAL ends, as needed to decide divergence. */
struct pg_local_position {
    uint32_t timeline;
    uint64_t lsn;            /* replica: min recovery point (or checkpoint); primary: checkpoint */
    bool in_recovery;        /* it was a standby ("shut down in recovery") */
    uint64_t checkpoint_end; /* former primary: end of its shutdown checkpoint record, 0 unknown */
};
/* From pg_controldata (and pg_waldump for a former primary). The cluster must be stopped and
 * cleanly shut down (pg_ensure_clean_shutdown): -EBUSY if running, -EAGAIN if not clean. */
int pg_local_position_read(const struct pg_instance *pg, struct pg_local_position *out,
                           struct pg_error *err);
/* Pure decision, Patroni's rules: the node diverged from a primary on timeline primary_tli
 * whose history is hist[0..n) when its timeline is ahead; or when the history's entry for its
 * timeline ends before the node's WAL (a standby's replayed LSN > switchpoint; a former
 * primary's checkpoint end != switchpoint, or unknown); or when its timeline is not in the
 * history. Same timeline: not diverged. `why` (may be NULL) gets one sentence. */
bool pg_diverged(const struct pg_local_position *local, uint32_t primary_tli,
                 const struct pg_tl_switch *hist, size_t n, char *why, size_t why_cap);

/* The primary's identity over a replication connection (as the replication user, passfile):
 * IDENTIFY_SYSTEM, then TIMELINE_HISTORY of its timeline when > 1. *hist malloc'd or NULL. */
struct pg_peer_identity {
    uint64_t system_id;
    uint32_t timeline;
    uint64_t lsn;
};
int pg_peer_identify(const struct pg_instance *pg, const char *host, uint16_t port,
                     struct pg_peer_identity *id, struct pg_tl_switch **hist, size_t *n,
                     struct pg_error *err);
/* pg_local_position_read + pg_peer_identify + pg_diverged. -EXDEV when the peer belongs to
 * another cluster (system identifier). */
int pg_check_diverged(const struct pg_instance *pg, const char *host, uint16_t port, bool *diverged,
                      char *why, size_t why_cap, struct pg_error *err);

/* The same for a running standby, from its received/replayed position and timeline (no stop).
 * -EINVAL when it is not in recovery. */
int pg_check_diverged_running(const struct pg_instance *pg, const char *host, uint16_t port,
                              bool *diverged, char *why, size_t why_cap, struct pg_error *err);

/* Rewinds the stopped local cluster from the primary host:port, then configures it with
 * pg_conf_apply(conf) (normally a standby of that primary). Steps: pg_ensure_clean_shutdown;
 * on the source (superuser, passfile) a CHECKPOINT if its control file still shows the
 * timeline before its promotion (pg_rewind would see "same timeline"); pg_rewind
 * --target-pgdata --source-server; postgresql.conf and pg_ident.conf are restored (pg_rewind
 * copies the source's), then pg_conf_apply. timeout_ms bounds each step. */
int pg_rewind_run(const struct pg_instance *pg, const char *host, uint16_t port,
                  const struct pg_conf *conf, int timeout_ms, struct pg_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Replicas                                                                                   */

struct pg_clone_opts {
    const char *host; /* the primary (or any member to clone from) */
    uint16_t port;
    const char *slot; /* pg_basebackup -S (NULL: none) */
    bool create_slot; /* -C: pg_basebackup creates the slot */
    int timeout_ms;   /* <= 0: none (a large copy takes hours; the keepalives end a dead one) */
};
/* pg_basebackup -X stream -c fast --no-password (passfile) into a missing or empty data_dir,
 * then pg_conf_apply(conf) (conf->standby normally true). On failure data_dir is emptied
 * again. -ENOTEMPTY, -ETIMEDOUT, -EIO. */
int pg_clone(const struct pg_instance *pg, const struct pg_clone_opts *o,
             const struct pg_conf *conf, struct pg_error *err);
/* A copy as its source sees it (pg_stat_progress_basebackup). */
struct pg_clone_progress {
    int64_t done_bytes;  /* backup_streamed */
    int64_t total_bytes; /* backup_total, the source's estimate; -1 when it has none */
};
/* The progress of this member's pg_clone from host:port, asked of the source as the superuser
 * (the copy connects as "<name> clone"), with a 1 s connect and a 2 s query deadline. -ENOENT
 * while the source runs no such copy. */
int pg_clone_progress(const struct pg_instance *pg, const char *host, uint16_t port,
                      struct pg_clone_progress *p, struct pg_error *err);
/* Points a standby at a new upstream: pg_conf_apply(conf) then reload when running
 * (primary_conninfo and primary_slot_name are reloadable since PG 13; the walreceiver
 * restarts). A running primary must be stopped first: -EBUSY. */
int pg_follow(const struct pg_instance *pg, const struct pg_conf *conf, int timeout_ms,
              struct pg_error *err);

#endif
