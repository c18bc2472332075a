/*
 * test_e2e_commands — every command of the README table against the real
 * daemon, with hiredis and with raw sockets.
 *
 * Each test starts its own dispatchd (temporary data dir, free port).  The
 * README is the specification: replies, error code words and the state
 * named in a BADSTATE are checked as it states them; where the README is
 * silent the expectation follows dispatcher/commands.c.  hiredis 0.14
 * cannot parse RESP3, so RESP3 replies are read from a raw socket and
 * checked byte for byte.  The file is long (one suite for the whole table,
 * plus the protocol limits, pipelining, connection limits and restart) so
 * that the table has one place where it is checked end to end.
 *
 * A daemon must never outlive its test: Criterion runs each test in its
 * own process; fini (also run after a failed assertion), an atexit handler
 * and e2e.h's parent-death signal all stop it.  Daemons start in the test
 * bodies, not in .init, because a failed assertion in .init skips fini.
 * Every test ends with finish(): SIGTERM must give exit status 0 and the
 * daemon's log no sanitizer report, so the ASan build checks the daemon
 * as well as the replies.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"

#define HOUR_MS (3600LL * 1000)

static struct daemon D;  /* the daemon of the test */
static struct daemon D2; /* a second one (checkpoint) */
static redisContext *C;  /* the test's main client */

/* ---- lifetime ------------------------------------------------------- */

/* Replies and strings freed at teardown, so tests read like scripts and
   LeakSanitizer stays quiet. */
static void **held;
static size_t nheld, capheld;

static void *
keep(void *p)
{
    if (nheld == capheld) {
        capheld = capheld ? 2 * capheld : 256;
        held = realloc(held, capheld * sizeof *held);
        cr_assert(held, "out of memory");
    }
    held[nheld++] = p;
    return p;
}

static redisReply **heldr;
static size_t nheldr, capheldr;

static redisReply *
keepr(redisReply *r)
{
    if (nheldr == capheldr) {
        capheldr = capheldr ? 2 * capheldr : 256;
        heldr = realloc(heldr, capheldr * sizeof *heldr);
        cr_assert(heldr, "out of memory");
    }
    heldr[nheldr++] = r;
    return r;
}

/* Before a daemon's directory goes: show its log when it holds an error
   or a sanitizer report, since assertion messages point at it. */
static void
show_bad_log(const struct daemon *d)
{
    char buf[8192];
    FILE *f = d->dir[0] ? fopen(d->log, "r") : NULL;
    if (!f)
        return;
    bool bad = false;
    while (fgets(buf, sizeof buf, f))
        bad |= strstr(buf, " error ") || strstr(buf, "runtime error") ||
               strstr(buf, "Sanitizer");
    if (bad && fseek(f, -(long)sizeof buf + 1, SEEK_END) != 0)
        rewind(f);
    size_t n = bad ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (bad)
        fprintf(stderr, "---- %s (end) ----\n%s\n----\n", d->log, buf);
    fclose(f);
}

static void
teardown(void)
{
    if (C) {
        redisFree(C);
        C = NULL;
    }
    show_bad_log(&D);
    show_bad_log(&D2);
    e2e_cleanup(&D);
    e2e_cleanup(&D2);
    for (size_t i = 0; i < nheldr; i++)
        freeReplyObject(heldr[i]);
    free(heldr);
    heldr = NULL;
    nheldr = capheldr = 0;
    for (size_t i = 0; i < nheld; i++)
        free(held[i]);
    free(held);
    held = NULL;
    nheld = capheld = 0;
}

static void
arm(void)
{
    static bool armed;
    if (!armed) {
        armed = true;
        atexit(teardown);
    }
}

/* Start the test's daemon with its default options and connect C. */
static void
start(void)
{
    e2e_start(&D, NULL);
    C = e2e_connect(&D);
}

/* The daemon's log, NUL-terminated (freed at teardown), or "". */
static const char *
daemon_log(const struct daemon *d)
{
    FILE *f = d->log[0] ? fopen(d->log, "r") : NULL;
    if (!f)
        return "";
    char *s = keep(malloc(1 << 20));
    cr_assert(s, "out of memory");
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* The end of every test: SIGTERM must stop the daemon with status 0 (the
   sanitizer build exits non-zero on a leak) and its log must hold no
   sanitizer report. */
static void
finish_one(struct daemon *d)
{
    if (d->pid <= 0)
        return;
    int st = e2e_stop(d);
    const char *log = daemon_log(d);
    size_t n = strlen(log);
    const char *tail = n > 3000 ? log + n - 3000 : log;
    cr_assert_eq(st, 0, "dispatchd exited with %d on SIGTERM; log:\n%s", st,
                 tail);
    cr_assert(!strstr(log, "runtime error") && !strstr(log, "Sanitizer"),
              "sanitizer report in the daemon log:\n%s", tail);
}

static void
finish(void)
{
    if (C) {
        redisFree(C);
        C = NULL;
    }
    finish_one(&D);
    finish_one(&D2);
}

TestSuite(cmd, .init = arm, .fini = teardown, .timeout = 120);
TestSuite(srv, .init = arm, .fini = teardown, .timeout = 180);

/* ---- hiredis helpers ------------------------------------------------ */

static redisReply *
vrun(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(c, fmt, ap);
    cr_assert(r, "command '%s' failed: %s", fmt, c->errstr);
    return keepr(r);
}

/* Run a command on C; the reply is freed at teardown. */
static redisReply *
R(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vrun(C, fmt, ap);
    va_end(ap);
    return r;
}

static redisReply *
Rc(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vrun(c, fmt, ap);
    va_end(ap);
    return r;
}

/* want is "+TEXT" (a status equal to TEXT) or "-CODE..." (an error that
   starts with CODE...). */
static void
check_reply(const redisReply *r, const char *want, const char *what)
{
    if (want[0] == '+') {
        cr_assert(r->type == REDIS_REPLY_STATUS,
                  "'%s': reply type %d (%s), want status %s", what, r->type,
                  r->type == REDIS_REPLY_ERROR ? r->str : "-", want);
        cr_assert_str_eq(r->str, want + 1, "'%s': got +%s, want %s", what,
                         r->str, want);
    } else {
        cr_assert(r->type == REDIS_REPLY_ERROR,
                  "'%s': reply type %d (%s), want error %s", what, r->type,
                  r->type == REDIS_REPLY_STATUS ? r->str : "-", want);
        cr_assert(strncmp(r->str, want + 1, strlen(want + 1)) == 0,
                  "'%s': got -%s, want %s...", what, r->str, want);
    }
}

static void
expect_on(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vrun(c, fmt, ap);
    va_end(ap);
    check_reply(r, want, fmt);
}

static void
expect(const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vrun(C, fmt, ap);
    va_end(ap);
    check_reply(r, want, fmt);
}

static bool
has(const redisReply *r, const char *k)
{
    return e2e_field(r, k) != NULL;
}

/* Field k of an order (or stats) reply, which must be a bulk string. */
static const char *
fs(const redisReply *r, const char *k)
{
    const redisReply *v = e2e_field(r, k);
    cr_assert(v, "field '%s' missing", k);
    cr_assert(v->type == REDIS_REPLY_STRING, "field '%s' has type %d", k,
              v->type);
    return v->str;
}

/* Field k, which must be an integer reply. */
static long long
fi(const redisReply *r, const char *k)
{
    const redisReply *v = e2e_field(r, k);
    cr_assert(v, "field '%s' missing", k);
    cr_assert(v->type == REDIS_REPLY_INTEGER, "field '%s' has type %d", k,
              v->type);
    return v->integer;
}

static redisReply *
get(const char *id)
{
    redisReply *r = R("GET %s", id);
    cr_assert(r->type == REDIS_REPLY_ARRAY, "GET %s: type %d (%s)", id, r->type,
              r->type == REDIS_REPLY_ERROR ? r->str : "-");
    cr_assert(r->elements % 2 == 0, "GET %s: odd field array", id);
    return r;
}

static const char *
state(const char *id)
{
    return fs(get(id), "state");
}

/* The ISO 8601 form the daemon writes: UTC with milliseconds. */
static const char *
iso(long long ms)
{
    char *buf = keep(malloc(40));
    cr_assert(buf);
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 40 - n, ".%03lldZ", ms % 1000);
    return buf;
}

/* The ids of an array of order maps (PEEK), joined by spaces. */
static const char *
ids(const redisReply *r)
{
    cr_assert(r->type == REDIS_REPLY_ARRAY, "not an array: type %d", r->type);
    char *s = keep(calloc(1, r->elements * 70 + 1));
    cr_assert(s);
    for (size_t i = 0; i < r->elements; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, fs(r->element[i], "id"));
    }
    return s;
}

static void
push_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vrun(C, fmt, ap);
    va_end(ap);
    check_reply(r, "+OK", fmt);
}

/* Wait (bounded, not timed) until STATS field k equals want. */
static void
wait_stat(const char *k, long long want)
{
    long long v = -1;
    for (int i = 0; i < 500; i++) {
        v = fi(R("STATS"), k);
        if (v == want)
            return;
        e2e_sleep_ms(10);
    }
    cr_assert_fail("STATS %s stayed %lld, want %lld", k, v, want);
}

/* Send everything appended to c without reading. */
static void
flush_out(redisContext *c)
{
    int done = 0;
    do {
        cr_assert(redisBufferWrite(c, &done) == REDIS_OK, "write: %s",
                  c->errstr);
    } while (!done);
}

/* ---- raw socket helpers --------------------------------------------- */

struct raw {
    int fd;
    char *buf;
    size_t len, cap;
};

static int
raw_fd(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
              "connect %d: %s", port, strerror(errno));
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static struct raw *
raw_open(int port)
{
    struct raw *r = keep(calloc(1, sizeof *r));
    cr_assert(r);
    r->fd = raw_fd(port);
    return r;
}

static void
raw_close(struct raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

static void
send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        cr_assert(k > 0, "send: %s", strerror(errno));
        s += k;
        n -= (size_t)k;
    }
}

static void
raw_send(struct raw *r, const char *s)
{
    send_all(r->fd, s, strlen(s));
}

/* Read more into r->buf; returns the bytes read, 0 at EOF. */
static size_t
raw_fill(struct raw *r)
{
    if (r->cap - r->len < 65536) {
        r->cap = r->cap ? 2 * r->cap : 131072;
        r->buf = realloc(r->buf, r->cap + 1);
        cr_assert(r->buf, "out of memory");
    }
    for (;;) {
        ssize_t k = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno == ECONNRESET)
            return 0;
        cr_assert(k >= 0, "recv: %s",
                  errno == EAGAIN ? "timed out (10 s)" : strerror(errno));
        r->len += (size_t)k;
        r->buf[r->len] = '\0';
        return (size_t)k;
    }
}

/* Bytes of the first complete RESP2/RESP3 value in p[0..len), 0 when it
   is not complete yet. */
static size_t
rskip(const char *p, size_t len)
{
    if (len == 0)
        return 0;
    const char *cr = memmem(p, len, "\r\n", 2);
    if (!cr)
        return 0;
    size_t line = (size_t)(cr + 2 - p);
    long long n = atoll(p + 1);
    switch (p[0]) {
    case '+':
    case '-':
    case ':':
    case '_':
    case ',':
    case '#':
    case '(':
        return line;
    case '$':
    case '!':
    case '=':
        if (n < 0)
            return line;
        return len < line + (size_t)n + 2 ? 0 : line + (size_t)n + 2;
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
        if (n < 0)
            return line;
        long long k = p[0] == '%' || p[0] == '|' ? 2 * n : n;
        size_t off = line;
        for (long long i = 0; i < k; i++) {
            size_t s = rskip(p + off, len - off);
            if (!s)
                return 0;
            off += s;
        }
        return off;
    }
    default:
        cr_assert_fail("bad RESP type byte 0x%02x", (unsigned char)p[0]);
    }
    return 0;
}

/* The next whole reply, NUL-terminated (freed at teardown). */
static const char *
raw_reply(struct raw *r)
{
    size_t n;
    while ((n = rskip(r->buf, r->len)) == 0)
        cr_assert(raw_fill(r) > 0, "connection closed, have '%.*s'",
                  (int)(r->len > 200 ? 200 : r->len), r->buf ? r->buf : "");
    char *s = keep(malloc(n + 1));
    cr_assert(s);
    memcpy(s, r->buf, n);
    s[n] = '\0';
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
    return s;
}

/* Send a command line and return its reply. */
static const char *
raw_cmd(struct raw *r, const char *line)
{
    raw_send(r, line);
    return raw_reply(r);
}

/* The peer closes after sending nothing more. */
static void
raw_expect_eof(struct raw *r)
{
    while (raw_fill(r) > 0)
        ;
    cr_assert(r->len == 0, "unexpected bytes before close: '%.*s'",
              (int)(r->len > 200 ? 200 : r->len), r->buf);
}

static void
prefix_eq(const char *got, const char *want, const char *what)
{
    cr_assert(strncmp(got, want, strlen(want)) == 0,
              "%s: got '%.*s', want prefix '%s'", what,
              (int)(strlen(got) > 300 ? 300 : strlen(got)), got, want);
}

static void
contains(const char *got, const char *want, const char *what)
{
    cr_assert(strstr(got, want), "%s: '%.*s' lacks '%s'", what,
              (int)(strlen(got) > 600 ? 600 : strlen(got)), got, want);
}

/* ---- PUSH ----------------------------------------------------------- */

Test(cmd, push_every_option_shows_in_get)
{
    start();
    push_ok("PUSH RD20251127-0892 rush4h DEADLINE 2030-01-26T14:00:00+08:00 "
            "WAREHOUSE hz1 CUSTOMER shenwo SOURCE ecommerce FULFIL "
            "to_drawing RISK new_customer,overdue_90d ATTR drawing_version "
            "v3.2 ATTR packaging moisture-proof");
    redisReply *g = get("RD20251127-0892");
    cr_assert_str_eq(fs(g, "id"), "RD20251127-0892");
    cr_assert_str_eq(fs(g, "class"), "rush4h");
    cr_assert_str_eq(fs(g, "effective_class"), "rush4h");
    cr_assert_str_eq(fs(g, "state"), "new");
    cr_assert_str_eq(fs(g, "warehouse"), "hz1");
    cr_assert_str_eq(fs(g, "customer"), "shenwo");
    cr_assert_str_eq(fs(g, "source"), "ecommerce");
    cr_assert_str_eq(fs(g, "fulfil"), "to_drawing");
    cr_assert_str_eq(fs(g, "risk"), "new_customer,overdue_90d");
    cr_assert_eq(fi(g, "deadline"), 1895637600000LL);
    cr_assert_str_eq(fs(g, "deadline_iso"), "2030-01-26T06:00:00.000Z");
    fi(g, "created");
    cr_assert_str_eq(fs(g, "created_iso"), iso(fi(g, "created")));
    fi(g, "updated");
    fi(g, "seq");
    const redisReply *a = e2e_field(g, "attrs");
    cr_assert(a && a->type == REDIS_REPLY_ARRAY && a->elements == 4,
              "attrs: want a map of 2");
    cr_assert_str_eq(fs(a, "drawing_version"), "v3.2");
    cr_assert_str_eq(fs(a, "packaging"), "moisture-proof");
    cr_assert(!has(g, "position"), "a new order has no position");
    cr_assert(!has(g, "lease"), "a new order has no lease");

    /* Epoch milliseconds, FULFILL spelling, words in any case, APPROVED. */
    push_ok("push e1 NORMAL deadline 1895637600123 fulfill VMI source "
            "Aftersales risk high_returns approved");
    g = get("e1");
    cr_assert_eq(fi(g, "deadline"), 1895637600123LL);
    cr_assert_str_eq(fs(g, "deadline_iso"), "2030-01-26T06:00:00.123Z");
    cr_assert_str_eq(fs(g, "class"), "normal");
    cr_assert_str_eq(fs(g, "fulfil"), "vmi");
    cr_assert_str_eq(fs(g, "source"), "aftersales");
    cr_assert_str_eq(fs(g, "risk"), "high_returns");
    cr_assert_str_eq(fs(g, "state"), "queued");
    /* An ISO time with Z and a fraction. */
    push_ok("PUSH e2 rush24h DEADLINE 2030-01-26T06:00:00.5Z");
    cr_assert_eq(fi(get("e2"), "deadline"), 1895637600500LL);
    finish();
}

Test(cmd, push_defaults)
{
    start();
    long long t0 = e2e_now_ms();
    push_ok("PUSH d4 rush4h");
    push_ok("PUSH d24 rush24h");
    push_ok("PUSH dn normal");
    long long t1 = e2e_now_ms();
    const struct {
        const char *id;
        long long after;
    } want[] = {
        {"d4", 4 * HOUR_MS}, {"d24", 24 * HOUR_MS}, {"dn", 72 * HOUR_MS}};
    for (size_t i = 0; i < 3; i++) {
        redisReply *g = get(want[i].id);
        long long dl = fi(g, "deadline");
        cr_assert(dl >= t0 + want[i].after && dl <= t1 + want[i].after,
                  "%s: deadline %lld not now+%lld", want[i].id, dl,
                  want[i].after);
        cr_assert_str_eq(fs(g, "deadline_iso"), iso(dl));
        cr_assert_str_eq(fs(g, "warehouse"), "main");
        cr_assert_str_eq(fs(g, "state"), "new");
        cr_assert_str_eq(fs(g, "source"), "dealer");
        cr_assert_str_eq(fs(g, "fulfil"), "stock");
        cr_assert_str_eq(fs(g, "risk"), "");
        cr_assert_str_eq(fs(g, "customer"), "");
        const redisReply *a = e2e_field(g, "attrs");
        cr_assert(a && a->type == REDIS_REPLY_ARRAY && a->elements == 0);
    }
    finish();
}

Test(cmd, push_repeat_is_ok_and_different_content_exists)
{
    start();
    push_ok("PUSH i1 normal DEADLINE 1895637600000 CUSTOMER acme ATTR k v");
    push_ok("PUSH i1 normal DEADLINE 1895637600000 CUSTOMER acme ATTR k v");
    expect("-EXISTS", "PUSH i1 normal DEADLINE 1895637600000 CUSTOMER other "
                      "ATTR k v");
    expect("-EXISTS", "PUSH i1 rush4h DEADLINE 1895637600000 CUSTOMER acme "
                      "ATTR k v");
    expect("-EXISTS", "PUSH i1 normal DEADLINE 1895637600001 CUSTOMER acme "
                      "ATTR k v");
    expect("-EXISTS", "PUSH i1 normal DEADLINE 1895637600000 CUSTOMER acme "
                      "ATTR k w");
    cr_assert_str_eq(fs(get("i1"), "customer"), "acme");

    /* A repeat after the order moved on changes nothing. */
    push_ok("APPROVE i1");
    push_ok("PUSH i1 normal DEADLINE 1895637600000 CUSTOMER acme ATTR k v");
    cr_assert_str_eq(state("i1"), "queued");

    /* A repeat of a push that took its deadline from the class default:
       the ERP sends the same message again a little later. */
    push_ok("PUSH i2 rush4h CUSTOMER acme");
    long long dl = fi(get("i2"), "deadline");
    e2e_sleep_ms(30);
    push_ok("PUSH i2 rush4h CUSTOMER acme");
    cr_assert_eq(fi(get("i2"), "deadline"), dl);
    finish();
}

Test(cmd, push_bad_arguments)
{
    start();
    expect("-BADARG", "PUSH b1 urgent");
    expect("-BADARG", "PUSH b1 normal COLOUR red");
    expect("-BADARG", "PUSH b1 normal CUSTOMER");
    expect("-BADARG", "PUSH b1 normal DEADLINE");
    expect("-BADARG", "PUSH b1 normal ATTR k");
    expect("-BADARG", "PUSH b1 normal ATTR");
    expect("-BADARG", "PUSH b1 normal SOURCE mars");
    expect("-BADARG", "PUSH b1 normal FULFIL teleport");
    expect("-BADARG", "PUSH b1 normal RISK new_customer,lucky");
    expect("-BADARG", "PUSH b1 normal DEADLINE tomorrow");
    expect("-BADARG", "PUSH b1 normal DEADLINE 2030-13-45T99:00:00Z");
    expect("-BADARG", "PUSH b1 normal WAREHOUSE %s", "");
    expect("-BADARG", "PUSH %s normal", "");
    char longid[100];
    memset(longid, 'x', 65);
    longid[65] = '\0';
    expect("-BADARG", "PUSH %s normal", longid);
    expect("-ERR wrong number of arguments", "PUSH b1");
    expect("-ERR wrong number of arguments", "PUSH");
    /* Bounds: 32 attributes of at most 1 KiB each. */
    const char *argv[3 + 2 * 3 * 33];
    size_t argc = 0;
    argv[argc++] = "PUSH";
    argv[argc++] = "b1";
    argv[argc++] = "normal";
    char keys[33][8];
    for (int i = 0; i < 33; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        argv[argc++] = "ATTR";
        argv[argc++] = keys[i];
        argv[argc++] = "v";
    }
    check_reply(keepr(redisCommandArgv(C, (int)argc, argv, NULL)), "-BADARG",
                "PUSH with 33 attributes");
    check_reply(keepr(redisCommandArgv(C, (int)argc - 3, argv, NULL)), "+OK",
                "PUSH with 32 attributes");
    cr_assert_eq(e2e_field(get("b1"), "attrs")->elements, 64);
    char *val = keep(malloc(1026));
    cr_assert(val);
    memset(val, 'v', 1025);
    val[1025] = '\0';
    expect("-BADARG", "PUSH b2 normal ATTR k %s", val);
    val[1024] = '\0';
    push_ok("PUSH b2 normal ATTR k %s", val);
    /* A repeated key keeps the last value. */
    push_ok("PUSH b3 normal ATTR k first ATTR k last");
    cr_assert_str_eq(fs(e2e_field(get("b3"), "attrs"), "k"), "last");
    expect("-BADARG", "PUSH b4 normal DEADLINE 0");
    /* None of them created the order. */
    expect("-NOTFOUND", "GET b4");
    /* A 64-byte id is fine. */
    longid[64] = '\0';
    push_ok("PUSH %s normal", longid);
    finish();
}

Test(cmd, push_intake_rules)
{
    start();
    expect("-BADARG", "PUSH a1 asn DEADLINE 1895637600000");
    expect("-BADARG", "PUSH a1 asn DEADLINE 1895637600000 ATTR asn_number "
                      "ASN-77");
    expect("-BADARG", "PUSH a1 asn DEADLINE 1895637600000 ATTR "
                      "tech_agreement TA-9");
    /* asn needs a deadline: no class default. */
    expect("-BADARG", "PUSH a1 asn ATTR asn_number ASN-77 ATTR "
                      "tech_agreement TA-9");
    expect("-NOTFOUND", "GET a1");
    push_ok("PUSH a1 asn DEADLINE 1895637600000 ATTR asn_number ASN-77 "
            "ATTR tech_agreement TA-9");
    cr_assert_str_eq(fs(get("a1"), "class"), "asn");

    expect("-BADARG", "PUSH t1 normal FULFIL to_drawing");
    expect("-BADARG", "PUSH t1 normal FULFIL to_drawing ATTR other x");
    expect("-NOTFOUND", "GET t1");
    push_ok("PUSH t1 normal FULFIL to_drawing ATTR drawing_version D-12");
    cr_assert_str_eq(fs(get("t1"), "fulfil"), "to_drawing");
    finish();
}

/* ---- ERP transitions ------------------------------------------------ */

Test(cmd, approve_hold_cancel)
{
    start();
    push_ok("PUSH s1 normal");
    push_ok("APPROVE s1");
    cr_assert_str_eq(state("s1"), "queued");
    expect("-BADSTATE order s1 is queued, cannot approve", "APPROVE s1");
    push_ok("HOLD s1 credit check failed");
    cr_assert_str_eq(state("s1"), "held");
    expect("-BADSTATE order s1 is held, cannot hold", "HOLD s1");
    push_ok("APPROVE s1");
    cr_assert_str_eq(state("s1"), "queued");

    push_ok("PUSH s2 normal");
    push_ok("HOLD s2");
    cr_assert_str_eq(state("s2"), "held");
    push_ok("CANCEL s2 customer withdrew");
    cr_assert_str_eq(state("s2"), "cancelled");
    expect("-BADSTATE order s2 is cancelled, cannot cancel", "CANCEL s2");
    expect("-BADSTATE order s2 is cancelled, cannot approve", "APPROVE s2");
    expect("-BADSTATE order s2 is cancelled, cannot hold", "HOLD s2");

    /* new -> cancelled, queued -> cancelled, picking -> cancelled. */
    push_ok("PUSH s3 normal");
    push_ok("CANCEL s3");
    push_ok("CANCEL s1");
    cr_assert_str_eq(state("s1"), "cancelled");
    push_ok("PUSH s4 normal WAREHOUSE w4 APPROVED");
    redisReply *n = R("NEXT w4");
    cr_assert_str_eq(fs(n, "id"), "s4");
    expect("-BADSTATE order s4 is picking, cannot hold", "HOLD s4");
    expect("-BADSTATE order s4 is picking, cannot approve", "APPROVE s4");
    push_ok("CANCEL s4");
    cr_assert_str_eq(state("s4"), "cancelled");
    cr_assert(!has(get("s4"), "lease"));

    /* A finished order names its state. */
    push_ok("PUSH s5 normal APPROVED");
    push_ok("OUTBOUND s5 OPERATOR wang");
    expect("-BADSTATE order s5 is shipped, cannot approve", "APPROVE s5");
    expect("-BADSTATE order s5 is shipped, cannot cancel", "CANCEL s5");
    expect("-BADSTATE order s5 is shipped, cannot hold", "HOLD s5");

    expect("-NOTFOUND", "APPROVE nope");
    expect("-NOTFOUND", "HOLD nope");
    expect("-NOTFOUND", "CANCEL nope");
    expect("-ERR wrong number of arguments", "APPROVE");
    finish();
}

Test(cmd, reprio)
{
    start();
    long long t = e2e_now_ms();
    push_ok("PUSH ra normal WAREHOUSE wr DEADLINE %lld APPROVED",
            t + 48 * HOUR_MS);
    push_ok("PUSH rb normal WAREHOUSE wr DEADLINE %lld APPROVED",
            t + 49 * HOUR_MS);
    push_ok("PUSH rc normal WAREHOUSE wr DEADLINE %lld APPROVED",
            t + 50 * HOUR_MS);
    cr_assert_str_eq(ids(R("PEEK wr")), "ra rb rc");
    push_ok("REPRIO rc rush4h DEADLINE %lld", t + 3 * HOUR_MS);
    cr_assert_str_eq(ids(R("PEEK wr")), "rc ra rb");
    redisReply *g = get("rc");
    cr_assert_str_eq(fs(g, "class"), "rush4h");
    cr_assert_eq(fi(g, "deadline"), t + 3 * HOUR_MS);
    cr_assert_eq(fi(g, "position"), 0);
    /* Without a deadline the old one stays. */
    push_ok("REPRIO rb rush24h");
    g = get("rb");
    cr_assert_str_eq(fs(g, "class"), "rush24h");
    cr_assert_eq(fi(g, "deadline"), t + 49 * HOUR_MS);
    cr_assert_str_eq(ids(R("PEEK wr")), "rc rb ra");
    /* A new order keeps its state. */
    push_ok("PUSH rn normal");
    push_ok("REPRIO rn rush24h");
    g = get("rn");
    cr_assert_str_eq(fs(g, "state"), "new");
    cr_assert_str_eq(fs(g, "class"), "rush24h");

    expect("-BADARG", "REPRIO ra urgent");
    expect("-BADARG", "REPRIO ra rush4h DEADLINE soon");
    expect("-BADARG", "REPRIO ra rush4h DEADLINE");
    expect("-BADARG", "REPRIO ra rush4h LATER 5");
    expect("-NOTFOUND", "REPRIO nope rush4h");
    expect("-ERR wrong number of arguments", "REPRIO ra");
    push_ok("OUTBOUND ra OPERATOR wang");
    expect("-BADSTATE order ra is shipped, cannot reprioritise",
           "REPRIO ra rush4h");
    finish();
}

/* ---- WMS ------------------------------------------------------------ */

Test(cmd, next_order_fields_and_pick_order)
{
    start();
    /* Empty: nil without BLOCK. */
    redisReply *n = R("NEXT main");
    cr_assert(n->type == REDIS_REPLY_NIL, "NEXT on empty: type %d", n->type);

    /* Deadlines outside every escalation window, so the pushed class is
       the effective one. */
    long long t = e2e_now_ms();
    push_ok("PUSH n1 normal DEADLINE %lld APPROVED", t + 48 * HOUR_MS);
    push_ok("PUSH r24 rush24h DEADLINE %lld APPROVED", t + 20 * HOUR_MS);
    push_ok("PUSH r4a rush4h DEADLINE %lld APPROVED", t + 3 * HOUR_MS);
    push_ok("PUSH r4b rush4h DEADLINE %lld APPROVED", t + 2 * HOUR_MS);
    push_ok("PUSH n2 normal DEADLINE %lld APPROVED", t + 48 * HOUR_MS);
    push_ok("PUSH a1 asn DEADLINE %lld ATTR asn_number A1 ATTR "
            "tech_agreement T1 APPROVED",
            t + 50 * HOUR_MS);
    push_ok("PUSH unapproved rush4h DEADLINE %lld", t + HOUR_MS);
    cr_assert_str_eq(ids(R("PEEK main")), "a1 r4b r4a r24 n1 n2");

    expect("+OK", "CLIENT SETNAME term-3");
    long long t0 = e2e_now_ms();
    n = R("NEXT main");
    long long t1 = e2e_now_ms();
    cr_assert(n->type == REDIS_REPLY_ARRAY, "NEXT: type %d", n->type);
    cr_assert_str_eq(fs(n, "id"), "a1");
    cr_assert_str_eq(fs(n, "state"), "picking");
    cr_assert_str_eq(fs(n, "class"), "asn");
    cr_assert_str_eq(fs(n, "picker"), "term-3");
    const char *lease = fs(n, "lease");
    cr_assert(lease[0] && strspn(lease, "0123456789") == strlen(lease),
              "lease '%s' is not a number", lease);
    long long exp = fi(n, "lease_expires");
    cr_assert(exp >= t0 + 300000 && exp <= t1 + 300000,
              "default lease: expires %lld, want now+300 s", exp);
    cr_assert_str_eq(fs(n, "lease_expires_iso"), iso(exp));
    long long picked = fi(n, "picked_at");
    cr_assert(picked >= t0 && picked <= t1);
    cr_assert(!has(n, "position"));
    const redisReply *a = e2e_field(n, "attrs");
    cr_assert(a && a->elements == 4);

    /* GET shows the same lease. */
    redisReply *g = get("a1");
    cr_assert_str_eq(fs(g, "lease"), lease);
    cr_assert_eq(fi(g, "lease_expires"), exp);
    cr_assert_str_eq(fs(g, "picker"), "term-3");

    n = R("NEXT main PICKER wang LEASE 60");
    cr_assert_str_eq(fs(n, "id"), "r4b");
    cr_assert_str_eq(fs(n, "picker"), "wang");
    cr_assert(strcmp(fs(n, "lease"), lease) != 0, "two orders, one lease");
    long long e2 = fi(n, "lease_expires");
    cr_assert(e2 >= t0 + 60000 && e2 <= e2e_now_ms() + 60000);
    /* A lease longer than the maximum (1 h by default) is capped. */
    n = R("NEXT main LEASE 7200");
    cr_assert_str_eq(fs(n, "id"), "r4a");
    cr_assert(fi(n, "lease_expires") <= e2e_now_ms() + 3600 * 1000,
              "LEASE 7200 was not capped at the 1 h maximum");
    /* Without a name the picker is named after the connection. */
    redisContext *c2 = e2e_connect(&D);
    redisReply *id = Rc(c2, "CLIENT ID");
    n = Rc(c2, "NEXT main");
    redisFree(c2);
    char want[64];
    snprintf(want, sizeof want, "client-%lld", id->integer);
    cr_assert_str_eq(fs(n, "id"), "r24");
    cr_assert_str_eq(fs(n, "picker"), want);
    cr_assert_str_eq(fs(R("NEXT main"), "id"), "n1");
    cr_assert_str_eq(fs(R("NEXT main"), "id"), "n2");
    /* Only the unapproved order is left. */
    n = R("NEXT main");
    cr_assert(n->type == REDIS_REPLY_NIL);
    n = R("NEXT elsewhere");
    cr_assert(n->type == REDIS_REPLY_NIL);

    expect("-BADARG", "NEXT main LEASE 0");
    expect("-BADARG", "NEXT main LEASE -5");
    expect("-BADARG", "NEXT main LEASE soon");
    expect("-BADARG", "NEXT main BLOCK -1");
    expect("-BADARG", "NEXT main LEASE");
    expect("-BADARG", "NEXT main FAST 1");
    expect("-BADARG", "NEXT %s", "");
    expect("-ERR wrong number of arguments", "NEXT");
    finish();
}

Test(cmd, next_block)
{
    start();
    long long t0 = e2e_now_ms();
    redisReply *n = R("NEXT bw BLOCK 150");
    cr_assert(n->type == REDIS_REPLY_NIL, "NEXT BLOCK timeout: type %d",
              n->type);
    cr_assert(e2e_now_ms() - t0 >= 100, "BLOCK 150 returned at once");

    redisContext *p = e2e_connect(&D);
    cr_assert(redisAppendCommand(p, "NEXT bw BLOCK 0 PICKER li LEASE 90") ==
              REDIS_OK);
    flush_out(p);
    wait_stat("blocked_clients", 1);
    t0 = e2e_now_ms();
    push_ok("PUSH b1 normal WAREHOUSE bw APPROVED");
    redisReply *r = NULL;
    cr_assert(redisGetReply(p, (void **)&r) == REDIS_OK, "blocked NEXT: %s",
              p->errstr);
    keepr(r);
    cr_assert(r->type == REDIS_REPLY_ARRAY, "blocked NEXT: type %d", r->type);
    cr_assert_str_eq(fs(r, "id"), "b1");
    cr_assert_str_eq(fs(r, "picker"), "li");
    cr_assert(fi(r, "lease_expires") >= t0 + 90000);
    cr_assert_str_eq(state("b1"), "picking");
    wait_stat("blocked_clients", 0);
    /* The woken connection keeps working. */
    expect_on(p, "+PONG", "PING");
    redisFree(p);

    /* Two blocked pickers: each order wakes one, the longest waiting. */
    redisContext *a = e2e_connect(&D), *b = e2e_connect(&D);
    cr_assert(redisAppendCommand(a, "NEXT bw BLOCK 0 PICKER first") ==
              REDIS_OK);
    flush_out(a);
    wait_stat("blocked_clients", 1);
    cr_assert(redisAppendCommand(b, "NEXT bw BLOCK 0 PICKER second") ==
              REDIS_OK);
    flush_out(b);
    wait_stat("blocked_clients", 2);
    push_ok("PUSH b2 normal WAREHOUSE bw APPROVED");
    r = NULL;
    cr_assert(redisGetReply(a, (void **)&r) == REDIS_OK);
    keepr(r);
    cr_assert_str_eq(fs(r, "id"), "b2");
    cr_assert_str_eq(fs(r, "picker"), "first");
    wait_stat("blocked_clients", 1);
    push_ok("PUSH b3 normal WAREHOUSE bw APPROVED");
    r = NULL;
    cr_assert(redisGetReply(b, (void **)&r) == REDIS_OK);
    keepr(r);
    cr_assert_str_eq(fs(r, "id"), "b3");
    cr_assert_str_eq(fs(r, "picker"), "second");
    redisFree(a);
    redisFree(b);

    /* Commands pipelined behind a blocked NEXT wait their turn. */
    struct raw *x = raw_open(D.port);
    raw_send(x, "NEXT bw BLOCK 0\r\nECHO after\r\nNEXT bw BLOCK 30\r\n"
                "ECHO timeout\r\n");
    wait_stat("blocked_clients", 1);
    push_ok("PUSH b4 normal WAREHOUSE bw APPROVED");
    const char *o = raw_reply(x);
    prefix_eq(o, "*", "blocked NEXT");
    contains(o, "$2\r\nb4\r\n", "blocked NEXT");
    cr_assert_str_eq(raw_reply(x), "$5\r\nafter\r\n");
    cr_assert_str_eq(raw_reply(x), "*-1\r\n");
    cr_assert_str_eq(raw_reply(x), "$7\r\ntimeout\r\n");
    raw_close(x);
    finish();
}

Test(cmd, blocked_picker_that_leaves_gets_nothing)
{
    start();
    redisContext *p = e2e_connect(&D);
    cr_assert(redisAppendCommand(p, "NEXT gone BLOCK 0 PICKER li") == REDIS_OK);
    flush_out(p);
    wait_stat("blocked_clients", 1);
    redisFree(p);
    /* Give the daemon a moment to see the close (not asserted: what
       matters is where the next order goes). */
    for (int i = 0; i < 100 && fi(R("STATS"), "blocked_clients") != 0; i++)
        e2e_sleep_ms(10);
    push_ok("PUSH left normal WAREHOUSE gone APPROVED");
    redisReply *g = get("left");
    cr_assert(strcmp(fs(g, "state"), "queued") == 0,
              "order 'left' is %s, picker '%s': leased to a picker whose "
              "connection had closed while blocked in NEXT",
              fs(g, "state"), has(g, "picker") ? fs(g, "picker") : "");
    cr_assert_str_eq(fs(R("NEXT gone"), "id"), "left");
    finish();
}

Test(cmd, sigterm_with_blocked_picker_and_subscriber)
{
    start();
    struct raw *p = raw_open(D.port);
    raw_send(p, "NEXT none BLOCK 0\r\n");
    struct raw *s = raw_open(D.port);
    prefix_eq(raw_cmd(s, "SUBSCRIBE events\r\n"), "*3\r\n", "SUBSCRIBE");
    wait_stat("blocked_clients", 1);
    redisFree(C);
    C = NULL;
    int st = e2e_stop(&D);
    cr_assert_eq(st, 0, "exit status %d with a blocked picker", st);
    /* Both connections end; nothing half-written. */
    while (raw_fill(p) > 0)
        ;
    cr_assert(p->len == 0 || rskip(p->buf, p->len) == p->len,
              "blocked picker got a partial reply");
    while (raw_fill(s) > 0)
        ;
    raw_close(p);
    raw_close(s);
    /* The data directory opens again. */
    start();
    expect("+PONG", "PING");
    finish();
}

Test(cmd, escalation_shows_in_get)
{
    start();
    /* Due in an hour: inside the normal (24 h) and rush24h (4 h) windows
       (pickq.h defaults), but an order escalates one class up at most. */
    long long t = e2e_now_ms();
    push_ok("PUSH late normal DEADLINE %lld APPROVED", t + HOUR_MS);
    push_ok("PUSH early rush24h DEADLINE %lld APPROVED", t + 20 * HOUR_MS);
    const char *eff = "";
    for (int i = 0; i < 300; i++) {
        eff = fs(get("late"), "effective_class");
        if (strcmp(eff, "rush24h") == 0)
            break;
        e2e_sleep_ms(10);
    }
    cr_assert_str_eq(eff, "rush24h", "normal order due in 1 h");
    redisReply *g = get("late");
    cr_assert_str_eq(fs(g, "class"), "normal");
    cr_assert_eq(fi(g, "position"), 0);
    cr_assert_str_eq(ids(R("PEEK main")), "late early");
    finish();
}

Test(cmd, touch_and_release)
{
    start();
    long long t = e2e_now_ms();
    push_ok("PUSH o1 normal DEADLINE %lld APPROVED", t + 30 * HOUR_MS);
    push_ok("PUSH o2 normal DEADLINE %lld APPROVED", t + 40 * HOUR_MS);
    redisReply *n = R("NEXT main LEASE 30");
    cr_assert_str_eq(fs(n, "id"), "o1");
    char lease[32];
    snprintf(lease, sizeof lease, "%s", fs(n, "lease"));

    long long t0 = e2e_now_ms();
    redisReply *r = R("TOUCH o1 %s LEASE 600", lease);
    long long t1 = e2e_now_ms();
    cr_assert(r->type == REDIS_REPLY_INTEGER, "TOUCH: type %d (%s)", r->type,
              r->type == REDIS_REPLY_ERROR ? r->str : "-");
    cr_assert(r->integer >= t0 + 600000 && r->integer <= t1 + 600000,
              "TOUCH LEASE 600: expiry %lld", r->integer);
    cr_assert_eq(fi(get("o1"), "lease_expires"), r->integer);
    r = R("TOUCH o1 %s", lease);
    cr_assert(r->type == REDIS_REPLY_INTEGER);
    cr_assert(r->integer >= t0 + 300000, "TOUCH: default lease");

    expect("-LEASE", "TOUCH o1 %s9", lease);
    expect("-LEASE", "TOUCH o2 %s", lease); /* queued: no lease */
    expect("-BADARG", "TOUCH o1 lease-1");
    expect("-BADARG", "TOUCH o1 %s LEASE", lease);
    expect("-NOTFOUND", "TOUCH nope 1");
    expect("-ERR wrong number of arguments", "TOUCH o1");
    expect("-LEASE", "RELEASE o1 %s9", lease);
    expect("-BADARG", "RELEASE o1 x");
    expect("-NOTFOUND", "RELEASE nope 1");
    cr_assert_str_eq(state("o1"), "picking");

    /* Released: back at its old place, the lease is dead. */
    push_ok("RELEASE o1 %s", lease);
    redisReply *g = get("o1");
    cr_assert_str_eq(fs(g, "state"), "queued");
    cr_assert_eq(fi(g, "position"), 0);
    cr_assert(!has(g, "lease"));
    cr_assert_eq(fi(get("o2"), "position"), 1);
    expect("-LEASE", "TOUCH o1 %s", lease);
    expect("-LEASE", "RELEASE o1 %s", lease);
    n = R("NEXT main");
    cr_assert_str_eq(fs(n, "id"), "o1");
    cr_assert(strcmp(fs(n, "lease"), lease) != 0, "a new lease is new");
    expect("-LEASE", "TOUCH o1 %s", lease);
    expect("-LEASE", "RELEASE o1 %s", lease);
    finish();
}

Test(cmd, outbound)
{
    start();
    push_ok("PUSH q1 normal APPROVED");
    push_ok("PUSH p1 normal WAREHOUSE wp APPROVED");
    push_ok("PUSH q2 normal APPROVED");
    push_ok("PUSH n1 normal");
    push_ok("PUSH c1 normal");
    push_ok("CANCEL c1");

    /* From queued: the WMS is the truth. */
    push_ok("OUTBOUND q1 OPERATOR wang AT 1895637600000 PHOTO ph-1");
    redisReply *g = get("q1");
    cr_assert_str_eq(fs(g, "state"), "shipped");
    cr_assert_str_eq(fs(g, "operator"), "wang");
    cr_assert_eq(fi(g, "outbound_leased"), 0);
    cr_assert_eq(fi(g, "outbound_at"), 1895637600000LL);
    cr_assert_str_eq(fs(g, "outbound_at_iso"), "2030-01-26T06:00:00.000Z");
    cr_assert(!has(g, "position"));
    expect("+ALREADY", "OUTBOUND q1 OPERATOR wang");
    expect("+ALREADY", "OUTBOUND q1 OPERATOR li RAW again");
    cr_assert_str_eq(fs(get("q1"), "operator"), "wang");

    /* From picking. */
    redisReply *n = R("NEXT wp");
    cr_assert_str_eq(fs(n, "id"), "p1");
    long long t0 = e2e_now_ms();
    push_ok("OUTBOUND p1 OPERATOR li");
    g = get("p1");
    cr_assert_str_eq(fs(g, "state"), "shipped");
    cr_assert_eq(fi(g, "outbound_leased"), 1);
    cr_assert(fi(g, "outbound_at") >= t0, "outbound_at defaults to now");
    cr_assert(!has(g, "lease"));
    expect("+ALREADY", "OUTBOUND p1 OPERATOR li");

    expect("-BADARG", "OUTBOUND q2");
    expect("-BADARG", "OUTBOUND q2 OPERATOR");
    expect("-BADARG", "OUTBOUND q2 OPERATOR %s", "");
    expect("-BADARG", "OUTBOUND q2 OPERATOR wang AT noon");
    expect("-BADARG", "OUTBOUND q2 OPERATOR wang SPEED 9");
    expect("-BADARG", "OUTBOUND q2 AT 1895637600000");
    cr_assert_str_eq(state("q2"), "queued");
    /* The WMS is the truth: an outbound lands from new and cancelled too,
       and the trail says what was odd. */
    push_ok("OUTBOUND n1 OPERATOR wang");
    cr_assert_str_eq(state("n1"), "shipped");
    push_ok("OUTBOUND c1 OPERATOR wang");
    cr_assert_str_eq(state("c1"), "shipped");
    redisReply *au = R("AUDIT c1");
    redisReply *last = au->element[au->elements - 1];
    cr_assert(strstr(fs(last, "note"), "shipped after it was cancelled"),
              "audit note: %s", fs(last, "note"));
    cr_assert_str_eq(fs(last, "from"), "cancelled");
    expect("-NOTFOUND", "OUTBOUND nope OPERATOR wang");
    expect("-ERR wrong number of arguments", "OUTBOUND");
    finish();
}

Test(cmd, deliver)
{
    start();
    push_ok("PUSH d1 normal APPROVED");
    push_ok("PUSH d2 normal APPROVED");
    push_ok("OUTBOUND d1 OPERATOR wang");
    push_ok("DELIVER d1 AT 1895637600000 RAW {\"signed\":\"zhang\"}");
    redisReply *g = get("d1");
    cr_assert_str_eq(fs(g, "state"), "delivered");
    cr_assert_eq(fi(g, "delivered_at"), 1895637600000LL);
    cr_assert_str_eq(fs(g, "delivered_at_iso"), "2030-01-26T06:00:00.000Z");
    cr_assert_str_eq(fs(g, "operator"), "wang");
    expect("+ALREADY", "DELIVER d1");
    expect("+ALREADY", "OUTBOUND d1 OPERATOR wang");
    expect("-BADSTATE order d1 is delivered, cannot cancel", "CANCEL d1");
    expect("-BADARG", "DELIVER d2 AT yesterday");
    /* A delivery before the outbound implies it: two entries. */
    push_ok("DELIVER d2 RAW {\"signed\":\"li\"}");
    cr_assert_str_eq(state("d2"), "delivered");
    redisReply *au = R("AUDIT d2");
    cr_assert_geq(au->elements, 3);
    redisReply *ob = au->element[au->elements - 2],
               *dv = au->element[au->elements - 1];
    cr_assert_str_eq(fs(ob, "action"), "outbound");
    cr_assert_str_eq(fs(ob, "from"), "queued");
    cr_assert_str_eq(fs(ob, "to"), "shipped");
    cr_assert_str_eq(fs(dv, "action"), "deliver");
    cr_assert_str_eq(fs(dv, "from"), "shipped");
    cr_assert_str_eq(fs(dv, "to"), "delivered");
    expect("-NOTFOUND", "DELIVER nope");
    expect("-ERR wrong number of arguments", "DELIVER");
    finish();
}

/* ---- readers -------------------------------------------------------- */

Test(cmd, get_position_eta_and_lease_fields)
{
    start();
    long long t = e2e_now_ms();
    push_ok("PUSH g1 normal WAREHOUSE gw DEADLINE %lld APPROVED",
            t + 30 * HOUR_MS);
    push_ok("PUSH g2 normal WAREHOUSE gw DEADLINE %lld APPROVED",
            t + 31 * HOUR_MS);
    push_ok("PUSH g3 normal WAREHOUSE gw DEADLINE %lld APPROVED",
            t + 32 * HOUR_MS);
    push_ok("PUSH g0 normal WAREHOUSE gw DEADLINE %lld", t + 29 * HOUR_MS);
    long long prev = -1;
    const char *q[] = {"g1", "g2", "g3"};
    for (int i = 0; i < 3; i++) {
        redisReply *g = get(q[i]);
        cr_assert_eq(fi(g, "position"), i, "%s position", q[i]);
        long long eta = fi(g, "eta_ms");
        cr_assert(eta >= 0 && eta >= prev, "%s eta_ms %lld after %lld", q[i],
                  eta, prev);
        prev = eta;
        long long at = fi(g, "eta");
        cr_assert(at >= t + eta, "%s: eta %lld, eta_ms %lld", q[i], at, eta);
        cr_assert_str_eq(fs(g, "eta_iso"), iso(at));
        cr_assert_str_eq(fs(g, "deadline_iso"), iso(fi(g, "deadline")));
    }
    redisReply *g = get("g0");
    cr_assert(!has(g, "position") && !has(g, "eta_ms") && !has(g, "eta"),
              "a new order is not in the queue");
    /* An approved order takes its place by deadline. */
    push_ok("APPROVE g0");
    cr_assert_eq(fi(get("g0"), "position"), 0);
    cr_assert_eq(fi(get("g3"), "position"), 3);
    redisReply *n = R("NEXT gw PICKER zhao");
    cr_assert_str_eq(fs(n, "id"), "g0");
    g = get("g0");
    cr_assert_str_eq(fs(g, "picker"), "zhao");
    fs(g, "lease");
    fi(g, "lease_expires");
    fs(g, "lease_expires_iso");
    fi(g, "picked_at");
    cr_assert(!has(g, "position"));
    cr_assert_eq(fi(get("g1"), "position"), 0);
    expect("-NOTFOUND", "GET nope");
    expect("-ERR wrong number of arguments", "GET");
    finish();
}

Test(cmd, peek)
{
    start();
    long long t = e2e_now_ms();
    char want[200] = "";
    for (int i = 0; i < 12; i++) {
        /* Pushed in reverse pick order. */
        push_ok("PUSH k%02d normal WAREHOUSE pk DEADLINE %lld APPROVED", 11 - i,
                t + (30 + 11 - i) * HOUR_MS);
    }
    for (int i = 0; i < 10; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%sk%02d",
                 i ? " " : "", i);
    cr_assert_str_eq(ids(R("PEEK pk")), want);
    cr_assert_str_eq(ids(R("PEEK pk COUNT 3")), "k00 k01 k02");
    cr_assert_eq(R("PEEK pk COUNT 1000")->elements, 12);
    redisReply *p = R("PEEK pk COUNT 1");
    cr_assert_str_eq(fs(p->element[0], "state"), "queued");
    cr_assert_eq(fi(p->element[0], "position"), 0);
    /* Nothing was leased. */
    cr_assert_str_eq(state("k00"), "queued");
    cr_assert_str_eq(fs(R("NEXT pk"), "id"), "k00");
    cr_assert_str_eq(ids(R("PEEK pk COUNT 2")), "k01 k02");
    p = R("PEEK nowhere");
    cr_assert(p->type == REDIS_REPLY_ARRAY && p->elements == 0);
    expect("-BADARG", "PEEK pk COUNT 0");
    expect("-BADARG", "PEEK pk COUNT 1001");
    expect("-BADARG", "PEEK pk COUNT many");
    expect("-BADARG", "PEEK pk COUNT");
    expect("-ERR wrong number of arguments", "PEEK");
    finish();
}

static const redisReply *
audit_entry(const redisReply *a, size_t i, const char *action, const char *from,
            const char *to, const char *actor)
{
    cr_assert(i < a->elements, "audit has %zu entries, want entry %zu",
              a->elements, i);
    const redisReply *e = a->element[i];
    cr_assert(e->type == REDIS_REPLY_ARRAY && e->elements == 18,
              "audit entry %zu: want a map of 9", i);
    cr_assert_eq(fi(e, "seq"), (long long)i, "audit entry %zu seq", i);
    cr_assert_str_eq(fs(e, "action"), action, "audit entry %zu", i);
    cr_assert_str_eq(fs(e, "from"), from, "audit entry %zu (%s)", i, action);
    cr_assert_str_eq(fs(e, "to"), to, "audit entry %zu (%s)", i, action);
    cr_assert_str_eq(fs(e, "actor"), actor, "audit entry %zu (%s)", i, action);
    cr_assert_str_eq(fs(e, "at_iso"), iso(fi(e, "at")));
    fs(e, "note");
    return e;
}

Test(cmd, audit_trail)
{
    start();
    expect("+OK", "CLIENT SETNAME erp-1");
    long long t0 = e2e_now_ms();
    push_ok("PUSH au1 rush4h CUSTOMER shenwo");
    push_ok("APPROVE au1");
    push_ok("HOLD au1 credit");
    push_ok("APPROVE au1");

    redisContext *w = e2e_connect(&D);
    expect_on(w, "+OK", "CLIENT SETNAME wms-7");
    redisReply *n = Rc(w, "NEXT main PICKER wang");
    cr_assert_str_eq(fs(n, "id"), "au1");
    char lease[32];
    snprintf(lease, sizeof lease, "%s", fs(n, "lease"));
    redisReply *r = Rc(w, "TOUCH au1 %s", lease);
    cr_assert(r->type == REDIS_REPLY_INTEGER);

    /* The WMS JSON, with quotes, UTF-8, CR LF and 2 KiB of padding: kept
       byte for byte. */
    char raw[3000];
    int k = snprintf(raw, sizeof raw,
                     "{\"order\":\"au1\",\"op\":\"wang\",\"note\":"
                     "\"\xe4\xb8\xa4\xe7\xae\xb1 \\\"fragile\\\"\"\r\n"
                     ",\"pad\":\"");
    memset(raw + k, 'p', 2048);
    snprintf(raw + k + 2048, sizeof raw - (size_t)k - 2048, "\"}");
    size_t rawlen = strlen(raw);
    r = Rc(w, "OUTBOUND au1 OPERATOR wang PHOTO ph-9 RAW %b", raw, rawlen);
    check_reply(r, "+OK", "OUTBOUND ... RAW");
    r = Rc(w, "OUTBOUND au1 OPERATOR wang RAW %s", "{\"retry\":1}");
    check_reply(r, "+ALREADY", "OUTBOUND repeat");
    redisFree(w);
    push_ok("DELIVER au1");

    redisReply *a = R("AUDIT au1");
    cr_assert(a->type == REDIS_REPLY_ARRAY, "AUDIT: type %d", a->type);
    cr_assert_eq(a->elements, 9, "AUDIT: %zu entries", a->elements);
    const redisReply *e = audit_entry(a, 0, "push", "", "new", "erp-1");
    cr_assert_str_eq(fs(e, "raw"), "PUSH au1 rush4h CUSTOMER shenwo");
    cr_assert(fi(e, "at") >= t0);
    e = audit_entry(a, 1, "approve", "new", "queued", "erp-1");
    cr_assert_str_eq(fs(e, "raw"), "APPROVE au1");
    e = audit_entry(a, 2, "hold", "queued", "held", "erp-1");
    cr_assert_str_eq(fs(e, "note"), "credit");
    audit_entry(a, 3, "approve", "held", "queued", "erp-1");
    e = audit_entry(a, 4, "next", "queued", "picking", "wms-7");
    contains(fs(e, "note"), "picker=wang", "next note");
    audit_entry(a, 5, "touch", "picking", "picking", "wms-7");
    e = audit_entry(a, 6, "outbound", "picking", "shipped", "wms-7");
    const redisReply *rv = e2e_field(e, "raw");
    cr_assert(rv->len == rawlen && memcmp(rv->str, raw, rawlen) == 0,
              "RAW payload not kept verbatim (%zu bytes, want %zu)", rv->len,
              rawlen);
    contains(fs(e, "note"), "photo=ph-9", "outbound note");
    e = audit_entry(a, 7, "outbound", "shipped", "shipped", "wms-7");
    cr_assert_str_eq(fs(e, "raw"), "{\"retry\":1}");
    contains(fs(e, "note"), "repeat", "repeated outbound note");
    audit_entry(a, 8, "deliver", "shipped", "delivered", "erp-1");
    long long prev = 0;
    for (size_t i = 0; i < a->elements; i++) {
        long long at = fi(a->element[i], "at");
        cr_assert(at >= prev, "audit times go back at entry %zu", i);
        prev = at;
    }
    /* Failed commands leave no entry. */
    expect("-BADSTATE", "APPROVE au1");
    cr_assert_eq(R("AUDIT au1")->elements, 9);
    expect("-NOTFOUND", "AUDIT nope");
    finish();
}

static const char *const stat_keys[] = {
    "new",
    "held",
    "queued",
    "picking",
    "shipped",
    "delivered",
    "cancelled",
    "picked",
    "queued_asn",
    "queued_rush4h",
    "queued_rush24h",
    "queued_normal",
    "pushes",
    "approvals",
    "picks",
    "releases",
    "outbounds",
    "outbounds_unleased",
    "deliveries",
    "cancels",
    "lease_expiries",
    "escalations",
    "queue_jumps",
    "picked_reports",
    "unconfirmed",
    "outbounds_anomalous",
    "lease_revocations",
    "mean_pick_ms",
    "warehouses",
    "connected_clients",
    "blocked_clients",
    "uptime_s",
    "store_groups",
    "store_records",
    "store_max_group",
    "store_syncs",
    "store_sync_us_last",
    "store_sync_us_mean",
    "store_failures",
    "events_published",
    "refused_busy",
    "refused_readonly",
    "store_sync_us_max",
    "notify_delivered",
    "notify_retries",
    "notify_failures",
    "mem_rss",
    "mem_allocated",
    "mem_allocator_resident",
    "store_memtable_bytes",
    "store_table_readers_bytes",
    "store_block_cache_bytes",
};

Test(cmd, stats)
{
    start();
    long long t = e2e_now_ms();
    push_ok("PUSH s1 normal DEADLINE %lld APPROVED", t + 48 * HOUR_MS);
    push_ok("PUSH s2 rush4h");
    push_ok("PUSH s3 normal WAREHOUSE w2 APPROVED");
    push_ok("PUSH s4 normal");
    push_ok("PUSH s5 rush24h DEADLINE %lld WAREHOUSE w2", t + 20 * HOUR_MS);
    push_ok("HOLD s5");
    cr_assert_str_eq(fs(R("NEXT w2"), "id"), "s3");
    push_ok("OUTBOUND s3 OPERATOR wang");
    push_ok("CANCEL s4");

    redisReply *s = R("STATS");
    cr_assert(s->type == REDIS_REPLY_ARRAY, "STATS: type %d", s->type);
    for (size_t i = 0; i < sizeof stat_keys / sizeof stat_keys[0]; i++)
        fi(s, stat_keys[i]);
    cr_assert_str_eq(fs(s, "durability"), "sync");
    cr_assert_str_eq(fs(s, "storage"), "ok");
    cr_assert_eq(s->elements, 2 * (sizeof stat_keys / sizeof stat_keys[0] + 2),
                 "STATS has %zu elements", s->elements);
    /* What the process holds: the orders and RocksDB's memtables. */
    cr_assert_gt(fi(s, "mem_rss"), 1 << 20);
    cr_assert_gt(fi(s, "mem_allocated"), 0);
    cr_assert_gt(fi(s, "store_memtable_bytes"), 0);
    cr_assert_eq(fi(s, "new"), 1);
    cr_assert_eq(fi(s, "held"), 1);
    cr_assert_eq(fi(s, "queued"), 1);
    cr_assert_eq(fi(s, "picking"), 0);
    cr_assert_eq(fi(s, "shipped"), 1);
    cr_assert_eq(fi(s, "delivered"), 0);
    cr_assert_eq(fi(s, "cancelled"), 1);
    cr_assert_eq(fi(s, "queued_normal"), 1);
    cr_assert_eq(fi(s, "queued_rush4h"), 0);
    cr_assert_eq(fi(s, "pushes"), 5);
    cr_assert_eq(fi(s, "picks"), 1);
    cr_assert_eq(fi(s, "outbounds"), 1);
    cr_assert_eq(fi(s, "outbounds_unleased"), 0);
    cr_assert_eq(fi(s, "cancels"), 1);
    cr_assert_eq(fi(s, "warehouses"), 2);
    cr_assert_eq(fi(s, "connected_clients"), 1);
    cr_assert_eq(fi(s, "blocked_clients"), 0);
    cr_assert(fi(s, "store_records") >= 9, "store_records %lld",
              fi(s, "store_records"));
    cr_assert(fi(s, "store_syncs") >= 1);
    cr_assert(fi(s, "store_groups") >= 1);
    cr_assert_eq(fi(s, "store_failures"), 0);

    s = R("STATS w2");
    cr_assert_eq(fi(s, "shipped"), 1);
    cr_assert_eq(fi(s, "held"), 1);
    cr_assert_eq(fi(s, "queued"), 0);
    cr_assert_eq(fi(s, "new"), 0);
    cr_assert_eq(fi(s, "cancelled"), 0);
    s = R("STATS main");
    cr_assert_eq(fi(s, "queued"), 1);
    cr_assert_eq(fi(s, "new"), 1);
    cr_assert_eq(fi(s, "cancelled"), 1);
    cr_assert_eq(fi(s, "shipped"), 0);

    redisReply *n = R("DBSIZE");
    cr_assert(n->type == REDIS_REPLY_INTEGER && n->integer == 5, "DBSIZE: %lld",
              n->integer);
    finish();
}

Test(cmd, info)
{
    start();
    push_ok("PUSH i1 normal APPROVED");
    redisReply *r = R("INFO");
    cr_assert(r->type == REDIS_REPLY_STRING, "INFO: type %d", r->type);
    char want[64];
    snprintf(want, sizeof want, "\r\ntcp_port:%d\r\n", D.port);
    const char *must[] = {"# Server\r\n",
                          "server:dispatchd\r\n",
                          "version:",
                          want,
                          "uptime_in_seconds:",
                          "# Clients\r\n",
                          "connected_clients:1\r\n",
                          "total_commands_processed:",
                          "protocol_errors:0",
                          "queued:1\r\n",
                          "pushes:1\r\n",
                          "durability:sync\r\n",
                          "store_failures:0\r\n"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        contains(r->str, must[i], "INFO");
    /* redis-cli asks for a section: the whole text is fine. */
    r = R("INFO server");
    cr_assert(r->type == REDIS_REPLY_STRING);
    finish();
}

/* ---- the connection ------------------------------------------------- */

Test(cmd, resp3_after_hello_3)
{
    start();
    struct raw *r = raw_open(D.port);
    const char *h = raw_cmd(r, "HELLO 3\r\n");
    prefix_eq(h, "%7\r\n$6\r\nserver\r\n$9\r\ndispatchd\r\n$7\r\nversion\r\n",
              "HELLO 3");
    contains(h, "$5\r\nproto\r\n:3\r\n", "HELLO 3");
    contains(h, "$4\r\nmode\r\n$10\r\nstandalone\r\n", "HELLO 3");
    contains(h, "$7\r\nmodules\r\n*0\r\n", "HELLO 3");

    cr_assert_str_eq(raw_cmd(r, "PUSH r3 normal ATTR carrier sf APPROVED\r\n"),
                     "+OK\r\n");
    const char *g = raw_cmd(r, "GET r3\r\n");
    prefix_eq(g, "%", "GET in RESP3");
    contains(g, "$2\r\nid\r\n$2\r\nr3\r\n", "GET in RESP3");
    contains(g, "$5\r\nstate\r\n$6\r\nqueued\r\n", "GET in RESP3");
    contains(g, "$5\r\nattrs\r\n%1\r\n$7\r\ncarrier\r\n$2\r\nsf\r\n",
             "GET attrs in RESP3");
    contains(g, "$8\r\nposition\r\n:0\r\n", "GET in RESP3");
    contains(g, "$8\r\ndeadline\r\n:", "GET in RESP3");
    const char *p = raw_cmd(r, "PEEK main\r\n");
    prefix_eq(p, "*1\r\n%", "PEEK in RESP3");
    const char *s = raw_cmd(r, "STATS\r\n");
    prefix_eq(s, "%", "STATS in RESP3");
    contains(s, "$6\r\nqueued\r\n:1\r\n", "STATS in RESP3");
    cr_assert_str_eq(raw_cmd(r, "NEXT empty\r\n"), "_\r\n");
    cr_assert_str_eq(raw_cmd(r, "CLIENT GETNAME\r\n"), "_\r\n");
    cr_assert_str_eq(raw_cmd(r, "COMMAND DOCS\r\n"), "%0\r\n");
    cr_assert_str_eq(raw_cmd(r, "CONFIG GET save\r\n"), "%0\r\n");
    const char *n = raw_cmd(r, "NEXT main\r\n");
    prefix_eq(n, "%", "NEXT in RESP3");
    contains(n, "$5\r\nstate\r\n$7\r\npicking\r\n", "NEXT in RESP3");
    const char *a = raw_cmd(r, "AUDIT r3\r\n");
    prefix_eq(a, "*2\r\n%9\r\n$3\r\nseq\r\n:0\r\n", "AUDIT in RESP3");
    prefix_eq(raw_cmd(r, "HELLO 4\r\n"), "-NOPROTO", "HELLO 4");

    /* Back to RESP2. */
    h = raw_cmd(r, "HELLO 2\r\n");
    prefix_eq(h, "*14\r\n$6\r\nserver\r\n", "HELLO 2");
    contains(h, "$5\r\nproto\r\n:2\r\n", "HELLO 2");
    prefix_eq(raw_cmd(r, "GET r3\r\n"), "*", "GET in RESP2");
    cr_assert_str_eq(raw_cmd(r, "NEXT empty\r\n"), "*-1\r\n");
    cr_assert_str_eq(raw_cmd(r, "CLIENT GETNAME\r\n"), "$-1\r\n");
    raw_close(r);

    /* Pub/sub in RESP3: push frames, other commands still allowed. */
    struct raw *sub = raw_open(D.port);
    prefix_eq(raw_cmd(sub, "HELLO 3\r\n"), "%7", "HELLO 3");
    cr_assert_str_eq(raw_cmd(sub, "SUBSCRIBE events\r\n"),
                     ">3\r\n$9\r\nsubscribe\r\n$6\r\nevents\r\n:1\r\n");
    cr_assert_str_eq(raw_cmd(sub, "PING\r\n"), "+PONG\r\n");
    prefix_eq(raw_cmd(sub, "GET r3\r\n"), "%", "GET while subscribed");
    push_ok("PUSH r3b normal APPROVED");
    push_ok("OUTBOUND r3b OPERATOR wang");
    const char *ev = raw_reply(sub);
    prefix_eq(ev, ">3\r\n$7\r\nmessage\r\n$6\r\nevents\r\n$", "RESP3 event");
    contains(ev, "\"type\":\"outbound_unleased\"", "RESP3 event");
    raw_close(sub);

    /* HELLO with SETNAME; hiredis sees a RESP2 HELLO as an array. */
    redisReply *x = R("HELLO 2 SETNAME erp");
    cr_assert(x->type == REDIS_REPLY_ARRAY && x->elements == 14);
    cr_assert_eq(fi(x, "proto"), 2);
    cr_assert_str_eq(fs(x, "server"), "dispatchd");
    x = R("CLIENT GETNAME");
    cr_assert(x->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(x->str, "erp");
    expect("-ERR syntax error", "HELLO 2 BOGUS");
    expect("-NOPROTO", "HELLO three");
    finish();
}

Test(cmd, redis_compat_commands)
{
    start();
    redisReply *r = R("COMMAND DOCS");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 0,
              "COMMAND DOCS: type %d", r->type);
    r = R("COMMAND");
    cr_assert(r->type == REDIS_REPLY_ARRAY);
    r = R("COMMAND COUNT");
    cr_assert(r->type == REDIS_REPLY_INTEGER);
    r = R("CONFIG GET save");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 0);
    r = R("CONFIG GET appendonly");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 0);
    expect("-ERR", "CONFIG SET save x");
    expect("+OK", "SELECT 0");
    expect("-ERR", "SELECT 1");
    r = R("DBSIZE");
    cr_assert(r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    expect("-ERR transactions are not supported", "MULTI");
    expect("-ERR transaction refused", "PUSH TX-9 normal");
    expect("-ERR transactions are not supported", "EXEC");
    expect("-NOTFOUND", "GET TX-9");
    expect("-ERR transactions are not supported", "MULTI");
    expect("-ERR transactions are not supported", "DISCARD");
    expect("+PONG", "PING");
    expect("-ERR AUTH called without any credentials", "AUTH secret");
    expect("-ERR AUTH called without any credentials",
           "HELLO 2 AUTH erp secret");
    r = R("CLIENT ID");
    cr_assert(r->type == REDIS_REPLY_INTEGER && r->integer > 0);
    r = R("CLIENT GETNAME");
    cr_assert(r->type == REDIS_REPLY_NIL);
    expect("+OK", "CLIENT SETNAME picker-9");
    r = R("CLIENT GETNAME");
    cr_assert_str_eq(r->str, "picker-9");
    expect("-ERR Client names cannot contain spaces", "CLIENT SETNAME %s",
           "a b");
    char name[70];
    memset(name, 'n', 65);
    name[65] = '\0';
    expect("-BADARG", "CLIENT SETNAME %s", name);
    expect("-BADARG", "PEEK %s", name);
    expect("-BADARG", "NEXT %s", name);
    expect("+OK", "CLIENT SETINFO lib-name hiredis");
    expect("-ERR unknown CLIENT subcommand", "CLIENT KILL x");
    finish();
}

Test(cmd, ping_echo_quit)
{
    start();
    expect("+PONG", "PING");
    redisReply *r = R("PING %s", "hello there");
    cr_assert(r->type == REDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, "hello there");
    r = R("ECHO %b", "a\r\nb\0c", (size_t)6);
    cr_assert(r->type == REDIS_REPLY_STRING && r->len == 6 &&
                  memcmp(r->str, "a\r\nb\0c", 6) == 0,
              "ECHO not binary safe");
    r = R("ECHO %s", "");
    cr_assert(r->type == REDIS_REPLY_STRING && r->len == 0);
    expect("-ERR wrong number of arguments", "ECHO");
    expect("+PONG", "ping");

    /* QUIT: +OK, then the daemon closes. */
    struct raw *q = raw_open(D.port);
    cr_assert_str_eq(raw_cmd(q, "PING\r\n"), "+PONG\r\n");
    raw_send(q, "QUIT\r\nPING\r\n");
    cr_assert_str_eq(raw_reply(q), "+OK\r\n");
    raw_expect_eof(q);
    raw_close(q);
    expect("+PONG", "PING");
    /* QUIT behind a write: the write's reply (after its WAL sync) and
       QUIT's both arrive before the close. */
    q = raw_open(D.port);
    raw_send(q, "PUSH qw normal\r\nQUIT\r\nPUSH qx normal\r\n");
    cr_assert_str_eq(raw_reply(q), "+OK\r\n");
    cr_assert_str_eq(raw_reply(q), "+OK\r\n");
    raw_expect_eof(q);
    raw_close(q);
    cr_assert_str_eq(state("qw"), "new");
    expect("-NOTFOUND", "GET qx");
    finish();
}

Test(cmd, errors_never_close_the_connection)
{
    start();
    redisReply *id = R("CLIENT ID");
    expect("-ERR unknown command 'FLUSHALL'", "FLUSHALL");
    expect("-ERR unknown command", "%s", "no-such-command");
    expect("-ERR wrong number of arguments for 'APPROVE' command", "APPROVE");
    expect("-NOTFOUND", "GET nope");
    expect("-BADARG", "PUSH x1 urgent");
    push_ok("PUSH x1 normal");
    expect("-EXISTS", "PUSH x1 rush4h");
    push_ok("PUSH x2 normal");
    push_ok("CANCEL x2");
    expect("-BADSTATE", "APPROVE x2");
    push_ok("APPROVE x1");
    redisReply *n = R("NEXT main");
    cr_assert(n->type == REDIS_REPLY_ARRAY);
    expect("-LEASE", "TOUCH x1 987654321987");
    expect("-ERR transactions", "MULTI");
    expect("-ERR transactions", "DISCARD");
    expect("-NOPROTO", "HELLO 9");
    expect("-ERR", "SELECT 3");
    /* Same connection all along. */
    redisReply *id2 = R("CLIENT ID");
    cr_assert_eq(id->integer, id2->integer);
    expect("+PONG", "PING");
    /* The same over raw inline commands. */
    struct raw *r = raw_open(D.port);
    prefix_eq(raw_cmd(r, "NOSUCH a b\r\n"), "-ERR unknown command 'NOSUCH'",
              "unknown command");
    prefix_eq(raw_cmd(r, "GET\r\n"), "-ERR wrong number of arguments",
              "GET without id");
    cr_assert_str_eq(raw_cmd(r, "\r\n\r\nPING\r\n"), "+PONG\r\n");
    /* Empty multibulks are nothing to run, not errors. */
    cr_assert_str_eq(raw_cmd(r, "*0\r\n*-1\r\nPING\r\n"), "+PONG\r\n");
    raw_close(r);
    finish();
}

/* ---- pipelining and protocol limits --------------------------------- */

Test(cmd, pipeline_1000_commands_hiredis)
{
    start();
    /* Mixed: writes (replies wait for the WAL sync), reads, errors. */
    for (int i = 0; i < 1000; i++) {
        int rc;
        switch (i % 4) {
        case 0:
            rc = redisAppendCommand(C, "PUSH pl-%d normal APPROVED", i);
            break;
        case 1:
            rc = redisAppendCommand(C, "ECHO e-%d", i);
            break;
        case 2:
            rc = redisAppendCommand(C, "NOSUCH %d", i);
            break;
        default:
            rc = redisAppendCommand(C, "GET pl-%d", i - 3);
        }
        cr_assert(rc == REDIS_OK);
    }
    for (int i = 0; i < 1000; i++) {
        redisReply *r = NULL;
        cr_assert(redisGetReply(C, (void **)&r) == REDIS_OK, "reply %d: %s", i,
                  C->errstr);
        keepr(r);
        char want[32];
        switch (i % 4) {
        case 0:
            check_reply(r, "+OK", "pipelined PUSH");
            break;
        case 1:
            snprintf(want, sizeof want, "e-%d", i);
            cr_assert(r->type == REDIS_REPLY_STRING, "reply %d type %d", i,
                      r->type);
            cr_assert_str_eq(r->str, want, "reply %d out of order", i);
            break;
        case 2:
            snprintf(want, sizeof want, "-ERR unknown command");
            check_reply(r, want, "pipelined unknown command");
            break;
        default:
            snprintf(want, sizeof want, "pl-%d", i - 3);
            cr_assert(r->type == REDIS_REPLY_ARRAY, "reply %d type %d", i,
                      r->type);
            cr_assert_str_eq(fs(r, "id"), want, "reply %d out of order", i);
        }
    }
    cr_assert_eq(fi(R("STATS"), "queued"), 250);
    cr_assert_eq(fi(get("pl-996"), "position"), 249);
    finish();
}

Test(cmd, pipeline_1000_inline_in_one_write)
{
    start();
    size_t cap = 1000 * 40, n = 0;
    char *buf = keep(malloc(cap));
    cr_assert(buf);
    for (int i = 0; i < 1000; i++) {
        if (i % 10 == 9)
            n +=
                (size_t)snprintf(buf + n, cap - n, "PUSH in-%d rush24h\r\n", i);
        else
            n += (size_t)snprintf(buf + n, cap - n, "ECHO \"v %d\"\r\n", i);
    }
    struct raw *r = raw_open(D.port);
    ssize_t k = send(r->fd, buf, n, MSG_NOSIGNAL);
    cr_assert_eq((size_t)k, n, "one write of %zu bytes sent %zd", n, k);
    for (int i = 0; i < 1000; i++) {
        const char *got = raw_reply(r);
        char want[40];
        if (i % 10 == 9)
            snprintf(want, sizeof want, "+OK\r\n");
        else
            snprintf(want, sizeof want, "$%zu\r\nv %d\r\n",
                     (size_t)snprintf(NULL, 0, "v %d", i), i);
        cr_assert_str_eq(got, want, "reply %d", i);
    }
    raw_close(r);
    cr_assert_eq(fi(R("STATS"), "new"), 100);
    finish();
}

Test(cmd, command_split_across_writes)
{
    start();
    struct raw *r = raw_open(D.port);
    const char *cmd = "*3\r\n$4\r\nPUSH\r\n$5\r\nsplit\r\n$6\r\nrush4h\r\n"
                      "ECHO in-parts\r\n";
    for (const char *p = cmd; *p; p++) {
        send_all(r->fd, p, 1);
        if ((p - cmd) % 7 == 0)
            e2e_sleep_ms(2);
    }
    cr_assert_str_eq(raw_reply(r), "+OK\r\n");
    cr_assert_str_eq(raw_reply(r), "$8\r\nin-parts\r\n");
    raw_close(r);
    cr_assert_str_eq(fs(get("split"), "class"), "rush4h");
    finish();
}

Test(cmd, limits_at_the_edge_are_accepted)
{
    start();
    /* One bulk of exactly 1 MiB. */
    size_t big = 1024 * 1024;
    char *s = keep(malloc(big));
    cr_assert(s);
    memset(s, 'b', big);
    redisReply *r = R("ECHO %b", s, big);
    cr_assert(r->type == REDIS_REPLY_STRING && r->len == big,
              "ECHO of 1 MiB: type %d", r->type);
    /* An inline line just under 64 KiB. */
    size_t il = 64 * 1024 - 8;
    char *line = keep(malloc(il + 3));
    cr_assert(line);
    memcpy(line, "ECHO ", 5);
    memset(line + 5, 'i', il - 5);
    memcpy(line + il, "\r\n", 3);
    struct raw *x = raw_open(D.port);
    const char *got = raw_cmd(x, line);
    char hdr[32];
    snprintf(hdr, sizeof hdr, "$%zu\r\niii", il - 5);
    prefix_eq(got, hdr, "ECHO inline 64 KiB");
    /* 1,024 arguments. */
    const char *argv[1024];
    for (int i = 0; i < 1024; i++)
        argv[i] = i == 0 ? "ECHO" : "arg";
    r = keepr(redisCommandArgv(C, 1024, argv, NULL));
    cr_assert(r && r->type == REDIS_REPLY_STRING, "1024 arguments refused");
    raw_close(x);
    finish();
}

/* Send bytes on a new connection: the reply must be an error starting
   with want, then the daemon closes that connection only. */
static void
violation(const char *bytes, size_t len, const char *want)
{
    struct raw *r = raw_open(D.port);
    send_all(r->fd, bytes, len);
    const char *got = raw_reply(r);
    prefix_eq(got, want, "protocol violation");
    raw_expect_eof(r);
    raw_close(r);
    /* The other connection keeps working. */
    expect("+PONG", "PING");
}

Test(cmd, protocol_violation_closes_only_that_connection)
{
    start();
    push_ok("PUSH pv normal");
#define V(lit, want) violation(lit, sizeof(lit) - 1, want)
    V("*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length");
    V("*1\r\n$1048577\r\n", "-ERR Protocol error: too big bulk argument");
    V("*1025\r\n", "-ERR Protocol error: too many arguments");
    V("*2\r\n$4\r\nPING\r\n:5\r\n", "-ERR Protocol error: expected '$'");
    V("*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected CRLF");
    V("*x\r\n", "-ERR Protocol error: invalid multibulk length");
    V("PING \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes");
#undef V
    /* An inline line over 64 KiB. */
    size_t n = 64 * 1024 + 2; /* all read before the error: no RST */
    char *s = keep(malloc(n));
    cr_assert(s);
    memset(s, 'A', n);
    violation(s, n, "-ERR Protocol error: too big inline request");
    /* More than 1,024 inline words. */
    char *words = keep(malloc(1025 * 2 + 3));
    cr_assert(words);
    for (int i = 0; i < 1025; i++)
        memcpy(words + 2 * i, "w ", 2);
    memcpy(words + 2 * 1025, "\r\n", 3);
    violation(words, strlen(words), "-ERR Protocol error: too many arguments");
    /* Commands before the violation are answered first, a write too. */
    static const char both[] =
        "PING\r\nPUSH pw normal\r\nECHO ok\r\n*1\r\n$-5\r\n";
    struct raw *r = raw_open(D.port);
    raw_send(r, both);
    cr_assert_str_eq(raw_reply(r), "+PONG\r\n");
    cr_assert_str_eq(raw_reply(r), "+OK\r\n");
    cr_assert_str_eq(raw_reply(r), "$2\r\nok\r\n");
    prefix_eq(raw_reply(r), "-ERR Protocol error", "after two commands");
    raw_expect_eof(r);
    raw_close(r);
    /* The daemon counted them and still has the order. */
    contains(R("INFO")->str, "protocol_errors:10\r\n", "INFO");
    cr_assert_str_eq(state("pv"), "new");
    cr_assert_str_eq(state("pw"), "new");
    finish();
}

/* ---- events and checkpoints ----------------------------------------- */

Test(cmd, subscribe_events)
{
    start();
    redisContext *s = e2e_connect(&D);
    redisReply *r = Rc(s, "SUBSCRIBE events");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_assert_str_eq(r->element[0]->str, "subscribe");
    cr_assert_str_eq(r->element[1]->str, "events");
    cr_assert_eq(r->element[2]->integer, 1);
    r = Rc(s, "PING");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2,
              "PING while subscribed (RESP2)");
    cr_assert_str_eq(r->element[0]->str, "pong");
    expect_on(s, "-ERR only SUBSCRIBE", "GET x");

    long long t = e2e_now_ms();
    push_ok("PUSH ev-n normal DEADLINE %lld APPROVED", t + 48 * HOUR_MS);
    push_ok("PUSH ev-r rush4h CUSTOMER shenwo DEADLINE %lld APPROVED",
            t + 3 * HOUR_MS);
    r = NULL;
    cr_assert(redisGetReply(s, (void **)&r) == REDIS_OK, "event: %s",
              s->errstr);
    keepr(r);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_assert_str_eq(r->element[0]->str, "message");
    cr_assert_str_eq(r->element[1]->str, "events");
    const char *js = r->element[2]->str;
    contains(js, "\"type\":\"jump\"", "jump event");
    contains(js, "\"order\":\"ev-r\"", "jump event");
    contains(js, "\"customer\":\"shenwo\"", "jump event");
    contains(js, "\"position\":0", "jump event");
    contains(js, "\"displaced\":1", "jump event");
    contains(js, "\"seq\":", "jump event");

    push_ok("OUTBOUND ev-n OPERATOR wang");
    r = NULL;
    cr_assert(redisGetReply(s, (void **)&r) == REDIS_OK);
    keepr(r);
    contains(r->element[2]->str, "\"type\":\"outbound_unleased\"",
             "outbound event");
    contains(r->element[2]->str, "\"order\":\"ev-n\"", "outbound event");
    /* ... and the anomaly: it was never picked. */
    r = NULL;
    cr_assert(redisGetReply(s, (void **)&r) == REDIS_OK);
    keepr(r);
    contains(r->element[2]->str, "\"type\":\"anomaly\"", "anomaly event");
    contains(r->element[2]->str, "shipped without being picked",
             "anomaly event");
    expect_on(s, "-BADARG unknown channel", "SUBSCRIBE other");
    redisFree(s);
    finish();
}

Test(srv, checkpoint_starts_a_daemon)
{
    e2e_tempdir(&D);
    char cpdir[270];
    snprintf(cpdir, sizeof cpdir, "%.255s/cps", D.dir);
    e2e_start(&D, "--checkpoint-dir", cpdir, NULL);
    C = e2e_connect(&D);
    push_ok("PUSH cp1 rush4h CUSTOMER acme ATTR carrier sf APPROVED");
    push_ok("PUSH cp2 normal");
    redisReply *r = R("CHECKPOINT snap-1");
    cr_assert(r->type == REDIS_REPLY_STRING, "CHECKPOINT: type %d (%s)",
              r->type, r->type == REDIS_REPLY_ERROR ? r->str : "-");
    char want[290];
    snprintf(want, sizeof want, "%.270s/snap-1", cpdir);
    cr_assert_str_eq(r->str, want);
    expect("-ERR checkpoint", "CHECKPOINT snap-1"); /* exists now */
    /* Only a plain name, only below the configured directory. */
    expect("-BADARG checkpoint name", "CHECKPOINT ../escape");
    expect("-BADARG checkpoint name", "CHECKPOINT /tmp/anywhere");
    expect("-BADARG checkpoint name", "CHECKPOINT .hidden");
    expect("-BADARG checkpoint name", "CHECKPOINT a/b");
    struct stat sb;
    cr_assert(stat("/tmp/anywhere", &sb) != 0 || !S_ISDIR(sb.st_mode) ||
                  access("/tmp/anywhere/CURRENT", F_OK) != 0,
              "a checkpoint was written outside the directory");
    push_ok("PUSH cp3 normal"); /* after the checkpoint */

    e2e_tempdir(&D2);
    snprintf(D2.data, sizeof D2.data, "%s", want);
    e2e_start(&D2, NULL);
    redisContext *c2 = e2e_connect(&D2);
    redisReply *g = Rc(c2, "GET cp1");
    cr_assert(g->type == REDIS_REPLY_ARRAY, "GET cp1 from checkpoint");
    cr_assert_str_eq(fs(g, "state"), "queued");
    cr_assert_str_eq(fs(g, "customer"), "acme");
    cr_assert_str_eq(fs(e2e_field(g, "attrs"), "carrier"), "sf");
    g = Rc(c2, "GET cp2");
    cr_assert_str_eq(fs(g, "state"), "new");
    expect_on(c2, "-NOTFOUND", "GET cp3");
    redisFree(c2);
    finish();
}

/* ---- connections and restart ---------------------------------------- */

Test(srv, thousand_concurrent_connections)
{
    enum { N = 1000 };
    struct rlimit rl;
    cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < N + 200) {
        rl.rlim_cur = rl.rlim_max < N + 200 ? rl.rlim_max : N + 200;
        cr_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s",
                  strerror(errno));
    }
    cr_assert(rl.rlim_cur >= N + 100, "RLIMIT_NOFILE %llu is too low",
              (unsigned long long)rl.rlim_cur);
    e2e_start(&D, NULL);
    int *fd = keep(calloc(N, sizeof *fd));
    cr_assert(fd);
    for (int i = 0; i < N; i++)
        fd[i] = raw_fd(D.port);
    for (int i = 0; i < N; i++)
        send_all(fd[i], "*1\r\n$4\r\nPING\r\n", 14);
    for (int i = 0; i < N; i++) {
        char buf[16];
        size_t got = 0;
        while (got < 7) {
            ssize_t k = recv(fd[i], buf + got, sizeof buf - got, 0);
            cr_assert(k > 0, "connection %d: %s", i,
                      k == 0 ? "closed" : strerror(errno));
            got += (size_t)k;
        }
        cr_assert(got == 7 && memcmp(buf, "+PONG\r\n", 7) == 0,
                  "connection %d: got '%.*s'", i, (int)got, buf);
    }
    C = e2e_connect(&D);
    cr_assert_eq(fi(R("STATS"), "connected_clients"), N + 1);
    for (int i = 0; i < N; i++)
        close(fd[i]);
    wait_stat("connected_clients", 1);
    expect("+PONG", "PING");
    finish();
}

Test(srv, max_clients)
{
    e2e_start(&D, "--max-clients", "5", NULL);
    struct raw *r[5];
    for (int i = 0; i < 5; i++) {
        r[i] = raw_open(D.port);
        cr_assert_str_eq(raw_cmd(r[i], "PING\r\n"), "+PONG\r\n");
    }
    struct raw *x = raw_open(D.port);
    cr_assert_str_eq(raw_reply(x), "-ERR max number of clients reached\r\n");
    raw_expect_eof(x);
    raw_close(x);
    /* The five are unaffected. */
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(raw_cmd(r[i], "PING\r\n"), "+PONG\r\n");
    /* A slot freed is a slot for the next client. */
    raw_close(r[0]);
    bool in = false;
    for (int tries = 0; tries < 200 && !in; tries++) {
        x = raw_open(D.port);
        raw_send(x, "PING\r\n");
        const char *got = raw_reply(x);
        in = strcmp(got, "+PONG\r\n") == 0;
        if (!in) {
            cr_assert_str_eq(got, "-ERR max number of clients reached\r\n");
            raw_close(x);
            e2e_sleep_ms(10);
        }
    }
    cr_assert(in, "a freed slot was never given to a new client");
    const char *info = raw_cmd(x, "INFO\r\n");
    cr_assert(!strstr(info, "rejected_connections:0\r\n"),
              "INFO does not count rejected connections");
    raw_close(x);
    for (int i = 1; i < 5; i++)
        raw_close(r[i]);
    finish();
}

/* Every field of a and b is equal, except those in skip. */
static void
same_order(const redisReply *a, const redisReply *b, const char *const *skip)
{
    cr_assert(a->type == REDIS_REPLY_ARRAY && b->type == REDIS_REPLY_ARRAY);
    size_t na = 0, nb = 0;
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        const char *k = a->element[i]->str;
        bool skipped = false;
        for (size_t s = 0; skip[s]; s++)
            skipped |= strcmp(k, skip[s]) == 0;
        if (skipped)
            continue;
        na++;
        const redisReply *va = a->element[i + 1], *vb = e2e_field(b, k);
        cr_assert(vb, "field %s lost in restart", k);
        cr_assert_eq(va->type, vb->type, "field %s type", k);
        if (va->type == REDIS_REPLY_INTEGER)
            cr_assert_eq(va->integer, vb->integer, "field %s: %lld -> %lld", k,
                         va->integer, vb->integer);
        else if (va->type == REDIS_REPLY_STRING)
            cr_assert_str_eq(va->str, vb->str, "field %s", k);
        else if (va->type == REDIS_REPLY_ARRAY)
            same_order(va, vb, skip);
    }
    for (size_t i = 0; i + 1 < b->elements; i += 2) {
        bool skipped = false;
        for (size_t s = 0; skip[s]; s++)
            skipped |= strcmp(b->element[i]->str, skip[s]) == 0;
        nb += !skipped;
    }
    cr_assert_eq(na, nb, "field count %zu -> %zu", na, nb);
}

Test(srv, orders_survive_a_clean_restart)
{
    e2e_start(&D, NULL);
    C = e2e_connect(&D);
    long long t = e2e_now_ms();
    push_ok("PUSH rs-new rush24h CUSTOMER acme SOURCE ecommerce RISK "
            "new_customer ATTR carrier sf ATTR note %s",
            "two words");
    push_ok("PUSH rs-held normal WAREHOUSE hz1");
    push_ok("HOLD rs-held credit");
    push_ok("PUSH rs-q1 normal DEADLINE %lld APPROVED", t + 40 * HOUR_MS);
    push_ok("PUSH rs-q2 rush4h DEADLINE %lld APPROVED", t + 3 * HOUR_MS);
    push_ok("PUSH rs-asn asn DEADLINE %lld FULFIL to_drawing ATTR "
            "asn_number A-1 ATTR tech_agreement T-1 ATTR drawing_version D-3 "
            "WAREHOUSE hz1 APPROVED",
            t + 50 * HOUR_MS);
    redisReply *n = R("NEXT hz1 PICKER wang LEASE 900");
    cr_assert_str_eq(fs(n, "id"), "rs-asn");
    push_ok("PUSH rs-ship normal APPROVED");
    push_ok("OUTBOUND rs-ship OPERATOR li RAW {\"a\":1}");
    push_ok("PUSH rs-del normal APPROVED");
    push_ok("OUTBOUND rs-del OPERATOR li");
    push_ok("DELIVER rs-del");
    push_ok("PUSH rs-can normal");
    push_ok("CANCEL rs-can");

    const char *all[] = {"rs-new", "rs-held", "rs-q1",  "rs-q2",
                         "rs-asn", "rs-ship", "rs-del", "rs-can"};
    enum { NO = sizeof all / sizeof all[0] };
    redisReply *before[NO], *audit[NO];
    for (size_t i = 0; i < NO; i++) {
        before[i] = get(all[i]);
        audit[i] = R("AUDIT %s", all[i]);
    }
    redisReply *st = R("STATS");
    redisFree(C);
    C = NULL;

    cr_assert_eq(e2e_stop(&D), 0, "SIGTERM: exit status (see %s)", D.log);
    e2e_start(&D, NULL);
    C = e2e_connect(&D);
    static const char *const skip[] = {"eta_ms", "eta", "eta_iso", NULL};
    static const char *const none[] = {NULL};
    for (size_t i = 0; i < NO; i++) {
        same_order(before[i], get(all[i]), skip);
        redisReply *a = R("AUDIT %s", all[i]);
        cr_assert_eq(a->elements, audit[i]->elements, "%s audit", all[i]);
        for (size_t k = 0; k < a->elements; k++)
            same_order(audit[i]->element[k], a->element[k], none);
    }
    redisReply *st2 = R("STATS");
    const char *keys[] = {"new",          "held",       "queued",
                          "picking",      "shipped",    "delivered",
                          "cancelled",    "queued_asn", "queued_rush4h",
                          "queued_normal"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_eq(fi(st, keys[i]), fi(st2, keys[i]), "STATS %s", keys[i]);
    /* The queue still works from where it was. */
    cr_assert_str_eq(ids(R("PEEK main")), "rs-q2 rs-q1");
    n = R("NEXT main");
    cr_assert_str_eq(fs(n, "id"), "rs-q2");
    cr_assert(strcmp(fs(n, "lease"), fs(before[4], "lease")) != 0,
              "a lease number was handed out twice across a restart");
    expect("-EXISTS", "PUSH rs-q1 rush4h");
    finish();
}
