/* gemm.c — C (=|+=) A @ B for float and double, BLIS/GotoBLAS style: A and B
 * are packed into contiguous slivers (any input strides cost nothing after
 * that), and a register-blocked micro-kernel does the flops.
 *
 * The micro-kernel and packing (gemm_kernel.h) are compiled three times on
 * x86-64 — AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and the baseline — and
 * mc_simd_level() (runtime.c, chosen with __builtin_cpu_supports) indexes the
 * table of them on every call. The loop nest and OpenMP (gemm_driver.h) are
 * compiled once.
 *
 * Scratch: the packed panels are allocated here per call (64-byte aligned,
 * a few MB at most) rather than passed in, so Python needs no knowledge of
 * the blocking; allocation failure returns MC_ERR_NOMEM. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* Blocking shared by every path. GEMM_NC (columns of the packed B panel,
 * kept in L3) and GEMM_MB (rows of A packed per step) bound the scratch;
 * GEMM_JW is the width of one parallel tile. All are multiples of every
 * path's KNR / KMR. */
#define GEMM_NC 4096
#define GEMM_MB 2304
#define GEMM_JW 256
/* mc_gemm_blocks' column panels: a k-block's packed B panel (up to 256 x 256) stays in L2. */
#define GEMM_BLOCK_NC 256

/* What one SIMD path provides for one dtype: its blocking and the three
 * functions that touch packed data (see gemm_kernel.h). */
#define MC_GEMM_KERNEL_STRUCT(T, name)                                       \
    struct name {                                                            \
        int mr, nr, kc, mc;                                                  \
        void (*pack_a)(int64_t mr, int64_t kc, const T *a, int64_t rs,       \
                       int64_t cs, T *restrict dst);                         \
        void (*pack_b)(int64_t nr, int64_t kc, const T *b, int64_t rs,       \
                       int64_t cs, T *restrict dst);                         \
        void (*macro)(int64_t mc, int64_t nc, int64_t kc, const T *ap,       \
                      const T *bp, T *c, int64_t c_rs, int overwrite);       \
    }
MC_GEMM_KERNEL_STRUCT(float, gemm_kernel_f32);
MC_GEMM_KERNEL_STRUCT(double, gemm_kernel_f64);

static void *scratch(int64_t bytes)
{
    /* aligned_alloc wants a multiple of the alignment */
    return aligned_alloc(64, (size_t)(ceil_div(bytes, 64) * 64));
}

/* Waking sleeping threads costs tens of microseconds: below ~4 MFLOP one
 * thread is faster. */
static int gemm_threads(int64_t m, int64_t n, int64_t k)
{
    return (double)m * (double)n * (double)k < 2.0e6 ? 1 : mc_get_num_threads();
}

/* Each block below: the micro-tile is KMR rows by KNR columns, sized so the
 * KMR * KNR / lanes accumulators plus KNR / lanes B vectors plus one
 * broadcast fit the register file (32 zmm, 16 ymm, 16 xmm); KKC keeps one B
 * sliver (KKC x KNR) within half of a 32 KB L1; KMC keeps the A block
 * (KMC x KKC) within ~150 KB of L2. */

/* ---- portable (SSE2 on x86-64, NEON on aarch64): 16-byte vectors ---- */
#define VBYTES 16
#define KSTRUCT gemm_kernel_f32
#define KT float
#define KNAME(x) x##_generic_f32
#define KMR 6
#define KNR 8
#define KKC 256
#define KMC 144
#include "gemm_kernel.h"
#define KSTRUCT gemm_kernel_f64
#define KT double
#define KNAME(x) x##_generic_f64
#define KMR 6
#define KNR 4
#define KKC 256
#define KMC 72
#include "gemm_kernel.h"
#undef VBYTES

#ifdef MC_X86_PATHS
/* ---- AVX2 + FMA (x86-64-v3): 32-byte vectors, 12 accumulators ---- */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define VBYTES 32
#define KSTRUCT gemm_kernel_f32
#define KT float
#define KNAME(x) x##_avx2_f32
#define KMR 6
#define KNR 16
#define KKC 256
#define KMC 144
#include "gemm_kernel.h"
#define KSTRUCT gemm_kernel_f64
#define KT double
#define KNAME(x) x##_avx2_f64
#define KMR 6
#define KNR 8
#define KKC 256
#define KMC 72
#include "gemm_kernel.h"
#undef VBYTES
#pragma GCC pop_options

/* ---- AVX-512 (x86-64-v4): 64-byte vectors, 24 accumulators ---- */
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define VBYTES 64
#define KSTRUCT gemm_kernel_f32
#define KT float
#define KNAME(x) x##_avx512_f32
#define KMR 12
#define KNR 32
#define KKC 128
#define KMC 144
#include "gemm_kernel.h"
#define KSTRUCT gemm_kernel_f64
#define KT double
#define KNAME(x) x##_avx512_f64
#define KMR 12
#define KNR 16
#define KKC 128
#define KMC 144
#include "gemm_kernel.h"
#undef VBYTES
#pragma GCC pop_options
#endif

/* Indexed by the SIMD level (SIMD_PATHS' order); mc_simd_level() never
 * exceeds what was built. */
static const struct gemm_kernel_f32 *const kernels_f32[] = {SIMD_PATHS(ADDRESS_F32, gemm)};
static const struct gemm_kernel_f64 *const kernels_f64[] = {SIMD_PATHS(ADDRESS_F64, gemm)};

#define BODY "gemm_driver.h"
#include "for_each_dtype.h"
