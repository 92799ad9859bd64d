/* Fuzz target: a members/<name> value from etcd (Patroni JSON or Governor URL) via
 * dcs_member_decode. */
#include <stdio.h>

#include "agent/dcs/member.h"
#include "tests/fuzz/fuzz.h"

/* Properties: no credentials survive decoding; what encodes decodes again to the same encoding. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *text = fuzz_cstr(data, size);
    static struct dcs_member m, again;
    struct dcs_err err = {{0}};
    if (dcs_member_decode(text, size, "pg-1", &m, &err)) {
        FUZZ_ASSERT(!dcs_url_has_userinfo(m.conn_url));
        FUZZ_ASSERT(!dcs_url_has_userinfo(m.api_url));
        FUZZ_ASSERT(!dcs_url_has_userinfo(m.proxy_url));
        dcs_tags_nofailover(&m.tags);
        dcs_tags_failover_priority(&m.tags);
        json_t *tags = dcs_tags_to_json(&m.tags, &err);
        json_decref(tags);
        size_t len;
        char *enc = dcs_member_encode(&m, &len, &err);
        if (enc) {
            FUZZ_ASSERT(strlen(enc) == len);
            struct dcs_err err2 = {{0}};
            if (!dcs_member_decode(enc, len, "pg-1", &again, &err2)) {
                fprintf(stderr, "re-decode of %s failed: %s\n", enc, err2.msg);
                FUZZ_ASSERT(!"an encoded member decodes");
            }
            size_t len2;
            char *enc2 = dcs_member_encode(&again, &len2, &err2);
            FUZZ_ASSERT(enc2 && len2 == len && memcmp(enc, enc2, len) == 0);
            free(enc2);
            free(enc);
        }
    } else {
        FUZZ_ASSERT(err.msg[0] != '\0');
    }
    free(text);
    return 0;
}
