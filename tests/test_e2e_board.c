/*
 * test_e2e_board — the live board and the customer's page end to end,
 * over HTTP with curl: the embedded files (types, cache headers, ETag and
 * 304), GET /v1/board (pick order, rush and ASN first, at-risk orders
 * listed apart, pickers and leases, jump cards, counts, storage, the
 * limit), the "change" messages of /v1/events?changes=1, the roles (viewer
 * reads, no token 401), the customer links (a good token opens the page,
 * a wrong one gets the very 404 an unknown order gets, only the allowed
 * fields, customer_url for erp only, off with --customer-links off) and
 * the lead time of similar orders after outbound confirmations, kept
 * across a restart with the same links.
 *
 * Each test starts its own dispatchd and ends with e2e_finish (SIGTERM,
 * exit 0, no sanitizer report).
 */
#include <jansson.h>

#include "e2e.h"

#define CURL "/usr/bin/curl"
#define WH_NAME_MAX 64 /* the longest warehouse name the daemon takes */
#define S_VIEWER "viewer-secret-1"
#define S_ERP "erp-secret-2222"
#define S_WMS "wms-secret-3333"

static struct daemon D;
static json_t *docs[256];
static size_t ndocs;

static void
teardown(void)
{
    e2e_kill(&D);
    e2e_cleanup(&D);
    e2e_free_kept();
    for (size_t i = 0; i < ndocs; i++)
        json_decref(docs[i]);
    ndocs = 0;
}

static void
setup(void)
{
    static bool armed;
    if (!armed) {
        armed = true;
        atexit(teardown);
    }
    cr_assert(access(CURL, X_OK) == 0,
              CURL " is missing (tools/setup.sh installs it)");
}

TestSuite(board, .init = setup, .fini = teardown, .timeout = 120);

/* curl's output for `args` (the URL and options), exit status 0. */
static const char *
curl(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int st;
    char *o = e2e_sh(&st, CURL " -sS -m 20 %s", args);
    e2e_keep(o);
    cr_assert_eq(st, 0, "curl %s: exit %d\n%s", args, st, o);
    return o;
}

static json_t *
keep(json_t *j)
{
    cr_assert(ndocs < sizeof docs / sizeof docs[0]);
    docs[ndocs++] = j;
    return j;
}

/* GET path with an optional bearer secret: the status and the JSON. */
static json_t *
get_json(const char *path, const char *secret, int *status)
{
    char auth[120] = "";
    if (secret)
        snprintf(auth, sizeof auth, "-H 'Authorization: Bearer %s'", secret);
    const char *o = curl("%s -w '\\n%%{http_code}' 'http://127.0.0.1:%d%s'",
                         auth, D.http_port, path);
    const char *nl = strrchr(o, '\n');
    cr_assert(nl, "no status from curl: %s", o);
    *status = atoi(nl + 1);
    json_error_t err;
    json_t *j = json_loadb(o, (size_t)(nl - o), 0, &err);
    cr_assert(j, "GET %s: not JSON (%s): %s", path, err.text, o);
    return keep(j);
}

static json_t *
get_ok(const char *path, const char *secret)
{
    int st;
    json_t *j = get_json(path, secret, &st);
    cr_assert_eq(st, 200, "GET %s: %d", path, st);
    return j;
}

/* POST a JSON body: the status. */
static int
post(const char *secret, const char *path, const char *body)
{
    char auth[120] = "";
    if (secret)
        snprintf(auth, sizeof auth, "-H 'Authorization: Bearer %s'", secret);
    const char *o = curl("%s -o /dev/null -w '%%{http_code}' -H "
                         "'Content-Type: application/json' -d '%s' "
                         "'http://127.0.0.1:%d%s'",
                         auth, body, D.http_port, path);
    return atoi(o);
}

static void
push(const char *secret, const char *id, const char *cls, const char *cust,
     const char *extra)
{
    char body[600];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"class\":\"%s\",\"customer\":\"%s\","
             "\"approved\":true%s%s}",
             id, cls, cust, extra ? "," : "", extra ? extra : "");
    int st = post(secret, "/v1/orders", body);
    cr_assert(st == 201 || st == 200, "push %s: %d", id, st);
}

static const char *
sget(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    cr_assert(s, "no string \"%s\"", k);
    return s;
}

static long long
iget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_integer(v), "no integer \"%s\"", k);
    return (long long)json_integer_value(v);
}

/* The response headers of GET path (curl -I would send HEAD). */
static const char *
headers_of(const char *path, const char *extra)
{
    return curl("-o /dev/null -D - %s 'http://127.0.0.1:%d%s'",
                extra ? extra : "", D.http_port, path);
}

static void
has_header(const char *hdrs, const char *line)
{
    cr_assert(strcasestr(hdrs, line), "no '%s' in:\n%s", line, hdrs);
}

Test(board, files_have_types_cache_headers_and_etags)
{
    e2e_start(&D, NULL);
    struct {
        const char *path, *type;
    } files[] = {
        {"/", "Content-Type: text/html; charset=utf-8"},
        {"/board.js", "Content-Type: application/javascript"},
        {"/board.css", "Content-Type: text/css"},
        {"/order.js", "Content-Type: application/javascript"},
        {"/order.css", "Content-Type: text/css"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *h = headers_of(files[i].path, NULL);
        has_header(h, "HTTP/1.1 200");
        has_header(h, files[i].type);
        has_header(h, "Cache-Control: no-cache");
        has_header(h, "X-Content-Type-Options: nosniff");
        has_header(h, "Content-Security-Policy: default-src 'none'; "
                      "script-src 'self'");
        const char *e = strcasestr(h, "ETag: \"");
        cr_assert(e, "%s: no ETag:\n%s", files[i].path, h);
        char etag[40] = "", extra[80];
        sscanf(e + 6, "%39[^\r\n]", etag);
        cr_assert_eq(strlen(etag), 18, "ETag %s", etag);
        /* The same ETag back: 304 and no body; another one: 200. */
        snprintf(extra, sizeof extra, "-H 'If-None-Match: %s'", etag);
        const char *h304 = headers_of(files[i].path, extra);
        has_header(h304, "HTTP/1.1 304");
        char p304[300];
        snprintf(p304, sizeof p304,
                 "-o /dev/null -w '%%{size_download}' -H 'If-None-Match: %s' "
                 "'http://127.0.0.1:%d%s'",
                 etag, D.http_port, files[i].path);
        cr_assert_str_eq(curl("%s", p304), "0", "a body with the 304");
        has_header(headers_of(files[i].path, "-H 'If-None-Match: \"x\"'"),
                   "HTTP/1.1 200");
    }
    /* The page is the board's, and the files are the daemon's own. */
    const char *page = curl("'http://127.0.0.1:%d/'", D.http_port);
    cr_assert(strstr(page, "<script src=\"/board.js\""), "%s", page);
    cr_assert(strstr(page, "拣货看板"));
    const char *js = curl("'http://127.0.0.1:%d/board.js'", D.http_port);
    cr_assert(strstr(js, "Last-Event-ID") && strstr(js, "sessionStorage"));
    const char *nf = curl("-o /dev/null -w '%%{http_code}' "
                          "'http://127.0.0.1:%d/nope.js'",
                          D.http_port);
    cr_assert_str_eq(nf, "404");
    e2e_finish(&D);
}

Test(board, snapshot_in_pick_order_with_risks_leases_and_jumps)
{
    /* A pick takes 10 minutes: an order due in 25 is at risk behind 2. */
    e2e_start(&D, "--pick-estimate", "10m", NULL);
    char extra[300];
    long long now = e2e_now_ms();
    push(NULL, "N-1", "normal", "c1", NULL);
    push(NULL, "N-2", "normal", "c2", NULL);
    push(NULL, "R-1", "rush4h", "acme", NULL);
    snprintf(extra, sizeof extra,
             "\"deadline\":%lld,\"attrs\":{\"asn_number\":\"ASN-7\","
             "\"tech_agreement\":\"TA-1\"}",
             now + 3 * 3600 * 1000LL);
    push(NULL, "A-1", "asn", "oem", extra);
    snprintf(extra, sizeof extra, "\"deadline\":%lld", now + 25 * 60000LL);
    push(NULL, "N-LATE", "rush24h", "late", extra);
    push(NULL, "N-3", "normal", "c3", NULL);

    json_t *b = get_ok("/v1/board?wh=main", NULL);
    cr_assert_str_eq(sget(b, "warehouse"), "main");
    json_t *q = json_object_get(b, "queue");
    cr_assert_eq(json_array_size(q), 6);
    /* A-1 first: nothing passes an ASN order.  Then the late rush24h
       one: due in 25 minutes, it is escalated one class, to rush4h, and
       beats R-1 by deadline; then R-1 and the normals in arrival
       order. */
    const char *want[] = {"A-1", "N-LATE", "R-1", "N-1", "N-2", "N-3"};
    for (size_t i = 0; i < 6; i++) {
        json_t *o = json_array_get(q, i);
        cr_assert_str_eq(sget(o, "id"), want[i], "queue[%zu] is %s", i,
                         sget(o, "id"));
        cr_assert_eq(iget(o, "position"), (long long)i);
        cr_assert(iget(o, "left_ms") > 0);
        cr_assert(iget(o, "eta") > now);
        cr_assert(iget(o, "deadline") > now);
    }
    cr_assert_str_eq(sget(json_array_get(q, 1), "effective_class"), "rush4h");
    cr_assert_str_eq(sget(json_array_get(q, 1), "class"), "rush24h");
    cr_assert_str_eq(sget(json_array_get(q, 2), "class"), "rush4h");
    cr_assert_str_eq(sget(json_array_get(q, 2), "customer"), "acme");
    /* Nothing is at risk yet: N-LATE is picked in 20 of its 25 minutes,
       the others have hours.  The mark follows ETA > deadline. */
    json_t *risk = json_object_get(b, "at_risk");
    for (size_t i = 0; i < json_array_size(q); i++) {
        json_t *o = json_array_get(q, i);
        bool r = iget(o, "eta") > iget(o, "deadline");
        cr_assert_eq(json_is_true(json_object_get(o, "at_risk")), r);
    }
    cr_assert_eq(json_array_size(risk), 0, "nothing is late yet");
    /* Two more due in 25 minutes queue behind N-LATE: with a pick of 10
       minutes they are picked in 30 and 40. */
    snprintf(extra, sizeof extra, "\"deadline\":%lld", now + 25 * 60000LL);
    push(NULL, "L-2", "rush24h", "late", extra);
    push(NULL, "L-3", "rush24h", "late", extra);
    b = get_ok("/v1/board?wh=main", NULL);
    risk = json_object_get(b, "at_risk");
    cr_assert_eq(json_array_size(risk), 2, "at risk: %zu",
                 json_array_size(risk));
    cr_assert_str_eq(sget(json_array_get(risk, 0), "id"), "L-2");
    cr_assert_str_eq(sget(json_array_get(risk, 1), "id"), "L-3");
    cr_assert(
        json_is_true(json_object_get(json_array_get(risk, 0), "at_risk")));

    /* A picker takes the first: it leaves the queue for the picking list,
       with the lease time left. */
    redisContext *c = e2e_connect(&D);
    redisReply *r = e2e_cmd(c, "NEXT main PICKER 张三 LEASE 120");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "NEXT: %d", r->type);
    freeReplyObject(r);
    redisFree(c);
    b = get_ok("/v1/board?wh=main", NULL);
    q = json_object_get(b, "queue");
    cr_assert_str_eq(sget(json_array_get(q, 0), "id"), "N-LATE");
    for (size_t i = 0; i < json_array_size(q); i++)
        cr_assert_str_neq(sget(json_array_get(q, i), "id"), "A-1");
    json_t *pk = json_object_get(b, "picking");
    cr_assert_eq(json_array_size(pk), 1);
    json_t *p0 = json_array_get(pk, 0);
    cr_assert_str_eq(sget(p0, "id"), "A-1");
    cr_assert_str_eq(sget(p0, "picker"), "张三");
    long long left = iget(p0, "lease_left_ms");
    cr_assert(left > 100000 && left <= 120000, "lease left %lld", left);
    cr_assert_eq(iget(b, "picking_total"), 1);

    /* The jump cards, newest first, in the chat's words. */
    json_t *jumps = json_object_get(b, "jumps");
    cr_assert_geq(json_array_size(jumps), 3);
    bool seen_r1 = false;
    for (size_t i = 0; i < json_array_size(jumps); i++) {
        json_t *jc = json_array_get(jumps, i);
        cr_assert(strstr(sget(jc, "card"), "【加急插队】订单#"), "%s",
                  sget(jc, "card"));
        if (!strcmp(sget(jc, "order"), "R-1")) {
            seen_r1 = true;
            cr_assert(strstr(sget(jc, "card"), "(客户:acme)已插至第1位") ||
                          strstr(sget(jc, "card"), "(客户:acme)已置顶"),
                      "%s", sget(jc, "card"));
            cr_assert(strstr(sget(jc, "card"), "原队列第1位起2单订单顺延"),
                      "%s", sget(jc, "card"));
        }
    }
    cr_assert(seen_r1, "no card for R-1");
    cr_assert_gt(iget(json_array_get(jumps, 0), "seq"),
                 iget(json_array_get(jumps, 1), "seq"));

    /* Counts per state and class, storage. */
    json_t *cnt = json_object_get(b, "counts");
    cr_assert_eq(iget(json_object_get(cnt, "by_state"), "queued"), 7);
    cr_assert_eq(iget(json_object_get(cnt, "by_state"), "picking"), 1);
    cr_assert_eq(iget(json_object_get(cnt, "queued_by_class"), "normal"), 3);
    /* By effective class: R-1 and the three escalated rush24h orders. */
    cr_assert_eq(iget(json_object_get(cnt, "queued_by_class"), "rush4h"), 4);
    cr_assert_eq(iget(json_object_get(cnt, "queued_by_class"), "asn"), 0);
    cr_assert(
        json_is_true(json_object_get(json_object_get(b, "storage"), "ok")));
    json_t *ws = json_object_get(b, "warehouses");
    cr_assert_eq(json_array_size(ws), 1);
    cr_assert_str_eq(json_string_value(json_array_get(ws, 0)), "main");

    /* The limit bounds the list, not the counts; bad input is BADARG. */
    b = get_ok("/v1/board?wh=main&limit=2", NULL);
    cr_assert_eq(json_array_size(json_object_get(b, "queue")), 2);
    cr_assert_eq(iget(b, "shown"), 2);
    int st;
    json_t *e = get_json("/v1/board?limit=0", NULL, &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(sget(e, "error"), "BADARG");
    e = get_json("/v1/board?limit=1001", NULL, &st);
    cr_assert_eq(st, 400);
    e = get_json("/v1/board?wh=", NULL, &st);
    cr_assert_eq(st, 400);
    /* A warehouse name one byte over the limit. */
    char longwh[sizeof "/v1/board?wh=" + WH_NAME_MAX + 1];
    int n = snprintf(longwh, sizeof longwh, "/v1/board?wh=");
    memset(longwh + n, 'w', WH_NAME_MAX + 1);
    longwh[n + WH_NAME_MAX + 1] = '\0';
    e = get_json(longwh, NULL, &st);
    cr_assert_eq(st, 400);
    /* Another warehouse: empty, and both are offered. */
    push(NULL, "E-1", "normal", "c9", "\"warehouse\":\"east\"");
    b = get_ok("/v1/board?wh=east", NULL);
    cr_assert_eq(json_array_size(json_object_get(b, "queue")), 1);
    cr_assert_eq(json_array_size(json_object_get(b, "picking")), 0);
    cr_assert_eq(json_array_size(json_object_get(b, "jumps")), 0);
    cr_assert_eq(json_array_size(json_object_get(b, "warehouses")), 2);
    e2e_finish(&D);
}

Test(board, changes_are_streamed_to_the_board)
{
    e2e_start(&D, NULL);
    push(NULL, "R-0", "rush4h", "acme", NULL); /* event 1 */
    /* A stream that asked for changes hears of a normal push (no event
       in the log) within the second; one that did not hears nothing. */
    char path[400];
    snprintf(path, sizeof path, "%s/sse-changes", D.dir);
    char path2[400];
    snprintf(path2, sizeof path2, "%s/sse-plain", D.dir);
    int st;
    char *o = e2e_sh(&st,
                     "(" CURL " -sN -m 2 -H 'Last-Event-ID: 1' "
                     "'http://127.0.0.1:%d/v1/events?changes=1' >%s &"
                     " " CURL " -sN -m 2 -H 'Last-Event-ID: 1' "
                     "'http://127.0.0.1:%d/v1/events' >%s &) ; sleep 0.5",
                     D.http_port, path, D.http_port, path2);
    free(o);
    push(NULL, "N-1", "normal", "c1", NULL);
    e2e_sleep_ms(2000);
    o = e2e_sh(&st, "cat %s", path);
    cr_assert(strstr(o, "event: change\ndata: {\"changes\":"), "%s", o);
    cr_assert(!strstr(o, "id: 1\n"), "Last-Event-ID 1 not honoured: %s", o);
    free(o);
    o = e2e_sh(&st, "cat %s", path2);
    cr_assert(!strstr(o, "event: change"), "%s", o);
    free(o);
    e2e_finish(&D);
}

static const char *
users_file(void)
{
    return e2e_users_file(&D, "viewer1 viewer " S_VIEWER "\nerp1 erp " S_ERP
                              "\nwms1 wms " S_WMS "\n");
}

Test(board, behind_roles_viewer_and_up)
{
    e2e_start(&D, "--users", users_file(), NULL);
    int st;
    json_t *e = get_json("/v1/board", NULL, &st);
    cr_assert_eq(st, 401);
    cr_assert_str_eq(sget(e, "error"), "NOAUTH");
    e = get_json("/v1/board", "not-a-secret", &st);
    cr_assert_eq(st, 401);
    cr_assert_str_eq(sget(e, "error"), "WRONGPASS");
    e = get_json("/v1/events", NULL, &st);
    cr_assert_eq(st, 401);
    /* The page itself holds no data: it loads, and asks for the secret. */
    has_header(headers_of("/", NULL), "HTTP/1.1 200");
    push(S_ERP, "R-1", "rush4h", "acme", NULL);
    json_t *b = get_ok("/v1/board", S_VIEWER);
    cr_assert_str_eq(sget(json_array_get(json_object_get(b, "queue"), 0), "id"),
                     "R-1");
    get_ok("/v1/board", S_WMS);
    get_ok("/v1/board", S_ERP);
    /* customer_url for the ERP (it sends the link), not for the others. */
    json_t *o = get_ok("/v1/orders/R-1", S_ERP);
    cr_assert(strstr(sget(o, "customer_url"), "/o/R-1?t="));
    o = get_ok("/v1/orders/R-1", S_VIEWER);
    cr_assert_null(json_object_get(o, "customer_url"));
    o = get_ok("/v1/orders/R-1", S_WMS);
    cr_assert_null(json_object_get(o, "customer_url"));
    e2e_finish(&D);
}

/* The token of order id from customer_url. */
static const char *
token_of(const char *id, char *out, size_t cap)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/orders/%s", id);
    json_t *o = get_ok(path, NULL);
    const char *u = sget(o, "customer_url");
    const char *t = strstr(u, "?t=");
    cr_assert(t, "%s", u);
    snprintf(out, cap, "%s", t + 3);
    cr_assert_eq(strlen(out), 32, "token %s", out);
    return out;
}

Test(board, customer_page_opens_with_its_token_only)
{
    e2e_start(&D, "--public-url", "https://track.example.com", NULL);
    push(NULL, "C-1", "normal", "acme", "\"attrs\":{\"note\":\"secret-attr\"}");
    push(NULL, "C-2", "normal", "other", NULL);
    json_t *o = get_ok("/v1/orders/C-1", NULL);
    cr_assert(!strncmp(sget(o, "customer_url"),
                       "https://track.example.com/o/C-1?t=", 34),
              "%s", sget(o, "customer_url"));
    char tok[64], tok2[64], path[200];
    token_of("C-1", tok, sizeof tok);
    token_of("C-2", tok2, sizeof tok2);
    cr_assert_str_neq(tok, tok2);

    /* The page: 200 with the right token, no referrer. */
    snprintf(path, sizeof path, "/o/C-1?t=%s", tok);
    const char *h = headers_of(path, NULL);
    has_header(h, "HTTP/1.1 200");
    has_header(h, "Content-Type: text/html; charset=utf-8");
    has_header(h, "Referrer-Policy: no-referrer");
    const char *page = curl("'http://127.0.0.1:%d%s'", D.http_port, path);
    cr_assert(strstr(page, "/order.js"), "%s", page);

    /* A wrong token, another order's token, no token and an unknown order
       all get the same 404, byte for byte. */
    const char *bad[] = {"/o/C-1?t=00000000000000000000000000000000",
                         "/o/C-1?t=",
                         "/o/C-1",
                         "/o/NOPE?t=%s",
                         "/o/C-2?t=%s",
                         "/v1/track/C-1?t=0",
                         "/v1/track/NOPE?t=%s"};
    const char *first = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p[200];
        snprintf(p, sizeof p, bad[i], tok);
        const char *body =
            curl("-w ' %%{http_code}' 'http://127.0.0.1:%d%s'", D.http_port, p);
        cr_assert(strstr(body, " 404"), "%s: %s", p, body);
        if (!first)
            first = body;
        cr_assert_str_eq(body, first, "%s differs", p);
    }

    /* The JSON: only what the customer may see. */
    snprintf(path, sizeof path, "/v1/track/C-1?t=%s", tok);
    json_t *t = get_ok(path, NULL);
    const char *allowed[] = {"id",
                             "state",
                             "position",
                             "expected_pick_at",
                             "expected_pick_at_ms",
                             "carrier",
                             "shipped_at",
                             "shipped_at_ms",
                             "delivered_at",
                             "delivered_at_ms",
                             "lead_time"};
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            ok |= !strcmp(k, allowed[i]);
        cr_assert(ok, "the customer sees \"%s\"", k);
    }
    cr_assert_str_eq(sget(t, "state"), "queued");
    cr_assert_eq(iget(t, "position"), 1);
    cr_assert(iget(t, "expected_pick_at_ms") > e2e_now_ms());
    char *dump = json_dumps(t, 0);
    cr_assert(!strstr(dump, "acme") && !strstr(dump, "secret-attr") &&
                  !strstr(dump, "C-2"),
              "%s", dump);
    free(dump);
    e2e_finish(&D);
}

Test(board, customer_links_off)
{
    e2e_start(&D, "--customer-links", "off", NULL);
    push(NULL, "C-1", "normal", "acme", NULL);
    json_t *o = get_ok("/v1/orders/C-1", NULL);
    cr_assert_null(json_object_get(o, "customer_url"));
    int st;
    get_json("/v1/track/C-1?t=00000000000000000000000000000000", NULL, &st);
    cr_assert_eq(st, 404);
    e2e_finish(&D);
}

Test(board, lead_time_of_similar_orders_and_restart)
{
    e2e_start(&D, NULL);
    /* Three acme rush orders shipped after about 0.2, 0.5 and 0.9 s. */
    const long wait[] = {200, 500, 900};
    for (int i = 0; i < 3; i++) {
        char id[16], body[200];
        snprintf(id, sizeof id, "S-%d", i);
        push(NULL, id, "rush4h", "acme", NULL);
        e2e_sleep_ms(wait[i]);
        snprintf(body, sizeof body,
                 "{\"order_no\":\"%s\",\"operator\":\"wang\","
                 "\"carrier\":\"德邦\"}",
                 id);
        cr_assert_eq(post(NULL, "/v1/wms/outbound", body), 200);
    }
    /* A normal one of acme and a rush one of another customer do not
       count. */
    push(NULL, "X-1", "normal", "acme", NULL);
    cr_assert_eq(post(NULL, "/v1/wms/outbound",
                      "{\"order_no\":\"X-1\",\"operator\":\"wang\"}"),
                 200);
    push(NULL, "Y-1", "rush4h", "other", NULL);
    cr_assert_eq(post(NULL, "/v1/wms/outbound",
                      "{\"order_no\":\"Y-1\",\"operator\":\"wang\"}"),
                 200);
    /* A delivery with no outbound before implies one: it counts too. */
    push(NULL, "S-3", "rush4h", "acme", NULL);
    cr_assert_eq(post(NULL, "/v1/orders/S-3/deliver", "{}"), 200);
    push(NULL, "Q-1", "rush4h", "acme", NULL);

    char tok[64], tokq[64], path[200];
    token_of("S-2", tok, sizeof tok);
    token_of("Q-1", tokq, sizeof tokq);
    long long med = 0, p90 = 0;
    for (int round = 0; round < 2; round++) {
        snprintf(path, sizeof path, "/v1/track/S-2?t=%s", tok);
        json_t *t = get_ok(path, NULL);
        cr_assert_str_eq(sget(t, "state"), "shipped");
        cr_assert_str_eq(sget(t, "carrier"), "德邦");
        cr_assert(iget(t, "shipped_at_ms") > 0);
        cr_assert_null(json_object_get(t, "position"));
        json_t *lt = json_object_get(t, "lead_time");
        cr_assert_eq(iget(lt, "orders"), 4, "round %d", round);
        cr_assert_eq(iget(lt, "days"), 30);
        if (round == 0) {
            med = iget(lt, "median_ms");
            p90 = iget(lt, "p90_ms");
            /* About 0, 200, 500 and 900 ms: the median by nearest rank
               is the second, the 90th percentile the last. */
            cr_assert(med >= 200 && med < 500 && p90 >= 900 && p90 < 10000,
                      "median %lld p90 %lld", med, p90);
        } else {
            /* Rebuilt from the store, the same figures. */
            cr_assert_eq(iget(lt, "median_ms"), med);
            cr_assert_eq(iget(lt, "p90_ms"), p90);
        }
        /* The queued one of the same kind sees them too, with its place. */
        snprintf(path, sizeof path, "/v1/track/Q-1?t=%s", tokq);
        t = get_ok(path, NULL);
        cr_assert_eq(iget(json_object_get(t, "lead_time"), "orders"), 4);
        cr_assert_eq(iget(t, "position"), 1);
        cr_assert_null(json_object_get(t, "carrier"));
        if (round == 0) {
            /* The links survive a restart (the secret is in the store). */
            cr_assert_eq(e2e_stop(&D), 0);
            e2e_start(&D, NULL);
        }
    }
    e2e_finish(&D);
}

Test(board, help_lists_the_options)
{
    int st;
    char *o = e2e_sh(&st, DISPATCHD_BIN " --help");
    cr_assert_eq(st, 0);
    const char *opts[] = {"--board-max", "--customer-links", "--public-url",
                          "--customer-secret", "--wms-field-carrier"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        cr_assert(strstr(o, opts[i]), "--help lacks %s", opts[i]);
    free(o);
    o = e2e_sh(&st, DISPATCHD_BIN " --customer-links maybe");
    cr_assert_neq(st, 0);
    free(o);
    o = e2e_sh(&st, DISPATCHD_BIN " --public-url ftp://x");
    cr_assert_neq(st, 0);
    free(o);
}
