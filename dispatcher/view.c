/*
 * The field lists.  Each add_* call appends one field; formatted values
 * (times, risk words) live in the view's own buffer.
 */
#include "view.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *
keep(struct view *v, const char *s, size_t len)
{
    if (v->used + len + 1 > sizeof v->buf)
        log_fatal("view buffer too small (%zu bytes)", sizeof v->buf);
    char *p = v->buf + v->used;
    memcpy(p, s, len);
    p[len] = '\0';
    v->used += len + 1;
    return p;
}

static struct view_field *
add(struct view *v, int tag, int kind, const char *key)
{
    if (v->n >= VIEW_FIELDS_MAX)
        log_fatal("view has more than %d fields", VIEW_FIELDS_MAX);
    struct view_field *f = &v->f[v->n++];
    memset(f, 0, sizeof *f);
    f->tag = (uint8_t)tag;
    f->kind = (uint8_t)kind;
    f->key = key;
    return f;
}

static void
add_str(struct view *v, int tag, const char *key, const char *s, size_t len)
{
    struct view_field *f = add(v, tag, VIEW_STR, key);
    f->s = s;
    f->len = len;
}

static void
add_cstr(struct view *v, int tag, const char *key, const char *s)
{
    add_str(v, tag, key, s, strlen(s));
}

static void
add_int(struct view *v, int tag, const char *key, int64_t i)
{
    add(v, tag, VIEW_INT, key)->i = i;
}

/* A time as two fields: key (epoch ms) and key_iso. */
static void
add_time(struct view *v, int tag, const char *key, const char *iso_key,
         int64_t ms)
{
    char when[40];
    add_int(v, tag, key, ms);
    order_time_format(ms, when, sizeof when);
    const char *s = keep(v, when, strlen(when));
    add_str(v, tag + 1, iso_key, s, strlen(s));
}

void
view_order(struct view *v, struct core *c, const struct order *o)
{
    char risk[64];

    v->o = o;
    v->n = 0;
    v->used = 0;
    add_cstr(v, VT_ID, "id", o->id);
    add_cstr(v, VT_CLASS, "class", order_class_name(o->cls));
    add_cstr(v, VT_EFFECTIVE_CLASS, "effective_class",
             order_class_name(o->eff_cls));
    add_cstr(v, VT_STATE, "state", order_state_name(o->state));
    add_cstr(v, VT_WAREHOUSE, "warehouse", o->warehouse);
    add_cstr(v, VT_CUSTOMER, "customer", o->customer);
    add_cstr(v, VT_SOURCE, "source", order_source_name(o->source));
    add_cstr(v, VT_FULFIL, "fulfil", order_fulfil_name(o->fulfil));
    order_risk_format(o->risk, risk, sizeof risk);
    struct view_field *f = add(v, VT_RISK, VIEW_LIST, "risk");
    f->s = keep(v, risk, strlen(risk));
    f->len = strlen(risk);
    add_time(v, VT_DEADLINE, "deadline", "deadline_iso", o->deadline);
    add_time(v, VT_CREATED, "created", "created_iso", o->created);
    add_time(v, VT_UPDATED, "updated", "updated_iso", o->updated);
    add_int(v, VT_SEQ, "seq", (int64_t)o->seq);
    add(v, VT_ATTRS, VIEW_ATTRS, "attrs")->i = o->nattrs;

    size_t rank;
    int64_t eta;
    if (o->state == STATE_QUEUED && core_position(c, o, &rank, &eta)) {
        add_int(v, VT_POSITION, "position", (int64_t)rank);
        add_int(v, VT_ETA_MS, "eta_ms", eta);
        add_time(v, VT_ETA, "eta", "eta_iso", core_now() + eta);
    }
    if (o->state == STATE_PICKING) {
        add(v, VT_LEASE, VIEW_U64, "lease")->u = o->lease;
        add_time(v, VT_LEASE_EXPIRES, "lease_expires", "lease_expires_iso",
                 o->lease_expires);
        add_cstr(v, VT_PICKER, "picker", o->picker);
        add_time(v, VT_PICKED_AT, "picked_at", "picked_at_iso", o->picked_at);
    }
    if (o->state == STATE_SHIPPED || o->state == STATE_DELIVERED) {
        add_time(v, VT_OUTBOUND_AT, "outbound_at", "outbound_at_iso",
                 o->outbound_at);
        add_cstr(v, VT_OPERATOR, "operator", o->operator_);
        add_int(v, VT_OUTBOUND_LEASED, "outbound_leased", o->outbound_leased);
    }
    if (o->state == STATE_DELIVERED)
        add_time(v, VT_DELIVERED_AT, "delivered_at", "delivered_at_iso",
                 o->delivered_at);
}

void
view_audit(struct view *v, uint32_t seq, const struct audit_entry *a)
{
    v->o = NULL;
    v->n = 0;
    v->used = 0;
    add_int(v, VT_A_SEQ, "seq", seq);
    add_time(v, VT_A_AT, "at", "at_iso", a->at);
    add_str(v, VT_A_ACTOR, "actor", a->actor, a->actor_len);
    add_cstr(v, VT_A_ACTION, "action", order_action_name(a->action));
    add_cstr(v, VT_A_FROM, "from",
             a->from < 0 ? "" : order_state_name(a->from));
    add_cstr(v, VT_A_TO, "to", order_state_name(a->to));
    add_str(v, VT_A_RAW, "raw", a->raw, a->raw_len);
    add_str(v, VT_A_NOTE, "note", a->note, a->note_len);
}

void
view_stats(struct view *v, const struct core_stats *st)
{
    static const char *const modes[] = {"sync", "batch", "none"};
    static const char *const queued_keys[CLASS_COUNT] = {
        "queued_asn", "queued_rush4h", "queued_rush24h", "queued_normal"};
    int tag = VT_STATS;

    v->o = NULL;
    v->n = 0;
    v->used = 0;
    for (int s = 0; s < STATE_COUNT; s++)
        add_int(v, tag++, order_state_name(s), (int64_t)st->q.by_state[s]);
    for (int k = 0; k < CLASS_COUNT; k++)
        add_int(v, tag++, queued_keys[k], (int64_t)st->q.queued_by_class[k]);
    const struct {
        const char *k;
        uint64_t v;
    } counters[] = {
        {"pushes", st->q.pushes},
        {"approvals", st->q.approvals},
        {"picks", st->q.picks},
        {"releases", st->q.releases},
        {"outbounds", st->q.outbounds},
        {"outbounds_unleased", st->q.outbounds_unleased},
        {"deliveries", st->q.deliveries},
        {"cancels", st->q.cancels},
        {"lease_expiries", st->q.expiries},
        {"escalations", st->q.escalations},
        {"queue_jumps", st->q.jumps},
        {"picked_reports", st->q.picked},
        {"unconfirmed", st->q.unconfirmed},
        {"outbounds_anomalous", st->q.outbounds_anomalous},
        {"lease_revocations", st->q.revocations},
        {"mean_pick_ms", (uint64_t)st->q.mean_pick_ms},
        {"warehouses", st->q.warehouses},
        {"connected_clients", st->clients},
        {"blocked_clients", st->blocked},
        {"uptime_s", (uint64_t)(st->uptime_ms / 1000)},
        {"events_published", st->events},
        {"refused_busy", st->busy},
        {"refused_readonly", st->readonly},
        {"store_groups", st->st.groups},
        {"store_records", st->st.records},
        {"store_max_group", st->st.max_group},
        {"store_syncs", st->st.syncs},
        {"store_sync_us_last", st->st.sync_us_last},
        {"store_sync_us_mean",
         st->st.syncs ? st->st.sync_us_total / st->st.syncs : 0},
        {"store_sync_us_max", st->st.sync_us_max},
        {"store_failures", st->st.failures},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        add_int(v, tag++, counters[i].k, (int64_t)counters[i].v);
    add_cstr(v, tag++, "durability", modes[st->st.durability]);
    add_cstr(v, tag++, "storage", st->storage_ok ? "ok" : "failing");
    add_int(v, tag++, "notify_delivered", (int64_t)st->notify_delivered);
    add_int(v, tag++, "notify_retries", (int64_t)st->notify_retries);
    add_int(v, tag++, "notify_failures", (int64_t)st->notify_failures);
    add_int(v, tag++, "mem_rss", (int64_t)st->mem.rss);
    add_int(v, tag++, "mem_allocated", (int64_t)st->mem.allocated);
    add_int(v, tag++, "mem_allocator_resident", (int64_t)st->mem.resident);
    add_int(v, tag++, "store_memtable_bytes", (int64_t)st->smem.memtable_bytes);
    add_int(v, tag++, "store_table_readers_bytes",
            (int64_t)st->smem.table_readers_bytes);
    add_int(v, tag++, "store_block_cache_bytes",
            (int64_t)st->smem.block_cache_bytes);
}
