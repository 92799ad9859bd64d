/* /metrics: Patroni's Prometheus metrics from the ha snapshot plus the forwarder's counters. */
#ifndef PGW_WEB_METRICS_H
#define PGW_WEB_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "web/resp.h"
#include "web/snapshot.h"

/* Patroni's version gauge: "3.0.2" -> 30002 (each part as two digits); 0 if unparsable. */
long web_metrics_version_number(const char *version);

/* Writes the Prometheus text exposition (format 0.0.4) into out with status 200. False on
 * ENOMEM (out then holds a 500 error). */
bool web_metrics_render(const struct web_snapshot *s, uint64_t now_boot_ms, struct web_resp *out);

#endif
