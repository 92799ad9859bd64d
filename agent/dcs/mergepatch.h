/* JSON merge patch (RFC 7386), as used by PATCH /config. */
#ifndef PGW_DCS_MERGEPATCH_H
#define PGW_DCS_MERGEPATCH_H

#include <stdbool.h>

#include <jansson.h>

/* Returns a new reference: target with patch applied as RFC 7386 MergePatch(Target, Patch).
 * A non-object patch replaces the target; null members of an object patch delete keys (also
 * inside new nested objects); other members are merged recursively. target may be NULL (treated
 * as absent) and is not modified. Existing keys keep their position and new keys are appended,
 * as Python dicts do. Returns NULL on allocation failure. */
json_t *dcs_merge_patch(const json_t *target, const json_t *patch);

/* Like dcs_merge_patch(), and *changed tells whether the result differs from target
 * (json_equal), so that an unchanged config is not written again. */
json_t *dcs_merge_patch_changed(const json_t *target, const json_t *patch, bool *changed);

#endif
