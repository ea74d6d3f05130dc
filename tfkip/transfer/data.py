"""A distilled set plus the real test split in the same preprocessed space, checked.

The distilled images of a KIP run live in that run's preprocessed space (standardised,
and ZCA-whitened if the run used ZCA; spec §4 "Data"). The test split is prepared again
with `tfkip.data.prepare` from the run's ``config.json`` settings and the two are
compared; every mismatch (image shape, label width, preprocessing statistics or the
ZCA flag / matrix) is refused with a ValueError that names the values and the fix.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from absl import logging

from tfkip import data as tfkip_data
from tfkip.sets import DistilledMetadata, load_run, load_zca_matrix

_RTOL = 1e-5


@dataclasses.dataclass(frozen=True, eq=False)
class TransferData:
    """Training images, test split and the run's settings.

    Attributes:
      images: ``(N, H, W, C)`` float32 distilled images (preprocessed space).
      labels: ``(N, K)`` float32 labels as stored (centred one-hot or learned).
      prepared: the `tfkip.data.PreparedData` of the dataset (test split, the natural
        train images for baselines, the preprocessor).
      metadata: the distilled set's `tfkip.sets.DistilledMetadata`.
      run_config: the run's ``config.json`` ({} for a bare ``.npz``).
    """

    images: np.ndarray
    labels: np.ndarray
    prepared: tfkip_data.PreparedData
    metadata: DistilledMetadata
    run_config: dict[str, Any]

    def ntk_inputs(self, n: int = 50) -> np.ndarray:
        """The last ``n`` train images, for the learning-rate estimate.

        The reference uses the first 50 images of its validation split (train images
        held out from training). Only the images enter the estimate, never labels.
        """
        return self.prepared.x_train[-n:]


def load_transfer_data(
    distilled: str, dataset: str | None = None, data_dir: str | None = None
) -> TransferData:
    """Loads a distilled set and prepares its dataset's test split in the same space.

    Args:
      distilled: a distill workdir (``distilled.npz`` + ``config.json`` + ...) or an
        ``.npz`` with ``images`` / ``labels``.
      dataset: dataset name (`tfkip.data.load_dataset`); default: the run's.
      data_dir: TFDS data directory; default: the run's ``data_dir``.

    Raises:
      ValueError: no dataset known; images / labels / preprocessing that do not match
        the dataset (see `check_compatible`).
    """
    images, labels, metadata = load_run(distilled)
    run_config = dict(metadata.run_config or {})
    if dataset is None:
        dataset = run_config.get("dataset") or (
            None if metadata.dataset == "unknown" else metadata.dataset
        )
    if dataset is None:
        raise ValueError(
            f"The dataset of {distilled!r} is unknown (a bare .npz without a sidecar); pass "
            "it with --dataset / dataset=. Received: dataset=None"
        )
    if data_dir is None:
        data_dir = run_config.get("data_dir")
    prep = metadata.preprocessing or {}
    zca = bool(metadata.zca or prep.get("zca", False))
    zca_reg = float(prep.get("zca_reg") or run_config.get("zca_reg", 0.1) or 0.1)
    _check_image_shape(images, dataset, None)
    prepared = tfkip_data.prepare(
        dataset, data_dir=data_dir, zca=zca, zca_reg=zca_reg, dtype=np.float32
    )
    zca_matrix = None
    if zca and metadata.zca_matrix_file:
        zca_matrix = load_zca_matrix(metadata.zca_matrix_file)
    check_compatible(images, labels, prepared, metadata.preprocessing, zca_matrix)
    return TransferData(
        images=np.asarray(images, np.float32),
        labels=np.asarray(labels, np.float32),
        prepared=prepared,
        metadata=metadata,
        run_config=run_config,
    )


def check_compatible(
    images: np.ndarray,
    labels: np.ndarray,
    prepared: tfkip_data.PreparedData,
    preprocessing: dict[str, Any] | None,
    zca_matrix: np.ndarray | None = None,
) -> None:
    """Raises ValueError unless the distilled set lives in ``prepared``'s space.

    Checks the image shape ``(H, W, C)``, the label width (the class count), and, when
    the run recorded its preprocessing, ``zca``, ``pixel_scale``, per-channel ``mean`` /
    ``std`` (relative tolerance 1e-5), ``zca_reg`` and the ZCA matrix.
    """
    _check_image_shape(images, prepared.name, prepared.image_shape)
    if labels.ndim != 2 or labels.shape[1] != prepared.num_classes:
        raise ValueError(
            f"The distilled labels must have one column per class of {prepared.name!r} "
            f"({prepared.num_classes}). Received: labels.shape={labels.shape}. Use the "
            "dataset the set was distilled from."
        )
    if preprocessing is None:
        logging.warning(
            "The distilled set records no preprocessing; cannot verify that its images are "
            "in the space of %r as prepared now (zca=%s).",
            prepared.name,
            prepared.preprocessor.zca,
        )
        return
    now = prepared.preprocessor.get_config()
    hint = (
        "The distilled images were preprocessed differently from the test split prepared "
        f"now from {prepared.name!r}; pass the --dataset / --data_dir (and ZCA setting) "
        "of the distillation run."
    )
    if bool(preprocessing["zca"]) != bool(now["zca"]):
        raise ValueError(
            f"{hint} Received: run zca={preprocessing['zca']}, prepared zca={now['zca']}"
        )
    for key in ("pixel_scale", "mean", "std") + (("zca_reg",) if now["zca"] else ()):
        ran, got = np.atleast_1d(preprocessing[key]), np.atleast_1d(now[key])
        if ran.shape != got.shape or not np.allclose(ran, got, rtol=_RTOL, atol=1e-8):
            raise ValueError(
                f"{hint} Received: run {key}={ran.tolist()}, prepared {key}={got.tolist()}"
            )
    if zca_matrix is not None and prepared.preprocessor.zca_matrix is not None:
        mine = prepared.preprocessor.zca_matrix
        scale = float(np.max(np.abs(mine)))
        if zca_matrix.shape != mine.shape or not np.allclose(
            zca_matrix, mine, rtol=1e-4, atol=1e-6 * scale
        ):
            raise ValueError(
                f"{hint} Received: the run's ZCA matrix differs from the one fitted now "
                f"(max abs difference {float(np.max(np.abs(zca_matrix - mine))):.3g})."
            )


def _check_image_shape(images: np.ndarray, dataset: str, image_shape) -> None:
    if images.ndim != 4:
        raise ValueError(
            f"Distilled images must be NHWC (N, H, W, C). Received: images.shape={images.shape}"
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"The distilled images have shape {tuple(images.shape[1:])} but {dataset!r} has "
            f"images of shape {tuple(image_shape)}. Use the dataset the set was distilled "
            f"from. Received: images.shape={images.shape}"
        )
