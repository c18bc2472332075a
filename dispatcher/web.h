/*
 * web — the board's and the customer page's static files (dispatcher/web/),
 * compiled into the daemon by cmake/embed.cmake, and the reply that
 * serves one: its Content-Type, an ETag (a hash of its bytes) answered
 * with 304 on If-None-Match, Cache-Control: no-cache (revalidate each
 * time, so a new daemon's page is seen at once), nosniff and a Content
 * Security Policy that allows only the daemon's own scripts and styles.
 */
#ifndef DISPATCHD_WEB_H
#define DISPATCHD_WEB_H

#include <stddef.h>

struct web_asset {
    const char *name;          /* "board.js" */
    const char *type;          /* Content-Type */
    const char *etag;          /* "\"0123456789abcdef\"" */
    const unsigned char *data; /* len bytes (and a NUL after them) */
    size_t len;
};

/* The generated table (web_assets.c in the build folder). */
extern const struct web_asset web_assets[];
extern const size_t web_assets_n;

/* The file called name, or NULL. */
const struct web_asset *web_find(const char *name);

struct evhttp_request;
/* Answer req with a (200, or 304 when If-None-Match names its ETag; no
   body for HEAD). */
void web_reply(struct evhttp_request *req, const struct web_asset *a);

#endif
