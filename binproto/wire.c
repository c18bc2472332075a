/*
 * The binary protocol's codec.  Integers are assembled byte by byte, so
 * the code is the same on any host and never does an unaligned load; the
 * reader checks every length against what is left before it trusts it,
 * and the writer checks every size computation against overflow.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* ---- names ---------------------------------------------------------- */

const char *
wire_parse_name(int rc)
{
    switch (rc) {
    case WIRE_PARSE_OK:
        return "ok";
    case WIRE_PARSE_INCOMPLETE:
        return "incomplete";
    case WIRE_PARSE_BAD_MAGIC:
        return "bad magic";
    case WIRE_PARSE_BAD_VERSION:
        return "bad version";
    case WIRE_PARSE_TOO_BIG:
        return "body too big";
    }
    return "?";
}

const char *
wire_op_name(int op)
{
    switch (op) {
    case WIRE_OP_PING:
        return "PING";
    case WIRE_OP_CLIENT_NAME:
        return "CLIENT_NAME";
    case WIRE_OP_AUTH:
        return "AUTH";
    case WIRE_OP_PUSH:
        return "PUSH";
    case WIRE_OP_APPROVE:
        return "APPROVE";
    case WIRE_OP_HOLD:
        return "HOLD";
    case WIRE_OP_CANCEL:
        return "CANCEL";
    case WIRE_OP_REPRIO:
        return "REPRIO";
    case WIRE_OP_NEXT:
        return "NEXT";
    case WIRE_OP_TOUCH:
        return "TOUCH";
    case WIRE_OP_RELEASE:
        return "RELEASE";
    case WIRE_OP_OUTBOUND:
        return "OUTBOUND";
    case WIRE_OP_DELIVER:
        return "DELIVER";
    case WIRE_OP_PICKED:
        return "PICKED";
    case WIRE_OP_EVENTS:
        return "EVENTS";
    case WIRE_OP_GET:
        return "GET";
    case WIRE_OP_PEEK:
        return "PEEK";
    case WIRE_OP_AUDIT:
        return "AUDIT";
    case WIRE_OP_STATS:
        return "STATS";
    case WIRE_OP_CHECKPOINT:
        return "CHECKPOINT";
    case WIRE_OP_SUBSCRIBE:
        return "SUBSCRIBE";
    case WIRE_OP_UNSUBSCRIBE:
        return "UNSUBSCRIBE";
    case WIRE_OP_EVENT:
        return "EVENT";
    case WIRE_OP_CLOSING:
        return "CLOSING";
    }
    return NULL;
}

static const struct {
    uint8_t st;
    const char *name, *word;
} statuses[] = {
    {WIRE_ST_OK, "OK", "OK"},
    {WIRE_ST_ALREADY, "ALREADY", "ALREADY"},
    {WIRE_ST_NIL, "NIL", "NIL"},
    {WIRE_ST_NOTFOUND, "NOTFOUND", "NOTFOUND"},
    {WIRE_ST_BADSTATE, "BADSTATE", "BADSTATE"},
    {WIRE_ST_BADARG, "BADARG", "BADARG"},
    {WIRE_ST_EXISTS, "EXISTS", "EXISTS"},
    {WIRE_ST_LEASE, "LEASE", "LEASE"},
    {WIRE_ST_TOOBIG, "TOOBIG", "TOOBIG"},
    {WIRE_ST_BUSY, "BUSY", "BUSY"},
    {WIRE_ST_READONLY, "READONLY", "READONLY"},
    {WIRE_ST_NOPERM, "NOPERM", "NOPERM"},
    {WIRE_ST_ERR, "ERR", "ERR"},
    {WIRE_ST_BADOP, "BADOP", "ERR"},
    {WIRE_ST_PROTO, "PROTO", "ERR"},
    {WIRE_ST_NOCREDS, "NOCREDS", "ERR"},
    {WIRE_ST_NOAUTH, "NOAUTH", "NOAUTH"},
    {WIRE_ST_WRONGPASS, "WRONGPASS", "WRONGPASS"},
};

const char *
wire_status_word(int st)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].st == st)
            return statuses[i].word;
    return NULL;
}

const char *
wire_status_name(int st)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].st == st)
            return statuses[i].name;
    return NULL;
}

/* The keys view.c gives each tag.  A field whose key differs from this
   table (or whose tag is not in it) goes out KEYED, so a client always
   sees the daemon's names even if this table lags behind view.h. */
static const char *const order_tags[] = {
    NULL,
    "id",
    "class",
    "effective_class",
    "state",
    "warehouse",
    "customer",
    "source",
    "fulfil",
    "risk",
    "deadline",
    "deadline_iso",
    "created",
    "created_iso",
    "updated",
    "updated_iso",
    "seq",
    "attrs",
    "position",
    "eta_ms",
    "eta",
    "eta_iso",
    "lease",
    "lease_expires",
    "lease_expires_iso",
    "picker",
    "picked_at",
    "picked_at_iso",
    "outbound_at",
    "outbound_at_iso",
    "operator",
    "outbound_leased",
    "delivered_at",
    "delivered_at_iso",
};

static const char *const audit_tags[] = {
    "seq", "at", "at_iso", "actor", "action", "from", "to", "raw", "note",
};

const char *
wire_tag_name(int tag)
{
    size_t n_order = sizeof order_tags / sizeof order_tags[0];
    size_t n_audit = sizeof audit_tags / sizeof audit_tags[0];

    if (tag > 0 && (size_t)tag < n_order)
        return order_tags[tag];
    if (tag >= WIRE_TAG_A_SEQ && (size_t)(tag - WIRE_TAG_A_SEQ) < n_audit)
        return audit_tags[tag - WIRE_TAG_A_SEQ];
    return NULL;
}

/* ---- little-endian integers ----------------------------------------- */

static uint64_t
load_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void
store_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

/* ---- the header ----------------------------------------------------- */

int
wire_header_parse(const void *buf, size_t len, struct wire_header *h)
{
    const unsigned char *p = buf;

    memset(h, 0, sizeof *h);
    if (len >= 2)
        h->version = p[1];
    if (len >= 3)
        h->opcode = p[2];
    if (len >= 4)
        h->status = p[3];
    if (len >= 8)
        h->id = (uint32_t)load_le(p + 4, 4);
    if (len >= 1 && p[0] != WIRE_MAGIC)
        return WIRE_PARSE_BAD_MAGIC;
    if (len >= 2 && p[1] != WIRE_VERSION)
        return WIRE_PARSE_BAD_VERSION;
    if (len < WIRE_HEADER_LEN)
        return WIRE_PARSE_INCOMPLETE;
    h->len = (uint32_t)load_le(p + 8, 4);
    if (h->len > WIRE_BODY_MAX)
        return WIRE_PARSE_TOO_BIG;
    return WIRE_PARSE_OK;
}

void
wire_header_encode(void *out, const struct wire_header *h)
{
    unsigned char *p = out;
    p[0] = WIRE_MAGIC;
    p[1] = h->version;
    p[2] = h->opcode;
    p[3] = h->status;
    store_le(p + 4, h->id, 4);
    store_le(p + 8, h->len, 4);
}

/* ---- reader --------------------------------------------------------- */

void
wire_reader_init(struct wire_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = p ? len : 0;
    r->pos = 0;
    r->err = false;
}

/* n bytes at the cursor, advancing it; NULL (and err) when they are not
   all there. */
static const unsigned char *
take(struct wire_reader *r, size_t n)
{
    if (r->err || n > r->len - r->pos) {
        r->err = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint8_t
wire_get_u8(struct wire_reader *r)
{
    const unsigned char *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t
wire_get_u16(struct wire_reader *r)
{
    const unsigned char *p = take(r, 2);
    return p ? (uint16_t)load_le(p, 2) : 0;
}

uint32_t
wire_get_u32(struct wire_reader *r)
{
    const unsigned char *p = take(r, 4);
    return p ? (uint32_t)load_le(p, 4) : 0;
}

uint64_t
wire_get_u64(struct wire_reader *r)
{
    const unsigned char *p = take(r, 8);
    return p ? load_le(p, 8) : 0;
}

int64_t
wire_get_i64(struct wire_reader *r)
{
    uint64_t u = wire_get_u64(r);
    int64_t v;
    memcpy(&v, &u, sizeof v); /* two's complement, without UB */
    return v;
}

const char *
wire_get_bytes(struct wire_reader *r, size_t n)
{
    static const char empty[1];
    const unsigned char *p = take(r, n);
    if (!p)
        return NULL;
    return n ? (const char *)p : empty;
}

const char *
wire_get_str16(struct wire_reader *r, size_t *len)
{
    size_t n = wire_get_u16(r);
    const char *s = wire_get_bytes(r, n);
    *len = s ? n : 0;
    return s;
}

const char *
wire_get_str32(struct wire_reader *r, size_t *len)
{
    size_t n = wire_get_u32(r);
    const char *s = wire_get_bytes(r, n);
    *len = s ? n : 0;
    return s;
}

int
wire_get_field(struct wire_reader *r, struct wire_field *f)
{
    memset(f, 0, sizeof *f);
    f->tag = wire_get_u8(r);
    uint8_t kind = wire_get_u8(r);
    if (r->err)
        return -1;
    if (kind & WIRE_KIND_KEYED) {
        f->key = wire_get_str16(r, &f->key_len);
        kind &= (uint8_t)~WIRE_KIND_KEYED;
    }
    f->kind = kind;
    switch (kind) {
    case WIRE_KIND_STR:
    case WIRE_KIND_LIST:
        f->s = wire_get_str32(r, &f->len);
        break;
    case WIRE_KIND_INT:
        f->i = wire_get_i64(r);
        break;
    case WIRE_KIND_U64:
        f->u = wire_get_u64(r);
        break;
    case WIRE_KIND_ATTRS: {
        /* Walk the pairs once here, so wire_attr_next can trust them. */
        f->nattrs = wire_get_u16(r);
        size_t start = r->pos;
        for (uint16_t i = 0; i < f->nattrs && !r->err; i++) {
            size_t n;
            wire_get_str16(r, &n);
            wire_get_str32(r, &n);
        }
        if (!r->err) {
            f->attrs = (const char *)r->p + start;
            f->attrs_len = r->pos - start;
        }
        break;
    }
    default:
        r->err = true;
    }
    return r->err ? -1 : 0;
}

bool
wire_attr_next(const struct wire_field *f, size_t *pos, const char **k,
               size_t *klen, const char **v, size_t *vlen)
{
    struct wire_reader r;
    if (f->kind != WIRE_KIND_ATTRS || !f->attrs || *pos >= f->attrs_len)
        return false;
    wire_reader_init(&r, f->attrs, f->attrs_len);
    r.pos = *pos;
    *k = wire_get_str16(&r, klen);
    *v = wire_get_str32(&r, vlen);
    if (r.err)
        return false;
    *pos = r.pos;
    return true;
}

/* ---- writer --------------------------------------------------------- */

void
wire_writer_init(struct wire_writer *w)
{
    memset(w, 0, sizeof *w);
}

void
wire_writer_free(struct wire_writer *w)
{
    void *(*fn)(void *, size_t) = w->realloc_fn;
    if (fn)
        fn(w->buf, 0); /* realloc(p, 0) frees, as free() would */
    else
        free(w->buf);
    wire_writer_init(w);
    w->realloc_fn = fn;
}

void
wire_writer_reset(struct wire_writer *w)
{
    w->len = 0;
    w->err = false;
}

bool
wire_reserve(struct wire_writer *w, size_t n)
{
    if (w->err)
        return false;
    if (n <= w->cap - w->len)
        return true;
    if (n > SIZE_MAX / 2 - w->len) {
        w->err = true;
        return false;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
        cap *= 2;
    char *p = w->realloc_fn ? w->realloc_fn(w->buf, cap) : realloc(w->buf, cap);
    if (!p) {
        w->err = true;
        return false;
    }
    w->buf = p;
    w->cap = cap;
    return true;
}

static void
put_le(struct wire_writer *w, uint64_t v, int n)
{
    if (!wire_reserve(w, (size_t)n))
        return;
    store_le((unsigned char *)w->buf + w->len, v, n);
    w->len += (size_t)n;
}

void
wire_put_u8(struct wire_writer *w, uint8_t v)
{
    put_le(w, v, 1);
}

void
wire_put_u16(struct wire_writer *w, uint16_t v)
{
    put_le(w, v, 2);
}

void
wire_put_u32(struct wire_writer *w, uint32_t v)
{
    put_le(w, v, 4);
}

void
wire_put_u64(struct wire_writer *w, uint64_t v)
{
    put_le(w, v, 8);
}

void
wire_put_i64(struct wire_writer *w, int64_t v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_le(w, u, 8);
}

void
wire_put_bytes(struct wire_writer *w, const void *p, size_t n)
{
    if (n == 0 || !wire_reserve(w, n))
        return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void
wire_put_str16(struct wire_writer *w, const void *s, size_t n)
{
    if (n > UINT16_MAX) {
        w->err = true;
        return;
    }
    if (!wire_reserve(w, 2 + n)) /* all or nothing */
        return;
    wire_put_u16(w, (uint16_t)n);
    wire_put_bytes(w, s, n);
}

void
wire_put_str32(struct wire_writer *w, const void *s, size_t n)
{
    if (n > UINT32_MAX || n > SIZE_MAX - 4) {
        w->err = true;
        return;
    }
    if (!wire_reserve(w, 4 + n))
        return;
    wire_put_u32(w, (uint32_t)n);
    wire_put_bytes(w, s, n);
}

void
wire_patch_u16(struct wire_writer *w, size_t off, uint16_t v)
{
    if (!w->err && off <= w->len && w->len - off >= 2)
        store_le((unsigned char *)w->buf + off, v, 2);
}

void
wire_patch_u32(struct wire_writer *w, size_t off, uint32_t v)
{
    if (!w->err && off <= w->len && w->len - off >= 4)
        store_le((unsigned char *)w->buf + off, v, 4);
}

static void
field_head(struct wire_writer *w, uint8_t tag, int kind, const char *key)
{
    wire_put_u8(w, tag);
    if (key) {
        wire_put_u8(w, (uint8_t)(kind | WIRE_KIND_KEYED));
        wire_put_str16(w, key, strlen(key));
    } else {
        wire_put_u8(w, (uint8_t)kind);
    }
}

void
wire_put_field_str(struct wire_writer *w, uint8_t tag, int kind,
                   const char *key, const char *s, size_t len)
{
    field_head(w, tag, kind == WIRE_KIND_LIST ? WIRE_KIND_LIST : WIRE_KIND_STR,
               key);
    wire_put_str32(w, s, len);
}

void
wire_put_field_int(struct wire_writer *w, uint8_t tag, const char *key,
                   int64_t v)
{
    field_head(w, tag, WIRE_KIND_INT, key);
    wire_put_i64(w, v);
}

void
wire_put_field_u64(struct wire_writer *w, uint8_t tag, const char *key,
                   uint64_t v)
{
    field_head(w, tag, WIRE_KIND_U64, key);
    wire_put_u64(w, v);
}

size_t
wire_put_attrs_begin(struct wire_writer *w, uint8_t tag, const char *key)
{
    field_head(w, tag, WIRE_KIND_ATTRS, key);
    size_t at = w->len;
    wire_put_u16(w, 0);
    return at;
}

void
wire_put_attr(struct wire_writer *w, const char *k, size_t klen, const char *v,
              size_t vlen)
{
    wire_put_str16(w, k, klen);
    wire_put_str32(w, v, vlen);
}

void
wire_put_attrs_end(struct wire_writer *w, size_t at, uint16_t n)
{
    wire_patch_u16(w, at, n);
}

size_t
wire_frame_begin(struct wire_writer *w, uint8_t opcode, uint8_t status,
                 uint32_t id)
{
    struct wire_header h = {WIRE_VERSION, opcode, status, id, 0};
    size_t at = w->len;
    if (wire_reserve(w, WIRE_HEADER_LEN)) {
        wire_header_encode(w->buf + w->len, &h);
        w->len += WIRE_HEADER_LEN;
    }
    return at;
}

void
wire_frame_end(struct wire_writer *w, size_t at)
{
    if (w->err || at > w->len || w->len - at < WIRE_HEADER_LEN)
        return;
    size_t body = w->len - at - WIRE_HEADER_LEN;
    if (body > WIRE_BODY_MAX) {
        w->err = true;
        return;
    }
    wire_patch_u32(w, at + 8, (uint32_t)body);
}

void
wire_put_error(struct wire_writer *w, const char *word, const char *msg,
               size_t len)
{
    wire_put_str16(w, word, strlen(word));
    wire_put_str16(w, msg, len > UINT16_MAX ? UINT16_MAX : len);
}
