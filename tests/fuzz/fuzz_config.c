/* Fuzz target: the INI config file (and PGWARDEN_* variables) as settings_load reads them. */
#include <stdio.h>

#include "agent/settings.h"
#include "platform/config.h"
#include "platform/config_value.h"
#include "tests/fuzz/fuzz.h"

/*
 * Input: the config file text; after an optional "\n--\n" line, environment lines
 * ("PGWARDEN_HA_TTL=5", one per line). Every value the parser accepted must format back into a
 * text that parses to the same value (secrets are formatted as "***" and skipped).
 */

enum { MAX_ENV = 32 };

static void check_round_trip(const struct pgw_config *c)
{
    static struct pgw_config copy;
    char text[8192], err[CFGVAL_ERR_CAP];
    memset(&copy, 0, sizeof(copy)); /* each key writes and compares only its own field */
    for (size_t i = 0; i < settings_nkeys; i++) {
        const struct cfg_key *k = &settings_keys[i];
        if (k->flags & CFG_SECRET)
            continue;
        int n = cfg_format_value(k, c, text, sizeof(text));
        FUZZ_ASSERT(n >= 0 && (size_t)n < sizeof(text));
        if (text[0] == '\0')
            continue; /* an unset optional value: "" is its own form */
        FUZZ_ASSERT(cfgval_set(k, &copy, text, err, sizeof(err)));
        FUZZ_ASSERT(cfgval_same(k, c, &copy));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *file, *env;
    size_t flen, elen;
    fuzz_split(data, size, &file, &flen, &env, &elen);
    char *envp[MAX_ENV + 1];
    size_t nenv = 0;
    for (char *p = env, *save = NULL; p && nenv < MAX_ENV; p = save) {
        char *nl = strchr(p, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        envp[nenv++] = p;
    }
    envp[nenv] = NULL;

    /* settings_load() step by step, with the defaults applied once: checking the key table
     * (quadratic in the number of keys) on every input would take most of the time. */
    static struct pgw_config defaults, cfg;
    static bool have_defaults;
    static struct cfg_errors errs;
    if (!have_defaults) {
        memset(&errs, 0, sizeof(errs));
        FUZZ_ASSERT(cfg_defaults(settings_keys, settings_nkeys, &defaults, &errs));
        have_defaults = true;
    }
    memset(&errs, 0, sizeof(errs));
    cfg = defaults;
    const char *path = fuzz_file((const uint8_t *)file, flen);
    cfg_load_file(settings_keys, settings_nkeys, &cfg, path, &errs);
    if (env)
        cfg_load_env(settings_keys, settings_nkeys, &cfg, envp, &errs);
    cfg_check_required(settings_keys, settings_nkeys, &cfg, path, &errs);
    bool ok = errs.count == 0 && !errs.overflow && settings_finish(&cfg, path, &errs);
    FUZZ_ASSERT(ok == (errs.count == 0 && !errs.overflow));
    FUZZ_ASSERT(errs.count <= CFG_ERRORS_MAX);
    for (size_t i = 0; i < errs.count; i++)
        FUZZ_ASSERT(errs.items[i].where[0] != '\0' && errs.items[i].msg[0] != '\0');
    if (ok)
        check_round_trip(&cfg);
    free(file);
    free(env);
    return 0;
}
