/* detector.c — the chapter's detector stage, ReLU, as one gate that serves both of its roles:
 *
 *   relu_gate   out[i] = 0 where a[i] <= 0, else g[i]
 *
 * relu(x) is relu_gate(x, x) (NaN passes, as in PyTorch) and its gradient is relu_gate(x, g),
 * PyTorch's threshold_backward: a select, not a multiply by a 0/1 mask, so no -0 and no 0 * inf.
 * numpy's np.maximum(x, 0) and np.where branch on each element, and a network's activations
 * have random signs: on LeNet's first layer (221K floats) they took 125 and 1,100 us, this loop
 * 45 us with SSE and 28 with AVX2 (out of L2, so wider lanes pay). The loop is compiled for each
 * SIMD path, as peak.c's is, and the entry point (detector_body.h) splits it over the threads
 * outside any target region. Elementwise, so the same bits at any thread count. */
#include <omp.h>
#include <stdint.h>

#include "mc.h"
#include "kernel.h"

/* g is read whatever a says, so that the select needs no branch: a compare and a mask. */
#define GATE_LOOP(name, T)                                                                 \
    static void name(int64_t n, const T *restrict a, const T *restrict g, T *restrict out) \
    {                                                                                      \
        for (int64_t i = 0; i < n; ++i) {                                                  \
            const T pass = g[i];                                                           \
            out[i] = a[i] <= 0 ? (T)0 : pass;                                              \
        }                                                                                  \
    }

GATE_LOOP(gate_generic_f32, float)
GATE_LOOP(gate_generic_f64, double)
#ifdef MC_X86_PATHS
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
GATE_LOOP(gate_avx2_f32, float)
GATE_LOOP(gate_avx2_f64, double)
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
GATE_LOOP(gate_avx512_f32, float)
GATE_LOOP(gate_avx512_f64, double)
#pragma GCC pop_options
#endif
#undef GATE_LOOP

#define BODY "detector_body.h"
#include "for_each_dtype.h"
