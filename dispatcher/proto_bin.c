/*
 * The binary protocol, daemon side.  docs/binary-protocol.md is the spec;
 * this file is its translation into core calls.
 *
 * A request is handled in three steps, always in this order, so a bad
 * request changes nothing:
 *   1. read: every field of the body through the bounds-checked reader,
 *      noting the first field that ran past the end;
 *   2. check: the body was read exactly (no overrun, no trailing bytes),
 *      then each value (lengths, enum numbers, ranges), each failure a
 *      BADARG that names the field and the value;
 *   3. call the core and turn its result into a status and a body.
 * The reply is built in one scratch writer (header, then body) and copied
 * to c->out; a reply that acknowledges a change raises the connection's
 * durability ticket (conn_wait), so it leaves only once that is on disk.
 *
 * Framing errors (bad magic, unknown version, a body over 1 MiB) cannot be
 * skipped over: they get an error reply and close the connection.  Every
 * other error, an unknown opcode included, is a reply and the connection
 * reads on.
 *
 * One file for the whole protocol (past the usual 800 lines): each opcode
 * is a short read-check-call function, and they share the reply and
 * checking helpers above them; split by opcode group they would need a
 * private header for nothing else.
 *
 * Long because it is one handler per opcode (the ops table at the end is
 * the index) plus the frame layer; the wire codec itself is binproto/.
 */
#include "proto_bin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "order.h"
#include "view.h"
#include "wire.h"

/* The wire's numbers are view.h's and order.h's: the spec lists them, the
   compiler checks them. */
#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " != " #b)
SAME(VIEW_STR, WIRE_KIND_STR);
SAME(VIEW_INT, WIRE_KIND_INT);
SAME(VIEW_U64, WIRE_KIND_U64);
SAME(VIEW_LIST, WIRE_KIND_LIST);
SAME(VIEW_ATTRS, WIRE_KIND_ATTRS);
SAME(VT_ID, WIRE_TAG_ID);
SAME(VT_CLASS, WIRE_TAG_CLASS);
SAME(VT_EFFECTIVE_CLASS, WIRE_TAG_EFFECTIVE_CLASS);
SAME(VT_STATE, WIRE_TAG_STATE);
SAME(VT_WAREHOUSE, WIRE_TAG_WAREHOUSE);
SAME(VT_CUSTOMER, WIRE_TAG_CUSTOMER);
SAME(VT_SOURCE, WIRE_TAG_SOURCE);
SAME(VT_FULFIL, WIRE_TAG_FULFIL);
SAME(VT_RISK, WIRE_TAG_RISK);
SAME(VT_DEADLINE, WIRE_TAG_DEADLINE);
SAME(VT_DEADLINE_ISO, WIRE_TAG_DEADLINE_ISO);
SAME(VT_CREATED, WIRE_TAG_CREATED);
SAME(VT_CREATED_ISO, WIRE_TAG_CREATED_ISO);
SAME(VT_UPDATED, WIRE_TAG_UPDATED);
SAME(VT_UPDATED_ISO, WIRE_TAG_UPDATED_ISO);
SAME(VT_SEQ, WIRE_TAG_SEQ);
SAME(VT_ATTRS, WIRE_TAG_ATTRS);
SAME(VT_POSITION, WIRE_TAG_POSITION);
SAME(VT_ETA_MS, WIRE_TAG_ETA_MS);
SAME(VT_ETA, WIRE_TAG_ETA);
SAME(VT_ETA_ISO, WIRE_TAG_ETA_ISO);
SAME(VT_LEASE, WIRE_TAG_LEASE);
SAME(VT_LEASE_EXPIRES, WIRE_TAG_LEASE_EXPIRES);
SAME(VT_LEASE_EXPIRES_ISO, WIRE_TAG_LEASE_EXPIRES_ISO);
SAME(VT_PICKER, WIRE_TAG_PICKER);
SAME(VT_PICKED_AT, WIRE_TAG_PICKED_AT);
SAME(VT_PICKED_AT_ISO, WIRE_TAG_PICKED_AT_ISO);
SAME(VT_OUTBOUND_AT, WIRE_TAG_OUTBOUND_AT);
SAME(VT_OUTBOUND_AT_ISO, WIRE_TAG_OUTBOUND_AT_ISO);
SAME(VT_OPERATOR, WIRE_TAG_OPERATOR);
SAME(VT_OUTBOUND_LEASED, WIRE_TAG_OUTBOUND_LEASED);
SAME(VT_DELIVERED_AT, WIRE_TAG_DELIVERED_AT);
SAME(VT_DELIVERED_AT_ISO, WIRE_TAG_DELIVERED_AT_ISO);
SAME(VT_A_SEQ, WIRE_TAG_A_SEQ);
SAME(VT_A_AT, WIRE_TAG_A_AT);
SAME(VT_A_AT_ISO, WIRE_TAG_A_AT_ISO);
SAME(VT_A_ACTOR, WIRE_TAG_A_ACTOR);
SAME(VT_A_ACTION, WIRE_TAG_A_ACTION);
SAME(VT_A_FROM, WIRE_TAG_A_FROM);
SAME(VT_A_TO, WIRE_TAG_A_TO);
SAME(VT_A_RAW, WIRE_TAG_A_RAW);
SAME(VT_A_NOTE, WIRE_TAG_A_NOTE);
SAME(VT_STATS, WIRE_TAG_STATS);
SAME(CLASS_ASN, WIRE_CLASS_ASN);
SAME(CLASS_RUSH4H, WIRE_CLASS_RUSH4H);
SAME(CLASS_RUSH24H, WIRE_CLASS_RUSH24H);
SAME(CLASS_NORMAL, WIRE_CLASS_NORMAL);
SAME(SOURCE_DEALER, WIRE_SOURCE_DEALER);
SAME(SOURCE_ASN, WIRE_SOURCE_ASN);
SAME(SOURCE_ECOMMERCE, WIRE_SOURCE_ECOMMERCE);
SAME(SOURCE_AFTERSALES, WIRE_SOURCE_AFTERSALES);
SAME(FULFIL_STOCK, WIRE_FULFIL_STOCK);
SAME(FULFIL_TO_DRAWING, WIRE_FULFIL_TO_DRAWING);
SAME(FULFIL_VMI, WIRE_FULFIL_VMI);
SAME(FULFIL_JIT, WIRE_FULFIL_JIT);
SAME(RISK_NEW_CUSTOMER, WIRE_RISK_NEW_CUSTOMER);
SAME(RISK_HIGH_RETURNS, WIRE_RISK_HIGH_RETURNS);
SAME(RISK_OVERDUE_90D, WIRE_RISK_OVERDUE_90D);
SAME(ORDER_ID_MAX, WIRE_ID_MAX);
SAME(ORDER_NAME_MAX, WIRE_NAME_MAX);
SAME(CORE_PEEK_MAX, WIRE_PEEK_MAX);
_Static_assert(VT_STATS + VIEW_FIELDS_MAX <= 256, "stats tags fit a byte");

#define LEASE_MS_MAX ((int64_t)365 * 86400 * 1000)
#define BLOCK_MS_MAX (INT64_MAX / 2)
#define CHECKPOINT_NAME_MAX 255
#define SCRATCH_KEEP ((size_t)1 << 20) /* bytes kept between replies */

/* One request being handled. */
struct req {
    struct conn *c;
    struct core *core;
    const struct wire_header *h;
    const char *op;        /* its name, for messages */
    struct wire_reader rd; /* the body */
    const char *short_at;  /* the first field the body ended inside */
    struct wire_writer *w; /* the reply: header at `frame`, then body */
    size_t frame;
    struct wire_writer own; /* w, when the scratch writer is in use */
    bool blocked;           /* NEXT waits: no reply now */
    char actor[ORDER_NAME_MAX + 24];
};

/* Loop thread only.  Replies nest: a PUSH may end another connection's
   blocked NEXT (waited) or publish an event at once, while its own reply
   is being built, so a nested reply gets a writer of its own. */
static struct wire_writer scratch;
static bool scratch_busy;

/* ---- replies -------------------------------------------------------- */

static void
set_status(struct req *q, int status)
{
    if (!q->w->err)
        q->w->buf[q->frame + 3] = (char)status;
}

/* Replace whatever body was written by an error. */
static void
reply_verror(struct req *q, int status, const char *word, const char *fmt,
             va_list ap)
{
    char msg[600];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len = n < 0                     ? 0
                 : (size_t)n >= sizeof msg ? sizeof msg - 1
                                           : (size_t)n;
    if (!q->w->err)
        q->w->len = q->frame + WIRE_HEADER_LEN;
    set_status(q, status);
    wire_put_error(q->w, word, msg, len);
}

static void reply_error(struct req *q, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_error(struct req *q, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_verror(q, status, wire_status_word(status), fmt, ap);
    va_end(ap);
}

static void badarg(struct req *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
badarg(struct req *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_verror(q, WIRE_ST_BADARG, "BADARG", fmt, ap);
    va_end(ap);
}

static int
status_of(int code)
{
    switch (code) {
    case CORE_OK:
        return WIRE_ST_OK;
    case CORE_ALREADY:
        return WIRE_ST_ALREADY;
    case CORE_NIL:
        return WIRE_ST_NIL;
    case CORE_NOTFOUND:
        return WIRE_ST_NOTFOUND;
    case CORE_BADSTATE:
        return WIRE_ST_BADSTATE;
    case CORE_BADARG:
        return WIRE_ST_BADARG;
    case CORE_EXISTS:
        return WIRE_ST_EXISTS;
    case CORE_LEASE:
        return WIRE_ST_LEASE;
    case CORE_TOOBIG:
        return WIRE_ST_TOOBIG;
    case CORE_BUSY:
        return WIRE_ST_BUSY;
    case CORE_READONLY:
        return WIRE_ST_READONLY;
    case CORE_NOPERM:
        return WIRE_ST_NOPERM;
    }
    return WIRE_ST_ERR;
}

/* The status of a core result; an error replaces the body.  True when the
   caller goes on to write a success body.  A result's ticket always holds
   the reply back: ALREADY for a repeated OUTBOUND is recorded too. */
static bool
reply_result(struct req *q, const struct core_result *r)
{
    conn_wait(q->c, r->ticket);
    if (core_code_is_error(r->code)) {
        reply_error(q, status_of(r->code), "%s", r->msg);
        return false;
    }
    set_status(q, status_of(r->code));
    return true;
}

/* A field list.  A field goes without its key when the spec's tag table
   gives the same name (the common case: an order costs two bytes a field),
   else KEYED. */
static void
put_view(struct wire_writer *w, const struct view *v)
{
    size_t at = w->len;
    uint16_t n = 0;

    wire_put_u16(w, 0);
    for (size_t i = 0; i < v->n; i++) {
        const struct view_field *f = &v->f[i];
        const char *name = wire_tag_name(f->tag);
        const char *key = f->key ? f->key : "";
        if (name && strcmp(name, key) == 0)
            key = NULL;
        switch (f->kind) {
        case VIEW_STR:
        case VIEW_LIST:
            wire_put_field_str(w, f->tag, f->kind, key, f->s, f->len);
            break;
        case VIEW_INT:
            wire_put_field_int(w, f->tag, key, f->i);
            break;
        case VIEW_U64:
            wire_put_field_u64(w, f->tag, key, f->u);
            break;
        case VIEW_ATTRS: {
            size_t cnt = wire_put_attrs_begin(w, f->tag, key);
            size_t pos = 0;
            uint16_t na = 0;
            const char *k, *val;
            while (v->o && order_attr_next(v->o, &pos, &k, &val)) {
                wire_put_attr(w, k, strlen(k), val, strlen(val));
                na++;
            }
            wire_put_attrs_end(w, cnt, na);
            break;
        }
        default:
            continue; /* a kind this front end does not know */
        }
        n++;
    }
    wire_patch_u16(w, at, n);
}

static void
put_order(struct req *q, const struct order *o)
{
    struct view v;
    view_order(&v, q->core, o);
    put_view(q->w, &v);
}

static size_t
body_len(const struct req *q)
{
    return q->w->len - q->frame - WIRE_HEADER_LEN;
}

/* ---- reading and checking a body ------------------------------------ */

static void
note_short(struct req *q, const char *what)
{
    if (q->rd.err && !q->short_at)
        q->short_at = what;
}

static uint8_t
get_u8(struct req *q, const char *what)
{
    uint8_t v = wire_get_u8(&q->rd);
    note_short(q, what);
    return v;
}

static uint16_t
get_u16(struct req *q, const char *what)
{
    uint16_t v = wire_get_u16(&q->rd);
    note_short(q, what);
    return v;
}

static uint32_t
get_u32(struct req *q, const char *what)
{
    uint32_t v = wire_get_u32(&q->rd);
    note_short(q, what);
    return v;
}

static uint64_t
get_u64(struct req *q, const char *what)
{
    uint64_t v = wire_get_u64(&q->rd);
    note_short(q, what);
    return v;
}

static int64_t
get_i64(struct req *q, const char *what)
{
    int64_t v = wire_get_i64(&q->rd);
    note_short(q, what);
    return v;
}

struct str {
    const char *s;
    size_t len;
};

static struct str
get_str16(struct req *q, const char *what)
{
    struct str s;
    s.s = wire_get_str16(&q->rd, &s.len);
    note_short(q, what);
    return s;
}

static struct str
get_str32(struct req *q, const char *what)
{
    struct str s;
    s.s = wire_get_str32(&q->rd, &s.len);
    note_short(q, what);
    return s;
}

/* Step 2 begins here: false after replying BADARG. */
static bool
body_read(struct req *q)
{
    if (q->rd.err) {
        badarg(q, "%s body of %" PRIu32 " bytes ends inside %s", q->op,
               q->h->len, q->short_at ? q->short_at : "a field");
        return false;
    }
    if (q->rd.pos != q->rd.len) {
        size_t extra = q->rd.len - q->rd.pos;
        badarg(q, "%s body has %zu byte%s after its last field", q->op, extra,
               extra == 1 ? "" : "s");
        return false;
    }
    return true;
}

/* A printable prefix of s, for messages. */
static const char *
show(const char *s, size_t len, char *buf, size_t cap)
{
    size_t n = len < cap - 4 ? len : cap - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (n < len)
        memcpy(buf + n, "...", 4);
    else
        buf[n] = '\0';
    return buf;
}

/* A string bound: [min, max] bytes, no NUL (names become C strings). */
static bool
check_str(struct req *q, const char *what, struct str s, size_t min, size_t max)
{
    char b[48];
    if (s.len < min) {
        badarg(q, "%s %s is empty", q->op, what);
        return false;
    }
    if (s.len > max) {
        badarg(q, "%s %s '%s' is %zu bytes, at most %zu", q->op, what,
               show(s.s, s.len, b, sizeof b), s.len, max);
        return false;
    }
    if (memchr(s.s, '\0', s.len)) {
        badarg(q, "%s %s '%s' contains a NUL byte", q->op, what,
               show(s.s, s.len, b, sizeof b));
        return false;
    }
    return true;
}

static bool
check_id(struct req *q, struct str id)
{
    return check_str(q, "order id", id, 1, ORDER_ID_MAX);
}

/* A checked name, NUL-terminated into out (ORDER_NAME_MAX + 1 bytes). */
static bool
check_name(struct req *q, const char *what, struct str s, size_t min, char *out)
{
    if (!check_str(q, what, s, min, ORDER_NAME_MAX))
        return false;
    memcpy(out, s.s, s.len);
    out[s.len] = '\0';
    return true;
}

static bool
check_class(struct req *q, uint8_t cls)
{
    if (cls < CLASS_COUNT)
        return true;
    badarg(q, "%s class %u is unknown (0 asn, 1 rush4h, 2 rush24h, 3 normal)",
           q->op, cls);
    return false;
}

static bool
check_time(struct req *q, const char *what, int64_t t)
{
    if (t >= 0)
        return true;
    badarg(q, "%s %s %" PRId64 " is negative (epoch ms, 0 for the default)",
           q->op, what, t);
    return false;
}

static bool
check_lease_ms(struct req *q, int64_t ms)
{
    if (ms >= 0 && ms <= LEASE_MS_MAX)
        return true;
    badarg(q,
           "%s lease_ms %" PRId64 " is out of range (0 default, up to %" PRId64
           ")",
           q->op, ms, LEASE_MS_MAX);
    return false;
}

/* The raw message of the audit trail: the client's payload, or a line
   naming the request. */
static struct str
audit_raw(struct req *q, struct str given, struct str id, char *buf, size_t cap)
{
    if (given.len > 0)
        return given;
    int n = snprintf(buf, cap, "bin %s %.*s", q->op, (int)id.len, id.s);
    struct str s = {buf, n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1};
    return s;
}

#define AUDIT_RAW_LINE (ORDER_ID_MAX + 64)

/* ---- the connection ------------------------------------------------- */

static void
op_ping(struct req *q)
{
    body_read(q);
}

static void
op_client_name(struct req *q)
{
    char b[48];
    struct str name = get_str16(q, "name");
    if (!body_read(q) || !check_str(q, "name", name, 0, ORDER_NAME_MAX))
        return;
    for (size_t i = 0; i < name.len; i++) {
        unsigned char ch = (unsigned char)name.s[i];
        if (ch <= ' ' || ch == 127) {
            badarg(q,
                   "CLIENT_NAME '%s': byte %zu is a space or a control "
                   "character",
                   show(name.s, name.len, b, sizeof b), i);
            return;
        }
    }
    memcpy(q->c->name, name.s, name.len);
    q->c->name[name.len] = '\0';
    wire_put_u64(q->w, q->c->id);
}

static void
op_auth(struct req *q)
{
    struct str user = get_str16(q, "user");
    struct str secret = get_str16(q, "secret");
    if (!body_read(q))
        return;
    const struct users *us = q->c->pool->users;
    if (!us || !us->enabled) {
        reply_error(q, WIRE_ST_NOCREDS,
                    "AUTH called without any credentials configured");
        return;
    }
    if (!conn_auth(q->c, user.s, user.len, secret.s, secret.len)) {
        reply_error(q, WIRE_ST_WRONGPASS,
                    "invalid username-password pair or user is disabled");
        return;
    }
    conn_actor(q->c, q->actor, sizeof q->actor);
}

/* The operation each opcode is, for the users table; -1: any client,
   even before AUTH. */
static int
op_of(uint8_t opcode)
{
    switch (opcode) {
    case WIRE_OP_PUSH:
        return OP_PUSH;
    case WIRE_OP_APPROVE:
        return OP_APPROVE;
    case WIRE_OP_HOLD:
        return OP_HOLD;
    case WIRE_OP_CANCEL:
        return OP_CANCEL;
    case WIRE_OP_REPRIO:
        return OP_REPRIO;
    case WIRE_OP_NEXT:
        return OP_NEXT;
    case WIRE_OP_TOUCH:
        return OP_TOUCH;
    case WIRE_OP_RELEASE:
        return OP_RELEASE;
    case WIRE_OP_PICKED:
        return OP_PICKED;
    case WIRE_OP_OUTBOUND:
        return OP_OUTBOUND;
    case WIRE_OP_DELIVER:
        return OP_DELIVER;
    case WIRE_OP_GET:
        return OP_GET;
    case WIRE_OP_PEEK:
        return OP_PEEK;
    case WIRE_OP_AUDIT:
        return OP_AUDIT;
    case WIRE_OP_STATS:
        return OP_STATS;
    case WIRE_OP_CHECKPOINT:
        return OP_CHECKPOINT;
    case WIRE_OP_SUBSCRIBE:
        return OP_EVENTS;
    case WIRE_OP_EVENTS:
        return OP_EVENTS;
    default:
        return -1;
    }
}

/* ---- ERP ------------------------------------------------------------ */

static void
op_push(struct req *q)
{
    char err[256], wh[ORDER_NAME_MAX + 1], cust[ORDER_NAME_MAX + 1];
    char rawbuf[AUDIT_RAW_LINE];

    struct str id = get_str16(q, "id");
    uint8_t cls = get_u8(q, "class");
    uint8_t flags = get_u8(q, "flags");
    int64_t deadline = get_i64(q, "deadline");
    struct str warehouse = get_str16(q, "warehouse");
    struct str customer = get_str16(q, "customer");
    uint8_t source = get_u8(q, "source");
    uint8_t fulfil = get_u8(q, "fulfil");
    uint8_t risk = get_u8(q, "risk");
    uint16_t nattrs = get_u16(q, "attribute count");
    struct wire_reader attrs = q->rd; /* read again below, once checked */
    for (uint16_t i = 0; i < nattrs && !q->rd.err; i++) {
        get_str16(q, "an attribute key");
        get_str32(q, "an attribute value");
    }
    if (!body_read(q) || !check_id(q, id) || !check_class(q, cls))
        return;
    if (flags & ~WIRE_PUSH_APPROVED) {
        badarg(q, "PUSH flags 0x%02x: unknown bits 0x%02x", flags,
               flags & ~WIRE_PUSH_APPROVED);
        return;
    }
    if (!check_time(q, "deadline", deadline) ||
        !check_name(q, "warehouse", warehouse, 0, wh) ||
        !check_name(q, "customer", customer, 0, cust))
        return;
    if (source >= SOURCE_COUNT) {
        badarg(q,
               "PUSH source %u is unknown (0 dealer, 1 asn, 2 ecommerce, "
               "3 aftersales)",
               source);
        return;
    }
    if (fulfil >= FULFIL_COUNT) {
        badarg(q,
               "PUSH fulfil %u is unknown (0 stock, 1 to_drawing, 2 vmi, "
               "3 jit)",
               fulfil);
        return;
    }
    if (risk & ~RISK_ALL) {
        badarg(q,
               "PUSH risk 0x%02x: unknown bits 0x%02x (1 new_customer, "
               "2 high_returns, 4 overdue_90d)",
               risk, risk & ~RISK_ALL);
        return;
    }
    if (nattrs > ORDER_ATTRS_MAX) {
        badarg(q, "PUSH has %u attributes, at most %d", nattrs,
               ORDER_ATTRS_MAX);
        return;
    }

    struct order *o = order_new();
    if (!o) {
        reply_error(q, WIRE_ST_ERR, "out of memory");
        return;
    }
    order_set_id(o, id.s, id.len);
    o->cls = o->eff_cls = cls;
    if (wh[0])
        order_set_warehouse(o, wh, strlen(wh));
    else
        order_set_warehouse(o, CORE_DEFAULT_WAREHOUSE,
                            strlen(CORE_DEFAULT_WAREHOUSE));
    order_set_customer(o, cust, strlen(cust));
    o->source = source;
    o->fulfil = fulfil;
    o->risk = risk;
    o->deadline = deadline;
    o->state = flags & WIRE_PUSH_APPROVED ? STATE_QUEUED : STATE_NEW;
    for (uint16_t i = 0; i < nattrs; i++) {
        size_t klen, vlen;
        const char *k = wire_get_str16(&attrs, &klen);
        const char *v = wire_get_str32(&attrs, &vlen);
        int rc = order_attr_set(o, k, klen, v, vlen, err, sizeof err);
        if (rc) {
            if (rc == -2)
                reply_error(q, WIRE_ST_ERR, "out of memory");
            else
                badarg(q, "PUSH %s", err);
            order_free(o);
            return;
        }
    }

    struct core_result r;
    struct str raw =
        audit_raw(q, (struct str){NULL, 0}, id, rawbuf, sizeof rawbuf);
    core_push(q->core, q->actor, o, raw.s, raw.len, &r);
    reply_result(q, &r);
}

static void
op_approve(struct req *q)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    if (!body_read(q) || !check_id(q, id))
        return;
    struct core_result r;
    struct str raw =
        audit_raw(q, (struct str){NULL, 0}, id, rawbuf, sizeof rawbuf);
    core_approve(q->core, q->actor, id.s, id.len, raw.s, raw.len, &r);
    reply_result(q, &r);
}

/* HOLD and CANCEL: id, reason. */
static void
hold_or_cancel(struct req *q, bool cancel)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    struct str reason = get_str16(q, "reason");
    if (!body_read(q) || !check_id(q, id))
        return;
    if (reason.len > CORE_NOTE_MAX) {
        badarg(q, "%s reason is %zu bytes, at most %d", q->op, reason.len,
               CORE_NOTE_MAX);
        return;
    }
    struct core_result r;
    struct str raw =
        audit_raw(q, (struct str){NULL, 0}, id, rawbuf, sizeof rawbuf);
    if (cancel)
        core_cancel(q->core, q->actor, id.s, id.len, reason.s, reason.len,
                    raw.s, raw.len, &r);
    else
        core_hold(q->core, q->actor, id.s, id.len, reason.s, reason.len, raw.s,
                  raw.len, &r);
    reply_result(q, &r);
}

static void
op_hold(struct req *q)
{
    hold_or_cancel(q, false);
}

static void
op_cancel(struct req *q)
{
    hold_or_cancel(q, true);
}

static void
op_reprio(struct req *q)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    uint8_t cls = get_u8(q, "class");
    int64_t deadline = get_i64(q, "deadline");
    if (!body_read(q) || !check_id(q, id) || !check_class(q, cls) ||
        !check_time(q, "deadline", deadline))
        return;
    int n = snprintf(rawbuf, sizeof rawbuf, "bin REPRIO %.*s %s", (int)id.len,
                     id.s, order_class_name(cls));
    struct core_result r;
    core_reprio(q->core, q->actor, id.s, id.len, cls, deadline, rawbuf,
                n < 0 ? 0 : strlen(rawbuf), &r);
    reply_result(q, &r);
}

/* ---- WMS ------------------------------------------------------------ */

static void
op_next(struct req *q)
{
    char wh[ORDER_NAME_MAX + 1], picker[ORDER_NAME_MAX + 1];

    struct str warehouse = get_str16(q, "warehouse");
    struct str pick = get_str16(q, "picker");
    int64_t lease_ms = get_i64(q, "lease_ms");
    int64_t block_ms = get_i64(q, "block_ms");
    if (!body_read(q) || !check_name(q, "warehouse", warehouse, 1, wh) ||
        !check_name(q, "picker", pick, 0, picker) ||
        !check_lease_ms(q, lease_ms))
        return;
    if (block_ms < -1 || block_ms > BLOCK_MS_MAX) {
        badarg(q,
               "NEXT block_ms %" PRId64 " is out of range (-1 no wait, 0 "
               "forever, up to %" PRId64 ")",
               block_ms, BLOCK_MS_MAX);
        return;
    }
    if (!picker[0]) {
        /* The actor: the client's name (at most ORDER_NAME_MAX bytes) or
           "client-<id>". */
        size_t n = strnlen(q->actor, ORDER_NAME_MAX);
        memcpy(picker, q->actor, n);
        picker[n] = '\0';
    }

    struct core_next_args a = {wh, picker, lease_ms, block_ms};
    struct core_result r;
    core_next(q->core, q->actor, &a, block_ms >= 0 ? &q->c->waiter : NULL, &r);
    if (r.code == CORE_BLOCKED) {
        q->c->p.bin.wait_id = q->h->id;
        q->c->p.bin.wait_op = q->h->opcode;
        q->blocked = true;
        return;
    }
    if (reply_result(q, &r) && r.code == CORE_OK && r.order)
        put_order(q, r.order);
}

static void
op_touch(struct req *q)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    uint64_t lease = get_u64(q, "lease");
    int64_t lease_ms = get_i64(q, "lease_ms");
    if (!body_read(q) || !check_id(q, id) || !check_lease_ms(q, lease_ms))
        return;
    struct core_result r;
    struct str raw =
        audit_raw(q, (struct str){NULL, 0}, id, rawbuf, sizeof rawbuf);
    core_touch(q->core, q->actor, id.s, id.len, lease, lease_ms, raw.s, raw.len,
               &r);
    if (reply_result(q, &r))
        wire_put_i64(q->w, r.value);
}

static void
op_release(struct req *q)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    uint64_t lease = get_u64(q, "lease");
    if (!body_read(q) || !check_id(q, id))
        return;
    struct core_result r;
    struct str raw =
        audit_raw(q, (struct str){NULL, 0}, id, rawbuf, sizeof rawbuf);
    core_release(q->core, q->actor, id.s, id.len, lease, raw.s, raw.len, &r);
    reply_result(q, &r);
}

static void
op_picked(struct req *q)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    uint64_t lease = get_u64(q, "lease");
    if (!body_read(q) || !check_id(q, id))
        return;
    struct core_result r;
    struct str raw =
        audit_raw(q, (struct str){NULL, 0}, id, rawbuf, sizeof rawbuf);
    core_picked(q->core, q->actor, id.s, id.len, lease, raw.s, raw.len, &r);
    reply_result(q, &r);
}

static bool
check_raw(struct req *q, struct str raw)
{
    if (raw.len <= CORE_RAW_MAX)
        return true;
    badarg(q, "%s raw payload is %zu bytes, at most %d", q->op, raw.len,
           CORE_RAW_MAX);
    return false;
}

static void
op_outbound(struct req *q)
{
    char oper[ORDER_NAME_MAX + 1], rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    struct str op = get_str16(q, "operator");
    int64_t at = get_i64(q, "at");
    struct str photo = get_str16(q, "photo");
    struct str given = get_str32(q, "raw");
    if (!body_read(q) || !check_id(q, id) ||
        !check_name(q, "operator", op, 1, oper) || !check_time(q, "at", at) ||
        !check_raw(q, given))
        return;
    if (photo.len > WIRE_PHOTO_MAX) {
        badarg(q, "OUTBOUND photo is %zu bytes, at most %d", photo.len,
               WIRE_PHOTO_MAX);
        return;
    }
    struct core_confirm_args a = {oper, at, photo.len ? photo.s : NULL,
                                  photo.len};
    struct core_result r;
    struct str raw = audit_raw(q, given, id, rawbuf, sizeof rawbuf);
    core_outbound(q->core, q->actor, id.s, id.len, &a, raw.s, raw.len, &r);
    reply_result(q, &r);
}

static void
op_deliver(struct req *q)
{
    char rawbuf[AUDIT_RAW_LINE];
    struct str id = get_str16(q, "id");
    int64_t at = get_i64(q, "at");
    struct str given = get_str32(q, "raw");
    if (!body_read(q) || !check_id(q, id) || !check_time(q, "at", at) ||
        !check_raw(q, given))
        return;
    struct core_result r;
    struct str raw = audit_raw(q, given, id, rawbuf, sizeof rawbuf);
    core_deliver(q->core, q->actor, id.s, id.len, at, raw.s, raw.len, &r);
    reply_result(q, &r);
}

/* ---- readers -------------------------------------------------------- */

static void
op_get(struct req *q)
{
    struct str id = get_str16(q, "id");
    if (!body_read(q) || !check_id(q, id))
        return;
    struct core_result r;
    core_get(q->core, id.s, id.len, &r);
    if (reply_result(q, &r) && r.order)
        put_order(q, r.order);
}

static void
op_peek(struct req *q)
{
    char wh[ORDER_NAME_MAX + 1];
    struct str warehouse = get_str16(q, "warehouse");
    uint16_t count = get_u16(q, "count");
    if (!body_read(q) || !check_name(q, "warehouse", warehouse, 1, wh))
        return;
    if (count > CORE_PEEK_MAX) {
        badarg(q, "PEEK count %u is over %d", count, CORE_PEEK_MAX);
        return;
    }
    size_t k = count ? count : WIRE_PEEK_DEFAULT;
    struct order *top[CORE_PEEK_MAX];
    struct core_result r = {0};
    size_t n = core_peek(q->core, wh, k, top, &r);
    if (n == (size_t)-1) {
        reply_result(q, &r);
        return;
    }
    /* u16 n, u8 more, n orders: as many as fit one frame. */
    size_t at = q->w->len;
    wire_put_u16(q->w, 0);
    wire_put_u8(q->w, 0);
    uint16_t sent = 0;
    for (size_t i = 0; i < n && !q->w->err; i++) {
        size_t mark = q->w->len;
        put_order(q, top[i]);
        if (body_len(q) > WIRE_BODY_MAX) {
            q->w->len = mark;
            wire_patch_u16(q->w, at, sent);
            if (!q->w->err)
                q->w->buf[at + 2] = 1; /* more */
            return;
        }
        sent++;
    }
    wire_patch_u16(q->w, at, sent);
}

struct audit_ctx {
    struct req *q;
    uint32_t from;
    uint32_t n;
    bool more;
};

static int
audit_one(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    struct audit_ctx *ac = ctx;
    struct req *q = ac->q;
    struct view v;

    if (seq < ac->from)
        return 0;
    size_t mark = q->w->len;
    view_audit(&v, seq, a);
    put_view(q->w, &v);
    if (q->w->err)
        return 1;
    if (body_len(q) > WIRE_BODY_MAX) {
        q->w->len = mark;
        ac->more = true;
        return 1;
    }
    ac->n++;
    return 0;
}

static void
op_audit(struct req *q)
{
    struct str id = get_str16(q, "id");
    uint32_t from = get_u32(q, "from_seq");
    if (!body_read(q) || !check_id(q, id))
        return;
    /* u32 n, u8 more, n entries: as many as fit one frame. */
    size_t at = q->w->len;
    wire_put_u32(q->w, 0);
    wire_put_u8(q->w, 0);
    struct audit_ctx ac = {q, from, 0, false};
    struct core_result r;
    core_audit(q->core, id.s, id.len, audit_one, &ac, &r);
    if (!reply_result(q, &r))
        return;
    wire_patch_u32(q->w, at, ac.n);
    if (ac.more && !q->w->err)
        q->w->buf[at + 4] = 1;
}

static void
op_stats(struct req *q)
{
    char wh[ORDER_NAME_MAX + 1];
    struct str warehouse = get_str16(q, "warehouse");
    if (!body_read(q) || !check_name(q, "warehouse", warehouse, 0, wh))
        return;
    struct core_stats st;
    struct view v;
    core_stats_all(q->core, wh[0] ? wh : NULL, &st);
    view_stats(&v, &st);
    put_view(q->w, &v);
}

/* ---- operations ----------------------------------------------------- */

static void
op_checkpoint(struct req *q)
{
    struct str name = get_str16(q, "name");
    if (!body_read(q) || !check_str(q, "name", name, 1, CHECKPOINT_NAME_MAX))
        return;
    struct core_result r;
    core_checkpoint(q->core, name.s, name.len, &r);
    if (reply_result(q, &r))
        wire_put_str16(q->w, r.msg, strnlen(r.msg, sizeof r.msg));
}

static void
op_subscribe(struct req *q)
{
    if (body_read(q) && !conn_listening(q->c))
        conn_listen(q->c);
}

static void reply_begin(struct req *q, struct conn *c, uint8_t opcode,
                        uint32_t id);
static void reply_send(struct req *q, uint8_t opcode, uint32_t id);

/* EVENTS: u64 after, u16 count (0 = 100), i64 block_ms (-1: no wait).
   Reply: u32 n, n x (u64 seq, str32 json). */
struct events_out {
    struct req *q;
    uint32_t n;
};

static int
events_one(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct events_out *eo = ctx;
    wire_put_u64(eo->q->w, seq);
    wire_put_str32(eo->q->w, json, len);
    eo->n++;
    return 0;
}

static void
op_events(struct req *q)
{
    uint64_t after = get_u64(q, "after");
    uint16_t count = get_u16(q, "count");
    int64_t block = get_i64(q, "block_ms");
    if (!body_read(q))
        return;
    if (count == 0)
        count = 100;
    if (count > CORE_EVENTS_MAX) {
        badarg(q, "EVENTS count %u is over %d", (unsigned)count,
               CORE_EVENTS_MAX);
        return;
    }
    if (block < -1) {
        badarg(q, "EVENTS block_ms %" PRId64 " (-1: no wait, 0: forever)",
               block);
        return;
    }
    size_t at = q->w->len;
    wire_put_u32(q->w, 0); /* n, filled below */
    struct events_out eo = {q, 0};
    struct core_result r;
    core_events(q->core, after, count, events_one, &eo, &r);
    if (r.code != CORE_OK) {
        q->w->len = at;
        reply_result(q, &r);
        return;
    }
    if (eo.n == 0 && block >= 0 && !q->c->pool->quiet) {
        q->w->len = at;
        q->c->p.bin.wait_id = q->h->id;
        q->c->p.bin.wait_op = WIRE_OP_EVENTS;
        q->blocked = true;
        conn_wait_event(q->c, after, block);
        return;
    }
    wire_patch_u32(q->w, at, eo.n);
}

static void
bin_events_waited(struct conn *c, uint64_t seq, const char *json, size_t len)
{
    struct req q;
    reply_begin(&q, c, WIRE_OP_EVENTS, c->p.bin.wait_id);
    wire_put_u32(q.w, json ? 1 : 0);
    if (json) {
        wire_put_u64(q.w, seq);
        wire_put_str32(q.w, json, len);
    }
    reply_send(&q, WIRE_OP_EVENTS, c->p.bin.wait_id);
}

static void
op_unsubscribe(struct req *q)
{
    if (body_read(q))
        conn_unlisten(q->c);
}

typedef void op_fn(struct req *q);

static op_fn *const ops[256] = {
    [WIRE_OP_PING] = op_ping,
    [WIRE_OP_CLIENT_NAME] = op_client_name,
    [WIRE_OP_AUTH] = op_auth,
    [WIRE_OP_PUSH] = op_push,
    [WIRE_OP_APPROVE] = op_approve,
    [WIRE_OP_HOLD] = op_hold,
    [WIRE_OP_CANCEL] = op_cancel,
    [WIRE_OP_REPRIO] = op_reprio,
    [WIRE_OP_NEXT] = op_next,
    [WIRE_OP_TOUCH] = op_touch,
    [WIRE_OP_RELEASE] = op_release,
    [WIRE_OP_PICKED] = op_picked,
    [WIRE_OP_OUTBOUND] = op_outbound,
    [WIRE_OP_DELIVER] = op_deliver,
    [WIRE_OP_GET] = op_get,
    [WIRE_OP_PEEK] = op_peek,
    [WIRE_OP_AUDIT] = op_audit,
    [WIRE_OP_STATS] = op_stats,
    [WIRE_OP_CHECKPOINT] = op_checkpoint,
    [WIRE_OP_SUBSCRIBE] = op_subscribe,
    [WIRE_OP_UNSUBSCRIBE] = op_unsubscribe,
    [WIRE_OP_EVENTS] = op_events,
};

/* ---- frames --------------------------------------------------------- */

/* The reply of last resort, when the scratch writer cannot grow. */
static void
send_oom(struct conn *c, uint8_t opcode, uint32_t id)
{
    static const char word[] = "ERR",
                      msg[] = "out of memory building the reply";
    unsigned char f[WIRE_HEADER_LEN + 4 + sizeof word + sizeof msg];
    size_t n = WIRE_HEADER_LEN;
    f[n++] = sizeof word - 1;
    f[n++] = 0;
    memcpy(f + n, word, sizeof word - 1);
    n += sizeof word - 1;
    f[n++] = sizeof msg - 1;
    f[n++] = 0;
    memcpy(f + n, msg, sizeof msg - 1);
    n += sizeof msg - 1;
    struct wire_header h = {WIRE_VERSION, opcode, WIRE_ST_ERR, id,
                            (uint32_t)(n - WIRE_HEADER_LEN)};
    wire_header_encode(f, &h);
    evbuffer_add(c->out, f, n);
}

/* Start a reply (reply_send ends it, exactly once). */
static void
reply_begin(struct req *q, struct conn *c, uint8_t opcode, uint32_t id)
{
    memset(q, 0, sizeof *q);
    q->c = c;
    q->core = c->pool->core;
    if (scratch_busy) {
        wire_writer_init(&q->own);
        q->w = &q->own;
    } else {
        if (scratch.cap > SCRATCH_KEEP)
            wire_writer_free(&scratch); /* after a big PEEK or AUDIT */
        wire_writer_reset(&scratch);
        scratch_busy = true;
        q->w = &scratch;
    }
    q->frame = wire_frame_begin(q->w, opcode, WIRE_ST_OK, id);
}

static void
reply_send(struct req *q, uint8_t opcode, uint32_t id)
{
    if (!q->blocked) {
        wire_frame_end(q->w, q->frame);
        if (q->w->err)
            send_oom(q->c, opcode, id);
        else
            evbuffer_add(q->c->out, q->w->buf + q->frame, q->w->len - q->frame);
    }
    if (q->w == &scratch)
        scratch_busy = false;
    else
        wire_writer_free(q->w);
}

static long
bin_request(struct conn *c, const char *in, size_t len, size_t *need)
{
    struct wire_header h;
    struct req q;

    int rc = wire_header_parse(in, len, &h);
    if (rc == WIRE_PARSE_INCOMPLETE) {
        *need = WIRE_HEADER_LEN;
        return 0;
    }
    if (rc != WIRE_PARSE_OK) {
        if (rc == WIRE_PARSE_BAD_MAGIC) {
            /* Not a frame: its "opcode" and "id" are noise. */
            h.opcode = 0;
            h.id = 0;
        }
        reply_begin(&q, c, h.opcode, h.id);
        q.h = &h;
        if (rc == WIRE_PARSE_BAD_MAGIC)
            reply_error(&q, WIRE_ST_PROTO,
                        "bad magic 0x%02x (a frame starts with 0x%02x)",
                        (unsigned char)in[0], WIRE_MAGIC);
        else if (rc == WIRE_PARSE_BAD_VERSION)
            reply_error(&q, WIRE_ST_PROTO,
                        "protocol version %u is not supported (this server "
                        "speaks %d)",
                        h.version, WIRE_VERSION);
        else
            reply_error(&q, WIRE_ST_PROTO,
                        "body of %" PRIu32 " bytes is over the limit of %u",
                        h.len, WIRE_BODY_MAX);
        reply_send(&q, h.opcode, h.id);
        return -1;
    }
    size_t total = WIRE_HEADER_LEN + (size_t)h.len;
    if (len < total) {
        *need = total;
        return 0;
    }

    reply_begin(&q, c, h.opcode, h.id);
    q.h = &h;
    q.op = wire_op_name(h.opcode);
    wire_reader_init(&q.rd, in + WIRE_HEADER_LEN, h.len);
    conn_actor(c, q.actor, sizeof q.actor);
    op_fn *fn = ops[h.opcode];
    int op = op_of(h.opcode);
    if (!fn)
        reply_error(&q, WIRE_ST_BADOP, "unknown opcode 0x%02x", h.opcode);
    else if (h.status != 0)
        badarg(&q, "%s flags 0x%02x: version %d defines none", q.op, h.status,
               WIRE_VERSION);
    else if (c->role == ROLE_NONE && h.opcode != WIRE_OP_AUTH &&
             h.opcode != WIRE_OP_PING)
        reply_error(&q, WIRE_ST_NOAUTH, "authentication required: AUTH first");
    else if (op >= 0 && !conn_may(c, op))
        reply_error(&q, WIRE_ST_NOPERM,
                    "user %s (%s) has no permission to run %s", q.actor,
                    role_name(c->role), q.op);
    else
        fn(&q);
    reply_send(&q, h.opcode, h.id); /* nothing, when NEXT blocked */
    return (long)total;
}

static void
bin_waited(struct conn *c, struct order *o, uint64_t ticket)
{
    struct req q;
    uint8_t op = c->p.bin.wait_op ? c->p.bin.wait_op : WIRE_OP_NEXT;

    reply_begin(&q, c, op, c->p.bin.wait_id);
    if (o) {
        conn_wait(c, ticket);
        put_order(&q, o);
    } else {
        set_status(&q, WIRE_ST_NIL);
    }
    reply_send(&q, op, c->p.bin.wait_id);
}

static void
bin_event(struct conn *c, uint64_t seq, const char *type, const char *json,
          size_t len)
{
    struct wire_header h = {WIRE_VERSION, WIRE_OP_EVENT, WIRE_ST_OK, 0,
                            (uint32_t)len};
    unsigned char head[WIRE_HEADER_LEN];

    if (len > WIRE_BODY_MAX) {
        /* Cannot happen with today's events; say so rather than cut. */
        struct req q;
        reply_begin(&q, c, WIRE_OP_EVENT, 0);
        reply_error(&q, WIRE_ST_TOOBIG,
                    "event %" PRIu64 " (%s) is %zu bytes, over the frame "
                    "limit of %u",
                    seq, type, len, WIRE_BODY_MAX);
        reply_send(&q, WIRE_OP_EVENT, 0);
        return;
    }
    wire_header_encode(head, &h);
    evbuffer_add(c->out, head, sizeof head);
    evbuffer_add(c->out, json, len);
}

static void
bin_overflow(struct conn *c)
{
    struct req q;
    reply_begin(&q, c, WIRE_OP_CLOSING, 0);
    reply_error(&q, WIRE_ST_ERR,
                "too many replies unread: the server closes this connection");
    reply_send(&q, WIRE_OP_CLOSING, 0);
}

const struct proto proto_bin = {
    .name = "binary",
    .request = bin_request,
    .waited = bin_waited,
    .event = bin_event,
    .overflow = bin_overflow,
    .events_waited = bin_events_waited,
};
