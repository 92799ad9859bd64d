/* `pgwarden version`: the program's version and the versions of every linked library. */
#include "agent/version.h"

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <mbedtls/version.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

void version_print(FILE *out)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    char mbed[32];
    int pq = PQlibVersion();

    mbedtls_version_get_string(mbed);
    fprintf(out, "pgwarden %s (rev %s)\n", PGW_VERSION, PGW_GIT_REV);
    fprintf(out, "  libpq          %d.%d (TLS: %s)\n", pq / 10000, pq % 10000,
            OpenSSL_version(OPENSSL_VERSION));
    fprintf(out, "  SQLite         %s\n", sqlite3_libversion());
    fprintf(out, "  mbedTLS        %s\n", mbed);
    fprintf(out, "  libmicrohttpd  %s\n", MHD_get_version());
    fprintf(out, "  libcurl        %s (TLS: %s)\n", cv->version,
            cv->ssl_version ? cv->ssl_version : "none");
    fprintf(out, "  jansson        %s\n", jansson_version_str());
}
