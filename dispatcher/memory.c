#include "memory.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(DISPATCHD_JEMALLOC)
#include <jemalloc/jemalloc.h>
#elif defined(__SANITIZE_ADDRESS__)
/* libasan's (gcc ships no header declaring it). */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif

static uint64_t
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size, pages;
    long page = sysconf(_SC_PAGESIZE);

    if (f == NULL)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &pages);
    fclose(f);
    return n == 2 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

void
memory_usage(struct memory_usage *m)
{
    memset(m, 0, sizeof *m);
    m->rss = rss_bytes();
#ifdef DISPATCHD_JEMALLOC
    /* The statistics are a snapshot taken when the epoch advances. */
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    if (mallctl("epoch", &epoch, &len, &epoch, len) != 0)
        return;
    size_t v;
    len = sizeof v;
    if (mallctl("stats.allocated", &v, &len, NULL, 0) == 0)
        m->allocated = v;
    len = sizeof v;
    if (mallctl("stats.resident", &v, &len, NULL, 0) == 0)
        m->resident = v;
#elif defined(__SANITIZE_ADDRESS__)
    /* The sanitizer build: ASan's allocator serves every malloc. */
    m->allocated = __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    m->allocated = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
}
