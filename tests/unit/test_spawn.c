/* Unit tests for platform/spawn: output, exit codes, timeouts, groups, fds, stdin, env. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "platform/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Upper bounds are loose: the arm64 build runs under qemu-user. */
enum { SLACK_MS = 10000 };

static void test_output_and_exit_code(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 30000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.term_signal, 0);
    assert_false(r.timed_out);
    assert_false(r.output_truncated);
    assert_non_null(r.output);
    /* Both lines, in order (one shell writes them sequentially to the same pipe). */
    assert_string_equal(r.output, "out\nerr\n");
    assert_int_equal(r.output_len, 8);
    assert_true(r.elapsed_ms < 30000);
    spawn_result_free(&r);
    assert_null(r.output);
}

struct ticks {
    int n;
};

static void count_tick(void *arg)
{
    struct ticks *t = arg;
    t->n++;
}

/* The tick runs while the program runs, at about its interval, and never after it exited. */
static void test_tick_while_running(void **state)
{
    (void)state;
    struct ticks t = {0};
    const char *argv[] = {"sleep", "0.6", NULL};
    struct spawn_opts o = {
        .argv = argv, .timeout_ms = 30000, .tick = count_tick, .tick_arg = &t, .tick_ms = 50};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    /* 600 ms at 50 ms: about 11; loose for qemu, but it must have run repeatedly */
    assert_true(t.n >= 3);
    assert_true((uint64_t)t.n <= r.elapsed_ms / 50 + 1);
    spawn_result_free(&r);

    /* a program faster than the interval: no tick at all */
    t.n = 0;
    const char *quick[] = {"/bin/true", NULL};
    o.argv = quick;
    o.tick_ms = 0; /* the default, 1000 ms */
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_int_equal(t.n, 0);
    spawn_result_free(&r);
}

static void test_killed_by_signal(void **state)
{
    (void)state;
    const char *argv[] = {"/bin/sh", "-c", "echo bye; kill -9 $$", NULL};
    struct spawn_opts o = {.argv = argv};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.term_signal, SIGKILL);
    assert_false(r.timed_out);
    assert_string_equal(r.output, "bye\n");
    spawn_result_free(&r);
}

static void test_timeout_sigterm(void **state)
{
    (void)state;
    const char *argv[] = {"sleep", "30", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 300, .kill_grace_ms = 5000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_true(r.timed_out);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.term_signal, SIGTERM);
    assert_true(r.elapsed_ms >= 300);
    /* SIGTERM was enough: well before the grace ran out. */
    assert_true(r.elapsed_ms < 300 + 5000);
    spawn_result_free(&r);
}

static void test_timeout_sigkill_after_grace(void **state)
{
    (void)state;
    /* The ignored disposition is inherited by sleep; "ready" proves the trap is set. */
    const char *argv[] = {"/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 1000, .kill_grace_ms = 400};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_true(r.timed_out);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.term_signal, SIGKILL);
    assert_string_equal(r.output, "ready\n");
    assert_true(r.elapsed_ms >= 1000 + 400);
    assert_true(r.elapsed_ms < 1000 + 400 + SLACK_MS);
    spawn_result_free(&r);
}

/* A readable cancel_fd (a signalfd with SIGTERM pending, in the agent) stops the program as a
 * timeout would, long before its own timeout. */
static void test_cancel_fd(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    const char *argv[] = {"/bin/sleep", "30", NULL};
    struct spawn_opts o = {
        .argv = argv, .timeout_ms = 20000, .kill_grace_ms = 500, .cancel_fd = p[0]};
    struct spawn_result r;
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_true(r.cancelled);
    assert_false(r.timed_out);
    assert_int_equal(r.term_signal, SIGTERM);
    assert_true(r.elapsed_ms < SLACK_MS);
    spawn_result_free(&r);
    /* nothing to read: it runs to its end */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    const char *quick[] = {"/bin/true", NULL};
    o.argv = quick;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_false(r.cancelled);
    assert_int_equal(r.exit_code, 0);
    spawn_result_free(&r);
    close(p[0]);
    close(p[1]);
}

static void test_missing_program(void **state)
{
    (void)state;
    const char *argv1[] = {"/nonexistent/pgw-no-such-program", NULL};
    struct spawn_opts o = {.argv = argv1};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), -ENOENT);
    assert_null(r.output);
    /* The child's exit(127) after the failed exec is not passed off as the program's. */
    assert_int_equal(r.exit_code, -1);
    spawn_result_free(&r);

    const char *argv2[] = {"pgw-no-such-program-in-path", NULL};
    o.argv = argv2;
    assert_int_equal(spawn_run(&o, &r), -ENOENT);
    spawn_result_free(&r);

    o.argv = NULL;
    assert_int_equal(spawn_run(&o, &r), -EINVAL);
}

/* Failures inside the child (after fork) come back through the exec error pipe. */
static void test_exec_failures_reported(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgw-spawn-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[64];
    snprintf(file, sizeof(file), "%s/not-executable", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
    close(fd);

    const char *argv[] = {file, NULL};
    struct spawn_opts o = {.argv = argv};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), -EACCES);
    spawn_result_free(&r);

    const char *argv2[] = {"/bin/true", NULL};
    struct spawn_opts o2 = {.argv = argv2, .cwd = "/nonexistent/pgw-dir"};
    assert_int_equal(spawn_run(&o2, &r), -ENOENT);
    spawn_result_free(&r);

    unlink(file);
    rmdir(dir);
}

static void test_output_cap_drains(void **state)
{
    (void)state;
    /* 1 MiB of 'x' then a marker on stderr: the child must not block on a full pipe. */
    const char *argv[] = {"/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; exit 7", NULL};
    struct spawn_opts o = {.argv = argv, .out_cap = 1000, .timeout_ms = 60000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_false(r.timed_out);
    assert_int_equal(r.exit_code, 7);
    assert_true(r.output_truncated);
    assert_int_equal(r.output_len, 1000);
    assert_int_equal(strlen(r.output), 1000);
    for (size_t i = 0; i < r.output_len; i++)
        assert_int_equal(r.output[i], 'x');
    spawn_result_free(&r);

    /* Default cap: 64 KiB. */
    struct spawn_opts d = {.argv = argv, .timeout_ms = 60000};
    assert_int_equal(spawn_run(&d, &r), 0);
    assert_int_equal(r.output_len, 64 * 1024);
    assert_true(r.output_truncated);
    spawn_result_free(&r);

    /* Exactly at the cap: not truncated. */
    const char *argv3[] = {"/bin/sh", "-c", "printf 12345", NULL};
    struct spawn_opts e = {.argv = argv3, .out_cap = 5};
    assert_int_equal(spawn_run(&e, &r), 0);
    assert_string_equal(r.output, "12345");
    assert_false(r.output_truncated);
    spawn_result_free(&r);
}

/* Becomes the child subreaper so that orphans come to us; qemu-user refuses it (EINVAL). */
static bool try_subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
}

/* The state and (for a zombie, Linux >= 3.5) the wait status of pid from /proc/pid/stat.
 * Returns the state character, or 0 if the process is gone. */
static char proc_state(pid_t pid, int *status)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    char state = p[2];
    /* Fields after the command: index 0 is field 3 (state), field 52 is exit_code. */
    *status = -1;
    int field = 3;
    for (const char *q = p + 2; *q; q++) {
        if (*q == ' ' && ++field == 52) {
            char *end = NULL;
            long v = strtol(q + 1, &end, 10);
            if (end != q + 1)
                *status = (int)v;
            break;
        }
    }
    return state;
}

/* Waits (bounded) until an orphaned grandchild is dead. True if it died; *status is its wait
 * status when known (we are its reaper, or it is still a zombie), else -1. */
static bool orphan_dead(pid_t pid, bool reaper, int *status)
{
    *status = -1;
    for (int i = 0; i < SLACK_MS / 10; i++) {
        if (reaper) {
            int st = 0;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                *status = st;
                return true;
            }
            if (w < 0)
                return true; /* not ours any more: already reaped */
        } else {
            char state = proc_state(pid, status);
            if (state == 0 || state == 'Z' || state == 'X')
                return true;
        }
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    if (reaper)
        (void)waitpid(pid, NULL, 0);
    return false;
}

static pid_t parse_pid(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    assert_true(end != s && v > 0 && v < 1 << 30);
    return (pid_t)v;
}

static void test_grandchild_killed_on_timeout(void **state)
{
    (void)state;
    /* Orphans come to us, so we can see how the grandchild died. */
    bool reaper = try_subreaper();
    const char *argv[] = {"/bin/sh", "-c", "sleep 30 & echo $!; wait", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 500, .kill_grace_ms = 5000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_true(r.timed_out);
    assert_true(r.elapsed_ms < 500 + 5000);
    pid_t g = parse_pid(r.output);
    int st;
    assert_true(orphan_dead(g, reaper, &st));
    if (st != -1) {
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGTERM);
    }
    spawn_result_free(&r);
}

static void test_grandchild_ignoring_term_killed(void **state)
{
    (void)state;
    bool reaper = try_subreaper();
    /* The shell dies on SIGTERM at once; its background child ignores it. */
    const char *argv[] = {"/bin/sh", "-c", "(trap '' TERM; exec sleep 30) & echo $!; wait", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 500, .kill_grace_ms = 8000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_true(r.timed_out);
    assert_int_equal(r.term_signal, SIGTERM);
    /* No need to wait for the grace: the child is gone, stragglers get SIGKILL. */
    assert_true(r.elapsed_ms < 500 + 8000);
    pid_t g = parse_pid(r.output);
    /* It ignores SIGTERM: dying at all proves the group got SIGKILL. */
    int st;
    assert_true(orphan_dead(g, reaper, &st));
    if (st != -1) {
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGKILL);
    }
    spawn_result_free(&r);
}

/* A background grandchild keeping the output pipe open does not hold up the return. */
static void test_background_holder_does_not_block(void **state)
{
    (void)state;
    bool reaper = try_subreaper();
    const char *argv[] = {"/bin/sh", "-c", "sleep 30 & echo $!", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 20000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_false(r.timed_out);
    assert_int_equal(r.exit_code, 0);
    assert_true(r.elapsed_ms < 20000);
    pid_t g = parse_pid(r.output);
    /* spawn_run left it alone: still alive. Not ours to kill in real use; clean up. */
    int st;
    char ps = proc_state(g, &st);
    assert_true(ps != 0 && ps != 'Z' && ps != 'X');
    assert_int_equal(kill(g, SIGKILL), 0);
    assert_true(orphan_dead(g, reaper, &st));
    spawn_result_free(&r);
}

static void test_no_fd_leak(void **state)
{
    (void)state;
    /* A deliberately inheritable fd, at a high number and at a low one. */
    int leak = open("/dev/null", O_RDONLY);
    assert_true(leak >= 0);
    assert_int_equal(dup2(leak, 100), 100);
    const char *argv[] = {"ls", "/proc/self/fd", NULL};
    struct spawn_opts o = {.argv = argv, .timeout_ms = 30000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    /* 0-2, and 3 is ls's own directory fd. */
    assert_string_equal(r.output, "0\n1\n2\n3\n");
    spawn_result_free(&r);
    close(100);
    close(leak);
}

static void test_stdin_data(void **state)
{
    (void)state;
    const char *argv[] = {"cat", NULL};
    struct spawn_opts o = {.argv = argv, .stdin_data = "hello\nworld\n", .timeout_ms = 30000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.output, "hello\nworld\n");
    spawn_result_free(&r);

    /* 1 MiB in while the output is read: no deadlock between the two pipes. */
    size_t n = 1024 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    const char *argv2[] = {"/bin/sh", "-c", "cat; echo", NULL};
    struct spawn_opts o2 = {
        .argv = argv2, .stdin_data = big, .out_cap = 2 * 1024 * 1024, .timeout_ms = 60000};
    assert_int_equal(spawn_run(&o2, &r), 0);
    assert_false(r.timed_out);
    assert_int_equal(r.output_len, n + 1);
    assert_memory_equal(r.output, big, n);
    spawn_result_free(&r);
    free(big);

    /* Without stdin_data, stdin is /dev/null. */
    const char *argv3[] = {"readlink", "/proc/self/fd/0", NULL};
    struct spawn_opts o3 = {.argv = argv3};
    assert_int_equal(spawn_run(&o3, &r), 0);
    assert_string_equal(r.output, "/dev/null\n");
    spawn_result_free(&r);

    /* A child that never reads a large stdin does not block us (or SIGPIPE us). */
    const char *argv4[] = {"/bin/true", NULL};
    struct spawn_opts o4 = {.argv = argv4, .timeout_ms = 30000};
    char *big2 = malloc(n + 1);
    assert_non_null(big2);
    memset(big2, 'b', n);
    big2[n] = '\0';
    o4.stdin_data = big2;
    assert_int_equal(spawn_run(&o4, &r), 0);
    assert_false(r.timed_out);
    assert_int_equal(r.exit_code, 0);
    spawn_result_free(&r);
    free(big2);
}

static void test_env_cwd_and_signals(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgw-spawn-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* The parent blocks and ignores signals (as the event loop does): the child must not. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    assert_int_equal(sigprocmask(SIG_BLOCK, &set, &old), 0);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    assert_int_equal(sigaction(SIGPIPE, &ign, &old_pipe), 0);

    const char *envp[] = {"PGW_TEST_VAR=hello world", "PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"/bin/sh", "-c", "echo \"$PGW_TEST_VAR\"; pwd", NULL};
    struct spawn_opts o = {.argv = argv, .envp = envp, .cwd = dir, .timeout_ms = 30000};
    struct spawn_result r;
    assert_int_equal(spawn_run(&o, &r), 0);
    char expect[256];
    snprintf(expect, sizeof(expect), "hello world\n%s\n", dir);
    assert_string_equal(r.output, expect);
    spawn_result_free(&r);

    /* grep itself (no shell, which could reset its own mask) reports what it inherited. */
    const char *argv2[] = {"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status", NULL};
    struct spawn_opts o2 = {.argv = argv2, .timeout_ms = 30000};
    assert_int_equal(spawn_run(&o2, &r), 0);
    /* Standard signals (1..31) must be neither blocked nor ignored. Real-time ones reserved by
     * libc (32, 33) cannot be reset by a program and follow whatever the test runner inherited. */
    unsigned long long blk = ~0ULL, ign2 = ~0ULL;
    assert_int_equal(sscanf(r.output, "SigBlk:\t%llx\nSigIgn:\t%llx", &blk, &ign2), 2);
    assert_int_equal(blk & 0x7fffffffULL, 0);
    assert_int_equal(ign2 & 0x7fffffffULL, 0);
    spawn_result_free(&r);

    assert_int_equal(sigaction(SIGPIPE, &old_pipe, NULL), 0);
    assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_and_exit_code),
        cmocka_unit_test(test_tick_while_running),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_timeout_sigterm),
        cmocka_unit_test(test_timeout_sigkill_after_grace),
        cmocka_unit_test(test_cancel_fd),
        cmocka_unit_test(test_missing_program),
        cmocka_unit_test(test_exec_failures_reported),
        cmocka_unit_test(test_output_cap_drains),
        cmocka_unit_test(test_grandchild_killed_on_timeout),
        cmocka_unit_test(test_grandchild_ignoring_term_killed),
        cmocka_unit_test(test_background_holder_does_not_block),
        cmocka_unit_test(test_no_fd_leak),
        cmocka_unit_test(test_stdin_data),
        cmocka_unit_test(test_env_cwd_and_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
