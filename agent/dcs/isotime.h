/* ISO-8601 timestamps as Python's datetime.isoformat() writes them and dateutil reads them. */
#ifndef PGW_DCS_ISOTIME_H
#define PGW_DCS_ISOTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { DCS_TIME_MAX = 40 }; /* "2019-09-24T12:00:00.123000+00:00" + NUL fits */

/* Parses "YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z|+HH:MM|+HHMM|+HH]" (years 1..9999) into
 * milliseconds since the Unix epoch, UTC (fractions below 1 ms are dropped). *has_tz tells
 * whether a zone was given; without one the time is read as UTC. Returns false if s is not
 * such a timestamp or a field is out of range (month 13, Feb 30, 24:00, offset >= 24 h). */
bool dcs_time_parse(const char *s, int64_t *ms, bool *has_tz);

/* Writes ms (since the epoch, UTC) as Python's isoformat() of an aware UTC datetime:
 * "2019-09-24T12:00:00+00:00", or "...:00.123000+00:00" when ms has a fraction. Returns the
 * length or -EINVAL (year outside 1..9999) / -ENAMETOOLONG. */
int dcs_time_format(int64_t ms, char *out, size_t cap);

#endif
