/* The web child: holds the API/dashboard listening socket (the API itself is issue #6). */
#include "agent/child.h"
#include "agent/msgtypes.h"
#include "agent/node.h"

int web_main(void *app, int chan_fd)
{
    struct node *n = app;
    const struct child_role role = {.name = "web", .endpoint = EP_WEB};
    return child_run(&role, NULL, &n->cfg, chan_fd);
}
