/* Migration verification report: inventories of (kind, object, value), comparison, JSON, text. */
#include "agent/migrate/migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MISSING "(missing)"

void mig_inventory_init(struct mig_inventory *inv)
{
    memset(inv, 0, sizeof(*inv));
}

void mig_inventory_free(struct mig_inventory *inv)
{
    free(inv->items);
    memset(inv, 0, sizeof(*inv));
}

static void fill(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

int mig_inventory_add(struct mig_inventory *inv, const char *kind, const char *name,
                      const char *value)
{
    if (inv->n == inv->cap) {
        size_t cap = inv->cap ? inv->cap * 2 : 64;
        struct mig_item *p = realloc(inv->items, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        inv->items = p;
        inv->cap = cap;
    }
    struct mig_item *it = &inv->items[inv->n++];
    fill(it->kind, sizeof(it->kind), kind);
    fill(it->name, sizeof(it->name), name);
    fill(it->value, sizeof(it->value), value);
    return 0;
}

int mig_inventory_set(struct mig_inventory *inv, const char *kind, const char *name,
                      const char *value)
{
    for (size_t i = 0; i < inv->n; i++) {
        if (strcmp(inv->items[i].kind, kind) == 0 && strcmp(inv->items[i].name, name) == 0) {
            fill(inv->items[i].value, sizeof(inv->items[i].value), value);
            return 0;
        }
    }
    return mig_inventory_add(inv, kind, name, value);
}

static int item_cmp(const void *a, const void *b)
{
    const struct mig_item *x = a, *y = b;
    int c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->name, y->name);
}

void mig_inventory_sort(struct mig_inventory *inv)
{
    if (inv->n > 1)
        qsort(inv->items, inv->n, sizeof(inv->items[0]), item_cmp);
}

static int add_diff(struct mig_report *rep, size_t *cap, const struct mig_item *key, const char *sv,
                    const char *tv)
{
    if (rep->ndiffs == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct mig_diff *p = realloc(rep->diffs, nc * sizeof(*p));
        if (!p)
            return -ENOMEM;
        rep->diffs = p;
        *cap = nc;
    }
    struct mig_diff *d = &rep->diffs[rep->ndiffs++];
    fill(d->kind, sizeof(d->kind), key->kind);
    fill(d->name, sizeof(d->name), key->name);
    fill(d->source, sizeof(d->source), sv);
    fill(d->target, sizeof(d->target), tv);
    return 0;
}

static bool is_error(const char *v)
{
    return strncmp(v, "error: ", 7) == 0;
}

int mig_compare(struct mig_inventory *src, struct mig_inventory *dst, struct mig_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    mig_inventory_sort(src);
    mig_inventory_sort(dst);
    size_t i = 0, j = 0, cap = 0;
    int rc = 0;
    while (rc == 0 && (i < src->n || j < dst->n)) {
        int c;
        if (i >= src->n)
            c = 1;
        else if (j >= dst->n)
            c = -1;
        else
            c = item_cmp(&src->items[i], &dst->items[j]);
        const struct mig_item *s = c <= 0 ? &src->items[i] : NULL;
        const struct mig_item *t = c >= 0 ? &dst->items[j] : NULL;
        const struct mig_item *key = s ? s : t;
        rep->compared++;
        if (s && strcmp(s->kind, "rows") == 0) {
            rep->tables++;
            char *end;
            unsigned long long v = strtoull(s->value, &end, 10);
            if (*end == '\0' && end != s->value)
                rep->rows += v;
        }
        if (strcmp(key->kind, "checksum") == 0)
            rep->checksums = true;
        /* a count that one side does not list is zero there */
        bool count = strcmp(key->kind, "count") == 0;
        const char *sv = s ? s->value : count ? "0" : MISSING;
        const char *tv = t ? t->value : count ? "0" : MISSING;
        if (strcmp(sv, tv) != 0 || is_error(sv) || is_error(tv))
            rc = add_diff(rep, &cap, key, sv, tv);
        if (c <= 0)
            i++;
        if (c >= 0)
            j++;
    }
    if (rc < 0) {
        mig_report_free(rep);
        return rc;
    }
    return (int)(rep->ndiffs > INT32_MAX ? INT32_MAX : rep->ndiffs);
}

void mig_report_free(struct mig_report *rep)
{
    free(rep->diffs);
    rep->diffs = NULL;
    rep->ndiffs = 0;
}

char *mig_report_json(const struct mig_report *rep, size_t max_diffs)
{
    json_t *o = json_object();
    json_t *arr = json_array();
    if (!o || !arr) {
        json_decref(o);
        json_decref(arr);
        return NULL;
    }
    json_object_set_new(o, "ok", json_boolean(rep->ndiffs == 0));
    json_object_set_new(o, "compared", json_integer((json_int_t)rep->compared));
    json_object_set_new(o, "tables", json_integer((json_int_t)rep->tables));
    json_object_set_new(o, "rows", json_integer((json_int_t)rep->rows));
    json_object_set_new(o, "checksums", json_boolean(rep->checksums));
    for (size_t i = 0; i < rep->ndiffs && i < max_diffs; i++) {
        const struct mig_diff *d = &rep->diffs[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "kind", d->kind, "object",
                                             d->name, "source", d->source, "target", d->target));
    }
    json_object_set_new(o, "differences", arr);
    if (rep->ndiffs > max_diffs)
        json_object_set_new(o, "more_differences",
                            json_integer((json_int_t)(rep->ndiffs - max_diffs)));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

void mig_report_print(const struct mig_report *rep, size_t max_diffs, FILE *out)
{
    if (rep->ndiffs == 0) {
        fprintf(out,
                "verified: %zu table%s, %" PRIu64 " rows, %zu checks%s: source and copy are "
                "identical\n",
                rep->tables, rep->tables == 1 ? "" : "s", rep->rows, rep->compared,
                rep->checksums ? " (with row checksums)" : "");
        return;
    }
    fprintf(out, "verification FAILED: %zu difference%s between the source and the copy:\n",
            rep->ndiffs, rep->ndiffs == 1 ? "" : "s");
    fprintf(out, "  %-14s %-40s %-24s %s\n", "check", "object", "source", "copy");
    for (size_t i = 0; i < rep->ndiffs && i < max_diffs; i++) {
        const struct mig_diff *d = &rep->diffs[i];
        fprintf(out, "  %-14s %-40s %-24s %s\n", d->kind, d->name, d->source, d->target);
    }
    if (rep->ndiffs > max_diffs)
        fprintf(out, "  ... and %zu more\n", rep->ndiffs - max_diffs);
}
