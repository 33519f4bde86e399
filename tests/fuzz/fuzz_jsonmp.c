/*
 * fuzz_jsonmp.c — libFuzzer target: forkpoolctl's JSON <-> msgpack
 * conversion (jsonmp.h).  It turns what a user types into jobs, and what the
 * daemon relays from untrusted workers into JSON.
 *
 * data[0] picks the direction, the rest is the input:
 *   even: JSON text -> fp_json_text_pack -> fp_json_from_msgpack -> dump
 *   odd:  msgpack bytes -> fp_json_from_msgpack -> dump -> fp_json_pack
 * Each direction also runs the streamed conversion that forkpoolctl map
 * uses (fp_json_text_to_buf, fp_json_write_msgpack, no jansson tree).
 *
 * Asserts, besides "no sanitizer report" (LeakSanitizer included, so every
 * error path must free what it made):
 *   - packing is all or nothing: on error nothing reached the sbuffer, and
 *     err holds a message; on success something did.
 *   - fp_json_from_msgpack accepts exactly what fp_scan accepts as one whole
 *     value nested at most FP_MAX_DEPTH deep (its contract: input bounded by
 *     fp_scan first; the value is then within msgpack-c's and conv's own
 *     depth bound), and says why when it refuses.
 *   - a round trip is stable: msgpack bytes B that fp_json_pack produced
 *     convert back to JSON, and that JSON packs to B again, byte for byte.
 *   - every JSON value converted from msgpack can be printed (json_dumps).
 *   - the streamed conversions agree with the tree path byte for byte:
 *     the same msgpack (or the same message) from JSON text, whether the
 *     streamed parser vouched for it itself or handed it on; the same
 *     text as json_dumps in both styles (or the same message) from msgpack;
 *     and a failed conversion leaves the buffer as it was.
 */
#include "config.h"
#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/buf.h"
#include "codec/frame.h"
#include "fuzz_check.h"
#include "common/jsonmp.h"
#include "common/jsonmp_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
dump(const json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    FZ_CHECK(text != NULL);
    free(text);
}

/* Pack v into a new sbuffer *sb (the caller destroys it).  Returns 0, or
 * -1 with nothing packed. */
static int
pack(const json_t *v, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    char err[256] = "";

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = fp_json_pack(v, &pk, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0)
        FZ_CHECK(sb->size == 0 && err[0] != '\0');
    else
        FZ_CHECK(sb->size > 0);
    return rc;
}

/* b1 is fp_json_pack's output: back to JSON and packed again, the same. */
static void
round_trip(const msgpack_sbuffer *b1)
{
    char err[256] = "";
    json_t *v = fp_json_from_msgpack(b1->data, b1->size, err, sizeof err);
    FZ_CHECK(v != NULL);
    dump(v);

    msgpack_sbuffer b2;
    FZ_CHECK(pack(v, &b2) == 0);
    FZ_CHECK(b2.size == b1->size && memcmp(b2.data, b1->data, b1->size) == 0);
    msgpack_sbuffer_destroy(&b2);
    json_decref(v);
}

/* The streamed path on JSON text, against the tree path's result (rc,
 * err, and on success the msgpack in sb). */
static void
stream_text(const char *text, size_t len, int rc, const char *err,
            const msgpack_sbuffer *sb)
{
    struct fp_buf b = FP_BUF_INIT, raw = FP_BUF_INIT;
    char serr[256] = "";

    FZ_CHECK(fp_buf_append(&b, "#", 1) == 0);
    int src = fp_json_text_to_buf(text, len, &b, serr, sizeof serr);
    FZ_CHECK(src == rc && fp_buf_head(&b)[0] == '#');
    if (rc < 0)
        FZ_CHECK(b.len == 1 && strcmp(serr, err) == 0);
    else
        FZ_CHECK(b.len - 1 == sb->size
                 && memcmp(fp_buf_head(&b) + 1, sb->data, sb->size) == 0);
    if (fp_json_stream_pack(text, len, &raw) == 0)
        FZ_CHECK(rc == 0 && raw.len == sb->size
                 && memcmp(fp_buf_head(&raw), sb->data, sb->size) == 0);
    else
        FZ_CHECK(raw.len == 0);
    fp_buf_free(&b);
    fp_buf_free(&raw);
}

/* The streamed writer on msgpack bytes, against the tree v (NULL: refused
 * with message err) printed in both styles. */
static void
stream_msgpack(const char *data, size_t len, const json_t *v, const char *err)
{
    static const size_t flags[2] = {
        JSON_ENCODE_ANY | JSON_COMPACT,
        JSON_INDENT(0) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY,
    };
    for (int st = 0; st < 2; st++) {
        struct fp_buf b = FP_BUF_INIT;
        char serr[256] = "";
        FZ_CHECK(fp_buf_append(&b, "#", 1) == 0);
        int rc = fp_json_write_msgpack(&b, data, len, (enum fp_json_style)st,
                                       serr, sizeof serr);
        FZ_CHECK(fp_buf_head(&b)[0] == '#');
        if (v == NULL) {
            FZ_CHECK(rc == -1 && b.len == 1 && strcmp(serr, err) == 0);
        } else {
            char *text = json_dumps(v, flags[st]);
            FZ_CHECK(text != NULL && rc == 0 && b.len - 1 == strlen(text)
                     && memcmp(fp_buf_head(&b) + 1, text, b.len - 1) == 0);
            free(text);
        }
        fp_buf_free(&b);
    }
}

static void
from_text(const char *text, size_t len)
{
    msgpack_sbuffer sb, sb2;
    msgpack_packer pk;
    char err[256] = "", err2[256] = "";

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = fp_json_text_pack_tree(text, len, &pk, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0) {
        FZ_CHECK(sb.size == 0 && err[0] != '\0');
    } else {
        FZ_CHECK(sb.size > 0);
        round_trip(&sb);
    }
    /* fp_json_text_pack (streamed, or handed on) gives the same. */
    msgpack_sbuffer_init(&sb2);
    msgpack_packer_init(&pk, &sb2, msgpack_sbuffer_write);
    FZ_CHECK(fp_json_text_pack(text, len, &pk, err2, sizeof err2) == rc);
    FZ_CHECK(sb2.size == sb.size
             && (sb.size == 0 || memcmp(sb2.data, sb.data, sb.size) == 0));
    FZ_CHECK(rc == 0 || strcmp(err, err2) == 0);
    msgpack_sbuffer_destroy(&sb2);
    stream_text(text, len, rc, err, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void
from_msgpack(const char *data, size_t len)
{
    char err[256] = "";
    json_t *v = fp_json_from_msgpack(data, len, err, sizeof err);

    struct fp_limits lim = {
        .max_bytes = len, .max_objects = SIZE_MAX, .max_depth = FP_MAX_DEPTH,
    };
    struct fp_scanner s;
    const char *why;
    fp_scanner_reset(&s);
    int whole = len > 0 && fp_scan(&s, data, len, &lim, &why) == (ssize_t)len;
    FZ_CHECK(v == NULL || whole);
    /* Below its object bound (1 << 22, more bytes than a fuzz input has),
     * fp_json_from_msgpack refuses nothing that fp_scan accepts, but map
     * keys whose JSON text would be too long (nested container keys double
     * at each level). */
    if (len < (size_t)1 << 22)
        FZ_CHECK(v != NULL || !whole || strstr(err, "map key is too long") != NULL);
    stream_msgpack(data, len, v, err);
    if (v == NULL) {
        FZ_CHECK(err[0] != '\0');
        return;
    }
    dump(v);

    msgpack_sbuffer b1;
    if (pack(v, &b1) == 0)      /* {"$bin": 1} converts but cannot pack */
        round_trip(&b1);
    msgpack_sbuffer_destroy(&b1);
    json_decref(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        from_msgpack((const char *)data + 1, size - 1);
    else
        from_text((const char *)data + 1, size - 1);
    return 0;
}
