/*
 * test_e2e_roles — users and roles end to end on all three protocols
 * (RESP through hiredis and redis-cli, binary through dclient, HTTP
 * through tests/http_check.py): the daemon refuses a users file others
 * can read and a non-loopback bind without one; before AUTH everything is
 * NOAUTH, a wrong secret WRONGPASS; viewer reads, erp pushes but does not
 * pick, wms picks and confirms but does not push, only admin checkpoints;
 * the audit actor is the user's name.
 */
#define E2E_BIN
#include "e2e.h"

#define PYTHON "/usr/bin/python3"
#define REDIS_CLI "/usr/bin/redis-cli"

#define S_VIEWER "viewer-secret-1"
#define S_ERP "erp-secret-0001"
#define S_WMS "wms-secret-0001"
#define S_ADMIN "admin-secret-01"

static struct daemon D;
static redisContext *C;

static void
teardown(void)
{
    if (C)
        redisFree(C);
    C = NULL;
    e2e_cleanup(&D);
}

TestSuite(roles, .fini = teardown, .timeout = 120);

/* The users file, mode `mode`, in D's directory; its path. */
static const char *
users_file(mode_t mode)
{
    static char path[300];
    if (!D.dir[0])
        e2e_tempdir(&D);
    snprintf(path, sizeof path, "%s/users", D.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs("# name role secret\n"
          "viewer1 viewer " S_VIEWER "\n"
          "erp1    erp    " S_ERP "\n"
          "wms1    wms    " S_WMS "   # the dock terminals\n"
          "admin1  admin  " S_ADMIN "\n",
          f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
    return path;
}

static void
start_with_users(void)
{
    atexit(teardown);
    e2e_start(&D, "--users", users_file(0600), NULL);
}

/* dispatchd with these arguments must exit at once (within 10 s, or
   timeout kills it) with a non-zero status and `why` in its log. */
static void
refused_at_start(const char *args, const char *why)
{
    int port = e2e_free_port(), hport = e2e_free_port(), st;
    char *o = e2e_sh(&st,
                     "timeout -s KILL 10 " DISPATCHD_BIN
                     " --port %d --http-port %d --data %s %s >%s 2>&1",
                     port, hport, D.data, args, D.log);
    free(o);
    cr_assert(st != 0 && st != 137,
              "dispatchd %s: exit %d (137: it kept "
              "running)",
              args, st);
    cr_assert(!e2e_port_open(port), "something listens on %d", port);
    cr_assert(e2e_log_has(&D, why), "dispatchd %s: log lacks '%s'", args, why);
}

Test(roles, users_file_readable_by_others_is_refused)
{
    atexit(teardown);
    char args[400];
    snprintf(args, sizeof args, "--users %s", users_file(0644));
    refused_at_start(args, "readable or writable by group or others");
    snprintf(args, sizeof args, "--users %s", users_file(0640));
    refused_at_start(args, "chmod 600");
}

Test(roles, non_loopback_bind_without_users_is_refused)
{
    atexit(teardown);
    e2e_tempdir(&D);
    refused_at_start("--bind 0.0.0.0",
                     "refusing to listen on 0.0.0.0 without --users");
}

/* ---- RESP ------------------------------------------------------------ */

static redisContext *
resp_as(const char *user, const char *secret)
{
    redisContext *c = e2e_connect(&D);
    e2e_expect(c, "OK", "AUTH %s %s", user, secret);
    return c;
}

Test(roles, resp)
{
    start_with_users();
    C = e2e_connect(&D);
    e2e_expect(C, "NOAUTH", "PING");
    e2e_expect(C, "NOAUTH", "GET x");
    e2e_expect(C, "NOAUTH", "PUSH x normal");
    e2e_expect(C, "WRONGPASS", "AUTH erp1 %s", S_WMS);
    e2e_expect(C, "WRONGPASS", "AUTH nobody %s", S_ERP);
    e2e_expect(C, "WRONGPASS", "AUTH wrong-secret");
    e2e_expect(C, "NOAUTH", "PING");
    e2e_expect(C, "OK", "AUTH %s", S_VIEWER); /* AUTH secret (Redis 5) */
    e2e_expect(C, "PONG", "PING");
    e2e_expect(C, "NOPERM", "PUSH x normal");
    e2e_expect(C, "NOPERM", "NEXT main");
    e2e_expect(C, "NOPERM", "CHECKPOINT cp-v");
    e2e_expect(C, "NOTFOUND", "GET x");

    redisContext *erp = resp_as("erp1", S_ERP);
    e2e_expect(erp, "OK", "PUSH r-1 normal APPROVED");
    e2e_expect(erp, "OK", "PUSH r-2 rush24h");
    e2e_expect(erp, "OK", "APPROVE r-2");
    e2e_expect(erp, "NOPERM", "NEXT main");
    e2e_expect(erp, "NOPERM", "OUTBOUND r-1 OPERATOR x");
    e2e_expect(erp, "NOPERM", "CHECKPOINT cp-e");

    redisContext *wms = resp_as("wms1", S_WMS);
    e2e_expect(wms, "NOPERM", "PUSH r-3 normal");
    e2e_expect(wms, "NOPERM", "CANCEL r-1");
    redisReply *n = e2e_cmd(wms, "NEXT main PICKER wang");
    cr_assert_str_eq(e2e_field_str(n, "id"), "r-2");
    freeReplyObject(n);
    e2e_expect(wms, "OK", "OUTBOUND r-2 OPERATOR wang");
    e2e_expect(wms, "NOPERM", "CHECKPOINT cp-w");

    /* The viewer reads it all. */
    n = e2e_cmd(C, "GET r-2");
    cr_assert_str_eq(e2e_field_str(n, "state"), "shipped");
    freeReplyObject(n);
    n = e2e_cmd(C, "AUDIT r-2");
    cr_assert_eq(n->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(n->elements, 4);
    const char *who[] = {"erp1", "erp1", "wms1", "wms1"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_str_eq(e2e_field_str(n->element[i], "actor"), who[i],
                         "audit entry %zu", i);
    freeReplyObject(n);

    /* HELLO AUTH (RESP2 here: hiredis 0.14 has no RESP3; redis-cli does
       HELLO 3 AUTH below), a wrong one first. */
    redisContext *adm = e2e_connect(&D);
    e2e_expect(adm, "WRONGPASS", "HELLO 2 AUTH admin1 %s", S_WMS);
    e2e_expect(adm, "NOAUTH", "PING");
    n = e2e_cmd(adm, "HELLO 2 AUTH admin1 %s", S_ADMIN);
    cr_assert_eq(n->type, REDIS_REPLY_ARRAY, "HELLO 2 AUTH: type %d", n->type);
    freeReplyObject(n);
    n = e2e_cmd(adm, "CHECKPOINT cp-a");
    cr_assert(n->type == REDIS_REPLY_STRING && strstr(n->str, "cp-a"),
              "admin CHECKPOINT: %s", n->str);
    freeReplyObject(n);
    e2e_expect(adm, "OK", "PUSH r-4 normal");
    n = e2e_cmd(adm, "AUDIT r-4");
    cr_assert_str_eq(e2e_field_str(n->element[0], "actor"), "admin1");
    freeReplyObject(n);
    redisFree(erp);
    redisFree(wms);
    redisFree(adm);
    e2e_finish(&D);
}

Test(roles, redis_cli_user_and_pass)
{
    start_with_users();
    int st;
    char *o = e2e_sh(&st,
                     REDIS_CLI " -p %d --user erp1 --pass " S_ERP
                               " --no-auth-warning PUSH c-1 normal APPROVED",
                     D.port);
    cr_assert(st == 0 && !strcmp(o, "OK\n"), "redis-cli --user: %d %s", st, o);
    free(o);
    o = e2e_sh(&st,
               REDIS_CLI " -p %d -a " S_VIEWER " --no-auth-warning GET c-1",
               D.port);
    cr_assert(st == 0 && strstr(o, "\nstate\nqueued\n"), "redis-cli -a: %s", o);
    free(o);
    o = e2e_sh(&st,
               REDIS_CLI " -p %d -a " S_VIEWER
                         " --no-auth-warning PUSH c-2 normal",
               D.port);
    cr_assert(strstr(o, "NOPERM"), "redis-cli -a viewer PUSH: %s", o);
    free(o);
    /* HELLO 3 AUTH on one connection, then commands on it. */
    o = e2e_sh(&st,
               "printf '%%s\\n' 'HELLO 3 AUTH admin1 %s' 'PUSH c-3 normal' "
               "'CHECKPOINT cp-cli' 'AUDIT c-3' | " REDIS_CLI " -3 -p %d",
               S_WMS, D.port);
    cr_assert(strstr(o, "WRONGPASS") && strstr(o, "NOAUTH"),
              "HELLO 3 AUTH with a wrong secret: %s", o);
    free(o);
    o = e2e_sh(&st,
               "printf '%%s\\n' 'HELLO 3 AUTH admin1 %s' 'PUSH c-3 normal' "
               "'CHECKPOINT cp-cli' 'AUDIT c-3' | " REDIS_CLI " -3 -p %d",
               S_ADMIN, D.port);
    cr_assert(st == 0 && strstr(o, "proto 3\n") && strstr(o, "\nOK\n") &&
                  strstr(o, "cp-cli") && strstr(o, "actor admin1\n"),
              "HELLO 3 AUTH over redis-cli: %s", o);
    free(o);
    o = e2e_sh(&st, REDIS_CLI " -p %d GET c-1", D.port);
    cr_assert(strstr(o, "NOAUTH"), "redis-cli without auth: %s", o);
    free(o);
    o = e2e_sh(&st,
               REDIS_CLI " -p %d --user wms1 --pass nope-nope "
                         "--no-auth-warning GET c-1",
               D.port);
    cr_assert(strstr(o, "WRONGPASS"), "redis-cli with a wrong secret: %s", o);
    free(o);
    e2e_finish(&D);
}

/* ---- binary ---------------------------------------------------------- */

static struct dc_client *
bin_as(const char *user, const char *secret)
{
    struct dc_client *c = e2e_bin_connect(&D);
    struct dc_reply r;
    e2e_bin_status(c, dc_auth(c, user, secret, &r), &r, WIRE_ST_OK);
    dc_reply_free(&r);
    return c;
}

#define BIN_EXPECT(c, call, want)                                              \
    do {                                                                       \
        struct dc_reply r_;                                                    \
        e2e_bin_status(c, call, &r_, want);                                    \
        dc_reply_free(&r_);                                                    \
    } while (0)

Test(roles, binary)
{
    start_with_users();
    struct dc_client *c = e2e_bin_connect(&D);
    struct dc_push_args p = {
        .id = "b-1", .cls = WIRE_CLASS_NORMAL, .approved = true};
    struct dc_next_args nx = {
        .warehouse = "main", .picker = "wang", .block_ms = -1};
    BIN_EXPECT(c, dc_ping(c, &r_), WIRE_ST_OK); /* PING needs no AUTH */
    BIN_EXPECT(c, dc_get(c, "b-1", &r_), WIRE_ST_NOAUTH);
    BIN_EXPECT(c, dc_push(c, &p, &r_), WIRE_ST_NOAUTH);
    BIN_EXPECT(c, dc_auth(c, "erp1", S_VIEWER, &r_), WIRE_ST_WRONGPASS);
    BIN_EXPECT(c, dc_auth(c, "ghost", S_ERP, &r_), WIRE_ST_WRONGPASS);
    BIN_EXPECT(c, dc_get(c, "b-1", &r_), WIRE_ST_NOAUTH);
    BIN_EXPECT(c, dc_auth(c, "viewer1", S_VIEWER, &r_), WIRE_ST_OK);
    BIN_EXPECT(c, dc_push(c, &p, &r_), WIRE_ST_NOPERM);
    BIN_EXPECT(c, dc_next(c, &nx, &r_), WIRE_ST_NOPERM);
    BIN_EXPECT(c, dc_checkpoint(c, "cp-v", &r_), WIRE_ST_NOPERM);
    BIN_EXPECT(c, dc_get(c, "b-1", &r_), WIRE_ST_NOTFOUND);

    struct dc_client *erp = bin_as("erp1", S_ERP);
    BIN_EXPECT(erp, dc_push(erp, &p, &r_), WIRE_ST_OK);
    BIN_EXPECT(erp, dc_next(erp, &nx, &r_), WIRE_ST_NOPERM);
    BIN_EXPECT(erp, dc_checkpoint(erp, "cp-e", &r_), WIRE_ST_NOPERM);
    struct dc_outbound_args ob = {.id = "b-1", .operator_ = "wang"};
    BIN_EXPECT(erp, dc_outbound(erp, &ob, &r_), WIRE_ST_NOPERM);

    struct dc_client *wms = bin_as("wms1", S_WMS);
    p.id = "b-2";
    BIN_EXPECT(wms, dc_push(wms, &p, &r_), WIRE_ST_NOPERM);
    BIN_EXPECT(wms, dc_cancel(wms, "b-1", NULL, &r_), WIRE_ST_NOPERM);
    struct dc_reply r;
    e2e_bin_status(wms, dc_next(wms, &nx, &r), &r, WIRE_ST_OK);
    cr_assert_str_eq(e2e_bin_str(dc_order(&r), "id"), "b-1");
    dc_reply_free(&r);
    BIN_EXPECT(wms, dc_outbound(wms, &ob, &r_), WIRE_ST_OK);
    BIN_EXPECT(wms, dc_checkpoint(wms, "cp-w", &r_), WIRE_ST_NOPERM);

    struct dc_client *adm = bin_as("admin1", S_ADMIN);
    BIN_EXPECT(adm, dc_checkpoint(adm, "cp-a", &r_), WIRE_ST_OK);

    e2e_bin_status(c, dc_audit(c, "b-1", 0, &r), &r, WIRE_ST_OK);
    cr_assert_eq(r.nrecs, 3);
    const char *who[] = {"erp1", "wms1", "wms1"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(e2e_bin_str(&r.recs[i], "actor"), who[i],
                         "audit entry %zu", i);
    dc_reply_free(&r);
    dc_close(c);
    dc_close(erp);
    dc_close(wms);
    dc_close(adm);
    e2e_finish(&D);
}

/* ---- HTTP ------------------------------------------------------------ */

Test(roles, http)
{
    start_with_users();
    int st;
    char *o = e2e_sh(&st,
                     PYTHON " %s/tests/http_check.py roles %d " S_VIEWER
                            " " S_ERP " " S_WMS " " S_ADMIN,
                     SOURCE_DIR, D.http_port);
    cr_assert(st == 0 && strstr(o, "http_check roles: all checks passed"),
              "http_check.py roles (exit %d):\n%s", st, o);
    free(o);
    /* The same users, over RESP, see the HTTP actors. */
    C = resp_as("viewer1", S_VIEWER);
    redisReply *a = e2e_cmd(C, "AUDIT R-1");
    cr_assert_eq(a->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(e2e_field_str(a->element[0], "actor"), "erp1");
    freeReplyObject(a);
    e2e_finish(&D);
}
