/* outq.c — a write queue of segments (see outq.h). */
#include "config.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outq.h"

struct fp_outq_seg {
    struct fp_outq_seg *next;
    char  *p;           /* its bytes: data[], or its owner's */
    size_t off;         /* bytes of it consumed */
    size_t len;         /* bytes of it filled */
    size_t cap;         /* room in data[] */
    int    sealed;      /* a big piece's own: nothing is added to it */
    fp_outq_release_fn *release;    /* the bytes are its owner's: tell it
                                       when they are done with */
    void  *arg;
    char   data[];
};

static struct fp_outq_seg *
seg_alloc(size_t cap)
{
    struct fp_outq_seg *s;

    if (cap > SIZE_MAX - sizeof(*s)) {
        errno = ENOMEM;
        return NULL;
    }
    if ((s = malloc(sizeof(*s) + cap)) == NULL)
        return NULL;
    s->next = NULL;
    s->p = s->data;
    s->off = s->len = 0;
    s->cap = cap;
    s->sealed = 0;
    s->release = NULL;
    s->arg = NULL;
    return s;
}

/* An empty chunk: the spare one if there is one. */
static struct fp_outq_seg *
chunk_get(struct fp_outq *q)
{
    struct fp_outq_seg *s = q->spare;

    if (s == NULL)
        return seg_alloc(FP_OUTQ_CHUNK);
    q->spare = NULL;
    return s;
}

/* A segment is done with: a chunk becomes the spare if there is none. */
static void
seg_release(struct fp_outq *q, struct fp_outq_seg *s)
{
    if (s->release != NULL)
        s->release(s->arg);
    if (!s->sealed && q->spare == NULL) {
        s->next = NULL;
        s->off = s->len = 0;
        q->spare = s;
        return;
    }
    free(s);
}

static void
link_tail(struct fp_outq *q, struct fp_outq_seg *s)
{
    if (q->tail != NULL)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
}

int
fp_outq_append(struct fp_outq *q, const void *p, size_t n)
{
    struct fp_outq_seg *t = q->tail, *s;
    size_t room = t != NULL && !t->sealed ? t->cap - t->len : 0;

    if (n == 0)
        return 0;
    if (n <= room) {
        memcpy(t->p + t->len, p, n);
        t->len += n;
        q->len += n;
        return 0;
    }
    if (n >= FP_OUTQ_BIG) {
        /* Its own segment: filled once, written from there. */
        if ((s = seg_alloc(n)) == NULL)
            return -1;
        s->sealed = 1;
        room = 0;
    } else if ((s = chunk_get(q)) == NULL) {
        return -1;
    }
    /* A small piece fills what the last chunk has left, then the new one
     * (each chunk is written whole, however the messages fall in it). */
    if (room > 0) {
        memcpy(t->p + t->len, p, room);
        t->len += room;
    }
    memcpy(s->p, (const char *)p + room, n - room);
    s->len = n - room;
    link_tail(q, s);
    q->len += n;
    return 0;
}

int
fp_outq_append_ref(struct fp_outq *q, const void *p, size_t n,
                   fp_outq_release_fn *release, void *arg)
{
    struct fp_outq_seg *s;

    if (n == 0) {
        release(arg);           /* nothing to write: done with at once */
        return 0;
    }
    if ((s = seg_alloc(0)) == NULL)
        return -1;
    s->p = (char *)p;
    s->len = s->cap = n;
    s->sealed = 1;
    s->release = release;
    s->arg = arg;
    link_tail(q, s);
    q->len += n;
    return 0;
}

int
fp_outq_pack_write(void *data, const char *p, size_t n)
{
    return fp_outq_append(data, p, n);
}

void
fp_outq_mark(const struct fp_outq *q, struct fp_outq_mark *m)
{
    m->tail = q->tail;
    m->tail_len = q->tail != NULL ? q->tail->len : 0;
    m->len = q->len;
}

void
fp_outq_rollback(struct fp_outq *q, const struct fp_outq_mark *m)
{
    struct fp_outq_seg *s = m->tail != NULL ? m->tail->next : q->head, *next;

    for (; s != NULL; s = next) {
        next = s->next;
        seg_release(q, s);
    }
    if (m->tail != NULL) {
        m->tail->next = NULL;
        m->tail->len = m->tail_len;
    } else {
        q->head = NULL;
    }
    q->tail = m->tail;
    q->len = m->len;
}

int
fp_outq_iov(const struct fp_outq *q, struct iovec *iov, int max)
{
    int n = 0;

    for (const struct fp_outq_seg *s = q->head; s != NULL && n < max; s = s->next)
        iov[n++] = (struct iovec){ s->p + s->off, s->len - s->off };
    return n;
}

void
fp_outq_consume(struct fp_outq *q, size_t n)
{
    while (n > 0 && q->head != NULL) {
        struct fp_outq_seg *s = q->head;
        size_t take = s->len - s->off < n ? s->len - s->off : n;

        s->off += take;
        q->len -= take;
        n -= take;
        if (s->off < s->len)
            break;
        q->head = s->next;
        if (q->head == NULL)
            q->tail = NULL;
        seg_release(q, s);
    }
}

void
fp_outq_clear(struct fp_outq *q)
{
    struct fp_outq_seg *s, *next;

    for (s = q->head; s != NULL; s = next) {
        next = s->next;
        seg_release(q, s);
    }
    q->head = q->tail = NULL;
    q->len = 0;
}

void
fp_outq_trim(struct fp_outq *q)
{
    free(q->spare);
    q->spare = NULL;
}

void
fp_outq_free(struct fp_outq *q)
{
    fp_outq_clear(q);
    fp_outq_trim(q);
}
