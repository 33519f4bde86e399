/*
 * control_progress.c — a job's progress reports as notifications to the
 * client that submitted it with "progress": true (SPEC §7):
 * [2, "progress", [msgid, id, value]], each before the job's outcome.
 *
 * They are replies like any other: built whole in the client's write queue
 * and counted against its reply memory (a client that does not read them
 * falls behind, then is cut off at its hard limit).  Unlike an outcome,
 * nothing waits for one: a report that cannot be queued for want of memory
 * is dropped (and logged), and one for a client that has gone costs
 * nothing.  Jobs submitted without "progress" have no callback at all: the
 * pool drops their reports.
 */
#include "config.h"

#include "control_int.h"

static void
notify_progress(struct client *c, uint32_t msgid, uint64_t id,
                const char *value, size_t len)
{
    struct ctl_reply r;

    if (c->fd < 0)
        return;         /* disconnected: the job finishes unseen */
    ctl_reply_begin(&r, c);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_int(&r.pk, 2);
    fp_pack_cstr(&r.pk, "progress");
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_uint32(&r.pk, msgid);
    msgpack_pack_uint64(&r.pk, id);
    ctl_reply_raw(&r, value, len);
    /* The client lives on: its job has no outcome yet. */
    if (ctl_reply_end(&r) < 0)
        fp_logf(c->ctl->log, FP_LOG_WARN, "client %lu: no memory to queue a "
                "progress report of job %llu (%zu bytes); dropped", c->serial,
                (unsigned long long)id, len);
}

void
ctl_submit_progress_cb(uint64_t id, const char *value, size_t len, void *arg)
{
    const struct reply_to *rt = arg;

    notify_progress(rt->c, rt->msgid, id, value, len);
}

void
ctl_batch_progress_cb(uint64_t id, const char *value, size_t len, void *arg)
{
    const struct batch_reply *b = arg;

    notify_progress(b->c, b->msgid, id, value, len);
}
