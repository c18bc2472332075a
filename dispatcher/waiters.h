/*
 * waiters — pickers blocked in NEXT, one FIFO per warehouse, longest
 * waiting first.
 *
 * A waiter is owned by whoever blocks (a RESP or binary connection, later
 * an HTTP long-poll): it is embedded in the caller's struct, initialised
 * once with its callback, and queued by core_next().  Exactly one of these
 * ends its wait: the core leases it an order and calls done(w, order,
 * ticket); its timeout passes and done(w, NULL, 0) is called; or the owner
 * calls waiters_cancel() (no callback).  Loop thread only.
 */
#ifndef DISPATCHD_WAITERS_H
#define DISPATCHD_WAITERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "order.h"

struct waiter;
struct waitq;

/* o is the leased order (valid during the call) and ticket the store
   ticket to see durable before replying; o NULL: the wait timed out or the
   daemon is stopping. */
typedef void waiter_done_fn(struct waiter *w, struct order *o, uint64_t ticket);

struct waiter {
    waiter_done_fn *done;
    void *ctx; /* the owner's */
    /* What it asked for (set by core_next). */
    char warehouse[ORDER_NAME_MAX + 1];
    char picker[ORDER_NAME_MAX + 1];
    char actor[ORDER_NAME_MAX + 24];
    int64_t lease_ms;
    /* Private to waiters.c. */
    struct waiters *set;
    struct waitq *q; /* NULL when not waiting */
    struct waiter *prev, *next;
    struct event *timer;
};

struct waiters {
    struct event_base *base;
    struct waitq *qs; /* by warehouse (uthash) */
    size_t n;         /* waiting now */
};

void waiters_init(struct waiters *ws, struct event_base *base);
/* Cancels every waiter (no callbacks) and frees the queues. */
void waiters_free(struct waiters *ws);

/* Prepare w (once, before its first use).  Returns 0, or -1 out of memory. */
int waiter_init(struct waiter *w, struct event_base *base, waiter_done_fn *done,
                void *ctx);
/* Cancel and release w's resources (the owner frees w itself). */
void waiter_free(struct waiter *w);
static inline bool
waiter_waiting(const struct waiter *w)
{
    return w->q != NULL;
}

/* Queue w (warehouse, picker, actor, lease_ms already set) for block_ms
   (0 = forever).  Returns 0, or -1 out of memory. */
int waiters_add(struct waiters *ws, struct waiter *w, int64_t block_ms);
/* Take w off its queue without calling it back. */
void waiters_cancel(struct waiter *w);
/* The longest waiting picker of warehouse, or NULL. */
struct waiter *waiters_first(struct waiters *ws, const char *warehouse);
/* The names of the warehouses with waiters (malloc'd array of *n; NULL
   when there are none or out of memory with *n > 0). */
char (*waiters_warehouses(struct waiters *ws, size_t *n))[ORDER_NAME_MAX + 1];
/* End every wait with done(w, NULL, 0). */
void waiters_wake_all(struct waiters *ws);

#endif
