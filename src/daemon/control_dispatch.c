/*
 * control_dispatch.c — the control server's method table at work: find a
 * request's row, check its params against the row's rule, run the handler.
 * It knows no method by name; the rows are in control_methods.c.
 */
#include "config.h"
#include <stdio.h>
#include <string.h>

#include "control_int.h"
#include "codec/wire.h"

/* The row of the method named name[0..len), or NULL. */
static const struct ctl_method *
find_method(const struct fp_control *ctl, const char *name, uint32_t len)
{
    for (size_t i = 0; i < ctl->nmethods; i++)
        if (strlen(ctl->methods[i].name) == len
            && memcmp(ctl->methods[i].name, name, len) == 0)
            return &ctl->methods[i];
    return NULL;
}

/* 1 if the value under r has the shape s (r does not move). */
static int
shape_ok(enum ctl_shape s, const struct fp_reader *r)
{
    struct fp_reader at = *r;
    uint64_t u;
    uint32_t n;
    const char *str;

    switch (s) {
    case CTL_ANY:   return 1;
    case CTL_UINT:  return fp_read_uint(&at, &u) == 0;
    case CTL_U32:   return fp_read_uint(&at, &u) == 0 && u <= UINT32_MAX;
    case CTL_ARRAY: return fp_read_array(&at, &n) == 0;
    case CTL_MAP:   return fp_read_map(&at, &n) == 0;
    case CTL_STR:   return fp_read_str(&at, &str, &n) == 0;
    }
    return 0;
}

/* Check the request's params against m's rule and find each one.
 * Returns 0, or -1 if they break it. */
static int
check_params(const struct ctl_method *m, const struct fp_request *rq,
             struct ctl_params *p)
{
    struct fp_reader r = rq->params;

    if (rq->nparams < m->min_params || rq->nparams > m->max_params)
        return -1;
    p->n = rq->nparams;
    for (uint32_t i = 0; i < p->n && i < CTL_MAX_PARAMS; i++) {
        struct ctl_param *v = &p->v[i];
        if (fp_read_skip(&r, &v->raw, &v->len) < 0)
            return -1;
        fp_reader_init(&v->r, v->raw, v->len);
        if (!shape_ok(m->shape[i], &v->r))
            return -1;
    }
    return 0;
}

int
ctl_dispatch(struct client *c, const char *frame, size_t len)
{
    const struct ctl_method *m;
    struct fp_request rq;
    struct ctl_params p = { 0 };
    const char *why;
    char msg[160];
    int rc = fp_wire_request(frame, len, &rq, &why);

    if (rc < 0)
        return -1;
    if (rc > 0) {
        ctl_respond_error_str(c, rq.msgid, why);
        return 0;
    }
    if ((m = find_method(c->ctl, rq.method, rq.method_len)) == NULL) {
        snprintf(msg, sizeof(msg), "unknown method: %.*s",
                 (int)(rq.method_len > 64 ? 64 : rq.method_len), rq.method);
        ctl_respond_error_str(c, rq.msgid, msg);
    } else if (check_params(m, &rq, &p) < 0) {
        if (m->outcome_errors)
            ctl_respond_rejected(c, rq.msgid, m->usage);
        else
            ctl_respond_error_str(c, rq.msgid, m->usage);
    } else {
        m->handler(c, rq.msgid, &p);
    }
    return 0;
}

void
ctl_refuse_oversized(struct client *c, uint32_t msgid, const char *method,
                     uint32_t method_len, const char *why)
{
    const struct ctl_method *m = method != NULL
                                 ? find_method(c->ctl, method, method_len) : NULL;
    char msg[64];

    if (m != NULL && m->outcome_errors) {
        ctl_respond_rejected(c, msgid, "job too large");
        return;
    }
    snprintf(msg, sizeof(msg), "bad request: %s", why);
    ctl_respond_error_str(c, msgid, msg);
}
