/*
 * pickq.c — the pick queues: pairing heaps per warehouse, the lease and
 * confirm heaps, the id index, leases, escalation, positions and queue
 * jumps.
 *
 * Where an order is, by state (each heap holds the order's one node,
 * qnode):
 *
 *   new, held         in the id index only
 *   queued            + one of its warehouse's pick heaps (below), keyed
 *                     order_key(eff_cls, deadline) with its arrival seq
 *                     as tie-break; + its warehouse's position index,
 *                     same order
 *   picking           + the lease heap at lease_expires
 *   picked            + the confirm heap at its confirm deadline
 *                     (pick_done_at + confirm_timeout_ms), unless that is
 *                     disabled or has fired (unconfirmed_fired)
 *   shipped, delivered, cancelled
 *                     + the finished list (oldest `updated` first), until
 *                     pickq_forget_finished frees it
 *
 * A warehouse's pick heaps.  Its queued orders are split by what time
 * will do to them: a heap per class that may escalate, of the orders
 * waiting at their own class (due at deadline - window: the promotion);
 * a heap per class promoted into, of the promoted orders (due at their
 * deadline: the promotion ends); and one heap of the rest, which time
 * leaves alone.  Every heap is in pick order, and within one class the
 * pick order is the deadline order, so a heap's root is also the first
 * of its orders to fall due.  The next pick is the first of the roots,
 * and a warehouse is in the timer heap of warehouses at the earliest due
 * of its roots: no order needs a timer node of its own while it waits.
 *
 * Which heap an order is in follows from its state, class, flags and the
 * configuration (and, queued, from o->qheap), so no "armed" flag is
 * kept: enter_queue, leave_queue, requeue, lease_back, lease_done and
 * leave_active are the only places that move an order between heaps.
 *
 * The WMS is the truth.  An outbound lands from every state but shipped
 * and delivered -- even new, held or cancelled -- and tells the caller
 * what was odd about it (struct pickq_outbound_info); a delivery of an
 * unshipped order records that outbound first.  Nothing the picker side
 * says can undo a confirmation: a revoked lease is just a stale one.
 *
 * Positions.  The pairing heap cannot tell an order's rank cheaply: its
 * children are unordered, so counting the orders ahead visits every child
 * of every one of them (measured: 2.5 ms at 10^5 queued, 109 ms at 10^6).
 * So each warehouse also keeps (key, seq, order) of its queued orders in
 * an order-statistic B+tree (ostree.h): wide nodes with the keys inline
 * and per-child counts, so a rank, an insert or a remove reads 3 or 4
 * nodes at 10^6 orders and never touches another order (a treap whose
 * nodes lived in the orders cost a cache miss per level: push-approved
 * went from 0.4 to 1.9 us at 10^5 queued).  A cursor gives the top k (the
 * board) and the orders right behind a jumping order; their deadlines are
 * read back from the keys, so a jump report does not touch the orders it
 * examines either.  The heap stays the source of the pick order, as the
 * card asks.
 *
 * The tree's nodes come from its own pool, reserved for every order of the
 * warehouse that is queued or picking (a picking order comes back by
 * release or expiry, which cannot fail).  So the only entries that may
 * need memory are those from outside, push approved and approve, and they
 * reserve before changing anything: PICKQ_NOMEM then means nothing
 * happened.  Leaving the queue and re-keying never allocate.
 *
 * Keys.  An order entering the queue from new or held (push approved,
 * approve) or re-prioritised gets its effective class computed at `now`:
 * one class up, never into asn, while its deadline is within its class's
 * window and not yet passed (see escalate_from).  An order coming back
 * from a lease (release, expiry) keeps its key and seq, its place; if an
 * escalation (or the end of one) fell due while it was being picked, its
 * timer is already in the past and the next pickq_tick does it, with a
 * callback like any other escalation.
 *
 * Queue jumps.  An order whose effective class is not normal and that
 * enters the queue, or moves to an earlier key by reprio, is reported: its
 * rank, how many queued orders it passed (all behind it for a new entry;
 * those between its new and old place for a reprio), the delay it causes
 * each of them (mean pick / active pickers), and which of the first
 * cfg.jump_scan of those orders now miss their deadline: two ranks and
 * jump_scan successor steps in the position index.
 *
 * Allocation.  Orders are allocated by the caller; warehouses when first
 * named; the id index grows its buckets now and then (uthash, non-fatal
 * OOM mode: a failed add is undone and reported); position-index nodes
 * are reserved on queue entry from new or held (above); recovery sorts in
 * a temporary array.  No other operation allocates.
 *
 * Length: this file passes 800 lines on purpose.  Where an order lives is
 * an invariant kept by a handful of static helpers (enter_queue,
 * leave_queue, requeue, lease_back, the finished list) that every
 * operation and recovery share; splitting the file would turn them into a
 * private interface that others could call out of order.
 */
#define HASH_NONFATAL_OOM 1 /* a failed add leaves hh.tbl == NULL */
/* Short chains: a lookup is a cache miss per entry walked, and ids are
   looked up on every command (uthash expands at 10 by default). */
#define HASH_BKT_CAPACITY_THRESH 3U

#include "pickq.h"

#include "idmap.h"
#include "name.h"
#include "ostree.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#define NO_TIME INT64_MAX
#define MS_PER_DAY INT64_C(86400000)

/* A warehouse's pick heaps (o->qheap): for each class c that may
   escalate (those after rush4h, see may_escalate), QH_WAIT + c -
   QH_FIRST holds its orders waiting at class c, and QH_UP + c - QH_FIRST
   those promoted from c into c - 1; QH_REST holds the others (asn,
   rush4h, a class whose window is off, and "parked" orders, whose
   promotion time came after their deadline).  Five heaps of 536 bytes:
   a warehouse costs about 3 KiB. */
#define QH_FIRST (CLASS_RUSH4H + 1)
#define QH_CLASSES (CLASS_COUNT - QH_FIRST)
enum { QH_WAIT = 0, QH_UP = QH_CLASSES, QH_REST = 2 * QH_CLASSES, QHEAPS };

struct pickq_wh {
    UT_hash_handle hh; /* q->whs, keyed by name */
    char name[ORDER_NAME_MAX + 1];
    size_t idx;               /* creation order (restore sorts by it) */
    struct pheap qh[QHEAPS];  /* its queued orders */
    struct ostree rank;       /* the same orders in the position index */
    struct pheap_node tnode;  /* in q->whtimers at its next due time */
    bool timed;               /* tnode is in q->whtimers */
    size_t restoring[QHEAPS]; /* pickq_restore_done's count per heap */
    struct pickq_stats st;    /* its counters; st.warehouses unused */
    bool measured;            /* st.mean_pick_ms is a measurement */
    /* The measured pick rate: the mean gap between leases while orders
       were waiting (EWMA), so it counts the pickers really working
       (shifts, breaks) rather than the leases open at one moment. */
    int64_t lease_gap_ms;
    bool gap_measured;
    int64_t last_lease_at; /* when the last lease was handed out */
    bool backlogged;       /* orders were still waiting after it */
    /* Overtaking: orders that entered the queue (or were promoted) ahead
       of every waiting order of class c since the last lease, and their
       mean per lease gap in thousandths (EWMA, sampled with the gap). */
    uint32_t overtakes[CLASS_COUNT];
    int64_t rho_milli[CLASS_COUNT];
    bool rho_measured[CLASS_COUNT];
};

struct pickq {
    struct pickq_config cfg;
    struct idmap ids;     /* orders by id */
    struct pickq_wh *whs; /* warehouses (uthash, hh) */
    size_t nwh;
    struct pheap leases;   /* picking orders by lease_expires */
    struct pheap confirms; /* picked orders by confirm deadline */
    struct pheap whtimers; /* warehouses by their next escalation */
    uint64_t seq;          /* last arrival seq given */
    uint64_t lease;        /* last lease id given */
    int64_t mean_pick_ms;  /* over all warehouses */
    bool measured;
    struct order *fin_head; /* finished orders, oldest first */
    struct order *fin_tail;
    struct order **restored; /* handed to pickq_restore, not yet */
    size_t nrestored;        /* placed by pickq_restore_done */
    size_t restored_cap;
    uint64_t restored_seq; /* largest seq and lease restored */
    uint64_t restored_lease;
    bool restored_in_order; /* ids restored so far strictly increase */
    size_t nindexed;        /* restored[0..nindexed) are in ids */
};

/* ---- small helpers ---------------------------------------------------- */

static int64_t
sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* n * d for d >= 0, saturating. */
static int64_t
sat_mul(size_t n, int64_t d)
{
    int64_t r;
    if (d <= 0)
        return 0;
    if (n > (size_t)INT64_MAX || __builtin_mul_overflow((int64_t)n, d, &r))
        return INT64_MAX;
    return r;
}

static uint64_t
time_key(int64_t t)
{
    return t < 0 ? 0 : (uint64_t)t;
}

static struct order *
order_of_q(struct pheap_node *n)
{
    return pheap_container_of(n, struct order, qnode);
}

static struct pickq_wh *
wh_of_t(struct pheap_node *n)
{
    return pheap_container_of(n, struct pickq_wh, tnode);
}

/* Internal transitions whose legality the caller has established: the
   table is still asked, so a wrong table or a broken invariant stops the
   daemon loudly instead of corrupting the queues. */
static void
set_state(struct order *o, int action)
{
    int to;
    if (order_transition(o->state, action, &to) < 0) {
        fprintf(stderr, "pickq: order %s: %s from %s is illegal\n", o->id,
                order_action_name(action), order_state_name(o->state));
        abort();
    }
    o->wh->st.by_state[o->state]--;
    o->wh->st.by_state[to]++;
    o->state = (uint8_t)to;
}

/* The interned copy of name s (NULL: none), or NULL out of memory. */
static const char *
name_of(const char *s)
{
    return s == NULL ? name_empty : name_get(s, strlen(s));
}

/* Point *field at interned name n, letting go of the one it held. */
static void
name_set(const char **field, const char *n)
{
    name_put(*field);
    *field = n;
}

static void
jump_clear(struct pickq_jump *jump)
{
    if (jump != NULL)
        memset(jump, 0, sizeof(*jump));
}

/* ---- warehouses ------------------------------------------------------- */

static struct pickq_wh *
wh_find(struct pickq *q, const char *name)
{
    struct pickq_wh *wh;
    HASH_FIND(hh, q->whs, name, strlen(name), wh);
    return wh;
}

static struct pickq_wh *
wh_get(struct pickq *q, const char *name)
{
    struct pickq_wh *wh = wh_find(q, name);
    if (wh != NULL)
        return wh;
    wh = calloc(1, sizeof(*wh));
    if (wh == NULL)
        return NULL;
    size_t n = strlen(name);
    memcpy(wh->name, name, n + 1);
    wh->idx = q->nwh;
    for (int h = 0; h < QHEAPS; h++)
        pheap_init(&wh->qh[h]);
    ostree_init(&wh->rank, NULL);
    wh->st.mean_pick_ms = q->cfg.pick_ms;
    HASH_ADD_KEYPTR(hh, q->whs, wh->name, n, wh);
    if (wh->hh.tbl == NULL) {
        free(wh);
        return NULL;
    }
    q->nwh++;
    return wh;
}

static int64_t
active_pickers(const struct pickq_wh *wh)
{
    size_t n = wh->st.by_state[STATE_PICKING];
    return n > 0 ? (int64_t)n : 1;
}

static void
ewma(int64_t *mean, bool *measured, int64_t sample)
{
    if (!*measured) {
        *mean = sample;
        *measured = true;
    } else {
        *mean += (sample - *mean) / 8; /* weight 1/8, as TCP's SRTT */
    }
}

/* ---- the position index --------------------------------------------- */

/* The index holds each queued order under its heap key and seq. */

/* Make room in wh's index for every order queued or picking, plus
   `extra` about to enter: afterwards no insert into it can fail. */
static int
rk_reserve(struct pickq_wh *wh, size_t extra)
{
    size_t n =
        wh->st.by_state[STATE_QUEUED] + wh->st.by_state[STATE_PICKING] + extra;
    return ostree_reserve(&wh->rank, n) == OSTREE_OK ? PICKQ_OK : PICKQ_NOMEM;
}

/* Insert queued o (qnode key and seq set); returns its rank. */
static size_t
rk_insert(struct order *o)
{
    size_t rank = 0;
    int rc = ostree_insert(&o->wh->rank, o->qnode.key, o->qnode.seq, o, &rank);
    if (rc != OSTREE_OK) {
        /* Reserved on entry, and seqs are unique: a broken invariant. */
        fprintf(stderr, "pickq: order %s: position index insert: %d\n", o->id,
                rc);
        abort();
    }
    return rank;
}

/* Remove o under its current qnode key; returns the rank it had. */
static size_t
rk_remove(struct order *o)
{
    size_t rank = 0;
    if (ostree_remove(&o->wh->rank, o->qnode.key, o->qnode.seq, NULL, &rank) !=
        OSTREE_OK) {
        fprintf(stderr, "pickq: order %s is queued but not indexed\n", o->id);
        abort();
    }
    return rank;
}

/* Orders before queued o in its warehouse. */
static size_t
rk_rank(const struct order *o)
{
    return ostree_rank(&o->wh->rank, o->qnode.key, o->qnode.seq);
}

/* The deadline of the order indexed under key: the key holds it (see
   order_key) unless it was clamped to 0 or the top; then ask the order. */
static int64_t
rk_deadline(uint64_t key, const struct order *o)
{
    const uint64_t mask = (UINT64_C(1) << 60) - 1;
    uint64_t d = key & mask;
    return d == 0 || d == mask ? o->deadline : (int64_t)d;
}

/* ---- heaps ------------------------------------------------------------ */

/* The escalation policy.  An order of class cls whose deadline is within
   escalate_window[cls] of now is promoted one class up (earliest deadline
   first near the deadline), and no further: at most one class above its
   own, and never into the asn class, so an asn order (a production line
   waiting) is never passed by an escalated one.  asn and rush4h orders
   therefore never escalate (escalate_window[CLASS_RUSH4H] is unused).
   The promotion ends when the deadline passes: an order already late
   goes back to its own class (first there, by deadline) rather than
   ahead of the orders of the class above that can still make it, and an
   order past its deadline is not promoted (README, "Surge day", has the
   measurements).

   Timers: a queued order at its own class that may escalate has one at
   deadline - window; a promoted one at its deadline (the demotion).  One
   whose promotion time came after its deadline keeps its timer entry
   with the key NO_TIME ("parked"), so whether an order is in the timer
   heap still follows from its state and class alone. */
static bool
may_escalate(const struct pickq *q, int cls)
{
    return cls > CLASS_RUSH4H && cls < CLASS_COUNT &&
           q->cfg.escalate_window[cls] > 0;
}

/* The effective class of class cls at now. */
static int
escalate_from(const struct pickq *q, int cls, int64_t deadline, int64_t now)
{
    if (may_escalate(q, cls) &&
        sat_add(deadline, -q->cfg.escalate_window[cls]) <= now &&
        now < deadline)
        return cls - 1;
    return cls;
}

/* When queued order o escalates (at its own class) or goes back to its
   own class (promoted), or NO_TIME (it never escalates). */
static int64_t
escalate_at(const struct pickq *q, const struct order *o)
{
    if (o->eff_cls != o->cls)
        return o->deadline;
    if (!may_escalate(q, o->cls))
        return NO_TIME;
    return sat_add(o->deadline, -q->cfg.escalate_window[o->cls]);
}

/* Queued order o now has effective class o->eff_cls, coming from `from`
   (CLASS_COUNT: it just entered the queue): it went ahead of every waiting
   order of the classes in (eff_cls, from], which the estimate counts. */
static void
overtaking(struct order *o, int from)
{
    if (from > CLASS_NORMAL)
        from = CLASS_NORMAL;
    for (int c = o->eff_cls + 1; c <= from; c++)
        o->wh->overtakes[c]++;
}

/* When picked order o's outbound is overdue, or NO_TIME (disabled, or it
   already fired). */
static int64_t
confirm_at(const struct pickq *q, const struct order *o)
{
    int64_t t = q->cfg.confirm_timeout_ms;
    if (t <= 0 || o->unconfirmed_fired)
        return NO_TIME;
    return sat_add(o->pick_done_at, t);
}

/* Put o's node into heap h at its time: the lease or confirm heap. */
static void
timer_insert(struct pheap *h, struct order *o, int64_t at)
{
    o->qnode.key = time_key(at);
    o->qnode.seq = o->seq;
    pheap_insert(h, &o->qnode);
}

/* The pick heap a queued order belongs in; a parked one is moved to
   QH_REST by the tick that finds it parked. */
static int
qheap_of(const struct pickq *q, const struct order *o)
{
    if (o->eff_cls != o->cls) /* only a class after rush4h is promoted */
        return QH_UP + o->cls - QH_FIRST;
    if (may_escalate(q, o->cls))
        return QH_WAIT + o->cls - QH_FIRST;
    return QH_REST;
}

/* The order of wh that falls due first (by due time, then seq), from the
   roots of its WAIT and UP heaps, or NULL when none does. */
static struct order *
wh_due(const struct pickq *q, struct pickq_wh *wh, int64_t *at)
{
    struct order *best = NULL;
    int64_t bt = 0;
    for (int h = 0; h < QH_REST; h++) {
        struct pheap_node *n = pheap_peek(&wh->qh[h]);
        if (n == NULL)
            continue;
        struct order *o = order_of_q(n);
        int64_t t = escalate_at(q, o);
        if (best == NULL || t < bt || (t == bt && o->seq < best->seq)) {
            best = o;
            bt = t;
        }
    }
    *at = bt;
    return best;
}

/* A root of wh's WAIT or UP heaps changed: move wh in q->whtimers to the
   time of its first due order (often the same one: then nothing moves). */
static void
wh_rearm(struct pickq *q, struct pickq_wh *wh)
{
    int64_t at;
    struct order *o = wh_due(q, wh, &at);
    if (wh->timed && o != NULL && wh->tnode.key == time_key(at) &&
        wh->tnode.seq == o->seq)
        return;
    if (wh->timed)
        pheap_remove(&q->whtimers, &wh->tnode);
    wh->timed = o != NULL;
    if (o != NULL) {
        wh->tnode.key = time_key(at);
        wh->tnode.seq = o->seq;
        pheap_insert(&q->whtimers, &wh->tnode);
    }
}

/* Put queued o (key and seq set) into pick heap h of its warehouse. */
static void
qheap_insert(struct pickq *q, struct order *o, int h)
{
    struct pheap *heap = &o->wh->qh[h];
    o->qheap = (uint8_t)h;
    pheap_insert(heap, &o->qnode);
    if (h != QH_REST && pheap_peek(heap) == &o->qnode)
        wh_rearm(q, o->wh);
}

static void
qheap_remove(struct pickq *q, struct order *o)
{
    struct pheap *heap = &o->wh->qh[o->qheap];
    bool root = pheap_peek(heap) == &o->qnode;
    pheap_remove(heap, &o->qnode);
    if (root && o->qheap != QH_REST)
        wh_rearm(q, o->wh);
}

/* The earlier of two heap roots by (key, seq); either may be NULL. */
static struct pheap_node *
root_first(struct pheap_node *a, struct pheap_node *b)
{
    return a == NULL || (b != NULL && pheap_before(b, a)) ? b : a;
}

/* The first queued order of wh in pick order: the first of the roots. */
static struct order *
wh_first(struct pickq_wh *wh)
{
    struct pheap_node *best = NULL;
    for (int h = 0; h < QHEAPS; h++)
        best = root_first(best, pheap_peek(&wh->qh[h]));
    return best != NULL ? order_of_q(best) : NULL;
}

/* Put o into its warehouse's pick heaps with its current key and seq;
   returns its rank.  Its index nodes are reserved (it comes from
   picking, or the caller called rk_reserve). */
static size_t
enter_queue(struct pickq *q, struct order *o)
{
    o->qnode.key = order_key(o->eff_cls, o->deadline);
    o->qnode.seq = o->seq;
    qheap_insert(q, o, qheap_of(q, o));
    size_t rank = rk_insert(o);
    o->wh->st.queued_by_class[o->eff_cls]++;
    return rank;
}

static void
leave_queue(struct pickq *q, struct order *o)
{
    qheap_remove(q, o);
    rk_remove(o);
    o->wh->st.queued_by_class[o->eff_cls]--;
}

/* Give queued order o a new class, deadline and effective class in place.
   Its rank before goes to *old_rank (when not NULL); returns its rank
   after. */
static size_t
requeue(struct pickq *q, struct order *o, int cls, int64_t deadline, int eff,
        size_t *old_rank)
{
    size_t r0 = rk_remove(o); /* under the old key */
    if (old_rank != NULL)
        *old_rank = r0;
    qheap_remove(q, o);
    o->wh->st.queued_by_class[o->eff_cls]--;
    o->cls = (uint8_t)cls;
    o->deadline = deadline;
    o->eff_cls = (uint8_t)eff;
    o->qnode.key = order_key(eff, deadline);
    qheap_insert(q, o, qheap_of(q, o));
    size_t rank = rk_insert(o);
    o->wh->st.queued_by_class[eff]++;
    return rank;
}

static int64_t
lease_length(const struct pickq *q, int64_t lease_ms)
{
    if (lease_ms <= 0)
        lease_ms = q->cfg.lease_ms;
    if (q->cfg.lease_max_ms > 0 && lease_ms > q->cfg.lease_max_ms)
        lease_ms = q->cfg.lease_max_ms;
    return lease_ms;
}

/* ---- finished list ---------------------------------------------------- */

static void fin_unlink(struct pickq *q, struct order *o);

/* o is about to finish (cancel, outbound): out of its heaps, whatever its
   state, and off the finished list when it was on it (an outbound after a
   cancel), so the caller can set its state and fin_append it. */
static void
leave_active(struct pickq *q, struct order *o)
{
    switch (o->state) {
    case STATE_QUEUED:
        leave_queue(q, o);
        break;
    case STATE_PICKING:
        pheap_remove(&q->leases, &o->qnode);
        break;
    case STATE_PICKED:
        if (confirm_at(q, o) != NO_TIME)
            pheap_remove(&q->confirms, &o->qnode);
        break;
    default:
        if (order_state_finished(o->state))
            fin_unlink(q, o);
        break;
    }
}

static void
fin_append(struct pickq *q, struct order *o)
{
    o->fin_next = NULL;
    o->fin_prev = q->fin_tail;
    if (q->fin_tail != NULL)
        q->fin_tail->fin_next = o;
    else
        q->fin_head = o;
    q->fin_tail = o;
}

static void
fin_unlink(struct pickq *q, struct order *o)
{
    if (o->fin_prev != NULL)
        o->fin_prev->fin_next = o->fin_next;
    else
        q->fin_head = o->fin_next;
    if (o->fin_next != NULL)
        o->fin_next->fin_prev = o->fin_prev;
    else
        q->fin_tail = o->fin_prev;
    o->fin_prev = o->fin_next = NULL;
}

/* ---- queue jumps ------------------------------------------------------ */

/* Fill jump for queued order o at rank that passed `displaced` orders,
   now directly behind it. */
static void
jump_fill(struct pickq *q, struct order *o, size_t rank, size_t displaced,
          int64_t now, struct pickq_jump *jump)
{
    struct pickq_wh *wh = o->wh;
    int64_t delay = wh->st.mean_pick_ms / active_pickers(wh);
    size_t m = displaced < q->cfg.jump_scan ? displaced : q->cfg.jump_scan;

    jump_clear(jump);
    jump->order = o;
    jump->position = rank;
    jump->displaced = displaced;
    jump->delay_ms = delay;
    struct ostree_cursor c;
    struct ostree_item it;
    ostree_cursor_seek(&wh->rank, o->qnode.key, o->qnode.seq, &c);
    ostree_next(&c, &it); /* o itself */
    for (size_t r = rank + 1; r <= rank + m && ostree_next(&c, &it); r++) {
        int64_t deadline = rk_deadline(it.key, it.ptr);
        /* Before the jump this order was at rank r - 1: picked by now +
           r * delay. */
        if (sat_add(now, sat_mul(r, delay)) <= deadline &&
            sat_add(now, sat_mul(r + 1, delay)) > deadline) {
            if (jump->at_risk_listed < PICKQ_AT_RISK_MAX)
                jump->at_risk_orders[jump->at_risk_listed++] = it.ptr;
            jump->at_risk++;
        }
    }
}

/* o (its state already queued) enters the queue from new or held: seq on
   first entry, effective class at now, escalation timer, jump report. */
static void
queue_entry(struct pickq *q, struct order *o, int64_t now,
            struct pickq_jump *jump)
{
    if (o->seq == 0)
        o->seq = ++q->seq;
    o->eff_cls = (uint8_t)escalate_from(q, o->cls, o->deadline, now);
    if (o->eff_cls != o->cls)
        o->wh->st.escalations++; /* promoted at intake */
    size_t rank = enter_queue(q, o);
    overtaking(o, CLASS_COUNT);
    if (o->eff_cls != CLASS_NORMAL) {
        if (jump != NULL) {
            size_t behind = ostree_size(&o->wh->rank) - 1 - rank;
            jump_fill(q, o, rank, behind, now, jump);
        }
        o->wh->st.jumps++;
    }
}

/* ---- life cycle ------------------------------------------------------- */

void
pickq_config_default(struct pickq_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->lease_ms = 300000;
    cfg->lease_max_ms = 3600000;
    cfg->deadline_default[CLASS_ASN] = 0;
    cfg->deadline_default[CLASS_RUSH4H] = 4 * 3600000LL;
    cfg->deadline_default[CLASS_RUSH24H] = 24 * 3600000LL;
    cfg->deadline_default[CLASS_NORMAL] = 72 * 3600000LL;
    cfg->escalate_window[CLASS_ASN] = 0;
    cfg->escalate_window[CLASS_RUSH4H] = 30 * 60000LL;
    cfg->escalate_window[CLASS_RUSH24H] = 4 * 3600000LL;
    cfg->escalate_window[CLASS_NORMAL] = 24 * 3600000LL;
    cfg->pick_ms = 120000;
    cfg->jump_scan = 256;
    cfg->deadline_min_ms = INT64_C(946684800000);   /* 2000-01-01T00:00:00Z */
    cfg->deadline_ahead_max_ms = 1826 * MS_PER_DAY; /* 5 years */
    cfg->confirm_timeout_ms = 30 * 60000LL;
}

struct pickq *
pickq_new(const struct pickq_config *cfg)
{
    struct pickq *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    if (cfg != NULL)
        q->cfg = *cfg;
    else
        pickq_config_default(&q->cfg);
    pheap_init(&q->leases);
    pheap_init(&q->confirms);
    pheap_init(&q->whtimers);
    idmap_init(&q->ids);
    q->mean_pick_ms = q->cfg.pick_ms;
    return q;
}

void
pickq_free(struct pickq *q)
{
    struct pickq_wh *wh, *wtmp;
    if (q == NULL)
        return;
    idmap_clear(&q->ids, order_free);
    idmap_destroy(&q->ids);
    HASH_ITER(hh, q->whs, wh, wtmp)
    {
        HASH_DEL(q->whs, wh);
        ostree_destroy(&wh->rank);
        free(wh);
    }
    free(q->restored);
    free(q);
}

struct order *
pickq_get(struct pickq *q, const char *id, size_t len)
{
    return idmap_find(&q->ids, id, len);
}

/* ---- push and the transitions of the ERP ------------------------------ */

/* Is deadline d, given by the caller for order o, inside the configured
   window at now?  0, or -1 with a message naming d and the window. */
static int
deadline_check(const struct pickq *q, const struct order *o, int64_t d,
               int64_t now, char *err, size_t errlen)
{
    int64_t lo = q->cfg.deadline_min_ms;
    int64_t ahead = q->cfg.deadline_ahead_max_ms;
    int64_t hi = ahead > 0 ? sat_add(now, ahead) : INT64_MAX;
    if (d >= lo && d <= hi)
        return 0;
    char dbuf[40], lbuf[40], hbuf[64];
    order_time_format(d, dbuf, sizeof(dbuf));
    order_time_format(lo, lbuf, sizeof(lbuf));
    if (ahead <= 0)
        snprintf(hbuf, sizeof(hbuf), "any later time");
    else if (ahead % MS_PER_DAY == 0)
        snprintf(hbuf, sizeof(hbuf), "now + %" PRId64 " day%s",
                 ahead / MS_PER_DAY, ahead == MS_PER_DAY ? "" : "s");
    else
        snprintf(hbuf, sizeof(hbuf), "now + %" PRId64 " ms", ahead);
    order_errf(err, errlen,
               "order %s: deadline %" PRId64
               " (%s) is outside the accepted window (%s to %s)",
               o->id, d, dbuf, lbuf, hbuf);
    return -1;
}

/* Is o a repeat of pushed order old?  A repeat without a deadline means
   the class default as it applied at the first push. */
static bool
same_as_pushed(const struct pickq *q, const struct order *old, struct order *o)
{
    int64_t d0 = o->deadline;
    if (d0 == 0 && o->cls < CLASS_COUNT && q->cfg.deadline_default[o->cls] > 0)
        o->deadline = sat_add(old->created, q->cfg.deadline_default[o->cls]);
    bool same = order_same_content(old, o);
    o->deadline = d0;
    return same;
}

int
pickq_push(struct pickq *q, struct order *o, int64_t now,
           struct pickq_jump *jump, char *err, size_t errlen)
{
    jump_clear(jump);
    if (order_push_state(o->state) < 0) {
        order_errf(err, errlen,
                   "order %.*s: a push creates a new or queued order, "
                   "not %s",
                   ORDER_ID_MAX, o->id, order_state_name(o->state));
        return PICKQ_BADSTATE;
    }
    size_t idlen = strlen(o->id);
    if (idlen <= ORDER_ID_MAX) {
        struct order *old = pickq_get(q, o->id, idlen);
        if (old != NULL) {
            if (same_as_pushed(q, old, o))
                return PICKQ_SAME;
            order_errf(err, errlen, "order %s exists with different content",
                       o->id);
            return PICKQ_EXISTS;
        }
    }

    int64_t d0 = o->deadline;
    if (o->deadline == 0 && o->cls < CLASS_COUNT &&
        q->cfg.deadline_default[o->cls] > 0)
        o->deadline = sat_add(now, q->cfg.deadline_default[o->cls]);
    if (order_validate(o, err, errlen) < 0 ||
        (d0 != 0 && deadline_check(q, o, d0, now, err, errlen) < 0)) {
        o->deadline = d0;
        return PICKQ_BADARG;
    }
    struct pickq_wh *wh = wh_get(q, o->warehouse);
    if (wh == NULL ||
        (o->state == STATE_QUEUED && rk_reserve(wh, 1) != PICKQ_OK)) {
        o->deadline = d0;
        return PICKQ_NOMEM;
    }
    if (idmap_add(&q->ids, o) < 0) {
        o->deadline = d0;
        return PICKQ_NOMEM;
    }

    o->wh = wh;
    memset(&o->qnode, 0, sizeof(o->qnode)); /* and the finishing times */
    o->eff_cls = o->cls;
    o->seq = 0;
    o->lease = 0;
    o->lease_expires = 0;
    o->created = now;
    o->updated = now;
    wh->st.by_state[o->state]++;
    if (o->state == STATE_QUEUED)
        queue_entry(q, o, now, jump);
    wh->st.pushes++;
    return PICKQ_OK;
}

int
pickq_approve(struct pickq *q, struct order *o, int64_t now,
              struct pickq_jump *jump)
{
    int to;
    jump_clear(jump);
    if (order_transition(o->state, ACTION_APPROVE, &to) < 0)
        return PICKQ_BADSTATE;
    if (rk_reserve(o->wh, 1) != PICKQ_OK)
        return PICKQ_NOMEM;
    set_state(o, ACTION_APPROVE);
    queue_entry(q, o, now, jump);
    o->updated = now;
    o->wh->st.approvals++;
    return PICKQ_OK;
}

int
pickq_hold(struct pickq *q, struct order *o, int64_t now)
{
    int to;
    if (order_transition(o->state, ACTION_HOLD, &to) < 0)
        return PICKQ_BADSTATE;
    if (o->state == STATE_QUEUED)
        leave_queue(q, o);
    set_state(o, ACTION_HOLD);
    o->updated = now;
    return PICKQ_OK;
}

int
pickq_cancel(struct pickq *q, struct order *o, int64_t now)
{
    int to;
    if (order_transition(o->state, ACTION_CANCEL, &to) < 0)
        return PICKQ_BADSTATE;
    bool was_finished = order_state_finished(o->state);
    leave_active(q, o);
    if (!was_finished) /* the heap's bytes become the finishing times */
        o->outbound_at = o->delivered_at = 0;
    set_state(o, ACTION_CANCEL);
    o->updated = now;
    o->wh->st.cancels++;
    fin_append(q, o);
    return PICKQ_OK;
}

int
pickq_reprio(struct pickq *q, struct order *o, int cls, int64_t deadline,
             int64_t now, struct pickq_jump *jump, char *err, size_t errlen)
{
    int to;
    jump_clear(jump);
    if (order_transition(o->state, ACTION_REPRIO, &to) < 0) {
        order_errf(err, errlen, "order %s is %s, cannot reprioritise", o->id,
                   order_state_name(o->state));
        return PICKQ_BADSTATE;
    }
    if (cls < 0 || cls >= CLASS_COUNT) {
        order_errf(err, errlen, "order %s: unknown class %d", o->id, cls);
        return PICKQ_BADARG;
    }

    /* The new class must pass the intake rules too (an asn order carries
       its ASN documents), and a new deadline the window, as at push. */
    int cls0 = o->cls;
    int64_t d0 = o->deadline;
    int64_t d = deadline != 0 ? deadline : d0;
    o->cls = (uint8_t)cls;
    o->deadline = d;
    bool ok = order_validate(o, err, errlen) == 0 &&
              (deadline == 0 ||
               deadline_check(q, o, deadline, now, err, errlen) == 0);
    o->cls = (uint8_t)cls0;
    o->deadline = d0;
    if (!ok)
        return PICKQ_BADARG;

    int eff = escalate_from(q, cls, d, now);
    if (o->state != STATE_QUEUED) {
        o->cls = (uint8_t)cls;
        o->deadline = d;
        o->eff_cls = (uint8_t)eff;
        o->updated = now;
        return PICKQ_OK;
    }

    bool up = order_key(eff, d) < o->qnode.key && eff != CLASS_NORMAL;
    int eff0 = o->eff_cls;
    size_t old_rank;
    size_t rank = requeue(q, o, cls, d, eff, &old_rank);
    overtaking(o, eff0);
    if (up) {
        if (jump != NULL) {
            jump_fill(q, o, rank, old_rank - rank, now, jump);
        }
        o->wh->st.jumps++;
    }
    o->updated = now;
    return PICKQ_OK;
}

/* ---- the picker's side ------------------------------------------------ */

int
pickq_next(struct pickq *q, const char *warehouse, const char *picker,
           int64_t lease_ms, int64_t now, struct order **out)
{
    if (out != NULL)
        *out = NULL;
    struct pickq_wh *wh = wh_find(q, warehouse);
    if (wh == NULL || ostree_size(&wh->rank) == 0)
        return PICKQ_EMPTY;
    if (picker != NULL && strlen(picker) > ORDER_NAME_MAX)
        return PICKQ_BADARG;

    const char *pn = name_of(picker);
    if (pn == NULL)
        return PICKQ_NOMEM;
    struct order *o = wh_first(wh);
    leave_queue(q, o);
    set_state(o, ACTION_NEXT);
    name_set(&o->picker, pn);
    o->lease = ++q->lease;
    o->picked_at = now;
    o->lease_expires = sat_add(now, lease_length(q, lease_ms));
    timer_insert(&q->leases, o, o->lease_expires);
    o->updated = now;
    wh->st.picks++;
    if (wh->backlogged && now > wh->last_lease_at) {
        ewma(&wh->lease_gap_ms, &wh->gap_measured, now - wh->last_lease_at);
        for (int c = 0; c < CLASS_COUNT; c++)
            ewma(&wh->rho_milli[c], &wh->rho_measured[c],
                 (int64_t)wh->overtakes[c] * 1000);
        memset(wh->overtakes, 0, sizeof wh->overtakes);
    } else if (!wh->backlogged) {
        memset(wh->overtakes, 0, sizeof wh->overtakes); /* no gap */
    }
    wh->last_lease_at = now;
    wh->backlogged = ostree_size(&wh->rank) > 0;
    if (out != NULL)
        *out = o;
    return PICKQ_OK;
}

int
pickq_touch(struct pickq *q, struct order *o, uint64_t lease, int64_t lease_ms,
            int64_t now)
{
    if (o->state != STATE_PICKING || o->lease != lease)
        return PICKQ_LEASE;
    o->lease_expires = sat_add(now, lease_length(q, lease_ms));
    /* Usually later, but a shorter lease may be asked for: rekey both
       ways. */
    pheap_rekey(&q->leases, &o->qnode, time_key(o->lease_expires));
    o->updated = now;
    return PICKQ_OK;
}

/* A picking order goes back to the queue at its place. */
static void
lease_back(struct pickq *q, struct order *o, int action)
{
    pheap_remove(&q->leases, &o->qnode);
    set_state(o, action);
    enter_queue(q, o);
}

int
pickq_release(struct pickq *q, struct order *o, uint64_t lease, int64_t now)
{
    if (o->state != STATE_PICKING || o->lease != lease)
        return PICKQ_LEASE;
    lease_back(q, o, ACTION_RELEASE);
    o->updated = now;
    o->wh->st.releases++;
    return PICKQ_OK;
}

/* A pick of o (lease began at o->picked_at) ended at `end`: one sample of
   the mean pick time, for its warehouse and overall. */
static void
pick_measure(struct pickq *q, struct order *o, int64_t end)
{
    int64_t took;
    if (!__builtin_sub_overflow(end, o->picked_at, &took) && took > 0) {
        ewma(&o->wh->st.mean_pick_ms, &o->wh->measured, took);
        ewma(&q->mean_pick_ms, &q->measured, took);
    }
}

/* The lease holder is done: the pick measured, the lease timer swapped
   for the confirm timer. */
static void
lease_done(struct pickq *q, struct order *o, int64_t now)
{
    pheap_remove(&q->leases, &o->qnode);
    set_state(o, ACTION_PICKED);
    o->pick_done_at = now;
    o->unconfirmed_fired = false;
    int64_t at = confirm_at(q, o);
    if (at != NO_TIME)
        timer_insert(&q->confirms, o, at);
    pick_measure(q, o, now);
}

int
pickq_picked(struct pickq *q, struct order *o, uint64_t lease, int64_t now)
{
    if (o->lease != lease ||
        (o->state != STATE_PICKING && o->state != STATE_PICKED))
        return PICKQ_LEASE;
    if (o->state == STATE_PICKED)
        return PICKQ_SAME;
    lease_done(q, o, now);
    o->updated = now;
    o->wh->st.picked++;
    return PICKQ_OK;
}

static void
info_clear(struct pickq_outbound_info *info, int from)
{
    memset(info, 0, sizeof(*info));
    info->from = from;
    info->why = "";
}

/* Why an outbound from state `from` is odd, or NULL.  A revocation is
   decided apart (it needs the operator). */
static const char *
outbound_why(int from)
{
    switch (from) {
    case STATE_NEW:
        return "shipped before it was approved";
    case STATE_HELD:
        return "shipped while on hold";
    case STATE_QUEUED:
        return "shipped without being picked";
    case STATE_CANCELLED:
        return "shipped after it was cancelled";
    default:
        return NULL;
    }
}

/* The outbound itself; the caller checked that it is legal and that
   operator_ fits. */
/* operator_ is an interned name (name_of); o takes that reference. */
static void
outbound_do(struct pickq *q, struct order *o, const char *operator_, int64_t at,
            int64_t now, struct pickq_outbound_info *info)
{
    struct pickq_wh *wh = o->wh;
    int from = o->state;
    const char *why = outbound_why(from);
    info_clear(info, from);

    if (from == STATE_PICKING && operator_ != NULL && operator_[0] != '\0' &&
        o->picker[0] != '\0' && strcmp(operator_, o->picker) != 0) {
        info->revoked = true;
        info->revoked_lease = o->lease;
        memcpy(info->revoked_picker, o->picker, strlen(o->picker) + 1);
        why = "shipped by another picker than the lease holder";
        wh->st.revocations++;
    } else if (from == STATE_PICKING) {
        pick_measure(q, o, at); /* not reported picked: ends here */
    }
    if (why != NULL) {
        info->anomaly = true;
        info->why = why;
        wh->st.outbounds_anomalous++;
    }
    o->outbound_leased = from == STATE_PICKING || from == STATE_PICKED;
    if (!o->outbound_leased)
        wh->st.outbounds_unleased++;

    leave_active(q, o);
    if (!order_state_finished(from)) /* as in pickq_cancel */
        o->delivered_at = 0;
    set_state(o, ACTION_OUTBOUND);
    name_set(&o->operator_, operator_);
    o->outbound_at = at;
    o->updated = now;
    wh->st.outbounds++;
    fin_append(q, o);
}

int
pickq_outbound(struct pickq *q, struct order *o, const char *operator_,
               int64_t at, int64_t now, struct pickq_outbound_info *info)
{
    struct pickq_outbound_info local;
    int to;
    if (info == NULL)
        info = &local;
    info_clear(info, o->state);
    if (o->state == STATE_SHIPPED || o->state == STATE_DELIVERED)
        return PICKQ_SAME;
    if (order_transition(o->state, ACTION_OUTBOUND, &to) < 0)
        return PICKQ_BADSTATE;
    if (operator_ != NULL && strlen(operator_) > ORDER_NAME_MAX)
        return PICKQ_BADARG;
    const char *op = name_of(operator_);
    if (op == NULL)
        return PICKQ_NOMEM;
    outbound_do(q, o, op, at, now, info);
    return PICKQ_OK;
}

int
pickq_deliver(struct pickq *q, struct order *o, const char *operator_,
              int64_t at, int64_t now, struct pickq_outbound_info *info)
{
    struct pickq_outbound_info local;
    int to;
    if (info == NULL)
        info = &local;
    info_clear(info, o->state);
    if (o->state == STATE_DELIVERED)
        return PICKQ_SAME;
    if (o->state != STATE_SHIPPED) {
        /* The goods reached the customer, so they left: the outbound the
           WMS did not send (or that was lost) is recorded first, by the
           same rules as an explicit one. */
        if (order_transition(o->state, ACTION_OUTBOUND, &to) < 0)
            return PICKQ_BADSTATE;
        if (operator_ != NULL && strlen(operator_) > ORDER_NAME_MAX)
            return PICKQ_BADARG;
        const char *op = name_of(operator_);
        if (op == NULL)
            return PICKQ_NOMEM;
        outbound_do(q, o, op, at, now, info);
        info->implied = true;
    }
    if (order_transition(o->state, ACTION_DELIVER, &to) < 0)
        return PICKQ_BADSTATE;
    set_state(o, ACTION_DELIVER);
    o->delivered_at = at;
    o->updated = now;
    o->wh->st.deliveries++;
    /* The list is ordered by `updated`: move it to the young end. */
    fin_unlink(q, o);
    fin_append(q, o);
    return PICKQ_OK;
}

/* ---- timers ----------------------------------------------------------- */

/* The first root of the three timer heaps (by due time, then seq). */
static struct pheap_node *
timer_first(struct pickq *q)
{
    return root_first(
        root_first(pheap_peek(&q->leases), pheap_peek(&q->confirms)),
        pheap_peek(&q->whtimers));
}

int64_t
pickq_next_timer(struct pickq *q)
{
    struct pheap_node *t = timer_first(q);
    return t != NULL ? (int64_t)t->key : INT64_MAX;
}

size_t
pickq_tick(struct pickq *q, int64_t now, const struct pickq_tick_cb *cb)
{
    size_t changes = 0;
    struct pheap_node *t;

    /* Re-peek every round: a callback may have changed the queue, and a
       change made here may arm a timer that is already due (an expired
       order whose escalation fell due while it was picked, or an order
       promoted into a class whose window it is already in). */
    while ((t = timer_first(q)) != NULL && (int64_t)t->key <= now) {
        bool queued = t == pheap_peek(&q->whtimers);
        int64_t at;
        struct order *o = queued ? wh_due(q, wh_of_t(t), &at) : order_of_q(t);
        if (queued != (o->state == STATE_QUEUED)) {
            fprintf(stderr, "pickq: order %s is %s in the wrong timer heap\n",
                    o->id, order_state_name(o->state));
            abort();
        }
        if (o->state == STATE_PICKING) {
            uint64_t old_lease = o->lease;
            lease_back(q, o, ACTION_EXPIRE);
            o->updated = now;
            o->wh->st.expiries++;
            changes++;
            if (cb != NULL && cb->expired != NULL)
                cb->expired(cb->ctx, o, old_lease);
        } else if (o->state == STATE_PICKED) {
            pheap_remove(&q->confirms, &o->qnode);
            o->unconfirmed_fired = true; /* so confirm_at is NO_TIME */
            o->wh->st.unconfirmed++;
            changes++;
            if (cb != NULL && cb->unconfirmed != NULL)
                cb->unconfirmed(cb->ctx, o);
        } else if (o->state == STATE_QUEUED && o->eff_cls != o->cls) {
            /* Its deadline passed: the promotion ends.  Reported like an
               escalation, from the promoted class down to its own. */
            int from = o->eff_cls;
            set_state(o, ACTION_ESCALATE);
            requeue(q, o, o->cls, o->deadline, o->cls, NULL);
            o->updated = now;
            changes++;
            if (cb != NULL && cb->escalated != NULL)
                cb->escalated(cb->ctx, o, from);
        } else if (o->state == STATE_QUEUED && now >= o->deadline) {
            /* Its promotion time came after its deadline: none.  Parked
               with the orders time leaves alone. */
            qheap_remove(q, o);
            qheap_insert(q, o, QH_REST);
        } else if (o->state == STATE_QUEUED) {
            int from = o->eff_cls;
            set_state(o, ACTION_ESCALATE);
            requeue(q, o, o->cls, o->deadline, from - 1, NULL);
            overtaking(o, from);
            o->updated = now;
            o->wh->st.escalations++;
            changes++;
            if (cb != NULL && cb->escalated != NULL)
                cb->escalated(cb->ctx, o, from);
        } else {
            fprintf(stderr, "pickq: order %s is %s but has a timer\n", o->id,
                    order_state_name(o->state));
            abort();
        }
    }
    return changes;
}

/* ---- reading ---------------------------------------------------------- */

int
pickq_position(struct pickq *q, const struct order *o, size_t *rank,
               int64_t *eta_ms)
{
    if (o->state != STATE_QUEUED)
        return PICKQ_BADSTATE;
    struct pickq_wh *wh = o->wh;
    size_t r = rk_rank(o);
    if (rank != NULL)
        *rank = r;
    if (eta_ms != NULL) {
        int64_t base = wh->gap_measured ? sat_mul(r + 1, wh->lease_gap_ms)
                                        : sat_mul(r + 1, wh->st.mean_pick_ms) /
                                              active_pickers(wh);
        int64_t rho =
            wh->rho_measured[o->eff_cls] ? wh->rho_milli[o->eff_cls] : 0;
        if (rho > PICKQ_OVERTAKE_CAP_MILLI)
            rho = PICKQ_OVERTAKE_CAP_MILLI;
        if (rho < 0)
            rho = 0;
        /* base * (1 + rho / 1000), saturating. */
        *eta_ms = base > INT64_MAX / 4000 ? INT64_MAX
                                          : sat_add(base, base * rho / 1000);
    }
    return PICKQ_OK;
}

size_t
pickq_peek(struct pickq *q, const char *warehouse, size_t k, struct order **out)
{
    struct pickq_wh *wh = wh_find(q, warehouse);
    if (wh == NULL)
        return 0;
    size_t got = 0;
    struct ostree_cursor c;
    struct ostree_item it;
    ostree_cursor_first(&wh->rank, &c);
    while (got < k && ostree_next(&c, &it))
        out[got++] = it.ptr;
    return got;
}

static void
stats_add(struct pickq_stats *to, const struct pickq_stats *from)
{
    for (size_t i = 0; i < STATE_COUNT; i++)
        to->by_state[i] += from->by_state[i];
    for (size_t i = 0; i < CLASS_COUNT; i++)
        to->queued_by_class[i] += from->queued_by_class[i];
    to->pushes += from->pushes;
    to->approvals += from->approvals;
    to->picks += from->picks;
    to->releases += from->releases;
    to->outbounds += from->outbounds;
    to->outbounds_unleased += from->outbounds_unleased;
    to->deliveries += from->deliveries;
    to->cancels += from->cancels;
    to->expiries += from->expiries;
    to->escalations += from->escalations;
    to->jumps += from->jumps;
    to->picked += from->picked;
    to->unconfirmed += from->unconfirmed;
    to->outbounds_anomalous += from->outbounds_anomalous;
    to->revocations += from->revocations;
}

void
pickq_stats(struct pickq *q, const char *warehouse, struct pickq_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (warehouse != NULL) {
        struct pickq_wh *wh = wh_find(q, warehouse);
        st->mean_pick_ms = q->cfg.pick_ms;
        if (wh != NULL) {
            *st = wh->st;
            st->warehouses = 1;
        }
        return;
    }
    for (struct pickq_wh *wh = q->whs; wh != NULL; wh = wh->hh.next)
        stats_add(st, &wh->st);
    st->mean_pick_ms = q->mean_pick_ms;
    st->warehouses = q->nwh;
}

/* ---- recovery --------------------------------------------------------- */

static bool
field_ok(const char *f, size_t max)
{
    return f[0] != '\0' && strlen(f) <= max;
}

/* Index the restored orders not indexed yet. */
static int
index_restored(struct pickq *q)
{
    size_t pending = q->nrestored - q->nindexed;
    if (pending == 0)
        return PICKQ_OK;
    size_t added = 0;
    int rc =
        idmap_add_many(&q->ids, q->restored + q->nindexed, pending, &added);
    q->nindexed += added;
    return rc < 0 ? PICKQ_NOMEM : PICKQ_OK;
}

int
pickq_restore(struct pickq *q, struct order *o)
{
    if (o->state >= STATE_COUNT || o->cls >= CLASS_COUNT ||
        !field_ok(o->id, ORDER_ID_MAX) ||
        !field_ok(o->warehouse, ORDER_NAME_MAX))
        return PICKQ_BADARG;
    size_t idlen = strlen(o->id);
    /* Storage hands orders back in id order, and a strictly increasing
       run into an index that held nothing else cannot repeat an id: then
       the lookup (a cache miss or three per order) is skipped, and the
       order is indexed by pickq_restore_done, into a table sized once
       (growing it order by order was an eighth of a 10^6-order
       restart).  Out of order, the pending ones are indexed first and
       the order is looked up. */
    size_t n = q->nrestored;
    if (n == 0) {
        q->restored_in_order = idmap_count(&q->ids) == 0;
        q->nindexed = 0;
    }
    bool defer = n > 0 && q->restored_in_order &&
                 strcmp(o->id, q->restored[n - 1]->id) > 0;
    if (!defer) {
        q->restored_in_order = q->restored_in_order && n == 0;
        if (index_restored(q) != PICKQ_OK)
            return PICKQ_NOMEM;
        if (pickq_get(q, o->id, idlen) != NULL)
            return PICKQ_EXISTS;
    }
    if (q->nrestored == q->restored_cap) {
        size_t cap = q->restored_cap ? q->restored_cap * 2 : 1024;
        struct order **p = realloc(q->restored, cap * sizeof(*p));
        if (p == NULL)
            return PICKQ_NOMEM;
        q->restored = p;
        q->restored_cap = cap;
    }
    struct pickq_wh *wh = wh_get(q, o->warehouse);
    if (wh == NULL)
        return PICKQ_NOMEM;
    if (!defer) {
        if (idmap_add(&q->ids, o) < 0)
            return PICKQ_NOMEM;
        q->nindexed = n + 1;
    }

    o->wh = wh;
    if (order_state_finished(o->state)) /* its times share the bytes */
        o->fin_prev = o->fin_next = NULL;
    else
        memset(&o->qnode, 0, sizeof(o->qnode));
    /* Stored by an older policy or damaged: within what escalation may
       reach now (its own class, or one up but never into asn). */
    if (o->eff_cls > o->cls)
        o->eff_cls = o->cls;
    if (o->cls > CLASS_RUSH4H && o->eff_cls < o->cls - 1)
        o->eff_cls = (uint8_t)(o->cls - 1);
    if (o->cls <= CLASS_RUSH4H)
        o->eff_cls = o->cls;
    wh->st.by_state[o->state]++;
    if (o->state == STATE_QUEUED)
        wh->st.queued_by_class[o->eff_cls]++;
    if (o->seq > q->restored_seq)
        q->restored_seq = o->seq;
    if (o->lease > q->restored_lease)
        q->restored_lease = o->lease;
    q->restored[q->nrestored++] = o;
    return PICKQ_OK;
}

/* In a heap: queued and picking, and picked (its confirm timer). */
static bool
is_active(const struct order *o)
{
    return o->state == STATE_QUEUED || o->state == STATE_PICKING ||
           o->state == STATE_PICKED;
}

/* An order with its sort key inline.  Recovery sorts 10^6 orders three
   times; a comparison sort that chased two order pointers per comparison
   (a cache miss each) was a fifth of a restart, and glibc's qsort on
   inline keys still a sixth.  A stable LSD radix sort on the key, one
   byte a pass, reads every entry twice a pass and skips the bytes that
   are the same in every key (the high bytes of times, seqs and indices),
   so a sort costs 3 to 6 passes.  Stability carries the tie-breaks: the
   input is already in the order ties must keep (id, then seq). */
struct keyed {
    uint64_t k;
    struct order *o;
};

/* Sort keys[0..n) by k, stably, using tmp[0..n); the result is in keys. */
static void
radix_sort(struct keyed *keys, struct keyed *tmp, size_t n)
{
    size_t count[8][256]; /* 16 KiB */
    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < n; i++)
        for (unsigned d = 0; d < 8; d++)
            count[d][(keys[i].k >> (8 * d)) & 0xff]++;
    struct keyed *from = keys, *to = tmp;
    for (unsigned d = 0; d < 8; d++) {
        size_t *c = count[d], sum = 0;
        if (c[(keys[0].k >> (8 * d)) & 0xff] == n)
            continue; /* every key has this byte */
        for (unsigned v = 0; v < 256; v++) {
            size_t t = c[v];
            c[v] = sum;
            sum += t;
        }
        for (size_t i = 0; i < n; i++)
            to[c[(from[i].k >> (8 * d)) & 0xff]++] = from[i];
        struct keyed *t = from;
        from = to;
        to = t;
    }
    if (from != keys)
        memcpy(keys, from, n * sizeof(*keys));
}

/* Recovery walks 10^6 orders several times, each a cache miss (they are
   256 bytes apart, and after the first sort in no address order): each
   walk fetches the order this many steps ahead. */
#define PREFETCH_AHEAD 16

/* Sort the n orders of r by the key that key() gives, stably; keys[i].k
   is then r[i]'s key. */
static void
sort_orders(struct order **r, size_t n, struct keyed *keys, struct keyed *tmp,
            uint64_t (*key)(const struct order *))
{
    if (n < 2)
        return;
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)
            __builtin_prefetch(r[i + PREFETCH_AHEAD]);
        keys[i] = (struct keyed){key(r[i]), r[i]};
    }
    radix_sort(keys, tmp, n);
    for (size_t i = 0; i < n; i++)
        r[i] = keys[i].o;
}

#define GROUP_SHIFT 62
#define GROUP_VALUE_MAX ((UINT64_C(1) << GROUP_SHIFT) - 1)

/* Active orders first, by seq; then finished ones by `updated`; then the
   rest.  Seqs and epoch milliseconds stay far below 2^62. */
static uint64_t
key_restored(const struct order *o)
{
    if (is_active(o))
        return o->seq > GROUP_VALUE_MAX ? GROUP_VALUE_MAX : o->seq;
    if (order_state_finished(o->state)) {
        uint64_t t = time_key(o->updated);
        return (UINT64_C(1) << GROUP_SHIFT) |
               (t > GROUP_VALUE_MAX ? GROUP_VALUE_MAX : t);
    }
    return UINT64_C(2) << GROUP_SHIFT;
}

static uint64_t
key_warehouse(const struct order *o)
{
    return o->wh->idx;
}

static uint64_t
key_queued(const struct order *o)
{
    return o->qnode.key;
}

/* Build h from nodes (sorted) as a chain when it is empty; insert them
   otherwise (a restore after the queue was already in use). */
static void
build(struct pheap *h, struct pheap_node **nodes, size_t n)
{
    if (pheap_size(h) == 0) {
        pheap_build_sorted(h, nodes, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        pheap_insert(h, nodes[i]);
}

/* The queued orders of one warehouse, sorted, on their way into its
   position index and (through nodes[], one run per pick heap starting at
   at[h]) its pick heaps: one walk over the orders does both. */
struct rk_load {
    struct order **os;
    size_t n;
    struct pheap_node **nodes;
    size_t at[QHEAPS];
};

static void
rk_get(void *ctx, size_t i, struct ostree_item *out)
{
    struct rk_load *l = ctx;
    if (i + PREFETCH_AHEAD < l->n)
        __builtin_prefetch(l->os[i + PREFETCH_AHEAD]);
    struct order *o = l->os[i];
    l->nodes[l->at[o->qheap]++] = &o->qnode;
    out->key = o->qnode.key;
    out->seq = o->qnode.seq;
    out->ptr = o;
}

/* Index the queued orders os[0..n) of wh, sorted by key and seq (a bulk
   load when the index is empty, inserts otherwise; reserved: no
   failure), and build its pick heaps from them, whose sizes
   wh->restoring[] counted. */
static void
rk_build(struct pickq *q, struct pickq_wh *wh, struct order **os, size_t n,
         struct pheap_node **nodes)
{
    struct rk_load l = {os, n, nodes, {0}};
    for (int h = 1; h < QHEAPS; h++)
        l.at[h] = l.at[h - 1] + wh->restoring[h - 1];
    if (ostree_size(&wh->rank) > 0) {
        struct ostree_item it;
        for (size_t i = 0; i < n; i++) {
            rk_get(&l, i, &it);
            rk_insert(os[i]);
        }
    } else {
        int rc = ostree_load_sorted(&wh->rank, n, rk_get, &l);
        if (rc != OSTREE_OK) {
            fprintf(stderr, "pickq: warehouse %s: position index load: %d\n",
                    wh->name, rc);
            abort();
        }
    }
    for (size_t h = 0, from = 0; h < QHEAPS; h++) {
        build(&wh->qh[h], nodes + from, wh->restoring[h]);
        from += wh->restoring[h];
        wh->restoring[h] = 0;
    }
    wh_rearm(q, wh);
}

/* Merge the finished orders fin[0..n) (sorted by updated) into the
   finished list, keeping it ordered by updated. */
static void
fin_merge(struct pickq *q, struct order **fin, size_t n)
{
    struct order *at = q->fin_head;
    for (size_t i = 0; i < n; i++) {
        struct order *o = fin[i];
        while (at != NULL && at->updated <= o->updated)
            at = at->fin_next;
        if (at == NULL) {
            fin_append(q, o);
            continue;
        }
        o->fin_next = at;
        o->fin_prev = at->fin_prev;
        if (at->fin_prev != NULL)
            at->fin_prev->fin_next = o;
        else
            q->fin_head = o;
        at->fin_prev = o;
    }
}

int
pickq_restore_done(struct pickq *q)
{
    size_t n = q->nrestored;
    struct pheap_node **nodes = NULL;
    struct order **r = q->restored;

    if (index_restored(q) != PICKQ_OK)
        return PICKQ_NOMEM;
    struct keyed *keys = NULL, *tmp = NULL;
    if (n > 0) {
        nodes = malloc(n * sizeof(*nodes));
        keys = malloc(n * sizeof(*keys));
        tmp = malloc(n * sizeof(*tmp));
        if (nodes == NULL || keys == NULL || tmp == NULL) {
            free(nodes);
            free(keys);
            free(tmp);
            return PICKQ_NOMEM;
        }
    }
    /* Index nodes for every queued and picking order (counted by
       pickq_restore), before anything changes. */
    for (struct pickq_wh *wh = q->whs; wh != NULL; wh = wh->hh.next) {
        if (rk_reserve(wh, 0) != PICKQ_OK) {
            free(nodes);
            free(keys);
            free(tmp);
            return PICKQ_NOMEM;
        }
    }
    if (q->restored_seq > q->seq)
        q->seq = q->restored_seq;
    if (q->restored_lease > q->lease)
        q->lease = q->restored_lease;

    /* Storage gave the orders in id order: ties keep it.  The sorted
       keys say which group each order is in. */
    sort_orders(r, n, keys, tmp, key_restored);
    size_t nact = 0;
    while (nact < n && keys[nact].k >> GROUP_SHIFT == 0)
        nact++;
    size_t nfin = nact;
    while (nfin < n && keys[nfin].k >> GROUP_SHIFT == 1)
        nfin++;

    /* One walk over the active orders, in seq order:
       - arrival seqs must be unique among them (they break ties in every
         heap): one lost or repeated in storage gets a fresh one;
       - the lease heap's keys (into keys[0..nl)) and the confirm heap's
         (into keys[n - nc..n), last first);
       - the queued get their heap keys and pick heap, counted per
         warehouse, and are compacted to the front of r (nq <= i: what is
         overwritten was read already). */
    uint64_t prev = 0;
    size_t nl = 0, nc = 0, nq = 0;
    for (size_t i = 0; i < nact; i++) {
        if (i + PREFETCH_AHEAD < nact)
            __builtin_prefetch(r[i + PREFETCH_AHEAD], 1);
        struct order *o = r[i];
        uint64_t seq = o->seq;
        if (seq == 0 || (i > 0 && seq == prev))
            o->seq = ++q->seq;
        prev = seq;
        o->qnode.seq = o->seq;
        if (o->state == STATE_PICKING) {
            o->qnode.key = time_key(o->lease_expires);
            keys[nl++] = (struct keyed){o->qnode.key, o};
        } else if (o->state == STATE_PICKED) {
            int64_t at = confirm_at(q, o);
            if (at != NO_TIME) {
                o->qnode.key = time_key(at);
                keys[n - ++nc] = (struct keyed){o->qnode.key, o};
            }
        } else {
            o->qnode.key = order_key(o->eff_cls, o->deadline);
            o->qheap = (uint8_t)qheap_of(q, o);
            o->wh->restoring[o->qheap]++;
            r[nq++] = o;
        }
    }
    /* Stable on active orders in seq order: by (key, seq). */
    struct keyed *conf = keys + n - nc;
    for (size_t i = 0; i < nc / 2; i++) {
        struct keyed k = conf[i];
        conf[i] = conf[nc - 1 - i];
        conf[nc - 1 - i] = k;
    }
    if (nl > 1)
        radix_sort(keys, tmp, nl);
    if (nc > 1)
        radix_sort(conf, tmp, nc);
    for (size_t i = 0; i < nl; i++)
        nodes[i] = &keys[i].o->qnode;
    build(&q->leases, nodes, nl);
    for (size_t i = 0; i < nc; i++)
        nodes[i] = &conf[i].o->qnode;
    build(&q->confirms, nodes, nc);

    fin_merge(q, r + nact, nfin - nact);

    /* Warehouse heaps, each from its queued orders (r[0..nq)) in order. */
    /* In seq order still: by warehouse, then each warehouse's by (key,
       seq). */
    sort_orders(r, nq, keys, tmp, key_warehouse);
    for (size_t i = 0; i < nq;) {
        size_t j = i;
        while (j < nq && r[j]->wh == r[i]->wh)
            j++;
        sort_orders(r + i, j - i, keys, tmp, key_queued);
        rk_build(q, r[i]->wh, r + i, j - i, nodes);
        i = j;
    }
    free(nodes);
    free(keys);
    free(tmp);
    q->nrestored = q->nindexed = 0;
    return PICKQ_OK;
}

/* ---- forgetting ------------------------------------------------------- */

size_t
pickq_forget_finished(struct pickq *q, int64_t before,
                      void (*cb)(void *ctx, struct order *o), void *ctx)
{
    size_t n = 0;
    struct order *o;
    /* The list is in `updated` order (finishing and delivering append at
       now), so the first young enough order ends the walk. */
    while ((o = q->fin_head) != NULL && o->updated < before) {
        fin_unlink(q, o);
        idmap_del(&q->ids, o);
        o->wh->st.by_state[o->state]--;
        if (cb != NULL)
            cb(ctx, o);
        order_free(o);
        n++;
    }
    return n;
}

void
pickq_each_warehouse(struct pickq *q,
                     void (*fn)(void *ctx, const char *warehouse), void *ctx)
{
    for (struct pickq_wh *wh = q->whs; wh; wh = wh->hh.next)
        fn(ctx, wh->name);
}

/* ---- walks for the board (kept at the end of the file) --------------- */

struct each_picking {
    const char *warehouse;
    void (*fn)(void *ctx, const struct order *o);
    void *ctx;
};

static void
each_picking_one(void *ctx, struct pheap_node *n)
{
    struct each_picking *e = ctx;
    const struct order *o = order_of_q(n);
    if (e->warehouse && strcmp(e->warehouse, o->wh->name) != 0)
        return;
    e->fn(e->ctx, o);
}

void
pickq_each_picking(struct pickq *q, const char *warehouse,
                   void (*fn)(void *ctx, const struct order *o), void *ctx)
{
    struct each_picking e = {warehouse, fn, ctx};
    pheap_each(&q->leases, each_picking_one, &e);
    pheap_each(&q->confirms, each_picking_one, &e);
}

void
pickq_each_finished(struct pickq *q,
                    void (*fn)(void *ctx, const struct order *o), void *ctx)
{
    for (const struct order *o = q->fin_head; o; o = o->fin_next)
        fn(ctx, o);
}
