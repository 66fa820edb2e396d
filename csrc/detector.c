/* detector.c — the chapter's detector stage, ReLU, and its gradient, both PyTorch's to the bit:
 *
 *   relu        y[i]   = 0 where x[i] < 0, else x[i]    (clamp_min: -0 and NaN pass)
 *   relu_gate   out[i] = 0 where a[i] <= 0, else g[i]   (threshold_backward: +0 at a = 0)
 *
 * The gate is linear in g, so the gradient of the gradient is the gate again. Selects, not
 * multiplies by a 0/1 mask, so no -0 and no 0 * inf = NaN in a gradient. numpy's np.maximum(x,
 * 0) and np.where branch on each element, and a network's activations have random signs: on
 * LeNet's first layer (221K floats) they took 125 and 1,100 us, this loop 45 us with SSE and 28
 * with AVX2 (out of L2, so wider lanes pay). The loops are compiled for each SIMD path
 * (FOR_EACH_SIMD_PATH), and the entry points (detector_body.h) split them over the threads
 * outside any target region. Elementwise, so the same bits at any thread count. */
#include <omp.h>
#include <stdint.h>

#include "mc.h"
#include "kernel.h"

/* g[i] unless BLOCKS(a[i]); g is read whatever a says, so that the select needs no branch: a
 * compare and a mask. */
#define BELOW_ZERO(v) ((v) < 0)
#define AT_OR_BELOW_ZERO(v) ((v) <= 0)
#define GATE_LOOP(name, target, T, BLOCKS)                                                        \
    static target void name(int64_t n, const T *restrict a, const T *restrict g, T *restrict out) \
    {                                                                                             \
        for (int64_t i = 0; i < n; ++i) {                                                         \
            const T pass = g[i];                                                                  \
            out[i] = BLOCKS(a[i]) ? (T)0 : pass;                                                  \
        }                                                                                         \
    }
#define GATE_LOOPS(path, target)                                  \
    GATE_LOOP(relu_##path##_f32, target, float, BELOW_ZERO)       \
    GATE_LOOP(relu_##path##_f64, target, double, BELOW_ZERO)      \
    GATE_LOOP(gate_##path##_f32, target, float, AT_OR_BELOW_ZERO) \
    GATE_LOOP(gate_##path##_f64, target, double, AT_OR_BELOW_ZERO)

FOR_EACH_SIMD_PATH(GATE_LOOPS)
#undef GATE_LOOPS
#undef GATE_LOOP
#undef AT_OR_BELOW_ZERO
#undef BELOW_ZERO

#define BODY "detector_body.h"
#include "for_each_dtype.h"
