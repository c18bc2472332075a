/*
 * The HTTP/JSON gateway.
 *
 * One evhttp server on the loop.  A request is routed by method and path
 * (the table below), authenticated (Bearer secret) and authorised (the
 * users table) before its JSON body is read; then it makes one core call
 * and answers JSON.  Errors are {"error": CODE, "message": ...} with the
 * code words RESP uses and the matching status.  A reply that
 * acknowledges a change is held until its store ticket is durable
 * (http_durable); libevent keeps a held request safe when its client
 * goes away.
 *
 * evhttp 2.1 has no connection limit of its own.  A connection is
 * counted from its first request (its close callback uncounts it); one
 * that would pass --http-max-connections is answered 503 BUSY and
 * closed.  A connection that never sends a request is not counted, and
 * is closed by the idle timeout.
 *
 * Long because it is one handler per route (the route table near the
 * end is the index), the SSE stream and the connection count.
 */
#include "http.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <uthash.h>

#include "board.h"
#include "conn.h"
#include "draft.h"
#include "jview.h"
#include "log.h"
#include "metrics.h"
#include "track.h"
#include "view.h"
#include "web.h"

#define PEEK_DEFAULT 10
#define EVHTTP_BODY_CAP ((size_t)4 << 20) /* beyond: evhttp's own 413 */

struct pending {
    struct evhttp_request *req;
    uint64_t ticket;
    int status;
    struct evbuffer *body;
    struct pending *next;
};

/* A connection that sent a request (evhttp owns it). */
struct known_conn {
    struct evhttp_connection *evcon;
    UT_hash_handle hh;
};

struct sse;

struct http {
    struct http_config cfg;
    struct event_base *base;
    struct core *core;
    const struct users *users;
    const struct conn_counters *cc;
    struct evhttp *eh;
    size_t nconns;
    struct known_conn *known;    /* by evcon pointer */
    struct pending *head, *tail; /* waiting for durability, in order */
    uint64_t requests;
    struct sse *sse;    /* GET /v1/events streams */
    uint64_t sse_drops; /* streams dropped: over sse_out_max unsent */
    struct board *board;
    struct track track;      /* customer links (when cfg.customer_links) */
    struct event *change_ev; /* sends "change" to ?changes=1 streams */
    bool change_armed;
    uint64_t changes; /* order changes recorded since start */
};

void
http_config_default(struct http_config *hc)
{
    memset(hc, 0, sizeof *hc);
    snprintf(hc->bind, sizeof hc->bind, "127.0.0.1");
    hc->port = 7421;
    hc->body_max = (size_t)1 << 20;
    hc->headers_max = 16 * 1024;
    hc->idle_timeout_ms = 60 * 1000;
    hc->max_conns = 1024;
    hc->sse_heartbeat_ms = 15 * 1000;
    hc->sse_out_max = (size_t)8 << 20;
    snprintf(hc->wms_order, sizeof hc->wms_order, "order_no");
    snprintf(hc->wms_at, sizeof hc->wms_at, "outbound_at");
    snprintf(hc->wms_operator, sizeof hc->wms_operator, "operator");
    snprintf(hc->wms_photo, sizeof hc->wms_photo, "photo_url");
    snprintf(hc->wms_carrier, sizeof hc->wms_carrier, "carrier");
    hc->board_max = 200;
    hc->customer_links = true;
}

/* ---- one request ---------------------------------------------------- */

struct hreq {
    struct http *h;
    struct evhttp_request *req;
    const struct user *user;
    char actor[USER_NAME_MAX + 80];
    const char *body; /* the raw body (NUL-terminated copy), or NULL */
    size_t body_len;
    json_t *json; /* the parsed body, an object, or NULL */
    char *seg[6]; /* decoded path segments */
    size_t nseg;
    const char *query;
};

static int
status_of(int code)
{
    switch (code) {
    case CORE_NOTFOUND:
        return 404;
    case CORE_BADSTATE:
    case CORE_EXISTS:
    case CORE_LEASE:
        return 409;
    case CORE_BADARG:
        return 400;
    case CORE_TOOBIG:
        return 413;
    case CORE_BUSY:
    case CORE_READONLY:
        return 503;
    case CORE_NOPERM:
        return 403;
    default:
        return 500;
    }
}

static const char *
reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static void
send_now(struct evhttp_request *req, int status, struct evbuffer *body)
{
    evhttp_send_reply(req, status, reason_of(status), body);
}

/* Send j (taken) with status, once ticket is durable. */
static void
reply_json(struct hreq *r, int status, json_t *j, uint64_t ticket)
{
    struct http *h = r->h;
    struct evbuffer *b = evbuffer_new();
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!b || !text)
        log_fatal("out of memory answering HTTP");
    evbuffer_add(b, text, strlen(text));
    evbuffer_add(b, "\n", 1);
    free(text);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(oh, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(oh, "Cache-Control", "no-store");
    if (ticket <= core_durable(h->core) && !h->head) {
        send_now(r->req, status, b);
        evbuffer_free(b);
        return;
    }
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        log_fatal("out of memory holding an HTTP reply");
    p->req = r->req;
    p->ticket = ticket;
    p->status = status;
    p->body = b;
    if (h->tail)
        h->tail->next = p;
    else
        h->head = p;
    h->tail = p;
}

static void reply_error(struct hreq *r, int status, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply_error(struct hreq *r, int status, const char *code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(code));
    /* Messages quote client bytes: keep them valid UTF-8. */
    json_t *m = json_string(msg);
    if (!m) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        m = json_string(msg);
    }
    json_object_set_new(j, "message", m);
    reply_json(r, status, j, 0);
}

static void
reply_result(struct hreq *r, const struct core_result *res)
{
    reply_error(r, status_of(res->code), core_code_word(res->code), "%s",
                res->msg);
}

void
http_durable(struct http *h, uint64_t durable)
{
    while (h->head && h->head->ticket <= durable) {
        struct pending *p = h->head;
        h->head = p->next;
        if (!h->head)
            h->tail = NULL;
        send_now(p->req, p->status, p->body);
        evbuffer_free(p->body);
        free(p);
    }
}

static void add_customer_url(struct hreq *r, json_t *j, const struct order *o);

/* ---- body fields ---------------------------------------------------- */

/* A string member (NULL when absent); *bad when present but not a
   string. */
static const char *
get_str(json_t *obj, const char *key, size_t *len, bool *bad)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

/* A time member: epoch ms (number) or ISO 8601 (string).  0 when absent;
   -1 when invalid. */
static int64_t
get_time(json_t *obj, const char *key)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    int64_t ms;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? json_integer_value(v) : -1;
    if (json_is_string(v) &&
        order_time_parse(json_string_value(v), json_string_length(v), &ms) ==
            0 &&
        ms > 0)
        return ms;
    return -1;
}

/* ---- routes --------------------------------------------------------- */

static void
route_push(struct hreq *r)
{
    char err[256];
    struct core_result res;
    size_t idlen = 0, clen = 0, n = 0;
    bool bad = false;
    const char *id = get_str(r->json, "id", &idlen, &bad);
    const char *cls = get_str(r->json, "class", &clen, &bad);

    if (bad || !id || !cls) {
        reply_error(r, 400, "BADARG",
                    "\"id\" and \"class\" are required "
                    "strings");
        return;
    }
    struct order *o = draft_new(id, idlen, cls, clen, err, sizeof err);
    if (!o) {
        reply_error(r, 400, "BADARG", "%s", err);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(r->json, key, v)
    {
        char buf[40];
        const char *s = NULL;
        int rc = 0;
        if (!strcmp(key, "id") || !strcmp(key, "class"))
            continue;
        if (!strcmp(key, "approved")) {
            if (!json_is_boolean(v)) {
                snprintf(err, sizeof err, "\"approved\" must be true or false");
                goto bad;
            }
            o->state = json_is_true(v) ? STATE_QUEUED : STATE_NEW;
            continue;
        }
        if (!strcmp(key, "attrs")) {
            if (!json_is_object(v)) {
                snprintf(err, sizeof err, "\"attrs\" must be an object");
                goto bad;
            }
            const char *ak;
            json_t *av;
            json_object_foreach(v, ak, av)
            {
                if (!json_is_string(av)) {
                    snprintf(err, sizeof err,
                             "attribute \"%.64s\" must be a string", ak);
                    goto bad;
                }
                rc = draft_attr(o, ak, strlen(ak), json_string_value(av),
                                json_string_length(av), err, sizeof err);
                if (rc == -2)
                    snprintf(err, sizeof err, "out of memory");
                if (rc)
                    goto bad;
            }
            continue;
        }
        if (!strcmp(key, "risk")) {
            /* An array of words, or the comma-separated string. */
            char words[128] = "";
            size_t wl = 0, i;
            json_t *w;
            if (json_is_array(v)) {
                json_array_foreach(v, i, w)
                {
                    if (!json_is_string(w) ||
                        wl + json_string_length(w) + 2 > sizeof words) {
                        snprintf(err, sizeof err, "invalid \"risk\"");
                        goto bad;
                    }
                    wl +=
                        (size_t)snprintf(words + wl, sizeof words - wl, "%s%s",
                                         wl ? "," : "", json_string_value(w));
                }
                rc = draft_set(o, "risk", 4, words, wl, err, sizeof err);
                if (rc)
                    goto bad;
                continue;
            }
        }
        if (json_is_string(v)) {
            s = json_string_value(v);
            n = json_string_length(v);
        } else if (json_is_integer(v) && !strcmp(key, "deadline")) {
            n = (size_t)snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                                 json_integer_value(v));
            s = buf;
        } else {
            snprintf(err, sizeof err, "invalid \"%.64s\"", key);
            goto bad;
        }
        rc = draft_set(o, key, strlen(key), s, n, err, sizeof err);
        if (rc == -2)
            snprintf(err, sizeof err, "unknown field \"%.64s\"", key);
        if (rc)
            goto bad;
    }
    core_push(r->h->core, r->actor, o, r->body, r->body_len, &res);
    if (core_code_is_error(res.code)) {
        reply_result(r, &res);
        return;
    }
    reply_json(r, res.code == CORE_ALREADY ? 200 : 201,
               jview_order(r->h->core, res.order), res.ticket);
    return;
bad:
    order_free(o);
    reply_error(r, 400, "BADARG", "%s", err);
}

/* The answer to a change: the order as it is now. */
static void
reply_change(struct hreq *r, const struct core_result *res)
{
    if (core_code_is_error(res->code)) {
        reply_result(r, res);
        return;
    }
    json_t *j = jview_order(r->h->core, res->order);
    json_object_set_new(
        j, "result", json_string(res->code == CORE_ALREADY ? "already" : "ok"));
    reply_json(r, 200, j, res->ticket);
}

static void
route_order_action(struct hreq *r)
{
    struct core_result res;
    struct core *c = r->h->core;
    const char *id = r->seg[2], *act = r->seg[3];
    size_t idlen = strlen(id), n = 0;
    bool bad = false;

    if (!strcmp(act, "approve")) {
        core_approve(c, r->actor, id, idlen, r->body, r->body_len, &res);
    } else if (!strcmp(act, "hold") || !strcmp(act, "cancel")) {
        const char *why = get_str(r->json, "reason", &n, &bad);
        if (bad) {
            reply_error(r, 400, "BADARG", "\"reason\" must be a string");
            return;
        }
        (act[0] == 'h' ? core_hold : core_cancel)(c, r->actor, id, idlen, why,
                                                  why ? n : 0, r->body,
                                                  r->body_len, &res);
    } else if (!strcmp(act, "reprio")) {
        const char *cls = get_str(r->json, "class", &n, &bad);
        int k = cls ? order_class_parse(cls, n) : -1;
        int64_t dl = get_time(r->json, "deadline");
        if (bad || k < 0 || dl < 0) {
            reply_error(r, 400, "BADARG",
                        "reprio needs \"class\" (asn, rush4h, rush24h, "
                        "normal) and an optional \"deadline\" (ms or ISO "
                        "8601)");
            return;
        }
        core_reprio(c, r->actor, id, idlen, k, dl, r->body, r->body_len, &res);
    } else if (!strcmp(act, "picked")) {
        json_t *l = r->json ? json_object_get(r->json, "lease") : NULL;
        uint64_t lease = 0;
        char *end = NULL;
        if (l && json_is_string(l))
            lease = strtoull(json_string_value(l), &end, 10);
        else if (l && json_is_integer(l) && json_integer_value(l) > 0)
            lease = (uint64_t)json_integer_value(l);
        if (!l || (end && *end) || lease == 0) {
            reply_error(r, 400, "BADARG",
                        "picked needs \"lease\" (the "
                        "lease id, a string or number)");
            return;
        }
        core_picked(c, r->actor, id, idlen, lease, r->body, r->body_len, &res);
    } else { /* deliver */
        int64_t at = get_time(r->json, "at");
        if (at < 0) {
            reply_error(r, 400, "BADARG", "\"at\" must be ms or ISO 8601");
            return;
        }
        core_deliver(c, r->actor, id, idlen, at, r->body, r->body_len, &res);
    }
    reply_change(r, &res);
}

static void
route_get_order(struct hreq *r)
{
    struct core_result res;
    struct core *c = r->h->core;
    const char *id = r->seg[2];

    core_get(c, id, strlen(id), &res);
    if (core_code_is_error(res.code)) {
        reply_result(r, &res);
        return;
    }
    const struct order *o = res.order;
    json_t *j = jview_order(c, o);
    json_t *trail = json_array();
    core_audit(c, id, strlen(id), jview_audit_one, trail, &res);
    if (core_code_is_error(res.code)) {
        json_decref(j);
        json_decref(trail);
        reply_result(r, &res);
        return;
    }
    json_object_set_new(j, "audit", trail);
    add_customer_url(r, j, o);
    reply_json(r, 200, j, 0);
}

static void
route_queue(struct hreq *r)
{
    static struct order *top[CORE_PEEK_MAX];
    struct core_result res;
    long limit = PEEK_DEFAULT;
    struct evkeyvalq q;

    TAILQ_INIT(&q);
    if (r->query && evhttp_parse_query_str(r->query, &q) == 0) {
        const char *l = evhttp_find_header(&q, "limit");
        char *end = NULL;
        if (l)
            limit = strtol(l, &end, 10);
        if (l && (!*l || *end || limit < 1 || limit > CORE_PEEK_MAX)) {
            evhttp_clear_headers(&q);
            reply_error(r, 400, "BADARG", "limit must be 1 to %d",
                        CORE_PEEK_MAX);
            return;
        }
    }
    evhttp_clear_headers(&q);
    const char *wh = r->seg[2];
    if (strlen(wh) > ORDER_NAME_MAX) {
        reply_error(r, 400, "BADARG", "warehouse must be at most %d bytes",
                    ORDER_NAME_MAX);
        return;
    }
    size_t n = core_peek(r->h->core, wh, (size_t)limit, top, &res);
    if (n == (size_t)-1) {
        reply_result(r, &res);
        return;
    }
    json_t *j = json_object(), *arr = json_array();
    json_object_set_new(j, "warehouse", jview_str(wh, strlen(wh)));
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, jview_order(r->h->core, top[i]));
    json_object_set_new(j, "orders", arr);
    reply_json(r, 200, j, 0);
}

/* The WMS says an order left: the body is kept verbatim in the audit
   trail, whatever else it carries. */
static void
route_outbound(struct hreq *r)
{
    const struct http_config *hc = &r->h->cfg;
    struct core_result res;
    size_t idlen = 0, oplen = 0, phlen = 0;
    bool bad = false;
    char op[ORDER_NAME_MAX + 1];

    const char *id = get_str(r->json, hc->wms_order, &idlen, &bad);
    const char *who = get_str(r->json, hc->wms_operator, &oplen, &bad);
    const char *photo = get_str(r->json, hc->wms_photo, &phlen, &bad);
    int64_t at = get_time(r->json, hc->wms_at);
    if (bad || !id || !who || at < 0) {
        reply_error(r, 400, "BADARG",
                    "the callback needs \"%s\" and \"%s\" (strings), and "
                    "\"%s\" as ms or ISO 8601 when given",
                    hc->wms_order, hc->wms_operator, hc->wms_at);
        return;
    }
    if (oplen == 0 || oplen > ORDER_NAME_MAX || memchr(who, '\0', oplen)) {
        reply_error(r, 400, "BADARG", "\"%s\" must be 1 to %d bytes",
                    hc->wms_operator, ORDER_NAME_MAX);
        return;
    }
    memcpy(op, who, oplen);
    op[oplen] = '\0';
    struct core_confirm_args a = {op, at, photo, photo ? phlen : 0};
    core_outbound(r->h->core, r->actor, id, idlen, &a, r->body, r->body_len,
                  &res);
    if (core_code_is_error(res.code)) {
        reply_result(r, &res);
        return;
    }
    json_t *j = json_object();
    json_object_set_new(j, "order",
                        jview_str(res.order->id, strlen(res.order->id)));
    json_object_set_new(j, "state",
                        json_string(order_state_name(res.order->state)));
    json_object_set_new(
        j, "result", json_string(res.code == CORE_ALREADY ? "already" : "ok"));
    reply_json(r, 200, j, res.ticket);
}

static void
route_metrics(struct hreq *r)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory answering /metrics");
    metrics_render(b, r->h->core, r->h->cc);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(oh, "Content-Type",
                      "text/plain; version=0.0.4; "
                      "charset=utf-8");
    evhttp_add_header(oh, "Cache-Control", "no-store");
    send_now(r->req, 200, b);
    evbuffer_free(b);
}

static void
route_healthz(struct hreq *r)
{
    struct core_stats st;
    core_stats(r->h->core, NULL, &st);
    json_t *j = json_object();
    json_object_set_new(j, "status",
                        json_string(st.storage_ok ? "ok" : "readonly"));
    json_object_set_new(j, "storage",
                        json_string(st.storage_ok ? "ok" : st.storage_reason));
    reply_json(r, st.storage_ok ? 200 : 503, j, 0);
}

/* ---- GET /v1/events: server-sent events ------------------------------

   A stream first replays the log after the client's position
   (Last-Event-ID, or ?from=), one page of SSE_PAGE events at a time, the
   next page once the previous one is written (so a long backlog never
   sits in memory), then listens for live events.  A stream whose unsent
   output passes cfg.sse_out_max is dropped (counted). */

#define SSE_PAGE 500

struct sse {
    struct http *h;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event_sink sink;
    struct event *beat; /* heartbeat; made active to drop the stream */
    uint64_t last;      /* the last sequence sent */
    bool live;          /* backlog done, listening */
    bool dropping;
    bool changes; /* ?changes=1: also "change" messages (the board) */
    struct sse *prev, *next;
};

static void
sse_block(struct evbuffer *b, uint64_t seq, const char *json, size_t len)
{
    char type[32];
    core_event_type(json, len, type, sizeof type);
    evbuffer_add_printf(b, "id: %" PRIu64 "\nevent: %s\ndata: ", seq,
                        type[0] ? type : "message");
    evbuffer_add(b, json, len); /* one line: the JSON escapes newlines */
    evbuffer_add(b, "\n\n", 2);
}

static void
sse_free(struct sse *x)
{
    struct http *h = x->h;
    events_unlisten(&h->core->events, &x->sink);
    event_free(x->beat);
    /* A peer that hung up mid-stream leaves the request detached from its
       connection (libevent 2.1): it is ours to free then, and
       evhttp_send_reply_end does.  Otherwise the connection frees it. */
    if (!evhttp_request_get_connection(x->req))
        evhttp_send_reply_end(x->req);
    if (x->prev)
        x->prev->next = x->next;
    else
        h->sse = x->next;
    if (x->next)
        x->next->prev = x->prev;
    free(x);
}

static size_t
sse_unsent(const struct sse *x)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(x->evcon);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void
sse_drop(struct sse *x)
{
    if (x->dropping)
        return;
    x->dropping = true;
    x->h->sse_drops++;
    log_msg(LOG_WARN,
            "SSE client: over %zu bytes unsent, dropped (%" PRIu64 " so far)",
            x->h->cfg.sse_out_max, x->h->sse_drops);
    events_unlisten(&x->h->core->events, &x->sink);
    /* Not from here: this may be a sink called while events publish. */
    event_active(x->beat, EV_TIMEOUT, 0);
}

static void
sse_emit(struct event_sink *s, uint64_t seq, const char *type, const char *json,
         size_t len)
{
    struct sse *x = s->ctx;
    (void)type;
    if (seq <= x->last || x->dropping)
        return;
    if (sse_unsent(x) > x->h->cfg.sse_out_max) {
        sse_drop(x);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory: SSE");
    sse_block(b, seq, json, len);
    x->last = seq;
    evhttp_send_reply_chunk(x->req, b);
    evbuffer_free(b);
}

static void
sse_beat(evutil_socket_t fd, short what, void *arg)
{
    struct sse *x = arg;
    (void)fd;
    (void)what;
    if (x->dropping) {
        /* Calls conn_closed, which frees x. */
        evhttp_connection_free(x->evcon);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory: SSE");
    evbuffer_add_printf(b, ": heartbeat\n\n");
    evhttp_send_reply_chunk(x->req, b);
    evbuffer_free(b);
}

struct sse_page {
    struct evbuffer *b;
    struct sse *x;
    size_t n;
};

static int
sse_page_one(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct sse_page *p = ctx;
    sse_block(p->b, seq, json, len);
    p->x->last = seq;
    p->n++;
    return 0;
}

static void sse_next_page(struct evhttp_connection *evcon, void *arg);

/* Send the next page of the backlog, or start listening. */
static void
sse_page(struct sse *x)
{
    struct core_result res;
    struct sse_page p = {evbuffer_new(), x, 0};
    if (!p.b)
        log_fatal("out of memory: SSE");
    core_events(x->h->core, x->last, SSE_PAGE, sse_page_one, &p, &res);
    if (res.code != CORE_OK)
        log_msg(LOG_WARN, "SSE backlog: %s", res.msg);
    if (p.n == SSE_PAGE && res.code == CORE_OK) {
        evhttp_send_reply_chunk_with_cb(x->req, p.b, sse_next_page, x);
    } else {
        if (evbuffer_get_length(p.b))
            evhttp_send_reply_chunk(x->req, p.b);
        x->live = true;
        events_listen(&x->h->core->events, &x->sink);
    }
    evbuffer_free(p.b);
}

static void
sse_next_page(struct evhttp_connection *evcon, void *arg)
{
    struct sse *x = arg;
    (void)evcon;
    if (!x->dropping)
        sse_page(x);
}

static void
route_events(struct hreq *r)
{
    struct http *h = r->h;
    uint64_t from = 0;
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(r->req),
                                       "Last-Event-ID");
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    bool changes = false;
    if (r->query && evhttp_parse_query_str(r->query, &q) == 0) {
        const char *ch = evhttp_find_header(&q, "changes");
        changes = ch && strcmp(ch, "1") == 0;
        if (!v)
            v = evhttp_find_header(&q, "from");
    }
    if (v) {
        char *end = NULL;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*v || *end || *v == '-') {
            evhttp_clear_headers(&q);
            reply_error(r, 400, "BADARG",
                        "the event id must be a sequence number, not '%.40s'",
                        v);
            return;
        }
        from = n;
    }
    evhttp_clear_headers(&q);
    struct sse *x = calloc(1, sizeof *x);
    if (!x)
        log_fatal("out of memory: SSE");
    x->h = h;
    x->req = r->req;
    x->evcon = evhttp_request_get_connection(r->req);
    x->last = from;
    x->changes = changes;
    x->sink.emit = sse_emit;
    x->sink.ctx = x;
    x->beat = event_new(h->base, -1, EV_PERSIST, sse_beat, x);
    if (!x->beat)
        log_fatal("out of memory: SSE");
    struct timeval tv = {.tv_sec = h->cfg.sse_heartbeat_ms / 1000,
                         .tv_usec = (h->cfg.sse_heartbeat_ms % 1000) * 1000};
    event_add(x->beat, &tv);
    x->next = h->sse;
    if (h->sse)
        h->sse->prev = x;
    h->sse = x;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(oh, "Content-Type", "text/event-stream");
    evhttp_add_header(oh, "Cache-Control", "no-cache");
    evhttp_send_reply_start(r->req, 200, "OK");
    sse_page(x);
}

/* ---- changes for the board -------------------------------------------

   The event log tells of jumps and risks, not of every push, lease or
   outbound; the board must see those too.  Each recorded change arms one
   short timer (CHANGE_MS), and when it fires every stream that asked for
   changes (?changes=1) gets one "change" message without an id, so a
   surge costs a board a refresh per CHANGE_MS at most and the stream's
   Last-Event-ID stays the log's. */

#define CHANGE_MS 100

static void
on_changes(evutil_socket_t fd, short what, void *arg)
{
    struct http *h = arg;
    (void)fd;
    (void)what;
    h->change_armed = false;
    for (struct sse *x = h->sse; x; x = x->next) {
        if (!x->changes || !x->live || x->dropping)
            continue;
        if (sse_unsent(x) > h->cfg.sse_out_max) {
            sse_drop(x);
            continue;
        }
        struct evbuffer *b = evbuffer_new();
        if (!b)
            log_fatal("out of memory: SSE");
        evbuffer_add_printf(
            b, "event: change\ndata: {\"changes\":%" PRIu64 "}\n\n",
            h->changes);
        evhttp_send_reply_chunk(x->req, b);
        evbuffer_free(b);
    }
}

static void
on_change(void *arg, const struct order *o, int action, int from)
{
    struct http *h = arg;
    h->changes++;
    /* A first outbound (a repeat is recorded from shipped; the outbound a
       delivery implies is recorded with the order already delivered). */
    if (h->cfg.customer_links && action == ACTION_OUTBOUND &&
        from != STATE_SHIPPED && from != STATE_DELIVERED)
        track_outbound(&h->track, o);
    if (h->change_armed)
        return;
    struct timeval tv = {0, CHANGE_MS * 1000};
    if (event_add(h->change_ev, &tv) == 0)
        h->change_armed = true;
    else
        log_msg(LOG_WARN, "libevent: cannot arm the board's change timer");
}

/* ---- the board and the customer page --------------------------------- */

static void
route_asset(struct hreq *r)
{
    const struct web_asset *a = web_find(r->nseg ? r->seg[0] : "board.html");
    if (!a) {
        reply_error(r, 404, "NOTFOUND", "no such file");
        return;
    }
    web_reply(r->req, a);
}

/* A query parameter (decoded, copied into buf), or NULL when absent. */
static const char *
query_param(struct hreq *r, const char *key, char *buf, size_t cap)
{
    struct evkeyvalq q;
    const char *v = NULL;
    TAILQ_INIT(&q);
    if (r->query && evhttp_parse_query_str(r->query, &q) == 0)
        v = evhttp_find_header(&q, key);
    if (v && strlen(v) < cap) {
        snprintf(buf, cap, "%s", v);
        v = buf;
    } else if (v) {
        buf[0] = '\0';
        v = buf; /* too long: the caller refuses an empty value */
    }
    evhttp_clear_headers(&q);
    return v;
}

static void
route_board(struct hreq *r)
{
    char wh[ORDER_NAME_MAX + 2], lim[16];
    const char *w = query_param(r, "wh", wh, sizeof wh);
    const char *l = query_param(r, "limit", lim, sizeof lim);
    long limit = (long)r->h->cfg.board_max;
    if (!w)
        w = CORE_DEFAULT_WAREHOUSE;
    if (!*w || strlen(w) > ORDER_NAME_MAX) {
        reply_error(r, 400, "BADARG", "wh must be 1 to %d bytes",
                    ORDER_NAME_MAX);
        return;
    }
    if (l) {
        char *end = NULL;
        limit = strtol(l, &end, 10);
        if (!*l || *end || limit < 1 || limit > CORE_PEEK_MAX) {
            reply_error(r, 400, "BADARG", "limit must be 1 to %d",
                        CORE_PEEK_MAX);
            return;
        }
    }
    struct core_result res;
    json_t *j = board_json(r->h->board, w, (size_t)limit, &res);
    if (!j) {
        reply_result(r, &res);
        return;
    }
    reply_json(r, 200, j, 0);
}

/* The order a customer link opens, or NULL after the one 404 that an
   unknown order and a wrong token share. */
static const struct order *
customer_order(struct hreq *r)
{
    struct http *h = r->h;
    char tok[TRACK_TOKEN_LEN + 2];
    const char *id = r->seg[r->nseg - 1];
    size_t idlen = strlen(id);
    struct core_result res;
    if (!h->cfg.customer_links) {
        reply_error(r, 404, "NOTFOUND", "customer links are off");
        return NULL;
    }
    const char *t = query_param(r, "t", tok, sizeof tok);
    core_get(h->core, id, idlen, &res);
    /* The token is checked whether or not the order exists: the same
       work and the same answer either way. */
    bool ok = track_check(&h->track, id, idlen, t);
    if (!ok || core_code_is_error(res.code)) {
        reply_error(r, 404, "NOTFOUND", "no such order");
        return NULL;
    }
    return res.order;
}

static void
route_customer_page(struct hreq *r)
{
    if (!customer_order(r))
        return;
    const struct web_asset *a = web_find("order.html");
    if (!a) {
        reply_error(r, 404, "NOTFOUND", "no such file");
        return;
    }
    web_reply(r->req, a);
}

static void
route_track(struct hreq *r)
{
    const struct order *o = customer_order(r);
    if (!o)
        return;
    json_t *j = track_json(&r->h->track, r->h->core, o);
    if (!j) {
        reply_error(r, 503, "BUSY", "out of memory");
        return;
    }
    reply_json(r, 200, j, 0);
}

/* customer_url for GET /v1/orders/{id}: for erp and admin (the ERP sends
   the link), when customer links are on. */
static void
add_customer_url(struct hreq *r, json_t *j, const struct order *o)
{
    struct http *h = r->h;
    if (!h->cfg.customer_links)
        return;
    if (h->users->enabled && r->user && r->user->role != ROLE_ERP &&
        r->user->role != ROLE_ADMIN)
        return;
    char tok[TRACK_TOKEN_LEN + 1];
    track_token(&h->track, o->id, strlen(o->id), tok);
    char *enc = evhttp_uriencode(o->id, (ev_ssize_t)strlen(o->id), 0);
    if (!enc)
        log_fatal("out of memory: customer_url");
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory: customer_url");
    if (h->cfg.public_url[0])
        evbuffer_add_printf(b, "%s", h->cfg.public_url);
    else
        evbuffer_add_printf(b, "http://%s:%d", h->cfg.bind, h->cfg.port);
    evbuffer_add_printf(b, "/o/%s?t=%s", enc, tok);
    free(enc);
    size_t n = evbuffer_get_length(b);
    json_object_set_new(j, "customer_url",
                        jview_str((const char *)evbuffer_pullup(b, -1), n));
    evbuffer_free(b);
}

/* The routing table.  A pattern segment "*" matches any one segment. */
struct route {
    int method; /* EVHTTP_REQ_* */
    const char *path[6];
    int op;    /* enum op; -1: no authentication (health checks) */
    bool body; /* reads a JSON body (POST) */
    void (*fn)(struct hreq *r);
};

static const struct route routes[] = {
    {EVHTTP_REQ_POST, {"v1", "orders"}, OP_PUSH, true, route_push},
    {EVHTTP_REQ_GET, {"v1", "orders", "*"}, OP_GET, false, route_get_order},
    {EVHTTP_REQ_POST,
     {"v1", "orders", "*", "approve"},
     OP_APPROVE,
     true,
     route_order_action},
    {EVHTTP_REQ_POST,
     {"v1", "orders", "*", "hold"},
     OP_HOLD,
     true,
     route_order_action},
    {EVHTTP_REQ_POST,
     {"v1", "orders", "*", "cancel"},
     OP_CANCEL,
     true,
     route_order_action},
    {EVHTTP_REQ_POST,
     {"v1", "orders", "*", "reprio"},
     OP_REPRIO,
     true,
     route_order_action},
    {EVHTTP_REQ_POST,
     {"v1", "orders", "*", "deliver"},
     OP_DELIVER,
     true,
     route_order_action},
    {EVHTTP_REQ_POST,
     {"v1", "orders", "*", "picked"},
     OP_PICKED,
     true,
     route_order_action},
    {EVHTTP_REQ_GET,
     {"v1", "warehouses", "*", "queue"},
     OP_PEEK,
     false,
     route_queue},
    {EVHTTP_REQ_POST,
     {"v1", "wms", "outbound"},
     OP_OUTBOUND,
     true,
     route_outbound},
    {EVHTTP_REQ_GET, {"metrics"}, OP_METRICS, false, route_metrics},
    {EVHTTP_REQ_GET, {"v1", "events"}, OP_EVENTS, false, route_events},
    {EVHTTP_REQ_GET, {"healthz"}, -1, false, route_healthz},
    /* The board's files are public (they hold no data); its data, from
       /v1/board and /v1/events, is behind the roles. */
    {EVHTTP_REQ_GET, {NULL}, -1, false, route_asset},
    {EVHTTP_REQ_GET, {"board.css"}, -1, false, route_asset},
    {EVHTTP_REQ_GET, {"board.js"}, -1, false, route_asset},
    {EVHTTP_REQ_GET, {"order.css"}, -1, false, route_asset},
    {EVHTTP_REQ_GET, {"order.js"}, -1, false, route_asset},
    {EVHTTP_REQ_GET, {"v1", "board"}, OP_PEEK, false, route_board},
    /* The customer's: the token in the link is the authorisation. */
    {EVHTTP_REQ_GET, {"o", "*"}, -1, false, route_customer_page},
    {EVHTTP_REQ_GET, {"v1", "track", "*"}, -1, false, route_track},
};

static bool
route_matches(const struct route *rt, struct hreq *r)
{
    size_t n = 0;
    while (n < 6 && rt->path[n])
        n++;
    if (n != r->nseg)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rt->path[i], "*") && strcmp(rt->path[i], r->seg[i]))
            return false;
    return true;
}

static bool
split_path(struct hreq *r, const char *path)
{
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (r->nseg == 6)
            return false;
        char *enc = strndup(p, len);
        if (!enc)
            log_fatal("out of memory routing HTTP");
        size_t dlen = 0;
        char *dec = evhttp_uridecode(enc, 0, &dlen);
        free(enc);
        if (!dec)
            log_fatal("out of memory routing HTTP");
        if (dlen != strlen(dec)) { /* a %00 */
            free(dec);
            return false;
        }
        r->seg[r->nseg++] = dec;
        p += len;
        while (*p == '/')
            p++;
    }
    return true;
}

/* Bearer authentication and the role check.  False after replying. */
static bool
authorise(struct hreq *r, int op)
{
    const struct users *us = r->h->users;
    char peer[64] = "?";
    char *addr = NULL;
    ev_uint16_t port = 0;

    evhttp_connection_get_peer(evhttp_request_get_connection(r->req), &addr,
                               &port);
    if (addr)
        snprintf(peer, sizeof peer, "%s:%u", addr, (unsigned)port);
    snprintf(r->actor, sizeof r->actor, "http-%s", peer);
    if (op < 0 || !us->enabled)
        return true;
    const char *auth = evhttp_find_header(
        evhttp_request_get_input_headers(r->req), "Authorization");
    struct evkeyvalq *oh = evhttp_request_get_output_headers(r->req);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        evhttp_add_header(oh, "WWW-Authenticate", "Bearer realm=\"dispatchd\"");
        reply_error(r, 401, "NOAUTH",
                    "authentication required: "
                    "Authorization: Bearer <secret>");
        return false;
    }
    const char *secret = auth + 7;
    while (*secret == ' ')
        secret++;
    r->user = users_by_secret(us, secret, strlen(secret));
    if (!r->user) {
        evhttp_add_header(
            oh, "WWW-Authenticate",
            "Bearer realm=\"dispatchd\", error=\"invalid_token\"");
        reply_error(r, 401, "WRONGPASS", "invalid secret");
        return false;
    }
    snprintf(r->actor, sizeof r->actor, "%s", r->user->name);
    if (!role_allows(r->user->role, op)) {
        reply_error(r, 403, "NOPERM", "user %s (%s) may not %s", r->user->name,
                    role_name(r->user->role), op_name(op));
        return false;
    }
    return true;
}

/* Read and parse the JSON body.  False after replying. */
static bool
read_body(struct hreq *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    if (len > r->h->cfg.body_max) {
        reply_error(r, 413, "TOOBIG", "body of %zu bytes (at most %zu)", len,
                    r->h->cfg.body_max);
        return false;
    }
    if (len == 0)
        return true; /* actions without parameters */
    const char *ct = evhttp_find_header(
        evhttp_request_get_input_headers(r->req), "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
        reply_error(r, 415, "BADARG",
                    "the body must be application/json, "
                    "not %.64s",
                    ct ? ct : "(none)");
        return false;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        log_fatal("out of memory reading an HTTP body");
    evbuffer_copyout(in, copy, len);
    copy[len] = '\0';
    r->body = copy;
    r->body_len = len;
    json_error_t err;
    r->json = json_loadb(copy, len, JSON_REJECT_DUPLICATES, &err);
    if (!r->json) {
        reply_error(r, 400, "BADARG", "invalid JSON at line %d column %d: %s",
                    err.line, err.column, err.text);
        return false;
    }
    if (!json_is_object(r->json)) {
        reply_error(r, 400, "BADARG", "the body must be a JSON object");
        return false;
    }
    return true;
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct http *h = arg;
    struct known_conn *k;
    HASH_FIND_PTR(h->known, &evcon, k);
    if (k) {
        HASH_DEL(h->known, k);
        free(k);
        h->nconns--;
    }
    for (struct sse *x = h->sse; x; x = x->next) {
        if (x->evcon == evcon) {
            sse_free(x);
            break;
        }
    }
}

/* Count a connection at its first request: false when it is one too
   many (it is then not counted). */
static bool
admit(struct http *h, struct evhttp_connection *evcon)
{
    struct known_conn *k;
    HASH_FIND_PTR(h->known, &evcon, k);
    if (k)
        return true;
    if (h->nconns >= h->cfg.max_conns)
        return false;
    k = calloc(1, sizeof *k);
    if (!k)
        return false;
    k->evcon = evcon;
    HASH_ADD_PTR(h->known, evcon, k);
    h->nconns++;
    evhttp_connection_set_closecb(evcon, conn_closed, h);
    return true;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;
    struct hreq r = {.h = h, .req = req};
    int method = evhttp_request_get_command(req);

    h->requests++;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!admit(h, evcon)) {
        log_msg(LOG_WARN, "HTTP connections at the limit of %zu: refused",
                h->cfg.max_conns);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
                          "close");
        reply_error(&r, 503, "BUSY", "too many HTTP connections (at most %zu)",
                    h->cfg.max_conns);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !split_path(&r, path)) {
        reply_error(&r, 404, "NOTFOUND", "no such route");
        goto done;
    }
    r.query = evhttp_uri_get_query(uri);
    const struct route *rt = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!route_matches(&routes[i], &r))
            continue;
        if (routes[i].method == method ||
            (method == EVHTTP_REQ_HEAD && routes[i].method == EVHTTP_REQ_GET)) {
            rt = &routes[i];
            break;
        }
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                 allow[0] ? ", " : "",
                 routes[i].method == EVHTTP_REQ_GET ? "GET, HEAD" : "POST");
    }
    if (!rt && allow[0]) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          allow);
        reply_error(&r, 405, "BADARG", "method not allowed here (allowed: %s)",
                    allow);
        goto done;
    }
    if (!rt) {
        reply_error(&r, 404, "NOTFOUND", "no such route: %.200s", path);
        goto done;
    }
    if (!authorise(&r, rt->op))
        goto done;
    if (rt->body && !read_body(&r))
        goto done;
    rt->fn(&r);
done:
    for (size_t i = 0; i < r.nseg; i++)
        free(r.seg[i]);
    json_decref(r.json);
    free((char *)r.body);
}

struct http *
http_start(struct event_base *base, struct core *core,
           const struct users *users, const struct http_config *hc)
{
    struct http *h = calloc(1, sizeof *h);
    if (!h) {
        log_msg(LOG_ERROR, "out of memory starting HTTP");
        return NULL;
    }
    h->cfg = *hc;
    h->base = base;
    h->core = core;
    h->users = users;
    h->eh = evhttp_new(base);
    if (!h->eh) {
        log_msg(LOG_ERROR, "libevent: cannot create the HTTP server");
        free(h);
        return NULL;
    }
    evhttp_set_max_headers_size(h->eh, (ev_ssize_t)hc->headers_max);
    evhttp_set_max_body_size(h->eh, (ev_ssize_t)(hc->body_max > EVHTTP_BODY_CAP
                                                     ? hc->body_max
                                                     : EVHTTP_BODY_CAP));
    struct timeval tv = {.tv_sec = hc->idle_timeout_ms / 1000,
                         .tv_usec = (hc->idle_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(h->eh, &tv);
    evhttp_set_allowed_methods(h->eh, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                          EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(h->eh, on_request, h);
    h->change_ev = evtimer_new(base, on_changes, h);
    h->board = board_new(core);
    if (!h->change_ev || !h->board ||
        (hc->customer_links &&
         track_open(&h->track, core, hc->customer_secret, hc->wms_carrier))) {
        log_msg(LOG_ERROR, "cannot start the board or the customer links");
        http_free(h);
        return NULL;
    }
    core->on_change = on_change;
    core->on_change_arg = h;
    if (!evhttp_bind_socket_with_handle(h->eh, hc->bind,
                                        (ev_uint16_t)hc->port)) {
        log_msg(LOG_ERROR, "cannot listen for HTTP on %s:%d", hc->bind,
                hc->port);
        http_free(h);
        return NULL;
    }
    log_msg(LOG_INFO, "HTTP on %s:%d", hc->bind, hc->port);
    return h;
}

void
http_set_counters(struct http *h, const struct conn_counters *cc)
{
    h->cc = cc;
}

bool
http_busy(const struct http *h)
{
    return h->head != NULL;
}

void
http_free(struct http *h)
{
    if (!h)
        return;
    while (h->head) {
        struct pending *p = h->head;
        h->head = p->next;
        evbuffer_free(p->body);
        free(p);
    }
    evhttp_free(h->eh); /* calls conn_closed for each connection */
    if (h->core->on_change_arg == h) {
        h->core->on_change = NULL;
        h->core->on_change_arg = NULL;
    }
    if (h->change_ev)
        event_free(h->change_ev);
    board_free(h->board);
    track_close(&h->track);
    struct known_conn *k, *tmp;
    HASH_ITER(hh, h->known, k, tmp)
    {
        HASH_DEL(h->known, k);
        free(k);
    }
    free(h);
}
