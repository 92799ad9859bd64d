/* Message channel: typed, size-checked datagrams over SOCK_SEQPACKET socketpairs. */
#ifndef PGW_MSG_H
#define PGW_MSG_H

#include <stddef.h>
#include <stdint.h>

enum { MSG_MAX_PAYLOAD = 60 * 1024 };

#define MSG_MAGIC 0x50475744u /* "PGWD" */

/* Sent in host byte order (both ends are processes of the same binary on the same host). */
struct msg_hdr {
    uint32_t magic;
    uint16_t type;
    uint8_t src;
    uint8_t dst;
    uint32_t len; /* payload bytes following the header in the same datagram */
    uint32_t seq;
};

/* One accepted message type; the caller supplies the table. */
struct msg_spec {
    uint16_t type;
    const char *name;
    uint32_t min_len;
    uint32_t max_len;
};

/* Creates a connected SOCK_SEQPACKET pair, both ends nonblocking and close-on-exec.
 * 0 or -errno. */
int msg_pair(int fds[2]);

/* Sends header + payload as one datagram (sendmsg, MSG_NOSIGNAL). Returns 0; -EMSGSIZE if
 * len > MSG_MAX_PAYLOAD; -EINVAL for a NULL payload with len > 0; -EAGAIN if the socket is
 * full (nothing sent; retry when writable); -EPIPE/-ECONNRESET if the peer is gone; -errno.
 * Only unexpected errors are logged; -EAGAIN and a gone peer are for the caller to handle. */
int msg_send(int fd, uint16_t type, uint8_t src, uint8_t dst, uint32_t seq, const void *payload,
             uint32_t len);

/* Receives one datagram: fills *hdr and copies the payload into buf (cap bytes).
 * Returns the payload length >= 0; -EAGAIN if nothing is pending; -EPIPE if the peer closed
 * (or reset) the connection; -EBADMSG for a truncated datagram, bad magic, a header len that
 * differs from the datagram's payload size, an unknown type, a len outside the type's
 * [min_len, max_len], or a payload larger than cap. A bad message is consumed and logged
 * once (type and sizes, never the payload), so the next call returns the next message.
 * On -EBADMSG *hdr holds what was received (zeroed if the datagram was shorter than it). */
int msg_recv(int fd, const struct msg_spec *specs, size_t nspecs, struct msg_hdr *hdr, void *buf,
             size_t cap);

/* The spec of a type, or NULL if the table has none. */
const struct msg_spec *msg_find_spec(const struct msg_spec *specs, size_t nspecs, uint16_t type);
/* The name of a type from the table, or "unknown". */
const char *msg_type_name(const struct msg_spec *specs, size_t nspecs, uint16_t type);

#endif
