/*
 * The loop: accept, read, parse every complete command, reply in one
 * write; pause a connection whose replies wait for durability or whose
 * NEXT is blocked; fire the queue's timers; recover at start; stop cleanly
 * on SIGINT/SIGTERM.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/thread.h>

#include "events.h"
#include "log.h"

#define RETENTION_PERIOD_MS (60 * 1000)
#define STOP_GRACE_MS 3000

static void conn_free(struct conn *c);
static void process_input(struct conn *c);

int64_t
server_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval
ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* ---- connections ---------------------------------------------------- */

/* A paused connection (replies waiting for durability, or blocked in
   NEXT) keeps reading, so a picker that hangs up is noticed, but parses
   nothing until it resumes.  Turning reading off and on for every
   durable reply would cost two epoll_ctl calls per command; only a peer
   that sends this much while paused is stopped (back-pressure). */
#define PAUSED_INPUT_MAX ((size_t)8 << 20)

static void
conn_resume(struct conn *c)
{
    if (conn_paused(c) || c->closing)
        return;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (!(bufferevent_get_enabled(c->bev) & EV_READ))
        bufferevent_enable(c->bev, EV_READ);
    /* Read on from the loop, not from here: the caller may be another
       connection's command, and commands must not nest. */
    if (evbuffer_get_length(in) > 0)
        event_active(c->resume_ev, EV_TIMEOUT, 0);
}

/* Free c if it is closing and everything it had to say is written. */
static bool
conn_reap(struct conn *c)
{
    if (!c->closing || c->in_dwait ||
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        return false;
    conn_free(c);
    return true;
}

/* Send c->out.  Straight to the socket when nothing is queued before it:
   handing it to the bufferevent would cost an epoll_ctl to watch for
   writability, a loop turn, and another epoll_ctl to stop watching, for
   every reply.  What the socket does not take is queued as usual (and a
   socket error surfaces there, closing the connection). */
static void
conn_send(struct conn *c)
{
    struct evbuffer *ob = bufferevent_get_output(c->bev);

    if (evbuffer_get_length(c->out) == 0)
        return;
    if (evbuffer_get_length(ob) == 0)
        evbuffer_write(c->out, bufferevent_getfd(c->bev));
    if (evbuffer_get_length(c->out) > 0)
        evbuffer_add_buffer(ob, c->out);
}

void
conn_settle(struct conn *c)
{
    struct server *srv = c->srv;

    if (c->in_dwait)
        return;
    if (c->wait_ticket <= store_durable(srv->store)) {
        conn_send(c);
        return;
    }
    c->in_dwait = true;
    c->dnext = srv->dwait;
    srv->dwait = c;
}

static void
conn_unblock(struct conn *c)
{
    struct waitq *w = c->bq;

    if (!w)
        return;
    if (c->bprev)
        c->bprev->bnext = c->bnext;
    else
        w->head = c->bnext;
    if (c->bnext)
        c->bnext->bprev = c->bprev;
    else
        w->tail = c->bprev;
    c->bq = NULL;
    c->bprev = c->bnext = NULL;
    evtimer_del(c->block_timer);
    if (!w->head) {
        HASH_DEL(c->srv->waitqs, w);
        free(w);
    }
}

static void
conn_free(struct conn *c)
{
    struct server *srv = c->srv;

    conn_unblock(c);
    if (c->subscribed)
        events_unsubscribe(srv, c);
    if (c->in_dwait) {
        for (struct conn **pp = &srv->dwait; *pp; pp = &(*pp)->dnext) {
            if (*pp == c) {
                *pp = c->dnext;
                break;
            }
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    log_msg(LOG_DEBUG, "client %" PRIu64 " %s closed", c->id, c->addr);
    bufferevent_free(c->bev);
    event_free(c->resume_ev);
    event_free(c->block_timer);
    evbuffer_free(c->out);
    free(c);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (conn_paused(c) &&
        evbuffer_get_length(bufferevent_get_input(bev)) > PAUSED_INPUT_MAX)
        bufferevent_disable(bev, EV_READ);
    process_input(c);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    process_input(arg);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_reap(arg);
}

static void
on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (what & BEV_EVENT_TIMEOUT) {
        /* Idle timeout: pickers blocked in NEXT and subscribers are
           expected to be quiet. */
        if (c->bq || c->subscribed || c->in_dwait) {
            bufferevent_enable(bev, EV_READ);
            return;
        }
        log_msg(LOG_INFO, "client %" PRIu64 " %s idle, closing", c->id,
                c->addr);
    } else if (what & BEV_EVENT_ERROR) {
        log_msg(LOG_DEBUG, "client %" PRIu64 " %s: %s", c->id, c->addr,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    conn_free(c);
}

static void
on_block_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    conn_unblock(c);
    resp_null_array(c->out, c->proto);
    conn_settle(c);
    conn_resume(c);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    struct server *srv = arg;
    (void)l;
    (void)salen;

    if (srv->nconns >= (size_t)srv->cfg.max_clients) {
        static const char msg[] = "-ERR max number of clients reached\r\n";
        srv->n.rejected++;
        if (send(fd, msg, sizeof msg - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_msg(LOG_DEBUG, "refusing client: %s", strerror(errno));
        evutil_closesocket(fd);
        log_msg(LOG_WARN, "max clients (%d) reached, connection refused",
                srv->cfg.max_clients);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_msg(LOG_ERROR, "out of memory accepting a client");
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    c->proto = 2;
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->out = evbuffer_new();
    c->resume_ev = event_new(srv->base, -1, 0, on_resume, c);
    c->block_timer = evtimer_new(srv->base, on_block_timeout, c);
    if (!c->bev || !c->out || !c->resume_ev || !c->block_timer) {
        log_msg(LOG_ERROR, "out of memory accepting a client");
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->out)
            evbuffer_free(c->out);
        if (c->resume_ev)
            event_free(c->resume_ev);
        if (c->block_timer)
            event_free(c->block_timer);
        free(c);
        return;
    }
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        char ip[INET6_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "[%s]:%d", ip,
                 ntohs(in6->sin6_port));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    srv->n.connections++;

    bufferevent_setcb(c->bev, on_read, on_write, on_conn_event, c);
    if (srv->cfg.idle_timeout_ms > 0) {
        struct timeval tv = ms_to_tv(srv->cfg.idle_timeout_ms);
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    }
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    log_msg(LOG_DEBUG, "client %" PRIu64 " %s connected", c->id, c->addr);
}

/* Parse and run every complete command in c's input, then send the
   replies in one write (or wait for them to be durable). */
static void
process_input(struct conn *c)
{
    struct server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);

    if (len > 0 && !conn_paused(c) && !c->closing) {
        const char *p = (const char *)evbuffer_pullup(in, -1);
        size_t off = 0;
        if (!p)
            log_fatal("out of memory reading from client %" PRIu64, c->id);
        while (off < len && !conn_paused(c) && !c->closing) {
            size_t used = 0;
            const char *err = NULL;
            enum resp_status st =
                resp_parse(p + off, len - off, &srv->req, &used, &err);
            if (st == RESP_INCOMPLETE)
                break;
            if (st == RESP_PROTOERR) {
                srv->n.protocol_errors++;
                resp_error(c->out, "ERR %s", err);
                log_msg(LOG_INFO, "client %" PRIu64 " %s: %s, closing",
                        c->id, c->addr, err);
                c->closing = true;
                off = len;
                break;
            }
            off += used;
            if (st == RESP_EMPTY)
                continue;
            srv->n.commands++;
            command_dispatch(c, &srv->req);
        }
        evbuffer_drain(in, off);
    }
    if (c->closing)
        bufferevent_disable(c->bev, EV_READ);
    conn_settle(c);
    server_arm_timer(srv);
    conn_reap(c);
}

/* ---- durability ----------------------------------------------------- */

/* Called on the persistence thread: only wake the loop. */
static void
store_woke(void *arg)
{
    struct server *srv = arg;
    event_active(srv->wake_ev, EV_READ, 0);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    uint64_t durable = store_durable(srv->store);
    (void)fd;
    (void)what;

    struct conn **pp = &srv->dwait;
    while (*pp) {
        struct conn *c = *pp;
        if (c->wait_ticket > durable) {
            pp = &c->dnext;
            continue;
        }
        *pp = c->dnext;
        c->in_dwait = false;
        conn_send(c);
        if (!conn_reap(c))
            conn_resume(c);
    }
    events_flush(srv, durable);
}

bool
server_readonly(struct server *srv, struct conn *c)
{
    char why[256];

    if (store_ok(srv->store, why, sizeof why))
        return false;
    resp_error(c->out, "READONLY storage: %s", why);
    return true;
}

uint64_t
server_record(struct server *srv, struct conn *c, struct order *o, int action,
              int from, const char *raw, size_t raw_len, const char *note)
{
    char actor[ORDER_NAME_MAX + 24];

    if (!c)
        snprintf(actor, sizeof actor, "dispatchd");
    else if (c->name[0])
        snprintf(actor, sizeof actor, "%s", c->name);
    else
        snprintf(actor, sizeof actor, "client-%" PRIu64, c->id);
    o->audit_n++;
    struct audit_entry a = {
        .at = server_now(),
        .action = action,
        .from = from,
        .to = o->state,
        .actor = actor,
        .actor_len = strlen(actor),
        .raw = raw ? raw : "",
        .raw_len = raw ? raw_len : 0,
        .note = note ? note : "",
        .note_len = note ? strlen(note) : 0,
    };
    uint64_t t = store_put(srv->store, o, &a);
    if (!t) {
        o->audit_n--;
        log_msg(LOG_WARN, "storage refused the change of order %s (%s)",
                o->id, order_action_name(action));
        return 0;
    }
    srv->last_ticket = t;
    if (c && t > c->wait_ticket)
        c->wait_ticket = t;
    return t;
}

/* ---- pickers -------------------------------------------------------- */

bool
server_lease_to(struct server *srv, struct conn *c, const char *warehouse,
                const char *picker, int64_t lease_ms)
{
    struct order *o;
    int64_t now = server_now();

    if (pickq_next(srv->q, warehouse, picker, lease_ms, now, &o) != PICKQ_OK)
        return false;
    char note[ORDER_NAME_MAX + 48];
    snprintf(note, sizeof note, "picker=%s lease=%" PRIu64, picker, o->lease);
    server_record(srv, c, o, ACTION_NEXT, STATE_QUEUED, NULL, 0, note);
    server_reply_order(srv, c, o);
    return true;
}

void
server_block(struct server *srv, struct conn *c, const char *warehouse,
             const char *picker, int64_t lease_ms, int64_t block_ms)
{
    struct waitq *w;
    size_t wlen = strlen(warehouse);

    HASH_FIND(hh, srv->waitqs, warehouse, wlen, w);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            log_fatal("out of memory blocking a picker");
        memcpy(w->warehouse, warehouse, wlen + 1);
        HASH_ADD(hh, srv->waitqs, warehouse[0], wlen, w);
    }
    c->bq = w;
    c->bnext = NULL;
    c->bprev = w->tail;
    if (w->tail)
        w->tail->bnext = c;
    else
        w->head = c;
    w->tail = c;
    snprintf(c->block_picker, sizeof c->block_picker, "%s", picker);
    c->block_lease_ms = lease_ms;
    if (block_ms > 0) {
        struct timeval tv = ms_to_tv(block_ms);
        evtimer_add(c->block_timer, &tv);
    }
}

void
server_serve_waiters(struct server *srv, const char *warehouse)
{
    struct waitq *w;

    HASH_FIND(hh, srv->waitqs, warehouse, strlen(warehouse), w);
    while (w && w->head) {
        struct conn *c = w->head;
        bool last = c == w->tail;
        if (!server_lease_to(srv, c, w->warehouse, c->block_picker,
                             c->block_lease_ms))
            return;
        conn_unblock(c); /* frees w when c was the last waiter */
        conn_settle(c);
        conn_resume(c);
        if (last)
            return;
    }
}

/* ---- timers --------------------------------------------------------- */

static void
tick_expired(void *ctx, struct order *o, uint64_t old_lease)
{
    struct server *srv = ctx;
    char note[64];

    snprintf(note, sizeof note, "lease=%" PRIu64 " expired", old_lease);
    uint64_t t = server_record(srv, NULL, o, ACTION_EXPIRE, STATE_PICKING,
                               NULL, 0, note);
    struct evbuffer *e = event_begin(srv, "lease_expired");
    if (e) {
        event_order(e, o);
        event_int(e, "lease", (long long)old_lease);
        event_end(srv, e, t);
    }
    log_msg(LOG_INFO, "lease %" PRIu64 " of order %s expired", old_lease,
            o->id);
    server_serve_waiters(srv, o->warehouse);
}

static void
tick_escalated(void *ctx, struct order *o, int from_cls)
{
    struct server *srv = ctx;
    char note[64];

    snprintf(note, sizeof note, "effective class %s -> %s",
             order_class_name(from_cls), order_class_name(o->eff_cls));
    uint64_t t = server_record(srv, NULL, o, ACTION_ESCALATE, STATE_QUEUED,
                               NULL, 0, note);
    struct evbuffer *e = event_begin(srv, "escalated");
    if (e) {
        event_order(e, o);
        event_str(e, "from", order_class_name(from_cls));
        event_str(e, "to", order_class_name(o->eff_cls));
        event_end(srv, e, t);
    }
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct pickq_tick_cb cb = {tick_expired, tick_escalated, srv};
    (void)fd;
    (void)what;

    srv->timer_at = INT64_MAX;
    pickq_tick(srv->q, server_now(), &cb);
    server_arm_timer(srv);
}

void
server_arm_timer(struct server *srv)
{
    int64_t at = pickq_next_timer(srv->q);

    if (at == srv->timer_at)
        return;
    srv->timer_at = at;
    if (at == INT64_MAX) {
        evtimer_del(srv->timer_ev);
        return;
    }
    int64_t wait = at - server_now();
    struct timeval tv = ms_to_tv(wait > 0 ? wait : 0);
    evtimer_add(srv->timer_ev, &tv);
}

static void
forget_one(void *ctx, struct order *o)
{
    struct server *srv = ctx;
    if (!store_delete(srv->store, o->id))
        log_msg(LOG_WARN, "retention: storage refused deleting order %s",
                o->id);
}

static void
on_retention(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    (void)fd;
    (void)what;

    if (!store_ok(srv->store, NULL, 0))
        return;
    size_t n = pickq_forget_finished(srv->q, server_now() - srv->cfg.retention_ms,
                                     forget_one, srv);
    if (n)
        log_msg(LOG_INFO, "retention: removed %zu finished orders", n);
}

/* ---- start and stop ------------------------------------------------- */

static void
on_stop_check(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    (void)fd;
    (void)what;

    bool busy = srv->dwait != NULL;
    for (struct conn *c = srv->conns; c && !busy; c = c->next)
        busy = evbuffer_get_length(bufferevent_get_output(c->bev)) > 0;
    if (!busy || server_now() - srv->started > STOP_GRACE_MS) {
        event_base_loopexit(srv->base, NULL);
        return;
    }
    struct timeval tv = ms_to_tv(10);
    event_base_once(srv->base, -1, EV_TIMEOUT, on_stop_check, srv, &tv);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    (void)what;

    if (srv->stopping) {
        log_msg(LOG_WARN, "second signal, exiting now");
        event_base_loopbreak(srv->base);
        return;
    }
    log_msg(LOG_INFO, "signal %d: no new clients, flushing replies",
            (int)sig);
    srv->stopping = true;
    /* From now on `started` is when stopping began: the grace period. */
    srv->started = server_now();
    evconnlistener_disable(srv->listener);
    for (struct conn *c = srv->conns; c; c = c->next)
        bufferevent_disable(c->bev, EV_READ);
    on_stop_check(-1, 0, srv);
}

static int
recover_one(void *ctx, struct order *o)
{
    struct server *srv = ctx;
    int rc = pickq_restore(srv->q, o);
    if (rc == PICKQ_OK)
        return 0;
    /* A record that decoded but breaks the rules is kept on disk and
       skipped loudly: refusing to start would stop every other order. */
    log_msg(LOG_ERROR, "recovery: order %s skipped: %s", o->id,
            rc == PICKQ_EXISTS   ? "stored twice"
            : rc == PICKQ_BADARG ? "invalid stored fields"
                                 : "out of memory");
    order_free(o);
    return rc == PICKQ_NOMEM ? -1 : 0;
}

static int
recover(struct server *srv)
{
    char err[512];
    int64_t t0 = server_now();

    if (store_load(srv->store, recover_one, srv, err, sizeof err)) {
        log_msg(LOG_ERROR, "recovery failed: %s", err);
        return -1;
    }
    if (pickq_restore_done(srv->q) != PICKQ_OK) {
        log_msg(LOG_ERROR, "recovery failed: out of memory");
        return -1;
    }
    struct pickq_stats st;
    pickq_stats(srv->q, NULL, &st);
    size_t total = 0;
    for (int i = 0; i < STATE_COUNT; i++)
        total += st.by_state[i];
    log_msg(LOG_INFO,
            "recovered %zu orders (%zu queued, %zu picking) in %" PRId64
            " ms",
            total, st.by_state[STATE_QUEUED], st.by_state[STATE_PICKING],
            server_now() - t0);
    /* Leases that ran out while we were down go back now, recorded. */
    on_timer(-1, 0, srv);
    return 0;
}

int
server_init(struct server *srv, const struct config *cfg)
{
    char err[512];

    srv->cfg = *cfg;
    srv->started = server_now();
    srv->timer_at = INT64_MAX;
    if (evthread_use_pthreads() != 0) {
        log_msg(LOG_ERROR, "libevent: no pthreads support");
        return -1;
    }
    srv->base = event_base_new();
    srv->scratch = evbuffer_new();
    srv->q = pickq_new(&cfg->queue);
    if (!srv->base || !srv->scratch || !srv->q) {
        log_msg(LOG_ERROR, "out of memory starting");
        return -1;
    }
    srv->wake_ev = event_new(srv->base, -1, 0, on_wake, srv);
    srv->timer_ev = evtimer_new(srv->base, on_timer, srv);
    srv->retention_ev =
        event_new(srv->base, -1, EV_PERSIST, on_retention, srv);
    srv->sigint_ev = evsignal_new(srv->base, SIGINT, on_signal, srv);
    srv->sigterm_ev = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    if (!srv->wake_ev || !srv->timer_ev || !srv->retention_ev ||
        !srv->sigint_ev || !srv->sigterm_ev) {
        log_msg(LOG_ERROR, "libevent: cannot create events");
        return -1;
    }

    struct store_options so;
    store_options_default(&so);
    so.durability = cfg->durability;
    so.batch_ms = cfg->batch_ms;
    so.wake = store_woke;
    so.wake_arg = srv;
    srv->store = store_open(cfg->data, &so, err, sizeof err);
    if (!srv->store) {
        log_msg(LOG_ERROR, "cannot open store %s: %s", cfg->data, err);
        return -1;
    }
    if (recover(srv))
        return -1;

    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char addr[300];
    if (strchr(cfg->bind, ':'))
        snprintf(addr, sizeof addr, "[%s]:%d", cfg->bind, cfg->port);
    else
        snprintf(addr, sizeof addr, "%s:%d", cfg->bind, cfg->port);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen)) {
        log_msg(LOG_ERROR, "bad listen address %s", addr);
        return -1;
    }
    srv->listener = evconnlistener_new_bind(
        srv->base, on_accept, srv,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        1024, (struct sockaddr *)&ss, sslen);
    if (!srv->listener) {
        log_msg(LOG_ERROR, "cannot listen on %s: %s", addr,
                strerror(errno));
        return -1;
    }
    struct timeval tv = ms_to_tv(RETENTION_PERIOD_MS);
    if (event_add(srv->retention_ev, &tv) || event_add(srv->sigint_ev, NULL) ||
        event_add(srv->sigterm_ev, NULL)) {
        log_msg(LOG_ERROR, "libevent: cannot add events");
        return -1;
    }
    on_retention(-1, 0, srv);
    static const char *const modes[] = {"sync", "batch", "none"};
    log_msg(LOG_INFO, "dispatchd %s listening on %s, data in %s, durability %s",
            DISPATCHD_VERSION, addr, cfg->data, modes[cfg->durability]);
    return 0;
}

int
server_run(struct server *srv)
{
    if (event_base_dispatch(srv->base) < 0) {
        log_msg(LOG_ERROR, "event loop failed");
        return -1;
    }
    return 0;
}

void
server_free(struct server *srv)
{
    while (srv->conns)
        conn_free(srv->conns);
    if (srv->listener)
        evconnlistener_free(srv->listener);
    if (srv->store)
        store_close(srv->store); /* writes and syncs what is queued */
    events_free(srv);
    if (srv->q)
        pickq_free(srv->q);
    struct event **evs[] = {&srv->wake_ev,   &srv->timer_ev,
                            &srv->retention_ev, &srv->sigint_ev,
                            &srv->sigterm_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i])
            event_free(*evs[i]);
    if (srv->scratch)
        evbuffer_free(srv->scratch);
    if (srv->base)
        event_base_free(srv->base);
    libevent_global_shutdown();
}
