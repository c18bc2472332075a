/*
 * The notifier.  A target is a small state machine driven by one pump:
 *
 *   idle --pump--> read the log after the cursor --> nothing: idle
 *                                               \--> rate full: timer
 *                                                \-> send 1 event, or a
 *                                                    digest of all waiting
 *   in flight --2xx (and errcode 0)--> cursor = last seq sent (durable
 *                                      meta put), pump again
 *             --failure--> timer (backoff); after `attempts` tries an
 *                          alert, and the timer at the cap, then again
 *
 * The log is the queue: nothing waits in memory between pumps, so a crash
 * loses nothing but what the cursor had not passed, which is sent again
 * under the same Idempotency-Key (the event's seq; a digest's is
 * "first-last").  A digest is made when more events wait than the rate
 * window has room for, so a burst never exceeds `rate` messages a minute
 * and every order is still named.
 *
 * Some 850 lines, past the usual 800: the target's state machine, its
 * HTTP requests and the alert it sends on giving up read best together;
 * the card texts live in card.c.
 */
#include "notify.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "card.h"
#include "core.h"
#include "log.h"

#define DIGEST_MAX 100 /* events in one digest */
#define RATE_MAX 100000
#define SCAN_MAX 10000 /* log entries one pump reads at most */

struct item {
    uint64_t seq;
    char *json;
    size_t len;
};

struct target {
    struct notify *n;
    int fmt; /* enum notify_format */
    char spec[NOTIFY_URL_MAX];
    char url[NOTIFY_URL_MAX]; /* without the format prefix */
    char host[256];
    int port;
    bool https;
    char path[NOTIFY_URL_MAX]; /* path and query */
    char key[STORE_META_KEY_MAX + 1];
    int rate;
    uint64_t cursor; /* last seq delivered or skipped */
    uint64_t saved;  /* last cursor written to the store */
    struct item items[DIGEST_MAX];
    size_t n_items;                 /* read for the request in flight */
    size_t scan_cap;                /* scan budget left in this pump */
    uint64_t scan_end;              /* last seq the scan saw */
    struct evhttp_connection *conn; /* in flight */
    int attempts;                   /* failed tries of the current head */
    char err[256];                  /* the last error */
    struct event *timer;            /* retry or rate wait */
    bool timer_on;
    int64_t *sent; /* ring of the last `rate` send times */
    size_t sent_n, sent_head;
};

/* An alert in flight: alerts are sent once, not retried; one still in
   flight at shutdown is cancelled. */
struct alert_req {
    struct notify *n;
    struct target *a;
    struct evhttp_connection *conn;
    char err[256];
    struct alert_req *prev, *next;
};

struct notify {
    struct alert_req *alerts_in_flight;
    struct event_base *base;
    struct core *core;
    struct notify_config cfg;
    struct evdns_base *dns;
    SSL_CTX *tls; /* for https:// targets, NULL when there is none */
    struct event_sink sink;
    struct event *wake; /* made active by the sink */
    struct target targets[NOTIFY_TARGETS_MAX];
    size_t n;
    struct target alerts[NOTIFY_TARGETS_MAX];
    size_t n_alerts;
    char types[16][24];
    size_t n_types;
};

void
notify_config_default(struct notify_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->events, sizeof cfg->events, "%s",
             "jump,at_risk,lease_expired,outbound_unleased,anomaly");
    cfg->retry_ms = 5000;
    cfg->retry_max_ms = 5 * 60000;
    cfg->timeout_ms = 10000;
    cfg->attempts = 8;
    cfg->rate_window_ms = 60000;
}

/* ---- targets ---- */

static int
parse_target(struct target *t, const char *spec, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->spec, sizeof t->spec, "%s", spec);
    const char *url = spec;
    const char *plus = strstr(spec, "+http");
    t->fmt = -1;
    if (plus) {
        size_t k = (size_t)(plus - spec);
        if (k == 4 && strncasecmp(spec, "json", 4) == 0)
            t->fmt = NOTIFY_JSON;
        else if (k == 8 && strncasecmp(spec, "dingtalk", 8) == 0)
            t->fmt = NOTIFY_DINGTALK;
        else if (k == 5 && strncasecmp(spec, "wecom", 5) == 0)
            t->fmt = NOTIFY_WECOM;
        else {
            snprintf(err, errlen,
                     "notify target %s: format %.*s is not json, dingtalk "
                     "or wecom",
                     spec, (int)k, spec);
            return -1;
        }
        url = plus + 1;
    }
    snprintf(t->url, sizeof t->url, "%s", url);
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) {
        snprintf(err, errlen, "notify target %s: not a URL", spec);
        return -1;
    }
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *host = evhttp_uri_get_host(u);
    int rc = -1;
    if (!scheme ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(err, errlen,
                 "notify target %s: not an http:// or https:// URL", spec);
    } else if (!host || !*host || strlen(host) >= sizeof t->host) {
        snprintf(err, errlen, "notify target %s: no host", spec);
    } else {
        snprintf(t->host, sizeof t->host, "%s", host);
        t->https = strcasecmp(scheme, "https") == 0;
        t->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u)
                  : t->https                 ? 443
                                             : 80;
        const char *path = evhttp_uri_get_path(u);
        const char *query = evhttp_uri_get_query(u);
        snprintf(t->path, sizeof t->path, "%s%s%s", path && *path ? path : "/",
                 query ? "?" : "", query ? query : "");
        if (t->fmt < 0) /* no prefix: the robot's host says */
            t->fmt =
                strcasecmp(host, "oapi.dingtalk.com") == 0     ? NOTIFY_DINGTALK
                : strcasecmp(host, "qyapi.weixin.qq.com") == 0 ? NOTIFY_WECOM
                                                               : NOTIFY_JSON;
        rc = 0;
    }
    evhttp_uri_free(u);
    return rc;
}

int
notify_target_check(const char *spec, char *err, size_t errlen)
{
    struct target *t = malloc(sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = parse_target(t, spec, err, errlen);
    free(t);
    return rc;
}

/* ---- DingTalk signing ---- */

int
notify_dingtalk_sign(const char *secret, long long ts_ms, char *out, size_t cap)
{
    char msg[512];
    int mlen = snprintf(msg, sizeof msg, "%lld\n%s", ts_ms, secret);
    if (mlen < 0 || (size_t)mlen >= sizeof msg)
        return -1;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret),
              (const unsigned char *)msg, (size_t)mlen, mac, &maclen))
        return -1;
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    int blen = EVP_EncodeBlock(b64, mac, (int)maclen);
    size_t o = 0;
    for (int i = 0; i < blen; i++) {
        unsigned char ch = b64[i];
        if (isalnum(ch)) {
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)ch;
        } else {
            if (o + 3 >= cap)
                return -1;
            snprintf(out + o, 4, "%%%02X", ch);
            o += 3;
        }
    }
    out[o] = '\0';
    return 0;
}

static void
build_body(struct target *t, struct evbuffer *out)
{
    if (t->fmt == NOTIFY_JSON) {
        if (t->n_items == 1) {
            evbuffer_add(out, t->items[0].json, t->items[0].len);
            return;
        }
        evbuffer_add_printf(out,
                            "{\"type\":\"digest\",\"seq\":%llu,\"first_seq\":"
                            "%llu,\"count\":%zu,\"events\":[",
                            (unsigned long long)t->items[t->n_items - 1].seq,
                            (unsigned long long)t->items[0].seq, t->n_items);
        for (size_t i = 0; i < t->n_items; i++) {
            if (i)
                evbuffer_add(out, ",", 1);
            evbuffer_add(out, t->items[i].json, t->items[i].len);
        }
        evbuffer_add(out, "]}", 2);
        return;
    }
    struct evbuffer *text = evbuffer_new();
    char title[128];
    if (t->n_items == 1) {
        json_t *ev = json_loadb(t->items[0].json, t->items[0].len, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *order = json_string_value(json_object_get(ev, "order"));
        snprintf(title, sizeof title, "%s订单#%.60s",
                 card_title(type ? type : ""), order ? order : "");
        json_decref(ev);
        evbuffer_add_printf(text, "#### %s\n\n", title);
        card_line(text, t->items[0].json, t->items[0].len);
        evbuffer_add_printf(text, "\n\n> 事件#%llu",
                            (unsigned long long)t->items[0].seq);
    } else {
        snprintf(title, sizeof title, "【调度汇总】%zu条事件", t->n_items);
        evbuffer_add_printf(text, "#### %s\n\n", title);
        for (size_t i = 0; i < t->n_items; i++) {
            evbuffer_add_printf(text, "- ");
            card_line(text, t->items[i].json, t->items[i].len);
            evbuffer_add_printf(text, "\n");
        }
        evbuffer_add_printf(text,
                            "\n> 事件#%llu-%llu(超过每分钟%d条的限额,"
                            "已合并)",
                            (unsigned long long)t->items[0].seq,
                            (unsigned long long)t->items[t->n_items - 1].seq,
                            t->rate);
    }
    size_t len = evbuffer_get_length(text);
    card_chat_body(out, t->fmt, title, (const char *)evbuffer_pullup(text, -1),
                   len);
    evbuffer_free(text);
}

/* ---- sending ---- */

static void pump(struct target *t);

static void
items_clear(struct target *t)
{
    for (size_t i = 0; i < t->n_items; i++)
        free(t->items[i].json);
    t->n_items = 0;
}

static void
arm(struct target *t, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(t->timer, &tv);
    t->timer_on = true;
}

static void
save_cursor(struct target *t)
{
    if (t->cursor == t->saved)
        return;
    char v[24];
    int len = snprintf(v, sizeof v, "%llu", (unsigned long long)t->cursor);
    if (core_meta_put(t->n->core, t->key, v, (size_t)len))
        t->saved = t->cursor;
}

static const char *
req_error_word(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timeout";
    case EVREQ_HTTP_EOF:
        return "connection refused or closed before a reply";
    case EVREQ_HTTP_INVALID_HEADER:
        return "invalid reply";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection error";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "reply too long";
    }
    return "error";
}

static void
on_req_error(enum evhttp_request_error e, void *arg)
{
    struct target *t = arg;
    snprintf(t->err, sizeof t->err, "%s", req_error_word(e));
    unsigned long tls = 0;
    if (t->https && t->conn) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(t->conn);
        if (bev)
            tls = bufferevent_get_openssl_error(bev);
    }
    if (tls) {
        char why[200];
        ERR_error_string_n(tls, why, sizeof why);
        snprintf(t->err, sizeof t->err, "TLS: %s", why);
    }
}

/* A connection to an https:// target: TLS with the peer's certificate
   checked against the system's (or --notify-ca's) authorities and the
   target's host name (or IP address). */
static struct evhttp_connection *
tls_connection(struct target *t, char *err, size_t errlen)
{
    struct notify *n = t->n;
    SSL *ssl = SSL_new(n->tls);
    if (!ssl) {
        snprintf(err, errlen, "TLS: out of memory");
        return NULL;
    }
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, t->host, addr) == 1 ||
              inet_pton(AF_INET6, t->host, addr) == 1;
    if (ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->host);
    } else {
        SSL_set_tlsext_host_name(ssl, t->host);
        SSL_set1_host(ssl, t->host);
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        n->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        snprintf(err, errlen, "TLS: cannot make a connection");
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct evhttp_connection *conn = evhttp_connection_base_bufferevent_new(
        n->base, n->dns, bev, t->host, (uint16_t)t->port);
    if (!conn) {
        bufferevent_free(bev);
        snprintf(err, errlen, "TLS: cannot make a connection");
    }
    return conn;
}

/* POST body to t; cb(req, arg) gets the reply (NULL on a transport
   error, after errcb set the error).  The connection in *connp is freed
   by libevent once cb returns.  Returns 0, or -1 with err. */
static int
post(struct target *t, struct evbuffer *body, const char *idem,
     void (*cb)(struct evhttp_request *, void *),
     void (*errcb)(enum evhttp_request_error, void *), void *arg,
     struct evhttp_connection **connp, char *err, size_t errlen)
{
    struct notify *n = t->n;
    char path[NOTIFY_URL_MAX + 200];
    snprintf(path, sizeof path, "%s", t->path);
    if (t->fmt == NOTIFY_DINGTALK && n->cfg.secret[0]) {
        long long ts = (long long)core_now();
        char sign[128];
        if (notify_dingtalk_sign(n->cfg.secret, ts, sign, sizeof sign) == 0)
            snprintf(path, sizeof path, "%s%ctimestamp=%lld&sign=%s", t->path,
                     strchr(t->path, '?') ? '&' : '?', ts, sign);
    }
    struct evhttp_connection *conn;
    if (t->https) {
        conn = tls_connection(t, err, errlen);
        if (!conn)
            return -1;
    } else {
        conn = evhttp_connection_base_new(n->base, n->dns, t->host,
                                          (uint16_t)t->port);
    }
    if (!conn) {
        snprintf(err, errlen, "cannot make a connection to %.200s:%d", t->host,
                 t->port);
        return -1;
    }
    struct timeval tv = {(time_t)(n->cfg.timeout_ms / 1000),
                         (suseconds_t)(n->cfg.timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(conn, &tv);
    evhttp_connection_set_retries(conn, 0);
    struct evhttp_request *req = evhttp_request_new(cb, arg);
    if (!req) {
        evhttp_connection_free(conn);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    evhttp_request_set_error_cb(req, errcb);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%d", t->host, t->port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(h, "User-Agent", "dispatchd/" DISPATCHD_VERSION);
    evhttp_add_header(h, "Connection", "close");
    if (idem)
        evhttp_add_header(h, "Idempotency-Key", idem);
    evbuffer_add_buffer(evhttp_request_get_output_buffer(req), body);
    err[0] = '\0';
    *connp = conn;
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, path) != 0) {
        /* libevent freed req */
        *connp = NULL;
        evhttp_connection_free(conn);
        snprintf(err, errlen, "cannot send the request");
        return -1;
    }
    evhttp_connection_free_on_completion(conn);
    return 0;
}

/* Reads a reply: 0 for a success, else -1 with t->err. */
static int
reply_ok(const struct target *t, struct evhttp_request *req, char *err,
         size_t errlen)
{
    if (!req || evhttp_request_get_response_code(req) == 0) {
        if (!err[0])
            snprintf(err, errlen, "no reply");
        return -1;
    }
    int code = evhttp_request_get_response_code(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (code < 200 || code > 299) {
        snprintf(err, errlen, "HTTP %d: %.*s", code,
                 (int)(len > 120 ? 120 : len), body ? body : "");
        return -1;
    }
    if (t->fmt != NOTIFY_JSON && len > 0) {
        /* DingTalk and WeCom answer 200 {"errcode":N,"errmsg":...} */
        json_t *j = json_loadb(body, len, 0, NULL);
        json_t *ec = j ? json_object_get(j, "errcode") : NULL;
        if (ec && json_integer_value(ec) != 0) {
            snprintf(err, errlen, "errcode %lld: %s",
                     (long long)json_integer_value(ec),
                     json_string_value(json_object_get(j, "errmsg"))
                         ? json_string_value(json_object_get(j, "errmsg"))
                         : "");
            json_decref(j);
            return -1;
        }
        json_decref(j);
    }
    return 0;
}

static void
alert_unlink(struct alert_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->n->alerts_in_flight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

static void
on_alert_error(enum evhttp_request_error e, void *arg)
{
    struct alert_req *r = arg;
    snprintf(r->err, sizeof r->err, "%s", req_error_word(e));
}

static void
on_alert_done(struct evhttp_request *req, void *arg)
{
    struct alert_req *r = arg;
    if (reply_ok(r->a, req, r->err, sizeof r->err) != 0)
        log_msg(LOG_WARN, "notify: alert to %s failed: %s", r->a->url, r->err);
    else
        log_msg(LOG_INFO, "notify: alert sent to %s", r->a->url);
    alert_unlink(r);
}

/* The last attempt failed: tell the alert targets. */
static void
send_alert(struct target *t)
{
    struct notify *n = t->n;
    const struct item *it = &t->items[0];
    log_msg(LOG_WARN,
            "notify: %s: event %llu not delivered after %d attempts (%s); "
            "kept, retried in %lld ms",
            t->url, (unsigned long long)it->seq, n->cfg.attempts, t->err,
            (long long)n->cfg.retry_max_ms);
    for (size_t i = 0; i < n->n_alerts; i++) {
        struct target *a = &n->alerts[i];
        struct evbuffer *body = evbuffer_new();
        if (a->fmt == NOTIFY_JSON) {
            evbuffer_add_printf(body,
                                "{\"type\":\"notify_failure\",\"target\":");
            json_quote(body, t->url, strlen(t->url));
            evbuffer_add_printf(body,
                                ",\"seq\":%llu,\"attempts\":%d,\"error\":",
                                (unsigned long long)it->seq, n->cfg.attempts);
            json_quote(body, t->err, strlen(t->err));
            evbuffer_add_printf(body, ",\"event\":");
            evbuffer_add(body, it->json, it->len);
            evbuffer_add(body, "}", 1);
        } else {
            struct evbuffer *text = evbuffer_new();
            evbuffer_add_printf(text,
                                "#### 【推送失败】\n\n目标 %s 的事件#%llu "
                                "已尝试%d次仍未送达,最后错误:%s\n\n- ",
                                t->url, (unsigned long long)it->seq,
                                n->cfg.attempts, t->err);
            card_line(text, it->json, it->len);
            evbuffer_add_printf(text, "\n\n> 事件已保留,稍后重试");
            size_t len = evbuffer_get_length(text);
            card_chat_body(body, a->fmt, "【推送失败】",
                           (const char *)evbuffer_pullup(text, -1), len);
            evbuffer_free(text);
        }
        char idem[64];
        snprintf(idem, sizeof idem, "alert-%llu", (unsigned long long)it->seq);
        struct alert_req *r = calloc(1, sizeof *r);
        if (r) {
            r->n = n;
            r->a = a;
            r->next = n->alerts_in_flight;
            if (r->next)
                r->next->prev = r;
            n->alerts_in_flight = r;
            if (post(a, body, idem, on_alert_done, on_alert_error, r, &r->conn,
                     r->err, sizeof r->err) != 0) {
                log_msg(LOG_WARN, "notify: alert to %s failed: %s", a->url,
                        r->err);
                alert_unlink(r);
            }
        }
        evbuffer_free(body);
    }
}

static int64_t
backoff_ms(const struct notify *n, int attempts)
{
    double d = (double)n->cfg.retry_ms;
    for (int i = 1; i < attempts && d < (double)n->cfg.retry_max_ms; i++)
        d *= 2;
    if (d > (double)n->cfg.retry_max_ms)
        d = (double)n->cfg.retry_max_ms;
    /* Jitter: up to a fifth more, never less than the nominal delay. */
    d += d * 0.2 * ((double)rand() / ((double)RAND_MAX + 1.0));
    return (int64_t)d;
}

static void
on_done(struct evhttp_request *req, void *arg)
{
    struct target *t = arg;
    struct notify *n = t->n;
    t->conn = NULL; /* freed by libevent once this returns */
    if (reply_ok(t, req, t->err, sizeof t->err) == 0) {
        t->cursor = t->items[t->n_items - 1].seq;
        n->core->notify_delivered += t->n_items;
        t->attempts = 0;
        items_clear(t);
        save_cursor(t);
        arm(t, 0);
        return;
    }
    t->attempts++;
    log_msg(LOG_INFO, "notify: %s: event %llu attempt %d failed: %s", t->url,
            (unsigned long long)t->items[0].seq, t->attempts, t->err);
    if (t->attempts >= n->cfg.attempts) {
        n->core->notify_failures++;
        send_alert(t);
        t->attempts = 0;
        items_clear(t);
        arm(t, n->cfg.retry_max_ms);
        return;
    }
    n->core->notify_retries++;
    items_clear(t);
    arm(t, backoff_ms(n, t->attempts));
}

static bool
wanted(const struct notify *n, const char *json, size_t len)
{
    char type[24];
    core_event_type(json, len, type, sizeof type);
    for (size_t i = 0; i < n->n_types; i++)
        if (strcmp(n->types[i], type) == 0)
            return true;
    return false;
}

static int
collect(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct target *t = ctx;
    t->scan_end = seq;
    if (t->scan_cap > 0)
        t->scan_cap--;
    if (!wanted(t->n, json, len)) {
        if (t->n_items == 0)
            t->cursor = seq; /* skipped: nothing to deliver before it */
        return t->scan_cap == 0;
    }
    struct item *it = &t->items[t->n_items];
    it->json = malloc(len + 1);
    if (!it->json)
        return 1;
    memcpy(it->json, json, len);
    it->json[len] = '\0';
    it->len = len;
    it->seq = seq;
    t->n_items++;
    return t->n_items == DIGEST_MAX || t->scan_cap == 0;
}

/* Sends in the last window; the time the oldest leaves it in *wait. */
static size_t
window_used(struct target *t, int64_t now, int64_t *wait)
{
    size_t used = 0;
    int64_t oldest = INT64_MAX;
    for (size_t i = 0; i < t->sent_n; i++)
        if (t->sent[i] > now - t->n->cfg.rate_window_ms) {
            used++;
            if (t->sent[i] < oldest)
                oldest = t->sent[i];
        }
    *wait = used ? oldest + t->n->cfg.rate_window_ms - now + 1 : 0;
    return used;
}

static void
pump(struct target *t)
{
    struct notify *n = t->n;
    if (t->conn || t->timer_on)
        return;
    items_clear(t);
    t->scan_cap = SCAN_MAX;
    uint64_t from = t->cursor;
    for (;;) {
        struct core_result r;
        t->scan_end = from;
        core_events(n->core, from, CORE_EVENTS_MAX, collect, t, &r);
        if (r.code != CORE_OK) {
            log_msg(LOG_WARN, "notify: %s: cannot read the event log: %s",
                    t->url, r.msg);
            items_clear(t);
            arm(t, n->cfg.retry_ms);
            return;
        }
        if (t->scan_end == from || t->n_items == DIGEST_MAX || t->scan_cap == 0)
            break;
        from = t->scan_end;
    }
    if (t->n_items == 0) {
        save_cursor(t);
        if (t->scan_cap == 0)
            arm(t, 0); /* more log to skip through */
        return;
    }
    int64_t now = core_now(), wait;
    size_t used = window_used(t, now, &wait);
    if (used >= (size_t)t->rate) {
        items_clear(t);
        arm(t, wait);
        return;
    }
    size_t room = (size_t)t->rate - used;
    if (t->n_items <= room)
        for (size_t i = 1; i < t->n_items; i++)
            free(t->items[i].json); /* one at a time while there is room */
    if (t->n_items <= room)
        t->n_items = 1;
    struct evbuffer *body = evbuffer_new();
    build_body(t, body);
    char idem[48];
    if (t->n_items == 1)
        snprintf(idem, sizeof idem, "%llu",
                 (unsigned long long)t->items[0].seq);
    else
        snprintf(idem, sizeof idem, "%llu-%llu",
                 (unsigned long long)t->items[0].seq,
                 (unsigned long long)t->items[t->n_items - 1].seq);
    t->sent[t->sent_head] = now;
    t->sent_head = (t->sent_head + 1) % (size_t)t->rate;
    if (t->sent_n < (size_t)t->rate)
        t->sent_n++;
    if (post(t, body, idem, on_done, on_req_error, t, &t->conn, t->err,
             sizeof t->err) != 0)
        on_done(NULL, t);
    evbuffer_free(body);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct target *t = arg;
    (void)fd;
    (void)what;
    t->timer_on = false;
    pump(t);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct notify *n = arg;
    (void)fd;
    (void)what;
    for (size_t i = 0; i < n->n; i++)
        pump(&n->targets[i]);
}

static void
on_event(struct event_sink *s, uint64_t seq, const char *type, const char *json,
         size_t len)
{
    struct notify *n = s->ctx;
    (void)seq;
    (void)type;
    (void)json;
    (void)len;
    event_active(n->wake, 0, 0);
}

/* The meta key of a target's cursor: its spec, shortened by a hash when
   long, so the same target keeps its cursor across restarts. */
static void
cursor_key(struct target *t)
{
    static const char prefix[] = "notify-cursor/";
    size_t len = strlen(t->spec), p = sizeof prefix - 1;
    memcpy(t->key, prefix, p);
    if (p + len <= STORE_META_KEY_MAX) {
        memcpy(t->key + p, t->spec, len + 1);
        return;
    }
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)t->spec[i]) * 1099511628211ULL;
    memcpy(t->key + p, t->spec, 150);
    snprintf(t->key + p + 150, sizeof t->key - p - 150, "#%016llx",
             (unsigned long long)h);
}

struct notify *
notify_start(struct event_base *base, struct core *c,
             const struct notify_config *cfg)
{
    struct notify *n = calloc(1, sizeof *n);
    if (!n) {
        log_msg(LOG_ERROR, "notify: out of memory");
        return NULL;
    }
    n->base = base;
    n->core = c;
    n->cfg = *cfg;
    if (cfg->n_targets == 0)
        return n;
    char list[sizeof cfg->events];
    snprintf(list, sizeof list, "%s", cfg->events);
    for (char *save, *w = strtok_r(list, ", ", &save); w && n->n_types < 16;
         w = strtok_r(NULL, ", ", &save))
        snprintf(n->types[n->n_types++], sizeof n->types[0], "%s", w);
    n->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    n->wake = event_new(base, -1, 0, on_wake, n);
    if (!n->wake)
        goto fail;
    srand((unsigned)time(NULL) ^ (unsigned)(uintptr_t)n);
    char err[512];
    for (size_t i = 0; i < cfg->n_alerts; i++) {
        struct target *a = &n->alerts[n->n_alerts];
        if (parse_target(a, cfg->alerts[i], err, sizeof err)) {
            log_msg(LOG_ERROR, "%s", err);
            goto fail;
        }
        a->n = n;
        n->n_alerts++;
    }
    for (size_t i = 0; i < cfg->n_targets; i++) {
        struct target *t = &n->targets[n->n];
        if (parse_target(t, cfg->targets[i], err, sizeof err)) {
            log_msg(LOG_ERROR, "%s", err);
            goto fail;
        }
        t->n = n;
        n->n++;
        t->rate = cfg->rate > 0 ? cfg->rate : t->fmt == NOTIFY_JSON ? 600 : 20;
        if (t->rate > RATE_MAX)
            t->rate = RATE_MAX;
        t->sent = calloc((size_t)t->rate, sizeof *t->sent);
        t->timer = evtimer_new(base, on_timer, t);
        if (!t->sent || !t->timer)
            goto fail;
        cursor_key(t);
        char v[32];
        size_t vlen = 0;
        int rc = core_meta_get(c, t->key, v, sizeof v - 1, &vlen);
        if (rc < 0)
            goto fail;
        if (rc == 0 && vlen < sizeof v) {
            v[vlen] = '\0';
            t->cursor = t->saved = strtoull(v, NULL, 10);
            log_msg(LOG_INFO,
                    "notify: %s (%s, %d/min) resumes after event %llu", t->url,
                    t->fmt == NOTIFY_JSON       ? "json"
                    : t->fmt == NOTIFY_DINGTALK ? "dingtalk"
                                                : "wecom",
                    t->rate, (unsigned long long)t->cursor);
        } else {
            /* A new target hears of what happens from now on. */
            t->cursor = c->events.seq;
            char cv[24];
            int len =
                snprintf(cv, sizeof cv, "%llu", (unsigned long long)t->cursor);
            if (core_meta_put(c, t->key, cv, (size_t)len))
                t->saved = t->cursor;
            log_msg(LOG_INFO, "notify: %s is new: events after %llu", t->url,
                    (unsigned long long)t->cursor);
        }
    }
    bool https = false;
    for (size_t i = 0; i < n->n; i++)
        https |= n->targets[i].https;
    for (size_t i = 0; i < n->n_alerts; i++)
        https |= n->alerts[i].https;
    if (https) {
        n->tls = SSL_CTX_new(TLS_client_method());
        if (!n->tls)
            goto fail;
        SSL_CTX_set_verify(n->tls, SSL_VERIFY_PEER, NULL);
        int ok = cfg->ca[0]
                     ? SSL_CTX_load_verify_locations(n->tls, cfg->ca, NULL)
                     : SSL_CTX_set_default_verify_paths(n->tls);
        if (ok != 1) {
            log_msg(LOG_ERROR, "notify: cannot load the TLS authorities%s%s",
                    cfg->ca[0] ? " from " : "", cfg->ca);
            goto fail;
        }
    }
    n->sink.emit = on_event;
    n->sink.ctx = n;
    events_listen(&c->events, &n->sink);
    event_active(n->wake, 0, 0);
    return n;
fail:
    notify_free(n);
    return NULL;
}

void
notify_free(struct notify *n)
{
    if (!n)
        return;
    if (n->sink.listening)
        events_unlisten(&n->core->events, &n->sink);
    for (size_t i = 0; i < n->n; i++) {
        struct target *t = &n->targets[i];
        if (t->conn)
            evhttp_connection_free(t->conn);
        if (t->timer)
            event_free(t->timer);
        items_clear(t);
        free(t->sent);
    }
    while (n->alerts_in_flight) {
        struct alert_req *r = n->alerts_in_flight;
        if (r->conn)
            evhttp_connection_free(r->conn);
        alert_unlink(r);
    }
    if (n->wake)
        event_free(n->wake);
    if (n->dns)
        evdns_base_free(n->dns, 0);
    if (n->tls)
        SSL_CTX_free(n->tls);
    free(n);
}
