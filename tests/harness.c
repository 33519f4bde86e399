/*
 * harness.c — what every piece of the integration-test harness
 * shares: time, temp dirs, pids, and the per-test teardown (see harness.h).
 */
#include "config.h"
#include <check.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_int.h"

/* ------------------------------------------------------------------------
 * What teardown must undo.  Check runs each test in its own process, so
 * these lists are per test (the daemons and connections are kept by
 * harness_daemon.c and harness_rpc.c).
 * ------------------------------------------------------------------------ */

static char *dirs[MAX_TRACKED];
static size_t ndirs;
static char rundir[32] = "/tmp";    /* h_suite_begin's directory */
static void **kept;             /* strings handed to tests */
static size_t nkept, capkept;
static int atexit_done;

void *
h_keep(void *p)
{
    if (nkept == capkept) {
        capkept = capkept ? capkept * 2 : 64;
        kept = realloc(kept, capkept * sizeof(*kept));
        ck_assert_ptr_nonnull(kept);
    }
    kept[nkept++] = p;
    return p;
}

void
h_track_exit(void)
{
    if (!atexit_done) {
        atexit_done = 1;
        atexit(h_teardown);
        signal(SIGPIPE, SIG_IGN);
    }
}

int64_t
h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
h_left_ms(int64_t deadline)
{
    int64_t left = deadline - h_now_ms();
    return left > 0 ? (int)left : 0;
}

const char *
h_tempdir(void)
{
    char tmpl[64];

    snprintf(tmpl, sizeof(tmpl), "%s/%sXXXXXX", rundir,
             strcmp(rundir, "/tmp") == 0 ? "fpt." : "");
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    ck_assert_uint_lt(ndirs, MAX_TRACKED);
    h_track_exit();
    dirs[ndirs] = strdup(tmpl);
    return dirs[ndirs++];
}

static int
remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    remove(path);
    return 0;
}

/* Remove dir and everything in it (sockets, stale files, cores). */
static void
remove_dir(const char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------------
 * pids
 * ------------------------------------------------------------------------ */

int
h_pidfd(pid_t pid)
{
    int fd = pidfd_open(pid, 0);

    ck_assert_msg(fd >= 0 || errno == ESRCH, "pidfd_open(%ld): %s", (long)pid,
                  strerror(errno));
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int
h_wait_readable(int fd, int timeout_ms, struct h_daemon *d)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = d != NULL ? d->errfd : -1, .events = POLLIN },
        };
        int n = poll(pfd, 2, h_left_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_msg(n >= 0, "poll: %s", strerror(errno));
        if (pfd[1].revents != 0)
            h_log_read(d);
        if (pfd[0].revents != 0)
            return 1;
        if (h_left_ms(deadline) == 0)
            return 0;
    }
}

int
h_pidfd_exited(int pidfd)
{
    struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
    return poll(&pfd, 1, 0) == 1;
}

int
h_exit_code(int status)
{
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
h_count_lines(const char *text)
{
    int n = 0;

    for (const char *p = text; *p != '\0'; p++)
        if (*p == '\n' || p[1] == '\0')
            n++;
    return n;
}

/* ------------------------------------------------------------------------
 * Teardown
 * ------------------------------------------------------------------------ */

int
h_children_of(pid_t parent, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL && (out == NULL || n < max)) {
        char path[64], buf[512];
        pid_t pid = (pid_t)atol(de->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces or ')' */
        char *p = strrchr(buf, ')');
        char state;
        long ppid;
        if (p != NULL && sscanf(p + 1, " %c %ld", &state, &ppid) == 2
            && ppid == (long)parent) {
            if (out != NULL)
                out[n] = pid;
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Kill and reap every child left (SIGKILL cannot be ignored, so the
 * blocking waits end). */
static void
reap_children(void)
{
    pid_t pids[256];
    int n;

    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    for (int round = 0; round < 10 && (n = h_children_of(getpid(), pids, 256)) > 0; round++) {
        for (int i = 0; i < n; i++) {
            kill(pids[i], SIGKILL);
            while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
}

void
h_suite_begin(void)
{
    char tmpl[] = "/tmp/fpt.XXXXXX";

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        fprintf(stderr, "harness: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        exit(EXIT_FAILURE);
    }
    snprintf(rundir, sizeof(rundir), "%s", tmpl);
}

void
h_suite_end(void)
{
    reap_children();
    if (strcmp(rundir, "/tmp") != 0)
        remove_dir(rundir);
}

void
h_teardown(void)
{
    h_rpc_teardown();
    h_daemon_teardown();
    h_redis_teardown();
    while (ndirs > 0) {
        char *dir = dirs[--ndirs];
        remove_dir(dir);
        free(dir);
    }
    while (nkept > 0)
        free(kept[--nkept]);
    free(kept);
    kept = NULL;
    capkept = 0;
}

TCase *
h_tcase(const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, NULL, h_teardown);
    tcase_set_timeout(tc, timeout_s);
    return tc;
}

int
h_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    h_suite_begin();
    srunner_run_all(sr, CK_NORMAL);
    h_suite_end();
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
