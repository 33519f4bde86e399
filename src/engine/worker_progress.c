/* worker_progress.c — fp_progress in a module worker (worker_progress.h). */
#include "config.h"
#include <errno.h>
#include <string.h>

#include "forkpool.h"
#include "worker_progress.h"

#define KEEP_MSG (64 * 1024)    /* scratch kept between progress reports */

/* The worker this process runs, if any.  fp_progress takes no context (a
 * module's handler calls it like a libc function), so the worker loop
 * names itself here once; an embedding program's master, which runs no
 * handler, leaves it NULL. */
static struct fp_worker_progress *current;

void
fp_worker_progress_init(struct fp_worker_progress *wp, struct fp_hold *hold,
                        const struct fp_limits *limits)
{
    memset(wp, 0, sizeof(*wp));
    wp->hold = hold;
    wp->limits = limits;
    pthread_mutex_init(&wp->lock, NULL);
    current = wp;
}

void
fp_worker_progress_begin(struct fp_worker_progress *wp, uint64_t id)
{
    wp->job = id;
    /* Release is enough here (a plain store on x86, where SEQ_CST is a
     * locked exchange): a report racing with the start may see either
     * state, and one that sees the job running sees its id too.  Only the
     * end must be ordered against a report's `busy` (fp_progress). */
    __atomic_store_n(&wp->running, 1, __ATOMIC_RELEASE);
}

void
fp_worker_progress_end(struct fp_worker_progress *wp)
{
    __atomic_store_n(&wp->running, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&wp->busy, __ATOMIC_SEQ_CST)) {
        /* A thread of the handler is sending a report: let it finish, so
         * that it goes out before the result. */
        pthread_mutex_lock(&wp->lock);
        pthread_mutex_unlock(&wp->lock);
    }
}

void
fp_worker_progress_fini(struct fp_worker_progress *wp)
{
    if (current == wp)
        current = NULL;
    fp_buf_free(&wp->msg);
    pthread_mutex_destroy(&wp->lock);
}

/* Pack ["progress", id, value] into wp->msg and check it as the master
 * will: exactly one value, within the frame limits.  Returns 0, or an
 * errno value. */
static int
build(struct fp_worker_progress *wp, const char *data, size_t len)
{
    msgpack_packer pk;
    struct fp_scanner sc;
    const char *why = NULL;

    fp_buf_clear(&wp->msg);
    msgpack_packer_init(&pk, &wp->msg, fp_buf_pack_write);
    if (msgpack_pack_array(&pk, 3) != 0
        || msgpack_pack_str_with_body(&pk, "progress", 8) != 0
        || msgpack_pack_uint64(&pk, wp->job) != 0
        || fp_buf_append(&wp->msg, data, len) < 0)
        return ENOMEM;
    fp_scanner_reset(&sc);
    ssize_t n = fp_scan(&sc, fp_buf_head(&wp->msg), wp->msg.len, wp->limits, &why);
    if (n < 0 && (strcmp(why, "frame too large") == 0
                  || strcmp(why, "too many objects") == 0
                  || strcmp(why, "nesting too deep") == 0))
        return EMSGSIZE;
    if (n <= 0 || (size_t)n != wp->msg.len)
        return EINVAL;      /* not msgpack, cut short, or more than one value */
    return 0;
}

int
fp_progress(const char *data, size_t len)
{
    struct fp_worker_progress *wp = current;
    int err = 0;

    if (wp == NULL) {
        errno = ESRCH;
        return -1;
    }
    pthread_mutex_lock(&wp->lock);
    __atomic_store_n(&wp->busy, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&wp->running, __ATOMIC_SEQ_CST))
        err = ESRCH;
    else if (data == NULL && len > 0)
        err = EINVAL;
    else if ((err = build(wp, data, len)) == 0
             && fp_hold_send(wp->hold, fp_buf_head(&wp->msg), wp->msg.len, 0) < 0)
        err = EPIPE;
    fp_buf_clear(&wp->msg);
    fp_buf_shrink(&wp->msg, KEEP_MSG);
    __atomic_store_n(&wp->busy, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&wp->lock);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}
