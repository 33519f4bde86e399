/* proctitle.h — what ps and top show for the daemon's processes. */
#ifndef FP_PROCTITLE_H
#define FP_PROCTITLE_H

/* Claim the memory of argv (and the environment strings after it, which are
 * copied elsewhere first) for titles.  Call once, first thing in main, and
 * use the copy of argv it returns from then on. */
char **fp_proctitle_init(int argc, char **argv);

/* Show `title` as the process's command line (truncated to the space
 * there is).  Matches fp_config.title: `arg` is unused. */
void fp_proctitle_set(const char *title, void *arg);

#endif
