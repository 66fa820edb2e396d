/* gemm_kernel.h — packing and the register-blocked micro-kernel for one SIMD
 * path and one dtype. gemm.c includes it once per (path, dtype), inside a
 * `#pragma GCC target` region for the x86 paths, with these defined:
 *   KT       element type            KNAME(x)  x##_<path>_<dtype>
 *   VBYTES   vector register bytes   KMR, KNR  micro-tile rows, columns
 *   KKC, KMC k-block and row-block sizes (cache blocking, see gemm.c)
 *   KSTRUCT  the kernel-table struct type for KT (all but VBYTES are #undef-ed at the end)
 * Vectors are GCC vector extensions, so the same source becomes AVX-512,
 * AVX2+FMA, SSE2 or NEON code depending only on the target in force. None of
 * these functions takes or returns a vector, so calls across targets (from
 * the portable driver) are ABI-safe. */

typedef KT KNAME(vec) __attribute__((vector_size(VBYTES)));
#define KVL ((int)(VBYTES / sizeof(KT))) /* lanes per vector */
#define KNV (KNR / KVL)                  /* vectors per micro-tile row */

#define TT KT
#define TNAME KNAME
#include "transpose.h" /* KQ, KNAME(lines_across), KNAME(pair_across) */

/* dst[p*width + j] = src[j*stride + p] for j < used, 0 for used <= j < width:
 * `used` lines of src, each contiguous in p, stored across. A row-major A
 * sliver and a column-major B sliver (a transposed view) both pack this way.
 * KQ x KQ blocks go through registers — KQ contiguous loads, KQ stores —
 * instead of one element at a time; lines left over go two at a time
 * (pair_across), a last odd one and the zero columns element-wise. */
static inline __attribute__((always_inline)) void
KNAME(pack_across)(int64_t used, int width, int64_t kc, const KT *src, int64_t stride,
                   KT *restrict dst)
{
    const int64_t whole = used / KQ * KQ; /* lines in whole blocks */
    int64_t p = 0;
    for (; p + KQ <= kc; p += KQ) {
        _Pragma("GCC unroll 8")
        for (int64_t j = 0; j < whole; j += KQ) {
            const KT *line[KQ];
            _Pragma("GCC unroll 4")
            for (int i = 0; i < KQ; ++i)
                line[i] = src + (j + i) * stride + p;
            KNAME(lines_across)(line, dst + p * width + j, width);
        }
        int64_t j = whole;
        for (; j + 2 <= used; j += 2)
            KNAME(pair_across)(src + j * stride + p, src + (j + 1) * stride + p, dst + p * width + j, width);
        for (; j < width; ++j)
            for (int q = 0; q < KQ; ++q)
                dst[(p + q) * width + j] = j < used ? src[j * stride + p + q] : (KT)0;
    }
    for (; p < kc; ++p)
        for (int64_t j = 0; j < width; ++j)
            dst[p * width + j] = j < used ? src[j * stride + p] : (KT)0;
}

/* One sliver of A: rows [0, mr) (mr <= KMR) and kc columns, stored column by
 * column (dst[p*KMR + i] = A[i, p]) so that the micro-kernel reads it
 * sequentially; rows mr..KMR-1 are zero, so a tile may be taller than mr.
 * Column-major A is a straight copy with a literal unit stride, which the
 * compiler vectorises; row-major A is transposed in register blocks. */
static void KNAME(pack_a)(int64_t mr, int64_t kc, const KT *a, int64_t rs,
                          int64_t cs, KT *restrict dst)
{
    if (mr == KMR && cs == 1) {
        KNAME(pack_across)(KMR, KMR, kc, a, rs, dst); /* a constant mr: unrolled */
    } else if (cs == 1) {
        KNAME(pack_across)(mr, KMR, kc, a, rs, dst);
    } else if (mr == KMR && rs == 1) {
        for (int64_t p = 0; p < kc; ++p)
            _Pragma("GCC unroll 32")
            for (int i = 0; i < KMR; ++i)
                dst[p * KMR + i] = a[i + p * cs];
    } else {
        for (int64_t p = 0; p < kc; ++p)
            for (int i = 0; i < KMR; ++i)
                dst[p * KMR + i] = i < mr ? a[i * rs + p * cs] : (KT)0;
    }
}

/* One sliver of B: kc rows and columns [0, nr) (nr <= KNR), stored row by row
 * (dst[p*KNR + j] = B[p, j]), columns nr..KNR-1 zero. Row-major B is copied
 * row by row; column-major B (a transposed view, as a weight gradient
 * passes) is transposed in register blocks. */
static void KNAME(pack_b)(int64_t nr, int64_t kc, const KT *b, int64_t rs,
                          int64_t cs, KT *restrict dst)
{
    if (nr == KNR && cs == 1) {
        for (int64_t p = 0; p < kc; ++p)
            memcpy(dst + p * KNR, b + p * rs, KNR * sizeof(KT));
    } else if (nr == KNR && rs == 1) {
        KNAME(pack_across)(KNR, KNR, kc, b, cs, dst); /* a constant nr: unrolled */
    } else if (rs == 1) {
        KNAME(pack_across)(nr, KNR, kc, b, cs, dst);
    } else {
        for (int64_t p = 0; p < kc; ++p)
            for (int j = 0; j < KNR; ++j)
                dst[p * KNR + j] = j < nr ? b[p * rs + j * cs] : (KT)0;
    }
}

/* C[0:mr, 0:nr] (= or +=) one A sliver @ one B sliver, as a tile of `rows`
 * (a constant, mr <= rows <= KMR) by KNR.
 * Loop order: p outermost, the whole rows x KNR tile of C held in rows*KNV
 * vector accumulators; each step loads one row of B (KNV vectors), broadcasts
 * `rows` elements of A and issues rows*KNV independent FMAs — at rows = KMR
 * enough to hide the FMA latency while B and A are streamed once (an edge
 * tile of KMR/3 rows waits on it, but still beats KMR rows of which most are
 * zeros). C is touched once, at the end:
 * C = acc on the first k-block of a plain product, else C = C + acc, the same
 * operation for full and edge tiles, so no result depends on tile position. */
static inline __attribute__((always_inline)) void
KNAME(micro)(int64_t kc, const KT *restrict a, const KT *restrict b,
             KT *restrict c, int64_t c_rs, int64_t mr, int64_t nr, int overwrite, const int rows)
{
    typedef KNAME(vec) V;
    V acc[KMR][KNV];

    /* C is needed only after the k loop: start fetching its rows now so the
     * misses overlap the FMAs instead of stalling the stores. */
    _Pragma("GCC unroll 32")
    for (int i = 0; i < rows; ++i)
        if (i < mr) {  /* no pointer past C's last row */
            __builtin_prefetch(c + i * c_rs, 1);
            __builtin_prefetch(c + i * c_rs + nr - 1, 1);
        }
    _Pragma("GCC unroll 32")
    for (int i = 0; i < rows; ++i)
        _Pragma("GCC unroll 8")
        for (int j = 0; j < KNV; ++j)
            acc[i][j] = (V){0};
    _Pragma("GCC unroll 4")
    for (int64_t p = 0; p < kc; ++p) {
        V bv[KNV];
        _Pragma("GCC unroll 8")
        for (int j = 0; j < KNV; ++j)
            bv[j] = *(const V *)(b + j * KVL); /* packed B is vector-aligned */
        _Pragma("GCC unroll 32")
        for (int i = 0; i < rows; ++i)
            _Pragma("GCC unroll 8")
            for (int j = 0; j < KNV; ++j)
                acc[i][j] += a[i] * bv[j];
        a += KMR;
        b += KNR;
    }

    if (mr == rows && nr == KNR) {
        _Pragma("GCC unroll 32")
        for (int i = 0; i < rows; ++i)
            _Pragma("GCC unroll 8")
            for (int j = 0; j < KNV; ++j) {
                KT *cp = c + i * c_rs + j * KVL;
                V v = acc[i][j];
                if (!overwrite) {
                    V old;
                    memcpy(&old, cp, sizeof old); /* C rows are unaligned */
                    v = old + v;
                }
                memcpy(cp, &v, sizeof v);
            }
    } else {
        KT tile[KMR * KNR] __attribute__((aligned(64)));
        memcpy(tile, acc, (size_t)rows * sizeof acc[0]);
        for (int64_t i = 0; i < mr; ++i)
            for (int64_t j = 0; j < nr; ++j)
                c[i * c_rs + j] = overwrite ? tile[i * KNR + j]
                                            : c[i * c_rs + j] + tile[i * KNR + j];
    }
}

/* C[0:mc, 0:nc] (= or +=) packed A block @ packed B block.
 * Loop order: B slivers outer, A slivers inner, the BLIS order: the current
 * B sliver (kc x KNR) stays in L1 while the A block (mc x kc, sized by KMC to
 * sit in L2) streams past it. A last tile of few rows is only 2/3 or 1/3 as
 * tall (micro's `rows`, a constant in each call): 64 rows are ten tiles of 6
 * and one of 4, which then does not pay for 6. Nothing of that is decided
 * per tile: with a short k (a 5-tap 1-D kernel) a tile is a few dozen cycles. */
static void KNAME(macro)(int64_t mc, int64_t nc, int64_t kc, const KT *ap, const KT *bp, KT *c,
                         int64_t c_rs, int overwrite)
{
    _Static_assert(KMR % 3 == 0, "edge tiles are KMR/3 rows tall");
    const int64_t full = mc / KMR * KMR, edge = mc - full;
    for (int64_t jr = 0; jr < nc; jr += KNR) {
        const int64_t nr = nc - jr < KNR ? nc - jr : KNR;
        const KT *b = bp + jr * kc;
        for (int64_t ir = 0; ir < full; ir += KMR)
            KNAME(micro)(kc, ap + ir * kc, b, c + ir * c_rs + jr, c_rs, KMR, nr, overwrite, KMR);
        if (edge == 0)  /* else C's row `full` would be past its end */
            continue;
        const KT *a = ap + full * kc;
        KT *ct = c + full * c_rs + jr;
        if (edge > 2 * KMR / 3)
            KNAME(micro)(kc, a, b, ct, c_rs, edge, nr, overwrite, KMR);
        else if (edge > KMR / 3)
            KNAME(micro)(kc, a, b, ct, c_rs, edge, nr, overwrite, 2 * KMR / 3);
        else
            KNAME(micro)(kc, a, b, ct, c_rs, edge, nr, overwrite, KMR / 3);
    }
}

static const struct KSTRUCT KNAME(gemm) = {
    KMR, KNR, KKC, KMC, KNAME(pack_a), KNAME(pack_b), KNAME(macro),
};

#undef KVL
#undef KNV
#undef KQ
#undef TT
#undef TNAME
/* The parameters are this inclusion's only: the next one defines its own. */
#undef KT
#undef KNAME
#undef KMR
#undef KNR
#undef KKC
#undef KMC
#undef KSTRUCT
