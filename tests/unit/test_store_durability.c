/* Unit tests of agent/store durability: SIGKILL during writes, and the health of failing writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/store.h"

enum {
    KILLS = 25,          /* SIGKILLs of a writer, each at a random moment */
    SAMPLES_PER_TX = 20, /* samples in each committed batch (with one event) */
};

#include "store_fixture.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* One value of a query on a connection of its own (which also recovers the WAL after a kill). */
static void raw_query(const char *db, const char *sql, char *out, size_t cap)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 5000);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    assert_true(rc == SQLITE_ROW || rc == SQLITE_DONE);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static int64_t raw_int(const char *db, const char *sql)
{
    char buf[64];
    raw_query(db, sql, buf, sizeof(buf));
    return buf[0] ? strtoll(buf, NULL, 10) : -1;
}

/* The writer: batches numbered from the highest one in the file + 1, each one event (term =
 * batch) and SAMPLES_PER_TX samples (value = batch) in one transaction; after each commit the
 * batch number goes to fd. Every tenth batch also sets a meta key outside a transaction. Runs
 * until killed. */
static _Noreturn void writer(const char *dir, int fd, int64_t first)
{
    char err[512];
    struct store *s = store_open(dir, err, sizeof(err));
    if (!s)
        _exit(3);
    for (int64_t n = first;; n++) {
        if (!store_begin(s) || !store_event_add(s, n, "burst", "w", n, "{\"k\":\"v\"}", NULL))
            _exit(4);
        for (int i = 0; i < SAMPLES_PER_TX; i++)
            if (!store_sample_add(s, n, "w", "burst", (double)n))
                _exit(5);
        if (!store_commit(s))
            _exit(6);
        if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
            _exit(7);
        if (n % 10 == 0) {
            char v[32];
            snprintf(v, sizeof(v), "%lld", (long long)n);
            if (!store_meta_set(s, "last_tenth", v))
                _exit(8);
        }
    }
}

/* Reads what the pipe holds now (or until EOF if wait_eof); keeps the first and last numbers. */
static void drain(int fd, bool wait_eof, int64_t *first, int64_t *last, int64_t *count)
{
    int64_t buf[512];
    size_t have = 0; /* bytes of a partial number carried over */
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, wait_eof ? 10000 : 0);
        assert_true(r >= 0 || errno == EINTR);
        if (r <= 0)
            return;
        ssize_t n = read(fd, (char *)buf + have, sizeof(buf) - have);
        assert_true(n >= 0 || errno == EINTR);
        if (n == 0)
            return;
        if (n < 0)
            continue;
        have += (size_t)n;
        size_t whole = have / sizeof(int64_t);
        for (size_t i = 0; i < whole; i++) {
            if (*count == 0)
                *first = buf[i];
            else
                assert_int_equal(buf[i], *last + 1); /* committed in order, no gap */
            *last = buf[i];
            (*count)++;
        }
        have -= whole * sizeof(int64_t);
        memmove(buf, (char *)buf + whole * sizeof(int64_t), have);
        if (!wait_eof && whole == 0)
            return;
    }
}

/* KILLS times: a writer process commits batches through the store as fast as it can and is
 * SIGKILLed at a random moment while writing; then the file must pass integrity_check, hold
 * every batch the writer reported committed, whole (its event and all its samples), and no
 * batch twice; and the store must open it again. */
static void test_sigkill_during_writes(void **state)
{
    struct fx *f = *state;
    char buf[256];
    unsigned seed = (unsigned)time(NULL);
    int64_t reported_total = 0;

    char whole_sql[160]; /* a batch whose samples are not all there */
    snprintf(
        whole_sql, sizeof(whole_sql),
        "SELECT count(*) FROM (SELECT value FROM samples GROUP BY value HAVING count(*) <> %d)",
        SAMPLES_PER_TX);
    store_close(store_open(f->dir, f->err, sizeof(f->err)));
    print_message("seed %u\n", seed);
    for (int k = 0; k < KILLS; k++) {
        int64_t first = raw_int(f->db, "SELECT coalesce(max(term), 0) FROM events WHERE kind = "
                                       "'burst'") +
                        1;
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            writer(f->dir, p[1], first);
        }
        close(p[1]);
        int64_t lo = 0, hi = 0, count = 0;
        /* the first commit is reported: writes are under way; then 0-40 ms more of them */
        uint64_t start = now_us();
        while (count == 0 && now_us() - start < 30000000u)
            drain(p[0], false, &lo, &hi, &count);
        assert_true(count > 0);
        uint64_t until = now_us() + (uint64_t)(rand_r(&seed) % 40000);
        while (now_us() < until)
            drain(p[0], false, &lo, &hi, &count);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL); /* not an exit on error */
        drain(p[0], true, &lo, &hi, &count);
        close(p[0]);
        assert_int_equal(lo, first);
        reported_total += count;

        raw_query(f->db, "PRAGMA integrity_check", buf, sizeof(buf));
        assert_string_equal(buf, "ok");
        /* every reported batch is there, whole; batches are 1..max without gap or double */
        int64_t max = raw_int(f->db, "SELECT max(term) FROM events WHERE kind = 'burst'");
        assert_true(max >= hi);
        assert_true(max <= hi + 1); /* at most the one committed but not yet reported */
        assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events WHERE kind = 'burst'"), max);
        assert_int_equal(
            raw_int(f->db, "SELECT count(DISTINCT term) FROM events WHERE kind = 'burst'"), max);
        assert_int_equal(raw_int(f->db, "SELECT count(*) FROM samples WHERE metric = 'burst'"),
                         max * SAMPLES_PER_TX);
        assert_int_equal(raw_int(f->db, whole_sql), 0);
        int64_t tenth = raw_int(f->db, "SELECT value FROM meta WHERE key = 'last_tenth'");
        assert_true(tenth <= max && (tenth == -1 || tenth % 10 == 0));
        if (hi >= 20)
            assert_true(tenth >= (hi / 10) * 10 - 10);
        struct store *s = store_open(f->dir, f->err, sizeof(f->err));
        if (!s)
            fail_msg("reopen after kill %d: %s", k, f->err);
        store_close(s);
    }
    print_message("%d kills, %lld committed batches reported, all present\n", KILLS,
                  (long long)reported_total);
    assert_true(reported_total >= KILLS);
}

/* A failing write starts an episode (counted, with a reason), the next write that reaches the
 * file ends it; a read or an empty commit does not. The file size limit makes the writes fail
 * (EFBIG), in a child so that the limit stays there. */
static void test_write_failure_episode(void **state)
{
    struct fx *f = *state;
    struct store_health h;

    store_health(NULL, &h);
    assert_false(h.failing);
    assert_int_equal(h.episodes, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s = store_open(f->dir, f->err, sizeof(f->err));
        if (!s)
            _exit(2);
        store_health(s, &h);
        if (h.failing || h.episodes != 0)
            _exit(3);
        signal(SIGXFSZ, SIG_IGN);
        struct stat st;
        char wal[160];
        snprintf(wal, sizeof(wal), "%s-wal", f->db);
        struct rlimit rl = {0, RLIM_INFINITY};
        if (stat(wal, &st) == 0)
            rl.rlim_cur = (rlim_t)st.st_size;
        if (stat(f->db, &st) == 0 && (rlim_t)st.st_size > rl.rlim_cur)
            rl.rlim_cur = (rlim_t)st.st_size;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(4);
        char big[4096];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        int fails = 0;
        for (int i = 0; i < 50; i++)
            fails += !store_event_add(s, i, "fill", "m", 0, big, NULL);
        store_health(s, &h);
        if (fails == 0 || !h.failing || h.episodes != 1 || h.failures != (uint64_t)fails ||
            !h.error[0] || h.until_ms != 0)
            _exit(5);
        /* a transaction that writes nothing does not end the episode */
        if (!store_begin(s) || !store_commit(s))
            _exit(6);
        store_health(s, &h);
        if (!h.failing)
            _exit(7);
        rl.rlim_cur = RLIM_INFINITY;
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(8);
        if (!store_event_add(s, 99, "back", "m", 0, NULL, NULL))
            _exit(9);
        store_health(s, &h);
        if (h.failing || h.episodes != 1 || h.until_ms < h.since_ms ||
            h.failures != (uint64_t)fails)
            _exit(10);
        store_close(s);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char buf[64];
    raw_query(f->db, "PRAGMA integrity_check", buf, sizeof(buf));
    assert_string_equal(buf, "ok");
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events WHERE kind = 'back'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigkill_during_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_episode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
