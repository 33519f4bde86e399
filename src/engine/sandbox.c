/* sandbox.c — worker confinement (see sandbox.h). */
#define _GNU_SOURCE 1
#include "config.h"
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <seccomp.h>

#include "sandbox.h"

/* ------------------------------------------------------------------------
 * In the master
 * ------------------------------------------------------------------------ */

/* Look up `user` into sb (uid, gid, supplementary groups). */
static int
resolve_user(struct fp_sandbox *sb, const char *user, char *err, size_t errlen)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    int n = 0;

    errno = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
    if (found == NULL) {
        snprintf(err, errlen, "no such user: %s", user);
        return -1;
    }
    sb->uid = pw.pw_uid;
    sb->gid = pw.pw_gid;
    /* Resolved once here: NSS lookups do not belong in a forked child. */
    getgrouplist(user, pw.pw_gid, NULL, &n);
    sb->groups = calloc((size_t)n + 1, sizeof(gid_t));
    if (sb->groups == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sb->ngroups = n + 1;
    if (getgrouplist(user, pw.pw_gid, sb->groups, &sb->ngroups) < 0) {
        sb->groups[0] = pw.pw_gid;
        sb->ngroups = 1;
    }
    return 0;
}

int
fp_sandbox_prepare(struct fp_sandbox *sb, const fp_config *cfg,
                   const struct fp_logger *log, char *err, size_t errlen)
{
    memset(sb, 0, sizeof(*sb));
    sb->level = cfg->sandbox;
    if (sb->level != FP_SANDBOX_NONE && sb->level != FP_SANDBOX_BASIC
        && sb->level != FP_SANDBOX_STRICT) {
        snprintf(err, errlen, "unknown sandbox level %d", cfg->sandbox);
        return -1;
    }
    if (sb->level == FP_SANDBOX_STRICT && cfg->exec_argv != NULL) {
        /* The allowlist is loaded by forkpool's own job loop; an exec'd
         * program runs its own loop and could not even start under it. */
        snprintf(err, errlen, "the strict sandbox needs a module handler, not "
                 "an exec worker");
        return -1;
    }
    sb->rlimit_as = cfg->rlimit_as;
    sb->rlimit_cpu = cfg->rlimit_cpu;
    sb->rlimit_nofile = cfg->rlimit_nofile;
    /* A backstop for a handler that ignores SIGXCPU or raises its own soft
     * limit; the worker retires once it has used half of it. */
    sb->cpu_hard = 32ul * cfg->rlimit_cpu + 32;
    if (cfg->user != NULL && cfg->user[0] != '\0') {
        if (resolve_user(sb, cfg->user, err, errlen) < 0)
            return -1;
        if (geteuid() != 0) {
            if (sb->uid != geteuid())
                fp_logf(log, FP_LOG_WARN, "user %s ignored: only a master "
                        "started as root can run workers as another user",
                        cfg->user);
        } else if (sb->uid == 0) {
            snprintf(err, errlen, "user %s is root: workers must run as an "
                     "unprivileged user", cfg->user);
            fp_sandbox_free(sb);
            return -1;
        } else {
            sb->drop = 1;
        }
    }
    return 0;
}

/* Can a child create a network namespace this way? */
static int
probe_netns(int flags)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return 0;
    if (pid == 0)
        _exit(unshare(flags) == 0 ? 0 : 1);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void
fp_sandbox_activate(struct fp_sandbox *sb, const struct fp_logger *log)
{
    if (sb->level == FP_SANDBOX_NONE)
        return;
    /* No core file, no ptrace or /proc/pid/mem from a same-uid process.
     * Workers forked after this inherit it too, until they exec. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fp_logf(log, FP_LOG_WARN, "cannot mark the master non-dumpable: %s",
                strerror(errno));
    if (sb->level != FP_SANDBOX_STRICT)
        return;
    if (probe_netns(CLONE_NEWNET))
        sb->netns = FP_NETNS_PLAIN;
    else if (!sb->drop && probe_netns(CLONE_NEWUSER | CLONE_NEWNET))
        sb->netns = FP_NETNS_USERNS;
    else
        fp_logf(log, FP_LOG_WARN, "strict sandbox: workers keep the host's "
                "network: this kernel refuses a new network namespace here "
                "(unprivileged user namespaces disabled?); seccomp still "
                "forbids them sockets");
}

void
fp_sandbox_free(struct fp_sandbox *sb)
{
    free(sb->groups);
    sb->groups = NULL;
    sb->ngroups = 0;
}

/* ------------------------------------------------------------------------
 * In the worker
 * ------------------------------------------------------------------------ */

static int
set_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = { soft, hard };
    return setrlimit(resource, &rl);
}

int
fp_sandbox_enter(const struct fp_sandbox *sb, int exec, const char **why)
{
    if (sb->rlimit_as > 0
        && set_limit(RLIMIT_AS, sb->rlimit_as, sb->rlimit_as) != 0) {
        *why = "cannot set --rlimit-as";
        return -1;
    }
    if (sb->rlimit_nofile > 0
        && set_limit(RLIMIT_NOFILE, sb->rlimit_nofile, sb->rlimit_nofile) != 0) {
        *why = "cannot set --rlimit-nofile";
        return -1;
    }
    /* Our own job loop moves the soft limit before each job; a foreign
     * program gets the plain per-process budget, SIGKILL one second on. */
    if (sb->rlimit_cpu > 0
        && set_limit(RLIMIT_CPU, sb->rlimit_cpu,
                     exec ? sb->rlimit_cpu + 1 : sb->cpu_hard) != 0) {
        *why = "cannot set --rlimit-cpu";
        return -1;
    }
    /* While still privileged: a plain network namespace needs root. */
    if (sb->netns == FP_NETNS_PLAIN && unshare(CLONE_NEWNET) != 0) {
        *why = "cannot create a network namespace";
        return -1;
    }
    if (sb->drop) {
        if (setgroups((size_t)sb->ngroups, sb->groups) != 0
            || setgid(sb->gid) != 0 || setuid(sb->uid) != 0) {
            *why = "cannot switch to the worker user";
            return -1;
        }
        /* Paranoia, as OpenSSH does: the drop must be one-way. */
        if (setuid(0) == 0) {
            errno = EPERM;
            *why = "could regain root after switching user";
            return -1;
        }
    }
    if (sb->netns == FP_NETNS_USERNS
        && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
        *why = "cannot create a network namespace";
        return -1;
    }
    if (sb->level != FP_SANDBOX_NONE && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *why = "cannot set no_new_privs";
        return -1;
    }
    return 0;
}

/* Add one rule; remember the first failure. */
#define ALLOW(ctx, rc, name, ...) \
    do { \
        if ((rc) == 0) \
            (rc) = seccomp_rule_add((ctx), SCMP_ACT_ALLOW, SCMP_SYS(name), \
                                    __VA_ARGS__); \
    } while (0)

int
fp_sandbox_lock(const struct fp_sandbox *sb, int sock, int peak_fd,
                const char **why)
{
    scmp_filter_ctx ctx;
    pid_t self = getpid();
    int rc = 0;

    if (sb->level != FP_SANDBOX_STRICT)
        return 0;
    /* Anything not listed kills the whole process (not only the thread), so
     * the master sees "killed by SIGSYS". */
    ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == NULL) {
        errno = ENOMEM;
        *why = "cannot create the seccomp filter";
        return -1;
    }
    /* I/O: jobs in on the socket; results out on it; log lines on stderr
     * (stdout is joined to it). */
    ALLOW(ctx, rc, read, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sock));
    /* The job loop waits for jobs in poll (worker_loop.c); ppoll is how
     * libc's poll reaches kernels with no poll call (arm64). */
    ALLOW(ctx, rc, poll, 0);
    ALLOW(ctx, rc, ppoll, 0);
    ALLOW(ctx, rc, write, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sock));
    ALLOW(ctx, rc, write, 1, SCMP_A0(SCMP_CMP_EQ, 1));
    ALLOW(ctx, rc, write, 1, SCMP_A0(SCMP_CMP_EQ, 2));
    /* stdio asks what its fds are before it buffers them. */
    ALLOW(ctx, rc, fstat, 0);
    ALLOW(ctx, rc, newfstatat, 1, SCMP_A0(SCMP_CMP_EQ, 1));
    ALLOW(ctx, rc, newfstatat, 1, SCMP_A0(SCMP_CMP_EQ, 2));
    /* Memory. */
    ALLOW(ctx, rc, brk, 0);
    ALLOW(ctx, rc, mmap, 0);
    ALLOW(ctx, rc, munmap, 0);
    ALLOW(ctx, rc, mremap, 0);
    ALLOW(ctx, rc, madvise, 0);
    ALLOW(ctx, rc, mprotect, 0);
    /* Time. */
    ALLOW(ctx, rc, clock_gettime, 0);
    ALLOW(ctx, rc, clock_getres, 0);
    ALLOW(ctx, rc, gettimeofday, 0);
    ALLOW(ctx, rc, time, 0);
    ALLOW(ctx, rc, nanosleep, 0);
    ALLOW(ctx, rc, clock_nanosleep, 0);
    /* The CPU the worker runs on (meter.c; glibc reads it from the rseq
     * area, or the vDSO, and falls back to the system call). */
    ALLOW(ctx, rc, getcpu, 0);
    /* Process: exit, and signals to itself only (abort, raise). */
    ALLOW(ctx, rc, exit, 0);
    ALLOW(ctx, rc, exit_group, 0);
    ALLOW(ctx, rc, rt_sigreturn, 0);
    ALLOW(ctx, rc, rt_sigprocmask, 0);
    ALLOW(ctx, rc, sigaltstack, 0);     /* sanitizer runtimes, on abort */
    ALLOW(ctx, rc, restart_syscall, 0);
    ALLOW(ctx, rc, getpid, 0);
    ALLOW(ctx, rc, gettid, 0);
    ALLOW(ctx, rc, kill, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
    ALLOW(ctx, rc, tgkill, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
    ALLOW(ctx, rc, tkill, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self));
    ALLOW(ctx, rc, futex, 0);
    ALLOW(ctx, rc, sched_yield, 0);
    ALLOW(ctx, rc, getrandom, 0);
    /* Our own CPU time and peak memory: each job's receipt (meter.h), and
     * fp_sandbox_job_cpu; the peak restarts through /proc/self/clear_refs,
     * opened before the lock. */
    ALLOW(ctx, rc, getrusage, 0);
    if (peak_fd >= 0)
        ALLOW(ctx, rc, write, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)peak_fd));
    if (sb->rlimit_cpu > 0) {
        /* fp_sandbox_job_cpu: move our CPU limit. */
        ALLOW(ctx, rc, prlimit64, 2, SCMP_A0(SCMP_CMP_EQ, 0),
              SCMP_A1(SCMP_CMP_EQ, RLIMIT_CPU));
    }
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0) {
        errno = -rc;
        *why = "cannot load the seccomp filter";
        return -1;
    }
    return 0;
}

int
fp_sandbox_job_cpu(const struct fp_sandbox *sb)
{
    struct rusage ru;

    if (sb->rlimit_cpu == 0 || getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    double used = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
                + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    rlim_t soft = (rlim_t)used + 1 + sb->rlimit_cpu;
    if (soft > sb->cpu_hard)
        soft = sb->cpu_hard;
    (void)set_limit(RLIMIT_CPU, soft, sb->cpu_hard);
    return used * 2 >= (double)sb->cpu_hard;
}
