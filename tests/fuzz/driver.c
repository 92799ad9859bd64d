/* Replays fuzz inputs (files or folders of files) through a target built without libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

/*
 * Usage: driver [-n NAME] PATH...   Each regular file (a PATH, or a file directly inside a PATH
 * that is a folder, in name order) is fed to LLVMFuzzerTestOneInput in a child process of its
 * own, so that a crash, a sanitizer report or a leak (LeakSanitizer runs at the child's exit)
 * fails that input only. Prints one line per failing input and "NAME: N passed, N failed";
 * exits 1 if any failed.
 */

enum { INPUT_TIMEOUT_S = 60 };

static unsigned passed, failed;

static int run_child(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return 2;
    /* The exact size, so that ASan catches a read one byte past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact)
        return 2;
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static void run_one(const char *path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        failed++;
        return;
    }
    if (pid == 0) {
        alarm(INPUT_TIMEOUT_S);
        exit(run_child(path));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        passed++;
        return;
    }
    failed++;
    if (WIFSIGNALED(st))
        printf("  FAILED %s (signal %d%s)\n", path, WTERMSIG(st),
               WTERMSIG(st) == SIGALRM ? ": timeout" : "");
    else
        printf("  FAILED %s (exit %d)\n", path, WEXITSTATUS(st));
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_path(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        printf("  FAILED %s (%s)\n", path, strerror(errno));
        failed++;
        return;
    }
    if (!S_ISDIR(sb.st_mode)) {
        run_one(path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, by_name);
    if (n < 0) {
        printf("  FAILED %s (%s)\n", path, strerror(errno));
        failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(file, &sb) == 0 && S_ISREG(sb.st_mode))
            run_one(file);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const char *name = "fuzz-regress";
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "-n") == 0) {
        name = argv[2];
        i = 3;
    }
    for (; i < argc; i++)
        run_path(argv[i]);
    printf("%s: %u passed, %u failed\n", name, passed, failed);
    return failed ? 1 : 0;
}
