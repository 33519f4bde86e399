/*
 * builtin_cmd.c — the `cmd` builtin: run a command as a child of the worker.
 *
 * Job:    {"argv": [str, ...], "stdin": str|bin?, "env": {name: str|nil}?}
 * Result: {"exit": int, "signal": str|nil, "stdout": str|bin, "stderr": str|bin}
 *
 * The command runs in the worker's process group (so killing the worker's
 * group on a timeout or cancel takes it and its children along) with default
 * signal dispositions, an empty mask, and only stdin/stdout/stderr open.  "env"
 * entries are added to (str) or removed from (nil) the worker's environment.
 * Output that is valid UTF-8 comes back as str, anything else as bin.  A
 * command killed by a signal reports exit 128+N and names the signal.  The
 * job's outcome is ok whenever the command ran, whatever its exit status;
 * it is error only for a malformed job or a command that cannot be started.
 *
 * The job ends when the command exits: what it left running in the
 * background (`sleep 300 &`, a daemon that forked away) is not waited for,
 * even while it holds stdout open; its output up to then is kept, and the
 * worker's sweep after the job (descendants.h) kills it.
 */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec/buf.h"
#include "builtin.h"
#include "engine/log.h"
#include "engine/spawn.h"

/* Each captured stream is cut off here; the rest is read and dropped. */
#define OUTPUT_MAX (32u << 20)

struct cmd_job {
    char  **argv;
    const char *stdin_data;
    size_t  stdin_len;
    const msgpack_object_map *env;
};

static int
fail(msgpack_packer *out, const char *msg)
{
    fp_pack_cstr(out, msg);
    return 1;
}

static int
key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n
        && memcmp(k->via.str.ptr, name, n) == 0;
}

static char *
dup_str(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, 0, o->via.str.size))
        return NULL;
    return strndup(o->via.str.ptr, o->via.str.size);
}

static void
free_argv(char **argv)
{
    if (argv == NULL)
        return;
    for (char **a = argv; *a != NULL; a++)
        free(*a);
    free(argv);
}

/* Validate the job map; returns NULL or a message for the error outcome. */
static const char *
parse_job(const msgpack_object *job, struct cmd_job *cj)
{
    memset(cj, 0, sizeof(*cj));
    if (job->type != MSGPACK_OBJECT_MAP)
        return "cmd job must be a map with \"argv\"";
    for (uint32_t i = 0; i < job->via.map.size; i++) {
        const msgpack_object *k = &job->via.map.ptr[i].key;
        const msgpack_object *v = &job->via.map.ptr[i].val;
        if (key_is(k, "argv")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0)
                return "\"argv\" must be a non-empty array of strings";
            free_argv(cj->argv);
            cj->argv = calloc(v->via.array.size + 1, sizeof(char *));
            if (cj->argv == NULL)
                return "out of memory";
            for (uint32_t j = 0; j < v->via.array.size; j++)
                if ((cj->argv[j] = dup_str(&v->via.array.ptr[j])) == NULL)
                    return "\"argv\" must be a non-empty array of strings";
        } else if (key_is(k, "stdin")) {
            if (v->type == MSGPACK_OBJECT_STR) {
                cj->stdin_data = v->via.str.ptr;
                cj->stdin_len = v->via.str.size;
            } else if (v->type == MSGPACK_OBJECT_BIN) {
                cj->stdin_data = v->via.bin.ptr;
                cj->stdin_len = v->via.bin.size;
            } else if (v->type != MSGPACK_OBJECT_NIL) {
                return "\"stdin\" must be a string or binary";
            }
        } else if (key_is(k, "env")) {
            if (v->type == MSGPACK_OBJECT_NIL)
                continue;
            if (v->type != MSGPACK_OBJECT_MAP)
                return "\"env\" must be a map of strings";
            for (uint32_t j = 0; j < v->via.map.size; j++) {
                const msgpack_object *ek = &v->via.map.ptr[j].key;
                const msgpack_object *ev = &v->via.map.ptr[j].val;
                if (ek->type != MSGPACK_OBJECT_STR || ek->via.str.size == 0
                    || memchr(ek->via.str.ptr, '=', ek->via.str.size)
                    || memchr(ek->via.str.ptr, 0, ek->via.str.size)
                    || (ev->type != MSGPACK_OBJECT_STR && ev->type != MSGPACK_OBJECT_NIL)
                    || (ev->type == MSGPACK_OBJECT_STR
                        && memchr(ev->via.str.ptr, 0, ev->via.str.size)))
                    return "\"env\" must map variable names to strings or nil";
            }
            cj->env = &v->via.map;
        } else {
            return "unknown key in cmd job (expected argv, stdin, env)";
        }
    }
    if (cj->argv == NULL)
        return "cmd job must be a map with \"argv\"";
    return NULL;
}

static void
apply_env(const msgpack_object_map *env)
{
    for (uint32_t j = 0; env != NULL && j < env->size; j++) {
        const msgpack_object *k = &env->ptr[j].key;
        const msgpack_object *v = &env->ptr[j].val;
        char *name = strndup(k->via.str.ptr, k->via.str.size);
        if (name == NULL)
            continue;
        if (v->type == MSGPACK_OBJECT_NIL) {
            unsetenv(name);
        } else {
            char *val = strndup(v->via.str.ptr, v->via.str.size);
            if (val != NULL)
                setenv(name, val, 1);
            free(val);
        }
        free(name);
    }
}

/* In the forked command child; never returns.  errfd reports exec failure. */
static void __attribute__((noreturn))
exec_child(const struct cmd_job *cj, int in, int out, int err, int errfd)
{
    int e;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fp_reset_signals();
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(127);
    /* errfd is close-on-exec: it closes by itself if exec succeeds. */
    if (errfd < 3 || dup2(errfd, 3) < 0)
        _exit(127);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    fp_close_fds_from(4);
    apply_env(cj->env);
    execvp(cj->argv[0], cj->argv);
    e = errno;
    (void)!write(3, &e, sizeof(e));
    _exit(127);
}

static int
valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0)      { len = 2; min = 0x80;    c &= 0x1f; }
        else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800;   c &= 0x0f; }
        else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
        else return 0;
        if (i + len > n)
            return 0;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            c = (c << 6) | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

static void
pack_output(msgpack_packer *pk, const struct fp_buf *b)
{
    const char *p = fp_buf_head(b);
    if (valid_utf8((const unsigned char *)p, b->len)) {
        msgpack_pack_str(pk, b->len);
        msgpack_pack_str_body(pk, p, b->len);
    } else {
        msgpack_pack_bin(pk, b->len);
        msgpack_pack_bin_body(pk, p, b->len);
    }
}

/* Read what is available on fd into b (capped); returns 0 at EOF, 1 else. */
static int
drain_fd(int fd, struct fp_buf *b)
{
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    size_t keep = b->len >= OUTPUT_MAX ? 0 : OUTPUT_MAX - b->len;
    fp_buf_append(b, tmp, (size_t)n < keep ? (size_t)n : keep);
    return 1;
}

/* A pidfd for our child `pid` (readable once it has exited), or -1 where
 * the kernel has none (before 5.3). */
static int
child_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/* The command has exited: take what its pipe holds now and no more (a
 * process it left behind may keep the pipe open forever). */
static void
drain_now(int fd, struct fp_buf *b)
{
    char tmp[65536];

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    /* Bounded: a pipe holds at most 1 MiB, and whatever still writes to
     * it after the command's end is not the command's output. */
    for (int i = 0; i < 32; i++) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;      /* EOF, or nothing more now */
        size_t keep = b->len >= OUTPUT_MAX ? 0 : OUTPUT_MAX - b->len;
        fp_buf_append(b, tmp, (size_t)n < keep ? (size_t)n : keep);
    }
    close(fd);
}

/* Feed stdin and collect stdout/stderr until both close, or until the
 * command (pidfd, if >= 0) exits. */
static void
pump(int in, int out, int err, int pidfd, const struct cmd_job *cj,
     struct fp_buf *obuf, struct fp_buf *ebuf)
{
    size_t written = 0;

    if (cj->stdin_len == 0) {
        close(in);
        in = -1;
    }
    while (out >= 0 || err >= 0) {
        struct pollfd p[4] = {
            { .fd = out, .events = POLLIN },
            { .fd = err, .events = POLLIN },
            { .fd = in,  .events = POLLOUT },
            { .fd = pidfd, .events = POLLIN },
        };
        if (poll(p, 4, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[3].revents) {
            /* It has exited: everything it wrote is in the pipes. */
            if (out >= 0)
                drain_now(out, obuf);
            if (err >= 0)
                drain_now(err, ebuf);
            out = err = -1;
            break;
        }
        if (p[0].revents && !drain_fd(out, obuf)) { close(out); out = -1; }
        if (p[1].revents && !drain_fd(err, ebuf)) { close(err); err = -1; }
        if (in >= 0 && p[2].revents) {
            ssize_t n = write(in, cj->stdin_data + written, cj->stdin_len - written);
            if (n > 0)
                written += (size_t)n;
            if ((n < 0 && errno != EINTR && errno != EAGAIN) || written == cj->stdin_len) {
                close(in);
                in = -1;
            }
        }
    }
    if (in >= 0)
        close(in);
}

static int
cmd_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    struct cmd_job cj;
    int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
    int pexec[2] = { -1, -1 };
    struct fp_buf obuf = FP_BUF_INIT, ebuf = FP_BUF_INIT;
    char msg[512];
    int rc = 1, status = 0, exec_errno = 0;
    pid_t pid;
    (void)state;

    const char *bad = parse_job(job, &cj);
    if (bad != NULL) {
        free_argv(cj.argv);
        return fail(out, bad);
    }
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0
        || pipe2(perr, O_CLOEXEC) < 0 || pipe2(pexec, O_CLOEXEC) < 0) {
        snprintf(msg, sizeof(msg), "cannot create pipes: %s", strerror(errno));
        rc = fail(out, msg);
        goto done;
    }
    /* A command that exits without reading its stdin must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    pid = fork();
    if (pid < 0) {
        snprintf(msg, sizeof(msg), "cannot fork: %s", strerror(errno));
        rc = fail(out, msg);
        goto done;
    }
    if (pid == 0)
        exec_child(&cj, pin[0], pout[1], perr[1], pexec[1]);

    close(pin[0]); close(pout[1]); close(perr[1]); close(pexec[1]);
    pin[0] = pout[1] = perr[1] = pexec[1] = -1;
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    int pidfd = child_pidfd(pid);
    pump(pin[1], pout[0], perr[0], pidfd, &cj, &obuf, &ebuf);
    pin[1] = pout[0] = perr[0] = -1;    /* pump closed them */
    if (pidfd >= 0)
        close(pidfd);

    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (read(pexec[0], &exec_errno, sizeof(exec_errno)) == sizeof(exec_errno)) {
        snprintf(msg, sizeof(msg), "cannot execute %s: %s", cj.argv[0],
                 strerror(exec_errno));
        rc = fail(out, msg);
        goto done;
    }

    char sig[32];
    msgpack_pack_map(out, 4);
    fp_pack_cstr(out, "exit");
    msgpack_pack_int(out, WIFEXITED(status) ? WEXITSTATUS(status)
                                            : 128 + WTERMSIG(status));
    fp_pack_cstr(out, "signal");
    if (WIFSIGNALED(status))
        fp_pack_cstr(out, fp_signame(WTERMSIG(status), sig, sizeof(sig)));
    else
        msgpack_pack_nil(out);
    fp_pack_cstr(out, "stdout");
    pack_output(out, &obuf);
    fp_pack_cstr(out, "stderr");
    pack_output(out, &ebuf);
    rc = 0;

done:
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0) close(pin[i]);
        if (pout[i] >= 0) close(pout[i]);
        if (perr[i] >= 0) close(perr[i]);
        if (pexec[i] >= 0) close(pexec[i]);
    }
    fp_buf_free(&obuf);
    fp_buf_free(&ebuf);
    free_argv(cj.argv);
    return rc;
}

const fp_module fp_builtin_cmd = {
    .abi = FP_MODULE_ABI,
    .name = "cmd",
    .handle = cmd_handle,
};
