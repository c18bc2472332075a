/*
 * events — what happened that people must hear of: queue jumps, deadline
 * risks, escalations, expired leases, unleased outbound confirmations.
 *
 * Each event is one JSON object with a sequence number, given when it is
 * made, and a type.  It is logged in the store in the same write as the
 * change it reports (the caller holds the store's group around both), and
 * published to the sinks once that change is durable, so a listener never
 * hears of something a crash can undo.  Listeners are sinks with a
 * callback (RESP pub/sub, a blocked EVENTS FROM, SSE).
 *
 * Every JSON text made here is valid UTF-8: bytes that are not valid UTF-8
 * in an id, customer or attribute become U+FFFD.  Loop thread only.
 */
#ifndef DISPATCHD_EVENTS_H
#define DISPATCHD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

struct order;
struct pickq_jump;
struct store;

struct event_sink {
    /* json is the whole object, {"seq":N,"type":...}, len bytes. */
    void (*emit)(struct event_sink *s, uint64_t seq, const char *type,
                 const char *json, size_t len);
    void *ctx;
    bool listening;
    struct event_sink *prev, *next;
};

struct pending_event;

struct events {
    struct event_sink *sinks;
    struct pending_event *head, *tail; /* waiting for durability */
    struct store *store;               /* the log; NULL: not logged */
    uint64_t seq;                      /* last sequence number given */
    uint64_t logged;                   /* events made since start */
    uint64_t published;
};

void events_init(struct events *ev);
void events_free(struct events *ev);

void events_listen(struct events *ev, struct event_sink *s);
void events_unlisten(struct events *ev, struct event_sink *s);

/* Start an event of `type` at time now; NULL when out of memory (skip). */
struct evbuffer *event_begin(struct events *ev, const char *type, int64_t now);
void event_str(struct evbuffer *e, const char *key, const char *val);
void event_int(struct evbuffer *e, const char *key, long long v);
/* Common order fields: order, customer, warehouse, class, deadline. */
void event_order(struct evbuffer *e, const struct order *o);
/* Finish e (freed here): numbered, logged (store_event) and published
   once `ticket` <= durable.  A ticket of 0 means the change was not
   recorded: the event is dropped and gets no number. */
void event_end(struct events *ev, struct evbuffer *e, uint64_t ticket,
               uint64_t durable);
/* The jump event, and one at_risk event per displaced order at risk. */
void event_jump(struct events *ev, const struct pickq_jump *j, uint64_t ticket,
                uint64_t durable, int64_t now);

/* Publish every pending event whose ticket is durable. */
void events_flush(struct events *ev, uint64_t durable);

/* Append s as a JSON string literal: quoted, escaped, invalid UTF-8
   replaced by U+FFFD. */
void json_quote(struct evbuffer *b, const char *s, size_t len);

#endif
