/* Message channel: typed, size-checked datagrams over SOCK_SEQPACKET socketpairs. */
#define LOG_MODULE "msg"
#include "platform/msg.h"

#include "platform/log.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

_Static_assert(sizeof(struct msg_hdr) == 16, "msg_hdr must have no padding");

int msg_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
        int err = errno;
        log_error("socketpair failed", "err=\"%s\"", strerror(err));
        return -err;
    }
    return 0;
}

int msg_send(int fd, uint16_t type, uint8_t src, uint8_t dst, uint32_t seq, const void *payload,
             uint32_t len)
{
    if (len > MSG_MAX_PAYLOAD) {
        log_error("message too large", "type=%u len=%u max=%d", type, len, MSG_MAX_PAYLOAD);
        return -EMSGSIZE;
    }
    if (len > 0 && !payload)
        return -EINVAL;
    struct msg_hdr hdr = {
        .magic = MSG_MAGIC, .type = type, .src = src, .dst = dst, .len = len, .seq = seq};
    struct iovec iov[2] = {{.iov_base = &hdr, .iov_len = sizeof(hdr)},
                           {.iov_base = (void *)payload, .iov_len = len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            /* Datagram sockets send all or nothing. */
            return (size_t)n == sizeof(hdr) + len ? 0 : -EIO;
        }
        int err = errno;
        switch (err) {
        case EINTR:
            continue;
        case EAGAIN:
            return -EAGAIN;
        case EPIPE:
        case ECONNRESET:
            return -err;
        case ECONNREFUSED:
        case ENOTCONN:
            return -EPIPE;
        default:
            log_error("sendmsg failed", "fd=%d type=%u len=%u err=\"%s\"", fd, type, len,
                      strerror(err));
            return -err;
        }
    }
}

const struct msg_spec *msg_find_spec(const struct msg_spec *specs, size_t nspecs, uint16_t type)
{
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].type == type)
            return &specs[i];
    }
    return NULL;
}

const char *msg_type_name(const struct msg_spec *specs, size_t nspecs, uint16_t type)
{
    const struct msg_spec *s = msg_find_spec(specs, nspecs, type);
    return s && s->name ? s->name : "unknown";
}

static int bad_message(const char *why, const struct msg_hdr *hdr, size_t got)
{
    log_warn("bad message dropped", "reason=%s type=%u len=%u received=%zu seq=%u", why, hdr->type,
             hdr->len, got, hdr->seq);
    return -EBADMSG;
}

int msg_recv(int fd, const struct msg_spec *specs, size_t nspecs, struct msg_hdr *hdr, void *buf,
             size_t cap)
{
    memset(hdr, 0, sizeof(*hdr));
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof(*hdr)},
                           {.iov_base = buf, .iov_len = buf ? cap : 0}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n;
    for (;;) {
        /* MSG_TRUNC: n is the real datagram size even when it did not fit. */
        n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
        if (n >= 0)
            break;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN)
            return -EAGAIN;
        if (err == ECONNRESET)
            return -EPIPE;
        log_error("recvmsg failed", "fd=%d err=\"%s\"", fd, strerror(err));
        return -err;
    }
    if (n == 0)
        return -EPIPE; /* orderly shutdown; a real message is never empty */
    size_t got = (size_t)n;
    if (got < sizeof(*hdr))
        return bad_message("short", hdr, got);
    size_t payload = got - sizeof(*hdr);
    if (hdr->magic != MSG_MAGIC)
        return bad_message("magic", hdr, got);
    if (hdr->len != payload)
        return bad_message("length_mismatch", hdr, got);
    const struct msg_spec *spec = msg_find_spec(specs, nspecs, hdr->type);
    if (!spec)
        return bad_message("unknown_type", hdr, got);
    if (hdr->len < spec->min_len || hdr->len > spec->max_len)
        return bad_message("size_out_of_range", hdr, got);
    if (payload > cap || (mh.msg_flags & MSG_TRUNC))
        return bad_message("truncated", hdr, got);
    return (int)payload;
}
