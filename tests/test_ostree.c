/*
 * test_ostree.c — the order-statistic B+tree: unit tests for each
 * operation, allocation failures injected through the allocator, and a
 * seeded randomized model test (>= 200,000 operations) against a sorted
 * array, with ostree_check() verifying every invariant along the way.
 *
 * The model test's seed comes from OSTREE_SEED when set (to replay a
 * failure), otherwise from the clock; every assertion message names it.
 */
#include "ostree.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The ptr stored with (key, seq): derived from both, so a wrong pairing
   shows. */
static void *
ptr_of(uint64_t key, uint64_t seq)
{
    uint64_t h = (key * UINT64_C(0x9e3779b97f4a7c15)) ^ (seq + 1);
    return (void *)(uintptr_t)(h | 1);
}

static void
check(const struct ostree *t)
{
    char err[128] = "";
    cr_assert_eq(ostree_check(t, err, sizeof(err)), 0, "check: %s", err);
}

/* An allocator that fails once `budget` allocations have been made (when
   budget >= 0), counting what is outstanding. */
struct fail_alloc {
    long budget;
    long live;
};

static void *
fa_alloc(void *ctx, size_t bytes)
{
    struct fail_alloc *fa = ctx;
    if (fa->budget == 0)
        return NULL;
    if (fa->budget > 0)
        fa->budget--;
    void *p = malloc(bytes);
    if (p != NULL)
        fa->live++;
    return p;
}

static void
fa_free(void *ctx, void *p)
{
    struct fail_alloc *fa = ctx;
    fa->live--;
    free(p);
}

Test(ostree, empty_tree)
{
    struct ostree t;
    struct ostree_item it;
    struct ostree_cursor c;
    ostree_init(&t, NULL);
    cr_assert_eq(ostree_size(&t), 0);
    cr_assert_not(ostree_first(&t, &it));
    cr_assert_eq(ostree_rank(&t, 5, 5), 0);
    cr_assert_eq(ostree_remove(&t, 5, 5, NULL, NULL), OSTREE_NOTFOUND);
    ostree_cursor_first(&t, &c);
    cr_assert_not(ostree_next(&c, &it));
    ostree_cursor_seek(&t, 1, 1, &c);
    cr_assert_not(ostree_next(&c, &it));
    check(&t);
    ostree_destroy(&t);
}

Test(ostree, insert_rank_remove_small)
{
    struct ostree t;
    size_t r;
    void *p;
    ostree_init(&t, NULL);
    cr_assert_eq(ostree_insert(&t, 10, 2, ptr_of(10, 2), &r), OSTREE_OK);
    cr_assert_eq(r, 0);
    cr_assert_eq(ostree_insert(&t, 10, 1, ptr_of(10, 1), &r), OSTREE_OK);
    cr_assert_eq(r, 0, "seq breaks the tie");
    cr_assert_eq(ostree_insert(&t, 5, 9, ptr_of(5, 9), &r), OSTREE_OK);
    cr_assert_eq(r, 0);
    cr_assert_eq(ostree_insert(&t, 20, 0, ptr_of(20, 0), &r), OSTREE_OK);
    cr_assert_eq(r, 3);
    cr_assert_eq(ostree_insert(&t, 10, 1, NULL, &r), OSTREE_EXISTS);
    cr_assert_eq(ostree_size(&t), 4);
    cr_assert_eq(ostree_rank(&t, 10, 1), 1);
    cr_assert_eq(ostree_rank(&t, 10, 2), 2);
    cr_assert_eq(ostree_rank(&t, 10, 3), 3, "absent: items before it");
    cr_assert_eq(ostree_rank(&t, 0, 0), 0);
    cr_assert_eq(ostree_rank(&t, UINT64_MAX, UINT64_MAX), 4);
    struct ostree_item it;
    cr_assert(ostree_first(&t, &it));
    cr_assert(it.key == 5 && it.seq == 9 && it.ptr == ptr_of(5, 9));
    cr_assert_eq(ostree_remove(&t, 10, 1, &p, &r), OSTREE_OK);
    cr_assert_eq(p, ptr_of(10, 1));
    cr_assert_eq(r, 1);
    cr_assert_eq(ostree_remove(&t, 10, 1, &p, &r), OSTREE_NOTFOUND);
    cr_assert_eq(ostree_size(&t), 3);
    check(&t);
    ostree_destroy(&t);
}

Test(ostree, cursor_iterates_from_an_item)
{
    struct ostree t;
    ostree_init(&t, NULL);
    /* Enough items for several leaves and two inner levels. */
    enum { N = 5000 };
    for (uint64_t i = 0; i < N; i++) {
        uint64_t k = (i * 7919) % N; /* scrambled arrival */
        cr_assert_eq(ostree_insert(&t, k / 3, k, ptr_of(k / 3, k), NULL),
                     OSTREE_OK);
    }
    check(&t);
    struct ostree_cursor c;
    struct ostree_item it;
    ostree_cursor_first(&t, &c);
    for (uint64_t k = 0; k < N; k++) {
        cr_assert(ostree_next(&c, &it));
        cr_assert(it.key == k / 3 && it.seq == k, "at %" PRIu64, k);
    }
    cr_assert_not(ostree_next(&c, &it));
    /* From a present item, and from a gap. */
    ostree_cursor_seek(&t, 1000 / 3, 1000, &c);
    cr_assert(ostree_next(&c, &it));
    cr_assert_eq(it.seq, 1000);
    ostree_cursor_seek(&t, 1000 / 3, 0, &c);
    cr_assert(ostree_next(&c, &it));
    cr_assert_eq(it.seq, 999, "first item >= (333, 0) is (333, 999)");
    ostree_cursor_seek(&t, N, 0, &c);
    cr_assert_not(ostree_next(&c, &it));
    for (uint64_t k = 0; k < N; k += 37)
        cr_assert_eq(ostree_rank(&t, k / 3, k), k);
    ostree_destroy(&t);
}

Test(ostree, grows_to_three_levels_and_shrinks_back)
{
    struct ostree t;
    ostree_init(&t, NULL);
    enum { N = 200000 };
    for (uint64_t i = 0; i < N; i++)
        cr_assert_eq(ostree_insert(&t, i % 1000, i, ptr_of(i % 1000, i), NULL),
                     OSTREE_OK);
    check(&t);
    cr_assert_geq(t.height, 2);
    /* Remove every other, then the rest from the back, checking ranks. */
    for (uint64_t i = 0; i < N; i += 2)
        cr_assert_eq(ostree_remove(&t, i % 1000, i, NULL, NULL), OSTREE_OK);
    check(&t);
    cr_assert_eq(ostree_size(&t), N / 2);
    cr_assert_eq(ostree_rank(&t, 500, 0), 500 * (N / 2000));
    for (uint64_t i = N; i-- > 0;)
        if (i % 2)
            cr_assert_eq(ostree_remove(&t, i % 1000, i, NULL, NULL), OSTREE_OK);
    check(&t);
    cr_assert_eq(ostree_size(&t), 0);
    cr_assert_null(t.root);
    ostree_destroy(&t);
}

struct load_src {
    uint64_t n, bad; /* item `bad` repeats its predecessor (0: none) */
};

static void
load_get(void *ctx, size_t i, struct ostree_item *out)
{
    const struct load_src *s = ctx;
    uint64_t j = s->bad != 0 && i == s->bad ? i - 1 : i;
    out->key = j / 10;
    out->seq = j;
    out->ptr = ptr_of(j / 10, j);
}

Test(ostree, load_sorted_every_small_size_then_edit)
{
    for (uint64_t n = 0; n < 300; n++) {
        struct ostree t;
        struct load_src src = {n, 0};
        ostree_init(&t, NULL);
        cr_assert_eq(ostree_load_sorted(&t, n, load_get, &src), OSTREE_OK);
        check(&t);
        cr_assert_eq(ostree_size(&t), n);
        for (uint64_t i = 0; i < n; i++)
            cr_assert_eq(ostree_rank(&t, i / 10, i), i);
        /* Reserved for n: removing then inserting works either way. */
        if (n > 0) {
            cr_assert_eq(ostree_remove(&t, 0, 0, NULL, NULL), OSTREE_OK);
            cr_assert_eq(ostree_insert(&t, 0, 0, ptr_of(0, 0), NULL),
                         OSTREE_OK);
        }
        cr_assert_eq(ostree_insert(&t, UINT64_MAX, 0, NULL, NULL), OSTREE_OK);
        check(&t);
        ostree_destroy(&t);
    }
}

Test(ostree, load_sorted_large_and_refusals)
{
    struct ostree t;
    struct load_src src = {1000000, 0};
    ostree_init(&t, NULL);
    cr_assert_eq(ostree_load_sorted(&t, src.n, load_get, &src), OSTREE_OK);
    check(&t);
    cr_assert_eq(t.height, 3);
    cr_assert_eq(ostree_rank(&t, 77777, 777775), 777775);
    cr_assert_eq(ostree_load_sorted(&t, 5, load_get, &src), OSTREE_EXISTS);
    ostree_destroy(&t);

    /* A repeat in the middle: refused, the tree stays empty and usable. */
    src = (struct load_src){10000, 5000};
    ostree_init(&t, NULL);
    cr_assert_eq(ostree_load_sorted(&t, src.n, load_get, &src),
                 OSTREE_UNSORTED);
    cr_assert_eq(ostree_size(&t), 0);
    check(&t);
    src.bad = 0;
    cr_assert_eq(ostree_load_sorted(&t, src.n, load_get, &src), OSTREE_OK);
    check(&t);
    ostree_destroy(&t);
}

Test(ostree, allocation_failure_changes_nothing)
{
    struct fail_alloc fa = {-1, 0};
    struct ostree_alloc a = {fa_alloc, fa_free, &fa};
    struct ostree t;
    ostree_init(&t, &a);
    fa.budget = 0;
    cr_assert_eq(ostree_insert(&t, 1, 1, NULL, NULL), OSTREE_NOMEM);
    cr_assert_eq(ostree_size(&t), 0);
    check(&t);
    /* Insert until the pool runs dry with no allocation allowed: the
       failing insert changes nothing, ranks stay right. */
    fa.budget = -1;
    cr_assert_eq(ostree_insert(&t, 1, 1, NULL, NULL), OSTREE_OK);
    fa.budget = 0;
    uint64_t i = 2;
    int rc;
    while ((rc = ostree_insert(&t, i, i, ptr_of(i, i), NULL)) == OSTREE_OK)
        i++;
    cr_assert_eq(rc, OSTREE_NOMEM);
    cr_assert_eq(ostree_size(&t), i - 1);
    check(&t);
    cr_assert_eq(ostree_rank(&t, i, i), i - 1);
    struct load_src src = {1000, 0};
    struct ostree t2;
    ostree_init(&t2, &a);
    cr_assert_eq(ostree_load_sorted(&t2, src.n, load_get, &src), OSTREE_NOMEM);
    cr_assert_eq(ostree_size(&t2), 0);
    ostree_destroy(&t2);
    ostree_destroy(&t);
    cr_assert_eq(fa.live, 0, "every chunk freed");
}

Test(ostree, reserve_makes_inserts_infallible)
{
    struct fail_alloc fa = {-1, 0};
    struct ostree_alloc a = {fa_alloc, fa_free, &fa};
    struct ostree t;
    uint64_t s = 12345;
    ostree_init(&t, &a);
    for (size_t n = 1; n <= 20000; n = n * 3 + 7) {
        cr_assert_eq(ostree_reserve(&t, n), OSTREE_OK);
        fa.budget = 0; /* no allocation from here on */
        /* Fill to n in random order with removals mixed in: splits and
           merges land wherever they like, yet nothing may fail. */
        while (ostree_size(&t) < n) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t k = (s >> 33) % 100000;
            int rc = ostree_insert(&t, k, s, ptr_of(k, s), NULL);
            cr_assert(rc == OSTREE_OK || rc == OSTREE_EXISTS,
                      "insert at size %zu of %zu: %d", ostree_size(&t), n, rc);
            if (s % 5 == 0) {
                struct ostree_item it;
                struct ostree_cursor c;
                ostree_cursor_seek(&t, (s >> 20) % 100000, 0, &c);
                if (ostree_next(&c, &it))
                    cr_assert_eq(ostree_remove(&t, it.key, it.seq, NULL, NULL),
                                 OSTREE_OK);
            }
        }
        check(&t);
        fa.budget = -1;
    }
    ostree_destroy(&t);
    cr_assert_eq(fa.live, 0);
}

/* Items arriving in key order (orders pushed in deadline order, within
   each class) fill the leaves behind them, rather than leaving each one
   half full as splits alone would; a reserve hands out pool nodes only
   as they are needed. */
Test(ostree, appends_fill_the_leaves)
{
    const size_t n = 64 * 200, classes = 4;
    struct ostree t;
    ostree_init(&t, NULL);
    cr_assert_eq(ostree_reserve(&t, n), OSTREE_OK);
    size_t reserved = t.leaves.total;
    cr_assert_eq(t.leaves.nfree, reserved);
    /* Four runs growing at their ends at once, as four classes do. */
    for (size_t i = 0; i < n; i++) {
        uint64_t k = ((i % classes) << 60) | i;
        cr_assert_eq(ostree_insert(&t, k, i, ptr_of(k, i), NULL), OSTREE_OK);
    }
    check(&t);
    size_t used = t.leaves.total - t.leaves.nfree;
    /* Full leaves but for the last two of each run (a split leaves two
       half-full ones), and the pool did not grow past the reserve. */
    cr_assert_leq(used, n / 64 + 2 * classes, "%zu leaves for %zu items", used,
                  n);
    cr_assert_eq(t.leaves.total, reserved);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = ((i % classes) << 60) | i;
        cr_assert_eq(ostree_rank(&t, k, i),
                     (i % classes) * (n / classes) + i / classes);
    }
    ostree_destroy(&t);
}

/* ------------------------------------------------------------ model test */

#define MODEL_OPS 250000
#define MODEL_MAX 40000

struct mitem {
    uint64_t key, seq;
};

static bool
mlt(const struct mitem *a, uint64_t k, uint64_t s)
{
    return a->key < k || (a->key == k && a->seq < s);
}

/* Index of the first model item >= (k, s). */
static size_t
mlower(const struct mitem *m, size_t n, uint64_t k, uint64_t s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mlt(&m[mid], k, s))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint64_t rs;

static uint64_t
rnd(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * UINT64_C(2685821657736338717);
}

Test(ostree, model_random_operations, .timeout = 300)
{
    uint64_t seed;
    const char *env = getenv("OSTREE_SEED");
    if (env != NULL)
        seed = strtoull(env, NULL, 0);
    else
        seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    rs = seed | 1;
    struct mitem *m = calloc(MODEL_MAX + 1, sizeof(*m));
    cr_assert_not_null(m);
    size_t n = 0;
    struct ostree t;
    ostree_init(&t, NULL);
    char err[128];
    /* Phases: grow towards a random target, then shrink; keys from a
       narrow range (many ties, decided by seq) or a wide one. */
    size_t target = 0;
    uint64_t key_range = 16;
    for (long op = 0; op < MODEL_OPS; op++) {
        if (op % 20000 == 0) {
            target = (size_t)(rnd() % MODEL_MAX);
            key_range = rnd() % 2 ? 16 : UINT64_MAX;
        }
        uint64_t r = rnd() % 100;
        bool grow = n < target;
        if (r < (grow ? 55u : 25u) && n < MODEL_MAX) {
            /* insert, sometimes a duplicate */
            uint64_t k, s;
            if (n > 0 && rnd() % 20 == 0) {
                size_t j = (size_t)(rnd() % n);
                k = m[j].key;
                s = m[j].seq;
            } else {
                k = key_range == UINT64_MAX ? rnd() : rnd() % key_range;
                s = rnd() % 1000000;
            }
            size_t pos = mlower(m, n, k, s);
            bool dup = pos < n && m[pos].key == k && m[pos].seq == s;
            size_t rank = (size_t)-1;
            int rc = ostree_insert(&t, k, s, ptr_of(k, s), &rank);
            if (dup) {
                cr_assert_eq(rc, OSTREE_EXISTS, "seed %" PRIu64 " op %ld", seed,
                             op);
                continue;
            }
            cr_assert_eq(rc, OSTREE_OK, "seed %" PRIu64 " op %ld", seed, op);
            cr_assert_eq(rank, pos, "seed %" PRIu64 " op %ld insert rank", seed,
                         op);
            memmove(&m[pos + 1], &m[pos], (n - pos) * sizeof(*m));
            m[pos] = (struct mitem){k, s};
            n++;
        } else if (r < 80) {
            /* remove: present mostly, absent sometimes */
            uint64_t k, s;
            if (n > 0 && rnd() % 10 != 0) {
                size_t j = (size_t)(rnd() % n);
                k = m[j].key;
                s = m[j].seq;
            } else {
                k = rnd() % 16;
                s = rnd() % 1000000;
            }
            size_t pos = mlower(m, n, k, s);
            bool present = pos < n && m[pos].key == k && m[pos].seq == s;
            void *p = NULL;
            size_t rank = (size_t)-1;
            int rc = ostree_remove(&t, k, s, &p, &rank);
            if (!present) {
                cr_assert_eq(rc, OSTREE_NOTFOUND, "seed %" PRIu64 " op %ld",
                             seed, op);
                continue;
            }
            cr_assert_eq(rc, OSTREE_OK, "seed %" PRIu64 " op %ld", seed, op);
            cr_assert_eq(rank, pos, "seed %" PRIu64 " op %ld remove rank", seed,
                         op);
            cr_assert_eq(p, ptr_of(k, s), "seed %" PRIu64 " op %ld", seed, op);
            memmove(&m[pos], &m[pos + 1], (n - pos - 1) * sizeof(*m));
            n--;
        } else if (r < 90) {
            /* rank of a present item or of any point */
            uint64_t k, s;
            if (n > 0 && rnd() % 2) {
                size_t j = (size_t)(rnd() % n);
                k = m[j].key;
                s = m[j].seq;
            } else {
                k = key_range == UINT64_MAX ? rnd() : rnd() % key_range;
                s = rnd() % 1000000;
            }
            cr_assert_eq(ostree_rank(&t, k, s), mlower(m, n, k, s),
                         "seed %" PRIu64 " op %ld rank", seed, op);
        } else if (r < 97) {
            /* iterate up to 300 items from a point */
            uint64_t k, s;
            if (n > 0 && rnd() % 2) {
                size_t j = (size_t)(rnd() % n);
                k = m[j].key;
                s = m[j].seq;
            } else {
                k = key_range == UINT64_MAX ? rnd() : rnd() % key_range;
                s = rnd() % 1000000;
            }
            struct ostree_cursor c;
            struct ostree_item it;
            ostree_cursor_seek(&t, k, s, &c);
            size_t j = mlower(m, n, k, s);
            size_t want = (size_t)(rnd() % 300);
            for (size_t i = 0; i < want; i++, j++) {
                bool got = ostree_next(&c, &it);
                cr_assert_eq(got, j < n, "seed %" PRIu64 " op %ld iter", seed,
                             op);
                if (!got)
                    break;
                cr_assert(it.key == m[j].key && it.seq == m[j].seq &&
                              it.ptr == ptr_of(it.key, it.seq),
                          "seed %" PRIu64 " op %ld iter item %zu", seed, op, i);
            }
        } else {
            struct ostree_item it;
            bool got = ostree_first(&t, &it);
            cr_assert_eq(got, n > 0, "seed %" PRIu64 " op %ld", seed, op);
            if (got)
                cr_assert(it.key == m[0].key && it.seq == m[0].seq,
                          "seed %" PRIu64 " op %ld first", seed, op);
        }
        cr_assert_eq(ostree_size(&t), n, "seed %" PRIu64 " op %ld size", seed,
                     op);
        if (op % 5000 == 0 || n < 100) {
            int rc = ostree_check(&t, err, sizeof(err));
            cr_assert_eq(rc, 0, "seed %" PRIu64 " op %ld: %s", seed, op, err);
        }
    }
    check(&t);
    ostree_destroy(&t);
    free(m);
}
