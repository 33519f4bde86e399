/*
 * control_events.c — the event stream (SPEC §7 `subscribe`): a client that
 * subscribes receives every event of the pool (fp_pool_events) as a
 * notification [2, "event", [map]]:
 *
 *   {"event": "job", "id", "kind", "stats": {wait_ms, run_ms, cpu_ms,
 *                                            maxrss_kb, attempts}}
 *   {"event": "worker", "pid", "what", "detail"?}
 *   {"event": "pool", "what", "workers"}
 *
 * The daemon listens to the pool only while someone subscribes: with no
 * subscriber the engine records nothing.  Each event is packed once, into
 * a batch; flush_delay() after the first event of a batch, or sooner when
 * it passes BATCH_FLUSH bytes, the batch goes to every subscriber as one
 * whole reply (ctl_reply_*).  A subscriber then costs one append and one
 * write per batch rather than per event, and its reader one wake-up per
 * batch.  The delay grows with the subscribers (a millisecond each, at
 * most 100 ms): that is what makes a hundred subscribers cheap at the
 * rates real jobs run.  A fixed 1 ms meant a batch, and a hundred
 * wake-ups, for nearly every job at a few hundred jobs a second, which
 * took 13-21% of the throughput of `cmd` jobs on the 2-vCPU VM.  What
 * remains at trivial-job rates is the bytes: about 125 per job event,
 * copied by the kernel into every subscriber's socket (README "Event
 * stream" has the figures).
 *
 * A subscriber that does not read is dropped, not paused: its events
 * cannot wait anywhere but in its reply queue, and holding its jobs back
 * (what the soft limit does to other clients) would not stop them.  So an
 * event that would take a subscriber's unread bytes past the soft reply
 * limit (--reply-soft-limit) disconnects it instead, with a log line; and
 * while the replies of all clients together are close to their total
 * (--reply-max-bytes), a subscriber with anything unread is dropped rather
 * than let the total hold every other client back.  Either way nobody
 * else waits for it, and the daemon's memory for it stays under the soft
 * limit.  Dropped subscribers are counted (metrics).
 */
#include "config.h"
#include <stdio.h>
#include <string.h>

#include "control_int.h"
#include "codec/wire.h"
#include "engine/timer.h"

#define BATCH_FLUSH (16 * 1024)     /* a batch this large goes out at once */
/* From a batch's first event to its flush: FLUSH_DELAY_PER_SUB per
 * subscriber, at most FLUSH_DELAY_MAX (see flush_delay). */
#define FLUSH_DELAY_PER_SUB 0.001   /* s */
#define FLUSH_DELAY_MAX     0.1     /* s */

/* Pack the receipt of an outcome: SPEC §3's "stats". */
static void
pack_stats(msgpack_packer *pk, const fp_outcome *o)
{
    msgpack_pack_map(pk, 5);
    fp_pack_cstr(pk, "wait_ms");
    msgpack_pack_double(pk, o->stats.wait_ms);
    fp_pack_cstr(pk, "run_ms");
    msgpack_pack_double(pk, o->stats.run_ms);
    fp_pack_cstr(pk, "cpu_ms");
    msgpack_pack_double(pk, o->stats.cpu_ms);
    ctl_pack_kv_u64(pk, "maxrss_kb", o->stats.maxrss_kb);
    ctl_pack_kv_u64(pk, "attempts", o->attempts);
}

/* The batch's packer sink: fails from the first append that fails. */
static int
batch_write(void *data, const char *p, size_t n)
{
    struct ctl_events *evs = data;

    if (evs->failed || fp_buf_append(&evs->batch, p, n) < 0) {
        evs->failed = 1;
        return -1;
    }
    return 0;
}

/* Append [2, "event", [map]] for ev to the batch.  Returns 0, or -1 if
 * memory ran out (the batch is as it was). */
static int
pack_event(struct fp_control *ctl, const fp_event *ev)
{
    msgpack_packer *pk = &ctl->events.pk;
    size_t mark = ctl->events.batch.len;

    ctl->events.failed = 0;
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 2);
    fp_pack_cstr(pk, "event");
    msgpack_pack_array(pk, 1);
    switch (ev->type) {
    case FP_EVENT_JOB:
        msgpack_pack_map(pk, 4);
        fp_pack_cstr(pk, "event");
        fp_pack_cstr(pk, "job");
        ctl_pack_kv_u64(pk, "id", ev->outcome->id);
        fp_pack_cstr(pk, "kind");
        fp_pack_cstr(pk, fp_kind_name(ev->outcome->kind));
        fp_pack_cstr(pk, "stats");
        pack_stats(pk, ev->outcome);
        break;
    case FP_EVENT_WORKER:
        msgpack_pack_map(pk, ev->detail != NULL ? 4 : 3);
        fp_pack_cstr(pk, "event");
        fp_pack_cstr(pk, "worker");
        ctl_pack_kv_u64(pk, "pid", (uint64_t)ev->pid);
        fp_pack_cstr(pk, "what");
        fp_pack_cstr(pk, ev->what);
        if (ev->detail != NULL) {
            fp_pack_cstr(pk, "detail");
            fp_pack_cstr(pk, ev->detail);
        }
        break;
    case FP_EVENT_POOL:
        msgpack_pack_map(pk, 3);
        fp_pack_cstr(pk, "event");
        fp_pack_cstr(pk, "pool");
        fp_pack_cstr(pk, "what");
        fp_pack_cstr(pk, ev->what);
        ctl_pack_kv_u64(pk, "workers", ev->workers);
        break;
    }
    if (ctl->events.failed) {
        ctl->events.batch.len = mark;
        return -1;
    }
    return 0;
}

/* Queue packed events to subscriber c, or drop c if it does not keep up
 * (see the top of the file).  c may be freed on return. */
static void
send_event(struct fp_control *ctl, struct client *c, const char *bytes, size_t len)
{
    size_t unread = ctl_client_unread(c);
    char why[192];
    struct ctl_reply r;

    if (unread + len > ctl->reply.soft
        || (unread > 0 && ctl->out_total + len >= ctl->reply.total)) {
        ctl->events.dropped++;
        snprintf(why, sizeof(why), "subscriber not reading its events (%zu bytes "
                 "unread; soft limit %zu, all clients %zu of %zu): dropped",
                 unread, ctl->reply.soft, ctl->out_total, ctl->reply.total);
        ctl_client_fail(c, why);
        return;
    }
    ctl_reply_begin(&r, c);
    ctl_reply_raw(&r, bytes, len);
    if (ctl_reply_end(&r) < 0)
        ctl_client_fail(c, "no memory to queue an event");
}

/* How long a batch waits for more events: a millisecond per subscriber,
 * at most FLUSH_DELAY_MAX.  Each batch costs a write and a reader's
 * wake-up per subscriber, so this holds them to about a thousand a second
 * however many subscribe, while a lone subscriber still sees each event
 * within a millisecond. */
static double
flush_delay(const struct ctl_events *evs)
{
    double d = FLUSH_DELAY_PER_SUB * (evs->n > 0 ? evs->n : 1);
    return d < FLUSH_DELAY_MAX ? d : FLUSH_DELAY_MAX;
}

/* The batch to every subscriber; then it is empty. */
static void
flush(struct fp_control *ctl)
{
    struct ctl_events *evs = &ctl->events;
    struct client *c, *next;

    ev_timer_stop(ctl->loop, &evs->flush_timer);
    if (evs->batch.len == 0)
        return;
    for (c = LIST_FIRST(&evs->subs); c != NULL; c = next) {
        next = LIST_NEXT(c, sub_link);  /* c may go; the others stay */
        send_event(ctl, c, fp_buf_head(&evs->batch), evs->batch.len);
    }
    fp_buf_clear(&evs->batch);
    fp_buf_shrink(&evs->batch, BATCH_FLUSH);
}

static void
flush_timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    (void)loop; (void)revents;
    flush(tw->data);
}

/* The pool's event listener while someone subscribes. */
static void
event_cb(const fp_event *ev, void *arg)
{
    struct fp_control *ctl = arg;

    struct ctl_events *evs = &ctl->events;

    if (pack_event(ctl, ev) < 0) {
        fp_logf(ctl->log, FP_LOG_WARN, "no memory to pack an event: it is lost "
                "to subscribers");
        return;
    }
    if (evs->batch.len >= BATCH_FLUSH)
        flush(ctl);
    else if (!ev_is_active(&evs->flush_timer))
        fp_timer_after(ctl->loop, &evs->flush_timer, flush_delay(evs));
}

/* Listen to the pool (on) or stop (off), with the flush watcher. */
static void
listen_to_pool(struct fp_control *ctl, int on)
{
    struct ctl_events *evs = &ctl->events;

    if (on) {
        fp_pool_events(ctl->pool, event_cb, ctl);
    } else {
        fp_pool_events(ctl->pool, NULL, NULL);
        ev_timer_stop(ctl->loop, &evs->flush_timer);
        fp_buf_free(&evs->batch);
    }
}

void
ctl_events_init(struct fp_control *ctl)
{
    struct ctl_events *evs = &ctl->events;

    LIST_INIT(&evs->subs);
    msgpack_packer_init(&evs->pk, evs, batch_write);
    ev_timer_init(&evs->flush_timer, flush_timer_cb, 0., 0.);
    evs->flush_timer.data = ctl;
}

void
ctl_events_forget(struct client *c)
{
    struct fp_control *ctl = c->ctl;

    if (!c->subscribed)
        return;
    c->subscribed = 0;
    LIST_REMOVE(c, sub_link);
    /* The last one gone: the pool records no more events.  (Once the
     * daemon shuts down, the listener is off already and the pool may be
     * freed.) */
    if (--ctl->events.n == 0 && !ctl->shutting_down)
        listen_to_pool(ctl, 0);
}

void
ctl_events_shutdown(struct fp_control *ctl)
{
    if (ctl->events.n > 0) {
        flush(ctl);             /* the last events before the end */
        listen_to_pool(ctl, 0);
    }
}

void
ctl_events_free(struct fp_control *ctl)
{
    ev_timer_stop(ctl->loop, &ctl->events.flush_timer);
    fp_buf_free(&ctl->events.batch);
}

/* subscribe []: true; from now on c receives every event. */
void
ctl_method_subscribe(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    struct fp_control *ctl = c->ctl;
    struct ctl_reply r;
    (void)p;

    if (ctl->shutting_down) {
        ctl_respond_error_str(c, msgid, "the daemon is shutting down");
        return;
    }
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_true(&r.pk);
    if (ctl_reply_end(&r) < 0) {
        ctl_respond_error_str(c, msgid, "out of memory: the reply could not be "
                              "queued");
        return;
    }
    if (c->fd < 0 || c->subscribed)
        return;                 /* gone meanwhile, or already subscribed */
    flush(ctl);                 /* what came before is not for it */
    c->subscribed = 1;
    LIST_INSERT_HEAD(&ctl->events.subs, c, sub_link);
    fp_logf(ctl->log, FP_LOG_DEBUG, "client %lu: subscribed to the event stream",
            c->serial);
    if (ctl->events.n++ == 0)
        listen_to_pool(ctl, 1);
}
