/*
 * memory — what the process holds: its resident set, and the bytes the
 * allocator has handed out (jemalloc's own count; AddressSanitizer's in
 * the sanitizer build; glibc's in a build with neither).
 */
#ifndef DISPATCHD_MEMORY_H
#define DISPATCHD_MEMORY_H

#include <stdint.h>

struct memory_usage {
    uint64_t rss;       /* resident set, bytes (/proc/self/statm) */
    uint64_t allocated; /* live allocations, bytes */
    uint64_t resident;  /* pages the allocator holds resident (jemalloc:
                           stats.resident; 0 under glibc) */
};

/* Fills m; a figure that cannot be read is 0.  Loop thread (it reads
   jemalloc's process-wide statistics, refreshed by this call). */
void memory_usage(struct memory_usage *m);

#endif
