/* `pgwarden version`: the program's version and the versions of every linked library. */
#ifndef PGW_VERSION_H
#define PGW_VERSION_H

#include <stdio.h>

void version_print(FILE *out);

#endif
