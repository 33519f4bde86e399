/*
 * ev_alloc.h — libev's memory allocator for forkpoold (ev_set_allocator),
 * one that tries harder than libev's own before it gives up.
 */
#ifndef FP_EV_ALLOC_H
#define FP_EV_ALLOC_H

#include "engine/log.h"

/* Install it; call before the first libev call.  Log lines go to `log`,
 * which must outlive the loop. */
void fp_ev_alloc_install(const struct fp_logger *log);

#endif
