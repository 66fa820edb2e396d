/* transpose.h — lines stored across through 16-byte vectors, for one element
 * type: a square block transposed in registers, or two lines zipped. Included
 * with TT (the element type) and TNAME(x) (its names) defined: by
 * gemm_kernel.h once per (SIMD path, dtype), by conv_im2col_body.h once per
 * dtype. Defines KQ, the elements per 16 bytes; the includer #undefs KQ, TT
 * and TNAME when done. */

#include <stdint.h>
#include <string.h>

typedef TT TNAME(v16) __attribute__((vector_size(16)));
typedef __typeof__((TNAME(v16)){0} < (TNAME(v16)){0}) TNAME(m16); /* same-width ints */
#define KQ ((int)(16 / sizeof(TT)))

/* The perfect shuffle's two masks: __builtin_shuffle(a, b, lo) interleaves
 * the low halves of a and b, hi their high halves; at 16 bytes exactly
 * unpcklps/unpckhps (unpcklpd/unpckhpd), one instruction each. */
static inline __attribute__((always_inline)) void TNAME(zip_masks)(TNAME(m16) *lo, TNAME(m16) *hi)
{
    _Pragma("GCC unroll 4")
    for (int q = 0; q < KQ; ++q) {
        (*lo)[q] = q / 2 + q % 2 * KQ;
        (*hi)[q] = (*lo)[q] + KQ / 2;
    }
}

/* A KQ x KQ block, r[i][q] becomes r[q][i]. log2(KQ) rounds of the perfect
 * shuffle — row 2i := the low halves of rows i and i + KQ/2 interleaved, row
 * 2i+1 := the high halves — transpose any power-of-two square. */
static inline __attribute__((always_inline)) void TNAME(transpose16)(TNAME(v16) *r)
{
    TNAME(m16) lo, hi;
    TNAME(zip_masks)(&lo, &hi);
    _Pragma("GCC unroll 2")
    for (int s = 1; s < KQ; s *= 2) {
        TNAME(v16) t[KQ];
        _Pragma("GCC unroll 2")
        for (int i = 0; i < KQ / 2; ++i) {
            t[2 * i] = __builtin_shuffle(r[i], r[i + KQ / 2], lo);
            t[2 * i + 1] = __builtin_shuffle(r[i], r[i + KQ / 2], hi);
        }
        _Pragma("GCC unroll 4")
        for (int i = 0; i < KQ; ++i)
            r[i] = t[i];
    }
}

/* dst[q*width + i] = line[i][q] for i < 2, q < KQ: two lines zipped and
 * stored a pair at a time — for the lines left over after the KQ x KQ
 * blocks, two or three of them for float (a 6-line A sliver after its 4 x 4
 * block; a part B sliver), which went element by element: a third of
 * pack_a's elements and most of its time in pointwise_1x1's g. (For double,
 * KQ = 2, at most one line is left.) */
static inline __attribute__((always_inline)) void
TNAME(pair_across)(const TT *line0, const TT *line1, TT *restrict dst, int64_t width)
{
    TNAME(v16) a, b, zip[2];
    TNAME(m16) lo, hi;
    TNAME(zip_masks)(&lo, &hi);
    memcpy(&a, line0, sizeof a);
    memcpy(&b, line1, sizeof b);
    zip[0] = __builtin_shuffle(a, b, lo);
    zip[1] = __builtin_shuffle(a, b, hi);
    _Pragma("GCC unroll 4")
    for (int q = 0; q < KQ; ++q)
        memcpy(dst + q * width, (const TT *)zip + 2 * q, 2 * sizeof(TT));
}

/* dst[q*width + i] = line[i][q], i, q < KQ: KQ elements of KQ lines (each
 * contiguous), stored across KQ rows `width` apart — KQ loads, a transpose
 * in registers, KQ stores. The step of every packer that stores lines across. */
static inline __attribute__((always_inline)) void
TNAME(lines_across)(const TT *const line[], TT *restrict dst, int64_t width)
{
    TNAME(v16) r[KQ];
    _Pragma("GCC unroll 4")
    for (int i = 0; i < KQ; ++i)
        memcpy(&r[i], line[i], sizeof r[i]);
    TNAME(transpose16)(r);
    _Pragma("GCC unroll 4")
    for (int q = 0; q < KQ; ++q)
        memcpy(dst + q * width, &r[q], sizeof r[q]);
}
