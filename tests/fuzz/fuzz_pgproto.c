/* Fuzz target: the forwarder's first-packet, first-reply and BackendKeyData parsing (pgproto.c). */
#include "agent/proxy/pgproto.h"
#include "tests/fuzz/fuzz.h"

/*
 * The same bytes are read as a client's first packet, as a server's first reply, and as the
 * server stream scanned for BackendKeyData (whole and one byte at a time: same result). A
 * message built from the input by pgp_error_response must read back as a retryable reply.
 */

static void check_first(const uint8_t *p, size_t n)
{
    struct pgp_packet pk;
    enum pgp_first k = pgp_first_packet(p, n, &pk);
    FUZZ_ASSERT(pk.kind == k);
    if (k == PGP_STARTUP || k == PGP_CANCEL || k == PGP_SSL || k == PGP_GSSENC) {
        FUZZ_ASSERT(pk.len >= 8 && pk.len <= n && pk.len <= PGP_STARTUP_MAX);
        /* Any shorter prefix of a complete packet is incomplete, not something else. */
        for (size_t m = 0; m < pk.len; m += 1 + m / 4) {
            struct pgp_packet pre;
            FUZZ_ASSERT(pgp_first_packet(p, m, &pre) == PGP_NEED_MORE);
        }
    }
}

static void check_reply(const uint8_t *p, size_t n)
{
    static const size_t caps[] = {16384, 64, 6};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        char code[6] = "xxxxx";
        enum pgp_reply r = pgp_first_reply(p, n, caps[i], code);
        FUZZ_ASSERT(code[0] == '\0' || strlen(code) == 5);
        if (r == PGP_REPLY_RETRY)
            FUZZ_ASSERT(strlen(code) == 5 && p[0] == 'E');
    }
    pgp_first_reply(p, n, 16384, NULL);
}

static void check_scan(const uint8_t *p, size_t n, bool ssl)
{
    struct pgp_scan whole, bytes;
    pgp_scan_init(&whole, ssl);
    pgp_scan_init(&bytes, ssl);
    if (n)
        pgp_scan_feed(&whole, p, n);
    for (size_t i = 0; i < n && !pgp_scan_done(&bytes); i++)
        pgp_scan_feed(&bytes, p + i, 1);
    FUZZ_ASSERT(pgp_scan_done(&whole) == pgp_scan_done(&bytes));
    FUZZ_ASSERT(whole.have_key == bytes.have_key);
    if (whole.have_key)
        FUZZ_ASSERT(whole.pid == bytes.pid && whole.key == bytes.key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fuzz_copy(data, size);
    check_first(p, size);
    check_reply(p, size);
    check_scan(p, size, false);
    check_scan(p, size, true);
    free(p);

    /* The ErrorResponse the forwarder writes, with the input as its message. */
    char msg[300];
    size_t mlen = size < sizeof(msg) - 1 ? size : sizeof(msg) - 1;
    memcpy(msg, data, mlen);
    msg[mlen] = '\0';
    uint8_t out[PGP_ERROR_MAX];
    size_t n = pgp_error_response(out, sizeof(out), "57P03", msg);
    if (n > 0) {
        char code[6];
        FUZZ_ASSERT(n <= sizeof(out));
        FUZZ_ASSERT(pgp_first_reply(out, n, 16384, code) == PGP_REPLY_RETRY);
        FUZZ_ASSERT(strcmp(code, "57P03") == 0);
    }
    return 0;
}
