/* ctl_outcome.c — forkpoolctl's outcome lines: a job's outcome, as the
 * client library decodes it, written as one JSON line. */
#include "config.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "ctl.h"
#include "common/jsonmp.h"

void
ctl_error_text(const struct fp_client_msg *r, char *err, size_t errlen)
{
    struct fp_reader rd;
    const char *s;
    uint32_t n;

    fp_reader_init(&rd, r->error, r->error_len);
    if (fp_read_str(&rd, &s, &n) == 0) {
        snprintf(err, errlen, "%.*s", (int)n, s);
        return;
    }
    char why[128];
    json_t *v = fp_json_from_msgpack(r->error, r->error_len, why, sizeof why);
    char *text = v != NULL ? json_dumps(v, CTL_JSON_FLAGS) : NULL;
    snprintf(err, errlen, "%s", text != NULL ? text : why);
    free(text);
    json_decref(v);
}

/* ---- outcome lines as text (map: no jansson tree per line) -------------- */

static int
append(struct fp_buf *out, const char *s)
{
    return fp_buf_append(out, s, strlen(s));
}

/* sep, "\"key\": " and a raw field converted (null when the daemon left
 * it out). */
static int
write_field(struct fp_buf *out, const char *sep, const char *key,
            const char *raw, size_t len, char *err, size_t errlen)
{
    char why[200];

    if (append(out, sep) < 0 || append(out, "\"") < 0 || append(out, key) < 0
        || append(out, "\": ") < 0
        || (raw == NULL && append(out, "null") < 0)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (raw != NULL
        && fp_json_write_msgpack(out, raw, len, FP_JSON_SPACED, why,
                                 sizeof why) < 0) {
        snprintf(err, errlen, "response \"%s\": %s", key, why);
        return -1;
    }
    return 0;
}

/* A receipt's duration: milliseconds the daemon rounds to the microsecond,
 * written as such ("200.472", where json_dumps would write the double's
 * 17 digits, "200.47200000000001").  Returns 0, -1 (no memory), or 1 if v
 * is not such a figure. */
static int
write_ms(struct fp_buf *out, double v)
{
    char buf[32], *p = buf + sizeof(buf);
    double us = v * 1e3;

    if (!(v >= 0 && us < 1e15))
        return 1;
    uint64_t n = (uint64_t)(us + 0.5);
    if (us - (double)n > 1e-3 || (double)n - us > 1e-3)
        return 1;
    /* Right to left, without printf: a map line writes three of these. */
    unsigned frac = (unsigned)(n % 1000), digits = 3;
    while (digits > 1 && frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    while (digits-- > 0) {
        *--p = (char)('0' + frac % 10);
        frac /= 10;
    }
    *--p = '.';
    n /= 1000;
    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    return fp_buf_append(out, p, (size_t)(buf + sizeof(buf) - p)) < 0 ? -1 : 0;
}

/* An unsigned integer, as json_dumps writes it.  Returns 0 or -1. */
static int
write_uint(struct fp_buf *out, uint64_t n)
{
    char buf[24], *p = buf + sizeof(buf);

    do
        *--p = (char)('0' + n % 10);
    while ((n /= 10) > 0);
    return fp_buf_append(out, p, (size_t)(buf + sizeof(buf) - p));
}

/* sep, "\"stats\": " and the receipt: as write_field, but its reals as
 * write_ms writes them (and, being on every line of a map, its figures
 * without a pass through msgpack-c). */
static int
write_stats(struct fp_buf *out, const char *sep, const char *raw, size_t len,
            char *err, size_t errlen)
{
    struct fp_reader rd;
    uint32_t n;
    size_t base = out->len;

    fp_reader_init(&rd, raw, len);
    if (fp_read_map(&rd, &n) < 0 || append(out, sep) < 0
        || append(out, "\"stats\": {") < 0)
        goto general;
    for (uint32_t i = 0; i < n; i++) {
        const char *key, *value;
        uint32_t keylen;
        size_t vlen;
        double v;
        struct fp_reader at;
        if (fp_read_str(&rd, &key, &keylen) < 0 || !fp_utf8_valid(key, keylen)
            || (i > 0 && append(out, ", ") < 0)
            || fp_json_write_string(out, key, keylen) < 0 || append(out, ": ") < 0)
            goto general;
        at = rd;
        if (fp_read_skip(&rd, &value, &vlen) < 0)
            goto general;
        uint64_t u;
        int rc = fp_reader_type(&at) == FP_T_FLOAT && fp_read_double(&at, &v) == 0
                 ? write_ms(out, v)
                 : fp_reader_type(&at) == FP_T_UINT && fp_read_uint(&at, &u) == 0
                 ? write_uint(out, u) : 1;
        if (rc < 0 || (rc > 0 && fp_json_write_msgpack(out, value, vlen,
                                                       FP_JSON_SPACED, NULL, 0) < 0))
            goto general;
    }
    if (append(out, "}") == 0)
        return 0;
general:
    /* Not the map of figures the daemon sends: as any other field. */
    out->len = base;
    return write_field(out, sep, "stats", raw, len, err, errlen);
}

int
ctl_outcome_write(struct fp_buf *out, uint64_t index,
                  const struct fp_client_outcome *o, char *err, size_t errlen)
{
    char head[96];
    size_t base = out->len;

    if (errlen > 0)
        err[0] = '\0';
    if (index == CTL_NO_INDEX)
        snprintf(head, sizeof head, "{\"id\": ");
    else
        snprintf(head, sizeof head, "{\"index\": %" PRIu64 ", \"id\": ", index);
    if (append(out, head) < 0
        || (o->has_id ? write_uint(out, o->id) : append(out, "null")) < 0)
        goto fail;
    if (o->ok) {
        if (append(out, ", \"ok\": true") < 0
            || write_field(out, ", ", "result", o->value, o->value_len, err,
                           errlen) < 0)
            goto fail;
    } else {
        if (append(out, ", \"ok\": false, \"kind\": \"") < 0
            || append(out, o->kind) < 0 || append(out, "\"") < 0
            || write_field(out, ", ", "detail", o->value, o->value_len, err,
                           errlen) < 0)
            goto fail;
    }
    if ((o->stats != NULL
         && write_stats(out, ", ", o->stats, o->stats_len, err, errlen) < 0)
        || (o->stderr_tail != NULL
            && write_field(out, ", ", "stderr", o->stderr_tail, o->stderr_len,
                           err, errlen) < 0))
        goto fail;
    if ((o->attempts != NULL
         && write_field(out, ", ", "attempts", o->attempts, o->attempts_len,
                        err, errlen) < 0)
        || append(out, "}") < 0)
        goto fail;
    return 0;
fail:
    if (errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    out->len = base;
    return -1;
}

/* A raw field that reads, as jansson's json_string_value would give it,
 * as the C string lit: a UTF-8 str equal to lit up to a NUL. */
static int
field_is(const char *raw, size_t len, const char *lit)
{
    struct fp_reader rd;
    const char *s;
    uint32_t n;
    size_t l = strlen(lit);

    fp_reader_init(&rd, raw, len);
    return raw != NULL && fp_read_str(&rd, &s, &n) == 0 && n >= l
           && memcmp(s, lit, l) == 0 && (n == l || s[l] == '\0')
           && fp_utf8_valid(s, n);
}

int
ctl_outcome_queue_full(const struct fp_client_outcome *o)
{
    return !o->ok && strcmp(o->kind, "rejected") == 0
           && field_is(o->value, o->value_len, "queue full");
}

int
ctl_outcome_write_rejected(struct fp_buf *out, uint64_t index,
                           const char *detail)
{
    char head[64];
    size_t base = out->len, n = strlen(detail);
    char *copy = NULL;
    int rc = -1;

    /* Text that is not UTF-8 (a parser message can quote the offending
     * input): every byte >= 0x80 becomes '?'. */
    if (!fp_utf8_valid(detail, n)) {
        if ((copy = strdup(detail)) == NULL)
            return -1;
        for (char *p = copy; *p != '\0'; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        detail = copy;
    }
    snprintf(head, sizeof head, "{\"index\": %" PRIu64 ", \"id\": null, ",
             index);
    if (append(out, head) == 0
        && append(out, "\"ok\": false, \"kind\": \"rejected\", "
                       "\"detail\": ") == 0
        && fp_json_write_string(out, detail, n) == 0
        && append(out, "}") == 0)
        rc = 0;
    else
        out->len = base;
    free(copy);
    return rc;
}

void
ctl_print_progress(uint64_t id, const char *value, size_t len)
{
    char text[24];

    snprintf(text, sizeof text, "%" PRIu64, id);
    ctl_print_progress_json(text, value, len);
}

void
ctl_print_progress_json(const char *id, const char *value, size_t len)
{
    struct fp_buf line = FP_BUF_INIT;
    char why[200] = "out of memory";

    if (fp_buf_printf(&line, "{\"id\": %s, \"progress\": ", id) < 0
        || fp_json_write_msgpack(&line, value, len, FP_JSON_SPACED, why,
                                 sizeof why) < 0
        || fp_buf_append(&line, "}\n", 2) < 0) {
        fprintf(stderr, "forkpoolctl: progress of job %s not shown: %s\n",
                id, why);
    } else {
        fwrite(fp_buf_head(&line), 1, line.len, stderr);
        fflush(stderr);
    }
    fp_buf_free(&line);
}

int
ctl_print_json(FILE *f, const json_t *v)
{
    if (json_dumpf(v, f, CTL_JSON_FLAGS) != 0 || fputc('\n', f) == EOF
        || fflush(f) == EOF)
        return -1;
    return 0;
}

/* "2d 03h 04m 05s", "4m 05s", "12.5s"; "-" for a negative or NaN time. */
void
ctl_format_duration(double s, char *buf, size_t n)
{
    unsigned long t = s >= 0 ? (unsigned long)s : 0;

    if (!(s >= 0)) {
        snprintf(buf, n, "-");
        return;
    }
    unsigned long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60,
                  sec = t % 60;
    if (d > 0)
        snprintf(buf, n, "%lud %02luh %02lum %02lus", d, h, m, sec);
    else if (h > 0)
        snprintf(buf, n, "%luh %02lum %02lus", h, m, sec);
    else if (m > 0)
        snprintf(buf, n, "%lum %02lus", m, sec);
    else
        snprintf(buf, n, "%.1fs", s);
}
