/* Supervisor side of fencing: enforces the leader lease deadline when the ha process stalls. */
#ifndef PGW_HA_SUPFENCE_H
#define PGW_HA_SUPFENCE_H

/*
 * The ha process cannot fence itself while it is stopped (SIGSTOP), blocked in a slow etcd
 * request, or dead. After every renewal it sends MSG_LEASE {term, deadline, leader} to the
 * supervisor, which arms a CLOCK_BOOTTIME timer at the deadline. If the deadline passes with no
 * fresher MSG_LEASE, the supervisor fences on ha's behalf: it logs msg="fencing", sends
 * MSG_ROUTE "no leader" to the proxy and MSG_FENCE to ha (which drops leadership when it runs
 * again), and, when PostgreSQL is managed, sends SIGINT (fast shutdown: clients are
 * disconnected, no new write commits) to the postmaster named by <data_dir>/postmaster.pid.
 * A signal rather than pg_stop: the supervisor never blocks, and the ha process restarts the
 * server as a standby once it runs again (it demotes after a fence).
 */

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct msg_lease;
struct supfence;

/* How the supervisor sends a message to a child (node.c wires it to sup_send()). */
typedef int (*supfence_send_fn)(void *arg, uint8_t dst, uint16_t type, const void *payload,
                                uint32_t len);

/* NULL on failure (logged). */
struct supfence *supfence_new(struct loop *l, supfence_send_fn send, void *send_arg);
void supfence_free(struct supfence *f);
/* In a freshly forked child: drops the child's copy without touching the supervisor's loop. */
void supfence_forget(struct supfence *f);

/* On a fence, also stop the PostgreSQL of data_dir (copied) with SIGINT. */
void supfence_stop_postgres(struct supfence *f, const char *data_dir);

/* MSG_LEASE from ha. A leader lease arms (or re-arms) the deadline; a deadline already passed
 * fences at once; leader = 0 disarms. */
void supfence_on_lease(struct supfence *f, const struct msg_lease *m);

/* For tests and diagnostics. */
bool supfence_armed(const struct supfence *f);
unsigned supfence_count(const struct supfence *f); /* fences done so far */

#endif
