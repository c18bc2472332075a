/*
 * One uthash table keyed by "customer\0class"; each entry a ring of
 * (shipped at, lead) pairs.  A query copies the window's leads and sorts
 * them: at most LEADTIME_RING, on a page view.
 */
#include "leadtime.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "order.h"

struct lt_sample {
    int64_t at;
    int64_t lead_ms;
};

struct lt_key {
    UT_hash_handle hh;
    char key[ORDER_NAME_MAX + 4]; /* customer, NUL, class digit */
    size_t keylen;
    size_t n, next; /* samples held; where the next one goes */
    struct lt_sample s[LEADTIME_RING];
};

struct leadtime {
    struct lt_key *keys;
    size_t nkeys;
    uint64_t refused;
};

struct leadtime *
leadtime_new(void)
{
    return calloc(1, sizeof(struct leadtime));
}

void
leadtime_free(struct leadtime *lt)
{
    if (!lt)
        return;
    struct lt_key *k, *tmp;
    HASH_ITER(hh, lt->keys, k, tmp)
    {
        HASH_DEL(lt->keys, k);
        free(k);
    }
    free(lt);
}

static size_t
make_key(char *buf, const char *customer, int cls)
{
    size_t n = strnlen(customer, ORDER_NAME_MAX);
    memcpy(buf, customer, n);
    buf[n] = '\0';
    buf[n + 1] = (char)('0' + cls);
    return n + 2;
}

int
leadtime_add(struct leadtime *lt, const char *customer, int cls, int64_t at,
             int64_t lead_ms)
{
    char key[ORDER_NAME_MAX + 4];
    if (lead_ms < 0 || cls < 0 || cls >= CLASS_COUNT)
        return -1;
    size_t len = make_key(key, customer ? customer : "", cls);
    struct lt_key *k;
    HASH_FIND(hh, lt->keys, key, len, k);
    if (!k) {
        if (lt->nkeys >= LEADTIME_KEYS) {
            lt->refused++;
            return -1;
        }
        k = calloc(1, sizeof *k);
        if (!k)
            return -1;
        memcpy(k->key, key, len);
        k->keylen = len;
        HASH_ADD(hh, lt->keys, key[0], k->keylen, k);
        if (!k->hh.tbl) { /* uthash could not grow its table */
            free(k);
            return -1;
        }
        lt->nkeys++;
    }
    k->s[k->next] = (struct lt_sample){at, lead_ms};
    k->next = (k->next + 1) % LEADTIME_RING;
    if (k->n < LEADTIME_RING)
        k->n++;
    return 0;
}

int
leadtime_add_order(struct leadtime *lt, const struct order *o)
{
    if (o->state != STATE_SHIPPED && o->state != STATE_DELIVERED)
        return -1;
    return leadtime_add(lt, o->customer, o->cls, o->outbound_at,
                        o->outbound_at - o->created);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p% of them at or below. */
static int64_t
percentile(const int64_t *v, size_t n, int p)
{
    size_t r = ((size_t)p * n + 99) / 100;
    return v[r ? r - 1 : 0];
}

void
leadtime_get(const struct leadtime *lt, const char *customer, int cls,
             int64_t now, struct leadtime_stat *st)
{
    char key[ORDER_NAME_MAX + 4];
    int64_t v[LEADTIME_RING];
    struct lt_key *k = NULL;
    memset(st, 0, sizeof *st);
    if (cls < 0 || cls >= CLASS_COUNT)
        return;
    size_t len = make_key(key, customer ? customer : "", cls);
    HASH_FIND(hh, lt->keys, key, len, k);
    if (!k)
        return;
    size_t n = 0;
    for (size_t i = 0; i < k->n; i++)
        if (k->s[i].at > now - LEADTIME_WINDOW_MS && k->s[i].at <= now)
            v[n++] = k->s[i].lead_ms;
    if (!n)
        return;
    qsort(v, n, sizeof v[0], cmp_i64);
    st->n = n;
    st->median_ms = percentile(v, n, 50);
    st->p90_ms = percentile(v, n, 90);
}

uint64_t
leadtime_refused(const struct leadtime *lt)
{
    return lt->refused;
}
