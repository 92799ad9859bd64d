/* Fixture of the store's unit tests: a temporary state folder per test, removed afterwards. */
#ifndef PGW_TEST_STORE_FIXTURE_H
#define PGW_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "agent/store.h"
#include "tmpdir_fixture.h"

struct fx {
    char dir[TMPDIR_CAP];
    char db[128];
    char err[1024];
};

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    tmpdir_make(f->dir, "pgw-store");
    snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, STORE_DB_NAME);
    *state = f;
    return 0;
}

/* Removes the folder and everything in it. */
static inline int teardown(void **state)
{
    struct fx *f = *state;
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

#endif
