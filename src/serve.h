/* `postern serve`: the daemon's life from start-up to a graceful stop. */
#ifndef POSTERN_SERVE_H
#define POSTERN_SERVE_H

#include "config.h"

/* Runs until SIGTERM or SIGINT. config_path is the file cfg was read from (NULL: none):
 * SIGHUP reads its [log] level again. Returns 0 after a clean stop, -1 when start-up
 * failed. */
int serve_run(const struct config *cfg, const char *config_path);

#endif
