/*
 * sandbox.h — worker confinement (SPEC §5.1): resource limits, privilege
 * drop, no_new_privs, a network namespace and a seccomp allowlist.
 *
 * The master prepares a struct fp_sandbox once (fp_sandbox_prepare: resolve
 * the user, probe for network namespaces, mark itself non-dumpable).  Each
 * forked worker then calls, in order:
 *   fp_sandbox_enter()   right after fork, before it execs or loads code;
 *   fp_sandbox_lock()    (strict, module workers) after the handler's init,
 *                        before the first job;
 *   fp_sandbox_job_cpu() before each job when --rlimit-cpu is set.
 */
#ifndef FP_SANDBOX_H
#define FP_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>
#include "forkpool.h"
#include "log.h"

/* How a strict worker gets its own network namespace. */
enum fp_netns { FP_NETNS_NONE = 0, FP_NETNS_PLAIN, FP_NETNS_USERNS };

struct fp_sandbox {
    int           level;        /* FP_SANDBOX_* */
    size_t        rlimit_as;    /* bytes; 0 = leave alone */
    unsigned      rlimit_cpu;   /* seconds per job; 0 = leave alone */
    unsigned      rlimit_nofile;/* 0 = leave alone */
    unsigned long cpu_hard;     /* RLIMIT_CPU hard backstop (module workers) */
    int           drop;         /* switch to uid/gid after fork */
    uid_t         uid;
    gid_t         gid;
    gid_t        *groups;       /* supplementary groups of the user */
    int           ngroups;
    enum fp_netns netns;        /* strict: how to unshare the network */
};

/* Check and resolve the sandbox part of `cfg` into `sb` (which the caller
 * frees with fp_sandbox_free).  Returns 0, or -1 with a message in err. */
int fp_sandbox_prepare(struct fp_sandbox *sb, const fp_config *cfg,
                       const struct fp_logger *log, char *err, size_t errlen);

/* At pool start, in the master: mark the master non-dumpable (basic and
 * strict) and find out whether strict workers can get a network namespace,
 * logging once when they cannot. */
void fp_sandbox_activate(struct fp_sandbox *sb, const struct fp_logger *log);

void fp_sandbox_free(struct fp_sandbox *sb);

/* In the child, right after fork.  `exec` is nonzero for an --exec worker
 * (its CPU limit is then the plain per-process one).  Returns 0, or -1 with
 * *why set (errno holds the cause). */
int fp_sandbox_enter(const struct fp_sandbox *sb, int exec, const char **why);

/* In a strict module worker: load the seccomp allowlist.  `sock` is the
 * worker's socket, `peak_fd` its /proc/self/clear_refs (meter.h; -1 if
 * none).  Returns 0, or -1 with *why set. */
int fp_sandbox_lock(const struct fp_sandbox *sb, int sock, int peak_fd,
                    const char **why);

/* Before each job, with --rlimit-cpu: give the job rlimit_cpu seconds of CPU
 * from now (the soft limit moves; the kernel sends SIGXCPU past it).
 * Returns 1 once the worker has used half its hard backstop and should be
 * replaced after this job, else 0. */
int fp_sandbox_job_cpu(const struct fp_sandbox *sb);

#endif
