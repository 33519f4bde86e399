/* spawn.c — socketpair, fork, and a clean child (see spawn.h). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>

#include "sandbox.h"
#include "spawn.h"

void
fp_reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);   /* fails harmlessly on KILL/STOP */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void
fp_close_fds_from(int lowfd)
{
#ifdef HAVE_CLOSE_RANGE
    if (close_range((unsigned)lowfd, ~0U, 0) == 0)
        return;
#endif
    /* Old kernel: walk /proc/self/fd, or fall back to the rlimit. */
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        int dfd = dirfd(d);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            int fd = atoi(de->d_name);
            if (fd >= lowfd && fd != dfd)
                close(fd);
        }
        closedir(d);
        return;
    }
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lowfd; fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

static void
set_sockbuf(int fd, int size)
{
    if (size <= 0)
        return;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* Runs in the child right after fork; never returns. */
static void __attribute__((noreturn))
child_start(const struct fp_spawn_req *req, int sock, int errw, pid_t master)
{
    int devnull, keep = -1;
    const char *why;

    /* Lead a process group of our own: whatever the handler starts stays in
     * it, so the master can kill the worker and everything below it. */
    setpgid(0, 0);
    fp_reset_signals();
    /* A crashing worker must not leave a core file of the master's memory
     * behind, nor take seconds to dump one before it can be replaced. */
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core);
    /* The master wakes a worker each time it hands it jobs, with a write
     * to its socket: a "sync" wake-up, which invites the worker onto the
     * master's CPU, where under SCHED_OTHER it may preempt the master --
     * the one process every job passes through -- in the middle of its
     * loop.  Under SCHED_BATCH a woken worker does not preempt; its share
     * of the CPU is the same.  Only a hint: if refused, we run as we are. */
    if (req->batch_sched && sched_getscheduler(0) == SCHED_OTHER) {
        struct sched_param none = { 0 };
        (void)sched_setscheduler(0, SCHED_BATCH, &none);
    }

    /* Keep the socket clear of the stdio numbers we are about to assign. */
    if (sock < 3 && (sock = fcntl(sock, F_DUPFD_CLOEXEC, 3)) < 0)
        _exit(111);
    if (errw < 3 && (errw = fcntl(errw, F_DUPFD_CLOEXEC, 3)) < 0)
        _exit(111);
    /* stderr goes to the master, which logs it line by line with our pid. */
    if (dup2(errw, 2) < 0)
        _exit(111);
    /* Code is loaded with our own rights, before any switch to --user: a
     * module only root can read still works (SPEC §4). */
    if (req->exec_argv == NULL && req->child_prepare != NULL) {
        int rc = req->child_prepare(req->child_arg, &keep);
        if (rc != 0)
            _exit(rc);
    }
    if (req->sandbox != NULL
        && fp_sandbox_enter(req->sandbox, req->exec_argv != NULL, &why) < 0) {
        fprintf(stderr, "forkpool worker: sandbox: %s: %s\n", why, strerror(errno));
        _exit(111);
    }
    /* Die with the master, and close the race where it died before the
     * prctl: then our parent is already someone else.  Set after the
     * sandbox, since changing credentials clears it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != master)
        _exit(111);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (req->exec_argv != NULL) {
        /* The program speaks the protocol on stdin/stdout; stderr stays
         * the daemon's log. */
        if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0)
            _exit(111);
        fp_close_fds_from(3);
        execvp(req->exec_argv[0], req->exec_argv);
        fprintf(stderr, "forkpool worker %ld: cannot exec %s: %s\n",
                (long)getpid(), req->exec_argv[0], strerror(errno));
        _exit(127);
    }

    /* Module worker: socket on FP_WORKER_FD, stdin from /dev/null, stdout
     * joins stderr so a handler's printf lands in the log, not on the wire. */
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(2, 1);
    /* The fd prepare kept goes above the socket first: it may sit where
     * the socket goes. */
    if (keep >= 0 && keep <= FP_WORKER_KEEP_FD
        && (keep = fcntl(keep, F_DUPFD_CLOEXEC, FP_WORKER_KEEP_FD + 1)) < 0)
        _exit(111);
    if (sock != FP_WORKER_FD && dup2(sock, FP_WORKER_FD) < 0)
        _exit(111);
    if (keep >= 0 && dup3(keep, FP_WORKER_KEEP_FD, O_CLOEXEC) < 0)
        _exit(111);
    fp_close_fds_from(keep >= 0 ? FP_WORKER_KEEP_FD + 1 : FP_WORKER_FD + 1);
    _exit(req->child_main(FP_WORKER_FD, req->child_arg));
}

pid_t
fp_spawn(const struct fp_spawn_req *req, int *fd, int *errfd)
{
    int sv[2], ep[2];
    sigset_t all, old;
    pid_t master = getpid();
    pid_t pid;

    if (pipe2(ep, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        close(ep[0]);
        close(ep[1]);
        errno = e;
        return -1;
    }
    set_sockbuf(sv[0], req->sockbuf);
    set_sockbuf(sv[1], req->sockbuf);
    /* Only our end is nonblocking: the worker writes its stderr blocking. */
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(ep[1], F_SETFL, 0) < 0)
        goto fail;

    /* Block signals across fork so no handler of the master's (libev's)
     * runs in the child before its dispositions are reset. */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        close(ep[0]);
        child_start(req, sv[1], ep[1], master);
    }
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        errno = saved;
        goto fail;
    }
    close(sv[1]);
    close(ep[1]);
    *fd = sv[0];
    *errfd = ep[0];
    return pid;

fail:
    saved = errno;
    close(sv[0]);
    close(sv[1]);
    close(ep[0]);
    close(ep[1]);
    errno = saved;
    return -1;
}
