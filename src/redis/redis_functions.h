/*
 * redis_functions.h — forkpool's Redis function library (functions.lua),
 * embedded so a daemon or producer can FUNCTION LOAD it on every connect:
 * the library on the server is always the one this build speaks.
 */
#ifndef FP_REDIS_FUNCTIONS_H
#define FP_REDIS_FUNCTIONS_H

extern const char fp_redis_functions[];

/* The consumer group every daemon joins on a queue's jobs stream. */
#define FP_REDIS_GROUP "forkpool"

#endif
