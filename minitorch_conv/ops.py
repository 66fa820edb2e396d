"""Elementwise, reduction and shape ops, each beside its gradient rule.

An op is one forward (numpy's, or for ReLU a C loop) and, for each input, one rule `(g, out) -> that
input's gradient` written with Tensor ops, so a gradient is itself a graph and can be differentiated
again. Undoing broadcasting and dtype promotion is the engine's job (autograd._backprop), so no rule
here repeats it.
"""
import builtins
import math

import numpy as np

from . import _kernels
from . import tensor as _tensor
from .autograd import record


def _const(array):
    return _tensor.Tensor(np.asarray(array))


# -- elementwise --------------------------------------------------------------------------------
def add(a, b): return record(a.data + b.data, (a, b), lambda g, out: g, lambda g, out: g)
def sub(a, b): return record(a.data - b.data, (a, b), lambda g, out: g, lambda g, out: -g)
def mul(a, b): return record(a.data * b.data, (a, b), lambda g, out: g * b, lambda g, out: g * a)
def div(a, b): return record(a.data / b.data, (a, b), lambda g, out: g / b, lambda g, out: -g * out / b)
def neg(a): return record(-a.data, (a,), lambda g, out: -g)
def pow_scalar(a, p): return record(a.data ** p, (a,), lambda g, out: g * p * a ** (p - 1))
def exp(a): return record(np.exp(a.data), (a,), lambda g, out: g * out)
def log(a): return record(np.log(a.data), (a,), lambda g, out: g / a)
def sqrt(a): return record(np.sqrt(a.data), (a,), lambda g, out: g / (2 * out))
def tanh(a): return record(np.tanh(a.data), (a,), lambda g, out: g * (1 - out * out))
def relu(a): return record(_kernels.relu(a.data), (a,), lambda g, out: relu_gate(a, g))
def abs(a): return record(np.abs(a.data), (a,), lambda g, out: g * _const(np.sign(a.data)))


def relu_gate(a, g):
    """g where a > 0 (or is NaN), else 0, in C (csrc/detector.c): ReLU's gradient at a, and, linear
    in g, its own gradient again, with a a constant."""
    return record(_kernels.relu_gate(a.data, g.data), (g,), lambda gg, out: relu_gate(a, gg))


def sigmoid(a):
    stable = np.exp(-np.logaddexp(0, -a.data)).astype(a.dtype)  # 1 / (1 + e^-x) without overflow
    return record(stable, (a,), lambda g, out: g * out * (1 - out))


def pow(a, b):
    def slope_in_b(g, out):
        log_a = log(where(a.data == 0, 1, a))  # 0 ** b has no slope in b; keep log(0) out of it
        return g * out * log_a
    return record(a.data ** b.data, (a, b), lambda g, out: g * b * a ** (b - 1), slope_in_b)


def where(condition, a, b):
    """`a` where the constant boolean `condition` holds, else `b` (numbers are allowed for a, b)."""
    condition = np.asarray(condition, dtype=bool)
    a, b = (x if isinstance(x, _tensor.Tensor) else _tensor.tensor(x) for x in (a, b))
    zero = _tensor.Tensor(np.zeros((), np.result_type(a.dtype, b.dtype)))
    return record(np.where(condition, a.data, b.data), (a, b),
                  lambda g, out: where(condition, g, zero), lambda g, out: where(condition, zero, g))


def compare(fn, a, b):
    """0/1 values of the promoted dtype; a comparison has no gradient."""
    return _tensor.Tensor(fn(a.data, b.data).astype(np.result_type(a.dtype, b.dtype)))


def matmul(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:  # a vector on the left is a 1-row matrix whose row axis is dropped again
        out = matmul(a.reshape(1, -1), b)
        return out.reshape(out.shape[:-2] + out.shape[-1:] if b.ndim > 1 else ())
    if b.ndim == 1:
        return matmul(a, b.reshape(-1, 1)).reshape(a.shape[:-1])
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({a.shape[-1]} != {b.shape[-2]})")
    _broadcast_shape(a.shape[:-2], b.shape[:-2], "matmul")
    return record(a.data @ b.data, (a, b), lambda g, out: g @ b.mT, lambda g, out: a.mT @ g)


# -- reductions -----------------------------------------------------------------------------------
def _axes(axis, ndim, where):
    """Reduction axes as a sorted tuple of non-negative ints (None means all)."""
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:  # the usual case, without the general checks' cost
        return (axis % ndim,)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"{where}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -builtins.max(ndim, 1) <= ax < builtins.max(ndim, 1):
            raise ValueError(f"{where}: axis {ax} is out of range for a tensor with {ndim} dimensions")
    axes = tuple(sorted(int(ax) % builtins.max(ndim, 1) for ax in axes))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{where}: repeated axis in {axis!r}")
    return axes if ndim else ()  # a 0-d tensor's one nominal axis (0 or -1) has nothing to reduce


def _axis(axis, ndim, where):
    """One axis as a non-negative int (0 for a 0-d tensor: numpy's reductions accept axis 0 on 0-d
    arrays)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{where}: axis must be an int, got {axis!r}")
    axes = _axes(int(axis), ndim, where)
    return axes[0] if axes else 0


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def sum(a, axis=None, keepdims=False):
    axes = _axes(axis, a.ndim, "sum")
    kept = _kept_shape(a.shape, axes)
    return record(a.data.sum(axes, keepdims=keepdims), (a,),
                  lambda g, out: g.reshape(kept).broadcast_to(a.shape))


def mean(a, axis=None, keepdims=False):
    axes = _axes(axis, a.ndim, "mean")
    return sum(a, axes, keepdims) / float(math.prod(a.shape[i] for i in axes))


def max(a, axis=None, keepdims=False):
    """Largest value; its gradient is shared equally by the tied maxima (NaN counts as the max)."""
    axes = _axes(axis, a.ndim, "max")
    if builtins.any(a.shape[i] == 0 for i in axes):
        raise ValueError(f"max: cannot reduce an empty axis of a tensor of shape {a.shape}")
    kept = a.data.max(axes, keepdims=True)

    def rule(g, out):
        hit = (a.data == kept) | np.isnan(a.data)
        share = _const((hit / hit.sum(axes, keepdims=True)).astype(a.dtype))
        return g.reshape(kept.shape).broadcast_to(a.shape) * share
    return record(kept if keepdims else kept.reshape(np.delete(a.shape, axes)), (a,), rule)


def _shifted(a, axis):
    """a's data minus its maximum along `axis`: exp cannot overflow, and softmax is unchanged. An
    integer tensor's is float64; a row of -inf, or one holding +inf, shifts to NaN, as torch's."""
    data = a.data if a.dtype.kind == "f" else a.data.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return data - data.max(axis, keepdims=True, initial=-np.inf)


def softmax(a, axis):
    """exp(a) / its sum along one axis, with PyTorch's rule, (g - <g, softmax>) * softmax."""
    axis = _axis(axis, a.ndim, "softmax")
    e = np.exp(_shifted(a, axis))
    return record(e / e.sum(axis, keepdims=True), (a,),
                  lambda g, out: (g - (g * out).sum(axis, keepdims=True)) * out)


def log_softmax(a, axis):
    """log(softmax(a)) along one axis: one op with PyTorch's rule (g minus softmax times g's sum) where
    composing it took six, for every classifier's loss."""
    axis = _axis(axis, a.ndim, "log_softmax")
    shifted = _shifted(a, axis)
    with np.errstate(divide="ignore"):  # log(0) of an empty axis's sum, broadcast over no element
        data = shifted - np.log(np.exp(shifted).sum(axis, keepdims=True))
    return record(data, (a,), lambda g, out: g - out.exp() * g.sum(axis, keepdims=True))


# -- shapes ---------------------------------------------------------------------------------------
def _broadcast_shape(a, b, where):
    if a == b:  # the usual case, and numpy's general rule costs microseconds a call
        return a
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"{where}: shapes {a} and {b} cannot be broadcast together") from None


def broadcast_to(a, shape):
    if _broadcast_shape(a.shape, shape, "broadcast_to") != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}")
    return record(np.broadcast_to(a.data, shape).copy(), (a,), lambda g, out: g.sum_to(a.shape))


def sum_to(a, shape):
    """Sum over the axes that broadcasting `shape` to `a.shape` would have added: its adjoint."""
    if _broadcast_shape(shape, a.shape, "sum_to") != a.shape:
        raise ValueError(f"sum_to: shape {shape} does not broadcast to {a.shape}")
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 != a.shape[lead + i])
    return record(_sum_leading_first(a.data, axes).reshape(shape), (a,), lambda g, out: g.broadcast_to(a.shape))


def _sum_leading_first(data, axes):
    """data.sum(axes), the leading axes one at a time first: numpy adds whole rows then, where one
    reduction over (0, 2) of a bias gradient (N, C, L) walks it element by element (4.5x slower for
    MNIST-1D's layers, 1.1-1.7x for 2-D ones, measured)."""
    if len(axes) < 2 or axes[0] != 0:
        return data.sum(axes)
    leading = 0
    while leading < len(axes) and axes[leading] == leading:
        data = data.sum(0)
        leading += 1
    return data.sum(tuple(ax - leading for ax in axes[leading:]))


def _shape_tuple(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def reshape(a, shape):
    shape = _shape_tuple(shape)
    if builtins.sum(1 for s in shape if s == -1) > 1:
        raise ValueError(f"reshape: only one -1 is allowed, got {shape}")
    try:
        data = a.data.reshape(shape)
    except (ValueError, TypeError):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} into {shape}") from None
    return record(data, (a,), lambda g, out: g.reshape(a.shape))


def permute(a, dims):
    dims = _shape_tuple(dims)
    if sorted(d % builtins.max(a.ndim, 1) for d in dims) != list(range(a.ndim)) or len(dims) != a.ndim:
        raise ValueError(f"permute: {dims} is not a permutation of the {a.ndim} dimensions of shape {a.shape}")
    dims = tuple(d % a.ndim for d in dims)
    inverse = tuple(sorted(range(a.ndim), key=dims.__getitem__))
    return record(a.data.transpose(dims), (a,), lambda g, out: g.permute(inverse))


def transpose(a, dim0, dim1):
    i, j = _axis(dim0, a.ndim, "transpose"), _axis(dim1, a.ndim, "transpose")
    return record(a.data if i == j else a.data.swapaxes(i, j), (a,), lambda g, out: g.transpose(i, j))


def flatten(a, start_dim=0, end_dim=-1):
    if a.ndim == 0:
        return reshape(a, (1,))
    (start,), (end,) = _axes(start_dim, a.ndim, "flatten"), _axes(end_dim, a.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(a, a.shape[:start] + (-1,) + a.shape[end + 1:])


def flip(a, dims):
    axes = _axes(dims, a.ndim, "flip")
    return record(np.flip(a.data, axes), (a,), lambda g, out: g.flip(axes))


def astype(a, dtype):
    return record(a.data.astype(dtype), (a,), lambda g, out: g.astype(a.dtype))


# -- indexing: a gather and its adjoint scatter, each the other's gradient ---------------------------
def _index(index):
    """The numpy index for a Tensor index; `advanced` says if any part is an array (may repeat)."""
    parts = index if isinstance(index, tuple) else (index,)
    parts = tuple(p.data.astype(np.int64) if isinstance(p, _tensor.Tensor) else p for p in parts)
    advanced = builtins.any(isinstance(p, (np.ndarray, list)) for p in parts)
    return parts, advanced


def getitem(a, index):
    index, advanced = _index(index)
    try:
        data = a.data[index]
    except IndexError as err:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {a.shape}: {err}") from None
    return record(data, (a,), lambda g, out: scatter_add(g, index, a.shape, advanced))


def scatter_add(g, index, shape, advanced):
    """zeros(shape) with `g` added at `index`: the adjoint of `a[index]`."""
    data = np.zeros(shape, g.dtype)
    if advanced:
        np.add.at(data, index, g.data)  # repeated indices must add up, not overwrite
    else:
        data[index] = g.data
    return record(data, (g,), lambda gg, out: getitem(gg, index))
