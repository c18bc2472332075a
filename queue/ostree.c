/*
 * ostree.c — an order-statistic B+tree.
 *
 * Why a B+tree.  The pick queue's position index used to be a treap whose
 * nodes lived inside the orders: every step of a search read a different
 * 640-byte order, a cache miss and often a TLB miss, and a search takes
 * ~2 log2 n steps (40 at 10^6 orders).  Here a node is a flat array of up
 * to 64 items with the keys inline, so a search reads one node per level
 * and there are only 3 or 4 levels at 10^6 items; the top levels stay in
 * cache.  The orders are never touched.
 *
 * Shape.  Leaves hold the items (key[], seq[], ptr[] as three arrays, so a
 * binary search walks only key[]), sorted, and link to the next leaf for
 * iteration.  Inner nodes hold children; key/seq[i] (i >= 1) is a lower
 * bound of child i's items and greater than every item of child i - 1
 * (key/seq[0] is not used for searching).  Every leaf is at the same depth.
 * Every node but the root is at least half full (LEAF_MIN items, INNER_MIN
 * children); an inner root has at least 2 children.
 *
 * Rank.  Each inner node keeps, per child, the number of items below it
 * (cnt[i]).  The rank of x is, on the way down, the sum of the counts of
 * the children left of the one taken, plus x's index in its leaf.  Insert
 * and remove fix the counts on their path, which they have just read.
 *
 * Insert goes down recording the path, puts the item in its leaf and goes
 * back up: a full leaf first hands items to its left sibling when that
 * has room (leaf_spill_left); otherwise, as a full inner node, it is
 * split in two halves and the new right half is inserted into the parent,
 * possibly splitting it, up to a new root.
 * Remove takes the item out of its leaf and goes back up: a node that
 * fell below half full borrows one entry from a sibling that has more
 * than half, or else is merged with a sibling (together they fit), which
 * removes an entry from the parent, possibly making it underfull in turn;
 * an inner root left with one child is replaced by that child.
 *
 * Memory.  Leaves and inner nodes come from two pools (free lists carved
 * from malloc'd chunks, never one malloc per node).  Because every
 * non-root node is half full, a tree of n items never has more than
 * max(1, n / LEAF_MIN) leaves, and the inner levels above are bounded the
 * same way (nodes_for()).  ostree_reserve(t, n) grows the pools to that
 * bound, so that no insert can fail while the tree holds fewer than n
 * items: the caller reserves first and refuses a command before changing
 * anything.  Nodes freed by merges go back to the pool, which never
 * shrinks before ostree_destroy.  A reserve only allocates: a node is
 * first written when it is taken, so the pages of a bound the tree never
 * reaches (a tree of random inserts is about 70% full, not half) are
 * never made resident.
 *
 * Bulk load.  n sorted items are spread evenly over ceil(n / LEAF_CAP)
 * leaves (each then holds at least half), written in one pass that also
 * checks the order; a second pass over the leaf links builds the inner
 * levels with the same even spread, one open node per level: O(n), no
 * scratch memory, and nothing to undo once the leaves are written.
 */
#include "ostree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAF_CAP 64
#define LEAF_MIN (LEAF_CAP / 2)
#define INNER_CAP 64
#define INNER_MIN (INNER_CAP / 2)
#define MAX_HEIGHT 24 /* 32^24 items: more than any memory holds */
#define CHUNK_MIN 8   /* nodes: the least a pool grows by */

struct leaf {
    struct leaf *next; /* the leaf with the next items, or NULL */
    unsigned n;        /* items */
    uint64_t key[LEAF_CAP];
    uint64_t seq[LEAF_CAP];
    void *ptr[LEAF_CAP];
};

struct inner {
    unsigned n;              /* children */
    uint64_t key[INNER_CAP]; /* [i]: lower bound of child i (i >= 1) */
    uint64_t seq[INNER_CAP];
    size_t cnt[INNER_CAP]; /* items below child i */
    void *child[INNER_CAP];
};

/* A chunk of nodes: this header, then the nodes.  The nodes from
   `fresh` on have never been handed out (nor written): they stay off the
   free list, so the pages a reserve sets aside cost no memory until a
   node on them is taken. */
struct chunk {
    struct chunk *next;
    size_t nodes;
    size_t fresh; /* nodes[0..fresh) have been taken at least once */
    size_t size;  /* bytes of a node */
};

/* ---- allocation ------------------------------------------------------- */

static void *
std_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    return malloc(bytes);
}

static void
std_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* Add nodes of `size` bytes to p until it holds `want` in all. */
static int
pool_grow(struct ostree *t, struct ostree_pool *p, size_t size, size_t want)
{
    if (p->total >= want)
        return OSTREE_OK;
    size_t k = want - p->total;
    if (k < p->total / 8)
        k = p->total / 8; /* geometric: a growing tree reserves rarely */
    if (k < CHUNK_MIN)
        k = CHUNK_MIN;
    if (k > (SIZE_MAX - sizeof(struct chunk)) / size)
        return OSTREE_NOMEM;
    struct chunk *c = t->a.alloc(t->a.ctx, sizeof(*c) + k * size);
    if (c == NULL)
        return OSTREE_NOMEM;
    c->next = p->chunks;
    c->nodes = k;
    c->fresh = 0;
    c->size = size;
    p->chunks = c;
    p->nfree += k;
    p->total += k;
    return OSTREE_OK;
}

static void *
pool_take(struct ostree_pool *p)
{
    void **node = p->free;
    if (node != NULL) {
        p->free = *node;
        p->nfree--;
        return node;
    }
    /* The free list is empty: the first fresh node of a chunk, in
       address order (a bulk load then lays the leaves out in key order).
       Chunks fill newest first; a tree has few chunks (they grow
       geometrically). */
    for (struct chunk *c = p->chunks; c != NULL; c = c->next) {
        if (c->fresh < c->nodes) {
            p->nfree--;
            return (char *)(c + 1) + c->fresh++ * c->size;
        }
    }
    /* Callers reserve first: an empty pool here is a broken invariant,
       and carrying on would corrupt the tree. */
    fprintf(stderr, "ostree: node pool exhausted after reserve\n");
    abort();
}

static void
pool_give(struct ostree_pool *p, void *node)
{
    *(void **)node = p->free;
    p->free = node;
    p->nfree++;
}

static void
pool_destroy(struct ostree *t, struct ostree_pool *p)
{
    struct chunk *c = p->chunks;
    while (c != NULL) {
        struct chunk *next = c->next;
        t->a.free(t->a.ctx, c);
        c = next;
    }
    memset(p, 0, sizeof(*p));
}

/* The most leaves and inner nodes a tree of n items can have. */
static size_t
leaves_for(size_t n)
{
    if (n == 0)
        return 0;
    return n / LEAF_MIN > 0 ? n / LEAF_MIN : 1;
}

static size_t
inners_for(size_t leaves)
{
    size_t total = 0;
    for (size_t m = leaves; m > 1;) {
        m = m / INNER_MIN > 0 ? m / INNER_MIN : 1;
        total += m;
    }
    return total;
}

void
ostree_init(struct ostree *t, const struct ostree_alloc *a)
{
    memset(t, 0, sizeof(*t));
    if (a != NULL) {
        t->a = *a;
    } else {
        t->a.alloc = std_alloc;
        t->a.free = std_free;
    }
}

void
ostree_destroy(struct ostree *t)
{
    struct ostree_alloc a = t->a;
    pool_destroy(t, &t->leaves);
    pool_destroy(t, &t->inners);
    memset(t, 0, sizeof(*t));
    t->a = a;
}

int
ostree_reserve(struct ostree *t, size_t n)
{
    size_t nl = leaves_for(n);
    if (pool_grow(t, &t->leaves, sizeof(struct leaf), nl) != OSTREE_OK)
        return OSTREE_NOMEM;
    return pool_grow(t, &t->inners, sizeof(struct inner), inners_for(nl));
}

size_t
ostree_size(const struct ostree *t)
{
    return t->size;
}

/* ---- searching -------------------------------------------------------- */

static inline bool
lt(uint64_t ak, uint64_t as, uint64_t bk, uint64_t bs)
{
    return ak < bk || (ak == bk && as < bs);
}

/* Index of the first item of l that is >= (k, s); l->n when none. */
static unsigned
leaf_lower(const struct leaf *l, uint64_t k, uint64_t s)
{
    unsigned lo = 0, hi = l->n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (lt(l->key[mid], l->seq[mid], k, s))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The child of in whose range holds (k, s): the last i with i == 0 or
   key/seq[i] <= (k, s). */
static unsigned
inner_child(const struct inner *in, uint64_t k, uint64_t s)
{
    unsigned lo = 1, hi = in->n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (lt(k, s, in->key[mid], in->seq[mid]))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo - 1;
}

static size_t
sum_before(const struct inner *in, unsigned i)
{
    size_t r = 0;
    for (unsigned j = 0; j < i; j++)
        r += in->cnt[j];
    return r;
}

struct path {
    struct inner *node[MAX_HEIGHT];
    unsigned idx[MAX_HEIGHT];
};

/* Go down to the leaf for (k, s), recording the path (node[0] is the
   root) and the items left of it in *rank. */
static struct leaf *
descend(const struct ostree *t, uint64_t k, uint64_t s, struct path *p,
        size_t *rank)
{
    void *node = t->root;
    size_t r = 0;
    for (unsigned d = 0; d < t->height; d++) {
        struct inner *in = node;
        unsigned i = inner_child(in, k, s);
        r += sum_before(in, i);
        if (p != NULL) {
            p->node[d] = in;
            p->idx[d] = i;
        }
        node = in->child[i];
    }
    *rank = r;
    return node;
}

size_t
ostree_rank(const struct ostree *t, uint64_t key, uint64_t seq)
{
    size_t r;
    if (t->root == NULL)
        return 0;
    struct leaf *l = descend(t, key, seq, NULL, &r);
    return r + leaf_lower(l, key, seq);
}

static struct leaf *
leftmost(const struct ostree *t)
{
    void *node = t->root;
    for (unsigned d = 0; node != NULL && d < t->height; d++)
        node = ((struct inner *)node)->child[0];
    return node;
}

bool
ostree_first(const struct ostree *t, struct ostree_item *out)
{
    struct leaf *l = leftmost(t);
    if (l == NULL)
        return false;
    out->key = l->key[0];
    out->seq = l->seq[0];
    out->ptr = l->ptr[0];
    return true;
}

void
ostree_cursor_first(const struct ostree *t, struct ostree_cursor *c)
{
    c->leaf = leftmost(t);
    c->idx = 0;
}

void
ostree_cursor_seek(const struct ostree *t, uint64_t key, uint64_t seq,
                   struct ostree_cursor *c)
{
    size_t r;
    c->leaf = NULL;
    c->idx = 0;
    if (t->root == NULL)
        return;
    struct leaf *l = descend(t, key, seq, NULL, &r);
    c->leaf = l;
    c->idx = leaf_lower(l, key, seq);
}

bool
ostree_next(struct ostree_cursor *c, struct ostree_item *out)
{
    struct leaf *l = c->leaf;
    while (l != NULL && c->idx >= l->n) {
        l = l->next;
        c->idx = 0;
    }
    c->leaf = l;
    if (l == NULL)
        return false;
    out->key = l->key[c->idx];
    out->seq = l->seq[c->idx];
    out->ptr = l->ptr[c->idx];
    c->idx++;
    return true;
}

/* ---- insert ----------------------------------------------------------- */

static void
leaf_put(struct leaf *l, unsigned pos, uint64_t k, uint64_t s, void *ptr)
{
    unsigned m = l->n - pos;
    memmove(&l->key[pos + 1], &l->key[pos], m * sizeof(l->key[0]));
    memmove(&l->seq[pos + 1], &l->seq[pos], m * sizeof(l->seq[0]));
    memmove(&l->ptr[pos + 1], &l->ptr[pos], m * sizeof(l->ptr[0]));
    l->key[pos] = k;
    l->seq[pos] = s;
    l->ptr[pos] = ptr;
    l->n++;
}

/* Put child c (lower bound k, s; cnt items) at index pos of in. */
static void
inner_put(struct inner *in, unsigned pos, uint64_t k, uint64_t s, size_t cnt,
          void *c)
{
    unsigned m = in->n - pos;
    memmove(&in->key[pos + 1], &in->key[pos], m * sizeof(in->key[0]));
    memmove(&in->seq[pos + 1], &in->seq[pos], m * sizeof(in->seq[0]));
    memmove(&in->cnt[pos + 1], &in->cnt[pos], m * sizeof(in->cnt[0]));
    memmove(&in->child[pos + 1], &in->child[pos], m * sizeof(in->child[0]));
    in->key[pos] = k;
    in->seq[pos] = s;
    in->cnt[pos] = cnt;
    in->child[pos] = c;
    in->n++;
}

/* Move entries [from, n) of src to the front of the empty dst. */
static void
leaf_move_tail(struct leaf *dst, struct leaf *src, unsigned from)
{
    unsigned m = src->n - from;
    memcpy(dst->key, &src->key[from], m * sizeof(src->key[0]));
    memcpy(dst->seq, &src->seq[from], m * sizeof(src->seq[0]));
    memcpy(dst->ptr, &src->ptr[from], m * sizeof(src->ptr[0]));
    dst->n = m;
    src->n = from;
}

static void
inner_move_tail(struct inner *dst, struct inner *src, unsigned from)
{
    unsigned m = src->n - from;
    memcpy(dst->key, &src->key[from], m * sizeof(src->key[0]));
    memcpy(dst->seq, &src->seq[from], m * sizeof(src->seq[0]));
    memcpy(dst->cnt, &src->cnt[from], m * sizeof(src->cnt[0]));
    memcpy(dst->child, &src->child[from], m * sizeof(src->child[0]));
    dst->n = m;
    src->n = from;
}

/* Full leaf l, child idx of parent, takes (k, s, ptr) at pos: instead of
   a split, hand its first items to its left sibling when that has room,
   so the sibling ends up full.  Orders arrive mostly in deadline order,
   so most inserts land at the end of their class's run of leaves: with
   splits alone, every leaf left behind would stay half full and the
   index would take twice the memory.  Both leaves stay at least half
   full (l keeps more than LEAF_MIN).  Sets the parent's separator and
   both counts; false (nothing changed) when there is no room. */
static bool
leaf_spill_left(struct inner *parent, unsigned idx, struct leaf *l,
                unsigned pos, uint64_t k, uint64_t s, void *ptr)
{
    if (idx == 0)
        return false;
    struct leaf *left = parent->child[idx - 1];
    unsigned room = LEAF_CAP - left->n;
    if (room == 0)
        return false;
    unsigned m = pos >= room ? room : pos; /* items moved */
    memcpy(&left->key[left->n], l->key, m * sizeof(l->key[0]));
    memcpy(&left->seq[left->n], l->seq, m * sizeof(l->seq[0]));
    memcpy(&left->ptr[left->n], l->ptr, m * sizeof(l->ptr[0]));
    left->n += m;
    l->n -= m;
    memmove(l->key, &l->key[m], l->n * sizeof(l->key[0]));
    memmove(l->seq, &l->seq[m], l->n * sizeof(l->seq[0]));
    memmove(l->ptr, &l->ptr[m], l->n * sizeof(l->ptr[0]));
    if (pos >= room)
        leaf_put(l, pos - m, k, s, ptr);
    else /* it comes right after the moved items */
        leaf_put(left, left->n, k, s, ptr);
    parent->key[idx] = l->key[0];
    parent->seq[idx] = l->seq[0];
    parent->cnt[idx - 1] = left->n;
    parent->cnt[idx] = l->n;
    return true;
}

static size_t
inner_total(const struct inner *in)
{
    return sum_before(in, in->n);
}

int
ostree_insert(struct ostree *t, uint64_t key, uint64_t seq, void *ptr,
              size_t *rank)
{
    /* The most one insert can take: a leaf, and an inner node per level
       plus a new root.  Short of that, reserve for one more item. */
    if ((t->leaves.nfree < 1 || t->inners.nfree < t->height + 1) &&
        ostree_reserve(t, t->size + 1) != OSTREE_OK)
        return OSTREE_NOMEM;
    if (t->root == NULL) {
        struct leaf *l = pool_take(&t->leaves);
        l->next = NULL;
        l->n = 0;
        leaf_put(l, 0, key, seq, ptr);
        t->root = l;
        t->height = 0;
        t->size = 1;
        if (rank != NULL)
            *rank = 0;
        return OSTREE_OK;
    }

    struct path p;
    size_t r;
    struct leaf *l = descend(t, key, seq, &p, &r);
    unsigned pos = leaf_lower(l, key, seq);
    if (pos < l->n && l->key[pos] == key && l->seq[pos] == seq)
        return OSTREE_EXISTS;
    if (rank != NULL)
        *rank = r + pos;

    /* Pending split: new right sibling `right` (lower bound sk, ss) of the
       node at the level below; sizes of both halves. */
    void *right = NULL;
    uint64_t sk = 0, ss = 0;
    size_t lsize = 0, rsize = 0;
    unsigned levels = t->height; /* levels whose counts the loop fixes */
    if (l->n < LEAF_CAP) {
        leaf_put(l, pos, key, seq, ptr);
    } else if (t->height > 0 &&
               leaf_spill_left(p.node[t->height - 1], p.idx[t->height - 1], l,
                               pos, key, seq, ptr)) {
        levels--; /* the parent's counts are set */
    } else {
        struct leaf *nl = pool_take(&t->leaves);
        leaf_move_tail(nl, l, LEAF_MIN);
        nl->next = l->next;
        l->next = nl;
        if (pos <= LEAF_MIN)
            leaf_put(l, pos, key, seq, ptr);
        else
            leaf_put(nl, pos - LEAF_MIN, key, seq, ptr);
        right = nl;
        sk = nl->key[0];
        ss = nl->seq[0];
        lsize = l->n;
        rsize = nl->n;
    }

    for (unsigned d = levels; d-- > 0;) {
        struct inner *in = p.node[d];
        unsigned i = p.idx[d];
        if (right == NULL) {
            in->cnt[i]++;
            continue;
        }
        if (in->n < INNER_CAP) {
            in->cnt[i] = lsize;
            inner_put(in, i + 1, sk, ss, rsize, right);
            right = NULL;
            continue;
        }
        struct inner *ni = pool_take(&t->inners);
        inner_move_tail(ni, in, INNER_MIN);
        if (i + 1 <= INNER_MIN) {
            in->cnt[i] = lsize;
            inner_put(in, i + 1, sk, ss, rsize, right);
        } else {
            ni->cnt[i - INNER_MIN] = lsize;
            inner_put(ni, i + 1 - INNER_MIN, sk, ss, rsize, right);
        }
        right = ni;
        sk = ni->key[0];
        ss = ni->seq[0];
        lsize = inner_total(in);
        rsize = inner_total(ni);
    }
    if (right != NULL) {
        struct inner *root = pool_take(&t->inners);
        root->n = 0;
        inner_put(root, 0, 0, 0, lsize, t->root);
        inner_put(root, 1, sk, ss, rsize, right);
        t->root = root;
        t->height++;
    }
    t->size++;
    return OSTREE_OK;
}

/* ---- remove ----------------------------------------------------------- */

static void
leaf_cut(struct leaf *l, unsigned pos)
{
    unsigned m = l->n - pos - 1;
    memmove(&l->key[pos], &l->key[pos + 1], m * sizeof(l->key[0]));
    memmove(&l->seq[pos], &l->seq[pos + 1], m * sizeof(l->seq[0]));
    memmove(&l->ptr[pos], &l->ptr[pos + 1], m * sizeof(l->ptr[0]));
    l->n--;
}

static void
inner_cut(struct inner *in, unsigned pos)
{
    unsigned m = in->n - pos - 1;
    memmove(&in->key[pos], &in->key[pos + 1], m * sizeof(in->key[0]));
    memmove(&in->seq[pos], &in->seq[pos + 1], m * sizeof(in->seq[0]));
    memmove(&in->cnt[pos], &in->cnt[pos + 1], m * sizeof(in->cnt[0]));
    memmove(&in->child[pos], &in->child[pos + 1], m * sizeof(in->child[0]));
    in->n--;
}

/* Leaf child i of p is underfull: borrow from a sibling or merge.
   Returns true when p lost a child. */
static bool
fix_leaf(struct ostree *t, struct inner *p, unsigned i)
{
    struct leaf *c = p->child[i];
    struct leaf *ls = i > 0 ? p->child[i - 1] : NULL;
    struct leaf *rs = i + 1 < p->n ? p->child[i + 1] : NULL;
    if (ls != NULL && ls->n > LEAF_MIN) {
        unsigned j = ls->n - 1;
        leaf_put(c, 0, ls->key[j], ls->seq[j], ls->ptr[j]);
        ls->n--;
        p->key[i] = c->key[0];
        p->seq[i] = c->seq[0];
        p->cnt[i - 1]--;
        p->cnt[i]++;
        return false;
    }
    if (rs != NULL && rs->n > LEAF_MIN) {
        leaf_put(c, c->n, rs->key[0], rs->seq[0], rs->ptr[0]);
        leaf_cut(rs, 0);
        p->key[i + 1] = rs->key[0];
        p->seq[i + 1] = rs->seq[0];
        p->cnt[i]++;
        p->cnt[i + 1]--;
        return false;
    }
    /* Merge the pair (j, j + 1) into j: together < LEAF_CAP items. */
    unsigned j = ls != NULL ? i - 1 : i;
    struct leaf *a = p->child[j], *b = p->child[j + 1];
    memcpy(&a->key[a->n], b->key, b->n * sizeof(b->key[0]));
    memcpy(&a->seq[a->n], b->seq, b->n * sizeof(b->seq[0]));
    memcpy(&a->ptr[a->n], b->ptr, b->n * sizeof(b->ptr[0]));
    a->n += b->n;
    a->next = b->next;
    p->cnt[j] += p->cnt[j + 1];
    inner_cut(p, j + 1);
    pool_give(&t->leaves, b);
    return true;
}

/* The same for an inner child. */
static bool
fix_inner(struct ostree *t, struct inner *p, unsigned i)
{
    struct inner *c = p->child[i];
    struct inner *ls = i > 0 ? p->child[i - 1] : NULL;
    struct inner *rs = i + 1 < p->n ? p->child[i + 1] : NULL;
    if (ls != NULL && ls->n > INNER_MIN) {
        unsigned j = ls->n - 1;
        size_t m = ls->cnt[j];
        /* c's old first child now has a left neighbour: its lower bound
           is c's, kept by the parent. */
        c->key[0] = p->key[i];
        c->seq[0] = p->seq[i];
        inner_put(c, 0, ls->key[j], ls->seq[j], m, ls->child[j]);
        ls->n--;
        p->key[i] = c->key[0];
        p->seq[i] = c->seq[0];
        p->cnt[i - 1] -= m;
        p->cnt[i] += m;
        return false;
    }
    if (rs != NULL && rs->n > INNER_MIN) {
        size_t m = rs->cnt[0];
        inner_put(c, c->n, p->key[i + 1], p->seq[i + 1], m, rs->child[0]);
        inner_cut(rs, 0);
        p->key[i + 1] = rs->key[0];
        p->seq[i + 1] = rs->seq[0];
        p->cnt[i] += m;
        p->cnt[i + 1] -= m;
        return false;
    }
    unsigned j = ls != NULL ? i - 1 : i;
    struct inner *a = p->child[j], *b = p->child[j + 1];
    b->key[0] = p->key[j + 1];
    b->seq[0] = p->seq[j + 1];
    memcpy(&a->key[a->n], b->key, b->n * sizeof(b->key[0]));
    memcpy(&a->seq[a->n], b->seq, b->n * sizeof(b->seq[0]));
    memcpy(&a->cnt[a->n], b->cnt, b->n * sizeof(b->cnt[0]));
    memcpy(&a->child[a->n], b->child, b->n * sizeof(b->child[0]));
    a->n += b->n;
    p->cnt[j] += p->cnt[j + 1];
    inner_cut(p, j + 1);
    pool_give(&t->inners, b);
    return true;
}

int
ostree_remove(struct ostree *t, uint64_t key, uint64_t seq, void **ptr,
              size_t *rank)
{
    if (t->root == NULL)
        return OSTREE_NOTFOUND;
    struct path p;
    size_t r;
    struct leaf *l = descend(t, key, seq, &p, &r);
    unsigned pos = leaf_lower(l, key, seq);
    if (pos == l->n || l->key[pos] != key || l->seq[pos] != seq)
        return OSTREE_NOTFOUND;
    if (ptr != NULL)
        *ptr = l->ptr[pos];
    if (rank != NULL)
        *rank = r + pos;
    leaf_cut(l, pos);
    t->size--;
    for (unsigned d = 0; d < t->height; d++)
        p.node[d]->cnt[p.idx[d]]--;

    /* Underflow goes up only as far as merges shrink parents. */
    bool shrunk = l->n < LEAF_MIN;
    for (unsigned d = t->height; shrunk && d-- > 0;) {
        struct inner *in = p.node[d];
        shrunk = d + 1 == t->height ? fix_leaf(t, in, p.idx[d])
                                    : fix_inner(t, in, p.idx[d]);
        shrunk = shrunk && in->n < INNER_MIN;
    }
    if (t->height > 0) {
        struct inner *root = t->root;
        if (root->n == 1) {
            t->root = root->child[0];
            t->height--;
            pool_give(&t->inners, root);
        }
    } else if (l->n == 0) {
        pool_give(&t->leaves, l);
        t->root = NULL;
    }
    return OSTREE_OK;
}

/* ---- bulk load -------------------------------------------------------- */

/* Nodes at each level of an evenly filled tree, and how many children each
   node of a level gets: `base`, one more for the first `extra`. */
struct level {
    size_t nodes, base, extra, done;
    struct inner *open;
};

int
ostree_load_sorted(struct ostree *t, size_t n,
                   void (*get)(void *ctx, size_t i, struct ostree_item *out),
                   void *ctx)
{
    if (t->root != NULL)
        return OSTREE_EXISTS;
    if (n == 0)
        return OSTREE_OK;
    if (ostree_reserve(t, n) != OSTREE_OK)
        return OSTREE_NOMEM;

    /* Pass 1: the leaves, linked, checking the order as they fill. */
    size_t nleaves = (n + LEAF_CAP - 1) / LEAF_CAP;
    size_t base = n / nleaves, extra = n % nleaves;
    struct leaf *head = NULL, *tail = NULL;
    struct ostree_item it, prev = {0, 0, NULL};
    size_t i = 0;
    for (size_t j = 0; j < nleaves; j++) {
        struct leaf *l = pool_take(&t->leaves);
        l->next = NULL;
        l->n = (unsigned)(base + (j < extra));
        if (tail != NULL)
            tail->next = l;
        else
            head = l;
        tail = l;
        for (unsigned k = 0; k < l->n; k++, i++) {
            get(ctx, i, &it);
            if (i > 0 && !lt(prev.key, prev.seq, it.key, it.seq)) {
                while (head != NULL) {
                    struct leaf *next = head->next;
                    pool_give(&t->leaves, head);
                    head = next;
                }
                return OSTREE_UNSORTED;
            }
            l->key[k] = it.key;
            l->seq[k] = it.seq;
            l->ptr[k] = it.ptr;
            prev = it;
        }
    }

    /* Pass 2: the inner levels, bottom up, as the leaves stream by. */
    struct level lv[MAX_HEIGHT];
    unsigned height = 0;
    for (size_t m = nleaves; m > 1; height++) {
        size_t k = (m + INNER_CAP - 1) / INNER_CAP;
        lv[height] = (struct level){k, m / k, m % k, 0, NULL};
        m = k;
    }
    void *root = head;
    for (struct leaf *l = head; l != NULL; l = l->next) {
        void *c = l;
        size_t cnt = l->n;
        uint64_t k = l->key[0], s = l->seq[0];
        for (unsigned d = 0; d < height; d++) {
            struct level *v = &lv[d];
            if (v->open == NULL) {
                v->open = pool_take(&t->inners);
                v->open->n = 0;
            }
            struct inner *in = v->open;
            inner_put(in, in->n, k, s, cnt, c);
            if (in->n < v->base + (v->done < v->extra))
                break; /* the node is still open: nothing goes up */
            v->open = NULL;
            v->done++;
            c = in;
            cnt = inner_total(in);
            k = in->key[0];
            s = in->seq[0];
            if (d + 1 == height)
                root = in;
        }
    }
    t->root = root;
    t->height = height;
    t->size = n;
    return OSTREE_OK;
}

/* ---- checking --------------------------------------------------------- */

struct check {
    char *err;
    size_t errlen;
    size_t leaves, inners;
    struct leaf *last; /* the leaf visited last, to check the links */
    bool have_prev;
    uint64_t pk, ps; /* the item visited last */
};

static int
fail(struct check *ck, const char *what)
{
    if (ck->err != NULL && ck->errlen > 0)
        snprintf(ck->err, ck->errlen, "%s", what);
    return -1;
}

/* Check the subtree at node, depth levels above the leaves, whose items
   must be >= (lk, ls) when has_lo; returns its item count in *cnt. */
static int
check_node(struct check *ck, const void *node, unsigned depth, bool root,
           bool has_lo, uint64_t lk, uint64_t ls, size_t *cnt)
{
    if (depth == 0) {
        const struct leaf *l = node;
        ck->leaves++;
        if (l->n == 0 || l->n > LEAF_CAP || (!root && l->n < LEAF_MIN))
            return fail(ck, "leaf fill out of bounds");
        if (ck->last != NULL && ck->last->next != l)
            return fail(ck, "leaf link broken");
        ck->last = (struct leaf *)l;
        for (unsigned i = 0; i < l->n; i++) {
            if (has_lo && lt(l->key[i], l->seq[i], lk, ls))
                return fail(ck, "item below its separator");
            if (ck->have_prev && !lt(ck->pk, ck->ps, l->key[i], l->seq[i]))
                return fail(ck, "items out of order");
            ck->have_prev = true;
            ck->pk = l->key[i];
            ck->ps = l->seq[i];
        }
        *cnt = l->n;
        return 0;
    }
    const struct inner *in = node;
    ck->inners++;
    if (in->n > INNER_CAP || (root ? in->n < 2 : in->n < INNER_MIN))
        return fail(ck, "inner fill out of bounds");
    size_t total = 0;
    for (unsigned i = 0; i < in->n; i++) {
        size_t c;
        if (i > 0 && ck->have_prev &&
            !lt(ck->pk, ck->ps, in->key[i], in->seq[i]))
            return fail(ck, "separator not above the left child");
        bool lo = i > 0 || has_lo;
        uint64_t k = i > 0 ? in->key[i] : lk, s = i > 0 ? in->seq[i] : ls;
        if (check_node(ck, in->child[i], depth - 1, false, lo, k, s, &c) < 0)
            return -1;
        if (c != in->cnt[i])
            return fail(ck, "child count wrong");
        total += c;
    }
    *cnt = total;
    return 0;
}

static int
check_pool(struct check *ck, const struct ostree_pool *p, size_t live)
{
    size_t n = 0, chunked = 0;
    for (const struct chunk *c = p->chunks; c != NULL; c = c->next) {
        if (c->fresh > c->nodes)
            return fail(ck, "chunk handed out more nodes than it has");
        chunked += c->nodes;
        n += c->nodes - c->fresh;
    }
    if (chunked != p->total)
        return fail(ck, "pool accounting: chunks != total");
    for (void **f = p->free; f != NULL; f = *f)
        if (++n > p->nfree)
            break;
    if (n != p->nfree)
        return fail(ck, "free list and fresh nodes differ from nfree");
    if (live + p->nfree != p->total)
        return fail(ck, "pool accounting: live + free != total");
    return 0;
}

int
ostree_check(const struct ostree *t, char *err, size_t errlen)
{
    struct check ck = {err, errlen, 0, 0, NULL, false, 0, 0};
    size_t cnt = 0;
    if (t->root == NULL) {
        if (t->size != 0 || t->height != 0)
            return fail(&ck, "empty tree with size or height");
    } else {
        if (t->height >= MAX_HEIGHT)
            return fail(&ck, "height out of bounds");
        if (check_node(&ck, t->root, t->height, true, false, 0, 0, &cnt) < 0)
            return -1;
        if (ck.last->next != NULL)
            return fail(&ck, "last leaf links on");
        if (cnt != t->size)
            return fail(&ck, "size differs from the items");
    }
    if (check_pool(&ck, &t->leaves, ck.leaves) < 0 ||
        check_pool(&ck, &t->inners, ck.inners) < 0)
        return -1;
    return 0;
}
