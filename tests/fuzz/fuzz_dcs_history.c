/* Fuzz target: the DCS `history` value (Patroni's timeline list) via dcs_history_decode. */
#include <stdio.h>

#include "agent/dcs/history.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *text = fuzz_cstr(data, size);
    struct dcs_history h = {0}, again = {0};
    struct dcs_err err = {{0}};
    if (dcs_history_decode(text, size, &h, &err)) {
        dcs_history_cluster_timeline(&h);
        size_t len, len2;
        char *enc = dcs_history_encode(&h, &len, &err);
        if (enc) {
            struct dcs_err err2 = {{0}};
            if (!dcs_history_decode(enc, len, &again, &err2)) {
                fprintf(stderr, "re-decode of %s failed: %s\n", enc, err2.msg);
                FUZZ_ASSERT(!"an encoded history decodes");
            }
            char *enc2 = dcs_history_encode(&again, &len2, &err2);
            FUZZ_ASSERT(enc2 && len2 == len && memcmp(enc, enc2, len) == 0);
            free(enc2);
            free(enc);
            dcs_history_free(&again);
        }
        dcs_history_truncate(&h, 3);
        FUZZ_ASSERT(h.n <= 3);
        dcs_history_free(&h);
    } else {
        FUZZ_ASSERT(h.n == 0);
    }
    free(text);
    return 0;
}
