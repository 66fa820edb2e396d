/* gemm_driver.h — the blocked GEMM loops and their OpenMP parallelism for one
 * dtype. gemm.c includes it once per dtype with T and SUFFIX(name) defined,
 * after the kernel table SUFFIX(kernels). The driver is compiled for the
 * portable target; only the kernels it calls through the table are
 * SIMD-specific, so OpenMP never outlines code inside a target region. */

int SUFFIX(mc_gemm)(int64_t m, int64_t n, int64_t k,
                    const T *restrict a, int64_t a_rs, int64_t a_cs,
                    const T *restrict b, int64_t b_rs, int64_t b_cs,
                    int accumulate, T *restrict c, int64_t c_rs)
{
    if (m < 0 || n < 0 || k < 0 || a_rs < 0 || a_cs < 0 || b_rs < 0 || b_cs < 0
        || (m > 1 && c_rs < n))
        return MC_ERR_ARG;
    if (m == 0 || n == 0)
        return MC_OK;
    if (k == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < m; ++i)
                memset(c + i * c_rs, 0, (size_t)n * sizeof(T));
        return MC_OK;
    }

    const struct SUFFIX(gemm_kernel) *kr = SUFFIX(kernels)[mc_simd_level()];
    const int64_t MR = kr->mr, NR = kr->nr;
    const int64_t kc_max = k < kr->kc ? k : kr->kc;
    const int64_t nc_max = ceil_div(n < GEMM_NC ? n : GEMM_NC, NR) * NR;
    const int64_t mb_max = ceil_div(m < GEMM_MB ? m : GEMM_MB, MR) * MR;
    T *bp = scratch(kc_max * nc_max * (int64_t)sizeof(T));
    T *ap = scratch(kc_max * mb_max * (int64_t)sizeof(T));
    if (!ap || !bp) {
        free(ap);
        free(bp);
        return MC_ERR_NOMEM;
    }
    const int nt = gemm_threads(m, n, k);

    /* Goto/BLIS loop nest: n in GEMM_NC panels, k in kc blocks, m in GEMM_MB
     * blocks. Per step, all threads first pack the B panel (once per jc, pc)
     * and the A block together, sliver by sliver, then share out fixed
     * (row block x column chunk) tiles of C. Every C element belongs to
     * exactly one tile per k-block, a micro-tile's arithmetic does not depend
     * on where it sits (micro() in gemm_kernel.h), and k-blocks are done in
     * order, so the arithmetic — and so every bit of C — is the same at any
     * thread count, however the tiles are cut. */
    #pragma omp parallel num_threads(nt) if (nt > 1)
    for (int64_t jc = 0; jc < n; jc += GEMM_NC) {
        const int64_t nc = n - jc < GEMM_NC ? n - jc : GEMM_NC;
        const int64_t b_slivers = ceil_div(nc, NR);
        /* column chunks of ~GEMM_JW, equal-sized, whole slivers; with few tiles, as many
         * as make their count a multiple of the threads (3 tiles on 2 threads take as long
         * as 4). Tiles only share out C: each element is computed the same way in any. */
        const int64_t n_ti_max = ceil_div(m < GEMM_MB ? m : GEMM_MB, kr->mc);
        int64_t n_tj = ceil_div(nc, GEMM_JW);
        while (n_ti_max * n_tj % nt != 0 && n_ti_max * n_tj < 4 * nt && n_tj < b_slivers)
            ++n_tj;
        const int64_t tw = ceil_div(ceil_div(nc, n_tj), NR) * NR;
        for (int64_t pc = 0; pc < k; pc += kr->kc) {
            const int64_t kc = k - pc < kr->kc ? k - pc : kr->kc;
            const int overwrite = !accumulate && pc == 0;
            for (int64_t ib = 0; ib < m; ib += GEMM_MB) {
                const int64_t mb = m - ib < GEMM_MB ? m - ib : GEMM_MB;
                const int64_t a_slivers = ceil_div(mb, MR);
                const int64_t packs = (ib == 0 ? b_slivers : 0) + a_slivers;
                /* row blocks of ~kr->mc (sized for L2), equal-sized, whole slivers */
                const int64_t n_ti = ceil_div(mb, kr->mc);
                const int64_t th = ceil_div(ceil_div(mb, n_ti), MR) * MR;
                const int64_t tiles = ceil_div(mb, th) * n_tj;

                /* round robin: B slivers (transposed, the costly ones) come first */
                #pragma omp for schedule(static, 1)
                for (int64_t s = 0; s < packs; ++s) {
                    const int64_t sa = s - (packs - a_slivers);
                    if (sa < 0) {
                        const int64_t j = s * NR;
                        kr->pack_b(nc - j < NR ? nc - j : NR, kc,
                                   b + pc * b_rs + (jc + j) * b_cs, b_rs, b_cs, bp + j * kc);
                    } else {
                        const int64_t i = sa * MR;
                        kr->pack_a(mb - i < MR ? mb - i : MR, kc,
                                   a + (ib + i) * a_rs + pc * a_cs, a_rs, a_cs, ap + i * kc);
                    }
                }

                #pragma omp for schedule(dynamic, 1)
                for (int64_t t = 0; t < tiles; ++t) {
                    const int64_t i0 = (t / n_tj) * th, j0 = (t % n_tj) * tw;
                    const int64_t h = mb - i0 < th ? mb - i0 : th;
                    const int64_t w = nc - j0 < tw ? nc - j0 : tw;
                    if (h > 0 && w > 0)
                        kr->macro(h, w, kc, ap + i0 * kc, bp + j0 * kc,
                                  c + (ib + i0) * c_rs + jc + j0, c_rs, overwrite);
                }
            }
        }
    }
    free(ap);
    free(bp);
    return MC_OK;
}

/* The product behind an implicit GEMM (the convolution's forward, where B
 * would be the column matrix): a few m x k matrices A (the groups' weights,
 * row-major, one after another) are packed once, then multiplied into many
 * column panels of a B that is never stored. Panel t says which A it uses and
 * where its columns of C go (panel_of); its slivers of B are packed straight
 * from wherever B's entries live (pack), a k-block at a time. Each panel runs on one thread from
 * its first k-block to its last, so there are no barriers, and every element
 * of C is summed in the same order at any thread count. The k-blocks are cut
 * evenly (576 = 3 x 192, not 256 + 256 + 64): a thin last block pays C's
 * loads and stores for a few FMAs. With a take (the implicit col2im of h,
 * tiny images' forward), each panel's C is made in the thread's scratch and
 * handed over whole; a run of panels (one task's: an image and group, or
 * several tiny images) stays on one thread, in order, so that take may add
 * it into one place in the same order at any thread count. */
int SUFFIX(mc_gemm_panels)(int64_t m, int64_t k, int64_t count_a, const T *a,
                           int64_t panels, int64_t run, int64_t max_n, SUFFIX(gemm_panel_fn) panel_of,
                           SUFFIX(gemm_pack_fn) pack, SUFFIX(gemm_take_fn) take, const void *ctx, int nt)
{
    if (m <= 0 || k <= 0 || count_a <= 0 || panels <= 0 || run <= 0 || panels % run != 0
        || max_n <= 0 || nt < 1)
        return MC_ERR_ARG;
    const struct SUFFIX(gemm_kernel) *kr = SUFFIX(kernels)[mc_simd_level()];
    const int64_t MR = kr->mr, NR = kr->nr;
    const int64_t kblocks = ceil_div(k, kr->kc), kcb = ceil_div(k, kblocks);
    const int64_t m_pad = ceil_div(m, MR) * MR, width = ceil_div(max_n, NR) * NR;
    const int64_t a_slivers = count_a * kblocks * (m_pad / MR);
    const int64_t runs = panels / run;
    if (nt > runs)
        nt = (int)runs;
    T *ap = scratch(count_a * m_pad * k * (int64_t)sizeof(T));
    T *bp = scratch(nt * kcb * width * (int64_t)sizeof(T));
    T *cp = take ? scratch(nt * m_pad * width * (int64_t)sizeof(T)) : NULL;
    if (!ap || !bp || (take && !cp)) {
        free(ap);
        free(bp);
        free(cp);
        return MC_ERR_NOMEM;
    }

    /* A's packed layout: matrix by matrix, k-block by k-block, each block
     * m_pad x kc in MR-row slivers, as macro() reads it. */
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        #pragma omp for schedule(static)
        for (int64_t s = 0; s < a_slivers; ++s) {
            const int64_t ai = s / (kblocks * (m_pad / MR)), b = s / (m_pad / MR) % kblocks;
            const int64_t i = s % (m_pad / MR) * MR, p0 = b * kcb;
            const int64_t kc = k - p0 < kcb ? k - p0 : kcb;
            kr->pack_a(m - i < MR ? m - i : MR, kc, a + ai * m * k + i * k + p0, k, 1,
                       ap + ai * m_pad * k + p0 * m_pad + i * kc);
        }
        T *mine = bp + (int64_t)omp_get_thread_num() * kcb * width;
        T *my_c = take ? cp + (int64_t)omp_get_thread_num() * m_pad * width : NULL;
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < runs; ++r)
            for (int64_t t = r * run; t < (r + 1) * run; ++t) {
                const SUFFIX(gemm_panel) p = panel_of(ctx, t);
                if (p.n <= 0)  /* an empty panel: nothing to pack, make or take */
                    continue;
                T *c = take ? my_c : p.c;
                const int64_t c_rs = take ? width : p.c_rs;
                for (int64_t b = 0; b < kblocks; ++b) {
                    const int64_t p0 = b * kcb, kc = k - p0 < kcb ? k - p0 : kcb;
                    pack(ctx, t, p0, kc, p.n, NR, mine);
                    kr->macro(m, p.n, kc, ap + p.a * m_pad * k + p0 * m_pad, mine, c, c_rs, b == 0);
                }
                if (take)
                    take(ctx, t, c, c_rs);
            }
    }
    free(ap);
    free(bp);
    free(cp);
    return MC_OK;
}

/* The product behind an implicit weight gradient: a sum over a long k whose
 * blocks are packed by the caller, B from wherever its entries live, with A
 * rows wherever they are (see kernel.h). One thread, C overwritten by the
 * first block; columns in panels of at most GEMM_BLOCK_NC, cut evenly, so that
 * a packed panel of B (kc x panel) stays in L2 beside the packed A. Every
 * element of C is summed block by block in order, whatever the panels. */
int SUFFIX(mc_gemm_blocks)(int64_t m, int64_t n, int64_t blocks, int64_t max_kc,
                           SUFFIX(gemm_block_fn) block_of, SUFFIX(gemm_block_pack_fn) pack,
                           const void *ctx, T *c, int64_t c_rs)
{
    if (m <= 0 || n <= 0 || blocks <= 0 || max_kc <= 0 || c_rs < n)
        return MC_ERR_ARG;
    const struct SUFFIX(gemm_kernel) *kr = SUFFIX(kernels)[mc_simd_level()];
    const int64_t MR = kr->mr, NR = kr->nr;
    const int64_t panels = ceil_div(n, GEMM_BLOCK_NC), width = ceil_div(ceil_div(n, panels), NR) * NR;
    T *ap = scratch(ceil_div(m, MR) * MR * max_kc * (int64_t)sizeof(T));
    T *bp = scratch(max_kc * width * (int64_t)sizeof(T));
    int rc = ap && bp ? MC_OK : MC_ERR_NOMEM;
    for (int64_t b = 0; b < blocks && rc == MC_OK; ++b) {
        const SUFFIX(gemm_block) blk = block_of(ctx, b);
        if (blk.kc <= 0 || blk.kc > max_kc) {
            rc = MC_ERR_ARG;
            break;
        }
        for (int64_t i = 0; i < m; i += MR)
            kr->pack_a(m - i < MR ? m - i : MR, blk.kc, blk.a + i * blk.a_rs, blk.a_rs, 1, ap + i * blk.kc);
        for (int64_t j = 0; j < n; j += width) {
            const int64_t nc = n - j < width ? n - j : width;
            pack(ctx, b, j, nc, NR, bp);
            kr->macro(m, nc, blk.kc, ap, bp, c + j, c_rs, b == 0);
        }
    }
    free(ap);
    free(bp);
    return rc;
}
