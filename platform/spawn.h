/* Process spawn: run a program with a timeout, captured output and optional stdin data. */
#ifndef PGW_SPAWN_H
#define PGW_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spawn_opts {
    const char *const *argv; /* argv[0] is looked up in $PATH unless it contains a '/' */
    const char *const *envp; /* NULL = inherit this process's environment */
    const char *cwd;         /* NULL = inherit */
    int timeout_ms;          /* <= 0 = none */
    int kill_grace_ms;       /* after SIGTERM before SIGKILL; 2000 when 0 */
    size_t out_cap;          /* max captured bytes, 64 KiB when 0; the excess is drained */
    const char *stdin_data;  /* NUL-terminated; NULL = stdin from /dev/null */
    int cancel_fd; /* > 0: when it becomes readable (e.g. a signalfd with SIGTERM pending), the
                      child is stopped as on a timeout and the result says cancelled */
    void (*tick)(void *arg); /* non-NULL: called about every tick_ms while the program runs, so a
                                caller blocked on a long program keeps its own duties (a lease)
                                alive; it must not reap children */
    void *tick_arg;
    int tick_ms; /* 1000 when <= 0 */
};

struct spawn_result {
    int exit_code;   /* exit status, or -1 if killed by a signal */
    int term_signal; /* 0 if exited */
    bool timed_out;
    bool cancelled; /* cancel_fd became readable first */
    char *output;   /* stdout+stderr interleaved, NUL-terminated, malloc'd, may be truncated */
    size_t output_len;
    bool output_truncated;
    uint64_t elapsed_ms;
};

/* Runs the program and waits for it. The child gets its own process group, a default signal
 * mask and dispositions, stdin from /dev/null (or stdin_data), stdout and stderr on one pipe,
 * and no other fds. On timeout the whole group gets SIGTERM, then SIGKILL after the grace
 * (and SIGKILL again once the child has exited, for stragglers in its group).
 * The output is collected until the child exits; a background grandchild that keeps the pipe
 * open does not hold up the return. Only the child's pid is waited for: the caller must not
 * ignore SIGCHLD or reap children with waitpid(-1) meanwhile (a signalfd is fine).
 * Returns 0 if the program was started and reaped, whatever its exit (see *r), or -errno if it
 * could not be started: -ENOENT/-EACCES/... for exec or chdir failures (reported by the child
 * through a close-on-exec pipe, never as exit 127), -EINVAL for bad options.
 * *r is always initialised (on failure: output NULL, exit_code -1); call spawn_result_free()
 * in both cases. Only argv[0] is logged:
 * arguments may hold secrets. */
int spawn_run(const struct spawn_opts *o, struct spawn_result *r);
void spawn_result_free(struct spawn_result *r);

#endif
