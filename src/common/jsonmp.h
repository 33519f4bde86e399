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
 */
#ifndef FP_JSONMP_H
#define FP_JSONMP_H

#include <stddef.h>
#include <jansson.h>
#include <msgpack.h>

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

#endif /* FP_JSONMP_H */
