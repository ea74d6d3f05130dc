"""`TrainConfig` and `Recipe`: the finite-network transfer settings, typed.

Two named recipes fill the settings a caller leaves unset (None):

==============  ================  ======  ============  =====  ==========================
recipe          parameterization  center  l2            steps  source
==============  ================  ======  ============  =====  ==========================
``default``     'standard'        True    0             1000   keeps the kernel's accuracy
``reference``   'standard'        False   1e-3          5000   ``kip/nn_training`` (§4)
==============  ================  ======  ============  =====  ==========================

Both use MSE on centred labels, SGD momentum 0.9, a cosine decay from the empirical-NTK
learning rate (`tfkip.finite.max_learning_rate`) and batch 100. Why the default differs:

* **Centred, no L2.** A standard-parameterized network's random initial function
  ``f(x; theta_0)`` is of the order of the labels and, trained on 10 images, stays in its
  test predictions; the centred network ``f(x; theta) - f(x; theta_0)``, trained without
  weight decay, removes it, and a wide network trained so is (close to) kernel
  regression with its empirical NTK at initialisation (Lee et al. 2019, arXiv
  1902.06720), i.e. what KIP optimised the images for.
* **Standard, not NTK, parameterization**, because it stays in that lazy regime at the
  widths a CPU can train. Under 'ntk' at CPU widths the hidden layers of a conv net leave
  the linear regime (their weights move by a sizeable fraction of their norm) and the
  trained net falls well short of kernel regression with its own empirical NTK. Under
  'standard' the empirical-NTK learning rate is set by the read-out layer, whose Jacobian
  (the ``H * W * width`` last features) dominates the NTK, so the hidden layers barely
  move and the net is a linear model on fixed random features. docs/transfer.md has the
  measured accuracies.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tfkip import architectures
from tfkip.checks import check_parameterization, check_std

LOSSES = ("mse", "xent")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The settings a named recipe gives `TrainConfig` fields left None."""

    parameterization: str
    center: bool
    l2: float
    steps: int


RECIPES: dict[str, Recipe] = {
    "default": Recipe(parameterization="standard", center=True, l2=0.0, steps=1000),
    "reference": Recipe(parameterization="standard", center=False, l2=1e-3, steps=5000),
}


def get_recipe(name: str) -> Recipe:
    """The `Recipe` called ``name`` ('default' or 'reference')."""
    if name not in RECIPES:
        raise ValueError(
            f"Unknown recipe. Expected one of {tuple(RECIPES)}: 'default' (standard "
            "parameterization, centred, no L2; keeps the kernel's accuracy) or 'reference' "
            f"(kip/nn_training exactly). Received: recipe={name!r}"
        )
    return RECIPES[name]


def canonical_architecture(name: str) -> str:
    """``'ConvNet'`` / ``'FC'`` / ``'myrtle5'``... -> a `tfkip.architectures` name."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"architecture must be a non-empty string. Received: {name!r}")
    lowered = name.strip().lower()
    if lowered.startswith("myrtle"):
        return "myrtle"
    if lowered not in architectures.NAMES:
        raise ValueError(
            f"Unknown architecture. Expected one of {architectures.NAMES} (any case). "
            f"Received: architecture={name!r}"
        )
    return lowered


@dataclasses.dataclass
class TrainConfig:
    """Settings of one finite-network training run.

    ``recipe`` ('default' or 'reference', see `RECIPES`) fills ``parameterization``,
    ``center``, ``l2`` and ``steps`` when they are None; explicit values win.

    Data:
      distilled: a distill workdir or an ``.npz`` with ``images``/``labels`` (only for
        `tfkip.transfer.train`; `train_on_arrays` takes arrays).
      dataset, data_dir: the test split's source (default: the run's ``config.json``).
    Network (`tfkip.architectures.get`):
      architecture, depth: default: the run's ``config.json`` (else 'convnet', preset depth).
      width: hidden width/channels (reference: 1024).
      parameterization: 'standard' (both recipes) or 'ntk'.
      W_std, b_std, activation, readout: as in `tfkip.architectures.get`.
      center: train the centred network ``f(x; theta) - f(x; theta_0)`` (a frozen copy of
        the initial network subtracted), which removes the random initial function
        from the predictions. On in the default recipe, off in the reference; see the
        RFAD ``--centering`` discussion in spec §7 and Lee et al. 2020 (arXiv 2007.15801).
        The saved ``model.keras`` is then the centred model (frozen copy inside).
    Recipe:
      loss: 'mse' (0.5 mean squared error on the centred labels) or 'xent' (softmax
        cross-entropy on the argmax one-hot labels).
      l2: lambda of the penalty ``0.5 * lambda * sum(w^2)`` over the *effective* weights
        and biases ``w`` of every layer (``w = W_std / sqrt(fan_in) * theta`` for a kernel
        and ``b_std * theta`` for a bias under 'ntk'; ``w = theta`` under 'standard'), so
        one lambda means the same penalty on the same function in both
        parameterizations (the reference's ``0.5 * lambda * sum(theta^2)`` under
        'standard').
      steps, batch_size: SGD steps; batch (the whole set if it has fewer images).
      learning_rate: lr0 of the cosine decay; None for the empirical-NTK estimate
        ``max_lr_factor * 2 y_train_size / lambda_max`` on ``ntk_num_inputs`` held-out
        training images (Jacobian tiles of ``ntk_batch_size``).
      momentum: SGD momentum.
      seed: initialisation and shuffling seed.
      eval_batch_size: test-set batch.
    Execution:
      workdir: where ``metrics.json``, ``model.keras`` and ``tb/`` go (None: nothing written).
      steps_per_loop: training steps per compiled call (Keras ``steps_per_execution``).
      checkpoint_every: steps per Keras epoch; at each epoch end the run backs up to
        ``workdir/backup`` (resumed automatically) and TensorBoard logs. 0: one epoch.
      verbose: Keras ``fit`` verbosity (progress bar = 1).
    """

    distilled: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    architecture: str | None = None
    depth: int | None = None
    recipe: str = "default"
    width: int = 1024
    parameterization: str | None = None
    W_std: float = math.sqrt(2.0)  # noqa: N815 (neural-tangents argument name)
    b_std: float | None = 0.1
    activation: str = "relu"
    readout: str | None = None
    center: bool | None = None
    loss: str = "mse"
    l2: float | None = None
    steps: int | None = None
    batch_size: int = 100
    learning_rate: float | None = None
    max_lr_factor: float = 1.0
    ntk_num_inputs: int = 50
    ntk_batch_size: int = 10
    momentum: float = 0.9
    seed: int = 0
    eval_batch_size: int = 100
    workdir: str | None = None
    steps_per_loop: int = 1
    checkpoint_every: int = 0
    verbose: int | str = "auto"

    def __post_init__(self) -> None:
        recipe = get_recipe(self.recipe)
        for name in ("parameterization", "center", "l2", "steps"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(recipe, name))
        if self.architecture is not None:
            self.architecture = canonical_architecture(self.architecture)
        for name in ("width", "steps", "batch_size", "ntk_num_inputs", "ntk_batch_size"):
            _positive_int(name, getattr(self, name))
        _positive_int("eval_batch_size", self.eval_batch_size)
        _positive_int("steps_per_loop", self.steps_per_loop)
        if self.depth is not None and (
            isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 0
        ):
            raise ValueError(
                f"depth must be None or an integer >= 0. Received: depth={self.depth!r}"
            )
        check_parameterization(self.parameterization)
        if not isinstance(self.center, bool):
            raise ValueError(f"center must be a bool. Received: center={self.center!r}")
        check_std("W_std", self.W_std, allow_none=False)
        check_std("b_std", self.b_std, allow_none=True)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}. Received: loss={self.loss!r}")
        for name in ("l2", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0. Received: {name}={value!r}")
        if self.momentum >= 1:
            raise ValueError(f"momentum must be < 1. Received: momentum={self.momentum!r}")
        for name in ("learning_rate", "max_lr_factor"):
            value = getattr(self, name)
            if value is None and name == "learning_rate":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0. Received: {name}={value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0. Received: seed={self.seed!r}")
        ce = self.checkpoint_every
        if isinstance(ce, bool) or not isinstance(ce, int) or ce < 0:
            raise ValueError(f"checkpoint_every must be an integer >= 0. Received: {ce!r}")
        if ce and self.steps % ce:
            raise ValueError(
                f"steps must be a multiple of checkpoint_every (each Keras epoch is "
                f"checkpoint_every steps). Received: steps={self.steps}, checkpoint_every={ce}"
            )

    def network(self, num_classes: int):
        """The kernel spec of the finite network (`tfkip.architectures.get`)."""
        return architectures.get(
            self.architecture or "convnet",
            self.depth,
            width=self.width,
            num_classes=num_classes,
            W_std=self.W_std,
            b_std=self.b_std,
            parameterization=self.parameterization,
            activation=self.activation,
            readout=self.readout,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
