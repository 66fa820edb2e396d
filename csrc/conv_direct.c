/* conv_direct.c — the chapter's c, h and g as direct loops, float and double.
 *
 * The work units (conv_direct_kernel.h: one plane of c or h, one channel
 * pair of g) are compiled three times on x86-64 — AVX-512 (x86-64-v4),
 * AVX2+FMA (x86-64-v3) and the baseline — like gemm.c's micro-kernel, and
 * mc_simd_level() picks the table entry on every call. The entry points and
 * their OpenMP loops (conv_direct_body.h) are compiled once, for the portable
 * target, so OpenMP never outlines code inside a target region. */
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* What one SIMD path provides for one dtype: the three work units. */
#define MC_CONV_DIRECT_STRUCT(T, name)                                             \
    struct name {                                                                  \
        void (*forward)(const mc_geometry *g, const T *restrict x,                 \
                        const T *restrict w, T *restrict y);                       \
        void (*input_grad)(const mc_geometry *g, const T *restrict w,              \
                           const T *restrict y, T *restrict x);                    \
        void (*weight_grad)(const mc_geometry *g, int64_t batch,                   \
                            const T *restrict x, const T *restrict y,              \
                            T *restrict w);                                        \
    }
MC_CONV_DIRECT_STRUCT(float, conv_direct_kernels_f32);
MC_CONV_DIRECT_STRUCT(double, conv_direct_kernels_f64);

/* ---- portable (SSE2 on x86-64, NEON on aarch64) ---- */
#define KSTRUCT conv_direct_kernels_f32
#define KT float
#define KNAME(x) x##_generic_f32
#include "conv_direct_kernel.h"
#define KSTRUCT conv_direct_kernels_f64
#define KT double
#define KNAME(x) x##_generic_f64
#include "conv_direct_kernel.h"

#ifdef MC_X86_PATHS
/* ---- AVX2 + FMA (x86-64-v3) ---- */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define KSTRUCT conv_direct_kernels_f32
#define KT float
#define KNAME(x) x##_avx2_f32
#include "conv_direct_kernel.h"
#define KSTRUCT conv_direct_kernels_f64
#define KT double
#define KNAME(x) x##_avx2_f64
#include "conv_direct_kernel.h"
#pragma GCC pop_options

/* ---- AVX-512 (x86-64-v4) ---- */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define KSTRUCT conv_direct_kernels_f32
#define KT float
#define KNAME(x) x##_avx512_f32
#include "conv_direct_kernel.h"
#define KSTRUCT conv_direct_kernels_f64
#define KT double
#define KNAME(x) x##_avx512_f64
#include "conv_direct_kernel.h"
#pragma GCC pop_options
#endif

/* Indexed by the SIMD level: 0 generic, 1 avx2, 2 avx512. mc_simd_level()
 * never exceeds what was built. */
static const struct conv_direct_kernels_f32 *const direct_kernels_f32[] = {
    &conv_direct_generic_f32,
#ifdef MC_X86_PATHS
    &conv_direct_avx2_f32, &conv_direct_avx512_f32,
#endif
};
static const struct conv_direct_kernels_f64 *const direct_kernels_f64[] = {
    &conv_direct_generic_f64,
#ifdef MC_X86_PATHS
    &conv_direct_avx2_f64, &conv_direct_avx512_f64,
#endif
};

#define BODY "conv_direct_body.h"
#include "for_each_dtype.h"
