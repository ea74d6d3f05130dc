"""`EvaluateConfig`: what `evaluate_distilled` evaluates, and how."""

from __future__ import annotations

import dataclasses

from tfkip.sets import released as _released

PREPROCESSINGS = ("auto", "standardize", "zca")
ZCA_FITS = ("nn_training", "all")
NN_TRAINING_HOLDOUT = 5000  # nn_training's validation split: the last 5,000 train images
NETWORK_FIELDS = ("architecture", "depth", "width", "W_std", "b_std", "parameterization")
NETWORK_FIELDS += ("activation",)
KERNELS = ("ntk", "nngp")  # the exact kernels evaluation uses
WHICH = ("final", "best")


def exact_kernel(kernel: str) -> str:
    """The exact kernel that ``kernel`` is or estimates: ``'rf_nngp'`` -> ``'nngp'``."""
    return kernel[len("rf_") :] if kernel.startswith("rf_") else kernel


@dataclasses.dataclass
class EvaluateConfig:
    """What to evaluate and how; ``None`` fields come from the set, then the defaults.

    Attributes:
      distilled: the set (see the module docstring for the accepted forms).
      dataset: dataset whose test split is used (`tfkip.data.load_dataset` names); default
        the set's own.
      data_dir: tensorflow-datasets data_dir.
      download: let TFDS download a missing dataset.
      architecture, depth, width, W_std, b_std, parameterization, activation: the kernel
        network (`tfkip.architectures.get`); default the set's.
      which: 'final' (the set itself) or 'best' (a run folder's ``best/`` set).
      kernel: 'ntk' or 'nngp'; default the exact kernel the set was distilled with (a
        random-feature kernel's: the one it estimates), else 'ntk'.
      reg: trace-scaled KRR ridge; default the run's, else 1e-6.
      preprocessing: 'auto' (the set's own), or rebuild 'standardize' / 'zca'.
      zca_fit: for rebuilt ZCA: 'nn_training' (train minus its last 5,000 images) or 'all'.
      zca_reg: relative ZCA regulariser of rebuilt ZCA (nn_training: 0.1).
      released_root: where released sets and their indexes live (a local mirror works).
      lookup_index: print the index's ``test_acc`` beside the result for released sets.
      timeout: seconds allowed for each remote file access.
      dtype: 'float64' or 'float32'; default the run's, else 'float64'.
      strategy, tpu, num_cpu_devices: see `tfkip.train.get_strategy`.
      eval_tile: test images per replica per call; default the run's, else 500.
      kernel_batch_size: kernel tile size (bounded memory for pooled kernels); default
        the run's, else planned from the memory budget.
      kernel_memory_mib: MiB one planned kernel tile may use; default the run's, else 256.
      max_test_examples: evaluate on N test images only (None: all): the first of every
        class in turn, a deterministic class-balanced subset (`tfkip.data.subset`).
      jit_compile: compile the evaluation with XLA (faster on big test splits; compiling
        a pooled ConvNet kernel takes tens of seconds on CPU); default as the run did,
        else True.
    """

    distilled: str
    which: str = "final"
    dataset: str | None = None
    data_dir: str | None = None
    download: bool = True
    architecture: str | None = None
    depth: int | None = None
    width: int | None = None
    W_std: float | None = None  # noqa: N815 (neural-tangents name)
    b_std: float | None = None
    parameterization: str | None = None
    activation: str | None = None
    kernel: str | None = None
    reg: float | None = None
    preprocessing: str = "auto"
    zca_fit: str = "nn_training"
    zca_reg: float = 0.1
    released_root: str = _released.RELEASED_ROOT
    lookup_index: bool = True
    timeout: float = 60.0
    dtype: str | None = None
    strategy: str = "default"
    tpu: str | None = None
    num_cpu_devices: int | None = None
    eval_tile: int | None = None
    kernel_batch_size: int | None = None
    kernel_memory_mib: int | None = None
    max_test_examples: int | None = None
    jit_compile: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.distilled, str) or not self.distilled:
            raise ValueError(
                f"distilled must name a set (a run folder, an .npz, ...). "
                f"Received: distilled={self.distilled!r}"
            )
        for name, allowed in (
            ("preprocessing", PREPROCESSINGS),
            ("zca_fit", ZCA_FITS),
            ("kernel", (None, *KERNELS)),
            ("which", WHICH),
            ("dtype", (None, "float32", "float64")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {allowed}. Received: {name}={getattr(self, name)!r}"
                )
        for name in ("eval_tile", "kernel_batch_size", "kernel_memory_mib", "max_test_examples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) < 1):
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds. Received: timeout={self.timeout!r}")
