"""The library's one random number generator: initialisation, dropout and mc.randn draw from it."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Make every later random draw reproducible."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def generator():
    return _generator
