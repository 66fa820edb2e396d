/* kernel.h — small helpers shared by the kernel files (not part of the cdef:
 * only mc.h is): static inline functions, and the declarations of the few
 * library-internal entry points one kernel file calls in another. */
#ifndef MC_KERNEL_H
#define MC_KERNEL_H

#include <stdint.h>

#include "mc.h"

/* Caffe's unsigned bounds trick: a negative index turns into a huge unsigned
 * one, so one compare checks both ends. */
static inline int in_range(int64_t i, int64_t n) { return (uint64_t)i < (uint64_t)n; }

/* The output positions ow in [*lo, *hi) whose input column off + ow*stride
 * lies in [0, n); all other positions read padding. Computed once per kernel
 * column so the inner loop has no bounds test. */
static inline void valid_range(int64_t off, int64_t stride, int64_t n, int64_t out,
                        int64_t *lo, int64_t *hi)
{
    int64_t first = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t end = n - 1 - off < 0 ? 0 : (n - 1 - off) / stride + 1;
    if (end > out)
        end = out;
    if (first > end)
        first = end;
    *lo = first;
    *hi = end;
}

/* Sizes must be >= 0, stride and dilation >= 1. Any padding is memory-safe
 * (every read is bounds-checked), so it is not restricted here. */
static inline int geometry_ok(const mc_geometry *g, int64_t batch)
{
    if (!g || batch < 0 || g->channels < 0)
        return 0;
    for (int a = 0; a < 3; ++a)
        if (g->in[a] < 0 || g->out[a] < 0 || g->kernel[a] < 0
            || g->stride[a] < 1 || g->dilation[a] < 1)
            return 0;
    return 1;
}

/* Waking a sleeping thread costs tens of microseconds, more than small
 * problems take; below ~64K elements moved, stay on the calling thread. */
static inline int threads_for(int64_t tasks, int64_t elements)
{
    int nt = mc_get_num_threads();
    if (elements < (1 << 16))
        return 1;
    return tasks < nt ? (int)(tasks > 0 ? tasks : 1) : nt;
}

static inline int64_t spatial_size(const int64_t size[3]) { return size[0] * size[1] * size[2]; }

/* a / b rounded up, for a >= 0 and b > 0. */
static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* h written as a c (the book's h is a convolution too): dX is dY correlated
 * with W flipped in space and transposed within each group (C_in and C_out
 * trade places), dY padded (k - 1)*d - pad before. t gets that geometry;
 * returns whether it exists: every stride 1 and pad <= (k - 1)*d. */
static inline int input_grad_geometry(const mc_geometry *g, mc_geometry *t)
{
    int exists = 1;
    *t = *g;
    t->channels = g->out_channels;
    t->out_channels = g->channels;
    for (int a = 0; a < 3; ++a) {
        t->in[a] = g->out[a];
        t->out[a] = g->in[a];
        t->pad[a] = (g->kernel[a] - 1) * g->dilation[a] - g->pad[a];
        exists = exists && g->stride[a] == 1 && t->pad[a] >= 0;
    }
    return exists;
}

/* A convolution also needs out_channels >= 0 and groups >= 1 dividing both
 * channel counts: the kernels index channels by group, and a group that does
 * not divide would read past the ends of x and w. */
static inline int conv_geometry_ok(const mc_geometry *g, int64_t batch)
{
    return geometry_ok(g, batch) && g->out_channels >= 0 && g->groups >= 1
        && g->channels % g->groups == 0 && g->out_channels % g->groups == 0;
}

/* GCC turns a copy or zeroing loop into a memcpy / memset call; for loops
 * that run a handful of times the call costs more than the loop, and this
 * keeps them loops (vectorised all the same). */
#if defined(__GNUC__) && !defined(__clang__)
#define MC_INLINE_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define MC_INLINE_LOOPS
#endif

/* A function whose loops are plain C, compiled once for each SIMD path:
 * FOR_EACH_SIMD_PATH(DEFINE) expands DEFINE(generic, ) and, on x86-64,
 * DEFINE(avx2, TARGET) and DEFINE(avx512, TARGET), TARGET the attribute that
 * compiles a function (and what it inlines) for that path, so that the
 * compiler vectorises its loops at the path's width. SIMD_PATHS(NAME, stem)
 * lists NAME(stem_generic), ... in mc_simd_level()'s order, for a table.
 * Nothing inside may open an OpenMP region (none is outlined in a target). */
#ifdef MC_X86_PATHS
#define FOR_EACH_SIMD_PATH(DEFINE)                          \
    DEFINE(generic, )                                       \
    DEFINE(avx2, __attribute__((target("arch=x86-64-v3"))))  \
    DEFINE(avx512, __attribute__((target("arch=x86-64-v4"))))
#define SIMD_PATHS(NAME, stem) NAME(stem##_generic), NAME(stem##_avx2), NAME(stem##_avx512)
#else
#define FOR_EACH_SIMD_PATH(DEFINE) DEFINE(generic, )
#define SIMD_PATHS(NAME, stem) NAME(stem##_generic)
#endif
/* For a table of per-path structs: SIMD_PATHS(ADDRESS_F32, stem) lists &stem_<path>_f32. */
#define ADDRESS_F32(name) &name##_f32
#define ADDRESS_F64(name) &name##_f64

/* im2col and col2im (im2col.c) of a chunk of images side by side in one
 * (C*K) x ld matrix, K = kD*kH*kW, L = oD*oH*oW, ld >= batch*L: row c*K + r
 * holds kernel offset r of channel c, image i in columns [i*L, i*L + L).
 * The conv kernels build it so that one GEMM covers the chunk. col2im
 * overwrites x. Hidden: internal to the library, not exported by it. */
#if defined(__GNUC__)
#define MC_INTERNAL __attribute__((visibility("hidden")))
#else
#define MC_INTERNAL
#endif
MC_INTERNAL int mc_im2col_wide_f32(const mc_geometry *g, int64_t batch, const float *restrict x, int64_t ld, float *restrict cols);
MC_INTERNAL int mc_im2col_wide_f64(const mc_geometry *g, int64_t batch, const double *restrict x, int64_t ld, double *restrict cols);
MC_INTERNAL int mc_col2im_wide_f32(const mc_geometry *g, int64_t batch, const float *restrict cols, int64_t ld, float *restrict x);
MC_INTERNAL int mc_col2im_wide_f64(const mc_geometry *g, int64_t batch, const double *restrict cols, int64_t ld, double *restrict x);

/* mc_gemm_panels (gemm_driver.h): C = A @ B panel by panel, B packed by the
 * caller one k-block of a panel at a time. A panel: which A, its width n,
 * where its C starts and C's row stride. A pack: rows [p0, p0 + kc) of
 * panel t's B, columns [0, n), as slivers `width` wide, sliver j at
 * dst + j*width*kc, each stored row by row `width` apart, columns past n
 * zero. With a take, C is never stored: each panel's C (m x n, rows c_rs
 * apart) is handed to take once complete, and panels come in runs of `run`
 * that one thread does in order (a panel's c is then unused). A panel of
 * n = 0 columns is skipped.
 * mc_gemm_blocks (gemm_driver.h): C = the sum over blocks b of A_b @ B_b, on
 * the calling thread. block_of: where A_b (m x kc) is, rows a_rs apart, unit
 * steps along k, and its kc (at most max_kc). pack: columns [j0, j0 + n) of
 * B_b (kc x n), all kc rows, as slivers `width` wide (laid out as above). */
#define MC_GEMM_DRIVERS(T, sfx)                                                       \
    typedef struct gemm_panel_##sfx {                                                 \
        int64_t a, n;                                                                 \
        T *c;                                                                         \
        int64_t c_rs;                                                                 \
    } gemm_panel_##sfx;                                                               \
    typedef gemm_panel_##sfx (*gemm_panel_fn_##sfx)(const void *ctx, int64_t t);     \
    typedef void (*gemm_pack_fn_##sfx)(const void *ctx, int64_t t, int64_t p0,        \
                                       int64_t kc, int64_t n, int64_t width,          \
                                       T *restrict dst);                              \
    typedef void (*gemm_take_fn_##sfx)(const void *ctx, int64_t t, const T *c,         \
                                       int64_t c_rs);                                 \
    MC_INTERNAL int mc_gemm_panels_##sfx(int64_t m, int64_t k, int64_t count_a,       \
                                         const T *a, int64_t panels, int64_t run,     \
                                         int64_t max_n, gemm_panel_fn_##sfx panel_of, \
                                         gemm_pack_fn_##sfx pack, gemm_take_fn_##sfx take, \
                                         const void *ctx, int nt);                    \
    typedef struct gemm_block_##sfx { const T *a; int64_t a_rs, kc; } gemm_block_##sfx; \
    typedef gemm_block_##sfx (*gemm_block_fn_##sfx)(const void *ctx, int64_t b);     \
    typedef void (*gemm_block_pack_fn_##sfx)(const void *ctx, int64_t b, int64_t j0,  \
                                             int64_t n, int64_t width, T *restrict dst); \
    MC_INTERNAL int mc_gemm_blocks_##sfx(int64_t m, int64_t n, int64_t blocks,        \
                                         int64_t max_kc, gemm_block_fn_##sfx block_of, \
                                         gemm_block_pack_fn_##sfx pack, const void *ctx, \
                                         T *c, int64_t c_rs);
MC_GEMM_DRIVERS(float, f32)
MC_GEMM_DRIVERS(double, f64)
#undef MC_GEMM_DRIVERS

#endif
