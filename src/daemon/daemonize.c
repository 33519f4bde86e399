/* daemonize.c — --daemon and --pidfile (see daemonize.h). */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemonize.h"

int
fp_daemonize(char *err, size_t errlen)
{
    int ready[2];
    pid_t pid;

    if (pipe2(ready, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if ((pid = fork()) < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(ready[0]);
        close(ready[1]);
        return -1;
    }
    if (pid > 0) {
        /* The original process: wait for "ready" (or the pipe to close). */
        char buf[8];
        ssize_t n;
        close(ready[1]);
        waitpid(pid, NULL, 0);          /* the middle process exits at once */
        while ((n = read(ready[0], buf, sizeof(buf))) < 0 && errno == EINTR)
            ;
        if (n > 0)
            _exit(0);
        fprintf(stderr, "forkpoold: the daemon exited before it was ready\n");
        _exit(1);
    }
    close(ready[0]);
    /* A session of our own, and no controlling terminal ever again: the
     * second fork makes us a non-leader that cannot acquire one. */
    if (setsid() < 0)
        _exit(1);
    if ((pid = fork()) < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        _exit(1);
    return ready[1];
}

void
fp_daemon_ready(int fd)
{
    int null = open("/dev/null", O_RDWR);

    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    (void)!write(fd, "ok", 2);
    close(fd);
}

int
fp_pidfile_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);

    if (fd < 0) {
        snprintf(err, errlen, "cannot open pid file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        if (errno == EWOULDBLOCK || errno == EAGAIN)
            snprintf(err, errlen, "pid file %s is locked: forkpoold is already "
                     "running as pid %ld", path, strtol(buf, NULL, 10));
        else
            snprintf(err, errlen, "cannot lock pid file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int
fp_pidfile_write(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return -1;
    return 0;
}

void
fp_pidfile_remove(const char *path, int fd)
{
    if (fd < 0)
        return;
    unlink(path);
    close(fd);
}
