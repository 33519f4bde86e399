/*
 * redis_conn.c — a Redis connection that never blocks the loop and keeps
 * coming back (redis_conn.h).
 *
 * States: DOWN (waiting for the retry timer) → CONNECTING (socket being
 * connected, then the handshake: SELECT, FUNCTION LOAD) → UP.  Any failure
 * — a refused connect, an error in the handshake, a command past its
 * deadline, the server closing — goes back to DOWN through went_down(),
 * which is the only place that reports "down" and arms the retry.
 *
 * Every command in flight is on `sent`, oldest first; Redis answers in
 * order, so one watchdog timer on the oldest deadline is enough.
 */
#include "config.h"
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "redis_conn.h"
#include "engine/timer.h"
#include "redis_functions.h"

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

struct req {
    TAILQ_ENTRY(req)      link;
    struct fp_redis_conn *c;
    fp_redis_reply_fn     cb;       /* NULL: a handshake step */
    void                 *arg;
    double                deadline; /* ev_now() */
    int                   last_step;/* the handshake's last command */
};

struct fp_redis_conn {
    struct ev_loop          *loop;
    struct fp_redis_conn_cfg cfg;
    char                     name[32];
    char                     addr[256]; /* TCP: numeric address */
    redisAsyncContext       *ac;        /* NULL while DOWN */
    enum conn_state          state;
    int                      reported_down; /* "down" said for this streak */
    double                   backoff;
    double                   connect_deadline;
    ev_timer                 retry;
    ev_timer                 watchdog;
    TAILQ_HEAD(, req)        sent;
};

static void connect_now(struct fp_redis_conn *c);

static void
went_down(struct fp_redis_conn *c, const char *why)
{
    int was_up = c->state == CONN_UP;

    c->ac = NULL;
    c->state = CONN_DOWN;
    ev_timer_stop(c->loop, &c->watchdog);
    fp_timer_after(c->loop, &c->retry, c->backoff);
    c->backoff *= 2;
    if (c->backoff > c->cfg.backoff_max)
        c->backoff = c->cfg.backoff_max;
    if (was_up || !c->reported_down) {
        c->reported_down = 1;
        if (c->cfg.on_state != NULL)
            c->cfg.on_state(c, 0, why, c->cfg.arg);
    }
}

/* Close the connection ourselves (a deadline passed, a handshake failed).
 * hiredis runs the callbacks in flight with NULL, which may try to send:
 * c->ac is already NULL by then, so they are refused. */
static void
drop(struct fp_redis_conn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;

    c->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac);
    went_down(c, why);
}

static void
arm_watchdog(struct fp_redis_conn *c)
{
    struct req *head = TAILQ_FIRST(&c->sent);
    double deadline = c->state == CONN_CONNECTING && head == NULL
                      ? c->connect_deadline
                      : head != NULL ? head->deadline : 0;

    ev_timer_stop(c->loop, &c->watchdog);
    if (deadline > 0) {
        double in = deadline - ev_now(c->loop);
        fp_timer_after(c->loop, &c->watchdog, in > 0 ? in : 0.);
    }
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct fp_redis_conn *c = tw->data;
    struct req *head = TAILQ_FIRST(&c->sent);
    char why[80];
    (void)loop; (void)revents;

    if (head != NULL && head->deadline > ev_now(c->loop)) {
        arm_watchdog(c);        /* an older command answered meanwhile */
        return;
    }
    snprintf(why, sizeof(why), "no answer within %g s", c->cfg.timeout);
    drop(c, why);
}

static void
retry_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    (void)loop; (void)revents;
    connect_now(tw->data);
}

static void
reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct req *q = privdata;
    struct fp_redis_conn *c = q->c;
    redisReply *r = reply;
    (void)ac;

    TAILQ_REMOVE(&c->sent, q, link);
    if (c->ac != NULL)
        arm_watchdog(c);
    if (q->cb != NULL) {
        q->cb(c, r, q->arg);
        /* The functions this connection loaded are gone from the server
         * (FUNCTION FLUSH, a restart without persistence): every FCALL
         * would fail until they are back.  Connecting again loads them,
         * and the owner resends as after any outage. */
        if (c->ac != NULL && c->cfg.load_functions && r != NULL
            && r->type == REDIS_REPLY_ERROR
            && strstr(r->str, "Function not found") != NULL)
            drop(c, "its functions are gone from the server (FUNCTION FLUSH?); "
                    "reconnecting to load them");
    } else if (c->ac != NULL && r != NULL) {
        /* A handshake step.  (Without a reply the connection is already
         * going down, and went_down() is on its way.) */
        if (r->type == REDIS_REPLY_ERROR) {
            char why[160];
            snprintf(why, sizeof(why), "handshake failed: %s", r->str);
            drop(c, why);
        } else if (q->last_step) {
            c->state = CONN_UP;
            c->reported_down = 0;
            c->backoff = c->cfg.backoff_min;
            if (c->cfg.on_state != NULL)
                c->cfg.on_state(c, 1, NULL, c->cfg.arg);
        }
    }
    free(q);
}

static int
send_argv(struct fp_redis_conn *c, fp_redis_reply_fn cb, void *arg,
          double block_s, int last_step, int argc, const char **argv,
          const size_t *argvlen)
{
    struct req *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return -1;
    q->c = c;
    q->cb = cb;
    q->arg = arg;
    q->last_step = last_step;
    q->deadline = ev_now(c->loop) + c->cfg.timeout + block_s;
    if (redisAsyncCommandArgv(c->ac, reply_cb, q, argc, argv, argvlen)
        != REDIS_OK) {
        free(q);
        return -1;
    }
    TAILQ_INSERT_TAIL(&c->sent, q, link);
    if (TAILQ_FIRST(&c->sent) == q)
        arm_watchdog(c);
    return 0;
}

static void
handshake(struct fp_redis_conn *c)
{
    int steps = (c->cfg.url.db != 0) + (c->cfg.load_functions != 0);
    char db[16];

    if (steps == 0) {           /* nothing to do: up at once */
        static const char *ping[] = { "PING" };
        send_argv(c, NULL, NULL, 0, 1, 1, ping, NULL);
        return;
    }
    if (c->cfg.url.db != 0) {
        const char *argv[] = { "SELECT", db };
        snprintf(db, sizeof(db), "%u", c->cfg.url.db);
        if (send_argv(c, NULL, NULL, 0, --steps == 0, 2, argv, NULL) < 0) {
            drop(c, "out of memory");
            return;
        }
    }
    if (c->cfg.load_functions) {
        const char *argv[] = { "FUNCTION", "LOAD", "REPLACE",
                               fp_redis_functions };
        if (send_argv(c, NULL, NULL, 0, 1, 4, argv, NULL) < 0)
            drop(c, "out of memory");
    }
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct fp_redis_conn *c = ac->data;

    if (c == NULL || c->ac != ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees ac when we return. */
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr);
        c->ac = NULL;
        went_down(c, why);
        return;
    }
    handshake(c);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct fp_redis_conn *c = ac->data;

    if (c == NULL || c->ac != ac)
        return;                 /* our own drop(): already handled */
    went_down(c, status == REDIS_OK ? "connection closed" : ac->errstr);
}

static void
connect_now(struct fp_redis_conn *c)
{
    redisAsyncContext *ac;
    char why[200];

    if (c->cfg.url.path[0] != '\0')
        ac = redisAsyncConnectUnix(c->cfg.url.path);
    else
        ac = redisAsyncConnect(c->addr, (int)c->cfg.url.port);
    if (ac == NULL) {
        went_down(c, "out of memory");
        return;
    }
    if (ac->err != 0) {
        snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr);
        redisAsyncFree(ac);
        went_down(c, why);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = CONN_CONNECTING;
    c->connect_deadline = ev_now(c->loop) + c->cfg.timeout;
    redisLibevAttach(c->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    arm_watchdog(c);
}

/* A host name becomes a numeric address once, here at start: hiredis's
 * connect would resolve it on every reconnect, blocking the loop. */
static int
resolve(struct fp_redis_conn *c)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;

    if (c->cfg.url.path[0] != '\0')
        return 0;
    if (getaddrinfo(c->cfg.url.host, NULL, &hints, &res) != 0)
        return -1;
    int rc = getnameinfo(res->ai_addr, res->ai_addrlen, c->addr,
                         sizeof(c->addr), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    return rc == 0 ? 0 : -1;
}

struct fp_redis_conn *
fp_redis_conn_new(struct ev_loop *loop, const struct fp_redis_conn_cfg *cfg)
{
    struct fp_redis_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->cfg = *cfg;
    snprintf(c->name, sizeof(c->name), "%s", cfg->name != NULL ? cfg->name : "redis");
    c->cfg.name = c->name;
    c->backoff = cfg->backoff_min;
    TAILQ_INIT(&c->sent);
    ev_timer_init(&c->retry, retry_cb, 0., 0.);
    c->retry.data = c;
    ev_timer_init(&c->watchdog, watchdog_cb, 0., 0.);
    c->watchdog.data = c;
    if (resolve(c) < 0) {
        /* Try the name as given on every attempt; the log says why. */
        snprintf(c->addr, sizeof(c->addr), "%s", c->cfg.url.host);
    }
    connect_now(c);
    return c;
}

void
fp_redis_conn_free(struct fp_redis_conn *c)
{
    if (c == NULL)
        return;
    c->cfg.on_state = NULL;
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    ev_timer_stop(c->loop, &c->retry);
    ev_timer_stop(c->loop, &c->watchdog);
    free(c);
}

int
fp_redis_conn_up(const struct fp_redis_conn *c)
{
    return c->state == CONN_UP;
}

int
fp_redis_command(struct fp_redis_conn *c, fp_redis_reply_fn cb, void *arg,
                 double block_s, int argc, const char **argv,
                 const size_t *argvlen)
{
    if (c->state != CONN_UP || c->ac == NULL)
        return -1;
    return send_argv(c, cb, arg, block_s, 0, argc, argv, argvlen);
}
