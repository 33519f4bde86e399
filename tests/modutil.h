/*
 * modutil.h — what the test modules (testmod.c, hostilemod.c) need to read
 * their jobs and pack their answers.  Header-only: each module is a .so of
 * its own and links nothing of the tree.
 */
#ifndef FP_TESTS_MODUTIL_H
#define FP_TESTS_MODUTIL_H

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

#endif
