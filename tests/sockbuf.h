/*
 * sockbuf.h — what the tests of a MiB of socket buffer expect the kernel
 * to report (check_client.c, check_pool_workers.c).
 */
#ifndef FP_TESTS_SOCKBUF_H
#define FP_TESTS_SOCKBUF_H

#include <stdio.h>

/* What the kernel reports for a SO_SNDBUF of 1 MiB: twice the value,
 * after capping it at net.core.wmem_max; -1 if that cannot be read. */
static inline long
sndbuf_of_a_mib(void)
{
    FILE *f = fopen("/proc/sys/net/core/wmem_max", "r");
    long max = -1;

    if (f == NULL || fscanf(f, "%ld", &max) != 1)
        max = -1;
    if (f != NULL)
        fclose(f);
    return max < 0 ? -1 : 2 * (max < (1L << 20) ? max : (1L << 20));
}

#endif
