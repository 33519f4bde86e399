/*
 * worker.c — the job loop inside a module worker process.
 *
 * Blocking and single-threaded in its jobs: the master does all the
 * concurrency.  Reads are batched: one read takes every job the master has
 * queued here.  Writes are batched too: while more jobs wait, results are
 * held and go out together (worker_hold.c says how none is ever lost).
 */
#include "config.h"
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "descendants.h"
#include "meter.h"
#include "sandbox.h"
#include "spawn.h"
#include "worker_loop.h"
#include "worker_hold.h"
#include "worker_progress.h"

#define READ_CHUNK   (64 * 1024)
#define KEEP_BUFFER  (4u << 20)     /* kept between big jobs and results */

struct worker {
    int                          fd;
    const struct fp_worker_args *args;
    const fp_module             *module;
    void                        *state;
    struct fp_buf                in;
    struct fp_buf                out;
    msgpack_packer               out_pk;
    msgpack_zone                 zone;      /* the running job's decoded
                                               arrays and maps */
    msgpack_sbuffer              result;    /* the handler's packed object */
    msgpack_packer               result_pk;
    int                          retire_sent;
    struct fp_hold               hold;      /* results waiting to be sent */
    struct fp_worker_progress    progress;  /* fp_progress of the running job */
    uint64_t                    *claims;    /* shared with the master, or NULL */
    uint64_t                     seq;       /* jobs read so far */
    struct fp_descendants        desc;      /* what jobs start dies with them */
    struct fp_meter              meter;     /* what each job costs (meter.h) */
};

static void
wlog(const char *fmt, const char *arg)
{
    /* The master prefixes each line with our pid. */
    fputs("forkpool worker: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
}

/* Pass what the last job produced (its result, maybe a "retire") to the
 * held-results area: held if `may_wait`, else written with everything
 * held before it.  Returns 0 or -1 (the master is gone). */
static int
send_out(struct worker *w, int may_wait)
{
    enum fp_flusher_state was = w->hold.flusher_state;
    int rc = fp_hold_send(&w->hold, fp_buf_head(&w->out), w->out.len, may_wait);

    if (w->hold.flusher_state == FLUSHER_FAILED && was != FLUSHER_FAILED)
        wlog("%s", "cannot start the thread that holds results (writing each at once)");

    fp_buf_clear(&w->out);
    fp_buf_shrink(&w->out, KEEP_BUFFER);
    return rc;
}

/* Write everything now; returns 0 or -1 (the master is gone). */
static int
flush_out(struct worker *w)
{
    if (send_out(w, 0) < 0)
        return -1;
    return fp_hold_flush(&w->hold);
}

static void
set_title(struct worker *w, const char *state, uint64_t job)
{
    char title[96], num[16] = "";

    if (w->args->title == NULL)
        return;
    if (w->args->slot != FP_WORKER_UNNUMBERED)
        snprintf(num, sizeof(num), " %u", w->args->slot);
    if (job != 0)
        snprintf(title, sizeof(title), "forkpool: worker%s %s job %llu", num,
                 state, (unsigned long long)job);
    else
        snprintf(title, sizeof(title), "forkpool: worker%s %s", num, state);
    w->args->title(title, w->args->title_arg);
}

/* How long the job being run has run (ns), for the sweep of what it
 * started: the meter times every job with the tick counter when receipts
 * are on; without them, the clock read at `started_ns`. */
static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
job_elapsed_ns(const struct worker *w, uint64_t started_ns)
{
    if (w->args->receipts)
        return fp_meter_elapsed_ns(&w->meter);
    return mono_ns() - started_ns;
}

/* The internal receipt, the fourth element of a result from a module
 * worker of ours (wire.h): [run_us, cpu_us, maxrss_kb, total_cpu_us,
 * rss_kb], or run_us alone for a job that took no sample. */
static void
pack_cost(struct worker *w, const struct fp_job_cost *cost)
{
    if (!cost->measured) {
        msgpack_pack_uint64(&w->out_pk, cost->run_us);
        return;
    }
    msgpack_pack_array(&w->out_pk, 5);
    msgpack_pack_uint64(&w->out_pk, cost->run_us);
    msgpack_pack_uint64(&w->out_pk, cost->cpu_us);
    msgpack_pack_uint64(&w->out_pk, cost->maxrss_kb);
    msgpack_pack_uint64(&w->out_pk, cost->total_cpu_us);
    msgpack_pack_uint64(&w->out_pk, cost->rss_kb);
}

/* Run one job and queue its ["ok"|"error", id, value] message, with what
 * it cost when the master asked for receipts. */
static void
run_job(struct worker *w, uint64_t id, const char *payload, size_t len)
{
    msgpack_object job;
    size_t off = 0;
    int rc;
    const char *kind;
    const char *why = NULL;
    struct fp_job_cost cost;
    uint64_t started_ns = 0;

    if (w->args->receipts)
        fp_meter_job_start(&w->meter);
    else if (w->desc.on)
        started_ns = mono_ns();
    msgpack_sbuffer_clear(&w->result);
    /* Into the worker's one zone, emptied after each job: msgpack_unpack_next
     * would make and free a zone of its own for every job, a malloc and a
     * free that cost a tenth of a trivial job. */
    if (msgpack_unpack(payload, len, &off, &w->zone, &job) != MSGPACK_UNPACK_SUCCESS) {
        rc = 1;
        why = "job could not be decoded";
    } else {
        fp_worker_progress_begin(&w->progress, id);
        rc = w->module->handle(w->state, &job, &w->result_pk);
        fp_worker_progress_end(&w->progress);
        /* The job has ended, and so has anything it started (before its
         * result goes out, so an outcome means they are gone). */
        fp_descendants_job_end(&w->desc, w->desc.on ? job_elapsed_ns(w, started_ns) : 0);
    }
    msgpack_zone_clear(&w->zone);
    if (w->args->receipts)
        fp_meter_job_end(&w->meter, &cost);

    /* The handler must have packed exactly one bounded value. */
    if (why == NULL) {
        struct fp_scanner sc;
        const char *scan_why = NULL;
        fp_scanner_reset(&sc);
        ssize_t n = fp_scan(&sc, w->result.data, w->result.size,
                            &w->args->limits, &scan_why);
        if (w->result.size == 0)
            why = "handler packed no value";
        else if (n < 0)
            why = strcmp(scan_why, "frame too large") == 0 ? "result too large"
                : strcmp(scan_why, "too many objects") == 0 ? "result has too many objects"
                : strcmp(scan_why, "nesting too deep") == 0 ? "result nested too deep"
                : "result is not valid msgpack";
        else if (n == 0 || (size_t)n != w->result.size)
            why = "handler packed more or less than one value";
        if (why != NULL)
            rc = 1;
    }

    kind = rc == 0 ? "ok" : "error";
    msgpack_pack_array(&w->out_pk, w->args->receipts ? 4 : 3);
    fp_pack_cstr(&w->out_pk, kind);
    msgpack_pack_uint64(&w->out_pk, id);
    if (why != NULL)
        fp_pack_cstr(&w->out_pk, why);
    else
        fp_buf_append(&w->out, w->result.data, w->result.size);
    if (w->args->receipts)
        pack_cost(w, &cost);
    if (w->result.alloc > KEEP_BUFFER) {
        msgpack_sbuffer_destroy(&w->result);
        msgpack_sbuffer_init(&w->result);
    }
}

/* Handle one complete frame from the master; returns 0 or -1 (bad frame). */
static int
handle_frame(struct worker *w, const char *frame, size_t len)
{
    struct fp_reader r;
    uint32_t n;
    uint64_t id;
    const char *payload;
    size_t plen;

    fp_reader_init(&r, frame, len);
    if (fp_read_array(&r, &n) < 0 || n != 3 || !fp_read_str_eq(&r, "job")
        || fp_read_uint(&r, &id) < 0
        || fp_read_skip(&r, &payload, &plen) < 0) {
        wlog("%s", "unexpected message from the master");
        return -1;
    }
    /* A job sent ahead may have been taken back for another worker. */
    if (w->claims != NULL && !fp_claim_start(w->claims, w->seq++))
        return 0;
    if (w->args->sandbox != NULL && fp_sandbox_job_cpu(w->args->sandbox)
        && !w->retire_sent) {
        /* ["retire", {}]: replace me after this job (README, worker
         * protocol): my CPU time is halfway to the --rlimit-cpu backstop. */
        msgpack_pack_array(&w->out_pk, 2);
        fp_pack_cstr(&w->out_pk, "retire");
        msgpack_pack_map(&w->out_pk, 0);
        w->retire_sent = 1;
    }
    set_title(w, "busy", id);
    run_job(w, id, payload, plen);
    return 0;
}

static void
send_ready(struct worker *w)
{
    msgpack_pack_array(&w->out_pk, 2);
    fp_pack_cstr(&w->out_pk, "ready");
    msgpack_pack_map(&w->out_pk, 2);
    fp_pack_cstr(&w->out_pk, "pid");
    msgpack_pack_int64(&w->out_pk, getpid());
    fp_pack_cstr(&w->out_pk, "proto");
    msgpack_pack_int(&w->out_pk, 1);
}

/* Serve frames until EOF.  Returns 0 on EOF, -1 on a broken stream. */
static int
serve(struct worker *w)
{
    struct fp_scanner sc;
    const char *why;

    fp_scanner_reset(&sc);
    for (;;) {
        /* Run every complete frame already buffered. */
        for (;;) {
            ssize_t n = fp_scan(&sc, fp_buf_head(&w->in), w->in.len,
                                &w->args->limits, &why);
            if (n < 0) {
                wlog("bad frame from the master: %s", why);
                return -1;
            }
            if (n == 0)
                break;
            if (handle_frame(w, fp_buf_head(&w->in), (size_t)n) < 0)
                return -1;
            fp_buf_consume(&w->in, (size_t)n);
            fp_scanner_reset(&sc);
            /* Hold the result only if another job is already here (the
             * burst's end, below, writes everything). */
            if (w->in.len > 0 && send_out(w, 1) < 0)
                return -1;
        }
        set_title(w, "idle", 0);
        fp_descendants_idle(&w->desc);
        fp_meter_idle(&w->meter);
        if (flush_out(w) < 0)     /* held results, or "ready" the first time */
            return -1;
        fp_buf_shrink(&w->in, KEEP_BUFFER);
        char *room = fp_buf_reserve(&w->in, READ_CHUNK);
        if (room == NULL)
            return -1;
        /* Wait in poll, not in read: a reader asleep on a unix socket is
         * woken (for nothing) each time the master reads what we wrote,
         * since the space that frees is announced on the same wait queue;
         * poll wakes only for data.  A wake-up costs more than the call. */
        struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
        if (poll(&pfd, 1, -1) < 0 && errno == EINTR)
            continue;
        ssize_t got = read(w->fd, room, w->in.cap - w->in.off - w->in.len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            return w->in.len == 0 ? 0 : -1;
        w->in.len += (size_t)got;
    }
}

int
fp_worker_prepare(void *arg, int *keep_fd)
{
    struct fp_worker_args *args = arg;  /* this process's own copy */
    char err[512];
    void *handle;   /* kept for the life of the process */

    if (args->receipts && (*keep_fd = fp_meter_open_peak()) >= 0)
        args->peak_kept = 1;
    if (args->module != NULL)
        return 0;
    args->module = fp_module_load(args->module_path, &handle, err, sizeof(err));
    if (args->module == NULL) {
        wlog("%s", err);
        return 3;
    }
    return 0;
}

int
fp_worker_main(int fd, void *arg)
{
    const struct fp_worker_args *args = arg;
    struct worker w;
    msgpack_unpacked config;
    int rc = 0, have_zone;

    memset(&w, 0, sizeof(w));
    w.fd = fd;
    w.args = args;
    /* The fd our prepare kept, or one we may still open ourselves. */
    fp_meter_init(&w.meter, !args->receipts ? -1
                            : args->peak_kept ? FP_WORKER_KEEP_FD : fp_meter_open_peak());
    msgpack_packer_init(&w.out_pk, &w.out, fp_buf_pack_write);
    msgpack_sbuffer_init(&w.result);
    msgpack_packer_init(&w.result_pk, &w.result, msgpack_sbuffer_write);
    msgpack_unpacked_init(&config);
    have_zone = msgpack_zone_init(&w.zone, MSGPACK_ZONE_CHUNK_SIZE);
    if (!have_zone) {
        wlog("%s", "out of memory");
        rc = 3;
        goto out;
    }

    w.module = args->module;
    if (w.module == NULL) {
        char err[512];
        void *handle;   /* kept for the life of the process */
        w.module = fp_module_load(args->module_path, &handle, err, sizeof(err));
        if (w.module == NULL) {
            wlog("%s", err);
            rc = 3;
            goto out;
        }
    }
    /* Before init, so that what init starts stays below us too. */
    (void)fp_descendants_start(&w.desc);
    if (w.module->init != NULL) {
        const msgpack_object *cfg = NULL;
        size_t off = 0;
        if (args->config != NULL
            && msgpack_unpack_next(&config, args->config, args->config_len, &off)
               == MSGPACK_UNPACK_SUCCESS)
            cfg = &config.data;
        if (w.module->init(&w.state, cfg) != 0) {
            wlog("module %s: init failed", w.module->name ? w.module->name : "?");
            rc = 3;
            goto out;
        }
    }

    /* What init started (a helper for every job) lives as long as we do. */
    fp_descendants_spare_current(&w.desc);
    /* Under strict, seccomp allows none of the sweeps, and no handler can
     * fork; the master kills our process group when we are gone. */
    if (args->sandbox != NULL && args->sandbox->level == FP_SANDBOX_STRICT)
        w.desc.on = 0;
    if (args->sandbox != NULL) {
        const char *why;
        if (fp_sandbox_lock(args->sandbox, fd, w.meter.peak_fd, &why) < 0) {
            wlog("sandbox: %s", why);
            rc = 3;
            goto out;
        }
    }
    /* Under strict nothing is held (the flusher would be a second thread
     * for the filter to cover): results are written at once, and the
     * master finds the shared area empty. */
    if (args->sandbox != NULL && args->sandbox->level == FP_SANDBOX_STRICT)
        fp_hold_start(&w.hold, NULL, fd, 1);
    else
        fp_hold_start(&w.hold, args->hold_area, fd, args->hold_results);
    w.claims = args->hold_area != NULL ? args->hold_area->claims : NULL;
    fp_worker_progress_init(&w.progress, &w.hold, &args->limits);
    set_title(&w, "idle", 0);
    send_ready(&w);
    if (serve(&w) < 0)
        rc = 2;
    else if (w.module->fini != NULL)
        w.module->fini(w.state);
    fp_worker_progress_fini(&w.progress);
out:
    fp_descendants_stop(&w.desc);
    fp_meter_close(&w.meter);
    fp_hold_stop(&w.hold);
    msgpack_unpacked_destroy(&config);
    if (have_zone)
        msgpack_zone_destroy(&w.zone);
    msgpack_sbuffer_destroy(&w.result);
    fp_buf_free(&w.out);
    fp_buf_free(&w.in);
    return rc;
}
