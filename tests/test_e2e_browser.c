/*
 * test_e2e_browser — the board and the customer page in a real browser.
 *
 * Starts dispatchd (with users, so the page's login and its bearer-header
 * event stream are exercised) and runs tests/browser/board_check.js under
 * node: playwright-core driving Debian's /usr/bin/chromium headless, no
 * browser downloaded.  What the script checks is listed at its top; this
 * side restarts the daemon when the script prints "RESTART" (to see the
 * page reconnect by itself) and answers "RESTARTED".  Screenshots land in
 * the build folder, browser-shots/.
 *
 * The time budget for the rush order to show is the 1 s from the
 * push, measured in the browser and including the push's own HTTP round
 * trip; the sanitizer build, whose daemon runs several times slower, gets
 * 2.5 s.
 *
 * Needs node, chromium and tests/browser/node_modules (tools/setup.sh
 * installs all three).
 */
#include "e2e.h"

#define NODE "/usr/bin/node"
#define CHROMIUM "/usr/bin/chromium"
#define S_ADMIN "admin-secret-for-the-browser"

#ifdef DISPATCHD_SANITIZE
#define WITHIN_MS "2500"
#else
#define WITHIN_MS "1000"
#endif

static struct daemon D;
static pid_t node_pid;

static void
teardown(void)
{
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
        node_pid = 0;
    }
    e2e_kill(&D);
    e2e_cleanup(&D);
}

TestSuite(browser, .fini = teardown, .timeout = 600);

static const char *
users_file(void)
{
    return e2e_users_file(&D, "admin1 admin " S_ADMIN "\n");
}

/* The build folder: DISPATCHD_BIN less "/dispatcher/dispatchd". */
static void
build_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s", DISPATCHD_BIN);
    char *p = strstr(out, "/dispatcher/dispatchd");
    cr_assert(p, "unexpected DISPATCHD_BIN %s", DISPATCHD_BIN);
    *p = '\0';
}

Test(browser, board_and_customer_page_in_chromium)
{
    static bool armed;
    if (!armed) {
        armed = true;
        atexit(teardown);
    }
    char mods[600];
    snprintf(mods, sizeof mods, "%s/tests/browser/node_modules/playwright-core",
             SOURCE_DIR);
    const char *need[] = {NODE, CHROMIUM};
    for (size_t i = 0; i < 2; i++)
        cr_assert(access(need[i], X_OK) == 0,
                  "%s is missing (tools/setup.sh installs it)", need[i]);
    cr_assert(access(mods, R_OK) == 0,
              "%s is missing (tools/setup.sh runs npm ci in tests/browser)",
              mods);

    const char *users = users_file();
    e2e_start(&D, "--users", users, "--pick-estimate", "10m", NULL);
    char base[64], rport[16], shots[600];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", D.http_port);
    snprintf(rport, sizeof rport, "%d", D.port);
    build_dir(shots, sizeof shots - 20);
    strcat(shots, "/browser-shots");

    int to[2], from[2];
    cr_assert(pipe(to) == 0 && pipe(from) == 0);
    node_pid = fork();
    cr_assert(node_pid >= 0);
    if (node_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(to[0], 0);
        dup2(from[1], 1);
        dup2(from[1], 2);
        close(to[1]);
        close(from[0]);
        char dir[600];
        snprintf(dir, sizeof dir, "%s/tests/browser", SOURCE_DIR);
        if (chdir(dir) != 0)
            _exit(126);
        execl(NODE, "node", "board_check.js", "--base", base, "--resp-port",
              rport, "--secret", S_ADMIN, "--shots", shots, "--within",
              WITHIN_MS, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    FILE *in = fdopen(from[0], "r"), *out = fdopen(to[1], "w");
    cr_assert(in && out);
    static char log[1 << 16];
    size_t used = 0;
    char line[4096];
    bool passed = false;
    while (fgets(line, sizeof line, in)) {
        fputs(line, stderr);
        size_t n = strlen(line);
        if (used + n < sizeof log) {
            memcpy(log + used, line, n + 1);
            used += n;
        }
        if (strcmp(line, "RESTART\n") == 0) {
            cr_assert_eq(e2e_stop(&D), 0, "dispatchd did not stop cleanly");
            e2e_start(&D, "--users", users, "--pick-estimate", "10m", NULL);
            fputs("RESTARTED\n", out);
            fflush(out);
        }
        if (strstr(line, "board_check: all checks passed"))
            passed = true;
    }
    fclose(in);
    fclose(out);
    int st = 0;
    waitpid(node_pid, &st, 0);
    node_pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && passed,
              "board_check.js failed (status %d):\n%s", st, log);
    char png[700];
    snprintf(png, sizeof png, "%s/board.png", shots);
    cr_assert(access(png, R_OK) == 0, "no screenshot %s", png);
    snprintf(png, sizeof png, "%s/customer.png", shots);
    cr_assert(access(png, R_OK) == 0, "no screenshot %s", png);
    e2e_finish(&D);
}
