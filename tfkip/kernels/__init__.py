"""Analytic NNGP and NTK kernels of infinitely wide networks, in TensorFlow.

The layers and their arguments follow neural-tangents' ``stax``; compose them with
`serial` and call the network's ``kernel_fn``:

>>> import numpy as np
>>> from tfkip import kernels as k
>>> net = k.serial(k.Conv(1, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.1), k.Relu(),
...                k.Flatten(), k.Dense(1, W_std=2**0.5, b_std=0.1))
>>> x = np.random.default_rng(0).standard_normal((4, 8, 8, 3))
>>> net.kernel_fn(x, None, get="ntk").shape
TensorShape([4, 4])
"""

from tfkip.kernels.kernel import Kernel, Layout, Shape
from tfkip.kernels.layer import Layer
from tfkip.kernels.linear import Conv, Dense
from tfkip.kernels.network import Network, serial
from tfkip.kernels.nonlinear import Erf, Relu
from tfkip.kernels.pooling import AvgPool, Flatten, GlobalAvgPool
from tfkip.kernels.random_features import RandomFeatureNNGP

__all__ = [
    "AvgPool",
    "Conv",
    "Dense",
    "Erf",
    "Flatten",
    "GlobalAvgPool",
    "Kernel",
    "Layer",
    "Layout",
    "Network",
    "RandomFeatureNNGP",
    "Relu",
    "Shape",
    "serial",
]
