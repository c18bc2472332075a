/*
 * The story's day, small and fast: tools/sim --spawn runs a 300-order
 * surge day compressed 8,640 times (a simulated day in 10 s) against the
 * real daemon, once with escalation and once with strict class priority,
 * with the WMS's jitter (delayed, duplicated, lost and retried callbacks)
 * and abandoned leases.  Every status sample must match what physically
 * happened, no order may be picked by two pickers, and no asn order may
 * wait while an order of a lower class is leased in its warehouse.
 */
#include "e2e.h"

/* The number after "key": in text from p on, or -1. */
static double
json_num(const char *p, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *q = p ? strstr(p, pat) : NULL;
    return q ? atof(q + strlen(pat)) : -1;
}

Test(sim, surge_day_small, .timeout = 300)
{
    static char out[1 << 16];
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s --spawn %s --day surge --orders 300 --factor 8640 "
             "--samples 100 --json --quiet",
             SIM_BIN, DISPATCHD_BIN);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    cr_assert_eq(rc, 0, "sim exited %d:\n%s", rc, out);

    const char *esc = strstr(out, "\"mode\":\"escalation\"");
    const char *strict = strstr(out, "\"mode\":\"strict\"");
    cr_assert(esc && strict, "both runs: %s", out);
    const char *runs[] = {esc, strict};
    for (int i = 0; i < 2; i++) {
        const char *r = runs[i];
        cr_assert_eq(json_num(r, "orders"), 300, "%s", out);
        cr_assert_eq(json_num(r, "status_accuracy"), 100, "%s", out);
        cr_assert_geq(json_num(r, "samples"), 90, "%s", out);
        cr_assert_eq(json_num(r, "final_accuracy"), 100, "%s", out);
        cr_assert_eq(json_num(r, "double_picks"), 0, "%s", out);
        cr_assert_eq(json_num(r, "lost_callbacks"), 0, "%s", out);
        cr_assert_eq(json_num(r, "rush_missed_idle"), 0, "%s", out);
        cr_assert_eq(json_num(r, "open"), 0, "%s", out);
        cr_assert_gt(json_num(r, "retried"), 0, "the jitter ran: %s", out);
    }
    /* Strict priority never escalates, and escalation never leases a
       lower class ahead of a waiting asn order (issue 13: it promoted
       rush4h orders into asn). */
    cr_assert_eq(json_num(strict, "escalations"), 0, "%s", out);
    cr_assert_eq(json_num(esc, "asn_passed"), 0, "%s", out);
    cr_assert_eq(json_num(strict, "asn_passed"), 0, "%s", out);
}
