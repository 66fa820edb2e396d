"""minitorch_conv: Chapter 9 of Goodfellow, Bengio & Courville's *Deep Learning*, executable.

A small reverse-mode autograd tensor library whose convolution and pooling kernels are C.
"""
__version__ = "0.1.0"

from .tensor import Tensor, tensor, from_numpy, zeros, ones, randn, rand, float32, float64
from .autograd import grad, no_grad, enable_grad, is_grad_enabled
from .random import manual_seed
from ._kernels import simd_path, set_num_threads, get_num_threads
from . import functional
from . import nn, optim
from .serialization import save, load
