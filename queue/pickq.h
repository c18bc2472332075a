/*
 * pickq — the pick queues of every warehouse, the id index over all orders,
 * leases, escalation, positions and queue-jump reports.
 *
 * Pairing heaps per warehouse order queued orders by (effective class,
 * deadline, arrival), split by what time will do to them, so that each
 * heap's first order is also its next to escalate.  Three heaps of times
 * hold the warehouses by their next escalation, the picking orders by the
 * time their lease expires and the picked orders by the time their
 * outbound is overdue, so pickq_next_timer() is O(1) and the caller arms
 * one timer.
 *
 * The queue owns every order it was given.  Single-threaded; no I/O and no
 * clock: `now` is always a parameter (epoch ms).  Pointers to orders stay
 * valid until the order is forgotten (pickq_forget_finished) or q is freed.
 */
#ifndef DISPATCHD_PICKQ_H
#define DISPATCHD_PICKQ_H

#include <stddef.h>
#include <stdint.h>

#include "order.h"

enum pickq_err {
    PICKQ_OK = 0,
    PICKQ_NOTFOUND, /* no such order / warehouse */
    PICKQ_BADSTATE, /* the order's state does not allow the action */
    PICKQ_EXISTS,   /* push of an existing id with different content */
    PICKQ_SAME,     /* idempotent repeat: nothing changed */
    PICKQ_LEASE,    /* lease id does not match the order's current lease */
    PICKQ_BADARG,   /* intake rule broken; err says which */
    PICKQ_NOMEM,
    PICKQ_EMPTY, /* next: nothing to pick in that warehouse */
};

struct pickq_config {
    int64_t lease_ms;     /* default lease: 300000 */
    int64_t lease_max_ms; /* longest lease granted: 3600000 */
    /* Deadline when a push has none, ms after now; 0 = the class requires
       one.  Defaults: asn 0, rush4h 4 h, rush24h 24 h, normal 72 h. */
    int64_t deadline_default[CLASS_COUNT];
    /* An order of class c whose deadline is within escalate_window[c] of
       now is promoted to c - 1 (earliest deadline first near the
       deadline), once: at most one class above its own, and never into
       the asn class, so an asn order is never passed by an escalated one
       (rush4h and asn never escalate; [CLASS_ASN] and [CLASS_RUSH4H] are
       unused).  The promotion ends when the deadline passes (the order
       goes back to its own class; cb->escalated reports it, with from
       the class above), and an order past its deadline is not promoted.
       0 disables.  Defaults: rush4h 30 min (unused),
       rush24h 4 h, normal 24 h. */
    int64_t escalate_window[CLASS_COUNT];
    int64_t pick_ms;  /* mean pick duration before any is measured: 120000 */
    size_t jump_scan; /* displaced orders a jump report examines: 256 */
    /* The window a deadline the caller gives (push, reprio) must fall in,
       bounds included: from deadline_min_ms to now + deadline_ahead_max_ms
       (0 = no upper bound).  It catches typos such as a year 9999 before
       they sort an order behind everything for ever.  Class defaults are
       not checked, and recovery (pickq_restore) does not apply it, so old
       data always loads.  Defaults: 946684800000 (2000-01-01T00:00:00Z)
       and 1826 days (5 years). */
    int64_t deadline_min_ms;
    int64_t deadline_ahead_max_ms;
    /* A picked order with no outbound confirmation confirm_timeout_ms after
       it was picked is reported once by pickq_tick (cb->unconfirmed); it
       stays picked.  0 disables.  Default 1800000 (30 minutes). */
    int64_t confirm_timeout_ms;
};

#define PICKQ_AT_RISK_MAX 16

/* The record of a queue jump: an order other than normal entered the queue
   (push approved, approve, or re-prioritised up) ahead of others. */
struct pickq_jump {
    const struct order *order; /* NULL: no jump happened */
    size_t position;           /* orders ahead of it (0 = next to pick) */
    size_t displaced;          /* orders that were in the queue before and
                                  now wait behind it */
    int64_t delay_ms;          /* extra wait for each displaced order:
                                  mean pick duration / active pickers */
    size_t at_risk;            /* displaced orders examined (jump_scan) whose
                                  estimated pick time now passes their
                                  deadline but did not before */
    size_t at_risk_listed;     /* how many are in at_risk_orders */
    const struct order *at_risk_orders[PICKQ_AT_RISK_MAX];
};

struct pickq_stats {
    size_t by_state[STATE_COUNT];
    size_t queued_by_class[CLASS_COUNT]; /* by effective class */
    uint64_t pushes, approvals, picks, releases, outbounds, outbounds_unleased,
        deliveries, cancels, expiries, escalations, jumps;
    uint64_t picked;              /* pickq_picked: picks reported done */
    uint64_t unconfirmed;         /* confirm timeouts fired */
    uint64_t outbounds_anomalous; /* outbounds with info.anomaly set (an
                                     implied one of a delivery too) */
    uint64_t revocations; /* leases revoked by another picker's outbound */
    int64_t mean_pick_ms; /* measured (EWMA), or the configured default */
    size_t warehouses;
};

/* Called by pickq_tick for each change it made, after making it.  Any
   callback may be NULL. */
struct pickq_tick_cb {
    void (*expired)(void *ctx, struct order *o, uint64_t old_lease);
    void (*escalated)(void *ctx, struct order *o, int from_cls);
    /* A picked order's confirm timeout fired: o is still picked, and
       o->unconfirmed_fired is now true (store the order so a restart does
       not fire it again). */
    void (*unconfirmed)(void *ctx, struct order *o);
    void *ctx;
};

/* What an outbound confirmation met (pickq_outbound, and the implied
   outbound of pickq_deliver), so the caller can write the audit entry and
   report an anomaly.  Filled on every return that has an order: on
   PICKQ_SAME too (from = shipped or delivered, nothing odd). */
struct pickq_outbound_info {
    int from;               /* the order's state before */
    bool implied;           /* pickq_deliver only: the order was not shipped, so
                               the delivery recorded the outbound first (two
                               audit entries: outbound from `from`, then
                               deliver from shipped) */
    bool anomaly;           /* the WMS shipped what the queue did not expect */
    const char *why;        /* short English reason when anomaly ("shipped
                               while on hold"), else ""; static storage */
    bool revoked;           /* picking, and the operator is another picker
                               than the lease holder: the lease was revoked */
    uint64_t revoked_lease; /* when revoked */
    char revoked_picker[ORDER_NAME_MAX + 1]; /* its holder, when revoked */
};

void pickq_config_default(struct pickq_config *cfg);
struct pickq *pickq_new(const struct pickq_config *cfg); /* NULL: no memory */
void pickq_free(struct pickq *q);                        /* and its orders */

struct order *pickq_get(struct pickq *q, const char *id, size_t len);

/* Push o (state STATE_NEW, or STATE_QUEUED for "pushed approved").  Applies
   the class's default deadline when o->deadline is 0, checks the intake
   rules and, for a deadline o came with, the deadline window (see struct
   pickq_config), stamps created/updated (and seq when queued).  On
   PICKQ_OK q owns o; on any other result the caller keeps it, unchanged.
   PICKQ_SAME: an order with this id and the same content exists (nothing
   changed); PICKQ_EXISTS: with different content.  PICKQ_BADARG: err
   names the rule, or the deadline and the window it is outside of. */
int pickq_push(struct pickq *q, struct order *o, int64_t now,
               struct pickq_jump *jump, char *err, size_t errlen);

/* Transitions on an order of q.  Each returns PICKQ_BADSTATE when the
   state machine forbids it and changes nothing then.  jump, when not NULL,
   is filled (jump->order set) when the change made a queue jump.
   pickq_approve may also return PICKQ_NOMEM (the order's place in the
   position index could not be reserved); nothing changed then. */
int pickq_approve(struct pickq *q, struct order *o, int64_t now,
                  struct pickq_jump *jump);
int pickq_hold(struct pickq *q, struct order *o, int64_t now);
int pickq_cancel(struct pickq *q, struct order *o, int64_t now);
/* New class, and new deadline unless deadline is 0.  The effective class
   is recomputed (escalation applies again from the new class).  The order
   with its new class must pass the intake rules of a push (an asn order
   carries its ASN attributes) and a new deadline must be inside the
   deadline window; otherwise PICKQ_BADARG with the same message push
   gives in err (errlen bytes; err may be NULL), and nothing changed.  On
   PICKQ_BADSTATE err says so too. */
int pickq_reprio(struct pickq *q, struct order *o, int cls, int64_t deadline,
                 int64_t now, struct pickq_jump *jump, char *err,
                 size_t errlen);

/* Lease the first queued order of warehouse to picker for lease_ms
   (0 = default; capped at lease_max_ms).  PICKQ_EMPTY when none. */
int pickq_next(struct pickq *q, const char *warehouse, const char *picker,
               int64_t lease_ms, int64_t now, struct order **out);
/* Extend a lease to now + lease_ms (0 = default).  PICKQ_LEASE if lease is
   not the order's current one (or the order is not picking). */
int pickq_touch(struct pickq *q, struct order *o, uint64_t lease,
                int64_t lease_ms, int64_t now);
/* Give a leased order back: it returns to the queue with its original key
   (its place).  PICKQ_LEASE as for touch. */
int pickq_release(struct pickq *q, struct order *o, uint64_t lease,
                  int64_t now);
/* The lease holder reports the order picked: picking -> picked.  The
   lease timer is removed (no expiry can undo it, NEXT never hands it out;
   TOUCH and RELEASE get PICKQ_LEASE from now on), the pick time is
   measured (now - picked_at: a pick ends here when it is reported) and
   the confirm timer is armed (cfg.confirm_timeout_ms).  PICKQ_SAME when
   already picked under this lease; PICKQ_LEASE when lease is not the
   order's current one or the order is neither picking nor picked. */
int pickq_picked(struct pickq *q, struct order *o, uint64_t lease, int64_t now);
/* WMS outbound confirmation: the order becomes shipped from any state but
   shipped and delivered (PICKQ_SAME: a repeat, nothing changed) -- new,
   held, queued, picking, picked and even cancelled, because the WMS is the
   truth.  Sets outbound_at = at, operator_ (NULL = ""), outbound_leased.
   info (may be NULL) says what was odd:
     new        "shipped before it was approved"
     held       "shipped while on hold"
     queued     "shipped without being picked" (outbounds_unleased)
     cancelled  "shipped after it was cancelled"
     picking    nothing, unless operator_ and the lease holder are both
                named and differ: then the lease is revoked (info.revoked,
                the lease and its picker; "shipped by another picker than
                the lease holder") and the pick time is not measured
     picked     nothing: the lease ended when it was picked, so whoever
                ships it (a packer at the dock) is normal
   PICKQ_BADARG (nothing changed) when operator_ is longer than
   ORDER_NAME_MAX. */
int pickq_outbound(struct pickq *q, struct order *o, const char *operator_,
                   int64_t at, int64_t now, struct pickq_outbound_info *info);
/* shipped -> delivered.  From any other state an outbound may land from
   (see pickq_outbound), the delivery implies the outbound: it is recorded
   first exactly as pickq_outbound(q, o, operator_, at, now) would, info
   says so (implied) and what was odd about it, then the order is
   delivered at `at`.  operator_ is only used for an implied outbound (NULL
   or "" = unknown; no revocation then).  PICKQ_SAME when already
   delivered; PICKQ_BADARG as for pickq_outbound.  info may be NULL. */
int pickq_deliver(struct pickq *q, struct order *o, const char *operator_,
                  int64_t at, int64_t now, struct pickq_outbound_info *info);

/* Earliest time pickq_tick has work to do, or INT64_MAX. */
int64_t pickq_next_timer(struct pickq *q);
/* Expire due leases (back to the queue at their place), escalate due
   orders and report picked orders whose confirm timeout passed.  Returns
   how many changes were made (each is one callback). */
size_t pickq_tick(struct pickq *q, int64_t now, const struct pickq_tick_cb *cb);

/* Rank (orders ahead) and estimated wait until picked (ms from now) of a
   queued order: (rank + 1) * the measured gap between leases while orders
   waited in its warehouse (EWMA, weight 1/8), or, before one is measured,
   (rank + 1) * mean pick / active pickers; times (1 + rho), rho the
   measured rate at which orders go ahead of a waiting order of its
   effective class (entries, promotions and re-prioritisations into a
   higher class, per lease gap; EWMA 1/8 per warehouse and class, sampled
   with the gap), capped at PICKQ_OVERTAKE_CAP_MILLI / 1000.
   PICKQ_BADSTATE when it is not queued. */
#define PICKQ_OVERTAKE_CAP_MILLI 2000
int pickq_position(struct pickq *q, const struct order *o, size_t *rank,
                   int64_t *eta_ms);
/* The first k queued orders of a warehouse in pick order, without leasing.
   Returns how many (0 for an unknown warehouse), or (size_t)-1 when out of
   memory. */
size_t pickq_peek(struct pickq *q, const char *warehouse, size_t k,
                  struct order **out);

/* Counters for one warehouse, or all when warehouse is NULL. */
void pickq_stats(struct pickq *q, const char *warehouse,
                 struct pickq_stats *st);

/* Recovery: hand back an order read from storage, in any state, with its
   seq, lease and counters as stored.  q owns it on PICKQ_OK; PICKQ_EXISTS
   on a duplicate id.  Call pickq_restore_done() once after the last one:
   it builds the heaps (sorted, so the first pop costs O(1)) and moves the
   seq and lease counters past every value seen.  Leases that expired while
   the daemon was down are expired by the next pickq_tick; a picked order
   re-arms its confirm timer unless o->unconfirmed_fired (the next tick
   reports it if its timeout passed meanwhile).  pickq_get may not find a
   restored order before pickq_restore_done. */
int pickq_restore(struct pickq *q, struct order *o);
int pickq_restore_done(struct pickq *q);

/* Forget finished orders (shipped, delivered, cancelled) last updated
   before `before`: each is passed to cb (if not NULL) and then freed.
   Returns how many. */
size_t pickq_forget_finished(struct pickq *q, int64_t before,
                             void (*cb)(void *ctx, struct order *o), void *ctx);

/* Call fn with the name of every warehouse q knows, in no set order.  fn
   must not change q. */
void pickq_each_warehouse(struct pickq *q,
                          void (*fn)(void *ctx, const char *warehouse),
                          void *ctx);

/* Call fn for every order of warehouse (NULL: every warehouse) that is
   picking, or picked with its confirm timer armed (the lease and confirm
   heaps), in no set order.  O(those orders).  fn must not change q. */
void pickq_each_picking(struct pickq *q, const char *warehouse,
                        void (*fn)(void *ctx, const struct order *o),
                        void *ctx);
/* Call fn for every finished order (shipped, delivered, cancelled),
   oldest `updated` first.  fn must not change q. */
void pickq_each_finished(struct pickq *q,
                         void (*fn)(void *ctx, const struct order *o),
                         void *ctx);

#endif
