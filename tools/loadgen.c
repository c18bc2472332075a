/*
 * loadgen — the load-test harness: one workload, three servers.
 *
 * P producer threads push orders (approved, with a class and a deadline)
 * and C picker threads loop on a blocking "give me the next order", wait
 * a simulated pick time and confirm the outbound.  Each thread owns one
 * synchronous connection.  The same workload runs against:
 *
 *   dispatchd   PUSH ... APPROVED / NEXT wh BLOCK ms / OUTBOUND id, over
 *               RESP (hiredis) or, with --proto binary, over the binary
 *               protocol (client/dclient.h): the same requests, fields
 *               and replies, framed in docs/binary-protocol.md
 *   redis       ZADD q score id / BZPOPMIN q timeout / SADD shipped id,
 *               score = class * 1e13 + deadline ms (exact in a double:
 *               below 2^53 for every class and any deadline before 2286)
 *   beanstalkd  put pri 0 ttr n / reserve-with-timeout s / delete job,
 *               pri = class << 30 | deadline in minutes (30 bits), so the
 *               class order is strict but deadlines within a class are
 *               only ordered to the minute (FIFO inside one minute)
 *
 * With --redis-mode lease, Redis gets a lease like the other two: NEXT is
 * EVALSHA of a script (SCRIPT LOAD once per run) that does ZPOPMIN q and
 * ZADD leased (now + lease ms) member, atomically; the outbound is
 * ZREM leased member (1 = first acknowledgement, 0 = already), with no
 * SADD.  The script does not block: on an empty queue the picker sleeps
 * --poll-ms and tries again until --block-ms is spent (the NEXT latency
 * includes that wait, as it includes a blocking wait elsewhere).  Nothing
 * expires the leased set: it records who holds what, as dispatchd does,
 * but no reaper runs in this benchmark.
 *
 * --payload B gives every order B bytes of payload (alphanumerics from a
 * hash of seed and k, so nothing compresses them away): dispatchd gets an
 * ATTR payload of B bytes, Redis's member is "id payload" (the id, a
 * space, B bytes: the member is what a sorted set stores per entry) and
 * beanstalkd's job body is "id payload" too.
 *
 * Modes beside the default (producers and pickers at once):
 *
 *   --pickers 0      push only: the producers push --orders and stop.  The
 *                    "shipped exactly once" check does not apply and is
 *                    reported as skipped; every push must still be
 *                    acknowledged.  The rate is pushes acknowledged per
 *                    second, first push sent to last acknowledgement.
 *   --prefill        push every order first (pickers not started), then
 *                    start the pickers and time only the drain: orders
 *                    shipped per second from the pickers' start to the
 *                    last outbound acknowledgement.  Every check applies.
 *   --producers 0    pop only, with --run-tag T and --orders N: pick and
 *                    ship N orders that an earlier run with the same tag
 *                    (and seed and mix) pushed, e.g. before a restart.
 *                    Checks: each picked order shipped exactly once, N
 *                    shipped, one holder at a time, and urgency: all were
 *                    queued before the first NEXT, so a pick P passes a
 *                    more urgent X iff X's NEXT was sent after P's reply
 *                    was read (the rule below with every ack at the start,
 *                    over the orders this run picked).
 *   --run-tag T      use T instead of a random run tag, so that ids, the
 *                    warehouse, the Redis keys and the tube are those of
 *                    an earlier run.
 *
 * The JSON output of these modes (and of --payload and --redis-mode) has
 * a "throughput" object saying what it counts; without them the output is
 * as it always was.
 *
 * The workload is a pure function of --seed and the order's index k: its
 * class and deadline jitter come from a hash of (seed, k), so two runs
 * with the same options push the same orders whatever the interleaving.
 * Ids are "lg<run>-<k>" with a random run tag, so runs never collide in
 * one long-lived server; dispatchd gets its own warehouse per run, Redis
 * its own keys, beanstalkd its own tube.
 *
 * Latency is recorded per command in a log-linear histogram (the HDR
 * idea): values below 128 ns are exact, above that each power of two is
 * cut into 64 buckets, so every percentile is within 1/64 (1.6 %) of the
 * truth, a thread records with one shift and one increment, and the
 * per-thread histograms merge by adding counts.
 *
 * Invariant checks (any failure makes the exit status 1):
 *
 *  1. Every acknowledged push is shipped exactly once: the first outbound
 *     acknowledgement ("+OK", SADD 1, DELETED) is counted per order.
 *  2. No order is held by two pickers at once: a picker claims the order
 *     (compare-and-swap on a holder word) from the NEXT reply until its
 *     outbound is acknowledged; a second claim in that window fails.
 *  3. Urgency order.  Pick P of class c: its NEXT was sent at s and its
 *     reply read at r.  P is a violation iff some order X of a strictly
 *     more urgent class had its push acknowledged before s and was not
 *     handed out by any NEXT sent before r.  Then the server processed
 *     PUSH X before NEXT P (the ack left before P arrived), and NEXT P
 *     before the NEXT that got X (that one was sent after P's reply), so
 *     X was pickable and more urgent when P was served.  A NEXT that
 *     overlaps P may legitimately have taken X first; that is the "one
 *     pick cycle" of slack, and it is exactly what the rule forgives, so
 *     a correct server is never flagged (no false alarms; some real
 *     violations inside overlapping windows go unseen).  It is checked
 *     after the run in O(n log n): per class, orders sorted by ack time
 *     with a prefix maximum of their pick-send time.  The rule assumes no
 *     lease expired (reported) and no escalation: deadlines sent to the
 *     server are real-time (hours away), so dispatchd never escalates.
 *
 * Bytes on the wire are counted by the kernel: when the run ends, each
 * worker connection's TCP_INFO gives the bytes it sent (and were acked)
 * and received, so both protocols are measured the same way, framing
 * included, without touching the client libraries.
 *
 * Deadline misses use a compressed clock: with --time-factor F an order's
 * class window (asn 2 h, rush4h 4 h, rush24h 24 h, normal 72 h, +-jitter)
 * lasts window / F of wall time from its push, and an order shipped after
 * that is a miss.
 *
 * This file is longer than ~800 lines on purpose: it is one tool whose
 * parts (options, three protocol drivers, threads, checks, report) are
 * only meaningful together, and a single file keeps it one build target.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/tcp.h> /* TCP_NODELAY, and TCP_INFO's byte counts */
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "dclient.h"

#define LG_NCLASS 4
#define LG_PIPELINE_MAX 1024
#define LG_THREADS_MAX 512
#define LG_IO_TIMEOUT_MS 60000
#define LG_SURGE_DAYS_MAX 16
#define LG_ID_MAX 64
#define LG_PAYLOAD_MAX 1024 /* dispatchd's largest attribute value */
#define LG_MEMBER_MAX (LG_ID_MAX + 1 + LG_PAYLOAD_MAX)

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define MS_PER_H INT64_C(3600000)

enum lg_target { LG_DISPATCHD, LG_REDIS, LG_BEANSTALKD };

enum lg_proto { LG_RESP, LG_BINARY }; /* dispatchd only */

enum lg_redis_mode { LG_BZPOPMIN, LG_LEASE }; /* redis only */

/* What the run does (see the top of the file). */
enum lg_mode { LG_MIXED, LG_PUSH_ONLY, LG_PREFILL, LG_POP_ONLY };

static const char *const lg_mode_names[] = {"mixed", "push-only", "prefill",
                                            "pop-only"};

enum lg_cmd { CMD_PUSH, CMD_NEXT, CMD_SHIP, CMD_COUNT };

/* Results of one request. */
enum lg_res {
    LG_GOT,      /* push accepted, order handed out, first outbound */
    LG_EMPTY,    /* NEXT timed out with nothing to pick */
    LG_ALREADY,  /* outbound of an order already shipped */
    LG_NOTFOUND, /* dispatchd: warehouse not created yet */
    LG_SRVERR,   /* the server refused: connection still usable */
    LG_IOERR,    /* the connection is gone */
};

static const char *const lg_target_names[] = {"dispatchd", "redis",
                                              "beanstalkd"};
static const char *const lg_class_names[LG_NCLASS] = {"asn", "rush4h",
                                                      "rush24h", "normal"};
static const char *const lg_cmd_names[CMD_COUNT] = {"PUSH", "NEXT", "OUTBOUND"};
static const char *const lg_cmd_peer[][CMD_COUNT] = {
    {"PUSH", "NEXT", "OUTBOUND"},
    {"ZADD", "BZPOPMIN", "SADD"},
    {"put", "reserve", "delete"},
    {"ZADD", "EVALSHA", "ZREM"}, /* redis, --redis-mode lease */
};
#define LG_PEER_LEASE 3

/* --redis-mode lease: KEYS[1] the queue, KEYS[2] the leased set, ARGV[1]
   the lease's expiry (wall ms).  The popped member, or nil. */
static const char lg_lease_script[] =
    "local m = redis.call('ZPOPMIN', KEYS[1]) "
    "if #m == 0 then return false end "
    "redis.call('ZADD', KEYS[2], ARGV[1], m[1]) "
    "return m[1]";
/* The story's deadline per class, from the push. */
static const int64_t lg_window_ms[LG_NCLASS] = {2 * MS_PER_H, 4 * MS_PER_H,
                                                24 * MS_PER_H, 72 * MS_PER_H};

/* ------------------------------------------------------------------ */
/* Small utilities                                                      */

static void
lg_die(const char *fmt, ...)
{
    va_list ap;
    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *
lg_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        lg_die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

static int64_t
lg_mono_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        lg_die("clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t
lg_wall_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        lg_die("clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

static void
lg_sleep_until(int64_t mono_ns)
{
    struct timespec ts = {.tv_sec = mono_ns / NS_PER_S,
                          .tv_nsec = mono_ns % NS_PER_S};
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) ==
           EINTR)
        ;
    if (rc != 0)
        lg_die("clock_nanosleep: %s", strerror(rc));
}

static void
lg_sleep_ns(int64_t ns)
{
    if (ns > 0)
        lg_sleep_until(lg_mono_ns() + ns);
}

/* splitmix64: a good 64-bit mix, used both as a counter-based hash of
   (seed, k) and as a per-thread generator. */
static uint64_t
lg_mix(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint64_t
lg_rand(uint64_t *state)
{
    *state += UINT64_C(0x9e3779b97f4a7c15);
    return lg_mix(*state);
}

/* A double in [0, 1) from 53 random bits. */
static double
lg_unit(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

/* ------------------------------------------------------------------ */
/* Log-linear latency histogram (see the comment at the top)           */

#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct lg_hist {
    uint64_t n;
    uint64_t max;
    double sum;
    uint64_t b[HIST_BUCKETS];
};

static unsigned
hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v) - HIST_SUB_BITS;
    return e * HIST_SUB + (unsigned)(v >> e);
}

/* The largest value that lands in bucket i. */
static uint64_t
hist_high(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned e = i / HIST_SUB - 1;
    uint64_t m = i - e * HIST_SUB;
    return ((m + 1) << e) - 1;
}

static void
hist_add(struct lg_hist *h, int64_t v)
{
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    h->b[hist_index(u)]++;
    h->n++;
    h->sum += (double)u;
    if (u > h->max)
        h->max = u;
}

static void
hist_merge(struct lg_hist *to, const struct lg_hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        to->b[i] += from->b[i];
    to->n += from->n;
    to->sum += from->sum;
    if (from->max > to->max)
        to->max = from->max;
}

/* The value at quantile q (0..1): the top of the bucket holding the
   ceil(q n)-th smallest value, never above the exact maximum. */
static uint64_t
hist_quantile(const struct lg_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_high(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------------ */
/* Options                                                              */

struct lg_opts {
    enum lg_target target;
    enum lg_proto proto;
    const char *host;
    int port;
    int producers, pickers;
    uint64_t orders;   /* 0: use duration */
    double duration_s; /* 0: use orders */
    double rate;       /* orders/s in total, 0 = as fast as possible */
    int pipeline;
    double pick_lo_ms, pick_hi_ms;
    double mix[LG_NCLASS]; /* relative weights */
    double jitter;         /* deadline window * (1 +- jitter) */
    int lease_s;
    int block_ms;
    double time_factor;
    size_t surge_days; /* 0: no surge profile */
    uint64_t surge_n[LG_SURGE_DAYS_MAX];
    int64_t drain_ms;
    const char *warehouse; /* NULL: one per run */
    bool json;
    bool quiet;
    uint64_t seed;
    enum lg_redis_mode redis_mode;
    double poll_ms; /* --redis-mode lease: sleep between empty polls */
    size_t payload; /* bytes per order, 0 = none */
    bool prefill;
    const char *run_tag; /* NULL: random */
    enum lg_mode mode;   /* derived from pickers, producers, prefill */
    bool extended;       /* a new option given: JSON says "throughput" */
};

static void
lg_usage(FILE *f)
{
    static const char text[] =
        "usage: loadgen [options]\n"
        "  --target T          dispatchd, redis or beanstalkd (dispatchd)\n"
        "  --proto P           dispatchd: resp or binary (resp)\n"
        "  --host H            server address (127.0.0.1)\n"
        "  --port P            7420, 6379 or 11300 by target\n"
        "  --producers P       pushing connections (8); 0 = pop only:\n"
        "                      pick N orders of an earlier run (--run-tag)\n"
        "  --pickers C         picking connections (8); 0 = push only\n"
        "  --orders N          orders to push (20000 without --duration);\n"
        "                      with --producers 0, orders to pick\n"
        "  --duration S        push for S seconds instead\n"
        "  --rate R            orders/s in total; 0 = at once (0)\n"
        "  --pipeline D        pushes in flight per producer (1)\n"
        "  --pick-ms A|A:B     pick time, fixed or uniform in ms (0)\n"
        "  --mix W             class weights\n"
        "                      (asn:3,rush4h:5,rush24h:7,normal:85)\n"
        "  --jitter J          deadline window * (1 +- J) (0.1)\n"
        "  --lease S           lease (beanstalkd: TTR) seconds (60)\n"
        "  --block-ms MS       NEXT block timeout (100; beanstalkd\n"
        "                      rounds up to whole seconds)\n"
        "  --surge[=N1,N2,..]  N orders per day, day after day\n"
        "                      (920,3100)\n"
        "  --time-factor F     a class window lasts window/F, a surge\n"
        "                      day 86400/F s (1; 8640 with --surge)\n"
        "  --drain-ms MS       after the last push, give up when\n"
        "                      nothing shipped for MS (10000)\n"
        "  --warehouse W       dispatchd warehouse (one per run)\n"
        "  --payload B         B bytes of payload per order (0)\n"
        "  --prefill           push every order first, then start the\n"
        "                      pickers and time the drain\n"
        "  --run-tag T         the run tag (1-8 of [0-9a-z]; random):\n"
        "                      the ids and keys of an earlier run\n"
        "  --redis-mode M      bzpopmin, or lease: a Lua ZPOPMIN + ZADD\n"
        "                      leased and a ZREM ack (bzpopmin)\n"
        "  --poll-ms MS        lease mode: sleep between empty pops (1)\n"
        "  --seed S            workload seed (1)\n"
        "  --json              one JSON object on stdout\n"
        "  --quiet             no progress line on stderr\n"
        "Exit status: 0 every invariant held, 1 an invariant or a\n"
        "request failed, 2 usage or connection error.\n";
    fputs(text, f);
}

static double
lg_parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        lg_die("%s: bad value '%s' (want %g..%g)", opt, s, lo, hi);
    return v;
}

static uint64_t
lg_parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    if (*s == '-')
        lg_die("%s: bad value '%s'", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        lg_die("%s: bad value '%s' (want %" PRIu64 "..%" PRIu64 ")", opt, s, lo,
               hi);
    return v;
}

static void
lg_parse_mix(struct lg_opts *o, const char *s)
{
    double w[LG_NCLASS] = {0};
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        lg_die("--mix: too long");
    strcpy(buf, s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        if (colon == NULL)
            lg_die("--mix: '%s' is not class:weight", t);
        *colon = '\0';
        int c = -1;
        for (int i = 0; i < LG_NCLASS; i++)
            if (strcasecmp(t, lg_class_names[i]) == 0)
                c = i;
        if (c < 0)
            lg_die("--mix: unknown class '%s'", t);
        w[c] = lg_parse_double("--mix", colon + 1, 0, 1e9);
    }
    double sum = 0;
    for (int i = 0; i < LG_NCLASS; i++)
        sum += w[i];
    if (sum <= 0)
        lg_die("--mix: all weights are zero");
    for (int i = 0; i < LG_NCLASS; i++)
        o->mix[i] = w[i] / sum;
}

static void
lg_parse_surge(struct lg_opts *o, const char *s)
{
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        lg_die("--surge: too long");
    strcpy(buf, s);
    o->surge_days = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (o->surge_days == LG_SURGE_DAYS_MAX)
            lg_die("--surge: at most %d days", LG_SURGE_DAYS_MAX);
        o->surge_n[o->surge_days++] =
            lg_parse_u64("--surge", t, 1, UINT64_C(100000000));
    }
    if (o->surge_days == 0)
        lg_die("--surge: no days");
}

static void
lg_parse_opts(struct lg_opts *o, int argc, char **argv)
{
    enum {
        O_TARGET = 256,
        O_PROTO,
        O_HOST,
        O_PORT,
        O_PRODUCERS,
        O_PICKERS,
        O_ORDERS,
        O_DURATION,
        O_RATE,
        O_PIPELINE,
        O_PICK,
        O_MIX,
        O_JITTER,
        O_LEASE,
        O_BLOCK,
        O_SURGE,
        O_TF,
        O_DRAIN,
        O_WH,
        O_PAYLOAD,
        O_PREFILL,
        O_RUN_TAG,
        O_REDIS_MODE,
        O_POLL,
        O_SEED,
        O_JSON,
        O_QUIET,
        O_HELP
    };
    static const struct option longopts[] = {
        {"target", required_argument, NULL, O_TARGET},
        {"proto", required_argument, NULL, O_PROTO},
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"producers", required_argument, NULL, O_PRODUCERS},
        {"pickers", required_argument, NULL, O_PICKERS},
        {"orders", required_argument, NULL, O_ORDERS},
        {"duration", required_argument, NULL, O_DURATION},
        {"rate", required_argument, NULL, O_RATE},
        {"pipeline", required_argument, NULL, O_PIPELINE},
        {"pick-ms", required_argument, NULL, O_PICK},
        {"mix", required_argument, NULL, O_MIX},
        {"jitter", required_argument, NULL, O_JITTER},
        {"lease", required_argument, NULL, O_LEASE},
        {"block-ms", required_argument, NULL, O_BLOCK},
        {"surge", optional_argument, NULL, O_SURGE},
        {"time-factor", required_argument, NULL, O_TF},
        {"drain-ms", required_argument, NULL, O_DRAIN},
        {"warehouse", required_argument, NULL, O_WH},
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"prefill", no_argument, NULL, O_PREFILL},
        {"run-tag", required_argument, NULL, O_RUN_TAG},
        {"redis-mode", required_argument, NULL, O_REDIS_MODE},
        {"poll-ms", required_argument, NULL, O_POLL},
        {"seed", required_argument, NULL, O_SEED},
        {"json", no_argument, NULL, O_JSON},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    static const double default_mix[LG_NCLASS] = {0.03, 0.05, 0.07, 0.85};

    memset(o, 0, sizeof(*o));
    o->target = LG_DISPATCHD;
    o->host = "127.0.0.1";
    o->producers = 8;
    o->pickers = 8;
    o->pipeline = 1;
    memcpy(o->mix, default_mix, sizeof(o->mix));
    o->jitter = 0.1;
    o->lease_s = 60;
    o->block_ms = 100;
    o->drain_ms = 10000;
    o->seed = 1;
    o->poll_ms = 1;
    bool tf_set = false, redis_mode_set = false;

    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_TARGET:
            if (strcmp(optarg, "dispatchd") == 0)
                o->target = LG_DISPATCHD;
            else if (strcmp(optarg, "redis") == 0)
                o->target = LG_REDIS;
            else if (strcmp(optarg, "beanstalkd") == 0)
                o->target = LG_BEANSTALKD;
            else
                lg_die("--target: unknown '%s'", optarg);
            break;
        case O_PROTO:
            if (strcmp(optarg, "resp") == 0)
                o->proto = LG_RESP;
            else if (strcmp(optarg, "binary") == 0)
                o->proto = LG_BINARY;
            else
                lg_die("--proto: unknown '%s' (resp or binary)", optarg);
            break;
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            o->port = (int)lg_parse_u64("--port", optarg, 1, 65535);
            break;
        case O_PRODUCERS:
            o->producers =
                (int)lg_parse_u64("--producers", optarg, 0, LG_THREADS_MAX);
            break;
        case O_PICKERS:
            o->pickers =
                (int)lg_parse_u64("--pickers", optarg, 0, LG_THREADS_MAX);
            break;
        case O_ORDERS:
            o->orders = lg_parse_u64("--orders", optarg, 1, UINT64_C(1) << 36);
            break;
        case O_DURATION:
            o->duration_s = lg_parse_double("--duration", optarg, 0.001, 1e6);
            break;
        case O_RATE:
            o->rate = lg_parse_double("--rate", optarg, 0, 1e9);
            break;
        case O_PIPELINE:
            o->pipeline =
                (int)lg_parse_u64("--pipeline", optarg, 1, LG_PIPELINE_MAX);
            break;
        case O_PICK: {
            char buf[64];
            if (strlen(optarg) >= sizeof(buf))
                lg_die("--pick-ms: too long");
            strcpy(buf, optarg);
            char *colon = strchr(buf, ':');
            if (colon != NULL)
                *colon = '\0';
            o->pick_lo_ms = lg_parse_double("--pick-ms", buf, 0, 3.6e6);
            o->pick_hi_ms =
                colon == NULL
                    ? o->pick_lo_ms
                    : lg_parse_double("--pick-ms", colon + 1, 0, 3.6e6);
            if (o->pick_hi_ms < o->pick_lo_ms)
                lg_die("--pick-ms: range %s is upside down", optarg);
            break;
        }
        case O_MIX:
            lg_parse_mix(o, optarg);
            break;
        case O_JITTER:
            o->jitter = lg_parse_double("--jitter", optarg, 0, 0.99);
            break;
        case O_LEASE:
            o->lease_s = (int)lg_parse_u64("--lease", optarg, 1, 3600);
            break;
        case O_BLOCK:
            o->block_ms = (int)lg_parse_u64("--block-ms", optarg, 1, 60000);
            break;
        case O_SURGE:
            lg_parse_surge(o, optarg != NULL ? optarg : "920,3100");
            break;
        case O_TF:
            o->time_factor =
                lg_parse_double("--time-factor", optarg, 1e-3, 1e9);
            tf_set = true;
            break;
        case O_DRAIN:
            o->drain_ms =
                (int64_t)lg_parse_u64("--drain-ms", optarg, 1, 3600000);
            break;
        case O_WH:
            if (strlen(optarg) == 0 || strlen(optarg) > 64)
                lg_die("--warehouse: 1..64 bytes");
            o->warehouse = optarg;
            break;
        case O_PAYLOAD:
            o->payload =
                (size_t)lg_parse_u64("--payload", optarg, 0, LG_PAYLOAD_MAX);
            o->extended = true;
            break;
        case O_PREFILL:
            o->prefill = true;
            o->extended = true;
            break;
        case O_RUN_TAG:
            if (strlen(optarg) == 0 || strlen(optarg) > 8 ||
                optarg[strspn(optarg,
                              "0123456789abcdefghijklmnopqrstuvwxyz")] != '\0')
                lg_die("--run-tag: 1 to 8 of 0-9 and a-z, not '%s'", optarg);
            o->run_tag = optarg;
            o->extended = true;
            break;
        case O_REDIS_MODE:
            if (strcmp(optarg, "bzpopmin") == 0)
                o->redis_mode = LG_BZPOPMIN;
            else if (strcmp(optarg, "lease") == 0)
                o->redis_mode = LG_LEASE;
            else
                lg_die("--redis-mode: unknown '%s' (bzpopmin or lease)",
                       optarg);
            redis_mode_set = true;
            o->extended = true;
            break;
        case O_POLL:
            o->poll_ms = lg_parse_double("--poll-ms", optarg, 0.01, 1000);
            break;
        case O_SEED:
            o->seed = lg_parse_u64("--seed", optarg, 0, UINT64_MAX);
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_QUIET:
            o->quiet = true;
            break;
        case O_HELP:
            lg_usage(stdout);
            exit(0);
        default:
            lg_usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        lg_die("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->proto == LG_BINARY && o->target != LG_DISPATCHD)
        lg_die("--proto binary: only with --target dispatchd");
    if (redis_mode_set && o->target != LG_REDIS)
        lg_die("--redis-mode: only with --target redis");
    if (o->producers == 0 && o->pickers == 0)
        lg_die("--producers 0 and --pickers 0: nothing to do");
    if (o->pickers == 0 || o->producers == 0)
        o->extended = true;
    if (o->prefill && (o->producers == 0 || o->pickers == 0))
        lg_die("--prefill needs producers and pickers");
    if (o->producers == 0) {
        if (o->run_tag == NULL)
            lg_die("--producers 0 picks the orders of an earlier run: give "
                   "its --run-tag");
        if (o->orders == 0 || o->duration_s != 0 || o->rate != 0 ||
            o->surge_days > 0)
            lg_die("--producers 0: give --orders N (orders to pick), and no "
                   "--duration, --rate or --surge");
        if (o->warehouse != NULL)
            lg_die("--producers 0: the warehouse is the run tag's; drop "
                   "--warehouse");
    }
    o->mode = o->pickers == 0     ? LG_PUSH_ONLY
              : o->producers == 0 ? LG_POP_ONLY
              : o->prefill        ? LG_PREFILL
                                  : LG_MIXED;
    if (o->port == 0)
        o->port = o->target == LG_DISPATCHD ? 7420
                  : o->target == LG_REDIS   ? 6379
                                            : 11300;
    if (!tf_set)
        o->time_factor = o->surge_days > 0 ? 8640 : 1;
    if (o->surge_days > 0) {
        if (o->orders != 0 || o->duration_s != 0 || o->rate != 0)
            lg_die("--surge sets the orders and their rate: drop --orders, "
                   "--duration and --rate");
        for (size_t d = 0; d < o->surge_days; d++)
            o->orders += o->surge_n[d];
    } else if (o->orders != 0 && o->duration_s != 0) {
        lg_die("give --orders or --duration, not both");
    } else if (o->orders == 0 && o->duration_s == 0) {
        o->orders = 20000;
    }
}

/* ------------------------------------------------------------------ */
/* The run: shared state of all threads                                 */

/* One pushed order.  The producer writes sent/ack/due/cls, the first
   picker to get it writes next/got, the first shipper ship; the counters
   are atomic.  Everything else is read only after every thread joined. */
struct lg_order {
    int64_t sent_ns; /* PUSH appended */
    int64_t ack_ns;  /* PUSH reply read */
    int64_t due_ns;  /* compressed-time deadline */
    int64_t next_ns; /* the NEXT that first got it: sent */
    int64_t got_ns;  /* ... and its reply read */
    int64_t ship_ns; /* first outbound acknowledged */
    atomic_uint picks;
    atomic_uint ships;
    atomic_int holder; /* picker index + 1 while held, 0 free */
    uint8_t cls;
    atomic_uchar state; /* enum lg_ostate */
};

enum lg_ostate { OS_NONE, OS_SENT, OS_ACKED, OS_FAILED };

#define LG_CHUNK_BITS 16
#define LG_CHUNK (UINT64_C(1) << LG_CHUNK_BITS)
#define LG_CHUNKS_MAX 4096

struct lg_run {
    struct lg_opts o;
    char tag[16];    /* random per run */
    char prefix[24]; /* "lg<tag>-" */
    size_t prefix_len;
    char warehouse[72];         /* dispatchd */
    char qkey[48], shipkey[48]; /* redis */
    char leasekey[48], sha[48]; /* redis, --redis-mode lease */
    char tube[48];              /* beanstalkd */
    int64_t start_ns, end_ns;   /* end_ns: push deadline with --duration */
    int64_t drain_ns;           /* --prefill: the pickers' start */
    uint64_t limit;             /* orders to push (UINT64_MAX: by duration) */

    struct lg_order *_Atomic chunks[LG_CHUNKS_MAX];
    pthread_mutex_t chunk_mu;

    atomic_uint_fast64_t next_k; /* next order index to claim */
    atomic_uint_fast64_t sent, acked, settled, errors;
    atomic_int producers_left;
    atomic_int stop_producers, stop_pickers;
    atomic_int_fast64_t last_ship_ns;
    atomic_uint_fast64_t max_k;  /* --producers 0: largest k picked + 1 */
    atomic_uint_fast64_t claims; /* --producers 0: NEXTs sent or served */

    pthread_mutex_t fail_mu;
    char fail_msg[256]; /* first request failure */
    atomic_int fatal;   /* a connection broke: stop everything */
};

static struct lg_order *
run_order(struct lg_run *r, uint64_t k)
{
    if ((k >> LG_CHUNK_BITS) >= LG_CHUNKS_MAX)
        return NULL;
    struct lg_order *c = atomic_load_explicit(&r->chunks[k >> LG_CHUNK_BITS],
                                              memory_order_acquire);
    return c == NULL ? NULL : &c[k & (LG_CHUNK - 1)];
}

/* The order k, creating its chunk when needed (producers only). */
static struct lg_order *
run_order_make(struct lg_run *r, uint64_t k)
{
    struct lg_order *o = run_order(r, k);
    if (o != NULL || (k >> LG_CHUNK_BITS) >= LG_CHUNKS_MAX)
        return o;
    pthread_mutex_lock(&r->chunk_mu);
    size_t ci = k >> LG_CHUNK_BITS;
    if (atomic_load(&r->chunks[ci]) == NULL)
        atomic_store_explicit(&r->chunks[ci],
                              lg_calloc(LG_CHUNK, sizeof(struct lg_order)),
                              memory_order_release);
    pthread_mutex_unlock(&r->chunk_mu);
    return run_order(r, k);
}

/* Record a failed request; fatal ones stop the run. */
static void
run_fail(struct lg_run *r, bool fatal, const char *fmt, ...)
{
    atomic_fetch_add(&r->errors, 1);
    pthread_mutex_lock(&r->fail_mu);
    if (r->fail_msg[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->fail_msg, sizeof(r->fail_msg), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->fail_mu);
    if (fatal) {
        atomic_store(&r->fatal, 1);
        atomic_store(&r->stop_producers, 1);
        atomic_store(&r->stop_pickers, 1);
    }
}

/* The class and deadline jitter of order k: a function of seed and k. */
static void
run_order_shape(const struct lg_run *r, uint64_t k, int *cls, double *jit)
{
    uint64_t h = lg_mix(r->o.seed * UINT64_C(0x100000001b3) ^ lg_mix(k));
    double u = lg_unit(h);
    double acc = 0;
    *cls = LG_NCLASS - 1;
    for (int c = 0; c < LG_NCLASS; c++) {
        acc += r->o.mix[c];
        if (u < acc && r->o.mix[c] > 0) {
            *cls = c;
            break;
        }
    }
    *jit = r->o.jitter * (2 * lg_unit(lg_mix(h)) - 1);
}

/* When order k is due to be pushed (mono ns); 0 = now. */
static int64_t
run_schedule(const struct lg_run *r, uint64_t k)
{
    const struct lg_opts *o = &r->o;
    if (o->surge_days > 0) {
        double day_ns = 86400.0 * (double)NS_PER_S / o->time_factor;
        for (size_t d = 0; d < o->surge_days; d++) {
            if (k < o->surge_n[d])
                return r->start_ns +
                       (int64_t)(day_ns * ((double)d +
                                           (double)k / (double)o->surge_n[d]));
            k -= o->surge_n[d];
        }
        return 0;
    }
    if (o->rate > 0)
        return r->start_ns + (int64_t)((double)k * 1e9 / o->rate);
    return 0;
}

/* "lg<tag>-<k>" back to k, or -1 for an id from elsewhere. */
static int64_t
run_parse_id(const struct lg_run *r, const char *id, size_t len)
{
    if (len <= r->prefix_len || len > LG_ID_MAX ||
        memcmp(id, r->prefix, r->prefix_len) != 0)
        return -1;
    uint64_t k = 0;
    for (size_t i = r->prefix_len; i < len; i++) {
        if (id[i] < '0' || id[i] > '9' || k > UINT64_MAX / 10 - 10)
            return -1;
        k = k * 10 + (uint64_t)(id[i] - '0');
    }
    return (int64_t)k;
}

/* The payload of order k: o.payload alphanumerics (and '-', '_') from a
   hash of (seed, k), NUL-terminated; buf holds LG_PAYLOAD_MAX + 1. */
static void
run_payload(const struct lg_run *r, uint64_t k, char *buf)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                              "wxyz0123456789-_";
    uint64_t h = lg_mix(r->o.seed ^ lg_mix(k ^ UINT64_C(0x5bd1e995)));
    size_t n = r->o.payload;
    for (size_t i = 0; i < n; i++) {
        if (i % 10 == 0)
            h = lg_mix(h);
        buf[i] = abc[(h >> (6 * (i % 10))) & 63];
    }
    buf[n] = '\0';
}

/* The id at the start of a Redis member or a beanstalkd body: up to the
   first space ("id payload"), or all of it. */
static size_t
member_id_len(const char *s, size_t len)
{
    const char *sp = memchr(s, ' ', len);
    return sp == NULL ? len : (size_t)(sp - s);
}

/* ------------------------------------------------------------------ */
/* beanstalkd: a small buffered client for its text protocol            */

struct lg_bs {
    int fd;
    char *out;
    size_t olen, ocap;
    char *in;
    size_t ipos, ilen, icap;
};

static int
bs_connect(struct lg_bs *b, const char *host, int port, char *err,
           size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res, *ai;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    b->fd = -1;
    int saved = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        b->fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (b->fd < 0) {
            saved = errno;
            continue;
        }
        if (connect(b->fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        close(b->fd);
        b->fd = -1;
    }
    freeaddrinfo(res);
    if (b->fd < 0) {
        snprintf(err, errlen, "connect %s:%d: %s", host, port, strerror(saved));
        return -1;
    }
    int one = 1;
    struct timeval tv = {.tv_sec = LG_IO_TIMEOUT_MS / 1000};
    if (setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(b->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(b->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        snprintf(err, errlen, "setsockopt: %s", strerror(errno));
        close(b->fd);
        b->fd = -1;
        return -1;
    }
    b->ocap = 4096;
    b->icap = 65536;
    b->out = lg_calloc(1, b->ocap);
    b->in = lg_calloc(1, b->icap);
    b->olen = b->ipos = b->ilen = 0;
    return 0;
}

static void
bs_close(struct lg_bs *b)
{
    if (b->fd >= 0)
        close(b->fd);
    free(b->out);
    free(b->in);
    memset(b, 0, sizeof(*b));
    b->fd = -1;
}

static void
bs_append(struct lg_bs *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->out + b->olen, b->ocap - b->olen, fmt, ap);
        va_end(ap);
        if (n < 0)
            lg_die("vsnprintf failed");
        if ((size_t)n < b->ocap - b->olen) {
            b->olen += (size_t)n;
            return;
        }
        b->ocap *= 2;
        b->out = realloc(b->out, b->ocap);
        if (b->out == NULL)
            lg_die("out of memory");
    }
}

static int
bs_flush(struct lg_bs *b, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < b->olen) {
        ssize_t n = write(b->fd, b->out + off, b->olen - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "write: %s",
                     n < 0 ? strerror(errno) : "closed");
            return -1;
        }
        off += (size_t)n;
    }
    b->olen = 0;
    return 0;
}

/* Make at least need bytes readable at b->in + b->ipos. */
static int
bs_fill(struct lg_bs *b, size_t need, char *err, size_t errlen)
{
    while (b->ilen - b->ipos < need) {
        if (b->ipos > 0) {
            memmove(b->in, b->in + b->ipos, b->ilen - b->ipos);
            b->ilen -= b->ipos;
            b->ipos = 0;
        }
        if (need > b->icap || b->ilen == b->icap) {
            b->icap = need > b->icap * 2 ? need : b->icap * 2;
            b->in = realloc(b->in, b->icap);
            if (b->in == NULL)
                lg_die("out of memory");
        }
        ssize_t n = read(b->fd, b->in + b->ilen, b->icap - b->ilen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "read: %s",
                     n < 0 ? (errno == EAGAIN ? "timed out" : strerror(errno))
                           : "connection closed by server");
            return -1;
        }
        b->ilen += (size_t)n;
    }
    return 0;
}

/* The next reply line without its CRLF, NUL-terminated in the buffer;
   valid until the next read. */
static char *
bs_line(struct lg_bs *b, char *err, size_t errlen)
{
    size_t scanned = 0;
    for (;;) {
        char *start = b->in + b->ipos;
        size_t avail = b->ilen - b->ipos;
        for (size_t i = scanned ? scanned - 1 : 0; i + 1 < avail; i++) {
            if (start[i] == '\r' && start[i + 1] == '\n') {
                start[i] = '\0';
                b->ipos += i + 2;
                return start;
            }
        }
        scanned = avail;
        if (avail > 65536) {
            snprintf(err, errlen, "reply line too long");
            return NULL;
        }
        if (bs_fill(b, avail + 1, err, errlen) != 0)
            return NULL;
    }
}

/* n body bytes and their CRLF; the body is NUL-terminated in place. */
static char *
bs_body(struct lg_bs *b, size_t n, char *err, size_t errlen)
{
    if (bs_fill(b, n + 2, err, errlen) != 0)
        return NULL;
    char *p = b->in + b->ipos;
    if (p[n] != '\r' || p[n + 1] != '\n') {
        snprintf(err, errlen, "body of %zu bytes not followed by CRLF", n);
        return NULL;
    }
    p[n] = '\0';
    b->ipos += n + 2;
    return p;
}

/* Send one command line and check the reply starts with want. */
static int
bs_simple(struct lg_bs *b, const char *cmd, const char *want, char *err,
          size_t errlen)
{
    bs_append(b, "%s\r\n", cmd);
    if (bs_flush(b, err, errlen) != 0)
        return -1;
    char *line = bs_line(b, err, errlen);
    if (line == NULL)
        return -1;
    if (strncmp(line, want, strlen(want)) != 0) {
        snprintf(err, errlen, "%s: unexpected reply '%s'", cmd, line);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Connections: one per thread, the three protocols behind one face     */

struct lg_conn {
    enum lg_target t;
    redisContext *rc;
    struct lg_bs bs;
    struct dc_client *dc; /* --proto binary */
};

static int
conn_open(struct lg_conn *c, const struct lg_run *r, bool picker, bool producer,
          char *err, size_t errlen)
{
    const struct lg_opts *o = &r->o;
    memset(c, 0, sizeof(*c));
    c->t = o->target;
    c->bs.fd = -1;
    if (c->t == LG_BEANSTALKD) {
        if (bs_connect(&c->bs, o->host, o->port, err, errlen) != 0)
            return -1;
        char cmd[96];
        if (producer) {
            snprintf(cmd, sizeof(cmd), "use %s", r->tube);
            if (bs_simple(&c->bs, cmd, "USING ", err, errlen) != 0)
                return -1;
        }
        if (picker) {
            snprintf(cmd, sizeof(cmd), "watch %s", r->tube);
            if (bs_simple(&c->bs, cmd, "WATCHING ", err, errlen) != 0 ||
                bs_simple(&c->bs, "ignore default", "WATCHING ", err, errlen) !=
                    0)
                return -1;
        }
        return 0;
    }
    int64_t io_ms = LG_IO_TIMEOUT_MS + o->block_ms;
    if (o->proto == LG_BINARY) {
        c->dc = dc_connect(o->host, o->port, err, errlen);
        if (c->dc == NULL)
            return -1;
        int one = 1;
        if (setsockopt(dc_fd(c->dc), IPPROTO_TCP, TCP_NODELAY, &one,
                       sizeof(one)) != 0 ||
            dc_set_timeout(c->dc, (int)io_ms) != 0) {
            snprintf(err, errlen, "set options: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    struct timeval ctv = {.tv_sec = 5};
    c->rc = redisConnectWithTimeout(o->host, o->port, ctv);
    if (c->rc == NULL) {
        snprintf(err, errlen, "connect %s:%d: out of memory", o->host, o->port);
        return -1;
    }
    if (c->rc->err) {
        snprintf(err, errlen, "connect %s:%d: %s", o->host, o->port,
                 c->rc->errstr);
        return -1;
    }
    struct timeval tv = {.tv_sec = io_ms / 1000,
                         .tv_usec = (io_ms % 1000) * 1000};
    if (redisSetTimeout(c->rc, tv) != REDIS_OK) {
        snprintf(err, errlen, "set timeout: %s", c->rc->errstr);
        return -1;
    }
    return 0;
}

/* Bytes this connection sent (and the peer acknowledged) and received,
   from the kernel; false when it cannot say. */
static bool
conn_wire_bytes(const struct lg_conn *c, uint64_t *sent, uint64_t *recvd)
{
    int fd = c->dc != NULL   ? dc_fd(c->dc)
             : c->rc != NULL ? c->rc->fd
                             : c->bs.fd;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) +
                  sizeof(ti.tcpi_bytes_received))
        return false;
    *sent = ti.tcpi_bytes_acked;
    *recvd = ti.tcpi_bytes_received;
    return true;
}

static void
conn_close(struct lg_conn *c)
{
    if (c->dc != NULL)
        dc_close(c->dc);
    c->dc = NULL;
    if (c->rc != NULL)
        redisFree(c->rc);
    c->rc = NULL;
    if (c->t == LG_BEANSTALKD)
        bs_close(&c->bs);
}

static enum lg_res
conn_ioerr(struct lg_conn *c, char *err, size_t errlen)
{
    if (c->dc != NULL) {
        snprintf(err, errlen, "%s", dc_errstr(c->dc));
        return LG_IOERR;
    }
    snprintf(err, errlen, "%s",
             c->rc->err ? c->rc->errstr : "no reply (out of memory?)");
    return LG_IOERR;
}

/* Queue the push of order k (class cls, deadline in wall ms). */
static void
push_append(struct lg_conn *c, const struct lg_run *r, uint64_t k, int cls,
            int64_t deadline)
{
    char id[LG_MEMBER_MAX + 1], payload[LG_PAYLOAD_MAX + 1];
    int idlen = snprintf(id, LG_ID_MAX + 1, "%s%" PRIu64, r->prefix, k);
    size_t plen = r->o.payload;
    /* Redis's member and beanstalkd's body: "id payload". */
    size_t mlen = (size_t)idlen;
    if (plen > 0) {
        run_payload(r, k, payload);
        if (c->t != LG_DISPATCHD) {
            id[idlen] = ' ';
            memcpy(id + idlen + 1, payload, plen + 1);
            mlen += 1 + plen;
        }
    }
    if (c->t == LG_BEANSTALKD) {
        uint64_t minutes = (uint64_t)(deadline / 60000);
        uint64_t mask = (UINT64_C(1) << 30) - 1;
        uint32_t pri =
            ((uint32_t)cls << 30) | (uint32_t)(minutes > mask ? mask : minutes);
        bs_append(&c->bs, "put %" PRIu32 " 0 %d %zu\r\n%s\r\n", pri,
                  r->o.lease_s, mlen, id);
        return;
    }
    const char *argv[24];
    size_t argl[24];
    int n = 0;
    char num[32], cust[32], asn[LG_ID_MAX + 8], ta[48];
    if (c->dc != NULL) {
        snprintf(cust, sizeof(cust), "C%03" PRIu64, k % 500);
        snprintf(asn, sizeof(asn), "ASN-%.64s", id);
        snprintf(ta, sizeof(ta), "TA-%" PRIu64, k % 17);
        const struct dc_kv asn_attrs[] = {
            {"asn_number", asn}, {"tech_agreement", ta}, {"payload", payload}};
        const struct dc_kv *attrs = asn_attrs;
        size_t nattrs = cls == 0 ? 2 : 0;
        if (plen > 0) {
            if (nattrs == 0)
                attrs = &asn_attrs[2];
            nattrs++;
        }
        struct dc_push_args a = {.id = id,
                                 .cls = cls, /* lg_class_names = wire */
                                 .approved = true,
                                 .deadline = deadline,
                                 .warehouse = r->warehouse,
                                 .customer = cust,
                                 .nattrs = nattrs,
                                 .attrs = attrs};
        if (dc_q_push(c->dc, &a) == 0)
            lg_die("dc_q_push %s: cannot encode", id);
        return;
    }
#define ARG(s) (argv[n] = (s), argl[n] = strlen(argv[n]), n++)
    if (c->t == LG_REDIS) {
        snprintf(num, sizeof(num), "%" PRId64,
                 (int64_t)cls * INT64_C(10000000000000) + deadline);
        ARG("ZADD");
        ARG(r->qkey);
        ARG(num);
        ARG(id);
    } else {
        snprintf(num, sizeof(num), "%" PRId64, deadline);
        snprintf(cust, sizeof(cust), "C%03" PRIu64, k % 500);
        ARG("PUSH");
        ARG(id);
        ARG(lg_class_names[cls]);
        ARG("DEADLINE");
        ARG(num);
        ARG("WAREHOUSE");
        ARG(r->warehouse);
        ARG("CUSTOMER");
        ARG(cust);
        if (cls == 0) {
            snprintf(asn, sizeof(asn), "ASN-%.64s", id);
            snprintf(ta, sizeof(ta), "TA-%" PRIu64, k % 17);
            ARG("ATTR");
            ARG("asn_number");
            ARG(asn);
            ARG("ATTR");
            ARG("tech_agreement");
            ARG(ta);
        }
        if (plen > 0) {
            ARG("ATTR");
            ARG("payload");
            ARG(payload);
        }
        ARG("APPROVED");
    }
#undef ARG
    if (redisAppendCommandArgv(c->rc, n, argv, argl) != REDIS_OK)
        lg_die("redisAppendCommandArgv: out of memory");
}

/* Send what push_append queued (hiredis sends on the first read). */
static int
conn_flush(struct lg_conn *c, char *err, size_t errlen)
{
    if (c->t == LG_BEANSTALKD)
        return bs_flush(&c->bs, err, errlen);
    if (c->dc != NULL && dc_send(c->dc) != 0) {
        snprintf(err, errlen, "%s", dc_errstr(c->dc));
        return -1;
    }
    return 0;
}

/* The outcome of a binary reply (the RESP paths below, in one place):
   errors fill err with "WORD message". */
static enum lg_res
bin_res(struct lg_conn *c, int rc, const struct dc_reply *rep, char *err,
        size_t errlen)
{
    if (rc != 0)
        return conn_ioerr(c, err, errlen);
    if (!dc_is_error(rep))
        return rep->status == WIRE_ST_ALREADY ? LG_ALREADY
               : rep->status == WIRE_ST_NIL   ? LG_EMPTY
                                              : LG_GOT;
    snprintf(err, errlen, "%s %s", rep->word, rep->msg);
    return rep->status == WIRE_ST_NOTFOUND ? LG_NOTFOUND : LG_SRVERR;
}

static enum lg_res
push_reply(struct lg_conn *c, char *err, size_t errlen)
{
    if (c->t == LG_BEANSTALKD) {
        char *line = bs_line(&c->bs, err, errlen);
        if (line == NULL)
            return LG_IOERR;
        if (strncmp(line, "INSERTED ", 9) == 0)
            return LG_GOT;
        snprintf(err, errlen, "put: %s", line);
        return LG_SRVERR;
    }
    if (c->dc != NULL) {
        struct dc_reply br;
        enum lg_res res = bin_res(c, dc_recv(c->dc, &br), &br, err, errlen);
        if (res != LG_IOERR) {
            /* A repeat is +OK over RESP: the same acknowledgement. */
            if (res == LG_ALREADY)
                res = LG_GOT;
            else if (res != LG_GOT && res != LG_SRVERR)
                res = LG_SRVERR;
            if (res == LG_SRVERR && !dc_is_error(&br))
                snprintf(err, errlen, "push: unexpected status %s",
                         wire_status_name(br.status));
            dc_reply_free(&br);
        }
        return res;
    }
    redisReply *rep;
    if (redisGetReply(c->rc, (void **)&rep) != REDIS_OK || rep == NULL)
        return conn_ioerr(c, err, errlen);
    enum lg_res res = LG_GOT;
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s", rep->str);
        res = LG_SRVERR;
    } else if (c->t == LG_REDIS
                   ? rep->type != REDIS_REPLY_INTEGER || rep->integer != 1
                   : rep->type != REDIS_REPLY_STATUS ||
                         strcmp(rep->str, "OK") != 0) {
        snprintf(err, errlen, "push: unexpected reply (type %d)", rep->type);
        res = LG_SRVERR;
    }
    freeReplyObject(rep);
    return res;
}

static void
copy_id(char *id, size_t idcap, const char *s, size_t len)
{
    if (len >= idcap)
        len = idcap - 1;
    memcpy(id, s, len);
    id[len] = '\0';
}

/* What a NEXT handed out. */
struct lg_pick {
    char id[LG_ID_MAX + 1];
    char member[LG_MEMBER_MAX + 1]; /* redis lease: the whole member */
    size_t mlen;
    uint64_t job;   /* beanstalkd */
    uint64_t polls; /* redis lease: empty pops before this one */
};

/* A Redis member or beanstalkd body: the id is up to its first space. */
static void
pick_member(struct lg_pick *p, const char *s, size_t len)
{
    copy_id(p->id, sizeof(p->id), s, member_id_len(s, len));
    if (len > LG_MEMBER_MAX)
        len = LG_MEMBER_MAX;
    memcpy(p->member, s, len);
    p->member[len] = '\0';
    p->mlen = len;
}

/* --redis-mode lease: EVALSHA the pop-and-lease script, polling every
   --poll-ms while the queue is empty, for --block-ms at most. */
static enum lg_res
next_lease(struct lg_conn *c, const struct lg_run *r, struct lg_pick *p,
           char *err, size_t errlen)
{
    const struct lg_opts *o = &r->o;
    int64_t until = lg_mono_ns() + (int64_t)o->block_ms * NS_PER_MS;
    for (;;) {
        char expiry[32];
        snprintf(expiry, sizeof(expiry), "%" PRId64,
                 lg_wall_ms() + (int64_t)o->lease_s * 1000);
        const char *argv[] = {"EVALSHA", r->sha,      "2",
                              r->qkey,   r->leasekey, expiry};
        size_t argl[6];
        for (int i = 0; i < 6; i++)
            argl[i] = strlen(argv[i]);
        redisReply *rep = redisCommandArgv(c->rc, 6, argv, argl);
        if (rep == NULL)
            return conn_ioerr(c, err, errlen);
        enum lg_res res = LG_SRVERR;
        if (rep->type == REDIS_REPLY_STRING) {
            pick_member(p, rep->str, rep->len);
            res = LG_GOT;
        } else if (rep->type == REDIS_REPLY_NIL) {
            res = LG_EMPTY;
        } else if (rep->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "EVALSHA: %s", rep->str);
        } else {
            snprintf(err, errlen, "EVALSHA: unexpected reply type %d",
                     rep->type);
        }
        freeReplyObject(rep);
        if (res != LG_EMPTY)
            return res;
        int64_t now = lg_mono_ns();
        if (now >= until)
            return LG_EMPTY;
        p->polls++;
        int64_t nap = (int64_t)(o->poll_ms * NS_PER_MS);
        lg_sleep_ns(now + nap > until ? until - now : nap);
    }
}

/* Blocking pop of the next order: its id (and beanstalkd's job id, and
   Redis's whole member). */
static enum lg_res
next_call(struct lg_conn *c, const struct lg_run *r, int picker,
          struct lg_pick *p, char *err, size_t errlen)
{
    const struct lg_opts *o = &r->o;
    if (c->t == LG_REDIS && o->redis_mode == LG_LEASE)
        return next_lease(c, r, p, err, errlen);
    if (c->t == LG_BEANSTALKD) {
        int secs = (o->block_ms + 999) / 1000;
        bs_append(&c->bs, "reserve-with-timeout %d\r\n", secs);
        if (bs_flush(&c->bs, err, errlen) != 0)
            return LG_IOERR;
        char *line = bs_line(&c->bs, err, errlen);
        if (line == NULL)
            return LG_IOERR;
        if (strcmp(line, "TIMED_OUT") == 0 ||
            strcmp(line, "DEADLINE_SOON") == 0)
            return LG_EMPTY;
        unsigned long long jid;
        size_t bytes;
        if (sscanf(line, "RESERVED %llu %zu", &jid, &bytes) != 2) {
            snprintf(err, errlen, "reserve: %s", line);
            return LG_SRVERR;
        }
        char *body = bs_body(&c->bs, bytes, err, errlen);
        if (body == NULL)
            return LG_IOERR;
        pick_member(p, body, bytes);
        p->job = jid;
        return LG_GOT;
    }
    if (c->dc != NULL) {
        char name[32];
        snprintf(name, sizeof(name), "lg-picker-%d", picker);
        struct dc_next_args a = {r->warehouse, name, (int64_t)o->lease_s * 1000,
                                 o->block_ms};
        struct dc_reply br;
        enum lg_res res = bin_res(c, dc_next(c->dc, &a, &br), &br, err, errlen);
        if (res == LG_GOT) {
            const struct dc_field *f = dc_field_get(dc_order(&br), WIRE_TAG_ID);
            if (f != NULL) {
                copy_id(p->id, sizeof(p->id), f->s, f->len);
            } else {
                snprintf(err, errlen, "NEXT: reply has no id field");
                res = LG_SRVERR;
            }
        } else if (res == LG_ALREADY) {
            snprintf(err, errlen, "NEXT: unexpected status ALREADY");
            res = LG_SRVERR;
        }
        if (res != LG_IOERR)
            dc_reply_free(&br);
        return res;
    }
    redisReply *rep;
    if (c->t == LG_REDIS) {
        char tmo[32];
        snprintf(tmo, sizeof(tmo), "%.3f", o->block_ms / 1000.0);
        const char *argv[] = {"BZPOPMIN", r->qkey, tmo};
        size_t argl[] = {8, strlen(r->qkey), strlen(tmo)};
        rep = redisCommandArgv(c->rc, 3, argv, argl);
    } else {
        char lease[16], block[16], name[32];
        snprintf(lease, sizeof(lease), "%d", o->lease_s);
        snprintf(block, sizeof(block), "%d", o->block_ms);
        snprintf(name, sizeof(name), "lg-picker-%d", picker);
        const char *argv[] = {"NEXT",  r->warehouse, "LEASE",  lease,
                              "BLOCK", block,        "PICKER", name};
        size_t argl[8];
        for (int i = 0; i < 8; i++)
            argl[i] = strlen(argv[i]);
        rep = redisCommandArgv(c->rc, 8, argv, argl);
    }
    if (rep == NULL)
        return conn_ioerr(c, err, errlen);
    enum lg_res res = LG_SRVERR;
    if (rep->type == REDIS_REPLY_NIL) {
        res = LG_EMPTY;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s", rep->str);
        res = strncmp(rep->str, "NOTFOUND", 8) == 0 ? LG_NOTFOUND : LG_SRVERR;
    } else if (rep->type == REDIS_REPLY_ARRAY && c->t == LG_REDIS) {
        if (rep->elements == 3 && rep->element[1]->type == REDIS_REPLY_STRING) {
            pick_member(p, rep->element[1]->str, rep->element[1]->len);
            res = LG_GOT;
        } else {
            snprintf(err, errlen, "BZPOPMIN: unexpected reply shape");
        }
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        /* An empty array is "nothing" too, as RESP3 null maps to it in
           some servers' RESP2 fallbacks. */
        res = rep->elements == 0 ? LG_EMPTY : LG_SRVERR;
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
            redisReply *f = rep->element[i], *v = rep->element[i + 1];
            if (f->type == REDIS_REPLY_STRING && strcmp(f->str, "id") == 0 &&
                v->type == REDIS_REPLY_STRING) {
                copy_id(p->id, sizeof(p->id), v->str, v->len);
                res = LG_GOT;
                break;
            }
        }
        if (res == LG_SRVERR)
            snprintf(err, errlen, "NEXT: reply has no id field");
    } else {
        snprintf(err, errlen, "NEXT: unexpected reply type %d", rep->type);
    }
    freeReplyObject(rep);
    return res;
}

/* Confirm the outbound (redis: SADD shipped, or with a lease ZREM leased;
   beanstalkd: delete). */
static enum lg_res
ship_call(struct lg_conn *c, const struct lg_run *r, int picker,
          const struct lg_pick *p, char *err, size_t errlen)
{
    const char *id = p->id;
    uint64_t job = p->job;
    if (c->t == LG_BEANSTALKD) {
        bs_append(&c->bs, "delete %" PRIu64 "\r\n", job);
        if (bs_flush(&c->bs, err, errlen) != 0)
            return LG_IOERR;
        char *line = bs_line(&c->bs, err, errlen);
        if (line == NULL)
            return LG_IOERR;
        if (strcmp(line, "DELETED") == 0)
            return LG_GOT;
        if (strcmp(line, "NOT_FOUND") == 0)
            return LG_ALREADY;
        snprintf(err, errlen, "delete: %s", line);
        return LG_SRVERR;
    }
    if (c->dc != NULL) {
        char name[32];
        snprintf(name, sizeof(name), "lg-picker-%d", picker);
        struct dc_outbound_args a = {id, name, 0, NULL, NULL, 0};
        struct dc_reply br;
        enum lg_res res =
            bin_res(c, dc_outbound(c->dc, &a, &br), &br, err, errlen);
        if (res == LG_EMPTY || res == LG_NOTFOUND) {
            if (res == LG_EMPTY)
                snprintf(err, errlen, "outbound: unexpected status NIL");
            res = LG_SRVERR;
        }
        if (res != LG_IOERR)
            dc_reply_free(&br);
        return res;
    }
    redisReply *rep;
    if (c->t == LG_REDIS && r->o.redis_mode == LG_LEASE) {
        const char *argv[] = {"ZREM", r->leasekey, p->member};
        size_t argl[] = {4, strlen(r->leasekey), p->mlen};
        rep = redisCommandArgv(c->rc, 3, argv, argl);
    } else if (c->t == LG_REDIS) {
        const char *argv[] = {"SADD", r->shipkey, id};
        size_t argl[] = {4, strlen(r->shipkey), strlen(id)};
        rep = redisCommandArgv(c->rc, 3, argv, argl);
    } else {
        char name[32];
        snprintf(name, sizeof(name), "lg-picker-%d", picker);
        const char *argv[] = {"OUTBOUND", id, "OPERATOR", name};
        size_t argl[] = {8, strlen(id), 8, strlen(name)};
        rep = redisCommandArgv(c->rc, 4, argv, argl);
    }
    if (rep == NULL)
        return conn_ioerr(c, err, errlen);
    enum lg_res res = LG_SRVERR;
    if (rep->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s", rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER)
        res = rep->integer == 1 ? LG_GOT : LG_ALREADY;
    else if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0)
        res = LG_GOT;
    else if (rep->type == REDIS_REPLY_STATUS &&
             strcmp(rep->str, "ALREADY") == 0)
        res = LG_ALREADY;
    else
        snprintf(err, errlen, "outbound: unexpected reply type %d", rep->type);
    freeReplyObject(rep);
    return res;
}

/* The first number after a key containing "expir" in a STATS reply: a
   flat field/value array, or a "key:value" text. */
static int64_t
stats_find_expiries(const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_ARRAY) {
                int64_t v = stats_find_expiries(e);
                if (v >= 0)
                    return v;
            }
            if ((e->type != REDIS_REPLY_STRING &&
                 e->type != REDIS_REPLY_STATUS) ||
                strstr(e->str, "expir") == NULL || i + 1 >= rep->elements)
                continue;
            const redisReply *v = rep->element[i + 1];
            if (v->type == REDIS_REPLY_INTEGER)
                return v->integer;
            if (v->type == REDIS_REPLY_STRING)
                return strtoll(v->str, NULL, 10);
        }
        return -1;
    }
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) {
        const char *p = strstr(rep->str, "expir");
        if (p == NULL)
            return -1;
        p += strcspn(p, ":= \t");
        p += strspn(p, ":= \t");
        return *p >= '0' && *p <= '9' ? strtoll(p, NULL, 10) : -1;
    }
    return -1;
}

/* Lease expiries (TTR timeouts) counted by the server since it started,
   or -1 where the server has no leases or does not say. */
static int64_t
conn_expiries(struct lg_conn *c)
{
    char err[256];
    if (c->t == LG_REDIS)
        return -1;
    if (c->t == LG_BEANSTALKD) {
        bs_append(&c->bs, "stats\r\n");
        if (bs_flush(&c->bs, err, sizeof(err)) != 0)
            return -1;
        char *line = bs_line(&c->bs, err, sizeof(err));
        size_t bytes;
        if (line == NULL || sscanf(line, "OK %zu", &bytes) != 1)
            return -1;
        char *body = bs_body(&c->bs, bytes, err, sizeof(err));
        const char *p = body == NULL ? NULL : strstr(body, "job-timeouts: ");
        return p == NULL ? -1 : strtoll(p + 14, NULL, 10);
    }
    if (c->dc != NULL) {
        struct dc_reply br;
        int64_t v = -1;
        if (dc_stats(c->dc, "", &br) != 0)
            return -1;
        const struct dc_field *f =
            br.nrecs ? dc_field_find(&br.recs[0], "lease_expiries") : NULL;
        if (f != NULL)
            v = f->i;
        dc_reply_free(&br);
        return v;
    }
    redisReply *rep = redisCommand(c->rc, "STATS");
    if (rep == NULL)
        return -1;
    int64_t v = stats_find_expiries(rep);
    freeReplyObject(rep);
    return v;
}

/* ------------------------------------------------------------------ */
/* Threads                                                              */

struct lg_worker {
    struct lg_run *run;
    int idx;
    bool picker;
    pthread_t th;
    struct lg_conn conn;
    uint64_t rng;
    struct lg_hist hist[CMD_COUNT];
    uint64_t errors[CMD_COUNT];
    int64_t first_ns[CMD_COUNT], last_ns[CMD_COUNT];
    uint64_t empty, notfound, already, foreign, dup_picks, double_holds;
    uint64_t polls;      /* redis lease: empty pops retried */
    struct lg_pick pick; /* pickers: the order in hand */
    char double_hold_id[LG_ID_MAX + 1];
};

static void
worker_time(struct lg_worker *w, enum lg_cmd cmd, int64_t sent, int64_t got)
{
    hist_add(&w->hist[cmd], got - sent);
    if (w->first_ns[cmd] == 0 || sent < w->first_ns[cmd])
        w->first_ns[cmd] = sent;
    if (got > w->last_ns[cmd])
        w->last_ns[cmd] = got;
}

/* Read the replies to a batch of pushes sent at t0. */
static int
producer_flush(struct lg_worker *w, const uint64_t *batch, size_t n)
{
    struct lg_run *r = w->run;
    char err[256];
    int64_t t0 = lg_mono_ns();
    if (conn_flush(&w->conn, err, sizeof(err)) != 0) {
        run_fail(r, true, "producer %d: %s", w->idx, err);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        enum lg_res res = push_reply(&w->conn, err, sizeof(err));
        int64_t t = lg_mono_ns();
        struct lg_order *o = run_order(r, batch[i]);
        if (res == LG_GOT) {
            o->ack_ns = t;
            atomic_store(&o->state, OS_ACKED);
            atomic_fetch_add_explicit(&r->acked, 1, memory_order_relaxed);
            worker_time(w, CMD_PUSH, t0, t);
        } else if (res == LG_SRVERR) {
            atomic_store(&o->state, OS_FAILED);
            w->errors[CMD_PUSH]++;
            run_fail(r, false, "push %s%" PRIu64 ": %s", r->prefix, batch[i],
                     err);
        } else {
            run_fail(r, true, "producer %d: %s", w->idx, err);
            return -1;
        }
    }
    return 0;
}

static void *
producer_main(void *arg)
{
    struct lg_worker *w = arg;
    struct lg_run *r = w->run;
    uint64_t batch[LG_PIPELINE_MAX];
    size_t nb = 0;
    for (;;) {
        if (atomic_load(&r->stop_producers))
            break;
        uint64_t k = atomic_fetch_add(&r->next_k, 1);
        if (k >= r->limit)
            break;
        int64_t due = run_schedule(r, k);
        if (due > lg_mono_ns()) {
            if (nb > 0 && producer_flush(w, batch, nb) != 0)
                goto out;
            nb = 0;
            lg_sleep_until(due);
        }
        if (r->end_ns != 0 && lg_mono_ns() >= r->end_ns)
            break;
        struct lg_order *o = run_order_make(r, k);
        if (o == NULL) {
            run_fail(r, true, "more than %" PRIu64 " orders",
                     (uint64_t)LG_CHUNKS_MAX * LG_CHUNK);
            goto out;
        }
        int cls;
        double jit;
        run_order_shape(r, k, &cls, &jit);
        double window_ms = (double)lg_window_ms[cls] * (1 + jit);
        o->cls = (uint8_t)cls;
        o->sent_ns = lg_mono_ns();
        o->due_ns =
            o->sent_ns + (int64_t)(window_ms * NS_PER_MS / r->o.time_factor);
        atomic_store(&o->state, OS_SENT);
        push_append(&w->conn, r, k, cls, lg_wall_ms() + (int64_t)window_ms);
        atomic_fetch_add_explicit(&r->sent, 1, memory_order_relaxed);
        batch[nb++] = k;
        if ((int)nb == r->o.pipeline) {
            if (producer_flush(w, batch, nb) != 0)
                goto out;
            nb = 0;
        }
    }
    if (nb > 0)
        producer_flush(w, batch, nb);
out:
    atomic_fetch_sub(&r->producers_left, 1);
    return NULL;
}

static int64_t
picker_pick_ns(struct lg_worker *w)
{
    const struct lg_opts *o = &w->run->o;
    double ms = o->pick_lo_ms;
    if (o->pick_hi_ms > o->pick_lo_ms)
        ms += (o->pick_hi_ms - o->pick_lo_ms) * lg_unit(lg_rand(&w->rng));
    return (int64_t)(ms * NS_PER_MS);
}

static void *
picker_main(void *arg)
{
    struct lg_worker *w = arg;
    struct lg_run *r = w->run;
    struct lg_pick *p = &w->pick;
    const char *id = p->id;
    char err[256];
    bool pop_only = r->o.mode == LG_POP_ONLY;
    while (!atomic_load(&r->stop_pickers)) {
        /* Pop only: exactly --orders NEXTs that got something. */
        if (pop_only && atomic_fetch_add(&r->claims, 1) >= r->o.orders) {
            atomic_fetch_sub(&r->claims, 1);
            break;
        }
        p->job = 0;
        p->mlen = 0;
        p->polls = 0;
        int64_t s = lg_mono_ns();
        enum lg_res res = next_call(&w->conn, r, w->idx, p, err, sizeof(err));
        int64_t t = lg_mono_ns();
        w->polls += p->polls;
        if (res != LG_GOT && pop_only)
            atomic_fetch_sub(&r->claims, 1);
        if (res == LG_EMPTY) {
            w->empty++;
            continue;
        }
        if (res == LG_NOTFOUND) {
            /* The run's warehouse exists from its first push on. */
            w->notfound++;
            lg_sleep_ns(5 * NS_PER_MS);
            continue;
        }
        if (res != LG_GOT) {
            w->errors[CMD_NEXT]++;
            run_fail(r, true, "picker %d: %s", w->idx, err);
            break;
        }
        worker_time(w, CMD_NEXT, s, t);

        int64_t k = run_parse_id(r, id, strlen(id));
        struct lg_order *o = NULL;
        if (k >= 0 && r->o.mode == LG_POP_ONLY) {
            /* Pushed by an earlier run: its slot is made on first sight. */
            o = run_order_make(r, (uint64_t)k);
            uint_fast64_t m = atomic_load(&r->max_k);
            while (
                o != NULL && (uint64_t)k + 1 > m &&
                !atomic_compare_exchange_weak(&r->max_k, &m, (uint64_t)k + 1))
                ;
        } else if (k >= 0) {
            o = run_order(r, (uint64_t)k);
        }
        bool held = false;
        if (o == NULL) {
            w->foreign++;
        } else {
            if (atomic_fetch_add(&o->picks, 1) == 0) {
                o->next_ns = s;
                o->got_ns = t;
            } else {
                w->dup_picks++;
            }
            int expect = 0;
            held =
                atomic_compare_exchange_strong(&o->holder, &expect, w->idx + 1);
            if (!held && w->double_holds++ == 0)
                snprintf(w->double_hold_id, sizeof(w->double_hold_id), "%s",
                         id);
        }

        lg_sleep_ns(picker_pick_ns(w));

        s = lg_mono_ns();
        res = ship_call(&w->conn, r, w->idx, p, err, sizeof(err));
        t = lg_mono_ns();
        if (res == LG_GOT || res == LG_ALREADY) {
            worker_time(w, CMD_SHIP, s, t);
            if (res == LG_ALREADY)
                w->already++;
            if (res == LG_GOT && o != NULL &&
                atomic_fetch_add(&o->ships, 1) == 0) {
                o->ship_ns = t;
                atomic_fetch_add_explicit(&r->settled, 1, memory_order_relaxed);
                atomic_store_explicit(&r->last_ship_ns, t,
                                      memory_order_relaxed);
            }
        } else {
            w->errors[CMD_SHIP]++;
            run_fail(r, res == LG_IOERR, "outbound %s: %s", id, err);
        }
        if (held) {
            int me = w->idx + 1;
            atomic_compare_exchange_strong(&o->holder, &me, 0);
        }
        if (res == LG_IOERR)
            break;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* After the run: invariants and the report                             */

struct lg_pref {
    int64_t ack;  /* push acknowledged */
    int64_t next; /* first NEXT that got it was sent; INT64_MAX never */
    uint64_t k;
};

static int
pref_cmp(const void *a, const void *b)
{
    const struct lg_pref *x = a, *y = b;
    return (x->ack > y->ack) - (x->ack < y->ack);
}

struct lg_result {
    double wall_s;
    uint64_t sent, acked, push_failed, shipped, missing, dup_ships;
    uint64_t picked_unacked, dup_picks, double_holds, foreign;
    uint64_t picks_checked, violations;
    char violation[256];
    char double_hold_id[LG_ID_MAX + 1];
    uint64_t by_class[LG_NCLASS], shipped_class[LG_NCLASS], missed[LG_NCLASS];
    struct lg_hist *ship_hist; /* [LG_NCLASS], push -> shipped */
    struct lg_hist cmd[CMD_COUNT];
    uint64_t cmd_err[CMD_COUNT];
    double cmd_rate[CMD_COUNT];
    uint64_t empty, notfound, already;
    int64_t first_push_ns, last_ship_ns;
    double e2e_rate;
    int64_t expiries; /* -1 unknown */
    bool wire_known;  /* every worker connection reported its bytes */
    uint64_t wire_sent, wire_recv;
    bool drained_out, interrupted, fatal;
    char fail_msg[256];
    bool ok;
    /* The modes of the top of the file. */
    bool ship_skipped; /* push only: "shipped exactly once" not checked */
    uint64_t polls;    /* redis lease: empty pops retried */
    int64_t last_ack_ns;
    double push_rate;           /* acked / (last ack - first push) */
    const char *tp_what;        /* what "throughput" counts */
    uint64_t tp_orders;         /* ... how many */
    double tp_seconds, tp_rate; /* ... in how long, and per second */
};

/* Invariant 3 (see the top of the file). */
static void
check_urgency(struct lg_run *r, uint64_t n, struct lg_result *res)
{
    struct lg_pref *pref[LG_NCLASS - 1] = {NULL};
    size_t npref[LG_NCLASS - 1] = {0};
    for (int c = 0; c < LG_NCLASS - 1; c++)
        if (res->by_class[c] > 0)
            pref[c] = lg_calloc(res->by_class[c], sizeof(struct lg_pref));
    for (uint64_t k = 0; k < n; k++) {
        struct lg_order *o = run_order(r, k);
        if (o == NULL || atomic_load(&o->state) != OS_ACKED ||
            o->cls >= LG_NCLASS - 1)
            continue;
        struct lg_pref *p = &pref[o->cls][npref[o->cls]++];
        p->ack = o->ack_ns;
        p->next = atomic_load(&o->picks) > 0 ? o->next_ns : INT64_MAX;
        p->k = k;
    }
    /* Sorted by ack, then each entry keeps the latest pick-send time (and
       its order) of all entries up to it. */
    for (int c = 0; c < LG_NCLASS - 1; c++) {
        if (npref[c] == 0)
            continue;
        qsort(pref[c], npref[c], sizeof(struct lg_pref), pref_cmp);
        for (size_t i = 1; i < npref[c]; i++)
            if (pref[c][i - 1].next > pref[c][i].next) {
                pref[c][i].next = pref[c][i - 1].next;
                pref[c][i].k = pref[c][i - 1].k;
            }
    }
    for (uint64_t k = 0; k < n; k++) {
        struct lg_order *o = run_order(r, k);
        if (o == NULL || atomic_load(&o->picks) == 0)
            continue;
        res->picks_checked++;
        for (int c = 0; c < o->cls; c++) {
            size_t lo = 0, hi = npref[c]; /* first ack >= next_ns */
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (pref[c][mid].ack < o->next_ns)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == 0 || pref[c][lo - 1].next < o->got_ns)
                continue;
            if (res->violations++ == 0) {
                const struct lg_pref *x = &pref[c][lo - 1];
                struct lg_order *xo = run_order(r, x->k);
                snprintf(res->violation, sizeof(res->violation),
                         "%s%" PRIu64 " (%s) picked %.3f ms after %s%" PRIu64
                         " (%s) was acknowledged; that one %s",
                         r->prefix, k, lg_class_names[o->cls],
                         (double)(o->next_ns - xo->ack_ns) / 1e6, r->prefix,
                         x->k, lg_class_names[c],
                         x->next == INT64_MAX ? "was never picked"
                                              : "was picked later");
            }
            break;
        }
    }
    for (int c = 0; c < LG_NCLASS - 1; c++)
        free(pref[c]);
}

static void
analyse(struct lg_run *r, struct lg_worker *ws, int nw, struct lg_result *res)
{
    const struct lg_opts *op = &r->o;
    uint64_t n = atomic_load(&r->next_k);
    if (n > r->limit)
        n = r->limit;
    if (op->mode == LG_POP_ONLY) {
        /* Every order this run picked was pushed and acknowledged before
           it started (by the run of the same tag). */
        n = atomic_load(&r->max_k);
        for (uint64_t k = 0; k < n; k++) {
            struct lg_order *o = run_order(r, k);
            if (o == NULL || atomic_load(&o->picks) == 0)
                continue;
            int cls;
            double jit;
            run_order_shape(r, k, &cls, &jit);
            o->cls = (uint8_t)cls;
            o->sent_ns = o->ack_ns = r->start_ns - 1;
            o->due_ns = INT64_MAX;
            atomic_store(&o->state, OS_ACKED);
        }
    }
    res->ship_skipped = op->mode == LG_PUSH_ONLY;
    res->ship_hist = lg_calloc(LG_NCLASS, sizeof(struct lg_hist));
    res->first_push_ns = INT64_MAX;
    for (uint64_t k = 0; k < n; k++) {
        struct lg_order *o = run_order(r, k);
        int st = o == NULL ? OS_NONE : atomic_load(&o->state);
        if (st == OS_NONE)
            continue;
        res->sent++;
        if (o->sent_ns < res->first_push_ns)
            res->first_push_ns = o->sent_ns;
        unsigned ships = atomic_load(&o->ships);
        unsigned picks = atomic_load(&o->picks);
        if (st == OS_FAILED)
            res->push_failed++;
        if (st != OS_ACKED) {
            if (picks > 0)
                res->picked_unacked++;
            continue;
        }
        res->acked++;
        res->by_class[o->cls]++;
        if (o->ack_ns > res->last_ack_ns)
            res->last_ack_ns = o->ack_ns;
        if (ships == 0) {
            if (!res->ship_skipped)
                res->missing++;
            continue;
        }
        if (ships > 1)
            res->dup_ships++;
        res->shipped++;
        res->shipped_class[o->cls]++;
        if (o->ship_ns > o->due_ns)
            res->missed[o->cls]++;
        hist_add(&res->ship_hist[o->cls], o->ship_ns - o->sent_ns);
        if (o->ship_ns > res->last_ship_ns)
            res->last_ship_ns = o->ship_ns;
    }
    /* Pop only: orders it should have picked and never saw. */
    if (op->mode == LG_POP_ONLY && res->acked < op->orders)
        res->missing += op->orders - res->acked;
    check_urgency(r, n, res);

    int64_t first[CMD_COUNT], last[CMD_COUNT];
    for (int c = 0; c < CMD_COUNT; c++)
        first[c] = INT64_MAX, last[c] = 0;
    for (int i = 0; i < nw; i++) {
        struct lg_worker *w = &ws[i];
        for (int c = 0; c < CMD_COUNT; c++) {
            hist_merge(&res->cmd[c], &w->hist[c]);
            res->cmd_err[c] += w->errors[c];
            if (w->hist[c].n > 0 && w->first_ns[c] < first[c])
                first[c] = w->first_ns[c];
            if (w->last_ns[c] > last[c])
                last[c] = w->last_ns[c];
        }
        res->empty += w->empty;
        res->notfound += w->notfound;
        res->already += w->already;
        res->foreign += w->foreign;
        res->dup_picks += w->dup_picks;
        if (w->double_holds > 0 && res->double_holds == 0)
            snprintf(res->double_hold_id, sizeof(res->double_hold_id), "%s",
                     w->double_hold_id);
        res->double_holds += w->double_holds;
        res->polls += w->polls;
    }
    for (int c = 0; c < CMD_COUNT; c++)
        res->cmd_rate[c] = last[c] > first[c] ? (double)res->cmd[c].n * 1e9 /
                                                    (double)(last[c] - first[c])
                                              : 0;
    if (res->shipped > 0 && res->last_ship_ns > res->first_push_ns)
        res->e2e_rate = (double)res->shipped * 1e9 /
                        (double)(res->last_ship_ns - res->first_push_ns);
    if (res->acked > 0 && res->last_ack_ns > res->first_push_ns)
        res->push_rate = (double)res->acked * 1e9 /
                         (double)(res->last_ack_ns - res->first_push_ns);
    int64_t from = res->first_push_ns, to = res->last_ship_ns;
    res->tp_orders = res->shipped;
    switch (op->mode) {
    case LG_MIXED:
        res->tp_what = "orders pushed, leased and shipped: first push sent "
                       "to last outbound acknowledged";
        break;
    case LG_PUSH_ONLY:
        res->tp_what = "pushes acknowledged: first push sent to last "
                       "acknowledgement";
        res->tp_orders = res->acked;
        to = res->last_ack_ns;
        break;
    case LG_PREFILL:
        res->tp_what = "orders leased and shipped from a full queue: "
                       "pickers' start to last outbound acknowledged";
        from = r->drain_ns;
        break;
    case LG_POP_ONLY:
        res->tp_what = "queued orders leased and shipped: start to last "
                       "outbound acknowledged";
        from = r->start_ns;
        break;
    }
    if (res->tp_orders > 0 && to > from) {
        res->tp_seconds = (double)(to - from) / 1e9;
        res->tp_rate = (double)res->tp_orders / res->tp_seconds;
    }
    snprintf(res->fail_msg, sizeof(res->fail_msg), "%s", r->fail_msg);
    res->fatal = atomic_load(&r->fatal);
    res->ok = !res->fatal && !res->interrupted && res->push_failed == 0 &&
              res->missing == 0 && res->dup_ships == 0 &&
              res->picked_unacked == 0 && res->dup_picks == 0 &&
              res->double_holds == 0 && res->violations == 0 &&
              atomic_load(&r->errors) == 0 && res->acked > 0;
}

static double
us(uint64_t ns)
{
    return (double)ns / 1e3;
}

static void
json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* The row of lg_cmd_peer: the wire commands of this run. */
static int
peer_row(const struct lg_opts *o)
{
    return o->target == LG_REDIS && o->redis_mode == LG_LEASE ? LG_PEER_LEASE
                                                              : (int)o->target;
}

static const double lg_quantiles[] = {0.5, 0.9, 0.99, 0.999};
static const char *const lg_qnames[] = {"p50", "p90", "p99", "p99_9"};

static void
report_json(const struct lg_run *r, const struct lg_result *res,
            const char *command)
{
    const struct lg_opts *o = &r->o;
    printf("{\"target\":\"%s\",\"proto\":\"%s\",\"host\":",
           lg_target_names[o->target],
           o->proto == LG_BINARY ? "binary" : "resp");
    json_str(o->host);
    printf(",\"port\":%d,\"producers\":%d,\"pickers\":%d,\"pipeline\":%d,"
           "\"rate\":%g,\"pick_ms\":[%g,%g],\"seed\":%" PRIu64
           ",\"time_factor\":%g,\"surge\":%s,\"run\":\"%s\",\"command\":",
           o->port, o->producers, o->pickers, o->pipeline, o->rate,
           o->pick_lo_ms, o->pick_hi_ms, o->seed, o->time_factor,
           o->surge_days > 0 ? "true" : "false", r->tag);
    json_str(command);
    printf(",\"wall_s\":%.3f,\"commands\":{", res->wall_s);
    for (int c = 0; c < CMD_COUNT; c++) {
        const struct lg_hist *h = &res->cmd[c];
        printf("%s\"%s\":{\"op\":\"%s\",\"count\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"ops_per_s\":%.1f",
               c ? "," : "", lg_cmd_names[c], lg_cmd_peer[peer_row(o)][c], h->n,
               res->cmd_err[c], res->cmd_rate[c]);
        for (int q = 0; q < 4; q++)
            printf(",\"%s_us\":%.1f", lg_qnames[q],
                   us(hist_quantile(h, lg_quantiles[q])));
        printf(",\"max_us\":%.1f,\"mean_us\":%.1f}", us(h->max),
               h->n ? h->sum / (double)h->n / 1e3 : 0.0);
    }
    printf("},\"next_empty\":%" PRIu64 ",\"next_notfound\":%" PRIu64
           ",\"outbound_already\":%" PRIu64
           ",\"end_to_end\":{\"orders\":%" PRIu64
           ",\"seconds\":%.3f,\"orders_per_s\":%.1f},\"classes\":{",
           res->empty, res->notfound, res->already, res->shipped,
           res->shipped ? (double)(res->last_ship_ns - res->first_push_ns) / 1e9
                        : 0.0,
           res->e2e_rate);
    for (int c = 0; c < LG_NCLASS; c++) {
        const struct lg_hist *h = &res->ship_hist[c];
        printf("%s\"%s\":{\"pushed\":%" PRIu64 ",\"shipped\":%" PRIu64
               ",\"deadline_missed\":%" PRIu64
               ",\"ship_p50_ms\":%.3f,\"ship_p99_ms\":%.3f,"
               "\"ship_max_ms\":%.3f}",
               c ? "," : "", lg_class_names[c], res->by_class[c],
               res->shipped_class[c], res->missed[c],
               hist_quantile(h, 0.5) / 1e6, hist_quantile(h, 0.99) / 1e6,
               h->max / 1e6);
    }
    printf("},\"lease_expiries\":");
    if (res->expiries < 0)
        printf("null");
    else
        printf("%" PRId64, res->expiries);
    if (res->wire_known)
        printf(",\"wire\":{\"bytes_sent\":%" PRIu64
               ",\"bytes_received\":%" PRIu64 ",\"bytes_per_order\":%.1f}",
               res->wire_sent, res->wire_recv,
               res->shipped ? (double)(res->wire_sent + res->wire_recv) /
                                  (double)res->shipped
                            : 0.0);
    else
        printf(",\"wire\":null");
    printf(",\"invariants\":{\"pushed\":%" PRIu64 ",\"acknowledged\":%" PRIu64
           ",\"push_failed\":%" PRIu64 ",\"shipped\":%" PRIu64
           ",\"missing\":%" PRIu64 ",\"shipped_twice\":%" PRIu64
           ",\"picked_unacknowledged\":%" PRIu64 ",\"picked_twice\":%" PRIu64
           ",\"double_holds\":%" PRIu64 ",\"foreign\":%" PRIu64
           ",\"picks_checked\":%" PRIu64 ",\"urgency_violations\":%" PRIu64
           ",\"first_violation\":",
           res->sent, res->acked, res->push_failed, res->shipped, res->missing,
           res->dup_ships, res->picked_unacked, res->dup_picks,
           res->double_holds, res->foreign, res->picks_checked,
           res->violations);
    json_str(res->violation);
    printf(",\"drain_timed_out\":%s,\"interrupted\":%s,\"error\":",
           res->drained_out ? "true" : "false",
           res->interrupted ? "true" : "false");
    json_str(res->fail_msg);
    printf("}");
    if (o->extended) {
        printf(",\"mode\":\"%s\",\"payload\":%zu,\"redis_mode\":%s,"
               "\"shipped_once_checked\":%s,\"next_polls_empty\":%" PRIu64
               ",\"push_per_s\":%.1f,\"throughput\":{\"what\":",
               lg_mode_names[o->mode], o->payload,
               o->target != LG_REDIS       ? "null"
               : o->redis_mode == LG_LEASE ? "\"lease\""
                                           : "\"bzpopmin\"",
               res->ship_skipped ? "false" : "true", res->polls,
               res->push_rate);
        json_str(res->tp_what);
        printf(",\"orders\":%" PRIu64 ",\"seconds\":%.3f,\"per_s\":%.1f}",
               res->tp_orders, res->tp_seconds, res->tp_rate);
    }
    printf(",\"ok\":%s}\n", res->ok ? "true" : "false");
}

static void
report_table(const struct lg_run *r, const struct lg_result *res,
             const char *command)
{
    const struct lg_opts *o = &r->o;
    printf("loadgen: %s%s at %s:%d, %d producers (pipeline %d), %d pickers, "
           "pick %g..%g ms, seed %" PRIu64 ", run %s\n",
           lg_target_names[o->target],
           o->proto == LG_BINARY ? " (binary protocol)" : "", o->host, o->port,
           o->producers, o->pipeline, o->pickers, o->pick_lo_ms, o->pick_hi_ms,
           o->seed, r->tag);
    printf("command: %s\n\n", command);
    if (o->extended)
        printf("mode: %s%s, payload %zu bytes%s\n\n", lg_mode_names[o->mode],
               o->mode == LG_PUSH_ONLY  ? " (no pickers)"
               : o->mode == LG_POP_ONLY ? " (orders of an earlier run)"
               : o->mode == LG_PREFILL  ? " (push all, then drain)"
                                        : "",
               o->payload,
               o->target == LG_REDIS && o->redis_mode == LG_LEASE
                   ? ", Redis with a Lua lease"
                   : "");
    printf("%-9s %-20s %9s %10s %9s %9s %9s %9s %9s\n", "command", "(wire)",
           "count", "ops/s", "p50 us", "p90 us", "p99 us", "p99.9 us",
           "max us");
    for (int c = 0; c < CMD_COUNT; c++) {
        const struct lg_hist *h = &res->cmd[c];
        printf("%-9s %-20s %9" PRIu64 " %10.0f", lg_cmd_names[c],
               lg_cmd_peer[peer_row(o)][c], h->n, res->cmd_rate[c]);
        for (int q = 0; q < 4; q++)
            printf(" %9.1f", us(hist_quantile(h, lg_quantiles[q])));
        printf(" %9.1f\n", us(h->max));
    }
    printf("(NEXT latency includes waiting for an order when the queue is "
           "empty; %" PRIu64 " empty NEXTs",
           res->empty);
    if (res->notfound > 0)
        printf(", %" PRIu64 " -NOTFOUND before the warehouse existed",
               res->notfound);
    printf(")\n\n");
    printf("end to end: %" PRIu64 " orders pushed->shipped in %.3f s = "
           "%.0f orders/s (wall %.3f s)\n\n",
           res->shipped,
           res->shipped ? (double)(res->last_ship_ns - res->first_push_ns) / 1e9
                        : 0.0,
           res->e2e_rate, res->wall_s);
    if (o->extended) {
        printf("throughput: %" PRIu64 " in %.3f s = %.0f/s (%s)\n",
               res->tp_orders, res->tp_seconds, res->tp_rate, res->tp_what);
        if (o->mode == LG_PREFILL)
            printf("prefill: %" PRIu64 " pushes acknowledged at %.0f/s\n",
                   res->acked, res->push_rate);
        if (res->polls > 0)
            printf("empty pops retried after --poll-ms: %" PRIu64 "\n",
                   res->polls);
        printf("\n");
    }
    printf("%-8s %8s %8s %8s %13s %13s   (time factor %g)\n", "class", "pushed",
           "shipped", "late", "ship p50 ms", "ship p99 ms", o->time_factor);
    for (int c = 0; c < LG_NCLASS; c++) {
        const struct lg_hist *h = &res->ship_hist[c];
        printf("%-8s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %13.3f %13.3f\n",
               lg_class_names[c], res->by_class[c], res->shipped_class[c],
               res->missed[c], hist_quantile(h, 0.5) / 1e6,
               hist_quantile(h, 0.99) / 1e6);
    }
    if (res->wire_known)
        printf("\non the wire: %" PRIu64 " bytes sent, %" PRIu64
               " received by the workers = %.1f bytes per shipped order\n",
               res->wire_sent, res->wire_recv,
               res->shipped ? (double)(res->wire_sent + res->wire_recv) /
                                  (double)res->shipped
                            : 0.0);
    if (res->expiries < 0)
        printf("\nlease expiries: n/a (%s)\n",
               o->target != LG_REDIS       ? "STATS does not say"
               : o->redis_mode == LG_LEASE ? "nothing expires the leased set"
                                           : "Redis has no leases");
    else
        printf("\nlease expiries during the run: %" PRId64 "\n", res->expiries);
    printf("\ninvariants:\n");
    if (res->ship_skipped)
        printf("  shipped exactly once  SKIP  no pickers (push only): %" PRIu64
               " acknowledged, %" PRIu64 " push errors\n",
               res->acked, res->push_failed);
    else
        printf("  shipped exactly once  %s  %" PRIu64 " acknowledged, %" PRIu64
               " shipped, %" PRIu64 " missing, %" PRIu64
               " shipped twice, %" PRIu64 " push errors\n",
               res->missing == 0 && res->dup_ships == 0 &&
                       res->push_failed == 0 && res->picked_unacked == 0 &&
                       res->acked > 0
                   ? "OK  "
                   : "FAIL",
               res->acked, res->shipped, res->missing, res->dup_ships,
               res->push_failed);
    printf("  one holder at a time  %s  %" PRIu64
           " held by two pickers, %" PRIu64 " picked twice%s%s\n",
           res->double_holds == 0 && res->dup_picks == 0 ? "OK  " : "FAIL",
           res->double_holds, res->dup_picks,
           res->double_holds ? ", first " : "", res->double_hold_id);
    printf("  urgency order         %s  %" PRIu64 " of %" PRIu64
           " picks passed a more urgent waiting order\n",
           res->violations == 0 ? "OK  " : "FAIL", res->violations,
           res->picks_checked);
    if (res->violations > 0)
        printf("    first: %s\n", res->violation);
    if (o->target == LG_BEANSTALKD)
        printf("  (beanstalkd orders deadlines only to the minute inside a "
               "class; the class order checked here is exact)\n");
    if (res->foreign > 0)
        printf("  %" PRIu64 " orders of other runs were picked and shipped "
               "(not checked)\n",
               res->foreign);
    if (res->drained_out)
        printf("  gave up waiting: nothing shipped for %" PRId64 " ms\n",
               o->drain_ms);
    if (res->interrupted)
        printf("  interrupted\n");
    if (res->fail_msg[0] != '\0')
        printf("  first error: %s\n", res->fail_msg);
    printf("\nresult: %s\n", res->ok ? "OK" : "FAIL");
}

/* ------------------------------------------------------------------ */
/* main                                                                 */

static volatile sig_atomic_t lg_signalled;

static void
on_signal(int sig)
{
    (void)sig;
    lg_signalled = 1;
}

static char *
join_command(int argc, char **argv)
{
    size_t cap = 1;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) * 4 + 3;
    char *s = lg_calloc(1, cap);
    char *p = s;
    for (int i = 0; i < argc; i++) {
        const char *a = i == 0 ? "loadgen" : argv[i];
        bool plain = a[strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
                                 "OPQRSTUVWXYZ0123456789-_=.,:/+")] == '\0';
        if (i > 0)
            *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (; *a != '\0'; a++) {
            if (*a == '\'')
                p += sprintf(p, "'\\''");
            else
                *p++ = *a;
        }
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

int
main(int argc, char **argv)
{
    static struct lg_run run;
    struct lg_run *r = &run;
    lg_parse_opts(&r->o, argc, argv);
    const struct lg_opts *o = &r->o;
    char *command = join_command(argc, argv);

    uint64_t tag = lg_mix((uint64_t)lg_wall_ms() ^ ((uint64_t)getpid() << 32) ^
                          (uint64_t)lg_mono_ns());
    snprintf(r->tag, sizeof(r->tag), "%08" PRIx32, (uint32_t)tag);
    if (o->run_tag != NULL)
        snprintf(r->tag, sizeof(r->tag), "%s", o->run_tag);
    r->prefix_len =
        (size_t)snprintf(r->prefix, sizeof(r->prefix), "lg%.8s-", r->tag);
    snprintf(r->warehouse, sizeof(r->warehouse), "%.64s",
             o->warehouse != NULL ? o->warehouse : r->prefix);
    if (o->warehouse == NULL)
        r->warehouse[r->prefix_len - 1] = '\0'; /* "lg<tag>" */
    snprintf(r->qkey, sizeof(r->qkey), "lg:%.8s:queue", r->tag);
    snprintf(r->shipkey, sizeof(r->shipkey), "lg:%.8s:shipped", r->tag);
    snprintf(r->leasekey, sizeof(r->leasekey), "lg:%.8s:leased", r->tag);
    snprintf(r->tube, sizeof(r->tube), "lg%.8s", r->tag);
    r->limit = o->orders != 0 ? o->orders : UINT64_MAX;
    if (pthread_mutex_init(&r->chunk_mu, NULL) != 0 ||
        pthread_mutex_init(&r->fail_mu, NULL) != 0)
        lg_die("pthread_mutex_init failed");
    if (o->orders != 0)
        for (uint64_t k = 0; k < o->orders; k += LG_CHUNK)
            if (run_order_make(r, k) == NULL)
                lg_die("--orders: at most %" PRIu64,
                       (uint64_t)LG_CHUNKS_MAX * LG_CHUNK);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0 ||
        signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        lg_die("sigaction: %s", strerror(errno));

    char err[256];
    struct lg_conn ctl;
    if (conn_open(&ctl, r, false, false, err, sizeof(err)) != 0)
        lg_die("%s %s", lg_target_names[o->target], err);
    int64_t exp0 = conn_expiries(&ctl);
    if (o->target == LG_REDIS && o->redis_mode == LG_LEASE) {
        redisReply *rep =
            redisCommand(ctl.rc, "SCRIPT LOAD %s", lg_lease_script);
        if (rep == NULL)
            lg_die("redis SCRIPT LOAD: %s", ctl.rc->errstr);
        if (rep->type != REDIS_REPLY_STRING || rep->len >= sizeof(r->sha))
            lg_die("redis SCRIPT LOAD: unexpected reply%s%s",
                   rep->type == REDIS_REPLY_ERROR ? ": " : "",
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        snprintf(r->sha, sizeof(r->sha), "%s", rep->str);
        freeReplyObject(rep);
    }

    int nw = o->producers + o->pickers;
    struct lg_worker *ws = lg_calloc((size_t)nw, sizeof(struct lg_worker));
    for (int i = 0; i < nw; i++) {
        struct lg_worker *w = &ws[i];
        w->run = r;
        w->picker = i >= o->producers;
        w->idx = w->picker ? i - o->producers : i;
        w->rng = lg_mix(o->seed ^ (uint64_t)(i + 1) * 0x51ed27);
        if (conn_open(&w->conn, r, w->picker, !w->picker, err, sizeof(err)) !=
            0)
            lg_die("%s %s", lg_target_names[o->target], err);
    }

    atomic_store(&r->producers_left, o->producers);
    r->start_ns = lg_mono_ns();
    if (o->duration_s > 0)
        r->end_ns = r->start_ns + (int64_t)(o->duration_s * 1e9);
    /* Pickers first, then producers; with --prefill the pickers start
       once every push is acknowledged. */
    for (int i = nw - 1; i >= 0; i--) {
        if (o->prefill && ws[i].picker)
            continue;
        int rc =
            pthread_create(&ws[i].th, NULL,
                           ws[i].picker ? picker_main : producer_main, &ws[i]);
        if (rc != 0)
            lg_die("pthread_create: %s", strerror(rc));
    }

    struct lg_result res;
    memset(&res, 0, sizeof(res));
    res.expiries = -1;
    int64_t pushed_done_ns = 0, next_progress = r->start_ns + NS_PER_S;
    uint64_t last_sent = 0, last_settled = 0;
    if (o->prefill) {
        while (atomic_load(&r->producers_left) > 0 &&
               !atomic_load(&r->stop_producers)) {
            lg_sleep_ns(20 * NS_PER_MS);
            int64_t now = lg_mono_ns();
            if (lg_signalled) {
                res.interrupted = true;
                atomic_store(&r->stop_producers, 1);
                atomic_store(&r->stop_pickers, 1);
            }
            if (!o->quiet && now >= next_progress) {
                uint64_t sent = atomic_load(&r->sent);
                fprintf(stderr,
                        "loadgen: %6.1fs prefill: pushed %9" PRIu64
                        " (%7" PRIu64 "/s) acknowledged %9" PRIu64 "\n",
                        (double)(now - r->start_ns) / 1e9, sent,
                        sent - last_sent, (uint64_t)atomic_load(&r->acked));
                last_sent = sent;
                next_progress += NS_PER_S;
            }
        }
        r->drain_ns = lg_mono_ns();
        for (int i = nw - 1; i >= 0 && ws[i].picker; i--) {
            int rc = pthread_create(&ws[i].th, NULL, picker_main, &ws[i]);
            if (rc != 0)
                lg_die("pthread_create: %s", strerror(rc));
        }
    }
    /* Pop only: the orders to pick; otherwise every acknowledged push. */
    while (!atomic_load(&r->stop_pickers)) {
        lg_sleep_ns(20 * NS_PER_MS);
        int64_t now = lg_mono_ns();
        if (lg_signalled && !res.interrupted) {
            res.interrupted = true;
            atomic_store(&r->stop_producers, 1);
            atomic_store(&r->stop_pickers, 1);
        }
        uint64_t acked = atomic_load(&r->acked);
        uint64_t settled = atomic_load(&r->settled);
        if (atomic_load(&r->producers_left) == 0) {
            if (pushed_done_ns == 0)
                pushed_done_ns = now;
            int64_t quiet = atomic_load(&r->last_ship_ns);
            if (quiet < pushed_done_ns)
                quiet = pushed_done_ns;
            if (o->mode == LG_PUSH_ONLY ||
                settled >= (o->mode == LG_POP_ONLY ? o->orders : acked)) {
                atomic_store(&r->stop_pickers, 1);
            } else if (now - quiet > o->drain_ms * NS_PER_MS) {
                res.drained_out = true;
                atomic_store(&r->stop_pickers, 1);
            }
        }
        if (!o->quiet && now >= next_progress) {
            uint64_t sent = atomic_load(&r->sent);
            fprintf(stderr,
                    "loadgen: %6.1fs pushed %9" PRIu64 " (%7" PRIu64
                    "/s) shipped %9" PRIu64 " (%7" PRIu64
                    "/s) waiting %7" PRIu64 " errors %" PRIu64 "\n",
                    (double)(now - r->start_ns) / 1e9, sent, sent - last_sent,
                    settled, settled - last_settled,
                    acked > settled ? acked - settled : 0,
                    (uint64_t)atomic_load(&r->errors));
            last_sent = sent;
            last_settled = settled;
            next_progress += NS_PER_S;
        }
    }
    for (int i = 0; i < nw; i++) {
        int rc = pthread_join(ws[i].th, NULL);
        if (rc != 0)
            lg_die("pthread_join: %s", strerror(rc));
    }
    res.wall_s = (double)(lg_mono_ns() - r->start_ns) / 1e9;
    int64_t exp1 = conn_expiries(&ctl);
    if (exp0 >= 0 && exp1 >= 0)
        res.expiries = exp1 - exp0;
    conn_close(&ctl);
    res.wire_known = true;
    for (int i = 0; i < nw; i++) {
        uint64_t snt, rcv;
        if (conn_wire_bytes(&ws[i].conn, &snt, &rcv)) {
            res.wire_sent += snt;
            res.wire_recv += rcv;
        } else {
            res.wire_known = false;
        }
        conn_close(&ws[i].conn);
    }

    analyse(r, ws, nw, &res);
    if (o->json)
        report_json(r, &res, command);
    else
        report_table(r, &res, command);
    if (fflush(stdout) != 0)
        lg_die("stdout: %s", strerror(errno));

    free(res.ship_hist);
    free(ws);
    free(command);
    for (size_t c = 0; c < LG_CHUNKS_MAX; c++)
        free(atomic_load(&r->chunks[c]));
    return res.ok ? 0 : 1;
}
