"""The command line's models: logistic regression, an MLP and a CNN, for 1-D signals or 2-D images.

`build(name, input_shape)` takes the shape of one example, channels first: (1, 40) for
MNIST-1D, (1, 8, 8) for the digits.
"""
import math

from . import nn

NAMES = ("logreg", "mlp", "cnn")
LABELS = {"logreg": "logistic regression", "mlp": "MLP", "cnn": "CNN"}


def logreg(input_shape, classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), classes))


def mlp(input_shape, classes=10, hidden=100):
    """The paper's MLP: two hidden layers of 100 ReLUs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def cnn1d(length=40, classes=10, channels=25):
    """The CNN of Greydanus (2020): three strided convolutions, 40 -> 19 -> 10 -> 5 positions, then a Linear."""
    for kernel in (5, 3, 3):
        length = (length + 2 - kernel) // 2 + 1  # padding 1, stride 2
    return nn.Sequential(nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(channels * length, classes))


def cnn2d(height=8, width=8, classes=10):
    """A small image CNN: two 3x3 'same' convolutions with a 2x2 max pool between them."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * (height // 2) * (width // 2), classes))


def build(name, input_shape, classes=10):
    if name == "logreg":
        return logreg(input_shape, classes)
    if name == "mlp":
        return mlp(input_shape, classes)
    if name == "cnn":
        return cnn1d(input_shape[1], classes) if len(input_shape) == 2 else cnn2d(*input_shape[1:], classes)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")
