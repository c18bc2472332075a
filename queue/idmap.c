/*
 * idmap — chained hashing with intrusive links (see idmap.h).
 *
 * The hash reads the id eight bytes at a time (a multiply and a rotate per
 * word, then the splitmix64 finaliser), so an id of 20 bytes costs three
 * rounds; ids are chosen by the ERP, not by an attacker who could aim at
 * one bucket, and the chains are short (one order a bucket on average), so a
 * collision costs one string comparison.
 */
#include "idmap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 64

static uint64_t
id_hash(const char *s, size_t len)
{
    uint64_t h = 0x243f6a8885a308d3u ^ len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15u;
        h = (h << 27) | (h >> 37);
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0x9e3779b97f4a7c15u;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

void
idmap_init(struct idmap *m)
{
    m->bucket = NULL;
    m->nbucket = 0;
    m->n = 0;
}

void
idmap_destroy(struct idmap *m)
{
    free(m->bucket);
    idmap_init(m);
}

struct order *
idmap_find(const struct idmap *m, const char *id, size_t len)
{
    if (m->nbucket == 0)
        return NULL;
    struct order *o = m->bucket[id_hash(id, len) & (m->nbucket - 1)];
    for (; o != NULL; o = o->id_next)
        if (strncmp(o->id, id, len) == 0 && o->id[len] == '\0')
            return o;
    return NULL;
}

/* Rehash into nb buckets; false (the table unchanged) when out of memory. */
static bool
resize(struct idmap *m, size_t nb)
{
    struct order **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return false;
    for (size_t i = 0; i < m->nbucket; i++) {
        struct order *o = m->bucket[i], *next;
        for (; o != NULL; o = next) {
            next = o->id_next;
            size_t j = id_hash(o->id, strlen(o->id)) & (nb - 1);
            o->id_next = b[j];
            b[j] = o;
        }
    }
    free(m->bucket);
    m->bucket = b;
    m->nbucket = nb;
    return true;
}

int
idmap_add(struct idmap *m, struct order *o)
{
    if (m->nbucket == 0) {
        if (!resize(m, MIN_BUCKETS))
            return -1;
    } else if (m->n >= m->nbucket && m->nbucket <= SIZE_MAX / 2 / sizeof(o)) {
        (void)resize(m, m->nbucket * 2); /* longer chains if it fails */
    }
    size_t j = id_hash(o->id, strlen(o->id)) & (m->nbucket - 1);
    o->id_next = m->bucket[j];
    m->bucket[j] = o;
    m->n++;
    return 0;
}

/* How far ahead idmap_add_many works: it fetches the order 2 * AHEAD
   adds ahead, its id AHEAD ahead, and hashes the id and fetches the
   bucket AHEAD adds before it links the order in. */
#define AHEAD 8

int
idmap_add_many(struct idmap *m, struct order *const *os, size_t n,
               size_t *added)
{
    *added = 0;
    if (idmap_reserve(m, m->n + n) != 0 || m->n + n > m->nbucket) {
        /* No room in one go: one by one, resizing as idmap_add does. */
        for (; *added < n; (*added)++)
            if (idmap_add(m, os[*added]) < 0)
                return -1;
        return 0;
    }
    size_t mask = m->nbucket - 1, ring[AHEAD];
    for (size_t i = 0; i < n + AHEAD; i++) {
        if (i + 2 * AHEAD < n)
            __builtin_prefetch(os[i + 2 * AHEAD]);
        if (i + AHEAD < n)
            __builtin_prefetch(os[i + AHEAD]->id);
        if (i >= AHEAD) { /* its bucket was fetched AHEAD adds ago */
            struct order *o = os[i - AHEAD];
            size_t j = ring[i % AHEAD];
            o->id_next = m->bucket[j];
            m->bucket[j] = o;
            m->n++;
        }
        if (i < n) {
            const char *id = os[i]->id;
            size_t j = id_hash(id, strlen(id)) & mask;
            __builtin_prefetch(&m->bucket[j], 1);
            ring[i % AHEAD] = j;
        }
    }
    *added = n;
    return 0;
}

int
idmap_reserve(struct idmap *m, size_t n)
{
    size_t nb = m->nbucket ? m->nbucket : MIN_BUCKETS;
    while (nb < n && nb <= SIZE_MAX / 4 / sizeof(struct order *))
        nb *= 2;
    if (nb == m->nbucket)
        return 0;
    return resize(m, nb) ? 0 : -1;
}

void
idmap_del(struct idmap *m, struct order *o)
{
    size_t j = id_hash(o->id, strlen(o->id)) & (m->nbucket - 1);
    struct order **p = &m->bucket[j];
    while (*p != o)
        p = &(*p)->id_next;
    *p = o->id_next;
    o->id_next = NULL;
    m->n--;
}

void
idmap_clear(struct idmap *m, void (*fn)(struct order *))
{
    for (size_t i = 0; i < m->nbucket; i++) {
        struct order *o = m->bucket[i], *next;
        for (; o != NULL; o = next) {
            next = o->id_next;
            o->id_next = NULL;
            fn(o);
        }
        m->bucket[i] = NULL;
    }
    m->n = 0;
}
