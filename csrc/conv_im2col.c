/* conv_im2col.c — the chapter's c, h and g as im2col + GEMM (col2im for h),
 * float and double from one body (conv_im2col_body.h).
 *
 * The batch goes through `chunk` images at a time: im2col of the chunk into
 * the caller's workspace, then one GEMM per (image, group). Every GEMM writes
 * its own block of the output, and mc_gemm gives the same bits at any thread
 * count, so the results depend neither on the thread count nor on `chunk`. */
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* A 1x1 kernel at stride 1 with no padding and out == in: the column matrix
 * of an image is the image itself, so im2col (and col2im) are skipped. */
static int pointwise(const mc_geometry *g)
{
    for (int a = 0; a < 3; ++a)
        if (g->kernel[a] != 1 || g->stride[a] != 1 || g->pad[a] != 0
            || g->dilation[a] != 1 || g->out[a] != g->in[a])
            return 0;
    return 1;
}

/* mc_gemm runs a product with m*n*k under 2e6 on one thread (gemm.c,
 * gemm_threads). When the GEMMs of a chunk are that small — depthwise
 * convolution makes C of them per image, each 1 x L x K — run them side by
 * side instead. Threads for `count` independent m x n x k GEMMs; 1 means
 * "one after another, each parallel inside". */
static int small_gemm_threads(int64_t count, int64_t m, int64_t n, int64_t k)
{
    if ((double)m * (double)n * (double)k >= 2.0e6)
        return 1;
    return threads_for(count, count * m * n * k);
}

#define T float
#define SUFFIX(name) name##_f32
#include "conv_im2col_body.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX(name) name##_f64
#include "conv_im2col_body.h"
#undef T
#undef SUFFIX
