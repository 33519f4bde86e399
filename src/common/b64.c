/* b64.c — strict base64: the bulk with AVX2 where the CPU has it
 * (b64_simd.c), the rest over libcrypto's block codec (see b64.h). */
#include "config.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <openssl/evp.h>

#include "b64.h"
#include "b64_simd.h"

/* EVP_*Block take an int length: work in chunks well below INT_MAX, whole
 * 3-byte (encode) and 4-character (decode) groups each. */
#define ENCODE_CHUNK ((size_t)3 << 28)
#define DECODE_CHUNK ((size_t)4 << 28)

/* ------------------------------------------------------------------------
 * Two halves at once (fp_b64_set_parallel)
 *
 * A text of PARALLEL_MIN characters or more is split in two: the helper
 * thread does the second half while the caller does the first.  Below
 * that, handing half over and waiting for it costs more than it saves.
 * One call at a time uses the helper; another, meanwhile, works alone.
 * ------------------------------------------------------------------------ */

#define PARALLEL_MIN ((size_t)256 << 10)

enum { HALF_ENCODE, HALF_DECODE };

struct half {
    int                  op;
    unsigned char       *dst;
    const unsigned char *src;
    size_t               n;         /* bytes (encode) or characters */
    size_t               pad;       /* decode: '=' ending this span */
    size_t               out;       /* encode: characters written */
    int                  rc;        /* decode: 0 or -1 */
};

static struct {
    int             enabled;
    int             started;
    pthread_t       thread;
    pthread_mutex_t use;            /* held by the call the helper serves */
    pthread_mutex_t lock;
    pthread_cond_t  work, done;
    int             pending, finished;
    struct half     job;
} par = {
    .use = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

static size_t encode_span(unsigned char *dst, const unsigned char *p, size_t n);
static int decode_span(unsigned char *out, const char *src, size_t len, size_t pad);

static void
run_half(struct half *h)
{
    if (h->op == HALF_ENCODE)
        h->out = encode_span(h->dst, h->src, h->n);
    else
        h->rc = decode_span(h->dst, (const char *)h->src, h->n, h->pad);
}

static void *
helper_main(void *arg)
{
    sigset_t all;

    (void)arg;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* the caller's business */
    pthread_mutex_lock(&par.lock);
    for (;;) {
        while (!par.pending)
            pthread_cond_wait(&par.work, &par.lock);
        pthread_mutex_unlock(&par.lock);
        run_half(&par.job);
        pthread_mutex_lock(&par.lock);
        par.pending = 0;
        par.finished = 1;
        pthread_cond_signal(&par.done);
    }
    return NULL;
}

void
fp_b64_set_parallel(int on)
{
    par.enabled = on;
}

/* Hand `h` to the helper.  Returns 1 if it took it (finish_half then
 * waits for it), 0 if the caller is to do it itself. */
static int
start_half(const struct half *h)
{
    if (!par.enabled || pthread_mutex_trylock(&par.use) != 0)
        return 0;
    pthread_mutex_lock(&par.lock);
    if (!par.started) {
        if (pthread_create(&par.thread, NULL, helper_main, NULL) != 0) {
            par.enabled = 0;    /* no thread to be had: alone from now on */
            pthread_mutex_unlock(&par.lock);
            pthread_mutex_unlock(&par.use);
            return 0;
        }
        pthread_detach(par.thread);
        par.started = 1;
    }
    par.job = *h;
    par.finished = 0;
    par.pending = 1;
    pthread_cond_signal(&par.work);
    pthread_mutex_unlock(&par.lock);
    return 1;
}

static void
finish_half(struct half *h)
{
    pthread_mutex_lock(&par.lock);
    while (!par.finished)
        pthread_cond_wait(&par.done, &par.lock);
    *h = par.job;
    pthread_mutex_unlock(&par.lock);
    pthread_mutex_unlock(&par.use);
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

/* n > 0 bytes into dst; EVP_EncodeBlock writes a NUL after the text. */
static size_t
encode_span(unsigned char *dst, const unsigned char *p, size_t n)
{
    size_t done = fp_b64_simd_encode(dst, p, n);    /* leaves 4 or more */
    size_t out = done / 3 * 4;

    p += done;
    n -= done;
    do {
        size_t k = n < ENCODE_CHUNK ? n : ENCODE_CHUNK;
        out += (size_t)EVP_EncodeBlock(dst + out, p, (int)k);
        p += k;
        n -= k;
    } while (n > 0);
    return out;
}

size_t
fp_b64_encode(char *dst, const void *src, size_t n)
{
    const unsigned char *p = src;
    unsigned char *d = (unsigned char *)dst;

    if (n == 0) {       /* src may be NULL then */
        *dst = '\0';
        return 0;
    }
    /* The first half is whole 3-byte groups; the second writes the NUL. */
    size_t first = n / 2 / 3 * 3;
    struct half h = { .op = HALF_ENCODE, .dst = d + first / 3 * 4,
                      .src = p + first, .n = n - first };
    if (fp_b64_encoded_len(n) < PARALLEL_MIN || first < 3 || !start_half(&h))
        return encode_span(d, p, n);
    /* All but the first half's last group straight into place: the NUL
     * after it lands in that group's own room, never in the helper's. */
    unsigned char last[5];
    size_t out = encode_span(d, p, first - 3);
    EVP_EncodeBlock(last, p + first - 3, 3);
    memcpy(d + out, last, 4);
    finish_half(&h);
    return out + 4 + h.out;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

/* One of the 64 alphabet characters (not '='). */
static int
is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Decode len > 0 characters (whole groups, the last `pad` of them '=')
 * into out.  Returns 0 or -1.
 *
 * The vector code takes only alphabet characters.  EVP_DecodeBlock, for
 * the rest, checks each character, but it also trims whitespace and line
 * ends around the block and decodes '=' anywhere as zero bits; the checks
 * here leave it nothing to trim (each chunk starts and ends with an
 * alphabet character or the final padding) and no '=' but the padding. */
static int
decode_span(unsigned char *out, const char *src, size_t len, size_t pad)
{
    size_t done = fp_b64_simd_decode(out, src, len);     /* leaves 4 or more */

    if (done == (size_t)-1
        || memchr(src + done, '=', len - done - pad) != NULL)
        return -1;
    while (done < len) {
        size_t k = len - done < DECODE_CHUNK ? len - done : DECODE_CHUNK;
        const char *c = src + done;
        size_t last = done + k == len ? k - 1 - pad : k - 1;
        if (!is_b64_char((unsigned char)c[0])
            || !is_b64_char((unsigned char)c[last]))
            return -1;
        if (EVP_DecodeBlock(out + done / 4 * 3, (const unsigned char *)c,
                            (int)k) != (int)(k / 4 * 3))
            return -1;
        done += k;
    }
    return 0;
}

int
fp_b64_decode(void *dst, const char *src, size_t len, size_t *outlen)
{
    size_t pad = 0;

    if (len % 4 != 0)
        return -1;
    if (len == 0) {
        *outlen = 0;
        return 0;
    }
    while (pad < 3 && src[len - 1 - pad] == '=')
        pad++;
    if (pad > 2)
        return -1;

    unsigned char *out = dst;
    size_t first = len / 2 / 4 * 4;
    struct half h = { .op = HALF_DECODE, .dst = out + first / 4 * 3,
                      .src = (const unsigned char *)src + first,
                      .n = len - first, .pad = pad };
    int rc;
    if (len >= PARALLEL_MIN && first > 0 && start_half(&h)) {
        rc = decode_span(out, src, first, 0);
        finish_half(&h);
        if (h.rc != 0)
            rc = -1;
    } else {
        rc = decode_span(out, src, len, pad);
    }
    if (rc != 0)
        return -1;
    /* The padding decoded as zero bits into the last group's tail bytes:
     * those are zero only if the last character's unused bits were. */
    size_t n = len / 4 * 3;
    if ((pad >= 1 && out[n - 1] != 0) || (pad == 2 && out[n - 2] != 0))
        return -1;
    *outlen = n - pad;
    return 0;
}
