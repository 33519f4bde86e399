/*
 * check_pool.c — the pool embedded in-process, exactly as a library user
 * would embed it.
 *
 * This is also the worked example of the embedding API: a handler module
 * defined right here (test_module), libev's default loop, jobs in through
 * fp_pool_submit / fp_pool_submit_object, outcomes out through a callback.
 * The loop runs until the outcomes a test expects have arrived (the callback
 * breaks it); a deadline timer fails the test if that takes absurdly long.
 * Nothing waits by sleeping.
 *
 * Check runs each test in a fresh forked process, so each gets a fresh
 * default loop and no worker outlives it.  The binary doubles as an
 * exec-style worker (`check_pool --exec-worker`) for the exec_argv test.
 */
#include "config.h"
#include <check.h>
#include <ev.h>
#include "forkpool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * The handler module.  A job that is a map with an "op" key does what the
 * op says; anything else is echoed back as the result.
 *
 *   {"op": "crash"}              real NULL write: SIGSEGV
 *   {"op": "fail", "arg": s}     error outcome, detail = s
 *   {"op": "sleep", "arg": s}    sleep s seconds, then echo the job
 *   {"op": "hang"}               pause() forever
 *   {"op": "exit", "arg": n}     _exit(n) mid-job
 *   {"op": "pid"}                result = the worker's pid
 *   {"op": "greet"}              result = init's config "greeting", or nil
 *   {"op": "sigkill"}            SIGKILL itself (no handler can run)
 *   {"op": "fork_abort"}         fork a child that abort()s; wait for it
 *   {"op": "trapped_fault"}      a NULL write that init's own SIGSEGV
 *                                handler recovers from (config "trap_segv")
 *   {"op": "crash_once", "arg": path}
 *                                crash if `path` did not exist yet (and
 *                                create it), otherwise echo the job
 *
 * init fails when its config is a map with "fail_init": true, and installs
 * a SIGSEGV handler of its own (a runtime trapping its faults) with
 * "trap_segv": true.
 * ------------------------------------------------------------------------ */

static int
obj_str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
           && memcmp(o->via.str.ptr, s, n) == 0;
}

/* The value under `key` in map `o`, or NULL. */
static const msgpack_object *
map_get(const msgpack_object *o, const char *key)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (obj_str_is(&o->via.map.ptr[i].key, key))
            return &o->via.map.ptr[i].val;
    return NULL;
}

static double
obj_num(const msgpack_object *o, double dflt)
{
    if (o == NULL)
        return dflt;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:          return o->via.f64;
    default:                              return dflt;
    }
}

/* A NUL-terminated copy of a str object (or of `dflt`); the caller frees. */
static char *
obj_cstr(const msgpack_object *o, const char *dflt)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return strdup(dflt);
    return strndup(o->via.str.ptr, o->via.str.size);
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A deliberate NULL store; UBSan need not report it (the SIGSEGV is the
 * point). */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
__attribute__((no_sanitize("undefined")))
#endif
#endif
static void
crash_now(void)
{
    volatile int *volatile nowhere = NULL;     /* a real store, not a trap */
    *nowhere = 1;
}

static sigjmp_buf trap_jump;

static void
trap_segv(int sig)
{
    (void)sig;
    siglongjmp(trap_jump, 1);
}

static int
test_init(void **state, const msgpack_object *config)
{
    const msgpack_object *v;

    *state = NULL;
    v = map_get(config, "fail_init");
    if (v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean)
        return 1;
    v = map_get(config, "trap_segv");
    if (v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = trap_segv;
        sa.sa_flags = SA_NODEFER;
        sigaction(SIGSEGV, &sa, NULL);
    }
    v = map_get(config, "greeting");
    if (v != NULL)
        *state = obj_cstr(v, "");
    return 0;
}

static int
test_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *op = map_get(job, "op");
    const msgpack_object *arg = map_get(job, "arg");

    if (op == NULL) {
        msgpack_pack_object(out, *job);
        return 0;
    }
    if (obj_str_is(op, "crash")) {
        crash_now();
    } else if (obj_str_is(op, "fail")) {
        char *detail = obj_cstr(arg, "failed on purpose");
        pack_cstr(out, detail);
        free(detail);
        return 1;
    } else if (obj_str_is(op, "sleep")) {
        double s = obj_num(arg, 0);
        struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    } else if (obj_str_is(op, "hang")) {
        for (;;)
            pause();
    } else if (obj_str_is(op, "exit")) {
        _exit((int)obj_num(arg, 0));
    } else if (obj_str_is(op, "pid")) {
        msgpack_pack_int64(out, getpid());
        return 0;
    } else if (obj_str_is(op, "sigkill")) {
        kill(getpid(), SIGKILL);
    } else if (obj_str_is(op, "fork_abort")) {
        pid_t pid = fork();
        if (pid == 0)
            abort();
        waitpid(pid, NULL, 0);
        pack_cstr(out, "child aborted");
        return 0;
    } else if (obj_str_is(op, "trapped_fault")) {
        if (sigsetjmp(trap_jump, 1) == 0)
            crash_now();
        pack_cstr(out, "recovered");
        return 0;
    } else if (obj_str_is(op, "greet")) {
        if (state != NULL)
            pack_cstr(out, state);
        else
            msgpack_pack_nil(out);
        return 0;
    } else if (obj_str_is(op, "crash_once")) {
        char *path = obj_cstr(arg, "");
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        free(path);
        if (fd >= 0) {
            close(fd);
            crash_now();
        }
    }
    msgpack_pack_object(out, *job);
    return 0;
}

static void
test_fini(void *state)
{
    free(state);
}

static const fp_module test_module = {
    .abi = FP_MODULE_ABI,
    .name = "check_pool",
    .init = test_init,
    .handle = test_handle,
    .fini = test_fini,
};

/* ------------------------------------------------------------------------
 * The exec worker: this same binary run as `check_pool --exec-worker`
 * speaks the worker protocol (SPEC §6) on stdin/stdout.  It answers
 * ["job", id, x] with ["ok", id, ["exec", x]], or with
 * ["error", id, "exec says no"] when x is the string "fail".  It breaks
 * the protocol on request: x = "wrong id" answers for another id, x = "huge"
 * starts a result that declares a 4 GiB value.  Run as
 * `check_pool --exec-ready-then-exit` it says "ready" and exits at once.
 * ------------------------------------------------------------------------ */

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
exec_worker_main(int ready_then_exit)
{
    msgpack_unpacker up;
    msgpack_unpacked msg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc = 0;

    msgpack_unpacker_init(&up, 64 * 1024);
    msgpack_unpacked_init(&msg);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    msgpack_pack_array(&pk, 2);
    pack_cstr(&pk, "ready");
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, getpid());
    pack_cstr(&pk, "proto");
    msgpack_pack_int(&pk, 1);
    if (write_all(1, sb.data, sb.size) < 0 || ready_then_exit)
        rc = 1;

    while (rc == 0) {
        if (!msgpack_unpacker_reserve_buffer(&up, 64 * 1024)) {
            rc = 1;
            break;
        }
        ssize_t n = read(0, msgpack_unpacker_buffer(&up),
                         msgpack_unpacker_buffer_capacity(&up));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0;
            break;
        }
        msgpack_unpacker_buffer_consumed(&up, (size_t)n);
        msgpack_sbuffer_clear(&sb);
        int ur;
        while ((ur = msgpack_unpacker_next(&up, &msg)) == MSGPACK_UNPACK_SUCCESS) {
            msgpack_object *m = &msg.data;
            if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size != 3
                || !obj_str_is(&m->via.array.ptr[0], "job")
                || m->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                rc = 1;
                break;
            }
            msgpack_object *x = &m->via.array.ptr[2];
            uint64_t id = m->via.array.ptr[1].via.u64;
            if (obj_str_is(x, "wrong id")) {
                msgpack_pack_array(&pk, 3);
                pack_cstr(&pk, "ok");
                msgpack_pack_uint64(&pk, id + 1000);
                msgpack_pack_nil(&pk);
                continue;
            }
            if (obj_str_is(x, "huge")) {
                /* ["ok", id, <bin declared 4 GiB long>...] */
                msgpack_pack_array(&pk, 3);
                pack_cstr(&pk, "ok");
                msgpack_pack_uint64(&pk, id);
                msgpack_sbuffer_write(&sb, "\xc6\xff\xff\xff\xff", 5);
                continue;
            }
            int fail = obj_str_is(x, "fail");
            msgpack_pack_array(&pk, 3);
            pack_cstr(&pk, fail ? "error" : "ok");
            msgpack_pack_uint64(&pk, id);
            if (fail) {
                pack_cstr(&pk, "exec says no");
            } else {
                msgpack_pack_array(&pk, 2);
                pack_cstr(&pk, "exec");
                msgpack_pack_object(&pk, *x);
            }
        }
        if (ur == MSGPACK_UNPACK_PARSE_ERROR || ur == MSGPACK_UNPACK_NOMEM_ERROR)
            rc = 1;
        if (sb.size > 0 && write_all(1, sb.data, sb.size) < 0)
            rc = 1;
    }
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&msg);
    msgpack_unpacker_destroy(&up);
    return rc;
}

/* ------------------------------------------------------------------------
 * Harness: one pool per test on the default loop; every outcome recorded.
 * ------------------------------------------------------------------------ */

struct rec {
    uint64_t  id;
    fp_kind   kind;
    unsigned  attempts;
    char     *data;         /* copy of the msgpack bytes */
    size_t    len;
    char     *str;          /* the value decoded, when it is a str */
    int       is_int;       /* the value decoded, when it is an integer */
    int64_t   ival;
};

static struct harness {
    struct ev_loop *loop;
    fp_pool        *pool;

    struct rec     *recs;
    size_t          nrecs, caprecs;

    /* run_until's state */
    int           (*until)(void);
    int             expired;
    ev_timer        deadline, poll;

    /* what the waits look for */
    size_t          want_recs;
    uint64_t        want_id;

    int             drained_calls;
    int             drained_cut_off;
    size_t          recs_at_drained;
    ev_tstamp       drained_at;

    char            log[16384];
    size_t          loglen;
} H;

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

/* How many captured log lines contain `needle`. */
static int
log_count(const char *needle)
{
    int n = 0;
    for (const char *p = H.log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void
setup(void)
{
    memset(&H, 0, sizeof(H));
    H.loop = ev_default_loop(0);
    ck_assert_ptr_nonnull(H.loop);
}

static void
teardown(void)
{
    if (H.pool != NULL)
        fp_pool_free(H.pool);
    H.pool = NULL;
    for (size_t i = 0; i < H.nrecs; i++) {
        free(H.recs[i].data);
        free(H.recs[i].str);
    }
    free(H.recs);
    H.recs = NULL;
    H.nrecs = H.caprecs = 0;
}

static void
check_until(void)
{
    if (H.until != NULL && H.until())
        ev_break(H.loop, EVBREAK_ONE);
}

/* The done callback: copy the outcome (its bytes live only during the call). */
static void
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
            r->str = obj_cstr(&u.data, "");
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

/* For rejected submissions: their callback must never run. */
static void
never_cb(const fp_outcome *o, void *arg)
{
    (void)arg;
    ck_abort_msg("done callback called for rejected job (id %llu, %s)",
                 (unsigned long long)o->id, fp_kind_name(o->kind));
}

static void
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

/* Run the loop until pred() holds; fail the test if `limit` seconds pass
 * first.  `what` names the condition in the failure message. */
static void
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

/* Run the loop for `secs` seconds of loop time, whatever happens. */
static int
never(void)
{
    return 0;
}

static void
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

/* Run until at least n outcomes in all have arrived. */
static void
wait_outcomes(size_t n, double limit)
{
    H.want_recs = n;
    run_until(have_wanted_recs, limit, "outcomes");
}

static const struct rec *
rec_for(uint64_t id)
{
    for (size_t i = 0; i < H.nrecs; i++)
        if (H.recs[i].id == id)
            return &H.recs[i];
    return NULL;
}

static unsigned
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

/* Run until job `id` has its outcome; return it. */
static const struct rec *
wait_job(uint64_t id, double limit)
{
    H.want_id = id;
    run_until(have_wanted_id, limit, "job outcome");
    return rec_for(id);
}

static int
drained(void)
{
    return H.drained_calls > 0;
}

static const char *
detail(const struct rec *r)
{
    return r->str != NULL ? r->str : "<not a string>";
}

static fp_stats
stats(void)
{
    fp_stats st;
    fp_pool_stats(H.pool, &st);
    return st;
}

/* A config with the test module, `workers` workers and captured logs. */
static void
base_config(fp_config *cfg, unsigned workers)
{
    fp_config_init(cfg);
    cfg->workers = workers;
    cfg->module = &test_module;
    cfg->log = capture_log;
    cfg->log_arg = &H;
    cfg->log_level = FP_LOG_DEBUG;
}

static void
start_pool(const fp_config *cfg)
{
    char err[256] = "";

    H.pool = fp_pool_new(H.loop, cfg, err, sizeof(err));
    ck_assert_msg(H.pool != NULL, "fp_pool_new: %s", err);
    ck_assert_int_eq(fp_pool_start(H.pool), 0);
}

static uint64_t
submit_bytes(const char *buf, size_t len, const fp_job_opts *opts)
{
    uint64_t id = 0;
    const char *why = NULL;

    int rc = fp_pool_submit(H.pool, buf, len, opts, record_cb, &H, &id, &why);
    ck_assert_msg(rc == 0, "submit rejected: %s", why ? why : "(no reason)");
    ck_assert_uint_ne(id, 0);
    return id;
}

/* Submit {"op": op} plus "arg" when one is given (a number or a string). */
static uint64_t
submit_op_arg(const char *op, const double *num, const char *str,
              const fp_job_opts *opts)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, num || str ? 2 : 1);
    pack_cstr(&pk, "op");
    pack_cstr(&pk, op);
    if (num != NULL) {
        pack_cstr(&pk, "arg");
        msgpack_pack_double(&pk, *num);
    } else if (str != NULL) {
        pack_cstr(&pk, "arg");
        pack_cstr(&pk, str);
    }
    uint64_t id = submit_bytes(sb.data, sb.size, opts);
    msgpack_sbuffer_destroy(&sb);
    return id;
}

static uint64_t
submit_op(const char *op, const fp_job_opts *opts)
{
    return submit_op_arg(op, NULL, NULL, opts);
}

static uint64_t
submit_op_num(const char *op, double arg, const fp_job_opts *opts)
{
    return submit_op_arg(op, &arg, NULL, opts);
}

static uint64_t
submit_op_str(const char *op, const char *arg, const fp_job_opts *opts)
{
    return submit_op_arg(op, NULL, arg, opts);
}

/* Submit a plain integer (echoed back) through fp_pool_submit_object. */
static uint64_t
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

/* The pid of the worker that runs the next job (a single-worker pool). */
static pid_t
worker_pid_by_job(void)
{
    const struct rec *r = wait_job(submit_op("pid", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert(r->is_int);
    ck_assert_int_gt(r->ival, 0);
    return (pid_t)r->ival;
}

/* msgpack bytes of {key: true} or {key: "str"}; the caller frees. */
static char *
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

static int
one_busy(void)
{
    fp_stats st = stats();
    return st.busy == 1;
}

static int
one_busy_nothing_queued(void)
{
    fp_stats st = stats();
    return st.busy == 1 && st.queued == 0;
}

/* ------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------ */

START_TEST(echo_jobs_all_complete_ok)
{
    enum { N = 500 };
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(submit_int(1000 + 7 * i), (uint64_t)i + 1);
    ck_assert_uint_eq(H.nrecs, 0);      /* never called from inside submit */

    wait_outcomes(N, 20);
    ck_assert_uint_eq(H.nrecs, N);
    for (uint64_t id = 1; id <= N; id++) {
        const struct rec *r = rec_for(id);
        ck_assert_msg(r != NULL, "no outcome for job %llu", (unsigned long long)id);
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(r->kind, FP_OK);
        ck_assert_uint_eq(r->attempts, 1);
        ck_assert(r->is_int);
        ck_assert_int_eq(r->ival, 1000 + 7 * (int64_t)(id - 1));
    }
    fp_stats st = stats();
    ck_assert_uint_eq(st.submitted, N);
    ck_assert_uint_eq(st.completed, N);
    ck_assert_uint_eq(st.crashed, 0);
    ck_assert_uint_eq(st.restarts, 0);
    ck_assert_uint_eq(st.queued, 0);
}
END_TEST

START_TEST(crash_mid_job_reports_crashed_and_respawns)
{
    fp_config cfg;
    pid_t pids[4];

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 1);
    ck_assert_int_eq(pids[0], before);

    const struct rec *r = wait_job(submit_op("crash", NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV");
    ck_assert_uint_eq(r->attempts, 1);

    pid_t after = worker_pid_by_job();
    ck_assert_int_ne(after, before);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 1);
    ck_assert_int_eq(pids[0], after);

    uint64_t first = submit_int(1);
    for (int i = 2; i <= 10; i++)
        submit_int(i);
    wait_outcomes(H.nrecs + 10, 20);
    for (uint64_t id = first; id < first + 10; id++) {
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
        ck_assert_int_eq(rec_for(id)->ival, (int64_t)(id - first + 1));
    }
    fp_stats st = stats();
    ck_assert_uint_eq(st.crashed, 1);
    ck_assert_uint_eq(st.restarts, 1);
}
END_TEST

START_TEST(error_outcome_keeps_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();

    const struct rec *r = wait_job(submit_op_str("fail", "bad input: 42", NULL), 20);
    ck_assert_int_eq(r->kind, FP_ERROR);
    ck_assert_str_eq(detail(r), "bad input: 42");
    ck_assert_uint_eq(r->attempts, 1);

    ck_assert_int_eq(worker_pid_by_job(), before);
    fp_stats st = stats();
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.crashed, 0);
    ck_assert_uint_eq(st.restarts, 0);
}
END_TEST

START_TEST(exit_mid_job_names_status)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op_num("exit", 3, NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "exited with status 3");
    ck_assert_int_eq(wait_job(submit_int(5), 20)->kind, FP_OK);
}
END_TEST

START_TEST(retries_rerun_on_fresh_worker)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 2 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("crash", &opts), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_uint_eq(r->attempts, 3);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV (after 3 attempts)");
    ck_assert_uint_eq(count_for(r->id), 1);
    ck_assert_uint_eq(stats().restarts, 3);     /* one fresh worker each */

    r = wait_job(submit_int(77), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    r = wait_job(submit_op("pid", &opts), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(r->attempts, 1);
}
END_TEST

START_TEST(retried_job_can_succeed_on_second_attempt)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = -1, .retries = 3 };
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "/tmp/check_pool_crash_once.%ld", (long)getpid());
    unlink(path);
    base_config(&cfg, 1);
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op_str("crash_once", path, &opts), 20);
    unlink(path);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(r->attempts, 2);
    ck_assert_uint_eq(stats().crashed, 0);
}
END_TEST

START_TEST(timeout_kills_and_replaces)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.2, .retries = 0 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();

    const struct rec *r = wait_job(submit_op("hang", &opts), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "timed out after 0.2s");
    ck_assert_uint_eq(r->attempts, 1);

    pid_t after = worker_pid_by_job();
    ck_assert_int_ne(after, before);
    fp_stats st = stats();
    ck_assert_uint_eq(st.timed_out, 1);
    ck_assert_uint_eq(st.restarts, 1);
}
END_TEST

START_TEST(pool_default_timeout_applies_without_opts)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.job_timeout = 0.2;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("hang", NULL), 20);
    ck_assert_int_eq(r->kind, FP_TIMEOUT);
    ck_assert_str_eq(detail(r), "timed out after 0.2s");
}
END_TEST

START_TEST(timeout_does_not_apply_to_quick_jobs)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 5, .retries = 0 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t first = submit_op_num("sleep", 0.01, &opts);
    for (int i = 0; i < 20; i++)
        submit_op_num("sleep", 0.001, &opts);
    wait_outcomes(21, 20);
    for (uint64_t id = first; id < first + 21; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    ck_assert_uint_eq(stats().timed_out, 0);
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* The done callback may submit more work: a chain of jobs, each submitted
 * from the outcome of the one before. */
static void
chain_cb(const fp_outcome *o, void *arg)
{
    record_cb(o, arg);
    if (H.nrecs < 100) {
        msgpack_object next = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };
        next.via.u64 = H.nrecs;
        ck_assert_int_eq(fp_pool_submit_object(H.pool, &next, NULL, chain_cb,
                                               arg, NULL, NULL), 0);
    }
}

START_TEST(submit_from_callback_chains_jobs)
{
    fp_config cfg;
    msgpack_object first = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER };

    base_config(&cfg, 2);
    start_pool(&cfg);
    first.via.u64 = 0;
    ck_assert_int_eq(fp_pool_submit_object(H.pool, &first, NULL, chain_cb, &H,
                                           NULL, NULL), 0);
    wait_outcomes(100, 20);
    for (uint64_t id = 1; id <= 100; id++) {
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
        ck_assert_int_eq(rec_for(id)->ival, (int64_t)id - 1);
    }
}
END_TEST

static int
two_idle(void)
{
    fp_stats st = stats();
    return st.idle == 2;
}

START_TEST(stats_count_idle_and_busy_workers)
{
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    fp_stats st = stats();
    ck_assert_uint_eq(st.workers, 2);
    ck_assert_uint_eq(st.starting + st.idle, 2);
    run_until(two_idle, 20, "two idle workers");
    st = stats();
    ck_assert_uint_eq(st.live, 2);
    ck_assert_uint_eq(st.busy, 0);
    ck_assert_uint_eq(st.starting, 0);
    ck_assert_int_eq(st.draining, 0);

    submit_op("hang", NULL);
    submit_int(1);
    submit_int(2);
    st = stats();
    ck_assert_uint_eq(st.busy, 2);      /* idle workers get a job at once */
    ck_assert_uint_eq(st.idle, 0);
    ck_assert_uint_eq(st.queued, 1);
    ck_assert_uint_eq(st.submitted, 3);
    wait_outcomes(2, 20);
    st = stats();
    ck_assert_uint_eq(st.busy, 1);
    ck_assert_uint_eq(st.idle, 1);
    ck_assert_uint_eq(st.completed, 2);
}
END_TEST

START_TEST(large_jobs_round_trip)
{
    enum { N = 6, SIZE = 3 << 20 };
    fp_config cfg;
    char *job = malloc(SIZE + 5);

    ck_assert_ptr_nonnull(job);
    base_config(&cfg, 2);
    start_pool(&cfg);
    job[0] = (char)0xc6;        /* bin 32 */
    job[1] = (char)((SIZE >> 24) & 0xff);
    job[2] = (char)((SIZE >> 16) & 0xff);
    job[3] = (char)((SIZE >> 8) & 0xff);
    job[4] = (char)(SIZE & 0xff);
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < SIZE; k++)
            job[5 + k] = (char)(k * 31 + (size_t)i);
        submit_bytes(job, SIZE + 5, NULL);
    }
    wait_outcomes(N, 20);
    for (int i = 0; i < N; i++) {
        const struct rec *r = rec_for((uint64_t)i + 1);
        ck_assert_int_eq(r->kind, FP_OK);
        ck_assert_uint_eq(r->len, SIZE + 5);
        for (size_t k = 0; k < SIZE; k++)
            job[5 + k] = (char)(k * 31 + (size_t)i);
        ck_assert_msg(memcmp(r->data, job, SIZE + 5) == 0,
                      "job %d came back altered", i + 1);
    }
    free(job);
}
END_TEST

/* ------------------------------------------------------------------------
 * Prefetch windows
 * ------------------------------------------------------------------------ */

START_TEST(prefetch_crash_requeues_unstarted_jobs)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch = 8;
    start_pool(&cfg);
    /* All in before the worker is ready: it gets the crash job and 7 more
     * in its window at once. */
    uint64_t crash = submit_op("crash", NULL);
    for (int i = 1; i <= 20; i++)
        ck_assert_uint_eq(submit_int(i), crash + (uint64_t)i);

    wait_outcomes(21, 20);
    run_for(0.05);              /* room for a wrongly repeated outcome */
    ck_assert_uint_eq(H.nrecs, 21);
    const struct rec *r = rec_for(crash);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "killed by SIGSEGV");
    ck_assert_uint_eq(r->attempts, 1);
    for (uint64_t id = crash + 1; id <= crash + 20; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        r = rec_for(id);
        ck_assert_int_eq(r->kind, FP_OK);
        ck_assert_uint_eq(r->attempts, 1);
        ck_assert_int_eq(r->ival, (int64_t)(id - crash));
    }
    /* One worker, FIFO: the echoes complete in submission order. */
    uint64_t last = 0;
    for (size_t i = 0; i < H.nrecs; i++) {
        if (H.recs[i].id == crash)
            continue;
        ck_assert_uint_gt(H.recs[i].id, last);
        last = H.recs[i].id;
    }
}
END_TEST

START_TEST(timeout_with_prefetched_jobs_requeues_them)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.2, .retries = 0 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", &opts);
    for (int i = 1; i <= 10; i++)
        submit_int(i);
    wait_outcomes(11, 20);
    ck_assert_int_eq(rec_for(hang)->kind, FP_TIMEOUT);
    for (uint64_t id = hang + 1; id <= hang + 10; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
        ck_assert_uint_eq(rec_for(id)->attempts, 1);
    }
}
END_TEST

/* A finished job's result goes out before the worker starts on the next
 * job in its window, not after it. */
START_TEST(quick_result_is_not_held_behind_slow_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    /* Both sent before the worker is ready: it reads them together. */
    uint64_t quick = submit_int(1);
    uint64_t slow = submit_op_num("sleep", 2.0, NULL);
    ev_now_update(H.loop);
    ev_tstamp t0 = ev_now(H.loop);
    const struct rec *r = wait_job(quick, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_msg(count_for(slow) == 0,
                  "the quick result came only with the slow one, after %.2fs",
                  ev_now(H.loop) - t0);
    ck_assert_msg(ev_now(H.loop) - t0 < 1.0, "quick result took %.2fs",
                  ev_now(H.loop) - t0);
}
END_TEST

/* Deaths no handler can see — _exit() inside the handler, SIGKILL — while
 * the results of the jobs before are held: the master takes those results
 * from the area it shares with the worker, so every finished job keeps its
 * ok outcome, only the job that was running is crashed, and the jobs after
 * it run on a fresh worker. */
static const char *const unseen_deaths[][2] = {
    { "\x82\xa2op\xa4" "exit\xa3" "arg\x03", "exited with status 3" },
    { "\x81\xa2op\xa7" "sigkill", "killed by SIGKILL" },
};

START_TEST(held_results_survive_deaths_no_handler_sees)
{
    fp_config cfg;
    fp_job_buf jobs[60];
    char ints[60];
    uint64_t first;
    const char *why;

    base_config(&cfg, 1);
    start_pool(&cfg);
    worker_pid_by_job();
    for (int i = 0; i < 60; i++) {
        ints[i] = (char)i;
        jobs[i] = (fp_job_buf){ &ints[i], 1 };
    }
    jobs[30] = (fp_job_buf){ unseen_deaths[_i][0], strlen(unseen_deaths[_i][0]) };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 60, NULL, record_cb, &H,
                                          &first, &why), 0);
    wait_outcomes(1 + 60, 20);
    for (int i = 0; i < 60; i++) {
        const struct rec *r = rec_for(first + (uint64_t)i);
        ck_assert_uint_eq(count_for(first + (uint64_t)i), 1);
        if (i == 30) {
            ck_assert_int_eq(r->kind, FP_CRASHED);
            ck_assert_str_eq(detail(r), unseen_deaths[_i][1]);
        } else {
            ck_assert_msg(r->kind == FP_OK && r->is_int && r->ival == i,
                          "job %d: %s %s", i, fp_kind_name(r->kind), detail(r));
            ck_assert_uint_eq(r->attempts, 1);
        }
    }
    ck_assert_uint_eq(stats().crashed, 1);
}
END_TEST

/* A job whose own forked child crashes: the child inherits the worker's
 * crash handler and its copy of the held results, but must not send them
 * (the master would see results twice and blame a job that succeeded). */
START_TEST(crash_of_a_jobs_child_sends_no_results)
{
    fp_config cfg;
    fp_job_buf jobs[50];
    char ints[50];
    uint64_t first;
    const char *why;

    base_config(&cfg, 1);
    start_pool(&cfg);
    worker_pid_by_job();
    for (int i = 0; i < 50; i++) {
        ints[i] = (char)i;
        jobs[i] = (fp_job_buf){ &ints[i], 1 };
    }
    jobs[25] = (fp_job_buf){ "\x81\xa2op\xaa" "fork_abort", 15 };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 50, NULL, record_cb, &H,
                                          &first, &why), 0);
    wait_outcomes(1 + 50, 20);
    for (int i = 0; i < 50; i++)
        ck_assert_msg(rec_for(first + (uint64_t)i)->kind == FP_OK, "job %d: %s %s", i,
                      fp_kind_name(rec_for(first + (uint64_t)i)->kind),
                      detail(rec_for(first + (uint64_t)i)));
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* A module that traps its own faults in init (a JIT, a GC) keeps its
 * handler: the worker does not replace it with the held-results one. */
START_TEST(module_signal_handlers_are_left_alone)
{
    fp_config cfg;
    static const char config[] = "\x81\xa9trap_segv\xc3";   /* {"trap_segv": true} */

    base_config(&cfg, 1);
    cfg.module_config = config;
    cfg.module_config_len = sizeof(config) - 1;
    start_pool(&cfg);
    const struct rec *r = wait_job(submit_op("trapped_fault", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "recovered");
}
END_TEST

/* The same when the job after it hangs until its timeout: the worker's
 * held result goes out on its own long before the kill, so the timeout
 * is charged to the job that hung. */
START_TEST(job_before_a_hang_keeps_its_ok_result)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.3 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t quick = submit_int(1);
    uint64_t hang = submit_op("hang", &opts);
    wait_outcomes(2, 20);
    ck_assert_int_eq(rec_for(quick)->kind, FP_OK);
    ck_assert_int_eq(rec_for(hang)->kind, FP_TIMEOUT);
    ck_assert_uint_eq(stats().timed_out, 1);
}
END_TEST

/* A job that completed keeps its ok outcome when the job after it in the
 * same window crashes the worker. */
START_TEST(job_before_crash_keeps_its_ok_result)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t quick = submit_int(1);
    uint64_t crash = submit_op("crash", NULL);
    wait_outcomes(2, 20);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 2);
    ck_assert_int_eq(rec_for(quick)->kind, FP_OK);
    ck_assert_int_eq(rec_for(crash)->kind, FP_CRASHED);
    ck_assert_str_eq(detail(rec_for(crash)), "killed by SIGSEGV");
    ck_assert_uint_eq(rec_for(crash)->attempts, 1);
    ck_assert_uint_eq(stats().crashed, 1);
}
END_TEST

/* The timeout of a job that was prefetched behind a quick one still fires. */
START_TEST(timeout_of_prefetched_job_still_fires)
{
    fp_config cfg;
    fp_job_opts opts = { .timeout = 0.3, .retries = 0 };

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t quick = submit_int(1);
    uint64_t hang = submit_op("hang", &opts);
    wait_outcomes(2, 5);
    ck_assert_int_eq(rec_for(quick)->kind, FP_OK);
    ck_assert_int_eq(rec_for(hang)->kind, FP_TIMEOUT);
}
END_TEST

/* ------------------------------------------------------------------------
 * Drain
 * ------------------------------------------------------------------------ */

START_TEST(drain_finishes_everything)
{
    enum { N = 200 };
    fp_config cfg;
    pid_t pids[4];
    const char *why = NULL;

    base_config(&cfg, 2);
    start_pool(&cfg);
    for (int i = 0; i < N; i++) {
        if (i % 10 == 0)
            submit_op_num("sleep", 0.01, NULL);
        else
            submit_int(i);
    }
    fp_pool_drain(H.pool, 10, drained_cb, &H);
    ck_assert_int_eq(fp_pool_submit(H.pool, "\x01", 1, NULL, never_cb, NULL,
                                    NULL, &why), -1);
    ck_assert_str_eq(why, "draining");
    ck_assert_int_eq(stats().draining, 1);

    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_calls, 1);
    ck_assert_int_eq(H.drained_cut_off, 0);
    ck_assert_uint_eq(H.recs_at_drained, N);    /* every outcome came first */
    for (uint64_t id = 1; id <= N; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 0);
    ck_assert_uint_eq(stats().live, 0);
    ck_assert_uint_eq(stats().completed, N);
}
END_TEST

/* Draining a pool whose workers have not said "ready" yet stops them
 * cleanly: no restart, no error logged.  To make the order of events
 * deterministic the loop is kept still until both workers have exited
 * (waitid WNOWAIT leaves them for libev to reap), so the master sees each
 * exit together with the "ready" still unread in its socket. */
START_TEST(drain_of_just_started_pool_is_clean)
{
    fp_config cfg;
    pid_t pids[4];
    siginfo_t si;

    base_config(&cfg, 2);
    start_pool(&cfg);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 2);
    fp_pool_drain(H.pool, 10, drained_cb, &H);
    for (int i = 0; i < 2; i++) {
        int rc;
        while ((rc = waitid(P_PID, (id_t)pids[i], &si, WEXITED | WNOWAIT)) < 0
               && errno == EINTR)
            ;
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(si.si_code, CLD_EXITED);
        ck_assert_int_eq(si.si_status, 0);
    }
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_cut_off, 0);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 0);
    ck_assert_uint_eq(stats().restarts, 0);
    ck_assert_msg(log_count("WARN:") == 0 && log_count("ERR:") == 0,
                  "a clean drain logged trouble:\n%s", H.log);
}
END_TEST

START_TEST(drain_timeout_cancels_the_rest)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch = 2;           /* one job prefetched, the rest queued */
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    for (int i = 1; i <= 3; i++)
        submit_int(i);
    run_until(one_busy, 20, "hang job running");
    ck_assert_uint_eq(stats().queued, 2);

    ev_now_update(H.loop);
    ev_tstamp t0 = ev_now(H.loop);
    fp_pool_drain(H.pool, 0.3, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_calls, 1);
    ck_assert_int_eq(H.drained_cut_off, 1);
    ck_assert_msg(H.drained_at - t0 >= 0.29, "cut off after %.3fs",
                  H.drained_at - t0);
    ck_assert_uint_eq(H.nrecs, 4);
    for (uint64_t id = hang; id <= hang + 3; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
        ck_assert_str_eq(detail(rec_for(id)), "drain timeout");
        ck_assert_uint_eq(rec_for(id)->attempts, id == hang ? 1 : 0);
    }
    pid_t pids[2];
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 2), 0);
    ck_assert_uint_eq(stats().cancelled, 4);
}
END_TEST

START_TEST(second_drain_cuts_off_at_once)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    run_until(one_busy, 20, "hang job running");

    ev_now_update(H.loop);
    ev_tstamp t0 = ev_now(H.loop);
    fp_pool_drain(H.pool, 60, drained_cb, &H);
    fp_pool_drain(H.pool, 60, drained_cb, &H);
    run_until(drained, 5, "drained");
    ck_assert_int_eq(H.drained_calls, 1);
    ck_assert_int_eq(H.drained_cut_off, 1);
    ck_assert_msg(H.drained_at - t0 < 2, "took %.3fs", H.drained_at - t0);
    ck_assert_int_eq(rec_for(hang)->kind, FP_CANCELLED);
    ck_assert_uint_eq(count_for(hang), 1);
}
END_TEST

START_TEST(crash_during_drain_still_finishes_the_queue)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t crash = submit_op("crash", NULL);
    for (int i = 1; i <= 10; i++)
        submit_int(i);
    fp_pool_drain(H.pool, 10, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_cut_off, 0);
    ck_assert_int_eq(rec_for(crash)->kind, FP_CRASHED);
    for (uint64_t id = crash + 1; id <= crash + 10; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
}
END_TEST

/* Workers that cannot start hold no drain hostage past its timeout: the
 * queued job is cancelled and the drain reports the cut-off. */
START_TEST(drain_with_failing_workers_cuts_off_at_timeout)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("fail_init", NULL, &len);
    pid_t pids[2];

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    free(conf);
    uint64_t id = submit_int(1);
    fp_pool_drain(H.pool, 0.3, drained_cb, &H);
    run_until(drained, 20, "drained");
    ck_assert_int_eq(H.drained_cut_off, 1);
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 2), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Cancel
 * ------------------------------------------------------------------------ */

START_TEST(cancel_queued_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.prefetch = 1;           /* nothing prefetched: the others queue */
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", 0.3, NULL);
    uint64_t a = submit_int(1), b = submit_int(2);
    run_until(one_busy, 20, "slow job running");
    ck_assert_uint_eq(stats().queued, 2);

    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 1);
    ck_assert_ptr_null(rec_for(a));     /* never from inside the call */
    const struct rec *r = wait_job(a, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "cancelled");
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 0);     /* gone now */

    wait_outcomes(3, 20);
    ck_assert_int_eq(rec_for(slow)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_OK);
    ck_assert_uint_eq(count_for(a), 1);
    ck_assert_uint_eq(stats().cancelled, 1);
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

START_TEST(cancel_unknown_id_returns_zero)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_int_eq(fp_pool_cancel(H.pool, 0), 0);
    ck_assert_int_eq(fp_pool_cancel(H.pool, 12345), 0);
    uint64_t id = submit_int(1);
    wait_job(id, 20);
    ck_assert_int_eq(fp_pool_cancel(H.pool, id), 0);    /* already done */
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_uint_eq(stats().cancelled, 0);
}
END_TEST

START_TEST(cancel_running_job_replaces_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    pid_t before = worker_pid_by_job();
    uint64_t hang = submit_op("hang", NULL);
    run_until(one_busy, 20, "hang job running");

    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    const struct rec *r = wait_job(hang, 20);
    ck_assert_int_eq(r->kind, FP_CANCELLED);
    ck_assert_str_eq(detail(r), "cancelled");
    ck_assert_uint_eq(r->attempts, 1);

    pid_t after = worker_pid_by_job();
    ck_assert_int_ne(after, before);
    ck_assert_uint_eq(count_for(hang), 1);
    ck_assert_uint_eq(stats().restarts, 1);
    ck_assert_uint_eq(stats().cancelled, 1);
}
END_TEST

START_TEST(cancel_prefetched_job_gets_one_outcome)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", 0.2, NULL);
    uint64_t a = submit_int(1), b = submit_int(2);
    run_until(one_busy_nothing_queued, 20, "jobs in the worker's window");

    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 1);
    ck_assert_int_eq(wait_job(a, 20)->kind, FP_CANCELLED);
    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 0);
    wait_outcomes(3, 20);
    wait_job(submit_int(3), 20);        /* anything of a's would be in by now */
    ck_assert_uint_eq(count_for(a), 1);
    ck_assert_int_eq(rec_for(slow)->kind, FP_OK);
    ck_assert_int_eq(rec_for(b)->kind, FP_OK);
    ck_assert_uint_eq(stats().cancelled, 1);
}
END_TEST

/* A cancelled job that was already sent to a worker must not run forever
 * in its place: the jobs behind it still complete. */
START_TEST(cancel_prefetched_hang_does_not_stall_the_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    uint64_t slow = submit_op_num("sleep", 0.1, NULL);
    uint64_t hang = submit_op("hang", NULL);
    uint64_t after = submit_int(7);
    run_until(one_busy_nothing_queued, 20, "jobs in the worker's window");

    ck_assert_int_eq(fp_pool_cancel(H.pool, hang), 1);
    ck_assert_int_eq(wait_job(hang, 20)->kind, FP_CANCELLED);
    ck_assert_int_eq(wait_job(slow, 5)->kind, FP_OK);
    const struct rec *r = wait_job(after, 5);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(count_for(hang), 1);
}
END_TEST

/* ------------------------------------------------------------------------
 * Rejections
 * ------------------------------------------------------------------------ */

START_TEST(submit_rejects_when_queue_full)
{
    fp_config cfg;
    const char *why = NULL;
    uint64_t id = 999;

    base_config(&cfg, 1);
    cfg.prefetch = 1;
    cfg.queue_max = 2;
    start_pool(&cfg);
    submit_op("hang", NULL);
    run_until(one_busy_nothing_queued, 20, "hang job running");
    uint64_t a = submit_int(1);
    submit_int(2);
    ck_assert_int_eq(fp_pool_submit(H.pool, "\x03", 1, NULL, never_cb, NULL,
                                    &id, &why), -1);
    ck_assert_str_eq(why, "queue full");
    ck_assert_uint_eq(id, 999);                 /* untouched */
    ck_assert_uint_eq(stats().queued, 2);

    /* Room again once one leaves the queue. */
    ck_assert_int_eq(fp_pool_cancel(H.pool, a), 1);
    submit_int(4);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 1);              /* only a's cancellation */
}
END_TEST

/* A batch: consecutive ids in order, and each job its own outcome — a
 * crash in the middle costs that job only. */
START_TEST(submit_batch_gives_each_job_its_own_outcome)
{
    fp_config cfg;
    fp_job_buf jobs[40];
    char ints[40][2];
    uint64_t first = 0;
    const char *why = NULL;

    base_config(&cfg, 2);
    start_pool(&cfg);
    for (int i = 0; i < 40; i++) {
        ints[i][0] = (char)i;               /* positive fixint i */
        jobs[i] = (fp_job_buf){ ints[i], 1 };
    }
    jobs[17] = (fp_job_buf){ "\x81\xa2op\xa5" "crash", 10 };
    jobs[30] = (fp_job_buf){ "\x82\xa2op\xa4" "fail\xa3" "arg\xa2no", 16 };
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 40, NULL, record_cb, &H,
                                          &first, &why), 0);
    ck_assert_uint_eq(first, 1);
    wait_outcomes(40, 20);
    for (int i = 0; i < 40; i++) {
        const struct rec *r = rec_for(first + (uint64_t)i);
        ck_assert_msg(r != NULL, "job %d has no outcome", i);
        ck_assert_uint_eq(count_for(first + (uint64_t)i), 1);
        if (i == 17) {
            ck_assert_int_eq(r->kind, FP_CRASHED);
            ck_assert_str_eq(detail(r), "killed by SIGSEGV");
        } else if (i == 30) {
            ck_assert_int_eq(r->kind, FP_ERROR);
            ck_assert_str_eq(detail(r), "no");
        } else {
            ck_assert_int_eq(r->kind, FP_OK);
            ck_assert(r->is_int);
            ck_assert_int_eq(r->ival, i);
        }
    }
    ck_assert_uint_eq(submit_int(99), 41);      /* ids go on after it */
}
END_TEST

/* A batch is accepted whole or not at all. */
START_TEST(submit_batch_is_all_or_none)
{
    fp_config cfg;
    fp_job_buf jobs[3] = { { "\x01", 1 }, { "\xc1", 1 }, { "\x03", 1 } };
    const char *why = NULL;
    uint64_t first = 999;

    base_config(&cfg, 1);
    cfg.queue_max = 4;
    cfg.prefetch = 1;
    start_pool(&cfg);
    submit_op("hang", NULL);
    run_until(one_busy_nothing_queued, 20, "hang job running");
    /* One malformed job refuses the batch. */
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 3, NULL, never_cb, NULL,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "malformed");
    ck_assert_uint_eq(first, 999);
    /* More than the queue has room for. */
    jobs[1].data = "\x02";
    submit_int(7);
    submit_int(8);
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 3, NULL, never_cb, NULL,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "queue full");
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 0, NULL, never_cb, NULL,
                                          &first, &why), -1);
    ck_assert_str_eq(why, "empty batch");
    ck_assert_uint_eq(stats().queued, 2);
    ck_assert_uint_eq(stats().submitted, 3);
    /* Two fit. */
    ck_assert_int_eq(fp_pool_submit_batch(H.pool, jobs, 2, NULL, record_cb, &H,
                                          &first, &why), 0);
    ck_assert_uint_eq(first, 4);
    ck_assert_uint_eq(stats().queued, 4);
}
END_TEST

START_TEST(submit_rejects_job_too_large)
{
    fp_config cfg;
    char job[200];
    const char *why = NULL;

    base_config(&cfg, 1);
    cfg.max_job_bytes = 100;
    cfg.max_job_objects = 10;
    start_pool(&cfg);

    /* bin 8: 2 header bytes + payload */
    memset(job, 'x', sizeof(job));
    job[0] = (char)0xc4;
    job[1] = 98;
    uint64_t ok = submit_bytes(job, 100, NULL);         /* exactly the limit */
    job[1] = 99;
    ck_assert_int_eq(fp_pool_submit(H.pool, job, 101, NULL, never_cb, NULL,
                                    NULL, &why), -1);
    ck_assert_str_eq(why, "job too large");

    /* An array of 50 small ints: few bytes, too many objects. */
    char many[53];
    many[0] = (char)0xdc;       /* array 16 */
    many[1] = 0;
    many[2] = 50;
    memset(many + 3, 1, 50);
    ck_assert_int_eq(fp_pool_submit(H.pool, many, sizeof(many), NULL, never_cb,
                                    NULL, NULL, &why), -1);
    ck_assert_str_eq(why, "job too large");

    /* The one at the limit went through whole. */
    const struct rec *r = wait_job(ok, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(r->len, 100);
    job[1] = 98;
    ck_assert(memcmp(r->data, job, 100) == 0);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 1);
}
END_TEST

START_TEST(submit_rejects_malformed_bytes)
{
    fp_config cfg;
    static const struct { const char *bytes; size_t len; } bad[] = {
        { "\xc1", 1 },              /* never-used byte */
        { "\x01\x02", 2 },          /* two values */
        { "\x92\x01", 2 },          /* truncated array */
        { "\xa5" "abc", 4 },        /* truncated str */
        { "", 0 },                  /* nothing */
    };

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_uint_eq(submit_int(1), 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        ck_assert_int_eq(fp_pool_submit(H.pool, bad[i].bytes, bad[i].len, NULL,
                                        never_cb, NULL, NULL, &why), -1);
        ck_assert_str_eq(why, "malformed");
    }
    ck_assert_uint_eq(submit_int(2), 2);        /* rejections use no id */
    wait_outcomes(2, 20);
    run_for(0.05);
    ck_assert_uint_eq(H.nrecs, 2);
    ck_assert_uint_eq(stats().submitted, 2);
}
END_TEST

/* Nesting: as deep as the library's limit goes through and comes back
 * intact; one level deeper is refused before it is queued. */
START_TEST(submit_rejects_nesting_past_the_limit)
{
    enum { LIMIT = 32 };        /* FP_MAX_DEPTH, msgpack-c's own bound */
    fp_config cfg;
    char job[LIMIT + 2];
    const char *why = NULL;

    base_config(&cfg, 1);
    start_pool(&cfg);
    memset(job, (char)0x91, sizeof(job));      /* [[[...]]] */
    job[LIMIT] = 0x07;
    uint64_t ok = submit_bytes(job, LIMIT + 1, NULL);
    job[LIMIT + 1] = 0x07;
    ck_assert_int_eq(fp_pool_submit(H.pool, job, LIMIT + 2, NULL, never_cb,
                                    NULL, NULL, &why), -1);
    ck_assert_str_eq(why, "malformed");

    const struct rec *r = wait_job(ok, 20);
    ck_assert_int_eq(r->kind, FP_OK);
    job[LIMIT] = 0x07;
    ck_assert_uint_eq(r->len, LIMIT + 1);
    ck_assert(memcmp(r->data, job, LIMIT + 1) == 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Worker starts
 * ------------------------------------------------------------------------ */

START_TEST(init_receives_module_config)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("greeting", "hello from config", &len);

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    free(conf);                 /* the pool keeps its own copy */
    const struct rec *r = wait_job(submit_op("greet", NULL), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_str_eq(detail(r), "hello from config");
}
END_TEST

START_TEST(init_failure_backs_off)
{
    fp_config cfg;
    size_t len;
    char *conf = config_map("fail_init", NULL, &len);
    pid_t pids[4];

    base_config(&cfg, 1);
    cfg.module_config = conf;
    cfg.module_config_len = len;
    start_pool(&cfg);
    uint64_t id = submit_int(1);
    /* Measuring the backoff itself: one second of loop time. */
    run_for(1.0);
    fp_stats st = stats();
    ck_assert_msg(st.restarts >= 2 && st.restarts < 12,
                  "%llu restarts in 1s (want exponential backoff from 10ms)",
                  (unsigned long long)st.restarts);
    ck_assert_uint_ge(st.start_failures, 1);
    ck_assert_uint_eq(st.start_failures, st.restarts);
    ck_assert_uint_le(fp_pool_pids(H.pool, pids, 4), 1);
    ck_assert_uint_le(st.live, 1);
    ck_assert_int_eq(log_count("before it was ready"), 1);   /* once per streak */
    /* The job waits; it is not lost. */
    ck_assert_uint_eq(st.queued, 1);
    ck_assert_uint_eq(H.nrecs, 0);
    fp_pool_free(H.pool);
    H.pool = NULL;
    ck_assert_uint_eq(count_for(id), 1);
    ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
    free(conf);
}
END_TEST

START_TEST(max_jobs_recycles_worker)
{
    fp_config cfg;

    base_config(&cfg, 1);
    cfg.max_jobs = 3;
    start_pool(&cfg);
    for (int i = 0; i < 6; i++)
        submit_op("pid", NULL);
    wait_outcomes(6, 20);
    for (uint64_t id = 1; id <= 6; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    ck_assert_int_eq(rec_for(1)->ival, rec_for(3)->ival);
    ck_assert_int_eq(rec_for(4)->ival, rec_for(6)->ival);
    ck_assert_int_ne(rec_for(3)->ival, rec_for(4)->ival);
    ck_assert_uint_eq(stats().crashed, 0);
}
END_TEST

static unsigned want_live;

static int
live_and_idle_as_wanted(void)
{
    fp_stats st = stats();
    return st.live == want_live && st.idle == want_live && st.starting == 0;
}

START_TEST(scale_up_and_down_keeps_every_job)
{
    fp_config cfg;

    base_config(&cfg, 1);
    start_pool(&cfg);
    ck_assert_int_eq(fp_pool_scale(H.pool, 3), 0);
    ck_assert_uint_eq(stats().workers, 3);
    want_live = 3;
    run_until(live_and_idle_as_wanted, 20, "three idle workers");

    /* Scale down while all three are busy: no running job is killed. */
    uint64_t first = submit_op_num("sleep", 0.2, NULL);
    submit_op_num("sleep", 0.2, NULL);
    submit_op_num("sleep", 0.2, NULL);
    for (int i = 0; i < 20; i++)
        submit_int(i);
    ck_assert_uint_eq(stats().busy, 3);
    ck_assert_int_eq(fp_pool_scale(H.pool, 1), 0);
    ck_assert_uint_eq(stats().workers, 1);
    wait_outcomes(23, 20);
    for (uint64_t id = first; id < first + 23; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
    want_live = 1;
    run_until(live_and_idle_as_wanted, 20, "one idle worker");
    ck_assert_uint_eq(stats().restarts, 0);
    ck_assert_uint_eq(stats().crashed, 0);

    errno = 0;
    ck_assert_int_eq(fp_pool_scale(H.pool, 0), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static pid_t reload_before[2];

static int
all_workers_replaced(void)
{
    pid_t now[4];
    size_t n = fp_pool_pids(H.pool, now, 4);
    fp_stats st = stats();

    if (n != 2 || st.idle != 2)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (now[i] == reload_before[0] || now[i] == reload_before[1])
            return 0;
    return 1;
}

START_TEST(reload_replaces_every_worker_without_losing_jobs)
{
    fp_config cfg;

    base_config(&cfg, 2);
    start_pool(&cfg);
    run_until(two_idle, 20, "two idle workers");
    ck_assert_uint_eq(fp_pool_pids(H.pool, reload_before, 2), 2);

    for (int i = 0; i < 50; i++)
        submit_op_num("sleep", 0.002, NULL);
    fp_pool_reload(H.pool);
    for (int i = 0; i < 50; i++)
        submit_int(i);
    wait_outcomes(100, 20);
    run_until(all_workers_replaced, 20, "every worker replaced");
    for (uint64_t id = 1; id <= 100; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_OK);
    }
    ck_assert_uint_eq(stats().workers, 2);
    ck_assert_uint_eq(stats().crashed, 0);
    ck_assert_uint_eq(stats().cancelled, 0);
}
END_TEST

static char exec_self[PATH_MAX];
static char exec_flag[] = "--exec-worker";
static char *exec_argv[] = { exec_self, exec_flag, NULL };

START_TEST(exec_worker_speaks_protocol)
{
    fp_config cfg;
    ssize_t n = readlink("/proc/self/exe", exec_self, sizeof(exec_self) - 1);

    ck_assert_int_gt(n, 0);
    exec_self[n] = '\0';
    base_config(&cfg, 2);
    cfg.module = NULL;
    cfg.exec_argv = exec_argv;
    start_pool(&cfg);

    uint64_t first = submit_int(0);
    for (int i = 1; i < 50; i++)
        submit_int(i);
    uint64_t fail = submit_bytes("\xa4" "fail", 5, NULL);
    wait_outcomes(51, 20);
    for (uint64_t id = first; id < first + 50; id++) {
        const struct rec *r = rec_for(id);
        msgpack_unpacked u;
        size_t off = 0;
        ck_assert_int_eq(r->kind, FP_OK);
        msgpack_unpacked_init(&u);
        ck_assert_int_eq(msgpack_unpack_next(&u, r->data, r->len, &off),
                         MSGPACK_UNPACK_SUCCESS);
        ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
        ck_assert_uint_eq(u.data.via.array.size, 2);
        ck_assert(obj_str_is(&u.data.via.array.ptr[0], "exec"));
        ck_assert_uint_eq(u.data.via.array.ptr[1].via.u64, id - first);
        msgpack_unpacked_destroy(&u);
    }
    ck_assert_int_eq(rec_for(fail)->kind, FP_ERROR);
    ck_assert_str_eq(detail(rec_for(fail)), "exec says no");
    ck_assert_uint_eq(stats().restarts, 0);
}
END_TEST

/* A worker that breaks the protocol is killed; its job ends crashed with
 * detail "protocol error", and the pool carries on. */
START_TEST(exec_worker_protocol_error_crashes_the_job)
{
    fp_config cfg;
    ssize_t n = readlink("/proc/self/exe", exec_self, sizeof(exec_self) - 1);

    ck_assert_int_gt(n, 0);
    exec_self[n] = '\0';
    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = exec_argv;
    start_pool(&cfg);

    const struct rec *r = wait_job(submit_bytes("\xa8" "wrong id", 9, NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "protocol error");
    r = wait_job(submit_bytes("\xa4" "huge", 5, NULL), 20);
    ck_assert_int_eq(r->kind, FP_CRASHED);
    ck_assert_str_eq(detail(r), "protocol error");
    r = wait_job(submit_int(9), 20);
    ck_assert_int_eq(r->kind, FP_OK);
    ck_assert_uint_eq(stats().crashed, 2);
    ck_assert_uint_eq(stats().restarts, 2);
}
END_TEST

static char exit_flag[] = "--exec-ready-then-exit";
static char *exit_argv[] = { exec_self, exit_flag, NULL };

/* A worker that says "ready" and dies at once, with no job, is a failed
 * start too: it is restarted with backoff, not in a tight loop. */
START_TEST(worker_dying_right_after_ready_backs_off)
{
    fp_config cfg;
    ssize_t n = readlink("/proc/self/exe", exec_self, sizeof(exec_self) - 1);

    ck_assert_int_gt(n, 0);
    exec_self[n] = '\0';
    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = exit_argv;
    start_pool(&cfg);
    run_for(1.0);
    int spawns = log_count("worker slot 0: started pid");
    fp_stats st = stats();
    ck_assert_msg(spawns >= 2 && spawns < 12,
                  "%d worker starts in 1s (want exponential backoff)", spawns);
    ck_assert_msg(st.restarts >= 1, "%llu restarts counted for %d starts",
                  (unsigned long long)st.restarts, spawns);
    ck_assert_uint_ge(st.start_failures, 1);
}
END_TEST

/* ------------------------------------------------------------------------
 * Teardown and configuration
 * ------------------------------------------------------------------------ */

START_TEST(submit_before_start_runs_after_start)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    H.pool = fp_pool_new(H.loop, &cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(H.pool);
    ck_assert_uint_eq(submit_int(10), 1);
    ck_assert_uint_eq(submit_int(11), 2);
    ck_assert_uint_eq(stats().queued, 2);
    ck_assert_int_eq(fp_pool_start(H.pool), 0);
    errno = 0;
    ck_assert_int_eq(fp_pool_start(H.pool), -1);        /* only once */
    ck_assert_int_ne(errno, 0);
    wait_outcomes(2, 20);
    ck_assert_int_eq(rec_for(1)->ival, 10);
    ck_assert_int_eq(rec_for(2)->ival, 11);
}
END_TEST

START_TEST(free_with_pending_jobs_cancels_them)
{
    fp_config cfg;
    pid_t pids[4];

    base_config(&cfg, 1);
    cfg.prefetch = 2;           /* one running, one prefetched, rest queued */
    start_pool(&cfg);
    uint64_t hang = submit_op("hang", NULL);
    for (int i = 1; i <= 5; i++)
        submit_int(i);
    run_until(one_busy, 20, "hang job running");
    ck_assert_uint_eq(fp_pool_pids(H.pool, pids, 4), 1);

    fp_pool_free(H.pool);
    H.pool = NULL;
    ck_assert_uint_eq(H.nrecs, 6);
    for (uint64_t id = hang; id <= hang + 5; id++) {
        ck_assert_uint_eq(count_for(id), 1);
        ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
    }
    /* The worker is gone, and reaped. */
    ck_assert_int_eq(kill(pids[0], 0), -1);
    ck_assert_int_eq(errno, ESRCH);
}
END_TEST

START_TEST(free_before_start_cancels_queued_jobs)
{
    fp_config cfg;
    char err[256] = "";

    base_config(&cfg, 1);
    H.pool = fp_pool_new(H.loop, &cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(H.pool);
    for (int i = 0; i < 3; i++)
        submit_int(i);
    fp_pool_free(H.pool);
    H.pool = NULL;
    ck_assert_uint_eq(H.nrecs, 3);
    for (uint64_t id = 1; id <= 3; id++)
        ck_assert_int_eq(rec_for(id)->kind, FP_CANCELLED);
}
END_TEST

static const fp_module no_handle_module = {
    .abi = FP_MODULE_ABI, .name = "nohandle",
};
static const fp_module wrong_abi_module = {
    .abi = FP_MODULE_ABI + 41, .name = "wrongabi", .handle = test_handle,
};

/* fp_pool_new must fail with a message and leave nothing behind. */
static void
assert_pool_new_fails(struct ev_loop *loop, const fp_config *cfg)
{
    char err[256] = "";
    fp_pool *p = fp_pool_new(loop, cfg, err, sizeof(err));
    ck_assert_ptr_null(p);
    ck_assert_msg(err[0] != '\0', "no error message");
}

START_TEST(pool_new_rejects_bad_config)
{
    fp_config cfg;
    static char prog[] = "/bin/true";
    static char *argv_ok[] = { prog, NULL };
    static char *argv_empty[] = { NULL };

    base_config(&cfg, 1);
    cfg.module = NULL;
    assert_pool_new_fails(H.loop, &cfg);                /* no handler */

    base_config(&cfg, 1);
    cfg.exec_argv = argv_ok;
    assert_pool_new_fails(H.loop, &cfg);                /* both handlers */

    base_config(&cfg, 1);
    cfg.module = &wrong_abi_module;
    assert_pool_new_fails(H.loop, &cfg);

    base_config(&cfg, 1);
    cfg.module = &no_handle_module;
    assert_pool_new_fails(H.loop, &cfg);

    base_config(&cfg, 1);
    cfg.module = NULL;
    cfg.exec_argv = argv_empty;
    assert_pool_new_fails(H.loop, &cfg);

    base_config(&cfg, 5);
    cfg.max_workers = 4;
    assert_pool_new_fails(H.loop, &cfg);

    struct ev_loop *other = ev_loop_new(0);
    base_config(&cfg, 1);
    assert_pool_new_fails(other, &cfg);                 /* not the default */
    ev_loop_destroy(other);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc;

    tc = tcase_create("outcomes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, echo_jobs_all_complete_ok);
    tcase_add_test(tc, crash_mid_job_reports_crashed_and_respawns);
    tcase_add_test(tc, error_outcome_keeps_worker);
    tcase_add_test(tc, exit_mid_job_names_status);
    tcase_add_test(tc, retries_rerun_on_fresh_worker);
    tcase_add_test(tc, retried_job_can_succeed_on_second_attempt);
    tcase_add_test(tc, timeout_kills_and_replaces);
    tcase_add_test(tc, pool_default_timeout_applies_without_opts);
    tcase_add_test(tc, timeout_does_not_apply_to_quick_jobs);
    tcase_add_test(tc, submit_from_callback_chains_jobs);
    tcase_add_test(tc, stats_count_idle_and_busy_workers);
    tcase_add_test(tc, large_jobs_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("prefetch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, prefetch_crash_requeues_unstarted_jobs);
    tcase_add_test(tc, timeout_with_prefetched_jobs_requeues_them);
    tcase_add_test(tc, quick_result_is_not_held_behind_slow_job);
    tcase_add_test(tc, job_before_crash_keeps_its_ok_result);
    tcase_add_test(tc, job_before_a_hang_keeps_its_ok_result);
    tcase_add_test(tc, crash_of_a_jobs_child_sends_no_results);
    tcase_add_loop_test(tc, held_results_survive_deaths_no_handler_sees, 0, 2);
    tcase_add_test(tc, module_signal_handlers_are_left_alone);
    tcase_add_test(tc, timeout_of_prefetched_job_still_fires);
    suite_add_tcase(s, tc);

    tc = tcase_create("drain");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, drain_finishes_everything);
    tcase_add_test(tc, drain_of_just_started_pool_is_clean);
    tcase_add_test(tc, drain_timeout_cancels_the_rest);
    tcase_add_test(tc, second_drain_cuts_off_at_once);
    tcase_add_test(tc, crash_during_drain_still_finishes_the_queue);
    tcase_add_test(tc, drain_with_failing_workers_cuts_off_at_timeout);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, cancel_queued_job);
    tcase_add_test(tc, cancel_unknown_id_returns_zero);
    tcase_add_test(tc, cancel_running_job_replaces_worker);
    tcase_add_test(tc, cancel_prefetched_job_gets_one_outcome);
    tcase_add_test(tc, cancel_prefetched_hang_does_not_stall_the_worker);
    suite_add_tcase(s, tc);

    tc = tcase_create("rejections");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, submit_rejects_when_queue_full);
    tcase_add_test(tc, submit_rejects_job_too_large);
    tcase_add_test(tc, submit_batch_gives_each_job_its_own_outcome);
    tcase_add_test(tc, submit_batch_is_all_or_none);
    tcase_add_test(tc, submit_rejects_malformed_bytes);
    tcase_add_test(tc, submit_rejects_nesting_past_the_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("workers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, init_receives_module_config);
    tcase_add_test(tc, init_failure_backs_off);
    tcase_add_test(tc, max_jobs_recycles_worker);
    tcase_add_test(tc, scale_up_and_down_keeps_every_job);
    tcase_add_test(tc, reload_replaces_every_worker_without_losing_jobs);
    tcase_add_test(tc, exec_worker_speaks_protocol);
    tcase_add_test(tc, exec_worker_protocol_error_crashes_the_job);
    tcase_add_test(tc, worker_dying_right_after_ready_backs_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, submit_before_start_runs_after_start);
    tcase_add_test(tc, free_with_pending_jobs_cancels_them);
    tcase_add_test(tc, free_before_start_cancels_queued_jobs);
    tcase_add_test(tc, pool_new_rejects_bad_config);
    suite_add_tcase(s, tc);
    return s;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--exec-worker") == 0)
        return exec_worker_main(0) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    if (argc == 2 && strcmp(argv[1], "--exec-ready-then-exit") == 0)
        return exec_worker_main(1) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
