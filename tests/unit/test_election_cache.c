/* Unit tests of the election's watch cache: revision ordering, tombstones, resync merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/etcd/etcd.h"
#include "agent/ha/kvcache.h"

static bool put(struct kvcache *c, const char *k, const char *v, int64_t rev)
{
    return kvc_put(c, k, v, strlen(v), rev, rev, 7);
}

static const char *get(const struct kvcache *c, const char *k)
{
    const struct kvc_entry *e = kvc_get(c, k);
    return e ? e->value : NULL;
}

static struct etcd_kv kv(const char *k, const char *v, int64_t rev)
{
    struct etcd_kv x;
    memset(&x, 0, sizeof(x));
    x.key = (char *)k;
    x.key_len = strlen(k);
    x.value = (char *)v;
    x.value_len = strlen(v);
    x.create_revision = rev;
    x.mod_revision = rev;
    return x;
}

static void test_put_get_and_order(void **state)
{
    (void)state;
    struct kvcache c;
    kvc_init(&c);
    assert_null(get(&c, "/s/leader"));
    uint64_t g = c.generation;
    assert_true(put(&c, "/s/leader", "n1", 10));
    assert_true(c.generation > g);
    assert_string_equal(get(&c, "/s/leader"), "n1");
    assert_int_equal(kvc_get(&c, "/s/leader")->lease, 7);
    /* an older or equal revision never undoes a newer one (own write, then a late event) */
    assert_false(put(&c, "/s/leader", "n2", 9));
    assert_false(put(&c, "/s/leader", "n2", 10));
    assert_string_equal(get(&c, "/s/leader"), "n1");
    assert_true(put(&c, "/s/leader", "n2", 11));
    assert_string_equal(get(&c, "/s/leader"), "n2");
    kvc_free(&c);
}

static void test_delete_tombstone(void **state)
{
    (void)state;
    struct kvcache c;
    kvc_init(&c);
    put(&c, "/s/leader", "n1", 10);
    assert_true(kvc_delete(&c, "/s/leader", 12));
    assert_null(get(&c, "/s/leader"));
    /* the watch is behind: its PUT at 11 must not resurrect the key */
    assert_false(put(&c, "/s/leader", "n1", 11));
    assert_null(get(&c, "/s/leader"));
    assert_false(kvc_delete(&c, "/s/leader", 12));
    /* caught up past the deletion: the tombstone goes, later puts apply */
    kvc_caught_up(&c, 12);
    assert_int_equal(c.n, 0);
    assert_true(put(&c, "/s/leader", "n3", 13));
    assert_string_equal(get(&c, "/s/leader"), "n3");
    /* a delete of an unknown key at or below the caught-up revision is nothing */
    assert_false(kvc_delete(&c, "/s/other", 12));
    assert_int_equal(c.n, 1);
    kvc_free(&c);
}

static void test_resync_merges_by_revision(void **state)
{
    (void)state;
    struct kvcache c;
    kvc_init(&c);
    assert_false(c.valid);
    put(&c, "/s/a", "old", 3);
    put(&c, "/s/b", "gone", 4);
    put(&c, "/s/mine", "own write", 20); /* newer than the resync below */
    struct etcd_kv kvs[] = {kv("/s/a", "new", 8), kv("/s/c", "added", 9),
                            kv("/s/mine", "stale", 5)};
    assert_true(kvc_resync(&c, kvs, 3, 10));
    assert_true(c.valid);
    assert_string_equal(get(&c, "/s/a"), "new");
    assert_null(get(&c, "/s/b"));
    assert_string_equal(get(&c, "/s/c"), "added");
    assert_string_equal(get(&c, "/s/mine"), "own write");
    /* a resync from a read (not caught up): a late watch event of b must not resurrect it */
    assert_false(put(&c, "/s/b", "gone", 4));
    assert_null(get(&c, "/s/b"));
    kvc_caught_up(&c, 10);
    assert_int_equal(c.revision, 10);
    /* same state again: no change */
    struct etcd_kv same[] = {kv("/s/a", "new", 8), kv("/s/c", "added", 9)};
    assert_false(kvc_resync(&c, same, 2, 10));
    kvc_free(&c);
}

static void test_prefix_iteration(void **state)
{
    (void)state;
    struct kvcache c;
    kvc_init(&c);
    put(&c, "/s/members/n1", "{}", 2);
    put(&c, "/s/leader", "n1", 3);
    put(&c, "/s/members/n2", "{}", 4);
    put(&c, "/s/members/n3", "{}", 5);
    kvc_delete(&c, "/s/members/n3", 6);
    size_t pos = 0;
    int n = 0;
    const struct kvc_entry *e;
    while ((e = kvc_next_prefix(&c, "/s/members/", &pos)) != NULL) {
        assert_true(strncmp(e->key, "/s/members/", 11) == 0);
        n++;
    }
    assert_int_equal(n, 2);
    kvc_free(&c);
}

static void test_many_keys_and_binary_values(void **state)
{
    (void)state;
    struct kvcache c;
    kvc_init(&c);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "/s/members/n%d", i);
        assert_true(kvc_put(&c, key, "a\0b", 3, i + 1, i + 1, 0));
    }
    assert_int_equal(c.n, 100);
    const struct kvc_entry *e = kvc_get(&c, "/s/members/n42");
    assert_non_null(e);
    assert_int_equal(e->value_len, 3);
    assert_memory_equal(e->value, "a\0b", 3);
    assert_true(kvc_put(&c, "/s/empty", "", 0, 200, 200, 0));
    assert_string_equal(get(&c, "/s/empty"), "");
    kvc_free(&c);
    assert_int_equal(c.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_and_order),           cmocka_unit_test(test_delete_tombstone),
        cmocka_unit_test(test_resync_merges_by_revision),   cmocka_unit_test(test_prefix_iteration),
        cmocka_unit_test(test_many_keys_and_binary_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
