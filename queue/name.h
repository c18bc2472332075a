/*
 * name — interned short strings: the warehouse, customer, picker and
 * operator names that orders carry.
 *
 * A million queued orders name a few hundred customers and a handful of
 * warehouses; each order holds a pointer and the table holds one copy of
 * each name with a reference count.  A name is freed when its last order
 * lets go, so the table stays as large as the names in use.
 *
 * The empty name is a static "" that is never counted or freed.
 * Single-threaded: orders live on the event loop's thread.
 */
#ifndef DISPATCHD_NAME_H
#define DISPATCHD_NAME_H

#include <stddef.h>

/* The interned copy of s (len bytes, no NUL inside), with one reference
   taken, or NULL when out of memory.  len 0 gives the static "". */
const char *name_get(const char *s, size_t len);
/* One more reference to an interned name (or ""). */
const char *name_ref(const char *name);
/* Drop one reference; the last one frees the name.  NULL and "" are
   ignored. */
void name_put(const char *name);
/* Distinct names held (for tests and the memory report). */
size_t name_count(void);

/* The static empty name. */
extern const char name_empty[1];

#endif
