"""Typed, documented run configurations: the only thing launch scripts pass to the library."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tfkip import architectures
from tfkip.kernels.random_features import COMPUTE_DTYPES as RF_DTYPES
from tfkip.train.strategy import STRATEGIES

KERNELS = ("ntk", "nngp", "rf_nngp")
# Defaults of the settings that differ between the exact kernels and random features
# (``None`` in a `DistillConfig` picks the one for its kernel).
EXACT_DEFAULTS = {
    "target_batch_size": 1000,
    "learning_rate": 0.04,
    "reg": 1e-6,
    "loss": "mse",
    "eval_kernel": "exact",
}
# In-run evaluation of a random-feature run uses its fixed twins by default: an exact
# ConvNet evaluation costs |S| |T| (HW)^2 and would spend the run's time budget.
RF_DEFAULTS = {
    "target_batch_size": 100,
    "learning_rate": 0.04,
    "reg": 1e-6,
    "loss": "platt",
    "eval_kernel": "model",
}

# Settings that may change when a run is resumed (they do not change the distilled set).
RESUMABLE_FIELDS = frozenset(
    {
        "steps",
        "eval_every",
        "checkpoint_every",
        "steps_per_loop",
        "strategy",
        "tpu",
        "num_cpu_devices",
        "workdir",
        "data_dir",
        "eval_tile",
        "kernel_batch_size",
        "kernel_memory_mib",
        "early_stopping_patience",
        "eval_kernel",
        "max_time",
        "snapshot_every_seconds",
        "jit_compile",
    }
)

# Kernels of in-run test evaluation: "exact", the infinite-width kernel ``kernel`` names.
EVAL_KERNELS = ("exact", "model")
# Kernels of in-run validation: "model", the kernel the run distils with; "exact" as above.
VALIDATION_KERNELS = ("model", "exact")


@dataclasses.dataclass
class DistillConfig:
    """Every setting of a KIP distillation (or Label Solve) run.

    Attributes:
      dataset: 'mnist_5k' (bundled), a tensorflow-datasets name, or 'npz:PATH'.
      data_dir: tensorflow-datasets data_dir (local or gs://).
      architecture: preset name in `tfkip.architectures.NAMES`.
      depth, width, W_std, b_std, parameterization, activation: the network.
      kernel: 'ntk' or 'nngp' (exact), or 'rf_nngp' (the NNGP estimated from random
        finite twins of the network, new ones every step: `tfkip.kernels.random_features`).
      rf_models, rf_width, rf_seed: with 'rf_nngp', twins per step, their width, and the
        seed of their weights (None: ``seed``).
      rf_dtype: with 'rf_nngp', dtype of the twins' forward passes: None (``dtype``) or
        'bfloat16' (faster convolutions where the hardware has them; the features are
        cast back before the solve).
      loss: 'mse' (KIP) or 'platt' (cross-entropy with a learned temperature, RFAD).
      solve_dtype: dtype of the KRR solve; None: float64 for 'rf_nngp' (except on TPU),
        else ``dtype``.
      support_per_class: support images per class (support size = this x classes).
      target_batch_size: class-balanced target images per KIP step (None: the kernel's
        default, `EXACT_DEFAULTS` / `RF_DEFAULTS`; likewise ``learning_rate``, ``reg`` and
        ``loss``).
      learning_rate: Adam learning rate (KIP.ipynb: 0.04).
      steps: KIP steps; 0 writes the natural starting support set.
      learn_labels: also learn the support labels.
      zca, zca_reg: ZCA whitening (spec 1.4) and its relative regulariser.
      augment, augmentations: augment the support images each step, and how
        (`tfkip.data.augment` grammar).
      reg: trace-scaled KRR ridge (KIP) / Label Solve regulariser.
      seed: support initialisation, target sampling and augmentation seed.
      eval_every: steps between test evaluations (also at the start and end); 0: none
        (no validation either).
      dtype: 'float64' (CPU/GPU) or 'float32' (TPU).
      workdir: output folder (local or gs://); reruns resume from it.
      strategy, tpu, num_cpu_devices: see `tfkip.train.get_strategy`.
      steps_per_loop: KIP steps per host call (one progress line each).
      checkpoint_every: steps between checkpoints.
      kernel_batch_size: kernel tile size (None: planned from the memory budget).
      kernel_memory_mib: MiB one kernel tile may use when ``kernel_batch_size`` is None
        (None: 256); enough for the whole kernels leaves them untiled and faster.
      eval_tile: test images per replica per evaluation call.
      validation_size: train images held out of the targets (class balanced, a multiple
        of the classes; 0: none), scored at each evaluation; the set of lowest
        validation loss is kept in ``best/`` (`tfkip.train.validation`).
      validation_kernel: 'model' (the run's kernel) or 'exact' (same for exact KIP).
      eval_kernel: kernel of the in-run test evaluation: 'exact' (the infinite-width
        kernel; for ``rf_nngp`` the NNGP it estimates) or 'model' (the run's own kernel:
        for ``rf_nngp`` its fixed evaluation twins, cheap). None: 'exact' for exact
        kernels, 'model' for ``rf_nngp`` (its exact accuracy: ``launch/evaluate.py
        --kernel=nngp``).
      early_stopping_patience: stop after this many evaluations without a lower
        validation loss (0: never).
      max_time: wall-clock seconds from the command's start after which the run stops
        cleanly (None: no limit; `tfkip.train.budget`).
      snapshot_every_seconds: write the support into ``snapshots/`` each time this many
        more seconds of training loop have run (None: never).
      jit_compile: compile the KIP step with XLA. None: yes, except for 'rf_nngp' off
        TPU, whose convolutions run faster as TensorFlow's own (oneDNN) kernels than as
        XLA's on CPU; a TPU compiles every step with XLA whatever this says.
    """

    dataset: str = "mnist_5k"
    data_dir: str | None = None
    architecture: str = "fc"
    depth: int | None = None
    width: int = 1024
    W_std: float = math.sqrt(2.0)  # noqa: N815 (neural-tangents name)
    b_std: float | None = 0.1
    parameterization: str = "ntk"
    activation: str = "relu"
    kernel: str = "ntk"
    rf_models: int = 4
    rf_width: int = 32
    rf_seed: int | None = None
    rf_dtype: str | None = None
    loss: str | None = None
    solve_dtype: str | None = None
    support_per_class: int = 1
    target_batch_size: int | None = None
    learning_rate: float | None = None
    steps: int = 500
    learn_labels: bool = False
    zca: bool = False
    zca_reg: float = 0.1
    augment: bool = False
    augmentations: str = "crop:4"
    reg: float | None = None
    seed: int = 0
    eval_every: int = 100
    dtype: str = "float64"
    workdir: str = "runs/default"
    strategy: str = "default"
    tpu: str | None = None
    num_cpu_devices: int | None = None
    steps_per_loop: int = 50
    checkpoint_every: int = 100
    kernel_batch_size: int | None = None
    kernel_memory_mib: int | None = None
    eval_tile: int = 500
    validation_size: int = 0
    validation_kernel: str = "model"
    eval_kernel: str | None = None
    early_stopping_patience: int = 0
    max_time: float | None = None
    snapshot_every_seconds: float | None = None
    jit_compile: bool | None = None

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}. Received: kernel={self.kernel!r}")
        defaults = RF_DEFAULTS if self.kernel == "rf_nngp" else EXACT_DEFAULTS
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.rf_seed is None:
            self.rf_seed = self.seed
        if self.solve_dtype is None:
            rf_float64 = self.kernel == "rf_nngp" and self.strategy != "tpu"
            self.solve_dtype = "float64" if rf_float64 else self.dtype
        if self.solve_dtype not in ("float32", "float64"):
            raise ValueError(
                f"solve_dtype must be 'float32' or 'float64'. "
                f"Received: solve_dtype={self.solve_dtype!r}"
            )
        if self.rf_dtype not in RF_DTYPES:
            raise ValueError(
                f"rf_dtype must be one of {RF_DTYPES}. Received: rf_dtype={self.rf_dtype!r}"
            )
        if self.jit_compile is None:
            self.jit_compile = self.kernel != "rf_nngp" or self.strategy == "tpu"
        if not isinstance(self.jit_compile, bool):
            raise ValueError(
                f"jit_compile must be True, False or None. Received: "
                f"jit_compile={self.jit_compile!r}"
            )
        if self.loss not in ("mse", "platt"):
            raise ValueError(f"loss must be 'mse' or 'platt'. Received: loss={self.loss!r}")
        if isinstance(self.rf_seed, bool) or not isinstance(self.rf_seed, int):
            raise ValueError(f"rf_seed must be an integer. Received: rf_seed={self.rf_seed!r}")
        positive = (
            "support_per_class",
            "target_batch_size",
            "steps_per_loop",
            "checkpoint_every",
            "eval_tile",
            "width",
            "rf_models",
            "rf_width",
        )
        optional = ("kernel_batch_size", "kernel_memory_mib")  # None: planned tiles
        for name in (*positive, *optional):
            value = getattr(self, name)
            if value is None and name in optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                expected = (
                    "a positive integer or None" if name in optional else "a positive integer"
                )
                raise ValueError(f"{name} must be {expected}. Received: {name}={value!r}")
        for name in ("steps", "eval_every", "validation_size", "early_stopping_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
        _check_validation_and_time(self)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(
                f"dtype must be 'float32' or 'float64'. Received: dtype={self.dtype!r}"
            )
        if self.architecture not in architectures.NAMES:
            raise ValueError(
                f"Unknown architecture. Expected one of {architectures.NAMES}. "
                f"Received: architecture={self.architecture!r}"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy. Expected one of {STRATEGIES}. "
                f"Received: strategy={self.strategy!r}"
            )
        if self.strategy == "tpu" and self.dtype == "float64":
            raise ValueError(
                "TPUs have no float64: use dtype='float32' (--dtype=float32) with "
                "strategy='tpu'. Received: dtype='float64'"
            )
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(
                f"learning_rate must be > 0. Received: learning_rate={self.learning_rate!r}"
            )
        if not (isinstance(self.reg, (int, float)) and self.reg >= 0):
            raise ValueError(f"reg must be >= 0. Received: reg={self.reg!r}")

    @property
    def validation(self) -> bool:
        """Whether the run holds out and scores validation images."""
        return self.validation_size > 0

    @property
    def kernel_memory_budget(self) -> int | None:
        """``kernel_memory_mib`` in bytes (`KIPModel`'s ``kernel_memory_budget``)."""
        return None if self.kernel_memory_mib is None else self.kernel_memory_mib * 2**20

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DistillConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}. Expected a subset of {sorted(known)}")
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        """The settings that determine the distilled set (must match to resume)."""
        return {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_FIELDS}


def _check_validation_and_time(config: DistillConfig) -> None:
    """The new settings' checks (validation, early stopping, wall-clock budget)."""
    for name, allowed in (
        ("validation_kernel", VALIDATION_KERNELS),
        ("eval_kernel", EVAL_KERNELS),
    ):
        if getattr(config, name) not in allowed:
            raise ValueError(
                f"{name} must be one of {allowed}. Received: {name}={getattr(config, name)!r}"
            )
    if config.early_stopping_patience and not config.validation_size:
        raise ValueError(
            "early_stopping_patience needs validation images to judge by: set "
            "validation_size > 0. Received: validation_size=0, "
            f"early_stopping_patience={config.early_stopping_patience}"
        )
    if config.validation_size and not config.eval_every:
        raise ValueError(
            "Validation is scored at the in-run evaluations: eval_every must be > 0 with "
            f"validation_size={config.validation_size}. Received: eval_every=0"
        )
    for name in ("max_time", "snapshot_every_seconds"):
        value = getattr(config, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
        ):
            raise ValueError(f"{name} must be > 0 seconds or None. Received: {name}={value!r}")
