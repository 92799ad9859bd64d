/* The web process's lazily opened handle on the node's SQLite store. */
#include "web/storeref.h"

#include <stdio.h>

void web_storeref_init(struct web_storeref *r, const char *state_dir)
{
    snprintf(r->state_dir, sizeof(r->state_dir), "%s", state_dir ? state_dir : "");
    r->store = NULL;
}

void web_storeref_close(struct web_storeref *r)
{
    store_close(r->store);
    r->store = NULL;
}

struct store *web_storeref_get(struct web_storeref *r, const char *what, struct web_resp *out)
{
    if (!r->store)
        r->store = store_open(r->state_dir, NULL, 0); /* a failure is logged there */
    if (!r->store) {
        char msg[96];
        snprintf(msg, sizeof(msg), "the %s store cannot be opened", what);
        web_resp_error(out, 503, msg);
    }
    return r->store;
}

void web_storeref_failed(struct web_storeref *r, const char *what, struct web_resp *out)
{
    web_storeref_close(r);
    char msg[96];
    snprintf(msg, sizeof(msg), "the %s store cannot be read", what);
    web_resp_error(out, 503, msg);
}
