/* progress.h - a progress bar on stderr for work a user waits on.  Drawn
 * only when stderr is a terminal and at most ~10 times a second, so
 * scripts and logs see nothing. */
#ifndef ST_CLI_PROGRESS_H
#define ST_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cli_progress {
    const char *label;
    uint64_t total;
    uint64_t start_ns;
    uint64_t last_draw_ns;
    bool is_enabled;
    bool has_drawn;
} cli_progress;

/* Starts a bar for `total` units (rows, runs, seconds x 1000...). */
void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
/* Reports `done` units so far; redraws when due. */
void cli_progress_update(cli_progress *p, uint64_t done);
/* Clears the bar's line. */
void cli_progress_finish(cli_progress *p);

#endif
