"""Geometry: one convolution-shaped problem (sizes, kernel, stride, padding, dilation, groups, tile),
built and checked once in Python and handed to C as one `mc_geometry` struct (csrc/mc.h).

Convolution, its two adjoints, unfold/fold, tiled convolution and pooling all describe their
window arithmetic with it; the C kernels trust it, so every check lives in the builders here.
"""
import dataclasses
import math
import numbers

INPUT_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}

# Sizes whose products could overflow int64 in C (or exhaust memory) are refused up front.
MAX_ELEMENTS = 2 ** 40


@dataclasses.dataclass(frozen=True)
class Geometry:
    channels: int            # input channels
    in_size: tuple           # spatial input size, 1 to 3 axes
    out_size: tuple          # spatial output size
    kernel: tuple
    stride: tuple
    pad: tuple               # zero padding before each axis
    pad_after: tuple         # zero padding after each axis (may exceed what the last window reads)
    dilation: tuple
    out_channels: int = 0    # convolutions only
    groups: int = 1
    tile: tuple = None       # tiled convolution only; None means 1 on every axis

    @property
    def ndim(self):
        return len(self.in_size)

    @property
    def window(self):
        """Spatial extent of one dilated kernel window."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def weight_shape(self):
        """(C_out, C_in / groups, *kernel), followed by the tile for a tiled convolution."""
        return (self.out_channels, self.channels // self.groups, *self.kernel, *(self.tile or ()))

    def input_shape(self, batch):
        return (batch, self.channels, *self.in_size)

    def output_shape(self, batch, channels=None):
        return (batch, self.out_channels if channels is None else channels, *self.out_size)


def per_axis(value, nd, name, where, minimum):
    """An int or a tuple of nd ints, each >= minimum, as a tuple of nd ints."""
    values = (value,) * nd if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list)) or len(values) != nd or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"{where}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{where}: {name} must be >= {minimum} on every axis, got {value!r}")
    return tuple(int(v) for v in values)


def check_size(shape, where, name):
    if math.prod(shape) > MAX_ELEMENTS:
        raise ValueError(f"{where}: {name} of shape {tuple(shape)} has more than 2**40 elements; "
                         "it would overflow the kernels' workspace")
