/*
 * notify — the notifier: every logged event of the chosen types is POSTed
 * to each webhook target (plain JSON, a DingTalk or a WeCom group robot),
 * at least once and never lost.
 *
 * Each target has a delivery cursor (the last sequence it was given, or
 * skipped because of its type) kept durably in the store's meta column
 * family.  The notifier reads the event log (core_events) from the cursor,
 * so a restart resumes where the last one stopped; an event sink only
 * wakes it when new events become durable.  One request at a time per
 * target, on the event loop (evhttp client, never blocking); a failure is
 * retried with exponential backoff and jitter, and after the last attempt
 * an alert goes to the --alert targets while the event stays ahead of the
 * cursor, retried after the longest delay.  At most `rate` messages a
 * minute per target: events that wait beyond it go out as one digest.
 *
 * Loop thread only.
 */
#ifndef DISPATCHD_NOTIFY_H
#define DISPATCHD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#define NOTIFY_TARGETS_MAX 8
#define NOTIFY_URL_MAX 1024

enum notify_format { NOTIFY_JSON, NOTIFY_DINGTALK, NOTIFY_WECOM };

struct notify_config {
    /* "[json+|dingtalk+|wecom+]http[s]://host:port/path?query" */
    char targets[NOTIFY_TARGETS_MAX][NOTIFY_URL_MAX];
    size_t n_targets;
    char alerts[NOTIFY_TARGETS_MAX][NOTIFY_URL_MAX];
    size_t n_alerts;
    char events[512];     /* types, comma-separated */
    char secret[256];     /* DingTalk signing secret, "" = none */
    char ca[512];         /* --notify-ca: PEM authorities; "" = the system's */
    int64_t retry_ms;     /* first retry delay: 5 s */
    int64_t retry_max_ms; /* backoff cap, and the wait after a give-up */
    int64_t timeout_ms;   /* connect and response timeout: 10 s */
    int attempts;         /* tries before alerting: 8 */
    int rate;             /* messages a minute per target; 0 = by format */
    int64_t rate_window_ms; /* the "minute" of rate: 60 s (tests shorten it) */
};

void notify_config_default(struct notify_config *cfg);
/* Check one target spec; 0, or -1 with a message in err. */
int notify_target_check(const char *spec, char *err, size_t errlen);

struct core;
struct notify;

/* Start delivering (a no-op notifier when there are no targets).  NULL
   after logging why. */
struct notify *notify_start(struct event_base *base, struct core *c,
                            const struct notify_config *cfg);
/* Cancel what is in flight (it is delivered again after a restart). */
void notify_free(struct notify *n);

/* DingTalk's signature: base64(HMAC-SHA256(secret, ts "\n" secret)),
   URL-encoded, into out.  Returns 0, or -1 when out is too small. */
int notify_dingtalk_sign(const char *secret, long long ts_ms, char *out,
                         size_t cap);

#endif
