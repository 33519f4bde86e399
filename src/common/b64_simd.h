/*
 * b64_simd.h — the bulk of a base64 text, 32 characters at a time with
 * AVX2, for b64.c (which does the ends, the checks of '=' and the
 * fallback).
 *
 * Why by hand: libcrypto's block codec (b64.c's fallback) converts about
 * 2 GB/s here, which made base64 two fifths of `forkpoolctl map`'s CPU on
 * 1 MiB payloads; Debian ships no vectorised base64 library.  The method
 * is the one Muła and Lemire published ("Faster Base64 Encoding and
 * Decoding Using AVX2 Instructions", 2018): each 3-byte group is spread
 * over a 32-bit word and its four 6-bit fields moved into place by two
 * 16-bit multiplies; characters are checked and mapped to their values by
 * comparing ranges.  The tests compare every path with libsodium's codec.
 */
#ifndef FP_B64_SIMD_H
#define FP_B64_SIMD_H

#include <stddef.h>

/* Whether this CPU runs the vector code (and it has not been turned off
 * by fp_b64_simd_set, for the tests).  The functions below convert
 * nothing when it does not. */
int    fp_b64_simd_on(void);
void   fp_b64_simd_set(int on);

/* Encode the first whole 24-byte blocks of src[0..n) into dst (32
 * characters each, no NUL), leaving at least 4 bytes for the caller.
 * Returns the bytes done (a multiple of 24; 0 when off). */
size_t fp_b64_simd_encode(unsigned char *dst, const unsigned char *src, size_t n);

/* Decode the first whole 32-character blocks of src[0..len) into dst (24
 * bytes each), leaving at least 4 characters for the caller; every one of
 * them must be one of the 64 alphabet characters ('=' is not).  Returns
 * the characters done (a multiple of 32; 0 when off), or (size_t)-1 if one
 * is not. */
size_t fp_b64_simd_decode(unsigned char *dst, const char *src, size_t len);

#endif /* FP_B64_SIMD_H */
