/* Unit tests for the forwarder's routing table, cancel-key map and connection buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/proxy/cmap.h"
#include "agent/proxy/pbuf.h"
#include "agent/proxy/route.h"

/* ---- route ---- */

static struct msg_route *msg(int64_t term, uint64_t expiry, const char *host, uint16_t port)
{
    struct msg_route *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->term = term;
    m->expiry_boot_ms = expiry;
    if (host) {
        m->has_leader = 1;
        snprintf(m->leader, sizeof(m->leader), "n1");
        snprintf(m->host, sizeof(m->host), "%s", host);
        m->port = port;
    }
    return m;
}

static void add_replica(struct msg_route *m, const char *host, uint16_t port, int64_t lag)
{
    struct msg_route_replica *r = &m->replicas[m->n_replicas++];
    snprintf(r->host, sizeof(r->host), "%s", host);
    snprintf(r->name, sizeof(r->name), "r%u", (unsigned)m->n_replicas);
    r->port = port;
    r->lag_bytes = lag;
}

static void test_route_expiry(void **state)
{
    (void)state;
    struct route_table t;
    struct msg_route *m = msg(7, 1000, "127.0.0.1", 5432);
    route_apply(NULL, m, &t);
    assert_true(t.has_leader);
    assert_non_null(route_rw(&t, 999));
    assert_null(route_rw(&t, 1000)); /* expired: fail closed */
    char s[80];
    assert_string_equal(route_addr_str(route_rw(&t, 0), s, sizeof(s)), "127.0.0.1:5432");
    free(m);

    m = msg(0, 0, NULL, 0); /* "no leader" (a fence) */
    route_apply(&t, m, &t);
    assert_null(route_rw(&t, 0));
    free(m);

    m = msg(8, 1000, "::1", 6000);
    route_apply(NULL, m, &t);
    assert_string_equal(route_addr_str(route_rw(&t, 0), s, sizeof(s)), "[::1]:6000");
    free(m);

    m = msg(8, 1000, "", 6000); /* unknown host: no leader */
    route_apply(NULL, m, &t);
    assert_null(route_rw(&t, 0));
    free(m);
}

static void test_route_leader_changed(void **state)
{
    (void)state;
    struct route_table a, b;
    struct msg_route *m = msg(7, 1000, "127.0.0.1", 5432);
    route_apply(NULL, m, &a);
    m->expiry_boot_ms = 2000; /* a renewal */
    route_apply(&a, m, &b);
    assert_false(route_leader_changed(&a, &b));
    m->term = 8; /* a new term, even at the same address */
    route_apply(&a, m, &b);
    assert_true(route_leader_changed(&a, &b));
    m->term = 7;
    m->port = 5433;
    route_apply(&a, m, &b);
    assert_true(route_leader_changed(&a, &b));
    m->has_leader = 0;
    route_apply(&a, m, &b);
    assert_true(route_leader_changed(&a, &b));
    assert_false(route_leader_changed(&b, &a)); /* nobody was routed under b */
    free(m);
}

/* A draining leader: no new read-write connection (nor a read-only fallback) goes there, but
 * its sessions are not "changed" (they stay until its server stops them). */
static void test_route_draining(void **state)
{
    (void)state;
    struct route_table a, b;
    struct msg_route *m = msg(7, 1000, "127.0.0.1", 5432);
    route_apply(NULL, m, &a);
    m->draining = 1;
    route_apply(&a, m, &b);
    assert_true(b.has_leader);
    assert_true(b.draining);
    assert_null(route_rw(&b, 0));
    assert_int_equal(route_ro_pick(&b, 0, 1024, true), ROUTE_PICK_NONE);
    assert_false(route_leader_changed(&a, &b));
    m->draining = 0;
    route_apply(&b, m, &a);
    assert_false(a.draining);
    assert_non_null(route_rw(&a, 0));
    free(m);
}

static void test_route_ro_least_connections(void **state)
{
    (void)state;
    struct route_table t, t2;
    struct msg_route *m = msg(7, 1000, "127.0.0.1", 5432);
    add_replica(m, "127.0.0.2", 5432, 0);
    add_replica(m, "127.0.0.3", 5432, 100);
    add_replica(m, "127.0.0.4", 5432, 5000); /* too far behind */
    add_replica(m, "127.0.0.5", 5432, -1);   /* lag unknown */
    route_apply(NULL, m, &t);
    assert_int_equal(t.n_replicas, 4);
    int counts[4] = {0};
    for (int i = 0; i < 10; i++) {
        int p = route_ro_pick(&t, 0, 1024, true);
        assert_true(p == 0 || p == 1);
        t.replicas[p].active++;
        counts[p]++;
    }
    assert_int_equal(counts[0], 5);
    assert_int_equal(counts[1], 5);
    t.replicas[0].active = 1;
    t.replicas[1].active = 9;
    assert_int_equal(route_ro_pick(&t, 0, 1024, true), 0);
    /* counts survive a renewal, by address, even when the order changes */
    struct msg_route *m2 = msg(7, 2000, "127.0.0.1", 5432);
    add_replica(m2, "127.0.0.3", 5432, 100);
    add_replica(m2, "127.0.0.2", 5432, 0);
    route_apply(&t, m2, &t2);
    assert_int_equal(t2.replicas[0].active, 9);
    assert_int_equal(t2.replicas[1].active, 1);
    assert_int_equal(route_ro_pick(&t2, 0, 1024, true), 1);
    /* none qualifies: the leader, or nothing */
    assert_int_equal(route_ro_pick(&t, 0, 0, true), 0); /* lag 0 still qualifies */
    t.replicas[0].lag_bytes = 1;
    assert_int_equal(route_ro_pick(&t, 0, 0, true), ROUTE_PICK_LEADER);
    assert_int_equal(route_ro_pick(&t, 0, 0, false), ROUTE_PICK_NONE);
    /* expired: replicas are not trusted either */
    assert_int_equal(route_ro_pick(&t, 1000, 1024, true), ROUTE_PICK_NONE);
    struct route_addr a;
    assert_true(route_resolve("127.0.0.3", 5432, &a));
    assert_int_equal(route_find_replica(&t, &a), 1);
    assert_true(route_resolve("127.0.0.9", 5432, &a));
    assert_int_equal(route_find_replica(&t, &a), -1);
    free(m);
    free(m2);
}

static void test_route_ro_without_leader(void **state)
{
    (void)state;
    struct route_table t;
    struct msg_route *m = msg(0, 1000, NULL, 0);
    add_replica(m, "127.0.0.2", 5432, 0);
    route_apply(NULL, m, &t);
    assert_int_equal(route_ro_pick(&t, 0, 1024, true), 0);
    t.replicas[0].lag_bytes = 1 << 20;
    assert_int_equal(route_ro_pick(&t, 0, 1024, true), ROUTE_PICK_NONE);
    free(m);
}

/* ---- cancel map ---- */

static void test_cmap(void **state)
{
    (void)state;
    struct cmap m;
    assert_true(cmap_init(&m, 3)); /* rounded up; many collisions below */
    struct cmap_entry e[100];
    memset(e, 0, sizeof(e));
    for (uint32_t i = 0; i < 100; i++) {
        e[i].pid = 1000 + i;
        e[i].key = i * 7919u;
        cmap_put(&m, &e[i]);
        cmap_put(&m, &e[i]); /* twice: no effect */
    }
    assert_int_equal(m.count, 100);
    for (uint32_t i = 0; i < 100; i++)
        assert_ptr_equal(cmap_get(&m, 1000 + i, i * 7919u), &e[i]);
    assert_null(cmap_get(&m, 1000, 1)); /* pid matches, key does not */
    for (uint32_t i = 0; i < 100; i += 2)
        cmap_del(&m, &e[i]);
    cmap_del(&m, &e[0]); /* not linked: no effect */
    assert_int_equal(m.count, 50);
    for (uint32_t i = 0; i < 100; i++)
        assert_ptr_equal(cmap_get(&m, 1000 + i, i * 7919u), i % 2 ? &e[i] : NULL);
    cmap_free(&m);
}

/* ---- buffers ---- */

static void test_pbuf_append_consume(void **state)
{
    (void)state;
    struct pbuf_pool pool;
    pbuf_pool_init(&pool, PBUF_CAP, 1);
    struct pbuf b = {0};
    assert_int_equal(pbuf_append(&b, "x", 1), 0); /* no chunk */
    assert_true(pbuf_reserve(&b, &pool));
    assert_int_equal(pool.in_use, 1);
    uint8_t *big = malloc(PBUF_CAP + 10);
    assert_non_null(big);
    for (size_t i = 0; i < PBUF_CAP + 10; i++)
        big[i] = (uint8_t)i;
    assert_int_equal(pbuf_append(&b, big, PBUF_CAP + 10), PBUF_CAP); /* bounded */
    assert_int_equal(pbuf_space(&b), 0);
    pbuf_consume(&b, 100);
    assert_int_equal(pbuf_len(&b), PBUF_CAP - 100);
    assert_int_equal(pbuf_data(&b)[0], 100);
    /* appending after a consume moves the pending bytes to the front */
    assert_int_equal(pbuf_append(&b, big, 50), 50);
    assert_int_equal(pbuf_data(&b)[0], 100);
    assert_int_equal(pbuf_data(&b)[pbuf_len(&b) - 1], 49);
    pbuf_trim(&b, &pool); /* not empty: kept */
    assert_non_null(b.mem);
    pbuf_consume(&b, pbuf_len(&b));
    pbuf_trim(&b, &pool);
    assert_null(b.mem);
    assert_int_equal(pool.in_use, 0);
    assert_int_equal(pool.nfree, 1);
    /* the free chunk is reused; a second one beyond max_free goes back to malloc */
    struct pbuf c = {0};
    assert_true(pbuf_reserve(&b, &pool));
    assert_true(pbuf_reserve(&c, &pool));
    assert_int_equal(pool.nfree, 0);
    pbuf_release(&b, &pool);
    pbuf_release(&c, &pool);
    assert_int_equal(pool.nfree, 1);
    pbuf_pool_free(&pool);
    /* a pool of small chunks (the first packets): buffers from it are bounded by its size */
    struct pbuf_pool small;
    pbuf_pool_init(&small, 64, 2);
    assert_true(pbuf_reserve(&b, &small));
    assert_int_equal(pbuf_space(&b), 64);
    assert_int_equal(pbuf_append(&b, big, 100), 64);
    assert_int_equal(pbuf_space(&b), 0);
    pbuf_consume(&b, 10);
    assert_int_equal(pbuf_append(&b, big, 20), 10);
    assert_int_equal(pbuf_data(&b)[0], 10);
    pbuf_release(&b, &small);
    assert_int_equal(b.cap, 0);
    assert_int_equal(small.in_use, 0);
    pbuf_pool_free(&small);
    free(big);
}

static void test_pbuf_partial_writes(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct pbuf_pool pool;
    pbuf_pool_init(&pool, PBUF_CAP, 4);
    struct pbuf b = {0};
    assert_true(pbuf_reserve(&b, &pool));
    uint8_t data[PBUF_CAP];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 31);
    assert_int_equal(pbuf_append(&b, data, sizeof(data)), sizeof(data));
    ssize_t left = pbuf_write_fd(&b, sv[0]);
    assert_true(left > 0); /* the socket took only part of it */
    assert_int_equal(pbuf_len(&b), (size_t)left);
    /* the reader drains in steps; the rest goes out in further partial writes, in order */
    uint8_t got[PBUF_CAP];
    size_t have = 0;
    while (have < sizeof(got)) {
        ssize_t r = read(sv[1], got + have, sizeof(got) - have);
        if (r > 0)
            have += (size_t)r;
        else
            assert_int_equal(errno, EAGAIN);
        left = pbuf_write_fd(&b, sv[0]);
        assert_true(left >= 0);
    }
    assert_int_equal(pbuf_len(&b), 0);
    assert_memory_equal(got, data, sizeof(data));
    /* reading: EAGAIN, data, then end of file; a full buffer refuses to read */
    struct pbuf r = {0};
    assert_int_equal(pbuf_read_fd(&r, sv[1]), -ENOBUFS); /* no chunk */
    assert_true(pbuf_reserve(&r, &pool));
    assert_int_equal(pbuf_read_fd(&r, sv[1]), -EAGAIN);
    assert_int_equal(write(sv[0], "abc", 3), 3);
    assert_int_equal(pbuf_read_fd(&r, sv[1]), 3);
    assert_memory_equal(pbuf_data(&r), "abc", 3);
    close(sv[0]);
    assert_int_equal(pbuf_read_fd(&r, sv[1]), 0);
    pbuf_consume(&r, 3);
    assert_int_equal(pbuf_append(&r, data, sizeof(data)), sizeof(data));
    assert_int_equal(pbuf_read_fd(&r, sv[1]), -ENOBUFS);
    /* writing to a closed peer */
    assert_true(pbuf_write_fd(&r, sv[1]) < 0);
    pbuf_release(&r, &pool);
    pbuf_release(&b, &pool);
    pbuf_pool_free(&pool);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_expiry),
        cmocka_unit_test(test_route_leader_changed),
        cmocka_unit_test(test_route_draining),
        cmocka_unit_test(test_route_ro_least_connections),
        cmocka_unit_test(test_route_ro_without_leader),
        cmocka_unit_test(test_cmap),
        cmocka_unit_test(test_pbuf_append_consume),
        cmocka_unit_test(test_pbuf_partial_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
