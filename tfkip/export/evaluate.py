"""KRR test accuracy and MSE of any distilled set, in the set's own preprocessing.

``evaluate_distilled(EvaluateConfig(distilled=X, dataset=D))`` loads the set X, maps D's
raw test images into the set's space, and runs kernel ridge regression with the support
set through the same code the distillation evaluates with (`KIPModel` +
`tfkip.train.loop.KIPTrainer.evaluate`), so on a run folder it reproduces the run's own
``metrics.jsonl`` numbers. X is one of

* a distillation workdir (``distilled.npz``, ``config.json``, ``preprocessing.npz``):
  network, kernel, ridge, dtype and the fitted preprocessing are the run's;
* a tfkip export: ``.npz`` with its ``.json`` sidecar, a TFRecord export (its sidecar
  ``{path}.json``), or a TFDS export folder (``DATA_DIR/NAME/VERSION``): preprocessing
  from the metadata (and its ZCA matrix file), network from the run config it carries;
* a published set (:mod:`tfkip.export.released`), or any ``.npz`` named like one:
  preprocessing rebuilt from the name as nn_training does it (spec §1.4, §4): per-channel
  standardisation with the full train split's statistics, and for ``zca`` names per-image
  layer norm then ZCA with relative regulariser 0.1 fitted on the train split minus its
  last 5,000 images; kernel the NTK of the named architecture (``ConvNet`` ->
  ``convnet``, ``ConvNet3`` -> ``convnet3``, depth 3; old-layout names need
  ``architecture``); trace-scaled ridge 1e-6.

Test labels are centred one-hot (``1 - 1/C``, ``-1/C``); ``test_mse`` is
``0.5 * mean((prediction - label)^2)`` over examples and classes.

>>> result = evaluate_distilled(EvaluateConfig("runs/quickstart"))  # doctest: +SKIP
>>> result["test_accuracy"], result["reported"]["test_accuracy"]  # doctest: +SKIP
(0.875, 0.875)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from tfkip import io as _io
from tfkip.export import released as _released
from tfkip.export.kip_npz import parse_kip_filename, read_kip_npz

PREPROCESSINGS = ("auto", "standardize", "zca")
ZCA_FITS = ("nn_training", "all")
NN_TRAINING_HOLDOUT = 5000  # nn_training's validation split: the last 5,000 train images
NETWORK_FIELDS = ("architecture", "depth", "width", "W_std", "b_std", "parameterization")
NETWORK_FIELDS += ("activation",)


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
      kernel: 'ntk' or 'nngp'; default the one the set was distilled with (else 'ntk').
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
      max_test_examples: evaluate on the first N test images only (None: all).
      jit_compile: compile the evaluation with XLA (faster on big test splits; compiling
        a pooled ConvNet kernel takes tens of seconds on CPU); default as the run did,
        else True.
    """

    distilled: str
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
            ("kernel", (None, "ntk", "nngp")),
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


@dataclasses.dataclass
class _Source:
    """A loaded set: arrays (N, H, W, C) / (N, C) and what it says about itself."""

    images: np.ndarray
    labels: np.ndarray
    kind: str  # "run", "npz", "tfrecord", "tfds", "released"
    path: str
    dataset: str | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # DistillConfig fields
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None  # raw -> set space
    preprocessing: dict[str, Any] | None = None  # description of `preprocess`
    recipe_zca: bool | None = None  # rebuild from the name: standardise (+ ZCA if True)
    reported: dict[str, Any] | None = None
    released: _released.ReleasedSet | None = None


def _run_settings(run_config: dict[str, Any] | None) -> dict[str, Any]:
    from tfkip.train.config import DistillConfig

    known = {f.name for f in dataclasses.fields(DistillConfig)}
    return {k: v for k, v in (run_config or {}).items() if k in known}


def _load_released(config: EvaluateConfig) -> _Source:
    ref = _released.parse_released(config.distilled)
    path = ref.path(config.released_root)
    images, labels = _released.gfile_call(lambda: read_kip_npz(path), path, config.timeout)
    if images.shape[0] != ref.ssize:
        raise ValueError(
            f"{path!r} holds {images.shape[0]} images but its name says ssize{ref.ssize}. "
            f"Received: images.shape={images.shape}"
        )
    settings = {"dataset": ref.dataset, "kernel": "ntk"}
    if ref.preset is not None:
        settings["architecture"] = ref.preset
    return _Source(
        images, labels, "released", path, ref.dataset, settings, recipe_zca=ref.zca, released=ref
    )


def _tfds_export(path: str, timeout: float) -> tuple[str, str, str] | None:
    """``(name, data_dir, version)`` if ``path`` is a TFDS export's version folder."""
    if "://" not in path and not path.startswith("/"):
        path = _io.join(".", path)
    info = _io.join(path, "dataset_info.json")
    if not _released.gfile_call(lambda: tf.io.gfile.exists(info), info, timeout):
        return None
    version = _io.basename(path.rstrip("/"))
    dataset_dir = _io.dirname(path.rstrip("/"))
    return _io.basename(dataset_dir), _io.dirname(dataset_dir), version


def load_source(config: EvaluateConfig) -> _Source:
    """Loads ``config.distilled`` (any accepted form) with what it says about itself.

    Raises:
      ValueError: the path is not a distilled set, or a released name does not parse.
      FileNotFoundError, UnreachablePathError: the path cannot be read.
    """
    from tfkip.export import preprocessing as _prep
    from tfkip.export.runs import last_metrics, load_run

    source = config.distilled
    if _released.is_released(source):
        return _load_released(config)
    tfds_parts = _tfds_export(source, config.timeout)
    if tfds_parts is not None:
        from tfkip.export.tfds_export import load_tfds, load_tfds_metadata

        images, labels = load_tfds(*tfds_parts[:2], tfds_parts[2])
        metadata, kind = load_tfds_metadata(*tfds_parts[:2], tfds_parts[2]), "tfds"
    else:
        images, labels, metadata = _released.gfile_call(
            lambda: load_run(source), source, config.timeout
        )
        is_dir = tf.io.gfile.isdir(source)
        kind = "run" if is_dir else ("npz" if source.endswith(".npz") else "tfrecord")
    settings = _run_settings(metadata.run_config)
    for key in ("architecture", "kernel"):  # sidecar fields when no run config
        value = getattr(metadata, key)
        if key not in settings and value != "unknown":
            settings[key] = value
    if metadata.depth is not None and "depth" not in settings:
        settings["depth"] = metadata.depth
    if "architecture" in settings and settings["architecture"] not in _architectures():
        settings["architecture"] = _released.ARCHITECTURES.get(settings["architecture"])
        settings = {k: v for k, v in settings.items() if v is not None}
    dataset = metadata.dataset if metadata.dataset != "unknown" else None
    out = _Source(images, labels, kind, source, dataset, settings)
    if kind == "run":
        from tfkip.data.preprocess import Preprocessor

        prep_path = _io.join(source, "preprocessing.npz")
        if tf.io.gfile.exists(prep_path):
            pre = Preprocessor.load(prep_path)
            out.preprocess = pre
            out.preprocessing = {**pre.get_config(), "from": prep_path}
        metrics_path = _io.join(source, "metrics.jsonl")
        if tf.io.gfile.exists(metrics_path):
            last = last_metrics(metrics_path)
            out.reported = {k: last.get(k) for k in ("step", "test_accuracy", "test_mse")}
            out.reported["from"] = metrics_path
    elif metadata.preprocessing is not None:
        out.preprocess = _prep.preprocessor(metadata)
        out.preprocessing = {**metadata.preprocessing, "from": f"{kind} metadata"}
    if out.reported is None and metadata.test_accuracy is not None:
        out.reported = {
            "step": metadata.step,
            "test_accuracy": metadata.test_accuracy,
            "test_mse": metadata.test_mse,
            "from": f"{kind} metadata",
        }
    if out.preprocess is None:
        try:
            out.recipe_zca = parse_kip_filename(source)["zca"]
        except ValueError:
            out.recipe_zca = metadata.zca if metadata.run_config or kind != "npz" else None
    return out


def _default_depth(architecture: str) -> int:
    from tfkip import architectures

    return architectures.DEFAULT_DEPTH[architecture]


def _architectures() -> tuple[str, ...]:
    from tfkip import architectures

    return architectures.NAMES


def _rebuild_preprocessing(raw, zca: bool, config: EvaluateConfig):
    """nn_training's preprocessing fitted on ``raw``'s train split (see module docstring)."""
    from tfkip.data.preprocess import Preprocessor

    n = raw.x_train.shape[0]
    count = n
    if zca and config.zca_fit == "nn_training":
        count = n - NN_TRAINING_HOLDOUT
        if count < 1:
            raise ValueError(
                f"zca_fit='nn_training' fits ZCA on the train split minus its last "
                f"{NN_TRAINING_HOLDOUT} images, but {raw.name!r} has only {n} train images; "
                "use --zca_fit=all. Received: zca_fit='nn_training'"
            )
    pre = Preprocessor.fit(raw.x_train, zca=zca, zca_reg=config.zca_reg, zca_fit_count=count)
    description = {
        **pre.get_config(),
        "from": "rebuilt from the name (nn_training protocol)",
        "standardize_fit": f"all {n} train images",
    }
    if zca:
        description["layer_norm"] = True
        description["zca_fit"] = f"first {count} of {n} train images ({config.zca_fit})"
    return pre, description


def _check_fits(source: _Source, raw) -> None:
    shape = tuple(source.images.shape[1:])
    if source.images.ndim != 4 or shape != raw.image_shape:
        raise ValueError(
            f"The set's images have shape {shape} but dataset {raw.name!r} has images of "
            f"shape {raw.image_shape}; pass the --dataset the set was distilled from. "
            f"Received: images.shape={source.images.shape}"
        )
    if source.labels.shape[1] != raw.num_classes:
        raise ValueError(
            f"The set's labels have {source.labels.shape[1]} columns but dataset {raw.name!r} "
            f"has {raw.num_classes} classes; pass the --dataset the set was distilled from. "
            f"Received: labels.shape={source.labels.shape}, expected "
            f"({source.labels.shape[0]}, {raw.num_classes})"
        )


def _network_config(source: _Source, config: EvaluateConfig, dataset: str):
    from tfkip.train.config import DistillConfig

    values = dict(source.settings)
    overridable = ("kernel", "reg", "dtype", "eval_tile", "kernel_batch_size", "kernel_memory_mib")
    for name in (*NETWORK_FIELDS, *overridable):
        if getattr(config, name) is not None:
            values[name] = getattr(config, name)
    if "architecture" not in values:
        layout = source.released.layout if source.released else None
        hint = " (old-layout released names carry none)" if layout == "kip_old" else ""
        raise ValueError(
            f"The set does not say which architecture's kernel to use{hint}; pass "
            "--architecture (released 'ConvNet' sets: --architecture=convnet, 'ConvNet3': "
            f"--architecture=convnet3). Received: architecture=None for {config.distilled!r}"
        )
    if values.get("depth") is None and values["architecture"] in _architectures():
        values["depth"] = _default_depth(values["architecture"])  # what the preset uses
    values.update(dataset=dataset, steps=0, strategy=config.strategy, tpu=config.tpu)
    values["num_cpu_devices"] = config.num_cpu_devices
    return DistillConfig.from_dict(values)


def _trainer(model, strategy, num_classes: int, image_shape, jit_compile: bool):
    """A `KIPTrainer` for evaluation only (a minimal class-balanced target pool)."""
    from tfkip.train.loop import KIPTrainer

    replicas = strategy.num_replicas_in_sync
    classes = np.repeat(np.arange(num_classes), replicas)
    pool = np.zeros((classes.size, *image_shape), model.dtype)
    targets = np.zeros((classes.size, num_classes), model.dtype)
    return KIPTrainer(
        model, strategy, pool, targets, classes, classes.size, 0, jit_compile=jit_compile
    )


def evaluate_distilled(config: EvaluateConfig) -> dict[str, Any]:
    """KRR test accuracy/MSE of ``config.distilled`` on a dataset's test split.

    Returns:
      A JSON-ready dict: ``test_accuracy``, ``test_mse``, ``kernel``, ``reg``, ``dtype``,
      ``network`` (the architecture settings), ``preprocessing`` (what was applied and
      where it came from), ``dataset``, ``test_examples``, ``support_size``, ``source``
      (the argument), ``source_kind``, ``path``, ``reported`` (what the run / metadata
      said for this set, or None), ``index`` (the released index row, or None) with
      ``index_error`` when the index could not be read, and ``seconds``.

    Raises:
      ValueError: bad input (see the messages: shapes, label width, names, settings).
      FileNotFoundError, UnreachablePathError: a path cannot be read.
    """
    from tfkip.data import centered_one_hot, load_dataset, make_augmentation
    from tfkip.kip.model import KIPModel
    from tfkip.progress import Progress
    from tfkip.train.distill import build_network
    from tfkip.train.strategy import get_strategy, set_precision_policy

    start = time.perf_counter()
    source = load_source(config)
    dataset = config.dataset or source.dataset
    if not dataset:
        raise ValueError(
            f"The set does not say which dataset it distils; pass --dataset (e.g. "
            f"--dataset=mnist_5k or a TFDS name). Received: dataset=None for {config.distilled!r}"
        )
    if source.dataset and dataset != source.dataset:
        logging.warning("Evaluating a set of %r on the test split of %r.", source.dataset, dataset)
    settings = _network_config(source, config, dataset)
    raw = load_dataset(dataset, data_dir=config.data_dir, download=config.download)
    _check_fits(source, raw)

    preprocess, description = source.preprocess, source.preprocessing
    if config.preprocessing != "auto" or preprocess is None:
        zca = source.recipe_zca if config.preprocessing == "auto" else config.preprocessing == "zca"
        if zca is None:
            raise ValueError(
                f"{config.distilled!r} carries no preprocessing metadata and its name does not "
                "say whether it was ZCA-whitened; pass --preprocessing=standardize or "
                "--preprocessing=zca. Received: preprocessing='auto'"
            )
        preprocess, description = _rebuild_preprocessing(raw, zca, config)
    count = raw.x_test.shape[0]
    if config.max_test_examples is not None:
        count = min(count, config.max_test_examples)
    dtype = np.float64 if settings.dtype == "float64" else np.float32
    x_test = np.asarray(preprocess(raw.x_test[:count]), dtype)
    y_test = centered_one_hot(raw.y_test[:count], raw.num_classes, dtype=dtype)

    strategy = get_strategy(config.strategy, config.tpu, config.num_cpu_devices)
    set_precision_policy(settings.dtype)
    network = build_network(settings, raw.num_classes)
    jit = config.jit_compile
    if jit is None:  # as the run compiled its evaluation
        jit = True
        if source.kind == "run" and settings.augment:
            jit = make_augmentation(settings.augmentations, settings.seed, settings.dtype)
            jit = jit.xla_compatible
    with strategy.scope():
        model = KIPModel(
            network,
            source.images,
            source.labels,
            kernel=settings.kernel,
            reg=settings.reg,
            kernel_batch_size=settings.kernel_batch_size,
            kernel_memory_budget=settings.kernel_memory_budget,
            dtype=settings.dtype,
            rf_models=settings.rf_models,
            rf_width=settings.rf_width,
            rf_seed=settings.rf_seed,
        )
    trainer = _trainer(model, strategy, raw.num_classes, raw.image_shape, jit)
    progress = Progress(count, "evaluation", unit="test images", quiet_for=5)
    metrics = trainer.evaluate(x_test, y_test, settings.eval_tile, progress.update)

    result = {
        **metrics,
        "kernel": settings.kernel,
        "reg": settings.reg,
        "dtype": settings.dtype,
        "network": {name: getattr(settings, name) for name in NETWORK_FIELDS},
        "preprocessing": description,
        "dataset": dataset,
        "test_examples": count,
        "support_size": int(source.images.shape[0]),
        "source": config.distilled,
        "source_kind": source.kind,
        "path": source.path,
        "reported": source.reported,
        "index": None,
    }
    if source.released is not None and config.lookup_index:
        try:
            result["index"] = _released.find_index_row(
                source.released, config.released_root, config.timeout
            )
        except (OSError, ValueError) as e:  # the index is optional: report, do not fail
            result["index_error"] = str(e)
            logging.warning("Released index not read: %s", e)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result
