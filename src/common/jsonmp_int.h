/*
 * jsonmp_int.h — what jsonmp.c (the jansson-tree conversions),
 * jsonmp_parse.c (JSON text -> msgpack, streamed) and jsonmp_write.c
 * (msgpack -> JSON text, streamed) share.  Not for other modules.
 */
#ifndef FP_JSONMP_INT_H
#define FP_JSONMP_INT_H

#include <stddef.h>

#include "codec/buf.h"

#define FP_JSON_BIN_KEY "$bin"
#define FP_JSON_EXT_KEY "$ext"

/* Longest JSON text a non-str map key may become.  Container keys nested
 * in container keys are escaped again at each level, doubling their text:
 * without a cap, 65 bytes of msgpack would become gigabytes of JSON. */
#define FP_JSON_KEY_TEXT_MAX ((size_t)64 << 10)

/* Format a message into err (when there is room for one); returns -1 so
 * that failure paths can `return fp_jsonmp_err(...)`. */
int fp_jsonmp_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Bound msgpack bytes that should hold exactly one value with fp_scan
 * (before msgpack-c sees them: its unpacker trusts declared counts).
 * Returns 0, or -1 with the message fp_json_from_msgpack gives in err. */
int fp_jsonmp_check_msgpack(const char *data, size_t len, char *err,
                            size_t errlen);

/* JSON text -> msgpack without a tree (jsonmp_parse.c): appends to out
 * and returns 0 only where the jansson path gives the very same bytes;
 * returns -1 (out as it was) for anything it does not vouch for — every
 * error, and a few rare valid forms — which the caller then hands to the
 * jansson path for its result and its message. */
int fp_json_stream_pack(const char *text, size_t len, struct fp_buf *out);

/* The jansson path of fp_json_text_pack alone (json_loadb, then
 * fp_json_pack): what the streamed parser hands on to, and the reference
 * the tests and the fuzzer hold it to. */
struct msgpack_packer;
int fp_json_text_pack_tree(const char *text, size_t len,
                           struct msgpack_packer *pk, char *err,
                           size_t errlen);

#endif /* FP_JSONMP_INT_H */
