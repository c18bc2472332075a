/*
 * resp — the RESP2/RESP3 request parser and reply writer.
 *
 * Requests are multibulk ("*2\r\n$4\r\nPING\r\n...") or inline ("PING
 * hello\r\n", with redis-cli style quoting: "a b", 'c', \n \x41 escapes).
 * The parser works on one contiguous buffer and never allocates: argument
 * pointers point into that buffer (multibulk) or into req->scratch
 * (inline, after unquoting).  Replies are appended to a libevent evbuffer;
 * the protocol version (2 or 3) picks the encoding of maps, nulls and
 * pushes.
 */
#ifndef DISPATCHD_RESP_H
#define DISPATCHD_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#define RESP_INLINE_MAX (64 * 1024) /* bytes of an inline command line */
#define RESP_BULK_MAX (1024 * 1024) /* bytes of one bulk argument */
#define RESP_ARGS_MAX 1024          /* arguments of one command */
#define RESP_HEADER_MAX 32          /* digits of a "*<n>" or "$<len>" line */

struct resp_arg {
    const char *p;
    size_t len;
};

struct resp_req {
    size_t argc;
    struct resp_arg argv[RESP_ARGS_MAX];
    char scratch[RESP_INLINE_MAX + 1]; /* inline arguments, unquoted */
};

enum resp_status {
    RESP_DONE,       /* one command parsed; *consumed bytes used */
    RESP_INCOMPLETE, /* need more input; nothing consumed: *consumed is
                        a hint, see resp_parse() */
    RESP_EMPTY,      /* an empty inline line; *consumed bytes to skip */
    RESP_PROTOERR,   /* protocol violation: *err says what; close */
};

/* Parse the first request in buf[0..len).  Nothing is kept between calls:
   after RESP_INCOMPLETE, call again from the same buf with more bytes.
   On RESP_INCOMPLETE *consumed is a lower bound on the request's total
   length, counted from buf[0], when the parser knows one, else 0: after a
   bulk's "$<len>\r\n" header, with the bulk's data at buf[off], it is
   off + len + 2, the end of that bulk's CRLF.  When it is not 0 it is
   more than len and at most the length of the whole request, so a caller
   may skip parsing until that many bytes are buffered: the request cannot
   be whole before (a broken CRLF among those bytes is then reported when
   they are all in, not at once).  A big bulk arriving in small reads is
   then parsed twice, not once per read. */
enum resp_status resp_parse(const char *buf, size_t len, struct resp_req *req,
                            size_t *consumed, const char **err);

/* Case-insensitive compare of an argument with a NUL-terminated word. */
bool resp_arg_is(const struct resp_arg *a, const char *word);

/* Reply writers.  proto is 2 or 3. */
void resp_ok(struct evbuffer *b);                    /* +OK */
void resp_simple(struct evbuffer *b, const char *s); /* +s */
/* -CODE message: fmt is printf-style; CR/LF in the result become spaces. */
void resp_error(struct evbuffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void resp_int(struct evbuffer *b, long long v);
void resp_bulk(struct evbuffer *b, const char *p, size_t len);
void resp_bulk_str(struct evbuffer *b, const char *s); /* NUL-terminated */
void resp_bulk_fmt(struct evbuffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void resp_null(struct evbuffer *b, int proto);       /* $-1 or _ */
void resp_array(struct evbuffer *b, size_t n);       /* *n */
void resp_null_array(struct evbuffer *b, int proto); /* *-1 or _ */
/* A map of n pairs: %n in RESP3, a flat array of 2n in RESP2. */
void resp_map(struct evbuffer *b, size_t n, int proto);
/* A push of n elements: >n in RESP3, *n in RESP2 (pub/sub). */
void resp_push(struct evbuffer *b, size_t n, int proto);

#endif
