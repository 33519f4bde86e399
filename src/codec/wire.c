/* wire.c — message decoders for the worker and control protocols (wire.h). */
#include "config.h"
#include <math.h>
#include <string.h>

#include "wire.h"

int
fp_wire_worker_msg(const char *frame, size_t len, struct fp_worker_msg *m,
                   const char **why)
{
    struct fp_reader r;
    uint32_t n, mapn;

    memset(m, 0, sizeof(*m));
    fp_reader_init(&r, frame, len);
    if (fp_read_array(&r, &n) < 0) {
        *why = "message is not an array";
        return -1;
    }
    if (n == 2 && fp_read_str_eq(&r, "ready")) {
        if (fp_read_map(&r, &mapn) < 0) {
            *why = "malformed ready message";
            return -1;
        }
        m->type = FP_WMSG_READY;
        return 0;
    }
    if (n == 2 && fp_read_str_eq(&r, "retire")) {
        if (fp_read_map(&r, &mapn) < 0) {
            *why = "malformed retire message";
            return -1;
        }
        m->type = FP_WMSG_RETIRE;
        return 0;
    }
    if (n == 3 && fp_read_str_eq(&r, "ok"))
        m->type = FP_WMSG_OK;
    else if (n == 3 && fp_read_str_eq(&r, "error"))
        m->type = FP_WMSG_ERROR;
    else if (n == 3 && fp_read_str_eq(&r, "progress"))
        m->type = FP_WMSG_PROGRESS;
    else {
        *why = "unknown message";
        return -1;
    }
    if (fp_read_uint(&r, &m->id) < 0
        || fp_read_skip(&r, &m->value, &m->value_len) < 0) {
        *why = m->type == FP_WMSG_PROGRESS ? "malformed progress message"
                                           : "malformed result";
        return -1;
    }
    return 0;
}

int
fp_wire_worker_msg_costed(const char *frame, size_t len,
                          struct fp_worker_msg *m, const char **why)
{
    struct fp_reader r;
    uint32_t n;

    fp_reader_init(&r, frame, len);
    if (fp_read_array(&r, &n) < 0 || n != 4)
        return fp_wire_worker_msg(frame, len, m, why);
    memset(m, 0, sizeof(*m));
    if (fp_read_str_eq(&r, "ok"))
        m->type = FP_WMSG_OK;
    else if (fp_read_str_eq(&r, "error"))
        m->type = FP_WMSG_ERROR;
    else
        return fp_wire_worker_msg(frame, len, m, why);
    if (fp_read_uint(&r, &m->id) < 0
        || fp_read_skip(&r, &m->value, &m->value_len) < 0
        || fp_read_skip(&r, &m->cost, &m->cost_len) < 0) {
        *why = "malformed result";
        return -1;
    }
    return 0;
}

/* Length of the unsigned integer at p[0..avail) (positive fixint or
 * uint 8/16/32/64) and its value; 0 if it is not one or is cut short. */
static size_t
quick_uint(const unsigned char *p, size_t avail, uint64_t *v)
{
    size_t w;

    if (avail == 0)
        return 0;
    if (p[0] <= 0x7f) {
        *v = p[0];
        return 1;
    }
    if (p[0] < 0xcc || p[0] > 0xcf)
        return 0;
    w = (size_t)1 << (p[0] - 0xcc);
    if (avail < 1 + w)
        return 0;
    *v = 0;
    for (size_t i = 1; i <= w; i++)
        *v = *v << 8 | p[i];
    return 1 + w;
}

/* Length of the scalar at p[0..avail) (nil, bool, int, float, str, bin:
 * no container, no ext, not 0xc1), header and body; 0 if it is something
 * else or is cut short. */
static size_t
quick_scalar(const unsigned char *p, size_t avail)
{
    unsigned b;
    size_t hs, body = 0;

    if (avail == 0)
        return 0;
    b = p[0];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 1;
    if (b >= 0xa0 && b <= 0xbf) {
        hs = 1;
        body = b & 0x1f;
    } else if (b == 0xca || b == 0xcb) {
        hs = 1;
        body = b == 0xca ? 4 : 8;
    } else if (b >= 0xcc && b <= 0xd3) {
        hs = 1;
        body = (size_t)1 << ((b - 0xcc) & 3);
    } else if ((b >= 0xc4 && b <= 0xc6) || (b >= 0xd9 && b <= 0xdb)) {
        size_t lw = (size_t)1 << (b >= 0xd9 ? b - 0xd9 : b - 0xc4);
        hs = 1 + lw;
        if (avail < hs)
            return 0;
        for (size_t i = 1; i <= lw; i++)
            body = body << 8 | p[i];
    } else {
        return 0;
    }
    if (avail < hs || body > avail - hs)
        return 0;
    return hs + body;
}

size_t
fp_wire_worker_ok_quick(const char *buf, size_t len, const struct fp_limits *lim,
                        struct fp_worker_msg *m)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t at = 4, n;
    uint64_t id, run_us;

    /* [ "ok", ...: a 4-array, then the fixstr "ok". */
    if (len < 4 || p[0] != 0x94 || p[1] != 0xa2 || p[2] != 'o' || p[3] != 'k')
        return 0;
    if ((n = quick_uint(p + at, len - at, &id)) == 0)
        return 0;
    at += n;
    size_t value = at;
    if ((n = quick_scalar(p + at, len - at)) == 0)
        return 0;
    at += n;
    size_t cost = at;
    if ((n = quick_uint(p + at, len - at, &run_us)) == 0)
        return 0;
    at += n;
    /* Five objects, one level of nesting: what fp_scan would check. */
    if (at > lim->max_bytes || lim->max_objects < 5 || lim->max_depth < 1)
        return 0;
    memset(m, 0, sizeof(*m));
    m->type = FP_WMSG_OK;
    m->id = id;
    m->value = buf + value;
    m->value_len = cost - value;
    m->cost = buf + cost;
    m->cost_len = at - cost;
    return at;
}

int
fp_wire_job_cost(const char *p, size_t len, struct fp_job_cost *c)
{
    struct fp_reader r;
    uint32_t n;

    fp_reader_init(&r, p, len);
    c->measured = 0;
    if (fp_read_uint(&r, &c->run_us) == 0)
        return 0;
    c->measured = 1;
    if (fp_read_array(&r, &n) < 0 || n != 5
        || fp_read_uint(&r, &c->run_us) < 0 || fp_read_uint(&r, &c->cpu_us) < 0
        || fp_read_uint(&r, &c->maxrss_kb) < 0
        || fp_read_uint(&r, &c->total_cpu_us) < 0
        || fp_read_uint(&r, &c->rss_kb) < 0)
        return -1;
    return 0;
}

int
fp_wire_request(const char *frame, size_t len, struct fp_request *rq,
                const char **why)
{
    struct fp_reader r;
    uint32_t n;
    uint64_t type, msgid;

    memset(rq, 0, sizeof(*rq));
    fp_reader_init(&r, frame, len);
    if (fp_read_array(&r, &n) < 0 || n != 4 || fp_read_uint(&r, &type) < 0
        || type != 0 || fp_read_uint(&r, &msgid) < 0 || msgid > UINT32_MAX) {
        *why = "not a request with a msgid";
        return -1;
    }
    rq->msgid = (uint32_t)msgid;
    if (fp_read_str(&r, &rq->method, &rq->method_len) < 0) {
        *why = "bad request: method must be a string";
        return 1;
    }
    if (fp_read_array(&r, &rq->nparams) < 0) {
        *why = "bad request: params must be an array";
        return 1;
    }
    rq->params = r;
    return 0;
}

int
fp_wire_request_msgid(const char *buf, size_t len, uint32_t *msgid)
{
    const char *method;
    uint32_t method_len;

    return fp_wire_request_head(buf, len, msgid, &method, &method_len);
}

int
fp_wire_request_head(const char *buf, size_t len, uint32_t *msgid,
                     const char **method, uint32_t *method_len)
{
    struct fp_reader r;
    uint32_t n;
    uint64_t type, id;

    fp_reader_init(&r, buf, len);
    if (fp_read_array(&r, &n) < 0 || n != 4 || fp_read_uint(&r, &type) < 0
        || type != 0 || fp_read_uint(&r, &id) < 0 || id > UINT32_MAX)
        return -1;
    *msgid = (uint32_t)id;
    if (fp_read_str(&r, method, method_len) < 0) {
        *method = NULL;
        *method_len = 0;
    }
    return 0;
}

int
fp_wire_method_is(const struct fp_request *rq, const char *name)
{
    size_t n = strlen(name);
    return rq->method_len == n && memcmp(rq->method, name, n) == 0;
}

int
fp_wire_read_key(struct fp_reader *r, char *key)
{
    const char *s;
    uint32_t len;

    if (fp_read_str(r, &s, &len) < 0 || len > FP_MAX_KEY_BYTES)
        return FP_KEY_NOT_SHORT_STRING;
    if (memchr(s, '\0', len) != NULL)
        return FP_KEY_HAS_NUL;
    memcpy(key, s, len);
    key[len] = '\0';
    return 0;
}

int
fp_limit_rate_valid(double rate)
{
    /* Written so that a NaN fails. */
    return rate >= 0 && rate <= FP_LIMIT_MAX;
}

int
fp_limit_burst_valid(double burst)
{
    return burst >= 1 && burst <= FP_LIMIT_MAX;
}

const char *
fp_wire_job_opts(struct fp_reader *r, fp_job_opts *opts,
                 struct fp_wire_submit_flags *flags, char *key)
{
    uint32_t n;

    if (fp_read_map(r, &n) < 0)
        return "malformed: options must be a map";
    while (n-- > 0) {
        if (fp_read_str_eq(r, "timeout")) {
            if (fp_read_double(r, &opts->timeout) < 0 || !isfinite(opts->timeout)
                || opts->timeout < 0 || opts->timeout > 1e9)
                return "malformed: timeout must be a number of seconds >= 0";
        } else if (fp_read_str_eq(r, "retries")) {
            uint64_t v;
            if (fp_read_uint(r, &v) < 0 || v > FP_MAX_RETRIES)
                return "malformed: retries must be an integer from 0 to 100";
            opts->retries = (unsigned)v;
        } else if (fp_read_str_eq(r, "key")) {
            int rc = fp_wire_read_key(r, key);
            if (rc == FP_KEY_HAS_NUL)
                return "malformed: key must not contain a NUL byte";
            if (rc < 0)
                return "malformed: key must be a string of at most 256 bytes";
            opts->key = key;
        } else if (fp_read_str_eq(r, "expires")) {
            if (fp_read_double(r, &opts->expires) < 0 || !isfinite(opts->expires)
                || opts->expires < 0 || opts->expires > 1e9)
                return "malformed: expires must be a number of seconds >= 0";
        } else if (fp_read_str_eq(r, "notify")) {
            if (fp_read_bool(r, &flags->notify) < 0)
                return "malformed: notify must be true or false";
        } else if (fp_read_str_eq(r, "progress")) {
            if (fp_read_bool(r, &flags->progress) < 0)
                return "malformed: progress must be true or false";
        } else {
            return "malformed: unknown option (expected timeout, retries, key, "
                   "expires, notify, progress)";
        }
    }
    return NULL;
}
