/*
 * b64.h — base64 (RFC 4648 original alphabet, padded) for the JSON
 * mapping's {"$bin": ...} and {"$ext": ...}: the bulk 32 characters at a
 * time with AVX2 where the CPU has it (b64_simd.h), the rest and every
 * other CPU over OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock (libcrypto).
 *
 * Decoding is strict, and accepts exactly what libsodium's
 * sodium_base642bin(..., ignore NULL, VARIANT_ORIGINAL) accepts, which
 * forkpoolctl used before: length a multiple of 4, no whitespace, '=' only
 * as the last one or two characters, and the unused bits of the last
 * character zero (one spelling per byte string).  (One difference: bytes
 * of 0x80 and up are refused here, where libsodium takes some of them as
 * letters.)
 */
#ifndef FP_B64_H
#define FP_B64_H

#include <stddef.h>

/* Characters fp_b64_encode writes for n bytes (without the NUL). */
static inline size_t fp_b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

/* Room fp_b64_decode needs for len characters (the decoded length may be
 * up to 2 less). */
static inline size_t fp_b64_decode_room(size_t len) { return len / 4 * 3; }

/* Encode n bytes into dst, which has room for fp_b64_encoded_len(n) + 1
 * (a NUL is written after the text).  Returns the text's length. */
size_t fp_b64_encode(char *dst, const void *src, size_t n);

/* Decode len characters into dst (room: fp_b64_decode_room(len)).  Returns
 * 0 with *outlen set, or -1 if the text is not canonical padded base64. */
int fp_b64_decode(void *dst, const char *src, size_t len, size_t *outlen);

/* With `on`, a text of 256 KiB or more is encoded or decoded in two halves
 * at once, the second on a helper thread the first such call starts (and
 * that lives as long as the process); the result is the same.  Off by
 * default: for a program that converts big blocks one after another on one
 * thread (forkpoolctl map), not for one that must never wait. */
void fp_b64_set_parallel(int on);

#endif /* FP_B64_H */
