/*
 * redis_conn.h — one connection to Redis from the master's libev loop,
 * that never blocks it and never gives up: hiredis's async API with its
 * libev adapter, plus what that adapter lacks (hiredis 0.14): a deadline
 * on every command, reconnection with capped exponential backoff, and the
 * function library (redis_functions.h) loaded on every connect.
 *
 * Mechanism only: it reports "up" and "down" and each reply; what to
 * resend after a reconnect is its owner's policy.
 */
#ifndef FP_REDIS_CONN_H
#define FP_REDIS_CONN_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "redis_url.h"

struct ev_loop;
struct fp_redis_conn;

/* A command's reply, or NULL when it failed without one (the connection
 * went down or the command passed its deadline; the connection is then
 * being re-established).  An error reply is a reply (type
 * REDIS_REPLY_ERROR).  Runs from the loop; may send commands; must not
 * free the connection. */
typedef void (*fp_redis_reply_fn)(struct fp_redis_conn *c, redisReply *reply,
                                  void *arg);
/* The connection came up (ready for commands, functions loaded) or went
 * down (why says so, once per change). */
typedef void (*fp_redis_state_fn)(struct fp_redis_conn *c, int up,
                                  const char *why, void *arg);

struct fp_redis_conn_cfg {
    struct fp_redis_url url;
    const char *name;           /* for log lines: "redis", "redis reader" */
    double      timeout;        /* seconds a command may take (beyond
                                   its own block time) before the
                                   connection is dropped */
    double      backoff_min;    /* first reconnect delay, seconds */
    double      backoff_max;    /* cap */
    int         load_functions; /* FUNCTION LOAD REPLACE on connect */
    fp_redis_state_fn on_state;
    void       *arg;
};

/* A connection that starts connecting at once (and keeps trying).  NULL
 * only when out of memory. */
struct fp_redis_conn *fp_redis_conn_new(struct ev_loop *loop,
                                        const struct fp_redis_conn_cfg *cfg);
/* Close and free; the callbacks of commands in flight run with NULL
 * first.  Not from inside one of its own callbacks. */
void fp_redis_conn_free(struct fp_redis_conn *c);

int fp_redis_conn_up(const struct fp_redis_conn *c);

/* Send one command (argv as given; argvlen NULL = strlen of each).
 * block_s: how long the command may legitimately wait at the server
 * (XREADGROUP BLOCK), added to its deadline.  Returns 0, or -1 when the
 * connection is not up (cb is then not called). */
int fp_redis_command(struct fp_redis_conn *c, fp_redis_reply_fn cb, void *arg,
                     double block_s, int argc, const char **argv,
                     const size_t *argvlen);

#endif
