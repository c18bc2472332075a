/*
 * net — the daemon's outer shell: the event loop, the listening socket,
 * the signals, and the order of start and stop.  It owns the core and the
 * connections, and picks each connection's protocol by its first byte
 * (0xD5: binary, anything else: RESP).
 */
#ifndef DISPATCHD_NET_H
#define DISPATCHD_NET_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "conn.h"
#include "core.h"
#include "http.h"
#include "notify.h"
#include "users.h"

struct net {
    struct config cfg;
    struct event_base *base;
    struct core core;
    struct conn_pool pool;
    struct users users;
    struct http *http; /* NULL when --http-port 0 */
    struct notify *notify;
    struct evconnlistener *listener;
    struct event *sigint_ev, *sigterm_ev;
    bool stopping;
    int64_t stop_started; /* ms */
};

/* Start: open the store, recover, listen.  Returns 0, or -1 after logging
   why.  n must be zeroed; cfg is copied. */
int net_init(struct net *n, const struct config *cfg);
/* Run until SIGINT/SIGTERM; then stop accepting, flush, close the store. */
int net_run(struct net *n);
void net_free(struct net *n);

#endif
