/*
 * client_methods.c — the control methods as blocking calls: status, scale,
 * cancel, drain, reload, metrics, limit, subscribe, and any method by name.
 */
#include "config.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "client_int.h"

int
fp_client_request(fp_client *c, const char *method, const void *params,
                  size_t plen, uint32_t *tag)
{
    struct fp_client_job part = { params, plen, NULL, NULL };
    uint32_t t;
    int rc;

    if (method == NULL || params == NULL || plen == 0)
        return fpc_fail(c, FP_CLIENT_EINVAL, "a request needs a method and params");
    if ((rc = fpc_tag(c, tag, &t)) < 0 || (rc = fpc_queue(c, t, method, &part, 1)) < 0)
        return rc;
    if (tag != NULL)
        *tag = t;
    return 0;
}

int
fp_client_call(fp_client *c, const char *method, const void *params,
               size_t plen, struct fp_client_msg *resp)
{
    uint32_t tag = 0;
    int rc;

    if ((rc = fp_client_request(c, method, params, plen, &tag)) < 0)
        return rc;
    return fpc_await(c, tag, NULL, resp);
}

/* Call `method` with the params packed in c->scratch; a response whose
 * error is set becomes FP_CLIENT_EREFUSED with the error as text. */
static int
call_scratch(struct fp_client *c, const char *method, struct fp_client_msg *m)
{
    uint32_t tag = 0;
    int rc;

    if ((rc = fp_client_request(c, method, fp_buf_head(&c->scratch),
                                c->scratch.len, &tag)) < 0
        || (rc = fpc_await(c, tag, NULL, m)) < 0)
        return rc;
    if (m->error != NULL) {
        struct fp_reader rd;
        const char *s;
        uint32_t n;
        fp_reader_init(&rd, m->error, m->error_len);
        if (fp_read_str(&rd, &s, &n) == 0)
            return fpc_fail(c, FP_CLIENT_EREFUSED, "%s: %.*s", method, (int)n, s);
        return fpc_fail(c, FP_CLIENT_EREFUSED, "%s: refused by the daemon", method);
    }
    return 0;
}

/* Start packing params into c->scratch: an array of n. */
static msgpack_packer *
params(struct fp_client *c, msgpack_packer *pk, size_t n)
{
    fp_buf_clear(&c->scratch);
    msgpack_packer_init(pk, &c->scratch, fp_buf_pack_write);
    return msgpack_pack_array(pk, n) == 0 ? pk : NULL;
}

/* A method without params, whose result is not looked at. */
static int
call_plain(struct fp_client *c, const char *method, struct fp_client_msg *m)
{
    msgpack_packer pk;

    if (params(c, &pk, 0) == NULL)
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    return call_scratch(c, method, m);
}

int
fp_client_status(fp_client *c, const char **map, size_t *len)
{
    struct fp_client_msg m;
    struct fp_reader rd;
    uint32_t n;
    int rc = call_plain(c, "status", &m);

    if (rc < 0)
        return rc;
    fp_reader_init(&rd, m.result, m.result_len);
    if (fp_read_map(&rd, &n) < 0)
        return fpc_fail(c, FP_CLIENT_EPROTO, "status: the result is not a map");
    *map = m.result;
    *len = m.result_len;
    return 0;
}

int
fp_client_scale(fp_client *c, unsigned n, unsigned *workers)
{
    struct fp_client_msg m;
    msgpack_packer pk;
    int rc;

    if (params(c, &pk, 1) == NULL || msgpack_pack_unsigned_int(&pk, n) != 0)
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    if ((rc = call_scratch(c, "scale", &m)) < 0)
        return rc;
    if (workers != NULL) {
        struct fp_reader rd;
        uint32_t entries;
        uint64_t w = n;
        fp_reader_init(&rd, m.result, m.result_len);
        if (fp_read_map(&rd, &entries) == 0)
            for (uint32_t i = 0; i < entries; i++) {
                if (fp_read_str_eq(&rd, "workers")) {
                    if (fp_read_uint(&rd, &w) < 0)
                        break;
                    continue;
                }
                if (fp_read_skip(&rd, NULL, NULL) < 0
                    || fp_read_skip(&rd, NULL, NULL) < 0)
                    break;
            }
        *workers = w > UINT32_MAX ? UINT32_MAX : (unsigned)w;
    }
    return 0;
}

int
fp_client_cancel(fp_client *c, uint64_t id, int *found)
{
    struct fp_client_msg m;
    msgpack_packer pk;
    int rc;

    if (params(c, &pk, 1) == NULL || msgpack_pack_uint64(&pk, id) != 0)
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    if ((rc = call_scratch(c, "cancel", &m)) < 0)
        return rc;
    if (found != NULL) {
        struct fp_reader rd;
        int b = 0;
        fp_reader_init(&rd, m.result, m.result_len);
        if (fp_read_bool(&rd, &b) < 0)
            return fpc_fail(c, FP_CLIENT_EPROTO, "cancel: the result is not a bool");
        *found = b;
    }
    return 0;
}

int
fp_client_drain(fp_client *c)
{
    struct fp_client_msg m;

    return call_plain(c, "drain", &m);
}

int
fp_client_reload(fp_client *c)
{
    struct fp_client_msg m;

    return call_plain(c, "reload", &m);
}

int
fp_client_metrics(fp_client *c, const char **text, size_t *len)
{
    struct fp_client_msg m;
    struct fp_reader rd;
    uint32_t n;
    int rc = call_plain(c, "metrics", &m);

    if (rc < 0)
        return rc;
    fp_reader_init(&rd, m.result, m.result_len);
    if (fp_read_str(&rd, text, &n) < 0)
        return fpc_fail(c, FP_CLIENT_EPROTO, "metrics: the result is not text");
    *len = n;
    return 0;
}

int
fp_client_limit(fp_client *c, const char *key, double rate, double burst)
{
    struct fp_client_msg m;
    msgpack_packer pk;
    int with_burst = burst != 0;

    if (key == NULL || !isfinite(rate) || rate < 0 || !isfinite(burst)
        || burst < 0)
        return fpc_fail(c, FP_CLIENT_EINVAL,
                        "limit: a key, and a rate and burst that are finite numbers >= 0");
    if (params(c, &pk, with_burst ? 3 : 2) == NULL
        || msgpack_pack_str_with_body(&pk, key, strlen(key)) != 0
        || msgpack_pack_double(&pk, rate) != 0
        || (with_burst && msgpack_pack_double(&pk, burst) != 0))
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    return call_scratch(c, "limit", &m);
}

int
fp_client_limit_remove(fp_client *c, const char *key)
{
    struct fp_client_msg m;
    msgpack_packer pk;

    if (key == NULL)
        return fpc_fail(c, FP_CLIENT_EINVAL, "limit: a key");
    if (params(c, &pk, 2) == NULL
        || msgpack_pack_str_with_body(&pk, key, strlen(key)) != 0
        || msgpack_pack_nil(&pk) != 0)
        return fpc_fail(c, FP_CLIENT_ENOMEM, "out of memory");
    return call_scratch(c, "limit", &m);
}

int
fp_client_subscribe(fp_client *c)
{
    struct fp_client_msg m;

    return call_plain(c, "subscribe", &m);
}
