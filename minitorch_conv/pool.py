"""Pooling, the chapter's third stage, as autograd ops over the C kernels (csrc/pool.c).

The ops close on themselves, as c, h and g do (STYLE.md's table):

    op                                gradient
    max_pool(x) -> y, indices         scatter(g, indices)       x[indices] += g
    scatter(y, indices) -> x-shaped   gather(g, indices)        g[indices]
    gather(x, indices) -> y-shaped    scatter(g, indices)
    avg_pool(x) -> y                  avg_pool_adjoint(g)
    avg_pool_adjoint(y) -> x-shaped   avg_pool(g)

so every pooling function has second derivatives. The rest is composed from these: Lp pooling is
a sum pool of |x|^p followed by a root, maxout is max pooling across groups of channels,
adaptive average pooling is one averaging matrix per axis, weighted average pooling is a
one-channel convolution with the normalised window.
"""
import math
import numbers

import numpy as np

from . import _kernels, ops
from .autograd import record
from .conv import conv, conv_geometry
from .geometry import INPUT_LAYOUTS, Geometry, check_size, per_axis
from .tensor import Tensor, expect_tensor, float32, float64

# -- the closed table ------------------------------------------------------------------------------
def max_pool(x, geom, adaptive=False):
    """Each window's maximum, and the flat index in its (D, H, W) plane of the element it came from."""
    x_data = np.ascontiguousarray(x.data)
    if x_data.dtype == float32 and math.prod(geom.in_size) >= 2 ** 31:  # the C row scratch is int32
        raise ValueError(f"max pooling: a float32 plane of {geom.in_size} has 2**31 elements or more; "
                         "use float64")
    y = np.empty(geom.output_shape(len(x_data)), x_data.dtype)
    indices = np.empty(y.shape, np.int64)
    kernel = "adaptive_max_pool_forward" if adaptive else "max_pool_forward"
    _kernels.run(kernel, geom, len(x_data), x_data, indices, y)
    return record(y, (x,), lambda g, out: scatter(g, indices, geom)), indices


def scatter(y, indices, geom, accumulate=True):
    """zeros of the input's shape with y added at indices (or, with accumulate=False, written there,
    the last write winning: max unpooling). Its gradient gathers: exact when accumulating, and for
    writes when no index repeats."""
    y_data = np.ascontiguousarray(y.data)
    x = np.empty(geom.input_shape(len(y_data)), y_data.dtype)
    _kernels.run("max_pool_scatter", geom, len(y_data), int(accumulate), indices, y_data, x)
    return record(x, (y,), lambda g, out: gather(g, indices, geom))


def gather(x, indices, geom):
    """x at indices, plane by plane: the adjoint of the accumulating scatter."""
    x_data = np.ascontiguousarray(x.data)
    y = np.empty(geom.output_shape(len(x_data)), x_data.dtype)
    _kernels.run("max_pool_gather", geom, len(x_data), indices, x_data, y)
    return record(y, (x,), lambda g, out: scatter(g, indices, geom))


def avg_pool(x, geom, count_include_pad=True, divisor=0):
    """Window sums over the divisor (divisor 0: the window's size by PyTorch's rule)."""
    x_data = np.ascontiguousarray(x.data)
    y = np.empty(geom.output_shape(len(x_data)), x_data.dtype)
    _kernels.run("avg_pool_forward", geom, len(x_data), int(count_include_pad), divisor, x_data, y)
    return record(y, (x,), lambda g, out: avg_pool_adjoint(g, geom, count_include_pad, divisor))


def avg_pool_adjoint(y, geom, count_include_pad=True, divisor=0):
    """The adjoint of avg_pool: each output over its divisor, spread back over its window."""
    y_data = np.ascontiguousarray(y.data)
    x = np.empty(geom.input_shape(len(y_data)), y_data.dtype)
    _kernels.run("avg_pool_adjoint", geom, len(y_data), int(count_include_pad), divisor, y_data, x)
    return record(x, (y,), lambda g, out: avg_pool(g, geom, count_include_pad, divisor))


def abs_pow(x, p):
    """|x| ** p. Its slope p |x|^(p-1) sign(x) is taken as 0 at x = 0 (for p < 1 it is infinite
    there), and the rule evaluates |x|^(p-1) only away from 0, so no derivative of any order is NaN."""
    def rule(g, out):
        nonzero = x.data != 0
        sign = Tensor(np.sign(x.data))
        return g * p * abs_pow(ops.where(nonzero, x, 1.0), p - 1) * sign
    return record(np.abs(x.data) ** x.dtype.type(p), (x,), rule)


def root(s, p):
    """s ** (1 / p) for s >= 0, with slope 0 at s = 0 (where it is infinite): Lp pooling of an
    all-zero window has gradient 0, never NaN, at any order."""
    def rule(g, out):
        positive = s.data > 0
        slope = out / (ops.where(positive, s, 1.0) * p)  # d s^(1/p) / ds = s^(1/p) / (p s)
        return ops.where(positive, g * slope, 0.0)
    return record(s.data ** s.dtype.type(1.0 / p), (s,), rule)


# -- arguments -------------------------------------------------------------------------------------
def _batched(x, nd, where):
    """x as (N, C, *spatial), and whether it came without the batch axis (as PyTorch accepts)."""
    expect_tensor(x, "input", where)
    if x.dtype not in (float32, float64):
        raise TypeError(f"{where}: input must be float32 or float64, got {x.dtype}")
    if x.ndim == nd + 1:
        return x.reshape((1,) + x.shape), True
    if x.ndim != nd + 2:
        raise ValueError(f"{where}: input must be {INPUT_LAYOUTS[nd]} or unbatched, got shape {x.shape}")
    return x, False


def _unbatch(t, unbatched):
    return t.reshape(t.shape[1:]) if unbatched else t


def _stride(stride, kernel, nd, where):
    """stride=None (or empty, as PyTorch allows) means the kernel size: windows that do not overlap."""
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel
    return per_axis(stride, nd, "stride", where, 1)


def _bool(value, name, where):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a bool, got {value!r}")
    return bool(value)


def pool_geometry(where, shape, nd, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Check a pooling's arguments against the input shape (N, C, *spatial) and size its output:
    out = floor_or_ceil((in + 2 pad - window) / stride) + 1, where window = dilation (k - 1) + 1;
    with ceil_mode a last window that would start in the right padding is dropped (PyTorch's rule)."""
    kernel = per_axis(kernel_size, nd, "kernel_size", where, 1)
    stride = _stride(stride, kernel, nd, where)
    pad = per_axis(padding, nd, "padding", where, 0)
    dilation = per_axis(dilation, nd, "dilation", where, 1)
    ceil_mode = _bool(ceil_mode, "ceil_mode", where)
    in_size = tuple(shape[2:])
    window = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(p > w // 2 for p, w in zip(pad, window)):
        raise ValueError(f"{where}: padding {pad} must be at most half the kernel window {window} on every axis")
    out_size = []
    for n, w, s, p in zip(in_size, window, stride, pad):
        if w > n + 2 * p:
            raise ValueError(f"{where}: kernel_size {kernel} (dilation {dilation}, window {window}) is larger "
                             f"than the input {in_size} with padding {pad}")
        out = (n + 2 * p - w + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (out - 1) * s >= n + p:
            out -= 1
        out_size.append(out)
    geom = Geometry(shape[1], in_size, tuple(out_size), kernel, stride, pad, pad, dilation, shape[1])
    check_size(shape, where, "input")
    check_size(geom.output_shape(shape[0]), where, "output")
    return geom


def _output_size(output_size, in_size, where):
    """Adaptive pooling's output size: an int or a tuple of ints >= 1 (None keeps the input's)."""
    nd = len(in_size)
    if output_size is None or isinstance(output_size, numbers.Integral):
        output_size = (output_size,) * nd
    if not isinstance(output_size, (tuple, list)) or len(output_size) != nd:
        raise TypeError(f"{where}: output_size must be an int or a tuple of {nd} ints, got {output_size!r}")
    size = tuple(n if o is None else o for o, n in zip(output_size, in_size))
    return per_axis(size, nd, "output_size", where, 1)


def adaptive_geometry(where, shape, output_size):
    """Output o of an axis of size n pools [floor(o n / out), ceil((o + 1) n / out))."""
    in_size = tuple(shape[2:])
    if min(in_size) < 1:
        raise ValueError(f"{where}: input of shape {tuple(shape)} has an empty spatial axis")
    out_size = _output_size(output_size, in_size, where)
    ones = (1,) * len(in_size)
    geom = Geometry(shape[1], in_size, out_size, ones, ones, (0,) * len(ones), (0,) * len(ones), ones, shape[1])
    check_size(geom.output_shape(shape[0]), where, "output")
    return geom


def _indices_result(y, indices, unbatched, return_indices):
    y = _unbatch(y, unbatched)
    if not return_indices:
        return y
    # an int64 Tensor, no gradient; a copy, so that editing it cannot change the recorded gradient
    return y, Tensor((indices[0] if unbatched else indices).copy())


# -- max pooling and unpooling ---------------------------------------------------------------------
def max_pool_nd(nd, where, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, unbatched = _batched(x, nd, where)
    geom = pool_geometry(where, x.shape, nd, kernel_size, stride, padding, dilation, ceil_mode)
    y, indices = max_pool(x, geom)
    return _indices_result(y, indices, unbatched, _bool(return_indices, "return_indices", where))


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return max_pool_nd(1, "max_pool1d", x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """The chapter's max pooling: each output is the largest input in its window (padding never wins).

    The gradient goes to the first maximal element of the window in scan order; NaN propagates.
    return_indices=True also returns the flat (H*W) index of each maximum, an int64 Tensor."""
    return max_pool_nd(2, "max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return max_pool_nd(3, "max_pool3d", x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _index_array(indices, shape, plane, where):
    data = indices.data if isinstance(indices, Tensor) else indices
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu":
        got = f"{type(indices).__name__} of {data.dtype}" if isinstance(data, np.ndarray) else type(indices).__name__
        raise TypeError(f"{where}: indices must be an integer Tensor or array (as max_pool returns them), got {got}")
    if data.shape != shape:
        raise ValueError(f"{where}: indices have shape {data.shape} but the input has shape {shape}")
    if data.size and (data.min() < 0 or data.max() >= plane):
        raise ValueError(f"{where}: indices must lie in [0, {plane}) for the output size, "
                         f"got [{data.min()}, {data.max()}]")
    return np.ascontiguousarray(data, dtype=np.int64)


def max_unpool_nd(nd, where, x, indices, kernel_size, stride, padding, output_size):
    """Puts each input value at its index in zeros of the unpooled size (the last write wins where
    indices repeat, as in PyTorch); default size (in - 1) * stride - 2 * padding + kernel_size."""
    x, unbatched = _batched(x, nd, where)
    kernel = per_axis(kernel_size, nd, "kernel_size", where, 1)
    stride = _stride(stride, kernel, nd, where)
    pad = per_axis(padding, nd, "padding", where, 0)
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, pad, kernel))
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, (tuple, list)) and len(output_size) == nd + 2:
            output_size = tuple(output_size)[2:]  # PyTorch also takes the full (N, C, *size)
        size = per_axis(output_size, nd, "output_size", where, 1)
        if any(not d - s < o < d + s for o, d, s in zip(size, default, stride)):
            raise ValueError(f"{where}: output_size {size} must be within one stride {stride} of the default "
                             f"size {default} on every axis")
    if min(size) < 1:
        raise ValueError(f"{where}: input {x.shape} with kernel_size {kernel}, stride {stride} and padding {pad} "
                         f"gives an empty output {size}")
    index = _index_array(indices, x.shape[1:] if unbatched else x.shape, math.prod(size), where)
    geom = Geometry(x.shape[1], size, tuple(x.shape[2:]), kernel, stride, pad, pad, (1,) * nd, x.shape[1])
    check_size(geom.input_shape(len(x)), where, "output")
    return _unbatch(scatter(x, index.reshape(x.shape), geom, accumulate=False), unbatched)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_nd(1, "max_unpool1d", x, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool2d: each value goes back to where its maximum came from."""
    return max_unpool_nd(2, "max_unpool2d", x, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_nd(3, "max_unpool3d", x, indices, kernel_size, stride, padding, output_size)


# -- average and Lp pooling ------------------------------------------------------------------------
def avg_pool_nd(nd, where, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x, unbatched = _batched(x, nd, where)
    geom = pool_geometry(where, x.shape, nd, kernel_size, stride, padding, 1, ceil_mode)
    include_pad = _bool(count_include_pad, "count_include_pad", where)
    if divisor_override is None:
        divisor = 0
    else:
        (divisor,) = per_axis(divisor_override, 1, "divisor_override", where, 1)
    return _unbatch(avg_pool(x, geom, include_pad, divisor), unbatched)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return avg_pool_nd(1, "avg_pool1d", x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """The mean of each window; zero padding is counted in the mean unless count_include_pad=False,
    and divisor_override replaces the window size as the divisor."""
    return avg_pool_nd(2, "avg_pool2d", x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return avg_pool_nd(3, "avg_pool3d", x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def lp_pool_nd(nd, where, x, norm_type, kernel_size, stride, padding, ceil_mode):
    """(sum over the window of |x|^p)^(1/p), zero padding; p = inf is the max of |x|.

    Differs from PyTorch's lp_pool (which has no padding) in two places, both where PyTorch's is
    not a norm: PyTorch raises x, not |x|, to the power p (giving NaN or negative sums for odd p and
    negative x), and rescales a ceil_mode window hanging over the edge to the full window size."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or not norm_type > 0:
        raise ValueError(f"{where}: norm_type must be a positive number (or inf), got {norm_type!r}")
    if math.isinf(norm_type):
        expect_tensor(x, "input", where)
        return max_pool_nd(nd, where, x.abs(), kernel_size, stride, padding, 1, ceil_mode, False)
    x, unbatched = _batched(x, nd, where)
    geom = pool_geometry(where, x.shape, nd, kernel_size, stride, padding, 1, ceil_mode)
    p = float(norm_type)
    return _unbatch(root(avg_pool(abs_pow(x, p), geom, True, 1), p), unbatched)


def lp_pool1d(x, norm_type, kernel_size, stride=None, padding=0, ceil_mode=False):
    return lp_pool_nd(1, "lp_pool1d", x, norm_type, kernel_size, stride, padding, ceil_mode)


def lp_pool2d(x, norm_type, kernel_size, stride=None, padding=0, ceil_mode=False):
    """The chapter's L2-norm pooling at norm_type=2: the Lp norm of each window (zero padding).
    Its gradient at an all-zero window is 0."""
    return lp_pool_nd(2, "lp_pool2d", x, norm_type, kernel_size, stride, padding, ceil_mode)


def lp_pool3d(x, norm_type, kernel_size, stride=None, padding=0, ceil_mode=False):
    return lp_pool_nd(3, "lp_pool3d", x, norm_type, kernel_size, stride, padding, ceil_mode)


# -- weighted average pooling and cross-channel pooling --------------------------------------------
def weighted_avg_pool2d(x, weights, stride=None, padding=0):
    """Each window's average under one (kH, kW) window of non-negative weights (normalised to sum 1)
    shared by every channel; stride defaults to the window, zero padding counts in the average.
    Differentiable in x and in the weights.

    It is a one-channel convolution of every (n, c) plane with the normalised window."""
    where = "weighted_avg_pool2d"
    x, unbatched = _batched(x, 2, where)
    if not isinstance(weights, Tensor):
        weights = Tensor(np.array(weights, dtype=x.dtype))
    if weights.ndim != 2 or min(weights.shape) < 1:
        raise ValueError(f"{where}: weights must be a (kH, kW) window, got shape {weights.shape}")
    if not np.all(np.isfinite(weights.data)) or np.any(weights.data < 0):
        raise ValueError(f"{where}: weights must be finite and non-negative, got min {weights.data.min()}")
    if not weights.data.sum() > 0:
        raise ValueError(f"{where}: weights must not all be zero")
    geom = pool_geometry(where, x.shape, 2, weights.shape, stride, padding)
    n, c, h, w = x.shape
    window = weights.astype(x.dtype) if weights.dtype != x.dtype else weights
    window = (window / window.sum()).reshape(1, 1, *weights.shape)
    planes = conv_geometry(where, (n * c, 1, h, w), window.shape, geom.stride, geom.pad)
    y = conv(x.reshape(n * c, 1, h, w), window, planes)
    return _unbatch(y.reshape(n, c, *geom.out_size), unbatched)


def maxout(x, pieces):
    """Cross-channel pooling: output channel c is the max over input channels c*pieces ... c*pieces +
    pieces - 1 (x is (N, C, *spatial), any number of spatial axes). It is max pooling with a
    (pieces, 1) window over each group's (pieces, positions) plane, so ties and NaN follow its rules."""
    where = "maxout"
    expect_tensor(x, "input", where)
    if x.ndim < 2:
        raise ValueError(f"maxout: input must be (N, C, *spatial), got shape {x.shape}")
    if x.dtype not in (float32, float64):
        raise TypeError(f"{where}: input must be float32 or float64, got {x.dtype}")
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral) or pieces < 1:
        raise ValueError(f"{where}: pieces must be an int >= 1, got {pieces!r}")
    n, c, *spatial = x.shape
    if c % pieces:
        raise ValueError(f"{where}: pieces={pieces} must divide the {c} channels")
    positions = math.prod(spatial)
    groups = n * (c // pieces)
    geom = Geometry(1, (pieces, positions), (1, positions), (pieces, 1), (pieces, 1), (0, 0), (0, 0), (1, 1), 1)
    y, _ = max_pool(x.reshape(groups, 1, pieces, positions), geom)
    return y.reshape(n, c // pieces, *spatial)


# -- adaptive pooling ------------------------------------------------------------------------------
def _averaging_matrix(n, out, dtype):
    """(out, n): row o averages PyTorch's adaptive window [floor(o n / out), ceil((o + 1) n / out))."""
    a = np.zeros((out, n), dtype)
    for o in range(out):
        lo, hi = o * n // out, -(-(o + 1) * n // out)
        a[o, lo:hi] = 1.0 / (hi - lo)
    return Tensor(a)


def adaptive_avg_pool_nd(nd, where, x, output_size):
    """Averages are separable: when every axis divides evenly this is avg pooling with
    kernel = stride = in / out; otherwise one averaging matrix per axis."""
    x, unbatched = _batched(x, nd, where)
    geom = adaptive_geometry(where, x.shape, output_size)
    if all(n % o == 0 for n, o in zip(geom.in_size, geom.out_size)):
        kernel = tuple(n // o for n, o in zip(geom.in_size, geom.out_size))
        even = pool_geometry(where, x.shape, nd, kernel, kernel)
        return _unbatch(avg_pool(x, even), unbatched)
    y = x
    for axis, (n, out) in enumerate(zip(geom.in_size, geom.out_size), start=2):
        if n != out:
            y = (y.transpose(axis, -1) @ _averaging_matrix(n, out, x.dtype).mT).transpose(axis, -1)
    return _unbatch(y, unbatched)


def adaptive_avg_pool1d(x, output_size):
    return adaptive_avg_pool_nd(1, "adaptive_avg_pool1d", x, output_size)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a given output size, with PyTorch's windows; output_size=1 is global pooling."""
    return adaptive_avg_pool_nd(2, "adaptive_avg_pool2d", x, output_size)


def adaptive_avg_pool3d(x, output_size):
    return adaptive_avg_pool_nd(3, "adaptive_avg_pool3d", x, output_size)


def adaptive_max_pool_nd(nd, where, x, output_size, return_indices):
    x, unbatched = _batched(x, nd, where)
    geom = adaptive_geometry(where, x.shape, output_size)
    y, indices = max_pool(x, geom, adaptive=True)
    return _indices_result(y, indices, unbatched, _bool(return_indices, "return_indices", where))


def adaptive_max_pool1d(x, output_size, return_indices=False):
    return adaptive_max_pool_nd(1, "adaptive_max_pool1d", x, output_size, return_indices)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max pooling to a given output size, with PyTorch's windows and max pooling's tie and NaN rules."""
    return adaptive_max_pool_nd(2, "adaptive_max_pool2d", x, output_size, return_indices)


def adaptive_max_pool3d(x, output_size, return_indices=False):
    return adaptive_max_pool_nd(3, "adaptive_max_pool3d", x, output_size, return_indices)
