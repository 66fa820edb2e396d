/* tiled.c — tiled and locally connected convolution (the chapter's "cycle between
 * groups of shared parameters" and "local connection (no sharing)"): forward, input
 * gradient and weight gradient, float and double from one body (tiled_body.h).
 * Direct loops only: with a tile the kernel changes from one output position to the
 * next, so no single column matrix times one weight matrix computes it. */
#include <stdint.h>
#include <string.h>

#include "mc.h"
#include "kernel.h"

/* The three roles share one loop nest (tiled_body.h: tiled_pair). */
enum { TILED_FORWARD, TILED_INPUT_GRAD, TILED_WEIGHT_GRAD };

/* Everything a tiled kernel trusts beyond geometry_ok: groups = 1 (tiled convolution
 * has no channel groups) and a tile of at least 1 on every axis (p % tile). */
static int tiled_geometry_ok(const mc_geometry *g, int64_t batch)
{
    if (!geometry_ok(g, batch) || g->groups != 1 || g->out_channels < 0)
        return 0;
    for (int a = 0; a < 3; ++a)
        if (g->tile[a] < 1)
            return 0;
    return 1;
}

/* a * b for threads_for, which only compares against 2^16: saturates instead of
 * overflowing when both factors are huge. */
static int64_t work_size(int64_t a, int64_t b)
{
    return a < ((int64_t)1 << 31) && b < ((int64_t)1 << 31) ? a * b : INT64_MAX;
}

#define BODY "tiled_body.h"
#include "for_each_dtype.h"
