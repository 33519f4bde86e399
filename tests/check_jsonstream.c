/* check_jsonstream.c — the streamed JSON <-> msgpack conversions
 * (fp_json_text_to_buf, fp_json_write_msgpack) and base64 (b64.h): each
 * mapping rule both ways, each error, and equivalence with the jansson-tree
 * path (fp_json_pack / fp_json_from_msgpack + json_dumps) on the fuzz
 * corpus, tables of edge cases and generated input. */
#include "config.h"
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <sodium.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "common/b64.h"
#include "common/b64_simd.h"
#include "common/jsonmp.h"
#include "common/jsonmp_int.h"

/* ---- the two paths ------------------------------------------------------ */

struct result {
    int    rc;
    char  *bytes;       /* msgpack or JSON text (malloc'ed) */
    size_t len;
    char   err[256];
};

static void
result_free(struct result *r)
{
    free(r->bytes);
    r->bytes = NULL;
}

/* JSON text -> msgpack through jansson's tree (the reference). */
static void
tree_pack(const char *text, size_t len, struct result *r)
{
    struct fp_buf b = FP_BUF_INIT;
    msgpack_packer pk;

    memset(r, 0, sizeof *r);
    msgpack_packer_init(&pk, &b, fp_buf_pack_write);
    r->rc = fp_json_text_pack_tree(text, len, &pk, r->err, sizeof r->err);
    r->len = b.len;
    r->bytes = malloc(b.len + 1);
    if (b.len > 0)          /* an empty buffer has no bytes to point at */
        memcpy(r->bytes, fp_buf_head(&b), b.len);
    fp_buf_free(&b);
}

/* JSON text -> msgpack, streamed; out starts with a byte that must stay. */
static void
stream_pack(const char *text, size_t len, struct result *r)
{
    struct fp_buf b = FP_BUF_INIT;

    memset(r, 0, sizeof *r);
    fp_buf_append(&b, "\x7f", 1);
    r->rc = fp_json_text_to_buf(text, len, &b, r->err, sizeof r->err);
    ck_assert_msg(b.len >= 1 && fp_buf_head(&b)[0] == 0x7f,
                  "the bytes before were touched");
    if (r->rc < 0)
        ck_assert_uint_eq(b.len, 1);
    r->len = b.len - 1;
    r->bytes = malloc(r->len + 1);
    memcpy(r->bytes, fp_buf_head(&b) + 1, r->len);
    fp_buf_free(&b);
}

static size_t
style_flags(enum fp_json_style style)
{
    return style == FP_JSON_SPACED ? (JSON_INDENT(0) | JSON_PRESERVE_ORDER
                                      | JSON_ENCODE_ANY)
                                   : (JSON_COMPACT | JSON_ENCODE_ANY);
}

static void
tree_write(const char *data, size_t len, enum fp_json_style style,
           struct result *r)
{
    memset(r, 0, sizeof *r);
    json_t *v = fp_json_from_msgpack(data, len, r->err, sizeof r->err);
    if (v == NULL) {
        r->rc = -1;
        return;
    }
    r->bytes = json_dumps(v, style_flags(style));
    json_decref(v);
    ck_assert_ptr_nonnull(r->bytes);
    r->len = strlen(r->bytes);
}

static void
stream_write(const char *data, size_t len, enum fp_json_style style,
             struct result *r)
{
    struct fp_buf b = FP_BUF_INIT;

    memset(r, 0, sizeof *r);
    fp_buf_append(&b, "#", 1);
    r->rc = fp_json_write_msgpack(&b, data, len, style, r->err, sizeof r->err);
    ck_assert(b.len >= 1 && fp_buf_head(&b)[0] == '#');
    if (r->rc < 0)
        ck_assert_uint_eq(b.len, 1);
    r->len = b.len - 1;
    r->bytes = malloc(r->len + 1);
    memcpy(r->bytes, fp_buf_head(&b) + 1, r->len);
    r->bytes[r->len] = '\0';
    fp_buf_free(&b);
}

static void
assert_same(const struct result *a, const struct result *b, const char *what,
            const char *in, size_t inlen)
{
    ck_assert_msg(a->rc == b->rc, "%s: rc %d vs %d for \"%.*s\" (%s / %s)",
                  what, a->rc, b->rc, (int)inlen, in, a->err, b->err);
    if (a->rc < 0)
        ck_assert_msg(strcmp(a->err, b->err) == 0,
                      "%s: message \"%s\" vs \"%s\" for \"%.*s\"", what,
                      a->err, b->err, (int)inlen, in);
    else
        ck_assert_msg(a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0,
                      "%s: different output for \"%.*s\"", what, (int)inlen, in);
}

/* Both directions agree with the tree path on JSON text; returns whether
 * the streamed parser itself vouched for it (no fallback). */
static int
check_text(const char *text, size_t len)
{
    struct result t, s;
    tree_pack(text, len, &t);
    stream_pack(text, len, &s);
    assert_same(&t, &s, "text", text, len);

    struct fp_buf raw = FP_BUF_INIT;
    int vouched = fp_json_stream_pack(text, len, &raw) == 0;
    if (vouched)
        ck_assert_msg(t.rc == 0 && raw.len == t.len
                      && memcmp(fp_buf_head(&raw), t.bytes, t.len) == 0,
                      "the streamed parser vouched wrongly for \"%.*s\"",
                      (int)len, text);
    else
        ck_assert_uint_eq(raw.len, 0);
    fp_buf_free(&raw);

    if (t.rc == 0)      /* and its msgpack back to text, both styles */
        for (int st = 0; st < 2; st++) {
            struct result a, b;
            tree_write(t.bytes, t.len, (enum fp_json_style)st, &a);
            stream_write(t.bytes, t.len, (enum fp_json_style)st, &b);
            assert_same(&a, &b, "back to text", text, len);
            result_free(&a);
            result_free(&b);
        }
    result_free(&t);
    result_free(&s);
    return vouched;
}

static void
check_msgpack(const char *data, size_t len)
{
    for (int st = 0; st < 2; st++) {
        struct result a, b;
        tree_write(data, len, (enum fp_json_style)st, &a);
        stream_write(data, len, (enum fp_json_style)st, &b);
        assert_same(&a, &b, "msgpack", data, len);
        result_free(&a);
        result_free(&b);
    }
}

/* ---- tables: JSON text -> msgpack --------------------------------------- */

struct pack_case {
    const char *json;
    const char *mp;     /* expected bytes, or NULL: refused */
    size_t      mplen;
    const char *why;    /* part of the message when refused */
};

#define OK(j, m) { j, m, sizeof(m) - 1, NULL }
#define NO(j, w) { j, NULL, 0, w }

static const struct pack_case pack_cases[] = {
    OK("null", "\xc0"), OK("true", "\xc3"), OK("false", "\xc2"),
    OK("0", "\x00"), OK("-0", "\x00"), OK("127", "\x7f"), OK("128", "\xcc\x80"),
    OK("-33", "\xd0\xdf"), OK("9223372036854775807",
                             "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"),
    OK("-9223372036854775808", "\xd3\x80\0\0\0\0\0\0\0"),
    OK("1.5", "\xcb\x3f\xf8\0\0\0\0\0\0"), OK("1e0", "\xcb\x3f\xf0\0\0\0\0\0\0"),
    OK("-0.0", "\xcb\x80\0\0\0\0\0\0\0"), OK("1E-400", "\xcb\0\0\0\0\0\0\0\0"),
    OK("\"\"", "\xa0"), OK("\"a\\u0000b\"", "\xa3" "a\0b"),
    OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\xa8\"\\/\b\f\n\r\t"),
    OK("\"\\u00e9\xe2\x82\xac\"", "\xa5\xc3\xa9\xe2\x82\xac"),
    OK("[]", "\x90"), OK("{}", "\x80"), OK(" [1, [2], {}] \r\n", "\x93\x01\x91\x02\x80"),
    OK("{\"b\":1,\"a\":2}", "\x82\xa1" "b\x01\xa1" "a\x02"),
    OK("{\"$bin\":\"AAEC\"}", "\xc4\x03\x00\x01\x02"),
    OK("{\"$bin\":\"\"}", "\xc4\x00"),
    OK("{\"$bin\":\"AA\\/A\"}", "\xc4\x03\x00\x0f\xc0"),
    OK("{\"$ext\":[5,\"AQID\"]}", "\xc7\x03\x05\x01\x02\x03"),
    OK("{\"$ext\":[-128,\"AA==\"]}", "\xd4\x80\x00"),
    OK("[{\"$bin\":\"AA==\"},{\"$bin\":\"AA==\",\"x\":1}]",
       "\x92\xc4\x01\x00\x82\xa4$bin\xa4" "AA==\xa1x\x01"),
    OK("{\"x\":1,\"$bin\":\"AA==\"}", "\x82\xa1x\x01\xa4$bin\xa4" "AA=="),
    OK("{\"$bin\":1,\"$ext\":2}", "\x82\xa4$bin\x01\xa4$ext\x02"),
    OK("{\"$bins\":1}", "\x81\xa5$bins\x01"),
    OK("\"\\ud83d\\ude00\"", "\xa4\xf0\x9f\x98\x80"),
    NO("", "line 1"), NO("   ", "line 1"), NO("[1,]", "line 1"),
    NO("[1] x", "end of file expected"), NO("1 2", "line 1"),
    NO("01", "line 1"), NO("1.", "line 1"), NO("-", "line 1"),
    NO("nul", "line 1"), NO("[1\v]", "line 1"), NO("\f1", "line 1"),
    NO("\"a\tb\"", "control character"), NO("\"\xff\"", "unable to decode"),
    NO("\"\xc0\x80\"", "unable to decode"), NO("\"\xed\xa0\x80\"", "unable to decode"),
    NO("\"\xf4\x90\x80\x80\"", "unable to decode"),
    NO("\"\\ud800\"", "invalid Unicode"), NO("\"\\udc00\"", "invalid Unicode"),
    NO("\"\\ud800\\u0041\"", "invalid Unicode"),
    NO("\"\\x\"", "invalid escape"), NO("{\"a\":1,\"a\":2}", "duplicate object key"),
    NO("{\"k\\u0000y\":1}", "NUL byte in object key"),
    NO("9223372036854775808", "too big integer"),
    NO("-9223372036854775809", "too big negative integer"),
    NO("1e400", "real number overflow"),
    NO("{\"$bin\":\"not base64!\"}", "\"$bin\": invalid base64"),
    NO("{\"$bin\":\"AAE\"}", "invalid base64"), NO("{\"$bin\":\"AB==\"}", "invalid base64"),
    NO("{\"$bin\":\"A===\"}", "invalid base64"), NO("{\"$bin\":\" AA=\"}", "invalid base64"),
    NO("{\"$bin\":\"AA==\\n\"}", "invalid base64"),
    NO("{\"$bin\":5}", "\"$bin\": value must be a base64 string"),
    NO("{\"$bin\":[]}", "base64 string"),
    NO("{\"$ext\":[300,\"AA==\"]}", "type 300 is outside -128..127"),
    NO("{\"$ext\":[1.0,\"AA==\"]}", "[type, \"<base64>\"]"),
    NO("{\"$ext\":[1,\"AA==\",3]}", "[type, \"<base64>\"]"),
    NO("{\"$ext\":\"AA==\"}", "[type, \"<base64>\"]"),
    NO("{\"$ext\":[1,\"A\"]}", "\"$ext\": invalid base64"),
};

START_TEST(each_text_rule_packs_as_the_table_says)
{
    const struct pack_case *c = &pack_cases[_i];
    size_t len = strlen(c->json);
    struct result r;

    check_text(c->json, len);
    stream_pack(c->json, len, &r);
    if (c->mp != NULL) {
        ck_assert_msg(r.rc == 0, "%s: %s", c->json, r.err);
        ck_assert_msg(r.len == c->mplen && memcmp(r.bytes, c->mp, r.len) == 0,
                      "%s: wrong bytes", c->json);
    } else {
        ck_assert_msg(r.rc == -1, "%s was accepted", c->json);
        ck_assert_msg(strstr(r.err, c->why) != NULL,
                      "%s: message \"%s\" lacks \"%s\"", c->json, r.err, c->why);
    }
    result_free(&r);
}
END_TEST

START_TEST(ordinary_text_is_streamed_without_the_tree)
{
    static const char *const streamed[] = {
        "{\"$bin\": \"AAECAwQ=\"}", "[1, -2, 3.5, true, null, \"x\"]",
        "{\"a\": {\"b\": [\"\\u00e9\", \"\\n\"]}, \"c\": {\"$ext\": [1, \"AA==\"]}}",
        "\"h\xc3\xa9llo\"",
    };
    for (size_t i = 0; i < sizeof streamed / sizeof streamed[0]; i++)
        ck_assert_msg(check_text(streamed[i], strlen(streamed[i])), "%s",
                      streamed[i]);
    /* A rare form is left to the tree path, with the same result. */
    ck_assert(!check_text("{\"$bin\":\"AA==\",\"x\":1}", 20));
}
END_TEST

/* A text that is only a $bin object is packed without the parser
 * (pack_bin_text); every near miss must still come out as the tree path
 * says, accepted or refused. */
START_TEST(bin_only_texts_pack_as_the_tree_says)
{
    static const char *const texts[] = {
        "{\"$bin\":\"AAECAwQ=\"}", "  {\"$bin\" : \"AAECAwQ=\" }\r\n\t",
        "{\"$bin\":\"\"}", "{\"$bin\":\"AA==\"}", "{\"$bin\":\"AAA=\"}",
        "{\"$bin\":\"+/+/\"}", "{\"$bin\":\"\\/\\/\\/\\/\"}",      /* escaped '/' */
        "{\"$bin\":\"AAECAwQ\"}", "{\"$bin\":\"AAECAwQ==\"}", "{\"$bin\":\"A===\"}",
        "{\"$bin\":\"AB==\"}", "{\"$bin\":\"AA=A\"}", "{\"$bin\":\"AA AA\"}",
        "{\"$bin\":\"AAECAwQ=\"}x", "{\"$bin\":\"AAECAwQ=\"}{}",
        "{\"$bin\":\"AAECAwQ=\",}", "{\"$bin\":\"AAECAwQ=\"", "{\"$bin\":\"AAEC",
        "{\"$bin\":AAECAwQ=}", "{\"$bin\" \"AAECAwQ=\"}", "{\"$bin\":\"AAECAwQ=\"]",
        "{\"$bi\":\"AAECAwQ=\"}", "{\"$binx\":\"AAECAwQ=\"}", "{ \"$bin\":1}",
        "{\"\\u0024bin\":\"AAECAwQ=\"}", "{\"$bin\":\"AAECAwQ=\",\"$bin\":\"AA==\"}",
        "{\"$bin\":\"\xc3\xa9\"}", "{\"$bin\":\"AAECAwQ=\"}\v", "\v{\"$bin\":\"AA==\"}",
        "[{\"$bin\":\"AAECAwQ=\"}]", "{\"$bin\":\"AAECAwQ=\\\"\"}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        check_text(texts[i], strlen(texts[i]));
    /* A big one, as a 1 MiB job is sent. */
    size_t n = 3 << 18, len = 12 + n + 2;
    char *big = malloc(len + 1);
    ck_assert_ptr_nonnull(big);
    memcpy(big, "{\"$bin\": \"", 10);
    for (size_t k = 0; k < n; k++)
        big[10 + k] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[k % 64];
    memcpy(big + 10 + n, "\"}\n", 3);
    ck_assert(check_text(big, 10 + n + 3));
    big[10 + n / 2] = '*';
    check_text(big, 10 + n + 3);
    free(big);
}
END_TEST

/* Containers nest FP_MAX_DEPTH deep at most; a $bin form is no container
 * and may sit at that depth. */
START_TEST(nesting_limits_hold_when_streamed)
{
    char buf[512];
    for (int n = FP_MAX_DEPTH - 1; n <= FP_MAX_DEPTH + 1; n++) {
        for (int form = 0; form < 3; form++) {
            size_t k = 0;
            for (int i = 0; i < n; i++)
                buf[k++] = '[';
            const char *mid = form == 0 ? "1" : form == 1 ? "{\"$bin\":\"AA==\"}"
                                                          : "{}";
            k += (size_t)sprintf(buf + k, "%s", mid);
            for (int i = 0; i < n; i++)
                buf[k++] = ']';
            check_text(buf, k);
        }
    }
    struct result r;
    memset(buf, '[', 40);
    stream_pack(buf, 40, &r);
    ck_assert_int_eq(r.rc, -1);
    ck_assert_ptr_nonnull(strstr(r.err, "line 1"));
    result_free(&r);
}
END_TEST

START_TEST(container_sizes_take_every_header_width)
{
    /* 15/16 and 65535/65536 elements: fix, 16-bit and 32-bit headers. */
    static const size_t sizes[] = { 0, 15, 16, 65535, 65536 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *a = malloc(n * 12 + 16), *o = malloc(n * 12 + 16);
        size_t ka = 0, ko = 0;
        a[ka++] = '[';
        o[ko++] = '{';
        for (size_t j = 0; j < n; j++) {
            ka += (size_t)sprintf(a + ka, "%s%zu", j ? "," : "", j);
            ko += (size_t)sprintf(o + ko, "%s\"%zu\":0", j ? "," : "", j);
        }
        a[ka++] = ']';
        o[ko++] = '}';
        ck_assert(check_text(a, ka));
        ck_assert(check_text(o, ko));
        free(a);
        free(o);
    }
}
END_TEST

START_TEST(duplicate_keys_in_big_objects_are_found)
{
    char buf[4096];
    size_t k = 0;
    buf[k++] = '{';
    for (int i = 0; i < 40; i++)
        k += (size_t)sprintf(buf + k, "%s\"k%d\":%d", i ? "," : "", i % 39, i);
    buf[k++] = '}';
    struct result r;
    stream_pack(buf, k, &r);
    ck_assert_int_eq(r.rc, -1);
    ck_assert_ptr_nonnull(strstr(r.err, "duplicate"));
    result_free(&r);
    check_text(buf, k);
}
END_TEST

/* ---- tables: msgpack -> JSON text --------------------------------------- */

struct write_case {
    const char *mp;
    size_t      len;
    const char *compact;    /* NULL: refused, `why` in the message */
    const char *spaced;
};

#define W(m, c, s) { m, sizeof(m) - 1, c, s }

static const struct write_case write_cases[] = {
    W("\xc0", "null", "null"), W("\xc3", "true", "true"),
    W("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "\"18446744073709551615\"",
      "\"18446744073709551615\""),
    W("\xd0\x05", "5", "5"), W("\xd3\x80\0\0\0\0\0\0\0", "-9223372036854775808",
                                "-9223372036854775808"),
    W("\xcb\x7f\xf8\0\0\0\0\0\0", "null", "null"),
    W("\xca\xff\x80\0\0", "null", "null"),
    W("\xcb\x3f\xf0\0\0\0\0\0\0", "1.0", "1.0"),
    W("\xcb\x44\x98\x90\x5f\x62\xbd\xa8\xe0", "2.8999999999999998e22",
      "2.8999999999999998e22"),
    W("\xcb\x3e\x45\x79\x8e\xe2\x30\x8c\x3a", "1e-8", "1e-8"),
    W("\xcb\x80\0\0\0\0\0\0\0", "-0.0", "-0.0"),
    W("\xa6\"\\\x01\x1f\x7f/", "\"\\\"\\\\\\u0001\\u001F\x7f/\"",
      "\"\\\"\\\\\\u0001\\u001F\x7f/\""),
    W("\xa2\xff\xfe", "{\"$bin\":\"//4=\"}", "{\"$bin\": \"//4=\"}"),
    W("\xa3\xed\xa0\x80", "{\"$bin\":\"7aCA\"}", "{\"$bin\": \"7aCA\"}"),
    W("\xc4\0", "{\"$bin\":\"\"}", "{\"$bin\": \"\"}"),
    W("\xd5\xfe\x01\x02", "{\"$ext\":[-2,\"AQI=\"]}", "{\"$ext\": [-2, \"AQI=\"]}"),
    W("\x92\x90\x80", "[[],{}]", "[[], {}]"),
    W("\x82\x01\x02\xc3\x90", "{\"1\":2,\"true\":[]}", "{\"1\": 2, \"true\": []}"),
    W("\x81\x92\x01\xa1x\xc0", "{\"[1,\\\"x\\\"]\":null}",
      "{\"[1,\\\"x\\\"]\": null}"),
    W("\x81\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x01",
      "{\"18446744073709551615\":1}", "{\"18446744073709551615\": 1}"),
    W("\x83\xa1" "a\x01\xa1" "b\x02\xa1" "a\x03", "{\"a\":3,\"b\":2}",
      "{\"a\": 3, \"b\": 2}"),
    W("\x83\x01\x01\xa1" "1\x02\xa1z\x03", "{\"1\":2,\"z\":3}", "{\"1\": 2, \"z\": 3}"),
    W("\x81\xa3k\0y\x01", "{\"k\\u0000y\":1}", "{\"k\\u0000y\": 1}"),
    W("", NULL, "empty"), W("\xc1", NULL, "invalid msgpack"),
    W("\x92\x01", NULL, "truncated"), W("\x01\x02", NULL, "trailing"),
    W("\xdd\xff\xff\xff\xff", NULL, "msgpack"),
};

START_TEST(each_msgpack_rule_writes_as_the_table_says)
{
    const struct write_case *c = &write_cases[_i];
    check_msgpack(c->mp, c->len);
    for (int st = 0; st < 2; st++) {
        struct result r;
        stream_write(c->mp, c->len, (enum fp_json_style)st, &r);
        if (c->compact != NULL) {
            ck_assert_msg(r.rc == 0, "case %d: %s", _i, r.err);
            ck_assert_str_eq(r.bytes, st ? c->spaced : c->compact);
        } else {
            ck_assert_int_eq(r.rc, -1);
            ck_assert_msg(strstr(r.err, c->spaced) != NULL, "case %d: %s", _i,
                          r.err);
        }
        result_free(&r);
    }
}
END_TEST

START_TEST(many_colliding_keys_keep_first_place_last_value)
{
    /* 40 pairs, keys cycling through 7 values (ints and strs that collide). */
    struct fp_buf b = FP_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fp_buf_pack_write);
    msgpack_pack_map(&pk, 40);
    for (int i = 0; i < 40; i++) {
        if (i % 2)
            msgpack_pack_int(&pk, i % 7);
        else {
            char k[4];
            snprintf(k, sizeof k, "%d", i % 7);
            fp_pack_cstr(&pk, k);
        }
        msgpack_pack_int(&pk, i);
    }
    check_msgpack(fp_buf_head(&b), b.len);
    fp_buf_free(&b);
}
END_TEST

START_TEST(nested_map_keys_are_bounded_when_streamed)
{
    char buf[65];
    memset(buf, 0x81, 32);
    memset(buf + 32, 0xc0, 33);
    check_msgpack(buf, sizeof buf);
    struct result r;
    stream_write(buf, sizeof buf, FP_JSON_SPACED, &r);
    ck_assert_int_eq(r.rc, -1);
    ck_assert_ptr_nonnull(strstr(r.err, "map key is too long"));
    result_free(&r);
}
END_TEST

/* ---- base64 against libsodium ------------------------------------------- */

START_TEST(base64_accepts_exactly_what_libsodium_accepts)
{
    static const char alpha[] = "AQgw+/=A= \n-_";
    unsigned seed = 12345;
    unsigned char a[64], b[64];
    char text[16];

    for (int iter = 0; iter < 200000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 8) % 13;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            text[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        size_t na = 0, nb = 0;
        int ra = sodium_base642bin(a, sizeof a, text, len, NULL, &na, NULL,
                                   sodium_base64_VARIANT_ORIGINAL);
        int rb = fp_b64_decode(b, text, len, &nb);
        ck_assert_msg(ra == rb, "\"%.*s\": libsodium %d, fp_b64 %d", (int)len,
                      text, ra, rb);
        if (ra == 0)
            ck_assert(na == nb && memcmp(a, b, na) == 0);
    }
}
END_TEST

START_TEST(base64_encodes_as_libsodium_does)
{
    unsigned char data[300];
    char a[512], b[512];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n++) {
        sodium_bin2base64(a, sizeof a, data, n, sodium_base64_VARIANT_ORIGINAL);
        size_t len = fp_b64_encode(b, data, n);
        ck_assert_uint_eq(len, fp_b64_encoded_len(n));
        ck_assert_uint_eq(len, strlen(a));
        ck_assert(memcmp(a, b, len) == 0);
        size_t got;
        unsigned char back[300];
        ck_assert_int_eq(fp_b64_decode(back, b, len, &got), 0);
        ck_assert(got == n && memcmp(back, data, n) == 0);
    }
}
END_TEST

/* The vector code (b64_simd.c) and libcrypto's, each on its own: the same
 * text as libsodium for every length up to 400 bytes (so blocks, and the
 * ends the vector code leaves, at every offset), and the same verdict on
 * every stray character -- each byte next to an alphabet range, '=', NUL,
 * high bytes -- at every position of a 200-character text, and on random
 * long texts with now and then one. */
START_TEST(vector_base64_agrees_with_libsodium_everywhere)
{
    static const unsigned char stray[] = {
        '@', '[', '`', '{', ':', '*', ',', '.', '-', '_', '=', ' ', '\n',
        '\0', 0x7f, 0x80, 0xc1, 0xff,
    };
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char data[400], back[404], ref[404];   /* room: 536 characters * 3 / 4 */
    char text[540], want[540];
    unsigned seed = 777;

#if defined(__x86_64__)
    /* Where the CPU has AVX2 the vector code must be what runs. */
    ck_assert_int_eq(fp_b64_simd_on(), __builtin_cpu_supports("avx2") ? 1 : 0);
#endif
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 11);
    for (int vector = 0; vector <= 1; vector++) {
        fp_b64_simd_set(vector);
        for (size_t n = 0; n <= sizeof data; n++) {
            size_t got;
            sodium_bin2base64(want, sizeof want, data, n, sodium_base64_VARIANT_ORIGINAL);
            size_t len = fp_b64_encode(text, data, n);
            ck_assert_msg(len == strlen(want) && memcmp(text, want, len + 1) == 0,
                          "vector %d, %zu bytes: other text", vector, n);
            ck_assert_int_eq(fp_b64_decode(back, text, len, &got), 0);
            ck_assert_msg(got == n && memcmp(back, data, n) == 0,
                          "vector %d, %zu bytes back", vector, n);
        }
        size_t len = fp_b64_encode(text, data, 150);    /* 200 characters */
        for (size_t at = 0; at < len; at++) {
            for (size_t k = 0; k < sizeof stray; k++) {
                char keep = text[at];
                size_t got, na;
                text[at] = (char)stray[k];
                int ra = sodium_base642bin(ref, sizeof ref, text, len, NULL, &na,
                                           NULL, sodium_base64_VARIANT_ORIGINAL);
                int rb = fp_b64_decode(back, text, len, &got);
                /* (libsodium takes some bytes of 0x80 and up as letters:
                 * there it is no reference.) */
                int padding = stray[k] == '=' && at >= len - 2;   /* may be right */
                ck_assert_msg(padding ? ra == rb : rb == -1 && (stray[k] >= 0x80 || ra == -1),
                              "vector %d: byte %#x at %zu: libsodium %d, fp_b64 %d",
                              vector, stray[k], at, ra, rb);
                text[at] = keep;
            }
        }
        for (int iter = 0; iter < 20000; iter++) {
            seed = seed * 1103515245u + 12345u;
            len = 4 * (1 + (seed >> 8) % 120) - (seed >> 20) % 3;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                text[i] = (seed >> 9) % 997 == 0 ? (char)stray[(seed >> 20) % sizeof stray]
                                                 : alpha[(seed >> 16) % 64];
            }
            if ((seed >> 4) % 4 == 0)           /* padded now and then */
                for (size_t p = 0; p < (seed >> 6) % 3 && p < len; p++)
                    text[len - 1 - p] = '=';
            size_t na = 0, nb = 0;
            int ra = sodium_base642bin(ref, sizeof ref, text, len, NULL, &na, NULL,
                                       sodium_base64_VARIANT_ORIGINAL);
            int rb = fp_b64_decode(back, text, len, &nb);
            for (size_t i = 0; i < len; i++)
                if ((unsigned char)text[i] >= 0x80)
                    ra = -1;
            ck_assert_msg(ra == rb, "vector %d: \"%.*s\": libsodium %d, fp_b64 %d",
                          vector, (int)len, text, ra, rb);
            if (ra == 0)
                ck_assert(na == nb && memcmp(ref, back, na) == 0);
        }
    }
    fp_b64_simd_set(1);
}
END_TEST

/* fp_b64_set_parallel: big blocks in two halves give libsodium's text and
 * bytes, at sizes around the threshold and the split, and a fault in
 * either half (a stray character, an '=' inside, set tail bits) is still
 * refused. */
START_TEST(parallel_base64_is_the_same_base64)
{
    static const size_t sizes[] = {
        196605, 196606, 196607, 196608, 196609, 196610, 300001, 1 << 20,
        (1 << 20) + 1, (1 << 20) + 2, 3 << 20,
    };
    size_t max = 3 << 20, room = fp_b64_encoded_len(max) + 1;
    unsigned char *data = malloc(max), *back = malloc(max);
    char *a = malloc(room), *b = malloc(room);

    ck_assert(data != NULL && back != NULL && a != NULL && b != NULL);
    for (size_t i = 0; i < max; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    fp_b64_set_parallel(1);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k], got;
        sodium_bin2base64(a, room, data, n, sodium_base64_VARIANT_ORIGINAL);
        size_t len = fp_b64_encode(b, data, n);
        ck_assert_uint_eq(len, strlen(a));
        ck_assert_msg(memcmp(a, b, len + 1) == 0, "%zu bytes: other text", n);
        ck_assert_int_eq(fp_b64_decode(back, b, len, &got), 0);
        ck_assert_msg(got == n && memcmp(back, data, n) == 0, "%zu bytes back", n);

        /* Faults in the first half and in the second. */
        for (size_t at = len / 4; at < len; at += len / 2) {
            char keep = b[at];
            b[at] = '!';
            ck_assert_int_eq(fp_b64_decode(back, b, len, &got), -1);
            b[at] = '=';
            ck_assert_int_eq(fp_b64_decode(back, b, len, &got), -1);
            b[at] = keep;
        }
        if (n % 3 != 0) {       /* padded: the last character's unused bits */
            size_t last = len - 1 - (n % 3 == 1 ? 2 : 1);
            char keep = b[last];
            b[last] = keep == 'A' ? 'B' : 'A';
            int rc = fp_b64_decode(back, b, len, &got);
            size_t sa = 0;
            int ra = sodium_base642bin(back, max, b, len, NULL, &sa, NULL,
                                       sodium_base64_VARIANT_ORIGINAL);
            ck_assert_int_eq(rc, ra);
            b[last] = keep;
        }
    }
    fp_b64_set_parallel(0);
    free(data);
    free(back);
    free(a);
    free(b);
}
END_TEST

/* ---- equivalence: corpus and generated input ----------------------------- */

START_TEST(fuzz_corpus_gives_the_same_results_both_paths)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/fuzz_jsonmp", TOP_SRCDIR);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (n < 1)
            continue;
        if (buf[0] & 1)
            check_msgpack(buf + 1, n - 1);
        else
            check_text(buf + 1, n - 1);
        seen++;
    }
    closedir(d);
    ck_assert_int_ge(seen, 10);
}
END_TEST

static unsigned gen_seed;

static unsigned
gen_rand(void)
{
    gen_seed = gen_seed * 1103515245u + 12345u;
    return gen_seed >> 8;
}

/* Random JSON-ish text from pieces that matter to the mapping rules, now
 * and then spoilt by a mutation. */
static size_t
gen_json(char *out, size_t cap, int depth)
{
    static const char *const atoms[] = {
        "0", "-0", "1.5", "1e5", "-12", "9223372036854775807",
        "9223372036854775808", "1e400", "1E-400", "true", "false", "null",
        "\"\"", "\"a\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"\\ud800\"",
        "\"\\u0000\"", "\"\xc3\xa9\"", "\"\xff\"", "\"\\n\\t\\\"\"",
        "{\"$bin\":\"AAEC\"}", "{\"$bin\":\"AB==\"}", "{\"$bin\":7}",
        "{\"$ext\":[1,\"AA==\"]}", "{\"$ext\":[200,\"AA==\"]}", "\"$bin\"",
    };
    static const char *const keys[] = {
        "\"a\"", "\"b\"", "\"$bin\"", "\"$ext\"", "\"\\u0000\"", "\"\xc3\xa9\"",
        "\"a\"",
    };
    size_t k = 0;
    unsigned r = gen_rand() % 10;
    if (cap < 64)
        return 0;
    if (depth > 5 || r < 5) {
        const char *a = atoms[gen_rand() % (sizeof atoms / sizeof atoms[0])];
        size_t l = strlen(a);
        memcpy(out, a, l);
        return l;
    }
    int obj = r >= 8;
    out[k++] = obj ? '{' : '[';
    unsigned n = gen_rand() % 4;
    for (unsigned i = 0; i < n && k + 80 < cap; i++) {
        if (i > 0)
            out[k++] = ',';
        if (gen_rand() % 4 == 0)
            out[k++] = ' ';
        if (obj) {
            const char *key = keys[gen_rand() % (sizeof keys / sizeof keys[0])];
            k += (size_t)sprintf(out + k, "%s:", key);
        }
        k += gen_json(out + k, cap - k - 2, depth + 1);
    }
    out[k++] = obj ? '}' : ']';
    return k;
}

START_TEST(generated_text_gives_the_same_results_both_paths)
{
    char buf[8192];
    int vouched = 0;
    gen_seed = 42;
    for (int i = 0; i < 30000; i++) {
        size_t n = gen_json(buf, sizeof buf - 8, 0);
        if (gen_rand() % 8 == 0 && n > 0) {     /* spoil it */
            static const char junk[] = " ,:[]{}\"\\x0\v\f\r";
            buf[gen_rand() % n] = junk[gen_rand() % (sizeof junk - 1)];
        }
        vouched += check_text(buf, n);
    }
    ck_assert_int_gt(vouched, 5000);    /* the fast path did the most */
}
END_TEST

START_TEST(generated_msgpack_gives_the_same_results_both_paths)
{
    static const char *const pieces[] = {
        "\xc0", "\xc3", "\x05", "\xff", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        "\xcb\x7f\xf8\0\0\0\0\0\0", "\xca\x3f\xc0\0\0", "\xa1" "a", "\xa1\xff",
        "\xa2\xc3\xa9", "\xa1\x0a", "\xc4\x01\x00", "\xd4\x01\x02", "\xa0",
        "\x91", "\x92", "\x81", "\x82", "\x80", "\x90",
    };
    char buf[256];
    gen_seed = 7;
    for (int i = 0; i < 50000; i++) {
        size_t k = 0;
        unsigned n = 1 + gen_rand() % 12;
        for (unsigned j = 0; j < n; j++) {
            const char *p = pieces[gen_rand() % (sizeof pieces / sizeof pieces[0])];
            size_t l = p[0] == '\0' ? 1 : strlen(p);
            if (p[0] == '\xc4' || p[0] == '\xd4')
                l = 3;
            else if (p[0] == '\xcf' || p[0] == '\xcb')
                l = 9;
            else if (p[0] == '\xca')
                l = 5;
            memcpy(buf + k, p, l);
            k += l;
        }
        check_msgpack(buf, k);
    }
}
END_TEST

static Suite *
jsonstream_suite(void)
{
    Suite *s = suite_create("jsonstream");
    TCase *tc;

    tc = tcase_create("text_to_msgpack");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, each_text_rule_packs_as_the_table_says, 0,
                        sizeof pack_cases / sizeof pack_cases[0]);
    tcase_add_test(tc, ordinary_text_is_streamed_without_the_tree);
    tcase_add_test(tc, bin_only_texts_pack_as_the_tree_says);
    tcase_add_test(tc, nesting_limits_hold_when_streamed);
    tcase_add_test(tc, container_sizes_take_every_header_width);
    tcase_add_test(tc, duplicate_keys_in_big_objects_are_found);
    suite_add_tcase(s, tc);

    tc = tcase_create("msgpack_to_text");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, each_msgpack_rule_writes_as_the_table_says, 0,
                        sizeof write_cases / sizeof write_cases[0]);
    tcase_add_test(tc, many_colliding_keys_keep_first_place_last_value);
    tcase_add_test(tc, nested_map_keys_are_bounded_when_streamed);
    suite_add_tcase(s, tc);

    tc = tcase_create("base64");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, base64_accepts_exactly_what_libsodium_accepts);
    tcase_add_test(tc, base64_encodes_as_libsodium_does);
    tcase_add_test(tc, vector_base64_agrees_with_libsodium_everywhere);
    tcase_add_test(tc, parallel_base64_is_the_same_base64);
    suite_add_tcase(s, tc);

    tc = tcase_create("equivalence");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fuzz_corpus_gives_the_same_results_both_paths);
    tcase_add_test(tc, generated_text_gives_the_same_results_both_paths);
    tcase_add_test(tc, generated_msgpack_gives_the_same_results_both_paths);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(jsonstream_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
