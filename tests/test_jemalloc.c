/*
 * test_jemalloc.c — the Release build really allocates through jemalloc 5;
 * the sanitizer build really does not (ASan must see every allocation).
 */
#include "order.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef DISPATCHD_JEMALLOC

/* jemalloc's control interface; declared here so the test does not depend
   on where the header is installed. */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
            size_t newlen);

Test(jemalloc, version_is_5)
{
    const char *v = NULL;
    size_t len = sizeof(v);
    cr_assert_eq(mallctl("version", &v, &len, NULL, 0), 0);
    cr_assert_not_null(v);
    cr_assert_eq(strncmp(v, "5.", 2), 0, "jemalloc version %s", v);
}

Test(jemalloc, orders_are_allocated_by_jemalloc)
{
    bool stats = false;
    size_t len = sizeof(stats);
    cr_assert_eq(mallctl("config.stats", &stats, &len, NULL, 0), 0);
    if (!stats)
        cr_skip_test("jemalloc built without statistics");
    uint64_t before, after;
    len = sizeof(before);
    cr_assert_eq(mallctl("thread.allocated", &before, &len, NULL, 0), 0);
    struct order *o = order_new();
    cr_assert_not_null(o);
    len = sizeof(after);
    cr_assert_eq(mallctl("thread.allocated", &after, &len, NULL, 0), 0);
    cr_assert_geq(after - before, sizeof(*o),
                  "order_new went through jemalloc (%llu bytes counted)",
                  (unsigned long long)(after - before));
    order_free(o);
}

#else

Test(jemalloc, sanitizer_build_uses_libc_malloc)
{
#if !defined(DISPATCHD_SANITIZE)
    cr_assert_fail("built without jemalloc, but not as the sanitizer build");
#elif !defined(__SANITIZE_ADDRESS__)
    cr_assert_fail("DISPATCHD_SANITIZE set, but AddressSanitizer is off");
#else
    cr_skip_test("sanitizer build: jemalloc is not linked so that "
                 "AddressSanitizer sees every allocation");
#endif
}

#endif
