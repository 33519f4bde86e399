/*
 * testmod.c — a handler module that misbehaves on demand, for the tests.
 *
 * Job: any value is echoed back, except a map with an "op" key:
 *   {"op": "crash"}            SIGSEGV (a real invalid write)
 *   {"op": "abort"}            abort()
 *   {"op": "exit", "code": n}  _exit(n) mid-job
 *   {"op": "fail", "detail": v} error outcome with detail v
 *   {"op": "sleep", "s": f}    sleep f seconds, result "slept"
 *   {"op": "hang"}             never return
 *   {"op": "garbage"}          write bytes that are not msgpack to the master
 *   {"op": "extra"}            send a second, unsolicited result
 *   {"op": "fds"}              result: ["fd -> target", ...] of /proc/self/fd
 *   {"op": "pid"}              result: the worker's pid
 *   {"op": "none"}             pack nothing (a handler bug)
 *   {"op": "grow", "mib": n}   allocate and touch n MiB, and keep it
 *   {"op": "say", "text": s}   write s to stderr and "stdout: s" to stdout
 *   {"op": "raw", "hex": h}    write the bytes h to the master, then hang
 *   {"op": "spin"}             burn CPU forever
 *   {"op": "burn", "s": f}     burn f seconds of CPU time, result "burnt"
 * Config (--module-config): {"fail_init": true} makes init fail;
 * {"fail_init_if": "/path"} makes it fail while that file exists.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "forkpool.h"
#include "modutil.h"

/* The worker's socket: FP_WORKER_FD in spawn.h. */
#define WORKER_FD 3

static int
test_init(void **state, const msgpack_object *config)
{
    const msgpack_object *v;
    struct stat st;

    *state = NULL;
    v = get(config, "fail_init");
    if (v != NULL && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean)
        return 1;
    v = get(config, "fail_init_if");
    if (v != NULL && v->type == MSGPACK_OBJECT_STR) {
        char path[4096];
        snprintf(path, sizeof(path), "%.*s", (int)v->via.str.size, v->via.str.ptr);
        if (stat(path, &st) == 0)
            return 1;
    }
    return 0;
}

static int
list_fds(msgpack_packer *out)
{
    char entries[64][600];
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

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

/* A real invalid write.  Exempt from UBSan, whose null check would
 * otherwise report it and exit 1 instead of letting the SIGSEGV happen. */
static void __attribute__((no_sanitize_undefined))
crash_now(void)
{
    volatile int *p = NULL;
    *p = 1;
}

static int
test_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *op = get(job, "op");
    (void)state;

    if (op == NULL)
        return msgpack_pack_object(out, *job);
    if (is(op, "crash")) {
        crash_now();
    } else if (is(op, "abort")) {
        abort();
    } else if (is(op, "exit")) {
        const msgpack_object *c = get(job, "code");
        _exit(c != NULL && c->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int)c->via.u64 : 0);
    } else if (is(op, "fail")) {
        const msgpack_object *d = get(job, "detail");
        if (d != NULL)
            msgpack_pack_object(out, *d);
        else
            pack_cstr(out, "failed on purpose");
        return 1;
    } else if (is(op, "sleep")) {
        const msgpack_object *s = get(job, "s");
        double secs = 0;
        if (s != NULL && s->type == MSGPACK_OBJECT_FLOAT64) secs = s->via.f64;
        else if (s != NULL && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER) secs = (double)s->via.u64;
        struct timespec ts = { (time_t)secs, (long)((secs - (time_t)secs) * 1e9) };
        while (nanosleep(&ts, &ts) != 0)
            ;
        pack_cstr(out, "slept");
        return 0;
    } else if (is(op, "hang")) {
        for (;;)
            pause();
    } else if (is(op, "garbage")) {
        (void)!write(WORKER_FD, "\xc1\xc1\xc1\xc1", 4);
        pack_cstr(out, "sent garbage");
        return 0;
    } else if (is(op, "extra")) {
        /* ["ok", 999999, nil]: a result for a job it was never given. */
        (void)!write(WORKER_FD, "\x93\xa2ok\xce\x00\x0f\x42\x3f\xc0", 10);
        pack_cstr(out, "sent an extra result");
        return 0;
    } else if (is(op, "fds")) {
        return list_fds(out);
    } else if (is(op, "pid")) {
        msgpack_pack_int64(out, getpid());
        return 0;
    } else if (is(op, "none")) {
        return 0;
    } else if (is(op, "say")) {
        const msgpack_object *t = get(job, "text");
        int n = t != NULL && t->type == MSGPACK_OBJECT_STR ? (int)t->via.str.size : 0;
        fprintf(stderr, "%.*s\n", n, n ? t->via.str.ptr : "");
        printf("stdout: %.*s\n", n, n ? t->via.str.ptr : "");
        fflush(stdout);
        pack_cstr(out, "said");
        return 0;
    } else if (is(op, "raw")) {
        const msgpack_object *h = get(job, "hex");
        char bytes[256];
        size_t n = 0;
        for (uint32_t i = 0; h != NULL && h->type == MSGPACK_OBJECT_STR
                             && i + 1 < h->via.str.size && n < sizeof(bytes); i += 2) {
            unsigned v;
            if (sscanf(h->via.str.ptr + i, "%2x", &v) != 1)
                break;
            bytes[n++] = (char)v;
        }
        (void)!write(WORKER_FD, bytes, n);
        for (;;)
            pause();
    } else if (is(op, "burn")) {
        const msgpack_object *sec = get(job, "s");
        double want = sec != NULL && sec->type == MSGPACK_OBJECT_FLOAT64 ? sec->via.f64 : 0.1;
        struct timespec t0, t;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        do
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        while ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < want);
        pack_cstr(out, "burnt");
        return 0;
    } else if (is(op, "spin")) {
        for (volatile unsigned long i = 0;; i++)
            ;
    } else if (is(op, "grow")) {
        const msgpack_object *m = get(job, "mib");
        size_t n = (m != NULL && m->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? m->via.u64 : 1) << 20;
        /* Kept on purpose, where the compiler cannot drop it: the worker grows. */
        static char *volatile hoard;
        char **more = malloc(sizeof(char *) + n);
        if (more == NULL)
            return pack_cstr(out, "out of memory"), 1;
        memset(more + 1, 1, n);
        more[0] = hoard;                    /* a chain of every block */
        hoard = (char *)more;
        pack_cstr(out, "grown");
        return 0;
    }
    pack_cstr(out, "unknown op");
    return 1;
}

const fp_module forkpool_module = {
    .abi = FP_MODULE_ABI,
    .name = "testmod",
    .init = test_init,
    .handle = test_handle,
};
