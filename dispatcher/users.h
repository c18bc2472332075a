/*
 * users — who may do what: the users file (--users FILE, "name role
 * secret" a line) and the one table of which role may run which
 * operation, used by every protocol (RESP, binary, HTTP).
 *
 * Roles: viewer (reads), erp (orders in: push, approve, hold, cancel,
 * reprio, and reads), wms (picking and confirmations: next, touch,
 * release, picked, outbound, deliver, and reads), admin (everything,
 * checkpoint and config too).  Without a users file everybody is admin,
 * which the daemon allows only on a loopback address.
 */
#ifndef DISPATCHD_USERS_H
#define DISPATCHD_USERS_H

#include <stdbool.h>
#include <stddef.h>

#define USER_NAME_MAX 64
#define USER_SECRET_MAX 128
#define USERS_MAX 1024

enum role { ROLE_NONE, ROLE_VIEWER, ROLE_ERP, ROLE_WMS, ROLE_ADMIN };

/* Every operation a client can ask for, on any protocol. */
enum op {
    OP_PUSH,
    OP_APPROVE,
    OP_HOLD,
    OP_CANCEL,
    OP_REPRIO,
    OP_NEXT,
    OP_TOUCH,
    OP_RELEASE,
    OP_PICKED,
    OP_OUTBOUND,
    OP_DELIVER,
    OP_GET,
    OP_PEEK,
    OP_AUDIT,
    OP_STATS,
    OP_EVENTS,
    OP_METRICS,
    OP_CHECKPOINT,
    OP_CONFIG,
    OP_COUNT
};

struct user {
    char name[USER_NAME_MAX + 1];
    int role; /* enum role */
    char secret[USER_SECRET_MAX + 1];
};

struct users {
    bool enabled; /* a users file was given: clients must authenticate */
    size_t n;
    struct user *u;
};

/* Load path.  Refused (-1, err says why) when it is readable or writable
   by group or others, a line is malformed, a role unknown, a name given
   twice or a secret shorter than 8 bytes. */
int users_load(struct users *us, const char *path, char *err, size_t errlen);
void users_free(struct users *us);

/* The user with this name and secret, or NULL.  Compares in constant
   time for a given secret length. */
const struct user *users_check(const struct users *us, const char *name,
                               size_t name_len, const char *secret,
                               size_t secret_len);
/* The user with this secret (HTTP Bearer), or NULL. */
const struct user *users_by_secret(const struct users *us, const char *secret,
                                   size_t secret_len);

/* May `role` run `op`? */
bool role_allows(int role, int op);
const char *role_name(int role);
const char *op_name(int op);

#endif
