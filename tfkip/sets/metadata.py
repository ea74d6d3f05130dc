"""``DistilledMetadata``: what a released distilled set needs to be used correctly.

The released KIP ``.npz`` files (spec §5) hold only ``images`` and ``labels``; the
images live in the *preprocessed* space of the run that made them (spec §4:
standardised, and layer-normed + ZCA-whitened for ``zca`` files). This record carries
everything needed to map raw test images into that space and to name/catalogue the
set, and travels next to every export as a JSON sidecar.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from tfkip.checks import (
    check_bool,
    check_float_dtype,
    check_optional_float,
    check_shape,
    is_int,
)

FORMAT_VERSION = 1
LABEL_CENTERINGS = ("centered_one_hot", "one_hot", "none")
PREPROCESSING_KEYS = ("pixel_scale", "mean", "std", "zca", "zca_reg", "image_shape")


def normalize_preprocessing(
    preprocessing: dict[str, Any], image_shape: tuple[int, int, int] | None = None
) -> dict[str, Any]:
    """Validates a preprocessing dict and returns it with plain-JSON values.

    Args:
        preprocessing: ``{"pixel_scale": float, "mean": [C], "std": [C], "zca": bool,
            "zca_reg": float, "image_shape": [H, W, C]}``. Extra keys are kept.
        image_shape: if given, ``preprocessing["image_shape"]`` must equal it.

    Raises:
        ValueError: for a missing key or an inconsistent value.
    """
    if not isinstance(preprocessing, dict):
        raise TypeError(f"`preprocessing` must be a dict. Received: {preprocessing!r}")
    missing = [k for k in PREPROCESSING_KEYS if k not in preprocessing]
    if missing:
        raise ValueError(
            f"`preprocessing` is missing keys {missing}; it needs {list(PREPROCESSING_KEYS)}. "
            f"Received: preprocessing keys={sorted(preprocessing)}"
        )
    out = dict(preprocessing)
    shape = check_shape("preprocessing['image_shape']", list(np.asarray(out["image_shape"])))
    if image_shape is not None and tuple(shape) != tuple(image_shape):
        raise ValueError(
            f"preprocessing['image_shape'] must equal the images' shape {list(image_shape)}. "
            f"Received: preprocessing['image_shape']={list(shape)}"
        )
    out["image_shape"] = list(shape)
    for key in ("mean", "std"):
        arr = np.atleast_1d(np.asarray(out[key], dtype=np.float64)).ravel()
        if arr.size not in (1, shape[-1]):
            raise ValueError(
                f"preprocessing[{key!r}] must have 1 or {shape[-1]} (channels) entries. "
                f"Received: preprocessing[{key!r}]={out[key]!r}"
            )
        out[key] = [float(v) for v in arr]
    if any(s <= 0 for s in out["std"]):
        raise ValueError(f"preprocessing['std'] must be positive. Received: {out['std']}")
    out["pixel_scale"] = float(np.asarray(out["pixel_scale"]))
    if out["pixel_scale"] <= 0:
        raise ValueError(
            f"preprocessing['pixel_scale'] must be positive. Received: {out['pixel_scale']}"
        )
    out["zca_reg"] = float(np.asarray(out["zca_reg"]))
    out["zca"] = check_bool("preprocessing['zca']", bool(np.asarray(out["zca"])))
    return out


@dataclasses.dataclass(frozen=True)
class DistilledMetadata:
    """Description of a distilled (KIP or Label-Solve) support set.

    Attributes:
        dataset: TFDS name of the source dataset, e.g. ``"cifar10"``.
        architecture: kernel architecture name, e.g. ``"ConvNet"`` or ``"FC"``.
        support_size: number N of distilled images.
        num_classes: number C of classes (label vector length).
        image_shape: ``(H, W, C_img)`` of one image.
        dtype: numpy name of the images' dtype (``"float32"`` or ``"float64"``).
        kernel: ``"ntk"`` or ``"nngp"``.
        split: source split the support was distilled from.
        depth: network depth if the architecture takes one.
        step: KIP step of the checkpoint (the ``ckpt`` of KIP names; 0 = init / LS).
        learned_labels: whether labels were learned (``l``) or fixed (``nol``).
        augment: whether augmentation was used (``aug``).
        zca: whether images were ZCA-whitened.
        test_accuracy, test_mse: KRR test metrics of this checkpoint, if known.
        preprocessing: raw-to-distilled mapping, see :func:`normalize_preprocessing`.
        zca_matrix_file: file holding the (d, d) ZCA matrix, d = H*W*C_img. In memory
            a usable path; in a sidecar on disk, relative to the sidecar's folder.
        label_centering: ``"centered_one_hot"`` (1 - 1/C, -1/C), ``"one_hot"``,
            or ``"none"``.
        run_config: the full ``config.json`` of the run, when known.
        format_version: version of this record's layout.

    >>> m = DistilledMetadata("cifar10", "ConvNet", 10, 10, (32, 32, 3))
    >>> DistilledMetadata.from_json(m.to_json()) == m
    True
    """

    dataset: str
    architecture: str
    support_size: int
    num_classes: int
    image_shape: tuple[int, int, int]
    dtype: str = "float32"
    kernel: str = "ntk"
    split: str = "train"
    depth: int | None = None
    step: int = 0
    learned_labels: bool = False
    augment: bool = False
    zca: bool = False
    test_accuracy: float | None = None
    test_mse: float | None = None
    preprocessing: dict[str, Any] | None = None
    zca_matrix_file: str | None = None
    label_centering: str = "centered_one_hot"
    run_config: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("dataset", "architecture", "kernel", "split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{name}` must be a non-empty str. Received: {name}={value!r}")
        for name in ("support_size", "num_classes"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
            put(name, int(value))
        if not is_int(self.step) or self.step < 0:
            raise ValueError(f"`step` must be an int >= 0. Received: step={self.step!r}")
        put("step", int(self.step))
        if self.depth is not None:
            if not is_int(self.depth) or self.depth < 0:
                raise ValueError(f"`depth` must be an int >= 0. Received: depth={self.depth!r}")
            put("depth", int(self.depth))
        put("image_shape", check_shape("image_shape", self.image_shape))
        put("dtype", check_float_dtype("dtype", self.dtype))
        for name in ("learned_labels", "augment", "zca"):
            put(name, check_bool(name, getattr(self, name)))
        for name in ("test_accuracy", "test_mse"):
            put(name, check_optional_float(name, getattr(self, name)))
        if self.label_centering not in LABEL_CENTERINGS:
            raise ValueError(
                f"`label_centering` must be one of {LABEL_CENTERINGS}. "
                f"Received: label_centering={self.label_centering!r}"
            )
        if self.preprocessing is not None:
            prep = normalize_preprocessing(self.preprocessing, self.image_shape)
            if prep["zca"] != self.zca:
                raise ValueError(
                    f"preprocessing['zca'] must equal `zca`={self.zca}. "
                    f"Received: preprocessing['zca']={prep['zca']}"
                )
            put("preprocessing", prep)
        if self.zca_matrix_file is not None and not isinstance(self.zca_matrix_file, str):
            raise ValueError(
                f"`zca_matrix_file` must be a str or None. "
                f"Received: zca_matrix_file={self.zca_matrix_file!r}"
            )
        if self.run_config is not None and not isinstance(self.run_config, dict):
            raise ValueError(f"`run_config` must be a dict. Received: {self.run_config!r}")
        if not is_int(self.format_version) or not 1 <= self.format_version <= FORMAT_VERSION:
            raise ValueError(
                f"`format_version` must be between 1 and {FORMAT_VERSION}; files written by a "
                f"newer tfkip need a newer tfkip. Received: format_version={self.format_version!r}"
            )

    # -- (de)serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["image_shape"] = list(self.image_shape)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The metadata as a JSON string (keys sorted)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistilledMetadata:
        """Builds metadata from :meth:`to_dict` output.

        Raises:
            ValueError: for unknown or missing fields, or invalid values.
            TypeError: for values of the wrong type.
        """
        if not isinstance(data, dict):
            raise TypeError(f"Metadata must be a dict (JSON object). Received: {data!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(
                f"Unknown metadata fields {unknown}; known fields are {sorted(fields)}. "
                f"Received: keys={sorted(data)}"
            )
        required = [
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(
                f"Metadata is missing required fields {missing}. Received: keys={sorted(data)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> DistilledMetadata:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"Metadata is not valid JSON ({e}). Received: {text[:200]!r}") from e
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> DistilledMetadata:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- helpers -----------------------------------------------------------------------

    @classmethod
    def infer(cls, images: np.ndarray, labels: np.ndarray, **fields: Any) -> DistilledMetadata:
        """Minimal metadata from arrays; ``fields`` override (``dataset`` and
        ``architecture`` default to ``"unknown"``).

        Args:
            images: (N, H, W, C_img) float array.
            labels: (N, C) float array.
        """
        check_arrays(images, labels)
        base = {
            "dataset": "unknown",
            "architecture": "unknown",
            "support_size": images.shape[0],
            "num_classes": labels.shape[1],
            "image_shape": images.shape[1:],
            "dtype": images.dtype.name,
        }
        base.update(fields)
        return cls(**base)

    def check_arrays(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Raises ValueError unless (images, labels) match this metadata."""
        check_arrays(images, labels)
        expected_images = (self.support_size, *self.image_shape)
        if images.shape != expected_images or images.dtype.name != self.dtype:
            raise ValueError(
                f"`images` must have shape {expected_images} and dtype {self.dtype} as the "
                f"metadata says. Received: images.shape={images.shape}, "
                f"images.dtype={images.dtype.name}"
            )
        if labels.shape != (self.support_size, self.num_classes):
            raise ValueError(
                f"`labels` must have shape {(self.support_size, self.num_classes)} as the "
                f"metadata says. Received: labels.shape={labels.shape}"
            )


def check_arrays(images: Any, labels: Any) -> None:
    """Checks images are (N, H, W, C) float and labels (N, C) float with equal N."""
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(
            "`images` must be a 4-D (N, H, W, C) numpy array. "
            f"Received: images.shape={getattr(images, 'shape', type(images))}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"`images` must be floating. Received: images.dtype={images.dtype}")
    if not isinstance(labels, np.ndarray) or labels.ndim != 2:
        raise ValueError(
            "`labels` must be a 2-D (N, num_classes) numpy array. "
            f"Received: labels.shape={getattr(labels, 'shape', type(labels))}"
        )
    if not np.issubdtype(labels.dtype, np.floating):
        raise ValueError(f"`labels` must be floating. Received: labels.dtype={labels.dtype}")
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(
            "`images` and `labels` must have the same, non-zero, number of rows. "
            f"Received: images.shape={images.shape}, labels.shape={labels.shape}"
        )
