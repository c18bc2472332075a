/*
 * store — orders and audit trails in RocksDB, written with group commit.
 *
 * Why group commit.  A synced RocksDB write costs one fsync of the WAL
 * (about 140 us here) however small it is, while a synced WriteBatch of 64
 * records costs about 350 us, under 6 us a record (bench_store).  RocksDB
 * groups concurrent writers itself, but dispatchd has one writer, the
 * event loop, which must never wait for a disk.  So the grouping is ours:
 *
 *   loop thread                         persistence thread
 *   -----------                         ------------------
 *   store_put: encode the record,       wait until something is queued;
 *   lock, append to the queue buffer,   lock, swap the queue buffer with an
 *   take ticket = ++submitted, unlock   empty one, note the last ticket,
 *   and carry on; the reply waits       unlock; write all of it as ONE
 *   until store_durable() >= ticket.    WriteBatch with ONE WAL sync; then
 *                                       durable = last ticket; wake().
 *
 * While the persistence thread syncs, the loop keeps appending, so the next
 * group holds everything that arrived during the previous sync: the slower
 * the disk, the bigger the groups, and the fsync cost per record falls as
 * the load rises.  The queue buffer is one byte array of encoded records,
 * swapped whole (double buffering), so a hand-off is one short lock and one
 * memcpy, and the persistence thread never holds the lock while it writes.
 * In batch and none modes the same groups are written without a sync, and
 * in batch mode the thread syncs the WAL at least every batch_ms.
 *
 * Back-pressure.  store_put never waits for the disk: the queue buffer
 * grows as needed.  When the disk falls behind, records pile up in it, and
 * once opt.queue_max of them wait store_busy() says so, so that the daemon
 * can answer BUSY to new writes.  Blocking the loop instead would stall the
 * replies, timers and reads that need no disk at all.  The bound is soft:
 * a command is to check before it changes anything, and whatever it then
 * writes (one change may take several records) is accepted.
 *
 * Failures.  When a group write fails (disk full, I/O error) RocksDB 7.8
 * may stay in a read-only background-error state, and its C API has no
 * rocksdb_resume().  The persistence thread therefore keeps the failed
 * group, marks the store failing (store_put refuses new records, store_ok
 * reports RocksDB's message) and retries with backoff (50 ms doubling to
 * 1 s), closing and reopening the database before each retry.  A reopen
 * that cannot write (the disk is still full) falls back to a read-only
 * handle, so store_audit() and store_load() keep answering.  The handles
 * are swapped under a rwlock: readers (audit, load, checkpoint) share it,
 * the reopen takes it exclusively.  Writes by the persistence thread need
 * no lock: it is the only thread that changes the handles.
 *
 * The file runs past the usual 800 lines because the hand-off, the thread
 * and the handle swapping share one struct and its locking rules, which
 * are easiest to check side by side.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "store.h"

/* The layout of the column families; a store written with a higher number
   is refused. */
#define STORE_FORMAT 1
#define META_FORMAT_KEY "format"

#define LOG_LEVEL_NONE 6 /* one above rocksdb::InfoLogLevel::HEADER_LEVEL */
#define STORE_QUEUE_MAX_DEFAULT 8192
#define STORE_BATCH_MS_DEFAULT 10
#define RETRY_MIN_MS 50
#define RETRY_MAX_MS 1000
/* Failed attempts, once store_close has been called, before giving up. */
#define CLOSE_RETRIES 3
#define WRITE_BUFFER_BYTES ((size_t)8 << 20)
#define WAL_TOTAL_MAX ((uint64_t)4 * WRITE_BUFFER_BYTES)
#define BLOCK_CACHE_BYTES ((size_t)8 << 20)
#define GATHER_US 1000 /* batch/none: a group gathers this long... */
#define GATHER_MIN 512 /* ...unless it already holds this many records */

/* How a sync-mode group reaches the disk: a write with sync set (0) or an
   unsynced write and then rocksdb_flush_wal(db, 1) (1).  bench_store
   measures both: the synced write is as fast or faster here. */
#define SYNC_BY_FLUSH_WAL 0

enum { CF_DEFAULT, CF_ORDERS, CF_AUDIT, CF_META, CF_EVENTS, CF_N };
static const char *const cf_names[CF_N] = {"default", "orders", "audit", "meta",
                                           "events"};

/* QOP_EVENT: the id is the 8-byte big-endian sequence, the record the
   event's JSON.  QOP_EVENT_TRIM: the id is two such keys, [lo, hi). */
enum {
    QOP_PUT = 1,
    QOP_DELETE = 2,
    QOP_EVENT = 3,
    QOP_EVENT_TRIM = 4,
    QOP_META = 5 /* the id is the meta key, the record its value */
};

/* One queued record in a queue buffer: this header, then idlen bytes of id,
   reclen bytes of order record, audlen bytes of audit entry. */
struct qent {
    uint32_t op;
    uint32_t idlen;
    uint32_t reclen;
    uint32_t audlen;
    uint32_t seq; /* audit sequence when audlen > 0 */
};

struct qbuf {
    char *p;
    size_t len;
    size_t cap;
    size_t count; /* records */
};

struct store {
    char *dir;
    struct store_options opt;

    /* RocksDB.  The handles change only on the persistence thread, under
       dblock held exclusively; readers on other threads hold it shared. */
    pthread_rwlock_t dblock;
    rocksdb_t *db;             /* NULL while no reopen has succeeded */
    bool db_readonly;          /* db is a read-only fallback handle */
    bool compactions_deferred; /* opened with them off (store_load) */
    rocksdb_column_family_handle_t *cf[CF_N];
    rocksdb_options_t *dbopt;
    rocksdb_options_t *cfopt[CF_N];
    rocksdb_cache_t *cache; /* one block cache for every family */
    rocksdb_writeoptions_t *wsync;
    rocksdb_writeoptions_t *wnosync;

    /* The hand-off. */
    pthread_mutex_t mu;
    pthread_cond_t work; /* the persistence thread waits (monotonic) */
    struct qbuf q;
    bool stop;
    bool sleeping;              /* the persistence thread waits on work */
    bool writing;               /* a group is being written (by either
                                   thread): the other does not take one */
    bool writer_waiting;        /* the thread waits for writing to end */
    int held;                   /* store_group_begin nesting (loop) */
    bool held_waiting;          /* the thread waits on unheld */
    pthread_cond_t unheld;      /* signalled when held drops to 0 */
    _Atomic uint64_t submitted; /* changed under mu, read anywhere */
    _Atomic uint64_t durable;   /* highest ticket written (and synced) */

    /* Health. */
    _Atomic bool ok;
    _Atomic bool want_room; /* the loop waits for the queue to drain */
    _Atomic size_t queued;  /* q.count, readable without mu */
    pthread_mutex_t health_mu;
    char reason[256];

    /* Loop thread only: where store_put encodes, and what an inline
       commit takes and writes (store_commit_inline). */
    char *scratch;
    size_t scratch_cap;
    struct qbuf inl;
    rocksdb_writebatch_t *ibatch;
    _Atomic bool unsynced; /* batch mode: inline writes wait for a sync */

    /* Persistence thread only. */
    pthread_t thread;
    struct qbuf spare;
    rocksdb_writebatch_t *batch;

    pthread_mutex_t stat_mu;
    struct store_stats st;
};

/* ---- small helpers ---- */

static void
fatal_oom(const char *what)
{
    fprintf(stderr, "store: out of memory (%s)\n", what);
    abort();
}

static void
check_pthread(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "store: %s: %s\n", what, strerror(rc));
        abort();
    }
}

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timespec
us_to_ts(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u),
                          (long)(us % 1000000u) * 1000};
    return ts;
}

static void
set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, fmt, a, b);
}

static void
wake(struct store *s)
{
    if (s->opt.wake != NULL)
        s->opt.wake(s->opt.wake_arg);
}

static void
qbuf_reserve(struct qbuf *b, size_t more)
{
    if (more <= b->cap - b->len)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            fatal_oom("queue buffer");
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL)
        fatal_oom("queue buffer");
    b->p = p;
    b->cap = cap;
}

/* ---- opening and closing the RocksDB handles ---- */

static void
db_close_handles(struct store *s)
{
    for (int i = 0; i < CF_N; i++) {
        if (s->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        s->cf[i] = NULL;
    }
    if (s->db != NULL)
        rocksdb_close(s->db);
    s->db = NULL;
    s->db_readonly = false;
}

/* Deletes the OPTIONS-*.dbtmp files an open leaves (see options_create).
   Best effort: a file that cannot be deleted costs a few hundred bytes
   and is tried again at the next open. */
static void
remove_options_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 14 && strncmp(e->d_name, "OPTIONS-", 8) == 0 &&
            strcmp(e->d_name + n - 6, ".dbtmp") == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* Opens s->db and s->cf; returns 0 or -1 with *errp (rocksdb_free it). */
static int
db_open_handles(struct store *s, bool readonly, char **errp)
{
    const rocksdb_options_t *cfo[CF_N];
    for (int i = 0; i < CF_N; i++)
        cfo[i] = s->cfopt[i];
    *errp = NULL;
    if (readonly)
        s->db = rocksdb_open_for_read_only_column_families(
            s->dbopt, s->dir, CF_N, cf_names, cfo, s->cf, 0, errp);
    else
        s->db = rocksdb_open_column_families(s->dbopt, s->dir, CF_N, cf_names,
                                             cfo, s->cf, errp);
    if (!readonly)
        remove_options_tmp(s->dir);
    if (*errp != NULL) {
        if (s->db != NULL)
            db_close_handles(s);
        s->db = NULL;
        for (int i = 0; i < CF_N; i++)
            s->cf[i] = NULL;
        return -1;
    }
    s->db_readonly = readonly;
    return 0;
}

static void
options_destroy(struct store *s)
{
    for (int i = 0; i < CF_N; i++) {
        if (s->cfopt[i] != NULL && s->cfopt[i] != s->dbopt)
            rocksdb_options_destroy(s->cfopt[i]);
        s->cfopt[i] = NULL;
    }
    if (s->dbopt != NULL)
        rocksdb_options_destroy(s->dbopt);
    s->dbopt = NULL;
    if (s->cache != NULL)
        rocksdb_cache_destroy(s->cache);
    s->cache = NULL;
    if (s->wsync != NULL)
        rocksdb_writeoptions_destroy(s->wsync);
    if (s->wnosync != NULL)
        rocksdb_writeoptions_destroy(s->wnosync);
    s->wsync = s->wnosync = NULL;
}

/* RocksDB's default environment, its flush and compaction threads at
   the lowest CPU priority (nice 19): on a core shared with the event loop
   they give way to it.  At normal priority the flush and the compaction
   that follow a restart (of the WAL replayed after a SIGKILL, of the
   level-0 files a clean stop left) made the first pops wait up to 4 ms
   for the core; at nice 19 the slowest of 1,000 pops was 0.2-0.5 ms
   (bench/peers row 6).  The price, on a saturated core: pipelined pushes
   8-14% slower, as writes stall while a flush waits for the core.  One
   for the process, never destroyed (it wraps RocksDB's own default). */
static rocksdb_env_t *env;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void
env_create(void)
{
    env = rocksdb_create_default_env();
    if (env == NULL) {
        fprintf(stderr, "store: cannot create the RocksDB environment\n");
        abort();
    }
    rocksdb_env_lower_thread_pool_cpu_priority(env);
    rocksdb_env_lower_high_priority_thread_pool_cpu_priority(env);
}

static void
options_create(struct store *s)
{
    check_pthread(pthread_once(&env_once, env_create), "env once");
    s->dbopt = rocksdb_options_create();
    rocksdb_options_set_env(s->dbopt, env);
    /* One block cache, shared by every family, so that what it holds has
       one bound (the default gives each table factory a cache of its
       own) and STATS can report it.  Reads are rare: a restart reads
       "orders" once, AUDIT reads a trail. */
    s->cache = rocksdb_cache_create_lru(BLOCK_CACHE_BYTES);
    rocksdb_block_based_table_options_t *dflt =
        rocksdb_block_based_options_create();
    if (s->cache == NULL || dflt == NULL) {
        fprintf(stderr, "store: out of memory creating RocksDB options\n");
        abort();
    }
    rocksdb_block_based_options_set_block_cache(dflt, s->cache);
    rocksdb_options_set_block_based_table_factory(s->dbopt, dflt);
    rocksdb_block_based_options_destroy(dflt);
    rocksdb_options_set_create_if_missing(s->dbopt, 1);
    rocksdb_options_set_create_missing_column_families(s->dbopt, 1);
    rocksdb_options_set_max_background_jobs(s->dbopt, 2);
    /* No info LOG at all: a level above HEADER (5) filters every line.
       Debian's librocksdb 7.8 is built with assertions on, and its LOG
       writer asserts (aborting the daemon) when it is written again after
       a failed write, which is exactly what a full disk produces: the
       first error is logged, fails, and the next line aborts.  Errors
       still reach us as statuses and land in store_ok()'s reason.  The
       price: RocksDB cannot write this level into its OPTIONS file and
       leaves an OPTIONS-*.dbtmp at each open, which remove_options_tmp()
       deletes. */
    rocksdb_options_set_info_log_level(s->dbopt, LOG_LEVEL_NONE);
    rocksdb_options_set_keep_log_file_num(s->dbopt, 1);
    /* No WAL recycling (recycle_log_file_num), although a synced write
       that overwrites allocated blocks is faster (a bare write + fdatasync
       here: 120-145 us overwriting, 195-275 us growing the file): RocksDB
       7.8 turns it off under point-in-time recovery, the mode that keeps
       every acknowledged write, and only allows it with modes that may
       drop or skip records. */
    /* A WAL file lives until every column family has flushed what it
       holds, and meta or events may take hours to fill a memtable: the
       first WAL then outlived 10^6 orders (480 MB of WAL, replayed after
       a kill -9, and never recycled).  Past this total RocksDB flushes
       the families that hold the oldest file. */
    rocksdb_options_set_max_total_wal_size(s->dbopt, WAL_TOTAL_MAX);
    /* Vector memtables: we are the only writer, we write far more than
       we scan (a scan is an AUDIT or a restart), and an insert into the
       default skiplist costs a cache miss per level: under a pipelined
       PUSH load that was over half of the persistence thread's time.  A
       vector appends; a scan sorts a copy of the memtable, which small
       (8 MiB) memtables keep cheap. */
    rocksdb_options_set_allow_concurrent_memtable_write(s->dbopt, 0);
    rocksdb_options_set_write_buffer_size(s->dbopt, WRITE_BUFFER_BYTES);
    rocksdb_options_set_max_write_buffer_number(s->dbopt, 4);
    /* Except the audit trails: they are read by range (AUDIT, the HTTP
       order view, the trace panel) while the daemon writes, and sorting
       a copy of a full 8 MiB vector memtable for every read cost ~5 ms
       (GET /v1/orders/{id} fell to ~100/s under load).  The skiplist
       keeps a trail read at O(log n). */
    rocksdb_options_t *audit_opt = rocksdb_options_create_copy(s->dbopt);
    rocksdb_options_set_memtable_vector_rep(s->dbopt);

    s->cfopt[CF_DEFAULT] = s->dbopt;
    s->cfopt[CF_META] = s->dbopt;
    /* Retention removes finished orders with a point delete in "orders"
       and one DeleteRange over the order's prefix in "audit".  The
       compact-on-deletion collector marks an SST file for compaction when
       a sliding window of 128 entries in it holds 64 or more tombstones,
       so runs of deleted orders are compacted away instead of piling up
       in front of every scan (store_load, store_audit).  Range tombstones
       are compacted with the files they cover in the usual way. */
    s->cfopt[CF_EVENTS] = s->dbopt;
    for (int i = CF_ORDERS; i <= CF_AUDIT; i++) {
        s->cfopt[i] =
            i == CF_AUDIT ? audit_opt : rocksdb_options_create_copy(s->dbopt);
        rocksdb_options_add_compact_on_deletion_collector_factory(s->cfopt[i],
                                                                  128, 64);
    }
    /* "orders" is read whole, at start, and never by key: 32 KiB blocks
       instead of 4 KiB cost a start an eighth of the block set-ups and
       checksums (reading 10^6 orders: 828-875 ms against 906-924). */
    rocksdb_block_based_table_options_t *bbto =
        rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_size(bbto, 32 << 10);
    rocksdb_block_based_options_set_block_cache(bbto, s->cache);
    rocksdb_options_set_block_based_table_factory(s->cfopt[CF_ORDERS], bbto);
    /* Uncompressed: the records hold ids, names and free-form payloads
       that snappy shrank by about a fifth (10^6 orders: 329 MB on disk
       instead of 278), and a start spent a twentieth of its time
       decompressing them (restart 951-967 ms instead of 1,027-1,040). */
    rocksdb_options_set_compression(s->cfopt[CF_ORDERS],
                                    rocksdb_no_compression);
    rocksdb_block_based_options_destroy(bbto);
    s->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wsync, 1);
    s->wnosync = rocksdb_writeoptions_create();
}

/* Auto compactions on or off in the options of every family (read at
   the next open). */
static void
set_auto_compactions(struct store *s, bool on)
{
    for (int i = 0; i < CF_N; i++)
        rocksdb_options_set_disable_auto_compactions(s->cfopt[i], !on);
}

/* Start the compactions that store_open deferred, in every family. */
static int
resume_compactions(struct store *s, char *err, size_t errlen)
{
    if (!s->compactions_deferred)
        return 0;
    static const char *const keys[] = {"disable_auto_compactions"};
    static const char *const vals[] = {"false"};
    for (int i = 0; i < CF_N; i++) {
        char *rerr = NULL;
        rocksdb_set_options_cf(s->db, s->cf[i], 1, keys, vals, &rerr);
        if (rerr != NULL) {
            set_err(err, errlen, "store %s: starting compactions: %s", s->dir,
                    rerr);
            rocksdb_free(rerr);
            return -1;
        }
    }
    s->compactions_deferred = false;
    return 0;
}

/* Reads meta "format": writes it on a new store, refuses a newer one. */
static int
check_format(struct store *s, char *err, size_t errlen)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, ro, s->cf[CF_META], META_FORMAT_KEY,
                             strlen(META_FORMAT_KEY), &vlen, &rerr);
    rocksdb_readoptions_destroy(ro);
    if (rerr != NULL) {
        set_err(err, errlen, "store %s: reading the format: %s", s->dir, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    if (v == NULL) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%d", STORE_FORMAT);
        rocksdb_put_cf(s->db, s->wsync, s->cf[CF_META], META_FORMAT_KEY,
                       strlen(META_FORMAT_KEY), buf, (size_t)n, &rerr);
        if (rerr != NULL) {
            set_err(err, errlen, "store %s: writing the format: %s", s->dir,
                    rerr);
            rocksdb_free(rerr);
            return -1;
        }
        return 0;
    }
    unsigned long long version = 0;
    bool good = vlen > 0 && vlen < 20;
    for (size_t i = 0; good && i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9')
            good = false;
        else
            version = version * 10 + (unsigned)(v[i] - '0');
    }
    rocksdb_free(v);
    if (!good) {
        set_err(err, errlen, "store %s: corrupt format version in meta%s",
                s->dir, "");
        return -1;
    }
    if (version > STORE_FORMAT) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     "store %s has format version %llu, newer than this "
                     "build's version %d: upgrade dispatchd",
                     s->dir, version, STORE_FORMAT);
        return -1;
    }
    return 0;
}

/* ---- health ---- */

static void
set_failing(struct store *s, const char *why)
{
    pthread_mutex_lock(&s->health_mu);
    snprintf(s->reason, sizeof s->reason, "%s", why);
    pthread_mutex_unlock(&s->health_mu);
    pthread_mutex_lock(&s->stat_mu);
    s->st.failures++;
    pthread_mutex_unlock(&s->stat_mu);
    if (atomic_exchange(&s->ok, false))
        wake(s);
}

static void
set_healthy(struct store *s)
{
    if (atomic_load(&s->ok))
        return;
    pthread_mutex_lock(&s->health_mu);
    s->reason[0] = '\0';
    pthread_mutex_unlock(&s->health_mu);
    atomic_store(&s->ok, true);
    wake(s);
}

bool
store_ok(struct store *s, char *reason, size_t len)
{
    if (atomic_load(&s->ok))
        return true;
    if (reason != NULL && len > 0) {
        pthread_mutex_lock(&s->health_mu);
        snprintf(reason, len, "%s", s->reason);
        pthread_mutex_unlock(&s->health_mu);
    }
    return false;
}

/* ---- the persistence thread ---- */

/* Reopen after a failed write: read-write when the storage allows it,
   else read-only so reads keep working. */
static void
reopen(struct store *s)
{
    char *err = NULL;
    pthread_rwlock_wrlock(&s->dblock);
    db_close_handles(s);
    if (db_open_handles(s, false, &err) != 0) {
        rocksdb_free(err);
        if (db_open_handles(s, true, &err) != 0)
            rocksdb_free(err);
    }
    pthread_rwlock_unlock(&s->dblock);
}

/* Sleeps ms, or less when store_close asks the thread to stop. */
static bool
backoff_wait(struct store *s, unsigned ms)
{
    uint64_t until = now_us() + (uint64_t)ms * 1000u;
    pthread_mutex_lock(&s->mu);
    while (!s->stop && now_us() < until) {
        struct timespec ts = us_to_ts(until);
        pthread_cond_timedwait(&s->work, &s->mu, &ts);
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* One attempt at writing the batch (and syncing when sync); returns NULL
   or RocksDB's error (rocksdb_free it). */
static char *
write_once(struct store *s, rocksdb_writebatch_t *batch, bool sync)
{
    char *err = NULL;
    if (s->db == NULL || s->db_readonly)
        return NULL; /* caller checks the handle first */
    if (rocksdb_writebatch_count(batch) > 0) {
        bool flush = sync && SYNC_BY_FLUSH_WAL;
        rocksdb_write(s->db, sync && !flush ? s->wsync : s->wnosync, batch,
                      &err);
        if (err == NULL && flush)
            rocksdb_flush_wal(s->db, 1, &err);
    } else if (sync) {
        rocksdb_flush_wal(s->db, 1, &err);
    }
    return err;
}

static void
note_sync(struct store *s, uint64_t us)
{
    pthread_mutex_lock(&s->stat_mu);
    s->st.syncs++;
    s->st.sync_us_last = us;
    s->st.sync_us_total += us;
    if (us > s->st.sync_us_max)
        s->st.sync_us_max = us;
    pthread_mutex_unlock(&s->stat_mu);
}

static void
note_group(struct store *s, size_t count)
{
    pthread_mutex_lock(&s->stat_mu);
    s->st.groups++;
    s->st.records += count;
    if (count > s->st.max_group)
        s->st.max_group = count;
    size_t b = 0;
    while (b + 1 < STORE_GROUP_BUCKETS && ((size_t)1 << b) < count)
        b++;
    s->st.group_sizes[b]++;
    pthread_mutex_unlock(&s->stat_mu);
}

/* Writes s->batch (possibly empty: then only syncs), retrying until it
   succeeds.  Returns false only when the store is closing and the storage
   still fails after CLOSE_RETRIES more attempts. */
static bool
commit(struct store *s, bool sync)
{
    unsigned backoff = RETRY_MIN_MS;
    int after_stop = 0;
    for (;;) {
        uint64_t t0 = now_us();
        char *err = NULL;
        if (s->db != NULL && !s->db_readonly) {
            err = write_once(s, s->batch, sync);
            if (err == NULL) {
                if (sync)
                    note_sync(s, now_us() - t0);
                set_healthy(s);
                return true;
            }
            set_failing(s, err);
            rocksdb_free(err);
        } else {
            /* Still no writable handle: the reason stays the error that
               started the failure. */
            pthread_mutex_lock(&s->stat_mu);
            s->st.failures++;
            pthread_mutex_unlock(&s->stat_mu);
        }
        if (backoff_wait(s, backoff) && ++after_stop > CLOSE_RETRIES)
            return false;
        backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
        reopen(s);
    }
}

/* Turns a queue buffer into s->batch. */
static void
build_batch(struct store *s, rocksdb_writebatch_t *batch, const struct qbuf *b)
{
    char akey[ORDER_ID_MAX + 1 + 4];
    char aend[ORDER_ID_MAX + 1];

    rocksdb_writebatch_clear(batch);
    for (size_t off = 0; off < b->len;) {
        struct qent e;
        memcpy(&e, b->p + off, sizeof e);
        const char *id = b->p + off + sizeof e;
        const char *rec = id + e.idlen;
        const char *aud = rec + e.reclen;
        off += sizeof e + e.idlen + e.reclen + e.audlen;

        if (e.op == QOP_META) {
            rocksdb_writebatch_put_cf(batch, s->cf[CF_META], id, e.idlen, rec,
                                      e.reclen);
        } else if (e.op == QOP_EVENT) {
            rocksdb_writebatch_put_cf(batch, s->cf[CF_EVENTS], id, e.idlen, rec,
                                      e.reclen);
        } else if (e.op == QOP_EVENT_TRIM) {
            rocksdb_writebatch_delete_range_cf(batch, s->cf[CF_EVENTS], id, 8,
                                               id + 8, 8);
        } else if (e.op == QOP_PUT) {
            rocksdb_writebatch_put_cf(batch, s->cf[CF_ORDERS], id, e.idlen, rec,
                                      e.reclen);
            if (e.audlen > 0) {
                memcpy(akey, id, e.idlen);
                akey[e.idlen] = '\0';
                akey[e.idlen + 1] = (char)(e.seq >> 24);
                akey[e.idlen + 2] = (char)(e.seq >> 16);
                akey[e.idlen + 3] = (char)(e.seq >> 8);
                akey[e.idlen + 4] = (char)e.seq;
                rocksdb_writebatch_put_cf(batch, s->cf[CF_AUDIT], akey,
                                          e.idlen + 5, aud, e.audlen);
            }
        } else {
            rocksdb_writebatch_delete_cf(batch, s->cf[CF_ORDERS], id, e.idlen);
            /* Every audit key of id lies in [id 0x00, id 0x01). */
            memcpy(akey, id, e.idlen);
            akey[e.idlen] = '\0';
            memcpy(aend, id, e.idlen);
            aend[e.idlen] = '\1';
            rocksdb_writebatch_delete_range_cf(batch, s->cf[CF_AUDIT], akey,
                                               e.idlen + 1, aend, e.idlen + 1);
        }
    }
}

static void *
store_thread(void *arg)
{
    struct store *s = arg;
    bool synced_mode = s->opt.durability == STORE_SYNC;
    bool dirty = false; /* unsynced writes (batch and none modes) */
    uint64_t last_sync = now_us();
    uint64_t period = (uint64_t)s->opt.batch_ms * 1000u;

    for (;;) {
        pthread_mutex_lock(&s->mu);
        /* With inline commit the loop writes the groups; the thread takes
           them only while writes fail (and at close). */
        while (!s->stop && (s->q.count == 0 ||
                            (s->opt.inline_commit && atomic_load(&s->ok)))) {
            if (atomic_exchange(&s->unsynced, false))
                dirty = true;
            s->sleeping = true;
            if (dirty && s->opt.durability == STORE_BATCH) {
                uint64_t due = last_sync + period;
                if (now_us() >= due) {
                    s->sleeping = false;
                    break;
                }
                struct timespec ts = us_to_ts(due);
                pthread_cond_timedwait(&s->work, &s->mu, &ts);
            } else {
                pthread_cond_wait(&s->work, &s->mu);
            }
            s->sleeping = false;
        }
        /* Modes batch and none reply before the write, so nobody waits
           for this group: let it gather for up to GATHER_US instead of
           waking for every record (each wake is a futex call and a
           context switch the 2-core machine pays twice). */
        if (!synced_mode && !s->stop && s->q.count < GATHER_MIN) {
            struct timespec ts = us_to_ts(now_us() + GATHER_US);
            pthread_cond_timedwait(&s->work, &s->mu, &ts);
        }
        /* A change and the events it reports go in one group: the loop
           holds the queue while it queues them (store_group_begin). */
        while (s->held > 0 && !s->stop) {
            s->held_waiting = true;
            pthread_cond_wait(&s->unheld, &s->mu);
        }
        s->held_waiting = false;
        /* One writer at a time, so that durable only moves forward. */
        while (s->writing) {
            s->writer_waiting = true;
            pthread_cond_wait(&s->work, &s->mu);
        }
        s->writer_waiting = false;
        if (atomic_exchange(&s->unsynced, false))
            dirty = true;
        s->writing = s->q.count > 0;
        struct qbuf taken = s->q;
        s->q = s->spare;
        s->spare = taken;
        atomic_store(&s->queued, s->q.count);
        uint64_t last = atomic_load(&s->submitted);
        bool stopping = s->stop;
        pthread_mutex_unlock(&s->mu);

        if (taken.count > 0) {
            build_batch(s, s->batch, &taken);
            bool ok = commit(s, synced_mode);
            pthread_mutex_lock(&s->mu);
            s->writing = false;
            pthread_mutex_unlock(&s->mu);
            if (ok) {
                atomic_store(&s->durable, last);
                dirty = !synced_mode;
            } else {
                fprintf(stderr,
                        "store: closed with %zu record(s) not written "
                        "(tickets up to %" PRIu64 ")\n",
                        taken.count, last);
            }
            note_group(s, taken.count);
            s->spare.len = 0;
            s->spare.count = 0;
            /* Do not keep a burst's buffer for ever. */
            if (s->spare.cap > ((size_t)64 << 20)) {
                free(s->spare.p);
                s->spare.p = NULL;
                s->spare.cap = 0;
            }
            /* Batch and none modes reply before the write and need no
               wake, unless the loop found the queue full and waits for
               room (store_busy). */
            if (ok && (synced_mode || atomic_exchange(&s->want_room, false)))
                wake(s);
        }
        if (dirty && (stopping || (s->opt.durability == STORE_BATCH &&
                                   now_us() - last_sync >= period))) {
            rocksdb_writebatch_clear(s->batch);
            commit(s, true);
            dirty = false;
            last_sync = now_us();
        }
        if (stopping)
            break;
    }
    return NULL;
}

/* ---- the public calls ---- */

void
store_options_default(struct store_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->durability = STORE_SYNC;
    opt->batch_ms = STORE_BATCH_MS_DEFAULT;
    opt->queue_max = STORE_QUEUE_MAX_DEFAULT;
}

static void
store_free(struct store *s)
{
    db_close_handles(s);
    options_destroy(s);
    if (s->batch != NULL)
        rocksdb_writebatch_destroy(s->batch);
    if (s->ibatch != NULL)
        rocksdb_writebatch_destroy(s->ibatch);
    free(s->q.p);
    free(s->spare.p);
    free(s->inl.p);
    free(s->scratch);
    free(s->dir);
    free(s);
}

struct store *
store_open(const char *dir, const struct store_options *opt, char *err,
           size_t errlen)
{
    struct store *s = calloc(1, sizeof *s);
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        set_err(err, errlen, "store %s: %s", dir, "out of memory");
        return NULL;
    }
    if (opt != NULL)
        s->opt = *opt;
    else
        store_options_default(&s->opt);
    if (s->opt.durability != STORE_BATCH && s->opt.durability != STORE_NONE)
        s->opt.durability = STORE_SYNC;
    if (s->opt.batch_ms <= 0)
        s->opt.batch_ms = STORE_BATCH_MS_DEFAULT;
    if (s->opt.queue_max == 0)
        s->opt.queue_max = STORE_QUEUE_MAX_DEFAULT;
    s->st.durability = s->opt.durability;

    options_create(s);
    s->batch = rocksdb_writebatch_create();
    s->ibatch = rocksdb_writebatch_create();
    char *rerr = NULL;
    set_auto_compactions(s, !s->opt.defer_compactions);
    int open_rc = db_open_handles(s, false, &rerr);
    /* The DB keeps its own copy: a reopen after a failure compacts. */
    set_auto_compactions(s, true);
    s->compactions_deferred = open_rc == 0 && s->opt.defer_compactions;
    if (open_rc != 0) {
        set_err(err, errlen, "store %s: %s", dir, rerr);
        rocksdb_free(rerr);
        store_free(s);
        return NULL;
    }
    if (check_format(s, err, errlen) != 0) {
        store_free(s);
        return NULL;
    }

    pthread_condattr_t ca;
    check_pthread(pthread_condattr_init(&ca), "condattr");
    check_pthread(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC),
                  "condattr clock");
    check_pthread(pthread_cond_init(&s->work, &ca), "cond init");
    pthread_condattr_destroy(&ca);
    check_pthread(pthread_cond_init(&s->unheld, NULL), "cond init");
    check_pthread(pthread_mutex_init(&s->mu, NULL), "mutex init");
    check_pthread(pthread_mutex_init(&s->health_mu, NULL), "mutex init");
    check_pthread(pthread_mutex_init(&s->stat_mu, NULL), "mutex init");
    check_pthread(pthread_rwlock_init(&s->dblock, NULL), "rwlock init");
    atomic_init(&s->ok, true);
    atomic_init(&s->submitted, 0);
    atomic_init(&s->durable, 0);

    int rc = pthread_create(&s->thread, NULL, store_thread, s);
    if (rc != 0) {
        set_err(err, errlen, "store %s: starting its thread: %s", dir,
                strerror(rc));
        pthread_rwlock_destroy(&s->dblock);
        pthread_mutex_destroy(&s->stat_mu);
        pthread_mutex_destroy(&s->health_mu);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->unheld);
        store_free(s);
        return NULL;
    }
    return s;
}

/* Write the memtables to SST files, so that the next open replays no WAL:
   a clean restart with 10^6 orders then reads them instead of rebuilding
   RocksDB's skiplists first.  Best effort: the WAL still holds the data. */
static void
flush_memtables(struct store *s)
{
    if (s->db == NULL || s->db_readonly)
        return;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < CF_N; i++) {
        char *err = NULL;
        rocksdb_flush_cf(s->db, fo, s->cf[i], &err);
        if (err != NULL) {
            fprintf(stderr, "store: flush at close: %s\n", err);
            rocksdb_free(err);
            break;
        }
    }
    rocksdb_flushoptions_destroy(fo);
}

void
store_close(struct store *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    check_pthread(pthread_join(s->thread, NULL), "joining the thread");
    flush_memtables(s);
    pthread_rwlock_destroy(&s->dblock);
    pthread_mutex_destroy(&s->stat_mu);
    pthread_mutex_destroy(&s->health_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->unheld);
    store_free(s);
}

/* Should the sleeping thread be woken for what is queued?  Not while
   the loop holds the queue (store_group_end wakes it once, for the whole
   group), and not with inline commit, where the loop writes the group
   before it sleeps, unless the store is failing (the thread retries).
   Under s->mu. */
static bool
thread_wanted(const struct store *s)
{
    return s->sleeping && s->q.count > 0 &&
           (!s->opt.inline_commit || !atomic_load(&s->ok));
}

/* Appends one record to the queue and returns its ticket, or 0. */
static uint64_t
enqueue(struct store *s, uint32_t op, const char *id, size_t idlen,
        const char *rec, size_t reclen, const char *aud, size_t audlen,
        uint32_t seq, bool force)
{
    if (reclen > UINT32_MAX || audlen > UINT32_MAX) {
        fprintf(stderr, "store: a record of %zu bytes (4 GiB at most)\n",
                reclen > audlen ? reclen : audlen);
        abort();
    }
    struct qent e = {op, (uint32_t)idlen, (uint32_t)reclen, (uint32_t)audlen,
                     seq};
    size_t need = sizeof e + idlen + reclen + audlen;

    /* Never waits for room: queue_max is a soft bound that callers check
       with store_busy() before they take on work, so a slow disk never
       stalls the event loop. */
    pthread_mutex_lock(&s->mu);
    if ((!force && !atomic_load(&s->ok)) || s->stop) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    qbuf_reserve(&s->q, need);
    char *p = s->q.p + s->q.len;
    memcpy(p, &e, sizeof e);
    memcpy(p + sizeof e, id, idlen);
    if (reclen > 0)
        memcpy(p + sizeof e + idlen, rec, reclen);
    if (audlen > 0)
        memcpy(p + sizeof e + idlen + reclen, aud, audlen);
    s->q.len += need;
    s->q.count++;
    atomic_store(&s->queued, s->q.count);
    uint64_t ticket = atomic_load(&s->submitted) + 1;
    atomic_store(&s->submitted, ticket);
    bool signal = s->held == 0 && thread_wanted(s);
    pthread_mutex_unlock(&s->mu);
    /* After the unlock: woken under the lock, the thread would only block
       on it again (two more futex calls and a context switch). */
    if (signal)
        pthread_cond_signal(&s->work);
    return ticket;
}

static void
scratch_reserve(struct store *s, size_t need)
{
    if (need <= s->scratch_cap)
        return;
    size_t cap = s->scratch_cap ? s->scratch_cap : 1024;
    while (cap < need)
        cap *= 2;
    char *p = realloc(s->scratch, cap);
    if (p == NULL)
        fatal_oom("encoding buffer");
    s->scratch = p;
    s->scratch_cap = cap;
}

uint64_t
store_put(struct store *s, const struct order *o, const struct audit_entry *a)
{
    if (!atomic_load(&s->ok))
        return 0;
    size_t reclen = record_encode(o, s->scratch, s->scratch_cap);
    if (reclen > s->scratch_cap) {
        scratch_reserve(s, reclen);
        record_encode(o, s->scratch, s->scratch_cap);
    }
    size_t audlen = 0;
    uint32_t seq = 0;
    if (a != NULL) {
        if (o->audit_n == 0) {
            fprintf(stderr,
                    "store_put: order %s: audit entry with "
                    "audit_n 0\n",
                    o->id);
            abort();
        }
        seq = o->audit_n - 1;
        audlen = audit_encode(a, s->scratch + reclen, s->scratch_cap - reclen);
        if (audlen > s->scratch_cap - reclen) {
            scratch_reserve(s, reclen + audlen);
            audit_encode(a, s->scratch + reclen, s->scratch_cap - reclen);
        }
    }
    return enqueue(s, QOP_PUT, o->id, strnlen(o->id, ORDER_ID_MAX), s->scratch,
                   reclen, s->scratch + reclen, audlen, seq, false);
}

uint64_t
store_delete(struct store *s, const char *id)
{
    size_t idlen = strnlen(id, ORDER_ID_MAX + 1);
    if (idlen > ORDER_ID_MAX) {
        fprintf(stderr, "store_delete: id %.*s... longer than %d bytes\n",
                ORDER_ID_MAX, id, ORDER_ID_MAX);
        abort();
    }
    return enqueue(s, QOP_DELETE, id, idlen, NULL, 0, NULL, 0, 0, false);
}

/* ---- the event log ---- */

static void
seq_key(char *k, uint64_t seq)
{
    for (int i = 0; i < 8; i++)
        k[i] = (char)(seq >> (56 - 8 * i));
}

static uint64_t
key_seq(const char *k)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)k[i];
    return v;
}

void
store_group_begin(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    s->held++;
    pthread_mutex_unlock(&s->mu);
}

void
store_group_end(struct store *s)
{
    bool unheld = false, work = false;
    pthread_mutex_lock(&s->mu);
    if (s->held > 0 && --s->held == 0) {
        unheld = s->held_waiting;
        work = thread_wanted(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (unheld)
        pthread_cond_signal(&s->unheld);
    if (work)
        pthread_cond_signal(&s->work);
}

uint64_t
store_event(struct store *s, uint64_t seq, const char *json, size_t len)
{
    char k[8];
    seq_key(k, seq);
    /* Not refused while failing: the change it reports was accepted, and
       both are written when the store recovers. */
    return enqueue(s, QOP_EVENT, k, 8, json, len, NULL, 0, 0, true);
}

uint64_t
store_events_trim(struct store *s, uint64_t below)
{
    char k[16];
    seq_key(k, 0);
    seq_key(k + 8, below);
    return enqueue(s, QOP_EVENT_TRIM, k, 16, NULL, 0, NULL, 0, 0, false);
}

static void catch_up(struct store *s);
static int read_begin(struct store *s, char *err, size_t errlen);

uint64_t
store_meta_put(struct store *s, const char *key, const char *val, size_t len)
{
    size_t klen = strlen(key);
    if (klen == 0 || klen > STORE_META_KEY_MAX || strcmp(key, "format") == 0) {
        fprintf(stderr, "store_meta_put: bad key '%s'\n", key);
        abort();
    }
    return enqueue(s, QOP_META, key, klen, val, len, NULL, 0, 0, false);
}

int
store_meta_get(struct store *s, const char *key, char *buf, size_t cap,
               size_t *len, char *err, size_t errlen)
{
    *len = 0;
    catch_up(s);
    if (read_begin(s, err, errlen) != 0)
        return -1;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, ro, s->cf[CF_META], key, strlen(key), &vlen,
                             &rerr);
    rocksdb_readoptions_destroy(ro);
    pthread_rwlock_unlock(&s->dblock);
    if (rerr) {
        set_err(err, errlen, "store %s: %s", s->dir, rerr);
        free(rerr);
        return -1;
    }
    if (v == NULL)
        return 1;
    *len = vlen;
    memcpy(buf, v, vlen < cap ? vlen : cap);
    rocksdb_free(v);
    return 0;
}

int
store_commit_inline(struct store *s)
{
    if (!s->opt.inline_commit)
        return 0;
    pthread_mutex_lock(&s->mu);
    if (s->q.count == 0 || s->writing || s->held > 0 || s->stop ||
        !atomic_load(&s->ok)) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    struct qbuf taken = s->q;
    s->q = s->inl;
    s->inl = taken;
    s->writing = true;
    atomic_store(&s->queued, 0);
    uint64_t last = atomic_load(&s->submitted);
    pthread_mutex_unlock(&s->mu);

    bool sync = s->opt.durability == STORE_SYNC;
    build_batch(s, s->ibatch, &s->inl);
    uint64_t t0 = now_us();
    pthread_rwlock_rdlock(&s->dblock);
    char *err = s->db != NULL && !s->db_readonly
                    ? write_once(s, s->ibatch, sync)
                    : NULL;
    bool wrote = s->db != NULL && !s->db_readonly;
    pthread_rwlock_unlock(&s->dblock);
    bool ok = wrote && err == NULL;
    if (ok) {
        if (sync)
            note_sync(s, now_us() - t0);
        else if (s->opt.durability == STORE_BATCH &&
                 !atomic_exchange(&s->unsynced, true)) {
            pthread_mutex_lock(&s->mu);
            if (s->sleeping)
                pthread_cond_signal(&s->work); /* to sync within batch_ms */
            pthread_mutex_unlock(&s->mu);
        }
        note_group(s, s->inl.count);
        atomic_store(&s->durable, last);
    } else {
        set_failing(s, err != NULL ? err : "no writable database");
        rocksdb_free(err);
    }
    pthread_mutex_lock(&s->mu);
    s->writing = false;
    if (!ok) {
        /* The thread writes this group, with retries: it goes back to the
           queue ahead of anything queued since (nothing can be: only this
           thread queues). */
        struct qbuf back = s->q;
        s->q = s->inl;
        s->inl = back;
        atomic_store(&s->queued, s->q.count);
    }
    if (!ok || s->writer_waiting)
        pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    s->inl.len = 0;
    s->inl.count = 0;
    if (s->inl.cap > ((size_t)64 << 20)) {
        free(s->inl.p);
        s->inl.p = NULL;
        s->inl.cap = 0;
    }
    return ok ? 1 : -1;
}

bool
store_busy(struct store *s)
{
    /* Asked before every request: no lock, the count is mirrored. */
    bool busy = atomic_load(&s->queued) >= s->opt.queue_max;
    if (busy)
        atomic_store(&s->want_room, true);
    return busy;
}

uint64_t
store_durable(struct store *s)
{
    if (s->opt.durability == STORE_SYNC)
        return atomic_load(&s->durable);
    return atomic_load(&s->submitted);
}

/* Takes dblock shared; returns -1 with err when there is no handle. */
static int
read_begin(struct store *s, char *err, size_t errlen)
{
    pthread_rwlock_rdlock(&s->dblock);
    if (s->db != NULL)
        return 0;
    pthread_rwlock_unlock(&s->dblock);
    char why[256];
    if (store_ok(s, why, sizeof why))
        snprintf(why, sizeof why, "reopening");
    set_err(err, errlen, "store %s unavailable: %s", s->dir, why);
    return -1;
}

static int
iter_error(rocksdb_iterator_t *it, struct store *s, char *err, size_t errlen)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr == NULL)
        return 0;
    set_err(err, errlen, "store %s: %s", s->dir, rerr);
    rocksdb_free(rerr);
    return -1;
}

int
store_load(struct store *s, int (*each)(void *ctx, struct order *o), void *ctx,
           char *err, size_t errlen)
{
    if (read_begin(s, err, errlen) != 0)
        return -1;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    /* One pass over everything: do not push hot blocks out of the cache,
       read ahead in large steps. */
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_readahead_size(ro, 2 << 20);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_ORDERS]);
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        char why[200];
        struct order *o = record_decode(v, vlen, why, sizeof why);
        if (o == NULL) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "store %s: order %.*s: %s", s->dir,
                         (int)(klen > ORDER_ID_MAX ? ORDER_ID_MAX : klen), k,
                         why);
            rc = -1;
            break;
        }
        rc = each(ctx, o);
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = iter_error(it, s, err, errlen);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (rc == 0)
        rc = resume_compactions(s, err, errlen);
    pthread_rwlock_unlock(&s->dblock);
    return rc;
}

/* In batch and none modes an acknowledged change may still be in the
   hand-off queue: let the writer catch up (a group takes about a
   millisecond; at most 2 s) so a read shows every acknowledged record, as
   in sync mode. */
static void
catch_up(struct store *s)
{
    uint64_t want = atomic_load(&s->submitted);
    struct timespec nap = {0, 50 * 1000};
    /* In sync mode what was acknowledged is written already; waiting
       for everything submitted would stall reads under load. */
    if (s->opt.durability == STORE_SYNC)
        return;
    /* Inline commit: the queue is this (loop) thread's to write, and
       nobody else writes it while the store is healthy; waiting would
       only wait for ourselves.  Write it now, unless a group is open
       (its records may not be split), and wait only while the thread
       writes. */
    if (s->opt.inline_commit) {
        (void)store_commit_inline(s);
        pthread_mutex_lock(&s->mu);
        bool thread_writes = s->writing && s->held == 0;
        pthread_mutex_unlock(&s->mu);
        if (!thread_writes)
            return;
    }
    for (int i = 0;
         i < 40000 && atomic_load(&s->durable) < want && atomic_load(&s->ok);
         i++)
        nanosleep(&nap, NULL);
}

int
store_audit(struct store *s, const char *id, size_t idlen,
            int (*fn)(void *ctx, uint32_t seq, const struct audit_entry *a),
            void *ctx, char *err, size_t errlen)
{
    /* No stored order has such an id, so it has no trail. */
    if (idlen > ORDER_ID_MAX || memchr(id, '\0', idlen) != NULL)
        return 0;
    char lo[ORDER_ID_MAX + 1], hi[ORDER_ID_MAX + 1];
    memcpy(lo, id, idlen);
    lo[idlen] = '\0';
    memcpy(hi, id, idlen);
    hi[idlen] = '\1';

    catch_up(s);
    if (read_begin(s, err, errlen) != 0)
        return -1;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, idlen + 1);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_AUDIT]);
    int rc = 0;
    for (rocksdb_iter_seek(it, lo, idlen + 1); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const unsigned char *k =
            (const unsigned char *)rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        struct audit_entry a;
        if (klen != idlen + 5 || audit_decode(v, vlen, &a) != 0) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen,
                         "store %s: order %.*s: corrupt audit entry", s->dir,
                         (int)idlen, id);
            rc = -1;
            break;
        }
        uint32_t seq = (uint32_t)k[idlen + 1] << 24 |
                       (uint32_t)k[idlen + 2] << 16 |
                       (uint32_t)k[idlen + 3] << 8 | (uint32_t)k[idlen + 4];
        if (fn(ctx, seq, &a) != 0)
            break; /* the caller has seen enough: not an error */
    }
    if (rc == 0)
        rc = iter_error(it, s, err, errlen);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    pthread_rwlock_unlock(&s->dblock);
    return rc;
}

/* The first (first true) or last key of the events column family. */
static int
events_edge(struct store *s, bool first, uint64_t *seq, char *err,
            size_t errlen)
{
    *seq = 0;
    if (read_begin(s, err, errlen) != 0)
        return -1;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_EVENTS]);
    if (first)
        rocksdb_iter_seek_to_first(it);
    else
        rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
        size_t klen = 0;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen == 8)
            *seq = key_seq(k);
    }
    int rc = iter_error(it, s, err, errlen);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    pthread_rwlock_unlock(&s->dblock);
    return rc;
}

int
store_events_last(struct store *s, uint64_t *seq, char *err, size_t errlen)
{
    return events_edge(s, false, seq, err, errlen);
}

int
store_events_first(struct store *s, uint64_t *seq, char *err, size_t errlen)
{
    return events_edge(s, true, seq, err, errlen);
}

int
store_events_read(struct store *s, uint64_t after, size_t n,
                  int (*fn)(void *ctx, uint64_t seq, const char *json,
                            size_t len),
                  void *ctx, char *err, size_t errlen)
{
    if (n == 0 || after == UINT64_MAX)
        return 0;
    catch_up(s);
    if (read_begin(s, err, errlen) != 0)
        return -1;
    char k[8];
    seq_key(k, after + 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_EVENTS]);
    int rc = 0;
    size_t done = 0;
    for (rocksdb_iter_seek(it, k, 8); done < n && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *key = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen != 8) {
            set_err(err, errlen, "store %s: corrupt event key%s", s->dir, "");
            rc = -1;
            break;
        }
        done++;
        if (fn(ctx, key_seq(key), v, vlen) != 0)
            break;
    }
    if (rc == 0)
        rc = iter_error(it, s, err, errlen);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    pthread_rwlock_unlock(&s->dblock);
    return rc;
}

int
store_checkpoint(struct store *s, const char *dir, char *err, size_t errlen)
{
    if (read_begin(s, err, errlen) != 0)
        return -1;
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &rerr);
    if (rerr == NULL) {
        /* 0: flush the memtables first, so the copy needs no WAL. */
        rocksdb_checkpoint_create(cp, dir, 0, &rerr);
        rocksdb_checkpoint_object_destroy(cp);
    }
    pthread_rwlock_unlock(&s->dblock);
    if (rerr != NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "checkpoint %s: %s", dir, rerr);
        rocksdb_free(rerr);
        return -1;
    }
    return 0;
}

void
store_stats(struct store *s, struct store_stats *st)
{
    pthread_mutex_lock(&s->stat_mu);
    *st = s->st;
    pthread_mutex_unlock(&s->stat_mu);
    st->durability = s->opt.durability;
    st->submitted = atomic_load(&s->submitted);
    st->durable = store_durable(s);
}

void
store_memory(struct store *s, struct store_memory *m)
{
    memset(m, 0, sizeof *m);
    pthread_rwlock_rdlock(&s->dblock);
    for (int i = 0; s->db != NULL && i < CF_N; i++) {
        uint64_t v;
        if (s->cf[i] == NULL)
            continue;
        if (!rocksdb_property_int_cf(s->db, s->cf[i],
                                     "rocksdb.cur-size-all-mem-tables", &v))
            m->memtable_bytes += v;
        if (!rocksdb_property_int_cf(s->db, s->cf[i],
                                     "rocksdb.estimate-table-readers-mem", &v))
            m->table_readers_bytes += v;
    }
    uint64_t v;
    if (s->db != NULL &&
        !rocksdb_property_int(s->db, "rocksdb.block-cache-usage", &v))
        m->block_cache_bytes = v; /* one cache (options_create) */
    pthread_rwlock_unlock(&s->dblock);
}
