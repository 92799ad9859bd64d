/* Migration command line: subcommands, options and their checks, usage text. */
#include "agent/migrate/migrate.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_FROM = 1000,
    OPT_TO,
    OPT_REPLACE,
    OPT_VERIFY,
    OPT_YES,
    OPT_ONLINE,
    OPT_JSON,
    OPT_ID,
    OPT_NO_PROGRESS,
    OPT_TIMEOUT,
    OPT_RI_FULL,
    OPT_HELP,
};

void mig_usage(FILE *out)
{
    fprintf(out,
            "usage: pgwarden migrate [-c FILE] --from URL --to DBNAME [--jobs N] [--replace]\n"
            "                        [--verify checksums] [--yes] [--no-progress] [--timeout S]\n"
            "       pgwarden migrate --online [-c FILE] --from URL --to DBNAME\n"
            "                        [--replica-identity-full] [--yes] [--no-progress]\n"
            "       pgwarden migrate cutover [-c FILE] [--id N] [--verify checksums] [--jobs N]\n"
            "                        [--replace --yes] [--timeout S] [--from URL]\n"
            "       pgwarden migrate abort [-c FILE] [--id N] [--from URL]\n"
            "       pgwarden migrate status [-c FILE] [--id N] [--json]\n"
            "\n"
            "Copies the database at URL (e.g. a Heroku DATABASE_URL: postgres://u:p@host:5432/db\n"
            "?sslmode=require) into the cluster as DBNAME with pg_dump/pg_restore (no owners, no\n"
            "ACLs), verifies row counts, sequences and schema objects (and with --verify\n"
            "checksums the rows themselves), and prints the new DATABASE_URL through the\n"
            "cluster's read-write forwarder. Stop writes to the source first: the copy is a\n"
            "consistent snapshot taken when the copy starts.\n"
            "\n"
            "  --from URL         the source; or set $PGWARDEN_MIGRATE_FROM (keeps the password\n"
            "                     off the command line)\n"
            "  --to DBNAME        the new database in the cluster (must not exist or be empty)\n"
            "  -j, --jobs N       parallel dump, restore and verification jobs (default 2)\n"
            "  --replace          replace an existing non-empty DBNAME (dropped only after the\n"
            "                     new copy is verified)\n"
            "  --verify checksums also compare a checksum of every table's rows\n"
            "  -y, --yes          do not ask for confirmation\n"
            "  --online           logical replication instead of a dump: the schema is copied,\n"
            "                     then a subscription in the cluster copies the data and follows\n"
            "                     the source's changes; the lag is shown live until `cutover`\n"
            "                     (Ctrl-C detaches: replication goes on)\n"
            "  --replica-identity-full  with --online: tables without a primary key get\n"
            "                     REPLICA IDENTITY FULL on the source (else they are refused)\n"
            "  cutover            stop the application's writes first; waits for zero lag,\n"
            "                     copies sequences, ends the replication, verifies, renames the\n"
            "                     copy to DBNAME; prints the downtime and the new DATABASE_URL\n"
            "  abort              ends an online job: subscription, slot, publication and the\n"
            "                     copy are dropped\n"
            "  status             the last (or --id N) migration job, also after a crash\n"
            "\n"
            "exit status: 0 done, 1 failed or refused, 64 usage, 69 source or cluster\n"
            "unreachable, 78 bad config file\n");
}

static int bad(char *err, size_t cap, const char *fmt, const char *arg)
{
    snprintf(err, cap, fmt, arg ? arg : "");
    return -EINVAL;
}

static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool mig_dbname_ok(const char *name, char *err, size_t err_cap)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63) {
        snprintf(err, err_cap, "--to: the database name must have 1 to 63 bytes");
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(err, err_cap, "--to: the database name must not hold control characters");
            return false;
        }
    }
    if (strcmp(name, "postgres") == 0 || strcmp(name, "template0") == 0 ||
        strcmp(name, "template1") == 0) {
        snprintf(err, err_cap, "--to: '%s' is a system database; choose another name", name);
        return false;
    }
    if (strncmp(name, "pgwarden_migrate_", 17) == 0) {
        snprintf(err, err_cap, "--to: names starting with pgwarden_migrate_ are reserved");
        return false;
    }
    return true;
}

int mig_opts_parse(int argc, char **argv, struct mig_opts *o, char *err, size_t err_cap)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"jobs", required_argument, NULL, 'j'},
        {"replace", no_argument, NULL, OPT_REPLACE},
        {"verify", required_argument, NULL, OPT_VERIFY},
        {"yes", no_argument, NULL, 'y'},
        {"online", no_argument, NULL, OPT_ONLINE},
        {"json", no_argument, NULL, OPT_JSON},
        {"id", required_argument, NULL, OPT_ID},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"replica-identity-full", no_argument, NULL, OPT_RI_FULL},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    memset(o, 0, sizeof(*o));
    o->jobs = 2;
    o->command = MIG_CMD_RUN;
    err[0] = '\0';
    optind = 0; /* 0: GNU getopt fully reinitializes (a parse may follow another) */
    opterr = 0;
    int ch;
    long long v;
    while ((ch = getopt_long(argc, argv, ":c:j:yh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case OPT_FROM:
            o->from = optarg;
            break;
        case OPT_TO:
            o->to = optarg;
            break;
        case 'j':
            if (!parse_int(optarg, 1, 64, &v))
                return bad(err, err_cap, "--jobs: '%s' is not a number from 1 to 64", optarg);
            o->jobs = (int)v;
            break;
        case OPT_REPLACE:
            o->replace = true;
            break;
        case OPT_VERIFY:
            if (strcmp(optarg, "checksums") != 0 && strcmp(optarg, "counts") != 0)
                return bad(err, err_cap, "--verify: '%s' (use: checksums or counts)", optarg);
            o->checksums = strcmp(optarg, "checksums") == 0;
            break;
        case 'y':
            o->yes = true;
            break;
        case OPT_ONLINE:
            o->online = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_ID:
            if (!parse_int(optarg, 1, LLONG_MAX, &v))
                return bad(err, err_cap, "--id: '%s' is not a job number", optarg);
            o->id = v;
            break;
        case OPT_NO_PROGRESS:
            o->no_progress = true;
            break;
        case OPT_RI_FULL:
            o->ri_full = true;
            break;
        case OPT_TIMEOUT:
            if (!parse_int(optarg, 0, 7 * 24 * 3600, &v))
                return bad(err, err_cap, "--timeout: '%s' is not a number of seconds", optarg);
            o->timeout_s = (int)v;
            break;
        case 'h':
            o->command = MIG_CMD_HELP;
            return 0;
        case ':':
            return bad(err, err_cap, "option %s needs a value", argv[optind - 1]);
        default:
            return bad(err, err_cap, "unknown option %s", argv[optind - 1]);
        }
    }
    if (o->command == MIG_CMD_HELP)
        return 0;
    if (optind < argc) { /* GNU getopt moved the operands to the end */
        const char *cmd = argv[optind];
        if (strcmp(cmd, "status") == 0)
            o->command = MIG_CMD_STATUS;
        else if (strcmp(cmd, "cutover") == 0)
            o->command = MIG_CMD_CUTOVER;
        else if (strcmp(cmd, "abort") == 0)
            o->command = MIG_CMD_ABORT;
        else if (strcmp(cmd, "help") == 0)
            o->command = MIG_CMD_HELP;
        else
            return bad(err, err_cap, "unknown migrate command '%s' (status, cutover, abort, help)",
                       cmd);
        if (optind + 1 < argc)
            return bad(err, err_cap, "unexpected argument '%s'", argv[optind + 1]);
    }
    if (o->command == MIG_CMD_HELP)
        return 0;
    if (o->command == MIG_CMD_STATUS) {
        if (o->from || o->to || o->replace || o->online || o->checksums || o->ri_full)
            return bad(err, err_cap, "status takes only -c, --id and --json%s", NULL);
        return 0;
    }
    if (o->command == MIG_CMD_CUTOVER || o->command == MIG_CMD_ABORT) {
        const char *cmd = o->command == MIG_CMD_CUTOVER ? "cutover" : "abort";
        if (o->to || o->online || o->ri_full || o->json)
            return bad(err, err_cap,
                       "%s acts on a recorded online job: --to, --online, "
                       "--replica-identity-full and --json do not apply",
                       cmd);
        if (o->command == MIG_CMD_ABORT && (o->checksums || o->replace))
            return bad(err, err_cap, "abort takes only -c, --id, --from and --yes%s", NULL);
        return 0;
    }
    if (o->id || o->json)
        return bad(err, err_cap, "--id and --json are options of `migrate status`%s", NULL);
    if (o->ri_full && !o->online)
        return bad(err, err_cap, "--replica-identity-full goes with --online%s", NULL);
    if (o->online && o->checksums)
        return bad(err, err_cap,
                   "--verify is an option of `migrate cutover` in online mode (the verification "
                   "runs at the cutover)%s",
                   NULL);
    if (!o->to)
        return bad(err, err_cap, "--to DBNAME is required%s", NULL);
    if (!mig_dbname_ok(o->to, err, err_cap))
        return -EINVAL;
    return 0;
}
