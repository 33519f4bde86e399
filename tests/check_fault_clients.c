/*
 * check_fault_clients.c — forkpoold's control socket under faults (SPEC
 * §7; issue 12): clients that half-close, clients that do not read, the
 * master out of file descriptors, the master out of address space.
 *
 * Each test starts its own forkpoold (harness.h) and watches it from the
 * outside: its replies, its log, and /proc/PID (CPU ticks, resident
 * memory, open fds); limits are lowered on the running master with
 * prlimit(2).  Nothing waits by sleeping: responses, log lines and EOF are
 * awaited with deadlines; the one measured window (CPU over 2 s) has a
 * bound a busy loop cannot meet on any machine and an idle master always
 * does.
 */
#include "config.h"
#include <check.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* ========================================================================
 * The master seen from /proc
 * ======================================================================== */

/* utime + stime of pid, in clock ticks. */
static long
cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long utime = 0, stime = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "re"));
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    /* After "(comm) ": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime. */
    char *p = strrchr(buf, ')');
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%lu %lu", &utime, &stime), 2);
    return (long)(utime + stime);
}

/* A "Name:   N kB" line of /proc/PID/status, in kB. */
static long
status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    size_t n = strlen(name);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    ck_assert_ptr_nonnull(f = fopen(path, "re"));
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            kb = strtol(line + n + 1, NULL, 10);
    fclose(f);
    ck_assert_msg(kb >= 0, "no %s in %s", name, path);
    return kb;
}

/* Open file descriptors of pid. */
static int
open_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    ck_assert_ptr_nonnull(dir = opendir(path));
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* A connection to the daemon's socket that the test never reads from. */
static int
raw_connect(const struct h_daemon *d)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    strcpy(sa.sun_path, d->sock);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
                  "connect: %s", strerror(errno));
    return fd;
}

/* Wait until at least n complete log lines contain needle. */
static int
wait_log_count(struct h_daemon *d, const char *needle, int n, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms, left;

    while (h_log_count(d, needle) < n) {
        left = deadline - h_now_ms();
        if (left <= 0 || !h_daemon_wait_log(d, "\n", d->loglen, (int)left))
            return h_log_count(d, needle) >= n;
    }
    return 1;
}

/* A cmd job writing `bytes` zero bytes to its stdout. */
static const char *
zeros_job(size_t bytes)
{
    static char job[8][96];
    static int next;
    char *j = job[next++ % 8];

    snprintf(j, sizeof(job[0]), "{\"argv\": [\"head\", \"-c\", \"%zu\", "
             "\"/dev/zero\"]}", bytes);
    return j;
}

/* Assert r is a submit's ok response whose command printed `bytes`. */
static void
assert_zeros(const struct h_resp *r, size_t bytes)
{
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->error == NULL, "error: %s", h_json(r->error));
    const msgpack_object *res = h_get(r->result, "result");
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(h_get_int(res, "exit"), 0);
    const msgpack_object *out = h_get(res, "stdout");
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(out->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(out->via.str.size, bytes);
}

/* ========================================================================
 * Half-closed clients (SPEC §7: "still receives every response it is owed")
 * ======================================================================== */

START_TEST(a_half_closed_client_gets_every_reply_then_eof)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "2", NULL));
    struct h_rpc *c = h_connected(d);
    uint32_t m[9];

    /* Nine requests in one write, then shutdown(SHUT_WR), as `nc -N` does:
     * jobs still running and queued when the EOF arrives. */
    h_rpc_cork(c);
    for (int i = 0; i < 6; i++) {
        char job[64];
        snprintf(job, sizeof(job), "{\"op\": \"sleep\", \"s\": %g}", 0.05 * (i + 1));
        m[i] = h_rpc_submit(c, job, NULL);
    }
    m[6] = h_rpc_send(c, "status", "[]");
    m[7] = h_rpc_send(c, "frobnicate", "[]");
    m[8] = h_rpc_submit(c, "\"last\"", NULL);
    h_rpc_uncork(c);
    ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);

    for (int i = 0; i < 6; i++) {
        struct h_resp *r = h_rpc_wait(c, m[i], 10000);
        ck_assert_msg(r != NULL, "no response to request %d", i + 1);
        ck_assert_str_eq(h_json(h_get(r->result, "result")), "\"slept\"");
    }
    struct h_resp *r = h_rpc_wait(c, m[6], H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(h_get_int(r->result, "submitted"), 6);
    r = h_rpc_wait(c, m[7], H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"unknown method: frobnicate\"");
    r = h_rpc_wait(c, m[8], H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(h_get(r->result, "result")), "\"last\"");
    /* Then the daemon closes: nothing more, nothing twice. */
    ck_assert_int_eq(h_rpc_wait_eof(c, H_REPLY_MS), 9);
    ck_assert(h_daemon_alive(d));
}
END_TEST

START_TEST(a_half_closed_client_that_fell_behind_still_gets_every_reply)
{
    /* A tiny soft limit: the client falls behind with requests still
     * unread in the daemon's buffer when its EOF is already there. */
    struct h_daemon *d = h_started(h_daemon_start(
        "--builtin", "echo", "-w", "2", "-v", "--reply-soft-limit", "16384", NULL));
    struct h_rpc *c = h_connected(d);
    char job[3000];
    enum { N = 300 };

    memset(job, 'x', sizeof(job));
    job[0] = '"';
    job[sizeof(job) - 2] = '"';
    job[sizeof(job) - 1] = '\0';
    h_rpc_cork(c);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            h_rpc_submit(c, job, NULL);
        else
            h_rpc_send(c, "status", "[]");
    }
    h_rpc_uncork(c);
    ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
    ck_assert(h_daemon_wait_log(d, "behind: its requests and jobs wait", 0, 10000));

    for (uint32_t msgid = 1; msgid <= N; msgid++) {
        struct h_resp *r = h_rpc_wait(c, msgid, 10000);
        ck_assert_msg(r != NULL, "no response to request %u", msgid);
        ck_assert_msg(r->error == NULL, "request %u: %s", msgid, h_json(r->error));
    }
    ck_assert_int_eq(h_rpc_wait_eof(c, H_REPLY_MS), N);
}
END_TEST

/* ========================================================================
 * Out of file descriptors
 * ======================================================================== */

START_TEST(out_of_fds_the_master_idles_and_serves_again_once_they_free_up)
{
    struct h_daemon *d = h_started(h_daemon_start(H_MOD, "-w", "1", NULL));
    struct h_rpc *first = h_connected(d);
    struct rlimit lim, old;
    int fds[8];
    long hz = sysconf(_SC_CLK_TCK);

    h_status(first);
    /* Room for two more connections, then accept() fails with EMFILE. */
    ck_assert_int_eq(prlimit(d->pid, RLIMIT_NOFILE, NULL, &old), 0);
    lim.rlim_cur = (rlim_t)open_fds(d->pid) + 2;
    lim.rlim_max = old.rlim_max;
    ck_assert_int_eq(prlimit(d->pid, RLIMIT_NOFILE, &lim, NULL), 0);
    for (int i = 0; i < 8; i++)
        fds[i] = raw_connect(d);        /* the rest wait in the backlog */
    ck_assert(h_daemon_wait_log(d, "accept: Too many open files", 0, H_REPLY_MS));

    /* Two seconds at EMFILE, the log drained all the while (a master that
     * spins on accept() would also flood it). */
    long before = cpu_ticks(d->pid);
    h_daemon_pump(d, 2000);
    long used = cpu_ticks(d->pid) - before;
    ck_assert_msg(used < hz / 2, "the master used %ld ticks of CPU (of %ld a "
                  "second) in 2 s while out of fds", used, hz);
    ck_assert_int_eq(h_log_count(d, "accept:"), 1);
    /* Its connections are still served meanwhile. */
    ck_assert_ptr_nonnull(h_rpc_call(first, "status", "[]"));

    /* The fds free up: the waiting connections are taken, and new ones. */
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    ck_assert(h_daemon_wait_log(d, "accepting connections again", 0, H_REPLY_MS));
    struct h_rpc *later = h_connected(d);
    ck_assert_int_eq(h_get_int(h_status(later)->result, "workers"), 1);
    ck_assert_int_eq(prlimit(d->pid, RLIMIT_NOFILE, &old, NULL), 0);
}
END_TEST

/* ========================================================================
 * Clients that do not read (SPEC §7: soft and hard limits)
 * ======================================================================== */

START_TEST(clients_that_do_not_read_are_bounded_and_lose_nothing_once_they_read)
{
    enum { CLIENTS = 20, JOBS = 16 };
    const size_t bytes = 512 * 1024;
    struct h_daemon *d = h_started(h_daemon_start(
        "--builtin", "cmd", "-w", "2", "-v", "--reply-soft-limit", "262144",
        "--reply-max-bytes", "4194304", NULL));
    struct h_rpc *c[CLIENTS], *watch = h_connected(d);

    h_status(watch);
    long base_kb = status_kb(d->pid, "VmRSS");
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = h_connected(d);
        h_rpc_cork(c[i]);
        for (int j = 0; j < JOBS; j++)
            h_rpc_submit(c[i], zeros_job(bytes), NULL);
        h_rpc_uncork(c[i]);     /* and read nothing, for now */
    }
    /* Every client falls behind at its first result; its other jobs wait
     * unstarted.  (Unbounded, the daemon would hold 160 MiB of replies.) */
    ck_assert(wait_log_count(d, "behind: its requests and jobs wait", CLIENTS, 30000));
    struct h_resp *st = h_status(watch);
    const msgpack_object *clients = h_get(st->result, "clients");
    ck_assert_ptr_nonnull(clients);
    ck_assert_int_eq(h_get_int(clients, "behind"), CLIENTS);
    ck_assert_int_gt(h_get_int(st->result, "queued"), 0);

    /* Now they read: every job of every client runs and every outcome
     * arrives, exactly once, in a stream that decodes. */
    for (int i = 0; i < CLIENTS; i++) {
        for (uint32_t msgid = 1; msgid <= JOBS; msgid++)
            assert_zeros(h_rpc_wait(c[i], msgid, 30000), bytes);
        ck_assert_uint_eq(c[i]->got, JOBS);
    }
    /* The master's peak memory stayed bounded all along. */
    long peak_kb = status_kb(d->pid, "VmHWM");
    ck_assert_msg(H_ASAN || peak_kb - base_kb < 40 * 1024, "the master's resident memory "
                  "peaked at %ld kB over its %ld kB at the start", peak_kb - base_kb,
                  base_kb);
    st = h_status(watch);
    ck_assert_int_eq(h_get_int(st->result, "completed"), CLIENTS * JOBS);
    ck_assert_int_eq(h_get_int(h_get(st->result, "clients"), "behind"), 0);
}
END_TEST

/* Clients that pipeline thousands of requests (and read nothing yet) get
 * through them a turn at a time: a client that asks for its status in
 * the middle is answered promptly, not after all of theirs (each client's
 * whole buffer once ran in one go: 29 s for 100 clients of 5000). */
START_TEST(clients_pipelining_thousands_of_requests_do_not_hold_up_the_others)
{
    enum { CLIENTS = 50, EACH = 5000 };
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  NULL));
    struct h_rpc *c[CLIENTS], *watch = h_connected(d);

    h_status(watch);
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = h_connected(d);
        h_rpc_cork(c[i]);
        for (int j = 0; j < EACH; j++)
            h_rpc_send(c[i], "status", "[]");
        h_rpc_uncork(c[i]);
    }
    int64_t t0 = h_now_ms();
    struct h_resp *st = h_rpc_wait(watch, h_rpc_send(watch, "status", "[]"), 60000);
    int64_t took = h_now_ms() - t0;
    ck_assert_ptr_nonnull(st);
    fprintf(stderr, "status among %d x %d pipelined: %lld ms\n", CLIENTS, EACH,
            (long long)took);
    /* 250,000 status maps take the master seconds; a turn of each client
     * takes a millisecond or two. */
    ck_assert_msg(took < 3000, "status took %lld ms", (long long)took);
    /* And the others get all theirs. */
    for (int i = 0; i < CLIENTS; i += 7)
        ck_assert_ptr_nonnull(h_rpc_wait(c[i], EACH, 60000));
}
END_TEST

START_TEST(a_client_past_its_hard_limit_is_disconnected_and_its_waiting_jobs_cancelled)
{
    struct h_daemon *d = h_started(h_daemon_start(
        "--builtin", "cmd", "-w", "4", "-v", "--reply-soft-limit", "65536",
        "--max-job-bytes", "1048576", "--reply-hard-limit", "1200000", NULL));
    struct h_rpc *watch = h_connected(d), *c;

    ck_assert(wait_log_count(d, "ready for jobs", 4, H_READY_MS));
    /* Four jobs start at once, four wait.  The first result puts the
     * client behind (the waiting four stay unstarted); the three others
     * arrive anyway, and together they pass the hard limit. */
    c = h_connected(d);
    h_rpc_cork(c);
    for (int i = 0; i < 8; i++)
        h_rpc_submit(c, zeros_job(600 * 1024), NULL);
    h_rpc_uncork(c);
    ck_assert(h_daemon_wait_log(d, "past the hard limit of 1200000; disconnecting "
                                "it (4 jobs not started cancelled", 0, 10000));
    ck_assert_int_ge(h_rpc_wait_eof(c, H_REPLY_MS), 0);

    struct h_resp *st = h_status(watch);
    ck_assert_int_eq(h_get_int(st->result, "cancelled"), 4);
    ck_assert_int_eq(h_get_int(h_get(st->result, "clients"), "connected"), 1);
    /* The daemon serves on. */
    struct h_rpc *next = h_connected(d);
    assert_zeros(h_submit(next, zeros_job(1000), NULL), 1000);
}
END_TEST

/* ========================================================================
 * Big and small replies on one connection (codec/outq.h)
 * ======================================================================== */

/* A string job of exactly `size` bytes that names its request: "<i>:"
 * then a letter of its own.  Returned as JSON text (malloc'ed). */
static char *
tagged_job(int i, size_t size)
{
    char *json = malloc(size + 3), tag[16];
    int n = snprintf(tag, sizeof(tag), "%d:", i);

    ck_assert_ptr_nonnull(json);
    json[0] = '"';
    memset(json + 1, 'a' + i % 26, size);
    memcpy(json + 1, tag, (size_t)n < size ? (size_t)n : size);
    json[size + 1] = '"';
    json[size + 2] = '\0';
    return json;
}

/* Results of every size around the one where a result stops sharing a
 * chunk and is written from where it lies (tiny, 16 KiB - 1, 16 KiB,
 * 16 KiB + 1, 200 KB, over 1 MiB), pipelined with status requests between
 * them on one connection: each reply arrives whole, under its own msgid,
 * with its own bytes; once all are read the daemon holds no reply bytes. */
START_TEST(interleaved_big_and_small_replies_arrive_whole_under_their_msgids)
{
    enum { N = 49 };
    static const size_t sizes[] = { 5, 16383, 16384, 16385, 200000, 1100000, 40 };
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "2", NULL));
    struct h_rpc *c = h_connected(d), *watch = h_connected(d);
    uint32_t msgid[N];
    size_t size[N];

    h_rpc_cork(c);
    for (int i = 0; i < N; i++) {
        if (i % 5 == 4) {
            msgid[i] = h_rpc_send(c, "status", "[]");
            size[i] = 0;
            continue;
        }
        size[i] = sizes[i % 7];
        char *job = tagged_job(i, size[i]);
        msgid[i] = h_rpc_submit(c, job, NULL);
        free(job);
    }
    h_rpc_uncork(c);
    for (int i = 0; i < N; i++) {
        struct h_resp *r = h_rpc_wait(c, msgid[i], 30000);
        ck_assert_msg(r != NULL, "no reply to request %d", i);
        ck_assert_msg(r->error == NULL, "request %d: %s", i, h_json(r->error));
        if (size[i] == 0) {
            ck_assert_int_gt(h_get_int(r->result, "workers"), 0);
            continue;
        }
        const msgpack_object *res = h_get(r->result, "result");
        ck_assert_ptr_nonnull(res);
        ck_assert_int_eq(res->type, MSGPACK_OBJECT_STR);
        ck_assert_uint_eq(res->via.str.size, size[i]);
        char *want = tagged_job(i, size[i]);
        ck_assert_msg(memcmp(res->via.str.ptr, want + 1, size[i]) == 0,
                      "request %d: its reply carries other bytes", i);
        free(want);
    }
    ck_assert_int_eq(c->nstash, 0);
    const msgpack_object *clients = h_get(h_status(watch)->result, "clients");
    ck_assert_int_eq(h_get_int(clients, "reply_bytes"), 0);
    ck_assert_int_eq(h_get_int(clients, "behind"), 0);
}
END_TEST

/* ========================================================================
 * Out of address space (SPEC §7: nobody is left waiting)
 * ======================================================================== */

START_TEST(out_of_memory_every_client_is_answered_whole_or_disconnected)
{
    enum { CLIENTS = 10, REQS = 20 };
    const size_t bytes = 512 * 1024;
    struct rlimit lim, old;
    int answered = 0, dropped = 0;

    if (H_ASAN) {       /* ASan's shadow memory: an address-space limit means nothing */
        fprintf(stderr, "address space test skipped under AddressSanitizer\n");
        return;
    }
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "cmd", "-w", "2", NULL));
    struct h_rpc *c[CLIENTS], *watch = h_connected(d);

    h_status(watch);
    /* Room for 32 MiB more, where ten clients that read one at a time are
     * owed 8 MiB each (and more, unbounded): allocations fail -- in the
     * engine or on the reply path, wherever memory runs out. */
    ck_assert_int_eq(prlimit(d->pid, RLIMIT_AS, NULL, &old), 0);
    lim.rlim_cur = (rlim_t)status_kb(d->pid, "VmSize") * 1024 + (32u << 20);
    lim.rlim_max = old.rlim_max;
    if (prlimit(d->pid, RLIMIT_AS, &lim, NULL) != 0) {
        fprintf(stderr, "check_fault_clients: prlimit(RLIMIT_AS) not permitted "
                "(%s); skipping\n", strerror(errno));
        return;
    }
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = h_connected(d);
        h_rpc_cork(c[i]);
        for (int k = 0; k < REQS; k++)
            if (k % 5 == 4)
                h_rpc_send(c[i], "status", "[]");
            else
                h_rpc_submit(c[i], zeros_job(bytes), NULL);
        h_rpc_uncork(c[i]);
    }
    /* Each request gets a whole, well-formed response to its own msgid
     * (the harness fails the test on a stream that does not decode), or
     * the connection is closed -- never silence on an open connection. */
    for (int i = 0; i < CLIENTS; i++) {
        for (uint32_t msgid = 1; msgid <= REQS; msgid++) {
            struct h_resp *r = h_rpc_wait(c[i], msgid, 20000);
            if (r == NULL) {
                ck_assert_msg(c[i]->eof, "client %d: no response to request %u "
                              "and still connected", i, msgid);
                dropped++;
                continue;
            }
            answered++;
            if (msgid % 5 == 0) {
                ck_assert_ptr_null(r->error);
                ck_assert_int_gt(h_get_int(r->result, "submitted"), 0);
            } else if (r->error == NULL) {
                assert_zeros(r, bytes);
            } else {
                /* An outcome in place of the result: its own job's. */
                ck_assert_int_gt(h_get_int(r->error, "id"), 0);
                h_get_str(r->error, "kind");
            }
        }
        ck_assert_int_eq(c[i]->nstash, 0);      /* nothing unasked for */
    }
    ck_assert_int_eq(answered + dropped, CLIENTS * REQS);

    /* The master lives on and serves.  (Workers forked meanwhile keep the
     * limit they inherited: a small job.) */
    ck_assert(h_daemon_alive(d));
    ck_assert_int_eq(prlimit(d->pid, RLIMIT_AS, &old, NULL), 0);
    struct h_rpc *after = h_connected(d);
    assert_zeros(h_submit(after, zeros_job(1000), NULL), 1000);
}
END_TEST

static Suite *
fault_clients_suite(void)
{
    Suite *s = suite_create("fault_clients");
    TCase *tc;

    tc = h_tcase("half_close", 60);
    tcase_add_test(tc, a_half_closed_client_gets_every_reply_then_eof);
    tcase_add_test(tc, a_half_closed_client_that_fell_behind_still_gets_every_reply);
    suite_add_tcase(s, tc);
    tc = h_tcase("fds", 60);
    tcase_add_test(tc, out_of_fds_the_master_idles_and_serves_again_once_they_free_up);
    suite_add_tcase(s, tc);
    tc = h_tcase("reply_memory", 180);
    tcase_add_test(tc, clients_that_do_not_read_are_bounded_and_lose_nothing_once_they_read);
    tcase_add_test(tc, a_client_past_its_hard_limit_is_disconnected_and_its_waiting_jobs_cancelled);
    tcase_add_test(tc, clients_pipelining_thousands_of_requests_do_not_hold_up_the_others);
    suite_add_tcase(s, tc);
    tc = h_tcase("big_replies", 120);
    tcase_add_test(tc, interleaved_big_and_small_replies_arrive_whole_under_their_msgids);
    suite_add_tcase(s, tc);
    tc = h_tcase("address_space", 180);
    tcase_add_test(tc, out_of_memory_every_client_is_answered_whole_or_disconnected);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(fault_clients_suite());
}
