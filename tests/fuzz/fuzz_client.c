/*
 * fuzz_client.c — libFuzzer target: the bytes a daemon (or whatever answers
 * on its socket) sends to a libforkpoolclient client.
 *
 * Each input is served, whole, by a listening UNIX socket of this process
 * to a fresh client, which then closes.  The client first makes a blocking
 * call (status), which reads the stream for its own answer and sets aside
 * everything else; then takes every message left with fp_client_wait and
 * decodes each response and batch outcome with fp_client_outcome, until
 * the stream ends or is refused.  Its message bound is 1 MiB, the scale
 * the other targets use.
 *
 * Asserts, besides "no sanitizer report": every call returns one of the
 * documented codes; a message's pointers lie inside what was sent (the
 * client copies what it sets aside: then they lie in its own copy, which
 * ASan watches); a decoded outcome names a known kind; the stream ends
 * with FP_CLIENT_ECONNECT (all read) or a refusal, never a hang.
 */
#include "config.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "forkpool_client.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int listener = -1;
static char path[108];

static void
remove_socket(void)
{
    unlink(path);
}

static void
listen_once(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    snprintf(path, sizeof path, "/tmp/fuzz_client.%ld.sock", (long)getpid());
    unlink(path);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FZ_CHECK(listener >= 0);
    FZ_CHECK(bind(listener, (struct sockaddr *)&sa, sizeof sa) == 0);
    FZ_CHECK(listen(listener, 4) == 0);
    atexit(remove_socket);
}

static int
known_rc(int rc)
{
    return rc >= FP_CLIENT_EINVAL && rc <= 1;
}

static void
check_outcome(const struct fp_client_outcome *o, int rc)
{
    if (rc != 0 && rc != FP_CLIENT_EJOB)
        return;
    FZ_CHECK(o->kind != NULL);
    static const char *const kinds[] = { "ok", "error", "crashed", "timeout",
                                         "cancelled", "rejected", "unknown" };
    int found = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        found |= strcmp(o->kind, kinds[i]) == 0;
    FZ_CHECK(found);
    FZ_CHECK((rc == 0) == (o->ok != 0));
    if (rc == 0)
        FZ_CHECK(o->has_id && o->value != NULL);
    /* Touch every byte the pointers claim: ASan checks they are ours. */
    volatile char sink = 0;
    for (size_t i = 0; o->value != NULL && i < o->value_len; i++)
        sink ^= o->value[i];
    for (size_t i = 0; o->stats != NULL && i < o->stats_len; i++)
        sink ^= o->stats[i];
    for (size_t i = 0; o->stderr_tail != NULL && i < o->stderr_len; i++)
        sink ^= o->stderr_tail[i];
    (void)sink;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fp_client *c;
    const char *st;
    size_t stlen;

    if (listener < 0)
        listen_once();
    /* The server's side: the input, then EOF.  Inputs are small enough
     * (libFuzzer's -max_len) to sit in the socket buffer at once. */
    if (size > 64 * 1024)
        return 0;
    FZ_CHECK(fp_client_connect(&c, path, 5) == 0);
    int srv = accept(listener, NULL, NULL);
    FZ_CHECK(srv >= 0);
    FZ_CHECK(size == 0 || write(srv, data, size) == (ssize_t)size);
    close(srv);
    fp_client_set_max_bytes(c, 1u << 20);

    int rc = fp_client_status(c, &st, &stlen);
    FZ_CHECK(known_rc(rc) && rc != FP_CLIENT_ETIMEDOUT);
    for (int n = 0; n < 100000; n++) {
        struct fp_client_msg m;
        struct fp_client_outcome o;
        rc = fp_client_wait(c, &m, 5);
        FZ_CHECK(known_rc(rc) && rc != 0);      /* EOF comes, never a wait */
        if (rc != 1)
            break;
        FZ_CHECK(m.type >= FP_CLIENT_MSG_RESPONSE && m.type <= FP_CLIENT_MSG_EVENT);
        if (m.type == FP_CLIENT_MSG_RESPONSE || m.type == FP_CLIENT_MSG_OUTCOME) {
            int orc = fp_client_outcome(c, &m, &o);
            FZ_CHECK(known_rc(orc) && orc != 1);
            FZ_CHECK(o.tag == m.tag);
            check_outcome(&o, orc);
        }
    }
    fp_client_close(c);
    return 0;
}
