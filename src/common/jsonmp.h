/*
 * jsonmp.h — JSON <-> msgpack, for forkpoolctl and --module-config.
 *
 * Mapping (documented in README):
 *   null/true/false/number/string/array/object  <->  the msgpack equivalents
 *   {"$bin": "<base64>"}   <->  bin
 *   {"$ext": [type, "<base64>"]} <->  ext
 * JSON integers become msgpack ints, other numbers float64.  msgpack map keys
 * that are not strings are written as their JSON text ("1", "true", ...).
 *
 * Details, both directions:
 *   - An object whose only key is "$bin" or "$ext" is always taken as that
 *     form; a bad value there ("$bin": not base64) is an error, not a map.
 *   - Strings keep embedded NULs (\u0000); map keys keep them too when
 *     converted from msgpack, but jansson's parser refuses \u0000 in a key
 *     of JSON *text*.  A msgpack str that is not valid UTF-8 cannot be a
 *     JSON string (jansson holds only UTF-8): it becomes {"$bin": ...}.
 *   - A msgpack uint above INT64_MAX (beyond jansson's json_int_t) becomes a
 *     JSON string of its decimal digits, so no digit is lost; it comes back
 *     as a str.  float32 comes back as float64.
 *   - NaN and +-Inf have no JSON form: they become null.
 *   - Map keys that collide once converted (1 and "1", duplicates): the
 *     last one wins.  JSON *text* with a duplicate key is refused instead.
 *   - Nesting: containers nested deeper than FP_MAX_DEPTH (32, msgpack-c's
 *     unpacker limit) are refused in both directions with a message.
 *   - Packing is all or nothing: on error nothing reaches the packer.
 *
 * Two ways through: jansson trees (fp_json_pack, fp_json_from_*), and, for
 * forkpoolctl's per-line work, streamed conversions that build no tree
 * (fp_json_text_to_buf, fp_json_write_msgpack) and give the same bytes and
 * the same messages.
 */
#ifndef FP_JSONMP_H
#define FP_JSONMP_H

#include <stddef.h>
#include <jansson.h>
#include <msgpack.h>

#include "codec/buf.h"

/* Pack one JSON value as msgpack.  Returns 0, or -1 with a message in err. */
int fp_json_pack(const json_t *v, msgpack_packer *pk, char *err, size_t errlen);

/* Parse JSON text (exactly one value, surrounding whitespace allowed) and pack
 * it.  Returns 0, or -1 with a message ("line 1 column 5: ...") in err. */
int fp_json_text_pack(const char *text, size_t len, msgpack_packer *pk,
                      char *err, size_t errlen);

/* Convert one unpacked msgpack object to a new JSON value (caller owns it).
 * Returns NULL with a message in err on failure. */
json_t *fp_json_from_object(const msgpack_object *o, char *err, size_t errlen);

/* Convert msgpack bytes holding exactly one value (bounded by fp_scan first,
 * so hostile input cannot make it allocate beyond the limits) to JSON.
 * Returns NULL with a message in err. */
json_t *fp_json_from_msgpack(const char *data, size_t len, char *err,
                             size_t errlen);

/* fp_json_text_pack into a buffer: the msgpack is appended to out, with
 * the same result and message, but ordinary text is converted as it is
 * parsed, without a tree (jsonmp_parse.c; the jansson path runs only for
 * what that does not vouch for: errors, and a few rare forms).  Returns 0,
 * or -1 with out as it was and a message in err. */
int fp_json_text_to_buf(const char *text, size_t len, struct fp_buf *out,
                        char *err, size_t errlen);

/* JSON output styles: JSON_COMPACT's "," and ":", or JSON_INDENT(0)'s
 * ", " and ": " (forkpoolctl's lines). */
enum fp_json_style { FP_JSON_COMPACT, FP_JSON_SPACED };

/* Append the JSON text of msgpack bytes holding exactly one value to out:
 * byte for byte what json_dumps(fp_json_from_msgpack(data, len), flags)
 * prints in that style, and the same refusals and messages, without a
 * tree.  Returns 0, or -1 with out as it was and a message in err. */
int fp_json_write_msgpack(struct fp_buf *out, const char *data, size_t len,
                          enum fp_json_style style, char *err, size_t errlen);

/* Append s[0..n) as a JSON string, escaped as jansson does ('"', '\\' and
 * the C0 controls); s must be UTF-8 (fp_utf8_valid).  Returns 0 or -1. */
int fp_json_write_string(struct fp_buf *out, const char *s, size_t n);

/* 1 if p[0..n) is UTF-8 as jansson takes it for a string (no overlong
 * forms, no surrogates, nothing above U+10FFFF; NUL allowed), else 0. */
int fp_utf8_valid(const char *p, size_t n);

#endif /* FP_JSONMP_H */
