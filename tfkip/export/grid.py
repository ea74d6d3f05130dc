"""A PNG picture of a distilled support set: one row per class."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfkip import io as _io
from tfkip.export.metadata import DistilledMetadata


def minmax_per_image(images: np.ndarray) -> np.ndarray:
    """Scales each image to [0, 1] by its own min and max (constant images -> 0.5).

    Args:
        images: (N, H, W, C) float array.
    """
    x = np.asarray(images, dtype=np.float64)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)


def image_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: str | None = None,
    display_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    max_per_class: int = 10,
    padding: int = 1,
) -> np.ndarray:
    """Tiles a distilled set into a grid with one row per class.

    Row c shows the first ``max_per_class`` images whose class (argmax of the label)
    is c, in order; empty cells and the ``padding``-pixel borders are black. The grid
    has ``C * (H + padding) + padding`` rows and ``K * (W + padding) + padding``
    columns, with C = num_classes and K = min(max_per_class, largest class count).

    Args:
        images: (N, H, W, 1) grayscale or (N, H, W, 3) RGB images (any float range).
        labels: (N, num_classes) soft labels, or (N,) integer classes.
        path: if given, the PNG is written there atomically (``gs://`` works).
        display_fn: maps the (N, H, W, C) images to [0, 1] for viewing, e.g. undoing
            the standardisation; default :func:`minmax_per_image`. Results are clipped.
        max_per_class: most images shown per class (>= 1).
        padding: border width in pixels (>= 0).

    Returns:
        The grid as a (rows, cols, C) uint8 array (what the PNG holds).

    >>> image_grid(images, labels, "/tmp/support.png")  # doctest: +SKIP
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            "`images` must be (N, H, W, 1) or (N, H, W, 3) with N >= 1. "
            f"Received: images.shape={images.shape}"
        )
    if labels.ndim == 2 and labels.shape[0] == images.shape[0]:
        classes, num_classes = labels.argmax(axis=1), labels.shape[1]
    elif labels.ndim == 1 and labels.shape[0] == images.shape[0]:
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError(f"1-D `labels` must be class ids >= 0. Received: {labels.dtype}")
        classes, num_classes = labels, int(labels.max()) + 1
    else:
        raise ValueError(
            "`labels` must be (N, num_classes) or (N,) with N = len(images). "
            f"Received: labels.shape={labels.shape}, images.shape={images.shape}"
        )
    for name, value, low in (("max_per_class", max_per_class, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")

    shown = (display_fn or minmax_per_image)(images)
    shown = np.asarray(shown, dtype=np.float64)
    if shown.shape != images.shape:
        raise ValueError(
            f"`display_fn` must keep the images' shape {images.shape}. "
            f"Received: output shape={shown.shape}"
        )
    pixels = np.round(np.clip(np.nan_to_num(shown), 0.0, 1.0) * 255.0).astype(np.uint8)

    _, h, w, c = images.shape
    counts = np.bincount(classes, minlength=num_classes)
    cols = int(min(max_per_class, max(counts.max(), 1)))
    grid = np.zeros(
        (num_classes * (h + padding) + padding, cols * (w + padding) + padding, c), np.uint8
    )
    for cls in range(num_classes):
        for col, i in enumerate(np.flatnonzero(classes == cls)[:cols]):
            top, left = padding + cls * (h + padding), padding + col * (w + padding)
            grid[top : top + h, left : left + w] = pixels[i]
    if path is not None:
        _io.makedirs(_io.dirname(path))
        _io.atomic_write_bytes(path, tf.io.encode_png(grid).numpy())
    return grid


def display_fn_for(metadata: DistilledMetadata) -> Callable[[np.ndarray], np.ndarray]:
    """A ``display_fn`` for :func:`image_grid` that fits ``metadata``'s image space.

    Standardised (non-ZCA) images are un-normalised, ``x * std + mean``, which is
    ``raw / pixel_scale`` and so in [0, 1] for raw pixels in [0, pixel_scale].
    ZCA-whitened images (or sets without preprocessing metadata) are min-max scaled
    per image, since whitening cannot be undone for viewing.
    """
    prep = metadata.preprocessing
    if prep is None or prep["zca"]:
        return minmax_per_image
    mean, std = np.asarray(prep["mean"]), np.asarray(prep["std"])
    return lambda x: np.asarray(x, dtype=np.float64) * std + mean
