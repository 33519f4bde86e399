/*
 * harness.c — process, socket and msgpack helpers for the integration tests
 * (see harness.h).
 */
#include "config.h"
#include <check.h>
#include <jansson.h>
#include <msgpack.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_TRACKED 64
#define READ_CHUNK  65536

/* ------------------------------------------------------------------------
 * What teardown must undo.  Check runs each test in its own process, so
 * these lists are per test.
 * ------------------------------------------------------------------------ */

static struct h_daemon *daemons[MAX_TRACKED];
static size_t ndaemons;
static struct h_rpc *clients[MAX_TRACKED];
static size_t nclients;
static char *dirs[MAX_TRACKED];
static size_t ndirs;
static char rundir[32] = "/tmp";    /* h_suite_begin's directory */
static void **kept;             /* strings handed to tests */
static size_t nkept, capkept;
static int atexit_done;

static void *
keep(void *p)
{
    if (nkept == capkept) {
        capkept = capkept ? capkept * 2 : 64;
        kept = realloc(kept, capkept * sizeof(*kept));
        ck_assert_ptr_nonnull(kept);
    }
    kept[nkept++] = p;
    return p;
}

/* First use in a test process: clean up at exit too, and survive writing
 * to a child that has gone (its stdin pipe). */
static void
track_exit(void)
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

/* Milliseconds left until deadline (never negative). */
static int
left_ms(int64_t deadline)
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
    track_exit();
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

static void log_read(struct h_daemon *d);

int
h_wait_readable(int fd, int timeout_ms, struct h_daemon *d)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = d != NULL ? d->errfd : -1, .events = POLLIN },
        };
        int n = poll(pfd, 2, left_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_msg(n >= 0, "poll: %s", strerror(errno));
        if (pfd[1].revents != 0)
            log_read(d);
        if (pfd[0].revents != 0)
            return 1;
        if (left_ms(deadline) == 0)
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
 * The daemon
 * ------------------------------------------------------------------------ */

/* Read what its stderr holds now (nonblocking). */
static void
log_read(struct h_daemon *d)
{
    while (d->errfd >= 0) {
        if (d->logcap - d->loglen < READ_CHUNK + 1) {
            d->logcap = d->logcap * 2 + READ_CHUNK + 1;
            d->log = realloc(d->log, d->logcap);
            ck_assert_ptr_nonnull(d->log);
        }
        ssize_t n = read(d->errfd, d->log + d->loglen, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)      /* EAGAIN */
            break;
        if (n == 0) {
            close(d->errfd);
            d->errfd = -1;
            break;
        }
        d->loglen += (size_t)n;
        d->log[d->loglen] = '\0';
    }
}

void
h_daemon_pump(struct h_daemon *d, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    do {
        struct pollfd pfd = { .fd = d->errfd, .events = POLLIN };
        if (d->errfd < 0)
            return;
        int n = poll(&pfd, 1, left_ms(deadline));
        if (n > 0)
            log_read(d);
    } while (left_ms(deadline) > 0);
}

/* The first complete line at or after `from` that contains needle. */
static const char *
find_line(const struct h_daemon *d, const char *needle, size_t from)
{
    const char *p = d->log != NULL && from < d->loglen ? d->log + from : NULL;

    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        if (strchr(p, '\n') != NULL)
            return p;
        p = NULL;   /* the line is not complete yet */
    }
    return NULL;
}

int
h_log_count(const struct h_daemon *d, const char *needle)
{
    int n = 0;
    const char *p = d->log;

    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        n++;
        p = nl + 1;
    }
    return n;
}

/* Reap the daemon if its pidfd says it has exited. */
static int
try_reap(struct h_daemon *d)
{
    if (d->reaped)
        return 1;
    if (!h_pidfd_exited(d->pidfd))
        return 0;
    while (waitpid(d->pid, &d->status, 0) < 0) {
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    }
    d->reaped = 1;
    log_read(d);        /* what it wrote before it died */
    return 1;
}

int
h_daemon_wait_log(struct h_daemon *d, const char *needle, size_t from,
                  int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        log_read(d);
        if (find_line(d, needle, from) != NULL)
            return 1;
        if (try_reap(d) || d->errfd < 0 || left_ms(deadline) == 0)
            return 0;
        struct pollfd pfd[2] = {
            { .fd = d->errfd, .events = POLLIN },
            { .fd = d->pidfd, .events = POLLIN },
        };
        if (poll(pfd, 2, left_ms(deadline)) < 0)
            ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
    }
}

void
h_daemon_kill(struct h_daemon *d, int sig)
{
    ck_assert_msg(!d->reaped, "signal %d to a daemon that already exited", sig);
    ck_assert_msg(kill(d->pid, sig) == 0, "kill: %s", strerror(errno));
}

int
h_daemon_wait(struct h_daemon *d, int timeout_ms)
{
    if (h_wait_readable(d->pidfd, timeout_ms, d) == 0 && !d->reaped)
        return -1;
    try_reap(d);
    return d->status;
}

int
h_daemon_alive(struct h_daemon *d)
{
    return !try_reap(d);
}

/* Child side of the daemon start: never returns. */
static void __attribute__((noreturn))
exec_daemon(const struct h_opts *o, const char *dir, int errw, char *const argv[])
{
    int devnull = open("/dev/null", O_RDWR);

    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0
        || dup2(errw, 2) < 0)
        _exit(126);
    if (o->listen_fd > 0) {
        char pid[32];
        if (o->listen_fd != 3 && dup2(o->listen_fd, 3) < 0)
            _exit(126);
        fcntl(3, F_SETFD, 0);
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_PID", pid, 1);
        close_range(4, ~0U, 0);
    } else {
        close_range(3, ~0U, 0);
    }
    for (size_t i = 0; o->env != NULL && o->env[i] != NULL; i++)
        putenv(o->env[i]);
    signal(SIGPIPE, SIG_DFL);
    if (o->umask >= 0)
        umask((mode_t)o->umask);
    if (o->core_unlimited) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_CORE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_CORE, &rl);
        }
    }
    if (dir != NULL && chdir(dir) < 0)
        _exit(126);
    execv(argv[0], argv);
    dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

struct h_daemon *
h_daemon_startv(const struct h_opts *o, char *const args[])
{
    struct h_daemon *d = calloc(1, sizeof(*d));
    const char *dir = NULL;
    char *argv[64];
    size_t n = 0;
    int p[2];

    ck_assert_ptr_nonnull(d);
    ck_assert_uint_lt(ndaemons, MAX_TRACKED);
    track_exit();
    if (o->sock != NULL) {
        snprintf(d->sock, sizeof(d->sock), "%s", o->sock);
        char *slash = strrchr(d->sock, '/');
        if (slash != NULL) {
            /* cwd for cores and the like: the socket's directory */
            static char sockdir[108];
            snprintf(sockdir, sizeof(sockdir), "%.*s", (int)(slash - d->sock),
                     d->sock);
            dir = sockdir[0] != '\0' ? sockdir : "/";
        }
    } else {
        dir = h_tempdir();
        snprintf(d->sock, sizeof(d->sock), "%s/s", dir);
    }
    argv[n++] = (char *)H_FORKPOOLD;
    if (!o->env_sock && !o->no_sock) {
        argv[n++] = (char *)"-s";
        argv[n++] = d->sock;
    }
    for (size_t i = 0; args[i] != NULL; i++) {
        ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    ck_assert_msg(pipe2(p, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
    /* Room for a burst of log lines even when no one is reading yet. */
    (void)fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
    d->pid = fork();
    ck_assert_msg(d->pid >= 0, "fork: %s", strerror(errno));
    if (d->pid == 0)
        exec_daemon(o, dir, p[1], argv);
    close(p[1]);
    d->errfd = p[0];
    fcntl(d->errfd, F_SETFL, O_NONBLOCK);
    d->pidfd = h_pidfd(d->pid);
    ck_assert_int_ge(d->pidfd, 0);
    daemons[ndaemons++] = d;
    if (o->no_wait)
        return d;
    if (!h_daemon_wait_log(d, "listening on", 0, H_READY_MS)) {
        fprintf(stderr, "harness: forkpoold did not become ready; its log:\n%s\n",
                d->log != NULL ? d->log : "");
        return NULL;
    }
    return d;
}

struct h_daemon *
h_daemon_start(const char *arg, ...)
{
    struct h_opts o = { .umask = -1 };
    char *args[64];
    size_t n = 0;
    va_list ap;

    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, sizeof(args) / sizeof(args[0]) - 1);
        args[n++] = (char *)a;
    }
    va_end(ap);
    args[n] = NULL;
    return h_daemon_startv(&o, args);
}

/* ------------------------------------------------------------------------
 * JSON <-> msgpack (jansson; independent of the project's own converter)
 * ------------------------------------------------------------------------ */

static void
pack_json(msgpack_packer *pk, json_t *v)
{
    const char *key;
    json_t *val;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach(v, key, val) {
            msgpack_pack_str_with_body(pk, key, strlen(key));
            pack_json(pk, val);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, val)
            pack_json(pk, val);
        break;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

static void
pack_json_text(msgpack_packer *pk, const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

    ck_assert_msg(v != NULL, "bad JSON in test: %s: %s", text, err.text);
    pack_json(pk, v);
    json_decref(v);
}

static json_t *
to_json(const msgpack_object *o)
{
    static const char hex[] = "0123456789abcdef";
    json_t *v = NULL;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        v = json_stringn(o->via.str.ptr, o->via.str.size);
        if (v != NULL)
            return v;
        /* not UTF-8: fall through to the bin form */
        /* FALLTHROUGH */
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT: {
        const char *p = o->type == MSGPACK_OBJECT_EXT ? o->via.ext.ptr : o->via.bin.ptr;
        size_t n = o->type == MSGPACK_OBJECT_EXT ? o->via.ext.size : o->via.bin.size;
        char *h = malloc(2 * n + 1);
        for (size_t i = 0; i < n; i++) {
            h[2 * i] = hex[(unsigned char)p[i] >> 4];
            h[2 * i + 1] = hex[(unsigned char)p[i] & 15];
        }
        h[2 * n] = '\0';
        v = json_pack("{s:s}", o->type == MSGPACK_OBJECT_EXT ? "$ext" : "$bin", h);
        free(h);
        return v;
    }
    case MSGPACK_OBJECT_ARRAY:
        v = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(v, to_json(&o->via.array.ptr[i]));
        return v;
    case MSGPACK_OBJECT_MAP:
        v = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char *ks;
            if (k->type == MSGPACK_OBJECT_STR) {
                ks = strndup(k->via.str.ptr, k->via.str.size);
            } else {
                json_t *kj = to_json(k);
                ks = json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY);
                json_decref(kj);
            }
            json_object_set_new(v, ks, to_json(&o->via.map.ptr[i].val));
            free(ks);
        }
        return v;
    }
    return json_null();
}

const char *
h_json(const msgpack_object *o)
{
    json_t *v;
    char *s;

    if (o == NULL)
        return "null";
    v = to_json(o);
    s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    ck_assert_ptr_nonnull(s);
    return keep(s);
}

const msgpack_object *
h_get(const msgpack_object *map, const char *key)
{
    size_t n = strlen(key);

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n
            && memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int64_t
h_get_int(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = h_get(map, key);

    ck_assert_msg(v != NULL, "no key \"%s\" in %s", key, h_json(map));
    ck_assert_msg(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                  || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER,
                  "\"%s\" is not an integer in %s", key, h_json(map));
    return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : v->via.i64;
}

const char *
h_get_str(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = h_get(map, key);

    ck_assert_msg(v != NULL && v->type == MSGPACK_OBJECT_STR,
                  "\"%s\" is missing or not a string in %s", key, h_json(map));
    return keep(strndup(v->via.str.ptr, v->via.str.size));
}

/* ------------------------------------------------------------------------
 * MessagePack-RPC client
 * ------------------------------------------------------------------------ */

struct h_rpc *
h_rpc_open_path(const char *path, struct h_daemon *pump)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct h_rpc *c;
    int fd;

    ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->fd = fd;
    c->d = pump;
    c->next_msgid = 1;
    ck_assert(msgpack_unpacker_init(&c->up, READ_CHUNK));
    msgpack_unpacked_init(&c->pending);
    msgpack_sbuffer_init(&c->cork);
    ck_assert_uint_lt(nclients, MAX_TRACKED);
    track_exit();
    clients[nclients++] = c;
    return c;
}

struct h_rpc *
h_rpc_open(struct h_daemon *d)
{
    return h_rpc_open_path(d->sock, d);
}

static void
resp_destroy(struct h_resp *r)
{
    msgpack_unpacked_destroy(&r->u);
    free(r);
}

/* Responses handed to a test; freed in teardown unless freed earlier. */
static struct h_resp **handed;
static size_t nhanded, caphanded;

static struct h_resp *
hand_out(struct h_resp *r)
{
    if (r == NULL)
        return NULL;
    if (nhanded == caphanded) {
        caphanded = caphanded ? caphanded * 2 : 64;
        handed = realloc(handed, caphanded * sizeof(*handed));
        ck_assert_ptr_nonnull(handed);
    }
    handed[nhanded++] = r;
    return r;
}

void
h_resp_free(struct h_resp *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < nhanded; i++) {
        if (handed[i] == r) {
            handed[i] = handed[--nhanded];
            break;
        }
    }
    resp_destroy(r);
}

static void
rpc_free(struct h_rpc *c)
{
    if (c->fd >= 0)
        close(c->fd);
    for (size_t i = 0; i < c->nstash; i++)
        resp_destroy(c->stash[i]);
    free(c->stash);
    msgpack_unpacked_destroy(&c->pending);
    msgpack_unpacker_destroy(&c->up);
    msgpack_sbuffer_destroy(&c->cork);
    free(c);
}

void
h_rpc_close(struct h_rpc *c)
{
    for (size_t i = 0; i < nclients; i++) {
        if (clients[i] == c) {
            clients[i] = clients[--nclients];
            break;
        }
    }
    rpc_free(c);
}

/* Take every complete response out of the unpacker into the stash. */
static void
rpc_parse(struct h_rpc *c)
{
    for (;;) {
        msgpack_unpack_return rc = msgpack_unpacker_next(&c->up, &c->pending);
        if (rc == MSGPACK_UNPACK_CONTINUE)
            return;
        ck_assert_msg(rc == MSGPACK_UNPACK_SUCCESS,
                      "the daemon sent bytes that are not msgpack (%d)", rc);
        const msgpack_object *o = &c->pending.data;
        /* [2, "outcome", [msgid, index, error, result]]: a batch job ended;
         * kept like a response, with its index.  f: msgid, then (index,)
         * error, result. */
        const msgpack_object *top = o->via.array.ptr, *f;
        int outcome = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3
                      && top[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                      && top[0].via.u64 == 2 && top[2].type == MSGPACK_OBJECT_ARRAY
                      && top[2].via.array.size == 4
                      && top[2].via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (!outcome)
            ck_assert_msg(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4
                          && top[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                          && top[0].via.u64 == 1,
                          "not a MessagePack-RPC response: %s", h_json(o));
        f = outcome ? top[2].via.array.ptr : top + 1;
        ck_assert_msg(f[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                      && f[0].via.u64 <= UINT32_MAX, "no msgid in %s", h_json(o));
        struct h_resp *r = calloc(1, sizeof(*r));
        ck_assert_ptr_nonnull(r);
        r->u = c->pending;              /* takes the zone: f stays valid */
        msgpack_unpacked_init(&c->pending);
        r->msgid = (uint32_t)f[0].via.u64;
        if (outcome) {
            r->is_outcome = 1;
            r->index = f[1].via.u64;
            f++;
        }
        r->error = f[1].type == MSGPACK_OBJECT_NIL ? NULL : &f[1];
        r->result = &f[2];
        if (c->nstash == c->capstash) {
            c->capstash = c->capstash ? c->capstash * 2 : 32;
            c->stash = realloc(c->stash, c->capstash * sizeof(*c->stash));
            ck_assert_ptr_nonnull(c->stash);
        }
        c->stash[c->nstash++] = r;
        c->got++;
    }
}

/* Read what the socket has.  Returns 0, or -1 at EOF. */
static int
rpc_read(struct h_rpc *c)
{
    for (;;) {
        ck_assert(msgpack_unpacker_reserve_buffer(&c->up, READ_CHUNK));
        ssize_t n = read(c->fd, msgpack_unpacker_buffer(&c->up),
                         msgpack_unpacker_buffer_capacity(&c->up));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {       /* EOF, or ECONNRESET after the daemon closed */
            c->eof = 1;
            return -1;
        }
        msgpack_unpacker_buffer_consumed(&c->up, (size_t)n);
        rpc_parse(c);
    }
}

/* Wait for the socket (and the daemon's log) with a deadline; read what
 * arrives.  want_out: also wake when writable.  Returns the poll revents
 * of the socket (0 on timeout). */
static short
rpc_poll(struct h_rpc *c, int want_out, int timeout_ms)
{
    struct pollfd pfd[2] = {
        { .fd = c->fd, .events = POLLIN | (want_out ? POLLOUT : 0) },
        { .fd = c->d != NULL ? c->d->errfd : -1, .events = POLLIN },
    };
    int n = poll(pfd, 2, timeout_ms);

    if (n < 0) {
        ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
        return 0;
    }
    if (pfd[1].revents != 0)
        log_read(c->d);
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
        rpc_read(c);
    return pfd[0].revents;
}

int
h_rpc_send_raw(struct h_rpc *c, const void *buf, size_t len)
{
    const char *p = buf;
    int64_t deadline = h_now_ms() + H_REPLY_MS;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ck_assert_msg(left_ms(deadline) > 0, "the daemon stopped reading");
            rpc_poll(c, 1, left_ms(deadline));
            continue;
        }
        return -1;      /* EPIPE, ECONNRESET: the daemon closed it */
    }
    return 0;
}

uint32_t
h_rpc_send(struct h_rpc *c, const char *method, const char *params_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t msgid = c->next_msgid++;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    pack_json_text(&pk, params_json);
    if (c->corked)
        msgpack_sbuffer_write(&c->cork, sb.data, sb.size);
    else
        ck_assert_msg(h_rpc_send_raw(c, sb.data, sb.size) == 0,
                      "the daemon closed the connection (sending %s)", method);
    msgpack_sbuffer_destroy(&sb);
    return msgid;
}

void
h_rpc_cork(struct h_rpc *c)
{
    c->corked = 1;
    msgpack_sbuffer_clear(&c->cork);
}

void
h_rpc_uncork(struct h_rpc *c)
{
    c->corked = 0;
    ck_assert_msg(h_rpc_send_raw(c, c->cork.data, c->cork.size) == 0,
                  "the daemon closed the connection");
    msgpack_sbuffer_clear(&c->cork);
}

uint32_t
h_rpc_submit(struct h_rpc *c, const char *job_json, const char *opts_json)
{
    char params[4096];

    if (opts_json != NULL)
        snprintf(params, sizeof(params), "[%s, %s]", job_json, opts_json);
    else
        snprintf(params, sizeof(params), "[%s]", job_json);
    return h_rpc_send(c, "submit", params);
}

/* Take msgid's response out of the stash, or NULL. */
static struct h_resp *
stash_take(struct h_rpc *c, uint32_t msgid)
{
    for (size_t i = 0; i < c->nstash; i++) {
        struct h_resp *r = c->stash[i];
        if (r->msgid == msgid && !r->is_outcome) {
            memmove(&c->stash[i], &c->stash[i + 1],
                    (c->nstash - i - 1) * sizeof(c->stash[0]));
            c->nstash--;
            return r;
        }
    }
    return NULL;
}

struct h_resp *
h_rpc_wait(struct h_rpc *c, uint32_t msgid, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    struct h_resp *r;

    rpc_read(c);
    while ((r = stash_take(c, msgid)) == NULL) {
        if (c->eof || left_ms(deadline) == 0)
            return NULL;
        rpc_poll(c, 0, left_ms(deadline));
    }
    return hand_out(r);
}

struct h_resp *
h_rpc_wait_outcome(struct h_rpc *c, uint32_t msgid, uint64_t index, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        rpc_read(c);
        for (size_t i = 0; i < c->nstash; i++) {
            struct h_resp *r = c->stash[i];
            if (r->is_outcome && r->msgid == msgid && r->index == index) {
                memmove(&c->stash[i], &c->stash[i + 1],
                        (c->nstash - i - 1) * sizeof(c->stash[0]));
                c->nstash--;
                return hand_out(r);
            }
        }
        if (c->eof || left_ms(deadline) == 0)
            return NULL;
        rpc_poll(c, 0, left_ms(deadline));
    }
}

struct h_resp *
h_rpc_call(struct h_rpc *c, const char *method, const char *params_json)
{
    return h_rpc_wait(c, h_rpc_send(c, method, params_json), H_REPLY_MS);
}

int
h_rpc_wait_eof(struct h_rpc *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    rpc_read(c);
    while (!c->eof) {
        if (left_ms(deadline) == 0)
            return -1;
        rpc_poll(c, 0, left_ms(deadline));
    }
    return (int)c->got;
}

struct h_resp *
h_status(struct h_rpc *c)
{
    struct h_resp *r = h_rpc_call(c, "status", "[]");

    ck_assert_msg(r != NULL, "no answer to status");
    ck_assert_msg(r->error == NULL, "status failed: %s", h_json(r->error));
    ck_assert_msg(r->result->type == MSGPACK_OBJECT_MAP, "status is not a map: %s",
                  h_json(r->result));
    return r;
}

int
h_status_pids(const struct h_resp *st, pid_t *pids, int max)
{
    const msgpack_object *a = h_get(st->result, "pids");
    int n = 0;

    ck_assert_msg(a != NULL && a->type == MSGPACK_OBJECT_ARRAY,
                  "status has no pids array: %s", h_json(st->result));
    for (uint32_t i = 0; i < a->via.array.size && n < max; i++) {
        ck_assert_int_eq(a->via.array.ptr[i].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        pids[n++] = (pid_t)a->via.array.ptr[i].via.u64;
    }
    return n;
}

/* ------------------------------------------------------------------------
 * Running programs
 * ------------------------------------------------------------------------ */

struct capture {
    int    fd;
    char  *buf;
    size_t len, cap;
};

/* Read what fd has (nonblocking); closes it at EOF. */
static void
capture_read(struct capture *cp)
{
    while (cp->fd >= 0) {
        if (cp->cap - cp->len < READ_CHUNK + 1) {
            cp->cap = cp->cap * 2 + READ_CHUNK + 1;
            cp->buf = realloc(cp->buf, cp->cap);
            ck_assert_ptr_nonnull(cp->buf);
        }
        ssize_t n = read(cp->fd, cp->buf + cp->len, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (n == 0) {
            close(cp->fd);
            cp->fd = -1;
            break;
        }
        cp->len += (size_t)n;
    }
}

int
h_run_argv(struct h_run *r, struct h_daemon *d, const char *stdin_text,
           int timeout_ms, char *const argv[])
{
    int in[2], out[2], err[2], pidfd, status = -1;
    int64_t deadline = h_now_ms() + timeout_ms;
    size_t in_off = 0, in_len = stdin_text != NULL ? strlen(stdin_text) : 0;
    struct capture co = { 0 }, ce = { 0 };
    pid_t pid;

    track_exit();
    ck_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0
              && pipe2(err, O_CLOEXEC) == 0);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(126);
        close_range(3, ~0U, 0);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        dprintf(2, "harness: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    pidfd = h_pidfd(pid);
    ck_assert_int_ge(pidfd, 0);
    co.fd = out[0];
    ce.fd = err[0];
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    fcntl(co.fd, F_SETFL, O_NONBLOCK);
    fcntl(ce.fd, F_SETFL, O_NONBLOCK);
    if (in_len == 0) {
        close(in[1]);
        in[1] = -1;
    }

    for (;;) {
        struct pollfd pfd[5] = {
            { .fd = pidfd, .events = POLLIN },
            { .fd = co.fd, .events = POLLIN },
            { .fd = ce.fd, .events = POLLIN },
            { .fd = in[1], .events = POLLOUT },
            { .fd = d != NULL ? d->errfd : -1, .events = POLLIN },
        };
        int n = poll(pfd, 5, left_ms(deadline));
        if (n < 0) {
            ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
            continue;
        }
        if (pfd[4].revents != 0)
            log_read(d);
        if (pfd[1].revents != 0)
            capture_read(&co);
        if (pfd[2].revents != 0)
            capture_read(&ce);
        if (pfd[3].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t w = write(in[1], stdin_text + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (pfd[0].revents != 0) {
            /* Exited: what it wrote is in the pipes; take it. */
            capture_read(&co);
            capture_read(&ce);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (left_ms(deadline) == 0) {
            fprintf(stderr, "harness: %s did not finish within %d ms; killing it\n",
                    argv[0], timeout_ms);
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
            status = -1;
            break;
        }
    }
    close(pidfd);
    if (in[1] >= 0)
        close(in[1]);
    if (co.fd >= 0)
        close(co.fd);
    if (ce.fd >= 0)
        close(ce.fd);
    r->status = status;
    r->out = keep(co.buf != NULL ? co.buf : strdup(""));
    r->outlen = co.len;
    r->out[co.len] = '\0';
    r->err = keep(ce.buf != NULL ? ce.buf : strdup(""));
    r->errlen = ce.len;
    r->err[ce.len] = '\0';
    return status;
}

int
h_ctl(struct h_run *r, struct h_daemon *d, const char *stdin_text,
      const char *arg, ...)
{
    char *argv[64];
    size_t n = 0;
    va_list ap;

    argv[n++] = (char *)H_FORKPOOLCTL;
    argv[n++] = (char *)"-s";
    argv[n++] = d->sock;
    va_start(ap, arg);
    for (const char *a = arg; a != NULL; a = va_arg(ap, const char *)) {
        ck_assert_uint_lt(n, sizeof(argv) / sizeof(argv[0]) - 1);
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n] = NULL;
    return h_run_argv(r, d, stdin_text, 10000, argv);
}

int
h_have_ctl(void)
{
    return access(H_FORKPOOLCTL, X_OK) == 0;
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
    while (nclients > 0)
        rpc_free(clients[--nclients]);
    while (ndaemons > 0) {
        struct h_daemon *d = daemons[--ndaemons];
        if (!d->reaped) {
            kill(d->pid, SIGKILL);
            while (waitpid(d->pid, &d->status, 0) < 0 && errno == EINTR)
                ;
        }
        close(d->pidfd);
        if (d->errfd >= 0)
            close(d->errfd);
        free(d->log);
        free(d);
    }
    while (ndirs > 0) {
        char *dir = dirs[--ndirs];
        remove_dir(dir);
        free(dir);
    }
    while (nhanded > 0)
        resp_destroy(handed[--nhanded]);
    free(handed);
    handed = NULL;
    caphanded = 0;
    while (nkept > 0)
        free(kept[--nkept]);
    free(kept);
    kept = NULL;
    capkept = 0;
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

/* ---- assertions around the daemon -------------------------------------- */

/* Compact JSON with sorted keys, as h_json() prints msgpack values. */
const char *
h_canon(const char *json)
{
    static char buf[8][4096];
    static int next;
    json_error_t err;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &err);
    char *s;

    ck_assert_msg(v != NULL, "bad JSON in test: %s", json);
    s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    next = (next + 1) % 8;
    snprintf(buf[next], sizeof(buf[next]), "%s", s);
    free(s);
    return buf[next];
}

struct h_daemon *
h_started(struct h_daemon *d)
{
    ck_assert_msg(d != NULL, "forkpoold did not start (see stderr)");
    return d;
}

struct h_rpc *
h_connected(struct h_daemon *d)
{
    struct h_rpc *c = h_rpc_open(d);
    ck_assert_msg(c != NULL, "cannot connect to %s: %s", d->sock, strerror(errno));
    return c;
}

/* Submit one job and wait for its response (which must come). */
struct h_resp *
h_submit(struct h_rpc *c, const char *job, const char *opts)
{
    uint32_t id = h_rpc_submit(c, job, opts);
    struct h_resp *r = h_rpc_wait(c, id, H_REPLY_MS);

    ck_assert_msg(r != NULL, "no response to submit %s", job);
    return r;
}

/* Submit a job that must end ok; returns its result. */
const msgpack_object *
h_submit_ok(struct h_rpc *c, const char *job)
{
    struct h_resp *r = h_submit(c, job, NULL);

    ck_assert_msg(r->error == NULL, "job %s failed: %s", job, h_json(r->error));
    const msgpack_object *res = h_get(r->result, "result");
    ck_assert_msg(res != NULL, "no \"result\" in %s", h_json(r->result));
    return res;
}

/* The worker pid a job runs on (-w 1 daemons with testmod). */
pid_t
h_worker_pid(struct h_rpc *c)
{
    const msgpack_object *res = h_submit_ok(c, "{\"op\": \"pid\"}");

    ck_assert_int_eq(res->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return (pid_t)res->via.u64;
}

