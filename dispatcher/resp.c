/*
 * resp — RESP request parser and reply writer.
 *
 * A request reaches us in one of two shapes:
 *
 *   multibulk   *3\r\n$4\r\nPUSH\r\n$2\r\nid\r\n$0\r\n\r\n
 *               A count, then that many length-prefixed ("bulk") strings.
 *               Binary safe: a bulk may hold CR, LF or NUL, because its
 *               length, not a delimiter, says where it ends.  Every client
 *               library sends this.
 *   inline      PUSH id "two words" 'x'\r\n
 *               One text line split on blanks, for people typing into nc
 *               or redis-cli.  Quoting follows Redis's sdssplitargs():
 *               "..." understands \n \r \t \b \a \xHH and \<any> (that
 *               char), '...' understands only \'; a closing quote must end
 *               the word.  A quote may start in mid-word: a"b c" is "ab c".
 *
 * The first byte decides: '*' is multibulk, anything else is inline.
 *
 * The parser is stateless.  Each call looks at the bytes the connection
 * has buffered and either returns one whole command and the number of bytes
 * it used, or says INCOMPLETE and consumes nothing; the caller reads more
 * and calls again from the same place.  Re-parsing a partial command costs
 * only its header lines, because bulk bodies are skipped by length, never
 * scanned.  Argument pointers point into the caller's buffer (multibulk) or
 * into req->scratch (inline, after unquoting), so nothing is allocated and
 * nothing is copied on the pipelined hot path.
 *
 * Stateless is not free, though: a caller that makes the buffer contiguous
 * and parses again after every read of a 1 MiB bulk arriving in 16 KiB
 * pieces does 64 times the work of one parse, more as the pieces shrink.
 * So INCOMPLETE comes with a hint: once the parser has read a "$<len>"
 * header and stops inside that bulk, it knows the request cannot be whole
 * before the bulk's CRLF, and says how many bytes that is (*consumed).
 * The caller waits for them and parses once more; a big bulk then costs
 * two parses, however it is cut up.  Elsewhere (a header line, an inline
 * line) the hint is 0: those are short, bounded and cheap to re-read.
 *
 * Being stateless means every limit must be checked before waiting: a
 * header line must show its CR within RESP_HEADER_MAX digits, an inline
 * line its LF within RESP_INLINE_MAX bytes, a bulk length must be at most
 * RESP_BULK_MAX, or the peer could make us buffer without end.  We are
 * stricter than Redis where Redis is lax (it does not check the CRLF after
 * a bulk and takes any negative count as empty): a client that gets those
 * wrong is broken, and better told so at once.
 *
 * Replies are small lines ("+OK", ":42", "$5") followed by payloads.  The
 * writers format numbers by hand into a stack buffer and hand libevent one
 * contiguous piece per reply where they can: evbuffer_add() per byte run,
 * not per field, is what keeps a pipelined reply batch cheap.
 */
#include "resp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX 4096       /* bytes of a status or error text; cut beyond */
#define BULK_ONE_PIECE 480 /* bulks up to this size go out in one add */
#define NUM_BAD (-2)       /* parse_num(): not a valid number */
#define NUM_CAP 100000000000000000LL /* 1e17: saturate well before overflow */

#define E_MBULK_LONG "Protocol error: too big mbulk count string"
#define E_MBULK_LEN "Protocol error: invalid multibulk length"
#define E_ARGS "Protocol error: too many arguments"
#define E_DOLLAR "Protocol error: expected '$'"
#define E_BULK_LONG "Protocol error: too big bulk count string"
#define E_BULK_LEN "Protocol error: invalid bulk length"
#define E_BULK_BIG "Protocol error: too big bulk argument"
#define E_CRLF "Protocol error: expected CRLF"
#define E_INLINE_BIG "Protocol error: too big inline request"
#define E_QUOTES "Protocol error: unbalanced quotes in request"

#define FAIL(msg)                                                              \
    do {                                                                       \
        *err = (msg);                                                          \
        return RESP_PROTOERR;                                                  \
    } while (0)

/*
 * Byte classes for the inline splitter, mirroring sdssplitargs(): blanks
 * between words are isspace() (so \v and \f are skipped there), but an
 * unquoted word ends only at space, tab or CR.  NUL is an ordinary byte.
 */
enum { C_SPACE = 1, C_END = 2, C_QUOTE = 4 };

static const unsigned char cls[256] = {
    [' '] = C_SPACE | C_END, ['\t'] = C_SPACE | C_END, ['\r'] = C_SPACE | C_END,
    ['\v'] = C_SPACE,        ['\f'] = C_SPACE,         ['"'] = C_QUOTE,
    ['\''] = C_QUOTE,
};

/* What \<c> means inside double quotes when it is not just c. */
static const unsigned char unescape[256] = {
    ['n'] = '\n', ['r'] = '\r', ['t'] = '\t', ['b'] = '\b', ['a'] = '\a',
};

/*
 * A header number: "-1", or decimal digits without sign or leading zero
 * (as Redis's string2ll()).  Values past NUM_CAP saturate; callers only
 * compare them with limits far below it.
 */
static long long
parse_num(const char *p, size_t n)
{
    long long v = 0;

    if (n == 2 && p[0] == '-' && p[1] == '1')
        return -1;
    if (n == 0 || (p[0] == '0' && n > 1))
        return NUM_BAD;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9)
            return NUM_BAD;
        if (v < NUM_CAP)
            v = v * 10 + d;
    }
    return v;
}

enum hdr { HDR_OK, HDR_MORE, HDR_LONG, HDR_CRLF };

/*
 * Read the line "<type><number>\r\n" at buf[*pos]; the caller has seen the
 * type byte.  On HDR_OK, *num is parse_num()'s verdict and *pos moves past
 * the line.
 */
static enum hdr
read_header(const char *buf, size_t len, size_t *pos, long long *num)
{
    const char *p = buf + *pos + 1;
    size_t avail = len - *pos - 1;
    size_t lim = avail < RESP_HEADER_MAX + 1 ? avail : RESP_HEADER_MAX + 1;
    const char *cr = memchr(p, '\r', lim);

    if (cr == NULL)
        return avail > RESP_HEADER_MAX ? HDR_LONG : HDR_MORE;
    if ((size_t)(cr + 1 - buf) == len)
        return HDR_MORE;
    if (cr[1] != '\n')
        return HDR_CRLF;
    *num = parse_num(p, (size_t)(cr - p));
    *pos = (size_t)(cr + 2 - buf);
    return HDR_OK;
}

static enum resp_status
parse_multibulk(const char *buf, size_t len, struct resp_req *req,
                size_t *consumed, const char **err)
{
    size_t pos = 0;
    long long n, blen;

    switch (read_header(buf, len, &pos, &n)) {
    case HDR_OK:
        break;
    case HDR_MORE:
        return RESP_INCOMPLETE;
    case HDR_LONG:
        FAIL(E_MBULK_LONG);
    case HDR_CRLF:
        FAIL(E_CRLF);
    }
    if (n == NUM_BAD)
        FAIL(E_MBULK_LEN);
    if (n <= 0) { /* "*0" and "*-1": nothing to run */
        req->argc = 0;
        *consumed = pos;
        return RESP_EMPTY;
    }
    if (n > RESP_ARGS_MAX)
        FAIL(E_ARGS);

    for (long long i = 0; i < n; i++) {
        if (pos == len)
            return RESP_INCOMPLETE;
        if (buf[pos] != '$')
            FAIL(E_DOLLAR);
        switch (read_header(buf, len, &pos, &blen)) {
        case HDR_OK:
            break;
        case HDR_MORE:
            return RESP_INCOMPLETE;
        case HDR_LONG:
            FAIL(E_BULK_LONG);
        case HDR_CRLF:
            FAIL(E_CRLF);
        }
        if (blen < 0)
            FAIL(E_BULK_LEN);
        if (blen > RESP_BULK_MAX)
            FAIL(E_BULK_BIG);
        size_t have = len - pos, bl = (size_t)blen;
        if (have > bl && buf[pos + bl] != '\r')
            FAIL(E_CRLF);
        if (have < bl + 2) {
            *consumed = pos + bl + 2; /* the hint: this bulk's end */
            return RESP_INCOMPLETE;
        }
        if (buf[pos + bl + 1] != '\n')
            FAIL(E_CRLF);
        req->argv[i].p = buf + pos;
        req->argv[i].len = bl;
        pos += bl + 2;
    }
    req->argc = (size_t)n;
    *consumed = pos;
    return RESP_DONE;
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Unquote the word starting at p (not a blank) into *outp.  Returns where
 * the word ends, or NULL for an unclosed quote or a closing quote that is
 * followed by something other than a blank.
 */
static const unsigned char *
inline_word(const unsigned char *p, const unsigned char *e, char **outp)
{
    char *out = *outp;

    while (p < e && !(cls[*p] & (C_END | C_QUOTE)))
        *out++ = (char)*p++;
    if (p < e && (cls[*p] & C_QUOTE)) {
        unsigned char q = *p++;
        for (;;) {
            if (p == e)
                return NULL;
            unsigned char c = *p++;
            if (c == q)
                break;
            if (c == '\\' && p < e) {
                if (q == '\'') {
                    if (*p == '\'')
                        c = *p++;
                } else if (*p == 'x' && e - p >= 3 && hexval(p[1]) >= 0 &&
                           hexval(p[2]) >= 0) {
                    c = (unsigned char)(hexval(p[1]) << 4 | hexval(p[2]));
                    p += 3;
                } else {
                    c = *p++;
                    if (unescape[c] != 0)
                        c = unescape[c];
                }
            }
            *out++ = (char)c;
        }
        if (p < e && !(cls[*p] & C_SPACE))
            return NULL;
    }
    *outp = out;
    return p;
}

static enum resp_status
parse_inline(const char *buf, size_t len, struct resp_req *req,
             size_t *consumed, const char **err)
{
    size_t scan = len < RESP_INLINE_MAX + 2 ? len : RESP_INLINE_MAX + 2;
    const char *nl = memchr(buf, '\n', scan);

    if (nl == NULL) {
        /* Wait while the line might still fit: a CR as the byte just past
         * the limit may be the start of the terminating CRLF. */
        if (len <= RESP_INLINE_MAX ||
            (len == RESP_INLINE_MAX + 1 && buf[RESP_INLINE_MAX] == '\r'))
            return RESP_INCOMPLETE;
        FAIL(E_INLINE_BIG);
    }
    const char *end = nl;
    if (end > buf && end[-1] == '\r')
        end--;
    if (end - buf > RESP_INLINE_MAX)
        FAIL(E_INLINE_BIG);

    /* Each word shrinks or keeps its size when unquoted and pays for its
     * NUL with the blank after it, so the output fits in line + 1 bytes. */
    const unsigned char *p = (const unsigned char *)buf;
    const unsigned char *e = (const unsigned char *)end;
    char *out = req->scratch;
    size_t argc = 0;
    for (;;) {
        while (p < e && (cls[*p] & C_SPACE))
            p++;
        if (p == e)
            break;
        if (argc == RESP_ARGS_MAX)
            FAIL(E_ARGS);
        char *start = out;
        p = inline_word(p, e, &out);
        if (p == NULL)
            FAIL(E_QUOTES);
        *out++ = '\0';
        req->argv[argc].p = start;
        req->argv[argc].len = (size_t)(out - 1 - start);
        argc++;
    }
    req->argc = argc;
    *consumed = (size_t)(nl + 1 - buf);
    return argc ? RESP_DONE : RESP_EMPTY;
}

enum resp_status
resp_parse(const char *buf, size_t len, struct resp_req *req, size_t *consumed,
           const char **err)
{
    *consumed = 0;
    if (len == 0)
        return RESP_INCOMPLETE;
    if (buf[0] == '*')
        return parse_multibulk(buf, len, req, consumed, err);
    return parse_inline(buf, len, req, consumed, err);
}

bool
resp_arg_is(const struct resp_arg *a, const char *word)
{
    size_t i;

    for (i = 0; i < a->len; i++) {
        unsigned char c = (unsigned char)a->p[i];
        unsigned char w = (unsigned char)word[i];
        if (w == '\0')
            return false;
        if ((unsigned)(c - 'A') < 26)
            c |= 0x20;
        if ((unsigned)(w - 'A') < 26)
            w |= 0x20;
        if (c != w)
            return false;
    }
    return word[i] == '\0';
}

/* ---- reply writers ---- */

/* Appending fails only when memory is gone; there is no reply to send. */
static void
put(struct evbuffer *b, const void *p, size_t n)
{
    if (evbuffer_add(b, p, n) != 0) {
        fprintf(stderr, "resp: cannot append %zu reply bytes: out of memory\n",
                n);
        abort();
    }
}

/* "<type>[-]<u>\r\n" into dst, which holds at least 24 bytes. */
static size_t
fmt_num(char *dst, char type, bool neg, unsigned long long u)
{
    char tmp[20];
    size_t n = 0, len = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    dst[len++] = type;
    if (neg)
        dst[len++] = '-';
    while (n > 0)
        dst[len++] = tmp[--n];
    dst[len++] = '\r';
    dst[len++] = '\n';
    return len;
}

static void
put_num(struct evbuffer *b, char type, unsigned long long u)
{
    char line[24];

    put(b, line, fmt_num(line, type, false, u));
}

/* "<type>text\r\n", text cut at MSG_MAX and with CR/LF turned to spaces. */
static void
put_line(struct evbuffer *b, char type, const char *s, size_t n)
{
    char line[MSG_MAX + 3];

    if (n > MSG_MAX)
        n = MSG_MAX;
    line[0] = type;
    for (size_t i = 0; i < n; i++)
        line[i + 1] = s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];
    line[n + 1] = '\r';
    line[n + 2] = '\n';
    put(b, line, n + 3);
}

void
resp_ok(struct evbuffer *b)
{
    put(b, "+OK\r\n", 5);
}

void
resp_simple(struct evbuffer *b, const char *s)
{
    put_line(b, '+', s, strlen(s));
}

void
resp_error(struct evbuffer *b, const char *fmt, ...)
{
    char msg[MSG_MAX + 1];
    va_list ap;

    va_start(ap, fmt);
    int r = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        /* Only a broken format gets here; still answer with an error. */
        static const char oops[] = "ERR error reply formatting failed";
        put_line(b, '-', oops, sizeof oops - 1);
        return;
    }
    put_line(b, '-', msg, (size_t)r < MSG_MAX ? (size_t)r : MSG_MAX);
}

void
resp_int(struct evbuffer *b, long long v)
{
    char line[24];
    unsigned long long u =
        v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    put(b, line, fmt_num(line, ':', v < 0, u));
}

void
resp_bulk(struct evbuffer *b, const char *p, size_t len)
{
    char buf[24 + BULK_ONE_PIECE + 2];
    size_t n = fmt_num(buf, '$', false, len);

    if (len <= BULK_ONE_PIECE) {
        memcpy(buf + n, p, len);
        n += len;
        buf[n++] = '\r';
        buf[n++] = '\n';
        put(b, buf, n);
        return;
    }
    put(b, buf, n);
    put(b, p, len);
    put(b, "\r\n", 2);
}

void
resp_bulk_str(struct evbuffer *b, const char *s)
{
    resp_bulk(b, s, strlen(s));
}

void
resp_bulk_fmt(struct evbuffer *b, const char *fmt, ...)
{
    char small[512];
    va_list ap, again;

    va_start(ap, fmt);
    va_copy(again, ap);
    int r = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (r < 0) {
        fprintf(stderr, "resp: bad bulk reply format \"%s\"\n", fmt);
        abort();
    }
    if ((size_t)r < sizeof small) {
        va_end(again);
        resp_bulk(b, small, (size_t)r);
        return;
    }
    char *big = malloc((size_t)r + 1);
    if (big == NULL) {
        fprintf(stderr, "resp: cannot allocate a %d byte reply\n", r);
        abort();
    }
    vsnprintf(big, (size_t)r + 1, fmt, again);
    va_end(again);
    resp_bulk(b, big, (size_t)r);
    free(big);
}

void
resp_null(struct evbuffer *b, int proto)
{
    if (proto == 3)
        put(b, "_\r\n", 3);
    else
        put(b, "$-1\r\n", 5);
}

void
resp_array(struct evbuffer *b, size_t n)
{
    put_num(b, '*', n);
}

void
resp_null_array(struct evbuffer *b, int proto)
{
    if (proto == 3)
        put(b, "_\r\n", 3);
    else
        put(b, "*-1\r\n", 5);
}

void
resp_map(struct evbuffer *b, size_t n, int proto)
{
    if (proto == 3)
        put_num(b, '%', n);
    else
        put_num(b, '*', 2 * (unsigned long long)n);
}

void
resp_push(struct evbuffer *b, size_t n, int proto)
{
    put_num(b, proto == 3 ? '>' : '*', n);
}
