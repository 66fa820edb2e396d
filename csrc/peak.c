/* peak.c — the float32 FMA throughput of this machine, measured: the yardstick the benchmark suite
 * quotes "% of peak" against. Every thread runs a loop of independent vector FMAs on the SIMD path in
 * force; enough accumulators (KACC) keep both FMA units busy through the FMA latency, and few enough
 * stay in registers (16 ymm on AVX2, 32 zmm on AVX-512). */
#include <stdint.h>

#include <omp.h>

#include "mc.h"

#define PEAK_LOOP(name, VBYTES, KACC)                                                  \
    static float name(int64_t iterations, float seed)                                  \
    {                                                                                  \
        typedef float vec __attribute__((vector_size(VBYTES)));                        \
        vec acc[KACC], a = {0}, b = {0};                                               \
        a += 0.999f, b += seed;                                                        \
        for (int j = 0; j < KACC; ++j)                                                 \
            acc[j] = b + (float)j;                                                     \
        for (int64_t i = 0; i < iterations; ++i)                                       \
            _Pragma("GCC unroll 16")                                                   \
            for (int j = 0; j < KACC; ++j)                                             \
                acc[j] = acc[j] * a + b;                                               \
        float sum = 0;                                                                 \
        for (int j = 0; j < KACC; ++j)                                                 \
            for (int l = 0; l < (int)(VBYTES / sizeof(float)); ++l)                    \
                sum += acc[j][l];                                                      \
        return sum;                                                                    \
    }

PEAK_LOOP(peak_generic, 16, 12)
#ifdef MC_X86_PATHS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
PEAK_LOOP(peak_avx2, 32, 12)
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
PEAK_LOOP(peak_avx512, 64, 24)
#pragma GCC pop_options
#endif

double mc_peak_gflops(int64_t iterations)
{
    static const struct { float (*loop)(int64_t, float); int lanes, acc; } paths[] = {
        {peak_generic, 4, 12},
#ifdef MC_X86_PATHS
        {peak_avx2, 8, 12}, {peak_avx512, 16, 24},
#endif
    };
    if (iterations < 1)
        return -1.0;
    const int level = mc_simd_level(), nt = mc_get_num_threads();
    volatile float sink = 0;  /* keeps the loops from being optimised away */
    const double start = omp_get_wtime();
    #pragma omp parallel num_threads(nt)
    {
        float s = paths[level].loop(iterations, 1e-3f * (float)omp_get_thread_num());
        #pragma omp atomic
        sink += s;
    }
    const double seconds = omp_get_wtime() - start;
    (void)sink;
    return 2.0 * paths[level].lanes * paths[level].acc * (double)iterations * nt / seconds / 1e9;
}
