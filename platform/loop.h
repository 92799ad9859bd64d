/* Event loop: epoll fd readiness, a min-heap of timers and signals through one signalfd. */
#ifndef PGW_LOOP_H
#define PGW_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

/* Interest bits for loop_add_fd/loop_mod_fd, and bits passed to a loop_fd_cb.
 * A hangup or error on the fd (EPOLLHUP/EPOLLERR, always watched by the kernel) is reported
 * as LOOP_READ | LOOP_ERR whatever was asked for: the callback then reads (and sees 0/-1)
 * or closes the fd. LOOP_ERR is never accepted as an interest bit. */
enum { LOOP_READ = 1, LOOP_WRITE = 2, LOOP_ERR = 4 };

typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(struct loop *l, uint64_t timer_id, void *arg);
typedef void (*loop_signal_cb)(struct loop *l, int signo, void *arg);

/* Creates a loop (epoll fd with EPOLL_CLOEXEC). NULL on failure (logged).
 * One loop per process: after fork() the child must not run the parent's loop (the epoll
 * instance is shared with the parent); it calls loop_free() on it, which only closes the
 * child's copies of the fds, and creates its own. */
struct loop *loop_new(void);
/* Closes the epoll fd and the signalfd and frees all storage. Registered fds are not closed.
 * Signals added with loop_add_signal stay blocked (unblocking could deliver a pending signal
 * with its default action); the caller restores the mask if it needs to. Not from a callback. */
void loop_free(struct loop *l);

/* Watches fd for `events` (LOOP_READ | LOOP_WRITE, or 0 for hangup/error only).
 * 0, -EEXIST if fd is already watched, -EBADF for fd < 0, -EINVAL for bad bits, -ENOMEM,
 * or -errno from epoll_ctl. Safe from callbacks. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg);
/* Changes the interest bits of a watched fd. 0, -ENOENT if not watched, -errno. */
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
/* Stops watching fd (call it before close(fd)). Safe from any callback, including for an fd
 * whose event is pending in the same epoll batch: its callback is then not called.
 * 0, -ENOENT if not watched, or -errno from epoll_ctl (the fd is forgotten anyway). */
int loop_del_fd(struct loop *l, int fd);

/* Runs cb after delay_ms, then every interval_ms if interval_ms > 0 (one-shot when 0).
 * Timers fire in deadline order (ties in the order they were added). A timer added from any
 * callback, even with delay 0, fires on a later iteration, never in the current one.
 * Repeating timers do not drift: next = previous deadline + interval, missed periods are
 * skipped (not fired in a burst). Returns an id > 0, or 0 on ENOMEM. */
uint64_t loop_add_timer(struct loop *l, uint64_t delay_ms, uint64_t interval_ms, loop_timer_cb cb,
                        void *arg);
/* Cancels a timer. Safe from callbacks, including the timer's own (a repeating timer then does
 * not fire again). True if a pending timer or the running repeating timer was cancelled; false
 * for an unknown id, or a one-shot timer that has already fired or is firing. */
bool loop_cancel_timer(struct loop *l, uint64_t id);

/* Delivers signo through the loop's signalfd (one signalfd shared by all signals) and blocks
 * it with sigprocmask. One callback per signal: adding it again replaces the callback.
 * 0, -EINVAL for a bad signal number (or SIGKILL/SIGSTOP), -errno. */
int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *arg);
/* The signalfd (readable while one of the loop's signals is pending), or -1 before the first
 * loop_add_signal. For blocking work that must give up when SIGTERM arrives (spawn cancel_fd). */
int loop_signal_fd(const struct loop *l);

/* Runs iterations until loop_stop() is called (from a callback); the current iteration is
 * completed first. Returns 0 after loop_stop, or -errno if epoll_wait fails. The stop request
 * is consumed on return, so loop_run may be called again. */
int loop_run(struct loop *l);
/* One iteration: waits at most max_wait_ms (<0 = no limit other than the next timer, 0 = poll)
 * for fd events, dispatches them, then fires due timers. Returns the number of fd events and
 * timers dispatched (a batch of signals counts as one fd event), or -errno if epoll_wait
 * fails (EINTR is not a failure). loop_stop() does not affect it. */
int loop_run_once(struct loop *l, int max_wait_ms);
/* Makes loop_run return after the current iteration. Safe from callbacks. */
void loop_stop(struct loop *l);
/* CLOCK_MONOTONIC ms cached when the current iteration started processing events (after
 * epoll_wait returned); timers are scheduled relative to it. */
uint64_t loop_now_ms(const struct loop *l);
/* Absolute CLOCK_MONOTONIC ms deadline of a pending timer (its next one for a repeating timer),
 * 0 if the id is unknown, fired or cancelled. */
uint64_t loop_timer_deadline(const struct loop *l, uint64_t id);
/* Number of pending timers (for tests and diagnostics). */
size_t loop_timer_count(const struct loop *l);

#endif
