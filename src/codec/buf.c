/* buf.c — growable byte buffer (see buf.h). */
#include "config.h"
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

char *
fp_buf_reserve(struct fp_buf *b, size_t more)
{
    if (b->len == 0)
        b->off = 0;
    if (b->off + b->len + more <= b->cap)
        return b->data + b->off + b->len;
    /* Slide live bytes to the front before growing. */
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (b->len + more <= b->cap)
            return b->data + b->len;
    }
    size_t need = b->len + more;
    if (need < more) {
        errno = ENOMEM;
        return NULL;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap < need)
        cap = need;
    char *d = realloc(b->data, cap);
    if (d == NULL && cap > need) {
        /* Short of memory: doubling is a luxury, the room asked for may
         * still be had (a small reply after a big one failed). */
        cap = need;
        d = realloc(b->data, cap);
    }
    if (d == NULL)
        return NULL;
    b->data = d;
    b->cap = cap;
    return b->data + b->len;
}

int
fp_buf_append(struct fp_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    char *dst = fp_buf_reserve(b, n);
    if (dst == NULL)
        return -1;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}

int
fp_buf_printf(struct fp_buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = b->cap - b->off - b->len;
    char *at = b->data != NULL ? b->data + b->off + b->len : NULL;

    /* Once into the room there is; if the text did not fit, once more into
     * room made for exactly its length (plus vsnprintf's NUL). */
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= room) {
        if ((at = fp_buf_reserve(b, (size_t)n + 1)) == NULL)
            return -1;
        va_start(ap, fmt);
        n = vsnprintf(at, (size_t)n + 1, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
    }
    b->len += (size_t)n;
    return 0;
}

void
fp_buf_consume(struct fp_buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = 0;
        b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void
fp_buf_clear(struct fp_buf *b)
{
    b->off = 0;
    b->len = 0;
}

void
fp_buf_shrink(struct fp_buf *b, size_t keep)
{
    if (b->len != 0 || b->cap <= keep)
        return;
    free(b->data);
    b->data = NULL;
    b->cap = 0;
    b->off = 0;
}

void
fp_buf_free(struct fp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

int
fp_buf_pack_write(void *data, const char *p, size_t n)
{
    return fp_buf_append(data, p, n);
}

void
fp_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}
