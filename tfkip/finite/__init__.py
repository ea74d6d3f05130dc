"""Finite Keras networks from the same `serial(...)` spec as the kernels.

* Layers: `NTKDense`, `NTKConv` ('ntk' / 'standard' parameterization),
  `ZeroPaddedAveragePooling2D`, `Erf` (all registered for saving under "tfkip").
* `build_model` / `to_keras_layer`: kernel spec -> `keras.Model` (the finite twin).
* `empirical_ntk`, `max_learning_rate`: Jacobian NTK and the reference learning rate.
* `monte_carlo_nngp`: output covariance of many random networks (checks the kernels).
* `plain_keras_model`: a network of these layers as built-in Keras layers only.

Training finite networks on distilled sets is `tfkip.transfer`.

>>> from tfkip import architectures
>>> from tfkip.finite import build_model
>>> model = build_model(architectures.get("convnet", 2), (28, 28, 1), width=64, seed=0)
"""

from tfkip.finite.build import build_model, to_keras_layer
from tfkip.finite.conv import NTKConv
from tfkip.finite.dense import NTKDense
from tfkip.finite.erf import Erf
from tfkip.finite.monte_carlo import (
    MonteCarloKernel,
    gaussian_standard_error,
    monte_carlo_nngp,
    resample_weights,
)
from tfkip.finite.ntk import empirical_ntk, max_learning_rate
from tfkip.finite.plain import plain_keras_model
from tfkip.finite.pooling import ZeroPaddedAveragePooling2D

__all__ = [
    "Erf",
    "MonteCarloKernel",
    "NTKConv",
    "NTKDense",
    "ZeroPaddedAveragePooling2D",
    "build_model",
    "empirical_ntk",
    "gaussian_standard_error",
    "max_learning_rate",
    "monte_carlo_nngp",
    "plain_keras_model",
    "resample_weights",
    "to_keras_layer",
]
