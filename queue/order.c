/*
 * order — fields, enums, the state machine and the intake rules.
 *
 * The state machine is ONE table, order_table[state][action], read by
 * order_transition(); every pickq operation asks it before changing an
 * order, so a rule lives in exactly one place.  An entry holds the target
 * state plus one, so the zero that designated initializers leave behind
 * means "illegal".
 *
 * Times are epoch milliseconds UTC.  Converting a calendar date to a day
 * count does not go through mktime() (local time zone, global state) or
 * timegm() (not C17): days_from_civil() counts days directly.  It shifts
 * the year to start on March 1st, so the leap day is the last day of a
 * "year" and month lengths follow a fixed pattern (153 days per 5 months:
 * 31 30 31 30 31), then splits the year into 400-year eras of exactly
 * 146097 days, inside which the Gregorian leap rule is plain arithmetic:
 * yoe/4 - yoe/100 leap days before year-of-era yoe.  civil_from_days() is
 * the same walk backwards.  Both are exact for the whole int64 range of
 * milliseconds that can be formatted.
 */
#include "order.h"

#include "name.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(ORDER_ATTRS_MAX *(ORDER_ATTR_KEY_MAX + ORDER_ATTR_VAL_MAX + 2) <=
                   UINT16_MAX,
               "attrs_len is 16 bits");

/* The id of an order that has none yet (never written, never freed). */
static const char no_id[1] = "";

struct order *
order_new(void)
{
    struct order *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->id = no_id;
    o->warehouse = o->customer = o->picker = o->operator_ = name_empty;
    o->cls = CLASS_NORMAL;
    o->eff_cls = CLASS_NORMAL;
    o->source = SOURCE_DEALER;
    o->fulfil = FULFIL_STOCK;
    o->state = STATE_NEW;
    return o;
}

void
order_free(struct order *o)
{
    if (o == NULL)
        return;
    if (o->id != no_id)
        free((void *)(uintptr_t)o->id);
    name_put(o->warehouse);
    name_put(o->customer);
    name_put(o->picker);
    name_put(o->operator_);
    free(o->attrs);
    free(o);
}

/* A NUL inside s would silently shorten the value, so it is refused. */
static bool
value_ok(const char *s, size_t len, size_t max)
{
    return len <= max && (len == 0 || memchr(s, '\0', len) == NULL);
}

int
order_set_id(struct order *o, const char *s, size_t len)
{
    if (!value_ok(s, len, ORDER_ID_MAX))
        return -1;
    char *id = malloc(len + 1);
    if (id == NULL)
        return -2;
    if (len > 0)
        memcpy(id, s, len);
    id[len] = '\0';
    if (o->id != no_id)
        free((void *)(uintptr_t)o->id);
    o->id = id;
    return 0;
}

/* Point *field at the interned s, letting go of the name it held. */
static int
set_name(const char **field, const char *s, size_t len)
{
    if (!value_ok(s, len, ORDER_NAME_MAX))
        return -1;
    const char *n = name_get(s, len);
    if (n == NULL)
        return -2;
    name_put(*field);
    *field = n;
    return 0;
}

int
order_set_warehouse(struct order *o, const char *s, size_t len)
{
    return set_name(&o->warehouse, s, len);
}

int
order_set_customer(struct order *o, const char *s, size_t len)
{
    return set_name(&o->customer, s, len);
}

int
order_set_picker(struct order *o, const char *s, size_t len)
{
    return set_name(&o->picker, s, len);
}

int
order_set_operator(struct order *o, const char *s, size_t len)
{
    return set_name(&o->operator_, s, len);
}

void
order_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Offset of key k's entry in o->attrs, or -1. */
static long
attr_find(const struct order *o, const char *k, size_t klen)
{
    size_t pos = 0;
    while (pos < o->attrs_len) {
        const char *ek = o->attrs + pos;
        size_t eklen = strlen(ek);
        const char *ev = ek + eklen + 1;
        if (eklen == klen && memcmp(ek, k, klen) == 0)
            return (long)pos;
        pos = (size_t)(ev - o->attrs) + strlen(ev) + 1;
    }
    return -1;
}

int
order_attr_set(struct order *o, const char *k, size_t klen, const char *v,
               size_t vlen, char *err, size_t errlen)
{
    if (klen == 0) {
        order_errf(err, errlen, "attribute key is empty");
        return -1;
    }
    if (klen > ORDER_ATTR_KEY_MAX) {
        order_errf(err, errlen, "attribute key longer than %d bytes",
                   ORDER_ATTR_KEY_MAX);
        return -1;
    }
    if (vlen > ORDER_ATTR_VAL_MAX) {
        order_errf(err, errlen, "attribute %.*s: value longer than %d bytes",
                   (int)klen, k, ORDER_ATTR_VAL_MAX);
        return -1;
    }
    if (memchr(k, '\0', klen) != NULL ||
        (vlen > 0 && memchr(v, '\0', vlen) != NULL)) {
        order_errf(err, errlen, "attribute %.*s: NUL byte in key or value",
                   (int)klen, k);
        return -1;
    }

    long at = attr_find(o, k, klen);
    if (at < 0) {
        if (o->nattrs >= ORDER_ATTRS_MAX) {
            order_errf(err, errlen, "attribute %.*s: more than %d attributes",
                       (int)klen, k, ORDER_ATTRS_MAX);
            return -1;
        }
        size_t add = klen + 1 + vlen + 1;
        char *p = realloc(o->attrs, o->attrs_len + add);
        if (p == NULL)
            return -2;
        char *e = p + o->attrs_len;
        memcpy(e, k, klen);
        e[klen] = '\0';
        if (vlen > 0)
            memcpy(e + klen + 1, v, vlen);
        e[klen + 1 + vlen] = '\0';
        o->attrs = p;
        o->attrs_len += (uint16_t)add;
        o->nattrs++;
        return 0;
    }

    /* Replace the value in place: move the tail, then copy. */
    size_t voff = (size_t)at + klen + 1;
    size_t old = strlen(o->attrs + voff);
    size_t tail = voff + old + 1;
    size_t tail_len = o->attrs_len - tail;
    size_t new_len = o->attrs_len - old + vlen;
    if (vlen > old) {
        char *p = realloc(o->attrs, new_len);
        if (p == NULL)
            return -2;
        o->attrs = p;
    }
    memmove(o->attrs + voff + vlen + 1, o->attrs + tail, tail_len);
    if (vlen > 0)
        memcpy(o->attrs + voff, v, vlen);
    o->attrs[voff + vlen] = '\0';
    if (vlen < old) {
        /* Shrinking cannot fail in a way that matters: keep the old block
           when realloc refuses. */
        char *p = realloc(o->attrs, new_len);
        if (p != NULL)
            o->attrs = p;
    }
    o->attrs_len = (uint16_t)new_len;
    return 0;
}

const char *
order_attr_get(const struct order *o, const char *k)
{
    size_t klen = strlen(k);
    long at = attr_find(o, k, klen);
    return at < 0 ? NULL : o->attrs + at + klen + 1;
}

bool
order_attr_next(const struct order *o, size_t *pos, const char **k,
                const char **v)
{
    if (*pos >= o->attrs_len)
        return false;
    *k = o->attrs + *pos;
    *v = *k + strlen(*k) + 1;
    *pos = (size_t)(*v - o->attrs) + strlen(*v) + 1;
    return true;
}

bool
order_same_content(const struct order *a, const struct order *b)
{
    if (strcmp(a->id, b->id) != 0 || a->cls != b->cls ||
        a->deadline != b->deadline || strcmp(a->warehouse, b->warehouse) ||
        strcmp(a->customer, b->customer) || a->source != b->source ||
        a->fulfil != b->fulfil || a->risk != b->risk || a->nattrs != b->nattrs)
        return false;
    /* Keys are unique within an order, so equal counts and every pair of
       a found in b means the same set, whatever the order of arrival. */
    size_t pos = 0;
    const char *k, *v;
    while (order_attr_next(a, &pos, &k, &v)) {
        const char *bv = order_attr_get(b, k);
        if (bv == NULL || strcmp(bv, v) != 0)
            return false;
    }
    return true;
}

/* ---- enums ------------------------------------------------------------ */

static const char *const class_names[CLASS_COUNT] = {
    [CLASS_ASN] = "asn",
    [CLASS_RUSH4H] = "rush4h",
    [CLASS_RUSH24H] = "rush24h",
    [CLASS_NORMAL] = "normal",
};

static const char *const state_names[STATE_COUNT] = {
    [STATE_NEW] = "new",
    [STATE_HELD] = "held",
    [STATE_QUEUED] = "queued",
    [STATE_PICKING] = "picking",
    [STATE_SHIPPED] = "shipped",
    [STATE_DELIVERED] = "delivered",
    [STATE_CANCELLED] = "cancelled",
    [STATE_PICKED] = "picked",
};

static const char *const action_names[ACTION_COUNT] = {
    [ACTION_PUSH] = "push",       [ACTION_APPROVE] = "approve",
    [ACTION_HOLD] = "hold",       [ACTION_NEXT] = "next",
    [ACTION_TOUCH] = "touch",     [ACTION_RELEASE] = "release",
    [ACTION_EXPIRE] = "expire",   [ACTION_OUTBOUND] = "outbound",
    [ACTION_DELIVER] = "deliver", [ACTION_CANCEL] = "cancel",
    [ACTION_REPRIO] = "reprio",   [ACTION_ESCALATE] = "escalate",
    [ACTION_PICKED] = "picked",
};

static const char *const source_names[SOURCE_COUNT] = {
    [SOURCE_DEALER] = "dealer",
    [SOURCE_ASN] = "asn",
    [SOURCE_ECOMMERCE] = "ecommerce",
    [SOURCE_AFTERSALES] = "aftersales",
};

static const char *const fulfil_names[FULFIL_COUNT] = {
    [FULFIL_STOCK] = "stock",
    [FULFIL_TO_DRAWING] = "to_drawing",
    [FULFIL_VMI] = "vmi",
    [FULFIL_JIT] = "jit",
};

/* Risk bit i is named risk_names[i]. */
static const char *const risk_names[] = {"new_customer", "high_returns",
                                         "overdue_90d"};
#define RISK_COUNT (sizeof(risk_names) / sizeof(risk_names[0]))

static bool
word_eq(const char *s, size_t len, const char *name)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (name[i] == '\0' ||
            tolower((unsigned char)s[i]) != (unsigned char)name[i])
            return false;
    }
    return name[i] == '\0';
}

static int
word_parse(const char *s, size_t len, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (word_eq(s, len, names[i]))
            return i;
    return -1;
}

static const char *
word_name(int i, const char *const *names, int n)
{
    return i >= 0 && i < n ? names[i] : "?";
}

int
order_class_parse(const char *s, size_t len)
{
    return word_parse(s, len, class_names, CLASS_COUNT);
}

const char *
order_class_name(int c)
{
    return word_name(c, class_names, CLASS_COUNT);
}

int
order_state_parse(const char *s, size_t len)
{
    return word_parse(s, len, state_names, STATE_COUNT);
}

const char *
order_state_name(int s)
{
    return word_name(s, state_names, STATE_COUNT);
}

int
order_action_parse(const char *s, size_t len)
{
    return word_parse(s, len, action_names, ACTION_COUNT);
}

const char *
order_action_name(int a)
{
    return word_name(a, action_names, ACTION_COUNT);
}

int
order_source_parse(const char *s, size_t len)
{
    return word_parse(s, len, source_names, SOURCE_COUNT);
}

const char *
order_source_name(int s)
{
    return word_name(s, source_names, SOURCE_COUNT);
}

int
order_fulfil_parse(const char *s, size_t len)
{
    return word_parse(s, len, fulfil_names, FULFIL_COUNT);
}

const char *
order_fulfil_name(int f)
{
    return word_name(f, fulfil_names, FULFIL_COUNT);
}

int
order_risk_parse(const char *s, size_t len)
{
    int risk = 0;
    size_t i = 0;
    if (len == 0)
        return 0;
    for (;;) {
        size_t j = i;
        while (j < len && s[j] != ',')
            j++;
        int bit = word_parse(s + i, j - i, risk_names, (int)RISK_COUNT);
        if (bit < 0)
            return -1; /* unknown word, or an empty one ("a,,b", "a,") */
        risk |= 1 << bit;
        if (j == len)
            return risk;
        i = j + 1;
    }
}

char *
order_risk_format(unsigned risk, char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < RISK_COUNT; i++) {
        if (!(risk & (1u << i)))
            continue;
        int n = snprintf(buf + used, buflen - used, "%s%s", used > 0 ? "," : "",
                         risk_names[i]);
        if (n < 0 || (size_t)n >= buflen - used) {
            buf[used] = '\0'; /* too small: stop at the last whole name */
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

/* ---- the state machine ------------------------------------------------ */

#define TO(s) ((s) + 1)

/* order_table[from][action] = TO(to); 0 = illegal.  Mirrors the comments
   on enum order_action in order.h.  OUTBOUND lands from every state but
   shipped and delivered (a repeat there is pickq's PICKQ_SAME, not an
   edge): the WMS saw the goods leave, whatever this table thought. */
static const uint8_t order_table[STATE_COUNT][ACTION_COUNT] = {
    [STATE_NEW] =
        {
            [ACTION_APPROVE] = TO(STATE_QUEUED),
            [ACTION_HOLD] = TO(STATE_HELD),
            [ACTION_OUTBOUND] = TO(STATE_SHIPPED),
            [ACTION_CANCEL] = TO(STATE_CANCELLED),
            [ACTION_REPRIO] = TO(STATE_NEW),
        },
    [STATE_HELD] =
        {
            [ACTION_APPROVE] = TO(STATE_QUEUED),
            [ACTION_OUTBOUND] = TO(STATE_SHIPPED),
            [ACTION_CANCEL] = TO(STATE_CANCELLED),
            [ACTION_REPRIO] = TO(STATE_HELD),
        },
    [STATE_QUEUED] =
        {
            [ACTION_HOLD] = TO(STATE_HELD),
            [ACTION_NEXT] = TO(STATE_PICKING),
            [ACTION_OUTBOUND] = TO(STATE_SHIPPED),
            [ACTION_CANCEL] = TO(STATE_CANCELLED),
            [ACTION_REPRIO] = TO(STATE_QUEUED),
            [ACTION_ESCALATE] = TO(STATE_QUEUED),
        },
    [STATE_PICKING] =
        {
            [ACTION_TOUCH] = TO(STATE_PICKING),
            [ACTION_RELEASE] = TO(STATE_QUEUED),
            [ACTION_EXPIRE] = TO(STATE_QUEUED),
            [ACTION_OUTBOUND] = TO(STATE_SHIPPED),
            [ACTION_CANCEL] = TO(STATE_CANCELLED),
            [ACTION_REPRIO] = TO(STATE_PICKING),
            [ACTION_PICKED] = TO(STATE_PICKED),
        },
    [STATE_PICKED] =
        {
            [ACTION_OUTBOUND] = TO(STATE_SHIPPED),
            [ACTION_REPRIO] = TO(STATE_PICKED),
        },
    [STATE_SHIPPED] =
        {
            [ACTION_DELIVER] = TO(STATE_DELIVERED),
        },
    [STATE_DELIVERED] = {0},
    [STATE_CANCELLED] =
        {
            [ACTION_OUTBOUND] = TO(STATE_SHIPPED),
        },
};

int
order_transition(int from, int action, int *to)
{
    if (from < 0 || from >= STATE_COUNT || action < 0 ||
        action >= ACTION_COUNT || order_table[from][action] == 0)
        return -1;
    *to = order_table[from][action] - 1;
    return 0;
}

int
order_push_state(int state)
{
    return state == STATE_NEW || state == STATE_QUEUED ? 0 : -1;
}

/* ---- intake rules ----------------------------------------------------- */

static int
require_attr(const struct order *o, const char *why, const char *k, char *err,
             size_t errlen)
{
    const char *v = order_attr_get(o, k);
    if (v == NULL || v[0] == '\0') {
        order_errf(err, errlen, "order %s: %s order needs attribute %s", o->id,
                   why, k);
        return -1;
    }
    return 0;
}

int
order_validate(const struct order *o, char *err, size_t errlen)
{
    if (strlen(o->id) > ORDER_ID_MAX) {
        order_errf(err, errlen, "order id longer than %d bytes", ORDER_ID_MAX);
        return -1;
    }
    if (o->id[0] == '\0') {
        order_errf(err, errlen, "order id is empty");
        return -1;
    }
    if (strlen(o->warehouse) > ORDER_NAME_MAX ||
        strlen(o->customer) > ORDER_NAME_MAX) {
        order_errf(err, errlen,
                   "order %s: warehouse or customer longer than %d "
                   "bytes",
                   o->id, ORDER_NAME_MAX);
        return -1;
    }
    if (o->warehouse[0] == '\0') {
        order_errf(err, errlen, "order %s: warehouse is missing", o->id);
        return -1;
    }
    if (o->cls >= CLASS_COUNT) {
        order_errf(err, errlen, "order %s: unknown class %u", o->id, o->cls);
        return -1;
    }
    if (o->source >= SOURCE_COUNT || o->fulfil >= FULFIL_COUNT ||
        (o->risk & ~RISK_ALL) != 0) {
        order_errf(err, errlen, "order %s: unknown source, fulfilment or risk",
                   o->id);
        return -1;
    }
    if (o->nattrs > ORDER_ATTRS_MAX) {
        order_errf(err, errlen, "order %s: %u attributes, at most %d", o->id,
                   o->nattrs, ORDER_ATTRS_MAX);
        return -1;
    }
    if (o->deadline <= 0) {
        order_errf(err, errlen, "order %s: class %s needs a deadline", o->id,
                   order_class_name(o->cls));
        return -1;
    }
    if (o->cls == CLASS_ASN &&
        (require_attr(o, "asn", "asn_number", err, errlen) < 0 ||
         require_attr(o, "asn", "tech_agreement", err, errlen) < 0))
        return -1;
    if (o->fulfil == FULFIL_TO_DRAWING &&
        require_attr(o, "to_drawing", "drawing_version", err, errlen) < 0)
        return -1;
    return 0;
}

/* ---- time ------------------------------------------------------------- */

#define MS_PER_DAY INT64_C(86400000)

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;                                /* years start March 1 */
    int64_t era = (y >= 0 ? y : y - 399) / 400; /* floor division */
    unsigned yoe = (unsigned)(y - era * 400);   /* [0, 399] */
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468; /* 719468: 0000-03-01 */
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool
is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
    static const unsigned char n[12] = {31, 28, 31, 30, 31, 30,
                                        31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : n[m - 1];
}

/* Exactly n decimal digits at s[*i], advancing *i. */
static bool
digits(const char *s, size_t len, size_t *i, int n, unsigned *out)
{
    unsigned v = 0;
    if (len - *i < (size_t)n)
        return false;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *i += (size_t)n;
    *out = v;
    return true;
}

static bool
expect(const char *s, size_t len, size_t *i, char c1, char c2)
{
    if (*i >= len || (s[*i] != c1 && s[*i] != c2))
        return false;
    (*i)++;
    return true;
}

static int
parse_epoch_ms(const char *s, size_t len, int64_t *ms)
{
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        int dgt = s[i] - '0';
        if (v > (INT64_MAX - dgt) / 10)
            return -1;
        v = v * 10 + dgt;
    }
    *ms = v;
    return 0;
}

/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM|+HHMM|+HH).  The fraction
   may have any number of digits; below a millisecond it is truncated. */
static int
parse_iso(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    unsigned frac = 0, oh = 0, om = 0;
    int sign = 0;

    if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, '-', '-') ||
        !digits(s, len, &i, 2, &mo) || !expect(s, len, &i, '-', '-') ||
        !digits(s, len, &i, 2, &d) || !expect(s, len, &i, 'T', 't') ||
        !digits(s, len, &i, 2, &h) || !expect(s, len, &i, ':', ':') ||
        !digits(s, len, &i, 2, &mi) || !expect(s, len, &i, ':', ':') ||
        !digits(s, len, &i, 2, &sec))
        return -1;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3)
                frac = frac * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        if (i == start)
            return -1;
        for (size_t n = i - start; n < 3; n++)
            frac *= 10;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        i++;
        if (!digits(s, len, &i, 2, &oh))
            return -1;
        if (i < len && s[i] == ':') {
            i++;
            if (!digits(s, len, &i, 2, &om))
                return -1;
        } else if (i < len && !digits(s, len, &i, 2, &om)) {
            return -1;
        }
    } else {
        return -1; /* no offset: local time is not a time */
    }
    if (i != len)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 59 || oh > 23 || om > 59)
        return -1;

    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
                   sec - sign * (int64_t)(oh * 3600 + om * 60);
    *ms = secs * 1000 + frac;
    return 0;
}

int
order_time_parse(const char *s, size_t len, int64_t *ms)
{
    if (len == 0)
        return -1;
    if (memchr(s, '-', len) == NULL)
        return parse_epoch_ms(s, len, ms);
    return parse_iso(s, len, ms);
}

char *
order_time_format(int64_t ms, char *buf, size_t buflen)
{
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned sod = (unsigned)(rem / 1000);
    if (y >= 0 && y <= 9999 && buflen >= 25) {
        /* The usual case, digit by digit: a NEXT reply formats four or
           five times, and snprintf was a hundredth of the daemon's CPU. */
        unsigned v[7] = {
            (unsigned)y,           m, d, sod / 3600, sod / 60 % 60, sod % 60,
            (unsigned)(rem % 1000)};
        static const unsigned width[7] = {4, 2, 2, 2, 2, 2, 3};
        static const char sep[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
        char *p = buf;
        for (int i = 0; i < 7; i++) {
            for (unsigned k = width[i], x = v[i]; k > 0; k--, x /= 10)
                p[k - 1] = (char)('0' + x % 10);
            p += width[i];
            *p++ = sep[i];
        }
        *p = '\0';
        return buf;
    }
    if (buflen > 0)
        snprintf(buf, buflen, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%03uZ", y,
                 m, d, sod / 3600, sod / 60 % 60, sod % 60,
                 (unsigned)(rem % 1000));
    return buf;
}
