/*
 * testmod.c — the test handler module as a shared object the daemon
 * dlopens (tests/.libs/testmod.so).  What it does is in testmod.h; the
 * in-process pool suites link the same testmod_impl.c.
 */
#include "forkpool.h"
#include "testmod.h"

const fp_module forkpool_module = {
    .abi = FP_MODULE_ABI,
    .name = "testmod",
    .init = testmod_init,
    .handle = testmod_handle,
    .fini = testmod_fini,
};
