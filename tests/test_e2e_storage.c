/*
 * test_e2e_storage — storage end to end: a full disk turns the daemon
 * read-only (writes refused with -READONLY, reads served, nothing refused
 * left in memory) until space comes back, when writes resume by themselves
 * and nothing acknowledged is lost; SIGTERM under load exits 0 with every
 * acknowledged order kept; CHECKPOINT gives a copy a second daemon starts
 * from with the same orders.
 *
 * The full disk is a 2 MiB tmpfs mounted inside the test's temporary
 * directory (we run as root; without the privilege the test is skipped),
 * grown to 64 MiB with a remount.  The atexit handler kills the daemons,
 * unmounts and removes the directories, so a failed assertion leaves
 * nothing behind.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>

#include "e2e.h"

static struct daemon dmn, twin;
static char mnt[264]; /* dir + "/mnt": data + "/data" still fits */
static bool mounted;

static void
cleanup(void)
{
    e2e_kill(&dmn);
    e2e_kill(&twin);
    if (mounted && umount2(mnt, MNT_DETACH) != 0)
        fprintf(stderr, "umount %s: %s\n", mnt, strerror(errno));
    mounted = false;
    e2e_cleanup(&dmn);
    e2e_cleanup(&twin);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
readable(redisContext *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static redisReply *
get_reply(redisContext *c)
{
    void *r = NULL;
    cr_assert_eq(redisGetReply(c, &r), REDIS_OK, "reply: %s", c->errstr);
    cr_assert_not_null(r);
    return r;
}

static bool
is_status(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

static bool
is_error(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* ---- a full disk -------------------------------------------------------- */

#define BIG_ATTRS 24
#define BIG_LEN 1000
#define MAX_BIG 2000

/* Send PUSH id normal APPROVED with BIG_ATTRS attributes of BIG_LEN bytes
   (about 24 KiB, plus the audit's copy of the command). */
static void
send_big_push(redisContext *c, const char *id)
{
    static char val[BIG_LEN + 1];
    static char keys[BIG_ATTRS][8];
    const char *argv[4 + 3 * BIG_ATTRS];
    size_t n = 0;

    memset(val, 'x', BIG_LEN);
    val[BIG_LEN] = '\0';
    memcpy(val, id, strlen(id)); /* tells the orders' values apart */
    argv[n++] = "PUSH";
    argv[n++] = id;
    argv[n++] = "normal";
    for (int i = 0; i < BIG_ATTRS; i++) {
        snprintf(keys[i], sizeof keys[i], "a%d", i);
        argv[n++] = "ATTR";
        argv[n++] = keys[i];
        argv[n++] = val;
    }
    argv[n++] = "APPROVED";
    cr_assert_eq(redisAppendCommandArgv(c, (int)n, argv, NULL), REDIS_OK);
    int done = 0;
    while (!done)
        cr_assert_eq(redisBufferWrite(c, &done), REDIS_OK, "write: %s",
                     c->errstr);
}

/* GET id: queued, with its big attributes intact. */
static void
expect_big_order(redisContext *c, const char *id)
{
    redisReply *r = e2e_cmd(c, "GET %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "GET %s: type %d (%s)", id,
                 r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_str_eq(e2e_field_str(r, "state"), "queued", "order %s", id);
    const redisReply *a = e2e_field(r, "attrs");
    cr_assert(a && a->type == REDIS_REPLY_ARRAY && a->elements == 2 * BIG_ATTRS,
              "order %s: attributes lost", id);
    const char *v = e2e_field_str(a, "a7");
    cr_assert(v && strlen(v) == BIG_LEN && !strncmp(v, id, strlen(id)),
              "order %s: attribute a7 differs", id);
    freeReplyObject(r);
}

static long long
stat_int(redisContext *c, const char *k)
{
    redisReply *r = e2e_cmd(c, "STATS");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "STATS: type %d", r->type);
    long long v = e2e_field_int(r, k);
    freeReplyObject(r);
    return v;
}

Test(storage, disk_full_is_readonly_then_recovers)
{
    atexit(cleanup);
    e2e_tempdir(&dmn);
    snprintf(mnt, sizeof mnt, "%s/mnt", dmn.dir);
    cr_assert_eq(mkdir(mnt, 0755), 0, "mkdir %s: %s", mnt, strerror(errno));
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0)
        cr_skip_test("cannot mount a tmpfs at %s: %s", mnt, strerror(errno));
    mounted = true;
    snprintf(dmn.data, sizeof dmn.data, "%s/data", mnt);
    e2e_start(&dmn, NULL);

    redisContext *c = e2e_connect(&dmn), *stuck = NULL;
    static char acked[MAX_BIG][16];
    int nacked = 0;
    char id[16], refused[16] = "", stuck_id[16] = "";

    /* A lease that runs out while storage fails, a picker blocked on its
       warehouse and a subscriber: no expiry, no lease, no event may
       happen until the store can record them. */
    e2e_expect(c, "OK", "PUSH W-1 normal WAREHOUSE wb APPROVED");
    redisReply *lr = e2e_cmd(c, "NEXT wb LEASE 8 PICKER p1");
    cr_assert_str_eq(e2e_field_str(lr, "id"), "W-1");
    freeReplyObject(lr);
    int64_t leased_at = mono_ms();
    redisContext *blocked = e2e_connect(&dmn), *sub = e2e_connect(&dmn);
    cr_assert_eq(redisAppendCommand(blocked, "NEXT wb BLOCK 0 PICKER p2"),
                 REDIS_OK);
    int done = 0;
    cr_assert_eq(redisBufferWrite(blocked, &done), REDIS_OK);
    redisReply *sr = e2e_cmd(sub, "SUBSCRIBE events");
    freeReplyObject(sr);

    /* Fill the disk until a write is refused.  The push whose group hits
       the full disk waits (its group is retried): its reply comes after
       the disk has room again, so it is set aside on its connection. */
    for (int i = 0; i < MAX_BIG && !refused[0]; i++) {
        snprintf(id, sizeof id, "F-%04d", i);
        send_big_push(c, id);
        if (!readable(c, 3000)) {
            cr_assert_null(stuck, "two pushes hang: %s and %s", stuck_id, id);
            stuck = c;
            snprintf(stuck_id, sizeof stuck_id, "%s", id);
            c = e2e_connect(&dmn);
            continue;
        }
        redisReply *r = get_reply(c);
        if (is_status(r, "OK"))
            snprintf(acked[nacked++], sizeof acked[0], "%s", id);
        else if (is_error(r, "READONLY storage: "))
            snprintf(refused, sizeof refused, "%s", id);
        else
            cr_assert_fail("PUSH %s: %s", id,
                           r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
    cr_assert(refused[0], "%d pushes of ~24 KiB fit in a 2 MiB tmpfs", MAX_BIG);
    cr_assert_gt(nacked, 0, "not one push fitted");
    fprintf(stderr,
            "storage: %d pushes acknowledged, %s refused, %s "
            "waiting\n",
            nacked, refused, stuck_id[0] ? stuck_id : "none");

    /* Read-only: reads work, writes are refused, the daemon is up. */
    int st;
    cr_assert_eq(waitpid(dmn.pid, &st, WNOHANG), 0, "dispatchd died");
    e2e_expect(c, "PONG", "PING");
    e2e_expect(c, "NOTFOUND", "GET %s", refused);
    expect_big_order(c, acked[0]);
    expect_big_order(c, acked[nacked - 1]);
    redisReply *r = e2e_cmd(c, "PEEK main COUNT 3");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, nacked < 3 ? (size_t)nacked : 3);
    cr_assert_str_eq(e2e_field_str(r->element[0], "id"), acked[0]);
    freeReplyObject(r);
    cr_assert_gt(stat_int(c, "store_failures"), 0);
    r = e2e_cmd(c, "AUDIT %s", acked[0]);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "AUDIT while read-only: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_assert_geq(r->elements, 1);
    freeReplyObject(r);
    e2e_expect(c, "READONLY storage: ", "CANCEL %s", acked[0]);
    e2e_expect(c, "READONLY storage: ", "PUSH small-0 rush4h APPROVED");
    e2e_expect(c, "NOTFOUND", "GET small-0");
    r = e2e_cmd(c, "NEXT main");
    cr_assert(is_error(r, "READONLY storage: "), "NEXT while read-only: %d",
              r->type);
    freeReplyObject(r);
    r = e2e_cmd(c, "GET %s", acked[0]);
    cr_assert_str_eq(e2e_field_str(r, "state"), "queued");
    freeReplyObject(r);
    cr_assert_eq(waitpid(dmn.pid, &st, WNOHANG), 0, "dispatchd died");

    bool storage_failing_seen = false, storage_ok_seen = false;
    /* The lease ran out while writes were refused: it is not expired,
       the blocked picker got nothing, and nobody heard of it. */
    bool lease_checked = mono_ms() - leased_at < 7000;
    if (lease_checked) {
        while (mono_ms() - leased_at < 9000)
            e2e_sleep_ms(100);
        r = e2e_cmd(c, "GET W-1");
        cr_assert_str_eq(e2e_field_str(r, "state"), "picking",
                         "a lease expired while storage failed");
        cr_assert_str_eq(e2e_field_str(r, "picker"), "p1");
        freeReplyObject(r);
        cr_assert(!readable(blocked, 200),
                  "a blocked picker was handed an order while storage "
                  "failed");
        while (readable(sub, 300)) {
            r = get_reply(sub);
            cr_assert(r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                          !strstr(r->element[2]->str, "lease_expired"),
                      "an expiry was published while storage failed");
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                strstr(r->element[2]->str, "\"type\":\"storage\"") &&
                strstr(r->element[2]->str, "\"state\":\"failing\""))
                storage_failing_seen = true;
            freeReplyObject(r);
        }
    } else {
        fprintf(stderr, "storage: filling the disk took over 7 s, the "
                        "expiry-while-failing check is skipped\n");
    }

    /* Room again: writes resume by themselves within seconds. */
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0,
                 "remount: %s", strerror(errno));
    int64_t until = mono_ms() + 15000;
    for (;;) {
        r = e2e_cmd(c, "PUSH small-1 rush4h APPROVED");
        bool ok = is_status(r, "OK");
        cr_assert(ok || is_error(r, "READONLY storage: "), "PUSH: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
        if (ok)
            break;
        cr_assert(mono_ms() < until, "writes did not resume in 15 s");
        e2e_sleep_ms(100);
    }
    if (stuck) {
        cr_assert(readable(stuck, 10000),
                  "the push caught by the full "
                  "disk (%s) never got its reply",
                  stuck_id);
        r = get_reply(stuck);
        cr_assert(is_status(r, "OK"), "PUSH %s after recovery: %s", stuck_id,
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
        snprintf(acked[nacked++], sizeof acked[0], "%s", stuck_id);
        redisFree(stuck);
    }
    /* Once writes resume, the expiry is recorded and published and the
       blocked picker gets the order. */
    cr_assert(readable(blocked, 10000), "the blocked picker never got W-1");
    r = get_reply(blocked);
    cr_assert_str_eq(e2e_field_str(r, "id"), "W-1");
    cr_assert_str_eq(e2e_field_str(r, "picker"), "p2");
    freeReplyObject(r);
    if (lease_checked) {
        /* get_reply, not poll: hiredis may hold replies already read. */
        bool seen = false;
        for (int k = 0; k < 20 && !(seen && storage_ok_seen); k++) {
            r = get_reply(sub);
            const char *j = r->type == REDIS_REPLY_ARRAY && r->elements == 3
                                ? r->element[2]->str
                                : "";
            seen |= strstr(j, "\"type\":\"lease_expired\"") != NULL;
            if (strstr(j, "\"type\":\"storage\"")) {
                storage_failing_seen |= strstr(j, "\"failing\"") != NULL;
                storage_ok_seen |= strstr(j, "\"state\":\"ok\"") != NULL;
            }
            freeReplyObject(r);
        }
        cr_assert(seen, "no lease_expired event after writes resumed");
        cr_assert(storage_failing_seen, "no storage event when writes failed");
        cr_assert(storage_ok_seen, "no storage event when writes resumed");
    }
    redisFree(blocked);
    redisFree(sub);
    redisFree(c);

    /* Everything acknowledged survives a restart. */
    cr_assert_eq(e2e_stop(&dmn), 0, "SIGTERM: non-zero exit");
    e2e_start(&dmn, NULL);
    c = e2e_connect(&dmn);
    for (int i = 0; i < nacked; i++)
        expect_big_order(c, acked[i]);
    e2e_expect(c, "NOTFOUND", "GET %s", refused);
    e2e_expect(c, "NOTFOUND", "GET small-0");
    r = e2e_cmd(c, "GET small-1");
    cr_assert_str_eq(e2e_field_str(r, "state"), "queued");
    freeReplyObject(r);
    cr_assert_eq(stat_int(c, "queued"), nacked + 1);
    r = e2e_cmd(c, "GET W-1");
    cr_assert_str_eq(e2e_field_str(r, "picker"), "p2");
    freeReplyObject(r);
    redisFree(c);
}

/* ---- SIGTERM ------------------------------------------------------------ */

struct pusher {
    int port;
    int nacked;
    char err[256];
};

static atomic_bool pushing;

static void *
push_until_gone(void *arg)
{
    struct pusher *p = arg;
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", p->port, tv);

    if (!c || c->err) {
        snprintf(p->err, sizeof p->err, "connect failed");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    atomic_store(&pushing, true);
    for (int i = 0;; i++) {
        redisReply *r = redisCommand(c, "PUSH T-%d rush24h APPROVED", i);
        if (!r)
            break; /* the daemon closed the connection */
        if (!is_status(r, "OK")) {
            snprintf(p->err, sizeof p->err, "PUSH T-%d: %s", i,
                     r->type == REDIS_REPLY_ERROR ? r->str : "?");
            freeReplyObject(r);
            break;
        }
        p->nacked = i + 1;
        freeReplyObject(r);
    }
    redisFree(c);
    return NULL;
}

Test(storage, sigterm_with_clients_exits_zero)
{
    atexit(cleanup);
    e2e_start(&dmn, NULL);
    redisContext *erp = e2e_connect(&dmn), *picker = e2e_connect(&dmn);
    redisContext *sub = e2e_connect(&dmn), *idle = e2e_connect(&dmn);

    e2e_expect(erp, "OK", "PUSH S-1 normal APPROVED");
    e2e_expect(erp, "OK",
               "PUSH S-2 asn DEADLINE %lld ATTR asn_number A1 "
               "ATTR tech_agreement T1",
               (long long)(e2e_now_ms() + 3600000));
    redisReply *r = e2e_cmd(picker, "NEXT main LEASE 600");
    cr_assert_str_eq(e2e_field_str(r, "id"), "S-1");
    char lease[32];
    snprintf(lease, sizeof lease, "%s", e2e_field_str(r, "lease"));
    freeReplyObject(r);
    /* A picker blocked, a subscriber, an idle client, one pushing. */
    cr_assert_eq(redisAppendCommand(picker, "NEXT main BLOCK 0"), REDIS_OK);
    int done = 0;
    while (!done)
        cr_assert_eq(redisBufferWrite(picker, &done), REDIS_OK);
    r = e2e_cmd(sub, "SUBSCRIBE events");
    freeReplyObject(r);
    e2e_expect(idle, "PONG", "PING");

    struct pusher p = {.port = dmn.port};
    pthread_t th;
    atomic_store(&pushing, false);
    cr_assert_eq(pthread_create(&th, NULL, push_until_gone, &p), 0);
    while (!atomic_load(&pushing))
        e2e_sleep_ms(1);
    e2e_sleep_ms(200);
    cr_assert_eq(e2e_stop(&dmn), 0, "SIGTERM with clients: non-zero exit");
    pthread_join(th, NULL);
    cr_assert_str_empty(p.err, "%s", p.err);
    cr_assert_gt(p.nacked, 0);

    /* Every acknowledged change is there after the restart. */
    e2e_start(&dmn, NULL);
    redisContext *c = e2e_connect(&dmn);
    for (int i = 0; i < p.nacked; i++) {
        r = e2e_cmd(c, "GET T-%d", i);
        cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "acknowledged T-%d lost", i);
        freeReplyObject(r);
    }
    r = e2e_cmd(c, "GET S-1");
    cr_assert_str_eq(e2e_field_str(r, "state"), "picking");
    cr_assert_str_eq(e2e_field_str(r, "lease"), lease);
    freeReplyObject(r);
    r = e2e_cmd(c, "GET S-2");
    cr_assert_str_eq(e2e_field_str(r, "state"), "new");
    freeReplyObject(r);
    cr_assert_eq(e2e_stop(&dmn), 0);
    redisFree(c);
    redisFree(erp);
    redisFree(picker);
    redisFree(sub);
    redisFree(idle);
}

/* ---- CHECKPOINT --------------------------------------------------------- */

/* Every field of two GET replies of one order is equal, but the estimate
   (it moves with the clock). */
static void
expect_same_order(redisContext *a, redisContext *b, const char *id)
{
    redisReply *x = e2e_cmd(a, "GET %s", id), *y = e2e_cmd(b, "GET %s", id);
    cr_assert_eq(x->type, REDIS_REPLY_ARRAY, "GET %s on the original", id);
    cr_assert_eq(y->type, REDIS_REPLY_ARRAY, "GET %s on the copy: %s", id,
                 y->type == REDIS_REPLY_ERROR ? y->str : "?");
    cr_assert_eq(x->elements, y->elements, "order %s: %zu vs %zu fields", id,
                 x->elements, y->elements);
    for (size_t i = 0; i + 1 < x->elements; i += 2) {
        const char *k = x->element[i]->str;
        cr_assert_str_eq(k, y->element[i]->str, "order %s: field order", id);
        if (!strncmp(k, "eta", 3))
            continue;
        const redisReply *u = x->element[i + 1], *v = y->element[i + 1];
        cr_assert_eq(u->type, v->type, "order %s: %s type", id, k);
        if (u->type == REDIS_REPLY_STRING)
            cr_assert_str_eq(u->str, v->str, "order %s: %s", id, k);
        else if (u->type == REDIS_REPLY_INTEGER)
            cr_assert_eq(u->integer, v->integer, "order %s: %s", id, k);
        else if (u->type == REDIS_REPLY_ARRAY) {
            cr_assert_eq(u->elements, v->elements, "order %s: %s", id, k);
            for (size_t j = 0; j < u->elements; j++)
                cr_assert_str_eq(u->element[j]->str, v->element[j]->str,
                                 "order %s: %s", id, k);
        }
    }
    freeReplyObject(x);
    freeReplyObject(y);
}

static size_t
audit_len(redisContext *c, const char *id)
{
    redisReply *r = e2e_cmd(c, "AUDIT %s", id);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    size_t n = r->elements;
    freeReplyObject(r);
    return n;
}

Test(storage, checkpoint_starts_a_twin)
{
    atexit(cleanup);
    e2e_tempdir(&twin);
    e2e_start(&dmn, "--checkpoint-dir", twin.dir, NULL);
    redisContext *c = e2e_connect(&dmn);
    int64_t dl = e2e_now_ms() + 48 * 3600000LL;
    static const char *const cls[] = {"rush4h", "rush24h", "normal"};
    char id[32];

    /* Thirty orders in every state: queued, new, held, picking, shipped. */
    for (int i = 0; i < 30; i++) {
        e2e_expect(c, "OK",
                   "PUSH CK-%02d %s DEADLINE %lld WAREHOUSE w%d "
                   "CUSTOMER c%d ATTR k v%d RISK new_customer",
                   i, cls[i % 3], (long long)(dl + i % 7), i % 2, i, i);
        if (i < 20)
            e2e_expect(c, "OK", "APPROVE CK-%02d", i);
    }
    for (int i = 20; i < 25; i++)
        e2e_expect(c, "OK", "HOLD CK-%02d credit", i);
    for (int i = 0; i < 4; i++) {
        redisReply *r = e2e_cmd(c, "NEXT w%d LEASE 900 PICKER p%d", i % 2, i);
        cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
        freeReplyObject(r);
    }
    for (int i = 10; i < 14; i++)
        e2e_expect(c, "OK", "OUTBOUND CK-%02d OPERATOR op RAW {\"n\":%d}", i,
                   i);

    snprintf(twin.data, sizeof twin.data, "%s/ckpt", twin.dir);
    redisReply *r = e2e_cmd(c, "CHECKPOINT ckpt");
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "CHECKPOINT: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_assert_str_eq(r->str, twin.data);
    freeReplyObject(r);
    /* The directory exists now: a second checkpoint there is refused. */
    r = e2e_cmd(c, "CHECKPOINT ckpt");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "CHECKPOINT over a checkpoint");
    freeReplyObject(r);
    /* Changes after the checkpoint are not in it. */
    e2e_expect(c, "OK", "PUSH CK-late normal APPROVED");
    e2e_expect(c, "OK", "CANCEL CK-29 late");

    e2e_start(&twin, NULL);
    redisContext *t = e2e_connect(&twin);
    e2e_expect(t, "NOTFOUND", "GET CK-late");
    r = e2e_cmd(t, "GET CK-29");
    cr_assert_str_eq(e2e_field_str(r, "state"), "new");
    freeReplyObject(r);
    for (int i = 0; i < 29; i++) {
        snprintf(id, sizeof id, "CK-%02d", i);
        expect_same_order(c, t, id);
        cr_assert_eq(audit_len(c, id), audit_len(t, id),
                     "order %s: audit trails differ", id);
    }
    /* The same queues, in the same order, and the same counts. */
    for (int w = 0; w < 2; w++) {
        redisReply *x = e2e_cmd(c, "PEEK w%d COUNT 50", w);
        redisReply *y = e2e_cmd(t, "PEEK w%d COUNT 50", w);
        cr_assert_eq(x->elements, y->elements);
        cr_assert_gt(x->elements, 0);
        for (size_t j = 0; j < x->elements; j++)
            cr_assert_str_eq(e2e_field_str(x->element[j], "id"),
                             e2e_field_str(y->element[j], "id"),
                             "PEEK w%d differs at %zu", w, j);
        freeReplyObject(x);
        freeReplyObject(y);
    }
    static const char *const counts[] = {"new", "held", "queued", "picking",
                                         "shipped"};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        long long want = stat_int(c, counts[k]);
        if (!strcmp(counts[k], "new"))
            want++; /* CK-29, cancelled since */
        if (!strcmp(counts[k], "queued"))
            want--; /* CK-late */
        cr_assert_eq(stat_int(t, counts[k]), want, "%s", counts[k]);
    }
    /* The twin is a daemon of its own: it takes writes. */
    e2e_expect(t, "OK", "APPROVE CK-29");
    redisFree(t);
    redisFree(c);
    cr_assert_eq(e2e_stop(&twin), 0);
    cr_assert_eq(e2e_stop(&dmn), 0);
}
