/* modload.h — load a handler module (.so exporting `forkpool_module`). */
#ifndef FP_MODLOAD_H
#define FP_MODLOAD_H

#include <stddef.h>
#include "forkpool.h"

/* dlopen `path` and check its fp_module.  Returns it (and the dlopen handle
 * in *handle), or NULL with a message in err. */
const fp_module *fp_module_load(const char *path, void **handle,
                                char *err, size_t errlen);

#endif
