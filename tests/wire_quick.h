/*
 * wire_quick.h — the one check both check_wire.c and the worker-message
 * fuzzer make of fp_wire_worker_ok_quick (src/codec/wire.h): whatever it
 * takes, fp_scan frames the same way and fp_wire_worker_msg_costed decodes
 * the same.
 */
#ifndef FP_TESTS_WIRE_QUICK_H
#define FP_TESTS_WIRE_QUICK_H

#include <sys/types.h>

#include "codec/frame.h"
#include "codec/wire.h"

/* NULL if the quick decoder takes nothing of buf[0..len) under `lim`, or
 * takes what the general path takes; else what differs.  *took counts what
 * it took. */
static inline const char *
wire_quick_disagrees(const char *buf, size_t len, const struct fp_limits *lim,
                     unsigned *took)
{
    struct fp_worker_msg q, g;
    struct fp_scanner sc;
    const char *why = NULL;
    size_t n = fp_wire_worker_ok_quick(buf, len, lim, &q);

    if (n == 0)
        return NULL;
    (*took)++;
    fp_scanner_reset(&sc);
    if (fp_scan(&sc, buf, len, lim, &why) != (ssize_t)n)
        return "fp_scan frames it otherwise";
    if (fp_wire_worker_msg_costed(buf, n, &g, &why) != 0)
        return "fp_wire_worker_msg_costed refuses it";
    if (q.type != g.type || q.id != g.id || q.value != g.value
        || q.value_len != g.value_len || q.cost != g.cost || q.cost_len != g.cost_len)
        return "fp_wire_worker_msg_costed decodes it otherwise";
    return NULL;
}

#endif
