/* JSON merge patch (RFC 7386), as used by PATCH /config. */
#include "agent/dcs/mergepatch.h"

#include <stddef.h>

/* Patches are parsed values (depth <= jansson's 2048), so recursion stays bounded. */
json_t *dcs_merge_patch(const json_t *target, const json_t *patch)
{
    const char *key;
    size_t klen;
    json_t *value, *result;

    if (!patch)
        return NULL;
    if (!json_is_object(patch))
        return json_deep_copy(patch);
    result = json_is_object(target) ? json_deep_copy(target) : json_object();
    if (!result)
        return NULL;
    json_object_keylen_foreach((json_t *)patch, key, klen, value)
    {
        if (json_is_null(value)) {
            json_object_deln(result, key, klen); /* absent is fine */
            continue;
        }
        json_t *merged = dcs_merge_patch(json_object_getn(result, key, klen), value);
        if (!merged || json_object_setn_new(result, key, klen, merged) != 0) {
            json_decref(result);
            return NULL;
        }
    }
    return result;
}

json_t *dcs_merge_patch_changed(const json_t *target, const json_t *patch, bool *changed)
{
    json_t *result = dcs_merge_patch(target, patch);
    if (result && changed)
        *changed = !target || !json_equal(target, result);
    return result;
}
