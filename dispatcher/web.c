/*
 * Serving the embedded files.  The bytes are static: the reply adds them
 * by reference (evbuffer_add_reference), nothing is copied.
 */
#include "web.h"

#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"

/* Scripts and styles from the daemon only; no inline script, no framing,
   no form posting elsewhere, fetch and EventSource to the daemon only. */
#define WEB_CSP                                                                \
    "default-src 'none'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "              \
    "form-action 'none'; frame-ancestors 'none'"

const struct web_asset *
web_find(const char *name)
{
    for (size_t i = 0; i < web_assets_n; i++)
        if (strcmp(web_assets[i].name, name) == 0)
            return &web_assets[i];
    return NULL;
}

/* Does the If-None-Match list v name etag (or "*")? */
static bool
etag_matches(const char *v, const char *etag)
{
    size_t n = strlen(etag);
    while (v && *v) {
        while (*v == ' ' || *v == ',')
            v++;
        if (strncmp(v, "W/", 2) == 0)
            v += 2;
        if (*v == '*' || strncmp(v, etag, n) == 0)
            return true;
        v = strchr(v, ',');
    }
    return false;
}

void
web_reply(struct evhttp_request *req, const struct web_asset *a)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_add_header(oh, "ETag", a->etag);
    evhttp_add_header(oh, "Cache-Control", "no-cache");
    evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(oh, "Content-Security-Policy", WEB_CSP);
    evhttp_add_header(oh, "Referrer-Policy", "no-referrer");
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req),
                                         "If-None-Match");
    if (inm && etag_matches(inm, a->etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    evhttp_add_header(oh, "Content-Type", a->type);
    struct evbuffer *b = evbuffer_new();
    if (!b || evbuffer_add_reference(b, a->data, a->len, NULL, NULL)) {
        log_msg(LOG_WARN, "out of memory serving %s", a->name);
        if (b)
            evbuffer_free(b);
        evhttp_send_error(req, 503, "Service Unavailable");
        return;
    }
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}
