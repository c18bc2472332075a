/*
 * idmap — the pick queue's index of orders by id: a chained hash table
 * whose links live in the orders (order.id_next), so the index costs one
 * pointer per order plus one per bucket.
 *
 * The bucket array doubles when there are more orders than buckets; when
 * that allocation fails the table keeps working with longer chains, so
 * only the very first add can run out of memory.
 */
#ifndef DISPATCHD_IDMAP_H
#define DISPATCHD_IDMAP_H

#include <stddef.h>

#include "order.h"

struct idmap {
    struct order **bucket; /* nbucket heads, or NULL while empty */
    size_t nbucket;        /* a power of two, or 0 */
    size_t n;              /* orders in the table */
};

void idmap_init(struct idmap *m);
/* Free the buckets; the orders are the caller's (see idmap_clear). */
void idmap_destroy(struct idmap *m);
struct order *idmap_find(const struct idmap *m, const char *id, size_t len);
/* Add o (its id must not be in the table): 0, or -1 out of memory. */
int idmap_add(struct idmap *m, struct order *o);
/* Add os[0..n) (none of their ids in the table, nor twice among them),
   as idmap_add would one by one, but with the memory each add touches
   (the order, its id, its bucket) fetched a few orders ahead: at 10^6
   orders every one of those is a cache miss.  0, or -1 out of memory
   (the first of os not added is os[*added]). */
int idmap_add_many(struct idmap *m, struct order *const *os, size_t n,
                   size_t *added);
/* Make room for n orders in all without a resize: 0, or -1 out of
   memory (the table still works, with longer chains or resizes). */
int idmap_reserve(struct idmap *m, size_t n);
/* Remove o, which is in the table. */
void idmap_del(struct idmap *m, struct order *o);
/* Remove every order, calling fn on each (in no particular order). */
void idmap_clear(struct idmap *m, void (*fn)(struct order *));
static inline size_t
idmap_count(const struct idmap *m)
{
    return m->n;
}

#endif
