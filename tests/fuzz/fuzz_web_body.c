/* Fuzz target: REST API request bodies (web_json_depth_ok, web_parse_body) as POST/PATCH get them.
 */
#include "web/resp.h"
#include "tests/fuzz/fuzz.h"

static int depth(const json_t *v)
{
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int c = depth(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            int c = depth(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size > WEB_MAX_BODY)
        return 0; /* the server answers 413 before parsing */
    char *buf = (char *)fuzz_copy(data, size);
    for (int optional = 0; optional < 2; optional++) {
        struct web_resp r = {0};
        json_t *v = web_parse_body(buf, size, optional, &r);
        if (v) {
            FUZZ_ASSERT(json_is_object(v) && r.status == 0);
            FUZZ_ASSERT(depth(v) <= WEB_MAX_JSON_DEPTH);
            json_decref(v);
        } else {
            FUZZ_ASSERT(r.status == 400 && r.body != NULL);
        }
        web_resp_clear(&r);
    }
    web_json_depth_ok(buf, size, 1);
    free(buf);
    return 0;
}
