"""Optimisers: SGD and Adam with exactly PyTorch's update formulas.

Each update is plain numpy on `param.data`, in place and in the parameter's own dtype, so a model
trained here and the same model trained by torch (float32 or float64) walk the same path.
Hyperparameters are attributes (`optimizer.lr = 0.01` changes the learning rate).
"""

import math
from numbers import Real

import numpy as np

from .tensor import Tensor


class Optimizer:
    """Holds the parameters, the per-parameter state, and runs update() for each parameter with a grad."""

    hyperparameter_names = ()

    def __init__(self, params):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors (e.g. model.parameters()), got a single Tensor")
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        seen = set()
        for index, param in enumerate(self.params):
            if not isinstance(param, Tensor):
                raise TypeError(f"params[{index}] must be a Tensor, got {type(param).__name__}")
            if id(param) in seen:
                raise ValueError(f"params[{index}] appears more than once; it would be updated twice per step")
            seen.add(id(param))
        self.state = {}  # parameter index -> that parameter's buffers, created on its first update

    def zero_grad(self):
        for param in self.params:
            param.zero_grad()

    def step(self, closure=None):
        """One update of every parameter that has a grad; `closure` (optional) recomputes and returns the loss."""
        loss = closure() if closure is not None else None
        for index, param in enumerate(self.params):
            if param.grad is None:
                continue  # as in torch: a parameter without a gradient is left alone, state and all
            grad = np.asarray(param.grad.data, dtype=param.data.dtype)
            self.update(param.data, grad, self.state.setdefault(index, {}))
        return loss

    def update(self, value, grad, state):
        """Change the array `value` in place, given its gradient and its (mutable) state dict."""
        raise NotImplementedError

    def check_hyperparameters(self):
        """Raise ValueError/TypeError for an invalid hyperparameter; called by __init__ and load_state_dict."""

    def state_dict(self):
        """{"state": {index: {name: array or int}}, "param_groups": [{hyperparameters, "params": indices}]}.

        The layout is torch's (with one parameter group), and copies are returned.
        """
        state = {
            index: {name: (value.copy() if isinstance(value, np.ndarray) else value) for name, value in buffers.items()}
            for index, buffers in self.state.items()
        }
        group = {name: getattr(self, name) for name in self.hyperparameter_names}
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and buffers saved by state_dict() (possibly through mc.save/mc.load)."""
        try:
            (group,) = state_dict["param_groups"]
            saved_state = state_dict["state"]
            param_count = len(group["params"])
            hyperparameters = {name: group[name] for name in self.hyperparameter_names}
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"load_state_dict: not a {type(self).__name__} state dict ({error!r})") from None
        if param_count != len(self.params):
            raise ValueError(f"load_state_dict: the state dict is for {param_count} parameter(s), "
                             f"this optimizer has {len(self.params)}")
        state = {}
        for key, buffers in saved_state.items():
            index = int(key)  # mc.load gives back int keys, but accept "0" too
            if not 0 <= index < len(self.params):
                raise ValueError(f"load_state_dict: state for parameter {index}, "
                                 f"but this optimizer has {len(self.params)} parameter(s)")
            state[index] = {name: self._restored(index, name, value) for name, value in buffers.items()}
        previous = {name: getattr(self, name) for name in self.hyperparameter_names}
        for name, value in hyperparameters.items():
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        try:
            self.check_hyperparameters()
        except (TypeError, ValueError):
            for name, value in previous.items():
                setattr(self, name, value)
            raise
        self.state = state

    def _restored(self, index, name, value):
        param = self.params[index]
        if isinstance(value, Tensor):
            value = value.data
        if not isinstance(value, np.ndarray):
            return value  # a counter such as Adam's "step"
        if value.shape != param.data.shape:
            raise ValueError(
                f"load_state_dict: '{name}' of parameter {index} has shape {value.shape}, "
                f"the parameter has shape {param.data.shape}"
            )
        return np.array(value, dtype=param.data.dtype)  # a copy, in the parameter's dtype


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (heavy-ball or Nesterov) and weight decay.

    Per step, as torch.optim.SGD:  d = g + weight_decay * p;
    buf = d on the first step, else momentum * buf + (1 - dampening) * d;
    d = d + momentum * buf if nesterov else buf;  p -= lr * d.
    """

    hyperparameter_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        super().__init__(params)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        self.check_hyperparameters()

    def check_hyperparameters(self):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            _check_real("SGD", name, getattr(self, name))
        _check_at_least("SGD", "lr", self.lr, 0.0)
        _check_at_least("SGD", "momentum", self.momentum, 0.0)
        _check_at_least("SGD", "weight_decay", self.weight_decay, 0.0)
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be a bool, got {type(self.nesterov).__name__}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"SGD: nesterov momentum requires momentum > 0 and dampening = 0, "
                f"got momentum={self.momentum}, dampening={self.dampening}"
            )

    def update(self, value, grad, state):
        lr, momentum, weight_decay = float(self.lr), float(self.momentum), float(self.weight_decay)
        direction = grad + weight_decay * value if weight_decay != 0 else grad
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = direction.copy()
            else:
                buffer *= momentum
                buffer += (1.0 - float(self.dampening)) * direction
            direction = direction + momentum * buffer if self.nesterov else buffer
        value += -lr * direction


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as torch.optim.Adam.

    Per step t:  g += weight_decay * p;  m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g^2;
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    """

    hyperparameter_names = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.check_hyperparameters()

    def check_hyperparameters(self):
        for name in ("lr", "eps", "weight_decay"):
            _check_real("Adam", name, getattr(self, name))
            _check_at_least("Adam", name, getattr(self, name), 0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {self.betas!r}")
        for index, beta in enumerate(self.betas):
            _check_real("Adam", f"betas[{index}]", beta)
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam: betas[{index}] must be in [0, 1), got {beta}")
        self.betas = tuple(self.betas)

    def update(self, value, grad, state):
        lr, eps, weight_decay = float(self.lr), float(self.eps), float(self.weight_decay)
        beta1, beta2 = (float(beta) for beta in self.betas)
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(value)
            state["exp_avg_sq"] = np.zeros_like(value)
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if weight_decay != 0:
            grad = grad + weight_decay * value
        exp_avg += (1.0 - beta1) * (grad - exp_avg)  # torch's lerp_, the same rounding
        exp_avg_sq *= beta2
        exp_avg_sq += (1.0 - beta2) * (grad * grad)
        step_size = lr / (1.0 - beta1**step)
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
        denominator = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        value += -step_size * (exp_avg / denominator)


def _check_real(optimizer, name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{optimizer}: {name} must be a number, got {type(value).__name__}")


def _check_at_least(optimizer, name, value, lowest):
    if not value >= lowest:  # written this way round so that NaN fails too
        raise ValueError(f"{optimizer}: {name} must be >= {lowest}, got {value}")
