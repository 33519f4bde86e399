/* frame.c — validating msgpack frame scanner and reader (see frame.h). */
#include "config.h"
#include <stdint.h>
#include <string.h>

#include "frame.h"

#define E_BIG   "frame too large"
#define E_MANY  "too many objects"
#define E_DEEP  "nesting too deep"
#define E_BAD   "invalid msgpack"

/* One decoded element header.  Every element is laid out as `hs` header
 * bytes followed by `body` payload bytes; containers have no body of their
 * own but owe `n` values (2 per map pair).  Fixed-width scalars are modelled
 * as a 1-byte header plus their payload as body, fixext as 2 + body, so that
 * a header is never more than 6 bytes. */
struct hdr {
    int      type;      /* enum fp_type */
    unsigned hs;        /* header bytes, type byte included */
    uint64_t body;      /* payload bytes after the header */
    uint64_t n;         /* array elements / map pairs */
};

static uint64_t
be(const unsigned char *p, unsigned w)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/* Decode the header at p (avail >= 1 bytes available).  Returns 1 when it is
 * complete, 0 when it needs h->hs bytes but fewer are available (h->type and
 * h->hs are still set), -1 for the never-used byte 0xc1. */
static int
decode_hdr(const unsigned char *p, size_t avail, struct hdr *h)
{
    unsigned b = p[0], lw = 0;          /* lw: width of a length field */
    h->hs = 1;
    h->body = 0;
    h->n = 0;
    if (b <= 0x7f) {
        h->type = FP_T_UINT;
    } else if (b <= 0x8f) {
        h->type = FP_T_MAP;
        h->n = b & 0x0f;
    } else if (b <= 0x9f) {
        h->type = FP_T_ARRAY;
        h->n = b & 0x0f;
    } else if (b <= 0xbf) {
        h->type = FP_T_STR;
        h->body = b & 0x1f;
    } else if (b >= 0xe0) {
        h->type = FP_T_INT;
    } else {
        switch (b) {
        case 0xc0: h->type = FP_T_NIL; break;
        case 0xc2: case 0xc3: h->type = FP_T_BOOL; break;
        case 0xc4: case 0xc5: case 0xc6:
            h->type = FP_T_BIN; lw = 1u << (b - 0xc4); break;
        case 0xc7: case 0xc8: case 0xc9:
            h->type = FP_T_EXT; lw = 1u << (b - 0xc7); h->hs = 2; break;
        case 0xca: h->type = FP_T_FLOAT; h->body = 4; break;
        case 0xcb: h->type = FP_T_FLOAT; h->body = 8; break;
        case 0xcc: case 0xcd: case 0xce: case 0xcf:
            h->type = FP_T_UINT; h->body = 1u << (b - 0xcc); break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3:
            h->type = FP_T_INT; h->body = 1u << (b - 0xd0); break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            h->type = FP_T_EXT; h->hs = 2; h->body = 1u << (b - 0xd4); break;
        case 0xd9: case 0xda: case 0xdb:
            h->type = FP_T_STR; lw = 1u << (b - 0xd9); break;
        case 0xdc: case 0xdd:
            h->type = FP_T_ARRAY; lw = 2u << (b - 0xdc); break;
        case 0xde: case 0xdf:
            h->type = FP_T_MAP; lw = 2u << (b - 0xde); break;
        default:                        /* 0xc1 */
            h->type = FP_T_INVALID;
            return -1;
        }
    }
    h->hs += lw;
    if (avail < h->hs)
        return 0;
    if (lw > 0) {
        uint64_t v = be(p + 1, lw);
        if (h->type == FP_T_ARRAY || h->type == FP_T_MAP)
            h->n = v;
        else
            h->body = v;
    }
    return 1;
}

void
fp_scanner_reset(struct fp_scanner *s)
{
    /* left[] is only read below depth: no need to clear it (this runs once
     * per frame, on every connection and worker). */
    s->pos = 0;
    s->objects = 0;
    s->depth = 0;
}

static ssize_t
fail(const char **why, const char *msg)
{
    if (why != NULL)
        *why = msg;
    return -1;
}

/* Depth convention: s->depth counts open containers, and opening a container
 * while depth == max_depth is refused.  So max_depth = N accepts a value made
 * of exactly N nested arrays/maps (the outermost counts as 1) and refuses
 * N + 1; a scalar top-level value has depth 0.  max_depth is clamped to
 * FP_SCAN_STACK.
 *
 * Early refusal: every value still owed by open containers needs at least
 * one byte and counts one object, so a header is refused when
 *   pos + its header + body/children + owed  > max_bytes, or
 *   objects + 1 + children + owed            > max_objects.
 * The frame thus never grows past max_bytes and the check is exact at the
 * boundary.  Work per call is O(new bytes * depth bound): accepted elements
 * are never re-read, an incomplete element is re-read from its first byte. */
ssize_t
fp_scan(struct fp_scanner *s, const char *buf, size_t len,
        const struct fp_limits *lim, const char **why)
{
    const unsigned char *u = (const unsigned char *)buf;
    unsigned maxd = lim->max_depth < FP_SCAN_STACK ? lim->max_depth
                                                   : FP_SCAN_STACK;

    if (s->objects > 0 && s->depth == 0)
        return (ssize_t)s->pos;         /* already complete */
    for (;;) {
        if (s->pos >= len) {
            if (s->pos >= lim->max_bytes)
                return fail(why, E_BIG);
            return 0;
        }
        struct hdr h;
        int rc = decode_hdr(u + s->pos, len - s->pos, &h);
        if (rc < 0)
            return fail(why, E_BAD);

        /* Values owed by enclosing containers, besides this one. */
        uint64_t owed = 0;
        for (unsigned i = 0; i < s->depth; i++)
            owed += s->left[i];
        if (s->depth > 0)
            owed--;

        uint64_t end = (uint64_t)s->pos + h.hs;
        if (end + owed > lim->max_bytes)
            return fail(why, E_BIG);
        if ((uint64_t)s->objects + 1 + owed > lim->max_objects)
            return fail(why, E_MANY);
        if (rc == 0)
            return 0;                   /* header incomplete: retry later */

        uint64_t kids = 0;
        if (h.type == FP_T_ARRAY || h.type == FP_T_MAP) {
            kids = h.type == FP_T_MAP ? h.n * 2 : h.n;
            if (s->depth >= maxd)
                return fail(why, E_DEEP);
            if ((uint64_t)s->objects + 1 + kids + owed > lim->max_objects)
                return fail(why, E_MANY);
            if (end + kids + owed > lim->max_bytes)
                return fail(why, E_BIG);
        } else {
            end += h.body;
            if (end + owed > lim->max_bytes)
                return fail(why, E_BIG);
            if (end > len)
                return 0;               /* body incomplete: retry later */
        }

        /* Accept the element. */
        s->pos = (size_t)end;
        s->objects++;
        if (s->depth > 0)
            s->left[s->depth - 1]--;
        if (kids > 0)
            s->left[s->depth++] = kids;
        while (s->depth > 0 && s->left[s->depth - 1] == 0)
            s->depth--;
        if (s->depth == 0)
            return (ssize_t)s->pos;
    }
}

/* ---- skipper ----------------------------------------------------------- */

void
fp_skip_start(struct fp_skipper *k, const struct fp_scanner *s)
{
    k->body = 0;
    if (s->depth == 0) {
        /* Refused at its first header: the frame is one value still owed. */
        k->depth = 1;
        k->left[0] = 1;
        return;
    }
    k->depth = s->depth;
    memcpy(k->left, s->left, s->depth * sizeof(s->left[0]));
}

/* Close the levels whose values have all been seen; 1 once none is open
 * (the frame has ended). */
static int
skip_close_levels(struct fp_skipper *k)
{
    while (k->depth > 0 && k->left[k->depth - 1] == 0)
        k->depth--;
    return k->depth == 0;
}

ssize_t
fp_skip(struct fp_skipper *k, const char *buf, size_t len, int *done)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t pos = 0;

    *done = 0;
    for (;;) {
        if (k->body > 0) {
            size_t take = len - pos < k->body ? len - pos : (size_t)k->body;
            pos += take;
            k->body -= take;
            if (k->body > 0)
                return (ssize_t)pos;
            if (skip_close_levels(k)) {
                *done = 1;
                return (ssize_t)pos;
            }
        }
        if (pos >= len)
            return (ssize_t)pos;
        struct hdr h;
        int rc = decode_hdr(u + pos, len - pos, &h);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return (ssize_t)pos;        /* header cut off: keep it */
        pos += h.hs;
        k->left[k->depth - 1]--;
        if (h.type == FP_T_ARRAY || h.type == FP_T_MAP) {
            uint64_t kids = h.type == FP_T_MAP ? h.n * 2 : h.n;
            if (kids > 0) {
                if (k->depth >= FP_SKIP_STACK)
                    return -1;
                k->left[k->depth++] = kids;
            }
        } else {
            k->body = h.body;
        }
        if (k->body == 0 && skip_close_levels(k)) {
            *done = 1;
            return (ssize_t)pos;
        }
    }
}

/* ---- reader ------------------------------------------------------------ */

void
fp_reader_init(struct fp_reader *r, const char *buf, size_t len)
{
    r->p = buf;
    r->end = buf + len;
}

/* Decode the next element's header; for non-containers also require its
 * body to lie within the reader.  0 on success, -1 otherwise. */
static int
peek(const struct fp_reader *r, struct hdr *h)
{
    if (r->p >= r->end)
        return -1;
    size_t avail = (size_t)(r->end - r->p);
    if (decode_hdr((const unsigned char *)r->p, avail, h) <= 0)
        return -1;
    if (h->body > avail - h->hs)
        return -1;
    return 0;
}

/* Payload of the next element, just past its header. */
static const unsigned char *
payload(const struct fp_reader *r, const struct hdr *h)
{
    return (const unsigned char *)r->p + h->hs;
}

static void
advance(struct fp_reader *r, const struct hdr *h)
{
    r->p += h->hs + h->body;
}

/* The type by encoding: fixint and uint8..64 are FP_T_UINT, negative fixint
 * and int8..64 are FP_T_INT (whatever the value's sign). */
int
fp_reader_type(const struct fp_reader *r)
{
    struct hdr h;
    if (r->p >= r->end)
        return FP_T_INVALID;
    decode_hdr((const unsigned char *)r->p, 1, &h);
    return h.type;
}

int
fp_read_nil(struct fp_reader *r)
{
    struct hdr h;
    if (peek(r, &h) < 0 || h.type != FP_T_NIL)
        return -1;
    advance(r, &h);
    return 0;
}

int
fp_read_bool(struct fp_reader *r, int *v)
{
    struct hdr h;
    if (peek(r, &h) < 0 || h.type != FP_T_BOOL)
        return -1;
    *v = (unsigned char)r->p[0] == 0xc3;
    advance(r, &h);
    return 0;
}

/* Decode any integer: *neg set when the value is below zero, in which case
 * *v holds it as int64_t bits; otherwise *v is the unsigned value. */
static int
get_int(const struct fp_reader *r, struct hdr *h, uint64_t *v, int *neg)
{
    if (peek(r, h) < 0)
        return -1;
    unsigned b = (unsigned char)r->p[0];
    if (b <= 0x7f) {
        *v = b;
        *neg = 0;
    } else if (b >= 0xe0) {
        *v = (uint64_t)(int64_t)(int8_t)b;
        *neg = 1;
    } else if (b >= 0xcc && b <= 0xcf) {
        *v = be(payload(r, h), (unsigned)h->body);
        *neg = 0;
    } else if (b >= 0xd0 && b <= 0xd3) {
        unsigned w = (unsigned)h->body;
        uint64_t x = be(payload(r, h), w);
        if (w < 8 && (x >> (w * 8 - 1)) & 1)
            x |= ~(uint64_t)0 << (w * 8);       /* sign-extend */
        *v = x;
        *neg = (int64_t)x < 0;
    } else {
        return -1;
    }
    return 0;
}

int
fp_read_uint(struct fp_reader *r, uint64_t *v)
{
    struct hdr h;
    uint64_t x;
    int neg;
    if (get_int(r, &h, &x, &neg) < 0 || neg)
        return -1;
    *v = x;
    advance(r, &h);
    return 0;
}

int
fp_read_int(struct fp_reader *r, int64_t *v)
{
    struct hdr h;
    uint64_t x;
    int neg;
    if (get_int(r, &h, &x, &neg) < 0 || (!neg && x > (uint64_t)INT64_MAX))
        return -1;
    *v = (int64_t)x;
    advance(r, &h);
    return 0;
}

int
fp_read_double(struct fp_reader *r, double *v)
{
    struct hdr h;
    uint64_t x;
    int neg;
    if (get_int(r, &h, &x, &neg) == 0) {
        *v = neg ? (double)(int64_t)x : (double)x;
    } else if (peek(r, &h) == 0 && h.type == FP_T_FLOAT) {
        if (h.body == 4) {
            uint32_t w = (uint32_t)be(payload(r, &h), 4);
            float f;
            memcpy(&f, &w, sizeof f);
            *v = f;
        } else {
            uint64_t w = be(payload(r, &h), 8);
            memcpy(v, &w, sizeof *v);
        }
    } else {
        return -1;
    }
    advance(r, &h);
    return 0;
}

int
fp_read_str(struct fp_reader *r, const char **s, uint32_t *len)
{
    struct hdr h;
    if (peek(r, &h) < 0 || h.type != FP_T_STR)
        return -1;
    *s = (const char *)payload(r, &h);
    *len = (uint32_t)h.body;
    advance(r, &h);
    return 0;
}

static int
read_container(struct fp_reader *r, int type, uint32_t *n)
{
    struct hdr h;
    if (peek(r, &h) < 0 || h.type != type)
        return -1;
    *n = (uint32_t)h.n;
    advance(r, &h);
    return 0;
}

int
fp_read_array(struct fp_reader *r, uint32_t *n)
{
    return read_container(r, FP_T_ARRAY, n);
}

int
fp_read_map(struct fp_reader *r, uint32_t *n)
{
    return read_container(r, FP_T_MAP, n);
}

/* A scalar is its header and its body.  A container goes through fp_scan,
 * so it is iterative, bounded by `end` and refuses values nested deeper
 * than FP_SCAN_STACK containers. */
int
fp_read_skip(struct fp_reader *r, const char **raw, size_t *rawlen)
{
    struct hdr h;

    if (r->p >= r->end)
        return -1;
    /* Most values skipped are scalars (a job's payload, a result's value,
     * its cost): no scanner to set up for them. */
    if (peek(r, &h) == 0 && h.type != FP_T_ARRAY && h.type != FP_T_MAP) {
        if (raw != NULL)
            *raw = r->p;
        if (rawlen != NULL)
            *rawlen = h.hs + (size_t)h.body;
        advance(r, &h);
        return 0;
    }
    struct fp_scanner s;
    struct fp_limits lim = {
        .max_bytes = (size_t)(r->end - r->p),
        .max_objects = SIZE_MAX,
        .max_depth = FP_SCAN_STACK,
    };
    const char *why;
    fp_scanner_reset(&s);
    ssize_t n = fp_scan(&s, r->p, lim.max_bytes, &lim, &why);
    if (n <= 0)
        return -1;
    if (raw != NULL)
        *raw = r->p;
    if (rawlen != NULL)
        *rawlen = (size_t)n;
    r->p += n;
    return 0;
}

int
fp_read_str_eq(struct fp_reader *r, const char *lit)
{
    struct fp_reader t = *r;
    const char *s;
    uint32_t len;
    if (fp_read_str(&t, &s, &len) < 0 || len != strlen(lit)
        || memcmp(s, lit, len) != 0)
        return 0;
    *r = t;
    return 1;
}
