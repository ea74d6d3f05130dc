"""Reading a distillation result: a run's workdir or a bare ``.npz``.

A distill workdir holds ``distilled.npz`` (``images`` (N, H, W, C), ``labels`` (N, C)),
``config.json`` (the run's settings, including a ``preprocessing`` dict),
``preprocessing.npz`` (``mean``, ``std``, ``pixel_scale``, ``zca_reg``, ``image_shape``
and ``zca_matrix`` when ZCA is on) and ``metrics.jsonl`` (one JSON per evaluation with
``step``, ``test_accuracy``, ``test_mse``, ``train_loss``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf

from tfkip import files as _files
from tfkip.sets import sidecar as _sidecar
from tfkip.sets.metadata import DistilledMetadata, normalize_preprocessing
from tfkip.sets.npz import KNOWN_DATASETS, NPZ_FORMAT, parse_kip_filename, read_kip_npz
from tfkip.sets.preprocessing import read_preprocessing

DISTILLED_FILE = "distilled.npz"
CONFIG_FILE = "config.json"
PREPROCESSING_FILE = "preprocessing.npz"
METRICS_FILE = "metrics.jsonl"


def _read_json_object(path: str) -> dict[str, Any]:
    try:
        data = json.loads(_files.read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path!r} is not valid JSON ({e}).") from e
    if isinstance(data, dict):
        return data
    raise ValueError(f"{path!r} must hold a JSON object. Received: {data!r}")


def last_metrics(path: str) -> dict[str, Any]:
    """The last JSON line of a ``metrics.jsonl`` file ({} if it has none)."""
    lines = [ln for ln in _files.read_bytes(path).decode("utf-8").splitlines() if ln.strip()]
    if not lines:
        return {}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise ValueError(f"The last line of {path!r} is not valid JSON ({e}).") from e


def _load_workdir(workdir: str) -> tuple[np.ndarray, np.ndarray, DistilledMetadata]:
    npz_path = _files.join(workdir, DISTILLED_FILE)
    config_path = _files.join(workdir, CONFIG_FILE)
    for path in (npz_path, config_path):
        if not tf.io.gfile.exists(path):
            raise ValueError(
                f"{workdir!r} is not a distillation workdir: {_files.basename(path)} is missing. "
                f"Received: path={workdir!r}"
            )
    images, labels = read_kip_npz(npz_path)
    config = _read_json_object(config_path)
    missing = [k for k in ("dataset", "architecture") if k not in config]
    if missing:
        raise ValueError(f"{config_path!r} lacks the settings {missing}.")

    preprocessing, zca_file = config.get("preprocessing"), None
    prep_path = _files.join(workdir, PREPROCESSING_FILE)
    if tf.io.gfile.exists(prep_path):
        from_file, zca_matrix = read_preprocessing(prep_path)
        preprocessing = {**(preprocessing or {}), **from_file}
        zca_file = prep_path if zca_matrix is not None else None
    zca = bool(config.get("zca", (preprocessing or {}).get("zca", False)))
    if preprocessing is not None:
        preprocessing = normalize_preprocessing({**preprocessing, "zca": zca})

    metrics_path = _files.join(workdir, METRICS_FILE)
    metrics = last_metrics(metrics_path) if tf.io.gfile.exists(metrics_path) else {}
    metadata = DistilledMetadata.infer(
        images,
        labels,
        dataset=str(config["dataset"]),
        architecture=str(config["architecture"]),
        kernel=str(config.get("kernel", "ntk")),
        split=str(config.get("split", "train")),
        depth=config.get("depth"),
        step=int(metrics.get("step", config.get("steps", 0))),
        learned_labels=bool(config.get("learn_labels", False)),
        augment=bool(config.get("augment", False)),
        zca=zca,
        test_accuracy=metrics.get("test_accuracy"),
        test_mse=metrics.get("test_mse"),
        preprocessing=preprocessing,
        zca_matrix_file=zca_file,
        label_centering=str(config.get("label_centering", "centered_one_hot")),
        run_config=config,
    )
    return images, labels, metadata


def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray, DistilledMetadata]:
    images, labels = read_kip_npz(path)
    side = _sidecar.sidecar_path(path)
    if tf.io.gfile.exists(side):
        doc, metadata = _sidecar.read_sidecar(side, NPZ_FORMAT)
        if _sidecar.array_checksum(images, labels) != doc.get("checksum", {}).get("sha256"):
            raise ValueError(
                f"{path!r} does not match the checksum in its sidecar: the file or the "
                "sidecar was modified or corrupted."
            )
        metadata.check_arrays(images, labels)
        return images, labels, metadata
    fields: dict[str, Any] = {}
    try:
        parsed = parse_kip_filename(path)
    except ValueError:
        parsed = None
    if parsed is not None and parsed["ssize"] == images.shape[0]:
        parent = _files.basename(_files.dirname(path))
        fields = {
            "architecture": parsed["architecture"] or "unknown",
            "step": parsed["ckpt"],
            "zca": parsed["zca"],
            "learned_labels": parsed["l"],
            "augment": bool(parsed["aug"]),
            "dataset": parent if parent in KNOWN_DATASETS else "unknown",
        }
    return images, labels, DistilledMetadata.infer(images, labels, **fields)


def load_run(path: str) -> tuple[np.ndarray, np.ndarray, DistilledMetadata]:
    """Loads a distilled set and its metadata from a workdir or a bare ``.npz``.

    * A workdir: ``distilled.npz`` + ``config.json`` (required), ``preprocessing.npz``
      (mean/std/ZCA matrix; its ZCA matrix is referenced, not copied) and the last line
      of ``metrics.jsonl`` (``step``, ``test_accuracy``, ``test_mse``).
    * An ``.npz`` with a tfkip sidecar ``{path}.json``: metadata from it (checksum checked).
    * A TFRecord export (`write_tfrecord`; its sidecar ``{path}.json`` is required):
      records and metadata, checksum checked.
    * Any other ``.npz``: metadata from its KIP-style file name if it has one (dataset
      from a parent folder named like a TFDS dataset), else minimal
      (``dataset="unknown"``, ``architecture="unknown"``, no preprocessing).

    Returns:
        ``(images (N, H, W, C), labels (N, num_classes), metadata)``.

    >>> images, labels, metadata = load_run("/tmp/kip_run")  # doctest: +SKIP
    """
    if tf.io.gfile.isdir(path):
        return _load_workdir(path)
    if not path.endswith(".npz") and tf.io.gfile.exists(path + ".json"):
        from tfkip.sets.tfrecord import read_tfrecord_arrays

        return read_tfrecord_arrays(path)
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"Expected a distillation workdir or an .npz file. Received: path={path!r} "
            "(does not exist)"
        )
    return _load_npz(path)
