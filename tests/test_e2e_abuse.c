/*
 * The daemon tried as hostile and careless clients would: clients that
 * never read, subscribers that fall behind, bytes that are not UTF-8,
 * deadlines in the year 9999, a store queue that fills, requests that
 * arrive a byte at a time, clients that go quiet or hang up mid-request.
 * Each must get a clear error or be cut off, never grow the daemon
 * without bound, and never hurt other clients.
 */
#include <fcntl.h>
#include <poll.h>

#include <jansson.h>

#include "e2e.h"

static struct daemon D;

static void
cleanup(void)
{
    e2e_cleanup(&D);
}

static void
expect_prefix(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r, "'%s' failed: %s", fmt, c->errstr);
    cr_assert(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR,
              "'%s': reply type %d", fmt, r->type);
    cr_assert(strncmp(r->str, want, strlen(want)) == 0,
              "'%s': got '%s', want '%s...'", fmt, r->str, want);
    freeReplyObject(r);
}

static void
expect_contains(redisContext *c, const char *part, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type == REDIS_REPLY_ERROR, "'%s': not an error", fmt);
    cr_assert(strstr(r->str, part), "'%s': '%s' does not name '%s'", fmt,
              r->str, part);
    freeReplyObject(r);
}

/* Send everything in buf without reading anything back, until the
   socket takes no more for `stall_ms` (the daemon stopped reading).
   Returns the bytes sent. */
static size_t
send_until_stalled(int fd, const char *buf, size_t len, size_t max_total,
                   int stall_ms)
{
    size_t total = 0;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    while (total < max_total) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        cr_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                  "send: %s", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, stall_ms) == 0)
            break;
    }
    fcntl(fd, F_SETFL, fl);
    return total;
}

/* A client pipelining GETs of a large order and never reading: the
   daemon stops reading from it instead of buffering replies without end,
   and serves everyone else meanwhile. */
Test(abuse, client_that_never_reads)
{
    atexit(cleanup);
    e2e_start(&D, NULL);
    redisContext *c = e2e_connect(&D);
    char big[1025];
    memset(big, 'v', 1024);
    big[1024] = '\0';
    redisReply *r = e2e_cmd(c,
                            "PUSH big-1 normal ATTR a %s ATTR b %s "
                            "ATTR c %s ATTR d %s",
                            big, big, big, big);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "PUSH: %s", r->str);
    freeReplyObject(r);
    long rss0 = e2e_rss_kb(&D);

    static char gets[64 * 1024];
    size_t n = 0;
    while (n + 16 < sizeof gets)
        n += (size_t)snprintf(gets + n, sizeof gets - n, "GET big-1\r\n");
    int fd = e2e_raw_connect(D.port);
    /* 256 MiB of requests would be ~600,000 replies of 4.5 KiB: 2.7 GB. */
    size_t sent = send_until_stalled(fd, gets, n, (size_t)256 << 20, 2000);
    long rss1 = e2e_rss_kb(&D);
    fprintf(stderr,
            "abuse: %zu bytes of GETs sent before the daemon stopped "
            "reading; RSS %ld -> %ld KiB\n",
            sent, rss0, rss1);
    cr_assert_lt(sent, (size_t)256 << 20,
                 "the daemon read 256 MiB of requests without the replies "
                 "being read");
    cr_assert_lt(rss1 - rss0, 128 * 1024,
                 "RSS grew by %ld KiB for one client that does not read",
                 rss1 - rss0);
    /* Everyone else is served. */
    e2e_expect(c, "PONG", "PING");
    r = e2e_cmd(c, "GET big-1");
    cr_assert_str_eq(e2e_field_str(r, "id"), "big-1");
    freeReplyObject(r);

    /* The stalled client is still served once it reads. */
    static char rbuf[1 << 16];
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got < (size_t)32 << 20 && poll(&p, 1, 2000) > 0) {
        ssize_t k = recv(fd, rbuf, sizeof rbuf, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    cr_assert_gt(got, (size_t)1 << 20, "only %zu bytes came back", got);
    close(fd);
    redisFree(c);
}

/* A subscriber that stops reading is cut off at its output limit; the
   others are unaffected. */
Test(abuse, slow_subscriber_is_dropped)
{
    atexit(cleanup);
    e2e_start(&D, "--subscriber-output-limit", "1mb 256kb 2s", NULL);
    redisContext *c = e2e_connect(&D);
    /* A small receive buffer, set before connecting, so the kernel does
       not absorb megabytes on the subscriber's behalf. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(D.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *sub = "SUBSCRIBE events\r\n";
    cr_assert_eq(send(fd, sub, strlen(sub), 0), (ssize_t)strlen(sub));
    e2e_sleep_ms(100);

    /* Each rush push jumps the queue: one event of ~350 bytes; 20,000 of
       them are 7 MB, more than the kernel buffers on loopback. */
    char id[64];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 5000; i++) {
            snprintf(id, sizeof id, "jump-%d-%04d-with-a-long-name-for-events",
                     round, i);
            redisAppendCommand(c, "PUSH %s rush4h CUSTOMER %s APPROVED", id,
                               id);
        }
        for (int i = 0; i < 5000; i++) {
            redisReply *r = NULL;
            cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
            cr_assert_eq(r->type, REDIS_REPLY_STATUS);
            freeReplyObject(r);
        }
    }
    /* Also the soft limit: keep it over 256 KiB for more than 2 s. */
    int64_t until = e2e_now_ms() + 6000;
    long long closes = 0;
    while (e2e_now_ms() < until &&
           (closes = e2e_info_int(c, "output_limit_closes")) < 1) {
        for (int i = 0; i < 20; i++) {
            snprintf(id, sizeof id, "more-%lld-%d", (long long)e2e_now_ms(), i);
            freeReplyObject(e2e_cmd(c, "PUSH %s rush4h APPROVED", id));
        }
        e2e_sleep_ms(200);
    }
    cr_assert_geq(closes, 1, "the slow subscriber was never dropped");
    /* Its socket is closed: reading drains what was sent, then EOF. */
    static char buf[1 << 16];
    ssize_t k;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 3000) > 0 && (k = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    cr_assert_eq(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 0,
                 "the dropped subscriber's connection is still open");
    close(fd);
    e2e_expect(c, "PONG", "PING");
    redisFree(c);
}

/* Bytes that are not UTF-8 in an id, a customer and an attribute still
   make events that are valid JSON (each bad byte becomes U+FFFD). */
Test(abuse, invalid_utf8_makes_valid_json)
{
    atexit(cleanup);
    e2e_start(&D, NULL);
    redisContext *c = e2e_connect(&D), *s = e2e_connect(&D);
    freeReplyObject(e2e_cmd(s, "SUBSCRIBE events"));
    freeReplyObject(e2e_cmd(c, "PUSH q1 normal APPROVED"));
    const char id[] =
        "bad\xff\xfe-\xc3(-\xed\xa0\x80-\xf4\x90\x80\x80-ok-\xe6\x80\xa5";
    const char cust[] = "cust\x80\"\\\x01";
    redisReply *r = e2e_cmd(c, "PUSH %b rush4h CUSTOMER %b APPROVED", id,
                            sizeof id - 1, cust, sizeof cust - 1);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "PUSH: %s", r->str);
    freeReplyObject(r);
    r = NULL;
    cr_assert_eq(redisGetReply(s, (void **)&r), REDIS_OK);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    json_error_t err;
    json_t *j = json_loadb(r->element[2]->str, r->element[2]->len, 0, &err);
    cr_assert(j, "event is not valid JSON (%s): %s", err.text,
              r->element[2]->str);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "jump");
    /* Valid sequences survive; each invalid byte is one U+FFFD. */
    cr_assert_str_eq(json_string_value(json_object_get(j, "order")),
                     "bad\xef\xbf\xbd\xef\xbf\xbd-\xef\xbf\xbd(-"
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd-"
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd-ok-"
                     "\xe6\x80\xa5");
    cr_assert_str_eq(json_string_value(json_object_get(j, "customer")),
                     "cust\xef\xbf\xbd\"\\\x01");
    json_decref(j);
    freeReplyObject(r);
    /* The order itself keeps its bytes exactly. */
    r = e2e_cmd(c, "GET %b", id, sizeof id - 1);
    const redisReply *v = e2e_field(r, "id");
    cr_assert(v && v->len == sizeof id - 1 && !memcmp(v->str, id, v->len));
    freeReplyObject(r);
    redisFree(s);
    redisFree(c);
}

/* Deadlines outside a sane window, and rules broken by REPRIO, are
   refused with the rule and the value named. */
Test(abuse, deadlines_and_reprio_errors)
{
    atexit(cleanup);
    e2e_start(&D, "--deadline-max-ahead", "400d", NULL);
    redisContext *c = e2e_connect(&D);
    expect_contains(c, "253402300799000",
                    "PUSH y9999 normal DEADLINE 9999-12-31T23:59:59Z");
    expect_prefix(c, "BADARG", "PUSH y9999 normal DEADLINE 253402300799000");
    expect_prefix(c, "BADARG",
                  "PUSH y1999 normal DEADLINE 1999-12-31T00:00:00Z");
    expect_prefix(c, "NOTFOUND", "GET y9999");
    long long now = e2e_now_ms();
    expect_prefix(c, "OK", "PUSH ok1 normal DEADLINE %lld",
                  now + 399 * 86400000LL);
    expect_prefix(c, "BADARG", "PUSH far normal DEADLINE %lld",
                  now + 401 * 86400000LL);
    expect_prefix(c, "BADARG",
                  "REPRIO ok1 normal DEADLINE 9999-01-01T00:00:00Z");
    /* asn needs its attributes: the rule is named, not a number. */
    expect_contains(c, "asn_number", "REPRIO ok1 asn DEADLINE %lld",
                    now + 3600000LL);
    expect_prefix(c, "BADARG", "REPRIO ok1 asn DEADLINE %lld", now + 3600000LL);
    redisReply *r = e2e_cmd(c, "GET ok1");
    cr_assert_str_eq(e2e_field_str(r, "class"), "normal");
    freeReplyObject(r);
    expect_prefix(c, "BADARG",
                  "OUTBOUND ok1 OPERATOR w AT 9999-01-01T00:00:00Z");
    redisFree(c);
}

/* A request arriving one byte at a time, and a 1 MiB bulk arriving in
   small pieces, are parsed once complete and answered correctly. */
Test(abuse, slow_requests_are_parsed_incrementally)
{
    atexit(cleanup);
    e2e_start(&D, NULL);
    int fd = e2e_raw_connect(D.port);
    const char *cmd = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    for (const char *p = cmd; *p; p++)
        cr_assert_eq(send(fd, p, 1, 0), 1);
    char buf[64] = "";
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    cr_assert_gt(k, 0);
    cr_assert_str_eq(buf, "$5\r\nhello\r\n");

    enum { BULK = 1 << 20 };
    static char piece[1024];
    memset(piece, 'z', sizeof piece);
    char head[64];
    int hl = snprintf(head, sizeof head, "*2\r\n$4\r\nECHO\r\n$%d\r\n", BULK);
    cr_assert_eq(send(fd, head, (size_t)hl, 0), hl);
    for (int i = 0; i < BULK / (int)sizeof piece; i++)
        cr_assert_eq(send(fd, piece, sizeof piece, 0), (ssize_t)sizeof piece);
    cr_assert_eq(send(fd, "\r\n", 2, 0), 2);
    size_t want =
        (size_t)snprintf(head, sizeof head, "$%d\r\n", BULK) + BULK + 2;
    size_t got = 0;
    static char rb[1 << 16];
    while (got < want && (k = recv(fd, rb, sizeof rb, 0)) > 0)
        got += (size_t)k;
    cr_assert_eq(got, want);
    close(fd);
}

/* With the store's hand-off queue full, a RESP client is not read from
   until the writer has taken the queue (back pressure: its pipelined
   pushes all succeed, and the loop never blocks); everything
   acknowledged is there after a restart. */
Test(abuse, full_store_queue_pushes_back)
{
    atexit(cleanup);
    e2e_start(&D, "--store-queue-max", "4", "--durability", "batch", NULL);
    redisContext *c = e2e_connect(&D);
    enum { N = 3000 };
    for (int i = 0; i < N; i++)
        redisAppendCommand(c, "PUSH b-%d normal APPROVED", i);
    for (int i = 0; i < N; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
        cr_assert(r->type == REDIS_REPLY_STATUS, "PUSH b-%d: %s", i,
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
    redisReply *st = e2e_cmd(c, "STATS");
    cr_assert_eq(e2e_field_int(st, "pushes"), N);
    freeReplyObject(st);
    cr_assert_eq(e2e_stop(&D), 0);
    e2e_start(&D, "--store-queue-max", "4", NULL);
    redisFree(c);
    c = e2e_connect(&D);
    st = e2e_cmd(c, "STATS");
    cr_assert_eq(e2e_field_int(st, "queued"), N);
    freeReplyObject(st);
    redisFree(c);
}

/* 1 when fd is closed by the peer within ms (recv returns 0), 0 when it
   is still open; data that arrives is read and dropped. */
static int
closed_within(int fd, long ms)
{
    long until = e2e_now_ms() + ms;
    for (;;) {
        long left = until - e2e_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char b[256];
        ssize_t k = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (k == 0)
            return 1;
        cr_assert(k > 0 || errno == EAGAIN, "recv: %s", strerror(errno));
    }
}

/* --idle-timeout: a client that says nothing is closed; a picker blocked
   in NEXT, a subscriber and a client that keeps talking are not. */
Test(abuse, idle_clients_are_closed_but_not_waiting_ones)
{
    atexit(cleanup);
    e2e_start(&D, "--idle-timeout", "300ms", NULL);
    int idle = e2e_raw_connect(D.port);
    redisContext *blocked = e2e_connect(&D);
    cr_assert_eq(redisAppendCommand(blocked, "NEXT widle BLOCK 0"), REDIS_OK);
    int wdone = 0;
    cr_assert_eq(redisBufferWrite(blocked, &wdone), REDIS_OK);
    redisContext *sub = e2e_connect(&D);
    redisReply *r = redisCommand(sub, "SUBSCRIBE events");
    cr_assert(r, "SUBSCRIBE: %s", sub->errstr);
    freeReplyObject(r);
    redisContext *talker = e2e_connect(&D);

    /* Ten timeouts' worth; the talker speaks every 100 ms. */
    int talker_fd = talker->fd;
    long until = e2e_now_ms() + 3000;
    int idle_closed = 0;
    while (e2e_now_ms() < until) {
        e2e_expect(talker, "PONG", "PING");
        if (!idle_closed)
            idle_closed = closed_within(idle, 100);
        else
            e2e_sleep_ms(100);
    }
    cr_assert(idle_closed, "a silent client was not closed in 3 s");
    cr_assert(!closed_within(talker_fd, 0), "the talker was closed");

    /* The blocked picker is still there to take an order. */
    redisContext *c = e2e_connect(&D);
    e2e_expect(c, "OK", "PUSH idle-1 normal WAREHOUSE widle APPROVED");
    void *got = NULL;
    cr_assert_eq(redisGetReply(blocked, &got), REDIS_OK,
                 "the blocked picker lost its connection: %s", blocked->errstr);
    r = got;
    cr_assert_str_eq(e2e_field_str(r, "id"), "idle-1");
    freeReplyObject(r);
    r = redisCommand(sub, "PING");
    cr_assert(r, "the subscriber was closed: %s", sub->errstr);
    freeReplyObject(r);
    close(idle);
    redisFree(c);
    redisFree(talker);
    redisFree(sub);
    redisFree(blocked);
}

/* A pipelined burst larger than one read (16 KiB), and a client that
   hangs up in the middle of a request: every complete request is
   answered, and the daemon serves on. */
Test(abuse, bursts_and_half_requests)
{
    atexit(cleanup);
    e2e_start(&D, NULL);
    enum { N = 5000 };
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    static char burst[N * (sizeof ping - 1)];
    for (size_t i = 0; i < N; i++)
        memcpy(burst + i * (sizeof ping - 1), ping, sizeof ping - 1);
    int fd = e2e_raw_connect(D.port);
    size_t sent = 0;
    while (sent < sizeof burst) {
        ssize_t k = send(fd, burst + sent, sizeof burst - sent, 0);
        cr_assert_gt(k, 0, "send: %s", strerror(errno));
        sent += (size_t)k;
    }
    size_t want = N * strlen("+PONG\r\n"), got = 0;
    static char rb[1 << 16];
    ssize_t k;
    while (got < want && (k = recv(fd, rb, sizeof rb, 0)) > 0)
        got += (size_t)k;
    cr_assert_eq(got, want);
    close(fd);

    fd = e2e_raw_connect(D.port);
    static const char half[] = "*3\r\n$4\r\nPUSH\r\n$6\r\nhalf-1";
    cr_assert_eq(send(fd, half, sizeof half - 1, 0), (ssize_t)sizeof half - 1);
    close(fd);
    redisContext *c = e2e_connect(&D);
    e2e_expect(c, "PONG", "PING");
    expect_prefix(c, "NOTFOUND", "GET half-1"); /* never applied */
    redisFree(c);
}
