/*
 * proto_resp — the RESP2/RESP3 front end (redis-cli, hiredis, any Redis
 * client): commands in, core calls, replies out.  See README.md for the
 * commands.
 */
#ifndef DISPATCHD_PROTO_RESP_H
#define DISPATCHD_PROTO_RESP_H

#include "conn.h"

extern const struct proto proto_resp;

#endif
