/*
 * dclient_example — one order's life over the binary protocol: push it
 * (approved), pick it with NEXT, confirm it left (OUTBOUND), and read it
 * back with GET and AUDIT; then three pipelined PINGs in one write.
 *
 *   dclient_example [host [port [order-id]]]     (127.0.0.1 7420 EX-<pid>)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dclient.h"

static int
check(struct dc_client *c, const char *what, int rc, struct dc_reply *r)
{
    char line[700];
    if (rc) {
        fprintf(stderr, "%s: %s\n", what, dc_errstr(c));
        exit(1);
    }
    printf("%-9s %s\n", what, dc_status_line(r, line, sizeof line));
    return dc_is_error(r) ? -1 : 0;
}

int
main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 7420;
    char id[65], err[256];
    struct dc_reply r;

    if (argc > 3)
        snprintf(id, sizeof id, "%s", argv[3]);
    else
        snprintf(id, sizeof id, "EX-%ld", (long)getpid());

    struct dc_client *c = dc_connect(host, port, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    check(c, "name", dc_client_name(c, "example", &r), &r);
    dc_reply_free(&r);

    const struct dc_kv attrs[] = {{"packaging", "moisture-proof"}};
    struct dc_push_args push = {
        .id = id,
        .cls = WIRE_CLASS_RUSH4H,
        .approved = true,
        .warehouse = "hz1",
        .customer = "shenwo",
        .nattrs = 1,
        .attrs = attrs,
    };
    check(c, "push", dc_push(c, &push, &r), &r);
    dc_reply_free(&r);

    struct dc_next_args next = {"hz1", "wang", 300000, 1000};
    check(c, "next", dc_next(c, &next, &r), &r);
    const struct dc_record *o = dc_order(&r);
    if (!o) {
        puts("nothing to pick");
        dc_close(c);
        return 1;
    }
    dc_fprint_record(stdout, o, "    ");
    const struct dc_field *picked = dc_field_get(o, WIRE_TAG_ID);
    char got[65];
    snprintf(got, sizeof got, "%s", picked ? picked->s : id);
    dc_reply_free(&r);

    char raw[160];
    int n =
        snprintf(raw, sizeof raw, "{\"order\":\"%s\",\"op\":\"wang\"}", got);
    struct dc_outbound_args ob = {got, "wang", 0, NULL, raw, (size_t)n};
    check(c, "outbound", dc_outbound(c, &ob, &r), &r);
    dc_reply_free(&r);

    check(c, "get", dc_get(c, got, &r), &r);
    const struct dc_field *state = dc_field_get(dc_order(&r), WIRE_TAG_STATE);
    printf("    state: %s\n", state ? state->s : "?");
    dc_reply_free(&r);

    if (check(c, "audit", dc_audit(c, got, 0, &r), &r) == 0) {
        for (size_t i = 0; i < r.nrecs; i++) {
            const struct dc_field *seq = dc_field_find(&r.recs[i], "seq");
            const struct dc_field *act = dc_field_find(&r.recs[i], "action");
            const struct dc_field *who = dc_field_find(&r.recs[i], "actor");
            printf("    #%" PRId64 " %s by %s\n", seq ? seq->i : -1,
                   act ? act->s : "?", who ? who->s : "?");
        }
    }
    dc_reply_free(&r);

    /* Pipelined: three requests, one write, the replies in order. */
    uint32_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = dc_q_ping(c);
    if (dc_send(c)) {
        fprintf(stderr, "send: %s\n", dc_errstr(c));
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        if (dc_recv(c, &r)) {
            fprintf(stderr, "recv: %s\n", dc_errstr(c));
            return 1;
        }
        printf("ping #%" PRIu32 " -> reply #%" PRIu32 " %s\n", ids[i], r.id,
               wire_status_name(r.status));
        dc_reply_free(&r);
    }
    dc_close(c);
    return 0;
}
