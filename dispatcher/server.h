/*
 * server — the event loop, connections and the rules that tie the pick
 * queue to the store.
 *
 * One libevent loop thread owns every order, queue, connection and
 * subscriber: no locks on the hot path.  The persistence thread (persist/)
 * only ever wakes the loop through `wake_ev`.
 *
 * A reply may have to wait for durability: every command appends its reply
 * to the connection's `out` buffer and raises `wait_ticket` to the store
 * ticket of any change it made.  When all complete commands of a read are
 * handled, `out` goes to the socket at once if the store is already durable
 * up to that ticket, or else the connection pauses (reads nothing more)
 * until the persistence thread says the ticket is durable.  Replies
 * therefore leave in command order, and an acknowledged change is on disk.
 */
#ifndef DISPATCHD_SERVER_H
#define DISPATCHD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <uthash.h>

#include "config.h"
#include "pickq.h"
#include "resp.h"
#include "store.h"

struct waitq;

struct conn {
    struct server *srv;
    struct bufferevent *bev;
    uint64_t id;                /* CLIENT ID */
    int proto;                  /* 2 or 3 (HELLO) */
    char name[ORDER_NAME_MAX + 1]; /* CLIENT SETNAME; the audit's actor */
    char addr[64];              /* peer address, for logs */

    struct evbuffer *out;       /* replies waiting for wait_ticket */
    struct event *resume_ev;    /* made active to read on after a pause */
    uint64_t wait_ticket;       /* store ticket the replies in out need */
    bool closing;               /* close once out is flushed */
    bool subscribed;            /* SUBSCRIBE events */
    bool in_dwait;              /* on srv->dwait */
    bool in_multi;              /* after a refused MULTI, until EXEC/DISCARD */

    /* A blocked NEXT: on its warehouse's wait queue, FIFO. */
    struct waitq *bq;
    struct conn *bprev, *bnext;
    struct event *block_timer;
    char block_picker[ORDER_NAME_MAX + 1];
    int64_t block_lease_ms;

    struct conn *prev, *next;   /* srv->conns */
    struct conn *dnext;         /* srv->dwait */
    struct conn *snext, *sprev; /* srv->subs */
};

/* Pickers blocked in NEXT on one warehouse, longest waiting first. */
struct waitq {
    char warehouse[ORDER_NAME_MAX + 1];
    struct conn *head, *tail;
    UT_hash_handle hh;
};

/* An event waiting for the change it reports to be durable. */
struct pending_event {
    uint64_t ticket;
    struct pending_event *next;
    size_t len;
    char json[];
};

struct server_counters {
    uint64_t connections;   /* accepted since start */
    uint64_t rejected;      /* refused: max clients */
    uint64_t commands;
    uint64_t protocol_errors;
    uint64_t events;        /* published */
};

struct server {
    struct config cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    struct pickq *q;
    struct store *store;
    struct event *wake_ev;      /* made active by the persistence thread */
    struct event *timer_ev;     /* pickq_next_timer() */
    int64_t timer_at;           /* when timer_ev fires, INT64_MAX if not */
    struct event *retention_ev;
    struct event *sigint_ev, *sigterm_ev;

    struct conn *conns;
    size_t nconns;
    uint64_t next_conn_id;
    struct conn *dwait;         /* paused until a ticket is durable */
    struct waitq *waitqs;       /* by warehouse */
    struct conn *subs;          /* SUBSCRIBE events */
    struct pending_event *ev_head, *ev_tail;
    uint64_t event_seq;

    uint64_t last_ticket;       /* highest ticket handed out */
    int64_t started;            /* ms */
    bool stopping;
    struct server_counters n;
    struct evbuffer *scratch;   /* for building replies whose size is unknown */
    struct resp_req req;        /* parse scratch: the loop parses one at a time */
};

/* Start: open the store, recover, listen.  Returns 0, or -1 after logging
   why.  srv must be zeroed; cfg is copied. */
int server_init(struct server *srv, const struct config *cfg);
/* Run until SIGINT/SIGTERM; then stop accepting, flush, close the store. */
int server_run(struct server *srv);
void server_free(struct server *srv);

int64_t server_now(void); /* epoch ms */

/* --- used by commands.c --- */

/* Dispatch one parsed command of c. */
void command_dispatch(struct conn *c, struct resp_req *req);

/* Record a change made to o (already applied in memory): bump its audit
   counter, hand the record and the audit entry to the store, make c's
   reply wait for it.  c may be NULL (timers).  Returns the ticket, or 0
   when storage refused it (logged). */
uint64_t server_record(struct server *srv, struct conn *c, struct order *o,
                       int action, int from, const char *raw, size_t raw_len,
                       const char *note);
/* Refuse writes while storage fails: true (and a -READONLY reply written
   to c->out) when the store is not accepting writes. */
bool server_readonly(struct server *srv, struct conn *c);

/* Give queued orders of warehouse to blocked pickers, longest waiting
   first, one order each. */
void server_serve_waiters(struct server *srv, const char *warehouse);
/* Block c in NEXT on warehouse for block_ms (0 = forever). */
void server_block(struct server *srv, struct conn *c, const char *warehouse,
                  const char *picker, int64_t lease_ms, int64_t block_ms);
/* Hand the first order of warehouse to c with a lease and append the reply;
   returns false when there is nothing to pick (nothing appended). */
bool server_lease_to(struct server *srv, struct conn *c, const char *warehouse,
                     const char *picker, int64_t lease_ms);

/* A connection is paused, reading nothing more, while its replies wait
   for durability or while it is blocked in NEXT. */
static inline bool
conn_paused(const struct conn *c)
{
    return c->in_dwait || c->bq != NULL;
}
/* Send what c->out holds if it is durable, or wait for it (pausing c). */
void conn_settle(struct conn *c);

/* Re-arm the queue timer after a change. */
void server_arm_timer(struct server *srv);

/* Append the order as a map (GET's reply). */
void server_reply_order(struct server *srv, struct conn *c,
                        const struct order *o);

#endif
