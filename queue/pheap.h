/*
 * pheap — an intrusive pairing heap of nodes keyed by (key, seq).
 *
 * The node lives inside the caller's object (see container_of below); the
 * heap never allocates a node.  Order is strict and total: smaller key first,
 * equal keys by smaller seq (arrival), so equal keys come out FIFO.
 *
 * Single-threaded; no I/O, no clock.  Every operation that needs scratch
 * memory (top-k) reports allocation failure through its return value.
 */
#ifndef DISPATCHD_PHEAP_H
#define DISPATCHD_PHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pheap_node {
    struct pheap_node *child; /* first child, or NULL */
    struct pheap_node *next;  /* next sibling, or NULL */
    struct pheap_node *prev;  /* previous sibling; parent if first child;
                                 NULL for a root (and for a detached node) */
    uint64_t key;             /* primary key, smaller = earlier */
    uint64_t seq;             /* tie-break, smaller = earlier; unique */
};

struct pheap {
    struct pheap_node *root; /* the minimum, or NULL when empty */
    size_t size;             /* number of nodes in the heap */
    /* Implementation state for pre-merged inserts (binary-counter slots);
       owned by pheap.c, never touched by callers.  Every slot tree comes
       after root, so root stays the minimum of the whole heap. */
    struct pheap_node *slot[64];
    uint64_t slot_bits; /* bit i set <=> slot[i] holds a tree */
};

#define pheap_container_of(ptr, type, member)                                  \
    ((type *)((char *)(ptr)-offsetof(type, member)))

static inline bool
pheap_before(const struct pheap_node *a, const struct pheap_node *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

void pheap_init(struct pheap *h);
static inline size_t
pheap_size(const struct pheap *h)
{
    return h->size;
}

/* Insert a detached node whose key and seq are set.  O(1) amortized. */
void pheap_insert(struct pheap *h, struct pheap_node *n);

/* The first node in order, or NULL.  Does not change the heap's contents. */
struct pheap_node *pheap_peek(struct pheap *h);

/* Remove and return the first node, or NULL when empty. */
struct pheap_node *pheap_pop(struct pheap *h);

/* Remove a node that is in h.  The node is detached afterwards. */
void pheap_remove(struct pheap *h, struct pheap_node *n);

/* Change the key (and keep seq) of a node in h, either direction. */
void pheap_rekey(struct pheap *h, struct pheap_node *n, uint64_t key);

/* Move every node of from into into; from is empty afterwards. */
void pheap_meld(struct pheap *into, struct pheap *from);

/* How many nodes of h come strictly before n (n must be in h). */
size_t pheap_rank(struct pheap *h, const struct pheap_node *n);

/* Fill out[0..] with the first min(k, size) nodes in order without changing
   the heap.  Returns how many were written, or (size_t)-1 when scratch
   memory could not be allocated. */
size_t pheap_topk(struct pheap *h, size_t k, struct pheap_node **out);

/* Build h (which must be empty) from n nodes already sorted in heap order,
   as a chain whose pops cost O(1): used after recovery. */
void pheap_build_sorted(struct pheap *h, struct pheap_node **sorted, size_t n);

/* Call fn for every node of h, in no set order (a walk of the main tree
   and the slot trees, iterative, no memory).  fn must not change h. */
void pheap_each(struct pheap *h, void (*fn)(void *ctx, struct pheap_node *n),
                void *ctx);

#endif
