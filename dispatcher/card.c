/*
 * The cards.  Every text comes from the event's own JSON (the log's), so a
 * card after a restart reads as it would have before.
 */
#include "card.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "events.h"
#include "notify.h"

static const char *
jstr(json_t *ev, const char *k)
{
    const char *s = json_string_value(json_object_get(ev, k));
    return s ? s : "";
}

static long long
jint(json_t *ev, const char *k)
{
    return (long long)json_integer_value(json_object_get(ev, k));
}

/* A time in China Standard Time (UTC+8), the warehouse's clock. */
static void
cst(long long ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%m-%d %H:%M", &tm);
}

const char *
card_title(const char *type)
{
    if (strcmp(type, "jump") == 0)
        return "【加急插队】";
    if (strcmp(type, "at_risk") == 0)
        return "【超期风险】";
    if (strcmp(type, "lease_expired") == 0)
        return "【拣货超时】";
    if (strcmp(type, "outbound_unleased") == 0)
        return "【未领单出库】";
    if (strcmp(type, "anomaly") == 0)
        return "【出库异常】";
    if (strcmp(type, "escalated") == 0)
        return "【自动升级】";
    if (strcmp(type, "lease_revoked") == 0)
        return "【租约收回】";
    if (strcmp(type, "unconfirmed") == 0)
        return "【待确认出库】";
    return "【事件】";
}

void
card_line(struct evbuffer *b, const char *json, size_t len)
{
    json_t *ev = json_loadb(json, len, 0, NULL);
    if (!ev) {
        evbuffer_add_printf(b, "【事件】%.*s", (int)len, json);
        return;
    }
    const char *type = jstr(ev, "type");
    const char *order = jstr(ev, "order");
    const char *cust = jstr(ev, "customer");
    char dl[32];
    cst(jint(ev, "deadline"), dl, sizeof dl);
    evbuffer_add_printf(b, "%s订单#%s", card_title(type), order);
    if (*cust)
        evbuffer_add_printf(b, "(客户:%s)", cust);
    if (strcmp(type, "jump") == 0) {
        long long pos = jint(ev, "position");
        long long mins = (jint(ev, "delay_ms") + 59999) / 60000;
        if (pos == 0)
            evbuffer_add_printf(b, "已置顶");
        else
            evbuffer_add_printf(b, "已插至第%lld位", pos + 1);
        if (jint(ev, "displaced") > 0)
            evbuffer_add_printf(b, ",原队列第%lld位起%lld单订单顺延%lld分钟",
                                pos + 1, jint(ev, "displaced"), mins);
        else
            evbuffer_add_printf(b, ",没有订单被顺延");
        json_t *risk = json_object_get(ev, "at_risk_orders");
        if (json_array_size(risk) > 0) {
            evbuffer_add_printf(b,
                                ",其中%zu单有超期风险:", json_array_size(risk));
            size_t i;
            json_t *r;
            json_array_foreach(risk, i, r)
            {
                const char *id = json_string_value(r);
                if (!id)
                    id = json_string_value(json_object_get(r, "order"));
                evbuffer_add_printf(b, "%s#%s", i ? "、" : "", id ? id : "?");
            }
        }
        evbuffer_add_printf(b, "(仓库:%s,截止%s)", jstr(ev, "warehouse"), dl);
    } else if (strcmp(type, "at_risk") == 0) {
        evbuffer_add_printf(b, "因订单#%s插队顺延%lld分钟,可能赶不上截止时间%s",
                            jstr(ev, "displaced_by"),
                            (jint(ev, "delay_ms") + 59999) / 60000, dl);
    } else if (strcmp(type, "lease_expired") == 0) {
        evbuffer_add_printf(b, "拣货租约#%lld已过期,订单已回到%s仓队列原位",
                            jint(ev, "lease"), jstr(ev, "warehouse"));
    } else if (strcmp(type, "outbound_unleased") == 0) {
        evbuffer_add_printf(b, "无拣货租约即被WMS确认出库(操作员:%s,原状态:%s)",
                            jstr(ev, "operator"), jstr(ev, "from"));
    } else if (strcmp(type, "anomaly") == 0) {
        evbuffer_add_printf(b, "出库确认异常:%s(操作员:%s,原状态:%s)",
                            jstr(ev, "why"), jstr(ev, "operator"),
                            jstr(ev, "from"));
    } else if (strcmp(type, "escalated") == 0) {
        evbuffer_add_printf(b, "临近截止%s,优先级由%s升为%s", dl,
                            jstr(ev, "from"), jstr(ev, "to"));
    } else if (strcmp(type, "unconfirmed") == 0) {
        evbuffer_add_printf(b, "拣货员%s已拣完,%lld分钟未收到WMS出库确认",
                            jstr(ev, "picker"), jint(ev, "waited_ms") / 60000);
    } else {
        evbuffer_add_printf(b, "(%s)", type);
    }
    json_decref(ev);
}

void
card_chat_body(struct evbuffer *out, int fmt, const char *title,
               const char *text, size_t text_len)
{
    if (fmt == NOTIFY_DINGTALK) {
        evbuffer_add_printf(out, "{\"msgtype\":\"markdown\",\"markdown\":{"
                                 "\"title\":");
        json_quote(out, title, strlen(title));
        evbuffer_add_printf(out, ",\"text\":");
        json_quote(out, text, text_len);
        evbuffer_add_printf(out, "}}");
    } else {
        evbuffer_add_printf(out, "{\"msgtype\":\"markdown\",\"markdown\":{"
                                 "\"content\":");
        json_quote(out, text, text_len);
        evbuffer_add_printf(out, "}}");
    }
}
