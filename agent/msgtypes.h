/* Message endpoints and types exchanged between the supervisor and the ha, proxy and web children.
 */
#ifndef PGW_MSGTYPES_H
#define PGW_MSGTYPES_H

#include <stddef.h>
#include <stdint.h>

#include "platform/msg.h"

/* Endpoint ids: the supervisor is 0 and routes every message to its destination. */
enum msg_endpoint { EP_SUP = 0, EP_HA = 1, EP_PROXY = 2, EP_WEB = 3, EP_ALL = 0xff };

enum msg_type {
    MSG_HELLO = 1,  /* child -> supervisor: the child is up (struct msg_hello) */
    MSG_CONFIG = 2, /* supervisor -> children: configuration after a reload (struct pgw_config) */
};

struct msg_hello {
    int32_t pid;
    char role[16];
};

extern const struct msg_spec msgtypes_specs[];
extern const size_t msgtypes_nspecs;

const char *msgtypes_endpoint_name(uint8_t ep);

#endif
