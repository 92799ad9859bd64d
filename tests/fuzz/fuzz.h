/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c) and their replay driver. */
#ifndef PGW_FUZZ_H
#define PGW_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "platform/log.h"

/* The entry point libFuzzer calls (and tests/fuzz/driver.c when replaying files). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fails the run loudly (a sanitizer-style crash) when a property of the parser does not hold. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(#cond, __FILE__, __LINE__);                                                  \
    } while (0)

__attribute__((noreturn)) void fuzz_fail(const char *what, const char *file, int line);

/* Only error lines from the code under test, once per process. */
void fuzz_quiet(void);

/* A malloc'd copy of the input with a NUL after it (exactly size + 1 bytes, so that ASan sees any
 * read past the end). Never NULL (aborts on ENOMEM). */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* A malloc'd copy without a terminator (exactly size bytes; a 1-byte block when size is 0). */
uint8_t *fuzz_copy(const uint8_t *data, size_t size);

/* The input as a file: rewrites a memfd and returns its /proc/self/fd path (static storage). */
const char *fuzz_file(const uint8_t *data, size_t size);

/* Splits the input at the first "\n--\n" line: *a is the part before (a NUL-terminated copy of
 * *alen bytes) and *b the part after (NULL and 0 when there is no separator). Free both. */
void fuzz_split(const uint8_t *data, size_t size, char **a, size_t *alen, char **b, size_t *blen);

#endif
