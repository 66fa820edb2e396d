"""`minitorch_conv.functional` (F): the stateless layers, activations and losses."""
import numpy as np

from . import conv as _conv
from . import ops
from .conv import conv_cost, fold, unfold  # noqa: F401  (public here)
from .random import generator
from .tensor import Tensor, expect_tensor, tensor


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch."""
    expect_tensor(x, "input", "linear")
    expect_tensor(weight, "weight", "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                         f"(expected last dimension {weight.shape[1]})")
    y = x @ weight.mT
    if bias is None:
        return y
    expect_tensor(bias, "bias", "linear")
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape {(weight.shape[0],)}, got {bias.shape}")
    return y + bias


def relu(x):
    return x.relu()


def softmax(x, dim):
    expect_tensor(x, "input", "softmax")
    return ops.softmax(x, dim)


def log_softmax(x, dim):
    expect_tensor(x, "input", "log_softmax")
    return ops.log_softmax(x, dim)


def _reduce(loss, reduction, where):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits, target, reduction="mean"):
    """Negative log-likelihood of integer class `target` (N,) under softmax(logits (N, C))."""
    expect_tensor(logits, "logits", "cross_entropy")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    fractional = labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels))
    if labels.dtype.kind not in "iuf" or fractional:
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: target must have shape {logits.shape[:1]}, got {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: target values must lie in [0, {logits.shape[1]}), "
                         f"got [{labels.min()}, {labels.max()}]")
    picked = log_softmax(logits, 1)[np.arange(len(labels)), labels]
    return _reduce(-picked, reduction, "cross_entropy")


def mse_loss(input, target, reduction="mean"):
    expect_tensor(input, "input", "mse_loss")
    target = target if isinstance(target, Tensor) else tensor(target, dtype=input.dtype)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input has shape {input.shape} but target has shape {target.shape}")
    return _reduce((input - target) ** 2, reduction, "mse_loss")


def dropout(x, p=0.5, training=True):
    """Zero each entry with probability p and scale the rest by 1 / (1 - p) (inverted dropout)."""
    expect_tensor(x, "input", "dropout")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = generator().random(x.shape) >= p
    return x * Tensor((keep / (1.0 - p)).astype(x.dtype))


# -- convolution: c, g, h (conv.py) --------------------------------------------------------------
def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    return _conv.convolution(1, "conv1d", x, weight, bias, stride, padding, dilation, groups, algorithm)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    """The chapter's c(K, V, s): cross-correlation of x (N, C_in, H, W) with weight (C_out, C_in/groups, kH, kW).

    padding: an int, a tuple, "valid", "same" (out = ceil(in / stride), at any stride) or "full"
    (out = in + k - 1). algorithm: "im2col", "direct" or "auto" (all give the same numbers).
    True convolution is conv2d(x, w.flip((2, 3))).
    """
    return _conv.convolution(2, "conv2d", x, weight, bias, stride, padding, dilation, groups, algorithm)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    return _conv.convolution(3, "conv3d", x, weight, bias, stride, padding, dilation, groups, algorithm)


def conv1d_weight_grad(x, grad_out, weight_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    return _conv.weight_grad(1, "conv1d_weight_grad", x, grad_out, weight_shape, stride, padding, dilation,
                             groups, algorithm)


def conv2d_weight_grad(x, grad_out, weight_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    """The chapter's g(G, V, s): the gradient of conv2d's weight for the output gradient grad_out."""
    return _conv.weight_grad(2, "conv2d_weight_grad", x, grad_out, weight_shape, stride, padding, dilation,
                             groups, algorithm)


def conv3d_weight_grad(x, grad_out, weight_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    return _conv.weight_grad(3, "conv3d_weight_grad", x, grad_out, weight_shape, stride, padding, dilation,
                             groups, algorithm)


def conv1d_input_grad(weight, grad_out, input_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    return _conv.input_grad(1, "conv1d_input_grad", weight, grad_out, input_shape, stride, padding, dilation,
                            groups, algorithm)


def conv2d_input_grad(weight, grad_out, input_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    """The chapter's h(K, G, s), "deconvolution": the gradient of conv2d's input."""
    return _conv.input_grad(2, "conv2d_input_grad", weight, grad_out, input_shape, stride, padding, dilation,
                            groups, algorithm)


def conv3d_input_grad(weight, grad_out, input_shape, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    return _conv.input_grad(3, "conv3d_input_grad", weight, grad_out, input_shape, stride, padding, dilation,
                            groups, algorithm)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv.transposed_convolution(1, "conv_transpose1d", x, weight, bias, stride, padding,
                                        output_padding, groups, dilation)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """h as a layer: the exact adjoint of conv2d with the same arguments; weight (C_in, C_out/groups, kH, kW)."""
    return _conv.transposed_convolution(2, "conv_transpose2d", x, weight, bias, stride, padding,
                                        output_padding, groups, dilation)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv.transposed_convolution(3, "conv_transpose3d", x, weight, bias, stride, padding,
                                        output_padding, groups, dilation)


# -- tiled and locally connected convolution (tiled.py) -------------------------------------------
from .tiled import (local_conv1d, local_conv2d, local_conv3d,  # noqa: E402, F401  (public here)
                    tiled_conv1d, tiled_conv2d, tiled_conv3d)


# -- pooling, the chapter's third stage (pool.py) -------------------------------------------------
from .pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,  # noqa: E402, F401
                   adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d,
                   avg_pool1d, avg_pool2d, avg_pool3d, lp_pool1d, lp_pool2d, lp_pool3d,
                   max_pool1d, max_pool2d, max_pool3d, max_unpool1d, max_unpool2d, max_unpool3d,
                   maxout, weighted_avg_pool2d)
