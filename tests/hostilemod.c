/*
 * hostilemod.c — a handler module that tries to break out of its worker,
 * for the sandbox tests (check_sandbox.c).
 *
 * Job {"op": OP, ...}; each op attempts one escape and, if the attempt
 * was not stopped, returns ok with what it achieved, so a test can tell a
 * stopped attempt (the worker killed by SIGSYS, or an error result) from
 * a successful one.
 *   "open"      open /etc/passwd for reading
 *   "socket"    create a TCP socket
 *   "ctl"       connect to the control socket at "path" and send
 *               scale 10000; result: the raw reply size
 *   "killppid"  kill(getppid(), SIGKILL): the master
 *   "killall"   kill(-1, SIGKILL): everything the uid may signal.  Refuses
 *               unless the job says "sure": true (tests run it only as an
 *               unprivileged user under strict)
 *   "ptrace"    PTRACE_ATTACH to "pid" (a sibling worker)
 *   "vmread"    process_vm_readv 16 bytes of "pid"'s stack area
 *   "exec"      execve /bin/true
 *   "fork"      fork (the child exits at once)
 *   "whoami"    result: {"uid": getuid(), "gid": getgid()}
 *   "cpu"       result: soft RLIMIT_CPU, to show a per-job limit moves
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include "forkpool.h"
#include "modutil.h"

static long
get_int(const msgpack_object *job, const char *key)
{
    const msgpack_object *v = get(job, key);
    return v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (long)v->via.u64 : -1;
}

/* The attempt failed without killing us: an error naming errno. */
static int
refused(msgpack_packer *out, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: %s", what, strerror(errno));
    pack_cstr(out, msg);
    return 1;
}

/* Connect to the control socket and ask for 10000 workers. */
static int
scale_via_control(const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *p = get(job, "path");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    /* [0, 1, "scale", [10000]] */
    static const char req[] = "\x94\x00\x01\xa5scale\x91\xcd\x27\x10";
    char reply[256];
    int fd;

    if (p == NULL || p->type != MSGPACK_OBJECT_STR || p->via.str.size >= sizeof(sa.sun_path))
        return pack_cstr(out, "no path"), 1;
    memcpy(sa.sun_path, p->via.str.ptr, p->via.str.size);
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
        return refused(out, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return refused(out, "connect");
    }
    (void)!write(fd, req, sizeof(req) - 1);
    ssize_t n = read(fd, reply, sizeof(reply));
    close(fd);
    if (n <= 0)
        return pack_cstr(out, "connection closed by the daemon"), 1;
    msgpack_pack_int64(out, n);
    return 0;
}

static int
hostile_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    const msgpack_object *op = get(job, "op");
    (void)state;

    if (is(op, "open")) {
        int fd = open("/etc/passwd", O_RDONLY);
        if (fd < 0)
            return refused(out, "open");
        close(fd);
        return pack_cstr(out, "opened /etc/passwd");
    } else if (is(op, "socket")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return refused(out, "socket");
        close(fd);
        return pack_cstr(out, "made a socket");
    } else if (is(op, "ctl")) {
        return scale_via_control(job, out);
    } else if (is(op, "killppid")) {
        if (kill(getppid(), SIGKILL) < 0)
            return refused(out, "kill");
        return pack_cstr(out, "killed the master");
    } else if (is(op, "killall")) {
        const msgpack_object *sure = get(job, "sure");
        if (sure == NULL || sure->type != MSGPACK_OBJECT_BOOLEAN || !sure->via.boolean)
            return pack_cstr(out, "not sure"), 1;
        if (kill(-1, SIGKILL) < 0)
            return refused(out, "kill");
        return pack_cstr(out, "killed everything");
    } else if (is(op, "ptrace")) {
        pid_t pid = (pid_t)get_int(job, "pid");
        if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
            return refused(out, "ptrace");
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        return pack_cstr(out, "attached to a sibling");
    } else if (is(op, "vmread")) {
        pid_t pid = (pid_t)get_int(job, "pid");
        char buf[16];
        /* Our own stack address: the sibling is a fork of the same master,
         * so the same address is mapped there. */
        struct iovec local = { buf, sizeof(buf) }, remote = { &buf, sizeof(buf) };
        if (process_vm_readv(pid, &local, 1, &remote, 1, 0) < 0)
            return refused(out, "process_vm_readv");
        return pack_cstr(out, "read a sibling's memory");
    } else if (is(op, "exec")) {
        char *argv[] = { "/bin/true", NULL };
        execv(argv[0], argv);
        return refused(out, "execve");
    } else if (is(op, "fork")) {
        pid_t pid = fork();
        if (pid < 0)
            return refused(out, "fork");
        if (pid == 0)
            _exit(0);
        waitpid(pid, NULL, 0);
        return pack_cstr(out, "forked");
    } else if (is(op, "whoami")) {
        msgpack_pack_map(out, 2);
        pack_cstr(out, "uid");
        msgpack_pack_int64(out, getuid());
        pack_cstr(out, "gid");
        msgpack_pack_int64(out, getgid());
        return 0;
    } else if (is(op, "cpu")) {
        struct rlimit rl;
        getrlimit(RLIMIT_CPU, &rl);
        msgpack_pack_uint64(out, rl.rlim_cur);
        return 0;
    }
    return pack_cstr(out, "unknown op"), 1;
}

const fp_module forkpool_module = {
    .abi = FP_MODULE_ABI,
    .name = "hostilemod",
    .handle = hostile_handle,
};
