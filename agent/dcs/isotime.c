/* ISO-8601 timestamps as Python's datetime.isoformat() writes them and dateutil reads them. */
#include "agent/dcs/isotime.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int64_t *out)
{
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

bool dcs_time_parse(const char *s, int64_t *ms, bool *has_tz)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y, mo, d, h, mi, sec = 0, frac_ms = 0, off = 0;
    const char *p = s;
    bool tz = false;

    if (!s || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
        return false;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &sec))
            return false;
        if (*p == '.' || *p == ',') {
            int n = 0;
            p++;
            if (!isdigit((unsigned char)*p))
                return false;
            for (; isdigit((unsigned char)*p); p++, n++) {
                if (n < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            }
            for (; n < 3; n++)
                frac_ms *= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        tz = true;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int64_t oh, om = 0;
        if (!digits(&p, 2, &oh))
            return false;
        if (*p == ':')
            p++;
        if (isdigit((unsigned char)*p) && !digits(&p, 2, &om))
            return false;
        if (oh > 23 || om > 59)
            return false;
        off = sign * (oh * 3600 + om * 60);
        tz = true;
    }
    if (*p != '\0')
        return false;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
        return false;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
        return false;
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000 + frac_ms;
    if (has_tz)
        *has_tz = tz;
    return true;
}

int dcs_time_format(int64_t ms, char *out, size_t cap)
{
    /* 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z */
    if (ms < -62135596800000LL || ms >= 253402300800000LL)
        return -EINVAL;
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t frac = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400, y, m, d;
    int n;

    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999)
        return -EINVAL;
    if (frac)
        n = snprintf(out, cap, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lld000+00:00",
                     (long long)y, (long long)m, (long long)d, (long long)(rem / 3600),
                     (long long)(rem / 60 % 60), (long long)(rem % 60), (long long)frac);
    else
        n = snprintf(out, cap, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld+00:00", (long long)y,
                     (long long)m, (long long)d, (long long)(rem / 3600),
                     (long long)(rem / 60 % 60), (long long)(rem % 60));
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return n;
}
