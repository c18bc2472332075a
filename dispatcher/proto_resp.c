/*
 * The RESP front end: each command parses its words, makes one core call
 * and writes the result as RESP2 or RESP3 (after HELLO 3).  Errors start
 * with the core's code word (NOTFOUND BADSTATE BADARG EXISTS LEASE TOOBIG
 * BUSY READONLY NOPERM ERR) and never close the connection; only a
 * protocol violation does.
 *
 * Long because it is one handler per command, each short; the command
 * table at the end is the index.
 */
#include "proto_resp.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draft.h"
#include "log.h"
#include "resp.h"
#include "view.h"

#define RAW_MAX 4096 /* bytes of a command kept in the audit trail */
#define PEEK_DEFAULT 10

/* One parse at a time (one loop thread): the request lives here. */
static struct resp_req req;

typedef void command_fn(struct conn *c, struct resp_req *r);

struct command {
    const char *name;
    int min_args; /* including the name */
    int op;       /* enum op for the users table; -1: any signed-in client */
    command_fn *fn;
};

static struct core *
core_of(struct conn *c)
{
    return c->pool->core;
}

/* ---- argument helpers ----------------------------------------------- */

/* Copy an argument into a NUL-terminated buffer; false when it does not
   fit (cap includes the NUL) or holds a NUL. */
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

/* At most n bytes of an argument, for messages. */
#define SHOW(a, n) (int)((a)->len > (n) ? (n) : (a)->len), (a)->p

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

static const char *
actor(struct conn *c, char *buf, size_t cap)
{
    return conn_actor(c, buf, cap);
}

/* ---- replies -------------------------------------------------------- */

static void
reply_error(struct conn *c, const struct core_result *r)
{
    resp_error(c->out, "%s %s", core_code_word(r->code), r->msg);
}

/* Write the fields of a view as a map (RESP3) or flat array (RESP2). */
static void
reply_view(struct evbuffer *b, const struct view *v, int ver)
{
    char num[24];

    resp_map(b, v->n, ver);
    for (size_t i = 0; i < v->n; i++) {
        const struct view_field *f = &v->f[i];
        resp_bulk_str(b, f->key);
        switch (f->kind) {
        case VIEW_STR:
        case VIEW_LIST:
            resp_bulk(b, f->s, f->len);
            break;
        case VIEW_INT:
            resp_int(b, f->i);
            break;
        case VIEW_U64:
            snprintf(num, sizeof num, "%" PRIu64, f->u);
            resp_bulk_str(b, num);
            break;
        case VIEW_ATTRS: {
            size_t pos = 0;
            const char *k, *val;
            resp_map(b, v->o->nattrs, ver);
            while (order_attr_next(v->o, &pos, &k, &val)) {
                resp_bulk_str(b, k);
                resp_bulk_str(b, val);
            }
            break;
        }
        }
    }
}

static void
reply_order(struct conn *c, const struct order *o)
{
    static struct view v;
    view_order(&v, core_of(c), o);
    reply_view(c->out, &v, c->p.resp.ver);
}

/* An acknowledgement: +OK (or +word), sent once its change is durable. */
static void
reply_ack(struct conn *c, const struct core_result *r, const char *word)
{
    if (core_code_is_error(r->code)) {
        reply_error(c, r);
        return;
    }
    conn_wait(c, r->ticket);
    resp_simple(c->out, word);
}

/* ---- ERP ------------------------------------------------------------ */

static void
cmd_push(struct conn *c, struct resp_req *r)
{
    char err[256], who[ORDER_NAME_MAX + 24], raw[RAW_MAX];
    struct core_result res;
    const struct resp_arg *id = &r->argv[1], *cl = &r->argv[2];

    struct order *o =
        draft_new(id->p, id->len, cl->p, cl->len, err, sizeof err);
    if (!o) {
        resp_error(c->out, "BADARG %s", err);
        return;
    }
    for (size_t i = 3; i < r->argc; i++) {
        const struct resp_arg *opt = &r->argv[i];
        if (resp_arg_is(opt, "APPROVED")) {
            o->state = STATE_QUEUED;
            continue;
        }
        bool attr = resp_arg_is(opt, "ATTR");
        size_t need = attr ? 2 : 1;
        if (i + need >= r->argc) {
            resp_error(c->out, "BADARG %.*s needs a value", SHOW(opt, 32));
            goto fail;
        }
        const struct resp_arg *v = &r->argv[i + 1];
        int rc = attr ? draft_attr(o, v->p, v->len, r->argv[i + 2].p,
                                   r->argv[i + 2].len, err, sizeof err)
                      : draft_set(o, opt->p, opt->len, v->p, v->len, err,
                                  sizeof err);
        if (rc == -2 && attr) {
            resp_error(c->out, "ERR out of memory");
            goto fail;
        }
        if (rc == -2) {
            resp_error(c->out, "BADARG unknown PUSH option '%.*s'",
                       SHOW(opt, 32));
            goto fail;
        }
        if (rc) {
            resp_error(c->out, "BADARG %s", err);
            goto fail;
        }
        i += need;
    }
    size_t n = raw_command(r, raw, sizeof raw);
    core_push(core_of(c), actor(c, who, sizeof who), o, raw, n, &res);
    reply_ack(c, &res, "OK");
    return;
fail:
    order_free(o);
}

static void
cmd_approve(struct conn *c, struct resp_req *r)
{
    char who[ORDER_NAME_MAX + 24], raw[RAW_MAX];
    struct core_result res;
    size_t n = raw_command(r, raw, sizeof raw);
    core_approve(core_of(c), actor(c, who, sizeof who), r->argv[1].p,
                 r->argv[1].len, raw, n, &res);
    reply_ack(c, &res, "OK");
}

/* HOLD id [reason...] and CANCEL id [reason...]: the words after the id,
   joined by spaces, are the reason. */
static void
hold_or_cancel(struct conn *c, struct resp_req *r, bool hold)
{
    char who[ORDER_NAME_MAX + 24], raw[RAW_MAX], reason[CORE_NOTE_MAX + 1];
    struct core_result res;
    size_t rlen = 0;

    for (size_t i = 2; i < r->argc; i++) {
        size_t k = r->argv[i].len + (rlen ? 1 : 0);
        if (rlen + k > CORE_NOTE_MAX) {
            resp_error(c->out, "TOOBIG reason longer than %d bytes",
                       CORE_NOTE_MAX);
            return;
        }
        if (rlen)
            reason[rlen++] = ' ';
        memcpy(reason + rlen, r->argv[i].p, r->argv[i].len);
        rlen += r->argv[i].len;
    }
    size_t n = raw_command(r, raw, sizeof raw);
    (hold ? core_hold : core_cancel)(core_of(c), actor(c, who, sizeof who),
                                     r->argv[1].p, r->argv[1].len, reason, rlen,
                                     raw, n, &res);
    reply_ack(c, &res, "OK");
}

static void
cmd_hold(struct conn *c, struct resp_req *r)
{
    hold_or_cancel(c, r, true);
}

static void
cmd_cancel(struct conn *c, struct resp_req *r)
{
    hold_or_cancel(c, r, false);
}

static void
cmd_reprio(struct conn *c, struct resp_req *r)
{
    char who[ORDER_NAME_MAX + 24], raw[RAW_MAX];
    struct core_result res;
    const struct resp_arg *cl = &r->argv[2];

    int cls = order_class_parse(cl->p, cl->len);
    if (cls < 0) {
        resp_error(c->out,
                   "BADARG unknown class '%.*s' (asn, rush4h, rush24h, normal)",
                   SHOW(cl, 32));
        return;
    }
    int64_t deadline = 0;
    if (r->argc == 5 && resp_arg_is(&r->argv[3], "DEADLINE")) {
        const struct resp_arg *v = &r->argv[4];
        if (order_time_parse(v->p, v->len, &deadline) || deadline <= 0) {
            resp_error(c->out, "BADARG invalid DEADLINE '%.*s'", SHOW(v, 64));
            return;
        }
    } else if (r->argc != 3) {
        resp_error(c->out, "BADARG usage: REPRIO id class [DEADLINE t]");
        return;
    }
    size_t n = raw_command(r, raw, sizeof raw);
    core_reprio(core_of(c), actor(c, who, sizeof who), r->argv[1].p,
                r->argv[1].len, cls, deadline, raw, n, &res);
    reply_ack(c, &res, "OK");
}

/* ---- WMS ------------------------------------------------------------ */

static void
cmd_next(struct conn *c, struct resp_req *r)
{
    char wh[ORDER_NAME_MAX + 1], picker[ORDER_NAME_MAX + 1];
    char who[ORDER_NAME_MAX + 24];
    struct core_next_args a = {wh, picker, 0, -1};
    struct core_result res;

    if (r->argv[1].len == 0 || !arg_copy(&r->argv[1], wh, sizeof wh)) {
        resp_error(c->out, "BADARG warehouse must be 1 to %d bytes",
                   ORDER_NAME_MAX);
        return;
    }
    conn_actor(c, picker, sizeof picker);
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
                resp_error(c->out,
                           "BADARG LEASE must be seconds > 0, not "
                           "'%.*s'",
                           SHOW(v, 32));
                return;
            }
            a.lease_ms = n * 1000;
        } else if (resp_arg_is(opt, "BLOCK")) {
            if (!arg_i64(v, 0, INT64_MAX / 2, &n)) {
                resp_error(c->out,
                           "BADARG BLOCK must be milliseconds >= 0, "
                           "not '%.*s'",
                           SHOW(v, 32));
                return;
            }
            a.block_ms = n;
        } else if (resp_arg_is(opt, "PICKER")) {
            if (v->len == 0 || !arg_copy(v, picker, sizeof picker)) {
                resp_error(c->out, "BADARG PICKER must be 1 to %d bytes",
                           ORDER_NAME_MAX);
                return;
            }
        } else {
            resp_error(c->out, "BADARG unknown NEXT option '%.*s'",
                       SHOW(opt, 32));
            return;
        }
    }
    core_next(core_of(c), actor(c, who, sizeof who), &a, &c->waiter, &res);
    switch (res.code) {
    case CORE_OK:
        conn_wait(c, res.ticket);
        reply_order(c, res.order);
        break;
    case CORE_NIL:
        resp_null_array(c->out, c->p.resp.ver);
        break;
    case CORE_BLOCKED:
        break; /* resp_waited answers */
    default:
        reply_error(c, &res);
    }
}

static void
resp_waited(struct conn *c, struct order *o, uint64_t ticket)
{
    (void)ticket; /* the conn layer waits for it */
    if (o)
        reply_order(c, o);
    else
        resp_null_array(c->out, c->p.resp.ver);
}

static bool
lease_arg(struct conn *c, const struct resp_arg *a, uint64_t *lease)
{
    if (arg_u64(a, lease))
        return true;
    resp_error(c->out, "BADARG lease must be a number, not '%.*s'",
               SHOW(a, 32));
    return false;
}

static void
cmd_touch(struct conn *c, struct resp_req *r)
{
    char who[ORDER_NAME_MAX + 24], raw[RAW_MAX];
    struct core_result res;
    uint64_t lease;
    int64_t lease_ms = 0, n;

    if (!lease_arg(c, &r->argv[2], &lease))
        return;
    if (r->argc == 5 && resp_arg_is(&r->argv[3], "LEASE")) {
        if (!arg_i64(&r->argv[4], 1, 86400 * 365, &n)) {
            resp_error(c->out, "BADARG LEASE must be seconds > 0, not '%.*s'",
                       SHOW(&r->argv[4], 32));
            return;
        }
        lease_ms = n * 1000;
    } else if (r->argc != 3) {
        resp_error(c->out, "BADARG usage: TOUCH id lease [LEASE seconds]");
        return;
    }
    size_t k = raw_command(r, raw, sizeof raw);
    core_touch(core_of(c), actor(c, who, sizeof who), r->argv[1].p,
               r->argv[1].len, lease, lease_ms, raw, k, &res);
    if (core_code_is_error(res.code)) {
        reply_error(c, &res);
        return;
    }
    conn_wait(c, res.ticket);
    resp_int(c->out, res.value);
}

/* RELEASE id lease and PICKED id lease: the lease holder's steps. */
typedef void lease_step_fn(struct core *c, const char *actor, const char *id,
                           size_t idlen, uint64_t lease, const char *raw,
                           size_t raw_len, struct core_result *r);

static void
lease_step(struct conn *c, struct resp_req *r, const char *usage,
           lease_step_fn *fn)
{
    char who[ORDER_NAME_MAX + 24], raw[RAW_MAX];
    struct core_result res;
    uint64_t lease;

    if (!lease_arg(c, &r->argv[2], &lease))
        return;
    if (r->argc != 3) {
        resp_error(c->out, "BADARG usage: %s", usage);
        return;
    }
    size_t k = raw_command(r, raw, sizeof raw);
    fn(core_of(c), actor(c, who, sizeof who), r->argv[1].p, r->argv[1].len,
       lease, raw, k, &res);
    reply_ack(c, &res, res.code == CORE_ALREADY ? "ALREADY" : "OK");
}

static void
cmd_release(struct conn *c, struct resp_req *r)
{
    lease_step(c, r, "RELEASE id lease", core_release);
}

static void
cmd_picked(struct conn *c, struct resp_req *r)
{
    lease_step(c, r, "PICKED id lease", core_picked);
}

/* Options shared by OUTBOUND and DELIVER: [AT t] [PHOTO ref] [RAW payload]
   [OPERATOR name].  Returns false after replying BADARG. */
struct confirm_opts {
    int64_t at;
    char operator_[ORDER_NAME_MAX + 1];
    const struct resp_arg *photo, *raw;
    /* What the audit keeps: the RAW payload, else the command line. */
    const char *audit;
    size_t audit_len;
    char line[RAW_MAX];
};

static bool
confirm_opts(struct conn *c, struct resp_req *r, struct confirm_opts *co)
{
    co->at = 0;
    co->operator_[0] = '\0';
    co->photo = co->raw = NULL;
    for (size_t i = 2; i < r->argc; i += 2) {
        const struct resp_arg *opt = &r->argv[i];
        if (i + 1 >= r->argc) {
            resp_error(c->out, "BADARG %.*s needs a value", SHOW(opt, 32));
            return false;
        }
        const struct resp_arg *v = &r->argv[i + 1];
        if (resp_arg_is(opt, "AT")) {
            if (order_time_parse(v->p, v->len, &co->at) || co->at <= 0) {
                resp_error(c->out, "BADARG invalid AT time '%.*s'",
                           SHOW(v, 64));
                return false;
            }
        } else if (resp_arg_is(opt, "OPERATOR")) {
            if (v->len == 0 ||
                !arg_copy(v, co->operator_, sizeof co->operator_)) {
                resp_error(c->out, "BADARG OPERATOR must be 1 to %d bytes",
                           ORDER_NAME_MAX);
                return false;
            }
        } else if (resp_arg_is(opt, "PHOTO")) {
            co->photo = v;
        } else if (resp_arg_is(opt, "RAW")) {
            co->raw = v;
        } else {
            resp_error(c->out, "BADARG unknown option '%.*s'", SHOW(opt, 32));
            return false;
        }
    }
    if (co->raw) {
        co->audit = co->raw->p;
        co->audit_len = co->raw->len;
    } else {
        co->audit = co->line;
        co->audit_len = raw_command(r, co->line, sizeof co->line);
    }
    return true;
}

static void
cmd_outbound(struct conn *c, struct resp_req *r)
{
    char who[ORDER_NAME_MAX + 24];
    static struct confirm_opts co;
    struct core_result res;

    if (!confirm_opts(c, r, &co))
        return;
    if (!co.operator_[0]) {
        resp_error(c->out, "BADARG OUTBOUND needs OPERATOR name");
        return;
    }
    struct core_confirm_args a = {co.operator_, co.at,
                                  co.photo ? co.photo->p : NULL,
                                  co.photo ? co.photo->len : 0};
    core_outbound(core_of(c), actor(c, who, sizeof who), r->argv[1].p,
                  r->argv[1].len, &a, co.audit, co.audit_len, &res);
    reply_ack(c, &res, res.code == CORE_ALREADY ? "ALREADY" : "OK");
}

static void
cmd_deliver(struct conn *c, struct resp_req *r)
{
    char who[ORDER_NAME_MAX + 24];
    static struct confirm_opts co;
    struct core_result res;

    if (!confirm_opts(c, r, &co))
        return;
    core_deliver(core_of(c), actor(c, who, sizeof who), r->argv[1].p,
                 r->argv[1].len, co.at, co.audit, co.audit_len, &res);
    reply_ack(c, &res, res.code == CORE_ALREADY ? "ALREADY" : "OK");
}

/* ---- readers -------------------------------------------------------- */

static void
cmd_get(struct conn *c, struct resp_req *r)
{
    struct core_result res;
    core_get(core_of(c), r->argv[1].p, r->argv[1].len, &res);
    if (core_code_is_error(res.code))
        reply_error(c, &res);
    else
        reply_order(c, res.order);
}

static void
cmd_peek(struct conn *c, struct resp_req *r)
{
    static struct order *top[CORE_PEEK_MAX];
    char wh[ORDER_NAME_MAX + 1];
    int64_t k = PEEK_DEFAULT;
    struct core_result res;

    if (!arg_copy(&r->argv[1], wh, sizeof wh)) {
        resp_error(c->out, "BADARG warehouse must be at most %d bytes",
                   ORDER_NAME_MAX);
        return;
    }
    if (r->argc == 4 && resp_arg_is(&r->argv[2], "COUNT")) {
        if (!arg_i64(&r->argv[3], 1, CORE_PEEK_MAX, &k)) {
            resp_error(c->out, "BADARG COUNT must be 1 to %d, not '%.*s'",
                       CORE_PEEK_MAX, SHOW(&r->argv[3], 32));
            return;
        }
    } else if (r->argc != 2) {
        resp_error(c->out, "BADARG usage: PEEK warehouse [COUNT n]");
        return;
    }
    size_t n = core_peek(core_of(c), wh, (size_t)k, top, &res);
    if (n == (size_t)-1) {
        reply_error(c, &res);
        return;
    }
    resp_array(c->out, n);
    for (size_t i = 0; i < n; i++)
        reply_order(c, top[i]);
}

struct audit_reply {
    struct conn *c;
    struct evbuffer *b;
    size_t n;
};

static int
audit_one(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    static struct view v;
    struct audit_reply *ar = ctx;
    view_audit(&v, seq, a);
    reply_view(ar->b, &v, ar->c->p.resp.ver);
    ar->n++;
    return 0;
}

static void
cmd_audit(struct conn *c, struct resp_req *r)
{
    struct core_result res;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory answering AUDIT");
    struct audit_reply ar = {c, b, 0};
    core_audit(core_of(c), r->argv[1].p, r->argv[1].len, audit_one, &ar, &res);
    if (core_code_is_error(res.code)) {
        reply_error(c, &res);
    } else {
        resp_array(c->out, ar.n);
        evbuffer_add_buffer(c->out, b);
    }
    evbuffer_free(b);
}

static void
cmd_stats(struct conn *c, struct resp_req *r)
{
    static struct view v;
    char wh[ORDER_NAME_MAX + 1];
    struct core_stats st;

    if (r->argc > 2) {
        resp_error(c->out, "BADARG usage: STATS [warehouse]");
        return;
    }
    if (r->argc > 1 && !arg_copy(&r->argv[1], wh, sizeof wh)) {
        resp_error(c->out, "BADARG warehouse must be at most %d bytes",
                   ORDER_NAME_MAX);
        return;
    }
    core_stats_all(core_of(c), r->argc > 1 ? wh : NULL, &st);
    view_stats(&v, &st);
    reply_view(c->out, &v, c->p.resp.ver);
}

/* INFO: Redis's "# Section" / "key:value" text, from the same snapshot. */
static void
cmd_info(struct conn *c, struct resp_req *r)
{
    static struct view v;
    struct core_stats st;
    const struct conn_counters *n = &c->pool->cnt;
    (void)r;

    core_stats_all(core_of(c), NULL, &st);
    view_stats(&v, &st);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory answering INFO");
    evbuffer_add_printf(
        b,
        "# Server\r\nserver:dispatchd\r\nversion:%s\r\n"
        "tcp_port:%d\r\nuptime_in_seconds:%lld\r\n"
        "# Clients\r\nconnected_clients:%zu\r\n"
        "# Connections\r\ntotal_connections_received:%llu\r\n"
        "total_commands_processed:%llu\r\n"
        "rejected_connections:%llu\r\nprotocol_errors:%llu\r\n"
        "output_limit_closes:%llu\r\ninput_limit_closes:%llu\r\n"
        "# Dispatch\r\n",
        DISPATCHD_VERSION, c->pool->port, (long long)(st.uptime_ms / 1000),
        c->pool->n, (unsigned long long)n->connections,
        (unsigned long long)n->requests, (unsigned long long)n->rejected,
        (unsigned long long)n->protocol_errors,
        (unsigned long long)n->output_closes,
        (unsigned long long)n->input_closes);
    for (size_t i = 0; i < v.n; i++) {
        const struct view_field *f = &v.f[i];
        if (f->kind == VIEW_INT)
            evbuffer_add_printf(b, "%s:%lld\r\n", f->key, (long long)f->i);
        else
            evbuffer_add_printf(b, "%s:%.*s\r\n", f->key, (int)f->len, f->s);
    }
    size_t len = evbuffer_get_length(b);
    evbuffer_add_printf(c->out, "$%zu\r\n", len);
    evbuffer_add_buffer(c->out, b);
    evbuffer_add(c->out, "\r\n", 2);
    evbuffer_free(b);
}

static void
cmd_checkpoint(struct conn *c, struct resp_req *r)
{
    struct core_result res;
    core_checkpoint(core_of(c), r->argv[1].p, r->argv[1].len, &res);
    if (core_code_is_error(res.code))
        reply_error(c, &res);
    else
        resp_bulk_str(c->out, res.msg);
}

static void
cmd_subscribe(struct conn *c, struct resp_req *r)
{
    for (size_t i = 1; i < r->argc; i++) {
        if (!resp_arg_is(&r->argv[i], "events")) {
            resp_error(c->out, "BADARG unknown channel '%.*s' (only events)",
                       SHOW(&r->argv[i], 32));
            continue;
        }
        conn_listen(c);
        resp_push(c->out, 3, c->p.resp.ver);
        resp_bulk_str(c->out, "subscribe");
        resp_bulk_str(c->out, "events");
        resp_int(c->out, 1);
    }
}

static void
cmd_unsubscribe(struct conn *c, struct resp_req *r)
{
    (void)r;
    conn_unlisten(c);
    resp_push(c->out, 3, c->p.resp.ver);
    resp_bulk_str(c->out, "unsubscribe");
    resp_bulk_str(c->out, "events");
    resp_int(c->out, 0);
}

static void
resp_event(struct conn *c, uint64_t seq, const char *type, const char *json,
           size_t len)
{
    (void)seq;
    (void)type;
    resp_push(c->out, 3, c->p.resp.ver);
    resp_bulk(c->out, "message", 7);
    resp_bulk(c->out, "events", 6);
    resp_bulk(c->out, json, len);
}

/* EVENTS FROM seq [COUNT n] [BLOCK ms]: the logged events after seq. */
struct events_reply {
    struct evbuffer *b;
    size_t n;
};

static int
events_one(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct events_reply *er = ctx;
    (void)seq;
    resp_bulk(er->b, json, len);
    er->n++;
    return 0;
}

static void
cmd_events(struct conn *c, struct resp_req *r)
{
    uint64_t from = 0, count = 100;
    int64_t block = -1;
    struct core_result res;

    if (r->argc < 3 || r->argc % 2 == 0 || !resp_arg_is(&r->argv[1], "FROM")) {
        resp_error(c->out,
                   "BADARG usage: EVENTS FROM seq [COUNT n] [BLOCK ms]");
        return;
    }
    if (!arg_u64(&r->argv[2], &from)) {
        resp_error(c->out, "BADARG FROM must be a sequence number, not '%.*s'",
                   SHOW(&r->argv[2], 32));
        return;
    }
    for (size_t i = 3; i + 1 < r->argc; i += 2) {
        const struct resp_arg *opt = &r->argv[i], *v = &r->argv[i + 1];
        int64_t n;
        if (resp_arg_is(opt, "COUNT")) {
            if (!arg_i64(v, 1, CORE_EVENTS_MAX, &n)) {
                resp_error(c->out, "BADARG COUNT must be 1 to %d, not '%.*s'",
                           CORE_EVENTS_MAX, SHOW(v, 32));
                return;
            }
            count = (uint64_t)n;
        } else if (resp_arg_is(opt, "BLOCK")) {
            if (!arg_i64(v, 0, INT64_MAX / 2, &n)) {
                resp_error(c->out,
                           "BADARG BLOCK must be milliseconds >= 0, not "
                           "'%.*s'",
                           SHOW(v, 32));
                return;
            }
            block = n;
        } else {
            resp_error(c->out, "BADARG unknown EVENTS option '%.*s'",
                       SHOW(opt, 32));
            return;
        }
    }
    struct events_reply er = {evbuffer_new(), 0};
    if (!er.b)
        log_fatal("out of memory: EVENTS");
    core_events(core_of(c), from, (size_t)count, events_one, &er, &res);
    if (res.code != CORE_OK) {
        reply_error(c, &res);
    } else if (er.n == 0 && block >= 0 && !c->pool->quiet) {
        conn_wait_event(c, from, block); /* resp_events_waited answers */
    } else {
        resp_array(c->out, er.n);
        evbuffer_add_buffer(c->out, er.b);
    }
    evbuffer_free(er.b);
}

static void
resp_events_waited(struct conn *c, uint64_t seq, const char *json, size_t len)
{
    (void)seq;
    if (!json) {
        resp_array(c->out, 0);
        return;
    }
    resp_array(c->out, 1);
    resp_bulk(c->out, json, len);
}

/* ---- the connection ------------------------------------------------- */

static void
cmd_ping(struct conn *c, struct resp_req *r)
{
    if (conn_listening(c) && c->p.resp.ver == 2) {
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
    conn_close_after_reply(c);
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

/* AUTH name secret, or AUTH secret (the user whose secret it is). */
static bool
auth(struct conn *c, const struct resp_arg *name, const struct resp_arg *pw)
{
    const struct users *us = c->pool->users;
    if (!us || !us->enabled) {
        resp_error(c->out,
                   "ERR AUTH called without any credentials configured");
        return false;
    }
    bool ok;
    if (name) {
        ok = conn_auth(c, name->p, name->len, pw->p, pw->len);
    } else {
        const struct user *u = users_by_secret(us, pw->p, pw->len);
        ok = u && conn_auth(c, u->name, strlen(u->name), pw->p, pw->len);
    }
    if (!ok)
        resp_error(c->out, "WRONGPASS invalid username-password pair or user "
                           "is disabled.");
    return ok;
}

static void
cmd_hello(struct conn *c, struct resp_req *r)
{
    int64_t ver = c->p.resp.ver;
    if (r->argc > 1 &&
        (!arg_i64(&r->argv[1], 0, 100, &ver) || (ver != 2 && ver != 3))) {
        resp_error(c->out, "NOPROTO unsupported protocol version");
        return;
    }
    for (size_t i = 2; i < r->argc; i++) {
        if (resp_arg_is(&r->argv[i], "SETNAME") && i + 1 < r->argc) {
            if (!set_name(c, &r->argv[++i]))
                return;
        } else if (resp_arg_is(&r->argv[i], "AUTH") && i + 2 < r->argc) {
            if (!auth(c, &r->argv[i + 1], &r->argv[i + 2]))
                return;
            i += 2;
        } else {
            resp_error(c->out, "ERR syntax error in HELLO option '%.*s'",
                       SHOW(&r->argv[i], 32));
            return;
        }
    }
    c->p.resp.ver = (int)ver;
    resp_map(c->out, 7, c->p.resp.ver);
    resp_bulk_str(c->out, "server");
    resp_bulk_str(c->out, "dispatchd");
    resp_bulk_str(c->out, "version");
    resp_bulk_str(c->out, DISPATCHD_VERSION);
    resp_bulk_str(c->out, "proto");
    resp_int(c->out, c->p.resp.ver);
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
            resp_null(c->out, c->p.resp.ver);
    } else if (resp_arg_is(sub, "ID")) {
        resp_int(c->out, (long long)c->id);
    } else if (resp_arg_is(sub, "SETINFO")) {
        resp_ok(c->out);
    } else {
        resp_error(c->out, "ERR unknown CLIENT subcommand '%.*s'",
                   SHOW(sub, 32));
    }
}

static void
cmd_command(struct conn *c, struct resp_req *r)
{
    /* Enough for redis-cli: COMMAND DOCS may be empty but must be a map. */
    if (r->argc > 1 && resp_arg_is(&r->argv[1], "COUNT"))
        resp_int(c->out, 0);
    else if (r->argc > 1 && resp_arg_is(&r->argv[1], "DOCS"))
        resp_map(c->out, 0, c->p.resp.ver);
    else
        resp_array(c->out, 0);
}

static void
cmd_config(struct conn *c, struct resp_req *r)
{
    if (resp_arg_is(&r->argv[1], "GET"))
        resp_map(c->out, 0, c->p.resp.ver); /* nothing is exposed this way */
    else
        resp_error(c->out,
                   "ERR CONFIG %.*s is not supported: use the config file",
                   SHOW(&r->argv[1], 16));
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
    struct core_stats st;
    size_t total = 0;
    (void)r;
    core_stats(core_of(c), NULL, &st);
    for (int i = 0; i < STATE_COUNT; i++)
        total += st.q.by_state[i];
    resp_int(c->out, (long long)total);
}

/* Transactions are refused as a whole: after MULTI every command up to
   EXEC or DISCARD is refused too, so a client that pipelines a
   transaction changes nothing and gets an error for each part. */
static void
cmd_multi(struct conn *c, struct resp_req *r)
{
    c->p.resp.in_multi = resp_arg_is(&r->argv[0], "MULTI");
    resp_error(c->out, "ERR transactions are not supported: pipeline without "
                       "MULTI (redis-py: pipeline(transaction=False))");
}

static void
cmd_auth(struct conn *c, struct resp_req *r)
{
    if (r->argc > 3) {
        resp_error(c->out, "ERR syntax error: AUTH [name] secret");
        return;
    }
    if (auth(c, r->argc == 3 ? &r->argv[1] : NULL, &r->argv[r->argc - 1]))
        resp_ok(c->out);
}

/* Most used first: the lookup is a short linear scan. */
static const struct command commands[] = {
    {"PUSH", 3, OP_PUSH, cmd_push},
    {"NEXT", 2, OP_NEXT, cmd_next},
    {"OUTBOUND", 2, OP_OUTBOUND, cmd_outbound},
    {"GET", 2, OP_GET, cmd_get},
    {"APPROVE", 2, OP_APPROVE, cmd_approve},
    {"PING", 1, -1, cmd_ping},
    {"TOUCH", 3, OP_TOUCH, cmd_touch},
    {"RELEASE", 3, OP_RELEASE, cmd_release},
    {"PICKED", 3, OP_PICKED, cmd_picked},
    {"DELIVER", 2, OP_DELIVER, cmd_deliver},
    {"HOLD", 2, OP_HOLD, cmd_hold},
    {"CANCEL", 2, OP_CANCEL, cmd_cancel},
    {"REPRIO", 3, OP_REPRIO, cmd_reprio},
    {"PEEK", 2, OP_PEEK, cmd_peek},
    {"AUDIT", 2, OP_AUDIT, cmd_audit},
    {"STATS", 1, OP_STATS, cmd_stats},
    {"INFO", 1, OP_STATS, cmd_info},
    {"SUBSCRIBE", 2, OP_EVENTS, cmd_subscribe},
    {"EVENTS", 3, OP_EVENTS, cmd_events},
    {"UNSUBSCRIBE", 1, -1, cmd_unsubscribe},
    {"CHECKPOINT", 2, OP_CHECKPOINT, cmd_checkpoint},
    {"ECHO", 2, -1, cmd_echo},
    {"HELLO", 1, -1, cmd_hello},
    {"QUIT", 1, -1, cmd_quit},
    {"CLIENT", 2, -1, cmd_client},
    {"COMMAND", 1, -1, cmd_command},
    {"CONFIG", 2, OP_CONFIG, cmd_config},
    {"SELECT", 2, -1, cmd_select},
    {"DBSIZE", 1, OP_STATS, cmd_dbsize},
    {"MULTI", 1, -1, cmd_multi},
    {"EXEC", 1, -1, cmd_multi},
    {"DISCARD", 1, -1, cmd_multi},
    {"AUTH", 2, -1, cmd_auth},
};

static void
dispatch(struct conn *c, struct resp_req *r)
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
        resp_error(c->out, "ERR unknown command '%.*s'", SHOW(name, 64));
        return;
    }
    if (conn_listening(c) && c->p.resp.ver == 2 && cmd->fn != cmd_ping &&
        cmd->fn != cmd_subscribe && cmd->fn != cmd_unsubscribe &&
        cmd->fn != cmd_quit) {
        resp_error(c->out, "ERR only SUBSCRIBE, UNSUBSCRIBE, PING and QUIT "
                           "are allowed in this context");
        return;
    }
    if (c->p.resp.in_multi && cmd->fn != cmd_multi) {
        resp_error(c->out,
                   "ERR transaction refused (MULTI is not supported): %s not "
                   "run",
                   cmd->name);
        return;
    }
    if ((int)r->argc < cmd->min_args) {
        resp_error(c->out, "ERR wrong number of arguments for '%s' command",
                   cmd->name);
        return;
    }
    if (c->role == ROLE_NONE && cmd->fn != cmd_auth && cmd->fn != cmd_hello &&
        cmd->fn != cmd_quit) {
        resp_error(c->out, "NOAUTH Authentication required.");
        return;
    }
    if (cmd->op >= 0 && !conn_may(c, cmd->op)) {
        char who[ORDER_NAME_MAX + 24];
        resp_error(c->out,
                   "NOPERM User %s has no permissions to run the '%s' command "
                   "(role %s)",
                   conn_actor(c, who, sizeof who), cmd->name,
                   role_name(c->role));
        return;
    }
    cmd->fn(c, r);
}

static long
resp_request(struct conn *c, const char *in, size_t len, size_t *need)
{
    size_t used = 0;
    const char *err = NULL;

    switch (resp_parse(in, len, &req, &used, &err)) {
    case RESP_INCOMPLETE:
        *need = used; /* the least the request needs, or 0 */
        return 0;
    case RESP_PROTOERR:
        resp_error(c->out, "ERR %s", err);
        return -1;
    case RESP_EMPTY:
        return (long)used;
    case RESP_DONE:
        dispatch(c, &req);
        return (long)used;
    }
    return -1;
}

const struct proto proto_resp = {
    .name = "resp",
    .request = resp_request,
    .waited = resp_waited,
    .event = resp_event,
    .events_waited = resp_events_waited,
    .overflow = NULL,
};
