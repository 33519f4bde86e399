/* check_frame.c — tests for the msgpack frame scanner and reader. */
#include "config.h"
#include <check.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/buf.h"
#include "codec/frame.h"

static const struct fp_limits LIM = {
    .max_bytes = 1u << 24, .max_objects = 1u << 22, .max_depth = FP_MAX_DEPTH,
};

/* One-shot scan of a whole buffer with a fresh scanner. */
static ssize_t
scan(const void *buf, size_t len, const struct fp_limits *lim,
     const char **why)
{
    struct fp_scanner s;
    fp_scanner_reset(&s);
    *why = NULL;
    return fp_scan(&s, buf, len, lim, why);
}

/* Scan must report exactly `len` for a complete frame. */
static void
assert_frame(const void *buf, size_t len)
{
    const char *why;
    ssize_t n = scan(buf, len, &LIM, &why);
    ck_assert_msg(n == (ssize_t)len, "scan %zd, want %zu (%s)", n, len,
                  why ? why : "-");
}

static void
assert_refused(const void *buf, size_t len, const struct fp_limits *lim,
               const char *msg)
{
    const char *why;
    ck_assert_int_eq(scan(buf, len, lim, &why), -1);
    ck_assert_str_eq(why, msg);
}

/* Feed buf one more byte at a time into one scanner: 0 until the last byte,
 * then exactly len. */
static void
assert_progressive(const char *buf, size_t len)
{
    struct fp_scanner s;
    const char *why = NULL;
    fp_scanner_reset(&s);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(fp_scan(&s, buf, i, &LIM, &why) == 0,
                      "prefix %zu of %zu not 0 (%s)", i, len, why ? why : "-");
    ck_assert_int_eq(fp_scan(&s, buf, len, &LIM, &why), (ssize_t)len);
}

/* A nested value holding every msgpack format. */
static void
pack_everything(msgpack_packer *pk)
{
    static char big[70000];
    memset(big, 'x', sizeof big);
    msgpack_pack_array(pk, 3);
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "small", 5);
    msgpack_pack_array(pk, 20);
    msgpack_pack_int(pk, 5);                    /* positive fixint */
    msgpack_pack_int(pk, -5);                   /* negative fixint */
    msgpack_pack_nil(pk);
    msgpack_pack_false(pk);
    msgpack_pack_true(pk);
    msgpack_pack_fix_uint8(pk, 200);
    msgpack_pack_fix_uint16(pk, 60000);
    msgpack_pack_fix_uint32(pk, 4000000000u);
    msgpack_pack_fix_uint64(pk, UINT64_MAX);
    msgpack_pack_fix_int8(pk, -100);
    msgpack_pack_fix_int16(pk, -30000);
    msgpack_pack_fix_int32(pk, -2000000000);
    msgpack_pack_fix_int64(pk, INT64_MIN);
    msgpack_pack_float(pk, 1.5f);
    msgpack_pack_double(pk, 2.25);
    msgpack_pack_bin(pk, 3);                    /* bin8 */
    msgpack_pack_bin_body(pk, "abc", 3);
    msgpack_pack_bin(pk, 300);                  /* bin16 */
    msgpack_pack_bin_body(pk, big, 300);
    msgpack_pack_bin(pk, 70000);                /* bin32 */
    msgpack_pack_bin_body(pk, big, 70000);
    msgpack_pack_array(pk, 9);
    static const size_t ext[] = { 1, 2, 4, 8, 16, 3, 300, 70000 };
    for (size_t i = 0; i < 8; i++) {            /* fixext1..16, ext8/16/32 */
        msgpack_pack_ext(pk, ext[i], 7);
        msgpack_pack_ext_body(pk, big, ext[i]);
    }
    msgpack_pack_map(pk, 0);
    msgpack_pack_str(pk, 40);                   /* str8 */
    msgpack_pack_str_body(pk, big, 40);
    msgpack_pack_map(pk, 3);
    msgpack_pack_str(pk, 300);                  /* str16 */
    msgpack_pack_str_body(pk, big, 300);
    msgpack_pack_array(pk, 16);                 /* array16 */
    for (int i = 0; i < 16; i++)
        msgpack_pack_int(pk, i);
    msgpack_pack_str(pk, 70000);                /* str32 */
    msgpack_pack_str_body(pk, big, 70000);
    msgpack_pack_map(pk, 16);                   /* map16 */
    for (int i = 0; i < 16; i++) {
        msgpack_pack_int(pk, i);
        msgpack_pack_nil(pk);
    }
    msgpack_pack_int(pk, 1);
    msgpack_pack_array(pk, 0);
}

/* array32 [nil] and map32 {1: nil}, which msgpack-c never emits itself. */
static const char A32[] = "\xdd\x00\x00\x00\x01\xc0";
static const char M32[] = "\xdf\x00\x00\x00\x01\x01\xc0";

/* ---- scanner: formats ------------------------------------------------ */

START_TEST(scan_accepts_each_scalar_format)
{
    static const struct { const char *b; size_t n; } v[] = {
        { "\x00", 1 }, { "\x7f", 1 }, { "\xe0", 1 }, { "\xff", 1 },
        { "\xc0", 1 }, { "\xc2", 1 }, { "\xc3", 1 },
        { "\xcc\x01", 2 }, { "\xcd\x01\x02", 3 }, { "\xce\x01\x02\x03\x04", 5 },
        { "\xcf\x01\x02\x03\x04\x05\x06\x07\x08", 9 },
        { "\xd0\x80", 2 }, { "\xd1\x80\x00", 3 }, { "\xd2\x80\0\0\0", 5 },
        { "\xd3\x80\0\0\0\0\0\0\0", 9 },
        { "\xca\x3f\xc0\0\0", 5 }, { "\xcb\x40\x02\0\0\0\0\0\0", 9 },
        { "\xa3" "abc", 4 }, { "\xd9\x02" "ab", 4 }, { "\xda\x00\x01" "a", 4 },
        { "\xdb\0\0\0\x01" "a", 6 },
        { "\xc4\x01" "a", 3 }, { "\xc5\0\x01" "a", 4 }, { "\xc6\0\0\0\x01" "a", 6 },
        { "\xd4\x01" "a", 3 }, { "\xd5\x01" "ab", 4 }, { "\xd6\x01" "abcd", 6 },
        { "\xd7\x01" "abcdefgh", 10 }, { "\xd8\x01" "abcdefghijklmnop", 18 },
        { "\xc7\x01\x05" "a", 4 }, { "\xc8\0\x01\x05" "a", 5 },
        { "\xc9\0\0\0\x01\x05" "a", 7 },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_frame(v[i].b, v[i].n);
}
END_TEST

START_TEST(scan_accepts_each_container_format)
{
    assert_frame("\x90", 1);
    assert_frame("\x80", 1);
    assert_frame("\x92\x01\x02", 3);
    assert_frame("\x81\x01\x02", 3);
    assert_frame("\xdc\x00\x02\x01\x02", 5);
    assert_frame("\xde\x00\x01\x01\x02", 5);
    assert_frame(A32, 6);
    assert_frame(M32, 7);
    assert_frame("\xdd\0\0\0\0", 5);
    assert_frame("\xdf\0\0\0\0", 5);
}
END_TEST

START_TEST(scan_accepts_packed_sample_with_every_type)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_everything(&pk);
    assert_frame(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(scan_returns_0_at_every_split_of_nested_sample)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_everything(&pk);
    msgpack_pack_array(&pk, 2);         /* array32/map32 too, by hand */
    msgpack_sbuffer_write(&sb, A32, 6);
    msgpack_sbuffer_write(&sb, M32, 7);
    /* Wrap both values in one fixarray so they form a single frame. */
    char *f = malloc(sb.size + 1);
    f[0] = (char)0x92;
    memcpy(f + 1, sb.data, sb.size);
    assert_progressive(f, sb.size + 1);
    free(f);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(scan_of_complete_frame_is_idempotent)
{
    struct fp_scanner s;
    const char *why;
    fp_scanner_reset(&s);
    ck_assert_int_eq(fp_scan(&s, "\x92\x01\x02", 3, &LIM, &why), 3);
    ck_assert_int_eq(fp_scan(&s, "\x92\x01\x02", 3, &LIM, &why), 3);
}
END_TEST

START_TEST(scan_back_to_back_frames_returns_first_length)
{
    /* ["ab", 1] then {1: 2}; and a scalar frame followed by garbage. */
    assert_frame("\x92\xa2" "ab\x01", 5);
    const char *why;
    ck_assert_int_eq(scan("\x92\xa2" "ab\x01\x81\x01\x02", 8, &LIM, &why), 5);
    ck_assert_int_eq(scan("\x05\xc1\xc1", 3, &LIM, &why), 1);
    ck_assert_int_eq(scan("\xa1x\xdb\xff\xff\xff\xff", 7, &LIM, &why), 2);
}
END_TEST

START_TEST(scan_truncated_input_stays_incomplete)
{
    static const struct { const char *b; size_t n; } v[] = {
        { "", 0 }, { "\x92\x01", 2 }, { "\xcd\x01", 2 }, { "\xdb\0\0", 3 },
        { "\xa5" "abc", 4 }, { "\xd8\x01" "abc", 5 }, { "\x81\x01", 2 },
        { "\xdd\0\0\0\x02\xc0", 6 }, { "\xc9\0\0\0\x01", 5 },
    };
    const char *why;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(scan(v[i].b, v[i].n, &LIM, &why), 0);
}
END_TEST

START_TEST(scan_refuses_0xc1)
{
    assert_refused("\xc1", 1, &LIM, "invalid msgpack");
    assert_refused("\x93\x01\xc1\x02", 4, &LIM, "invalid msgpack");
    assert_refused("\x81\xc1\x02", 3, &LIM, "invalid msgpack");
}
END_TEST

/* ---- scanner: limits -------------------------------------------------- */

START_TEST(scan_refuses_huge_str_at_header)
{
    assert_refused("\xdb\xff\xff\xff\xff", 5, &LIM, "frame too large");
    assert_refused("\xc6\xff\xff\xff\xff", 5, &LIM, "frame too large");
    assert_refused("\xc9\xff\xff\xff\xff\x01", 6, &LIM, "frame too large");
    assert_refused("\x92\x01\xda\xff\xff", 5,
                   &(struct fp_limits){ 1000, 100, 32 }, "frame too large");
}
END_TEST

START_TEST(scan_refuses_huge_array_at_header)
{
    const char *h = "\xdd\x10\x00\x00\x00";     /* 268M elements */
    assert_refused(h, 5, &LIM, "too many objects");
    struct fp_limits many = { 1u << 20, SIZE_MAX, 32 };
    assert_refused(h, 5, &many, "frame too large");
}
END_TEST

START_TEST(scan_counts_map_entries_twice)
{
    struct fp_limits l = { 1000, 9, 32 };
    /* {1:1, 2:2, 3:3, 4:4} = 9 objects: ok.  5 pairs = 11: refused. */
    const char *why;
    ck_assert_int_eq(scan("\x84\x01\x01\x02\x02\x03\x03\x04\x04", 9, &l, &why),
                     9);
    assert_refused("\x85", 1, &l, "too many objects");
    assert_refused("\xdf\x00\x00\x00\x05", 5, &l, "too many objects");
    /* Byte bound: n pairs need at least 2n more bytes. */
    struct fp_limits b = { 8, 100, 32 };
    assert_refused("\x84", 1, &b, "frame too large");
}
END_TEST

static void
nested(char *buf, size_t levels, char leaf)
{
    memset(buf, 0x91, levels);
    buf[levels] = leaf;
}

START_TEST(scan_accepts_depth_32)
{
    char b[40];
    nested(b, 32, (char)0xc0);
    assert_frame(b, 33);
    nested(b, 31, (char)0x90);          /* 32 containers, innermost empty */
    assert_frame(b, 32);
}
END_TEST

START_TEST(scan_refuses_depth_33)
{
    char b[40];
    nested(b, 33, (char)0xc0);
    assert_refused(b, 34, &LIM, "nesting too deep");
    nested(b, 32, (char)0x90);
    assert_refused(b, 33, &LIM, "nesting too deep");
    /* Refused as soon as the 33rd header is seen. */
    nested(b, 33, (char)0xc0);
    assert_refused(b, 33, &LIM, "nesting too deep");
    struct fp_limits d1 = { 100, 100, 1 };
    assert_refused("\x91\x91\xc0", 3, &d1, "nesting too deep");
}
END_TEST

START_TEST(scan_refuses_depth_100000_quickly)
{
    size_t n = 100000;
    char *b = malloc(n + 1);
    nested(b, n, (char)0xc0);
    assert_refused(b, n + 1, &LIM, "nesting too deep");
    free(b);
}
END_TEST

static char *
million_nils(size_t *len)
{
    size_t n = 1000000;
    char *b = malloc(n + 5);
    memcpy(b, "\xdd\x00\x0f\x42\x40", 5);       /* array32, 1,000,000 */
    memset(b + 5, 0xc0, n);
    *len = n + 5;
    return b;
}

START_TEST(scan_million_nils_refused_by_max_objects)
{
    size_t len;
    char *b = million_nils(&len);
    struct fp_limits l = { 1u << 24, 1000, 32 };
    assert_refused(b, len, &l, "too many objects");
    assert_refused(b, 5, &l, "too many objects");       /* at the header */
    free(b);
}
END_TEST

START_TEST(scan_million_nils_accepted_with_large_limit)
{
    size_t len;
    char *b = million_nils(&len);
    assert_frame(b, len);
    free(b);
}
END_TEST

START_TEST(scan_byte_by_byte_is_linear)
{
    /* [nil x 200000] fed one byte more each time: quadratic rescanning
     * would need ~2*10^10 steps and time out; linear is a few ms (even
     * under the sanitizers on a busy machine). */
    size_t n = 200000, len = n + 5;
    char *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\xdd\x00\x03\x0d\x40", 5);       /* array32, 200,000 */
    memset(b + 5, 0xc0, n);
    assert_progressive(b, len);
    free(b);
}
END_TEST

START_TEST(scan_max_bytes_exact_boundary)
{
    char b[102] = "\xd9\x64";                   /* str8 of 100 bytes */
    memset(b + 2, 'y', 100);
    const char *why;
    struct fp_limits l = { 102, 10, 32 };
    ck_assert_int_eq(scan(b, 102, &l, &why), 102);
    l.max_bytes = 101;
    assert_refused(b, 102, &l, "frame too large");
    assert_refused(b, 2, &l, "frame too large");        /* at the header */

    char a[11];                                 /* [nil x 10] = 11 bytes */
    a[0] = (char)0x9a;
    memset(a + 1, 0xc0, 10);
    struct fp_limits m = { 11, 100, 32 };
    ck_assert_int_eq(scan(a, 11, &m, &why), 11);
    m.max_bytes = 10;
    assert_refused(a, 1, &m, "frame too large");
    /* Nothing fits in zero bytes; a header alone can overflow the limit. */
    m.max_bytes = 0;
    assert_refused("", 0, &m, "frame too large");
    m.max_bytes = 4;
    assert_refused("\xcb", 1, &m, "frame too large");
}
END_TEST

START_TEST(scan_max_objects_exact_boundary)
{
    struct fp_limits l = { 100, 3, 32 };
    const char *why;
    ck_assert_int_eq(scan("\x92\x01\x02", 3, &l, &why), 3);
    assert_refused("\x93\x01\x02\x03", 4, &l, "too many objects");
    ck_assert_int_eq(scan("\x91\x91\x01", 3, &l, &why), 3);
    assert_refused("\x91\x91\x91\x01", 4, &l, "too many objects");
}
END_TEST

START_TEST(scan_agrees_with_msgpack_unpack_on_lengths)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_everything(&pk);                       /* several frames in a row */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, -1);
    msgpack_pack_double(&pk, 3.5);
    msgpack_pack_str_with_body(&pk, "hello", 5);
    msgpack_pack_int64(&pk, -123456789012LL);
    msgpack_pack_uint64(&pk, 123456789012ULL);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 0);
    msgpack_sbuffer_write(&sb, A32, 6);
    msgpack_sbuffer_write(&sb, M32, 7);

    size_t off = 0, frames = 0;
    while (off < sb.size) {
        msgpack_unpacked u;
        size_t next = off;
        const char *why;
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &next),
                         MSGPACK_UNPACK_SUCCESS);
        msgpack_unpacked_destroy(&u);
        ck_assert_int_eq(scan(sb.data + off, sb.size - off, &LIM, &why),
                         (ssize_t)(next - off));
        off = next;
        frames++;
    }
    ck_assert_int_eq(frames, 7);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* ---- reader ----------------------------------------------------------- */

START_TEST(read_envelope)
{
    msgpack_sbuffer sb, inner;
    msgpack_packer pk, ik;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&inner);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_packer_init(&ik, &inner, msgpack_sbuffer_write);
    /* [0, 7, "submit", [{"a":1}, {"timeout": 1.5}]] */
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_str_with_body(&pk, "submit", 6);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "timeout", 7);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_map(&ik, 1);
    msgpack_pack_str_with_body(&ik, "a", 1);
    msgpack_pack_int(&ik, 1);

    struct fp_reader r;
    uint32_t n;
    uint64_t u;
    const char *raw;
    size_t rawlen;
    double d;
    fp_reader_init(&r, sb.data, sb.size);
    ck_assert_int_eq(fp_read_array(&r, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(fp_read_uint(&r, &u), 0);
    ck_assert_uint_eq(u, 0);
    ck_assert_int_eq(fp_read_uint(&r, &u), 0);
    ck_assert_uint_eq(u, 7);
    ck_assert_int_eq(fp_read_str_eq(&r, "submit"), 1);
    ck_assert_int_eq(fp_read_array(&r, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(fp_read_skip(&r, &raw, &rawlen), 0);
    ck_assert_uint_eq(rawlen, inner.size);
    ck_assert_mem_eq(raw, inner.data, rawlen);
    ck_assert_int_eq(fp_read_map(&r, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(fp_read_str_eq(&r, "timeout"), 1);
    ck_assert_int_eq(fp_read_double(&r, &d), 0);
    ck_assert_double_eq(d, 1.5);
    ck_assert_ptr_eq(r.p, r.end);
    ck_assert_int_eq(fp_reader_type(&r), FP_T_INVALID);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&inner);
}
END_TEST

START_TEST(read_skip_returns_exact_raw_bytes_of_nested_value)
{
    /* [1, {"k": [nil, "xy", bin"z"]}, 2] */
    static const char b[] = "\x93\x01\x81\xa1k\x93\xc0\xa2xy\xc4\x01z\x02";
    struct fp_reader r;
    uint32_t n;
    int64_t i;
    const char *raw;
    size_t rawlen;
    fp_reader_init(&r, b, sizeof b - 1);
    ck_assert_int_eq(fp_read_array(&r, &n), 0);
    ck_assert_int_eq(fp_read_int(&r, &i), 0);
    ck_assert_int_eq(fp_read_skip(&r, &raw, &rawlen), 0);
    ck_assert_ptr_eq(raw, b + 2);
    ck_assert_uint_eq(rawlen, 11);
    ck_assert_int_eq(fp_read_int(&r, &i), 0);
    ck_assert_int_eq(i, 2);
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), -1);     /* at end */
    fp_reader_init(&r, b, sizeof b - 1);
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), 0);
    ck_assert_ptr_eq(r.p, r.end);
}
END_TEST

START_TEST(read_type_mismatch_leaves_cursor_unchanged)
{
    static const char *vals[] = { "\xc0", "\xc3", "\x05", "\xff", "\xcb" "\0\0\0\0\0\0\0\0",
                                  "\xa1x", "\xc4\x01x", "\x90", "\x80", "\xd4\x01x" };
    static const size_t lens[] = { 1, 1, 1, 1, 9, 2, 3, 1, 1, 3 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        struct fp_reader r;
        fp_reader_init(&r, vals[k], lens[k]);
        int t = fp_reader_type(&r), bv;
        uint64_t u;
        int64_t i;
        double d;
        const char *s;
        uint32_t n;
        if (t != FP_T_NIL) ck_assert_int_eq(fp_read_nil(&r), -1);
        if (t != FP_T_BOOL) ck_assert_int_eq(fp_read_bool(&r, &bv), -1);
        if (t != FP_T_UINT && t != FP_T_INT) {
            ck_assert_int_eq(fp_read_uint(&r, &u), -1);
            ck_assert_int_eq(fp_read_int(&r, &i), -1);
            if (t != FP_T_FLOAT)
                ck_assert_int_eq(fp_read_double(&r, &d), -1);
        }
        if (t != FP_T_STR) {
            ck_assert_int_eq(fp_read_str(&r, &s, &n), -1);
            ck_assert_int_eq(fp_read_str_eq(&r, "x"), 0);
        }
        if (t != FP_T_ARRAY) ck_assert_int_eq(fp_read_array(&r, &n), -1);
        if (t != FP_T_MAP) ck_assert_int_eq(fp_read_map(&r, &n), -1);
        ck_assert_ptr_eq(r.p, vals[k]);
    }
}
END_TEST

START_TEST(read_reports_types_by_encoding)
{
    static const struct { const char *b; int t; } v[] = {
        { "\xc0", FP_T_NIL }, { "\xc2", FP_T_BOOL }, { "\x01", FP_T_UINT },
        { "\xcf", FP_T_UINT }, { "\xff", FP_T_INT }, { "\xd0", FP_T_INT },
        { "\xca", FP_T_FLOAT }, { "\xa0", FP_T_STR }, { "\xdb", FP_T_STR },
        { "\xc6", FP_T_BIN }, { "\x9f", FP_T_ARRAY }, { "\xdd", FP_T_ARRAY },
        { "\x8f", FP_T_MAP }, { "\xde", FP_T_MAP }, { "\xd8", FP_T_EXT },
        { "\xc7", FP_T_EXT }, { "\xc1", FP_T_INVALID },
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        struct fp_reader r;
        fp_reader_init(&r, v[k].b, 1);
        ck_assert_int_eq(fp_reader_type(&r), v[k].t);
    }
}
END_TEST

START_TEST(read_past_end_fails)
{
    struct fp_reader r;
    uint64_t u;
    const char *s;
    uint32_t n;
    double d;
    fp_reader_init(&r, "", 0);
    ck_assert_int_eq(fp_read_nil(&r), -1);
    ck_assert_int_eq(fp_read_uint(&r, &u), -1);
    ck_assert_int_eq(fp_reader_type(&r), FP_T_INVALID);
    fp_reader_init(&r, "\xce\x01\x02", 3);          /* uint32, 2 of 4 */
    ck_assert_int_eq(fp_read_uint(&r, &u), -1);
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), -1);
    fp_reader_init(&r, "\xa5" "abc", 4);            /* str of 5, 3 present */
    ck_assert_int_eq(fp_read_str(&r, &s, &n), -1);
    ck_assert_int_eq(fp_read_str_eq(&r, "abc"), 0);
    fp_reader_init(&r, "\xdb\xff\xff\xff\xff" "a", 6);
    ck_assert_int_eq(fp_read_str(&r, &s, &n), -1);
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), -1);
    fp_reader_init(&r, "\xcb\x00", 2);
    ck_assert_int_eq(fp_read_double(&r, &d), -1);
    fp_reader_init(&r, "\xdc\x00", 2);              /* array16, short header */
    ck_assert_int_eq(fp_read_array(&r, &n), -1);
    fp_reader_init(&r, "\x92\x01", 2);              /* element missing */
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), -1);
    ck_assert_ptr_eq(r.p + 2, r.end);
}
END_TEST

START_TEST(read_uint_on_negative_fails)
{
    static const struct { const char *b; size_t n; } neg[] = {
        { "\xff", 1 }, { "\xd0\xff", 2 }, { "\xd3\xff\xff\xff\xff\xff\xff\xff\xfb", 9 },
    };
    struct fp_reader r;
    uint64_t u;
    for (size_t k = 0; k < 3; k++) {
        fp_reader_init(&r, neg[k].b, neg[k].n);
        ck_assert_int_eq(fp_read_uint(&r, &u), -1);
        ck_assert_ptr_eq(r.p, neg[k].b);
    }
    fp_reader_init(&r, "\xd1\x01\x00", 3);          /* int16 256 is fine */
    ck_assert_int_eq(fp_read_uint(&r, &u), 0);
    ck_assert_uint_eq(u, 256);
    fp_reader_init(&r, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    ck_assert_int_eq(fp_read_uint(&r, &u), 0);
    ck_assert_uint_eq(u, UINT64_MAX);
}
END_TEST

START_TEST(read_int_on_uint64_max_fails)
{
    struct fp_reader r;
    int64_t i;
    fp_reader_init(&r, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    ck_assert_int_eq(fp_read_int(&r, &i), -1);
    fp_reader_init(&r, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
    ck_assert_int_eq(fp_read_int(&r, &i), 0);
    ck_assert_int_eq(i, INT64_MAX);
    fp_reader_init(&r, "\xd3\x80\0\0\0\0\0\0\0", 9);
    ck_assert_int_eq(fp_read_int(&r, &i), 0);
    ck_assert_int_eq(i, INT64_MIN);
    fp_reader_init(&r, "\xd1\x80\x00", 3);
    ck_assert_int_eq(fp_read_int(&r, &i), 0);
    ck_assert_int_eq(i, -32768);
    fp_reader_init(&r, "\xe0", 1);
    ck_assert_int_eq(fp_read_int(&r, &i), 0);
    ck_assert_int_eq(i, -32);
}
END_TEST

START_TEST(read_double_accepts_ints_and_floats)
{
    struct fp_reader r;
    double d;
    fp_reader_init(&r, "\x07", 1);
    ck_assert_int_eq(fp_read_double(&r, &d), 0);
    ck_assert_double_eq(d, 7.0);
    fp_reader_init(&r, "\xd0\xfd", 2);
    ck_assert_int_eq(fp_read_double(&r, &d), 0);
    ck_assert_double_eq(d, -3.0);
    fp_reader_init(&r, "\xcd\x01\x00", 3);
    ck_assert_int_eq(fp_read_double(&r, &d), 0);
    ck_assert_double_eq(d, 256.0);
    fp_reader_init(&r, "\xca\x3e\x80\x00\x00", 5);  /* float32 0.25 */
    ck_assert_int_eq(fp_read_double(&r, &d), 0);
    ck_assert_double_eq(d, 0.25);
    ck_assert_ptr_eq(r.p, r.end);
}
END_TEST

START_TEST(read_skip_on_deep_unscanned_bytes_fails_cleanly)
{
    size_t n = 100000;
    char *b = malloc(n + 1);
    nested(b, n, (char)0xc0);
    struct fp_reader r;
    fp_reader_init(&r, b, n + 1);
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), -1);
    ck_assert_ptr_eq(r.p, b);
    fp_reader_init(&r, b + n - FP_SCAN_STACK, FP_SCAN_STACK + 1);
    ck_assert_int_eq(fp_read_skip(&r, NULL, NULL), 0);      /* stack-deep ok */
    free(b);
}
END_TEST

START_TEST(read_str_eq_consumes_only_on_match)
{
    struct fp_reader r;
    const char *s;
    uint32_t n;
    fp_reader_init(&r, "\xa3" "abc", 4);
    ck_assert_int_eq(fp_read_str_eq(&r, "abd"), 0);
    ck_assert_int_eq(fp_read_str_eq(&r, "ab"), 0);
    ck_assert_int_eq(fp_read_str_eq(&r, "abcd"), 0);
    ck_assert_int_eq(fp_read_str(&r, &s, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(s, "abc", 3);
    fp_reader_init(&r, "\xa3" "abc", 4);
    ck_assert_int_eq(fp_read_str_eq(&r, "abc"), 1);
    ck_assert_ptr_eq(r.p, r.end);
}
END_TEST

START_TEST(read_nil_and_bool)
{
    struct fp_reader r;
    int v = -1;
    fp_reader_init(&r, "\xc0\xc3\xc2", 3);
    ck_assert_int_eq(fp_read_nil(&r), 0);
    ck_assert_int_eq(fp_read_bool(&r, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(fp_read_bool(&r, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_ptr_eq(r.p, r.end);
}
END_TEST

/* ---- skipper ----------------------------------------------------------- */

/* Skip the frame at the head of stream[0..len), as a reader would that
 * receives it `chunk` bytes at a time and keeps what fp_skip leaves (a cut
 * header): returns the bytes it took up to the frame's end, or -1. */
static ssize_t
skip_in_chunks(struct fp_skipper *k, const char *stream, size_t len, size_t chunk)
{
    size_t taken = 0, have = 0;    /* stream[taken..have) is buffered */
    int done = 0;

    while (!done) {
        if (have == len && taken == have)
            return -1;              /* the stream ended inside the frame */
        have = have + chunk < len ? have + chunk : len;
        ssize_t n = fp_skip(k, stream + taken, have - taken, &done);
        if (n < 0)
            return -1;
        taken += (size_t)n;
        ck_assert_uint_le(taken, have);
    }
    return (ssize_t)taken;
}

/* From a fresh start, the skipper finds exactly where a frame holding every
 * format ends, however the bytes come, and leaves the next frame alone. */
START_TEST(skip_finds_the_end_of_every_format_in_any_pieces)
{
    static const size_t chunks[] = { 1, 2, 3, 7, 100, 4096, 1u << 20 };
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct fp_scanner fresh;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_everything(&pk);
    size_t first = sb.size;
    msgpack_sbuffer_write(&sb, "\x91\x01", 2);
    fp_scanner_reset(&fresh);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct fp_skipper k;
        fp_skip_start(&k, &fresh);
        ck_assert_int_eq(skip_in_chunks(&k, sb.data, sb.size, chunks[i]),
                         (ssize_t)first);
    }
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* A request over the limits, then another: fp_scan refuses the first
 * part-way (after accepting some of it), the skipper drops the rest, and
 * the next request scans whole. */
START_TEST(skip_resumes_where_scan_refused_the_frame)
{
    static const struct {
        struct fp_limits lim;
        const char *why;
    } cases[] = {
        { { 100, 1000, 8 }, "frame too large" },
        { { 1u << 20, 6, 8 }, "too many objects" },
    };
    char req[512];
    size_t n = 0;

    /* [0, 7, "submit", [["aaa...", "bbb..."], nil, nil]] */
    memcpy(req + n, "\x94\x00\x07\xa6submit\x91\x93\x92", 13);
    n += 13;
    for (int s = 0; s < 2; s++) {
        req[n++] = (char)0xd9;
        req[n++] = 60;
        memset(req + n, 'a' + s, 60);
        n += 60;
    }
    req[n++] = (char)0xc0;
    req[n++] = (char)0xc0;
    size_t first = n;
    memcpy(req + n, "\x94\x00\x08\xa6status\x90", 11);
    n += 11;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fp_scanner sc;
        struct fp_skipper k;
        const char *why = NULL;

        fp_scanner_reset(&sc);
        ck_assert_int_eq(fp_scan(&sc, req, n, &cases[i].lim, &why), -1);
        ck_assert_str_eq(why, cases[i].why);
        ck_assert_uint_gt(sc.pos, 0);
        ck_assert_uint_gt(sc.depth, 0);
        for (size_t chunk = 1; chunk <= 64; chunk *= 4) {
            fp_skip_start(&k, &sc);
            ssize_t rest = skip_in_chunks(&k, req + sc.pos, n - sc.pos, chunk);
            ck_assert_int_eq(rest, (ssize_t)(first - sc.pos));
        }
        struct fp_scanner next;
        fp_scanner_reset(&next);
        ck_assert_int_eq(fp_scan(&next, req + first, n - first, &LIM, &why), 11);
    }
}
END_TEST

/* A str declared 4 GiB long is skipped as its bytes come, holding none. */
START_TEST(skip_steps_over_a_huge_declared_body_without_holding_it)
{
    static char block[1 << 16];
    struct fp_scanner sc;
    struct fp_skipper k;
    int done = 0;

    fp_scanner_reset(&sc);
    fp_skip_start(&k, &sc);
    ck_assert_int_eq(fp_skip(&k, "\xdb\xff\xff\xff\xff", 5, &done), 5);
    ck_assert(!done);
    uint64_t left = 0xffffffffu;
    while (left > sizeof block) {
        ck_assert_int_eq(fp_skip(&k, block, sizeof block, &done), (ssize_t)sizeof block);
        ck_assert(!done);
        left -= sizeof block;
    }
    ck_assert_int_eq(fp_skip(&k, block, sizeof block, &done), (ssize_t)left);
    ck_assert(done);
}
END_TEST

START_TEST(skip_refuses_what_is_not_msgpack)
{
    struct fp_scanner sc;
    struct fp_skipper k;
    int done;

    fp_scanner_reset(&sc);
    fp_skip_start(&k, &sc);
    ck_assert_int_eq(fp_skip(&k, "\x92\x01\xc1", 3, &done), -1);
}
END_TEST

/* Deeper than its stack, it cannot follow the frame: refused, not
 * overflowed. */
START_TEST(skip_refuses_nesting_beyond_its_stack)
{
    char deep[FP_SKIP_STACK + 2];
    struct fp_scanner sc;
    struct fp_skipper k;
    int done;

    memset(deep, 0x91, sizeof deep);
    fp_scanner_reset(&sc);
    fp_skip_start(&k, &sc);
    ck_assert_int_eq(fp_skip(&k, deep, sizeof deep, &done), -1);
    /* One level less fits (the outermost value takes the first level). */
    deep[FP_SKIP_STACK - 1] = (char)0xc0;
    fp_skip_start(&k, &sc);
    ck_assert_int_eq(fp_skip(&k, deep, FP_SKIP_STACK, &done), FP_SKIP_STACK);
    ck_assert(done);
}
END_TEST

/* ---- buf ---------------------------------------------------------------- */

/* fp_buf_printf appends text of any length, after bytes already there
 * (and after bytes consumed from the front). */
START_TEST(buf_printf_grows_to_fit_any_length)
{
    static char big[100000];
    struct fp_buf b = FP_BUF_INIT;

    memset(big, 'z', sizeof big - 1);
    ck_assert_int_eq(fp_buf_printf(&b, "%s-%d", "head", 42), 0);
    fp_buf_consume(&b, 2);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(fp_buf_printf(&b, ",%04d", i), 0);
    ck_assert_int_eq(fp_buf_printf(&b, "[%s]", big), 0);
    ck_assert_uint_eq(b.len, 5 + 1000 * 5 + 2 + sizeof big - 1);
    ck_assert_int_eq(memcmp(fp_buf_head(&b), "ad-42,0000,0001", 15), 0);
    ck_assert_int_eq(memcmp(fp_buf_head(&b) + 5 + 999 * 5, ",0999[zzz", 9), 0);
    ck_assert_int_eq(fp_buf_head(&b)[b.len - 1], ']');
    fp_buf_free(&b);
}
END_TEST

static Suite *
frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("scan");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, scan_accepts_each_scalar_format);
    tcase_add_test(tc, scan_accepts_each_container_format);
    tcase_add_test(tc, scan_accepts_packed_sample_with_every_type);
    tcase_add_test(tc, scan_returns_0_at_every_split_of_nested_sample);
    tcase_add_test(tc, scan_of_complete_frame_is_idempotent);
    tcase_add_test(tc, scan_back_to_back_frames_returns_first_length);
    tcase_add_test(tc, scan_truncated_input_stays_incomplete);
    tcase_add_test(tc, scan_refuses_0xc1);
    tcase_add_test(tc, scan_refuses_huge_str_at_header);
    tcase_add_test(tc, scan_refuses_huge_array_at_header);
    tcase_add_test(tc, scan_counts_map_entries_twice);
    tcase_add_test(tc, scan_accepts_depth_32);
    tcase_add_test(tc, scan_refuses_depth_33);
    tcase_add_test(tc, scan_refuses_depth_100000_quickly);
    tcase_add_test(tc, scan_million_nils_refused_by_max_objects);
    tcase_add_test(tc, scan_million_nils_accepted_with_large_limit);
    tcase_add_test(tc, scan_byte_by_byte_is_linear);
    tcase_add_test(tc, scan_max_bytes_exact_boundary);
    tcase_add_test(tc, scan_max_objects_exact_boundary);
    tcase_add_test(tc, scan_agrees_with_msgpack_unpack_on_lengths);
    suite_add_tcase(s, tc);

    tc = tcase_create("reader");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, read_envelope);
    tcase_add_test(tc, read_skip_returns_exact_raw_bytes_of_nested_value);
    tcase_add_test(tc, read_type_mismatch_leaves_cursor_unchanged);
    tcase_add_test(tc, read_reports_types_by_encoding);
    tcase_add_test(tc, read_past_end_fails);
    tcase_add_test(tc, read_uint_on_negative_fails);
    tcase_add_test(tc, read_int_on_uint64_max_fails);
    tcase_add_test(tc, read_double_accepts_ints_and_floats);
    tcase_add_test(tc, read_skip_on_deep_unscanned_bytes_fails_cleanly);
    tcase_add_test(tc, read_str_eq_consumes_only_on_match);
    tcase_add_test(tc, read_nil_and_bool);
    suite_add_tcase(s, tc);

    tc = tcase_create("skip");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, skip_finds_the_end_of_every_format_in_any_pieces);
    tcase_add_test(tc, skip_resumes_where_scan_refused_the_frame);
    tcase_add_test(tc, skip_steps_over_a_huge_declared_body_without_holding_it);
    tcase_add_test(tc, skip_refuses_what_is_not_msgpack);
    tcase_add_test(tc, skip_refuses_nesting_beyond_its_stack);
    tcase_add_test(tc, buf_printf_grows_to_fit_any_length);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
