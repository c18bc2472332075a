/*
 * The core: every operation on orders, in one place, for every protocol.
 *
 * A change goes through the same four steps whoever asks for it:
 *   1. refuse it while storage cannot take it (READONLY, BUSY);
 *   2. ask the pick queue (pickq_*) to make it, which checks the rules;
 *   3. record it: the order's record and one audit entry, one ticket;
 *   4. publish the events it caused once that ticket is durable, and hand
 *      an order that became queued to the longest-waiting blocked picker.
 * Timers (lease expiry, escalation) take the same steps with the actor
 * "dispatchd".  No lease, acknowledgement or event leaves for a change
 * the store did not take: a lease whose record is refused is given back.
 *
 * Longer than our ~800-line habit on purpose: it is the one place every
 * operation and its four steps live; split by operation, the steps would
 * be repeated or scattered again.
 */
#include "core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

#define RETENTION_PERIOD_MS (60 * 1000)
#define STORAGE_RETRY_MS 100 /* timers wait this long while storage fails */
#define SYSTEM_ACTOR "dispatchd"

static const char *const code_words[CORE_CODE_COUNT] = {
    "OK",     "ALREADY", "NIL",    "BLOCKED", "NOTFOUND", "BADSTATE", "BADARG",
    "EXISTS", "LEASE",   "TOOBIG", "BUSY",    "READONLY", "NOPERM",   "ERR",
};

const char *
core_code_word(int code)
{
    return code >= 0 && code < CORE_CODE_COUNT ? code_words[code] : "ERR";
}

int64_t
core_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
core_durable(const struct core *c)
{
    return store_durable(c->store);
}

static struct timeval
ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void result(struct core_result *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
result(struct core_result *r, int code, const char *fmt, ...)
{
    va_list ap;
    r->code = code;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

static void
result_clear(struct core_result *r)
{
    r->code = CORE_OK;
    r->msg[0] = '\0';
    r->order = NULL;
    r->ticket = 0;
    r->value = 0;
}

/* ---- the steps of a change ------------------------------------------ */

/* Step 1: false (and r filled) when the store cannot take a change now. */
static bool
writable(struct core *c, struct core_result *r)
{
    char why[200];

    if (!store_ok(c->store, why, sizeof why)) {
        c->n_readonly++;
        result(r, CORE_READONLY, "storage: %s", why);
        return false;
    }
    if (store_busy(c->store)) {
        c->n_busy++;
        result(r, CORE_BUSY, "storage queue full, try again");
        return false;
    }
    return true;
}

static struct order *
find(struct core *c, const char *id, size_t idlen, struct core_result *r)
{
    struct order *o = NULL;
    if (idlen > 0 && idlen <= ORDER_ID_MAX)
        o = pickq_get(c->q, id, idlen);
    if (!o)
        result(r, CORE_NOTFOUND, "order %.*s",
               (int)(idlen > ORDER_ID_MAX ? ORDER_ID_MAX : idlen), id);
    return o;
}

/* A pick queue refusal as a result. */
static void
refused(struct core_result *r, int rc, const struct order *o, const char *what,
        const char *err)
{
    switch (rc) {
    case PICKQ_BADSTATE:
        result(r, CORE_BADSTATE, "order %s is %s, cannot %s", o->id,
               order_state_name(o->state), what);
        break;
    case PICKQ_LEASE:
        result(r, CORE_LEASE, "not the current lease of order %s", o->id);
        break;
    case PICKQ_NOTFOUND:
        result(r, CORE_NOTFOUND, "order %s", o->id);
        break;
    case PICKQ_BADARG:
        result(r, CORE_BADARG, "%s", err && err[0] ? err : "invalid value");
        break;
    case PICKQ_EXISTS:
        result(r, CORE_EXISTS, "order %s exists with different content", o->id);
        break;
    case PICKQ_NOMEM:
        result(r, CORE_ERR, "out of memory");
        break;
    default:
        result(r, CORE_ERR, "cannot %s order %s (pick queue error %d)", what,
               o->id, rc);
    }
}

/* Step 3: the record and the audit entry.  Returns the ticket, or 0 when
   the store refused it (logged). */
static uint64_t
record(struct core *c, const char *actor, struct order *o, int action, int from,
       const char *raw, size_t raw_len, const char *note)
{
    o->audit_n++;
    struct audit_entry a = {
        .at = core_now(),
        .action = action,
        .from = from,
        .to = o->state,
        .actor = actor,
        .actor_len = strlen(actor),
        .raw = raw ? raw : "",
        .raw_len = raw ? raw_len : 0,
        .note = note ? note : "",
        .note_len = note ? strlen(note) : 0,
    };
    uint64_t t = store_put(c->store, o, &a);
    if (!t) {
        o->audit_n--;
        log_msg(LOG_WARN, "storage refused the change of order %s (%s)", o->id,
                order_action_name(action));
    } else if (c->on_change) {
        c->on_change(c->on_change_arg, o, action, from);
    }
    return t;
}

static void serve_waiters(struct core *c, const char *warehouse);
static void core_arm_timer(struct core *c);

/* Steps 3 and 4 for a change made by a caller. */
static void
commit(struct core *c, const char *actor, struct order *o, int action, int from,
       const char *raw, size_t raw_len, const char *note,
       const struct pickq_jump *jump, struct core_result *r)
{
    /* The record and the events it causes go in one write. */
    store_group_begin(c->store);
    uint64_t t = record(c, actor, o, action, from, raw, raw_len, note);
    r->order = o;
    if (!t) {
        store_group_end(c->store);
        /* The store started failing between the check and the write. */
        result(r, CORE_READONLY,
               "storage: the change of order %s was not "
               "recorded",
               o->id);
        return;
    }
    r->ticket = t;
    uint64_t durable = core_durable(c);
    int64_t now = core_now();
    if (o->state == STATE_QUEUED && o->eff_cls != o->cls &&
        (action == ACTION_PUSH || action == ACTION_APPROVE ||
         action == ACTION_REPRIO)) {
        /* Its deadline was already within its class's window. */
        struct evbuffer *e = event_begin(&c->events, "escalated", now);
        if (e) {
            event_order(e, o);
            event_str(e, "from", order_class_name(o->cls));
            event_str(e, "to", order_class_name(o->eff_cls));
            event_end(&c->events, e, t, durable);
        }
    }
    if (jump && jump->order) {
        event_jump(&c->events, jump, t, durable, now);
        /* Every rush order jumps: at info level a surge wrote a line per
           rush order (80 MB for 10^6 orders), each a write on the loop.
           The event log and the notifier are where people see jumps. */
        log_msg(LOG_DEBUG,
                "queue jump: order %s (%s, %s) to position %zu, %zu displaced",
                o->id, order_class_name(o->cls), o->customer, jump->position,
                jump->displaced);
    }
    store_group_end(c->store);
    if (o->state == STATE_QUEUED)
        serve_waiters(c, o->warehouse);
    core_arm_timer(c);
}

/* ---- ERP ------------------------------------------------------------ */

void
core_push(struct core *c, const char *actor, struct order *o, const char *raw,
          size_t raw_len, struct core_result *r)
{
    char err[256] = "";

    result_clear(r);
    if (!writable(c, r)) {
        order_free(o);
        return;
    }
    if (raw_len > CORE_RAW_MAX) {
        result(r, CORE_TOOBIG, "raw message of %zu bytes (at most %d)", raw_len,
               CORE_RAW_MAX);
        order_free(o);
        return;
    }
    struct pickq_jump jump = {0};
    int rc = pickq_push(c->q, o, core_now(), &jump, err, sizeof err);
    if (rc == PICKQ_OK) {
        commit(c, actor, o, ACTION_PUSH, -1, raw, raw_len, NULL, &jump, r);
        return;
    }
    if (rc == PICKQ_SAME) {
        r->code = CORE_ALREADY;
        r->order = pickq_get(c->q, o->id, strlen(o->id));
    } else {
        refused(r, rc, o, "push", err);
    }
    order_free(o);
}

void
core_approve(struct core *c, const char *actor, const char *id, size_t idlen,
             const char *raw, size_t raw_len, struct core_result *r)
{
    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    int from = o->state;
    struct pickq_jump jump = {0};
    int rc = pickq_approve(c->q, o, core_now(), &jump);
    if (rc) {
        refused(r, rc, o, "approve", NULL);
        return;
    }
    commit(c, actor, o, ACTION_APPROVE, from, raw, raw_len, NULL, &jump, r);
}

static void
hold_or_cancel(struct core *c, const char *actor, int action, const char *id,
               size_t idlen, const char *reason, size_t reason_len,
               const char *raw, size_t raw_len, struct core_result *r)
{
    char note[CORE_NOTE_MAX + 1] = "";

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    if (reason_len > CORE_NOTE_MAX) {
        result(r, CORE_TOOBIG, "reason of %zu bytes (at most %d)", reason_len,
               CORE_NOTE_MAX);
        return;
    }
    if (reason_len) {
        memcpy(note, reason, reason_len);
        note[reason_len] = '\0';
    }
    int from = o->state;
    int64_t now = core_now();
    int rc = action == ACTION_HOLD ? pickq_hold(c->q, o, now)
                                   : pickq_cancel(c->q, o, now);
    if (rc) {
        refused(r, rc, o, order_action_name(action), NULL);
        return;
    }
    commit(c, actor, o, action, from, raw, raw_len, note, NULL, r);
}

void
core_hold(struct core *c, const char *actor, const char *id, size_t idlen,
          const char *reason, size_t reason_len, const char *raw,
          size_t raw_len, struct core_result *r)
{
    hold_or_cancel(c, actor, ACTION_HOLD, id, idlen, reason, reason_len, raw,
                   raw_len, r);
}

void
core_cancel(struct core *c, const char *actor, const char *id, size_t idlen,
            const char *reason, size_t reason_len, const char *raw,
            size_t raw_len, struct core_result *r)
{
    hold_or_cancel(c, actor, ACTION_CANCEL, id, idlen, reason, reason_len, raw,
                   raw_len, r);
}

void
core_reprio(struct core *c, const char *actor, const char *id, size_t idlen,
            int cls, int64_t deadline, const char *raw, size_t raw_len,
            struct core_result *r)
{
    char err[256] = "", note[64];

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    if (cls < 0 || cls >= CLASS_COUNT) {
        result(r, CORE_BADARG, "unknown class %d", cls);
        return;
    }
    snprintf(note, sizeof note, "class %s -> %s", order_class_name(o->cls),
             order_class_name(cls));
    int from = o->state;
    struct pickq_jump jump = {0};
    int rc = pickq_reprio(c->q, o, cls, deadline, core_now(), &jump, err,
                          sizeof err);
    if (rc) {
        refused(r, rc, o, "reprioritise", err);
        return;
    }
    commit(c, actor, o, ACTION_REPRIO, from, raw, raw_len, note, &jump, r);
}

/* ---- WMS ------------------------------------------------------------ */

/* Lease the first order of warehouse to picker and record it.  Returns
   the order (r->ticket set), or NULL: nothing queued (r untouched) or the
   store refused the lease (r filled, the order given back). */
static struct order *
lease(struct core *c, const char *actor, const char *warehouse,
      const char *picker, int64_t lease_ms, struct core_result *r)
{
    struct order *o;
    int64_t now = core_now();
    char note[ORDER_NAME_MAX + 48];

    if (pickq_next(c->q, warehouse, picker, lease_ms, now, &o) != PICKQ_OK)
        return NULL;
    snprintf(note, sizeof note, "picker=%s lease=%" PRIu64, picker, o->lease);
    uint64_t t = record(c, actor, o, ACTION_NEXT, STATE_QUEUED, NULL, 0, note);
    if (!t) {
        /* Never hand out a lease a crash could forget. */
        if (pickq_release(c->q, o, o->lease, now) != PICKQ_OK)
            log_fatal("cannot give back unrecorded lease of order %s", o->id);
        result(r, CORE_READONLY,
               "storage: the lease of order %s was not "
               "recorded",
               o->id);
        return NULL;
    }
    r->ticket = t;
    r->order = o;
    if (o->created > 0 && now >= o->created)
        histo_observe(&c->h_queue, (double)(now - o->created) / 1000.0);
    return o;
}

/* Give queued orders of warehouse to blocked pickers, longest waiting
   first, one order each, while the store takes changes. */
static void
serve_waiters(struct core *c, const char *warehouse)
{
    struct waiter *w;

    while ((w = waiters_first(&c->waiters, warehouse)) != NULL) {
        struct core_result r;
        result_clear(&r);
        if (!store_ok(c->store, NULL, 0) || store_busy(c->store)) {
            c->serve_pending = true; /* served once storage takes changes */
            return;
        }
        if (!lease(c, w->actor, warehouse, w->picker, w->lease_ms, &r))
            return;
        waiters_cancel(w);
        w->done(w, r.order, r.ticket);
    }
}

/* Every warehouse with blocked pickers. */
static void
serve_all(struct core *c)
{
    size_t n = 0;
    char(*names)[ORDER_NAME_MAX + 1] = waiters_warehouses(&c->waiters, &n);
    if (!names && n) {
        log_msg(LOG_WARN, "out of memory serving blocked pickers");
        return;
    }
    for (size_t i = 0; i < n; i++)
        serve_waiters(c, names[i]);
    free(names);
}

void
core_next(struct core *c, const char *actor, const struct core_next_args *a,
          struct waiter *w, struct core_result *r)
{
    result_clear(r);
    size_t wl = strlen(a->warehouse), pl = strlen(a->picker);
    if (wl == 0 || wl > ORDER_NAME_MAX) {
        result(r, CORE_BADARG, "warehouse must be 1 to %d bytes",
               ORDER_NAME_MAX);
        return;
    }
    if (pl == 0 || pl > ORDER_NAME_MAX) {
        result(r, CORE_BADARG, "picker must be 1 to %d bytes", ORDER_NAME_MAX);
        return;
    }
    if (a->lease_ms < 0) {
        result(r, CORE_BADARG, "lease %" PRId64 " ms must be > 0", a->lease_ms);
        return;
    }
    if (!writable(c, r))
        return;
    if (lease(c, actor, a->warehouse, a->picker, a->lease_ms, r)) {
        core_arm_timer(c);
        return;
    }
    if (r->code != CORE_OK)
        return;
    if (a->block_ms < 0 || c->stopping || !w) {
        r->code = CORE_NIL;
        return;
    }
    memcpy(w->warehouse, a->warehouse, wl + 1);
    memcpy(w->picker, a->picker, pl + 1);
    snprintf(w->actor, sizeof w->actor, "%s", actor);
    w->lease_ms = a->lease_ms;
    if (waiters_add(&c->waiters, w, a->block_ms)) {
        result(r, CORE_ERR, "out of memory blocking a picker");
        return;
    }
    r->code = CORE_BLOCKED;
}

void
core_touch(struct core *c, const char *actor, const char *id, size_t idlen,
           uint64_t lease_id, int64_t lease_ms, const char *raw, size_t raw_len,
           struct core_result *r)
{
    char note[64];

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    int rc = pickq_touch(c->q, o, lease_id, lease_ms, core_now());
    if (rc) {
        refused(r, rc, o, "touch", NULL);
        return;
    }
    snprintf(note, sizeof note, "lease=%" PRIu64 " until=%" PRId64, lease_id,
             o->lease_expires);
    commit(c, actor, o, ACTION_TOUCH, STATE_PICKING, raw, raw_len, note, NULL,
           r);
    r->value = o->lease_expires;
}

/* The lease holder's steps without a reply value: RELEASE and PICKED
   (pickq_release and pickq_picked take the same arguments). */
static void
lease_step(struct core *c, const char *actor, const char *id, size_t idlen,
           uint64_t lease_id, const char *raw, size_t raw_len,
           struct core_result *r, int action, const char *what,
           int (*step)(struct pickq *q, struct order *o, uint64_t lease,
                       int64_t now))
{
    char note[48];

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    int rc = step(c->q, o, lease_id, core_now());
    if (rc == PICKQ_SAME) {
        r->code = CORE_ALREADY;
        r->order = o;
        return;
    }
    if (rc) {
        refused(r, rc, o, what, NULL);
        return;
    }
    snprintf(note, sizeof note, "lease=%" PRIu64, lease_id);
    commit(c, actor, o, action, STATE_PICKING, raw, raw_len, note, NULL, r);
}

void
core_release(struct core *c, const char *actor, const char *id, size_t idlen,
             uint64_t lease_id, const char *raw, size_t raw_len,
             struct core_result *r)
{
    lease_step(c, actor, id, idlen, lease_id, raw, raw_len, r, ACTION_RELEASE,
               "release", pickq_release);
}

/* A confirmation time: not before 2000, not further ahead than deadlines
   may be. */
static bool
sane_time(struct core *c, int64_t at, const char *what, struct core_result *r)
{
    const struct pickq_config *q = &c->cfg.queue;
    char when[40];
    if (at >= q->deadline_min_ms && at <= core_now() + q->deadline_ahead_max_ms)
        return true;
    result(r, CORE_BADARG,
           "%s time %" PRId64 " (%s) is outside the accepted "
           "window",
           what, at, order_time_format(at, when, sizeof when));
    return false;
}

/* Tell what an outbound met: the anomaly and a revoked lease. */
static void
outbound_events(struct core *c, struct order *o,
                const struct pickq_outbound_info *info, const char *operator_,
                uint64_t ticket, int64_t now)
{
    uint64_t durable = core_durable(c);
    if (info->anomaly && info->from != STATE_PICKING) {
        struct evbuffer *e = event_begin(&c->events, "outbound_unleased", now);
        if (e) {
            event_order(e, o);
            event_str(e, "operator", operator_);
            event_str(e, "from", order_state_name(info->from));
            event_end(&c->events, e, ticket, durable);
        }
    }
    if (info->anomaly) {
        struct evbuffer *e = event_begin(&c->events, "anomaly", now);
        if (e) {
            event_order(e, o);
            event_str(e, "from", order_state_name(info->from));
            event_str(e, "why", info->why);
            event_str(e, "operator", operator_);
            event_end(&c->events, e, ticket, durable);
        }
        log_msg(LOG_INFO, "order %s: %s (was %s, operator %s)", o->id,
                info->why, order_state_name(info->from), operator_);
    }
    if (info->revoked) {
        struct evbuffer *e = event_begin(&c->events, "lease_revoked", now);
        if (e) {
            event_order(e, o);
            event_int(e, "lease", (long long)info->revoked_lease);
            event_str(e, "picker", info->revoked_picker);
            event_str(e, "by", operator_);
            event_end(&c->events, e, ticket, durable);
        }
        log_msg(LOG_INFO,
                "order %s shipped by %s: lease %" PRIu64 " of %s "
                "revoked",
                o->id, operator_, info->revoked_lease, info->revoked_picker);
    }
}

/* The audit note of an outbound. */
static void
outbound_note(char *note, size_t cap, const char *operator_,
              const struct pickq_outbound_info *info, const char *photo,
              size_t photo_len)
{
    int k = snprintf(note, cap, "operator=%s from=%s%s%s", operator_,
                     order_state_name(info->from),
                     info->anomaly ? " anomaly: " : "", info->why);
    if (k > 0 && (size_t)k < cap && info->revoked)
        k += snprintf(note + k, cap - (size_t)k,
                      " revoked lease=%" PRIu64 " of %s", info->revoked_lease,
                      info->revoked_picker);
    if (photo && photo_len && k > 0 && (size_t)k < cap)
        snprintf(note + k, cap - (size_t)k, " photo=%.*s",
                 (int)(photo_len > 100 ? 100 : photo_len), photo);
}

void
core_outbound(struct core *c, const char *actor, const char *id, size_t idlen,
              const struct core_confirm_args *a, const char *raw,
              size_t raw_len, struct core_result *r)
{
    char note[ORDER_NAME_MAX * 2 + 300];
    struct pickq_outbound_info info;

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    size_t opl = a->operator_ ? strlen(a->operator_) : 0;
    if (opl == 0 || opl > ORDER_NAME_MAX) {
        result(r, CORE_BADARG, "outbound needs an operator of 1 to %d bytes",
               ORDER_NAME_MAX);
        return;
    }
    if (raw_len > CORE_RAW_MAX) {
        result(r, CORE_TOOBIG, "raw message of %zu bytes (at most %d)", raw_len,
               CORE_RAW_MAX);
        return;
    }
    int64_t now = core_now();
    int64_t at = a->at ? a->at : now;
    if (!sane_time(c, at, "outbound", r))
        return;
    int from = o->state;
    int rc = pickq_outbound(c->q, o, a->operator_, at, now, &info);
    if (rc == PICKQ_SAME) {
        /* A repeat (the WMS retries): keep its message, change nothing. */
        snprintf(note, sizeof note, "repeat confirmation by %s", a->operator_);
        commit(c, actor, o, ACTION_OUTBOUND, from, raw, raw_len, note, NULL, r);
        if (r->code == CORE_OK)
            r->code = CORE_ALREADY;
        return;
    }
    if (rc) {
        refused(r, rc, o, "confirm outbound", NULL);
        return;
    }
    outbound_note(note, sizeof note, a->operator_, &info, a->photo,
                  a->photo_len);
    store_group_begin(c->store);
    commit(c, actor, o, ACTION_OUTBOUND, from, raw, raw_len, note, NULL, r);
    if (r->code == CORE_OK)
        outbound_events(c, o, &info, a->operator_, r->ticket, now);
    store_group_end(c->store);
}

void
core_deliver(struct core *c, const char *actor, const char *id, size_t idlen,
             int64_t at, const char *raw, size_t raw_len, struct core_result *r)
{
    char note[ORDER_NAME_MAX * 2 + 300];
    struct pickq_outbound_info info;

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o || !writable(c, r))
        return;
    if (raw_len > CORE_RAW_MAX) {
        result(r, CORE_TOOBIG, "raw message of %zu bytes (at most %d)", raw_len,
               CORE_RAW_MAX);
        return;
    }
    int64_t now = core_now();
    if (!at)
        at = now;
    if (!sane_time(c, at, "delivery", r))
        return;
    int from = o->state;
    int rc = pickq_deliver(c->q, o, NULL, at, now, &info);
    if (rc == PICKQ_SAME) {
        r->code = CORE_ALREADY;
        r->order = o;
        return;
    }
    if (rc) {
        refused(r, rc, o, "deliver", NULL);
        return;
    }
    store_group_begin(c->store);
    if (info.implied) {
        /* The e-signature came before the outbound callback: the
           delivery implies it.  Two entries: the outbound as it would
           have been recorded (to shipped), then the delivery. */
        outbound_note(note, sizeof note, "", &info, NULL, 0);
        strncat(note, " implied by the delivery",
                sizeof note - strlen(note) - 1);
        o->state = STATE_SHIPPED;
        uint64_t t =
            record(c, actor, o, ACTION_OUTBOUND, from, raw, raw_len, note);
        o->state = STATE_DELIVERED;
        if (!t) {
            result(r, CORE_READONLY,
                   "storage: the delivery of order %s was "
                   "not recorded",
                   o->id);
            r->order = o;
            store_group_end(c->store);
            return;
        }
        from = STATE_SHIPPED;
    }
    commit(c, actor, o, ACTION_DELIVER, from, raw, raw_len, NULL, NULL, r);
    if (r->code == CORE_OK && info.implied)
        outbound_events(c, o, &info, "", r->ticket, now);
    store_group_end(c->store);
}

void
core_picked(struct core *c, const char *actor, const char *id, size_t idlen,
            uint64_t lease_id, const char *raw, size_t raw_len,
            struct core_result *r)
{
    lease_step(c, actor, id, idlen, lease_id, raw, raw_len, r, ACTION_PICKED,
               "report picked", pickq_picked);
}

/* ---- reads ---------------------------------------------------------- */

void
core_get(struct core *c, const char *id, size_t idlen, struct core_result *r)
{
    result_clear(r);
    r->order = find(c, id, idlen, r);
}

size_t
core_peek(struct core *c, const char *warehouse, size_t k, struct order **out,
          struct core_result *r)
{
    result_clear(r);
    if (k < 1 || k > CORE_PEEK_MAX) {
        result(r, CORE_BADARG, "count %zu must be 1 to %d", k, CORE_PEEK_MAX);
        return (size_t)-1;
    }
    size_t n = pickq_peek(c->q, warehouse, k, out);
    if (n == (size_t)-1)
        result(r, CORE_ERR, "out of memory");
    return n;
}

void
core_audit(struct core *c, const char *id, size_t idlen,
           int (*fn)(void *ctx, uint32_t seq, const struct audit_entry *a),
           void *ctx, struct core_result *r)
{
    char err[256];

    result_clear(r);
    struct order *o = find(c, id, idlen, r);
    if (!o)
        return;
    r->order = o;
    if (store_audit(c->store, o->id, strlen(o->id), fn, ctx, err, sizeof err))
        result(r, CORE_ERR, "storage: %s", err);
}

bool
core_position(struct core *c, const struct order *o, size_t *rank,
              int64_t *eta_ms)
{
    return pickq_position(c->q, o, rank, eta_ms) == PICKQ_OK;
}

void
core_events(struct core *c, uint64_t after, size_t n,
            int (*fn)(void *ctx, uint64_t seq, const char *json, size_t len),
            void *ctx, struct core_result *r)
{
    char err[400];
    result_clear(r);
    if (n > CORE_EVENTS_MAX)
        n = CORE_EVENTS_MAX;
    if (store_events_read(c->store, after, n, fn, ctx, err, sizeof err))
        result(r, CORE_ERR, "%s", err);
}

void
core_event_type(const char *json, size_t len, char *buf, size_t cap)
{
    const char *p = memmem(json, len, "\"type\":\"", 8);
    size_t k = 0;
    if (p) {
        p += 8;
        while (p + k < json + len && p[k] != '"' && k + 1 < cap)
            k++;
        memcpy(buf, p, k);
    }
    buf[k] = '\0';
}

void
core_stats(struct core *c, const char *warehouse, struct core_stats *st)
{
    memset(st, 0, sizeof *st);
    pickq_stats(c->q, warehouse, &st->q);
    store_stats(c->store, &st->st);
    st->blocked = c->waiters.n;
    st->clients = c->clients;
    st->busy = c->n_busy;
    st->readonly = c->n_readonly;
    st->events = c->events.published;
    st->notify_delivered = c->notify_delivered;
    st->notify_retries = c->notify_retries;
    st->notify_failures = c->notify_failures;
    st->uptime_ms = core_now() - c->started;
    st->storage_ok =
        store_ok(c->store, st->storage_reason, sizeof st->storage_reason);
}

void
core_stats_all(struct core *c, const char *warehouse, struct core_stats *st)
{
    core_stats(c, warehouse, st);
    memory_usage(&st->mem);
    store_memory(c->store, &st->smem);
}

void
core_checkpoint(struct core *c, const char *name, size_t name_len,
                struct core_result *r)
{
    char path[sizeof c->cfg.checkpoint_dir + 80], err[512];

    result_clear(r);
    if (name_len == 0 || name_len > 64) {
        result(r, CORE_BADARG, "checkpoint name must be 1 to 64 bytes");
        return;
    }
    for (size_t i = 0; i < name_len; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
                  ch == '.';
        if (!ok || (ch == '.' && i == 0)) {
            result(r, CORE_BADARG,
                   "checkpoint name '%.*s': letters, digits, '-', '_' and "
                   "'.' only, not starting with '.' (it is created in %s)",
                   (int)name_len, name, c->cfg.checkpoint_dir);
            return;
        }
    }
    if (mkdir(c->cfg.checkpoint_dir, 0700) && errno != EEXIST) {
        result(r, CORE_ERR, "checkpoint directory %s: %s",
               c->cfg.checkpoint_dir, strerror(errno));
        return;
    }
    snprintf(path, sizeof path, "%s/%.*s", c->cfg.checkpoint_dir, (int)name_len,
             name);
    if (store_checkpoint(c->store, path, err, sizeof err)) {
        result(r, CORE_ERR, "checkpoint %s: %s", path, err);
        return;
    }
    log_msg(LOG_INFO, "checkpoint written to %s", path);
    snprintf(r->msg, sizeof r->msg, "%s", path);
}

bool
core_store_busy(struct core *c)
{
    return store_busy(c->store);
}

void
core_each_warehouse(struct core *c,
                    void (*fn)(void *ctx, const char *warehouse), void *ctx)
{
    pickq_each_warehouse(c->q, fn, ctx);
}

void
core_each_picking(struct core *c, const char *warehouse,
                  void (*fn)(void *ctx, const struct order *o), void *ctx)
{
    pickq_each_picking(c->q, warehouse, fn, ctx);
}

void
core_each_finished(struct core *c, void (*fn)(void *ctx, const struct order *o),
                   void *ctx)
{
    pickq_each_finished(c->q, fn, ctx);
}

void
core_stop_waiting(struct core *c)
{
    c->stopping = true;
    waiters_wake_all(&c->waiters);
}

/* ---- timers --------------------------------------------------------- */

static void
tick_expired(void *ctx, struct order *o, uint64_t old_lease)
{
    struct core *c = ctx;
    char note[64];

    snprintf(note, sizeof note, "lease=%" PRIu64 " expired", old_lease);
    uint64_t t =
        record(c, SYSTEM_ACTOR, o, ACTION_EXPIRE, STATE_PICKING, NULL, 0, note);
    struct evbuffer *e = event_begin(&c->events, "lease_expired", core_now());
    if (e) {
        event_order(e, o);
        event_int(e, "lease", (long long)old_lease);
        event_end(&c->events, e, t, core_durable(c));
    }
    log_msg(LOG_INFO, "lease %" PRIu64 " of order %s expired", old_lease,
            o->id);
    serve_waiters(c, o->warehouse);
}

static void
tick_escalated(void *ctx, struct order *o, int from_cls)
{
    struct core *c = ctx;
    char note[64];

    snprintf(note, sizeof note, "effective class %s -> %s",
             order_class_name(from_cls), order_class_name(o->eff_cls));
    uint64_t t = record(c, SYSTEM_ACTOR, o, ACTION_ESCALATE, STATE_QUEUED, NULL,
                        0, note);
    struct evbuffer *e = event_begin(&c->events, "escalated", core_now());
    if (e) {
        event_order(e, o);
        event_str(e, "from", order_class_name(from_cls));
        event_str(e, "to", order_class_name(o->eff_cls));
        event_end(&c->events, e, t, core_durable(c));
    }
}

static void
tick_unconfirmed(void *ctx, struct order *o)
{
    struct core *c = ctx;
    /* No transition: the order is stored so the report is not repeated
       after a restart. */
    uint64_t t = store_put(c->store, o, NULL);
    if (!t)
        log_msg(LOG_WARN, "storage refused recording order %s unconfirmed",
                o->id);
    int64_t now = core_now();
    struct evbuffer *e = event_begin(&c->events, "unconfirmed", now);
    if (e) {
        event_order(e, o);
        event_str(e, "picker", o->picker);
        event_int(e, "picked_at", (long long)o->pick_done_at);
        event_int(e, "waited_ms", (long long)(now - o->pick_done_at));
        event_end(&c->events, e, t, core_durable(c));
    }
    log_msg(LOG_WARN,
            "order %s picked by %s at %lld has no outbound confirmation", o->id,
            o->picker, (long long)o->pick_done_at);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct core *c = arg;
    struct pickq_tick_cb cb = {tick_expired, tick_escalated, tick_unconfirmed,
                               c};
    (void)fd;
    (void)what;

    c->timer_at = INT64_MAX;
    if (!store_ok(c->store, NULL, 0) || store_busy(c->store)) {
        /* A change the store cannot take is not made: expiries and
           escalations wait until it can. */
        c->timer_at = core_now() + STORAGE_RETRY_MS;
        struct timeval tv = ms_to_tv(STORAGE_RETRY_MS);
        evtimer_add(c->timer_ev, &tv);
        return;
    }
    /* Each expiry or escalation and its event go in one write. */
    store_group_begin(c->store);
    pickq_tick(c->q, core_now(), &cb);
    store_group_end(c->store);
    core_arm_timer(c);
}

static void
core_arm_timer(struct core *c)
{
    int64_t at = pickq_next_timer(c->q);

    if (at == c->timer_at)
        return;
    c->timer_at = at;
    if (at == INT64_MAX) {
        evtimer_del(c->timer_ev);
        return;
    }
    int64_t wait = at - core_now();
    struct timeval tv = ms_to_tv(wait > 0 ? wait : 0);
    evtimer_add(c->timer_ev, &tv);
}

static void
forget_one(void *ctx, struct order *o)
{
    struct core *c = ctx;
    if (!store_delete(c->store, o->id))
        log_msg(LOG_WARN, "retention: storage refused deleting order %s",
                o->id);
}

/* The "at" of the first logged event with a sequence > after. */
struct event_at {
    uint64_t seq;
    int64_t at;
};

static int
first_at(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct event_at *ea = ctx;
    ea->seq = seq;
    ea->at = INT64_MAX;
    /* Events read {"seq":N,"type":"...","at":T,... (event_begin). */
    for (size_t i = 0; i + 5 < len; i++) {
        if (memcmp(json + i, "\"at\":", 5) == 0) {
            ea->at = strtoll(json + i + 5, NULL, 10);
            break;
        }
    }
    return 1;
}

/* 1 and ea filled, 0 when no event follows `after`, -1 on an error. */
static int
event_at(struct core *c, uint64_t after, struct event_at *ea)
{
    char err[256];
    ea->seq = 0;
    if (store_events_read(c->store, after, 1, first_at, ea, err, sizeof err))
        return -1;
    return ea->seq != 0;
}

/* Delete the events older than --event-retention and all but the last
   --event-retention-count, as one range delete.  Events are made in time
   order, so the first one young enough is found by bisection. */
static void
events_retention(struct core *c)
{
    uint64_t first = 0, last = c->events.seq, cut = 0;
    char err[256];
    if (store_events_first(c->store, &first, err, sizeof err) || first == 0)
        return;
    if (c->cfg.event_retention_count && last > c->cfg.event_retention_count)
        cut = last - c->cfg.event_retention_count + 1; /* first to keep */
    if (c->cfg.event_retention_ms > 0) {
        int64_t before = core_now() - c->cfg.event_retention_ms;
        struct event_at ea;
        uint64_t lo = cut > first ? cut : first, hi = last + 1;
        /* The first kept seq is in [lo, hi]: hi keeps nothing. */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            int found = event_at(c, mid - 1, &ea);
            if (found < 0)
                return;
            if (!found || ea.at >= before)
                hi = mid;
            else
                lo = ea.seq + 1 > mid ? ea.seq + 1 : mid + 1;
        }
        if (lo > cut)
            cut = lo;
    }
    if (cut <= first)
        return;
    if (!store_events_trim(c->store, cut))
        log_msg(LOG_WARN, "event retention: storage refused the delete");
    else
        log_msg(LOG_INFO,
                "event retention: removed events %" PRIu64 " to %" PRIu64,
                first, cut - 1);
}

static void
on_retention(evutil_socket_t fd, short what, void *arg)
{
    struct core *c = arg;
    (void)fd;
    (void)what;

    if (!store_ok(c->store, NULL, 0) || store_busy(c->store))
        return;
    size_t n = pickq_forget_finished(c->q, core_now() - c->cfg.retention_ms,
                                     forget_one, c);
    if (n)
        log_msg(LOG_INFO, "retention: removed %zu finished orders", n);
    events_retention(c);
}

/* ---- durability ----------------------------------------------------- */

/* Called on the persistence thread: only wake the loop. */
static void
store_woke(void *arg)
{
    struct core *c = arg;
    event_active(c->wake_ev, EV_READ, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg);

void
core_before_sleep(struct core *c)
{
    /* Sending what became durable may queue more (a blocked picker
       served): write that too, so that nothing waits for the next turn. */
    while (store_commit_inline(c->store) > 0)
        on_wake(-1, 0, c);
}

/* A `storage` event when writes start or stop failing.  It reports no
   change of an order, so it goes to listeners at once; it is logged with
   the next group the store writes (while failing: once writes resume). */
static void
storage_event(struct core *c)
{
    char why[200] = "";
    bool failing = !store_ok(c->store, why, sizeof why);
    if (failing == c->storage_failing)
        return;
    c->storage_failing = failing;
    struct evbuffer *e = event_begin(&c->events, "storage", core_now());
    if (!e)
        return;
    event_str(e, "state", failing ? "failing" : "ok");
    event_str(e, "reason", why);
    uint64_t durable = core_durable(c);
    event_end(&c->events, e, durable ? durable : 1, durable);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct core *c = arg;
    uint64_t durable = core_durable(c);
    (void)fd;
    (void)what;

    if (c->on_durable)
        c->on_durable(c->on_durable_arg, durable);
    storage_event(c);
    events_flush(&c->events, durable);
    /* Storage may be back: pickers it made wait are served now. */
    if (c->serve_pending && store_ok(c->store, NULL, 0) &&
        !store_busy(c->store)) {
        c->serve_pending = false;
        serve_all(c);
    }
}

/* ---- start and stop ------------------------------------------------- */

static int
recover_one(void *ctx, struct order *o)
{
    struct core *c = ctx;
    int rc = pickq_restore(c->q, o);
    if (rc == PICKQ_OK)
        return 0;
    /* A record that decoded but breaks the rules is kept on disk and
       skipped loudly: refusing to start would stop every other order. */
    log_msg(LOG_ERROR, "recovery: order %s skipped: %s", o->id,
            rc == PICKQ_EXISTS   ? "stored twice"
            : rc == PICKQ_BADARG ? "invalid stored fields"
                                 : "out of memory");
    order_free(o);
    return rc == PICKQ_NOMEM ? -1 : 0;
}

static int
recover(struct core *c)
{
    char err[512];
    int64_t t0 = core_now();

    if (store_load(c->store, recover_one, c, err, sizeof err)) {
        log_msg(LOG_ERROR, "recovery failed: %s", err);
        return -1;
    }
    int64_t t1 = core_now();
    if (pickq_restore_done(c->q) != PICKQ_OK) {
        log_msg(LOG_ERROR, "recovery failed: out of memory");
        return -1;
    }
    struct pickq_stats st;
    pickq_stats(c->q, NULL, &st);
    size_t total = 0;
    for (int i = 0; i < STATE_COUNT; i++)
        total += st.by_state[i];
    log_msg(LOG_INFO,
            "recovered %zu orders (%zu queued, %zu picking) in %" PRId64
            " ms (%" PRId64 " reading, %" PRId64 " indexing)",
            total, st.by_state[STATE_QUEUED], st.by_state[STATE_PICKING],
            core_now() - t0, t1 - t0, core_now() - t1);
    /* Leases that ran out while we were down go back now, recorded. */
    on_timer(-1, 0, c);
    return 0;
}

int
core_open(struct core *c, struct event_base *base,
          const struct core_config *cfg, const char *data_dir)
{
    char err[512];

    c->cfg = *cfg;
    c->base = base;
    c->started = core_now();
    c->timer_at = INT64_MAX;
    histo_init(&c->h_command, histo_fast, histo_fast_n);
    histo_init(&c->h_durable, histo_fast, histo_fast_n);
    histo_init(&c->h_queue, histo_slow, histo_slow_n);
    waiters_init(&c->waiters, base);
    events_init(&c->events);
    c->q = pickq_new(&cfg->queue);
    if (!c->q) {
        log_msg(LOG_ERROR, "out of memory starting");
        return -1;
    }
    c->wake_ev = event_new(base, -1, 0, on_wake, c);
    c->timer_ev = evtimer_new(base, on_timer, c);
    c->retention_ev = event_new(base, -1, EV_PERSIST, on_retention, c);
    if (!c->wake_ev || !c->timer_ev || !c->retention_ev) {
        log_msg(LOG_ERROR, "libevent: cannot create events");
        return -1;
    }
    struct store_options so;
    store_options_default(&so);
    so.durability = cfg->durability;
    so.batch_ms = cfg->batch_ms;
    so.inline_commit = cfg->inline_commit;
    so.defer_compactions = true; /* recover() reads first */
    if (cfg->store_queue_max)
        so.queue_max = cfg->store_queue_max;
    so.wake = store_woke;
    so.wake_arg = c;
    c->store = store_open(data_dir, &so, err, sizeof err);
    if (!c->store) {
        log_msg(LOG_ERROR, "cannot open store %s: %s", data_dir, err);
        return -1;
    }
    c->events.store = c->store;
    if (store_events_last(c->store, &c->events.seq, err, sizeof err)) {
        log_msg(LOG_ERROR, "cannot read the event log: %s", err);
        return -1;
    }
    if (recover(c))
        return -1;
    struct timeval tv = ms_to_tv(RETENTION_PERIOD_MS);
    if (event_add(c->retention_ev, &tv)) {
        log_msg(LOG_ERROR, "libevent: cannot add the retention timer");
        return -1;
    }
    on_retention(-1, 0, c);
    return 0;
}

void
core_close(struct core *c)
{
    waiters_free(&c->waiters);
    if (c->store)
        store_close(c->store); /* writes and syncs what is queued */
    c->store = NULL;
    events_free(&c->events);
    if (c->q)
        pickq_free(c->q);
    c->q = NULL;
    struct event **evs[] = {&c->wake_ev, &c->timer_ev, &c->retention_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        if (*evs[i])
            event_free(*evs[i]);
        *evs[i] = NULL;
    }
}

uint64_t
core_meta_put(struct core *c, const char *key, const char *val, size_t len)
{
    return store_meta_put(c->store, key, val, len);
}

int
core_meta_get(struct core *c, const char *key, char *buf, size_t cap,
              size_t *len)
{
    char err[300];
    int rc = store_meta_get(c->store, key, buf, cap, len, err, sizeof err);
    if (rc < 0)
        log_msg(LOG_ERROR, "meta %s: %s", key, err);
    return rc;
}
