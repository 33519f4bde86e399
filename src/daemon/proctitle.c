/*
 * proctitle.c — set the process title seen in ps(1), the way nginx and
 * PostgreSQL do: overwrite the argv strings in place, after moving the
 * environment strings that follow them so the title may use their space.
 * The short name (comm) stays "forkpoold", so pidof and pkill still work.
 */
#include "config.h"
#include <stdlib.h>
#include <string.h>

#include "proctitle.h"

extern char **environ;

static char **volatile argv_copy;  /* what main uses instead, for good */
static char **volatile env_strings; /* every copied environment string:
                                       environ may drop some (unsetenv),
                                       and they stay ours all the same */
static char **volatile env_array;   /* environ itself, held here too for
                                       leak checkers that do not scan it */
static char  *title_start;   /* argv[0] */
static size_t title_space;   /* bytes up to the end of the last string */

char **
fp_proctitle_init(int argc, char **argv)
{
    char **copy, **env, *end;
    int n = 0;

    copy = argv_copy = calloc((size_t)argc + 1, sizeof(*copy));
    if (copy == NULL)
        return argv;
    for (int i = 0; i < argc; i++)
        if ((copy[i] = strdup(argv[i])) == NULL)
            return argv;
    end = argv[0];
    for (int i = 0; i < argc; i++)
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    while (environ[n] != NULL)
        n++;
    env = env_array = calloc((size_t)n + 1, sizeof(*env));
    env_strings = calloc((size_t)n + 1, sizeof(*env));
    if (env == NULL || env_strings == NULL)
        return copy;
    for (int i = 0; i < n; i++) {
        if (environ[i] == end)
            end = environ[i] + strlen(environ[i]) + 1;
        if ((env[i] = env_strings[i] = strdup(environ[i])) == NULL)
            return copy;    /* keep the old environment and no titles */
    }
    environ = env;
    title_start = argv[0];
    title_space = (size_t)(end - argv[0]);
    return copy;
}

void
fp_proctitle_set(const char *title, void *arg)
{
    (void)arg;
    if (title_start == NULL || title_space < 2)
        return;
    size_t n = strlen(title);
    if (n >= title_space)
        n = title_space - 1;
    memcpy(title_start, title, n);
    memset(title_start + n, 0, title_space - n);
}
