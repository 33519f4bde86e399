/*
 * fuzz_stream.c — scanner checks shared by the protocol fuzzers (see
 * fuzz_stream.h for the input layout).
 *
 * At each frame boundary of the stream it asserts:
 *   - resumability (frame.h: "Resumable: call again with more bytes"): the
 *     one-shot fp_scan over every byte left, the same frame fed in two calls
 *     split at the fuzzer's point, and fed in chunks of the fuzzer's size all
 *     give the same length, or the same error message.  The first half of a
 *     split lives in its own exact-size buffer that is freed before the
 *     second call: reading past len or keeping a pointer into it is caught
 *     by AddressSanitizer.
 *   - scanner state: while incomplete, no more bytes accepted than given nor
 *     than max_bytes; once complete, no container left open, the object
 *     limit held, the length within the bytes given and max_bytes, and a
 *     second call on the same scanner returns the same length.
 *   - fp_read_skip steps over an accepted frame exactly.
 *   - msgpack-c agrees with the scanner.  With msgpack-c's nesting bound, no
 *     object limit and max_bytes = the bytes left, where fp_scan accepts a
 *     value of n bytes msgpack_unpack_next succeeds with exactly n, and
 *     every value the fp_read_* functions decode from it equals the one
 *     msgpack-c decodes (strings point at the same bytes); where fp_scan
 *     finds invalid msgpack or nesting too deep, msgpack_unpack_next fails
 *     too.  "frame too large" there means truncated, or a declared size
 *     that is a lie which msgpack-c would try to allocate: not compared.
 *   - with `skips`, at a frame refused for its size: fp_skip fed at once
 *     and in chunks agree, and find the end fp_scan finds without limits.
 */
#include "config.h"
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stream.h"

static void *
xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    FZ_CHECK(p != NULL);
    return p;
}

/* The invariants of a scanner after fp_scan returned n for len bytes. */
static void
check_state(struct fp_scanner *s, ssize_t n, const char *buf, size_t len,
            const struct fp_limits *lim, const char *why)
{
    FZ_CHECK(n >= -1);
    if (n < 0) {
        FZ_CHECK(why != NULL);
        return;
    }
    FZ_CHECK(s->pos <= len && s->pos <= lim->max_bytes);
    FZ_CHECK(s->objects <= lim->max_objects);
    FZ_CHECK(s->depth <= FP_SCAN_STACK);
    if (n == 0)
        return;
    FZ_CHECK((size_t)n == s->pos && s->depth == 0 && s->objects > 0);
    const char *why2 = NULL;
    FZ_CHECK(fp_scan(s, buf, len, lim, &why2) == n);
}

static ssize_t
scan_fresh(const char *buf, size_t len, const struct fp_limits *lim,
           const char **why)
{
    struct fp_scanner s;
    fp_scanner_reset(&s);
    *why = NULL;
    ssize_t n = fp_scan(&s, buf, len, lim, why);
    check_state(&s, n, buf, len, lim, *why);
    return n;
}

/* The first `cut` bytes in a buffer of their own, then all `len`. */
static ssize_t
scan_split(const char *buf, size_t len, size_t cut,
           const struct fp_limits *lim, const char **why)
{
    struct fp_scanner s;
    char *head = xmalloc(cut);

    memcpy(head, buf, cut);
    fp_scanner_reset(&s);
    *why = NULL;
    ssize_t n = fp_scan(&s, head, cut, lim, why);
    check_state(&s, n, head, cut, lim, *why);
    free(head);
    if (n == 0 && cut < len) {
        n = fp_scan(&s, buf, len, lim, why);
        check_state(&s, n, buf, len, lim, *why);
    }
    return n;
}

/* `step` more bytes per call, as a slow writer would deliver them. */
static ssize_t
scan_drip(const char *buf, size_t len, size_t step,
          const struct fp_limits *lim, const char **why)
{
    struct fp_scanner s;
    size_t have = 0;
    ssize_t n;

    fp_scanner_reset(&s);
    *why = NULL;
    do {
        have = len - have > step ? have + step : len;
        n = fp_scan(&s, buf, have, lim, why);
        check_state(&s, n, buf, have, lim, *why);
    } while (n == 0 && have < len);
    return n;
}

static void
check_same(ssize_t n1, const char *why1, ssize_t n2, const char *why2)
{
    FZ_CHECK(n1 == n2);
    if (n1 < 0)
        FZ_CHECK(strcmp(why1, why2) == 0);
}

/* Walk msgpack-c's object and the reader in step: each value must decode
 * the same both ways, and reading it element by element must end where
 * fp_read_skip says it ends. */
static void
agree(struct fp_reader *r, const msgpack_object *o)
{
    struct fp_reader skip = *r, t;
    const char *raw, *s;
    size_t rawlen;
    uint32_t n, slen;
    uint64_t u;
    int64_t i;
    double d;
    int b;

    FZ_CHECK(fp_read_skip(&skip, &raw, &rawlen) == 0 && raw == r->p);
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        FZ_CHECK(fp_reader_type(r) == FP_T_NIL && fp_read_nil(r) == 0);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        FZ_CHECK(fp_reader_type(r) == FP_T_BOOL && fp_read_bool(r, &b) == 0);
        FZ_CHECK(b == (int)o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        t = *r;
        FZ_CHECK(fp_read_double(&t, &d) == 0 && d == (double)o->via.u64);
        t = *r;
        if (o->via.u64 <= INT64_MAX)
            FZ_CHECK(fp_read_int(&t, &i) == 0 && (uint64_t)i == o->via.u64);
        else
            FZ_CHECK(fp_read_int(&t, &i) < 0 && t.p == r->p);
        FZ_CHECK(fp_read_uint(r, &u) == 0 && u == o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        FZ_CHECK(fp_reader_type(r) == FP_T_INT);
        t = *r;
        FZ_CHECK(fp_read_uint(&t, &u) < 0 && t.p == r->p);
        t = *r;
        FZ_CHECK(fp_read_double(&t, &d) == 0 && d == (double)o->via.i64);
        FZ_CHECK(fp_read_int(r, &i) == 0 && i == o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        FZ_CHECK(fp_reader_type(r) == FP_T_FLOAT);
        FZ_CHECK(fp_read_double(r, &d) == 0
                 && memcmp(&d, &o->via.f64, sizeof d) == 0);
        break;
    case MSGPACK_OBJECT_STR:
        FZ_CHECK(fp_read_str(r, &s, &slen) == 0);
        /* msgpack-c's pointer for an empty str or bin is not meaningful
         * (a stale position in its parser): compare only non-empty ones. */
        FZ_CHECK(slen == o->via.str.size && (slen == 0 || s == o->via.str.ptr));
        break;
    case MSGPACK_OBJECT_BIN:
        FZ_CHECK(fp_reader_type(r) == FP_T_BIN
                 && fp_read_skip(r, &raw, &rawlen) == 0);
        FZ_CHECK(o->via.bin.size == 0
                 || raw + rawlen == o->via.bin.ptr + o->via.bin.size);
        FZ_CHECK(rawlen >= o->via.bin.size
                 && rawlen - o->via.bin.size <= 5);
        break;
    case MSGPACK_OBJECT_EXT:
        FZ_CHECK(fp_reader_type(r) == FP_T_EXT
                 && fp_read_skip(r, &raw, &rawlen) == 0);
        FZ_CHECK(raw + rawlen == o->via.ext.ptr + o->via.ext.size);
        FZ_CHECK((int8_t)o->via.ext.ptr[-1] == o->via.ext.type);
        break;
    case MSGPACK_OBJECT_ARRAY:
        FZ_CHECK(fp_read_array(r, &n) == 0 && n == o->via.array.size);
        for (uint32_t k = 0; k < n; k++)
            agree(r, &o->via.array.ptr[k]);
        break;
    case MSGPACK_OBJECT_MAP:
        FZ_CHECK(fp_read_map(r, &n) == 0 && n == o->via.map.size);
        for (uint32_t k = 0; k < n; k++) {
            agree(r, &o->via.map.ptr[k].key);
            agree(r, &o->via.map.ptr[k].val);
        }
        break;
    default:
        fz_fail(__FILE__, __LINE__, "msgpack-c returned an unknown type");
    }
    FZ_CHECK(r->p == skip.p);
}

static void
check_msgpack_c(const char *buf, size_t len)
{
    const struct fp_limits lim = {
        .max_bytes = len, .max_objects = SIZE_MAX, .max_depth = FP_MAX_DEPTH,
    };
    const char *why;
    ssize_t n = scan_fresh(buf, len, &lim, &why);

    if (n == 0 || (n < 0 && strcmp(why, "frame too large") == 0))
        return;

    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    msgpack_unpack_return ret = msgpack_unpack_next(&up, buf, len, &off);
    if (n < 0) {
        FZ_CHECK(ret == MSGPACK_UNPACK_PARSE_ERROR
                 || ret == MSGPACK_UNPACK_NOMEM_ERROR);
    } else {
        FZ_CHECK(ret == MSGPACK_UNPACK_SUCCESS && off == (size_t)n);
        struct fp_reader r;
        fp_reader_init(&r, buf, (size_t)n);
        agree(&r, &up.data);
        FZ_CHECK(r.p == r.end);
    }
    msgpack_unpacked_destroy(&up);
}

/* fp_skip over buf[0..len), `step` bytes more per call, keeping what it
 * leaves (a cut header) as a reader does.  Returns the bytes it took, with
 * *done set if the frame ended, or -1. */
static ssize_t
skip_drip(const struct fp_scanner *from, const char *buf, size_t len,
          size_t step, int *done)
{
    struct fp_skipper k;
    size_t taken = 0, have = 0;

    fp_skip_start(&k, from);
    *done = 0;
    while (!*done && have < len) {
        have = len - have > step ? have + step : len;
        ssize_t n = fp_skip(&k, buf + taken, have - taken, done);
        if (n < 0)
            return -1;
        taken += (size_t)n;
        FZ_CHECK(taken <= have);
    }
    return (ssize_t)taken;
}

/* The frame at buf[0..len) was refused for its size: step over it as the
 * control server does.  Returns its length, or 0 when it does not end in
 * these bytes or cannot be followed. */
static size_t
skip_refused(const char *buf, size_t len, const struct fp_limits *lim,
             size_t step)
{
    const struct fp_limits none = {
        .max_bytes = SIZE_MAX, .max_objects = SIZE_MAX,
        .max_depth = FP_SCAN_STACK,
    };
    struct fp_scanner s, u;
    struct fp_skipper k;
    const char *why = NULL, *uwhy = NULL;
    int done, done2;

    fp_scanner_reset(&s);
    FZ_CHECK(fp_scan(&s, buf, len, lim, &why) == -1);
    FZ_CHECK(s.pos <= len);
    fp_skip_start(&k, &s);
    ssize_t n = fp_skip(&k, buf + s.pos, len - s.pos, &done);
    ssize_t n2 = skip_drip(&s, buf + s.pos, len - s.pos, step, &done2);
    FZ_CHECK(n == -1 ? n2 == -1 : (n2 >= 0 && done2 == done));
    FZ_CHECK(n < 0 || !done || n2 == n);

    /* Without limits, the scanner finds the same end (or stops at its own
     * nesting bound, one level short of the skipper's). */
    fp_scanner_reset(&u);
    ssize_t whole = fp_scan(&u, buf, len, &none, &uwhy);
    int too_deep = whole < 0 && strcmp(uwhy, "nesting too deep") == 0;
    if (n < 0) {
        FZ_CHECK(whole < 0);
        return 0;
    }
    if (!done) {
        FZ_CHECK(whole == 0 || too_deep);
        return 0;
    }
    FZ_CHECK(whole == (ssize_t)s.pos + n || too_deep);
    return s.pos + (size_t)n;
}

/* fn(a copy of buf[0..len) in a buffer of exactly len bytes). */
static void
call_exact(fz_frame_fn *fn, const char *buf, size_t len)
{
    char *copy = xmalloc(len);
    memcpy(copy, buf, len);
    fn(copy, len);
    free(copy);
}

void
fz_stream(const uint8_t *data, size_t size, const struct fp_limits *daemon,
          fz_frame_fn *frame, fz_frame_fn *tail, int skips)
{
    struct fp_limits tight;
    const struct fp_limits *lim = daemon;

    if (size < FZ_CTL)
        return;
    size_t split = (size_t)data[0] << 8 | data[1];
    size_t step = (size_t)data[2] + 1;
    if (data[3] & 0x80) {
        tight.max_bytes = 1 + (size_t)(data[3] & 0x7f) * 3;
        tight.max_objects = 1 + (size_t)(data[4] & 0x1f);
        tight.max_depth = (unsigned)(data[4] >> 5) * 6;
        lim = &tight;
    }

    const char *p = (const char *)data + FZ_CTL;
    size_t left = size - FZ_CTL;
    while (left > 0) {
        const char *why1, *why2;
        ssize_t n = scan_fresh(p, left, lim, &why1);
        /* Cuts past a complete frame add nothing: keep them within it. */
        size_t span = n > 0 ? (size_t)n : left;

        /* Each result first: the order in which a call's arguments are
         * evaluated is unspecified (gcc reads why2 before the scan sets it). */
        ssize_t n2 = scan_split(p, left, split % (span + 1), lim, &why2);
        check_same(n, why1, n2, why2);
        n2 = scan_drip(p, left, step, lim, &why2);
        check_same(n, why1, n2, why2);
        check_msgpack_c(p, left);
        if (n <= 0) {
            if (tail != NULL)
                call_exact(tail, p, left);
            size_t skipped = 0;
            if (n < 0 && skips && (strcmp(why1, "frame too large") == 0
                                   || strcmp(why1, "too many objects") == 0))
                skipped = skip_refused(p, left, lim, step);
            if (skipped == 0)
                break;
            p += skipped;
            left -= skipped;
            continue;
        }

        struct fp_reader r;
        const char *raw;
        size_t rawlen;
        fp_reader_init(&r, p, (size_t)n);
        FZ_CHECK(fp_read_skip(&r, &raw, &rawlen) == 0);
        FZ_CHECK(raw == p && rawlen == (size_t)n && r.p == r.end);
        call_exact(frame, p, (size_t)n);
        p += n;
        left -= (size_t)n;
    }
}
