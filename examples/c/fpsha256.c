/*
 * fpsha256.c — hash files through a running forkpoold, many at a time.
 *
 * An example of libforkpoolclient (forkpool_client(3)): each file becomes
 * one job for the daemon's `cmd` builtin, {"argv": ["sha256sum"], "stdin":
 * <the file's bytes>}; all of them are pipelined on one connection, and
 * the answers, which come back in any order, are printed in the order of
 * the arguments, as sha256sum(1) prints them.  A job that fails (the
 * command crashed, timed out, ...) costs that file only.
 *
 *   cc fpsha256.c $(pkg-config --cflags --libs forkpool-client msgpack) -o fpsha256
 *   forkpoold --builtin cmd &
 *   ./fpsha256 [-s SOCKET] FILE...
 *
 * Exit status: 0 if every file was hashed, 1 if one was not, 2 on usage,
 * 3 if the daemon cannot be reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <forkpool_client.h>

/* Pack {"argv": ["sha256sum"], "stdin": <bin>} with the file's bytes. */
static int
pack_job(const char *path, msgpack_sbuffer *job)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0, n;
    msgpack_packer pk;

    if (f == NULL)
        return -1;
    do {
        if (len == cap) {
            char *more = realloc(data, cap = cap ? cap * 2 : 65536);
            if (more == NULL) {
                free(data);
                fclose(f);
                return -1;
            }
            data = more;
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    int bad = ferror(f);
    fclose(f);
    if (!bad) {
        msgpack_sbuffer_init(job);
        msgpack_packer_init(&pk, job, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "argv", 4);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_str_with_body(&pk, "sha256sum", 9);
        msgpack_pack_str_with_body(&pk, "stdin", 5);
        msgpack_pack_bin_with_body(&pk, data, len);
    }
    free(data);
    return bad ? -1 : 0;
}

/* The 64 hex digits of the command's stdout, from the result map
 * {"exit": 0, "stdout": "<hex>  -\n", ...}; NULL if it is not that. */
static const char *
digest_of(const char *raw, size_t len, char hex[65])
{
    msgpack_unpacked u;
    const char *found = NULL;

    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, raw, len, NULL) == MSGPACK_UNPACK_SUCCESS
        && u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 6
                || memcmp(kv->key.via.str.ptr, "stdout", 6) != 0)
                continue;
            const msgpack_object *v = &kv->val;
            const char *p = v->type == MSGPACK_OBJECT_STR ? v->via.str.ptr
                            : v->type == MSGPACK_OBJECT_BIN ? v->via.bin.ptr : NULL;
            uint32_t n = v->type == MSGPACK_OBJECT_STR ? v->via.str.size
                         : v->type == MSGPACK_OBJECT_BIN ? v->via.bin.size : 0;
            if (p != NULL && n >= 64) {
                memcpy(hex, p, 64);
                hex[64] = '\0';
                found = hex;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return found;
}

int
main(int argc, char **argv)
{
    const char *sock = NULL;
    int first = 1, status = 0;

    if (argc > 2 && strcmp(argv[1], "-s") == 0) {
        sock = argv[2];
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: fpsha256 [-s SOCKET] FILE...\n");
        return 2;
    }
    fp_client *c;
    /* 30 s: the longest this program waits for any one answer. */
    if (fp_client_connect(&c, sock, 30) != 0) {
        fprintf(stderr, "fpsha256: cannot reach forkpoold at %s: %s\n",
                fp_client_path(c), fp_client_error(c));
        fp_client_close(c);
        return 3;
    }
    int nfiles = argc - first;
    char **lines = calloc((size_t)nfiles, sizeof *lines);
    uint32_t *tags = calloc((size_t)nfiles, sizeof *tags);
    if (lines == NULL || tags == NULL) {
        fprintf(stderr, "fpsha256: out of memory\n");
        return 1;
    }

    /* Queue every job.  Our own tags (the file's number, plus one) tell
     * the answers apart; the jobs go out together at the first wait. */
    int pending = 0;
    struct fp_client_jobopts opts = { .has_timeout = 1, .timeout = 60 };
    for (int i = 0; i < nfiles; i++) {
        msgpack_sbuffer job;
        if (pack_job(argv[first + i], &job) < 0) {
            fprintf(stderr, "fpsha256: %s: cannot read\n", argv[first + i]);
            status = 1;
            continue;
        }
        tags[i] = (uint32_t)i + 1;
        /* Given by reference, a big job is sent from its own buffer. */
        struct fp_client_job j = { job.data, job.size, free, job.data };
        if (fp_client_submit_job(c, &j, &opts, &tags[i]) != 0) {
            fprintf(stderr, "fpsha256: %s\n", fp_client_error(c));
            return 1;
        }
        pending++;
    }

    /* Collect the answers as they come, print them in argument order. */
    int next = 0;
    while (pending > 0) {
        struct fp_client_msg m;
        struct fp_client_outcome o;
        char hex[65], line[4200];
        int rc = fp_client_wait(c, &m, 60);

        if (rc <= 0) {
            fprintf(stderr, "fpsha256: %s\n", rc == 0 ? "no answer within 60 s"
                                                      : fp_client_error(c));
            fp_client_close(c);
            return 3;
        }
        if (m.type != FP_CLIENT_MSG_RESPONSE)
            continue;
        int i = (int)m.tag - 1;
        rc = fp_client_outcome(c, &m, &o);
        if (rc == 0 && digest_of(o.value, o.value_len, hex) != NULL) {
            snprintf(line, sizeof line, "%s  %s\n", hex, argv[first + i]);
        } else {
            snprintf(line, sizeof line, "fpsha256: %s: %s\n", argv[first + i],
                     rc == FP_CLIENT_EJOB ? o.kind : fp_client_error(c));
            status = 1;
        }
        if ((lines[i] = strdup(line)) == NULL) {
            fprintf(stderr, "fpsha256: out of memory\n");
            return 1;
        }
        pending--;
        for (; next < nfiles && (lines[next] != NULL || tags[next] == 0); next++)
            if (lines[next] != NULL)
                fputs(lines[next], strncmp(lines[next], "fpsha256:", 9) == 0
                                   ? stderr : stdout);
    }
    fp_client_close(c);
    for (int i = 0; i < nfiles; i++)
        free(lines[i]);
    free(lines);
    free(tags);
    return status;
}
