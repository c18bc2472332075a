/*
 * Start, listen, stop.  A stop (SIGINT or SIGTERM) accepts nothing more,
 * reads nothing more, ends blocked NEXTs, waits up to STOP_GRACE_MS for
 * the replies still owed (they wait for durability), then closes the store,
 * which writes and syncs what is queued.
 */
#include "net.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/thread.h>

#include "log.h"
#include "proto_bin.h"
#include "proto_resp.h"

#define STOP_GRACE_MS 3000
#define BIN_MAGIC 0xD5

static const struct proto *
choose_proto(unsigned char first)
{
    return first == BIN_MAGIC ? &proto_bin : &proto_resp;
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    struct net *n = arg;
    (void)l;
    (void)salen;
    conn_accept(&n->pool, fd, sa);
}

/* The core's durable hook: every front end sends what now may go. */
static void
on_durable(void *arg, uint64_t durable)
{
    struct net *n = arg;
    conn_pool_durable(&n->pool, durable);
    if (n->http)
        http_durable(n->http, durable);
}

static bool
is_loopback(const char *bind)
{
    return strncmp(bind, "127.", 4) == 0 || strcmp(bind, "::1") == 0 ||
           strcmp(bind, "localhost") == 0;
}

static void
on_stop_check(evutil_socket_t fd, short what, void *arg)
{
    struct net *n = arg;
    (void)fd;
    (void)what;

    if ((!conn_pool_busy(&n->pool) && !(n->http && http_busy(n->http))) ||
        core_now() - n->stop_started > STOP_GRACE_MS) {
        event_base_loopexit(n->base, NULL);
        return;
    }
    struct timeval tv = {0, 10 * 1000};
    if (event_base_once(n->base, -1, EV_TIMEOUT, on_stop_check, n, &tv))
        event_base_loopexit(n->base, NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct net *n = arg;
    (void)what;

    if (n->stopping) {
        log_msg(LOG_WARN, "second signal, exiting now");
        event_base_loopbreak(n->base);
        return;
    }
    log_msg(LOG_INFO, "signal %d: no new clients, flushing replies", (int)sig);
    n->stopping = true;
    n->stop_started = core_now();
    evconnlistener_disable(n->listener);
    conn_pool_quiesce(&n->pool);
    core_stop_waiting(&n->core); /* blocked NEXTs answer nil */
    on_stop_check(-1, 0, n);
}

static int
listen_on(struct net *n)
{
    const struct config *cfg = &n->cfg;
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
    n->listener = evconnlistener_new_bind(
        n->base, on_accept, n,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, sslen);
    if (!n->listener) {
        log_msg(LOG_ERROR, "cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    static const char *const modes[] = {"sync", "batch", "none"};
    log_msg(LOG_INFO, "dispatchd %s listening on %s, data in %s, durability %s",
            DISPATCHD_VERSION, addr, cfg->data, modes[cfg->durability]);
    return 0;
}

int
net_init(struct net *n, const struct config *cfg)
{
    n->cfg = *cfg;
    if (cfg->users[0]) {
        char err[512];
        if (users_load(&n->users, cfg->users, err, sizeof err)) {
            log_msg(LOG_ERROR, "users: %s", err);
            return -1;
        }
        log_msg(LOG_INFO, "%zu users from %s: clients must authenticate",
                n->users.n, cfg->users);
    }
    if (!n->users.enabled && !is_loopback(cfg->bind)) {
        log_msg(LOG_ERROR,
                "refusing to listen on %s without --users: anyone who can "
                "reach it could change orders (bind 127.0.0.1, or give a "
                "users file)",
                cfg->bind);
        return -1;
    }
    if (evthread_use_pthreads() != 0) {
        log_msg(LOG_ERROR, "libevent: no pthreads support");
        return -1;
    }
    /* A precise clock for timers: by default libevent reads Linux's
       coarse monotonic clock (a tick of up to 4 ms), and a NEXT BLOCK or
       a lease deadline could end that much early. */
    struct event_config *ec = event_config_new();
    if (!ec || event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER)) {
        log_msg(LOG_ERROR, "libevent: cannot configure the event loop");
        if (ec)
            event_config_free(ec);
        return -1;
    }
    n->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!n->base) {
        log_msg(LOG_ERROR, "libevent: cannot create the event loop");
        return -1;
    }
    n->sigint_ev = evsignal_new(n->base, SIGINT, on_signal, n);
    n->sigterm_ev = evsignal_new(n->base, SIGTERM, on_signal, n);
    if (!n->sigint_ev || !n->sigterm_ev || event_add(n->sigint_ev, NULL) ||
        event_add(n->sigterm_ev, NULL)) {
        log_msg(LOG_ERROR, "libevent: cannot watch signals");
        return -1;
    }

    struct core_config cc = {
        .queue = cfg->queue,
        .durability = cfg->durability,
        .batch_ms = cfg->batch_ms,
        .inline_commit =
            cfg->group_commit == COMMIT_LOOP ||
            (cfg->group_commit == COMMIT_AUTO && cfg->durability != STORE_SYNC),
        .store_queue_max = (size_t)cfg->store_queue_max,
        .retention_ms = cfg->retention_ms,
        .event_retention_ms = cfg->event_retention_ms,
        .event_retention_count = cfg->event_retention_count,
    };
    snprintf(cc.checkpoint_dir, sizeof cc.checkpoint_dir, "%s",
             cfg->checkpoint_dir);
    conn_pool_init(&n->pool, n->base, &n->core);
    n->pool.choose = choose_proto;
    n->pool.max_clients = (size_t)cfg->max_clients;
    n->pool.port = cfg->port;
    n->pool.users = &n->users;
    n->pool.idle_timeout_ms = cfg->idle_timeout_ms;
    n->pool.lim.out_hard = cfg->out_hard;
    n->pool.lim.out_soft = cfg->out_soft;
    n->pool.lim.out_soft_ms = cfg->out_soft_ms;
    n->pool.lim.sub_hard = cfg->sub_hard;
    n->pool.lim.sub_soft = cfg->sub_soft;
    n->pool.lim.sub_soft_ms = cfg->sub_soft_ms;
    n->core.on_durable = on_durable;
    n->core.on_durable_arg = n;
    if (core_open(&n->core, n->base, &cc, cfg->data))
        return -1;
    /* The RESP listener opens last: a client that finds it accepting
       knows the HTTP gateway and the notifier are up too. */
    if (cfg->http.port) {
        struct http_config hc = cfg->http;
        snprintf(hc.bind, sizeof hc.bind, "%s", cfg->bind);
        n->http = http_start(n->base, &n->core, &n->users, &hc);
        if (!n->http)
            return -1;
        http_set_counters(n->http, &n->pool.cnt);
    }
    n->notify = notify_start(n->base, &n->core, &cfg->notify);
    if (!n->notify)
        return -1;
    return listen_on(n);
}

/* One turn of the loop at a time, so that what a turn changed is written
   before the loop waits again (core_before_sleep). */
int
net_run(struct net *n)
{
    for (;;) {
        int rc = event_base_loop(n->base, EVLOOP_ONCE);
        if (rc < 0) {
            log_msg(LOG_ERROR, "event loop failed");
            return -1;
        }
        core_before_sleep(&n->core);
        if (rc == 1 || event_base_got_exit(n->base) ||
            event_base_got_break(n->base))
            return 0;
    }
}

void
net_free(struct net *n)
{
    notify_free(n->notify);
    n->notify = NULL;
    conn_pool_free(&n->pool);
    http_free(n->http);
    n->http = NULL;
    if (n->listener)
        evconnlistener_free(n->listener);
    core_close(&n->core);
    if (n->sigint_ev)
        event_free(n->sigint_ev);
    if (n->sigterm_ev)
        event_free(n->sigterm_ev);
    if (n->base)
        event_base_free(n->base);
    users_free(&n->users);
    libevent_global_shutdown();
}
