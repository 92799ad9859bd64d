/* Config values: parse, compare and size the typed value of one config key. */
#ifndef PGW_CONFIG_VALUE_H
#define PGW_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>

#include "platform/config.h"

/* Room for a value error message from cfgval_set(). */
enum { CFGVAL_ERR_CAP = 240 };

/* Bytes the key's value occupies at its offset (the buffer size for STR/LIST). */
size_t cfgval_storage_size(const struct cfg_key *k);

/* Parses text v as k's type and stores it at dst + k->offset. On failure writes a message to
 * err (never containing the value of a CFG_SECRET key) and leaves dst unchanged. An empty v
 * stores the empty value of an optional STR/LIST/ADDR key and is an error otherwise. */
bool cfgval_set(const struct cfg_key *k, void *dst, const char *v, char *err, size_t cap);

/* True if k's value is the same in a and b. */
bool cfgval_same(const struct cfg_key *k, const void *a, const void *b);

/* True if "a|b|c" is a well-formed enum list (non-empty items). */
bool cfgval_enum_ok(const char *values);

#endif
