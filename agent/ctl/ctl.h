/* ctl: `pgwarden ctl`, the operator CLI (cluster table, config edits, switchover, REST calls). */
#ifndef PGW_CTL_H
#define PGW_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "agent/dcs/dyncfg.h"
#include "agent/dcs/history.h"
#include "agent/dcs/keys.h"
#include "agent/dcs/member.h"
#include "agent/dcs/values.h"
#include "agent/settings.h"

/* `pgwarden ctl [options] <command> [args]` (argv[0] is "ctl"). Returns the exit status. */
int ctl_main(int argc, char **argv);

/* ---- internals shared by the agent/ctl files and the unit tests
 * ---------------------------------- */

/* Exit statuses (sysexits style). */
enum ctl_exit {
    CTL_OK = 0,
    CTL_FAIL = 1,         /* the operation failed or was refused */
    CTL_USAGE = 64,       /* bad command line */
    CTL_DATAERR = 65,     /* a value in etcd or an answer is malformed or invalid */
    CTL_UNAVAILABLE = 69, /* etcd or the REST API is unreachable */
    CTL_SOFTWARE = 70,    /* out of memory, internal error */
    CTL_NOPERM = 77,      /* authentication or permission refused */
    CTL_CONFIG = 78,      /* the node config file is bad */
};

/* Option bits: what was given on the command line (each command accepts a subset). */
enum ctl_opt_bit {
    CTL_O_SET = 1u << 0,
    CTL_O_FORCE = 1u << 1,
    CTL_O_WAIT = 1u << 2,
    CTL_O_LEADER = 1u << 3,
    CTL_O_CANDIDATE = 1u << 4,
    CTL_O_SCHEDULED = 1u << 5,
    CTL_O_LIMIT = 1u << 6,
    CTL_O_KIND = 1u << 7,
    CTL_O_TIMEOUT = 1u << 8,
    CTL_O_PG = 1u << 9,
    CTL_O_VIA_ETCD = 1u << 10,
};

enum { CTL_SET_MAX = 64, CTL_CRED_MAX = 256 };

/* The parsed command line. Strings point into argv. */
struct ctl_opts {
    const char *config_path;
    bool json;
    bool verbose;
    bool insecure;
    const char *cacert;
    const char *username;
    const char *password_file;
    unsigned given;                /* enum ctl_opt_bit */
    const char *sets[CTL_SET_MAX]; /* --set K=V, in order */
    size_t n_sets;
    const char *pgs[CTL_SET_MAX]; /* --pg NAME=V (postgresql.parameters.NAME) */
    size_t n_pgs;
    bool force;
    bool wait;
    bool via_etcd; /* switchover/failover: write the failover key, skip the REST API */
    const char *leader;
    const char *candidate;
    const char *scheduled;
    long limit;
    const char *kind;
    long timeout_s; /* waits; 0 = the command's default */
    const char *command;
    char **args; /* positional arguments after the command */
    int n_args;
};

/* Parses argv (argv[0] = "ctl"). Returns CTL_OK, or CTL_USAGE with a one-line message in err. A
 * bare --help/-h or "help" sets command to "help". */
int ctl_parse_args(int argc, char **argv, struct ctl_opts *o, char *err, size_t cap);
/* The options (enum ctl_opt_bit) command accepts, or -1 for an unknown command. */
long ctl_command_allowed(const char *command);
void ctl_print_help(FILE *out);

/* ---- table rendering (ctl_table.c, pure) ---- */

enum ctl_align { CTL_ALIGN_LEFT = 0, CTL_ALIGN_RIGHT };

/* A growing NUL-terminated text buffer (oom set, and further appends ignored, on allocation
 * failure; the caller frees p). */
struct ctl_sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};
void ctl_sbuf_put(struct ctl_sbuf *b, const char *s, size_t n);
void ctl_sbuf_str(struct ctl_sbuf *b, const char *s);

struct ctl_table {
    size_t ncols;
    char **headers;        /* owned copies */
    enum ctl_align *align; /* per column */
    size_t *max_width;     /* per column; 0 = unlimited (longer cells end in "...") */
    size_t nrows, cap_rows;
    char **cells; /* nrows * ncols owned strings */
};

/* A table with these headers (copied); align may be NULL (all left). False on ENOMEM. */
bool ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *headers,
                    const enum ctl_align *align);
void ctl_table_set_max_width(struct ctl_table *t, size_t col, size_t width);
/* Appends a row of ncols cells (copied; NULL is ""). Control characters become '?'. */
bool ctl_table_add_row(struct ctl_table *t, const char *const *cells);
/* The boxed table (patronictl's "pretty" style) as a malloc'd string. A title goes into the top
 * border ("+ Cluster: x (123) --+----+"), or on a line of its own when the border is too short.
 * NULL on ENOMEM. */
char *ctl_table_render(const struct ctl_table *t, const char *title);
void ctl_table_free(struct ctl_table *t);
/* Display width of a UTF-8 string (code points; invalid bytes count one each). */
size_t ctl_text_width(const char *s);

/* ---- --set / --pg into a merge patch (ctl_patch.c, pure) ---- */

/* Builds an RFC 7386 merge patch from "a.b.c=value" items (dotted keys) and "name=value" items
 * for postgresql.parameters (pgs, no dot splitting). A value that parses as JSON is used as is
 * (so 16 is a number, true a boolean, null or an empty value deletes the key), anything else is
 * a string. Later items win. Returns a new object, or NULL with err set (bad item, empty key
 * segment, a key used both as a value and as an object). */
json_t *ctl_set_patch(const char *const *sets, size_t n_sets, const char *const *pgs, size_t n_pgs,
                      char *err, size_t cap);
/* The changes from old to new as "-path: value" / "+path: value" lines, objects flattened to
 * dotted paths, values as compact JSON. "" when equal. NULL on ENOMEM. */
char *ctl_config_diff(const json_t *old_v, const json_t *new_v);

/* ---- the cluster as read from etcd (ctl_cluster.c) ---- */

struct ctl_cluster {
    char scope[PGW_NAME_MAX];
    struct dcs_member *members; /* sorted by name */
    size_t n_members;
    char leader[DCS_NAME_MAX]; /* "" = no leader key */
    bool has_initialize;
    struct dcs_initialize init;
    bool has_sync;
    struct dcs_sync sync;
    bool has_status;
    struct dcs_status status;
    bool has_optime_legacy;
    int64_t optime_legacy;
    bool has_failover;
    struct dcs_failover failover;
    bool has_config; /* present and valid */
    bool config_present;
    int64_t config_mod_revision;
    struct dcs_config config;
    char config_error[DCS_ERR_CAP]; /* why a present config is invalid */
    bool has_history;
    struct dcs_history history;
    char history_error[DCS_ERR_CAP];
    int64_t revision;
    size_t n_bad; /* values skipped as malformed (warned on stderr) */
};

void ctl_cluster_free(struct ctl_cluster *cl);
/* Adds one key/value (as read from a range of the prefix) to cl. Malformed values are counted
 * and described in warn (may be NULL) and otherwise skipped. Used by the reader and the tests. */
void ctl_cluster_add_kv(struct ctl_cluster *cl, const struct dcs_keys *k, const char *key,
                        size_t key_len, const char *value, size_t value_len, int64_t mod_rev,
                        FILE *warn);
/* Sorts members by name; call after the last ctl_cluster_add_kv. */
void ctl_cluster_finish(struct ctl_cluster *cl);
const struct dcs_member *ctl_cluster_member(const struct ctl_cluster *cl, const char *name);
/* The leader's last known WAL position: status.optime, optime/leader, else the leader member's
 * xlog_location. False if unknown. */
bool ctl_cluster_last_lsn(const struct ctl_cluster *cl, int64_t *lsn);

/* The `list` rows as patronictl -f json writes them: [{"Cluster","Member","Host","Role","State",
 * "TL","Lag in MB"[,"Pending restart"]}...]. New reference or NULL on ENOMEM. */
json_t *ctl_list_json(const struct ctl_cluster *cl);
/* The `list` table text from those rows (malloc'd). */
char *ctl_list_render(const struct ctl_cluster *cl, const json_t *rows);
/* "host:port" from a postgres:// conn_url, or "" if it has none. */
void ctl_conn_host(const char *conn_url, char *out, size_t cap);

/* ---- REST client (ctl_rest.c) ---- */

struct ctl_rest_opts {
    const char *username; /* NULL: no auth */
    const char *password;
    const char *cacert; /* NULL: system default */
    const char *cert;   /* client certificate (https), may be NULL */
    const char *key;
    bool insecure;   /* no TLS verification */
    long timeout_ms; /* whole request */
};

struct ctl_rest_result {
    long status; /* 0 when no HTTP answer */
    char *body;  /* NUL-terminated (may be empty), owned */
    size_t len;
    bool unreachable; /* connect/resolve failure: the API is not there */
    char error[256];  /* transport error text */
};

/* Replaces the path of an api_url ("http://h:8008/patroni") with path ("/switchover"). False if
 * api_url is not an http(s) URL or out is too small. */
bool ctl_api_endpoint(const char *api_url, const char *path, char *out, size_t cap);
/* One request; body may be NULL (none). Returns 0 when an HTTP answer came (any status), or -1
 * (transport error, described in out->error). Free out with ctl_rest_result_clear. */
int ctl_rest_call(const struct ctl_rest_opts *o, const char *method, const char *url,
                  const char *body, struct ctl_rest_result *out);
void ctl_rest_result_clear(struct ctl_rest_result *r);

/* ---- command context and commands ---- */

struct etcd_client;

struct ctl_ctx {
    const struct ctl_opts *o;
    struct pgw_config *cfg;
    struct dcs_keys keys;
    struct etcd_client *etcd;
    char username[CTL_CRED_MAX];
    char password[CTL_CRED_MAX]; /* secret: wiped at exit */
    bool have_auth;
};

/* Reads the whole cluster prefix. CTL_OK, or CTL_UNAVAILABLE/CTL_NOPERM with the error printed. */
int ctl_read_cluster(struct ctl_ctx *c, struct ctl_cluster *cl);
/* Maps an etcd error to an exit status after printing "pgwarden ctl: <what>: <error>". */
int ctl_etcd_fail(struct ctl_ctx *c, const char *what, int rc);
/* Asks "<question> [y/N] " on the terminal; false without a terminal (message printed). */
bool ctl_confirm(const char *question);
/* Fills REST options from the context (credentials, TLS files). */
void ctl_rest_opts_init(const struct ctl_ctx *c, struct ctl_rest_opts *ro, long timeout_ms);
/* Prints the JSON value (compact with --json, else indented) with a newline; false on ENOMEM. */
bool ctl_print_json(const json_t *v, bool compact);

int ctl_cmd_list(struct ctl_ctx *c);
int ctl_cmd_history(struct ctl_ctx *c);
int ctl_cmd_show_config(struct ctl_ctx *c);
int ctl_cmd_edit_config(struct ctl_ctx *c);
int ctl_cmd_pause(struct ctl_ctx *c, bool pause);
int ctl_cmd_switchover(struct ctl_ctx *c, bool failover);
int ctl_cmd_member_op(struct ctl_ctx *c, const char *op);
int ctl_cmd_events(struct ctl_ctx *c);

#endif
