/*
 * test_e2e_leases — pickers against the real daemon: blocking NEXT (woken
 * by a push, timing out, FIFO among many pickers, per warehouse), lease
 * expiry, TOUCH and RELEASE, stale leases, and that one order is never
 * leased to two pickers.
 *
 * Every test starts its own dispatchd (temporary directory, free port);
 * an atexit handler kills it and removes the directory, so a failed
 * assertion (which ends the test's process) leaves nothing running.
 */
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "e2e.h"

static struct daemon dmn;

static void
cleanup(void)
{
    e2e_cleanup(&dmn);
}

/* Start the test's daemon with extra arguments (NULL-terminated). */
#define START(...)                                                             \
    do {                                                                       \
        atexit(cleanup);                                                       \
        e2e_start(&dmn, __VA_ARGS__);                                          \
    } while (0)

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Push an approved order with an explicit deadline. */
static void
push(redisContext *c, const char *id, const char *cls, const char *wh,
     long long deadline)
{
    e2e_expect(c, "OK", "PUSH %s %s DEADLINE %lld WAREHOUSE %s APPROVED", id,
               cls, deadline, wh);
}

/* Send a command without waiting for its reply (read it later with
   redisGetReply). */
static void
send_only(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    int done = 0;

    va_start(ap, fmt);
    int rc = redisvAppendCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_eq(rc, REDIS_OK, "append '%s': %s", fmt, c->errstr);
    while (!done)
        cr_assert_eq(redisBufferWrite(c, &done), REDIS_OK, "write: %s",
                     c->errstr);
}

static redisReply *
get_reply(redisContext *c)
{
    void *r = NULL;
    cr_assert_eq(redisGetReply(c, &r), REDIS_OK, "reply: %s", c->errstr);
    cr_assert_not_null(r);
    return r;
}

/* True when c has bytes to read within ms. */
static bool
readable(redisContext *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static long long
stat_int(redisContext *c, const char *k)
{
    redisReply *r = e2e_cmd(c, "STATS");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "STATS is not a map");
    long long v = e2e_field_int(r, k);
    freeReplyObject(r);
    return v;
}

/* Wait until the daemon has n pickers blocked in NEXT. */
static void
wait_blocked(redisContext *c, long long n)
{
    int64_t until = mono_ms() + 10000;
    long long now;
    while ((now = stat_int(c, "blocked_clients")) != n) {
        cr_assert(mono_ms() < until, "blocked_clients is %lld, want %lld", now,
                  n);
        e2e_sleep_ms(5);
    }
}

/* A NEXT reply must be an order: returns its id (owned by r). */
static const char *
order_id(const redisReply *r, const char *what)
{
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s: reply type %d (%s)", what,
                 r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    const char *id = e2e_field_str(r, "id");
    cr_assert_not_null(id, "%s: reply has no id", what);
    return id;
}

/* Copy string field k of r into buf; the field must be there. */
static const char *
copy_field(const redisReply *r, const char *k, char *buf, size_t cap)
{
    const char *v = e2e_field_str(r, k);
    cr_assert_not_null(v, "reply has no %s", k);
    cr_assert_lt(strlen(v), cap, "%s too long", k);
    memcpy(buf, v, strlen(v) + 1);
    return buf;
}

static redisReply *
get_order(redisContext *c, const char *id)
{
    redisReply *r = e2e_cmd(c, "GET %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "GET %s: type %d (%s)", id,
                 r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    return r;
}

static void
expect_state(redisContext *c, const char *id, const char *state)
{
    redisReply *r = get_order(c, id);
    const char *s = e2e_field_str(r, "state");
    cr_assert(s && strcmp(s, state) == 0, "order %s is %s, want %s", id,
              s ? s : "(none)", state);
    freeReplyObject(r);
}

/* PEEK warehouse: the ids in pick order, comma-joined into buf. */
static const char *
peek_ids(redisContext *c, const char *wh, char *buf, size_t cap)
{
    redisReply *r = e2e_cmd(c, "PEEK %s COUNT 100", wh);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "PEEK %s: type %d", wh, r->type);
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->elements; i++) {
        const char *id = e2e_field_str(r->element[i], "id");
        cr_assert_not_null(id, "PEEK entry %zu has no id", i);
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", id);
        cr_assert(n < cap, "PEEK list too long");
    }
    freeReplyObject(r);
    return buf;
}

static void
expect_peek(redisContext *c, const char *wh, const char *want)
{
    char got[4096];
    peek_ids(c, wh, got, sizeof got);
    cr_assert_str_eq(got, want, "PEEK %s: got [%s], want [%s]", wh, got, want);
}

/* ---- blocking NEXT -------------------------------------------------- */

Test(leases, block_woken_by_push)
{
    START(NULL);
    redisContext *picker = e2e_connect(&dmn), *erp = e2e_connect(&dmn);

    send_only(picker, "NEXT hz1 BLOCK 5000 PICKER wang");
    wait_blocked(erp, 1);
    cr_assert_not(readable(picker, 50), "NEXT answered with nothing queued");
    push(erp, "RD-1", "rush4h", "hz1", e2e_now_ms() + 3600000);

    redisReply *r = get_reply(picker);
    cr_assert_str_eq(order_id(r, "blocked NEXT"), "RD-1");
    cr_assert_str_eq(e2e_field_str(r, "state"), "picking");
    cr_assert_str_eq(e2e_field_str(r, "picker"), "wang");
    cr_assert_not_null(e2e_field_str(r, "lease"));
    cr_assert_gt(e2e_field_int(r, "lease_expires"), e2e_now_ms());
    freeReplyObject(r);
    cr_assert_eq(stat_int(erp, "blocked_clients"), 0);
    expect_state(erp, "RD-1", "picking");
    /* The picker's connection works on after being woken. */
    e2e_expect(picker, "PONG", "PING");
    redisFree(picker);
    redisFree(erp);
}

Test(leases, block_timeout_returns_nil)
{
    START(NULL);
    redisContext *c = e2e_connect(&dmn);

    int64_t t0 = mono_ms();
    redisReply *r = e2e_cmd(c, "NEXT hz1 BLOCK 400");
    int64_t waited = mono_ms() - t0;
    cr_assert_eq(r->type, REDIS_REPLY_NIL, "reply type %d, want nil", r->type);
    freeReplyObject(r);
    /* Only a lower bound: the daemon may be slow, never early (1 ms slack
       for the two clocks' rounding). */
    cr_assert_geq(waited, 399, "NEXT BLOCK 400 returned after %lld ms",
                  (long long)waited);
    cr_assert_eq(stat_int(c, "blocked_clients"), 0);

    /* Without BLOCK an empty queue answers nil at once. */
    r = e2e_cmd(c, "NEXT hz1");
    cr_assert_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* An order pushed after the timeout is not lost to the gone picker. */
    push(c, "RD-2", "normal", "hz1", e2e_now_ms() + 7200000);
    expect_state(c, "RD-2", "queued");
    redisFree(c);
}

#define PICKERS 10

Test(leases, ten_pickers_fifo)
{
    START(NULL);
    redisContext *p[PICKERS], *erp = e2e_connect(&dmn);
    char id[32];

    /* Block them one after the other: picker i waits longer than i+1. */
    for (int i = 0; i < PICKERS; i++) {
        p[i] = e2e_connect(&dmn);
        send_only(p[i], "NEXT hz1 BLOCK 0 LEASE 600 PICKER picker-%d", i);
        wait_blocked(erp, i + 1);
    }
    /* Ten orders, each pushed approved, in pick order. */
    int64_t dl = e2e_now_ms() + 10 * 3600000LL;
    for (int i = 0; i < PICKERS; i++) {
        snprintf(id, sizeof id, "F-%d", i);
        push(erp, id, "normal", "hz1", dl + i);
    }
    bool seen[PICKERS] = {false};
    for (int i = 0; i < PICKERS; i++) {
        redisReply *r = get_reply(p[i]);
        const char *got = order_id(r, "woken picker");
        int k = -1;
        cr_assert_eq(sscanf(got, "F-%d", &k), 1, "unexpected order %s", got);
        cr_assert(k >= 0 && k < PICKERS && !seen[k],
                  "order %s handed out twice", got);
        seen[k] = true;
        /* The longest waiting picker gets the first order. */
        cr_assert_eq(k, i, "picker-%d got %s, want F-%d", i, got, i);
        char want[32];
        snprintf(want, sizeof want, "picker-%d", i);
        cr_assert_str_eq(e2e_field_str(r, "picker"), want);
        freeReplyObject(r);
        /* Exactly one order each: nothing more arrives. */
        cr_assert_not(readable(p[i], 0), "picker-%d got a second reply", i);
    }
    cr_assert_eq(stat_int(erp, "blocked_clients"), 0);
    cr_assert_eq(stat_int(erp, "picking"), PICKERS);
    for (int i = 0; i < PICKERS; i++)
        redisFree(p[i]);
    redisFree(erp);
}

Test(leases, push_to_other_warehouse_wakes_nobody)
{
    START(NULL);
    redisContext *picker = e2e_connect(&dmn), *erp = e2e_connect(&dmn);
    int64_t dl = e2e_now_ms() + 3600000;

    send_only(picker, "NEXT whA BLOCK 0");
    wait_blocked(erp, 1);
    push(erp, "B-1", "rush4h", "whB", dl);
    cr_assert_not(readable(picker, 300),
                  "a picker of whA was woken by a push to whB");
    cr_assert_eq(stat_int(erp, "blocked_clients"), 1);
    expect_state(erp, "B-1", "queued");

    push(erp, "A-1", "normal", "whA", dl);
    redisReply *r = get_reply(picker);
    cr_assert_str_eq(order_id(r, "NEXT whA"), "A-1");
    freeReplyObject(r);
    expect_state(erp, "B-1", "queued");
    redisFree(picker);
    redisFree(erp);
}

/* ---- lease expiry, TOUCH, RELEASE ----------------------------------- */

/* Three queued orders L-1, L-2, L-3 in that pick order; returns L-1's
   deadline (L-2's is a second later). */
static int64_t
push_three(redisContext *c)
{
    int64_t dl = e2e_now_ms() + 48 * 3600000LL;
    push(c, "L-1", "rush24h", "hz1", dl);
    push(c, "L-2", "rush24h", "hz1", dl + 1000);
    push(c, "L-3", "normal", "hz1", dl);
    expect_peek(c, "hz1", "L-1,L-2,L-3");
    return dl;
}

static long long
position_of(redisContext *c, const char *id)
{
    redisReply *r = get_order(c, id);
    long long p = e2e_field_int(r, "position");
    freeReplyObject(r);
    return p;
}

Test(leases, lease_expiry_requeues_at_its_place)
{
    START(NULL);
    redisContext *c = e2e_connect(&dmn);
    push_three(c);
    cr_assert_eq(position_of(c, "L-1"), 0);
    long long seq0;
    {
        redisReply *r = get_order(c, "L-1");
        seq0 = e2e_field_int(r, "seq");
        freeReplyObject(r);
    }

    redisReply *r = e2e_cmd(c, "NEXT hz1 LEASE 1 PICKER first");
    cr_assert_str_eq(order_id(r, "NEXT"), "L-1");
    char lease1[32];
    copy_field(r, "lease", lease1, sizeof lease1);
    freeReplyObject(r);
    expect_peek(c, "hz1", "L-2,L-3");

    /* The lease runs out after 1 s: back at its original place. */
    e2e_sleep_ms(1500);
    int64_t until = mono_ms() + 10000;
    for (;;) {
        r = get_order(c, "L-1");
        bool queued = strcmp(e2e_field_str(r, "state"), "queued") == 0;
        freeReplyObject(r);
        if (queued)
            break;
        cr_assert(mono_ms() < until, "lease of L-1 never expired");
        e2e_sleep_ms(50);
    }
    expect_peek(c, "hz1", "L-1,L-2,L-3");
    cr_assert_eq(position_of(c, "L-1"), 0);
    r = get_order(c, "L-1");
    cr_assert_eq(e2e_field_int(r, "seq"), seq0, "arrival changed on expiry");
    cr_assert_null(e2e_field(r, "lease"), "a queued order shows a lease");
    freeReplyObject(r);
    cr_assert_geq(stat_int(c, "lease_expiries"), 1);

    /* A second NEXT gets it again, with a new lease. */
    r = e2e_cmd(c, "NEXT hz1 LEASE 60 PICKER second");
    cr_assert_str_eq(order_id(r, "second NEXT"), "L-1");
    char lease2[32];
    copy_field(r, "lease", lease2, sizeof lease2);
    long long exp2 = e2e_field_int(r, "lease_expires");
    cr_assert_str_eq(e2e_field_str(r, "picker"), "second");
    freeReplyObject(r);
    cr_assert_str_neq(lease1, lease2, "the new lease reuses the old id");

    /* The old lease is stale. */
    e2e_expect(c, "LEASE", "TOUCH L-1 %s", lease1);
    e2e_expect(c, "LEASE", "RELEASE L-1 %s", lease1);
    expect_state(c, "L-1", "picking");
    r = get_order(c, "L-1");
    cr_assert_str_eq(e2e_field_str(r, "lease"), lease2);
    cr_assert_eq(e2e_field_int(r, "lease_expires"), exp2);
    freeReplyObject(r);

    /* The audit trail has the expiry on the record. */
    r = e2e_cmd(c, "AUDIT L-1");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    bool expired = false;
    for (size_t i = 0; i < r->elements; i++) {
        const char *a = e2e_field_str(r->element[i], "action");
        expired |= a && strstr(a, "expire") != NULL;
    }
    cr_assert(expired, "AUDIT L-1 has no expiry entry");
    freeReplyObject(r);
    redisFree(c);
}

Test(leases, release_puts_back_at_its_place)
{
    START(NULL);
    redisContext *c = e2e_connect(&dmn);
    int64_t dl = push_three(c);
    char lease[2][32];

    for (int i = 0; i < 2; i++) {
        redisReply *r = e2e_cmd(c, "NEXT hz1 LEASE 600");
        const char *want = i ? "L-2" : "L-1";
        cr_assert_str_eq(order_id(r, "NEXT"), want);
        copy_field(r, "lease", lease[i], sizeof lease[i]);
        freeReplyObject(r);
    }
    expect_peek(c, "hz1", "L-3");
    /* A later order with L-2's class and deadline does not take its
       place: arrival breaks the tie. */
    push(c, "L-4", "rush24h", "hz1", dl + 1000);
    expect_peek(c, "hz1", "L-4,L-3");

    e2e_expect(c, "OK", "RELEASE L-2 %s", lease[1]);
    expect_state(c, "L-2", "queued");
    expect_peek(c, "hz1", "L-2,L-4,L-3");
    cr_assert_eq(position_of(c, "L-2"), 0);
    e2e_expect(c, "OK", "RELEASE L-1 %s", lease[0]);
    expect_peek(c, "hz1", "L-1,L-2,L-4,L-3");
    cr_assert_eq(position_of(c, "L-3"), 3);

    /* The released lease is stale now; so is a made-up one. */
    e2e_expect(c, "LEASE", "RELEASE L-1 %s", lease[0]);
    e2e_expect(c, "LEASE", "TOUCH L-2 %s", lease[1]);
    e2e_expect(c, "LEASE", "TOUCH L-3 12345");
    e2e_expect(c, "NOTFOUND", "RELEASE nosuch 1");
    e2e_expect(c, "BADARG", "RELEASE L-1 notanumber");
    redisFree(c);
}

Test(leases, touch_extends_the_lease)
{
    START(NULL);
    redisContext *c = e2e_connect(&dmn);
    push_three(c);

    redisReply *r = e2e_cmd(c, "NEXT hz1 LEASE 60");
    cr_assert_str_eq(order_id(r, "NEXT"), "L-1");
    char lease[32];
    copy_field(r, "lease", lease, sizeof lease);
    long long exp1 = e2e_field_int(r, "lease_expires");
    freeReplyObject(r);
    cr_assert_gt(exp1, e2e_now_ms() + 30000);

    e2e_sleep_ms(20);
    r = e2e_cmd(c, "TOUCH L-1 %s LEASE 120", lease);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "TOUCH: type %d (%s)", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long exp2 = r->integer;
    freeReplyObject(r);
    cr_assert_gt(exp2, exp1, "TOUCH did not extend: %lld -> %lld", exp1, exp2);
    cr_assert_gt(exp2, e2e_now_ms() + 90000);

    r = get_order(c, "L-1");
    cr_assert_eq(e2e_field_int(r, "lease_expires"), exp2);
    cr_assert_str_eq(e2e_field_str(r, "lease"), lease, "TOUCH changed the id");
    freeReplyObject(r);

    /* Without LEASE it extends by the default (300 s), still growing. */
    e2e_sleep_ms(20);
    r = e2e_cmd(c, "TOUCH L-1 %s", lease);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert_gt(r->integer, exp2);
    freeReplyObject(r);
    e2e_expect(c, "OK", "RELEASE L-1 %s", lease);
    expect_peek(c, "hz1", "L-1,L-2,L-3");
    redisFree(c);
}

/* Every way an order comes back to the queue serves a blocked picker:
   approve, release, lease expiry. */
Test(leases, blocked_picker_served_by_approve_release_and_expiry)
{
    START(NULL);
    redisContext *picker = e2e_connect(&dmn), *erp = e2e_connect(&dmn);
    char lease[32];

    e2e_expect(erp, "OK", "PUSH W-1 rush4h WAREHOUSE hz3");
    send_only(picker, "NEXT hz3 BLOCK 0 LEASE 600 PICKER li");
    wait_blocked(erp, 1);
    e2e_expect(erp, "OK", "APPROVE W-1");
    redisReply *r = get_reply(picker);
    cr_assert_str_eq(order_id(r, "NEXT woken by APPROVE"), "W-1");
    copy_field(r, "lease", lease, sizeof lease);
    freeReplyObject(r);

    send_only(picker, "NEXT hz3 BLOCK 0 LEASE 1 PICKER li");
    wait_blocked(erp, 1);
    e2e_expect(erp, "OK", "RELEASE W-1 %s", lease);
    r = get_reply(picker);
    cr_assert_str_eq(order_id(r, "NEXT woken by RELEASE"), "W-1");
    freeReplyObject(r);

    /* W-1 is leased for 1 s: a second picker waits for it. */
    redisContext *other = e2e_connect(&dmn);
    send_only(other, "NEXT hz3 BLOCK 10000 PICKER zhao");
    r = get_reply(other);
    cr_assert_str_eq(order_id(r, "NEXT woken by expiry"), "W-1");
    cr_assert_str_eq(e2e_field_str(r, "picker"), "zhao");
    freeReplyObject(r);
    expect_state(erp, "W-1", "picking");
    redisFree(other);
    redisFree(picker);
    redisFree(erp);
}

/* A picker that hangs up while blocked takes nothing with it. */
Test(leases, blocked_picker_gone_loses_nothing)
{
    START(NULL);
    redisContext *picker = e2e_connect(&dmn), *erp = e2e_connect(&dmn);

    send_only(picker, "NEXT hz1 BLOCK 0");
    wait_blocked(erp, 1);
    redisFree(picker);
    e2e_sleep_ms(200);
    push(erp, "G-1", "rush4h", "hz1", e2e_now_ms() + 3600000);
    expect_state(erp, "G-1", "queued");
    redisReply *r = e2e_cmd(erp, "NEXT hz1");
    cr_assert_str_eq(order_id(r, "NEXT"), "G-1");
    freeReplyObject(r);
    redisFree(erp);
}

/* A lease that runs out while the daemon is down is expired at start:
   the order is queued again, at its place. */
Test(leases, lease_expires_while_the_daemon_is_down)
{
    START(NULL);
    redisContext *c = e2e_connect(&dmn);
    push_three(c);
    redisReply *r = e2e_cmd(c, "NEXT hz1 LEASE 1");
    cr_assert_str_eq(order_id(r, "NEXT"), "L-1");
    freeReplyObject(r);
    r = e2e_cmd(c, "NEXT hz1 LEASE 600");
    cr_assert_str_eq(order_id(r, "NEXT"), "L-2");
    char lease[32];
    copy_field(r, "lease", lease, sizeof lease);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);

    e2e_sleep_ms(1200);
    e2e_start(&dmn, NULL);
    c = e2e_connect(&dmn);
    expect_state(c, "L-1", "queued");
    expect_peek(c, "hz1", "L-1,L-3");
    r = get_order(c, "L-2");
    cr_assert_str_eq(e2e_field_str(r, "state"), "picking");
    cr_assert_str_eq(e2e_field_str(r, "lease"), lease);
    freeReplyObject(r);
    /* New leases never reuse an old id. */
    r = e2e_cmd(c, "NEXT hz1 LEASE 600");
    cr_assert_str_eq(order_id(r, "NEXT"), "L-1");
    cr_assert_str_neq(e2e_field_str(r, "lease"), lease);
    freeReplyObject(r);
    e2e_expect(c, "OK", "RELEASE L-2 %s", lease);
    redisFree(c);
}

/* ---- never two pickers ---------------------------------------------- */

#define RACE_ORDERS 300
#define RACE_PICKERS 8

struct racer {
    int port;
    int n; /* orders leased */
    char ids[RACE_ORDERS][32];
    char err[256];
};

static void *
race(void *arg)
{
    struct racer *me = arg;
    struct timeval tv = {20, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", me->port, tv);

    if (!c || c->err) {
        snprintf(me->err, sizeof me->err, "connect: %s",
                 c ? c->errstr : "no memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    for (;;) {
        redisReply *r = redisCommand(c, "NEXT race LEASE 600 BLOCK 300");
        if (!r) {
            snprintf(me->err, sizeof me->err, "NEXT: %s", c->errstr);
            break;
        }
        if (r->type == REDIS_REPLY_NIL) {
            freeReplyObject(r);
            break;
        }
        const char *id = e2e_field_str(r, "id");
        if (r->type != REDIS_REPLY_ARRAY || !id || me->n >= RACE_ORDERS) {
            snprintf(me->err, sizeof me->err, "NEXT: bad reply type %d %s",
                     r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
            freeReplyObject(r);
            break;
        }
        snprintf(me->ids[me->n++], sizeof me->ids[0], "%s", id);
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

static void
push_race(redisContext *c, int from, int to, bool pipelined)
{
    int64_t dl = e2e_now_ms() + 48 * 3600000LL;
    static const char *const cls[] = {"asn", "rush4h", "rush24h", "normal"};

    for (int i = from; i < to; i++) {
        cr_assert_eq(redisAppendCommand(
                         c,
                         "PUSH R-%d %s DEADLINE %lld WAREHOUSE race APPROVED "
                         "ATTR asn_number A%d ATTR tech_agreement T%d",
                         i, cls[i % 4], (long long)(dl + i % 37), i, i),
                     REDIS_OK);
        if (pipelined && i + 1 < to)
            continue;
        for (int k = pipelined ? from : i; k <= i; k++) {
            redisReply *r = get_reply(c);
            cr_assert(r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK"),
                      "PUSH R-%d: %s", k, r->str ? r->str : "?");
            freeReplyObject(r);
        }
    }
}

/* Half the orders are queued before the pickers start, half are pushed
   while they take orders and block for more; what is left when they give
   up is drained here. */
Test(leases, one_order_never_leased_twice)
{
    START(NULL);
    redisContext *c = e2e_connect(&dmn);

    push_race(c, 0, RACE_ORDERS / 2, true);
    cr_assert_eq(stat_int(c, "queued"), RACE_ORDERS / 2);

    static struct racer racers[RACE_PICKERS + 1];
    pthread_t th[RACE_PICKERS];
    for (int i = 0; i < RACE_PICKERS; i++) {
        racers[i].port = dmn.port;
        cr_assert_eq(pthread_create(&th[i], NULL, race, &racers[i]), 0);
    }
    push_race(c, RACE_ORDERS / 2, RACE_ORDERS, false);
    for (int i = 0; i < RACE_PICKERS; i++)
        pthread_join(th[i], NULL);
    racers[RACE_PICKERS].port = dmn.port;
    race(&racers[RACE_PICKERS]);

    static int owner[RACE_ORDERS];
    memset(owner, -1, sizeof owner);
    int total = 0;
    for (int i = 0; i <= RACE_PICKERS; i++) {
        cr_assert_str_empty(racers[i].err, "picker %d: %s", i, racers[i].err);
        for (int j = 0; j < racers[i].n; j++) {
            int k = -1;
            cr_assert_eq(sscanf(racers[i].ids[j], "R-%d", &k), 1);
            cr_assert(k >= 0 && k < RACE_ORDERS);
            cr_assert_eq(owner[k], -1,
                         "order %s leased to picker %d and picker %d",
                         racers[i].ids[j], owner[k], i);
            owner[k] = i;
            total++;
        }
    }
    cr_assert_eq(total, RACE_ORDERS, "%d orders leased of %d", total,
                 RACE_ORDERS);
    cr_assert_eq(stat_int(c, "picking"), RACE_ORDERS);
    cr_assert_eq(stat_int(c, "queued"), 0);
    redisFree(c);
}
