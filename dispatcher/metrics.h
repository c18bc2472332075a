/*
 * metrics — latency histograms and the Prometheus text exposition
 * (format 0.0.4) of the stats snapshot: dispatchd_ prefix, base units
 * (seconds, bytes), _total on counters, queue depth per warehouse and
 * class as gauges.  The snapshot is the same one STATS and INFO show.
 */
#ifndef DISPATCHD_METRICS_H
#define DISPATCHD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#define HISTO_MAX 24

/* A cumulative histogram with fixed upper bounds (seconds). */
struct histo {
    const double *le; /* bucket upper bounds, ascending */
    size_t n;
    uint64_t count;
    double sum;
    uint64_t bucket[HISTO_MAX]; /* not cumulative: rendered so */
};

extern const double histo_fast[]; /* 50 us .. 10 s: commands, syncs */
extern const size_t histo_fast_n;
extern const double histo_slow[]; /* 1 s .. 3 d: time in queue */
extern const size_t histo_slow_n;

void histo_init(struct histo *h, const double *le, size_t n);
void histo_observe(struct histo *h, double seconds);
/* n observations of the same value. */
void histo_observe_n(struct histo *h, double seconds, uint64_t n);

struct core;
struct conn_counters;

/* The whole /metrics page. */
void metrics_render(struct evbuffer *b, struct core *c,
                    const struct conn_counters *cc);

#endif
