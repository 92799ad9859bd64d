/* PostgreSQL wire-protocol pieces the forwarder needs: first packet, ErrorResponse, key scan. */
#ifndef PGW_PROXY_PGPROTO_H
#define PGW_PROXY_PGPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    PGP_STARTUP_MAX = 10000, /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
    PGP_CANCEL_LEN = 16,
    PGP_ERROR_MAX = 512, /* room for any ErrorResponse pgp_error_response() writes */
};

#define PGP_CODE_CANCEL 80877102u
#define PGP_CODE_SSL    80877103u
#define PGP_CODE_GSSENC 80877104u
#define PGP_PROTO_MAJOR 3u

/* What the client's first packet (untyped: int32 length, int32 code, body) is. */
enum pgp_first {
    PGP_NEED_MORE = 0, /* not complete yet */
    PGP_STARTUP,       /* StartupMessage, protocol 3.x */
    PGP_SSL,           /* SSLRequest */
    PGP_GSSENC,        /* GSSENCRequest */
    PGP_CANCEL,        /* CancelRequest: pid and key filled */
    PGP_BAD,           /* anything else: a bad length, an unknown code, bytes after a request */
};

struct pgp_packet {
    enum pgp_first kind;
    uint32_t len;        /* of the packet, when complete */
    uint32_t cancel_pid; /* PGP_CANCEL only */
    uint32_t cancel_key;
};

/* Classifies the first packet from the n bytes at p. An SSLRequest or GSSENCRequest followed
 * by more bytes is PGP_BAD (the client must wait for the one-byte answer: CVE-2021-23214). */
enum pgp_first pgp_first_packet(const uint8_t *p, size_t n, struct pgp_packet *out);

/* What to do with the server's first message (after the StartupMessage, before anything went
 * to the client). */
enum pgp_reply {
    PGP_REPLY_MORE = 0, /* an ErrorResponse not complete yet: wait for more bytes */
    PGP_REPLY_RELAY,    /* anything else: relay it (and everything after) */
    PGP_REPLY_RETRY,    /* FATAL 57P01/57P02/57P03 (shutting down, starting up, cannot connect
                         * now): the server cannot take the session; try the next one */
};

/* Decides from the n bytes at p (the start of the server's reply) whether the client may be
 * sent elsewhere. An ErrorResponse longer than cap bytes is relayed. `code` (6 bytes, may be
 * NULL) gets the SQLSTATE of a complete ErrorResponse, "" otherwise. */
enum pgp_reply pgp_first_reply(const uint8_t *p, size_t n, size_t cap, char *code);

/* Writes a FATAL ErrorResponse with SQLSTATE `code` (5 characters) and `message` into out.
 * Returns the length written, or 0 if it does not fit in cap. */
size_t pgp_error_response(uint8_t *out, size_t cap, const char *code, const char *message);

/* Scans the server -> client stream of one session until the BackendKeyData ('K') message:
 * it names the session in a later CancelRequest. Stops at the key, at ReadyForQuery, at an
 * ErrorResponse, at TLS ('S' answer to SSLRequest) or on anything malformed. */
struct pgp_scan {
    uint8_t state;   /* internal */
    uint8_t hdr_len; /* bytes of the current 5-byte header seen */
    uint8_t body_len;
    uint8_t type;
    uint32_t remaining; /* body bytes of the current message still to come */
    uint8_t hdr[5];
    uint8_t body[8];
    bool have_key;
    uint32_t pid;
    uint32_t key;
};

/* expect_ssl_reply: the first packet forwarded was an SSLRequest, so the server first answers
 * with one byte ('S' or 'N'). */
void pgp_scan_init(struct pgp_scan *s, bool expect_ssl_reply);
/* Feeds n bytes from the server. */
void pgp_scan_feed(struct pgp_scan *s, const uint8_t *p, size_t n);
/* True once scanning has ended (have_key tells whether a key was found). */
bool pgp_scan_done(const struct pgp_scan *s);

#endif
