/*
 * draft — an order as a client describes it, before it is pushed: the
 * field words every text front end shares (RESP's PUSH options, the HTTP
 * gateway's JSON keys), each checked with the same message.
 */
#ifndef DISPATCHD_DRAFT_H
#define DISPATCHD_DRAFT_H

#include <stddef.h>

#include "order.h"

/* A new draft with id and class (in the default warehouse, state new).
   NULL with err filled when either is invalid or out of memory. */
struct order *draft_new(const char *id, size_t idlen, const char *cls,
                        size_t clslen, char *err, size_t errlen);

/* Set one field by name (case-insensitive): deadline (epoch ms or ISO
   8601), warehouse, customer, source, fulfil (or fulfill), risk (comma
   separated words).  Returns 0; -1 with err naming the field and value;
   -2 when key is not a field name. */
int draft_set(struct order *o, const char *key, size_t klen, const char *v,
              size_t vlen, char *err, size_t errlen);

/* Add an attribute.  Returns 0, -1 with err (a bound), -2 out of memory. */
int draft_attr(struct order *o, const char *k, size_t klen, const char *v,
               size_t vlen, char *err, size_t errlen);

#endif
