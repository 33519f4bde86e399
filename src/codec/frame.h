/*
 * frame.h — msgpack framing for untrusted byte streams.
 *
 * Pure buffer code: no sockets, no libev.  Two pieces:
 *
 *   fp_scan()    finds where one msgpack value ends in a stream, enforcing
 *                limits on total bytes, object count and nesting *before*
 *                anything is allocated (msgpack-c's own unpacker trusts the
 *                declared sizes: a 5-byte array header can make it reserve
 *                gigabytes).  Resumable: call again with more bytes.
 *   fp_reader    a cursor over one complete, scanned frame, to read the small
 *                envelope ([0, msgid, method, params], ["job", id, payload])
 *                and to pass payloads through as raw bytes without unpacking.
 */
#ifndef FP_FRAME_H
#define FP_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* msgpack-c's unpacker refuses values nested deeper than this (its
 * MSGPACK_EMBED_STACK_SIZE); frames are held to the same bound, plus the
 * envelope levels the caller adds. */
#define FP_MAX_DEPTH 32
#define FP_SCAN_STACK (FP_MAX_DEPTH + 4)

struct fp_limits {
    size_t   max_bytes;     /* a frame longer than this is an error */
    size_t   max_objects;   /* every value, container or not, counts one */
    unsigned max_depth;     /* containers nested; <= FP_SCAN_STACK */
};

/* Resumable scan state for one frame.  Zero it (fp_scanner_reset) before the
 * first byte of each frame. */
struct fp_scanner {
    size_t   pos;                       /* bytes of this frame accepted */
    size_t   objects;                   /* values seen so far */
    unsigned depth;                     /* open containers */
    uint64_t left[FP_SCAN_STACK];       /* values still owed per container */
};

void fp_scanner_reset(struct fp_scanner *s);

/* Scan the frame that starts at buf[0]; buf[0..len) holds every byte of it
 * received so far (the first s->pos of them were accepted by earlier calls).
 * Returns the frame's total length (> 0) once it is complete, 0 when more
 * bytes are needed, -1 on a limit or format violation with *why set to a
 * static message ("frame too large", "too many objects", "nesting too
 * deep", "invalid msgpack"). A declared length that cannot fit the limits is
 * refused as soon as its header is seen, not when its bytes arrive. */
ssize_t fp_scan(struct fp_scanner *s, const char *buf, size_t len,
                const struct fp_limits *lim, const char **why);

/* Skipping a frame that fp_scan refused for its size ("frame too large",
 * "too many objects"): its structure is still sound, so its end can be
 * found while its bytes are dropped as they arrive, and the stream goes on
 * with the next frame.  Nothing is kept but the counts of the containers
 * still open. */
#define FP_SKIP_STACK (FP_SCAN_STACK + 1)

struct fp_skipper {
    uint64_t body;                      /* bytes of a str/bin/ext payload
                                           still to drop */
    unsigned depth;                     /* open levels */
    uint64_t left[FP_SKIP_STACK];       /* values still owed per level */
};

/* Start skipping where fp_scan stopped: the first s->pos bytes of the frame
 * were accepted and are the caller's to drop; feed fp_skip the bytes from
 * there on. */
void fp_skip_start(struct fp_skipper *k, const struct fp_scanner *s);

/* Step over the frame's bytes in buf[0..len).  Returns how many of them
 * belong to the frame (the caller drops them; a header cut off at the end
 * of buf is not counted, so keep it and call again with more), with *done
 * set once the frame has ended; or -1 for bytes that are not msgpack or
 * containers nested deeper than FP_SKIP_STACK. */
ssize_t fp_skip(struct fp_skipper *k, const char *buf, size_t len, int *done);

/* Types as seen by fp_reader_type(). */
enum fp_type {
    FP_T_INVALID = 0, FP_T_NIL, FP_T_BOOL, FP_T_UINT, FP_T_INT, FP_T_FLOAT,
    FP_T_STR, FP_T_BIN, FP_T_ARRAY, FP_T_MAP, FP_T_EXT
};

/* A cursor over bytes that fp_scan accepted (it is still bounds-checked:
 * every read fails cleanly at the end).  Every fp_read_* returns 0 and
 * advances on success, or returns -1 and leaves the cursor where it was. */
struct fp_reader {
    const char *p;
    const char *end;
};

void fp_reader_init(struct fp_reader *r, const char *buf, size_t len);
int  fp_reader_type(const struct fp_reader *r);   /* enum fp_type */
int  fp_read_nil(struct fp_reader *r);
int  fp_read_bool(struct fp_reader *r, int *v);
/* Any non-negative integer encoding. */
int  fp_read_uint(struct fp_reader *r, uint64_t *v);
/* Any integer encoding that fits int64_t. */
int  fp_read_int(struct fp_reader *r, int64_t *v);
/* float32, float64, or any integer. */
int  fp_read_double(struct fp_reader *r, double *v);
/* str only; *s points into the buffer, not NUL-terminated. */
int  fp_read_str(struct fp_reader *r, const char **s, uint32_t *len);
int  fp_read_array(struct fp_reader *r, uint32_t *n);
int  fp_read_map(struct fp_reader *r, uint32_t *n);
/* Step over one whole value (containers included); its encoded bytes are
 * returned in *raw and *rawlen when those are not NULL. */
int  fp_read_skip(struct fp_reader *r, const char **raw, size_t *rawlen);
/* 1 if the next value is a str equal to `lit` (and consume it), else 0. */
int  fp_read_str_eq(struct fp_reader *r, const char *lit);

#endif /* FP_FRAME_H */
