/*
 * config — dispatchd's settings: defaults, the INI file, the command line.
 * Command-line options override the file; the file overrides defaults.
 * Durations are written as "300", "300s", "250ms", "15m", "4h" or "30d".
 */
#ifndef DISPATCHD_CONFIG_H
#define DISPATCHD_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "pickq.h"

struct config {
    char bind[256];           /* listen address: 127.0.0.1 */
    int port;                 /* RESP port: 7420 */
    char data[PATH_MAX];      /* RocksDB directory: ./var/data */
    int durability;           /* enum store_durability: sync */
    int batch_ms;             /* batch mode sync period: 10 */
    int max_clients;          /* connections accepted at once: 10000 */
    int64_t idle_timeout_ms;  /* close idle clients after: 300 s (0 off) */
    int64_t retention_ms;     /* keep finished orders for: 30 d */
    int log_level;            /* enum log_level: info */
    struct pickq_config queue;
};

void config_default(struct config *cfg);

/* Fill cfg from argv (and the --config file it names).  Returns 0 to run,
   1 when --help or --version was printed (exit 0), -1 after printing an
   error to stderr (exit 2). */
int config_from_args(struct config *cfg, int argc, char **argv);

/* Parse a duration ("250ms", "15m", "4h", "30d"; bare numbers are
   `unit_ms` each).  Returns 0 and *ms, or -1. */
int config_duration(const char *s, int64_t unit_ms, int64_t *ms);

#endif
