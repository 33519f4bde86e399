/* testmod2.c — a second build of a module, for the reload test: every job's
 * result is "v2". */
#include <string.h>
#include "forkpool.h"

static int
v2_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state; (void)job;
    msgpack_pack_str(out, 2);
    msgpack_pack_str_body(out, "v2", 2);
    return 0;
}

const fp_module forkpool_module = {
    .abi = FP_MODULE_ABI,
    .name = "testmod2",
    .handle = v2_handle,
};
