/* The web process's lazily opened handle on the node's SQLite store. */
#ifndef PGW_WEB_STOREREF_H
#define PGW_WEB_STOREREF_H

#include "agent/settings.h"
#include "agent/store.h"
#include "web/resp.h"

struct web_storeref {
    char state_dir[PGW_PATH_MAX];
    struct store *store; /* NULL until the first use, and after a failure */
};

void web_storeref_init(struct web_storeref *r, const char *state_dir);
void web_storeref_close(struct web_storeref *r);

/* The open store, opening it if needed; NULL after answering 503 "the <what> store cannot be
 * opened" in out. */
struct store *web_storeref_get(struct web_storeref *r, const char *what, struct web_resp *out);

/* A read failed: closes the store (the next request reopens it) and answers 503 "the <what>
 * store cannot be read". */
void web_storeref_failed(struct web_storeref *r, const char *what, struct web_resp *out);

#endif
