/* systemd notification (sd_notify protocol) without libsystemd. */
#ifndef PGW_SDNOTIFY_H
#define PGW_SDNOTIFY_H

#include <stdint.h>

/* Sends `state` (e.g. "READY=1\nSTATUS=leader") as one datagram to $NOTIFY_SOCKET: an absolute
 * path, or '@' for a Linux abstract socket. Returns 0 if sent, 0 as well when NOTIFY_SOCKET is
 * unset or empty (not run by systemd: a no-op); -EINVAL for a NULL state, -EAFNOSUPPORT for
 * another address form, -ENAMETOOLONG, or -errno from socket/sendto (logged). */
int sdnotify_send(const char *state);

/* WATCHDOG_USEC when it is set to a positive number and WATCHDOG_PID is unset or equal to
 * getpid(); 0 otherwise (no watchdog for this process). Ping with "WATCHDOG=1" at about half
 * this interval. */
uint64_t sdnotify_watchdog_usec(void);

#endif
