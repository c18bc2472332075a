/*
 * test_idmap.c — the id index: adds one by one and in bulk
 * (idmap_add_many, whose prefetching pipeline has edges at every multiple
 * of its look-ahead), finds, deletes and clears, against a plain array of
 * what should be in the table.
 */
#include "idmap.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct order **
make_orders(size_t n, const char *prefix)
{
    struct order **os = calloc(n ? n : 1, sizeof(*os));
    cr_assert_not_null(os);
    for (size_t i = 0; i < n; i++) {
        char id[40];
        snprintf(id, sizeof id, "%s-%06zu", prefix, i * 7919 % 1000003);
        os[i] = order_new();
        cr_assert_not_null(os[i]);
        cr_assert_eq(order_set_id(os[i], id, strlen(id)), 0);
    }
    return os;
}

static void
free_orders(struct order **os, size_t n)
{
    for (size_t i = 0; i < n; i++)
        order_free(os[i]);
    free(os);
}

/* Every one of os[0..n) is found as itself, and the table counts them. */
static void
all_found(const struct idmap *m, struct order **os, size_t n, size_t total)
{
    cr_assert_eq(idmap_count(m), total);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(idmap_find(m, os[i]->id, strlen(os[i]->id)), os[i],
                     "%s not found (n = %zu)", os[i]->id, n);
}

static size_t chain_total;

static void
count_one(struct order *o)
{
    (void)o;
    chain_total++;
}

Test(idmap, add_many_at_every_edge_of_the_look_ahead)
{
    static const size_t sizes[] = {0,  1,  2,  7,  8,  9,   15,  16,
                                   17, 23, 24, 25, 33, 100, 5000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        struct order **os = make_orders(n, "bulk");
        struct idmap m;
        idmap_init(&m);
        size_t added = 99;
        cr_assert_eq(idmap_add_many(&m, os, n, &added), 0);
        cr_assert_eq(added, n);
        all_found(&m, os, n, n);
        cr_assert_null(idmap_find(&m, "bulk-none", 9));
        /* Every chain link is sound: clearing visits each order once. */
        chain_total = 0;
        idmap_clear(&m, count_one);
        cr_assert_eq(chain_total, n);
        cr_assert_eq(idmap_count(&m), 0);
        idmap_destroy(&m);
        free_orders(os, n);
    }
}

/* A bulk add into a table that holds orders already, and one that needs
   more buckets than the table has; then deletes of both kinds. */
Test(idmap, add_many_after_single_adds_then_delete)
{
    size_t n1 = 300, n2 = 2000;
    struct order **a = make_orders(n1, "one");
    struct order **b = make_orders(n2, "many");
    struct idmap m;
    idmap_init(&m);
    for (size_t i = 0; i < n1; i++)
        cr_assert_eq(idmap_add(&m, a[i]), 0);
    size_t added = 0;
    cr_assert_eq(idmap_add_many(&m, b, n2, &added), 0);
    cr_assert_eq(added, n2);
    all_found(&m, a, n1, n1 + n2);
    all_found(&m, b, n2, n1 + n2);
    for (size_t i = 0; i < n2; i += 2)
        idmap_del(&m, b[i]);
    for (size_t i = 1; i < n1; i += 2)
        idmap_del(&m, a[i]);
    cr_assert_eq(idmap_count(&m), n1 + n2 - n2 / 2 - n1 / 2);
    for (size_t i = 0; i < n2; i++)
        cr_assert_eq(idmap_find(&m, b[i]->id, strlen(b[i]->id)),
                     i % 2 ? b[i] : NULL, "%s", b[i]->id);
    for (size_t i = 0; i < n1; i++)
        cr_assert_eq(idmap_find(&m, a[i]->id, strlen(a[i]->id)),
                     i % 2 ? NULL : a[i], "%s", a[i]->id);
    idmap_destroy(&m);
    free_orders(a, n1);
    free_orders(b, n2);
}
