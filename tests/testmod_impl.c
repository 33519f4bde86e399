/*
 * testmod_impl.c — the test handler module's init, handle and fini (the
 * ops and the config are listed in testmod.h).  Each op is one small
 * function in a table.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "modutil.h"
#include "testmod.h"

/* The worker's socket: FP_WORKER_FD in spawn.h. */
#define WORKER_FD 3

/* A real invalid write.  Exempt from UBSan, whose null check would
 * otherwise report it and exit 1 instead of letting the SIGSEGV happen. */
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

/* What a job that never returns does. */
static void __attribute__((noreturn))
hang_forever(void)
{
    for (;;)
        pause();
}

static sigjmp_buf trap_jump;
static pid_t helper_pid;        /* config "helper": what init started */
static int init_progress_errno; /* what fp_progress said in init (no job) */

/* A process that sleeps until it is killed; returns its pid, or -1. */
static pid_t
start_sleeper(void)
{
    pid_t pid = fork();

    if (pid == 0)
        hang_forever();
    return pid;
}

static void
trap_segv(int sig)
{
    (void)sig;
    siglongjmp(trap_jump, 1);
}

static int
config_true(const msgpack_object *config, const char *key)
{
    const msgpack_object *v = get(config, key);
    return v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* Config "init_gate": DIR.  Init waits until the test writes DIR/PID
 * (this process's pid), so a test decides when each worker is ready; a
 * file that says "fail" fails init. */
static int
wait_at_gate(const msgpack_object *dir)
{
    char path[4096], said[8] = "";
    int fd;

    snprintf(path, sizeof(path), "%.*s/%ld", (int)dir->via.str.size,
             dir->via.str.ptr, (long)getpid());
    while ((fd = open(path, O_RDONLY)) < 0) {
        struct timespec tick = { 0, 2 * 1000 * 1000 };
        nanosleep(&tick, NULL);
    }
    ssize_t n = read(fd, said, sizeof(said) - 1);
    close(fd);
    return n >= 4 && memcmp(said, "fail", 4) == 0 ? 1 : 0;
}

int
testmod_init(void **state, const msgpack_object *config)
{
    const msgpack_object *v;
    struct stat st;

    *state = NULL;
    /* No job runs yet: fp_progress must refuse (op "progress_outside"). */
    init_progress_errno = fp_progress("\x01", 1) == 0 ? 0 : errno;
    if (config_true(config, "fail_init"))
        return 1;
    if (config_true(config, "hang_init"))
        hang_forever();
    v = get(config, "init_gate");
    if (v != NULL && v->type == MSGPACK_OBJECT_STR && wait_at_gate(v) != 0)
        return 1;
    if (config_true(config, "helper") && (helper_pid = start_sleeper()) < 0)
        return 1;
    v = get(config, "fail_init_if");
    if (v != NULL && v->type == MSGPACK_OBJECT_STR) {
        char path[4096];
        snprintf(path, sizeof(path), "%.*s", (int)v->via.str.size, v->via.str.ptr);
        if (stat(path, &st) == 0)
            return 1;
    }
    if (config_true(config, "trap_segv")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = trap_segv;
        sa.sa_flags = SA_NODEFER;
        sigaction(SIGSEGV, &sa, NULL);
    }
    v = get(config, "greeting");
    if (v != NULL)
        *state = strdup_or(v, "");
    return 0;
}

void
testmod_fini(void *state)
{
    free(state);
}

/* ---- the ops: each handles one job, as fp_module.handle does ------------ */

typedef int op_fn(void *state, const msgpack_object *job, msgpack_packer *out);

static int
op_echo(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state;
    return msgpack_pack_object(out, *job);
}

/* Burn `secs` seconds of this process's CPU time. */
static void
burn_cpu(double secs)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    while ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
}

/* The job's "say" lines on stderr, if it asks: "<say> <i>" for i below
 * "n" (default 1), one write each. */
static void
say_lines(const msgpack_object *job)
{
    char *text = strdup_or(get(job, "say"), "");
    double n = num_or(get(job, "n"), 1);

    for (double i = 0; text[0] != '\0' && i < n; i++)
        dprintf(2, "%s %04.0f\n", text, i);
    free(text);
}

static int
op_crash(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)out;
    say_lines(job);
    burn_cpu(num_or(get(job, "burn"), 0));
    crash_now();
    return 1;
}

/* A failed assert(): its message on stderr, then SIGABRT. */
static int
op_assert(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)out;
    assert(job == NULL && "testmod assertion");
    return 1;
}

static int
op_abort(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job; (void)out;
    abort();
}

static int
op_sigkill(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job; (void)out;
    kill(getpid(), SIGKILL);
    hang_forever();
}

static int
op_exit(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)out;
    _exit((int)num_or(get(job, "code"), 0));
}

static int
op_fail(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *d = get(job, "detail");

    (void)state;
    if (d != NULL)
        msgpack_pack_object(out, *d);
    else
        pack_cstr(out, "failed on purpose");
    return 1;
}

static int
op_sleep(void *state, const msgpack_object *job, msgpack_packer *out)
{
    double secs = num_or(get(job, "s"), 0);
    struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };

    (void)state;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return pack_cstr(out, "slept");
}

static int
op_hang(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job; (void)out;
    hang_forever();
}

static int
op_spin(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job; (void)out;
    for (volatile unsigned long i = 0;; i++)
        ;
    return 1;
}

static int
op_burn(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state;
    burn_cpu(num_or(get(job, "s"), 0.1));
    return pack_cstr(out, "burnt");
}

/* The same CPU burnt by a child, which the job waits for. */
static int
op_burn_child(void *state, const msgpack_object *job, msgpack_packer *out)
{
    pid_t pid = fork();

    (void)state;
    if (pid == 0) {
        burn_cpu(num_or(get(job, "s"), 0.1));
        _exit(0);
    }
    if (pid < 0)
        return pack_cstr(out, "cannot fork"), 1;
    waitpid(pid, NULL, 0);
    return pack_cstr(out, "burnt");
}

/* Touch "mib" MiB of fresh memory, page by page, and give it back. */
static int
op_touch(void *state, const msgpack_object *job, msgpack_packer *out)
{
    size_t n = (size_t)num_or(get(job, "mib"), 1) << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);

    (void)state;
    if (p == MAP_FAILED)
        return pack_cstr(out, "out of memory"), 1;
    for (size_t i = 0; i < n; i += 4096)
        ((volatile char *)p)[i] = 1;
    munmap(p, n);
    return pack_cstr(out, "touched");
}

static int
op_pid(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    return msgpack_pack_int64(out, getpid());
}

/* The worker socket's SO_SNDBUF, as the kernel reports it. */
static int
op_sndbuf(void *state, const msgpack_object *job, msgpack_packer *out)
{
    int size = 0;
    socklen_t len = sizeof(size);

    (void)state; (void)job;
    if (getsockopt(WORKER_FD, SOL_SOCKET, SO_SNDBUF, &size, &len) < 0)
        size = -1;
    return msgpack_pack_int64(out, size);
}

/* The worker's threads, as /proc/self/status counts them. */
static int
op_threads(void *state, const msgpack_object *job, msgpack_packer *out)
{
    char line[256];
    long n = -1;
    FILE *f = fopen("/proc/self/status", "r");

    (void)state; (void)job;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return msgpack_pack_int64(out, n);
}

static int
op_fds(void *state, const msgpack_object *job, msgpack_packer *out)
{
    char entries[64][600];
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    (void)state; (void)job;
    if (d == NULL)
        return 1;
    while ((de = readdir(d)) != NULL && n < 64) {
        char link[280], target[256];
        ssize_t len;
        if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
        len = readlink(link, target, sizeof(target) - 1);
        target[len > 0 ? len : 0] = '\0';
        snprintf(entries[n++], sizeof(entries[0]), "%s -> %s", de->d_name, target);
    }
    closedir(d);
    msgpack_pack_array(out, n);
    for (int i = 0; i < n; i++)
        pack_cstr(out, entries[i]);
    return 0;
}

static int
op_none(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job; (void)out;
    return 0;
}

static int
op_grow(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *m = get(job, "mib");
    size_t n = (m != NULL && m->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? m->via.u64 : 1) << 20;
    /* Kept on purpose, where the compiler cannot drop it: the worker grows. */
    static char *volatile hoard;
    char **more = malloc(sizeof(char *) + n);

    (void)state;
    if (more == NULL)
        return pack_cstr(out, "out of memory"), 1;
    memset(more + 1, 1, n);
    more[0] = hoard;                    /* a chain of every block */
    hoard = (char *)more;
    return pack_cstr(out, "grown");
}

static int
op_say(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *t = get(job, "text");
    int n = t != NULL && t->type == MSGPACK_OBJECT_STR ? (int)t->via.str.size : 0;

    (void)state;
    fprintf(stderr, "%.*s\n", n, n ? t->via.str.ptr : "");
    printf("stdout: %.*s\n", n, n ? t->via.str.ptr : "");
    fflush(stdout);
    return pack_cstr(out, "said");
}

/* Write "text" as a line to stderr n times (one write each), then sleep
 * s seconds; result: the worker's pid (so a test sees where it ran). */
static int
op_chatter(void *state, const msgpack_object *job, msgpack_packer *out)
{
    char *text = strdup_or(get(job, "text"), "");
    size_t len = strlen(text);
    double n = num_or(get(job, "n"), 1), secs = num_or(get(job, "s"), 0);
    struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };

    (void)state;
    text[len] = '\n';             /* in place of its NUL: one write a line */
    for (double i = 0; i < n; i++)
        if (write(2, text, len + 1) < 0)
            break;
    free(text);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return msgpack_pack_int64(out, getpid());
}

/* 64 KiB of "y\n" lines. */
static const char *
y_lines(void)
{
    static char buf[65536];

    if (buf[0] == '\0')
        for (size_t i = 0; i < sizeof(buf); i += 2)
            memcpy(buf + i, "y\n", 2);
    return buf;
}

/* Write "y" lines to stderr as fast as it takes them for s seconds (the
 * writes block while the pipe is full); result "flooded". */
static int
op_flood(void *state, const msgpack_object *job, msgpack_packer *out)
{
    double want = num_or(get(job, "s"), 1);
    const char *buf = y_lines();
    struct timespec t0, t;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (write(2, buf, 65536) < 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < want);
    return pack_cstr(out, "flooded");
}

/* Leave a child behind that writes "y" lines to the worker's stderr until
 * a write fails (`yes >&2 &`); result: its pid. */
static int
op_yes(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const char *buf = y_lines();
    pid_t pid = fork();

    (void)state; (void)job;
    if (pid == 0) {
        while (write(2, buf, 65536) > 0)
            ;
        _exit(0);
    }
    return msgpack_pack_int64(out, pid);
}

static int
op_garbage(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    (void)!write(WORKER_FD, "\xc1\xc1\xc1\xc1", 4);
    return pack_cstr(out, "sent garbage");
}

static int
op_extra(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    /* ["ok", 999999, nil]: a result for a job it was never given. */
    (void)!write(WORKER_FD, "\x93\xa2ok\xce\x00\x0f\x42\x3f\xc0", 10);
    return pack_cstr(out, "sent an extra result");
}

static int
op_raw(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *h = get(job, "hex");
    char bytes[256];
    size_t n = 0;

    (void)state; (void)out;
    for (uint32_t i = 0; h != NULL && h->type == MSGPACK_OBJECT_STR
                         && i + 1 < h->via.str.size && n < sizeof(bytes); i += 2) {
        unsigned v;
        if (sscanf(h->via.str.ptr + i, "%2x", &v) != 1)
            break;
        bytes[n++] = (char)v;
    }
    (void)!write(WORKER_FD, bytes, n);
    hang_forever();
}

static int
op_greet(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)job;
    if (state != NULL)
        return pack_cstr(out, state);
    return msgpack_pack_nil(out);
}

static int
op_fork_abort(void *state, const msgpack_object *job, msgpack_packer *out)
{
    pid_t pid = fork();

    (void)state; (void)job;
    if (pid == 0)
        abort();
    waitpid(pid, NULL, 0);
    return pack_cstr(out, "child aborted");
}

static int
op_trapped_fault(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    if (sigsetjmp(trap_jump, 1) == 0)
        crash_now();
    return pack_cstr(out, "recovered");
}

static int
op_crash_once(void *state, const msgpack_object *job, msgpack_packer *out)
{
    char *path = strdup_or(get(job, "path"), "");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    free(path);
    if (fd >= 0) {
        close(fd);
        crash_now();
    }
    return op_echo(state, job, out);
}

static int
op_spawn(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *how = get(job, "how");
    int fds[2];
    pid_t pid, mid;

    (void)state;
    if (is(how, "orphan")) {
        /* A middle process starts the sleeper, tells us its pid, exits. */
        if (pipe(fds) < 0 || (mid = fork()) < 0)
            return pack_cstr(out, "cannot fork"), 1;
        if (mid == 0) {
            pid = start_sleeper();
            (void)!write(fds[1], &pid, sizeof(pid));
            _exit(0);
        }
        close(fds[1]);
        if (read(fds[0], &pid, sizeof(pid)) != sizeof(pid))
            pid = -1;
        close(fds[0]);
        waitpid(mid, NULL, 0);
    } else if (is(how, "setsid")) {
        if ((pid = fork()) == 0) {
            setsid();
            hang_forever();
        }
    } else {
        pid = start_sleeper();
    }
    if (pid < 0)
        return pack_cstr(out, "cannot fork"), 1;
    /* "path": its pid there too; "then": "hang": the job never ends (so
     * that it is killed mid-run, its result never sent). */
    if (get(job, "path") != NULL) {
        char *path = strdup_or(get(job, "path"), "");
        char line[32];
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int n = snprintf(line, sizeof(line), "%ld\n", (long)pid);
        if (fd >= 0) {
            (void)!write(fd, line, (size_t)n);
            close(fd);
        }
        free(path);
    }
    if (is(get(job, "then"), "hang"))
        hang_forever();
    return msgpack_pack_int64(out, pid);
}

static int
op_helper(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    if (helper_pid <= 0)
        return msgpack_pack_nil(out);
    return msgpack_pack_int64(out, helper_pid);
}

/* Append "n pid" (the job's "n", the worker's pid) to the file at "path"
 * (one O_APPEND write: whole lines, whatever other workers do), then echo
 * the job: a record of where each job started, and how many times.
 * Without "path", the file named by $TESTMOD_COUNT (small jobs). */
static int
op_count(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const char *env = getenv("TESTMOD_COUNT");
    char *path = strdup_or(get(job, "path"), env != NULL ? env : "");
    const msgpack_object *n = get(job, "n");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    char line[32];

    free(path);
    if (fd >= 0 && n != NULL && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        int len = snprintf(line, sizeof(line), "%llu %ld\n",
                           (unsigned long long)n->via.u64, (long)getpid());
        (void)!write(fd, line, (size_t)len);
    }
    if (fd >= 0)
        close(fd);
    const msgpack_object *secs = get(job, "s");
    if (secs != NULL && secs->type == MSGPACK_OBJECT_FLOAT64 && secs->via.f64 > 0) {
        struct timespec ts = { (time_t)secs->via.f64,
                               (long)((secs->via.f64 - (time_t)secs->via.f64) * 1e9) };
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
    return op_echo(state, job, out);
}

/* SIGKILL the master (a job that takes its host down, for the Redis
 * tests), then wait to be killed with it. */
static int
op_kill_master(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job; (void)out;
    kill(getppid(), SIGKILL);
    hang_forever();
}

/* Wait (at most a minute) until the file at "path" exists, then echo the
 * job: a job that runs exactly as long as the test wants. */
static int
op_gate(void *state, const msgpack_object *job, msgpack_packer *out)
{
    char *path = strdup_or(get(job, "path"), "");
    struct timespec ts = { 0, 1000000 };

    for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
        nanosleep(&ts, NULL);
    free(path);
    return op_echo(state, job, out);
}

/* Sleep `secs` seconds (a float). */
static void
sleep_for(double secs)
{
    struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Report one value through fp_progress.  Returns its return value. */
static int
report(const msgpack_object *v)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *v);
    rc = fp_progress(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Report each of "values" (or the integers 1..n), sleeping "every"
 * seconds before each and "after" seconds after the last; result: how
 * many were taken.  An error outcome, "fp_progress failed: <errno>", if
 * one is refused. */
static int
op_progress(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *values = get(job, "values");
    double every = num_or(get(job, "every"), 0);
    uint32_t n = values != NULL && values->type == MSGPACK_OBJECT_ARRAY
                 ? values->via.array.size : (uint32_t)num_or(get(job, "n"), 0);

    size_t pad = (size_t)num_or(get(job, "pad"), 0);
    char *padding = pad > 0 ? malloc(pad) : NULL;

    (void)state;
    if (padding != NULL)
        memset(padding, 'p', pad);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_object one = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER,
                               .via.u64 = i + 1 };
        if (padding != NULL) {
            one.type = MSGPACK_OBJECT_STR;
            one.via.str.ptr = padding;
            one.via.str.size = (uint32_t)pad;
        }
        if (every > 0)
            sleep_for(every);
        if (report(values != NULL ? &values->via.array.ptr[i] : &one) < 0) {
            char why[64];
            snprintf(why, sizeof(why), "fp_progress failed: %s", strerror(errno));
            free(padding);
            return pack_cstr(out, why), 1;
        }
    }
    free(padding);
    sleep_for(num_or(get(job, "after"), 0));
    return msgpack_pack_uint32(out, n);
}

static const char *
errno_name(int rc, int e)
{
    if (rc == 0)
        return "0";
    switch (e) {
    case ESRCH:    return "ESRCH";
    case EINVAL:   return "EINVAL";
    case EMSGSIZE: return "EMSGSIZE";
    case EPIPE:    return "EPIPE";
    case ENOMEM:   return "ENOMEM";
    default:       return "other";
    }
}

/* fp_progress refuses what the master would take as a protocol error:
 * result, in order, what it said to bytes that are not msgpack, to two
 * values, to nothing, to a bin of "bytes" bytes (past the frame limit)
 * -- and then to a good value, since the job goes on. */
static int
op_progress_bad(void *state, const msgpack_object *job, msgpack_packer *out)
{
    size_t big = (size_t)num_or(get(job, "bytes"), 1 << 20);
    char *bin = malloc(big + 5);
    int rc;

    (void)state;
    if (bin == NULL)
        return pack_cstr(out, "out of memory"), 1;
    bin[0] = (char)0xc6;                /* bin 32 */
    for (int i = 0; i < 4; i++)
        bin[1 + i] = (char)(big >> (24 - 8 * i));
    memset(bin + 5, 'b', big);
    msgpack_pack_array(out, 5);
    rc = fp_progress("\xc1", 1);
    pack_cstr(out, errno_name(rc, errno));
    rc = fp_progress("\x01\x02", 2);
    pack_cstr(out, errno_name(rc, errno));
    rc = fp_progress(NULL, 0);
    pack_cstr(out, errno_name(rc, errno));
    rc = fp_progress(bin, big + 5);
    pack_cstr(out, errno_name(rc, errno));
    rc = fp_progress("\xa4good", 5);
    pack_cstr(out, errno_name(rc, errno));
    free(bin);
    return 0;
}

/* The body of "progress_thread": report as fast as it goes, for ever,
 * whatever job runs (ESRCH between jobs). */
static void *
hammer(void *arg)
{
    (void)arg;
    for (;;)
        (void)fp_progress("\xa6" "hammer", 7);
    return NULL;
}

/* Leave a thread behind that reports progress in a tight loop, across
 * every job this worker runs from now on (once per worker); result
 * "started". */
static int
op_progress_thread(void *state, const msgpack_object *job, msgpack_packer *out)
{
    static int started;
    pthread_t t;

    (void)state; (void)job;
    if (!started && pthread_create(&t, NULL, hammer, NULL) != 0)
        return pack_cstr(out, "cannot start a thread"), 1;
    started = 1;
    return pack_cstr(out, "started");
}

/* What fp_progress said when init called it. */
static int
op_progress_outside(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    return pack_cstr(out, errno_name(init_progress_errno != 0 ? -1 : 0,
                                     init_progress_errno));
}

static const struct {
    const char *name;
    op_fn      *fn;
} ops[] = {
    { "progress", op_progress },    { "progress_bad", op_progress_bad },
    { "progress_outside", op_progress_outside },
    { "progress_thread", op_progress_thread },
    { "crash", op_crash },          { "abort", op_abort },
    { "sigkill", op_sigkill },      { "exit", op_exit },
    { "fail", op_fail },            { "sleep", op_sleep },
    { "hang", op_hang },            { "spin", op_spin },
    { "burn", op_burn },            { "pid", op_pid },
    { "sndbuf", op_sndbuf },
    { "threads", op_threads },
    { "fds", op_fds },              { "none", op_none },
    { "grow", op_grow },            { "say", op_say },
    { "garbage", op_garbage },      { "extra", op_extra },
    { "raw", op_raw },              { "greet", op_greet },
    { "fork_abort", op_fork_abort }, { "trapped_fault", op_trapped_fault },
    { "crash_once", op_crash_once }, { "count", op_count },
    { "gate", op_gate },            { "chatter", op_chatter },
    { "flood", op_flood },          { "yes", op_yes },
    { "spawn", op_spawn },          { "helper", op_helper },
    { "assert", op_assert },        { "burn_child", op_burn_child },
    { "touch", op_touch },
    { "kill_master", op_kill_master },
};

int
testmod_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *op = get(job, "op");

    if (op == NULL)
        return op_echo(state, job, out);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (is(op, ops[i].name))
            return ops[i].fn(state, job, out);
    pack_cstr(out, "unknown op");
    return 1;
}
