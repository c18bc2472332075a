/*
 * The two protocols are one daemon: a seeded random sequence of
 * operations goes over RESP (hiredis) to one daemon and over the binary
 * protocol (dclient) to another, started alike, and every pair of replies
 * must agree: the same success or error word (and the same message for
 * the errors the core makes), the same order fields with the same values,
 * the same audit trail, the same counts in STATS.
 *
 * Ignored, because they depend on the clock: created, updated, eta,
 * eta_ms, lease_expires, picked_at, outbound_at, delivered_at, an audit
 * entry's at, every *_iso, and TOUCH's new expiry (only checked to be
 * within a few seconds on both sides).  Lease ids are compared up to a
 * consistent renaming: the first time a pair (RESP lease, binary lease)
 * is seen it is recorded, and each side's id must always map to the same
 * other.  Deadlines are fixed offsets from one base a year ahead, chosen
 * once for both daemons, so nothing escalates and the pick order does not
 * depend on when a request arrives.
 *
 * Protocol differences that are documented, not bugs: a repeated
 * identical PUSH is +OK over RESP and ALREADY over binary; BADARG
 * messages name fields in each protocol's terms (only the word is
 * compared); the audit raw message is the RESP command line or
 * "bin <OPCODE> <id>" (only the command word is compared).
 *
 *   DISPATCHD_MODEL_SEED=n    replay seed n (printed on every failure)
 *   DISPATCHD_MODEL_OPS=n     operations per run (5000)
 */
#define E2E_BIN 1
#include "e2e.h"

#include <ctype.h>

static struct daemon d_resp, d_bin;
static uint64_t seed;
static long step; /* the operation being compared, for messages */
static char last_op[512];

#define model_assert(cond, ...)                                                \
    do {                                                                       \
        if (!(cond)) {                                                         \
            char m_[2048];                                                     \
            snprintf(m_, sizeof m_, __VA_ARGS__);                              \
            cr_assert_fail("seed %" PRIu64 " step %ld (%s): %s\n"              \
                           "replay: DISPATCHD_MODEL_SEED=%" PRIu64,            \
                           seed, step, last_op, m_, seed);                     \
        }                                                                      \
    } while (0)

static void
cleanup(void)
{
    e2e_cleanup(&d_resp);
    e2e_cleanup(&d_bin);
}

/* ---- randomness ------------------------------------------------------ */

static uint64_t rng;

static uint64_t
rnd(void)
{
    rng += UINT64_C(0x9e3779b97f4a7c15);
    uint64_t x = rng;
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static unsigned
rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static bool
chance(unsigned pct)
{
    return rn(100) < pct;
}

/* ---- the model's memory ---------------------------------------------- */

#define MAX_ORDERS 4096
#define MAX_LEASES 8192

static const char *const classes[] = {"asn", "rush4h", "rush24h", "normal"};
static const char *const sources[] = {"dealer", "asn", "ecommerce",
                                      "aftersales"};
static const char *const fulfils[] = {"stock", "to_drawing", "vmi", "jit"};
static const char *const risks[] = {"new_customer", "high_returns",
                                    "overdue_90d"};
static const char *const warehouses[] = {"w0", "w1", "w2"};
static const char *const names[] = {"wang", "li", "zhao", "chen"};
static const char *const attr_keys[] = {"packaging", "dock", "note", "color"};

struct push_spec {
    char id[32];
    int cls, source, fulfil;
    unsigned risk;
    bool approved;
    int64_t deadline;
    const char *wh, *customer;
    size_t nattrs;
    struct dc_kv attrs[5];
    char vals[5][24];
};

static struct push_spec pushed[MAX_ORDERS];
static size_t npushed;
static int64_t base_deadline;

/* Lease pairs seen: RESP's id (text) and binary's (u64). */
static struct lease_pair {
    uint64_t resp, bin;
    char order[32];
} leases[MAX_LEASES];
static size_t nleases;

static void
lease_seen(const char *order, uint64_t lr, uint64_t lb)
{
    for (size_t i = 0; i < nleases; i++) {
        model_assert((leases[i].resp == lr) == (leases[i].bin == lb),
                     "lease ids inconsistent: RESP %" PRIu64
                     " / binary %" PRIu64 ", earlier RESP %" PRIu64
                     " / binary %" PRIu64,
                     lr, lb, leases[i].resp, leases[i].bin);
        if (leases[i].resp == lr)
            return;
    }
    if (nleases < MAX_LEASES) {
        leases[nleases].resp = lr;
        leases[nleases].bin = lb;
        snprintf(leases[nleases].order, sizeof leases[nleases].order, "%s",
                 order);
        nleases++;
    }
}

/* ---- canonical replies ----------------------------------------------- */

/* Fields whose value depends on the clock. */
static bool
ignored(const char *k)
{
    static const char *const skip[] = {
        "created", "updated",   "eta",         "eta_ms",       "lease_expires",
        "at",      "picked_at", "outbound_at", "delivered_at", NULL};
    size_t n = strlen(k);
    if (n > 4 && strcmp(k + n - 4, "_iso") == 0)
        return true;
    for (size_t i = 0; skip[i]; i++)
        if (strcmp(k, skip[i]) == 0)
            return true;
    return false;
}

/* A record as sorted "key=value\n" lines, in a growing buffer. */
struct canon {
    char *lines[64];
    size_t n;
};

static void
canon_add(struct canon *c, const char *k, const char *v)
{
    if (ignored(k) || c->n == 64)
        return;
    size_t len = strlen(k) + strlen(v) + 3;
    c->lines[c->n] = malloc(len);
    cr_assert(c->lines[c->n]);
    snprintf(c->lines[c->n], len, "%s=%s\n", k, v);
    c->n++;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Join the sorted lines into out (malloc'd) and free them. */
static char *
canon_done(struct canon *c)
{
    qsort(c->lines, c->n, sizeof c->lines[0], cmp_str);
    size_t len = 1;
    for (size_t i = 0; i < c->n; i++)
        len += strlen(c->lines[i]);
    char *out = malloc(len);
    cr_assert(out);
    out[0] = '\0';
    for (size_t i = 0; i < c->n; i++) {
        strcat(out, c->lines[i]);
        free(c->lines[i]);
    }
    c->n = 0;
    return out;
}

static const char *
resp_text(const redisReply *v, char *buf, size_t cap)
{
    if (v->type == REDIS_REPLY_INTEGER) {
        snprintf(buf, cap, "%lld", v->integer);
    } else if (v->type == REDIS_REPLY_ARRAY) {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i + 1 < v->elements && n < cap; i += 2)
            n += (size_t)snprintf(buf + n, cap - n, "%s=%s;",
                                  v->element[i]->str, v->element[i + 1]->str);
    } else if (v->type == REDIS_REPLY_NIL) {
        snprintf(buf, cap, "(nil)");
    } else {
        snprintf(buf, cap, "%s", v->str ? v->str : "");
    }
    return buf;
}

/* Lease ids: both sides must agree up to renaming, so the canonical text
   drops them (and the "lease=N" in an audit note) after recording. */
static char *
canon_resp(const redisReply *r, const char *order)
{
    struct canon c = {0};
    char buf[4096];
    model_assert(r->type == REDIS_REPLY_ARRAY, "RESP record type %d", r->type);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element[i]->str;
        const char *v = resp_text(r->element[i + 1], buf, sizeof buf);
        if (strcmp(k, "lease") == 0 && order)
            continue;
        canon_add(&c, k, v);
    }
    return canon_done(&c);
}

static char *
canon_bin(const struct dc_record *rec, const char *order)
{
    struct canon c = {0};
    char buf[4096];
    for (size_t i = 0; i < rec->n; i++) {
        const struct dc_field *f = &rec->f[i];
        if (strcmp(f->name, "lease") == 0 && order)
            continue;
        canon_add(&c, f->name, e2e_bin_text(f, buf, sizeof buf));
    }
    return canon_done(&c);
}

/* ---- one operation on both sides ------------------------------------- */

static redisContext *rc;
static struct dc_client *bc;

struct req {
    const char *argv[40];
    size_t argl[40];
    int argc;
    char store[40][96];
};

static void
arg(struct req *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->store[q->argc], sizeof q->store[0], fmt, ap);
    va_end(ap);
    q->argv[q->argc] = q->store[q->argc];
    q->argl[q->argc] = strlen(q->store[q->argc]);
    q->argc++;
}

/* Send the RESP command and the queued binary request together (both
   daemons work at once), then read both replies. */
static void
exchange(struct req *q, redisReply **rr, struct dc_reply *br)
{
    size_t n = 0;
    for (int i = 0; i < q->argc && n < sizeof last_op - 100; i++)
        n += (size_t)snprintf(last_op + n, sizeof last_op - n, "%s%s",
                              i ? " " : "", q->argv[i]);
    cr_assert_eq(redisAppendCommandArgv(rc, q->argc, q->argv, q->argl),
                 REDIS_OK);
    int done = 0;
    while (!done)
        cr_assert_eq(redisBufferWrite(rc, &done), REDIS_OK, "%s", rc->errstr);
    model_assert(dc_send(bc) == 0, "binary send: %s", dc_errstr(bc));
    model_assert(redisGetReply(rc, (void **)rr) == REDIS_OK && *rr, "RESP: %s",
                 rc->errstr);
    model_assert(dc_recv(bc, br) == 0, "binary: %s", dc_errstr(bc));
}

/* The outcome word: OK, ALREADY, NIL, or the error's code word; msg gets
   an error's message. */
static const char *
resp_word(const redisReply *r, char *buf, size_t cap, const char **msg)
{
    *msg = "";
    if (r->type == REDIS_REPLY_NIL)
        return "NIL";
    if (r->type == REDIS_REPLY_STATUS)
        return r->str;
    if (r->type == REDIS_REPLY_ERROR) {
        size_t w = strcspn(r->str, " ");
        snprintf(buf, cap, "%.*s", (int)w, r->str);
        *msg = r->str[w] ? r->str + w + 1 : "";
        return buf;
    }
    return "OK";
}

static const char *
bin_word(const struct dc_reply *r)
{
    if (dc_is_error(r))
        return r->word;
    return r->status == WIRE_ST_NIL       ? "NIL"
           : r->status == WIRE_ST_ALREADY ? "ALREADY"
                                          : "OK";
}

/* How often each outcome word came, for the summary line. */
static struct {
    char word[16];
    long n;
} tally[24];

static void
count_word(const char *w)
{
    for (size_t i = 0; i < 24; i++) {
        if (!tally[i].word[0])
            snprintf(tally[i].word, sizeof tally[i].word, "%s", w);
        if (strcmp(tally[i].word, w) == 0) {
            tally[i].n++;
            return;
        }
    }
}

/* Compare outcomes; true when both succeeded with a body to compare. */
static bool
same_outcome(const redisReply *rr, const struct dc_reply *br, bool is_push)
{
    char wb[64];
    const char *rmsg;
    const char *rw = resp_word(rr, wb, sizeof wb, &rmsg);
    const char *bw = bin_word(br);
    if (is_push && strcmp(rw, "OK") == 0 && strcmp(bw, "ALREADY") == 0)
        rw = "ALREADY"; /* documented: RESP says +OK to a repeat */
    model_assert(strcmp(rw, bw) == 0, "RESP '%s %s' vs binary '%s %s'", rw,
                 rmsg, bw, br->msg);
    count_word(bw);
    /* The core's messages are shared; BADARG is worded per protocol. */
    if (dc_is_error(br) && strcmp(bw, "BADARG") != 0)
        model_assert(strcmp(rmsg, br->msg) == 0,
                     "messages differ: RESP '%s' vs binary '%s'", rmsg,
                     br->msg);
    return strcmp(bw, "OK") == 0;
}

static void
compare_records(const redisReply *rr, const struct dc_record *rec,
                const char *what)
{
    char *a = canon_resp(rr, what);
    char *b = canon_bin(rec, what);
    model_assert(strcmp(a, b) == 0, "%s differs:\nRESP:\n%s\nbinary:\n%s", what,
                 a, b);
    free(a);
    free(b);
}

/* An order reply (GET, NEXT): fields equal; the lease recorded. */
static void
compare_order(const redisReply *rr, const struct dc_reply *br)
{
    const struct dc_record *o = dc_order(br);
    model_assert(o, "binary reply has no order");
    const char *lr = e2e_field_str(rr, "lease");
    const struct dc_field *lb = dc_field_get(o, WIRE_TAG_LEASE);
    model_assert((lr != NULL) == (lb != NULL), "one side has a lease");
    if (lr)
        lease_seen(e2e_field_str(rr, "id"), strtoull(lr, NULL, 10), lb->u);
    compare_records(rr, o, "order");
}

static void
finish(redisReply *rr, struct dc_reply *br)
{
    freeReplyObject(rr);
    dc_reply_free(br);
}

/* ---- the operations -------------------------------------------------- */

static const struct push_spec *
pick_order(void)
{
    return npushed ? &pushed[rn((unsigned)npushed)] : NULL;
}

static void
op_push(void)
{
    struct push_spec s_, *s = &s_;
    bool repeat = npushed && chance(8);
    if (repeat) {
        *s = *pick_order();
        for (size_t i = 0; i < s->nattrs; i++)
            s->attrs[i].value = s->vals[i];
        if (chance(50)) /* different content: EXISTS */
            s->customer = s->customer ? NULL : "someone";
    } else {
        memset(s, 0, sizeof *s);
        snprintf(s->id, sizeof s->id, "M-%zu-%u", npushed, rn(1000));
        s->cls = (int)rn(4);
        s->source = (int)rn(4);
        s->fulfil = chance(70) ? 0 : (int)rn(4);
        s->risk = chance(70) ? 0 : rn(8);
        s->approved = chance(60);
        s->deadline = base_deadline + (int64_t)rn(30 * 24 * 60) * 60000;
        s->wh = warehouses[rn(3)];
        s->customer = chance(50) ? NULL : names[rn(4)];
        if (s->cls == 0 && chance(85)) {
            s->attrs[s->nattrs].key = "asn_number";
            snprintf(s->vals[s->nattrs], 24, "ASN-%u", rn(100000));
            s->nattrs++;
            s->attrs[s->nattrs].key = "tech_agreement";
            snprintf(s->vals[s->nattrs], 24, "TA-%u", rn(100));
            s->nattrs++;
        }
        if (s->fulfil == 1 && chance(85)) {
            s->attrs[s->nattrs].key = "drawing_version";
            snprintf(s->vals[s->nattrs], 24, "v%u", rn(9));
            s->nattrs++;
        }
        for (unsigned i = rn(3); i > 0; i--) {
            s->attrs[s->nattrs].key = attr_keys[rn(4)];
            snprintf(s->vals[s->nattrs], 24, "val-%u", rn(50));
            s->nattrs++;
        }
        for (size_t i = 0; i < s->nattrs; i++)
            s->attrs[i].value = s->vals[i];
    }

    struct req q = {0};
    arg(&q, "PUSH");
    arg(&q, "%s", s->id);
    arg(&q, "%s", classes[s->cls]);
    arg(&q, "DEADLINE");
    arg(&q, "%" PRId64, s->deadline);
    arg(&q, "WAREHOUSE");
    arg(&q, "%s", s->wh);
    if (s->customer) {
        arg(&q, "CUSTOMER");
        arg(&q, "%s", s->customer);
    }
    arg(&q, "SOURCE");
    arg(&q, "%s", sources[s->source]);
    arg(&q, "FULFIL");
    arg(&q, "%s", fulfils[s->fulfil]);
    if (s->risk) {
        char rbuf[64] = "";
        for (int i = 0; i < 3; i++)
            if (s->risk & (1u << i)) {
                if (rbuf[0])
                    strcat(rbuf, ",");
                strcat(rbuf, risks[i]);
            }
        arg(&q, "RISK");
        arg(&q, "%s", rbuf);
    }
    for (size_t i = 0; i < s->nattrs; i++) {
        arg(&q, "ATTR");
        arg(&q, "%s", s->attrs[i].key);
        arg(&q, "%s", s->attrs[i].value);
    }
    if (s->approved)
        arg(&q, "APPROVED");
    struct dc_push_args a = {.id = s->id,
                             .cls = s->cls,
                             .approved = s->approved,
                             .deadline = s->deadline,
                             .warehouse = s->wh,
                             .customer = s->customer,
                             .source = s->source,
                             .fulfil = s->fulfil,
                             .risk = s->risk,
                             .nattrs = s->nattrs,
                             .attrs = s->attrs};
    cr_assert_neq(dc_q_push(bc, &a), 0);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    bool ok = same_outcome(rr, &br, true);
    if (ok && !repeat && npushed < MAX_ORDERS)
        pushed[npushed++] = *s;
    finish(rr, &br);
}

/* An id: usually a pushed order, sometimes one that does not exist. */
static const char *
some_id(void)
{
    const struct push_spec *s = pick_order();
    return s && chance(95) ? s->id : "M-none";
}

static void
op_simple(const char *cmd)
{
    const char *id = some_id();
    struct req q = {0};
    arg(&q, "%s", cmd);
    arg(&q, "%s", id);
    char reason[32] = "";
    if (strcmp(cmd, "APPROVE") == 0) {
        dc_q_approve(bc, id);
    } else {
        if (chance(60)) {
            snprintf(reason, sizeof reason, "reason %u", rn(10));
            arg(&q, "%s", reason);
        }
        if (strcmp(cmd, "HOLD") == 0)
            dc_q_hold(bc, id, reason);
        else
            dc_q_cancel(bc, id, reason);
    }
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    same_outcome(rr, &br, false);
    finish(rr, &br);
}

static void
op_reprio(void)
{
    const char *id = some_id();
    int cls = (int)rn(4);
    int64_t dl = chance(50) ? 0 : base_deadline + (int64_t)rn(100000) * 1000;
    struct req q = {0};
    arg(&q, "REPRIO");
    arg(&q, "%s", id);
    arg(&q, "%s", classes[cls]);
    if (dl) {
        arg(&q, "DEADLINE");
        arg(&q, "%" PRId64, dl);
    }
    dc_q_reprio(bc, id, cls, dl);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    same_outcome(rr, &br, false);
    finish(rr, &br);
}

static void
op_next(void)
{
    const char *wh = chance(95) ? warehouses[rn(3)] : "w-none";
    const char *picker = chance(70) ? names[rn(4)] : NULL;
    struct req q = {0};
    arg(&q, "NEXT");
    arg(&q, "%s", wh);
    arg(&q, "LEASE");
    arg(&q, "600");
    if (picker) {
        arg(&q, "PICKER");
        arg(&q, "%s", picker);
    }
    struct dc_next_args a = {wh, picker, 600000, -1};
    dc_q_next(bc, &a);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    if (same_outcome(rr, &br, false))
        compare_order(rr, &br);
    finish(rr, &br);
}

/* A lease pair: usually one seen for this order, else any, else bogus. */
static void
some_lease(const char *id, uint64_t *lr, uint64_t *lb)
{
    for (size_t i = nleases; i-- > 0;)
        if (strcmp(leases[i].order, id) == 0 && chance(80)) {
            *lr = leases[i].resp;
            *lb = leases[i].bin;
            return;
        }
    if (nleases && chance(50)) {
        size_t i = rn((unsigned)nleases);
        *lr = leases[i].resp;
        *lb = leases[i].bin;
        return;
    }
    *lr = *lb = 900000 + rn(1000);
}

static void
op_touch_release(bool touch)
{
    const char *id = some_id();
    uint64_t lr, lb;
    some_lease(id, &lr, &lb);
    struct req q = {0};
    arg(&q, touch ? "TOUCH" : "RELEASE");
    arg(&q, "%s", id);
    arg(&q, "%" PRIu64, lr);
    if (touch) {
        arg(&q, "LEASE");
        arg(&q, "900");
        dc_q_touch(bc, id, lb, 900000);
    } else {
        dc_q_release(bc, id, lb);
    }
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    if (same_outcome(rr, &br, false) && touch) {
        model_assert(rr->type == REDIS_REPLY_INTEGER, "TOUCH reply type %d",
                     rr->type);
        long long d = rr->integer - br.value;
        model_assert(d > -5000 && d < 5000,
                     "TOUCH expiries %lld and %" PRId64 " too far apart",
                     rr->integer, br.value);
    }
    finish(rr, &br);
}

static void
op_outbound(void)
{
    const char *id = some_id();
    const char *op = chance(95) ? names[rn(4)] : NULL;
    char raw[80] = "";
    if (chance(50))
        snprintf(raw, sizeof raw, "{\"order\":\"%s\",\"n\":%u}", id, rn(99));
    struct req q = {0};
    arg(&q, "OUTBOUND");
    arg(&q, "%s", id);
    if (op) {
        arg(&q, "OPERATOR");
        arg(&q, "%s", op);
    }
    if (raw[0]) {
        arg(&q, "RAW");
        arg(&q, "%s", raw);
    }
    struct dc_outbound_args a = {id, op ? op : "", 0, NULL, raw, strlen(raw)};
    dc_q_outbound(bc, &a);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    same_outcome(rr, &br, false);
    finish(rr, &br);
}

static void
op_deliver(void)
{
    const char *id = some_id();
    char raw[40] = "";
    if (chance(40))
        snprintf(raw, sizeof raw, "pod-%u", rn(99));
    struct req q = {0};
    arg(&q, "DELIVER");
    arg(&q, "%s", id);
    if (raw[0]) {
        arg(&q, "RAW");
        arg(&q, "%s", raw);
    }
    dc_q_deliver(bc, id, 0, raw, strlen(raw));
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    same_outcome(rr, &br, false);
    finish(rr, &br);
}

static void
op_get(void)
{
    const char *id = some_id();
    struct req q = {0};
    arg(&q, "GET");
    arg(&q, "%s", id);
    dc_q_get(bc, id);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    if (same_outcome(rr, &br, false))
        compare_order(rr, &br);
    finish(rr, &br);
}

static void
op_peek(void)
{
    const char *wh = warehouses[rn(3)];
    unsigned count = 1 + rn(6);
    struct req q = {0};
    arg(&q, "PEEK");
    arg(&q, "%s", wh);
    arg(&q, "COUNT");
    arg(&q, "%u", count);
    dc_q_peek(bc, wh, count);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    if (same_outcome(rr, &br, false)) {
        model_assert(rr->type == REDIS_REPLY_ARRAY, "PEEK type %d", rr->type);
        model_assert(rr->elements == br.nrecs, "PEEK %zu vs %zu orders",
                     rr->elements, br.nrecs);
        for (size_t i = 0; i < br.nrecs; i++)
            compare_records(rr->element[i], &br.recs[i], "peeked order");
    }
    finish(rr, &br);
}

/* Replace the digits after the first key (e.g. "lease=") in s by '#'. */
static void
mask_number(char *s, const char *key)
{
    char *p = strstr(s, key);
    if (!p)
        return;
    for (p += strlen(key); isdigit((unsigned char)*p); p++)
        *p = '#';
}

/* An audit entry without its raw message, which is compared apart: the
   command word must match ("bin OUTBOUND x" against "OUTBOUND x ..."). */
static void
compare_entry(const redisReply *re, const struct dc_record *be)
{
    const char *rraw = e2e_field_str(re, "raw");
    const char *braw = e2e_bin_str(be, "raw");
    model_assert(rraw && braw, "an entry has no raw");
    char b[4096];
    snprintf(b, sizeof b, "%s", braw);
    if (strncmp(b, "bin ", 4) == 0) {
        size_t w = strcspn(b + 4, " ");
        model_assert(strncasecmp(rraw, b + 4, w) == 0 &&
                         (rraw[w] == ' ' || rraw[w] == '\0'),
                     "audit raw: RESP '%.300s' vs binary '%.300s'", rraw, b);
    } else {
        model_assert(strcmp(rraw, b) == 0,
                     "audit raw: RESP '%.300s' vs binary '%.300s'", rraw, b);
    }
    struct canon cr = {0}, cb = {0};
    char buf[4096];
    for (size_t i = 0; i + 1 < re->elements; i += 2)
        if (strcmp(re->element[i]->str, "raw") != 0)
            canon_add(&cr, re->element[i]->str,
                      resp_text(re->element[i + 1], buf, sizeof buf));
    for (size_t i = 0; i < be->n; i++)
        if (strcmp(be->f[i].name, "raw") != 0)
            canon_add(&cb, be->f[i].name,
                      e2e_bin_text(&be->f[i], buf, sizeof buf));
    char *x = canon_done(&cr), *y = canon_done(&cb);
    /* "lease=N" in a note: the ids must correspond, then are dropped;
       "until=T" (a TOUCH's new expiry) is clock time. */
    char *lx = strstr(x, "lease="), *ly = strstr(y, "lease=");
    model_assert((lx != NULL) == (ly != NULL), "one note has a lease");
    if (lx)
        lease_seen(e2e_field_str(re, "note"), strtoull(lx + 6, NULL, 10),
                   strtoull(ly + 6, NULL, 10));
    mask_number(x, "lease=");
    mask_number(y, "lease=");
    mask_number(x, "until=");
    mask_number(y, "until=");
    model_assert(strcmp(x, y) == 0, "audit entry:\nRESP:\n%s\nbinary:\n%s", x,
                 y);
    free(x);
    free(y);
}

static void
op_audit(void)
{
    const char *id = some_id();
    struct req q = {0};
    arg(&q, "AUDIT");
    arg(&q, "%s", id);
    dc_q_audit(bc, id, 0);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    if (same_outcome(rr, &br, false)) {
        model_assert(rr->type == REDIS_REPLY_ARRAY, "AUDIT type %d", rr->type);
        model_assert(rr->elements == br.nrecs, "AUDIT %zu vs %zu entries",
                     rr->elements, br.nrecs);
        for (size_t i = 0; i < br.nrecs; i++)
            compare_entry(rr->element[i], &br.recs[i]);
    }
    finish(rr, &br);
}

static void
op_stats(void)
{
    static const char *const counts[] = {"new",
                                         "held",
                                         "queued",
                                         "picking",
                                         "shipped",
                                         "delivered",
                                         "cancelled",
                                         "queued_asn",
                                         "queued_rush4h",
                                         "queued_rush24h",
                                         "queued_normal",
                                         "pushes",
                                         "approvals",
                                         "picks",
                                         "releases",
                                         "outbounds",
                                         "deliveries",
                                         "cancels",
                                         "lease_expiries",
                                         "escalations",
                                         "queue_jumps",
                                         "warehouses",
                                         NULL};
    const char *wh = chance(25) ? "" : warehouses[rn(3)];
    struct req q = {0};
    arg(&q, "STATS");
    if (wh[0])
        arg(&q, "%s", wh);
    dc_q_stats(bc, wh);
    redisReply *rr;
    struct dc_reply br;
    exchange(&q, &rr, &br);
    if (same_outcome(rr, &br, false)) {
        for (size_t i = 0; counts[i]; i++) {
            long long a = e2e_field_int(rr, counts[i]);
            long long b = e2e_bin_int(&br.recs[0], counts[i]);
            model_assert(a == b && a >= 0,
                         "STATS %s %s: RESP %lld, binary %lld", wh, counts[i],
                         a, b);
        }
    }
    finish(rr, &br);
}

Test(model, resp_and_binary_agree, .timeout = 120)
{
    const char *s = getenv("DISPATCHD_MODEL_SEED");
    seed =
        s ? strtoull(s, NULL, 10) : (uint64_t)e2e_now_ms() ^ (uint64_t)getpid();
    const char *ops = getenv("DISPATCHD_MODEL_OPS");
    long nops = ops ? atol(ops) : 5000;
    rng = seed;
    fprintf(stderr, "model: seed %" PRIu64 ", %ld operations\n", seed, nops);

    atexit(cleanup);
    /* sync: AUDIT reads the store (see test_e2e_bin.c); the two daemons
       work in parallel, so the fsyncs overlap. */
    e2e_start(&d_resp, "--durability", "sync", NULL);
    e2e_start(&d_bin, "--durability", "sync", NULL);
    rc = e2e_connect(&d_resp);
    bc = e2e_bin_connect(&d_bin);
    /* The same actor and default picker on both sides. */
    e2e_expect(rc, "OK", "CLIENT SETNAME model");
    struct dc_reply br;
    e2e_bin_status(bc, dc_client_name(bc, "model", &br), &br, WIRE_ST_OK);
    dc_reply_free(&br);
    base_deadline = (e2e_now_ms() / 60000 + 365LL * 24 * 60) * 60000;

    long counts[16] = {0};
    for (step = 0; step < nops; step++) {
        unsigned k = rn(100);
        int op = k < 22   ? 0
                 : k < 30 ? 1
                 : k < 35 ? 2
                 : k < 39 ? 3
                 : k < 43 ? 4
                 : k < 56 ? 5
                 : k < 61 ? 6
                 : k < 65 ? 7
                 : k < 73 ? 8
                 : k < 77 ? 9
                 : k < 84 ? 10
                 : k < 88 ? 11
                 : k < 95 ? 12
                          : 13;
        counts[op]++;
        switch (op) {
        case 0:
            op_push();
            break;
        case 1:
            op_simple("APPROVE");
            break;
        case 2:
            op_simple("HOLD");
            break;
        case 3:
            op_simple("CANCEL");
            break;
        case 4:
            op_reprio();
            break;
        case 5:
            op_next();
            break;
        case 6:
            op_touch_release(true);
            break;
        case 7:
            op_touch_release(false);
            break;
        case 8:
            op_outbound();
            break;
        case 9:
            op_deliver();
            break;
        case 10:
            op_get();
            break;
        case 11:
            op_peek();
            break;
        case 12:
            op_audit();
            break;
        default:
            op_stats();
            break;
        }
    }
    fprintf(stderr,
            "model: %ld operations agreed (push %ld, approve %ld, hold %ld, "
            "cancel %ld, reprio %ld, next %ld, touch %ld, release %ld, "
            "outbound %ld, deliver %ld, get %ld, peek %ld, audit %ld, stats "
            "%ld); %zu orders, %zu leases\n",
            nops, counts[0], counts[1], counts[2], counts[3], counts[4],
            counts[5], counts[6], counts[7], counts[8], counts[9], counts[10],
            counts[11], counts[12], counts[13], npushed, nleases);
    fprintf(stderr, "model: outcomes");
    for (size_t i = 0; i < 24 && tally[i].word[0]; i++)
        fprintf(stderr, " %s %ld", tally[i].word, tally[i].n);
    fprintf(stderr, "\n");
    redisFree(rc);
    dc_close(bc);
    cr_assert_eq(e2e_stop(&d_resp), 0);
    cr_assert_eq(e2e_stop(&d_bin), 0);
}
