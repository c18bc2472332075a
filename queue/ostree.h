/*
 * ostree — an order-statistic B+tree: a sorted set of (key, seq, ptr) items
 * ordered by (key, seq), that also answers "how many items come before this
 * one" in O(log n), and iterates in order from any item.
 *
 * Built for the pick queue's position index: a few wide nodes per level, the
 * keys stored inline in each node, so a search reads one node per level
 * instead of one (cold) order per level.  Nodes come from the tree's own
 * pool; ostree_reserve() sets aside enough of them in advance that later
 * inserts cannot fail, so a caller can refuse a command before it changes
 * anything rather than half-way.
 *
 * The tree never dereferences ptr.  Single-threaded; a struct ostree may be
 * embedded anywhere (no pointers into it are kept).
 */
#ifndef DISPATCHD_OSTREE_H
#define DISPATCHD_OSTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ostree_err {
    OSTREE_OK = 0,
    OSTREE_NOMEM = -1,    /* an allocation failed; nothing changed */
    OSTREE_EXISTS = -2,   /* insert: (key, seq) is already there */
    OSTREE_NOTFOUND = -3, /* remove: (key, seq) is not there */
    OSTREE_UNSORTED = -4, /* load: items not strictly increasing */
};

struct ostree_item {
    uint64_t key;
    uint64_t seq;
    void *ptr;
};

/* Where node memory comes from: alloc(ctx, bytes) returns memory aligned
   for any type, or NULL; free(ctx, p) gives it back.  Tests inject
   failures through this; NULL means malloc and free. */
struct ostree_alloc {
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *p);
    void *ctx;
};

/* A free list of equal-sized nodes carved from chunks (private). */
struct ostree_pool {
    void *free;   /* first free node; each free node links the next */
    size_t nfree; /* nodes free to take: on the free list, or never
                     handed out yet (still fresh in their chunk) */
    size_t total; /* nodes in all chunks: live + free */
    void *chunks; /* chunks, each linking the next in its first word */
};

struct ostree {
    void *root;      /* NULL when empty */
    unsigned height; /* inner levels above the leaves */
    size_t size;     /* items */
    struct ostree_pool leaves;
    struct ostree_pool inners;
    struct ostree_alloc a;
};

/* A position between items, for in-order iteration.  Any insert or remove
   invalidates every cursor of the tree. */
struct ostree_cursor {
    void *leaf; /* NULL: at the end */
    unsigned idx;
};

/* An empty tree using allocator a (NULL: malloc/free; copied). */
void ostree_init(struct ostree *t, const struct ostree_alloc *a);
/* Free every node and chunk; t may be initialised again.  Items' ptrs are
   the caller's. */
void ostree_destroy(struct ostree *t);

/* Make sure that inserts cannot fail while the tree holds fewer than n
   items: after OSTREE_OK, the pool holds enough nodes for any tree of n
   items (the worst case, every node half full), whatever sequence of
   inserts and removes led there.  Reserved nodes stay with the tree until
   ostree_destroy.  OSTREE_NOMEM: nothing changed in the items; part of the
   nodes may already have been added to the pool. */
int ostree_reserve(struct ostree *t, size_t n);

/* Insert (key, seq, ptr).  *rank (when not NULL) gets the number of items
   before it.  OSTREE_EXISTS when (key, seq) is present, OSTREE_NOMEM when a
   node was needed and could not be had (never after ostree_reserve(t, n)
   with size < n); in both cases nothing changed. */
int ostree_insert(struct ostree *t, uint64_t key, uint64_t seq, void *ptr,
                  size_t *rank);

/* Remove (key, seq): *ptr (when not NULL) gets its ptr and *rank (when not
   NULL) the number of items that were before it.  OSTREE_NOTFOUND when
   absent.  Never allocates; freed nodes go back to the tree's pool. */
int ostree_remove(struct ostree *t, uint64_t key, uint64_t seq, void **ptr,
                  size_t *rank);

/* Number of items strictly before (key, seq), present or not. */
size_t ostree_rank(const struct ostree *t, uint64_t key, uint64_t seq);

/* The first item into *out; false when the tree is empty. */
bool ostree_first(const struct ostree *t, struct ostree_item *out);

size_t ostree_size(const struct ostree *t);

/* Cursors: at the first item, or at the first item >= (key, seq).
   ostree_next copies the item at c into *out and moves c past it; false
   at the end. */
void ostree_cursor_first(const struct ostree *t, struct ostree_cursor *c);
void ostree_cursor_seek(const struct ostree *t, uint64_t key, uint64_t seq,
                        struct ostree_cursor *c);
bool ostree_next(struct ostree_cursor *c, struct ostree_item *out);

/* Build an EMPTY tree from n items in strictly increasing (key, seq)
   order, O(n): get(ctx, i, &item) is called once for each i in 0..n-1, in
   order.  Leaves are filled evenly; the pool is reserved for n items.
   OSTREE_NOMEM, or OSTREE_UNSORTED (items out of order or repeated), leave
   the tree empty; OSTREE_EXISTS when the tree is not empty. */
int ostree_load_sorted(struct ostree *t, size_t n,
                       void (*get)(void *ctx, size_t i,
                                   struct ostree_item *out),
                       void *ctx);

/* Check every invariant (order, separators, counts, fill, leaf links,
   pool accounting) in O(n).  Returns 0, or -1 with what is wrong in err.
   For tests and debugging. */
int ostree_check(const struct ostree *t, char *err, size_t errlen);

#endif
