/* builtin.h — handlers shipped inside forkpool, as ordinary fp_modules. */
#ifndef FP_BUILTIN_H
#define FP_BUILTIN_H

#include "forkpool.h"

/* result = the job itself */
extern const fp_module fp_builtin_echo;
/* job {"argv": [...], "stdin": str|bin?, "env": {...}?} -> runs it */
extern const fp_module fp_builtin_cmd;

/* The builtin called `name`, or NULL. */
const fp_module *fp_builtin_find(const char *name);

/* "echo, cmd" — for help and error messages. */
const char *fp_builtin_names(void);

#endif
