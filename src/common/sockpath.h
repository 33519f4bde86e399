/* sockpath.h — where the control socket lives (SPEC §5), and the buffers
 * of a connection to it. */
#ifndef FP_SOCKPATH_H
#define FP_SOCKPATH_H

#include <stddef.h>

/* $FORKPOOL_SOCKET if set, else $XDG_RUNTIME_DIR/forkpool.sock if set, else
 * /tmp/forkpool-<uid>.sock.  Returns 0, or -1 if it does not fit `len` or a
 * sockaddr_un. */
int fp_default_socket_path(char *buf, size_t len);

/* Fill a sockaddr_un for `path`; returns 0, or -1 (ENAMETOOLONG). */
struct sockaddr_un;
int fp_sockaddr_un(struct sockaddr_un *sa, const char *path);

/* Bytes a client's connection may have in flight towards the daemon. */
#define FP_SOCK_BUFFER (1 << 20)

/* Set a client's SO_SNDBUF and SO_RCVBUF to FP_SOCK_BUFFER, as far as
 * net.core.wmem_max and rmem_max allow.  With the default 208 KiB a 1 MiB
 * job crosses in five pieces, each a wake-up of both ends.  A limit, not
 * an allocation: only bytes queued take memory.  Best effort: a refusal
 * leaves the defaults.  (The daemon keeps the default on its side: what
 * the kernel holds for a client that does not read is outside the
 * daemon's reply bounds, and 1 MiB of it per connection would multiply
 * what such clients can pin.) */
void fp_sock_widen(int fd);

#endif
