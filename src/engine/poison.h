/*
 * poison.h — poison payloads (fp_config.poison_after): which job payloads
 * keep crashing workers.
 *
 * A fixed table of FP_POISON_PAYLOADS entries, each a payload's hash
 * (BLAKE2b-128 of its msgpack bytes, libsodium's crypto_generichash) and
 * its crashes over the last hour, counted in six ten-minute slices (a
 * crash is forgotten 50 to 60 minutes after it, and nothing more need be
 * stored per crash).  A payload with `after` crashes in that window is
 * quarantined.  The table is set-associative (8 entries per set); a new
 * payload takes an empty or aged-out entry of its set, else the one with
 * the fewest crashes that is not quarantined, else the one crashed least
 * recently: memory stays fixed whatever a client sends.
 *
 * Why a cryptographic hash: a collision would refuse an innocent payload,
 * and the payloads come from untrusted clients, so a hash whose collisions
 * can be computed (any fast non-cryptographic one) would let a client
 * poison someone else's job.  BLAKE2b at 128 bits costs about a
 * microsecond on a small job, and only when the option is on.
 *
 * Pure code: time is a parameter (seconds), so tests can move the clock.
 */
#ifndef FP_POISON_H
#define FP_POISON_H

#include <stddef.h>
#include <stdint.h>

#define FP_POISON_HASH_BYTES 16
#define FP_POISON_HEX (2 * FP_POISON_HASH_BYTES + 1)
#define FP_POISON_WINDOW 3600.0     /* seconds a crash counts, at most */

struct fp_poison;

/* A table for `after` (1..FP_POISON_AFTER_MAX) crashes, or NULL (out of
 * memory, or libsodium could not start). */
struct fp_poison *fp_poison_new(unsigned after);
void fp_poison_free(struct fp_poison *t);

/* 1 if the payload data/len is quarantined at time `now`, else 0. */
int  fp_poison_check(struct fp_poison *t, const char *data, size_t len,
                     double now);

/* A worker crashed running data/len at time `now`.  Returns 1 if this
 * crash quarantined it (then `hex`, if not NULL, holds its hash in hex,
 * for the log), else 0. */
int  fp_poison_crash(struct fp_poison *t, const char *data, size_t len,
                     double now, char hex[FP_POISON_HEX]);

/* How many payloads are quarantined at time `now`. */
size_t fp_poison_count(const struct fp_poison *t, double now);

#endif
