/*
 * test_crash — the crash proof: nothing acknowledged is ever lost and no
 * order is handed to two pickers, across kill -9.
 *
 * Each trial starts dispatchd (--durability sync) on a data directory kept
 * across trials, drives it with NTHREADS client threads (one hiredis
 * context each) doing PUSH ... APPROVED, PUSH then APPROVE, NEXT with a
 * one-hour lease and OUTBOUND, and kills it with SIGKILL 50-300 ms into
 * the load.  Every reply that acknowledged something goes into a model:
 *
 *   per order  the fields pushed; the highest state acknowledged (the
 *              states only move forward here: new < queued < picking <
 *              shipped, since leases are too long to expire and nobody
 *              releases); the highest state any request named it for
 *              (attempted); the lease acknowledged; how many acknowledged
 *              requests wrote to its audit trail.
 *   per thread the request in flight when the daemon died: it may or may
 *              not have happened, and the checks allow both.  A NEXT in
 *              flight may have leased one unknown order of its warehouse.
 *
 * After the restart on the same directory, every order of the model is
 * read back (GET, pipelined) and must hold: an acknowledged push exists
 * with its fields; its state is at least the acknowledged one and at most
 * the attempted one (or picking under a lease no client saw, at most one
 * per NEXT that was in flight on that warehouse); an acknowledged lease is
 * still the order's lease.  The audit trail of every order touched in the
 * trial is a chain (entries 0..n-1, each `from` the previous `to`, the
 * last `to` the state) at least as long as what was acknowledged.  PEEK
 * of each warehouse equals the model's queued orders sorted by (class,
 * deadline, arrival) -- deadlines are unique across threads, so arrival
 * only breaks ties inside one thread, whose requests are sequential.
 * Then half of each queue is drained by NEXT (all of it in the last
 * trial), in that same order, and no order ever comes back from NEXT
 * twice.  What the daemon says then becomes the model for the next trial.
 *
 * DISPATCHD_CRASH_TRIALS sets the number of trials (default 20);
 * DISPATCHD_CRASH_SEED replays one run.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "e2e.h"

#define NTHREADS 4
#define NWH 2
#define LEASE_S 86400 /* with --lease-max 24h: never expires here */
#define GET_CHUNK 256
#define PEEK_LIMIT 1000
#define MAX_REPORTED 40
#define DAEMON_ARGS "--durability", "sync", "--lease-max", "24h"

static const char *const WH[NWH] = {"c1", "c2"};
static const char *const CLS[] = {"asn", "rush4h", "rush24h", "normal"};

/* Ranks of the states an order can reach in this test. */
enum { R_NONE = -1, R_NEW, R_QUEUED, R_PICKING, R_SHIPPED };
static const char *const RANK_NAME[] = {"new", "queued", "picking", "shipped"};

struct morder {
    char id[24];
    int cls; /* index into CLS */
    long long deadline;
    int wh;          /* index into WH */
    int thread;      /* the thread that pushed it */
    bool approved;   /* pushed with APPROVED */
    long long entry; /* per-thread queue-entry counter (ties) */
    bool gone;       /* unacknowledged push that did not happen */
    bool push_acked; /* acknowledged, or seen after a restart */
    int acked;       /* highest rank acknowledged */
    int attempted;   /* highest rank a request named it for */
    uint64_t lease;  /* lease acknowledged (0: none) */
    bool leased;     /* came back from NEXT once: never again */
    int acked_ops;   /* acknowledged writes to its audit trail */
    bool touched;    /* a request named it in this trial */
};

static struct {
    pthread_mutex_t mu;
    struct morder *o;
    size_t n, cap;
    long long d0;                /* deadlines start here */
    long long next_dl[NTHREADS]; /* per-thread deadline counter */
    long long next_entry[NTHREADS];
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_int failures;

static void
fail(const char *fmt, ...)
{
    va_list ap;
    if (atomic_fetch_add(&failures, 1) >= MAX_REPORTED)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "crash: FAILURE: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static struct daemon dmn;

static void
cleanup(void)
{
    e2e_cleanup(&dmn);
}

static int
state_rank(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, RANK_NAME[i]) == 0)
            return i;
    return R_NONE;
}

static int
max_int(int a, int b)
{
    return a > b ? a : b;
}

/* ---- the model ---------------------------------------------------------- */

/* A new order for thread t (under M.mu); returns its index. */
static size_t
model_add(int t, unsigned *seed, bool approved)
{
    if (M.n == M.cap) {
        size_t cap = M.cap ? 2 * M.cap : 4096;
        struct morder *o = realloc(M.o, cap * sizeof *o);
        if (!o) {
            fprintf(stderr, "crash: out of memory\n");
            abort();
        }
        M.o = o;
        M.cap = cap;
    }
    size_t i = M.n++;
    struct morder *o = &M.o[i];
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "K%07zu", i);
    o->cls = (int)(rand_r(seed) % 4);
    /* Two consecutive orders of a thread share a deadline (a tie that
       arrival must break); no two threads ever do. */
    long long k = M.next_dl[t]++;
    o->deadline = M.d0 + (k / 2) * NTHREADS + t;
    o->wh = (int)(rand_r(seed) % NWH);
    o->thread = t;
    o->approved = approved;
    o->acked = R_NONE;
    o->attempted = approved ? R_QUEUED : R_NEW;
    if (approved)
        o->entry = M.next_entry[t]++;
    o->touched = true;
    return i;
}

static bool
parse_index(const char *id, size_t *i)
{
    char tail;
    return id && sscanf(id, "K%zu%c", i, &tail) == 1 && *i < M.n;
}

/* ---- the client threads ------------------------------------------------- */

enum op {
    OP_NONE,
    OP_PUSH,
    OP_PUSH_NEW,
    OP_APPROVE,
    OP_NEXT,
    OP_OUTBOUND,
    OP_COUNT
};
static const char *const OP_NAME[] = {"-",       "push", "push-new",
                                      "approve", "next", "outbound"};

struct worker {
    int t;
    redisContext *c;
    unsigned seed;
    enum op inflight; /* what was sent and not answered */
    int inflight_wh;  /* for a NEXT */
    long long acked[OP_COUNT];
    size_t *pending; /* its acknowledged new orders, to approve */
    size_t npending, cap_pending;
};

static atomic_bool stop;

static bool
is_status(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

static const char *
reply_text(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS
               ? r->str
               : "(not a status)";
}

static redisReply *
do_push(struct worker *w, size_t i)
{
    char note[32];
    pthread_mutex_lock(&M.mu);
    struct morder o = M.o[i];
    pthread_mutex_unlock(&M.mu);
    snprintf(note, sizeof note, "v-%s", o.id);
    const char *fmt =
        o.approved ? "PUSH %s %s DEADLINE %lld WAREHOUSE %s CUSTOMER cust%d "
                     "ATTR note %s ATTR asn_number A%s ATTR tech_agreement "
                     "T%s APPROVED"
                   : "PUSH %s %s DEADLINE %lld WAREHOUSE %s CUSTOMER cust%d "
                     "ATTR note %s ATTR asn_number A%s ATTR tech_agreement "
                     "T%s";
    return redisCommand(w->c, fmt, o.id, CLS[o.cls], o.deadline, WH[o.wh],
                        o.thread, note, o.id, o.id);
}

static void
op_push(struct worker *w, bool approved)
{
    pthread_mutex_lock(&M.mu);
    size_t i = model_add(w->t, &w->seed, approved);
    pthread_mutex_unlock(&M.mu);
    w->inflight = approved ? OP_PUSH : OP_PUSH_NEW;
    redisReply *r = do_push(w, i);
    if (!r)
        return;
    w->inflight = OP_NONE;
    if (!is_status(r, "OK")) {
        fail("PUSH K%07zu: %s", i, reply_text(r));
    } else {
        pthread_mutex_lock(&M.mu);
        struct morder *o = &M.o[i];
        o->push_acked = true;
        o->acked = max_int(o->acked, approved ? R_QUEUED : R_NEW);
        o->acked_ops++;
        pthread_mutex_unlock(&M.mu);
        w->acked[approved ? OP_PUSH : OP_PUSH_NEW]++;
        if (!approved) {
            if (w->npending == w->cap_pending) {
                w->cap_pending = w->cap_pending ? 2 * w->cap_pending : 64;
                w->pending =
                    realloc(w->pending, w->cap_pending * sizeof *w->pending);
                if (!w->pending)
                    abort();
            }
            w->pending[w->npending++] = i;
        }
    }
    freeReplyObject(r);
}

static void
op_approve(struct worker *w)
{
    size_t k = rand_r(&w->seed) % w->npending;
    size_t i = w->pending[k];
    w->pending[k] = w->pending[--w->npending];

    pthread_mutex_lock(&M.mu);
    struct morder *o = &M.o[i];
    o->attempted = max_int(o->attempted, R_QUEUED);
    o->entry = M.next_entry[w->t]++;
    o->touched = true;
    char id[24];
    memcpy(id, o->id, sizeof id);
    pthread_mutex_unlock(&M.mu);

    w->inflight = OP_APPROVE;
    redisReply *r = redisCommand(w->c, "APPROVE %s", id);
    if (!r)
        return;
    w->inflight = OP_NONE;
    if (!is_status(r, "OK")) {
        fail("APPROVE %s: %s", id, reply_text(r));
    } else {
        pthread_mutex_lock(&M.mu);
        o = &M.o[i];
        o->acked = max_int(o->acked, R_QUEUED);
        o->acked_ops++;
        pthread_mutex_unlock(&M.mu);
        w->acked[OP_APPROVE]++;
    }
    freeReplyObject(r);
}

/* Record an order NEXT handed out (any thread, or the drain). */
static void
leased(const char *who, const redisReply *r, int wh)
{
    const char *id = e2e_field_str(r, "id");
    const char *lease = e2e_field_str(r, "lease");
    const char *state = e2e_field_str(r, "state");
    const char *w = e2e_field_str(r, "warehouse");
    size_t i;

    pthread_mutex_lock(&M.mu);
    if (!parse_index(id, &i) || !lease) {
        pthread_mutex_unlock(&M.mu);
        fail("%s: NEXT returned an order not in the model (%s)", who,
             id ? id : "no id");
        return;
    }
    struct morder *o = &M.o[i];
    if (o->leased)
        fail("%s: order %s handed out twice: lease %s now, lease %" PRIu64
             " before",
             who, id, lease, o->lease);
    if (!state || strcmp(state, "picking") || !w || strcmp(w, WH[wh]))
        fail("%s: NEXT %s gave %s in state %s of warehouse %s", who, WH[wh], id,
             state ? state : "?", w ? w : "?");
    o->leased = true;
    o->lease = strtoull(lease, NULL, 10);
    o->acked = max_int(o->acked, R_PICKING);
    o->attempted = max_int(o->attempted, R_PICKING);
    o->acked_ops++;
    o->touched = true;
    pthread_mutex_unlock(&M.mu);
}

static void
op_next(struct worker *w)
{
    int wh = (int)(rand_r(&w->seed) % NWH);
    char who[32];

    snprintf(who, sizeof who, "thread %d", w->t);
    w->inflight = OP_NEXT;
    w->inflight_wh = wh;
    redisReply *r = redisCommand(w->c, "NEXT %s LEASE %d PICKER t%d", WH[wh],
                                 LEASE_S, w->t);
    if (!r)
        return;
    w->inflight = OP_NONE;
    if (r->type == REDIS_REPLY_ARRAY) {
        leased(who, r, wh);
        w->acked[OP_NEXT]++;
    } else if (r->type != REDIS_REPLY_NIL) {
        fail("NEXT %s: %s", WH[wh], reply_text(r));
    }
    freeReplyObject(r);
}

static void
op_outbound(struct worker *w)
{
    size_t i = SIZE_MAX;
    char id[24];

    pthread_mutex_lock(&M.mu);
    for (int tries = 0; tries < 8 && M.n > 0; tries++) {
        size_t k = rand_r(&w->seed) % M.n;
        struct morder *o = &M.o[k];
        if (!o->gone && (o->acked == R_QUEUED || o->acked == R_PICKING)) {
            i = k;
            o->attempted = R_SHIPPED;
            o->touched = true;
            memcpy(id, o->id, sizeof id);
            break;
        }
    }
    pthread_mutex_unlock(&M.mu);
    if (i == SIZE_MAX) {
        op_next(w);
        return;
    }
    w->inflight = OP_OUTBOUND;
    redisReply *r = redisCommand(
        w->c, "OUTBOUND %s OPERATOR op%d RAW {\"t\":%d}", id, w->t, w->t);
    if (!r)
        return;
    w->inflight = OP_NONE;
    if (is_status(r, "OK") || is_status(r, "ALREADY")) {
        pthread_mutex_lock(&M.mu);
        M.o[i].acked = R_SHIPPED;
        M.o[i].acked_ops++;
        pthread_mutex_unlock(&M.mu);
        w->acked[OP_OUTBOUND]++;
    } else {
        fail("OUTBOUND %s: %s", id, reply_text(r));
    }
    freeReplyObject(r);
}

static void *
worker_run(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&stop) && !w->c->err) {
        unsigned x = rand_r(&w->seed) % 100;
        if (x < 35)
            op_push(w, true);
        else if (x < 50)
            op_push(w, false);
        else if (x < 62 && w->npending > 0)
            op_approve(w);
        else if (x < 85)
            op_next(w);
        else
            op_outbound(w);
    }
    return NULL;
}

/* ---- checks after a restart --------------------------------------------- */

struct actual {
    int rank; /* R_NONE: not found */
    uint64_t lease;
};

static const redisReply *
attr(const redisReply *r, const char *k)
{
    const redisReply *a = e2e_field(r, "attrs");
    return a ? e2e_field(a, k) : NULL;
}

/* Check order i against its GET reply. */
static void
check_order(size_t i, const redisReply *r, struct actual *act,
            int unknown_leases[NWH])
{
    struct morder *o = &M.o[i];
    act->rank = R_NONE;
    act->lease = 0;

    if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOTFOUND", 8)) {
        if (o->push_acked)
            fail("order %s: acknowledged push lost (GET: %s)", o->id, r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        fail("GET %s: reply type %d %s", o->id, r->type, reply_text(r));
        return;
    }
    const char *cls = e2e_field_str(r, "class");
    const char *wh = e2e_field_str(r, "warehouse");
    const char *cust = e2e_field_str(r, "customer");
    const redisReply *note = attr(r, "note");
    char want_cust[16], want_note[32];
    snprintf(want_cust, sizeof want_cust, "cust%d", o->thread);
    snprintf(want_note, sizeof want_note, "v-%s", o->id);
    if (!cls || strcmp(cls, CLS[o->cls]) || !wh || strcmp(wh, WH[o->wh]) ||
        !cust || strcmp(cust, want_cust) ||
        e2e_field_int(r, "deadline") != o->deadline || !note ||
        note->type != REDIS_REPLY_STRING || strcmp(note->str, want_note))
        fail("order %s: fields differ from the push (class %s, warehouse "
             "%s, customer %s, deadline %lld vs %lld)",
             o->id, cls ? cls : "?", wh ? wh : "?", cust ? cust : "?",
             e2e_field_int(r, "deadline"), o->deadline);

    const char *state = e2e_field_str(r, "state");
    int rank = state_rank(state);
    act->rank = rank;
    if (rank == R_NONE) {
        fail("order %s is %s: no request could make it so", o->id,
             state ? state : "?");
        return;
    }
    if (rank == R_PICKING) {
        const char *l = e2e_field_str(r, "lease");
        act->lease = l ? strtoull(l, NULL, 10) : 0;
    }
    if (rank < o->acked)
        fail("order %s is %s but %s was acknowledged", o->id, state,
             RANK_NAME[o->acked]);
    if (o->approved && rank == R_NEW)
        fail("order %s was pushed APPROVED but is new", o->id);
    if (o->acked == R_PICKING && rank == R_PICKING && act->lease != o->lease)
        fail("order %s: acknowledged lease %" PRIu64 " but now lease %" PRIu64
             " (handed to two pickers)",
             o->id, o->lease, act->lease);
    bool unknown = rank == R_PICKING && o->acked < R_PICKING;
    if (unknown)
        unknown_leases[o->wh]++;
    else if (rank > max_int(o->attempted, o->acked))
        fail("order %s is %s, beyond anything requested (%s)", o->id, state,
             RANK_NAME[max_int(o->attempted, o->acked)]);
}

/* The audit trail of order i: a chain ending in its state. */
static void
check_audit(redisContext *c, size_t i, const struct actual *act)
{
    struct morder *o = &M.o[i];
    redisReply *r = e2e_cmd(c, "AUDIT %s", o->id);
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        fail("AUDIT %s: type %d, %zu entries", o->id, r->type,
             r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
        freeReplyObject(r);
        return;
    }
    const char *prev = "";
    bool lease_seen = act->rank != R_PICKING;
    char lease_note[40];
    snprintf(lease_note, sizeof lease_note, "lease=%" PRIu64, act->lease);
    for (size_t k = 0; k < r->elements; k++) {
        const redisReply *e = r->element[k];
        const char *from = e2e_field_str(e, "from");
        const char *to = e2e_field_str(e, "to");
        const char *action = e2e_field_str(e, "action");
        const char *note = e2e_field_str(e, "note");
        if (e2e_field_int(e, "seq") != (long long)k || !from || !to ||
            strcmp(from, prev)) {
            fail("AUDIT %s: entry %zu is seq %lld from '%s' to '%s' after "
                 "'%s'",
                 o->id, k, e2e_field_int(e, "seq"), from ? from : "?",
                 to ? to : "?", prev);
            break;
        }
        if (k == 0 && (!action || strcmp(action, "push")))
            fail("AUDIT %s: first entry is %s, not push", o->id,
                 action ? action : "?");
        if (!lease_seen && action && !strcmp(action, "next") && note &&
            strstr(note, lease_note)) {
            const char *end = strstr(note, lease_note) + strlen(lease_note);
            lease_seen = *end < '0' || *end > '9';
        }
        prev = to;
    }
    if (act->rank >= 0 && strcmp(prev, RANK_NAME[act->rank]))
        fail("AUDIT %s ends in %s but the order is %s", o->id, prev,
             RANK_NAME[act->rank]);
    if ((int)r->elements < o->acked_ops)
        fail("AUDIT %s has %zu entries, %d writes were acknowledged", o->id,
             r->elements, o->acked_ops);
    if (!lease_seen)
        fail("AUDIT %s: no NEXT entry for its lease %" PRIu64, o->id,
             act->lease);
    freeReplyObject(r);
}

static struct actual *A; /* per order, for the sort below */

static int
by_pick_order(const void *a, const void *b)
{
    const struct morder *x = &M.o[*(const size_t *)a];
    const struct morder *y = &M.o[*(const size_t *)b];
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    if (x->deadline != y->deadline)
        return x->deadline < y->deadline ? -1 : 1;
    if (x->thread != y->thread) /* cannot happen: deadlines differ */
        return x->thread < y->thread ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/* PEEK equals the model's queue; then NEXT takes `drain` orders of it, in
   that order.  Returns the number drained. */
static size_t
check_queue(redisContext *c, int wh, bool all)
{
    size_t *q = malloc((M.n ? M.n : 1) * sizeof *q), n = 0;
    cr_assert_not_null(q);
    for (size_t i = 0; i < M.n; i++)
        if (!M.o[i].gone && A[i].rank == R_QUEUED && M.o[i].wh == wh)
            q[n++] = i;
    qsort(q, n, sizeof *q, by_pick_order);

    redisReply *r = e2e_cmd(c, "STATS %s", WH[wh]);
    if (e2e_field_int(r, "queued") != (long long)n)
        fail("STATS %s: %lld queued, the model has %zu", WH[wh],
             e2e_field_int(r, "queued"), n);
    freeReplyObject(r);

    size_t k = n < PEEK_LIMIT ? n : PEEK_LIMIT;
    if (k > 0) {
        r = e2e_cmd(c, "PEEK %s COUNT %d", WH[wh], (int)k);
        if (r->type != REDIS_REPLY_ARRAY || r->elements != k) {
            fail("PEEK %s COUNT %zu: type %d, %zu orders", WH[wh], k, r->type,
                 r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
        } else {
            for (size_t j = 0; j < k; j++) {
                const char *id = e2e_field_str(r->element[j], "id");
                if (!id || strcmp(id, M.o[q[j]].id)) {
                    fail("PEEK %s: position %zu is %s, the model says %s",
                         WH[wh], j, id ? id : "?", M.o[q[j]].id);
                    break;
                }
            }
        }
        freeReplyObject(r);
    }

    /* Drain (pipelined): NEXT hands them out in the same order. */
    size_t drain = all ? n : n / 2;
    for (size_t j = 0; j < drain; j++)
        cr_assert_eq(redisAppendCommand(c, "NEXT %s LEASE %d PICKER drain",
                                        WH[wh], LEASE_S),
                     REDIS_OK);
    for (size_t j = 0; j < drain; j++) {
        void *v = NULL;
        cr_assert_eq(redisGetReply(c, &v), REDIS_OK, "drain: %s", c->errstr);
        r = v;
        const char *id = e2e_field_str(r, "id");
        if (r->type != REDIS_REPLY_ARRAY || !id) {
            fail("drain NEXT %s #%zu: type %d %s", WH[wh], j, r->type,
                 r->type == REDIS_REPLY_ARRAY ? "" : reply_text(r));
        } else {
            if (strcmp(id, M.o[q[j]].id))
                fail("drain NEXT %s #%zu gave %s, the queue said %s", WH[wh], j,
                     id, M.o[q[j]].id);
            leased("drain", r, wh);
        }
        freeReplyObject(r);
    }
    if (all) {
        r = e2e_cmd(c, "NEXT %s LEASE %d", WH[wh], LEASE_S);
        if (r->type != REDIS_REPLY_NIL)
            fail("NEXT %s after draining: type %d, not nil", WH[wh], r->type);
        if (r->type == REDIS_REPLY_ARRAY)
            leased("drain", r, wh);
        freeReplyObject(r);
    }
    free(q);
    return drain;
}

struct trial_figures {
    long long acked_ops, inflight, orders_checked, audits, drained;
};

/* Everything after a restart.  inflight_next[w]: NEXTs on w in flight at
   the kill. */
static void
verify(const int inflight_next[NWH], bool last, struct trial_figures *f)
{
    redisContext *c = e2e_connect(&dmn);
    int unknown[NWH] = {0};

    A = realloc(A, (M.n ? M.n : 1) * sizeof *A);
    cr_assert_not_null(A);
    for (size_t base = 0; base < M.n; base += GET_CHUNK) {
        size_t end = base + GET_CHUNK < M.n ? base + GET_CHUNK : M.n;
        for (size_t i = base; i < end; i++)
            if (!M.o[i].gone)
                cr_assert_eq(redisAppendCommand(c, "GET %s", M.o[i].id),
                             REDIS_OK);
        for (size_t i = base; i < end; i++) {
            A[i].rank = R_NONE;
            if (M.o[i].gone)
                continue;
            void *v = NULL;
            cr_assert_eq(redisGetReply(c, &v), REDIS_OK, "GET: %s", c->errstr);
            check_order(i, v, &A[i], unknown);
            freeReplyObject(v);
            f->orders_checked++;
        }
    }
    for (int w = 0; w < NWH; w++)
        if (unknown[w] > inflight_next[w])
            fail("warehouse %s: %d orders leased by no acknowledged NEXT, "
                 "%d NEXT were in flight",
                 WH[w], unknown[w], inflight_next[w]);

    for (size_t i = 0; i < M.n; i++) {
        struct morder *o = &M.o[i];
        bool unknown_lease = A[i].rank == R_PICKING && o->acked < R_PICKING;
        if (A[i].rank != R_NONE && (o->touched || unknown_lease)) {
            check_audit(c, i, &A[i]);
            f->audits++;
        }
    }

    /* The daemon's truth is the model from now on. */
    for (size_t i = 0; i < M.n; i++) {
        struct morder *o = &M.o[i];
        if (o->gone)
            continue;
        o->touched = false;
        if (A[i].rank == R_NONE) {
            o->gone = true;
            continue;
        }
        o->push_acked = true;
        o->acked = o->attempted = A[i].rank;
        if (A[i].rank == R_PICKING) {
            o->lease = A[i].lease;
            o->leased = true;
        }
    }
    for (int w = 0; w < NWH; w++)
        f->drained += (long long)check_queue(c, w, last);
    redisFree(c);
}

/* ---- the trials --------------------------------------------------------- */

static int
env_int(const char *name, int def)
{
    const char *s = getenv(name);
    return s && *s ? atoi(s) : def;
}

Test(crash, kill9_loses_nothing_acknowledged)
{
    int trials = env_int("DISPATCHD_CRASH_TRIALS", 20);
    unsigned seed = (unsigned)env_int("DISPATCHD_CRASH_SEED", 0);
    if (!seed)
        seed = (unsigned)(e2e_now_ms() ^ getpid());
    fprintf(stderr, "crash: %d trials, DISPATCHD_CRASH_SEED=%u\n", trials,
            seed);
    atexit(cleanup);
    M.d0 = e2e_now_ms() + 3 * 24 * 3600000LL; /* far from any escalation */

    long long total_acked = 0, total_checked = 0, total_inflight = 0;
    int64_t t_start = e2e_now_ms();
    int done = 0;
    e2e_start(&dmn, DAEMON_ARGS, NULL);
    for (int trial = 0; trial < trials; trial++) {
        struct worker w[NTHREADS];
        pthread_t th[NTHREADS];
        memset(w, 0, sizeof w);
        atomic_store(&stop, false);
        for (int t = 0; t < NTHREADS; t++) {
            w[t].t = t;
            w[t].seed = seed + (unsigned)(trial * NTHREADS + t) * 7919u;
            w[t].c = e2e_connect(&dmn);
            cr_assert_eq(pthread_create(&th[t], NULL, worker_run, &w[t]), 0);
        }
        unsigned ks = seed + (unsigned)trial;
        long load_ms = 50 + (long)(rand_r(&ks) % 251);
        e2e_sleep_ms(load_ms);
        e2e_kill(&dmn);
        atomic_store(&stop, true);

        struct trial_figures f = {0};
        int inflight_next[NWH] = {0};
        char inflight[64] = "";
        for (int t = 0; t < NTHREADS; t++) {
            pthread_join(th[t], NULL);
            redisFree(w[t].c);
            free(w[t].pending); /* unapproved orders stay new */
            for (int k = 0; k < OP_COUNT; k++)
                f.acked_ops += w[t].acked[k];
            if (w[t].inflight != OP_NONE) {
                f.inflight++;
                size_t k = strlen(inflight);
                snprintf(inflight + k, sizeof inflight - k, " %s",
                         OP_NAME[w[t].inflight]);
            }
            if (w[t].inflight == OP_NEXT)
                inflight_next[w[t].inflight_wh]++;
        }

        int before = atomic_load(&failures);
        dmn.port = 0;
        e2e_start(&dmn, DAEMON_ARGS, NULL);
        verify(inflight_next, trial == trials - 1, &f);
        int now_failed = atomic_load(&failures) - before;
        fprintf(stderr,
                "crash: trial %d: killed after %ld ms; %lld acknowledged "
                "ops, %lld in flight (%s); %lld orders checked, %lld audit "
                "trails, %lld drained; %d failures\n",
                trial, load_ms, f.acked_ops, f.inflight,
                inflight[0] ? inflight + 1 : "-", f.orders_checked, f.audits,
                f.drained, now_failed);
        total_acked += f.acked_ops;
        total_checked += f.orders_checked;
        total_inflight += f.inflight;
        done++;
        if (now_failed)
            break;
    }
    /* The daemon that verified the last trial stops cleanly. */
    int st = e2e_stop(&dmn);
    if (st != 0)
        fail("SIGTERM after the last trial: exit status %d", st);
    fprintf(stderr,
            "crash: %d trials in %.1f s; %lld acknowledged operations "
            "checked, %lld in flight at a kill, %lld order checks; %d "
            "failures (log: %s)\n",
            done, (double)(e2e_now_ms() - t_start) / 1000, total_acked,
            total_inflight, total_checked, atomic_load(&failures), dmn.log);
    cr_assert_eq(atomic_load(&failures), 0, "%d failures, see above",
                 atomic_load(&failures));
    free(A);
    free(M.o);
}
