"""Modules: Parameter, Module, Sequential and the basic layers.

Module mirrors torch.nn.Module closely enough that state dicts move between the two frameworks
with no renaming: Parameters and sub-Modules assigned as attributes are registered in definition
order, and their dotted names ("features.0.weight") are PyTorch's.
"""

from collections import OrderedDict, namedtuple
from collections.abc import Mapping
from numbers import Real

import numpy as np

from . import functional as F
from . import init
from .geometry import per_axis
from .tensor import Tensor, as_dtype


class Parameter(Tensor):
    """A Tensor that a Module registers as one of its weights; it always requires grad by default."""

    def __init__(self, data, requires_grad=True):
        array = data.data if isinstance(data, Tensor) else data
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Parameter: data must be a Tensor or a numpy array, got {type(data).__name__}")
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"Parameter: data must be float32 or float64, got dtype {array.dtype}")
        if not array.flags.writeable:
            array = array.copy()  # optimisers update parameters in place
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model; subclasses define forward()."""

    def __init__(self):
        # object.__setattr__ because our own __setattr__ needs these registries to exist.
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration -------------------------------------------------------------------------

    def __setattr__(self, name, value):
        parameters = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        if isinstance(value, (Parameter, Module)) and parameters is None:
            raise AttributeError(
                f"cannot assign {type(value).__name__} '{name}' before Module.__init__() is called; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._forget(name)
            parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif parameters is not None and name in parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter '{name}' (Parameter or None expected)"
                )
            parameters[name] = None
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module '{name}' (Module or None expected)"
                )
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only reached when ordinary lookup fails, i.e. for registered parameters and modules.
        for registry in ("_parameters", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def _forget(self, name):
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)

    def register_parameter(self, name, param):
        """Register `param` (a Parameter, or None for an absent one such as bias=False) as `name`."""
        self._check_new_name(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def add_module(self, name, module):
        """Register `module` (or None) as the child `name`; Sequential uses the names "0", "1", ..."""
        self._check_new_name(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    def _check_new_name(self, name):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() first in {type(self).__name__}.__init__")
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        if name == "" or "." in name:
            raise ValueError(f"name must be non-empty and contain no '.', got {name!r}")

    # --- traversal ----------------------------------------------------------------------------

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix="", remove_duplicate=True):
        """This module and every descendant with dotted names ("" for self), in definition order.

        A module reachable by two paths is listed once unless remove_duplicate=False.
        """
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module.named_children()]
            stack.extend(reversed(children))  # reversed so the pops come out in definition order

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) pairs in definition order; a shared Parameter is listed once."""
        seen = set()
        for name, param in self._parameter_slots(prefix, recurse):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def _parameter_slots(self, prefix="", recurse=True):
        # Every (name, Parameter), shared ones under each name: state_dict lists them all, like torch.
        modules = self.named_modules(prefix, remove_duplicate=False) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is not None:
                    yield (f"{module_name}.{name}" if module_name else name), param

    # --- state --------------------------------------------------------------------------------

    def state_dict(self):
        """An ordered dict of dotted name -> a numpy copy of that parameter (PyTorch's keys)."""
        return OrderedDict((name, param.data.copy()) for name, param in self._parameter_slots())

    def load_state_dict(self, state_dict, strict=True):
        """Copy the values of `state_dict` into this module's parameters, in place.

        Values may be numpy arrays or Tensors; each is cast to its parameter's dtype. Nothing is
        changed unless every check passes. With strict=False, missing and unexpected keys are
        allowed and returned as (missing_keys, unexpected_keys); shapes must always match.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of name -> array, got {type(state_dict).__name__}")
        slots = OrderedDict(self._parameter_slots())
        missing = [name for name in slots if name not in state_dict]
        unexpected = [name for name in state_dict if name not in slots]
        problems = []
        if strict and missing:
            problems.append("missing key(s) in state_dict: " + ", ".join(repr(name) for name in missing))
        if strict and unexpected:
            problems.append("unexpected key(s) in state_dict: " + ", ".join(repr(name) for name in unexpected))
        values = {}
        for name, param in slots.items():
            if name not in state_dict:
                continue
            value = _numeric_array(name, state_dict[name])
            if value.shape != param.data.shape:
                problems.append(
                    f"size mismatch for '{name}': the state_dict has shape {value.shape}, "
                    f"the parameter in {type(self).__name__} has shape {param.data.shape}"
                )
            values[name] = value
        if problems:
            raise ValueError(f"error(s) in loading state_dict for {type(self).__name__}:\n  " + "\n  ".join(problems))
        for name, value in values.items():
            slots[name].data[...] = value  # in place, so optimisers holding the parameter see it
        return IncompatibleKeys(missing, unexpected)

    # --- modes and running ----------------------------------------------------------------------

    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise TypeError(f"train: mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for param in self.parameters():
            param.zero_grad()

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        """The arguments shown inside this module's repr, e.g. "in_features=3, out_features=4"."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        children = [f"({name}): " + repr(module).replace("\n", "\n  ") for name, module in self.named_children()]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = (extra.split("\n") if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _numeric_array(name, value):
    array = value.data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"load_state_dict: '{name}' must hold numbers, got dtype {array.dtype}")
    return array


class Sequential(Module):
    """Runs its children in order; they are named "0", "1", ... (or by an OrderedDict's keys)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            named = modules[0].items()
        else:
            named = ((str(index), module) for index, module in enumerate(modules))
        for name, module in named:
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: entry {name} must be a Module, got {type(module).__name__}")
            self.add_module(name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))  # keeps the names, as torch does
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential indices must be integers or slices, got {type(index).__name__}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"Sequential index {index} is out of range for length {len(items)}")
        return items[index][1]

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class Linear(Module):
    """y = x @ weight.T + bias, with weight (out_features, in_features) and PyTorch's default init."""

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Linear: bias must be a bool, got {type(bias).__name__}")
        dtype = _float_dtype("Linear", dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((self.out_features,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_init_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Flatten(Module):
    """Flattens dimensions start_dim.. into one; the default keeps the batch dimension."""

    def __init__(self, start_dim=1):
        super().__init__()
        if isinstance(start_dim, bool) or not isinstance(start_dim, (int, np.integer)):
            raise TypeError(f"Flatten: start_dim must be an int, got {type(start_dim).__name__}")
        self.start_dim = int(start_dim)

    def forward(self, x):
        return x.flatten(self.start_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}"


class Dropout(Module):
    """Zeroes each element with probability p while training (scaling the rest by 1/(1-p)); identity in eval()."""

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, Real):
            raise TypeError(f"Dropout: p must be a number, got {type(p).__name__}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be between 0 and 1, got {p}")
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


# --- argument checks shared with the layers defined in other modules ---------------------------


def _positive_int(layer, argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {argument} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{layer}: {argument} must be positive, got {value}")
    return int(value)


def _float_dtype(layer, dtype):
    """The numpy dtype for a layer's parameters: float32 by default, float64 on request."""
    return as_dtype(dtype, f"{layer}: dtype")


# --- convolution layers (functional.conv*d / conv_transpose*d) ----------------------------------


class _ConvNd(Module):
    """Shared by Conv1d/2d/3d and ConvTranspose1d/2d/3d: arguments, parameters, PyTorch's init."""

    nd = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, output_padding=0, algorithm="auto", dtype=None):
        super().__init__()
        name = type(self).__name__
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.groups = _positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.kernel_size = per_axis(kernel_size, self.nd, "kernel_size", name, 1)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding, self.algorithm = output_padding, algorithm
        shape = ((in_channels, out_channels // groups) if self.transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        dtype = _float_dtype(name, dtype)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_init_(self.weight, self.bias)

    def forward(self, x):
        if self.transposed:
            return _TRANSPOSED[self.nd](x, self.weight, self.bias, self.stride, self.padding,
                                        self.output_padding, self.groups, self.dilation)
        return _CONVOLUTIONS[self.nd](x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                     self.groups, self.algorithm)

    def extra_repr(self):
        extras = "".join(f", {k}={getattr(self, k)}" for k, default in
                         (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)) if getattr(self, k) != default)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{extras}, "
                f"bias={self.bias is not None}")


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class Conv3d(_ConvNd):
    nd = 3


class _ConvTransposeNd(_ConvNd):
    """The chapter's h as a layer; arguments in PyTorch's order, weight (C_in, C_out/groups, *kernel)."""

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, output_padding=output_padding, dtype=dtype)


class ConvTranspose1d(_ConvTransposeNd):
    nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    nd = 3


_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


# --- tiled and locally connected layers (tiled.py) ---------------------------------------------
from .tiled import tiled_geometry  # noqa: E402


class _TiledBase(Module):
    """The body of the tiled and locally connected layers. Tiled: weight (C_out, C_in, *kernel, *tile),
    bias (C_out,); output position p uses the kernel slice weight[..., p % tile], and tile_size = 1 is
    an ordinary convolution.

    `shared` is the tile for a tiled layer; a locally connected layer (no sharing) sets it to its
    output size, which it computes from `input_size`, so the layer accepts only inputs of that size."""

    nd = 2
    local = False

    def __init__(self, in_channels, out_channels, kernel_size, shared, stride=1, padding=0, bias=True,
                 dtype=None):
        super().__init__()
        name = type(self).__name__
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.kernel_size = per_axis(kernel_size, self.nd, "kernel_size", name, 1)
        self.stride = per_axis(stride, self.nd, "stride", name, 1)
        self.padding = padding
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{name}: bias must be a bool, got {type(bias).__name__}")
        if self.local:
            self.input_size = per_axis(shared, self.nd, "input_size", name, 1)
            weight_shape = (self.out_channels, self.in_channels, *self.kernel_size, *(1,) * self.nd)
            geom = tiled_geometry(name, self.nd, (1, self.in_channels, *self.input_size), weight_shape,
                                  self.stride, padding)
            self.output_size = geom.out_size
            tile, bias_shape = self.output_size, (self.out_channels, *self.output_size)
        else:
            self.tile_size = per_axis(shared, self.nd, "tile_size", name, 1)
            tile, bias_shape = self.tile_size, (self.out_channels,)
        dtype = _float_dtype(name, dtype)
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels, *self.kernel_size, *tile), dtype))
        if bias:
            self.bias = Parameter(np.empty(bias_shape, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # One output reads C_in * prod(kernel) inputs; the tile axes are other outputs' weights.
        init.default_init_(self.weight, self.bias, fan_in=self.in_channels * int(np.prod(self.kernel_size)))

    def forward(self, x):
        if self.local:
            if isinstance(x, Tensor) and tuple(x.shape[2:]) != self.input_size:
                raise ValueError(f"{type(self).__name__}: built for inputs of spatial size {self.input_size}, "
                                 f"got input of shape {x.shape}")
            return _LOCAL[self.nd](x, self.weight, self.bias, self.stride, self.padding)
        return _TILED[self.nd](x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        shared = (f"input_size={self.input_size}, output_size={self.output_size}" if self.local
                  else f"tile_size={self.tile_size}")
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, {shared}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class _LocallyConnectedNd(_TiledBase):
    """Locally connected layer (no sharing): weight (C_out, C_in, *kernel, *output_size),
    bias (C_out, *output_size), for inputs of spatial size input_size only."""

    local = True

    def __init__(self, in_channels, out_channels, kernel_size, input_size, stride=1, padding=0, bias=True,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, input_size, stride, padding, bias, dtype)


class _TiledConvNd(_TiledBase):
    def __init__(self, in_channels, out_channels, kernel_size, tile_size, stride=1, padding=0, bias=True,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, tile_size, stride, padding, bias, dtype)


class TiledConv1d(_TiledConvNd):
    nd = 1


class TiledConv2d(_TiledConvNd):
    nd = 2


class TiledConv3d(_TiledConvNd):
    nd = 3


class LocallyConnected1d(_LocallyConnectedNd):
    nd = 1


class LocallyConnected2d(_LocallyConnectedNd):
    nd = 2


class LocallyConnected3d(_LocallyConnectedNd):
    nd = 3


_TILED = {1: F.tiled_conv1d, 2: F.tiled_conv2d, 3: F.tiled_conv3d}
_LOCAL = {1: F.local_conv1d, 2: F.local_conv2d, 3: F.local_conv3d}


# --- pooling layers (functional max_pool*d, avg_pool*d, lp_pool*d, ...; pool.py) -----------------


def _check_window(layer, nd, kernel_size, stride, padding, dilation=1):
    """Type and range checks of a pooling layer's arguments at construction (the sizes are checked
    against each input's shape when it runs)."""
    per_axis(kernel_size, nd, "kernel_size", layer, 1)
    if stride is not None:
        per_axis(stride, nd, "stride", layer, 1)
    per_axis(padding, nd, "padding", layer, 0)
    per_axis(dilation, nd, "dilation", layer, 1)


class _MaxPoolNd(Module):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        _check_window(type(self).__name__, self.nd, kernel_size, stride, padding, dilation)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return _MAX_POOL[self.nd](x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                  self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    nd = 1


class MaxPool2d(_MaxPoolNd):
    """The chapter's max pooling; with return_indices=True it returns (output, indices) for MaxUnpool2d."""
    nd = 2


class MaxPool3d(_MaxPoolNd):
    nd = 3


class _AvgPoolNd(Module):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        _check_window(type(self).__name__, self.nd, kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return _AVG_POOL[self.nd](x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                  self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    nd = 1


class AvgPool2d(_AvgPoolNd):
    nd = 2


class AvgPool3d(_AvgPoolNd):
    nd = 3


class _LPPoolNd(Module):
    """Lp-norm pooling; norm_type=2 is the chapter's L2-norm pooling. Unlike PyTorch's, takes padding
    (the functional argument order: norm_type, kernel_size, stride, padding, ceil_mode)."""
    nd = 2

    def __init__(self, norm_type, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        _check_window(type(self).__name__, self.nd, kernel_size, stride, padding)
        self.norm_type, self.kernel_size, self.stride = norm_type, kernel_size, stride
        self.padding, self.ceil_mode = padding, ceil_mode

    def forward(self, x):
        return _LP_POOL[self.nd](x, self.norm_type, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    nd = 1


class LPPool2d(_LPPoolNd):
    nd = 2


class LPPool3d(_LPPoolNd):
    nd = 3


class _MaxUnpoolNd(Module):
    """The partial inverse of max pooling: forward(x, indices, output_size=None)."""
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        _check_window(type(self).__name__, self.nd, kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x, indices, output_size=None):
        return _MAX_UNPOOL[self.nd](x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    nd = 3


class _AdaptiveAvgPoolNd(Module):
    nd = 2

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return _ADAPTIVE_AVG[self.nd](x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed output size; AdaptiveAvgPool2d(1) is global average pooling."""
    nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    nd = 3


class _AdaptiveMaxPoolNd(Module):
    nd = 2

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return _ADAPTIVE_MAX[self.nd](x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    nd = 3


class Maxout(Module):
    """Cross-channel pooling: output channel c is the max over input channels c*pieces ... c*pieces + pieces - 1."""

    def __init__(self, pieces):
        super().__init__()
        self.pieces = _positive_int("Maxout", "pieces", pieces)

    def forward(self, x):
        return F.maxout(x, self.pieces)

    def extra_repr(self):
        return f"pieces={self.pieces}"


class WeightedAvgPool2d(Module):
    """Weighted average pooling: one (kH, kW) window of non-negative weights, normalised to sum 1 and
    shared by every channel. `weights` sets the window (default uniform: average pooling, zero
    padding counted). With learnable=True the window is learned through the Parameter `log_weight`,
    whose exp is the window, so it stays positive whatever an optimiser does to it."""

    def __init__(self, kernel_size, stride=None, padding=0, weights=None, learnable=False, dtype=None):
        super().__init__()
        name = "WeightedAvgPool2d"
        self.kernel_size = per_axis(kernel_size, 2, "kernel_size", name, 1)
        _check_window(name, 2, kernel_size, stride, padding)
        self.stride, self.padding = stride, padding
        dtype = _float_dtype(name, dtype)
        window = np.ones(self.kernel_size, dtype) if weights is None else np.array(
            weights.data if isinstance(weights, Tensor) else weights, dtype=dtype)
        if window.shape != self.kernel_size:
            raise ValueError(f"{name}: weights must have shape kernel_size {self.kernel_size}, got {window.shape}")
        if not np.all(np.isfinite(window)) or np.any(window < 0) or not window.sum() > 0:
            raise ValueError(f"{name}: weights must be finite, non-negative and not all zero")
        self.learnable = bool(learnable)
        if self.learnable:
            with np.errstate(divide="ignore"):  # a zero weight is exp(-inf): it stays zero
                self.log_weight = Parameter(np.log(window))
        else:
            self.fixed_weight = Tensor(window)

    @property
    def weight(self):
        """The window (before normalisation), as a Tensor; differentiable when learnable."""
        return self.log_weight.exp() if self.learnable else self.fixed_weight

    def forward(self, x):
        return F.weighted_avg_pool2d(x, self.weight, self.stride, self.padding)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"learnable={self.learnable}")


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_LP_POOL = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}
_MAX_UNPOOL = {1: F.max_unpool1d, 2: F.max_unpool2d, 3: F.max_unpool3d}
_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
