/*
 * dispatchd — decides which warehouse order gets picked next.
 * See README.md for the commands and net.h for how the daemon is put
 * together.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "net.h"

int
main(int argc, char **argv)
{
    struct config cfg;
    static struct net n; /* large: not on the stack */

    config_default(&cfg);
    int rc = config_from_args(&cfg, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    log_level = cfg.log_level;
    /* A peer that goes away must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);

    if (net_init(&n, &cfg)) {
        net_free(&n);
        return 1;
    }
    rc = net_run(&n);
    net_free(&n);
    log_msg(LOG_INFO, "stopped");
    return rc ? 1 : 0;
}
