/*
 * proto_bin — the binary protocol front end (docs/binary-protocol.md): a
 * connection whose first byte is 0xD5 speaks it for its whole life.
 * Each frame is one core call; the reply goes out under the same request
 * id, in request order, once what it acknowledges is durable.  Loop thread
 * only, like every front end.
 */
#ifndef DISPATCHD_PROTO_BIN_H
#define DISPATCHD_PROTO_BIN_H

#include "conn.h"

extern const struct proto proto_bin;

#endif
