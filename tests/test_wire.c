/*
 * test_wire — the binary protocol's codec (binproto/wire): the header
 * parser's every error, bodies cut at every byte, lengths that lie,
 * random bytes, reader overruns and writer round trips (with allocation
 * failures injected).
 *
 * Every read works on an exact-size heap copy of its input, so ASan
 * reports any byte read past the end.  Random tests draw from a seed
 * printed in every failure message; set WIRE_TEST_SEED to replay one.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

static unsigned char *held; /* the exact-size copy the last read used */

static const unsigned char *
exact(const void *p, size_t n)
{
    free(held);
    held = malloc(n ? n : 1);
    cr_assert_not_null(held);
    if (n)
        memcpy(held, p, n);
    return held;
}

static void
teardown(void)
{
    free(held);
    held = NULL;
}

TestSuite(wire, .fini = teardown);

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
    const char *e = getenv("WIRE_TEST_SEED");
    if (e != NULL)
        return strtoull(e, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

static void
header_bytes(unsigned char out[WIRE_HEADER_LEN], uint8_t op, uint8_t st,
             uint32_t id, uint32_t len)
{
    struct wire_header h = {WIRE_VERSION, op, st, id, len};
    wire_header_encode(out, &h);
}

/* ---- the header ----------------------------------------------------- */

Test(wire, header_layout_is_little_endian)
{
    unsigned char b[WIRE_HEADER_LEN];
    header_bytes(b, WIRE_OP_PUSH, 0x12, 0x04030201u, 0x000a0b0cu);
    const unsigned char want[] = {0xd5, 0x01, 0x10, 0x12, 0x01, 0x02,
                                  0x03, 0x04, 0x0c, 0x0b, 0x0a, 0x00};
    cr_assert_arr_eq(b, want, sizeof want);
}

Test(wire, header_round_trip)
{
    unsigned char b[WIRE_HEADER_LEN];
    struct wire_header h;
    header_bytes(b, WIRE_OP_NEXT, 7, 0xdeadbeefu, WIRE_BODY_MAX);
    cr_assert_eq(wire_header_parse(exact(b, sizeof b), sizeof b, &h),
                 WIRE_PARSE_OK);
    cr_assert_eq(h.version, WIRE_VERSION);
    cr_assert_eq(h.opcode, WIRE_OP_NEXT);
    cr_assert_eq(h.status, 7);
    cr_assert_eq(h.id, 0xdeadbeefu);
    cr_assert_eq(h.len, WIRE_BODY_MAX);
}

Test(wire, header_every_prefix_is_incomplete)
{
    unsigned char b[WIRE_HEADER_LEN];
    struct wire_header h;
    header_bytes(b, WIRE_OP_GET, 0, 42, 5);
    for (size_t n = 0; n < WIRE_HEADER_LEN; n++) {
        int rc = wire_header_parse(exact(b, n), n, &h);
        cr_assert_eq(rc, WIRE_PARSE_INCOMPLETE, "prefix %zu: %s", n,
                     wire_parse_name(rc));
        cr_assert_eq(h.len, 0, "prefix %zu: length before it arrived", n);
        /* What has arrived is filled in, for an error reply's echo. */
        if (n >= 3)
            cr_assert_eq(h.opcode, WIRE_OP_GET);
        if (n >= 8)
            cr_assert_eq(h.id, 42);
        else
            cr_assert_eq(h.id, 0);
    }
}

Test(wire, header_bad_magic_is_seen_at_the_first_byte)
{
    struct wire_header h;
    for (int m = 0; m < 256; m++) {
        if (m == WIRE_MAGIC)
            continue;
        unsigned char b[WIRE_HEADER_LEN];
        header_bytes(b, 0, 0, 1, 0);
        b[0] = (unsigned char)m;
        for (size_t n = 1; n <= WIRE_HEADER_LEN; n++)
            cr_assert_eq(wire_header_parse(exact(b, n), n, &h),
                         WIRE_PARSE_BAD_MAGIC, "magic 0x%02x, %zu bytes", m, n);
    }
    /* RESP's first byte is not ours: "*1\r\n$4\r\nPING\r\n". */
    cr_assert_eq(wire_header_parse(exact("*1\r\n", 4), 4, &h),
                 WIRE_PARSE_BAD_MAGIC);
}

Test(wire, header_bad_version_is_seen_at_the_second_byte)
{
    struct wire_header h;
    for (int v = 0; v < 256; v++) {
        if (v == WIRE_VERSION)
            continue;
        unsigned char b[WIRE_HEADER_LEN];
        header_bytes(b, WIRE_OP_PING, 0, 9, 0);
        b[1] = (unsigned char)v;
        for (size_t n = 2; n <= WIRE_HEADER_LEN; n++) {
            cr_assert_eq(wire_header_parse(exact(b, n), n, &h),
                         WIRE_PARSE_BAD_VERSION, "version %d, %zu bytes", v, n);
            cr_assert_eq(h.version, v);
        }
        cr_assert_eq(h.id, 9, "the id is echoed in the error reply");
    }
}

Test(wire, header_body_limit)
{
    unsigned char b[WIRE_HEADER_LEN];
    struct wire_header h;
    const uint32_t lens[] = {0, 1, WIRE_BODY_MAX - 1, WIRE_BODY_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        header_bytes(b, 0, 0, 1, lens[i]);
        cr_assert_eq(wire_header_parse(exact(b, sizeof b), sizeof b, &h),
                     WIRE_PARSE_OK, "len %u", lens[i]);
        cr_assert_eq(h.len, lens[i]);
    }
    const uint32_t over[] = {WIRE_BODY_MAX + 1, 0x7fffffffu, 0x80000000u,
                             0xffffffffu};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        header_bytes(b, WIRE_OP_PUSH, 0, 77, over[i]);
        cr_assert_eq(wire_header_parse(exact(b, sizeof b), sizeof b, &h),
                     WIRE_PARSE_TOO_BIG, "len %u", over[i]);
        cr_assert_eq(h.len, over[i], "the length is reported");
        cr_assert_eq(h.id, 77);
        cr_assert_eq(h.opcode, WIRE_OP_PUSH);
    }
}

Test(wire, header_parse_reads_only_the_header)
{
    /* Extra bytes after the header are the body: not the parser's. */
    unsigned char b[WIRE_HEADER_LEN + 3];
    struct wire_header h;
    header_bytes(b, 0, 0, 1, 3);
    memcpy(b + WIRE_HEADER_LEN, "\xd5\xff\xff", 3);
    cr_assert_eq(wire_header_parse(exact(b, sizeof b), sizeof b, &h),
                 WIRE_PARSE_OK);
    cr_assert_eq(h.len, 3);
}

/* ---- names ---------------------------------------------------------- */

Test(wire, opcode_and_status_names)
{
    const int ops[] = {
        WIRE_OP_PING,      WIRE_OP_CLIENT_NAME, WIRE_OP_AUTH,
        WIRE_OP_PUSH,      WIRE_OP_APPROVE,     WIRE_OP_HOLD,
        WIRE_OP_CANCEL,    WIRE_OP_REPRIO,      WIRE_OP_NEXT,
        WIRE_OP_TOUCH,     WIRE_OP_RELEASE,     WIRE_OP_OUTBOUND,
        WIRE_OP_DELIVER,   WIRE_OP_GET,         WIRE_OP_PEEK,
        WIRE_OP_AUDIT,     WIRE_OP_STATS,       WIRE_OP_CHECKPOINT,
        WIRE_OP_SUBSCRIBE, WIRE_OP_UNSUBSCRIBE, WIRE_OP_EVENT,
        WIRE_OP_CLOSING,   WIRE_OP_PICKED,      WIRE_OP_EVENTS,
    };
    size_t known = 0;
    for (int op = 0; op < 256; op++)
        known += wire_op_name(op) != NULL;
    cr_assert_eq(known, sizeof ops / sizeof ops[0]);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        cr_assert_not_null(wire_op_name(ops[i]), "opcode 0x%02x", ops[i]);
    cr_assert_str_eq(wire_op_name(WIRE_OP_PUSH), "PUSH");

    cr_assert_str_eq(wire_status_word(WIRE_ST_NOTFOUND), "NOTFOUND");
    cr_assert_str_eq(wire_status_word(WIRE_ST_BADOP), "ERR");
    cr_assert_str_eq(wire_status_word(WIRE_ST_NOCREDS), "ERR");
    cr_assert_str_eq(wire_status_name(WIRE_ST_NOCREDS), "NOCREDS");
    cr_assert_str_eq(wire_status_word(WIRE_ST_NOAUTH), "NOAUTH");
    cr_assert_str_eq(wire_status_word(WIRE_ST_WRONGPASS), "WRONGPASS");
    cr_assert_null(wire_status_word(0x03));
    cr_assert_null(wire_status_word(0xff));
    for (int st = 0; st < 256; st++) {
        if (wire_status_word(st))
            cr_assert_eq(wire_status_is_error(st), st >= 0x10);
    }
    cr_assert_not(wire_status_is_error(WIRE_ST_ALREADY));
    cr_assert_not(wire_status_is_error(WIRE_ST_NIL));
}

Test(wire, tag_names)
{
    for (int t = WIRE_TAG_ID; t <= WIRE_TAG_DELIVERED_AT_ISO; t++)
        cr_assert_not_null(wire_tag_name(t), "tag %d", t);
    for (int t = WIRE_TAG_A_SEQ; t <= WIRE_TAG_A_NOTE; t++)
        cr_assert_not_null(wire_tag_name(t), "tag %d", t);
    const int none[] = {0,
                        WIRE_TAG_DELIVERED_AT_ISO + 1,
                        63,
                        WIRE_TAG_A_NOTE + 1,
                        WIRE_TAG_STATS,
                        255,
                        -1};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        cr_assert_null(wire_tag_name(none[i]), "tag %d", none[i]);
    cr_assert_str_eq(wire_tag_name(WIRE_TAG_ID), "id");
    cr_assert_str_eq(wire_tag_name(WIRE_TAG_LEASE_EXPIRES_ISO),
                     "lease_expires_iso");
    cr_assert_str_eq(wire_tag_name(WIRE_TAG_DELIVERED_AT_ISO),
                     "delivered_at_iso");
    cr_assert_str_eq(wire_tag_name(WIRE_TAG_A_SEQ), "seq");
    cr_assert_str_eq(wire_tag_name(WIRE_TAG_A_NOTE), "note");
}

/* ---- the reader ----------------------------------------------------- */

Test(wire, reader_gets_little_endian_values)
{
    const unsigned char b[] = {0x7f, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x08,
                               0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    struct wire_reader r;
    wire_reader_init(&r, exact(b, sizeof b), sizeof b);
    cr_assert_eq(wire_get_u8(&r), 0x7f);
    cr_assert_eq(wire_get_u16(&r), 0x1234);
    cr_assert_eq(wire_get_u32(&r), 0x12345678u);
    cr_assert_eq(wire_get_i64(&r), -1);
    cr_assert_eq(wire_get_u64(&r), 0x0102030405060708ull);
    cr_assert(wire_reader_done(&r));
}

/* Each getter at every shortfall: 0 (or NULL), err set, cursor kept. */
Test(wire, reader_overruns)
{
    unsigned char b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct wire_reader r;
    size_t len;
    for (size_t n = 0; n < 8; n++) {
        wire_reader_init(&r, exact(b, n), n);
        cr_assert_eq(wire_get_u64(&r), 0, "%zu bytes", n);
        cr_assert(r.err);
        cr_assert_eq(r.pos, 0);
        cr_assert_eq(wire_remaining(&r), 0);
        cr_assert_not(wire_reader_done(&r));
        if (n < 4) {
            wire_reader_init(&r, exact(b, n), n);
            cr_assert_eq(wire_get_u32(&r), 0);
            cr_assert(r.err);
            wire_reader_init(&r, exact(b, n), n);
            cr_assert_eq(wire_get_i64(&r), 0);
            cr_assert(r.err);
        }
        if (n < 2) {
            wire_reader_init(&r, exact(b, n), n);
            cr_assert_eq(wire_get_u16(&r), 0);
            cr_assert(r.err);
        }
        wire_reader_init(&r, exact(b, n), n);
        cr_assert_null(wire_get_bytes(&r, n + 1));
        cr_assert(r.err);
    }
    wire_reader_init(&r, exact(b, 0), 0);
    cr_assert_eq(wire_get_u8(&r), 0);
    cr_assert(r.err);

    /* str16/str32 whose prefix itself is cut. */
    wire_reader_init(&r, exact(b, 1), 1);
    cr_assert_null(wire_get_str16(&r, &len));
    cr_assert_eq(len, 0);
    wire_reader_init(&r, exact(b, 3), 3);
    cr_assert_null(wire_get_str32(&r, &len));
    cr_assert_eq(len, 0);
}

Test(wire, reader_errors_are_sticky)
{
    const unsigned char b[] = {1, 2, 3};
    struct wire_reader r;
    wire_reader_init(&r, exact(b, sizeof b), sizeof b);
    cr_assert_eq(wire_get_u32(&r), 0);
    cr_assert(r.err);
    /* Bytes remain, but nothing more is read once an overrun happened. */
    cr_assert_eq(wire_get_u8(&r), 0);
    cr_assert_null(wire_get_bytes(&r, 0));
    cr_assert_eq(r.pos, 0);
}

Test(wire, reader_zero_length_reads)
{
    struct wire_reader r;
    wire_reader_init(&r, exact("", 0), 0);
    const char *p = wire_get_bytes(&r, 0);
    cr_assert_not_null(p, "an empty read at the end is fine");
    cr_assert(wire_reader_done(&r));
    wire_reader_init(&r, NULL, 5);
    cr_assert_eq(r.len, 0, "a NULL body has no bytes");
    cr_assert_eq(wire_get_u8(&r), 0);
    cr_assert(r.err);
}

/* Lengths that claim more than the body holds. */
Test(wire, reader_lying_lengths)
{
    struct wire_reader r;
    size_t len = 99;
    const unsigned char s16[] = {0x05, 0x00, 'a', 'b', 'c', 'd'};
    wire_reader_init(&r, exact(s16, sizeof s16), sizeof s16);
    cr_assert_null(wire_get_str16(&r, &len));
    cr_assert(r.err);
    cr_assert_eq(len, 0);

    const unsigned char s32[] = {0xff, 0xff, 0xff, 0xff, 'x'};
    wire_reader_init(&r, exact(s32, sizeof s32), sizeof s32);
    cr_assert_null(wire_get_str32(&r, &len));
    cr_assert(r.err);

    /* The largest 16-bit length against a short body. */
    const unsigned char big16[] = {0xff, 0xff, 'x', 'y'};
    wire_reader_init(&r, exact(big16, sizeof big16), sizeof big16);
    cr_assert_null(wire_get_str16(&r, &len));

    /* A length that fits exactly, then one byte more. */
    const unsigned char ok[] = {0x02, 0x00, 'h', 'i'};
    wire_reader_init(&r, exact(ok, sizeof ok), sizeof ok);
    const char *s = wire_get_str16(&r, &len);
    cr_assert_not_null(s);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(s, "hi", 2), 0);
    cr_assert(wire_reader_done(&r));
    cr_assert_eq(wire_get_u8(&r), 0);
    cr_assert(r.err);
}

/* ---- fields --------------------------------------------------------- */

/* An order-like field list: every kind, keyed and not, attributes. */
static void
write_record(struct wire_writer *w)
{
    wire_put_u16(w, 6);
    wire_put_field_str(w, WIRE_TAG_ID, WIRE_KIND_STR, NULL, "RD-1", 4);
    wire_put_field_str(w, WIRE_TAG_RISK, WIRE_KIND_LIST, NULL,
                       "new_customer,overdue_90d", 24);
    wire_put_field_int(w, WIRE_TAG_DEADLINE, NULL, -1764214400000);
    wire_put_field_u64(w, WIRE_TAG_LEASE, NULL, UINT64_MAX);
    size_t at = wire_put_attrs_begin(w, WIRE_TAG_ATTRS, NULL);
    wire_put_attr(w, "packaging", 9, "moisture-proof", 14);
    wire_put_attr(w, "empty", 5, "", 0);
    wire_put_attrs_end(w, at, 2);
    wire_put_field_int(w, WIRE_TAG_STATS + 3, "queued_asn", 12);
}

static int
read_record(struct wire_reader *r, struct wire_field *out, size_t cap)
{
    uint16_t n = wire_get_u16(r);
    if (r->err)
        return -1;
    for (uint16_t i = 0; i < n; i++) {
        struct wire_field f;
        if (wire_get_field(r, &f))
            return -1;
        if (i < cap)
            out[i] = f;
    }
    return n;
}

Test(wire, field_list_round_trip)
{
    struct wire_writer w;
    struct wire_reader r;
    struct wire_field f[8];
    wire_writer_init(&w);
    write_record(&w);
    cr_assert_not(w.err);
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_eq(read_record(&r, f, 8), 6);
    cr_assert(wire_reader_done(&r));

    cr_assert_eq(f[0].tag, WIRE_TAG_ID);
    cr_assert_eq(f[0].kind, WIRE_KIND_STR);
    cr_assert_null(f[0].key);
    cr_assert_eq(f[0].len, 4);
    cr_assert_eq(memcmp(f[0].s, "RD-1", 4), 0);
    cr_assert_eq(f[1].kind, WIRE_KIND_LIST);
    cr_assert_eq(f[1].len, 24);
    cr_assert_eq(f[2].kind, WIRE_KIND_INT);
    cr_assert_eq(f[2].i, -1764214400000);
    cr_assert_eq(f[3].kind, WIRE_KIND_U64);
    cr_assert_eq(f[3].u, UINT64_MAX);
    cr_assert_eq(f[4].kind, WIRE_KIND_ATTRS);
    cr_assert_eq(f[4].nattrs, 2);
    size_t pos = 0, kl, vl;
    const char *k, *v;
    cr_assert(wire_attr_next(&f[4], &pos, &k, &kl, &v, &vl));
    cr_assert_eq(kl, 9);
    cr_assert_eq(memcmp(k, "packaging", 9), 0);
    cr_assert_eq(vl, 14);
    cr_assert_eq(memcmp(v, "moisture-proof", 14), 0);
    cr_assert(wire_attr_next(&f[4], &pos, &k, &kl, &v, &vl));
    cr_assert_eq(vl, 0);
    cr_assert_not(wire_attr_next(&f[4], &pos, &k, &kl, &v, &vl));
    cr_assert_eq(f[5].tag, WIRE_TAG_STATS + 3);
    cr_assert_eq(f[5].kind, WIRE_KIND_INT, "KEYED is not part of the kind");
    cr_assert_eq(f[5].key_len, 10);
    cr_assert_eq(memcmp(f[5].key, "queued_asn", 10), 0);
    cr_assert_eq(f[5].i, 12);
    wire_writer_free(&w);
}

Test(wire, field_unknown_kind)
{
    for (int kind = 0; kind < 256; kind++) {
        int base = kind & ~WIRE_KIND_KEYED;
        if (base < WIRE_KIND_COUNT)
            continue;
        /* Enough bytes for any kind, so only the kind can fail. */
        unsigned char b[32] = {WIRE_TAG_ID, (unsigned char)kind};
        struct wire_reader r;
        struct wire_field f;
        wire_reader_init(&r, exact(b, sizeof b), sizeof b);
        cr_assert_eq(wire_get_field(&r, &f), -1, "kind 0x%02x", kind);
        cr_assert(r.err);
    }
}

Test(wire, field_attrs_lying_count)
{
    /* Three pairs announced, one present. */
    struct wire_writer w;
    wire_writer_init(&w);
    size_t at = wire_put_attrs_begin(&w, WIRE_TAG_ATTRS, NULL);
    wire_put_attr(&w, "k", 1, "v", 1);
    wire_put_attrs_end(&w, at, 3);
    struct wire_reader r;
    struct wire_field f;
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_eq(wire_get_field(&r, &f), -1);
    cr_assert(r.err);
    cr_assert_null(f.attrs, "no pairs are handed out from a bad field");
    size_t pos = 0, kl, vl;
    const char *k, *v;
    cr_assert_not(wire_attr_next(&f, &pos, &k, &kl, &v, &vl));

    /* A value length that runs past the end. */
    wire_writer_reset(&w);
    at = wire_put_attrs_begin(&w, WIRE_TAG_ATTRS, NULL);
    wire_put_str16(&w, "k", 1);
    wire_put_u32(&w, 1000);
    wire_put_bytes(&w, "abc", 3);
    wire_put_attrs_end(&w, at, 1);
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_eq(wire_get_field(&r, &f), -1);
    wire_writer_free(&w);
}

/* A body cut at every byte fails cleanly; only the whole body reads. */
Test(wire, record_truncated_at_every_byte)
{
    struct wire_writer w;
    struct wire_field f[8];
    wire_writer_init(&w);
    write_record(&w);
    for (size_t n = 0; n < w.len; n++) {
        struct wire_reader r;
        wire_reader_init(&r, exact(w.buf, n), n);
        cr_assert_eq(read_record(&r, f, 8), -1, "cut at %zu of %zu", n, w.len);
        cr_assert(r.err);
        cr_assert_leq(r.pos, n);
    }
    struct wire_reader r;
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_eq(read_record(&r, f, 8), 6);
    wire_writer_free(&w);
}

/* A PUSH body as proto_bin reads it, cut at every byte. */
static void
write_push(struct wire_writer *w)
{
    wire_put_str16(w, "RD20251127-0892", 15);
    wire_put_u8(w, WIRE_CLASS_RUSH4H);
    wire_put_u8(w, WIRE_PUSH_APPROVED);
    wire_put_i64(w, 1764214400000);
    wire_put_str16(w, "hz1", 3);
    wire_put_str16(w, "shenwo", 6);
    wire_put_u8(w, WIRE_SOURCE_DEALER);
    wire_put_u8(w, WIRE_FULFIL_STOCK);
    wire_put_u8(w, WIRE_RISK_NEW_CUSTOMER);
    wire_put_u16(w, 2);
    wire_put_str16(w, "packaging", 9);
    wire_put_str32(w, "moisture-proof", 14);
    wire_put_str16(w, "asn_number", 10);
    wire_put_str32(w, "A-1", 3);
}

static bool
read_push(struct wire_reader *r)
{
    size_t n;
    wire_get_str16(r, &n);
    wire_get_u8(r);
    wire_get_u8(r);
    wire_get_i64(r);
    wire_get_str16(r, &n);
    wire_get_str16(r, &n);
    wire_get_u8(r);
    wire_get_u8(r);
    wire_get_u8(r);
    uint16_t na = wire_get_u16(r);
    for (uint16_t i = 0; i < na && !r->err; i++) {
        wire_get_str16(r, &n);
        wire_get_str32(r, &n);
    }
    return wire_reader_done(r);
}

Test(wire, request_body_truncated_at_every_byte)
{
    struct wire_writer w;
    wire_writer_init(&w);
    write_push(&w);
    for (size_t n = 0; n < w.len; n++) {
        struct wire_reader r;
        wire_reader_init(&r, exact(w.buf, n), n);
        cr_assert_not(read_push(&r), "cut at %zu of %zu", n, w.len);
        cr_assert(r.err, "cut at %zu: an overrun, not trailing bytes", n);
    }
    struct wire_reader r;
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert(read_push(&r));
    /* One byte too many: read fine, but not done. */
    wire_put_u8(&w, 0);
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_not(read_push(&r));
    cr_assert_not(r.err);
    cr_assert_eq(wire_remaining(&r), 1);
    wire_writer_free(&w);
}

/* Frames arriving one byte at a time: incomplete until each is whole. */
Test(wire, pipelined_frames_byte_by_byte)
{
    struct wire_writer w;
    wire_writer_init(&w);
    size_t at = wire_frame_begin(&w, WIRE_OP_PING, 0, 1);
    wire_frame_end(&w, at);
    at = wire_frame_begin(&w, WIRE_OP_PUSH, 0, 2);
    write_push(&w);
    wire_frame_end(&w, at);
    at = wire_frame_begin(&w, WIRE_OP_GET, 0, 3);
    wire_put_str16(&w, "RD20251127-0892", 15);
    wire_frame_end(&w, at);
    cr_assert_not(w.err);

    size_t off = 0, have = 0;
    uint32_t next = 1;
    while (have < w.len) {
        have++;
        for (;;) {
            struct wire_header h;
            size_t n = have - off;
            int rc = wire_header_parse(exact(w.buf + off, n), n, &h);
            if (rc == WIRE_PARSE_INCOMPLETE ||
                (rc == WIRE_PARSE_OK && n - WIRE_HEADER_LEN < h.len))
                break;
            cr_assert_eq(rc, WIRE_PARSE_OK, "at byte %zu", have);
            cr_assert_eq(h.id, next, "frame order");
            next++;
            off += WIRE_HEADER_LEN + h.len;
        }
    }
    cr_assert_eq(next, 4);
    cr_assert_eq(off, w.len);
    wire_writer_free(&w);
}

/* ---- random bytes --------------------------------------------------- */

Test(wire, random_bytes_never_overrun)
{
    uint64_t seed = base_seed();
    for (int round = 0; round < 20000; round++) {
        uint64_t s = seed + (uint64_t)round;
        size_t n = (size_t)(rnd(&s) % 96);
        unsigned char b[96];
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)rnd(&s);
        /* Bias toward plausible input: a valid magic and version. */
        if (n > 0 && (rnd(&s) & 1))
            b[0] = WIRE_MAGIC;
        if (n > 1 && (rnd(&s) & 1))
            b[1] = WIRE_VERSION;
        const unsigned char *p = exact(b, n);

        struct wire_header h;
        int rc = wire_header_parse(p, n, &h);
        cr_assert(rc >= WIRE_PARSE_OK && rc <= WIRE_PARSE_TOO_BIG,
                  "seed %llu round %d", (unsigned long long)seed, round);
        if (rc == WIRE_PARSE_OK)
            cr_assert_leq(h.len, WIRE_BODY_MAX, "seed %llu round %d",
                          (unsigned long long)seed, round);
        if (n > 0 && p[0] != WIRE_MAGIC)
            cr_assert_eq(rc, WIRE_PARSE_BAD_MAGIC, "seed %llu round %d",
                         (unsigned long long)seed, round);

        /* The same bytes as a field list, and as a PUSH body. */
        struct wire_reader r;
        struct wire_field f[4];
        wire_reader_init(&r, p, n);
        int got = read_record(&r, f, 4);
        cr_assert_leq(r.pos, n, "seed %llu round %d", (unsigned long long)seed,
                      round);
        if (got >= 0) {
            cr_assert_not(r.err);
            for (int i = 0; i < got && i < 4; i++) {
                size_t pos = 0, kl, vl;
                const char *k, *v;
                while (wire_attr_next(&f[i], &pos, &k, &kl, &v, &vl))
                    cr_assert_leq(pos, f[i].attrs_len);
            }
        }
        wire_reader_init(&r, p, n);
        read_push(&r);
        cr_assert_leq(r.pos, n, "seed %llu round %d", (unsigned long long)seed,
                      round);
    }
}

/* Random values written then read back, in a random order of kinds. */
Test(wire, writer_random_round_trip)
{
    uint64_t seed = base_seed() ^ 0x5eed;
    for (int round = 0; round < 500; round++) {
        uint64_t s = seed + (uint64_t)round, s2;
        struct wire_writer w;
        wire_writer_init(&w);
        int ops = (int)(rnd(&s) % 64);
        s2 = s;
        for (int i = 0; i < ops; i++) {
            uint64_t v = rnd(&s);
            switch (v % 6) {
            case 0:
                wire_put_u8(&w, (uint8_t)(v >> 8));
                break;
            case 1:
                wire_put_u16(&w, (uint16_t)(v >> 8));
                break;
            case 2:
                wire_put_u32(&w, (uint32_t)(v >> 8));
                break;
            case 3:
                wire_put_u64(&w, v);
                break;
            case 4:
                wire_put_i64(&w, (int64_t)v);
                break;
            default: {
                char str[300];
                size_t n = (v >> 8) % sizeof str;
                memset(str, (int)(v >> 16), n);
                if (v & 0x10000000)
                    wire_put_str32(&w, str, n);
                else
                    wire_put_str16(&w, str, n);
            }
            }
        }
        cr_assert_not(w.err, "seed %llu round %d", (unsigned long long)seed,
                      round);
        struct wire_reader r;
        wire_reader_init(&r, exact(w.buf, w.len), w.len);
        for (int i = 0; i < ops; i++) {
            uint64_t v = rnd(&s2);
            bool ok;
            switch (v % 6) {
            case 0:
                ok = wire_get_u8(&r) == (uint8_t)(v >> 8);
                break;
            case 1:
                ok = wire_get_u16(&r) == (uint16_t)(v >> 8);
                break;
            case 2:
                ok = wire_get_u32(&r) == (uint32_t)(v >> 8);
                break;
            case 3:
                ok = wire_get_u64(&r) == v;
                break;
            case 4:
                ok = wire_get_i64(&r) == (int64_t)v;
                break;
            default: {
                size_t n = (v >> 8) % 300, len;
                const char *p = v & 0x10000000 ? wire_get_str32(&r, &len)
                                               : wire_get_str16(&r, &len);
                ok = p && len == n;
                for (size_t k = 0; ok && k < n; k++)
                    ok = p[k] == (char)(v >> 16);
            }
            }
            cr_assert(ok, "seed %llu round %d op %d", (unsigned long long)seed,
                      round, i);
        }
        cr_assert(wire_reader_done(&r), "seed %llu round %d",
                  (unsigned long long)seed, round);
        wire_writer_free(&w);
    }
}

/* ---- the writer ----------------------------------------------------- */

Test(wire, writer_extremes_round_trip)
{
    struct wire_writer w;
    struct wire_reader r;
    wire_writer_init(&w);
    wire_put_i64(&w, INT64_MIN);
    wire_put_i64(&w, INT64_MAX);
    wire_put_u64(&w, 0);
    wire_put_u32(&w, UINT32_MAX);
    wire_put_u16(&w, UINT16_MAX);
    wire_put_str16(&w, "", 0);
    wire_put_str32(&w, NULL, 0);
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_eq(wire_get_i64(&r), INT64_MIN);
    cr_assert_eq(wire_get_i64(&r), INT64_MAX);
    cr_assert_eq(wire_get_u64(&r), 0);
    cr_assert_eq(wire_get_u32(&r), UINT32_MAX);
    cr_assert_eq(wire_get_u16(&r), UINT16_MAX);
    size_t len = 99;
    cr_assert_not_null(wire_get_str16(&r, &len));
    cr_assert_eq(len, 0);
    cr_assert_not_null(wire_get_str32(&r, &len));
    cr_assert(wire_reader_done(&r));
    wire_writer_free(&w);
}

Test(wire, writer_str16_limit)
{
    struct wire_writer w;
    char *big = calloc(1, 70000);
    cr_assert_not_null(big);
    wire_writer_init(&w);
    wire_put_str16(&w, big, UINT16_MAX);
    cr_assert_not(w.err, "65535 bytes fit a 16-bit length");
    cr_assert_eq(w.len, 2 + (size_t)UINT16_MAX);
    wire_put_str16(&w, big, UINT16_MAX + 1);
    cr_assert(w.err);
    size_t len = w.len;
    wire_put_u8(&w, 1);
    cr_assert_eq(w.len, len, "writes after an error are ignored");
    wire_writer_reset(&w);
    cr_assert_not(w.err);
    cr_assert_eq(w.len, 0);
    wire_put_str32(&w, big, 70000);
    cr_assert_not(w.err);
    cr_assert_eq(w.len, 4 + 70000);
    wire_writer_free(&w);
    free(big);
}

Test(wire, writer_patch)
{
    struct wire_writer w;
    struct wire_reader r;
    wire_writer_init(&w);
    wire_put_u16(&w, 0);
    wire_put_u32(&w, 0);
    wire_patch_u16(&w, 0, 0xbeef);
    wire_patch_u32(&w, 2, 0xcafef00d);
    wire_patch_u32(&w, 3, 1); /* would pass the end: ignored */
    wire_patch_u16(&w, 100, 1);
    wire_reader_init(&r, exact(w.buf, w.len), w.len);
    cr_assert_eq(wire_get_u16(&r), 0xbeef);
    cr_assert_eq(wire_get_u32(&r), 0xcafef00d);
    cr_assert(wire_reader_done(&r));
    wire_writer_free(&w);
}

Test(wire, frame_round_trip_and_limit)
{
    struct wire_writer w;
    struct wire_header h;
    wire_writer_init(&w);
    size_t at = wire_frame_begin(&w, WIRE_OP_GET, WIRE_ST_NOTFOUND, 7);
    wire_put_error(&w, "NOTFOUND", "order RD-9", 10);
    wire_frame_end(&w, at);
    cr_assert_eq(wire_header_parse(exact(w.buf, w.len), w.len, &h),
                 WIRE_PARSE_OK);
    cr_assert_eq(h.opcode, WIRE_OP_GET);
    cr_assert_eq(h.status, WIRE_ST_NOTFOUND);
    cr_assert_eq(h.id, 7);
    cr_assert_eq(h.len, w.len - WIRE_HEADER_LEN);
    struct wire_reader r;
    size_t wl, ml;
    wire_reader_init(&r, w.buf + WIRE_HEADER_LEN, h.len);
    const char *word = wire_get_str16(&r, &wl);
    const char *msg = wire_get_str16(&r, &ml);
    cr_assert(wire_reader_done(&r));
    cr_assert_eq(wl, 8);
    cr_assert_eq(memcmp(word, "NOTFOUND", 8), 0);
    cr_assert_eq(ml, 10);
    cr_assert_eq(memcmp(msg, "order RD-9", 10), 0);

    /* A second frame after the first, then one whose body is too big. */
    size_t second = wire_frame_begin(&w, WIRE_OP_PING, 0, 8);
    wire_frame_end(&w, second);
    cr_assert_eq(w.len, second + WIRE_HEADER_LEN);
    size_t third = wire_frame_begin(&w, WIRE_OP_STATS, 0, 9);
    char *big = calloc(1, WIRE_BODY_MAX + 1);
    cr_assert_not_null(big);
    wire_put_bytes(&w, big, WIRE_BODY_MAX + 1);
    wire_frame_end(&w, third);
    cr_assert(w.err, "a body over the limit is refused");
    free(big);
    wire_writer_free(&w);
}

/* Allocation failure at every point of a build. */
static int allow; /* reallocs left before one fails */

static void *
failing_realloc(void *p, size_t n)
{
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (allow-- <= 0)
        return NULL;
    return realloc(p, n);
}

Test(wire, writer_allocation_failure)
{
    for (int k = 0; k < 8; k++) {
        struct wire_writer w;
        wire_writer_init(&w);
        w.realloc_fn = failing_realloc;
        allow = k;
        char chunk[1000];
        memset(chunk, 'z', sizeof chunk);
        for (int i = 0; i < 200; i++)
            wire_put_str16(&w, chunk, sizeof chunk);
        /* 200 KB needs 10 doublings from 256: some allocation failed. */
        cr_assert(w.err, "allow %d", k);
        cr_assert_leq(w.len, w.cap);
        /* What was written before the failure is intact. */
        struct wire_reader r;
        wire_reader_init(&r, w.buf, w.len);
        size_t len;
        while (wire_remaining(&r) > 0) {
            const char *s = wire_get_str16(&r, &len);
            cr_assert_not_null(s, "allow %d", k);
            cr_assert_eq(len, sizeof chunk);
        }
        cr_assert_not(wire_reserve(&w, 1));
        wire_writer_free(&w);
        cr_assert_null(w.buf);
        cr_assert_eq(w.realloc_fn, failing_realloc, "free keeps the allocator");
    }
}

Test(wire, writer_reserve_overflow)
{
    struct wire_writer w;
    wire_writer_init(&w);
    wire_put_u8(&w, 1);
    cr_assert_not(wire_reserve(&w, SIZE_MAX));
    cr_assert(w.err);
    wire_writer_free(&w);
}
