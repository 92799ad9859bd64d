/* The table of message types with their size limits, shared by every process. */
#include "agent/msgtypes.h"

#include "agent/settings.h"

_Static_assert(sizeof(struct pgw_config) <= MSG_MAX_PAYLOAD, "config must fit in one message");
_Static_assert(sizeof(struct msg_route) <= MSG_MAX_PAYLOAD, "route must fit in one message");
_Static_assert(sizeof(struct msg_proxy_stats) <= MSG_MAX_PAYLOAD, "stats must fit in one message");

const struct msg_spec msgtypes_specs[] = {
    {MSG_HELLO, "hello", sizeof(struct msg_hello), sizeof(struct msg_hello)},
    {MSG_CONFIG, "config", sizeof(struct pgw_config), sizeof(struct pgw_config)},
    {MSG_LEASE, "lease", sizeof(struct msg_lease), sizeof(struct msg_lease)},
    {MSG_ROUTE, "route", sizeof(struct msg_route), sizeof(struct msg_route)},
    {MSG_FENCE, "fence", sizeof(struct msg_fence), sizeof(struct msg_fence)},
    {MSG_PROXY_STATS, "proxy_stats", sizeof(struct msg_proxy_stats),
     sizeof(struct msg_proxy_stats)},
    {MSG_STATUS, "status", 2, MSG_MAX_PAYLOAD},
    {MSG_COMMAND, "command", 2, MSG_MAX_PAYLOAD},
    {MSG_REPLY, "reply", 2, MSG_MAX_PAYLOAD},
};
const size_t msgtypes_nspecs = sizeof(msgtypes_specs) / sizeof(msgtypes_specs[0]);

const char *msgtypes_endpoint_name(uint8_t ep)
{
    switch (ep) {
    case EP_SUP:
        return "supervisor";
    case EP_HA:
        return "ha";
    case EP_PROXY:
        return "proxy";
    case EP_WEB:
        return "web";
    default:
        return "?";
    }
}
