"""`minitorch_conv.functional` (F): the stateless layers, activations and losses."""
import numpy as np

from .random import generator
from .tensor import Tensor, tensor


def _expect_tensor(x, name, where):
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: {name} must be a Tensor, got {type(x).__name__}")


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight (out_features, in_features) as in PyTorch."""
    _expect_tensor(x, "input", "linear")
    _expect_tensor(weight, "weight", "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                         f"(expected last dimension {weight.shape[1]})")
    y = x @ weight.mT
    if bias is None:
        return y
    _expect_tensor(bias, "bias", "linear")
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape {(weight.shape[0],)}, got {bias.shape}")
    return y + bias


def relu(x):
    return x.relu()


def softmax(x, dim):
    shifted = (x - x.max(dim, keepdims=True).detach()).exp()  # the shift changes nothing but overflow
    return shifted / shifted.sum(dim, keepdims=True)


def log_softmax(x, dim):
    shifted = x - x.max(dim, keepdims=True).detach()
    return shifted - shifted.exp().sum(dim, keepdims=True).log()


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
    _expect_tensor(logits, "logits", "cross_entropy")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    if labels.dtype.kind not in "iuf" or not np.array_equal(labels, np.round(labels)):
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
    _expect_tensor(input, "input", "mse_loss")
    target = target if isinstance(target, Tensor) else tensor(target, dtype=input.dtype)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input has shape {input.shape} but target has shape {target.shape}")
    return _reduce((input - target) ** 2, reduction, "mse_loss")


def dropout(x, p=0.5, training=True):
    """Zero each entry with probability p and scale the rest by 1 / (1 - p) (inverted dropout)."""
    _expect_tensor(x, "input", "dropout")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = generator().random(x.shape) >= p
    return x * Tensor((keep / (1.0 - p)).astype(x.dtype))
