/*
 * exec_worker.c — an --exec worker for the tests: a separate program that
 * speaks the worker protocol (SPEC §6) on stdin/stdout.
 *
 *   exec_worker            echo every job (via libforkpool's worker loop)
 *   exec_worker garbage    answer "ready" with bytes that are not msgpack
 *   exec_worker fail       exit 1 at once, before "ready"
 *   exec_worker tag        the protocol by hand, with msgpack-c alone: answer
 *                          ["job", id, x] with ["ok", id, ["exec", x]], or
 *                          ["error", id, "exec says no"] when x is "fail";
 *                          break the protocol on request: x = "wrong id"
 *                          answers for another id, x = "huge" starts a
 *                          result that declares a 4 GiB value;
 *                          progress: x = {"progress": [v, ...]} first
 *                          reports each v (["progress", id, v]), then
 *                          answers as above; x = "progress wrong id"
 *                          reports for another id (and answers nothing),
 *                          x = "progress huge" starts a report that
 *                          declares a 4 GiB value, x = "progress after"
 *                          answers and then reports (while idle)
 *   exec_worker ready-then-exit
 *                          say "ready" (by hand) and exit at once
 *   exec_worker testmod    run the test module (testmod.h) via libforkpool's
 *                          worker loop
 *   exec_worker burn S     not a worker: burn S seconds of CPU time and exit
 *                          0 (a child for the cmd builtin)
 */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/builtin.h"
#include "engine/worker_loop.h"
#include "modutil.h"
#include "testmod.h"

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

/* Pack ["progress", id, <the header of v>] ("tag" mode); the caller packs
 * v, or writes its raw bytes. */
static void
tag_progress_head(msgpack_packer *pk, uint64_t id)
{
    msgpack_pack_array(pk, 3);
    pack_cstr(pk, "progress");
    msgpack_pack_uint64(pk, id);
}

/* Pack the answer to job `id` with payload x ("tag" mode). */
static void
tag_answer(msgpack_packer *pk, msgpack_sbuffer *sb, uint64_t id,
           const msgpack_object *x)
{
    int fail = is(x, "fail");
    const msgpack_object *reports = get(x, "progress");

    if (is(x, "progress wrong id")) {
        tag_progress_head(pk, id + 1000);
        msgpack_pack_int(pk, 1);
        return;
    }
    if (is(x, "progress huge")) {
        tag_progress_head(pk, id);
        msgpack_sbuffer_write(sb, "\xc6\xff\xff\xff\xff", 5);
        return;
    }
    if (reports != NULL && reports->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < reports->via.array.size; i++) {
            tag_progress_head(pk, id);
            msgpack_pack_object(pk, reports->via.array.ptr[i]);
        }
    if (is(x, "progress after")) {
        /* The answer, then a report for the job that has ended. */
        msgpack_pack_array(pk, 3);
        pack_cstr(pk, "ok");
        msgpack_pack_uint64(pk, id);
        msgpack_pack_nil(pk);
        tag_progress_head(pk, id);
        msgpack_pack_int(pk, 1);
        return;
    }
    msgpack_pack_array(pk, 3);
    if (is(x, "wrong id")) {
        pack_cstr(pk, "ok");
        msgpack_pack_uint64(pk, id + 1000);
        msgpack_pack_nil(pk);
    } else if (is(x, "huge")) {
        /* ["ok", id, <bin declared 4 GiB long>...] */
        pack_cstr(pk, "ok");
        msgpack_pack_uint64(pk, id);
        msgpack_sbuffer_write(sb, "\xc6\xff\xff\xff\xff", 5);
    } else {
        pack_cstr(pk, fail ? "error" : "ok");
        msgpack_pack_uint64(pk, id);
        if (fail) {
            pack_cstr(pk, "exec says no");
        } else {
            msgpack_pack_array(pk, 2);
            pack_cstr(pk, "exec");
            msgpack_pack_object(pk, *x);
        }
    }
}

/* The "tag" and "ready-then-exit" modes.  Returns main's exit status. */
static int
hand_rolled_main(int ready_then_exit)
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
                || !is(&m->via.array.ptr[0], "job")
                || m->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                rc = 1;
                break;
            }
            tag_answer(&pk, &sb, m->via.array.ptr[1].via.u64, &m->via.array.ptr[2]);
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

int
main(int argc, char **argv)
{
    struct fp_worker_args args = {
        .module = &fp_builtin_echo,
        .limits = { .max_bytes = (64u << 20) + 64, .max_objects = 1u << 20,
                    .max_depth = FP_MAX_DEPTH + 1 },
    };
    const char *mode = argc > 1 ? argv[1] : "";
    static const fp_module testmod = {
        .abi = FP_MODULE_ABI, .name = "testmod", .init = testmod_init,
        .handle = testmod_handle, .fini = testmod_fini,
    };

    if (strcmp(mode, "fail") == 0) {
        fprintf(stderr, "exec_worker: failing on purpose\n");
        return 1;
    }
    if (strcmp(mode, "garbage") == 0) {
        (void)!write(1, "\xc1\xc1", 2);
        pause();
        return 0;
    }
    if (strcmp(mode, "burn") == 0 && argc > 2) {
        struct timespec t0, t;
        double want = atof(argv[2]);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        do
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        while ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < want);
        return 0;
    }
    if (strcmp(mode, "testmod") == 0)
        args.module = &testmod;
    if (strcmp(mode, "tag") == 0)
        return hand_rolled_main(0);
    if (strcmp(mode, "ready-then-exit") == 0)
        return hand_rolled_main(1);
    /* stdin and stdout are the same socket: one fd serves both ways. */
    return fp_worker_main(0, &args);
}
