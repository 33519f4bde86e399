/* fuzz_check.h — the fuzzers' assertion: a failed check is a finding. */
#ifndef FZ_CHECK_H
#define FZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* Unlike assert(), never compiled out: NDEBUG must not hide a finding. */
#define FZ_CHECK(cond) \
    ((cond) ? (void)0 : fz_fail(__FILE__, __LINE__, #cond))

static inline void __attribute__((noreturn))
fz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}

#endif /* FZ_CHECK_H */
