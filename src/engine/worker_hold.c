/* worker_hold.c — held results (see worker_hold.h). */
#include "config.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "worker_hold.h"

#define HOLD_NS       ((uint64_t)(FP_HOLD_MAX_WAIT * 1e9))  /* the longest a
                                                          result waits */
#define FLUSHER_STACK (64 * 1024)
/* How long the flusher keeps looking every HOLD_NS after the last result
 * it saw held, before it waits to be woken. */
#define LINGER_NS     ((uint64_t)50 * 1000000)

enum { OWN_NONE = 0, OWN_MAIN, OWN_FLUSHER };

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The flusher runs: results may wait in the area. */
static int
holding(const struct fp_hold *h)
{
    return h->flusher_state == FLUSHER_RUNS;
}

static int
take(struct fp_hold *h, int who)
{
    int expect = OWN_NONE;
    return __atomic_compare_exchange_n(&h->owner, &expect, who, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void
lock_area(struct fp_hold *h)
{
    if (!holding(h))
        return;
    while (!take(h, OWN_MAIN))
        sched_yield();          /* the flusher is writing: a moment */
}

static void
unlock_area(struct fp_hold *h)
{
    if (holding(h))
        __atomic_store_n(&h->owner, OWN_NONE, __ATOMIC_RELEASE);
}

/* Write p[0..n) whole.  Returns 0 or -1. */
static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t put = write(fd, p, n);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return -1;
        p += put;
        n -= (size_t)put;
    }
    return 0;
}

/* Write what the area holds, as its owner; see the ordering rule in
 * worker_hold.h.  Returns 0 or -1. */
static int
write_held(struct fp_hold *h)
{
    struct fp_hold_area *a = h->area;
    uint32_t len = a->len;

    if (len > 0 && write_all(h->fd, a->data, len) < 0)
        return -1;
    __atomic_store_n(&a->len, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&a->base, a->base + len, __ATOMIC_RELEASE);
    h->held = 0;
    __atomic_store_n(&h->held_since, 0, __ATOMIC_RELEASE);
    return 0;
}

/* ------------------------------------------------------------------------
 * The flusher thread
 * ------------------------------------------------------------------------ */

static void *
flusher_main(void *arg)
{
    struct fp_hold *h = arg;
    sigset_t all;

    /* Signals are the main thread's business. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        uint64_t since = __atomic_load_n(&h->held_since, __ATOMIC_ACQUIRE);
        if (since == 0 && now_ns() - __atomic_load_n(&h->last_held, __ATOMIC_RELAXED)
                          < LINGER_NS) {
            /* Nothing held, but results were a moment ago: look again in
             * HOLD_NS rather than be woken.  A stream of short jobs holds
             * results hundreds of times a millisecond; waking us for each
             * would cost the main loop a futex call and a context switch
             * every burst.  Looking every HOLD_NS still sees each result
             * held at most HOLD_NS after it was, in time to write it. */
            struct timespec ts = { 0, (long)HOLD_NS };
            while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
                ;
            continue;
        }
        if (since == 0) {
            /* Nothing held for a while: sleep until the main loop holds
             * something. */
            pthread_mutex_lock(&h->idle_lock);
            __atomic_store_n(&h->flusher_idle, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&h->held_since, __ATOMIC_SEQ_CST) == 0)
                pthread_cond_wait(&h->idle_cond, &h->idle_lock);
            __atomic_store_n(&h->flusher_idle, 0, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&h->idle_lock);
            continue;
        }
        uint64_t due = since + HOLD_NS;
        struct timespec ts = { (time_t)(due / 1000000000ull), (long)(due % 1000000000ull) };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        /* Still held, and as old as that?  Then the job after them runs
         * long: write them now.  (If the main loop has the area, it is
         * about to write or add to it; look again later.) */
        since = __atomic_load_n(&h->held_since, __ATOMIC_ACQUIRE);
        if (since != 0 && now_ns() - since >= HOLD_NS && take(h, OWN_FLUSHER)) {
            write_held(h);
            __atomic_store_n(&h->owner, OWN_NONE, __ATOMIC_RELEASE);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * The main loop's side
 * ------------------------------------------------------------------------ */

int
fp_hold_start(struct fp_hold *h, struct fp_hold_area *area, int fd,
              unsigned max_held)
{
    memset(h, 0, sizeof(*h));
    h->area = area;
    h->fd = fd;
    h->max_held = max_held > 0 ? max_held : 1;
    if (area == NULL)
        return 0;
    /* Nothing a job forks shares it. */
    (void)madvise(area, FP_HOLD_AREA, MADV_DONTFORK);
    pthread_mutex_init(&h->idle_lock, NULL);
    pthread_cond_init(&h->idle_cond, NULL);
    h->flusher_state = FLUSHER_LATER;
    return 0;
}

/* The first result there is a reason to hold starts the flusher, not the
 * worker's start: a worker that never sees two jobs at once (one job at a
 * time, or a crash on its first) never has a second thread to create, nor
 * to take down when it dies -- on a VM each costs a fraction of a
 * millisecond between a crash and its replacement taking jobs.  If the
 * thread cannot start, results are written at once from then on. */
static void
start_flusher(struct fp_hold *h)
{
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FLUSHER_STACK);
    int rc = pthread_create(&h->flusher, &attr, flusher_main, h);
    pthread_attr_destroy(&attr);
    h->flusher_state = rc == 0 ? FLUSHER_RUNS : FLUSHER_FAILED;
}

int
fp_hold_send(struct fp_hold *h, const char *msg, size_t n, int may_wait)
{
    struct fp_hold_area *a = h->area;
    int rc = 0;

    if (n == 0)
        return 0;
    if (may_wait && h->flusher_state == FLUSHER_LATER)
        start_flusher(h);
    lock_area(h);
    if (holding(h) && may_wait && h->held < h->max_held
        && n <= FP_HOLD_CAP - a->len) {
        memcpy(a->data + a->len, msg, n);
        __atomic_store_n(&a->len, a->len + (uint32_t)n, __ATOMIC_RELEASE);
        h->held++;
        if (__atomic_load_n(&h->held_since, __ATOMIC_ACQUIRE) == 0) {
            uint64_t now = now_ns();
            __atomic_store_n(&h->last_held, now, __ATOMIC_RELAXED);
            __atomic_store_n(&h->held_since, now, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&h->flusher_idle, __ATOMIC_SEQ_CST)) {
                pthread_mutex_lock(&h->idle_lock);
                pthread_cond_signal(&h->idle_cond);
                pthread_mutex_unlock(&h->idle_lock);
            }
        }
    } else if (holding(h) && h->held > 0 && n <= FP_HOLD_CAP - a->len) {
        /* The end of a burst: these bytes after the held ones, and all of
         * them in one write. */
        memcpy(a->data + a->len, msg, n);
        __atomic_store_n(&a->len, a->len + (uint32_t)n, __ATOMIC_RELEASE);
        rc = write_held(h);
    } else {
        /* Everything held goes first; then these bytes, straight. */
        if (a != NULL)
            rc = write_held(h);
        if (rc == 0)
            rc = write_all(h->fd, msg, n);
        if (rc == 0 && a != NULL)
            __atomic_store_n(&a->base, a->base + n, __ATOMIC_RELEASE);
    }
    unlock_area(h);
    return rc;
}

int
fp_hold_flush(struct fp_hold *h)
{
    int rc = 0;

    if (h->area == NULL)
        return 0;
    lock_area(h);
    rc = write_held(h);
    unlock_area(h);
    return rc;
}

void
fp_hold_stop(struct fp_hold *h)
{
    /* Keep the area for good: the flusher never touches it again. */
    lock_area(h);
}
