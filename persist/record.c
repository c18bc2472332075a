/*
 * record — the byte encoding of an order and of an audit entry, as stored
 * in RocksDB's "orders" and "audit" column families.
 *
 * Both encodings start with a version byte, so a newer build can change the
 * layout and still read what an older one wrote, and an older build can
 * refuse what it does not understand instead of misreading it.  After the
 * version come the fields in a fixed order:
 *
 *   unsigned integers   LEB128 varints (7 bits a byte, low bits first, the
 *                       top bit says "more"): a sequence number of 12 costs
 *                       one byte, a lease id of 2^40 six;
 *   signed integers     zigzag first (0,-1,1,-2,... -> 0,1,2,3,...), so the
 *                       "unset" -1 and small negatives stay short too;
 *   enums, flags        one byte each;
 *   strings             varint length, then the bytes (no terminator).
 *
 * An order's attributes are stored as the order keeps them in memory, the
 * packed "key\0value\0..." block, so decoding is one copy plus a walk that
 * checks every pair.
 *
 * Versions.  A new version only appends fields after the last one of the
 * version before, so the decoder is one walk that stops early for an old
 * record and leaves the newer fields at their defaults:
 *
 *   1   everything up to and including the attributes
 *   2   + pick_done_at (signed), unconfirmed_fired (bool), for the picked
 *       state (STATE_PICKED, enum value 7: states and actions are only
 *       ever appended, so a version 1 record's state byte means the same)
 *
 * The encoder always writes the current version.  A build that only knows
 * version 1 refuses a version 2 record rather than misread it.
 *
 * Decoding trusts nothing: every length is checked against the bytes left,
 * every enum against its range, every string against the bound of the
 * field it fills, and bytes left over are an error.  Varints must be
 * minimal and booleans 0 or 1, which makes the encoding canonical: when a
 * buffer of the current version decodes at all, encoding the result gives
 * back exactly that buffer (an older one comes back in the current
 * version).  The tests lean on that to check every truncation and byte
 * flip.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define RECORD_VERSION 2
#define AUDIT_VERSION 1

/* ---- writing: a cursor that counts past the end without writing ---- */

struct wbuf {
    char *p;
    size_t n;   /* bytes the encoding needs so far */
    size_t cap; /* bytes available at p */
};

static void
put_bytes(struct wbuf *w, const void *src, size_t len)
{
    if (w->n <= w->cap && len <= w->cap - w->n && len > 0)
        memcpy(w->p + w->n, src, len);
    w->n += len;
}

static void
put_u8(struct wbuf *w, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put_bytes(w, &c, 1);
}

static void
put_uvar(struct wbuf *w, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    put_bytes(w, tmp, n);
}

static void
put_svar(struct wbuf *w, int64_t v)
{
    uint64_t u = (uint64_t)v;
    put_uvar(w, (u << 1) ^ (0 - (u >> 63)));
}

static void
put_str(struct wbuf *w, const char *s, size_t len)
{
    put_uvar(w, len);
    put_bytes(w, s, len);
}

/* A fixed, NUL-terminated field of an order. */
static void
put_field(struct wbuf *w, const char *s, size_t max)
{
    put_str(w, s, strnlen(s, max));
}

/* ---- reading: every step checks the bytes left ---- */

struct rbuf {
    const unsigned char *p;
    size_t len;
    size_t off;
    char *err;
    size_t errlen;
    bool failed;
};

static void
rfail(struct rbuf *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    if (r->err == NULL || r->errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
}

static unsigned
get_u8(struct rbuf *r, const char *what)
{
    if (r->failed)
        return 0;
    if (r->off >= r->len) {
        rfail(r, "truncated at byte %zu (%s)", r->off, what);
        return 0;
    }
    return r->p[r->off++];
}

static uint64_t
get_uvar(struct rbuf *r, const char *what)
{
    if (r->failed)
        return 0;
    /* Locals, not r's fields: a byte read through unsigned char may alias
       them, which would reload them for every byte. */
    const unsigned char *p = r->p;
    size_t off = r->off, len = r->len, start = off;
    if (off < len && p[off] < 0x80) { /* every length, most small values */
        r->off = off + 1;
        return p[off];
    }
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (off >= len) {
            rfail(r, "truncated at byte %zu (%s)", off, what);
            return 0;
        }
        unsigned char c = p[off++];
        if (shift == 63 && c > 1) {
            rfail(r, "varint overflow at byte %zu (%s)", start, what);
            return 0;
        }
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            r->off = off;
            if (c == 0)
                rfail(r, "non-minimal varint at byte %zu (%s)", start, what);
            return v;
        }
    }
}

static int64_t
get_svar(struct rbuf *r, const char *what)
{
    uint64_t u = get_uvar(r, what);
    return (int64_t)((u >> 1) ^ (0 - (u & 1)));
}

/* A length-prefixed string: returns a pointer into the buffer and its
   length, or NULL (failed) when it overruns the buffer or max. */
static const char *
get_str(struct rbuf *r, size_t max, size_t *len, const char *what)
{
    uint64_t n = get_uvar(r, what);
    if (r->failed)
        return NULL;
    if (n > max) {
        rfail(r, "%s too long (%llu bytes, at most %zu)", what,
              (unsigned long long)n, max);
        return NULL;
    }
    if (n > r->len - r->off) {
        rfail(r, "truncated at byte %zu (%s)", r->len, what);
        return NULL;
    }
    const char *s = (const char *)r->p + r->off;
    r->off += (size_t)n;
    *len = (size_t)n;
    return s;
}

/* A string into a fixed field of size bytes (so at most size - 1 long),
   without embedded NULs. */
static void
get_field(struct rbuf *r, struct order *o,
          int (*set)(struct order *, const char *, size_t), size_t max,
          const char *what)
{
    size_t n = 0;
    const char *s = get_str(r, max, &n, what);
    if (s == NULL)
        return;
    int rc = set(o, s, n);
    if (rc == -1)
        rfail(r, "%s contains a NUL byte", what);
    else if (rc < 0)
        rfail(r, "out of memory");
}

static unsigned
get_enum(struct rbuf *r, unsigned count, const char *what)
{
    unsigned v = get_u8(r, what);
    if (!r->failed && v >= count)
        rfail(r, "bad %s %u", what, v);
    return v;
}

static bool
get_bool(struct rbuf *r, const char *what)
{
    return get_enum(r, 2, what) == 1;
}

/* ---- orders ---- */

size_t
record_encode(const struct order *o, char *buf, size_t cap)
{
    struct wbuf w = {buf, 0, cap};

    put_u8(&w, RECORD_VERSION);
    put_field(&w, o->id, ORDER_ID_MAX);
    put_field(&w, o->warehouse, ORDER_NAME_MAX);
    put_field(&w, o->customer, ORDER_NAME_MAX);
    put_u8(&w, o->cls);
    put_u8(&w, o->eff_cls);
    put_u8(&w, o->state);
    put_u8(&w, o->source);
    put_u8(&w, o->fulfil);
    put_u8(&w, o->risk);
    put_svar(&w, o->deadline);
    put_svar(&w, o->created);
    put_svar(&w, o->updated);
    put_uvar(&w, o->seq);
    put_uvar(&w, o->lease);
    put_svar(&w, o->lease_expires);
    put_svar(&w, o->picked_at);
    put_field(&w, o->picker, ORDER_NAME_MAX);
    put_svar(&w, order_outbound_at(o));
    put_field(&w, o->operator_, ORDER_NAME_MAX);
    put_u8(&w, o->outbound_leased ? 1 : 0);
    put_svar(&w, order_delivered_at(o));
    put_uvar(&w, o->audit_n);
    put_str(&w, o->attrs, o->attrs != NULL ? o->attrs_len : 0);
    /* version 2 */
    put_svar(&w, o->pick_done_at);
    put_u8(&w, o->unconfirmed_fired ? 1 : 0);
    return w.n;
}

/* Walk a packed attribute block, checking each pair; returns the number of
   pairs, or -1 (failed). */
static int
check_attrs(struct rbuf *r, const char *a, size_t len)
{
    size_t pos = 0;
    int n = 0;
    while (pos < len) {
        if (n == ORDER_ATTRS_MAX) {
            rfail(r, "more than %d attributes", ORDER_ATTRS_MAX);
            return -1;
        }
        const char *k = a + pos;
        const char *kend = memchr(k, '\0', len - pos);
        if (kend == NULL) {
            rfail(r, "attribute %d: key not terminated", n);
            return -1;
        }
        size_t klen = (size_t)(kend - k);
        if (klen == 0 || klen > ORDER_ATTR_KEY_MAX) {
            rfail(r, "attribute %d: bad key length %zu", n, klen);
            return -1;
        }
        pos += klen + 1;
        const char *v = a + pos;
        const char *vend = pos < len ? memchr(v, '\0', len - pos) : NULL;
        if (vend == NULL) {
            rfail(r, "attribute %d: value not terminated", n);
            return -1;
        }
        size_t vlen = (size_t)(vend - v);
        if (vlen > ORDER_ATTR_VAL_MAX) {
            rfail(r, "attribute %d: value too long (%zu bytes)", n, vlen);
            return -1;
        }
        pos += vlen + 1;
        n++;
    }
    return n;
}

struct order *
record_decode(const char *buf, size_t len, char *err, size_t errlen)
{
    struct rbuf r = {(const unsigned char *)buf, len, 0, err, errlen, false};

    unsigned version = get_u8(&r, "version");
    if (r.failed)
        return NULL;
    if (version > RECORD_VERSION) {
        rfail(&r, "record format %u is newer than this build's (%d)", version,
              RECORD_VERSION);
        return NULL;
    }
    if (version == 0) {
        rfail(&r, "bad record format 0");
        return NULL;
    }

    struct order *o = order_new();
    if (o == NULL) {
        rfail(&r, "out of memory");
        return NULL;
    }
    get_field(&r, o, order_set_id, ORDER_ID_MAX, "id");
    get_field(&r, o, order_set_warehouse, ORDER_NAME_MAX, "warehouse");
    get_field(&r, o, order_set_customer, ORDER_NAME_MAX, "customer");
    o->cls = (uint8_t)get_enum(&r, CLASS_COUNT, "class");
    o->eff_cls = (uint8_t)get_enum(&r, CLASS_COUNT, "effective class");
    o->state = (uint8_t)get_enum(&r, STATE_COUNT, "state");
    o->source = (uint8_t)get_enum(&r, SOURCE_COUNT, "source");
    o->fulfil = (uint8_t)get_enum(&r, FULFIL_COUNT, "fulfilment");
    o->risk = (uint8_t)get_enum(&r, RISK_ALL + 1, "risk");
    o->deadline = get_svar(&r, "deadline");
    o->created = get_svar(&r, "created");
    o->updated = get_svar(&r, "updated");
    o->seq = get_uvar(&r, "seq");
    o->lease = get_uvar(&r, "lease");
    o->lease_expires = get_svar(&r, "lease expiry");
    o->picked_at = get_svar(&r, "picked at");
    get_field(&r, o, order_set_picker, ORDER_NAME_MAX, "picker");
    int64_t outbound_at = get_svar(&r, "outbound at");
    get_field(&r, o, order_set_operator, ORDER_NAME_MAX, "operator");
    o->outbound_leased = get_bool(&r, "outbound leased");
    int64_t delivered_at = get_svar(&r, "delivered at");
    if (order_state_finished(o->state)) { /* else the bytes are the heap's */
        o->outbound_at = outbound_at;
        o->delivered_at = delivered_at;
    } else if (!r.failed && (outbound_at != 0 || delivered_at != 0)) {
        rfail(&r, "a %s order with an outbound or delivery time",
              order_state_name(o->state));
    }
    uint64_t audit_n = get_uvar(&r, "audit count");
    if (!r.failed && audit_n > UINT32_MAX)
        rfail(&r, "audit count %llu out of range", (unsigned long long)audit_n);
    o->audit_n = (uint32_t)audit_n;

    size_t alen = 0;
    const char *attrs = get_str(
        &r,
        (size_t)ORDER_ATTRS_MAX * (ORDER_ATTR_KEY_MAX + ORDER_ATTR_VAL_MAX + 2),
        &alen, "attributes");
    int nattrs = r.failed ? -1 : check_attrs(&r, attrs, alen);
    if (version >= 2) {
        o->pick_done_at = get_svar(&r, "pick done at");
        o->unconfirmed_fired = get_bool(&r, "unconfirmed fired");
    }
    if (!r.failed && r.off != r.len)
        rfail(&r, "%zu bytes after the record", r.len - r.off);
    if (r.failed) {
        order_free(o);
        return NULL;
    }
    if (alen > 0) {
        o->attrs = malloc(alen);
        if (o->attrs == NULL) {
            rfail(&r, "out of memory");
            order_free(o);
            return NULL;
        }
        memcpy(o->attrs, attrs, alen);
    }
    o->nattrs = (uint16_t)nattrs;
    o->attrs_len = (uint16_t)alen;
    return o;
}

/* ---- audit entries ---- */

size_t
audit_encode(const struct audit_entry *a, char *buf, size_t cap)
{
    struct wbuf w = {buf, 0, cap};

    put_u8(&w, AUDIT_VERSION);
    put_svar(&w, a->at);
    put_u8(&w, (unsigned)a->action);
    put_u8(&w, (unsigned)(a->from + 1));
    put_u8(&w, (unsigned)a->to);
    put_str(&w, a->actor, a->actor_len);
    put_str(&w, a->raw, a->raw_len);
    put_str(&w, a->note, a->note_len);
    return w.n;
}

int
audit_decode(const char *buf, size_t len, struct audit_entry *a)
{
    struct rbuf r = {(const unsigned char *)buf, len, 0, NULL, 0, false};

    unsigned version = get_u8(&r, "version");
    if (r.failed || version == 0 || version > AUDIT_VERSION)
        return -1;
    a->at = get_svar(&r, "at");
    a->action = (int)get_enum(&r, ACTION_COUNT, "action");
    a->from = (int)get_enum(&r, STATE_COUNT + 1, "from") - 1;
    a->to = (int)get_enum(&r, STATE_COUNT, "to");
    a->actor = get_str(&r, SIZE_MAX, &a->actor_len, "actor");
    a->raw = get_str(&r, SIZE_MAX, &a->raw_len, "raw");
    a->note = get_str(&r, SIZE_MAX, &a->note_len, "note");
    if (r.failed || r.off != r.len)
        return -1;
    /* Empty strings point at "" so a caller may always dereference. */
    if (a->actor_len == 0)
        a->actor = "";
    if (a->raw_len == 0)
        a->raw = "";
    if (a->note_len == 0)
        a->note = "";
    return 0;
}
