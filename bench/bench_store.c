/*
 * bench_store — what group commit buys, and how long recovery reads take.
 *
 *   1. RocksDB alone: a synced WriteBatch of B records written as
 *      rocksdb_write(sync=1) versus rocksdb_write(sync=0) followed by
 *      rocksdb_flush_wal(db, 1): which way store.c syncs a group.
 *   2. The store in sync mode: durable puts per second when the submitter
 *      keeps K puts outstanding (submit K, wait until the last is durable,
 *      repeat).  K = 1 is a synchronous client; larger K is what many
 *      clients of the daemon look like, and the persistence thread turns
 *      them into groups.
 *   3. store_load of 10^5 and 10^6 stored orders (the startup read).  The
 *      stores are built once under the data directory and reused.
 *
 * Every figure is the median of the runs (-r, default 3).
 *
 *   usage: bench_store [-d DATA_DIR] [-r RUNS] [-t SECONDS] [-q]
 *     -d  where the stores live (default build/bench-store, from the repo)
 *     -t  length of one timed write run (default 1.0)
 *     -q  quick: skip the 10^6 store
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "store.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, const char *why)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, why);
    exit(1);
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
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
mkdir_p(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            die(buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        die(buf, strerror(errno));
}

/* A typical order: a few short attributes, about 200 bytes encoded. */
static struct order *
make_order(uint64_t i)
{
    struct order *o = order_new();
    if (o == NULL)
        die("order_new", "out of memory");
    char buf[96];
    int n =
        snprintf(buf, sizeof buf, "RD20251127-%08llu", (unsigned long long)i);
    order_set_id(o, buf, (size_t)n);
    n = snprintf(buf, sizeof buf, "WH-%llu", (unsigned long long)(i % 8));
    order_set_warehouse(o, buf, (size_t)n);
    n = snprintf(buf, sizeof buf, "dealer %llu",
                 (unsigned long long)(i % 5000));
    order_set_customer(o, buf, (size_t)n);
    o->cls = (uint8_t)(i % CLASS_COUNT);
    o->eff_cls = o->cls;
    o->state = STATE_QUEUED;
    o->deadline = 1769407200000 + (int64_t)(i * 1000);
    o->created = 1769400000000 + (int64_t)i;
    o->updated = o->created;
    o->seq = i;
    o->audit_n = 2;
    char err[128];
    const char *kv[][2] = {{"carrier", "SF Express"},
                           {"packaging", "wooden crate, fragile"},
                           {"erp_ref", "SO-2025-11-27-000892"}};
    for (int k = 0; k < 3; k++)
        if (order_attr_set(o, kv[k][0], strlen(kv[k][0]), kv[k][1],
                           strlen(kv[k][1]), err, sizeof err) != 0)
            die("order_attr_set", err);
    return o;
}

/* ---- 1: the sync method, RocksDB alone ---- */

static double
raw_batch_us(rocksdb_t *db, int batch, bool by_flush, double secs,
             const char *val, size_t vlen)
{
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, by_flush ? 0 : 1);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint64_t key = 0;
    long groups = 0;
    double t0 = now_s(), t;
    do {
        rocksdb_writebatch_clear(b);
        for (int i = 0; i < batch; i++, key++) {
            char k[32];
            int kl = snprintf(k, sizeof k, "k%012llu",
                              (unsigned long long)(key % 100000));
            rocksdb_writebatch_put(b, k, (size_t)kl, val, vlen);
        }
        char *err = NULL;
        rocksdb_write(db, wo, b, &err);
        if (err == NULL && by_flush)
            rocksdb_flush_wal(db, 1, &err);
        if (err != NULL)
            die("rocksdb_write", err);
        groups++;
        t = now_s();
    } while (t - t0 < secs);
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    return (t - t0) * 1e6 / (double)groups;
}

static void
bench_sync_method(const char *dir, int runs, double secs)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/raw", dir);
    rocksdb_options_t *opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(opt, 1);
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(opt, path, &err);
    if (err != NULL)
        die(path, err);
    char val[200];
    memset(val, 'v', sizeof val);

    printf("\n1. one synced WriteBatch, RocksDB alone (%d runs, median)\n\n",
           runs);
    printf("| records per batch | write(sync=1) us/batch | "
           "write + flush_wal(1) us/batch | us/record (sync=1) |\n");
    printf("|---:|---:|---:|---:|\n");
    const int sizes[] = {1, 64, 256};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        double a[16], b[16];
        for (int r = 0; r < runs; r++) {
            a[r] = raw_batch_us(db, sizes[s], false, secs / 2, val, sizeof val);
            b[r] = raw_batch_us(db, sizes[s], true, secs / 2, val, sizeof val);
        }
        double ma = median(a, runs), mb = median(b, runs);
        printf("| %d | %.1f | %.1f | %.2f |\n", sizes[s], ma, mb,
               ma / sizes[s]);
    }
    rocksdb_close(db);
    rocksdb_options_destroy(opt);
}

/* ---- 2: durable puts through the store ---- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static struct waiter waiter = {PTHREAD_MUTEX_INITIALIZER,
                               PTHREAD_COND_INITIALIZER};

static void
on_wake(void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
wait_durable(struct store *s, uint64_t ticket)
{
    pthread_mutex_lock(&waiter.mu);
    while (store_durable(s) < ticket) {
        char why[256];
        if (!store_ok(s, why, sizeof why))
            die("store", why);
        pthread_cond_wait(&waiter.cv, &waiter.mu);
    }
    pthread_mutex_unlock(&waiter.mu);
}

static struct store *
open_store(const char *path, int durability)
{
    struct store_options opt;
    store_options_default(&opt);
    opt.durability = durability;
    opt.wake = on_wake;
    opt.wake_arg = &waiter;
    char err[512];
    struct store *s = store_open(path, &opt, err, sizeof err);
    if (s == NULL)
        die("store_open", err);
    return s;
}

struct put_result {
    double puts_per_s;
    double mean_group;
    double sync_us;
};

static struct put_result
durable_puts(struct store *s, struct order **pool, int npool, int outstanding,
             double secs)
{
    struct store_stats a, b;
    struct audit_entry e = {.at = 1769407200000,
                            .action = ACTION_TOUCH,
                            .from = STATE_PICKING,
                            .to = STATE_PICKING,
                            .actor = "wms-3",
                            .actor_len = 5,
                            .raw = "TOUCH RD20251127-00000001 300",
                            .raw_len = 29,
                            .note = "lease 42",
                            .note_len = 8};
    store_stats(s, &a);
    long puts = 0;
    double t0 = now_s(), t;
    do {
        uint64_t ticket = 0;
        for (int i = 0; i < outstanding; i++, puts++) {
            struct order *o = pool[puts % npool];
            o->audit_n++;
            ticket = store_put(s, o, &e);
            if (ticket == 0)
                die("store_put", "refused");
        }
        wait_durable(s, ticket);
        t = now_s();
    } while (t - t0 < secs);
    store_stats(s, &b);
    struct put_result r;
    r.puts_per_s = (double)puts / (t - t0);
    r.mean_group =
        (double)(b.records - a.records) / (double)(b.groups - a.groups);
    r.sync_us = (double)(b.sync_us_total - a.sync_us_total) /
                (double)(b.syncs - a.syncs);
    return r;
}

static void
bench_puts(const char *dir, int runs, double secs)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/puts", dir);
    struct store *s = open_store(path, STORE_SYNC);
    enum { NPOOL = 4096 };
    static struct order *pool[NPOOL];
    for (int i = 0; i < NPOOL; i++)
        pool[i] = make_order((uint64_t)i);

    printf("\n2. durable puts through the store, sync mode, each with an "
           "audit entry (%d runs of %.1f s, median)\n\n",
           runs, secs);
    printf("| outstanding puts | durable puts/s | mean group | "
           "us per group write+sync |\n");
    printf("|---:|---:|---:|---:|\n");
    const int ks[] = {1, 8, 64, 256};
    for (size_t k = 0; k < sizeof ks / sizeof *ks; k++) {
        double p[16], g[16], u[16];
        for (int r = 0; r < runs; r++) {
            struct put_result res = durable_puts(s, pool, NPOOL, ks[k], secs);
            p[r] = res.puts_per_s;
            g[r] = res.mean_group;
            u[r] = res.sync_us;
        }
        printf("| %d | %.0f | %.1f | %.0f |\n", ks[k], median(p, runs),
               median(g, runs), median(u, runs));
    }
    store_close(s);
    for (int i = 0; i < NPOOL; i++)
        order_free(pool[i]);
}

/* ---- 3: store_load ---- */

struct sink {
    struct order **o;
    size_t n;
};

static int
keep(void *ctx, struct order *o)
{
    struct sink *k = ctx;
    k->o[k->n++] = o;
    return 0;
}

static void
build_store(const char *path, size_t n)
{
    char mark[1100];
    snprintf(mark, sizeof mark, "%s/BENCH_COMPLETE", path);
    if (access(mark, F_OK) == 0)
        return;
    fprintf(stderr, "building %s (%zu orders, once)...\n", path, n);
    double t0 = now_s();
    struct store *s = open_store(path, STORE_NONE);
    for (size_t i = 0; i < n; i++) {
        struct order *o = make_order(i);
        if (store_put(s, o, NULL) == 0)
            die("store_put", "refused");
        order_free(o);
    }
    store_close(s);
    FILE *f = fopen(mark, "w");
    if (f == NULL || fclose(f) != 0)
        die(mark, strerror(errno));
    fprintf(stderr, "built in %.1f s\n", now_s() - t0);
}

static void
bench_load(const char *dir, int runs, bool quick)
{
    printf("\n3. store_load: open, then decode every order into a new "
           "struct order (%d runs, median)\n\n",
           runs);
    printf("| orders | open ms | load ms | ns per order |\n");
    printf("|---:|---:|---:|---:|\n");
    const size_t ns[] = {100000, 1000000};
    for (size_t k = 0; k < (quick ? 1u : 2u); k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/load-%zu", dir, ns[k]);
        build_store(path, ns[k]);
        struct sink sink = {malloc(ns[k] * sizeof *sink.o), 0};
        if (sink.o == NULL)
            die("malloc", "out of memory");
        double op[16], ld[16];
        for (int r = 0; r < runs; r++) {
            double t0 = now_s();
            struct store *s = open_store(path, STORE_SYNC);
            double t1 = now_s();
            char err[512];
            sink.n = 0;
            if (store_load(s, keep, &sink, err, sizeof err) != 0)
                die("store_load", err);
            double t2 = now_s();
            if (sink.n != ns[k])
                die(path, "wrong number of orders loaded");
            store_close(s);
            for (size_t i = 0; i < sink.n; i++)
                order_free(sink.o[i]);
            op[r] = (t1 - t0) * 1e3;
            ld[r] = (t2 - t1) * 1e3;
        }
        double l = median(ld, runs);
        printf("| %zu | %.1f | %.1f | %.0f |\n", ns[k], median(op, runs), l,
               l * 1e6 / (double)ns[k]);
        free(sink.o);
    }
}

int
main(int argc, char **argv)
{
    const char *dir = "build/bench-store";
    int runs = 3;
    double secs = 1.0;
    bool quick = false;
    int c;
    while ((c = getopt(argc, argv, "d:r:t:q")) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 't':
            secs = atof(optarg);
            break;
        case 'q':
            quick = true;
            break;
        default:
            fprintf(stderr, "usage: bench_store [-d DATA_DIR] [-r RUNS] "
                            "[-t SECONDS] [-q]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 16 || secs <= 0) {
        fprintf(stderr, "bench_store: runs must be 1..16, seconds > 0\n");
        return 2;
    }
    mkdir_p(dir);
    /* The write benches start from empty directories each time. */
    char tmpl[1100];
    snprintf(tmpl, sizeof tmpl, "%s/run.XXXXXX", dir);
    char *tmp = mkdtemp(tmpl);
    if (tmp == NULL)
        die(tmpl, strerror(errno));

    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    bench_sync_method(tmp, runs, secs);
    bench_puts(tmp, runs, secs);
    bench_load(dir, runs, quick);

    if (nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "bench_store: could not remove %s\n", tmp);
    return 0;
}
