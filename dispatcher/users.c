/*
 * The users file and the permission table.
 */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const role_names[] = {"none", "viewer", "erp", "wms",
                                         "admin"};

static const char *const op_names[OP_COUNT] = {
    "push",    "approve", "hold",     "cancel",     "reprio", "next", "touch",
    "release", "picked",  "outbound", "deliver",    "get",    "peek", "audit",
    "stats",   "events",  "metrics",  "checkpoint", "config",
};

/* The one table: for each operation, the roles that may run it. */
#define V (1u << ROLE_VIEWER)
#define E (1u << ROLE_ERP)
#define W (1u << ROLE_WMS)
#define A (1u << ROLE_ADMIN)
static const unsigned allowed[OP_COUNT] = {
    [OP_PUSH] = E | A,
    [OP_APPROVE] = E | A,
    [OP_HOLD] = E | A,
    [OP_CANCEL] = E | A,
    [OP_REPRIO] = E | A,
    [OP_NEXT] = W | A,
    [OP_TOUCH] = W | A,
    [OP_RELEASE] = W | A,
    [OP_PICKED] = W | A,
    [OP_OUTBOUND] = W | A,
    [OP_DELIVER] = W | A,
    [OP_GET] = V | E | W | A,
    [OP_PEEK] = V | E | W | A,
    [OP_AUDIT] = V | E | W | A,
    [OP_STATS] = V | E | W | A,
    [OP_EVENTS] = V | E | W | A,
    [OP_METRICS] = V | E | W | A,
    [OP_CHECKPOINT] = A,
    [OP_CONFIG] = A,
};
#undef V
#undef E
#undef W
#undef A

bool
role_allows(int role, int op)
{
    if (role <= ROLE_NONE || role > ROLE_ADMIN || op < 0 || op >= OP_COUNT)
        return false;
    return (allowed[op] >> role) & 1u;
}

const char *
role_name(int role)
{
    return role >= 0 && role <= ROLE_ADMIN ? role_names[role] : "?";
}

const char *
op_name(int op)
{
    return op >= 0 && op < OP_COUNT ? op_names[op] : "?";
}

/* Equal, in time that depends on the lengths only. */
static bool
same(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

const struct user *
users_check(const struct users *us, const char *name, size_t name_len,
            const char *secret, size_t secret_len)
{
    for (size_t i = 0; i < us->n; i++) {
        const struct user *u = &us->u[i];
        if (strlen(u->name) == name_len && !memcmp(u->name, name, name_len))
            return same(u->secret, strlen(u->secret), secret, secret_len)
                       ? u
                       : NULL;
    }
    return NULL;
}

const struct user *
users_by_secret(const struct users *us, const char *secret, size_t secret_len)
{
    const struct user *found = NULL;
    for (size_t i = 0; i < us->n; i++)
        if (same(us->u[i].secret, strlen(us->u[i].secret), secret, secret_len))
            found = &us->u[i];
    return found;
}

static int
fail(char *err, size_t errlen, const char *fmt, const char *path, int line,
     const char *what)
{
    char where[300];
    if (line > 0)
        snprintf(where, sizeof where, "%s:%d", path, line);
    else
        snprintf(where, sizeof where, "%s", path);
    snprintf(err, errlen, fmt, where, what);
    return -1;
}

int
users_load(struct users *us, const char *path, char *err, size_t errlen)
{
    memset(us, 0, sizeof *us);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "%s: %s", path, 0, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return fail(err, errlen, "%s: %s", path, 0, strerror(errno));
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return fail(err, errlen, "%s: %s (chmod 600 it: it holds secrets)",
                    path, 0, "readable or writable by group or others");
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return fail(err, errlen, "%s: %s", path, 0, strerror(errno));
    }
    us->u = calloc(USERS_MAX, sizeof *us->u);
    if (!us->u) {
        fclose(f);
        return fail(err, errlen, "%s: %s", path, 0, "out of memory");
    }
    char line[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = fail(err, errlen, "%s: %s", path, lineno, "line too long");
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char name[USER_NAME_MAX + 2], role[16], secret[USER_SECRET_MAX + 2],
            extra[2];
        int k = sscanf(line, "%65s %15s %129s %1s", name, role, secret, extra);
        if (k <= 0)
            continue; /* blank or comment */
        if (k != 3) {
            rc = fail(err, errlen, "%s: %s", path, lineno,
                      "expected 'name role secret'");
            break;
        }
        if (strlen(name) > USER_NAME_MAX || strlen(secret) > USER_SECRET_MAX) {
            rc = fail(err, errlen, "%s: %s", path, lineno,
                      "name (64) or secret (128) too long");
            break;
        }
        if (strlen(secret) < 8) {
            rc = fail(err, errlen, "%s: %s", path, lineno,
                      "secret shorter than 8 bytes");
            break;
        }
        int r = ROLE_NONE;
        for (int i = ROLE_VIEWER; i <= ROLE_ADMIN; i++)
            if (strcasecmp(role, role_names[i]) == 0)
                r = i;
        if (r == ROLE_NONE) {
            rc = fail(err, errlen, "%s: %s", path, lineno,
                      "unknown role (viewer, erp, wms, admin)");
            break;
        }
        for (size_t i = 0; i < us->n && !rc; i++) {
            if (strcmp(us->u[i].name, name) == 0)
                rc = fail(err, errlen, "%s: %s", path, lineno,
                          "user named twice");
            else if (strcmp(us->u[i].secret, secret) == 0)
                /* A Bearer token or "AUTH secret" names its user by the
                   secret alone. */
                rc = fail(err, errlen, "%s: %s", path, lineno,
                          "secret already used by another user");
        }
        if (rc)
            break;
        if (us->n == USERS_MAX) {
            rc = fail(err, errlen, "%s: %s", path, lineno,
                      "more than 1024 users");
            break;
        }
        struct user *u = &us->u[us->n++];
        memcpy(u->name, name, strlen(name) + 1);
        memcpy(u->secret, secret, strlen(secret) + 1);
        u->role = r;
    }
    fclose(f);
    if (!rc && us->n == 0)
        rc = fail(err, errlen, "%s: %s", path, 0, "no users in the file");
    if (rc) {
        users_free(us);
        return -1;
    }
    us->enabled = true;
    return 0;
}

void
users_free(struct users *us)
{
    if (us->u)
        memset(us->u, 0, USERS_MAX * sizeof *us->u); /* the secrets */
    free(us->u);
    us->u = NULL;
    us->n = 0;
    us->enabled = false;
}
