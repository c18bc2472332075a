/*
 * dispatchd — decides which warehouse order gets picked next.
 * See README.md for the commands and server.h for how the loop works.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "server.h"

int
main(int argc, char **argv)
{
    struct config cfg;
    static struct server srv; /* large (the parse scratch): not on the stack */

    config_default(&cfg);
    int rc = config_from_args(&cfg, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    log_level = cfg.log_level;
    /* A peer that goes away must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    if (server_init(&srv, &cfg)) {
        server_free(&srv);
        return 1;
    }
    rc = server_run(&srv);
    server_free(&srv);
    log_msg(LOG_INFO, "stopped");
    return rc ? 1 : 0;
}
