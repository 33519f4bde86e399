/*
 * fuzz_request.c — libFuzzer target: the bytes an untrusted control client
 * writes to forkpoold's control socket.
 *
 * The input is FZ_CTL control bytes and then the client's byte stream
 * (layout in fuzz_stream.h).  The stream is cut into frames with fp_scan()
 * under the control server's limits (control.c: depth FP_MAX_DEPTH + 2;
 * sizes scaled down to 1 MiB / 100000 objects) or tight ones, with the
 * scanner checks of fuzz_stream.c.  Each frame goes to fp_wire_request()
 * and then through what control.c's handlers read: for "submit" the job
 * (fp_read_skip, then the pool's own fp_scan of it) and the options map
 * (fp_wire_job_opts); for "cancel" and "scale" an uint.  The bytes of a
 * refused or incomplete frame go to fp_wire_request_msgid(), as control.c's
 * client_refuse_frame() does; a frame refused for its size is then stepped
 * over with fp_skip() and the stream goes on, as it does there.
 *
 * Asserts, besides "no sanitizer report": every refusal has a reason;
 * fp_wire_request_msgid finds a msgid exactly when fp_wire_request does,
 * the same one, and once it finds one in a prefix of a frame more bytes do
 * not change it; an accepted request's method and params lie inside the
 * frame, and its nparams values step exactly to the frame's end; the
 * pool's scan of a submitted job finds the same length fp_read_skip did,
 * or refuses it with a reason; accepted options are in range (timeout
 * finite, 0..1e9 or left at the default -1; retries <= FP_MAX_RETRIES;
 * notify 0 or 1).
 */
#include "config.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"
#include "fuzz_stream.h"
#include "codec/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct fp_limits control_limits = {
    .max_bytes = 1u << 20,
    .max_objects = 100000,
    .max_depth = FP_MAX_DEPTH + 2,
};

/* What fp_pool_submit holds a job to (pool.c), scaled like the above. */
static const struct fp_limits job_limits = {
    .max_bytes = 1u << 20,
    .max_objects = 100000,
    .max_depth = FP_MAX_DEPTH,
};

static void
submit(const char *frame, size_t len, struct fp_reader r, uint32_t nparams)
{
    const char *job, *why;
    size_t joblen;

    if (nparams < 1 || nparams > 2)
        return;
    FZ_CHECK(fp_read_skip(&r, &job, &joblen) == 0);
    FZ_CHECK(job > frame && (size_t)(job - frame) + joblen <= len);

    struct fp_scanner s;
    fp_scanner_reset(&s);
    why = NULL;
    ssize_t n = fp_scan(&s, job, joblen, &job_limits, &why);
    FZ_CHECK(n == (ssize_t)joblen || (n == -1 && why != NULL));

    if (nparams == 2) {
        fp_job_opts opts = { .timeout = -1, .retries = 0 };
        char key[FP_MAX_KEY_BYTES + 1];
        struct fp_wire_submit_flags flags = { 0, 0 };
        if (fp_wire_job_opts(&r, &opts, &flags, key) == NULL) {
            FZ_CHECK(opts.timeout == -1
                     || (isfinite(opts.timeout) && opts.timeout >= 0
                         && opts.timeout <= 1e9));
            FZ_CHECK(opts.retries <= FP_MAX_RETRIES);
            FZ_CHECK(flags.notify == 0 || flags.notify == 1);
            FZ_CHECK(flags.progress == 0 || flags.progress == 1);
            FZ_CHECK(opts.key == NULL
                     || (opts.key == key && strlen(key) <= FP_MAX_KEY_BYTES));
        }
    }
}

static void
request_frame(const char *frame, size_t len)
{
    struct fp_request rq;
    const char *why = NULL;
    int rc = fp_wire_request(frame, len, &rq, &why);
    uint32_t msgid;
    int idrc = fp_wire_request_msgid(frame, len, &msgid);

    FZ_CHECK(rc >= -1 && rc <= 1);
    FZ_CHECK(idrc == (rc < 0 ? -1 : 0));
    if (idrc == 0)
        FZ_CHECK(msgid == rq.msgid);
    if (rc != 0) {
        FZ_CHECK(why != NULL);
        return;
    }
    FZ_CHECK(rq.method > frame && rq.method_len <= len
             && (size_t)(rq.method - frame) <= len - rq.method_len);
    FZ_CHECK(rq.params.p > frame && rq.params.p <= frame + len
             && rq.params.end == frame + len);

    struct fp_reader r = rq.params;
    for (uint32_t i = 0; i < rq.nparams; i++)
        FZ_CHECK(fp_read_skip(&r, NULL, NULL) == 0);
    FZ_CHECK(r.p == r.end);

    uint64_t u;
    if (fp_wire_method_is(&rq, "submit")) {
        submit(frame, len, rq.params, rq.nparams);
    } else if (fp_wire_method_is(&rq, "cancel")
               || fp_wire_method_is(&rq, "scale")) {
        r = rq.params;
        if (rq.nparams == 1 && fp_read_uint(&r, &u) == 0)
            FZ_CHECK(r.p == r.end);
    }
}

/* A refused or incomplete frame: the msgid the server answers with, read
 * from its first bytes, stays the same as more bytes arrive. */
static void
request_tail(const char *buf, size_t len)
{
    uint32_t head_id, msgid;
    int head_rc = fp_wire_request_msgid(buf, len / 2, &head_id);
    int rc = fp_wire_request_msgid(buf, len, &msgid);

    FZ_CHECK(head_rc == 0 || head_rc == -1);
    FZ_CHECK(rc == 0 || rc == -1);
    if (head_rc == 0)
        FZ_CHECK(rc == 0 && msgid == head_id);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_stream(data, size, &control_limits, request_frame, request_tail, 1);
    return 0;
}
