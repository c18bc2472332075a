/*
 * order — the warehouse order: its fields, enums, state machine and intake
 * rules.  Pure data and logic: no I/O, no clock (times are passed in, in
 * epoch milliseconds UTC).
 *
 * An order is allocated by order_new() and freed by order_free(); whoever
 * holds the pointer owns it (the pick queue, once pushed).
 */
#ifndef DISPATCHD_ORDER_H
#define DISPATCHD_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pheap.h"

/* Bounds on everything an order carries (intake rejects larger input). */
#define ORDER_ID_MAX 64         /* bytes of an order id */
#define ORDER_NAME_MAX 64       /* warehouse, customer, picker, operator */
#define ORDER_ATTRS_MAX 32      /* number of free-form attributes */
#define ORDER_ATTR_KEY_MAX 64   /* bytes of an attribute key */
#define ORDER_ATTR_VAL_MAX 1024 /* bytes of an attribute value */

/* Urgency class, most urgent first; the numeric order IS the pick order. */
enum order_class {
    CLASS_ASN, /* OEM ASN direct ship: a production line waits */
    CLASS_RUSH4H,
    CLASS_RUSH24H,
    CLASS_NORMAL,
    CLASS_COUNT
};

/* The numeric values are stored (records, audit entries): new states are
   appended, never inserted, so the order of the values is NOT the order
   of the life cycle.  Ask order_state_finished() rather than compare. */
enum order_state {
    STATE_NEW,
    STATE_HELD,
    STATE_QUEUED,
    STATE_PICKING,
    STATE_SHIPPED,
    STATE_DELIVERED,
    STATE_CANCELLED,
    STATE_PICKED, /* physically picked, waiting for the WMS outbound */
    STATE_COUNT
};

/* What happened to an order: the edges of the state machine, and the
   action word of an audit entry.  Stored like the states: append only. */
enum order_action {
    ACTION_PUSH,     /* -> new (or queued when pushed approved) */
    ACTION_APPROVE,  /* new|held -> queued */
    ACTION_HOLD,     /* new|queued -> held */
    ACTION_NEXT,     /* queued -> picking (leased) */
    ACTION_TOUCH,    /* picking -> picking (lease extended) */
    ACTION_RELEASE,  /* picking -> queued (picker gave it back) */
    ACTION_EXPIRE,   /* picking -> queued (lease ran out) */
    ACTION_OUTBOUND, /* new|held|queued|picking|picked|cancelled -> shipped:
                        the WMS is the truth, from any unfinished state and
                        even after a cancel (pickq reports what was odd) */
    ACTION_DELIVER,  /* shipped -> delivered (a delivery of an unshipped
                        order is an implied outbound, then this) */
    ACTION_CANCEL,   /* new|held|queued|picking -> cancelled; not picked:
                        the goods are off the shelf, the WMS decides */
    ACTION_REPRIO,   /* new|held|queued|picking|picked -> same state, new
                        class and deadline */
    ACTION_ESCALATE, /* queued -> queued, effective class one up */
    ACTION_PICKED,   /* picking -> picked (the lease holder picked it) */
    ACTION_COUNT
};

enum order_source {
    SOURCE_DEALER, /* default */
    SOURCE_ASN,
    SOURCE_ECOMMERCE,
    SOURCE_AFTERSALES,
    SOURCE_COUNT
};

enum order_fulfil {
    FULFIL_STOCK, /* default */
    FULFIL_TO_DRAWING,
    FULFIL_VMI,
    FULFIL_JIT,
    FULFIL_COUNT
};

/* Risk flags, a bit set. */
enum order_risk {
    RISK_NEW_CUSTOMER = 1u << 0,
    RISK_HIGH_RETURNS = 1u << 1,
    RISK_OVERDUE_90D = 1u << 2,
};
#define RISK_ALL (RISK_NEW_CUSTOMER | RISK_HIGH_RETURNS | RISK_OVERDUE_90D)

struct order {
    /* One node serves every state that waits in a heap: a queued order
       is in one of its warehouse's pick heaps, a picking one in the lease
       heap, a picked one in the confirm heap (pickq.c).  A finished one
       (order_state_finished) is in none, and holds its finishing times
       in the same bytes.  Read those through order_outbound_at() and
       order_delivered_at() unless the state is known to be finished. */
    union {
        struct pheap_node qnode; /* queued, picking, picked (pickq) */
        struct {
            struct order *fin_prev; /* finished: pickq's list of finished */
            struct order *fin_next; /* orders, oldest first (private) */
            int64_t outbound_at;    /* ms, shipped; 0 = not shipped */
            int64_t delivered_at;   /* ms, delivered; 0 = not delivered */
        };
    };
    struct order *id_next; /* the pick queue's id index (its chain) */
    struct pickq_wh *wh;   /* the warehouse it belongs to (pickq private) */

    /* The id is the order's own allocation; the names are interned
       (name.h): a queued order costs a pointer per name, not a copy. */
    const char *id;
    const char *warehouse;
    const char *customer;
    const char *picker;    /* lease holder; kept once picked (who picked
                              it, and a repeated PICKED is recognised) */
    const char *operator_; /* who confirmed the outbound */

    /* Attributes: nattrs pairs packed as "key\0value\0key\0value\0...",
       attrs_len bytes in total (malloc'd, owned by the order, or NULL). */
    char *attrs;

    int64_t deadline; /* ms */
    int64_t created;  /* ms, first push */
    int64_t updated;  /* ms, last transition */
    uint64_t seq;     /* arrival sequence in the queue (set on entering
                         queued the first time; kept across release) */

    /* Lease, meaningful while picking; kept once picked. */
    uint64_t lease;
    int64_t lease_expires; /* ms */
    int64_t picked_at;     /* ms, when the current lease began */
    int64_t pick_done_at;  /* ms, when it became picked; 0 = never */

    uint32_t audit_n;   /* audit entries written so far (next sequence) */
    uint16_t attrs_len; /* <= ORDER_ATTRS_MAX * (key + value + 2) */
    uint16_t nattrs;

    uint8_t cls;            /* enum order_class as pushed (or re-prioritised) */
    uint8_t eff_cls;        /* effective class after escalation; <= cls */
    uint8_t state;          /* enum order_state */
    uint8_t source;         /* enum order_source */
    uint8_t fulfil;         /* enum order_fulfil */
    uint8_t risk;           /* enum order_risk bits */
    bool unconfirmed_fired; /* picked, and the confirm timeout fired (it
                               fires once, across restarts too) */
    bool outbound_leased;   /* confirmed while picking (a lease held) or
                               picked, not from another state */
    uint8_t qheap;          /* queued: which of its warehouse's heaps
                               (pickq private) */
};

/* Shipped, delivered or cancelled: the order is on pickq's finished list
   (an outbound may still land on a cancelled one). */
static inline bool
order_state_finished(int s)
{
    return s == STATE_SHIPPED || s == STATE_DELIVERED || s == STATE_CANCELLED;
}

/* When it was shipped and delivered, 0 when it was not (yet). */
static inline int64_t
order_outbound_at(const struct order *o)
{
    return order_state_finished(o->state) ? o->outbound_at : 0;
}

static inline int64_t
order_delivered_at(const struct order *o)
{
    return order_state_finished(o->state) ? o->delivered_at : 0;
}

/* printf into err (errlen bytes) unless err is NULL: how queue/ fills the
   error messages it hands back. */
void order_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A zeroed order with defaults (class normal, source dealer, fulfil stock,
   state new), or NULL when out of memory. */
struct order *order_new(void);
void order_free(struct order *o);

/* Set a field to a copy of s (len bytes; ids up to ORDER_ID_MAX, names
   up to ORDER_NAME_MAX, no NUL inside).  Returns 0, -1 when s breaks a
   bound (the field is unchanged), -2 out of memory. */
int order_set_id(struct order *o, const char *s, size_t len);
int order_set_warehouse(struct order *o, const char *s, size_t len);
int order_set_customer(struct order *o, const char *s, size_t len);
int order_set_picker(struct order *o, const char *s, size_t len);
int order_set_operator(struct order *o, const char *s, size_t len);

/* Append an attribute; replaces the value of an existing key.
   Returns 0, -1 on a bound (err filled), -2 out of memory. */
int order_attr_set(struct order *o, const char *k, size_t klen, const char *v,
                   size_t vlen, char *err, size_t errlen);
/* The value of key k, or NULL. */
const char *order_attr_get(const struct order *o, const char *k);
/* Iterate: *pos starts at 0; returns false at the end. */
bool order_attr_next(const struct order *o, size_t *pos, const char **k,
                     const char **v);

/* The fields the ERP sent are equal (id, class, deadline, warehouse,
   customer, taxonomy, attributes): a repeated push is then a no-op. */
bool order_same_content(const struct order *a, const struct order *b);

/* Parse (case-insensitive) and format each enum.  Parsers return -1 when
   the word is unknown. */
int order_class_parse(const char *s, size_t len);
const char *order_class_name(int c);
int order_state_parse(const char *s, size_t len);
const char *order_state_name(int s);
const char *order_action_name(int a);
int order_action_parse(const char *s, size_t len);
int order_source_parse(const char *s, size_t len);
const char *order_source_name(int s);
int order_fulfil_parse(const char *s, size_t len);
const char *order_fulfil_name(int f);
/* A comma-separated list of risk words ("new_customer,overdue_90d"); an
   empty string is no risk.  Returns the bit set or -1. */
int order_risk_parse(const char *s, size_t len);
/* Writes the comma-separated names into buf; returns buf. */
char *order_risk_format(unsigned risk, char *buf, size_t buflen);

/* The state machine, one table: 0 and *to filled when action is legal
   from state, -1 otherwise.  ACTION_PUSH is legal from no state: use
   order_push_state() for it. */
int order_transition(int from, int action, int *to);
/* The push row of that table: 0 when a push may create an order in state
   (new, or queued when pushed approved), -1 otherwise. */
int order_push_state(int state);

/* Intake rules on a filled order (deadline defaults already applied):
   the id is non-empty, an asn-class order carries attributes
   "asn_number" and "tech_agreement", a to_drawing order carries
   "drawing_version", a deadline is set (> 0).  Returns 0, or -1 with a
   message naming the field in err. */
int order_validate(const struct order *o, char *err, size_t errlen);

/* Time: parse epoch milliseconds ("1769407200000") or ISO 8601 with an
   offset or Z ("2026-01-26T14:00:00+08:00", fraction of a second allowed).
   Returns 0 and *ms, or -1. */
int order_time_parse(const char *s, size_t len, int64_t *ms);
/* ISO 8601 UTC with milliseconds, "2026-01-26T06:00:00.000Z". */
char *order_time_format(int64_t ms, char *buf, size_t buflen);

/* The heap key of (class, deadline): class in the top bits, so one
   integer compare orders by class then deadline. */
static inline uint64_t
order_key(int cls, int64_t deadline)
{
    uint64_t d = deadline < 0 ? 0 : (uint64_t)deadline;
    if (d > ((UINT64_C(1) << 60) - 1))
        d = (UINT64_C(1) << 60) - 1;
    return ((uint64_t)cls << 60) | d;
}

#endif
