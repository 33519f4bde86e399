/*
 * jsonmp_parse.c — JSON text -> msgpack without a tree, over yajl's event
 * (SAX) parser: each event appends its msgpack at once, containers get a
 * 5-byte header hole that is filled (and closed up) when they end.
 *
 * The contract is jansson's (jsonmp.h): the jansson path decides what is
 * valid and says why not.  This path vouches only for input where it gives
 * the same bytes, and gives up (-1) on everything else, so the caller can
 * run the jansson path for its result and message.  Where yajl is looser
 * than jansson, the gap is closed here:
 *   - yajl takes \v and \f as whitespace: text holding either is given up
 *     (jansson refuses both, outside strings and raw inside them);
 *   - yajl does not check the \u escapes of surrogates (a lone one becomes
 *     '?', a high one pairs with any \u after it): text with a \uD800-\uDFFF
 *     escape is given up (pairs are valid but rare; jansson decides);
 *   - yajl checks only the shape of UTF-8: strings with bytes >= 0x80 are
 *     checked here with jansson's rules (fp_utf8_valid);
 *   - duplicate keys, NUL in keys, integers beyond int64 and reals beyond
 *     double, which jansson refuses: given up;
 *   - numbers come as text (yajl_number) and are converted with strtoll /
 *     strtod and the same overflow rules as jansson's;
 *   - yajl lets an unfinished token (a string, a literal) after the value
 *     pass unseen: only whitespace may follow the value.
 * Like the jansson path, {"$bin"|"$ext": ...} as an object's only key is
 * that form, containers nest at most FP_MAX_DEPTH deep, and a form at that
 * depth is still fine (it is no container); anything else near those rules
 * (a bad base64 value, a second key after "$bin") is given up.
 */
#include "config.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <yajl/yajl_parse.h>

#include "b64.h"
#include "codec/buf.h"
#include "codec/frame.h"
#include "jsonmp.h"
#include "jsonmp_int.h"

#define HOLE 5                  /* bytes reserved for a container header */
#define SMALL_KEY_SET 8         /* maps up to this size: pairwise key check */

enum kind {
    LV_ARRAY,
    LV_MAP,
    LV_BIN,         /* {"$bin": ...}: step 0 wants the string, 1 the '}' */
    LV_EXT,         /* {"$ext": ...}: step 0 wants '[', 1 the '}' */
    LV_EXT_ARRAY,   /* its [type, data]: step 0 type, 1 data, 2 ']' */
};

struct level {
    enum kind kind;
    int       step;
    int       deep;     /* a map at FP_MAX_DEPTH: fine only as a form */
    uint32_t  count;    /* elements, or keys */
    size_t    hole;     /* offset of the header hole in out */
    size_t    keys;     /* this map's first entry in keys[] */
};

struct keyref {
    size_t      off;    /* the key's bytes in out */
    size_t      len;
    const char *p;      /* set (from off) only while keys are compared */
};

struct sp {
    struct fp_buf  *out;
    msgpack_packer  pk;
    struct level    lv[FP_MAX_DEPTH + 3];
    unsigned        n;          /* levels open */
    unsigned        depth;      /* containers open (forms do not count) */
    int             done;       /* the top-level value is complete */
    yajl_handle     h;
    int             finishing;  /* in yajl_complete_parse */
    size_t          end;        /* where the top-level value ended */
    int             ext_type;
    struct keyref  *keys;
    size_t          nkeys, capkeys;
};

static struct level *
top(struct sp *s)
{
    return s->n > 0 ? &s->lv[s->n - 1] : NULL;
}

/* A value is about to start: count it in its array.  0 (give up) where no
 * plain value may go: inside a form, or after the top-level value. */
static int
value_starts(struct sp *s)
{
    struct level *l = top(s);

    if (l == NULL)
        return !s->done;
    if (l->kind == LV_ARRAY) {
        if (l->count == UINT32_MAX)
            return 0;
        l->count++;
        return 1;
    }
    return l->kind == LV_MAP;
}

/* The value just packed may have been the top-level one: note where it
 * ended (yajl's offset, just past the token), unless yajl is finishing a
 * number that ran to the end of the text. */
static int
value_ends(struct sp *s)
{
    if (s->n == 0) {
        s->done = 1;
        s->end = s->finishing ? SIZE_MAX : yajl_get_bytes_consumed(s->h);
    }
    return 1;
}

static int
push(struct sp *s, enum kind kind)
{
    struct level *l = &s->lv[s->n++];

    l->kind = kind;
    l->step = 0;
    l->deep = 0;
    l->count = 0;
    l->hole = s->out->len;
    l->keys = s->nkeys;
    if (kind == LV_ARRAY || kind == LV_MAP) {
        l->deep = s->depth >= FP_MAX_DEPTH;
        s->depth++;
        if (fp_buf_reserve(s->out, HOLE) == NULL)
            return 0;
        s->out->len += HOLE;
    }
    return 1;
}

/* Fill the hole of the container ending now with its header, in msgpack's
 * shortest form (as msgpack_pack_array/map write it), closing up the gap. */
static void
close_hole(struct sp *s, const struct level *l)
{
    unsigned char h[HOLE];
    size_t hl;
    uint32_t c = l->count;
    int map = l->kind == LV_MAP;

    if (c <= 15) {
        h[0] = (unsigned char)((map ? 0x80 : 0x90) | c);
        hl = 1;
    } else if (c <= 0xffff) {
        h[0] = map ? 0xde : 0xdc;
        h[1] = (unsigned char)(c >> 8);
        h[2] = (unsigned char)c;
        hl = 3;
    } else {
        h[0] = map ? 0xdf : 0xdd;
        h[1] = (unsigned char)(c >> 24);
        h[2] = (unsigned char)(c >> 16);
        h[3] = (unsigned char)(c >> 8);
        h[4] = (unsigned char)c;
        hl = 5;
    }
    char *base = s->out->data + s->out->off;
    memcpy(base + l->hole, h, hl);
    if (hl < HOLE) {
        memmove(base + l->hole + hl, base + l->hole + HOLE,
                s->out->len - l->hole - HOLE);
        s->out->len -= HOLE - hl;
    }
    s->depth--;
    s->n--;
}

/* ---- keys --------------------------------------------------------------- */

static int
cmp_keys(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* 1 if two of the map's keys are the same bytes. */
static int
has_duplicate(struct sp *s, const struct level *l)
{
    size_t n = s->nkeys - l->keys;
    if (n < 2)
        return 0;
    struct keyref *k = s->keys + l->keys;
    const char *base = fp_buf_head(s->out);

    for (size_t i = 0; i < n; i++)
        k[i].p = base + k[i].off;
    if (n <= SMALL_KEY_SET) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (cmp_keys(&k[i], &k[j]) == 0)
                    return 1;
        return 0;
    }
    qsort(k, n, sizeof *k, cmp_keys);
    for (size_t i = 1; i < n; i++)
        if (cmp_keys(&k[i - 1], &k[i]) == 0)
            return 1;
    return 0;
}

static int
remember_key(struct sp *s, size_t off, size_t len)
{
    if (s->nkeys == s->capkeys) {
        size_t cap = s->capkeys ? s->capkeys * 2 : 16;
        struct keyref *k = realloc(s->keys, cap * sizeof *k);
        if (k == NULL)
            return 0;
        s->keys = k;
        s->capkeys = cap;
    }
    s->keys[s->nkeys].off = off;
    s->keys[s->nkeys].len = len;
    s->nkeys++;
    return 1;
}

/* ---- yajl callbacks: 1 to go on, 0 to give up ---------------------------- */

static int
on_null(void *ctx)
{
    struct sp *s = ctx;
    return value_starts(s) && msgpack_pack_nil(&s->pk) == 0 && value_ends(s);
}

static int
on_boolean(void *ctx, int v)
{
    struct sp *s = ctx;
    return value_starts(s)
           && (v ? msgpack_pack_true(&s->pk) : msgpack_pack_false(&s->pk)) == 0
           && value_ends(s);
}

/* A JSON number's text as jansson reads it: an integer (strtoll, refused
 * beyond int64) unless it has a fraction or exponent, then a double
 * (strtod, refused on overflow, underflow allowed).  0 if refused. */
static int
read_number(const char *text, size_t len, int *is_real, long long *i,
            double *d)
{
    char buf[64];

    if (len >= sizeof buf)      /* long spellings: jansson decides */
        return 0;
    memcpy(buf, text, len);
    buf[len] = '\0';
    *is_real = strpbrk(buf, ".eE") != NULL;
    errno = 0;
    if (!*is_real) {
        *i = strtoll(buf, NULL, 10);
        return errno != ERANGE;
    }
    *d = strtod(buf, NULL);
    return !((*d == HUGE_VAL || *d == -HUGE_VAL) && errno == ERANGE);
}

static int
on_number(void *ctx, const char *text, size_t len)
{
    struct sp *s = ctx;
    struct level *l = top(s);
    int is_real = 0;
    long long i = 0;
    double d = 0;

    if (!read_number(text, len, &is_real, &i, &d))
        return 0;
    if (l != NULL && l->kind == LV_EXT_ARRAY) {
        if (l->step != 0 || is_real || i < INT8_MIN || i > INT8_MAX)
            return 0;
        s->ext_type = (int)i;
        l->step = 1;
        return 1;
    }
    if (!value_starts(s))
        return 0;
    int rc = is_real ? msgpack_pack_double(&s->pk, d)
                     : msgpack_pack_int64(&s->pk, (int64_t)i);
    return rc == 0 && value_ends(s);
}

/* Decode base64 as a bin (ext_type < 0) or ext, in place of the form's
 * header hole at `at`. */
static int
pack_b64(struct sp *s, size_t at, int ext_type, const char *b64, size_t len)
{
    size_t room = fp_b64_decode_room(len), n;

    if (len % 4 != 0)
        return 0;
    s->out->len = at;
    /* The exact length first (for the header): the padding tells it. */
    n = room - (len > 0 && b64[len - 1] == '=') - (len > 1 && b64[len - 2] == '=');
    if (ext_type < -128 ? msgpack_pack_bin(&s->pk, n) != 0
                        : msgpack_pack_ext(&s->pk, n, (int8_t)ext_type) != 0)
        return 0;
    char *dst = fp_buf_reserve(s->out, room);
    size_t got;
    if (dst == NULL || fp_b64_decode(dst, b64, len, &got) != 0 || got != n)
        return 0;
    s->out->len += n;
    return 1;
}

#define NOT_EXT (-129)

static int
on_string(void *ctx, const unsigned char *str, size_t len)
{
    struct sp *s = ctx;
    struct level *l = top(s);
    const char *p = (const char *)str;

    if (l != NULL && l->kind == LV_BIN) {
        if (l->step != 0 || !pack_b64(s, l->hole, NOT_EXT, p, len))
            return 0;
        l->step = 1;
        return 1;
    }
    if (l != NULL && l->kind == LV_EXT_ARRAY) {
        if (l->step != 1 || !pack_b64(s, l[-1].hole, s->ext_type, p, len))
            return 0;
        l->step = 2;
        return 1;
    }
    if (!value_starts(s) || len > UINT32_MAX || !fp_utf8_valid(p, len))
        return 0;
    return msgpack_pack_str_with_body(&s->pk, p, len) == 0 && value_ends(s);
}

static int
on_start_map(void *ctx)
{
    struct sp *s = ctx;
    return value_starts(s) && push(s, LV_MAP);
}

static int
on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    struct sp *s = ctx;
    struct level *l = top(s);
    const char *p = (const char *)key;

    if (l == NULL || l->kind != LV_MAP)     /* a 2nd key in a form */
        return 0;
    if (l->count == 0 && len == 4
        && (memcmp(p, FP_JSON_BIN_KEY, 4) == 0
            || memcmp(p, FP_JSON_EXT_KEY, 4) == 0)) {
        l->kind = p[1] == 'b' ? LV_BIN : LV_EXT;
        s->depth--;                         /* a form, not a container */
        return 1;
    }
    if (l->deep || l->count == UINT32_MAX || len > UINT32_MAX
        || memchr(p, '\0', len) != NULL || !fp_utf8_valid(p, len)
        || msgpack_pack_str(&s->pk, len) != 0)
        return 0;
    size_t off = s->out->len;
    if (fp_buf_append(s->out, p, len) != 0 || !remember_key(s, off, len))
        return 0;
    l->count++;
    return 1;
}

static int
on_end_map(void *ctx)
{
    struct sp *s = ctx;
    struct level *l = top(s);

    if (l == NULL)
        return 0;
    if (l->kind == LV_MAP) {
        if (l->deep || has_duplicate(s, l))
            return 0;
        s->nkeys = l->keys;
        close_hole(s, l);
    } else if ((l->kind == LV_BIN || l->kind == LV_EXT) && l->step == 1) {
        s->n--;
    } else {
        return 0;
    }
    return value_ends(s);
}

static int
on_start_array(void *ctx)
{
    struct sp *s = ctx;
    struct level *l = top(s);

    if (l != NULL && l->kind == LV_EXT && l->step == 0)
        return push(s, LV_EXT_ARRAY);
    return value_starts(s) && s->depth < FP_MAX_DEPTH && push(s, LV_ARRAY);
}

static int
on_end_array(void *ctx)
{
    struct sp *s = ctx;
    struct level *l = top(s);

    if (l == NULL)
        return 0;
    if (l->kind == LV_EXT_ARRAY) {
        if (l->step != 2)
            return 0;
        s->n--;
        l[-1].step = 1;
        return 1;
    }
    if (l->kind != LV_ARRAY)
        return 0;
    close_hole(s, l);
    return value_ends(s);
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

/* ---- entry -------------------------------------------------------------- */

/* 0 if the text holds what yajl would read differently from jansson:
 * \v or \f anywhere, or a \u escape of a surrogate (see the top). */
static int
yajl_reads_it_alike(const char *p, size_t n)
{
    const char *end = p + n, *q = p;

    if (memchr(p, '\v', n) != NULL || memchr(p, '\f', n) != NULL)
        return 0;
    while (q < end && (q = memchr(q, '\\', (size_t)(end - q))) != NULL) {
        if (end - q >= 4 && q[1] == 'u' && (q[2] | 0x20) == 'd'
            && ((q[3] >= '8' && q[3] <= '9') || ((q[3] | 0x20) >= 'a'
                                                 && (q[3] | 0x20) <= 'f')))
            return 0;
        q += 2;
    }
    return 1;
}

/* JSON's whitespace, as jansson reads it. */
static int
only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
    return 1;
}

static const char *
skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A text that is just one {"$bin": "<base64>"} object -- how binary
 * payloads travel in JSON lines -- is packed without the parser: base64
 * has neither '"' nor '\\', so the string ends at the next '"', found by
 * memchr.  For a 1 MiB payload the parser's byte-by-byte scan of the string
 * otherwise costs as much as decoding it.  Returns 1 when packed; 0 when
 * the text is anything else or its value is not base64 (the general path
 * then takes it, and reports what is wrong), with out as it was. */
static int
pack_bin_text(const char *text, size_t len, struct fp_buf *out)
{
    static const char key[] = "\"$bin\"";
    const char *end = text + len, *p = skip_space(text, end), *b64, *q;
    size_t base = out->len;
    struct sp s;

    if (p == end || *p++ != '{')
        return 0;
    p = skip_space(p, end);
    if ((size_t)(end - p) < sizeof key - 1 || memcmp(p, key, sizeof key - 1) != 0)
        return 0;
    p = skip_space(p + sizeof key - 1, end);
    if (p == end || *p++ != ':')
        return 0;
    p = skip_space(p, end);
    if (p == end || *p++ != '"' || (q = memchr(p, '"', (size_t)(end - p))) == NULL)
        return 0;
    b64 = p;
    p = skip_space(q + 1, end);
    if (p == end || *p++ != '}' || skip_space(p, end) != end
        || memchr(b64, '\\', (size_t)(q - b64)) != NULL)
        return 0;
    memset(&s, 0, sizeof s);
    s.out = out;
    msgpack_packer_init(&s.pk, out, fp_buf_pack_write);
    if (pack_b64(&s, base, NOT_EXT, b64, (size_t)(q - b64)))
        return 1;
    out->len = base;
    return 0;
}

int
fp_json_stream_pack(const char *text, size_t len, struct fp_buf *out)
{
    struct sp s;
    size_t base = out->len;
    int ok = 0;

    if (len > UINT32_MAX || !yajl_reads_it_alike(text, len))
        return -1;
    if (pack_bin_text(text, len, out))
        return 0;
    memset(&s, 0, sizeof s);
    s.out = out;
    msgpack_packer_init(&s.pk, out, fp_buf_pack_write);
    yajl_handle h = s.h = yajl_alloc(&callbacks, NULL, &s);
    if (h != NULL) {
        yajl_config(h, yajl_dont_validate_strings, 1);
        ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok;
        s.finishing = 1;
        ok = ok && yajl_complete_parse(h) == yajl_status_ok && s.done
             && s.n == 0
             && (s.end == SIZE_MAX || only_space(text + s.end, len - s.end));
        yajl_free(h);
    }
    free(s.keys);
    if (!ok) {
        out->len = base;
        return -1;
    }
    return 0;
}
