/* Socket helpers: listening TCP sockets on an address. */
#ifndef PGW_NET_H
#define PGW_NET_H

#include <stdint.h>

/* Binds and listens on host:port (numeric IPv4/IPv6 or a name), SO_REUSEADDR, non-blocking,
 * close-on-exec. Returns the fd or -errno. */
int net_listen_tcp(const char *host, uint16_t port, int backlog);

#endif
