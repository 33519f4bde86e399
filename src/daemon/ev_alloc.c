/*
 * ev_alloc.c — libev's allocator for forkpoold (see ev_alloc.h).
 *
 * libev cannot carry on without the memory it asks for: a NULL from its
 * allocator makes it print "memory allocation failed" and abort, and its
 * default allocator does just that the first time realloc fails (libev's
 * ev.pod, ev_set_allocator, suggests sleeping and retrying instead).  What
 * it asks for is small and rare (its fd and timer tables, grown by
 * doubling), so a failure means the daemon is out of memory already --
 * typically an RLIMIT_AS or a strict overcommit limit, where memory freed
 * elsewhere can be had again.  This allocator:
 *
 *   1. gives back a reserve block kept for this moment, and retries;
 *   2. retries RETRIES more times, sleeping 1, 10, 100 ms in between (the
 *      master stops for at most about 0.1 s, and only when memory has run
 *      out: a bounded stall rather than a crash);
 *   3. then logs one error line naming the size and aborts, as libev would
 *      -- the log says why the daemon died.
 *
 * The reserve is taken back once an allocation succeeds again.  The
 * logger lives in a static: libev's allocator takes no user argument.
 */
#include "config.h"
#include <stdlib.h>
#include <time.h>
#include <ev.h>

#include "ev_alloc.h"

#define RESERVE_BYTES   (1u << 20)
#define RETRIES         3

static const struct fp_logger *alloc_log;
static void *reserve;

static void *
ev_alloc(void *ptr, long size)
{
    long wait_ns = 1000000;     /* 1 ms, then 10, then 100 */
    int retries = 0;
    void *p;

    if (size == 0) {
        free(ptr);
        return NULL;
    }
    while ((p = realloc(ptr, (size_t)size)) == NULL) {
        if (reserve != NULL) {
            free(reserve);
            reserve = NULL;
            fp_logf(alloc_log, FP_LOG_WARN, "out of memory in the event loop "
                    "(%ld bytes): released the emergency reserve", size);
            continue;
        }
        if (retries++ == RETRIES) {
            fp_logf(alloc_log, FP_LOG_ERR, "out of memory in the event loop "
                    "(%ld bytes) after %d retries; aborting", size, RETRIES);
            abort();
        }
        struct timespec ts = { 0, wait_ns };
        nanosleep(&ts, NULL);
        wait_ns *= 10;
    }
    if (reserve == NULL)
        reserve = malloc(RESERVE_BYTES);
    return p;
}

void
fp_ev_alloc_install(const struct fp_logger *log)
{
    alloc_log = log;
    reserve = malloc(RESERVE_BYTES);
    ev_set_allocator(ev_alloc);
}
