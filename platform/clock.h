/* Clocks: monotonic, boot-time and wall-clock time in milliseconds. */
#ifndef PGW_CLOCK_H
#define PGW_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in ms: for intervals and timers; stops while the machine is suspended. */
uint64_t clock_mono_ms(void);
/* CLOCK_BOOTTIME in ms: like monotonic but also counts suspend time (and SIGSTOP time is
 * counted by every clock). Use it for lease deadlines that must never be underestimated. */
uint64_t clock_boot_ms(void);
/* CLOCK_REALTIME in ms since the Unix epoch: for timestamps only, never for deadlines. */
int64_t clock_wall_ms(void);

#endif
