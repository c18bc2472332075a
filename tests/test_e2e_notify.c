/*
 * test_e2e_notify — the notifier of the real daemon against a webhook
 * receiver the test starts on loopback (tests/notify_receiver.py), which
 * fails, drops connections, delays and checks DingTalk signatures on
 * purpose: every event is delivered at least once under its stable id;
 * failures are retried with the configured backoff, and after the last
 * attempt an alert names the target, the event and the error while the
 * event is kept and delivered later; kill -9 with undelivered events,
 * restart, every one delivered; a burst of 40 jumps stays under the rate
 * limit and every order is named.
 *
 * Events are made with queue jumps: one normal order waits, and each rush
 * order pushed after it jumps it.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "e2e.h"

static struct daemon dmn;

struct receiver {
    pid_t pid;
    int port;
    char dir[256];
    char log[300], ctl[300], portfile[300];
};

static struct receiver rcv;

static void
recv_kill(struct receiver *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

static void
cleanup(void)
{
    e2e_cleanup(&dmn);
    recv_kill(&rcv);
    if (rcv.dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", rcv.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", rcv.dir);
        rcv.dir[0] = '\0';
    }
}

static void
recv_control(struct receiver *r, const char *json)
{
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->ctl);
    FILE *f = fopen(tmp, "w");
    cr_assert(f);
    fputs(json, f);
    fclose(f);
    cr_assert(rename(tmp, r->ctl) == 0);
}

/* Start the receiver on port (0: any), answering as `control` says. */
static void
recv_start_tls(struct receiver *r, int port, const char *secret,
               const char *control, const char *cert)
{
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof r->dir, "/tmp/dispatchd-recv-XXXXXX");
        cr_assert(mkdtemp(r->dir));
        snprintf(r->log, sizeof r->log, "%s/requests.jsonl", r->dir);
        snprintf(r->ctl, sizeof r->ctl, "%s/control.json", r->dir);
        snprintf(r->portfile, sizeof r->portfile, "%s/port", r->dir);
    }
    recv_control(r, control);
    unlink(r->portfile);
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    r->pid = fork();
    cr_assert(r->pid >= 0);
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("python3", "python3", SOURCE_DIR "/tests/notify_receiver.py", p,
               r->portfile, r->log, r->ctl, secret ? secret : "",
               cert ? cert : "", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(r->portfile, "r");
        if (f) {
            cr_assert(fscanf(f, "%d", &r->port) == 1);
            fclose(f);
            return;
        }
        e2e_sleep_ms(10);
    }
    cr_assert_fail("the receiver did not start");
}

static void
recv_start(struct receiver *r, int port, const char *secret,
           const char *control)
{
    recv_start_tls(r, port, secret, control, NULL);
}

/* Every request the receiver logged, as a JSON array (caller decrefs). */
static json_t *
recv_requests(const struct receiver *r)
{
    json_t *all = json_array();
    FILE *f = fopen(r->log, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (j)
            json_array_append_new(all, j);
    }
    free(line);
    if (f)
        fclose(f);
    return all;
}

static size_t
count_path(const struct receiver *r, const char *path)
{
    json_t *all = recv_requests(r);
    size_t i, n = 0;
    json_t *q;
    json_array_foreach(
        all, i, q) if (strcmp(json_string_value(json_object_get(q, "path")),
                              path) == 0) n++;
    json_decref(all);
    return n;
}

static long long
far_deadline(void)
{
    return (long long)(e2e_now_ms() + 3 * 24 * 3600 * 1000LL);
}

static void
push_base(redisContext *c)
{
    e2e_expect(c, "OK",
               "PUSH BASE normal DEADLINE %lld WAREHOUSE hz1 CUSTOMER c0 "
               "APPROVED",
               far_deadline() + 3600 * 1000LL);
}

static void
push_rush(redisContext *c, int i)
{
    e2e_expect(c, "OK",
               "PUSH R-%d rush4h WAREHOUSE hz1 CUSTOMER shenwo APPROVED", i);
}

/* The sequence numbers of the logged events the default list sends. */
static size_t
logged_seqs(redisContext *c, long long *out, size_t cap)
{
    redisReply *r = e2e_cmd(c, "EVENTS FROM 0 COUNT 1000");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    size_t n = 0;
    for (size_t i = 0; i < r->elements && n < cap; i++) {
        json_t *ev = json_loads(r->element[i]->str, 0, NULL);
        cr_assert(ev);
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (strstr(",jump,at_risk,lease_expired,outbound_unleased,anomaly,",
                   type))
            out[n++] =
                (long long)json_integer_value(json_object_get(ev, "seq"));
        json_decref(ev);
    }
    freeReplyObject(r);
    return n;
}

/* Was event seq delivered to path: a 2xx answer to a request with the
   Idempotency-Key seq (and, for json, the body's seq)? */
static bool
delivered(json_t *all, const char *path, long long seq)
{
    size_t i;
    json_t *q;
    char key[32];
    snprintf(key, sizeof key, "%lld", seq);
    json_array_foreach(all, i, q)
    {
        const char *idem = json_string_value(json_object_get(q, "idem"));
        if (strcmp(json_string_value(json_object_get(q, "path")), path) ||
            !idem || json_integer_value(json_object_get(q, "answer")) != 200)
            continue;
        if (strcmp(idem, key) == 0)
            return true;
        long long a, b;
        if (sscanf(idem, "%lld-%lld", &a, &b) == 2 && a <= seq && seq <= b)
            return true;
    }
    return false;
}

static bool
all_delivered(const char *path, const long long *seqs, size_t n,
              long timeout_ms)
{
    int64_t until = e2e_now_ms() + timeout_ms;
    for (;;) {
        json_t *all = recv_requests(&rcv);
        size_t k = 0;
        while (k < n && delivered(all, path, seqs[k]))
            k++;
        json_decref(all);
        if (k == n)
            return true;
        if (e2e_now_ms() > until)
            return false;
        e2e_sleep_ms(50);
    }
}

static long long
stat_int(redisContext *c, const char *key)
{
    redisReply *r = e2e_cmd(c, "STATS");
    long long v = e2e_field_int(r, key);
    freeReplyObject(r);
    return v;
}

static void
start_daemon(const char *const *extra)
{
    atexit(cleanup);
    e2e_start_argv(&dmn, extra);
}

#define URL(buf, fmt, path)                                                    \
    snprintf(buf, sizeof buf, "%shttp://127.0.0.1:%d%s", fmt, rcv.port, path)

Test(notify, every_event_delivered_with_its_id)
{
    recv_start(&rcv, 0, NULL, "{}");
    char url[200];
    URL(url, "json+", "/hook");
    const char *args[] = {"--notify", url, NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 1; i <= 10; i++)
        push_rush(c, i);
    long long seqs[64];
    size_t n = logged_seqs(c, seqs, 64);
    cr_assert_geq(n, 10);
    cr_assert(all_delivered("/hook", seqs, n, 20000),
              "not every event reached the receiver (%s)", rcv.log);
    /* A json body is the event itself, with its seq. */
    json_t *all = recv_requests(&rcv);
    size_t i;
    json_t *q;
    json_array_foreach(all, i, q)
    {
        json_t *b = json_object_get(q, "body");
        const char *idem = json_string_value(json_object_get(q, "idem"));
        if (json_object_get(b, "type") &&
            strcmp(json_string_value(json_object_get(b, "type")), "digest")) {
            char key[32];
            snprintf(key, sizeof key, "%lld",
                     (long long)json_integer_value(json_object_get(b, "seq")));
            cr_assert_str_eq(idem, key);
        }
        cr_assert(strstr(json_string_value(json_object_get(q, "ctype")),
                         "application/json"));
    }
    json_decref(all);
    cr_assert_geq(stat_int(c, "notify_delivered"), (long long)n);
    cr_assert_eq(stat_int(c, "notify_failures"), 0);
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, retries_with_backoff_then_alert_and_keeps_the_event)
{
    recv_start(&rcv, 0, NULL, "{\"status\":500}");
    char url[200], alert[200];
    URL(url, "json+", "/hook");
    URL(alert, "json+", "/alert");
    const char *args[] = {"--notify",
                          url,
                          "--alert",
                          alert,
                          "--notify-retry",
                          "200ms",
                          "--notify-attempts",
                          "4",
                          "--notify-retry-max",
                          "3s",
                          NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    push_rush(c, 1);
    long long seqs[8];
    size_t n = logged_seqs(c, seqs, 8);
    cr_assert_eq(n, 1);

    /* 4 attempts 200, 400, 800 ms apart (+ up to 20 % jitter), then one
       alert. */
    int64_t until = e2e_now_ms() + 15000;
    while (count_path(&rcv, "/alert") < 1 && e2e_now_ms() < until)
        e2e_sleep_ms(50);
    json_t *all = recv_requests(&rcv);
    double t[8];
    size_t k = 0, i;
    json_t *q, *al = NULL;
    json_array_foreach(all, i, q)
    {
        const char *path = json_string_value(json_object_get(q, "path"));
        if (strcmp(path, "/hook") == 0 && k < 8)
            t[k++] = json_real_value(json_object_get(q, "t"));
        else if (strcmp(path, "/alert") == 0)
            al = json_object_get(q, "body");
    }
    cr_assert_eq(k, 4, "%zu attempts before the alert, want 4", k);
    for (size_t j = 1; j < k; j++) {
        double want = 0.2 * (double)(1 << (j - 1));
        double gap = t[j] - t[j - 1];
        cr_assert(gap >= want - 0.02 && gap <= want * 1.2 + 0.25,
                  "retry %zu after %.3f s, want %.3f s", j, gap, want);
    }
    cr_assert_not_null(al, "no alert");
    cr_assert_str_eq(json_string_value(json_object_get(al, "type")),
                     "notify_failure");
    cr_assert(
        strstr(json_string_value(json_object_get(al, "target")), "/hook"));
    cr_assert_eq(json_integer_value(json_object_get(al, "seq")), seqs[0]);
    cr_assert(
        strstr(json_string_value(json_object_get(al, "error")), "HTTP 500"));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(al, "event"), "order")),
                     "R-1");
    json_decref(all);
    cr_assert_eq(stat_int(c, "notify_failures"), 1);
    cr_assert_eq(stat_int(c, "notify_retries"), 3);
    int st;
    char *m = e2e_sh(&st, "curl -s http://127.0.0.1:%d/metrics", dmn.http_port);
    cr_assert(strstr(m, "dispatchd_notify_failures_total 1"), "%s", m);
    free(m);

    /* Kept, not dropped: once the receiver recovers, it arrives. */
    recv_control(&rcv, "{}");
    cr_assert(all_delivered("/hook", seqs, n, 10000));
    cr_assert_geq(stat_int(c, "notify_delivered"), 1);
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, dropped_connections_and_timeouts_are_retried)
{
    recv_start(&rcv, 0, NULL, "{\"drop\":true}");
    char url[200];
    URL(url, "", "/hook");
    const char *args[] = {"--notify",
                          url,
                          "--notify-retry",
                          "100ms",
                          "--notify-timeout",
                          "300ms",
                          "--notify-retry-max",
                          "400ms",
                          NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    push_rush(c, 1);
    long long seqs[8];
    size_t n = logged_seqs(c, seqs, 8);
    int64_t until = e2e_now_ms() + 10000;
    while (count_path(&rcv, "/hook") < 2 && e2e_now_ms() < until)
        e2e_sleep_ms(20);
    cr_assert_geq(count_path(&rcv, "/hook"), 2, "dropped, not retried");
    /* A reply slower than the timeout is a failure too. */
    recv_control(&rcv, "{\"delay\":2.0}");
    size_t before = count_path(&rcv, "/hook");
    until = e2e_now_ms() + 10000;
    while (count_path(&rcv, "/hook") < before + 2 && e2e_now_ms() < until)
        e2e_sleep_ms(20);
    cr_assert_geq(count_path(&rcv, "/hook"), before + 2,
                  "a timed-out request was not retried");
    cr_assert(e2e_log_has(&dmn, "timeout"), "no timeout in %s", dmn.log);
    recv_control(&rcv, "{}");
    cr_assert(all_delivered("/hook", seqs, n, 10000));
    cr_assert_geq(stat_int(c, "notify_retries"), 3);
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, kill9_with_undelivered_events_then_every_one_delivered)
{
    /* Nothing listens yet: every attempt is refused. */
    int port = e2e_free_port();
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    const char *args[] = {
        "--notify", url, "--notify-retry", "100ms", "--notify-retry-max",
        "300ms",    NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 1; i <= 15; i++)
        push_rush(c, i);
    long long seqs[64];
    size_t n = logged_seqs(c, seqs, 64);
    cr_assert_geq(n, 15);
    e2e_sleep_ms(300);
    cr_assert_geq(stat_int(c, "notify_retries"), 1);
    redisFree(c);
    e2e_kill(&dmn);

    recv_start(&rcv, port, NULL, "{}");
    e2e_start_argv(&dmn, args);
    cr_assert(all_delivered("/hook", seqs, n, 20000),
              "events lost across kill -9 (%s)", rcv.log);
    /* Delivered ones are not sent again after a clean restart. */
    cr_assert_eq(e2e_stop(&dmn), 0);
    size_t sent = count_path(&rcv, "/hook");
    e2e_start_argv(&dmn, args);
    c = e2e_connect(&dmn);
    push_rush(c, 99);
    long long more[80];
    size_t m = logged_seqs(c, more, 80);
    cr_assert(all_delivered("/hook", more, m, 20000));
    cr_assert_eq(count_path(&rcv, "/hook"), sent + 1,
                 "a clean restart sent delivered events again");
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, dingtalk_signed_card_from_the_config_file)
{
    recv_start(&rcv, 0, "SECdemo123", "{\"errcode\":310000}");
    e2e_tempdir(&dmn);
    char conf[400];
    snprintf(conf, sizeof conf, "%s/dispatchd.ini", dmn.dir);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f,
            "[notify]\nnotify = "
            "dingtalk+http://127.0.0.1:%d/robot/send?access_token=abc\n"
            "notify-secret = SECdemo123\nnotify-retry = 200ms\n"
            "notify-events = jump\n",
            rcv.port);
    fclose(f);
    const char *args[] = {"--config", conf, NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    push_rush(c, 1);
    long long seqs[8];
    size_t n = logged_seqs(c, seqs, 8);
    cr_assert_eq(n, 1);
    /* errcode != 0 is a failure: retried. */
    int64_t until = e2e_now_ms() + 10000;
    while (count_path(&rcv, "/robot/send") < 2 && e2e_now_ms() < until)
        e2e_sleep_ms(20);
    cr_assert_geq(count_path(&rcv, "/robot/send"), 2);
    recv_control(&rcv, "{}");
    cr_assert(all_delivered("/robot/send", seqs, n, 10000));
    json_t *all = recv_requests(&rcv);
    size_t i;
    json_t *q;
    json_array_foreach(all, i, q)
    {
        cr_assert(json_is_true(json_object_get(q, "sign_ok")),
                  "bad DingTalk signature");
        json_t *b = json_object_get(q, "body");
        cr_assert_str_eq(json_string_value(json_object_get(b, "msgtype")),
                         "markdown");
        json_t *md = json_object_get(b, "markdown");
        cr_assert(strstr(json_string_value(json_object_get(md, "title")),
                         "【加急插队】"));
        const char *text = json_string_value(json_object_get(md, "text"));
        cr_assert(strstr(text, "【加急插队】订单#R-1(客户:shenwo)已置顶,"
                               "原队列第1位起1单订单顺延2分钟"),
                  "%s", text);
    }
    json_decref(all);
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, burst_of_40_jumps_stays_under_the_rate)
{
    recv_start(&rcv, 0, NULL, "{}");
    char url[200];
    URL(url, "dingtalk+", "/robot/send?access_token=abc");
    const char *args[] = {"--notify",
                          url,
                          "--notify-rate",
                          "3",
                          "--notify-rate-window",
                          "3s",
                          "--notify-events",
                          "jump",
                          NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    for (int i = 1; i <= 40; i++)
        redisAppendCommand(c,
                           "PUSH R-%d rush4h WAREHOUSE hz1 CUSTOMER shenwo "
                           "APPROVED",
                           i);
    for (int i = 1; i <= 40; i++) {
        redisReply *r;
        cr_assert(redisGetReply(c, (void **)&r) == REDIS_OK);
        cr_assert_str_eq(r->str, "OK");
        freeReplyObject(r);
    }
    /* Every order named in some card. */
    int64_t until = e2e_now_ms() + 30000;
    bool named[41] = {0};
    int missing = 40;
    json_t *all = NULL;
    while (missing > 0 && e2e_now_ms() < until) {
        e2e_sleep_ms(100);
        json_decref(all);
        all = recv_requests(&rcv);
        missing = 0;
        for (int k = 1; k <= 40; k++) {
            char pat[32];
            snprintf(pat, sizeof pat, "订单#R-%d(", k);
            size_t i;
            json_t *q;
            json_array_foreach(all, i, q)
            {
                const char *text = json_string_value(json_object_get(
                    json_object_get(json_object_get(q, "body"), "markdown"),
                    "text"));
                if (text && strstr(text, pat))
                    named[k] = true;
            }
            missing += !named[k];
        }
    }
    cr_assert_eq(missing, 0, "%d orders never named (%s)", missing, rcv.log);
    /* Never more than 3 messages in any 3 s. */
    size_t n = json_array_size(all);
    cr_assert_lt(n, 40, "no digest: %zu messages", n);
    for (size_t i = 3; i < n; i++) {
        double a =
            json_real_value(json_object_get(json_array_get(all, i - 3), "t"));
        double b =
            json_real_value(json_object_get(json_array_get(all, i), "t"));
        cr_assert_geq(b - a, 2.9, "4 messages within %.3f s", b - a);
    }
    json_decref(all);
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, https_target_with_a_checked_certificate)
{
    /* A certificate for 127.0.0.1, its own authority. */
    snprintf(rcv.dir, sizeof rcv.dir, "/tmp/dispatchd-recv-XXXXXX");
    cr_assert(mkdtemp(rcv.dir));
    snprintf(rcv.log, sizeof rcv.log, "%s/requests.jsonl", rcv.dir);
    snprintf(rcv.ctl, sizeof rcv.ctl, "%s/control.json", rcv.dir);
    snprintf(rcv.portfile, sizeof rcv.portfile, "%s/port", rcv.dir);
    int st;
    char *out =
        e2e_sh(&st,
               "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
               "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
               "-keyout %s/key.pem -out %s/cert.pem && cat %s/key.pem "
               "%s/cert.pem > %s/both.pem",
               rcv.dir, rcv.dir, rcv.dir, rcv.dir, rcv.dir);
    cr_assert_eq(st, 0, "openssl: %s", out);
    free(out);
    char both[300], ca[300];
    snprintf(both, sizeof both, "%s/both.pem", rcv.dir);
    snprintf(ca, sizeof ca, "%s/cert.pem", rcv.dir);
    recv_start_tls(&rcv, 0, "SECtls", "{}", both);
    char url[200];
    snprintf(url, sizeof url,
             "dingtalk+https://127.0.0.1:%d/robot/send?access_token=t",
             rcv.port);
    const char *args[] = {"--notify",
                          url,
                          "--notify-ca",
                          ca,
                          "--notify-secret",
                          "SECtls",
                          "--notify-retry",
                          "200ms",
                          NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    push_rush(c, 1);
    long long seqs[8];
    size_t n = logged_seqs(c, seqs, 8);
    cr_assert(all_delivered("/robot/send", seqs, n, 10000),
              "nothing over TLS (%s, %s)", rcv.log, dmn.log);
    json_t *all = recv_requests(&rcv);
    cr_assert(json_is_true(json_object_get(json_array_get(all, 0), "sign_ok")));
    json_decref(all);
    redisFree(c);
    e2e_finish(&dmn);
}

Test(notify, https_target_with_an_unknown_certificate_is_refused)
{
    snprintf(rcv.dir, sizeof rcv.dir, "/tmp/dispatchd-recv-XXXXXX");
    cr_assert(mkdtemp(rcv.dir));
    snprintf(rcv.log, sizeof rcv.log, "%s/requests.jsonl", rcv.dir);
    snprintf(rcv.ctl, sizeof rcv.ctl, "%s/control.json", rcv.dir);
    snprintf(rcv.portfile, sizeof rcv.portfile, "%s/port", rcv.dir);
    int st;
    char *out =
        e2e_sh(&st,
               "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
               "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
               "-keyout %s/key.pem -out %s/cert.pem && cat %s/key.pem "
               "%s/cert.pem > %s/both.pem",
               rcv.dir, rcv.dir, rcv.dir, rcv.dir, rcv.dir);
    cr_assert_eq(st, 0, "openssl: %s", out);
    free(out);
    char both[300];
    snprintf(both, sizeof both, "%s/both.pem", rcv.dir);
    recv_start_tls(&rcv, 0, NULL, "{}", both);
    char url[200];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/hook", rcv.port);
    /* The system's authorities do not know the test's certificate. */
    const char *args[] = {
        "--notify", url, "--notify-retry", "100ms", "--notify-attempts",
        "2",        NULL};
    start_daemon(args);
    redisContext *c = e2e_connect(&dmn);
    push_base(c);
    push_rush(c, 1);
    int64_t until = e2e_now_ms() + 10000;
    while (stat_int(c, "notify_failures") < 1 && e2e_now_ms() < until)
        e2e_sleep_ms(50);
    cr_assert_geq(stat_int(c, "notify_failures"), 1);
    cr_assert_eq(count_path(&rcv, "/hook"), 0, "sent to an unchecked peer");
    redisFree(c);
    e2e_finish(&dmn);
}
