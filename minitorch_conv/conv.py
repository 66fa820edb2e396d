"""The chapter's three operations as autograd ops over the C kernels:

    c(x, w) -> y             convolution (cross-correlation, as the chapter says we really use)
    h(w, y) -> x-shaped      the input gradient, the chapter's "deconvolution"
    g(x, y) -> w-shaped      the weight gradient, which accounts for the parameter sharing

All three are bilinear and each one's gradients are the other two (the table in STYLE.md), so the
rules below are one line each and second derivatives of the whole family come for free.
The public functions (conv2d, conv_transpose2d, unfold, ...) parse and check their arguments into
a Geometry once, then call these ops.
"""
import dataclasses
import functools
import math

import numpy as np

from . import _kernels
from .autograd import record
from .geometry import INPUT_LAYOUTS, Geometry, check_size, per_axis
from .tensor import expect_tensor

ALGORITHMS = ("auto", "im2col", "direct")
WORKSPACE_BYTES = 8 * 2 ** 20  # the im2col column buffer never grows past this (unless one image needs more): small chunks stay in cache
WORKSPACE_ROLES = ("conv_input_grad", "conv_weight_grad")  # the im2col c packs its columns straight from x


# -- the closed table: c, h, g and their gradients ------------------------------------------------
def conv(x, w, geom, algorithm="auto"):
    """c(x, w): the convolution."""
    y = launch("conv_forward", geom, x.data, w.data, geom.output_shape(len(x.data)), algorithm)
    return record(y, (x, w), lambda gy, out: conv_input_grad(w, gy, geom, algorithm),
                             lambda gy, out: conv_weight_grad(x, gy, geom, algorithm))


def conv_input_grad(w, y, geom, algorithm="auto"):
    """h(w, y): the adjoint of c in its input."""
    x = launch("conv_input_grad", geom, w.data, y.data, geom.input_shape(len(y.data)), algorithm)
    return record(x, (w, y), lambda gx, out: conv_weight_grad(gx, y, geom, algorithm),
                             lambda gx, out: conv(gx, w, geom, algorithm))


def conv_weight_grad(x, y, geom, algorithm="auto"):
    """g(x, y): the adjoint of c in its weight."""
    w = launch("conv_weight_grad", geom, x.data, y.data, geom.weight_shape, algorithm)
    return record(w, (x, y), lambda gw, out: conv_input_grad(gw, y, geom, algorithm),
                             lambda gw, out: conv(x, gw, geom, algorithm))


def unfold_op(x, geom):
    """im2col: (N, C, *in) -> (N, C*prod(kernel), prod(out)); its gradient is fold."""
    cols = np.empty((len(x.data), geom.channels * math.prod(geom.kernel), math.prod(geom.out_size)), x.dtype)
    _kernels.run("im2col", geom, len(x.data), np.ascontiguousarray(x.data), cols)
    return record(cols, (x,), lambda g, out: fold_op(g, geom))


def fold_op(cols, geom):
    """col2im, the adjoint of im2col; its gradient is unfold."""
    x = np.empty(geom.input_shape(len(cols.data)), cols.dtype)
    _kernels.run("col2im", geom, len(cols.data), np.ascontiguousarray(cols.data), x)
    return record(x, (cols,), lambda g, out: unfold_op(g, geom))


# -- choosing and launching a kernel ----------------------------------------------------------------
def choose_algorithm(geom):
    """What "auto" runs: direct loops when each group has fewer than 4 output channels (depthwise,
    the edge detector), where a GEMM has too few rows to pay for its column matrix; im2col + GEMM
    elsewhere (measured with `minitorch-conv bench`: im2col wins from LeNet's 6 outputs up)."""
    return "direct" if geom.out_channels // geom.groups < 4 else "im2col"


@functools.lru_cache(maxsize=256)
def workspace_elements(geom, batch):
    """(images per im2col chunk, elements of the workspace): the most images whose workspace, as
    C counts it, fits WORKSPACE_BYTES in float64; at least one, even if one alone does not fit.
    Cached: the bisection asks C a dozen times, each launch would."""
    fits = lambda chunk: 8 * _kernels.conv_workspace(geom, chunk) <= WORKSPACE_BYTES  # noqa: E731
    lo, hi = 1, max(batch, 1)
    while lo < hi:  # the workspace grows with the chunk: bisect for the largest that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo, max(_kernels.conv_workspace(geom, lo), 1)


def launch(role, geom, a, b, out_shape, algorithm=None):
    """Run one role (c, h or g: `<family>_forward`, `_input_grad`, `_weight_grad`) on numpy arrays,
    promoted to one dtype and made contiguous. algorithm None: the family has one kernel per role."""
    dtype = np.result_type(a.dtype, b.dtype)
    a, b = (np.ascontiguousarray(v, dtype=dtype) for v in (a, b))
    out = np.empty(out_shape, dtype)
    batch = len(b) if role.endswith("input_grad") else len(a)  # h gets the batch from y, c and g from x
    if algorithm == "auto":
        algorithm = choose_algorithm(geom)
    kernel = role if algorithm is None else f"{role}_{algorithm}"
    if algorithm == "im2col" and role in WORKSPACE_ROLES:
        chunk, size = workspace_elements(geom, batch)
        _kernels.run(kernel, geom, batch, a, b, chunk, np.empty(size, dtype), out)
    else:
        _kernels.run(kernel, geom, batch, a, b, out)
    return out


# -- geometry from the functional arguments ---------------------------------------------------------
_KERNEL_LAYOUTS = {1: "(C_out, C_in/groups, k)", 2: "(C_out, C_in/groups, kH, kW)",
                   3: "(C_out, C_in/groups, kD, kH, kW)"}


def padding_amounts(padding, nd, in_size, kernel, stride, dilation, where):
    """(before, after) per axis for an int, a tuple, "valid", "same" or "full"."""
    window = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * nd, (0,) * nd
        if padding == "full":  # every input meets every kernel tap: out = in + window - 1
            return tuple(w - 1 for w in window), tuple(w - 1 for w in window)
        if padding == "same":  # out = ceil(in / stride); an odd leftover pad goes to the end
            total = [max((-(-n // s) - 1) * s + w - n, 0) for n, s, w in zip(in_size, stride, window)]
            return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
        raise ValueError(f"{where}: padding must be an int, a tuple or one of 'valid', 'same', 'full'; "
                         f"got {padding!r}")
    pad = per_axis(padding, nd, "padding", where, 0)
    return pad, pad


def _check_shape(shape, nd, where, name, layout):
    shape = tuple(shape)
    if len(shape) != nd + 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape):
        raise ValueError(f"{where}: {name} must be {layout}, got shape {shape}")
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: {name} shape {shape} has a negative size")
    return tuple(int(s) for s in shape)


_GEOMETRIES = {}  # a layer asks for the same geometry every step: checked once, then looked up


def conv_geometry(where, input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """Check a convolution's arguments against each other and compute its output size."""
    # keyed by repr, not hash: True == 1 and [1] is unhashable, and both must still be refused
    key = repr((where, input_shape, weight_shape, stride, padding, dilation, groups))
    geom = _GEOMETRIES.get(key)
    if geom is None:
        if len(_GEOMETRIES) >= 1024:
            _GEOMETRIES.clear()
        geom = _GEOMETRIES[key] = _checked_geometry(where, input_shape, weight_shape, stride, padding,
                                                    dilation, groups)
    return geom


def _checked_geometry(where, input_shape, weight_shape, stride, padding, dilation, groups):
    nd = len(tuple(weight_shape)) - 2
    if nd not in INPUT_LAYOUTS:
        raise ValueError(f"{where}: weight must have 3 to 5 dimensions, got shape {tuple(weight_shape)}")
    x_shape = _check_shape(input_shape, nd, where, "input", INPUT_LAYOUTS[nd])
    w_shape = _check_shape(weight_shape, nd, where, "weight", _KERNEL_LAYOUTS[nd])
    (groups,) = per_axis(groups, 1, "groups", where, 1)
    c_in, c_out, kernel = x_shape[1], w_shape[0], w_shape[2:]
    if min(kernel) < 1:
        raise ValueError(f"{where}: kernel size must be >= 1, got weight shape {w_shape}")
    if c_in % groups or c_out % groups:
        raise ValueError(f"{where}: groups={groups} must divide both the {c_in} input channels and "
                         f"the {c_out} output channels")
    if w_shape[1] * groups != c_in:
        raise ValueError(f"{where}: input has {c_in} channels but weight expects {w_shape[1] * groups} "
                         f"(weight shape {w_shape}, groups={groups})")
    stride = per_axis(stride, nd, "stride", where, 1)
    dilation = per_axis(dilation, nd, "dilation", where, 1)
    in_size = x_shape[2:]
    before, after = padding_amounts(padding, nd, in_size, kernel, stride, dilation, where)
    out_size = []
    for n, k, s, d, p0, p1 in zip(in_size, kernel, stride, dilation, before, after):
        window = d * (k - 1) + 1
        if window > n + p0 + p1:
            raise ValueError(f"{where}: kernel {tuple(kernel)} (dilation {tuple(dilation)}) is larger than "
                             f"the padded input {tuple(in_size)} + padding {tuple(before)}/{tuple(after)}")
        out_size.append((n + p0 + p1 - window) // s + 1)
    geom = Geometry(c_in, in_size, tuple(out_size), kernel, stride, before, after, dilation, c_out, groups)
    for shape, name in ((x_shape, "input"), (w_shape, "weight"), (geom.output_shape(x_shape[0]), "output"),
                        ((c_in * math.prod(kernel), math.prod(out_size)), "column matrix")):
        check_size(shape, where, name)
    return geom


def check_algorithm(algorithm, where):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{where}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm


def add_bias(y, bias, where):
    """y + bias broadcast over the batch and spatial axes (bias has one entry per channel)."""
    if bias is None:
        return y
    expect_tensor(bias, "bias", where)
    if bias.shape != (y.shape[1],):
        raise ValueError(f"{where}: bias must have shape {(y.shape[1],)}, got {bias.shape}")
    return y + bias.reshape((-1,) + (1,) * (y.ndim - 2))


# -- the public operations, for any number of spatial axes -----------------------------------------
def convolution(nd, where, x, weight, bias, stride, padding, dilation, groups, algorithm):
    expect_tensor(x, "input", where)
    expect_tensor(weight, "weight", where)
    _expect_rank(weight, nd, where)
    geom = conv_geometry(where, x.shape, weight.shape, stride, padding, dilation, groups)
    return add_bias(conv(x, weight, geom, check_algorithm(algorithm, where)), bias, where)


def weight_grad(nd, where, x, grad_out, weight_shape, stride, padding, dilation, groups, algorithm):
    """g(x, grad_out) with the geometry of the convolution that took x to an output like grad_out."""
    expect_tensor(x, "input", where)
    expect_tensor(grad_out, "grad_out", where)
    geom = conv_geometry(where, x.shape, _rank_checked(weight_shape, nd, "weight_shape", where),
                         stride, padding, dilation, groups)
    _expect_output(grad_out, geom, len(x), where)
    return conv_weight_grad(x, grad_out, geom, check_algorithm(algorithm, where))


def input_grad(nd, where, weight, grad_out, input_shape, stride, padding, dilation, groups, algorithm):
    """h(weight, grad_out) with the geometry of the convolution that took an input of input_shape."""
    expect_tensor(weight, "weight", where)
    expect_tensor(grad_out, "grad_out", where)
    _expect_rank(weight, nd, where)
    geom = conv_geometry(where, _rank_checked(input_shape, nd, "input_shape", where), weight.shape,
                         stride, padding, dilation, groups)
    if len(grad_out) != tuple(input_shape)[0]:
        raise ValueError(f"{where}: grad_out has batch {len(grad_out)} but input_shape {tuple(input_shape)}")
    _expect_output(grad_out, geom, len(grad_out), where)
    return conv_input_grad(weight, grad_out, geom, check_algorithm(algorithm, where))


def transposed_convolution(nd, where, x, weight, bias, stride, padding, output_padding, groups, dilation):
    """h as a layer: the adjoint of the convolution with the same arguments, whose input size is
    (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1."""
    expect_tensor(x, "input", where)
    expect_tensor(weight, "weight", where)
    _expect_rank(weight, nd, where)
    _check_shape(x.shape, nd, where, "input", INPUT_LAYOUTS[nd])
    stride = per_axis(stride, nd, "stride", where, 1)
    dilation = per_axis(dilation, nd, "dilation", where, 1)
    pad = per_axis(padding, nd, "padding", where, 0)
    extra = per_axis(output_padding, nd, "output_padding", where, 0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"{where}: output_padding {extra} must be smaller than stride {stride} "
                         f"or dilation {dilation} on every axis")
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1 for n, s, p, d, k, e
                 in zip(x.shape[2:], stride, pad, dilation, weight.shape[2:], extra))
    if min(size) < 1:
        raise ValueError(f"{where}: input {x.shape} with weight {weight.shape}, stride {stride} and padding "
                         f"{pad} gives an empty output {size}")
    (groups,) = per_axis(groups, 1, "groups", where, 1)
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"{where}: input has {x.shape[1]} channels but weight expects {weight.shape[0]} "
                         f"(weight shape {weight.shape} is (C_in, C_out/groups, *kernel))")
    geom = conv_geometry(where, (len(x), weight.shape[1] * groups, *size), weight.shape,
                         stride, pad, dilation, groups)
    # output_padding >= stride (allowed when dilation is larger) adds windows the forward convolution
    # would not have: pin its output to x's size, the padding after follows.
    out = x.shape[2:]
    geom = dataclasses.replace(geom, out_size=out, pad_after=tuple(
        (o - 1) * s + w - n - p for o, s, w, n, p in zip(out, stride, geom.window, size, pad)))
    return add_bias(conv_input_grad(weight, x, geom), bias, where)


def _window_geometry(where, x_shape, kernel_size, dilation, padding, stride):
    """The geometry of unfold/fold: a (N, C, *spatial) tensor with a sliding window."""
    nd = len(x_shape) - 2
    if nd not in INPUT_LAYOUTS:
        raise ValueError(f"{where}: input must be (N, C, *spatial) with 1 to 3 spatial axes, got shape {x_shape}")
    kernel = per_axis(kernel_size, nd, "kernel_size", where, 1)
    return conv_geometry(where, x_shape, (1, x_shape[1], *kernel), stride, padding, dilation)


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """im2col with PyTorch's semantics: (N, C, *spatial) -> (N, C * prod(kernel), L)."""
    expect_tensor(x, "input", "unfold")
    return unfold_op(x, _window_geometry("unfold", x.shape, kernel_size, dilation, padding, stride))


def fold(cols, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im with PyTorch's semantics: (N, C * prod(kernel), L) -> (N, C, *output_size), overlaps summed."""
    expect_tensor(cols, "input", "fold")
    if cols.ndim != 3:
        raise ValueError(f"fold: input must be (N, C * prod(kernel_size), L), got shape {cols.shape}")
    size = (output_size,) if isinstance(output_size, (int, np.integer)) else tuple(output_size)
    kernel = per_axis(kernel_size, len(size), "kernel_size", "fold", 1)
    if cols.shape[1] % math.prod(kernel):
        raise ValueError(f"fold: input has {cols.shape[1]} rows, not a multiple of prod(kernel_size) = "
                         f"{math.prod(kernel)}")
    channels = cols.shape[1] // math.prod(kernel)
    geom = _window_geometry("fold", (len(cols), channels, *size), kernel, dilation, padding, stride)
    if cols.shape[2] != math.prod(geom.out_size):
        raise ValueError(f"fold: input has {cols.shape[2]} columns but output_size {size} with these "
                         f"arguments has {math.prod(geom.out_size)} window positions {geom.out_size}")
    return fold_op(cols, geom)


def _rank_checked(shape, nd, name, where):
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: {name} must be a tuple of ints, got {shape!r}") from None
    if len(shape) != nd + 2:
        raise ValueError(f"{where}: {name} must have {nd + 2} entries, got {shape}")
    return shape


def _expect_rank(weight, nd, where):
    if weight.ndim != nd + 2:
        raise ValueError(f"{where}: weight must be {_KERNEL_LAYOUTS[nd]}, got shape {weight.shape}")


def _expect_output(grad_out, geom, batch, where):
    if grad_out.shape != geom.output_shape(batch):
        raise ValueError(f"{where}: grad_out has shape {grad_out.shape} but the convolution's output "
                         f"is {geom.output_shape(batch)}")


@dataclasses.dataclass(frozen=True)
class ConvCost:
    """The numbers of the chapter's "efficiency of convolution" table for one convolution."""
    output_shape: tuple
    multiplications: int     # one per kernel tap per output value
    additions: int           # summing those products (bias not counted)
    parameters: int          # stored floats of the kernel
    workspace_bytes: int     # the column buffer of the im2col algorithm's backward (0 for direct loops)

    @property
    def muls_and_adds(self):
        return self.multiplications + self.additions


def conv_cost(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, dtype="float32",
              algorithm="auto"):
    where = "conv_cost"
    geom = conv_geometry(where, input_shape, weight_shape, stride, padding, dilation, groups)
    check_algorithm(algorithm, where)
    batch = tuple(input_shape)[0]
    outputs = math.prod(geom.output_shape(batch))
    taps = geom.channels // geom.groups * math.prod(geom.kernel)
    algorithm = choose_algorithm(geom) if algorithm == "auto" else algorithm
    workspace = workspace_elements(geom, batch)[1] * np.dtype(dtype).itemsize if algorithm == "im2col" else 0
    return ConvCost(geom.output_shape(batch), outputs * taps, outputs * (taps - 1),
                    math.prod(geom.weight_shape), workspace)
