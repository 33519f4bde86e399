/*
 * poison.c — the table of payloads that crash workers (see poison.h).
 */
#include "config.h"
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "forkpool.h"
#include "poison.h"

#define SLICE_S     600.0               /* one slice of the window, seconds */
#define NSLICES     6                   /* FP_POISON_WINDOW / SLICE_S */
#define WAYS        8                   /* entries per set */
#define NSETS       (FP_POISON_PAYLOADS / WAYS)

_Static_assert(NSLICES * SLICE_S == FP_POISON_WINDOW, "slices cover the window");
_Static_assert(FP_POISON_PAYLOADS % WAYS == 0, "whole sets");
_Static_assert(FP_POISON_AFTER_MAX <= UINT16_MAX, "counts fit a slice");

struct entry {
    uint8_t  hash[FP_POISON_HASH_BYTES];
    uint32_t last;                  /* its newest slice (slice_of), 0 = empty */
    uint16_t count[NSLICES];        /* crashes in slice s at [s % NSLICES],
                                       for the slices last-5 .. last */
};

struct fp_poison {
    unsigned     after;
    struct entry e[FP_POISON_PAYLOADS];
};

/* The slice `now` falls in, counted from 1 (0 marks an empty entry). */
static uint32_t
slice_of(double now)
{
    return now > 0 ? (uint32_t)(now / SLICE_S) + 1 : 1;
}

static void
hash_of(const char *data, size_t len, uint8_t out[FP_POISON_HASH_BYTES])
{
    crypto_generichash(out, FP_POISON_HASH_BYTES, (const unsigned char *)data,
                       len, NULL, 0);
}

/* Its crashes within the window ending in slice `now` (a clock that went
 * back counts everything it holds). */
static unsigned
recent(const struct entry *e, uint32_t now)
{
    unsigned n = 0;

    if (e->last == 0)
        return 0;
    for (uint32_t k = 0; k < NSLICES && k < e->last; k++) {
        uint32_t s = e->last - k;
        if (s + NSLICES > now)
            n += e->count[s % NSLICES];
    }
    return n;
}

static struct entry *
set_of(struct fp_poison *t, const uint8_t *hash)
{
    uint64_t h;

    memcpy(&h, hash, sizeof(h));
    return &t->e[(size_t)(h % NSETS) * WAYS];
}

static struct entry *
find(struct fp_poison *t, const uint8_t *hash)
{
    struct entry *set = set_of(t, hash);

    for (unsigned i = 0; i < WAYS; i++)
        if (set[i].last != 0 && memcmp(set[i].hash, hash, FP_POISON_HASH_BYTES) == 0)
            return &set[i];
    return NULL;
}

/* The entry a new payload takes in its set: an empty or aged-out one, else
 * the one with the fewest recent crashes that is not quarantined (the
 * least recently crashed of those), else the quarantined one crashed least
 * recently. */
static struct entry *
victim(struct fp_poison *t, const uint8_t *hash, uint32_t now)
{
    struct entry *set = set_of(t, hash), *best = NULL;
    unsigned best_rank = 0;

    for (unsigned i = 0; i < WAYS; i++) {
        struct entry *e = &set[i];
        unsigned n = recent(e, now);
        /* Lower goes first: every unquarantined count below any
         * quarantined one (whose counts do not matter). */
        unsigned rank = n >= t->after ? UINT16_MAX + 1u : n;
        if (n == 0)
            return e;
        if (best == NULL || rank < best_rank
            || (rank == best_rank && e->last < best->last)) {
            best = e;
            best_rank = rank;
        }
    }
    return best;
}

struct fp_poison *
fp_poison_new(unsigned after)
{
    struct fp_poison *t;

    if (after == 0 || after > FP_POISON_AFTER_MAX || sodium_init() < 0)
        return NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->after = after;
    return t;
}

void
fp_poison_free(struct fp_poison *t)
{
    free(t);
}

int
fp_poison_check(struct fp_poison *t, const char *data, size_t len, double now)
{
    uint8_t hash[FP_POISON_HASH_BYTES];
    const struct entry *e;

    hash_of(data, len, hash);
    e = find(t, hash);
    return e != NULL && recent(e, slice_of(now)) >= t->after;
}

int
fp_poison_crash(struct fp_poison *t, const char *data, size_t len, double now,
                char hex[FP_POISON_HEX])
{
    uint8_t hash[FP_POISON_HASH_BYTES];
    uint32_t s = slice_of(now);
    struct entry *e;
    unsigned before;

    hash_of(data, len, hash);
    if ((e = find(t, hash)) == NULL) {
        e = victim(t, hash, s);
        memset(e, 0, sizeof(*e));
        memcpy(e->hash, hash, sizeof(hash));
    }
    before = recent(e, s);
    if (e->last == 0 || s >= e->last + NSLICES) {
        memset(e->count, 0, sizeof(e->count));
    } else {
        /* The slices passed since its last crash start at zero again. */
        for (uint32_t k = e->last + 1; k <= s; k++)
            e->count[k % NSLICES] = 0;
    }
    if (s > e->last)
        e->last = s;
    if (e->count[e->last % NSLICES] < UINT16_MAX)
        e->count[e->last % NSLICES]++;
    if (before >= t->after || before + 1 < t->after)
        return 0;
    if (hex != NULL)
        sodium_bin2hex(hex, FP_POISON_HEX, hash, sizeof(hash));
    return 1;
}

size_t
fp_poison_count(const struct fp_poison *t, double now)
{
    uint32_t s = slice_of(now);
    size_t n = 0;

    for (size_t i = 0; i < FP_POISON_PAYLOADS; i++)
        n += recent(&t->e[i], s) >= t->after;
    return n;
}
