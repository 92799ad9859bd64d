/* The state a recorded migration job is shown in: finished, online and live, or interrupted. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "agent/migrate/migrate.h"
#include "agent/store.h"

bool mig_pid_alive(int64_t pid)
{
    return pid > 0 && pid <= INT32_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

bool mig_job_online_lives(const struct store_migration *m)
{
    static const char *const live[] = {"copy", "streaming", "cutover", "verify", "finish"};
    if (strcmp(m->mode, "online") != 0)
        return false;
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
        if (strcmp(m->state, live[i]) == 0)
            return true;
    return false;
}

const char *mig_job_shown_state(const struct store_migration *m, bool alive)
{
    if (strcmp(m->state, "done") == 0 || strcmp(m->state, "failed") == 0 || mig_job_online_lives(m))
        return m->state;
    return alive ? m->state : "interrupted";
}
