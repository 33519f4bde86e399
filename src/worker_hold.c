/* worker_hold.c — held results (see worker_hold.h). */
#include "config.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker_hold.h"

#define HOLD_RESULTS 64                 /* results held at most */
#define HOLD_BYTES   (64 * 1024)
#define HOLD_NS      1000000ull         /* 1 ms: the longest a result waits */
#define ALTSTACK     (64 * 1024)        /* for the crash handler on overflow */
#define FLUSHER_STACK (64 * 1024)

enum { OWN_NONE = 0, OWN_MAIN, OWN_FLUSHER, OWN_HANDLER };

/* The one worker of this process, for the crash handler. */
static struct fp_hold *volatile crash_hold;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
take(struct fp_hold *h, int who)
{
    int expect = OWN_NONE;
    return __atomic_compare_exchange_n(&h->owner, &expect, who, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void
give_back(struct fp_hold *h)
{
    __atomic_store_n(&h->owner, OWN_NONE, __ATOMIC_RELEASE);
}

/* Write out[] whole, as the current owner.  Async-signal-safe.  Returns 0
 * or -1. */
static int
write_held(struct fp_hold *h)
{
    int rc = 0;

    while (h->out->len > 0) {
        ssize_t n = write(h->fd, fp_buf_head(h->out), h->out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = -1;
            break;
        }
        h->out->off += (size_t)n;
        h->out->len -= (size_t)n;
    }
    h->out->off = 0;
    h->out->len = 0;
    h->held = 0;
    __atomic_store_n(&h->held_since, 0, __ATOMIC_RELEASE);
    return rc;
}

/* ------------------------------------------------------------------------
 * The crash handler
 * ------------------------------------------------------------------------ */

static void
crash_handler(int sig)
{
    struct fp_hold *h = crash_hold;
    int saved = errno;

    /* A child the job forked inherits this handler and a copy of the held
     * results: they are not its to send. */
    if (h != NULL && getpid() == h->pid) {
        if (__atomic_load_n(&h->owner, __ATOMIC_ACQUIRE) == OWN_MAIN) {
            /* The main loop is changing the buffer.  A fault in that very
             * code comes back once we return (and kills: the action is the
             * default again); a signal sent from outside (SIGXCPU, kill)
             * is taken up when the main loop gives the buffer back. */
            __atomic_store_n(&h->pending_signal, sig, __ATOMIC_RELEASE);
            errno = saved;
            return;
        }
        /* The flusher may be writing: let it finish, then write the rest. */
        while (!take(h, OWN_HANDLER))
            sched_yield();
        write_held(h);
        give_back(h);
    }
    errno = saved;
    /* SA_RESETHAND made the action the default again: die of `sig`. */
    raise(sig);
}

/* ------------------------------------------------------------------------
 * The flusher thread
 * ------------------------------------------------------------------------ */

static void *
flusher_main(void *arg)
{
    struct fp_hold *h = arg;
    sigset_t all;

    /* Signals are the main thread's business (crashes, the master's). */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        uint64_t since = __atomic_load_n(&h->held_since, __ATOMIC_ACQUIRE);
        if (since == 0) {
            /* Nothing held: sleep until the main loop holds something. */
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
         * long: write them now.  (If the main loop has the buffer, it is
         * about to write or add to it; look again later.) */
        since = __atomic_load_n(&h->held_since, __ATOMIC_ACQUIRE);
        if (since != 0 && now_ns() - since >= HOLD_NS && take(h, OWN_FLUSHER)) {
            write_held(h);
            give_back(h);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * The main loop's side
 * ------------------------------------------------------------------------ */

int
fp_hold_start(struct fp_hold *h, struct fp_buf *out, int fd)
{
    static const int crashes[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGXCPU };
    struct sigaction sa;
    pthread_attr_t attr;
    stack_t st;

    memset(h, 0, sizeof(*h));
    h->out = out;
    h->fd = fd;
    h->pid = getpid();
    /* A module whose init catches these signals itself (a JIT, a GC, a
     * sigsetjmp recovery) keeps them: then nothing is held. */
    for (size_t i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++) {
        struct sigaction old;
        if (sigaction(crashes[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL)
            return 1;
    }
    st.ss_sp = malloc(ALTSTACK);    /* kept for the life of the process */
    st.ss_size = ALTSTACK;
    st.ss_flags = 0;
    if (st.ss_sp == NULL || sigaltstack(&st, NULL) != 0) {
        free(st.ss_sp);
        return -1;
    }
    pthread_mutex_init(&h->idle_lock, NULL);
    pthread_cond_init(&h->idle_cond, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FLUSHER_STACK);
    int rc = pthread_create(&h->flusher, &attr, flusher_main, h);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -1;
    crash_hold = h;
    memset(&sa, 0, sizeof(sa));
    sigfillset(&sa.sa_mask);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER | SA_ONSTACK;
    for (size_t i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++)
        if (sigaction(crashes[i], &sa, NULL) != 0)
            return 0;   /* the flusher runs: holding on, a crash may lose */
    h->enabled = 1;
    return 0;
}

void
fp_hold_lock(struct fp_hold *h)
{
    if (!h->enabled)
        return;
    while (!take(h, OWN_MAIN))
        sched_yield();          /* the flusher is writing: a moment */
}

void
fp_hold_unlock(struct fp_hold *h)
{
    if (!h->enabled)
        return;
    int sig = __atomic_load_n(&h->pending_signal, __ATOMIC_ACQUIRE);
    if (sig != 0) {
        /* A crash signal came while we held the buffer: write what is
         * held, then die of it as the handler would have. */
        write_held(h);
        raise(sig);
    }
    give_back(h);
}

void
fp_hold_stop(struct fp_hold *h)
{
    if (!h->enabled)
        return;
    /* Keep the buffer for good: the flusher never touches it again, and
     * the crash handler leaves it alone. */
    fp_hold_lock(h);
    crash_hold = NULL;
}

int
fp_hold_result_added(struct fp_hold *h)
{
    if (!h->enabled)
        return 0;
    fp_hold_lock(h);
    h->held++;
    int keep = h->held < HOLD_RESULTS && h->out->len < HOLD_BYTES;
    if (keep && __atomic_load_n(&h->held_since, __ATOMIC_ACQUIRE) == 0) {
        __atomic_store_n(&h->held_since, now_ns(), __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->flusher_idle, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&h->idle_lock);
            pthread_cond_signal(&h->idle_cond);
            pthread_mutex_unlock(&h->idle_lock);
        }
    }
    fp_hold_unlock(h);
    return keep;
}

int
fp_hold_flush(struct fp_hold *h)
{
    int rc;

    fp_hold_lock(h);
    rc = write_held(h);
    fp_buf_shrink(h->out, 4u << 20);     /* kept between big results */
    fp_hold_unlock(h);
    return rc;
}
