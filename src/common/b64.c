/* b64.c — strict base64 over libcrypto's block codec (see b64.h). */
#include "config.h"
#include <string.h>

#include <openssl/evp.h>

#include "b64.h"

/* EVP_*Block take an int length: work in chunks well below INT_MAX, whole
 * 3-byte (encode) and 4-character (decode) groups each. */
#define ENCODE_CHUNK ((size_t)3 << 28)
#define DECODE_CHUNK ((size_t)4 << 28)

size_t
fp_b64_encode(char *dst, const void *src, size_t n)
{
    const unsigned char *p = src;
    size_t out = 0;

    if (n == 0) {       /* src may be NULL then */
        *dst = '\0';
        return 0;
    }
    do {
        size_t k = n < ENCODE_CHUNK ? n : ENCODE_CHUNK;
        out += (size_t)EVP_EncodeBlock((unsigned char *)dst + out, p, (int)k);
        p += k;
        n -= k;
    } while (n > 0);
    return out;
}

/* One of the 64 alphabet characters (not '='). */
static int
is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* EVP_DecodeBlock checks each character, but it also trims whitespace and
 * line ends around the block and decodes '=' anywhere as zero bits; the
 * checks here leave it nothing to trim (each chunk starts and ends with an
 * alphabet character or the final padding) and no '=' but the padding. */
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
    if (pad > 2 || memchr(src, '=', len - pad) != NULL)
        return -1;

    unsigned char *out = dst;
    size_t done = 0;
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
    /* The padding decoded as zero bits into the last group's tail bytes:
     * those are zero only if the last character's unused bits were. */
    size_t n = len / 4 * 3;
    if ((pad >= 1 && out[n - 1] != 0) || (pad == 2 && out[n - 2] != 0))
        return -1;
    *outlen = n - pad;
    return 0;
}
