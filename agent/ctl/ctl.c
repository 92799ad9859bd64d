/* ctl entry: command-line parsing, the node config and etcd client, and command dispatch. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/ctl/ctl.h"
#include "agent/etcd/etcd.h"
#include "platform/config.h"
#include "platform/log.h"

#define DEFAULT_CONFIG "/etc/pgwarden/pgwarden.conf"

struct ctl_command {
    const char *name;
    unsigned allowed; /* enum ctl_opt_bit */
    const char *usage;
    const char *help;
};

static const struct ctl_command commands[] = {
    {"list", 0, "list [CLUSTER]", "the cluster's members, roles, timelines and lag (etcd)"},
    {"history", 0, "history [CLUSTER]", "the timeline history (etcd)"},
    {"show-config", 0, "show-config [CLUSTER]", "the dynamic configuration (etcd `config`)"},
    {"edit-config", CTL_O_SET | CTL_O_PG | CTL_O_FORCE,
     "edit-config --set K=V [--pg NAME=V] [--force]",
     "change the dynamic configuration (merge patch, compare-and-swap)"},
    {"pause", CTL_O_WAIT | CTL_O_TIMEOUT, "pause [--wait]", "disable automatic failover"},
    {"resume", CTL_O_WAIT | CTL_O_TIMEOUT, "resume [--wait]", "enable automatic failover again"},
    {"switchover",
     CTL_O_LEADER | CTL_O_CANDIDATE | CTL_O_SCHEDULED | CTL_O_FORCE | CTL_O_TIMEOUT |
         CTL_O_VIA_ETCD,
     "switchover [--leader L] [--candidate C] [--scheduled T] [--force] [--via-etcd]",
     "hand the leadership over (REST, else the etcd `failover` key)"},
    {"failover", CTL_O_LEADER | CTL_O_CANDIDATE | CTL_O_FORCE | CTL_O_TIMEOUT | CTL_O_VIA_ETCD,
     "failover --candidate C [--force] [--via-etcd]", "promote a named member (REST, else etcd)"},
    {"restart", CTL_O_FORCE | CTL_O_TIMEOUT, "restart MEMBER... [--force]",
     "restart PostgreSQL on members (REST)"},
    {"reload", CTL_O_FORCE, "reload MEMBER... [--force]", "reload the members' config (REST)"},
    {"reinit", CTL_O_FORCE, "reinit MEMBER... [--force]",
     "rebuild replicas from the leader (REST)"},
    {"events", CTL_O_LIMIT | CTL_O_KIND, "events [MEMBER] [--limit N] [--kind K]",
     "a node's event history (REST, default: this node)"},
    {"help", 0, "help", "show this help"},
};

long ctl_command_allowed(const char *command)
{
    for (size_t i = 0; command && i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, command) == 0)
            return (long)commands[i].allowed;
    return -1;
}

void ctl_print_help(FILE *out)
{
    fprintf(out, "usage: pgwarden ctl [-c FILE] [--json] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %s\n      %s\n", commands[i].usage, commands[i].help);
    fprintf(out,
            "\noptions:\n"
            "  -c, --config FILE       node config (default $PGWARDEN_CONFIG, else %s)\n"
            "  -j, --json              machine-readable output\n"
            "  -v, --verbose           show the client's log lines\n"
            "      --username U        REST Basic auth user (or $PGWARDEN_CTL_USERNAME)\n"
            "      --password-file F   REST password, first line of F (or $PGWARDEN_CTL_PASSWORD)\n"
            "      --cacert F          CA for https REST APIs; --insecure skips verification\n"
            "  -t, --timeout SECS      how long to wait for a leader change or --wait\n"
            "      --via-etcd          switchover/failover through the etcd failover key only\n"
            "\nexit status: 0 ok, 1 failed or refused, 64 usage, 65 bad data, 69 etcd or REST API\n"
            "unreachable, 77 authentication refused, 78 bad config file\n",
            DEFAULT_CONFIG);
}

enum {
    OPT_USERNAME = 1000,
    OPT_PASSWORD_FILE,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_LEADER,
    OPT_CANDIDATE,
    OPT_SCHEDULED,
    OPT_VIA_ETCD,
};

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int ctl_parse_args(int argc, char **argv, struct ctl_opts *o, char *err, size_t cap)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"set", required_argument, NULL, 's'},
        {"pg", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"wait", no_argument, NULL, 'w'},
        {"limit", required_argument, NULL, 'n'},
        {"kind", required_argument, NULL, 'k'},
        {"timeout", required_argument, NULL, 't'},
        {"username", required_argument, NULL, OPT_USERNAME},
        {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"leader", required_argument, NULL, OPT_LEADER},
        {"master", required_argument, NULL, OPT_LEADER},
        {"candidate", required_argument, NULL, OPT_CANDIDATE},
        {"scheduled", required_argument, NULL, OPT_SCHEDULED},
        {"via-etcd", no_argument, NULL, OPT_VIA_ETCD},
        {0},
    };
    memset(o, 0, sizeof(*o));
    err[0] = '\0';
    bool help = false;
    int ch;
    opterr = 0;
    optind = 0; /* full re-initialisation (glibc), so the parser can run more than once */
    while ((ch = getopt_long(argc, argv, ":c:jvhs:p:fwn:k:t:", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            help = true;
            break;
        case 's':
        case 'p': {
            const char **list = ch == 's' ? o->sets : o->pgs;
            size_t *n = ch == 's' ? &o->n_sets : &o->n_pgs;
            if (*n == CTL_SET_MAX) {
                snprintf(err, cap, "at most %d --set/--pg items", CTL_SET_MAX);
                return CTL_USAGE;
            }
            list[(*n)++] = optarg;
            o->given |= ch == 's' ? CTL_O_SET : CTL_O_PG;
            break;
        }
        case 'f':
            o->force = true;
            o->given |= CTL_O_FORCE;
            break;
        case 'w':
            o->wait = true;
            o->given |= CTL_O_WAIT;
            break;
        case 'n':
            if (!parse_long(optarg, 1, 1000, &o->limit)) {
                snprintf(err, cap, "--limit must be an integer from 1 to 1000");
                return CTL_USAGE;
            }
            o->given |= CTL_O_LIMIT;
            break;
        case 'k':
            o->kind = optarg;
            o->given |= CTL_O_KIND;
            break;
        case 't':
            if (!parse_long(optarg, 1, 86400, &o->timeout_s)) {
                snprintf(err, cap, "--timeout must be a number of seconds from 1 to 86400");
                return CTL_USAGE;
            }
            o->given |= CTL_O_TIMEOUT;
            break;
        case OPT_USERNAME:
            o->username = optarg;
            break;
        case OPT_PASSWORD_FILE:
            o->password_file = optarg;
            break;
        case OPT_CACERT:
            o->cacert = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = true;
            break;
        case OPT_LEADER:
            o->leader = optarg;
            o->given |= CTL_O_LEADER;
            break;
        case OPT_CANDIDATE:
            o->candidate = optarg;
            o->given |= CTL_O_CANDIDATE;
            break;
        case OPT_SCHEDULED:
            o->scheduled = optarg;
            o->given |= CTL_O_SCHEDULED;
            break;
        case OPT_VIA_ETCD:
            o->via_etcd = true;
            o->given |= CTL_O_VIA_ETCD;
            break;
        case ':':
            snprintf(err, cap, "option '%.80s' needs a value", argv[optind - 1]);
            return CTL_USAGE;
        default:
            if (optopt)
                snprintf(err, cap, "unknown option '-%c'", optopt);
            else
                snprintf(err, cap, "unknown option '%.80s'", argv[optind - 1]);
            return CTL_USAGE;
        }
    }
    if (optind < argc) {
        o->command = argv[optind];
        o->args = argv + optind + 1;
        o->n_args = argc - optind - 1;
    }
    if (help || (o->command && strcmp(o->command, "help") == 0)) {
        o->command = "help";
        return CTL_OK;
    }
    if (!o->command) {
        snprintf(err, cap, "no command given");
        return CTL_USAGE;
    }
    long allowed = ctl_command_allowed(o->command);
    if (allowed < 0) {
        snprintf(err, cap, "unknown command '%.80s'", o->command);
        return CTL_USAGE;
    }
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {CTL_O_SET, "--set"},
        {CTL_O_PG, "--pg"},
        {CTL_O_FORCE, "--force"},
        {CTL_O_WAIT, "--wait"},
        {CTL_O_LEADER, "--leader"},
        {CTL_O_CANDIDATE, "--candidate"},
        {CTL_O_SCHEDULED, "--scheduled"},
        {CTL_O_LIMIT, "--limit"},
        {CTL_O_KIND, "--kind"},
        {CTL_O_TIMEOUT, "--timeout"},
        {CTL_O_VIA_ETCD, "--via-etcd"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((o->given & names[i].bit) && !((unsigned long)allowed & names[i].bit)) {
            snprintf(err, cap, "%s does not apply to '%s'", names[i].name, o->command);
            return CTL_USAGE;
        }
    }
    /* Positional arguments and required options, per command. */
    const char *c = o->command;
    bool member_op =
        strcmp(c, "restart") == 0 || strcmp(c, "reload") == 0 || strcmp(c, "reinit") == 0;
    if (member_op && o->n_args < 1) {
        snprintf(err, cap, "'%s' needs at least one member name", c);
        return CTL_USAGE;
    }
    if (!member_op && o->n_args > 1) {
        snprintf(err, cap, "'%s' takes at most one argument (%s)", c,
                 strcmp(c, "events") == 0 ? "a member name" : "the cluster name");
        return CTL_USAGE;
    }
    if (strcmp(c, "edit-config") == 0 && o->n_sets + o->n_pgs == 0) {
        snprintf(err, cap, "'edit-config' needs --set KEY=VALUE or --pg NAME=VALUE");
        return CTL_USAGE;
    }
    if (strcmp(c, "failover") == 0 && !o->candidate) {
        snprintf(err, cap, "'failover' needs --candidate (use 'switchover' to let pgwarden pick)");
        return CTL_USAGE;
    }
    if (o->password_file && !o->username && !getenv("PGWARDEN_CTL_USERNAME")) {
        snprintf(err, cap, "--password-file needs --username (or $PGWARDEN_CTL_USERNAME)");
        return CTL_USAGE;
    }
    return CTL_OK;
}

/* ---- shared helpers ---- */

int ctl_etcd_fail(struct ctl_ctx *c, const char *what, int rc)
{
    const struct etcd_error *e = etcd_last_error(c->etcd);
    fprintf(stderr, "pgwarden ctl: %s: %s", what, etcd_strerror(rc));
    if (e && e->message[0])
        fprintf(stderr, ": %s", e->message);
    if (e && e->endpoint[0])
        fprintf(stderr, " (%s)", e->endpoint);
    fprintf(stderr, "\n");
    switch (rc) {
    case ETCD_E_TRANSPORT:
    case ETCD_E_UNAVAILABLE:
        return CTL_UNAVAILABLE;
    case ETCD_E_AUTH:
    case ETCD_E_PERMISSION:
        return CTL_NOPERM;
    case ETCD_E_NOMEM:
        return CTL_SOFTWARE;
    case ETCD_E_PROTOCOL:
        return CTL_DATAERR;
    default:
        return CTL_FAIL;
    }
}

int ctl_read_cluster(struct ctl_ctx *c, struct ctl_cluster *cl)
{
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->scope, sizeof(cl->scope), "%s", c->cfg->etcd.scope);
    struct etcd_range_req req = {.key = c->keys.prefix, .prefix = true};
    struct etcd_range_result res = {0};
    int rc = etcd_range(c->etcd, &req, &res);
    if (rc != 0) {
        etcd_range_result_clear(&res);
        return ctl_etcd_fail(c, "cannot read the cluster from etcd", rc);
    }
    cl->revision = res.header.revision;
    for (size_t i = 0; i < res.n_kvs; i++) {
        const struct etcd_kv *kv = &res.kvs[i];
        ctl_cluster_add_kv(cl, &c->keys, kv->key, kv->key_len, kv->value, kv->value_len,
                           kv->mod_revision, stderr);
    }
    etcd_range_result_clear(&res);
    ctl_cluster_finish(cl);
    return CTL_OK;
}

bool ctl_confirm(const char *question)
{
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr,
                "pgwarden ctl: %s\npgwarden ctl: refused: no terminal to confirm on; "
                "add --force to go ahead\n",
                question);
        return false;
    }
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char line[32];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    return strcmp(line, "y\n") == 0 || strcmp(line, "Y\n") == 0 || strcmp(line, "yes\n") == 0 ||
           strcmp(line, "YES\n") == 0 || strcmp(line, "Yes\n") == 0;
}

void ctl_rest_opts_init(const struct ctl_ctx *c, struct ctl_rest_opts *ro, long timeout_ms)
{
    memset(ro, 0, sizeof(*ro));
    if (c->have_auth) {
        ro->username = c->username;
        ro->password = c->password;
    }
    ro->insecure = c->o->insecure;
    ro->cacert = c->o->cacert;
    if (c->cfg->web.tls_cert[0] && c->cfg->web.tls_key[0] &&
        access(c->cfg->web.tls_key, R_OK) == 0) {
        ro->cert = c->cfg->web.tls_cert; /* a client certificate when [web] verifies them */
        ro->key = c->cfg->web.tls_key;
    }
    ro->timeout_ms = timeout_ms;
}

bool ctl_print_json(const json_t *v, bool compact)
{
    char *s = json_dumps(v, (compact ? JSON_COMPACT : JSON_INDENT(2)) | JSON_ENCODE_ANY |
                                JSON_PRESERVE_ORDER);
    if (!s) {
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        return false;
    }
    printf("%s\n", s);
    free(s);
    return true;
}

/* ---- setup ---- */

/* The first line of path into out (without the newline). */
static bool read_secret_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pgwarden ctl: cannot read the password file %s: %s\n", path,
                strerror(errno));
        return false;
    }
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "pgwarden ctl: the password file %s is empty\n", path);
        return false;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return true;
}

static int load_credentials(struct ctl_ctx *c)
{
    const char *user = c->o->username ? c->o->username : getenv("PGWARDEN_CTL_USERNAME");
    if (!user || !user[0])
        return CTL_OK;
    if (strlen(user) >= sizeof(c->username)) {
        fprintf(stderr, "pgwarden ctl: the user name is too long\n");
        return CTL_USAGE;
    }
    snprintf(c->username, sizeof(c->username), "%s", user);
    if (c->o->password_file) {
        if (!read_secret_file(c->o->password_file, c->password, sizeof(c->password)))
            return CTL_USAGE;
    } else {
        const char *pw = getenv("PGWARDEN_CTL_PASSWORD");
        if (pw && strlen(pw) >= sizeof(c->password)) {
            fprintf(stderr, "pgwarden ctl: the password is too long\n");
            return CTL_USAGE;
        }
        snprintf(c->password, sizeof(c->password), "%s", pw ? pw : "");
    }
    c->have_auth = true;
    return CTL_OK;
}

/* The environment without the ctl's own PGWARDEN_CTL_* and PGWARDEN_CONFIG variables, so that
 * the config loader does not take them for config keys. */
static char **config_env(void)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "PGWARDEN_CTL_", 13) == 0 ||
            strncmp(environ[i], "PGWARDEN_CONFIG=", 16) == 0)
            continue;
        env[j++] = environ[i];
    }
    return env;
}

static int load_config(struct ctl_ctx *c, struct pgw_config *cfg)
{
    const char *path = c->o->config_path;
    if (!path)
        path = getenv("PGWARDEN_CONFIG");
    if (!path || !path[0])
        path = DEFAULT_CONFIG;
    struct cfg_errors *errs = calloc(1, sizeof(*errs));
    char **env = config_env();
    if (!errs || !env) {
        free(errs);
        free(env);
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        return CTL_SOFTWARE;
    }
    int rc = CTL_OK;
    if (!settings_load(path, env, cfg, errs)) {
        cfg_errors_print(errs, stderr);
        fprintf(stderr, "pgwarden ctl: cannot use the config file %s\n", path);
        rc = CTL_CONFIG;
    }
    free(errs);
    free(env);
    return rc;
}

static int dispatch(struct ctl_ctx *c)
{
    const char *cmd = c->o->command;
    if (strcmp(cmd, "list") == 0)
        return ctl_cmd_list(c);
    if (strcmp(cmd, "history") == 0)
        return ctl_cmd_history(c);
    if (strcmp(cmd, "show-config") == 0)
        return ctl_cmd_show_config(c);
    if (strcmp(cmd, "edit-config") == 0)
        return ctl_cmd_edit_config(c);
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
        return ctl_cmd_pause(c, strcmp(cmd, "pause") == 0);
    if (strcmp(cmd, "switchover") == 0 || strcmp(cmd, "failover") == 0)
        return ctl_cmd_switchover(c, strcmp(cmd, "failover") == 0);
    if (strcmp(cmd, "restart") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "reinit") == 0)
        return ctl_cmd_member_op(c, cmd);
    if (strcmp(cmd, "events") == 0)
        return ctl_cmd_events(c);
    fprintf(stderr, "pgwarden ctl: unknown command '%s'\n", cmd);
    return CTL_USAGE;
}

/* Commands that take [CLUSTER]: it must be this config's scope. */
static bool cluster_arg_ok(const struct ctl_opts *o, const struct pgw_config *cfg)
{
    bool takes = strcmp(o->command, "events") != 0 && strcmp(o->command, "restart") != 0 &&
                 strcmp(o->command, "reload") != 0 && strcmp(o->command, "reinit") != 0;
    if (!takes || o->n_args == 0 || strcmp(o->args[0], cfg->etcd.scope) == 0)
        return true;
    fprintf(stderr, "pgwarden ctl: '%s' is not this config's cluster ('%s')\n", o->args[0],
            cfg->etcd.scope);
    return false;
}

int ctl_main(int argc, char **argv)
{
    struct ctl_opts o;
    char err[256];
    if (ctl_parse_args(argc, argv, &o, err, sizeof(err)) != CTL_OK) {
        fprintf(stderr, "pgwarden ctl: %s (see 'pgwarden ctl --help')\n", err);
        return CTL_USAGE;
    }
    if (strcmp(o.command, "help") == 0) {
        ctl_print_help(stdout);
        return CTL_OK;
    }
    log_setup(o.verbose ? LOG_LVL_INFO : LOG_LVL_ERROR, "ctl");
    struct ctl_ctx *c = calloc(1, sizeof(*c));
    struct pgw_config *cfg = calloc(1, sizeof(*cfg));
    int rc = CTL_SOFTWARE;
    bool curl_up = false;
    if (!c || !cfg) {
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        goto out;
    }
    c->o = &o;
    c->cfg = cfg;
    rc = load_config(c, cfg);
    if (rc != CTL_OK)
        goto out;
    if (!cluster_arg_ok(&o, cfg)) {
        rc = CTL_USAGE;
        goto out;
    }
    rc = load_credentials(c);
    if (rc != CTL_OK)
        goto out;
    if (dcs_keys_init(&c->keys, cfg->etcd.namespace, cfg->etcd.scope) != 0) {
        fprintf(stderr, "pgwarden ctl: bad [etcd] namespace or scope\n");
        rc = CTL_CONFIG;
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "pgwarden ctl: cannot initialise libcurl\n");
        rc = CTL_SOFTWARE;
        goto out;
    }
    curl_up = true;
    c->etcd = etcd_client_new(&cfg->etcd);
    if (!c->etcd) {
        fprintf(stderr, "pgwarden ctl: cannot set up the etcd client (check [etcd] endpoints)\n");
        rc = CTL_CONFIG;
        goto out;
    }
    rc = dispatch(c);
out:
    if (c) {
        etcd_client_free(c->etcd);
        explicit_bzero(c->password, sizeof(c->password));
    }
    if (curl_up)
        curl_global_cleanup();
    if (cfg)
        explicit_bzero(cfg, sizeof(*cfg));
    free(cfg);
    free(c);
    fflush(stdout);
    return rc;
}
