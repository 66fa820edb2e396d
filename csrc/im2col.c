/* im2col.c — im2col and its adjoint col2im, float and double from one body
 * (im2col_body.h). Memory-bound, so built once, without SIMD variants. */
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

#define T float
#define SUFFIX(name) name##_f32
#include "im2col_body.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX(name) name##_f64
#include "im2col_body.h"
#undef T
#undef SUFFIX
