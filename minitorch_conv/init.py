"""PyTorch's default parameter initialisation, shared by Linear and the convolution layers.

Every function fills its target in place (a Tensor or a numpy array) from the library's one
random generator, so `mc.manual_seed` makes a model reproducible, and returns the target.
"""

import math

import numpy as np

from .random import generator
from .tensor import Tensor


def calculate_fan_in_and_fan_out(shape):
    """(fan_in, fan_out) the way torch.nn.init does it: dim 1 and dim 0, each times the kernel size.

    A convolution weight (C_out, C_in // groups, *kernel) has fan_in = C_in // groups * prod(kernel);
    a transposed-convolution weight (C_in, C_out // groups, *kernel) is read the same way, as in torch.
    """
    shape = tuple(int(size) for size in shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 dimensions, got shape {shape}")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity, param=None):
    """The gain that keeps activations' variance steady through `nonlinearity` (torch's values)."""
    if not isinstance(nonlinearity, str):
        raise TypeError(f"calculate_gain: nonlinearity must be a string, got {type(nonlinearity).__name__}")
    if nonlinearity in ("linear", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        negative_slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + negative_slope**2))
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def uniform_(target, low=0.0, high=1.0):
    """Fill `target` with draws from U(low, high)."""
    array = _writable_array(target, "uniform_")
    if not low <= high:
        raise ValueError(f"uniform_: low ({low}) must not exceed high ({high})")
    # Drawn in float64, then rounded to the target's dtype on assignment.
    array[...] = generator().uniform(low, high, size=array.shape)
    return target


def kaiming_uniform_(target, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al.'s uniform initialisation: U(-b, b) with b = gain * sqrt(3 / fan), as torch.nn.init."""
    array = _writable_array(target, "kaiming_uniform_")
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    if array.size == 0:
        return target  # nothing to fill, and the fan would be zero
    fan_in, fan_out = calculate_fan_in_and_fan_out(array.shape)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(target, -bound, bound)


def default_init_(weight, bias=None, fan_in=None):
    """What torch's Linear and ConvNd do in reset_parameters().

    The weight gets kaiming_uniform_ with a = sqrt(5), which works out to U(±1/sqrt(fan_in)); the
    bias gets the same bound. `fan_in` overrides the one read from the weight's shape, for layers
    whose weight carries extra axes that are not inputs to one output (locally connected layers).
    """
    if fan_in is None:
        kaiming_uniform_(weight, a=math.sqrt(5))
        fan_in = calculate_fan_in_and_fan_out(_writable_array(weight, "default_init_").shape)[0]
    else:
        gain = calculate_gain("leaky_relu", math.sqrt(5))
        weight_bound = gain * math.sqrt(3.0 / fan_in) if fan_in > 0 else 0.0
        uniform_(weight, -weight_bound, weight_bound)
    if bias is not None:
        bias_bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bias_bound, bias_bound)
    return weight


def _writable_array(target, caller):
    array = target.data if isinstance(target, Tensor) else target
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{caller}: expected a Tensor or a numpy array, got {type(target).__name__}")
    if array.dtype.kind != "f":
        raise TypeError(f"{caller}: expected a floating-point array, got dtype {array.dtype}")
    return array
