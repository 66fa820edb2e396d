"""Finite-difference checks of gradients, first and second order (as torch.autograd.gradcheck).

Use float64 inputs: central differences in float32 are too coarse to say anything.
"""
import numpy as np

from .autograd import grad
from .tensor import Tensor


def _numeric_grad(scalar_fn, x, eps):
    """d scalar_fn / d x by central differences over every entry of x (x.data is perturbed in place)."""
    flat = x.data.reshape(-1)  # a view: the tensor sees each perturbation
    result = np.zeros(flat.shape, np.float64)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = scalar_fn()
        flat[i] = saved - eps
        minus = scalar_fn()
        flat[i] = saved
        result[i] = (plus - minus) / (2 * eps)
    return result.reshape(x.shape)


def _check(fn, inputs, eps, atol, rtol, what):
    inputs = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    for x in inputs:
        if x.dtype != np.float64 or not x.data.flags.c_contiguous:
            raise ValueError(f"gradcheck: inputs must be contiguous float64 tensors, got {x.dtype}")
    out = fn()
    weights = Tensor(np.random.default_rng(0).standard_normal(out.shape))  # checks every output entry
    analytic = grad((out * weights).sum(), inputs, allow_unused=True)
    for k, (x, a) in enumerate(zip(inputs, analytic)):
        a = np.zeros(x.shape) if a is None else a.data
        numeric = _numeric_grad(lambda: float((fn().data * weights.data).sum()), x, eps)
        if not np.allclose(a, numeric, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(a - numeric)), x.shape)
            raise AssertionError(f"{what}: gradient of input {k} (shape {x.shape}) is wrong; at {worst} "
                                 f"analytic {a[worst]:.8g} vs numeric {numeric[worst]:.8g}")
    return True


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5):
    """Compare the backward pass of `fn(*inputs)` with central differences, for every input entry."""
    return _check(lambda: fn(*inputs), inputs, eps, atol, rtol, "gradcheck")


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4):
    """Check the gradient of the gradient: differentiate <d fn / d inputs, v> by central differences."""
    wanted = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    out_weights = Tensor(np.random.default_rng(1).standard_normal(fn(*inputs).shape))
    grad_weights = [Tensor(np.random.default_rng(2 + k).standard_normal(x.shape)) for k, x in enumerate(wanted)]

    def first_order_then_contract():
        grads = grad((fn(*inputs) * out_weights).sum(), wanted, create_graph=True, allow_unused=True)
        terms = [(g * w).sum() for g, w in zip(grads, grad_weights) if g is not None and g.requires_grad]
        return sum(terms[1:], terms[0]) if terms else (wanted[0] * 0.0).sum()
    return _check(first_order_then_contract, inputs, eps, atol, rtol, "gradgradcheck")
