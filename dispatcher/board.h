/*
 * board — what the live board shows of one warehouse, as one JSON
 * snapshot (GET /v1/board?wh=): the first queued orders in pick order
 * with class, deadline, time left, customer, position and ETA; the ones
 * among them at risk of missing their deadline, listed apart; the orders
 * pickers hold with the lease time left; the last queue jumps as the
 * chat cards read (card.h); counts per state and class; storage state;
 * the warehouses there are.
 *
 * The board keeps the last BOARD_JUMPS jump cards itself, from the event
 * log at start and from the live events after, so a snapshot reads no
 * storage.  Loop thread only.
 */
#ifndef DISPATCHD_BOARD_H
#define DISPATCHD_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"

#define BOARD_JUMPS 32 /* jump cards kept (over every warehouse) */
#define BOARD_JUMPS_SHOWN 8
#define BOARD_PICKING_MAX 500 /* held orders listed */

struct board;

/* Listen to c's events and load the recent jumps from its log; NULL after
   logging why. */
struct board *board_new(struct core *c);
void board_free(struct board *b);

/* The snapshot of warehouse (1..ORDER_NAME_MAX bytes) with its first
   `limit` (1..CORE_PEEK_MAX) queued orders, or NULL with r filled. */
json_t *board_json(struct board *b, const char *warehouse, size_t limit,
                   struct core_result *r);

#endif
