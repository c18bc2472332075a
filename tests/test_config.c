/*
 * config: defaults, durations, the command line, the INI file, and which
 * one wins.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "store.h"

#define ARGV(...) ((char *[]){"dispatchd", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"dispatchd", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, ...) config_from_args((cfg), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

static char ini_path[64];

static char *
write_ini(const char *text)
{
    snprintf(ini_path, sizeof ini_path, "/tmp/test_config.XXXXXX");
    int fd = mkstemp(ini_path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return ini_path;
}

static void
remove_ini(void)
{
    if (ini_path[0])
        unlink(ini_path);
}

TestSuite(config, .fini = remove_ini);

Test(config, defaults)
{
    struct config c;
    config_default(&c);
    cr_assert_str_eq(c.bind, "127.0.0.1");
    cr_assert_eq(c.port, 7420);
    cr_assert_str_eq(c.data, "var/data");
    cr_assert_eq(c.durability, STORE_SYNC);
    cr_assert_eq(c.batch_ms, 10);
    cr_assert_eq(c.idle_timeout_ms, 300000);
    cr_assert_eq(c.retention_ms, 30LL * 24 * 3600 * 1000);
    cr_assert_eq(c.queue.lease_ms, 300000);
    cr_assert_eq(c.queue.deadline_default[CLASS_ASN], 0, "asn needs one");
    cr_assert_eq(c.queue.deadline_default[CLASS_NORMAL], 72LL * 3600 * 1000);
}

Test(config, durations)
{
    int64_t ms;
    const struct {
        const char *s;
        int64_t unit, want;
    } ok[] = {
        {"250ms", 1000, 250},     {"30s", 1000, 30000},
        {"15m", 1000, 900000},    {"4h", 1000, 14400000},
        {"30d", 1000, 2592000000}, {"300", 1000, 300000},
        {"1.5s", 1000, 1500},     {"0", 1000, 0},
        {"7", 1, 7},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(config_duration(ok[i].s, ok[i].unit, &ms), 0, "%s",
                     ok[i].s);
        cr_assert_eq(ms, ok[i].want, "%s: %lld", ok[i].s, (long long)ms);
    }
    const char *bad[] = {"", "abc", "-1", "5x", "5 s", "1e300d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(config_duration(bad[i], 1000, &ms), -1, "'%s'", bad[i]);
}

Test(config, command_line)
{
    struct config c;
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--port", "7421", "-b", "::1", "--data", "/x/y",
                       "--durability", "batch", "--batch-ms", "5",
                       "--lease-default", "2m", "--max-clients", "99",
                       "--idle-timeout", "0", "--retention", "7d",
                       "--deadline-rush24h", "12h", "--escalate-normal",
                       "6h", "--pick-estimate", "90s", "--log-level",
                       "debug"),
                 0);
    cr_assert_eq(c.port, 7421);
    cr_assert_str_eq(c.bind, "::1");
    cr_assert_str_eq(c.data, "/x/y");
    cr_assert_eq(c.durability, STORE_BATCH);
    cr_assert_eq(c.batch_ms, 5);
    cr_assert_eq(c.queue.lease_ms, 120000);
    cr_assert_eq(c.max_clients, 99);
    cr_assert_eq(c.idle_timeout_ms, 0);
    cr_assert_eq(c.retention_ms, 7LL * 24 * 3600 * 1000);
    cr_assert_eq(c.queue.deadline_default[CLASS_RUSH24H], 12LL * 3600000);
    cr_assert_eq(c.queue.deadline_default[CLASS_RUSH4H], 4LL * 3600000,
                 "untouched");
    cr_assert_eq(c.queue.escalate_window[CLASS_NORMAL], 6LL * 3600000);
    cr_assert_eq(c.queue.pick_ms, 90000);
    cr_assert_eq(c.log_level, LOG_DEBUG);
}

Test(config, bad_values_are_refused, .init = cr_redirect_stderr)
{
    struct config c;
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--port", "0"), -1);
    cr_assert_eq(PARSE(&c, "--port", "70000"), -1);
    cr_assert_eq(PARSE(&c, "--port", "12ab"), -1);
    cr_assert_eq(PARSE(&c, "--durability", "sometimes"), -1);
    cr_assert_eq(PARSE(&c, "--lease-default", "10ms"), -1, "below 1 s");
    cr_assert_eq(PARSE(&c, "--max-clients", "-3"), -1);
    cr_assert_eq(PARSE(&c, "--bogus"), -1);
    cr_assert_eq(PARSE(&c, "stray-argument"), -1);
    cr_assert_eq(PARSE(&c, "--log-level", "loud"), -1);
    cr_assert_eq(c.port, 7420, "a refused value changes nothing");
}

Test(config, help_and_version, .init = cr_redirect_stdout)
{
    struct config c;
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--help"), 1);
    cr_assert_eq(PARSE(&c, "-V"), 1);
    fflush(stdout);
    cr_assert_stdout_neq_str("");
}

Test(config, file_then_command_line)
{
    struct config c;
    config_default(&c);
    char *path = write_ini("; dispatchd\n"
                                 "[server]\n"
                                 "port = 7500\n"
                                 "bind = 127.0.0.2\n"
                                 "[storage]\n"
                                 "durability = none\n"
                                 "retention = 2d\n"
                                 "[queue]\n"
                                 "lease-default = 90s\n"
                                 "escalate-rush24h = 1h\n");
    cr_assert_eq(PARSE(&c, "--config", path, "--port", "7501"), 0);
    cr_assert_eq(c.port, 7501, "the command line wins");
    cr_assert_str_eq(c.bind, "127.0.0.2");
    cr_assert_eq(c.durability, STORE_NONE);
    cr_assert_eq(c.retention_ms, 2LL * 24 * 3600 * 1000);
    cr_assert_eq(c.queue.lease_ms, 90000);
    cr_assert_eq(c.queue.escalate_window[CLASS_RUSH24H], 3600000);

    /* The order on the command line does not matter: the file is read
       first even when --config comes last. */
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--port", "7502", "-c", path), 0);
    cr_assert_eq(c.port, 7502);
}

Test(config, bad_files_are_refused, .init = cr_redirect_stderr)
{
    struct config c;
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--config", "/nonexistent/dispatchd.ini"), -1);
    cr_assert_eq(PARSE(&c, "--config", write_ini("colour = blue\n")), -1,
                 "unknown key");
    remove_ini();
    cr_assert_eq(PARSE(&c, "--config", write_ini("port = many\n")), -1,
                 "bad value");
    remove_ini();
    cr_assert_eq(PARSE(&c, "--config", write_ini("[server\nport=1\n")), -1,
                 "syntax");
    remove_ini();
    cr_assert_eq(PARSE(&c, "--config", write_ini("config = other.ini\n")), -1,
                 "no nested config");
}

Test(config, notify_options)
{
    struct config c;
    config_default(&c);
    cr_assert_eq(c.notify.retry_ms, 5000);
    cr_assert_eq(c.notify.retry_max_ms, 300000);
    cr_assert_eq(c.notify.attempts, 8);
    cr_assert_eq(c.notify.rate, 0, "0: by format, 20 chat / 600 json");
    cr_assert_str_eq(c.notify.events,
                     "jump,at_risk,lease_expired,outbound_unleased,anomaly");
    char *ini = write_ini("[notify]\n"
                          "notify = dingtalk+http://127.0.0.1:9/robot/send?"
                          "access_token=a\n"
                          "notify = http://127.0.0.1:9/hook\n"
                          "notify-secret = SECx\n"
                          "alert = wecom+http://127.0.0.1:9/cgi-bin/webhook\n");
    cr_assert_eq(PARSE(&c, "--config", ini, "--notify",
                       "json+http://127.0.0.1:9/three", "--notify-retry",
                       "200ms", "--notify-attempts", "3", "--notify-rate", "5",
                       "--notify-events", "jump"),
                 0);
    cr_assert_eq(c.notify.n_targets, 3);
    cr_assert_str_eq(c.notify.targets[2], "json+http://127.0.0.1:9/three");
    cr_assert_eq(c.notify.n_alerts, 1);
    cr_assert_str_eq(c.notify.secret, "SECx");
    cr_assert_eq(c.notify.retry_ms, 200);
    cr_assert_eq(c.notify.attempts, 3);
    cr_assert_eq(c.notify.rate, 5);
    cr_assert_str_eq(c.notify.events, "jump");
}

Test(config, bad_notify_targets_are_refused, .init = cr_redirect_stderr)
{
    struct config c;
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--notify", "slack+http://127.0.0.1/x"), -1);
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--notify", "not a url"), -1);
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--notify", "ftp://127.0.0.1/x"), -1);
    config_default(&c);
    cr_assert_eq(PARSE(&c, "--notify-attempts", "0"), -1);
}

Test(notify, dingtalk_signature)
{
    /* base64(HMAC-SHA256("SECdemo", "1700000000000\nSECdemo")), URL-encoded,
       computed with Python's hmac. */
    char sign[128];
    cr_assert_eq(
        notify_dingtalk_sign("SECdemo", 1700000000000LL, sign, sizeof sign), 0);
    cr_assert_str_eq(sign, "lOvVf9TQCVugV68mGbSZCg0gzOl1SVjxWi1MyVZCUuA%3D");
}
