/*
 * events — the live event stream (SUBSCRIBE events): queue jumps, deadline
 * risks, escalations, expired leases, unleased outbound confirmations.
 *
 * Each event is one JSON object with a sequence number and a type.  An
 * event that reports a change is published only once that change is
 * durable, so a subscriber never hears of something a crash can undo.
 * Building an event costs nothing when nobody subscribes.
 */
#ifndef DISPATCHD_EVENTS_H
#define DISPATCHD_EVENTS_H

#include <stdint.h>

#include <event2/buffer.h>

struct server;
struct conn;
struct order;
struct pickq_jump;

/* Start an event of `type`; NULL when there are no subscribers (skip it). */
struct evbuffer *event_begin(struct server *srv, const char *type);
void event_str(struct evbuffer *e, const char *key, const char *val);
void event_int(struct evbuffer *e, const char *key, long long v);
/* Common order fields: order, customer, warehouse, class, deadline. */
void event_order(struct evbuffer *e, const struct order *o);
/* Finish e (which it frees) and publish it once `ticket` is durable. */
void event_end(struct server *srv, struct evbuffer *e, uint64_t ticket);

/* The jump event, and one at_risk event per displaced order at risk. */
void event_jump(struct server *srv, const struct pickq_jump *j,
                uint64_t ticket);

/* Send every pending event whose ticket is durable. */
void events_flush(struct server *srv, uint64_t durable);

void events_subscribe(struct server *srv, struct conn *c);
void events_unsubscribe(struct server *srv, struct conn *c);
void events_free(struct server *srv);

/* Append s as a JSON string literal (quoted, escaped). */
void json_string(struct evbuffer *b, const char *s, size_t len);

#endif
