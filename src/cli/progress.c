/* progress.c - a throttled progress bar on stderr (terminals only). */
#include "cli/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/time.h"

void cli_progress_start(cli_progress *p, const char *label, uint64_t total)
{
    p->label = label;
    p->total = total;
    p->start_ns = st_now_ns();
    p->last_draw_ns = 0;
    p->has_drawn = false;
    const char *no = getenv("STRATUS_NO_PROGRESS");
    p->is_enabled = isatty(STDERR_FILENO) && !(no && *no);
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
    if (!p->is_enabled || p->total == 0)
        return;
    uint64_t now = st_now_ns();
    /* Stay quiet for short jobs; redraw at most every 100 ms. */
    if (now - p->start_ns < 300000000ull || now - p->last_draw_ns < 100000000ull)
        return;
    p->last_draw_ns = now;
    p->has_drawn = true;
    if (done > p->total)
        done = p->total;
    enum { WIDTH = 30 };
    int filled = (int)(done * WIDTH / p->total);
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = '\0';
    double elapsed = (double)(now - p->start_ns) / 1e9;
    double eta = done ? elapsed * (double)(p->total - done) / (double)done : 0;
    fprintf(stderr, "\r%s [%s] %3d%%  %llu/%llu  eta %.0fs ", p->label, bar, (int)(done * 100 / p->total),
            (unsigned long long)done, (unsigned long long)p->total, eta);
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->is_enabled && p->has_drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}
