"""One call from a dataset name to preprocessed arrays with centred labels."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfkip.data.preprocess import Preprocessor, centered_one_hot
from tfkip.data.sources import load_dataset

__all__ = ["PreparedData", "prepare"]


@dataclasses.dataclass(eq=False)
class PreparedData:
    """A dataset in the preprocessed space, ready for KIP.

    Attributes:
        x_train: preprocessed train images ``(N, H, W, C)``.
        y_train: centred one-hot train labels ``(N, K)`` (``1 - 1/K`` / ``-1/K``).
        labels_train: int64 train class ids ``(N,)``.
        x_test: preprocessed test images ``(M, H, W, C)``.
        y_test: centred one-hot test labels ``(M, K)``.
        labels_test: int64 test class ids ``(M,)``.
        num_classes: ``K``.
        image_shape: ``(H, W, C)``.
        preprocessor: the :class:`Preprocessor` fitted on the raw train images; apply it
            to any further raw images (preprocessing is per image once fitted, so drawing
            a support set from ``x_train`` equals preprocessing the raw draw).
        name: the dataset name.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray
    num_classes: int
    image_shape: tuple[int, int, int]
    preprocessor: Preprocessor
    name: str


def prepare(
    name: str,
    data_dir: str | None = None,
    zca: bool = False,
    zca_reg: float = 0.1,
    dtype=np.float64,
    download: bool = True,
) -> PreparedData:
    """``load_dataset`` + ``Preprocessor.fit`` on train + apply to both splits + labels.

    Args:
        name: dataset name, see :func:`tfkip.data.load_dataset`.
        data_dir: TFDS data directory.
        zca: whether to ZCA-whiten after standardising (spec §1.4).
        zca_reg: relative ZCA regulariser.
        dtype: float dtype of images and labels.
        download: whether TFDS may download missing data.

    >>> data = prepare("mnist_5k")
    >>> data.x_train.shape, data.y_train.shape
    ((4000, 28, 28, 1), (4000, 10))
    """
    raw = load_dataset(name, data_dir=data_dir, download=download)
    pre = Preprocessor.fit(raw.x_train, zca=zca, zca_reg=zca_reg)
    return PreparedData(
        x_train=pre(raw.x_train, dtype=dtype),
        y_train=centered_one_hot(raw.y_train, raw.num_classes, dtype=dtype),
        labels_train=raw.y_train,
        x_test=pre(raw.x_test, dtype=dtype),
        y_test=centered_one_hot(raw.y_test, raw.num_classes, dtype=dtype),
        labels_test=raw.y_test,
        num_classes=raw.num_classes,
        image_shape=raw.image_shape,
        preprocessor=pre,
        name=raw.name,
    )
