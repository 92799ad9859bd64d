/* ctl tables: boxed text tables in patronictl's style (pure: strings in, a string out). */
#include <stdlib.h>
#include <string.h>

#include "agent/ctl/ctl.h"

static char *dup_clean(const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        d[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch; /* no terminal escapes from etcd */
    }
    d[n] = '\0';
    return d;
}

bool ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *headers,
                    const enum ctl_align *align)
{
    memset(t, 0, sizeof(*t));
    t->headers = calloc(ncols ? ncols : 1, sizeof(*t->headers));
    t->align = calloc(ncols ? ncols : 1, sizeof(*t->align));
    t->max_width = calloc(ncols ? ncols : 1, sizeof(*t->max_width));
    if (!t->headers || !t->align || !t->max_width) {
        ctl_table_free(t);
        return false;
    }
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        t->headers[i] = dup_clean(headers[i]);
        if (!t->headers[i]) {
            ctl_table_free(t);
            return false;
        }
        t->align[i] = align ? align[i] : CTL_ALIGN_LEFT;
    }
    return true;
}

void ctl_table_set_max_width(struct ctl_table *t, size_t col, size_t width)
{
    if (col < t->ncols)
        t->max_width[col] = width;
}

bool ctl_table_add_row(struct ctl_table *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 8;
        char **n = realloc(t->cells, cap * (t->ncols ? t->ncols : 1) * sizeof(*n));
        if (!n)
            return false;
        t->cells = n;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = dup_clean(cells[i]);
        if (!row[i]) {
            while (i-- > 0)
                free(row[i]);
            return false;
        }
    }
    t->nrows++;
    return true;
}

void ctl_table_free(struct ctl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; t->headers && i < t->ncols; i++)
        free(t->headers[i]);
    for (size_t i = 0; t->cells && i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->align);
    free(t->max_width);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

size_t ctl_text_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) /* count lead bytes (and stray bytes), not continuations */
            w++;
    return w;
}

/* Bytes of s that fit in width display columns. */
static size_t prefix_bytes(const char *s, size_t width)
{
    size_t w = 0, i = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (w == width)
                break;
            w++;
        }
        i++;
    }
    return i;
}

/* A growing output buffer. */
void ctl_sbuf_put(struct ctl_sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ctl_sbuf_str(struct ctl_sbuf *b, const char *s)
{
    ctl_sbuf_put(b, s, strlen(s));
}

static void sb_rep(struct ctl_sbuf *b, char ch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ctl_sbuf_put(b, &ch, 1);
}

/* One cell padded to width (truncated with "..." at the column's max width). */
static void sb_cell(struct ctl_sbuf *b, const char *s, size_t width, enum ctl_align align)
{
    size_t w = ctl_text_width(s);
    size_t nbytes = strlen(s);
    bool cut = w > width;
    if (cut) {
        size_t keep = width > 3 ? width - 3 : 0;
        nbytes = prefix_bytes(s, keep);
        w = keep + (width > 3 ? 3 : 0);
    }
    ctl_sbuf_put(b, " ", 1);
    if (align == CTL_ALIGN_RIGHT)
        sb_rep(b, ' ', width - w);
    ctl_sbuf_put(b, s, nbytes);
    if (cut && width > 3)
        ctl_sbuf_str(b, "...");
    if (align == CTL_ALIGN_LEFT)
        sb_rep(b, ' ', width - w);
    ctl_sbuf_put(b, " |", 2);
}

static void sb_border(struct ctl_sbuf *b, const size_t *widths, size_t ncols)
{
    ctl_sbuf_put(b, "+", 1);
    for (size_t i = 0; i < ncols; i++) {
        sb_rep(b, '-', widths[i] + 2);
        ctl_sbuf_put(b, "+", 1);
    }
    ctl_sbuf_put(b, "\n", 1);
}

char *ctl_table_render(const struct ctl_table *t, const char *title)
{
    struct ctl_sbuf b = {0};
    size_t *widths = calloc(t->ncols ? t->ncols : 1, sizeof(*widths));
    if (!widths)
        return NULL;
    for (size_t c = 0; c < t->ncols; c++) {
        widths[c] = ctl_text_width(t->headers[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = ctl_text_width(t->cells[r * t->ncols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
        size_t limit = t->max_width[c];
        if (limit > 0 && limit < 4)
            limit = 4; /* room for one character and "..." */
        if (limit > 0 && widths[c] > limit)
            widths[c] = limit;
    }
    /* The top border, with the title written over its start when it fits. */
    struct ctl_sbuf top = {0};
    sb_border(&top, widths, t->ncols);
    char *clean_title = title ? dup_clean(title) : NULL;
    if (top.oom || (title && !clean_title)) {
        free(top.p);
        free(widths);
        free(clean_title);
        return NULL;
    }
    size_t border_w = top.len - 1; /* without the newline */
    if (clean_title && clean_title[0]) {
        size_t tw = ctl_text_width(clean_title);
        if (tw + 4 <= border_w) {
            ctl_sbuf_str(&b, "+ ");
            ctl_sbuf_str(&b, clean_title);
            ctl_sbuf_str(&b, " ");
            size_t used = tw + 3;
            /* keep the rest of the border after the title, starting with a '-' */
            ctl_sbuf_put(&b, top.p + used, top.len - used);
        } else {
            ctl_sbuf_str(&b, clean_title);
            ctl_sbuf_str(&b, "\n");
            ctl_sbuf_put(&b, top.p, top.len);
        }
    } else {
        ctl_sbuf_put(&b, top.p, top.len);
    }
    ctl_sbuf_str(&b, "|");
    for (size_t c = 0; c < t->ncols; c++)
        sb_cell(&b, t->headers[c], widths[c], CTL_ALIGN_LEFT);
    ctl_sbuf_str(&b, "\n");
    ctl_sbuf_put(&b, top.p, top.len);
    for (size_t r = 0; r < t->nrows; r++) {
        ctl_sbuf_str(&b, "|");
        for (size_t c = 0; c < t->ncols; c++)
            sb_cell(&b, t->cells[r * t->ncols + c], widths[c], t->align[c]);
        ctl_sbuf_str(&b, "\n");
    }
    ctl_sbuf_put(&b, top.p, top.len);
    free(top.p);
    free(widths);
    free(clean_title);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
