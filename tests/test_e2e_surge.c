/*
 * A short surge replay: tools/loadgen replays a normal day then a surge
 * day (scaled down and compressed to seconds) against the real daemon, in
 * each durability mode, and must report every invariant held: every
 * pushed order shipped exactly once, no order held by two pickers, no
 * order picked while a more urgent one waited.  The same replay runs over
 * the binary protocol too (loadgen --proto binary, through dclient).
 * Small and bounded; speed is not checked here (bench/ measures it).
 */
#include "e2e.h"

static struct daemon dmn;

static void
cleanup(void)
{
    e2e_cleanup(&dmn);
}

/* Run loadgen against dmn with --json; returns its exit status and leaves
   its JSON output in out. */
static int
run_loadgen(const char *extra, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s --port %d --surge=92,310 --time-factor 43200 --producers 2 "
             "--pickers 4 --pick-ms 1:5 --drain-ms 5000 --json --quiet %s",
             LOADGEN_BIN, dmn.port, extra);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The integer after "key": in the "invariants" object of loadgen's JSON,
   or -1. */
static long long
json_int_after(const char *json, const char *key)
{
    char pat[64];
    const char *inv = strstr(json, "\"invariants\":{");
    if (!inv)
        return -1;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(inv, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static void
surge_proto(const char *mode, const char *proto)
{
    static char out[1 << 16];
    char extra[64];

    atexit(cleanup);
    e2e_start(&dmn, "--durability", mode, NULL);
    snprintf(extra, sizeof extra, "--warehouse surge --proto %s", proto);
    int rc = run_loadgen(extra, out, sizeof out);
    cr_assert_eq(rc, 0, "loadgen exited %d in mode %s:\n%s", rc, mode, out);
    cr_assert(strstr(out, "\"ok\":true"), "%s", out);
    cr_assert_eq(json_int_after(out, "shipped"), 402, "%s", out);
    cr_assert_eq(json_int_after(out, "shipped_twice"), 0, "%s", out);
    cr_assert_eq(json_int_after(out, "missing"), 0, "%s", out);
    cr_assert_eq(json_int_after(out, "double_holds"), 0, "%s", out);
    cr_assert_eq(json_int_after(out, "urgency_violations"), 0, "%s", out);
    char want[32];
    snprintf(want, sizeof want, "\"proto\":\"%s\"", proto);
    cr_assert(strstr(out, want), "%s", out);

    /* The daemon agrees: 402 orders pushed, all shipped, none queued. */
    redisContext *c = e2e_connect(&dmn);
    redisReply *r = e2e_cmd(c, "STATS surge");
    cr_assert_eq(e2e_field_int(r, "pushes"), 402);
    cr_assert_eq(e2e_field_int(r, "shipped"), 402);
    cr_assert_eq(e2e_field_int(r, "queued"), 0);
    cr_assert_eq(e2e_field_int(r, "picking"), 0);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

static void
surge(const char *mode)
{
    surge_proto(mode, "resp");
}

Test(surge, replay_sync)
{
    surge("sync");
}
Test(surge, replay_batch)
{
    surge("batch");
}
Test(surge, replay_none)
{
    surge("none");
}
/* The binary protocol: the same replay, the same invariants. */
Test(surge, replay_binary_sync)
{
    surge_proto("sync", "binary");
}
Test(surge, replay_binary_none)
{
    surge_proto("none", "binary");
}
