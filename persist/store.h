/*
 * store — durable orders and audit trails in RocksDB, written by one
 * persistence thread with group commit.
 *
 * The event-loop thread calls store_put()/store_delete(): each encodes its
 * record at once (so the caller may change the order right after) and hands
 * it to the persistence thread through one queue (one short lock per
 * hand-off).  Neither ever blocks: the queue's bound, opt.queue_max, is
 * soft, and the loop asks store_busy() before taking on a write.  The
 * persistence thread writes everything queued as one WriteBatch, syncs the
 * WAL once per group (mode sync), advances the durable ticket and calls
 * opt.wake() so the loop can send the replies that waited.
 *
 * Column families: "orders" (id -> record), "audit" (id, 0x00, big-endian
 * u32 sequence -> entry), "meta" (format version), "events" (big-endian
 * u64 event sequence -> the event's JSON; created when an older store
 * lacks it).  Knows nothing of
 * sockets or libevent.  Thread rules are given per function.
 */
#ifndef DISPATCHD_STORE_H
#define DISPATCHD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../queue/order.h"

enum store_durability {
    STORE_SYNC,  /* a ticket is durable once its group's WAL is synced */
    STORE_BATCH, /* durable at once; the WAL is synced every batch_ms */
    STORE_NONE,  /* durable at once; never synced explicitly */
};

struct store_options {
    int durability;   /* enum store_durability; default STORE_SYNC */
    int batch_ms;     /* STORE_BATCH sync period; default 10 */
    size_t queue_max; /* records waiting before store_busy() is
                         true (soft: puts beyond it are accepted);
                         default 8192 (also when 0) */
    /* Called from the persistence thread each time the durable ticket
       advances or the health changes.  Must be thread-safe and quick. */
    void (*wake)(void *arg);
    void *wake_arg;
    /* Groups are written by the loop itself, in store_commit_inline()
       before it waits for events (as Redis writes its AOF before it
       sleeps), instead of by the persistence thread; the thread still
       syncs batch mode every batch_ms and takes over the retries while
       writes fail. */
    bool inline_commit;
    /* No compaction until store_load() has read the orders: the read at
       start then has the core to itself.  A clean stop flushes the
       memtables into new level-0 files, and a compaction that the next
       open started at once doubled the restart on a core shared with
       it (bench/peers row 6).  The caller must call store_load() before
       writing much: level-0 files pile up until it does. */
    bool defer_compactions;
};

/* One audit trail entry: time, actor, action, old and new state, and the
   raw message that caused it. */
struct audit_entry {
    int64_t at;        /* ms */
    int action;        /* enum order_action */
    int from;          /* enum order_state, or -1 (push) */
    int to;            /* enum order_state */
    const char *actor; /* client name, or "" */
    size_t actor_len;
    const char *raw; /* the raw message, or "" */
    size_t raw_len;
    const char *note; /* reason, lease, picker...; or "" */
    size_t note_len;
};

#define STORE_GROUP_BUCKETS 14

struct store_stats {
    int durability;
    uint64_t submitted; /* tickets handed out */
    uint64_t durable;   /* highest durable ticket */
    uint64_t groups;    /* write batches committed */
    uint64_t records;   /* records written */
    uint64_t syncs;     /* WAL syncs */
    uint64_t sync_us_last, sync_us_max, sync_us_total;
    uint64_t failures; /* failed group writes (each retried) */
    size_t max_group;
    /* Groups by size: [i] counts groups of 2^(i-1) < size <= 2^i records
       ([0]: one record); the last also counts every larger group. */
    uint64_t group_sizes[STORE_GROUP_BUCKETS];
};

/* RocksDB's own memory, summed over the column families: memtables
   (active and waiting to flush), SST index and filter blocks, and the
   block cache. */
struct store_memory {
    uint64_t memtable_bytes, table_readers_bytes, block_cache_bytes;
};

void store_options_default(struct store_options *opt);

/* Open (creating) the store in dir.  NULL with a message in err when the
   directory cannot be used, RocksDB fails, or the format is newer than this
   build understands.  Loop thread. */
struct store *store_open(const char *dir, const struct store_options *opt,
                         char *err, size_t errlen);
/* Write everything queued, sync, stop the thread, close.  Loop thread. */
void store_close(struct store *s);

/* Read every stored order, in id order; each is decoded into a new order
   handed to each() (which owns it).  each() returning non-zero stops with
   that value.  Then compactions start (opt.defer_compactions).  Returns
   0, or -1 with err.  Before the first store_put. */
int store_load(struct store *s, int (*each)(void *ctx, struct order *o),
               void *ctx, char *err, size_t errlen);

/* Record o's current state and, when a is not NULL, append audit entry
   number o->audit_n - 1 (the caller increments o->audit_n first).
   Returns the ticket (> 0), or 0 when the store is failing (nothing was
   queued: the caller must refuse the write).  Never waits for room: a put
   while store_busy() is true is queued too.  Loop thread. */
uint64_t store_put(struct store *s, const struct order *o,
                   const struct audit_entry *a);
/* Delete an order and its whole audit trail (retention).  Same returns. */
uint64_t store_delete(struct store *s, const char *id);

/* The event log.  An event is written in the same WriteBatch as the
   change it reports: the loop calls store_group_begin(), then store_put()
   (the change) and store_event() (its events), then store_group_end().
   While a group is held the persistence thread does not take the queue,
   so everything queued inside it is committed together.  Holds nest; the
   loop must not wait for anything while it holds one.  Loop thread. */
void store_group_begin(struct store *s);
void store_group_end(struct store *s);
/* Queue event seq (json, len bytes).  Returns its ticket; not refused
   while the store is failing (it reports a change that was accepted),
   only 0 once the store is closing.  Loop thread. */
uint64_t store_event(struct store *s, uint64_t seq, const char *json,
                     size_t len);
/* Delete every event with a sequence below `below` (retention), as one
   range delete.  Returns the ticket, or 0 as store_delete.  Loop thread. */
uint64_t store_events_trim(struct store *s, uint64_t below);
/* The highest (lowest) stored event sequence, 0 when there is none.
   Returns 0, or -1 with err.  Loop thread. */
int store_events_last(struct store *s, uint64_t *seq, char *err, size_t errlen);
int store_events_first(struct store *s, uint64_t *seq, char *err,
                       size_t errlen);
/* Call fn for at most n stored events with a sequence > after, in order;
   fn returning non-zero stops.  Like store_audit, waits (briefly) for the
   writer in batch and none modes.  Returns 0, or -1 with err.  Loop
   thread. */
int store_events_read(struct store *s, uint64_t after, size_t n,
                      int (*fn)(void *ctx, uint64_t seq, const char *json,
                                size_t len),
                      void *ctx, char *err, size_t errlen);

/* Small durable settings in the "meta" column family (the notifier's
   delivery cursors).  store_meta_put queues key (1..STORE_META_KEY_MAX
   bytes, not "format") = val in the next group; returns its ticket, or 0
   while the store is failing (nothing queued).  store_meta_get copies at
   most cap bytes of the value into buf and its full length into *len:
   0, 1 when the key is absent, -1 with err.  Loop thread. */
#define STORE_META_KEY_MAX 200
uint64_t store_meta_put(struct store *s, const char *key, const char *val,
                        size_t len);
int store_meta_get(struct store *s, const char *key, char *buf, size_t cap,
                   size_t *len, char *err, size_t errlen);

/* true while opt.queue_max or more records wait in the hand-off queue,
   not yet taken by the persistence thread (the disk is behind): the
   caller should answer BUSY to new writes instead of queueing more.  It
   turns false by itself when the thread takes the queue for its next
   group; nothing is called then, so ask again.  Loop thread.    When it answers
   true, the next group the thread writes wakes the loop (opt.wake) in every
   mode, so a caller that stopped for room hears when there is some. */
bool store_busy(struct store *s);
/* With opt.inline_commit: write (and in sync mode sync) everything queued
   as one group, on the calling (loop) thread.  1 when the durable ticket
   advanced, 0 when there was nothing to do (or the thread is writing), -1
   when the write failed: the store is failing and the thread retries the
   group.  Never between store_group_begin and store_group_end. */
int store_commit_inline(struct store *s);

/* Highest ticket that is durable under the store's mode.  Any thread. */
uint64_t store_durable(struct store *s);
/* false (and the reason) while writes are failing; writes resume, and it
   turns true again, once a retried group succeeds.  Any thread. */
bool store_ok(struct store *s, char *reason, size_t len);

/* Call fn for each audit entry of id, oldest first; fn returning non-zero
   stops.  Every entry queued before the call is included: in batch and
   none modes it first waits (briefly, at most 2 s) for the writer to
   catch up.  Returns 0, or -1 with err.  Loop thread. */
int store_audit(struct store *s, const char *id, size_t idlen,
                int (*fn)(void *ctx, uint32_t seq, const struct audit_entry *a),
                void *ctx, char *err, size_t errlen);

/* A consistent online copy in dir (which must not exist), usable with
   store_open.  Returns 0, or -1 with err.  Loop thread. */
int store_checkpoint(struct store *s, const char *dir, char *err,
                     size_t errlen);

void store_stats(struct store *s, struct store_stats *st);
/* Asks RocksDB (a property read per column family): only for reports,
   not on every STATS-like call.  Any thread. */
void store_memory(struct store *s, struct store_memory *m);

/* The record codec (record.c), versioned and bounds-checked.
   order_encode returns the encoded length; when it is > cap nothing useful
   was written and the caller retries with a bigger buffer.  It always
   writes the current version (2). */
size_t record_encode(const struct order *o, char *buf, size_t cap);
/* Reads the current and every older version (fields an older record lacks
   get their defaults).  NULL with err on a truncated, corrupt or
   newer-format record. */
struct order *record_decode(const char *buf, size_t len, char *err,
                            size_t errlen);
size_t audit_encode(const struct audit_entry *a, char *buf, size_t cap);
/* Fills a with pointers into buf. */
int audit_decode(const char *buf, size_t len, struct audit_entry *a);

#endif
