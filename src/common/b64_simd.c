/* b64_simd.c — base64 blocks with AVX2 (see b64_simd.h). */
#include "config.h"
#include "b64_simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

/* -1: not asked yet; then 0 or 1.  Racing first calls store the same
 * value (atomically, so that no reader sees a torn or stale one). */
static int simd = -1;

int
fp_b64_simd_on(void)
{
    int on = __atomic_load_n(&simd, __ATOMIC_RELAXED);

    if (on < 0) {
        on = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&simd, on, __ATOMIC_RELAXED);
    }
    return on;
}

void
fp_b64_simd_set(int on)
{
    __atomic_store_n(&simd, on && __builtin_cpu_supports("avx2"), __ATOMIC_RELAXED);
}

/* ---- encoding ----------------------------------------------------------- */

/* Each 128-bit lane holds 12 bytes: four groups a b c.  Returns, in each
 * group's 32-bit word, its four 6-bit values, one per byte. */
AVX2 static __m256i
spread_groups(__m256i in)
{
    /* Group a b c as the bytes b a c b of its word: the low 16 bits are
     * then a<<8|b (the first value in bits 15..10, the second in 9..4),
     * the high 16 bits b<<8|c (the third in 11..6, the fourth in 5..0). */
    const __m256i order = _mm256_setr_epi8(
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
    __m256i w = _mm256_shuffle_epi8(in, order);
    /* First and third down to the bottom of their halves (bytes 0 and 2):
     * the high half of v * 2^6, and of v * 2^10. */
    __m256i first_third = _mm256_mulhi_epu16(
        _mm256_and_si256(w, _mm256_set1_epi32(0x0FC0FC00)),
        _mm256_set1_epi32(0x04000040));
    /* Second and fourth up into bytes 1 and 3: v * 2^4 and v * 2^8. */
    __m256i second_fourth = _mm256_mullo_epi16(
        _mm256_and_si256(w, _mm256_set1_epi32(0x003F03F0)),
        _mm256_set1_epi32(0x01000010));
    return _mm256_or_si256(first_third, second_fourth);
}

/* Values 0..63 to their characters: add 'A' to 0..25, 'a' - 26 to
 * 26..51, '0' - 52 to 52..61, '+' - 62 to 62 and '/' - 63 to 63.  The
 * offset's index: 0 for 0..25, 1 for 26..51, 2..13 for 52..63. */
AVX2 static __m256i
to_chars(__m256i v)
{
    const __m256i offset = _mm256_setr_epi8(
        'A', 'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
        '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 0, 0,
        'A', 'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
        '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 0, 0);
    __m256i idx = _mm256_subs_epu8(v, _mm256_set1_epi8(51));
    idx = _mm256_sub_epi8(idx, _mm256_cmpgt_epi8(v, _mm256_set1_epi8(25)));
    return _mm256_add_epi8(v, _mm256_shuffle_epi8(offset, idx));
}

AVX2 static size_t
encode_avx2(unsigned char *dst, const unsigned char *src, size_t n)
{
    size_t i = 0;

    /* A block reads 28 bytes (16 at i, 16 at i + 12) and uses 24. */
    while (n - i >= 28) {
        __m256i in = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(src + i))),
            _mm_loadu_si128((const __m128i *)(src + i + 12)), 1);
        _mm256_storeu_si256((__m256i *)dst, to_chars(spread_groups(in)));
        i += 24;
        dst += 32;
    }
    return i;
}

size_t
fp_b64_simd_encode(unsigned char *dst, const unsigned char *src, size_t n)
{
    return fp_b64_simd_on() ? encode_avx2(dst, src, n) : 0;
}

/* ---- decoding ----------------------------------------------------------- */

/* Bytes c with lo <= c <= hi (signed compares: bytes of 0x80 and up are
 * negative, below every alphabet character). */
AVX2 static __m256i
in_range(__m256i c, char lo, char hi)
{
    return _mm256_and_si256(_mm256_cmpgt_epi8(c, _mm256_set1_epi8((char)(lo - 1))),
                            _mm256_cmpgt_epi8(_mm256_set1_epi8((char)(hi + 1)), c));
}

AVX2 static size_t
decode_avx2(unsigned char *dst, const char *src, size_t len)
{
    size_t i = 0;

    while (len - i >= 36) {
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i upper = in_range(c, 'A', 'Z');
        __m256i lower = in_range(c, 'a', 'z');
        __m256i digit = in_range(c, '0', '9');
        __m256i plus = _mm256_cmpeq_epi8(c, _mm256_set1_epi8('+'));
        __m256i slash = _mm256_cmpeq_epi8(c, _mm256_set1_epi8('/'));
        __m256i known = _mm256_or_si256(_mm256_or_si256(upper, lower),
                                        _mm256_or_si256(_mm256_or_si256(digit, plus), slash));
        if (_mm256_movemask_epi8(known) != -1)
            return (size_t)-1;
        /* Each character plus its class's offset is its value. */
        __m256i off = _mm256_or_si256(
            _mm256_or_si256(_mm256_and_si256(upper, _mm256_set1_epi8(-'A')),
                            _mm256_and_si256(lower, _mm256_set1_epi8(26 - 'a'))),
            _mm256_or_si256(_mm256_or_si256(_mm256_and_si256(digit, _mm256_set1_epi8(52 - '0')),
                                            _mm256_and_si256(plus, _mm256_set1_epi8(62 - '+'))),
                            _mm256_and_si256(slash, _mm256_set1_epi8(63 - '/'))));
        __m256i v = _mm256_add_epi8(c, off);
        /* Pairs of values into 12 bits (v0 * 2^6 + v1), pairs of those
         * into 24 (w0 * 2^12 + w1), one group per 32-bit word ... */
        __m256i w = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
        __m256i g = _mm256_madd_epi16(w, _mm256_set1_epi32(0x00011000));
        /* ... whose bytes 2 1 0 are the group's bytes in order: 12 per
         * lane, then the two lanes' 12 side by side. */
        const __m256i order = _mm256_setr_epi8(
            2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
            2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
        g = _mm256_shuffle_epi8(g, order);
        g = _mm256_permutevar8x32_epi32(g, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
        _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(g));
        _mm_storel_epi64((__m128i *)(dst + 16), _mm256_extracti128_si256(g, 1));
        i += 32;
        dst += 24;
    }
    return i;
}

size_t
fp_b64_simd_decode(unsigned char *dst, const char *src, size_t len)
{
    return fp_b64_simd_on() ? decode_avx2(dst, src, len) : 0;
}

#else /* no vector code for this machine */

int fp_b64_simd_on(void) { return 0; }
void fp_b64_simd_set(int on) { (void)on; }

size_t
fp_b64_simd_encode(unsigned char *dst, const unsigned char *src, size_t n)
{
    (void)dst, (void)src, (void)n;
    return 0;
}

size_t
fp_b64_simd_decode(unsigned char *dst, const char *src, size_t len)
{
    (void)dst, (void)src, (void)len;
    return 0;
}

#endif
