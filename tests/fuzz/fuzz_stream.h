/*
 * fuzz_stream.h — the byte-stream half shared by the protocol fuzzers.
 *
 * An input is FZ_CTL control bytes followed by the stream as it would
 * arrive on a socket:
 *
 *   ctl[0..1]  split point (big-endian), taken modulo the bytes left + 1
 *   ctl[2]     chunk size - 1 for the byte-drip feed
 *   ctl[3]     bit 7 clear: the daemon's limits (passed by the target);
 *              bit 7 set: tight limits, max_bytes = 1 + (ctl[3] & 0x7f) * 3
 *   ctl[4]     tight limits only: max_objects = 1 + (ctl[4] & 0x1f),
 *              max_depth = (ctl[4] >> 5) * 6 (0..42, past the clamp at
 *              FP_SCAN_STACK)
 *
 * fz_stream() cuts the stream into frames with fp_scan() as the master
 * does, checks the scanner against itself and against msgpack-c (see
 * fuzz_stream.c), and hands each complete frame to the target in a buffer of
 * its own, exactly as long as the frame, so that an over-read is caught by
 * AddressSanitizer rather than landing in the next frame; likewise the
 * bytes of a frame it refuses or that is incomplete.
 */
#ifndef FZ_STREAM_H
#define FZ_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "codec/frame.h"
#include "fuzz_check.h"

#define FZ_CTL 5

typedef void fz_frame_fn(const char *buf, size_t len);

/* Scan data[0..size) (control bytes included) frame by frame with `daemon`
 * limits, or tight ones when ctl[3] says so, calling `frame` for each frame
 * fp_scan accepts.  At a refused or incomplete frame it calls `tail` (when
 * not NULL) with every byte left, which is what the daemon has in hand when
 * it refuses a frame; then it stops, unless `skips` is set and the frame
 * broke only a size limit: then it steps over the frame with fp_skip, as
 * the control server does, and goes on after it.  The skipper is checked
 * against itself (fed at once and in chunks of the fuzzer's size) and
 * against fp_scan without limits, which must find the same end. */
void fz_stream(const uint8_t *data, size_t size,
               const struct fp_limits *daemon, fz_frame_fn *frame,
               fz_frame_fn *tail, int skips);

#endif /* FZ_STREAM_H */
