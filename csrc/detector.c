/* detector.c — the chapter's detector stage, ReLU, as one gate that serves both of its roles:
 *
 *   relu_gate   out[i] = 0 where a[i] <= 0, else g[i]
 *
 * relu(x) is relu_gate(x, x) (NaN passes, as in PyTorch) and its gradient is relu_gate(x, g),
 * PyTorch's threshold_backward: a select, not a multiply by a 0/1 mask, so no -0 and no 0 * inf.
 * numpy's np.maximum(x, 0) and np.where branch on each element, and a network's activations
 * have random signs: on LeNet's first layer (221K floats) they took 125 and 1,100 us where this
 * takes tens. Elementwise, so the same bits at any thread count. */
#include <stdint.h>

#include "mc.h"
#include "kernel.h"

#define BODY "detector_body.h"
#include "for_each_dtype.h"
