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
