/* Clocks: monotonic, boot-time and wall-clock time in milliseconds. */
#include "platform/clock.h"

#include <time.h>

/* clock_gettime cannot fail for these clock ids on Linux with a valid pointer; on the
 * impossible failure the zeroed timespec yields 0. */
static struct timespec clock_read(clockid_t id)
{
    struct timespec ts = {0, 0};
    (void)clock_gettime(id, &ts);
    return ts;
}

uint64_t clock_mono_ms(void)
{
    struct timespec ts = clock_read(CLOCK_MONOTONIC);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_boot_ms(void)
{
    struct timespec ts = clock_read(CLOCK_BOOTTIME);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t clock_wall_ms(void)
{
    struct timespec ts = clock_read(CLOCK_REALTIME);
    return (int64_t)ts.tv_sec * 1000 + (int64_t)ts.tv_nsec / 1000000;
}
