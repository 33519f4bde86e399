/*
 * check_wire.c — the message decoders of the worker and control protocols
 * (src/codec/wire.c), byte by byte: every valid message decodes with the
 * right fields, every malformed shape is refused with a reason.
 *
 * Table-driven: each table row is one input, each table one behaviour.
 * The fuzz corpus (tests/fuzz/corpus/) holds more inputs of the same kinds.
 */
#include "config.h"
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/wire.h"
#include "wire_quick.h"

/* A byte string literal and its length (it may hold NULs). */
#define B(s) s, sizeof(s) - 1

struct bytes {
    const char *p;
    size_t      n;
};

/* ========================================================================
 * Worker messages (SPEC §6): fp_wire_worker_msg
 * ======================================================================== */

static const struct {
    struct bytes            in;
    enum fp_worker_msg_type type;
    uint64_t                id;
    struct bytes            value;      /* ok/error: the raw value */
} worker_valid[] = {
    /* ["ready", {"pid": 1, "proto": 1}] */
    { { B("\x92\xa5" "ready\x82\xa3" "pid\x01\xa5" "proto\x01") }, FP_WMSG_READY, 0, { NULL, 0 } },
    /* ["ready", {}] */
    { { B("\x92\xa5" "ready\x80") }, FP_WMSG_READY, 0, { NULL, 0 } },
    /* ["retire", {}] */
    { { B("\x92\xa6" "retire\x80") }, FP_WMSG_RETIRE, 0, { NULL, 0 } },
    /* ["ok", 7, "hi"] */
    { { B("\x93\xa2ok\x07\xa2hi") }, FP_WMSG_OK, 7, { B("\xa2hi") } },
    /* ["error", 9, {"why": 1}] */
    { { B("\x93\xa5" "error\x09\x81\xa3why\x01") }, FP_WMSG_ERROR, 9, { B("\x81\xa3why\x01") } },
    /* ["ok", 1, [1, [2]]]: a nested value comes back whole */
    { { B("\x93\xa2ok\x01\x92\x01\x91\x02") }, FP_WMSG_OK, 1, { B("\x92\x01\x91\x02") } },
    /* ["ok", UINT64_MAX, nil] */
    { { B("\x93\xa2ok\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc0") }, FP_WMSG_OK, UINT64_MAX, { B("\xc0") } },
    /* ["ok", 5 as uint8, nil]: any integer encoding of the id */
    { { B("\x93\xa2ok\xcc\x05\xc0") }, FP_WMSG_OK, 5, { B("\xc0") } },
    /* array 32 and str 8 headers for the envelope */
    { { B("\xdd\x00\x00\x00\x03\xd9\x02ok\x02\xc3") }, FP_WMSG_OK, 2, { B("\xc3") } },
    /* ["progress", 4, 0.5 as float32] and ["progress", 3, {"done": 2}] */
    { { B("\x93\xa8progress\x04\xca\x3f\x00\x00\x00") }, FP_WMSG_PROGRESS, 4,
      { B("\xca\x3f\x00\x00\x00") } },
    { { B("\x93\xa8progress\x03\x81\xa4" "done\x02") }, FP_WMSG_PROGRESS, 3,
      { B("\x81\xa4" "done\x02") } },
};

START_TEST(worker_msg_decodes_each_valid_message)
{
    struct fp_worker_msg m;
    const char *why = NULL;

    ck_assert_int_eq(fp_wire_worker_msg(worker_valid[_i].in.p, worker_valid[_i].in.n,
                                        &m, &why), 0);
    ck_assert_int_eq(m.type, worker_valid[_i].type);
    if (m.type != FP_WMSG_OK && m.type != FP_WMSG_ERROR && m.type != FP_WMSG_PROGRESS)
        return;
    ck_assert_uint_eq(m.id, worker_valid[_i].id);
    ck_assert_uint_eq(m.value_len, worker_valid[_i].value.n);
    ck_assert(memcmp(m.value, worker_valid[_i].value.p, m.value_len) == 0);
    /* The value points into the frame, at its end. */
    ck_assert_ptr_eq(m.value + m.value_len,
                     worker_valid[_i].in.p + worker_valid[_i].in.n);
}
END_TEST

static const struct {
    struct bytes in;
    const char  *why;
} worker_bad[] = {
    { { B("\x01") }, "message is not an array" },
    { { B("\xc0") }, "message is not an array" },
    { { B("\x81\xa2ok\x01") }, "message is not an array" },
    { { B("\xa5" "ready") }, "message is not an array" },
    /* wrong array lengths */
    { { B("\x90") }, "unknown message" },
    { { B("\x91\xa5" "ready") }, "unknown message" },
    { { B("\x93\xa5" "ready\x80\x01") }, "unknown message" },
    { { B("\x91\xa6" "retire") }, "unknown message" },
    { { B("\x93\xa6" "retire\x80\x01") }, "unknown message" },
    { { B("\x92\xa2ok\x01") }, "unknown message" },
    { { B("\x94\xa2ok\x01\xc0\xc0") }, "unknown message" },
    { { B("\x94\xa5" "error\x01\xc0\xc0") }, "unknown message" },
    /* unknown or misspelt names, a name that is not a str */
    { { B("\x93\xa3job\x01\xc0") }, "unknown message" },
    { { B("\x93\xa2OK\x01\xc0") }, "unknown message" },
    { { B("\x93\xa3oks\x01\xc0") }, "unknown message" },
    { { B("\x93\xa5" "bogus\x01\xc0") }, "unknown message" },
    { { B("\x92\xa5" "hello\x80") }, "unknown message" },
    { { B("\x93\xc4\x02ok\x01\xc0") }, "unknown message" },
    { { B("\x93\x01\x01\xc0") }, "unknown message" },
    /* ready and retire carry a map */
    { { B("\x92\xa5" "ready\x01") }, "malformed ready message" },
    { { B("\x92\xa5" "ready\x90") }, "malformed ready message" },
    { { B("\x92\xa5" "ready\xc0") }, "malformed ready message" },
    { { B("\x92\xa6" "retire\xc0") }, "malformed retire message" },
    { { B("\x92\xa6" "retire\xa1x") }, "malformed retire message" },
    /* ids: negative, not integers, missing */
    { { B("\x93\xa2ok\xff\xc0") }, "malformed result" },
    { { B("\x93\xa2ok\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xc0") }, "malformed result" },
    { { B("\x93\xa5" "error\xa1\x37\xc0") }, "malformed result" },
    { { B("\x93\xa2ok\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xc0") }, "malformed result" },
    { { B("\x93\xa2ok\xc0\xc0") }, "malformed result" },
    { { B("\x93\xa2ok\xc3\xc0") }, "malformed result" },
    /* the value missing or cut short */
    { { B("\x93\xa2ok\x01") }, "malformed result" },
    { { B("\x93\xa5" "error\x01\xa5" "ab") }, "malformed result" },
    { { B("\x93\xa2ok\x01\x92\x01") }, "malformed result" },
    { { B("\x93\xa2ok\x01\xc6\xff\xff\xff\xff") }, "malformed result" },
    /* progress: three elements, an id, a value */
    { { B("\x92\xa8progress\x01") }, "unknown message" },
    { { B("\x94\xa8progress\x01\xc0\xc0") }, "unknown message" },
    { { B("\x93\xa8progress\xff\xc0") }, "malformed progress message" },
    { { B("\x93\xa8progress\xc0\xc0") }, "malformed progress message" },
    { { B("\x93\xa8progress\x01") }, "malformed progress message" },
    { { B("\x93\xa8progress\x01\x92\x01") }, "malformed progress message" },
};

START_TEST(worker_msg_refuses_each_malformed_shape_with_a_reason)
{
    struct fp_worker_msg m;
    const char *why = NULL;

    ck_assert_int_eq(fp_wire_worker_msg(worker_bad[_i].in.p, worker_bad[_i].in.n,
                                        &m, &why), -1);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, worker_bad[_i].why);
}
END_TEST

/* From forkpool's own job loop a result may carry what the job cost; the
 * rest decodes as fp_wire_worker_msg does. */
START_TEST(costed_worker_msg_takes_a_fourth_element)
{
    struct fp_worker_msg m;
    struct fp_job_cost c;
    const char *why = NULL;
    /* ["ok", 7, "hi", [1500, 1200, 2048, 90000, 1900]] */
    static const char ok[] = "\x94\xa2ok\x07\xa2hi\x95\xcd\x05\xdc\xcd\x04\xb0\xcd\x08\x00"
                             "\xce\x00\x01\x5f\x90\xcd\x07\x6c";

    ck_assert_int_eq(fp_wire_worker_msg_costed(ok, sizeof(ok) - 1, &m, &why), 0);
    ck_assert_int_eq(m.type, FP_WMSG_OK);
    ck_assert_uint_eq(m.id, 7);
    ck_assert_uint_eq(m.value_len, 3);
    ck_assert(memcmp(m.value, "\xa2hi", 3) == 0);
    ck_assert_ptr_nonnull(m.cost);
    ck_assert_int_eq(fp_wire_job_cost(m.cost, m.cost_len, &c), 0);
    ck_assert_uint_eq(c.run_us, 1500);
    ck_assert_uint_eq(c.cpu_us, 1200);
    ck_assert_uint_eq(c.maxrss_kb, 2048);
    ck_assert_uint_eq(c.total_cpu_us, 90000);
    ck_assert_uint_eq(c.rss_kb, 1900);
    ck_assert_int_eq(c.measured, 1);
    /* The short form: run_us alone. */
    ck_assert_int_eq(fp_wire_worker_msg_costed(B("\x94\xa5" "error\x08\xc0\x2a"), &m, &why), 0);
    ck_assert_int_eq(m.type, FP_WMSG_ERROR);
    ck_assert_int_eq(fp_wire_job_cost(m.cost, m.cost_len, &c), 0);
    ck_assert_int_eq(c.measured, 0);
    ck_assert_uint_eq(c.run_us, 42);
    /* Without one, and every other message, as before. */
    for (size_t i = 0; i < sizeof(worker_valid) / sizeof(worker_valid[0]); i++) {
        ck_assert_int_eq(fp_wire_worker_msg_costed(worker_valid[i].in.p,
                                                   worker_valid[i].in.n, &m, &why), 0);
        ck_assert_int_eq(m.type, worker_valid[i].type);
        ck_assert_ptr_null(m.cost);
    }
    /* Only a result takes a fourth element; a short frame is malformed. */
    ck_assert_int_eq(fp_wire_worker_msg_costed(B("\x94\xa5" "ready\x80\x80"), &m, &why), -1);
    ck_assert_str_eq(why, "unknown message");
    ck_assert_int_eq(fp_wire_worker_msg_costed(B("\x94\xa2ok\x01\xc0"), &m, &why), -1);
    ck_assert_str_eq(why, "malformed result");
    /* The plain decoder refuses it, as SPEC §6 has it. */
    ck_assert_int_eq(fp_wire_worker_msg(ok, sizeof(ok) - 1, &m, &why), -1);
}
END_TEST

static const struct bytes cost_bad[] = {
    { B("\x94\x01\x02\x03\x04") },          /* four figures */
    { B("\x96\x01\x02\x03\x04\x05\x06") },  /* six */
    { B("\x95\x01\x02\x03\x04\xff") },      /* negative */
    { B("\xff") },                          /* a negative run_us */
    { B("\xa2hi") },                        /* a str */
    { B("\x95\x01\x02\x03\x04\xc0") },      /* nil */
    { B("\x95\x01\x02\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x03\x04") },   /* a float */
    { B("\x85\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a") },               /* a map */
    { B("\x95\x01\x02") },                  /* cut short */
};

/* fp_wire_worker_ok_quick against the general path (fp_scan, then
 * fp_wire_worker_msg_costed): whatever it takes, the general path takes
 * too, as a frame of the same length decoding to the same message; and it
 * takes the common results.  Inputs: results with every scalar encoding,
 * containers, measured costs, other messages, each cut at every length and
 * with every byte replaced by a few others, under tight and loose limits. */
static void
quick_vs_general(const char *buf, size_t len, const struct fp_limits *lim,
                 unsigned *taken)
{
    const char *d = wire_quick_disagrees(buf, len, lim, taken);

    ck_assert_msg(d == NULL, "%s (%zu bytes)", d, len);
}

START_TEST(quick_ok_result_agrees_with_the_general_path)
{
    static const struct bytes values[] = {
        { B("\x05") }, { B("\xff") }, { B("\xc0") }, { B("\xc2") }, { B("\xc3") },
        { B("\xcc\x80") }, { B("\xcd\x01\x00") }, { B("\xd0\x80") },
        { B("\xd3\x80\x00\x00\x00\x00\x00\x00\x00") }, { B("\xca\x3f\x80\x00\x00") },
        { B("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00") }, { B("\xa3" "abc") },
        { B("\xd9\x03" "abc") }, { B("\xda\x00\x02" "ab") },
        { B("\xdb\x00\x00\x00\x01" "a") }, { B("\xc4\x02\x01\x02") },
        { B("\xc5\x00\x01\x07") }, { B("\xc6\x00\x00\x00\x00") },
        { B("\x91\x01") }, { B("\x81\xa1k\x01") }, { B("\xd4\x01\x02") },
        { B("\xc1") },
    };
    static const struct bytes ids[] = {
        { B("\x00") }, { B("\x7f") }, { B("\xcc\xff") }, { B("\xcd\x12\x34") },
        { B("\xce\x00\x01\x00\x00") }, { B("\xcf\x00\x00\x00\x01\x00\x00\x00\x00") },
        { B("\xd0\x05") }, { B("\xff") },
    };
    static const struct bytes costs[] = {
        { B("\x03") }, { B("\xcc\xc8") }, { B("\xcd\x01\x00") },
        { B("\x95\x01\x02\x03\x04\x05") }, { B("\xc0") },
    };
    static const struct bytes heads[] = {
        { B("\x94\xa2ok") }, { B("\x94\xa5" "error") }, { B("\x93\xa2ok") },
        { B("\x94\xd9\x02ok") }, { B("\x95\xa2ok") },
    };
    static const unsigned char swaps[] = { 0x00, 0x7f, 0x94, 0xa2, 0xc1, 0xcc, 0xff };
    const struct fp_limits loose = { 1 << 20, 1 << 20, 32 };
    const struct fp_limits tight[] = { { 12, 1 << 20, 32 }, { 1 << 20, 4, 32 },
                                       { 1 << 20, 5, 32 }, { 1 << 20, 1 << 20, 0 } };
    char frame[64];
    unsigned taken = 0, common = 0;

    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++)
    for (size_t c = 0; c < sizeof costs / sizeof costs[0]; c++) {
        size_t len = 0;
        memcpy(frame + len, heads[h].p, heads[h].n), len += heads[h].n;
        memcpy(frame + len, ids[i].p, ids[i].n), len += ids[i].n;
        memcpy(frame + len, values[v].p, values[v].n), len += values[v].n;
        memcpy(frame + len, costs[c].p, costs[c].n), len += costs[c].n;
        frame[len] = '\x01';       /* the start of the next frame */
        unsigned before = taken;
        quick_vs_general(frame, len + 1, &loose, &taken);
        if (h == 0 && i < 6 && v < 18 && c < 3) {
            /* ["ok", uint, scalar, uint]: the common case, taken. */
            ck_assert_msg(taken == before + 1, "frame %zu/%zu/%zu/%zu not taken", h, i, v, c);
            common++;
        }
        for (size_t t = 0; t < sizeof tight / sizeof tight[0]; t++)
            quick_vs_general(frame, len, &tight[t], &taken);
        for (size_t cut = 0; cut < len; cut++)
            quick_vs_general(frame, cut, &loose, &taken);
        for (size_t at = 0; at < len; at++) {
            char keep = frame[at];
            for (size_t k = 0; k < sizeof swaps; k++) {
                frame[at] = (char)swaps[k];
                quick_vs_general(frame, len, &loose, &taken);
            }
            frame[at] = keep;
        }
    }
    ck_assert_uint_eq(common, 1 * 6 * 18 * 3);
    ck_assert_uint_gt(taken, common);
}
END_TEST

START_TEST(job_cost_refuses_each_bad_shape)
{
    struct fp_job_cost c;

    ck_assert_int_eq(fp_wire_job_cost(cost_bad[_i].p, cost_bad[_i].n, &c), -1);
}
END_TEST

/* ========================================================================
 * Control requests (SPEC §7): fp_wire_request, fp_wire_request_msgid
 * ======================================================================== */

static const struct {
    struct bytes in;
    uint32_t     msgid;
    const char  *method;
    uint32_t     nparams;
    struct bytes first;         /* the first param's bytes, if any */
} request_valid[] = {
    /* [0, 1, "status", []] */
    { { B("\x94\x00\x01\xa6status\x90") }, 1, "status", 0, { NULL, 0 } },
    /* [0, 0, "cancel", [3]]: msgid 0 is a msgid */
    { { B("\x94\x00\x00\xa6" "cancel\x91\x03") }, 0, "cancel", 1, { B("\x03") } },
    /* [0, UINT32_MAX, "submit", [42]] */
    { { B("\x94\x00\xce\xff\xff\xff\xff\xa6submit\x91\x2a") }, UINT32_MAX, "submit", 1, { B("\x2a") } },
    /* [0, 7, "submit", [{"a": 1}, {"timeout": 1.5}]] */
    { { B("\x94\x00\x07\xa6submit\x92\x81\xa1" "a\x01\x81\xa7timeout\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00") },
      7, "submit", 2, { B("\x81\xa1" "a\x01") } },
    /* [0, 300 as uint16, "metrics", []] */
    { { B("\x94\x00\xcd\x01\x2c\xa7metrics\x90") }, 300, "metrics", 0, { NULL, 0 } },
    /* [0, 2, "", []]: any string is a method here; the server names the
     * unknown ones */
    { { B("\x94\x00\x02\xa0\x90") }, 2, "", 0, { NULL, 0 } },
};

START_TEST(request_decodes_each_valid_request)
{
    struct fp_request rq;
    const char *why = NULL;
    uint32_t msgid = 0;

    ck_assert_int_eq(fp_wire_request(request_valid[_i].in.p, request_valid[_i].in.n,
                                     &rq, &why), 0);
    ck_assert_uint_eq(rq.msgid, request_valid[_i].msgid);
    ck_assert_uint_eq(rq.method_len, strlen(request_valid[_i].method));
    ck_assert(fp_wire_method_is(&rq, request_valid[_i].method));
    ck_assert_uint_eq(rq.nparams, request_valid[_i].nparams);
    if (request_valid[_i].first.p != NULL) {
        const char *raw;
        size_t rawlen;
        struct fp_reader r = rq.params;
        ck_assert_int_eq(fp_read_skip(&r, &raw, &rawlen), 0);
        ck_assert_uint_eq(rawlen, request_valid[_i].first.n);
        ck_assert(memcmp(raw, request_valid[_i].first.p, rawlen) == 0);
    }
    ck_assert_int_eq(fp_wire_request_msgid(request_valid[_i].in.p,
                                           request_valid[_i].in.n, &msgid), 0);
    ck_assert_uint_eq(msgid, request_valid[_i].msgid);
}
END_TEST

/* No msgid can be read: refused (-1), the server closes the connection. */
static const struct bytes request_no_msgid[] = {
    { B("\x01") },
    { B("\xa6status") },
    { B("\x80") },
    /* wrong array lengths */
    { B("\x90") },
    { B("\x93\x00\x01\xa6status") },
    { B("\x95\x00\x01\xa6status\x90\xc0") },
    /* not a request: a response, a notification, a negative or str type */
    { B("\x94\x01\x01\xc0\xc0") },
    { B("\x94\x02\x01\xa6status\x90") },
    { B("\x94\xff\x01\xa6status\x90") },
    { B("\x94\xa1\x30\x01\xa6status\x90") },
    /* msgids out of range or not integers */
    { B("\x94\x00\xff\xa6status\x90") },
    { B("\x94\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa6status\x90") },
    { B("\x94\x00\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa6status\x90") },
    { B("\x94\x00\xa1\x31\xa6status\x90") },
    { B("\x94\x00\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xa6status\x90") },
    { B("\x94\x00\xc0\xa6status\x90") },
    /* cut short before the msgid */
    { B("\x94\x00") },
};

START_TEST(request_without_a_msgid_is_refused)
{
    struct fp_request rq;
    const char *why = NULL;
    uint32_t msgid = 12345;

    ck_assert_int_eq(fp_wire_request(request_no_msgid[_i].p, request_no_msgid[_i].n,
                                     &rq, &why), -1);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, "not a request with a msgid");
    ck_assert_int_eq(fp_wire_request_msgid(request_no_msgid[_i].p,
                                           request_no_msgid[_i].n, &msgid), -1);
    ck_assert_uint_eq(msgid, 12345);
}
END_TEST

/* The msgid is known but the rest is wrong: 1, answered to that msgid. */
static const struct {
    struct bytes in;
    uint32_t     msgid;
    const char  *why;
} request_bad[] = {
    { { B("\x94\x00\x05\x07\x90") }, 5, "bad request: method must be a string" },
    { { B("\x94\x00\x05\xc0\x90") }, 5, "bad request: method must be a string" },
    { { B("\x94\x00\x05\xc4\x06status\x90") }, 5, "bad request: method must be a string" },
    { { B("\x94\x00\x05\x91\xa6status\x90") }, 5, "bad request: method must be a string" },
    { { B("\x94\x00\x06\xa6status\x80") }, 6, "bad request: params must be an array" },
    { { B("\x94\x00\x06\xa6status\xc0") }, 6, "bad request: params must be an array" },
    { { B("\x94\x00\x06\xa6status\x01") }, 6, "bad request: params must be an array" },
    { { B("\x94\x00\xce\xff\xff\xff\xff\xa6status\xa2[]") }, UINT32_MAX,
      "bad request: params must be an array" },
    /* cut short after the msgid */
    { { B("\x94\x00\x08") }, 8, "bad request: method must be a string" },
    { { B("\x94\x00\x08\xa6status") }, 8, "bad request: params must be an array" },
};

START_TEST(request_with_a_msgid_but_bad_shape_is_answered)
{
    struct fp_request rq;
    const char *why = NULL;
    uint32_t msgid = 0;

    ck_assert_int_eq(fp_wire_request(request_bad[_i].in.p, request_bad[_i].in.n,
                                     &rq, &why), 1);
    ck_assert_uint_eq(rq.msgid, request_bad[_i].msgid);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, request_bad[_i].why);
    ck_assert_int_eq(fp_wire_request_msgid(request_bad[_i].in.p, request_bad[_i].in.n,
                                           &msgid), 0);
    ck_assert_uint_eq(msgid, request_bad[_i].msgid);
}
END_TEST

/* The msgid of a frame that is still arriving (or broken further on) is
 * read from its first bytes: every prefix that holds it gives it. */
START_TEST(request_msgid_is_read_from_every_prefix_that_holds_it)
{
    static const char frame[] = "\x94\x00\xce\x00\x01\x00\x00\xa6submit\x91\x2a";
    const size_t head = 7;          /* array, type, uint32 msgid */
    uint32_t msgid;

    for (size_t n = 0; n < head; n++)
        ck_assert_msg(fp_wire_request_msgid(frame, n, &msgid) == -1,
                      "a msgid read from %zu bytes", n);
    for (size_t n = head; n < sizeof(frame); n++) {
        msgid = 0;
        ck_assert_int_eq(fp_wire_request_msgid(frame, n, &msgid), 0);
        ck_assert_uint_eq(msgid, 65536);
    }
}
END_TEST

START_TEST(method_is_compares_the_whole_name)
{
    struct fp_request rq;
    const char *why;

    ck_assert_int_eq(fp_wire_request(B("\x94\x00\x01\xa6status\x90"), &rq, &why), 0);
    ck_assert(fp_wire_method_is(&rq, "status"));
    ck_assert(!fp_wire_method_is(&rq, "stat"));
    ck_assert(!fp_wire_method_is(&rq, "statuses"));
    ck_assert(!fp_wire_method_is(&rq, "Status"));
    ck_assert(!fp_wire_method_is(&rq, ""));
}
END_TEST

/* ========================================================================
 * submit's options: fp_wire_job_opts
 * ======================================================================== */

static const struct {
    struct bytes in;
    double       timeout;       /* -1: left at the default */
    unsigned     retries;
    int          notify;
    int          progress;
} opts_valid[] = {
    { { B("\x80") }, -1, 0, 0, 0 },
    { { B("\x81\xa7timeout\xcb\x40\x04\x00\x00\x00\x00\x00\x00") }, 2.5, 0, 0, 0 },
    { { B("\x81\xa7timeout\x03") }, 3, 0, 0, 0 },
    { { B("\x81\xa7timeout\xca\x3f\x00\x00\x00") }, 0.5, 0, 0, 0 },
    { { B("\x81\xa7timeout\x00") }, 0, 0, 0, 0 },
    { { B("\x81\xa7retries\x64") }, -1, 100, 0, 0 },
    { { B("\x81\xa7retries\x00") }, -1, 0, 0, 0 },
    { { B("\x81\xa6notify\xc3") }, -1, 0, 1, 0 },
    { { B("\x81\xa6notify\xc2") }, -1, 0, 0, 0 },
    { { B("\x83\xa6notify\xc3\xa7retries\x02\xa7timeout\x01") }, 1, 2, 1, 0 },
    { { B("\x81\xa8progress\xc3") }, -1, 0, 0, 1 },
    { { B("\x81\xa8progress\xc2") }, -1, 0, 0, 0 },
    { { B("\x82\xa8progress\xc3\xa6notify\xc3") }, -1, 0, 1, 1 },
};

START_TEST(job_opts_reads_each_valid_option)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    char key[FP_MAX_KEY_BYTES + 1];
    struct fp_wire_submit_flags flags = { 0, 0 };
    struct fp_reader r;

    fp_reader_init(&r, opts_valid[_i].in.p, opts_valid[_i].in.n);
    ck_assert_ptr_null(fp_wire_job_opts(&r, &opts, &flags, key));
    ck_assert_double_eq(opts.timeout, opts_valid[_i].timeout);
    ck_assert_uint_eq(opts.retries, opts_valid[_i].retries);
    ck_assert_int_eq(flags.notify, opts_valid[_i].notify);
    ck_assert_int_eq(flags.progress, opts_valid[_i].progress);
    ck_assert_ptr_eq(r.p, r.end);
}
END_TEST

static const struct {
    struct bytes in;
    const char  *why;
} opts_bad[] = {
    { { B("\x90") }, "malformed: options must be a map" },
    { { B("\xc0") }, "malformed: options must be a map" },
    { { B("\x01") }, "malformed: options must be a map" },
    { { B("\x81\xa7timeout\xff") }, "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7timeout\xcb\xbf\xf0\x00\x00\x00\x00\x00\x00") },
      "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7timeout\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00") },      /* NaN */
      "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7timeout\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00") },      /* inf */
      "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7timeout\xcb\x42\x02\xa0\x5f\x20\x00\x00\x00") },      /* 1e10 */
      "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7timeout\xa1\x31") }, "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7timeout\xc0") }, "malformed: timeout must be a number of seconds >= 0" },
    { { B("\x81\xa7retries\x65") }, "malformed: retries must be an integer from 0 to 100" },
    { { B("\x81\xa7retries\xff") }, "malformed: retries must be an integer from 0 to 100" },
    { { B("\x81\xa7retries\xcf\xff\xff\xff\xff\xff\xff\xff\xff") },
      "malformed: retries must be an integer from 0 to 100" },
    { { B("\x81\xa7retries\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00") },
      "malformed: retries must be an integer from 0 to 100" },
    { { B("\x81\xa6notify\x01") }, "malformed: notify must be true or false" },
    { { B("\x81\xa6notify\xc0") }, "malformed: notify must be true or false" },
    { { B("\x81\xa8progress\x01") }, "malformed: progress must be true or false" },
    { { B("\x81\xa8progress\xa4true") }, "malformed: progress must be true or false" },
    { { B("\x81\xa5" "bogus\x01") },
      "malformed: unknown option (expected timeout, retries, key, expires, notify, progress)" },
    { { B("\x81\x01\x01") }, "malformed: unknown option (expected timeout, retries, key, expires, notify, progress)" },
    /* a bad option after a good one */
    { { B("\x82\xa7retries\x01\xa6notify\xa3yes") }, "malformed: notify must be true or false" },
    { { B("\x81\xa3key\x01") }, "malformed: key must be a string of at most 256 bytes" },
    { { B("\x81\xa3key\xc0") }, "malformed: key must be a string of at most 256 bytes" },
    { { B("\x81\xa3key\xa3" "a\x00" "b") }, "malformed: key must not contain a NUL byte" },
    { { B("\x81\xa7" "expires\xff") }, "malformed: expires must be a number of seconds >= 0" },
    { { B("\x81\xa7" "expires\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00") },   /* NaN */
      "malformed: expires must be a number of seconds >= 0" },
    { { B("\x81\xa7" "expires\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00") },   /* inf */
      "malformed: expires must be a number of seconds >= 0" },
    { { B("\x81\xa7" "expires\xa1\x31") }, "malformed: expires must be a number of seconds >= 0" },
};

START_TEST(job_opts_refuses_each_bad_option_with_a_reason)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    char key[FP_MAX_KEY_BYTES + 1];
    struct fp_wire_submit_flags flags = { 0, 0 };
    struct fp_reader r;
    const char *why;

    fp_reader_init(&r, opts_bad[_i].in.p, opts_bad[_i].in.n);
    why = fp_wire_job_opts(&r, &opts, &flags, key);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, opts_bad[_i].why);
}
END_TEST

/* "expires" (seconds, a number >= 0) goes to opts.expires. */
START_TEST(job_opts_reads_expires)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    char key[FP_MAX_KEY_BYTES + 1];
    struct fp_wire_submit_flags flags = { 0, 0 };
    struct fp_reader r;

    fp_reader_init(&r, "\x81\xa7" "expires\xcb\x3f\xe0\x00\x00\x00\x00\x00\x00", 18);
    ck_assert_ptr_null(fp_wire_job_opts(&r, &opts, &flags, key));
    ck_assert_double_eq(opts.expires, 0.5);
    fp_reader_init(&r, "\x82\xa7" "expires\x03\xa7timeout\x01", 19);
    ck_assert_ptr_null(fp_wire_job_opts(&r, &opts, &flags, key));
    ck_assert_double_eq(opts.expires, 3);
    ck_assert_double_eq(opts.timeout, 1);
}
END_TEST

/* The key is copied out of the frame, NUL-terminated; 256 bytes is the
 * longest accepted. */
START_TEST(job_opts_copies_a_key_of_up_to_256_bytes)
{
    fp_job_opts opts = { .timeout = -1, .retries = 0 };
    char key[FP_MAX_KEY_BYTES + 1], frame[16 + 300];
    struct fp_wire_submit_flags flags = { 0, 0 };
    struct fp_reader r;

    for (size_t len = 1; len <= FP_MAX_KEY_BYTES + 1; len += FP_MAX_KEY_BYTES) {
        size_t n = 0;
        frame[n++] = (char)0x81;
        frame[n++] = (char)0xa3;
        memcpy(frame + n, "key", 3);
        n += 3;
        frame[n++] = (char)0xda;            /* str 16 */
        frame[n++] = (char)(len >> 8);
        frame[n++] = (char)len;
        memset(frame + n, 'k', len);
        n += len;
        opts.key = NULL;
        fp_reader_init(&r, frame, n);
        if (len <= FP_MAX_KEY_BYTES) {
            ck_assert_ptr_null(fp_wire_job_opts(&r, &opts, &flags, key));
            ck_assert_ptr_eq(opts.key, key);
            ck_assert_uint_eq(strlen(opts.key), len);
        } else {
            ck_assert_str_eq(fp_wire_job_opts(&r, &opts, &flags, key),
                             "malformed: key must be a string of at most 256 bytes");
        }
    }
    fp_reader_init(&r, "\x81\xa3key\xa6tenant", 12);
    ck_assert_ptr_null(fp_wire_job_opts(&r, &opts, &flags, key));
    ck_assert_str_eq(opts.key, "tenant");
}
END_TEST

/* ------------------------------------------------------------------------ */

#define N(t) (int)(sizeof(t) / sizeof((t)[0]))

static Suite *
wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc;

    tc = tcase_create("worker");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, worker_msg_decodes_each_valid_message, 0, N(worker_valid));
    tcase_add_loop_test(tc, worker_msg_refuses_each_malformed_shape_with_a_reason, 0,
                        N(worker_bad));
    tcase_add_test(tc, costed_worker_msg_takes_a_fourth_element);
    tcase_add_test(tc, quick_ok_result_agrees_with_the_general_path);
    tcase_add_loop_test(tc, job_cost_refuses_each_bad_shape, 0, N(cost_bad));
    suite_add_tcase(s, tc);

    tc = tcase_create("request");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, request_decodes_each_valid_request, 0, N(request_valid));
    tcase_add_loop_test(tc, request_without_a_msgid_is_refused, 0, N(request_no_msgid));
    tcase_add_loop_test(tc, request_with_a_msgid_but_bad_shape_is_answered, 0,
                        N(request_bad));
    tcase_add_test(tc, request_msgid_is_read_from_every_prefix_that_holds_it);
    tcase_add_test(tc, method_is_compares_the_whole_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("job options");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, job_opts_reads_each_valid_option, 0, N(opts_valid));
    tcase_add_test(tc, job_opts_copies_a_key_of_up_to_256_bytes);
    tcase_add_test(tc, job_opts_reads_expires);
    tcase_add_loop_test(tc, job_opts_refuses_each_bad_option_with_a_reason, 0, N(opts_bad));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(wire_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
