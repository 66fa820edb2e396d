/* conv_im2col_body.h — c, h and g by im2col + GEMM for one dtype.
 * conv_im2col.c includes it once per dtype with T and SUFFIX(name) defined.
 *
 * Shapes per image n and group gr (cin_g = C/groups, cout_g = O/groups,
 * K = kD*kH*kW, L = oD*oH*oW, rows = cin_g*K):
 *   cols_n,gr  rows x L       rows gr*rows.. of the image's im2col (C*K x L)
 *   W_gr       cout_g x rows  w[gr*cout_g ..], contiguous
 *   Y_n,gr     cout_g x L     y[n, gr*cout_g ..], contiguous
 *   c:  Y_n,gr  = W_gr @ cols_n,gr
 *   g:  W_gr   += Y_n,gr @ cols_n,gr^T   (summed over n in batch order)
 *   h:  cols_n,gr = W_gr^T @ Y_n,gr, then col2im
 * Transposes are strides handed to mc_gemm, never copies. */

/* The columns of images [n0, n0 + nb): im2col into work, or x itself for a
 * pointwise kernel. */
static int SUFFIX(columns)(const mc_geometry *g, int64_t n0, int64_t nb, int pw,
                           const T *restrict x, T *restrict work, const T **cols)
{
    const T *first = x + n0 * g->channels * spatial_size(g->in);
    if (pw) {
        *cols = first;
        return MC_OK;
    }
    *cols = work;
    return SUFFIX(mc_im2col)(g, nb, first, work);
}

int SUFFIX(mc_conv_forward_im2col)(const mc_geometry *g, int64_t batch,
                                   const T *restrict x, const T *restrict w,
                                   int64_t chunk, T *restrict work, T *restrict y)
{
    if (!conv_geometry_ok(g, batch) || chunk < 1)
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels, G = g->groups;
    const int64_t cout_g = O / G, K = spatial_size(g->kernel), L = spatial_size(g->out);
    const int64_t rows = C / G * K;
    const int pw = pointwise(g);

    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        const T *cols;
        int rc = SUFFIX(columns)(g, n0, nb, pw, x, work, &cols);
        if (rc != MC_OK)
            return rc;
        const int nt = small_gemm_threads(nb * G, cout_g, L, rows);
        /* one GEMM per (image, group), each writing its own block of y */
        #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(max: rc)
        for (int64_t t = 0; t < nb * G; ++t) {
            const int64_t i = t / G, gr = t % G;
            const int e = SUFFIX(mc_gemm)(cout_g, L, rows, w + gr * cout_g * rows, rows, 1,
                                          cols + (i * C * K + gr * rows) * L, L, 1,
                                          0, y + ((n0 + i) * O + gr * cout_g) * L, L);
            rc = e > rc ? e : rc;
        }
        if (rc != MC_OK)
            return rc;
    }
    return MC_OK;
}

int SUFFIX(mc_conv_weight_grad_im2col)(const mc_geometry *g, int64_t batch,
                                       const T *restrict x, const T *restrict y,
                                       int64_t chunk, T *restrict work, T *restrict w)
{
    if (!conv_geometry_ok(g, batch) || chunk < 1)
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels, G = g->groups;
    const int64_t cout_g = O / G, K = spatial_size(g->kernel), L = spatial_size(g->out);
    const int64_t rows = C / G * K;
    const int pw = pointwise(g);

    if (batch == 0)  /* an empty sum: no GEMM below would write w */
        memset(w, 0, (size_t)(O * rows) * sizeof(T));
    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        const T *cols;
        int rc = SUFFIX(columns)(g, n0, nb, pw, x, work, &cols);
        if (rc != MC_OK)
            return rc;
        const int nt = small_gemm_threads(G, cout_g, rows, L);
        /* Parallel over groups only: images add into the same W_gr, so each
         * group takes them one after another, in batch order; the very first
         * product overwrites w instead of adding to it. */
        #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(max: rc)
        for (int64_t gr = 0; gr < G; ++gr)
            for (int64_t i = 0; i < nb; ++i) {
                const int e = SUFFIX(mc_gemm)(cout_g, rows, L,
                                              y + ((n0 + i) * O + gr * cout_g) * L, L, 1,
                                              cols + (i * C * K + gr * rows) * L, 1, L,
                                              n0 + i > 0, w + gr * cout_g * rows, rows);
                rc = e > rc ? e : rc;
            }
        if (rc != MC_OK)
            return rc;
    }
    return MC_OK;
}

int SUFFIX(mc_conv_input_grad_im2col)(const mc_geometry *g, int64_t batch,
                                      const T *restrict w, const T *restrict y,
                                      int64_t chunk, T *restrict work, T *restrict x)
{
    if (!conv_geometry_ok(g, batch) || chunk < 1)
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels, G = g->groups;
    const int64_t cout_g = O / G, K = spatial_size(g->kernel), L = spatial_size(g->out);
    const int64_t rows = C / G * K;
    const int pw = pointwise(g);

    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        /* pointwise: the columns are x itself, so the GEMMs write x directly */
        T *cols = pw ? x + n0 * C * L : work;
        const int nt = small_gemm_threads(nb * G, rows, L, cout_g);
        int rc = MC_OK;
        #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(max: rc)
        for (int64_t t = 0; t < nb * G; ++t) {
            const int64_t i = t / G, gr = t % G;
            const int e = SUFFIX(mc_gemm)(rows, L, cout_g, w + gr * cout_g * rows, 1, rows,
                                          y + ((n0 + i) * O + gr * cout_g) * L, L, 1,
                                          0, cols + (i * C * K + gr * rows) * L, L);
            rc = e > rc ? e : rc;
        }
        if (rc == MC_OK && !pw)
            rc = SUFFIX(mc_col2im)(g, nb, work, x + n0 * C * spatial_size(g->in));
        if (rc != MC_OK)
            return rc;
    }
    return MC_OK;
}
