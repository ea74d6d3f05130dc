"""Finite Keras networks from the same `serial(...)` spec as the kernels, and training them.

* Layers: `NTKDense`, `NTKConv` ('ntk' / 'standard' parameterization),
  `ZeroPaddedAveragePooling2D`, `Erf` (all registered for saving under "tfkip").
* `build_model` / `to_keras_layer`: kernel spec -> `keras.Model`.
* `empirical_ntk`, `max_learning_rate`: Jacobian NTK and the reference learning rate.
* `monte_carlo_nngp`: output covariance of many random networks (checks the kernels).
* `TrainConfig`, `train`, `train_on_arrays`, `fit_network`, `load_transfer_data`: train
  a finite network on a distilled set and test it on the real test split, with the
  'default' recipe (standard parameterization, centred, no L2: keeps the kernel's accuracy)
  or the 'reference' one of ``kip/nn_training.ipynb`` (spec §4); `RECIPES`.
* `plain_keras_model`: the trained (centred) network as built-in Keras layers only.
* `search`: the validation grid search over lr factor, L2, centring, parameterization.

>>> from tfkip import architectures
>>> from tfkip.finite import build_model
>>> model = build_model(architectures.get("convnet", 2), (28, 28, 1), width=64, seed=0)
"""

from tfkip.finite.build import build_model, to_keras_layer
from tfkip.finite.config import RECIPES, Recipe, TrainConfig, get_recipe
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
from tfkip.finite.train import (
    FitResult,
    evaluate_network,
    fit_network,
    resolve_config,
    train,
    train_on_arrays,
)
from tfkip.finite.transfer_data import TransferData, check_compatible, load_transfer_data
from tfkip.finite.wrapper import L2Regularized, effective_weight_scales, half_mse

__all__ = [
    "RECIPES",
    "Erf",
    "FitResult",
    "Recipe",
    "effective_weight_scales",
    "evaluate_network",
    "fit_network",
    "get_recipe",
    "plain_keras_model",
    "resolve_config",
    "L2Regularized",
    "TrainConfig",
    "TransferData",
    "MonteCarloKernel",
    "NTKConv",
    "NTKDense",
    "ZeroPaddedAveragePooling2D",
    "build_model",
    "check_compatible",
    "empirical_ntk",
    "gaussian_standard_error",
    "half_mse",
    "load_transfer_data",
    "max_learning_rate",
    "monte_carlo_nngp",
    "resample_weights",
    "to_keras_layer",
    "train",
    "train_on_arrays",
]
