/*
 * The binary protocol end to end: the real daemon, spoken to through the
 * client library (client/dclient.h).  Every opcode with its success and
 * error replies (NOTFOUND, BADSTATE, BADARG naming the value, EXISTS,
 * LEASE, ALREADY, NIL), the connection name as the audit actor, a blocked
 * NEXT woken from another connection and one that times out, events,
 * pipelining, and the framing rules of docs/binary-protocol.md: what
 * keeps a connection open and what closes it.
 */
#define E2E_BIN 1
#include "e2e.h"

#include <jansson.h>
#include <poll.h>

static struct daemon dmn;

/* sync (the default): AUDIT reads the store, and only in sync mode is an
   acknowledged change in the store when its reply arrives (see the
   disabled test audit_after_ack_in_batch_mode below). */
static void
start(void)
{
    e2e_start(&dmn, "--durability", "sync", NULL);
}

static void
stop(void)
{
    e2e_cleanup(&dmn);
}

TestSuite(bin, .init = start, .fini = stop, .timeout = 60);

/* A deadline a year away: never escalates during a test. */
static int64_t
far_deadline(void)
{
    return e2e_now_ms() + 365LL * 24 * 3600 * 1000;
}

static void
push(struct dc_client *c, const char *id, int cls, bool approved,
     const char *wh)
{
    struct dc_reply r;
    struct dc_push_args a = {.id = id,
                             .cls = cls,
                             .approved = approved,
                             .deadline = far_deadline(),
                             .warehouse = wh};
    e2e_bin_status(c, dc_push(c, &a, &r), &r, WIRE_ST_OK);
    dc_reply_free(&r);
}

static void
expect(struct dc_client *c, int rc, struct dc_reply *r, int status,
       const char *msg_has)
{
    e2e_bin_status(c, rc, r, status);
    if (msg_has)
        cr_assert(strstr(r->msg, msg_has), "message '%s' lacks '%s'", r->msg,
                  msg_has);
    dc_reply_free(r);
}

static const char *
state_of(struct dc_client *c, const char *id)
{
    static char st[32];
    struct dc_reply r;
    e2e_bin_status(c, dc_get(c, id, &r), &r, WIRE_ST_OK);
    snprintf(st, sizeof st, "%s", e2e_bin_str(dc_order(&r), "state"));
    dc_reply_free(&r);
    return st;
}

/* The connection is closed by the server: a read sees EOF (or a reset)
   within 5 s. */
static void
assert_closed(struct dc_client *c)
{
    struct pollfd p = {.fd = dc_fd(c), .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "the server did not close");
    char b;
    ssize_t n = recv(dc_fd(c), &b, 1, 0);
    cr_assert(n <= 0, "read %zd bytes after the error reply", n);
}

Test(bin, ping)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    /* PING takes no body. */
    dc_q_raw(c, WIRE_OP_PING, 0, "x", 1);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADARG, NULL);
    /* flags must be 0 */
    dc_q_raw(c, WIRE_OP_PING, 0x40, NULL, 0);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADARG, NULL);
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    dc_close(c);
}

Test(bin, client_name_is_the_audit_actor)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    e2e_bin_status(c, dc_client_name(c, "erp-7", &r), &r, WIRE_ST_OK);
    int64_t conn_id = r.value;
    cr_assert_gt(conn_id, 0);
    dc_reply_free(&r);
    expect(c, dc_client_name(c, "has space", &r), &r, WIRE_ST_BADARG,
           "has space");

    push(c, "CN-1", WIRE_CLASS_NORMAL, false, "cn");
    e2e_bin_status(c, dc_audit(c, "CN-1", 0, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 1);
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "actor"), "erp-7");
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "action"), "push");
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "raw"), "bin PUSH CN-1");
    dc_reply_free(&r);

    /* The name is NEXT's default picker; an empty name clears it and the
       actor becomes client-<id>. */
    e2e_bin_status(c, dc_approve(c, "CN-1", &r), &r, WIRE_ST_OK);
    dc_reply_free(&r);
    struct dc_next_args n = {"cn", NULL, 0, -1};
    e2e_bin_status(c, dc_next(c, &n, &r), &r, WIRE_ST_OK);
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "picker"), "erp-7");
    dc_reply_free(&r);
    expect(c, dc_client_name(c, "", &r), &r, WIRE_ST_OK, NULL);
    push(c, "CN-2", WIRE_CLASS_NORMAL, false, "cn");
    e2e_bin_status(c, dc_audit(c, "CN-2", 0, &r), &r, WIRE_ST_OK);
    char want[64];
    snprintf(want, sizeof want, "client-%" PRId64, conn_id);
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "actor"), want);
    dc_reply_free(&r);
    dc_close(c);
}

Test(bin, auth_has_no_credentials)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    e2e_bin_status(c, dc_auth(c, "erp", "secret", &r), &r, WIRE_ST_NOCREDS);
    cr_assert_str_eq(r.word, "ERR");
    cr_assert(strstr(r.msg, "credentials"), "%s", r.msg);
    dc_reply_free(&r);
    /* a body that is not (user, secret) is refused as such */
    dc_q_raw(c, WIRE_OP_AUTH, 0, "zz", 2);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADARG, "AUTH body");
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    dc_close(c);
}

Test(bin, push_already_exists_badarg)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    const struct dc_kv attrs[] = {{"packaging", "moisture-proof"}};
    struct dc_push_args a = {.id = "P-1",
                             .cls = WIRE_CLASS_RUSH24H,
                             .deadline = far_deadline(),
                             .warehouse = "pw",
                             .customer = "shenwo",
                             .source = WIRE_SOURCE_ECOMMERCE,
                             .fulfil = WIRE_FULFIL_VMI,
                             .risk =
                                 WIRE_RISK_NEW_CUSTOMER | WIRE_RISK_OVERDUE_90D,
                             .nattrs = 1,
                             .attrs = attrs};
    expect(c, dc_push(c, &a, &r), &r, WIRE_ST_OK, NULL);
    expect(c, dc_push(c, &a, &r), &r, WIRE_ST_ALREADY, NULL);
    cr_assert_eq(r.body_len, 0);

    e2e_bin_status(c, dc_get(c, "P-1", &r), &r, WIRE_ST_OK);
    const struct dc_record *o = dc_order(&r);
    cr_assert_str_eq(e2e_bin_str(o, "id"), "P-1");
    cr_assert_str_eq(e2e_bin_str(o, "class"), "rush24h");
    cr_assert_str_eq(e2e_bin_str(o, "state"), "new");
    cr_assert_str_eq(e2e_bin_str(o, "warehouse"), "pw");
    cr_assert_str_eq(e2e_bin_str(o, "customer"), "shenwo");
    cr_assert_str_eq(e2e_bin_str(o, "source"), "ecommerce");
    cr_assert_str_eq(e2e_bin_str(o, "fulfil"), "vmi");
    cr_assert_str_eq(e2e_bin_str(o, "risk"), "new_customer,overdue_90d");
    cr_assert_str_eq(e2e_bin_str(o, "attrs"), "packaging=moisture-proof;");
    cr_assert_eq(e2e_bin_int(o, "deadline"), a.deadline);
    cr_assert_null(dc_field_find(o, "lease"));
    dc_reply_free(&r);

    a.customer = "someone-else";
    expect(c, dc_push(c, &a, &r), &r, WIRE_ST_EXISTS, "P-1");

    struct dc_push_args bad = {.id = "P-2", .cls = 9};
    expect(c, dc_push(c, &bad, &r), &r, WIRE_ST_BADARG, "class 9");
    bad.cls = WIRE_CLASS_NORMAL;
    bad.source = 7;
    expect(c, dc_push(c, &bad, &r), &r, WIRE_ST_BADARG, "source 7");
    bad.source = 0;
    bad.risk = 0x10;
    expect(c, dc_push(c, &bad, &r), &r, WIRE_ST_BADARG, NULL);
    /* the intake rules: an asn order needs its attributes */
    struct dc_push_args asn = {
        .id = "P-3", .cls = WIRE_CLASS_ASN, .deadline = far_deadline()};
    expect(c, dc_push(c, &asn, &r), &r, WIRE_ST_BADARG, "asn_number");
    struct dc_push_args noid = {.id = "", .cls = WIRE_CLASS_NORMAL};
    expect(c, dc_push(c, &noid, &r), &r, WIRE_ST_BADARG, NULL);
    /* nothing of the refused pushes exists */
    expect(c, dc_get(c, "P-2", &r), &r, WIRE_ST_NOTFOUND, "P-2");
    expect(c, dc_get(c, "P-3", &r), &r, WIRE_ST_NOTFOUND, "P-3");
    dc_close(c);
}

Test(bin, approve_hold_cancel)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "A-1", WIRE_CLASS_NORMAL, false, "aw");
    expect(c, dc_approve(c, "A-1", &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "A-1"), "queued");
    expect(c, dc_approve(c, "A-1", &r), &r, WIRE_ST_BADSTATE,
           "order A-1 is queued, cannot approve");
    expect(c, dc_approve(c, "NOPE-1", &r), &r, WIRE_ST_NOTFOUND, "NOPE-1");

    expect(c, dc_hold(c, "A-1", "customer called", &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "A-1"), "held");
    expect(c, dc_hold(c, "A-1", "", &r), &r, WIRE_ST_BADSTATE, "held");
    expect(c, dc_hold(c, "NOPE-1", "", &r), &r, WIRE_ST_NOTFOUND, NULL);
    expect(c, dc_approve(c, "A-1", &r), &r, WIRE_ST_OK, NULL);

    expect(c, dc_cancel(c, "A-1", "dup order", &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "A-1"), "cancelled");
    expect(c, dc_cancel(c, "A-1", "", &r), &r, WIRE_ST_BADSTATE, "cancelled");
    expect(c, dc_cancel(c, "NOPE-1", "", &r), &r, WIRE_ST_NOTFOUND, NULL);

    /* the reason is the audit note */
    e2e_bin_status(c, dc_audit(c, "A-1", 0, &r), &r, WIRE_ST_OK);
    bool held = false;
    for (size_t i = 0; i < r.nrecs; i++)
        if (strcmp(e2e_bin_str(&r.recs[i], "action"), "hold") == 0) {
            held = true;
            cr_assert_str_eq(e2e_bin_str(&r.recs[i], "note"),
                             "customer called");
        }
    cr_assert(held);
    dc_reply_free(&r);

    /* a reason over 512 bytes, an id over 64 */
    char big[600];
    memset(big, 'r', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect(c, dc_hold(c, "A-1", big, &r), &r, WIRE_ST_BADARG, NULL);
    char longid[80];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    expect(c, dc_approve(c, longid, &r), &r, WIRE_ST_BADARG, NULL);
    dc_close(c);
}

Test(bin, reprio)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "R-1", WIRE_CLASS_NORMAL, true, "rw");
    push(c, "R-2", WIRE_CLASS_NORMAL, true, "rw");
    int64_t dl = far_deadline() - 1000;
    expect(c, dc_reprio(c, "R-2", WIRE_CLASS_RUSH4H, dl, &r), &r, WIRE_ST_OK,
           NULL);
    e2e_bin_status(c, dc_get(c, "R-2", &r), &r, WIRE_ST_OK);
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "class"), "rush4h");
    cr_assert_eq(e2e_bin_int(dc_order(&r), "deadline"), dl);
    cr_assert_eq(e2e_bin_int(dc_order(&r), "position"), 0);
    dc_reply_free(&r);
    /* deadline 0 keeps it */
    expect(c, dc_reprio(c, "R-2", WIRE_CLASS_RUSH24H, 0, &r), &r, WIRE_ST_OK,
           NULL);
    e2e_bin_status(c, dc_get(c, "R-2", &r), &r, WIRE_ST_OK);
    cr_assert_eq(e2e_bin_int(dc_order(&r), "deadline"), dl);
    dc_reply_free(&r);
    expect(c, dc_reprio(c, "R-2", 7, 0, &r), &r, WIRE_ST_BADARG, "class 7");
    expect(c, dc_reprio(c, "NOPE-2", WIRE_CLASS_NORMAL, 0, &r), &r,
           WIRE_ST_NOTFOUND, "NOPE-2");
    expect(c, dc_cancel(c, "R-1", "", &r), &r, WIRE_ST_OK, NULL);
    expect(c, dc_reprio(c, "R-1", WIRE_CLASS_RUSH4H, 0, &r), &r,
           WIRE_ST_BADSTATE, "R-1");
    dc_close(c);
}

Test(bin, next_touch_release)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    struct dc_next_args n = {"nw", "wang", 60000, -1};
    /* an empty queue (the warehouse exists once an order was pushed) */
    push(c, "N-1", WIRE_CLASS_NORMAL, false, "nw");
    expect(c, dc_next(c, &n, &r), &r, WIRE_ST_NIL, NULL);
    cr_assert_null(dc_order(&r));
    expect(c, dc_approve(c, "N-1", &r), &r, WIRE_ST_OK, NULL);

    int64_t t0 = e2e_now_ms();
    e2e_bin_status(c, dc_next(c, &n, &r), &r, WIRE_ST_OK);
    const struct dc_record *o = dc_order(&r);
    cr_assert_str_eq(e2e_bin_str(o, "id"), "N-1");
    cr_assert_str_eq(e2e_bin_str(o, "state"), "picking");
    cr_assert_str_eq(e2e_bin_str(o, "picker"), "wang");
    const struct dc_field *lf = dc_field_get(o, WIRE_TAG_LEASE);
    cr_assert(lf && lf->kind == WIRE_KIND_U64);
    uint64_t lease = lf->u;
    int64_t exp = e2e_bin_int(o, "lease_expires");
    cr_assert(exp >= t0 + 60000 && exp <= e2e_now_ms() + 60000, "%" PRId64,
              exp);
    dc_reply_free(&r);
    expect(c, dc_next(c, &n, &r), &r, WIRE_ST_NIL, NULL);

    e2e_bin_status(c, dc_touch(c, "N-1", lease, 120000, &r), &r, WIRE_ST_OK);
    cr_assert_geq(r.value, t0 + 120000);
    dc_reply_free(&r);
    expect(c, dc_touch(c, "N-1", lease + 99, 0, &r), &r, WIRE_ST_LEASE,
           "not the current lease of order N-1");
    expect(c, dc_touch(c, "NOPE-3", lease, 0, &r), &r, WIRE_ST_NOTFOUND, NULL);
    expect(c, dc_release(c, "N-1", lease + 99, &r), &r, WIRE_ST_LEASE, "N-1");
    expect(c, dc_release(c, "N-1", lease, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "N-1"), "queued");
    /* the released lease is stale now */
    expect(c, dc_release(c, "N-1", lease, &r), &r, WIRE_ST_LEASE, NULL);
    expect(c, dc_touch(c, "N-1", lease, 0, &r), &r, WIRE_ST_LEASE, NULL);

    /* a second pick gets a new lease */
    e2e_bin_status(c, dc_next(c, &n, &r), &r, WIRE_ST_OK);
    cr_assert_neq(e2e_bin_int(dc_order(&r), "lease"), (long long)lease);
    dc_reply_free(&r);

    /* the warehouse is required; the lease at most 365 days */
    struct dc_next_args bad = {"", NULL, 0, -1};
    expect(c, dc_next(c, &bad, &r), &r, WIRE_ST_BADARG, NULL);
    struct dc_next_args longlease = {"nw", NULL, 400LL * 86400 * 1000, -1};
    expect(c, dc_next(c, &longlease, &r), &r, WIRE_ST_BADARG, NULL);
    struct dc_next_args nowh = {"no-such-wh", NULL, 0, -1};
    dc_next(c, &nowh, &r);
    cr_assert(r.status == WIRE_ST_NIL || r.status == WIRE_ST_NOTFOUND,
              "status 0x%x", r.status);
    dc_reply_free(&r);
    dc_close(c);
}

Test(bin, outbound_deliver)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "O-1", WIRE_CLASS_RUSH4H, false, "ow");
    const char *raw = "{\"order\":\"O-1\",\"op\":\"wang\"}";
    struct dc_outbound_args ob = {"O-1",     "wang", 0,
                                  "photo-1", raw,    strlen(raw)};
    /* from new: it lands too (the WMS is the truth), and so does a
       delivery that comes first */
    push(c, "O-0", WIRE_CLASS_NORMAL, false, "ow");
    struct dc_outbound_args ob0 = {"O-0", "wang", 0, NULL, NULL, 0};
    expect(c, dc_outbound(c, &ob0, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "O-0"), "shipped");
    push(c, "O-00", WIRE_CLASS_NORMAL, false, "ow");
    expect(c, dc_deliver(c, "O-00", 0, NULL, 0, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "O-00"), "delivered");
    expect(c, dc_approve(c, "O-1", &r), &r, WIRE_ST_OK, NULL);
    /* from queued, unleased: the WMS is the truth */
    expect(c, dc_outbound(c, &ob, &r), &r, WIRE_ST_OK, NULL);
    e2e_bin_status(c, dc_get(c, "O-1", &r), &r, WIRE_ST_OK);
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "state"), "shipped");
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "operator"), "wang");
    cr_assert_eq(e2e_bin_int(dc_order(&r), "outbound_leased"), 0);
    dc_reply_free(&r);
    expect(c, dc_outbound(c, &ob, &r), &r, WIRE_ST_ALREADY, NULL);
    struct dc_outbound_args noop = {"O-1", "", 0, NULL, NULL, 0};
    expect(c, dc_outbound(c, &noop, &r), &r, WIRE_ST_BADARG, "operator");
    struct dc_outbound_args nf = {"NOPE-4", "wang", 0, NULL, NULL, 0};
    expect(c, dc_outbound(c, &nf, &r), &r, WIRE_ST_NOTFOUND, "NOPE-4");

    expect(c, dc_deliver(c, "O-1", 0, "signed", 6, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_str_eq(state_of(c, "O-1"), "delivered");
    expect(c, dc_deliver(c, "O-1", 0, NULL, 0, &r), &r, WIRE_ST_ALREADY, NULL);
    expect(c, dc_deliver(c, "NOPE-4", 0, NULL, 0, &r), &r, WIRE_ST_NOTFOUND,
           NULL);
    expect(c, dc_cancel(c, "O-1", "", &r), &r, WIRE_ST_BADSTATE,
           "order O-1 is delivered, cannot cancel");

    /* the raw payloads are in the audit trail, the repeat recorded too */
    e2e_bin_status(c, dc_audit(c, "O-1", 0, &r), &r, WIRE_ST_OK);
    int outbounds = 0, raws = 0;
    bool signed_ = false;
    for (size_t i = 0; i < r.nrecs; i++) {
        const char *act = e2e_bin_str(&r.recs[i], "action");
        if (strstr(act, "outbound"))
            outbounds++;
        const char *rw = e2e_bin_str(&r.recs[i], "raw");
        if (strcmp(rw, raw) == 0)
            raws++;
        if (strcmp(rw, "signed") == 0)
            signed_ = true;
    }
    cr_assert_eq(outbounds, 2, "outbound entries: %d", outbounds);
    cr_assert_eq(raws, 2);
    cr_assert(signed_);
    dc_reply_free(&r);

    /* from picking, with the picker's lease */
    push(c, "O-2", WIRE_CLASS_NORMAL, true, "ow");
    struct dc_next_args n = {"ow", "li", 0, -1};
    expect(c, dc_next(c, &n, &r), &r, WIRE_ST_OK, NULL);
    struct dc_outbound_args ob2 = {"O-2", "li", 0, NULL, NULL, 0};
    expect(c, dc_outbound(c, &ob2, &r), &r, WIRE_ST_OK, NULL);
    e2e_bin_status(c, dc_get(c, "O-2", &r), &r, WIRE_ST_OK);
    cr_assert_eq(e2e_bin_int(dc_order(&r), "outbound_leased"), 1);
    dc_reply_free(&r);
    dc_close(c);
}

Test(bin, get_peek_audit)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    expect(c, dc_get(c, "NOPE-5", &r), &r, WIRE_ST_NOTFOUND, "order NOPE-5");
    push(c, "G-1", WIRE_CLASS_NORMAL, true, "gw");
    push(c, "G-2", WIRE_CLASS_RUSH24H, true, "gw");
    push(c, "G-3", WIRE_CLASS_RUSH4H, true, "gw");
    push(c, "G-4", WIRE_CLASS_NORMAL, false, "gw");

    e2e_bin_status(c, dc_peek(c, "gw", 0, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 3);
    cr_assert_not(r.more);
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "id"), "G-3");
    cr_assert_str_eq(e2e_bin_str(&r.recs[1], "id"), "G-2");
    cr_assert_str_eq(e2e_bin_str(&r.recs[2], "id"), "G-1");
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(e2e_bin_int(&r.recs[i], "position"), (long long)i);
    dc_reply_free(&r);
    e2e_bin_status(c, dc_peek(c, "gw", 2, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 2);
    dc_reply_free(&r);
    expect(c, dc_peek(c, "gw", 1001, &r), &r, WIRE_ST_BADARG, "1001");
    /* peeking leases nothing */
    cr_assert_str_eq(state_of(c, "G-3"), "queued");

    /* an approved push is one entry: "" -> queued */
    e2e_bin_status(c, dc_audit(c, "G-1", 0, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 1, "entries %zu", r.nrecs);
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "action"), "push");
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "from"), "");
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "to"), "queued");
    dc_reply_free(&r);
    expect(c, dc_approve(c, "G-4", &r), &r, WIRE_ST_OK, NULL);
    e2e_bin_status(c, dc_audit(c, "G-4", 0, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 2, "entries %zu", r.nrecs);
    cr_assert_not(r.more);
    cr_assert_str_eq(e2e_bin_str(&r.recs[0], "to"), "new");
    cr_assert_str_eq(e2e_bin_str(&r.recs[1], "action"), "approve");
    cr_assert_str_eq(e2e_bin_str(&r.recs[1], "from"), "new");
    cr_assert_str_eq(e2e_bin_str(&r.recs[1], "to"), "queued");
    cr_assert_str_eq(e2e_bin_str(&r.recs[1], "raw"), "bin APPROVE G-4");
    long long seq1 = e2e_bin_int(&r.recs[1], "seq");
    dc_reply_free(&r);
    /* from_seq: only the entries from there */
    e2e_bin_status(c, dc_audit(c, "G-4", (uint32_t)seq1, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 1);
    cr_assert_eq(e2e_bin_int(&r.recs[0], "seq"), seq1);
    dc_reply_free(&r);
    e2e_bin_status(c, dc_audit(c, "G-4", (uint32_t)seq1 + 1, &r), &r,
                   WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 0);
    dc_reply_free(&r);
    expect(c, dc_audit(c, "NOPE-5", 0, &r), &r, WIRE_ST_NOTFOUND, NULL);
    /* a body with a byte after its last field */
    char body[16] = {3, 0, 'G', '-', '1', 0};
    dc_q_raw(c, WIRE_OP_GET, 0, body, 6);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADARG,
           "GET body has 1 byte after its last field");
    /* one that ends inside a field */
    dc_q_raw(c, WIRE_OP_GET, 0, body, 3);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADARG, NULL);
    dc_close(c);
}

Test(bin, stats)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "S-1", WIRE_CLASS_NORMAL, true, "sw");
    push(c, "S-2", WIRE_CLASS_RUSH4H, false, "sw");
    e2e_bin_status(c, dc_stats(c, "sw", &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 1);
    const struct dc_record *s = &r.recs[0];
    cr_assert_eq(e2e_bin_int(s, "new"), 1);
    cr_assert_eq(e2e_bin_int(s, "queued"), 1);
    cr_assert_eq(e2e_bin_int(s, "queued_normal"), 1);
    cr_assert_eq(e2e_bin_int(s, "pushes"), 2);
    /* positional tags from 128, every one with its key */
    for (size_t i = 0; i < s->n; i++) {
        cr_assert_eq(s->f[i].tag, WIRE_TAG_STATS + (int)i);
        cr_assert(s->f[i].name[0], "stats field %zu has no key", i);
    }
    cr_assert_str_eq(s->f[0].name, "new");
    cr_assert_not_null(dc_field_find(s, "durability"));
    dc_reply_free(&r);
    e2e_bin_status(c, dc_stats(c, "", &r), &r, WIRE_ST_OK);
    cr_assert_geq(e2e_bin_int(&r.recs[0], "pushes"), 2);
    cr_assert_geq(e2e_bin_int(&r.recs[0], "connected_clients"), 1);
    dc_reply_free(&r);
    dc_close(c);
}

Test(bin, checkpoint)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "K-1", WIRE_CLASS_NORMAL, true, "kw");
    e2e_bin_status(c, dc_checkpoint(c, "cp-1", &r), &r, WIRE_ST_OK);
    cr_assert(strstr(r.text, "cp-1"), "path %s", r.text);
    struct stat st;
    cr_assert_eq(stat(r.text, &st), 0, "%s: %s", r.text, strerror(errno));
    cr_assert(S_ISDIR(st.st_mode));
    dc_reply_free(&r);
    expect(c, dc_checkpoint(c, ".hidden", &r), &r, WIRE_ST_BADARG, ".hidden");
    expect(c, dc_checkpoint(c, "a/b", &r), &r, WIRE_ST_BADARG, NULL);
    expect(c, dc_checkpoint(c, "", &r), &r, WIRE_ST_BADARG, NULL);
    dc_close(c);
}

/* The next event on c within 5 s, parsed. */
static json_t *
next_event(struct dc_client *c)
{
    struct dc_reply r;
    int rc = dc_event(c, &r, 5000);
    cr_assert_eq(rc, 1, "no event within 5 s (%d: %s)", rc, dc_errstr(c));
    cr_assert_eq(r.opcode, WIRE_OP_EVENT);
    cr_assert_eq(r.id, 0);
    json_error_t je;
    json_t *j = json_loadb(r.text, r.text_len, 0, &je);
    cr_assert(j, "event is not JSON (%s): %.*s", je.text, (int)r.text_len,
              r.text);
    dc_reply_free(&r);
    return j;
}

Test(bin, subscribe_rush_jump_event)
{
    struct dc_client *sub = e2e_bin_connect(&dmn);
    struct dc_client *erp = e2e_bin_connect(&dmn);
    struct dc_reply r;
    expect(sub, dc_subscribe(sub, &r), &r, WIRE_ST_OK, NULL);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "E-N%d", i);
        push(erp, id, WIRE_CLASS_NORMAL, true, "ew");
    }
    push(erp, "E-R", WIRE_CLASS_RUSH4H, true, "ew");

    /* Events of other kinds may come first; the jump must come. */
    json_t *j = NULL;
    for (int i = 0; i < 10; i++) {
        j = next_event(sub);
        const char *type = json_string_value(json_object_get(j, "type"));
        if (type && strcmp(type, "jump") == 0)
            break;
        json_decref(j);
        j = NULL;
    }
    cr_assert(j, "no jump event");
    cr_assert_str_eq(json_string_value(json_object_get(j, "order")), "E-R");
    cr_assert_str_eq(json_string_value(json_object_get(j, "warehouse")), "ew");
    cr_assert_str_eq(json_string_value(json_object_get(j, "class")), "rush4h");
    cr_assert_eq(json_integer_value(json_object_get(j, "position")), 0);
    cr_assert_eq(json_integer_value(json_object_get(j, "displaced")), 3);
    cr_assert_gt(json_integer_value(json_object_get(j, "seq")), 0);
    cr_assert(json_is_array(json_object_get(j, "at_risk_orders")));
    json_decref(j);

    /* A listening connection still answers requests. */
    expect(sub, dc_ping(sub, &r), &r, WIRE_ST_OK, NULL);
    expect(sub, dc_unsubscribe(sub, &r), &r, WIRE_ST_OK, NULL);
    push(erp, "E-R2", WIRE_CLASS_RUSH4H, true, "ew");
    expect(sub, dc_ping(sub, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_eq(dc_event(sub, &r, 300), 0, "an event after UNSUBSCRIBE");
    dc_close(sub);
    dc_close(erp);
}

Test(bin, blocked_next_woken_by_push)
{
    struct dc_client *picker = e2e_bin_connect(&dmn);
    struct dc_client *erp = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(erp, "B-0", WIRE_CLASS_NORMAL, false, "bw"); /* the warehouse */

    struct dc_next_args n = {"bw", "zhao", 0, 10000};
    uint32_t id = dc_q_next(picker, &n);
    cr_assert_neq(id, 0);
    cr_assert_eq(dc_send(picker), 0);
    e2e_sleep_ms(200); /* the NEXT is blocked by now */
    struct pollfd p = {.fd = dc_fd(picker), .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 0), 0, "NEXT answered before any order");

    int64_t t0 = e2e_now_ms();
    push(erp, "B-1", WIRE_CLASS_NORMAL, true, "bw");
    e2e_bin_status(picker, dc_recv(picker, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.id, id);
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "id"), "B-1");
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "picker"), "zhao");
    cr_assert_lt(e2e_now_ms() - t0, 3000);
    dc_reply_free(&r);

    /* nothing arrives: NIL after the wait, not before */
    struct dc_next_args t = {"bw", NULL, 0, 300};
    t0 = e2e_now_ms();
    expect(picker, dc_next(picker, &t, &r), &r, WIRE_ST_NIL, NULL);
    int64_t waited = e2e_now_ms() - t0;
    cr_assert(waited >= 280 && waited < 3000, "waited %" PRId64 " ms", waited);
    dc_close(picker);
    dc_close(erp);
}

Test(bin, pipelining_1000)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    enum { N = 1000 };
    static uint32_t ids[N];
    int64_t dl = far_deadline();
    for (int i = 0; i < N; i++) {
        char oid[32];
        snprintf(oid, sizeof oid, "PL-%d", i / 2);
        if (i % 2 == 0) {
            struct dc_push_args a = {.id = oid,
                                     .cls = WIRE_CLASS_NORMAL,
                                     .approved = true,
                                     .deadline = dl,
                                     .warehouse = "plw"};
            ids[i] = dc_q_push(c, &a);
        } else {
            ids[i] = dc_q_get(c, oid);
        }
        cr_assert_neq(ids[i], 0);
    }
    cr_assert_eq(dc_pending(c), N);
    cr_assert_eq(dc_send(c), 0); /* one write */
    for (int i = 0; i < N; i++) {
        struct dc_reply r;
        e2e_bin_status(c, dc_recv(c, &r), &r, WIRE_ST_OK);
        cr_assert_eq(r.id, ids[i], "reply %d: id %u, want %u", i, r.id, ids[i]);
        cr_assert_eq(r.opcode, i % 2 ? WIRE_OP_GET : WIRE_OP_PUSH);
        if (i % 2) {
            char oid[32];
            snprintf(oid, sizeof oid, "PL-%d", i / 2);
            cr_assert_str_eq(e2e_bin_str(dc_order(&r), "id"), oid);
            cr_assert_eq(e2e_bin_int(dc_order(&r), "position"), i / 2);
        }
        dc_reply_free(&r);
    }
    cr_assert_eq(dc_pending(c), 0);
    dc_close(c);
}

Test(bin, unknown_opcode_keeps_the_connection)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    uint32_t id = dc_q_raw(c, 0x7f, 0, NULL, 0);
    e2e_bin_status(c, dc_recv(c, &r), &r, WIRE_ST_BADOP);
    cr_assert_str_eq(r.word, "ERR");
    cr_assert_str_eq(r.msg, "unknown opcode 0x7f");
    cr_assert_eq(r.opcode, 0x7f);
    cr_assert_eq(r.id, id);
    dc_reply_free(&r);
    /* with a body too, and a server-only opcode */
    dc_q_raw(c, 0x55, 0, "abc", 3);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADOP, "0x55");
    dc_q_raw(c, WIRE_OP_EVENT, 0, NULL, 0);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADOP, NULL);
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    dc_close(c);
}

/* Send one raw header (with no body) on a fresh connection that has
   already answered a PING; expect a PROTO reply with opcode and id. */
static void
framing_closes(const unsigned char hdr[WIRE_HEADER_LEN], int want_op,
               uint32_t want_id, const char *msg_has)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_eq(dc_write_raw(c, hdr, WIRE_HEADER_LEN), 0);
    e2e_bin_status(c, dc_recv_any(c, &r), &r, WIRE_ST_PROTO);
    cr_assert_str_eq(r.word, "ERR");
    cr_assert_eq(r.opcode, want_op);
    cr_assert_eq(r.id, want_id);
    if (msg_has)
        cr_assert(strstr(r.msg, msg_has), "'%s' lacks '%s'", r.msg, msg_has);
    dc_reply_free(&r);
    assert_closed(c);
    dc_close(c);
}

Test(bin, bad_version_closes)
{
    const unsigned char h[WIRE_HEADER_LEN] = {0xd5, 2, 0x30, 0, 0x1a, 0,
                                              0,    0, 0,    0, 0,    0};
    framing_closes(h, 0x30, 0x1a, "version 2");
}

Test(bin, body_over_1mib_closes)
{
    /* 1 MiB + 1: refused from the header, before any body is sent */
    const unsigned char h[WIRE_HEADER_LEN] = {0xd5, 1, 0x10, 0, 0x2b, 0,
                                              0,    0, 0x01, 0, 0x10, 0};
    framing_closes(h, 0x10, 0x2b, NULL);
}

Test(bin, body_of_exactly_1mib_is_read)
{
    /* The limit itself is allowed: a 1 MiB PING body is a BADARG (PING
       takes none), and the connection stays open. */
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    char *body = calloc(1, WIRE_BODY_MAX);
    cr_assert(body);
    dc_q_raw(c, WIRE_OP_PING, 0, body, WIRE_BODY_MAX);
    free(body);
    expect(c, dc_recv(c, &r), &r, WIRE_ST_BADARG, NULL);
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    dc_close(c);
}

Test(bin, bad_magic_in_a_later_frame_closes)
{
    const unsigned char h[WIRE_HEADER_LEN] = {0xd4, 1, 0x00, 0, 0x33, 0,
                                              0,    0, 0,    0, 0,    0};
    framing_closes(h, 0, 0, NULL);
}

Test(bin, bad_magic_reported_from_the_first_byte)
{
    /* The server does not wait for the rest of the header. */
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    cr_assert_eq(dc_write_raw(c, "\x00", 1), 0);
    e2e_bin_status(c, dc_recv_any(c, &r), &r, WIRE_ST_PROTO);
    dc_reply_free(&r);
    assert_closed(c);
    dc_close(c);
}

Test(bin, one_byte_at_a_time)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    /* A PUSH frame built with the codec, sent byte by byte on a fresh
       connection (so even the 0xD5 that chooses the protocol comes
       alone), then a GET the same way. */
    struct wire_writer w;
    wire_writer_init(&w);
    size_t at = wire_frame_begin(&w, WIRE_OP_PUSH, 0, 1);
    wire_put_str16(&w, "BY-1", 4);
    wire_put_u8(&w, WIRE_CLASS_RUSH24H);
    wire_put_u8(&w, WIRE_PUSH_APPROVED);
    wire_put_i64(&w, far_deadline());
    wire_put_str16(&w, "byw", 3);
    wire_put_str16(&w, "cust", 4);
    wire_put_u8(&w, 0);
    wire_put_u8(&w, 0);
    wire_put_u8(&w, WIRE_RISK_HIGH_RETURNS);
    wire_put_u16(&w, 1);
    wire_put_str16(&w, "k", 1);
    wire_put_str32(&w, "v", 1);
    wire_frame_end(&w, at);
    at = wire_frame_begin(&w, WIRE_OP_GET, 0, 2);
    wire_put_str16(&w, "BY-1", 4);
    wire_frame_end(&w, at);
    cr_assert_not(w.err);
    for (size_t i = 0; i < w.len; i++) {
        cr_assert_eq(dc_write_raw(c, w.buf + i, 1), 0);
        if (i < 40 || i % 7 == 0)
            e2e_sleep_ms(2);
    }
    wire_writer_free(&w);
    e2e_bin_status(c, dc_recv_any(c, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.opcode, WIRE_OP_PUSH);
    cr_assert_eq(r.id, 1);
    dc_reply_free(&r);
    e2e_bin_status(c, dc_recv_any(c, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.opcode, WIRE_OP_GET);
    cr_assert_eq(r.id, 2);
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "risk"), "high_returns");
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "attrs"), "k=v;");
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "state"), "queued");
    dc_reply_free(&r);
    dc_close(c);
}

Test(bin, resp_and_binary_share_one_port)
{
    struct dc_client *c = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "X-1", WIRE_CLASS_NORMAL, true, "xw");
    redisContext *rc = e2e_connect(&dmn);
    redisReply *rr = e2e_cmd(rc, "GET X-1");
    cr_assert_str_eq(e2e_field_str(rr, "state"), "queued");
    freeReplyObject(rr);
    e2e_expect(rc, "OK", "HOLD X-1");
    redisFree(rc);
    cr_assert_str_eq(state_of(c, "X-1"), "held");
    expect(c, dc_ping(c, &r), &r, WIRE_ST_OK, NULL);
    dc_close(c);
}

/* With --durability batch or none a reply leaves before the persistence
   thread writes; AUDIT still shows every acknowledged entry (the store
   lets the writer catch up before it reads). */
Test(bin_batch, audit_after_ack_in_batch_mode)
{
    struct daemon d = {0};
    e2e_start(&d, "--durability", "batch", NULL);
    struct dc_client *c = e2e_bin_connect(&d);
    struct dc_reply r;
    size_t n = 1;
    for (int i = 0; i < 200 && n == 1; i++) {
        char id[16];
        snprintf(id, sizeof id, "AB-%d", i);
        push(c, id, WIRE_CLASS_NORMAL, true, "abw");
        e2e_bin_status(c, dc_audit(c, id, 0, &r), &r, WIRE_ST_OK);
        n = r.nrecs;
        dc_reply_free(&r);
    }
    dc_close(c);
    e2e_cleanup(&d);
    cr_assert_eq(n, 1, "AUDIT after an acknowledged PUSH: %zu entries", n);
}

/* EVENTS replays the durable log: a rush push's jump is there, in order,
   and a blocked EVENTS is answered by the next event. */
Test(bin, events_replay_and_block)
{
    struct dc_client *c = e2e_bin_connect(&dmn), *w = e2e_bin_connect(&dmn);
    struct dc_reply r;
    push(c, "EV-0", WIRE_CLASS_NORMAL, true, "evw");
    push(c, "EV-1", WIRE_CLASS_RUSH4H, true, "evw");
    e2e_bin_status(c, dc_events(c, 0, 0, -1, &r), &r, WIRE_ST_OK);
    size_t pos = 0, n = 0, len = 0;
    uint64_t seq = 0, last = 0;
    const char *json = NULL;
    bool jump = false;
    while (dc_events_next(&r, &pos, &seq, &json, &len)) {
        cr_assert_gt(seq, last, "events out of order");
        last = seq;
        n++;
        jump |= memmem(json, len, "\"type\":\"jump\"", 13) &&
                memmem(json, len, "EV-1", 4);
    }
    dc_reply_free(&r);
    cr_assert(jump, "the jump of EV-1 is not in the log (%zu events)", n);
    e2e_bin_status(c, dc_events(c, last, 10, -1, &r), &r, WIRE_ST_OK);
    pos = 0;
    cr_assert(!dc_events_next(&r, &pos, &seq, &json, &len),
              "an event after the last one");
    dc_reply_free(&r);
    /* Blocked until the next event. */
    uint32_t id = dc_q_events(w, last, 10, 5000);
    cr_assert_eq(dc_send(w), 0);
    push(c, "EV-2", WIRE_CLASS_RUSH4H, true, "evw");
    cr_assert_eq(dc_recv(w, &r), 0);
    cr_assert_eq(r.id, id);
    cr_assert_eq(r.status, WIRE_ST_OK);
    pos = 0;
    cr_assert(dc_events_next(&r, &pos, &seq, &json, &len));
    cr_assert_gt(seq, last);
    cr_assert(memmem(json, len, "EV-2", 4), "%.*s", (int)len, json);
    dc_reply_free(&r);
    /* Bad arguments. */
    expect(c, dc_events(c, 0, 1001, -1, &r), &r, WIRE_ST_BADARG, "count");
    dc_close(w);
    dc_close(c);
}
