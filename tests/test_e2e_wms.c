/*
 * The WMS is the truth, end to end over RESP: an outbound lands from every
 * unfinished state and says what was odd, a delivery implies the outbound,
 * an outbound by another picker revokes the lease, and the picked step
 * keeps a late callback from handing the order to a second picker.
 */
#include <poll.h>

#include <jansson.h>

#include "e2e.h"

static struct daemon D;
static redisContext *C, *S;

static void
cleanup(void)
{
    if (C)
        redisFree(C);
    if (S)
        redisFree(S);
    C = S = NULL;
    e2e_cleanup(&D);
}

static void
start(const char *const *extra)
{
    atexit(cleanup);
    e2e_start_argv(&D, extra);
    C = e2e_connect(&D);
    S = e2e_connect(&D);
    freeReplyObject(e2e_cmd(S, "SUBSCRIBE events"));
}

/* The next event of `type` (others are skipped), parsed; NULL if none
   comes within about 5 s. */
static json_t *
next_event(const char *type)
{
    for (int i = 0; i < 50; i++) {
        redisReply *r = NULL;
        if (redisGetReply(S, (void **)&r) != REDIS_OK)
            return NULL;
        json_t *j = NULL;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3)
            j = json_loads(r->element[2]->str, 0, NULL);
        freeReplyObject(r);
        if (j && !strcmp(json_string_value(json_object_get(j, "type")), type))
            return j;
        json_decref(j);
    }
    return NULL;
}

/* Run a command given as words separated by single spaces; want OK. */
static void
expect_ok_line(const char *line)
{
    char buf[256];
    const char *argv[16];
    size_t argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *p = strtok(buf, " "); p && argc < 16; p = strtok(NULL, " "))
        argv[argc++] = p;
    redisReply *r = redisCommandArgv(C, (int)argc, argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK"),
              "'%s': %s", line, r ? r->str : C->errstr);
    freeReplyObject(r);
}

static const char *
state_of(const char *id)
{
    static char st[32];
    redisReply *r = e2e_cmd(C, "GET %s", id);
    snprintf(st, sizeof st, "%s", e2e_field_str(r, "state"));
    freeReplyObject(r);
    return st;
}

static const char *
last_note(const char *id)
{
    static char note[600];
    redisReply *r = e2e_cmd(C, "AUDIT %s", id);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements > 0);
    snprintf(note, sizeof note, "%s",
             e2e_field_str(r->element[r->elements - 1], "note"));
    freeReplyObject(r);
    return note;
}

Test(wms, outbound_lands_from_every_unfinished_state)
{
    start(NULL);
    static const struct {
        const char *setup[3];
        const char *from, *why;
    } cases[] = {
        {{"PUSH o-new normal"}, "new", "shipped before it was approved"},
        {{"PUSH o-held normal", "HOLD o-held credit"},
         "held",
         "shipped while on hold"},
        {{"PUSH o-queued normal APPROVED"},
         "queued",
         "shipped without being picked"},
        {{"PUSH o-cancelled normal", "CANCEL o-cancelled dup"},
         "cancelled",
         "shipped after it was cancelled"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int k = 0; k < 3 && cases[i].setup[k]; k++)
            expect_ok_line(cases[i].setup[k]);
        char id[32];
        snprintf(id, sizeof id, "o-%s", cases[i].from);
        e2e_expect(C, "OK", "OUTBOUND %s OPERATOR wang RAW {\"n\":1}", id);
        cr_assert_str_eq(state_of(id), "shipped", "%s", id);
        cr_assert(strstr(last_note(id), cases[i].why), "%s: note '%s'", id,
                  last_note(id));
        json_t *e = next_event("anomaly");
        cr_assert(e, "no anomaly event for %s", id);
        cr_assert_str_eq(json_string_value(json_object_get(e, "order")), id);
        cr_assert_str_eq(json_string_value(json_object_get(e, "from")),
                         cases[i].from);
        cr_assert_str_eq(json_string_value(json_object_get(e, "why")),
                         cases[i].why);
        json_decref(e);
        e2e_expect(C, "ALREADY", "OUTBOUND %s OPERATOR wang", id);
    }
    redisReply *st = e2e_cmd(C, "STATS");
    cr_assert_eq(e2e_field_int(st, "outbounds_anomalous"), 4);
    freeReplyObject(st);
}

Test(wms, delivery_implies_the_outbound)
{
    start(NULL);
    e2e_expect(C, "OK", "PUSH d-1 normal APPROVED");
    redisReply *n = e2e_cmd(C, "NEXT main PICKER li");
    cr_assert_str_eq(e2e_field_str(n, "id"), "d-1");
    freeReplyObject(n);
    e2e_expect(C, "OK", "DELIVER d-1 RAW {\"esign\":\"zhao\"}");
    cr_assert_str_eq(state_of("d-1"), "delivered");
    redisReply *a = e2e_cmd(C, "AUDIT d-1");
    cr_assert_geq(a->elements, 4);
    const redisReply *ob = a->element[a->elements - 2];
    cr_assert_str_eq(e2e_field_str(ob, "action"), "outbound");
    cr_assert_str_eq(e2e_field_str(ob, "from"), "picking");
    cr_assert(strstr(e2e_field_str(ob, "note"), "implied by the delivery"));
    cr_assert_str_eq(e2e_field_str(a->element[a->elements - 1], "action"),
                     "deliver");
    freeReplyObject(a);
    e2e_expect(C, "ALREADY", "DELIVER d-1");
}

Test(wms, outbound_by_another_picker_revokes_the_lease)
{
    start(NULL);
    e2e_expect(C, "OK", "PUSH r-1 rush4h APPROVED");
    redisReply *n = e2e_cmd(C, "NEXT main PICKER wang LEASE 300");
    long long lease = e2e_field_int(n, "lease");
    freeReplyObject(n);
    e2e_expect(C, "OK", "OUTBOUND r-1 OPERATOR li");
    cr_assert_str_eq(state_of("r-1"), "shipped");
    json_t *e = next_event("lease_revoked");
    cr_assert(e, "no lease_revoked event");
    cr_assert_str_eq(json_string_value(json_object_get(e, "picker")), "wang");
    cr_assert_str_eq(json_string_value(json_object_get(e, "by")), "li");
    cr_assert_eq(json_integer_value(json_object_get(e, "lease")), lease);
    json_decref(e);
    /* The revoked picker hears it on its next move. */
    e2e_expect(C, "LEASE", "TOUCH r-1 %lld", lease);
    e2e_expect(C, "LEASE", "RELEASE r-1 %lld", lease);
    e2e_expect(C, "LEASE", "PICKED r-1 %lld", lease);
    cr_assert(strstr(last_note("r-1"), "revoked"));
}

/* A pick reported done survives its lease: a late WMS callback finds it
   still with its picker, and no second picker was handed it. */
Test(wms, picked_step_stops_a_second_pick)
{
    const char *extra[] = {"--lease-default", "1s", NULL};
    start(extra);
    e2e_expect(C, "OK", "PUSH p-1 rush4h APPROVED");
    e2e_expect(C, "OK", "PUSH p-2 normal APPROVED");
    redisReply *n = e2e_cmd(C, "NEXT main PICKER wang");
    cr_assert_str_eq(e2e_field_str(n, "id"), "p-1");
    long long lease = e2e_field_int(n, "lease");
    freeReplyObject(n);
    e2e_expect(C, "LEASE", "PICKED p-1 %lld", lease + 1000);
    e2e_expect(C, "OK", "PICKED p-1 %lld", lease);
    e2e_expect(C, "ALREADY", "PICKED p-1 %lld", lease);
    e2e_sleep_ms(1600); /* the lease would have expired by now */
    cr_assert_str_eq(state_of("p-1"), "picked");
    n = e2e_cmd(C, "NEXT main PICKER li");
    cr_assert_str_eq(e2e_field_str(n, "id"), "p-2",
                     "a picked order was handed to a second picker");
    freeReplyObject(n);
    e2e_expect(C, "BADSTATE", "CANCEL p-1");
    e2e_expect(C, "LEASE", "TOUCH p-1 %lld", lease);
    /* The late callback lands. */
    e2e_expect(C, "OK", "OUTBOUND p-1 OPERATOR wang");
    redisReply *g = e2e_cmd(C, "GET p-1");
    cr_assert_str_eq(e2e_field_str(g, "state"), "shipped");
    cr_assert_eq(e2e_field_int(g, "outbound_leased"), 1);
    freeReplyObject(g);
    redisReply *st = e2e_cmd(C, "STATS");
    cr_assert_eq(e2e_field_int(st, "lease_expiries"), 0);
    cr_assert_eq(e2e_field_int(st, "picked_reports"), 1);
    freeReplyObject(st);
}

/* When the confirmation never comes, an unconfirmed event fires once,
   and not again after a restart. */
Test(wms, unconfirmed_when_the_callback_never_comes)
{
    const char *extra[] = {"--confirm-timeout", "1s", NULL};
    start(extra);
    e2e_expect(C, "OK", "PUSH u-1 normal CUSTOMER shenwo APPROVED");
    redisReply *n = e2e_cmd(C, "NEXT main PICKER wang");
    long long lease = e2e_field_int(n, "lease");
    freeReplyObject(n);
    e2e_expect(C, "OK", "PICKED u-1 %lld", lease);
    json_t *e = next_event("unconfirmed");
    cr_assert(e, "no unconfirmed event");
    cr_assert_str_eq(json_string_value(json_object_get(e, "order")), "u-1");
    cr_assert_str_eq(json_string_value(json_object_get(e, "picker")), "wang");
    cr_assert_geq(json_integer_value(json_object_get(e, "waited_ms")), 1000);
    json_decref(e);
    cr_assert_str_eq(state_of("u-1"), "picked");
    redisReply *st = e2e_cmd(C, "STATS");
    cr_assert_eq(e2e_field_int(st, "unconfirmed"), 1);
    freeReplyObject(st);

    redisFree(C);
    redisFree(S);
    C = S = NULL;
    cr_assert_eq(e2e_stop(&D), 0);
    e2e_start_argv(&D, extra);
    C = e2e_connect(&D);
    S = e2e_connect(&D);
    freeReplyObject(e2e_cmd(S, "SUBSCRIBE events"));
    e2e_sleep_ms(1500);
    cr_assert_str_eq(state_of("u-1"), "picked");
    /* Nothing fired again: the next event is the one we cause now. */
    e2e_expect(C, "OK", "OUTBOUND u-1 OPERATOR wang");
    e2e_expect(C, "OK", "PUSH u-2 normal");
    e2e_expect(C, "OK", "OUTBOUND u-2 OPERATOR wang");
    redisReply *r = NULL;
    cr_assert_eq(redisGetReply(S, (void **)&r), REDIS_OK);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_assert(!strstr(r->element[2]->str, "unconfirmed"),
              "unconfirmed fired again after a restart: %s",
              r->element[2]->str);
    freeReplyObject(r);
}
