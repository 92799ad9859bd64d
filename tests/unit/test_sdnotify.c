/* Unit tests for platform/sdnotify: path and abstract sockets, unset, watchdog parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "platform/sdnotify.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Binds a DGRAM socket at `name` ('@' = abstract). Returns the fd. */
static int bind_dgram(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(name);
    assert_true(n < sizeof(sa.sun_path));
    memcpy(sa.sun_path, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

/* Receives one datagram (waiting up to 10 s); returns its length. */
static ssize_t recv_one(int fd, char *buf, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

static void assert_nothing_pending(int fd)
{
    char buf[16];
    assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
}

static void test_path_socket(void **state)
{
    (void)state;
    char dir[] = "/tmp/pgw-sdnotify-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof(path), "%s/notify", dir);
    int fd = bind_dgram(path);
    assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);

    const char *msg = "READY=1\nSTATUS=running as leader";
    assert_int_equal(sdnotify_send(msg), 0);
    char buf[256];
    ssize_t n = recv_one(fd, buf, sizeof(buf));
    assert_int_equal(n, (ssize_t)strlen(msg));
    assert_memory_equal(buf, msg, strlen(msg));
    assert_nothing_pending(fd);

    assert_int_equal(sdnotify_send("WATCHDOG=1"), 0);
    n = recv_one(fd, buf, sizeof(buf));
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "WATCHDOG=1", 10);

    /* Nobody listening any more: the error is reported, not swallowed. */
    close(fd);
    unlink(path);
    assert_int_equal(sdnotify_send("READY=1"), -ENOENT);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@pgw-sdnotify-test-%ld-%ld", (long)getpid(), (long)random());
    int fd = bind_dgram(name);
    assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
    const char *msg = "STOPPING=1";
    assert_int_equal(sdnotify_send(msg), 0);
    char buf[64];
    ssize_t n = recv_one(fd, buf, sizeof(buf));
    assert_int_equal(n, (ssize_t)strlen(msg));
    assert_memory_equal(buf, msg, strlen(msg));
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_unset_is_noop(void **state)
{
    (void)state;
    /* A bound socket that must receive nothing while NOTIFY_SOCKET is unset or empty. */
    char name[64];
    snprintf(name, sizeof(name), "@pgw-sdnotify-noop-%ld", (long)getpid());
    int fd = bind_dgram(name);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify_send("READY=1"), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
    assert_int_equal(sdnotify_send("READY=1"), 0);
    assert_nothing_pending(fd);
    /* Other address forms are refused. */
    assert_int_equal(setenv("NOTIFY_SOCKET", "vsock:2:1234", 1), 0);
    assert_int_equal(sdnotify_send("READY=1"), -EAFNOSUPPORT);
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(setenv("NOTIFY_SOCKET", longname, 1), 0);
    assert_int_equal(sdnotify_send("READY=1"), -ENAMETOOLONG);
    assert_int_equal(sdnotify_send(NULL), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}

static void test_watchdog_usec(void **state)
{
    (void)state;
    char pid[32], other[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    snprintf(other, sizeof(other), "%ld", (long)getpid() + 1);

    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_int_equal(sdnotify_watchdog_usec(), 0);

    assert_int_equal(setenv("WATCHDOG_USEC", "30000000", 1), 0);
    assert_int_equal(sdnotify_watchdog_usec(), 30000000);
    assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
    assert_int_equal(sdnotify_watchdog_usec(), 30000000);
    assert_int_equal(setenv("WATCHDOG_PID", other, 1), 0);
    assert_int_equal(sdnotify_watchdog_usec(), 0);
    assert_int_equal(setenv("WATCHDOG_PID", "garbage", 1), 0);
    assert_int_equal(sdnotify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");

    const char *bad[] = {"", "0", "-5", "12x", " 7", "abc", "99999999999999999999999", "+3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(setenv("WATCHDOG_USEC", bad[i], 1), 0);
        assert_int_equal(sdnotify_watchdog_usec(), 0);
    }
    assert_int_equal(setenv("WATCHDOG_USEC", "18446744073709551615", 1), 0);
    assert_true(sdnotify_watchdog_usec() == UINT64_MAX);
    assert_int_equal(setenv("WATCHDOG_USEC", "1", 1), 0);
    assert_int_equal(sdnotify_watchdog_usec(), 1);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_unset_is_noop),
        cmocka_unit_test(test_watchdog_usec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
