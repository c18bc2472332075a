/*
 * test_pickq.c — the pick queue: a unit test for every operation, then a
 * seeded randomized model test (>= 200,000 operations) against a plain
 * reference model: an array of orders with their expected state and key,
 * sorted with qsort per warehouse when it changed.  The model knows the
 * picked state and its confirm timeout, outbounds from every state (what
 * pickq must report as odd, and which leases are revoked) and deliveries
 * that imply the outbound.
 *
 * The model test's seed comes from PICKQ_SEED when set (to replay a
 * failure), otherwise from the clock; every assertion message names it.
 *
 * Long on purpose: one suite per module is the convention, and pickq has
 * twenty operations, each with its own unit test, plus the model.
 */
#include "pickq.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define T0 INT64_C(1769407200000) /* 2026-01-26T06:00:00Z */
#define MIN INT64_C(60000)
#define HOUR INT64_C(3600000)
#define DAY (24 * HOUR)
#define DL_MIN INT64_C(946684800000)   /* 2000-01-01T00:00:00Z */
#define DL_AHEAD (1826 * DAY)          /* the default window ahead */
#define Y9999 INT64_C(253402300799000) /* 9999-12-31T23:59:59Z */

static struct order *
mk(const char *id, const char *wh, int cls, int64_t deadline, bool approved)
{
    struct order *o = order_new();
    cr_assert_not_null(o);
    cr_assert_eq(order_set_id(o, id, strlen(id)), 0);
    cr_assert_eq(order_set_warehouse(o, wh, strlen(wh)), 0);
    cr_assert_eq(order_set_customer(o, "ACME", 4), 0);
    o->cls = (uint8_t)cls;
    o->deadline = deadline;
    o->state = approved ? STATE_QUEUED : STATE_NEW;
    if (cls == CLASS_ASN) {
        cr_assert_eq(order_attr_set(o, "asn_number", 10, "ASN-1", 5, NULL, 0),
                     0);
        cr_assert_eq(
            order_attr_set(o, "tech_agreement", 14, "TA-1", 4, NULL, 0), 0);
    }
    return o;
}

static struct order *
push(struct pickq *q, const char *id, const char *wh, int cls, int64_t deadline,
     bool approved, int64_t now)
{
    char err[200] = "";
    struct order *o = mk(id, wh, cls, deadline, approved);
    int rc = pickq_push(q, o, now, NULL, err, sizeof(err));
    cr_assert_eq(rc, PICKQ_OK, "push %s: rc %d %s", id, rc, err);
    return o;
}

/* Push n approved orders <prefix>0 .. <prefix>(n-1) to SH01, all of one
   class and deadline; out (when not NULL) gets them in that order. */
static void
push_n(struct pickq *q, const char *prefix, int n, int cls, int64_t deadline,
       int64_t now, struct order **out)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        struct order *o = push(q, id, "SH01", cls, deadline, true, now);
        if (out != NULL)
            out[i] = o;
    }
}

/* The ids of the first k queued orders of wh, space-separated. */
static const char *
queue_ids(struct pickq *q, const char *wh)
{
    static char buf[1024];
    struct order *out[32];
    size_t n = pickq_peek(q, wh, 32, out);
    cr_assert_neq(n, (size_t)-1);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(buf, i ? " " : "");
        strcat(buf, out[i]->id);
    }
    return buf;
}

static size_t
rank_of(struct pickq *q, const struct order *o)
{
    size_t r;
    int64_t eta;
    cr_assert_eq(pickq_position(q, o, &r, &eta), PICKQ_OK, "%s", o->id);
    return r;
}

static struct pickq *
new_q(void)
{
    struct pickq *q = pickq_new(NULL);
    cr_assert_not_null(q);
    return q;
}

/* ------------------------------------------------------------ push */

Test(pickq, config_defaults)
{
    struct pickq_config c;
    pickq_config_default(&c);
    cr_assert_eq(c.lease_ms, 300000);
    cr_assert_eq(c.lease_max_ms, 3600000);
    cr_assert_eq(c.deadline_default[CLASS_ASN], 0);
    cr_assert_eq(c.deadline_default[CLASS_RUSH4H], 4 * HOUR);
    cr_assert_eq(c.deadline_default[CLASS_RUSH24H], 24 * HOUR);
    cr_assert_eq(c.deadline_default[CLASS_NORMAL], 72 * HOUR);
    cr_assert_eq(c.escalate_window[CLASS_RUSH4H], 30 * MIN);
    cr_assert_eq(c.escalate_window[CLASS_RUSH24H], 4 * HOUR);
    cr_assert_eq(c.escalate_window[CLASS_NORMAL], 24 * HOUR);
    cr_assert_eq(c.pick_ms, 120000);
    cr_assert_eq(c.jump_scan, 256);
    cr_assert_eq(c.deadline_min_ms, INT64_C(946684800000));
    cr_assert_eq(c.deadline_ahead_max_ms, 1826 * DAY);
}

Test(pickq, push_new_then_approve)
{
    struct pickq *q = new_q();
    struct order *o =
        push(q, "A", "SH01", CLASS_NORMAL, T0 + 100 * HOUR, false, T0);
    cr_assert_eq(pickq_get(q, "A", 1), o);
    cr_assert_null(pickq_get(q, "B", 1));
    cr_assert_eq(o->state, STATE_NEW);
    cr_assert_eq(o->created, T0);
    cr_assert_eq(o->updated, T0);
    cr_assert_eq(o->seq, 0, "no seq before it is queued");
    cr_assert_str_eq(queue_ids(q, "SH01"), "");
    cr_assert_eq(pickq_position(q, o, NULL, NULL), PICKQ_BADSTATE);

    struct pickq_jump j;
    cr_assert_eq(pickq_approve(q, o, T0 + 1, &j), PICKQ_OK);
    cr_assert_null(j.order, "a normal order does not jump");
    cr_assert_eq(o->state, STATE_QUEUED);
    cr_assert_eq(o->seq, 1);
    cr_assert_eq(o->eff_cls, CLASS_NORMAL);
    cr_assert_eq(o->updated, T0 + 1);
    cr_assert_str_eq(queue_ids(q, "SH01"), "A");
    size_t r;
    int64_t eta;
    cr_assert_eq(pickq_position(q, o, &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 0);
    cr_assert_eq(eta, 120000);
    cr_assert_eq(pickq_approve(q, o, T0 + 2, NULL), PICKQ_BADSTATE);

    struct pickq_stats st;
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.pushes, 1);
    cr_assert_eq(st.approvals, 1);
    cr_assert_eq(st.by_state[STATE_QUEUED], 1);
    cr_assert_eq(st.queued_by_class[CLASS_NORMAL], 1);
    pickq_free(q);
}

Test(pickq, push_applies_class_default_deadline)
{
    struct pickq *q = new_q();
    struct order *a = push(q, "R4", "SH01", CLASS_RUSH4H, 0, false, T0);
    struct order *b = push(q, "R24", "SH01", CLASS_RUSH24H, 0, false, T0);
    struct order *c = push(q, "N", "SH01", CLASS_NORMAL, 0, false, T0);
    cr_assert_eq(a->deadline, T0 + 4 * HOUR);
    cr_assert_eq(b->deadline, T0 + 24 * HOUR);
    cr_assert_eq(c->deadline, T0 + 72 * HOUR);

    char err[200] = "";
    struct order *d = mk("ASN1", "SH01", CLASS_ASN, 0, true);
    cr_assert_eq(pickq_push(q, d, T0, NULL, err, sizeof(err)), PICKQ_BADARG);
    cr_assert(strstr(err, "class asn needs a deadline") != NULL, "%s", err);
    cr_assert_eq(d->deadline, 0, "a refused order is left as it came");
    cr_assert_null(pickq_get(q, "ASN1", 4));
    order_free(d);
    pickq_free(q);
}

Test(pickq, push_intake_errors)
{
    struct pickq *q = new_q();
    char err[200];
    struct {
        const char *id;
        int cls;
        int fulfil;
        const char *wh;
        int state;
        int rc;
        const char *msg;
    } cases[] = {
        {"A1", CLASS_ASN, FULFIL_STOCK, "SH01", STATE_NEW, PICKQ_BADARG,
         "asn order needs attribute asn_number"},
        {"D1", CLASS_NORMAL, FULFIL_TO_DRAWING, "SH01", STATE_QUEUED,
         PICKQ_BADARG, "to_drawing order needs attribute drawing_version"},
        {"", CLASS_NORMAL, FULFIL_STOCK, "SH01", STATE_NEW, PICKQ_BADARG,
         "order id is empty"},
        {"W1", CLASS_NORMAL, FULFIL_STOCK, "", STATE_NEW, PICKQ_BADARG,
         "warehouse is missing"},
        {"S1", CLASS_NORMAL, FULFIL_STOCK, "SH01", STATE_PICKING,
         PICKQ_BADSTATE, "not picking"},
        {"S2", CLASS_NORMAL, FULFIL_STOCK, "SH01", STATE_SHIPPED,
         PICKQ_BADSTATE, "not shipped"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct order *o = order_new();
        order_set_id(o, cases[i].id, strlen(cases[i].id));
        order_set_warehouse(o, cases[i].wh, strlen(cases[i].wh));
        o->cls = (uint8_t)cases[i].cls;
        o->fulfil = (uint8_t)cases[i].fulfil;
        o->state = (uint8_t)cases[i].state;
        o->deadline = T0 + HOUR;
        err[0] = '\0';
        cr_assert_eq(pickq_push(q, o, T0, NULL, err, sizeof(err)), cases[i].rc,
                     "case %zu", i);
        cr_assert(strstr(err, cases[i].msg) != NULL, "case %zu: '%s'", i, err);
        cr_assert_null(pickq_get(q, cases[i].id, strlen(cases[i].id)));
        order_free(o);
    }
    /* An order whose id was never set is refused, not looked up. */
    struct order *o = order_new();
    order_set_warehouse(o, "SH01", 4);
    o->deadline = T0 + HOUR;
    cr_assert_eq(pickq_push(q, o, T0, NULL, err, sizeof(err)), PICKQ_BADARG);
    order_free(o);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.pushes, 0);
    cr_assert_eq(st.by_state[STATE_NEW] + st.by_state[STATE_QUEUED], 0);
    pickq_free(q);
}

/* A queued order pushed at T0 with the given deadline: PICKQ_OK or the
   refusal, with err.  A refused order is checked unchanged and freed. */
static int
push_deadline(struct pickq *q, const char *id, int64_t deadline, char *err,
              size_t errlen)
{
    struct order *o = mk(id, "SH01", CLASS_RUSH24H, deadline, true);
    err[0] = '\0';
    int rc = pickq_push(q, o, T0, NULL, err, errlen);
    if (rc != PICKQ_OK) {
        cr_assert_eq(o->deadline, deadline, "%s: left as it came", id);
        cr_assert_eq(o->state, STATE_QUEUED);
        cr_assert_null(pickq_get(q, id, strlen(id)));
        order_free(o);
    }
    return rc;
}

Test(pickq, push_deadline_window)
{
    struct pickq *q = new_q();
    char err[300];
    const int64_t hi = T0 + DL_AHEAD;
    cr_assert_eq(push_deadline(q, "LO", DL_MIN, err, sizeof(err)), PICKQ_OK,
                 "%s", err);
    cr_assert_eq(push_deadline(q, "HI", hi, err, sizeof(err)), PICKQ_OK, "%s",
                 err);
    cr_assert_eq(pickq_get(q, "HI", 2)->deadline, hi);
    cr_assert_eq(push_deadline(q, "LO1", DL_MIN - 1, err, sizeof(err)),
                 PICKQ_BADARG);
    cr_assert_str_eq(err,
                     "order LO1: deadline 946684799999 "
                     "(1999-12-31T23:59:59.999Z) is outside the accepted "
                     "window (2000-01-01T00:00:00.000Z to now + 1826 days)");
    cr_assert_eq(push_deadline(q, "HI1", hi + 1, err, sizeof(err)),
                 PICKQ_BADARG);
    cr_assert(strstr(err, "deadline 1927173600001 (2031-01-26T06:00:00.001Z)"
                          " is outside") != NULL,
              "%s", err);
    cr_assert_eq(push_deadline(q, "Y9999", Y9999, err, sizeof(err)),
                 PICKQ_BADARG);
    cr_assert(strstr(err, "order Y9999: deadline 253402300799000 "
                          "(9999-12-31T23:59:59.000Z) is outside the "
                          "accepted window (2000-01-01T00:00:00.000Z to now "
                          "+ 1826 days)") != NULL,
              "%s", err);
    cr_assert_eq(push_deadline(q, "ONE", 1, err, sizeof(err)), PICKQ_BADARG);
    cr_assert(strstr(err, "1970-01-01T00:00:00.001Z") != NULL, "%s", err);
    cr_assert_eq(push_deadline(q, "MAX", INT64_MAX, err, sizeof(err)),
                 PICKQ_BADARG, "no overflow at the top");

    /* A class default is not a given deadline: never checked (here a
       window that ends before now + 24 h would refuse it). */
    struct pickq_config c;
    pickq_config_default(&c);
    c.deadline_ahead_max_ms = HOUR;
    struct pickq *q2 = pickq_new(&c);
    cr_assert_not_null(q2);
    cr_assert_eq(push_deadline(q2, "DEF", 0, err, sizeof(err)), PICKQ_OK, "%s",
                 err);
    cr_assert_eq(pickq_get(q2, "DEF", 3)->deadline, T0 + 24 * HOUR);
    cr_assert_eq(push_deadline(q2, "H1", T0 + HOUR + 1, err, sizeof(err)),
                 PICKQ_BADARG);
    cr_assert(strstr(err, "to now + 3600000 ms)") != NULL, "%s", err);
    pickq_free(q2);

    /* 0 ahead: no upper bound; the lower one is configurable too. */
    c.deadline_ahead_max_ms = 0;
    c.deadline_min_ms = T0;
    q2 = pickq_new(&c);
    cr_assert_not_null(q2);
    cr_assert_eq(push_deadline(q2, "Y", Y9999, err, sizeof(err)), PICKQ_OK,
                 "%s", err);
    cr_assert_eq(push_deadline(q2, "EARLY", T0 - 1, err, sizeof(err)),
                 PICKQ_BADARG);
    cr_assert(strstr(err, "(2026-01-26T06:00:00.000Z to any later time)") !=
                  NULL,
              "%s", err);
    pickq_free(q2);

    /* The window moves with now. */
    struct order *o = mk("LATER", "SH01", CLASS_NORMAL, hi + DAY, false);
    cr_assert_eq(pickq_push(q, o, T0 + DAY, NULL, err, sizeof(err)), PICKQ_OK,
                 "%s", err);

    /* Refusals changed nothing. */
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.pushes, 3);
    cr_assert_eq(st.by_state[STATE_QUEUED], 2);
    cr_assert_str_eq(queue_ids(q, "SH01"), "LO HI");
    pickq_free(q);
}

Test(pickq, push_is_idempotent)
{
    struct pickq *q = new_q();
    char err[200];
    struct order *a = push(q, "RD1", "SH01", CLASS_RUSH4H, 0, false, T0);

    /* Same content, deadline defaulted again later: the same order. */
    struct order *b = mk("RD1", "SH01", CLASS_RUSH4H, 0, false);
    cr_assert_eq(pickq_push(q, b, T0 + 5000, NULL, err, sizeof(err)),
                 PICKQ_SAME);
    cr_assert_eq(b->deadline, 0);
    /* Same content with the deadline spelled out. */
    b->deadline = T0 + 4 * HOUR;
    cr_assert_eq(pickq_push(q, b, T0 + 5000, NULL, err, sizeof(err)),
                 PICKQ_SAME);
    /* Pushed approved this time: state is not content, nothing changes. */
    b->state = STATE_QUEUED;
    cr_assert_eq(pickq_push(q, b, T0 + 5000, NULL, err, sizeof(err)),
                 PICKQ_SAME);
    cr_assert_eq(a->state, STATE_NEW);
    cr_assert_eq(a->updated, T0);

    order_set_customer(b, "Geely", 5);
    err[0] = '\0';
    cr_assert_eq(pickq_push(q, b, T0 + 5000, NULL, err, sizeof(err)),
                 PICKQ_EXISTS);
    cr_assert(strstr(err, "RD1 exists with different content") != NULL, "%s",
              err);
    order_set_customer(b, "ACME", 4);
    order_attr_set(b, "carrier", 7, "SF", 2, NULL, 0);
    cr_assert_eq(pickq_push(q, b, T0 + 5000, NULL, err, sizeof(err)),
                 PICKQ_EXISTS);
    order_free(b);
    b = mk("RD1", "SH01", CLASS_RUSH4H, T0 + 5 * HOUR, false);
    cr_assert_eq(pickq_push(q, b, T0 + 5000, NULL, err, sizeof(err)),
                 PICKQ_EXISTS);
    order_free(b);
    cr_assert_eq(pickq_get(q, "RD1", 3), a);
    pickq_free(q);
}

Test(pickq, order_is_class_then_deadline_then_arrival)
{
    struct pickq *q = new_q();
    push(q, "N1", "SH01", CLASS_NORMAL, T0 + 50 * HOUR, true, T0);
    push(q, "R1", "SH01", CLASS_RUSH24H, T0 + 30 * HOUR, true, T0);
    push(q, "N2", "SH01", CLASS_NORMAL, T0 + 40 * HOUR, true, T0);
    push(q, "A1", "SH01", CLASS_ASN, T0 + 60 * HOUR, true, T0);
    push(q, "R2", "SH01", CLASS_RUSH24H, T0 + 30 * HOUR, true, T0);
    push(q, "N3", "SH01", CLASS_NORMAL, T0 + 40 * HOUR, true, T0);
    push(q, "X1", "BJ02", CLASS_ASN, T0 + HOUR, true, T0);
    cr_assert_str_eq(queue_ids(q, "SH01"), "A1 R1 R2 N2 N3 N1");
    cr_assert_str_eq(queue_ids(q, "BJ02"), "X1");
    cr_assert_str_eq(queue_ids(q, "nowhere"), "");

    struct order *top[3];
    cr_assert_eq(pickq_peek(q, "SH01", 3, top), 3);
    cr_assert_str_eq(top[2]->id, "R2");
    cr_assert_eq(pickq_peek(q, "SH01", 0, top), 0);

    const char *want[] = {"A1", "R1", "R2", "N2", "N3", "N1"};
    for (size_t i = 0; i < 6; i++) {
        struct order *o = pickq_get(q, want[i], 2);
        cr_assert_eq(rank_of(q, o), i, "%s", want[i]);
    }
    for (size_t i = 0; i < 6; i++) {
        struct order *o = NULL;
        cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
        cr_assert_str_eq(o->id, want[i]);
    }
    struct order *o = (struct order *)1;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_EMPTY);
    cr_assert_null(o);
    pickq_free(q);
}

/* ------------------------------------------------------------ ERP side */

Test(pickq, hold_and_approve_keep_the_place)
{
    struct pickq *q = new_q();
    struct order *x1 =
        push(q, "X1", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    push(q, "X2", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    push(q, "X3", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, false, T0);

    cr_assert_eq(pickq_hold(q, x1, T0 + 10), PICKQ_OK);
    cr_assert_eq(x1->state, STATE_HELD);
    cr_assert_eq(x1->updated, T0 + 10);
    cr_assert_str_eq(queue_ids(q, "SH01"), "X2 X3");
    cr_assert_eq(pickq_hold(q, x1, T0 + 10), PICKQ_BADSTATE);
    cr_assert_eq(pickq_approve(q, x1, T0 + 20, NULL), PICKQ_OK);
    cr_assert_eq(x1->seq, 1, "seq kept");
    cr_assert_str_eq(queue_ids(q, "SH01"), "X1 X2 X3");

    cr_assert_eq(pickq_hold(q, n, T0 + 30), PICKQ_OK, "hold from new");
    cr_assert_eq(pickq_approve(q, n, T0 + 40, NULL), PICKQ_OK);
    cr_assert_eq(n->seq, 4, "first entry gets the next seq");
    cr_assert_str_eq(queue_ids(q, "SH01"), "X1 X2 X3 N");

    struct order *p = NULL;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &p), PICKQ_OK);
    cr_assert_eq(pickq_hold(q, p, T0), PICKQ_BADSTATE, "not while picking");
    cr_assert_eq(pickq_approve(q, p, T0, NULL), PICKQ_BADSTATE);
    pickq_free(q);
}

Test(pickq, cancel_from_every_state)
{
    struct pickq *q = new_q();
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, false, T0);
    struct order *h =
        push(q, "H", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, false, T0);
    struct order *qd =
        push(q, "Q", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *p = push(q, "P", "SH01", CLASS_ASN, T0 + 90 * HOUR, true, T0);
    struct order *s =
        push(q, "S", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    cr_assert_eq(pickq_hold(q, h, T0), PICKQ_OK);
    struct order *got;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, p);
    cr_assert_eq(pickq_outbound(q, s, "op", T0, T0, NULL), PICKQ_OK);
    cr_assert_eq(pickq_next_timer(q), T0 + 300000);

    struct order *all[] = {n, h, qd, p};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(pickq_cancel(q, all[i], T0 + 1 + (int64_t)i), PICKQ_OK,
                     "%s", all[i]->id);
        cr_assert_eq(all[i]->state, STATE_CANCELLED);
        cr_assert_eq(all[i]->updated, T0 + 1 + (int64_t)i);
        /* The queued one's heap node shared these bytes. */
        cr_assert_eq(order_outbound_at(all[i]), 0, "%s", all[i]->id);
        cr_assert_eq(order_delivered_at(all[i]), 0, "%s", all[i]->id);
        cr_assert_eq(pickq_cancel(q, all[i], T0), PICKQ_BADSTATE);
    }
    cr_assert_eq(pickq_cancel(q, s, T0), PICKQ_BADSTATE, "shipped");
    cr_assert_str_eq(queue_ids(q, "SH01"), "");
    cr_assert_eq(pickq_next_timer(q), INT64_MAX, "lease timer gone");
    cr_assert_eq(pickq_tick(q, T0 + 10 * HOUR, NULL), 0);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.cancels, 4);
    cr_assert_eq(st.by_state[STATE_CANCELLED], 4);
    cr_assert_eq(st.by_state[STATE_SHIPPED], 1);
    pickq_free(q);
}

Test(pickq, reprio_both_ways)
{
    struct pickq_config c;
    pickq_config_default(&c);
    struct pickq *q = pickq_new(&c);
    struct pickq_jump j;
    struct order *o[5];
    char id[8];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "N%d", i);
        o[i] = push(q, id, "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    }
    /* Up: a rush jumps the four before it. */
    cr_assert_eq(
        pickq_reprio(q, o[4], CLASS_RUSH4H, T0 + 3 * HOUR, T0 + 5, &j, NULL, 0),
        PICKQ_OK);
    cr_assert_eq(o[4]->cls, CLASS_RUSH4H);
    cr_assert_eq(o[4]->eff_cls, CLASS_RUSH4H);
    cr_assert_eq(o[4]->deadline, T0 + 3 * HOUR);
    cr_assert_eq(o[4]->updated, T0 + 5);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N4 N0 N1 N2 N3");
    cr_assert_eq(j.order, o[4]);
    cr_assert_eq(j.position, 0);
    cr_assert_eq(j.displaced, 4);
    /* Down again with the deadline kept (0): back to its place, no jump. */
    cr_assert_eq(pickq_reprio(q, o[4], CLASS_NORMAL, 0, T0 + 6, &j, NULL, 0),
                 PICKQ_OK);
    cr_assert_null(j.order);
    cr_assert_eq(o[4]->deadline, T0 + 3 * HOUR);
    /* Its deadline is within the normal window (24 h) and the rush24h
       window (4 h) at once: the effective class is computed again, one
       class up at most. */
    cr_assert_eq(o[4]->eff_cls, CLASS_RUSH24H);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N4 N0 N1 N2 N3");
    cr_assert_eq(pickq_reprio(q, o[4], CLASS_NORMAL, T0 + 90 * HOUR, T0 + 7, &j,
                              NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(o[4]->eff_cls, CLASS_NORMAL);
    cr_assert_null(j.order);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N0 N1 N2 N3 N4");
    /* Down: an earlier deadline among normals is no queue jump either. */
    cr_assert_eq(
        pickq_reprio(q, o[0], CLASS_NORMAL, T0 + 95 * HOUR, T0, &j, NULL, 0),
        PICKQ_OK);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N1 N2 N3 N4 N0");
    cr_assert_eq(
        pickq_reprio(q, o[0], CLASS_NORMAL, T0 + 80 * HOUR, T0, &j, NULL, 0),
        PICKQ_OK);
    cr_assert_null(j.order);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N0 N1 N2 N3 N4");

    /* Errors say why and leave the order as it was. */
    char err[300];
    cr_assert_eq(
        pickq_reprio(q, o[1], CLASS_COUNT, 0, T0, &j, err, sizeof(err)),
        PICKQ_BADARG);
    cr_assert_str_eq(err, "order N1: unknown class 4");
    cr_assert_eq(pickq_reprio(q, o[1], -1, 0, T0, &j, NULL, 0), PICKQ_BADARG,
                 "err may be NULL");
    err[0] = '\0';
    cr_assert_eq(
        pickq_reprio(q, o[1], CLASS_NORMAL, -5, T0, &j, err, sizeof(err)),
        PICKQ_BADARG);
    cr_assert_neq(err[0], '\0');
    err[0] = '\0';
    cr_assert_eq(pickq_reprio(q, o[1], CLASS_ASN, 0, T0, &j, err, sizeof(err)),
                 PICKQ_BADARG, "asn needs its documents");
    cr_assert_str_eq(err, "order N1: asn order needs attribute asn_number");
    order_attr_set(o[1], "asn_number", 10, "A-9", 3, NULL, 0);
    cr_assert_eq(pickq_reprio(q, o[1], CLASS_ASN, 0, T0, &j, err, sizeof(err)),
                 PICKQ_BADARG);
    cr_assert_str_eq(err, "order N1: asn order needs attribute tech_agreement");
    cr_assert_null(j.order);
    cr_assert_eq(o[1]->cls, CLASS_NORMAL);
    cr_assert_eq(o[1]->eff_cls, CLASS_NORMAL);
    cr_assert_eq(o[1]->deadline, T0 + 90 * HOUR);
    cr_assert_eq(o[1]->updated, T0);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N0 N1 N2 N3 N4");
    order_attr_set(o[1], "tech_agreement", 14, "T-9", 3, NULL, 0);
    cr_assert_eq(pickq_reprio(q, o[1], CLASS_ASN, 0, T0, &j, NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(j.order, o[1]);
    cr_assert_eq(j.displaced, 1);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N1 N0 N2 N3 N4");

    /* New, held and picking orders take the new key without a jump;
       a picking one goes back with it. */
    struct order *p = NULL;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &p), PICKQ_OK);
    cr_assert_eq(p, o[1]);
    cr_assert_eq(
        pickq_reprio(q, p, CLASS_NORMAL, T0 + 99 * HOUR, T0, &j, NULL, 0),
        PICKQ_OK);
    cr_assert_null(j.order);
    cr_assert_eq(p->state, STATE_PICKING);
    cr_assert_eq(pickq_release(q, p, p->lease, T0), PICKQ_OK);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N0 N2 N3 N4 N1");
    struct order *nw =
        push(q, "NEW", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, false, T0);
    cr_assert_eq(pickq_reprio(q, nw, CLASS_RUSH4H, 0, T0, &j, NULL, 0),
                 PICKQ_OK);
    cr_assert_null(j.order);
    cr_assert_eq(nw->state, STATE_NEW);
    cr_assert_eq(pickq_approve(q, nw, T0, &j), PICKQ_OK);
    cr_assert_eq(j.order, nw, "the jump comes when it enters");
    cr_assert_eq(j.displaced, 5);

    cr_assert_eq(pickq_outbound(q, nw, "op", T0, T0, NULL), PICKQ_OK);
    cr_assert_eq(pickq_reprio(q, nw, CLASS_ASN, 0, T0, &j, NULL, 0),
                 PICKQ_BADSTATE);
    struct pickq_stats st;
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.jumps, 3);
    pickq_free(q);
}

Test(pickq, reprio_deadline_window)
{
    struct pickq *q = new_q();
    struct pickq_jump j;
    char err[300];
    struct order *a =
        push(q, "A", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *b =
        push(q, "B", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    const int64_t now = T0 + 10;
    const int64_t bad[] = {DL_MIN - 1, now + DL_AHEAD + 1, Y9999, INT64_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(
            pickq_reprio(q, b, CLASS_RUSH4H, bad[i], now, &j, err, sizeof(err)),
            PICKQ_BADARG, "case %zu", i);
        char want[64];
        snprintf(want, sizeof(want), "order B: deadline %" PRId64 " (", bad[i]);
        cr_assert(strstr(err, want) == err, "case %zu: %s", i, err);
        cr_assert(strstr(err, ") is outside the accepted window "
                              "(2000-01-01T00:00:00.000Z to now + 1826 "
                              "days)") != NULL,
                  "case %zu: %s", i, err);
        cr_assert_null(j.order);
        cr_assert_eq(b->cls, CLASS_NORMAL);
        cr_assert_eq(b->deadline, T0 + 90 * HOUR);
        cr_assert_eq(b->updated, T0);
        cr_assert_str_eq(queue_ids(q, "SH01"), "A B");
    }
    cr_assert_eq(
        pickq_reprio(q, b, CLASS_RUSH4H, Y9999, now, &j, err, sizeof(err)),
        PICKQ_BADARG);
    cr_assert(strstr(err, "order B: deadline 253402300799000 "
                          "(9999-12-31T23:59:59.000Z) is outside") == err,
              "%s", err);

    /* Both bounds are inside. */
    cr_assert_eq(
        pickq_reprio(q, b, CLASS_NORMAL, DL_MIN, now, &j, err, sizeof(err)),
        PICKQ_OK, "%s", err);
    cr_assert_eq(b->deadline, DL_MIN);
    cr_assert_str_eq(queue_ids(q, "SH01"), "B A");
    cr_assert_eq(pickq_reprio(q, b, CLASS_NORMAL, now + DL_AHEAD, now, &j, err,
                              sizeof(err)),
                 PICKQ_OK, "%s", err);
    cr_assert_eq(b->deadline, now + DL_AHEAD);
    cr_assert_str_eq(queue_ids(q, "SH01"), "A B");

    /* The intake rules come first: an asn order without its documents
       and with a bad deadline is told about the documents. */
    cr_assert_eq(
        pickq_reprio(q, a, CLASS_ASN, Y9999, now, &j, err, sizeof(err)),
        PICKQ_BADARG);
    cr_assert_str_eq(err, "order A: asn order needs attribute asn_number");

    /* Not a reprio-able state: BADSTATE, also with a message. */
    cr_assert_eq(pickq_outbound(q, a, "op", now, now, NULL), PICKQ_OK);
    cr_assert_eq(
        pickq_reprio(q, a, CLASS_NORMAL, Y9999, now, &j, err, sizeof(err)),
        PICKQ_BADSTATE);
    cr_assert_str_eq(err, "order A is shipped, cannot reprioritise");
    pickq_free(q);
}

/* ------------------------------------------------------------ picker side */

Test(pickq, next_touch_and_lease_bounds)
{
    struct pickq *q = new_q();
    struct order *a =
        push(q, "A", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    struct order *b =
        push(q, "B", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    struct order *c =
        push(q, "C", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    struct order *o = NULL;
    cr_assert_eq(pickq_next(q, "SH01", "picker-1", 0, T0 + 1, &o), PICKQ_OK);
    cr_assert_eq(o, a);
    cr_assert_eq(a->state, STATE_PICKING);
    cr_assert_eq(a->lease, 1);
    cr_assert_eq(a->picked_at, T0 + 1);
    cr_assert_eq(a->lease_expires, T0 + 1 + 300000);
    cr_assert_str_eq(a->picker, "picker-1");
    cr_assert_eq(pickq_next(q, "SH01", "picker-2", 10 * HOUR, T0 + 2, &o),
                 PICKQ_OK);
    cr_assert_eq(o, b);
    cr_assert_eq(b->lease, 2);
    cr_assert_eq(b->lease_expires, T0 + 2 + HOUR, "capped at lease_max_ms");
    cr_assert_eq(pickq_next_timer(q), T0 + 1 + 300000);

    char longname[ORDER_NAME_MAX + 2];
    memset(longname, 'p', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(pickq_next(q, "SH01", longname, 0, T0, &o), PICKQ_BADARG);
    cr_assert_null(o);
    cr_assert_eq(c->state, STATE_QUEUED);
    cr_assert_eq(pickq_next(q, "SH01", NULL, 5000, T0 + 3, &o), PICKQ_OK);
    cr_assert_eq(o, c);
    cr_assert_str_eq(c->picker, "");
    cr_assert_eq(c->lease_expires, T0 + 3 + 5000);
    cr_assert_eq(pickq_next_timer(q), T0 + 3 + 5000);
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_EMPTY);
    cr_assert_eq(pickq_next(q, "GZ03", "p", 0, T0, &o), PICKQ_EMPTY,
                 "an unknown warehouse is an empty one");

    /* Touch: extend, shorten, wrong lease, not picking. */
    cr_assert_eq(pickq_touch(q, a, 1, 0, T0 + 1000), PICKQ_OK);
    cr_assert_eq(a->lease_expires, T0 + 1000 + 300000);
    cr_assert_eq(pickq_touch(q, c, 3, 60000, T0 + 1000), PICKQ_OK);
    cr_assert_eq(c->lease_expires, T0 + 61000);
    cr_assert_eq(pickq_next_timer(q), T0 + 61000);
    cr_assert_eq(pickq_touch(q, c, 3, 100, T0 + 1000), PICKQ_OK);
    cr_assert_eq(pickq_next_timer(q), T0 + 1100, "shorter lease re-keys");
    cr_assert_eq(pickq_touch(q, a, 2, 0, T0), PICKQ_LEASE);
    cr_assert_eq(pickq_touch(q, a, 99, 0, T0), PICKQ_LEASE);
    struct order *d =
        push(q, "D", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    cr_assert_eq(pickq_touch(q, d, 0, 0, T0), PICKQ_LEASE, "queued");
    struct pickq_stats st;
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.picks, 3);
    cr_assert_eq(st.by_state[STATE_PICKING], 3);
    pickq_free(q);
}

Test(pickq, release_returns_to_its_place)
{
    struct pickq *q = new_q();
    struct order *a =
        push(q, "A", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    push(q, "B", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    push(q, "C", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *o;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_eq(o, a);
    push(q, "D", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    cr_assert_eq(pickq_release(q, a, a->lease + 1, T0 + 10), PICKQ_LEASE);
    cr_assert_eq(pickq_release(q, a, a->lease, T0 + 10), PICKQ_OK);
    cr_assert_eq(a->state, STATE_QUEUED);
    cr_assert_eq(a->seq, 1);
    cr_assert_eq(a->updated, T0 + 10);
    cr_assert_str_eq(queue_ids(q, "SH01"), "A B C D");
    cr_assert_eq(pickq_release(q, a, a->lease, T0), PICKQ_LEASE);
    cr_assert_eq(pickq_next_timer(q), T0 + 66 * HOUR, "escalation again");
    /* The next lease is a new one. */
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_eq(o, a);
    cr_assert_eq(a->lease, 2);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.releases, 1);
    pickq_free(q);
}

struct tick_log {
    int expired, escalated;
    char text[512];
};

static void
on_expired(void *ctx, struct order *o, uint64_t old_lease)
{
    struct tick_log *l = ctx;
    char s[128];
    l->expired++;
    snprintf(s, sizeof(s), "E:%s:%" PRIu64 " ", o->id, old_lease);
    strcat(l->text, s);
}

static void
on_escalated(void *ctx, struct order *o, int from)
{
    struct tick_log *l = ctx;
    char s[128];
    l->escalated++;
    snprintf(s, sizeof(s), "U:%s:%s>%s ", o->id, order_class_name(from),
             order_class_name(o->eff_cls));
    strcat(l->text, s);
}

Test(pickq, tick_expires_leases)
{
    struct pickq *q = new_q();
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    struct order *a = push(q, "A", "SH01", CLASS_ASN, T0 + 9 * HOUR, true, T0);
    push(q, "B", "SH01", CLASS_ASN, T0 + 9 * HOUR, true, T0);
    struct order *o;
    cr_assert_eq(pickq_next_timer(q), INT64_MAX, "asn never escalates");
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_eq(pickq_next_timer(q), T0 + 300000);
    cr_assert_eq(pickq_tick(q, T0 + 299999, &cb), 0);
    cr_assert_eq(a->state, STATE_PICKING);
    cr_assert_eq(pickq_tick(q, T0 + 300000, &cb), 1);
    cr_assert_str_eq(log.text, "E:A:1 ");
    cr_assert_eq(a->state, STATE_QUEUED);
    cr_assert_eq(a->updated, T0 + 300000);
    cr_assert_str_eq(queue_ids(q, "SH01"), "A B", "back at its place");
    cr_assert_eq(pickq_touch(q, a, 1, 0, T0), PICKQ_LEASE);
    cr_assert_eq(pickq_next_timer(q), INT64_MAX);
    cr_assert_eq(pickq_tick(q, T0 + 99 * HOUR, NULL), 0);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.expiries, 1);
    pickq_free(q);
}

Test(pickq, tick_escalates_step_by_step)
{
    struct pickq *q = new_q();
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 30 * HOUR, true, T0);
    push(q, "R", "SH01", CLASS_RUSH24H, T0 + 40 * HOUR, true, T0);
    cr_assert_eq(n->eff_cls, CLASS_NORMAL);
    cr_assert_str_eq(queue_ids(q, "SH01"), "R N");
    cr_assert_eq(pickq_next_timer(q), T0 + 6 * HOUR);
    cr_assert_eq(pickq_tick(q, T0 + 6 * HOUR - 1, &cb), 0);
    cr_assert_eq(pickq_tick(q, T0 + 6 * HOUR, &cb), 1);
    cr_assert_str_eq(log.text, "U:N:normal>rush24h ");
    cr_assert_eq(n->cls, CLASS_NORMAL, "the pushed class stays");
    cr_assert_eq(n->eff_cls, CLASS_RUSH24H);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N R", "earliest deadline first");

    /* Far past the rush24h and rush4h windows: one class up is all; N's
       next timer is the end of its promotion, at its deadline. */
    log.text[0] = '\0';
    cr_assert_eq(pickq_next_timer(q), T0 + 30 * HOUR);
    cr_assert_eq(pickq_tick(q, T0 + 29 * HOUR + 45 * MIN, &cb), 0);
    cr_assert_str_eq(log.text, "");
    cr_assert_eq(n->eff_cls, CLASS_RUSH24H);
    cr_assert_eq(pickq_tick(q, T0 + 36 * HOUR, &cb), 2);
    cr_assert_str_eq(log.text, "U:N:rush24h>normal U:R:rush24h>rush4h ");
    cr_assert_eq(pickq_next_timer(q), T0 + 40 * HOUR, "R's deadline");
    cr_assert_str_eq(queue_ids(q, "SH01"), "R N");
    struct pickq_stats st;
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.escalations, 2, "the end of a promotion is none");
    cr_assert_eq(st.queued_by_class[CLASS_ASN], 0);
    cr_assert_eq(st.queued_by_class[CLASS_RUSH4H], 1);
    cr_assert_eq(st.queued_by_class[CLASS_RUSH24H], 0);
    cr_assert_eq(st.queued_by_class[CLASS_NORMAL], 1);
    pickq_free(q);
}

Test(pickq, escalation_at_entry_and_disabled_windows)
{
    struct pickq *q = new_q();
    struct order *a = push(q, "A", "SH01", CLASS_NORMAL, T0 + HOUR, true, T0);
    cr_assert_eq(a->eff_cls, CLASS_RUSH24H,
                 "within 24 h and 4 h at once: one class up only");
    cr_assert_eq(pickq_next_timer(q), T0 + HOUR, "the promotion's end");
    /* The window's edge is inside it. */
    struct order *b =
        push(q, "B", "SH01", CLASS_NORMAL, T0 + 24 * HOUR, true, T0);
    cr_assert_eq(b->eff_cls, CLASS_RUSH24H);
    struct order *e =
        push(q, "C", "SH01", CLASS_NORMAL, T0 + 24 * HOUR + 1, true, T0);
    cr_assert_eq(e->eff_cls, CLASS_NORMAL);
    cr_assert_eq(pickq_reprio(q, e, CLASS_NORMAL, 0, T0 + 1, NULL, NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(e->eff_cls, CLASS_RUSH24H);
    pickq_free(q);

    struct pickq_config c;
    pickq_config_default(&c);
    c.escalate_window[CLASS_RUSH24H] = 0;
    q = pickq_new(&c);
    a = push(q, "A", "SH01", CLASS_NORMAL, T0 + HOUR, true, T0);
    cr_assert_eq(a->eff_cls, CLASS_RUSH24H);
    struct order *r = push(q, "R", "SH01", CLASS_RUSH24H, T0 + HOUR, true, T0);
    cr_assert_eq(r->eff_cls, CLASS_RUSH24H, "rush24h does not escalate");
    cr_assert_eq(pickq_next_timer(q), T0 + HOUR, "A's promotion ends");
    cr_assert_eq(pickq_tick(q, T0 + 2 * HOUR, NULL), 1);
    cr_assert_eq(pickq_next_timer(q), INT64_MAX);
    pickq_free(q);
}

Test(pickq, escalation_due_while_picking_fires_after_expiry)
{
    struct pickq *q = new_q();
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 30 * HOUR, true, T0);
    struct order *o;
    cr_assert_eq(pickq_next(q, "SH01", "p", HOUR, T0, &o), PICKQ_OK);
    cr_assert_eq(pickq_tick(q, T0 + 7 * HOUR, &cb), 2);
    cr_assert_str_eq(log.text, "E:N:1 U:N:normal>rush24h ");
    cr_assert_eq(n->eff_cls, CLASS_RUSH24H);

    /* Released with an escalation already due: the original key first,
       the promotion at the next tick. */
    struct order *m =
        push(q, "M", "BJ02", CLASS_RUSH24H, T0 + 30 * HOUR, true, T0);
    cr_assert_eq(pickq_next(q, "BJ02", "p", 4 * HOUR, T0 + 25 * HOUR, &o),
                 PICKQ_OK);
    cr_assert_eq(o, m);
    cr_assert_eq(pickq_release(q, m, m->lease, T0 + 27 * HOUR), PICKQ_OK);
    cr_assert_eq(m->eff_cls, CLASS_RUSH24H);
    cr_assert_eq(pickq_next_timer(q), T0 + 26 * HOUR);
    log.text[0] = '\0';
    cr_assert_eq(pickq_tick(q, T0 + 27 * HOUR, &cb), 1);
    cr_assert_str_eq(log.text, "U:M:rush24h>rush4h ");
    pickq_free(q);
}

/* The escalation policy (issue 13; README, "Surge day"): tools/sim found
   rush4h orders promoted into asn ahead of OEM orders, and orders
   promoted several classes at once. */
Test(pickq, escalation_never_passes_an_asn_order)
{
    struct pickq *q = new_q();
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    push(q, "A", "SH01", CLASS_ASN, T0 + 2 * HOUR, true, T0);
    /* Within the rush4h window (30 min) at intake: not promoted. */
    struct order *r =
        push(q, "R", "SH01", CLASS_RUSH4H, T0 + 20 * MIN, true, T0);
    cr_assert_eq(r->eff_cls, CLASS_RUSH4H, "not into asn at intake");
    struct order *s =
        push(q, "S", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    cr_assert_eq(pickq_next_timer(q), INT64_MAX, "rush4h never escalates");
    /* Past every window and deadline: nothing moves. */
    cr_assert_eq(pickq_tick(q, T0 + 4 * HOUR, &cb), 0);
    cr_assert_str_eq(log.text, "");
    cr_assert_eq(s->eff_cls, CLASS_RUSH4H);
    /* Re-prioritised to rush4h inside its window: not into asn either. */
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    cr_assert_eq(pickq_reprio(q, n, CLASS_RUSH4H, T0 + 4 * HOUR + 10 * MIN,
                              T0 + 4 * HOUR, NULL, NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(n->eff_cls, CLASS_RUSH4H);
    cr_assert_str_eq(queue_ids(q, "SH01"), "A R S N", "the asn order first");
    struct order *o;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0 + 4 * HOUR, &o), PICKQ_OK);
    cr_assert_str_eq(o->id, "A");
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.escalations, 0);
    cr_assert_eq(st.queued_by_class[CLASS_ASN], 0);
    pickq_free(q);
}

Test(pickq, escalation_at_most_one_class_above_its_own)
{
    struct pickq *q = new_q();
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 30 * HOUR, true, T0);
    struct order *r =
        push(q, "R", "SH01", CLASS_RUSH24H, T0 + 5 * HOUR, true, T0);
    /* Pushed 10 min before its deadline, inside every window. */
    struct order *m =
        push(q, "M", "SH01", CLASS_NORMAL, T0 + 10 * MIN, true, T0);
    cr_assert_eq(m->eff_cls, CLASS_RUSH24H, "one up at intake");
    cr_assert_eq(pickq_next_timer(q), T0 + 10 * MIN, "M's promotion ends");
    /* M's deadline passes; R is promoted once, not twice. */
    cr_assert_eq(pickq_tick(q, T0 + 4 * HOUR + 50 * MIN, &cb), 2);
    cr_assert_str_eq(log.text, "U:M:rush24h>normal U:R:rush24h>rush4h ");
    cr_assert_eq(r->eff_cls, CLASS_RUSH4H, "inside rush4h's window: no asn");
    /* Far past the normal, rush24h and rush4h windows of N. */
    log.text[0] = '\0';
    cr_assert_eq(pickq_tick(q, T0 + 29 * HOUR + 45 * MIN, &cb), 2);
    cr_assert_str_eq(log.text, "U:R:rush4h>rush24h U:N:normal>rush24h ");
    cr_assert_eq(n->eff_cls, CLASS_RUSH24H);
    cr_assert_eq(pickq_next_timer(q), T0 + 30 * HOUR);
    cr_assert_str_eq(queue_ids(q, "SH01"), "R N M");
    /* A reprio computes it again from the new class: one up at most. */
    cr_assert_eq(pickq_reprio(q, m, CLASS_NORMAL, T0 + 30 * HOUR,
                              T0 + 30 * HOUR - MIN, NULL, NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(m->eff_cls, CLASS_RUSH24H);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.escalations, 3);
    pickq_free(q);
}

/* tools/sim, five understaffed surge days: with promotions held past the
   deadline, late normal orders sat in rush24h ahead of the normal orders
   that could still make it (6,797 late against 4,830). */
Test(pickq, escalation_ends_at_the_deadline)
{
    struct pickq *q = new_q();
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    struct order *n =
        push(q, "N", "SH01", CLASS_NORMAL, T0 + 10 * HOUR, true, T0);
    struct order *m =
        push(q, "M", "SH01", CLASS_NORMAL, T0 + 20 * HOUR, true, T0);
    cr_assert_eq(n->eff_cls, CLASS_RUSH24H);
    cr_assert_eq(m->eff_cls, CLASS_RUSH24H);
    cr_assert_str_eq(queue_ids(q, "SH01"), "N M");
    cr_assert_eq(pickq_next_timer(q), T0 + 10 * HOUR);
    cr_assert_eq(pickq_tick(q, T0 + 10 * HOUR - 1, &cb), 0);
    cr_assert_eq(pickq_tick(q, T0 + 10 * HOUR, &cb), 1);
    cr_assert_str_eq(log.text, "U:N:rush24h>normal ");
    cr_assert_eq(n->eff_cls, CLASS_NORMAL);
    cr_assert_str_eq(queue_ids(q, "SH01"), "M N", "M can still make it");
    /* Not promoted again, and an order pushed late is not promoted. */
    struct order *p =
        push(q, "P", "SH01", CLASS_NORMAL, T0 + 9 * HOUR, true, T0 + 11 * HOUR);
    cr_assert_eq(p->eff_cls, CLASS_NORMAL);
    cr_assert_eq(pickq_tick(q, T0 + 11 * HOUR, &cb), 0);
    cr_assert_eq(pickq_next_timer(q), T0 + 20 * HOUR, "M's end; N, P none");
    cr_assert_str_eq(queue_ids(q, "SH01"), "M P N");
    /* A promotion due while its lease ran, the deadline passed too: the
       order comes back at its own class. */
    struct order *o;
    cr_assert_eq(pickq_next(q, "SH01", "p", 12 * HOUR, T0 + 11 * HOUR, &o),
                 PICKQ_OK);
    cr_assert_eq(o, m);
    cr_assert_eq(pickq_release(q, m, m->lease, T0 + 21 * HOUR), PICKQ_OK);
    log.text[0] = '\0';
    cr_assert_eq(pickq_tick(q, T0 + 21 * HOUR, &cb), 1);
    cr_assert_str_eq(log.text, "U:M:rush24h>normal ");
    cr_assert_eq(pickq_next_timer(q), INT64_MAX);
    cr_assert_str_eq(queue_ids(q, "SH01"), "P N M");
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.escalations, 2, "promotions at intake only");
    cr_assert_eq(st.queued_by_class[CLASS_RUSH24H], 0);
    pickq_free(q);
}

Test(pickq, outbound_from_queued_and_picking)
{
    struct pickq *q = new_q();
    struct order *a =
        push(q, "A", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    struct order *b =
        push(q, "B", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    struct order *c =
        push(q, "C", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    struct order *n =
        push(q, "N", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, false, T0);
    struct order *o;

    /* Unleased: straight from the queue. */
    cr_assert_eq(pickq_outbound(q, b, "wms-7", T0 + 50, T0 + 60, NULL),
                 PICKQ_OK);
    cr_assert_eq(b->state, STATE_SHIPPED);
    cr_assert(!b->outbound_leased);
    cr_assert_eq(b->outbound_at, T0 + 50);
    cr_assert_eq(b->updated, T0 + 60);
    cr_assert_str_eq(b->operator_, "wms-7");
    cr_assert_str_eq(queue_ids(q, "SH01"), "A C");
    cr_assert_eq(pickq_outbound(q, b, "wms-7", T0 + 50, T0 + 70, NULL),
                 PICKQ_SAME);
    cr_assert_eq(b->updated, T0 + 60);

    /* Leased: the pick duration is measured. */
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_eq(o, a);
    char longname[ORDER_NAME_MAX + 2];
    memset(longname, 'o', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(pickq_outbound(q, a, longname, T0, T0, NULL), PICKQ_BADARG);
    cr_assert_eq(a->state, STATE_PICKING);
    cr_assert_eq(pickq_outbound(q, a, NULL, T0 + 90000, T0 + 90000, NULL),
                 PICKQ_OK);
    cr_assert(a->outbound_leased);
    cr_assert_eq(pickq_next_timer(q), INT64_MAX,
                 "lease timer gone (rush4h orders never escalate)");
    struct pickq_stats st;
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.mean_pick_ms, 90000, "first sample replaces default");
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0 + 100000, &o), PICKQ_OK);
    cr_assert_eq(o, c);
    cr_assert_eq(pickq_outbound(q, c, "p", T0 + 270000, T0 + 270000, NULL),
                 PICKQ_OK);
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.mean_pick_ms, 90000 + (170000 - 90000) / 8);
    cr_assert_eq(st.outbounds, 3);
    cr_assert_eq(st.outbounds_unleased, 1);
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.mean_pick_ms, 100000);
    cr_assert_eq(st.by_state[STATE_SHIPPED], 3);

    /* Deliver. */
    cr_assert_eq(n->state, STATE_NEW);
    cr_assert_eq(pickq_deliver(q, b, NULL, T0 + HOUR, T0 + HOUR + 5, NULL),
                 PICKQ_OK);
    cr_assert_eq(b->state, STATE_DELIVERED);
    cr_assert_eq(b->delivered_at, T0 + HOUR);
    cr_assert_eq(b->updated, T0 + HOUR + 5);
    cr_assert_eq(pickq_deliver(q, b, NULL, T0 + HOUR, T0 + HOUR + 9, NULL),
                 PICKQ_SAME);
    cr_assert_eq(pickq_outbound(q, b, "op", T0, T0, NULL), PICKQ_SAME);
    cr_assert_eq(pickq_cancel(q, b, T0), PICKQ_BADSTATE);
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.deliveries, 1);
    pickq_free(q);
}

static void collect(void *ctx, struct order *o);

/* Every state an outbound can meet, and what the info says of each. */
Test(pickq, outbound_from_every_state)
{
    struct pickq *q = new_q();
    int64_t dl = T0 + 90 * HOUR;
    struct order *n = push(q, "N", "SH01", CLASS_NORMAL, dl, false, T0);
    struct order *h = push(q, "H", "SH01", CLASS_NORMAL, dl, false, T0);
    struct order *qd = push(q, "Q", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *c = push(q, "C", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *p = push(q, "P", "SH01", CLASS_ASN, dl, true, T0);
    struct order *r = push(q, "R", "SH01", CLASS_ASN, dl, true, T0);
    struct order *k = push(q, "K", "SH01", CLASS_ASN, dl, true, T0);
    struct order *got;
    cr_assert_eq(pickq_hold(q, h, T0), PICKQ_OK);
    cr_assert_eq(pickq_cancel(q, c, T0 + 1), PICKQ_OK);
    cr_assert_eq(pickq_next(q, "SH01", "wang", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, p);
    cr_assert_eq(pickq_next(q, "SH01", "li", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, r);
    cr_assert_eq(pickq_next(q, "SH01", "zhao", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, k);
    cr_assert_eq(pickq_picked(q, k, k->lease, T0 + MIN), PICKQ_OK);
    uint64_t r_lease = r->lease;

    static const struct {
        const char *id, *op;
        int from;
        bool anomaly, revoked, leased;
        const char *why;
    } cases[] = {
        {"N", "wms", STATE_NEW, true, false, false,
         "shipped before it was approved"},
        {"H", "wms", STATE_HELD, true, false, false, "shipped while on hold"},
        {"Q", "wms", STATE_QUEUED, true, false, false,
         "shipped without being picked"},
        {"C", "wms", STATE_CANCELLED, true, false, false,
         "shipped after it was cancelled"},
        {"P", "wang", STATE_PICKING, false, false, true, ""},
        {"R", "wang", STATE_PICKING, true, true, true,
         "shipped by another picker than the lease holder"},
        {"K", "dock-3", STATE_PICKED, false, false, true, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct order *o = pickq_get(q, cases[i].id, strlen(cases[i].id));
        struct pickq_outbound_info info;
        memset(&info, 0xa5, sizeof(info));
        int64_t at = T0 + 2 * MIN + (int64_t)i;
        cr_assert_eq(pickq_outbound(q, o, cases[i].op, at, at + 5, &info),
                     PICKQ_OK, "%s", o->id);
        cr_assert_eq(o->state, STATE_SHIPPED, "%s", o->id);
        cr_assert_eq(o->outbound_at, at);
        cr_assert_eq(o->updated, at + 5);
        cr_assert_str_eq(o->operator_, cases[i].op);
        cr_assert_eq(o->outbound_leased, cases[i].leased, "%s", o->id);
        cr_assert_eq(info.from, cases[i].from, "%s", o->id);
        cr_assert_eq(info.implied, false);
        cr_assert_eq(info.anomaly, cases[i].anomaly, "%s", o->id);
        cr_assert_str_eq(info.why, cases[i].why, "%s", o->id);
        cr_assert_eq(info.revoked, cases[i].revoked, "%s", o->id);
        if (cases[i].revoked) {
            cr_assert_eq(info.revoked_lease, r_lease);
            cr_assert_str_eq(info.revoked_picker, "li");
        } else {
            cr_assert_eq(info.revoked_lease, 0);
            cr_assert_str_empty(info.revoked_picker);
        }
        /* A repeat changes nothing and says where it stands. */
        cr_assert_eq(pickq_outbound(q, o, "x", at + 9, at + 9, &info),
                     PICKQ_SAME);
        cr_assert_eq(info.from, STATE_SHIPPED);
        cr_assert(!info.anomaly && !info.revoked);
        cr_assert_str_eq(info.why, "");
        cr_assert_eq(o->updated, at + 5);
        cr_assert_str_eq(o->operator_, cases[i].op);
    }
    (void)n;
    (void)qd;

    /* The revoked lease is stale for everything the picker may say. */
    cr_assert_eq(pickq_touch(q, r, r_lease, 0, T0 + 3 * MIN), PICKQ_LEASE);
    cr_assert_eq(pickq_release(q, r, r_lease, T0 + 3 * MIN), PICKQ_LEASE);
    cr_assert_eq(pickq_picked(q, r, r_lease, T0 + 3 * MIN), PICKQ_LEASE);
    cr_assert_eq(r->state, STATE_SHIPPED);

    cr_assert_str_eq(queue_ids(q, "SH01"), "");
    cr_assert_eq(pickq_next_timer(q), INT64_MAX, "no timer left");
    cr_assert_eq(pickq_tick(q, T0 + 99 * HOUR, NULL), 0);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.outbounds, 7);
    cr_assert_eq(st.outbounds_unleased, 4);
    cr_assert_eq(st.outbounds_anomalous, 5);
    cr_assert_eq(st.revocations, 1);
    cr_assert_eq(st.cancels, 1, "the cancel happened");
    cr_assert_eq(st.by_state[STATE_SHIPPED], 7);
    cr_assert_eq(st.by_state[STATE_CANCELLED], 0);
    cr_assert_eq(st.by_state[STATE_PICKED], 0);
    /* K's pick ended at PICKED (1 min), P's at its outbound (2 min 4 ms);
       the revoked one and the outbound of the picked one are not picks. */
    cr_assert_eq(st.mean_pick_ms, MIN + (MIN + 4) / 8);

    /* The cancelled one moved to the young end of the finished list. */
    char seen[64] = "";
    cr_assert_eq(pickq_forget_finished(q, T0 + 2 * MIN + 8, collect, seen), 3);
    cr_assert_str_eq(seen, "N H Q ");
    cr_assert_eq(pickq_forget_finished(q, T0 + 2 * MIN + 9, collect, seen), 1);
    cr_assert_str_eq(seen, "N H Q C ");
    pickq_free(q);
}

Test(pickq, outbound_revokes_only_between_named_pickers)
{
    struct pickq *q = new_q();
    int64_t dl = T0 + 90 * HOUR;
    struct order *a = push(q, "A", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *b = push(q, "B", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *got;
    struct pickq_outbound_info info;
    /* An anonymous lease: who shipped it cannot be told apart. */
    cr_assert_eq(pickq_next(q, "SH01", NULL, 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, a);
    cr_assert_eq(pickq_outbound(q, a, "wang", T0 + 1, T0 + 1, &info), PICKQ_OK);
    cr_assert(!info.revoked && !info.anomaly);
    /* An outbound naming nobody does not revoke either. */
    cr_assert_eq(pickq_next(q, "SH01", "li", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, b);
    cr_assert_eq(pickq_outbound(q, b, "", T0 + 2, T0 + 2, &info), PICKQ_OK);
    cr_assert(!info.revoked && !info.anomaly);
    pickq_free(q);
}

Test(pickq, picked_ends_the_lease_and_the_pick)
{
    struct pickq *q = new_q();
    int64_t dl = T0 + 90 * HOUR;
    struct order *a = push(q, "A", "SH01", CLASS_ASN, dl, true, T0);
    struct order *b = push(q, "B", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *got;
    cr_assert_eq(pickq_picked(q, a, 0, T0), PICKQ_LEASE, "queued");
    cr_assert_eq(pickq_next(q, "SH01", "wang", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, a);
    uint64_t lease = a->lease;
    cr_assert_eq(pickq_picked(q, a, lease + 1, T0 + MIN), PICKQ_LEASE);
    cr_assert_eq(a->state, STATE_PICKING);
    cr_assert_eq(pickq_picked(q, a, lease, T0 + 2 * MIN), PICKQ_OK);
    cr_assert_eq(a->state, STATE_PICKED);
    cr_assert_eq(a->pick_done_at, T0 + 2 * MIN);
    cr_assert_eq(a->updated, T0 + 2 * MIN);
    cr_assert(!a->unconfirmed_fired);
    cr_assert_eq(a->lease, lease, "kept: a repeat is recognised");
    cr_assert_str_eq(a->picker, "wang");
    cr_assert_eq(pickq_picked(q, a, lease, T0 + 3 * MIN), PICKQ_SAME);
    cr_assert_eq(a->pick_done_at, T0 + 2 * MIN);
    cr_assert_eq(a->updated, T0 + 2 * MIN);
    cr_assert_eq(pickq_picked(q, a, lease + 1, T0 + 3 * MIN), PICKQ_LEASE);

    /* The lease timer is gone; the confirm timer (30 min) replaces it. */
    cr_assert_eq(pickq_next_timer(q), T0 + 32 * MIN);
    cr_assert_eq(pickq_touch(q, a, lease, 0, T0 + 3 * MIN), PICKQ_LEASE);
    cr_assert_eq(pickq_release(q, a, lease, T0 + 3 * MIN), PICKQ_LEASE);
    cr_assert_eq(pickq_tick(q, T0 + 20 * MIN, NULL), 0, "no expiry");
    cr_assert_eq(a->state, STATE_PICKED);
    cr_assert_eq(pickq_next(q, "SH01", "li", 0, T0 + 21 * MIN, &got), PICKQ_OK);
    cr_assert_eq(got, b, "never handed out again");
    cr_assert_eq(pickq_next(q, "SH01", "li", 0, T0 + 21 * MIN, &got),
                 PICKQ_EMPTY);

    /* Physically picked: no cancel, no hold, no approve; reprio is data. */
    cr_assert_eq(pickq_cancel(q, a, T0), PICKQ_BADSTATE);
    cr_assert_eq(pickq_hold(q, a, T0), PICKQ_BADSTATE);
    cr_assert_eq(pickq_approve(q, a, T0, NULL), PICKQ_BADSTATE);
    cr_assert_eq(
        pickq_reprio(q, a, CLASS_ASN, dl + HOUR, T0 + 22 * MIN, NULL, NULL, 0),
        PICKQ_OK);
    cr_assert_eq(a->state, STATE_PICKED);
    cr_assert_eq(a->deadline, dl + HOUR);
    cr_assert_eq(pickq_position(q, a, NULL, NULL), PICKQ_BADSTATE);

    struct pickq_stats st;
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.picked, 1);
    cr_assert_eq(st.by_state[STATE_PICKED], 1);
    cr_assert_eq(st.by_state[STATE_PICKING], 1);
    cr_assert_eq(st.mean_pick_ms, 2 * MIN, "the pick ended at PICKED");

    /* The outbound, much later, does not measure the pick again and
       removes the confirm timer. */
    struct pickq_outbound_info info;
    cr_assert_eq(
        pickq_outbound(q, a, "dock", T0 + 25 * MIN, T0 + 25 * MIN, &info),
        PICKQ_OK);
    cr_assert_eq(info.from, STATE_PICKED);
    cr_assert(!info.anomaly);
    cr_assert(a->outbound_leased);
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.mean_pick_ms, 2 * MIN);
    cr_assert_eq(st.outbounds_unleased, 0);
    cr_assert_eq(pickq_next_timer(q), b->lease_expires);
    cr_assert_eq(pickq_picked(q, a, lease, T0 + 26 * MIN), PICKQ_LEASE,
                 "shipped: the lease is history");
    pickq_free(q);
}

struct unconf_log {
    int n;
    char text[256];
};

static void
on_unconfirmed(void *ctx, struct order *o)
{
    struct unconf_log *l = ctx;
    l->n++;
    cr_assert_eq(o->state, STATE_PICKED);
    cr_assert(o->unconfirmed_fired);
    strcat(l->text, o->id);
    strcat(l->text, " ");
}

Test(pickq, confirm_timeout_fires_once)
{
    struct pickq_config cfg;
    pickq_config_default(&cfg);
    cr_assert_eq(cfg.confirm_timeout_ms, 30 * MIN);
    cfg.confirm_timeout_ms = 10 * MIN;
    cfg.lease_ms = HOUR;
    struct pickq *q = pickq_new(&cfg);
    int64_t dl = T0 + 90 * HOUR;
    struct order *a = push(q, "A", "SH01", CLASS_ASN, dl, true, T0);
    struct order *b = push(q, "B", "SH01", CLASS_ASN, dl, true, T0);
    struct order *got;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(pickq_picked(q, a, a->lease, T0 + MIN), PICKQ_OK);
    cr_assert_eq(pickq_picked(q, b, b->lease, T0 + 2 * MIN), PICKQ_OK);
    cr_assert_eq(pickq_next_timer(q), T0 + 11 * MIN);

    struct unconf_log log = {0};
    struct pickq_tick_cb cb = {NULL, NULL, on_unconfirmed, &log};
    cr_assert_eq(pickq_tick(q, T0 + 11 * MIN - 1, &cb), 0);
    cr_assert_eq(pickq_tick(q, T0 + 11 * MIN, &cb), 1);
    cr_assert_str_eq(log.text, "A ");
    cr_assert_eq(a->state, STATE_PICKED, "it stays picked");
    cr_assert(a->unconfirmed_fired);
    cr_assert_eq(a->updated, T0 + MIN, "not a transition");
    cr_assert_eq(pickq_next_timer(q), T0 + 12 * MIN);
    /* B is confirmed in time: its timer goes with it. */
    cr_assert_eq(pickq_outbound(q, b, "p", T0 + 11 * MIN, T0 + 11 * MIN, NULL),
                 PICKQ_OK);
    cr_assert_eq(pickq_next_timer(q), INT64_MAX);
    cr_assert_eq(pickq_tick(q, T0 + 99 * HOUR, &cb), 0, "fires once");
    cr_assert_eq(log.n, 1);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.unconfirmed, 1);
    /* A fired order ships like any picked one. */
    cr_assert_eq(pickq_outbound(q, a, "p", T0 + HOUR, T0 + HOUR, NULL),
                 PICKQ_OK);
    pickq_free(q);

    /* 0 disables. */
    cfg.confirm_timeout_ms = 0;
    q = pickq_new(&cfg);
    a = push(q, "A", "SH01", CLASS_ASN, dl, true, T0);
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(pickq_picked(q, a, a->lease, T0 + MIN), PICKQ_OK);
    cr_assert_eq(pickq_next_timer(q), INT64_MAX);
    cr_assert_eq(pickq_tick(q, T0 + 99 * HOUR, &cb), 0);
    pickq_free(q);
}

Test(pickq, deliver_implies_the_outbound)
{
    struct pickq *q = new_q();
    int64_t dl = T0 + 90 * HOUR;
    struct order *n = push(q, "N", "SH01", CLASS_NORMAL, dl, false, T0);
    struct order *h = push(q, "H", "SH01", CLASS_NORMAL, dl, false, T0);
    struct order *qd = push(q, "Q", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *c = push(q, "C", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *p = push(q, "P", "SH01", CLASS_ASN, dl, true, T0);
    struct order *r = push(q, "R", "SH01", CLASS_ASN, dl, true, T0);
    struct order *k = push(q, "K", "SH01", CLASS_ASN, dl, true, T0);
    struct order *s = push(q, "S", "SH01", CLASS_NORMAL, dl, true, T0);
    struct order *got;
    struct pickq_outbound_info info;
    cr_assert_eq(pickq_hold(q, h, T0), PICKQ_OK);
    cr_assert_eq(pickq_cancel(q, c, T0), PICKQ_OK);
    cr_assert_eq(pickq_next(q, "SH01", "wang", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, p);
    cr_assert_eq(pickq_next(q, "SH01", "li", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, r);
    cr_assert_eq(pickq_next(q, "SH01", "zhao", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, k);
    cr_assert_eq(pickq_picked(q, k, k->lease, T0 + MIN), PICKQ_OK);
    cr_assert_eq(pickq_outbound(q, s, "wms", T0 + 2, T0 + 2, NULL), PICKQ_OK);

    char longname[ORDER_NAME_MAX + 2];
    memset(longname, 'o', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(pickq_deliver(q, p, longname, T0, T0, &info), PICKQ_BADARG);
    cr_assert_eq(p->state, STATE_PICKING, "nothing changed");

    static const struct {
        const char *id, *op;
        int from;
        bool implied, anomaly, revoked;
    } cases[] = {
        {"N", NULL, STATE_NEW, true, true, false},
        {"H", NULL, STATE_HELD, true, true, false},
        {"Q", "", STATE_QUEUED, true, true, false},
        {"C", NULL, STATE_CANCELLED, true, true, false},
        {"P", NULL, STATE_PICKING, true, false, false},
        {"R", "carrier-9", STATE_PICKING, true, true, true},
        {"K", NULL, STATE_PICKED, true, false, false},
        {"S", "carrier-9", STATE_SHIPPED, false, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct order *o = pickq_get(q, cases[i].id, strlen(cases[i].id));
        int64_t at = T0 + HOUR + (int64_t)i;
        cr_assert_eq(pickq_deliver(q, o, cases[i].op, at, at + 7, &info),
                     PICKQ_OK, "%s", o->id);
        cr_assert_eq(o->state, STATE_DELIVERED);
        cr_assert_eq(o->delivered_at, at);
        cr_assert_eq(o->updated, at + 7);
        cr_assert_eq(info.from, cases[i].from, "%s", o->id);
        cr_assert_eq(info.implied, cases[i].implied, "%s", o->id);
        cr_assert_eq(info.anomaly, cases[i].anomaly, "%s", o->id);
        cr_assert_eq(info.revoked, cases[i].revoked, "%s", o->id);
        if (cases[i].implied) {
            cr_assert_eq(o->outbound_at, at, "%s", o->id);
            cr_assert_str_eq(o->operator_, cases[i].op ? cases[i].op : "");
        } else {
            cr_assert_eq(o->outbound_at, T0 + 2, "the real outbound kept");
            cr_assert_str_eq(o->operator_, "wms");
        }
        cr_assert_eq(pickq_deliver(q, o, NULL, at, at + 9, &info), PICKQ_SAME);
        cr_assert_eq(info.from, STATE_DELIVERED);
        cr_assert(!info.implied);
    }
    (void)n;
    (void)qd;
    cr_assert_eq(pickq_next_timer(q), INT64_MAX);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.deliveries, 8);
    cr_assert_eq(st.outbounds, 8);
    cr_assert_eq(st.outbounds_anomalous, 6, "S left the queue unpicked too");
    cr_assert_eq(st.revocations, 1);
    cr_assert_eq(st.by_state[STATE_DELIVERED], 8);
    pickq_free(q);
}

/* ------------------------------------------------------------ reading */

/* Once leases are handed out while orders wait, the estimate follows the
   measured pick rate of the warehouse (its lease gaps), not the number of
   leases open at one moment; a gap after the queue ran empty is not a
   measure of the pickers and is left out. */
Test(pickq, estimate_follows_measured_pick_rate)
{
    struct pickq *q = new_q();
    struct order *o[6];
    push_n(q, "R", 6, CLASS_NORMAL, T0 + 90 * HOUR, T0, o);
    struct order *got;
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(pickq_next(q, "SH01", "b", 0, T0 + 30000, &got), PICKQ_OK);
    size_t r;
    int64_t eta;
    cr_assert_eq(pickq_position(q, o[2], &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 0);
    cr_assert_eq(eta, 30000, "one gap of 30 s measured");
    cr_assert_eq(pickq_position(q, o[5], &r, &eta), PICKQ_OK);
    cr_assert_eq(eta, 4 * 30000);
    /* A slower gap moves the mean by 1/8 of the difference. */
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + 30000 + 110000, &got),
                 PICKQ_OK);
    cr_assert_eq(pickq_position(q, o[5], &r, &eta), PICKQ_OK);
    cr_assert_eq(eta, 3 * (30000 + (110000 - 30000) / 8));
    /* Drain the queue, wait an hour, queue one: that hour is no gap. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + 200000, &got),
                     PICKQ_OK);
    struct order *late =
        push(q, "RL", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0 + HOUR);
    push(q, "RM", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0 + HOUR);
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + HOUR + 1000, &got),
                 PICKQ_OK);
    cr_assert_eq(got, late);
    struct order *rm = pickq_get(q, "RM", 2);
    cr_assert_eq(pickq_position(q, rm, &r, &eta), PICKQ_OK);
    cr_assert_lt(eta, 60000, "the idle hour counted as a gap: %lld",
                 (long long)eta);
    pickq_free(q);
}

/* The estimate counts the orders that go ahead of a waiting one (issue
   13: tools/sim found the position-based estimate late by a median of 23
   simulated minutes, because later rush orders are picked first):
   (rank + 1) * gap * (1 + rho), rho the orders entering ahead of its
   class per lease gap (EWMA 1/8), capped at 2. */
Test(pickq, estimate_counts_orders_that_go_ahead)
{
    struct pickq *q = new_q();
    struct order *nq[6];
    char id[8];
    push_n(q, "N", 6, CLASS_NORMAL, T0 + 90 * HOUR, T0, nq);
    struct order *got;
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0, &got), PICKQ_OK);
    /* One rush24h order arrives in each 60 s gap and is picked first. */
    for (int i = 1; i <= 2; i++) {
        snprintf(id, sizeof id, "R%d", i);
        push(q, id, "SH01", CLASS_RUSH24H, T0 + 30 * HOUR, true,
             T0 + i * 60000 - 30000);
        cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + i * 60000, &got),
                     PICKQ_OK);
        cr_assert_str_eq(got->id, id);
    }
    size_t r;
    int64_t eta;
    cr_assert_eq(pickq_position(q, nq[5], &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 4);
    cr_assert_eq(eta, 5 * 60000 * 2, "one order ahead per gap: twice");
    /* Nothing goes ahead of a rush24h order here. */
    struct order *x =
        push(q, "R9", "SH01", CLASS_RUSH24H, T0 + 30 * HOUR, true, T0 + 120000);
    struct order *y =
        push(q, "R8", "SH01", CLASS_RUSH24H, T0 + 30 * HOUR, true, T0 + 120000);
    cr_assert_eq(pickq_position(q, x, &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 0);
    cr_assert_eq(eta, 60000);
    /* R9 and R8 went ahead of the normals in this gap: 2, so
       1000 + (2000 - 1000) / 8 thousandths. */
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + 180000, &got), PICKQ_OK);
    cr_assert_eq(got, x);
    cr_assert_eq(pickq_position(q, nq[5], &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 5, "R8 ahead");
    cr_assert_eq(eta, 6 * 60000 + 6 * 60000 * 1125 / 1000);
    /* A gap in which nothing went ahead moves it down by 1/8. */
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + 240000, &got), PICKQ_OK);
    cr_assert_eq(got, y);
    cr_assert_eq(pickq_position(q, nq[5], &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 4);
    cr_assert_eq(eta, 5 * 60000 + 5 * 60000 * (1125 - 1125 / 8) / 1000);
    pickq_free(q);

    /* Capped at 2: five orders ahead in one gap make it 3 gaps a rank. */
    q = new_q();
    push_n(q, "N", 3, CLASS_NORMAL, T0 + 90 * HOUR, T0, nq);
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0, &got), PICKQ_OK);
    push_n(q, "S", 5, CLASS_RUSH4H, T0 + 3 * HOUR, T0 + 1000, NULL);
    cr_assert_eq(pickq_next(q, "SH01", "a", 0, T0 + 60000, &got), PICKQ_OK);
    cr_assert_eq(pickq_position(q, nq[2], &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 5);
    cr_assert_eq(eta, 6 * 60000 * 3);
    pickq_free(q);
}

Test(pickq, position_and_estimate)
{
    struct pickq *q = new_q();
    push(q, "P1", "SH01", CLASS_ASN, T0 + HOUR, true, T0);
    push(q, "P2", "SH01", CLASS_ASN, T0 + HOUR, true, T0);
    push(q, "Q1", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    push(q, "Q2", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *q3 =
        push(q, "Q3", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    size_t r;
    int64_t eta;
    cr_assert_eq(pickq_position(q, q3, &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 4);
    cr_assert_eq(eta, 5 * 120000, "one picker when nobody picks");
    struct order *o;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_eq(pickq_position(q, q3, &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 3);
    cr_assert_eq(eta, 4 * 120000);
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_eq(pickq_position(q, q3, &r, &eta), PICKQ_OK);
    cr_assert_eq(r, 2);
    cr_assert_eq(eta, 3 * 120000 / 2, "two active pickers");
    cr_assert_eq(pickq_position(q, o, &r, &eta), PICKQ_BADSTATE);
    /* Pickers of another warehouse do not count. */
    push(q, "X", "BJ02", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *x = pickq_get(q, "X", 1);
    cr_assert_eq(pickq_position(q, x, &r, &eta), PICKQ_OK);
    cr_assert_eq(eta, 120000);
    pickq_free(q);
}

Test(pickq, stats_per_warehouse_and_total)
{
    struct pickq *q = new_q();
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.warehouses, 0);
    cr_assert_eq(st.mean_pick_ms, 120000);
    push(q, "A", "SH01", CLASS_ASN, T0 + HOUR, true, T0);
    push(q, "B", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, false, T0);
    push(q, "C", "BJ02", CLASS_RUSH4H, T0 + 3 * HOUR, true, T0);
    pickq_stats(q, "SH01", &st);
    cr_assert_eq(st.warehouses, 1);
    cr_assert_eq(st.pushes, 2);
    cr_assert_eq(st.by_state[STATE_NEW], 1);
    cr_assert_eq(st.by_state[STATE_QUEUED], 1);
    cr_assert_eq(st.queued_by_class[CLASS_ASN], 1);
    cr_assert_eq(st.jumps, 1);
    pickq_stats(q, "BJ02", &st);
    cr_assert_eq(st.pushes, 1);
    cr_assert_eq(st.queued_by_class[CLASS_RUSH4H], 1);
    pickq_stats(q, "nowhere", &st);
    cr_assert_eq(st.warehouses, 0);
    cr_assert_eq(st.pushes, 0);
    cr_assert_eq(st.mean_pick_ms, 120000);
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.warehouses, 2);
    cr_assert_eq(st.pushes, 3);
    cr_assert_eq(st.by_state[STATE_QUEUED], 2);
    cr_assert_eq(st.jumps, 2);
    pickq_free(q);
}

/* ------------------------------------------------------------ queue jumps */

static struct pickq *
jump_q(size_t scan)
{
    struct pickq_config c;
    pickq_config_default(&c);
    for (int i = 0; i < CLASS_COUNT; i++)
        c.escalate_window[i] = 0; /* keys stay as pushed */
    c.pick_ms = 10 * MIN;
    c.jump_scan = scan;
    struct pickq *q = pickq_new(&c);
    cr_assert_not_null(q);
    return q;
}

Test(pickq, jump_report_on_push)
{
    struct pickq *q = jump_q(256);
    /* Estimated pick time of rank r: now + (r + 1) * 10 min. */
    int64_t d[] = {5 * MIN, 25 * MIN, 35 * MIN, 40 * MIN, 60 * MIN, 3 * HOUR};
    char id[8];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "P%d", i);
        push(q, id, "SH01", CLASS_NORMAL, T0 + d[i], true, T0);
    }
    /* A normal order that lands in front of others is not a jump. */
    struct pickq_jump j;
    char err[100];
    struct order *n = mk("N", "SH01", CLASS_NORMAL, T0 + MIN, true);
    cr_assert_eq(pickq_push(q, n, T0, &j, err, sizeof(err)), PICKQ_OK);
    cr_assert_null(j.order);
    cr_assert_eq(pickq_cancel(q, n, T0), PICKQ_OK);

    struct order *r = mk("R", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true);
    cr_assert_eq(pickq_push(q, r, T0, &j, err, sizeof(err)), PICKQ_OK);
    cr_assert_eq(j.order, r);
    cr_assert_eq(j.position, 0);
    cr_assert_eq(j.displaced, 6);
    cr_assert_eq(j.delay_ms, 10 * MIN);
    /* P0 was late already; P1..P3 become late; P4 stays just in time
       (picked at exactly its deadline); P5 has time. */
    cr_assert_eq(j.at_risk, 3);
    cr_assert_eq(j.at_risk_listed, 3);
    cr_assert_str_eq(j.at_risk_orders[0]->id, "P1");
    cr_assert_str_eq(j.at_risk_orders[1]->id, "P2");
    cr_assert_str_eq(j.at_risk_orders[2]->id, "P3");

    /* Behind an asn, a rush passes fewer; with a picker busy elsewhere the
       delay halves. */
    push(q, "A", "SH01", CLASS_ASN, T0 + 9 * HOUR, true, T0);
    struct order *o;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    cr_assert_str_eq(o->id, "A");
    push(q, "A2", "SH01", CLASS_ASN, T0 + 9 * HOUR, true, T0);
    struct order *r2 = mk("R2", "SH01", CLASS_RUSH24H, T0 + 3 * HOUR, true);
    cr_assert_eq(pickq_push(q, r2, T0, &j, err, sizeof(err)), PICKQ_OK);
    cr_assert_eq(j.position, 2, "behind A2 and R");
    cr_assert_eq(j.displaced, 6);
    cr_assert_eq(j.delay_ms, 10 * MIN);
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
    struct order *r3 = mk("R3", "SH01", CLASS_RUSH24H, T0 + 2 * HOUR, false);
    cr_assert_eq(pickq_push(q, r3, T0, &j, err, sizeof(err)), PICKQ_OK);
    cr_assert_null(j.order, "not queued yet");
    cr_assert_eq(pickq_approve(q, r3, T0, &j), PICKQ_OK);
    cr_assert_eq(j.order, r3);
    cr_assert_eq(j.position, 1, "behind R");
    cr_assert_eq(j.displaced, 7);
    cr_assert_eq(j.delay_ms, 5 * MIN, "two pickers");
    pickq_free(q);
}

Test(pickq, jump_scan_bounds_the_examined_orders)
{
    struct pickq *q = jump_q(2);
    int64_t d[] = {5 * MIN, 25 * MIN, 35 * MIN, 40 * MIN};
    char id[8];
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "P%d", i);
        push(q, id, "SH01", CLASS_NORMAL, T0 + d[i], true, T0);
    }
    struct pickq_jump j;
    struct order *r = mk("R", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true);
    cr_assert_eq(pickq_push(q, r, T0, &j, NULL, 0), PICKQ_OK);
    cr_assert_eq(j.displaced, 4);
    cr_assert_eq(j.at_risk, 1, "only P0 and P1 examined");
    cr_assert_str_eq(j.at_risk_orders[0]->id, "P1");
    pickq_free(q);

    q = jump_q(0);
    push(q, "P", "SH01", CLASS_NORMAL, T0 + 15 * MIN, true, T0);
    r = mk("R", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true);
    cr_assert_eq(pickq_push(q, r, T0, &j, NULL, 0), PICKQ_OK);
    cr_assert_eq(j.displaced, 1);
    cr_assert_eq(j.at_risk, 0);
    pickq_free(q);
}

Test(pickq, jump_lists_at_most_sixteen)
{
    struct pickq *q = jump_q(256);
    char id[8];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof(id), "P%02d", i);
        push(q, id, "SH01", CLASS_NORMAL, T0 + (i + 1) * 10 * MIN + 5 * MIN,
             true, T0);
    }
    push(q, "LATE", "SH01", CLASS_NORMAL, T0 + 99 * HOUR, true, T0);
    struct pickq_jump j;
    struct order *r = mk("R", "SH01", CLASS_RUSH4H, T0 + 3 * HOUR, true);
    cr_assert_eq(pickq_push(q, r, T0, &j, NULL, 0), PICKQ_OK);
    cr_assert_eq(j.displaced, 21);
    cr_assert_eq(j.at_risk, 20);
    cr_assert_eq(j.at_risk_listed, PICKQ_AT_RISK_MAX);
    for (int i = 0; i < PICKQ_AT_RISK_MAX; i++) {
        snprintf(id, sizeof(id), "P%02d", i);
        cr_assert_str_eq(j.at_risk_orders[i]->id, id);
    }
    pickq_free(q);
}

Test(pickq, jump_report_on_reprio_counts_the_passed)
{
    struct pickq *q = jump_q(256);
    int64_t d[] = {5 * MIN, 25 * MIN, 35 * MIN, 40 * MIN, 60 * MIN, 3 * HOUR};
    char id[8];
    struct order *p[6];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "P%d", i);
        p[i] = push(q, id, "SH01", CLASS_NORMAL, T0 + d[i], true, T0);
    }
    struct pickq_jump j;
    cr_assert_eq(pickq_reprio(q, p[4], CLASS_RUSH24H, 0, T0, &j, NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(j.order, p[4]);
    cr_assert_eq(j.position, 0);
    cr_assert_eq(j.displaced, 4, "P0..P3, not P5 that was behind already");
    /* P1 was picked by +20 min (deadline 25), now by +30: late.  P2 was
       picked by +30 (35), now +40: late.  P3 +40 (40), now +50: late. */
    cr_assert_eq(j.at_risk, 3);
    cr_assert_str_eq(j.at_risk_orders[0]->id, "P1");
    cr_assert_str_eq(j.at_risk_orders[2]->id, "P3");
    cr_assert_eq(pickq_reprio(q, p[5], CLASS_RUSH4H, 0, T0, &j, NULL, 0),
                 PICKQ_OK);
    cr_assert_eq(j.position, 0);
    cr_assert_eq(j.displaced, 5);
    cr_assert_str_eq(queue_ids(q, "SH01"), "P5 P4 P0 P1 P2 P3");
    /* Up within the class by deadline counts as a jump for a rush. */
    cr_assert_eq(
        pickq_reprio(q, p[4], CLASS_RUSH24H, T0 + MIN, T0, &j, NULL, 0),
        PICKQ_OK);
    cr_assert_eq(j.order, p[4]);
    cr_assert_eq(j.displaced, 0);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.jumps, 3);
    pickq_free(q);
}

/* ------------------------------------------------------------ finished */

static void
collect(void *ctx, struct order *o)
{
    strcat(ctx, o->id);
    strcat(ctx, " ");
}

Test(pickq, forget_finished_in_finishing_order)
{
    struct pickq *q = new_q();
    struct order *a =
        push(q, "A", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    struct order *b =
        push(q, "B", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, false, T0);
    struct order *c =
        push(q, "C", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    cr_assert_eq(pickq_outbound(q, a, "op", T0 + 1, T0 + 1, NULL), PICKQ_OK);
    cr_assert_eq(pickq_cancel(q, b, T0 + 2), PICKQ_OK);
    cr_assert_eq(pickq_outbound(q, c, "op", T0 + 3, T0 + 3, NULL), PICKQ_OK);
    cr_assert_eq(pickq_deliver(q, a, NULL, T0 + 4, T0 + 4, NULL), PICKQ_OK);
    char seen[64] = "";
    cr_assert_eq(pickq_forget_finished(q, T0 + 2, collect, seen), 0);
    cr_assert_eq(pickq_forget_finished(q, T0 + 4, collect, seen), 2);
    cr_assert_str_eq(seen, "B C ");
    cr_assert_null(pickq_get(q, "B", 1));
    cr_assert_null(pickq_get(q, "C", 1));
    cr_assert_eq(pickq_get(q, "A", 1), a, "delivered later: kept");
    cr_assert_eq(pickq_forget_finished(q, INT64_MAX, NULL, NULL), 1);
    cr_assert_null(pickq_get(q, "A", 1));
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    for (int s = 0; s < STATE_COUNT; s++)
        cr_assert_eq(st.by_state[s], 0, "%s", order_state_name(s));
    pickq_free(q);
}

/* ------------------------------------------------------------ recovery */

static struct order *
stored(const char *id, const char *wh, int state, int cls, int eff,
       int64_t deadline, uint64_t seq)
{
    struct order *o = mk(id, wh, cls, deadline, false);
    o->state = (uint8_t)state;
    o->eff_cls = (uint8_t)eff;
    o->seq = seq;
    o->created = T0 - HOUR;
    o->updated = T0 - HOUR;
    return o;
}

Test(pickq, restore_rebuilds_queues_timers_and_counters)
{
    struct pickq *q = new_q();
    struct order *o[12];
    int n = 0;
    o[n++] = stored("Q5", "SH01", STATE_QUEUED, CLASS_NORMAL, CLASS_NORMAL,
                    T0 + 90 * HOUR, 5);
    o[n++] = stored("Q2", "SH01", STATE_QUEUED, CLASS_NORMAL, CLASS_NORMAL,
                    T0 + 90 * HOUR, 2);
    o[n++] = stored("E7", "SH01", STATE_QUEUED, CLASS_RUSH24H, CLASS_RUSH24H,
                    T0 + 3 * HOUR, 7); /* rush24h window passed at T0-1h */
    o[n++] = stored("B3", "BJ02", STATE_QUEUED, CLASS_ASN, CLASS_ASN,
                    T0 + 2 * HOUR, 3);
    o[n++] = stored("P9", "SH01", STATE_PICKING, CLASS_RUSH4H, CLASS_RUSH4H,
                    T0 + 3 * HOUR, 9);
    o[n - 1]->lease = 41;
    o[n - 1]->lease_expires = T0 - 1000; /* expired while down */
    o[n++] = stored("H", "SH01", STATE_HELD, CLASS_NORMAL, CLASS_NORMAL,
                    T0 + 90 * HOUR, 0);
    o[n++] = stored("NW", "SH01", STATE_NEW, CLASS_NORMAL, CLASS_NORMAL,
                    T0 + 90 * HOUR, 0);
    o[n++] =
        stored("S", "SH01", STATE_SHIPPED, CLASS_NORMAL, CLASS_NORMAL, T0, 4);
    o[n - 1]->updated = T0 - 20;
    o[n++] =
        stored("D", "SH01", STATE_DELIVERED, CLASS_NORMAL, CLASS_NORMAL, T0, 1);
    o[n - 1]->updated = T0 - 30;
    o[n++] =
        stored("C", "BJ02", STATE_CANCELLED, CLASS_NORMAL, CLASS_NORMAL, T0, 0);
    o[n - 1]->updated = T0 - 10;
    for (int i = 0; i < n; i++)
        cr_assert_eq(pickq_restore(q, o[i]), PICKQ_OK, "%s", o[i]->id);
    struct order *dup =
        stored("Q5", "SH01", STATE_QUEUED, CLASS_NORMAL, CLASS_NORMAL, T0, 11);
    cr_assert_eq(pickq_restore(q, dup), PICKQ_EXISTS);
    dup->state = STATE_COUNT;
    cr_assert_eq(pickq_restore(q, dup), PICKQ_BADARG);
    order_free(dup);
    cr_assert_eq(pickq_restore_done(q), PICKQ_OK);

    cr_assert_str_eq(queue_ids(q, "SH01"), "E7 Q2 Q5");
    cr_assert_str_eq(queue_ids(q, "BJ02"), "B3");
    cr_assert_eq(rank_of(q, pickq_get(q, "Q5", 2)), 2);
    cr_assert_eq(pickq_get(q, "H", 1)->state, STATE_HELD);
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.by_state[STATE_QUEUED], 4);
    cr_assert_eq(st.by_state[STATE_PICKING], 1);
    cr_assert_eq(st.by_state[STATE_NEW], 1);
    cr_assert_eq(st.by_state[STATE_HELD], 1);
    cr_assert_eq(st.by_state[STATE_SHIPPED], 1);
    cr_assert_eq(st.by_state[STATE_DELIVERED], 1);
    cr_assert_eq(st.by_state[STATE_CANCELLED], 1);
    cr_assert_eq(st.queued_by_class[CLASS_RUSH24H], 1);

    /* The escalation E7 missed while down, then the lease that expired. */
    cr_assert_eq(pickq_next_timer(q), T0 - HOUR);
    struct tick_log log = {0};
    struct pickq_tick_cb cb = {on_expired, on_escalated, NULL, &log};
    cr_assert_eq(pickq_tick(q, T0 - 1001, &cb), 1);
    cr_assert_str_eq(log.text, "U:E7:rush24h>rush4h ");
    cr_assert_eq(pickq_next_timer(q), T0 - 1000);
    cr_assert_eq(pickq_tick(q, T0, &cb), 1);
    cr_assert_str_eq(log.text, "U:E7:rush24h>rush4h E:P9:41 ");
    cr_assert_str_eq(queue_ids(q, "SH01"), "E7 P9 Q2 Q5");
    cr_assert_eq(pickq_next_timer(q), T0 + 3 * HOUR, "E7's promotion ends");

    /* Counters move past everything restored. */
    struct order *x;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &x), PICKQ_OK);
    cr_assert_eq(x->lease, 42);
    struct order *nw =
        push(q, "NEW", "SH01", CLASS_NORMAL, T0 + 90 * HOUR, true, T0);
    cr_assert_eq(nw->seq, 10);
    cr_assert_eq(pickq_approve(q, pickq_get(q, "H", 1), T0, NULL), PICKQ_OK);
    cr_assert_eq(pickq_get(q, "H", 1)->seq, 11);
    cr_assert_str_eq(x->id, "E7");
    cr_assert_str_eq(queue_ids(q, "SH01"), "P9 Q2 Q5 NEW H");

    /* Finished orders by when they finished. */
    char seen[64] = "";
    cr_assert_eq(pickq_forget_finished(q, T0, collect, seen), 3);
    cr_assert_str_eq(seen, "D S C ");
    pickq_free(q);
}

Test(pickq, restore_repairs_lost_or_repeated_seqs)
{
    struct pickq *q = new_q();
    struct order *a = stored("A", "SH01", STATE_QUEUED, CLASS_NORMAL,
                             CLASS_NORMAL, T0 + 90 * HOUR, 4);
    struct order *b = stored("B", "SH01", STATE_QUEUED, CLASS_NORMAL,
                             CLASS_NORMAL, T0 + 90 * HOUR, 4);
    struct order *c = stored("C", "SH01", STATE_QUEUED, CLASS_NORMAL,
                             CLASS_RUSH4H, T0 + 90 * HOUR, 0);
    struct order *d = stored("D", "SH01", STATE_PICKING, CLASS_NORMAL,
                             CLASS_NORMAL, T0 + 90 * HOUR, 4);
    d->lease_expires = T0 + HOUR;
    cr_assert_eq(pickq_restore(q, a), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, b), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, c), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, d), PICKQ_OK);
    cr_assert_eq(pickq_restore_done(q), PICKQ_OK);
    cr_assert_eq(c->eff_cls, CLASS_RUSH24H,
                 "stored two classes up: at most one now");
    uint64_t seqs[] = {a->seq, b->seq, c->seq, d->seq};
    for (int i = 0; i < 4; i++) {
        cr_assert_neq(seqs[i], 0);
        for (int k = 0; k < i; k++)
            cr_assert_neq(seqs[i], seqs[k], "seq %d and %d", k, i);
    }
    cr_assert_eq(strlen(queue_ids(q, "SH01")), 5);
    cr_assert_eq(pickq_tick(q, T0 + HOUR, NULL), 1, "D's lease timer");
    cr_assert_eq(strlen(queue_ids(q, "SH01")), 7);
    cr_assert_str_eq(pickq_peek(q, "SH01", 1, &a) == 1 ? a->id : "", "C");
    pickq_free(q);
}

Test(pickq, restore_large_queue_pops_in_order)
{
    struct pickq *q = new_q();
    enum { N = 100000 };
    char id[16];
    /* Stored in a scrambled order. */
    for (uint64_t i = 0; i < N; i++) {
        uint64_t k = (i * 7919) % N;
        snprintf(id, sizeof(id), "O%06" PRIu64, k);
        struct order *o =
            stored(id, "SH01", STATE_QUEUED, CLASS_NORMAL, CLASS_NORMAL,
                   T0 + 90 * HOUR + (int64_t)(k / 10) * 1000, k + 1);
        cr_assert_eq(pickq_restore(q, o), PICKQ_OK);
    }
    cr_assert_eq(pickq_restore_done(q), PICKQ_OK);
    /* Positions are exact right after recovery. */
    for (uint64_t k = 0; k < N; k += 997) {
        snprintf(id, sizeof(id), "O%06" PRIu64, k);
        struct order *o = pickq_get(q, id, strlen(id));
        cr_assert_eq(rank_of(q, o), k, "%s", id);
    }
    struct order *top[4];
    cr_assert_eq(pickq_peek(q, "SH01", 4, top), 4);
    cr_assert_str_eq(top[3]->id, "O000003");
    for (uint64_t i = 0; i < N; i++) {
        struct order *o;
        cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &o), PICKQ_OK);
        if (o->seq != i + 1)
            cr_assert_fail("pop %" PRIu64 " gave seq %" PRIu64, i, o->seq);
    }
    pickq_free(q);
}

/* Old data loads whatever its deadlines: recovery has no window. */
Test(pickq, restore_ignores_deadline_window)
{
    struct pickq *q = new_q();
    struct order *a = stored("OLD", "SH01", STATE_QUEUED, CLASS_NORMAL,
                             CLASS_NORMAL, 1000, 1);
    struct order *b = stored("FAR", "SH01", STATE_QUEUED, CLASS_NORMAL,
                             CLASS_NORMAL, Y9999, 2);
    cr_assert_eq(pickq_restore(q, a), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, b), PICKQ_OK);
    cr_assert_eq(pickq_restore_done(q), PICKQ_OK);
    cr_assert_str_eq(queue_ids(q, "SH01"), "OLD FAR");
    /* ...and a reprio that keeps the deadline (0) does not check it. */
    char err[300] = "";
    cr_assert_eq(
        pickq_reprio(q, b, CLASS_RUSH24H, 0, T0, NULL, err, sizeof(err)),
        PICKQ_OK, "%s", err);
    cr_assert_eq(b->deadline, Y9999);
    pickq_free(q);
}

Test(pickq, restore_rearms_confirm_timers)
{
    struct pickq *q = new_q(); /* confirm timeout 30 min */
    struct order *late = stored("L", "SH01", STATE_PICKED, CLASS_NORMAL,
                                CLASS_NORMAL, T0 + 90 * HOUR, 4);
    late->lease = 7;
    late->pick_done_at = T0 - 40 * MIN; /* overdue while down */
    struct order *due = stored("D", "SH01", STATE_PICKED, CLASS_NORMAL,
                               CLASS_NORMAL, T0 + 90 * HOUR, 5);
    due->lease = 8;
    due->pick_done_at = T0;
    struct order *fired = stored("F", "SH01", STATE_PICKED, CLASS_NORMAL,
                                 CLASS_NORMAL, T0 + 90 * HOUR, 6);
    fired->lease = 9;
    fired->pick_done_at = T0 - 2 * HOUR;
    fired->unconfirmed_fired = true;
    struct order *qd = stored("Q", "SH01", STATE_QUEUED, CLASS_NORMAL,
                              CLASS_NORMAL, T0 + 90 * HOUR, 3);
    cr_assert_eq(pickq_restore(q, due), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, fired), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, late), PICKQ_OK);
    cr_assert_eq(pickq_restore(q, qd), PICKQ_OK);
    cr_assert_eq(pickq_restore_done(q), PICKQ_OK);

    cr_assert_str_eq(queue_ids(q, "SH01"), "Q", "picked is not queued");
    struct pickq_stats st;
    pickq_stats(q, NULL, &st);
    cr_assert_eq(st.by_state[STATE_PICKED], 3);
    cr_assert_eq(st.by_state[STATE_QUEUED], 1);
    cr_assert_eq(pickq_next_timer(q), T0 - 10 * MIN);
    struct unconf_log log = {0};
    struct pickq_tick_cb cb = {NULL, NULL, on_unconfirmed, &log};
    cr_assert_eq(pickq_tick(q, T0, &cb), 1);
    cr_assert_str_eq(log.text, "L ");
    cr_assert_eq(pickq_next_timer(q), T0 + 30 * MIN);
    cr_assert_eq(pickq_tick(q, T0 + 31 * MIN, &cb), 1);
    cr_assert_str_eq(log.text, "L D ", "F had fired before the restart");
    cr_assert_eq(pickq_next_timer(q), T0 + 66 * HOUR, "Q's escalation only");
    /* A picked order comes back with its lease: a repeat is still one. */
    cr_assert_eq(pickq_picked(q, fired, 9, T0), PICKQ_SAME);
    struct order *got;
    cr_assert_eq(pickq_next(q, "SH01", "p", 0, T0, &got), PICKQ_OK);
    cr_assert_eq(got, qd);
    cr_assert_eq(got->lease, 10, "lease ids move past the picked ones");
    cr_assert_eq(pickq_outbound(q, fired, "p", T0, T0, NULL), PICKQ_OK);
    pickq_free(q);
}

/* A restored queue behaves as the live one it was copied from: the same
   pick order in every warehouse, the same timers, and, driven on by the
   same ticks and leases, the same events in the same order.  The live
   queue is built by random operations over three warehouses and several
   days, so that orders wait, are promoted, demoted and parked, are
   leased, released, picked and confirmed; every order is then deep-copied
   (as storage would hand it back) into a second queue through
   pickq_restore. */
struct event_hash {
    uint64_t h;
    size_t n;
};

static void
eh_add(struct event_hash *e, char kind, const struct order *o, uint64_t v)
{
    for (const char *c = o->id; *c; c++)
        e->h = (e->h ^ (uint8_t)*c) * UINT64_C(0x100000001b3);
    e->h = (e->h ^ (uint8_t)kind) * UINT64_C(0x100000001b3);
    e->h = (e->h ^ v) * UINT64_C(0x100000001b3);
    e->n++;
}

static void
eh_expired(void *ctx, struct order *o, uint64_t old_lease)
{
    eh_add(ctx, 'E', o, old_lease);
}

static void
eh_escalated(void *ctx, struct order *o, int from)
{
    eh_add(ctx, 'U', o, (uint64_t)from * 16 + o->eff_cls);
}

static void
eh_unconfirmed(void *ctx, struct order *o)
{
    eh_add(ctx, 'C', o, o->pick_done_at);
}

/* A copy of o as storage keeps it: every stored field, no links. */
static struct order *
order_copy(const struct order *o)
{
    struct order *c = order_new();
    cr_assert_not_null(c);
    cr_assert_eq(order_set_id(c, o->id, strlen(o->id)), 0);
    cr_assert_eq(order_set_warehouse(c, o->warehouse, strlen(o->warehouse)), 0);
    cr_assert_eq(order_set_customer(c, o->customer, strlen(o->customer)), 0);
    if (o->picker != NULL)
        cr_assert_eq(order_set_picker(c, o->picker, strlen(o->picker)), 0);
    if (o->operator_ != NULL)
        cr_assert_eq(order_set_operator(c, o->operator_, strlen(o->operator_)),
                     0);
    size_t pos = 0;
    const char *k, *v;
    while (order_attr_next(o, &pos, &k, &v))
        cr_assert_eq(order_attr_set(c, k, strlen(k), v, strlen(v), NULL, 0), 0);
    c->deadline = o->deadline;
    c->created = o->created;
    c->updated = o->updated;
    c->seq = o->seq;
    c->lease = o->lease;
    c->lease_expires = o->lease_expires;
    c->picked_at = o->picked_at;
    c->pick_done_at = o->pick_done_at;
    c->cls = o->cls;
    c->eff_cls = o->eff_cls;
    c->state = o->state;
    c->source = o->source;
    c->fulfil = o->fulfil;
    c->risk = o->risk;
    c->audit_n = o->audit_n;
    c->unconfirmed_fired = o->unconfirmed_fired;
    c->outbound_leased = o->outbound_leased;
    if (order_state_finished(o->state)) {
        c->outbound_at = o->outbound_at;
        c->delivered_at = o->delivered_at;
    }
    return c;
}

#define RB_ORDERS 3000
static const char *const rb_wh[] = {"SH01", "BJ02", "GZ03"};

static void
rb_compare(struct pickq *a, struct pickq *b, struct order **os, size_t n)
{
    static struct order *qa[RB_ORDERS], *qb[RB_ORDERS];
    for (size_t w = 0; w < 3; w++) {
        size_t na = pickq_peek(a, rb_wh[w], RB_ORDERS, qa);
        size_t nb = pickq_peek(b, rb_wh[w], RB_ORDERS, qb);
        cr_assert_eq(na, nb, "%s: %zu queued live, %zu restored", rb_wh[w], na,
                     nb);
        for (size_t i = 0; i < na; i++)
            cr_assert_str_eq(qa[i]->id, qb[i]->id, "%s, place %zu", rb_wh[w],
                             i);
    }
    for (size_t i = 0; i < n; i++) {
        struct order *o = os[i];
        struct order *c = pickq_get(b, o->id, strlen(o->id));
        cr_assert_not_null(c, "%s", o->id);
        cr_assert_eq(c->state, o->state, "%s", o->id);
        cr_assert_eq(c->eff_cls, o->eff_cls, "%s", o->id);
        cr_assert_eq(c->lease, o->lease, "%s", o->id);
    }
    cr_assert_eq(pickq_next_timer(a), pickq_next_timer(b));
}

Test(pickq, restore_behaves_as_the_live_queue)
{
    struct pickq *live = new_q();
    static struct order *os[RB_ORDERS];
    size_t n = 0;
    const char *env = getenv("PICKQ_SEED");
    unsigned long long seed =
        env != NULL ? strtoull(env, NULL, 10) : (unsigned long long)time(NULL);
    uint64_t r = seed | 1;
#define RB_RND() (r ^= r << 13, r ^= r >> 7, r ^= r << 17, r)
    int64_t now = T0;
    struct event_hash ignored = {0, 0};
    struct pickq_tick_cb cb_live = {eh_expired, eh_escalated, eh_unconfirmed,
                                    &ignored};
    for (int op = 0; op < 20000; op++) {
        now += (int64_t)(RB_RND() % (2 * MIN));
        struct order *o = n > 0 ? os[RB_RND() % n] : NULL;
        const char *w = rb_wh[RB_RND() % 3];
        switch (RB_RND() % 10) {
        case 0:
        case 1:
        case 2:
            if (n < RB_ORDERS) {
                char id[16];
                snprintf(id, sizeof id, "R%05zu", n);
                int cls = (int)(RB_RND() % CLASS_COUNT);
                int64_t d = now - 2 * HOUR +
                            (int64_t)(RB_RND() % (uint64_t)(60 * HOUR));
                os[n++] = push(live, id, w, cls, d, RB_RND() % 4 != 0, now);
            }
            break;
        case 3:
            if (o != NULL && o->state == STATE_NEW)
                cr_assert_eq(pickq_approve(live, o, now, NULL), PICKQ_OK);
            break;
        case 4:
        case 5:
            pickq_next(live, w, "p1", (int64_t)(RB_RND() % (3 * HOUR)), now,
                       NULL);
            break;
        case 6:
            if (o != NULL && o->state == STATE_PICKING)
                cr_assert_eq(RB_RND() % 2
                                 ? pickq_release(live, o, o->lease, now)
                                 : pickq_picked(live, o, o->lease, now),
                             PICKQ_OK);
            break;
        case 7:
            if (o != NULL &&
                (o->state == STATE_PICKED || o->state == STATE_QUEUED))
                cr_assert_eq(pickq_outbound(live, o, "op", now, now, NULL),
                             PICKQ_OK);
            break;
        case 8:
            if (o != NULL && o->state == STATE_QUEUED && o->cls != CLASS_ASN) {
                int cls = CLASS_RUSH4H + (int)(RB_RND() % 3);
                int64_t d = now + (int64_t)(RB_RND() % (30 * HOUR));
                cr_assert_eq(pickq_reprio(live, o, cls, d, now, NULL, NULL, 0),
                             PICKQ_OK);
            }
            break;
        default:
            pickq_tick(live, now, &cb_live);
            break;
        }
    }
    /* Everything due is done, so the copy has nothing to catch up on
       (but parking, which reports nothing). */
    pickq_tick(live, now, &cb_live);

    struct pickq *back = new_q();
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(pickq_restore(back, order_copy(os[i])), PICKQ_OK);
    cr_assert_eq(pickq_restore_done(back), PICKQ_OK);
    struct event_hash ea = {0, 0}, eb = {0, 0};
    struct pickq_tick_cb ca = {eh_expired, eh_escalated, eh_unconfirmed, &ea};
    struct pickq_tick_cb cbk = {eh_expired, eh_escalated, eh_unconfirmed, &eb};
    cr_assert_eq(pickq_tick(back, now, &cbk), 0, "seed %llu", seed);
    rb_compare(live, back, os, n);
    if (getenv("RB_VERBOSE") != NULL) {
        struct pickq_stats st;
        pickq_stats(live, NULL, &st);
        fprintf(stderr,
                "restored: %zu queued, %zu picking, %zu picked, "
                "%zu escalations so far\n",
                st.by_state[STATE_QUEUED], st.by_state[STATE_PICKING],
                st.by_state[STATE_PICKED], (size_t)st.escalations);
    }

    /* Driven on alike, they stay alike until every queue is empty. */
    for (int step = 0; step < 4000; step++) {
        now += (int64_t)(RB_RND() % (20 * MIN));
        size_t ga = pickq_tick(live, now, &ca);
        size_t gb = pickq_tick(back, now, &cbk);
        cr_assert_eq(ga, gb, "seed %llu, step %d", seed, step);
        cr_assert_eq(ea.h, eb.h, "seed %llu, step %d: events differ", seed,
                     step);
        const char *w = rb_wh[RB_RND() % 3];
        struct order *xa = NULL, *xb = NULL;
        int64_t lease_ms = (int64_t)(RB_RND() % (2 * HOUR));
        int rca = pickq_next(live, w, "p2", lease_ms, now, &xa);
        int rcb = pickq_next(back, w, "p2", lease_ms, now, &xb);
        cr_assert_eq(rca, rcb, "seed %llu, step %d", seed, step);
        if (rca != PICKQ_OK)
            continue;
        cr_assert_str_eq(xa->id, xb->id, "seed %llu, step %d", seed, step);
        cr_assert_eq(xa->lease, xb->lease);
        if (RB_RND() % 3 != 0) { /* the rest expire and come back */
            cr_assert_eq(pickq_picked(live, xa, xa->lease, now), PICKQ_OK);
            cr_assert_eq(pickq_picked(back, xb, xb->lease, now), PICKQ_OK);
        }
        if (step % 500 == 0)
            rb_compare(live, back, os, n);
    }
    rb_compare(live, back, os, n);
    if (getenv("RB_VERBOSE") != NULL)
        fprintf(stderr, "then %zu events alike\n", ea.n);
    cr_assert_gt(ea.n, 0);
#undef RB_RND
    pickq_free(live);
    pickq_free(back);
}

/* ------------------------------------------------------------ model test */

#define NWH 3
#define MODEL_CAP 20000
#define MODEL_OPS 200000
#define MODEL_LIVE 600
static const char *const WH[NWH] = {"SH01", "BJ02", "GZ03"};

struct mo {
    char id[16];
    struct order *o;
    int wh, cls, eff, state;
    int64_t deadline, updated, lease_exp, picked_at;
    uint64_t seq, lease;
    char picker[8];    /* "" = anonymous */
    int64_t pick_done; /* when picked */
    bool fired;        /* its confirm timeout fired */
    bool parked;       /* queued, its promotion time came after its
                          deadline: no timer (key NO_TIME) */
};

/* Per warehouse counters the model keeps, compared with pickq_stats. */
struct mcount {
    uint64_t outbounds, unleased, anomalous, revocations, picked, unconfirmed,
        deliveries;
};

struct model {
    struct pickq *q;
    struct pickq_config cfg;
    struct mo *m;
    size_t n;
    uint64_t seq, lease;
    int64_t now;
    int64_t mean[NWH];
    bool measured[NWH];
    int64_t gap[NWH]; /* lease gaps while backlogged (EWMA) */
    bool gap_measured[NWH], backlogged[NWH];
    int64_t last_lease[NWH];
    /* Orders that went ahead of every waiting order of a class since the
       last lease, and their mean per gap in thousandths (EWMA). */
    int64_t over[NWH][CLASS_COUNT], rho[NWH][CLASS_COUNT];
    bool rho_measured[NWH][CLASS_COUNT];
    struct mo *sorted[NWH][MODEL_CAP];
    size_t nsorted[NWH];
    bool dirty[NWH];
    uint64_t rng;
    unsigned long long seed;
    long op;
    const char *opname;
    int next_id;
    long jumps, at_risk, escalations, expiries;
    long revoked, implied, odd, unconfirmed, picked_ops;
    struct mcount cnt[NWH];
    uint64_t queued_sum; /* queue lengths summed over ops and warehouses */
};

#define CHECK(md, cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            cr_assert_fail("seed %llu (PICKQ_SEED to replay), op %ld (%s): "   \
                           "%s",                                               \
                           (md)->seed, (md)->op, (md)->opname, #cond);         \
    } while (0)

static uint64_t
rnd(struct model *md)
{
    /* xorshift64* */
    md->rng ^= md->rng >> 12;
    md->rng ^= md->rng << 25;
    md->rng ^= md->rng >> 27;
    return md->rng * UINT64_C(2685821657736338717);
}

static size_t
rn(struct model *md, size_t n)
{
    return (size_t)(rnd(md) % n);
}

static int
mo_cmp(const void *pa, const void *pb)
{
    const struct mo *a = *(struct mo *const *)pa;
    const struct mo *b = *(struct mo *const *)pb;
    if (a->eff != b->eff)
        return a->eff < b->eff ? -1 : 1;
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void
model_sort(struct model *md, int w)
{
    if (!md->dirty[w])
        return;
    size_t k = 0;
    for (size_t i = 0; i < md->n; i++)
        if (md->m[i].wh == w && md->m[i].state == STATE_QUEUED)
            md->sorted[w][k++] = &md->m[i];
    qsort(md->sorted[w], k, sizeof(md->sorted[w][0]), mo_cmp);
    md->nsorted[w] = k;
    md->dirty[w] = false;
}

static void
all_dirty(struct model *md)
{
    for (int w = 0; w < NWH; w++)
        md->dirty[w] = true;
}

static size_t
model_rank(struct model *md, const struct mo *x)
{
    model_sort(md, x->wh);
    for (size_t i = 0; i < md->nsorted[x->wh]; i++)
        if (md->sorted[x->wh][i] == x)
            return i;
    CHECK(md, !"order not in the model queue");
    return 0;
}

static bool
model_may_escalate(const struct model *md, int cls)
{
    return cls > CLASS_RUSH4H && md->cfg.escalate_window[cls] > 0;
}

/* One class up within the class's window and before the deadline, never
   into asn. */
static int
model_escalate(const struct model *md, int cls, int64_t deadline)
{
    if (model_may_escalate(md, cls) &&
        deadline - md->cfg.escalate_window[cls] <= md->now &&
        md->now < deadline)
        return cls - 1;
    return cls;
}

/* Queued x reached effective class x->eff from `from` (CLASS_COUNT: it
   entered the queue): it went ahead of the classes in (eff, from]. */
static void
model_overtake(struct model *md, const struct mo *x, int from)
{
    if (from > CLASS_NORMAL)
        from = CLASS_NORMAL;
    for (int c = x->eff + 1; c <= from; c++)
        md->over[x->wh][c]++;
}

static size_t
model_picking(const struct model *md, int w)
{
    size_t n = 0;
    for (size_t i = 0; i < md->n; i++)
        if (md->m[i].wh == w && md->m[i].state == STATE_PICKING)
            n++;
    return n;
}

static int64_t
model_delay(const struct model *md, int w)
{
    size_t p = model_picking(md, w);
    return md->mean[w] / (int64_t)(p > 0 ? p : 1);
}

static int64_t
model_deadline(struct model *md)
{
    /* Quantized to 5 minutes so that equal keys are common. */
    return (md->now / (5 * MIN) + 1 + (int64_t)rn(md, 72)) * (5 * MIN);
}

/* A deadline outside the window at md->now: just past either bound, or
   far out. */
static int64_t
model_bad_deadline(struct model *md)
{
    switch (rn(md, 3)) {
    case 0:
        return md->cfg.deadline_min_ms - 1 - (int64_t)rn(md, 1000);
    case 1:
        return md->now + md->cfg.deadline_ahead_max_ms + 1 +
               (int64_t)rn(md, 1000);
    default:
        return Y9999;
    }
}

/* The jump x should (or should not) have reported. */
static void
check_jump(struct model *md, struct mo *x, const struct pickq_jump *j,
           bool expect, size_t old_rank, bool reprio)
{
    if (!expect) {
        CHECK(md, j->order == NULL);
        return;
    }
    md->jumps++;
    int w = x->wh;
    size_t r = model_rank(md, x);
    size_t n = md->nsorted[w];
    size_t displaced = reprio ? old_rank - r : n - 1 - r;
    int64_t delay = model_delay(md, w);
    CHECK(md, j->order == x->o);
    CHECK(md, j->position == r);
    CHECK(md, j->displaced == displaced);
    CHECK(md, j->delay_ms == delay);
    size_t m = displaced < md->cfg.jump_scan ? displaced : md->cfg.jump_scan;
    size_t risk = 0;
    for (size_t p = r + 1; p <= r + m; p++) {
        struct mo *y = md->sorted[w][p];
        if (md->now + (int64_t)p * delay <= y->deadline &&
            md->now + (int64_t)(p + 1) * delay > y->deadline) {
            if (risk < PICKQ_AT_RISK_MAX)
                CHECK(md, j->at_risk_orders[risk] == y->o);
            risk++;
        }
    }
    CHECK(md, j->at_risk == risk);
    CHECK(md, j->at_risk_listed ==
                  (risk < PICKQ_AT_RISK_MAX ? risk : PICKQ_AT_RISK_MAX));
    md->at_risk += (long)risk;
}

static void
check_order(struct model *md, const struct mo *x)
{
    const struct order *o = x->o;
    CHECK(md, o->state == x->state);
    CHECK(md, o->cls == x->cls);
    CHECK(md, o->eff_cls == x->eff);
    CHECK(md, o->deadline == x->deadline);
    CHECK(md, o->seq == x->seq);
    CHECK(md, o->updated == x->updated);
    if (x->state == STATE_PICKING) {
        CHECK(md, o->lease == x->lease);
        CHECK(md, o->lease_expires == x->lease_exp);
    }
    if (x->state == STATE_PICKED) {
        CHECK(md, o->lease == x->lease);
        CHECK(md, o->pick_done_at == x->pick_done);
        CHECK(md, o->unconfirmed_fired == x->fired);
        CHECK(md, strcmp(o->picker, x->picker) == 0);
    }
}

static void
check_wh(struct model *md, int w)
{
    model_sort(md, w);
    size_t n = md->nsorted[w];
    md->queued_sum += n;
    struct pickq_stats st;
    pickq_stats(md->q, WH[w], &st);
    CHECK(md, st.by_state[STATE_QUEUED] == n);
    CHECK(md, st.mean_pick_ms == md->mean[w]);
    size_t by_class[CLASS_COUNT] = {0};
    for (size_t i = 0; i < n; i++)
        by_class[md->sorted[w][i]->eff]++;
    for (int c = 0; c < CLASS_COUNT; c++)
        CHECK(md, st.queued_by_class[c] == by_class[c]);
    const struct mcount *mc = &md->cnt[w];
    CHECK(md, st.outbounds == mc->outbounds);
    CHECK(md, st.outbounds_unleased == mc->unleased);
    CHECK(md, st.outbounds_anomalous == mc->anomalous);
    CHECK(md, st.revocations == mc->revocations);
    CHECK(md, st.picked == mc->picked);
    CHECK(md, st.unconfirmed == mc->unconfirmed);
    CHECK(md, st.deliveries == mc->deliveries);

    struct order *top[8];
    size_t k = pickq_peek(md->q, WH[w], 8, top);
    CHECK(md, k == (n < 8 ? n : 8));
    for (size_t i = 0; i < k; i++)
        CHECK(md, top[i] == md->sorted[w][i]->o);
    if (n > 0) {
        size_t i = rn(md, n);
        size_t r;
        int64_t eta;
        CHECK(md,
              pickq_position(md->q, md->sorted[w][i]->o, &r, &eta) == PICKQ_OK);
        CHECK(md, r == i);
        size_t p = model_picking(md, w);
        int64_t base = md->gap_measured[w] ? (int64_t)(i + 1) * md->gap[w]
                                           : (int64_t)(i + 1) * md->mean[w] /
                                                 (int64_t)(p > 0 ? p : 1);
        int c = md->sorted[w][i]->eff;
        int64_t rho = md->rho_measured[w][c] ? md->rho[w][c] : 0;
        if (rho > 2000)
            rho = 2000;
        CHECK(md, eta == base + base * rho / 1000);
    }
}

static void
check_all(struct model *md)
{
    int64_t next = INT64_MAX;
    size_t by_state[NWH][STATE_COUNT] = {{0}};
    for (size_t i = 0; i < md->n; i++) {
        struct mo *x = &md->m[i];
        check_order(md, x);
        CHECK(md, pickq_get(md->q, x->id, strlen(x->id)) == x->o);
        by_state[x->wh][x->state]++;
        int64_t t = INT64_MAX;
        if (x->state == STATE_PICKING)
            t = x->lease_exp;
        else if (x->state == STATE_QUEUED && x->eff != x->cls)
            t = x->deadline; /* the promotion ends */
        else if (x->state == STATE_QUEUED && !x->parked &&
                 model_may_escalate(md, x->cls))
            t = x->deadline - md->cfg.escalate_window[x->cls];
        else if (x->state == STATE_PICKED && !x->fired)
            t = x->pick_done + md->cfg.confirm_timeout_ms;
        if (t < next)
            next = t;
    }
    CHECK(md, pickq_next_timer(md->q) == next);
    for (int w = 0; w < NWH; w++) {
        struct pickq_stats st;
        pickq_stats(md->q, WH[w], &st);
        for (int s = 0; s < STATE_COUNT; s++)
            CHECK(md, st.by_state[s] == by_state[w][s]);
    }
}

static struct mo *
pick_any(struct model *md)
{
    return md->n > 0 ? &md->m[rn(md, md->n)] : NULL;
}

static void op_next(struct model *md);

static void
op_push(struct model *md)
{
    /* Keep about MODEL_LIVE orders alive: enough for long queues, few
       enough that the model's linear scans stay cheap. */
    size_t live = 0;
    for (size_t i = 0; i < md->n; i++)
        live += !order_state_finished(md->m[i].state);
    if (live >= MODEL_LIVE || md->n == MODEL_CAP) {
        op_next(md);
        return;
    }
    struct mo *x = &md->m[md->n];
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "O%d", md->next_id++);
    x->wh = (int)rn(md, NWH);
    x->cls = (int)rn(md, CLASS_COUNT);
    int64_t d = rn(md, 10) == 0 && x->cls != CLASS_ASN ? 0 : model_deadline(md);
    bool bad = rn(md, 32) == 0;
    if (bad)
        d = model_bad_deadline(md);
    bool approved = rn(md, 10) < 6;
    struct order *o = mk(x->id, WH[x->wh], x->cls, d, approved);
    /* Every order carries the asn documents, so reprio may go to asn. */
    order_attr_set(o, "asn_number", 10, "A", 1, NULL, 0);
    order_attr_set(o, "tech_agreement", 14, "T", 1, NULL, 0);
    struct pickq_jump j;
    char err[200] = "";
    int rc = pickq_push(md->q, o, md->now, &j, err, sizeof(err));
    if (bad) {
        CHECK(md, rc == PICKQ_BADARG);
        CHECK(md, strstr(err, "outside the accepted window") != NULL);
        CHECK(md, j.order == NULL);
        CHECK(md, pickq_get(md->q, x->id, strlen(x->id)) == NULL);
        order_free(o);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    md->n++;
    x->o = o;
    x->deadline = d ? d : md->now + md->cfg.deadline_default[x->cls];
    x->updated = md->now;
    x->eff = x->cls;
    if (approved) {
        x->state = STATE_QUEUED;
        x->seq = ++md->seq;
        x->eff = model_escalate(md, x->cls, x->deadline);
        model_overtake(md, x, CLASS_COUNT);
        md->dirty[x->wh] = true;
        check_jump(md, x, &j, x->eff != CLASS_NORMAL, 0, false);
    } else {
        x->state = STATE_NEW;
        CHECK(md, j.order == NULL);
    }
}

static void
op_repush(struct model *md)
{
    struct mo *x = pick_any(md);
    if (x == NULL)
        return;
    struct order *o = mk(x->id, WH[x->wh], x->cls, x->deadline, rn(md, 2) == 0);
    order_attr_set(o, "asn_number", 10, "A", 1, NULL, 0);
    order_attr_set(o, "tech_agreement", 14, "T", 1, NULL, 0);
    bool same = rn(md, 2) == 0;
    if (!same)
        o->risk = RISK_HIGH_RETURNS;
    int rc = pickq_push(md->q, o, md->now, NULL, NULL, 0);
    CHECK(md, rc == (same ? PICKQ_SAME : PICKQ_EXISTS));
    order_free(o);
}

static void
op_approve(struct model *md)
{
    struct mo *x = pick_any(md);
    if (x == NULL)
        return;
    for (int tries = 0;
         tries < 8 && x->state != STATE_NEW && x->state != STATE_HELD; tries++)
        x = pick_any(md);
    struct pickq_jump j;
    int rc = pickq_approve(md->q, x->o, md->now, &j);
    if (x->state != STATE_NEW && x->state != STATE_HELD) {
        CHECK(md, rc == PICKQ_BADSTATE);
        CHECK(md, j.order == NULL);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    x->state = STATE_QUEUED;
    x->parked = false;
    if (x->seq == 0)
        x->seq = ++md->seq;
    x->eff = model_escalate(md, x->cls, x->deadline);
    model_overtake(md, x, CLASS_COUNT);
    x->updated = md->now;
    md->dirty[x->wh] = true;
    check_jump(md, x, &j, x->eff != CLASS_NORMAL, 0, false);
}

static void
op_hold(struct model *md)
{
    struct mo *x = pick_any(md);
    if (x == NULL)
        return;
    int rc = pickq_hold(md->q, x->o, md->now);
    if (x->state != STATE_NEW && x->state != STATE_QUEUED) {
        CHECK(md, rc == PICKQ_BADSTATE);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    x->state = STATE_HELD;
    x->updated = md->now;
    md->dirty[x->wh] = true;
}

static int64_t
model_lease_len(const struct model *md, int64_t ms)
{
    if (ms <= 0)
        ms = md->cfg.lease_ms;
    return ms > md->cfg.lease_max_ms ? md->cfg.lease_max_ms : ms;
}

static void
op_next(struct model *md)
{
    int w = (int)rn(md, NWH);
    static const int64_t lens[] = {0, 5000, 30000, 10 * HOUR};
    int64_t len = lens[rn(md, 4)];
    static const char *const pickers[] = {"p1", "p2", ""};
    const char *picker = pickers[rn(md, 3)];
    struct order *o = NULL;
    model_sort(md, w);
    int rc = pickq_next(md->q, WH[w], picker, len, md->now, &o);
    if (md->nsorted[w] == 0) {
        CHECK(md, rc == PICKQ_EMPTY);
        CHECK(md, o == NULL);
        return;
    }
    struct mo *x = md->sorted[w][0];
    CHECK(md, rc == PICKQ_OK);
    CHECK(md, o == x->o);
    if (md->backlogged[w] && md->now > md->last_lease[w]) {
        int64_t g = md->now - md->last_lease[w];
        if (!md->gap_measured[w]) {
            md->gap[w] = g;
            md->gap_measured[w] = true;
        } else {
            md->gap[w] += (g - md->gap[w]) / 8;
        }
        for (int c = 0; c < CLASS_COUNT; c++) {
            int64_t v = md->over[w][c] * 1000;
            if (!md->rho_measured[w][c]) {
                md->rho[w][c] = v;
                md->rho_measured[w][c] = true;
            } else {
                md->rho[w][c] += (v - md->rho[w][c]) / 8;
            }
            md->over[w][c] = 0;
        }
    } else if (!md->backlogged[w]) {
        for (int c = 0; c < CLASS_COUNT; c++)
            md->over[w][c] = 0;
    }
    md->last_lease[w] = md->now;
    md->backlogged[w] = md->nsorted[w] > 1;
    x->state = STATE_PICKING;
    x->lease = ++md->lease;
    x->lease_exp = md->now + model_lease_len(md, len);
    x->picked_at = md->now;
    x->updated = md->now;
    snprintf(x->picker, sizeof(x->picker), "%s", picker);
    md->dirty[w] = true;
}

static void
model_pick_time(struct model *md, int w, int64_t took)
{
    if (took <= 0)
        return;
    if (!md->measured[w]) {
        md->mean[w] = took;
        md->measured[w] = true;
    } else {
        md->mean[w] += (took - md->mean[w]) / 8;
    }
}

static struct mo *
pick_leased(struct model *md)
{
    struct mo *x = pick_any(md);
    for (int tries = 0; x != NULL && tries < 8 && x->state != STATE_PICKING &&
                        x->state != STATE_PICKED;
         tries++)
        x = pick_any(md);
    return x;
}

static void
op_picked(struct model *md)
{
    struct mo *x = pick_leased(md);
    if (x == NULL)
        return;
    bool right = rn(md, 5) != 0;
    uint64_t lease = right ? x->lease : x->lease + 1000000;
    int rc = pickq_picked(md->q, x->o, lease, md->now);
    if (!right || (x->state != STATE_PICKING && x->state != STATE_PICKED)) {
        CHECK(md, rc == PICKQ_LEASE);
        return;
    }
    if (x->state == STATE_PICKED) {
        CHECK(md, rc == PICKQ_SAME);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    md->picked_ops++;
    md->cnt[x->wh].picked++;
    model_pick_time(md, x->wh, md->now - x->picked_at);
    x->state = STATE_PICKED;
    x->pick_done = md->now;
    x->fired = false;
    x->updated = md->now;
}

static void
op_release(struct model *md, bool touch)
{
    struct mo *x = pick_any(md);
    if (x == NULL)
        return;
    /* Mostly aim at picking orders, which are rare among all orders. */
    for (int tries = 0; tries < 8 && x->state != STATE_PICKING; tries++)
        x = pick_any(md);
    bool right = rn(md, 5) != 0;
    uint64_t lease = right ? x->lease : x->lease + 1000000;
    int64_t len = rn(md, 2) ? 0 : 20000;
    int rc = touch ? pickq_touch(md->q, x->o, lease, len, md->now)
                   : pickq_release(md->q, x->o, lease, md->now);
    if (x->state != STATE_PICKING || !right) {
        CHECK(md, rc == PICKQ_LEASE);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    x->updated = md->now;
    if (touch) {
        x->lease_exp = md->now + model_lease_len(md, len);
    } else {
        x->state = STATE_QUEUED; /* same eff, deadline and seq */
        x->parked = false;
        md->dirty[x->wh] = true;
    }
}

struct count_cb {
    int expired, escalated, unconfirmed;
};

static void
count_expired(void *ctx, struct order *o, uint64_t old)
{
    ((struct count_cb *)ctx)->expired++;
}

static void
count_escalated(void *ctx, struct order *o, int from)
{
    ((struct count_cb *)ctx)->escalated++;
}

static void
count_unconfirmed(void *ctx, struct order *o)
{
    ((struct count_cb *)ctx)->unconfirmed++;
}

static void
op_tick(struct model *md)
{
    md->now +=
        rn(md, 20) == 0 ? (int64_t)rn(md, 3 * HOUR) : (int64_t)rn(md, 60000);
    if (rn(md, 10) == 0) /* onto a deadline grid point: window edges */
        md->now = (md->now / (5 * MIN) + 1) * (5 * MIN);
    size_t expired = 0, escalated = 0;
    for (size_t i = 0; i < md->n; i++) {
        struct mo *x = &md->m[i];
        if (x->state == STATE_PICKING && x->lease_exp <= md->now) {
            x->state = STATE_QUEUED;
            x->parked = false;
            x->updated = md->now;
            expired++;
        }
    }
    size_t unconfirmed = 0;
    for (size_t i = 0; i < md->n; i++) {
        struct mo *x = &md->m[i];
        if (x->state == STATE_PICKED && !x->fired &&
            x->pick_done + md->cfg.confirm_timeout_ms <= md->now) {
            x->fired = true; /* not a transition: updated stays */
            md->cnt[x->wh].unconfirmed++;
            unconfirmed++;
        }
    }
    for (size_t i = 0; i < md->n; i++) {
        struct mo *x = &md->m[i];
        if (x->state != STATE_QUEUED)
            continue;
        bool may = model_may_escalate(md, x->cls);
        if (x->eff != x->cls) {
            if (x->deadline <= md->now) { /* the promotion ends */
                x->eff = x->cls;
                escalated++;
                x->updated = md->now;
                x->parked = may; /* its promotion time is past too */
            }
        } else if (may && !x->parked &&
                   x->deadline - md->cfg.escalate_window[x->cls] <= md->now) {
            if (x->deadline <= md->now) {
                x->parked = true;
            } else {
                x->eff = x->cls - 1;
                escalated++;
                model_overtake(md, x, x->cls);
                x->updated = md->now;
            }
        }
    }
    struct count_cb cc = {0, 0, 0};
    struct pickq_tick_cb cb = {count_expired, count_escalated,
                               count_unconfirmed, &cc};
    size_t got = pickq_tick(md->q, md->now, &cb);
    CHECK(md, got == expired + escalated + unconfirmed);
    CHECK(md, (size_t)cc.expired == expired);
    CHECK(md, (size_t)cc.escalated == escalated);
    CHECK(md, (size_t)cc.unconfirmed == unconfirmed);
    md->unconfirmed += (long)unconfirmed;
    CHECK(md, pickq_next_timer(md->q) > md->now);
    md->expiries += (long)expired;
    md->escalations += (long)escalated;
    all_dirty(md);
}

static void
op_cancel(struct model *md)
{
    struct mo *x = pick_any(md);
    if (x == NULL)
        return;
    int rc = pickq_cancel(md->q, x->o, md->now);
    if (order_state_finished(x->state) || x->state == STATE_PICKED) {
        CHECK(md, rc == PICKQ_BADSTATE);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    x->state = STATE_CANCELLED;
    x->updated = md->now;
    md->dirty[x->wh] = true;
}

/* The outbound the model expects from x (not shipped nor delivered) by
   operator op at md->now, checked against what pickq said in info; x
   becomes shipped. */
static void
model_outbound(struct model *md, struct mo *x, const char *op,
               const struct pickq_outbound_info *info)
{
    static const char *const why[STATE_COUNT] = {
        [STATE_NEW] = "shipped before it was approved",
        [STATE_HELD] = "shipped while on hold",
        [STATE_QUEUED] = "shipped without being picked",
        [STATE_CANCELLED] = "shipped after it was cancelled",
    };
    struct mcount *mc = &md->cnt[x->wh];
    bool revoked = x->state == STATE_PICKING && op[0] != '\0' &&
                   x->picker[0] != '\0' && strcmp(op, x->picker) != 0;
    const char *want = revoked ? "shipped by another picker than the lease "
                                 "holder"
                               : why[x->state];
    bool leased = x->state == STATE_PICKING || x->state == STATE_PICKED;
    CHECK(md, info->from == x->state);
    CHECK(md, info->revoked == revoked);
    CHECK(md, info->anomaly == (want != NULL));
    CHECK(md, strcmp(info->why, want != NULL ? want : "") == 0);
    if (revoked) {
        CHECK(md, info->revoked_lease == x->lease);
        CHECK(md, strcmp(info->revoked_picker, x->picker) == 0);
        md->revoked++;
        mc->revocations++;
    }
    if (want != NULL) {
        md->odd++;
        mc->anomalous++;
    }
    if (!leased)
        mc->unleased++;
    mc->outbounds++;
    CHECK(md, x->o->outbound_leased == leased);
    CHECK(md, x->o->outbound_at == md->now);
    CHECK(md, strcmp(x->o->operator_, op) == 0);
    if (x->state == STATE_PICKING && !revoked)
        model_pick_time(md, x->wh, md->now - x->picked_at);
    x->state = STATE_SHIPPED;
    x->updated = md->now;
    md->dirty[x->wh] = true;
}

static const char *
model_operator(struct model *md)
{
    static const char *const ops[] = {"p1", "p2", "", "wms"};
    return ops[rn(md, 4)];
}

static void
op_outbound(struct model *md)
{
    struct mo *x = rn(md, 2) ? pick_leased(md) : pick_any(md);
    if (x == NULL)
        return;
    const char *op = model_operator(md);
    struct pickq_outbound_info info;
    int rc = pickq_outbound(md->q, x->o, op, md->now, md->now, &info);
    if (x->state == STATE_SHIPPED || x->state == STATE_DELIVERED) {
        CHECK(md, rc == PICKQ_SAME);
        CHECK(md, info.from == x->state && !info.anomaly && !info.revoked);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    CHECK(md, !info.implied);
    model_outbound(md, x, op, &info);
}

static void
op_deliver(struct model *md)
{
    struct mo *x = rn(md, 3) ? pick_any(md) : pick_leased(md);
    if (x == NULL)
        return;
    const char *op = rn(md, 2) ? "" : model_operator(md);
    struct pickq_outbound_info info;
    int rc = pickq_deliver(md->q, x->o, op, md->now, md->now, &info);
    if (x->state == STATE_DELIVERED) {
        CHECK(md, rc == PICKQ_SAME);
        CHECK(md, info.from == STATE_DELIVERED && !info.implied);
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    CHECK(md, info.implied == (x->state != STATE_SHIPPED));
    if (x->state != STATE_SHIPPED) {
        md->implied++;
        model_outbound(md, x, op, &info);
    } else {
        CHECK(md, info.from == STATE_SHIPPED && !info.anomaly);
    }
    md->cnt[x->wh].deliveries++;
    x->state = STATE_DELIVERED;
    x->updated = md->now;
}

static void
op_reprio(struct model *md)
{
    struct mo *x = pick_any(md);
    if (x == NULL)
        return;
    int cls = (int)rn(md, CLASS_COUNT);
    int64_t d = rn(md, 3) == 0 ? 0 : model_deadline(md);
    bool bad = rn(md, 16) == 0;
    if (bad)
        d = model_bad_deadline(md);
    bool queued = x->state == STATE_QUEUED;
    size_t old_rank = queued ? model_rank(md, x) : 0;
    struct pickq_jump j;
    char err[200] = "";
    int rc = pickq_reprio(md->q, x->o, cls, d, md->now, &j, err, sizeof(err));
    if (order_state_finished(x->state)) {
        CHECK(md, rc == PICKQ_BADSTATE);
        CHECK(md, j.order == NULL);
        return;
    }
    if (bad) {
        CHECK(md, rc == PICKQ_BADARG);
        CHECK(md, strstr(err, "outside the accepted window") != NULL);
        CHECK(md, j.order == NULL);
        check_order(md, x); /* unchanged, and so is its queue (check_wh) */
        return;
    }
    CHECK(md, rc == PICKQ_OK);
    uint64_t old_key = order_key(x->eff, x->deadline);
    x->cls = cls;
    if (d != 0)
        x->deadline = d;
    int eff0 = x->eff;
    x->parked = false;
    x->eff = model_escalate(md, cls, x->deadline);
    if (queued)
        model_overtake(md, x, eff0);
    x->updated = md->now;
    md->dirty[x->wh] = true;
    bool up = queued && order_key(x->eff, x->deadline) < old_key &&
              x->eff != CLASS_NORMAL;
    check_jump(md, x, &j, up, old_rank, true);
}

static struct model *forget_md;

static void
forget_cb(void *ctx, struct order *o)
{
    (*(size_t *)ctx)++;
    CHECK(forget_md, order_state_finished(o->state));
}

static void
op_forget(struct model *md)
{
    int64_t before = md->now - 10 * MIN;
    size_t want = 0, got = 0;
    for (size_t i = 0; i < md->n;) {
        struct mo *x = &md->m[i];
        if (order_state_finished(x->state) && x->updated < before) {
            want++;
            md->m[i] = md->m[--md->n];
        } else {
            i++;
        }
    }
    forget_md = md;
    size_t n = pickq_forget_finished(md->q, before, forget_cb, &got);
    CHECK(md, n == want);
    CHECK(md, got == want);
    all_dirty(md);
}

Test(pickq, model_random_operations, .timeout = 600)
{
    struct model *md = calloc(1, sizeof(*md));
    cr_assert_not_null(md);
    md->m = calloc(MODEL_CAP, sizeof(*md->m));
    cr_assert_not_null(md->m);
    const char *env = getenv("PICKQ_SEED");
    md->seed = env != NULL ? strtoull(env, NULL, 10)
                           : (unsigned long long)time(NULL) ^
                                 ((unsigned long long)getpid() << 16);
    md->rng = md->seed * 2 + 1;
    fprintf(stderr, "pickq model test: seed %llu\n", md->seed);

    pickq_config_default(&md->cfg);
    md->cfg.lease_ms = 20000;
    md->cfg.lease_max_ms = 60000;
    md->cfg.escalate_window[CLASS_RUSH4H] = 10 * MIN;
    md->cfg.escalate_window[CLASS_RUSH24H] = HOUR;
    md->cfg.escalate_window[CLASS_NORMAL] = 3 * HOUR;
    md->cfg.pick_ms = 5 * MIN;
    md->cfg.jump_scan = 8;
    md->cfg.confirm_timeout_ms = 10 * MIN;
    md->q = pickq_new(&md->cfg);
    cr_assert_not_null(md->q);
    md->now = T0;
    for (int w = 0; w < NWH; w++)
        md->mean[w] = md->cfg.pick_ms;

    static const struct {
        const char *name;
        int weight;
    } ops[] = {
        {"push", 20},  {"repush", 2},    {"approve", 8}, {"hold", 4},
        {"next", 15},  {"release", 7},   {"touch", 4},   {"tick", 8},
        {"cancel", 4}, {"outbound", 10}, {"deliver", 4}, {"reprio", 12},
        {"forget", 1}, {"picked", 8},
    };
    int total = 0;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        total += ops[i].weight;
    all_dirty(md);

    for (md->op = 0; md->op < MODEL_OPS; md->op++) {
        int r = (int)rn(md, (size_t)total);
        size_t k = 0;
        while (r >= ops[k].weight)
            r -= ops[k++].weight;
        md->opname = ops[k].name;
        if (rn(md, 4) != 0) /* else: same instant as the last op */
            md->now += (int64_t)rn(md, 2000);
        switch (k) {
        case 0:
            op_push(md);
            break;
        case 1:
            op_repush(md);
            break;
        case 2:
            op_approve(md);
            break;
        case 3:
            op_hold(md);
            break;
        case 4:
            op_next(md);
            break;
        case 5:
            op_release(md, false);
            break;
        case 6:
            op_release(md, true);
            break;
        case 7:
            op_tick(md);
            break;
        case 8:
            op_cancel(md);
            break;
        case 9:
            op_outbound(md);
            break;
        case 10:
            op_deliver(md);
            break;
        case 11:
            op_reprio(md);
            break;
        case 12:
            op_forget(md);
            break;
        case 13:
            op_picked(md);
            break;
        }
        for (int w = 0; w < NWH; w++)
            check_wh(md, w);
        if (md->op % 1000 == 0)
            check_all(md);
    }
    check_all(md);
    fprintf(stderr,
            "pickq model test: %d ops, %zu orders at the end, mean "
            "queue %.1f, %ld jumps, %ld at risk, %ld expiries, %ld "
            "escalations, %ld picked, %ld unconfirmed, %ld odd outbounds, "
            "%ld revoked, %ld implied\n",
            MODEL_OPS, md->n, (double)md->queued_sum / MODEL_OPS / NWH,
            md->jumps, md->at_risk, md->expiries, md->escalations,
            md->picked_ops, md->unconfirmed, md->odd, md->revoked, md->implied);
    CHECK(md, md->jumps > 0 && md->at_risk > 0 && md->expiries > 0 &&
                  md->escalations > 0 && md->picked_ops > 0 &&
                  md->unconfirmed > 0 && md->odd > 0 && md->revoked > 0 &&
                  md->implied > 0);
    pickq_free(md->q);
    free(md->m);
    free(md);
}
