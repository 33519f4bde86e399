/*
 * harness_int.h — what the pieces of the integration-test harness
 * (harness*.c) share among themselves; tests include harness.h only.
 */
#ifndef FP_TESTS_HARNESS_INT_H
#define FP_TESTS_HARNESS_INT_H

#include <stdint.h>
#include <msgpack.h>
#include "harness.h"

#define MAX_TRACKED 64          /* daemons, connections, dirs per test */
#define READ_CHUNK  65536

/* Keep p (malloc'd) until teardown; returns p. */
void *h_keep(void *p);
/* First use in a test process: clean up at exit too, and survive writing
 * to a child that has gone (its stdin pipe). */
void h_track_exit(void);

/* Read what the daemon's stderr holds now (nonblocking) into d->log. */
void h_log_read(struct h_daemon *d);
/* Pack JSON text as msgpack (fails the test if it is not JSON). */
void h_pack_json_text(msgpack_packer *pk, const char *text);

/* h_teardown's parts: close every connection and free every response
 * handed out; kill and reap every daemon. */
void h_rpc_teardown(void);
void h_daemon_teardown(void);
void h_redis_teardown(void);

#endif /* FP_TESTS_HARNESS_INT_H */
