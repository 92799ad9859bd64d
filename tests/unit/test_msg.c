/* Unit tests for platform/msg: round trips, size and type checks, bad datagrams, errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "platform/msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { T_PING = 1, T_STATUS = 2, T_EMPTY = 3, T_BIG = 4, T_UNKNOWN = 99 };

static const struct msg_spec specs[] = {
    {T_PING, "ping", 4, 4},
    {T_STATUS, "status", 8, 256},
    {T_EMPTY, "empty", 0, 0},
    {T_BIG, "big", 0, MSG_MAX_PAYLOAD},
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

struct pair {
    int fds[2];
};

static int setup_pair(void **state)
{
    struct pair *p = malloc(sizeof(*p));
    if (!p || msg_pair(p->fds) != 0) {
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static int teardown_pair(void **state)
{
    struct pair *p = *state;
    if (p->fds[0] >= 0)
        close(p->fds[0]);
    if (p->fds[1] >= 0)
        close(p->fds[1]);
    free(p);
    return 0;
}

static void test_pair_flags(void **state)
{
    struct pair *p = *state;
    for (int i = 0; i < 2; i++) {
        assert_true(fcntl(p->fds[i], F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(p->fds[i], F_GETFD) & FD_CLOEXEC);
        int type = 0;
        socklen_t len = sizeof(type);
        assert_int_equal(getsockopt(p->fds[i], SOL_SOCKET, SO_TYPE, &type, &len), 0);
        assert_int_equal(type, SOCK_SEQPACKET);
    }
}

static void test_round_trip(void **state)
{
    struct pair *p = *state;
    const char status[] = "leader=node1 term=7";
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 10, "abcd", 4), 0);
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 3, 11, status, sizeof(status)), 0);
    assert_int_equal(msg_send(p->fds[0], T_EMPTY, 4, 5, 12, NULL, 0), 0);
    char *big = malloc(MSG_MAX_PAYLOAD);
    assert_non_null(big);
    for (size_t i = 0; i < MSG_MAX_PAYLOAD; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(msg_send(p->fds[0], T_BIG, 1, 2, 13, big, MSG_MAX_PAYLOAD), 0);

    char *buf = malloc(MSG_MAX_PAYLOAD);
    assert_non_null(buf);
    struct msg_hdr h;
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, MSG_MAX_PAYLOAD), 4);
    assert_int_equal(h.magic, MSG_MAGIC);
    assert_int_equal(h.type, T_PING);
    assert_int_equal(h.src, 1);
    assert_int_equal(h.dst, 2);
    assert_int_equal(h.seq, 10);
    assert_int_equal(h.len, 4);
    assert_memory_equal(buf, "abcd", 4);

    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, MSG_MAX_PAYLOAD),
                     (int)sizeof(status));
    assert_int_equal(h.type, T_STATUS);
    assert_int_equal(h.dst, 3);
    assert_int_equal(h.seq, 11);
    assert_string_equal(buf, status);

    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, MSG_MAX_PAYLOAD), 0);
    assert_int_equal(h.type, T_EMPTY);
    assert_int_equal(h.src, 4);
    assert_int_equal(h.dst, 5);

    memset(buf, 0, MSG_MAX_PAYLOAD);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, MSG_MAX_PAYLOAD), MSG_MAX_PAYLOAD);
    assert_int_equal(h.type, T_BIG);
    assert_memory_equal(buf, big, MSG_MAX_PAYLOAD);

    /* The other direction works too, and an empty socket says -EAGAIN. */
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, MSG_MAX_PAYLOAD), -EAGAIN);
    assert_int_equal(msg_send(p->fds[1], T_PING, 2, 1, 14, "wxyz", 4), 0);
    assert_int_equal(msg_recv(p->fds[0], specs, NSPECS, &h, buf, 4), 4);
    assert_memory_equal(buf, "wxyz", 4);
    assert_int_equal(h.seq, 14);
    free(big);
    free(buf);
}

static void test_size_checks(void **state)
{
    struct pair *p = *state;
    char buf[512];
    char payload[300];
    memset(payload, 'p', sizeof(payload));
    struct msg_hdr h;
    /* ping needs exactly 4 bytes: 3 and 5 are rejected, each followed by a good message. */
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 1, payload, 3), 0);
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 2, "good", 4), 0);
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 2, 3, payload, 257), 0);
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 2, 4, payload, 7), 0);
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 2, 5, payload, 256), 0);
    assert_int_equal(msg_send(p->fds[0], T_EMPTY, 1, 2, 6, payload, 1), 0);
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 2, 7, payload, 8), 0);

    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 1);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 4);
    assert_int_equal(h.seq, 2);
    assert_memory_equal(buf, "good", 4);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 3);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 4);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 256);
    assert_int_equal(h.seq, 5);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 6);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 8);
    assert_int_equal(h.seq, 7);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EAGAIN);
}

static void test_unknown_type(void **state)
{
    struct pair *p = *state;
    char buf[64];
    struct msg_hdr h;
    assert_int_equal(msg_send(p->fds[0], T_UNKNOWN, 1, 2, 1, "abcd", 4), 0);
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 2, "abcd", 4), 0);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.type, T_UNKNOWN);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 4);
    assert_int_equal(h.type, T_PING);
    assert_string_equal(msg_type_name(specs, NSPECS, T_STATUS), "status");
    assert_string_equal(msg_type_name(specs, NSPECS, T_UNKNOWN), "unknown");
    assert_null(msg_find_spec(specs, NSPECS, T_UNKNOWN));
    assert_ptr_equal(msg_find_spec(specs, NSPECS, T_BIG), &specs[3]);
}

/* Raw datagrams that msg_send would never produce. */
static void send_raw(int fd, const struct msg_hdr *h, const void *payload, size_t len)
{
    char *d = malloc(sizeof(*h) + len + 1);
    assert_non_null(d);
    memcpy(d, h, sizeof(*h));
    if (len)
        memcpy(d + sizeof(*h), payload, len);
    assert_int_equal(send(fd, d, sizeof(*h) + len, MSG_NOSIGNAL), (ssize_t)(sizeof(*h) + len));
    free(d);
}

static void test_bad_datagrams(void **state)
{
    struct pair *p = *state;
    char buf[64];
    struct msg_hdr h;
    /* Bad magic. */
    struct msg_hdr bad = {.magic = 0xdeadbeef, .type = T_PING, .len = 4, .seq = 1};
    send_raw(p->fds[0], &bad, "abcd", 4);
    /* Header len that does not match the datagram. */
    struct msg_hdr lie = {.magic = MSG_MAGIC, .type = T_PING, .len = 4, .seq = 2};
    send_raw(p->fds[0], &lie, "abcdef", 6);
    struct msg_hdr lie2 = {.magic = MSG_MAGIC, .type = T_PING, .len = 4, .seq = 3};
    send_raw(p->fds[0], &lie2, "ab", 2);
    /* Shorter than a header. */
    assert_int_equal(send(p->fds[0], "tiny", 4, MSG_NOSIGNAL), 4);
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 5, "okay", 4), 0);

    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 1);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 2);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(h.seq, 3);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 4);
    assert_int_equal(h.seq, 5);
    assert_memory_equal(buf, "okay", 4);
}

static void test_truncation(void **state)
{
    struct pair *p = *state;
    struct msg_hdr h;
    char payload[200];
    memset(payload, 'z', sizeof(payload));
    /* A valid status message of 200 bytes, but the receiver only has room for 100. */
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 2, 1, payload, 200), 0);
    /* A raw datagram far larger than any spec (and than cap). */
    char *huge = malloc(100000);
    assert_non_null(huge);
    memset(huge, 'h', 100000);
    struct msg_hdr hh = {.magic = MSG_MAGIC, .type = T_BIG, .len = 100000, .seq = 2};
    send_raw(p->fds[0], &hh, huge, 100000);
    assert_int_equal(msg_send(p->fds[0], T_STATUS, 1, 2, 3, payload, 100), 0);

    char small[100 + 8];
    memset(small, 0, sizeof(small));
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, small, 100), -EBADMSG);
    assert_int_equal(h.seq, 1);
    /* Bytes past cap were not written. */
    for (size_t i = 100; i < sizeof(small); i++)
        assert_int_equal(small[i], 0);
    char *buf = malloc(MSG_MAX_PAYLOAD);
    assert_non_null(buf);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, MSG_MAX_PAYLOAD), -EBADMSG);
    assert_int_equal(h.seq, 2);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, small, 100), 100);
    assert_int_equal(h.seq, 3);
    free(buf);
    free(huge);
}

static void test_emsgsize(void **state)
{
    struct pair *p = *state;
    char *big = calloc(1, MSG_MAX_PAYLOAD + 1);
    assert_non_null(big);
    assert_int_equal(msg_send(p->fds[0], T_BIG, 1, 2, 1, big, MSG_MAX_PAYLOAD + 1), -EMSGSIZE);
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 1, NULL, 4), -EINVAL);
    /* Nothing was sent. */
    struct msg_hdr h;
    char buf[16];
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EAGAIN);
    free(big);
}

static void test_eagain_when_full(void **state)
{
    struct pair *p = *state;
    char payload[4096];
    memset(payload, 'f', sizeof(payload));
    int sent = 0, rc = 0;
    /* The kernel buffers at most a few hundred KiB: -EAGAIN must come well before 10000. */
    for (int i = 0; i < 10000; i++) {
        rc = msg_send(p->fds[0], T_BIG, 1, 2, (uint32_t)i, payload, sizeof(payload));
        if (rc != 0)
            break;
        sent++;
    }
    assert_int_equal(rc, -EAGAIN);
    assert_true(sent > 0);
    /* Draining one message makes room again; everything sent arrives in order. */
    char buf[4096];
    struct msg_hdr h;
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 4096);
    assert_int_equal(h.seq, 0);
    assert_int_equal(msg_send(p->fds[0], T_BIG, 1, 2, (uint32_t)sent, payload, 16), 0);
    for (int i = 1; i <= sent; i++) {
        int n = msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf));
        assert_int_equal(h.seq, (uint32_t)i);
        assert_int_equal(n, i == sent ? 16 : 4096);
    }
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EAGAIN);
}

static void test_epipe_after_close(void **state)
{
    struct pair *p = *state;
    char buf[16];
    struct msg_hdr h;
    /* A message sent before the close is still delivered, then -EPIPE. */
    assert_int_equal(msg_send(p->fds[0], T_PING, 1, 2, 1, "last", 4), 0);
    close(p->fds[0]);
    p->fds[0] = -1;
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), 4);
    assert_int_equal(msg_recv(p->fds[1], specs, NSPECS, &h, buf, sizeof(buf)), -EPIPE);
    /* Sending to a closed peer: -EPIPE, and no SIGPIPE kills the test. */
    int rc = msg_send(p->fds[1], T_PING, 2, 1, 2, "dead", 4);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pair_flags, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_round_trip, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_size_checks, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_unknown_type, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_bad_datagrams, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_truncation, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_emsgsize, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_eagain_when_full, setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_epipe_after_close, setup_pair, teardown_pair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
