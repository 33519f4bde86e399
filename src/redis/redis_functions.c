/*
 * redis_functions.c — the text of functions.lua, generated into
 * functions_lua.h at build time (Makefile.am) as one C string.
 */
#include "config.h"
#include "redis_functions.h"

const char fp_redis_functions[] =
#include "functions_lua.h"
    ;
