/*
 * Tokens are HMAC-SHA256 truncated to 128 bits, compared with
 * CRYPTO_memcmp.  The carrier is read from the WMS callback's raw body
 * kept in the audit trail (its field name is --wms-field-carrier), or from
 * the order's "carrier" attribute, so no new field is stored.
 */
#include "track.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "jview.h"
#include "log.h"

#define META_KEY "customer_secret"
#define GEN_BYTES 32

static int
hex_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return (int)(len / 2);
}

static void
hex_encode(const unsigned char *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
secret_from_file(struct track *t, const char *path)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f) {
        log_msg(LOG_ERROR, "customer secret %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        log_msg(LOG_ERROR,
                "customer secret %s is readable or writable by others "
                "(mode %03o): chmod 600 it",
                path, (unsigned)(st.st_mode & 0777));
        fclose(f);
        return -1;
    }
    size_t n = fread(t->key, 1, sizeof t->key, f);
    int more = fgetc(f);
    fclose(f);
    while (n && (t->key[n - 1] == '\n' || t->key[n - 1] == '\r' ||
                 t->key[n - 1] == ' '))
        n--;
    if (more != EOF || n < 16) {
        log_msg(LOG_ERROR, "customer secret %s must be 16 to %d bytes", path,
                TRACK_KEY_MAX);
        return -1;
    }
    t->keylen = n;
    return 0;
}

static int
secret_from_store(struct track *t, struct core *c)
{
    char hex[2 * TRACK_KEY_MAX + 1];
    size_t len = 0;
    int rc = core_meta_get(c, META_KEY, hex, sizeof hex - 1, &len);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        int n = hex_decode(hex, len, t->key, sizeof t->key);
        if (n < 16) {
            log_msg(LOG_ERROR, "the stored customer secret is malformed");
            return -1;
        }
        t->keylen = (size_t)n;
        return 0;
    }
    if (RAND_bytes(t->key, GEN_BYTES) != 1) {
        log_msg(LOG_ERROR, "cannot make a customer secret: no randomness");
        return -1;
    }
    t->keylen = GEN_BYTES;
    hex_encode(t->key, GEN_BYTES, hex);
    if (!core_meta_put(c, META_KEY, hex, 2 * GEN_BYTES)) {
        log_msg(LOG_ERROR, "storage refused the new customer secret");
        return -1;
    }
    log_msg(LOG_INFO, "made a new customer link secret (kept in the store)");
    return 0;
}

static void
rebuild_one(void *ctx, const struct order *o)
{
    leadtime_add_order(ctx, o);
}

int
track_open(struct track *t, struct core *c, const char *secret_file,
           const char *carrier_field)
{
    memset(t, 0, sizeof *t);
    snprintf(t->carrier_field, sizeof t->carrier_field, "%s",
             carrier_field && *carrier_field ? carrier_field : "carrier");
    if (secret_file && *secret_file ? secret_from_file(t, secret_file)
                                    : secret_from_store(t, c))
        return -1;
    t->lt = leadtime_new();
    if (!t->lt) {
        log_msg(LOG_ERROR, "out of memory: lead times");
        return -1;
    }
    core_each_finished(c, rebuild_one, t->lt);
    return 0;
}

void
track_close(struct track *t)
{
    leadtime_free(t->lt);
    OPENSSL_cleanse(t->key, sizeof t->key);
    t->lt = NULL;
}

void
track_token(const struct track *t, const char *id, size_t len,
            char out[TRACK_TOKEN_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), t->key, (int)t->keylen, (const unsigned char *)id,
              len, mac, &maclen))
        log_fatal("HMAC-SHA256 failed");
    hex_encode(mac, TRACK_TOKEN_LEN / 2, out);
}

bool
track_check(const struct track *t, const char *id, size_t len, const char *tok)
{
    char want[TRACK_TOKEN_LEN + 1];
    if (!tok || strlen(tok) != TRACK_TOKEN_LEN)
        return false;
    track_token(t, id, len, want);
    return CRYPTO_memcmp(want, tok, TRACK_TOKEN_LEN) == 0;
}

void
track_outbound(struct track *t, const struct order *o)
{
    leadtime_add_order(t->lt, o);
}

struct carrier_find {
    const char *field;
    char carrier[ORDER_NAME_MAX + 1];
};

/* The last outbound entry's raw body names the carrier. */
static int
carrier_one(void *ctx, uint32_t seq, const struct audit_entry *a)
{
    struct carrier_find *cf = ctx;
    (void)seq;
    if (a->action != ACTION_OUTBOUND || !a->raw_len)
        return 0;
    json_t *j = json_loadb(a->raw, a->raw_len, 0, NULL);
    const char *s = json_string_value(json_object_get(j, cf->field));
    if (s && *s)
        snprintf(cf->carrier, sizeof cf->carrier, "%s", s);
    json_decref(j);
    return 0;
}

static void
set_time(json_t *j, const char *key, int64_t ms)
{
    char buf[40], k[48];
    order_time_format(ms, buf, sizeof buf);
    json_object_set_new(j, key, json_string(buf));
    snprintf(k, sizeof k, "%s_ms", key);
    json_object_set_new(j, k, json_integer(ms));
}

json_t *
track_json(struct track *t, struct core *c, const struct order *o)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    int64_t now = core_now();
    json_object_set_new(j, "id", jview_str(o->id, strlen(o->id)));
    json_object_set_new(j, "state", json_string(order_state_name(o->state)));
    size_t rank;
    int64_t eta;
    if (o->state == STATE_QUEUED && core_position(c, o, &rank, &eta)) {
        json_object_set_new(j, "position", json_integer((json_int_t)rank + 1));
        set_time(j, "expected_pick_at", now + eta);
    }
    if (o->state == STATE_SHIPPED || o->state == STATE_DELIVERED) {
        struct core_result res;
        struct carrier_find cf = {t->carrier_field, ""};
        core_audit(c, o->id, strlen(o->id), carrier_one, &cf, &res);
        if (!cf.carrier[0]) {
            const char *a = order_attr_get(o, "carrier");
            if (a)
                snprintf(cf.carrier, sizeof cf.carrier, "%s", a);
        }
        if (cf.carrier[0])
            json_object_set_new(j, "carrier",
                                jview_str(cf.carrier, strlen(cf.carrier)));
        set_time(j, "shipped_at", o->outbound_at);
        if (o->state == STATE_DELIVERED)
            set_time(j, "delivered_at", o->delivered_at);
    }
    struct leadtime_stat st;
    leadtime_get(t->lt, o->customer, o->cls, now, &st);
    json_t *lt = json_object();
    json_object_set_new(lt, "orders", json_integer((json_int_t)st.n));
    json_object_set_new(lt, "days",
                        json_integer(LEADTIME_WINDOW_MS / 86400000));
    if (st.n) {
        json_object_set_new(lt, "median_ms", json_integer(st.median_ms));
        json_object_set_new(lt, "p90_ms", json_integer(st.p90_ms));
    }
    json_object_set_new(j, "lead_time", lt);
    return j;
}
