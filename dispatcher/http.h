/*
 * http — the HTTP/JSON gateway for the systems that speak HTTP (the ERP,
 * the WMS's outbound callback, Prometheus, load balancers), on its own
 * port and the same event loop, with libevent's evhttp and jansson.
 * Routes and errors are listed in README.md; every route is one core
 * call, and a reply that acknowledges a change waits until it is durable.
 */
#ifndef DISPATCHD_HTTP_H
#define DISPATCHD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core.h"
#include "users.h"

#define HTTP_FIELD_MAX 64

struct http_config {
    char bind[256];
    int port;                 /* 0: no HTTP */
    size_t body_max;          /* bytes of a request body: 1 MiB */
    size_t headers_max;       /* bytes of the request line and headers */
    int64_t idle_timeout_ms;  /* keep-alive connections idle this long */
    size_t max_conns;         /* connections at once */
    int64_t sse_heartbeat_ms; /* ": heartbeat" to SSE clients: 15 s */
    size_t sse_out_max;       /* unsent bytes before an SSE client is
                                 dropped: 8 MiB */
    /* The WMS callback's field names (config: wms-field-order, ...). */
    char wms_order[HTTP_FIELD_MAX];    /* order_no */
    char wms_at[HTTP_FIELD_MAX];       /* outbound_at */
    char wms_operator[HTTP_FIELD_MAX]; /* operator */
    char wms_photo[HTTP_FIELD_MAX];    /* photo_url */
    char wms_carrier[HTTP_FIELD_MAX];  /* carrier (the customer page) */
    /* The board (GET /) and the customer page (GET /o/{id}). */
    size_t board_max;          /* queued orders a board snapshot lists:
                                  200 (1..CORE_PEEK_MAX) */
    bool customer_links;       /* /o/{id}, /v1/track/{id}, customer_url */
    char public_url[256];      /* base of customer_url; "" = http://bind:port */
    char customer_secret[512]; /* the link secret's file; "" = the store's */
};

void http_config_default(struct http_config *hc);

struct http;

/* Listen.  NULL after logging why. */
struct http *http_start(struct event_base *base, struct core *core,
                        const struct users *users,
                        const struct http_config *hc);
/* Send the replies that waited for `durable` (the core's durable hook). */
void http_durable(struct http *h, uint64_t durable);
/* True while replies that wait for durability are still owed (a stop
   waits for them, within its grace period). */
bool http_busy(const struct http *h);
void http_free(struct http *h);
/* The connection counters /metrics shows (owned by the caller). */
struct conn_counters;
void http_set_counters(struct http *h, const struct conn_counters *cc);

#endif
