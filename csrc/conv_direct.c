/* conv_direct.c — the chapter's c, h and g as direct loops, float and double.
 *
 * The work units (conv_direct_kernel.h: one plane of c or h, one channel
 * pair of g; row by row, or at stride 1 over flat padded planes, flat_plan)
 * are compiled three times on x86-64 — AVX-512 (x86-64-v4),
 * AVX2+FMA (x86-64-v3) and the baseline — like gemm.c's micro-kernel, and
 * mc_simd_level() picks the table entry on every call. The entry points and
 * their OpenMP loops (conv_direct_body.h) are compiled once, for the portable
 * target, so OpenMP never outlines code inside a target region. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* At stride 1 every kernel offset is one shift of a whole plane. With the
 * input plane padded (its zeros written out) to size[0] x size[1] x size[2],
 * output position (od, oh, ow) has the flat index (od*size[1] + oh)*size[2]
 * + ow in a plane laid out like the padded one, and kernel offset k reads
 * the padded plane at that index + off[k]. A unit then multiplies whole
 * planes, flat, FLAT_CHUNK bytes of positions at a time held in registers,
 * instead of row by row with each row's padding cut off; the positions past
 * a row's end (ow >= oW, oh >= oH) are computed on zeros and dropped. */
#define FLAT_CHUNK 128

typedef struct flat_plan {
    int64_t size[3];  /* the padded plane */
    int64_t at[3];    /* where the plane sits in it: the padding before */
    int64_t n;        /* flat positions computed: past the last output, in whole chunks */
    int64_t elems;    /* a buffer for one padded plane, with what the last chunk reads past it */
    int64_t *off;     /* per kernel offset (kd, kh, kw order), where it reads */
} flat_plan;

/* The plan for g's geometry when every stride is 1 and the kernel has 4 or
 * more offsets, its offsets flipped (off[k] reads where offset K-1-k would)
 * if `flip`; 0 if not, -1 if out of memory. With fewer offsets the copies
 * cost more than they save. Measured on 16 x 64 planes of 56 x 56, depthwise,
 * flat against rows: 1x3 1.0x, 2x2 1.1-1.4x, 3x3 1.4-2.0x, 5x5 2.0-3.4x; the
 * 1x2 edge detector on one 280 x 320 plane 0.5-0.8x. Sizes are checked
 * (geometry_ok) by the caller. */
static int flat_plan_make(const mc_geometry *g, int flip, size_t elem, flat_plan *p)
{
    const int64_t K = spatial_size(g->kernel), chunk = FLAT_CHUNK / (int64_t)elem;
    if (K < 4)
        return 0;
    for (int a = 0; a < 3; ++a) {
        if (g->stride[a] != 1 || g->pad[a] < 0)
            return 0;
        const int64_t reach = g->out[a] + (g->kernel[a] - 1) * g->dilation[a];
        p->size[a] = g->pad[a] + g->in[a] > reach ? g->pad[a] + g->in[a] : reach;
        p->at[a] = g->pad[a];
    }
    const int64_t last = ((g->out[0] - 1) * p->size[1] + g->out[1] - 1) * p->size[2] + g->out[2];
    p->n = (last + chunk - 1) / chunk * chunk;
    p->elems = spatial_size(p->size) + chunk;  /* reads end before last + chunk + the largest offset */
    p->off = malloc((size_t)K * sizeof *p->off);
    if (!p->off)
        return -1;
    for (int64_t k = 0; k < K; ++k) {
        const int64_t r = flip ? K - 1 - k : k, kw = r % g->kernel[2], kh = r / g->kernel[2] % g->kernel[1];
        const int64_t kd = r / g->kernel[2] / g->kernel[1];
        p->off[k] = (kd * g->dilation[0] * p->size[1] + kh * g->dilation[1]) * p->size[2] + kw * g->dilation[2];
    }
    return 1;
}

/* A plane (sizes n) into dst laid out as p's padded plane, its first
 * element at `at`. The rest of dst is left as it is: zeros, as run_units
 * (conv_direct_body.h) allocates it, never written while a buffer plays the
 * same part with the same plan. */
static void to_padded(const flat_plan *p, const int64_t n[3], const int64_t at[3],
                      const void *restrict src, void *restrict dst, size_t elem)
{
    for (int64_t d = 0; d < n[0]; ++d)
        for (int64_t h = 0; h < n[1]; ++h)
            memcpy((char *)dst + (((d + at[0]) * p->size[1] + h + at[1]) * p->size[2] + at[2]) * (int64_t)elem,
                   (const char *)src + ((d * n[1] + h) * n[2]) * (int64_t)elem, (size_t)(n[2] * (int64_t)elem));
}

/* The outputs (sizes n) out of a plane laid out as p's padded one, from 0. */
static void from_padded(const flat_plan *p, const int64_t n[3], const void *restrict src,
                        void *restrict dst, size_t elem)
{
    for (int64_t d = 0; d < n[0]; ++d)
        for (int64_t h = 0; h < n[1]; ++h)
            memcpy((char *)dst + ((d * n[1] + h) * n[2]) * (int64_t)elem,
                   (const char *)src + ((d * p->size[1] + h) * p->size[2]) * (int64_t)elem,
                   (size_t)(n[2] * (int64_t)elem));
}

/* What one SIMD path provides for one dtype: the three work units, walking
 * rows, and the same three over flat planes (flat_plan, stride 1). */
#define MC_CONV_DIRECT_STRUCT(T, name)                                             \
    struct name {                                                                  \
        void (*forward)(const mc_geometry *g, const T *restrict x,                 \
                        const T *restrict w, T *restrict y);                       \
        void (*input_grad)(const mc_geometry *g, const T *restrict w,              \
                           const T *restrict y, T *restrict x);                    \
        void (*weight_grad)(const mc_geometry *g, int64_t batch,                   \
                            const T *restrict x, const T *restrict y,              \
                            T *restrict w);                                        \
        void (*forward_flat)(const mc_geometry *g, const flat_plan *p, T *scratch, \
                             const T *restrict x, const T *restrict w,             \
                             T *restrict y);                                       \
        void (*input_grad_flat)(const mc_geometry *g, const flat_plan *p,          \
                                T *scratch, const T *restrict w,                   \
                                const T *restrict y, T *restrict x);               \
        void (*weight_grad_flat)(const mc_geometry *g, const flat_plan *p,         \
                                 T *scratch, int64_t batch, const T *restrict x,   \
                                 const T *restrict y, T *restrict w);              \
    }
MC_CONV_DIRECT_STRUCT(float, conv_direct_kernels_f32);
MC_CONV_DIRECT_STRUCT(double, conv_direct_kernels_f64);

/* ---- portable (SSE2 on x86-64, NEON on aarch64) ---- */
#define VBYTES 16
#define KSTRUCT conv_direct_kernels_f32
#define KT float
#define KNAME(x) x##_generic_f32
#include "conv_direct_kernel.h"
#define KSTRUCT conv_direct_kernels_f64
#define KT double
#define KNAME(x) x##_generic_f64
#include "conv_direct_kernel.h"
#undef VBYTES

#ifdef MC_X86_PATHS
/* ---- AVX2 + FMA (x86-64-v3) ---- */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define VBYTES 32
#define KSTRUCT conv_direct_kernels_f32
#define KT float
#define KNAME(x) x##_avx2_f32
#include "conv_direct_kernel.h"
#define KSTRUCT conv_direct_kernels_f64
#define KT double
#define KNAME(x) x##_avx2_f64
#include "conv_direct_kernel.h"
#undef VBYTES
#pragma GCC pop_options

/* ---- AVX-512 (x86-64-v4) ---- */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define VBYTES 64
#define KSTRUCT conv_direct_kernels_f32
#define KT float
#define KNAME(x) x##_avx512_f32
#include "conv_direct_kernel.h"
#define KSTRUCT conv_direct_kernels_f64
#define KT double
#define KNAME(x) x##_avx512_f64
#include "conv_direct_kernel.h"
#undef VBYTES
#pragma GCC pop_options
#endif

/* Indexed by the SIMD level (SIMD_PATHS' order); mc_simd_level() never
 * exceeds what was built. */
static const struct conv_direct_kernels_f32 *const direct_kernels_f32[] = {
    SIMD_PATHS(ADDRESS_F32, conv_direct)};
static const struct conv_direct_kernels_f64 *const direct_kernels_f64[] = {
    SIMD_PATHS(ADDRESS_F64, conv_direct)};

#define BODY "conv_direct_body.h"
#include "for_each_dtype.h"
