/* The multi-call entry point: dispatches `pgwarden <subcommand>`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/ctl/ctl.h"
#include "agent/demo/demo.h"
#include "agent/migrate/migrate.h"
#include "agent/node.h"
#include "agent/settings.h"
#include "agent/version.h"
#include "platform/config.h"
#include "web/auth.h"

enum { EX_USAGE_ = 64, EX_CONFIG_ = 78 };

#define DEFAULT_CONFIG "/etc/pgwarden/pgwarden.conf"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
    const char *help;
};

static int cmd_help(int argc, char **argv);

/* The config file: -c/--config FILE, else $PGWARDEN_CONFIG, else the default path. */
static const char *config_arg(int argc, char **argv, const char *usage)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {0}};
    const char *path = getenv("PGWARDEN_CONFIG");
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (ch == 'c') {
            path = optarg;
        } else {
            fprintf(stderr, "usage: %s\n", usage);
            return NULL;
        }
    }
    if (optind < argc) {
        if (optind + 1 < argc) {
            fprintf(stderr, "usage: %s\n", usage);
            return NULL;
        }
        path = argv[optind];
    }
    return path ? path : DEFAULT_CONFIG;
}

static int cmd_run(int argc, char **argv)
{
    const char *path = config_arg(argc, argv, "pgwarden run [-c FILE]");
    return path ? node_run(path) : EX_USAGE_;
}

static int cmd_check_config(int argc, char **argv)
{
    const char *path = config_arg(argc, argv, "pgwarden check-config [-c] FILE");
    if (!path)
        return EX_USAGE_;
    struct cfg_errors *errs = calloc(1, sizeof(*errs));
    struct pgw_config *cfg = calloc(1, sizeof(*cfg));
    int rc = EX_CONFIG_;
    if (!errs || !cfg) {
        fprintf(stderr, "pgwarden: out of memory\n");
        rc = 1;
        goto out;
    }
    if (settings_load(path, environ, cfg, errs)) {
        printf("%s: OK\n", path);
        rc = 0;
    } else {
        cfg_errors_print(errs, stderr);
        fprintf(stderr, "%s: %zu problem%s\n", path, errs->count, errs->count == 1 ? "" : "s");
    }
out:
    free(errs);
    free(cfg);
    return rc;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    version_print(stdout);
    return 0;
}

static const struct command commands[] = {
    {"run", cmd_run, "run [-c FILE]", "run the node agent (supervisor with ha, proxy, web)"},
    {"ctl", ctl_main, "ctl COMMAND ...", "operate the cluster (list, switchover, ...)"},
    {"migrate", migrate_main, "migrate --from URL --to DBNAME", "move a database into the cluster"},
    {"demo", demo_main, "demo [--dir DIR] [--reset]",
     "run a local three-node cluster until Ctrl-C"},
    {"check-config", cmd_check_config, "check-config FILE",
     "report every problem in a config file"},
    {"passwd", web_passwd_main, "passwd [--stdin] [USER [ROLE]]",
     "print a password hash for [web] users"},
    {"version", cmd_version, "version", "print versions of pgwarden and its libraries"},
    {"help", cmd_help, "help", "show this help"},
};

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("pgwarden %s - PostgreSQL high availability with etcd, in one binary\n\n", PGW_VERSION);
    printf("usage: pgwarden <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        printf("  %-34s %s\n", commands[i].usage, commands[i].help);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cmd_help(0, NULL);
        return EX_USAGE_;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        name = "help";
    if (strcmp(name, "--version") == 0)
        name = "version";
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "pgwarden: unknown command '%s' (see 'pgwarden help')\n", name);
    return EX_USAGE_;
}
