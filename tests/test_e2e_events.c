/*
 * test_e2e_events — the event stream of the real daemon: a subscriber sees
 * queue jumps (with position, displaced orders, delay and the orders put at
 * risk), at_risk, lease_expired, outbound_unleased and escalated, each one
 * JSON object with a sequence number one higher than the last.
 *
 * The JSON is checked by the small recursive-descent validator below
 * (RFC 8259 grammar, no extensions); fields are read from the top-level
 * object only.  Every test starts its own dispatchd; an atexit handler
 * kills it, so a failed assertion leaves nothing running.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>

#include "e2e.h"

static struct daemon dmn;

static void
cleanup(void)
{
    e2e_cleanup(&dmn);
}

#define START(...)                                                             \
    do {                                                                       \
        atexit(cleanup);                                                       \
        e2e_start(&dmn, __VA_ARGS__);                                          \
    } while (0)

/* ---- a JSON validator --------------------------------------------------- */

static bool json_value(const char **p, const char *end, int depth);

static void
json_ws(const char **p, const char *end)
{
    while (*p < end &&
           (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
        (*p)++;
}

static bool
json_lit(const char **p, const char *end, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(end - *p) < n || memcmp(*p, w, n) != 0)
        return false;
    *p += n;
    return true;
}

static bool
json_string_ok(const char **p, const char *end)
{
    if (*p >= end || **p != '"')
        return false;
    for ((*p)++; *p < end; (*p)++) {
        unsigned char ch = (unsigned char)**p;
        if (ch == '"') {
            (*p)++;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch != '\\')
            continue;
        if (++*p >= end)
            return false;
        if (strchr("\"\\/bfnrt", **p))
            continue;
        if (**p != 'u' || end - *p < 5)
            return false;
        for (int i = 1; i <= 4; i++)
            if (!isxdigit((unsigned char)(*p)[i]))
                return false;
        *p += 4;
    }
    return false;
}

static bool
json_number(const char **p, const char *end)
{
    const char *s = *p;
    if (*p < end && **p == '-')
        (*p)++;
    if (*p >= end || !isdigit((unsigned char)**p))
        return false;
    if (**p == '0')
        (*p)++;
    else
        while (*p < end && isdigit((unsigned char)**p))
            (*p)++;
    if (*p < end && **p == '.') {
        (*p)++;
        if (*p >= end || !isdigit((unsigned char)**p))
            return false;
        while (*p < end && isdigit((unsigned char)**p))
            (*p)++;
    }
    if (*p < end && (**p == 'e' || **p == 'E')) {
        (*p)++;
        if (*p < end && (**p == '+' || **p == '-'))
            (*p)++;
        if (*p >= end || !isdigit((unsigned char)**p))
            return false;
        while (*p < end && isdigit((unsigned char)**p))
            (*p)++;
    }
    return *p > s;
}

static bool
json_value(const char **p, const char *end, int depth)
{
    if (depth > 32)
        return false;
    json_ws(p, end);
    if (*p >= end)
        return false;
    char open = **p;
    if (open == '{' || open == '[') {
        char close = open == '{' ? '}' : ']';
        (*p)++;
        json_ws(p, end);
        if (*p < end && **p == close) {
            (*p)++;
            return true;
        }
        for (;;) {
            if (open == '{') {
                json_ws(p, end);
                if (!json_string_ok(p, end))
                    return false;
                json_ws(p, end);
                if (*p >= end || **p != ':')
                    return false;
                (*p)++;
            }
            if (!json_value(p, end, depth + 1))
                return false;
            json_ws(p, end);
            if (*p < end && **p == ',') {
                (*p)++;
                continue;
            }
            if (*p < end && **p == close) {
                (*p)++;
                return true;
            }
            return false;
        }
    }
    if (open == '"')
        return json_string_ok(p, end);
    if (open == 't')
        return json_lit(p, end, "true");
    if (open == 'f')
        return json_lit(p, end, "false");
    if (open == 'n')
        return json_lit(p, end, "null");
    return json_number(p, end);
}

/* The whole text is one JSON object. */
static bool
json_object_ok(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    json_ws(&p, end);
    if (p >= end || *p != '{' || !json_value(&p, end, 0))
        return false;
    json_ws(&p, end);
    return p == end;
}

/* The raw text of top-level field key of a valid JSON object, or NULL;
 *len is set to its length. */
static const char *
json_raw(const char *s, const char *key, size_t *len)
{
    const char *p = s, *end = s + strlen(s);
    json_ws(&p, end);
    p++; /* '{' */
    for (;;) {
        json_ws(&p, end);
        if (p >= end || *p != '"')
            return NULL;
        const char *k = p + 1;
        if (!json_string_ok(&p, end))
            return NULL;
        size_t klen = (size_t)(p - 1 - k);
        json_ws(&p, end);
        p++; /* ':' */
        json_ws(&p, end);
        const char *v = p;
        if (!json_value(&p, end, 1))
            return NULL;
        if (klen == strlen(key) && memcmp(k, key, klen) == 0) {
            *len = (size_t)(p - v);
            return v;
        }
        json_ws(&p, end);
        if (p >= end || *p != ',')
            return NULL;
        p++;
    }
}

static long long
json_int(const char *s, const char *key)
{
    size_t n;
    const char *v = json_raw(s, key, &n);
    cr_assert_not_null(v, "event has no field %s: %s", key, s);
    cr_assert(n > 0 && (isdigit((unsigned char)*v) || *v == '-'),
              "field %s is not a number: %s", key, s);
    return atoll(v);
}

/* A string field without escapes, copied into buf. */
static const char *
json_str(const char *s, const char *key, char *buf, size_t cap)
{
    size_t n;
    const char *v = json_raw(s, key, &n);
    cr_assert_not_null(v, "event has no field %s: %s", key, s);
    cr_assert(n >= 2 && v[0] == '"', "field %s is not a string: %s", key, s);
    cr_assert(n - 2 < cap && !memchr(v + 1, '\\', n - 2),
              "field %s too long or escaped: %s", key, s);
    memcpy(buf, v + 1, n - 2);
    buf[n - 2] = '\0';
    return buf;
}

static void
expect_json_str(const char *ev, const char *key, const char *want)
{
    char got[256];
    json_str(ev, key, got, sizeof got);
    cr_assert_str_eq(got, want, "%s is '%s', want '%s' in %s", key, got, want,
                     ev);
}

/* Sanity of the validator itself: a failure here is a test bug. */
Test(events, json_validator)
{
    static const char *const good[] = {
        "{}", "{\"a\":1}", "{\"a\":[1,2.5e3,-0,\"x\\u00e9\\n\"],\"b\":{}}",
        " {\"t\":true,\"f\":false,\"n\":null} "};
    static const char *const bad[] = {"",
                                      "{",
                                      "{\"a\":}",
                                      "{\"a\":1,}",
                                      "{\"a\":01}",
                                      "{\"a\":\"\x01\"}",
                                      "[1]",
                                      "{\"a\":1}x",
                                      "{a:1}",
                                      "{\"a\":\"\\x\"}",
                                      "{\"a\":1 \"b\":2}"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(json_object_ok(good[i], strlen(good[i])), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(json_object_ok(bad[i], strlen(bad[i])), "%s", bad[i]);
    size_t n;
    const char *v = json_raw("{\"a\":{\"seq\":1},\"seq\":7}", "seq", &n);
    cr_assert(v && n == 1 && *v == '7');
}

/* ---- the subscriber ----------------------------------------------------- */

struct sub {
    redisContext *c;
    long long last_seq; /* 0 before the first event */
    int seen;
};

static void
subscribe(struct sub *s)
{
    memset(s, 0, sizeof *s);
    s->c = e2e_connect(&dmn);
    redisReply *r = e2e_cmd(s->c, "SUBSCRIBE events");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "SUBSCRIBE: type %d", r->type);
    cr_assert_eq(r->elements, 3);
    cr_assert_str_eq(r->element[0]->str, "subscribe");
    cr_assert_str_eq(r->element[1]->str, "events");
    freeReplyObject(r);
}

/* Read events until one of type (and for order, when not NULL) arrives;
   every event read on the way must be valid JSON with the next seq.
   Returns the event's JSON (free it). */
static char *
wait_event(struct sub *s, const char *type, const char *order)
{
    for (;;) {
        void *v = NULL;
        cr_assert_eq(redisGetReply(s->c, &v), REDIS_OK,
                     "no %s event for %s: %s", type, order ? order : "-",
                     s->c->errstr);
        redisReply *r = v;
        cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3,
                  "pub/sub message of type %d", r->type);
        cr_assert_str_eq(r->element[0]->str, "message");
        cr_assert_str_eq(r->element[1]->str, "events");
        const redisReply *m = r->element[2];
        cr_assert_eq(m->type, REDIS_REPLY_STRING);
        cr_assert(json_object_ok(m->str, m->len), "not JSON: %s", m->str);
        char *ev = strdup(m->str);
        cr_assert_not_null(ev);
        freeReplyObject(r);

        long long seq = json_int(ev, "seq");
        if (s->last_seq)
            cr_assert_eq(seq, s->last_seq + 1, "seq %lld after %lld: %s", seq,
                         s->last_seq, ev);
        else
            cr_assert_gt(seq, 0, "seq %lld: %s", seq, ev);
        s->last_seq = seq;
        s->seen++;
        cr_assert_gt(json_int(ev, "at"), 0);

        char t[64], o[128];
        json_str(ev, "type", t, sizeof t);
        if (strcmp(t, type) == 0 &&
            (!order || strcmp(json_str(ev, "order", o, sizeof o), order) == 0))
            return ev;
        free(ev);
    }
}

static redisReply *
get_order(redisContext *c, const char *id)
{
    redisReply *r = e2e_cmd(c, "GET %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "GET %s: type %d (%s)", id,
                 r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    return r;
}

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)

/* ---- the events --------------------------------------------------------- */

Test(events, jump_reports_position_displaced_and_delay)
{
    START("--pick-estimate", "90s", NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);
    int64_t now = e2e_now_ms();

    /* Two rush orders first, then five normal ones behind them. */
    e2e_expect(c, "OK",
               "PUSH J-R1 rush4h DEADLINE %lld WAREHOUSE hz1 "
               "CUSTOMER shenwo APPROVED",
               (long long)(now + 2 * HOUR_MS));
    e2e_expect(c, "OK",
               "PUSH J-R2 rush4h DEADLINE %lld WAREHOUSE hz1 "
               "APPROVED",
               (long long)(now + 3 * HOUR_MS));
    for (int i = 0; i < 5; i++)
        e2e_expect(c, "OK",
                   "PUSH J-N%d normal DEADLINE %lld WAREHOUSE hz1 "
                   "APPROVED",
                   i, (long long)(now + 70 * HOUR_MS + i));
    /* A rush order between the two rush ones: position 1, passes R2 and
       the five normal orders. */
    int64_t dl = now + 150 * MIN_MS;
    e2e_expect(c, "OK",
               "PUSH J-X rush4h DEADLINE %lld WAREHOUSE hz1 "
               "CUSTOMER byd APPROVED",
               (long long)dl);

    char *ev = wait_event(&s, "jump", "J-X");
    expect_json_str(ev, "warehouse", "hz1");
    expect_json_str(ev, "customer", "byd");
    expect_json_str(ev, "class", "rush4h");
    cr_assert_eq(json_int(ev, "deadline"), dl);
    cr_assert_eq(json_int(ev, "position"), 1, "%s", ev);
    cr_assert_eq(json_int(ev, "displaced"), 6, "%s", ev);
    /* No picker is active: the delay is the whole mean pick time. */
    cr_assert_eq(json_int(ev, "delay_ms"), 90000, "%s", ev);
    cr_assert_eq(json_int(ev, "at_risk"), 0, "%s", ev);
    size_t n;
    const char *list = json_raw(ev, "at_risk_orders", &n);
    cr_assert(list && n == 2 && !memcmp(list, "[]", 2), "%s", ev);
    free(ev);

    /* GET agrees with the reported position. */
    redisReply *r = get_order(c, "J-X");
    cr_assert_eq(e2e_field_int(r, "position"), 1);
    freeReplyObject(r);

    /* The delay is the mean pick time over the pickers at work: lease
       two orders (J-R1 and J-X) and it halves. */
    for (int i = 0; i < 2; i++) {
        r = e2e_cmd(c, "NEXT hz1 LEASE 600");
        cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
        freeReplyObject(r);
    }
    e2e_expect(c, "OK",
               "PUSH J-Y asn DEADLINE %lld WAREHOUSE hz1 "
               "ATTR asn_number ASN1 ATTR tech_agreement TA1 APPROVED",
               (long long)(now + 5 * HOUR_MS));
    ev = wait_event(&s, "jump", "J-Y");
    cr_assert_eq(json_int(ev, "position"), 0, "%s", ev);
    /* Queued now: J-R2 and the five normal orders (J-R1, J-X leased). */
    cr_assert_eq(json_int(ev, "displaced"), 6, "%s", ev);
    cr_assert_eq(json_int(ev, "delay_ms"), 45000, "%s", ev);
    expect_json_str(ev, "class", "asn");
    free(ev);

    /* A normal order makes no jump: the next event is its outbound. */
    int seen = s.seen;
    e2e_expect(c, "OK",
               "PUSH J-N9 normal DEADLINE %lld WAREHOUSE hz1 "
               "APPROVED",
               (long long)(now + 71 * HOUR_MS));
    e2e_expect(c, "OK", "OUTBOUND J-N9 OPERATOR li");
    ev = wait_event(&s, "outbound_unleased", "J-N9");
    cr_assert_eq(s.seen, seen + 1,
                 "events between J-Y's jump and J-N9's "
                 "outbound: a normal push made one");
    free(ev);
    redisFree(c);
    redisFree(s.c);
}

Test(events, at_risk_names_the_displaced_order)
{
    START("--pick-estimate", "2m", "--escalate-normal", "0",
          "--escalate-rush24h", "0", "--escalate-rush4h", "0", NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);
    int64_t now = e2e_now_ms();

    /* N1 is picked in about 2 min (first in line) and due in 3 min: fine
       until a rush order goes ahead of it, then it is picked in 4 min. */
    e2e_expect(c, "OK",
               "PUSH RISK-1 normal DEADLINE %lld CUSTOMER geely "
               "APPROVED",
               (long long)(now + 3 * MIN_MS));
    e2e_expect(c, "OK", "PUSH RISK-2 normal DEADLINE %lld APPROVED",
               (long long)(now + 72 * HOUR_MS));
    e2e_expect(c, "OK", "PUSH RISK-R rush4h APPROVED");

    char *ev = wait_event(&s, "jump", "RISK-R");
    cr_assert_eq(json_int(ev, "position"), 0, "%s", ev);
    cr_assert_eq(json_int(ev, "displaced"), 2, "%s", ev);
    cr_assert_eq(json_int(ev, "delay_ms"), 120000, "%s", ev);
    cr_assert_eq(json_int(ev, "at_risk"), 1, "%s", ev);
    size_t n;
    const char *list = json_raw(ev, "at_risk_orders", &n);
    cr_assert(list && n == strlen("[\"RISK-1\"]") &&
                  !memcmp(list, "[\"RISK-1\"]", n),
              "at_risk_orders: %s", ev);
    expect_json_str(ev, "warehouse", "main");
    free(ev);

    ev = wait_event(&s, "at_risk", "RISK-1");
    expect_json_str(ev, "displaced_by", "RISK-R");
    expect_json_str(ev, "customer", "geely");
    expect_json_str(ev, "class", "normal");
    cr_assert_eq(json_int(ev, "delay_ms"), 120000);
    cr_assert_eq(json_int(ev, "deadline"), now + 3 * MIN_MS);
    free(ev);
    redisFree(c);
    redisFree(s.c);
}

Test(events, lease_expired)
{
    START(NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);

    e2e_expect(c, "OK",
               "PUSH LX-1 normal WAREHOUSE hz2 CUSTOMER faw "
               "APPROVED");
    redisReply *r = e2e_cmd(c, "NEXT hz2 LEASE 1 PICKER zhao");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    long long lease = atoll(e2e_field_str(r, "lease"));
    freeReplyObject(r);

    char *ev = wait_event(&s, "lease_expired", "LX-1");
    cr_assert_eq(json_int(ev, "lease"), lease, "%s", ev);
    expect_json_str(ev, "warehouse", "hz2");
    expect_json_str(ev, "customer", "faw");
    free(ev);
    /* Published once durable: the order is queued again by now. */
    r = get_order(c, "LX-1");
    cr_assert_str_eq(e2e_field_str(r, "state"), "queued");
    freeReplyObject(r);
    redisFree(c);
    redisFree(s.c);
}

Test(events, outbound_unleased)
{
    START(NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);

    e2e_expect(c, "OK", "PUSH OU-1 rush24h CUSTOMER chery APPROVED");
    e2e_expect(c, "OK", "PUSH OU-2 normal APPROVED");
    /* A leased order shipped is no event. */
    redisReply *r = e2e_cmd(c, "NEXT main LEASE 60");
    cr_assert_str_eq(e2e_field_str(r, "id"), "OU-1");
    freeReplyObject(r);
    e2e_expect(c, "OK", "OUTBOUND OU-1 OPERATOR wang");
    e2e_expect(c, "OK", "OUTBOUND OU-2 OPERATOR li RAW {\"wms\":1}");

    char *ev = wait_event(&s, "outbound_unleased", NULL);
    expect_json_str(ev, "order", "OU-2");
    expect_json_str(ev, "operator", "li");
    expect_json_str(ev, "class", "normal");
    free(ev);
    /* A repeat is +ALREADY and no new event. */
    e2e_expect(c, "ALREADY", "OUTBOUND OU-2 OPERATOR li");
    e2e_expect(c, "OK", "PUSH OU-3 normal APPROVED");
    e2e_expect(c, "OK", "OUTBOUND OU-3 OPERATOR li");
    ev = wait_event(&s, "outbound_unleased", NULL);
    expect_json_str(ev, "order", "OU-3");
    free(ev);
    redisFree(c);
    redisFree(s.c);
}

/* The escalation timer: a normal order due in 1 h + 2 s crosses the 1 h
   window 2 s after its push and overtakes the rush24h orders. */
Test(events, escalated_by_the_timer)
{
    START("--escalate-normal", "1h", "--escalate-rush24h", "10m", NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);

    e2e_expect(c, "OK", "PUSH E-R1 rush24h APPROVED");
    e2e_expect(c, "OK", "PUSH E-R2 rush24h APPROVED");
    int64_t dl = e2e_now_ms() + HOUR_MS + 2000;
    e2e_expect(c, "OK",
               "PUSH E-N normal DEADLINE %lld CUSTOMER gac "
               "APPROVED",
               (long long)dl);
    redisReply *r = get_order(c, "E-N");
    cr_assert_str_eq(e2e_field_str(r, "effective_class"), "normal");
    cr_assert_eq(e2e_field_int(r, "position"), 2);
    freeReplyObject(r);

    char *ev = wait_event(&s, "escalated", "E-N");
    expect_json_str(ev, "from", "normal");
    expect_json_str(ev, "to", "rush24h");
    expect_json_str(ev, "class", "normal");
    expect_json_str(ev, "customer", "gac");
    cr_assert_eq(json_int(ev, "deadline"), dl);
    free(ev);

    r = get_order(c, "E-N");
    cr_assert_str_eq(e2e_field_str(r, "class"), "normal");
    cr_assert_str_eq(e2e_field_str(r, "effective_class"), "rush24h");
    cr_assert_eq(e2e_field_int(r, "position"), 0,
                 "escalated order did not overtake the rush24h ones");
    freeReplyObject(r);
    r = e2e_cmd(c, "STATS");
    cr_assert_geq(e2e_field_int(r, "escalations"), 1);
    freeReplyObject(r);
    redisFree(c);
    redisFree(s.c);
}

/* The brief's case: a normal order already inside the window when it is
   pushed (deadline now + 30 min, window 1 h) while rush24h orders wait. */
Test(events, escalated_at_intake)
{
    START("--escalate-normal", "1h", "--escalate-rush24h", "10m", NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);

    struct timeval tv = {3, 0}; /* the event comes at once or never */
    redisSetTimeout(s.c, tv);
    e2e_expect(c, "OK", "PUSH I-R1 rush24h APPROVED");
    e2e_expect(c, "OK", "PUSH I-R2 rush24h APPROVED");
    int64_t dl = e2e_now_ms() + 30 * MIN_MS;
    e2e_expect(c, "OK", "PUSH I-N normal DEADLINE %lld APPROVED",
               (long long)dl);
    redisReply *r = get_order(c, "I-N");
    cr_assert_str_eq(e2e_field_str(r, "class"), "normal");
    cr_assert_str_eq(e2e_field_str(r, "effective_class"), "rush24h");
    cr_assert_eq(e2e_field_int(r, "position"), 0);
    freeReplyObject(r);

    char *ev = wait_event(&s, "escalated", "I-N");
    expect_json_str(ev, "from", "normal");
    expect_json_str(ev, "to", "rush24h");
    free(ev);
    redisFree(c);
    redisFree(s.c);
}

/* REPRIO up is a jump too: it reports the orders it passed. */
Test(events, reprio_up_is_a_jump)
{
    START(NULL);
    struct sub s;
    subscribe(&s);
    redisContext *c = e2e_connect(&dmn);
    int64_t now = e2e_now_ms();

    for (int i = 0; i < 4; i++)
        e2e_expect(c, "OK",
                   "PUSH P-%d normal DEADLINE %lld WAREHOUSE hz5 APPROVED", i,
                   (long long)(now + 60 * HOUR_MS + i));
    e2e_expect(c, "OK", "REPRIO P-3 rush4h DEADLINE %lld",
               (long long)(now + 2 * HOUR_MS));
    char *ev = wait_event(&s, "jump", "P-3");
    cr_assert_eq(s.seen, 1, "events before the reprio's jump");
    cr_assert_eq(json_int(ev, "position"), 0, "%s", ev);
    cr_assert_eq(json_int(ev, "displaced"), 3, "%s", ev);
    expect_json_str(ev, "class", "rush4h");
    free(ev);
    redisReply *r = get_order(c, "P-3");
    cr_assert_eq(e2e_field_int(r, "position"), 0);
    freeReplyObject(r);
    /* Down again, with a deadline far enough not to escalate, is no jump:
       the next event is the outbound. */
    e2e_expect(c, "OK", "REPRIO P-3 normal DEADLINE %lld",
               (long long)(now + 60 * HOUR_MS + 9));
    e2e_expect(c, "OK", "OUTBOUND P-0 OPERATOR li");
    ev = wait_event(&s, "outbound_unleased", "P-0");
    cr_assert_eq(s.seen, 2, "REPRIO down made an event");
    free(ev);
    redisFree(c);
    redisFree(s.c);
}

/* Many events, one subscriber that joined late and one from the start:
   both see consecutive seqs, and the late one starts past the first. */
Test(events, seq_is_consecutive_for_every_subscriber)
{
    START(NULL);
    struct sub early, late;
    subscribe(&early);
    redisContext *c = e2e_connect(&dmn);
    int64_t now = e2e_now_ms();

    for (int i = 0; i < 5; i++)
        e2e_expect(c, "OK", "PUSH S-%d rush4h DEADLINE %lld APPROVED", i,
                   (long long)(now + HOUR_MS - i));
    char *ev = wait_event(&early, "jump", "S-4");
    cr_assert_eq(json_int(ev, "position"), 0);
    cr_assert_eq(json_int(ev, "displaced"), 4);
    free(ev);
    cr_assert_eq(early.seen, 5);

    subscribe(&late);
    for (int i = 5; i < 10; i++)
        e2e_expect(c, "OK", "PUSH S-%d rush4h DEADLINE %lld APPROVED", i,
                   (long long)(now + HOUR_MS - i));
    ev = wait_event(&early, "jump", "S-9");
    free(ev);
    ev = wait_event(&late, "jump", "S-9");
    free(ev);
    cr_assert_eq(late.seen, 5);
    cr_assert_eq(late.last_seq, early.last_seq);
    cr_assert_gt(late.last_seq, 5);
    /* A subscribed RESP2 connection answers PING in the pub/sub shape. */
    redisReply *r = e2e_cmd(late.c, "PING");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(r->element[0]->str, "pong");
    freeReplyObject(r);
    redisFree(c);
    redisFree(early.c);
    redisFree(late.c);
}
