/*
 * pheap.c — intrusive pairing heap with pre-merged inserts.
 *
 * A pairing heap is a heap-ordered multiway tree stored as "first child,
 * next sibling": every node points to its first child and to its next
 * sibling, and back to its previous sibling (or, for a first child, to its
 * parent), which is what lets us cut any node out in O(1) for remove and
 * re-key.  The one primitive is link(a, b): compare two roots, make the
 * later one the first child of the earlier one.  Everything is built on it:
 *
 *   insert    link the new node with the root          O(1)
 *   pop       take the root, then combine its children with the two-pass
 *             rule: link them in pairs left to right, then fold the pair
 *             winners right to left into one tree       O(log n) amortized
 *   rekey     earlier: cut the subtree, link it with the root
 *             later:   the node stays where it is (its parent is still
 *             earlier), only its children move out
 *   remove    cut the node, combine its children, link the result
 *
 * The stall.  A plain pairing heap that receives 10^6 inserts and no pop
 * hangs 10^6 children under the root, and the next pop pays for all of them
 * at once (hundreds of milliseconds measured here: every client of the
 * event loop waits).  So inserts that do not beat the root are not linked
 * with it; they go into a binary counter of trees instead, like the digits
 * of a binomial queue: slot[i] holds a tree built from about 2^i inserts,
 * and an insert carries (links equal slots) through the trailing one-bits
 * of the counter.  Each insert costs O(1) links amortized, and a pop
 * combines the root's children plus at most 64 slot trees, never n loose
 * nodes.  A new node that beats the root becomes the root directly, so
 * h->root is always the minimum of the whole heap and peek is O(1).
 *
 * After recovery the heap is built from sorted nodes as a chain (each node
 * the only child of the one before), which is a valid pairing heap whose
 * pops each cost one step.
 *
 * Rank counts the nodes before n by a depth-first walk that prunes every
 * subtree whose root is not before n.  Siblings are unordered, so it visits
 * every child of every node ahead of n: O(rank + their children), not
 * O(rank); fine for one order, too slow as a per-request position index.
 * Top-k walks best-first: a small binary heap of candidates (malloc'd),
 * starting from the roots; taking a node makes its children candidates.
 *
 * Order is (key, seq) with seq unique, so the order is total and equal keys
 * leave FIFO.  Every pass is iterative: the heap can be a chain of 10^7
 * nodes, and recursion would overflow the stack.  What this costs against
 * array heaps is measured in bench/README.md.
 */
#include "pheap.h"

#include <stdio.h>
#include <stdlib.h>

/* Roots of the main tree and of slot trees have prev == NULL and
   next == NULL; a detached node has all three links NULL. */

/* (key, seq) compared as one 128-bit integer: a compare and a
   subtract-with-borrow, no branch. */
__extension__ typedef unsigned __int128 pheap_u128;

static inline bool
before(const struct pheap_node *a, const struct pheap_node *b)
{
    pheap_u128 x = (pheap_u128)a->key << 64 | a->seq;
    pheap_u128 y = (pheap_u128)b->key << 64 | b->seq;
    return x < y;
}

static inline void
detach(struct pheap_node *n)
{
    n->child = NULL;
    n->next = NULL;
    n->prev = NULL;
}

/* Link two roots; the later becomes the first child of the earlier, which
   is returned.  The winner's own prev/next are left for the caller. */
static inline struct pheap_node *
link(struct pheap_node *a, struct pheap_node *b)
{
    /* Which one wins is a coin flip for the branch predictor: select with
       conditional moves instead of a branch. */
    bool swap = before(b, a);
    struct pheap_node *w = swap ? b : a;
    struct pheap_node *l = swap ? a : b;
    struct pheap_node *c = w->child;
    l->next = c;
    if (c != NULL)
        c->prev = l;
    l->prev = w;
    w->child = l;
    return w;
}

/* Two-pass combine of a sibling list linked through next.  Returns the
   single root (prev and next cleared), or NULL for an empty list. */
static struct pheap_node *
combine(struct pheap_node *first)
{
    if (first == NULL)
        return NULL;
    if (first->next == NULL) {
        first->prev = NULL;
        return first;
    }
    /* Pass 1: pair left to right; push each winner on a stack threaded
       through next, so the stack ends up in right-to-left order. */
    struct pheap_node *stack = NULL;
    struct pheap_node *a = first;
    while (a != NULL) {
        struct pheap_node *b = a->next;
        if (b == NULL) {
            a->next = stack;
            stack = a;
            break;
        }
        struct pheap_node *rest = b->next;
        struct pheap_node *w = link(a, b);
        w->next = stack;
        stack = w;
        a = rest;
    }
    /* Pass 2: fold right to left into one tree. */
    struct pheap_node *acc = stack;
    stack = stack->next;
    while (stack != NULL) {
        struct pheap_node *s = stack;
        stack = s->next;
        acc = link(acc, s);
    }
    acc->next = NULL;
    acc->prev = NULL;
    return acc;
}

/* Add tree t (a root, after h->root) to the binary counter at slot i,
   carrying through occupied slots. */
static inline void
slot_add(struct pheap *h, struct pheap_node *t, unsigned i)
{
    while (h->slot_bits & (UINT64_C(1) << i)) {
        t = link(h->slot[i], t);
        h->slot[i] = NULL;
        h->slot_bits &= ~(UINT64_C(1) << i);
        i++;
    }
    t->next = NULL;
    t->prev = NULL;
    h->slot[i] = t;
    h->slot_bits |= UINT64_C(1) << i;
}

/* Prepend every slot tree to list (a sibling list) and empty the counter. */
static inline struct pheap_node *
slot_flush(struct pheap *h, struct pheap_node *list)
{
    uint64_t bits = h->slot_bits;
    while (bits != 0) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        struct pheap_node *t = h->slot[i];
        h->slot[i] = NULL;
        t->next = list;
        list = t;
    }
    h->slot_bits = 0;
    return list;
}

/* Index of the slot whose tree root is n; n must be a slot root. */
static unsigned
slot_find(const struct pheap *h, const struct pheap_node *n)
{
    uint64_t bits = h->slot_bits;
    while (bits != 0) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        if (h->slot[i] == n)
            return i;
    }
    fprintf(stderr, "pheap: node %p (seq %llu) is not in this heap\n",
            (const void *)n, (unsigned long long)n->seq);
    abort();
}

/* Replace the tree of slot i by t (which may be NULL). */
static inline void
slot_set(struct pheap *h, unsigned i, struct pheap_node *t)
{
    h->slot[i] = t;
    if (t == NULL)
        h->slot_bits &= ~(UINT64_C(1) << i);
}

/* Cut non-root n (with its subtree) out of its sibling list. */
static inline void
cut(struct pheap_node *n)
{
    struct pheap_node *p = n->prev;
    if (p->child == n)
        p->child = n->next;
    else
        p->next = n->next;
    if (n->next != NULL)
        n->next->prev = p;
    n->next = NULL;
    n->prev = NULL;
}

void
pheap_init(struct pheap *h)
{
    h->root = NULL;
    h->size = 0;
    for (size_t i = 0; i < 64; i++)
        h->slot[i] = NULL;
    h->slot_bits = 0;
}

void
pheap_insert(struct pheap *h, struct pheap_node *n)
{
    struct pheap_node *r = h->root;
    n->child = NULL;
    n->next = NULL;
    n->prev = NULL;
    h->size++;
    if (r == NULL) {
        h->root = n;
    } else if (before(n, r)) {
        /* The old root and the slot trees all come after n. */
        n->child = r;
        r->prev = n;
        h->root = n;
    } else {
        slot_add(h, n, 0);
    }
}

struct pheap_node *
pheap_peek(struct pheap *h)
{
    return h->root;
}

struct pheap_node *
pheap_pop(struct pheap *h)
{
    struct pheap_node *r = h->root;
    if (r == NULL)
        return NULL;
    struct pheap_node *list = r->child;
    if (h->slot_bits != 0)
        list = slot_flush(h, list);
    h->root = combine(list);
    h->size--;
    detach(r);
    return r;
}

void
pheap_remove(struct pheap *h, struct pheap_node *n)
{
    if (n == h->root) {
        pheap_pop(h);
        return;
    }
    h->size--;
    if (n->prev == NULL) {
        unsigned i = slot_find(h, n);
        slot_set(h, i, combine(n->child));
    } else {
        cut(n);
        struct pheap_node *t = combine(n->child);
        if (t != NULL)
            slot_add(h, t, 0);
    }
    detach(n);
}

void
pheap_rekey(struct pheap *h, struct pheap_node *n, uint64_t key)
{
    struct pheap_node *r = h->root;
    if (key < n->key) {
        n->key = key;
        if (n == r)
            return;
        if (n->prev == NULL) {
            /* A slot root: it stays unless it now beats the root. */
            if (!before(n, r))
                return;
            slot_set(h, slot_find(h, n), NULL);
        } else {
            cut(n);
            if (!before(n, r)) {
                slot_add(h, n, 0);
                return;
            }
        }
        /* n beats the root: it becomes the root, the old root its child. */
        r->next = n->child;
        if (n->child != NULL)
            n->child->prev = r;
        r->prev = n;
        n->child = r;
        h->root = n;
    } else if (key > n->key) {
        if (n == r) {
            pheap_pop(h);
            n->key = key;
            pheap_insert(h, n);
            return;
        }
        /* n's parent is earlier than n's old key, hence than the new one:
           n may stay where it is.  Only its children can now be out of
           order, so they leave as one combined tree. */
        n->key = key;
        struct pheap_node *t = combine(n->child);
        n->child = NULL;
        if (t != NULL)
            slot_add(h, t, 0);
    }
}

void
pheap_meld(struct pheap *into, struct pheap *from)
{
    if (from->root == NULL || into == from)
        return;
    if (into->root == NULL) {
        *into = *from;
        pheap_init(from);
        return;
    }
    struct pheap_node *r = link(into->root, from->root);
    r->next = NULL;
    r->prev = NULL;
    into->root = r;
    uint64_t bits = from->slot_bits;
    while (bits != 0) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        slot_add(into, from->slot[i], i);
    }
    into->size += from->size;
    pheap_init(from);
}

/* Parent of a non-root node: walk back to the first sibling, whose prev is
   the parent.  A previous sibling never has us as its first child. */
static inline const struct pheap_node *
parent_of(const struct pheap_node *x)
{
    while (x->prev->child != x)
        x = x->prev;
    return x->prev;
}

/* Count the nodes of tree t that come before n.  A node not before n roots
   a subtree that is entirely not before n, so it is pruned.  Depth-first
   through the links.  The parents of the current path are remembered in a
   small ring; only on paths deeper than the ring (a chain from
   pheap_build_sorted) does the walk find a parent again by going back
   along the siblings, which it has all visited already. */
#define RANK_RING 64

static size_t
rank_tree(const struct pheap_node *t, const struct pheap_node *n)
{
    if (t == NULL || !before(t, n))
        return 0;
    const struct pheap_node *ring[RANK_RING];
    size_t depth = 0; /* parents on the path from t to x */
    size_t known = 0; /* how many of them, the deepest, the ring holds */
    size_t count = 0;
    const struct pheap_node *x = t;
    for (;;) {
        if (before(x, n)) {
            count++;
            if (x->child != NULL) {
                ring[depth % RANK_RING] = x;
                depth++;
                known += known < RANK_RING;
                x = x->child;
                continue;
            }
        }
        while (x->next == NULL) {
            if (depth == 0)
                return count;
            depth--;
            if (known > 0) {
                known--;
                x = ring[depth % RANK_RING];
            } else {
                x = parent_of(x);
            }
        }
        x = x->next;
    }
}

size_t
pheap_rank(struct pheap *h, const struct pheap_node *n)
{
    size_t count = rank_tree(h->root, n);
    uint64_t bits = h->slot_bits;
    while (bits != 0) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        count += rank_tree(h->slot[i], n);
    }
    return count;
}

/* Top-k scratch: a binary min-heap of candidate nodes.  The next node in
   order is always a candidate: every node's parent comes before it, so it
   becomes a candidate as soon as its parent is taken. */
struct cand {
    struct pheap_node **a;
    size_t len;
    size_t cap;
};

static bool
cand_push(struct cand *c, struct pheap_node *x)
{
    if (c->len == c->cap) {
        size_t cap = c->cap * 2;
        struct pheap_node **a = realloc(c->a, cap * sizeof(*a));
        if (a == NULL)
            return false;
        c->a = a;
        c->cap = cap;
    }
    size_t i = c->len++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(x, c->a[p]))
            break;
        c->a[i] = c->a[p];
        i = p;
    }
    c->a[i] = x;
    return true;
}

static struct pheap_node *
cand_pop(struct cand *c)
{
    struct pheap_node *top = c->a[0];
    struct pheap_node *x = c->a[--c->len];
    size_t len = c->len;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= len)
            break;
        if (l + 1 < len && before(c->a[l + 1], c->a[l]))
            l++;
        if (!before(c->a[l], x))
            break;
        c->a[i] = c->a[l];
        i = l;
    }
    if (len > 0)
        c->a[i] = x;
    return top;
}

size_t
pheap_topk(struct pheap *h, size_t k, struct pheap_node **out)
{
    if (k > h->size)
        k = h->size;
    if (k == 0)
        return 0;
    if (k == 1) {
        out[0] = h->root;
        return 1;
    }
    struct cand c = {.len = 0, .cap = 64 + k};
    c.a = malloc(c.cap * sizeof(*c.a));
    if (c.a == NULL)
        return (size_t)-1;
    size_t got = 0;
    bool ok = cand_push(&c, h->root);
    uint64_t bits = h->slot_bits;
    while (ok && bits != 0) {
        unsigned i = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        ok = cand_push(&c, h->slot[i]);
    }
    while (ok && got < k) {
        struct pheap_node *x = cand_pop(&c);
        out[got++] = x;
        if (got == k)
            break;
        for (struct pheap_node *ch = x->child; ok && ch != NULL; ch = ch->next)
            ok = cand_push(&c, ch);
    }
    free(c.a);
    return ok ? got : (size_t)-1;
}

void
pheap_build_sorted(struct pheap *h, struct pheap_node **sorted, size_t n)
{
    if (h->size != 0) {
        fprintf(stderr, "pheap_build_sorted: heap is not empty (%zu)\n",
                h->size);
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        struct pheap_node *x = sorted[i];
        if (i > 0 && !before(sorted[i - 1], x)) {
            fprintf(stderr,
                    "pheap_build_sorted: node %zu (key %llu seq %llu) "
                    "is not after node %zu\n",
                    i, (unsigned long long)x->key, (unsigned long long)x->seq,
                    i - 1);
            abort();
        }
        x->prev = i > 0 ? sorted[i - 1] : NULL;
        x->next = NULL;
        x->child = i + 1 < n ? sorted[i + 1] : NULL;
    }
    h->root = n > 0 ? sorted[0] : NULL;
    h->size = n;
}

/* Depth first through one tree: down by child, along by next, and up by
   walking back to a first child, whose prev is its parent. */
static void
each_tree(struct pheap_node *t, void (*fn)(void *ctx, struct pheap_node *n),
          void *ctx)
{
    struct pheap_node *n = t;
    for (;;) {
        fn(ctx, n);
        if (n->child) {
            n = n->child;
            continue;
        }
        for (;;) {
            if (n == t)
                return;
            if (n->next) {
                n = n->next;
                break;
            }
            while (n->prev->child != n)
                n = n->prev;
            n = n->prev;
        }
    }
}

void
pheap_each(struct pheap *h, void (*fn)(void *ctx, struct pheap_node *n),
           void *ctx)
{
    if (h->root)
        each_tree(h->root, fn, ctx);
    for (unsigned i = 0; i < 64; i++)
        if (h->slot_bits & (UINT64_C(1) << i))
            each_tree(h->slot[i], fn, ctx);
}
