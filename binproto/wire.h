/*
 * wire — the codec of dispatchd's binary protocol (docs/binary-protocol.md):
 * the 12-byte frame header, the opcode, status and field-tag numbers, a
 * bounds-checked reader and a growable writer for bodies.
 *
 * Pure code: no sockets, no libevent, no daemon.  The daemon's front end
 * (dispatcher/proto_bin.c) and the client library (client/dclient.c) both
 * link it, so the two sides of the wire share one definition.
 *
 * Every integer on the wire is little-endian.  A reader never reads past
 * the end it was given: an overrun sets r->err, the value read is 0 (or
 * NULL), and every later read fails too, so a parser may read a whole body
 * and check err once.  A writer that cannot grow sets w->err and ignores
 * later writes, so a builder may write a whole body and check err once.
 */
#ifndef DISPATCHD_WIRE_H
#define DISPATCHD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0xD5
#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 12
#define WIRE_BODY_MAX (1u << 20) /* bytes of a body, either direction */

/* Opcodes (header byte 2).  Grouped by who uses them; never renumber. */
enum wire_op {
    /* the connection */
    WIRE_OP_PING = 0x00,
    WIRE_OP_CLIENT_NAME = 0x01,
    WIRE_OP_AUTH = 0x02, /* reserved: refused until users exist */
    /* ERP */
    WIRE_OP_PUSH = 0x10,
    WIRE_OP_APPROVE = 0x11,
    WIRE_OP_HOLD = 0x12,
    WIRE_OP_CANCEL = 0x13,
    WIRE_OP_REPRIO = 0x14,
    /* WMS */
    WIRE_OP_NEXT = 0x20,
    WIRE_OP_TOUCH = 0x21,
    WIRE_OP_RELEASE = 0x22,
    WIRE_OP_OUTBOUND = 0x23,
    WIRE_OP_DELIVER = 0x24,
    WIRE_OP_PICKED = 0x25,
    /* readers */
    WIRE_OP_GET = 0x30,
    WIRE_OP_PEEK = 0x31,
    WIRE_OP_AUDIT = 0x32,
    WIRE_OP_STATS = 0x33,
    /* operations */
    WIRE_OP_CHECKPOINT = 0x40,
    WIRE_OP_SUBSCRIBE = 0x41,
    WIRE_OP_UNSUBSCRIBE = 0x42,
    WIRE_OP_EVENTS = 0x43, /* replay the event log */
    /* server to client only, request id 0 */
    WIRE_OP_EVENT = 0x80,   /* body: the event's JSON object */
    WIRE_OP_CLOSING = 0x81, /* an error body: why the server closes */
};

/* Reply statuses (header byte 3).  Below 0x10 a success, from 0x10 on an
   error whose body is (str16 word, str16 message). */
enum wire_status {
    WIRE_ST_OK = 0x00,
    WIRE_ST_ALREADY = 0x01, /* an idempotent repeat: nothing changed */
    WIRE_ST_NIL = 0x02,     /* nothing to return (NEXT) */
    WIRE_ST_NOTFOUND = 0x10,
    WIRE_ST_BADSTATE = 0x11,
    WIRE_ST_BADARG = 0x12,
    WIRE_ST_EXISTS = 0x13,
    WIRE_ST_LEASE = 0x14,
    WIRE_ST_TOOBIG = 0x15,
    WIRE_ST_BUSY = 0x16,
    WIRE_ST_READONLY = 0x17,
    WIRE_ST_NOPERM = 0x18,
    WIRE_ST_ERR = 0x19,
    WIRE_ST_BADOP = 0x1a,     /* unknown opcode (word ERR) */
    WIRE_ST_PROTO = 0x1b,     /* framing violation: the server closes */
    WIRE_ST_NOCREDS = 0x1c,   /* AUTH with no credentials configured (ERR) */
    WIRE_ST_NOAUTH = 0x1d,    /* AUTH first (users are configured) */
    WIRE_ST_WRONGPASS = 0x1e, /* AUTH with a wrong user/secret pair */
};

static inline bool
wire_status_is_error(int st)
{
    return st >= 0x10;
}

/* Field kinds (the byte after a field's tag).  KEYED: a str16 key follows
   the kind byte, for fields whose tag has no fixed name (the stats) or
   whose name differs from wire_tag_name()'s. */
enum wire_kind {
    WIRE_KIND_STR = 0,   /* u32 length + bytes */
    WIRE_KIND_INT = 1,   /* i64 */
    WIRE_KIND_U64 = 2,   /* u64 */
    WIRE_KIND_LIST = 3,  /* u32 length + comma-separated words */
    WIRE_KIND_ATTRS = 4, /* u16 n + n x (u16 klen, key, u32 vlen, value) */
    WIRE_KIND_COUNT,
    WIRE_KIND_KEYED = 0x80,
};

/* Field tags: the numbers of dispatcher/view.h (enum view_tag), which
   proto_bin.c checks at compile time.  Never renumber; add at the end. */
enum wire_tag {
    WIRE_TAG_ID = 1,
    WIRE_TAG_CLASS = 2,
    WIRE_TAG_EFFECTIVE_CLASS = 3,
    WIRE_TAG_STATE = 4,
    WIRE_TAG_WAREHOUSE = 5,
    WIRE_TAG_CUSTOMER = 6,
    WIRE_TAG_SOURCE = 7,
    WIRE_TAG_FULFIL = 8,
    WIRE_TAG_RISK = 9,
    WIRE_TAG_DEADLINE = 10,
    WIRE_TAG_DEADLINE_ISO = 11,
    WIRE_TAG_CREATED = 12,
    WIRE_TAG_CREATED_ISO = 13,
    WIRE_TAG_UPDATED = 14,
    WIRE_TAG_UPDATED_ISO = 15,
    WIRE_TAG_SEQ = 16,
    WIRE_TAG_ATTRS = 17,
    WIRE_TAG_POSITION = 18,
    WIRE_TAG_ETA_MS = 19,
    WIRE_TAG_ETA = 20,
    WIRE_TAG_ETA_ISO = 21,
    WIRE_TAG_LEASE = 22,
    WIRE_TAG_LEASE_EXPIRES = 23,
    WIRE_TAG_LEASE_EXPIRES_ISO = 24,
    WIRE_TAG_PICKER = 25,
    WIRE_TAG_PICKED_AT = 26,
    WIRE_TAG_PICKED_AT_ISO = 27,
    WIRE_TAG_OUTBOUND_AT = 28,
    WIRE_TAG_OUTBOUND_AT_ISO = 29,
    WIRE_TAG_OPERATOR = 30,
    WIRE_TAG_OUTBOUND_LEASED = 31,
    WIRE_TAG_DELIVERED_AT = 32,
    WIRE_TAG_DELIVERED_AT_ISO = 33,
    /* audit entries */
    WIRE_TAG_A_SEQ = 64,
    WIRE_TAG_A_AT = 65,
    WIRE_TAG_A_AT_ISO = 66,
    WIRE_TAG_A_ACTOR = 67,
    WIRE_TAG_A_ACTION = 68,
    WIRE_TAG_A_FROM = 69,
    WIRE_TAG_A_TO = 70,
    WIRE_TAG_A_RAW = 71,
    WIRE_TAG_A_NOTE = 72,
    /* stats: positional, always sent KEYED */
    WIRE_TAG_STATS = 128,
};

/* Enum values in request bodies: the numbers of queue/order.h, which
   proto_bin.c checks at compile time.  Orders in replies carry the words
   ("rush4h"), not these numbers. */
enum wire_class {
    WIRE_CLASS_ASN = 0,
    WIRE_CLASS_RUSH4H = 1,
    WIRE_CLASS_RUSH24H = 2,
    WIRE_CLASS_NORMAL = 3,
};
enum wire_source {
    WIRE_SOURCE_DEALER = 0,
    WIRE_SOURCE_ASN = 1,
    WIRE_SOURCE_ECOMMERCE = 2,
    WIRE_SOURCE_AFTERSALES = 3,
};
enum wire_fulfil {
    WIRE_FULFIL_STOCK = 0,
    WIRE_FULFIL_TO_DRAWING = 1,
    WIRE_FULFIL_VMI = 2,
    WIRE_FULFIL_JIT = 3,
};
#define WIRE_RISK_NEW_CUSTOMER 0x01
#define WIRE_RISK_HIGH_RETURNS 0x02
#define WIRE_RISK_OVERDUE_90D 0x04

/* Bounds the front end enforces on request bodies. */
#define WIRE_PUSH_APPROVED 0x01 /* PUSH flags: queue it at once */
#define WIRE_NAME_MAX 64        /* warehouse, customer, picker, operator */
#define WIRE_ID_MAX 64          /* order id */
#define WIRE_PHOTO_MAX 1024     /* OUTBOUND photo reference */
#define WIRE_PEEK_DEFAULT 10
#define WIRE_PEEK_MAX 1000

/* ---- the header ----------------------------------------------------- */

/* One frame header.  In a request byte 3 is `flags` (must be 0 in version
   1); in a reply it is the status: the same byte, named `status` here. */
struct wire_header {
    uint8_t version;
    uint8_t opcode;
    uint8_t status; /* request: flags */
    uint32_t id;    /* request id, echoed in the reply; 0 for events */
    uint32_t len;   /* body bytes that follow */
};

enum wire_parse {
    WIRE_PARSE_OK,
    WIRE_PARSE_INCOMPLETE, /* fewer than WIRE_HEADER_LEN bytes */
    WIRE_PARSE_BAD_MAGIC,
    WIRE_PARSE_BAD_VERSION,
    WIRE_PARSE_TOO_BIG, /* len > WIRE_BODY_MAX */
};

/* Parse the header at buf[0..len).  A bad magic or version is reported as
   soon as its byte is there, before the header is complete; the length
   only once it is.  h is filled with whatever was read (zero for what was
   not), so an error reply can echo the opcode and id when they arrived. */
int wire_header_parse(const void *buf, size_t len, struct wire_header *h);
/* Write h as 12 bytes (magic, then h's fields). */
void wire_header_encode(void *out, const struct wire_header *h);
/* "incomplete", "bad magic", ... */
const char *wire_parse_name(int rc);

/* "PING", "PUSH", ...; NULL for a number that is not an opcode. */
const char *wire_op_name(int op);
/* The code word of a status, as RESP sends it: "OK", "ALREADY", "NIL",
   "NOTFOUND", ..., "ERR" (BADOP, PROTO and NOCREDS are "ERR" too); NULL
   for a number that is not a status. */
const char *wire_status_word(int st);
/* "OK", ..., "BADOP", "PROTO", "NOCREDS": the status's own name. */
const char *wire_status_name(int st);
/* The field name of a tag ("id", "lease_expires_iso", "seq" for an audit
   entry's sequence); NULL for stats tags and tags this build does not
   know. */
const char *wire_tag_name(int tag);

/* ---- reading a body ------------------------------------------------- */

struct wire_reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
    bool err; /* a read went past len: every later read fails too */
};

void wire_reader_init(struct wire_reader *r, const void *p, size_t len);
uint8_t wire_get_u8(struct wire_reader *r);
uint16_t wire_get_u16(struct wire_reader *r);
uint32_t wire_get_u32(struct wire_reader *r);
uint64_t wire_get_u64(struct wire_reader *r);
int64_t wire_get_i64(struct wire_reader *r);
/* n bytes in place, or NULL (err set) when fewer remain; a zero-length
   read returns a valid pointer. */
const char *wire_get_bytes(struct wire_reader *r, size_t n);
/* A length-prefixed string (u16 or u32 length); *len is 0 on error. */
const char *wire_get_str16(struct wire_reader *r, size_t *len);
const char *wire_get_str32(struct wire_reader *r, size_t *len);

static inline size_t
wire_remaining(const struct wire_reader *r)
{
    return r->err ? 0 : r->len - r->pos;
}
/* The body was read exactly: no overrun and no trailing bytes. */
static inline bool
wire_reader_done(const struct wire_reader *r)
{
    return !r->err && r->pos == r->len;
}

/* One field of a field list (an order, an audit entry, the stats). */
struct wire_field {
    uint8_t tag;
    uint8_t kind;    /* enum wire_kind, without KEYED */
    const char *key; /* the KEYED key, or NULL */
    size_t key_len;
    const char *s; /* STR, LIST */
    size_t len;
    int64_t i;         /* INT */
    uint64_t u;        /* U64 */
    uint16_t nattrs;   /* ATTRS: walk with wire_attr_next */
    const char *attrs; /* the pairs, attrs_len bytes */
    size_t attrs_len;
};

/* Read one field.  Returns 0, or -1 with r->err set on an overrun, an
   unknown kind, or ATTRS pairs that do not fit their own length. */
int wire_get_field(struct wire_reader *r, struct wire_field *f);
/* Iterate a field's attributes: *pos starts at 0.  Returns true with the
   next pair, false at the end. */
bool wire_attr_next(const struct wire_field *f, size_t *pos, const char **k,
                    size_t *klen, const char **v, size_t *vlen);

/* ---- writing a body ------------------------------------------------- */

struct wire_writer {
    char *buf; /* malloc'd (by realloc_fn), owned by the writer */
    size_t len;
    size_t cap;
    bool err; /* could not grow: later writes are ignored */
    /* realloc, unless set (tests inject failures here); called with n 0
       to free. */
    void *(*realloc_fn)(void *p, size_t n);
};

void wire_writer_init(struct wire_writer *w);
/* Free the buffer; w is initialised again (empty, no error). */
void wire_writer_free(struct wire_writer *w);
/* Empty w and clear err; keeps the buffer. */
void wire_writer_reset(struct wire_writer *w);
/* Room for n more bytes; false (err set) when it cannot grow. */
bool wire_reserve(struct wire_writer *w, size_t n);

void wire_put_u8(struct wire_writer *w, uint8_t v);
void wire_put_u16(struct wire_writer *w, uint16_t v);
void wire_put_u32(struct wire_writer *w, uint32_t v);
void wire_put_u64(struct wire_writer *w, uint64_t v);
void wire_put_i64(struct wire_writer *w, int64_t v);
void wire_put_bytes(struct wire_writer *w, const void *p, size_t n);
/* Length-prefixed, all or nothing; a string over the prefix's range sets
   err. */
void wire_put_str16(struct wire_writer *w, const void *s, size_t n);
void wire_put_str32(struct wire_writer *w, const void *s, size_t n);
/* Overwrite 2 or 4 bytes written earlier at off (counts known late). */
void wire_patch_u16(struct wire_writer *w, size_t off, uint16_t v);
void wire_patch_u32(struct wire_writer *w, size_t off, uint32_t v);

/* Fields: key NULL for a tag with a fixed name, else it is sent KEYED. */
void wire_put_field_str(struct wire_writer *w, uint8_t tag, int kind,
                        const char *key, const char *s, size_t len);
void wire_put_field_int(struct wire_writer *w, uint8_t tag, const char *key,
                        int64_t v);
void wire_put_field_u64(struct wire_writer *w, uint8_t tag, const char *key,
                        uint64_t v);
/* ATTRS: begin writes the head and returns where the count goes; add each
   pair; end patches the count. */
size_t wire_put_attrs_begin(struct wire_writer *w, uint8_t tag,
                            const char *key);
void wire_put_attr(struct wire_writer *w, const char *k, size_t klen,
                   const char *v, size_t vlen);
void wire_put_attrs_end(struct wire_writer *w, size_t at, uint16_t n);

/* A whole frame: begin appends a header with length 0 and returns its
   offset; end sets the length to what was written after it.  A body over
   WIRE_BODY_MAX sets err. */
size_t wire_frame_begin(struct wire_writer *w, uint8_t opcode, uint8_t status,
                        uint32_t id);
void wire_frame_end(struct wire_writer *w, size_t at);
/* An error body: the code word ("NOTFOUND") and a message. */
void wire_put_error(struct wire_writer *w, const char *word, const char *msg,
                    size_t len);

#endif
