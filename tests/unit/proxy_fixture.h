/* Fixture of the forwarder engine's unit tests: two listeners, two fake servers, loop pumping,
 * PostgreSQL packets and socket helpers over loopback. */
#ifndef PGW_TEST_PROXY_FIXTURE_H
#define PGW_TEST_PROXY_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/proxy/fwd_int.h"
#include "platform/clock.h"
#include "platform/net.h"

struct fx {
    struct loop *l;
    int lfd[2]; /* the forwarder's rw and ro ports */
    uint16_t lport[2];
    int up[2]; /* two fake PostgreSQL servers */
    uint16_t upport[2];
    struct fwd_config cfg;
    struct fwd *f;
};

static inline uint16_t local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static inline int listener(uint16_t *port)
{
    int fd = net_listen_tcp("127.0.0.1", 0, 256);
    assert_true(fd >= 0);
    *port = local_port(fd);
    return fd;
}

static inline int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->l = loop_new();
    assert_non_null(x->l);
    for (int i = 0; i < 2; i++) {
        x->lfd[i] = listener(&x->lport[i]);
        x->up[i] = listener(&x->upport[i]);
    }
    x->cfg = (struct fwd_config){.hold_timeout_ms = 5000,
                                 .max_connections = 100,
                                 .ro_max_lag = 1024,
                                 .ro_fallback_leader = true,
                                 .first_packet_ms = 300,
                                 .connect_ms = 1000,
                                 .retry_ms = 50,
                                 .linger_ms = 300,
                                 .user_timeout_ms = 5000,
                                 .keepalive_idle_s = 10};
    *state = x;
    return 0;
}

static inline void start(struct fx *x)
{
    x->f = fwd_new(x->l, x->lfd[0], x->lfd[1], &x->cfg);
    assert_non_null(x->f);
}

static inline int teardown(void **state)
{
    struct fx *x = *state;
    fwd_free(x->f);
    for (int i = 0; i < 2; i++) {
        close(x->lfd[i]);
        close(x->up[i]);
    }
    loop_free(x->l);
    free(x);
    return 0;
}

static inline void pump(struct fx *x, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (clock_mono_ms() < end)
        loop_run_once(x->l, 5);
}

/* leader: index of the fake server that leads (-1: none); replicas: bitmask of the others;
 * draining: the leader hands over. */
static inline void route_ex(struct fx *x, int leader, int64_t term, int replicas, int64_t lag,
                            bool draining)
{
    struct msg_route *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->term = term;
    m->expiry_boot_ms = clock_boot_ms() + 60000;
    if (leader >= 0) {
        m->has_leader = 1;
        snprintf(m->leader, sizeof(m->leader), "n%d", leader);
        snprintf(m->host, sizeof(m->host), "127.0.0.1");
        m->port = x->upport[leader];
        m->draining = draining;
    }
    for (int i = 0; i < 2; i++) {
        if (!(replicas & (1 << i)))
            continue;
        struct msg_route_replica *r = &m->replicas[m->n_replicas++];
        snprintf(r->host, sizeof(r->host), "127.0.0.1");
        snprintf(r->name, sizeof(r->name), "n%d", i);
        r->port = x->upport[i];
        r->lag_bytes = lag;
    }
    fwd_set_route(x->f, m);
    free(m);
}

static inline void route(struct fx *x, int leader, int64_t term, int replicas, int64_t lag)
{
    route_ex(x, leader, term, replicas, lag, false);
}

static inline int client(struct fx *x, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(x->lport[port])};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline size_t startup(uint8_t *out)
{
    static const char params[] = "user\0postgres\0database\0postgres\0";
    size_t len = 8 + sizeof(params);
    put32(out, (uint32_t)len);
    put32(out + 4, 196608);
    memcpy(out + 8, params, sizeof(params));
    return len;
}

static inline void send_all(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static inline void send_startup(int fd)
{
    uint8_t b[64];
    send_all(fd, b, startup(b));
}

static inline void send_request(int fd, uint32_t code)
{
    uint8_t b[8];
    put32(b, 8);
    put32(b + 4, code);
    send_all(fd, b, 8);
}

/* Pumps the loop while reading up to n bytes from fd; stops at n, at end of file or at the
 * timeout. Returns the bytes read; *eof tells whether the peer closed (or reset). */
static inline size_t recv_some(struct fx *x, int fd, void *buf, size_t n, int timeout_ms, bool *eof)
{
    size_t got = 0;
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    if (eof)
        *eof = false;
    while (got < n && clock_mono_ms() < end) {
        loop_run_once(x->l, 2);
        ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (eof)
                *eof = true;
            break;
        }
    }
    return got;
}

static inline bool wait_eof(struct fx *x, int fd, int timeout_ms)
{
    uint8_t b[256];
    bool eof = false;
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    while (!eof && clock_mono_ms() < end)
        recv_some(x, fd, b, sizeof(b), 20, &eof);
    return eof;
}

static inline int accept_up(struct fx *x, int i, int timeout_ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    do {
        loop_run_once(x->l, 2);
        int fd = accept4(x->up[i], NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
    } while (clock_mono_ms() < end);
    return -1;
}

/* Reads an ErrorResponse and returns its SQLSTATE in code[6]; asserts the close after it. */
static inline void expect_error(struct fx *x, int fd, const char *want_code)
{
    uint8_t b[PGP_ERROR_MAX];
    bool eof;
    size_t n = recv_some(x, fd, b, 5, 3000, &eof);
    assert_int_equal(n, 5);
    assert_int_equal(b[0], 'E');
    uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    assert_true(len > 4 && len < sizeof(b) - 1);
    n = recv_some(x, fd, b + 5, len - 4, 3000, &eof);
    assert_int_equal(n, len - 4);
    const char *code = NULL;
    for (const char *p = (const char *)b + 5; *p; p += strlen(p) + 1) {
        if (*p == 'C')
            code = p + 1;
    }
    assert_non_null(code);
    assert_string_equal(code, want_code);
    assert_true(wait_eof(x, fd, 3000));
}

/* AuthenticationOk, BackendKeyData(pid, key), ReadyForQuery. */
static inline size_t server_hello(uint8_t *b, uint32_t pid, uint32_t key)
{
    static const uint8_t r[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    size_t n = sizeof(r);
    memcpy(b, r, n);
    b[n++] = 'K';
    put32(b + n, 12);
    put32(b + n + 4, pid);
    put32(b + n + 8, key);
    n += 12;
    static const uint8_t z[] = {'Z', 0, 0, 0, 5, 'I'};
    memcpy(b + n, z, sizeof(z));
    return n + sizeof(z);
}

static inline size_t count_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* As leader_session(), the client starting with an SSLRequest (received by the server, not
 * answered yet). */
static inline void leader_ssl_session(struct fx *x, int *c, int *u)
{
    start(x);
    route(x, 0, 1, 0, 0);
    *c = client(x, PROXY_PORT_RW);
    send_request(*c, PGP_CODE_SSL);
    *u = accept_up(x, 0, 2000);
    assert_true(*u >= 0);
    uint8_t b[8];
    assert_int_equal(recv_some(x, *u, b, 8, 2000, NULL), 8);
    assert_int_equal(b[7], PGP_CODE_SSL & 0xff);
}

/* Starts the forwarder with server 0 leading (term 1) and opens a read-write session: *c the
 * client, *u the server's side, the startup packet already received there. */
static inline void leader_session(struct fx *x, int *c, int *u)
{
    start(x);
    route(x, 0, 1, 0, 0);
    *c = client(x, PROXY_PORT_RW);
    send_startup(*c);
    *u = accept_up(x, 0, 2000);
    assert_true(*u >= 0);
    uint8_t b[128];
    assert_int_equal(recv_some(x, *u, b, startup(b), 2000, NULL), startup(b));
}

#endif
