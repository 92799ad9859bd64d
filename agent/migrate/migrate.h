/* Migration into the cluster (`pgwarden migrate`): URL, options, progress, verification. */
#ifndef PGW_MIGRATE_H
#define PGW_MIGRATE_H

/*
 * `pgwarden migrate --from URL --to DBNAME` copies an existing database (a Heroku one, or any
 * PostgreSQL 9.2..15) into the cluster and verifies the copy:
 *
 *   preflight  connect to the source (its sslmode), versions, size, extensions the cluster
 *              lacks, the target database (must not exist or be empty unless --replace), free
 *              space on the leader's data_dir when it is this node;
 *   snapshot   one source connection exports a snapshot that pg_dump and the verification
 *              both use, so the copy is checked against exactly what was dumped;
 *   dump       pg_dump -Fd -j N --snapshot into <state_dir>/migrate/<id>/dump;
 *   restore    CREATE DATABASE pgwarden_migrate_<id> (a staging name) on the leader through
 *              the local forwarder's read-write port, pg_restore -j N --no-owner --no-acl
 *              --exit-on-error into it;
 *   verify     per table exact row counts (and with --verify checksums an order-independent
 *              checksum of the rows: sums of the two halves of md5(row text)), sequence values,
 *              counts of indexes, constraints, views, functions... per schema, large objects;
 *   finish     (--replace: drop the old target) rename the staging database to DBNAME.
 *
 * Any failure drops the staging database (or, if that fails, marks it with a COMMENT), so the
 * target name never holds a half-made copy and the cluster is left as it was. Passwords go to
 * libpq and the tools only through a 0600 passfile that is removed at the end; they are never
 * on a command line, in a log, in SQLite or in an error text. The job is recorded in the node's
 * SQLite store (table `migrations`) as it goes; `pgwarden migrate status` shows it.
 *
 * ONLINE MODE (`--online`, then `pgwarden migrate cutover`): logical replication from the source
 * into the staging database, so that the application's downtime is the cutover alone.
 *
 *   preflight  as above, plus what logical replication needs on the source: wal_level =
 *              logical; a replication connection (REPLICATION attribute or superuser, pg_hba);
 *              free replication slots and WAL senders (MIG_ONLINE_SLOTS: the subscription and
 *              the initial copy's table-sync workers); the user owns every table (a publication
 *              of a non-superuser lists them) or is a superuser (FOR ALL TABLES); no large
 *              objects (not replicated: refused, use the dump mode); every table has a primary
 *              key or a replica identity, else refused unless --replica-identity-full (which
 *              sets REPLICA IDENTITY FULL on those tables of the source and leaves it so). What
 *              is missing is listed; nothing is created before the preflight passed.
 *   schema     pg_dump --schema-only --no-publications --no-subscriptions, pg_restore
 *              --no-owner --no-acl into the staging database pgwarden_migrate_<id>;
 *   copy       CREATE PUBLICATION pgwarden_mig_<id>_<salt> on the source; CREATE SUBSCRIPTION
 *              (same name, same slot name, copy_data = true) in the staging database; the
 *              initial copy's progress is pg_subscription_rel (tables ready / total);
 *              every table copied: VACUUM (ANALYZE) of the copy (hint bits and visibility
 *              map now rather than during the cutover's row counts; the planner's statistics);
 *   streaming  the lag (bytes, pg_current_wal_lsn() - the slot's confirmed_flush_lsn on the
 *              source) is shown live and stored (lag_bytes).
 *
 * The `--online` process keeps running and shows the copy, then the lag, until the job is cut
 * over or aborted from another shell (it then exits 0 after a cutover, 1 after an abort or a
 * failure). Ctrl-C (or SIGTERM) only detaches it: replication goes on in the cluster,
 * `pgwarden migrate status` shows the job (with the last lag stored), and cutover/abort still
 * work. A failure before the subscription exists cleans up (staging database, publication).
 *
 * The copy goes into the staging database, not into DBNAME: DBNAME never holds a half-made
 * copy; the cutover renames it (a database can be renamed once its subscription is dropped and
 * nobody is connected to it), so --replace works as in the dump mode.
 *
 * `pgwarden migrate cutover [--id N] [--verify checksums] [--replace --yes] [--timeout S]`
 * (the application's writes must be stopped first): takes the source's pg_current_wal_lsn()
 * and waits until the slot's confirmed_flush_lsn reaches it (the cluster has applied and
 * flushed everything; meanwhile the source's side of the verification already runs, the
 * source being quiesced); copies the sequences' values (setval from pg_sequences.last_value);
 * disables and drops the subscription (which drops the slot on the source; if the source
 * cannot be reached for that, slot_name = NONE and the slot is dropped directly) and drops
 * the publication; verifies as the dump mode does (without a snapshot: the source is
 * quiesced); renames the staging database to DBNAME; prints the DATABASE_URL and the time
 * the cutover took (the application's downtime, also stored as cutover_ms). A failure before
 * the subscription is dropped puts the job back as it was, "copy" or "streaming" (fix, re-run
 * cutover); a failure after it leaves the job in "cutover" (re-run cutover: the steps already
 * done are skipped). `pgwarden migrate abort [--id N]` ends an online job at any point:
 * subscription, slot, publication and staging database dropped, the job marked failed.
 *
 * The source's password: the subscription's conninfo must hold it (the server, on whichever
 * node leads, connects to the source; a passfile would have to exist on that node, readable by
 * postgres, and follow failovers), so it is in pg_subscription.subconninfo, readable only by
 * superusers. CREATE SUBSCRIPTION runs with log_statement = none and log_min_error_statement =
 * panic so that the statement never reaches the server log. The password is never printed,
 * logged or stored in SQLite; cutover and abort read it back from pg_subscription (as the
 * cluster's superuser) into the job's 0600 passfile (<state_dir>/migrate/<id>/pgpass), which
 * is kept until the job is done or aborted so that an interrupted cutover can be re-run after
 * the subscription is gone.
 *
 * DDL is not replicated: the source's schema must not change during an online migration.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* `pgwarden migrate ...` (argv[0] = "migrate"). Exit status: 0 done (or an online job
 * detached, or cut over), 1 failed or refused, 64 usage, 69 source or cluster unreachable,
 * 78 bad config file. */
int migrate_main(int argc, char **argv);

enum {
    MIG_EXIT_FAILED = 1,
    MIG_EXIT_USAGE = 64,
    MIG_EXIT_UNAVAILABLE = 69,
    MIG_EXIT_CONFIG = 78,
};

/* ------------------------------------------------------------------------------------------ */
/* Source URL                                                                                 */

enum { MIG_PARAMS_MAX = 8, MIG_STR = 256, MIG_DISPLAY_MAX = 1024 };

/* postgres[ql]://[user[:password]@]host[:port][/dbname][?key=value&...], percent-decoded.
 * The password is never kept here: mig_url_parse() hands it to the caller separately. */
struct mig_url {
    char user[MIG_STR];
    char host[MIG_STR]; /* without IPv6 brackets */
    uint16_t port;      /* 5432 when absent */
    char dbname[MIG_STR];
    bool has_password;
    size_t nparams; /* libpq keywords from the query string (sslmode, sslrootcert, ...) */
    char keys[MIG_PARAMS_MAX][32];
    char vals[MIG_PARAMS_MAX][MIG_STR];
};

/* Parses url. The password (if any) goes to password[0..pw_cap) (the caller wipes it with
 * explicit_bzero); out never holds it. -EINVAL with a message in err (never quoting the
 * password) for: another scheme, no host, a bad port, bad percent-encoding, a query key that
 * is not a supported libpq keyword (sslmode, sslrootcert, sslcert, sslkey, sslcrl,
 * connect_timeout, application_name, target_session_attrs, options) or a bad sslmode.
 * dbname defaults to the user name (as libpq does); user is required. Pure. */
int mig_url_parse(const char *url, struct mig_url *out, char *password, size_t pw_cap, char *err,
                  size_t err_cap);
/* The value of a query parameter, or NULL. */
const char *mig_url_param(const struct mig_url *u, const char *key);
/* postgres://user@host:port/dbname?sslmode=require (no password, even if it had one). Pure.
 * Returns out. */
char *mig_url_display(const struct mig_url *u, char *out, size_t cap);
/* Overwrites the password inside a URL string in place with '*' (for argv, so that `ps` no
 * longer shows it). Returns true if there was one. */
bool mig_url_scrub(char *url);
/* One passfile line host:port:*:user:password with ':' and '\' escaped. -ENOSPC. Pure. */
int mig_passfile_line(const char *host, uint16_t port, const char *user, const char *password,
                      char *out, size_t cap);
/* A libpq conninfo string (values quoted) with passfile= and the URL's parameters, dbname
 * replaced when dbname is not NULL, and application_name. Never a password. -ENOSPC. Pure. */
int mig_url_conninfo(const struct mig_url *u, const char *dbname, const char *passfile,
                     const char *application_name, char *out, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                    */

enum mig_command { MIG_CMD_RUN, MIG_CMD_STATUS, MIG_CMD_CUTOVER, MIG_CMD_ABORT, MIG_CMD_HELP };

struct mig_opts {
    enum mig_command command;
    const char *config; /* -c FILE, else NULL ($PGWARDEN_CONFIG or the default) */
    char *from;         /* --from URL (points into argv: scrubbed after parsing) */
    const char *to;     /* --to DBNAME */
    int jobs;           /* --jobs N, 1..64 (default 2) */
    bool replace;       /* --replace */
    bool checksums;     /* --verify checksums */
    bool yes;           /* --yes: no confirmation prompt */
    bool online;        /* --online: logical replication, then `migrate cutover` */
    bool ri_full;       /* --replica-identity-full: online mode may set REPLICA IDENTITY FULL
                           on the source's tables that have no primary key */
    bool json;          /* status --json */
    bool no_progress;   /* --no-progress: no bar, no periodic lines */
    long long id;       /* status/cutover/abort --id N (0: the latest job) */
    int timeout_s;      /* --timeout SECS for the whole copy (0: none) */
};

/* Parses argv (argv[0] = "migrate"). On error writes one line to err and returns -EINVAL.
 * --from may also come from $PGWARDEN_MIGRATE_FROM (read by the caller). Pure apart from
 * getopt's state (reset here). */
int mig_opts_parse(int argc, char **argv, struct mig_opts *o, char *err, size_t err_cap);
/* Checks a target database name: 1..63 bytes, printable, not a system database (postgres,
 * template0, template1) nor a staging name (pgwarden_migrate_*). Pure. */
bool mig_dbname_ok(const char *name, char *err, size_t err_cap);
void mig_usage(FILE *out);

/* ------------------------------------------------------------------------------------------ */
/* Progress                                                                                   */

enum mig_phase {
    MIG_PH_PREFLIGHT,
    MIG_PH_DUMP,
    MIG_PH_RESTORE,
    MIG_PH_VERIFY,
    MIG_PH_FINISH,
    MIG_PH_DONE,
    MIG_PH_FAILED,
    /* online mode */
    MIG_PH_SCHEMA,    /* pg_dump --schema-only | pg_restore into the staging database */
    MIG_PH_COPY,      /* the subscription's initial copy (pg_subscription_rel states) */
    MIG_PH_STREAMING, /* every table ready: changes stream, lag shown */
    MIG_PH_CUTOVER,   /* `pgwarden migrate cutover` */
    MIG_PH_COUNT,
};
const char *mig_phase_name(enum mig_phase p);

struct mig_progress {
    enum mig_phase phase;
    uint64_t bytes_done, bytes_total;
    uint64_t tables_done, tables_total;
    uint64_t phase_start_ms; /* monotonic */
    /* rate: a sliding sample taken about every second */
    uint64_t rate_ms, rate_bytes;
    double rate_bps;
};

/* ---- which state a recorded job is shown in (migrate status, the dashboard) ---- */
struct store_migration;
/* True if process pid exists, also when it belongs to another user (EPERM). */
bool mig_pid_alive(int64_t pid);
/* An online job whose replication runs in the cluster (copy, streaming) or whose cutover can be
 * run again (cutover, verify, finish): it goes on without a process watching it. */
bool mig_job_online_lives(const struct store_migration *m);
/* The state to show: "done" and "failed" as stored, and the phase of an online job that lives
 * (above); otherwise the phase while the job's process is alive, "interrupted" once it is gone
 * without finishing. */
const char *mig_job_shown_state(const struct store_migration *m, bool alive);

/* Starts a phase (zeroes the counters, totals and the rate). */
void mig_progress_phase(struct mig_progress *p, enum mig_phase ph, uint64_t now_ms);
/* Records bytes_done at now_ms and updates the rate (exponential smoothing over samples at
 * least 500 ms apart; bytes never go backwards). Pure. */
void mig_progress_sample(struct mig_progress *p, uint64_t bytes_done, uint64_t now_ms);
/* Fraction done in [0, 1]: by bytes when bytes_total > 0, else by tables; 0 when unknown. */
double mig_progress_fraction(const struct mig_progress *p);
/* Seconds left from the elapsed time and the fraction, or -1 when unknown (nothing done yet,
 * or less than a second elapsed). Pure. */
int64_t mig_progress_eta_s(const struct mig_progress *p, uint64_t now_ms);
/* "1.5 GB", "12.0 MB", "512 B" (powers of 1024, one decimal). Pure. */
char *mig_fmt_bytes(uint64_t b, char *out, size_t cap);
/* "1:02:03", "4:05" or "--:--" for < 0. Pure. */
char *mig_fmt_duration(int64_t s, char *out, size_t cap);
/* One line: with bar_width > 0 "[#####.....]  45% restore 1.2 GB/2.6 GB 12/40 tables
 * 35.1 MB/s ETA 0:42", else the same without the bar; without a byte
 * total only the tables and the ETA. Pure. */
char *mig_progress_line(const struct mig_progress *p, uint64_t now_ms, int bar_width, char *out,
                        size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Online mode (pure parts)                                                                   */

/* Free replication slots and WAL senders that online mode needs on the source: the subscription
 * plus PostgreSQL's default max_sync_workers_per_subscription (2) table-sync workers. */
enum { MIG_ONLINE_SLOTS = 3 };

/* What the online preflight found on the source. */
struct mig_logical_facts {
    int version; /* server_version_num */
    char wal_level[16];
    bool superuser;   /* superuser, or a member of rds_superuser / cloudsqlsuperuser */
    bool replication; /* the REPLICATION attribute, or a member of rds_replication */
    bool can_create;  /* CREATE privilege on the database (CREATE PUBLICATION) */
    bool replication_conn_ok;
    char replication_conn_err[256];
    int slots_free, senders_free;
    long long tables_not_owned; /* user tables owned by another role */
    long long large_objects;
    size_t nnokey;   /* tables without a primary key and with replica identity default/nothing */
    char nokey[512]; /* their names, ", "-separated (cut) */
};
/* Lists what online mode lacks, one "  - ..." line each, into out. Returns how many (0: can
 * run). Tables without a key are a problem unless ri_full. Pure. */
int mig_logical_check(const struct mig_logical_facts *f, bool ri_full, char *out, size_t cap);
/* The publication/subscription/slot name "pgwarden_mig_<id>_<8 hex digits of salt>". Pure. */
int mig_repl_name(int64_t id, uint64_t salt, char *out, size_t cap);
/* CREATE PUBLICATION name FOR ALL TABLES, or FOR TABLE t1, t2 (names already quoted).
 * malloc'd; NULL on ENOMEM. Pure. */
char *mig_publication_sql(const char *name, bool all_tables, const char *const *tables, size_t n);
/* The subscription's conninfo: host, port, user, dbname, the URL's parameters (sslmode...),
 * connect_timeout and password='...' (quoted; omitted when empty). -ENOSPC. Pure. */
int mig_sub_conninfo(const struct mig_url *u, const char *password, char *out, size_t cap);
/* "unknown" (< 0), "0 B (in sync)", "1.5 MB". Pure. */
char *mig_fmt_lag(int64_t lag_bytes, char *out, size_t cap);
/* "initial copy: 3/7 tables copied, lag 1.2 MB" or "streaming: lag 0 B (in sync)", plus
 * ", N replication errors (see the leader's log)". Pure. */
char *mig_online_line(enum mig_phase ph, uint64_t tables_done, uint64_t tables_total,
                      int64_t lag_bytes, long long errors, char *out, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Output of pg_dump/pg_restore --verbose                                                     */

enum mig_line_kind { MIG_LINE_OTHER, MIG_LINE_TABLE_STARTED, MIG_LINE_TABLE_FINISHED };
/* Classifies one line: "pg_dump: dumping contents of table \"s.t\"" and "pg_restore:
 * processing data for table \"s.t\"" start a table (name = s.t); "... finished item N TABLE
 * DATA t" finishes one (name = t, the relation name only). Pure. */
enum mig_line_kind mig_parse_tool_line(const char *line, char *name, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Verification: two inventories of (kind, object, value) compared                            */

enum { MIG_KIND_MAX = 24, MIG_NAME_MAX = 200, MIG_VALUE_MAX = 96 };

struct mig_item {
    char kind[MIG_KIND_MAX];   /* "rows", "checksum", "sequence", "count", "large_objects" */
    char name[MIG_NAME_MAX];   /* "public.users", "indexes in public" */
    char value[MIG_VALUE_MAX]; /* text; "error: ..." when the query failed */
};

struct mig_inventory {
    struct mig_item *items;
    size_t n, cap;
};

void mig_inventory_init(struct mig_inventory *inv);
void mig_inventory_free(struct mig_inventory *inv);
/* Appends (texts cut to fit). -ENOMEM. */
int mig_inventory_add(struct mig_inventory *inv, const char *kind, const char *name,
                      const char *value);
/* Sets the value of an existing (kind, name), else appends. -ENOMEM. */
int mig_inventory_set(struct mig_inventory *inv, const char *kind, const char *name,
                      const char *value);
/* Sorts by (kind, name). */
void mig_inventory_sort(struct mig_inventory *inv);

struct mig_diff {
    char kind[MIG_KIND_MAX];
    char name[MIG_NAME_MAX];
    char source[MIG_VALUE_MAX]; /* "(missing)" when absent on that side */
    char target[MIG_VALUE_MAX];
};

struct mig_report {
    size_t compared; /* distinct (kind, name) pairs */
    size_t tables;   /* "rows" items on the source */
    uint64_t rows;   /* sum of the source's row counts */
    bool checksums;  /* checksum items were compared */
    struct mig_diff *diffs;
    size_t ndiffs;
};

/* Compares two inventories (each sorted here) item by item: a value that differs, or an item
 * present on one side only, or an "error: " value on either side, is a difference. Returns the
 * number of differences (0 = identical) or -ENOMEM. rep->diffs is malloc'd: mig_report_free. */
int mig_compare(struct mig_inventory *src, struct mig_inventory *dst, struct mig_report *rep);
void mig_report_free(struct mig_report *rep);
/* The report as JSON {"ok":..,"compared":..,"tables":..,"rows":..,"checksums":..,
 * "differences":[{"kind","object","source","target"}...] (at most max_diffs, then
 * "more_differences":N)}. malloc'd, NULL on ENOMEM. */
char *mig_report_json(const struct mig_report *rep, size_t max_diffs);
/* A human report: "verified: 12 tables, 1000010 rows, 87 objects: identical" or the list of
 * differences (at most max_diffs lines). */
void mig_report_print(const struct mig_report *rep, size_t max_diffs, FILE *out);

#endif
