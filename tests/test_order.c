/*
 * test_order.c — the order model: enums, the state machine (every pair
 * against a table written here independently), attributes, intake rules,
 * and time parsing and formatting.
 */
#include "name.h"
#include "order.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define S(lit) (lit), (sizeof(lit) - 1)

static struct order *
valid_order(const char *id, int cls)
{
    struct order *o = order_new();
    cr_assert_not_null(o);
    cr_assert_eq(order_set_id(o, id, strlen(id)), 0);
    cr_assert_eq(order_set_warehouse(o, S("SH01")), 0);
    cr_assert_eq(order_set_customer(o, S("FAW-VW")), 0);
    o->cls = (uint8_t)cls;
    o->deadline = 1769407200000;
    return o;
}

/* ------------------------------------------------------------ fields */

Test(order, new_has_defaults)
{
    struct order *o = order_new();
    cr_assert_not_null(o);
    cr_assert_eq(o->cls, CLASS_NORMAL);
    cr_assert_eq(o->eff_cls, CLASS_NORMAL);
    cr_assert_eq(o->state, STATE_NEW);
    cr_assert_eq(o->source, SOURCE_DEALER);
    cr_assert_eq(o->fulfil, FULFIL_STOCK);
    cr_assert_eq(o->risk, 0);
    cr_assert_eq(o->nattrs, 0);
    cr_assert_null(o->attrs);
    cr_assert_str_empty(o->id);
    order_free(o);
    order_free(NULL);
}

Test(order, fixed_fields_are_bounded)
{
    struct order *o = order_new();
    char big[ORDER_ID_MAX + 2];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(order_set_id(o, big, ORDER_ID_MAX), 0);
    cr_assert_eq(strlen(o->id), ORDER_ID_MAX);
    cr_assert_eq(order_set_id(o, big, ORDER_ID_MAX + 1), -1);
    cr_assert_eq(order_set_warehouse(o, big, ORDER_NAME_MAX), 0);
    cr_assert_eq(order_set_warehouse(o, big, ORDER_NAME_MAX + 1), -1);
    cr_assert_eq(order_set_customer(o, big, ORDER_NAME_MAX), 0);
    cr_assert_eq(order_set_customer(o, big, ORDER_NAME_MAX + 1), -1);
    cr_assert_eq(order_set_picker(o, big, ORDER_NAME_MAX + 1), -1);
    cr_assert_eq(order_set_operator(o, big, ORDER_NAME_MAX + 1), -1);
    cr_assert_str_empty(o->picker, "a refused name leaves the field");
    cr_assert_eq(order_set_id(o, "a\0b", 3), -1, "embedded NUL refused");
    cr_assert_eq(order_set_id(o, S("RD20251127-0892")), 0);
    cr_assert_str_eq(o->id, "RD20251127-0892");
    cr_assert_eq(order_set_customer(o, "", 0), 0);
    cr_assert_str_empty(o->customer);
    order_free(o);
}

/* Names are interned: orders share one copy, and the last order to let go
   frees it (ASan would report a leak or a use after free). */
Test(order, names_are_shared_and_counted)
{
    size_t base = name_count();
    struct order *a = order_new(), *b = order_new();
    cr_assert(a && b);
    cr_assert_eq(a->customer, name_empty);
    cr_assert_eq(order_set_customer(a, "C001", 4), 0);
    cr_assert_eq(order_set_customer(b, "C001", 4), 0);
    cr_assert_eq(a->customer, b->customer, "one copy");
    cr_assert_eq(order_set_warehouse(a, "W1", 2), 0);
    cr_assert_eq(order_set_picker(b, "W1", 2), 0);
    cr_assert_eq(a->warehouse, b->picker, "same name, same copy");
    cr_assert_eq(name_count(), base + 2);
    cr_assert_eq(order_set_customer(a, "C002", 4), 0);
    cr_assert_str_eq(b->customer, "C001", "b keeps its name");
    cr_assert_eq(name_count(), base + 3);
    order_free(b);
    cr_assert_eq(name_count(), base + 2, "C001 freed with its last order");
    cr_assert_eq(name_ref(a->warehouse), a->warehouse);
    name_put(a->warehouse);
    order_free(a);
    cr_assert_eq(name_count(), base);
    cr_assert_eq(name_get("", 0), name_empty);
    name_put(name_empty); /* ignored */
}

/* name_get keeps the names it found last in a small cache: many names
   that share its slots (same length, same end bytes) each come back as
   their own copy, and a name freed and asked for again is a live copy,
   not the freed one (ASan would catch a use after free). */
Test(order, name_cache_survives_collisions_and_frees)
{
    size_t base = name_count();
    const char *got[64];
    char buf[16];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 64; i++) {
            snprintf(buf, sizeof buf, "A%02dZ", i); /* same len and ends */
            got[i] = name_get(buf, strlen(buf));
            cr_assert_not_null(got[i]);
            cr_assert_str_eq(got[i], buf);
        }
        cr_assert_eq(name_count(), base + 64);
        for (int i = 0; i < 64; i++) {
            snprintf(buf, sizeof buf, "A%02dZ", i);
            cr_assert_eq(name_get(buf, strlen(buf)), got[i], "%s", buf);
            name_put(got[i]);
        }
        for (int i = 0; i < 64; i++)
            name_put(got[i]); /* frees them all */
        cr_assert_eq(name_count(), base);
    }
}

Test(order, attributes_set_get_replace_iterate)
{
    struct order *o = order_new();
    char err[128];
    cr_assert_null(order_attr_get(o, "carrier"));
    cr_assert_eq(order_attr_set(o, S("carrier"), S("SF"), err, sizeof(err)), 0);
    cr_assert_eq(
        order_attr_set(o, S("pack"), S("wood crate"), err, sizeof(err)), 0);
    cr_assert_eq(order_attr_set(o, S("note"), "", 0, err, sizeof(err)), 0);
    cr_assert_eq(o->nattrs, 3);
    cr_assert_str_eq(order_attr_get(o, "carrier"), "SF");
    cr_assert_str_eq(order_attr_get(o, "pack"), "wood crate");
    cr_assert_str_eq(order_attr_get(o, "note"), "");
    cr_assert_null(order_attr_get(o, "car"), "no prefix match");

    /* Replace: longer, then shorter; the others are untouched. */
    cr_assert_eq(order_attr_set(o, S("carrier"), S("Deppon Logistics"), err,
                                sizeof(err)),
                 0);
    cr_assert_eq(o->nattrs, 3);
    cr_assert_str_eq(order_attr_get(o, "carrier"), "Deppon Logistics");
    cr_assert_str_eq(order_attr_get(o, "pack"), "wood crate");
    cr_assert_eq(order_attr_set(o, S("pack"), S("box"), err, sizeof(err)), 0);
    cr_assert_str_eq(order_attr_get(o, "pack"), "box");
    cr_assert_str_eq(order_attr_get(o, "note"), "");
    cr_assert_eq(o->attrs_len, strlen("carrier") + strlen("Deppon Logistics") +
                                   strlen("pack") + strlen("box") +
                                   strlen("note") + 6);

    const char *want[][2] = {
        {"carrier", "Deppon Logistics"}, {"pack", "box"}, {"note", ""}};
    size_t pos = 0, n = 0;
    const char *k, *v;
    while (order_attr_next(o, &pos, &k, &v)) {
        cr_assert_lt(n, 3);
        cr_assert_str_eq(k, want[n][0]);
        cr_assert_str_eq(v, want[n][1]);
        n++;
    }
    cr_assert_eq(n, 3);
    order_free(o);
}

Test(order, attribute_bounds)
{
    struct order *o = order_new();
    char err[128];
    char key[ORDER_ATTR_KEY_MAX + 1], val[ORDER_ATTR_VAL_MAX + 1];
    memset(key, 'k', sizeof(key));
    memset(val, 'v', sizeof(val));

    cr_assert_eq(order_attr_set(o, "", 0, S("v"), err, sizeof(err)), -1);
    cr_assert(strstr(err, "empty") != NULL, "%s", err);
    cr_assert_eq(order_attr_set(o, key, sizeof(key), S("v"), err, sizeof(err)),
                 -1);
    cr_assert(strstr(err, "key longer") != NULL, "%s", err);
    cr_assert_eq(order_attr_set(o, S("k"), val, sizeof(val), err, sizeof(err)),
                 -1);
    cr_assert(strstr(err, "value longer") != NULL, "%s", err);
    cr_assert_eq(order_attr_set(o, S("k"), "a\0b", 3, err, sizeof(err)), -1);
    cr_assert(strstr(err, "NUL") != NULL, "%s", err);
    cr_assert_eq(o->nattrs, 0);

    /* The largest key and value fit. */
    cr_assert_eq(order_attr_set(o, key, ORDER_ATTR_KEY_MAX, val,
                                ORDER_ATTR_VAL_MAX, err, sizeof(err)),
                 0);
    for (int i = 1; i < ORDER_ATTRS_MAX; i++) {
        char k[16];
        int kl = snprintf(k, sizeof(k), "a%d", i);
        cr_assert_eq(order_attr_set(o, k, (size_t)kl, S("x"), err, sizeof(err)),
                     0);
    }
    cr_assert_eq(o->nattrs, ORDER_ATTRS_MAX);
    cr_assert_eq(order_attr_set(o, S("one_more"), S("x"), err, sizeof(err)),
                 -1);
    cr_assert(strstr(err, "more than 32") != NULL, "%s", err);
    /* Replacing at the limit is still allowed. */
    cr_assert_eq(order_attr_set(o, S("a5"), S("yy"), err, sizeof(err)), 0);
    cr_assert_str_eq(order_attr_get(o, "a5"), "yy");
    /* A NULL err is fine. */
    cr_assert_eq(order_attr_set(o, "", 0, S("v"), NULL, 0), -1);
    order_free(o);
}

Test(order, same_content)
{
    struct order *a = valid_order("RD1", CLASS_RUSH4H);
    struct order *b = valid_order("RD1", CLASS_RUSH4H);
    cr_assert(order_attr_set(a, S("x"), S("1"), NULL, 0) == 0);
    cr_assert(order_attr_set(a, S("y"), S("2"), NULL, 0) == 0);
    cr_assert(order_attr_set(b, S("y"), S("2"), NULL, 0) == 0);
    cr_assert(order_attr_set(b, S("x"), S("1"), NULL, 0) == 0);
    cr_assert(order_same_content(a, b), "attribute order does not matter");
    b->state = STATE_QUEUED;
    b->seq = 99;
    cr_assert(order_same_content(a, b), "state is not content");

    /* Each case changes one field; switch (i) below says how. */
    static const char *const what[] = {
        "id",     "class",  "deadline", "warehouse",  "customer",
        "source", "fulfil", "risk",     "attr value", "attr extra"};
    for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
        struct order *c = valid_order("RD1", CLASS_RUSH4H);
        cr_assert(order_attr_set(c, S("x"), S("1"), NULL, 0) == 0);
        cr_assert(order_attr_set(c, S("y"), S("2"), NULL, 0) == 0);
        cr_assert(order_same_content(a, c));
        switch (i) {
        case 0:
            order_set_id(c, S("RD2"));
            break;
        case 1:
            c->cls = CLASS_ASN;
            break;
        case 2:
            c->deadline++;
            break;
        case 3:
            order_set_warehouse(c, S("BJ02"));
            break;
        case 4:
            order_set_customer(c, S("Geely"));
            break;
        case 5:
            c->source = SOURCE_ECOMMERCE;
            break;
        case 6:
            c->fulfil = FULFIL_VMI;
            break;
        case 7:
            c->risk = RISK_OVERDUE_90D;
            break;
        case 8:
            order_attr_set(c, S("y"), S("3"), NULL, 0);
            break;
        case 9:
            order_attr_set(c, S("z"), S("3"), NULL, 0);
            break;
        }
        cr_assert(!order_same_content(a, c), "%s differs", what[i]);
        cr_assert(!order_same_content(c, a), "%s differs", what[i]);
        order_free(c);
    }
    order_free(a);
    order_free(b);
}

/* ------------------------------------------------------------ enums */

struct words {
    const char *const *names;
    int n;
    int (*parse)(const char *, size_t);
    const char *(*name)(int);
};

static void
check_words(const struct words *w)
{
    for (int i = 0; i < w->n; i++) {
        const char *nm = w->name(i);
        cr_assert_str_eq(nm, w->names[i]);
        cr_assert_eq(w->parse(nm, strlen(nm)), i, "%s", nm);
        char up[64];
        size_t l = strlen(nm);
        for (size_t j = 0; j <= l; j++)
            up[j] = (char)(j % 2 ? nm[j]
                                 : (nm[j] >= 'a' && nm[j] <= 'z' ? nm[j] - 32
                                                                 : nm[j]));
        cr_assert_eq(w->parse(up, l), i, "case-insensitive %s", up);
        cr_assert_eq(w->parse(nm, l - 1), -1, "prefix of %s", nm);
        char longer[80];
        snprintf(longer, sizeof(longer), "%sx", nm);
        cr_assert_eq(w->parse(longer, l + 1), -1, "%s", longer);
    }
    cr_assert_eq(w->parse("", 0), -1);
    cr_assert_eq(w->parse(S("bogus")), -1);
    cr_assert_str_eq(w->name(-1), "?");
    cr_assert_str_eq(w->name(w->n), "?");
}

Test(order, enum_names_round_trip)
{
    static const char *const cls[] = {"asn", "rush4h", "rush24h", "normal"};
    static const char *const st[] = {"new",       "held",    "queued",
                                     "picking",   "shipped", "delivered",
                                     "cancelled", "picked"};
    static const char *const act[] = {
        "push",    "approve",  "hold",     "next",    "touch",
        "release", "expire",   "outbound", "deliver", "cancel",
        "reprio",  "escalate", "picked"};
    static const char *const src[] = {"dealer", "asn", "ecommerce",
                                      "aftersales"};
    static const char *const ful[] = {"stock", "to_drawing", "vmi", "jit"};
    struct words all[] = {
        {cls, CLASS_COUNT, order_class_parse, order_class_name},
        {st, STATE_COUNT, order_state_parse, order_state_name},
        {act, ACTION_COUNT, order_action_parse, order_action_name},
        {src, SOURCE_COUNT, order_source_parse, order_source_name},
        {ful, FULFIL_COUNT, order_fulfil_parse, order_fulfil_name},
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        check_words(&all[i]);
    /* The numeric order of classes is the pick order. */
    cr_assert_lt(CLASS_ASN, CLASS_RUSH4H);
    cr_assert_lt(CLASS_RUSH4H, CLASS_RUSH24H);
    cr_assert_lt(CLASS_RUSH24H, CLASS_NORMAL);
    /* States and actions are stored by number: these never change. */
    cr_assert_eq(STATE_NEW, 0);
    cr_assert_eq(STATE_PICKING, 3);
    cr_assert_eq(STATE_SHIPPED, 4);
    cr_assert_eq(STATE_CANCELLED, 6);
    cr_assert_eq(STATE_PICKED, 7);
    cr_assert_eq(ACTION_ESCALATE, 11);
    cr_assert_eq(ACTION_PICKED, 12);
}

Test(order, finished_states)
{
    for (int s = 0; s < STATE_COUNT; s++) {
        bool want =
            s == STATE_SHIPPED || s == STATE_DELIVERED || s == STATE_CANCELLED;
        cr_assert_eq(order_state_finished(s), want, "%s", order_state_name(s));
    }
}

Test(order, risk_parse_and_format)
{
    char buf[64];
    cr_assert_eq(order_risk_parse("", 0), 0);
    cr_assert_eq(order_risk_parse(S("new_customer")), RISK_NEW_CUSTOMER);
    cr_assert_eq(order_risk_parse(S("OVERDUE_90D,new_customer")),
                 RISK_OVERDUE_90D | RISK_NEW_CUSTOMER);
    cr_assert_eq(order_risk_parse(S("high_returns,high_returns")),
                 RISK_HIGH_RETURNS);
    cr_assert_eq(order_risk_parse(S("new_customer,high_returns,overdue_90d")),
                 RISK_ALL);
    cr_assert_eq(order_risk_parse(S("new_customer,")), -1);
    cr_assert_eq(order_risk_parse(S(",new_customer")), -1);
    cr_assert_eq(order_risk_parse(S("new_customer,,high_returns")), -1);
    cr_assert_eq(order_risk_parse(S("vip")), -1);
    cr_assert_eq(order_risk_parse(S("new_customer, high_returns")), -1);

    cr_assert_str_eq(order_risk_format(0, buf, sizeof(buf)), "");
    cr_assert_str_eq(order_risk_format(RISK_ALL, buf, sizeof(buf)),
                     "new_customer,high_returns,overdue_90d");
    cr_assert_str_eq(order_risk_format(RISK_OVERDUE_90D | RISK_NEW_CUSTOMER,
                                       buf, sizeof(buf)),
                     "new_customer,overdue_90d");
    for (unsigned r = 0; r <= RISK_ALL; r++) {
        order_risk_format(r, buf, sizeof(buf));
        cr_assert_eq(order_risk_parse(buf, strlen(buf)), (int)r, "%s", buf);
    }
    /* A short buffer is truncated at a whole name, always terminated. */
    char small[16];
    cr_assert_str_eq(order_risk_format(RISK_ALL, small, sizeof(small)),
                     "new_customer");
}

/* ------------------------------------------------------------ state machine */

/* The legal transitions, written out from DESIGN.md's diagram and the
   comments of enum order_action, independently of order.c's table.  The
   WMS is the truth: an outbound lands from every state but shipped and
   delivered; a picked order cannot be cancelled (the goods are off the
   shelf) nor go back to the queue. */
static const struct {
    int from, action, to;
} legal[] = {
    {STATE_NEW, ACTION_APPROVE, STATE_QUEUED},
    {STATE_HELD, ACTION_APPROVE, STATE_QUEUED},
    {STATE_NEW, ACTION_HOLD, STATE_HELD},
    {STATE_QUEUED, ACTION_HOLD, STATE_HELD},
    {STATE_QUEUED, ACTION_NEXT, STATE_PICKING},
    {STATE_PICKING, ACTION_TOUCH, STATE_PICKING},
    {STATE_PICKING, ACTION_RELEASE, STATE_QUEUED},
    {STATE_PICKING, ACTION_EXPIRE, STATE_QUEUED},
    {STATE_QUEUED, ACTION_OUTBOUND, STATE_SHIPPED},
    {STATE_PICKING, ACTION_OUTBOUND, STATE_SHIPPED},
    {STATE_SHIPPED, ACTION_DELIVER, STATE_DELIVERED},
    {STATE_NEW, ACTION_CANCEL, STATE_CANCELLED},
    {STATE_HELD, ACTION_CANCEL, STATE_CANCELLED},
    {STATE_QUEUED, ACTION_CANCEL, STATE_CANCELLED},
    {STATE_PICKING, ACTION_CANCEL, STATE_CANCELLED},
    {STATE_NEW, ACTION_REPRIO, STATE_NEW},
    {STATE_HELD, ACTION_REPRIO, STATE_HELD},
    {STATE_QUEUED, ACTION_REPRIO, STATE_QUEUED},
    {STATE_PICKING, ACTION_REPRIO, STATE_PICKING},
    {STATE_QUEUED, ACTION_ESCALATE, STATE_QUEUED},
    {STATE_NEW, ACTION_OUTBOUND, STATE_SHIPPED},
    {STATE_HELD, ACTION_OUTBOUND, STATE_SHIPPED},
    {STATE_CANCELLED, ACTION_OUTBOUND, STATE_SHIPPED},
    {STATE_PICKING, ACTION_PICKED, STATE_PICKED},
    {STATE_PICKED, ACTION_OUTBOUND, STATE_SHIPPED},
    {STATE_PICKED, ACTION_REPRIO, STATE_PICKED},
};

Test(order, transition_table_every_pair)
{
    size_t nlegal = 0;
    for (int s = 0; s < STATE_COUNT; s++) {
        for (int a = 0; a < ACTION_COUNT; a++) {
            int want = -1;
            for (size_t i = 0; i < sizeof(legal) / sizeof(legal[0]); i++)
                if (legal[i].from == s && legal[i].action == a)
                    want = legal[i].to;
            int to = 12345;
            int rc = order_transition(s, a, &to);
            if (want < 0) {
                cr_assert_eq(rc, -1, "%s from %s must be illegal",
                             order_action_name(a), order_state_name(s));
                cr_assert_eq(to, 12345, "to untouched when illegal");
            } else {
                cr_assert_eq(rc, 0, "%s from %s must be legal",
                             order_action_name(a), order_state_name(s));
                cr_assert_eq(to, want, "%s from %s goes to %s, not %s",
                             order_action_name(a), order_state_name(s),
                             order_state_name(want), order_state_name(to));
                nlegal++;
            }
        }
    }
    cr_assert_eq(nlegal, sizeof(legal) / sizeof(legal[0]));
}

Test(order, transition_out_of_range_and_push)
{
    int to;
    cr_assert_eq(order_transition(-1, ACTION_APPROVE, &to), -1);
    cr_assert_eq(order_transition(STATE_COUNT, ACTION_APPROVE, &to), -1);
    cr_assert_eq(order_transition(STATE_NEW, -1, &to), -1);
    cr_assert_eq(order_transition(STATE_NEW, ACTION_COUNT, &to), -1);
    for (int s = 0; s < STATE_COUNT; s++) {
        cr_assert_eq(order_transition(s, ACTION_PUSH, &to), -1,
                     "push is from no state");
        int want = s == STATE_NEW || s == STATE_QUEUED ? 0 : -1;
        cr_assert_eq(order_push_state(s), want, "push into %s",
                     order_state_name(s));
    }
    cr_assert_eq(order_push_state(-1), -1);
    cr_assert_eq(order_push_state(STATE_COUNT), -1);
}

/* ------------------------------------------------------------ intake */

static void
expect_invalid(struct order *o, const char *needle)
{
    char err[256] = "";
    cr_assert_eq(order_validate(o, err, sizeof(err)), -1, "want '%s'", needle);
    cr_assert(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err,
              needle);
}

Test(order, validate_accepts_a_valid_order)
{
    char err[128] = "";
    struct order *o = valid_order("RD20251127-0892", CLASS_NORMAL);
    cr_assert_eq(order_validate(o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(order_set_customer(o, "", 0), 0);
    cr_assert_eq(order_validate(o, err, sizeof(err)), 0, "customer optional");
    cr_assert_eq(order_validate(o, NULL, 0), 0);
    order_free(o);
}

Test(order, validate_every_intake_error)
{
    struct order *o = valid_order("", CLASS_NORMAL);
    expect_invalid(o, "order id is empty");
    order_free(o);

    /* Over-long fields never reach an order: the setters refuse them
       (fixed_fields_are_bounded). */
    o = valid_order("RD1", CLASS_NORMAL);
    cr_assert_eq(order_set_warehouse(o, "", 0), 0);
    expect_invalid(o, "order RD1: warehouse is missing");
    order_free(o);

    o = valid_order("RD1", CLASS_NORMAL);
    o->cls = CLASS_COUNT;
    expect_invalid(o, "unknown class 4");
    order_free(o);

    o = valid_order("RD1", CLASS_NORMAL);
    o->source = SOURCE_COUNT;
    expect_invalid(o, "unknown source");
    o->source = SOURCE_DEALER;
    o->fulfil = FULFIL_COUNT;
    expect_invalid(o, "unknown source, fulfilment");
    o->fulfil = FULFIL_STOCK;
    o->risk = 1u << 5;
    expect_invalid(o, "risk");
    order_free(o);

    o = valid_order("RD1", CLASS_NORMAL);
    o->nattrs = ORDER_ATTRS_MAX + 1; /* written directly */
    expect_invalid(o, "33 attributes, at most 32");
    o->nattrs = 0;
    order_free(o);

    o = valid_order("RD1", CLASS_ASN);
    o->deadline = 0;
    expect_invalid(o, "order RD1: class asn needs a deadline");
    o->deadline = -5;
    expect_invalid(o, "needs a deadline");
    order_free(o);
}

Test(order, validate_asn_and_to_drawing_documents)
{
    struct order *o = valid_order("ASN-7", CLASS_ASN);
    expect_invalid(o, "order ASN-7: asn order needs attribute asn_number");
    order_attr_set(o, S("asn_number"), "", 0, NULL, 0);
    expect_invalid(o, "needs attribute asn_number"); /* empty is missing */
    order_attr_set(o, S("asn_number"), S("ASN-0042"), NULL, 0);
    expect_invalid(o, "asn order needs attribute tech_agreement");
    order_attr_set(o, S("tech_agreement"), S("TA-2025-17"), NULL, 0);
    cr_assert_eq(order_validate(o, NULL, 0), 0);

    /* The class decides, not the source. */
    struct order *p = valid_order("D-1", CLASS_RUSH4H);
    p->source = SOURCE_ASN;
    cr_assert_eq(order_validate(p, NULL, 0), 0);

    p->fulfil = FULFIL_TO_DRAWING;
    expect_invalid(p, "order D-1: to_drawing order needs attribute "
                      "drawing_version");
    order_attr_set(p, S("drawing_version"), S("B.3"), NULL, 0);
    cr_assert_eq(order_validate(p, NULL, 0), 0);

    /* Both rules on one order: each is checked. */
    o->fulfil = FULFIL_TO_DRAWING;
    expect_invalid(o, "drawing_version");
    order_free(o);
    order_free(p);
}

/* ------------------------------------------------------------ time */

static int64_t
tparse(const char *s)
{
    int64_t ms = -777;
    int rc = order_time_parse(s, strlen(s), &ms);
    cr_assert_eq(rc, 0, "'%s' must parse", s);
    return ms;
}

static void
tbad(const char *s)
{
    int64_t ms = -777;
    cr_assert_eq(order_time_parse(s, strlen(s), &ms), -1, "'%s' must fail", s);
    cr_assert_eq(ms, -777, "'%s': output untouched", s);
}

static const char *
tfmt(int64_t ms)
{
    static char buf[64];
    return order_time_format(ms, buf, sizeof(buf));
}

Test(order, time_parse_epoch_ms)
{
    cr_assert_eq(tparse("1769407200000"), 1769407200000);
    cr_assert_eq(tparse("0"), 0);
    cr_assert_eq(tparse("0001"), 1);
    cr_assert_eq(tparse("9223372036854775807"), INT64_MAX);
    tbad("9223372036854775808");
    tbad("99999999999999999999");
    tbad("");
    tbad("12a");
    tbad("+12");
    tbad(" 12");
    tbad("12 ");
    tbad("1.5");
    /* len, not the terminator, bounds the input */
    int64_t ms;
    cr_assert_eq(order_time_parse("123456", 3, &ms), 0);
    cr_assert_eq(ms, 123);
}

Test(order, time_parse_iso_offsets_and_z)
{
    /* The example from order.h: 14:00 in Shanghai is 06:00 UTC. */
    int64_t want = 1769407200000;
    cr_assert_eq(tparse("2026-01-26T14:00:00+08:00"), want);
    cr_assert_eq(tparse("2026-01-26T06:00:00Z"), want);
    cr_assert_eq(tparse("2026-01-26t06:00:00z"), want);
    cr_assert_eq(tparse("2026-01-26T06:00:00+00:00"), want);
    cr_assert_eq(tparse("2026-01-26T06:00:00-00:00"), want);
    cr_assert_eq(tparse("2026-01-26T14:00:00+0800"), want);
    cr_assert_eq(tparse("2026-01-26T14:00:00+08"), want);
    cr_assert_eq(tparse("2026-01-26T01:00:00-05:00"), want);
    cr_assert_eq(tparse("2026-01-26T11:45:00+05:45"), want); /* Nepal */
    cr_assert_eq(tparse("2026-01-25T20:30:00-09:30"), want); /* Marquesas */
    /* An offset that crosses midnight and a year boundary. */
    cr_assert_eq(tparse("2026-01-01T07:59:59+08:00"),
                 tparse("2025-12-31T23:59:59Z"));
    cr_assert_eq(tparse("2025-12-31T23:00:00-02:00"),
                 tparse("2026-01-01T01:00:00Z"));
    cr_assert_eq(tparse("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(tparse("1970-01-01T08:00:00+08:00"), 0);
    cr_assert_eq(tparse("1969-12-31T23:59:59.999Z"), -1);
    cr_assert_eq(tparse("0000-01-01T00:00:00Z"), -62167219200000);
    cr_assert_eq(tparse("9999-12-31T23:59:59.999Z"), 253402300799999);
}

Test(order, time_parse_fractions)
{
    int64_t base = tparse("2026-01-26T06:00:00Z");
    cr_assert_eq(tparse("2026-01-26T06:00:00.5Z"), base + 500);
    cr_assert_eq(tparse("2026-01-26T06:00:00.05Z"), base + 50);
    cr_assert_eq(tparse("2026-01-26T06:00:00.123Z"), base + 123);
    cr_assert_eq(tparse("2026-01-26T06:00:00.1239Z"), base + 123,
                 "below a millisecond is truncated");
    cr_assert_eq(tparse("2026-01-26T06:00:00.999999999Z"), base + 999);
    cr_assert_eq(tparse("2026-01-26T06:00:00.000000000000001Z"), base);
    cr_assert_eq(tparse("2026-01-26T14:00:00.250+08:00"), base + 250);
    tbad("2026-01-26T06:00:00.Z");
    tbad("2026-01-26T06:00:00,5Z");
    tbad("2026-01-26T06:00:00.5x");
}

Test(order, time_parse_invalid)
{
    tbad("2026-01-26T06:00:00");  /* no offset */
    tbad("2026-01-26 06:00:00Z"); /* space */
    tbad("2026-01-26");
    tbad("2026-01-26T06:00Z"); /* no seconds */
    tbad("2026-1-26T06:00:00Z");
    tbad("26-01-26T06:00:00Z");
    tbad("2026-00-26T06:00:00Z");
    tbad("2026-13-01T06:00:00Z");
    tbad("2026-01-00T06:00:00Z");
    tbad("2026-01-32T06:00:00Z");
    tbad("2026-04-31T06:00:00Z");
    tbad("2026-06-31T06:00:00Z");
    tbad("2026-09-31T06:00:00Z");
    tbad("2026-11-31T06:00:00Z");
    tbad("2026-01-26T24:00:00Z");
    tbad("2026-01-26T23:60:00Z");
    tbad("2026-01-26T23:59:60Z"); /* no leap seconds */
    tbad("2026-01-26T06:00:00+24:00");
    tbad("2026-01-26T06:00:00+08:60");
    tbad("2026-01-26T06:00:00+8:00");
    tbad("2026-01-26T06:00:00+08:0");
    tbad("2026-01-26T06:00:00+080");
    tbad("2026-01-26T06:00:00+");
    tbad("2026-01-26T06:00:00ZZ");
    tbad("2026-01-26T06:00:00Z ");
    tbad("2026-01-26X06:00:00Z");
    tbad("-2026-01-26T06:00:00Z");
    tbad("2026-01-26T06:00:00UTC");
}

Test(order, time_parse_leap_years)
{
    /* Divisible by 4: leap; by 100: not; by 400: leap. */
    cr_assert_eq(tparse("2024-02-29T00:00:00Z") + 86400000,
                 tparse("2024-03-01T00:00:00Z"));
    cr_assert_eq(tparse("2000-02-29T12:00:00Z") + 86400000,
                 tparse("2000-03-01T12:00:00Z"));
    cr_assert_eq(tparse("2400-02-29T00:00:00Z") + 86400000,
                 tparse("2400-03-01T00:00:00Z"));
    tbad("2023-02-29T00:00:00Z");
    tbad("2100-02-29T00:00:00Z");
    tbad("1900-02-29T00:00:00Z");
    tbad("2024-02-30T00:00:00Z");
    cr_assert_eq(tparse("2023-02-28T00:00:00Z") + 86400000,
                 tparse("2023-03-01T00:00:00Z"));
    /* Year lengths. */
    cr_assert_eq(tparse("2025-01-01T00:00:00Z") -
                     tparse("2024-01-01T00:00:00Z"),
                 366 * 86400000LL);
    cr_assert_eq(tparse("2101-01-01T00:00:00Z") -
                     tparse("2100-01-01T00:00:00Z"),
                 365 * 86400000LL);
    cr_assert_eq(tparse("2001-01-01T00:00:00Z") -
                     tparse("2000-01-01T00:00:00Z"),
                 366 * 86400000LL);
    /* 400 Gregorian years are exactly 146097 days. */
    cr_assert_eq(tparse("2400-01-01T00:00:00Z") -
                     tparse("2000-01-01T00:00:00Z"),
                 146097 * 86400000LL);
}

Test(order, time_format)
{
    cr_assert_str_eq(tfmt(1769407200000), "2026-01-26T06:00:00.000Z");
    cr_assert_str_eq(tfmt(0), "1970-01-01T00:00:00.000Z");
    cr_assert_str_eq(tfmt(1), "1970-01-01T00:00:00.001Z");
    cr_assert_str_eq(tfmt(-1), "1969-12-31T23:59:59.999Z");
    cr_assert_str_eq(tfmt(-86400000), "1969-12-31T00:00:00.000Z");
    cr_assert_str_eq(tfmt(951782400000), "2000-02-29T00:00:00.000Z");
    cr_assert_str_eq(tfmt(253402300799999), "9999-12-31T23:59:59.999Z");
    cr_assert_str_eq(tfmt(-62167219200000), "0000-01-01T00:00:00.000Z");
    /* The extremes do not crash or overflow. */
    char buf[64];
    order_time_format(INT64_MAX, buf, sizeof(buf));
    cr_assert(strchr(buf, 'Z') != NULL, "%s", buf);
    order_time_format(INT64_MIN, buf, sizeof(buf));
    cr_assert(strchr(buf, 'Z') != NULL, "%s", buf);
    /* A short buffer is truncated and terminated. */
    char small[11];
    cr_assert_str_eq(order_time_format(0, small, sizeof(small)), "1970-01-01");
}

Test(order, time_round_trip)
{
    /* Every day boundary over 10000 years, plus odd milliseconds: format
       then parse gives back the same instant; and the calendar walk agrees
       with a naive day-by-day count. */
    int64_t ms = tparse("0000-01-01T00:00:00Z");
    int64_t end = tparse("9999-12-31T00:00:00Z");
    char buf[64];
    for (int64_t t = ms; t <= end; t += 86400000LL * 7 + 3600123) {
        order_time_format(t, buf, sizeof(buf));
        int64_t back;
        cr_assert_eq(order_time_parse(buf, strlen(buf), &back), 0, "%s", buf);
        cr_assert_eq(back, t, "%s", buf);
    }
    int y = 1970, m = 1, d = 1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int64_t day = 0; day < 200 * 366; day++) {
        char want[64];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT00:00:00.000Z", y, m, d);
        cr_assert_str_eq(order_time_format(day * 86400000LL, buf, sizeof(buf)),
                         want);
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (++d > mdays[m - 1] + (m == 2 && leap)) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
}

Test(order, order_key_orders_class_then_deadline)
{
    cr_assert_lt(order_key(CLASS_ASN, 9000000000000),
                 order_key(CLASS_RUSH4H, 1));
    cr_assert_lt(order_key(CLASS_NORMAL, 5), order_key(CLASS_NORMAL, 6));
    cr_assert_eq(order_key(CLASS_NORMAL, -5), order_key(CLASS_NORMAL, 0));
    cr_assert_lt(order_key(CLASS_RUSH4H, INT64_MAX),
                 order_key(CLASS_RUSH24H, 0));
}
