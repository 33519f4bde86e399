/* check_jsonmp.c — JSON <-> msgpack conversion (src/jsonmp.c). */
#include "config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "common/jsonmp.h"

/* ---- helpers ------------------------------------------------------------ */

/* Pack JSON text into out; returns the fp_json_text_pack result. */
static int
pack_text(const char *json, struct fp_buf *out, char *err, size_t errlen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, fp_buf_pack_write);
    return fp_json_text_pack(json, strlen(json), &pk, err, errlen);
}

/* msgpack bytes -> compact JSON text (malloc'ed), or NULL with err set. */
static char *
mp_to_text(const void *data, size_t len, char *err, size_t errlen)
{
    json_t *v = fp_json_from_msgpack(data, len, err, errlen);
    if (v == NULL)
        return NULL;
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(v);
    return s;
}

/* JSON text -> msgpack -> JSON text; asserts both steps succeed. */
static char *
roundtrip(const char *json)
{
    struct fp_buf b = FP_BUF_INIT;
    char err[256] = "";
    ck_assert_msg(pack_text(json, &b, err, sizeof err) == 0, "%s: %s", json,
                  err);
    char *out = mp_to_text(fp_buf_head(&b), b.len, err, sizeof err);
    ck_assert_msg(out != NULL, "%s: %s", json, err);
    fp_buf_free(&b);
    return out;
}

static void
assert_roundtrip(const char *json)
{
    char *out = roundtrip(json);
    ck_assert_str_eq(out, json);
    free(out);
}

/* Asserts that JSON text packs to exactly the given bytes. */
static void
assert_packs_to(const char *json, const void *bytes, size_t n)
{
    struct fp_buf b = FP_BUF_INIT;
    char err[256] = "";
    ck_assert_msg(pack_text(json, &b, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(b.len, n);
    ck_assert(memcmp(fp_buf_head(&b), bytes, n) == 0);
    fp_buf_free(&b);
}

/* Asserts that msgpack bytes convert to exactly the given JSON text. */
static void
assert_converts_to(const void *bytes, size_t n, const char *json)
{
    char err[256] = "";
    char *out = mp_to_text(bytes, n, err, sizeof err);
    ck_assert_msg(out != NULL, "%s", err);
    ck_assert_str_eq(out, json);
    free(out);
}

/* Asserts that fp_json_from_msgpack refuses the bytes with a message
 * containing `needle`. */
static void
assert_msgpack_refused(const void *bytes, size_t n, const char *needle)
{
    char err[256] = "";
    json_t *v = fp_json_from_msgpack(bytes, n, err, sizeof err);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"",
                  err, needle);
}

/* Asserts that JSON text is refused with a message containing `needle`. */
static void
assert_text_refused(const char *json, const char *needle)
{
    struct fp_buf b = FP_BUF_INIT;
    char err[256] = "";
    ck_assert_int_eq(pack_text(json, &b, err, sizeof err), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"",
                  err, needle);
    ck_assert_uint_eq(b.len, 0);
    fp_buf_free(&b);
}

/* n nested arrays around 1: "[[[1]]]". */
static char *
nested_json(size_t n)
{
    char *s = malloc(2 * n + 2);
    memset(s, '[', n);
    s[n] = '1';
    memset(s + n + 1, ']', n);
    s[2 * n + 1] = '\0';
    return s;
}

/* ---- round trips -------------------------------------------------------- */

START_TEST(null_and_booleans_round_trip)
{
    assert_roundtrip("null");
    assert_roundtrip("true");
    assert_roundtrip("false");
    assert_packs_to("[null,true,false]", "\x93\xc0\xc3\xc2", 4);
}
END_TEST

START_TEST(integers_round_trip_at_every_width)
{
    assert_roundtrip("[0,1,127,128,255,256,65535,65536,4294967295,"
                     "4294967296,9223372036854775807]");
    assert_roundtrip("[-1,-32,-33,-128,-129,-32768,-32769,-2147483648,"
                     "-2147483649,-9223372036854775808]");
    assert_packs_to("-1", "\xff", 1);
    assert_packs_to("300", "\xcd\x01\x2c", 3);
}
END_TEST

START_TEST(reals_pack_as_float64_and_round_trip)
{
    assert_packs_to("1.5", "\xcb\x3f\xf8\0\0\0\0\0\0", 9);
    assert_roundtrip("[1.5,-0.25,1.0000000000000001e300,3.1415926535897931]");
}
END_TEST

START_TEST(float32_converts_to_a_json_real)
{
    assert_converts_to("\xca\x3f\xc0\x00\x00", 5, "1.5");
}
END_TEST

START_TEST(strings_round_trip_including_utf8)
{
    assert_roundtrip("[\"\",\"hello\",\"h\xc3\xa9llo \xe2\x82\xac\"]");
    assert_packs_to("\"ab\"", "\xa2" "ab", 3);
}
END_TEST

START_TEST(arrays_and_objects_round_trip_in_order)
{
    assert_roundtrip("{\"z\":1,\"a\":[1,{\"b\":null}],\"m\":{}}");
    assert_roundtrip("[[],{},[[]]]");
    assert_packs_to("{\"a\":[]}", "\x81\xa1" "a" "\x90", 4);
}
END_TEST

START_TEST(msgpack_map_order_is_kept)
{
    assert_converts_to("\x83\xa1z\x01\xa1y\x02\xa1x\x03", 10,
                       "{\"z\":1,\"y\":2,\"x\":3}");
}
END_TEST

/* ---- $bin and $ext ------------------------------------------------------ */

START_TEST(bin_object_packs_as_msgpack_bin)
{
    assert_packs_to("{\"$bin\":\"AAEC\"}", "\xc4\x03\x00\x01\x02", 5);
    assert_packs_to("{\"$bin\":\"\"}", "\xc4\x00", 2);
}
END_TEST

START_TEST(msgpack_bin_converts_to_bin_object)
{
    assert_converts_to("\xc4\x03\x00\x01\x02", 5, "{\"$bin\":\"AAEC\"}");
    assert_converts_to("\xc4\x00", 2, "{\"$bin\":\"\"}");
    assert_roundtrip("[{\"$bin\":\"/w==\"},{\"k\":{\"$bin\":\"AAE=\"}}]");
}
END_TEST

START_TEST(ext_object_packs_as_msgpack_ext)
{
    assert_packs_to("{\"$ext\":[5,\"AQID\"]}", "\xc7\x03\x05\x01\x02\x03", 6);
    assert_packs_to("{\"$ext\":[-1,\"AA==\"]}", "\xd4\xff\x00", 3);
}
END_TEST

START_TEST(msgpack_ext_converts_to_ext_object)
{
    assert_converts_to("\xc7\x03\x05\x01\x02\x03", 6,
                       "{\"$ext\":[5,\"AQID\"]}");
    assert_converts_to("\xd4\xff\x00", 3, "{\"$ext\":[-1,\"AA==\"]}");
}
END_TEST

START_TEST(bad_bin_and_ext_values_are_errors)
{
    assert_text_refused("{\"$bin\":\"not base64!\"}", "invalid base64");
    assert_text_refused("{\"$bin\":\"AAE\"}", "invalid base64");
    assert_text_refused("{\"$bin\":5}", "base64 string");
    assert_text_refused("{\"$ext\":[300,\"AA==\"]}", "-128..127");
    assert_text_refused("{\"$ext\":\"AA==\"}", "[type,");
}
END_TEST

START_TEST(objects_with_more_keys_than_bin_are_plain_maps)
{
    assert_roundtrip("{\"$bin\":\"AA==\",\"x\":1}");
}
END_TEST

/* ---- strings ------------------------------------------------------------ */

START_TEST(embedded_nul_survives_both_ways)
{
    assert_packs_to("\"a\\u0000b\"", "\xa3" "a\0b", 4);
    assert_converts_to("\xa3" "a\0b", 4, "\"a\\u0000b\"");
}
END_TEST

START_TEST(nul_in_map_key_converts_but_json_text_cannot_carry_it)
{
    /* {"k\0y": 1}: jansson keeps it in a key, and packs it back... */
    static const char mp[] = "\x81\xa3k\0y\x01";
    char err[128] = "";
    json_t *v = fp_json_from_msgpack(mp, sizeof mp - 1, err, sizeof err);
    ck_assert_ptr_nonnull(v);
    struct fp_buf b = FP_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fp_buf_pack_write);
    ck_assert_int_eq(fp_json_pack(v, &pk, err, sizeof err), 0);
    ck_assert_uint_eq(b.len, sizeof mp - 1);
    ck_assert(memcmp(fp_buf_head(&b), mp, b.len) == 0);
    json_decref(v);
    fp_buf_free(&b);
    /* ...but its parser refuses NUL in a key of JSON text. */
    assert_text_refused("{\"k\\u0000y\":1}", "NUL byte in object key");
}
END_TEST

START_TEST(invalid_utf8_str_becomes_bin_object)
{
    assert_converts_to("\xa2\xff\xfe", 3, "{\"$bin\":\"//4=\"}");
    /* As a map key: the key is the bin object's JSON text. */
    assert_converts_to("\x81\xa1\xff\x01", 4, "{\"{\\\"$bin\\\":\\\"/w==\\\"}\":1}");
}
END_TEST

/* ---- keys, numbers at the edges ----------------------------------------- */

START_TEST(non_string_keys_become_their_json_text)
{
    /* {1:"a", true:"b", nil:"c", [1,2]:"d", -2:"e", 1.5:"f", {"x":1}:"g"} */
    static const char mp[] =
        "\x87"
        "\x01\xa1" "a"
        "\xc3\xa1" "b"
        "\xc0\xa1" "c"
        "\x92\x01\x02\xa1" "d"
        "\xfe\xa1" "e"
        "\xcb\x3f\xf8\0\0\0\0\0\0\xa1" "f"
        "\x81\xa1x\x01\xa1" "g";
    assert_converts_to(mp, sizeof mp - 1,
                       "{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\","
                       "\"[1,2]\":\"d\",\"-2\":\"e\",\"1.5\":\"f\","
                       "\"{\\\"x\\\":1}\":\"g\"}");
}
END_TEST

START_TEST(colliding_keys_last_one_wins)
{
    /* {1:"a", "1":"b"} */
    assert_converts_to("\x82\x01\xa1" "a" "\xa1" "1" "\xa1" "b", 8,
                       "{\"1\":\"b\"}");
}
END_TEST

START_TEST(uint64_above_int64_max_becomes_decimal_string)
{
    assert_converts_to("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9,
                       "\"18446744073709551615\"");
    assert_converts_to("\xcf\x80\0\0\0\0\0\0\0", 9,
                       "\"9223372036854775808\"");
    assert_converts_to("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9,
                       "9223372036854775807");
}
END_TEST

START_TEST(nan_and_infinities_become_null)
{
    assert_converts_to("\xcb\x7f\xf8\0\0\0\0\0\0", 9, "null");
    assert_converts_to("\xcb\xff\xf0\0\0\0\0\0\0", 9, "null");
    assert_converts_to("\xca\x7f\x80\x00\x00", 5, "null");
}
END_TEST

/* ---- bad JSON text ------------------------------------------------------ */

START_TEST(malformed_json_error_names_line_and_column)
{
    assert_text_refused("{\n  \"a\": }", "line 2 column ");
    assert_text_refused("", "line 1 column ");
}
END_TEST

START_TEST(trailing_garbage_is_refused)
{
    assert_text_refused("[1] x", "line 1 column ");
    assert_text_refused("1 2", "line 1 column ");
}
END_TEST

START_TEST(surrounding_whitespace_is_allowed)
{
    struct fp_buf b = FP_BUF_INIT;
    char err[128] = "";
    ck_assert_int_eq(pack_text(" \n\t[1]\r\n ", &b, err, sizeof err), 0);
    ck_assert_uint_eq(b.len, 2);
    fp_buf_free(&b);
}
END_TEST

START_TEST(duplicate_keys_in_text_are_refused)
{
    assert_text_refused("{\"a\":1,\"a\":2}", "duplicate");
}
END_TEST

/* ---- nesting ------------------------------------------------------------ */

START_TEST(nesting_at_the_msgpack_limit_round_trips)
{
    char *json = nested_json(FP_MAX_DEPTH);
    assert_roundtrip(json);
    free(json);
}
END_TEST

START_TEST(nesting_past_the_msgpack_limit_is_refused)
{
    char *json = nested_json(FP_MAX_DEPTH + 1);
    assert_text_refused(json, "nesting deeper than 32");
    free(json);
}
END_TEST

START_TEST(json_nested_100000_deep_is_refused_cleanly)
{
    char *json = nested_json(100000);
    assert_text_refused(json, "line 1 column ");
    free(json);
}
END_TEST

START_TEST(deep_hand_built_object_is_refused)
{
    enum { N = 100 };
    msgpack_object o[N];
    for (int i = 0; i < N; i++) {
        o[i].type = MSGPACK_OBJECT_ARRAY;
        o[i].via.array.size = i + 1 < N ? 1 : 0;
        o[i].via.array.ptr = i + 1 < N ? &o[i + 1] : NULL;
    }
    char err[128] = "";
    ck_assert_ptr_null(fp_json_from_object(&o[0], err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "nesting"));
    json_t *v = fp_json_from_object(&o[N - FP_MAX_DEPTH], err, sizeof err);
    ck_assert_ptr_nonnull(v);
    json_decref(v);
}
END_TEST

START_TEST(failed_pack_leaves_the_packer_untouched)
{
    struct fp_buf b = FP_BUF_INIT;
    char err[128] = "";
    ck_assert_int_eq(fp_buf_append(&b, "\x01", 1), 0);
    ck_assert_int_eq(pack_text("[1,2,{\"$bin\":\"??\"}]", &b, err,
                               sizeof err), -1);
    ck_assert_uint_eq(b.len, 1);
    fp_buf_free(&b);
}
END_TEST

/* ---- hostile msgpack ---------------------------------------------------- */

START_TEST(hostile_msgpack_never_used_byte_is_refused)
{
    assert_msgpack_refused("\xc1", 1, "invalid msgpack");
    assert_msgpack_refused("\x92\x01\xc1", 3, "invalid msgpack");
}
END_TEST

START_TEST(hostile_msgpack_truncated_value_is_refused)
{
    assert_msgpack_refused("\x92\x01", 2, "truncated");
    assert_msgpack_refused("\xa5" "ab", 3, "truncated");
    assert_msgpack_refused("\xcd\x01", 2, "truncated");
    assert_msgpack_refused("", 0, "empty");
}
END_TEST

START_TEST(hostile_msgpack_huge_declared_array_is_refused)
{
    assert_msgpack_refused("\xdd\xff\xff\xff\xff", 5, "msgpack");
    assert_msgpack_refused("\xdf\xff\xff\xff\xff\x01\x01", 7, "msgpack");
    assert_msgpack_refused("\xc6\xff\xff\xff\xff", 5, "msgpack");
}
END_TEST

/* Maps nested as each other's keys: each level's key text is escaped again
 * by the level above, doubling it.  65 bytes (found by the fuzzer) must be
 * refused quickly, not grow into gigabytes of JSON. */
START_TEST(hostile_msgpack_nested_map_keys_are_bounded)
{
    char buf[65];
    memset(buf, 0x81, 32);              /* {k: nil} with k = {k: nil}... */
    memset(buf + 32, 0xc0, 33);
    assert_msgpack_refused(buf, sizeof buf, "map key is too long");
    /* A few levels are fine and keep their text. */
    char *out, err[128] = "";
    ck_assert_ptr_nonnull(out = mp_to_text("\x81\x81\xc0\xc0\xc0", 5, err, sizeof err));
    ck_assert_str_eq(out, "{\"{\\\"null\\\":null}\":null}");
    free(out);
}
END_TEST

START_TEST(hostile_msgpack_two_values_are_refused)
{
    assert_msgpack_refused("\x01\x02", 2, "trailing");
}
END_TEST

START_TEST(hostile_msgpack_nested_too_deep_is_refused)
{
    char buf[FP_MAX_DEPTH + 2];
    memset(buf, 0x91, FP_MAX_DEPTH + 1);
    buf[FP_MAX_DEPTH + 1] = 0x01;
    assert_msgpack_refused(buf, sizeof buf, "nesting too deep");
    /* One level less is fine. */
    char *out;
    char err[128] = "";
    ck_assert_ptr_nonnull(out = mp_to_text(buf + 1, sizeof buf - 1, err,
                                           sizeof err));
    free(out);
}
END_TEST

static Suite *
jsonmp_suite(void)
{
    Suite *s = suite_create("jsonmp");
    TCase *tc;

    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, null_and_booleans_round_trip);
    tcase_add_test(tc, integers_round_trip_at_every_width);
    tcase_add_test(tc, reals_pack_as_float64_and_round_trip);
    tcase_add_test(tc, float32_converts_to_a_json_real);
    tcase_add_test(tc, strings_round_trip_including_utf8);
    tcase_add_test(tc, arrays_and_objects_round_trip_in_order);
    tcase_add_test(tc, msgpack_map_order_is_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("bin_ext");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, bin_object_packs_as_msgpack_bin);
    tcase_add_test(tc, msgpack_bin_converts_to_bin_object);
    tcase_add_test(tc, ext_object_packs_as_msgpack_ext);
    tcase_add_test(tc, msgpack_ext_converts_to_ext_object);
    tcase_add_test(tc, bad_bin_and_ext_values_are_errors);
    tcase_add_test(tc, objects_with_more_keys_than_bin_are_plain_maps);
    suite_add_tcase(s, tc);

    tc = tcase_create("edges");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, embedded_nul_survives_both_ways);
    tcase_add_test(tc, nul_in_map_key_converts_but_json_text_cannot_carry_it);
    tcase_add_test(tc, invalid_utf8_str_becomes_bin_object);
    tcase_add_test(tc, non_string_keys_become_their_json_text);
    tcase_add_test(tc, colliding_keys_last_one_wins);
    tcase_add_test(tc, uint64_above_int64_max_becomes_decimal_string);
    tcase_add_test(tc, nan_and_infinities_become_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_text");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, malformed_json_error_names_line_and_column);
    tcase_add_test(tc, trailing_garbage_is_refused);
    tcase_add_test(tc, surrounding_whitespace_is_allowed);
    tcase_add_test(tc, duplicate_keys_in_text_are_refused);
    tcase_add_test(tc, failed_pack_leaves_the_packer_untouched);
    suite_add_tcase(s, tc);

    tc = tcase_create("nesting");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, nesting_at_the_msgpack_limit_round_trips);
    tcase_add_test(tc, nesting_past_the_msgpack_limit_is_refused);
    tcase_add_test(tc, json_nested_100000_deep_is_refused_cleanly);
    tcase_add_test(tc, deep_hand_built_object_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile_msgpack");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, hostile_msgpack_never_used_byte_is_refused);
    tcase_add_test(tc, hostile_msgpack_truncated_value_is_refused);
    tcase_add_test(tc, hostile_msgpack_huge_declared_array_is_refused);
    tcase_add_test(tc, hostile_msgpack_two_values_are_refused);
    tcase_add_test(tc, hostile_msgpack_nested_map_keys_are_bounded);
    tcase_add_test(tc, hostile_msgpack_nested_too_deep_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(jsonmp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
