/*
 * view — the one field list of each thing dispatchd shows: an order, an
 * audit entry, the stats.  Every encoder (RESP2 arrays, RESP3 maps, the
 * binary protocol, JSON) walks these lists, so a field is added once.
 *
 * A view is filled into caller storage and points into the order (or the
 * entry) it shows and into its own buffer: it is valid while they are.
 */
#ifndef DISPATCHD_VIEW_H
#define DISPATCHD_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

enum view_kind {
    VIEW_STR,   /* s, len */
    VIEW_INT,   /* i (signed 64-bit) */
    VIEW_U64,   /* u: an identifier; RESP and JSON send it as a string */
    VIEW_LIST,  /* s, len: comma-separated words (risk) */
    VIEW_ATTRS, /* the order's attributes: walk order_attr_next(o) */
};

/* Stable numbers of the fields, for compact encoders (the binary
   protocol).  Never renumber; add at the end. */
enum view_tag {
    VT_ID = 1,
    VT_CLASS,
    VT_EFFECTIVE_CLASS,
    VT_STATE,
    VT_WAREHOUSE,
    VT_CUSTOMER,
    VT_SOURCE,
    VT_FULFIL,
    VT_RISK,
    VT_DEADLINE,
    VT_DEADLINE_ISO,
    VT_CREATED,
    VT_CREATED_ISO,
    VT_UPDATED,
    VT_UPDATED_ISO,
    VT_SEQ,
    VT_ATTRS,
    VT_POSITION,
    VT_ETA_MS,
    VT_ETA,
    VT_ETA_ISO,
    VT_LEASE,
    VT_LEASE_EXPIRES,
    VT_LEASE_EXPIRES_ISO,
    VT_PICKER,
    VT_PICKED_AT,
    VT_PICKED_AT_ISO,
    VT_OUTBOUND_AT,
    VT_OUTBOUND_AT_ISO,
    VT_OPERATOR,
    VT_OUTBOUND_LEASED,
    VT_DELIVERED_AT,
    VT_DELIVERED_AT_ISO,
    /* audit entries */
    VT_A_SEQ = 64,
    VT_A_AT,
    VT_A_AT_ISO,
    VT_A_ACTOR,
    VT_A_ACTION,
    VT_A_FROM,
    VT_A_TO,
    VT_A_RAW,
    VT_A_NOTE,
    /* stats: one tag each, from here on, in the order of the list */
    VT_STATS = 128,
};

struct view_field {
    uint8_t tag;     /* enum view_tag */
    uint8_t kind;    /* enum view_kind */
    const char *key; /* "id", "deadline_iso", ... */
    const char *s;
    size_t len;
    int64_t i;
    uint64_t u;
};

#define VIEW_FIELDS_MAX 64

struct view {
    const struct order *o; /* for VIEW_ATTRS */
    size_t n;
    struct view_field f[VIEW_FIELDS_MAX];
    char buf[1024]; /* formatted times, risk words, key names */
    size_t used;
};

/* The order as GET shows it: position and ETA when queued, the lease when
   picking, the confirmation once shipped. */
void view_order(struct view *v, struct core *c, const struct order *o);
/* One audit entry. */
void view_audit(struct view *v, uint32_t seq, const struct audit_entry *a);
/* The stats snapshot, as STATS, INFO and /metrics show it. */
void view_stats(struct view *v, const struct core_stats *st);

#endif
