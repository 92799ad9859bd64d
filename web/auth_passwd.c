/* `pgwarden passwd`: reads a password and prints a PBKDF2-SHA256 line for [web] users. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "web/auth.h"
#include "web/auth_int.h"

enum { PW_MAX = 1024, EXIT_USAGE = 64 };

static const char USAGE[] =
    "usage: pgwarden passwd [--stdin] [--iterations N] [USER [admin|readonly]]\n"
    "  Reads a password (asked twice without echo on a terminal; --stdin: the first line of\n"
    "  standard input) and prints its PBKDF2-SHA256 hash, or with USER the whole\n"
    "  USER:ROLE:hash item for [web] users (ROLE defaults to admin).\n"
    "  --iterations N   PBKDF2 iterations, 1000..10000000 (default 600000)\n";

/* Reads one line (without the newline) from f. False on EOF before any byte, or too long. */
static bool read_line(FILE *f, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, f))
        return false;
    size_t len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    else if (len == cap - 1 && !feof(f))
        return false; /* longer than the buffer */
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    return true;
}

/* Prompts on the terminal with echo off. */
static bool read_tty(const char *prompt, char *buf, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+e");
    FILE *in = tty ? tty : stdin, *out = tty ? tty : stderr;
    struct termios old, quiet;
    bool restore = tcgetattr(fileno(in), &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fileno(in), TCSAFLUSH, &quiet);
    }
    fputs(prompt, out);
    fflush(out);
    bool ok = read_line(in, buf, cap);
    if (restore)
        tcsetattr(fileno(in), TCSAFLUSH, &old);
    fputc('\n', out);
    fflush(out);
    if (tty)
        fclose(tty);
    return ok;
}

static bool parse_iterations(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v < WEB_AUTH_ITER_MIN ||
        v > WEB_AUTH_ITER_MAX)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Gets the password: one line of stdin, or twice from the terminal. */
static int get_password(bool from_stdin, char *pw, size_t cap)
{
    if (from_stdin || !isatty(STDIN_FILENO)) {
        if (!read_line(stdin, pw, cap)) {
            fprintf(stderr, "pgwarden passwd: no password on standard input (or too long)\n");
            return 1;
        }
        return 0;
    }
    char again[PW_MAX];
    int rc = 0;
    if (!read_tty("Password: ", pw, cap) || !read_tty("Password again: ", again, sizeof(again))) {
        fprintf(stderr, "pgwarden passwd: no password read\n");
        rc = 1;
    } else if (strcmp(pw, again) != 0) {
        fprintf(stderr, "pgwarden passwd: the passwords differ\n");
        rc = 1;
    }
    mbedtls_platform_zeroize(again, sizeof(again));
    return rc;
}

int web_passwd_main(int argc, char **argv)
{
    static const struct option opts[] = {{"stdin", no_argument, NULL, 's'},
                                         {"iterations", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    bool from_stdin = false;
    unsigned iterations = WEB_AUTH_ITER_DEFAULT;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "si:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            from_stdin = true;
            break;
        case 'i':
            if (!parse_iterations(optarg, &iterations)) {
                fprintf(stderr, "pgwarden passwd: --iterations must be 1000..10000000\n");
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            fputs(USAGE, stderr);
            return EXIT_USAGE;
        }
    }
    const char *user = optind < argc ? argv[optind] : NULL;
    const char *role = optind + 1 < argc ? argv[optind + 1] : "admin";
    if (optind + 2 < argc) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(role, "admin") != 0 && strcmp(role, "readonly") != 0) {
        fprintf(stderr, "pgwarden passwd: role must be admin or readonly\n");
        return EXIT_USAGE;
    }
    char pw[PW_MAX], line[WEB_AUTH_HASH_LINE_MAX];
    int rc = get_password(from_stdin, pw, sizeof(pw));
    if (rc == 0 && pw[0] == '\0') {
        fprintf(stderr, "pgwarden passwd: the password is empty\n");
        rc = 1;
    }
    if (rc == 0 && web_auth_hash_password(pw, iterations, line, sizeof(line)) != 0) {
        fprintf(stderr, "pgwarden passwd: hashing failed\n");
        rc = 1;
    }
    mbedtls_platform_zeroize(pw, sizeof(pw));
    if (rc != 0)
        return rc;
    if (user) {
        char item[WEB_AUTH_USER_MAX + 16 + WEB_AUTH_HASH_LINE_MAX];
        struct auth_user u;
        const char *why = "";
        snprintf(item, sizeof(item), "%s:%s:%s", user, role, line);
        if (!auth_user_parse(item, strlen(item), &u, &why)) {
            fprintf(stderr, "pgwarden passwd: %s\n", why);
            return EXIT_USAGE;
        }
        printf("%s\n", item);
    } else {
        printf("%s\n", line);
    }
    return 0;
}
