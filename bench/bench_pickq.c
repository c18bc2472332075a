/*
 * bench_pickq.c — the pick queue's commands at a steady queue size, through
 * the public pickq API (so the same file measures any position index).
 *
 * One warehouse holds n queued orders (classes 5% asn, 20% rush4h, 30%
 * rush24h, 45% normal; deadlines spread over 10 days), pushed before timing.
 * Then every case runs `runs` times, interleaved, and the median ns per op
 * is printed.  Ops are timed in batches (clock_gettime around a batch), and
 * whatever a batch changed is undone outside the timed part, so the size
 * stays n:
 *
 *   push-approved  pickq_push of a queued order, no jump report asked;
 *                  then, untimed, as many next+outbound and
 *                  pickq_forget_finished
 *   push+jump      the same with a jump report (as the daemon calls it:
 *                  orders not normal walk up to jump_scan = 256 orders
 *                  behind them)
 *   next+release   pickq_next then pickq_release of the same order
 *                                                   ns per next+release
 *   position       pickq_position of a random queued order
 *   reprio+jump    pickq_reprio of a random rush24h or normal order one
 *                  class up, with a jump report (jump_scan 256); the way
 *                  back is untimed
 *   peek 20        pickq_peek of the first 20
 *   restore        pickq_restore of n queued orders in id order, then
 *                  pickq_restore_done (ns per order; one run per size,
 *                  fresh queue, as after a restart)
 *
 * Orders are allocated and filled outside the timed part.
 *
 * Usage: bench_pickq [--runs N] [--n N]...   (default 7 runs; n = 10^3,
 *        10^5, 10^6)
 */
#include "pickq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T0 INT64_C(1769407200000) /* 2026-01-26T06:00:00Z */
#define HOUR INT64_C(3600000)
#define OPS 20000       /* ops per case per run */
#define REPRIO_OPS 5000 /* reprio+jump is slower: fewer */
#define NCASE 7

static const char *const CASE[NCASE] = {
    "push-approved", "push+jump", "next+release", "position",
    "reprio+jump",   "peek 20",   "restore",
};

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint64_t
rnd(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * UINT64_C(2685821657736338717);
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

static void
die(const char *what, int rc)
{
    fprintf(stderr, "bench_pickq: %s failed (%d)\n", what, rc);
    exit(1);
}

static uint64_t next_id;

/* A new order for warehouse W1 with a random class and deadline. */
static struct order *
mk_order(int state)
{
    struct order *o = order_new();
    char id[32];
    if (o == NULL)
        die("order_new", PICKQ_NOMEM);
    int n = snprintf(id, sizeof(id), "O%012" PRIu64, ++next_id);
    if (order_set_id(o, id, (size_t)n) < 0 ||
        order_set_warehouse(o, "W1", 2) < 0 ||
        order_set_customer(o, "ACME", 4) < 0)
        die("order_set", -1);
    uint64_t r = rnd() % 100;
    o->cls = r < 5    ? CLASS_ASN
             : r < 25 ? CLASS_RUSH4H
             : r < 55 ? CLASS_RUSH24H
                      : CLASS_NORMAL;
    o->deadline = T0 + HOUR + (int64_t)(rnd() % (240 * (uint64_t)HOUR));
    o->state = (uint8_t)state;
    if (o->cls == CLASS_ASN &&
        (order_attr_set(o, "asn_number", 10, "ASN-1", 5, NULL, 0) < 0 ||
         order_attr_set(o, "tech_agreement", 14, "TA-1", 4, NULL, 0) < 0))
        die("order_attr_set", -1);
    return o;
}

static void
push_one(struct pickq *q, struct order *o, bool report)
{
    struct pickq_jump jump;
    char err[128];
    int rc = pickq_push(q, o, T0, report ? &jump : NULL, err, sizeof(err));
    if (rc != PICKQ_OK) {
        fprintf(stderr, "push: %s\n", err);
        die("pickq_push", rc);
    }
}

/* Pop `k` orders and ship them (untimed upkeep). */
static void
drain(struct pickq *q, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        struct order *o;
        int rc = pickq_next(q, "W1", "p", 0, T0, &o);
        if (rc != PICKQ_OK)
            die("pickq_next", rc);
        rc = pickq_outbound(q, o, "op", T0, T0, NULL);
        if (rc != PICKQ_OK)
            die("pickq_outbound", rc);
    }
    pickq_forget_finished(q, T0 + 1, NULL, NULL);
}

/* The queued orders now, in pick order (for picking random ones). */
static size_t
snapshot(struct pickq *q, size_t n, struct order **all)
{
    size_t got = pickq_peek(q, "W1", n, all);
    if (got == (size_t)-1)
        die("pickq_peek", PICKQ_NOMEM);
    return got;
}

static double
case_push(struct pickq *q, size_t n, bool report)
{
    size_t batch = n / 100 < 1 ? 1 : n / 100 > 1000 ? 1000 : n / 100;
    struct order *os[1000];
    double t = 0;
    size_t done = 0;
    while (done < OPS) {
        for (size_t i = 0; i < batch; i++)
            os[i] = mk_order(STATE_QUEUED);
        double t0 = now_ns();
        for (size_t i = 0; i < batch; i++)
            push_one(q, os[i], report);
        t += now_ns() - t0;
        drain(q, batch);
        done += batch;
    }
    return t / (double)done;
}

static double
case_next_release(struct pickq *q, size_t n)
{
    size_t batch = n / 100 < 1 ? 1 : n / 100 > 1000 ? 1000 : n / 100;
    struct order *os[1000];
    double t0 = now_ns();
    size_t done = 0;
    while (done < OPS) {
        for (size_t i = 0; i < batch; i++) {
            int rc = pickq_next(q, "W1", "p", 0, T0, &os[i]);
            if (rc != PICKQ_OK)
                die("pickq_next", rc);
        }
        for (size_t i = 0; i < batch; i++) {
            int rc = pickq_release(q, os[i], os[i]->lease, T0);
            if (rc != PICKQ_OK)
                die("pickq_release", rc);
        }
        done += batch;
    }
    return (now_ns() - t0) / (double)done;
}

static double
case_position(struct pickq *q, struct order **all, size_t n)
{
    static struct order *pick[OPS];
    for (size_t i = 0; i < OPS; i++)
        pick[i] = all[rnd() % n];
    size_t sum = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < OPS; i++) {
        size_t r;
        int rc = pickq_position(q, pick[i], &r, NULL);
        if (rc != PICKQ_OK)
            die("pickq_position", rc);
        sum += r;
    }
    double t = now_ns() - t0;
    if (sum == (size_t)-1)
        printf("(checksum)\n");
    return t / OPS;
}

static double
case_reprio(struct pickq *q, struct order **all, size_t n)
{
    enum { B = 100 };
    struct order *os[B];
    int cls[B];
    double t = 0;
    size_t done = 0;
    while (done < REPRIO_OPS) {
        size_t k = 0;
        while (k < B) {
            struct order *o = all[rnd() % n];
            bool dup = false;
            for (size_t j = 0; j < k; j++)
                dup |= os[j] == o;
            if (dup || o->cls < CLASS_RUSH24H)
                continue;
            os[k] = o;
            cls[k++] = o->cls;
        }
        double t0 = now_ns();
        for (size_t i = 0; i < B; i++) {
            struct pickq_jump jump;
            int rc = pickq_reprio(q, os[i], cls[i] - 1, 0, T0, &jump, NULL, 0);
            if (rc != PICKQ_OK)
                die("pickq_reprio", rc);
        }
        t += now_ns() - t0;
        for (size_t i = 0; i < B; i++) {
            int rc = pickq_reprio(q, os[i], cls[i], 0, T0, NULL, NULL, 0);
            if (rc != PICKQ_OK)
                die("pickq_reprio back", rc);
        }
        done += B;
    }
    return t / (double)done;
}

static double
case_peek(struct pickq *q)
{
    struct order *out[20];
    size_t sum = 0;
    double t0 = now_ns();
    for (size_t i = 0; i < OPS; i++)
        sum += pickq_peek(q, "W1", 20, out);
    double t = now_ns() - t0;
    if (sum != (size_t)OPS * 20)
        die("pickq_peek", -1);
    return t / OPS;
}

/* Restore n queued orders into a fresh queue: ns per order. */
static double
case_restore(size_t n)
{
    struct order **os = malloc(n * sizeof(*os));
    struct pickq *q = pickq_new(NULL);
    if (os == NULL || q == NULL)
        die("malloc", PICKQ_NOMEM);
    for (size_t i = 0; i < n; i++) {
        os[i] = mk_order(STATE_QUEUED);
        os[i]->eff_cls = os[i]->cls;
        os[i]->seq = i + 1;
    }
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        int rc = pickq_restore(q, os[i]);
        if (rc != PICKQ_OK)
            die("pickq_restore", rc);
    }
    int rc = pickq_restore_done(q);
    double t = now_ns() - t0;
    if (rc != PICKQ_OK)
        die("pickq_restore_done", rc);
    pickq_free(q);
    free(os);
    return t / (double)n;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
    size_t sizes[8] = {1000, 100000, 1000000};
    int nsizes = 3, runs = 7;
    bool custom = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1 || runs > 99)
                die("--runs 1..99", -1);
        } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            if (!custom)
                nsizes = 0;
            custom = true;
            long long v = atoll(argv[++i]);
            if (v < 100 || nsizes == 8)
                die("--n >= 100 (at most 8)", -1);
            sizes[nsizes++] = (size_t)v;
        } else {
            fprintf(stderr, "usage: %s [--runs N] [--n N]...\n", argv[0]);
            return 2;
        }
    }
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n%d runs, median ns per op (restore: 1 run, ns per order)\n\n",
           runs);
    printf("%-14s", "case");
    for (int s = 0; s < nsizes; s++)
        printf(" %10zu", sizes[s]);
    printf("\n");

    double res[NCASE][8];
    for (int s = 0; s < nsizes; s++) {
        size_t n = sizes[s];
        struct pickq *q = pickq_new(NULL);
        struct order **all = malloc(n * sizeof(*all));
        if (q == NULL || all == NULL)
            die("malloc", PICKQ_NOMEM);
        for (size_t i = 0; i < n; i++)
            push_one(q, mk_order(STATE_QUEUED), false);
        double v[NCASE][100];
        for (int r = 0; r < runs; r++) {
            v[0][r] = case_push(q, n, false);
            v[1][r] = case_push(q, n, true);
            v[2][r] = case_next_release(q, n);
            size_t m = snapshot(q, n, all);
            v[3][r] = case_position(q, all, m);
            v[4][r] = case_reprio(q, all, m);
            v[5][r] = case_peek(q);
        }
        for (int c = 0; c < NCASE - 1; c++)
            res[c][s] = median(v[c], runs);
        pickq_free(q);
        free(all);
        res[NCASE - 1][s] = case_restore(n);
    }
    for (int c = 0; c < NCASE; c++) {
        printf("%-14s", CASE[c]);
        for (int s = 0; s < nsizes; s++)
            printf(" %10.1f", res[c][s]);
        printf("\n");
    }
    return 0;
}
