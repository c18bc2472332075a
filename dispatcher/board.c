/*
 * The snapshot is built from the queue in memory (core_peek for the pick
 * order, core_position for each ETA, core_each_picking for the leases) and
 * the board's own ring of jump cards.  "At risk" is judged on the orders
 * shown: an ETA past the deadline; the orders behind the first `limit` are
 * counted but not examined.
 */
#include "board.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "card.h"
#include "jview.h"
#include "log.h"

#define LOAD_BACK 2000 /* logged events read at start for the jump cards */

struct jump_card {
    uint64_t seq;
    int64_t at;
    char warehouse[ORDER_NAME_MAX + 1];
    char order[ORDER_ID_MAX + 1];
    char *card; /* malloc'd */
};

struct board {
    struct core *core;
    uint64_t loaded; /* the last event read from the log at start */
    size_t nloaded;  /* events read in the current page */
    struct event_sink sink;
    struct jump_card jumps[BOARD_JUMPS]; /* a ring */
    size_t next;
};

static void
jump_add(struct board *b, uint64_t seq, const char *json, size_t len)
{
    json_t *ev = json_loadb(json, len, 0, NULL);
    struct evbuffer *e = evbuffer_new();
    if (!ev || !e) {
        json_decref(ev);
        if (e)
            evbuffer_free(e);
        return;
    }
    card_line(e, json, len);
    size_t n = evbuffer_get_length(e);
    char *text = malloc(n + 1);
    if (text) {
        evbuffer_remove(e, text, n);
        text[n] = '\0';
        struct jump_card *j = &b->jumps[b->next];
        free(j->card);
        j->seq = seq;
        j->at = json_integer_value(json_object_get(ev, "at"));
        const char *w = json_string_value(json_object_get(ev, "warehouse"));
        const char *o = json_string_value(json_object_get(ev, "order"));
        snprintf(j->warehouse, sizeof j->warehouse, "%s", w ? w : "");
        snprintf(j->order, sizeof j->order, "%s", o ? o : "");
        j->card = text;
        b->next = (b->next + 1) % BOARD_JUMPS;
    }
    evbuffer_free(e);
    json_decref(ev);
}

static void
on_event(struct event_sink *s, uint64_t seq, const char *type, const char *json,
         size_t len)
{
    if (strcmp(type, "jump") == 0)
        jump_add(s->ctx, seq, json, len);
}

static int
load_one(void *ctx, uint64_t seq, const char *json, size_t len)
{
    char type[32];
    struct board *b = ctx;
    b->loaded = seq;
    b->nloaded++;
    core_event_type(json, len, type, sizeof type);
    if (strcmp(type, "jump") == 0)
        jump_add(b, seq, json, len);
    return 0;
}

struct board *
board_new(struct core *c)
{
    struct board *b = calloc(1, sizeof *b);
    if (!b) {
        log_msg(LOG_ERROR, "out of memory: board");
        return NULL;
    }
    b->core = c;
    uint64_t last = c->events.seq;
    b->loaded = last > LOAD_BACK ? last - LOAD_BACK : 0;
    struct core_result r;
    do {
        b->nloaded = 0;
        core_events(c, b->loaded, CORE_EVENTS_MAX, load_one, b, &r);
        if (r.code != CORE_OK) {
            log_msg(LOG_WARN, "board: recent jumps not loaded: %s", r.msg);
            break;
        }
    } while (b->nloaded == CORE_EVENTS_MAX && b->loaded < last);
    b->sink.emit = on_event;
    b->sink.ctx = b;
    events_listen(&c->events, &b->sink);
    return b;
}

void
board_free(struct board *b)
{
    if (!b)
        return;
    events_unlisten(&b->core->events, &b->sink);
    for (size_t i = 0; i < BOARD_JUMPS; i++)
        free(b->jumps[i].card);
    free(b);
}

static void
set_time(json_t *j, const char *key, int64_t ms)
{
    char buf[40], k[48];
    order_time_format(ms, buf, sizeof buf);
    snprintf(k, sizeof k, "%s_iso", key);
    json_object_set_new(j, key, json_integer(ms));
    json_object_set_new(j, k, json_string(buf));
}

/* The fields every listed order has. */
static json_t *
item(const struct order *o, int64_t now)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", jview_str(o->id, strlen(o->id)));
    json_object_set_new(j, "class", json_string(order_class_name(o->cls)));
    json_object_set_new(j, "effective_class",
                        json_string(order_class_name(o->eff_cls)));
    json_object_set_new(j, "customer",
                        jview_str(o->customer, strlen(o->customer)));
    set_time(j, "deadline", o->deadline);
    json_object_set_new(j, "left_ms", json_integer(o->deadline - now));
    json_object_set_new(j, "state", json_string(order_state_name(o->state)));
    return j;
}

struct held {
    json_t *arr;
    int64_t now;
    size_t n, total;
};

static void
held_one(void *ctx, const struct order *o)
{
    struct held *h = ctx;
    h->total++;
    if (h->n >= BOARD_PICKING_MAX)
        return;
    json_t *j = item(o, h->now);
    json_object_set_new(j, "picker",
                        jview_str(o->picker ? o->picker : "",
                                  o->picker ? strlen(o->picker) : 0));
    if (o->state == STATE_PICKING)
        json_object_set_new(j, "lease_left_ms",
                            json_integer(o->lease_expires - h->now));
    set_time(j, "picked_at", o->picked_at);
    json_array_append_new(h->arr, j);
    h->n++;
}

static void
warehouse_one(void *ctx, const char *w)
{
    json_array_append_new(ctx, jview_str(w, strlen(w)));
}

json_t *
board_json(struct board *b, const char *warehouse, size_t limit,
           struct core_result *r)
{
    static struct order *top[CORE_PEEK_MAX];
    struct core *c = b->core;
    int64_t now = core_now();
    if (limit < 1 || limit > CORE_PEEK_MAX)
        limit = CORE_PEEK_MAX;
    size_t n = core_peek(c, warehouse, limit, top, r);
    if (n == (size_t)-1)
        return NULL;

    json_t *j = json_object();
    if (!j) {
        r->code = CORE_ERR;
        snprintf(r->msg, sizeof r->msg, "out of memory: the board");
        return NULL;
    }
    json_object_set_new(j, "warehouse",
                        jview_str(warehouse, strlen(warehouse)));
    set_time(j, "now", now);
    json_object_set_new(j, "last_event",
                        json_integer((json_int_t)c->events.seq));
    json_t *ws = json_array();
    core_each_warehouse(c, warehouse_one, ws);
    json_object_set_new(j, "warehouses", ws);

    json_t *queue = json_array(), *risk = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct order *o = top[i];
        json_t *it = item(o, now);
        size_t rank = i;
        int64_t eta = 0;
        core_position(c, o, &rank, &eta);
        bool at_risk = now + eta > o->deadline;
        json_object_set_new(it, "position", json_integer((json_int_t)rank));
        set_time(it, "eta", now + eta);
        json_object_set_new(it, "at_risk", json_boolean(at_risk));
        json_array_append(queue, it);
        if (at_risk)
            json_array_append(risk, it);
        json_decref(it);
    }
    json_object_set_new(j, "queue", queue);
    json_object_set_new(j, "at_risk", risk);

    struct held h = {json_array(), now, 0, 0};
    core_each_picking(c, warehouse, held_one, &h);
    json_object_set_new(j, "picking", h.arr);
    json_object_set_new(j, "picking_total", json_integer((json_int_t)h.total));

    json_t *jumps = json_array();
    for (size_t k = 0, shown = 0; k < BOARD_JUMPS && shown < BOARD_JUMPS_SHOWN;
         k++) {
        const struct jump_card *jc =
            &b->jumps[(b->next + BOARD_JUMPS - 1 - k) % BOARD_JUMPS];
        if (!jc->card || strcmp(jc->warehouse, warehouse) != 0)
            continue;
        json_t *x = json_object();
        json_object_set_new(x, "seq", json_integer((json_int_t)jc->seq));
        set_time(x, "at", jc->at);
        json_object_set_new(x, "order",
                            jview_str(jc->order, strlen(jc->order)));
        json_object_set_new(x, "card", jview_str(jc->card, strlen(jc->card)));
        json_array_append_new(jumps, x);
        shown++;
    }
    json_object_set_new(j, "jumps", jumps);

    struct core_stats st;
    core_stats(c, warehouse, &st);
    json_t *cnt = json_object(), *bs = json_object(), *bc = json_object();
    for (int s = 0; s < STATE_COUNT; s++)
        json_object_set_new(bs, order_state_name(s),
                            json_integer((json_int_t)st.q.by_state[s]));
    for (int k = 0; k < CLASS_COUNT; k++)
        json_object_set_new(bc, order_class_name(k),
                            json_integer((json_int_t)st.q.queued_by_class[k]));
    json_object_set_new(cnt, "by_state", bs);
    json_object_set_new(cnt, "queued_by_class", bc);
    json_object_set_new(j, "counts", cnt);
    json_object_set_new(j, "shown", json_integer((json_int_t)n));

    json_t *sto = json_object();
    json_object_set_new(sto, "ok", json_boolean(st.storage_ok));
    json_object_set_new(sto, "reason",
                        json_string(st.storage_ok ? "" : st.storage_reason));
    json_object_set_new(j, "storage", sto);
    return j;
}
