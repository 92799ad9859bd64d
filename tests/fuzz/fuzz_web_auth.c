/* Fuzz target: REST API credentials: Basic headers, base64, password hashes, users and allowlist.
 */
#include "agent/settings.h"
#include "web/auth.h"
#include "web/auth_int.h"
#include "tests/fuzz/fuzz.h"

/*
 * The input is read as an Authorization header, a base64 text, a "pbkdf2-sha256$..." hash, one
 * "name:role:hash" users item, and as [web] users / allowlist / users_file values (the part
 * before an optional "\n--\n" line is users, the rest the allowlist; the whole input is the
 * users file). A parsed hash formats back to the same hash.
 */

static void no_err(void *arg, const char *msg)
{
    FUZZ_ASSERT(msg != NULL && msg[0] != '\0');
    (*(unsigned *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *text = fuzz_cstr(data, size);

    char user[WEB_AUTH_USER_MAX], password[256];
    if (web_auth_parse_basic(text, user, sizeof(user), password, sizeof(password)))
        FUZZ_ASSERT(user[0] != '\0' && strlen(user) < sizeof(user));
    char tiny_u[2], tiny_p[2];
    web_auth_parse_basic(text, tiny_u, sizeof(tiny_u), tiny_p, sizeof(tiny_p));

    uint8_t bin[1024];
    int n = auth_b64_decode(text, size, bin, sizeof(bin));
    if (n >= 0) {
        char again[2048];
        int m = auth_b64_encode(bin, (size_t)n, false, true, again, sizeof(again));
        FUZZ_ASSERT(m >= 0);
        uint8_t bin2[1024];
        FUZZ_ASSERT(auth_b64_decode(again, (size_t)m, bin2, sizeof(bin2)) == n);
        FUZZ_ASSERT(memcmp(bin, bin2, (size_t)n) == 0);
    }
    auth_b64_decode(text, size, bin, 3);

    struct web_auth_hash h, h2;
    if (web_auth_hash_parse(text, size, &h)) {
        char out[512];
        int m = web_auth_hash_format(&h, out, sizeof(out));
        FUZZ_ASSERT(m > 0 && (size_t)m < sizeof(out));
        FUZZ_ASSERT(web_auth_hash_parse(out, (size_t)m, &h2));
        FUZZ_ASSERT(h.iterations == h2.iterations && h.salt_len == h2.salt_len &&
                    h.key_len == h2.key_len);
        FUZZ_ASSERT(memcmp(h.salt, h2.salt, h.salt_len) == 0 &&
                    memcmp(h.key, h2.key, h.key_len) == 0);
    }

    struct auth_user u;
    const char *why = NULL;
    if (!auth_user_parse(text, size, &u, &why))
        FUZZ_ASSERT(why != NULL && why[0] != '\0');

    /* The settings values, as [web] users, allowlist and users_file. */
    static struct pgw_web_settings s;
    memset(&s, 0, sizeof(s));
    char *users, *allow;
    size_t ulen, alen;
    fuzz_split(data, size, &users, &ulen, &allow, &alen);
    if (ulen < sizeof(s.users) && (!allow || alen < sizeof(s.allowlist))) {
        memcpy(s.users, users, ulen + 1);
        if (allow)
            memcpy(s.allowlist, allow, alen + 1);
        struct auth_conf c;
        unsigned errs = 0;
        if (auth_conf_load(&s, &c, no_err, &errs)) {
            FUZZ_ASSERT(errs == 0);
            uint8_t addr[16] = {0};
            for (size_t i = 0; i < c.nnets; i++) {
                FUZZ_ASSERT(c.nets[i].prefix <= 128);
                auth_net_match(&c.nets[i], addr);
            }
            auth_conf_free(&c);
        }
    }
    free(users);
    free(allow);
    memset(&s, 0, sizeof(s));
    snprintf(s.users_file, sizeof(s.users_file), "%s", fuzz_file(data, size));
    struct auth_conf c;
    unsigned errs = 0;
    if (auth_conf_load(&s, &c, no_err, &errs))
        auth_conf_free(&c);
    free(text);
    return 0;
}
