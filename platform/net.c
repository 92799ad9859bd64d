/* Socket helpers: listening TCP sockets on an address. */
#include "platform/net.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "platform/log.h"

#define LOG_MODULE "net"

int net_listen_tcp(const char *host, uint16_t port, int backlog)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    int fd = -1;
    int err = -EADDRNOTAVAIL;

    snprintf(service, sizeof(service), "%u", port);
    int gai = getaddrinfo(host && host[0] ? host : NULL, service, &hints, &res);
    if (gai != 0) {
        log_error("cannot resolve listen address", "host=%s port=%u err=\"%s\"", host, port,
                  gai_strerror(gai));
        return -EADDRNOTAVAIL;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        err = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_error("cannot listen", "host=%s port=%u err=\"%s\"", host, port, strerror(-err));
        return err;
    }
    return fd;
}
