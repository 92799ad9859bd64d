/* Fuzz target: the DCS `config` value (dynamic configuration) and PATCH /config merge patches. */
#include <stdio.h>

#include "agent/dcs/dyncfg.h"
#include "tests/fuzz/fuzz.h"

/*
 * Input: a config value; after an optional "\n--\n" line, a merge patch applied to it (or to
 * the defaults when the value does not decode). A config that decodes and validates must encode,
 * and its encoding must decode to the same encoding.
 */

static void params(const struct dcs_config *c)
{
    const json_t *p = dcs_config_parameters(c);
    const char *k;
    const json_t *v;
    char buf[256];
    if (p && json_is_object(p))
        json_object_foreach((json_t *)p, k, v) dcs_config_param_text(v, buf, sizeof(buf));
    dcs_config_pg_hba(c);
    dcs_sync_mode_name(c->synchronous_mode);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *value, *patch;
    size_t vlen, plen;
    fuzz_split(data, size, &value, &vlen, &patch, &plen);

    struct dcs_config c, again, patched;
    struct dcs_err err = {{0}};
    bool ok = dcs_config_decode(value, vlen, &c, &err);
    if (!ok)
        dcs_config_defaults(&c);
    params(&c);
    if (ok && dcs_config_validate(&c, &err)) {
        size_t len, len2;
        char *enc = dcs_config_encode(&c, &len, &err);
        FUZZ_ASSERT(enc != NULL);
        struct dcs_err err2 = {{0}};
        if (!dcs_config_decode(enc, len, &again, &err2)) {
            fprintf(stderr, "re-decode of %s failed: %s\n", enc, err2.msg);
            FUZZ_ASSERT(!"an encoded config decodes");
        }
        char *enc2 = dcs_config_encode(&again, &len2, &err2);
        FUZZ_ASSERT(enc2 && len2 == len && memcmp(enc, enc2, len) == 0);
        free(enc2);
        free(enc);
        dcs_config_free(&again);
    }
    size_t dlen;
    free(dcs_config_dump(&c, &dlen));
    if (patch) {
        bool changed;
        if (dcs_config_patch(&c, patch, plen, &patched, &changed, &err)) {
            params(&patched);
            free(dcs_config_dump(&patched, &dlen));
            dcs_config_free(&patched);
        }
    }
    dcs_config_free(&c);
    free(value);
    free(patch);
    return 0;
}
