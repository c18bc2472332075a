/*
 * core — every order operation of dispatchd, knowing no protocol.
 *
 * The rule of every change lives here and only here: ask the pick queue to
 * change, record the change (the order's record and an audit entry, one
 * store ticket), publish the events it caused once that ticket is durable,
 * and hand newly queued orders to blocked pickers.  RESP, the binary
 * protocol and HTTP are front ends: each turns its wire format into one
 * core call and the result back into its wire format.  The core is the
 * only caller of pickq_* and store_* in dispatcher/.
 *
 * A call fills a `struct core_result`: a code (a stable word for errors,
 * core_code_word), a message naming the rule and the value, the order the
 * call is about, and the store ticket the caller must see durable
 * (core_durable) before it acknowledges anything.  Refused changes change
 * nothing and have ticket 0.  While storage fails, or its queue is full,
 * every change is refused (READONLY, BUSY); reads keep working.
 *
 * Loop thread only.  Order pointers in a result stay valid until control
 * returns to the event loop.
 */
#ifndef DISPATCHD_CORE_H
#define DISPATCHD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "events.h"
#include "memory.h"
#include "metrics.h"
#include "pickq.h"
#include "store.h"
#include "waiters.h"

#define CORE_RAW_MAX 65536 /* bytes of a raw message kept in the audit */
#define CORE_NOTE_MAX 512  /* bytes of a reason kept in the audit */
#define CORE_PEEK_MAX 1000 /* orders one peek may return */
#define CORE_DEFAULT_WAREHOUSE "main"

enum core_code {
    CORE_OK,
    CORE_ALREADY, /* idempotent repeat: nothing changed, still a success */
    CORE_NIL,     /* nothing to return (NEXT on an empty queue, timeout) */
    CORE_BLOCKED, /* NEXT is waiting: the waiter's callback will answer */
    CORE_NOTFOUND,
    CORE_BADSTATE,
    CORE_BADARG,
    CORE_EXISTS,
    CORE_LEASE,
    CORE_TOOBIG,
    CORE_BUSY,     /* the store's queue is full: try again shortly */
    CORE_READONLY, /* storage is failing: writes refused, reads work */
    CORE_NOPERM,
    CORE_ERR, /* out of memory, I/O: msg says what */
    CORE_CODE_COUNT
};

/* "OK", "ALREADY", "NIL", "BLOCKED", "NOTFOUND", "BADSTATE", ... */
const char *core_code_word(int code);
/* True for the codes that are errors (NOTFOUND and after). */
static inline bool
core_code_is_error(int code)
{
    return code >= CORE_NOTFOUND;
}

struct core_result {
    int code;            /* enum core_code */
    char msg[512];       /* for errors: "order X is shipped, cannot approve" */
    struct order *order; /* the order concerned (GET, NEXT, changes) */
    uint64_t ticket;     /* durable before acknowledging; 0 = nothing to wait */
    int64_t value;       /* TOUCH: the new expiry (ms) */
};

struct core_stats {
    struct pickq_stats q;
    struct store_stats st;
    size_t blocked;            /* pickers waiting in NEXT */
    size_t clients;            /* connections open (core->clients) */
    uint64_t busy;             /* changes refused: store queue full */
    uint64_t readonly;         /* changes refused: storage failing */
    uint64_t events;           /* events published */
    uint64_t notify_delivered; /* notifier: events delivered to targets */
    uint64_t notify_retries;   /* notifier: failed attempts retried */
    uint64_t notify_failures;  /* notifier: events that used every attempt */
    int64_t uptime_ms;
    struct memory_usage mem;  /* core_stats_all only */
    struct store_memory smem; /* core_stats_all only */
    bool storage_ok;
    char storage_reason[200];
};

struct core_config {
    struct pickq_config queue;
    int durability; /* enum store_durability */
    int batch_ms;
    bool inline_commit;         /* the loop writes the store's groups */
    size_t store_queue_max;     /* records waiting before changes are BUSY */
    int64_t retention_ms;       /* finished orders kept this long */
    int64_t event_retention_ms; /* logged events kept this long... */
    uint64_t event_retention_count; /* ...and at most this many */
    char checkpoint_dir[400];       /* CHECKPOINT writes only below this */
};

struct core {
    struct core_config cfg;
    struct event_base *base;
    struct pickq *q;
    struct store *store;
    struct waiters waiters;
    struct events events;
    struct event *wake_ev;  /* made active by the persistence thread */
    struct event *timer_ev; /* pickq_next_timer() */
    int64_t timer_at;       /* when timer_ev fires, INT64_MAX if not */
    struct event *retention_ev;
    int64_t started; /* ms */
    bool stopping;   /* NEXT no longer blocks */
    uint64_t n_busy, n_readonly;
    size_t clients; /* kept by the front ends, for stats */
    uint64_t notify_delivered, notify_retries, notify_failures; /* notify */
    bool serve_pending;     /* pickers wait for storage to come back */
    bool storage_failing;   /* as last reported by a `storage` event */
    struct histo h_command; /* request to reply (front ends observe) */
    struct histo h_durable; /* acknowledgement's wait for durability */
    struct histo h_queue;   /* push to lease */
    /* Called on the loop thread each time the durable ticket advances. */
    void (*on_durable)(void *arg, uint64_t durable);
    void *on_durable_arg;
    /* Called on the loop thread after each recorded change of an order
       (action: enum order_action; from: its state before), before it is
       durable: for views that follow every change (the board), not for
       acknowledgements.  May be NULL. */
    void (*on_change)(void *arg, const struct order *o, int action, int from);
    void *on_change_arg;
};

/* Open the store, recover every order, arm the timers.  Returns 0, or -1
   after logging why.  c must be zeroed. */
int core_open(struct core *c, struct event_base *base,
              const struct core_config *cfg, const char *data_dir);
/* Write what is queued, sync, free everything.  Safe on a failed open. */
void core_close(struct core *c);

int64_t core_now(void);                      /* epoch ms */
uint64_t core_durable(const struct core *c); /* highest durable ticket */

/* ---- changes: each takes an actor (who, for the audit) and the raw
   message to keep in the audit trail (raw may be NULL) ---------------- */

/* Push a filled draft (order_new + setters; state STATE_NEW, or
   STATE_QUEUED for "pushed approved").  The core takes o in every case.
   CORE_ALREADY for the same push again, CORE_EXISTS for different
   content under the same id. */
void core_push(struct core *c, const char *actor, struct order *o,
               const char *raw, size_t raw_len, struct core_result *r);
void core_approve(struct core *c, const char *actor, const char *id,
                  size_t idlen, const char *raw, size_t raw_len,
                  struct core_result *r);
/* HOLD and CANCEL, with an optional reason (kept as the audit note). */
void core_hold(struct core *c, const char *actor, const char *id, size_t idlen,
               const char *reason, size_t reason_len, const char *raw,
               size_t raw_len, struct core_result *r);
void core_cancel(struct core *c, const char *actor, const char *id,
                 size_t idlen, const char *reason, size_t reason_len,
                 const char *raw, size_t raw_len, struct core_result *r);
/* New class, and new deadline unless deadline is 0. */
void core_reprio(struct core *c, const char *actor, const char *id,
                 size_t idlen, int cls, int64_t deadline, const char *raw,
                 size_t raw_len, struct core_result *r);

struct core_next_args {
    const char *warehouse; /* 1..ORDER_NAME_MAX bytes, NUL-terminated */
    const char *picker;    /* 1..ORDER_NAME_MAX bytes, NUL-terminated */
    int64_t lease_ms;      /* 0 = the default lease */
    int64_t block_ms;      /* < 0: do not wait; 0: wait forever */
};
/* Lease the first queued order.  Nothing to pick: CORE_NIL, or, when
   block_ms >= 0, CORE_BLOCKED with w queued (w->done is called later,
   exactly once, unless waiters_cancel(w) comes first).  w may be NULL
   when block_ms < 0. */
void core_next(struct core *c, const char *actor,
               const struct core_next_args *a, struct waiter *w,
               struct core_result *r);
/* Extend a lease; r->value is the new expiry.  Stale lease: CORE_LEASE. */
void core_touch(struct core *c, const char *actor, const char *id, size_t idlen,
                uint64_t lease, int64_t lease_ms, const char *raw,
                size_t raw_len, struct core_result *r);
/* Give a leased order back to its place. */
void core_release(struct core *c, const char *actor, const char *id,
                  size_t idlen, uint64_t lease, const char *raw, size_t raw_len,
                  struct core_result *r);

/* The picker says the order is picked (at the packing station): no
   expiry can undo that, and it waits for the WMS's confirmation.
   CORE_ALREADY for a repeat under the same lease. */
void core_picked(struct core *c, const char *actor, const char *id,
                 size_t idlen, uint64_t lease, const char *raw, size_t raw_len,
                 struct core_result *r);

struct core_confirm_args {
    const char *operator_; /* who; required for outbound; NUL-terminated */
    int64_t at;            /* when it happened (ms); 0 = now */
    const char *photo;     /* photo reference, or NULL */
    size_t photo_len;
};
/* The WMS says the order left (the WMS is the truth).  CORE_ALREADY for a
   repeat, recorded too. */
void core_outbound(struct core *c, const char *actor, const char *id,
                   size_t idlen, const struct core_confirm_args *a,
                   const char *raw, size_t raw_len, struct core_result *r);
void core_deliver(struct core *c, const char *actor, const char *id,
                  size_t idlen, int64_t at, const char *raw, size_t raw_len,
                  struct core_result *r);

/* ---- reads ---------------------------------------------------------- */

void core_get(struct core *c, const char *id, size_t idlen,
              struct core_result *r);
/* The first k (1..CORE_PEEK_MAX) queued orders of warehouse in pick order
   into out.  Returns how many; (size_t)-1 with r filled on an error. */
size_t core_peek(struct core *c, const char *warehouse, size_t k,
                 struct order **out, struct core_result *r);
/* Call fn for each audit entry of the order, oldest first.  r->code is
   CORE_OK, CORE_NOTFOUND, or CORE_ERR when the store cannot be read. */
void core_audit(struct core *c, const char *id, size_t idlen,
                int (*fn)(void *ctx, uint32_t seq, const struct audit_entry *a),
                void *ctx, struct core_result *r);
/* Call fn for at most n (1..CORE_EVENTS_MAX) logged events with a
   sequence > after, in order.  CORE_OK, or CORE_ERR when the store cannot
   be read. */
#define CORE_EVENTS_MAX 1000
void core_events(struct core *c, uint64_t after, size_t n,
                 int (*fn)(void *ctx, uint64_t seq, const char *json,
                           size_t len),
                 void *ctx, struct core_result *r);
/* Called by the loop after each turn, before it waits for events: with
   loop group commit, writes (and syncs) what the turn changed as one
   group and sends what became durable. */
void core_before_sleep(struct core *c);

/* A small durable setting (store_meta_put/get): put returns the ticket,
   0 while storage fails; get returns 0, 1 when absent, -1 (logged). */
uint64_t core_meta_put(struct core *c, const char *key, const char *val,
                       size_t len);
int core_meta_get(struct core *c, const char *key, char *buf, size_t cap,
                  size_t *len);

/* The type of an event's JSON ("jump", ...) into buf; "" when unknown. */
void core_event_type(const char *json, size_t len, char *buf, size_t cap);

/* Counters for one warehouse, or all when warehouse is NULL. */
void core_stats(struct core *c, const char *warehouse, struct core_stats *st);
/* core_stats and the memory figures (a read of /proc and of RocksDB's
   properties): for the reports that show them, STATS, INFO and
   /metrics. */
void core_stats_all(struct core *c, const char *warehouse,
                    struct core_stats *st);
/* Rank and ETA of a queued order: false when it is not queued. */
bool core_position(struct core *c, const struct order *o, size_t *rank,
                   int64_t *eta_ms);

/* An online consistent copy named `name` (letters, digits, '-', '_', '.',
   no "..") below cfg.checkpoint_dir; the full path in r->msg. */
void core_checkpoint(struct core *c, const char *name, size_t name_len,
                     struct core_result *r);

/* True while the store's hand-off queue is full: changes would be
   refused BUSY.  Front ends that can stop reading do so until it clears
   (the durable hook is called when the writer takes a group). */
bool core_store_busy(struct core *c);

/* Call fn for every warehouse that has orders. */
void core_each_warehouse(struct core *c,
                         void (*fn)(void *ctx, const char *warehouse),
                         void *ctx);

/* Call fn for every order of warehouse (NULL: all) a picker holds
   (picking, or picked and waiting for the WMS), in no set order. */
void core_each_picking(struct core *c, const char *warehouse,
                       void (*fn)(void *ctx, const struct order *o), void *ctx);
/* Call fn for every finished order still kept, oldest first. */
void core_each_finished(struct core *c,
                        void (*fn)(void *ctx, const struct order *o),
                        void *ctx);

/* Stop blocking NEXT: blocked pickers get CORE_NIL now and later ones at
   once (shutdown). */
void core_stop_waiting(struct core *c);

#endif
