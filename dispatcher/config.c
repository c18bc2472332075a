/*
 * Settings come from three places, later ones winning: the defaults below,
 * an INI file (--config FILE; keys are the long option names, sections are
 * ignored), and the command line.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"
#include "log.h"
#include "store.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

void
config_default(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->bind, sizeof cfg->bind, "127.0.0.1");
    cfg->port = 7420;
    snprintf(cfg->data, sizeof cfg->data, "var/data");
    cfg->durability = STORE_SYNC;
    cfg->batch_ms = 10;
    cfg->store_queue_max = 8192;
    http_config_default(&cfg->http);
    cfg->max_clients = 10000;
    cfg->idle_timeout_ms = 300 * SEC;
    cfg->retention_ms = 30 * DAY;
    cfg->event_retention_ms = 7 * DAY;
    cfg->event_retention_count = 1000000;
    cfg->log_level = LOG_INFO;
    cfg->checkpoint_dir[0] = '\0'; /* beside the data directory */
    cfg->out_hard = (size_t)256 << 20;
    cfg->out_soft = (size_t)64 << 20;
    cfg->out_soft_ms = 60 * SEC;
    cfg->sub_hard = (size_t)32 << 20;
    cfg->sub_soft = (size_t)8 << 20;
    cfg->sub_soft_ms = 60 * SEC;
    pickq_config_default(&cfg->queue);
    notify_config_default(&cfg->notify);
}

int
config_duration(const char *s, int64_t unit_ms, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    int64_t unit = unit_ms;
    if (*end == '\0')
        ;
    else if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0)
        unit = SEC;
    else if (strcmp(end, "m") == 0)
        unit = MIN;
    else if (strcmp(end, "h") == 0)
        unit = HOUR;
    else if (strcmp(end, "d") == 0)
        unit = DAY;
    else if (strcmp(end, "y") == 0)
        unit = 365 * DAY + 6 * HOUR;
    else
        return -1;
    double r = v * (double)unit;
    if (r > 9.0e15)
        return -1;
    *ms = (int64_t)r;
    return 0;
}

int
config_size(const char *s, size_t *bytes)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return -1;
    unsigned long long unit = 1;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        unit = 1;
    else if (strcasecmp(end, "kb") == 0 || strcasecmp(end, "k") == 0)
        unit = 1ull << 10;
    else if (strcasecmp(end, "mb") == 0 || strcasecmp(end, "m") == 0)
        unit = 1ull << 20;
    else if (strcasecmp(end, "gb") == 0 || strcasecmp(end, "g") == 0)
        unit = 1ull << 30;
    else
        return -1;
    if (v > (1ull << 50) / unit)
        return -1;
    *bytes = (size_t)(v * unit);
    return 0;
}

int
config_output_limit(const char *s, size_t *hard, size_t *soft, int64_t *soft_ms)
{
    char a[32], b[32], c[32], extra[2];
    size_t h, so;
    int64_t ms;
    if (sscanf(s, "%31s %31s %31s %1s", a, b, c, extra) != 3 ||
        config_size(a, &h) || config_size(b, &so) ||
        config_duration(c, SEC, &ms))
        return -1;
    if (h && so > h)
        return -1;
    *hard = h;
    *soft = so;
    *soft_ms = ms;
    return 0;
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum opt_id {
    OPT_BIND = 'b',
    OPT_PORT = 'p',
    OPT_DATA = 'd',
    OPT_CONFIG = 'c',
    OPT_HELP = 'h',
    OPT_VERSION = 'V',
    OPT_LEASE = 256,
    OPT_LEASE_MAX,
    OPT_MAX_CLIENTS,
    OPT_IDLE,
    OPT_DURABILITY,
    OPT_BATCH_MS,
    OPT_GROUP_COMMIT,
    OPT_RETENTION,
    OPT_LOG_LEVEL,
    OPT_PICK_ESTIMATE,
    OPT_DEADLINE_ASN,
    OPT_DEADLINE_RUSH4H,
    OPT_DEADLINE_RUSH24H,
    OPT_DEADLINE_NORMAL,
    OPT_ESCALATE_RUSH4H,
    OPT_ESCALATE_RUSH24H,
    OPT_ESCALATE_NORMAL,
    OPT_CHECKPOINT_DIR,
    OPT_CLIENT_OUTPUT,
    OPT_SUBSCRIBER_OUTPUT,
    OPT_DEADLINE_AHEAD,
    OPT_STORE_QUEUE_MAX,
    OPT_USERS,
    OPT_CONFIRM_TIMEOUT,
    OPT_HTTP_PORT,
    OPT_HTTP_BODY_MAX,
    OPT_HTTP_MAX_CONNS,
    OPT_HTTP_IDLE,
    OPT_WMS_ORDER,
    OPT_WMS_AT,
    OPT_WMS_OPERATOR,
    OPT_WMS_PHOTO,
    OPT_WMS_CARRIER,
    OPT_BOARD_MAX,
    OPT_CUSTOMER_LINKS,
    OPT_PUBLIC_URL,
    OPT_CUSTOMER_SECRET,
    OPT_EVENT_RETENTION,
    OPT_EVENT_RETENTION_COUNT,
    OPT_SSE_HEARTBEAT,
    OPT_NOTIFY,
    OPT_ALERT,
    OPT_NOTIFY_EVENTS,
    OPT_NOTIFY_SECRET,
    OPT_NOTIFY_CA,
    OPT_NOTIFY_RETRY,
    OPT_NOTIFY_RETRY_MAX,
    OPT_NOTIFY_TIMEOUT,
    OPT_NOTIFY_ATTEMPTS,
    OPT_NOTIFY_RATE,
    OPT_NOTIFY_RATE_WINDOW,
};

static const struct option long_options[] = {
    {"bind", required_argument, NULL, OPT_BIND},
    {"port", required_argument, NULL, OPT_PORT},
    {"data", required_argument, NULL, OPT_DATA},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"lease-default", required_argument, NULL, OPT_LEASE},
    {"lease-max", required_argument, NULL, OPT_LEASE_MAX},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"durability", required_argument, NULL, OPT_DURABILITY},
    {"batch-ms", required_argument, NULL, OPT_BATCH_MS},
    {"group-commit", required_argument, NULL, OPT_GROUP_COMMIT},
    {"retention", required_argument, NULL, OPT_RETENTION},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"pick-estimate", required_argument, NULL, OPT_PICK_ESTIMATE},
    {"deadline-asn", required_argument, NULL, OPT_DEADLINE_ASN},
    {"deadline-rush4h", required_argument, NULL, OPT_DEADLINE_RUSH4H},
    {"deadline-rush24h", required_argument, NULL, OPT_DEADLINE_RUSH24H},
    {"deadline-normal", required_argument, NULL, OPT_DEADLINE_NORMAL},
    {"escalate-rush4h", required_argument, NULL, OPT_ESCALATE_RUSH4H},
    {"escalate-rush24h", required_argument, NULL, OPT_ESCALATE_RUSH24H},
    {"escalate-normal", required_argument, NULL, OPT_ESCALATE_NORMAL},
    {"checkpoint-dir", required_argument, NULL, OPT_CHECKPOINT_DIR},
    {"client-output-limit", required_argument, NULL, OPT_CLIENT_OUTPUT},
    {"subscriber-output-limit", required_argument, NULL, OPT_SUBSCRIBER_OUTPUT},
    {"deadline-max-ahead", required_argument, NULL, OPT_DEADLINE_AHEAD},
    {"store-queue-max", required_argument, NULL, OPT_STORE_QUEUE_MAX},
    {"users", required_argument, NULL, OPT_USERS},
    {"confirm-timeout", required_argument, NULL, OPT_CONFIRM_TIMEOUT},
    {"http-port", required_argument, NULL, OPT_HTTP_PORT},
    {"http-body-max", required_argument, NULL, OPT_HTTP_BODY_MAX},
    {"http-max-connections", required_argument, NULL, OPT_HTTP_MAX_CONNS},
    {"http-idle-timeout", required_argument, NULL, OPT_HTTP_IDLE},
    {"wms-field-order", required_argument, NULL, OPT_WMS_ORDER},
    {"wms-field-at", required_argument, NULL, OPT_WMS_AT},
    {"wms-field-operator", required_argument, NULL, OPT_WMS_OPERATOR},
    {"wms-field-photo", required_argument, NULL, OPT_WMS_PHOTO},
    {"wms-field-carrier", required_argument, NULL, OPT_WMS_CARRIER},
    {"board-max", required_argument, NULL, OPT_BOARD_MAX},
    {"customer-links", required_argument, NULL, OPT_CUSTOMER_LINKS},
    {"public-url", required_argument, NULL, OPT_PUBLIC_URL},
    {"customer-secret", required_argument, NULL, OPT_CUSTOMER_SECRET},
    {"event-retention", required_argument, NULL, OPT_EVENT_RETENTION},
    {"event-retention-count", required_argument, NULL,
     OPT_EVENT_RETENTION_COUNT},
    {"sse-heartbeat", required_argument, NULL, OPT_SSE_HEARTBEAT},
    {"notify", required_argument, NULL, OPT_NOTIFY},
    {"alert", required_argument, NULL, OPT_ALERT},
    {"notify-events", required_argument, NULL, OPT_NOTIFY_EVENTS},
    {"notify-secret", required_argument, NULL, OPT_NOTIFY_SECRET},
    {"notify-ca", required_argument, NULL, OPT_NOTIFY_CA},
    {"notify-retry", required_argument, NULL, OPT_NOTIFY_RETRY},
    {"notify-retry-max", required_argument, NULL, OPT_NOTIFY_RETRY_MAX},
    {"notify-timeout", required_argument, NULL, OPT_NOTIFY_TIMEOUT},
    {"notify-attempts", required_argument, NULL, OPT_NOTIFY_ATTEMPTS},
    {"notify-rate", required_argument, NULL, OPT_NOTIFY_RATE},
    {"notify-rate-window", required_argument, NULL, OPT_NOTIFY_RATE_WINDOW},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
    fprintf(
        f,
        "Usage: dispatchd [OPTION]...\n"
        "Decide which warehouse order is picked next: a durable pick queue "
        "spoken to\n"
        "over RESP (redis-cli, hiredis and any Redis client work).\n"
        "\n"
        "  -b, --bind ADDR          listen address (default 127.0.0.1)\n"
        "  -p, --port PORT          RESP port (default 7420)\n"
        "  -d, --data DIR           RocksDB data directory (default var/data)\n"
        "      --http-port PORT     HTTP/JSON gateway port (default 7421, 0 = "
        "off)\n"
        "      --users FILE         'name role secret' lines (roles viewer, "
        "erp, wms,\n"
        "                           admin); clients must AUTH (RESP, binary) "
        "or send\n"
        "                           'Authorization: Bearer SECRET' (HTTP).  "
        "Required\n"
        "                           to bind to a non-loopback address; mode "
        "600\n"
        "      --http-body-max SIZE largest HTTP request body (default 1mb)\n"
        "      --http-max-connections N  HTTP connections at once (default "
        "1024)\n"
        "      --http-idle-timeout DUR   close idle HTTP connections (default "
        "60s)\n"
        "      --wms-field-order NAME    the WMS callback's field names: "
        "order\n"
        "      --wms-field-at NAME       (order_no), time (outbound_at), "
        "operator\n"
        "      --wms-field-operator NAME (operator) and photo (photo_url)\n"
        "      --wms-field-photo NAME\n"
        "      --wms-field-carrier NAME  the carrier's field, shown to the "
        "customer\n"
        "                           (default carrier)\n"
        "      --board-max N        queued orders the board lists (default "
        "200,\n"
        "                           at most 1000)\n"
        "      --customer-links on|off  the customer's page /o/{id}?t=TOKEN "
        "and\n"
        "                           customer_url in GET /v1/orders/{id} "
        "(default on)\n"
        "      --public-url URL     base of customer_url (default "
        "http://BIND:HTTP-PORT)\n"
        "      --customer-secret FILE  the links' HMAC secret (16-256 bytes, "
        "mode\n"
        "                           600); default: made on first start, kept "
        "in\n"
        "                           the store.  A new secret voids every "
        "link\n"
        "  -c, --config FILE        INI file; keys are these long option "
        "names\n"
        "      --durability MODE    sync (reply after the WAL sync, default),\n"
        "                           batch (reply at once, sync every "
        "--batch-ms),\n"
        "                           none (never sync explicitly)\n"
        "      --batch-ms N         batch mode sync period (default 10)\n"
        "      --group-commit WHO   who writes each group of changes to "
        "RocksDB:\n"
        "                           loop (the event loop, before it "
        "waits),\n"
        "                           thread (a persistence thread, while the\n"
        "                           loop goes on) or auto (default: thread "
        "for\n"
        "                           sync, loop for batch and none)\n"
        "      --store-queue-max N  changes waiting for the store before new "
        "ones\n"
        "                           are refused with BUSY (default 8192)\n"
        "      --lease-default DUR  lease given by NEXT (default 300s)\n"
        "      --lease-max DUR      longest lease NEXT/TOUCH grant (default "
        "1h)\n"
        "      --max-clients N      connections at once (default 10000)\n"
        "      --idle-timeout DUR   close idle clients after DUR, 0 = never\n"
        "                           (default 300s; blocked and subscribed "
        "exempt)\n"
        "      --retention DUR      keep shipped/delivered/cancelled orders\n"
        "                           readable for DUR (default 30d)\n"
        "      --event-retention DUR  keep logged events for DUR (default 7d)\n"
        "      --event-retention-count N  and at most the last N (default "
        "1000000)\n"
        "      --sse-heartbeat DUR  comment sent to idle SSE clients (default "
        "15s)\n"
        "      --pick-estimate DUR  mean pick time before one is measured "
        "(2m)\n"
        "      --deadline-CLASS DUR default deadline when a push has none, "
        "for\n"
        "                           CLASS asn (default: required), rush4h "
        "(4h),\n"
        "                           rush24h (24h), normal (72h); 0 = required\n"
        "      --escalate-CLASS DUR promote an order one class up, never "
        "into asn,\n"
        "                           while its deadline is within DUR: "
        "rush24h (4h),\n"
        "                           normal (24h); 0 = never (rush4h is "
        "accepted\n"
        "                           and ignored: nothing passes an asn "
        "order)\n"
        "      --confirm-timeout DUR an order reported PICKED with no "
        "outbound\n"
        "                           confirmation after DUR fires an "
        "'unconfirmed'\n"
        "                           event (default 30m, 0 = never)\n"
        "      --deadline-max-ahead DUR  refuse deadlines further ahead than "
        "DUR\n"
        "                           (default 1826d, five years; before 2000: "
        "always)\n"
        "      --checkpoint-dir DIR CHECKPOINT name writes DIR/name only\n"
        "                           (default: checkpoints beside the data "
        "directory)\n"
        "      --client-output-limit \"HARD SOFT PERIOD\"\n"
        "                           close a client whose unread replies pass "
        "HARD, or\n"
        "                           SOFT for PERIOD (default \"256mb 64mb "
        "60s\"; a\n"
        "                           client that does not read is not read "
        "from\n"
        "                           once 1mb of its replies wait)\n"
        "      --subscriber-output-limit \"HARD SOFT PERIOD\"\n"
        "                           the same for SUBSCRIBE (default \"32mb 8mb "
        "60s\")\n"
        "      --notify [FMT+]URL   POST events to a webhook (repeatable, up "
        "to "
        "8);\n"
        "                           FMT json (default), dingtalk or wecom; "
        "without\n"
        "                           it the robot hosts oapi.dingtalk.com and\n"
        "                           qyapi.weixin.qq.com choose their format\n"
        "      --alert [FMT+]URL    where failed deliveries are reported "
        "(repeatable)\n"
        "      --notify-events LIST types sent (default "
        "jump,at_risk,lease_expired,\n"
        "                           outbound_unleased,anomaly)\n"
        "      --notify-secret S    DingTalk signing secret (timestamp, sign)\n"
        "      --notify-ca FILE     PEM authorities for https:// targets "
        "(default:\n"
        "                           the system's)\n"
        "      --notify-retry DUR   first retry delay, doubled each time "
        "(default 5s)\n"
        "      --notify-retry-max DUR  longest delay, and the wait after the "
        "last\n"
        "                           attempt failed (default 5m)\n"
        "      --notify-timeout DUR connect and reply timeout (default 10s)\n"
        "      --notify-attempts N  tries before an alert (default 8)\n"
        "      --notify-rate N      messages a minute per target (default 20 "
        "for\n"
        "                           dingtalk and wecom, 600 for json); more "
        "waiting\n"
        "                           go out as one digest\n"
        "      --notify-rate-window DUR  the rate's period (default 1m; for "
        "tests)\n"
        "      --log-level LEVEL    error, warn, info (default) or debug\n"
        "  -h, --help               this text\n"
        "  -V, --version            the version\n"
        "\n"
        "Durations: 250ms, 30s, 15m, 4h, 30d, 5y; a bare number means "
        "seconds.\n"
        "Sizes: 512, 64kb, 32mb, 1gb.\n"
        "Example: dispatchd --port 7420 --data /var/lib/dispatchd --durability "
        "sync\n");
}

/* Apply one setting by its long name; the file and argv share this. */
static int
config_set(struct config *cfg, int id, const char *name, const char *v)
{
    long n;
    int64_t ms;
    struct pickq_config *q = &cfg->queue;

    switch (id) {
    case OPT_BIND:
        if (strlen(v) >= sizeof cfg->bind)
            goto bad;
        snprintf(cfg->bind, sizeof cfg->bind, "%s", v);
        return 0;
    case OPT_PORT:
        if (parse_int(v, 1, 65535, &n))
            goto bad;
        cfg->port = (int)n;
        return 0;
    case OPT_DATA:
        if (strlen(v) >= sizeof cfg->data || !*v)
            goto bad;
        snprintf(cfg->data, sizeof cfg->data, "%s", v);
        return 0;
    case OPT_DURABILITY:
        if (strcasecmp(v, "sync") == 0)
            cfg->durability = STORE_SYNC;
        else if (strcasecmp(v, "batch") == 0)
            cfg->durability = STORE_BATCH;
        else if (strcasecmp(v, "none") == 0)
            cfg->durability = STORE_NONE;
        else
            goto bad;
        return 0;
    case OPT_BATCH_MS:
        if (parse_int(v, 1, 60000, &n))
            goto bad;
        cfg->batch_ms = (int)n;
        return 0;
    case OPT_GROUP_COMMIT:
        if (strcasecmp(v, "auto") == 0)
            cfg->group_commit = COMMIT_AUTO;
        else if (strcasecmp(v, "loop") == 0)
            cfg->group_commit = COMMIT_LOOP;
        else if (strcasecmp(v, "thread") == 0)
            cfg->group_commit = COMMIT_THREAD;
        else
            goto bad;
        return 0;
    case OPT_STORE_QUEUE_MAX:
        if (parse_int(v, 1, 10000000, &n))
            goto bad;
        cfg->store_queue_max = (int)n;
        return 0;
    case OPT_EVENT_RETENTION_COUNT:
        if (parse_int(v, 1, 1000000000, &n))
            goto bad;
        cfg->event_retention_count = (uint64_t)n;
        return 0;
    case OPT_MAX_CLIENTS:
        if (parse_int(v, 1, 1000000, &n))
            goto bad;
        cfg->max_clients = (int)n;
        return 0;
    case OPT_USERS:
        if (strlen(v) >= sizeof cfg->users || !*v)
            goto bad;
        snprintf(cfg->users, sizeof cfg->users, "%s", v);
        return 0;
    case OPT_HTTP_PORT:
        if (parse_int(v, 0, 65535, &n))
            goto bad;
        cfg->http.port = (int)n;
        return 0;
    case OPT_HTTP_BODY_MAX: {
        size_t sz;
        if (config_size(v, &sz) || sz < 1024 || sz > ((size_t)64 << 20))
            goto bad;
        cfg->http.body_max = sz;
        return 0;
    }
    case OPT_HTTP_MAX_CONNS:
        if (parse_int(v, 1, 1000000, &n))
            goto bad;
        cfg->http.max_conns = (size_t)n;
        return 0;
    case OPT_WMS_ORDER:
    case OPT_WMS_AT:
    case OPT_WMS_OPERATOR:
    case OPT_WMS_PHOTO:
    case OPT_WMS_CARRIER: {
        char *dst = id == OPT_WMS_ORDER      ? cfg->http.wms_order
                    : id == OPT_WMS_AT       ? cfg->http.wms_at
                    : id == OPT_WMS_OPERATOR ? cfg->http.wms_operator
                    : id == OPT_WMS_PHOTO    ? cfg->http.wms_photo
                                             : cfg->http.wms_carrier;
        if (!*v || strlen(v) >= HTTP_FIELD_MAX)
            goto bad;
        snprintf(dst, HTTP_FIELD_MAX, "%s", v);
        return 0;
    }
    case OPT_BOARD_MAX:
        if (parse_int(v, 1, CORE_PEEK_MAX, &n))
            goto bad;
        cfg->http.board_max = (size_t)n;
        return 0;
    case OPT_CUSTOMER_LINKS:
        if (strcasecmp(v, "on") == 0)
            cfg->http.customer_links = true;
        else if (strcasecmp(v, "off") == 0)
            cfg->http.customer_links = false;
        else
            goto bad;
        return 0;
    case OPT_PUBLIC_URL: {
        /* A base that a customer's phone can open: http(s)://, no query,
           no trailing slash (the path is appended). */
        size_t len = strlen(v);
        if (len >= sizeof cfg->http.public_url ||
            (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) ||
            strpbrk(v, "?# \"\\<>") || v[len - 1] == '/')
            goto bad;
        snprintf(cfg->http.public_url, sizeof cfg->http.public_url, "%s", v);
        return 0;
    }
    case OPT_CUSTOMER_SECRET:
        if (!*v || strlen(v) >= sizeof cfg->http.customer_secret)
            goto bad;
        snprintf(cfg->http.customer_secret, sizeof cfg->http.customer_secret,
                 "%s", v);
        return 0;
    case OPT_CHECKPOINT_DIR:
        if (strlen(v) >= sizeof cfg->checkpoint_dir || !*v)
            goto bad;
        snprintf(cfg->checkpoint_dir, sizeof cfg->checkpoint_dir, "%s", v);
        return 0;
    case OPT_CLIENT_OUTPUT:
        if (config_output_limit(v, &cfg->out_hard, &cfg->out_soft,
                                &cfg->out_soft_ms))
            goto bad;
        return 0;
    case OPT_SUBSCRIBER_OUTPUT:
        if (config_output_limit(v, &cfg->sub_hard, &cfg->sub_soft,
                                &cfg->sub_soft_ms))
            goto bad;
        return 0;
    case OPT_NOTIFY:
    case OPT_ALERT: {
        struct notify_config *nc = &cfg->notify;
        size_t *cnt = id == OPT_NOTIFY ? &nc->n_targets : &nc->n_alerts;
        char(*list)[NOTIFY_URL_MAX] =
            id == OPT_NOTIFY ? nc->targets : nc->alerts;
        char err[NOTIFY_URL_MAX + 200];
        if (strlen(v) >= NOTIFY_URL_MAX) {
            fprintf(stderr, "dispatchd: %s: URL longer than %d bytes\n", name,
                    NOTIFY_URL_MAX - 1);
            return -1;
        }
        if (*cnt >= NOTIFY_TARGETS_MAX) {
            fprintf(stderr, "dispatchd: %s: at most %d targets\n", name,
                    NOTIFY_TARGETS_MAX);
            return -1;
        }
        if (notify_target_check(v, err, sizeof err)) {
            fprintf(stderr, "dispatchd: %s\n", err);
            return -1;
        }
        snprintf(list[(*cnt)++], NOTIFY_URL_MAX, "%s", v);
        return 0;
    }
    case OPT_NOTIFY_EVENTS:
        if (!*v || strlen(v) >= sizeof cfg->notify.events)
            goto bad;
        snprintf(cfg->notify.events, sizeof cfg->notify.events, "%s", v);
        return 0;
    case OPT_NOTIFY_SECRET:
        if (strlen(v) >= sizeof cfg->notify.secret)
            goto bad;
        snprintf(cfg->notify.secret, sizeof cfg->notify.secret, "%s", v);
        return 0;
    case OPT_NOTIFY_CA:
        if (!*v || strlen(v) >= sizeof cfg->notify.ca)
            goto bad;
        snprintf(cfg->notify.ca, sizeof cfg->notify.ca, "%s", v);
        return 0;
    case OPT_NOTIFY_ATTEMPTS:
        if (parse_int(v, 1, 1000, &n))
            goto bad;
        cfg->notify.attempts = (int)n;
        return 0;
    case OPT_NOTIFY_RATE:
        if (parse_int(v, 1, 100000, &n))
            goto bad;
        cfg->notify.rate = (int)n;
        return 0;
    case OPT_LOG_LEVEL:
        if (strcasecmp(v, "error") == 0)
            cfg->log_level = LOG_ERROR;
        else if (strcasecmp(v, "warn") == 0)
            cfg->log_level = LOG_WARN;
        else if (strcasecmp(v, "info") == 0)
            cfg->log_level = LOG_INFO;
        else if (strcasecmp(v, "debug") == 0)
            cfg->log_level = LOG_DEBUG;
        else
            goto bad;
        return 0;
    default:
        break;
    }
    /* The rest are durations. */
    if (config_duration(v, SEC, &ms))
        goto bad;
    switch (id) {
    case OPT_LEASE:
        if (ms < SEC)
            goto bad;
        q->lease_ms = ms;
        break;
    case OPT_LEASE_MAX:
        if (ms < SEC)
            goto bad;
        q->lease_max_ms = ms;
        break;
    case OPT_IDLE:
        cfg->idle_timeout_ms = ms;
        break;
    case OPT_HTTP_IDLE:
        if (ms < SEC)
            goto bad;
        cfg->http.idle_timeout_ms = ms;
        break;
    case OPT_CONFIRM_TIMEOUT:
        q->confirm_timeout_ms = ms;
        break;
    case OPT_DEADLINE_AHEAD:
        if (ms < DAY)
            goto bad;
        q->deadline_ahead_max_ms = ms;
        break;
    case OPT_RETENTION:
        cfg->retention_ms = ms;
        break;
    case OPT_EVENT_RETENTION:
        if (ms < SEC)
            goto bad;
        cfg->event_retention_ms = ms;
        break;
    case OPT_NOTIFY_RETRY:
        if (ms < 10)
            goto bad;
        cfg->notify.retry_ms = ms;
        break;
    case OPT_NOTIFY_RETRY_MAX:
        if (ms < 10)
            goto bad;
        cfg->notify.retry_max_ms = ms;
        break;
    case OPT_NOTIFY_RATE_WINDOW:
        if (ms < 100)
            goto bad;
        cfg->notify.rate_window_ms = ms;
        break;
    case OPT_NOTIFY_TIMEOUT:
        if (ms < 10)
            goto bad;
        cfg->notify.timeout_ms = ms;
        break;
    case OPT_SSE_HEARTBEAT:
        if (ms < 100)
            goto bad;
        cfg->http.sse_heartbeat_ms = ms;
        break;
    case OPT_PICK_ESTIMATE:
        if (ms < 1)
            goto bad;
        q->pick_ms = ms;
        break;
    case OPT_DEADLINE_ASN:
    case OPT_DEADLINE_RUSH4H:
    case OPT_DEADLINE_RUSH24H:
    case OPT_DEADLINE_NORMAL:
        q->deadline_default[CLASS_ASN + (id - OPT_DEADLINE_ASN)] = ms;
        break;
    case OPT_ESCALATE_RUSH4H:
        if (ms != 0)
            fprintf(stderr,
                    "dispatchd: warning: %s has no effect: a rush4h order "
                    "would escalate into asn, and nothing passes an asn "
                    "order\n",
                    name);
        /* fall through */
    case OPT_ESCALATE_RUSH24H:
    case OPT_ESCALATE_NORMAL:
        q->escalate_window[CLASS_RUSH4H + (id - OPT_ESCALATE_RUSH4H)] = ms;
        break;
    default:
        fprintf(stderr, "dispatchd: unknown setting '%s'\n", name);
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "dispatchd: invalid value '%s' for %s\n", v, name);
    return -1;
}

struct ini_ctx {
    struct config *cfg;
    const char *path;
    int failed;
};

static int
on_ini_line(void *user, const char *section, const char *name,
            const char *value)
{
    struct ini_ctx *ctx = user;
    (void)section;
    for (const struct option *o = long_options; o->name; o++) {
        if (strcmp(o->name, name) == 0 && o->has_arg == required_argument &&
            o->val != OPT_CONFIG) {
            if (config_set(ctx->cfg, o->val, name, value))
                ctx->failed = 1;
            return 1;
        }
    }
    fprintf(stderr, "dispatchd: %s: unknown key '%s'\n", ctx->path, name);
    ctx->failed = 1;
    return 1;
}

void
config_finish(struct config *cfg)
{
    if (cfg->checkpoint_dir[0])
        return;
    /* "checkpoints" beside the data directory: var/data -> var/checkpoints */
    const char *slash = strrchr(cfg->data, '/');
    while (slash && slash > cfg->data && slash[1] == '\0') {
        /* a trailing slash: look before it */
        const char *p = slash - 1;
        while (p > cfg->data && *p != '/')
            p--;
        slash = *p == '/' ? p : NULL;
    }
    if (!slash)
        snprintf(cfg->checkpoint_dir, sizeof cfg->checkpoint_dir,
                 "checkpoints");
    else if (slash == cfg->data)
        snprintf(cfg->checkpoint_dir, sizeof cfg->checkpoint_dir,
                 "/checkpoints");
    else
        snprintf(cfg->checkpoint_dir, sizeof cfg->checkpoint_dir,
                 "%.*s/checkpoints", (int)(slash - cfg->data), cfg->data);
}

int
config_from_args(struct config *cfg, int argc, char **argv)
{
    const char *shortopts = "b:p:d:c:hV";
    const char *file = NULL;
    int c;

    /* First pass: only --config, --help and --version, so the file can be
       read before the command line overrides it. */
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, shortopts, long_options, NULL)) != -1) {
        if (c == OPT_CONFIG)
            file = optarg;
        else if (c == OPT_HELP) {
            usage(stdout);
            return 1;
        } else if (c == OPT_VERSION) {
            printf("dispatchd %s\n", DISPATCHD_VERSION);
            return 1;
        }
    }
    if (file) {
        struct ini_ctx ctx = {cfg, file, 0};
        int line = ini_parse(file, on_ini_line, &ctx);
        if (line < 0) {
            fprintf(stderr, "dispatchd: cannot read config %s: %s\n", file,
                    strerror(errno));
            return -1;
        }
        if (line > 0) {
            fprintf(stderr, "dispatchd: %s:%d: syntax error\n", file, line);
            return -1;
        }
        if (ctx.failed)
            return -1;
    }

    opterr = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, shortopts, long_options, NULL)) != -1) {
        if (c == '?') {
            fprintf(stderr, "Try 'dispatchd --help'.\n");
            return -1;
        }
        if (c == OPT_CONFIG || c == OPT_HELP || c == OPT_VERSION)
            continue;
        const char *name = "option";
        for (const struct option *o = long_options; o->name; o++)
            if (o->val == c)
                name = o->name;
        if (config_set(cfg, c, name, optarg))
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "dispatchd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    config_finish(cfg);
    return 0;
}
