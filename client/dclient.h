/*
 * dclient — a small blocking C client for dispatchd's binary protocol
 * (docs/binary-protocol.md).  It links only the codec (binproto), never
 * the daemon.
 *
 * Two ways to talk, on the same connection:
 * - one call per opcode (dc_push, dc_next, ...): send the request, wait
 *   for its reply, return it decoded;
 * - pipelined: dc_q_* queue requests (nothing is sent; each returns its
 *   request id), dc_send writes everything queued in one write, and
 *   dc_recv returns the replies one by one, in request order.
 * Events (after dc_subscribe) arrive between replies; the client keeps
 * them aside and dc_event hands them out.
 *
 * Every call returns 0 when a reply came (look at its status: an error
 * status is still a reply) or -1 when the connection failed or the server
 * broke the protocol (dc_errstr says what; the client is then unusable).
 * A reply owns its memory until dc_reply_free; every string in it is
 * NUL-terminated.  A client is not thread-safe: one thread at a time.
 */
#ifndef DISPATCHD_DCLIENT_H
#define DISPATCHD_DCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire.h"

struct dc_client;

/* ---- decoded replies ------------------------------------------------ */

struct dc_attr {
    const char *key, *value;
    size_t key_len, value_len;
};

/* One field of an order, an audit entry or the stats. */
struct dc_field {
    int tag;          /* enum wire_tag (WIRE_TAG_STATS + i for stats) */
    int kind;         /* enum wire_kind */
    const char *name; /* "id", "lease_expires", a stats key; "" unknown */
    const char *s;    /* STR, LIST ("" otherwise) */
    size_t len;
    int64_t i;     /* INT */
    uint64_t u;    /* U64 */
    size_t nattrs; /* ATTRS */
    const struct dc_attr *attrs;
};

struct dc_record {
    size_t n;
    const struct dc_field *f;
};

struct dc_reply {
    uint8_t opcode;   /* of the request (WIRE_OP_EVENT for an event) */
    uint8_t status;   /* enum wire_status */
    uint32_t id;      /* the request id; 0 for an event */
    const char *word; /* errors: the code word, "NOTFOUND"; else "" */
    const char *msg;  /* errors: the message; else "" */
    /* NEXT and GET: 0 or 1 order; PEEK: orders; AUDIT: entries; STATS: 1 */
    size_t nrecs;
    const struct dc_record *recs;
    bool more;        /* PEEK, AUDIT: cut to fit one frame */
    int64_t value;    /* TOUCH: the new expiry; CLIENT_NAME: connection id */
    const char *text; /* EVENT: the JSON; CHECKPOINT: the path; else "" */
    size_t text_len;
    const unsigned char *body; /* the raw body */
    size_t body_len;
    void *mem_; /* private */
};

void dc_reply_free(struct dc_reply *r);
static inline bool
dc_is_error(const struct dc_reply *r)
{
    return wire_status_is_error(r->status);
}
/* The order of a NEXT or GET reply, or NULL (NIL, error). */
const struct dc_record *dc_order(const struct dc_reply *r);
/* A field by tag or by name, or NULL. */
const struct dc_field *dc_field_get(const struct dc_record *rec, int tag);
const struct dc_field *dc_field_find(const struct dc_record *rec,
                                     const char *name);
/* "name: value" lines, one per field, each after indent. */
void dc_fprint_record(FILE *out, const struct dc_record *rec,
                      const char *indent);
/* A one-line summary: "OK", "ALREADY", "NOTFOUND order X ...". */
const char *dc_status_line(const struct dc_reply *r, char *buf, size_t cap);

/* ---- connection ----------------------------------------------------- */

/* Connect to host:port (names resolved, IPv4 or IPv6).  NULL with err
   filled on failure. */
struct dc_client *dc_connect(const char *host, int port, char *err,
                             size_t errlen);
void dc_close(struct dc_client *c);
/* Fail reads and writes that wait longer than ms (0: wait forever, the
   default; a blocking NEXT may wait long). */
int dc_set_timeout(struct dc_client *c, int ms);
const char *dc_errstr(const struct dc_client *c);
int dc_fd(const struct dc_client *c);

/* ---- requests ------------------------------------------------------- */

struct dc_kv {
    const char *key, *value;
};

struct dc_push_args {
    const char *id;
    int cls;               /* enum wire_class */
    bool approved;         /* queue it at once */
    int64_t deadline;      /* epoch ms; 0: the class's default */
    const char *warehouse; /* NULL or "": "main" */
    const char *customer;  /* NULL: none */
    int source;            /* enum wire_source */
    int fulfil;            /* enum wire_fulfil */
    unsigned risk;         /* WIRE_RISK_* bits */
    size_t nattrs;
    const struct dc_kv *attrs;
};

struct dc_next_args {
    const char *warehouse;
    const char *picker; /* NULL: the client name */
    int64_t lease_ms;   /* 0: the daemon's default */
    int64_t block_ms;   /* -1: do not wait; 0: forever; else ms */
};

struct dc_outbound_args {
    const char *id;
    const char *operator_; /* required */
    int64_t at;            /* epoch ms; 0: now */
    const char *photo;     /* NULL: none */
    const char *raw;       /* the WMS message for the audit, or NULL */
    size_t raw_len;
};

/* Queue a request: returns its id, or 0 (nothing queued) when it cannot
   be encoded (a string too long for its length prefix, out of memory). */
uint32_t dc_q_ping(struct dc_client *c);
uint32_t dc_q_client_name(struct dc_client *c, const char *name);
uint32_t dc_q_auth(struct dc_client *c, const char *user, const char *pass);
uint32_t dc_q_push(struct dc_client *c, const struct dc_push_args *a);
uint32_t dc_q_approve(struct dc_client *c, const char *id);
uint32_t dc_q_hold(struct dc_client *c, const char *id, const char *reason);
uint32_t dc_q_cancel(struct dc_client *c, const char *id, const char *reason);
uint32_t dc_q_reprio(struct dc_client *c, const char *id, int cls,
                     int64_t deadline);
uint32_t dc_q_next(struct dc_client *c, const struct dc_next_args *a);
uint32_t dc_q_touch(struct dc_client *c, const char *id, uint64_t lease,
                    int64_t lease_ms);
uint32_t dc_q_release(struct dc_client *c, const char *id, uint64_t lease);
uint32_t dc_q_picked(struct dc_client *c, const char *id, uint64_t lease);
uint32_t dc_q_outbound(struct dc_client *c, const struct dc_outbound_args *a);
uint32_t dc_q_deliver(struct dc_client *c, const char *id, int64_t at,
                      const char *raw, size_t raw_len);
uint32_t dc_q_get(struct dc_client *c, const char *id);
uint32_t dc_q_peek(struct dc_client *c, const char *warehouse, unsigned count);
uint32_t dc_q_audit(struct dc_client *c, const char *id, uint32_t from_seq);
uint32_t dc_q_stats(struct dc_client *c, const char *warehouse);
uint32_t dc_q_checkpoint(struct dc_client *c, const char *name);
uint32_t dc_q_subscribe(struct dc_client *c);
uint32_t dc_q_unsubscribe(struct dc_client *c);
/* Any opcode, flags and body (tests: unknown opcodes, bad bodies). */
uint32_t dc_q_raw(struct dc_client *c, uint8_t opcode, uint8_t flags,
                  const void *body, size_t len);

/* Write everything queued, in one write when the socket takes it. */
int dc_send(struct dc_client *c);
/* The next reply, in request order (sends what is queued first). */
int dc_recv(struct dc_client *c, struct dc_reply *r);
/* The next event: 1 and r filled, 0 when none came within timeout_ms
   (-1: wait forever), -1 on failure. */
int dc_event(struct dc_client *c, struct dc_reply *r, int timeout_ms);
/* Send bytes as they are, after what is queued (tests: broken frames).
   The replies they cause are not tracked: read them with dc_recv_any. */
int dc_write_raw(struct dc_client *c, const void *p, size_t n);
/* The next reply whatever its id (after dc_write_raw); one whose id is
   the next tracked one counts as that reply. */
int dc_recv_any(struct dc_client *c, struct dc_reply *r);
/* Replies queued or sent and not yet received. */
size_t dc_pending(const struct dc_client *c);

/* ---- one call per opcode: queue, send, wait for the reply ----------- */

int dc_ping(struct dc_client *c, struct dc_reply *r);
int dc_client_name(struct dc_client *c, const char *name, struct dc_reply *r);
int dc_auth(struct dc_client *c, const char *user, const char *pass,
            struct dc_reply *r);
int dc_push(struct dc_client *c, const struct dc_push_args *a,
            struct dc_reply *r);
int dc_approve(struct dc_client *c, const char *id, struct dc_reply *r);
int dc_hold(struct dc_client *c, const char *id, const char *reason,
            struct dc_reply *r);
int dc_cancel(struct dc_client *c, const char *id, const char *reason,
              struct dc_reply *r);
int dc_reprio(struct dc_client *c, const char *id, int cls, int64_t deadline,
              struct dc_reply *r);
int dc_next(struct dc_client *c, const struct dc_next_args *a,
            struct dc_reply *r);
int dc_touch(struct dc_client *c, const char *id, uint64_t lease,
             int64_t lease_ms, struct dc_reply *r);
int dc_release(struct dc_client *c, const char *id, uint64_t lease,
               struct dc_reply *r);
/* EVENTS: logged events after seq `after` (count 0 = 100; block_ms -1: do
   not wait, 0: forever).  Walk the reply with dc_events_next. */
uint32_t dc_q_events(struct dc_client *c, uint64_t after, uint16_t count,
                     int64_t block_ms);
int dc_events(struct dc_client *c, uint64_t after, uint16_t count,
              int64_t block_ms, struct dc_reply *r);
/* The next event of an EVENTS reply: *pos starts at 0; false at the end
   (or on a malformed body). */
bool dc_events_next(const struct dc_reply *r, size_t *pos, uint64_t *seq,
                    const char **json, size_t *len);
/* PICKED: the lease holder reports the order picked (waits for the WMS). */
int dc_picked(struct dc_client *c, const char *id, uint64_t lease,
              struct dc_reply *r);
int dc_outbound(struct dc_client *c, const struct dc_outbound_args *a,
                struct dc_reply *r);
int dc_deliver(struct dc_client *c, const char *id, int64_t at, const char *raw,
               size_t raw_len, struct dc_reply *r);
int dc_get(struct dc_client *c, const char *id, struct dc_reply *r);
int dc_peek(struct dc_client *c, const char *warehouse, unsigned count,
            struct dc_reply *r);
int dc_audit(struct dc_client *c, const char *id, uint32_t from_seq,
             struct dc_reply *r);
int dc_stats(struct dc_client *c, const char *warehouse, struct dc_reply *r);
int dc_checkpoint(struct dc_client *c, const char *name, struct dc_reply *r);
int dc_subscribe(struct dc_client *c, struct dc_reply *r);
int dc_unsubscribe(struct dc_client *c, struct dc_reply *r);

/* Decode one frame (header parsed into h, body[0..h->len)) into r: what
   dc_recv does, exposed for tests.  Returns 0, or -1 with err filled when
   the body does not match its opcode and status. */
int dc_decode(const struct wire_header *h, const void *body, struct dc_reply *r,
              char *err, size_t errlen);

#endif
