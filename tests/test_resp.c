/*
 * test_resp — the RESP parser and reply writers.
 *
 * Every parse works on an exact-size heap copy of its input, so ASan
 * reports any read past len.  The inline expectations were checked against
 * redis-server 7.0 (RPUSH k <line>; LRANGE k 0 -1).  The round-trip tests
 * draw random commands from a seed printed in every failure message; set
 * RESP_TEST_SEED to replay one.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "resp.h"

static struct resp_req req; /* 80 KiB: too big for the stack */
static char *held;          /* the exact-size copy the last parse() read */
static size_t consumed;
static const char *err;

static enum resp_status
parse(const void *s, size_t n)
{
    free(held);
    held = malloc(n ? n : 1);
    cr_assert_not_null(held);
    memcpy(held, s, n);
    consumed = 12345;
    err = NULL;
    return resp_parse(held, n, &req, &consumed, &err);
}

#define PARSE(lit) parse(lit, sizeof(lit) - 1)

/* A printable rendering of bytes for failure messages (two live at once). */
static const char *
show(const void *p, size_t n)
{
    static char out[2][256];
    static int which;
    char *o = out[which ^= 1];
    size_t k = 0;

    for (size_t i = 0; i < n && k < sizeof out[0] - 8; i++) {
        unsigned char c = ((const unsigned char *)p)[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            o[k++] = (char)c;
        else
            k += (size_t)sprintf(o + k, "\\x%02x", c);
    }
    o[k] = '\0';
    return o;
}

static void
expect_arg(size_t i, const void *p, size_t n)
{
    cr_assert_lt(i, req.argc);
    cr_assert(req.argv[i].len == n && memcmp(req.argv[i].p, p, n) == 0,
              "arg %zu: got \"%s\", want \"%s\"", i,
              show(req.argv[i].p, req.argv[i].len), show(p, n));
}

#define ARG(i, lit) expect_arg(i, lit, sizeof(lit) - 1)

static void
expect_done(size_t argc, size_t used)
{
    cr_assert_eq(req.argc, argc);
    cr_assert_eq(consumed, used);
}

/* ---- multibulk ---- */

Test(multibulk, basic)
{
    static const char in[] = "*2\r\n$4\r\nPING\r\n$5\r\nhello\r\nrest";

    cr_assert_eq(PARSE(in), RESP_DONE);
    expect_done(2, sizeof in - 1 - 4);
    ARG(0, "PING");
    ARG(1, "hello");
    cr_assert_eq(req.argv[0].p, held + 8, "multibulk args point into buf");
}

Test(multibulk, binary_safe)
{
    static const char in[] = "*4\r\n$4\r\na\r\nb\r\n$2\r\n\0\0\r\n"
                             "$4\r\n$3\r\n\r\n$0\r\n\r\n";

    cr_assert_eq(PARSE(in), RESP_DONE);
    expect_done(4, sizeof in - 1);
    ARG(0, "a\r\nb");
    ARG(1, "\0\0");
    ARG(2, "$3\r\n");
    ARG(3, "");
}

Test(multibulk, empty_requests)
{
    cr_assert_eq(PARSE("*0\r\n*1\r\n$4\r\nPING\r\n"), RESP_EMPTY);
    expect_done(0, 4);
    cr_assert_eq(PARSE("*-1\r\n"), RESP_EMPTY);
    expect_done(0, 5);
}

/*
 * INCOMPLETE consumes nothing; its hint (*consumed) is the end of the bulk
 * it stopped in once that bulk's header is read, 0 before.
 */
Test(multibulk, incomplete_hint_is_exact_after_bulk_headers)
{
    static const char in[] = "*2\r\n$1\r\na\r\n$4\r\nPING\r\n";
    /* "$1\r\n" ends at 8, its bulk at 11; "$4\r\n" at 15, its bulk at 21. */

    for (size_t k = 0; k < sizeof in - 1; k++) {
        size_t want = k >= 15 ? 21 : k >= 11 ? 0 : k >= 8 ? 11 : 0;
        cr_assert_eq(parse(in, k), RESP_INCOMPLETE, "%s", show(in, k));
        cr_assert_eq(consumed, want, "prefix %zu (%s)", k, show(in, k));
    }
    cr_assert_eq(PARSE("*0\r"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 0);
    cr_assert_eq(PARSE("*-1\r"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 0);
    /* An empty bulk still needs its CRLF. */
    cr_assert_eq(PARSE("*1\r\n$0\r\n"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 10);
    cr_assert_eq(PARSE("*1\r\n$0\r\n\r"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 10);
    /* Only the bulk being read counts: the arguments after it are not
       guessed at. */
    cr_assert_eq(PARSE("*3\r\n$5\r\nab"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 4 + 4 + 5 + 2);
    cr_assert_eq(PARSE("*1\r\n$1048576\r\n"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 4 + 10 + 1048576 + 2);
}

/* Every prefix of a request in (total bytes) is INCOMPLETE with a hint
   that is 0, or more than the prefix and at most the request.  Multibulk:
   exactly the end of the bulk the prefix stops in once that bulk's header
   line is whole, else 0.  Inline: 0 or the request. */
static void
expect_hints(const char *in, size_t total)
{
    size_t data[16], end[16], nb = 0;
    bool multi = in[0] == '*';

    if (multi) {
        size_t pos = (size_t)((const char *)memchr(in, '\n', total) - in) + 1;
        while (pos < total) {
            const char *nl = memchr(in + pos, '\n', total - pos);
            cr_assert_lt(nb, 16);
            data[nb] = (size_t)(nl - in) + 1;
            end[nb] = data[nb] + strtoul(in + pos + 1, NULL, 10) + 2;
            pos = end[nb++];
        }
    }
    for (size_t k = 0; k < total; k++) {
        size_t want = 0;
        for (size_t b = 0; b < nb; b++)
            if (k >= data[b] && k < end[b])
                want = end[b];
        cr_assert_eq(parse(in, k), RESP_INCOMPLETE, "prefix %zu of %s", k,
                     show(in, total));
        cr_assert(consumed == 0 || (consumed > k && consumed <= total),
                  "prefix %zu of %s: hint %zu", k, show(in, total), consumed);
        if (multi)
            cr_assert_eq(consumed, want, "prefix %zu of %s", k,
                         show(in, total));
        else
            cr_assert(consumed == 0 || consumed == total, "prefix %zu of %s", k,
                      show(in, total));
    }
    cr_assert_eq(parse(in, total), RESP_DONE, "%s", show(in, total));
    cr_assert_eq(consumed, total);
}

Test(multibulk, hint_never_passes_the_request)
{
    static const struct {
        const char *p;
        size_t n;
    } t[] = {
#define R(lit) {lit, sizeof(lit) - 1}
        R("*1\r\n$4\r\nPING\r\n"),
        R("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"),
        R("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\r\n\0\r\n"),
        R("*4\r\n$4\r\na\r\nb\r\n$2\r\n\0\0\r\n$4\r\n$3\r\n\r\n$0\r\n\r\n"),
        R("*2\r\n$10\r\n0123456789\r\n$12\r\n$12\r\n$12\r\n\r\n\r\n"),
        R("PING\r\n"),
        R("PUSH \"a b\" 'c d' e\n"),
        R("  ECHO \"\\x41\\r\\n\"  \r\n"),
#undef R
    };

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        expect_hints(t[i].p, t[i].n);

    /* And a 1 MiB bulk, every 4093rd prefix and the last few. */
    static const char head[] = "*1\r\n$1048576\r\n";
    size_t h = sizeof head - 1, n = h + RESP_BULK_MAX + 2;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memcpy(big, head, h);
    memset(big + h, 'x', RESP_BULK_MAX);
    memcpy(big + n - 2, "\r\n", 2);
    for (size_t k = h; k < n; k += k < n - 8 ? 4093 : 1) {
        cr_assert_eq(resp_parse(big, k, &req, &consumed, &err),
                     RESP_INCOMPLETE);
        cr_assert_eq(consumed, n, "prefix %zu", k);
    }
    cr_assert_eq(resp_parse(big, n, &req, &consumed, &err), RESP_DONE);
    free(big);
}

/*
 * The caller the hint is for: a 1 MiB bulk (then a PING) arriving in 512
 * byte reads, parsed only when the hint is reached.  Two parses for the
 * bulk instead of one per read.
 */
Test(multibulk, big_bulk_in_small_reads)
{
    static const char head[] = "*2\r\n$4\r\nECHO\r\n$1048576\r\n";
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    size_t h = sizeof head - 1, n = h + RESP_BULK_MAX + 2;
    size_t total = n + sizeof ping - 1;
    char *in = malloc(total);
    cr_assert_not_null(in);
    memcpy(in, head, h);
    memset(in + h, 'y', RESP_BULK_MAX);
    memcpy(in + n - 2, "\r\n", 2);
    memcpy(in + n, ping, sizeof ping - 1);

    size_t have = 0, pos = 0, need = 0, parses = 0, done = 0;
    while (have < total) {
        have += have + 512 < total ? 512 : total - have;
        if (have - pos < need)
            continue; /* the request cannot be whole yet */
        size_t used;
        enum resp_status st;
        while ((st = resp_parse(in + pos, have - pos, &req, &used, &err)) ==
               RESP_DONE) {
            parses++;
            cr_assert_eq(req.argc, done == 0 ? 2 : 1);
            if (done == 0)
                cr_assert_eq(req.argv[1].len, RESP_BULK_MAX);
            pos += used;
            done++;
        }
        parses++;
        cr_assert_eq(st, RESP_INCOMPLETE);
        need = used;
    }
    cr_assert_eq(done, 2);
    cr_assert_eq(pos, total);
    cr_assert_leq(parses, 4, "%zu parses for %zu reads", parses,
                  (total + 511) / 512);
    free(in);
}

struct bad {
    const char *in;
    size_t len;
    const char *err;
};

/* clang-format off */
#define BAD(lit, e) {lit, sizeof(lit) - 1, "Protocol error: " e}
/* clang-format on */

static void
expect_errors(const struct bad *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(parse(t[i].in, t[i].len), RESP_PROTOERR, "%s",
                     show(t[i].in, t[i].len));
        cr_assert_eq(consumed, 0);
        cr_assert_str_eq(err, t[i].err, "%s", show(t[i].in, t[i].len));
    }
}

Test(multibulk, errors)
{
    static const struct bad t[] = {
        BAD("*x\r\n", "invalid multibulk length"),
        BAD("*\r\n", "invalid multibulk length"),
        BAD("*-2\r\n", "invalid multibulk length"),
        BAD("*-0\r\n", "invalid multibulk length"),
        BAD("*01\r\n", "invalid multibulk length"),
        BAD("*1x\r\n", "invalid multibulk length"),
        BAD("*+1\r\n", "invalid multibulk length"),
        BAD("*1\rX", "expected CRLF"),
        BAD("*1025\r\n", "too many arguments"),
        BAD("*1\r\n+PING\r\n", "expected '$'"),
        BAD("*2\r\n$1\r\na\r\n:1\r\n", "expected '$'"),
        BAD("*1\r\n$x\r\n", "invalid bulk length"),
        BAD("*1\r\n$\r\n", "invalid bulk length"),
        BAD("*1\r\n$-1\r\n", "invalid bulk length"),
        BAD("*1\r\n$04\r\nPING\r\n", "invalid bulk length"),
        BAD("*1\r\n$4\rX", "expected CRLF"),
        BAD("*1\r\n$1048577\r\n", "too big bulk argument"),
        BAD("*1\r\n$99999999999999999999999999999999\r\n",
            "too big bulk argument"),
        BAD("*1\r\n$4\r\nPINGxx", "expected CRLF"),
        BAD("*1\r\n$4\r\nPING\rx", "expected CRLF"),
        BAD("*1\r\n$4\r\nPING\n", "expected CRLF"),
        BAD("*1\r\n$4\r\nPINGx", "expected CRLF"), /* seen before all 2 */
    };

    expect_errors(t, sizeof t / sizeof t[0]);
}

/* A header line may carry RESP_HEADER_MAX bytes of number before its CR. */
Test(multibulk, header_line_bound)
{
    char in[RESP_HEADER_MAX + 8];

    for (int type = 0; type < 2; type++) {
        size_t p = 0;
        if (type == 1) {
            memcpy(in, "*1\r\n", 4);
            p = 4;
        }
        in[p] = type ? '$' : '*';
        memset(in + p + 1, '9', RESP_HEADER_MAX + 1);
        /* At the bound: still waiting, then a (too large) number. */
        cr_assert_eq(parse(in, p + 1 + RESP_HEADER_MAX), RESP_INCOMPLETE);
        memcpy(in + p + 1 + RESP_HEADER_MAX, "\r\n", 2);
        cr_assert_eq(parse(in, p + 3 + RESP_HEADER_MAX), RESP_PROTOERR);
        cr_assert_str_eq(err, type ? "Protocol error: too big bulk argument"
                                   : "Protocol error: too many arguments");
        /* One past: refused without waiting for the CR, or with it. */
        const char *want = type ? "Protocol error: too big bulk count string"
                                : "Protocol error: too big mbulk count string";
        in[p + 1 + RESP_HEADER_MAX] = '9';
        cr_assert_eq(parse(in, p + 2 + RESP_HEADER_MAX), RESP_PROTOERR);
        cr_assert_str_eq(err, want);
        memcpy(in + p + 2 + RESP_HEADER_MAX, "\r\n", 2);
        cr_assert_eq(parse(in, p + 4 + RESP_HEADER_MAX), RESP_PROTOERR);
        cr_assert_str_eq(err, want);
    }
}

Test(multibulk, args_bound)
{
    char *in = malloc(16 + (RESP_ARGS_MAX + 1) * 7);
    size_t n;

    cr_assert_not_null(in);
    for (int extra = 0; extra < 2; extra++) {
        n = (size_t)sprintf(in, "*%d\r\n", RESP_ARGS_MAX + extra);
        for (int i = 0; i < RESP_ARGS_MAX + extra; i++) {
            memcpy(in + n, "$1\r\nx\r\n", 7);
            n += 7;
        }
        enum resp_status st = parse(in, n);
        if (extra) {
            cr_assert_eq(st, RESP_PROTOERR);
        } else {
            cr_assert_eq(st, RESP_DONE);
            expect_done(RESP_ARGS_MAX, n);
            ARG(RESP_ARGS_MAX - 1, "x");
        }
    }
    free(in);
}

Test(multibulk, bulk_bound)
{
    size_t cap = 32 + RESP_BULK_MAX;
    char *in = malloc(cap);
    size_t n;

    cr_assert_not_null(in);
    n = (size_t)sprintf(in, "*1\r\n$%d\r\n", RESP_BULK_MAX);
    memset(in + n, 'b', RESP_BULK_MAX);
    n += RESP_BULK_MAX;
    cr_assert_eq(parse(in, n), RESP_INCOMPLETE);
    memcpy(in + n, "\r\n", 2);
    cr_assert_eq(parse(in, n + 2), RESP_DONE);
    expect_done(1, n + 2);
    cr_assert_eq(req.argv[0].len, RESP_BULK_MAX);

    n = (size_t)sprintf(in, "*1\r\n$%d\r\n", RESP_BULK_MAX + 1);
    cr_assert_eq(parse(in, n), RESP_PROTOERR, "refused before the body");
    free(in);
}

/*
 * Every prefix of a pipeline parses exactly the commands it holds whole and
 * then says INCOMPLETE; the whole buffer yields all three in order.
 */
Test(multibulk, incremental_pipeline)
{
#define C1 "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\r\n\0\r\n"
#define C2 "PUSH \"a b\" c\r\n"
#define C3 "*1\r\n$4\r\nPING\r\n"
    static const char in[] = C1 C2 C3;
    const size_t total = sizeof in - 1;
    const size_t ends[3] = {sizeof C1 - 1, sizeof C1 + sizeof C2 - 2, total};

    for (size_t k = 0; k <= total; k++) {
        char *buf = malloc(k ? k : 1);
        size_t pos = 0, got = 0, used;
        enum resp_status st;

        cr_assert_not_null(buf);
        memcpy(buf, in, k);
        while ((st = resp_parse(buf + pos, k - pos, &req, &used, &err)) ==
               RESP_DONE) {
            cr_assert_lt(got, 3);
            cr_assert_eq(pos + used, ends[got], "prefix %zu, command %zu", k,
                         got);
            pos += used;
            got++;
        }
        cr_assert_eq(st, RESP_INCOMPLETE, "prefix %zu", k);
        if (used != 0) { /* the hint: within the command it stopped in */
            cr_assert_lt(got, 3, "prefix %zu", k);
            cr_assert_gt(used, k - pos, "prefix %zu", k);
            cr_assert_leq(pos + used, ends[got], "prefix %zu", k);
        }
        size_t want = (k >= ends[0]) + (k >= ends[1]) + (k >= ends[2]);
        cr_assert_eq(got, want, "prefix %zu parsed %zu commands", k, got);
        free(buf);
    }

    cr_assert_eq(PARSE(in), RESP_DONE);
    expect_done(3, ends[0]);
    ARG(2, "\r\n\0");
    cr_assert_eq(parse(in + ends[0], total - ends[0]), RESP_DONE);
    expect_done(3, ends[1] - ends[0]);
    ARG(1, "a b");
    cr_assert_eq(parse(in + ends[1], total - ends[1]), RESP_DONE);
    expect_done(1, total - ends[1]);
    ARG(0, "PING");
}

/* ---- inline ---- */

struct bytes {
    const char *p;
    size_t n;
};

struct quoting {
    struct bytes in;
    size_t argc;
    struct bytes a[4];
};

/* clang-format off */
#define S(lit) {lit, sizeof(lit) - 1}
/* clang-format on */

Test(inline_req, quoting_like_redis)
{
    static const struct quoting t[] = {
        {S("PING\r\n"), 1, {S("PING")}},
        {S("PING\n"), 1, {S("PING")}},
        {S("  set\t a  \t b \r\n"), 3, {S("set"), S("a"), S("b")}},
        {S("set \"hello world\" x\n"), 3, {S("set"), S("hello world"), S("x")}},
        {S("\"a\\x41\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n"),
         1,
         {S("aA\n\r\t\b\a\\\"q")}},
        {S("\"\\x4g\" \"\\x4\" \"\\xfF\"\n"),
         3,
         {S("x4g"), S("x4"), S("\xff")}},
        {S("\"\\x00\"\n"), 1, {S("\0")}},
        {S("'it\\'s' 'a\\nb' 'a\\\\b'\n"),
         3,
         {S("it's"), S("a\\nb"), S("a\\\\b")}},
        {S("'\"' \"'\"\n"), 2, {S("\""), S("'")}},
        {S("\"\" ''\n"), 2, {S(""), S("")}},
        {S("a\"b c\" a'b' c\n"), 3, {S("ab c"), S("ab"), S("c")}},
        {S("a\vb \"a\"\v \vc\n"), 3, {S("a\vb"), S("a"), S("c")}},
        {S("x\\y a\rb\n"), 3, {S("x\\y"), S("a"), S("b")}},
        {S("x\0y\r\n"), 1, {S("x\0y")}}, /* Redis stops at the NUL */
        {S("\"a\r\"\r\n"), 1, {S("a\r")}},
    };

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *what = show(t[i].in.p, t[i].in.n);
        cr_assert_eq(parse(t[i].in.p, t[i].in.n), RESP_DONE, "%s: %s", what,
                     err ? err : "");
        cr_assert_eq(consumed, t[i].in.n, "%s", what);
        cr_assert_eq(req.argc, t[i].argc, "%s", what);
        for (size_t j = 0; j < t[i].argc; j++) {
            expect_arg(j, t[i].a[j].p, t[i].a[j].n);
            cr_assert_eq(req.argv[j].p[req.argv[j].len], '\0',
                         "inline args are NUL-terminated");
        }
    }
}

Test(inline_req, errors)
{
    static const struct bad t[] = {
        BAD("\"abc\n", "unbalanced quotes in request"),
        BAD("'abc\r\n", "unbalanced quotes in request"),
        BAD("a\"b c\"d\n", "unbalanced quotes in request"),
        BAD("'a'b\n", "unbalanced quotes in request"),
        BAD("\"a\\\"\n", "unbalanced quotes in request"),
        BAD("\"a\\\n", "unbalanced quotes in request"),
        BAD("'a\\'\n", "unbalanced quotes in request"),
        BAD("x \"\n", "unbalanced quotes in request"),
    };

    expect_errors(t, sizeof t / sizeof t[0]);
}

Test(inline_req, empty_lines)
{
    static const char *const in[] = {"\n", "\r\n", "  \t\r\n", "\v\f \n"};

    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        cr_assert_eq(parse(in[i], strlen(in[i])), RESP_EMPTY);
        expect_done(0, strlen(in[i]));
    }
    cr_assert_eq(PARSE("\r\nPING\r\n"), RESP_EMPTY);
    expect_done(0, 2);
    cr_assert_eq(PARSE("PING"), RESP_INCOMPLETE);
    cr_assert_eq(PARSE("PING\r"), RESP_INCOMPLETE);
    cr_assert_eq(consumed, 0);
}

Test(inline_req, line_bound)
{
    char *in = malloc(RESP_INLINE_MAX + 3);

    cr_assert_not_null(in);
    memset(in, 'x', RESP_INLINE_MAX + 1);
    /* Exactly RESP_INLINE_MAX bytes: waits, then parses with either end. */
    cr_assert_eq(parse(in, RESP_INLINE_MAX), RESP_INCOMPLETE);
    in[RESP_INLINE_MAX] = '\r';
    cr_assert_eq(parse(in, RESP_INLINE_MAX + 1), RESP_INCOMPLETE);
    in[RESP_INLINE_MAX + 1] = '\n';
    cr_assert_eq(parse(in, RESP_INLINE_MAX + 2), RESP_DONE);
    expect_done(1, RESP_INLINE_MAX + 2);
    cr_assert_eq(req.argv[0].len, RESP_INLINE_MAX);
    cr_assert_eq(req.argv[0].p[RESP_INLINE_MAX], '\0');
    in[RESP_INLINE_MAX] = '\n';
    cr_assert_eq(parse(in, RESP_INLINE_MAX + 1), RESP_DONE);
    expect_done(1, RESP_INLINE_MAX + 1);

    /* One past: refused with or without a newline in sight. */
    in[RESP_INLINE_MAX] = 'x';
    cr_assert_eq(parse(in, RESP_INLINE_MAX + 1), RESP_PROTOERR);
    cr_assert_str_eq(err, "Protocol error: too big inline request");
    in[RESP_INLINE_MAX + 1] = '\n';
    cr_assert_eq(parse(in, RESP_INLINE_MAX + 2), RESP_PROTOERR);
    in[RESP_INLINE_MAX + 1] = '\r';
    in[RESP_INLINE_MAX + 2] = '\n';
    cr_assert_eq(parse(in, RESP_INLINE_MAX + 3), RESP_PROTOERR);
    cr_assert_eq(consumed, 0);
    free(in);
}

Test(inline_req, args_bound)
{
    enum { N = RESP_ARGS_MAX };
    static char in[2 * (N + 1)]; /* "a b c ... " for N + 1 one-letter args */

    for (size_t i = 0; i < N + 1; i++) {
        in[2 * i] = (char)('a' + i % 26);
        in[2 * i + 1] = ' ';
    }
    in[2 * N - 1] = '\n';
    cr_assert_eq(parse(in, 2 * N), RESP_DONE);
    expect_done(N, 2 * N);
    ARG(N - 1, "j"); /* 1023 % 26 == 9 */

    in[2 * N - 1] = ' ';
    in[2 * N + 1] = '\n';
    cr_assert_eq(parse(in, 2 * N + 2), RESP_PROTOERR);
    cr_assert_str_eq(err, "Protocol error: too many arguments");
}

Test(inline_req, arg_is)
{
    struct resp_arg a = {"PiNg", 4}, nul = {"PI\0G", 4}, empty = {"", 0};

    cr_assert(resp_arg_is(&a, "ping"));
    cr_assert(resp_arg_is(&a, "PING"));
    cr_assert_not(resp_arg_is(&a, "pin"));
    cr_assert_not(resp_arg_is(&a, "pings"));
    cr_assert_not(resp_arg_is(&a, "pong"));
    cr_assert_not(resp_arg_is(&nul, "PI"));
    cr_assert(resp_arg_is(&empty, ""));
    cr_assert_not(resp_arg_is(&empty, "x"));
    struct resp_arg at = {"@", 1}, br = {"[", 1};
    cr_assert_not(resp_arg_is(&at, "`"), "only letters fold");
    cr_assert_not(resp_arg_is(&br, "{"), "only letters fold");
}

/* ---- writers ---- */

static struct evbuffer *wbuf;

static void
out_new(void)
{
    wbuf = evbuffer_new();
    cr_assert_not_null(wbuf);
}

static void
out_free(void)
{
    evbuffer_free(wbuf);
}

/* The whole output so far must be exactly s[0..n); then it is cleared. */
static void
expect_out(const void *s, size_t n)
{
    size_t len = evbuffer_get_length(wbuf);
    const unsigned char *p = evbuffer_pullup(wbuf, -1);

    cr_assert(len == n && memcmp(p, s, n) == 0, "got \"%s\", want \"%s\"",
              show(p, len), show(s, n));
    evbuffer_drain(wbuf, len);
}

#define OUT(lit) expect_out(lit, sizeof(lit) - 1)

TestSuite(writers, .init = out_new, .fini = out_free);

Test(writers, both_protocols)
{
    static const char *const want[2][6] = {
        {"$-1\r\n", "*-1\r\n", "*4\r\n", "*0\r\n", "*3\r\n", "*3\r\n"},
        {"_\r\n", "_\r\n", "%2\r\n", "%0\r\n", ">3\r\n", "*3\r\n"},
    };

    for (int v = 0; v < 2; v++) {
        int proto = v ? 3 : 2;
        resp_null(wbuf, proto);
        expect_out(want[v][0], strlen(want[v][0]));
        resp_null_array(wbuf, proto);
        expect_out(want[v][1], strlen(want[v][1]));
        resp_map(wbuf, 2, proto);
        expect_out(want[v][2], strlen(want[v][2]));
        resp_map(wbuf, 0, proto);
        expect_out(want[v][3], strlen(want[v][3]));
        resp_push(wbuf, 3, proto);
        expect_out(want[v][4], strlen(want[v][4]));
        resp_array(wbuf, 3);
        expect_out(want[v][5], strlen(want[v][5]));
    }
}

Test(writers, simple_and_int)
{
    resp_ok(wbuf);
    OUT("+OK\r\n");
    resp_simple(wbuf, "PONG");
    OUT("+PONG\r\n");
    resp_simple(wbuf, "a\r\nb");
    OUT("+a  b\r\n");
    resp_int(wbuf, 0);
    resp_int(wbuf, 42);
    resp_int(wbuf, -1);
    OUT(":0\r\n:42\r\n:-1\r\n");
    resp_int(wbuf, LLONG_MAX);
    resp_int(wbuf, LLONG_MIN);
    OUT(":9223372036854775807\r\n:-9223372036854775808\r\n");
    resp_array(wbuf, 1000000);
    OUT("*1000000\r\n");
}

Test(writers, errors)
{
    resp_error(wbuf, "NOTFOUND order %s", "RD20251127-0892");
    OUT("-NOTFOUND order RD20251127-0892\r\n");
    resp_error(wbuf, "BADARG field %s", "x\ny\r\n");
    OUT("-BADARG field x y  \r\n");
    resp_error(wbuf, "BUSY");
    OUT("-BUSY\r\n");

    /* Messages are cut at 4 KiB, CRLF still last and alone. */
    char *big = malloc(10000);
    cr_assert_not_null(big);
    for (size_t cut = 4094; cut <= 4097; cut++) {
        memset(big, 'x', cut - 4);
        big[cut - 4] = '\0';
        resp_error(wbuf, "ERR %s\n", big); /* cut bytes, then a LF */
        size_t len = evbuffer_get_length(wbuf);
        const char *p = (const char *)evbuffer_pullup(wbuf, -1);
        size_t want = cut + 1 < 4096 ? cut + 1 : 4096;
        cr_assert_eq(len, 1 + want + 2, "message of %zu", cut + 1);
        cr_assert(memcmp(p, "-ERR xxx", 8) == 0);
        cr_assert(memcmp(p + len - 2, "\r\n", 2) == 0);
        cr_assert_null(memchr(p, '\n', len - 1));
        cr_assert_null(memchr(p, '\r', len - 2));
        evbuffer_drain(wbuf, len);
    }
    free(big);
}

/* Bulks of every size around the one-piece threshold come out the same. */
Test(writers, bulk)
{
    static const size_t sizes[] = {0, 1, 479, 480, 481, 511, 512, 4096, 100000};
    char *data = malloc(100000), *want = malloc(100032);

    cr_assert(data && want);
    for (size_t i = 0; i < 100000; i++)
        data[i] = (char)(i * 131 + 7);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        size_t h = (size_t)sprintf(want, "$%zu\r\n", n);
        memcpy(want + h, data, n);
        memcpy(want + h + n, "\r\n", 2);
        resp_bulk(wbuf, data, n);
        expect_out(want, h + n + 2);
    }
    resp_bulk(wbuf, "a\0\r\nb", 5);
    OUT("$5\r\na\0\r\nb\r\n");
    resp_bulk_str(wbuf, "hello");
    OUT("$5\r\nhello\r\n");
    resp_bulk_str(wbuf, "");
    OUT("$0\r\n\r\n");
    free(data);
    free(want);
}

Test(writers, bulk_fmt)
{
    resp_bulk_fmt(wbuf, "%d-%s", 7, "x");
    OUT("$3\r\n7-x\r\n");
    resp_bulk_fmt(wbuf, "%s", "");
    OUT("$0\r\n\r\n");

    /* Results of 510..513 bytes straddle the 512-byte stack buffer. */
    static const size_t sizes[] = {508, 509, 510, 511, 20000};
    char *s = malloc(20001), *want = malloc(20032);
    cr_assert(s && want);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        memset(s, 'a' + (int)i, n);
        s[n] = '\0';
        resp_bulk_fmt(wbuf, "<%s>", s);
        size_t h = (size_t)sprintf(want, "$%zu\r\n<%s>\r\n", n + 2, s);
        expect_out(want, h);
    }
    free(s);
    free(want);
}

/* ---- randomized round trip ---- */

static uint64_t
rnd(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
base_seed(void)
{
    const char *e = getenv("RESP_TEST_SEED");

    if (e != NULL)
        return strtoull(e, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

#define RT_CMDS 300
#define RT_ARGS 24

struct rt_cmd {
    size_t end; /* where it ends in the stream */
    size_t argc;
    size_t off[RT_ARGS], len[RT_ARGS]; /* into the blob of expected args */
};

struct grow {
    char *p;
    size_t len, cap;
};

static void
grow_add(struct grow *g, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (g->len + n > g->cap) {
        g->cap = (g->len + n) * 2;
        g->p = realloc(g->p, g->cap);
        cr_assert_not_null(g->p);
    }
    memcpy(g->p + g->len, p, n);
    g->len += n;
}

static void
grow_printf(struct grow *g, const char *fmt, size_t v)
{
    char tmp[32];

    grow_add(g, tmp, (size_t)snprintf(tmp, sizeof tmp, fmt, v));
}

/* Encode one argument for an inline line: bare, "double" or 'single'. */
static void
inline_encode(struct grow *g, const unsigned char *a, size_t n, uint64_t *s,
              bool first)
{
    bool bare = n > 0 && !(first && a[0] == '*'), single = true;

    for (size_t i = 0; i < n; i++) {
        if (a[i] != '\0' && strchr(" \t\r\v\f\n\"'", a[i]) != NULL)
            bare = false; /* NUL is an ordinary byte to our parser */
        if (a[i] == '\n')
            single = false;
    }
    if (n > 0 && a[n - 1] == '\\')
        single = false; /* it would escape the closing quote */
    unsigned how = (unsigned)(rnd(s) % 3);
    if (how == 0 && bare) {
        grow_add(g, a, n);
    } else if (how == 1 && single) {
        grow_add(g, "'", 1);
        for (size_t i = 0; i < n; i++)
            grow_add(g, a[i] == '\'' ? "\\'" : (const char *)&a[i],
                     a[i] == '\'' ? 2 : 1);
        grow_add(g, "'", 1);
    } else {
        grow_add(g, "\"", 1);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = a[i];
            const char *esc = c == '"'    ? "\\\""
                              : c == '\\' ? "\\\\"
                              : c == '\n' ? "\\n"
                              : c == '\r' ? "\\r"
                              : c == '\t' ? "\\t"
                              : c == '\a' ? "\\a"
                              : c == '\b' ? "\\b"
                                          : NULL;
            if (esc != NULL) {
                grow_add(g, esc, 2);
            } else if (c < 0x20 || c >= 0x7f || rnd(s) % 8 == 0) {
                const char *hex =
                    rnd(s) % 2 ? "0123456789abcdef" : "0123456789ABCDEF";
                char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
                grow_add(g, x, 4);
            } else {
                grow_add(g, &c, 1);
            }
        }
        grow_add(g, "\"", 1);
    }
}

static void
blanks(struct grow *g, uint64_t *s, size_t min)
{
    for (size_t k = min + rnd(s) % 3; k > 0; k--)
        grow_add(g, rnd(s) % 2 ? " " : "\t", 1);
}

/*
 * Build RT_CMDS random commands (multibulk or, if allowed, inline), each
 * with random binary arguments; encode them into one stream; feed the
 * stream in random chunks to a connection-like loop that parses every
 * whole command and keeps the rest, in an exact-size buffer.
 */
static void
round_trip(uint64_t seed, bool with_inline)
{
    uint64_t s = seed;
    struct rt_cmd *cmds = calloc(RT_CMDS, sizeof *cmds);
    struct grow blob = {0}, stream = {0};
    unsigned char arg[6000];

    cr_assert_not_null(cmds);
    for (size_t c = 0; c < RT_CMDS; c++) {
        struct rt_cmd *cmd = &cmds[c];
        bool in_line = with_inline && rnd(&s) % 2;
        size_t most = rnd(&s) % 8 ? 4 : RT_ARGS;
        cmd->argc = 1 + rnd(&s) % most;
        if (in_line)
            blanks(&stream, &s, 0);
        else
            grow_printf(&stream, "*%zu\r\n", cmd->argc);
        for (size_t i = 0; i < cmd->argc; i++) {
            /* Inline lines stay far below RESP_INLINE_MAX: 24 * 300 * 4. */
            uint64_t r = rnd(&s) % 100;
            size_t cap = r < 70 ? 17 : r < 97 || in_line ? 300 : sizeof arg;
            size_t n = rnd(&s) % cap;
            for (size_t k = 0; k < n; k++)
                arg[k] = (unsigned char)rnd(&s);
            cmd->off[i] = blob.len;
            cmd->len[i] = n;
            grow_add(&blob, arg, n);
            if (in_line) {
                if (i > 0)
                    blanks(&stream, &s, 1);
                inline_encode(&stream, arg, n, &s, i == 0);
            } else {
                grow_printf(&stream, "$%zu\r\n", n);
                grow_add(&stream, arg, n);
                grow_add(&stream, "\r\n", 2);
            }
        }
        if (in_line) {
            blanks(&stream, &s, 0);
            if (rnd(&s) % 2)
                grow_add(&stream, "\r\n", 2);
            else
                grow_add(&stream, "\n", 1);
        }
        cmd->end = stream.len;
    }

    /* Parse only once the last hint is reached, as the server does. */
    char *in = NULL;
    size_t have = 0, sent = 0, done = 0, need = 0;
    while (done < RT_CMDS) {
        cr_assert_lt(sent, stream.len, "seed %llu: stream ended at command %zu",
                     (unsigned long long)seed, done);
        size_t chunk = 1 + rnd(&s) % (rnd(&s) % 4 ? 24 : 3000);
        if (chunk > stream.len - sent)
            chunk = stream.len - sent;
        char *nb = malloc(have + chunk);
        cr_assert_not_null(nb);
        if (have > 0)
            memcpy(nb, in, have);
        memcpy(nb + have, stream.p + sent, chunk);
        free(in);
        in = nb;
        have += chunk;
        sent += chunk;
        if (have < need)
            continue;

        size_t off = 0, used;
        enum resp_status st;
        while ((st = resp_parse(in + off, have - off, &req, &used, &err)) ==
               RESP_DONE) {
            const struct rt_cmd *cmd = &cmds[done];
            cr_assert_eq(req.argc, cmd->argc, "seed %llu: command %zu argc",
                         (unsigned long long)seed, done);
            for (size_t i = 0; i < cmd->argc; i++)
                cr_assert(req.argv[i].len == cmd->len[i] &&
                              memcmp(req.argv[i].p, blob.p + cmd->off[i],
                                     cmd->len[i]) == 0,
                          "seed %llu: command %zu arg %zu: got \"%s\"",
                          (unsigned long long)seed, done, i,
                          show(req.argv[i].p, req.argv[i].len));
            off += used;
            done++;
        }
        cr_assert_eq(st, RESP_INCOMPLETE, "seed %llu: command %zu: %s",
                     (unsigned long long)seed, done, err ? err : "");
        if (used != 0) {
            size_t at = sent - have + off; /* where the command starts */
            cr_assert(used > have - off && at + used <= cmds[done].end,
                      "seed %llu: command %zu: hint %zu past its end",
                      (unsigned long long)seed, done, used);
        }
        need = used;
        memmove(in, in + off, have - off); /* the next malloc trims it */
        have -= off;
    }
    cr_assert_eq(sent, stream.len, "seed %llu", (unsigned long long)seed);
    cr_assert_eq(have, 0, "seed %llu", (unsigned long long)seed);
    free(in);
    free(cmds);
    free(blob.p);
    free(stream.p);
}

Test(roundtrip, multibulk)
{
    uint64_t seed = base_seed();

    for (int r = 0; r < 20; r++)
        round_trip(seed + (uint64_t)r, false);
}

Test(roundtrip, mixed_with_inline)
{
    uint64_t seed = base_seed() ^ 0x5eed;

    for (int r = 0; r < 20; r++)
        round_trip(seed + (uint64_t)r, true);
}
