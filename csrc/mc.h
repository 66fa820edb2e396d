/* mc.h — the one public header of minitorch_conv's C kernels.
 *
 * It is also the cffi cdef: minitorch_conv/_build.py drops the preprocessor
 * lines and hands the rest to cffi, so everything outside a '#' line must be
 * plain declarations that cffi can parse (no macros, no inline code).
 *
 * Conventions: geometry first, `const T *restrict` inputs, output last;
 * sizes, strides and indices are int64_t and counted in elements; every
 * kernel returns MC_OK or an error code that Python turns into an exception;
 * Python allocates every buffer that crosses this interface.
 */
#ifndef MC_H
#define MC_H

#include <stdint.h>

/* x86-64 builds carry AVX2 and AVX-512 copies of the hot loops, made with
 * `#pragma GCC target("arch=x86-64-v3/v4")` or that target as a function
 * attribute (GCC >= 11 knows those names);
 * anywhere else, or with -DMC_PORTABLE_ONLY, only the portable body is built. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 \
    && !defined(MC_PORTABLE_ONLY)
#define MC_X86_PATHS 1
#endif

enum {
    MC_OK = 0,
    MC_ERR_NOMEM = 1, /* a scratch allocation failed */
    MC_ERR_ARG = 2    /* a size, stride or geometry field is out of range */
};

/* One convolution-shaped problem, built and checked once in Python
 * (minitorch_conv/geometry.py: Geometry). 1-D and 2-D problems put 1s in front
 * (in = {1, 1, L}, kernel = {1, 1, k}, stride/dilation/tile 1, pad 0). */
typedef struct mc_geometry {
    int64_t channels;      /* channels of one input image (C_in) */
    int64_t out_channels;  /* C_out of a convolution; unused by im2col and pooling */
    int64_t groups;        /* channel groups of a convolution (C_in and C_out both divisible) */
    int64_t in[3];         /* input spatial size (D, H, W) */
    int64_t out[3];        /* output spatial size */
    int64_t kernel[3];
    int64_t stride[3];
    int64_t pad[3];        /* zero padding before each axis; padding after is implied by out */
    int64_t dilation[3];
    int64_t tile[3];       /* tiled convolution: output position p uses kernel p % tile */
} mc_geometry;

/* Run time: threads and SIMD path. ------------------------------------- */

/* Threads used by every OpenMP region (passed as num_threads(...) per region,
 * because libgomp's omp_set_num_threads only affects the calling thread).
 * n < 1 is taken as 1. */
void mc_set_num_threads(int n);
int mc_get_num_threads(void);
int mc_max_threads(void);              /* omp_get_num_procs() */

/* SIMD level: 0 generic, 1 avx2 (x86-64-v3: AVX2+FMA), 2 avx512 (x86-64-v4),
 * -1 the best this CPU runs. A level above what the CPU supports is capped.
 * Returns the level in force. */
int mc_select_simd(int level);
int mc_simd_level(void);               /* the level in force */
int mc_simd_best(void);                /* the best level this CPU and build support */
const char *mc_simd_name(void);        /* "avx512" / "avx2" / "generic" */

/* Measured float32 FMA throughput in GFLOP/s on the SIMD path in force, with every thread running
 * `iterations` rounds of independent vector FMAs (csrc/peak.c); -1 for iterations < 1. */
double mc_peak_gflops(int64_t iterations);

/* Keep freed memory for reuse instead of handing it back to the system after every free (glibc's
 * malloc thresholds, process-wide; glibc calls mallopt thread-unsafe, so call it before threads
 * allocate — Python does, at import). 1 if glibc took the settings (a malloc preloaded in its
 * place, e.g. jemalloc, may take and ignore them), 0 where the C library has no such setting. */
int mc_keep_freed_memory(void);

/* The C compiler flags this library was built with (minitorch_conv/_build.py). */
const char *mc_build_flags(void);

/* im2col / col2im. ----------------------------------------------------- */

/* x: contiguous (batch, C, D, H, W); cols: contiguous
 * (batch, C*kD*kH*kW, oD*oH*oW), rows in (c, kd, kh, kw) order as PyTorch's
 * unfold. Padding reads as zero. */
int mc_im2col_f32(const mc_geometry *g, int64_t batch, const float *restrict x, float *restrict cols);
int mc_im2col_f64(const mc_geometry *g, int64_t batch, const double *restrict x, double *restrict cols);

/* The adjoint of im2col: x is overwritten (zeroed, then every column entry
 * is added to the input element it was read from; padding is dropped). */
int mc_col2im_f32(const mc_geometry *g, int64_t batch, const float *restrict cols, float *restrict x);
int mc_col2im_f64(const mc_geometry *g, int64_t batch, const double *restrict cols, double *restrict x);

/* GEMM. ---------------------------------------------------------------- */

/* C[m,n] = A[m,k] @ B[k,n]   (accumulate == 0; C is not read)
 * C[m,n] += A[m,k] @ B[k,n]  (accumulate != 0)
 * A[i,p] is a[i*a_rs + p*a_cs], B[p,j] is b[p*b_rs + j*b_cs] (any strides
 * >= 0, so transposed views need no copy); C is row-major, C[i,j] is
 * c[i*c_rs + j]. C must not overlap A or B. Packing buffers are allocated
 * here (MC_ERR_NOMEM if that fails). Results are bit-identical at any
 * thread count. */
int mc_gemm_f32(int64_t m, int64_t n, int64_t k,
                const float *restrict a, int64_t a_rs, int64_t a_cs,
                const float *restrict b, int64_t b_rs, int64_t b_cs,
                int accumulate, float *restrict c, int64_t c_rs);
int mc_gemm_f64(int64_t m, int64_t n, int64_t k,
                const double *restrict a, int64_t a_rs, int64_t a_cs,
                const double *restrict b, int64_t b_rs, int64_t b_cs,
                int accumulate, double *restrict c, int64_t c_rs);

/* The convolution family: the chapter's c, h and g. -------------------------
 * x: (batch, C_in, D, H, W)   w: (C_out, C_in/groups, kD, kH, kW)
 * y: (batch, C_out, oD, oH, oW), all contiguous. Cross-correlation, zero padding:
 *   c (forward)     y[n,o,p] = sum_{i in group(o), k} w[o,i,k] x[n,i, p*stride + k*dilation - pad]
 *   h (input grad)  x = the adjoint of c in x:  <c(x, w), y> = <x, h(w, y)>; x is overwritten
 *   g (weight grad) w = the adjoint of c in w:  <c(x, w), y> = <w, g(x, y)>; w is overwritten
 * Two algorithms: direct loops, and im2col + GEMM. The im2col c packs the column
 * matrix straight from x, a sliver at a time, as the GEMM reads it; h and g build
 * it, `chunk` images at a time, in `work`, a buffer of
 * mc_conv_im2col_workspace(g, min(chunk, batch)) elements.
 * All are deterministic: bit-identical results at any thread count (for one chunk;
 * another chunk may change the last bits, as the sums group differently). */
int mc_conv_forward_direct_f32(const mc_geometry *g, int64_t batch, const float *restrict x, const float *restrict w, float *restrict y);
int mc_conv_forward_direct_f64(const mc_geometry *g, int64_t batch, const double *restrict x, const double *restrict w, double *restrict y);
int mc_conv_forward_im2col_f32(const mc_geometry *g, int64_t batch, const float *restrict x, const float *restrict w, float *restrict y);
int mc_conv_forward_im2col_f64(const mc_geometry *g, int64_t batch, const double *restrict x, const double *restrict w, double *restrict y);
int mc_conv_input_grad_direct_f32(const mc_geometry *g, int64_t batch, const float *restrict w, const float *restrict y, float *restrict x);
int mc_conv_input_grad_direct_f64(const mc_geometry *g, int64_t batch, const double *restrict w, const double *restrict y, double *restrict x);
int mc_conv_input_grad_im2col_f32(const mc_geometry *g, int64_t batch, const float *restrict w, const float *restrict y, int64_t chunk, float *restrict work, float *restrict x);
int mc_conv_input_grad_im2col_f64(const mc_geometry *g, int64_t batch, const double *restrict w, const double *restrict y, int64_t chunk, double *restrict work, double *restrict x);
int mc_conv_weight_grad_direct_f32(const mc_geometry *g, int64_t batch, const float *restrict x, const float *restrict y, float *restrict w);
int mc_conv_weight_grad_direct_f64(const mc_geometry *g, int64_t batch, const double *restrict x, const double *restrict y, double *restrict w);
int mc_conv_weight_grad_im2col_f32(const mc_geometry *g, int64_t batch, const float *restrict x, const float *restrict y, int64_t chunk, float *restrict work, float *restrict w);
int mc_conv_weight_grad_im2col_f64(const mc_geometry *g, int64_t batch, const double *restrict x, const double *restrict y, int64_t chunk, double *restrict work, double *restrict w);

/* The workspace elements the im2col h and g need for `chunk` images:
 * the chunk's column matrix and its slice of y, side by side, and partial sums of a
 * weight gradient cut along its long side (a 1x1 stride-1 unpadded kernel reads x and
 * y in place, so at most those). -1 for a bad geometry or chunk < 1; INT64_MAX if the
 * count would overflow int64. */
int64_t mc_conv_im2col_workspace(const mc_geometry *g, int64_t chunk);

/* Tiled and locally connected convolution (groups = 1): the kernel used at output
 * position p is w[..., p % tile]; tile = 1 is convolution, tile = out is unshared.
 * w: (C_out, C_in, kD, kH, kW, tD, tH, tW). Same three roles, direct loops. */
int mc_tiled_forward_f32(const mc_geometry *g, int64_t batch, const float *restrict x, const float *restrict w, float *restrict y);
int mc_tiled_forward_f64(const mc_geometry *g, int64_t batch, const double *restrict x, const double *restrict w, double *restrict y);
int mc_tiled_input_grad_f32(const mc_geometry *g, int64_t batch, const float *restrict w, const float *restrict y, float *restrict x);
int mc_tiled_input_grad_f64(const mc_geometry *g, int64_t batch, const double *restrict w, const double *restrict y, double *restrict x);
int mc_tiled_weight_grad_f32(const mc_geometry *g, int64_t batch, const float *restrict x, const float *restrict y, float *restrict w);
int mc_tiled_weight_grad_f64(const mc_geometry *g, int64_t batch, const double *restrict x, const double *restrict y, double *restrict w);

/* The detector stage (detector.c), n contiguous elements, PyTorch's to the bit:
 *   relu        y = 0 where x < 0, else x       (clamp_min: -0 and NaN pass)
 *   relu_gate   out = 0 where a <= 0, else g    (ReLU's gradient at a, threshold_backward)
 * a and g may be the same array; y and out must not overlap the inputs. */
int mc_relu_f32(int64_t n, const float *restrict x, float *restrict y);
int mc_relu_f64(int64_t n, const double *restrict x, double *restrict y);
int mc_relu_gate_f32(int64_t n, const float *restrict a, const float *restrict g, float *restrict out);
int mc_relu_gate_f64(int64_t n, const double *restrict a, const double *restrict g, double *restrict out);

/* Pooling (pool.c). channels = C; out_channels and groups are unused (groups 1).
 * x: (batch, C, D, H, W)   y and indices: (batch, C, oD, oH, oW), all contiguous.
 * Window o covers o*stride - pad + k*dilation for k < kernel on each axis; padding is never
 * read (max ignores it, average counts it or not). Parallel over (n, c) planes, bit-identical
 * at any thread count. Indices are flat within one (D, H, W) plane of x, as PyTorch's.
 *   max_pool_forward           y = each window's maximum, indices = where (first maximum of a tie
 *                              in scan order; NaN propagates; -1 for a window with no element)
 *   adaptive_max_pool_forward  the same over PyTorch's adaptive windows
 *                              [floor(o*in/out), ceil((o+1)*in/out)); kernel/stride/pad unused
 *   max_pool_scatter           x = 0, then x[indices] += y (accumulate != 0) or = y (last write
 *                              wins): max pooling's gradient, and unpooling
 *   max_pool_gather            y = x[indices]: the adjoint of the accumulating scatter
 *   avg_pool_forward           y = window sum / divisor (dilation 1): divisor_override if > 0,
 *                              else the window clipped to the padded input (count_include_pad)
 *                              or to the input
 *   avg_pool_adjoint           x = the adjoint of avg_pool_forward (overwritten) */
int mc_max_pool_forward_f32(const mc_geometry *g, int64_t batch, const float *restrict x, int64_t *restrict indices, float *restrict y);
int mc_max_pool_forward_f64(const mc_geometry *g, int64_t batch, const double *restrict x, int64_t *restrict indices, double *restrict y);
int mc_adaptive_max_pool_forward_f32(const mc_geometry *g, int64_t batch, const float *restrict x, int64_t *restrict indices, float *restrict y);
int mc_adaptive_max_pool_forward_f64(const mc_geometry *g, int64_t batch, const double *restrict x, int64_t *restrict indices, double *restrict y);
int mc_max_pool_scatter_f32(const mc_geometry *g, int64_t batch, int64_t accumulate, const int64_t *restrict indices, const float *restrict y, float *restrict x);
int mc_max_pool_scatter_f64(const mc_geometry *g, int64_t batch, int64_t accumulate, const int64_t *restrict indices, const double *restrict y, double *restrict x);
int mc_max_pool_gather_f32(const mc_geometry *g, int64_t batch, const int64_t *restrict indices, const float *restrict x, float *restrict y);
int mc_max_pool_gather_f64(const mc_geometry *g, int64_t batch, const int64_t *restrict indices, const double *restrict x, double *restrict y);
int mc_avg_pool_forward_f32(const mc_geometry *g, int64_t batch, int64_t count_include_pad, int64_t divisor_override, const float *restrict x, float *restrict y);
int mc_avg_pool_forward_f64(const mc_geometry *g, int64_t batch, int64_t count_include_pad, int64_t divisor_override, const double *restrict x, double *restrict y);
int mc_avg_pool_adjoint_f32(const mc_geometry *g, int64_t batch, int64_t count_include_pad, int64_t divisor_override, const float *restrict y, float *restrict x);
int mc_avg_pool_adjoint_f64(const mc_geometry *g, int64_t batch, int64_t count_include_pad, int64_t divisor_override, const double *restrict y, double *restrict x);

#endif
