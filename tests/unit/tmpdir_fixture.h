/* Test helper: a temporary folder under /tmp, and its removal with everything in it. */
#ifndef PGW_TEST_TMPDIR_FIXTURE_H
#define PGW_TEST_TMPDIR_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

enum { TMPDIR_CAP = 64 };

/* Makes /tmp/<prefix>-XXXXXX into dir (TMPDIR_CAP bytes); fails the test if it cannot. */
static inline void tmpdir_make(char *dir, const char *prefix)
{
    snprintf(dir, TMPDIR_CAP, "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(dir));
}

static inline int tmpdir_rm_entry(const char *path, const struct stat *st, int type,
                                  struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Removes dir and its content (made writable again first: some tests take permissions away). */
static inline void tmpdir_remove(const char *dir)
{
    chmod(dir, 0700);
    nftw(dir, tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
