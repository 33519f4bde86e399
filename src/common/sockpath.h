/* sockpath.h — where the control socket lives (SPEC §5). */
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

#endif
