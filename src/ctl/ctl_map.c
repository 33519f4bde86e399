/* ctl_map.c — `forkpoolctl map`: JSON lines in, one outcome line per job
 * out, with up to `window` jobs in flight on one connection.
 *
 * Lines already waiting on stdin go out together in one submit_batch
 * request (up to BATCH_MAX jobs); each job's outcome then comes back as an
 * "outcome" notification.  A lone line, and any job sent again, goes out as
 * a plain submit.  A refused batch (queue full, or one job too large) is
 * sent again job by job, so each job gets its own precise outcome.
 *
 * Jobs live in a table of `window` slots; a request's msgid carries its
 * slot number in the low bits (unique among requests in flight, since a
 * slot holds one job at a time), so a response finds its job directly.
 * A job the daemon refuses with "queue full" keeps its slot and is sent
 * again later.  Until the daemon keeps up again, sending is paced by
 * credits: a refusal takes them all, each completed job gives two (one for
 * the queue place it freed, one to probe for more), a quiet spell gives one
 * after a growing delay; `window` credits end the pacing.
 *
 * A line whose job is larger than the daemon takes (its status says how
 * large, "max_job_bytes") is answered here, "rejected" with detail "job too
 * large", as the daemon would; it is never sent.  Batches stay within that
 * size too. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <msgpack.h>

#include "ctl.h"
#include "ctl_progress.h"
#include "common/b64.h"
#include "common/jsonmp.h"

#define LINE_LIMIT   ((size_t)256 << 20)    /* longest input line */
#define PIPE_BYTES   ((int)256 << 10)       /* stdin, stdout: widen_pipe */
#define STDIN_CHUNK  ((size_t)PIPE_BYTES)   /* a read can empty the pipe */
#define KEEP_PARAMS  ((size_t)64 << 10)     /* per-slot buffer kept */
#define RETRY_MIN_MS 5
#define RETRY_MAX_MS 200
#define BATCH_MAX    256                    /* jobs per submit_batch */
#define BATCH_BYTES  ((size_t)1 << 20)      /* job bytes per submit_batch */
#define BATCH_BIT    0x40000000u            /* msgid of a batch request */
#define MSGID_MASK   0x3fffffffu            /* within FP_CLIENT_TAG_MAX */
#define QUEUE_BYTES  ((size_t)4 << 20)      /* requests waiting to be sent */
#define AHEAD_BYTES  ((size_t)4 << 20)      /* jobs converted, not yet accepted:
                                               can_take */

enum slot_state { SLOT_FREE, SLOT_SENT, SLOT_RETRY };

struct map;

struct slot {
    int           state;
    uint64_t      index;        /* input line (non-blank lines counted) */
    uint32_t      msgid;
    struct fp_buf params;       /* the packed job, kept for resends */
    size_t        ahead;        /* its bytes in map->ahead */
    unsigned      queued;       /* requests in the send queue that refer to
                                   params (a big job is not copied there) */
    int           parked;       /* free, but params are still queued: it is
                                   reused once they are written */
    struct map   *m;
};

/* A submit_batch in flight: which slot each of its jobs holds. */
struct batch {
    unsigned  n;                /* jobs; 0 = this entry is free */
    unsigned  left;             /* outcomes still to come */
    uint32_t  msgid;
    int       accepted;         /* its response said yes */
    uint64_t  first_id;
    unsigned  slots[BATCH_MAX];
};

struct map {
    fp_client                 *c;
    const struct ctl_target   *to;
    const struct ctl_map_opts *o;
    struct fp_client_jobopts   jopts;
    struct slot   *slots;
    unsigned       nslots;
    unsigned       bits;        /* msgid low bits holding the slot */
    unsigned      *free;        /* stack of free slot numbers */
    unsigned       nfree;
    unsigned      *retry;       /* FIFO ring of slots to send again */
    unsigned       retry_head, retry_count;
    unsigned       sent;        /* slots awaiting a response */
    size_t         ahead;       /* bytes of params kept until accepted */
    uint32_t       seq;
    struct fp_buf  in;          /* stdin bytes not yet taken */
    size_t         scanned;     /* head bytes known to hold no newline */
    int            eof;
    int            skipping;    /* dropping the rest of a too-long line */
    uint64_t       next_index;
    char         **held;        /* --keep-order: outcome text by index */
    uint64_t       next_print;
    struct fp_buf  line;        /* scratch: one outcome line */
    struct batch  *batches;     /* up to nslots in flight */
    int            any_failed;
    int            stopping;    /* --fail-fast tripped */
    int            backoff;     /* pacing sends after a "queue full" */
    unsigned       credits;     /* sends allowed while backoff is on */
    int            delay_ms;    /* wait for a probe credit */
    int            status;      /* exit status once something failed */
    size_t         max_job_bytes;   /* the daemon's limit on one job */
    size_t         batch_bytes;     /* job bytes per submit_batch */
    int64_t        heard_ms;    /* the daemon last sent or took bytes */
    struct ctl_progress progress;   /* the line on stderr, if a tty */
};

static int
map_init(struct map *m, const struct ctl_target *to, const struct ctl_map_opts *o)
{
    memset(m, 0, sizeof *m);
    m->to = to;
    m->o = o;
    ctl_client_opts(&o->job, &m->jopts);
    m->nslots = o->window;
    while ((1u << m->bits) < m->nslots)
        m->bits++;
    m->slots = calloc(m->nslots, sizeof *m->slots);
    m->free = calloc(m->nslots, sizeof *m->free);
    m->retry = calloc(m->nslots, sizeof *m->retry);
    m->held = o->keep_order ? calloc(m->nslots, sizeof *m->held) : NULL;
    m->batches = calloc(m->nslots, sizeof *m->batches);
    if (m->slots == NULL || m->free == NULL || m->retry == NULL || m->batches == NULL
        || (o->keep_order && m->held == NULL))
        return -1;
    for (unsigned i = 0; i < m->nslots; i++) {
        m->free[m->nfree++] = m->nslots - 1 - i;
        m->slots[i].m = m;
    }
    m->delay_ms = RETRY_MIN_MS;
    return 0;
}

/* After the connection is closed: its queue may refer to the slots. */
static void
map_free(struct map *m)
{
    if (m->slots != NULL)
        for (unsigned i = 0; i < m->nslots; i++)
            fp_buf_free(&m->slots[i].params);
    if (m->held != NULL)
        for (unsigned i = 0; i < m->nslots; i++)
            free(m->held[i]);
    free(m->slots);
    free(m->free);
    free(m->retry);
    free(m->held);
    free(m->batches);
    fp_buf_free(&m->in);
    fp_buf_free(&m->line);
}

/* Every failure below is reported where it happens, through one of these,
 * and then returns -1 up to run(), which exits with m->status. */

/* A failure of map itself (err is an errno).  A closed stdout is not
 * reported: the reader went away, as with `| head`. */
static int
map_fail(struct map *m, const char *what, int err)
{
    ctl_progress_clear(&m->progress);
    if (err != EPIPE)
        fprintf(stderr, "forkpoolctl: map: %s%s%s\n", what,
                what[0] != '\0' ? ": " : "", strerror(err));
    m->status = CTL_EXIT_FAIL;
    return -1;
}

/* A failure of the connection, rc from the client library (exit 3 if
 * the daemon is unreachable or silent). */
static int
conn_fail(struct map *m, int rc)
{
    ctl_progress_clear(&m->progress);
    m->status = ctl_fail(m->to, m->c, rc, "map");
    return -1;
}

/* The connection broke or the daemon went silent: every outcome that came
 * is printed; say how many jobs sent are left without one. */
static int
conn_lost(struct map *m, int rc)
{
    char note[64];

    if (m->sent == 0)
        return conn_fail(m, rc);
    snprintf(note, sizeof note, "%u job%s sent without an outcome", m->sent,
             m->sent == 1 ? "" : "s");
    ctl_progress_clear(&m->progress);
    m->status = ctl_fail_note(m->to, m->c, rc, "map", note);
    return -1;
}

/* ---- output ------------------------------------------------------------- */

/* Outcome lines go out as soon as they arrive: at once on a terminal, and
 * otherwise with one write per batch of responses (run() flushes before it
 * waits), not one write per line.  Each is built as text in m->line
 * (ctl_outcome_write), newline included, with no JSON tree in between. */
static int stdout_is_tty;

static int
print_line(const char *text, size_t len)
{
    if (fwrite(text, 1, len, stdout) != len
        || (stdout_is_tty && fflush(stdout) == EOF))
        return -1;
    return 0;
}

static int stop(struct map *m);

/* Print the line in m->line now, or with --keep-order keep a copy until
 * every earlier index has been printed.  Returns 0 or -1. */
static int
output(struct map *m, uint64_t index)
{
    ctl_progress_before_output(&m->progress);
    if (!m->o->keep_order) {
        if (print_line(fp_buf_head(&m->line), m->line.len) < 0)
            return map_fail(m, "stdout", errno);
        ctl_progress_done(&m->progress, m->next_index, m->in.len, m->eof);
        return 0;
    }
    char *text = malloc(m->line.len + 1);
    if (text == NULL)
        return map_fail(m, "", ENOMEM);
    memcpy(text, fp_buf_head(&m->line), m->line.len);
    text[m->line.len] = '\0';
    m->held[index % m->nslots] = text;
    char **next;
    while (*(next = &m->held[m->next_print % m->nslots]) != NULL) {
        int rc = print_line(*next, strlen(*next));
        free(*next);
        *next = NULL;
        m->next_print++;
        if (rc < 0)
            return map_fail(m, "stdout", errno);
    }
    ctl_progress_done(&m->progress, m->next_index, m->in.len, m->eof);
    return 0;
}

/* The final outcome for `index` is in m->line: output it; a failure trips
 * --fail-fast.  Returns 0 or -1. */
static int
emit(struct map *m, uint64_t index, int ok)
{
    if (fp_buf_append(&m->line, "\n", 1) != 0)
        return map_fail(m, "", ENOMEM);
    int rc = output(m, index);
    fp_buf_clear(&m->line);
    fp_buf_shrink(&m->line, KEEP_PARAMS);
    if (rc < 0)
        return -1;
    if (ok)
        return 0;
    m->any_failed = 1;
    return m->o->fail_fast && !m->stopping ? stop(m) : 0;
}

/* Emit a "rejected" outcome for a job that was never accepted. */
static int
emit_rejected(struct map *m, uint64_t index, const char *detail)
{
    fp_buf_clear(&m->line);
    if (ctl_outcome_write_rejected(&m->line, index, detail) < 0)
        return map_fail(m, "", ENOMEM);
    return emit(m, index, 0);
}

/* ---- slots -------------------------------------------------------------- */

/* A slot's packed job is no longer needed (sent and accepted, or done). */
static void
params_drop(struct map *m, struct slot *sl)
{
    fp_buf_clear(&sl->params);
    fp_buf_shrink(&sl->params, KEEP_PARAMS);
    m->ahead -= sl->ahead;
    sl->ahead = 0;
}

static void
slot_reuse(struct map *m, unsigned s)
{
    params_drop(m, &m->slots[s]);
    m->free[m->nfree++] = s;
}

static void
slot_release(struct map *m, unsigned s)
{
    m->slots[s].state = SLOT_FREE;
    if (m->slots[s].queued > 0)
        m->slots[s].parked = 1;     /* reused once its bytes are written */
    else
        slot_reuse(m, s);
}

/* The send queue is done with a request's reference to a slot's params
 * (fp_outq_release_fn). */
static void
slot_unqueued(void *arg)
{
    struct slot *sl = arg;

    if (--sl->queued == 0 && sl->parked) {
        sl->parked = 0;
        slot_reuse(sl->m, (unsigned)(sl - sl->m->slots));
    }
}

/* Slot sl's job as the client library takes it: queued by reference if
 * it is big. */
static struct fp_client_job
slot_job(struct slot *sl)
{
    sl->queued++;
    return (struct fp_client_job){ fp_buf_head(&sl->params), sl->params.len,
                                   slot_unqueued, sl };
}

/* A fresh msgid (the request's tag) with `low` in its low bits: never 0,
 * within FP_CLIENT_TAG_MAX, the batch bit left to the caller. */
static uint32_t
next_msgid(struct map *m, unsigned low)
{
    uint32_t id;

    do
        id = ((m->seq++ << m->bits) & (MSGID_MASK & ~BATCH_BIT)) | low;
    while (id == 0);
    return id;
}

/* Queue slot s's request under a fresh msgid. */
static int
slot_send(struct map *m, unsigned s)
{
    struct slot *sl = &m->slots[s];
    struct fp_client_job job = slot_job(sl);
    int rc;

    sl->msgid = next_msgid(m, s);
    sl->state = SLOT_SENT;
    m->sent++;
    /* A plain submit is answered at the job's end, not at its acceptance:
     * its params are kept until then in any case (as many as the window
     * holds), so they are not "converted ahead of an acceptance" -- left
     * in m->ahead, a few long jobs resent after "queue full" would stop
     * map from taking lines until they end. */
    m->ahead -= sl->ahead;
    sl->ahead = 0;
    if (m->backoff)
        m->credits--;
    if ((rc = fp_client_submit_job(m->c, &job, &m->jopts, &sl->msgid)) < 0)
        return conn_fail(m, rc);
    return 0;
}

/* --fail-fast tripped: nothing more is read or sent.  Jobs waiting for a
 * resend were never accepted: they end as the daemon last said. */
static int
stop(struct map *m)
{
    m->stopping = 1;
    while (m->retry_count > 0) {
        unsigned s = m->retry[m->retry_head];
        m->retry_head = (m->retry_head + 1) % m->nslots;
        m->retry_count--;
        uint64_t index = m->slots[s].index;
        slot_release(m, s);
        if (emit_rejected(m, index, "queue full") < 0)
            return -1;
    }
    return 0;
}


/* ---- input -------------------------------------------------------------- */

/* A new index may be given out: a free slot, with --keep-order an index
 * within `window` of the next one to print (bounds what is held), room in
 * the send queue, and few enough bytes converted and not yet accepted.
 * With big jobs, `window` of them would be hundreds of megabytes converted
 * ahead of the socket; and while map converts line after line it reads no
 * acceptance, so the jobs already sent would stay in its memory too.
 * Memory touched for the first time costs a page fault per 4 KiB, which
 * on some VMs is 20 us: a map that ran 27 MiB ahead on 1 MiB jobs spent a
 * tenth of a one-second run faulting its buffers in. */
static int
can_take(const struct map *m)
{
    return !m->stopping && m->nfree > 0 && fp_client_want_write(m->c) < QUEUE_BYTES
           && m->ahead < AHEAD_BYTES
           && (!m->o->keep_order || m->next_index < m->next_print + m->nslots);
}

/* The first newline in the buffer, or NULL; remembers how far it looked. */
static const char *
find_newline(struct map *m)
{
    if (m->scanned >= m->in.len)
        return NULL;
    const char *head = fp_buf_head(&m->in);
    const char *nl = memchr(head + m->scanned, '\n', m->in.len - m->scanned);
    m->scanned = nl != NULL ? (size_t)(nl - head) : m->in.len;
    return nl;
}

/* Drop the rest of a too-long line as it arrives. */
static void
skip_long_line(struct map *m)
{
    const char *nl = find_newline(m);
    if (nl == NULL) {
        fp_buf_clear(&m->in);
        fp_buf_shrink(&m->in, STDIN_CHUNK * 4);
    } else {
        fp_buf_consume(&m->in, (size_t)(nl - fp_buf_head(&m->in)) + 1);
        m->skipping = 0;
    }
    m->scanned = 0;
}

/* Is a complete line (or a too-long one) waiting in the buffer? */
static int
line_ready(struct map *m)
{
    if (m->skipping)
        skip_long_line(m);
    if (m->skipping)
        return 0;
    return find_newline(m) != NULL || (m->eof && m->in.len > 0)
           || m->in.len > LINE_LIMIT;
}

static int
is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* Give the line p[0..n) the next index and a slot holding its packed job;
 * or answer it at once when it is not valid JSON.  Returns the slot
 * (>= 0), -2 when the line was answered, -1 on error. */
static int
prepare_line(struct map *m, const char *p, size_t n)
{
    uint64_t index = m->next_index++;
    char why[200], detail[256];
    unsigned s = m->free[m->nfree - 1];
    struct slot *sl = &m->slots[s];

    fp_buf_clear(&sl->params);
    /* Room for the usual case at once, rather than growing by doubling. */
    if (fp_buf_reserve(&sl->params, n + 16) == NULL)
        return map_fail(m, "", ENOMEM);
    if (fp_json_text_to_buf(p, n, &sl->params, why, sizeof why) < 0) {
        fp_buf_clear(&sl->params);
        fp_buf_shrink(&sl->params, KEEP_PARAMS);
        snprintf(detail, sizeof detail, "malformed JSON: %s", why);
        return emit_rejected(m, index, detail) < 0 ? -1 : -2;
    }
    if (sl->params.len > m->max_job_bytes) {
        fp_buf_clear(&sl->params);
        fp_buf_shrink(&sl->params, KEEP_PARAMS);
        return emit_rejected(m, index, "job too large") < 0 ? -1 : -2;
    }
    m->nfree--;
    sl->index = index;
    sl->ahead = sl->params.len;
    m->ahead += sl->ahead;
    return (int)s;
}

/* Take one waiting line if there is one: 1 and *slot set (-2 if the line
 * needed no slot), 0 if none waits, -1 on error.  Blank lines are dropped
 * without an index. */
static int
take_line(struct map *m, int *slot)
{
    if (!line_ready(m))
        return 0;
    const char *head = fp_buf_head(&m->in);
    const char *nl = find_newline(m);
    int rc = 0;

    *slot = -2;
    if (nl == NULL && m->in.len > LINE_LIMIT) {
        rc = emit_rejected(m, m->next_index++, "line too long");
        fp_buf_clear(&m->in);
        m->skipping = 1;
    } else {
        size_t n = nl != NULL ? (size_t)(nl - head) : m->in.len;
        if (!is_blank(head, n) && (*slot = prepare_line(m, head, n)) == -1)
            rc = -1;
        fp_buf_consume(&m->in, n + (nl != NULL));
        fp_buf_shrink(&m->in, STDIN_CHUNK * 4);     /* after a huge line */
    }
    m->scanned = 0;
    return rc < 0 ? -1 : 1;
}

/* Send the jobs in slots[0..n) as one submit_batch (or, for one small
 * job, a plain submit), queued straight from the slots' params.  A big
 * job goes as a batch even alone: a batch is answered as soon as it is
 * accepted, and its params can go then (they are kept only to be sent
 * again), where a plain submit is answered at the job's end -- `window`
 * big jobs would be held meanwhile. */
static int
send_batch(struct map *m, const unsigned *slots, unsigned n)
{
    struct fp_client_job jobs[BATCH_MAX];
    int rc;

    if (n == 1 && m->slots[slots[0]].params.len <= KEEP_PARAMS)
        return slot_send(m, slots[0]);
    unsigned b = 0;
    while (m->batches[b].n != 0)    /* one is free: fewer batches than */
        b++;                        /* slots are in flight */
    struct batch *bt = &m->batches[b];
    for (unsigned i = 0; i < n; i++)
        jobs[i] = slot_job(&m->slots[slots[i]]);
    bt->msgid = BATCH_BIT | next_msgid(m, b);
    if ((rc = fp_client_submit_batch(m->c, jobs, n, &m->jopts, &bt->msgid)) < 0)
        return conn_fail(m, rc);
    for (unsigned i = 0; i < n; i++) {
        struct slot *sl = &m->slots[slots[i]];
        sl->state = SLOT_SENT;
        sl->msgid = bt->msgid;
        bt->slots[i] = slots[i];
    }
    bt->n = bt->left = n;
    bt->accepted = 0;
    m->sent += n;
    return 0;
}

/* Take every line waiting now (up to BATCH_MAX jobs or m->batch_bytes)
 * and send them together.  A job that would take a batch past
 * m->batch_bytes starts the next one, so no request is larger than the
 * daemon takes (a job alone goes as a plain submit).  Returns 1 if any
 * line was taken, 0 if none, -1. */
static int
take_lines(struct map *m)
{
    unsigned slots[BATCH_MAX], n = 0;
    size_t bytes = 0;
    int took = 0, rc, slot;

    while (n < BATCH_MAX && bytes < m->batch_bytes && can_take(m)
           && (rc = take_line(m, &slot)) != 0) {
        if (rc < 0)
            return -1;
        took = 1;
        if (slot < 0)
            continue;
        size_t len = m->slots[slot].params.len;
        if (n > 0 && bytes + len > m->batch_bytes) {
            if (send_batch(m, slots, n) < 0)
                return -1;
            n = 0;
            bytes = 0;
        }
        slots[n++] = (unsigned)slot;
        bytes += len;
    }
    if (n > 0 && send_batch(m, slots, n) < 0)
        return -1;
    return took;
}

/* Returns 1 with more bytes or at EOF, -1 on a read error. */
static int
read_stdin(struct map *m)
{
    char *p = fp_buf_reserve(&m->in, STDIN_CHUNK);
    if (p == NULL)
        return map_fail(m, "stdin", ENOMEM);
    ssize_t n = read(STDIN_FILENO, p, m->in.cap - m->in.off - m->in.len);
    if (n > 0)
        m->in.len += (size_t)n;
    else if (n == 0)
        m->eof = 1;
    else if (errno != EINTR && errno != EAGAIN)
        return map_fail(m, "stdin", errno);
    return 1;
}

/* ---- responses ---------------------------------------------------------- */

/* Slot s's job has its final outcome, in m->line: pacing gets its credits
 * back (a queue place was freed), the slot is free again, the line goes
 * out. */
static int
job_ended(struct map *m, unsigned s, uint64_t index, int ok)
{
    if (m->backoff) {
        m->credits += 2;
        m->delay_ms = RETRY_MIN_MS;
        if (m->credits >= m->nslots)
            m->backoff = 0;
    }
    slot_release(m, s);
    return emit(m, index, ok);
}

/* Put slot s on the resend ring. */
static void
retry_later(struct map *m, unsigned s)
{
    m->slots[s].state = SLOT_RETRY;
    m->retry[(m->retry_head + m->retry_count++) % m->nslots] = s;
}

static struct batch *
batch_of(struct map *m, uint32_t msgid)
{
    unsigned b = msgid & ((1u << m->bits) - 1);
    if (!(msgid & BATCH_BIT) || b >= m->nslots || m->batches[b].n == 0
        || m->batches[b].msgid != msgid)
        return NULL;
    return &m->batches[b];
}

/* The response to a submit_batch: accepted (ids known), or refused, and
 * then each of its jobs is sent again on its own. */
static int
handle_batch_response(struct map *m, struct batch *bt, const struct fp_client_msg *r)
{
    struct fp_client_outcome o;

    if (r->error == NULL) {
        uint64_t first = 0, count = 0;
        struct fp_reader rd;
        uint32_t n;
        fp_reader_init(&rd, r->result, r->result_len);
        if (fp_read_map(&rd, &n) == 0)
            for (uint32_t i = 0; i < n; i++) {
                if (fp_read_str_eq(&rd, "first_id"))
                    fp_read_uint(&rd, &first);
                else if (fp_read_str_eq(&rd, "count"))
                    fp_read_uint(&rd, &count);
                else if (fp_read_skip(&rd, NULL, NULL) < 0
                         || fp_read_skip(&rd, NULL, NULL) < 0)
                    break;
            }
        if (first == 0 || count != bt->n) {
            fprintf(stderr, "forkpoolctl: map: bad submit_batch response\n");
            m->status = CTL_EXIT_FAIL;
            return -1;
        }
        bt->accepted = 1;
        bt->first_id = first;
        /* Accepted: its jobs are never sent again; their params may go. */
        for (unsigned i = 0; i < bt->n; i++) {
            struct slot *sl = &m->slots[bt->slots[i]];
            if (sl->queued == 0)
                params_drop(m, sl);
        }
        if (m->o->job.ids)
            for (unsigned i = 0; i < bt->n; i++)
                fprintf(stderr, "{\"index\": %" PRIu64 ", \"id\": %" PRIu64
                        ", \"accepted\": true}\n", m->slots[bt->slots[i]].index,
                        first + i);
        return 0;
    }
    /* Refused whole: "queue full" paces the resends; anything else (a job
     * too large) is found out job by job. */
    int full = fp_client_outcome(m->c, r, &o) == FP_CLIENT_EJOB
               && ctl_outcome_queue_full(&o);
    unsigned n = bt->n;
    bt->n = 0;
    m->sent -= n;
    for (unsigned i = 0; i < n; i++) {
        unsigned s = bt->slots[i];
        if (!m->stopping) {
            retry_later(m, s);
            continue;
        }
        /* --fail-fast tripped: nothing is sent again. */
        uint64_t index = m->slots[s].index;
        slot_release(m, s);
        if (emit_rejected(m, index, full ? "queue full" : "refused") < 0)
            return -1;
    }
    if (full) {
        m->backoff = 1;
        m->credits = 0;
    }
    return 0;
}

/* One job of an accepted batch ended. */
static int
handle_batch_outcome(struct map *m, struct batch *bt, const struct fp_client_msg *r)
{
    struct fp_client_outcome o;
    char err[256];
    int rc = fp_client_outcome(m->c, r, &o);

    if (r->index >= bt->n) {
        fprintf(stderr, "forkpoolctl: map: outcome for an unknown batch job\n");
        m->status = CTL_EXIT_FAIL;
        return -1;
    }
    unsigned s = bt->slots[r->index];
    uint64_t index = m->slots[s].index;
    fp_buf_clear(&m->line);
    if ((rc != 0 && rc != FP_CLIENT_EJOB)
        || ctl_outcome_write(&m->line, index, &o, err, sizeof err) < 0) {
        fprintf(stderr, "forkpoolctl: map: bad outcome: %s\n",
                rc != 0 && rc != FP_CLIENT_EJOB ? fp_client_error(m->c) : err);
        m->status = CTL_EXIT_FAIL;
        return -1;
    }
    m->sent--;
    if (--bt->left == 0)
        bt->n = 0;
    return job_ended(m, s, index, o.ok);
}

static int
handle_response(struct map *m, const struct fp_client_msg *r)
{
    unsigned s = r->tag & ((1u << m->bits) - 1);
    struct fp_client_outcome o;
    int ok = 0, full = 0;
    char err[256];

    if (r->type == FP_CLIENT_MSG_PROGRESS) {    /* only sent for --progress */
        ctl_print_progress(r->id, r->result, r->result_len);
        return 0;
    }
    if (r->type == FP_CLIENT_MSG_EVENT)
        return 0;                               /* never asked for */
    if (r->tag & BATCH_BIT) {
        struct batch *bt = batch_of(m, r->tag);
        int outcome = r->type == FP_CLIENT_MSG_OUTCOME;
        if (bt == NULL || (outcome && !bt->accepted)) {
            fprintf(stderr, "forkpoolctl: map: response to an unknown request "
                    "(msgid %" PRIu32 ")\n", r->tag);
            m->status = CTL_EXIT_FAIL;
            return -1;
        }
        return outcome ? handle_batch_outcome(m, bt, r)
                       : handle_batch_response(m, bt, r);
    }

    if (r->type == FP_CLIENT_MSG_ACCEPTED) {    /* only sent for --ids */
        if (s < m->nslots && m->slots[s].state == SLOT_SENT
            && m->slots[s].msgid == r->tag)
            fprintf(stderr, "{\"index\": %" PRIu64 ", \"id\": %" PRIu64
                    ", \"accepted\": true}\n", (uint64_t)m->slots[s].index, r->id);
        return 0;
    }

    if (s >= m->nslots || m->slots[s].state != SLOT_SENT
        || m->slots[s].msgid != r->tag || r->type != FP_CLIENT_MSG_RESPONSE) {
        fprintf(stderr, "forkpoolctl: map: response to an unknown request "
                "(msgid %" PRIu32 ")\n", r->tag);
        m->status = CTL_EXIT_FAIL;
        return -1;
    }
    uint64_t index = m->slots[s].index;
    fp_buf_clear(&m->line);
    int rc = fp_client_outcome(m->c, r, &o);
    if (rc == 0 || rc == FP_CLIENT_EJOB) {
        ok = o.ok;
        full = ctl_outcome_queue_full(&o);
        rc = ctl_outcome_write(&m->line, index, &o, err, sizeof err);
    } else if (rc == FP_CLIENT_EREFUSED) {
        /* a plain-string refusal: the job was not taken */
        full = strcmp(fp_client_error(m->c), "queue full") == 0;
        rc = ctl_outcome_write_rejected(&m->line, index, fp_client_error(m->c));
        if (rc < 0)
            snprintf(err, sizeof err, "out of memory");
    } else {
        snprintf(err, sizeof err, "%s", fp_client_error(m->c));
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "forkpoolctl: map: bad response: %s\n", err);
        m->status = CTL_EXIT_FAIL;
        return -1;
    }
    m->sent--;
    if (!ok && !m->stopping && full) {
        fp_buf_clear(&m->line);
        retry_later(m, s);
        m->backoff = 1;
        m->credits = 0;
        return 0;
    }
    return job_ended(m, s, index, ok);
}

/* ---- the loop ----------------------------------------------------------- */

/* Send what may be sent now: resends first, then new lines. */
static int
fill(struct map *m)
{
    while (!m->stopping && (!m->backoff || m->credits > 0)) {
        int rc;
        if (m->retry_count > 0) {
            unsigned s = m->retry[m->retry_head];
            m->retry_head = (m->retry_head + 1) % m->nslots;
            m->retry_count--;
            rc = slot_send(m, s);
        } else if (can_take(m) && !m->backoff) {
            rc = take_lines(m);
            if (rc == 0)
                break;
        } else if (can_take(m)) {
            /* Pacing after "queue full": one job per credit. */
            int slot;
            rc = take_line(m, &slot);
            if (rc == 0)
                break;
            if (rc > 0 && slot >= 0)
                rc = slot_send(m, (unsigned)slot);
        } else {
            break;
        }
        if (rc < 0)
            return -1;
    }
    int rc = fp_client_flush(m->c);
    return rc < 0 ? conn_fail(m, rc) : 0;
}

static int
finished(struct map *m)
{
    int input_done = m->stopping || (m->eof && m->in.len == 0);
    return input_done && m->sent == 0 && m->retry_count == 0;
}

/* Read from the socket and handle every complete response. */
static int
socket_input(struct map *m)
{
    struct fp_client_msg r;
    int rc;

    if ((rc = fp_client_read(m->c)) <= 0)
        return conn_lost(m, rc == 0 ? FP_CLIENT_ECONNECT : rc);
    m->heard_ms = ctl_now_ms();
    while ((rc = fp_client_next(m->c, &r)) == 1)
        if (handle_response(m, &r) < 0)
            return -1;
    return rc < 0 ? conn_fail(m, rc) : 0;
}

/* Returns the exit status. */
static int
run(struct map *m)
{
    stdout_is_tty = isatty(STDOUT_FILENO);
    for (;;) {
        if (m->sent == 0 && fp_client_want_write(m->c) == 0)
            m->heard_ms = ctl_now_ms();     /* silence counts once jobs are out */
        if (fill(m) < 0)
            return m->status;
        if (fflush(stdout) == EOF) {
            map_fail(m, "stdout", errno);
            return m->status;
        }
        if (finished(m))
            return m->any_failed ? CTL_EXIT_FAIL : CTL_EXIT_OK;

        int want_stdin = !m->eof && can_take(m) && !line_ready(m);
        struct pollfd pfd[2] = {
            { .fd = fp_client_fd(m->c),
              .events = POLLIN | (fp_client_want_write(m->c) ? POLLOUT : 0) },
            { .fd = want_stdin ? STDIN_FILENO : -1, .events = POLLIN },
        };
        int paused = m->backoff && m->credits == 0;
        /* --rpc-timeout, if given: the longest the daemon may stay silent
         * (neither answering nor taking requests) while jobs are out. */
        int awaiting = m->sent > 0 || fp_client_want_write(m->c) > 0;
        int silence = awaiting ? ctl_wait_ms(m->to, m->heard_ms) : -1;
        int wait = paused && (silence < 0 || m->delay_ms < silence)
                   ? m->delay_ms : silence;
        int n = poll(pfd, 2, wait);
        if (n < 0 && errno != EINTR) {
            map_fail(m, "poll", errno);
            return m->status;
        }
        if (n == 0 && awaiting && ctl_wait_ms(m->to, m->heard_ms) == 0) {
            conn_lost(m, FP_CLIENT_ETIMEDOUT);
            return m->status;
        }
        if (n == 0 && paused) {
            m->credits = 1;
            if (m->delay_ms < RETRY_MAX_MS)
                m->delay_ms *= 2;
        }
        if (n <= 0)
            continue;
        if (pfd[0].revents & POLLOUT) {
            size_t before = fp_client_want_write(m->c);
            int rc = fp_client_flush(m->c);
            if (rc < 0)
                return conn_fail(m, rc), m->status;
            if (fp_client_want_write(m->c) < before)
                m->heard_ms = ctl_now_ms();
        }
        if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
            && socket_input(m) < 0)
            return m->status;
        if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
            && read_stdin(m) < 0)
            return m->status;
    }
}

/* Ask the daemon how large a job it takes (status "max_job_bytes"; a
 * daemon that does not say has the default).  Returns 0, or -1. */
static int
learn_job_limit(struct map *m)
{
    struct fp_reader rd;
    const char *status;
    size_t len;
    uint32_t n;
    uint64_t v;
    int rc;

    m->max_job_bytes = FP_DEFAULT_MAX_JOB_BYTES;
    if ((rc = fp_client_status(m->c, &status, &len)) < 0) {
        if (rc != FP_CLIENT_EREFUSED && rc != FP_CLIENT_EPROTO)
            return conn_fail(m, rc);
        len = 0;        /* a daemon that does not say: the default */
    }
    fp_reader_init(&rd, status, len);
    if (len > 0 && fp_read_map(&rd, &n) == 0)
        for (uint32_t i = 0; i < n; i++) {
            if (fp_read_str_eq(&rd, "max_job_bytes")) {
                if (fp_read_uint(&rd, &v) == 0 && v > 0 && v <= SIZE_MAX)
                    m->max_job_bytes = (size_t)v;
                break;
            }
            if (fp_read_skip(&rd, NULL, NULL) < 0
                || fp_read_skip(&rd, NULL, NULL) < 0)
                break;
        }
    m->batch_bytes = m->max_job_bytes < BATCH_BYTES ? m->max_job_bytes
                                                    : BATCH_BYTES;
    return 0;
}

/* Big jobs pass through several buffers per line (stdin, the packed job,
 * the request queue, the response, the outcome line), each freed again
 * once it is done.  Left to its defaults, glibc hands such blocks back to
 * the kernel at once (mmap'ed, or trimmed off the heap), and every line
 * pays again for faulting in fresh pages: for a 1 MiB job that cost more
 * than converting it.  Kept in the heap instead, freed blocks are reused. */
#define MALLOC_KEEP ((int)32 << 20)    /* glibc's ceiling for the threshold */

/* A pipe holds 64 KiB by default, so a line of a 1 MiB job (1.4 MB of
 * base64) crosses one in some twenty pieces, each a wake-up of the writer
 * and of the reader.  At 256 KiB, six.  (make bench, map 1 MiB, five runs
 * of each in turn: 0.22-0.28 GB/s with stdin at 64 KiB, 0.28-0.32 at 256
 * KiB; at 1 MiB it was slower than both, 0.23, the pipe's pages allocated
 * and freed for every line.)  Best effort: past the user's
 * pipe-user-pages-soft the kernel refuses, and the pipe stays as it was. */
static void
widen_pipe(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)
        && fcntl(fd, F_GETPIPE_SZ) < PIPE_BYTES)
        (void)fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES);
}

int
ctl_map(const struct ctl_target *to, const struct ctl_map_opts *o)
{
    struct map m;
    int rc;

    mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP);
    mallopt(M_TRIM_THRESHOLD, 4 * MALLOC_KEEP);
    widen_pipe(STDIN_FILENO);
    widen_pipe(STDOUT_FILENO);
    /* Base64 is two fifths of map's own CPU on 1 MiB jobs, and map is the
     * bound there: big blocks take two CPUs. */
    fp_b64_set_parallel(1);

    if (map_init(&m, to, o) < 0) {
        fprintf(stderr, "forkpoolctl: map: out of memory\n");
        rc = CTL_EXIT_FAIL;
    } else if ((rc = ctl_connect(&m.c, to)) < 0) {
        rc = ctl_fail(to, m.c, rc, "map");
    } else {
        /* The bar and the lines of --ids or --progress would tear each
         * other apart on stderr: those lines win. */
        ctl_progress_start(&m.progress, o->job.ids || o->job.progress);
        rc = learn_job_limit(&m) < 0 ? m.status : run(&m);
        ctl_progress_clear(&m.progress);
    }
    fp_client_close(m.c);   /* first: its queue may refer to the slots */
    map_free(&m);
    return rc;
}
