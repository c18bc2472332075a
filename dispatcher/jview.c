/*
 * The view encoder for JSON: one switch over the field kinds.
 */
#include "jview.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"

json_t *
jview_str(const char *s, size_t len)
{
    /* Invalid UTF-8 (an id pushed over RESP) is replaced, as in events. */
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("out of memory");
    json_quote(b, s, len); /* events.h: quoted, U+FFFD for bad bytes */
    size_t n = evbuffer_get_length(b);
    char *q = (char *)evbuffer_pullup(b, -1);
    json_t *parsed = json_loadb(q, n, JSON_DECODE_ANY, NULL);
    evbuffer_free(b);
    return parsed ? parsed : json_string("");
}

json_t *
jview_fields(const struct view *v)
{
    json_t *o = json_object();
    char num[24];
    for (size_t i = 0; i < v->n; i++) {
        const struct view_field *f = &v->f[i];
        json_t *val = NULL;
        switch (f->kind) {
        case VIEW_STR:
            val = jview_str(f->s, f->len);
            break;
        case VIEW_INT:
            val = json_integer(f->i);
            break;
        case VIEW_U64:
            snprintf(num, sizeof num, "%" PRIu64, f->u);
            val = json_string(num);
            break;
        case VIEW_LIST: {
            val = json_array();
            const char *p = f->s, *end = f->s + f->len;
            while (p < end) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                const char *stop = comma ? comma : end;
                if (stop > p)
                    json_array_append_new(val,
                                          jview_str(p, (size_t)(stop - p)));
                p = stop + 1;
            }
            break;
        }
        case VIEW_ATTRS: {
            val = json_object();
            size_t pos = 0;
            const char *k, *x;
            while (order_attr_next(v->o, &pos, &k, &x)) {
                json_t *kv = jview_str(x, strlen(x));
                if (json_object_set_new(val, k, kv))
                    json_decref(kv); /* a key that is not UTF-8: skipped */
            }
            break;
        }
        }
        json_object_set_new(o, f->key, val);
    }
    return o;
}

json_t *
jview_order(struct core *c, const struct order *o)
{
    static struct view v;
    view_order(&v, c, o);
    return jview_fields(&v);
}

int
jview_audit_one(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    static struct view v;
    view_audit(&v, seq, a);
    json_array_append_new(ctx, jview_fields(&v));
    return 0;
}
