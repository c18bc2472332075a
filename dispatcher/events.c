/*
 * The event stream.  Events wait in a FIFO until the change they report is
 * durable (tickets only grow, so the FIFO is also ticket order), then go to
 * every subscriber as a pub/sub message: ["message", "events", <json>].
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

#define CHANNEL "events"

void
json_string(struct evbuffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;

    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = p[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        evbuffer_add(b, esc, n);
    }
    evbuffer_add(b, s + run, len - run);
    evbuffer_add(b, "\"", 1);
}

struct evbuffer *
event_begin(struct server *srv, const char *type)
{
    if (!srv->subs)
        return NULL;
    struct evbuffer *e = evbuffer_new();
    if (!e) {
        log_msg(LOG_WARN, "out of memory: %s event dropped", type);
        return NULL;
    }
    /* The sequence number is added when it is published. */
    evbuffer_add_printf(e, "\"type\":\"%s\",\"at\":%lld", type,
                        (long long)server_now());
    return e;
}

void
event_str(struct evbuffer *e, const char *key, const char *val)
{
    evbuffer_add_printf(e, ",\"%s\":", key);
    json_string(e, val, strlen(val));
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
event_end(struct server *srv, struct evbuffer *e, uint64_t ticket)
{
    size_t len = evbuffer_get_length(e);
    struct pending_event *pe = malloc(sizeof *pe + len);

    if (!pe) {
        log_msg(LOG_WARN, "out of memory: event dropped");
        evbuffer_free(e);
        return;
    }
    pe->ticket = ticket;
    pe->next = NULL;
    pe->len = len;
    evbuffer_remove(e, pe->json, len);
    evbuffer_free(e);
    if (srv->ev_tail)
        srv->ev_tail->next = pe;
    else
        srv->ev_head = pe;
    srv->ev_tail = pe;
    events_flush(srv, store_durable(srv->store));
}

void
event_jump(struct server *srv, const struct pickq_jump *j, uint64_t ticket)
{
    struct evbuffer *e = event_begin(srv, "jump");
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
        json_string(e, id, strlen(id));
    }
    evbuffer_add(e, "]", 1);
    event_end(srv, e, ticket);

    for (size_t i = 0; i < j->at_risk_listed; i++) {
        const struct order *o = j->at_risk_orders[i];
        e = event_begin(srv, "at_risk");
        if (!e)
            return;
        event_order(e, o);
        event_str(e, "displaced_by", j->order->id);
        event_int(e, "delay_ms", (long long)j->delay_ms);
        event_end(srv, e, ticket);
    }
}

static void
publish(struct server *srv, const struct pending_event *pe)
{
    char head[64];
    int n = snprintf(head, sizeof head, "{\"seq\":%llu,",
                     (unsigned long long)++srv->event_seq);
    srv->n.events++;
    for (struct conn *c = srv->subs; c; c = c->snext) {
        resp_push(c->out, 3, c->proto);
        resp_bulk(c->out, "message", 7);
        resp_bulk(c->out, CHANNEL, sizeof CHANNEL - 1);
        evbuffer_add_printf(c->out, "$%zu\r\n", (size_t)n + pe->len + 1);
        evbuffer_add(c->out, head, (size_t)n);
        evbuffer_add(c->out, pe->json, pe->len);
        evbuffer_add(c->out, "}\r\n", 3);
        conn_settle(c);
    }
}

void
events_flush(struct server *srv, uint64_t durable)
{
    while (srv->ev_head && srv->ev_head->ticket <= durable) {
        struct pending_event *pe = srv->ev_head;
        srv->ev_head = pe->next;
        if (!srv->ev_head)
            srv->ev_tail = NULL;
        publish(srv, pe);
        free(pe);
    }
}

void
events_subscribe(struct server *srv, struct conn *c)
{
    if (c->subscribed)
        return;
    c->subscribed = true;
    c->sprev = NULL;
    c->snext = srv->subs;
    if (srv->subs)
        srv->subs->sprev = c;
    srv->subs = c;
}

void
events_unsubscribe(struct server *srv, struct conn *c)
{
    if (!c->subscribed)
        return;
    c->subscribed = false;
    if (c->sprev)
        c->sprev->snext = c->snext;
    else
        srv->subs = c->snext;
    if (c->snext)
        c->snext->sprev = c->sprev;
    c->snext = c->sprev = NULL;
}

void
events_free(struct server *srv)
{
    while (srv->ev_head) {
        struct pending_event *pe = srv->ev_head;
        srv->ev_head = pe->next;
        free(pe);
    }
    srv->ev_tail = NULL;
}
