/*
 * The event stream.  An event gets its sequence number when it is made and
 * goes to the store (the "events" column family) in the same group as the
 * change it reports; then it waits in a FIFO until that change is durable
 * (tickets only grow, so the FIFO is also ticket order) and goes to every
 * sink.  The log, not the FIFO, is what EVENTS FROM and SSE replay.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "order.h"
#include "pickq.h"
#include "store.h"

struct pending_event {
    uint64_t ticket;
    uint64_t seq;
    struct pending_event *next;
    char type[24];
    size_t len;
    char json[]; /* the whole object, NUL-terminated */
};

void
events_init(struct events *ev)
{
    memset(ev, 0, sizeof *ev);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void
json_quote(struct evbuffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;

    evbuffer_add(b, "\"", 1);
    while (i < len) {
        unsigned char ch = p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\' && ch < 0x80) {
            i++;
            continue;
        }
        if (ch >= 0x80) {
            size_t k = utf8_len(p + i, len - i);
            if (k) {
                i += k;
                continue;
            }
        }
        evbuffer_add(b, s + run, i - run);
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (ch >= 0x80) {
                memcpy(esc, "\xEF\xBF\xBD", 3); /* U+FFFD */
                n = 3;
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                n = 6;
            }
        }
        evbuffer_add(b, esc, n);
        run = ++i;
    }
    evbuffer_add(b, s + run, len - run);
    evbuffer_add(b, "\"", 1);
}

struct evbuffer *
event_begin(struct events *ev, const char *type, int64_t now)
{
    (void)ev;
    struct evbuffer *e = evbuffer_new();
    if (!e) {
        log_msg(LOG_WARN, "out of memory: %s event dropped", type);
        return NULL;
    }
    /* The type goes first so event_end can find it; seq is put before it
       when the event is finished. */
    evbuffer_add_printf(e, "\"type\":\"%s\",\"at\":%lld", type, (long long)now);
    return e;
}

void
event_str(struct evbuffer *e, const char *key, const char *val)
{
    evbuffer_add_printf(e, ",\"%s\":", key);
    json_quote(e, val, strlen(val));
}

void
event_int(struct evbuffer *e, const char *key, long long v)
{
    evbuffer_add_printf(e, ",\"%s\":%lld", key, v);
}

void
event_order(struct evbuffer *e, const struct order *o)
{
    event_str(e, "order", o->id);
    event_str(e, "customer", o->customer);
    event_str(e, "warehouse", o->warehouse);
    event_str(e, "class", order_class_name(o->cls));
    event_int(e, "deadline", (long long)o->deadline);
}

void
event_end(struct events *ev, struct evbuffer *e, uint64_t ticket,
          uint64_t durable)
{
    size_t len = evbuffer_get_length(e);
    struct pending_event *pe;

    if (ticket == 0) {
        /* The change was refused: nothing happened to report. */
        evbuffer_free(e);
        return;
    }
    uint64_t seq = ++ev->seq; /* a number is never given twice */
    char head[40];
    int n =
        snprintf(head, sizeof head, "{\"seq\":%llu,", (unsigned long long)seq);
    size_t total = (size_t)n + len + 1;
    pe = malloc(sizeof *pe + total + 1);
    if (!pe) {
        log_msg(LOG_WARN, "out of memory: event %llu dropped",
                (unsigned long long)seq);
        evbuffer_free(e);
        return;
    }
    pe->ticket = ticket;
    pe->seq = seq;
    pe->next = NULL;
    pe->len = total;
    memcpy(pe->json, head, (size_t)n);
    evbuffer_remove(e, pe->json + n, len);
    evbuffer_free(e);
    pe->json[total - 1] = '}';
    pe->json[total] = '\0';
    /* "type":"<type>" follows the seq. */
    const char *t = pe->json + n + 8;
    size_t tl = 0;
    while (8 + tl < len && t[tl] != '"' && tl < sizeof pe->type - 1)
        tl++;
    memcpy(pe->type, t, tl);
    pe->type[tl] = '\0';
    if (ev->store && !store_event(ev->store, seq, pe->json, total))
        log_msg(LOG_WARN, "event %llu not logged: the store is closing",
                (unsigned long long)seq);
    ev->logged++;
    if (ev->tail)
        ev->tail->next = pe;
    else
        ev->head = pe;
    ev->tail = pe;
    events_flush(ev, durable);
}

void
event_jump(struct events *ev, const struct pickq_jump *j, uint64_t ticket,
           uint64_t durable, int64_t now)
{
    struct evbuffer *e = event_begin(ev, "jump", now);
    if (!e)
        return;
    event_order(e, j->order);
    event_int(e, "position", (long long)j->position);
    event_int(e, "displaced", (long long)j->displaced);
    event_int(e, "delay_ms", (long long)j->delay_ms);
    event_int(e, "at_risk", (long long)j->at_risk);
    evbuffer_add_printf(e, ",\"at_risk_orders\":[");
    for (size_t i = 0; i < j->at_risk_listed; i++) {
        if (i)
            evbuffer_add(e, ",", 1);
        const char *id = j->at_risk_orders[i]->id;
        json_quote(e, id, strlen(id));
    }
    evbuffer_add(e, "]", 1);
    event_end(ev, e, ticket, durable);

    for (size_t i = 0; i < j->at_risk_listed; i++) {
        const struct order *o = j->at_risk_orders[i];
        e = event_begin(ev, "at_risk", now);
        if (!e)
            return;
        event_order(e, o);
        event_str(e, "displaced_by", j->order->id);
        event_int(e, "delay_ms", (long long)j->delay_ms);
        event_end(ev, e, ticket, durable);
    }
}

static void
publish(struct events *ev, const struct pending_event *pe)
{
    ev->published++;
    /* A sink may unlisten itself (its connection closes) while called. */
    for (struct event_sink *s = ev->sinks, *next; s; s = next) {
        next = s->next;
        s->emit(s, pe->seq, pe->type, pe->json, pe->len);
    }
}

void
events_flush(struct events *ev, uint64_t durable)
{
    while (ev->head && ev->head->ticket <= durable) {
        struct pending_event *pe = ev->head;
        ev->head = pe->next;
        if (!ev->head)
            ev->tail = NULL;
        if (ev->sinks)
            publish(ev, pe);
        free(pe);
    }
}

void
events_listen(struct events *ev, struct event_sink *s)
{
    if (s->listening)
        return;
    s->listening = true;
    s->prev = NULL;
    s->next = ev->sinks;
    if (ev->sinks)
        ev->sinks->prev = s;
    ev->sinks = s;
}

void
events_unlisten(struct events *ev, struct event_sink *s)
{
    if (!s->listening)
        return;
    s->listening = false;
    if (s->prev)
        s->prev->next = s->next;
    else
        ev->sinks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

void
events_free(struct events *ev)
{
    while (ev->head) {
        struct pending_event *pe = ev->head;
        ev->head = pe->next;
        free(pe);
    }
    ev->tail = NULL;
    ev->sinks = NULL;
}
