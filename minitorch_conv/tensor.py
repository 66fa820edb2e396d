"""The Tensor: a numpy array of float32 or float64, plus what autograd needs to know about it.

Every method that computes something is a thin call into `ops`, where the op and its gradient rule
stand side by side.
"""
import numbers

import numpy as np

from . import autograd, ops
from .random import generator

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)


def as_dtype(dtype, where="dtype"):
    """The numpy dtype for a `dtype=` argument; only float32 and float64 are tensor dtypes."""
    if dtype is None:
        return float32
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where} must be float32 or float64, got {dtype!r}") from None
    if dt not in (float32, float64):
        raise TypeError(f"{where} must be float32 or float64, got {dt}")
    return dt


def _as_array(data, dtype, copy):
    """numpy array of a tensor dtype from a Tensor, array, list or scalar (ints and bools become float32)."""
    if isinstance(data, Tensor):
        data = data.data
    try:
        array = np.array(data, copy=copy) if copy else np.asarray(data)
    except (ValueError, TypeError) as err:
        raise TypeError(f"tensor: data must be numeric, got {type(data).__name__} ({err})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"tensor: data must be real numbers, got dtype {array.dtype}")
    if dtype is None:  # arrays keep float32/float64; Python numbers and everything else become float32
        keep = isinstance(data, (np.ndarray, np.generic)) and array.dtype in (float32, float64)
        dtype = array.dtype if keep else float32
    return array.astype(as_dtype(dtype), copy=False)


def tensor(data, requires_grad=False, dtype=None):
    """A new tensor holding a copy of `data` (numpy array, list, scalar or Tensor)."""
    return Tensor(_as_array(data, dtype, copy=True), requires_grad=requires_grad)


def from_numpy(array):
    """A tensor sharing memory with a float32/float64 numpy array (other dtypes are converted)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(array).__name__}")
    return Tensor(_as_array(array, None, copy=False))


def expect_tensor(x, name, where):
    """The argument check every public op starts with."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: {name} must be a Tensor, got {type(x).__name__}")


def _shape_arg(shape, where):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"{where}: sizes must be ints, got {shape!r}")
        if s < 0:
            raise ValueError(f"{where}: sizes must be non-negative, got {shape!r}")
    return tuple(int(s) for s in shape)


def zeros(*shape, requires_grad=False, dtype=None):
    return Tensor(np.zeros(_shape_arg(shape, "zeros"), as_dtype(dtype)), requires_grad)


def ones(*shape, requires_grad=False, dtype=None):
    return Tensor(np.ones(_shape_arg(shape, "ones"), as_dtype(dtype)), requires_grad)


def randn(*shape, requires_grad=False, dtype=None):
    data = generator().standard_normal(_shape_arg(shape, "randn"), dtype=as_dtype(dtype))
    return Tensor(data, requires_grad)


def rand(*shape, requires_grad=False, dtype=None):
    data = generator().random(_shape_arg(shape, "rand"), dtype=as_dtype(dtype))
    return Tensor(data, requires_grad)


class Tensor:
    __array_priority__ = 1000  # `ndarray + tensor` dispatches to Tensor.__radd__
    __hash__ = object.__hash__  # == is elementwise, as in numpy and PyTorch

    def __init__(self, data, requires_grad=False):
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be a bool, got {requires_grad!r}")
        self.data = data
        self.requires_grad = requires_grad
        self.grad = None
        self._parents = ()
        self._rules = ()

    # -- describing ---------------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def numpy(self):
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    # -- autograd -------------------------------------------------------------------------------
    def backward(self, grad=None, create_graph=False):
        autograd.backward(self, grad, create_graph)

    def zero_grad(self):
        self.grad = None

    def detach(self):
        """The same values, cut off from the graph (shares memory)."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        if self._parents:
            raise ValueError("requires_grad_: only leaf tensors can change requires_grad")
        self.requires_grad = bool(requires_grad)
        return self

    # -- arithmetic -----------------------------------------------------------------------------
    def _lift(self, other):
        """Python numbers take this tensor's dtype (as in PyTorch); arrays go through mc.tensor."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Real) and not isinstance(other, np.ndarray):
            return Tensor(np.asarray(other, dtype=self.dtype))
        return Tensor(_as_array(other, None, copy=False))

    def __add__(self, other): return ops.add(self, self._lift(other))
    def __radd__(self, other): return ops.add(self._lift(other), self)
    def __sub__(self, other): return ops.sub(self, self._lift(other))
    def __rsub__(self, other): return ops.sub(self._lift(other), self)
    def __mul__(self, other): return ops.mul(self, self._lift(other))
    def __rmul__(self, other): return ops.mul(self._lift(other), self)
    def __truediv__(self, other): return ops.div(self, self._lift(other))
    def __rtruediv__(self, other): return ops.div(self._lift(other), self)
    def __matmul__(self, other): return ops.matmul(self, self._lift(other))
    def __rmatmul__(self, other): return ops.matmul(self._lift(other), self)
    def __neg__(self): return ops.neg(self)

    def __pow__(self, other):
        if isinstance(other, numbers.Real) and not isinstance(other, Tensor):
            return ops.pow_scalar(self, float(other))
        return ops.pow(self, self._lift(other))

    def __rpow__(self, other): return ops.pow(self._lift(other), self)

    # Comparisons give 0/1 tensors of this dtype with no gradient.
    def __lt__(self, other): return ops.compare(np.less, self, self._lift(other))
    def __le__(self, other): return ops.compare(np.less_equal, self, self._lift(other))
    def __gt__(self, other): return ops.compare(np.greater, self, self._lift(other))
    def __ge__(self, other): return ops.compare(np.greater_equal, self, self._lift(other))
    def __eq__(self, other): return ops.compare(np.equal, self, self._lift(other))
    def __ne__(self, other): return ops.compare(np.not_equal, self, self._lift(other))

    def __getitem__(self, index): return ops.getitem(self, index)

    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def abs(self): return ops.abs(self)
    def relu(self): return ops.relu(self)
    def sigmoid(self): return ops.sigmoid(self)
    def tanh(self): return ops.tanh(self)

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return -ops.max(-self, axis, keepdims)

    # -- shapes ---------------------------------------------------------------------------------
    def reshape(self, *shape): return ops.reshape(self, shape)
    def view(self, *shape): return ops.reshape(self, shape)
    def permute(self, *dims): return ops.permute(self, dims)
    def transpose(self, dim0, dim1): return ops.transpose(self, dim0, dim1)
    def flatten(self, start_dim=0, end_dim=-1): return ops.flatten(self, start_dim, end_dim)
    def flip(self, dims): return ops.flip(self, dims)
    def broadcast_to(self, shape): return ops.broadcast_to(self, tuple(shape))
    def sum_to(self, shape): return ops.sum_to(self, tuple(shape))
    def astype(self, dtype): return ops.astype(self, as_dtype(dtype, "astype"))
    def float(self): return self.astype(float32)
    def double(self): return self.astype(float64)

    T = property(lambda self: ops.permute(self, tuple(range(self.ndim))[::-1]))
    mT = property(lambda self: ops.transpose(self, -1, -2))
