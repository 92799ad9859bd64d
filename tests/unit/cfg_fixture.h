/* Shared fixture of the config unit tests: a temp config file, loading helpers and error asserts.
 */
#ifndef PGW_TEST_CFG_FIXTURE_H
#define PGW_TEST_CFG_FIXTURE_H

/* Include after <cmocka.h>, "agent/settings.h" and "platform/config.h". */

struct fx {
    char dir[64];
    char path[96];
    struct cfg_errors e;
};

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/pgw-test-config-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/pgwarden.conf", f->dir);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static inline void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* A minimal valid pgwarden file plus `extra` lines appended at the end. */
static inline bool sload(struct fx *f, const char *extra, char *const *envp, struct pgw_config *c)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "[node]\nname = pg1\n[etcd]\nscope = demo\n[postgresql]\ndata_dir = /data\n%s", extra);
    write_file(f->path, text);
    return settings_load(f->path, envp, c, &f->e);
}

/* Asserts the number of errors, printing them when it is wrong. */
static inline void assert_count(const struct fx *f, size_t n)
{
    if (f->e.count != n) {
        cfg_errors_print(&f->e, stderr);
        fail_msg("expected %zu errors, got %zu", n, f->e.count);
    }
}

/* Asserts error i is at "<path>:line" (or the file alone when line is 0) and contains needle. */
static inline void assert_error(const struct fx *f, size_t i, int line, const char *needle)
{
    char where[128];
    assert_true(f->e.count > i);
    if (line > 0)
        snprintf(where, sizeof(where), "%s:%d", f->path, line);
    else
        snprintf(where, sizeof(where), "%s", f->path);
    assert_string_equal(f->e.items[i].where, where);
    if (!strstr(f->e.items[i].msg, needle))
        fail_msg("error '%s' does not contain '%s'", f->e.items[i].msg, needle);
}

#endif
