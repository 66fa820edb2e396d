/* pool_body.h — the pooling kernels for one dtype. pool.c includes it once per dtype with T (the
 * element type), TAP (an index type as wide as T) and SUFFIX(name) (name##_f32 / _f64) defined.
 * A plane is one (image, channel) pair: in = D*H*W elements of x, out = oD*oH*oW of y. */

/* max_plane's rule for an element against its window's maximum so far: it replaces it when larger
 * or NaN (and, at the window's first element, always: the callers' part). */
static inline __attribute__((always_inline)) int SUFFIX(replaces)(T v, T max)
{
    return (v > max) | (v != v);
}

/* Tap `off` of a row of windows (stride s) against the running maxima of outputs [first, end), by
 * max_plane's rules. */
static inline __attribute__((always_inline)) void
SUFFIX(max_tap)(const T *restrict row, TAP base, int64_t off, int64_t first, int64_t end,
                const int64_t s, T *restrict y, TAP *restrict at)
{
    for (int64_t ow = first; ow < end; ++ow) {
        const T v = row[ow * s + off];
        const int take = SUFFIX(replaces)(v, y[ow]) | (at[ow] < 0);
        y[ow] = take ? v : y[ow];
        at[ow] = take ? base + (TAP)(ow * s + off) : at[ow];
    }
}

/* Both taps of a row of 2 x 2 windows (windows.pairs), in order, in one pass against the running
 * maxima of outputs [0, oW): after the first, the window has an element. */
static inline __attribute__((always_inline)) void
SUFFIX(max_pairs)(const T *restrict row, TAP base, int64_t oW, T *restrict y, TAP *restrict at)
{
    for (int64_t ow = 0; ow < oW; ++ow) {
        const T v0 = row[2 * ow], v1 = row[2 * ow + 1];
        const int take0 = SUFFIX(replaces)(v0, y[ow]) | (at[ow] < 0);
        const T y0 = take0 ? v0 : y[ow];
        const TAP a0 = take0 ? base + (TAP)(2 * ow) : at[ow];
        const int take1 = SUFFIX(replaces)(v1, y0);
        y[ow] = take1 ? v1 : y0;
        at[ow] = take1 ? base + (TAP)(2 * ow + 1) : a0;
    }
}

/* A row of 2 x 2 windows (windows.quads) whose two input rows, `top` and `bottom` (flat offsets
 * base and below), are both inside: the four taps in scan order in one pass, straight into y and
 * index, by max_plane's rules with the first tap as the start — no running maxima go to memory and
 * back between the taps, as a tap at a time needs. */
static inline __attribute__((always_inline)) void
SUFFIX(max_quads)(const T *restrict top, const T *restrict bottom, TAP base, TAP below, int64_t oW,
                  T *restrict y, int64_t *restrict index)
{
    for (int64_t ow = 0; ow < oW; ++ow) {
        const T v[4] = {top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]};
        const TAP tap[4] = {base + (TAP)(2 * ow), base + (TAP)(2 * ow + 1), below + (TAP)(2 * ow),
                            below + (TAP)(2 * ow + 1)};
        T m = v[0];
        TAP at = tap[0];
        for (int k = 1; k < 4; ++k) {
            const int take = SUFFIX(replaces)(v[k], m);
            m = take ? v[k] : m;
            at = take ? tap[k] : at;
        }
        y[ow] = m;
        index[ow] = at;
    }
}

/* One plane of max pooling. Row by row: for each tap (kd, kh, kw) in scan order, every output
 * column ow of the row compares its running maximum with its tap (a row of 2 x 2 windows inside
 * the input: all four taps in one pass, max_quads). An element replaces the maximum when it is
 * larger or NaN, or when the window has none yet: so the first maximum in scan order wins a tie,
 * NaN propagates (the last NaN is kept, as PyTorch does), a window of -inf still points at an
 * element, and a window with no element inside the input (possible with dilation) gives -inf and
 * index -1, which scatter and gather skip. */
static void SUFFIX(max_plane)(const mc_geometry *g, const struct windows *win, const T *restrict x,
                              TAP *restrict at, int64_t *restrict index, T *restrict y)
{
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2], s = g->stride[2];
    const int64_t oW = g->out[2];
    for (int64_t od = 0; od < g->out[0]; ++od)
    for (int64_t oh = 0; oh < g->out[1]; ++oh, y += oW, index += oW) {
        const int64_t upper = quad_row(g, win, od, oh), lower = upper + g->dilation[1] * W;
        if (upper >= 0) {
            SUFFIX(max_quads)(x + upper, x + lower, (TAP)upper, (TAP)lower, oW, y, index);
            continue;
        }
        for (int64_t ow = 0; ow < oW; ++ow) {
            y[ow] = -INFINITY;
            at[ow] = -1;
        }
        for (int64_t kd = 0; kd < g->kernel[0]; ++kd) {
            const int64_t id = od * g->stride[0] - g->pad[0] + kd * g->dilation[0];
            if (!in_range(id, D))
                continue;
            for (int64_t kh = 0; kh < g->kernel[1]; ++kh) {
                const int64_t ih = oh * g->stride[1] - g->pad[1] + kh * g->dilation[1];
                if (!in_range(ih, H))
                    continue;
                const T *restrict row = x + (id * H + ih) * W;
                const TAP base = (TAP)((id * H + ih) * W);
                if (win->pairs) {
                    SUFFIX(max_pairs)(row, base, oW, y, at);
                    continue;
                }
                for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
                    const int64_t off = kw * g->dilation[2] - g->pad[2];
#define TAP_LOOP(stride) SUFFIX(max_tap)(row, base, off, win->first[kw], win->end[kw], stride, y, at)
                    WITH_CONSTANT_STRIDE(s, TAP_LOOP);
#undef TAP_LOOP
                }
            }
        }
        for (int64_t ow = 0; ow < oW; ++ow)
            index[ow] = at[ow];
    }
}

/* One plane of adaptive max pooling: windows differ in size, so one element at a time, with the
 * same rules as max_plane. */
static void SUFFIX(adaptive_max_plane)(const mc_geometry *g, const struct windows *win,
                                       const T *restrict x, int64_t *restrict index, T *restrict y)
{
    const int64_t H = g->in[1], W = g->in[2];
    for (int64_t od = 0; od < g->out[0]; ++od)
    for (int64_t oh = 0; oh < g->out[1]; ++oh)
    for (int64_t ow = 0; ow < g->out[2]; ++ow, ++y, ++index) {
        T best = -INFINITY;
        int64_t at = -1;
        for (int64_t d = win->lo[0][od]; d < win->hi[0][od]; ++d)
            for (int64_t h = win->lo[1][oh]; h < win->hi[1][oh]; ++h)
                for (int64_t w = win->lo[2][ow]; w < win->hi[2][ow]; ++w) {
                    const T v = x[(d * H + h) * W + w];
                    if (SUFFIX(replaces)(v, best) || at < 0) {
                        best = v;
                        at = (d * H + h) * W + w;
                    }
                }
        *y = best;
        *index = at;
    }
}

static int SUFFIX(max_forward)(const mc_geometry *g, int64_t batch, int adaptive,
                               const T *restrict x, int64_t *restrict indices, T *restrict y)
{
    if (!geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t planes = batch * g->channels, in = spatial_size(g->in), out = spatial_size(g->out);
    if (sizeof(TAP) < sizeof(int64_t) && in > INT32_MAX)
        return MC_ERR_ARG;
    if (adaptive)
        for (int a = 0; a < 3; ++a)
            if (g->out[a] < 1 || g->in[a] < 1)
                return MC_ERR_ARG;
    struct windows win;
    if (windows_make(&win, g, adaptive, 1) != MC_OK)
        return MC_ERR_NOMEM;
    const int nt = pool_threads(g, batch);
    if (adaptive) {
        #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int64_t p = 0; p < planes; ++p)
            SUFFIX(adaptive_max_plane)(g, &win, x + p * in, indices + p * out, y + p * out);
    } else {
        int failed = 0;
        #pragma omp parallel num_threads(nt) if (nt > 1)
        {
            TAP *at = malloc((size_t)g->out[2] * sizeof(TAP) + 1);
            #pragma omp for schedule(static)
            for (int64_t p = 0; p < planes; ++p) {
                if (at)
                    SUFFIX(max_plane)(g, &win, x + p * in, at, indices + p * out, y + p * out);
                else {
                    #pragma omp atomic write
                    failed = 1;
                }
            }
            free(at);
        }
        if (failed) {
            free(win.buffer);
            return MC_ERR_NOMEM;
        }
    }
    free(win.buffer);
    return MC_OK;
}

int SUFFIX(mc_max_pool_forward)(const mc_geometry *g, int64_t batch, const T *restrict x,
                                int64_t *restrict indices, T *restrict y)
{
    return SUFFIX(max_forward)(g, batch, 0, x, indices, y);
}

int SUFFIX(mc_adaptive_max_pool_forward)(const mc_geometry *g, int64_t batch, const T *restrict x,
                                         int64_t *restrict indices, T *restrict y)
{
    return SUFFIX(max_forward)(g, batch, 1, x, indices, y);
}

/* x = 0, then x[index[o]] += y[o] (accumulate) or = y[o] (the last write wins), per plane in
 * output order. Indices outside the plane (-1 of an empty window) are skipped. */
int SUFFIX(mc_max_pool_scatter)(const mc_geometry *g, int64_t batch, int64_t accumulate,
                                const int64_t *restrict indices, const T *restrict y, T *restrict x)
{
    if (!geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t planes = batch * g->channels, in = spatial_size(g->in), out = spatial_size(g->out);
    const int nt = pool_threads(g, batch);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t p = 0; p < planes; ++p) {
        T *restrict xp = x + p * in;
        const T *restrict yp = y + p * out;
        const int64_t *restrict ip = indices + p * out;
        memset(xp, 0, (size_t)in * sizeof(T));
        if (accumulate) {
            for (int64_t o = 0; o < out; ++o)
                if (in_range(ip[o], in))
                    xp[ip[o]] += yp[o];
        } else {
            for (int64_t o = 0; o < out; ++o)
                if (in_range(ip[o], in))
                    xp[ip[o]] = yp[o];
        }
    }
    return MC_OK;
}

/* y[o] = x[index[o]] per plane (0 for an index outside the plane): the adjoint of the
 * accumulating scatter. */
int SUFFIX(mc_max_pool_gather)(const mc_geometry *g, int64_t batch, const int64_t *restrict indices,
                               const T *restrict x, T *restrict y)
{
    if (!geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t planes = batch * g->channels, in = spatial_size(g->in), out = spatial_size(g->out);
    const int nt = pool_threads(g, batch);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t p = 0; p < planes; ++p) {
        const T *restrict xp = x + p * in;
        T *restrict yp = y + p * out;
        const int64_t *restrict ip = indices + p * out;
        for (int64_t o = 0; o < out; ++o)
            yp[o] = in_range(ip[o], in) ? xp[ip[o]] : (T)0;
    }
    return MC_OK;
}

/* Tap `off` of a row of windows (stride s), row[ow * s + off], for outputs [first, end): added
 * into y, or (adjoint) each output's share added into it. */
static inline __attribute__((always_inline)) void
SUFFIX(avg_tap)(T *restrict row, int64_t off, int64_t first, int64_t end, const int64_t s, int adjoint,
                const T *restrict share, T *restrict y)
{
    if (adjoint)
        for (int64_t ow = first; ow < end; ++ow)
            row[ow * s + off] += share[ow];
    else
        for (int64_t ow = first; ow < end; ++ow)
            y[ow] += row[ow * s + off];
}

/* Both taps of a row of 2 x 2 windows (windows.pairs) in one pass, for outputs [0, oW): added
 * into y as tap by tap would, (y + left) + right, or (adjoint) each output's share added into
 * both. */
static inline __attribute__((always_inline)) void
SUFFIX(avg_pairs)(T *restrict row, int64_t oW, int adjoint, const T *restrict share, T *restrict y)
{
    if (adjoint)
        for (int64_t ow = 0; ow < oW; ++ow) {
            row[2 * ow] += share[ow];
            row[2 * ow + 1] += share[ow];
        }
    else
        for (int64_t ow = 0; ow < oW; ++ow)
            y[ow] = y[ow] + row[2 * ow] + row[2 * ow + 1];
}

/* A row of 2 x 2 windows (windows.quads) whose two input rows are both inside, in one pass: each
 * sum made as tap by tap would, ((0 + top left) + top right) + ..., and divided; or (adjoint) each
 * output over its divisor added into its four elements. */
static inline __attribute__((always_inline)) void
SUFFIX(avg_quads)(T *restrict top, T *restrict bottom, int64_t oW, int adjoint,
                  const T *restrict divisors, T *restrict y)
{
    if (adjoint)
        for (int64_t ow = 0; ow < oW; ++ow) {
            const T share = y[ow] / divisors[ow];
            top[2 * ow] += share;
            top[2 * ow + 1] += share;
            bottom[2 * ow] += share;
            bottom[2 * ow + 1] += share;
        }
    else
        for (int64_t ow = 0; ow < oW; ++ow)
            y[ow] = ((((T)0 + top[2 * ow]) + top[2 * ow + 1]) + bottom[2 * ow] + bottom[2 * ow + 1])
                    / divisors[ow];
}

/* One plane of average pooling (adjoint == 0) or of its adjoint (adjoint == 1), row by row like
 * max_plane. Forward: the row's sums gather tap by tap in scan order, then each is divided by
 * its divisor. Adjoint: x = 0; each output over its divisor (the row `share`) is added to the
 * elements of its window, tap by tap. Padding reads as zero; dilation 1. */
static void SUFFIX(avg_plane)(const mc_geometry *g, const struct windows *win, int adjoint,
                              const T *restrict divisors, T *restrict share, T *restrict x,
                              T *restrict y)
{
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2], s = g->stride[2];
    const int64_t oW = g->out[2];
    if (adjoint)
        memset(x, 0, (size_t)spatial_size(g->in) * sizeof(T));
    for (int64_t od = 0; od < g->out[0]; ++od)
    for (int64_t oh = 0; oh < g->out[1]; ++oh, y += oW, divisors += oW) {
        const int64_t upper = quad_row(g, win, od, oh);  /* dilation is 1 */
        if (upper >= 0) {
            SUFFIX(avg_quads)(x + upper, x + upper + W, oW, adjoint, divisors, y);
            continue;
        }
        if (adjoint) {
            for (int64_t ow = 0; ow < oW; ++ow)
                share[ow] = y[ow] / divisors[ow];
        } else {
            for (int64_t ow = 0; ow < oW; ++ow)
                y[ow] = 0;
        }
        for (int64_t kd = 0; kd < g->kernel[0]; ++kd) {
            const int64_t id = od * g->stride[0] - g->pad[0] + kd;
            if (!in_range(id, D))
                continue;
            for (int64_t kh = 0; kh < g->kernel[1]; ++kh) {
                const int64_t ih = oh * g->stride[1] - g->pad[1] + kh;
                if (!in_range(ih, H))
                    continue;
                T *restrict row = x + (id * H + ih) * W;
                if (win->pairs) {
                    SUFFIX(avg_pairs)(row, oW, adjoint, share, y);
                    continue;
                }
                for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
                    const int64_t off = kw - g->pad[2];
#define TAP_LOOP(stride) SUFFIX(avg_tap)(row, off, win->first[kw], win->end[kw], stride, adjoint, share, y)
                    WITH_CONSTANT_STRIDE(s, TAP_LOOP);
#undef TAP_LOOP
                }
            }
        }
        if (!adjoint)
            for (int64_t ow = 0; ow < oW; ++ow)
                y[ow] /= divisors[ow];
    }
}

static int SUFFIX(avg)(const mc_geometry *g, int64_t batch, int adjoint, int64_t count_include_pad,
                       int64_t divisor_override, T *restrict x, T *restrict y)
{
    if (!geometry_ok(g, batch) || divisor_override < 0)
        return MC_ERR_ARG;
    for (int a = 0; a < 3; ++a)
        if (g->dilation[a] != 1)
            return MC_ERR_ARG;
    const int64_t planes = batch * g->channels, in = spatial_size(g->in), out = spatial_size(g->out);
    if (planes == 0 || out == 0) {  /* no windows: the adjoint's x is all zero */
        if (adjoint)
            memset(x, 0, (size_t)(planes * in) * sizeof(T));
        return MC_OK;
    }
    if (out > (int64_t)(SIZE_MAX / sizeof(T)))
        return MC_ERR_ARG;
    struct windows win;
    if (windows_make(&win, g, 0, count_include_pad) != MC_OK)
        return MC_ERR_NOMEM;
    /* each output's divisor, the same in every plane: made once, not converted per element */
    T *divisors = malloc((size_t)out * sizeof(T));
    if (!divisors) {
        free(win.buffer);
        return MC_ERR_NOMEM;
    }
    for (int64_t o = 0; o < out; ++o) {
        const int64_t od = o / g->out[2] / g->out[1], oh = o / g->out[2] % g->out[1], ow = o % g->out[2];
        divisors[o] = (T)(divisor_override > 0 ? divisor_override
                                               : win.count[0][od] * win.count[1][oh] * win.count[2][ow]);
    }
    const int nt = pool_threads(g, batch);
    int failed = 0;

    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *share = malloc((size_t)g->out[2] * sizeof(T) + 1);  /* the adjoint's row scratch */
        #pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; ++p) {
            if (share)
                SUFFIX(avg_plane)(g, &win, adjoint, divisors, share, x + p * in, y + p * out);
            else {
                #pragma omp atomic write
                failed = 1;
            }
        }
        free(share);
    }
    free(divisors);
    free(win.buffer);
    return failed ? MC_ERR_NOMEM : MC_OK;
}

/* The casts drop `const` from the array that is only read in that direction. */
int SUFFIX(mc_avg_pool_forward)(const mc_geometry *g, int64_t batch, int64_t count_include_pad,
                                int64_t divisor_override, const T *restrict x, T *restrict y)
{
    return SUFFIX(avg)(g, batch, 0, count_include_pad, divisor_override, (T *)x, y);
}

int SUFFIX(mc_avg_pool_adjoint)(const mc_geometry *g, int64_t batch, int64_t count_include_pad,
                                int64_t divisor_override, const T *restrict y, T *restrict x)
{
    return SUFFIX(avg)(g, batch, 1, count_include_pad, divisor_override, x, (T *)y);
}
