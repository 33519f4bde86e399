/*
 * jsonmp_write.c — msgpack -> JSON text without a jansson tree: the bytes
 * are bounded (fp_scan), unpacked into msgpack-c objects that point into
 * them, and written straight into a buffer, byte for byte as json_dumps
 * would print the tree fp_json_from_msgpack builds (jsonmp.h's mapping):
 * jansson's string escapes, its "%.17g" reals, its separators, and a map's
 * colliding keys resolved as a jansson object does (the first one's place,
 * the last one's value).
 */
#include "config.h"
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "b64.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "jsonmp.h"
#include "jsonmp_int.h"

/* ---- UTF-8 and strings -------------------------------------------------- */

/* The length of the sequence starting with byte c, as jansson's
 * utf8_check_first: 0 for a byte that cannot start one. */
static int
utf8_first(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;       /* continuation byte, or overlong 0xc0/0xc1 */
    if (c <= 0xdf)
        return 2;
    if (c <= 0xef)
        return 3;
    if (c <= 0xf4)
        return 4;
    return 0;
}

int
fp_utf8_valid(const char *s, size_t n)
{
    if (n == 0)         /* an empty str may come with a NULL pointer */
        return 1;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        /* ASCII runs, eight bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ull)
                break;
            p += 8;
        }
        if (p == end)
            break;
        if (*p < 0x80) {
            p++;
            continue;
        }
        int len = utf8_first(*p);
        if (len == 0 || end - p < len)
            return 0;
        uint32_t v = *p & (0xff >> (len + 1));
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            v = v << 6 | (p[i] & 0x3f);
        }
        if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)
            || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000))
            return 0;       /* len == 2 overlongs start 0xc0/0xc1 */
        p += len;
    }
    return 1;
}

/* Bytes jansson escapes in strings: '"', '\\' and the C0 controls. */
static int
needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

int
fp_json_write_string(struct fp_buf *out, const char *s, size_t n)
{
    if (n == 0)
        return fp_buf_append(out, "\"\"", 2);
    /* Worst case \u00XX for every byte; reserve once for short strings. */
    if (fp_buf_reserve(out, n + 2) == NULL)
        return -1;
    out->data[out->off + out->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape(c))
            continue;
        char esc[8];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", c);
            elen = 6;
        }
        if (fp_buf_append(out, s + run, i - run) != 0
            || fp_buf_append(out, esc, elen) != 0)
            return -1;
        run = i + 1;
    }
    if (fp_buf_append(out, s + run, n - run) != 0
        || fp_buf_append(out, "\"", 1) != 0)
        return -1;
    return 0;
}

/* ---- the writer --------------------------------------------------------- */

/* One key/value pair of a map being written: where its text lies. */
struct pair {
    size_t key, key_len;        /* the key's JSON string, quotes included */
    size_t val, val_len;
    size_t idx;                 /* its place in the map */
    const char *p;              /* set only while keys are compared */
};

struct writer {
    struct fp_buf *out;
    char          *err;
    size_t         errlen;
    struct pair   *pairs;       /* a stack: the open maps' pairs */
    size_t         npairs, cappairs;
};

static int write_value(struct writer *w, const msgpack_object *o,
                       unsigned depth, int spaced);

static int
nomem(struct writer *w)
{
    return fp_jsonmp_err(w->err, w->errlen, "out of memory");
}

static int
put(struct writer *w, const char *p, size_t n)
{
    return fp_buf_append(w->out, p, n) == 0 ? 0 : nomem(w);
}

#define PUTS(w, lit) put((w), (lit), sizeof(lit) - 1)

/* A real as jansson's jsonp_dtostr prints it: "%.17g", ".0" added when it
 * would read back as an integer, the exponent without '+' or leading 0s. */
static int
put_real(struct writer *w, double v)
{
    char buf[100];
    int n = snprintf(buf, sizeof buf - 3, "%.17g", v);

    if (n < 0 || (size_t)n >= sizeof buf - 3)
        return nomem(w);
    size_t len = (size_t)n;
    if (strchr(buf, '.') == NULL && strchr(buf, 'e') == NULL) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    char *start = strchr(buf, 'e');
    if (start != NULL) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf));
            len -= (size_t)(end - start);
        }
    }
    return put(w, buf, len);
}

/* {"$bin": "<base64>"}, or the "$ext" form's [type, "<base64>"] part. */
static int
put_b64(struct writer *w, const char *p, size_t n)
{
    size_t len = fp_b64_encoded_len(n);
    char *dst = fp_buf_reserve(w->out, len + 2);   /* quotes, EVP's NUL */

    if (dst == NULL)
        return nomem(w);
    *dst = '"';
    fp_b64_encode(dst + 1, p, n);
    dst[len + 1] = '"';
    w->out->len += len + 2;
    return 0;
}

static int
put_bin(struct writer *w, const char *p, size_t n, int spaced)
{
    if ((spaced ? PUTS(w, "{\"$bin\": ") : PUTS(w, "{\"$bin\":")) < 0
        || put_b64(w, p, n) < 0)
        return -1;
    return PUTS(w, "}");
}

static int
put_ext(struct writer *w, const msgpack_object_ext *e, int spaced)
{
    char num[16];
    snprintf(num, sizeof num, "%d", (int)e->type);
    if ((spaced ? PUTS(w, "{\"$ext\": [") : PUTS(w, "{\"$ext\":[")) < 0
        || put(w, num, strlen(num)) < 0
        || (spaced ? PUTS(w, ", ") : PUTS(w, ",")) < 0
        || put_b64(w, e->ptr, e->size) < 0)
        return -1;
    return PUTS(w, "]}");
}

/* A str: a JSON string if it is UTF-8, else the {"$bin": ...} form. */
static int
put_str(struct writer *w, const char *p, size_t n, int spaced)
{
    if (!fp_utf8_valid(p, n))
        return put_bin(w, p, n, spaced);
    return fp_json_write_string(w->out, p, n) == 0 ? 0 : nomem(w);
}

/* A map key as the JSON string it becomes: a UTF-8 str as itself, a uint
 * beyond int64 as its digits, anything else as its compact JSON text,
 * which may not exceed FP_JSON_KEY_TEXT_MAX.  The text is written where
 * the key goes and then replaced by its escaped form. */
static int
put_key(struct writer *w, const msgpack_object *k, unsigned depth)
{
    if (k->type == MSGPACK_OBJECT_STR
        && fp_utf8_valid(k->via.str.ptr, k->via.str.size))
        return fp_json_write_string(w->out, k->via.str.ptr, k->via.str.size)
               == 0 ? 0 : nomem(w);
    if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER
        && k->via.u64 > (uint64_t)INT64_MAX) {
        char num[24];
        snprintf(num, sizeof num, "%" PRIu64, k->via.u64);
        return fp_json_write_string(w->out, num, strlen(num)) == 0
               ? 0 : nomem(w);
    }
    size_t at = w->out->len;
    if (write_value(w, k, depth, 0) < 0)
        return -1;
    size_t len = w->out->len - at;
    if (len > FP_JSON_KEY_TEXT_MAX) {
        w->out->len = at;
        return fp_jsonmp_err(w->err, w->errlen,
                             "a map key is too long once written as JSON text");
    }
    /* Escape a copy: the buffer may move while the escaped text grows. */
    char *text = malloc(len);
    if (text == NULL)
        return nomem(w);
    memcpy(text, fp_buf_head(w->out) + at, len);
    w->out->len = at;
    int rc = fp_json_write_string(w->out, text, len);
    free(text);
    return rc == 0 ? 0 : nomem(w);
}

static int
put_array(struct writer *w, const msgpack_object_array *a, unsigned depth,
          int spaced)
{
    if (PUTS(w, "[") < 0)
        return -1;
    for (uint32_t i = 0; i < a->size; i++) {
        if (i > 0 && (spaced ? PUTS(w, ", ") : PUTS(w, ",")) < 0)
            return -1;
        if (write_value(w, &a->ptr[i], depth + 1, spaced) < 0)
            return -1;
    }
    return PUTS(w, "]");
}

static int
cmp_pairs(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->p, y->p, n);
    if (c == 0)
        c = (x->key_len > y->key_len) - (x->key_len < y->key_len);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int
same_key(const struct pair *x, const struct pair *y)
{
    return x->key_len == y->key_len && memcmp(x->p, y->p, x->key_len) == 0;
}

/* The map written from `start` has colliding keys (its n pairs are
 * sorted by key, then place): write it again, each key once, at its first
 * place, with its last value. */
static int
rewrite_map(struct writer *w, size_t start, struct pair *pr, size_t n,
            int spaced)
{
    size_t *last = malloc(n * sizeof *last);    /* by place: value to use */
    struct fp_buf tmp = FP_BUF_INIT;
    const char *base = fp_buf_head(w->out);
    int rc = -1;

    if (last == NULL)
        return nomem(w);
    for (size_t i = 0; i < n; i++)
        last[i] = SIZE_MAX;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && same_key(&pr[i], &pr[j]); j++)
            ;
        last[pr[i].idx] = j - 1;        /* pr[i] is the first place */
    }
    /* Back to place order, remembering where each group's last went. */
    struct pair *byidx = malloc(n * sizeof *byidx);
    if (byidx == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++)
        byidx[pr[i].idx] = pr[i];
    for (size_t i = 0; i < n; i++)
        if (last[i] != SIZE_MAX)
            last[i] = pr[last[i]].idx;
    int first = 1;
    if (fp_buf_append(&tmp, "{", 1) != 0)
        goto oom_both;
    for (size_t i = 0; i < n; i++) {
        if (last[i] == SIZE_MAX)
            continue;
        const struct pair *k = &byidx[i], *v = &byidx[last[i]];
        if ((!first && fp_buf_append(&tmp, spaced ? ", " : ",",
                                     spaced ? 2 : 1) != 0)
            || fp_buf_append(&tmp, base + k->key, k->key_len) != 0
            || fp_buf_append(&tmp, spaced ? ": " : ":", spaced ? 2 : 1) != 0
            || fp_buf_append(&tmp, base + v->val, v->val_len) != 0)
            goto oom_both;
        first = 0;
    }
    if (fp_buf_append(&tmp, "}", 1) != 0)
        goto oom_both;
    w->out->len = start;
    rc = put(w, fp_buf_head(&tmp), tmp.len);
    free(byidx);
    free(last);
    fp_buf_free(&tmp);
    return rc;
oom_both:
    free(byidx);
oom:
    free(last);
    fp_buf_free(&tmp);
    return nomem(w);
}

static int
put_map(struct writer *w, const msgpack_object_map *m, unsigned depth,
        int spaced)
{
    size_t start = w->out->len, first = w->npairs;

    if (PUTS(w, "{") < 0)
        return -1;
    for (uint32_t i = 0; i < m->size; i++) {
        if (i > 0 && (spaced ? PUTS(w, ", ") : PUTS(w, ",")) < 0)
            return -1;
        if (w->npairs == w->cappairs) {
            size_t cap = w->cappairs ? w->cappairs * 2 : 16;
            struct pair *p = realloc(w->pairs, cap * sizeof *p);
            if (p == NULL)
                return nomem(w);
            w->pairs = p;
            w->cappairs = cap;
        }
        struct pair *pr = &w->pairs[w->npairs++];
        pr->idx = i;
        pr->key = w->out->len;
        if (put_key(w, &m->ptr[i].key, depth + 1) < 0)
            return -1;
        pr = &w->pairs[w->npairs - 1];      /* put_key may grow pairs */
        pr->key_len = w->out->len - pr->key;
        if ((spaced ? PUTS(w, ": ") : PUTS(w, ":")) < 0)
            return -1;
        pr->val = w->out->len;
        if (write_value(w, &m->ptr[i].val, depth + 1, spaced) < 0)
            return -1;
        pr = &w->pairs[w->npairs - 1];
        pr->val_len = w->out->len - pr->val;
    }
    if (PUTS(w, "}") < 0)
        return -1;

    /* Colliding keys: rare, so looked for only now. */
    size_t n = w->npairs - first;
    int rc = 0;
    if (n >= 2) {
        struct pair *pr = w->pairs + first;
        const char *base = fp_buf_head(w->out);
        for (size_t i = 0; i < n; i++)
            pr[i].p = base + pr[i].key;
        qsort(pr, n, sizeof *pr, cmp_pairs);
        for (size_t i = 1; i < n; i++)
            if (same_key(&pr[i - 1], &pr[i])) {
                rc = rewrite_map(w, start, pr, n, spaced);
                break;
            }
    }
    w->npairs = first;
    return rc;
}

/* Write o, found inside `depth` containers; the same depth rule as the
 * tree path (unpacked objects never get past it: fp_scan bounds them). */
static int
write_value(struct writer *w, const msgpack_object *o, unsigned depth,
            int spaced)
{
    char num[24];

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return PUTS(w, "null");
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? PUTS(w, "true") : PUTS(w, "false");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 <= (uint64_t)INT64_MAX)
            snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
        else
            snprintf(num, sizeof num, "\"%" PRIu64 "\"", o->via.u64);
        return put(w, num, strlen(num));
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof num, "%" PRId64, o->via.i64);
        return put(w, num, strlen(num));
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? put_real(w, o->via.f64)
                                    : PUTS(w, "null");
    case MSGPACK_OBJECT_STR:
        return put_str(w, o->via.str.ptr, o->via.str.size, spaced);
    case MSGPACK_OBJECT_BIN:
        return put_bin(w, o->via.bin.ptr, o->via.bin.size, spaced);
    case MSGPACK_OBJECT_EXT:
        return put_ext(w, &o->via.ext, spaced);
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        if (depth >= FP_MAX_DEPTH)
            return fp_jsonmp_err(w->err, w->errlen,
                                 "nesting deeper than %d levels",
                                 FP_MAX_DEPTH);
        if (o->type == MSGPACK_OBJECT_ARRAY)
            return put_array(w, &o->via.array, depth, spaced);
        return put_map(w, &o->via.map, depth, spaced);
    default:
        return fp_jsonmp_err(w->err, w->errlen, "unknown msgpack type %d",
                             (int)o->type);
    }
}

int
fp_json_write_msgpack(struct fp_buf *out, const char *data, size_t len,
                      enum fp_json_style style, char *err, size_t errlen)
{
    struct writer w = { .out = out, .err = err, .errlen = errlen };
    size_t base = out->len;
    int rc = -1;

    if (fp_jsonmp_check_msgpack(data, len, err, errlen) < 0)
        return -1;
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    msgpack_unpack_return ret = msgpack_unpack_next(&up, data, len, &off);
    if (ret == MSGPACK_UNPACK_SUCCESS && off == len)
        rc = write_value(&w, &up.data, 0, style == FP_JSON_SPACED);
    else if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        fp_jsonmp_err(err, errlen, "msgpack: out of memory");
    else
        fp_jsonmp_err(err, errlen, "msgpack: invalid value");
    msgpack_unpacked_destroy(&up);
    free(w.pairs);
    if (rc < 0)
        out->len = base;
    return rc;
}
