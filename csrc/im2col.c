/* im2col.c — im2col and its adjoint col2im, float and double from one body
 * (im2col_body.h). Memory-bound, so built once, without SIMD variants. */
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

#define BODY "im2col_body.h"
#include "for_each_dtype.h"
