/*
 * test_e2e_clients — real, unmodified Redis clients against the real
 * daemon: Debian's redis-cli (one command per process, a script piped into
 * one process, --pipe mass insertion, an interactive session on a
 * pseudo-terminal, RESP3 with -3), redis-py (tests/clients_check.py) and
 * redis-benchmark.  These are functional checks: redis-benchmark's numbers
 * are printed, never asserted.
 *
 * Each test starts its own dispatchd; fini, an atexit handler and e2e.h's
 * parent-death signal make sure none outlives it, and finish() checks that
 * SIGTERM stops it with status 0 and no sanitizer report in its log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e.h"

#define REDIS_CLI "/usr/bin/redis-cli"
#define REDIS_BENCHMARK "/usr/bin/redis-benchmark"
#define PYTHON "/usr/bin/python3" /* Debian's, where python3-redis lives */

static struct daemon D;

/* Before the daemon's directory goes: show its log when it holds an
   error or a sanitizer report, since assertion messages point at it. */
static void
show_bad_log(const struct daemon *d)
{
    char buf[8192];
    FILE *f = d->dir[0] ? fopen(d->log, "r") : NULL;
    if (!f)
        return;
    bool bad = false;
    while (fgets(buf, sizeof buf, f))
        bad |= strstr(buf, " error ") || strstr(buf, "runtime error") ||
               strstr(buf, "Sanitizer");
    if (bad && fseek(f, -(long)sizeof buf + 1, SEEK_END) != 0)
        rewind(f);
    size_t n = bad ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (bad)
        fprintf(stderr, "---- %s (end) ----\n%s\n----\n", d->log, buf);
    fclose(f);
}

static void
teardown(void)
{
    show_bad_log(&D);
    e2e_cleanup(&D);
    e2e_free_kept();
}

static void
setup(void)
{
    static bool armed;
    if (!armed) {
        armed = true;
        atexit(teardown);
    }
    const char *need[] = {REDIS_CLI, REDIS_BENCHMARK, PYTHON};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        cr_assert(access(need[i], X_OK) == 0,
                  "%s is missing (tools/setup.sh installs it)", need[i]);
}

/* The end of every test: SIGTERM must stop the daemon with status 0 (the
   sanitizer build exits non-zero on a leak) and its log must hold no
   sanitizer report. */
static void
finish(void)
{
    int st = e2e_stop(&D);
    char log[4096] = "";
    FILE *f = fopen(D.log, "r");
    bool bad = false;
    if (f) {
        char line[4096];
        while (fgets(line, sizeof line, f))
            bad |= strstr(line, "runtime error") || strstr(line, "Sanitizer");
        if (fseek(f, -(long)sizeof log + 1, SEEK_END) != 0)
            rewind(f);
        log[fread(log, 1, sizeof log - 1, f)] = '\0';
        fclose(f);
    }
    cr_assert_eq(st, 0, "dispatchd exited with %d on SIGTERM; log:\n%s", st,
                 log);
    cr_assert(!bad, "sanitizer report in the daemon log:\n%s", log);
}

TestSuite(clients, .init = setup, .fini = teardown, .timeout = 120);

/* Run a shell command (printf-style), stderr merged into stdout; returns
   its output and puts its exit status in *status. */
static const char *
sh(int *status, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd - 8, "command too long");
    strcat(cmd, " 2>&1");
    FILE *f = popen(cmd, "r");
    cr_assert(f, "popen: %s", strerror(errno));
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    cr_assert(out);
    size_t k;
    while ((k = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len < 1024) {
            cap *= 2;
            out = realloc(out, cap);
            cr_assert(out);
        }
    }
    out[len] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    e2e_keep(out);
    return out;
}

/* redis-cli -p PORT <args>: the output, which must have exit status 0. */
static const char *
cli(const char *args)
{
    int st;
    const char *out = sh(&st, REDIS_CLI " -p %d %s", D.port, args);
    cr_assert_eq(st, 0, "redis-cli %s: exit %d, output:\n%s", args, st, out);
    return out;
}

static void
contains(const char *got, const char *want, const char *what)
{
    cr_assert(strstr(got, want), "%s: output lacks '%s':\n%s", what, want, got);
}

/* The value on the line after the line "key" in redis-cli's raw output. */
static const char *
after(const char *out, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\n%s\n", key);
    const char *p = strstr(out, pat);
    if (!p && strncmp(out, pat + 1, strlen(pat + 1)) == 0)
        p = out - 1;
    cr_assert(p, "no line '%s' in:\n%s", key, out);
    p += strlen(pat);
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *v = malloc(n + 1);
    cr_assert(v);
    memcpy(v, p, n);
    v[n] = '\0';
    return e2e_keep(v);
}

Test(clients, redis_cli_one_command_per_process)
{
    e2e_start(&D, NULL);
    cr_assert_str_eq(cli("PING"), "PONG\n");
    cr_assert_str_eq(cli("PUSH RD20251127-0892 rush4h CUSTOMER shenwo "
                         "WAREHOUSE hz1 ATTR packaging moisture-proof"),
                     "OK\n");
    cr_assert_str_eq(cli("APPROVE RD20251127-0892"), "OK\n");
    const char *n = cli("NEXT hz1 PICKER wang LEASE 300");
    cr_assert(strncmp(n, "id\nRD20251127-0892\n", 19) == 0, "NEXT output:\n%s",
              n);
    cr_assert_str_eq(after(n, "state"), "picking");
    cr_assert_str_eq(after(n, "picker"), "wang");
    cr_assert_str_eq(after(n, "packaging"), "moisture-proof");
    const char *lease = after(n, "lease");
    cr_assert(lease[0] && strspn(lease, "0123456789") == strlen(lease),
              "lease '%s'", lease);
    cr_assert_str_eq(cli("OUTBOUND RD20251127-0892 OPERATOR wang RAW "
                         "'{\"order\":\"RD20251127-0892\",\"op\":\"wang\"}'"),
                     "OK\n");
    cr_assert_str_eq(cli("OUTBOUND RD20251127-0892 OPERATOR wang"),
                     "ALREADY\n");
    const char *g = cli("GET RD20251127-0892");
    cr_assert_str_eq(after(g, "state"), "shipped");
    cr_assert_str_eq(after(g, "operator"), "wang");
    cr_assert_str_eq(after(g, "customer"), "shenwo");
    const char *a = cli("AUDIT RD20251127-0892");
    contains(a, "{\"order\":\"RD20251127-0892\",\"op\":\"wang\"}\n",
             "AUDIT raw payload");
    /* An error reply is printed, not fatal. */
    int st;
    const char *e = sh(&st, REDIS_CLI " -p %d APPROVE RD20251127-0892", D.port);
    contains(e, "BADSTATE order RD20251127-0892 is shipped, cannot approve",
             "redis-cli error");
    /* Human-readable form (what a terminal shows). */
    g = cli("--no-raw GET RD20251127-0892");
    contains(g, " 1) \"id\"\n 2) \"RD20251127-0892\"\n", "--no-raw GET");
    contains(g, "\"state\"\n", "--no-raw GET");
    finish();
}

Test(clients, redis_cli_script_on_stdin)
{
    e2e_start(&D, NULL);
    int st;
    const char *out = sh(&st,
                         "printf '%%s\\n' "
                         "'PUSH s1 normal APPROVED' "
                         "'PUSH s2 normal CUSTOMER \"two words\" APPROVED' "
                         "'PEEK main COUNT 1' "
                         "'NEXT main PICKER li' "
                         "'OUTBOUND s1 OPERATOR li' "
                         "'GET s1' "
                         "'APPROVE nope' "
                         "'GET s2' "
                         "'PING' | " REDIS_CLI " -p %d",
                         D.port);
    cr_assert_eq(st, 0, "redis-cli from stdin: exit %d\n%s", st, out);
    cr_assert(strncmp(out, "OK\nOK\nid\ns1\n", 12) == 0, "output:\n%s", out);
    const char *ship = strstr(out, "\nstate\nshipped\n");
    const char *err = strstr(out, "NOTFOUND");
    const char *two = strstr(out, "\ncustomer\ntwo words\n");
    cr_assert(ship && err && two, "output:\n%s", out);
    cr_assert(ship < err && err < two, "replies out of order:\n%s", out);
    size_t len = strlen(out);
    cr_assert(len > 5 && strcmp(out + len - 5, "PONG\n") == 0,
              "last reply is not PONG:\n%s", out);
    /* The interactive start-up path fed from a pipe. */
    out = sh(&st, "printf 'PING\\n' | " REDIS_CLI " -p %d", D.port);
    cr_assert_eq(st, 0, "printf PING | redis-cli: exit %d\n%s", st, out);
    cr_assert_str_eq(out, "PONG\n");
    finish();
}

Test(clients, redis_cli_pipe_mass_insert)
{
    e2e_start(&D, NULL);
    int st;
    /* --pipe: raw protocol in, then it sends ECHO <marker> and waits. */
    const char *out =
        sh(&st,
           "for i in $(seq 1 500); do printf 'PUSH m%%d normal APPROVED\\r\\n' "
           "$i; done | " REDIS_CLI " -p %d --pipe",
           D.port);
    cr_assert_eq(st, 0, "redis-cli --pipe: exit %d\n%s", st, out);
    contains(out, "errors: 0, replies: 500", "redis-cli --pipe");
    cr_assert_str_eq(cli("DBSIZE"), "500\n");
    const char *g = cli("GET m500");
    cr_assert_str_eq(after(g, "position"), "499");
    finish();
}

Test(clients, redis_cli_interactive)
{
    e2e_start(&D, NULL);
    cr_assert_str_eq(cli("PUSH it1 rush24h ATTR carrier sf APPROVED"), "OK\n");
    int st;
    const char *out = sh(&st, PYTHON " %s/tests/redis_cli_check.py %d it1",
                         SOURCE_DIR, D.port);
    cr_assert_eq(st, 0, "interactive redis-cli:\n%s", out);
    out = sh(&st, PYTHON " %s/tests/redis_cli_check.py %d it1 -3", SOURCE_DIR,
             D.port);
    cr_assert_eq(st, 0, "interactive redis-cli -3:\n%s", out);
    finish();
}

Test(clients, redis_cli_resp3)
{
    e2e_start(&D, NULL);
    cr_assert_str_eq(cli("PUSH r3 rush24h ATTR carrier sf APPROVED"), "OK\n");
    const char *h = cli("-3 HELLO 3");
    contains(h, "server dispatchd\n", "redis-cli -3 HELLO 3");
    contains(h, "\nproto 3\n", "redis-cli -3 HELLO 3");
    /* Human-readable form: a map prints as "k# key => value". */
    h = cli("-3 --no-raw HELLO 3");
    contains(h, "1# \"server\" => \"dispatchd\"", "HELLO 3 as a map");
    contains(h, "3# \"proto\" => (integer) 3", "HELLO 3 as a map");
    const char *g = cli("-3 --no-raw GET r3");
    contains(g, "1# \"id\" => \"r3\"", "GET as a RESP3 map");
    contains(g, "\"state\" => \"queued\"", "GET as a RESP3 map");
    contains(g, "\"attrs\" => 1# \"carrier\" => \"sf\"", "nested attrs map");
    contains(g, "\"position\" => (integer) 0", "GET as a RESP3 map");
    /* In RESP2 the same order is a flat array. */
    g = cli("--no-raw GET r3");
    contains(g, " 1) \"id\"\n", "GET in RESP2");
    cr_assert(!strstr(g, "=>"), "RESP2 GET printed as a map:\n%s", g);
    /* A RESP3 nil. */
    cr_assert_str_eq(cli("-3 --no-raw NEXT empty"), "(nil)\n");
    finish();
}

Test(clients, redis_py)
{
    e2e_start(&D, NULL);
    int st;
    const char *out =
        sh(&st, PYTHON " %s/tests/clients_check.py %d", SOURCE_DIR, D.port);
    cr_assert_eq(st, 0, "tests/clients_check.py failed (exit %d):\n%s", st,
                 out);
    contains(out, "all checks passed", "clients_check.py");
    finish();
}

Test(clients, redis_benchmark)
{
    e2e_start(&D, NULL);
    int st;
    const char *out = sh(&st,
                         REDIS_BENCHMARK " -h 127.0.0.1 -p %d -n 2000 -P 16 "
                                         "-q PING",
                         D.port);
    cr_assert_eq(st, 0, "redis-benchmark PING: exit %d\n%s", st, out);
    contains(out, "requests per second", "redis-benchmark PING");
    cr_log_info("redis-benchmark -n 2000 -P 16 PING: %s", out);
    out =
        sh(&st, REDIS_BENCHMARK " -h 127.0.0.1 -p %d -n 2000 -P 16 -q -t ping",
           D.port);
    cr_assert_eq(st, 0, "redis-benchmark -t ping: exit %d\n%s", st, out);
    contains(out, "PING_INLINE", "redis-benchmark -t ping");
    contains(out, "PING_MBULK", "redis-benchmark -t ping");
    /* Writes through group commit, ids drawn from 1,000 (repeats are the
       idempotent +OK). */
    out = sh(&st,
             REDIS_BENCHMARK " -h 127.0.0.1 -p %d -n 2000 -P 16 -q -r 1000 "
                             "PUSH bench:__rand_int__ normal",
             D.port);
    cr_assert_eq(st, 0, "redis-benchmark PUSH: exit %d\n%s", st, out);
    contains(out, "requests per second", "redis-benchmark PUSH");
    const char *n = cli("DBSIZE");
    long long k = atoll(n);
    cr_assert(k > 100 && k <= 1000, "DBSIZE after the benchmark: %s", n);
    cr_assert_str_eq(cli("PING"), "PONG\n");
    finish();
}
