/*
 * The binary protocol client.  Requests are encoded straight into one
 * output buffer (so a pipeline is one write); replies are read into one
 * input buffer and decoded into a per-reply arena, so a reply is freed
 * with one call however many orders and fields it holds.
 *
 * Request ids count up from 1 (0 is the server's, for events).  Replies
 * come back in request order, so the id of the next reply is always known
 * and checked: a reply out of order is a protocol failure.
 *
 * Past the usual 800 lines on purpose: every opcode has an encoder and a
 * blocking wrapper (about 20 lines a pair), and splitting them from the
 * decoder would need a private header for nothing else.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getaddrinfo, SOCK_CLOEXEC outside this build too */
#endif
#include "dclient.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A frame read but not yet handed out (events while waiting for a reply,
   replies while waiting for an event). */
struct kept {
    struct kept *next;
    struct wire_header h;
    unsigned char body[];
};

struct dc_client {
    int fd;
    bool broken;
    char err[256];
    struct wire_writer out; /* queued frames */
    unsigned char *in;      /* received, from in_off to in_len unparsed */
    size_t in_off, in_len, in_cap;
    uint32_t next_id;   /* the id of the next request */
    uint32_t expect_id; /* the id of the next reply */
    size_t pending;     /* requests without their reply yet */
    struct kept *replies, *replies_tail;
    struct kept *events, *events_tail;
};

static uint32_t
id_after(uint32_t id)
{
    return id == UINT32_MAX ? 1 : id + 1;
}

static int fail(struct dc_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct dc_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->broken = true;
    return -1;
}

/* ---- the arena of a reply ------------------------------------------- */

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

static void *
arena_alloc(struct dc_reply *r, size_t n)
{
    struct chunk *ch = r->mem_;
    size_t a = sizeof(max_align_t);
    if (n > SIZE_MAX - a)
        return NULL;
    n = (n + a - 1) / a * a;
    if (!ch || ch->cap - ch->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        if (cap > SIZE_MAX - sizeof *ch)
            return NULL;
        struct chunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->next = ch;
        nc->used = 0;
        nc->cap = cap;
        r->mem_ = ch = nc;
    }
    void *p = (char *)ch->data + ch->used;
    ch->used += n;
    return p;
}

static const char *
arena_str(struct dc_reply *r, const char *s, size_t len)
{
    char *p = arena_alloc(r, len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void
dc_reply_free(struct dc_reply *r)
{
    struct chunk *ch = r->mem_;
    while (ch) {
        struct chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    memset(r, 0, sizeof *r);
}

/* ---- decoding ------------------------------------------------------- */

static int
decode_record(struct wire_reader *rd, struct dc_reply *r, struct dc_record *rec)
{
    uint16_t n = wire_get_u16(rd);
    /* A field takes at least 2 bytes: a count past that lies. */
    if (rd->err || n > wire_remaining(rd) / 2)
        return -1;
    struct dc_field *f = arena_alloc(r, (n ? n : 1) * sizeof *f);
    if (!f)
        return -2;
    memset(f, 0, (n ? n : 1) * sizeof *f);
    rec->n = n;
    rec->f = f;
    for (uint16_t i = 0; i < n; i++) {
        struct wire_field wf;
        if (wire_get_field(rd, &wf))
            return -1;
        f[i].tag = wf.tag;
        f[i].kind = wf.kind;
        const char *name = wf.key ? NULL : wire_tag_name(wf.tag);
        f[i].name = name ? name : arena_str(r, wf.key, wf.key_len);
        f[i].s = arena_str(r, wf.s, wf.len);
        f[i].len = wf.len;
        f[i].i = wf.i;
        f[i].u = wf.u;
        if (!f[i].name || !f[i].s)
            return -2;
        if (wf.kind != WIRE_KIND_ATTRS)
            continue;
        struct dc_attr *at =
            arena_alloc(r, (wf.nattrs ? wf.nattrs : 1) * sizeof *at);
        if (!at)
            return -2;
        size_t pos = 0, k = 0, kl, vl;
        const char *ks, *vs;
        while (k < wf.nattrs && wire_attr_next(&wf, &pos, &ks, &kl, &vs, &vl)) {
            at[k].key = arena_str(r, ks, kl);
            at[k].value = arena_str(r, vs, vl);
            at[k].key_len = kl;
            at[k].value_len = vl;
            if (!at[k].key || !at[k].value)
                return -2;
            k++;
        }
        f[i].nattrs = k;
        f[i].attrs = at;
    }
    return 0;
}

static int
decode_records(struct wire_reader *rd, struct dc_reply *r, size_t n)
{
    struct dc_record *recs = arena_alloc(r, (n ? n : 1) * sizeof *recs);
    if (!recs)
        return -2;
    r->recs = recs;
    for (size_t i = 0; i < n; i++) {
        int rc = decode_record(rd, r, &recs[i]);
        if (rc)
            return rc;
        r->nrecs = i + 1;
    }
    return 0;
}

static int
decode_body(const struct wire_header *h, struct wire_reader *rd,
            struct dc_reply *r)
{
    size_t n;
    const char *s;

    if (h->opcode == WIRE_OP_EVENT && h->status == WIRE_ST_OK) {
        s = wire_get_bytes(rd, rd->len);
        r->text = arena_str(r, s, rd->len);
        r->text_len = rd->len;
        return r->text ? 0 : -2;
    }
    if (wire_status_is_error(h->status)) {
        size_t wl, ml;
        const char *w = wire_get_str16(rd, &wl);
        const char *m = wire_get_str16(rd, &ml);
        if (rd->err)
            return -1;
        r->word = arena_str(r, w, wl);
        r->msg = arena_str(r, m, ml);
        return r->word && r->msg ? 0 : -2;
    }
    if (h->status == WIRE_ST_NIL)
        return 0;
    switch (h->opcode) {
    case WIRE_OP_CLIENT_NAME:
        r->value = (int64_t)wire_get_u64(rd);
        return 0;
    case WIRE_OP_TOUCH:
        if (h->status == WIRE_ST_OK)
            r->value = wire_get_i64(rd);
        return 0;
    case WIRE_OP_NEXT:
    case WIRE_OP_GET:
    case WIRE_OP_STATS:
        return h->len ? decode_records(rd, r, 1) : 0;
    case WIRE_OP_PEEK:
        n = wire_get_u16(rd);
        r->more = wire_get_u8(rd) != 0;
        if (rd->err || n > wire_remaining(rd) / 2)
            return -1;
        return decode_records(rd, r, n);
    case WIRE_OP_AUDIT:
        n = wire_get_u32(rd);
        r->more = wire_get_u8(rd) != 0;
        if (rd->err || n > wire_remaining(rd) / 2)
            return -1;
        return decode_records(rd, r, n);
    case WIRE_OP_EVENTS:
        /* Walked in place by dc_events_next. */
        rd->pos = rd->len;
        return 0;
    case WIRE_OP_CHECKPOINT:
        s = wire_get_str16(rd, &n);
        if (rd->err)
            return -1;
        r->text = arena_str(r, s, n);
        r->text_len = n;
        return r->text ? 0 : -2;
    }
    if (!wire_op_name(h->opcode))
        wire_get_bytes(rd, wire_remaining(rd)); /* newer than us: raw only */
    return 0; /* the other opcodes: an empty body */
}

int
dc_decode(const struct wire_header *h, const void *body, struct dc_reply *r,
          char *err, size_t errlen)
{
    struct wire_reader rd;

    memset(r, 0, sizeof *r);
    r->opcode = h->opcode;
    r->status = h->status;
    r->id = h->id;
    r->word = r->msg = r->text = "";
    unsigned char *copy = arena_alloc(r, h->len ? h->len : 1);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        dc_reply_free(r);
        return -1;
    }
    if (h->len)
        memcpy(copy, body, h->len);
    r->body = copy;
    r->body_len = h->len;
    wire_reader_init(&rd, copy, h->len);
    int rc = decode_body(h, &rd, r);
    if (rc == 0 && !wire_reader_done(&rd))
        rc = -1;
    if (rc) {
        const char *op = wire_op_name(h->opcode);
        if (rc == -2)
            snprintf(err, errlen, "out of memory decoding a reply");
        else
            snprintf(err, errlen,
                     "malformed %s reply (status 0x%02x, %" PRIu32
                     " bytes): %s",
                     op ? op : "?", h->status, h->len,
                     rd.err ? "truncated" : "trailing bytes");
        dc_reply_free(r);
        return -1;
    }
    return 0;
}

/* ---- reading the socket --------------------------------------------- */

/* Read at least once; -1 on EOF or error.  timeout_ms -1: block. */
static int
fill(struct dc_client *c, int timeout_ms)
{
    if (c->in_off > 0 && c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (c->in_cap - c->in_len < 4096) {
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        if (c->in_cap - c->in_len < 4096) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 65536;
            unsigned char *p = realloc(c->in, cap);
            if (!p)
                return fail(c, "out of memory reading");
            c->in = p;
            c->in_cap = cap;
        }
    }
    if (timeout_ms >= 0) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int n;
        do
            n = poll(&pfd, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return fail(c, "poll: %s", strerror(errno));
        if (n == 0)
            return 1; /* timeout, not a failure */
    }
    ssize_t n;
    do
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return fail(c, "connection closed by the server");
    if (n < 0)
        return fail(c, "read: %s", strerror(errno));
    c->in_len += (size_t)n;
    return 0;
}

/* The next whole frame off the socket into a kept record.  Returns 0, 1
   on timeout (only when timeout_ms >= 0), -1 on failure. */
static int
read_frame(struct dc_client *c, struct kept **out, int timeout_ms)
{
    struct wire_header h;

    if (c->broken)
        return -1;
    for (;;) {
        size_t have = c->in_len - c->in_off;
        int rc = wire_header_parse(c->in + c->in_off, have, &h);
        if (rc == WIRE_PARSE_OK && have - WIRE_HEADER_LEN >= h.len)
            break;
        if (rc != WIRE_PARSE_OK && rc != WIRE_PARSE_INCOMPLETE)
            return fail(c, "reply header: %s", wire_parse_name(rc));
        int f = fill(c, timeout_ms);
        if (f)
            return f;
    }
    struct kept *k = malloc(sizeof *k + h.len);
    if (!k)
        return fail(c, "out of memory reading a reply");
    k->next = NULL;
    k->h = h;
    memcpy(k->body, c->in + c->in_off + WIRE_HEADER_LEN, h.len);
    c->in_off += WIRE_HEADER_LEN + h.len;
    *out = k;
    return 0;
}

static void
keep(struct kept **head, struct kept **tail, struct kept *k)
{
    if (*tail)
        (*tail)->next = k;
    else
        *head = k;
    *tail = k;
}

static struct kept *
unkeep(struct kept **head, struct kept **tail)
{
    struct kept *k = *head;
    if (k) {
        *head = k->next;
        if (!*head)
            *tail = NULL;
    }
    return k;
}

static bool
is_server_frame(const struct kept *k)
{
    return k->h.id == 0 &&
           (k->h.opcode == WIRE_OP_EVENT || k->h.opcode == WIRE_OP_CLOSING);
}

/* Decode k into r and free it. */
static int
hand_out(struct dc_client *c, struct kept *k, struct dc_reply *r)
{
    char err[200];
    int rc = dc_decode(&k->h, k->body, r, err, sizeof err);
    free(k);
    if (rc)
        return fail(c, "%s", err);
    return 0;
}

/* A CLOSING frame: the server says why it is closing. */
static int
closing(struct dc_client *c, struct kept *k)
{
    struct dc_reply r;
    char err[200];
    if (dc_decode(&k->h, k->body, &r, err, sizeof err) == 0) {
        fail(c, "server closing the connection: %s %s", r.word, r.msg);
        dc_reply_free(&r);
    } else {
        fail(c, "server closing the connection");
    }
    free(k);
    return -1;
}

static int
recv_reply(struct dc_client *c, struct dc_reply *r, bool any)
{
    memset(r, 0, sizeof *r);
    if (!any && c->pending == 0)
        return fail(c, "no reply is pending");
    if (dc_send(c))
        return -1;
    struct kept *k = unkeep(&c->replies, &c->replies_tail);
    while (!k) {
        if (read_frame(c, &k, -1))
            return -1;
        if (is_server_frame(k) && k->h.opcode == WIRE_OP_CLOSING)
            return closing(c, k);
        if (is_server_frame(k)) {
            keep(&c->events, &c->events_tail, k);
            k = NULL;
        }
    }
    if (any && !(c->pending > 0 && k->h.id == c->expect_id))
        return hand_out(c, k, r); /* a reply to raw bytes */
    {
        if (k->h.id != c->expect_id) {
            uint32_t got = k->h.id;
            free(k);
            return fail(c, "reply id %" PRIu32 ", expected %" PRIu32, got,
                        c->expect_id);
        }
        c->expect_id = id_after(c->expect_id);
        c->pending--;
    }
    return hand_out(c, k, r);
}

int
dc_recv(struct dc_client *c, struct dc_reply *r)
{
    return recv_reply(c, r, false);
}

int
dc_recv_any(struct dc_client *c, struct dc_reply *r)
{
    return recv_reply(c, r, true);
}

int
dc_event(struct dc_client *c, struct dc_reply *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    if (dc_send(c))
        return -1;
    struct kept *k = unkeep(&c->events, &c->events_tail);
    while (!k) {
        int rc = read_frame(c, &k, timeout_ms);
        if (rc)
            return rc == 1 ? 0 : -1;
        if (is_server_frame(k) && k->h.opcode == WIRE_OP_CLOSING)
            return closing(c, k);
        if (!is_server_frame(k)) {
            keep(&c->replies, &c->replies_tail, k);
            k = NULL;
        }
    }
    return hand_out(c, k, r) ? -1 : 1;
}

size_t
dc_pending(const struct dc_client *c)
{
    return c->pending;
}

/* ---- connection ----------------------------------------------------- */

struct dc_client *
dc_connect(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res, *ai;
    char ports[16];
    int fd = -1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ports, sizeof ports, "%d", port);
    rc = getaddrinfo(host, ports, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return NULL;
    }
    int saved = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "connect %s:%d: %s", host, port, strerror(saved));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct dc_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = fd;
    c->next_id = c->expect_id = 1;
    wire_writer_init(&c->out);
    return c;
}

void
dc_close(struct dc_client *c)
{
    if (!c)
        return;
    close(c->fd);
    wire_writer_free(&c->out);
    free(c->in);
    struct kept *k;
    while ((k = unkeep(&c->replies, &c->replies_tail)))
        free(k);
    while ((k = unkeep(&c->events, &c->events_tail)))
        free(k);
    free(c);
}

int
dc_set_timeout(struct dc_client *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv)) {
        snprintf(c->err, sizeof c->err, "setsockopt: %s", strerror(errno));
        return -1;
    }
    return 0;
}

const char *
dc_errstr(const struct dc_client *c)
{
    return c->err;
}

int
dc_fd(const struct dc_client *c)
{
    return c->fd;
}

static int
write_all(struct dc_client *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return fail(c, "write: %s", strerror(errno));
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

int
dc_send(struct dc_client *c)
{
    if (c->broken)
        return -1;
    if (c->out.len == 0)
        return 0;
    int rc = write_all(c, c->out.buf, c->out.len);
    wire_writer_reset(&c->out);
    return rc;
}

int
dc_write_raw(struct dc_client *c, const void *p, size_t n)
{
    if (dc_send(c))
        return -1;
    return write_all(c, p, n);
}

/* ---- requests ------------------------------------------------------- */

static const char *
nz(const char *s)
{
    return s ? s : "";
}

/* Start a request frame; end_request gives it its id or rolls it back. */
static size_t
begin_request(struct dc_client *c, uint8_t opcode, uint8_t flags)
{
    return wire_frame_begin(&c->out, opcode, flags, c->next_id);
}

static uint32_t
end_request(struct dc_client *c, size_t at)
{
    wire_frame_end(&c->out, at);
    if (c->out.err || c->broken) {
        c->out.len = at; /* roll back this frame only */
        c->out.err = false;
        snprintf(c->err, sizeof c->err,
                 "request cannot be encoded (too long, or out of memory)");
        return 0;
    }
    uint32_t id = c->next_id;
    c->next_id = id_after(id);
    c->pending++;
    return id;
}

static void
put_s16(struct dc_client *c, const char *s)
{
    wire_put_str16(&c->out, nz(s), strlen(nz(s)));
}

uint32_t
dc_q_raw(struct dc_client *c, uint8_t opcode, uint8_t flags, const void *body,
         size_t len)
{
    size_t at = begin_request(c, opcode, flags);
    wire_put_bytes(&c->out, body, len);
    return end_request(c, at);
}

static uint32_t
q_empty(struct dc_client *c, uint8_t opcode)
{
    return end_request(c, begin_request(c, opcode, 0));
}

static uint32_t
q_id(struct dc_client *c, uint8_t opcode, const char *id)
{
    size_t at = begin_request(c, opcode, 0);
    put_s16(c, id);
    return end_request(c, at);
}

uint32_t
dc_q_ping(struct dc_client *c)
{
    return q_empty(c, WIRE_OP_PING);
}

uint32_t
dc_q_client_name(struct dc_client *c, const char *name)
{
    return q_id(c, WIRE_OP_CLIENT_NAME, name);
}

uint32_t
dc_q_auth(struct dc_client *c, const char *user, const char *pass)
{
    size_t at = begin_request(c, WIRE_OP_AUTH, 0);
    put_s16(c, user);
    put_s16(c, pass);
    return end_request(c, at);
}

uint32_t
dc_q_push(struct dc_client *c, const struct dc_push_args *a)
{
    struct wire_writer *w = &c->out;
    size_t at = begin_request(c, WIRE_OP_PUSH, 0);
    put_s16(c, a->id);
    wire_put_u8(w, (uint8_t)a->cls);
    wire_put_u8(w, a->approved ? WIRE_PUSH_APPROVED : 0);
    wire_put_i64(w, a->deadline);
    put_s16(c, a->warehouse);
    put_s16(c, a->customer);
    wire_put_u8(w, (uint8_t)a->source);
    wire_put_u8(w, (uint8_t)a->fulfil);
    wire_put_u8(w, (uint8_t)a->risk);
    if (a->nattrs > UINT16_MAX)
        w->err = true;
    wire_put_u16(w, (uint16_t)a->nattrs);
    for (size_t i = 0; i < a->nattrs && !w->err; i++) {
        put_s16(c, a->attrs[i].key);
        wire_put_str32(w, nz(a->attrs[i].value), strlen(nz(a->attrs[i].value)));
    }
    return end_request(c, at);
}

uint32_t
dc_q_approve(struct dc_client *c, const char *id)
{
    return q_id(c, WIRE_OP_APPROVE, id);
}

static uint32_t
q_id_reason(struct dc_client *c, uint8_t opcode, const char *id,
            const char *reason)
{
    size_t at = begin_request(c, opcode, 0);
    put_s16(c, id);
    put_s16(c, reason);
    return end_request(c, at);
}

uint32_t
dc_q_hold(struct dc_client *c, const char *id, const char *reason)
{
    return q_id_reason(c, WIRE_OP_HOLD, id, reason);
}

uint32_t
dc_q_cancel(struct dc_client *c, const char *id, const char *reason)
{
    return q_id_reason(c, WIRE_OP_CANCEL, id, reason);
}

uint32_t
dc_q_reprio(struct dc_client *c, const char *id, int cls, int64_t deadline)
{
    size_t at = begin_request(c, WIRE_OP_REPRIO, 0);
    put_s16(c, id);
    wire_put_u8(&c->out, (uint8_t)cls);
    wire_put_i64(&c->out, deadline);
    return end_request(c, at);
}

uint32_t
dc_q_next(struct dc_client *c, const struct dc_next_args *a)
{
    size_t at = begin_request(c, WIRE_OP_NEXT, 0);
    put_s16(c, a->warehouse);
    put_s16(c, a->picker);
    wire_put_i64(&c->out, a->lease_ms);
    wire_put_i64(&c->out, a->block_ms);
    return end_request(c, at);
}

uint32_t
dc_q_touch(struct dc_client *c, const char *id, uint64_t lease,
           int64_t lease_ms)
{
    size_t at = begin_request(c, WIRE_OP_TOUCH, 0);
    put_s16(c, id);
    wire_put_u64(&c->out, lease);
    wire_put_i64(&c->out, lease_ms);
    return end_request(c, at);
}

uint32_t
dc_q_release(struct dc_client *c, const char *id, uint64_t lease)
{
    size_t at = begin_request(c, WIRE_OP_RELEASE, 0);
    put_s16(c, id);
    wire_put_u64(&c->out, lease);
    return end_request(c, at);
}

uint32_t
dc_q_picked(struct dc_client *c, const char *id, uint64_t lease)
{
    size_t at = begin_request(c, WIRE_OP_PICKED, 0);
    put_s16(c, id);
    wire_put_u64(&c->out, lease);
    return end_request(c, at);
}

uint32_t
dc_q_events(struct dc_client *c, uint64_t after, uint16_t count,
            int64_t block_ms)
{
    size_t at = begin_request(c, WIRE_OP_EVENTS, 0);
    wire_put_u64(&c->out, after);
    wire_put_u16(&c->out, count);
    wire_put_i64(&c->out, block_ms);
    return end_request(c, at);
}

uint32_t
dc_q_outbound(struct dc_client *c, const struct dc_outbound_args *a)
{
    size_t at = begin_request(c, WIRE_OP_OUTBOUND, 0);
    put_s16(c, a->id);
    put_s16(c, a->operator_);
    wire_put_i64(&c->out, a->at);
    put_s16(c, a->photo);
    wire_put_str32(&c->out, a->raw ? a->raw : "", a->raw ? a->raw_len : 0);
    return end_request(c, at);
}

uint32_t
dc_q_deliver(struct dc_client *c, const char *id, int64_t at_ms,
             const char *raw, size_t raw_len)
{
    size_t at = begin_request(c, WIRE_OP_DELIVER, 0);
    put_s16(c, id);
    wire_put_i64(&c->out, at_ms);
    wire_put_str32(&c->out, raw ? raw : "", raw ? raw_len : 0);
    return end_request(c, at);
}

uint32_t
dc_q_get(struct dc_client *c, const char *id)
{
    return q_id(c, WIRE_OP_GET, id);
}

uint32_t
dc_q_peek(struct dc_client *c, const char *warehouse, unsigned count)
{
    size_t at = begin_request(c, WIRE_OP_PEEK, 0);
    put_s16(c, warehouse);
    if (count > UINT16_MAX)
        c->out.err = true;
    wire_put_u16(&c->out, (uint16_t)count);
    return end_request(c, at);
}

uint32_t
dc_q_audit(struct dc_client *c, const char *id, uint32_t from_seq)
{
    size_t at = begin_request(c, WIRE_OP_AUDIT, 0);
    put_s16(c, id);
    wire_put_u32(&c->out, from_seq);
    return end_request(c, at);
}

uint32_t
dc_q_stats(struct dc_client *c, const char *warehouse)
{
    return q_id(c, WIRE_OP_STATS, warehouse);
}

uint32_t
dc_q_checkpoint(struct dc_client *c, const char *name)
{
    return q_id(c, WIRE_OP_CHECKPOINT, name);
}

uint32_t
dc_q_subscribe(struct dc_client *c)
{
    return q_empty(c, WIRE_OP_SUBSCRIBE);
}

uint32_t
dc_q_unsubscribe(struct dc_client *c)
{
    return q_empty(c, WIRE_OP_UNSUBSCRIBE);
}

/* ---- one call per opcode -------------------------------------------- */

/* A blocking call needs the connection to itself: earlier pipelined
   replies would come first. */
static bool
ready(struct dc_client *c, struct dc_reply *r)
{
    memset(r, 0, sizeof *r);
    if (c->pending == 0 && !c->broken)
        return true;
    if (!c->broken)
        snprintf(c->err, sizeof c->err,
                 "%zu pipelined replies pending: dc_recv them first",
                 c->pending);
    return false;
}

/* The reply to the request just queued as id (0: it could not be). */
static int
call(struct dc_client *c, uint32_t id, struct dc_reply *r)
{
    return id == 0 ? -1 : dc_recv(c, r);
}

int
dc_ping(struct dc_client *c, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_ping(c), r) : -1;
}

int
dc_client_name(struct dc_client *c, const char *name, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_client_name(c, name), r) : -1;
}

int
dc_auth(struct dc_client *c, const char *user, const char *pass,
        struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_auth(c, user, pass), r) : -1;
}

int
dc_push(struct dc_client *c, const struct dc_push_args *a, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_push(c, a), r) : -1;
}

int
dc_approve(struct dc_client *c, const char *id, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_approve(c, id), r) : -1;
}

int
dc_hold(struct dc_client *c, const char *id, const char *reason,
        struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_hold(c, id, reason), r) : -1;
}

int
dc_cancel(struct dc_client *c, const char *id, const char *reason,
          struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_cancel(c, id, reason), r) : -1;
}

int
dc_reprio(struct dc_client *c, const char *id, int cls, int64_t deadline,
          struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_reprio(c, id, cls, deadline), r) : -1;
}

int
dc_next(struct dc_client *c, const struct dc_next_args *a, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_next(c, a), r) : -1;
}

int
dc_touch(struct dc_client *c, const char *id, uint64_t lease, int64_t lease_ms,
         struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_touch(c, id, lease, lease_ms), r) : -1;
}

int
dc_events(struct dc_client *c, uint64_t after, uint16_t count, int64_t block_ms,
          struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_events(c, after, count, block_ms), r)
                       : -1;
}

bool
dc_events_next(const struct dc_reply *r, size_t *pos, uint64_t *seq,
               const char **json, size_t *len)
{
    if (r->opcode != WIRE_OP_EVENTS || r->status != WIRE_ST_OK ||
        r->body_len < 4)
        return false;
    struct wire_reader rd;
    wire_reader_init(&rd, (const char *)r->body, r->body_len);
    uint32_t n = wire_get_u32(&rd);
    size_t off = *pos ? *pos : 4;
    if (off >= r->body_len || n == 0)
        return false;
    rd.pos = off;
    *seq = wire_get_u64(&rd);
    *json = wire_get_str32(&rd, len);
    if (rd.err)
        return false;
    *pos = rd.pos;
    return true;
}

int
dc_release(struct dc_client *c, const char *id, uint64_t lease,
           struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_release(c, id, lease), r) : -1;
}

int
dc_picked(struct dc_client *c, const char *id, uint64_t lease,
          struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_picked(c, id, lease), r) : -1;
}

int
dc_outbound(struct dc_client *c, const struct dc_outbound_args *a,
            struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_outbound(c, a), r) : -1;
}

int
dc_deliver(struct dc_client *c, const char *id, int64_t at, const char *raw,
           size_t raw_len, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_deliver(c, id, at, raw, raw_len), r) : -1;
}

int
dc_get(struct dc_client *c, const char *id, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_get(c, id), r) : -1;
}

int
dc_peek(struct dc_client *c, const char *warehouse, unsigned count,
        struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_peek(c, warehouse, count), r) : -1;
}

int
dc_audit(struct dc_client *c, const char *id, uint32_t from_seq,
         struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_audit(c, id, from_seq), r) : -1;
}

int
dc_stats(struct dc_client *c, const char *warehouse, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_stats(c, warehouse), r) : -1;
}

int
dc_checkpoint(struct dc_client *c, const char *name, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_checkpoint(c, name), r) : -1;
}

int
dc_subscribe(struct dc_client *c, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_subscribe(c), r) : -1;
}

int
dc_unsubscribe(struct dc_client *c, struct dc_reply *r)
{
    return ready(c, r) ? call(c, dc_q_unsubscribe(c), r) : -1;
}

/* ---- reading replies ------------------------------------------------ */

const struct dc_record *
dc_order(const struct dc_reply *r)
{
    if (wire_status_is_error(r->status) || r->nrecs == 0 ||
        (r->opcode != WIRE_OP_NEXT && r->opcode != WIRE_OP_GET))
        return NULL;
    return &r->recs[0];
}

const struct dc_field *
dc_field_get(const struct dc_record *rec, int tag)
{
    for (size_t i = 0; rec && i < rec->n; i++)
        if (rec->f[i].tag == tag)
            return &rec->f[i];
    return NULL;
}

const struct dc_field *
dc_field_find(const struct dc_record *rec, const char *name)
{
    for (size_t i = 0; rec && i < rec->n; i++)
        if (strcmp(rec->f[i].name, name) == 0)
            return &rec->f[i];
    return NULL;
}

void
dc_fprint_record(FILE *out, const struct dc_record *rec, const char *indent)
{
    for (size_t i = 0; rec && i < rec->n; i++) {
        const struct dc_field *f = &rec->f[i];
        fprintf(out, "%s%s: ", indent, f->name[0] ? f->name : "?");
        switch (f->kind) {
        case WIRE_KIND_INT:
            fprintf(out, "%" PRId64 "\n", f->i);
            break;
        case WIRE_KIND_U64:
            fprintf(out, "%" PRIu64 "\n", f->u);
            break;
        case WIRE_KIND_ATTRS:
            fputc('{', out);
            for (size_t k = 0; k < f->nattrs; k++)
                fprintf(out, "%s%s=%s", k ? ", " : "", f->attrs[k].key,
                        f->attrs[k].value);
            fputs("}\n", out);
            break;
        default:
            fprintf(out, "%s\n", f->s);
        }
    }
}

const char *
dc_status_line(const struct dc_reply *r, char *buf, size_t cap)
{
    const char *name = wire_status_name(r->status);
    if (wire_status_is_error(r->status))
        snprintf(buf, cap, "%s %s", r->word, r->msg);
    else if (name)
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "status 0x%02x", r->status);
    return buf;
}
