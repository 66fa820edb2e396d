"""The command line's data sets, generated or loaded offline, channels first.

Each loader returns (x_train, y_train, x_test, y_test): float32 inputs of shape (N, 1, L) or
(N, 1, H, W), int64 labels. A model that ignores space starts with nn.Flatten.
"""
import functools

import numpy as np

from ._cli import require

NAMES = ("mnist1d", "digits")


@functools.lru_cache(maxsize=4)
def mnist1d(shuffle=False, seed=42):
    """MNIST-1D (Greydanus 2020): 4000 train / 1000 test signals of length 40, 10 classes.

    `shuffle` permutes the 40 positions with one fixed permutation (mnist1d's `shuffle_seq`): the
    same information, with the spatial order that a convolution relies on destroyed.
    Generating takes a few seconds, so the result is cached for the life of the process.
    """
    data_module = require("mnist1d.data", "mnist1d")
    args = data_module.get_dataset_args()
    args.shuffle_seq, args.seed = shuffle, seed
    data = data_module.make_dataset(args)
    return _frozen(data["x"][:, None, :], data["y"], data["x_test"][:, None, :], data["y_test"])


@functools.lru_cache(maxsize=2)
def digits(seed=0, test_fraction=0.2):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), scaled to [0, 1], split at random."""
    bunch = require("sklearn.datasets", "scikit-learn").load_digits()
    images = bunch.images[:, None, :, :] / 16.0
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return _frozen(images[train], bunch.target[train], images[test], bunch.target[test])


def load(name):
    return {"mnist1d": mnist1d, "digits": digits}[name]()


def _frozen(x_train, y_train, x_test, y_test):
    # Read-only, so that a caller cannot change the cached copy by accident.
    arrays = (np.ascontiguousarray(x_train, dtype=np.float32), np.asarray(y_train, dtype=np.int64),
              np.ascontiguousarray(x_test, dtype=np.float32), np.asarray(y_test, dtype=np.int64))
    for array in arrays:
        array.flags.writeable = False
    return arrays
