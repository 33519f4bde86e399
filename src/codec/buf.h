/*
 * buf.h — a growable byte buffer used as a read buffer or a write queue.
 *
 * Bytes live in data[off .. off+len).  Consuming from the front only moves
 * `off`; the space is reclaimed when the buffer empties or needs room.
 */
#ifndef FP_BUF_H
#define FP_BUF_H

#include <stddef.h>
#include <msgpack.h>

struct fp_buf {
    char  *data;
    size_t off;     /* start of live bytes */
    size_t len;     /* live bytes */
    size_t cap;     /* allocated */
};

#define FP_BUF_INIT { NULL, 0, 0, 0 }

static inline const char *fp_buf_head(const struct fp_buf *b) { return b->data + b->off; }

/* Make room for at least `more` bytes after the live ones; returns a pointer
 * to that room, or NULL (ENOMEM).  Does not change len. */
char *fp_buf_reserve(struct fp_buf *b, size_t more);
/* Append; returns 0 or -1 (ENOMEM). */
int   fp_buf_append(struct fp_buf *b, const void *p, size_t n);
/* Append printf-style text (no NUL): the buffer grows to fit whatever the
 * text's length.  Returns 0, or -1 (ENOMEM, or a format error) with the
 * buffer as it was. */
int   fp_buf_printf(struct fp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front. */
void  fp_buf_consume(struct fp_buf *b, size_t n);
void  fp_buf_clear(struct fp_buf *b);
/* Release memory beyond `keep` bytes when empty (after a big frame). */
void  fp_buf_shrink(struct fp_buf *b, size_t keep);
void  fp_buf_free(struct fp_buf *b);
/* Pack the NUL-terminated `s` as a msgpack str. */
void  fp_pack_cstr(msgpack_packer *pk, const char *s);
/* msgpack_packer write callback: `data` is a struct fp_buf *. */
int   fp_buf_pack_write(void *data, const char *p, size_t n);

#endif /* FP_BUF_H */
