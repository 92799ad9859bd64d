/* Supervisor: forks the child processes, routes their messages and restarts crashed ones within
 * limits. */
#ifndef PGW_SUPERVISOR_H
#define PGW_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "platform/msg.h"

enum { SUP_MAX_CHILDREN = 8, SUP_HISTORY = 128, SUP_EXIT_INTENSITY = 70 };

/* Restart intensity: at most max_restarts restarts in any window_ms, else the supervisor gives
 * up (like Erlang/OTP's intensity and period). A child is restarted after a backoff that doubles
 * with each consecutive crash (from backoff_min_ms to backoff_max_ms) and resets once the child
 * has stayed up for stable_ms. */
struct sup_policy {
    int max_restarts;
    uint64_t window_ms;
    uint64_t backoff_min_ms;
    uint64_t backoff_max_ms;
    uint64_t stable_ms;
};

/* Restart bookkeeping shared by all children of one supervisor. */
struct sup_history {
    uint64_t times[SUP_HISTORY]; /* ring of restart times (ms) */
    size_t count;                /* number of valid entries, at most SUP_HISTORY */
    size_t next;                 /* ring write position */
};

enum sup_verdict { SUP_RESTART, SUP_GIVE_UP };

/* Pure restart policy: records a crash at now_ms of a child that had been up for uptime_ms after
 * `consecutive` earlier back-to-back crashes. Returns SUP_GIVE_UP when restarting would exceed
 * the intensity; otherwise SUP_RESTART with the delay before the restart in *delay_ms and the
 * updated consecutive-crash count in *consecutive. */
enum sup_verdict sup_policy_decide(const struct sup_policy *p, struct sup_history *h,
                                   uint64_t now_ms, uint64_t uptime_ms, unsigned *consecutive,
                                   uint64_t *delay_ms);

struct sup;

/* One supervised child. `main` runs in the forked process with the channel to the supervisor
 * and returns the exit status. `id` is the child's message endpoint id (1..SUP_MAX_CHILDREN);
 * endpoint 0 is the supervisor itself. */
struct sup_child_spec {
    const char *name;
    uint8_t id;
    int (*main)(void *app, int chan_fd);
};

struct sup_hooks {
    void *app;
    /* Called in each freshly forked child before its main (close fds it must not hold). */
    void (*in_child)(void *app, const struct sup_child_spec *spec);
    /* SIGHUP: re-read configuration; may call sup_broadcast(). */
    void (*on_reload)(struct sup *s, void *app);
    /* A message addressed to the supervisor (dst 0). */
    void (*on_message)(struct sup *s, const struct msg_hdr *hdr, const void *payload, void *app);
    /* All children have sent their first hello: the service is ready. */
    void (*on_ready)(struct sup *s, void *app);
};

struct sup_config {
    struct sup_policy policy;
    uint64_t shutdown_timeout_ms;
    const struct msg_spec *specs; /* message types the hub accepts */
    size_t nspecs;
    uint16_t hello_type; /* message type a child sends once it is up */
};

struct sup *sup_new(const struct sup_config *cfg, const struct sup_hooks *hooks,
                    const struct sup_child_spec *children, size_t nchildren);
void sup_free(struct sup *s);

/* Forks every child and runs until a SIGTERM/SIGINT stop (returns 0) or until the restart
 * intensity is exceeded (returns SUP_EXIT_INTENSITY). Blocks SIGCHLD, SIGTERM, SIGINT, SIGHUP. */
int sup_run(struct sup *s);

/* Sends a message from the supervisor to one child (dst) or to all (dst 0xff). */
int sup_send(struct sup *s, uint8_t dst, uint16_t type, const void *payload, uint32_t len);
int sup_broadcast(struct sup *s, uint16_t type, const void *payload, uint32_t len);

/* The supervisor's event loop (valid from sup_new() to sup_free()), for hooks that need their
 * own timers or fds in the supervisor process. Children never use it: after fork they get a
 * fresh loop of their own. */
struct loop *sup_loop(struct sup *s);

/* Current pid of a child (0 when not running); for status reporting. */
pid_t sup_child_pid(const struct sup *s, uint8_t id);

#endif
