/*
 * check_outq.c — the write queue of segments (codec/outq.h): small pieces
 * share chunks, a big piece gets a segment of its own or is referred to
 * where it lies, the bytes come out in order whatever the mix, a message
 * is taken back whole, and every piece referred to is released exactly
 * once.  Pure memory: no sockets.
 */
#include "config.h"
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/outq.h"

/* Everything queued, gathered through fp_outq_iov into buf (which must
 * hold q->len bytes); returns the number of iovecs it took. */
static int
gather(const struct fp_outq *q, char *buf)
{
    struct iovec iov[1024];
    int n = fp_outq_iov(q, iov, 1024);
    size_t at = 0;

    for (int i = 0; i < n; i++) {
        memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    ck_assert_uint_eq(at, q->len);
    return n;
}

static void
fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i * 131 + seed * 7 + (i >> 9));
}

/* A referenced piece: its bytes and how often it was released. */
struct piece {
    char   *p;
    size_t  len;
    int     released;
};

static void
piece_release(void *arg)
{
    ((struct piece *)arg)->released++;
}

START_TEST(small_pieces_share_one_chunk)
{
    struct fp_outq q = FP_OUTQ_INIT;
    char want[1000], got[1000];

    for (int i = 0; i < 100; i++) {
        char ten[10];
        fill(ten, 10, (unsigned)i);
        memcpy(want + 10 * i, ten, 10);
        ck_assert_int_eq(fp_outq_append(&q, ten, 10), 0);
    }
    ck_assert_uint_eq(q.len, 1000);
    ck_assert_int_eq(gather(&q, got), 1);
    ck_assert(memcmp(got, want, 1000) == 0);
    fp_outq_free(&q);
}
END_TEST

/* A small message that does not fit the last chunk fills it and goes on
 * in the next: chunks are written whole, however messages fall in them. */
START_TEST(a_small_piece_spans_two_chunks)
{
    struct fp_outq q = FP_OUTQ_INIT;
    size_t n = FP_OUTQ_CHUNK - 100, m = 1000;
    char *want = malloc(n + m), *got = malloc(n + m);

    fill(want, n + m, 3);
    ck_assert_int_eq(fp_outq_append(&q, want, n), 0);
    ck_assert_int_eq(fp_outq_append(&q, want + n, m), 0);
    ck_assert_int_eq(gather(&q, got), 2);
    ck_assert(memcmp(got, want, n + m) == 0);
    fp_outq_free(&q);
    free(want);
    free(got);
}
END_TEST

START_TEST(a_big_piece_gets_a_segment_of_its_own_between_small_ones)
{
    struct fp_outq q = FP_OUTQ_INIT;
    size_t big = FP_OUTQ_BIG * 5 + 17;
    char *b = malloc(big), *got = malloc(big + 8);

    fill(b, big, 1);
    ck_assert_int_eq(fp_outq_append(&q, "ab", 2), 0);
    ck_assert_int_eq(fp_outq_append(&q, b, big), 0);
    ck_assert_int_eq(fp_outq_append(&q, "cd", 2), 0);
    ck_assert_int_eq(fp_outq_append(&q, "ef", 2), 0);
    /* "ab" | the big piece | "cdef": nothing after it went into it. */
    ck_assert_int_eq(gather(&q, got), 3);
    ck_assert(memcmp(got, "ab", 2) == 0);
    ck_assert(memcmp(got + 2, b, big) == 0);
    ck_assert(memcmp(got + 2 + big, "cdef", 4) == 0);
    fp_outq_free(&q);
    free(b);
    free(got);
}
END_TEST

START_TEST(a_referenced_piece_is_written_from_where_it_lies_and_released_once)
{
    struct fp_outq q = FP_OUTQ_INIT;
    struct piece pc = { malloc(100000), 100000, 0 };
    struct iovec iov[8];

    fill(pc.p, pc.len, 9);
    ck_assert_int_eq(fp_outq_append(&q, "head", 4), 0);
    ck_assert_int_eq(fp_outq_append_ref(&q, pc.p, pc.len, piece_release, &pc), 0);
    ck_assert_int_eq(fp_outq_append(&q, "tail", 4), 0);
    ck_assert_uint_eq(q.len, 8 + pc.len);
    ck_assert_int_eq(fp_outq_iov(&q, iov, 8), 3);
    ck_assert_ptr_eq(iov[1].iov_base, pc.p);        /* not a copy */

    /* Written in three goes: released once its last byte is out. */
    fp_outq_consume(&q, 4 + 50000);
    ck_assert_int_eq(pc.released, 0);
    ck_assert_int_eq(fp_outq_iov(&q, iov, 8), 2);
    ck_assert_ptr_eq(iov[0].iov_base, pc.p + 50000);
    fp_outq_consume(&q, 50000);
    ck_assert_int_eq(pc.released, 1);
    fp_outq_consume(&q, 4);
    ck_assert_uint_eq(q.len, 0);
    ck_assert_int_eq(fp_outq_iov(&q, iov, 8), 0);
    fp_outq_free(&q);
    ck_assert_int_eq(pc.released, 1);

    /* Dropped unwritten: released by clear; nothing to write: at once. */
    ck_assert_int_eq(fp_outq_append_ref(&q, pc.p, pc.len, piece_release, &pc), 0);
    fp_outq_clear(&q);
    ck_assert_int_eq(pc.released, 2);
    ck_assert_int_eq(fp_outq_append_ref(&q, pc.p, 0, piece_release, &pc), 0);
    ck_assert_int_eq(pc.released, 3);
    ck_assert_uint_eq(q.len, 0);
    fp_outq_free(&q);
    free(pc.p);
}
END_TEST

/* A message taken back leaves the queue exactly as it was: its bytes,
 * small, big and referenced, are gone; what came before is untouched; what
 * it referred to is released. */
START_TEST(rollback_takes_back_exactly_one_message)
{
    struct fp_outq q = FP_OUTQ_INIT;
    struct fp_outq_mark mk;
    struct piece pc = { malloc(70000), 70000, 0 };
    size_t big = 3 * FP_OUTQ_BIG;
    char *b = malloc(big), *got = malloc(4 * FP_OUTQ_CHUNK);
    char before[300];

    fill(pc.p, pc.len, 2);
    fill(b, big, 4);
    fill(before, sizeof before, 5);
    ck_assert_int_eq(fp_outq_append(&q, before, sizeof before), 0);
    fp_outq_mark(&q, &mk);
    ck_assert_int_eq(fp_outq_append(&q, "x", 1), 0);
    ck_assert_int_eq(fp_outq_append(&q, b, big), 0);
    ck_assert_int_eq(fp_outq_append_ref(&q, pc.p, pc.len, piece_release, &pc), 0);
    ck_assert_int_eq(fp_outq_append(&q, b, FP_OUTQ_CHUNK - 10), 0);
    ck_assert_uint_eq(fp_outq_since(&q, &mk), 1 + big + pc.len + FP_OUTQ_CHUNK - 10);
    fp_outq_rollback(&q, &mk);
    ck_assert_int_eq(pc.released, 1);
    ck_assert_uint_eq(q.len, sizeof before);
    ck_assert_int_eq(gather(&q, got), 1);
    ck_assert(memcmp(got, before, sizeof before) == 0);

    /* The queue goes on as if the message had never been. */
    ck_assert_int_eq(fp_outq_append(&q, "after", 5), 0);
    ck_assert_int_eq(gather(&q, got), 1);
    ck_assert(memcmp(got + sizeof before, "after", 5) == 0);

    /* From an empty queue, back to empty. */
    fp_outq_clear(&q);
    fp_outq_mark(&q, &mk);
    ck_assert_int_eq(fp_outq_append(&q, b, big), 0);
    ck_assert_int_eq(fp_outq_append(&q, "y", 1), 0);
    fp_outq_rollback(&q, &mk);
    ck_assert_uint_eq(q.len, 0);
    ck_assert_int_eq(fp_outq_iov(&q, (struct iovec[1]){ { 0 } }, 1), 0);
    ck_assert_int_eq(fp_outq_append(&q, "z", 1), 0);
    ck_assert_int_eq(gather(&q, got), 1);
    ck_assert_int_eq(got[0], 'z');
    fp_outq_free(&q);
    free(pc.p);
    free(b);
    free(got);
}
END_TEST

/* fp_outq_iov fills at most `max` entries, oldest first. */
START_TEST(iov_stops_at_max)
{
    struct fp_outq q = FP_OUTQ_INIT;
    struct iovec iov[3];
    char *b = malloc(FP_OUTQ_BIG);

    fill(b, FP_OUTQ_BIG, 6);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(fp_outq_append(&q, b, FP_OUTQ_BIG), 0);
    ck_assert_int_eq(fp_outq_iov(&q, iov, 3), 3);
    ck_assert_uint_eq(iov[0].iov_len, FP_OUTQ_BIG);
    fp_outq_consume(&q, 4 * FP_OUTQ_BIG + 1);
    ck_assert_int_eq(fp_outq_iov(&q, iov, 3), 1);
    ck_assert_uint_eq(iov[0].iov_len, FP_OUTQ_BIG - 1);
    fp_outq_free(&q);
    free(b);
}
END_TEST

/* Random mixes of small, big and referenced pieces, partial writes and
 * taken-back messages, against a flat model of the stream. */
START_TEST(random_mixes_match_a_flat_model)
{
    enum { OPS = 4000, MODEL = 8 << 20, PIECES = 64 };
    struct fp_outq q = FP_OUTQ_INIT;
    char *model = malloc(MODEL), *got = malloc(MODEL), *src = malloc(200000);
    size_t head = 0, tail = 0;      /* model[head..tail) is queued */
    struct piece pieces[PIECES];
    int npieces = 0;
    unsigned seed = 12345;

    fill(src, 200000, 8);
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 8) % 100;
        size_t len;

        if (tail + 200000 > MODEL) {        /* start the model over */
            fp_outq_consume(&q, q.len);
            head = tail = 0;
        }
        if (r < 50) {                       /* small */
            len = (seed >> 4) % 3000;
            size_t at = (seed >> 12) % 1000;
            ck_assert_int_eq(fp_outq_append(&q, src + at, len), 0);
            memcpy(model + tail, src + at, len);
            tail += len;
        } else if (r < 60) {                /* big, copied */
            len = FP_OUTQ_BIG + (seed >> 6) % 100000;
            ck_assert_int_eq(fp_outq_append(&q, src + 7, len), 0);
            memcpy(model + tail, src + 7, len);
            tail += len;
        } else if (r < 68 && npieces < PIECES) {    /* big, referenced */
            struct piece *pc = &pieces[npieces++];
            pc->len = FP_OUTQ_BIG + (seed >> 5) % 50000;
            pc->p = malloc(pc->len);
            pc->released = 0;
            fill(pc->p, pc->len, (unsigned)op);
            ck_assert_int_eq(fp_outq_append_ref(&q, pc->p, pc->len, piece_release, pc), 0);
            memcpy(model + tail, pc->p, pc->len);
            tail += pc->len;
        } else if (r < 90) {                /* a write of some of it */
            len = (seed >> 3) % (q.len + 1);
            fp_outq_consume(&q, len);
            head += len;
        } else {                            /* a message taken back */
            struct fp_outq_mark mk;
            fp_outq_mark(&q, &mk);
            for (int k = 0; k < 3; k++)
                ck_assert_int_eq(fp_outq_append(&q, src, (seed >> (k + 2)) % 40000), 0);
            fp_outq_rollback(&q, &mk);
        }
        ck_assert_uint_eq(q.len, tail - head);
        if (op % 16 == 0 || r >= 90) {
            gather(&q, got);
            ck_assert_msg(memcmp(got, model + head, tail - head) == 0,
                          "stream differs after op %d", op);
        }
    }
    fp_outq_free(&q);
    for (int i = 0; i < npieces; i++) {
        ck_assert_int_eq(pieces[i].released, 1);
        free(pieces[i].p);
    }
    free(model);
    free(got);
    free(src);
}
END_TEST

static Suite *
outq_suite(void)
{
    Suite *s = suite_create("outq");
    TCase *tc = tcase_create("outq");

    tcase_add_test(tc, small_pieces_share_one_chunk);
    tcase_add_test(tc, a_small_piece_spans_two_chunks);
    tcase_add_test(tc, a_big_piece_gets_a_segment_of_its_own_between_small_ones);
    tcase_add_test(tc, a_referenced_piece_is_written_from_where_it_lies_and_released_once);
    tcase_add_test(tc, rollback_takes_back_exactly_one_message);
    tcase_add_test(tc, iov_stops_at_max);
    tcase_add_test(tc, random_mixes_match_a_flat_model);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(outq_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
