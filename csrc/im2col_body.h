/* im2col_body.h — im2col and col2im for one dtype. im2col.c includes it once
 * per dtype with T (the element type) and SUFFIX(name) (name##_f32 / _f64)
 * defined. */

/* One input channel, both directions in one loop, so that col2im is the
 * transpose of im2col by construction: adjoint == 0 gathers x into the
 * channel's kD*kH*kW rows of cols (padding reads as zero); adjoint == 1
 * zeroes the channel of x and scatter-adds those rows back into it (entries
 * that came from padding are dropped). Each row is oD*oH*oW long and the
 * next one starts `ld` elements later, so the rows can be one image's slice
 * of a wider matrix (the conv kernels put a chunk of images side by side).
 * Loop order: kernel offset (kd, kh, kw) outermost because it is the row of
 * cols, so cols is written (read) strictly sequentially; then output position
 * (od, oh, ow), so the innermost loop walks one row of x with the stride.
 * Those rows are short (8 elements in LeNet), so they are plain loops, the
 * unit and the double stride spelled out for the vectoriser: a memcpy or
 * memset call per row cost more than the row (MC_INLINE_LOOPS). Under 32
 * outputs in all (5 and 10 in MNIST-1D) each row takes one plain loop instead
 * (short_rows, a constant in each copy): the setup of the vector loops, which
 * the compiler hoists to every kernel offset, cost 170 instructions an
 * offset, counted with callgrind — more than such a row. Rows 8 or 16 long
 * (LeNet's second layer, small 3-D volumes) get copies with the length a
 * constant (fixed_ow), unrolled whole: 28% fewer instructions in LeNet's
 * col2im, 11% in its im2col. */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(move_rows)(const mc_geometry *g, const row_span *spans, int adjoint, T *restrict x,
                  T *restrict col, int64_t ld, const int short_rows, const int64_t fixed_ow)
{
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = fixed_ow ? fixed_ow : g->out[2];
    const int64_t s = g->stride[2];

    if (adjoint)
        memset(x, 0, (size_t)(D * H * W) * sizeof(T));
    for (int64_t kd = 0; kd < g->kernel[0]; ++kd)
    for (int64_t kh = 0; kh < g->kernel[1]; ++kh)
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
        const int64_t w_off = spans[kw].offset, lo = spans[kw].lo, hi = spans[kw].hi;
        for (int64_t od = 0; od < oD; ++od) {
            const int64_t id = od * g->stride[0] + kd * g->dilation[0] - g->pad[0];
            T *plane = col + od * oH * oW;
            if (!in_range(id, D)) {
                if (!adjoint)
                    for (int64_t i = 0; i < oH * oW; ++i)
                        plane[i] = 0;
                continue;
            }
            for (int64_t oh = 0; oh < oH; ++oh) {
                const int64_t ih = oh * g->stride[1] + kh * g->dilation[1] - g->pad[1];
                T *crow = plane + oh * oW;
                if (!in_range(ih, H)) {
                    if (!adjoint)
                        for (int64_t ow = 0; ow < oW; ++ow)
                            crow[ow] = 0;
                    continue;
                }
                T *xrow = x + (id * H + ih) * W + w_off; /* xrow[ow * s], ow in [lo, hi) */
                if (short_rows) {
                    for (int64_t ow = lo; ow < hi && adjoint; ++ow)
                        xrow[ow * s] += crow[ow];
                    for (int64_t ow = 0; ow < oW && !adjoint; ++ow)
                        crow[ow] = ow >= lo && ow < hi ? xrow[ow * s] : 0;
                    continue;
                }
                if (adjoint) {
                    if (s == 1)
                        for (int64_t ow = lo; ow < hi; ++ow)
                            xrow[ow] += crow[ow];
                    else
                        for (int64_t ow = lo; ow < hi; ++ow)
                            xrow[ow * s] += crow[ow];
                    continue;
                }
                if (lo > 0 || hi < oW)
                    for (int64_t ow = 0; ow < oW; ++ow)
                        crow[ow] = 0;
                if (s == 1)
                    for (int64_t ow = lo; ow < hi; ++ow)
                        crow[ow] = xrow[ow];
                else if (s == 2)
                    for (int64_t ow = lo; ow < hi; ++ow)
                        crow[ow] = xrow[2 * ow];
                else
                    for (int64_t ow = lo; ow < hi; ++ow)
                        crow[ow] = xrow[ow * s];
            }
        }
        col += ld;
    }
}

static MC_INLINE_LOOPS void SUFFIX(move_channel)(const mc_geometry *g, const row_span *spans,
                                                 int adjoint, T *restrict x, T *restrict col,
                                                 int64_t ld)
{
    if (spatial_size(g->out) < 32)
        SUFFIX(move_rows)(g, spans, adjoint, x, col, ld, 1, 0);
    else if (g->out[2] == 8)
        SUFFIX(move_rows)(g, spans, adjoint, x, col, ld, 0, 8);
    else if (g->out[2] == 16)
        SUFFIX(move_rows)(g, spans, adjoint, x, col, ld, 0, 16);
    else
        SUFFIX(move_rows)(g, spans, adjoint, x, col, ld, 0, 0);
}

/* Parallel over (image, channel): each pair owns its slice of x and its rows
 * of cols, so no two threads touch the same element and every element is
 * computed in the same order whatever the thread count.
 * ld == 0: the public layout, one (C*K) x L matrix per image, one after
 * another (K = kD*kH*kW, L = oD*oH*oW). ld > 0: the images side by side in
 * one (C*K) x ld matrix, image i in columns [i*L, i*L + L) (ld >= batch*L). */
static int SUFFIX(move)(const mc_geometry *g, int64_t batch, int adjoint,
                        T *restrict x, T *restrict cols, int64_t ld)
{
    if (!geometry_ok(g, batch) || ld < 0)
        return MC_ERR_ARG;
    const int64_t C = g->channels, pairs = batch * C;
    const int64_t x_size = spatial_size(g->in);
    const int64_t K = spatial_size(g->kernel), L = spatial_size(g->out);
    if (ld > 0 && ld < batch * L)
        return MC_ERR_ARG;
    const int64_t row_step = ld > 0 ? ld : L;
    const int64_t image_step = ld > 0 ? L : C * K * L;
    const int nt = threads_for(pairs, pairs * (K * L + x_size));
    row_span *spans = row_spans(g);
    if (!spans)
        return MC_ERR_NOMEM;

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t bc = 0; bc < pairs; ++bc)
        SUFFIX(move_channel)(g, spans, adjoint, x + bc * x_size,
                             cols + bc / C * image_step + bc % C * K * row_step, row_step);
    free(spans);
    return MC_OK;
}

/* The casts drop `const` from the array that is only read in that direction. */
int SUFFIX(mc_im2col)(const mc_geometry *g, int64_t batch,
                      const T *restrict x, T *restrict cols)
{
    return SUFFIX(move)(g, batch, 0, (T *)x, cols, 0);
}

int SUFFIX(mc_col2im)(const mc_geometry *g, int64_t batch,
                      const T *restrict cols, T *restrict x)
{
    return SUFFIX(move)(g, batch, 1, x, (T *)cols, 0);
}

int SUFFIX(mc_im2col_wide)(const mc_geometry *g, int64_t batch,
                           const T *restrict x, int64_t ld, T *restrict cols)
{
    return SUFFIX(move)(g, batch, 0, (T *)x, cols, ld);
}

int SUFFIX(mc_col2im_wide)(const mc_geometry *g, int64_t batch,
                           const T *restrict cols, int64_t ld, T *restrict x)
{
    return SUFFIX(move)(g, batch, 1, x, (T *)cols, ld);
}
