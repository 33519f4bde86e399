/*
 * fuzz_worker_msg.c — libFuzzer target: the bytes an untrusted worker
 * process writes to the master.
 *
 * The input is FZ_CTL control bytes and then the worker's byte stream
 * (layout in fuzz_stream.h).  The stream is cut into frames with fp_scan()
 * under the master's limits (pool.c: depth FP_MAX_DEPTH + 1; sizes scaled
 * down to 1 MiB / 100000 objects) or tight ones, with the scanner checks of
 * fuzz_stream.c: split and chunked scans agree with the one-shot scan, and
 * msgpack-c agrees with the scanner and the reader.  Each frame then goes
 * to fp_wire_worker_msg() and fp_wire_worker_msg_costed(), as worker_io.c's
 * process_input() does (the latter for its own module workers).
 *
 * The input's bytes also go, whole, to fp_wire_worker_ok_quick(), which
 * must agree with fp_scan() and fp_wire_worker_msg_costed() on whatever it
 * takes.
 *
 * Asserts, besides "no sanitizer report": a refused message comes with a
 * reason; an accepted "ok"/"error" carries a value that lies inside the
 * frame and that fp_read_skip steps over exactly.  ("ready" and "retire"
 * carry nothing the master reads.)
 */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>

#include "codec/frame.h"
#include "fuzz_stream.h"
#include "codec/wire.h"
#include "../wire_quick.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct fp_limits worker_limits = {
    .max_bytes = 1u << 20,
    .max_objects = 100000,
    .max_depth = FP_MAX_DEPTH + 1,
};

/* A result's cost (forkpool's own workers): it lies inside the frame,
 * after the value, and decodes or is refused without reading past it. */
static void
check_cost(const char *frame, size_t len, const struct fp_worker_msg *m)
{
    struct fp_job_cost c;

    if (m->cost == NULL)
        return;
    FZ_CHECK(m->cost >= m->value + m->value_len && m->cost_len <= len
             && (size_t)(m->cost - frame) <= len - m->cost_len);
    (void)fp_wire_job_cost(m->cost, m->cost_len, &c);
}

static void
worker_frame(const char *frame, size_t len)
{
    struct fp_worker_msg m;
    const char *why = NULL;

    /* As from forkpool's own worker loop: a result may carry its cost. */
    if (fp_wire_worker_msg_costed(frame, len, &m, &why) < 0)
        FZ_CHECK(why != NULL);
    else if (m.type == FP_WMSG_OK || m.type == FP_WMSG_ERROR)
        check_cost(frame, len, &m);
    why = NULL;
    if (fp_wire_worker_msg(frame, len, &m, &why) < 0) {
        FZ_CHECK(why != NULL);
        return;
    }
    FZ_CHECK(m.cost == NULL);
    if (m.type != FP_WMSG_OK && m.type != FP_WMSG_ERROR)
        return;                 /* ready, retire: nothing more to read */
    FZ_CHECK(m.value != NULL && m.value_len > 0);
    FZ_CHECK(m.value > frame && m.value_len <= len
             && (size_t)(m.value - frame) <= len - m.value_len);

    struct fp_reader r;
    const char *raw;
    size_t rawlen;
    fp_reader_init(&r, m.value, m.value_len);
    FZ_CHECK(fp_read_skip(&r, &raw, &rawlen) == 0);
    FZ_CHECK(raw == m.value && rawlen == m.value_len && r.p == r.end);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fp_limits tight = { 24, 5, 1 };

    unsigned took = 0;

    FZ_CHECK(wire_quick_disagrees((const char *)data, size, &worker_limits, &took) == NULL);
    FZ_CHECK(wire_quick_disagrees((const char *)data, size, &tight, &took) == NULL);
    fz_stream(data, size, &worker_limits, worker_frame, NULL, 0);
    return 0;
}
