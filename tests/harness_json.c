/*
 * harness_json.c — JSON <-> msgpack for the integration tests (jansson;
 * independent of the project's own converter), and reading msgpack maps
 * (see harness.h).
 */
#include "config.h"
#include <check.h>
#include <jansson.h>
#include <msgpack.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "modutil.h"
#include "harness_int.h"

static void
pack_json(msgpack_packer *pk, json_t *v)
{
    const char *key;
    json_t *val;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach(v, key, val) {
            msgpack_pack_str_with_body(pk, key, strlen(key));
            pack_json(pk, val);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, val)
            pack_json(pk, val);
        break;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

void
h_pack_json_text(msgpack_packer *pk, const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

    ck_assert_msg(v != NULL, "bad JSON in test: %s: %s", text, err.text);
    pack_json(pk, v);
    json_decref(v);
}

static json_t *
to_json(const msgpack_object *o)
{
    static const char hex[] = "0123456789abcdef";
    json_t *v = NULL;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        v = json_stringn(o->via.str.ptr, o->via.str.size);
        if (v != NULL)
            return v;
        /* not UTF-8: fall through to the bin form */
        /* FALLTHROUGH */
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT: {
        const char *p = o->type == MSGPACK_OBJECT_EXT ? o->via.ext.ptr : o->via.bin.ptr;
        size_t n = o->type == MSGPACK_OBJECT_EXT ? o->via.ext.size : o->via.bin.size;
        char *h = malloc(2 * n + 1);
        for (size_t i = 0; i < n; i++) {
            h[2 * i] = hex[(unsigned char)p[i] >> 4];
            h[2 * i + 1] = hex[(unsigned char)p[i] & 15];
        }
        h[2 * n] = '\0';
        v = json_pack("{s:s}", o->type == MSGPACK_OBJECT_EXT ? "$ext" : "$bin", h);
        free(h);
        return v;
    }
    case MSGPACK_OBJECT_ARRAY:
        v = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(v, to_json(&o->via.array.ptr[i]));
        return v;
    case MSGPACK_OBJECT_MAP:
        v = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char *ks;
            if (k->type == MSGPACK_OBJECT_STR) {
                ks = strndup(k->via.str.ptr, k->via.str.size);
            } else {
                json_t *kj = to_json(k);
                ks = json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY);
                json_decref(kj);
            }
            json_object_set_new(v, ks, to_json(&o->via.map.ptr[i].val));
            free(ks);
        }
        return v;
    }
    return json_null();
}

/* An outcome map: a submit's result or error, a batch outcome. */
static int
is_outcome(json_t *v)
{
    return json_is_object(v) && json_object_get(v, "id") != NULL
           && (json_object_get(v, "result") != NULL
               || json_object_get(v, "detail") != NULL);
}

const char *
h_json(const msgpack_object *o)
{
    json_t *v;
    char *s;

    if (o == NULL)
        return "null";
    v = to_json(o);
    if (is_outcome(v)) {
        json_object_del(v, "stats");
        json_object_del(v, "stderr");
    }
    s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    ck_assert_ptr_nonnull(s);
    return h_keep(s);
}

const msgpack_object *
h_get(const msgpack_object *map, const char *key)
{
    return get(map, key);
}

int64_t
h_get_int(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = h_get(map, key);

    ck_assert_msg(v != NULL, "no key \"%s\" in %s", key, h_json(map));
    ck_assert_msg(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                  || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER,
                  "\"%s\" is not an integer in %s", key, h_json(map));
    return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : v->via.i64;
}

const char *
h_get_str(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = h_get(map, key);

    ck_assert_msg(v != NULL && v->type == MSGPACK_OBJECT_STR,
                  "\"%s\" is missing or not a string in %s", key, h_json(map));
    return h_keep(strndup(v->via.str.ptr, v->via.str.size));
}

/* Remove, from p on, the JSON value that starts there (an object with no
 * nested one, or a string), with the ", \"key\": " of len bytes before
 * it (the rest of the NUL-ended line moves up). */
static void
cut_value(char *key_at, size_t keylen)
{
    char *p = key_at + keylen, *end;

    if (*p == '{') {
        end = strchr(p, '}');
    } else {
        for (end = p + 1; *end != '\0' && *end != '"'; end++)
            if (*end == '\\' && end[1] != '\0')
                end++;
    }
    if (end != NULL && *end != '\0')
        memmove(key_at, end + 1, strlen(end + 1) + 1);
}

size_t
h_strip_receipts(char *text)
{
    static const char *const keys[] = { ", \"stats\": ", ", \"stderr\": " };
    char *in = text, *out = text;

    while (*in != '\0') {
        char *nl = strchr(in, '\n');
        size_t len = nl != NULL ? (size_t)(nl - in) + 1 : strlen(in);
        char *line = strndup(in, len);
        ck_assert_ptr_nonnull(line);
        if (strstr(line, "\"ok\": ") != NULL)
            for (size_t i = 0; i < 2; i++) {
                char *k = strstr(line, keys[i]);
                if (k != NULL)
                    cut_value(k, strlen(keys[i]));
            }
        size_t n = strlen(line);
        memcpy(out, line, n);
        free(line);
        out += n;
        in += len;
    }
    *out = '\0';
    return (size_t)(out - text);
}

/* Compact JSON with sorted keys, as h_json() prints msgpack values. */
const char *
h_canon(const char *json)
{
    static char buf[8][4096];
    static int next;
    json_error_t err;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &err);
    char *s;

    ck_assert_msg(v != NULL, "bad JSON in test: %s", json);
    s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    next = (next + 1) % 8;
    snprintf(buf[next], sizeof(buf[next]), "%s", s);
    free(s);
    return buf[next];
}
