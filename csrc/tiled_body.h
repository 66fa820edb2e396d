/* tiled_body.h — tiled convolution's forward, input gradient and weight gradient for
 * one dtype. tiled.c includes it once per dtype with T (the element type) and
 * SUFFIX(name) (name##_f32 / _f64) defined.
 *
 * Layouts (contiguous): x (batch, C_in, D, H, W), y (batch, C_out, oD, oH, oW),
 * w (C_out, C_in, kD, kH, kW, tD, tH, tW). Output position p = (od, oh, ow) uses the
 * kernel slice w[o, i, :, :, :, od % tD, oh % tH, ow % tW]:
 *   y[n,o,p] = sum_{i,k} w[o,i,k, p % tile] x[n,i, p*stride + k*dilation - pad]. */

/* One (input channel, weight slice w[o,i], output channel) triple over every kernel
 * tap, in one of the three roles, so that the two gradients are the transposes of the
 * forward pass by construction:
 *   TILED_FORWARD      y[p]          += w[k, p % tile] * x[p*s + k - pad]
 *   TILED_INPUT_GRAD   x[p*s + k - pad] += w[k, p % tile] * y[p]
 *   TILED_WEIGHT_GRAD  w[k, p % tile] += sum_p y[p] * x[p*s + k - pad]
 * Reads and writes of x that fall in the padding are skipped.
 * Loop order: kernel tap (kd, kh, kw) outermost, as in im2col, so the valid range of
 * ow is computed once per tap; then output rows (od, oh), where the tile row
 * (od % tD, oh % tH) is fixed; then the tile column tw, so that each pass of the
 * innermost loop uses one weight (ow = tw, tw + tW, ...: stride tW in y, tW*stride in
 * x) and has neither a modulo nor a bounds test. With tW = 1 that is the plain
 * convolution's contiguous loop. With tW >= oW (locally connected) every pass would
 * be a single position, so one contiguous pass reads the weight row wrow[ow] instead. */
static void SUFFIX(tiled_pair)(const mc_geometry *g, int role,
                               T *restrict x, T *restrict w, T *restrict y)
{
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t oH = g->out[1], oW = g->out[2];
    const int64_t tD = g->tile[0], tH = g->tile[1], tW = g->tile[2];
    const int64_t tiles = spatial_size(g->tile);
    const int64_t s = g->stride[2];

    for (int64_t kd = 0; kd < g->kernel[0]; ++kd)
    for (int64_t kh = 0; kh < g->kernel[1]; ++kh)
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
        T *w_tap = w + ((kd * g->kernel[1] + kh) * g->kernel[2] + kw) * tiles;
        const int64_t w_off = kw * g->dilation[2] - g->pad[2];
        int64_t lo, hi;
        valid_range(w_off, s, W, oW, &lo, &hi);
        for (int64_t od = 0; od < g->out[0]; ++od) {
            const int64_t id = od * g->stride[0] + kd * g->dilation[0] - g->pad[0];
            if (!in_range(id, D))
                continue;
            for (int64_t oh = 0; oh < oH; ++oh) {
                const int64_t ih = oh * g->stride[1] + kh * g->dilation[1] - g->pad[1];
                if (!in_range(ih, H))
                    continue;
                T *xrow = x + (id * H + ih) * W;
                T *yrow = y + (od * oH + oh) * oW;
                T *wrow = w_tap + ((od % tD) * tH + oh % tH) * tW;
                if (tW >= oW) {
                    /* No sharing along the row (locally connected): position ow has its
                     * own weight wrow[ow], and one contiguous pass does every ow. */
                    if (role == TILED_FORWARD)
                        for (int64_t ow = lo; ow < hi; ++ow)
                            yrow[ow] += wrow[ow] * xrow[ow * s + w_off];
                    else if (role == TILED_INPUT_GRAD)
                        for (int64_t ow = lo; ow < hi; ++ow)
                            xrow[ow * s + w_off] += wrow[ow] * yrow[ow];
                    else
                        for (int64_t ow = lo; ow < hi; ++ow)
                            wrow[ow] += yrow[ow] * xrow[ow * s + w_off];
                    continue;
                }
                for (int64_t tw = 0; tw < tW && tw < hi; ++tw) {
                    /* the first ow >= lo with ow % tW == tw */
                    const int64_t first = tw >= lo ? tw : tw + (lo - tw + tW - 1) / tW * tW;
                    if (role == TILED_FORWARD) {
                        const T wv = wrow[tw];
                        for (int64_t ow = first; ow < hi; ow += tW)
                            yrow[ow] += wv * xrow[ow * s + w_off];
                    } else if (role == TILED_INPUT_GRAD) {
                        const T wv = wrow[tw];
                        for (int64_t ow = first; ow < hi; ow += tW)
                            xrow[ow * s + w_off] += wv * yrow[ow];
                    } else {
                        T acc = 0;
                        for (int64_t ow = first; ow < hi; ow += tW)
                            acc += yrow[ow] * xrow[ow * s + w_off];
                        wrow[tw] += acc;
                    }
                }
            }
        }
    }
}

/* Forward, parallel over (image n, output channel o): each pair owns y[n,o], and sums
 * its input channels i in order, so every output is computed in the same order
 * whatever the thread count. */
int SUFFIX(mc_tiled_forward)(const mc_geometry *g, int64_t batch,
                             const T *restrict x, const T *restrict w, T *restrict y)
{
    if (!tiled_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels;
    const int64_t x_size = spatial_size(g->in), y_size = spatial_size(g->out);
    const int64_t w_size = spatial_size(g->kernel) * spatial_size(g->tile);
    const int64_t pairs = batch * O;
    const int nt = threads_for(pairs, work_size(pairs * y_size, C * spatial_size(g->kernel)));

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t no = 0; no < pairs; ++no) {
        const int64_t n = no / O, o = no % O;
        T *y_no = y + no * y_size;
        memset(y_no, 0, (size_t)y_size * sizeof(T));
        for (int64_t i = 0; i < C; ++i)
            SUFFIX(tiled_pair)(g, TILED_FORWARD, (T *)x + (n * C + i) * x_size,
                               (T *)w + (o * C + i) * w_size, y_no);
    }
    return MC_OK;
}

/* Input gradient, parallel over (image n, input channel i): each pair owns x[n,i]
 * (zeroed first) and scatter-adds every output channel o into it, in order. */
int SUFFIX(mc_tiled_input_grad)(const mc_geometry *g, int64_t batch,
                                const T *restrict w, const T *restrict y, T *restrict x)
{
    if (!tiled_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels;
    const int64_t x_size = spatial_size(g->in), y_size = spatial_size(g->out);
    const int64_t w_size = spatial_size(g->kernel) * spatial_size(g->tile);
    const int64_t pairs = batch * C;
    const int nt = threads_for(pairs, work_size(batch * O * y_size, C * spatial_size(g->kernel)));

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t ni = 0; ni < pairs; ++ni) {
        const int64_t n = ni / C, i = ni % C;
        T *x_ni = x + ni * x_size;
        memset(x_ni, 0, (size_t)x_size * sizeof(T));
        for (int64_t o = 0; o < O; ++o)
            SUFFIX(tiled_pair)(g, TILED_INPUT_GRAD, x_ni, (T *)w + (o * C + i) * w_size,
                               (T *)y + (n * O + o) * y_size);
    }
    return MC_OK;
}

/* Weight gradient, parallel over (output channel o, input channel i): each pair owns
 * w[o,i,...] (zeroed first) and sums the images n, then the positions, in order. */
int SUFFIX(mc_tiled_weight_grad)(const mc_geometry *g, int64_t batch,
                                 const T *restrict x, const T *restrict y, T *restrict w)
{
    if (!tiled_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels;
    const int64_t x_size = spatial_size(g->in), y_size = spatial_size(g->out);
    const int64_t w_size = spatial_size(g->kernel) * spatial_size(g->tile);
    const int64_t pairs = O * C;
    const int nt = threads_for(pairs, work_size(batch * O * y_size, C * spatial_size(g->kernel)));

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t oi = 0; oi < pairs; ++oi) {
        const int64_t o = oi / C, i = oi % C;
        T *w_oi = w + oi * w_size;
        memset(w_oi, 0, (size_t)w_size * sizeof(T));
        for (int64_t n = 0; n < batch; ++n)
            SUFFIX(tiled_pair)(g, TILED_WEIGHT_GRAD, (T *)x + (n * C + i) * x_size, w_oi,
                               (T *)y + (n * O + o) * y_size);
    }
    return MC_OK;
}
