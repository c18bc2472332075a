/*
 * The commands: one handler each, grouped by who uses them (ERP, WMS,
 * readers, the connection itself).  A handler checks its arguments, asks
 * the pick queue to change, records the change (server_record) and writes
 * its reply to c->out.  Errors start with a stable code word:
 *   NOTFOUND BADSTATE BADARG EXISTS LEASE TOOBIG READONLY ERR
 * and never close the connection.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "events.h"
#include "log.h"
#include "server.h"

#define RAW_MAX 4096          /* bytes of a command kept in the audit trail */
#define PEEK_DEFAULT 10
#define PEEK_MAX 1000
#define DEFAULT_WAREHOUSE "main"

typedef void command_fn(struct conn *c, struct resp_req *r);

struct command {
    const char *name;
    int min_args; /* including the name */
    bool write;   /* changes orders: refused while storage fails */
    command_fn *fn;
};

/* ---- argument helpers ----------------------------------------------- */

/* Copy an argument into a NUL-terminated buffer; false when it does not
   fit (cap includes the NUL). */
static bool
arg_copy(const struct resp_arg *a, char *buf, size_t cap)
{
    if (a->len >= cap || memchr(a->p, '\0', a->len))
        return false;
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    return true;
}

static bool
arg_u64(const struct resp_arg *a, uint64_t *v)
{
    uint64_t n = 0;
    if (a->len == 0 || a->len > 20)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        if (!isdigit((unsigned char)a->p[i]))
            return false;
        uint64_t d = (uint64_t)(a->p[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *v = n;
    return true;
}

static bool
arg_i64(const struct resp_arg *a, int64_t lo, int64_t hi, int64_t *v)
{
    uint64_t n;
    if (!arg_u64(a, &n) || n > (uint64_t)hi || (int64_t)n < lo)
        return false;
    *v = (int64_t)n;
    return true;
}

/* Look up the order named by argument i; replies NOTFOUND when absent. */
static struct order *
find_order(struct conn *c, const struct resp_arg *a)
{
    struct order *o = NULL;
    if (a->len <= ORDER_ID_MAX)
        o = pickq_get(c->srv->q, a->p, a->len);
    if (!o)
        resp_error(c->out, "NOTFOUND order %.*s",
                   (int)(a->len > ORDER_ID_MAX ? ORDER_ID_MAX : a->len),
                   a->p);
    return o;
}

static void
bad_state(struct conn *c, const struct order *o, const char *what)
{
    resp_error(c->out, "BADSTATE order %s is %s, cannot %s", o->id,
               order_state_name(o->state), what);
}

/* The command as text, for the audit trail: arguments joined by spaces. */
static size_t
raw_command(const struct resp_req *r, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->argc && n + 1 < cap; i++) {
        if (i)
            buf[n++] = ' ';
        size_t k = r->argv[i].len;
        if (k > cap - 1 - n)
            k = cap - 1 - n;
        memcpy(buf + n, r->argv[i].p, k);
        n += k;
    }
    buf[n] = '\0';
    return n;
}

static void
reply_pickq_error(struct conn *c, int rc, const struct order *o,
                  const char *what)
{
    switch (rc) {
    case PICKQ_BADSTATE:
        bad_state(c, o, what);
        break;
    case PICKQ_LEASE:
        resp_error(c->out, "LEASE not the current lease of order %s", o->id);
        break;
    case PICKQ_NOMEM:
        resp_error(c->out, "ERR out of memory");
        break;
    default:
        resp_error(c->out, "ERR %s failed (%d)", what, rc);
    }
}

/* Record a change of o and publish its jump, if it made one. */
static void
record_change(struct conn *c, struct resp_req *r, struct order *o,
              int action, int from, const char *note,
              const struct pickq_jump *jump)
{
    char raw[RAW_MAX];
    size_t n = raw_command(r, raw, sizeof raw);
    uint64_t t = server_record(c->srv, c, o, action, from, raw, n, note);
    if (o->state == STATE_QUEUED && o->eff_cls != o->cls &&
        (action == ACTION_PUSH || action == ACTION_APPROVE ||
         action == ACTION_REPRIO)) {
        /* Its deadline was already within its class's window. */
        struct evbuffer *e = event_begin(c->srv, "escalated");
        if (e) {
            event_order(e, o);
            event_str(e, "from", order_class_name(o->cls));
            event_str(e, "to", order_class_name(o->eff_cls));
            event_end(c->srv, e, t);
        }
    }
    if (jump && jump->order) {
        event_jump(c->srv, jump, t);
        log_msg(LOG_INFO,
                "queue jump: order %s (%s, %s) to position %zu, %zu displaced",
                o->id, order_class_name(o->cls), o->customer, jump->position,
                jump->displaced);
    }
    if (o->state == STATE_QUEUED)
        server_serve_waiters(c->srv, o->warehouse);
}

/* ---- ERP ------------------------------------------------------------ */

static void
cmd_push(struct conn *c, struct resp_req *r)
{
    struct server *srv = c->srv;
    char err[256];
    struct order *o = order_new();

    if (!o) {
        resp_error(c->out, "ERR out of memory");
        return;
    }
    if (r->argv[1].len == 0 || memchr(r->argv[1].p, '\0', r->argv[1].len) ||
        order_set_id(o, r->argv[1].p, r->argv[1].len)) {
        resp_error(c->out, "BADARG order id must be 1 to %d bytes",
                   ORDER_ID_MAX);
        goto fail;
    }
    int cls = order_class_parse(r->argv[2].p, r->argv[2].len);
    if (cls < 0) {
        resp_error(c->out,
                   "BADARG unknown class '%.*s' (asn, rush4h, rush24h, normal)",
                   (int)(r->argv[2].len > 32 ? 32 : r->argv[2].len),
                   r->argv[2].p);
        goto fail;
    }
    o->cls = o->eff_cls = (uint8_t)cls;
    order_set_warehouse(o, DEFAULT_WAREHOUSE, strlen(DEFAULT_WAREHOUSE));
    o->state = STATE_NEW;

    for (size_t i = 3; i < r->argc; i++) {
        const struct resp_arg *opt = &r->argv[i];
        if (resp_arg_is(opt, "APPROVED")) {
            o->state = STATE_QUEUED;
            continue;
        }
        size_t need = resp_arg_is(opt, "ATTR") ? 2 : 1;
        if (i + need >= r->argc) {
            resp_error(c->out, "BADARG %.*s needs a value",
                       (int)(opt->len > 32 ? 32 : opt->len), opt->p);
            goto fail;
        }
        const struct resp_arg *v = &r->argv[i + 1];
        int bad = 0;
        if (resp_arg_is(opt, "DEADLINE")) {
            bad = order_time_parse(v->p, v->len, &o->deadline) ||
                  o->deadline <= 0;
        } else if (resp_arg_is(opt, "WAREHOUSE")) {
            bad = v->len == 0 || order_set_warehouse(o, v->p, v->len);
        } else if (resp_arg_is(opt, "CUSTOMER")) {
            bad = order_set_customer(o, v->p, v->len);
        } else if (resp_arg_is(opt, "SOURCE")) {
            int s = order_source_parse(v->p, v->len);
            bad = s < 0;
            o->source = (uint8_t)(s < 0 ? 0 : s);
        } else if (resp_arg_is(opt, "FULFIL") || resp_arg_is(opt, "FULFILL")) {
            int f = order_fulfil_parse(v->p, v->len);
            bad = f < 0;
            o->fulfil = (uint8_t)(f < 0 ? 0 : f);
        } else if (resp_arg_is(opt, "RISK")) {
            int k = order_risk_parse(v->p, v->len);
            bad = k < 0;
            o->risk = (uint8_t)(k < 0 ? 0 : k);
        } else if (resp_arg_is(opt, "ATTR")) {
            const struct resp_arg *val = &r->argv[i + 2];
            int rc = order_attr_set(o, v->p, v->len, val->p, val->len, err,
                                    sizeof err);
            if (rc == -2) {
                resp_error(c->out, "ERR out of memory");
                goto fail;
            }
            if (rc) {
                resp_error(c->out, "BADARG %s", err);
                goto fail;
            }
        } else {
            resp_error(c->out, "BADARG unknown PUSH option '%.*s'",
                       (int)(opt->len > 32 ? 32 : opt->len), opt->p);
            goto fail;
        }
        if (bad) {
            resp_error(c->out, "BADARG invalid %.*s '%.*s'",
                       (int)(opt->len > 32 ? 32 : opt->len), opt->p,
                       (int)(v->len > 64 ? 64 : v->len), v->p);
            goto fail;
        }
        i += need;
    }

    struct pickq_jump jump = {0};
    int rc = pickq_push(srv->q, o, server_now(), &jump, err, sizeof err);
    switch (rc) {
    case PICKQ_OK:
        record_change(c, r, o, ACTION_PUSH, -1, NULL, &jump);
        resp_ok(c->out);
        return;
    case PICKQ_SAME:
        resp_ok(c->out);
        break;
    case PICKQ_EXISTS:
        resp_error(c->out, "EXISTS order %s exists with different content",
                   o->id);
        break;
    case PICKQ_BADARG:
        resp_error(c->out, "BADARG %s", err);
        break;
    default:
        reply_pickq_error(c, rc, o, "push");
    }
fail:
    order_free(o);
}

static void
cmd_approve(struct conn *c, struct resp_req *r)
{
    struct order *o = find_order(c, &r->argv[1]);
    if (!o)
        return;
    int from = o->state;
    struct pickq_jump jump = {0};
    int rc = pickq_approve(c->srv->q, o, server_now(), &jump);
    if (rc) {
        reply_pickq_error(c, rc, o, "approve");
        return;
    }
    record_change(c, r, o, ACTION_APPROVE, from, NULL, &jump);
    resp_ok(c->out);
}

/* HOLD id [reason] and CANCEL id [reason]. */
static void
hold_or_cancel(struct conn *c, struct resp_req *r, int action)
{
    char note[512] = "";
    struct order *o = find_order(c, &r->argv[1]);
    if (!o)
        return;
    if (r->argc > 2) {
        size_t n = r->argv[2].len < sizeof note - 1 ? r->argv[2].len
                                                     : sizeof note - 1;
        memcpy(note, r->argv[2].p, n);
        note[n] = '\0';
    }
    int from = o->state;
    int64_t now = server_now();
    int rc = action == ACTION_HOLD ? pickq_hold(c->srv->q, o, now)
                                   : pickq_cancel(c->srv->q, o, now);
    if (rc) {
        reply_pickq_error(c, rc, o, order_action_name(action));
        return;
    }
    record_change(c, r, o, action, from, note, NULL);
    resp_ok(c->out);
}

static void
cmd_hold(struct conn *c, struct resp_req *r)
{
    hold_or_cancel(c, r, ACTION_HOLD);
}

static void
cmd_cancel(struct conn *c, struct resp_req *r)
{
    hold_or_cancel(c, r, ACTION_CANCEL);
}

static void
cmd_reprio(struct conn *c, struct resp_req *r)
{
    struct order *o = find_order(c, &r->argv[1]);
    if (!o)
        return;
    int cls = order_class_parse(r->argv[2].p, r->argv[2].len);
    if (cls < 0) {
        resp_error(c->out, "BADARG unknown class (asn, rush4h, rush24h, normal)");
        return;
    }
    int64_t deadline = 0;
    if (r->argc == 5 && resp_arg_is(&r->argv[3], "DEADLINE")) {
        if (order_time_parse(r->argv[4].p, r->argv[4].len, &deadline) ||
            deadline <= 0) {
            resp_error(c->out, "BADARG invalid DEADLINE");
            return;
        }
    } else if (r->argc != 3) {
        resp_error(c->out, "BADARG usage: REPRIO id class [DEADLINE t]");
        return;
    }
    char note[64];
    snprintf(note, sizeof note, "class %s -> %s", order_class_name(o->cls),
             order_class_name(cls));
    int from = o->state;
    struct pickq_jump jump = {0};
    int rc = pickq_reprio(c->srv->q, o, cls, deadline, server_now(), &jump);
    if (rc) {
        reply_pickq_error(c, rc, o, "reprioritise");
        return;
    }
    record_change(c, r, o, ACTION_REPRIO, from, note, &jump);
    resp_ok(c->out);
}

/* ---- WMS ------------------------------------------------------------ */

static void
cmd_next(struct conn *c, struct resp_req *r)
{
    struct server *srv = c->srv;
    char wh[ORDER_NAME_MAX + 1], picker[ORDER_NAME_MAX + 1];
    int64_t lease_ms = 0, block_ms = -1;

    if (r->argv[1].len == 0 || !arg_copy(&r->argv[1], wh, sizeof wh)) {
        resp_error(c->out, "BADARG warehouse must be 1 to %d bytes",
                   ORDER_NAME_MAX);
        return;
    }
    if (c->name[0])
        snprintf(picker, sizeof picker, "%s", c->name);
    else
        snprintf(picker, sizeof picker, "client-%" PRIu64, c->id);
    for (size_t i = 2; i < r->argc; i += 2) {
        const struct resp_arg *opt = &r->argv[i];
        if (i + 1 >= r->argc) {
            resp_error(c->out, "BADARG usage: NEXT warehouse [LEASE seconds] "
                               "[BLOCK ms] [PICKER name]");
            return;
        }
        const struct resp_arg *v = &r->argv[i + 1];
        int64_t n;
        if (resp_arg_is(opt, "LEASE")) {
            if (!arg_i64(v, 1, 86400 * 365, &n)) {
                resp_error(c->out, "BADARG LEASE must be seconds > 0");
                return;
            }
            lease_ms = n * 1000;
        } else if (resp_arg_is(opt, "BLOCK")) {
            if (!arg_i64(v, 0, INT64_MAX / 2, &n)) {
                resp_error(c->out, "BADARG BLOCK must be milliseconds >= 0");
                return;
            }
            block_ms = n;
        } else if (resp_arg_is(opt, "PICKER")) {
            if (v->len == 0 || !arg_copy(v, picker, sizeof picker)) {
                resp_error(c->out, "BADARG PICKER must be 1 to %d bytes",
                           ORDER_NAME_MAX);
                return;
            }
        } else {
            resp_error(c->out, "BADARG unknown NEXT option '%.*s'",
                       (int)(opt->len > 32 ? 32 : opt->len), opt->p);
            return;
        }
    }
    if (server_lease_to(srv, c, wh, picker, lease_ms))
        return;
    if (block_ms < 0 || srv->stopping) {
        resp_null_array(c->out, c->proto);
        return;
    }
    server_block(srv, c, wh, picker, lease_ms, block_ms);
}

static bool
lease_arg(struct conn *c, const struct resp_arg *a, uint64_t *lease)
{
    if (arg_u64(a, lease))
        return true;
    resp_error(c->out, "BADARG lease must be a number");
    return false;
}

static void
cmd_touch(struct conn *c, struct resp_req *r)
{
    uint64_t lease;
    int64_t lease_ms = 0, n;
    struct order *o = find_order(c, &r->argv[1]);
    if (!o || !lease_arg(c, &r->argv[2], &lease))
        return;
    if (r->argc == 5 && resp_arg_is(&r->argv[3], "LEASE") &&
        arg_i64(&r->argv[4], 1, 86400 * 365, &n)) {
        lease_ms = n * 1000;
    } else if (r->argc != 3) {
        resp_error(c->out, "BADARG usage: TOUCH id lease [LEASE seconds]");
        return;
    }
    int rc = pickq_touch(c->srv->q, o, lease, lease_ms, server_now());
    if (rc) {
        reply_pickq_error(c, rc, o, "touch");
        return;
    }
    char note[64];
    snprintf(note, sizeof note, "lease=%" PRIu64 " until=%" PRId64, lease,
             o->lease_expires);
    record_change(c, r, o, ACTION_TOUCH, STATE_PICKING, note, NULL);
    resp_int(c->out, o->lease_expires);
}

static void
cmd_release(struct conn *c, struct resp_req *r)
{
    uint64_t lease;
    struct order *o = find_order(c, &r->argv[1]);
    if (!o || !lease_arg(c, &r->argv[2], &lease))
        return;
    int rc = pickq_release(c->srv->q, o, lease, server_now());
    if (rc) {
        reply_pickq_error(c, rc, o, "release");
        return;
    }
    char note[48];
    snprintf(note, sizeof note, "lease=%" PRIu64, lease);
    record_change(c, r, o, ACTION_RELEASE, STATE_PICKING, note, NULL);
    resp_ok(c->out);
}

/* Options shared by OUTBOUND and DELIVER: [AT t] [PHOTO ref] [RAW payload]
   [OPERATOR name].  Returns false after replying BADARG. */
struct confirm_opts {
    int64_t at;
    char operator_[ORDER_NAME_MAX + 1];
    const struct resp_arg *photo, *raw;
};

static bool
confirm_opts(struct conn *c, struct resp_req *r, struct confirm_opts *co)
{
    memset(co, 0, sizeof *co);
    co->at = server_now();
    for (size_t i = 2; i < r->argc; i += 2) {
        const struct resp_arg *opt = &r->argv[i];
        if (i + 1 >= r->argc) {
            resp_error(c->out, "BADARG %.*s needs a value",
                       (int)(opt->len > 32 ? 32 : opt->len), opt->p);
            return false;
        }
        const struct resp_arg *v = &r->argv[i + 1];
        if (resp_arg_is(opt, "AT")) {
            if (order_time_parse(v->p, v->len, &co->at) || co->at <= 0) {
                resp_error(c->out, "BADARG invalid AT time");
                return false;
            }
        } else if (resp_arg_is(opt, "OPERATOR")) {
            if (v->len == 0 || !arg_copy(v, co->operator_,
                                         sizeof co->operator_)) {
                resp_error(c->out, "BADARG OPERATOR must be 1 to %d bytes",
                           ORDER_NAME_MAX);
                return false;
            }
        } else if (resp_arg_is(opt, "PHOTO")) {
            co->photo = v;
        } else if (resp_arg_is(opt, "RAW")) {
            co->raw = v;
        } else {
            resp_error(c->out, "BADARG unknown option '%.*s'",
                       (int)(opt->len > 32 ? 32 : opt->len), opt->p);
            return false;
        }
    }
    return true;
}

/* Record a confirmation: the raw payload when given, else the command. */
static uint64_t
record_confirm(struct conn *c, struct resp_req *r, struct order *o,
               int action, int from, const struct confirm_opts *co,
               const char *note)
{
    char raw[RAW_MAX];
    const char *p = raw;
    size_t n;
    if (co->raw) {
        p = co->raw->p;
        n = co->raw->len;
    } else {
        n = raw_command(r, raw, sizeof raw);
    }
    return server_record(c->srv, c, o, action, from, p, n, note);
}

static void
cmd_outbound(struct conn *c, struct resp_req *r)
{
    struct confirm_opts co;
    struct order *o = find_order(c, &r->argv[1]);
    if (!o || !confirm_opts(c, r, &co))
        return;
    if (!co.operator_[0]) {
        resp_error(c->out, "BADARG OUTBOUND needs OPERATOR name");
        return;
    }
    char note[ORDER_NAME_MAX + 160];
    int from = o->state;
    int rc = pickq_outbound(c->srv->q, o, co.operator_, co.at, server_now());
    if (rc == PICKQ_SAME) {
        /* A repeat (the WMS retries): keep its message, change nothing. */
        snprintf(note, sizeof note, "repeat confirmation by %s", co.operator_);
        record_confirm(c, r, o, ACTION_OUTBOUND, from, &co, note);
        resp_simple(c->out, "ALREADY");
        return;
    }
    if (rc) {
        reply_pickq_error(c, rc, o, "confirm outbound");
        return;
    }
    int k = snprintf(note, sizeof note, "operator=%s %s", co.operator_,
                     from == STATE_PICKING ? "leased" : "unleased");
    if (co.photo && k > 0 && (size_t)k < sizeof note)
        snprintf(note + k, sizeof note - (size_t)k, " photo=%.*s",
                 (int)(co.photo->len > 100 ? 100 : co.photo->len),
                 co.photo->p);
    uint64_t t = record_confirm(c, r, o, ACTION_OUTBOUND, from, &co, note);
    if (from != STATE_PICKING) {
        struct evbuffer *e = event_begin(c->srv, "outbound_unleased");
        if (e) {
            event_order(e, o);
            event_str(e, "operator", co.operator_);
            event_end(c->srv, e, t);
        }
        log_msg(LOG_INFO, "order %s confirmed outbound by %s without a lease",
                o->id, co.operator_);
    }
    resp_ok(c->out);
}

static void
cmd_deliver(struct conn *c, struct resp_req *r)
{
    struct confirm_opts co;
    struct order *o = find_order(c, &r->argv[1]);
    if (!o || !confirm_opts(c, r, &co))
        return;
    int from = o->state;
    int rc = pickq_deliver(c->srv->q, o, co.at, server_now());
    if (rc == PICKQ_SAME) {
        resp_simple(c->out, "ALREADY");
        return;
    }
    if (rc) {
        reply_pickq_error(c, rc, o, "deliver");
        return;
    }
    record_confirm(c, r, o, ACTION_DELIVER, from, &co, NULL);
    resp_ok(c->out);
}

/* ---- readers -------------------------------------------------------- */

static void
field_str(struct evbuffer *b, const char *k, const char *v)
{
    resp_bulk_str(b, k);
    resp_bulk_str(b, v);
}

static void
field_int(struct evbuffer *b, const char *k, long long v)
{
    resp_bulk_str(b, k);
    resp_int(b, v);
}

/* A time as two fields: k (epoch ms) and k_iso. */
static void
field_time(struct evbuffer *b, const char *k, int64_t ms)
{
    char key[40], when[40];
    field_int(b, k, ms);
    snprintf(key, sizeof key, "%s_iso", k);
    field_str(b, key, order_time_format(ms, when, sizeof when));
}

void
server_reply_order(struct server *srv, struct conn *c, const struct order *o)
{
    struct evbuffer *b = evbuffer_new();
    char risk[64], lease[24];
    size_t n = 0;

    if (!b)
        log_fatal("out of memory replying order %s", o->id);
    field_str(b, "id", o->id), n++;
    field_str(b, "class", order_class_name(o->cls)), n++;
    field_str(b, "effective_class", order_class_name(o->eff_cls)), n++;
    field_str(b, "state", order_state_name(o->state)), n++;
    field_str(b, "warehouse", o->warehouse), n++;
    field_str(b, "customer", o->customer), n++;
    field_str(b, "source", order_source_name(o->source)), n++;
    field_str(b, "fulfil", order_fulfil_name(o->fulfil)), n++;
    field_str(b, "risk", order_risk_format(o->risk, risk, sizeof risk)), n++;
    field_time(b, "deadline", o->deadline), n += 2;
    field_time(b, "created", o->created), n += 2;
    field_time(b, "updated", o->updated), n += 2;
    field_int(b, "seq", (long long)o->seq), n++;

    resp_bulk_str(b, "attrs"), n++;
    resp_map(b, o->nattrs, c->proto);
    size_t pos = 0;
    const char *k, *v;
    while (order_attr_next(o, &pos, &k, &v))
        field_str(b, k, v);

    if (o->state == STATE_QUEUED) {
        size_t rank;
        int64_t eta;
        if (pickq_position(srv->q, o, &rank, &eta) == PICKQ_OK) {
            field_int(b, "position", (long long)rank), n++;
            field_int(b, "eta_ms", eta), n++;
            field_time(b, "eta", server_now() + eta), n += 2;
        }
    }
    if (o->state == STATE_PICKING) {
        snprintf(lease, sizeof lease, "%" PRIu64, o->lease);
        field_str(b, "lease", lease), n++;
        field_time(b, "lease_expires", o->lease_expires), n += 2;
        field_str(b, "picker", o->picker), n++;
        field_time(b, "picked_at", o->picked_at), n += 2;
    }
    if (o->state == STATE_SHIPPED || o->state == STATE_DELIVERED) {
        field_time(b, "outbound_at", o->outbound_at), n += 2;
        field_str(b, "operator", o->operator_), n++;
        field_int(b, "outbound_leased", o->outbound_leased), n++;
    }
    if (o->state == STATE_DELIVERED)
        field_time(b, "delivered_at", o->delivered_at), n += 2;

    resp_map(c->out, n, c->proto);
    evbuffer_add_buffer(c->out, b);
    evbuffer_free(b);
}

static void
cmd_get(struct conn *c, struct resp_req *r)
{
    struct order *o = find_order(c, &r->argv[1]);
    if (o)
        server_reply_order(c->srv, c, o);
}

static void
cmd_peek(struct conn *c, struct resp_req *r)
{
    char wh[ORDER_NAME_MAX + 1];
    int64_t k = PEEK_DEFAULT;

    if (!arg_copy(&r->argv[1], wh, sizeof wh)) {
        resp_error(c->out, "BADARG warehouse too long");
        return;
    }
    if (r->argc == 4 && resp_arg_is(&r->argv[2], "COUNT")) {
        if (!arg_i64(&r->argv[3], 1, PEEK_MAX, &k)) {
            resp_error(c->out, "BADARG COUNT must be 1 to %d", PEEK_MAX);
            return;
        }
    } else if (r->argc != 2) {
        resp_error(c->out, "BADARG usage: PEEK warehouse [COUNT n]");
        return;
    }
    struct order *top[PEEK_MAX];
    size_t n = pickq_peek(c->srv->q, wh, (size_t)k, top);
    if (n == (size_t)-1) {
        resp_error(c->out, "ERR out of memory");
        return;
    }
    resp_array(c->out, n);
    for (size_t i = 0; i < n; i++)
        server_reply_order(c->srv, c, top[i]);
}

struct audit_reply {
    struct conn *c;
    struct evbuffer *b;
    size_t n;
};

static int
audit_one(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    struct audit_reply *ar = ctx;
    int proto = ar->c->proto;
    char when[40];

    resp_map(ar->b, 9, proto);
    resp_bulk_str(ar->b, "seq");
    resp_int(ar->b, seq);
    resp_bulk_str(ar->b, "at");
    resp_int(ar->b, a->at);
    resp_bulk_str(ar->b, "at_iso");
    resp_bulk_str(ar->b, order_time_format(a->at, when, sizeof when));
    resp_bulk_str(ar->b, "actor");
    resp_bulk(ar->b, a->actor, a->actor_len);
    resp_bulk_str(ar->b, "action");
    resp_bulk_str(ar->b, order_action_name(a->action));
    resp_bulk_str(ar->b, "from");
    resp_bulk_str(ar->b, a->from < 0 ? "" : order_state_name(a->from));
    resp_bulk_str(ar->b, "to");
    resp_bulk_str(ar->b, order_state_name(a->to));
    resp_bulk_str(ar->b, "raw");
    resp_bulk(ar->b, a->raw, a->raw_len);
    resp_bulk_str(ar->b, "note");
    resp_bulk(ar->b, a->note, a->note_len);
    ar->n++;
    return 0;
}

static void
cmd_audit(struct conn *c, struct resp_req *r)
{
    char err[256];
    struct order *o = find_order(c, &r->argv[1]);
    if (!o)
        return;
    struct evbuffer *b = c->srv->scratch;
    evbuffer_drain(b, evbuffer_get_length(b));
    struct audit_reply ar = {c, b, 0};
    if (store_audit(c->srv->store, o->id, strlen(o->id), audit_one, &ar, err,
                    sizeof err)) {
        evbuffer_drain(b, evbuffer_get_length(b));
        resp_error(c->out, "READONLY storage: %s", err);
        return;
    }
    resp_array(c->out, ar.n);
    evbuffer_add_buffer(c->out, b);
}

static void
stat_int(struct evbuffer *b, const char *k, long long v)
{
    resp_bulk_str(b, k);
    resp_int(b, v);
}

static void
cmd_stats(struct conn *c, struct resp_req *r)
{
    struct server *srv = c->srv;
    char wh[ORDER_NAME_MAX + 1];
    struct pickq_stats st;
    struct store_stats ss;
    static const char *const modes[] = {"sync", "batch", "none"};

    if (r->argc > 1 && !arg_copy(&r->argv[1], wh, sizeof wh)) {
        resp_error(c->out, "BADARG warehouse too long");
        return;
    }
    pickq_stats(srv->q, r->argc > 1 ? wh : NULL, &st);
    store_stats(srv->store, &ss);
    size_t blocked = 0;
    for (struct waitq *w = srv->waitqs; w; w = w->hh.next)
        for (struct conn *x = w->head; x; x = x->bnext)
            blocked++;

    struct evbuffer *b = srv->scratch;
    evbuffer_drain(b, evbuffer_get_length(b));
    size_t n = 0;
    for (int s = 0; s < STATE_COUNT; s++, n++)
        stat_int(b, order_state_name(s), (long long)st.by_state[s]);
    for (int k = 0; k < CLASS_COUNT; k++, n++) {
        char key[32];
        snprintf(key, sizeof key, "queued_%s", order_class_name(k));
        stat_int(b, key, (long long)st.queued_by_class[k]);
    }
    const struct {
        const char *k;
        uint64_t v;
    } counters[] = {
        {"pushes", st.pushes},
        {"approvals", st.approvals},
        {"picks", st.picks},
        {"releases", st.releases},
        {"outbounds", st.outbounds},
        {"outbounds_unleased", st.outbounds_unleased},
        {"deliveries", st.deliveries},
        {"cancels", st.cancels},
        {"lease_expiries", st.expiries},
        {"escalations", st.escalations},
        {"queue_jumps", st.jumps},
        {"mean_pick_ms", (uint64_t)st.mean_pick_ms},
        {"warehouses", st.warehouses},
        {"connected_clients", srv->nconns},
        {"blocked_clients", blocked},
        {"uptime_s", (uint64_t)((server_now() - srv->started) / 1000)},
        {"store_groups", ss.groups},
        {"store_records", ss.records},
        {"store_max_group", ss.max_group},
        {"store_syncs", ss.syncs},
        {"store_sync_us_last", ss.sync_us_last},
        {"store_sync_us_mean", ss.syncs ? ss.sync_us_total / ss.syncs : 0},
        {"store_failures", ss.failures},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++, n++)
        stat_int(b, counters[i].k, (long long)counters[i].v);
    resp_bulk_str(b, "durability");
    resp_bulk_str(b, modes[ss.durability]);
    n++;
    resp_map(c->out, n, c->proto);
    evbuffer_add_buffer(c->out, b);
}

static void
cmd_info(struct conn *c, struct resp_req *r)
{
    struct server *srv = c->srv;
    struct pickq_stats st;
    struct store_stats ss;
    static const char *const modes[] = {"sync", "batch", "none"};
    (void)r;

    pickq_stats(srv->q, NULL, &st);
    store_stats(srv->store, &ss);
    struct evbuffer *b = srv->scratch;
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add_printf(
        b,
        "# Server\r\nserver:dispatchd\r\nversion:%s\r\ntcp_port:%d\r\n"
        "uptime_in_seconds:%lld\r\n"
        "# Clients\r\nconnected_clients:%zu\r\n"
        "# Stats\r\ntotal_connections_received:%llu\r\n"
        "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
        "protocol_errors:%llu\r\nevents_published:%llu\r\n"
        "# Queue\r\nqueued:%zu\r\npicking:%zu\r\npushes:%llu\r\n"
        "picks:%llu\r\noutbounds:%llu\r\nmean_pick_ms:%lld\r\n"
        "# Persistence\r\ndurability:%s\r\nstore_groups:%llu\r\n"
        "store_records:%llu\r\nstore_max_group:%zu\r\nstore_syncs:%llu\r\n"
        "store_sync_us_mean:%llu\r\nstore_sync_us_max:%llu\r\n"
        "store_failures:%llu\r\n",
        DISPATCHD_VERSION, srv->cfg.port,
        (long long)(server_now() - srv->started) / 1000, srv->nconns,
        (unsigned long long)srv->n.connections,
        (unsigned long long)srv->n.commands,
        (unsigned long long)srv->n.rejected,
        (unsigned long long)srv->n.protocol_errors,
        (unsigned long long)srv->n.events, st.by_state[STATE_QUEUED],
        st.by_state[STATE_PICKING], (unsigned long long)st.pushes,
        (unsigned long long)st.picks, (unsigned long long)st.outbounds,
        (long long)st.mean_pick_ms, modes[ss.durability],
        (unsigned long long)ss.groups, (unsigned long long)ss.records,
        ss.max_group, (unsigned long long)ss.syncs,
        (unsigned long long)(ss.syncs ? ss.sync_us_total / ss.syncs : 0),
        (unsigned long long)ss.sync_us_max,
        (unsigned long long)ss.failures);
    evbuffer_add_printf(c->out, "$%zu\r\n", evbuffer_get_length(b));
    evbuffer_add_buffer(c->out, b);
    evbuffer_add(c->out, "\r\n", 2);
}

static void
cmd_checkpoint(struct conn *c, struct resp_req *r)
{
    char dir[PATH_MAX], err[512];
    if (!arg_copy(&r->argv[1], dir, sizeof dir) || !dir[0]) {
        resp_error(c->out, "BADARG bad directory");
        return;
    }
    if (store_checkpoint(c->srv->store, dir, err, sizeof err)) {
        resp_error(c->out, "ERR checkpoint %s: %s", dir, err);
        return;
    }
    log_msg(LOG_INFO, "checkpoint written to %s", dir);
    resp_bulk_str(c->out, dir);
}

static void
cmd_subscribe(struct conn *c, struct resp_req *r)
{
    for (size_t i = 1; i < r->argc; i++) {
        if (!resp_arg_is(&r->argv[i], "events")) {
            resp_error(c->out, "BADARG unknown channel '%.*s' (only events)",
                       (int)(r->argv[i].len > 32 ? 32 : r->argv[i].len),
                       r->argv[i].p);
            continue;
        }
        events_subscribe(c->srv, c);
        resp_push(c->out, 3, c->proto);
        resp_bulk_str(c->out, "subscribe");
        resp_bulk_str(c->out, "events");
        resp_int(c->out, 1);
    }
}

static void
cmd_unsubscribe(struct conn *c, struct resp_req *r)
{
    (void)r;
    events_unsubscribe(c->srv, c);
    resp_push(c->out, 3, c->proto);
    resp_bulk_str(c->out, "unsubscribe");
    resp_bulk_str(c->out, "events");
    resp_int(c->out, 0);
}

/* ---- the connection ------------------------------------------------- */

static void
cmd_ping(struct conn *c, struct resp_req *r)
{
    if (c->subscribed && c->proto == 2) {
        resp_array(c->out, 2);
        resp_bulk_str(c->out, "pong");
        if (r->argc > 1)
            resp_bulk(c->out, r->argv[1].p, r->argv[1].len);
        else
            resp_bulk_str(c->out, "");
    } else if (r->argc > 1) {
        resp_bulk(c->out, r->argv[1].p, r->argv[1].len);
    } else {
        resp_simple(c->out, "PONG");
    }
}

static void
cmd_echo(struct conn *c, struct resp_req *r)
{
    resp_bulk(c->out, r->argv[1].p, r->argv[1].len);
}

static void
cmd_quit(struct conn *c, struct resp_req *r)
{
    (void)r;
    resp_ok(c->out);
    c->closing = true;
}

static bool
set_name(struct conn *c, const struct resp_arg *a)
{
    for (size_t i = 0; i < a->len; i++) {
        if (a->p[i] <= ' ' || a->p[i] == 127) {
            resp_error(c->out, "ERR Client names cannot contain spaces, "
                               "newlines or special characters.");
            return false;
        }
    }
    if (!arg_copy(a, c->name, sizeof c->name)) {
        resp_error(c->out, "BADARG client name longer than %d bytes",
                   ORDER_NAME_MAX);
        return false;
    }
    return true;
}

static void
cmd_hello(struct conn *c, struct resp_req *r)
{
    int64_t proto = c->proto;
    if (r->argc > 1 && (!arg_i64(&r->argv[1], 0, 100, &proto) ||
                        (proto != 2 && proto != 3))) {
        resp_error(c->out, "NOPROTO unsupported protocol version");
        return;
    }
    for (size_t i = 2; i < r->argc; i++) {
        if (resp_arg_is(&r->argv[i], "SETNAME") && i + 1 < r->argc) {
            if (!set_name(c, &r->argv[++i]))
                return;
        } else if (resp_arg_is(&r->argv[i], "AUTH") && i + 2 < r->argc) {
            /* No credentials exist yet: say so rather than pretend. */
            resp_error(c->out, "ERR AUTH called without any credentials "
                               "configured");
            return;
        } else {
            resp_error(c->out, "ERR syntax error in HELLO option '%.*s'",
                       (int)(r->argv[i].len > 32 ? 32 : r->argv[i].len),
                       r->argv[i].p);
            return;
        }
    }
    c->proto = (int)proto;
    resp_map(c->out, 7, c->proto);
    resp_bulk_str(c->out, "server");
    resp_bulk_str(c->out, "dispatchd");
    resp_bulk_str(c->out, "version");
    resp_bulk_str(c->out, DISPATCHD_VERSION);
    resp_bulk_str(c->out, "proto");
    resp_int(c->out, c->proto);
    resp_bulk_str(c->out, "id");
    resp_int(c->out, (long long)c->id);
    resp_bulk_str(c->out, "mode");
    resp_bulk_str(c->out, "standalone");
    resp_bulk_str(c->out, "role");
    resp_bulk_str(c->out, "master");
    resp_bulk_str(c->out, "modules");
    resp_array(c->out, 0);
}

static void
cmd_client(struct conn *c, struct resp_req *r)
{
    const struct resp_arg *sub = &r->argv[1];
    if (resp_arg_is(sub, "SETNAME") && r->argc == 3) {
        if (set_name(c, &r->argv[2]))
            resp_ok(c->out);
    } else if (resp_arg_is(sub, "GETNAME")) {
        if (c->name[0])
            resp_bulk_str(c->out, c->name);
        else
            resp_null(c->out, c->proto);
    } else if (resp_arg_is(sub, "ID")) {
        resp_int(c->out, (long long)c->id);
    } else if (resp_arg_is(sub, "SETINFO")) {
        resp_ok(c->out);
    } else {
        resp_error(c->out, "ERR unknown CLIENT subcommand '%.*s'",
                   (int)(sub->len > 32 ? 32 : sub->len), sub->p);
    }
}

static void
cmd_command(struct conn *c, struct resp_req *r)
{
    /* Enough for redis-cli: COMMAND DOCS may be empty but must be a map. */
    if (r->argc > 1 && resp_arg_is(&r->argv[1], "COUNT"))
        resp_int(c->out, 0);
    else if (r->argc > 1 && resp_arg_is(&r->argv[1], "DOCS"))
        resp_map(c->out, 0, c->proto);
    else
        resp_array(c->out, 0);
}

static void
cmd_config(struct conn *c, struct resp_req *r)
{
    if (resp_arg_is(&r->argv[1], "GET"))
        resp_map(c->out, 0, c->proto); /* nothing is exposed this way */
    else
        resp_error(c->out, "ERR CONFIG %.*s is not supported: use the "
                           "config file",
                   (int)(r->argv[1].len > 16 ? 16 : r->argv[1].len),
                   r->argv[1].p);
}

static void
cmd_select(struct conn *c, struct resp_req *r)
{
    if (r->argv[1].len == 1 && r->argv[1].p[0] == '0')
        resp_ok(c->out);
    else
        resp_error(c->out, "ERR DB index is out of range (only 0)");
}

static void
cmd_dbsize(struct conn *c, struct resp_req *r)
{
    struct pickq_stats st;
    size_t total = 0;
    (void)r;
    pickq_stats(c->srv->q, NULL, &st);
    for (int i = 0; i < STATE_COUNT; i++)
        total += st.by_state[i];
    resp_int(c->out, (long long)total);
}

/* Transactions are refused as a whole: after MULTI every command up to
   EXEC or DISCARD is refused too, so a client that pipelines a
   transaction changes nothing and gets an error for each part. */
static void
cmd_multi(struct conn *c, struct resp_req *r)
{
    if (resp_arg_is(&r->argv[0], "MULTI"))
        c->in_multi = true;
    else
        c->in_multi = false; /* EXEC, DISCARD */
    resp_error(c->out, "ERR transactions are not supported: pipeline without "
                       "MULTI (redis-py: pipeline(transaction=False))");
}

static void
cmd_auth(struct conn *c, struct resp_req *r)
{
    (void)r;
    resp_error(c->out, "ERR AUTH called without any credentials configured");
}

/* Most used first: the lookup is a short linear scan. */
static const struct command commands[] = {
    {"PUSH", 3, true, cmd_push},
    {"NEXT", 2, true, cmd_next},
    {"OUTBOUND", 2, true, cmd_outbound},
    {"GET", 2, false, cmd_get},
    {"APPROVE", 2, true, cmd_approve},
    {"PING", 1, false, cmd_ping},
    {"TOUCH", 3, true, cmd_touch},
    {"RELEASE", 3, true, cmd_release},
    {"DELIVER", 2, true, cmd_deliver},
    {"HOLD", 2, true, cmd_hold},
    {"CANCEL", 2, true, cmd_cancel},
    {"REPRIO", 3, true, cmd_reprio},
    {"PEEK", 2, false, cmd_peek},
    {"AUDIT", 2, false, cmd_audit},
    {"STATS", 1, false, cmd_stats},
    {"INFO", 1, false, cmd_info},
    {"SUBSCRIBE", 2, false, cmd_subscribe},
    {"UNSUBSCRIBE", 1, false, cmd_unsubscribe},
    {"CHECKPOINT", 2, false, cmd_checkpoint},
    {"ECHO", 2, false, cmd_echo},
    {"HELLO", 1, false, cmd_hello},
    {"QUIT", 1, false, cmd_quit},
    {"CLIENT", 2, false, cmd_client},
    {"COMMAND", 1, false, cmd_command},
    {"CONFIG", 2, false, cmd_config},
    {"SELECT", 2, false, cmd_select},
    {"DBSIZE", 1, false, cmd_dbsize},
    {"MULTI", 1, false, cmd_multi},
    {"EXEC", 1, false, cmd_multi},
    {"DISCARD", 1, false, cmd_multi},
    {"AUTH", 2, false, cmd_auth},
};

void
command_dispatch(struct conn *c, struct resp_req *r)
{
    const struct resp_arg *name = &r->argv[0];
    const struct command *cmd = NULL;

    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (resp_arg_is(name, commands[i].name)) {
            cmd = &commands[i];
            break;
        }
    }
    if (!cmd) {
        resp_error(c->out, "ERR unknown command '%.*s'",
                   (int)(name->len > 64 ? 64 : name->len), name->p);
        return;
    }
    if (c->subscribed && c->proto == 2 && cmd->fn != cmd_ping &&
        cmd->fn != cmd_subscribe && cmd->fn != cmd_unsubscribe &&
        cmd->fn != cmd_quit) {
        resp_error(c->out, "ERR only SUBSCRIBE, UNSUBSCRIBE, PING and QUIT "
                           "are allowed in this context");
        return;
    }
    if (c->in_multi && cmd->fn != cmd_multi) {
        resp_error(c->out, "ERR transaction refused (MULTI is not supported): "
                           "%s not run",
                   cmd->name);
        return;
    }
    if ((int)r->argc < cmd->min_args) {
        resp_error(c->out, "ERR wrong number of arguments for '%s' command",
                   cmd->name);
        return;
    }
    if (cmd->write && server_readonly(c->srv, c))
        return;
    cmd->fn(c, r);
}
