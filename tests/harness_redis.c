/*
 * harness_redis.c — a real redis-server for the scale-out tests (harness.h,
 * "Redis"): on a UNIX socket in a fresh temp dir, with the AOF fsynced on
 * every write (so kill -9 and restart loses nothing acknowledged), killed
 * and removed at teardown.
 */
#include "config.h"
#include <check.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "harness_int.h"

#define REDIS_SERVER "redis-server"
#define REDIS_READY_MS 10000

static struct h_redis *servers[MAX_TRACKED];
static size_t nservers;

int
h_redis_available(void)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (path == NULL)
        return 0;
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof(buf), "%.*s/" REDIS_SERVER, (int)n, path);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Exec redis-server on r's socket and dir; no TCP port. */
static void
spawn(struct h_redis *r)
{
    char log[160];
    pid_t pid;

    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execlp(REDIS_SERVER, REDIS_SERVER, "--port", "0",
               "--unixsocket", r->sock, "--unixsocketperm", "700",
               "--dir", r->dir, "--logfile", log, "--daemonize", "no",
               "--appendonly", "yes", "--appendfsync", "always",
               "--save", "", (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
}

/* Wait until the server answers PING on its socket. */
static int
wait_ready(struct h_redis *r)
{
    int64_t deadline = h_now_ms() + REDIS_READY_MS;

    while (h_left_ms(deadline) > 0) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = -1;
            return 0;
        }
        redisContext *c = redisConnectUnix(r->sock);
        if (c != NULL && c->err == 0) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 1;
        } else if (c != NULL) {
            redisFree(c);
        }
        /* redis-server has no readiness fd to wait on: poll its socket. */
        usleep(10 * 1000);
    }
    return 0;
}

struct h_redis *
h_redis_start(void)
{
    struct h_redis *r = calloc(1, sizeof(*r));

    ck_assert_ptr_nonnull(r);
    ck_assert_uint_lt(nservers, MAX_TRACKED);
    snprintf(r->dir, sizeof(r->dir), "%s", h_tempdir());
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->url, sizeof(r->url), "unix:%s", r->sock);
    servers[nservers++] = r;
    spawn(r);
    ck_assert_msg(wait_ready(r), "redis-server did not start (see %s/redis.log)",
                  r->dir);
    return r;
}

void
h_redis_kill(struct h_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(r->pid, NULL, 0);
        r->pid = -1;
    }
}

void
h_redis_restart(struct h_redis *r)
{
    h_redis_kill(r, SIGKILL);
    unlink(r->sock);
    spawn(r);
    ck_assert_msg(wait_ready(r), "redis-server did not restart");
}

void *
h_redis_connect(struct h_redis *r)
{
    redisContext *c = redisConnectUnix(r->sock);

    ck_assert_msg(c != NULL && c->err == 0, "cannot connect to redis");
    return c;
}

void
h_redis_teardown(void)
{
    while (nservers > 0) {
        struct h_redis *r = servers[--nservers];
        h_redis_kill(r, SIGKILL);
        free(r);
    }
}
