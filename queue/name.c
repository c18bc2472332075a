/*
 * name — the interning table (see name.h).
 *
 * Each entry is one allocation: the hash handle, the count and the bytes.
 * A name handed out points at the bytes; the entry is found again from it
 * by subtracting the offset of the bytes (the container-of idiom), so
 * name_ref and name_put need no lookup.
 */
#define HASH_NONFATAL_OOM 1 /* a failed add leaves hh.tbl == NULL */

#include "name.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

struct name_ent {
    UT_hash_handle hh;
    uint32_t refs;
    char s[]; /* NUL-terminated */
};

const char name_empty[1] = "";

static struct name_ent *names;

static struct name_ent *
ent_of(const char *name)
{
    return (struct name_ent *)(void *)((char *)(uintptr_t)name -
                                       offsetof(struct name_ent, s));
}

/* The names found last, by a cheap slot of their length and end bytes:
   an order names a warehouse and a customer, and a restart looks the
   same few names up 10^6 times each; uthash's hash of each was a twentieth
   of it.  An entry leaves the cache when it is freed. */
#define CACHE_SLOTS 8
static struct name_ent *cache[CACHE_SLOTS];
static size_t cache_len[CACHE_SLOTS];

static unsigned
cache_slot(const char *s, size_t len)
{
    return (unsigned)(len * 31 + (unsigned char)s[0] * 7 +
                      (unsigned char)s[len - 1]) %
           CACHE_SLOTS;
}

const char *
name_get(const char *s, size_t len)
{
    if (len == 0)
        return name_empty;
    unsigned slot = cache_slot(s, len);
    struct name_ent *e = cache[slot];
    if (e == NULL || cache_len[slot] != len || memcmp(e->s, s, len) != 0)
        HASH_FIND(hh, names, s, len, e);
    if (e != NULL) {
        cache[slot] = e;
        cache_len[slot] = len;
        if (e->refs == UINT32_MAX) {
            fprintf(stderr, "name: reference count overflow on '%s'\n", e->s);
            abort();
        }
        e->refs++;
        return e->s;
    }
    e = malloc(sizeof(*e) + len + 1);
    if (e == NULL)
        return NULL;
    memset(&e->hh, 0, sizeof(e->hh));
    e->refs = 1;
    memcpy(e->s, s, len);
    e->s[len] = '\0';
    HASH_ADD_KEYPTR(hh, names, e->s, len, e);
    if (e->hh.tbl == NULL) {
        free(e);
        return NULL;
    }
    return e->s;
}

const char *
name_ref(const char *name)
{
    if (name == NULL || name == name_empty)
        return name_empty;
    struct name_ent *e = ent_of(name);
    if (e->refs == UINT32_MAX) {
        fprintf(stderr, "name: reference count overflow on '%s'\n", e->s);
        abort();
    }
    e->refs++;
    return name;
}

void
name_put(const char *name)
{
    if (name == NULL || name == name_empty)
        return;
    struct name_ent *e = ent_of(name);
    if (--e->refs > 0)
        return;
    for (unsigned i = 0; i < CACHE_SLOTS; i++)
        if (cache[i] == e)
            cache[i] = NULL;
    HASH_DEL(names, e);
    free(e);
}

size_t
name_count(void)
{
    return HASH_COUNT(names);
}
