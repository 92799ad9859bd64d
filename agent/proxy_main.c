/* The proxy child: holds the forwarder's listening sockets (the forwarder itself is issue #5). */
#include "agent/child.h"
#include "agent/msgtypes.h"
#include "agent/node.h"

int proxy_main(void *app, int chan_fd)
{
    struct node *n = app;
    const struct child_role role = {.name = "proxy", .endpoint = EP_PROXY};
    return child_run(&role, NULL, &n->cfg, chan_fd);
}
