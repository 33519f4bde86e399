/* builtin.c — the builtin handler table and the echo handler. */
#include "config.h"
#include <string.h>

#include "builtin.h"

static int
echo_handle(void *state, const msgpack_object *job, msgpack_packer *out)
{
    (void)state;
    return msgpack_pack_object(out, *job) == 0 ? 0 : 1;
}

const fp_module fp_builtin_echo = {
    .abi = FP_MODULE_ABI,
    .name = "echo",
    .handle = echo_handle,
};

static const fp_module *const builtins[] = {
    &fp_builtin_echo,
    &fp_builtin_cmd,
};

const fp_module *
fp_builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (strcmp(builtins[i]->name, name) == 0)
            return builtins[i];
    return NULL;
}

const char *
fp_builtin_names(void)
{
    return "echo, cmd";
}
