/* demo ports: fixed defaults per role on 127.0.0.1, checked free, else ports the kernel picks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/demo/demo.h"

enum { ROLES = 6, ALL_PORTS = DEMO_NODES * ROLES };

/* Default of node i (0-based) for each role, in struct demo_ports order; below the usual ephemeral
 * range (32768..60999) so that outgoing connections do not take them. */
static const long long role_base[ROLES] = {23791, 23801, 25431, 25501, 25601, 28001};

static long long *slot(struct demo_state *st, size_t node, size_t role)
{
    struct demo_ports *p = &st->port[node];
    switch (role) {
    case 0:
        return &p->etcd_client;
    case 1:
        return &p->etcd_peer;
    case 2:
        return &p->pg;
    case 3:
        return &p->rw;
    case 4:
        return &p->ro;
    default:
        return &p->web;
    }
}

/* Binds 127.0.0.1:port (0: any); returns the bound port, or -errno. */
static long long try_bind(long long port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    long long rc;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        rc = -errno;
    else
        rc = ntohs(sa.sin_port);
    close(fd);
    return rc;
}

bool demo_port_free(long long port)
{
    return port > 0 && port <= 65535 && try_bind(port) == port;
}

static bool taken(const long long *used, size_t n, long long port)
{
    for (size_t i = 0; i < n; i++) {
        if (used[i] == port)
            return true;
    }
    return false;
}

int demo_ports_assign(struct demo_state *st, bool keep, int *changed)
{
    long long used[ALL_PORTS] = {0};
    size_t nused = 0;
    int moved = 0;
    for (size_t role = 0; role < ROLES; role++) {
        for (size_t node = 0; node < DEMO_NODES; node++) {
            long long *p = slot(st, node, role);
            long long want = keep && *p > 0 ? *p : role_base[role] + (long long)node;
            long long got = want;
            for (int attempt = 0; taken(used, nused, got) || !demo_port_free(got); attempt++) {
                if (attempt >= 50) {
                    fprintf(stderr, "pgwarden demo: cannot find a free port on 127.0.0.1\n");
                    return -EADDRINUSE;
                }
                got = try_bind(0);
                if (got < 0) {
                    fprintf(stderr, "pgwarden demo: cannot bind 127.0.0.1: %s\n",
                            strerror((int)-got));
                    return (int)got;
                }
            }
            if (keep && *p > 0 && got != *p)
                moved++;
            *p = got;
            used[nused++] = got;
        }
    }
    if (changed)
        *changed = moved;
    return 0;
}
