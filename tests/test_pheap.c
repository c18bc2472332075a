/*
 * test_pheap.c — unit tests of every pheap operation, then a seeded
 * randomized model test against a plain sorted array.
 *
 * The seed comes from PHEAP_SEED when set (to replay a failure), otherwise
 * from the clock; every assertion message of the model test names it.
 */
#include "pheap.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct item {
    uint64_t pad; /* the node is not first: container_of must subtract */
    struct pheap_node node;
    int id;
};

static struct item *
item_of(struct pheap_node *n)
{
    return pheap_container_of(n, struct item, node);
}

static void
set(struct item *it, int id, uint64_t key, uint64_t seq)
{
    memset(it, 0, sizeof(*it));
    it->id = id;
    it->node.key = key;
    it->node.seq = seq;
}

/* ------------------------------------------------------------ unit tests */

Test(pheap, empty)
{
    struct pheap h;
    struct pheap_node *out[4];
    pheap_init(&h);
    cr_assert_eq(pheap_size(&h), 0);
    cr_assert_null(pheap_peek(&h));
    cr_assert_null(pheap_pop(&h));
    cr_assert_eq(pheap_topk(&h, 4, out), 0);
    pheap_build_sorted(&h, NULL, 0);
    cr_assert_null(pheap_pop(&h));
}

Test(pheap, insert_peek_pop_in_order)
{
    static const uint64_t keys[] = {50, 10, 40, 30, 20, 60, 5, 45};
    enum { N = sizeof(keys) / sizeof(keys[0]) };
    struct item it[N];
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, keys[i], (uint64_t)i);
        pheap_insert(&h, &it[i].node);
    }
    cr_assert_eq(pheap_size(&h), N);
    cr_assert_eq(pheap_peek(&h), &it[6].node);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        struct pheap_node *n = pheap_pop(&h);
        cr_assert_not_null(n);
        cr_assert_geq(n->key, last);
        last = n->key;
        cr_assert_null(n->child);
        cr_assert_null(n->next);
        cr_assert_null(n->prev);
    }
    cr_assert_eq(pheap_size(&h), 0);
    cr_assert_null(pheap_pop(&h));
}

Test(pheap, equal_keys_leave_in_seq_order)
{
    enum { N = 100 };
    struct item it[N];
    struct pheap h;
    pheap_init(&h);
    /* Insert in a scrambled seq order: output must follow seq. */
    for (int i = 0; i < N; i++) {
        int s = (i * 37) % N;
        set(&it[i], i, 7, (uint64_t)s);
        pheap_insert(&h, &it[i].node);
    }
    for (uint64_t s = 0; s < N; s++)
        cr_assert_eq(pheap_pop(&h)->seq, s);
}

Test(pheap, remove_root_leaf_middle)
{
    enum { N = 64 };
    struct item it[N];
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)((i * 29) % N), (uint64_t)i);
        pheap_insert(&h, &it[i].node);
    }
    pheap_pop(&h); /* give the tree some shape */
    /* key 0 was popped; remove keys 1 (root), 63, 30, 17. */
    static const uint64_t gone[] = {1, 63, 30, 17};
    for (size_t g = 0; g < 4; g++)
        for (int i = 0; i < N; i++)
            if (it[i].node.key == gone[g]) {
                pheap_remove(&h, &it[i].node);
                cr_assert_null(it[i].node.prev);
                cr_assert_null(it[i].node.next);
                cr_assert_null(it[i].node.child);
            }
    cr_assert_eq(pheap_size(&h), N - 5);
    uint64_t k = 2;
    struct pheap_node *n;
    while ((n = pheap_pop(&h)) != NULL) {
        while (k == 17 || k == 30 || k == 63)
            k++;
        cr_assert_eq(n->key, k);
        k++;
    }
    cr_assert_eq(k, 63);
}

Test(pheap, rekey_both_ways)
{
    enum { N = 32 };
    struct item it[N];
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)(100 + i), (uint64_t)i);
        pheap_insert(&h, &it[i].node);
    }
    pheap_pop(&h);                    /* 100 leaves; root is 101 */
    pheap_rekey(&h, &it[20].node, 1); /* earlier, to the front */
    cr_assert_eq(pheap_peek(&h), &it[20].node);
    pheap_rekey(&h, &it[20].node, 1000); /* root, later, to the back */
    cr_assert_eq(pheap_peek(&h), &it[1].node);
    pheap_rekey(&h, &it[5].node, 110); /* earlier, stays inside */
    pheap_rekey(&h, &it[3].node, 500); /* later, inside */
    pheap_rekey(&h, &it[7].node, 107); /* same key: no change */
    cr_assert_eq(pheap_size(&h), N - 1);
    uint64_t prev = 0;
    size_t seen = 0;
    struct pheap_node *n;
    struct pheap_node *last = NULL;
    while ((n = pheap_pop(&h)) != NULL) {
        cr_assert(n->key > prev || (n->key == prev && n->seq > last->seq));
        prev = n->key;
        last = n;
        seen++;
    }
    cr_assert_eq(seen, N - 1);
    cr_assert_eq(last, &it[20].node);
}

Test(pheap, meld_all_cases)
{
    enum { N = 40 };
    struct item it[N];
    struct pheap a, b, c;
    pheap_init(&a);
    pheap_init(&b);
    pheap_init(&c);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)((i * 13) % N), (uint64_t)i);
        pheap_insert(i % 2 ? &a : &b, &it[i].node);
    }
    pheap_meld(&a, &c); /* from empty */
    cr_assert_eq(pheap_size(&a), N / 2);
    pheap_meld(&c, &a); /* into empty */
    cr_assert_eq(pheap_size(&c), N / 2);
    cr_assert_eq(pheap_size(&a), 0);
    cr_assert_null(pheap_peek(&a));
    pheap_meld(&c, &b); /* both non-empty */
    cr_assert_eq(pheap_size(&c), N);
    cr_assert_eq(pheap_size(&b), 0);
    for (uint64_t k = 0; k < N; k++)
        cr_assert_eq(pheap_pop(&c)->key, k);
}

Test(pheap, rank_and_topk)
{
    enum { N = 50 };
    struct item it[N];
    struct pheap_node *out[N + 5];
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)((i * 7) % N), (uint64_t)i);
        pheap_insert(&h, &it[i].node);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(pheap_rank(&h, &it[i].node), it[i].node.key);
    cr_assert_eq(pheap_topk(&h, 0, out), 0);
    cr_assert_eq(pheap_topk(&h, 1, out), 1);
    cr_assert_eq(out[0]->key, 0);
    cr_assert_eq(pheap_topk(&h, N + 5, out), N);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(out[i]->key, i);
    cr_assert_eq(pheap_size(&h), N); /* unchanged */
    pheap_pop(&h);
    pheap_pop(&h);
    for (int i = 0; i < N; i++)
        if (it[i].node.key >= 2)
            cr_assert_eq(pheap_rank(&h, &it[i].node), it[i].node.key - 2);
    cr_assert_eq(pheap_topk(&h, 3, out), 3);
    cr_assert_eq(out[0]->key, 2);
    cr_assert_eq(out[1]->key, 3);
    cr_assert_eq(out[2]->key, 4);
}

Test(pheap, build_sorted_chain)
{
    enum { N = 1000 };
    static struct item it[N];
    static struct pheap_node *sorted[N];
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)(i / 3 + 1), (uint64_t)i);
        sorted[i] = &it[i].node;
    }
    pheap_build_sorted(&h, sorted, N);
    cr_assert_eq(pheap_size(&h), N);
    cr_assert_eq(pheap_peek(&h), sorted[0]);
    /* A chain: every node has at most one child. */
    for (int i = 0; i < N; i++)
        cr_assert_null(it[i].node.next);
    cr_assert_eq(pheap_rank(&h, sorted[500]), 500);
    pheap_remove(&h, sorted[10]);
    pheap_rekey(&h, sorted[900], 0);
    cr_assert_eq(pheap_peek(&h), sorted[900]);
    cr_assert_eq(pheap_pop(&h), sorted[900]);
    for (int i = 0; i < N; i++) {
        if (i == 10 || i == 900)
            continue;
        cr_assert_eq(pheap_pop(&h), sorted[i]);
    }
    cr_assert_eq(pheap_size(&h), 0);
}

/* The stall guard: after many inserts and no pop, the root and the slot
   trees together have few children, so the first pop is cheap.  Checked
   structurally (counting children), never by timing. */
Test(pheap, no_wide_root_after_many_inserts)
{
    enum { N = 1 << 16 };
    struct item *it = malloc(N * sizeof(*it));
    cr_assert_not_null(it);
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)((i * 40503u) % N), (uint64_t)i);
        pheap_insert(&h, &it[i].node);
    }
    size_t width = 0;
    for (struct pheap_node *c = h.root->child; c != NULL; c = c->next)
        width++;
    width += (size_t)__builtin_popcountll(h.slot_bits);
    cr_assert_leq(width, 40, "root and slots hold %zu trees", width);
    for (uint64_t k = 0; k < N; k++)
        cr_assert_eq(pheap_pop(&h)->key, k);
    free(it);
}

/* ------------------------------------------------------------ model test */

/* The reference: item pointers kept sorted by (key, seq). */
struct model {
    struct item **a;
    size_t len;
};

static int
item_cmp(const struct item *x, const struct item *y)
{
    if (x->node.key != y->node.key)
        return x->node.key < y->node.key ? -1 : 1;
    if (x->node.seq != y->node.seq)
        return x->node.seq < y->node.seq ? -1 : 1;
    return 0;
}

static size_t
model_find(const struct model *m, const struct item *it)
{
    size_t lo = 0, hi = m->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (item_cmp(m->a[mid], it) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void
model_add(struct model *m, struct item *it)
{
    size_t i = model_find(m, it);
    memmove(&m->a[i + 1], &m->a[i], (m->len - i) * sizeof(m->a[0]));
    m->a[i] = it;
    m->len++;
}

static void
model_del(struct model *m, struct item *it)
{
    size_t i = model_find(m, it);
    cr_assert(i < m->len && m->a[i] == it, "model lost item %d", it->id);
    memmove(&m->a[i], &m->a[i + 1], (m->len - i - 1) * sizeof(m->a[0]));
    m->len--;
}

static uint64_t rng_state;

static uint64_t
rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t
below(uint64_t n)
{
    return n == 0 ? 0 : rng() % n;
}

/* Keys: small ranges make many ties (seq decides), the class bits in the
   top make the full 64-bit comparison matter. */
static uint64_t
rand_key(void)
{
    uint64_t cls = below(4);
    return (cls << 60) | below(64);
}

enum { POOL = 600, OPS = 250000 };

struct world {
    struct item it[POOL];
    struct item *free_list[POOL];
    size_t nfree;
    struct model m; /* contents of h */
    struct pheap h;
    struct pheap side;
    struct item *side_items[POOL];
    size_t nside;
    uint64_t seq;
    uint64_t seed;
    long op;
};

static struct item *
take(struct world *w, uint64_t key)
{
    struct item *it = w->free_list[--w->nfree];
    it->node.key = key;
    it->node.seq = w->seq++;
    return it;
}

static struct item *
random_member(struct world *w)
{
    return w->m.a[below(w->m.len)];
}

static void
check(struct world *w, const char *what)
{
    static struct pheap_node *out[POOL];
    struct model *m = &w->m;
    cr_assert_eq(pheap_size(&w->h), m->len,
                 "seed %" PRIu64 " op %ld (%s): size %zu, model %zu", w->seed,
                 w->op, what, pheap_size(&w->h), m->len);
    struct pheap_node *p = pheap_peek(&w->h);
    if (m->len == 0) {
        cr_assert_null(p, "seed %" PRIu64 " op %ld (%s): peek not NULL",
                       w->seed, w->op, what);
        return;
    }
    cr_assert_eq(p, &m->a[0]->node,
                 "seed %" PRIu64 " op %ld (%s): peek is item %d, model %d",
                 w->seed, w->op, what, p ? item_of(p)->id : -1, m->a[0]->id);
    size_t r = below(m->len);
    size_t got = pheap_rank(&w->h, &m->a[r]->node);
    cr_assert_eq(got, r, "seed %" PRIu64 " op %ld (%s): rank %zu, model %zu",
                 w->seed, w->op, what, got, r);
    size_t k = (w->op % 97 == 0) ? m->len + 3 : below(12);
    size_t n = pheap_topk(&w->h, k, out);
    size_t want = k < m->len ? k : m->len;
    cr_assert_eq(n, want, "seed %" PRIu64 " op %ld (%s): topk(%zu) gave %zu",
                 w->seed, w->op, what, k, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], &m->a[i]->node,
                     "seed %" PRIu64 " op %ld (%s): topk[%zu] is item %d, "
                     "model %d",
                     w->seed, w->op, what, i, item_of(out[i])->id, m->a[i]->id);
}

static void
step(struct world *w)
{
    struct model *m = &w->m;
    unsigned op = (unsigned)below(100);
    /* Drift towards a size that moves between empty and POOL. */
    bool grow = (w->op / 20000) % 2 == 0;
    if (op < (grow ? 30u : 18u)) {
        if (w->nfree == 0)
            return;
        struct item *it = take(w, rand_key());
        pheap_insert(&w->h, &it->node);
        model_add(m, it);
        check(w, "insert");
    } else if (op < 45) {
        struct pheap_node *n = pheap_pop(&w->h);
        if (m->len == 0) {
            cr_assert_null(n, "seed %" PRIu64 " op %ld: pop of empty", w->seed,
                           w->op);
            return;
        }
        cr_assert_eq(n, &m->a[0]->node,
                     "seed %" PRIu64 " op %ld: pop gave item %d, model %d",
                     w->seed, w->op, n ? item_of(n)->id : -1, m->a[0]->id);
        struct item *it = item_of(n);
        model_del(m, it);
        w->free_list[w->nfree++] = it;
        check(w, "pop");
    } else if (op < 55) {
        if (m->len == 0)
            return;
        struct item *it = random_member(w);
        pheap_remove(&w->h, &it->node);
        cr_assert(it->node.prev == NULL && it->node.next == NULL &&
                      it->node.child == NULL,
                  "seed %" PRIu64 " op %ld: removed node not detached", w->seed,
                  w->op);
        model_del(m, it);
        w->free_list[w->nfree++] = it;
        check(w, "remove");
    } else if (op < 68) {
        if (m->len == 0)
            return;
        struct item *it = random_member(w);
        uint64_t k = it->node.key;
        uint64_t nk = k == 0 ? 0 : k - 1 - below(k < 100 ? k : 100);
        if (below(8) == 0)
            nk = k & ~(UINT64_C(15) << 60); /* drop to class 0 */
        model_del(m, it);
        pheap_rekey(&w->h, &it->node, nk);
        it->node.key = nk;
        model_add(m, it);
        check(w, "rekey earlier");
    } else if (op < 80) {
        if (m->len == 0)
            return;
        struct item *it = random_member(w);
        uint64_t k = it->node.key;
        uint64_t nk = k + 1 + below(100);
        if (below(8) == 0 && (k >> 60) < 3)
            nk = k + (UINT64_C(1) << 60); /* up one class */
        model_del(m, it);
        pheap_rekey(&w->h, &it->node, nk);
        it->node.key = nk;
        model_add(m, it);
        check(w, "rekey later");
    } else if (op < 84) {
        /* Fill a side heap from free items, mixing in pops, then meld it
           in (or meld the main heap into the side heap and swap). */
        size_t want = below(40);
        pheap_init(&w->side);
        w->nside = 0;
        for (size_t i = 0; i < want && w->nfree > 0; i++) {
            struct item *it = take(w, rand_key());
            pheap_insert(&w->side, &it->node);
            w->side_items[w->nside++] = it;
            if (below(4) == 0) {
                struct pheap_node *n = pheap_pop(&w->side);
                struct item *pi = item_of(n);
                size_t j = 0;
                while (w->side_items[j] != pi)
                    j++;
                w->side_items[j] = w->side_items[--w->nside];
                w->free_list[w->nfree++] = pi;
            }
        }
        cr_assert_eq(pheap_size(&w->side), w->nside,
                     "seed %" PRIu64 " op %ld: side heap size", w->seed, w->op);
        if (below(2) == 0) {
            pheap_meld(&w->h, &w->side);
        } else {
            pheap_meld(&w->side, &w->h);
            w->h = w->side;
            pheap_init(&w->side);
        }
        cr_assert_eq(pheap_size(&w->side), 0,
                     "seed %" PRIu64 " op %ld: side heap not emptied", w->seed,
                     w->op);
        for (size_t i = 0; i < w->nside; i++) {
            model_add(m, w->side_items[i]);
        }
        check(w, "meld");
    } else if (op < 99) {
        check(w, "query");
    } else {
        /* Rebuild from the sorted reference, as recovery does. */
        static struct pheap_node *sorted[POOL];
        for (size_t i = 0; i < m->len; i++)
            sorted[i] = &m->a[i]->node;
        pheap_init(&w->h);
        pheap_build_sorted(&w->h, sorted, m->len);
        check(w, "build_sorted");
    }
}

Test(pheap, model_random, .timeout = 300)
{
    static struct world w;
    static struct item *marr[POOL];
    const char *env = getenv("PHEAP_SEED");
    memset(&w, 0, sizeof(w));
    w.seed = env ? strtoull(env, NULL, 0)
                 : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    rng_state = w.seed;
    fprintf(stderr, "test_pheap model_random: PHEAP_SEED=%" PRIu64 "\n",
            w.seed);
    for (int i = 0; i < POOL; i++) {
        w.it[i].id = i;
        w.free_list[i] = &w.it[POOL - 1 - i];
    }
    w.nfree = POOL;
    w.m.a = marr;
    pheap_init(&w.h);
    for (w.op = 0; w.op < OPS; w.op++)
        step(&w);
    /* Drain: everything leaves in reference order. */
    for (size_t i = 0; i < w.m.len; i++)
        cr_assert_eq(pheap_pop(&w.h), &w.m.a[i]->node,
                     "seed %" PRIu64 ": drain position %zu", w.seed, i);
    cr_assert_null(pheap_pop(&w.h), "seed %" PRIu64 ": heap not drained",
                   w.seed);
}

static void
count_visit(void *ctx, struct pheap_node *n)
{
    int *seen = ctx;
    seen[item_of(n)->id]++;
}

/* Every node once, whatever shape the heap has: fresh inserts in the slot
   trees, a tree combined by pops, removes in the middle. */
Test(pheap, each_visits_every_node_once)
{
    enum { N = 300 };
    static struct item it[N];
    int seen[N];
    struct pheap h;
    pheap_init(&h);
    for (int i = 0; i < N; i++) {
        set(&it[i], i, (uint64_t)((i * 37) % N), (uint64_t)i);
        pheap_insert(&h, &it[i].node);
    }
    bool gone[N] = {false};
    for (int round = 0; round < 3; round++) {
        memset(seen, 0, sizeof seen);
        pheap_each(&h, count_visit, seen);
        for (int i = 0; i < N; i++)
            cr_assert_eq(seen[i], gone[i] ? 0 : 1,
                         "round %d: item %d seen %d times", round, i, seen[i]);
        struct pheap_node *p = pheap_pop(&h);
        gone[item_of(p)->id] = true;
        for (int i = round; i < N; i += 50)
            if (!gone[i]) {
                pheap_remove(&h, &it[i].node);
                gone[i] = true;
            }
    }
    pheap_init(&h);
    memset(seen, 0, sizeof seen);
    pheap_each(&h, count_visit, seen);
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 0);
}
