/*
 * sim — the story's warehouse day, compressed, against a real dispatchd.
 *
 * Three actors and one referee, each a thread (or a few) with its own
 * connection, like tools/loadgen:
 *
 *   ERP      pushes the day's orders (RESP, hiredis), approves them after
 *            a credit check, holds some, releases or cancels held ones,
 *            cancels a few and re-prioritises a few normal orders.
 *   pickers  WMS terminals on a shift schedule: NEXT wh BLOCK ms LEASE s,
 *            a pick time, PICKED; now and then one walks away from an
 *            order and lets its lease expire.
 *   WMS      after a packing time the order physically leaves; the WMS
 *            then POSTs /v1/wms/outbound with the story's jitter: delayed,
 *            duplicated, out of order, sometimes lost (the request or its
 *            answer) and retried after 5 scaled seconds until answered.
 *   truth    what physically happened to each order (state, by whom,
 *            when), kept under one mutex.  A sampler compares dispatchd's
 *            GET with it 100 times a simulated day (status accuracy) and
 *            probes the eta of queued orders; the analysis after the run
 *            gives rush misses, late normal orders, double picks and the
 *            ETA error.
 *
 * Time: one simulated millisecond lasts 1/F of a wall millisecond.  The
 * daemon has no fake clock, so the deadlines we push and the daemon's
 * escalation windows, leases, pick estimate and --confirm-timeout are
 * scaled by F through its ordinary options: --spawn PATH starts it so
 * (twice: with escalation, then with strict class priority);
 * --print-daemon-args prints them for a daemon started by hand.
 *
 * Comparing with the truth is only fair for an order nothing is in flight
 * for: every actor raises the order's busy count before its request and
 * lowers it once the answer is applied to the truth, so a sample skips
 * busy orders, and a sample whose order changed while GET was on the wire
 * (its version moved) is drawn again.  A NEXT reply reaches the truth a
 * moment after the daemon changed, so a mismatch is looked at again
 * 100 ms later before it counts.
 *
 * The workload is a pure function of --seed; the interleaving is not.
 *
 * Longer than ~800 lines on purpose, as loadgen: one tool whose parts
 * (workload, actors, truth, analysis, report) only make sense together.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define NCLASS 4
#define NWH_MAX 8
#define NSHIFT 3
#define SENDERS 4
#define MIN_MS INT64_C(60000)
#define HOUR_MS INT64_C(3600000)
#define DAY_MS (24 * HOUR_MS)

enum { C_ASN, C_RUSH4H, C_RUSH24H, C_NORMAL };
static const char *const cls_names[NCLASS] = {"asn", "rush4h", "rush24h",
                                              "normal"};
/* The story's window per class, from the push. */
static const int64_t cls_window[NCLASS] = {2 * HOUR_MS, 4 * HOUR_MS,
                                           24 * HOUR_MS, 72 * HOUR_MS};

enum st {
    S_NONE, /* not pushed yet */
    S_NEW,
    S_HELD,
    S_QUEUED,
    S_PICKING,
    S_PICKED,
    S_SHIPPED,
    S_CANCELLED,
    S_COUNT
};
static const char *const st_names[S_COUNT] = {"none",    "new",      "held",
                                              "queued",  "picking",  "picked",
                                              "shipped", "cancelled"};

static const char *const src_names[] = {"dealer", "asn", "ecommerce",
                                        "aftersales"};
static const char *const ful_names[] = {"stock", "to_drawing", "vmi", "jit"};
static const char *const risk_names[] = {"new_customer", "high_returns",
                                         "overdue_90d"};

/* ------------------------------------------------------------------ */
/* Options                                                              */

struct opts {
    const char *host;
    int port, http_port;
    const char *spawn;  /* daemon binary, or NULL */
    const char *day;    /* normal | surge */
    int orders;         /* 0: the day's */
    double factor;      /* sim ms per wall ms */
    double mix[NCLASS]; /* class shares, sum 1 */
    int nwh;
    int crew[NSHIFT]; /* pickers per shift (all warehouses), 0: day's */
    double pick_min;  /* median pick time, sim minutes */
    int lease_min;    /* lease asked by NEXT, sim minutes (rounded up to 1 s) */
    double p_abandon, p_hold, p_cancel, p_reprio;
    double p_dup, p_lost, p_lost_ack, p_slow;
    int samples;    /* status samples per simulated day */
    int eta_probes; /* eta probes per simulated day */
    int drain_h;    /* simulated hours after the day to finish the backlog */
    int days;       /* consecutive days of orders */
    uint64_t seed;
    bool json, quiet, strict_only, escalate_only, print_args;
};

static struct opts O;

static void
die(const char *fmt, ...)
{
    va_list ap;
    fputs("sim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

/* ------------------------------------------------------------------ */
/* Clock and randomness                                                 */

static int64_t
wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_until_us(int64_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void
sleep_us(int64_t us)
{
    if (us > 0)
        sleep_until_us(wall_us() + us);
}

/* splitmix64 */
static uint64_t
mix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint64_t
rnd(uint64_t *s)
{
    *s += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(*s);
}

static double
unit(uint64_t *s)
{
    return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static double
lognormal(uint64_t *s, double median, double sigma)
{
    double u1 = unit(s), u2 = unit(s);
    if (u1 < 1e-12)
        u1 = 1e-12;
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    return median * exp(sigma * z);
}

/* ------------------------------------------------------------------ */
/* The run: orders, truth, actors                                       */

struct order {
    char id[48];
    int cls, wh, cust, src, ful, risk; /* risk: -1 none */
    int64_t t_push;                    /* sim ms from day start */
    int64_t credit_ms;                 /* credit check: push to decision */
    bool hold;
    int64_t hold_ms;
    bool hold_cancel; /* the held order is cancelled, not released */
    bool cancel;
    int64_t cancel_at;
    bool reprio;
    int64_t reprio_at;
    int reprio_cls;

    /* The truth, under run.mu. */
    enum st state;
    int busy;         /* requests in flight for this order */
    uint64_t version; /* bumped on every truth change */
    int cls_now;      /* after reprio */
    int64_t deadline; /* wall ms, after reprio */
    uint64_t lease;
    int64_t lease_expires; /* wall ms */
    int picker;            /* holder, -1 */
    bool abandoned;
    int64_t queued_us, pick_us, picked_us, ship_us, cancel_us; /* wall */
    int64_t pick_sent_us; /* when the NEXT that first handed it out left */
    int picks;            /* NEXT replies that handed it out */
    bool double_pick;
    bool acked; /* a callback was answered 200 */
};

enum ev_kind { E_PUSH, E_APPROVE, E_HOLD, E_CANCEL, E_REPRIO };

struct erp_ev {
    int64_t t; /* sim ms */
    int kind;
    int k;
};

struct idle {
    int64_t from, to; /* wall us, a NEXT that waited */
};

struct picker {
    int id, wh, shift;
    char name[32];
    struct idle *idle;
    size_t nidle, capidle;
    int64_t busy_us; /* time spent picking */
    int64_t shift_us;
    int picks, abandons;
};

enum wms_kind { W_PHYS, W_SEND, W_DUP, W_EXPIRE };

struct witem {
    int64_t due; /* wall us */
    int kind, k, attempt;
    uint64_t lease;
    int picker;
};

struct probe {
    int k;
    int64_t eta_ms; /* the eta GET gave, wall ms */
};

/* A NEXT that handed out an order of a class below asn. */
struct npick {
    int wh;
    int64_t sent, got; /* wall us */
};

struct run {
    const char *label; /* escalation | strict | external */
    char tag[16];
    char wh[NWH_MAX][40];
    int port, http_port;
    int64_t t0; /* wall us of sim time 0 */
    double f;
    int n;
    struct order *o;
    struct erp_ev *ev;
    size_t nev;
    struct picker *pk;
    int npk;
    int lease_s;
    volatile int pushed; /* orders whose push was answered */
    volatile bool erp_done, stop, wms_stop;

    pthread_mutex_t mu; /* the truth, the WMS heap, the counters */
    pthread_cond_t wcond;
    struct witem *heap;
    size_t nheap, capheap;

    struct probe *probes;
    size_t nprobes, capprobes;
    struct npick *npicks;
    size_t nnpicks, capnpicks;

    /* Counters (under mu). */
    int samples, sample_ok, sample_raced, final_n, final_ok;
    int cb_sent, cb_dup, cb_lost, cb_lost_ack, cb_retry, cb_errors;
    int erp_errors, pick_errors, next_after_cancel, lease_expiries_seen;
    int64_t erp_lag_max_us;
    long long stats_expiries, stats_escalations, stats_jumps, stats_unconfirmed,
        stats_anomalous;
};

static int64_t
sim_to_wall(const struct run *r, int64_t sim_ms)
{
    return r->t0 + (int64_t)((double)sim_ms * 1000.0 / r->f);
}

static int64_t
sim_now(const struct run *r)
{
    return (int64_t)((double)(wall_us() - r->t0) * r->f / 1000.0);
}

static int64_t
scaled_us(const struct run *r, int64_t sim_ms)
{
    return (int64_t)((double)sim_ms * 1000.0 / r->f);
}

static void
run_fail(struct run *r, const char *fmt, ...)
{
    (void)r;
    va_list ap;
    fprintf(stderr, "sim: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* The workload: a pure function of the seed                            */

static const double hour_weight[24] = {0.4, 0.3, 0.3, 0.3, 0.4, 0.6, 1.5, 3,
                                       7,   9,   9,   8,   5,   7,   8,   8,
                                       7,   6,   4,   3,   2,   1.5, 1,   0.6};

static int
ev_cmp(const void *a, const void *b)
{
    const struct erp_ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->k - y->k;
}

static int
zipf_pick(uint64_t *s, const double *cum, int n)
{
    double u = unit(s) * cum[n - 1];
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (cum[m] < u)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

static void
workload(struct run *r)
{
    uint64_t s = O.seed * 7919 + 1;
    double hcum[24], ccum[249];
    double acc = 0;
    for (int h = 0; h < 24; h++)
        hcum[h] = acc += hour_weight[h];
    acc = 0;
    for (int c = 0; c < 249; c++)
        ccum[c] = acc += 1.0 / pow(c + 1, 1.1);

    r->o = xcalloc((size_t)r->n, sizeof *r->o);
    r->ev = xcalloc((size_t)r->n * 4, sizeof *r->ev);
    for (int k = 0; k < r->n; k++) {
        struct order *o = &r->o[k];
        snprintf(o->id, sizeof o->id, "RD%s-%05d", r->tag, k);
        double u = unit(&s), c = 0;
        o->cls = C_NORMAL;
        for (int i = 0; i < NCLASS; i++)
            if (u < (c += O.mix[i])) {
                o->cls = i;
                break;
            }
        int h = zipf_pick(&s, hcum, 24);
        o->t_push = (int64_t)k * O.days / r->n * DAY_MS + h * HOUR_MS +
                    (int64_t)(unit(&s) * HOUR_MS);
        o->wh = unit(&s) < 0.65 || O.nwh == 1
                    ? 0
                    : 1 + (int)(rnd(&s) % (uint64_t)(O.nwh - 1));
        o->cust = zipf_pick(&s, ccum, 249);
        double v = unit(&s);
        o->src = o->cls == C_ASN ? 1 : v < 0.7 ? 0 : v < 0.85 ? 2 : 3;
        v = unit(&s);
        o->ful = v < 0.7 ? 0 : v < 0.8 ? 1 : v < 0.9 ? 2 : 3;
        v = unit(&s);
        o->risk = v < 0.05 ? 0 : v < 0.10 ? 1 : v < 0.14 ? 2 : -1;
        /* Credit check: OEM ASN orders are pre-cleared; risky customers
           take longer; overdue accounts are often held. */
        double med = o->cls == C_ASN ? 2 : o->cls == C_RUSH4H ? 5 : 12;
        if (o->risk >= 0)
            med *= 4;
        o->credit_ms = (int64_t)(lognormal(&s, med, 0.6) * MIN_MS);
        double ph = o->risk == 2 ? 0.5 : O.p_hold;
        o->hold = o->cls != C_ASN && unit(&s) < ph;
        o->hold_ms = (int64_t)((60 + unit(&s) * 120) * MIN_MS);
        o->hold_cancel = o->hold && unit(&s) < 0.2;
        o->cancel = !o->hold && unit(&s) < O.p_cancel;
        o->cancel_at = o->t_push + o->credit_ms +
                       (int64_t)(unit(&s) * 90 * MIN_MS) - 10 * MIN_MS;
        if (o->cancel_at <= o->t_push)
            o->cancel_at = o->t_push + MIN_MS;
        o->reprio = o->cls == C_NORMAL && !o->cancel && unit(&s) < O.p_reprio;
        o->reprio_cls = unit(&s) < 0.2 ? C_RUSH4H : C_RUSH24H;
        o->reprio_at = o->t_push + o->credit_ms +
                       (int64_t)((10 + unit(&s) * 170) * MIN_MS);
        o->picker = -1;
        o->cls_now = o->cls;

        r->ev[r->nev++] = (struct erp_ev){o->t_push, E_PUSH, k};
        int64_t dec = o->t_push + o->credit_ms;
        if (o->hold) {
            r->ev[r->nev++] = (struct erp_ev){dec, E_HOLD, k};
            r->ev[r->nev++] = (struct erp_ev){
                dec + o->hold_ms, o->hold_cancel ? E_CANCEL : E_APPROVE, k};
        } else {
            r->ev[r->nev++] = (struct erp_ev){dec, E_APPROVE, k};
        }
        if (o->cancel)
            r->ev[r->nev++] = (struct erp_ev){o->cancel_at, E_CANCEL, k};
        if (o->reprio)
            r->ev[r->nev++] = (struct erp_ev){o->reprio_at, E_REPRIO, k};
    }
    qsort(r->ev, r->nev, sizeof *r->ev, ev_cmp);
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static redisContext *
resp_connect(const struct run *r)
{
    struct timeval tv = {.tv_sec = 5};
    redisContext *c = redisConnectWithTimeout(O.host, r->port, tv);
    if (c == NULL || c->err)
        die("connect %s:%d: %s", O.host, r->port, c ? c->errstr : "no memory");
    struct timeval io = {.tv_sec = 60};
    redisSetTimeout(c, io);
    return c;
}

static redisReply *
cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (rep == NULL)
        die("'%s': %s", fmt, c->errstr);
    return rep;
}

static const redisReply *
field(const redisReply *r, const char *k)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[i]->str, k) == 0)
            return r->element[i + 1];
    return NULL;
}

static const char *
field_str(const redisReply *r, const char *k)
{
    const redisReply *v = field(r, k);
    return v && v->type == REDIS_REPLY_STRING ? v->str : NULL;
}

static long long
field_int(const redisReply *r, const char *k)
{
    const redisReply *v = field(r, k);
    if (!v)
        return -1;
    if (v->type == REDIS_REPLY_INTEGER)
        return v->integer;
    if (v->type == REDIS_REPLY_STRING)
        return atoll(v->str);
    return -1;
}

static bool
reply_ok(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_STATUS;
}

/* A tiny blocking HTTP/1.1 client for loopback only: keep-alive, one
   request at a time, Content-Length bodies (evhttp always sends one). */
struct http {
    int fd;
    int port;
};

static int
http_open(struct http *h)
{
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (h->fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)h->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(h->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(h->fd);
        h->fd = -1;
        return -1;
    }
    return 0;
}

static int
http_try(struct http *h, const char *path, const char *body, char *resp,
         size_t cap)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, strlen(body), body);
    if (n <= 0 || (size_t)n >= sizeof req)
        return -1;
    for (int off = 0; off < n;) {
        ssize_t w = send(h->fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        off += (int)w;
    }
    size_t got = 0;
    char *eoh = NULL;
    while (!(eoh = strstr(resp, "\r\n\r\n"))) {
        if (got + 1 >= cap)
            return -1;
        ssize_t rd = recv(h->fd, resp + got, cap - 1 - got, 0);
        if (rd <= 0)
            return -1;
        got += (size_t)rd;
        resp[got] = '\0';
    }
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    const char *cl = strcasestr(resp, "\r\nContent-Length:");
    size_t len = cl && cl < eoh ? (size_t)atol(cl + 17) : 0;
    size_t hdr = (size_t)(eoh + 4 - resp);
    while (got < hdr + len) {
        if (got + 1 >= cap)
            return -1;
        ssize_t rd = recv(h->fd, resp + got, cap - 1 - got, 0);
        if (rd <= 0)
            return -1;
        got += (size_t)rd;
        resp[got] = '\0';
    }
    memmove(resp, resp + hdr, got - hdr + 1);
    return status;
}

/* POST body to path: the HTTP status, or -1.  A keep-alive connection the
   server closed is reopened once. */
static int
http_post(struct http *h, const char *path, const char *body, char *resp,
          size_t cap)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->fd < 0 && http_open(h) != 0)
            return -1;
        resp[0] = '\0';
        int st = http_try(h, path, body, resp, cap);
        if (st > 0)
            return st;
        close(h->fd);
        h->fd = -1;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* The WMS: a timer heap served by a few sender threads                 */

static void
heap_push(struct run *r, struct witem it)
{
    if (r->nheap == r->capheap) {
        r->capheap = r->capheap ? 2 * r->capheap : 1024;
        r->heap = realloc(r->heap, r->capheap * sizeof *r->heap);
        if (!r->heap)
            die("out of memory");
    }
    size_t i = r->nheap++;
    while (i > 0 && r->heap[(i - 1) / 2].due > it.due) {
        r->heap[i] = r->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->heap[i] = it;
    pthread_cond_broadcast(&r->wcond);
}

static struct witem
heap_pop(struct run *r)
{
    struct witem top = r->heap[0], last = r->heap[--r->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= r->nheap)
            break;
        if (c + 1 < r->nheap && r->heap[c + 1].due < r->heap[c].due)
            c++;
        if (r->heap[c].due >= last.due)
            break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (r->nheap)
        r->heap[i] = last;
    return top;
}

/* Schedule (caller holds mu). */
static void
wms_at(struct run *r, int64_t due, int kind, int k, int attempt)
{
    heap_push(r, (struct witem){due, kind, k, attempt, 0, -1});
}

struct sender {
    struct run *r;
    struct http h;
    uint64_t rs;
};

static void
wms_send(struct sender *sd, const struct witem *it)
{
    struct run *r = sd->r;
    struct order *o = &r->o[it->k];
    char body[512], resp[4096];
    int64_t at_ms = o->ship_us / 1000;
    snprintf(body, sizeof body,
             "{\"order_no\":\"%s\",\"outbound_at\":%" PRId64
             ",\"operator\":\"%s\",\"photo_url\":\"https://wms.example/p/"
             "%s.jpg\",\"attempt\":%d}",
             o->id, at_ms, r->pk[o->picker >= 0 ? o->picker : 0].name, o->id,
             it->attempt);
    double u = unit(&sd->rs);
    int64_t retry = wall_us() + scaled_us(r, 5000);
    if (it->kind == W_SEND && u < O.p_lost) {
        /* Lost on the way: the WMS hears nothing and retries. */
        pthread_mutex_lock(&r->mu);
        r->cb_lost++;
        r->cb_retry++;
        wms_at(r, retry, W_SEND, it->k, it->attempt + 1);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    int st = http_post(&sd->h, "/v1/wms/outbound", body, resp, sizeof resp);
    pthread_mutex_lock(&r->mu);
    r->cb_sent++;
    if (it->kind == W_DUP) {
        r->cb_dup++;
        if (st != 200)
            r->cb_errors++;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    bool lost_ack = u < O.p_lost + O.p_lost_ack;
    if (st != 200 || lost_ack) {
        if (st != 200) {
            r->cb_errors++;
            run_fail(r, "outbound %s: HTTP %d %s", o->id, st, resp);
        } else {
            r->cb_lost_ack++;
        }
        r->cb_retry++;
        wms_at(r, retry, W_SEND, it->k, it->attempt + 1);
    } else if (!o->acked) {
        o->acked = true;
        o->busy--;
        o->version++;
        if (unit(&sd->rs) < O.p_dup)
            wms_at(r,
                   wall_us() +
                       scaled_us(r, (int64_t)(unit(&sd->rs) * 10 * MIN_MS)),
                   W_DUP, it->k, it->attempt + 1);
    }
    pthread_mutex_unlock(&r->mu);
}

static void *
sender_main(void *arg)
{
    struct sender *sd = arg;
    struct run *r = sd->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->nheap == 0) {
            if (r->wms_stop)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&r->wcond, &r->mu, &ts);
            continue;
        }
        int64_t now = wall_us();
        if (r->heap[0].due > now) {
            int64_t due = r->heap[0].due;
            if (due > now + 50000)
                due = now + 50000;
            struct timespec ts = {.tv_sec = due / 1000000,
                                  .tv_nsec = (due % 1000000) * 1000};
            pthread_cond_timedwait(&r->wcond, &r->mu, &ts);
            continue;
        }
        struct witem it = heap_pop(r);
        struct order *o = &r->o[it.k];
        switch (it.kind) {
        case W_PHYS:
            /* The order physically leaves the dock: the truth is shipped
               from now, the callback follows with the WMS's jitter. */
            if (o->state == S_CANCELLED)
                break; /* the warehouse heard of the cancel in time */
            o->state = S_SHIPPED;
            o->busy++; /* until the WMS's callback is answered */
            o->ship_us = now;
            o->version++;
            {
                double u = unit(&sd->rs);
                int64_t d = u < O.p_slow
                                ? (int64_t)((1 + unit(&sd->rs) * 9) * MIN_MS)
                                : (int64_t)(unit(&sd->rs) * 20000);
                wms_at(r, now + scaled_us(r, d), W_SEND, it.k, 1);
            }
            break;
        case W_EXPIRE:
            /* The abandoned lease has expired: the order is back in the
               queue, physically untouched. */
            if (o->state == S_PICKING && o->abandoned && o->lease == it.lease) {
                o->state = S_QUEUED;
                o->abandoned = false;
                o->picker = -1;
                o->version++;
                r->lease_expiries_seen++;
            }
            o->busy--;
            break;
        default:
            pthread_mutex_unlock(&r->mu);
            wms_send(sd, &it);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (sd->h.fd >= 0)
        close(sd->h.fd);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The ERP                                                              */

static void
erp_push(struct run *r, redisContext *c, struct order *o)
{
    const char *argv[40];
    char cls[16], dl[24], cust[16], risk[16];
    int n = 0;
    argv[n++] = "PUSH";
    argv[n++] = o->id;
    snprintf(cls, sizeof cls, "%s", cls_names[o->cls]);
    argv[n++] = cls;
    int64_t deadline =
        wall_us() / 1000 + scaled_us(r, cls_window[o->cls]) / 1000;
    snprintf(dl, sizeof dl, "%" PRId64, deadline);
    argv[n++] = "DEADLINE";
    argv[n++] = dl;
    argv[n++] = "WAREHOUSE";
    argv[n++] = r->wh[o->wh];
    if (o->cust < 37)
        snprintf(cust, sizeof cust, "grp%02d", o->cust + 1);
    else
        snprintf(cust, sizeof cust, "dlr%03d", o->cust - 36);
    argv[n++] = "CUSTOMER";
    argv[n++] = cust;
    argv[n++] = "SOURCE";
    argv[n++] = src_names[o->src];
    argv[n++] = "FULFIL";
    argv[n++] = ful_names[o->ful];
    if (o->risk >= 0) {
        snprintf(risk, sizeof risk, "%s", risk_names[o->risk]);
        argv[n++] = "RISK";
        argv[n++] = risk;
    }
    if (o->cls == C_ASN) {
        argv[n++] = "ATTR";
        argv[n++] = "asn_number";
        argv[n++] = o->id;
        argv[n++] = "ATTR";
        argv[n++] = "tech_agreement";
        argv[n++] = "TA-2025-scan";
    }
    if (o->ful == 1) {
        argv[n++] = "ATTR";
        argv[n++] = "drawing_version";
        argv[n++] = "v3";
    }
    redisReply *rep = redisCommandArgv(c, n, argv, NULL);
    if (rep == NULL)
        die("PUSH %s: %s", o->id, c->errstr);
    pthread_mutex_lock(&r->mu);
    if (reply_ok(rep)) {
        o->state = S_NEW;
        o->deadline = deadline;
        o->version++;
    } else {
        r->erp_errors++;
        run_fail(r, "PUSH %s: %s", o->id, rep->str);
    }
    pthread_mutex_unlock(&r->mu);
    freeReplyObject(rep);
}

static void *
erp_main(void *arg)
{
    struct run *r = arg;
    redisContext *c = resp_connect(r);
    for (size_t i = 0; i < r->nev && !r->stop; i++) {
        const struct erp_ev *e = &r->ev[i];
        struct order *o = &r->o[e->k];
        int64_t due = sim_to_wall(r, e->t);
        int64_t lag = wall_us() - due;
        if (lag > r->erp_lag_max_us)
            r->erp_lag_max_us = lag;
        sleep_until_us(due);
        if (e->kind == E_PUSH) {
            erp_push(r, c, o);
            r->pushed = e->k + 1 > r->pushed ? e->k + 1 : r->pushed;
            continue;
        }
        pthread_mutex_lock(&r->mu);
        enum st s = o->state;
        bool go = s == S_NEW || s == S_HELD || s == S_QUEUED;
        if (e->kind == E_APPROVE)
            go = s == S_NEW || s == S_HELD;
        if (e->kind == E_HOLD)
            go = s == S_NEW;
        if (go) {
            o->busy++;
            o->version++;
        }
        pthread_mutex_unlock(&r->mu);
        if (!go)
            continue;
        redisReply *rep;
        int64_t deadline = 0;
        switch (e->kind) {
        case E_APPROVE:
            rep = cmd(c, "APPROVE %s", o->id);
            break;
        case E_HOLD:
            rep = cmd(c, "HOLD %s credit", o->id);
            break;
        case E_CANCEL:
            rep = cmd(c, "CANCEL %s customer", o->id);
            break;
        default:
            deadline = wall_us() / 1000 +
                       scaled_us(r, cls_window[o->reprio_cls]) / 1000;
            rep = cmd(c, "REPRIO %s %s DEADLINE %" PRId64, o->id,
                      cls_names[o->reprio_cls], deadline);
        }
        int64_t now = wall_us();
        pthread_mutex_lock(&r->mu);
        if (!reply_ok(rep)) {
            /* A picker may have taken it between our look and the
               daemon's turn: that is a race, not an error. */
            bool raced = o->state == S_PICKING || o->state == S_PICKED ||
                         o->state == S_SHIPPED;
            if (!raced) {
                r->erp_errors++;
                run_fail(r, "%s %s: %s (truth %s)",
                         e->kind == E_APPROVE  ? "APPROVE"
                         : e->kind == E_HOLD   ? "HOLD"
                         : e->kind == E_CANCEL ? "CANCEL"
                                               : "REPRIO",
                         o->id, rep->str, st_names[o->state]);
            }
        } else if (e->kind == E_APPROVE) {
            if (o->state == S_NEW || o->state == S_HELD) {
                o->state = S_QUEUED;
                o->queued_us = now;
            } else if (!o->queued_us) {
                o->queued_us = now;
            }
        } else if (e->kind == E_HOLD) {
            if (o->state == S_NEW)
                o->state = S_HELD;
        } else if (e->kind == E_CANCEL) {
            /* The warehouse is told: a pick under way stops and nothing
               leaves.  (If it already left, the WMS wins: not here, the
               ERP only cancels what it sees waiting.) */
            if (o->state != S_SHIPPED) {
                o->state = S_CANCELLED;
                o->cancel_us = now;
            }
        } else {
            o->cls_now = o->reprio_cls;
            o->deadline = deadline;
        }
        o->busy--;
        o->version++;
        pthread_mutex_unlock(&r->mu);
        freeReplyObject(rep);
    }
    redisFree(c);
    r->erp_done = true;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Pickers                                                              */

/* Shifts: early 06-14, late 14-22, night 22-06 (sim time, every day). */
static bool
on_shift(int shift, int64_t sim_ms, int64_t *until)
{
    int64_t day = sim_ms / DAY_MS * DAY_MS, tod = sim_ms - day;
    int64_t from = (6 + 8 * shift) * HOUR_MS;
    int64_t h = (tod - from + DAY_MS) % DAY_MS;
    if (h < 8 * HOUR_MS) {
        *until = sim_ms + 8 * HOUR_MS - h;
        return true;
    }
    *until = sim_ms + DAY_MS - h; /* next start */
    return false;
}

struct pctx {
    struct run *r;
    struct picker *p;
};

static void
picker_idle(struct picker *p, int64_t from, int64_t to)
{
    if (to - from < 20000)
        return;
    if (p->nidle == p->capidle) {
        p->capidle = p->capidle ? 2 * p->capidle : 256;
        p->idle = realloc(p->idle, p->capidle * sizeof *p->idle);
        if (!p->idle)
            die("out of memory");
    }
    p->idle[p->nidle++] = (struct idle){from, to};
}

static int
find_order(const struct run *r, const char *id)
{
    size_t tl = strlen(r->tag);
    if (strncmp(id, "RD", 2) || strncmp(id + 2, r->tag, tl) ||
        id[2 + tl] != '-')
        return -1;
    int k = atoi(id + 3 + tl);
    return k >= 0 && k < r->n ? k : -1;
}

static void *
picker_main(void *arg)
{
    struct pctx *pc = arg;
    struct run *r = pc->r;
    struct picker *p = pc->p;
    uint64_t rs = O.seed * 131 + (uint64_t)p->id * 7 + 3;
    redisContext *c = resp_connect(r);
    int64_t lease_sim = (int64_t)r->lease_s * 1000 * (int64_t)r->f;
    double pick_cap = 0.7 * (double)lease_sim / MIN_MS;
    while (!r->stop) {
        int64_t until, now_sim = sim_now(r);
        if (!on_shift(p->shift, now_sim, &until)) {
            int64_t w = sim_to_wall(r, until);
            int64_t lim = wall_us() + 200000;
            sleep_until_us(w < lim ? w : lim);
            continue;
        }
        int64_t block = scaled_us(r, until - now_sim) / 1000;
        if (block > 500)
            block = 500;
        if (block < 1)
            block = 1;
        int64_t sent = wall_us();
        redisReply *rep = cmd(c, "NEXT %s BLOCK %" PRId64 " PICKER %s LEASE %d",
                              r->wh[p->wh], block, p->name, r->lease_s);
        int64_t got = wall_us();
        p->shift_us += got - sent;
        if (rep->type == REDIS_REPLY_NIL) {
            picker_idle(p, sent, got);
            freeReplyObject(rep);
            continue;
        }
        if (rep->type != REDIS_REPLY_ARRAY) {
            run_fail(r, "NEXT %s: %s", r->wh[p->wh],
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
            freeReplyObject(rep);
            sleep_us(100000);
            continue;
        }
        picker_idle(p, sent, got);
        const char *id = field_str(rep, "id");
        int k = id ? find_order(r, id) : -1;
        uint64_t lease = (uint64_t)field_int(rep, "lease");
        int64_t lexp = field_int(rep, "lease_expires");
        freeReplyObject(rep);
        if (k < 0) {
            run_fail(r, "NEXT gave an order not of this run: %s", id);
            continue;
        }
        struct order *o = &r->o[k];
        bool abandon = unit(&rs) < O.p_abandon;
        pthread_mutex_lock(&r->mu);
        enum st s = o->state;
        if ((s == S_PICKING &&
             !(o->abandoned && got / 1000 >= o->lease_expires - 5)) ||
            s == S_PICKED || s == S_SHIPPED) {
            o->double_pick = true;
            run_fail(r, "double pick: %s handed to %s while %s by %s", o->id,
                     p->name, st_names[s],
                     o->picker >= 0 ? r->pk[o->picker].name : "?");
        }
        if (s == S_CANCELLED && o->cancel_us && o->cancel_us < sent) {
            r->next_after_cancel++;
            run_fail(r, "NEXT handed out %s, cancelled before it was asked",
                     o->id);
        }
        bool cancelled = s == S_CANCELLED;
        if (!cancelled) {
            o->state = S_PICKING;
            o->picker = p->id;
            o->lease = lease;
            o->lease_expires = lexp;
            o->abandoned = abandon;
            if (!o->pick_us) {
                o->pick_us = got;
                o->pick_sent_us = sent;
            }
            o->version++;
        }
        o->picks++;
        if (o->cls_now != C_ASN) {
            if (r->nnpicks == r->capnpicks) {
                r->capnpicks = r->capnpicks ? 2 * r->capnpicks : 1024;
                r->npicks =
                    realloc(r->npicks, r->capnpicks * sizeof *r->npicks);
                if (!r->npicks)
                    die("out of memory");
            }
            r->npicks[r->nnpicks++] = (struct npick){p->wh, sent, got};
        }
        if (abandon && !cancelled) {
            o->busy++;
            heap_push(r,
                      (struct witem){lexp * 1000 + scaled_us(r, 1000) + 20000,
                                     W_EXPIRE, k, 0, lease, p->id});
        }
        pthread_mutex_unlock(&r->mu);
        if (abandon) {
            p->abandons++;
            sleep_us(scaled_us(r, 2 * MIN_MS));
            continue;
        }
        double pm = lognormal(&rs, O.pick_min, 0.4);
        if (pm > pick_cap)
            pm = pick_cap;
        int64_t pick_us = scaled_us(r, (int64_t)(pm * MIN_MS));
        sleep_us(pick_us);
        p->busy_us += pick_us;
        p->picks++;
        pthread_mutex_lock(&r->mu);
        o->busy++;
        pthread_mutex_unlock(&r->mu);
        rep = cmd(c, "PICKED %s %" PRIu64, o->id, lease);
        pthread_mutex_lock(&r->mu);
        if (reply_ok(rep)) {
            if (o->state == S_PICKING && o->lease == lease) {
                o->state = S_PICKED;
                o->picked_us = wall_us();
            }
            /* Packing, then the dock: the WMS takes it from here. */
            int64_t pack = (int64_t)((1 + unit(&rs) * 3) * MIN_MS);
            wms_at(r, wall_us() + scaled_us(r, pack), W_PHYS, k, 0);
        } else if (o->state == S_CANCELLED) {
            ; /* the cancel reached the picker: nothing leaves */
        } else {
            r->pick_errors++;
            run_fail(r, "PICKED %s %" PRIu64 ": %s (truth %s)", o->id, lease,
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "?",
                     st_names[o->state]);
            /* Physically picked all the same: the WMS ships it. */
            o->state = S_PICKED;
            wms_at(r, wall_us() + scaled_us(r, MIN_MS), W_PHYS, k, 0);
        }
        o->busy--;
        o->version++;
        pthread_mutex_unlock(&r->mu);
        freeReplyObject(rep);
    }
    redisFree(c);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The referee: status samples and eta probes                           */

static const char *
daemon_state(redisContext *c, const struct order *o, long long *eta)
{
    static char st[32];
    redisReply *rep = cmd(c, "GET %s", o->id);
    const char *s = field_str(rep, "state");
    snprintf(st, sizeof st, "%s",
             s                                ? s
             : rep->type == REDIS_REPLY_ERROR ? rep->str
                                              : "?");
    if (eta)
        *eta = field_int(rep, "eta");
    freeReplyObject(rep);
    return st;
}

/* One status sample: a random pushed order nothing is in flight for;
   true when it was compared (ok or not). */
static bool
sample_one(struct run *r, redisContext *c, uint64_t *rs)
{
    int n = r->pushed;
    if (n == 0)
        return false;
    pthread_mutex_lock(&r->mu);
    int k = -1;
    for (int t = 0; t < 64; t++) {
        int j = (int)(rnd(rs) % (uint64_t)n);
        if (r->o[j].busy == 0 && r->o[j].state != S_NONE) {
            k = j;
            break;
        }
    }
    if (k < 0) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    struct order *o = &r->o[k];
    uint64_t v = o->version;
    pthread_mutex_unlock(&r->mu);
    const char *ds = daemon_state(c, o, NULL);
    pthread_mutex_lock(&r->mu);
    bool moved = o->version != v || o->busy;
    bool same = strcmp(ds, st_names[o->state]) == 0;
    pthread_mutex_unlock(&r->mu);
    if (moved) {
        r->sample_raced++;
        return false;
    }
    if (!same) {
        /* A NEXT reply may be on its way to its picker: look again. */
        sleep_us(100000);
        pthread_mutex_lock(&r->mu);
        moved = o->version != v || o->busy;
        enum st truth = o->state;
        pthread_mutex_unlock(&r->mu);
        if (moved) {
            r->sample_raced++;
            return false;
        }
        run_fail(r, "status sample: %s is %s in dispatchd, %s in truth", o->id,
                 ds, st_names[truth]);
    }
    pthread_mutex_lock(&r->mu);
    r->samples++;
    r->sample_ok += same;
    pthread_mutex_unlock(&r->mu);
    return true;
}

static void
probe_one(struct run *r, redisContext *c, uint64_t *rs)
{
    int n = r->pushed;
    if (n == 0)
        return;
    pthread_mutex_lock(&r->mu);
    int k = -1;
    for (int t = 0; t < 64; t++) {
        int j = (int)(rnd(rs) % (uint64_t)n);
        if (r->o[j].busy == 0 && r->o[j].state == S_QUEUED) {
            k = j;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (k < 0)
        return;
    long long eta = -1;
    const char *ds = daemon_state(c, &r->o[k], &eta);
    if (strcmp(ds, "queued") != 0 || eta <= 0)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->nprobes == r->capprobes) {
        r->capprobes = r->capprobes ? 2 * r->capprobes : 256;
        r->probes = realloc(r->probes, r->capprobes * sizeof *r->probes);
        if (!r->probes)
            die("out of memory");
    }
    r->probes[r->nprobes++] = (struct probe){k, eta};
    pthread_mutex_unlock(&r->mu);
}

static int
i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void *
sampler_main(void *arg)
{
    struct run *r = arg;
    uint64_t rs = O.seed * 977 + 5;
    redisContext *c = resp_connect(r);
    /* Times of the day's samples (status) and probes (eta), sim ms. */
    int ns = O.samples * O.days, np = O.eta_probes * O.days;
    int64_t *ts = xcalloc((size_t)(ns + np) + 1, sizeof *ts);
    for (int i = 0; i < ns + np; i++)
        ts[i] = (5 * HOUR_MS + 30 * MIN_MS +
                 (int64_t)(unit(&rs) * (double)DAY_MS * O.days)) *
                    2 +
                (i < ns ? 0 : 1);
    qsort(ts, (size_t)(ns + np), sizeof *ts, i64_cmp);
    for (int i = 0; i < ns + np && !r->stop; i++) {
        sleep_until_us(sim_to_wall(r, ts[i] / 2));
        if (ts[i] % 2) {
            probe_one(r, c, &rs);
            continue;
        }
        for (int t = 0; t < 200 && !r->stop && !sample_one(r, c, &rs); t++)
            sleep_us(1000);
    }
    free(ts);
    redisFree(c);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* After the run                                                        */

struct result {
    int orders, shipped, cancelled, unfinished;
    int rush_n[NCLASS], rush_miss[NCLASS], rush_idle_miss;
    int normal_late;
    int asn_passed, asn_passed_picks;
    int double_picks, lost_callbacks;
    double status_acc, final_acc;
    double eta_med_min, eta_p90_min, eta_signed_med_min;
    int eta_n;
    double util;
    int64_t wall_ms;
};

/* Was a picker of warehouse wh idle (blocked in NEXT) for more than 100 ms
   wall while order o waited queued before its deadline? */
static bool
idle_while_queued(const struct run *r, const struct order *o)
{
    if (!o->queued_us)
        return false;
    int64_t from = o->queued_us;
    int64_t to = o->pick_us ? o->pick_us : o->deadline * 1000;
    if (to > o->deadline * 1000)
        to = o->deadline * 1000;
    for (int i = 0; i < r->npk; i++) {
        const struct picker *p = &r->pk[i];
        if (p->wh != o->wh)
            continue;
        for (size_t j = 0; j < p->nidle; j++) {
            int64_t a = p->idle[j].from > from ? p->idle[j].from : from;
            int64_t b = p->idle[j].to < to ? p->idle[j].to : to;
            if (b - a > 100000)
                return true;
        }
    }
    return false;
}

static void
final_check(struct run *r, struct result *res)
{
    redisContext *c = resp_connect(r);
    for (int k = 0; k < r->n; k++) {
        if (r->o[k].state == S_NONE)
            continue;
        redisAppendCommand(c, "GET %s", r->o[k].id);
    }
    for (int k = 0; k < r->n; k++) {
        struct order *o = &r->o[k];
        if (o->state == S_NONE)
            continue;
        redisReply *rep;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK)
            die("GET: %s", c->errstr);
        const char *s = field_str(rep, "state");
        bool same = s && strcmp(s, st_names[o->state]) == 0;
        r->final_n++;
        r->final_ok += same;
        if (!same)
            run_fail(r, "final: %s is %s in dispatchd, %s in truth", o->id,
                     s ? s : "?", st_names[o->state]);
        if (o->state == S_SHIPPED && s && strcmp(s, "shipped") != 0)
            res->lost_callbacks++;
        freeReplyObject(rep);
    }
    redisReply *rep = cmd(c, "STATS");
    r->stats_expiries = field_int(rep, "lease_expiries");
    r->stats_escalations = field_int(rep, "escalations");
    r->stats_jumps = field_int(rep, "queue_jumps");
    r->stats_unconfirmed = field_int(rep, "unconfirmed");
    r->stats_anomalous = field_int(rep, "outbounds_anomalous");
    freeReplyObject(rep);
    redisFree(c);
}

/* ASN orders passed: a NEXT of the order's warehouse sent after the ASN
   order was queued (in the truth, so in the daemon before) came back with
   an order of a lower class before the NEXT that handed the ASN order out
   (or its cancel) was sent.  The daemon runs commands one at a time, so
   the lower order was leased while the ASN order waited: only escalation
   can do that.  The first wait of each ASN order counts. */
static void
asn_passed(const struct run *r, struct result *res)
{
    for (int k = 0; k < r->n; k++) {
        const struct order *o = &r->o[k];
        if (o->cls_now != C_ASN || !o->queued_us)
            continue;
        int64_t end = o->pick_sent_us ? o->pick_sent_us
                      : o->cancel_us  ? o->cancel_us
                                      : INT64_MAX;
        int n = 0;
        for (size_t i = 0; i < r->nnpicks; i++) {
            const struct npick *p = &r->npicks[i];
            n += p->wh == o->wh && p->sent > o->queued_us && p->got < end;
        }
        res->asn_passed += n > 0;
        res->asn_passed_picks += n;
    }
}

static void
analyse(struct run *r, struct result *res)
{
    res->orders = r->n;
    asn_passed(r, res);
    for (int k = 0; k < r->n; k++) {
        struct order *o = &r->o[k];
        res->shipped += o->state == S_SHIPPED;
        res->cancelled += o->state == S_CANCELLED;
        res->unfinished += o->state != S_SHIPPED && o->state != S_CANCELLED;
        res->double_picks += o->double_pick;
        if (o->state == S_CANCELLED)
            continue;
        bool late = o->state != S_SHIPPED || o->ship_us / 1000 > o->deadline;
        if (o->cls_now == C_NORMAL) {
            res->normal_late += late;
            continue;
        }
        res->rush_n[o->cls_now]++;
        if (late) {
            res->rush_miss[o->cls_now]++;
            if (idle_while_queued(r, o)) {
                res->rush_idle_miss++;
                run_fail(r, "rush %s (%s) missed while a picker of %s idled",
                         o->id, cls_names[o->cls_now], r->wh[o->wh]);
            }
        }
    }
    res->status_acc = r->samples ? 100.0 * r->sample_ok / r->samples : 0;
    res->final_acc = r->final_n ? 100.0 * r->final_ok / r->final_n : 0;
    int64_t *err = xcalloc(r->nprobes + 1, sizeof *err);
    int64_t *sgn = xcalloc(r->nprobes + 1, sizeof *sgn);
    size_t m = 0;
    for (size_t i = 0; i < r->nprobes; i++) {
        const struct order *o = &r->o[r->probes[i].k];
        if (!o->pick_us)
            continue;
        int64_t e = o->pick_us / 1000 - r->probes[i].eta_ms;
        sgn[m] = (int64_t)((double)e * r->f);
        err[m++] = (int64_t)((double)llabs(e) * r->f);
    }
    qsort(err, m, sizeof *err, i64_cmp);
    res->eta_n = (int)m;
    res->eta_med_min = m ? (double)err[m / 2] / MIN_MS : 0;
    res->eta_p90_min = m ? (double)err[(m * 9) / 10] / MIN_MS : 0;
    qsort(sgn, m, sizeof *sgn, i64_cmp);
    res->eta_signed_med_min = m ? (double)sgn[m / 2] / MIN_MS : 0;
    free(err);
    free(sgn);
    int64_t busy = 0, on = 0;
    for (int i = 0; i < r->npk; i++) {
        busy += r->pk[i].busy_us;
        on += r->pk[i].shift_us + r->pk[i].busy_us;
    }
    res->util = on ? 100.0 * (double)busy / (double)on : 0;
}

/* ------------------------------------------------------------------ */
/* One run                                                              */

static const int day_orders[2] = {920, 3100};
/* Pickers per shift (early, late, night), all warehouses: enough for a
   normal day; the surge day's crews are what a warehouse can add. */
static const int day_crew[2][NSHIFT] = {{8, 8, 2}, {24, 24, 6}};

static void
run_day(struct run *r, struct result *res)
{
    int surge = strcmp(O.day, "surge") == 0;
    int per_day = O.orders ? O.orders : day_orders[surge];
    r->n = per_day * O.days;
    double scale = (double)per_day / day_orders[surge];
    r->f = O.factor;
    r->lease_s = (int)ceil((double)O.lease_min * MIN_MS / r->f / 1000.0);
    if (r->lease_s < 1)
        r->lease_s = 1;
    snprintf(r->tag, sizeof r->tag, "%04x%c",
             (unsigned)(mix64(O.seed ^ (uint64_t)wall_us()) & 0xffff),
             r->label[0]);
    for (int w = 0; w < O.nwh; w++)
        snprintf(r->wh[w], sizeof r->wh[w], "hz%d-%s", w + 1, r->tag);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wcond, NULL);
    workload(r);

    /* The crews, split over the warehouses as the orders are (65 % to the
       first), at least one picker per warehouse and shift. */
    r->pk = xcalloc(512, sizeof *r->pk);
    for (int s = 0; s < NSHIFT; s++) {
        int crew =
            O.crew[s] ? O.crew[s] : (int)lround(day_crew[surge][s] * scale);
        for (int w = 0; w < O.nwh; w++) {
            double share = O.nwh == 1 ? 1 : w == 0 ? 0.65 : 0.35 / (O.nwh - 1);
            int m = (int)lround(crew * share);
            if (m < 1)
                m = 1;
            for (int i = 0; i < m && r->npk < 512; i++) {
                struct picker *p = &r->pk[r->npk];
                p->id = r->npk++;
                p->wh = w;
                p->shift = s;
                snprintf(p->name, sizeof p->name, "p%d-%c%02d", w + 1, "ELN"[s],
                         i + 1);
            }
        }
    }

    /* Start at 05:30 of the simulated day, so the early shift begins
       half an hour in and the first orders find a queue. */
    r->t0 = wall_us() - scaled_us(r, 5 * HOUR_MS + 30 * MIN_MS);
    pthread_t erp, smp, snd[SENDERS],
        *pks = xcalloc((size_t)r->npk, sizeof *pks);
    struct sender sds[SENDERS];
    struct pctx *pcs = xcalloc((size_t)r->npk, sizeof *pcs);
    int64_t start = wall_us();
    for (int i = 0; i < SENDERS; i++) {
        sds[i] =
            (struct sender){r, {-1, r->http_port}, O.seed * 31 + (uint64_t)i};
        pthread_create(&snd[i], NULL, sender_main, &sds[i]);
    }
    for (int i = 0; i < r->npk; i++) {
        pcs[i] = (struct pctx){r, &r->pk[i]};
        pthread_create(&pks[i], NULL, picker_main, &pcs[i]);
    }
    pthread_create(&erp, NULL, erp_main, r);
    pthread_create(&smp, NULL, sampler_main, r);

    /* Until every order is shipped or cancelled and nothing is in flight,
       or the drain time is over. */
    int64_t end = DAY_MS * O.days + (int64_t)O.drain_h * HOUR_MS;
    for (;;) {
        sleep_us(100000);
        if (sim_now(r) > end)
            break;
        if (!r->erp_done)
            continue;
        bool done = true;
        pthread_mutex_lock(&r->mu);
        for (int k = 0; k < r->n && done; k++)
            done = r->o[k].busy == 0 &&
                   (r->o[k].state == S_SHIPPED || r->o[k].state == S_CANCELLED);
        pthread_mutex_unlock(&r->mu);
        if (done && sim_now(r) > DAY_MS * O.days)
            break;
    }
    r->stop = true;
    for (int i = 0; i < r->npk; i++)
        pthread_join(pks[i], NULL);
    pthread_join(erp, NULL);
    pthread_join(smp, NULL);
    /* Let the WMS deliver what is still on its way (at most 10 s). */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&r->mu);
        size_t left = r->nheap;
        pthread_mutex_unlock(&r->mu);
        if (!left)
            break;
        sleep_us(100000);
    }
    pthread_mutex_lock(&r->mu);
    r->wms_stop = true;
    r->nheap = 0;
    pthread_cond_broadcast(&r->wcond);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < SENDERS; i++)
        pthread_join(snd[i], NULL);
    res->wall_ms = (wall_us() - start) / 1000;
    final_check(r, res);
    analyse(r, res);
    free(pks);
    free(pcs);
}

static void
run_free(struct run *r)
{
    for (int i = 0; i < r->npk; i++)
        free(r->pk[i].idle);
    free(r->pk);
    free(r->o);
    free(r->ev);
    free(r->heap);
    free(r->probes);
    free(r->npicks);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->wcond);
}

/* ------------------------------------------------------------------ */
/* --spawn: a daemon of our own, its durations scaled by the factor     */

struct spawned {
    pid_t pid;
    char dir[64];
    int port, http_port;
};

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("no free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static bool
port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The daemon's options for factor f: every duration the story states in
   real time, divided by f (at least 1 ms). */
static int
daemon_args(bool escalate, char buf[][32], const char **argv)
{
    static const struct {
        const char *opt;
        int64_t ms;
    } d[] = {
        {"--lease-default", 5 * MIN_MS},
        {"--pick-estimate", 2 * MIN_MS},
        {"--confirm-timeout", 30 * MIN_MS},
        {"--deadline-rush4h", 4 * HOUR_MS},
        {"--deadline-rush24h", 24 * HOUR_MS},
        {"--deadline-normal", 72 * HOUR_MS},
        {"--escalate-rush24h", 4 * HOUR_MS},
        {"--escalate-normal", 24 * HOUR_MS},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        int64_t ms = (int64_t)ceil((double)d[i].ms / O.factor);
        if (!escalate && strncmp(d[i].opt, "--escalate", 10) == 0)
            ms = 0;
        if (strcmp(d[i].opt, "--lease-default") == 0 && ms < 1000)
            ms = 1000; /* the daemon's floor, as NEXT's LEASE */
        snprintf(buf[i], 32, "%" PRId64 "ms", ms);
        argv[n++] = d[i].opt;
        argv[n++] = buf[i];
    }
    argv[n] = NULL;
    return n;
}

static void
spawn(struct spawned *s, bool escalate)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/dispatchd-sim-XXXXXX");
    if (!mkdtemp(s->dir))
        die("mkdtemp: %s", strerror(errno));
    s->port = free_port();
    s->http_port = free_port();
    char port[16], hport[16], data[96], log[96], buf[16][32];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(hport, sizeof hport, "%d", s->http_port);
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(log, sizeof log, "%s/dispatchd.log", s->dir);
    const char *argv[64] = {O.spawn, "--bind",      "127.0.0.1", "--port",
                            port,    "--http-port", hport,       "--data",
                            data,    "--log-level", "warn"};
    daemon_args(escalate, buf, argv + 11);
    s->pid = fork();
    if (s->pid < 0)
        die("fork: %s", strerror(errno));
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(O.spawn, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        if (port_open(s->port) && port_open(s->http_port))
            return;
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid)
            die("%s exited at start (see %s)", O.spawn, log);
        sleep_us(10000);
    }
    die("%s did not listen on %d within 10 s", O.spawn, s->port);
}

static int
unspawn(struct spawned *s)
{
    int st = 0;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &st, 0);
    char cmdline[128];
    snprintf(cmdline, sizeof cmdline, "rm -rf '%s'", s->dir);
    if (getenv("DISPATCHD_KEEP_TEST_DIRS"))
        fprintf(stderr, "sim: kept %s\n", s->dir);
    else if (system(cmdline) != 0)
        fprintf(stderr, "sim: could not remove %s\n", s->dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ */
/* Report                                                               */

static double
pct(int a, int b)
{
    return b ? 100.0 * a / b : 0;
}

static int
rush_total(const struct result *x, int *miss)
{
    int n = 0;
    *miss = 0;
    for (int c = 0; c < C_NORMAL; c++) {
        n += x->rush_n[c];
        *miss += x->rush_miss[c];
    }
    return n;
}

static int
rush_missed(const struct result *x)
{
    int m;
    rush_total(x, &m);
    return m;
}

static double
rush_rate(const struct result *x)
{
    int m, n = rush_total(x, &m);
    return pct(m, n);
}

static void
report_table(struct run *rs, struct result *res, int nr, const char *cmdline)
{
    printf("sim: %d %s day(s), %d orders, factor %.0f (a day in %.0f s), %d "
           "warehouses, seed %" PRIu64 "\n",
           O.days, O.day, res[0].orders, O.factor, DAY_MS / O.factor / 1000,
           O.nwh, O.seed);
    printf("class mix asn %.0f%% rush4h %.0f%% rush24h %.0f%% normal %.0f%%; "
           "%d pickers (shifts E/L/N); lease %d s wall = %.0f sim min\n",
           100 * O.mix[0], 100 * O.mix[1], 100 * O.mix[2], 100 * O.mix[3],
           rs[0].npk, rs[0].lease_s, rs[0].lease_s * O.factor / 60);
    printf("command: %s\n\n", cmdline);
    printf("| %-34s | %-12s | %-12s |", "figure", "story before",
           "story after");
    for (int i = 0; i < nr; i++)
        printf(" %-12s |", rs[i].label);
    printf("\n|%s|%s|%s|", "------------------------------------",
           "--------------", "--------------");
    for (int i = 0; i < nr; i++)
        printf("%s|", "--------------");
    printf("\n");
#define ROW(name, before, after, fmt, ...)                                     \
    do {                                                                       \
        printf("| %-34s | %-12s | %-12s |", name, before, after);              \
        for (int i = 0; i < nr; i++) {                                         \
            char cell[64];                                                     \
            struct result *x = &res[i];                                        \
            struct run *r = &rs[i];                                            \
            (void)x;                                                           \
            (void)r;                                                           \
            snprintf(cell, sizeof cell, fmt, __VA_ARGS__);                     \
            printf(" %-12s |", cell);                                          \
        }                                                                      \
        printf("\n");                                                          \
    } while (0)
    ROW("orders a day", "920", "3,100", "%d", x->orders / O.days);
    if (O.days > 1)
        ROW("orders, all days", "", "", "%d", x->orders);
    ROW("status accuracy (100 samples/day)", "72.3%", "99.1%", "%.1f%% (%d)",
        x->status_acc, r->samples);
    ROW("final state, every order", "", "", "%.1f%%", x->final_acc);
    ROW("rush late or never shipped", "17%", "", "%.1f%% (%d)", rush_rate(x),
        rush_missed(x));
    for (int c = 0; c < C_NORMAL; c++) {
        char name[48];
        snprintf(name, sizeof name, "  %s late or never", cls_names[c]);
        ROW(name, "", "", "%d / %d", x->rush_miss[c], x->rush_n[c]);
    }
    ROW("rush missed while pickers idled", "", "", "%d", x->rush_idle_miss);
    ROW("normal late (72 h)", "", "", "%d", x->normal_late);
    ROW("ASN orders passed (lower leased)", "", "", "%d (%d)", x->asn_passed,
        x->asn_passed_picks);
    ROW("double picks", "", "", "%d", x->double_picks);
    ROW("callbacks lost for good", "", "", "%d", x->lost_callbacks);
    ROW("ETA error median (sim min)", "", "", "%.0f", x->eta_med_min);
    ROW("ETA error p90 (sim min)", "", "", "%.0f", x->eta_p90_min);
    ROW("ETA late (+) median (sim min)", "", "", "%+.0f",
        x->eta_signed_med_min);
    ROW("ETA probes", "", "", "%d", x->eta_n);
    ROW("shipped / cancelled / open", "", "", "%d/%d/%d", x->shipped,
        x->cancelled, x->unfinished);
    ROW("picker utilisation", "", "", "%.0f%%", x->util);
    ROW("callbacks sent/dup/retried", "", "", "%d/%d/%d", r->cb_sent, r->cb_dup,
        r->cb_retry);
    ROW("lease expiries / escalations", "", "", "%lld/%lld", r->stats_expiries,
        r->stats_escalations);
    ROW("unconfirmed events", "", "", "%lld", r->stats_unconfirmed);
    ROW("errors erp/picked/http", "", "", "%d/%d/%d", r->erp_errors,
        r->pick_errors, r->cb_errors);
    ROW("wall time (s)", "", "", "%.1f", x->wall_ms / 1000.0);
#undef ROW
}

static void
report_json(struct run *rs, struct result *res, int nr, const char *cmdline)
{
    printf("{\"day\":\"%s\",\"days\":%d,\"factor\":%.0f,\"seed\":%" PRIu64
           ",\"command\":\"",
           O.day, O.days, O.factor, O.seed);
    for (const char *p = cmdline; *p; p++)
        printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    printf("\",\"runs\":[");
    for (int i = 0; i < nr; i++) {
        const struct run *r = &rs[i];
        const struct result *x = &res[i];
        int m, n = rush_total(x, &m);
        printf("%s{\"mode\":\"%s\",\"orders\":%d,\"pickers\":%d,"
               "\"status_accuracy\":%.2f,\"samples\":%d,\"samples_raced\":%d,"
               "\"final_accuracy\":%.2f,\"rush\":%d,\"rush_missed\":%d,"
               "\"rush_miss_rate\":%.2f,\"rush_missed_idle\":%d,",
               i ? "," : "", r->label, x->orders, r->npk, x->status_acc,
               r->samples, r->sample_raced, x->final_acc, n, m, pct(m, n),
               x->rush_idle_miss);
        printf("\"miss_by_class\":{");
        for (int c = 0; c < C_NORMAL; c++)
            printf("%s\"%s\":[%d,%d]", c ? "," : "", cls_names[c],
                   x->rush_miss[c], x->rush_n[c]);
        printf("},\"asn_passed\":%d,\"asn_passed_picks\":%d,", x->asn_passed,
               x->asn_passed_picks);
        printf("\"normal_late\":%d,\"double_picks\":%d,"
               "\"lost_callbacks\":%d,\"eta_error_min\":{\"median\":%.1f,"
               "\"p90\":%.1f,\"signed_median\":%.1f,\"n\":%d},\"shipped\":%d,"
               "\"cancelled\":%d,"
               "\"open\":%d,\"utilisation\":%.1f,\"callbacks\":{\"sent\":%d,"
               "\"dup\":%d,\"lost\":%d,\"lost_ack\":%d,\"retried\":%d,"
               "\"errors\":%d},\"lease_expiries\":%lld,\"escalations\":%lld,"
               "\"unconfirmed\":%lld,\"erp_errors\":%d,\"pick_errors\":%d,"
               "\"next_after_cancel\":%d,\"wall_ms\":%" PRId64 "}",
               x->normal_late, x->double_picks, x->lost_callbacks,
               x->eta_med_min, x->eta_p90_min, x->eta_signed_med_min, x->eta_n,
               x->shipped, x->cancelled, x->unfinished, x->util, r->cb_sent,
               r->cb_dup, r->cb_lost, r->cb_lost_ack, r->cb_retry, r->cb_errors,
               r->stats_expiries, r->stats_escalations, r->stats_unconfirmed,
               r->erp_errors, r->pick_errors, r->next_after_cancel, x->wall_ms);
    }
    printf("]}\n");
}

/* ------------------------------------------------------------------ */
/* Options and main                                                     */

static void
usage(FILE *f)
{
    fputs(
        "usage: sim [options]\n"
        "  --host H / --port N / --http-port N   a running dispatchd "
        "(127.0.0.1:7420, 7421)\n"
        "  --spawn PATH         start PATH on free loopback ports with a temp\n"
        "                       data dir and scaled options, and run the day\n"
        "                       twice: with escalation and with strict class\n"
        "                       priority (--escalate-* 0)\n"
        "  --only escalate|strict   with --spawn, one of the two runs\n"
        "  --print-daemon-args  the scaled daemon options for --factor, then "
        "exit\n"
        "  --day normal|surge   920 or 3,100 orders (default normal)\n"
        "  --orders N           another number of orders (crews scale)\n"
        "  --factor F           simulated time runs F times faster (1440: a\n"
        "                       day in a minute)\n"
        "  --mix A,R4,R24,N     class shares in % (default 5,12,18,65)\n"
        "  --warehouses N       (default 2)\n"
        "  --crew E,L,N         pickers per shift 06-14, 14-22, 22-06\n"
        "                       (default normal 8,8,2; surge 24,24,6)\n"
        "  --pick-min M         median pick time, sim minutes (7)\n"
        "  --lease-min M        lease NEXT asks for, sim minutes (30; at "
        "least 1 s wall)\n"
        "  --abandon P --hold P --cancel P --reprio P   probabilities\n"
        "                       (0.02, 0.03, 0.02, 0.04)\n"
        "  --dup P --lost P --lost-ack P --slow P   callback jitter\n"
        "                       (0.05, 0.03, 0.02, 0.05)\n"
        "  --samples N          status samples per day (100)\n"
        "  --eta-probes N       eta probes per day (400)\n"
        "  --drain-h H          sim hours after the day to finish (24)\n"
        "  --days N             N consecutive days of orders (1)\n"
        "  --seed N  --json  --quiet\n"
        "exit status: 0 ok; 1 status accuracy below 100 %, a double pick or\n"
        "a rush order missed while pickers idled; 2 usage or set-up error\n",
        f);
}

static double
parse_p(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || v < 0 || v > 1)
        die("probability between 0 and 1, not '%s'", s);
    return v;
}

static void
parse_opts(int argc, char **argv)
{
    O = (struct opts){.host = "127.0.0.1",
                      .port = 7420,
                      .http_port = 7421,
                      .day = "normal",
                      .factor = 1440,
                      .mix = {0.05, 0.12, 0.18, 0.65},
                      .nwh = 2,
                      .pick_min = 7,
                      .lease_min = 30,
                      .p_abandon = 0.02,
                      .p_hold = 0.03,
                      .p_cancel = 0.02,
                      .p_reprio = 0.04,
                      .p_dup = 0.05,
                      .p_lost = 0.03,
                      .p_lost_ack = 0.02,
                      .p_slow = 0.05,
                      .samples = 100,
                      .eta_probes = 400,
                      .drain_h = 24,
                      .days = 1,
                      .seed = 1};
    static const struct option lo[] = {{"host", 1, 0, 'H'},
                                       {"port", 1, 0, 'p'},
                                       {"http-port", 1, 0, 'P'},
                                       {"spawn", 1, 0, 'S'},
                                       {"only", 1, 0, 'y'},
                                       {"print-daemon-args", 0, 0, 'A'},
                                       {"day", 1, 0, 'd'},
                                       {"orders", 1, 0, 'n'},
                                       {"factor", 1, 0, 'f'},
                                       {"mix", 1, 0, 'm'},
                                       {"warehouses", 1, 0, 'w'},
                                       {"crew", 1, 0, 'c'},
                                       {"pick-min", 1, 0, 'k'},
                                       {"lease-min", 1, 0, 'l'},
                                       {"abandon", 1, 0, 1},
                                       {"hold", 1, 0, 2},
                                       {"cancel", 1, 0, 3},
                                       {"reprio", 1, 0, 4},
                                       {"dup", 1, 0, 5},
                                       {"lost", 1, 0, 6},
                                       {"lost-ack", 1, 0, 7},
                                       {"slow", 1, 0, 8},
                                       {"samples", 1, 0, 9},
                                       {"eta-probes", 1, 0, 10},
                                       {"drain-h", 1, 0, 11},
                                       {"seed", 1, 0, 's'},
                                       {"days", 1, 0, 12},
                                       {"json", 0, 0, 'j'},
                                       {"quiet", 0, 0, 'q'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'H':
            O.host = optarg;
            break;
        case 'p':
            O.port = atoi(optarg);
            break;
        case 'P':
            O.http_port = atoi(optarg);
            break;
        case 'S':
            O.spawn = optarg;
            break;
        case 'y':
            O.escalate_only = strcmp(optarg, "escalate") == 0;
            O.strict_only = strcmp(optarg, "strict") == 0;
            if (!O.escalate_only && !O.strict_only)
                die("--only escalate|strict, not '%s'", optarg);
            break;
        case 'A':
            O.print_args = true;
            break;
        case 'd':
            if (strcmp(optarg, "normal") && strcmp(optarg, "surge"))
                die("--day normal|surge, not '%s'", optarg);
            O.day = optarg;
            break;
        case 'n':
            O.orders = atoi(optarg);
            break;
        case 'f':
            O.factor = atof(optarg);
            break;
        case 'm': {
            double v[NCLASS], sum = 0;
            if (sscanf(optarg, "%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3]) !=
                4)
                die("--mix A,R4,R24,N (percent), not '%s'", optarg);
            for (int i = 0; i < NCLASS; i++)
                sum += v[i];
            for (int i = 0; i < NCLASS; i++)
                O.mix[i] = v[i] / sum;
            break;
        }
        case 'w':
            O.nwh = atoi(optarg);
            break;
        case 'c':
            if (sscanf(optarg, "%d,%d,%d", &O.crew[0], &O.crew[1],
                       &O.crew[2]) != 3)
                die("--crew E,L,N, not '%s'", optarg);
            break;
        case 'k':
            O.pick_min = atof(optarg);
            break;
        case 'l':
            O.lease_min = atoi(optarg);
            break;
        case 1:
            O.p_abandon = parse_p(optarg);
            break;
        case 2:
            O.p_hold = parse_p(optarg);
            break;
        case 3:
            O.p_cancel = parse_p(optarg);
            break;
        case 4:
            O.p_reprio = parse_p(optarg);
            break;
        case 5:
            O.p_dup = parse_p(optarg);
            break;
        case 6:
            O.p_lost = parse_p(optarg);
            break;
        case 7:
            O.p_lost_ack = parse_p(optarg);
            break;
        case 8:
            O.p_slow = parse_p(optarg);
            break;
        case 9:
            O.samples = atoi(optarg);
            break;
        case 10:
            O.eta_probes = atoi(optarg);
            break;
        case 11:
            O.drain_h = atoi(optarg);
            break;
        case 12:
            O.days = atoi(optarg);
            break;
        case 's':
            O.seed = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            O.json = true;
            break;
        case 'q':
            O.quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    if (O.factor < 1 || O.factor > 1e6)
        die("--factor between 1 and 1e6");
    if (O.nwh < 1 || O.nwh > NWH_MAX)
        die("--warehouses between 1 and %d", NWH_MAX);
    if (O.orders < 0 || O.orders > 1000000)
        die("--orders between 1 and 10^6");
    if (O.days < 1 || O.days > 30)
        die("--days between 1 and 30");
    if (O.p_lost + O.p_lost_ack >= 1)
        die("--lost + --lost-ack must stay below 1");
}

int
main(int argc, char **argv)
{
    parse_opts(argc, argv);
    char cmdline[2048] = "tools/sim";
    for (int i = 1; i < argc; i++) {
        strncat(cmdline, " ", sizeof cmdline - strlen(cmdline) - 1);
        strncat(cmdline, argv[i], sizeof cmdline - strlen(cmdline) - 1);
    }
    if (O.print_args) {
        char buf[16][32];
        const char *a[32];
        int n = daemon_args(true, buf, a);
        for (int i = 0; i < n; i += 2)
            printf("%s %s%s", a[i], a[i + 1], i + 2 < n ? " " : "\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    struct run rs[2];
    struct result res[2];
    memset(rs, 0, sizeof rs);
    memset(res, 0, sizeof res);
    int nr = 0;
    if (!O.spawn) {
        rs[0].label = "external";
        rs[0].port = O.port;
        rs[0].http_port = O.http_port;
        run_day(&rs[0], &res[0]);
        nr = 1;
    } else {
        for (int e = 1; e >= 0; e--) {
            if ((e && O.strict_only) || (!e && O.escalate_only))
                continue;
            struct spawned sp;
            spawn(&sp, e);
            struct run *r = &rs[nr];
            r->label = e ? "escalation" : "strict";
            r->port = sp.port;
            r->http_port = sp.http_port;
            if (!O.quiet)
                fprintf(stderr, "sim: %s run against %s on %d/%d\n", r->label,
                        O.spawn, sp.port, sp.http_port);
            run_day(r, &res[nr]);
            int st = unspawn(&sp);
            if (st != 0)
                fprintf(stderr, "sim: dispatchd exited %d\n", st);
            nr++;
        }
    }
    if (O.json)
        report_json(rs, res, nr, cmdline);
    else
        report_table(rs, res, nr, cmdline);
    int rc = 0;
    for (int i = 0; i < nr; i++)
        if (res[i].status_acc < 100 || res[i].rush_idle_miss ||
            res[i].double_picks || rs[i].samples == 0)
            rc = 1;
    for (int i = 0; i < nr; i++)
        run_free(&rs[i]);
    return rc;
}
