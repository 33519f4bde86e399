/* modload.c — dlopen a handler module and validate its ABI (forkpool.h). */
#include "config.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "forkpool.h"

const fp_module *
fp_module_load(const char *path, void **handle, char *err, size_t errlen)
{
    const fp_module *m;
    void *h;

    /* A bare name would search the library path; insist on a file. */
    if (strchr(path, '/') == NULL) {
        snprintf(err, errlen, "%s: give a path (for example ./%s)", path, path);
        return NULL;
    }
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "%s", dlerror());
        return NULL;
    }
    m = dlsym(h, "forkpool_module");
    if (m == NULL) {
        snprintf(err, errlen, "%s does not export forkpool_module", path);
        goto fail;
    }
    if (m->abi != FP_MODULE_ABI) {
        snprintf(err, errlen, "%s: module ABI %d, this forkpoold speaks %d",
                 path, m->abi, FP_MODULE_ABI);
        goto fail;
    }
    if (m->handle == NULL) {
        snprintf(err, errlen, "%s: module has no handle function", path);
        goto fail;
    }
    *handle = h;
    return m;
fail:
    dlclose(h);
    return NULL;
}
