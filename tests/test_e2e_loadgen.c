/*
 * tools/loadgen's modes for bench/peers, briefly, against the real daemon
 * (and Redis's lease mode against a real redis-server when one is
 * installed): push only (--pickers 0), pop only (--producers 0 with the
 * pushing run's --run-tag), --prefill and --payload.  Each must hold its
 * invariants, report what it counted, and catch what it claims to catch.
 * No timing is checked here (bench/peers measures it).
 */
#include <jansson.h>

#include "e2e.h"

static struct daemon dmn;
static pid_t redis_pid;
static char redis_dir[64];

static void
cleanup(void)
{
    e2e_cleanup(&dmn);
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = 0;
    }
    if (redis_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", redis_dir);
        redis_dir[0] = '\0';
    }
}

/* Run loadgen with --json --quiet and the given options; its exit status
   in *rc and its parsed output (the caller frees it). */
static json_t *
loadgen(int *rc, const char *fmt, ...)
{
    char opts[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(opts, sizeof opts, fmt, ap);
    va_end(ap);
    char *out = e2e_sh(rc, "%s --json --quiet %s", LOADGEN_BIN, opts);
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    cr_assert(j, "loadgen %s: exit %d, not JSON (%s):\n%s", opts, *rc, err.text,
              out);
    free(out);
    return j;
}

static long long
jint(json_t *j, const char *obj, const char *key)
{
    json_t *o = obj ? json_object_get(j, obj) : j;
    json_t *v = o ? json_object_get(o, key) : NULL;
    cr_assert(json_is_integer(v), "no integer %s.%s", obj ? obj : "", key);
    return json_integer_value(v);
}

static const char *
jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    cr_assert(json_is_string(v), "no string %s", key);
    return json_string_value(v);
}

static void
start_dispatchd(void)
{
    atexit(cleanup);
    e2e_start(&dmn, "--durability", "none", NULL);
}

/* Push only, then pop only with the same tag: every pushed order is
   picked and shipped exactly once, in urgency order, by the second run. */
Test(loadgen, push_only_then_pop_only)
{
    start_dispatchd();
    int rc;
    json_t *j = loadgen(&rc,
                        "--port %d --producers 2 --pickers 0 --pipeline 8 "
                        "--orders 400 --payload 100 --run-tag ct1",
                        dmn.port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    cr_assert_str_eq(jstr(j, "mode"), "push-only");
    cr_assert(json_is_false(json_object_get(j, "shipped_once_checked")));
    cr_assert_eq(jint(j, "throughput", "orders"), 400);
    cr_assert_eq(jint(j, "invariants", "acknowledged"), 400);
    cr_assert_eq(jint(j, "invariants", "shipped"), 0);
    cr_assert_eq(jint(j, "invariants", "missing"), 0);
    json_decref(j);

    redisContext *c = e2e_connect(&dmn);
    redisReply *r = e2e_cmd(c, "STATS lgct1");
    cr_assert_eq(e2e_field_int(r, "queued"), 400);
    freeReplyObject(r);
    /* The payload is an attribute of 100 bytes. */
    r = e2e_cmd(c, "GET lgct1-7");
    const redisReply *attrs = e2e_field(r, "attrs");
    cr_assert(attrs && attrs->type == REDIS_REPLY_ARRAY);
    bool found = false;
    for (size_t i = 0; i + 1 < attrs->elements; i += 2)
        if (strcmp(attrs->element[i]->str, "payload") == 0) {
            cr_assert_eq(attrs->element[i + 1]->len, 100);
            found = true;
        }
    cr_assert(found, "no payload attribute");
    freeReplyObject(r);

    j = loadgen(&rc,
                "--port %d --producers 0 --pickers 3 --orders 400 "
                "--payload 100 --run-tag ct1",
                dmn.port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    cr_assert_str_eq(jstr(j, "mode"), "pop-only");
    cr_assert_eq(jint(j, "invariants", "shipped"), 400);
    cr_assert_eq(jint(j, "invariants", "missing"), 0);
    cr_assert_eq(jint(j, "invariants", "shipped_twice"), 0);
    cr_assert_eq(jint(j, "invariants", "double_holds"), 0);
    cr_assert_eq(jint(j, "invariants", "picks_checked"), 400);
    cr_assert_eq(jint(j, "invariants", "urgency_violations"), 0);
    cr_assert_eq(jint(j, "throughput", "orders"), 400);
    json_decref(j);

    r = e2e_cmd(c, "STATS lgct1");
    cr_assert_eq(e2e_field_int(r, "queued"), 0);
    cr_assert_eq(e2e_field_int(r, "shipped"), 400);
    freeReplyObject(r);
    redisFree(c);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

/* Pop only checks urgency against the classes the seed gives: the wrong
   seed makes the server's (correct) order look wrong, and it says so. */
Test(loadgen, pop_only_catches_disorder)
{
    start_dispatchd();
    int rc;
    json_t *j = loadgen(&rc,
                        "--port %d --producers 1 --pickers 0 --orders 300 "
                        "--run-tag ct2 --seed 1",
                        dmn.port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    json_decref(j);
    j = loadgen(&rc,
                "--port %d --producers 0 --pickers 1 --orders 300 "
                "--run-tag ct2 --seed 2",
                dmn.port);
    cr_assert_eq(rc, 1, "%s", json_dumps(j, 0));
    cr_assert_gt(jint(j, "invariants", "urgency_violations"), 0);
    cr_assert(json_is_false(json_object_get(j, "ok")));
    json_decref(j);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

/* Pop only asked for more than is queued: the missing ones fail it. */
Test(loadgen, pop_only_counts_missing)
{
    start_dispatchd();
    int rc;
    json_t *j = loadgen(&rc,
                        "--port %d --producers 1 --pickers 0 --orders 20 "
                        "--run-tag ct3",
                        dmn.port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    json_decref(j);
    j = loadgen(&rc,
                "--port %d --producers 0 --pickers 2 --orders 50 "
                "--run-tag ct3 --drain-ms 300",
                dmn.port);
    cr_assert_eq(rc, 1, "%s", json_dumps(j, 0));
    cr_assert_eq(jint(j, "invariants", "shipped"), 20);
    cr_assert_eq(jint(j, "invariants", "missing"), 30);
    json_decref(j);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

/* Prefill: push everything, then drain; every check applies. */
Test(loadgen, prefill_then_drain)
{
    start_dispatchd();
    int rc;
    json_t *j = loadgen(&rc,
                        "--port %d --producers 4 --pickers 4 --pipeline 16 "
                        "--orders 500 --payload 50 --prefill",
                        dmn.port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    cr_assert_str_eq(jstr(j, "mode"), "prefill");
    cr_assert_eq(jint(j, "invariants", "shipped"), 500);
    cr_assert_eq(jint(j, "invariants", "urgency_violations"), 0);
    cr_assert_eq(jint(j, "throughput", "orders"), 500);
    json_decref(j);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

/* The same modes without the new options: the output keeps its old
   shape (no "throughput" object). */
Test(loadgen, plain_run_unchanged)
{
    start_dispatchd();
    int rc;
    json_t *j = loadgen(&rc, "--port %d --orders 200", dmn.port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    cr_assert_null(json_object_get(j, "throughput"));
    cr_assert_null(json_object_get(j, "mode"));
    cr_assert_eq(jint(j, "invariants", "shipped"), 200);
    json_decref(j);
    cr_assert_eq(e2e_stop(&dmn), 0);
}

/* Redis with a Lua lease, when redis-server is installed. */
Test(loadgen, redis_lease)
{
    int rc;
    char *where = e2e_sh(&rc, "command -v redis-server");
    free(where);
    if (rc != 0)
        cr_skip_test("redis-server is not installed");
    atexit(cleanup);
    snprintf(redis_dir, sizeof redis_dir, "/tmp/dispatchd-test-XXXXXX");
    cr_assert(mkdtemp(redis_dir), "mkdtemp: %s", strerror(errno));
    int port = e2e_free_port();
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    redis_pid = fork();
    cr_assert(redis_pid >= 0, "fork: %s", strerror(errno));
    if (redis_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", portstr, "--bind",
               "127.0.0.1", "--dir", redis_dir, "--save", "", "--appendonly",
               "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !e2e_port_open(port); i++)
        e2e_sleep_ms(10);
    cr_assert(e2e_port_open(port), "redis-server did not listen");

    json_t *j = loadgen(&rc,
                        "--target redis --redis-mode lease --port %d "
                        "--producers 2 --pickers 2 --orders 500 --payload 100",
                        port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    cr_assert_str_eq(jstr(j, "redis_mode"), "lease");
    cr_assert_eq(jint(j, "invariants", "shipped"), 500);
    cr_assert_eq(jint(j, "invariants", "urgency_violations"), 0);
    json_t *next = json_object_get(json_object_get(j, "commands"), "NEXT");
    cr_assert_str_eq(jstr(next, "op"), "EVALSHA");
    const char *run = jstr(j, "run");
    char leased[64];
    snprintf(leased, sizeof leased, "lg:%s:leased", run);
    json_decref(j);

    /* Every lease was acknowledged (ZREM): the leased set is empty. */
    redisContext *c = redisConnect("127.0.0.1", port);
    cr_assert(c && !c->err);
    redisReply *r = redisCommand(c, "EXISTS %s", leased);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);

    /* Push only, then pop only with leases; members carry the payload. */
    j = loadgen(&rc,
                "--target redis --port %d --producers 2 --pickers 0 "
                "--orders 300 --payload 100 --run-tag ct4 --pipeline 8",
                port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    json_decref(j);
    r = redisCommand(c, "ZRANGE lg:ct4:queue 0 0");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    const char *sp = strchr(r->element[0]->str, ' ');
    cr_assert(sp && strlen(sp + 1) == 100, "member %s", r->element[0]->str);
    freeReplyObject(r);
    j = loadgen(&rc,
                "--target redis --redis-mode lease --port %d --producers 0 "
                "--pickers 2 --orders 300 --run-tag ct4",
                port);
    cr_assert_eq(rc, 0, "%s", json_dumps(j, 0));
    cr_assert_eq(jint(j, "invariants", "shipped"), 300);
    cr_assert_eq(jint(j, "invariants", "urgency_violations"), 0);
    json_decref(j);
    r = redisCommand(c, "ZCARD lg:ct4:queue");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0);
    freeReplyObject(r);
    redisFree(c);
}
