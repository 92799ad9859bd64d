/* ctl config commands: show-config, edit-config and pause/resume (etcd compare-and-swap). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/ctl/ctl.h"
#include "agent/etcd/etcd.h"
#include "platform/clock.h"

enum { CAS_ATTEMPTS = 5, PAUSE_WAIT_DEFAULT_S = 60 };

/* The config key as stored: value (malloc'd, NUL-terminated) and mod_revision. *exists false
 * when the key is missing. */
static int read_config_key(struct ctl_ctx *c, char **value, size_t *len, int64_t *mod_rev,
                           bool *exists)
{
    char key[DCS_KEY_MAX];
    *value = NULL;
    *exists = false;
    if (dcs_key_path(&c->keys, DCS_KEY_CONFIG, NULL, key, sizeof(key)) < 0) {
        fprintf(stderr, "pgwarden ctl: the config key path is too long\n");
        return CTL_CONFIG;
    }
    struct etcd_range_req req = {.key = key};
    struct etcd_range_result res = {0};
    int rc = etcd_range(c->etcd, &req, &res);
    if (rc != 0) {
        etcd_range_result_clear(&res);
        return ctl_etcd_fail(c, "cannot read the config from etcd", rc);
    }
    if (res.n_kvs > 0) {
        *exists = true;
        *mod_rev = res.kvs[0].mod_revision;
        *len = res.kvs[0].value_len;
        *value = malloc(*len + 1);
        if (*value) {
            memcpy(*value, res.kvs[0].value ? res.kvs[0].value : "", *len);
            (*value)[*len] = '\0';
        }
    }
    etcd_range_result_clear(&res);
    if (*exists && !*value) {
        fprintf(stderr, "pgwarden ctl: out of memory\n");
        return CTL_SOFTWARE;
    }
    return CTL_OK;
}

int ctl_cmd_show_config(struct ctl_ctx *c)
{
    char *value;
    size_t len = 0;
    int64_t rev = 0;
    bool exists;
    int rc = read_config_key(c, &value, &len, &rev, &exists);
    if (rc != CTL_OK)
        return rc;
    if (!exists) {
        fprintf(stderr, "pgwarden ctl: the cluster '%s' has no config key (not bootstrapped?)\n",
                c->cfg->etcd.scope);
        return CTL_FAIL;
    }
    struct dcs_err err = {{0}};
    json_t *j = pyjson_load(value, len, "config", &err);
    if (!j) {
        fprintf(stderr, "pgwarden ctl: the config key is malformed: %s\n", err.msg);
        free(value);
        return CTL_DATAERR;
    }
    if (c->o->json)
        printf("%s\n", value);
    else if (!ctl_print_json(j, false))
        rc = CTL_SOFTWARE;
    json_decref(j);
    free(value);
    return rc;
}

/* Writes value with compare-and-swap on the key's mod_revision. *won false when it changed. */
static int cas_put(struct ctl_ctx *c, const char *value, size_t len, int64_t mod_rev, bool *won)
{
    char key[DCS_KEY_MAX];
    if (dcs_key_path(&c->keys, DCS_KEY_CONFIG, NULL, key, sizeof(key)) < 0)
        return CTL_CONFIG;
    struct etcd_cmp cmp = {.target = ETCD_CMP_MOD, .op = ETCD_EQUAL, .key = key, .number = mod_rev};
    struct etcd_op put = {.type = ETCD_OP_PUT,
                          .put = {.key = key, .value = value, .value_len = len}};
    struct etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = &put, .n_success = 1};
    struct etcd_txn_result res = {0};
    int rc = etcd_txn(c->etcd, &req, &res);
    *won = rc == 0 && res.succeeded;
    etcd_txn_result_clear(&res);
    if (rc != 0)
        return ctl_etcd_fail(c, "cannot write the config to etcd", rc);
    return CTL_OK;
}

/* How one patch round went. */
struct patch_round {
    bool changed;
    bool won;
    bool was_paused;
    char *diff;      /* malloc'd */
    json_t *written; /* the new config (new reference) */
};

/* Reads the config, applies patch, validates and CAS-writes it; with need_confirm the question
 * comes between the diff and the write. skip_pause (0 or 1; -1 = none): when the current pause
 * state equals it, nothing is written (changed stays false). */
static int patch_once(struct ctl_ctx *c, const json_t *patch, bool print_diff, bool need_confirm,
                      int skip_pause, struct patch_round *r)
{
    memset(r, 0, sizeof(*r));
    char *value;
    size_t len = 0;
    int64_t rev = 0;
    bool exists;
    int rc = read_config_key(c, &value, &len, &rev, &exists);
    if (rc != CTL_OK)
        return rc;
    if (!exists) {
        fprintf(stderr,
                "pgwarden ctl: the cluster '%s' has no config key yet; it is written when the "
                "cluster bootstraps\n",
                c->cfg->etcd.scope);
        return CTL_FAIL;
    }
    struct dcs_config cur, next;
    struct dcs_err err = {{0}};
    dcs_config_defaults(&next);
    if (!dcs_config_decode(value, len, &cur, &err)) {
        fprintf(stderr, "pgwarden ctl: the current config is invalid: %s\n", err.msg);
        free(value);
        return CTL_DATAERR;
    }
    free(value);
    r->was_paused = cur.pause;
    if (skip_pause >= 0 && cur.pause == (skip_pause == 1)) {
        dcs_config_free(&cur);
        return CTL_OK;
    }
    char *ptext = json_dumps(patch, JSON_COMPACT);
    if (!ptext) {
        dcs_config_free(&cur);
        return CTL_SOFTWARE;
    }
    bool ok = dcs_config_patch(&cur, ptext, strlen(ptext), &next, &r->changed, &err);
    free(ptext);
    if (!ok) {
        fprintf(stderr, "pgwarden ctl: the new config would be invalid: %s\n", err.msg);
        dcs_config_free(&cur);
        return CTL_DATAERR;
    }
    rc = CTL_OK;
    if (r->changed) {
        r->diff = ctl_config_diff(cur.raw, next.raw);
        if (print_diff && r->diff)
            fputs(r->diff, c->o->json ? stderr : stdout);
        size_t out_len = 0;
        char *out = dcs_config_dump(&next, &out_len);
        if (!out || !r->diff) {
            fprintf(stderr, "pgwarden ctl: out of memory\n");
            rc = CTL_SOFTWARE;
        } else if (need_confirm && !ctl_confirm("Apply these changes?")) {
            rc = CTL_FAIL;
        } else {
            rc = cas_put(c, out, out_len, rev, &r->won);
            if (rc == CTL_OK && r->won)
                r->written = json_incref(next.raw);
        }
        free(out);
    }
    dcs_config_free(&cur);
    dcs_config_free(&next);
    return rc;
}

static void round_clear(struct patch_round *r)
{
    free(r->diff);
    json_decref(r->written);
    memset(r, 0, sizeof(*r));
}

int ctl_cmd_edit_config(struct ctl_ctx *c)
{
    char err[256];
    const struct ctl_opts *o = c->o;
    json_t *patch = ctl_set_patch(o->sets, o->n_sets, o->pgs, o->n_pgs, err, sizeof(err));
    if (!patch) {
        fprintf(stderr, "pgwarden ctl: %s\n", err);
        return CTL_USAGE;
    }
    int rc = CTL_FAIL;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        struct patch_round r;
        /* Interactive edits show the diff and ask once; a conflict then means "look again". */
        rc = patch_once(c, patch, attempt == 0, !o->force, -1, &r);
        if (rc == CTL_OK && !r.changed) {
            if (o->json)
                printf("{\"changed\":false}\n");
            else
                printf("Not changed: the config already has these values\n");
        } else if (rc == CTL_OK && !r.won) {
            round_clear(&r);
            if (!o->force) {
                fprintf(stderr, "pgwarden ctl: the config changed meanwhile; nothing written, "
                                "run the command again\n");
                rc = CTL_FAIL;
                break;
            }
            rc = CTL_FAIL;
            continue;
        } else if (rc == CTL_OK) {
            if (o->json) {
                json_t *j = json_pack("{s:b,s:O}", "changed", 1, "config", r.written);
                if (!j || !ctl_print_json(j, true))
                    rc = CTL_SOFTWARE;
                json_decref(j);
            } else {
                printf("Configuration changed\n");
            }
        }
        round_clear(&r);
        json_decref(patch);
        return rc;
    }
    fprintf(stderr, "pgwarden ctl: the config kept changing meanwhile; nothing written\n");
    json_decref(patch);
    return rc;
}

/* Waits until every member publishes pause == want. */
static int wait_members_pause(struct ctl_ctx *c, bool want)
{
    long timeout_s = c->o->timeout_s > 0 ? c->o->timeout_s : PAUSE_WAIT_DEFAULT_S;
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_s * 1000;
    if (!c->o->json)
        printf("Waiting for the members to %s...\n", want ? "pause" : "resume");
    for (;;) {
        struct ctl_cluster cl;
        int rc = ctl_read_cluster(c, &cl);
        if (rc != CTL_OK)
            return rc;
        size_t pending = 0;
        for (size_t i = 0; i < cl.n_members; i++)
            if (cl.members[i].pause != want)
                pending++;
        ctl_cluster_free(&cl);
        if (pending == 0)
            return CTL_OK;
        if (clock_mono_ms() >= deadline) {
            fprintf(stderr, "pgwarden ctl: %zu member(s) still not %s after %ld s\n", pending,
                    want ? "paused" : "resumed", timeout_s);
            return CTL_FAIL;
        }
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int ctl_cmd_pause(struct ctl_ctx *c, bool pause)
{
    json_t *patch = json_pack("{s:o}", "pause", pause ? json_true() : json_null());
    if (!patch)
        return CTL_SOFTWARE;
    int rc = CTL_FAIL;
    bool done = false;
    for (int attempt = 0; attempt < CAS_ATTEMPTS && !done; attempt++) {
        struct patch_round r;
        rc = patch_once(c, patch, false, false, pause ? 1 : 0, &r);
        if (rc != CTL_OK) {
            done = true;
        } else if (r.was_paused == pause) {
            fprintf(stderr, "pgwarden ctl: the cluster is already %s\n",
                    pause ? "paused" : "not paused");
            rc = CTL_FAIL;
            done = true;
        } else if (r.won || !r.changed) {
            done = true;
        }
        round_clear(&r);
    }
    json_decref(patch);
    if (!done) {
        fprintf(stderr, "pgwarden ctl: the config kept changing meanwhile; nothing written\n");
        return CTL_FAIL;
    }
    if (rc != CTL_OK)
        return rc;
    if (c->o->wait) {
        rc = wait_members_pause(c, pause);
        if (rc != CTL_OK)
            return rc;
    }
    if (c->o->json)
        printf("{\"paused\":%s}\n", pause ? "true" : "false");
    else
        printf("Success: cluster management is %s\n", pause ? "paused" : "resumed");
    return CTL_OK;
}
