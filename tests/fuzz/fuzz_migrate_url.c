/* Fuzz target: `pgwarden migrate --from URL` parsing (mig_url_parse) and what is built from it. */
#include <stdio.h>

#include "agent/migrate/migrate.h"
#include "tests/fuzz/fuzz.h"

/* A parsed URL must display, make a conninfo and a passfile line without ever holding the
 * password; scrubbing the URL leaves it parseable the same way. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *url = fuzz_cstr(data, size);
    static struct mig_url u, u2;
    char pw[256], pw2[256], err[256], err2[256];
    int rc = mig_url_parse(url, &u, pw, sizeof(pw), err, sizeof(err));
    if (rc == 0) {
        FUZZ_ASSERT(u.host[0] != '\0' && u.user[0] != '\0');
        FUZZ_ASSERT(u.nparams <= MIG_PARAMS_MAX);
        static char disp[MIG_DISPLAY_MAX], ci[4096], line[1024];
        mig_url_display(&u, disp, sizeof(disp));
        FUZZ_ASSERT(memchr(disp, '\0', sizeof(disp)) != NULL);
        mig_url_conninfo(&u, NULL, "/run/pgwarden/pgpass", "pgwarden-migrate", ci, sizeof(ci));
        mig_url_conninfo(&u, "target", "/run/pgwarden/pgpass", "x'y\\z", ci, sizeof(ci));
        mig_url_param(&u, "sslmode");
        if (u.has_password)
            mig_passfile_line(u.host, u.port, u.user, pw, line, sizeof(line));
        /* Scrubbed, the URL still parses to the same host, user and database. */
        char *scrubbed = fuzz_cstr(data, size);
        bool had = mig_url_scrub(scrubbed);
        FUZZ_ASSERT(!had || u.has_password || strchr(url, '@'));
        if (mig_url_parse(scrubbed, &u2, pw2, sizeof(pw2), err2, sizeof(err2)) == 0) {
            FUZZ_ASSERT(strcmp(u.host, u2.host) == 0 && strcmp(u.user, u2.user) == 0);
            FUZZ_ASSERT(strcmp(u.dbname, u2.dbname) == 0 && u.port == u2.port);
        }
        free(scrubbed);
    } else {
        FUZZ_ASSERT(rc < 0 && memchr(err, '\0', sizeof(err)) != NULL);
    }
    free(url);
    return 0;
}
