/*
 * test_e2e_http — the HTTP/JSON gateway end to end, with real HTTP
 * clients: Python's http.client (tests/http_check.py, one mode per test)
 * and curl.  Every route and error status, the WMS callback's raw body
 * byte for byte in the audit trail, repeats, outbound from new, held and
 * cancelled, configurable callback field names, ms and ISO times, /metrics
 * parsed by prometheus_client and compared with STATS, /healthz while
 * storage refuses writes, the connection limit, keep-alive and the picked
 * step over HTTP.
 *
 * Each test starts its own dispatchd and ends with e2e_finish (SIGTERM,
 * exit 0, no sanitizer report); an atexit handler and e2e.h's
 * parent-death signal make sure none outlives the suite.
 */
#include <sys/mount.h>

#include <jansson.h>

#include "e2e.h"

#define PYTHON "/usr/bin/python3" /* Debian's, with prometheus_client */
#define CURL "/usr/bin/curl"

static struct daemon D;
static redisContext *C;
static char mnt[264]; /* dir + "/mnt": mnt + "/data" still fits */
static bool mounted;

static void
teardown(void)
{
    if (C)
        redisFree(C);
    C = NULL;
    e2e_kill(&D);
    if (mounted && umount2(mnt, MNT_DETACH) != 0)
        fprintf(stderr, "umount %s: %s\n", mnt, strerror(errno));
    mounted = false;
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
    const char *need[] = {PYTHON, CURL};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        cr_assert(access(need[i], X_OK) == 0,
                  "%s is missing (tools/setup.sh installs it)", need[i]);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 120);

/* tests/http_check.py MODE <http port> [args]: must pass. */
static const char *
check(const char *mode, const char *args)
{
    int st;
    char *o = e2e_sh(&st, PYTHON " %s/tests/http_check.py %s %d %s", SOURCE_DIR,
                     mode, D.http_port, args ? args : "");
    e2e_keep(o);
    cr_assert_eq(st, 0, "http_check.py %s failed (exit %d):\n%s", mode, st, o);
    char want[80];
    snprintf(want, sizeof want, "http_check %s: all checks passed", mode);
    cr_assert(strstr(o, want), "http_check.py %s:\n%s", mode, o);
    return o;
}

/* curl's output (with -w formats as given), exit status 0 required. */
static const char *
curl(const char *args)
{
    int st;
    char *o = e2e_sh(&st, CURL " -sS -m 20 %s", args);
    e2e_keep(o);
    cr_assert_eq(st, 0, "curl %s: exit %d\n%s", args, st, o);
    return o;
}

/* The status code curl gets for url (0: no reply). */
static int
curl_code(const char *url)
{
    int st;
    char *o =
        e2e_sh(&st, CURL " -s -m 10 -o /dev/null -w '%%{http_code}' %s", url);
    int code = atoi(o);
    free(o);
    return code;
}

static long long
stat_int(const char *warehouse, const char *key)
{
    redisReply *r =
        warehouse ? e2e_cmd(C, "STATS %s", warehouse) : e2e_cmd(C, "STATS");
    long long v = e2e_field_int(r, key);
    cr_assert(e2e_field(r, key), "STATS has no %s", key);
    freeReplyObject(r);
    return v;
}

Test(http, every_route_and_error)
{
    e2e_start(&D, NULL);
    check("api", NULL);
    e2e_finish(&D);
}

Test(http, wms_callback_raw_repeats_and_every_state)
{
    e2e_start(&D, NULL);
    check("wms", NULL);
    /* The same trail over RESP: the raw body byte for byte. */
    C = e2e_connect(&D);
    redisReply *a = e2e_cmd(C, "AUDIT W-1");
    cr_assert_eq(a->type, REDIS_REPLY_ARRAY);
    const char *raw = e2e_field_str(a->element[1], "raw");
    cr_assert(raw && strstr(raw, "\"operator\":\"\xe7\x8e\x8b\xe5\xb0\x8f"
                                 "\xe6\x98\x8e\", \"photo_url\" : "),
              "raw over RESP: %s", raw ? raw : "(none)");
    cr_assert(strstr(raw, "[ 1 ,2\r\n,3 ]"), "raw over RESP: %s", raw);
    freeReplyObject(a);
    e2e_finish(&D);
}

Test(http, wms_field_names_are_configurable)
{
    e2e_start(&D, "--wms-field-order", "orderNo", "--wms-field-at", "shippedAt",
              "--wms-field-operator", "who", "--wms-field-photo", "pic", NULL);
    check("fields", NULL);
    e2e_finish(&D);
}

/* /metrics parsed by prometheus_client; its values are STATS's. */
Test(http, metrics_match_stats)
{
    e2e_start(&D, NULL);
    C = e2e_connect(&D);
    e2e_expect(C, "OK", "PUSH m-1 rush4h WAREHOUSE hz1 APPROVED");
    e2e_expect(C, "OK", "PUSH m-2 normal WAREHOUSE hz1 APPROVED");
    e2e_expect(C, "OK", "PUSH m-3 normal WAREHOUSE hz2 APPROVED");
    e2e_expect(C, "OK",
               "PUSH m-4 asn WAREHOUSE hz2 DEADLINE %lld ATTR "
               "asn_number A1 ATTR tech_agreement T1 APPROVED",
               (long long)(e2e_now_ms() + 3600000));
    e2e_expect(C, "OK", "PUSH m-5 normal");
    e2e_expect(C, "OK", "PUSH m-6 normal APPROVED");
    e2e_expect(C, "OK", "HOLD m-5");
    e2e_expect(C, "OK", "CANCEL m-6");
    redisReply *n = e2e_cmd(C, "NEXT hz1 PICKER wang");
    cr_assert_str_eq(e2e_field_str(n, "id"), "m-1");
    freeReplyObject(n);
    e2e_expect(C, "OK", "OUTBOUND m-1 OPERATOR wang");
    e2e_expect(C, "OK", "OUTBOUND m-3 OPERATOR li");

    const char *out = check("metrics", NULL);
    const char *line = strrchr(out, '{');
    while (line > out && line[-1] != '\n')
        line--;
    json_error_t err;
    json_t *m = json_loads(line, 0, &err);
    cr_assert(m, "metrics JSON: %s in:\n%s", err.text, out);
    json_t *states = json_object_get(m, "states");
    const char *sts[] = {"new",    "held",    "queued",    "picking",
                         "picked", "shipped", "delivered", "cancelled"};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        cr_assert_eq(
            (long long)json_number_value(json_object_get(states, sts[i])),
            stat_int(NULL, sts[i]), "dispatchd_orders{state=%s}", sts[i]);
    cr_assert_eq(json_number_value(json_object_get(states, "shipped")), 2);
    const struct {
        const char *metric, *stat;
    } same[] = {
        {"dispatchd_pushes_total", "pushes"},
        {"dispatchd_approvals_total", "approvals"},
        {"dispatchd_picks_total", "picks"},
        {"dispatchd_outbounds_total", "outbounds"},
        {"dispatchd_outbounds_unleased_total", "outbounds_unleased"},
        {"dispatchd_cancels_total", "cancels"},
        {"dispatchd_releases_total", "releases"},
        {"dispatchd_deliveries_total", "deliveries"},
        {"dispatchd_lease_expiries_total", "lease_expiries"},
        {"dispatchd_queue_jumps_total", "queue_jumps"},
        {"dispatchd_picked_total", "picked_reports"},
        {"dispatchd_store_groups_total", "store_groups"},
        {"dispatchd_store_records_total", "store_records"},
        {"dispatchd_store_syncs_total", "store_syncs"},
        {"dispatchd_store_failures_total", "store_failures"},
        {"dispatchd_events_published_total", "events_published"},
        {"group_count", "store_groups"},
        {"group_sum", "store_records"},
        {"queue_wait_count", "picks"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        json_t *v = json_object_get(m, same[i].metric);
        cr_assert(v, "no %s in /metrics", same[i].metric);
        cr_assert_eq((long long)json_number_value(v),
                     stat_int(NULL, same[i].stat), "%s (%g) != STATS %s",
                     same[i].metric, json_number_value(v), same[i].stat);
    }
    cr_assert_eq(stat_int(NULL, "pushes"), 6);
    /* Queue depth by warehouse and class against STATS <warehouse>. */
    json_t *depth = json_object_get(m, "depth");
    const char *whs[] = {"hz1", "hz2", "main"};
    const char *cls[] = {"asn", "rush4h", "rush24h", "normal"};
    for (size_t w = 0; w < 3; w++)
        for (size_t k = 0; k < 4; k++) {
            char key[40], st[40];
            snprintf(key, sizeof key, "%s/%s", whs[w], cls[k]);
            snprintf(st, sizeof st, "queued_%s", cls[k]);
            json_t *v = json_object_get(depth, key);
            cr_assert(v, "no dispatchd_queue_depth for %s", key);
            cr_assert_eq((long long)json_number_value(v), stat_int(whs[w], st),
                         "queue depth %s", key);
        }
    cr_assert_eq(json_number_value(json_object_get(depth, "hz2/asn")), 1);
    cr_assert_eq(json_number_value(json_object_get(depth, "hz1/normal")), 1);
    json_decref(m);
    e2e_finish(&D);
}

/* The pushes that meet the full disk: more than the WAL RocksDB has
   already set aside (it preallocates about 4 MiB), so that a write must
   fail, and little enough that all of it fits once the disk has room
   (the tmpfs is 32 MiB). */
#define FULL_PUSHES 600 /* of 16 attributes of 1,000 bytes: 9.6 MB */

/* In a child process: pipeline FULL_PUSHES pushes on a connection of its
   own, then read every reply.  Its writes block while the store retries
   the group that met the full disk (the connection waits for that group
   and reads no more), so the test goes on beside it.  Exits 0 when every
   push was answered OK or READONLY. */
static void
full_disk_pusher(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (c == NULL || c->err)
        _exit(2);
    static char pad[1001];
    memset(pad, 'x', sizeof pad - 1);
    for (int i = 0; i < FULL_PUSHES; i++)
        if (redisAppendCommand(
                c,
                "PUSH h-%d normal ATTR a0 %s ATTR a1 %s ATTR a2 %s ATTR a3 %s "
                "ATTR a4 %s ATTR a5 %s ATTR a6 %s ATTR a7 %s ATTR a8 %s ATTR "
                "a9 %s ATTR a10 %s ATTR a11 %s ATTR a12 %s ATTR a13 %s ATTR "
                "a14 %s ATTR a15 %s",
                i, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad, pad,
                pad, pad, pad, pad) != REDIS_OK)
            _exit(3);
    for (int i = 0; i < FULL_PUSHES; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            fprintf(stderr, "reply to push %d: %s\n", i, c->errstr);
            _exit(4);
        }
        bool ok =
            (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK")) ||
            (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "READONLY", 8));
        if (!ok) {
            fprintf(stderr, "push %d: %s\n", i, r->str ? r->str : "?");
            _exit(5);
        }
        freeReplyObject(r);
    }
    redisFree(c);
    _exit(0);
}

/* /healthz is 503 while storage refuses writes (a full tmpfs), 200 again
   once it takes them; an HTTP push meanwhile is 503 READONLY. */
Test(http, healthz_follows_storage)
{
    e2e_tempdir(&D);
    snprintf(mnt, sizeof mnt, "%s/mnt", D.dir);
    cr_assert_eq(mkdir(mnt, 0755), 0, "mkdir %s: %s", mnt, strerror(errno));
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=32m") != 0)
        cr_skip_test("cannot mount a tmpfs at %s: %s", mnt, strerror(errno));
    mounted = true;
    snprintf(D.data, sizeof D.data, "%s/data", mnt);
    e2e_start(&D, NULL);
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", D.http_port);
    char args[400];
    cr_assert_eq(curl_code(url), 200);

    /* Fill the disk, then write: the write that meets the full disk waits
       (its group is retried), and storage reports the failure. */
    int st;
    char *o = e2e_sh(
        &st, "dd if=/dev/zero of=%s/filler bs=64k 2>/dev/null; true", mnt);
    free(o);
    pid_t pusher = fork();
    cr_assert(pusher >= 0, "fork: %s", strerror(errno));
    if (pusher == 0)
        full_disk_pusher(D.port);
    /* The store retries the failed group, so storage may come and go
       while RocksDB frees and takes space: each check looks at one
       response. */
    snprintf(args, sizeof args, "-w ' %%{http_code}' %s", url);
    bool readonly = false;
    for (int i = 0; i < 200 && !readonly; i++) {
        o = e2e_sh(&st, CURL " -s -m 10 %s", args);
        readonly = strstr(o, "\"status\":\"readonly\"") && strstr(o, " 503");
        free(o);
        if (!readonly)
            e2e_sleep_ms(50);
    }
    if (!readonly)
        kill(pusher, SIGKILL);
    cr_assert(readonly, "/healthz never said 503 readonly on a full disk");
    /* A push is refused 503 READONLY, or acknowledged when RocksDB has
       freed room meanwhile (a flush retires a WAL) and the retried group
       went through: then the disk is filled again.  A push that meets the
       refilled disk before the store has seen the failure waits in the
       retried group, and curl gives up on it (000); the store is read-only
       by the next one. */
    bool refused = false;
    for (int i = 0; i < 100 && !refused; i++) {
        snprintf(args, sizeof args,
                 "-s -m 3 -w ' %%{http_code}' -H 'Content-Type: "
                 "application/json' -d '{\"id\":\"hx-%d\",\"class\":"
                 "\"normal\"}' http://127.0.0.1:%d/v1/orders",
                 i, D.http_port);
        o = e2e_sh(&st, CURL " %s", args);
        refused = strstr(o, "\"error\":\"READONLY\"") && strstr(o, " 503");
        bool acked = strstr(o, " 201") != NULL;
        if (!(refused || acked || strstr(o, " 000")))
            kill(pusher, SIGKILL);
        cr_assert(refused || acked || strstr(o, " 000"),
                  "a push on a full disk: %s", o);
        free(o);
        if (acked)
            free(e2e_sh(&st,
                        "dd if=/dev/zero of=%s/filler-%d bs=64k 2>/dev/null; "
                        "true",
                        mnt, i));
    }
    if (!refused)
        kill(pusher, SIGKILL);
    cr_assert(refused, "no HTTP push was refused 503 READONLY");
    /* Reads still work. */
    snprintf(args, sizeof args, "http://127.0.0.1:%d/v1/warehouses/main/queue",
             D.http_port);
    cr_assert_eq(curl_code(args), 200);

    /* Room again: writes resume by themselves. */
    o = e2e_sh(&st, "rm %s/filler*", mnt);
    cr_assert_eq(st, 0, "rm the fillers: %s", o);
    free(o);
    int code = 0;
    for (int i = 0; i < 300 && code != 200; i++) {
        code = curl_code(url);
        if (code != 200)
            e2e_sleep_ms(50);
    }
    cr_assert_eq(code, 200, "/healthz after the disk has room");
    /* Every push was answered: acknowledged or refused. */
    int ps = -1;
    for (int i = 0; i < 600; i++) {
        if (waitpid(pusher, &ps, WNOHANG) == pusher)
            break;
        ps = -1;
        e2e_sleep_ms(50);
    }
    if (ps == -1) {
        kill(pusher, SIGKILL);
        waitpid(pusher, &ps, 0);
        cr_assert_fail("the pushes were not all answered in 30 s");
    }
    cr_assert(WIFEXITED(ps) && WEXITSTATUS(ps) == 0,
              "the pusher: status %d (see the test's stderr)", ps);
    cr_assert_eq(curl_code(url), 200);
    e2e_finish(&D);
}

Test(http, connection_limit)
{
    e2e_start(&D, "--http-max-connections", "2", NULL);
    check("limit", NULL);
    e2e_finish(&D);
}

/* The picked step over HTTP: a late callback after the lease would have
   expired finds the order still with its picker, and no second picker
   was handed it. */
Test(http, picked_step_over_http)
{
    e2e_start(&D, "--lease-default", "1s", NULL);
    C = e2e_connect(&D);
    e2e_expect(C, "OK", "PUSH p-1 rush4h APPROVED");
    e2e_expect(C, "OK", "PUSH p-2 normal APPROVED");
    redisReply *n = e2e_cmd(C, "NEXT main PICKER wang");
    cr_assert_str_eq(e2e_field_str(n, "id"), "p-1");
    char args[64];
    snprintf(args, sizeof args, "p-1 %lld", e2e_field_int(n, "lease"));
    freeReplyObject(n);
    check("picked", args);
    e2e_sleep_ms(1600); /* the lease would have expired by now */
    n = e2e_cmd(C, "NEXT main PICKER li");
    cr_assert_str_eq(e2e_field_str(n, "id"), "p-2",
                     "a picked order was handed to a second picker");
    freeReplyObject(n);
    n = e2e_cmd(C, "NEXT main PICKER zhao");
    cr_assert_eq(n->type, REDIS_REPLY_NIL, "a third order came out");
    freeReplyObject(n);
    check("late", "p-1");
    cr_assert_eq(stat_int(NULL, "lease_expiries"), 0);
    cr_assert_eq(stat_int(NULL, "picked_reports"), 1);
    e2e_finish(&D);
}

/* curl: keep-alive (one connection for several requests, an error
   between them), and bodies over --http-body-max. */
Test(http, curl_keep_alive_and_body_limit)
{
    e2e_start(&D, "--http-body-max", "4kb", NULL);
    char args[1200];
#define POST_JSON(body, path)                                                  \
    "-w '[%%{http_code} %%{num_connects}]\\n' "                                \
    "-H 'Content-Type: application/json' -d '" body "' "                       \
    "http://127.0.0.1:%d" path
    snprintf(args, sizeof args,
             POST_JSON("{\"id\":\"c-1\",\"class\":\"rush4h\"}", "/v1/orders") " --next " POST_JSON(
                 "{\"id\":\"c-1\",\"class\":\"rush4h\"}",
                 "/v1/orders") " --next " POST_JSON("{\"id\":\"c-1\",\"class\":"
                                                    "\"normal\"}",
                                                    "/v1/orders") " --"
                                                                  "next"
                                                                  " " POST_JSON(
                                                                      "{}",
                                                                      "/v1/"
                                                                      "orders/"
                                                                      "c-1/"
                                                                      "approv"
                                                                      "e"),
             D.http_port, D.http_port, D.http_port, D.http_port);
#undef POST_JSON
    const char *o = curl(args);
    const char *a = strstr(o, "[201 1]"), *b = strstr(o, "[200 0]"),
               *c = strstr(o, "[409 0]"), *d = strstr(o, "\"result\":\"ok\"");
    cr_assert(a && b && c && d && a < b && b < c && c < d,
              "keep-alive over one connection:\n%s", o);
    cr_assert(strstr(o, "\"error\":\"EXISTS\""), "%s", o);
    snprintf(args, sizeof args,
             "-w '[%%{http_code} %%{num_connects}]\\n' "
             "http://127.0.0.1:%d/healthz http://127.0.0.1:%d/v1/orders/c-1 "
             "http://127.0.0.1:%d/metrics -o /dev/null",
             D.http_port, D.http_port, D.http_port);
    o = curl(args);
    a = strstr(o, "[200 1]\n");
    b = a ? strstr(a, "[200 0]\n") : NULL;
    c = b ? strstr(b + 1, "[200 0]\n") : NULL;
    cr_assert(c, "GETs kept alive:\n%s", o);

    /* A body just under the limit is read; one over it is 413 TOOBIG,
       for a small and a large excess (curl sends Expect: 100-continue
       for the large one). */
    char path[400];
    snprintf(path, sizeof path, "%s/body.json", D.dir);
    const size_t sizes[] = {4096, 4097, 600000};
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(path, "w");
        cr_assert(f);
        const char *head = "{\"id\":\"c-2\",\"class\":\"normal\",\"attrs\":"
                           "{\"pad\":\"";
        size_t n = strlen(head) + 3;
        fputs(head, f);
        for (; n < sizes[i]; n++)
            fputc('x', f);
        fputs("\"}}", f);
        fclose(f);
        snprintf(args, sizeof args,
                 "-w ' [%%{http_code}]' -H 'Content-Type: application/json' "
                 "--data-binary @%s http://127.0.0.1:%d/v1/orders",
                 path, D.http_port);
        o = curl(args);
        if (i == 0)
            cr_assert(strstr(o, "[201]") || strstr(o, "BADARG"),
                      "a body of exactly the limit: %s", o);
        else
            cr_assert(strstr(o, "\"error\":\"TOOBIG\"") && strstr(o, "[413]"),
                      "a body of %zu bytes over a 4kb limit: %s", sizes[i], o);
    }
    e2e_finish(&D);
}
