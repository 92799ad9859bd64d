/* ctl config edits: --set/--pg items into a JSON merge patch, and a flat diff of two configs. */
#include <stdlib.h>
#include <string.h>

#include "agent/ctl/ctl.h"

/* A value: JSON when the text parses (any type), else the text as a string; "" is null. */
static json_t *parse_value(const char *v)
{
    if (v[0] == '\0')
        return json_null();
    json_t *j = json_loads(v, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    return j ? j : json_string(v);
}

/* Sets value (reference stolen) at the path of segments under root, creating objects. */
static bool set_path(json_t *root, char **segs, size_t n, json_t *value, const char *item,
                     char *err, size_t cap)
{
    json_t *cur = root;
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *next = json_object_get(cur, segs[i]);
        if (!next) {
            next = json_object();
            if (!next || json_object_set_new(cur, segs[i], next) != 0) {
                json_decref(value);
                snprintf(err, cap, "out of memory");
                return false;
            }
        } else if (!json_is_object(next)) {
            json_decref(value);
            snprintf(err, cap, "'%s': '%s' is already set to a value, not an object", item,
                     segs[i]);
            return false;
        }
        cur = next;
    }
    json_t *old = json_object_get(cur, segs[n - 1]);
    if (old && json_is_object(old) && json_object_size(old) > 0 && !json_is_object(value)) {
        json_decref(value);
        snprintf(err, cap, "'%s': '%s' is already used as an object by another item", item,
                 segs[n - 1]);
        return false;
    }
    if (json_object_set_new(cur, segs[n - 1], value) != 0) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    return true;
}

/* One "key=value" item; dotted splits the key on '.', else it goes under prefix (pg). */
static bool add_item(json_t *root, const char *item, bool dotted, char *err, size_t cap)
{
    const char *eq = strchr(item, '=');
    if (!eq || eq == item) {
        snprintf(err, cap, "'%s': expected KEY=VALUE", item);
        return false;
    }
    size_t klen = (size_t)(eq - item);
    char *key = strndup(item, klen);
    if (!key) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    char *segs[64];
    size_t n = 0;
    bool ok = true;
    if (dotted) {
        char *p = key;
        for (;;) {
            char *dot = strchr(p, '.');
            if (dot)
                *dot = '\0';
            if (*p == '\0' || n == sizeof(segs) / sizeof(segs[0])) {
                snprintf(err, cap, "'%s': %s", item,
                         *p == '\0' ? "empty key segment" : "too many key segments");
                ok = false;
                break;
            }
            segs[n++] = p;
            if (!dot)
                break;
            p = dot + 1;
        }
    } else {
        segs[n++] = "postgresql";
        segs[n++] = "parameters";
        segs[n++] = key;
    }
    if (ok) {
        json_t *v = parse_value(eq + 1);
        if (!v) {
            snprintf(err, cap, "out of memory");
            ok = false;
        } else {
            ok = set_path(root, segs, n, v, item, err, cap);
        }
    }
    free(key);
    return ok;
}

json_t *ctl_set_patch(const char *const *sets, size_t n_sets, const char *const *pgs, size_t n_pgs,
                      char *err, size_t cap)
{
    json_t *root = json_object();
    if (!root) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n_sets; i++) {
        if (!add_item(root, sets[i], true, err, cap)) {
            json_decref(root);
            return NULL;
        }
    }
    for (size_t i = 0; i < n_pgs; i++) {
        if (!add_item(root, pgs[i], false, err, cap)) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* ---- diff ---- */

static void emit_leaf(struct ctl_sbuf *b, char sign, const char *path, const json_t *v)
{
    char s[2] = {sign, '\0'};
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        b->oom = true;
        return;
    }
    ctl_sbuf_str(b, s);
    ctl_sbuf_str(b, path[0] ? path : "(root)");
    ctl_sbuf_str(b, ": ");
    ctl_sbuf_str(b, text);
    ctl_sbuf_str(b, "\n");
    free(text);
}

static char *join_path(const char *path, const char *key)
{
    size_t n = strlen(path) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", path, path[0] ? "." : "", key);
    return p;
}

/* Every leaf of v under path, flattened. */
static void emit_all(struct ctl_sbuf *b, char sign, const char *path, const json_t *v)
{
    if (!json_is_object(v) || json_object_size(v) == 0) {
        emit_leaf(b, sign, path, v);
        return;
    }
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char *p = join_path(path, k);
        if (!p) {
            b->oom = true;
            return;
        }
        emit_all(b, sign, p, x);
        free(p);
    }
}

static void diff_rec(struct ctl_sbuf *b, const char *path, const json_t *a, const json_t *c)
{
    if (a && c && json_equal(a, c))
        return;
    if (!(json_is_object(a) && json_is_object(c))) {
        if (a)
            emit_all(b, '-', path, a);
        if (c)
            emit_all(b, '+', path, c);
        return;
    }
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)a, k, x)
    {
        char *p = join_path(path, k);
        if (!p) {
            b->oom = true;
            return;
        }
        diff_rec(b, p, x, json_object_get(c, k));
        free(p);
    }
    json_object_foreach((json_t *)c, k, x)
    {
        if (json_object_get(a, k))
            continue;
        char *p = join_path(path, k);
        if (!p) {
            b->oom = true;
            return;
        }
        diff_rec(b, p, NULL, x);
        free(p);
    }
}

char *ctl_config_diff(const json_t *old_v, const json_t *new_v)
{
    struct ctl_sbuf b = {0};
    ctl_sbuf_str(&b, "");
    diff_rec(&b, "", old_v, new_v);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
