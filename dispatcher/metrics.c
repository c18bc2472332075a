/*
 * The Prometheus page.  Names follow the exposition guidelines: a
 * dispatchd_ prefix, base units in the name (_seconds), _total for
 * counters, one HELP and TYPE line per family.
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "core.h"

const double histo_fast[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                             0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                             0.5,     1,      2.5,     5,      10};
const size_t histo_fast_n = sizeof histo_fast / sizeof histo_fast[0];
const double histo_slow[] = {1,    5,    15,   30,    60,    300,   900,
                             1800, 3600, 7200, 14400, 28800, 86400, 259200};
const size_t histo_slow_n = sizeof histo_slow / sizeof histo_slow[0];

void
histo_init(struct histo *h, const double *le, size_t n)
{
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n < HISTO_MAX ? n : HISTO_MAX;
}

void
histo_observe_n(struct histo *h, double v, uint64_t n)
{
    size_t i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    if (i < h->n)
        h->bucket[i] += n;
    h->count += n;
    h->sum += v * (double)n;
}

void
histo_observe(struct histo *h, double v)
{
    histo_observe_n(h, v, 1);
}

static void
family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

static void
one(struct evbuffer *b, const char *name, const char *type, const char *help,
    double v)
{
    family(b, name, type, help);
    evbuffer_add_printf(b, "%s %.17g\n", name, v);
}

static void
histo_render(struct evbuffer *b, const char *name, const char *help,
             const struct histo *h)
{
    uint64_t cum = 0;
    family(b, name, "histogram", help);
    for (size_t i = 0; i < h->n; i++) {
        cum += h->bucket[i];
        evbuffer_add_printf(b, "%s_bucket{le=\"%.17g\"} %llu\n", name, h->le[i],
                            (unsigned long long)cum);
    }
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                        (unsigned long long)h->count);
    evbuffer_add_printf(b, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name,
                        (unsigned long long)h->count);
}

/* A label value: backslash, quote and newline escaped. */
static void
label(struct evbuffer *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(b, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, s, 1);
    }
}

struct depth_ctx {
    struct evbuffer *b;
    struct core *c;
};

static void
depth_one(void *ctx, const char *warehouse)
{
    struct depth_ctx *d = ctx;
    struct pickq_stats st;
    pickq_stats(d->c->q, warehouse, &st);
    for (int k = 0; k < CLASS_COUNT; k++) {
        evbuffer_add_printf(d->b, "dispatchd_queue_depth{warehouse=\"");
        label(d->b, warehouse);
        evbuffer_add_printf(d->b, "\",class=\"%s\"} %zu\n", order_class_name(k),
                            st.queued_by_class[k]);
    }
}

void
metrics_render(struct evbuffer *b, struct core *c,
               const struct conn_counters *cc)
{
    struct core_stats st;
    core_stats_all(c, NULL, &st);
    const struct pickq_stats *q = &st.q;

    family(b, "dispatchd_orders", "gauge", "Orders known, by state.");
    for (int s = 0; s < STATE_COUNT; s++)
        evbuffer_add_printf(b, "dispatchd_orders{state=\"%s\"} %zu\n",
                            order_state_name(s), q->by_state[s]);
    family(b, "dispatchd_queue_depth", "gauge",
           "Queued orders by warehouse and effective class.");
    struct depth_ctx d = {b, c};
    core_each_warehouse(c, depth_one, &d);

    const struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"dispatchd_pushes_total", "Orders pushed.", q->pushes},
        {"dispatchd_approvals_total", "Orders approved.", q->approvals},
        {"dispatchd_picks_total", "Leases handed to pickers.", q->picks},
        {"dispatchd_releases_total", "Leases given back.", q->releases},
        {"dispatchd_outbounds_total", "Outbound confirmations applied.",
         q->outbounds},
        {"dispatchd_outbounds_unleased_total",
         "Outbound confirmations for orders nobody had leased.",
         q->outbounds_unleased},
        {"dispatchd_deliveries_total", "Deliveries confirmed.", q->deliveries},
        {"dispatchd_cancels_total", "Orders cancelled.", q->cancels},
        {"dispatchd_lease_expiries_total", "Leases that ran out.", q->expiries},
        {"dispatchd_escalations_total",
         "Orders promoted a class near their deadline.", q->escalations},
        {"dispatchd_queue_jumps_total", "Queue jumps recorded.", q->jumps},
        {"dispatchd_picked_total", "Picks reported done (PICKED).", q->picked},
        {"dispatchd_unconfirmed_total",
         "Picked orders whose outbound confirmation did not come in time.",
         q->unconfirmed},
        {"dispatchd_outbounds_anomalous_total",
         "Outbound confirmations from a state the queue did not expect.",
         q->outbounds_anomalous},
        {"dispatchd_lease_revocations_total",
         "Leases revoked by another picker's outbound.", q->revocations},
        {"dispatchd_events_published_total", "Events published.", st.events},
        {"dispatchd_notify_delivered_total",
         "Events delivered to notification targets.", st.notify_delivered},
        {"dispatchd_notify_retries_total",
         "Notification attempts that failed and were retried.",
         st.notify_retries},
        {"dispatchd_notify_failures_total",
         "Notifications that used every attempt (alerted, kept).",
         st.notify_failures},
        {"dispatchd_store_groups_total", "Group commits written.",
         st.st.groups},
        {"dispatchd_store_records_total", "Records written.", st.st.records},
        {"dispatchd_store_syncs_total", "WAL syncs.", st.st.syncs},
        {"dispatchd_store_failures_total", "Group writes that failed.",
         st.st.failures},
        {"dispatchd_connections_total", "Connections accepted.",
         cc ? cc->connections : 0},
        {"dispatchd_connections_rejected_total",
         "Connections refused at the client limit.", cc ? cc->rejected : 0},
        {"dispatchd_requests_total", "Requests handled (RESP and binary).",
         cc ? cc->requests : 0},
        {"dispatchd_protocol_errors_total",
         "Connections closed for a protocol violation.",
         cc ? cc->protocol_errors : 0},
        {"dispatchd_output_limit_closes_total",
         "Connections closed for unread output.", cc ? cc->output_closes : 0},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        one(b, counters[i].name, "counter", counters[i].help,
            (double)counters[i].v);
    family(b, "dispatchd_refused_total", "counter",
           "Changes refused because storage could not take them.");
    evbuffer_add_printf(b, "dispatchd_refused_total{reason=\"busy\"} %llu\n",
                        (unsigned long long)st.busy);
    evbuffer_add_printf(b,
                        "dispatchd_refused_total{reason=\"readonly\"} %llu\n",
                        (unsigned long long)st.readonly);

    one(b, "dispatchd_mean_pick_seconds", "gauge",
        "Measured mean pick duration.", (double)q->mean_pick_ms / 1000.0);
    one(b, "dispatchd_warehouses", "gauge", "Warehouses with orders.",
        (double)q->warehouses);
    one(b, "dispatchd_clients", "gauge", "Open connections.",
        (double)st.clients);
    one(b, "dispatchd_blocked_pickers", "gauge", "Pickers waiting in NEXT.",
        (double)st.blocked);
    one(b, "dispatchd_uptime_seconds", "gauge", "Seconds since start.",
        (double)st.uptime_ms / 1000.0);
    one(b, "dispatchd_storage_ok", "gauge",
        "1 while storage takes writes, 0 while it refuses them.",
        st.storage_ok ? 1 : 0);
    const struct {
        const char *name, *help;
        uint64_t v;
    } bytes[] = {
        {"dispatchd_memory_rss_bytes", "Resident set of the process.",
         st.mem.rss},
        {"dispatchd_memory_allocated_bytes",
         "Bytes handed out by the allocator and not freed.", st.mem.allocated},
        {"dispatchd_store_memtable_bytes",
         "RocksDB memtables, active and waiting to flush.",
         st.smem.memtable_bytes},
        {"dispatchd_store_table_readers_bytes",
         "RocksDB SST index and filter blocks held in memory.",
         st.smem.table_readers_bytes},
        {"dispatchd_store_block_cache_bytes", "RocksDB block cache in use.",
         st.smem.block_cache_bytes},
    };
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        one(b, bytes[i].name, "gauge", bytes[i].help, (double)bytes[i].v);
    one(b, "dispatchd_store_sync_seconds_max", "gauge",
        "Longest WAL sync so far.", (double)st.st.sync_us_max / 1e6);
    static const char *const modes[] = {"sync", "batch", "none"};
    family(b, "dispatchd_durability_info", "gauge",
           "The durability mode (label), always 1.");
    evbuffer_add_printf(b, "dispatchd_durability_info{mode=\"%s\"} 1\n",
                        modes[st.st.durability]);

    /* Group commit sizes, from the store's power-of-two counts. */
    family(b, "dispatchd_store_group_size", "histogram",
           "Records per group commit.");
    uint64_t cum = 0;
    for (size_t i = 0; i + 1 < STORE_GROUP_BUCKETS; i++) {
        cum += st.st.group_sizes[i];
        evbuffer_add_printf(b,
                            "dispatchd_store_group_size_bucket{le=\"%zu\"} "
                            "%llu\n",
                            (size_t)1 << i, (unsigned long long)cum);
    }
    evbuffer_add_printf(b,
                        "dispatchd_store_group_size_bucket{le=\"+Inf\"} %llu\n"
                        "dispatchd_store_group_size_sum %llu\n"
                        "dispatchd_store_group_size_count %llu\n",
                        (unsigned long long)st.st.groups,
                        (unsigned long long)st.st.records,
                        (unsigned long long)st.st.groups);

    histo_render(b, "dispatchd_command_duration_seconds",
                 "From reading a request to sending its reply, durability "
                 "wait included.",
                 &c->h_command);
    histo_render(b, "dispatchd_durability_wait_seconds",
                 "How long acknowledged changes waited to be durable.",
                 &c->h_durable);
    histo_render(b, "dispatchd_queue_wait_seconds",
                 "From push to lease, for every lease handed out.",
                 &c->h_queue);
}
