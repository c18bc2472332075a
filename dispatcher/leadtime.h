/*
 * leadtime — how long similar orders took: for each (customer, class), the
 * push-to-outbound times of its last LEADTIME_RING shipped orders, with
 * when each shipped, so the customer page can say "similar orders shipped
 * within X (median) / Y (90th percentile) over the last 30 days".
 *
 * In memory and bounded: a ring per key, at most LEADTIME_KEYS keys (past
 * that, new keys are not tracked; counted).  Rebuilt at start from the
 * finished orders the store still keeps (--retention, 30 d by default),
 * then fed on every outbound.  Loop thread only.
 */
#ifndef DISPATCHD_LEADTIME_H
#define DISPATCHD_LEADTIME_H

#include <stddef.h>
#include <stdint.h>

#define LEADTIME_RING 256
#define LEADTIME_KEYS 100000
#define LEADTIME_WINDOW_MS (30LL * 24 * 3600 * 1000)

struct leadtime;
struct order;

struct leadtime *leadtime_new(void); /* NULL: out of memory */
void leadtime_free(struct leadtime *lt);

/* An order of customer and class shipped at `at`, lead_ms after it was
   pushed.  Returns 0, or -1 when not tracked (out of memory, too many
   keys, a negative lead). */
int leadtime_add(struct leadtime *lt, const char *customer, int cls, int64_t at,
                 int64_t lead_ms);
/* The same from a shipped or delivered order (created, outbound_at). */
int leadtime_add_order(struct leadtime *lt, const struct order *o);

struct leadtime_stat {
    size_t n;          /* orders in the window */
    int64_t median_ms; /* meaningful when n > 0 */
    int64_t p90_ms;
};
/* Over the orders of (customer, cls) shipped in (now - window, now]. */
void leadtime_get(const struct leadtime *lt, const char *customer, int cls,
                  int64_t now, struct leadtime_stat *st);
/* Keys refused because LEADTIME_KEYS were tracked already. */
uint64_t leadtime_refused(const struct leadtime *lt);

#endif
