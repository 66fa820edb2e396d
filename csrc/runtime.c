/* runtime.c — thread count and SIMD path, the two knobs every kernel reads; and how freed memory
 * is kept. */
#include <omp.h>
#include <stdlib.h> /* for __GLIBC__ */
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "mc.h"

/* 0 means "not set yet": the first reader takes every core. Python sets it
 * at import, so this default only matters for C callers. */
static int g_threads = 0;

void mc_set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }

int mc_get_num_threads(void)
{
    if (g_threads < 1)
        g_threads = omp_get_num_procs();
    return g_threads;
}

int mc_max_threads(void) { return omp_get_num_procs(); }

/* The SIMD level is a plain int that the dispatching kernels read on every
 * call (an index into their table of function pointers); -1 means "not
 * chosen yet". A data race with mc_select_simd is harmless: any value read
 * is a valid level. */
static int g_level = -1;

int mc_simd_best(void)
{
#ifdef MC_X86_PATHS
    /* The bodies are compiled for the whole ISA level (the compiler may use
     * BMI2, MOVBE... anywhere in them), so ask for the level, not just
     * AVX2/AVX-512F. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return 2;
    if (__builtin_cpu_supports("x86-64-v3"))
        return 1;
#endif
    return 0;
}

int mc_select_simd(int level)
{
    int best = mc_simd_best();
    g_level = (level < 0 || level > best) ? best : level;
    return g_level;
}

int mc_simd_level(void)
{
    if (g_level < 0)
        mc_select_simd(-1);
    return g_level;
}

const char *mc_simd_name(void)
{
    static const char *const names[] = {"generic", "avx2", "avx512"};
    return names[mc_simd_level()];
}

#ifndef MC_BUILD_FLAGS
#define MC_BUILD_FLAGS "unknown"
#endif

const char *mc_build_flags(void) { return MC_BUILD_FLAGS; }

/* glibc hands freed memory back to the system once the free space at the top of the heap passes
 * a threshold (by default twice the largest block freed so far), and serves blocks past another
 * one by mmap, freed by munmap: a training step frees and allocates its activations and their
 * gradients again, and each time their pages fault back in, zeroed. Fixed thresholds (the largest
 * 64-bit glibc takes for mmap, and 256 MB of free heap kept) stop that; malloc_trim still hands
 * it back. */
int mc_keep_freed_memory(void)
{
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) && mallopt(M_TRIM_THRESHOLD, 256 << 20);
#else
    return 0;
#endif
}
