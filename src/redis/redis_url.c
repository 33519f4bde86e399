/*
 * redis_url.c — parse a Redis location (redis_url.h).  Strict: anything
 * this build would ignore (a password, query options, a trailing slash
 * without a db) is refused by name, so a typo never connects elsewhere.
 */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"

static int
fail(char *err, size_t errlen, const char *why, const char *text)
{
    snprintf(err, errlen, "bad Redis URL '%s': %s", text, why);
    return -1;
}

/* A decimal number in [min, max] spanning exactly [s, end). */
static int
number(const char *s, const char *end, unsigned long min, unsigned long max,
       unsigned *out)
{
    char *stop;
    unsigned long v;

    if (s == end || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &stop, 10);
    if (errno != 0 || stop != end || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int
fp_redis_url_parse(const char *text, struct fp_redis_url *u, char *err,
                   size_t errlen)
{
    memset(u, 0, sizeof(*u));
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (path[0] != '/')
            return fail(err, errlen, "the socket path must be absolute", text);
        if (strlen(path) >= sizeof(u->path))
            return fail(err, errlen, "socket path too long", text);
        strcpy(u->path, path);
        return 0;
    }
    if (strncmp(text, "redis://", 8) != 0)
        return fail(err, errlen, "expected unix:/path or redis://host:port[/db]",
                    text);

    const char *host = text + 8;
    const char *end = host + strcspn(host, "/?#@");
    if (*end == '@')
        return fail(err, errlen, "passwords are not supported", text);
    if (*end == '?' || *end == '#')
        return fail(err, errlen, "options are not supported", text);

    const char *colon;
    if (host[0] == '[') {                       /* [IPv6]:port */
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (close == NULL)
            return fail(err, errlen, "unclosed '['", text);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (colon == NULL && close + 1 != end)
            return fail(err, errlen, "junk after ']'", text);
        if ((size_t)(close - host - 1) >= sizeof(u->host))
            return fail(err, errlen, "host too long", text);
        memcpy(u->host, host + 1, (size_t)(close - host - 1));
    } else {
        colon = memchr(host, ':', (size_t)(end - host));
        const char *hend = colon != NULL ? colon : end;
        if ((size_t)(hend - host) >= sizeof(u->host))
            return fail(err, errlen, "host too long", text);
        memcpy(u->host, host, (size_t)(hend - host));
    }
    if (u->host[0] == '\0')
        return fail(err, errlen, "no host", text);
    u->port = 6379;
    if (colon != NULL && number(colon + 1, end, 1, 65535, &u->port) < 0)
        return fail(err, errlen, "the port must be 1..65535", text);
    if (*end == '/') {
        const char *db = end + 1;
        if (number(db, db + strlen(db), 0, 1000000, &u->db) < 0)
            return fail(err, errlen, "the database must be a number", text);
    }
    return 0;
}
