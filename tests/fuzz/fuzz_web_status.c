/* Fuzz target: the status snapshot the web process parses from ha (web_snapshot_set_status). */
#include "web/health.h"
#include "web/metrics.h"
#include "web/snapshot.h"
#include "tests/fuzz/fuzz.h"

/* Any accepted snapshot must answer every health check, render /metrics and keep its bodies. */

enum { T0 = 1000000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *json = (char *)fuzz_copy(data, size);
    struct web_snapshot s;
    web_snapshot_init(&s);
    if (web_snapshot_set_status(&s, json, size, T0)) {
        const struct web_status *st = s.st;
        FUZZ_ASSERT(st != NULL && st->state && st->role && st->name);
        static const char *lags[] = {NULL, "0", "1MB", "16 kB"};
        for (size_t l = 0; l < sizeof(lags) / sizeof(lags[0]); l++) {
            struct web_health_query q = {
                .ntags = 2,
                .tags = {{.key = "dc", .value = "east"}, {.key = "nofailover", .value = "false"}}};
            q.has_lag = lags[l] && web_parse_lag(lags[l], &q.max_lag);
            for (int c = WEB_CHECK_PRIMARY; c <= WEB_CHECK_STATUS; c++) {
                int code = web_health_code(st, (enum web_check)c, &q, T0 + 1);
                FUZZ_ASSERT(code == 200 || code == 503);
                web_health_code(st, (enum web_check)c, NULL, T0 + 1000000);
            }
        }
        web_status_leader_name(st);
        web_status_ttl_ms(st);
        web_status_loop_wait_ms(st);
        struct web_resp r = {0};
        web_metrics_render(&s, T0 + 1, &r);
        web_resp_clear(&r);
    }
    web_snapshot_clear(&s);
    free(json);
    return 0;
}
