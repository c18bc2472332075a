/*
 * track — "where is my order": the customer's link and what it shows.
 *
 * A customer has no account; the ERP sends a link by SMS or QR code.  The
 * link carries a per-order capability, t = the first 16 bytes (32 hex
 * digits) of HMAC-SHA256(secret, order id): it opens that one order and
 * nothing else, it cannot be guessed or derived from another order's
 * link, and the daemon keeps no table of them.  The secret is generated
 * on first start and kept in the store (meta "customer_secret"), so links
 * survive restarts and checkpoints, or read from --customer-secret FILE;
 * a new secret invalidates every link (rotation).  A wrong token and an
 * unknown order get the same answer, so the page is no oracle for ids.
 *
 * What the page may show is decided here, field by field: the state in
 * words, position and expected pick time while queued, carrier and time
 * once shipped, and the lead time of similar orders (leadtime.h).
 * Loop thread only.
 */
#ifndef DISPATCHD_TRACK_H
#define DISPATCHD_TRACK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core.h"
#include "leadtime.h"

#define TRACK_KEY_MAX 256  /* bytes of a secret */
#define TRACK_TOKEN_LEN 32 /* hex digits of a token */
#define TRACK_FIELD_MAX 64 /* the WMS callback's carrier field name */

struct track {
    unsigned char key[TRACK_KEY_MAX];
    size_t keylen;
    struct leadtime *lt; /* fed on outbound (track_outbound) */
    char carrier_field[TRACK_FIELD_MAX];
};

/* Load the secret (secret_file, or the store's, made on first start) and
   rebuild the lead times from the finished orders c keeps.  Returns 0, or
   -1 after logging why. */
int track_open(struct track *t, struct core *c, const char *secret_file,
               const char *carrier_field);
void track_close(struct track *t);

/* The token of order id (len bytes) into out (TRACK_TOKEN_LEN + 1). */
void track_token(const struct track *t, const char *id, size_t len,
                 char out[TRACK_TOKEN_LEN + 1]);
/* Is tok (NUL-terminated, may be NULL) the token of id?  Constant time. */
bool track_check(const struct track *t, const char *id, size_t len,
                 const char *tok);

/* An order just shipped (feed the lead times). */
void track_outbound(struct track *t, const struct order *o);

/* What the customer may see of o, or NULL when out of memory. */
json_t *track_json(struct track *t, struct core *c, const struct order *o);

#endif
