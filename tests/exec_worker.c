/*
 * exec_worker.c — an --exec worker for the tests: a separate program that
 * speaks the worker protocol (SPEC §6) on stdin/stdout.
 *
 *   exec_worker            echo every job (via libforkpool's worker loop)
 *   exec_worker garbage    answer "ready" with bytes that are not msgpack
 *   exec_worker fail       exit 1 at once, before "ready"
 */
#include "config.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/builtin.h"
#include "engine/worker_loop.h"

int
main(int argc, char **argv)
{
    struct fp_worker_args args = {
        .module = &fp_builtin_echo,
        .limits = { .max_bytes = (64u << 20) + 64, .max_objects = 1u << 20,
                    .max_depth = FP_MAX_DEPTH + 1 },
    };

    if (argc > 1 && strcmp(argv[1], "fail") == 0) {
        fprintf(stderr, "exec_worker: failing on purpose\n");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "garbage") == 0) {
        (void)!write(1, "\xc1\xc1", 2);
        pause();
        return 0;
    }
    /* stdin and stdout are the same socket: one fd serves both ways. */
    return fp_worker_main(0, &args);
}
