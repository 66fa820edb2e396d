/* conv_im2col_body.h — c, h and g by im2col + GEMM for one dtype.
 * conv_im2col.c includes it once per dtype with T and SUFFIX(name) defined.
 *
 * With cin_g = C/groups, cout_g = O/groups, K = kD*kH*kW, L = oD*oH*oW,
 * rows = cin_g*K, W_gr (cout_g x rows) is w[gr*cout_g ..], and X'_gr, Y'_gr
 * are group gr's rows of the column matrix and of y:
 *   c:  Y'_gr = W_gr @ X'_gr      X' never stored: each sliver packed from x (mc_gemm_panels)
 *   g:  W_gr (+)= Y'_gr @ X'_gr^T (chunks in batch order, the first =), or
 *       W_gr = the sum of Y'_block @ X'_block^T, X'^T packed from x (mc_gemm_blocks)
 *   h:  X'_gr = W_gr^T @ Y'_gr, each panel of X' added into a copy of x (input_grad_implicit);
 *       at stride 1, a c (input_grad_by_forward); without copies, X' then col2im
 * For g a chunk of nb images sits side by side in the workspace (X' and Y',
 * see chunk_layout in conv_im2col.c), so that each group needs one GEMM per
 * chunk, nb*L columns wide, rather than one per image: for small images the
 * calls were most of the time. Where the layout says so (and for h), the
 * same products go image by image, one block of L columns each, on y (and,
 * pointwise, x) in place. Transposes are strides handed to mc_gemm, never
 * copies. */

#define TT T
#define TNAME SUFFIX
#include "transpose.h" /* KQ, SUFFIX(lines_across) */

/* Y' (rows ld apart) from y, row by row: each (image, channel) row is one
 * copy of L elements, whatever the thread count. */
static void SUFFIX(spread)(int64_t nb, int64_t O, int64_t L, int64_t ld, T *restrict wide,
                           const T *restrict y)
{
    const int64_t count = nb * O;
    const int nt = threads_for(count, count * L);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t r = 0; r < count; ++r)
        memcpy(wide + (r % O) * ld + r / O * L, y + r * L, (size_t)L * sizeof(T));
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

/* What h's tasks share: one chunk of nb images. */
typedef struct SUFFIX(h_job) {
    const mc_geometry *g;
    const SUFFIX(chunk) *c;
    T *x;
    const T *w, *y;
} SUFFIX(h_job);

/* Task t: X' of (image, group) t / G, t % G of a chunk laid out image by image. */
static int SUFFIX(h_image)(const void *ctx, int64_t t)
{
    const SUFFIX(h_job) *job = ctx;
    const mc_geometry *g = job->g;
    const int64_t G = g->groups, L = spatial_size(g->out), cout_g = g->out_channels / G;
    const int64_t rows = g->channels / G * spatial_size(g->kernel);
    const SUFFIX(operands) op = SUFFIX(block)(g, job->c, 1, job->x, job->y, t / G, t % G);
    return SUFFIX(mc_gemm)(rows, L, cout_g, job->w + t % G * cout_g * rows, 1, rows, op.y, op.ldy, 1,
                           0, op.cols, op.ldc);
}

/* h for one chunk, where the copies of input_grad_implicit do not fit (or
 * X' is x itself: pointwise with fewer than 8 input channels a group, else
 * h runs as a forward): one GEMM per (image, group), each writing its
 * own block of X', then col2im; pointwise, the GEMMs write x directly. */
static int SUFFIX(chunk_input_grad)(const mc_geometry *g, const SUFFIX(chunk) *c, int64_t nb,
                                    T *x, const T *w, const T *y)
{
    const int64_t O = g->out_channels, G = g->groups, L = spatial_size(g->out);
    const int64_t cout_g = O / G, rows = g->channels / G * spatial_size(g->kernel);
    const SUFFIX(h_job) job = {g, c, x, w, y};

    /* side by side in whole rounds of one per thread; what is left over (3
     * images on 2 threads) one after another, each parallel inside: the same bits */
    const int nt = small_gemm_threads(nb * G, rows, L, cout_g);
    const int64_t side = nt > 1 ? nb * G - nb * G % nt : 0;
    int rc = run_tasks(nt, side, SUFFIX(h_image), &job);
    for (int64_t t = side; t < nb * G && rc == MC_OK; ++t)
        rc = SUFFIX(h_image)(&job, t);
    if (rc == MC_OK && !c->at.pw)
        rc = SUFFIX(mc_col2im_wide)(g, nb, c->work + c->at.cols, c->at.ld,
                                    x + c->n0 * g->channels * spatial_size(g->in));
    return rc;
}

/* c without a column matrix: the GEMM Y_n,gr = W_gr @ X'_n,gr of every image
 * and group, in column panels (see mc_gemm_panels), each sliver of X' packed
 * as the micro-kernel is about to read it. Whenever they fit PADDED_BYTES,
 * from a copy of the (image, group), one per thread, with its zero padding
 * written out and its rows split into stride phases (pad_channels): then a
 * window step along an output row is a unit step in the copy, and a sliver
 * row is a few fixed-length copies from one offset per X' row (pack_copied).
 * Without copies (huge images, or a pointwise kernel, whose elements are
 * each packed once) straight from x, bounds checked (pack_columns).
 * Measured against packing from x: cifar_3x3's packing fell from 0.24 to
 * 0.15 of the macro-kernel's time, strided's from 0.59 to 0.44, lenet_c2's
 * from 1.9 to 1.45 (perf sample ratios). Tiny images (images_per_task) go
 * several to a task: their copies one after another, their columns side by
 * side in one panel, its C made in scratch and copied into y (forward_take). */
typedef struct SUFFIX(forward_job) {
    const mc_geometry *g;
    tap *taps;             /* the rows of X'_gr: where each one reads in a group's channels */
    int64_t *rows;         /* the same as offsets into a copy, from where a run of columns starts */
    int64_t in[3], out[3]; /* x's sizes (the copy's, if any); for a pointwise kernel one row (1, 1, L) */
    int64_t copy_in[3];    /* the copy's sizes, as pad_channels writes it */
    T *padded;             /* per thread, a task's (images, group) of x padded and split, or NULL */
    int64_t copy_size;     /* elements of each image's copy, zeroed slack after it included */
    int64_t *holds;        /* per thread, which image * G + group its copy starts at, -1 none */
    int64_t images;        /* images a task takes side by side (tiny ones; then one panel each) */
    int64_t batch;
    int64_t panels;        /* column panels per task */
    int64_t panel_width;   /* columns in each (the last may have fewer) */
    int64_t ahead;         /* how far on in x the same tap reads one output row later */
    int flat;              /* a pointwise kernel: X' is x itself (pack_flat) */
    const T *x;
    T *y;
} SUFFIX(forward_job);

/* Task t of the forward is panel t % panels of group (t / panels) % G of
 * images [i, i + images) from i = t / panels / G * images, whose columns are
 * theirs side by side. */
static forward_task SUFFIX(forward_task_of)(const SUFFIX(forward_job) *job, int64_t t)
{
    const int64_t G = job->g->groups;
    return (forward_task){t / job->panels / G * job->images, t / job->panels % G,
                          t % job->panels * job->panel_width};
}

/* How many images a task from `image` on takes: job->images, fewer at the
 * end of the batch. */
static int64_t SUFFIX(task_images)(const SUFFIX(forward_job) *job, int64_t image)
{
    return job->batch - image < job->images ? job->batch - image : job->images;
}

/* The columns of task `at`'s panel: its images' positions side by side,
 * from at.l0; none for the last panels of a last task of fewer images. */
static int64_t SUFFIX(panel_columns)(const SUFFIX(forward_job) *job, forward_task at)
{
    const int64_t left = SUFFIX(task_images)(job, at.image) * spatial_size(job->g->out) - at.l0;
    return left < 0 ? 0 : left < job->panel_width ? left : job->panel_width;
}

/* Column l of a task (position l % L of its image l / L) in the task's
 * copies: the offset where its window starts, and *run, how many columns
 * from l on, up to `end`, share its output row (so step along the copy). */
static int64_t SUFFIX(run_at)(const SUFFIX(forward_job) *job, int64_t l, int64_t end, int64_t *run)
{
    const mc_geometry *g = job->g;
    const int64_t H = job->in[1], W = job->in[2], oH = job->out[1], oW = job->out[2], L = spatial_size(g->out);
    const int64_t ow = l % oW, oh = l / oW % oH, od = l % L / oW / oH;
    *run = oW - ow < end - l ? oW - ow : end - l;
    return l / L * job->copy_size + (od * g->stride[0] * H + oh * g->stride[1]) * W + ow;
}

/* One group's channels of one image, x, into dst with their zero padding
 * written out and each row split into stride phases (job->copy_in is the
 * padded size; make_taps says how a row is split). */
static MC_INLINE_LOOPS void SUFFIX(pad_channels)(const SUFFIX(forward_job) *job, const T *restrict x,
                                                T *restrict dst)
{
    const mc_geometry *g = job->g;
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2], cin_g = g->channels / g->groups;
    const int64_t pD = job->copy_in[0], pH = job->copy_in[1], pW = job->copy_in[2], s = g->stride[2];
    const int64_t Q = pW / s;  /* a phase's length */
    int64_t lo[2], hi[2];      /* at stride 2, the q that read x in each phase, and in both */
    for (int r = 0; r < 2; ++r)
        valid_range(r - g->pad[2], 2, W, Q, &lo[r], &hi[r]);
    const int64_t both_lo = lo[0] > lo[1] ? lo[0] : lo[1], both_hi = hi[0] < hi[1] ? hi[0] : hi[1];
    for (int64_t c = 0; c < cin_g; ++c)
        for (int64_t d = 0; d < pD; ++d)
            for (int64_t h = 0; h < pH; ++h) {
                T *row = dst + ((c * pD + d) * pH + h) * pW;
                const int64_t id = d - g->pad[0], ih = h - g->pad[1];
                if (!in_range(id, D) || !in_range(ih, H)) {
                    memset(row, 0, (size_t)pW * sizeof(T));
                    continue;
                }
                const T *src = x + ((c * D + id) * H + ih) * W - g->pad[2];
                if (s == 1) {  /* rows of a few dozen elements: loops, not library calls */
                    for (int64_t w = 0; w < g->pad[2]; ++w)
                        row[w] = 0;
                    for (int64_t w = g->pad[2]; w < g->pad[2] + W; ++w)
                        row[w] = src[w];
                    for (int64_t w = g->pad[2] + W; w < pW; ++w)
                        row[w] = 0;
                    continue;
                }
                if (s == 2) {  /* both phases in one pass, even and odd elements */
                    T *even = row, *odd = row + Q;
                    for (int64_t q = 0; q < both_lo; ++q) {
                        even[q] = in_range(2 * q - g->pad[2], W) ? src[2 * q] : 0;
                        odd[q] = in_range(2 * q + 1 - g->pad[2], W) ? src[2 * q + 1] : 0;
                    }
                    SUFFIX(deinterleave)(src + 2 * both_lo, even + both_lo, odd + both_lo, both_hi - both_lo);
                    for (int64_t q = both_hi; q < Q; ++q) {
                        even[q] = in_range(2 * q - g->pad[2], W) ? src[2 * q] : 0;
                        odd[q] = in_range(2 * q + 1 - g->pad[2], W) ? src[2 * q + 1] : 0;
                    }
                    continue;
                }
                for (int64_t r = 0; r < s; ++r) {  /* phase r: w = r, r + s, ... */
                    T *phase = row + r * Q;
                    int64_t lo, hi;
                    valid_range(r - g->pad[2], s, W, Q, &lo, &hi);
                    for (int64_t q = 0; q < Q; ++q)
                        phase[q] = q >= lo && q < hi ? src[q * s + r] : 0;
                }
            }
}

/* Where task `at`'s channels (its first image's group) are in x. */
static const T *SUFFIX(group_in_x)(const SUFFIX(forward_job) *job, forward_task at)
{
    const mc_geometry *g = job->g;
    return job->x + (at.image * g->groups + at.group) * group_elements(g);
}

/* Where task `at` reads its channels: this thread's copy of them (made now
 * if it holds another; a task's images one after another, copy_size apart),
 * or x itself. MC_INLINE_LOOPS as pad_channels has: else GCC keeps that out
 * of line here. */
static MC_INLINE_LOOPS const T *SUFFIX(channels_of)(const SUFFIX(forward_job) *job, forward_task at)
{
    const mc_geometry *g = job->g;
    const int64_t image_size = g->channels * spatial_size(g->in);
    const T *x = SUFFIX(group_in_x)(job, at);
    if (!job->padded)
        return x;
    const int me = omp_get_thread_num();
    T *mine = job->padded + me * job->images * job->copy_size;
    if (job->holds[me] != at.image * g->groups + at.group) {
        const int64_t images = SUFFIX(task_images)(job, at.image);
        for (int64_t i = 0; i < images; ++i)
            SUFFIX(pad_channels)(job, x + i * image_size, mine + i * job->copy_size);
        job->holds[me] = at.image * g->groups + at.group;
    }
    return mine;
}

/* Task t's panel: C in y, or, for a task of several images, made in scratch
 * and handed to forward_take. */
static SUFFIX(gemm_panel) SUFFIX(forward_panel)(const void *ctx, int64_t t)
{
    const SUFFIX(forward_job) *job = ctx;
    const mc_geometry *g = job->g;
    const forward_task at = SUFFIX(forward_task_of)(job, t);
    const int64_t O = g->out_channels, L = spatial_size(g->out);
    return (SUFFIX(gemm_panel)){
        .a = at.group, .n = SUFFIX(panel_columns)(job, at),
        .c = job->y + (at.image * O + at.group * (O / g->groups)) * L + at.l0, .c_rs = L};
}

/* A panel of several images' columns, C, into their rows of y (gemm_take_fn). */
static void SUFFIX(forward_take)(const void *ctx, int64_t t, const T *c, int64_t c_rs)
{
    const SUFFIX(forward_job) *job = ctx;
    const forward_task at = SUFFIX(forward_task_of)(job, t);
    const int64_t O = job->g->out_channels, cout_g = O / job->g->groups, L = spatial_size(job->g->out);
    const int64_t images = SUFFIX(panel_columns)(job, at) / L;
    for (int64_t i = 0; i < images; ++i)
        for (int64_t o = 0; o < cout_g; ++o)
            memcpy(job->y + ((at.image + i) * O + at.group * cout_g + o) * L, c + o * c_rs + i * L,
                   (size_t)L * sizeof(T));
}

/* Columns [l0, l0 + nr) of X' from one image's group of channels x itself
 * (no copy: bounds checked), rows [p0, p0 + kc), `width` apart. Loop order: runs of columns within one output row
 * outer, so that each row of X' is a copy from one row of x (with zeros where
 * it reads padding); the common case, a whole sliver from the inside of a
 * row at stride 1, is one fixed-size copy (width is a constant here). */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(pack_columns)(const SUFFIX(forward_job) *job, const T *x, int64_t p0, int64_t kc,
                     int64_t l0, int64_t nr, const int64_t width, T *restrict dst)
{
    const mc_geometry *g = job->g;
    const tap *taps = job->taps;
    const int64_t D = job->in[0], H = job->in[1], W = job->in[2];
    const int64_t oH = job->out[1], oW = job->out[2], s = g->stride[2];
    for (int64_t l = l0; l < l0 + nr;) {
        const int64_t ow = l % oW, oh = l / oW % oH, od = l / oW / oH;
        const int64_t run = oW - ow < l0 + nr - l ? oW - ow : l0 + nr - l;
        const int64_t d0 = od * g->stride[0] - g->pad[0], h0 = oh * g->stride[1] - g->pad[1];
        const int64_t w0 = ow * s - g->pad[2];
        T *col = dst + (l - l0);
        for (int64_t p = p0; p < p0 + kc; ++p, col += width) {
            const tap tp = taps[p];
            const int64_t id = d0 + tp.d, ih = h0 + tp.h, iw = w0 + tp.w;
            const T *row = x + tp.plane + (id * H + ih) * W + iw; /* row[i * s], i in [lo, hi) */
            /* x streams in from dozens of planes at once, a pattern no hardware
             * prefetcher follows: fetch what this tap reads for a later sliver */
            __builtin_prefetch(row + job->ahead);
            int64_t lo = 0, hi = 0;
            if (in_range(id, D) && in_range(ih, H)) {
                if (iw >= 0 && iw + (run - 1) * s < W) {  /* inside the row: no padding */
                    if (s == 1 && run == width)
                        for (int64_t i = 0; i < width; ++i)
                            col[i] = row[i];
                    else if (s == 1)
                        for (int64_t i = 0; i < run; ++i)
                            col[i] = row[i];
                    else if (s == 2)
                        for (int64_t i = 0; i < run; ++i)
                            col[i] = row[2 * i];
                    else
                        for (int64_t i = 0; i < run; ++i)
                            col[i] = row[i * s];
                    continue;
                }
                if (s == 1) {  /* valid_range without its divisions */
                    lo = -iw < 0 ? 0 : -iw < run ? -iw : run;
                    hi = W - iw < lo ? lo : W - iw < run ? W - iw : run;
                } else {
                    valid_range(iw, s, W, run, &lo, &hi);
                }
            }
            if (run == width)
                for (int64_t i = 0; i < width; ++i)
                    col[i] = 0;
            else
                for (int64_t i = 0; i < run; ++i)
                    col[i] = 0;
            for (int64_t i = lo; i < hi; ++i)
                col[i] = row[i * s];
        }
        l += run;
    }
    for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = nr; j < width; ++j)
            dst[p * width + j] = 0;
}

/* Columns [l0, l0 + nr) of X' from a copy x (see forward_job), rows [p0,
 * p0 + kc), `width` apart. Loop order: the sliver's runs within output rows
 * first (at most width of them: where each starts in the copy), then row by
 * row, reading `width` elements at a time, a constant. Across one row end
 * (two runs, the commonest case after one), both runs are read the whole
 * sliver wide, the second from at[1] before its start, and blended at at[1]:
 * one store a vector, not two (strided's packing took 0.92 of the time). That
 * read never starts before the first run's start: a copy row (pW) is at
 * least oW long, so the next output row (or plane, or image) starts at least
 * the first run's length on. With more runs each is copied `width` long: what
 * spills past it is overwritten by the next run, or in the next row by its
 * first run (which starts at column 0); only the last row, with nothing after
 * it, copies exact lengths. The copy has slack for what is read past its end. */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(pack_copied)(const SUFFIX(forward_job) *job, const T *x, int64_t p0, int64_t kc,
                    int64_t l0, int64_t nr, const int64_t width, T *restrict dst)
{
    const T *from[32];  /* a sliver is at most 32 wide (gemm.c) */
    int64_t at[32], count = 0;
    for (int64_t l = l0, run; l < l0 + nr; l += run) {
        from[count] = x + SUFFIX(run_at)(job, l, l0 + nr, &run);
        at[count++] = l - l0;
    }
    const int64_t *rows = job->rows + p0;
    if (count == 1) {  /* the sliver within one output row: one copy a row, none spills */
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t i = 0; i < width; ++i)
                dst[p * width + i] = from[0][rows[p] + i];
    } else if (count == 2) {
        const T *second_from_0 = from[1] - at[1];  /* the second run's reads, moved to column 0 */
        const int64_t cut = at[1];
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t i = 0; i < width; ++i) {
                const T first = from[0][rows[p] + i], next = second_from_0[rows[p] + i];
                dst[p * width + i] = i < cut ? first : next;
            }
    } else {
        for (int64_t p = 0; p < kc - 1; ++p)
            for (int64_t r = 0; r < count; ++r)
                for (int64_t i = 0; i < width; ++i)
                    dst[p * width + at[r] + i] = from[r][rows[p] + i];
        for (int64_t r = 0; r < count; ++r) {
            const int64_t end = r + 1 < count ? at[r + 1] : nr;
            for (int64_t i = at[r]; i < end; ++i)
                dst[(kc - 1) * width + i] = from[r][rows[kc - 1] + i - at[r]];
        }
    }
    for (int64_t p = 0; p < kc; ++p)
        for (int64_t j = nr; j < width; ++j)
            dst[p * width + j] = 0;
}

/* A pointwise kernel's X' is x itself, a channel (L long) per row: columns
 * [l0, l0 + n), rows [p0, p0 + kc), as slivers `width` wide (see
 * gemm_pack_fn). Loop order: rows outer, each read once, in order, and dealt
 * out across the slivers, so x streams in; sliver by sliver it came in
 * 64-byte pieces of hundreds of rows at once. */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(pack_flat)(const T *x, int64_t L, int64_t p0, int64_t kc, int64_t l0, int64_t n,
                  const int64_t width, T *restrict dst)
{
    const int64_t whole = n / width * width;
    for (int64_t p = 0; p < kc; ++p) {
        const T *row = x + (p0 + p) * L + l0;
        for (int64_t j = 0; j < whole; j += width)
            for (int64_t i = 0; i < width; ++i)
                dst[(j * kc + p * width) + i] = row[j + i];
        for (int64_t i = 0; i < width && whole < n; ++i)
            dst[whole * kc + p * width + i] = whole + i < n ? row[whole + i] : 0;
    }
}

/* Columns [l0, l0 + n) of X' from x (a copy of it, if any), rows [p0, p0 + kc),
 * as slivers `width` wide: a pointwise kernel's by rows (pack_flat), any
 * other's sliver by sliver (pack_copied, or pack_columns without a copy). */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(pack_panel)(const SUFFIX(forward_job) *job, const T *x, int64_t p0, int64_t kc, int64_t l0,
                   int64_t n, const int64_t width, T *restrict dst)
{
    if (job->flat) {
        SUFFIX(pack_flat)(x, job->in[2], p0, kc, l0, n, width, dst);
        return;
    }
    for (int64_t j = 0; j < n; j += width) {
        const int64_t nr = n - j < width ? n - j : width;
        if (job->padded)
            SUFFIX(pack_copied)(job, x, p0, kc, l0 + j, nr, width, dst + j * kc);
        else
            SUFFIX(pack_columns)(job, x, p0, kc, l0 + j, nr, width, dst + j * kc);
    }
}

/* Columns [0, n) of task t's panel of X', rows [p0, p0 + kc) (gemm_pack_fn). */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(forward_pack)(const void *ctx, int64_t t, int64_t p0, int64_t kc, int64_t n, int64_t width,
                     T *restrict dst)
{
    const SUFFIX(forward_job) *job = ctx;
    const forward_task at = SUFFIX(forward_task_of)(job, t);
    const T *x = SUFFIX(channels_of)(job, at);
#define PACK(w) SUFFIX(pack_panel)(job, x, p0, kc, at.l0, n, w, dst)
    WITH_SLIVER_WIDTH(width, PACK)
#undef PACK
}

/* The forward's pack, and h's pack and take, compiled once for each SIMD path
 * (FOR_EACH_SIMD_PATH): their loops are copies and sums, plain C, which the
 * compiler vectorises at the path's width. With AVX2's 32-byte moves rather
 * than 16-byte ones, one thread: strided's packing took 0.72 of the time (perf
 * samples), the forward of depthwise 0.8 and of LeNet's layers 0.87 (medians
 * of alternating calls), h of conv1d_mnist1d 0.75 and of strided 0.93-0.97.
 * Only always-inline callees take the path's target: the copy of x
 * (channels_of) and h's unpad_channels stay portable code (32-byte versions
 * of them measured no faster). PANEL_PACK_ON(path, target, name): name on
 * that path, a gemm_pack_fn. */
#define PANEL_PACK_ON(path, target, name)                                                 \
    static target MC_INLINE_LOOPS void SUFFIX(name##_##path)(                             \
        const void *ctx, int64_t t, int64_t p0, int64_t kc, int64_t n, int64_t width,     \
        T *restrict dst)                                                                  \
    {                                                                                     \
        SUFFIX(name)(ctx, t, p0, kc, n, width, dst);                                      \
    }
#define ON_PATH(path, target) PANEL_PACK_ON(path, target, forward_pack)
FOR_EACH_SIMD_PATH(ON_PATH)
#undef ON_PATH
static const SUFFIX(gemm_pack_fn) SUFFIX(forward_packs)[] = {SIMD_PATHS(SUFFIX, forward_pack)};

static void SUFFIX(forward_job_free)(SUFFIX(forward_job) *job)
{
    free(job->taps);
    free(job->rows);
    free(job->padded);
    free(job->holds);
}

/* A forward job on x for nt threads (see forward_job; y and the panels are
 * the caller's to set): the taps, their offsets, and the copies whenever
 * they fit PADDED_BYTES, not of a pointwise kernel's x, whose elements are
 * each packed once. On MC_ERR_NOMEM nothing is left allocated. */
static int SUFFIX(forward_job_init)(SUFFIX(forward_job) *job, const mc_geometry *g, int64_t batch,
                                    int nt, int64_t images, const T *x)
{
    const int64_t G = g->groups, L = spatial_size(g->out), rows = g->channels / G * spatial_size(g->kernel);
    const int flat = pointwise(g);
    const int64_t copy_size = copy_elements(g, nt * images, sizeof(T));
    const int copied = copy_size > 0;
    int64_t padded[3];
    padded_size(g, padded);
    const int64_t *sizes = copied ? padded : g->in;
    const int64_t in[3] = {flat ? 1 : sizes[0], flat ? 1 : sizes[1], flat ? L : sizes[2]};
    *job = (SUFFIX(forward_job)){
        .g = g, .taps = make_taps(g, in, copied ? g->stride[2] : 1),
        .rows = malloc((size_t)rows * sizeof *job->rows), .in = {in[0], in[1], in[2]},
        .out = {flat ? 1 : g->out[0], flat ? 1 : g->out[1], flat ? L : g->out[2]},
        .copy_in = {padded[0], padded[1], padded[2]},
        .padded = copied ? malloc((size_t)(nt * images * copy_size) * sizeof(T)) : NULL,
        .copy_size = copy_size, .holds = malloc((size_t)nt * sizeof *job->holds), .images = images,
        .batch = batch,
        .ahead = g->stride[1] * in[2], .flat = flat, .x = x};
    if (!job->taps || !job->rows || !job->holds || (copied && !job->padded)) {
        SUFFIX(forward_job_free)(job);
        return MC_ERR_NOMEM;
    }
    for (int64_t r = 0; r < rows; ++r) {
        const tap tp = job->taps[r];
        job->rows[r] = tp.plane + (tp.d * in[1] + tp.h) * in[2] + tp.w;
    }
    for (int64_t i = 0; i < nt * images; ++i) {
        if (i < nt)
            job->holds[i] = -1;
        if (copied)  /* read, never used: a run's copy may reach past the copy of x */
            memset(job->padded + (i + 1) * copy_size - COPY_SLACK, 0, COPY_SLACK * sizeof(T));
    }
    return MC_OK;
}

int SUFFIX(mc_conv_forward_im2col)(const mc_geometry *g, int64_t batch,
                                   const T *restrict x, const T *restrict w, T *restrict y)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t O = g->out_channels, G = g->groups, L = spatial_size(g->out);
    const int64_t cout_g = O / G, rows = g->channels / G * spatial_size(g->kernel);
    if (batch * O * L == 0)
        return MC_OK;
    if (rows == 0) {
        memset(y, 0, (size_t)(batch * O * L) * sizeof(T));
        return MC_OK;
    }
    /* tiny images several to a task (in one panel), where all threads' copies fit: the
     * forward's bits depend on neither */
    int64_t images = images_per_task(g, batch, sizeof(T)), panels;
    const int nt0 = threads_for(batch * G * ceil_div(L, PANEL_COLUMNS), batch * O * L * rows);
    if (copy_elements(g, nt0 * images, sizeof(T)) == 0)
        images = 1;
    const int64_t panel_width = cut_panels(images * L, PANEL_COLUMNS, &panels);
    const int64_t tasks = ceil_div(batch, images) * G * panels;
    const int nt = nt0 < tasks ? nt0 : (int)tasks;
    SUFFIX(forward_job) job;
    if (SUFFIX(forward_job_init)(&job, g, batch, nt, images, x) != MC_OK)
        return MC_ERR_NOMEM;
    job.panels = panels;
    job.panel_width = panel_width;
    job.y = y;
    const int rc = SUFFIX(mc_gemm_panels)(cout_g, rows, G, w, tasks, 1, panel_width, SUFFIX(forward_panel),
                                          SUFFIX(forward_packs)[mc_simd_level()],
                                          images > 1 ? SUFFIX(forward_take) : NULL, &job, nt);
    SUFFIX(forward_job_free)(&job);
    return rc;
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

/* g without a column matrix, where the forward's copies fit or X' is x
 * itself (pointwise): dW_gr = the sum over blocks of positions of
 * Y'_block @ X'_block^T (mc_gemm_blocks), a block at most 256 positions of
 * one image (its positions cut evenly), A straight from y (a block of Y' is
 * cout_g rows of y, L apart) and B = X'^T packed from the forward's copy
 * (pack_transposed); or, for tiny images, a block of several whole ones, as
 * the forward takes them, their rows of y gathered side by side (a_rows).
 * The batch's blocks are cut into slabs, as many as the sizes say (never
 * the thread count), which run side by side into partial sums added in slab
 * order: the same bits at any thread count. */
typedef struct SUFFIX(g_implicit) {
    const SUFFIX(forward_job) *job;
    const T *y;
    T *w, *part;       /* part: the slabs' partial sums, if more than one */
    int64_t per_image; /* blocks per image (1 for tiny images, job->images of them a block) */
    int64_t blocks, slabs;
} SUFFIX(g_implicit);

/* One task's view: blocks from b0 on, of one group; for tiny images, room
 * for a block of Y' (cout_g x images * L). */
typedef struct SUFFIX(g_slab) {
    const SUFFIX(g_implicit) *job;
    int64_t group, b0;
    T *a_rows;
} SUFFIX(g_slab);

/* Block b0 + b: its (first) image, and its positions [l0, l1), the images'
 * side by side. */
static forward_task SUFFIX(g_block_at)(const SUFFIX(g_slab) *slab, int64_t b, int64_t *l1)
{
    const SUFFIX(forward_job) *fj = slab->job->job;
    const int64_t per = slab->job->per_image, at = slab->b0 + b, L = spatial_size(fj->g->out);
    if (fj->images > 1) {
        const int64_t image = at * fj->images;
        *l1 = SUFFIX(task_images)(fj, image) * L;
        return (forward_task){image, slab->group, 0};
    }
    *l1 = L * (at % per + 1) / per;
    return (forward_task){at / per, slab->group, L * (at % per) / per};
}

static SUFFIX(gemm_block) SUFFIX(g_block)(const void *ctx, int64_t b)
{
    const SUFFIX(g_slab) *slab = ctx;
    const mc_geometry *g = slab->job->job->g;
    const int64_t O = g->out_channels, cout_g = O / g->groups, L = spatial_size(g->out);
    int64_t l1;
    const forward_task at = SUFFIX(g_block_at)(slab, b, &l1);
    const T *y = slab->job->y + (at.image * O + at.group * cout_g) * L + at.l0;
    if (!slab->a_rows)
        return (SUFFIX(gemm_block)){y, L, l1 - at.l0};
    for (int64_t o = 0; o < cout_g; ++o)  /* tiny images: row o is theirs side by side */
        for (int64_t i = 0; i < l1 / L; ++i)
            memcpy(slab->a_rows + o * l1 + i * L, y + (i * O + o) * L, (size_t)L * sizeof(T));
    return (SUFFIX(gemm_block)){slab->a_rows, l1, l1};
}

/* Columns [j0, j0 + n) of B = X'^T for positions [l0, l0 + kc) of the
 * channels x (see forward_job): B[p, j] = X'[j0 + j, l0 + p], as slivers
 * `width` wide. Loop order: runs of positions within one output row (X' row
 * j is then a line of x from rows[j] on; where a run starts is found once
 * for all slivers), then sliver by sliver, KQ rows of X' at a time, read KQ
 * positions at a time and transposed in registers. */
static inline __attribute__((always_inline)) void
SUFFIX(pack_transposed)(const SUFFIX(forward_job) *job, const T *x, int64_t l0, int64_t kc,
                        int64_t j0, int64_t n, const int64_t width, T *restrict dst)
{
    for (int64_t l = l0, run; l < l0 + kc; l += run) {
        const T *base = x + SUFFIX(run_at)(job, l, l0 + kc, &run);
        const int64_t ends = run / KQ * KQ;
        for (int64_t s0 = 0; s0 < n; s0 += width) {
            const int64_t used = n - s0 < width ? n - s0 : width, whole = used / KQ * KQ;
            const int64_t *rows = job->rows + j0 + s0;
            T *out = dst + s0 * kc + (l - l0) * width;
            for (int64_t j = 0; j < whole; j += KQ) {
                const T *line[KQ];
                _Pragma("GCC unroll 4")
                for (int q = 0; q < KQ; ++q)
                    line[q] = base + rows[j + q];
                for (int64_t p = 0; p < ends; p += KQ) {
                    const T *at[KQ];
                    _Pragma("GCC unroll 4")
                    for (int q = 0; q < KQ; ++q)
                        at[q] = line[q] + p;
                    SUFFIX(lines_across)(at, out + p * width + j, width);
                }
                for (int64_t p = ends; p < run; ++p)
                    for (int q = 0; q < KQ; ++q)
                        out[p * width + j + q] = line[q][p];
            }
            for (int64_t j = whole; j < used; ++j)
                for (int64_t p = 0; p < run; ++p)
                    out[p * width + j] = base[rows[j] + p];
        }
    }
    const int64_t used = n % width;  /* the last sliver's columns, if it has fewer */
    if (used > 0)
        for (int64_t p = 0; p < kc; ++p)
            for (int64_t j = used; j < width; ++j)
                dst[(n - used) * kc + p * width + j] = 0;
}

/* MC_INLINE_LOOPS: without it pack_transposed's zero fill of a part sliver
 * became a memset call a row once inlined here (LeNet's first layer: g 1.15x). */
static MC_INLINE_LOOPS void SUFFIX(g_pack)(const void *ctx, int64_t b, int64_t j0, int64_t n,
                                           int64_t width, T *restrict dst)
{
    const SUFFIX(g_slab) *slab = ctx;
    int64_t l1;
    const forward_task at = SUFFIX(g_block_at)(slab, b, &l1);
    const T *x = SUFFIX(channels_of)(slab->job->job, at);
#define PACK(w) SUFFIX(pack_transposed)(slab->job->job, x, at.l0, l1 - at.l0, j0, n, w, dst)
    WITH_SLIVER_WIDTH(width, PACK)
#undef PACK
}

/* Task t: slab t % slabs of group t / slabs. */
static int SUFFIX(g_implicit_task)(const void *ctx, int64_t t)
{
    const SUFFIX(g_implicit) *job = ctx;
    const mc_geometry *g = job->job->g;
    const int64_t G = g->groups, cout_g = g->out_channels / G, L = spatial_size(g->out);
    const int64_t rows = g->channels / G * spatial_size(g->kernel);
    const int64_t gr = t / job->slabs, s = t % job->slabs;
    const int64_t b0 = job->blocks * s / job->slabs, b1 = job->blocks * (s + 1) / job->slabs;
    const int64_t images = job->job->images, max_kc = images > 1 ? images * L : ceil_div(L, job->per_image);
    const SUFFIX(g_slab) slab = {job, gr, b0, images > 1 ? malloc((size_t)(cout_g * max_kc) * sizeof(T)) : NULL};
    if (images > 1 && !slab.a_rows)
        return MC_ERR_NOMEM;
    T *dst = job->slabs > 1 ? job->part + (s * G + gr) * cout_g * rows : job->w + gr * cout_g * rows;
    const int rc = SUFFIX(mc_gemm_blocks)(cout_g, rows, b1 - b0, max_kc, SUFFIX(g_block), SUFFIX(g_pack),
                                          &slab, dst, rows);
    free(slab.a_rows);
    return rc;
}

/* g by g_implicit on nt threads, where weight_grad_implicit_pays: each
 * image's positions in per_image blocks, or tiny images `images` to a
 * block; the batch's blocks in `slabs`. */
static int SUFFIX(weight_grad_implicit)(const mc_geometry *g, int64_t batch, int64_t per_image,
                                        int64_t images, int64_t slabs, int nt, const T *x, const T *y,
                                        T *w)
{
    const int64_t O = g->out_channels, G = g->groups, rows = g->channels / G * spatial_size(g->kernel);
    const int64_t blocks = images > 1 ? ceil_div(batch, images) : batch * per_image;
    nt = copy_threads(g, nt, images, sizeof(T));
    SUFFIX(forward_job) fj;
    if (SUFFIX(forward_job_init)(&fj, g, batch, nt, images, x) != MC_OK)
        return MC_ERR_NOMEM;
    SUFFIX(g_implicit) job = {&fj, y, w, NULL, per_image, blocks, slabs};
    int rc = MC_OK;
    if (slabs > 1 && !(job.part = malloc((size_t)(slabs * O * rows) * sizeof(T))))
        rc = MC_ERR_NOMEM;
    if (rc == MC_OK)
        rc = run_tasks(nt, G * slabs, SUFFIX(g_implicit_task), &job);
    if (rc == MC_OK && slabs > 1)
        SUFFIX(add_slabs)(g, slabs, 0, 1, job.part, w);
    free(job.part);
    SUFFIX(forward_job_free)(&fj);
    return rc;
}

/* g's tasks all see one chunk. */
typedef struct SUFFIX(g_job) {
    const mc_geometry *g;
    const SUFFIX(chunk) *c;
    const T *x, *y;
    T *w;
    int64_t blocks;  /* the chunk's images one by one (pointwise), or 1: all side by side */
    int transposed;  /* slabs computed as X'_gr @ Y'_gr^T */
} SUFFIX(g_job);

/* Task t: slab t % slabs of group t / slabs, its blocks in batch order. */
static int SUFFIX(g_task)(const void *ctx, int64_t t)
{
    const SUFFIX(g_job) *job = ctx;
    const mc_geometry *g = job->g;
    const SUFFIX(chunk) *c = job->c;
    const int64_t G = g->groups, cout_g = g->out_channels / G;
    const int64_t rows = g->channels / G * spatial_size(g->kernel);
    const int64_t slabs = c->at.slabs, n = c->at.n, gr = t / slabs, s = t % slabs;
    const int64_t k0 = s * c->at.slab, k1 = k0 + c->at.slab < n ? k0 + c->at.slab : n;
    T *dst = slabs > 1 ? c->work + c->at.part + (s * G + gr) * cout_g * rows : job->w + gr * cout_g * rows;
    int rc = MC_OK;
    for (int64_t b = 0; b < job->blocks && rc == MC_OK; ++b) {
        const SUFFIX(operands) op = SUFFIX(block)(g, c, c->at.pw, job->x, job->y, b, gr);
        const int accumulate = slabs > 1 ? b > 0 : c->n0 + b > 0;
        rc = job->transposed
            ? SUFFIX(mc_gemm)(rows, cout_g, k1 - k0, op.cols + k0, op.ldc, 1, op.y + k0, 1, op.ldy,
                              accumulate, dst, cout_g)
            : SUFFIX(mc_gemm)(cout_g, rows, k1 - k0, op.y + k0, op.ldy, 1, op.cols + k0, 1, op.ldc,
                              accumulate, dst, rows);
    }
    return rc;
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
    const int64_t per_image = (L + 255) / 256;  /* blocks of at most 256 positions */
    const int64_t images = batch > 0 ? images_per_task(g, batch, sizeof(T)) : 1;
    const int64_t blocks = images > 1 ? ceil_div(batch, images) : batch * per_image;
    const int64_t slabs = implicit_slabs(batch * L, blocks);
    const int nt = threads_for(G * slabs, batch * O * L * rows);
    if (batch * O * L * rows > 0 && weight_grad_implicit_pays(g, sizeof(T)))
        return SUFFIX(weight_grad_implicit)(g, batch, per_image, images, slabs, nt, x, y, w);
    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        const SUFFIX(chunk) c = {layout(g, nb), n0, work};
        const int per_image = c.at.pw;  /* else one block: the k of the sum is long */
        const int64_t n = c.at.n, slabs = c.at.slabs;
        int rc = c.at.pw ? MC_OK
                         : SUFFIX(mc_im2col_wide)(g, nb, x + n0 * C * spatial_size(g->in), c.at.ld,
                                                  work + c.at.cols);
        if (rc != MC_OK)
            return rc;
        if (!per_image && !c.at.y_in_place)
            SUFFIX(spread)(nb, O, L, c.at.ld, work + c.at.wide, y + n0 * O * L);
        /* One task per (group, slab). Blocks add into the same product, so a
         * task takes them one after another, in batch order. Unsliced, the
         * product is W_gr itself, and the very first one overwrites w; sliced,
         * each slab is a partial sum of its columns, added to w below — and
         * may be computed transposed, X'_gr @ Y'_gr^T, when that shape suits
         * the micro-kernel better (the same products and sums: the same bits). */
        const SUFFIX(g_job) job = {g, &c, x, y, w, per_image ? nb : 1,
                                   slabs > 1 && transpose_weight_grad(cout_g, rows)};
        rc = run_tasks(slabs > 1 ? threads_for(G * slabs, G * cout_g * rows * n)
                                 : small_gemm_threads(G, cout_g, rows, n),
                       G * slabs, SUFFIX(g_task), &job);
        if (rc != MC_OK)
            return rc;
        if (slabs > 1)
            SUFFIX(add_slabs)(g, slabs, job.transposed, n0 == 0, work + c.at.part, w);
    }
    return MC_OK;
}

/* h as the forward of input_grad_as_forward's geometry t, with the weights
 * flipped and transposed to t's layout: wt[gr, c, o, K-1-k] = w[gr, o, c, k]
 * (gr the group, c and o a channel in it; reversing the flat kernel index
 * flips every spatial axis). */
static int SUFFIX(input_grad_by_forward)(const mc_geometry *g, const mc_geometry *t, int64_t batch,
                                         const T *restrict w, const T *restrict y, T *restrict x)
{
    const int64_t G = g->groups, cin_g = g->channels / G, cout_g = g->out_channels / G;
    const int64_t K = spatial_size(g->kernel);
    T *wt = malloc((size_t)(G * cin_g * cout_g * K) * sizeof(T) + 1);  /* + 1: never malloc(0), maybe NULL */
    if (!wt)
        return MC_ERR_NOMEM;
    for (int64_t gr = 0; gr < G; ++gr)
        for (int64_t o = 0; o < cout_g; ++o)
            for (int64_t c = 0; c < cin_g; ++c)
                for (int64_t k = 0; k < K; ++k)
                    wt[((gr * cin_g + c) * cout_g + o) * K + K - 1 - k] = w[((gr * cout_g + o) * cin_g + c) * K + k];
    const int rc = SUFFIX(mc_conv_forward_im2col)(t, batch, y, wt, x);
    free(wt);
    return rc;
}

/* h without a column matrix or col2im, where the forward's copies fit: X'_gr =
 * W_gr^T @ Y'_gr made panel by panel (mc_gemm_panels with a take), each panel
 * added straight into a copy of the image's group of x laid out as the
 * forward's (padding written out, rows split into stride phases): the forward
 * reads that copy, h writes it — scatter_copied is pack_copied run backwards,
 * unpad_channels pad_channels. A window's step along an output row is a unit
 * step in the copy at any stride, so each row of a panel goes in as a few
 * runs of contiguous additions, and what lands in the padding is dropped with
 * it. One thread per task (an image and group, or tiny images side by side
 * as the forward takes them), its panels in order: the same bits at any
 * thread count. */
static inline __attribute__((always_inline)) void
SUFFIX(scatter_copied)(const SUFFIX(forward_job) *job, const T *restrict c, int64_t c_rs, int64_t l0,
                       int64_t n, T *restrict x)
{
    const mc_geometry *g = job->g;
    const int64_t K = spatial_size(g->kernel), cin_g = g->channels / g->groups;
    for (int64_t l = l0, run; l < l0 + n; l += run) {
        T *to = x + SUFFIX(run_at)(job, l, l0 + n, &run);
        const T *from = c + (l - l0);
        /* row r = ch * K + k; channels inner: the next tap's run overlaps this
         * one's one element on, and loading it right after the store would
         * stall store forwarding; another channel's run lies elsewhere. */
        for (int64_t k = 0; k < K; ++k)
            for (int64_t ch = 0; ch < cin_g; ++ch) {
                const int64_t r = ch * K + k;
                for (int64_t i = 0; i < run; ++i)
                    to[job->rows[r] + i] += from[r * c_rs + i];
            }
    }
}

/* One group's channels of one image, x, from the copy scatter_copied added
 * into (pad_channels backwards: each element read from its phase, the
 * padding left behind). */
static void SUFFIX(unpad_channels)(const SUFFIX(forward_job) *job, const T *restrict src, T *restrict x)
{
    const mc_geometry *g = job->g;
    const int64_t D = g->in[0], H = g->in[1], W = g->in[2], cin_g = g->channels / g->groups;
    const int64_t pD = job->copy_in[0], pH = job->copy_in[1], pW = job->copy_in[2], s = g->stride[2];
    const int64_t Q = pW / s, p = g->pad[2];
    for (int64_t c = 0; c < cin_g; ++c)
        for (int64_t d = 0; d < D; ++d)
            for (int64_t h = 0; h < H; ++h) {
                const T *row = src + ((c * pD + d + g->pad[0]) * pH + h + g->pad[1]) * pW;
                T *dst = x + ((c * D + d) * H + h) * W;
                if (s == 1)
                    memcpy(dst, row + p, (size_t)W * sizeof(T));
                else if (s == 2) {  /* the phases interleaved again: pairs from even and odd */
                    const T *even = row, *odd = row + Q;
                    const int64_t first = p % 2, q0 = (p + first) / 2, pairs = (W - first) / 2;
                    if (first)
                        dst[0] = odd[p / 2];
                    for (int64_t j = 0; j < pairs; ++j) {
                        dst[first + 2 * j] = even[q0 + j];
                        dst[first + 2 * j + 1] = odd[q0 + j];
                    }
                    if ((W - first) % 2)
                        dst[W - 1] = even[q0 + pairs];
                } else
                    for (int64_t w = 0; w < W; ++w)
                        dst[w] = row[(w + p) % s * Q + (w + p) / s];
            }
}

static SUFFIX(gemm_panel) SUFFIX(h_panel)(const void *ctx, int64_t t)
{
    const SUFFIX(forward_job) *job = ctx;
    const forward_task at = SUFFIX(forward_task_of)(job, t);
    SUFFIX(gemm_panel) p = {.a = at.group, .n = SUFFIX(panel_columns)(job, at)};
    return p;
}

/* Several tiny images' Y' side by side (their rows image_stride apart in y):
 * columns [l0, l0 + n), rows [p0, p0 + kc), as slivers `width` wide (see
 * gemm_pack_fn). Row by row, in pieces that lie within one image and one
 * sliver, the image and position counted along (one image's rows are whole
 * slivers of one line: pack_flat). */
static inline __attribute__((always_inline)) void
SUFFIX(pack_images)(const T *y, int64_t L, int64_t image_stride, int64_t p0, int64_t kc, int64_t l0,
                    int64_t n, const int64_t width, T *restrict dst)
{
    for (int64_t p = 0; p < kc; ++p) {
        const T *row = y + (l0 / L) * image_stride + (p0 + p) * L;
        for (int64_t j = 0, at = l0 % L, piece; j < n; j += piece) {
            const int64_t in_sliver = width - j % width;
            piece = L - at < in_sliver ? L - at : in_sliver;
            piece = n - j < piece ? n - j : piece;
            T *to = dst + j / width * width * kc + p * width + j % width;
            for (int64_t i = 0; i < piece; ++i)
                to[i] = row[at + i];
            if ((at += piece) == L) {
                at = 0;
                row += image_stride;
            }
        }
        for (int64_t j = n; j % width; ++j)
            dst[j / width * width * kc + p * width + j % width] = 0;
    }
}

/* Rows [p0, p0 + kc) of Y'_gr, columns [0, n) of task t's panel: y's
 * channels are its rows, an image's after another's (gemm_pack_fn). */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(h_pack)(const void *ctx, int64_t t, int64_t p0, int64_t kc, int64_t n, int64_t width,
               T *restrict dst)
{
    const SUFFIX(forward_job) *job = ctx;
    const forward_task at = SUFFIX(forward_task_of)(job, t);
    const int64_t G = job->g->groups, O = job->g->out_channels, L = spatial_size(job->g->out);
    const T *y = job->y + (at.image * G + at.group) * (O / G) * L;
#define PACK(w) (job->images > 1 ? SUFFIX(pack_images)(y, L, O * L, p0, kc, at.l0, n, w, dst) \
                                 : SUFFIX(pack_flat)(y, L, p0, kc, at.l0, n, w, dst))
    WITH_SLIVER_WIDTH(width, PACK)
#undef PACK
}

/* Task t's panel of X', c, into this thread's copies of its images: zeroed
 * before the task's first panel, written out to x after its last
 * (gemm_take_fn). */
static inline __attribute__((always_inline)) MC_INLINE_LOOPS void
SUFFIX(h_take)(const void *ctx, int64_t t, const T *c, int64_t c_rs)
{
    const SUFFIX(forward_job) *job = ctx;
    const mc_geometry *g = job->g;
    const forward_task at = SUFFIX(forward_task_of)(job, t);
    const int64_t n = SUFFIX(panel_columns)(job, at), L = spatial_size(g->out);
    const int64_t images = SUFFIX(task_images)(job, at.image);
    T *mine = job->padded + omp_get_thread_num() * job->images * job->copy_size;
    if (at.l0 == 0)
        memset(mine, 0, (size_t)(images * job->copy_size) * sizeof(T));
    SUFFIX(scatter_copied)(job, c, c_rs, at.l0, n, mine);
    if (at.l0 + n == images * L) {
        const int64_t image_size = g->channels * spatial_size(g->in);
        T *x = (T *)SUFFIX(group_in_x)(job, at);  /* the job's x is h's output: only h_take writes it */
        for (int64_t i = 0; i < images; ++i)
            SUFFIX(unpad_channels)(job, mine + i * job->copy_size, x + i * image_size);
    }
}

/* h's pack and take on each SIMD path (see forward_packs). */
#define ON_PATH(path, target)                                                                 \
    PANEL_PACK_ON(path, target, h_pack)                                                       \
    static target MC_INLINE_LOOPS void SUFFIX(h_take_##path)(const void *ctx, int64_t t,      \
                                                             const T *c, int64_t c_rs)        \
    {                                                                                         \
        SUFFIX(h_take)(ctx, t, c, c_rs);                                                      \
    }
FOR_EACH_SIMD_PATH(ON_PATH)
#undef ON_PATH
static const SUFFIX(gemm_pack_fn) SUFFIX(h_packs)[] = {SIMD_PATHS(SUFFIX, h_pack)};
static const SUFFIX(gemm_take_fn) SUFFIX(h_takes)[] = {SIMD_PATHS(SUFFIX, h_take)};

static int SUFFIX(input_grad_implicit)(const mc_geometry *g, int64_t batch, const T *restrict w,
                                       const T *restrict y, T *restrict x)
{
    const int64_t G = g->groups, cout_g = g->out_channels / G, L = spatial_size(g->out);
    const int64_t rows = g->channels / G * spatial_size(g->kernel);
    const int64_t images = images_per_task(g, batch, sizeof(T)), runs = ceil_div(batch, images) * G;
    int64_t panels;
    const int64_t panel_width = cut_panels(images * L, H_PANEL_COLUMNS, &panels), tasks = runs * panels;
    const int nt = copy_threads(g, threads_for(runs, batch * cout_g * G * rows * L), images, sizeof(T));
    T *wt = malloc((size_t)(G * rows * cout_g) * sizeof(T));  /* W_gr^T, row-major */
    SUFFIX(forward_job) job;
    if (!wt || SUFFIX(forward_job_init)(&job, g, batch, nt, images, x) != MC_OK) {
        free(wt);
        return MC_ERR_NOMEM;
    }
    for (int64_t gr = 0; gr < G; ++gr)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t o = 0; o < cout_g; ++o)
                wt[(gr * rows + r) * cout_g + o] = w[(gr * cout_g + o) * rows + r];
    job.panels = panels;
    job.panel_width = panel_width;
    job.y = (T *)y;  /* read only: h_pack's */
    const int rc = SUFFIX(mc_gemm_panels)(rows, cout_g, G, wt, tasks, panels, panel_width,
                                          SUFFIX(h_panel), SUFFIX(h_packs)[mc_simd_level()],
                                          SUFFIX(h_takes)[mc_simd_level()], &job, nt);
    SUFFIX(forward_job_free)(&job);
    free(wt);
    return rc;
}

int SUFFIX(mc_conv_input_grad_im2col)(const mc_geometry *g, int64_t batch,
                                      const T *restrict w, const T *restrict y,
                                      int64_t chunk, T *restrict work, T *restrict x)
{
    if (!conv_geometry_ok(g, batch) || chunk < 1)
        return MC_ERR_ARG;
    mc_geometry t;
    if (input_grad_as_forward(g, &t))
        return SUFFIX(input_grad_by_forward)(g, &t, batch, w, y, x);
    if (input_grad_implicit_pays(g, batch, sizeof(T)))
        return SUFFIX(input_grad_implicit)(g, batch, w, y, x);
    for (int64_t n0 = 0; n0 < batch; n0 += chunk) {
        const int64_t nb = batch - n0 < chunk ? batch - n0 : chunk;
        const SUFFIX(chunk) c = {layout(g, nb), n0, work};
        const int rc = SUFFIX(chunk_input_grad)(g, &c, nb, x, w, y);
        if (rc != MC_OK)
            return rc;
    }
    return MC_OK;
}

#undef PANEL_PACK_ON
#undef KQ
#undef TT
#undef TNAME
