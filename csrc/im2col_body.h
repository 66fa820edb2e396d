/* im2col_body.h — im2col and col2im for one dtype. im2col.c includes it once
 * per dtype with T (the element type) and SUFFIX(name) (name##_f32 / _f64)
 * defined. */

/* One input channel, both directions in one loop, so that col2im is the
 * transpose of im2col by construction: adjoint == 0 gathers x into the
 * channel's kD*kH*kW rows of cols (padding reads as zero); adjoint == 1
 * zeroes the channel of x and scatter-adds those rows back into it (entries
 * that came from padding are dropped).
 * Loop order: kernel offset (kd, kh, kw) outermost because it is the row of
 * cols, so cols is written (read) strictly sequentially; then output position
 * (od, oh, ow), so the innermost loop walks one row of x with the stride. */
static void SUFFIX(move_channel)(const mc_geometry *g, int adjoint,
                                 T *restrict x, T *restrict col)
{
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];

    if (adjoint)
        memset(x, 0, (size_t)(D * H * W) * sizeof(T));
    for (int64_t kd = 0; kd < g->kernel[0]; ++kd)
    for (int64_t kh = 0; kh < g->kernel[1]; ++kh)
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
        const int64_t w_off = kw * g->dilation[2] - g->pad[2];
        int64_t lo, hi;
        valid_range(w_off, g->stride[2], W, oW, &lo, &hi);
        for (int64_t od = 0; od < oD; ++od) {
            const int64_t id = od * g->stride[0] + kd * g->dilation[0] - g->pad[0];
            T *plane = col + od * oH * oW;
            if (!in_range(id, D)) {
                if (!adjoint)
                    memset(plane, 0, (size_t)(oH * oW) * sizeof(T));
                continue;
            }
            for (int64_t oh = 0; oh < oH; ++oh) {
                const int64_t ih = oh * g->stride[1] + kh * g->dilation[1] - g->pad[1];
                T *crow = plane + oh * oW;
                if (!in_range(ih, H)) {
                    if (!adjoint)
                        memset(crow, 0, (size_t)oW * sizeof(T));
                    continue;
                }
                T *xrow = x + (id * H + ih) * W;
                const int64_t s = g->stride[2];
                if (adjoint) {
                    for (int64_t ow = lo; ow < hi; ++ow)
                        xrow[ow * s + w_off] += crow[ow];
                } else {
                    memset(crow, 0, (size_t)lo * sizeof(T));
                    for (int64_t ow = lo; ow < hi; ++ow)
                        crow[ow] = xrow[ow * s + w_off];
                    memset(crow + hi, 0, (size_t)(oW - hi) * sizeof(T));
                }
            }
        }
        col += oD * oH * oW;
    }
}

/* Parallel over (image, channel): each pair owns its slice of x and its rows
 * of cols, so no two threads touch the same element and every element is
 * computed in the same order whatever the thread count. */
static int SUFFIX(move)(const mc_geometry *g, int64_t batch, int adjoint,
                        T *restrict x, T *restrict cols)
{
    if (!geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t pairs = batch * g->channels;
    const int64_t x_size = g->in[0] * g->in[1] * g->in[2];
    const int64_t rows = g->kernel[0] * g->kernel[1] * g->kernel[2];
    const int64_t col_size = rows * g->out[0] * g->out[1] * g->out[2];
    const int nt = threads_for(pairs, pairs * (col_size + x_size));

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t bc = 0; bc < pairs; ++bc)
        SUFFIX(move_channel)(g, adjoint, x + bc * x_size, cols + bc * col_size);
    return MC_OK;
}

/* The casts drop `const` from the array that is only read in that direction. */
int SUFFIX(mc_im2col)(const mc_geometry *g, int64_t batch,
                      const T *restrict x, T *restrict cols)
{
    return SUFFIX(move)(g, batch, 0, (T *)x, cols);
}

int SUFFIX(mc_col2im)(const mc_geometry *g, int64_t batch,
                      const T *restrict cols, T *restrict x)
{
    return SUFFIX(move)(g, batch, 1, x, (T *)cols);
}
