/* pool.c — the pooling kernels, float and double from one body (pool_body.h):
 *
 *   max pooling and adaptive max pooling   -> values and the index of each window's maximum
 *   scatter / gather by index              -> max pooling's gradient, its gradient, and unpooling
 *   average pooling and its adjoint        -> each is the other's gradient
 *
 * Every kernel is parallel over (image, channel) planes: a plane is one task, read and written by
 * one thread in a fixed order, so results are bit-identical at any thread count. Max and average
 * pooling sweep one output row at a time: for each kernel tap in scan order, the whole row is
 * updated from one input row, over a precomputed range of in-bounds columns, so the innermost
 * loop has no bounds test and no branch and vectorises (2 x 2 windows: both taps of a row in one
 * loop, and where both rows are inside, all four taps in one pass — 1.5-1.9x the speed of two
 * passes on LeNet's and the benchmark's planes). Each output element still sees its window in scan
 * order, which the tie and NaN rules and the order of the sums rely on. Memory-bound, so built
 * once, without SIMD variants. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* PyTorch's average-pooling divisor along one axis: the window clipped to the padded input
 * [-pad, n + pad) (ceil_mode windows may hang past it), and further to [0, n) when padding does
 * not count. */
static inline int64_t window_count(int64_t start, int64_t k, int64_t pad, int64_t n,
                                   int64_t count_include_pad)
{
    int64_t end = start + k < n + pad ? start + k : n + pad;
    if (!count_include_pad) {
        start = start > 0 ? start : 0;
        end = end < n ? end : n;
    }
    return end - start;
}

/* What every plane shares, computed once per call so that the loops over a plane divide nothing:
 * for each output position o of each axis, the window [lo, hi) of adaptive pooling, or average
 * pooling's divisor factor count; and for each kernel column kw, the output columns [first, end)
 * whose tap kw lands inside the input row (the others read padding). */
struct windows {
    int64_t *lo[3], *hi[3], *count[3];
    int64_t *first, *end;
    int pairs;  /* each window's columns are two adjacent ones, the next window's right after */
    int quads;  /* pairs, on two rows of one depth: a 2 x 2 window (max_quads, avg_quads) */
    int64_t *buffer;
};

static int windows_make(struct windows *win, const mc_geometry *g, int adaptive, int64_t count_include_pad)
{
    const int64_t total = 3 * (g->out[0] + g->out[1] + g->out[2]) + 2 * g->kernel[2];
    int64_t *next = win->buffer = malloc((size_t)(total + 1) * sizeof(int64_t));
    if (!next)
        return MC_ERR_NOMEM;
    for (int a = 0; a < 3; ++a) {
        const int64_t out = g->out[a];
        win->lo[a] = next;
        win->hi[a] = next + out;
        win->count[a] = next + 2 * out;
        next += 3 * out;
        for (int64_t o = 0; o < out; ++o) {
            /* adaptive: PyTorch's [floor(o * in / out), ceil((o + 1) * in / out)) */
            win->lo[a][o] = adaptive ? o * g->in[a] / out : 0;
            win->hi[a][o] = adaptive ? ((o + 1) * g->in[a] + out - 1) / out : 0;
            win->count[a][o] = window_count(o * g->stride[a] - g->pad[a], g->kernel[a], g->pad[a], g->in[a],
                                            count_include_pad);
        }
    }
    win->first = next;
    win->end = next + g->kernel[2];
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw)
        valid_range(kw * g->dilation[2] - g->pad[2], g->stride[2], g->in[2], g->out[2],
                    &win->first[kw], &win->end[kw]);
    /* both taps of a row in one loop vectorise (loads and shuffles); a tap at a time reads every
     * other element one by one */
    win->pairs = !adaptive && g->kernel[2] == 2 && g->stride[2] == 2 && g->pad[2] == 0
                 && g->dilation[2] == 1 && 2 * g->out[2] <= g->in[2];
    win->quads = win->pairs && g->kernel[0] == 1 && g->kernel[1] == 2;
    return MC_OK;
}

/* Planes of batch * channels, elements touched per plane: the OpenMP thread count. */
static inline int pool_threads(const mc_geometry *g, int64_t batch)
{
    const int64_t planes = batch * g->channels;
    return threads_for(planes, planes * (spatial_size(g->in) + spatial_size(g->out)));
}

/* Output row (od, oh) of a plane of 2 x 2 windows (windows.quads): the flat offset of its top
 * input row when both of its rows (the bottom one dilation[1] below) are inside the input, so that
 * it takes one pass (max_quads, avg_quads); else -1, and it goes tap by tap. */
static inline int64_t quad_row(const mc_geometry *g, const struct windows *win, int64_t od, int64_t oh)
{
    const int64_t depth = od * g->stride[0] - g->pad[0], top = oh * g->stride[1] - g->pad[1];
    if (!win->quads || !in_range(depth, g->in[0]) || !in_range(top, g->in[1])
        || !in_range(top + g->dilation[1], g->in[1]))
        return -1;
    return (depth * g->in[1] + top) * g->in[2];
}

/* CALL(stride), the stride a constant where it is 1 or 2: a tap's loop (always inlined) then reads
 * with plain loads, or loads and shuffles, instead of one element at a time. */
#define WITH_CONSTANT_STRIDE(s, CALL) \
    do {                              \
        if ((s) == 1)                 \
            CALL(1);                  \
        else if ((s) == 2)            \
            CALL(2);                  \
        else                          \
            CALL(s);                  \
    } while (0)

/* TAP: the index type of max pooling's row scratch, as wide as T so that comparisons and
 * selections of values and indices vectorise lane for lane (float planes are limited to 2^31
 * elements for it). */
#define T float
#define TAP int32_t
#define SUFFIX(name) name##_f32
#include "pool_body.h"
#undef T
#undef TAP
#undef SUFFIX

#define T double
#define TAP int64_t
#define SUFFIX(name) name##_f64
#include "pool_body.h"
#undef T
#undef TAP
#undef SUFFIX
