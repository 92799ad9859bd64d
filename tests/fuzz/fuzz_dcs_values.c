/* Fuzz target: the small DCS values (leader, initialize, optime, status, sync, failover, failsafe).
 */
#include <stdio.h>

#include "agent/dcs/isotime.h"
#include "agent/dcs/values.h"
#include "tests/fuzz/fuzz.h"

/* Every decoder sees the same value; whatever decodes and encodes must decode again to the same
 * encoding. Also the timestamps (scheduled_at) and pyjson's load/dump. */

#define ROUND_TRIP(type, decode, encode, v)                                                        \
    do {                                                                                           \
        size_t len_, len2_;                                                                        \
        struct dcs_err e_ = {{0}};                                                                 \
        char *enc_ = encode(v, &len_, &e_);                                                        \
        if (enc_) {                                                                                \
            static type again_;                                                                    \
            if (!decode(enc_, len_, &again_, &e_)) {                                               \
                fprintf(stderr, "%s: re-decode of %s failed: %s\n", #decode, enc_, e_.msg);        \
                FUZZ_ASSERT(!"an encoded value decodes");                                          \
            }                                                                                      \
            char *enc2_ = encode(&again_, &len2_, &e_);                                            \
            FUZZ_ASSERT(enc2_ &&len2_ == len_ && memcmp(enc_, enc2_, len_) == 0);                  \
            free(enc2_);                                                                           \
            free(enc_);                                                                            \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *text = fuzz_cstr(data, size);
    struct dcs_err err = {{0}};

    char name[DCS_NAME_MAX];
    if (dcs_leader_decode(text, size, name, sizeof(name), &err))
        FUZZ_ASSERT(strlen(name) == size);

    struct dcs_initialize init, init2;
    if (dcs_initialize_decode(text, size, &init, &err) && !init.racing) {
        /* The text is kept as read ("069" stays so); the number must survive a round trip. */
        char buf[DCS_SYSID_MAX];
        int n = dcs_initialize_encode(init.sysid_num, buf, sizeof(buf));
        FUZZ_ASSERT(n > 0 && dcs_initialize_decode(buf, (size_t)n, &init2, &err));
        FUZZ_ASSERT(init2.sysid_num == init.sysid_num);
    }

    int64_t lsn;
    if (dcs_optime_decode(text, size, &lsn, &err)) {
        char buf[32];
        int n = dcs_optime_encode(lsn, buf, sizeof(buf));
        int64_t lsn2;
        FUZZ_ASSERT(n > 0 && dcs_optime_decode(buf, (size_t)n, &lsn2, &err) && lsn2 == lsn);
    }

    static struct dcs_status st;
    if (dcs_status_decode(text, size, &st, &err))
        ROUND_TRIP(struct dcs_status, dcs_status_decode, dcs_status_encode, &st);

    static struct dcs_sync sync;
    if (dcs_sync_decode(text, size, &sync, &err)) {
        dcs_sync_matches(&sync, "pg-1", true);
        ROUND_TRIP(struct dcs_sync, dcs_sync_decode, dcs_sync_encode, &sync);
    }

    static struct dcs_failover fo;
    if (dcs_failover_decode(text, size, &fo, &err)) {
        dcs_failover_empty(&fo);
        ROUND_TRIP(struct dcs_failover, dcs_failover_decode, dcs_failover_encode, &fo);
    }

    static struct dcs_failsafe fs;
    if (dcs_failsafe_decode(text, size, &fs, &err)) {
        dcs_failsafe_find(&fs, "pg-1");
        ROUND_TRIP(struct dcs_failsafe, dcs_failsafe_decode, dcs_failsafe_encode, &fs);
    }

    int64_t ms;
    bool has_tz;
    if (dcs_time_parse(text, &ms, &has_tz)) {
        char buf[DCS_TIME_MAX];
        int n = dcs_time_format(ms, buf, sizeof(buf));
        int64_t ms2;
        /* n < 0: the zone moved the time out of years 1..9999 */
        FUZZ_ASSERT(n < 0 || (dcs_time_parse(buf, &ms2, &has_tz) && ms2 == ms && has_tz));
    }

    json_t *j = pyjson_load(text, size, "value", &err);
    if (j) {
        size_t len;
        char *dump = pyjson_dump(j, &len);
        if (dump) {
            json_t *j2 = pyjson_load(dump, len, "value", &err);
            FUZZ_ASSERT(j2 != NULL);
            size_t len2;
            char *dump2 = pyjson_dump(j2, &len2);
            FUZZ_ASSERT(dump2 && len2 == len && memcmp(dump, dump2, len) == 0);
            free(dump2);
            json_decref(j2);
            free(dump);
        }
        json_decref(j);
    }
    free(text);
    return 0;
}
