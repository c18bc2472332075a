/*
 * Blocked pickers: a FIFO per warehouse (uthash by name), each waiter with
 * its own timeout timer.  A queue is freed when its last waiter leaves.
 */
#include "waiters.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "log.h"

struct waitq {
    char warehouse[ORDER_NAME_MAX + 1];
    struct waiter *head, *tail;
    UT_hash_handle hh;
};

void
waiters_init(struct waiters *ws, struct event_base *base)
{
    memset(ws, 0, sizeof *ws);
    ws->base = base;
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    (void)fd;
    (void)what;
    waiters_cancel(w);
    w->done(w, NULL, 0);
}

int
waiter_init(struct waiter *w, struct event_base *base, waiter_done_fn *done,
            void *ctx)
{
    memset(w, 0, sizeof *w);
    w->done = done;
    w->ctx = ctx;
    w->timer = evtimer_new(base, on_timeout, w);
    return w->timer ? 0 : -1;
}

void
waiter_free(struct waiter *w)
{
    waiters_cancel(w);
    if (w->timer)
        event_free(w->timer);
    w->timer = NULL;
}

int
waiters_add(struct waiters *ws, struct waiter *w, int64_t block_ms)
{
    struct waitq *q;
    size_t len = strlen(w->warehouse);

    HASH_FIND(hh, ws->qs, w->warehouse, len, q);
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            return -1;
        memcpy(q->warehouse, w->warehouse, len + 1);
        HASH_ADD(hh, ws->qs, warehouse[0], len, q);
    }
    w->set = ws;
    w->q = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    ws->n++;
    if (block_ms > 0) {
        struct timeval tv = {.tv_sec = block_ms / 1000,
                             .tv_usec = (block_ms % 1000) * 1000};
        /* libevent counts a timeout from the time it cached when the
           loop turn began; after a long turn the wait would end early
           (test_e2e_leases saw BLOCK 400 answer after 398 ms).  Count
           it from now. */
        if (event_base_update_cache_time(event_get_base(w->timer)))
            log_fatal("libevent: cannot read the clock for a NEXT timeout");
        if (evtimer_add(w->timer, &tv))
            log_fatal("libevent: cannot arm a NEXT timeout");
    }
    return 0;
}

void
waiters_cancel(struct waiter *w)
{
    struct waitq *q = w->q;

    if (!q)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->q = NULL;
    w->prev = w->next = NULL;
    w->set->n--;
    if (w->timer)
        evtimer_del(w->timer);
    if (!q->head) {
        HASH_DEL(w->set->qs, q);
        free(q);
    }
}

struct waiter *
waiters_first(struct waiters *ws, const char *warehouse)
{
    struct waitq *q;
    HASH_FIND(hh, ws->qs, warehouse, strlen(warehouse), q);
    return q ? q->head : NULL;
}

char (*waiters_warehouses(struct waiters *ws, size_t *n))[ORDER_NAME_MAX + 1]
{
    size_t k = HASH_COUNT(ws->qs), i = 0;
    *n = k;
    if (!k)
        return NULL;
    char(*names)[ORDER_NAME_MAX + 1] = malloc(k * sizeof *names);
    if (!names)
        return NULL;
    for (struct waitq *q = ws->qs; q; q = q->hh.next)
        memcpy(names[i++], q->warehouse, sizeof names[0]);
    return names;
}

void
waiters_wake_all(struct waiters *ws)
{
    while (ws->qs) {
        struct waiter *w = ws->qs->head;
        waiters_cancel(w);
        w->done(w, NULL, 0);
    }
}

void
waiters_free(struct waiters *ws)
{
    while (ws->qs)
        waiters_cancel(ws->qs->head);
}
