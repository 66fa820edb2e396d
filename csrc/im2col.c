/* im2col.c — im2col and its adjoint col2im, float and double from one body
 * (im2col_body.h). Memory-bound, so built once, without SIMD variants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* For kernel column kw: its offset into a row of x and the output positions
 * [lo, hi) that read inside the row (valid_range). The same for every image,
 * channel and row, so computed once per call: for the short rows of small
 * images the divisions cost more than the copies. */
typedef struct row_span {
    int64_t offset, lo, hi;
} row_span;

static row_span *row_spans(const mc_geometry *g)
{
    row_span *spans = malloc((size_t)(g->kernel[2] > 0 ? g->kernel[2] : 1) * sizeof *spans);
    if (!spans)
        return NULL;
    for (int64_t kw = 0; kw < g->kernel[2]; ++kw) {
        spans[kw].offset = kw * g->dilation[2] - g->pad[2];
        valid_range(spans[kw].offset, g->stride[2], g->in[2], g->out[2], &spans[kw].lo, &spans[kw].hi);
    }
    return spans;
}

#define BODY "im2col_body.h"
#include "for_each_dtype.h"
