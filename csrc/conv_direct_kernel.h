/* conv_direct_kernel.h — the single-thread work units of the direct
 * convolution for one SIMD path and one dtype: one output plane of c, one
 * input plane of h, one (output, input) channel pair of g. conv_direct.c
 * includes it once per (path, dtype), inside a `#pragma GCC target` region
 * for the x86 paths, with these defined:
 *   KT       element type      KNAME(x)  x##_<path>_<dtype>
 *   KSTRUCT  the table struct type for KT
 *   VBYTES   vector register bytes (the flat units' chunks are arrays of them)
 * (all but VBYTES #undef-ed at the end). The loops are plain C; the target in force
 * decides how wide the compiler vectorises them. No function here takes or
 * returns a vector, so the portable drivers may call across targets. */

/* Partial sums of a dot product: one 64-byte vector's worth, so that g's
 * reduction vectorises without -ffast-math (the compiler may not reorder one
 * running sum, but KLANES independent sums are just an elementwise add). */
#define KLANES ((int)(64 / sizeof(KT)))

/* y[j] += a * x[j*s], j < n: one output row of c. The s == 1 copy has a
 * literal unit stride, which the compiler turns into straight vector code. */
static inline void KNAME(row_axpy)(int64_t n, KT a, const KT *restrict x, int64_t s,
                                   KT *restrict y)
{
    if (s == 1)
        for (int64_t j = 0; j < n; ++j)
            y[j] += a * x[j];
    else
        for (int64_t j = 0; j < n; ++j)
            y[j] += a * x[j * s];
}

/* x[j*s] += a * y[j], j < n: one output row of h scattered back to the input
 * row it was read from; the transpose of row_axpy. */
static inline void KNAME(row_scatter)(int64_t n, KT a, const KT *restrict y, int64_t s,
                                      KT *restrict x)
{
    if (s == 1)
        for (int64_t j = 0; j < n; ++j)
            x[j] += a * y[j];
    else
        for (int64_t j = 0; j < n; ++j)
            x[j * s] += a * y[j];
}

/* acc[j % KLANES] += x[j*s] * y[j], j < n: one output row's share of a
 * weight-gradient entry. Which lane an element lands in depends only on its
 * position in the row, so the sum is the same at any thread count. */
static inline void KNAME(row_dot)(int64_t n, const KT *restrict x, int64_t s,
                                  const KT *restrict y, KT *restrict acc)
{
    int64_t j = 0;
    if (s == 1)
        for (; j + KLANES <= n; j += KLANES)
            for (int l = 0; l < KLANES; ++l)
                acc[l] += x[j + l] * y[j + l];
    else
        for (; j + KLANES <= n; j += KLANES)
            for (int l = 0; l < KLANES; ++l)
                acc[l] += x[(j + l) * s] * y[j + l];
    for (int l = 0; j + l < n; ++l)
        acc[l] += x[(j + l) * s] * y[j + l];
}

/* What a unit does with one pair of rows: c adds the input row times a
 * weight to the output row, h scatters the output row times a weight back to
 * the input row (row_axpy's transpose), g adds their dot product to acc. */
enum { KNAME(AXPY), KNAME(SCATTER), KNAME(DOT) };

/* Kernel offset (kd, kh, kw) between one input plane x and one output plane
 * y: every output row whose window row lies inside x, paired with the input
 * row it reads at the stride, its padding cut off in advance by valid_range
 * instead of tested per element. One walk for c, h and g (op, a constant in
 * each unit), so the three visit exactly the same pairs: h is c's transpose
 * and g its weight adjoint by construction. The casts at the call sites drop
 * `const` from the plane that op writes. */
static inline __attribute__((always_inline)) void
KNAME(offset_rows)(const mc_geometry *g, int64_t kd, int64_t kh, int64_t kw, const int op,
                   KT wv, KT *x, KT *y, KT *restrict acc)
{
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2];
    const int64_t oD = g->out[0], oH = g->out[1], oW = g->out[2];
    const int64_t s = g->stride[2];
    const int64_t w_off = kw * g->dilation[2] - g->pad[2];
    int64_t lo, hi;
    valid_range(w_off, s, W, oW, &lo, &hi);
    if (lo >= hi)
        return;
    for (int64_t od = 0; od < oD; ++od) {
        const int64_t id = od * g->stride[0] + kd * g->dilation[0] - g->pad[0];
        if (!in_range(id, D))
            continue;
        for (int64_t oh = 0; oh < oH; ++oh) {
            const int64_t ih = oh * g->stride[1] + kh * g->dilation[1] - g->pad[1];
            if (!in_range(ih, H))
                continue;
            KT *xrow = x + (id * H + ih) * W + lo * s + w_off, *yrow = y + (od * oH + oh) * oW + lo;
            if (op == KNAME(AXPY))
                KNAME(row_axpy)(hi - lo, wv, xrow, s, yrow);
            else if (op == KNAME(SCATTER))
                KNAME(row_scatter)(hi - lo, wv, yrow, s, xrow);
            else
                KNAME(row_dot)(hi - lo, xrow, s, yrow, acc);
        }
    }
}

/* c for one (image, output channel): y (one oD x oH x oW plane) = sum over
 * the group's input planes x[i] and kernel offsets of w[i, k] * shifted x[i].
 * Loop order: input channel and kernel offset outermost, so each weight is
 * one scalar; then output rows (offset_rows), so the innermost loop adds a
 * whole output row times that scalar. The y plane and the current x plane
 * are reused across all (i, k): cache. */
static void KNAME(forward)(const mc_geometry *g, const KT *restrict x,
                           const KT *restrict w, KT *restrict y)
{
    const int64_t cin_g = g->channels / g->groups;

    memset(y, 0, (size_t)spatial_size(g->out) * sizeof(KT));
    for (int64_t i = 0; i < cin_g; ++i, x += spatial_size(g->in))
    for (int64_t kd = 0; kd < g->kernel[0]; ++kd)
    for (int64_t kh = 0; kh < g->kernel[1]; ++kh)
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw)
        KNAME(offset_rows)(g, kd, kh, kw, KNAME(AXPY), *w++, (KT *)x, y, NULL);
}

/* h for one (image, input channel): x (one D x H x W plane) = the sum, over
 * the output channels o of its group, of w[o, i, k] * y[o] scattered back to
 * where c read it. w points at w[first o of the group, i], y at that o's plane.
 * Loop order: forward's with the roles of x and y swapped — output channel
 * and kernel offset outermost (one scalar weight), then output rows.
 * This thread owns the x plane, so the adds need no synchronisation. */
static void KNAME(input_grad)(const mc_geometry *g, const KT *restrict w,
                              const KT *restrict y, KT *restrict x)
{
    const int64_t cin_g = g->channels / g->groups, cout_g = g->out_channels / g->groups;
    const int64_t K = spatial_size(g->kernel);

    memset(x, 0, (size_t)spatial_size(g->in) * sizeof(KT));
    for (int64_t o = 0; o < cout_g; ++o, w += cin_g * K, y += spatial_size(g->out)) {
        const KT *wk = w;
        for (int64_t kd = 0; kd < g->kernel[0]; ++kd)
        for (int64_t kh = 0; kh < g->kernel[1]; ++kh)
        for (int64_t kw = 0; kw < g->kernel[2]; ++kw)
            KNAME(offset_rows)(g, kd, kh, kw, KNAME(SCATTER), *wk++, x, (KT *)y, NULL);
    }
}

/* g for one (output channel o, input channel i of its group): w[o, i, :]
 * (kD*kH*kW entries) = the correlation of y[n, o] with x[n, i] summed over the
 * batch. x points at x[0, i], y at y[0, o]; images are a whole x / y apart.
 * Loop order: kernel offset outermost, because each offset is one output
 * entry and its KLANES partial sums; then images and output rows in order,
 * the innermost loop a dot product of an output row with the input row read
 * at the stride. Every entry is summed in the same order at any thread count. */
static void KNAME(weight_grad)(const mc_geometry *g, int64_t batch, const KT *restrict x,
                               const KT *restrict y, KT *restrict w)
{
    const int64_t x_image = g->channels * spatial_size(g->in);
    const int64_t y_image = g->out_channels * spatial_size(g->out);

    for (int64_t kd = 0; kd < g->kernel[0]; ++kd)
    for (int64_t kh = 0; kh < g->kernel[1]; ++kh)
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
        KT acc[KLANES];
        for (int l = 0; l < KLANES; ++l)
            acc[l] = 0;
        for (int64_t n = 0; n < batch; ++n)
            KNAME(offset_rows)(g, kd, kh, kw, KNAME(DOT), 0, (KT *)x + n * x_image,
                               (KT *)y + n * y_image, acc);
        KT sum = 0;
        for (int l = 0; l < KLANES; ++l)
            sum += acc[l];
        *w++ = sum;
    }
}

/* ---- flat planes at stride 1 (flat_plan, conv_direct.c) ---- */

typedef KT KNAME(vec) __attribute__((vector_size(VBYTES)));
#define KVL ((int)(VBYTES / sizeof(KT)))     /* lanes per vector */
#define KCV ((int)(FLAT_CHUNK / VBYTES))     /* vectors per chunk */
#define KGV ((int)(64 / VBYTES))             /* vectors per KLANES partial sums */

/* y[f] (= if first, else +=) the sum over t < taps of w[t] * x[f + off[t]],
 * f < n (a whole number of chunks). Loop order: chunks outer, offsets inner,
 * so a chunk of y stays in registers while each offset adds one broadcast
 * weight times KCV loads of x. Every y[f] is summed over t in order. */
static void KNAME(flat_taps)(int64_t n, int64_t taps, const int64_t *off, const KT *w,
                             const KT *restrict x, KT *restrict y, int first)
{
    typedef KNAME(vec) V;
    for (int64_t f = 0; f < n; f += KCV * KVL) {
        V acc[KCV];
        _Pragma("GCC unroll 8")
        for (int v = 0; v < KCV; ++v) {
            if (first)
                acc[v] = (V){0};
            else
                memcpy(&acc[v], y + f + v * KVL, sizeof acc[v]);
        }
        for (int64_t t = 0; t < taps; ++t) {
            const KT wv = w[t], *xs = x + f + off[t];
            _Pragma("GCC unroll 8")
            for (int v = 0; v < KCV; ++v) {
                V xv;
                memcpy(&xv, xs + v * KVL, sizeof xv);
                acc[v] += wv * xv;
            }
        }
        memcpy(y + f, acc, sizeof acc);
    }
}

/* acc[t*KLANES + l] += the sum over f < n with f % KLANES == l of
 * x[f + off[t]] * y[f], t < taps. Loop order: four offsets at a time, then f:
 * each load of y feeds four offsets' partial sums, held in registers. */
static void KNAME(flat_dots)(int64_t n, int64_t taps, const int64_t *off, const KT *restrict x,
                             const KT *restrict y, KT *restrict acc)
{
    typedef KNAME(vec) V;
    int64_t t = 0;
    for (; t + 4 <= taps; t += 4) {
        V a[4][KGV];
        memcpy(a, acc + t * KLANES, sizeof a);
        const KT *x0 = x + off[t], *x1 = x + off[t + 1], *x2 = x + off[t + 2], *x3 = x + off[t + 3];
        for (int64_t f = 0; f < n; f += KLANES)
            _Pragma("GCC unroll 4")
            for (int v = 0; v < KGV; ++v) {
                V yv, xv[4];
                memcpy(&yv, y + f + v * KVL, sizeof yv);
                memcpy(&xv[0], x0 + f + v * KVL, sizeof yv);
                memcpy(&xv[1], x1 + f + v * KVL, sizeof yv);
                memcpy(&xv[2], x2 + f + v * KVL, sizeof yv);
                memcpy(&xv[3], x3 + f + v * KVL, sizeof yv);
                _Pragma("GCC unroll 4")
                for (int i = 0; i < 4; ++i)
                    a[i][v] += xv[i] * yv;
            }
        memcpy(acc + t * KLANES, a, sizeof a);
    }
    for (; t < taps; ++t) {
        V a[KGV];
        memcpy(a, acc + t * KLANES, sizeof a);
        for (int64_t f = 0; f < n; f += KLANES)
            _Pragma("GCC unroll 4")
            for (int v = 0; v < KGV; ++v) {
                V yv, xv;
                memcpy(&yv, y + f + v * KVL, sizeof yv);
                memcpy(&xv, x + off[t] + f + v * KVL, sizeof xv);
                a[v] += xv * yv;
            }
        memcpy(acc + t * KLANES, a, sizeof a);
    }
}

/* c for one (image, output channel) at stride 1: each input plane of the
 * group padded in turn into scratch (p->elems), all its offsets added to the
 * output plane, laid out padded in the other half of scratch, which is then
 * cropped into y. Every output is summed over (input plane, offset) in
 * order, as forward() sums it. */
static void KNAME(forward_flat)(const mc_geometry *g, const flat_plan *p, KT *scratch,
                                const KT *restrict x, const KT *restrict w, KT *restrict y)
{
    const int64_t cin_g = g->channels / g->groups, K = spatial_size(g->kernel);
    KT *xp = scratch, *yp = scratch + p->elems;
    if (cin_g == 0) {
        memset(y, 0, (size_t)spatial_size(g->out) * sizeof(KT));
        return;
    }
    for (int64_t i = 0; i < cin_g; ++i) {
        to_padded(p, g->in, p->at, x + i * spatial_size(g->in), xp, sizeof(KT));
        KNAME(flat_taps)(p->n, K, p->off, w + i * K, xp, yp, i == 0);
    }
    from_padded(p, g->out, yp, y, sizeof(KT));
}

/* h for one (image, input channel) at stride 1, as a c: p is the plan of
 * h's geometry as a forward (y's planes padded by (k - 1)*d - pad, its
 * offsets flipped), w and y as input_grad() takes them. Every input is
 * summed over (output channel, offset) in order, as input_grad() sums it. */
static void KNAME(input_grad_flat)(const mc_geometry *g, const flat_plan *p, KT *scratch,
                                   const KT *restrict w, const KT *restrict y, KT *restrict x)
{
    const int64_t cin_g = g->channels / g->groups, cout_g = g->out_channels / g->groups;
    const int64_t K = spatial_size(g->kernel), L = spatial_size(g->out);
    KT *yp = scratch, *xp = scratch + p->elems;
    if (cout_g == 0) {
        memset(x, 0, (size_t)spatial_size(g->in) * sizeof(KT));
        return;
    }
    for (int64_t o = 0; o < cout_g; ++o) {
        to_padded(p, g->out, p->at, y + o * L, yp, sizeof(KT));
        KNAME(flat_taps)(p->n, K, p->off, w + o * cin_g * K, yp, xp, o == 0);
    }
    from_padded(p, g->in, xp, x, sizeof(KT));
}

/* g for one (output channel, input channel) at stride 1: per image, the
 * input plane padded and the output plane laid out like it (zeros past each
 * row, so the positions computed there add nothing), then every offset's
 * KLANES partial sums over the flat plane (flat_dots). Scratch holds both
 * planes and K*KLANES sums. Summed image by image in order, at any thread
 * count. */
static void KNAME(weight_grad_flat)(const mc_geometry *g, const flat_plan *p, KT *scratch,
                                    int64_t batch, const KT *restrict x, const KT *restrict y,
                                    KT *restrict w)
{
    const int64_t K = spatial_size(g->kernel), origin[3] = {0, 0, 0};
    const int64_t x_image = g->channels * spatial_size(g->in);
    const int64_t y_image = g->out_channels * spatial_size(g->out);
    KT *xp = scratch, *yp = scratch + p->elems, *acc = scratch + 2 * p->elems;
    memset(acc, 0, (size_t)(K * KLANES) * sizeof(KT));
    for (int64_t n = 0; n < batch; ++n) {
        to_padded(p, g->in, p->at, x + n * x_image, xp, sizeof(KT));
        to_padded(p, g->out, origin, y + n * y_image, yp, sizeof(KT));
        KNAME(flat_dots)(p->n, K, p->off, xp, yp, acc);
    }
    for (int64_t k = 0; k < K; ++k) {
        KT sum = 0;
        for (int l = 0; l < KLANES; ++l)
            sum += acc[k * KLANES + l];
        w[k] = sum;
    }
}

static const struct KSTRUCT KNAME(conv_direct) = {
    KNAME(forward), KNAME(input_grad), KNAME(weight_grad),
    KNAME(forward_flat), KNAME(input_grad_flat), KNAME(weight_grad_flat),
};

#undef KVL
#undef KCV
#undef KGV
#undef KLANES
/* The parameters are this inclusion's only: the next one defines its own. */
#undef KT
#undef KNAME
#undef KSTRUCT
