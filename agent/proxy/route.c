/* The forwarder's routing table: the leader and the replicas from ha, their expiry, the picks. */
#include "agent/proxy/route.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "platform/log.h"

#define LOG_MODULE "proxy"

bool route_resolve(const char *host, uint16_t port, struct route_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (!host[0] || port == 0)
        return false;
    if (inet_pton(AF_INET, host, &out->u.in4.sin_addr) == 1) {
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = htons(port);
        out->len = sizeof(out->u.in4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) == 1) {
        out->u.in6.sin6_family = AF_INET6;
        out->u.in6.sin6_port = htons(port);
        out->len = sizeof(out->u.in6);
        return true;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0 || !res || res->ai_addrlen > sizeof(out->u)) {
        log_warn("cannot resolve a PostgreSQL address", "host=%s err=\"%s\"", host,
                 gai != 0 ? gai_strerror(gai) : "no address");
        if (res)
            freeaddrinfo(res);
        return false;
    }
    memcpy(&out->u, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    if (out->u.sa.sa_family == AF_INET)
        out->u.in4.sin_port = htons(port);
    else
        out->u.in6.sin6_port = htons(port);
    freeaddrinfo(res);
    return true;
}

bool route_addr_equal(const struct route_addr *a, const struct route_addr *b)
{
    if (a->len != b->len || a->len == 0)
        return false;
    if (a->u.sa.sa_family == AF_INET)
        return a->u.in4.sin_port == b->u.in4.sin_port &&
               a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
    return a->u.in6.sin6_port == b->u.in6.sin6_port &&
           memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, sizeof(a->u.in6.sin6_addr)) == 0 &&
           a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id;
}

const char *route_addr_str(const struct route_addr *a, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->len == 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    if (a->u.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->u.in4.sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(a->u.in4.sin_port));
    } else {
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(a->u.in6.sin6_port));
    }
    return buf;
}

/* Copies a message string that may lack its NUL. */
static void copy_str(char *dst, size_t cap, const char *src, size_t src_cap)
{
    size_t n = strnlen(src, src_cap);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Resolves host:port unless prev already resolved the same text. */
static bool resolve_cached(const struct route_table *prev, const char *host, uint16_t port,
                           struct route_addr *out)
{
    if (prev) {
        if (prev->leader.len && prev->leader_port == port && strcmp(prev->leader_host, host) == 0) {
            *out = prev->leader;
            return true;
        }
        for (size_t i = 0; i < prev->n_replicas; i++) {
            if (prev->replica_port[i] == port && strcmp(prev->replica_host[i], host) == 0) {
                *out = prev->replicas[i].addr;
                return true;
            }
        }
    }
    return route_resolve(host, port, out);
}

void route_apply(const struct route_table *prev, const struct msg_route *m,
                 struct route_table *next)
{
    memset(next, 0, sizeof(*next));
    next->term = m->term;
    next->expiry_boot_ms = m->expiry_boot_ms;
    if (m->has_leader) {
        copy_str(next->leader_host, sizeof(next->leader_host), m->host, sizeof(m->host));
        copy_str(next->leader_name, sizeof(next->leader_name), m->leader, sizeof(m->leader));
        next->leader_port = m->port;
        next->has_leader =
            resolve_cached(prev, next->leader_host, next->leader_port, &next->leader);
        next->draining = next->has_leader && m->draining;
    }
    size_t n = m->n_replicas;
    if (n > MSG_ROUTE_REPLICAS_MAX)
        n = MSG_ROUTE_REPLICAS_MAX;
    for (size_t i = 0; i < n; i++) {
        const struct msg_route_replica *src = &m->replicas[i];
        size_t k = next->n_replicas;
        struct route_replica *r = &next->replicas[k];
        copy_str(next->replica_host[k], sizeof(next->replica_host[k]), src->host,
                 sizeof(src->host));
        if (!resolve_cached(prev, next->replica_host[k], src->port, &r->addr))
            continue;
        next->replica_port[k] = src->port;
        r->lag_bytes = src->lag_bytes;
        copy_str(r->name, sizeof(r->name), src->name, sizeof(src->name));
        int j = prev ? route_find_replica(prev, &r->addr) : -1;
        r->active = j >= 0 ? prev->replicas[j].active : 0;
        next->n_replicas++;
    }
}

const struct route_addr *route_rw(const struct route_table *t, uint64_t now_boot_ms)
{
    if (!t->has_leader || t->draining || t->leader.len == 0 || now_boot_ms >= t->expiry_boot_ms)
        return NULL;
    return &t->leader;
}

int route_ro_pick(const struct route_table *t, uint64_t now_boot_ms, uint64_t max_lag,
                  bool fallback_leader)
{
    int best = ROUTE_PICK_NONE;
    if (now_boot_ms < t->expiry_boot_ms) {
        for (size_t i = 0; i < t->n_replicas; i++) {
            const struct route_replica *r = &t->replicas[i];
            if (r->lag_bytes < 0 || (uint64_t)r->lag_bytes > max_lag)
                continue;
            if (best < 0 || r->active < t->replicas[best].active)
                best = (int)i;
        }
    }
    if (best >= 0)
        return best;
    return fallback_leader && route_rw(t, now_boot_ms) ? ROUTE_PICK_LEADER : ROUTE_PICK_NONE;
}

int route_find_replica(const struct route_table *t, const struct route_addr *a)
{
    for (size_t i = 0; i < t->n_replicas; i++) {
        if (route_addr_equal(&t->replicas[i].addr, a))
            return (int)i;
    }
    return -1;
}

bool route_leader_changed(const struct route_table *a, const struct route_table *b)
{
    if (!a->has_leader)
        return false; /* nobody was routed to a leader of a */
    return !b->has_leader || a->term != b->term || !route_addr_equal(&a->leader, &b->leader);
}
