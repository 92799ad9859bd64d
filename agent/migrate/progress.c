/* Migration progress: rate and ETA arithmetic, the progress line, pg_dump/pg_restore lines. */
#include "agent/migrate/migrate.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum { RATE_MIN_SAMPLE_MS = 500 };

const char *mig_phase_name(enum mig_phase p)
{
    switch (p) {
    case MIG_PH_PREFLIGHT:
        return "preflight";
    case MIG_PH_DUMP:
        return "dump";
    case MIG_PH_RESTORE:
        return "restore";
    case MIG_PH_VERIFY:
        return "verify";
    case MIG_PH_FINISH:
        return "finish";
    case MIG_PH_DONE:
        return "done";
    case MIG_PH_FAILED:
        return "failed";
    case MIG_PH_SCHEMA:
        return "schema";
    case MIG_PH_COPY:
        return "copy";
    case MIG_PH_STREAMING:
        return "streaming";
    case MIG_PH_CUTOVER:
        return "cutover";
    case MIG_PH_COUNT:
        break;
    }
    return "unknown";
}

void mig_progress_phase(struct mig_progress *p, enum mig_phase ph, uint64_t now_ms)
{
    p->phase = ph;
    p->bytes_done = p->bytes_total = 0;
    p->tables_done = p->tables_total = 0;
    p->phase_start_ms = now_ms;
    p->rate_ms = now_ms;
    p->rate_bytes = 0;
    p->rate_bps = 0;
}

void mig_progress_sample(struct mig_progress *p, uint64_t bytes_done, uint64_t now_ms)
{
    if (bytes_done < p->bytes_done)
        bytes_done = p->bytes_done;
    p->bytes_done = bytes_done;
    if (now_ms < p->rate_ms + RATE_MIN_SAMPLE_MS)
        return;
    double dt = (double)(now_ms - p->rate_ms) / 1000.0;
    double inst = (double)(bytes_done - p->rate_bytes) / dt;
    /* the first sample sets the rate; later ones are smoothed */
    p->rate_bps = p->rate_bps <= 0 ? inst : 0.7 * p->rate_bps + 0.3 * inst;
    p->rate_ms = now_ms;
    p->rate_bytes = bytes_done;
}

double mig_progress_fraction(const struct mig_progress *p)
{
    double f = 0;
    if (p->bytes_total > 0)
        f = (double)p->bytes_done / (double)p->bytes_total;
    else if (p->tables_total > 0)
        f = (double)p->tables_done / (double)p->tables_total;
    if (f < 0)
        f = 0;
    if (f > 1)
        f = 1;
    return f;
}

int64_t mig_progress_eta_s(const struct mig_progress *p, uint64_t now_ms)
{
    double f = mig_progress_fraction(p);
    if (now_ms < p->phase_start_ms + 1000 || f <= 0)
        return -1;
    if (f >= 1)
        return 0;
    double elapsed = (double)(now_ms - p->phase_start_ms) / 1000.0;
    double left = elapsed * (1 - f) / f;
    /* the current rate gives a second estimate of the bytes left: take the mean */
    if (p->bytes_total > 0 && p->rate_bps > 0) {
        double by_rate = (double)(p->bytes_total - p->bytes_done) / p->rate_bps;
        left = (left + by_rate) / 2;
    }
    if (left > 100.0 * 24 * 3600)
        left = 100.0 * 24 * 3600;
    return (int64_t)(left + 0.5);
}

char *mig_fmt_bytes(uint64_t b, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    if (b < 1024) {
        snprintf(out, cap, "%" PRIu64 " B", b);
        return out;
    }
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s", v, units[u]);
    return out;
}

char *mig_fmt_duration(int64_t s, char *out, size_t cap)
{
    if (s < 0)
        snprintf(out, cap, "--:--");
    else if (s >= 3600)
        snprintf(out, cap, "%" PRId64 ":%02d:%02d", s / 3600, (int)(s / 60 % 60), (int)(s % 60));
    else
        snprintf(out, cap, "%d:%02d", (int)(s / 60), (int)(s % 60));
    return out;
}

char *mig_progress_line(const struct mig_progress *p, uint64_t now_ms, int bar_width, char *out,
                        size_t cap)
{
    char bar[130] = "";
    double f = mig_progress_fraction(p);
    if (bar_width > 0) {
        int w = bar_width > 120 ? 120 : bar_width;
        int fill = (int)(f * w);
        bar[0] = '[';
        for (int i = 0; i < w; i++)
            bar[1 + i] = i < fill ? '#' : '.';
        bar[1 + w] = ']';
        bar[2 + w] = ' ';
        bar[3 + w] = '\0';
    }
    char done[32], total[32], rate[32], eta[32];
    mig_fmt_bytes(p->bytes_done, done, sizeof(done));
    mig_fmt_bytes(p->bytes_total, total, sizeof(total));
    mig_fmt_bytes((uint64_t)(p->rate_bps > 0 ? p->rate_bps : 0), rate, sizeof(rate));
    mig_fmt_duration(mig_progress_eta_s(p, now_ms), eta, sizeof(eta));
    if (p->bytes_total == 0) /* counted in tables only (the verification) */
        snprintf(out, cap, "%s%3d%% %-7s %" PRIu64 "/%" PRIu64 " tables ETA %s", bar,
                 (int)(f * 100), mig_phase_name(p->phase), p->tables_done, p->tables_total, eta);
    else
        snprintf(out, cap, "%s%3d%% %-7s %s/%s %" PRIu64 "/%" PRIu64 " tables %s/s ETA %s", bar,
                 (int)(f * 100), mig_phase_name(p->phase), done, total, p->tables_done,
                 p->tables_total, rate, eta);
    return out;
}

/* Copies the text between the first pair of double quotes after `from`. */
static bool quoted(const char *from, char *name, size_t cap)
{
    const char *a = strchr(from, '"');
    const char *b = a ? strrchr(a + 1, '"') : NULL;
    if (!a || !b || b == a + 1)
        return false;
    snprintf(name, cap, "%.*s", (int)(b - a - 1), a + 1);
    return true;
}

enum mig_line_kind mig_parse_tool_line(const char *line, char *name, size_t cap)
{
    static const char *const started[] = {"dumping contents of table ",
                                          "processing data for table "};
    if (cap)
        name[0] = '\0';
    const char *colon = strstr(line, ": ");
    if (!colon || (strncmp(line, "pg_dump:", 8) != 0 && strncmp(line, "pg_restore:", 11) != 0))
        return MIG_LINE_OTHER;
    const char *msg = colon + 2;
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(started[i]);
        if (strncmp(msg, started[i], n) == 0 && quoted(msg + n, name, cap))
            return MIG_LINE_TABLE_STARTED;
    }
    const char *fin = "finished item ";
    if (strncmp(msg, fin, strlen(fin)) == 0) {
        const char *p = msg + strlen(fin);
        while (*p >= '0' && *p <= '9')
            p++;
        if (strncmp(p, " TABLE DATA ", 12) == 0 && p[12]) {
            snprintf(name, cap, "%s", p + 12);
            size_t n = strlen(name);
            while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == '\r'))
                name[--n] = '\0';
            return MIG_LINE_TABLE_FINISHED;
        }
    }
    return MIG_LINE_OTHER;
}
