/* conv_im2col.c — the chapter's c, h and g as im2col + GEMM (col2im for h),
 * float and double from one body (conv_im2col_body.h).
 *
 * c never stores its column matrix: mc_gemm_panels packs it sliver by
 * sliver from x, or from a copy of x padded and split into stride phases
 * (make_taps, padded_size). Neither does g where that pays
 * (weight_grad_implicit_pays): mc_gemm_blocks sums Y' @ X'^T block by block,
 * X'^T packed from the same copies. At stride 1, h is a c too
 * (input_grad_as_forward). Otherwise h and g go through the batch `chunk`
 * images at a time: im2col of the chunk into the caller's workspace, the
 * images side by side, then one GEMM per group for the whole chunk
 * (chunk_layout below). Work is shared out in pieces that do not depend on
 * the thread count, and mc_gemm gives the same bits at any thread count, so
 * neither do the results. The chunk does matter on that route: the weight
 * gradient sums over a chunk's images inside one GEMM, so another chunk
 * groups the sum differently and may change the last bits. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
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
 * convolution makes C of them, each 1 x nb*L x K — run them side by
 * side instead. Threads for `count` independent m x n x k GEMMs; 1 means
 * "one after another, each parallel inside". */
static int small_gemm_threads(int64_t count, int64_t m, int64_t n, int64_t k)
{
    /* With a GEMM for every thread, independent GEMMs side by side beat one parallel GEMM at a
     * time: no barriers inside them (each gives the same bits on one thread as on many). */
    if (count < mc_get_num_threads() && (double)m * (double)n * (double)k >= 2.0e6)
        return 1;
    return threads_for(count, count * m * n * k);
}

/* Tasks [0, count) side by side on nt threads, or, for nt == 1, one after
 * another outside any parallel region. Not inside a one-thread region: a
 * region nested in one gets threads created afresh for it (libgomp pools
 * only the outermost team's), so a task that is parallel inside — an mc_gemm
 * — would start and end a thread per call, and it came too late to help:
 * measured, a weight gradient's GEMMs ran on one thread. The worst error. */
typedef int (*task_fn)(const void *ctx, int64_t t);

static int run_tasks(int nt, int64_t count, task_fn task, const void *ctx)
{
    int rc = MC_OK;
    if (nt <= 1) {
        for (int64_t t = 0; t < count && rc == MC_OK; ++t)
            rc = task(ctx, t);
        return rc;
    }
    #pragma omp parallel for schedule(static) num_threads(nt) reduction(max: rc)
    for (int64_t t = 0; t < count; ++t) {
        const int e = task(ctx, t);
        rc = e > rc ? e : rc;
    }
    return rc;
}

/* A weight gradient has k = nb*L, long, but only cout_g x rows outputs, and
 * mc_gemm shares out output tiles of up to ~144 rows by 256 columns (gemm.c:
 * KMC, GEMM_JW): a W_gr within one tile would run on one thread however many
 * wait at the GEMM's barriers. Such a product is cut along k into slabs that
 * run side by side into partial sums, added in slab order afterwards. The
 * cut depends on the sizes alone, never on the thread count: one slab per
 * ~0.5M multiply-adds, at most 8, none below mc_gemm's own threshold for
 * going parallel (2M). A slab is a whole number of 256-deep k-blocks (every
 * path's k-block divides 256): only the last one can end in a thin block.
 * Returns the slab width, k itself for no cut. */
static int64_t weight_grad_slab(int64_t cout_g, int64_t rows, int64_t k)
{
    const double macs = (double)cout_g * (double)rows * (double)k;
    if (cout_g > 144 || rows > 256 || macs < 2.0e6)
        return k;
    const int64_t slabs = macs >= 8 * 5.0e5 ? 8 : (int64_t)(macs / 5.0e5);
    return ceil_div(k, slabs * 256) * 256;
}

/* The share of the lanes of AVX2 float's 6 x 16 micro-tiles that an m x n
 * product uses (a heuristic for every path). */
static double tile_use(int64_t m, int64_t n)
{
    return (double)m * (double)n / ((double)((m + 5) / 6) * (double)((n + 15) / 16) * 96.0);
}

/* Whether a weight gradient's slabs are better computed transposed, as
 * rows x cout_g: the orientation whose micro-tiles waste fewer lanes (the
 * numbers are the same either way). */
static int transpose_weight_grad(int64_t cout_g, int64_t rows)
{
    return tile_use(rows, cout_g) > tile_use(cout_g, rows);
}

/* A row stride for n columns that is not a multiple of 4 KB: rows 2^k
 * apart share their L1 sets, and packing reads a sliver out of dozens of
 * rows at once, so the next sliver found them evicted. n rounded up to 16
 * elements, an odd multiple of 16: consecutive rows start in different sets. */
static int64_t padded_stride(int64_t n)
{
    const int64_t lines = (n + 15) / 16;
    return (lines | 1) * 16;
}

/* How a chunk of nb images is laid out (sizes and offsets in elements). The
 * workspace holds, in this order, the parts a chunk needs, rows `ld` apart:
 *   X'    C*K x nb*L   the chunk's im2col, image i in columns [i*L, i*L + L)
 *                      (not for a pointwise kernel: image n's X' is x[n] itself)
 *   Y'    O x nb*L     the chunk of y in the same layout, Y'[o, i*L + l] = y[n0+i, o, l]
 *                      (not for a chunk of one image, whose Y' is y[n0] itself)
 *   part  slabs x O x rows   a weight gradient's partial sums, if cut into slabs
 * A chunk of one image keeps ld = L: its workspace is the plain im2col's.
 * Each group then needs one GEMM over the whole chunk, nb*L columns wide. h
 * (where it uses the workspace at all: copies too large, or a pointwise
 * kernel that input_grad_as_forward leaves out, under 8 channels a group) goes
 * image by image instead, GEMMs L wide on y in place, and a pointwise
 * kernel, whose X' cannot sit side by side, goes image by image in both
 * roles. */
typedef struct chunk_layout {
    int pw;            /* pointwise: X' of image n is x[n] */
    int y_in_place;    /* n == L (pointwise, or a chunk of one): Y' is y itself */
    int64_t n, ld;     /* columns of the one-GEMM-per-chunk layout, and their row stride */
    int64_t slab, slabs;  /* a weight gradient's cut along k: width, count (weight_grad_slab) */
    int64_t cols, wide, part, size;  /* offsets of X', Y', part; elements in all */
} chunk_layout;

static chunk_layout layout(const mc_geometry *g, int64_t nb)
{
    const int64_t G = g->groups, L = spatial_size(g->out);
    const int64_t cout_g = g->out_channels / G, rows = g->channels / G * spatial_size(g->kernel);
    chunk_layout c;
    c.pw = pointwise(g);
    c.n = c.pw ? L : nb * L;
    c.y_in_place = c.n == L;
    c.ld = c.y_in_place ? L : padded_stride(c.n);
    c.slab = weight_grad_slab(cout_g, rows, c.n);
    c.slabs = c.slab >= c.n ? 1 : ceil_div(c.n, c.slab);
    c.cols = 0;
    c.wide = c.pw ? 0 : g->channels * spatial_size(g->kernel) * c.ld;
    c.part = c.wide + (c.y_in_place ? 0 : g->out_channels * c.ld);
    c.size = c.part + (c.slabs > 1 ? c.slabs * g->out_channels * rows : 0);
    return c;
}

int64_t mc_conv_im2col_workspace(const mc_geometry *g, int64_t chunk)
{
    if (!conv_geometry_ok(g, 0) || chunk < 1)
        return -1;
    /* the largest part, counted in double first: int64 must not overflow */
    const double K = (double)spatial_size(g->kernel), L = (double)spatial_size(g->out);
    const double per_column = (double)g->channels * K + (double)g->out_channels;
    const double need = per_column * (L * (double)chunk + 32.0)
                      + 8.0 * (double)g->out_channels * (double)g->channels * K;
    if (per_column >= 9.0e18 || need >= 9.0e18)  /* near INT64_MAX = 9.22e18: no such buffer */
        return INT64_MAX;
    return layout(g, chunk).size;
}

/* Where row r = (c, kd, kh, kw) of one group's column matrix reads in
 * channels of size `in`: channel plane offset c*D*H*W and the dilated kernel
 * offsets, so that packing a sliver needs no division per row. With `phases`
 * s > 1 each row of `in` holds its elements w = q*s + r as s runs (phase r,
 * in[2]/s long) one after another (padded_size): tap w then reads phase w % s
 * from q = w / s on, and a window step of s along the output row is a step
 * of 1 in its phase. */
typedef struct tap {
    int64_t plane, d, h, w;
} tap;

static tap *make_taps(const mc_geometry *g, const int64_t in[3], int64_t phases)
{
    const int64_t K = spatial_size(g->kernel), rows = g->channels / g->groups * K;
    tap *taps = malloc((size_t)rows * sizeof *taps);
    if (!taps)
        return NULL;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t k = r % K, kw = k % g->kernel[2], kh = k / g->kernel[2] % g->kernel[1];
        const int64_t kd = k / g->kernel[2] / g->kernel[1], w = kw * g->dilation[2];
        taps[r] = (tap){r / K * spatial_size(in) + w % phases * (in[2] / phases),
                        kd * g->dilation[0], kh * g->dilation[1], w / phases};
    }
    return taps;
}

/* The size of x's channels with their zero padding written out: every
 * position a window reads, padding before and any the last window reads past
 * the end, rows rounded up to a whole number of strides (the copy splits
 * them into stride phases, make_taps). */
static void padded_size(const mc_geometry *g, int64_t padded[3])
{
    for (int a = 0; a < 3; ++a) {
        const int64_t reach = (g->out[a] - 1) * g->stride[a] + (g->kernel[a] - 1) * g->dilation[a] + 1;
        padded[a] = g->pad[a] + g->in[a] > reach ? g->pad[a] + g->in[a] : reach;
    }
    padded[2] = ceil_div(padded[2], g->stride[2]) * g->stride[2];
}

/* even[q] = src[2q], odd[q] = src[2q + 1] for q < n: a row split into its
 * two stride phases. Explicit 16-byte vectors (two loads, two shuffles, two
 * stores), the last block moved back to end at n, so a row has no scalar
 * tail: GCC's own vectorisation of the plain loop spent about twice as long
 * per row, most of it on the remainder (measured on strided's rows, 28 long). */
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
typedef double f64x2 __attribute__((vector_size(16)));
typedef int64_t i64x2 __attribute__((vector_size(16)));

#define DEINTERLEAVE(name, T, V, EVEN, ODD)                                                   \
    static inline void name(const T *restrict src, T *restrict even, T *restrict odd, int64_t n) \
    {                                                                                         \
        const int64_t lanes = (int64_t)(sizeof(V) / sizeof(T));                              \
        if (n < lanes) {                                                                      \
            for (int64_t q = 0; q < n; ++q) {                                                 \
                even[q] = src[2 * q];                                                         \
                odd[q] = src[2 * q + 1];                                                      \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        for (int64_t q = 0;; q += lanes) {                                                    \
            if (q > n - lanes)                                                                \
                q = n - lanes;                                                                \
            V a, b;                                                                           \
            memcpy(&a, src + 2 * q, sizeof a);                                                \
            memcpy(&b, src + 2 * q + lanes, sizeof b);                                        \
            const V e = __builtin_shuffle(a, b, EVEN), o = __builtin_shuffle(a, b, ODD);     \
            memcpy(even + q, &e, sizeof e);                                                   \
            memcpy(odd + q, &o, sizeof o);                                                    \
            if (q == n - lanes)                                                               \
                return;                                                                       \
        }                                                                                     \
    }
DEINTERLEAVE(deinterleave_f32, float, f32x4, ((i32x4){0, 2, 4, 6}), ((i32x4){1, 3, 5, 7}))
DEINTERLEAVE(deinterleave_f64, double, f64x2, ((i64x2){0, 2}), ((i64x2){1, 3}))
#undef DEINTERLEAVE

/* Copies of x cost a pass over x; beyond this many bytes (all threads'
 * copies together) the forward reads x and checks bounds instead. */
#define PADDED_BYTES (16 << 20)

/* Elements of one image's group of channels of x. */
static int64_t group_elements(const mc_geometry *g)
{
    return g->channels / g->groups * spatial_size(g->in);
}

/* Elements after each copy that packing may read past it (pack_copied
 * copies a sliver's width from where a run starts; at most 32). */
#define COPY_SLACK 64

/* Elements of each copy of an (image, group) of x, COPY_SLACK included,
 * when `copies` of them (of `elem`-byte elements) fit PADDED_BYTES together;
 * 0 if not, and for a pointwise kernel's x (each element is packed once). */
static int64_t copy_elements(const mc_geometry *g, int64_t copies, size_t elem)
{
    int64_t padded[3];
    padded_size(g, padded);
    const int64_t size = g->channels / g->groups * spatial_size(padded) + COPY_SLACK;
    return !pointwise(g) && (double)copies * (double)size * (double)elem <= PADDED_BYTES ? size : 0;
}

/* Threads for h and g, whose routes and sums go by the sizes alone (one
 * copy fits), never the thread count: nt, or as many as keep their copies
 * of `images` images each within PADDED_BYTES (nt where x needs no copy). */
static int copy_threads(const mc_geometry *g, int nt, int64_t images, size_t elem)
{
    const double each = (double)images * (double)copy_elements(g, 1, elem) * (double)elem;
    if (each <= 0 || (double)nt * each <= PADDED_BYTES)
        return nt;
    return PADDED_BYTES / each >= 2 ? (int)(PADDED_BYTES / each) : 1;
}

/* h as a c (input_grad_geometry, kernel.h) runs as the forward does, with
 * no column matrix and no col2im. Its geometry, when it exists and pays:
 * stride 1 and pad <= (k - 1)*d on every axis; at least 8 input channels a
 * group, as the forward's GEMM rows (6 a micro-tile); and an input at most a
 * quarter larger than the output, as that forward multiplies over the input,
 * padding the GEMM never reads included. Measured (h alone, one thread):
 * cifar_3x3 1.13x, resnet_3x3 1.15x, conv3d_small 1.21x as fast; LeNet's
 * layers (1 and 6 channels, the input 1.4x and 2.25x the output) half as
 * fast, so not. A pointwise kernel too: its forward packs the transposed
 * weights once for all images, where a GEMM an image packed them per image
 * (pointwise_1x1's h 1.12-1.16x at one thread, 1.07-1.12x at two). */
static int input_grad_as_forward(const mc_geometry *g, mc_geometry *t)
{
    return g->channels / g->groups >= 8
        && (double)spatial_size(g->in) <= 1.25 * (double)spatial_size(g->out)
        && input_grad_geometry(g, t);
}

/* h without a column matrix or col2im (input_grad_implicit) whenever one
 * copy fits, nothing is empty, and there are two tasks or more (one image
 * alone goes GEMM + col2im, parallel inside the GEMM). Measured (h alone, against
 * GEMM + col2im, medians of alternating calls): strided 1.22x at one
 * thread, 1.27x at two; lenet_c1 1.3-1.6x, lenet_c2 1.05x (0.7x before the
 * scatter took channels inner), conv1d_mnist1d 1.47x, MNIST-1D's second
 * layer 1.27x and third 1.0x, depthwise 1.2x; MNIST-1D's first layer (one
 * channel, 5 rows) 0.9x, but no one asks for the gradient of the data. */
static int input_grad_implicit_pays(const mc_geometry *g, int64_t batch, size_t elem)
{
    return batch * g->groups >= 2 && g->channels > 0 && g->out_channels > 0
        && spatial_size(g->kernel) > 0 && spatial_size(g->out) > 0 && spatial_size(g->in) > 0
        && copy_elements(g, 1, elem) > 0;
}

/* h's column panels: a panel of X' (rows x panel) is added into the copy
 * while it is still in L2. */
#define H_PANEL_COLUMNS 64

/* g without a column matrix (weight_grad_implicit) computes W_gr as
 * cout_g x rows, never transposed, and is taken when that uses at least half
 * of the micro-tiles' lanes and the forward's copies fit (or X' is x itself,
 * pointwise). Measured (g alone, one thread, against im2col + GEMM):
 * cifar_3x3 1.41x, resnet_3x3 1.34x, strided 1.47x, LeNet's layers 1.8x and
 * 1.9x, conv3d_small 1.57x; conv1d_mnist1d (32 x 5: 28% of the lanes,
 * transposed 83%) 0.76x, so not. */
static int weight_grad_implicit_pays(const mc_geometry *g, size_t elem)
{
    const int64_t rows = g->channels / g->groups * spatial_size(g->kernel);
    return tile_use(g->out_channels / g->groups, rows) >= 0.5
        && (pointwise(g) || copy_elements(g, 1, elem) > 0);
}

/* The implicit g's cut of the batch's positions into slabs: a power of two,
 * at most 8 and at most `blocks`, each slab at least 1024 positions long so
 * that adding their partial sums (O x rows each) stays small beside the
 * products. From the sizes alone, never the thread count. */
static int64_t implicit_slabs(int64_t positions, int64_t blocks)
{
    int64_t slabs = 1;
    while (slabs < 8 && 2 * slabs <= blocks && positions / (2 * slabs) >= 1024)
        slabs *= 2;
    return slabs;
}

/* The forward's column panels: at most this many columns, so that a panel
 * of B (k-block x panel) stays in L2 beside its A block. */
#define PANEL_COLUMNS 256

/* `columns` cut into *panels equal panels of at most `most` (rounded up to
 * whole 16-column slivers: every kernel's sliver width divides 16 or is 32);
 * returns their width. */
static int64_t cut_panels(int64_t columns, int64_t most, int64_t *panels)
{
    *panels = ceil_div(columns, most);
    return ceil_div(ceil_div(columns, *panels), 16) * 16;
}

/* Images of at most this many output positions go several to a task of c,
 * h or g, their columns side by side, up to 8 times as many: one image alone
 * would fill a fraction of a sliver's lanes (MNIST-1D's 5 of 16) and pay a
 * task's costs for a few FMAs. As many as fit, whole, and whose copies fit
 * TASK_COPY_BYTES. Measured (one role alone, one thread, medians of
 * alternating calls), MNIST-1D's layers of 20, 10 and 5 positions: c
 * 1.04-1.2x, 1.03-1.2x, 1.6x; h 1.08x, 1.25x, 1.7x; g (where implicit)
 * 1.05-1.24x, 1.2-1.26x. At 64 positions
 * (lenet_c2, two images to a panel of 128) and 40 (conv1d_mnist1d, three)
 * c was 0.93-0.98x, so not there. */
#define SMALL_IMAGE 32
/* A task's copies of its tiny images together: within L2. From the sizes
 * alone, never the thread count: g's and h's sums follow the tasks. */
#define TASK_COPY_BYTES (1 << 20)

static int64_t images_per_task(const mc_geometry *g, int64_t batch, size_t elem)
{
    const int64_t L = spatial_size(g->out), size = copy_elements(g, 1, elem);
    int64_t images = L > 0 && L <= SMALL_IMAGE && size > 0 ? 8 * SMALL_IMAGE / L : 1;
    images = images < batch ? images : batch;
    while (images > 1 && (double)images * (double)size * (double)elem > TASK_COPY_BYTES)
        --images;
    return images > 1 ? images : 1;
}

/* PACK(w) with w the sliver width, a constant for each kernel's (gemm.c: 4,
 * 8, 16, 32), so that every packing loop is compiled for a fixed width; any
 * other width as it comes. */
#define WITH_SLIVER_WIDTH(width, PACK) \
    switch (width) {                   \
    case 4: PACK(4); break;            \
    case 8: PACK(8); break;            \
    case 16: PACK(16); break;          \
    case 32: PACK(32); break;          \
    default: PACK(width);              \
    }

/* One task of the forward: which image, which group, and the first column
 * of its panel. */
typedef struct forward_task {
    int64_t image, group, l0;
} forward_task;

#define BODY "conv_im2col_body.h"
#include "for_each_dtype.h"
