/*
 * conn — one client connection: its buffers and their limits, the
 * durability gate on its replies, its fair share of the loop, and the
 * protocol it speaks (chosen by its first byte, for its whole life).
 *
 * A protocol front end (proto_resp, proto_bin) handles one request at a
 * time: it appends its reply to c->out and, when the reply acknowledges a
 * change, raises the ticket it must wait for (conn_wait).  After a turn's
 * requests, c->out goes to the socket once the store is durable up to
 * that ticket; until then the connection reads nothing more.  Replies
 * therefore leave in request order and acknowledge only what is on disk.
 *
 * Limits (memory stays bounded whatever a client does):
 * - a turn runs at most `turn_requests` requests, then lets others run;
 * - a connection whose unsent replies pass `out_pause` stops being read
 *   until its peer reads them;
 * - unsent output over the hard limit, or over the soft limit for longer
 *   than the soft period, closes the connection (a class for listeners,
 *   who are sent events they did not ask for, and one for the rest);
 * - input waiting while paused is bounded by `input_max`.
 * Loop thread only.
 */
#ifndef DISPATCHD_CONN_H
#define DISPATCHD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core.h"
#include "users.h"

struct conn;

/* A protocol front end. */
struct proto {
    const char *name;
    /* Handle the first request in in[0..len).  Returns the bytes it used
       (> 0); 0 when the request is incomplete, with *need set to the total
       length it needs when known (else left 0); or -1 after a protocol
       violation (its error is already in c->out; the connection closes
       once that is sent). */
    long (*request)(struct conn *c, const char *in, size_t len, size_t *need);
    /* A blocked NEXT ended: o leased (reply with it), or NULL (timeout). */
    void (*waited)(struct conn *c, struct order *o, uint64_t ticket);
    /* An event for a listening connection. */
    void (*event)(struct conn *c, uint64_t seq, const char *type,
                  const char *json, size_t len);
    /* A blocked EVENTS FROM ended: the first event after the one asked
       for, or json NULL (timeout).  May be NULL for a protocol without
       it. */
    void (*events_waited)(struct conn *c, uint64_t seq, const char *json,
                          size_t len);
    /* Too much output: say so before the connection closes (may be NULL). */
    void (*overflow)(struct conn *c);
};

struct conn_limits {
    size_t out_hard, out_soft; /* normal clients; 0 = no limit */
    int64_t out_soft_ms;
    size_t sub_hard, sub_soft; /* listeners */
    int64_t sub_soft_ms;
    size_t out_pause;     /* stop reading while this much is unsent */
    size_t turn_requests; /* requests per turn before others run */
    size_t input_max;     /* bytes buffered unparsed */
};

void conn_limits_default(struct conn_limits *l);

struct conn_counters {
    uint64_t connections; /* accepted since start */
    uint64_t rejected;    /* refused: max clients */
    uint64_t requests;
    uint64_t protocol_errors;
    uint64_t output_closes; /* closed by an output limit */
    uint64_t input_closes;  /* closed by the input limit */
};

struct conn_pool {
    struct event_base *base;
    struct core *core;
    struct conn_limits lim;
    int64_t idle_timeout_ms; /* 0: none */
    size_t max_clients;
    int port;                  /* the listening port, for INFO */
    const struct users *users; /* enabled: clients must AUTH first */
    /* The protocol of a connection whose first byte is b. */
    const struct proto *(*choose)(unsigned char b);
    struct conn *conns;
    size_t n;
    uint64_t next_id;
    struct conn *dwait; /* paused until a ticket is durable */
    struct conn *swait; /* paused until the store takes changes */
    bool quiet;         /* stopping: read nothing more */
    struct conn_counters cnt;
};

struct conn {
    struct conn_pool *pool;
    /* Replies go out through the bufferevent; requests come in through
       read_ev and one read() into `in` each time the socket is readable
       (a bufferevent asks the kernel how much is waiting with an ioctl
       first: a system call more for every request). */
    struct bufferevent *bev;
    struct evbuffer *in;   /* bytes read, not yet parsed */
    struct event *read_ev; /* the socket readable, or the idle timeout */
    bool reading;          /* read_ev added */
    uint64_t id;           /* CLIENT ID */
    char addr[64];         /* peer, for logs */
    char name[ORDER_NAME_MAX + 1]; /* CLIENT SETNAME; the audit's actor */
    const struct proto *proto;     /* NULL until the first byte */
    const struct user *user;       /* authenticated as, or NULL */
    int role;                      /* enum role: ROLE_NONE until AUTH
                                      when users are configured */

    struct evbuffer *out; /* replies waiting for wait_ticket */
    uint64_t wait_ticket;
    int64_t turn_start_us;  /* when the requests in out were read */
    size_t turn_requests;   /* how many of them */
    int64_t dwait_since_us; /* when the replies began to wait */
    size_t need;            /* input the next request needs */
    int64_t soft_since;     /* over the soft output limit since */
    bool closing;           /* close once out is sent */
    bool in_dwait;          /* on pool->dwait */
    bool out_paused;        /* not read: replies backed up */
    bool killed;            /* dropped by a limit: freed next turn */
    bool store_wait;        /* on pool->swait: the store is busy */

    struct waiter waiter;    /* a blocked NEXT */
    struct event_sink sink;  /* events, when listening */
    struct event_sink ewait; /* a blocked EVENTS FROM (conn_wait_event) */
    struct event *ewait_ev;  /* its timeout */
    uint64_t ewait_after;    /* it waits for an event with seq > this */
    struct event *resume_ev; /* made active to read on later */

    /* Per-protocol state. */
    union {
        struct {
            int ver;       /* 2 or 3 (HELLO) */
            bool in_multi; /* after a refused MULTI, until EXEC/DISCARD */
        } resp;
        struct {
            uint32_t wait_id; /* request id of the blocked NEXT */
            uint8_t wait_op;
        } bin;
    } p;

    struct conn *prev, *next; /* pool->conns */
    struct conn *dnext;       /* pool->dwait */
    struct conn *snext;       /* pool->swait */
};

void conn_pool_init(struct conn_pool *pool, struct event_base *base,
                    struct core *core);
/* Close every connection (without flushing). */
void conn_pool_free(struct conn_pool *pool);
/* A new connection on fd (accepted; sa is its peer). */
void conn_accept(struct conn_pool *pool, int fd, const struct sockaddr *sa);
/* The core's durability hook: send every reply that is now durable. */
void conn_pool_durable(void *pool, uint64_t durable);
/* Stop reading from every connection (shutdown). */
void conn_pool_quiesce(struct conn_pool *pool);
/* True while some connection still has replies to send. */
bool conn_pool_busy(struct conn_pool *pool);

/* The reply being built must not leave before ticket is durable. */
static inline void
conn_wait(struct conn *c, uint64_t ticket)
{
    if (ticket > c->wait_ticket)
        c->wait_ticket = ticket;
}
/* Send c->out if durable, or pause c until it is; then read on. */
void conn_settle(struct conn *c);
/* Close c once what it has to say is sent. */
void conn_close_after_reply(struct conn *c);
/* Who c is in the audit trail: its user, its name, or "client-<id>". */
const char *conn_actor(const struct conn *c, char *buf, size_t cap);
/* Start or stop receiving events (proto->event). */
void conn_listen(struct conn *c);
void conn_unlisten(struct conn *c);
static inline bool
conn_listening(const struct conn *c)
{
    return c->sink.listening;
}
/* Paused: replies waiting for durability, or blocked in NEXT. */
/* May c run op? */
static inline bool
conn_may(const struct conn *c, int op)
{
    return role_allows(c->role, op);
}
/* Authenticate c as name/secret: true when the pair is right. */
bool conn_auth(struct conn *c, const char *name, size_t name_len,
               const char *secret, size_t secret_len);
/* Wait up to ms (0: for ever) for the next event with a sequence above
   after; proto->events_waited answers.  Reads nothing meanwhile. */
void conn_wait_event(struct conn *c, uint64_t after, int64_t ms);
static inline bool
conn_paused(const struct conn *c)
{
    return c->in_dwait || waiter_waiting(&c->waiter) || c->ewait.listening;
}

#endif
