/*
 * card — the chat text of an event, in Chinese as the warehouse's DingTalk
 * group reads it ("【加急插队】订单#X(客户:c)已置顶,..."), and the robots'
 * markdown message bodies.  Pure formatting: no I/O.
 */
#ifndef DISPATCHD_CARD_H
#define DISPATCHD_CARD_H

#include <stddef.h>

#include <event2/buffer.h>

/* "【加急插队】" for "jump", ...; "【事件】" for a type it does not know. */
const char *card_title(const char *type);
/* Append one event's card line (the event's JSON, len bytes) to b. */
void card_line(struct evbuffer *b, const char *json, size_t len);
/* Append the message body of markdown `text` under `title` for fmt
   (NOTIFY_DINGTALK: {"msgtype":"markdown","markdown":{"title","text"}},
   NOTIFY_WECOM: {"msgtype":"markdown","markdown":{"content"}}). */
void card_chat_body(struct evbuffer *out, int fmt, const char *title,
                    const char *text, size_t text_len);

#endif
