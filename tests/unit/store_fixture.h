/* Fixture of the store's unit tests: a temporary state folder per test, removed afterwards. */
#ifndef PGW_TEST_STORE_FIXTURE_H
#define PGW_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "agent/store.h"

struct fx {
    char dir[64];
    char db[128];
    char err[1024];
};

static inline int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, STORE_DB_NAME);
    *state = f;
    return 0;
}

/* Removes the folder (made writable again first: some tests take its permissions away). */
static inline int teardown(void **state)
{
    struct fx *f = *state;
    chmod(f->dir, 0700);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

#endif
