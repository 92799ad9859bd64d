/* Fuzz target: parsers of PostgreSQL tools' output (pg_controldata, .history, pg_waldump, pid,
 * LSN). */
#include "agent/pg/pg.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *text = fuzz_cstr(data, size);

    struct pg_controldata cd;
    uint64_t lsn = 0x3000028;
    if (pg_controldata_parse(text, &cd) == 0)
        lsn = cd.checkpoint_lsn;

    struct pg_tl_switch *sw = NULL;
    size_t n = 0;
    if (pg_timeline_history_parse(text, size, &sw, &n) == 0)
        FUZZ_ASSERT(n == 0 || sw != NULL);
    free(sw);

    uint64_t end;
    pg_waldump_checkpoint_end_parse(text, lsn, &end);
    pg_waldump_checkpoint_end_parse(text, 0, &end);

    struct pg_postmaster pm;
    pg_postmaster_pid_parse(text, &pm);

    /* Each line as an LSN: what parses formats back to the same value. */
    for (char *line = text, *next; line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        uint64_t v, v2;
        if (pg_lsn_parse(line, &v) == 0) {
            char buf[32];
            pg_lsn_format(v, buf, sizeof(buf));
            FUZZ_ASSERT(pg_lsn_parse(buf, &v2) == 0 && v2 == v);
        }
    }
    free(text);
    return 0;
}
