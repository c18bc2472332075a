/*
 * test_e2e_eventlog — the durable event log of the real daemon: every
 * event gets an increasing sequence number when it is made and is logged
 * with the change it reports; EVENTS FROM replays the log in order (COUNT,
 * BLOCK woken by a new event); after kill -9 every acknowledged change's
 * event is in the log and numbering goes on without reuse; GET /v1/events
 * streams the log as server-sent events.
 *
 * Events are made with queue jumps: one normal order waits, and each rush
 * order pushed after it jumps it (one "jump" event per push).
 */
#include <poll.h>
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

static long long
far_deadline(void)
{
    return (long long)(e2e_now_ms() + 3 * 24 * 3600 * 1000LL);
}

/* The normal order every rush then jumps. */
static void
push_base(redisContext *c)
{
    e2e_expect(c, "OK", "PUSH BASE normal DEADLINE %lld WAREHOUSE hz1 APPROVED",
               far_deadline() + 3600 * 1000LL);
}

static void
push_rush(redisContext *c, int i)
{
    e2e_expect(c, "OK", "PUSH R-%d rush4h WAREHOUSE hz1 APPROVED", i);
}

/* The value of "key": in a flat JSON object, as a number. */
static long long
json_int(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "no %s in %s", key, json);
    return strtoll(p + strlen(pat), NULL, 10);
}

static bool
json_has(const char *json, const char *key, const char *val)
{
    char pat[200];
    snprintf(pat, sizeof pat, "\"%s\":\"%s\"", key, val);
    return strstr(json, pat) != NULL;
}

static redisReply *
events_from(redisContext *c, const char *fmt, ...)
{
    char cmd[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    redisReply *r = redisCommand(c, cmd);
    cr_assert_not_null(r, "%s: %s", cmd, c->errstr);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s: type %d %s", cmd, r->type,
                 r->str ? r->str : "");
    return r;
}

Test(eventlog, seqs_increase_and_from_count)
{
    START("--durability", "sync", NULL);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 0; i < 5; i++)
        push_rush(c, i);

    redisReply *r = events_from(c, "EVENTS FROM 0");
    cr_assert_eq(r->elements, 5);
    for (size_t i = 0; i < 5; i++) {
        const char *j = r->element[i]->str;
        cr_assert_eq(json_int(j, "seq"), (long long)i + 1, "%s", j);
        cr_assert(json_has(j, "type", "jump"), "%s", j);
        char id[16];
        snprintf(id, sizeof id, "R-%zu", i);
        cr_assert(json_has(j, "order", id), "%s", j);
    }
    freeReplyObject(r);

    r = events_from(c, "EVENTS FROM 0 COUNT 2");
    cr_assert_eq(r->elements, 2);
    cr_assert_eq(json_int(r->element[1]->str, "seq"), 2);
    freeReplyObject(r);

    /* FROM is exclusive: the events after seq 3. */
    r = events_from(c, "EVENTS FROM 3");
    cr_assert_eq(r->elements, 2);
    cr_assert_eq(json_int(r->element[0]->str, "seq"), 4);
    freeReplyObject(r);

    r = events_from(c, "EVENTS FROM 5");
    cr_assert_eq(r->elements, 0);
    freeReplyObject(r);

    e2e_expect(c, "BADARG", "EVENTS FROM 0 COUNT 1001");
    e2e_expect(c, "BADARG", "EVENTS FROM x");
    e2e_expect(c, "BADARG", "EVENTS TO 3");
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

Test(eventlog, block_woken_by_a_rush_push)
{
    START("--durability", "sync", NULL);
    redisContext *c = e2e_connect(&dmn);
    redisContext *w = e2e_connect(&dmn);
    push_base(c);
    push_rush(c, 0);

    /* Nothing after seq 1: BLOCK waits, then answers an empty array. */
    int64_t t0 = e2e_now_ms();
    redisReply *r = events_from(w, "EVENTS FROM 1 BLOCK 300");
    int64_t waited = e2e_now_ms() - t0;
    cr_assert_eq(r->elements, 0);
    cr_assert_geq(waited, 250, "waited %lld ms", (long long)waited);
    freeReplyObject(r);

    /* A blocked EVENTS FROM is answered by the next event. */
    cr_assert_eq(redisAppendCommand(w, "EVENTS FROM 1 BLOCK 10000"), REDIS_OK);
    int done = 0;
    while (!done)
        cr_assert_eq(redisBufferWrite(w, &done), REDIS_OK);
    e2e_sleep_ms(100);
    t0 = e2e_now_ms();
    push_rush(c, 1);
    void *rv = NULL;
    cr_assert_eq(redisGetReply(w, &rv), REDIS_OK, "%s", w->errstr);
    r = rv;
    cr_assert_lt(e2e_now_ms() - t0, 3000);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1);
    cr_assert_eq(json_int(r->element[0]->str, "seq"), 2);
    cr_assert(json_has(r->element[0]->str, "order", "R-1"));
    freeReplyObject(r);
    /* The connection works on afterwards. */
    e2e_expect(w, "PONG", "PING");
    redisFree(w);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

Test(eventlog, kill9_keeps_every_acknowledged_event_and_numbering)
{
    START("--durability", "sync", NULL);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    const int n = 200;
    /* Pipelined: each OK is an acknowledged (durable) change. */
    for (int i = 0; i < n; i++)
        redisAppendCommand(c, "PUSH R-%d rush4h WAREHOUSE hz1 APPROVED", i);
    for (int i = 0; i < n; i++) {
        void *rv = NULL;
        cr_assert_eq(redisGetReply(c, &rv), REDIS_OK);
        redisReply *r = rv;
        cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s", r->str);
        freeReplyObject(r);
    }
    /* Right after the last acknowledgement. */
    e2e_kill(&dmn);
    redisFree(c);

    e2e_start(&dmn, "--durability", "sync", NULL);
    c = e2e_connect(&dmn);
    bool seen[200] = {false};
    long long last = 0;
    for (;;) {
        redisReply *r = events_from(c, "EVENTS FROM %lld COUNT 1000", last);
        if (r->elements == 0) {
            freeReplyObject(r);
            break;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const char *j = r->element[i]->str;
            long long seq = json_int(j, "seq");
            cr_assert_gt(seq, last, "out of order: %lld after %lld", seq, last);
            last = seq;
            const char *o = strstr(j, "\"order\":\"R-");
            if (o && json_has(j, "type", "jump"))
                seen[atoi(o + 11)] = true;
        }
        freeReplyObject(r);
    }
    for (int i = 0; i < n; i++)
        cr_assert(seen[i], "the jump of acknowledged R-%d is not in the log",
                  i);
    cr_assert_geq(last, n);

    /* Numbering goes on: the next event is last + 1. */
    push_rush(c, 1000);
    redisReply *r = events_from(c, "EVENTS FROM %lld", last);
    cr_assert_eq(r->elements, 1);
    cr_assert_eq(json_int(r->element[0]->str, "seq"), last + 1);
    cr_assert(json_has(r->element[0]->str, "order", "R-1000"));
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);

    /* And after a clean restart too. */
    e2e_start(&dmn, "--durability", "sync", NULL);
    c = e2e_connect(&dmn);
    push_rush(c, 1001);
    r = events_from(c, "EVENTS FROM %lld", last + 1);
    cr_assert_eq(r->elements, 1);
    cr_assert_eq(json_int(r->element[0]->str, "seq"), last + 2);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

Test(eventlog, batch_mode_replays_what_was_just_made)
{
    START("--durability", "batch", NULL);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 0; i < 20; i++)
        push_rush(c, i);
    redisReply *r = events_from(c, "EVENTS FROM 0 COUNT 1000");
    cr_assert_eq(r->elements, 20);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

Test(eventlog, retention_by_count)
{
    START("--durability", "sync", "--event-retention-count", "5", NULL);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 0; i < 12; i++)
        push_rush(c, i);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
    /* Retention runs at start (and every minute). */
    e2e_start(&dmn, "--durability", "sync", "--event-retention-count", "5",
              NULL);
    c = e2e_connect(&dmn);
    redisReply *r = NULL;
    for (int i = 0; i < 100; i++) {
        r = events_from(c, "EVENTS FROM 0 COUNT 1000");
        if (r->elements == 5)
            break;
        freeReplyObject(r);
        r = NULL;
        e2e_sleep_ms(20);
    }
    cr_assert_not_null(r, "retention kept more than 5 events");
    cr_assert_eq(json_int(r->element[0]->str, "seq"), 8);
    cr_assert_eq(json_int(r->element[4]->str, "seq"), 12);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

/* ---- SSE ---- */

/* Reads from fd into buf (NUL-terminated) until `want` appears or ms
   pass; true when it appeared. */
static bool
read_until(int fd, char *buf, size_t cap, size_t *len, const char *want,
           long ms)
{
    int64_t until = e2e_now_ms() + ms;
    while (!strstr(buf, want)) {
        int64_t left = until - e2e_now_ms();
        if (left <= 0 || *len + 1 >= cap)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return false;
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    return true;
}

static int
sse_open(const char *extra_header, const char *query)
{
    int fd = e2e_raw_connect(dmn.http_port);
    char req[300];
    int n = snprintf(req, sizeof req,
                     "GET /v1/events%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n",
                     query, extra_header);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    return fd;
}

Test(eventlog, sse_backlog_resume_live_heartbeat)
{
    START("--durability", "sync", "--sse-heartbeat", "1s", NULL);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 0; i < 3; i++)
        push_rush(c, i);

    static char buf[65536];
    size_t len = 0;
    buf[0] = '\0';
    int fd = sse_open("", "");
    cr_assert(read_until(fd, buf, sizeof buf, &len, "id: 3\n", 5000), "%s",
              buf);
    cr_assert_not_null(strstr(buf, "HTTP/1.1 200"), "%s", buf);
    cr_assert_not_null(strstr(buf, "Content-Type: text/event-stream"), "%s",
                       buf);
    cr_assert_not_null(strstr(buf, "id: 1\nevent: jump\ndata: {\"seq\":1,"),
                       "%s", buf);
    /* A live event. */
    push_rush(c, 3);
    cr_assert(read_until(fd, buf, sizeof buf, &len, "id: 4\n", 5000), "%s",
              buf);
    cr_assert_not_null(strstr(buf, "\"order\":\"R-3\""), "%s", buf);
    /* The heartbeat comment, every second here. */
    cr_assert(read_until(fd, buf, sizeof buf, &len, ": heartbeat\n\n", 3000),
              "%s", buf);
    close(fd);

    /* Resume after Last-Event-ID: only 3 and 4. */
    len = 0;
    buf[0] = '\0';
    fd = sse_open("Last-Event-ID: 2\r\n", "");
    cr_assert(read_until(fd, buf, sizeof buf, &len, "id: 4\n", 5000), "%s",
              buf);
    cr_assert_null(strstr(buf, "id: 2\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "id: 3\n"), "%s", buf);
    close(fd);

    /* ?from= does the same. */
    len = 0;
    buf[0] = '\0';
    fd = sse_open("", "?from=3");
    cr_assert(read_until(fd, buf, sizeof buf, &len, "id: 4\n", 5000), "%s",
              buf);
    cr_assert_null(strstr(buf, "id: 3\n"), "%s", buf);
    close(fd);

    /* The daemon noticed the closed streams and still works. */
    e2e_expect(c, "PONG", "PING");
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}
