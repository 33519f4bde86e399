/*
 * outq.h — a write queue of segments, for a stream of whole messages.
 *
 * Small messages are copied into chunks and go out many per write.  A
 * piece of FP_OUTQ_BIG bytes or more (a big result, a big job) gets a
 * segment of its own, of exactly its size, filled once -- or, where its
 * owner can keep it unchanged until it is written, none at all: the queue
 * refers to it (fp_outq_append_ref) and tells the owner when it is done
 * with it.  The bytes are
 * written straight from the segments (fp_outq_iov, then writev or
 * sendmsg): nothing is copied again while the queue grows, and nothing is
 * slid to the front while it drains -- a contiguous queue that grows
 * while earlier messages are unsent copies each byte again at every
 * doubling and at every compaction.
 *
 * A mark taken before a message lets its writer take every byte of it
 * back (fp_outq_rollback): a message is queued whole or not at all.  An
 * append either adds all its bytes or, out of memory, none.
 *
 * Pure memory code: the caller does the I/O and reports what the socket
 * took (fp_outq_consume).
 */
#ifndef FP_OUTQ_H
#define FP_OUTQ_H

#include <stddef.h>
#include <sys/uio.h>

#define FP_OUTQ_CHUNK   (16 * 1024)     /* a chunk of small messages */
#define FP_OUTQ_BIG     FP_OUTQ_CHUNK   /* a piece this big: its own segment */

struct fp_outq_seg;

struct fp_outq {
    size_t              len;    /* bytes queued and not yet consumed */
    struct fp_outq_seg *head, *tail;
    struct fp_outq_seg *spare;  /* a drained chunk, kept for the next one */
};

#define FP_OUTQ_INIT { 0, NULL, NULL, NULL }

/* Where a message began: taken by fp_outq_mark, used by fp_outq_rollback. */
struct fp_outq_mark {
    struct fp_outq_seg *tail;
    size_t              tail_len;
    size_t              len;
};

/* Append n bytes (copied).  Returns 0, or -1 (ENOMEM) with nothing added. */
int    fp_outq_append(struct fp_outq *q, const void *p, size_t n);
/* Append n bytes without copying them: they are written from p, which
 * must stay unchanged until release(arg) is called -- once they are
 * written, dropped (fp_outq_clear, fp_outq_free) or taken back
 * (fp_outq_rollback); at once if n is 0.  Returns 0, or -1 (ENOMEM)
 * with nothing added and release not called. */
typedef void fp_outq_release_fn(void *arg);
int    fp_outq_append_ref(struct fp_outq *q, const void *p, size_t n,
                          fp_outq_release_fn *release, void *arg);
/* msgpack_packer write callback: `data` is a struct fp_outq *. */
int    fp_outq_pack_write(void *data, const char *p, size_t n);

/* Remember the end of the queue, before a message is appended. */
void   fp_outq_mark(const struct fp_outq *q, struct fp_outq_mark *m);
/* Take back everything appended since m was taken (nothing may have been
 * consumed in between). */
void   fp_outq_rollback(struct fp_outq *q, const struct fp_outq_mark *m);
/* Bytes appended since m was taken. */
static inline size_t
fp_outq_since(const struct fp_outq *q, const struct fp_outq_mark *m)
{
    return q->len - m->len;
}

/* Fill iov[0..max) with the queued bytes, oldest first.  Returns how many
 * entries were filled (0 when the queue is empty). */
int    fp_outq_iov(const struct fp_outq *q, struct iovec *iov, int max);
/* The first n queued bytes were written: drop them (n <= q->len). */
void   fp_outq_consume(struct fp_outq *q, size_t n);

/* Drop every queued byte; one chunk is kept for reuse. */
void   fp_outq_clear(struct fp_outq *q);
/* Release the chunk kept for reuse (an idle queue then holds nothing). */
void   fp_outq_trim(struct fp_outq *q);
/* Drop everything and release all memory. */
void   fp_outq_free(struct fp_outq *q);

#endif /* FP_OUTQ_H */
