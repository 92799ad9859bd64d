/* Helpers shared by every fuzz target: quiet logs, NUL-terminated copies, memfd-backed files. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

void fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: fuzz property failed: %s\n", file, line, what);
    abort();
}

void fuzz_quiet(void)
{
    static bool done;
    if (!done) {
        log_setup(LOG_LVL_ERROR, "fuzz");
        done = true;
    }
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

uint8_t *fuzz_copy(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        abort();
    if (size)
        memcpy(p, data, size);
    return p;
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("pgwarden-fuzz", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    return path;
}

void fuzz_split(const uint8_t *data, size_t size, char **a, size_t *alen, char **b, size_t *blen)
{
    static const char sep[] = "\n--\n";
    const uint8_t *hit = size >= 4 ? memmem(data, size, sep, 4) : NULL;
    if (!hit) {
        *a = fuzz_cstr(data, size);
        *alen = size;
        *b = NULL;
        *blen = 0;
        return;
    }
    *alen = (size_t)(hit - data);
    *a = fuzz_cstr(data, *alen);
    *blen = size - *alen - 4;
    *b = fuzz_cstr(hit + 4, *blen);
}
