/*
 * jview — the JSON encoder of the views (view.h): an order, an audit
 * entry, any field list, as jansson values.  Shared by the HTTP routes,
 * the board and the customer's tracking page, so an order reads the same
 * everywhere.  Loop thread only (the views are kept in static storage).
 */
#ifndef DISPATCHD_JVIEW_H
#define DISPATCHD_JVIEW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"
#include "view.h"

/* A JSON string of len bytes; invalid UTF-8 becomes U+FFFD (as in the
   events), so a value pushed over RESP never breaks a reply.  Never
   NULL: out of memory is fatal. */
json_t *jview_str(const char *s, size_t len);
/* An object with one member per field of v. */
json_t *jview_fields(const struct view *v);
/* The order as GET shows it (view_order). */
json_t *jview_order(struct core *c, const struct order *o);
/* core_audit's callback: append the entry's object to the array ctx. */
int jview_audit_one(void *ctx, uint32_t seq, const struct audit_entry *a);

#endif
