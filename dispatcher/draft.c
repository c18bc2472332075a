/*
 * Draft fields: one parser and one message per field for every front end.
 */
#include "draft.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core.h"

#define SHOWN(p, n, max) (int)((n) > (max) ? (max) : (n)), (p)

static bool
is(const char *k, size_t klen, const char *word)
{
    return strlen(word) == klen && strncasecmp(k, word, klen) == 0;
}

struct order *
draft_new(const char *id, size_t idlen, const char *cls, size_t clslen,
          char *err, size_t errlen)
{
    if (idlen == 0 || idlen > ORDER_ID_MAX || memchr(id, '\0', idlen)) {
        snprintf(err, errlen, "order id must be 1 to %d bytes", ORDER_ID_MAX);
        return NULL;
    }
    int c = order_class_parse(cls, clslen);
    if (c < 0) {
        snprintf(err, errlen,
                 "unknown class '%.*s' (asn, rush4h, rush24h, normal)",
                 SHOWN(cls, clslen, 32));
        return NULL;
    }
    struct order *o = order_new();
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    order_set_id(o, id, idlen);
    o->cls = o->eff_cls = (uint8_t)c;
    order_set_warehouse(o, CORE_DEFAULT_WAREHOUSE,
                        strlen(CORE_DEFAULT_WAREHOUSE));
    o->state = STATE_NEW;
    return o;
}

int
draft_set(struct order *o, const char *k, size_t klen, const char *v,
          size_t vlen, char *err, size_t errlen)
{
    int bad;
    if (is(k, klen, "deadline")) {
        bad = order_time_parse(v, vlen, &o->deadline) || o->deadline <= 0;
    } else if (is(k, klen, "warehouse")) {
        bad = vlen == 0 || memchr(v, '\0', vlen) ||
              order_set_warehouse(o, v, vlen);
    } else if (is(k, klen, "customer")) {
        bad = memchr(v, '\0', vlen) || order_set_customer(o, v, vlen);
    } else if (is(k, klen, "source")) {
        int s = order_source_parse(v, vlen);
        bad = s < 0;
        o->source = (uint8_t)(s < 0 ? 0 : s);
    } else if (is(k, klen, "fulfil") || is(k, klen, "fulfill")) {
        int f = order_fulfil_parse(v, vlen);
        bad = f < 0;
        o->fulfil = (uint8_t)(f < 0 ? 0 : f);
    } else if (is(k, klen, "risk")) {
        int r = order_risk_parse(v, vlen);
        bad = r < 0;
        o->risk = (uint8_t)(r < 0 ? 0 : r);
    } else {
        return -2;
    }
    if (bad) {
        snprintf(err, errlen, "invalid %.*s '%.*s'", SHOWN(k, klen, 32),
                 SHOWN(v, vlen, 64));
        return -1;
    }
    return 0;
}

int
draft_attr(struct order *o, const char *k, size_t klen, const char *v,
           size_t vlen, char *err, size_t errlen)
{
    return order_attr_set(o, k, klen, v, vlen, err, errlen);
}
