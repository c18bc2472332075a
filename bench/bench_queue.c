/*
 * bench_queue.c — the pick-queue heap against two array heaps, same run.
 *
 * Three addressable priority queues with the same key, uint64 key + uint64
 * seq compared as integers, and the same pool of nodes (one preallocated
 * array, never one malloc per node):
 *
 *   pairing  queue/pheap.c, the intrusive pairing heap the daemon uses
 *   binary   an implicit binary heap, written here
 *   4-ary    an implicit 4-ary heap, written here
 *
 * The array heaps store (key, seq, node index) inline in the array, so a
 * comparison never leaves the array, and write each moved entry's position
 * back into its node (beanstalkd's heap does the same through a callback),
 * which is what lets them remove and re-key any node.  Rank in the array
 * heaps is the same pruned depth-first count the pairing heap does.
 *
 * Cases (n = steady size; every case runs 7 times, the median is printed):
 *   fill+drain  insert n random keys, pop all            ns per insert or pop
 *   hold        pop the first, insert one                ns per pop+insert
 *   re-key      a random node's deadline moves, half earlier, half later;
 *               one pop+insert per 4 re-keys, so lazy work gets paid
 *                                                        ns per re-key
 *   remove      remove a random node, insert it again; one pop+insert per 4
 *                                                        ns per remove+insert
 *   rank        count the nodes before a random node     ns per rank
 *   first pop   the single pop right after n inserts     us (the "stall")
 *
 * Keys are class << 60 | deadline (deadlines spread over 2^24 ms), classes
 * 10% asn, 20% rush4h, 30% rush24h, 40% normal.  A node that goes back in
 * keeps its class; after a pop its deadline is the popped one plus a random
 * offset (the classic hold model), so the key distribution is stationary:
 * pops take the asn tenth, which circulates, while the rest sits deeper in
 * the heap as a backlog does.  Every heap sees the same keys and queries,
 * and the checksums of what they popped and ranked must agree.
 *
 * Usage: bench_queue [--quick] [--big] [--runs N] [--n N] [--stride BYTES]
 *   --quick  n = 10^3 and 10^4, 3 runs, fewer ops: a smoke run
 *   --big    also n = 10^7
 *   --runs N runs per case (default 7)
 *   --n N    only this size (repeatable)
 *   --stride BYTES  distance between nodes in the pool (default 48, the
 *            item itself; an order is larger, try 256)
 */
#include "pheap.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- common */

/* The pool is one array of items stride bytes apart: 48 (the item alone,
   the default) or more, to see how each heap copes with nodes that live in
   larger objects (an order is a few hundred bytes). */
struct item {
    struct pheap_node node; /* key, seq, pairing heap links */
    uint32_t pos;           /* array heaps: index in the array */
    uint32_t id;            /* index in the pool */
};

static char *pool_base;
static size_t stride = sizeof(struct item);
#define IT(i) ((struct item *)(pool_base + (size_t)(i)*stride))
static uint64_t seq_next;
static uint64_t rng_state;

static inline uint64_t
rng(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without a division (Lemire's multiply-shift). */
static inline uint64_t
below(uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng() * n) >> 64);
}

#define DEADLINE_MASK ((UINT64_C(1) << 60) - 1)
#define SPREAD (UINT64_C(1) << 24) /* deadline offsets, ~4.6 h in ms */

static inline uint64_t
random_class(void)
{
    uint64_t r = below(10);
    return r < 1 ? 0 : r < 3 ? 1 : r < 6 ? 2 : 3;
}

static inline uint64_t
initial_key(void)
{
    return random_class() << 60 | below(SPREAD);
}

/* A successor of a popped key: same class, later deadline. */
static inline uint64_t
next_key(uint64_t popped)
{
    return popped + 1 + below(SPREAD);
}

static inline uint64_t
moved_key(uint64_t key)
{
    uint64_t d = key & DEADLINE_MASK;
    uint64_t delta = 1 + below(SPREAD / 2);
    if (rng() & 1)
        d = d > delta ? d - delta : 0;
    else
        d += delta;
    return (key & ~DEADLINE_MASK) | (d & DEADLINE_MASK);
}

static inline void
item_set(uint32_t id, uint64_t key)
{
    IT(id)->node.key = key;
    IT(id)->node.seq = seq_next++;
}

static double
now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* --------------------------------------------------------- pairing heap */

static struct pheap ph;

static inline void
ph_init(size_t n)
{
    (void)n;
    pheap_init(&ph);
}

static inline void
ph_insert(uint32_t id)
{
    pheap_insert(&ph, &IT(id)->node);
}

static inline uint32_t
ph_pop(void)
{
    struct pheap_node *n = pheap_pop(&ph);
    return pheap_container_of(n, struct item, node)->id;
}

static inline void
ph_remove(uint32_t id)
{
    pheap_remove(&ph, &IT(id)->node);
}

static inline void
ph_rekey(uint32_t id, uint64_t key)
{
    pheap_rekey(&ph, &IT(id)->node, key);
}

static inline size_t
ph_rank(uint32_t id)
{
    return pheap_rank(&ph, &IT(id)->node);
}

/* ---------------------------------------------------- d-ary array heaps */

struct ent {
    uint64_t key;
    uint64_t seq;
    uint32_t id;
};

static struct ent *arr;
static size_t arr_len;
static size_t *dfs_stack;

/* The same 128-bit integer compare as pheap.c. */
static inline bool
ent_before(const struct ent *a, const struct ent *b)
{
    unsigned __int128 x = (unsigned __int128)a->key << 64 | a->seq;
    unsigned __int128 y = (unsigned __int128)b->key << 64 | b->seq;
    return x < y;
}

static inline void
put(size_t i, struct ent e)
{
    arr[i] = e;
    IT(e.id)->pos = (uint32_t)i;
}

static inline __attribute__((always_inline)) void
sift_up(size_t i, struct ent e, size_t d)
{
    while (i > 0) {
        size_t p = (i - 1) / d;
        if (!ent_before(&e, &arr[p]))
            break;
        put(i, arr[p]);
        i = p;
    }
    put(i, e);
}

static inline __attribute__((always_inline)) void
sift_down(size_t i, struct ent e, size_t d)
{
    size_t len = arr_len;
    for (;;) {
        size_t c = d * i + 1;
        if (c >= len)
            break;
        size_t best = c;
        if (d == 4 && c + 4 <= len) {
            /* A tournament of four: two independent compares, then one. */
            size_t m0 = ent_before(&arr[c + 1], &arr[c]) ? c + 1 : c;
            size_t m1 = ent_before(&arr[c + 3], &arr[c + 2]) ? c + 3 : c + 2;
            best = ent_before(&arr[m1], &arr[m0]) ? m1 : m0;
        } else {
            size_t end = c + d < len ? c + d : len;
            for (size_t j = c + 1; j < end; j++)
                best = ent_before(&arr[j], &arr[best]) ? j : best;
        }
        if (!ent_before(&arr[best], &e))
            break;
        put(i, arr[best]);
        i = best;
    }
    put(i, e);
}

static inline __attribute__((always_inline)) void
ah_insert(uint32_t id, size_t d)
{
    struct ent e = {IT(id)->node.key, IT(id)->node.seq, id};
    sift_up(arr_len++, e, d);
}

static inline __attribute__((always_inline)) uint32_t
ah_pop(size_t d)
{
    uint32_t top = arr[0].id;
    struct ent e = arr[--arr_len];
    if (arr_len > 0)
        sift_down(0, e, d);
    return top;
}

static inline __attribute__((always_inline)) void
ah_remove(uint32_t id, size_t d)
{
    size_t i = IT(id)->pos;
    struct ent e = arr[--arr_len];
    if (i == arr_len)
        return;
    if (ent_before(&e, &arr[i]))
        sift_up(i, e, d);
    else
        sift_down(i, e, d);
}

static inline __attribute__((always_inline)) void
ah_rekey(uint32_t id, uint64_t key, size_t d)
{
    size_t i = IT(id)->pos;
    struct ent e = arr[i];
    uint64_t old = e.key;
    e.key = key;
    IT(id)->node.key = key;
    if (key < old)
        sift_up(i, e, d);
    else
        sift_down(i, e, d);
}

/* Pruned depth-first count of the entries before arr[pos[id]]: a subtree
   whose root is not before it is skipped whole. */
static inline __attribute__((always_inline)) size_t
ah_rank(uint32_t id, size_t d)
{
    struct ent t = arr[IT(id)->pos];
    size_t count = 0, top = 0;
    if (arr_len == 0 || !ent_before(&arr[0], &t))
        return 0;
    dfs_stack[top++] = 0;
    while (top > 0) {
        size_t i = dfs_stack[--top];
        count++;
        size_t c = d * i + 1;
        size_t end = c + d < arr_len ? c + d : arr_len;
        for (size_t j = c; j < end; j++)
            if (ent_before(&arr[j], &t))
                dfs_stack[top++] = j;
    }
    return count;
}

static inline void
ah_init(size_t n)
{
    (void)n;
    arr_len = 0;
}

#define bh_init ah_init
#define qh_init ah_init
static inline void
bh_insert(uint32_t id)
{
    ah_insert(id, 2);
}

static inline uint32_t
bh_pop(void)
{
    return ah_pop(2);
}

static inline void
bh_remove(uint32_t id)
{
    ah_remove(id, 2);
}

static inline void
bh_rekey(uint32_t id, uint64_t k)
{
    ah_rekey(id, k, 2);
}

static inline size_t
bh_rank(uint32_t id)
{
    return ah_rank(id, 2);
}

static inline void
qh_insert(uint32_t id)
{
    ah_insert(id, 4);
}

static inline uint32_t
qh_pop(void)
{
    return ah_pop(4);
}

static inline void
qh_remove(uint32_t id)
{
    ah_remove(id, 4);
}

static inline void
qh_rekey(uint32_t id, uint64_t k)
{
    ah_rekey(id, k, 4);
}

static inline size_t
qh_rank(uint32_t id)
{
    return ah_rank(id, 4);
}

/* ------------------------------------------------------------------ cases */

struct params {
    size_t n;
    size_t ops;      /* timed operations of hold, re-key, remove */
    size_t warm;     /* untimed hold operations before them */
    size_t rank_ops; /* timed rank queries */
};

/* Every case returns the time per op in ns, and a checksum that keeps the
   compiler from dropping work and lets the three heaps be compared. */
struct result {
    double ns;
    uint64_t check;
};

#define DEFINE_CASES(X)                                                        \
    static void X##_fill(size_t n)                                             \
    {                                                                          \
        X##_init(n);                                                           \
        for (uint32_t i = 0; i < n; i++) {                                     \
            item_set(i, initial_key());                                        \
            X##_insert(i);                                                     \
        }                                                                      \
    }                                                                          \
    static uint64_t X##_hold_ops(size_t ops)                                   \
    {                                                                          \
        uint64_t sum = 0;                                                      \
        for (size_t k = 0; k < ops; k++) {                                     \
            uint32_t id = X##_pop();                                           \
            uint64_t key = IT(id)->node.key;                                   \
            sum += key;                                                        \
            item_set(id, next_key(key));                                       \
            X##_insert(id);                                                    \
        }                                                                      \
        return sum;                                                            \
    }                                                                          \
    static struct result X##_case_drain(const struct params *p)                \
    {                                                                          \
        struct result r = {0, 0};                                              \
        double t0 = now_ns();                                                  \
        X##_fill(p->n);                                                        \
        for (size_t k = 0; k < p->n; k++)                                      \
            r.check += IT(X##_pop())->node.key;                                \
        r.ns = (now_ns() - t0) / (2.0 * (double)p->n);                         \
        return r;                                                              \
    }                                                                          \
    static struct result X##_case_hold(const struct params *p)                 \
    {                                                                          \
        struct result r = {0, 0};                                              \
        X##_fill(p->n);                                                        \
        X##_hold_ops(p->warm);                                                 \
        double t0 = now_ns();                                                  \
        r.check = X##_hold_ops(p->ops);                                        \
        r.ns = (now_ns() - t0) / (double)p->ops;                               \
        return r;                                                              \
    }                                                                          \
    static struct result X##_case_rekey(const struct params *p)                \
    {                                                                          \
        struct result r = {0, 0};                                              \
        X##_fill(p->n);                                                        \
        X##_hold_ops(p->warm);                                                 \
        double t0 = now_ns();                                                  \
        for (size_t k = 0; k < p->ops; k++) {                                  \
            uint32_t id = (uint32_t)below(p->n);                               \
            X##_rekey(id, moved_key(IT(id)->node.key));                        \
            if ((k & 3) == 3)                                                  \
                r.check += X##_hold_ops(1);                                    \
        }                                                                      \
        r.ns = (now_ns() - t0) / (double)p->ops;                               \
        return r;                                                              \
    }                                                                          \
    static struct result X##_case_remove(const struct params *p)               \
    {                                                                          \
        struct result r = {0, 0};                                              \
        X##_fill(p->n);                                                        \
        X##_hold_ops(p->warm);                                                 \
        double t0 = now_ns();                                                  \
        for (size_t k = 0; k < p->ops; k++) {                                  \
            uint32_t id = (uint32_t)below(p->n);                               \
            X##_remove(id);                                                    \
            item_set(id, moved_key(IT(id)->node.key));                         \
            X##_insert(id);                                                    \
            if ((k & 3) == 3)                                                  \
                r.check += X##_hold_ops(1);                                    \
        }                                                                      \
        r.ns = (now_ns() - t0) / (double)p->ops;                               \
        return r;                                                              \
    }                                                                          \
    static struct result X##_case_rank(const struct params *p)                 \
    {                                                                          \
        struct result r = {0, 0};                                              \
        X##_fill(p->n);                                                        \
        X##_hold_ops(p->warm);                                                 \
        double t0 = now_ns();                                                  \
        for (size_t k = 0; k < p->rank_ops; k++)                               \
            r.check += X##_rank((uint32_t)below(p->n));                        \
        r.ns = (now_ns() - t0) / (double)p->rank_ops;                          \
        return r;                                                              \
    }                                                                          \
    static struct result X##_case_first(const struct params *p)                \
    {                                                                          \
        struct result r = {0, 0};                                              \
        X##_fill(p->n);                                                        \
        double t0 = now_ns();                                                  \
        r.check = IT(X##_pop())->node.key;                                     \
        r.ns = (now_ns() - t0) / 1000.0;                                       \
        return r;                                                              \
    }

DEFINE_CASES(ph)
DEFINE_CASES(bh)
DEFINE_CASES(qh)

typedef struct result (*case_fn)(const struct params *);

struct bcase {
    const char *name;
    const char *unit;
    case_fn fn[3]; /* pairing, binary, 4-ary */
};

static const struct bcase cases[] = {
    {"fill+drain", "ns", {ph_case_drain, bh_case_drain, qh_case_drain}},
    {"hold", "ns", {ph_case_hold, bh_case_hold, qh_case_hold}},
    {"re-key", "ns", {ph_case_rekey, bh_case_rekey, qh_case_rekey}},
    {"remove", "ns", {ph_case_remove, bh_case_remove, qh_case_remove}},
    {"rank", "ns", {ph_case_rank, bh_case_rank, qh_case_rank}},
    {"first pop", "us", {ph_case_first, bh_case_first, qh_case_first}},
};

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *
xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "bench_queue: out of memory (%zu bytes)\n", size);
        exit(1);
    }
    return p;
}

static void
usage(void)
{
    fprintf(stderr, "usage: bench_queue [--quick] [--big] [--runs N] [--n N]\n"
                    "                   [--stride BYTES]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    bool quick = false, big = false;
    int runs = 0; /* 0: the default, 7 (3 with --quick) */
    size_t sizes[8];
    size_t nsizes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--big") == 0) {
            big = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 101)
                usage();
            runs = (int)v;
        } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc && nsizes < 8) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || v < 2 || v > 100000000)
                usage();
            sizes[nsizes++] = (size_t)v;
        } else if (strcmp(argv[i], "--stride") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < (long)sizeof(struct item) || v % 8 != 0 ||
                v > 4096)
                usage();
            stride = (size_t)v;
        } else {
            usage();
        }
    }
    if (runs == 0)
        runs = quick ? 3 : 7;

    if (nsizes > 0) {
        /* sizes given by --n */
    } else if (quick) {
        sizes[nsizes++] = 1000;
        sizes[nsizes++] = 10000;
    } else {
        sizes[nsizes++] = 1000;
        sizes[nsizes++] = 100000;
        sizes[nsizes++] = 1000000;
        if (big)
            sizes[nsizes++] = 10000000;
    }
    size_t maxn = 0;
    for (size_t i = 0; i < nsizes; i++)
        maxn = sizes[i] > maxn ? sizes[i] : maxn;
    pool_base = aligned_alloc(64, (maxn * stride + 63) / 64 * 64);
    if (pool_base == NULL) {
        fprintf(stderr, "bench_queue: out of memory (%zu nodes of %zu)\n", maxn,
                stride);
        return 1;
    }
    for (size_t i = 0; i < maxn; i++)
        IT(i)->id = (uint32_t)i;
    arr = xmalloc(maxn * sizeof(*arr));
    dfs_stack = xmalloc((maxn + 4) * sizeof(*dfs_stack));
    double *t = xmalloc(3 * (size_t)runs * sizeof(*t));

    printf("$");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n%d runs, median per op; pool stride %zu bytes (pheap_node "
           "%zu)\n\n",
           runs, stride, sizeof(struct pheap_node));
    printf("%-10s %9s %4s %10s %10s %10s %9s\n", "case", "n", "unit", "pairing",
           "binary", "4-ary", "pair/4ary");
    fflush(stdout);

    for (size_t si = 0; si < nsizes; si++) {
        size_t n = sizes[si];
        struct params p = {.n = n};
        p.ops = quick ? 100000 : 1000000;
        p.warm = n < 100000 ? n : 100000;
        p.rank_ops = quick ? 200 : 2000;
        if (n >= 100000)
            p.rank_ops = quick ? 10 : 40;
        if (n >= 10000000)
            p.rank_ops = 5;
        for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
            const struct bcase *c = &cases[ci];
            double med[3];
            uint64_t check[3];
            /* Runs interleave the heaps, so a noisy neighbour on this
               shared machine hurts all three alike. */
            for (int r = 0; r < runs; r++) {
                for (int impl = 0; impl < 3; impl++) {
                    /* Same keys and queries for all three heaps. */
                    rng_state = UINT64_C(0x5EED) + (uint64_t)r * 7919 + n;
                    seq_next = 0;
                    struct result res = c->fn[impl](&p);
                    t[impl * runs + r] = res.ns;
                    if (r == 0)
                        check[impl] = res.check;
                }
            }
            for (int impl = 0; impl < 3; impl++) {
                double *ti = &t[impl * runs];
                qsort(ti, (size_t)runs, sizeof(*ti), cmp_double);
                med[impl] = ti[runs / 2];
            }
            if (check[0] != check[1] || check[0] != check[2]) {
                fprintf(stderr,
                        "bench_queue: %s n=%zu: heaps disagree (checksums "
                        "%" PRIu64 " %" PRIu64 " %" PRIu64 ")\n",
                        c->name, n, check[0], check[1], check[2]);
                return 1;
            }
            printf("%-10s %9zu %4s %10.1f %10.1f %10.1f %8.2fx\n", c->name, n,
                   c->unit, med[0], med[1], med[2], med[0] / med[2]);
            fflush(stdout);
        }
    }
    free(t);
    free(dfs_stack);
    free(arr);
    free(pool_base);
    return 0;
}
