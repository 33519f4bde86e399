/*
 * modutil.h — what the test modules (testmod_impl.c, hostilemod.c) and the
 * test workers need to read their jobs and pack their answers.  Header-only:
 * each module is a .so of its own and links nothing of the tree.
 */
#ifndef FP_TESTS_MODUTIL_H
#define FP_TESTS_MODUTIL_H

#include <stdlib.h>
#include <string.h>
#include "forkpool.h"

/* map[key] for a str key, or NULL (also when map is not a map). */
static inline const msgpack_object *
get(const msgpack_object *map, const char *key)
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

/* 1 if o is the str s. */
static inline int
is(const msgpack_object *o, const char *s)
{
    return o != NULL && o->type == MSGPACK_OBJECT_STR
        && o->via.str.size == strlen(s) && memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Pack s as a str; returns 0 (a handler's "ok"). */
static inline int
pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
    return 0;
}

/* o as a number (any integer or float), or dflt when o is missing or not
 * a number. */
static inline double
num_or(const msgpack_object *o, double dflt)
{
    if (o == NULL)
        return dflt;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:          return o->via.f64;
    default:                              return dflt;
    }
}

/* A NUL-terminated copy of the str o, or of dflt when o is not a str; the
 * caller frees. */
static inline char *
strdup_or(const msgpack_object *o, const char *dflt)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return strdup(dflt);
    return strndup(o->via.str.ptr, o->via.str.size);
}

#endif
