/*
 * Tests of persist/: the record codec (round trips, every truncation,
 * byte flips) and the store on a real RocksDB in a temporary directory
 * (reopen, audit prefix scans, deletes, durability modes, group commit,
 * format refusal, checkpoints, corrupt records, and a full disk made with
 * a small tmpfs).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "store.h"

/* The record format version record_encode writes. */
#define RECORD_CURRENT 2

/* ---- helpers: orders ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void
set_attr(struct order *o, const char *k, const char *v, size_t vlen)
{
    char err[128];
    int rc = order_attr_set(o, k, strlen(k), v, vlen, err, sizeof err);
    cr_assert_eq(rc, 0, "attr %s: %s", k, err);
}

/* An order with every field set to something other than its default;
   nattrs attributes whose values are vlen bytes (random non-NUL bytes when
   noisy, so they do not compress). */
static struct order *
make_order(const char *id, unsigned salt, int nattrs, size_t vlen, bool noisy)
{
    struct order *o = order_new();
    cr_assert_not_null(o);
    cr_assert_eq(order_set_id(o, id, strlen(id)), 0);
    char buf[ORDER_ATTR_VAL_MAX + 1];
    snprintf(buf, sizeof buf, "WH-%u", salt % 7);
    cr_assert_eq(order_set_warehouse(o, buf, strlen(buf)), 0);
    snprintf(buf, sizeof buf, "customer %u", salt);
    cr_assert_eq(order_set_customer(o, buf, strlen(buf)), 0);
    o->cls = (uint8_t)(salt % CLASS_COUNT);
    o->eff_cls = (uint8_t)(o->cls > 0 ? o->cls - 1 : 0);
    o->state = (uint8_t)(salt % STATE_COUNT);
    o->source = (uint8_t)((salt + 1) % SOURCE_COUNT);
    o->fulfil = (uint8_t)((salt + 2) % FULFIL_COUNT);
    o->risk = (uint8_t)(salt % (RISK_ALL + 1));
    o->deadline = 1769407200000 + salt;
    o->created = 1769400000000 - (int64_t)salt;
    o->updated = -1 - (int64_t)salt;
    o->seq = UINT64_MAX - salt;
    o->lease = ((uint64_t)1 << 40) + salt;
    o->lease_expires = INT64_MAX - salt;
    o->picked_at = INT64_MIN + salt;
    char name[32];
    snprintf(name, sizeof name, "picker-%u", salt);
    cr_assert_eq(order_set_picker(o, name, strlen(name)), 0);
    bool finished = order_state_finished(o->state); /* else the bytes
                                                       are the heap's */
    if (finished)
        o->outbound_at = 1769409999000 + salt;
    snprintf(name, sizeof name, "op-%u", salt);
    cr_assert_eq(order_set_operator(o, name, strlen(name)), 0);
    o->outbound_leased = salt % 2;
    if (finished)
        o->delivered_at = 1769500000000 + salt;
    o->pick_done_at = 1769405000000 - (int64_t)salt * 3;
    o->unconfirmed_fired = salt % 3 == 1;
    o->audit_n = UINT32_MAX - salt;
    for (int i = 0; i < nattrs; i++) {
        char k[ORDER_ATTR_KEY_MAX + 1];
        snprintf(k, sizeof k, "key%02d-%u", i, salt);
        for (size_t j = 0; j < vlen; j++)
            buf[j] = noisy ? (char)(1 + rng() % 255) : (char)('a' + j % 26);
        set_attr(o, k, buf, vlen);
    }
    return o;
}

static void
assert_order_eq(const struct order *a, const struct order *b)
{
    cr_assert_str_eq(a->id, b->id);
    cr_assert_str_eq(a->warehouse, b->warehouse);
    cr_assert_str_eq(a->customer, b->customer);
    cr_assert_eq(a->cls, b->cls);
    cr_assert_eq(a->eff_cls, b->eff_cls);
    cr_assert_eq(a->state, b->state);
    cr_assert_eq(a->source, b->source);
    cr_assert_eq(a->fulfil, b->fulfil);
    cr_assert_eq(a->risk, b->risk);
    cr_assert_eq(a->deadline, b->deadline);
    cr_assert_eq(a->created, b->created);
    cr_assert_eq(a->updated, b->updated);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_eq(a->lease, b->lease);
    cr_assert_eq(a->lease_expires, b->lease_expires);
    cr_assert_eq(a->picked_at, b->picked_at);
    cr_assert_str_eq(a->picker, b->picker);
    cr_assert_eq(order_outbound_at(a), order_outbound_at(b));
    cr_assert_str_eq(a->operator_, b->operator_);
    cr_assert_eq(a->outbound_leased, b->outbound_leased);
    cr_assert_eq(order_delivered_at(a), order_delivered_at(b));
    cr_assert_eq(a->pick_done_at, b->pick_done_at);
    cr_assert_eq(a->unconfirmed_fired, b->unconfirmed_fired);
    cr_assert_eq(a->audit_n, b->audit_n);
    cr_assert_eq(a->nattrs, b->nattrs);
    cr_assert_eq(a->attrs_len, b->attrs_len);
    if (a->attrs_len > 0)
        cr_assert_eq(memcmp(a->attrs, b->attrs, a->attrs_len), 0);
}

static char *
encode(const struct order *o, size_t *len)
{
    *len = record_encode(o, NULL, 0);
    char *buf = malloc(*len);
    cr_assert_not_null(buf);
    cr_assert_eq(record_encode(o, buf, *len), *len);
    return buf;
}

/* ---- the record codec ---- */

Test(record, round_trip_full)
{
    /* Longest id, every attribute at its longest. */
    char id[ORDER_ID_MAX + 1];
    memset(id, 'R', ORDER_ID_MAX);
    id[ORDER_ID_MAX] = '\0';
    for (unsigned salt = 0; salt < 8; salt++) {
        struct order *o =
            make_order(id, salt, ORDER_ATTRS_MAX, ORDER_ATTR_VAL_MAX, salt % 2);
        size_t len;
        char *buf = encode(o, &len);
        /* A short buffer gets the same length back and no overrun. */
        char small[10];
        cr_assert_eq(record_encode(o, small, sizeof small), len);
        char err[200] = "";
        struct order *d = record_decode(buf, len, err, sizeof err);
        cr_assert_not_null(d, "%s", err);
        assert_order_eq(o, d);
        order_free(d);
        free(buf);
        order_free(o);
    }
}

Test(record, round_trip_defaults)
{
    struct order *o = order_new();
    cr_assert_not_null(o);
    size_t len;
    char *buf = encode(o, &len);
    char err[200] = "";
    struct order *d = record_decode(buf, len, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    assert_order_eq(o, d);
    cr_assert_null(d->attrs);
    order_free(d);
    free(buf);
    order_free(o);
}

Test(record, every_truncation_fails)
{
    struct order *o = make_order("RD20251127-0892", 3, 4, 40, false);
    size_t len;
    char *buf = encode(o, &len);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past it. */
        char *cut = malloc(n ? n : 1);
        memcpy(cut, buf, n);
        char err[200] = "";
        struct order *d = record_decode(cut, n, err, sizeof err);
        cr_assert_null(d, "decoded a record cut to %zu of %zu bytes", n, len);
        cr_assert_neq(err[0], '\0');
        free(cut);
    }
    /* And a byte too many. */
    char *more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = 0;
    char err[200];
    cr_assert_null(record_decode(more, len + 1, err, sizeof err));
    free(more);
    free(buf);
    order_free(o);
}

/* Flipped input either fails or decodes to an order that encodes back to
   exactly the flipped bytes (the encoding is canonical).  A flip into an
   older version that still decodes comes back in the current version,
   and that decodes to the same order. */
static void
check_flipped(const char *buf, size_t len)
{
    char err[200];
    struct order *d = record_decode(buf, len, err, sizeof err);
    if (d == NULL)
        return;
    size_t len2;
    char *again = encode(d, &len2);
    if ((unsigned char)buf[0] < RECORD_CURRENT) {
        cr_assert_eq(again[0], RECORD_CURRENT);
        struct order *d2 = record_decode(again, len2, err, sizeof err);
        cr_assert_not_null(d2, "%s", err);
        assert_order_eq(d, d2);
        order_free(d2);
        free(again);
        order_free(d);
        return;
    }
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(again, buf, len), 0);
    free(again);
    order_free(d);
}

Test(record, every_bit_flip)
{
    struct order *o = make_order("A1", 5, 3, 20, false);
    size_t len;
    char *buf = encode(o, &len);
    char *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, len);
            copy[i] ^= (char)(1 << bit);
            check_flipped(copy, len);
        }
    }
    free(copy);
    free(buf);
    order_free(o);
}

Test(record, random_byte_flips)
{
    struct order *o = make_order("RD-big", 6, ORDER_ATTRS_MAX, 100, true);
    size_t len;
    char *buf = encode(o, &len);
    char *copy = malloc(len);
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, buf, len);
        int flips = 1 + (int)(rng() % 4);
        for (int f = 0; f < flips; f++)
            copy[rng() % len] = (char)rng();
        check_flipped(copy, len);
    }
    free(copy);
    free(buf);
    order_free(o);
}

Test(record, newer_version_refused)
{
    struct order *o = make_order("A1", 1, 1, 5, false);
    size_t len;
    char *buf = encode(o, &len);
    cr_assert_eq(buf[0], RECORD_CURRENT);
    buf[0] = RECORD_CURRENT + 1;
    char err[200] = "";
    cr_assert_null(record_decode(buf, len, err, sizeof err));
    cr_assert_not_null(strstr(err, "newer"), "%s", err);
    free(buf);
    order_free(o);
}

/* A version 1 record, as the version 1 encoder (before the picked state)
   wrote it: a picking order RD-1 with one attribute. */
static const char V1_RECORD[] =
    "\x01\x04\x52\x44\x2d\x31\x04\x53\x48\x30\x31\x04\x41\x43\x4d\x45\x01"
    "\x00\x03\x01\x02\x02\x80\xec\x99\x8e\xff\x66\x80\xf8\xaa\x87\xff\x66"
    "\x80\xb2\xe2\x8a\xff\x66\x0c\xac\x02\xc0\x81\x87\x8b\xff\x66\x80\xb2"
    "\xe2\x8a\xff\x66\x04\x77\x61\x6e\x67\x00\x00\x00\x00\x03\x0b\x63\x61"
    "\x72\x72\x69\x65\x72\x00\x53\x46\x00";

Test(record, version1_still_reads)
{
    size_t len = sizeof(V1_RECORD) - 1;
    cr_assert_eq(len, 77);
    char err[200] = "";
    struct order *o = record_decode(V1_RECORD, len, err, sizeof err);
    cr_assert_not_null(o, "%s", err);
    cr_assert_str_eq(o->id, "RD-1");
    cr_assert_str_eq(o->warehouse, "SH01");
    cr_assert_str_eq(o->customer, "ACME");
    cr_assert_eq(o->cls, CLASS_RUSH4H);
    cr_assert_eq(o->eff_cls, CLASS_ASN);
    cr_assert_eq(o->state, STATE_PICKING);
    cr_assert_eq(o->source, SOURCE_ASN);
    cr_assert_eq(o->fulfil, FULFIL_VMI);
    cr_assert_eq(o->risk, RISK_HIGH_RETURNS);
    cr_assert_eq(o->deadline, 1769407200000);
    cr_assert_eq(o->created, 1769400000000);
    cr_assert_eq(o->updated, 1769403600000);
    cr_assert_eq(o->seq, 12);
    cr_assert_eq(o->lease, 300);
    cr_assert_eq(o->lease_expires, 1769403900000);
    cr_assert_eq(o->picked_at, 1769403600000);
    cr_assert_str_eq(o->picker, "wang");
    cr_assert_eq(o->outbound_at, 0);
    cr_assert(!o->outbound_leased);
    cr_assert_eq(o->audit_n, 3);
    cr_assert_str_eq(order_attr_get(o, "carrier"), "SF");
    /* Fields version 1 did not have: their defaults. */
    cr_assert_eq(o->pick_done_at, 0);
    cr_assert(!o->unconfirmed_fired);

    /* Written back, it is the current version: the same fields, then the
       new ones (0 and false: one byte each). */
    size_t len2;
    char *buf = encode(o, &len2);
    cr_assert_eq(buf[0], RECORD_CURRENT);
    cr_assert_eq(len2, len + 2);
    cr_assert_eq(memcmp(buf + 1, V1_RECORD + 1, len - 1), 0);
    cr_assert_eq(buf[len], 0);
    cr_assert_eq(buf[len + 1], 0);
    struct order *d = record_decode(buf, len2, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    assert_order_eq(o, d);
    order_free(d);

    /* Version 1 stops after the attributes: a current record relabelled
       as version 1 has bytes left over. */
    buf[0] = 1;
    cr_assert_null(record_decode(buf, len2, err, sizeof err));
    cr_assert_not_null(strstr(err, "after the record"), "%s", err);
    free(buf);
    order_free(o);
}

Test(record, picked_state_round_trip)
{
    struct order *o = make_order("RD-picked", 4, 2, 10, false);
    o->state = STATE_PICKED;
    o->pick_done_at = 1769403660000;
    o->unconfirmed_fired = true;
    size_t len;
    char *buf = encode(o, &len);
    char err[200] = "";
    struct order *d = record_decode(buf, len, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    assert_order_eq(o, d);
    cr_assert_eq(d->state, STATE_PICKED);
    cr_assert(d->unconfirmed_fired);
    order_free(d);
    /* The flag is a strict boolean. */
    buf[len - 1] = 2;
    cr_assert_null(record_decode(buf, len, err, sizeof err));
    /* A state past the last one is refused. */
    o->state = STATE_COUNT;
    free(buf);
    buf = encode(o, &len);
    cr_assert_null(record_decode(buf, len, err, sizeof err));
    cr_assert_not_null(strstr(err, "state"), "%s", err);
    free(buf);
    order_free(o);
}

static struct audit_entry
make_entry(const char *actor, const char *raw, const char *note)
{
    struct audit_entry a = {
        .at = 1769407200123,
        .action = ACTION_OUTBOUND,
        .from = STATE_PICKING,
        .to = STATE_SHIPPED,
        .actor = actor,
        .actor_len = strlen(actor),
        .raw = raw,
        .raw_len = strlen(raw),
        .note = note,
        .note_len = strlen(note),
    };
    return a;
}

static void
assert_entry_eq(const struct audit_entry *a, const struct audit_entry *b)
{
    cr_assert_eq(a->at, b->at);
    cr_assert_eq(a->action, b->action);
    cr_assert_eq(a->from, b->from);
    cr_assert_eq(a->to, b->to);
    cr_assert_eq(a->actor_len, b->actor_len);
    cr_assert_eq(a->raw_len, b->raw_len);
    cr_assert_eq(a->note_len, b->note_len);
    cr_assert_eq(memcmp(a->actor, b->actor, a->actor_len), 0);
    cr_assert_eq(memcmp(a->raw, b->raw, a->raw_len), 0);
    cr_assert_eq(memcmp(a->note, b->note, a->note_len), 0);
}

Test(record, audit_round_trip_truncation_flips)
{
    struct audit_entry a = make_entry(
        "wms-7", "{\"order\":\"RD20251127-0892\",\"status\":\"out\"}",
        "lease 42");
    struct audit_entry push = make_entry("", "", "");
    push.from = -1;
    push.action = ACTION_PUSH;
    push.to = STATE_NEW;
    push.at = -5;
    /* The last state and action, appended after version 1 of the order
       record (the audit layout did not change). */
    struct audit_entry picked = make_entry("wang", "", "lease 42");
    picked.action = ACTION_PICKED;
    picked.from = STATE_PICKING;
    picked.to = STATE_PICKED;
    struct audit_entry late = make_entry("wms-7", "", "");
    late.from = STATE_PICKED;
    const struct audit_entry *cases[] = {&a, &push, &picked, &late};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t len = audit_encode(cases[c], NULL, 0);
        char *buf = malloc(len);
        cr_assert_eq(audit_encode(cases[c], buf, len), len);
        struct audit_entry d;
        cr_assert_eq(audit_decode(buf, len, &d), 0);
        assert_entry_eq(cases[c], &d);
        cr_assert_not_null(d.actor);
        for (size_t n = 0; n < len; n++) {
            char *cut = malloc(n ? n : 1);
            memcpy(cut, buf, n);
            cr_assert_eq(audit_decode(cut, n, &d), -1, "cut to %zu", n);
            free(cut);
        }
        char *copy = malloc(len);
        char *again = malloc(len);
        for (size_t i = 0; i < len; i++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(copy, buf, len);
                copy[i] ^= (char)(1 << bit);
                if (audit_decode(copy, len, &d) != 0)
                    continue;
                cr_assert_eq(audit_encode(&d, again, len), len);
                cr_assert_eq(memcmp(again, copy, len), 0);
            }
        }
        free(again);
        free(copy);
        free(buf);
    }
}

/* ---- helpers: stores ---- */

static char tmpdir[256];

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_store.XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void
remove_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

static char *
path_in(const char *name)
{
    static char p[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, name);
    return p[i];
}

/* Files in dir whose name ends in suffix. */
static int
count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        n += len >= sl && strcmp(e->d_name + len - sl, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* The wake callback: counts and signals. */
struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int wakes;
    /* The gate: while closed, the first wake blocks the persistence
       thread (so everything submitted meanwhile forms one group). */
    bool gated;
    bool entered;
};

static struct waker waker = {PTHREAD_MUTEX_INITIALIZER,
                             PTHREAD_COND_INITIALIZER, 0, false, false};

static void
on_wake(void *arg)
{
    struct waker *w = arg;
    pthread_mutex_lock(&w->mu);
    w->wakes++;
    w->entered = true;
    pthread_cond_broadcast(&w->cv);
    while (w->gated)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Stores opened while this is set write their groups on the caller's
   thread (store_commit_inline), as the daemon's loop does. */
static bool inline_mode;

static struct store *
open_store(const char *dir, int durability)
{
    struct store_options opt;
    store_options_default(&opt);
    opt.durability = durability;
    opt.inline_commit = inline_mode;
    opt.wake = on_wake;
    opt.wake_arg = &waker;
    char err[512] = "";
    struct store *s = store_open(dir, &opt, err, sizeof err);
    cr_assert_not_null(s, "store_open %s: %s", dir, err);
    return s;
}

/* Waits (woken by on_wake, re-checking every 50 ms) until ticket is
   durable; a minute is a hang, not slowness. */
static void
wait_durable(struct store *s, uint64_t ticket)
{
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    pthread_mutex_lock(&waker.mu);
    while (store_durable(s) < ticket) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cr_assert_lt(ts.tv_sec - start.tv_sec, 60, "ticket %llu hangs",
                     (unsigned long long)ticket);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&waker.cv, &waker.mu, &ts);
    }
    pthread_mutex_unlock(&waker.mu);
}

/* store_load into an array, in id order. */
struct loaded {
    struct order *o[4096];
    size_t n;
};

static int
collect(void *ctx, struct order *o)
{
    struct loaded *l = ctx;
    cr_assert_lt(l->n, 4096);
    l->o[l->n++] = o;
    return 0;
}

static void
load_all(struct store *s, struct loaded *l)
{
    l->n = 0;
    char err[512] = "";
    cr_assert_eq(store_load(s, collect, l, err, sizeof err), 0, "%s", err);
}

static void
loaded_free(struct loaded *l)
{
    for (size_t i = 0; i < l->n; i++)
        order_free(l->o[i]);
    l->n = 0;
}

static struct order *
find(struct loaded *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->o[i]->id, id) == 0)
            return l->o[i];
    return NULL;
}

/* Audit entries collected by store_audit. */
struct trail {
    uint32_t seq[1024];
    char note[1024][32];
    size_t n;
};

static int
collect_entry(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    struct trail *t = ctx;
    cr_assert_lt(t->n, 1024);
    t->seq[t->n] = seq;
    snprintf(t->note[t->n], sizeof t->note[0], "%.*s", (int)a->note_len,
             a->note);
    t->n++;
    return 0;
}

static void
audit_of(struct store *s, const char *id, struct trail *t)
{
    t->n = 0;
    char err[512] = "";
    cr_assert_eq(
        store_audit(s, id, strlen(id), collect_entry, t, err, sizeof err), 0,
        "%s", err);
}

/* Puts o with a new audit entry whose note names its sequence. */
static uint64_t
put_with_entry(struct store *s, struct order *o)
{
    char note[96];
    o->audit_n++;
    snprintf(note, sizeof note, "%s#%u", o->id, o->audit_n - 1);
    struct audit_entry a = make_entry("erp", "PUSH x", note);
    return store_put(s, o, &a);
}

static void
store_setup(void)
{
    make_tmpdir();
}

static void
store_teardown(void)
{
    remove_tmpdir();
}

TestSuite(store, .init = store_setup, .fini = store_teardown);

/* ---- the store ---- */

Test(store, put_durable_reopen_load)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *orders[50];
    uint64_t last = 0;
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "RD20251127-%04d", i);
        orders[i] = make_order(id, (unsigned)i, i % 5, (size_t)i * 20, false);
        orders[i]->audit_n = 0;
        uint64_t t = put_with_entry(s, orders[i]);
        cr_assert_gt(t, last, "tickets increase");
        last = t;
    }
    /* A later state of one order replaces the earlier one. */
    orders[7]->state = STATE_CANCELLED;
    last = put_with_entry(s, orders[7]);
    wait_durable(s, last);
    cr_assert(store_ok(s, NULL, 0));
    store_close(s);

    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 50);
    for (int i = 0; i < 50; i++) {
        assert_order_eq(orders[i], l->o[i]); /* in id order */
        order_free(orders[i]);
    }
    loaded_free(l);
    free(l);
    struct trail *t = malloc(sizeof *t);
    audit_of(s, "RD20251127-0007", t);
    cr_assert_eq(t->n, 2);
    cr_assert_str_eq(t->note[1], "RD20251127-0007#1");
    free(t);
    store_close(s);
    /* Opens leave no temporary OPTIONS files behind. */
    cr_assert_eq(count_files(path_in("db"), ".dbtmp"), 0);
}

Test(store, audit_prefix_scan)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    const char *ids[] = {"A", "A1", "A10", "A1\x01", "A2"};
    struct order *o[5];
    for (int i = 0; i < 5; i++) {
        o[i] = make_order(ids[i], (unsigned)i, 0, 0, false);
        o[i]->audit_n = 0;
    }
    uint64_t t = 0;
    /* A1 gets 300 entries, so the sequence crosses 255 (big-endian keys
       keep 256 after 255); the others a few each, interleaved. */
    for (int k = 0; k < 300; k++) {
        t = put_with_entry(s, o[1]);
        if (k < 3)
            for (int i = 0; i < 5; i++)
                if (i != 1)
                    t = put_with_entry(s, o[i]);
    }
    wait_durable(s, t);

    struct trail *tr = malloc(sizeof *tr);
    audit_of(s, "A1", tr);
    cr_assert_eq(tr->n, 300);
    for (uint32_t k = 0; k < 300; k++) {
        char want[32];
        snprintf(want, sizeof want, "A1#%u", k);
        cr_assert_eq(tr->seq[k], k);
        cr_assert_str_eq(tr->note[k], want);
    }
    audit_of(s, "A10", tr);
    cr_assert_eq(tr->n, 3);
    cr_assert_str_eq(tr->note[0], "A10#0");
    audit_of(s, "A", tr);
    cr_assert_eq(tr->n, 3);
    audit_of(s, "B", tr);
    cr_assert_eq(tr->n, 0);
    /* A stop after the first entry is not an error. */
    audit_of(s, "A1\x01", tr);
    cr_assert_eq(tr->n, 3);
    free(tr);
    for (int i = 0; i < 5; i++)
        order_free(o[i]);
    store_close(s);
}

static int
stop_at_first(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    (*(int *)ctx)++;
    return 1;
}

static int
stop_load(void *ctx, struct order *o)
{
    order_free(o);
    (*(int *)ctx)++;
    return 7;
}

Test(store, callbacks_stop_early)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *a = make_order("A", 1, 0, 0, false);
    struct order *b = make_order("B", 2, 0, 0, false);
    a->audit_n = 0;
    put_with_entry(s, a);
    put_with_entry(s, a);
    wait_durable(s, put_with_entry(s, b));
    int n = 0;
    char err[256];
    cr_assert_eq(store_audit(s, "A", 1, stop_at_first, &n, err, sizeof err), 0);
    cr_assert_eq(n, 1);
    n = 0;
    cr_assert_eq(store_load(s, stop_load, &n, err, sizeof err), 7);
    cr_assert_eq(n, 1);
    order_free(a);
    order_free(b);
    store_close(s);
}

Test(store, delete_removes_order_and_trail)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *a1 = make_order("A1", 1, 2, 10, false);
    struct order *a10 = make_order("A10", 2, 2, 10, false);
    a1->audit_n = a10->audit_n = 0;
    for (int k = 0; k < 5; k++) {
        put_with_entry(s, a1);
        put_with_entry(s, a10);
    }
    uint64_t t = store_delete(s, "A1");
    cr_assert_gt(t, 0);
    wait_durable(s, t);

    struct loaded *l = malloc(sizeof *l);
    struct trail *tr = malloc(sizeof *tr);
    for (int round = 0; round < 2; round++) {
        load_all(s, l);
        cr_assert_eq(l->n, 1);
        assert_order_eq(l->o[0], a10);
        loaded_free(l);
        audit_of(s, "A1", tr);
        cr_assert_eq(tr->n, 0);
        audit_of(s, "A10", tr);
        cr_assert_eq(tr->n, 5);
        /* And the same after a reopen. */
        store_close(s);
        s = open_store(path_in("db"), STORE_SYNC);
    }
    /* The id can be used again: a new trail starts from nothing. */
    a1->audit_n = 0;
    wait_durable(s, put_with_entry(s, a1));
    audit_of(s, "A1", tr);
    cr_assert_eq(tr->n, 1);
    free(tr);
    free(l);
    order_free(a1);
    order_free(a10);
    store_close(s);
}

static void
check_weak_mode(int mode)
{
    struct store *s = open_store(path_in("db"), mode);
    struct order *o = make_order("W1", 3, 1, 8, false);
    o->audit_n = 0;
    uint64_t t = 0;
    for (int i = 0; i < 100; i++) {
        o->updated = i;
        t = put_with_entry(s, o);
        /* Durable the moment it is submitted. */
        cr_assert_eq(store_durable(s), t);
    }
    struct store_stats st;
    store_stats(s, &st);
    cr_assert_eq(st.durability, mode);
    cr_assert_eq(st.submitted, 100);
    cr_assert_eq(st.durable, 100);
    store_close(s);

    s = open_store(path_in("db"), mode);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 1);
    assert_order_eq(l->o[0], o);
    loaded_free(l);
    free(l);
    struct trail *tr = malloc(sizeof *tr);
    audit_of(s, "W1", tr);
    cr_assert_eq(tr->n, 100);
    free(tr);
    order_free(o);
    store_close(s);
}

Test(store, batch_mode)
{
    check_weak_mode(STORE_BATCH);
}

Test(store, none_mode)
{
    check_weak_mode(STORE_NONE);
}

Test(store, batch_mode_syncs_without_close)
{
    /* No further puts and no close: the timer alone syncs. */
    struct store *s = open_store(path_in("db"), STORE_BATCH);
    struct order *o = make_order("W1", 3, 1, 8, false);
    store_put(s, o, NULL);
    struct store_stats st;
    for (int i = 0; i < 6000; i++) {
        store_stats(s, &st);
        if (st.syncs > 0)
            break;
        usleep(10000);
    }
    cr_assert_gt(st.syncs, 0);
    order_free(o);
    store_close(s);
}

Test(store, inline_commit_is_the_callers_write)
{
    inline_mode = true;
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    cr_assert_eq(store_commit_inline(s), 0, "nothing queued");
    struct order *o[10];
    uint64_t last = 0;
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "I%02d", i);
        o[i] = make_order(id, (unsigned)i, 1, 8, false);
        o[i]->audit_n = 0;
        last = put_with_entry(s, o[i]);
    }
    /* The thread leaves them to the caller. */
    usleep(50000);
    cr_assert_lt(store_durable(s), last);
    cr_assert_eq(store_commit_inline(s), 1);
    cr_assert_eq(store_durable(s), last, "durable when it returns");
    cr_assert_eq(store_commit_inline(s), 0);
    struct store_stats st;
    store_stats(s, &st);
    cr_assert_eq(st.groups, 1);
    cr_assert_eq(st.records, 10);
    cr_assert_eq(st.syncs, 1);
    store_close(s);
    inline_mode = false;

    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 10);
    for (int i = 0; i < 10; i++) {
        assert_order_eq(l->o[i], o[i]);
        order_free(o[i]);
    }
    loaded_free(l);
    free(l);
    store_close(s);
}

/* Batch mode: the caller writes, the thread still syncs within batch_ms;
   and what is queued at close is written by the close. */
Test(store, inline_commit_batch_syncs_and_close_writes)
{
    inline_mode = true;
    struct store *s = open_store(path_in("db"), STORE_BATCH);
    struct order *a = make_order("A", 1, 1, 8, false);
    struct order *b = make_order("B", 2, 1, 8, false);
    uint64_t t = store_put(s, a, NULL);
    cr_assert_eq(store_commit_inline(s), 1);
    cr_assert_geq(store_durable(s), t);
    struct store_stats st;
    for (int i = 0; i < 6000; i++) {
        store_stats(s, &st);
        if (st.syncs > 0)
            break;
        usleep(10000);
    }
    cr_assert_gt(st.syncs, 0, "the thread synced the inline write");
    store_put(s, b, NULL); /* left for store_close */
    store_close(s);
    inline_mode = false;

    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 2);
    assert_order_eq(l->o[0], a);
    assert_order_eq(l->o[1], b);
    loaded_free(l);
    free(l);
    order_free(a);
    order_free(b);
    store_close(s);
}

Test(store, wake_is_called)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *o = make_order("W", 1, 0, 0, false);
    pthread_mutex_lock(&waker.mu);
    int before = waker.wakes;
    pthread_mutex_unlock(&waker.mu);
    uint64_t t = store_put(s, o, NULL);
    wait_durable(s, t);
    /* The wake comes after the ticket is durable: wait for it. */
    pthread_mutex_lock(&waker.mu);
    while (waker.wakes == before)
        pthread_cond_wait(&waker.cv, &waker.mu);
    pthread_mutex_unlock(&waker.mu);
    order_free(o);
    store_close(s);
}

Test(store, group_commit)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *o = make_order("G0", 1, 1, 16, false);
    o->audit_n = 0;

    /* Block the persistence thread in its first wake, submit 200 more,
       open the gate: they can only go as one group. */
    pthread_mutex_lock(&waker.mu);
    waker.gated = true;
    waker.entered = false;
    pthread_mutex_unlock(&waker.mu);
    put_with_entry(s, o);
    pthread_mutex_lock(&waker.mu);
    while (!waker.entered)
        pthread_cond_wait(&waker.cv, &waker.mu);
    pthread_mutex_unlock(&waker.mu);
    uint64_t t = 0;
    for (int i = 0; i < 200; i++)
        t = put_with_entry(s, o);
    pthread_mutex_lock(&waker.mu);
    waker.gated = false;
    pthread_cond_broadcast(&waker.cv);
    pthread_mutex_unlock(&waker.mu);
    wait_durable(s, t);
    struct store_stats st;
    store_stats(s, &st);
    cr_assert_eq(st.groups, 2);
    cr_assert_eq(st.max_group, 200);
    cr_assert_eq(st.records, 201);
    cr_assert_eq(st.syncs, 2);
    cr_assert_eq(st.failures, 0);

    /* Free running: many puts from this thread while the persistence
       thread writes; every one is durable and the trail is complete. */
    struct order *many[500];
    for (int i = 0; i < 500; i++) {
        char id[16];
        snprintf(id, sizeof id, "M%03d", i);
        many[i] = make_order(id, (unsigned)i, 1, 30, false);
        many[i]->audit_n = 0;
    }
    for (int round = 0; round < 10; round++)
        for (int i = 0; i < 500; i++)
            t = put_with_entry(s, many[i]);
    wait_durable(s, t);
    store_stats(s, &st);
    cr_assert_eq(st.records, 5201);
    cr_assert_eq(st.submitted, 5201);
    cr_assert_eq(st.durable, 5201);
    cr_assert_leq(st.syncs, st.groups);
    cr_log_info("5000 puts in %llu groups, largest %zu, sync mean %llu us",
                (unsigned long long)(st.groups - 2), st.max_group,
                (unsigned long long)(st.sync_us_total / st.syncs));
    store_close(s);

    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 501);
    for (int i = 0; i < 500; i++)
        assert_order_eq(find(l, many[i]->id), many[i]);
    loaded_free(l);
    struct trail *tr = malloc(sizeof *tr);
    audit_of(s, "M123", tr);
    cr_assert_eq(tr->n, 10);
    audit_of(s, "G0", tr);
    cr_assert_eq(tr->n, 201);
    free(tr);
    free(l);
    for (int i = 0; i < 500; i++)
        order_free(many[i]);
    order_free(o);
    store_close(s);
}

/* queue_max is soft: with the persistence thread held in its first wake,
   every put is queued at once (a put that waited for room would hang
   here), store_busy() turns true when queue_max records wait and false
   once the thread has taken them. */
Test(store, busy_is_a_soft_bound, .timeout = 120)
{
    struct store_options opt;
    store_options_default(&opt);
    opt.queue_max = 4;
    opt.wake = on_wake;
    opt.wake_arg = &waker;
    char err[256];
    struct store *s = store_open(path_in("db"), &opt, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    cr_assert_not(store_busy(s));
    struct order *o = make_order("B0000", 1, 1, 16, false);

    pthread_mutex_lock(&waker.mu);
    waker.gated = true;
    waker.entered = false;
    pthread_mutex_unlock(&waker.mu);
    cr_assert_eq(store_put(s, o, NULL), 1);
    pthread_mutex_lock(&waker.mu);
    while (!waker.entered)
        pthread_cond_wait(&waker.cv, &waker.mu);
    pthread_mutex_unlock(&waker.mu);
    /* The first group is written and its thread held: what follows waits
       in the queue. */
    cr_assert_not(store_busy(s));
    uint64_t t = 0;
    for (int i = 1; i <= 1000; i++) {
        char id[16];
        snprintf(id, sizeof id, "B%04d", i);
        cr_assert_eq(order_set_id(o, id, strlen(id)), 0);
        o->updated = i;
        t = store_put(s, o, NULL);
        cr_assert_eq(t, (uint64_t)i + 1, "put %d is queued at once", i);
        cr_assert_eq(store_busy(s), i >= 4, "busy after %d queued", i);
    }
    cr_assert_eq(store_delete(s, "B0999"), 1002, "so is a delete");
    cr_assert(store_busy(s));
    cr_assert_lt(store_durable(s), t);

    pthread_mutex_lock(&waker.mu);
    waker.gated = false;
    pthread_cond_broadcast(&waker.cv);
    pthread_mutex_unlock(&waker.mu);
    wait_durable(s, 1002);
    cr_assert_not(store_busy(s));
    struct store_stats st;
    store_stats(s, &st);
    cr_assert_eq(st.groups, 2);
    cr_assert_eq(st.max_group, 1001, "one group, beyond queue_max");
    cr_assert_eq(st.records, 1002);

    /* Free running: a burst far past the bound from this thread; busy is
       whatever the disk makes it, every put is accepted, and it is false
       again once the queue is written. */
    for (int i = 0; i < 20000; i++) {
        o->updated = i;
        t = store_put(s, o, NULL);
        cr_assert_gt(t, 0);
        (void)store_busy(s);
    }
    wait_durable(s, t);
    cr_assert_not(store_busy(s));
    store_close(s);

    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 1000, "B0000..B1000 without B0999");
    cr_assert_null(find(l, "B0999"));
    cr_assert_eq(find(l, "B0500")->updated, 500);
    cr_assert_eq(find(l, "B1000")->updated, 19999);
    loaded_free(l);
    free(l);
    order_free(o);
    store_close(s);
}

Test(store, small_queue_never_blocks_and_drains)
{
    struct store_options opt;
    store_options_default(&opt);
    opt.queue_max = 1;
    char err[256];
    struct store *s = store_open(path_in("db"), &opt, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    struct order *o = make_order("Q", 1, 0, 0, false);
    uint64_t t = 0;
    for (int i = 0; i < 300; i++) {
        o->updated = i;
        t = store_put(s, o, NULL);
        cr_assert_eq(t, (uint64_t)i + 1);
    }
    store_close(s); /* drains: the last put is stored */
    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 1);
    cr_assert_eq(l->o[0]->updated, 299);
    loaded_free(l);
    free(l);
    order_free(o);
    store_close(s);
}

/* Writes one key into a store's column family with RocksDB directly. */
static void
raw_put(const char *dir, int cf, const char *k, size_t klen, const char *v,
        size_t vlen)
{
    const char *names[5] = {"default", "orders", "audit", "meta", "events"};
    rocksdb_options_t *opt = rocksdb_options_create();
    const rocksdb_options_t *cfo[5] = {opt, opt, opt, opt, opt};
    rocksdb_column_family_handle_t *h[5];
    char *err = NULL;
    rocksdb_t *db =
        rocksdb_open_column_families(opt, dir, 5, names, cfo, h, &err);
    cr_assert_null(err, "%s", err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(db, wo, h[cf], k, klen, v, vlen, &err);
    cr_assert_null(err, "%s", err);
    rocksdb_writeoptions_destroy(wo);
    for (int i = 0; i < 5; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(opt);
}

/* Level-0 files of the orders family, read from a read-only handle (it
   sees what the store's last flush or compaction recorded). */
static int
orders_l0_files(const char *dir)
{
    const char *names[5] = {"default", "orders", "audit", "meta", "events"};
    rocksdb_options_t *opt = rocksdb_options_create();
    const rocksdb_options_t *cfo[5] = {opt, opt, opt, opt, opt};
    rocksdb_column_family_handle_t *h[5];
    char *err = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only_column_families(
        opt, dir, 5, names, cfo, h, 0, &err);
    cr_assert_null(err, "%s", err);
    char *v =
        rocksdb_property_value_cf(db, h[1], "rocksdb.num-files-at-level0");
    cr_assert_not_null(v);
    int n = atoi(v);
    rocksdb_free(v);
    for (int i = 0; i < 5; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(opt);
    return n;
}

static struct store *
open_deferred(const char *dir)
{
    struct store_options opt;
    store_options_default(&opt);
    opt.durability = STORE_SYNC;
    opt.wake = on_wake;
    opt.wake_arg = &waker;
    opt.defer_compactions = true;
    char err[512] = "";
    struct store *s = store_open(dir, &opt, err, sizeof err);
    cr_assert_not_null(s, "store_open %s: %s", dir, err);
    return s;
}

/* Opened with defer_compactions, a store compacts nothing until
   store_load has read the orders, and then it does: six closes (a flush
   each) leave six level-0 files, past RocksDB's trigger of four, and
   after a load they are compacted away. */
Test(store, compactions_wait_for_the_load)
{
    const char *dir = path_in("db");
    for (int round = 0; round < 6; round++) {
        struct store *s = open_deferred(dir);
        uint64_t last = 0;
        for (int i = 0; i < 20; i++) {
            char id[32];
            snprintf(id, sizeof id, "CW-%d-%02d", round, i);
            struct order *o = make_order(id, (unsigned)i, 1, 40, false);
            o->audit_n = 0;
            last = put_with_entry(s, o);
            order_free(o);
        }
        wait_durable(s, last);
        store_close(s); /* flushes the memtables: one more level-0 file */
    }
    cr_assert_eq(orders_l0_files(dir), 6, "compacted before any load");

    struct store *s = open_deferred(dir);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 120);
    loaded_free(l);
    free(l);
    int files = 6;
    for (int i = 0; i < 600 && files >= 4; i++) {
        usleep(50000);
        files = orders_l0_files(dir);
    }
    cr_assert_lt(files, 4, "no compaction in 30 s after the load");
    store_close(s);
}

Test(store, newer_format_refused)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    store_close(s);
    raw_put(path_in("db"), 3, "format", 6, "999", 3);
    char err[512] = "";
    s = store_open(path_in("db"), NULL, err, sizeof err);
    cr_assert_null(s);
    cr_assert_not_null(strstr(err, "999"), "%s", err);
    cr_assert_not_null(strstr(err, "version 1"), "%s", err);
    cr_assert_not_null(strstr(err, path_in("db")), "%s", err);
}

Test(store, corrupt_record_is_an_error)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *o = make_order("A", 1, 0, 0, false);
    wait_durable(s, store_put(s, o, NULL));
    store_close(s);
    raw_put(path_in("db"), 1, "B", 1, "\x01\x05zz", 4);
    s = open_store(path_in("db"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    l->n = 0;
    char err[512] = "";
    cr_assert_eq(store_load(s, collect, l, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "order B"), "%s", err);
    cr_assert_not_null(strstr(err, "truncated"), "%s", err);
    loaded_free(l);
    free(l);
    order_free(o);
    store_close(s);
}

Test(store, open_errors)
{
    char err[512] = "";
    /* A path under a regular file cannot be a store. */
    FILE *f = fopen(path_in("file"), "w");
    cr_assert_not_null(f);
    fclose(f);
    cr_assert_null(store_open(path_in("file/db"), NULL, err, sizeof err));
    cr_assert_not_null(strstr(err, "file/db"), "%s", err);
}

Test(store, checkpoint)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *o[20];
    uint64_t t = 0;
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "C%02d", i);
        o[i] = make_order(id, (unsigned)i, 2, 50, false);
        o[i]->audit_n = 0;
        t = put_with_entry(s, o[i]);
    }
    wait_durable(s, t);
    char err[512] = "";
    cr_assert_eq(store_checkpoint(s, path_in("cp"), err, sizeof err), 0, "%s",
                 err);
    /* The directory must not exist. */
    cr_assert_eq(store_checkpoint(s, path_in("cp"), err, sizeof err), -1);
    cr_assert_neq(err[0], '\0');
    /* Later writes are not in the copy. */
    o[0]->state = STATE_DELIVERED;
    wait_durable(s, put_with_entry(s, o[0]));
    store_close(s);

    s = open_store(path_in("cp"), STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, 20);
    cr_assert_neq(l->o[0]->state, STATE_DELIVERED);
    o[0]->state = l->o[0]->state;
    o[0]->audit_n--;
    for (int i = 0; i < 20; i++)
        assert_order_eq(l->o[i], o[i]);
    loaded_free(l);
    free(l);
    struct trail *tr = malloc(sizeof *tr);
    audit_of(s, "C05", tr);
    cr_assert_eq(tr->n, 1);
    free(tr);
    for (int i = 0; i < 20; i++)
        order_free(o[i]);
    store_close(s);
}

/* ---- a full disk ---- */

static char mnt[300];

static void
full_teardown(void)
{
    if (mnt[0] != '\0')
        umount2(mnt, MNT_DETACH);
    mnt[0] = '\0';
    remove_tmpdir();
}

TestSuite(full, .init = store_setup, .fini = full_teardown);

/* Mounts a tmpfs of the given size at mnt, or skips the test.  Each test
   runs in its own process: in a mount namespace of its own the tmpfs goes
   away with the process, even when the test crashes before the fini. */
static void
mount_small_tmpfs(const char *opts)
{
    snprintf(mnt, sizeof mnt, "%s", path_in("mnt"));
    cr_assert_eq(mkdir(mnt, 0700), 0);
    if (unshare(CLONE_NEWNS) == 0)
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
        int e = errno;
        mnt[0] = '\0';
        cr_skip_test("cannot mount a tmpfs: %s", strerror(e));
    }
}

static bool
wait_health(struct store *s, bool want)
{
    for (int i = 0; i < 6000; i++) {
        if (store_ok(s, NULL, 0) == want)
            return true;
        usleep(10000);
    }
    return false;
}

/* What the loop does before it sleeps, in inline mode. */
static void
commit_now(struct store *s)
{
    if (inline_mode)
        (void)store_commit_inline(s);
}

static void
disk_full_then_space_again(bool inl)
{
    inline_mode = inl;
    mount_small_tmpfs("size=4m");
    char dir[400];
    snprintf(dir, sizeof dir, "%s/db", mnt);
    struct store *s = open_store(dir, STORE_SYNC);
    struct order *keep = make_order("keep", 1, 1, 10, false);
    keep->audit_n = 0;
    uint64_t t0 = put_with_entry(s, keep);
    commit_now(s);
    wait_durable(s, t0);

    /* Large incompressible records, one at a time, until a write fails. */
    static struct order *big[400];
    int nbig = 0;
    uint64_t last = 0;
    while (store_ok(s, NULL, 0)) {
        cr_assert_lt(nbig, 400, "4 MiB never filled up");
        char id[16];
        snprintf(id, sizeof id, "big%03d", nbig);
        big[nbig] = make_order(id, (unsigned)nbig, ORDER_ATTRS_MAX,
                               ORDER_ATTR_VAL_MAX, true);
        uint64_t t = store_put(s, big[nbig], NULL);
        cr_assert_gt(t, 0);
        nbig++;
        last = t;
        commit_now(s); /* a failure hands the group to the thread */
        for (int i = 0; i < 6000 && store_durable(s) < t; i++) {
            if (!store_ok(s, NULL, 0))
                break;
            usleep(1000);
        }
    }
    char reason[256] = "";
    cr_assert_not(store_ok(s, reason, sizeof reason));
    cr_log_info("failed after %d records: %s", nbig, reason);
    cr_assert_neq(reason[0], '\0');
    cr_assert_lt(store_durable(s), last);

    /* New writes are refused; reads still work, also once the retries
       have reopened the database (read-only while the disk is full). */
    struct order *late = make_order("late", 9, 0, 0, false);
    cr_assert_eq(store_put(s, late, NULL), 0);
    cr_assert_eq(store_delete(s, "keep"), 0);
    struct trail *tr = malloc(sizeof *tr);
    audit_of(s, "keep", tr);
    cr_assert_eq(tr->n, 1);
    struct store_stats st;
    for (int i = 0; i < 6000; i++) {
        store_stats(s, &st);
        if (st.failures >= 3)
            break;
        usleep(10000);
    }
    cr_assert_geq(st.failures, 3);
    cr_assert_not(store_ok(s, NULL, 0));
    cr_assert_eq(store_put(s, late, NULL), 0);
    audit_of(s, "keep", tr);
    cr_assert_eq(tr->n, 1);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_eq(l->n, (size_t)nbig); /* keep and all but the failed one */
    assert_order_eq(find(l, "keep"), keep);
    loaded_free(l);

    /* Space again: the failed group is retried and lands. */
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0,
                 "remount: %s", strerror(errno));
    cr_assert(wait_health(s, true), "writes did not resume");
    wait_durable(s, last);
    uint64_t t = store_put(s, late, NULL);
    cr_assert_gt(t, last);
    commit_now(s);
    wait_durable(s, t);
    store_close(s);

    s = open_store(dir, STORE_SYNC);
    load_all(s, l);
    cr_assert_eq(l->n, (size_t)nbig + 2);
    assert_order_eq(find(l, "keep"), keep);
    assert_order_eq(find(l, "late"), late);
    for (int i = 0; i < nbig; i++) {
        struct order *got = find(l, big[i]->id);
        cr_assert_not_null(got, "%s lost", big[i]->id);
        assert_order_eq(got, big[i]);
        order_free(big[i]);
    }
    loaded_free(l);
    free(l);
    audit_of(s, "keep", tr);
    cr_assert_eq(tr->n, 1);
    free(tr);
    order_free(keep);
    order_free(late);
    store_close(s);
    cr_assert_eq(count_files(dir, ".dbtmp"), 0);
    cr_assert_eq(umount2(mnt, 0), 0, "umount: %s", strerror(errno));
    mnt[0] = '\0';
    inline_mode = false;
}

Test(full, disk_full_then_space_again)
{
    disk_full_then_space_again(false);
}

/* The loop writes the groups; the failed one goes to the thread, which
   retries it until the disk has room, and the loop writes again after. */
Test(full, disk_full_then_space_again_inline)
{
    disk_full_then_space_again(true);
}

Test(full, close_while_full_gives_up)
{
    mount_small_tmpfs("size=2m");
    char dir[400];
    snprintf(dir, sizeof dir, "%s/db", mnt);
    struct store *s = open_store(dir, STORE_SYNC);
    static struct order *big[400];
    int nbig = 0;
    uint64_t durable = 0;
    while (store_ok(s, NULL, 0)) {
        cr_assert_lt(nbig, 400, "2 MiB never filled up");
        char id[16];
        snprintf(id, sizeof id, "big%03d", nbig);
        big[nbig] = make_order(id, (unsigned)nbig, ORDER_ATTRS_MAX,
                               ORDER_ATTR_VAL_MAX, true);
        uint64_t t = store_put(s, big[nbig], NULL);
        cr_assert_gt(t, 0);
        nbig++;
        for (int i = 0; i < 6000 && store_durable(s) < t; i++) {
            if (!store_ok(s, NULL, 0))
                break;
            usleep(1000);
        }
        if (store_durable(s) == t)
            durable = t;
    }
    /* The last record was never durable (never acknowledged): closing
       while the disk stays full gives up on it instead of hanging. */
    cr_assert_eq(durable, (uint64_t)nbig - 1);
    store_close(s);

    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0,
                 "remount: %s", strerror(errno));
    s = open_store(dir, STORE_SYNC);
    struct loaded *l = malloc(sizeof *l);
    load_all(s, l);
    cr_assert_geq(l->n, (size_t)nbig - 1);
    for (int i = 0; i < nbig; i++) {
        struct order *got = find(l, big[i]->id);
        if (i < nbig - 1 || got != NULL)
            assert_order_eq(got, big[i]);
        order_free(big[i]);
    }
    loaded_free(l);
    free(l);
    store_close(s);
    cr_assert_eq(umount2(mnt, 0), 0, "umount: %s", strerror(errno));
    mnt[0] = '\0';
}

/* ---- the event log ---- */

struct evlist {
    size_t n;
    uint64_t seq[64];
    char json[64][64];
};

static int
collect_event(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct evlist *l = ctx;
    cr_assert_lt(l->n, 64);
    l->seq[l->n] = seq;
    snprintf(l->json[l->n], sizeof l->json[0], "%.*s", (int)len, json);
    l->n++;
    return 0;
}

static void
read_events(struct store *s, uint64_t after, size_t n, struct evlist *l)
{
    char err[512] = "";
    memset(l, 0, sizeof *l);
    cr_assert_eq(
        store_events_read(s, after, n, collect_event, l, err, sizeof err), 0,
        "%s", err);
}

static uint64_t
put_event(struct store *s, uint64_t seq)
{
    char json[64];
    int n = snprintf(json, sizeof json, "{\"seq\":%llu,\"type\":\"t\"}",
                     (unsigned long long)seq);
    return store_event(s, seq, json, (size_t)n);
}

Test(store, events_logged_read_in_order_and_reopened)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    uint64_t last = 0, seq = 0;
    cr_assert_eq(store_events_last(s, &seq, NULL, 0), 0);
    cr_assert_eq(seq, 0);
    /* 300 > 255: the keys are big-endian, so they sort as numbers. */
    for (uint64_t i = 1; i <= 300; i++)
        last = put_event(s, i);
    wait_durable(s, last);
    struct evlist l;
    read_events(s, 0, 10, &l);
    cr_assert_eq(l.n, 10);
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(l.seq[i], i + 1);
    cr_assert_str_eq(l.json[0], "{\"seq\":1,\"type\":\"t\"}");
    read_events(s, 255, 3, &l);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(l.seq[0], 256);
    cr_assert_eq(l.seq[2], 258);
    read_events(s, 299, 10, &l);
    cr_assert_eq(l.n, 1);
    read_events(s, 300, 10, &l);
    cr_assert_eq(l.n, 0);
    store_close(s);

    s = open_store(path_in("db"), STORE_SYNC);
    cr_assert_eq(store_events_last(s, &seq, NULL, 0), 0);
    cr_assert_eq(seq, 300);
    cr_assert_eq(store_events_first(s, &seq, NULL, 0), 0);
    cr_assert_eq(seq, 1);
    /* Retention: everything below 101 goes, in one range delete. */
    wait_durable(s, store_events_trim(s, 101));
    cr_assert_eq(store_events_first(s, &seq, NULL, 0), 0);
    cr_assert_eq(seq, 101);
    read_events(s, 0, 2, &l);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.seq[0], 101);
    store_close(s);
}

Test(store, events_read_sees_unwritten_in_weak_modes)
{
    /* batch and none acknowledge before the write: a read waits for the
       writer, as store_audit does. */
    int modes[] = {STORE_BATCH, STORE_NONE};
    for (int m = 0; m < 4; m++) {
        /* With inline commit the read writes the queue itself: the
           thread never would, and waiting for it stalled each read for
           2 s and then missed the records. */
        inline_mode = m >= 2;
        char name[16];
        snprintf(name, sizeof name, "db%d", m);
        struct store *s = open_store(path_in(name), modes[m % 2]);
        for (uint64_t i = 1; i <= 50; i++)
            put_event(s, i);
        struct evlist l;
        read_events(s, 0, 64, &l);
        cr_assert_eq(l.n, 50, "mode %d%s: %zu", modes[m % 2],
                     inline_mode ? " inline" : "", l.n);
        store_close(s);
    }
    inline_mode = false;
}

Test(store, group_holds_put_and_events_together)
{
    struct store *s = open_store(path_in("db"), STORE_SYNC);
    struct order *o = make_order("G1", 1, 0, 0, false);
    store_group_begin(s);
    uint64_t t = store_put(s, o, NULL);
    /* While held the writer takes nothing, so the group stays whole. */
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    cr_assert_lt(store_durable(s), t);
    uint64_t te = put_event(s, 1);
    cr_assert_gt(te, t);
    store_group_end(s);
    wait_durable(s, te);
    struct store_stats st;
    store_stats(s, &st);
    cr_assert_eq(st.groups, 1, "groups %llu", (unsigned long long)st.groups);
    cr_assert_eq(st.records, 2);
    order_free(o);
    store_close(s);
}

/* A store made before the events column family existed. */
Test(store, older_store_gets_the_events_family)
{
    const char *names[4] = {"default", "orders", "audit", "meta"};
    rocksdb_options_t *opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(opt, 1);
    rocksdb_options_set_create_missing_column_families(opt, 1);
    const rocksdb_options_t *cfo[4] = {opt, opt, opt, opt};
    rocksdb_column_family_handle_t *h[4];
    char *err = NULL;
    rocksdb_t *db = rocksdb_open_column_families(opt, path_in("old"), 4, names,
                                                 cfo, h, &err);
    cr_assert_null(err, "%s", err);
    for (int i = 0; i < 4; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(opt);

    struct store *s = open_store(path_in("old"), STORE_SYNC);
    uint64_t seq = 7;
    cr_assert_eq(store_events_last(s, &seq, NULL, 0), 0);
    cr_assert_eq(seq, 0);
    wait_durable(s, put_event(s, 1));
    store_close(s);
    s = open_store(path_in("old"), STORE_SYNC);
    cr_assert_eq(store_events_last(s, &seq, NULL, 0), 0);
    cr_assert_eq(seq, 1);
    store_close(s);
}
