/*
 * config — dispatchd's settings: defaults, the INI file, the command line.
 * Command-line options override the file; the file overrides defaults.
 * Durations are written as "300", "300s", "250ms", "15m", "4h" or "30d".
 */
#ifndef DISPATCHD_CONFIG_H
#define DISPATCHD_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "http.h"
#include "notify.h"
#include "pickq.h"

/* Who writes a group of changes to RocksDB (--group-commit). */
enum group_commit {
    COMMIT_AUTO,   /* the loop unless every group is synced */
    COMMIT_LOOP,   /* the event loop, before it waits for events */
    COMMIT_THREAD, /* the persistence thread */
};

struct config {
    char bind[256];             /* listen address: 127.0.0.1 */
    int port;                   /* RESP port: 7420 */
    char data[PATH_MAX];        /* RocksDB directory: ./var/data */
    int durability;             /* enum store_durability: sync */
    int batch_ms;               /* batch mode sync period: 10 */
    int group_commit;           /* enum group_commit: auto */
    int store_queue_max;        /* records waiting for the store before
                                   changes are refused BUSY: 8192 */
    int max_clients;            /* connections accepted at once: 10000 */
    int64_t idle_timeout_ms;    /* close idle clients after: 300 s (0 off) */
    int64_t retention_ms;       /* keep finished orders for: 30 d */
    int64_t event_retention_ms; /* keep logged events for: 7 d */
    uint64_t event_retention_count; /* and at most this many: 10^6 */
    int log_level;                  /* enum log_level: info */
    char users[PATH_MAX];           /* --users FILE; "" = no authentication */
    struct http_config http;  /* --http-port 7421 (0: off), bound as RESP */
    char checkpoint_dir[400]; /* CHECKPOINT writes below: var/checkpoints
                                 (the data directory's sibling) */
    /* Output buffer limits (bytes; soft ones held for *_soft_ms). */
    size_t out_hard, out_soft; /* clients: 256mb, 64mb for 60s */
    int64_t out_soft_ms;
    size_t sub_hard, sub_soft; /* subscribers: 32mb, 8mb for 60s */
    int64_t sub_soft_ms;
    struct pickq_config queue;
    struct notify_config notify; /* --notify, --alert, --notify-* */
};

void config_default(struct config *cfg);

/* Fill cfg from argv (and the --config file it names).  Returns 0 to run,
   1 when --help or --version was printed (exit 0), -1 after printing an
   error to stderr (exit 2). */
int config_from_args(struct config *cfg, int argc, char **argv);

/* Fill what defaults from other settings (the checkpoint directory). */
void config_finish(struct config *cfg);

/* Parse a duration ("250ms", "15m", "4h", "30d"; bare numbers are
   `unit_ms` each).  Returns 0 and *ms, or -1. */
int config_duration(const char *s, int64_t unit_ms, int64_t *ms);

/* Parse a size ("512", "64kb", "32mb", "1gb"; bare numbers are bytes).
   Returns 0 and *bytes, or -1. */
int config_size(const char *s, size_t *bytes);

/* Parse an output limit "HARD SOFT PERIOD" ("32mb 8mb 60s"; 0 turns a
   limit off).  Returns 0, or -1. */
int config_output_limit(const char *s, size_t *hard, size_t *soft,
                        int64_t *soft_ms);

#endif
