/* meter.c — what a job cost (see meter.h). */
#include "config.h"
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "meter.h"

#define GRAIN_NS ((uint64_t)(FP_METER_GRAIN * 1e9))

static uint64_t
tv_us(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static uint64_t
usage_cpu_us(const struct rusage *ru)
{
    return tv_us(ru->ru_utime) + tv_us(ru->ru_stime);
}

/* ------------------------------------------------------------------------
 * In a module worker
 * ------------------------------------------------------------------------ */

#define CALIBRATE_NS ((uint64_t)(FP_METER_CALIBRATE * 1e9))

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);    /* the vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define NO_CPU UINT32_MAX     /* a reading whose CPU is unknown */

/* The CPU's tick counter, constant-rate on the CPUs forkpool runs on, and
 * in *cpu the CPU it was read on.  Two CPUs' counters need not agree, and
 * what a job's time decides is not only whether to sample (a job whose
 * time is misread as short would have the sweep of what it started put
 * off: descendants.h), so two readings are compared only when taken on
 * the same CPU (ticks_ns).  0 where there is no counter: then the clock
 * times every job. */
static inline uint64_t
ticks(uint32_t *cpu)
{
#if defined(__x86_64__) || defined(__i386__)
    /* The CPU before and after (glibc reads it from the rseq area: about a
     * nanosecond, where rdtscp, which reads both at once, takes twice as
     * long as rdtsc on the development VM). */
    int before = sched_getcpu();
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    int after = sched_getcpu();
    *cpu = before == after && before >= 0 ? (uint32_t)before : NO_CPU;
    return (uint64_t)hi << 32 | lo;
#elif defined(__aarch64__)
    /* The generic timer is one for the whole system: every core reads the
     * same count. */
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    *cpu = 0;
    return v;
#else
    *cpu = NO_CPU;
    return 0;
#endif
}

int
fp_meter_open_peak(void)
{
    return open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
}

void
fp_meter_init(struct fp_meter *m, int peak_fd)
{
    memset(m, 0, sizeof(*m));
    m->peak_fd = peak_fd;
}

void
fp_meter_close(struct fp_meter *m)
{
    if (m->peak_fd >= 0)
        close(m->peak_fd);
    m->peak_fd = -1;
}

/* Nanoseconds from tick count a (read on CPU acpu) to b (on bcpu), or
 * UINT64_MAX if the counter cannot tell (not calibrated, read on two CPUs,
 * or it ran backwards). */
static uint64_t
ticks_ns(const struct fp_meter *m, uint64_t a, uint32_t acpu, uint64_t b, uint32_t bcpu)
{
    if (m->ns_per_tick <= 0 || acpu == NO_CPU || acpu != bcpu || b < a)
        return UINT64_MAX;
    return (uint64_t)((double)(b - a) * m->ns_per_tick);
}

/* Read the CPU so far and the peak since the last sample (into *peak_kb),
 * then restart the peak from the resident size of now; and measure the
 * tick counter against the clock. */
static void
sample(struct fp_meter *m, uint64_t *peak_kb)
{
    struct rusage self, kids;
    uint32_t cpu;
    uint64_t ns = mono_ns(), t = ticks(&cpu);

    if (m->anchor_ns == 0) {
        m->anchor_ns = ns;
        m->anchor_ticks = t;
    } else if (ns - m->anchor_ns >= CALIBRATE_NS && t > m->anchor_ticks) {
        m->ns_per_tick = (double)(ns - m->anchor_ns) / (double)(t - m->anchor_ticks);
    }
    m->sampled_ns = ns;
    m->sampled_ticks = t;
    m->sampled_cpu = cpu;
    if (getrusage(RUSAGE_SELF, &self) != 0 || getrusage(RUSAGE_CHILDREN, &kids) != 0) {
        *peak_kb = m->base_kb;
        return;
    }
    m->cpu_us = usage_cpu_us(&self) + usage_cpu_us(&kids);
    *peak_kb = (uint64_t)self.ru_maxrss;
    m->base_kb = *peak_kb;
    /* After the reset ru_maxrss is the resident size (threads that exit
     * do not pin it: the kernel folds the peak into the process's record
     * only when the whole process exits). */
    if (m->peak_fd >= 0 && write(m->peak_fd, "5", 1) == 1
        && getrusage(RUSAGE_SELF, &self) == 0)
        m->base_kb = (uint64_t)self.ru_maxrss;
}

void
fp_meter_idle(struct fp_meter *m)
{
    m->follows = 0;
}

void
fp_meter_job_start(struct fp_meter *m)
{
    uint64_t peak, since;

    /* Back to back with the job before, it starts as that one ended. */
    if (m->follows) {
        m->start_ticks = m->end_ticks;
        m->start_cpu = m->end_cpu;
        m->start_ns = m->end_ns;
    } else {
        m->start_ticks = ticks(&m->start_cpu);
        m->start_ns = m->ns_per_tick > 0 ? 0 : mono_ns();
    }
    /* (A job that follows one sampled at its end starts a hair before that
     * sample: none is due.) */
    if (m->start_ns != 0)
        since = m->start_ns > m->sampled_ns ? m->start_ns - m->sampled_ns : 0;
    else
        since = m->start_ticks > m->sampled_ticks
                ? ticks_ns(m, m->sampled_ticks, m->sampled_cpu, m->start_ticks,
                           m->start_cpu) : 0;
    m->sampled_in_job = 0;
    if (m->sampled_ns == 0 || since >= GRAIN_NS) {
        sample(m, &peak);
        m->sampled_in_job = 1;
    }
    m->start_cpu_us = m->cpu_us;
}

uint64_t
fp_meter_elapsed_ns(const struct fp_meter *m)
{
    if (m->start_ns != 0) {
        uint64_t ns = mono_ns();
        return ns > m->start_ns ? ns - m->start_ns : 0;
    }
    uint32_t cpu;
    uint64_t t = ticks(&cpu);

    return ticks_ns(m, m->start_ticks, m->start_cpu, t, cpu);
}

void
fp_meter_job_end(struct fp_meter *m, struct fp_job_cost *cost)
{
    uint32_t cpu;
    uint64_t peak, t = ticks(&cpu);
    uint64_t run = ticks_ns(m, m->start_ticks, m->start_cpu, t, cpu), ns = 0;
    int unsure = 0;

    /* Without the counter's word, the clock's. */
    if (run == UINT64_MAX || m->start_ns != 0) {
        ns = mono_ns();
        if (m->start_ns != 0 && ns >= m->start_ns) {
            run = ns - m->start_ns;
        } else {
            /* The counter ran backwards (a CPU whose counter is not in
             * step): the job began after the last sample, at most. */
            run = ns > m->sampled_ns ? ns - m->sampled_ns : 0;
            unsure = 1;
        }
    }
    m->follows = 1;
    m->end_ticks = t;
    m->end_cpu = cpu;
    m->end_ns = m->ns_per_tick > 0 ? 0 : ns;
    cost->run_us = run / 1000u;
    if (run >= GRAIN_NS || unsure) {
        sample(m, &peak);
        m->sampled_in_job = 1;
        cost->cpu_us = m->cpu_us > m->start_cpu_us ? m->cpu_us - m->start_cpu_us : 0;
        cost->maxrss_kb = peak;
    } else {
        /* Short: not worth four system calls (meter.h). */
        cost->cpu_us = cost->run_us;
        cost->maxrss_kb = m->base_kb;
    }
    cost->total_cpu_us = m->cpu_us;
    cost->rss_kb = m->base_kb;
    /* Nothing new to tell but its run time: the master knows the rest
     * from the last sample (wire.h's short form). */
    cost->measured = m->sampled_in_job;
}

/* ------------------------------------------------------------------------
 * In the master
 * ------------------------------------------------------------------------ */

/* Read /proc/PID/<name> into buf (NUL-terminated).  Returns 0 or -1. */
static int
read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    while ((n = read(fd, buf, size - 1)) < 0 && errno == EINTR)
        ;
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* The number after "<key>:" in a status text, in kB, or 0. */
static uint64_t
status_kb(const char *text, const char *key)
{
    const char *p = strstr(text, key);

    return p != NULL ? strtoull(p + strlen(key), NULL, 10) : 0;
}

int
fp_proc_usage(pid_t pid, int reset, struct fp_proc_usage *u)
{
    char buf[2048], path[64];
    unsigned long long ut, st, cut, cst;
    long hz = sysconf(_SC_CLK_TCK);
    int fd;

    memset(u, 0, sizeof(*u));
    if (read_proc(pid, "stat", buf, sizeof(buf)) < 0)
        return -1;
    /* "pid (comm) state ppid ... utime stime cutime cstime": comm may hold
     * anything, so fields are counted from its last ')'; utime is the
     * 14th field, the 12th after the state. */
    char *p = strrchr(buf, ')');
    if (p == NULL || hz <= 0
        || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                  &ut, &st, &cut, &cst) != 4)
        return -1;
    u->cpu_us = (uint64_t)(ut + st + cut + cst) * 1000000u / (uint64_t)hz;
    if (read_proc(pid, "status", buf, sizeof(buf)) == 0) {
        u->peak_kb = status_kb(buf, "VmHWM:");
        u->rss_kb = status_kb(buf, "VmRSS:");
    }
    if (reset) {
        snprintf(path, sizeof(path), "/proc/%ld/clear_refs", (long)pid);
        if ((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
            (void)!write(fd, "5", 1);
            close(fd);
        }
    }
    return 0;
}

/* RUSAGE_CHILDREN is one figure for the whole process, whatever pool
 * reaped which child: so is what has been counted of it. */
static struct {
    int      marked;
    uint64_t cpu_us;
    uint64_t peak_kb;
} reaped;

void
fp_reaped_mark(void)
{
    uint64_t cpu, peak;

    if (!reaped.marked)
        fp_reaped_since(&cpu, &peak);
}

void
fp_reaped_since(uint64_t *cpu_us, uint64_t *peak_kb)
{
    struct rusage ru;

    *cpu_us = *peak_kb = 0;
    if (getrusage(RUSAGE_CHILDREN, &ru) != 0)
        return;
    uint64_t cpu = usage_cpu_us(&ru), peak = (uint64_t)ru.ru_maxrss;
    if (reaped.marked) {
        *cpu_us = cpu > reaped.cpu_us ? cpu - reaped.cpu_us : 0;
        *peak_kb = peak > reaped.peak_kb ? peak : 0;
    }
    reaped.marked = 1;
    reaped.cpu_us = cpu;
    reaped.peak_kb = peak;
}
