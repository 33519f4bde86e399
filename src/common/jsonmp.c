/* jsonmp.c — JSON <-> msgpack conversion (see jsonmp.h for the mapping). */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "jsonmp.h"
#include "jsonmp_int.h"

#define BIN_KEY FP_JSON_BIN_KEY
#define EXT_KEY FP_JSON_EXT_KEY

/* fp_json_from_msgpack's object bound: generous for real data, small enough
 * that msgpack-c's zone (about 24 bytes per object) stays near 100 MiB. */
#define FROM_MSGPACK_MAX_OBJECTS ((size_t)1 << 22)

int
fp_jsonmp_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define seterr fp_jsonmp_err

/* ---- JSON -> msgpack ---------------------------------------------------- */

static int pack_value(json_t *v, msgpack_packer *pk, unsigned depth,
                      char *err, size_t errlen);

/* Decode base64 text (original alphabet, padded, no whitespace) into a new
 * buffer.  Returns it (malloc'ed, at least 1 byte) with *outlen set, or NULL
 * with a message in err. */
static unsigned char *
b64_decode(const char *what, const char *b64, size_t b64len, size_t *outlen,
           char *err, size_t errlen)
{
    unsigned char *bin = malloc(fp_b64_decode_room(b64len) + 1);

    if (bin == NULL) {
        seterr(err, errlen, "%s: out of memory", what);
        return NULL;
    }
    if (fp_b64_decode(bin, b64, b64len, outlen) != 0) {
        free(bin);
        seterr(err, errlen, "%s: invalid base64", what);
        return NULL;
    }
    return bin;
}

/* {"$bin": "<base64>"} -> bin. */
static int
pack_bin(json_t *b64, msgpack_packer *pk, char *err, size_t errlen)
{
    if (!json_is_string(b64))
        return seterr(err, errlen, "\"$bin\": value must be a base64 string");
    size_t n;
    unsigned char *bin = b64_decode("\"$bin\"", json_string_value(b64),
                                    json_string_length(b64), &n, err, errlen);
    if (bin == NULL)
        return -1;
    int rc = -1;
    if (n > UINT32_MAX)
        seterr(err, errlen, "\"$bin\": value too large for msgpack");
    else if (msgpack_pack_bin_with_body(pk, bin, n) != 0)
        seterr(err, errlen, "out of memory");
    else
        rc = 0;
    free(bin);
    return rc;
}

/* {"$ext": [type, "<base64>"]} -> ext. */
static int
pack_ext(json_t *a, msgpack_packer *pk, char *err, size_t errlen)
{
    json_t *type = json_array_get(a, 0), *data = json_array_get(a, 1);

    if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(type)
        || !json_is_string(data))
        return seterr(err, errlen,
                      "\"$ext\": value must be [type, \"<base64>\"]");
    json_int_t t = json_integer_value(type);
    if (t < INT8_MIN || t > INT8_MAX)
        return seterr(err, errlen, "\"$ext\": type %" JSON_INTEGER_FORMAT
                      " is outside -128..127", t);
    size_t n;
    unsigned char *bin = b64_decode("\"$ext\"", json_string_value(data),
                                    json_string_length(data), &n, err, errlen);
    if (bin == NULL)
        return -1;
    int rc = -1;
    if (n > UINT32_MAX)
        seterr(err, errlen, "\"$ext\": value too large for msgpack");
    else if (msgpack_pack_ext_with_body(pk, bin, n, (int8_t)t) != 0)
        seterr(err, errlen, "out of memory");
    else
        rc = 0;
    free(bin);
    return rc;
}

/* A JSON object: either one of the two reserved single-key forms, or a map
 * whose keys are packed as str (embedded NULs kept via the key length). */
static int
pack_object(json_t *v, msgpack_packer *pk, unsigned depth, char *err,
            size_t errlen)
{
    if (json_object_size(v) == 1) {
        json_t *x;
        if ((x = json_object_get(v, BIN_KEY)) != NULL)
            return pack_bin(x, pk, err, errlen);
        if ((x = json_object_get(v, EXT_KEY)) != NULL)
            return pack_ext(x, pk, err, errlen);
    }
    if (depth >= FP_MAX_DEPTH)
        return seterr(err, errlen, "nesting deeper than %d levels",
                      FP_MAX_DEPTH);
    if (json_object_size(v) > UINT32_MAX)
        return seterr(err, errlen, "object too large for msgpack");
    if (msgpack_pack_map(pk, json_object_size(v)) != 0)
        return seterr(err, errlen, "out of memory");

    const char *key;
    size_t keylen;
    json_t *val;
    json_object_keylen_foreach(v, key, keylen, val) {
        if (msgpack_pack_str_with_body(pk, key, keylen) != 0)
            return seterr(err, errlen, "out of memory");
        if (pack_value(val, pk, depth + 1, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int
pack_array(json_t *v, msgpack_packer *pk, unsigned depth, char *err,
           size_t errlen)
{
    size_t i;
    json_t *val;

    if (depth >= FP_MAX_DEPTH)
        return seterr(err, errlen, "nesting deeper than %d levels",
                      FP_MAX_DEPTH);
    if (json_array_size(v) > UINT32_MAX)
        return seterr(err, errlen, "array too large for msgpack");
    if (msgpack_pack_array(pk, json_array_size(v)) != 0)
        return seterr(err, errlen, "out of memory");
    json_array_foreach(v, i, val) {
        if (pack_value(val, pk, depth + 1, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Pack v, with `depth` containers already open around it.  Containers are
 * refused at depth FP_MAX_DEPTH, so the result never nests deeper than
 * msgpack-c's unpacker (MSGPACK_EMBED_STACK_SIZE) accepts. */
static int
pack_value(json_t *v, msgpack_packer *pk, unsigned depth, char *err,
           size_t errlen)
{
    int rc;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return pack_object(v, pk, depth, err, errlen);
    case JSON_ARRAY:
        return pack_array(v, pk, depth, err, errlen);
    case JSON_STRING:
        if (json_string_length(v) > UINT32_MAX)
            return seterr(err, errlen, "string too large for msgpack");
        rc = msgpack_pack_str_with_body(pk, json_string_value(v),
                                        json_string_length(v));
        break;
    case JSON_INTEGER:
        rc = msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        rc = msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        rc = msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        rc = msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        rc = msgpack_pack_nil(pk);
        break;
    default:
        return seterr(err, errlen, "unknown JSON type");
    }
    return rc == 0 ? 0 : seterr(err, errlen, "out of memory");
}

/* All or nothing: the value is packed into a scratch buffer first, so that a
 * failure half-way (bad "$bin", too deep) leaves nothing in pk's stream. */
int
fp_json_pack(const json_t *v, msgpack_packer *pk, char *err, size_t errlen)
{
    struct fp_buf tmp = FP_BUF_INIT;
    msgpack_packer tpk;
    int rc = -1;

    if (v == NULL)
        return seterr(err, errlen, "no JSON value");
    msgpack_packer_init(&tpk, &tmp, fp_buf_pack_write);
    /* jansson's accessors take non-const pointers; nothing is modified. */
    if (pack_value((json_t *)v, &tpk, 0, err, errlen) < 0)
        goto out;
    if (pk->callback(pk->data, fp_buf_head(&tmp), tmp.len) != 0) {
        seterr(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    fp_buf_free(&tmp);
    return rc;
}

/* Flags: any top-level value (a job may be a bare number or string);
 * \u0000 allowed (msgpack str carries NULs); duplicate keys refused, since
 * text that says two things about one key is almost surely a mistake.
 * jansson refuses trailing garbage and nesting past JSON_PARSER_MAX_DEPTH
 * (2048) by itself; pack_value then applies the msgpack bound. */
int
fp_json_text_pack_tree(const char *text, size_t len, msgpack_packer *pk, char *err,
               size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL
                           | JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL)
        return seterr(err, errlen, "line %d column %d: %s", jerr.line,
                      jerr.column, jerr.text);
    int rc = fp_json_pack(v, pk, err, errlen);
    json_decref(v);
    return rc;
}

int
fp_json_text_to_buf(const char *text, size_t len, struct fp_buf *out,
                    char *err, size_t errlen)
{
    msgpack_packer pk;

    if (fp_json_stream_pack(text, len, out) == 0)
        return 0;
    msgpack_packer_init(&pk, out, fp_buf_pack_write);
    return fp_json_text_pack_tree(text, len, &pk, err, errlen);
}

int
fp_json_text_pack(const char *text, size_t len, msgpack_packer *pk,
                  char *err, size_t errlen)
{
    struct fp_buf tmp = FP_BUF_INIT;
    int rc = fp_json_text_to_buf(text, len, &tmp, err, errlen);

    if (rc == 0 && pk->callback(pk->data, fp_buf_head(&tmp), tmp.len) != 0)
        rc = seterr(err, errlen, "out of memory");
    fp_buf_free(&tmp);
    return rc;
}

/* ---- msgpack -> JSON ---------------------------------------------------- */

static json_t *conv(const msgpack_object *o, unsigned depth, char *err,
                    size_t errlen);

/* New base64 JSON string for n bytes, or NULL. */
static json_t *
b64_string(const void *p, size_t n)
{
    char *b64 = malloc(fp_b64_encoded_len(n) + 1);

    if (b64 == NULL)
        return NULL;
    size_t len = fp_b64_encode(b64, p, n);
    json_t *s = json_stringn_nocheck(b64, len);       /* base64 is ASCII */
    free(b64);
    return s;
}

/* {"$bin": "<base64>"} for n bytes, or NULL. */
static json_t *
bin_object(const void *p, size_t n)
{
    json_t *s = b64_string(p, n);
    json_t *o = s != NULL ? json_object() : NULL;

    if (o == NULL || json_object_set_new(o, BIN_KEY, s) != 0) {
        if (o == NULL)
            json_decref(s);
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *
ext_object(const msgpack_object_ext *e)
{
    json_t *a = json_pack("[io]", (int)e->type, b64_string(e->ptr, e->size));
    json_t *o = a != NULL ? json_object() : NULL;

    if (o == NULL || json_object_set_new(o, EXT_KEY, a) != 0) {
        if (o == NULL)
            json_decref(a);
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A str as a JSON string; jansson holds only valid UTF-8, so bytes that are
 * not become {"$bin": ...} instead (nothing is lost, the type changes).
 * An empty str may carry a NULL pointer, which json_stringn refuses. */
static json_t *
str_value(const char *p, size_t n)
{
    json_t *s = n == 0 ? json_string("") : json_stringn(p, n);
    return s != NULL ? s : bin_object(p, n);
}

#define KEY_TEXT_MAX FP_JSON_KEY_TEXT_MAX

/* The text a map key becomes: a str key as itself, anything else as its
 * compact JSON text (1 -> "1", true -> "true", [1] -> "[1]").  Returns a
 * new JSON string, or NULL with err set. */
static json_t *
key_string(const msgpack_object *k, unsigned depth, char *err, size_t errlen)
{
    json_t *kv = conv(k, depth, err, errlen);
    if (kv == NULL || json_is_string(kv))
        return kv;
    char *text = json_dumps(kv, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(kv);
    if (text == NULL) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (strlen(text) > KEY_TEXT_MAX) {
        free(text);
        seterr(err, errlen, "a map key is too long once written as JSON text");
        return NULL;
    }
    json_t *s = json_string(text);
    free(text);
    if (s == NULL)
        seterr(err, errlen, "out of memory");
    return s;
}

/* Later duplicates (or keys that collide once converted, like 1 and "1")
 * replace earlier ones: last wins. */
static json_t *
conv_map(const msgpack_object_map *m, unsigned depth, char *err,
         size_t errlen)
{
    json_t *obj = json_object();

    if (obj == NULL)
        goto nomem;
    for (uint32_t i = 0; i < m->size; i++) {
        json_t *k = key_string(&m->ptr[i].key, depth + 1, err, errlen);
        if (k == NULL)
            goto fail;
        json_t *v = conv(&m->ptr[i].val, depth + 1, err, errlen);
        if (v == NULL) {
            json_decref(k);
            goto fail;
        }
        int rc = json_object_setn_new_nocheck(obj, json_string_value(k),
                                              json_string_length(k), v);
        json_decref(k);
        if (rc != 0)
            goto nomem;
    }
    return obj;
nomem:
    seterr(err, errlen, "out of memory");
fail:
    json_decref(obj);
    return NULL;
}

static json_t *
conv_array(const msgpack_object_array *a, unsigned depth, char *err,
           size_t errlen)
{
    json_t *arr = json_array();

    if (arr == NULL)
        goto nomem;
    for (uint32_t i = 0; i < a->size; i++) {
        json_t *v = conv(&a->ptr[i], depth + 1, err, errlen);
        if (v == NULL)
            goto fail;
        if (json_array_append_new(arr, v) != 0)
            goto nomem;
    }
    return arr;
nomem:
    seterr(err, errlen, "out of memory");
fail:
    json_decref(arr);
    return NULL;
}

/* Convert o, found inside `depth` containers.  The same depth rule as
 * pack_value: a container at depth FP_MAX_DEPTH is refused (unpacked
 * objects never get there; hand-built ones might). */
static json_t *
conv(const msgpack_object *o, unsigned depth, char *err, size_t errlen)
{
    json_t *v;
    char num[24];

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        v = json_null();
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        v = json_boolean(o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 <= (uint64_t)INT64_MAX) {
            v = json_integer((json_int_t)o->via.u64);
        } else {
            snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
            v = json_string(num);
        }
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v = json_integer((json_int_t)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v = isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
        break;
    case MSGPACK_OBJECT_STR:
        v = str_value(o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        v = bin_object(o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        v = ext_object(&o->via.ext);
        break;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        if (depth >= FP_MAX_DEPTH) {
            seterr(err, errlen, "nesting deeper than %d levels",
                   FP_MAX_DEPTH);
            return NULL;
        }
        if (o->type == MSGPACK_OBJECT_ARRAY)
            return conv_array(&o->via.array, depth, err, errlen);
        return conv_map(&o->via.map, depth, err, errlen);
    default:
        seterr(err, errlen, "unknown msgpack type %d", (int)o->type);
        return NULL;
    }
    if (v == NULL)
        seterr(err, errlen, "out of memory");
    return v;
}

json_t *
fp_json_from_object(const msgpack_object *o, char *err, size_t errlen)
{
    if (o == NULL) {
        seterr(err, errlen, "no msgpack object");
        return NULL;
    }
    return conv(o, 0, err, errlen);
}

/* The unpacker would otherwise trust a declared count (0xdd ffffffff) and
 * reserve for it. */
int
fp_jsonmp_check_msgpack(const char *data, size_t len, char *err,
                        size_t errlen)
{
    struct fp_scanner sc;
    struct fp_limits lim = {
        .max_bytes = len,
        .max_objects = FROM_MSGPACK_MAX_OBJECTS,
        .max_depth = FP_MAX_DEPTH,
    };
    const char *why = "invalid msgpack";

    if (data == NULL || len == 0)
        return seterr(err, errlen, "msgpack: empty input");
    fp_scanner_reset(&sc);
    ssize_t n = fp_scan(&sc, data, len, &lim, &why);
    if (n < 0 && strcmp(why, "frame too large") == 0) {
        /* With max_bytes == len this means the value needs more bytes than
         * were given: truncated, or a declared size that is a lie. */
        return seterr(err, errlen, "msgpack: truncated (the value needs more "
                      "than the %zu bytes given)", len);
    }
    if (n < 0)
        return seterr(err, errlen, "msgpack: %s", why);
    if (n == 0)
        return seterr(err, errlen, "msgpack: truncated value");
    if ((size_t)n != len)
        return seterr(err, errlen, "msgpack: %zu trailing bytes after the "
                      "value", len - (size_t)n);
    return 0;
}

json_t *
fp_json_from_msgpack(const char *data, size_t len, char *err, size_t errlen)
{
    if (fp_jsonmp_check_msgpack(data, len, err, errlen) < 0)
        return NULL;
    msgpack_unpacked up;
    size_t off = 0;
    json_t *v = NULL;
    msgpack_unpacked_init(&up);
    msgpack_unpack_return ret = msgpack_unpack_next(&up, data, len, &off);
    if (ret == MSGPACK_UNPACK_SUCCESS && off == len)
        v = conv(&up.data, 0, err, errlen);
    else if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        seterr(err, errlen, "msgpack: out of memory");
    else
        seterr(err, errlen, "msgpack: invalid value");
    msgpack_unpacked_destroy(&up);
    return v;
}
