/*
 * redis_url.h — where a Redis server is: `unix:/path/redis.sock` or
 * `redis://host:port[/db]` (SPEC 10), parsed once at start.
 */
#ifndef FP_REDIS_URL_H
#define FP_REDIS_URL_H

#include <stddef.h>

struct fp_redis_url {
    char     path[108];     /* UNIX socket path, or "" for TCP */
    char     host[256];     /* TCP: host name or address as given */
    unsigned port;          /* TCP: 1..65535 (default 6379) */
    unsigned db;            /* SELECT this database when not 0 */
};

/* Parse text into *u.  Returns 0, or -1 with a one-line reason in err. */
int fp_redis_url_parse(const char *text, struct fp_redis_url *u,
                       char *err, size_t errlen);

#endif
