"""Training on MNIST-1D (Greydanus 2020), the main job's data set: 40-sample 1-D signals, 10 classes."""
import time

import numpy as np

from . import functional as F
from . import nn, optim
from .autograd import no_grad
from .tensor import tensor


class MissingExtra(Exception):
    """An optional dependency of the command line is not installed."""


def require(module, extra="examples"):
    """Import an optional dependency or say in one line what to install."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise MissingExtra(f"this command needs the '{module}' package: pip install 'minitorch-conv[{extra}]'") from None


def mnist1d(shuffle=False, seed=42):
    """MNIST-1D generated offline: (x_train (4000, 40), y_train, x_test (1000, 40), y_test), float32."""
    data_module = require("mnist1d.data")
    args = data_module.get_dataset_args()
    args.shuffle_seq, args.seed = shuffle, seed
    data = data_module.make_dataset(args)
    return (data["x"].astype(np.float32), data["y"].astype(np.int64),
            data["x_test"].astype(np.float32), data["y_test"].astype(np.int64))


def mlp():
    """The paper's MLP: 40 -> 100 -> 100 -> 10 with ReLUs."""
    return nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))


def accuracy(model, x, y, batch_size=1000):
    model.eval()
    with no_grad():
        predictions = np.concatenate([model(tensor(x[i:i + batch_size])).numpy().argmax(1)
                                      for i in range(0, len(x), batch_size)])
    model.train()
    return float((predictions == y).mean())


def train(model, data, seconds=None, steps=6000, batch_size=100, lr=1e-2, seed=0, on_step=None):
    """Adam on minibatches drawn with replacement, for `steps` steps or until `seconds` have passed."""
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(seed)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    start, step = time.perf_counter(), 0
    while step < steps and (seconds is None or time.perf_counter() - start < seconds):
        batch = rng.integers(0, len(x_train), batch_size)
        loss = F.cross_entropy(model(tensor(x_train[batch])), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if on_step is not None:
            on_step(step, loss.item())
    return {"steps": step, "seconds": time.perf_counter() - start, "test_accuracy": accuracy(model, x_test, y_test)}
