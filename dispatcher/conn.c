/*
 * Connections: read, hand complete requests to the protocol, write the
 * replies once they are durable, and keep every buffer bounded.
 *
 * A turn (one call of process_input) pulls the input up once and runs
 * requests until one of these stops it: the input holds no complete
 * request (the protocol says how much it needs, so a large request
 * arriving in small reads is not parsed again on every read), the turn's
 * request budget is spent (the rest waits for the next loop iteration,
 * after other connections), the replies waiting to be sent pass
 * `out_pause` (reading resumes once the peer has read them), the store's
 * hand-off queue is full (reading resumes when the persistence thread
 * has taken it: back pressure instead of BUSY errors), or the
 * connection pauses (a reply waits for durability, a NEXT blocks).
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MB ((size_t)1 << 20)

static int64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
conn_limits_default(struct conn_limits *l)
{
    l->out_hard = 256 * MB;
    l->out_soft = 64 * MB;
    l->out_soft_ms = 60 * 1000;
    l->sub_hard = 32 * MB;
    l->sub_soft = 8 * MB;
    l->sub_soft_ms = 60 * 1000;
    l->out_pause = 1 * MB;
    l->turn_requests = 128;
    l->input_max = 8 * MB;
}

void
conn_pool_init(struct conn_pool *pool, struct event_base *base,
               struct core *core)
{
    memset(pool, 0, sizeof *pool);
    pool->base = base;
    pool->core = core;
    conn_limits_default(&pool->lim);
    pool->max_clients = 10000;
}

static void conn_free(struct conn *c);
static void process_input(struct conn *c);

static size_t
unsent(const struct conn *c)
{
    return evbuffer_get_length(c->out) +
           evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Reading on and off.  Reading off also stops the idle clock, as a
   bufferevent's read timeout did. */
static void
read_on(struct conn *c)
{
    if (c->reading)
        return;
    int64_t ms = c->pool->idle_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (event_add(c->read_ev, ms > 0 ? &tv : NULL))
        log_fatal("libevent: cannot watch client %" PRIu64 " for reading",
                  c->id);
    c->reading = true;
}

static void
read_off(struct conn *c)
{
    if (!c->reading)
        return;
    event_del(c->read_ev);
    c->reading = false;
}

/* Free c if it is closing and everything it had to say is written. */
static bool
conn_reap(struct conn *c)
{
    if (c->killed) {
        conn_free(c);
        return true;
    }
    if (!c->closing || c->in_dwait ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return false;
    conn_free(c);
    return true;
}

/* Stop a blocked EVENTS FROM without answering it. */
static void
ewait_end(struct conn *c)
{
    events_unlisten(&c->pool->core->events, &c->ewait);
    if (c->ewait_ev)
        event_del(c->ewait_ev);
}

/* Drop c at the next turn of the loop: it may be in the middle of a
   callback chain (an event being published to every listener). */
static void
conn_kill(struct conn *c, const char *why)
{
    log_msg(LOG_WARN, "client %" PRIu64 " %s: %s, closing", c->id, c->addr,
            why);
    conn_unlisten(c);
    waiters_cancel(&c->waiter);
    ewait_end(c);
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    struct evbuffer *ob = bufferevent_get_output(c->bev);
    evbuffer_drain(ob, evbuffer_get_length(ob));
    read_off(c);
    bufferevent_disable(c->bev, EV_WRITE);
    c->closing = true;
    c->killed = true;
    event_active(c->resume_ev, EV_TIMEOUT, 0);
}

/* The output limits: false when c was closed for passing one. */
static bool
check_output(struct conn *c)
{
    const struct conn_limits *l = &c->pool->lim;
    bool sub = conn_listening(c);
    size_t hard = sub ? l->sub_hard : l->out_hard;
    size_t soft = sub ? l->sub_soft : l->out_soft;
    int64_t soft_ms = sub ? l->sub_soft_ms : l->out_soft_ms;
    size_t n = unsent(c);
    char why[160];

    if (c->killed)
        return false;
    if (hard && n > hard) {
        snprintf(why, sizeof why,
                 "%zu bytes of replies unread, over the hard limit of %zu", n,
                 hard);
    } else if (soft && n > soft) {
        int64_t now = core_now();
        if (!c->soft_since)
            c->soft_since = now;
        if (now - c->soft_since <= soft_ms)
            return true;
        snprintf(why, sizeof why,
                 "%zu bytes of replies unread, over the soft limit of %zu "
                 "for more than %" PRId64 " ms",
                 n, soft, soft_ms);
    } else {
        c->soft_since = 0;
        return true;
    }
    c->pool->cnt.output_closes++;
    if (c->proto && c->proto->overflow)
        c->proto->overflow(c);
    conn_kill(c, why);
    return false;
}

/* Read on (from the loop, not from here: the caller may be another
   connection's request, and requests must not nest). */
static void
conn_resume(struct conn *c)
{
    if (conn_paused(c) || c->closing || c->out_paused || c->store_wait ||
        c->pool->quiet)
        return;
    read_on(c);
    size_t len = evbuffer_get_length(c->in);
    if (len > 0 && len >= c->need)
        event_active(c->resume_ev, EV_TIMEOUT, 0);
}

/* Send c->out.  Straight to the socket when nothing is queued before it:
   handing it to the bufferevent would cost an epoll_ctl to watch for
   writability, a loop turn, and another to stop watching, for every
   reply.  What the socket does not take is queued as usual (and a socket
   error surfaces there, closing the connection). */
static void
conn_send(struct conn *c)
{
    struct evbuffer *ob = bufferevent_get_output(c->bev);

    if (evbuffer_get_length(c->out) == 0)
        return;
    if (c->turn_requests) {
        struct core *core = c->pool->core;
        double s = (double)(mono_us() - c->turn_start_us) / 1e6;
        histo_observe_n(&core->h_command, s, c->turn_requests);
        c->turn_requests = 0;
    }
    if (evbuffer_get_length(ob) == 0)
        evbuffer_write(c->out, bufferevent_getfd(c->bev));
    if (evbuffer_get_length(c->out) > 0)
        evbuffer_add_buffer(ob, c->out);
}

void
conn_settle(struct conn *c)
{
    struct conn_pool *pool = c->pool;

    if (!c->in_dwait) {
        if (c->wait_ticket <= core_durable(pool->core)) {
            conn_send(c);
        } else {
            c->in_dwait = true;
            c->dwait_since_us = mono_us();
            c->dnext = pool->dwait;
            pool->dwait = c;
        }
    }
    if (check_output(c))
        conn_resume(c);
}

void
conn_pool_durable(void *arg, uint64_t durable)
{
    struct conn_pool *pool = arg;
    struct conn **pp = &pool->dwait;

    /* The writer took a group: connections waiting for room read on. */
    if (pool->swait && !core_store_busy(pool->core)) {
        struct conn *c = pool->swait;
        pool->swait = NULL;
        while (c) {
            struct conn *next = c->snext;
            c->store_wait = false;
            c->snext = NULL;
            conn_resume(c);
            c = next;
        }
    }

    while (*pp) {
        struct conn *c = *pp;
        if (c->wait_ticket > durable) {
            pp = &c->dnext;
            continue;
        }
        *pp = c->dnext;
        c->in_dwait = false;
        histo_observe(&pool->core->h_durable,
                      (double)(mono_us() - c->dwait_since_us) / 1e6);
        conn_send(c);
        if (!conn_reap(c) && check_output(c))
            conn_resume(c);
    }
}

void
conn_close_after_reply(struct conn *c)
{
    c->closing = true;
}

bool
conn_auth(struct conn *c, const char *name, size_t name_len, const char *secret,
          size_t secret_len)
{
    const struct users *us = c->pool->users;
    const struct user *u =
        us && us->enabled ? users_check(us, name, name_len, secret, secret_len)
                          : NULL;
    if (!u)
        return false;
    c->user = u;
    c->role = u->role;
    log_msg(LOG_INFO, "client %" PRIu64 " %s authenticated as %s (%s)", c->id,
            c->addr, u->name, role_name(u->role));
    return true;
}

const char *
conn_actor(const struct conn *c, char *buf, size_t cap)
{
    if (c->user)
        snprintf(buf, cap, "%s", c->user->name);
    else if (c->name[0])
        snprintf(buf, cap, "%s", c->name);
    else
        snprintf(buf, cap, "client-%" PRIu64, c->id);
    return buf;
}

static void
on_sink(struct event_sink *s, uint64_t seq, const char *type, const char *json,
        size_t len)
{
    struct conn *c = s->ctx;
    if (c->closing || !c->proto || !c->proto->event)
        return;
    c->proto->event(c, seq, type, json, len);
    conn_settle(c);
}

void
conn_listen(struct conn *c)
{
    events_listen(&c->pool->core->events, &c->sink);
}

void
conn_unlisten(struct conn *c)
{
    events_unlisten(&c->pool->core->events, &c->sink);
}

static void
on_ewait_sink(struct event_sink *s, uint64_t seq, const char *type,
              const char *json, size_t len)
{
    struct conn *c = s->ctx;
    (void)type;
    if (seq <= c->ewait_after)
        return;
    ewait_end(c);
    if (c->closing || !c->proto || !c->proto->events_waited)
        return;
    c->proto->events_waited(c, seq, json, len);
    conn_settle(c);
}

static void
on_ewait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    ewait_end(c);
    if (c->closing || !c->proto || !c->proto->events_waited)
        return;
    c->proto->events_waited(c, 0, NULL, 0);
    conn_settle(c);
}

void
conn_wait_event(struct conn *c, uint64_t after, int64_t ms)
{
    if (!c->ewait_ev) {
        c->ewait_ev = evtimer_new(c->pool->base, on_ewait_timeout, c);
        if (!c->ewait_ev)
            log_fatal("out of memory: client %" PRIu64 " EVENTS BLOCK", c->id);
    }
    c->ewait_after = after;
    events_listen(&c->pool->core->events, &c->ewait);
    if (ms > 0) {
        struct timeval tv = {.tv_sec = ms / 1000,
                             .tv_usec = (ms % 1000) * 1000};
        evtimer_add(c->ewait_ev, &tv);
    }
}

static void
on_waited(struct waiter *w, struct order *o, uint64_t ticket)
{
    struct conn *c = w->ctx;
    conn_wait(c, ticket);
    c->proto->waited(c, o, ticket);
    conn_settle(c);
}

static void
conn_free(struct conn *c)
{
    struct conn_pool *pool = c->pool;

    waiter_free(&c->waiter);
    conn_unlisten(c);
    ewait_end(c);
    if (c->ewait_ev)
        event_free(c->ewait_ev);
    if (c->in_dwait) {
        for (struct conn **pp = &pool->dwait; *pp; pp = &(*pp)->dnext) {
            if (*pp == c) {
                *pp = c->dnext;
                break;
            }
        }
    }
    if (c->store_wait) {
        for (struct conn **pp = &pool->swait; *pp; pp = &(*pp)->snext) {
            if (*pp == c) {
                *pp = c->snext;
                break;
            }
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pool->n--;
    pool->core->clients = pool->n;
    log_msg(LOG_DEBUG, "client %" PRIu64 " %s closed", c->id, c->addr);
    event_free(c->read_ev); /* before the bufferevent closes the socket */
    bufferevent_free(c->bev);
    event_free(c->resume_ev);
    evbuffer_free(c->out);
    evbuffer_free(c->in);
    free(c);
}

/* What one read() asks for: a pipelined burst of small requests is taken
   in one call (a bufferevent reads at most 4 KiB). */
#define READ_CHUNK 16384

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (what & EV_TIMEOUT) {
        /* Idle: pickers blocked in NEXT and listeners are expected to be
           quiet (the persistent event re-arms its timeout). */
        if (conn_paused(c) || conn_listening(c))
            return;
        log_msg(LOG_INFO, "client %" PRIu64 " %s idle, closing", c->id,
                c->addr);
        conn_free(c);
        return;
    }
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1)
        log_fatal("out of memory reading from client %" PRIu64, c->id);
    ssize_t n = read(fd, v.iov_base, v.iov_len);
    if (n <= 0) {
        if (n < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n < 0)
            log_msg(LOG_DEBUG, "client %" PRIu64 " %s: %s", c->id, c->addr,
                    strerror(errno));
        conn_free(c); /* the peer hung up, or the socket failed */
        return;
    }
    v.iov_len = (size_t)n;
    if (evbuffer_commit_space(c->in, &v, 1))
        log_fatal("libevent: cannot keep what client %" PRIu64 " sent", c->id);

    /* A paused connection keeps reading, so a picker that hangs up is
       noticed, but parses nothing until it resumes; turning reading off
       and on for every durable reply would cost two epoll_ctl calls per
       request.  Only a peer that sends this much meanwhile is stopped. */
    if ((conn_paused(c) || c->out_paused || c->store_wait) &&
        evbuffer_get_length(c->in) > c->pool->lim.input_max)
        read_off(c);
    process_input(c);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->killed) {
        conn_free(c);
        return;
    }
    process_input(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (conn_reap(c))
        return;
    if (c->out_paused) {
        c->out_paused = false;
        c->soft_since = 0;
        conn_resume(c);
    }
}

/* The bufferevent only writes: a failed write, or EOF seen there. */
static void
on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;

    if (what & BEV_EVENT_ERROR) {
        log_msg(LOG_DEBUG, "client %" PRIu64 " %s: %s", c->id, c->addr,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    conn_free(c);
}

static void
process_input(struct conn *c)
{
    struct conn_pool *pool = c->pool;
    struct evbuffer *in = c->in;
    size_t len = evbuffer_get_length(in);

    if (len == 0 || conn_paused(c) || c->closing || c->out_paused ||
        c->store_wait || pool->quiet)
        goto settle;
    if (!c->proto) {
        unsigned char b;
        evbuffer_copyout(in, &b, 1);
        c->proto = pool->choose(b);
    }
    if (len < c->need)
        goto settle;
    const char *p = (const char *)evbuffer_pullup(in, -1);
    if (!p)
        log_fatal("out of memory reading from client %" PRIu64, c->id);
    size_t off = 0, done = 0;
    bool more = false;
    if (!c->turn_requests)
        c->turn_start_us = mono_us();
    c->need = 0;
    while (off < len && !conn_paused(c) && !c->closing) {
        if (done == pool->lim.turn_requests) {
            more = true; /* others first */
            break;
        }
        if (unsent(c) > pool->lim.out_pause) {
            c->out_paused = true; /* the peer is not reading */
            break;
        }
        if (core_store_busy(pool->core)) {
            c->store_wait = true; /* resumed by conn_pool_durable */
            c->snext = pool->swait;
            pool->swait = c;
            break;
        }
        size_t need = 0;
        long used = c->proto->request(c, p + off, len - off, &need);
        if (used == 0) {
            /* need counts from p + off, and off is drained below */
            c->need = need > len - off ? need : len - off + 1;
            if (c->need > pool->lim.input_max) {
                pool->cnt.input_closes++;
                log_msg(LOG_INFO,
                        "client %" PRIu64 " %s: a request of %zu bytes, "
                        "over the limit of %zu, closing",
                        c->id, c->addr, c->need, pool->lim.input_max);
                c->closing = true;
                off = len;
            }
            break;
        }
        if (used < 0) {
            pool->cnt.protocol_errors++;
            log_msg(LOG_INFO, "client %" PRIu64 " %s: protocol error, closing",
                    c->id, c->addr);
            c->closing = true;
            off = len;
            break;
        }
        off += (size_t)used;
        done++;
    }
    pool->cnt.requests += done;
    c->turn_requests += done;
    evbuffer_drain(in, off);
    if (more)
        event_active(c->resume_ev, EV_TIMEOUT, 0);
settle:
    if (c->closing)
        read_off(c);
    conn_settle(c);
    conn_reap(c);
}

void
conn_accept(struct conn_pool *pool, int fd, const struct sockaddr *sa)
{
    if (pool->n >= pool->max_clients) {
        static const char msg[] = "-ERR max number of clients reached\r\n";
        pool->cnt.rejected++;
        if (send(fd, msg, sizeof msg - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_msg(LOG_DEBUG, "refusing client: %s", strerror(errno));
        evutil_closesocket(fd);
        log_msg(LOG_WARN, "max clients (%zu) reached, connection refused",
                pool->max_clients);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_msg(LOG_ERROR, "out of memory accepting a client");
        evutil_closesocket(fd);
        return;
    }
    c->pool = pool;
    c->id = ++pool->next_id;
    c->p.resp.ver = 2;
    c->role = pool->users && pool->users->enabled ? ROLE_NONE : ROLE_ADMIN;
    c->bev = bufferevent_socket_new(pool->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->in = evbuffer_new();
    c->read_ev =
        event_new(pool->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->out = evbuffer_new();
    c->resume_ev = event_new(pool->base, -1, 0, on_resume, c);
    int wr = waiter_init(&c->waiter, pool->base, on_waited, c);
    if (!c->bev || !c->in || !c->read_ev || !c->out || !c->resume_ev || wr) {
        log_msg(LOG_ERROR, "out of memory accepting a client");
        if (c->read_ev)
            event_free(c->read_ev);
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->in)
            evbuffer_free(c->in);
        if (c->out)
            evbuffer_free(c->out);
        if (c->resume_ev)
            event_free(c->resume_ev);
        waiter_free(&c->waiter);
        free(c);
        return;
    }
    c->sink.emit = on_sink;
    c->sink.ctx = c;
    c->ewait.emit = on_ewait_sink;
    c->ewait.ctx = c;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "[%s]:%d", ip, ntohs(in6->sin6_port));
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
        log_msg(LOG_DEBUG, "TCP_NODELAY: %s", strerror(errno));

    c->next = pool->conns;
    if (pool->conns)
        pool->conns->prev = c;
    pool->conns = c;
    pool->n++;
    pool->core->clients = pool->n;
    pool->cnt.connections++;

    bufferevent_setcb(c->bev, NULL, on_write, on_conn_event, c);
    bufferevent_enable(c->bev, EV_WRITE);
    read_on(c);
    log_msg(LOG_DEBUG, "client %" PRIu64 " %s connected", c->id, c->addr);
}

void
conn_pool_quiesce(struct conn_pool *pool)
{
    pool->quiet = true;
    for (struct conn *c = pool->conns; c; c = c->next) {
        read_off(c);
        if (c->ewait.listening && c->ewait_ev)
            event_active(c->ewait_ev, EV_TIMEOUT, 0);
    }
}

bool
conn_pool_busy(struct conn_pool *pool)
{
    if (pool->dwait)
        return true;
    for (struct conn *c = pool->conns; c; c = c->next)
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
            return true;
    return false;
}

void
conn_pool_free(struct conn_pool *pool)
{
    while (pool->conns)
        conn_free(pool->conns);
}
