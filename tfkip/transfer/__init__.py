"""Training finite networks on distilled sets and testing them on the real test split.

* `TrainConfig`, `train`, `train_on_arrays`, `fit_network`, `evaluate_network`: train the
  finite twin of a set's architecture (`tfkip.finite.build_model`) with the 'default'
  recipe (standard parameterization, centred, no L2: keeps the kernel's accuracy) or the
  'reference' one of ``kip/nn_training.ipynb`` (spec section 4); `RECIPES`.
* `load_transfer_data`, `check_compatible`: a distilled set with the matching real data.
* `L2Regularized`, `half_mse`: the training model and loss.
* `tfkip.transfer.search`: the validation grid search over lr factor, L2, centring,
  parameterization.

>>> from tfkip.transfer import TrainConfig, train
>>> result = train(TrainConfig(distilled="/tmp/kip_run", steps=1000))  # doctest: +SKIP
"""

from tfkip.transfer.data import TransferData, check_compatible, load_transfer_data
from tfkip.transfer.model import L2Regularized, effective_weight_scales, half_mse
from tfkip.transfer.recipes import RECIPES, Recipe, TrainConfig, get_recipe
from tfkip.transfer.train import (
    FitResult,
    evaluate_network,
    fit_network,
    resolve_config,
    train,
    train_on_arrays,
)

__all__ = [
    "RECIPES",
    "FitResult",
    "L2Regularized",
    "Recipe",
    "TrainConfig",
    "TransferData",
    "check_compatible",
    "effective_weight_scales",
    "evaluate_network",
    "fit_network",
    "get_recipe",
    "half_mse",
    "load_transfer_data",
    "resolve_config",
    "train",
    "train_on_arrays",
]
