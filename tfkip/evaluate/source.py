"""Loading a set to evaluate (run, export, published set) with its preprocessing and
the settings of its kernel network."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import architectures
from tfkip import files as _files
from tfkip.data.preprocess import Preprocessor
from tfkip.evaluate.config import NETWORK_FIELDS, NN_TRAINING_HOLDOUT, EvaluateConfig, exact_kernel
from tfkip.sets import preprocessing as _prep
from tfkip.sets import released as _released
from tfkip.sets.load import last_metrics, load_run
from tfkip.sets.npz import parse_kip_filename, read_kip_npz
from tfkip.sets.tfds import load_tfds, load_tfds_metadata
from tfkip.train.config import DistillConfig
from tfkip.train.validation import BEST_DIR


@dataclasses.dataclass
class Source:
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

    known = {f.name for f in dataclasses.fields(DistillConfig)}
    return {k: v for k, v in (run_config or {}).items() if k in known}


def _load_released(config: EvaluateConfig) -> Source:
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
    return Source(
        images, labels, "released", path, ref.dataset, settings, recipe_zca=ref.zca, released=ref
    )


def _tfds_export(path: str, timeout: float) -> tuple[str, str, str] | None:
    """``(name, data_dir, version)`` if ``path`` is a TFDS export's version folder."""
    if "://" not in path and not path.startswith("/"):
        path = _files.join(".", path)
    info = _files.join(path, "dataset_info.json")
    if not _released.gfile_call(lambda: tf.io.gfile.exists(info), info, timeout):
        return None
    version = _files.basename(path.rstrip("/"))
    dataset_dir = _files.dirname(path.rstrip("/"))
    return _files.basename(dataset_dir), _files.dirname(dataset_dir), version


def load_source(config: EvaluateConfig) -> Source:
    """Loads ``config.distilled`` (any accepted form) with what it says about itself.

    Raises:
      ValueError: the path is not a distilled set, or a released name does not parse.
      FileNotFoundError, UnreachablePathError: the path cannot be read.
    """

    source = config.distilled
    if config.which == "best":
        source = best_folder(source, config.timeout)
    if _released.is_released(source):
        return _load_released(config)
    tfds_parts = _tfds_export(source, config.timeout)
    if tfds_parts is not None:
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
    out = Source(images, labels, kind, source, dataset, settings)
    if kind == "run":
        prep_path = _files.join(source, "preprocessing.npz")
        if tf.io.gfile.exists(prep_path):
            pre = Preprocessor.load(prep_path)
            out.preprocess = pre
            out.preprocessing = {**pre.get_config(), "from": prep_path}
        metrics_path = _files.join(source, "metrics.jsonl")
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


def best_folder(source: str, timeout: float = 60.0) -> str:
    """``source/best``, the best set of a run folder with validation (which="best")."""
    best = _files.join(source, BEST_DIR)
    exists = _released.gfile_call(lambda: tf.io.gfile.exists(best), best, timeout)
    if _released.is_released(source) or not exists:
        raise ValueError(
            f"which='best' needs a run folder distilled with validation (--validation_size "
            f"> 0), which keeps its best set in {BEST_DIR}/; {best!r} does not exist. "
            f"Received: distilled={source!r}, which='best'"
        )
    return best


def _default_depth(architecture: str) -> int:

    return architectures.DEFAULT_DEPTH[architecture]


def _architectures() -> tuple[str, ...]:

    return architectures.NAMES


def rebuild_preprocessing(raw, zca: bool, config: EvaluateConfig):
    """nn_training's preprocessing fitted on ``raw``'s train split (see module docstring)."""

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


def check_fits(source: Source, raw) -> None:
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


def network_config(source: Source, config: EvaluateConfig, dataset: str):

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
    values["kernel"] = exact_kernel(values.get("kernel", "ntk"))
    values.update(dataset=dataset, steps=0, strategy=config.strategy, tpu=config.tpu)
    values["num_cpu_devices"] = config.num_cpu_devices
    return DistillConfig.from_dict(values)
