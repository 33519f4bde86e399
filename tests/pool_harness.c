/*
 * pool_harness.c — one in-process pool per test, every outcome recorded
 * (see pool_harness.h).
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modutil.h"
#include "pool_harness.h"
#include "testmod.h"

struct harness H;

static const fp_module test_module = {
    .abi = FP_MODULE_ABI,
    .name = "testmod",
    .init = testmod_init,
    .handle = testmod_handle,
    .fini = testmod_fini,
};

static void
capture_log(int level, const char *msg, void *arg)
{
    static const char *names[] = { "ERR", "WARN", "INFO", "DEBUG" };
    const char *name = level >= 0 && level <= 3 ? names[level] : "?";
    (void)arg;

    if (getenv("FP_TEST_LOG") != NULL)
        fprintf(stderr, "[pool %s] %s\n", name, msg);
    int n = snprintf(H.log + H.loglen, sizeof(H.log) - H.loglen, "%s: %s\n",
                     name, msg);
    if (n > 0)
        H.loglen += (size_t)n < sizeof(H.log) - H.loglen
                    ? (size_t)n : sizeof(H.log) - H.loglen - 1;
}

int
log_count(const char *needle)
{
    int n = 0;
    for (const char *p = H.log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

void
setup(void)
{
    memset(&H, 0, sizeof(H));
    H.loop = ev_default_loop(0);
    ck_assert_ptr_nonnull(H.loop);
}

void
teardown(void)
{
    if (H.pool != NULL)
        fp_pool_free(H.pool);
    H.pool = NULL;
    for (size_t i = 0; i < H.nrecs; i++) {
        free(H.recs[i].data);
        free(H.recs[i].str);
        free(H.recs[i].errtail);
    }
    free(H.recs);
    H.recs = NULL;
    H.nrecs = H.caprecs = 0;
}

TCase *
ph_tcase(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    return tc;
}

int
ph_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static void
check_until(void)
{
    if (H.until != NULL && H.until())
        ev_break(H.loop, EVBREAK_ONE);
}

void
record_cb(const fp_outcome *o, void *arg)
{
    struct harness *h = arg;
    struct rec *r;

    if (h->nrecs == h->caprecs) {
        h->caprecs = h->caprecs ? 2 * h->caprecs : 64;
        h->recs = realloc(h->recs, h->caprecs * sizeof(*h->recs));
        ck_assert_ptr_nonnull(h->recs);
    }
    r = &h->recs[h->nrecs++];
    memset(r, 0, sizeof(*r));
    r->id = o->id;
    r->kind = o->kind;
    r->attempts = o->attempts;
    r->stats = o->stats;
    if (o->stderr_tail != NULL) {
        r->errtail = malloc(o->stderr_len + 1);
        ck_assert_ptr_nonnull(r->errtail);
        memcpy(r->errtail, o->stderr_tail, o->stderr_len);
        r->errtail[o->stderr_len] = '\0';
        r->errtail_len = o->stderr_len;
    }
    r->len = o->len;
    r->data = malloc(o->len ? o->len : 1);
    ck_assert_ptr_nonnull(r->data);
    if (o->len > 0)
        memcpy(r->data, o->data, o->len);

    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    if (o->len > 0 && msgpack_unpack_next(&u, o->data, o->len, &off)
                      == MSGPACK_UNPACK_SUCCESS) {
        if (u.data.type == MSGPACK_OBJECT_STR)
            r->str = strdup_or(&u.data, "");
        else if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            r->is_int = u.data.via.u64 <= INT64_MAX;
            r->ival = (int64_t)u.data.via.u64;
        } else if (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            r->is_int = 1;
            r->ival = u.data.via.i64;
        }
    }
    msgpack_unpacked_destroy(&u);
    check_until();
}

void
never_cb(const fp_outcome *o, void *arg)
{
    (void)arg;
    ck_abort_msg("done callback called for rejected job (id %llu, %s)",
                 (unsigned long long)o->id, fp_kind_name(o->kind));
}

void
drained_cb(fp_pool *pool, int cut_off, void *arg)
{
    struct harness *h = arg;

    ck_assert_ptr_eq(pool, h->pool);
    h->drained_calls++;
    h->drained_cut_off = cut_off;
    h->recs_at_drained = h->nrecs;
    h->drained_at = ev_now(h->loop);
    check_until();
}

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w; (void)revents;
    H.expired = 1;
    ev_break(loop, EVBREAK_ONE);
}

/* Re-checks conditions that no callback of ours reports (worker states). */
static void
poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)w; (void)revents;
    check_until();
}

void
run_until(int (*pred)(void), double limit, const char *what)
{
    if (pred())
        return;
    H.until = pred;
    H.expired = 0;
    ev_now_update(H.loop);
    ev_timer_init(&H.deadline, deadline_cb, limit, 0.);
    ev_timer_start(H.loop, &H.deadline);
    ev_timer_init(&H.poll, poll_cb, 0.002, 0.002);
    ev_timer_start(H.loop, &H.poll);
    ev_run(H.loop, 0);
    ev_timer_stop(H.loop, &H.deadline);
    ev_timer_stop(H.loop, &H.poll);
    H.until = NULL;
    ck_assert_msg(pred(), "%s: not reached within %gs (%zu outcomes so far)%s",
                  what, limit, H.nrecs, H.expired ? "" : " (loop ran dry)");
}

static int
never(void)
{
    return 0;
}

void
run_for(double secs)
{
    H.until = never;
    ev_now_update(H.loop);
    ev_timer_init(&H.deadline, deadline_cb, secs, 0.);
    ev_timer_start(H.loop, &H.deadline);
    ev_run(H.loop, 0);
    ev_timer_stop(H.loop, &H.deadline);
    H.until = NULL;
    ck_assert_msg(H.expired, "loop stopped before %gs passed", secs);
}

static int
have_wanted_recs(void)
{
    return H.nrecs >= H.want_recs;
}

void
wait_outcomes(size_t n, double limit)
{
    H.want_recs = n;
    run_until(have_wanted_recs, limit, "outcomes");
}

const struct rec *
rec_for(uint64_t id)
{
    for (size_t i = 0; i < H.nrecs; i++)
        if (H.recs[i].id == id)
            return &H.recs[i];
    return NULL;
}

unsigned
count_for(uint64_t id)
{
    unsigned n = 0;
    for (size_t i = 0; i < H.nrecs; i++)
        if (H.recs[i].id == id)
            n++;
    return n;
}

static int
have_wanted_id(void)
{
    return rec_for(H.want_id) != NULL;
}

const struct rec *
wait_job(uint64_t id, double limit)
{
    H.want_id = id;
    run_until(have_wanted_id, limit, "job outcome");
    return rec_for(id);
}

int
drained(void)
{
    return H.drained_calls > 0;
}

const char *
detail(const struct rec *r)
{
    return r->str != NULL ? r->str : "<not a string>";
}

fp_stats
stats(void)
{
    fp_stats st;
    fp_pool_stats(H.pool, &st);
    return st;
}

int
one_busy(void)
{
    fp_stats st = stats();
    return st.busy == 1;
}

int
one_busy_nothing_queued(void)
{
    fp_stats st = stats();
    return st.busy == 1 && st.queued == 0;
}

int
two_idle(void)
{
    fp_stats st = stats();
    return st.idle == 2;
}

void
base_config(fp_config *cfg, unsigned workers)
{
    fp_config_init(cfg);
    cfg->workers = workers;
    cfg->module = &test_module;
    cfg->log = capture_log;
    cfg->log_arg = &H;
    cfg->log_level = FP_LOG_DEBUG;
}

void
start_pool(const fp_config *cfg)
{
    char err[256] = "";

    H.pool = fp_pool_new(H.loop, cfg, err, sizeof(err));
    ck_assert_msg(H.pool != NULL, "fp_pool_new: %s", err);
    ck_assert_int_eq(fp_pool_start(H.pool), 0);
}

char **
exec_worker_argv(const char *mode)
{
    static char path[] = PH_EXEC_WORKER;
    static char arg[64];
    static char *argv[] = { path, arg, NULL };

    snprintf(arg, sizeof(arg), "%s", mode);
    return argv;
}

uint64_t
submit_bytes(const char *buf, size_t len, const fp_job_opts *opts)
{
    uint64_t id = 0;
    const char *why = NULL;

    int rc = fp_pool_submit(H.pool, buf, len, opts, record_cb, &H, &id, &why);
    ck_assert_msg(rc == 0, "submit rejected: %s", why ? why : "(no reason)");
    ck_assert_uint_ne(id, 0);
    return id;
}

/* Submit {"op": op} plus key: a number or a string, when key is given. */
static uint64_t
submit_op_arg(const char *op, const char *key, const double *num,
              const char *str, const fp_job_opts *opts)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, key != NULL ? 2 : 1);
    pack_cstr(&pk, "op");
    pack_cstr(&pk, op);
    if (key != NULL) {
        pack_cstr(&pk, key);
        if (num != NULL)
            msgpack_pack_double(&pk, *num);
        else
            pack_cstr(&pk, str);
    }
    uint64_t id = submit_bytes(sb.data, sb.size, opts);
    msgpack_sbuffer_destroy(&sb);
    return id;
}

uint64_t
submit_op(const char *op, const fp_job_opts *opts)
{
    return submit_op_arg(op, NULL, NULL, NULL, opts);
}

uint64_t
submit_op_num(const char *op, const char *key, double value,
              const fp_job_opts *opts)
{
    return submit_op_arg(op, key, &value, NULL, opts);
}

uint64_t
submit_op_str(const char *op, const char *key, const char *value,
              const fp_job_opts *opts)
{
    return submit_op_arg(op, key, NULL, value, opts);
}

uint64_t
submit_int(int64_t v)
{
    msgpack_object o;
    uint64_t id = 0;
    const char *why = NULL;

    memset(&o, 0, sizeof(o));
    if (v >= 0) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = (uint64_t)v;
    } else {
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = v;
    }
    int rc = fp_pool_submit_object(H.pool, &o, NULL, record_cb, &H, &id, &why);
    ck_assert_msg(rc == 0, "submit rejected: %s", why ? why : "(no reason)");
    return id;
}

pid_t
worker_pid_by_job(void)
{
    const struct rec *r = wait_job(submit_op("pid", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert(r->is_int);
    ck_assert_int_gt(r->ival, 0);
    return (pid_t)r->ival;
}

char *
config_map(const char *key, const char *str, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_cstr(&pk, key);
    if (str != NULL)
        pack_cstr(&pk, str);
    else
        msgpack_pack_true(&pk);
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

void
warm_up(int n)
{
    for (int i = 0; i < n; i++)
        wait_job(submit_int(i), 20);
}
