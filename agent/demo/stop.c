/* demo stop: nodes (replicas first), leftover postmasters, etcd, then any orphan left to us. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/demo/demo.h"

enum {
    NODE_STOP_MS = 45000,       /* the supervisor's shutdown_timeout (20 s) and PostgreSQL's stop */
    POSTMASTER_STOP_MS = 30000, /* fast shutdown of a postmaster left behind */
    ETCD_STOP_MS = 20000,
};

/* ppid, state and comm of pid from /proc/PID/stat; false if it does not exist. */
static bool proc_info(pid_t pid, pid_t *ppid, char *state, char *comm, size_t cap)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *lp = strchr(buf, '(');
    const char *rp = strrchr(buf, ')');
    if (!lp || !rp || rp < lp || rp[1] != ' ' || !rp[2])
        return false;
    if (comm)
        snprintf(comm, cap, "%.*s", (int)(rp - lp - 1), lp + 1);
    *state = rp[2];
    *ppid = (pid_t)strtol(rp + 4, NULL, 10);
    return true;
}

/* True while pid exists and is not a zombie (reaping it if it is our child). */
static bool alive(pid_t pid)
{
    pid_t ppid;
    char state;
    if (waitpid(pid, NULL, WNOHANG) == pid)
        return false;
    return proc_info(pid, &ppid, &state, NULL, 0) && state != 'Z' && state != 'X';
}

/* A PostgreSQL still running in data_dir (its agent died or was killed): fast shutdown. */
static int stop_postmaster(const char *dir, int i)
{
    char path[PGW_PATH_MAX], line[32] = "", comm[64];
    if (!demo_path(path, sizeof(path), "%s/n%d/data/postmaster.pid", dir, i + 1))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    char *end;
    long pid = strtol(line, &end, 10);
    pid_t ppid;
    char state;
    if (pid <= 1 || end == line || !proc_info((pid_t)pid, &ppid, &state, comm, sizeof(comm)) ||
        strcmp(comm, "postgres") != 0 || state == 'Z')
        return 0;
    printf("demo: stopping the PostgreSQL of n%d left running (pid %ld)\n", i + 1, pid);
    kill((pid_t)pid, SIGINT);
    for (int waited = 0; alive((pid_t)pid) && waited < POSTMASTER_STOP_MS; waited += 50)
        poll(NULL, 0, 50);
    if (!alive((pid_t)pid))
        return 0;
    fprintf(stderr, "pgwarden demo: PostgreSQL of n%d (pid %ld) did not stop: killing it\n", i + 1,
            pid);
    kill((pid_t)pid, SIGKILL);
    return 1;
}

/* Children of this process that are none of ours: orphans reparented to us (subreaper). */
static int kill_orphans(void)
{
    int killed = 0;
    pid_t self = getpid();
    for (int round = 0; round < 20; round++) {
        DIR *d = opendir("/proc");
        const struct dirent *de;
        int found = 0;
        while (d && (de = readdir(d)) != NULL) {
            char *end;
            long pid = strtol(de->d_name, &end, 10);
            pid_t ppid;
            char state, comm[64];
            if (*end || pid <= 1 || !proc_info((pid_t)pid, &ppid, &state, comm, sizeof(comm)) ||
                ppid != self)
                continue;
            if (state != 'Z') {
                found++;
                if (round == 0) {
                    fprintf(stderr, "pgwarden demo: killing leftover process %ld (%s)\n", pid,
                            comm);
                    killed++;
                }
                kill((pid_t)pid, SIGKILL);
            }
            waitpid((pid_t)pid, NULL, WNOHANG);
        }
        if (d)
            closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (!found)
            break;
        poll(NULL, 0, 50);
    }
    return killed;
}

int demo_stop_all(struct demo_proc *nodes, struct demo_proc *etcd, const char *dir, int leader,
                  int sig_fd)
{
    struct demo_proc *group[DEMO_NODES];
    size_t n = 0;
    int killed = 0;
    for (int i = 0; i < DEMO_NODES; i++) {
        if (i != leader)
            group[n++] = &nodes[i];
    }
    printf("demo: stopping the nodes%s\n", leader >= 0 ? " (replicas first, then the leader)" : "");
    killed += demo_proc_stop(group, n, SIGTERM, NODE_STOP_MS, sig_fd);
    if (leader >= 0) {
        group[0] = &nodes[leader];
        killed += demo_proc_stop(group, 1, SIGTERM, NODE_STOP_MS, sig_fd);
    }
    for (int i = 0; i < DEMO_NODES; i++)
        killed += stop_postmaster(dir, i);
    printf("demo: stopping etcd\n");
    for (int i = 0; i < DEMO_NODES; i++)
        group[i] = &etcd[i];
    killed += demo_proc_stop(group, DEMO_NODES, SIGTERM, ETCD_STOP_MS, sig_fd);
    killed += kill_orphans();
    return killed;
}
