/*
 * e2e — start the real dispatchd on a free loopback port with a temporary
 * data directory, talk to it with hiredis, stop or kill it.  Shared by the
 * end-to-end suites (header-only: each suite is one binary).
 *
 * A suite that defines E2E_BIN before including this header (and links
 * dclient: the suites named test_e2e_bin*) also gets the binary protocol
 * helpers at the end: connect with client/dclient.h, check a reply's
 * status, read an order's fields by name as text.
 */
#ifndef DISPATCHD_TEST_E2E_H
#define DISPATCHD_TEST_E2E_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

struct daemon {
    pid_t pid;
    int port;
    int http_port; /* the HTTP gateway's port (free, like port) */
    char dir[256]; /* temp dir: data/ and dispatchd.log inside */
    char data[300];
    char log[300];
};

static inline int64_t
e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
e2e_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* A port the kernel just said is free on 127.0.0.1. */
static inline int
e2e_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static inline bool
e2e_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Make the temp dir (once per daemon struct). */
static inline void
e2e_tempdir(struct daemon *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/dispatchd-test-XXXXXX");
    cr_assert(mkdtemp(d->dir), "mkdtemp: %s", strerror(errno));
    snprintf(d->data, sizeof d->data, "%s/data", d->dir);
    snprintf(d->log, sizeof d->log, "%s/dispatchd.log", d->dir);
}

/* Does the daemon's log hold needle in a line from byte `from` on? */
static inline bool
e2e_log_since_has(const struct daemon *d, long from, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    char line[4096];
    bool found = false;
    if (f && from > 0)
        (void)fseek(f, from, SEEK_SET); /* failing, it reads it all */
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static inline long
e2e_log_size(const struct daemon *d)
{
    struct stat st;
    return stat(d->log, &st) == 0 ? (long)st.st_size : 0;
}

/* One start of dispatchd (see e2e_start_argv): true once it accepts
   connections, false when it exited because a port was taken. */
static inline bool
e2e_try_start(struct daemon *d, const char *const *extra)
{
    char port[16], hport[16];
    snprintf(port, sizeof port, "%d", d->port);
    snprintf(hport, sizeof hport, "%d", d->http_port);
    const char *argv[64] = {DISPATCHD_BIN, "--port",      port,
                            "--data",      d->data,       "--log-level",
                            "info",        "--http-port", hport};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    long from = e2e_log_size(d); /* a restart appends to the same log */
    d->pid = fork();
    cr_assert(d->pid >= 0, "fork: %s", strerror(errno));
    if (d->pid == 0) {
        /* Die with the test process, even when it is killed. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(DISPATCHD_BIN, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        /* Listening, and this daemon is the one: it logs the line after
           its last bind (another process may hold the port, when it took
           the number between e2e_free_port and our bind). */
        if (e2e_port_open(d->port) &&
            e2e_log_since_has(d, from, "listening on"))
            return true;
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            if (e2e_log_since_has(d, from, "cannot listen"))
                return false;
            cr_assert_fail("dispatchd exited at start (see %s)", d->log);
        }
        e2e_sleep_ms(10);
    }
    cr_assert_fail("dispatchd did not listen on %d within 10 s", d->port);
    return false;
}

/* Start dispatchd on d->port (a new free one if 0) with d->data, plus the
   NULL-terminated extra arguments; wait until it accepts connections.
   Ports picked here are picked again when another process took one
   first; a port the test chose must be free. */
static inline void
e2e_start_argv(struct daemon *d, const char *const *extra)
{
    if (!d->dir[0])
        e2e_tempdir(d);
    bool pick = !d->port, pick_http = !d->http_port;
    for (int attempt = 1;; attempt++) {
        if (pick)
            d->port = e2e_free_port();
        if (pick_http)
            d->http_port = e2e_free_port();
        if (e2e_try_start(d, extra))
            return;
        cr_assert((pick || pick_http) && attempt < 5,
                  "dispatchd could not listen (see %s)", d->log);
    }
}

static inline void
e2e_start(struct daemon *d, ...)
{
    const char *extra[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, d);
    const char *s;
    while ((s = va_arg(ap, const char *)) && n < 31)
        extra[n++] = s;
    va_end(ap);
    extra[n] = NULL;
    e2e_start_argv(d, extra);
}

/* SIGTERM and wait: returns the exit status (expect 0). */
static inline int
e2e_stop(struct daemon *d)
{
    int st = 0;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline void
e2e_kill(struct daemon *d)
{
    int st;
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
}

/* Stop the daemon and remove its directory. */
static inline void
e2e_cleanup(struct daemon *d)
{
    e2e_kill(d);
    if (d->dir[0] && getenv("DISPATCHD_KEEP_TEST_DIRS")) {
        fprintf(stderr, "kept %s\n", d->dir);
        d->dir[0] = '\0';
    }
    if (d->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", d->dir);
        d->dir[0] = '\0';
    }
}

static inline redisContext *
e2e_connect(const struct daemon *d)
{
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", d->port, tv);
    cr_assert(c && !c->err, "connect to %d: %s", d->port,
              c ? c->errstr : "no memory");
    redisSetTimeout(c, tv);
    return c;
}

/* Run a command (printf-style, hiredis formatting) and return the reply;
   asserts the connection did not fail. */
static inline redisReply *
e2e_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r, "command '%s' failed: %s", fmt, c->errstr);
    return r;
}

/* The reply must be a status or error equal to want. */
static inline void
e2e_expect(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r, "command '%s' failed: %s", fmt, c->errstr);
    cr_assert(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR,
              "'%s': reply type %d, want '%s'", fmt, r->type, want);
    cr_assert(strncmp(r->str, want, strlen(want)) == 0,
              "'%s': got '%s', want '%s...'", fmt, r->str, want);
    freeReplyObject(r);
}

/* The value of field k in a flat field/value array reply (RESP2 map), or
   NULL. */
static inline const redisReply *
e2e_field(const redisReply *r, const char *k)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[i]->str, k) == 0)
            return r->element[i + 1];
    return NULL;
}

static inline const char *
e2e_field_str(const redisReply *r, const char *k)
{
    const redisReply *v = e2e_field(r, k);
    return v && v->type == REDIS_REPLY_STRING ? v->str : NULL;
}

static inline long long
e2e_field_int(const redisReply *r, const char *k)
{
    const redisReply *v = e2e_field(r, k);
    if (!v)
        return -1;
    if (v->type == REDIS_REPLY_INTEGER)
        return v->integer;
    if (v->type == REDIS_REPLY_STRING)
        return atoll(v->str);
    return -1;
}

/* A plain TCP connection to the daemon, for byte-level tests. */
static inline int
e2e_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
              "connect to %d: %s", port, strerror(errno));
    return fd;
}

/* The daemon's resident memory, in KiB (VmRSS). */
static inline long
e2e_rss_kb(const struct daemon *d)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
    FILE *f = fopen(path, "r");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The value of "key:" in an INFO reply, or -1. */
static inline long long
e2e_info_int(redisContext *c, const char *key)
{
    redisReply *r = e2e_cmd(c, "INFO");
    char pat[80];
    long long v = -1;
    snprintf(pat, sizeof pat, "\r\n%s:", key);
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, pat) : NULL;
    if (p)
        v = atoll(p + strlen(pat));
    freeReplyObject(r);
    return v;
}

/* Outputs a test keeps (e2e_keep) until its teardown frees them
   (e2e_free_kept): command outputs whose strings assertions still use. */
struct e2e_kept {
    char *v[256];
    size_t n;
};

static inline struct e2e_kept *
e2e_kept(void)
{
    static struct e2e_kept k;
    return &k;
}

static inline char *
e2e_keep(char *s)
{
    struct e2e_kept *k = e2e_kept();
    cr_assert(s != NULL && k->n < sizeof k->v / sizeof k->v[0],
              "e2e_keep: nothing to keep, or more than 256 outputs");
    k->v[k->n++] = s;
    return s;
}

static inline void
e2e_free_kept(void)
{
    struct e2e_kept *k = e2e_kept();
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    k->n = 0;
}

/* Run a shell command (printf-style) with stderr merged into stdout:
   its output (malloc'd, the caller frees) and its exit status in
   *status. */
static inline char *
e2e_sh(int *status, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd - 8, "command too long");
    strcat(cmd, " 2>&1");
    FILE *f = popen(cmd, "r");
    cr_assert(f, "popen: %s", strerror(errno));
    size_t cap = 4096, len = 0, k;
    char *out = malloc(cap);
    cr_assert(out);
    while ((k = fread(out + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len < 1024) {
            cap *= 2;
            out = realloc(out, cap);
            cr_assert(out);
        }
    }
    out[len] = '\0';
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

/* Does the daemon's log hold needle? */
static inline bool
e2e_log_has(const struct daemon *d, const char *needle)
{
    return e2e_log_since_has(d, 0, needle);
}

/* The end of a test: SIGTERM must stop the daemon with status 0 (the
   sanitizer build exits non-zero on a leak) and its log must hold no
   sanitizer report. */
static inline void
e2e_finish(struct daemon *d)
{
    int st = e2e_stop(d);
    bool bad = e2e_log_has(d, "runtime error") || e2e_log_has(d, "Sanitizer");
    cr_assert_eq(st, 0, "dispatchd exited with %d on SIGTERM (see %s)", st,
                 d->log);
    cr_assert(!bad, "sanitizer report in the daemon log %s", d->log);
}

/* A users file ("name role secret" lines) in d's directory, mode 600, for
   --users; its path (static storage). */
static inline const char *
e2e_users_file(struct daemon *d, const char *lines)
{
    static char path[300];
    if (!d->dir[0])
        e2e_tempdir(d);
    snprintf(path, sizeof path, "%s/users", d->dir);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(lines, f);
    fclose(f);
    cr_assert_eq(chmod(path, 0600), 0);
    return path;
}

#ifdef E2E_BIN
#include <inttypes.h>

#include "dclient.h"

/* A binary protocol connection (first byte 0xD5) through the client
   library, with a 10 s timeout on every read and write. */
static inline struct dc_client *
e2e_bin_connect(const struct daemon *d)
{
    char err[256];
    struct dc_client *c = dc_connect("127.0.0.1", d->port, err, sizeof err);
    cr_assert(c, "dc_connect to %d: %s", d->port, err);
    cr_assert_eq(dc_set_timeout(c, 10000), 0);
    return c;
}

/* rc is what a dc_* call returned for reply r: there must be a reply,
   with status want; for an error status its code word must be word
   (NULL: wire_status_word(want)). */
#define e2e_bin_status(c, rc, r, want)                                         \
    do {                                                                       \
        int e2e_rc_ = (rc);                                                    \
        cr_assert_eq(e2e_rc_, 0, "%s:%d: no reply: %s", __FILE__, __LINE__,    \
                     dc_errstr(c));                                            \
        char e2e_line_[800];                                                   \
        cr_assert_eq((r)->status, (want), "%s:%d: status %s, want %s",         \
                     __FILE__, __LINE__,                                       \
                     dc_status_line((r), e2e_line_, sizeof e2e_line_),         \
                     wire_status_name(want));                                  \
        if (wire_status_is_error(want))                                        \
            cr_assert_str_eq((r)->word, wire_status_word(want));               \
    } while (0)

/* The value of a field as text, the way RESP sends it: INT and U64 in
   decimal, STR and LIST as they are, ATTRS as "k=v;k=v;".  buf must hold
   cap bytes; longer values are cut. */
static inline const char *
e2e_bin_text(const struct dc_field *f, char *buf, size_t cap)
{
    switch (f->kind & ~WIRE_KIND_KEYED) {
    case WIRE_KIND_INT:
        snprintf(buf, cap, "%" PRId64, f->i);
        break;
    case WIRE_KIND_U64:
        snprintf(buf, cap, "%" PRIu64, f->u);
        break;
    case WIRE_KIND_ATTRS: {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < f->nattrs && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s=%s;", f->attrs[i].key,
                                  f->attrs[i].value);
        break;
    }
    default:
        snprintf(buf, cap, "%s", f->s);
    }
    return buf;
}

/* A field of an order, an entry or the stats by name: its text (in a
   static buffer, valid until the next call), or NULL when absent. */
static inline const char *
e2e_bin_str(const struct dc_record *rec, const char *name)
{
    static char buf[4096];
    const struct dc_field *f = rec ? dc_field_find(rec, name) : NULL;
    return f ? e2e_bin_text(f, buf, sizeof buf) : NULL;
}

/* An INT or U64 field by name, or -1 when absent. */
static inline long long
e2e_bin_int(const struct dc_record *rec, const char *name)
{
    const struct dc_field *f = rec ? dc_field_find(rec, name) : NULL;
    if (!f)
        return -1;
    return (f->kind & ~WIRE_KIND_KEYED) == WIRE_KIND_U64 ? (long long)f->u
                                                         : (long long)f->i;
}
#endif /* E2E_BIN */

#endif
