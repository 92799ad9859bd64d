/* The node: what the supervisor and its children share after fork (config, listening sockets). */
#ifndef PGW_NODE_H
#define PGW_NODE_H

#include "agent/settings.h"

struct sup;
struct supfence;

struct node {
    struct pgw_config cfg;
    const char *config_path;
    int proxy_rw_fd; /* listening sockets bound by the supervisor before fork */
    int proxy_ro_fd;
    int web_fd;
    struct sup *sup;        /* supervisor process only (children: do not use) */
    struct supfence *fence; /* supervisor side of fencing; NULL in children */
};

/* `pgwarden run`: exit status per sysexits (78 config, 73 state folder, 65 state file). */
int node_run(const char *config_path);

/* The children's entry points; `app` is the struct node. */
int ha_main(void *app, int chan_fd);
int proxy_main(void *app, int chan_fd);
int web_main(void *app, int chan_fd);

#endif
