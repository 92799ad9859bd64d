/* demo command line: --dir, --reset, --etcd, --bin-dir, with defaults and an absolute folder. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/demo/demo.h"

static const char usage[] =
    "usage: pgwarden demo [--dir DIR] [--reset] [--etcd PATH] [--bin-dir PGBIN]\n"
    "\n"
    "Runs a local cluster on 127.0.0.1: three etcd members and three pgwarden nodes, each\n"
    "managing its own PostgreSQL 15 (as the postgres user when started as root), until Ctrl-C.\n"
    "\n"
    "  --dir DIR       demo folder (default " DEMO_DEFAULT_DIR "); an existing one is reused:\n"
    "                  same ports, the cluster resumes with its data\n"
    "  --reset         wipe the demo folder first and start a new cluster\n"
    "  --etcd PATH     etcd executable (default " DEMO_DEFAULT_ETCD ", Debian's etcd-server)\n"
    "  --bin-dir DIR   PostgreSQL programs (default " DEMO_DEFAULT_PG_BIN ")\n";

static bool set_str(char *dst, size_t cap, const char *what, const char *v)
{
    if (!v[0] || strlen(v) >= cap) {
        fprintf(stderr, "pgwarden demo: %s: %s\n", what, v[0] ? "too long" : "empty");
        return false;
    }
    snprintf(dst, cap, "%s", v);
    return true;
}

/* An absolute folder without trailing slashes. */
static bool set_dir(struct demo_opts *o, const char *v)
{
    int n;
    if (!v[0]) {
        fprintf(stderr, "pgwarden demo: --dir: empty\n");
        return false;
    }
    if (v[0] == '/') {
        n = snprintf(o->dir, sizeof(o->dir), "%s", v);
    } else {
        char cwd[PGW_PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            fprintf(stderr, "pgwarden demo: cannot read the current folder\n");
            return false;
        }
        n = snprintf(o->dir, sizeof(o->dir), "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, v);
    }
    /* Room for DIR/n1/state/pg/.s.PGSQL.NNNNN (a unix socket path is at most 107 bytes). */
    if (n < 0 || (size_t)n >= sizeof(o->dir) || n > 70) {
        fprintf(stderr, "pgwarden demo: --dir: '%s' is too long (at most 70 characters)\n", v);
        return false;
    }
    size_t len = strlen(o->dir);
    while (len > 1 && o->dir[len - 1] == '/')
        o->dir[--len] = '\0';
    if (strcmp(o->dir, "/") == 0) {
        fprintf(stderr, "pgwarden demo: --dir: refusing '/'\n");
        return false;
    }
    return true;
}

int demo_parse_args(int argc, char **argv, struct demo_opts *o)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},  {"reset", no_argument, NULL, 'r'},
        {"etcd", required_argument, NULL, 'e'}, {"bin-dir", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},       {0},
    };
    memset(o, 0, sizeof(*o));
    snprintf(o->dir, sizeof(o->dir), "%s", DEMO_DEFAULT_DIR);
    snprintf(o->etcd, sizeof(o->etcd), "%s", DEMO_DEFAULT_ETCD);
    snprintf(o->bin_dir, sizeof(o->bin_dir), "%s", DEMO_DEFAULT_PG_BIN);
    optind = 1;
    opterr = 1;
    int ch;
    bool ok = true;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            ok = set_dir(o, optarg) && ok;
            break;
        case 'r':
            o->reset = true;
            break;
        case 'e':
            ok = set_str(o->etcd, sizeof(o->etcd), "--etcd", optarg) && ok;
            break;
        case 'b':
            ok = set_str(o->bin_dir, sizeof(o->bin_dir), "--bin-dir", optarg) && ok;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            ok = false;
            break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pgwarden demo: unexpected argument '%s'\n", argv[optind]);
        ok = false;
    }
    if (!ok) {
        fputs(usage, stderr);
        return DEMO_EX_USAGE;
    }
    return 0;
}
