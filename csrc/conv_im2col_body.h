/* conv_im2col_body.h — c, h and g by im2col + GEMM for one dtype.
 * conv_im2col.c includes it once per dtype with T and SUFFIX(name) defined.
 *
 * A chunk of nb images sits side by side in the workspace (X' and Y', see
 * chunk_layout in conv_im2col.c), so that each group needs one GEMM per
 * chunk, nb*L columns wide, rather than one per image: for small images the
 * calls were most of the time. With cin_g = C/groups, cout_g = O/groups,
 * K = kD*kH*kW, L = oD*oH*oW, rows = cin_g*K, per group gr X'_gr (rows x nb*L)
 * and Y'_gr (cout_g x nb*L) are its rows of X' and Y', W_gr (cout_g x rows) is
 * w[gr*cout_g ..]:
 *   c:  Y'_gr = W_gr @ X'_gr, then Y' is copied into y
 *   g:  Y' is copied from y, then W_gr (+)= Y'_gr @ X'_gr^T   (chunks in batch order, the first =)
 *   h:  Y' is copied from y, X'_gr = W_gr^T @ Y'_gr, then col2im
 * Where the layout says so, the same products go image by image, one block
 * of L columns each, on y (and, pointwise, x) in place. Transposes are
 * strides handed to mc_gemm, never copies. */

/* Y' (rows ld apart) from y (to_y == 0) or y from Y' (to_y != 0), row by
 * row: each (image, channel) row is one copy of L elements, whatever the
 * thread count. */
static void SUFFIX(spread)(int64_t nb, int64_t O, int64_t L, int64_t ld, int to_y,
                           T *restrict wide, T *restrict y)
{
    const int64_t count = nb * O;
    const int nt = threads_for(count, count * L);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t r = 0; r < count; ++r) {
        T *row = wide + (r % O) * ld + r / O * L;
        if (to_y)
            memcpy(y + r * L, row, (size_t)L * sizeof(T));
        else
            memcpy(row, y + r * L, (size_t)L * sizeof(T));
    }
}

/* One chunk: its layout and place in the batch. */
typedef struct SUFFIX(chunk) {
    chunk_layout at;
    int64_t n0;
    T *work;
} SUFFIX(chunk);

/* What one GEMM works on in group gr: X'_gr (rows x n) and Y'_gr (cout_g x n)
 * with their row strides, for the whole chunk, or, per_image, for its image b
 * (n = L; Y' is then y itself, and X' x itself for a pointwise kernel). The
 * casts: only the role that writes an operand gets it from its output. */
typedef struct SUFFIX(operands) {
    T *cols, *y;
    int64_t ldc, ldy;
} SUFFIX(operands);

static SUFFIX(operands) SUFFIX(block)(const mc_geometry *g, const SUFFIX(chunk) *c, int per_image,
                                      const T *x, const T *y, int64_t b, int64_t gr)
{
    const int64_t C = g->channels, O = g->out_channels, L = spatial_size(g->out);
    const int64_t rows = C / g->groups * spatial_size(g->kernel), cout_g = O / g->groups;
    const int64_t image = c->n0 + (per_image ? b : 0);
    SUFFIX(operands) op;
    if (c->at.pw) {
        op.cols = (T *)x + (image * C + gr * rows) * L;
        op.ldc = L;
    } else {
        op.cols = c->work + c->at.cols + gr * rows * c->at.ld + (per_image ? b * L : 0);
        op.ldc = c->at.ld;
    }
    if (per_image || c->at.y_in_place) {
        op.y = (T *)y + (image * O + gr * cout_g) * L;
        op.ldy = L;
    } else {
        op.y = c->work + c->at.wide + gr * cout_g * c->at.ld;
        op.ldy = c->at.ld;
    }
    return op;
}

/* Images [i0, i1) of a chunk laid out side by side: c (forward) or h on
 * their columns only — im2col, one GEMM per group, the copy to y; or the copy
 * from y, one GEMM per group, col2im. Run once for the whole chunk, each step
 * parallel inside, or side by side for runs of its images, when a chunk of
 * small images is better shared out whole than step by step (one parallel
 * region instead of one per step and barriers inside mc_gemm). Every output
 * column comes out the same either way: the GEMMs' columns are independent. */
static int SUFFIX(run_images)(const mc_geometry *g, const SUFFIX(chunk) *c, int forward,
                              const T *x, const T *w, const T *y, int64_t i0, int64_t i1)
{
    const int64_t C = g->channels, O = g->out_channels, G = g->groups, L = spatial_size(g->out);
    const int64_t cout_g = O / G, rows = C / G * spatial_size(g->kernel);
    const int64_t nr = i1 - i0, n = nr * L, ld = c->at.ld;
    T *x_run = (T *)x + (c->n0 + i0) * C * spatial_size(g->in), *cols = c->work + c->at.cols + i0 * L;
    T *y_run = (T *)y + (c->n0 + i0) * O * L, *wide = c->work + c->at.wide + i0 * L;
    int rc = MC_OK;

    if (forward)
        rc = SUFFIX(mc_im2col_wide)(g, nr, x_run, ld, cols);
    else if (!c->at.y_in_place)
        SUFFIX(spread)(nr, O, L, ld, 0, wide, y_run);
    if (rc != MC_OK)
        return rc;
    const int nt = small_gemm_threads(G, forward ? cout_g : rows, n, forward ? rows : cout_g);
    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(max: rc)
    for (int64_t gr = 0; gr < G; ++gr) {
        const SUFFIX(operands) op = SUFFIX(block)(g, c, 0, x, y, 0, gr);
        const T *wg = w + gr * cout_g * rows;
        const int e = forward
            ? SUFFIX(mc_gemm)(cout_g, n, rows, wg, rows, 1, op.cols + i0 * L, op.ldc, 1,
                              0, op.y + i0 * L, op.ldy)
            : SUFFIX(mc_gemm)(rows, n, cout_g, wg, 1, rows, op.y + i0 * L, op.ldy, 1,
                              0, op.cols + i0 * L, op.ldc);
        rc = e > rc ? e : rc;
    }
    if (rc != MC_OK)
        return rc;
    if (!forward)
        return SUFFIX(mc_col2im_wide)(g, nr, cols, ld, x_run);
    if (!c->at.y_in_place)
        SUFFIX(spread)(nr, O, L, ld, 1, wide, y_run);
    return MC_OK;
}

/* c and h for one chunk: image by image where the layout says so, else over
 * the chunk side by side — in runs of whole images, one per thread, or at
 * once. The casts: h writes x, c writes y. */
static int SUFFIX(chunk_c_or_h)(const mc_geometry *g, const SUFFIX(chunk) *c, int64_t nb,
                                int forward, const T *x, const T *w, const T *y)
{
    const int64_t O = g->out_channels, G = g->groups, L = spatial_size(g->out);
    const int64_t cout_g = O / G, rows = g->channels / G * spatial_size(g->kernel);
    int rc = MC_OK;

    if (!c->at.image_gemms) {
        /* runs of whole images come out even within a quarter from 4 a thread */
        const int runs = nb >= 4 * mc_get_num_threads() ? threads_for(nb, G * cout_g * rows * nb * L) : 1;
        #pragma omp parallel for schedule(static) num_threads(runs) if (runs > 1) reduction(max: rc)
        for (int64_t r = 0; r < runs; ++r) {
            const int e = SUFFIX(run_images)(g, c, forward, x, w, y, nb * r / runs, nb * (r + 1) / runs);
            rc = e > rc ? e : rc;
        }
        return rc;
    }
    if (!c->at.pw && forward)
        rc = SUFFIX(mc_im2col_wide)(g, nb, x + c->n0 * g->channels * spatial_size(g->in), c->at.ld,
                                    c->work + c->at.cols);
    if (rc != MC_OK)
        return rc;
    const int nt = small_gemm_threads(nb * G, forward ? cout_g : rows, L, forward ? rows : cout_g);
    /* one GEMM per (image, group), each writing its own block of y (x's columns);
     * pointwise, X' is x itself, so h's GEMMs write x directly */
    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(max: rc)
    for (int64_t t = 0; t < nb * G; ++t) {
        const SUFFIX(operands) op = SUFFIX(block)(g, c, 1, x, y, t / G, t % G);
        const T *wg = w + t % G * cout_g * rows;
        const int e = forward
            ? SUFFIX(mc_gemm)(cout_g, L, rows, wg, rows, 1, op.cols, op.ldc, 1, 0, op.y, op.ldy)
            : SUFFIX(mc_gemm)(rows, L, cout_g, wg, 1, rows, op.y, op.ldy, 1, 0, op.cols, op.ldc);
        rc = e > rc ? e : rc;
    }
    if (rc == MC_OK && !c->at.pw && !forward)
        rc = SUFFIX(mc_col2im_wide)(g, nb, c->work + c->at.cols, c->at.ld,
                                    (T *)x + c->n0 * g->channels * spatial_size(g->in));
    return rc;
}

/* c (forward) or h: the batch chunk by chunk, each chunk its GEMMs. */
static int SUFFIX(c_or_h)(const mc_geometry *g, int64_t batch, int forward, int64_t chunk, T *work,
                          const T *x, const T *w, const T *y)
{
    if (!conv_geometry_ok(g, batch) || chunk < 1)
        return MC_ERR_ARG;
    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        const SUFFIX(chunk) c = {layout(g, nb), n0, work};
        const int rc = SUFFIX(chunk_c_or_h)(g, &c, nb, forward, x, w, y);
        if (rc != MC_OK)
            return rc;
    }
    return MC_OK;
}

int SUFFIX(mc_conv_forward_im2col)(const mc_geometry *g, int64_t batch,
                                   const T *restrict x, const T *restrict w,
                                   int64_t chunk, T *restrict work, T *restrict y)
{
    return SUFFIX(c_or_h)(g, batch, 1, chunk, work, x, w, y);
}

/* w (+)= the slabs' partial sums, in slab order, each element on its own.
 * Partial s of group gr is W_gr's slab s, cout_g x rows, or its transpose. */
static void SUFFIX(add_slabs)(const mc_geometry *g, int64_t slabs, int transposed,
                              int overwrite, const T *restrict part, T *restrict w)
{
    const int64_t O = g->out_channels, cout_g = O / g->groups;
    const int64_t rows = g->channels / g->groups * spatial_size(g->kernel);
    const int nt = threads_for(O, O * rows * slabs);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t o = 0; o < O; ++o) {
        const T *p = part + o / cout_g * cout_g * rows;  /* group o / cout_g */
        const int64_t i = o % cout_g, rs = transposed ? 1 : rows, cs = transposed ? cout_g : 1;
        for (int64_t r = 0; r < rows; ++r) {
            T sum = overwrite ? p[i * rs + r * cs] : w[o * rows + r] + p[i * rs + r * cs];
            for (int64_t s = 1; s < slabs; ++s)
                sum += p[s * O * rows + i * rs + r * cs];
            w[o * rows + r] = sum;
        }
    }
}

int SUFFIX(mc_conv_weight_grad_im2col)(const mc_geometry *g, int64_t batch,
                                       const T *restrict x, const T *restrict y,
                                       int64_t chunk, T *restrict work, T *restrict w)
{
    if (!conv_geometry_ok(g, batch) || chunk < 1)
        return MC_ERR_ARG;
    const int64_t C = g->channels, O = g->out_channels, G = g->groups;
    const int64_t cout_g = O / G, rows = C / G * spatial_size(g->kernel);
    const int64_t L = spatial_size(g->out);

    if (batch == 0)  /* an empty sum: no GEMM below would write w */
        memset(w, 0, (size_t)(O * rows) * sizeof(T));
    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        const SUFFIX(chunk) c = {layout(g, nb), n0, work};
        const int per_image = c.at.pw;  /* else one block: the k of the sum is long */
        const int64_t n = c.at.n, blocks = per_image ? nb : 1, slabs = c.at.slabs;
        int rc = c.at.pw ? MC_OK
                         : SUFFIX(mc_im2col_wide)(g, nb, x + n0 * C * spatial_size(g->in), c.at.ld,
                                                  work + c.at.cols);
        if (rc != MC_OK)
            return rc;
        if (!per_image && !c.at.y_in_place)
            SUFFIX(spread)(nb, O, L, c.at.ld, 0, work + c.at.wide, (T *)y + n0 * O * L);
        /* One task per (group, slab). Blocks add into the same product, so a
         * task takes them one after another, in batch order. Unsliced, the
         * product is W_gr itself, and the very first one overwrites w; sliced,
         * each slab is a partial sum of its columns, added to w below — and
         * may be computed transposed, X'_gr @ Y'_gr^T, when that shape suits
         * the micro-kernel better (the same products and sums: the same bits). */
        const int tr = slabs > 1 && transpose_weight_grad(cout_g, rows);
        const int nt = slabs > 1 ? threads_for(G * slabs, G * cout_g * rows * n)
                                 : small_gemm_threads(G, cout_g, rows, n);
        #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1) reduction(max: rc)
        for (int64_t t = 0; t < G * slabs; ++t) {
            const int64_t gr = t / slabs, s = t % slabs;
            const int64_t k0 = s * c.at.slab, k1 = k0 + c.at.slab < n ? k0 + c.at.slab : n;
            T *dst = slabs > 1 ? work + c.at.part + (s * G + gr) * cout_g * rows
                               : w + gr * cout_g * rows;
            for (int64_t b = 0; b < blocks; ++b) {
                const SUFFIX(operands) op = SUFFIX(block)(g, &c, per_image, x, y, b, gr);
                const int accumulate = slabs > 1 ? b > 0 : n0 + b > 0;
                const int e = tr ? SUFFIX(mc_gemm)(rows, cout_g, k1 - k0, op.cols + k0, op.ldc, 1,
                                                   op.y + k0, 1, op.ldy, accumulate, dst, cout_g)
                                 : SUFFIX(mc_gemm)(cout_g, rows, k1 - k0, op.y + k0, op.ldy, 1,
                                                   op.cols + k0, 1, op.ldc, accumulate, dst, rows);
                rc = e > rc ? e : rc;
            }
        }
        if (rc != MC_OK)
            return rc;
        if (slabs > 1)
            SUFFIX(add_slabs)(g, slabs, tr, n0 == 0, work + c.at.part, w);
    }
    return MC_OK;
}

int SUFFIX(mc_conv_input_grad_im2col)(const mc_geometry *g, int64_t batch,
                                      const T *restrict w, const T *restrict y,
                                      int64_t chunk, T *restrict work, T *restrict x)
{
    return SUFFIX(c_or_h)(g, batch, 0, chunk, work, x, w, y);
}
