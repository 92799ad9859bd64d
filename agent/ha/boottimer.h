/* Deadline timer on CLOCK_BOOTTIME: a timerfd watched by the event loop, for lease deadlines. */
#ifndef PGW_HA_BOOTTIMER_H
#define PGW_HA_BOOTTIMER_H

/*
 * loop_add_timer() counts CLOCK_MONOTONIC, which stops while the machine is suspended: a lease
 * deadline armed on it would fire late after a resume. A timerfd on CLOCK_BOOTTIME with an
 * absolute expiry fires as soon as the process runs again after the deadline passed (after a
 * SIGSTOP or a suspend), so the deadline is enforced at the first possible moment.
 */

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct boottimer;

typedef void (*boottimer_cb)(void *arg);

/* NULL on failure (logged). */
struct boottimer *boottimer_new(struct loop *l, boottimer_cb cb, void *arg);
/* Stops watching and closes the timerfd. NULL-safe. */
void boottimer_free(struct boottimer *t);
/* After fork(), in the child: closes the child's copy of the timerfd without touching the
 * (parent's) loop, and frees the struct. NULL-safe. */
void boottimer_forget(struct boottimer *t);

/* Fires cb once when CLOCK_BOOTTIME reaches at_boot_ms (at once if it already has). Replaces
 * an earlier arming. Returns false on failure (logged). */
bool boottimer_arm(struct boottimer *t, uint64_t at_boot_ms);
void boottimer_disarm(struct boottimer *t);
/* The armed expiry, 0 when disarmed or fired. */
uint64_t boottimer_expiry(const struct boottimer *t);

#endif
