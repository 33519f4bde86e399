/*
 * worker_claim.h — who starts a job sent ahead: the worker, or the master
 * taking it back for another worker.  Settled atomically, in the area a
 * module worker shares with the master (worker_hold.h), so a job is started
 * exactly once.
 *
 * Both sides number the jobs of one worker's stream in the order their
 * bytes go down the socket (the master when it writes the first byte, the
 * worker when it reads the frame).  Before writing job `seq`, the master
 * offers it: slot seq % FP_CLAIM_RING holds seq<<2 | CLAIM_OFFERED.  Before
 * running it, the worker moves the slot to CLAIM_STARTED; to take it back,
 * the master moves it to CLAIM_TAKEN.  Whoever's compare-and-swap wins has
 * it; a worker that finds its job taken skips it without a word.
 *
 * A slot is reused FP_CLAIM_RING jobs later, so at most that many jobs may
 * be out that the worker has not read yet: not only the window, but also
 * jobs taken back, whose frames stay in the socket until the worker reads
 * past them (a worker stuck in a long job reads nothing).  The master
 * counts a job read once the worker has answered it or a later one, and
 * writes no job that would lap an unread one (send_jobs).  A hostile
 * worker can write the ring as it likes: the worst it can do is keep a job
 * it should have given up (a protocol error once it answers for it) or
 * give one up and run it anyway (its result is then a protocol error):
 * never a second recorded outcome.
 */
#ifndef FP_WORKER_CLAIM_H
#define FP_WORKER_CLAIM_H

#include <stdint.h>

#define FP_CLAIM_RING 2048      /* > FP_MAX_PREFETCH */
#define FP_MAX_PREFETCH 1024

enum { CLAIM_OFFERED = 1, CLAIM_STARTED = 2, CLAIM_TAKEN = 3 };

/* Master: job `seq` is about to be written. */
static inline void
fp_claim_offer(uint64_t *ring, uint64_t seq)
{
    __atomic_store_n(&ring[seq % FP_CLAIM_RING], seq << 2 | CLAIM_OFFERED,
                     __ATOMIC_RELEASE);
}

/* Worker: may it run job `seq`?  1 = yes (now it is started), 0 = the
 * master took it back. */
static inline int
fp_claim_start(uint64_t *ring, uint64_t seq)
{
    uint64_t want = seq << 2 | CLAIM_OFFERED;

    if (__atomic_compare_exchange_n(&ring[seq % FP_CLAIM_RING], &want,
                                    seq << 2 | CLAIM_STARTED, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 1;
    return want != (seq << 2 | CLAIM_TAKEN);
}

/* Master: take job `seq` back.  1 = taken (the worker will skip it), 0 =
 * the worker has started it. */
static inline int
fp_claim_take(uint64_t *ring, uint64_t seq)
{
    uint64_t want = seq << 2 | CLAIM_OFFERED;

    return __atomic_compare_exchange_n(&ring[seq % FP_CLAIM_RING], &want,
                                       seq << 2 | CLAIM_TAKEN, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

#endif
