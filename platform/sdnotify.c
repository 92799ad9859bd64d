/* systemd notification (sd_notify protocol) without libsystemd. */
#define LOG_MODULE "sdnotify"
#include "platform/sdnotify.h"

#include "platform/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Builds the socket address from $NOTIFY_SOCKET. 0, or -errno. */
static int notify_addr(const char *env, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n = strlen(env);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (env[0] != '/' && env[0] != '@')
        return -EAFNOSUPPORT;
    if (env[0] == '@') {
        /* Abstract: a leading NUL, and the length counts exactly the name bytes. */
        if (n > sizeof(sa->sun_path))
            return -ENAMETOOLONG;
        memcpy(sa->sun_path + 1, env + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof(sa->sun_path))
            return -ENAMETOOLONG;
        memcpy(sa->sun_path, env, n);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

int sdnotify_send(const char *state)
{
    if (!state)
        return -EINVAL;
    const char *env = getenv("NOTIFY_SOCKET");
    if (!env || !*env)
        return 0;
    struct sockaddr_un sa;
    socklen_t salen = 0;
    int rc = notify_addr(env, &sa, &salen);
    if (rc < 0) {
        log_warn("unusable NOTIFY_SOCKET", "err=\"%s\"", strerror(-rc));
        return rc;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        log_warn("notify socket failed", "err=\"%s\"", strerror(-rc));
        return rc;
    }
    size_t len = strlen(state);
    ssize_t n;
    do {
        n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        rc = -errno;
        log_warn("notify send failed", "err=\"%s\"", strerror(-rc));
    } else if ((size_t)n != len) {
        rc = -EMSGSIZE;
        log_warn("notify send short", "sent=%zd len=%zu", n, len);
    }
    close(fd);
    return rc;
}

/* Parses a whole decimal number in [1, max]; false on anything else. */
static bool parse_positive(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max)
        return false;
    *out = v;
    return true;
}

uint64_t sdnotify_watchdog_usec(void)
{
    unsigned long long usec = 0, pid = 0;
    if (!parse_positive(getenv("WATCHDOG_USEC"), UINT64_MAX, &usec))
        return 0;
    const char *pid_s = getenv("WATCHDOG_PID");
    if (pid_s && *pid_s) {
        if (!parse_positive(pid_s, INT32_MAX, &pid) || (pid_t)pid != getpid())
            return 0;
    }
    return (uint64_t)usec;
}
