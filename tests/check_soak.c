/*
 * check_soak.c — forkpoold under sustained, randomized load (SPEC §3, §5,
 * §7): every accepted job gets exactly one outcome of the right kind while
 * jobs crash, hang, fail and get cancelled and the pool is scaled and
 * reloaded underneath them — on a fixed pool, and on a dynamic one
 * (--autoscale) whose keyed jobs meet rate limits that change between
 * waves; slow or stalled clients do not hold up others;
 * a client that never reads cannot make the master's memory grow without
 * bound; the master stays flat (fds, RSS, worker count) over the run.
 *
 * The real daemon and the harness (harness.c) are used, as in
 * check_daemon.c.  The soak's randomness comes from one seed, printed at
 * the start; FP_SOAK_SEED=<n> replays a run.
 */
#include "config.h"
#include <check.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"


/* ASan keeps freed memory in quarantine (256 MiB by default) and maps
 * shadow memory: RSS bounds only mean something without it. */
#if defined(__SANITIZE_ADDRESS__)
# define RSS_SLACK_KIB (512 * 1024)
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define RSS_SLACK_KIB (512 * 1024)
# endif
#endif
#ifndef RSS_SLACK_KIB
# define RSS_SLACK_KIB 0
#endif

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */


/* Open fds of a process. */
static int
fd_count(pid_t pid)
{
    char path[64];
    DIR *dir;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    dir = opendir(path);
    ck_assert_msg(dir != NULL, "opendir %s: %s", path, strerror(errno));
    while ((de = readdir(dir)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* VmRSS of a process in KiB. */
static long
rss_kib(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    ck_assert_msg(kib > 0, "no VmRSS in %s", path);
    return kib;
}

/* splitmix64 */
static uint64_t rng_state;

static uint64_t
rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned
rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

struct settled {
    int workers, busy, queued, pids, children, fds;
};

/* Poll status roundtrips until the pool is idle with `want` workers, as
 * many live worker processes, and (if want_fds >= 0) that many open fds in
 * the master; at most timeout_ms.  Returns 1 if reached; *s holds the last
 * observation either way. */
static int
settle(struct h_daemon *d, struct h_rpc *ctl, int want, int want_fds,
       int timeout_ms, struct settled *s)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        struct h_resp *st = h_status(ctl);
        pid_t pids[64];
        s->workers = (int)h_get_int(st->result, "workers");
        s->busy = (int)h_get_int(st->result, "busy");
        s->queued = (int)h_get_int(st->result, "queued");
        s->pids = h_status_pids(st, pids, 64);
        h_resp_free(st);
        s->children = h_children_of(d->pid, NULL, 0);
        s->fds = fd_count(d->pid);
        if (s->workers == want && s->busy == 0 && s->queued == 0 && s->pids == want
            && s->children == want && (want_fds < 0 || s->fds == want_fds))
            return 1;
        if (h_now_ms() >= deadline)
            return 0;
        h_daemon_pump(d, 20);   /* between roundtrips: the daemon's log */
    }
}

/* ========================================================================
 * 1. Randomized soak
 * ======================================================================== */

enum kind { K_OK, K_ERROR, K_CRASHED, K_TIMEOUT, K_CANCELLED, K_OTHER, K_NONE };
static const char *const kind_names[] = {
    "ok", "error", "crashed", "timeout", "cancelled", "other", "none"
};

/* Plain jobs count each start in a file (testmod's "count" op), so the
 * soak can tell a job that started twice from one that started once. */
enum op { OP_PLAIN, OP_FAIL, OP_CRASH, OP_HANG, OP_SLEEP, OP_LONG };
static const enum kind natural[] = { K_OK, K_ERROR, K_CRASHED, K_TIMEOUT, K_OK, K_OK };
static const char *const op_names[] = { "plain", "fail", "crash", "hang", "sleep",
                                        "long" };
static char count_path[64];

#define NCONN     3
#define NWAVES    30
#define PER_WAVE  100
#define NJOBS     (NWAVES * PER_WAVE)
#define WARM_WAVES 2
#define MAX_HANGS_PER_WAVE 2
#define BURST_WAVE 15

/* What the soak varies besides the jobs: a fixed pool, or a dynamic one
 * whose jobs carry rate-limit keys whose buckets change between waves. */
struct soak_mode {
    const char *name;
    const char *args[8];    /* forkpoold arguments after the module */
    int  rest_workers;      /* pool size once idle (-w, or autoscale MIN) */
    int  scale_lo, scale_hi; /* range of random `scale` calls */
    int  keyed;             /* jobs get random keys; limits change */
};

static const struct soak_mode fixed_mode = {
    "fixed", { "-w", "3", NULL }, 3, 1, 4, 0
};
/* The idle timeout is short so that retiring happens many times in a run;
 * MIN 2 so the backlog of every wave makes it grow. */
static const struct soak_mode dynamic_mode = {
    "dynamic", { "--autoscale", "2-6", "--idle-timeout", "0.15", NULL }, 2, 2, 6, 1
};
static const struct soak_mode *mode;
static long max_waiting;    /* most jobs seen waiting for tokens at once */
static const char *const soak_keys[] = { NULL, "a", "b", "c" };

struct sjob {
    enum op    op;
    int        conn;
    uint32_t   msgid;
    char      *json;        /* the job; for plain jobs also its result */
    enum kind  got;         /* K_NONE until its response arrived */
    uint64_t   id;
};

static struct sjob jobs[NJOBS];
static int cancel_res[NJOBS + 1];   /* by id: 0 never, 1 true, 2 false */
static uint64_t seed;

static enum kind
kind_of(const char *s)
{
    for (int k = K_OK; k <= K_CANCELLED; k++)
        if (strcmp(s, kind_names[k]) == 0)
            return (enum kind)k;
    return K_OTHER;
}

/* Submit jobs [from, to) spread randomly over the connections, each
 * connection's share in one write. */
static void
submit_wave(struct h_rpc **conns, int from, int to, int warm)
{
    int hangs = 0;

    for (int i = 0; i < NCONN; i++)
        h_rpc_cork(conns[i]);
    for (int n = from; n < to; n++) {
        struct sjob *j = &jobs[n];
        unsigned r = rnd_below(1000);
        char buf[512];
        const char *opts = NULL;

        if (!warm && r < 10 && hangs < MAX_HANGS_PER_WAVE) {
            j->op = OP_HANG;
            hangs++;
        } else if (r < 60) {
            j->op = OP_CRASH;
        } else if (r < 140) {
            j->op = OP_FAIL;
        } else if (r < 190) {
            j->op = OP_SLEEP;
        } else if (r < 200) {
            j->op = OP_LONG;        /* mixed durations: 50-200 ms among ms */
        } else {
            j->op = OP_PLAIN;
        }
        switch (j->op) {
        case OP_PLAIN: {
            /* Canonical compact JSON, as h_json() prints the result. */
            char pad[201];
            unsigned len = rnd_below(200);
            for (unsigned k = 0; k < len; k++)
                pad[k] = (char)('a' + (n + k) % 26);
            pad[len] = '\0';
            snprintf(buf, sizeof(buf), "{\"n\":%d,\"op\":\"count\",\"pad\":\"%s\","
                     "\"path\":\"%s\"}", n, pad, count_path);
            break;
        }
        case OP_FAIL:
            snprintf(buf, sizeof(buf), "{\"detail\":%d,\"op\":\"fail\"}", n);
            break;
        case OP_CRASH:
            snprintf(buf, sizeof(buf), "{\"n\":%d,\"op\":\"crash\"}", n);
            break;
        case OP_HANG:
            snprintf(buf, sizeof(buf), "{\"n\":%d,\"op\":\"hang\"}", n);
            opts = "{\"timeout\": 0.2}";
            break;
        case OP_SLEEP:
            snprintf(buf, sizeof(buf), "{\"n\":%d,\"op\":\"sleep\",\"s\":0.00%u}", n,
                     1 + rnd_below(5));
            opts = "{\"timeout\": 10}";
            break;
        case OP_LONG:
            snprintf(buf, sizeof(buf), "{\"n\":%d,\"op\":\"sleep\",\"s\":0.%03u}", n,
                     50 + rnd_below(150));
            opts = "{\"timeout\": 10}";
            break;
        }
        j->json = strdup(buf);
        ck_assert_ptr_nonnull(j->json);
        j->conn = (int)rnd_below(NCONN);
        j->got = K_NONE;
        const char *key = mode->keyed ? soak_keys[rnd_below(4)] : NULL;
        char kopts[96];
        if (key != NULL) {
            const char *timeout = opts != NULL ? strstr(opts, "\"timeout\"") : NULL;
            snprintf(kopts, sizeof(kopts), "{\"key\": \"%s\"%s%.*s}", key,
                     timeout != NULL ? ", " : "",
                     timeout != NULL ? (int)(strlen(timeout) - 1) : 0,
                     timeout != NULL ? timeout : "");
            opts = kopts;
        }
        j->msgid = h_rpc_submit(conns[j->conn], j->json, opts);
    }
    for (int i = 0; i < NCONN; i++)
        h_rpc_uncork(conns[i]);
}

static struct h_daemon *soak_d;
static struct h_rpc *soak_ctl;

/* Before failing: the daemon's status and the end of its log. */
static void
dump_state(void)
{
    struct h_resp *st = h_rpc_call(soak_ctl, "status", "[]");
    size_t from = soak_d->loglen > 6000 ? soak_d->loglen - 6000 : 0;

    fprintf(stderr, "soak: status %s\nsoak: daemon log tail:\n%s\n",
            st != NULL ? h_json(st->result) : "(no answer)", soak_d->log + from);
}

/* Wait for the outcomes of jobs [from, to) and check each against its op
 * (the cancel check comes at the end, once ids are known). */
static void
collect_wave(struct h_rpc **conns, int from, int to)
{
    for (int n = from; n < to; n++) {
        struct sjob *j = &jobs[n];
        struct h_resp *r = h_rpc_wait(conns[j->conn], j->msgid, 30000);

        if (r == NULL)
            dump_state();

        ck_assert_msg(r != NULL, "seed %" PRIu64 ": no outcome for job %d %s "
                      "(conn %d, msgid %u)", seed, n, j->json, j->conn, j->msgid);
        if (r->error == NULL) {
            j->got = K_OK;
            j->id = (uint64_t)h_get_int(r->result, "id");
            const msgpack_object *res = h_get(r->result, "result");
            ck_assert_msg(res != NULL, "no result in %s", h_json(r->result));
            const char *want = j->op == OP_SLEEP || j->op == OP_LONG ? "\"slept\""
                                                                     : j->json;
            if (j->op == OP_PLAIN || j->op == OP_SLEEP || j->op == OP_LONG)
                ck_assert_msg(strcmp(h_json(res), want) == 0,
                              "seed %" PRIu64 ": job %d %s: result %s", seed, n,
                              j->json, h_json(res));
        } else {
            const msgpack_object *id = h_get(r->error, "id");
            j->got = kind_of(h_get_str(r->error, "kind"));
            ck_assert_msg(id != NULL && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
                          "seed %" PRIu64 ": job %d %s: error without an id: %s",
                          seed, n, j->json, h_json(r->error));
            j->id = id->via.u64;
            const char *detail = h_json(h_get(r->error, "detail"));
            char want[64] = "";
            switch (j->got) {
            case K_ERROR:
                snprintf(want, sizeof(want), "%d", n);
                break;
            case K_CRASHED:
                snprintf(want, sizeof(want), "\"killed by SIGSEGV\"");
                break;
            case K_TIMEOUT:
                snprintf(want, sizeof(want), "\"timed out after 0.2s\"");
                break;
            case K_CANCELLED:
                snprintf(want, sizeof(want), "\"cancelled\"");
                break;
            default:
                ck_abort_msg("seed %" PRIu64 ": job %d %s: unexpected outcome %s",
                             seed, n, j->json, h_json(r->error));
            }
            ck_assert_msg(strcmp(detail, want) == 0, "seed %" PRIu64 ": job %d %s: "
                          "outcome %s, detail should be %s", seed, n, j->json,
                          h_json(r->error), want);
        }
        h_resp_free(r);
    }
}

/* Set, change or remove a random key's bucket (the pool-wide one too).
 * Rates stay high enough that a wave still ends within its wait: the soak
 * is about jobs held in the master's queue and passed over, not about
 * waiting. */
static void
change_limits(struct h_rpc *ctl)
{
    int n = (int)rnd_below(3);

    for (int k = 0; k < n; k++) {
        const char *key = soak_keys[rnd_below(4)];
        char params[96];
        if (key == NULL)
            key = "";
        if (rnd_below(3) == 0)
            snprintf(params, sizeof(params), "[\"%s\", null]", key);
        else
            snprintf(params, sizeof(params), "[\"%s\", %u, %u]", key,
                     (*key == '\0' ? 1000 : 150) + rnd_below(3000), 1 + rnd_below(40));
        struct h_resp *r = h_rpc_call(ctl, "limit", params);
        ck_assert_msg(r != NULL && r->error == NULL, "limit %s failed", params);
        ck_assert_str_eq(h_json(r->result), "true");
        h_resp_free(r);
    }
    /* How many jobs the buckets hold back right now (summed over keys). */
    struct h_resp *st = h_status(ctl);
    const msgpack_object *limits = h_get(st->result, "limits");
    long waiting = 0;
    if (limits != NULL && limits->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < limits->via.map.size; i++)
            waiting += h_get_int(&limits->via.map.ptr[i].val, "waiting");
    if (waiting > max_waiting)
        max_waiting = waiting;
    h_resp_free(st);
}

/* Random control traffic between waves: cancels, scale, limits, SIGHUP,
 * reload. */
static void
chaos(struct h_daemon *d, struct h_rpc *ctl, int wave, int submitted)
{
    int ncancel = (int)rnd_below(5);

    for (int k = 0; k < ncancel; k++) {
        /* Mostly recent ids (likely still queued or running). */
        int lo = submitted > 2 * PER_WAVE ? submitted - 2 * PER_WAVE : 0;
        int id = rnd_below(4) == 0 ? 1 + (int)rnd_below((unsigned)submitted)
                                   : lo + 1 + (int)rnd_below((unsigned)(submitted - lo));
        char params[32];
        if (cancel_res[id] != 0)
            continue;
        snprintf(params, sizeof(params), "[%d]", id);
        struct h_resp *r = h_rpc_call(ctl, "cancel", params);
        ck_assert_msg(r != NULL && r->error == NULL, "cancel %d: no answer", id);
        ck_assert_msg(r->result->type == MSGPACK_OBJECT_BOOLEAN, "cancel %d: %s", id,
                      h_json(r->result));
        cancel_res[id] = r->result->via.boolean ? 1 : 2;
        h_resp_free(r);
    }
    if (rnd_below(4) == 0) {
        int n = mode->scale_lo + (int)rnd_below((unsigned)(mode->scale_hi - mode->scale_lo + 1));
        char params[16], want[32];
        snprintf(params, sizeof(params), "[%d]", n);
        snprintf(want, sizeof(want), "{\"workers\":%d}", n);
        struct h_resp *r = h_rpc_call(ctl, "scale", params);
        ck_assert_msg(r != NULL && r->error == NULL, "scale %d failed", n);
        ck_assert_str_eq(h_json(r->result), want);
        h_resp_free(r);
    }
    if (mode->keyed)
        change_limits(ctl);
    if (rnd_below(6) == 0)
        h_daemon_kill(d, SIGHUP);
    if (rnd_below(10) == 0) {
        struct h_resp *r = h_rpc_call(ctl, "reload", "[]");
        ck_assert_msg(r != NULL && r->error == NULL, "reload failed");
        h_resp_free(r);
    }
    if (wave == BURST_WAVE) {
        /* 50 SIGHUPs in a row (the kernel may merge some), then 50 reload
         * requests, which are never merged. */
        for (int k = 0; k < 50; k++)
            h_daemon_kill(d, SIGHUP);
        for (int k = 0; k < 50; k++) {
            struct h_resp *r = h_rpc_call(ctl, "reload", "[]");
            ck_assert_msg(r != NULL && r->error == NULL, "reload failed");
            h_resp_free(r);
        }
    }
}

static void
run_soak(const struct soak_mode *m)
{
    const char *env = getenv("FP_SOAK_SEED");
    int64_t t0 = h_now_ms();

    seed = env != NULL && *env != '\0' ? strtoull(env, NULL, 0)
                                       : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    rng_state = seed;
    mode = m;
    max_waiting = 0;
    fprintf(stderr, "soak (%s pool): seed %" PRIu64 " (replay with FP_SOAK_SEED=%" PRIu64
            ")\n", m->name, seed, seed);
    memset(jobs, 0, sizeof(jobs));
    memset(cancel_res, 0, sizeof(cancel_res));
    snprintf(count_path, sizeof(count_path), "/tmp/fp-soak-count-XXXXXX");
    int count_fd = mkstemp(count_path);
    ck_assert_int_ge(count_fd, 0);
    close(count_fd);

    struct h_daemon *d = h_started(h_daemon_start(H_MOD, m->args[0], m->args[1], m->args[2],
                                                  m->args[3], m->args[4], m->args[5],
                                                  m->args[6], NULL));
    struct h_rpc *conns[NCONN], *ctl;
    for (int i = 0; i < NCONN; i++)
        conns[i] = h_connected(d);
    ctl = h_connected(d);
    soak_d = d;
    soak_ctl = ctl;

    /* Warm-up: two pipelined waves, no chaos. */
    submit_wave(conns, 0, PER_WAVE, 1);
    submit_wave(conns, PER_WAVE, 2 * PER_WAVE, 1);
    collect_wave(conns, 0, 2 * PER_WAVE);

    struct settled s;
    ck_assert_msg(settle(d, ctl, m->rest_workers, -1, 10000, &s), "pool did not settle after warm-up: "
                  "workers %d busy %d queued %d pids %d children %d", s.workers, s.busy,
                  s.queued, s.pids, s.children);
    int fds0 = s.fds;
    long rss0 = rss_kib(d->pid);

    /* The run: wave w is submitted before wave w-1 is collected, so two
     * waves are always in flight while the control traffic happens. */
    for (int w = WARM_WAVES; w < NWAVES; w++) {
        submit_wave(conns, w * PER_WAVE, (w + 1) * PER_WAVE, 0);
        chaos(d, ctl, w, (w + 1) * PER_WAVE);
        if (w > WARM_WAVES)
            collect_wave(conns, (w - 1) * PER_WAVE, w * PER_WAVE);
    }
    collect_wave(conns, (NWAVES - 1) * PER_WAVE, NJOBS);

    /* Nothing twice: a duplicate response would have been left over; one
     * more roundtrip on each connection flushes anything sent earlier. */
    for (int i = 0; i < NCONN; i++) {
        h_resp_free(h_status(conns[i]));
        ck_assert_msg(conns[i]->nstash == 0, "seed %" PRIu64 ": conn %d: %zu responses "
                      "nobody asked for (a job reported twice?)", seed, i, conns[i]->nstash);
        ck_assert_uint_eq(conns[i]->got, conns[i]->next_msgid - 1);
    }

    /* Ids: exactly 1..NJOBS, each once. */
    static int by_id[NJOBS + 1];
    for (int i = 0; i <= NJOBS; i++)
        by_id[i] = -1;
    for (int n = 0; n < NJOBS; n++) {
        uint64_t id = jobs[n].id;
        ck_assert_msg(id >= 1 && id <= NJOBS, "seed %" PRIu64 ": job %d has id %" PRIu64,
                      seed, n, id);
        ck_assert_msg(by_id[id] < 0, "seed %" PRIu64 ": id %" PRIu64 " given to jobs %d "
                      "and %d", seed, id, by_id[id], n);
        by_id[id] = n;
    }

    /* Kinds: the op's, or cancelled exactly when a cancel found the job. */
    long count[K_NONE + 1] = { 0 };
    int ncancel_true = 0, ncancel_false = 0;
    for (int n = 0; n < NJOBS; n++) {
        struct sjob *j = &jobs[n];
        int c = cancel_res[j->id];
        enum kind want = c == 1 ? K_CANCELLED : natural[j->op];
        ck_assert_msg(j->got == want, "seed %" PRIu64 ": job %d %s (id %" PRIu64 ", "
                      "op %s, cancel %s) ended %s, expected %s", seed, n, j->json, j->id,
                      op_names[j->op], c == 1 ? "true" : c == 2 ? "false" : "not sent",
                      kind_names[j->got], kind_names[want]);
        count[j->got]++;
        ncancel_true += c == 1;
        ncancel_false += c == 2;
    }

    /* Started once: a plain job that ended ok ran its handler exactly once
     * (a job taken back from a window and run elsewhere too would show
     * twice); one that did not end ok (cancelled) at most once. */
    static unsigned char starts[NJOBS];
    FILE *cf = fopen(count_path, "r");
    unsigned long tag;
    long pid;
    ck_assert_ptr_nonnull(cf);
    memset(starts, 0, sizeof(starts));
    while (fscanf(cf, "%lu %ld", &tag, &pid) == 2) {
        ck_assert_msg(tag < NJOBS, "count file: tag %lu", tag);
        if (starts[tag] < 255)
            starts[tag]++;
    }
    fclose(cf);
    if (getenv("FP_SOAK_KEEP") == NULL)     /* kept: "tag pid" per start */
        unlink(count_path);
    for (int n = 0; n < NJOBS; n++) {
        if (jobs[n].op != OP_PLAIN)
            continue;
        if (!(jobs[n].got == K_OK ? starts[n] == 1 : starts[n] <= 1))
            dump_state();
        ck_assert_msg(jobs[n].got == K_OK ? starts[n] == 1 : starts[n] <= 1,
                      "seed %" PRIu64 ": job %d (id %" PRIu64 ", %s) started %u times",
                      seed, n, jobs[n].id, kind_names[jobs[n].got], starts[n]);
    }

    /* The daemon's counters agree. */
    struct h_resp *st = h_status(ctl);
    ck_assert_int_eq(h_get_int(st->result, "completed"), count[K_OK]);
    ck_assert_int_eq(h_get_int(st->result, "failed"), count[K_ERROR]);
    ck_assert_int_eq(h_get_int(st->result, "crashed"), count[K_CRASHED]);
    ck_assert_int_eq(h_get_int(st->result, "timed_out"), count[K_TIMEOUT]);
    ck_assert_int_eq(h_get_int(st->result, "cancelled"), count[K_CANCELLED]);
    h_resp_free(st);

    /* Flat master: back at its resting size, the same fds, RSS within
     * bounds, as many worker processes as the scale says.  A dynamic pool
     * gets there by itself once idle; its buckets are removed first. */
    if (m->keyed) {
        for (int k = 0; k < 4; k++) {
            char params[32];
            snprintf(params, sizeof(params), "[\"%s\", null]",
                     soak_keys[k] != NULL ? soak_keys[k] : "");
            struct h_resp *lr = h_rpc_call(ctl, "limit", params);
            ck_assert_msg(lr != NULL && lr->error == NULL, "limit %s failed", params);
            h_resp_free(lr);
        }
    } else {
        struct h_resp *r = h_rpc_call(ctl, "scale", "[3]");
        ck_assert_msg(r != NULL && r->error == NULL, "scale 3 failed");
        h_resp_free(r);
    }
    int ok = settle(d, ctl, m->rest_workers, fds0, 10000, &s);
    long rss1 = rss_kib(d->pid);
    fprintf(stderr, "soak (%s pool): %d jobs: ok %ld error %ld crashed %ld timeout %ld cancelled %ld "
            "(cancel true %d, false %d); fds %d -> %d; VmRSS %ld -> %ld KiB; %.1f s\n",
            m->name, NJOBS, count[K_OK], count[K_ERROR], count[K_CRASHED], count[K_TIMEOUT],
            count[K_CANCELLED], ncancel_true, ncancel_false, fds0, s.fds, rss0, rss1,
            (double)(h_now_ms() - t0) / 1000.0);
    ck_assert_msg(ok, "seed %" PRIu64 ": master not back to its warm-up state: workers %d "
                  "busy %d queued %d pids %d children %d fds %d (warm-up: %d)", seed,
                  s.workers, s.busy, s.queued, s.pids, s.children, s.fds, fds0);
    ck_assert_msg(rss1 <= rss0 + 8 * 1024 + RSS_SLACK_KIB, "master VmRSS grew from %ld to "
                  "%ld KiB", rss0, rss1);

    if (m->keyed) {
        /* The run really exercised the dynamic pool. */
        ck_assert_msg(h_log_count(d, "autoscale: adding") > 0, "the pool never grew");
        ck_assert_msg(h_log_count(d, "autoscale: retiring") > 0, "the pool never shrank");
        ck_assert_msg(max_waiting > 0, "no job ever waited for a token");
        fprintf(stderr, "soak (%s pool): up to %ld jobs waited for tokens at once\n",
                m->name, max_waiting);
    }

    h_daemon_kill(d, SIGTERM);
    int status = h_daemon_wait(d, 10000);
    ck_assert_msg(status != -1, "forkpoold did not exit after SIGTERM");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "forkpoold exit status 0x%x after SIGTERM", (unsigned)status);
    for (int n = 0; n < NJOBS; n++) {
        free(jobs[n].json);
        jobs[n].json = NULL;
    }
}

START_TEST(randomized_soak_every_job_gets_exactly_one_right_outcome)
{
    run_soak(&fixed_mode);
}
END_TEST

/* The same soak on a dynamic pool (grown by every wave's backlog, shrunk
 * between waves) whose jobs carry keys whose buckets change underneath
 * them: jobs held back for tokens, passed over, taken back from windows. */
START_TEST(randomized_soak_dynamic_pool_rate_limits)
{
    run_soak(&dynamic_mode);
}
END_TEST

/* The race the soak found, made deterministic: reload and scale down in
 * one read, so the scale-down comes while the reload's first replacement
 * is still starting.  The pool must keep one worker and run jobs. */
START_TEST(scale_down_during_reload_keeps_workers)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    struct settled s;

    ck_assert_msg(settle(d, c, 2, -1, 5000, &s), "pool did not start 2 workers");
    h_rpc_cork(c);
    uint32_t mr = h_rpc_send(c, "reload", "[]");
    uint32_t ms = h_rpc_send(c, "scale", "[1]");
    h_rpc_uncork(c);
    struct h_resp *r = h_rpc_wait(c, mr, H_REPLY_MS);
    ck_assert_msg(r != NULL && r->error == NULL, "reload failed");
    r = h_rpc_wait(c, ms, H_REPLY_MS);
    ck_assert_msg(r != NULL && r->error == NULL, "scale failed");
    ck_assert_str_eq(h_json(r->result), "{\"workers\":1}");

    uint32_t m = h_rpc_submit(c, "\"after\"", NULL);
    r = h_rpc_wait(c, m, H_REPLY_MS);
    if (r == NULL)
        fprintf(stderr, "scale during reload: status %s\n",
                h_json(h_status(c)->result));
    ck_assert_msg(r != NULL, "no worker runs jobs after a scale-down during a reload");
    ck_assert_str_eq(h_json(h_get(r->result, "result")), "\"after\"");
    ck_assert_msg(settle(d, c, 1, -1, 5000, &s), "after reload + scale 1: workers %d "
                  "pids %d children %d", s.workers, s.pids, s.children);
}
END_TEST

/* ========================================================================
 * 2. Stalled clients
 * ======================================================================== */

#define NSTALLED 200

START_TEST(stalled_clients_do_not_delay_others)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    int stalled[NSTALLED];
    struct settled s;

    ck_assert_msg(settle(d, c, 2, -1, 5000, &s), "pool did not start 2 workers");
    int fds0 = s.fds;

    for (int i = 0; i < NSTALLED; i++) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 5 };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->sock);
        ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
                      "stalled client %d: connect: %s", i, strerror(errno));
        /* The first byte of a request ([0, msgid, method, params]). */
        ck_assert_int_eq(send(fd, "\x94", 1, MSG_NOSIGNAL), 1);
        stalled[i] = fd;
    }
    /* The daemon holds them all (accepted, half a request read). */
    ck_assert_msg(settle(d, c, 2, fds0 + NSTALLED, 5000, &s), "daemon has %d fds, "
                  "expected %d with %d stalled clients", s.fds, fds0 + NSTALLED, NSTALLED);

    int64_t t0 = h_now_ms();
    uint32_t m[100];
    h_rpc_cork(c);
    for (int i = 0; i < 100; i++) {
        char job[32];
        snprintf(job, sizeof(job), "{\"k\":%d}", i);
        m[i] = h_rpc_submit(c, job, NULL);
    }
    h_rpc_uncork(c);
    for (int i = 0; i < 100; i++) {
        char want[64];
        struct h_resp *r = h_rpc_wait(c, m[i], H_REPLY_MS);
        ck_assert_msg(r != NULL, "job %d: no outcome with %d stalled clients", i, NSTALLED);
        ck_assert_msg(r->error == NULL, "job %d: %s", i, h_json(r->error));
        snprintf(want, sizeof(want), "{\"k\":%d}", i);
        ck_assert_str_eq(h_json(h_get(r->result, "result")), want);
        h_resp_free(r);
    }
    int64_t took = h_now_ms() - t0;
    ck_assert_msg(took < 5000, "100 jobs took %" PRId64 " ms next to stalled clients", took);

    for (int i = 0; i < NSTALLED; i++)
        close(stalled[i]);
    ck_assert_msg(settle(d, c, 2, fds0, 5000, &s), "daemon fds %d after the stalled "
                  "clients left, %d before they came", s.fds, fds0);
    ck_assert_uint_eq(c->nstash, 0);
}
END_TEST

/* ========================================================================
 * 3. A client that does not read its responses
 * ======================================================================== */

#define NBIG      20000
#define BIG_BYTES 4096

/* What the daemon may hold for a client that does not read, by its own
 * rules: the payloads of its jobs not yet answered (PENDING_HIGH, 16 MiB,
 * src/daemon/control_int.h) and its unread replies (the default
 * --reply-soft-limit, 8 MiB), each overshot by at most one turn of
 * requests; plus what glibc is told to keep of freed blocks rather than
 * give back (HEAP_KEEP, 32 MiB, src/daemon/forkpoold.c), which RSS counts
 * as used, and the holes between live blocks it cannot give back (24 MiB
 * of slack: a loaded run measured 70 MiB of growth, a quiet one 10-35).
 * Unbounded growth -- every unread reply kept -- is 20000 x 4 KiB twice
 * over, far past it. */
#define NONREADER_BOUND_KIB ((16 + 8 + 32 + 24) * 1024)

/* Pack submit [payload] for msgid into sb (appending). */
static void
pack_big_submit(msgpack_sbuffer *sb, uint32_t msgid)
{
    msgpack_packer pk;
    char payload[BIG_BYTES];

    memset(payload, 'a' + msgid % 26, sizeof(payload));
    snprintf(payload, 16, "%010u", msgid);
    payload[10] = ':';
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_str_with_body(&pk, "submit", 6);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, payload, sizeof(payload));
}

/* Check and drop every response a has received so far. */
static void
take_big_responses(struct h_rpc *a, uint32_t first, unsigned char *seen, int *nseen)
{
    for (size_t i = 0; i < a->nstash; i++) {
        struct h_resp *r = a->stash[i];
        uint32_t k = r->msgid - first;
        ck_assert_msg(r->msgid >= first && k < NBIG, "response to unknown msgid %u",
                      r->msgid);
        ck_assert_msg(!seen[k], "msgid %u answered twice", r->msgid);
        seen[k] = 1;
        (*nseen)++;
        ck_assert_msg(r->error == NULL, "msgid %u: %s", r->msgid, h_json(r->error));
        const msgpack_object *res = h_get(r->result, "result");
        ck_assert_msg(res != NULL && res->type == MSGPACK_OBJECT_STR
                      && res->via.str.size == BIG_BYTES, "msgid %u: bad result", r->msgid);
        char head[16];
        snprintf(head, sizeof(head), "%010u:", r->msgid);
        ck_assert_msg(memcmp(res->via.str.ptr, head, 11) == 0
                      && res->via.str.ptr[BIG_BYTES - 1] == (char)('a' + r->msgid % 26),
                      "msgid %u got another job's result", r->msgid);
        h_resp_free(r);
    }
    a->nstash = 0;
}

START_TEST(client_not_reading_responses_does_not_grow_daemon_memory)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d);
    msgpack_sbuffer sb;
    size_t off = 0;
    uint32_t first = a->next_msgid;
    int nsent = 0, stalled = 0, idle_polls = 0, statuses = 0;
    long rss0, rss_max;
    int64_t completed_prev = -1;

    /* Warm-up on b, so the baseline has seen some traffic. */
    for (int i = 0; i < 50; i++) {
        uint32_t m = h_rpc_submit(b, "\"warm\"", NULL);
        struct h_resp *r = h_rpc_wait(b, m, H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        h_resp_free(r);
    }
    h_resp_free(h_status(b));
    rss0 = rss_max = rss_kib(d->pid);

    /* Write phase: pipeline requests on a and read nothing, until all are
     * written or the daemon has stopped reading a (no write possible and
     * no job completing across status roundtrips on b). */
    msgpack_sbuffer_init(&sb);
    while (nsent < NBIG || off < sb.size) {
        if (off == sb.size) {
            msgpack_sbuffer_clear(&sb);
            off = 0;
            for (int k = 0; k < 64 && nsent < NBIG; k++, nsent++)
                pack_big_submit(&sb, a->next_msgid++);
        }
        ssize_t n = send(a->fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            idle_polls = 0;
            continue;
        }
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR),
                      "send to the daemon: %s", strerror(errno));
        /* Blocked: is the daemon still serving others? */
        struct h_resp *st = h_status(b);
        int64_t completed = h_get_int(st->result, "completed");
        h_resp_free(st);
        statuses++;
        long rss = rss_kib(d->pid);
        if (rss > rss_max)
            rss_max = rss;
        idle_polls = completed == completed_prev ? idle_polls + 1 : 0;
        if (idle_polls >= 5) {
            stalled = 1;
            break;
        }
        completed_prev = completed;
        struct pollfd pfd = { .fd = a->fd, .events = POLLOUT };
        if (poll(&pfd, 1, 100) == 0)
            h_daemon_pump(d, 0);
    }
    fprintf(stderr, "nonreader: %d of %d requests written before the daemon stopped "
            "reading (stalled %d); %d status answers meanwhile; VmRSS %ld -> max %ld KiB\n",
            nsent, NBIG, stalled, statuses, rss0, rss_max);
    /* While stalled, b is still answered, and memory stays put. */
    for (int i = 0; i < 5; i++) {
        h_resp_free(h_status(b));
        long rss = rss_kib(d->pid);
        if (rss > rss_max)
            rss_max = rss;
    }
    ck_assert_msg(rss_max - rss0 < NONREADER_BOUND_KIB + RSS_SLACK_KIB, "daemon VmRSS grew from %ld "
                  "to %ld KiB for a client that does not read", rss0, rss_max);

    /* Read phase: a reads everything (and writes the rest meanwhile). */
    static unsigned char seen[NBIG];
    int nseen = 0;
    int64_t deadline = h_now_ms() + 60000;
    memset(seen, 0, sizeof(seen));
    while (nseen < NBIG) {
        ck_assert_msg(h_now_ms() < deadline, "only %d of %d responses arrived", nseen, NBIG);
        if (off == sb.size && nsent < NBIG) {
            msgpack_sbuffer_clear(&sb);
            off = 0;
            for (int k = 0; k < 64 && nsent < NBIG; k++, nsent++)
                pack_big_submit(&sb, a->next_msgid++);
        }
        struct pollfd pfd[2] = {
            { .fd = a->fd, .events = POLLIN | (off < sb.size ? POLLOUT : 0) },
            { .fd = d->errfd, .events = POLLIN },
        };
        ck_assert_int_ge(poll(pfd, 2, 1000), 0);
        if (pfd[1].revents)
            h_daemon_pump(d, 0);
        if (pfd[0].revents & POLLOUT) {
            ssize_t n = send(a->fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            h_rpc_wait(a, 0, 0);        /* msgid 0 is never used: just reads */
            ck_assert_msg(!a->eof, "the daemon closed the non-reading client");
            take_big_responses(a, first, seen, &nseen);
        }
        long rss = rss_kib(d->pid);
        if (rss > rss_max)
            rss_max = rss;
    }
    msgpack_sbuffer_destroy(&sb);
    ck_assert_int_eq(nseen, NBIG);
    h_resp_free(h_status(a));
    ck_assert_msg(a->nstash == 0, "%zu extra responses", a->nstash);
    ck_assert_uint_eq(a->got, a->next_msgid - 1);
    ck_assert_msg(rss_max - rss0 < NONREADER_BOUND_KIB + RSS_SLACK_KIB, "daemon VmRSS grew from %ld "
                  "to %ld KiB", rss0, rss_max);
    struct h_resp *st = h_status(b);
    ck_assert_int_eq(h_get_int(st->result, "completed"), NBIG + 50);
}
END_TEST

/* A client whose accepted jobs pile up unstarted (the only worker hangs)
 * is not read further once they hold PENDING_HIGH (16 MiB) of payload:
 * the daemon's queue does not grow with what one client pipelines, and
 * others are still served. */
START_TEST(client_whose_jobs_pile_up_is_not_read_further)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d);
    enum { PAD = 64 * 1024, MAX_SENT = 2000 };
    static char pad[PAD];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t off = 0;
    int sent = 0, blocked_polls = 0;

    h_rpc_submit(b, "{\"op\": \"hang\"}", NULL);
    memset(pad, 'p', sizeof(pad));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    while (sent < MAX_SENT && blocked_polls < 20) {
        if (off == sb.size) {
            msgpack_sbuffer_clear(&sb);
            off = 0;
            msgpack_pack_array(&pk, 4);
            msgpack_pack_int(&pk, 0);
            msgpack_pack_uint32(&pk, a->next_msgid++);
            msgpack_pack_str_with_body(&pk, "submit", 6);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_str_with_body(&pk, pad, sizeof(pad));
            sent++;
        }
        ssize_t n = send(a->fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            blocked_polls = 0;
            continue;
        }
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR),
                      "send: %s", strerror(errno));
        struct pollfd pfd = { .fd = a->fd, .events = POLLOUT };
        if (poll(&pfd, 1, 50) == 0)
            blocked_polls++;
        h_daemon_pump(d, 0);
    }
    msgpack_sbuffer_destroy(&sb);
    ck_assert_msg(sent < MAX_SENT, "the daemon read all %d jobs of 64 KiB", sent);
    /* Others are still answered; what waits is bounded. */
    struct h_resp *st = h_status(b);
    int64_t queued = h_get_int(st->result, "queued");
    h_resp_free(st);
    ck_assert_msg(queued >= 16 * 1024 / 64 && queued <= 16 * 1024 / 64 + 2,
                  "%lld jobs queued for the client", (long long)queued);
}
END_TEST

/* Reading paused by PENDING_HIGH with whole requests already read but not
 * yet handled, and nothing more coming from the client: once its jobs end,
 * those requests are handled too (the paused reader must not wait for new
 * bytes first).  Every request gets its response. */
START_TEST(requests_read_before_a_pause_are_handled_after_it)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *a = h_connected(d), *b = h_connected(d);
    enum { PAD = 4096, N = 4600 };     /* 18 MiB of payload: past the bound */
    static char pad[PAD];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t first = a->next_msgid;

    uint32_t hang = h_rpc_submit(b, "{\"op\": \"hang\"}", NULL);
    (void)hang;
    memset(pad, 'q', sizeof(pad));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < N; i++) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int(&pk, 0);
        msgpack_pack_uint32(&pk, a->next_msgid++);
        msgpack_pack_str_with_body(&pk, "submit", 6);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, pad, sizeof(pad));
    }
    /* Write it all (the daemon reads on while jobs end), then nothing more. */
    size_t off = 0;
    int64_t deadline = h_now_ms() + 60000;
    int cancelled = 0;
    while (off < sb.size) {
        ck_assert_msg(h_now_ms() < deadline, "could not write the requests");
        ssize_t n = send(a->fd, sb.data + off, sb.size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (!cancelled) {       /* paused: let the jobs run */
            struct h_resp *r = h_rpc_call(b, "cancel", "[1]");
            ck_assert_ptr_nonnull(r);
            h_resp_free(r);
            cancelled = 1;
        }
        struct pollfd pfd = { .fd = a->fd, .events = POLLOUT | POLLIN };
        poll(&pfd, 1, 100);
        h_rpc_wait(a, 0, 0);    /* take what came: msgid 0 is never used */
        h_daemon_pump(d, 0);
    }
    msgpack_sbuffer_destroy(&sb);
    ck_assert_msg(cancelled, "the daemon read all %d requests without a pause", N);
    /* Every request is answered. */
    while (a->got < a->next_msgid - 1) {
        ck_assert_msg(h_now_ms() < deadline, "%zu of %d responses", a->got - (first - 1), N);
        h_rpc_wait(a, 0, 200);
        for (size_t i = 0; i < a->nstash; i++)
            h_resp_free(a->stash[i]);
        a->nstash = 0;
    }
}
END_TEST

static Suite *
soak_suite(void)
{
    Suite *s = suite_create("soak");
    TCase *tc;

    tc = h_tcase("soak", 120);
    tcase_add_test(tc, randomized_soak_every_job_gets_exactly_one_right_outcome);
    tcase_add_test(tc, randomized_soak_dynamic_pool_rate_limits);
    tcase_add_test(tc, scale_down_during_reload_keeps_workers);
    suite_add_tcase(s, tc);

    tc = h_tcase("clients", 60);
    tcase_add_test(tc, stalled_clients_do_not_delay_others);
    tcase_add_test(tc, client_not_reading_responses_does_not_grow_daemon_memory);
    tcase_add_test(tc, client_whose_jobs_pile_up_is_not_read_further);
    tcase_add_test(tc, requests_read_before_a_pause_are_handled_after_it);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(soak_suite());
}
