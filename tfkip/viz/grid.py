"""A readable PNG picture of a distilled support set: one row per named class."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfkip import files as _files
from tfkip.viz.font import GLYPH_HEIGHT, text_mask, text_width


def minmax_per_image(images: np.ndarray) -> np.ndarray:
    """Scales each image to [0, 1] by its own min and max (constant images -> 0.5).

    Args:
        images: (N, H, W, C) float array.
    """
    x = np.asarray(images, dtype=np.float64)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.5)


BACKGROUND = 255  # white borders, empty cells and label column; text is black
MIN_CELL_SIZE = 64  # small images are upscaled until their shorter side has this many px

CLASS_NAMES = {
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
    "fashion_mnist": (
        "t-shirt", "trouser", "pullover", "dress", "coat",
        "sandal", "shirt", "sneaker", "bag", "ankle boot",
    ),
}  # fmt: skip
"""Class names drawn by :func:`image_grid` for known datasets (others show class ids)."""


def class_names_for(dataset: str | None, num_classes: int) -> list[str]:
    """Row labels for ``dataset``: its :data:`CLASS_NAMES` if known, else ``"0", "1", ...``."""
    names = CLASS_NAMES.get(str(dataset or "").split(":")[0])
    if names is not None and len(names) == num_classes:
        return list(names)
    return [str(c) for c in range(num_classes)]


def _classes(labels: np.ndarray, n: int, what: str) -> tuple[np.ndarray, int]:
    if labels.ndim == 2 and labels.shape[0] == n:
        return labels.argmax(axis=1), labels.shape[1]
    if labels.ndim == 1 and labels.shape[0] == n:
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError(f"1-D `{what}` must be class ids >= 0. Received: {labels.dtype}")
        return labels, int(labels.max()) + 1
    raise ValueError(
        f"`{what}` must be (N, num_classes) or (N,) with N = len(images). "
        f"Received: {what}.shape={labels.shape}, images.shape=({n}, ...)"
    )


def _pixels(images: np.ndarray, display_fn) -> np.ndarray:
    shown = np.asarray((display_fn or minmax_per_image)(images), dtype=np.float64)
    if shown.shape != images.shape:
        raise ValueError(
            f"`display_fn` must keep the images' shape {images.shape}. "
            f"Received: output shape={shown.shape}"
        )
    return np.round(np.clip(np.nan_to_num(shown), 0.0, 1.0) * 255.0).astype(np.uint8)


def _panel(pixels, classes, num_classes, cols, scale, padding, channels) -> np.ndarray:
    """One grid of cells (no labels): row c holds class c's first ``cols`` images."""
    _, h, w, _ = pixels.shape
    h, w = h * scale, w * scale
    panel = np.full(
        (num_classes * (h + padding) + padding, cols * (w + padding) + padding, channels),
        BACKGROUND,
        np.uint8,
    )
    for cls in range(num_classes):
        for col, i in enumerate(np.flatnonzero(classes == cls)[:cols]):
            top, left = padding + cls * (h + padding), padding + col * (w + padding)
            cell = np.repeat(np.repeat(pixels[i], scale, axis=0), scale, axis=1)
            panel[top : top + h, left : left + w] = cell
    return panel


def _draw(canvas: np.ndarray, text: str, top: int, left: int, scale: int) -> None:
    mask = text_mask(text, scale)
    h, w = mask.shape
    h, w = min(h, canvas.shape[0] - top), min(w, canvas.shape[1] - left)
    if h > 0 and w > 0:
        canvas[top : top + h, left : left + w][mask[:h, :w]] = 0


def image_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: str | None = None,
    display_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    max_per_class: int = 10,
    padding: int = 1,
    *,
    natural: np.ndarray | None = None,
    natural_labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    labelled: bool = True,
    scale: int | None = None,
) -> np.ndarray:
    """Tiles a distilled set into a readable grid: one row per class, class named.

    Row c shows the first ``max_per_class`` images whose class (argmax of the label) is
    c, in order, each upscaled ``scale`` times by pixel repetition (nearest neighbour);
    empty cells and the ``padding``-pixel borders are white. With ``labelled`` a column
    on the left names each row's class (``class_names[c]``, default ``"c"``) in a built-in
    bitmap font. With ``natural`` (the natural start) two panels are drawn side by side,
    titled "natural start" and "distilled", sharing the rows.

    Without labels and ``natural``, the grid has ``C * (s*H + padding) + padding`` rows and
    ``K * (s*W + padding) + padding`` columns, C = num_classes, s = ``scale``,
    K = min(max_per_class, largest class count).

    Args:
        images: (N, H, W, 1) grayscale or (N, H, W, 3) RGB images (any float range).
        labels: (N, num_classes) soft labels, or (N,) integer classes.
        path: if given, the PNG is written there atomically (``gs://`` works).
        display_fn: maps (n, H, W, C) images to [0, 1] for viewing, e.g. undoing the
            standardisation; default :func:`minmax_per_image`. Results are clipped.
        max_per_class: most images shown per class (>= 1).
        padding: border width in pixels (>= 0).
        natural: optional (M, H, W, C) natural starting images, drawn on the left.
        natural_labels: their labels (default ``labels``; pass the starting labels when
            labels were learned).
        class_names: one name per class for the row labels.
        labelled: draw the class-name column (and panel titles).
        scale: integer upscaling factor; default the smallest with ``min(s*H, s*W) >=
            MIN_CELL_SIZE`` (64), 1 for images that are already that large.

    Returns:
        The grid as a (rows, cols, C) uint8 array (what the PNG holds).

    >>> image_grid(images, labels, "/tmp/support.png", natural=start)  # doctest: +SKIP
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            "`images` must be (N, H, W, 1) or (N, H, W, 3) with N >= 1. "
            f"Received: images.shape={images.shape}"
        )
    classes, num_classes = _classes(labels, images.shape[0], "labels")
    for name, value, low in (("max_per_class", max_per_class, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}. Received: {name}={value!r}")
    _, h, w, c = images.shape
    if scale is None:
        scale = max(1, -(-MIN_CELL_SIZE // min(h, w)))
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"`scale` must be an int >= 1 or None. Received: scale={scale!r}")
    panels = [(images, classes, "distilled")]
    if natural is not None:
        natural = np.asarray(natural)
        if natural.ndim != 4 or natural.shape[1:] != images.shape[1:]:
            raise ValueError(
                f"`natural` must have the images' shape (M, {h}, {w}, {c}). "
                f"Received: natural.shape={natural.shape}"
            )
        start = labels if natural_labels is None else np.asarray(natural_labels)
        natural_classes, k = _classes(start, natural.shape[0], "natural_labels")
        num_classes = max(num_classes, k)
        panels.insert(0, (natural, natural_classes, "natural start"))
    if class_names is None:
        class_names = [str(k) for k in range(num_classes)]
    if len(class_names) < num_classes:
        raise ValueError(
            f"`class_names` needs one name per class ({num_classes}). "
            f"Received: {len(class_names)} names"
        )

    counts = max(int(np.bincount(cl, minlength=num_classes).max()) for _, cl, _ in panels)
    cols = int(min(max_per_class, max(counts, 1)))
    drawn = [
        _panel(_pixels(x, display_fn), cl, num_classes, cols, scale, padding, c)
        for x, cl, _ in panels
    ]
    if not labelled:
        gap = np.full((drawn[0].shape[0], 4 * max(padding, 1), c), BACKGROUND, np.uint8)
        return _write(np.concatenate(_interleave(drawn, gap), axis=1), path)

    text_scale = 2 if h * scale >= 40 else 1
    margin = 3 * text_scale
    if natural is not None:  # each panel at least as wide as its title
        drawn = [
            _pad_width(p, text_width(t, text_scale) + padding) for p, (*_, t) in zip(drawn, panels)
        ]
    names = [str(class_names[k]) for k in range(num_classes)]
    label_w = max(text_width(n, text_scale) for n in names) + 2 * margin
    title_h = (GLYPH_HEIGHT + 4) * text_scale if natural is not None else 0
    gap = np.full((drawn[0].shape[0], 4 * margin, c), BACKGROUND, np.uint8)
    body = np.concatenate(_interleave(drawn, gap), axis=1)
    grid = np.full((title_h + body.shape[0], label_w + body.shape[1], c), BACKGROUND, np.uint8)
    grid[title_h:, label_w:] = body
    cell_h = h * scale + padding
    for k, name in enumerate(names):
        top = title_h + padding + k * cell_h + (h * scale - GLYPH_HEIGHT * text_scale) // 2
        _draw(grid, name, top, margin, text_scale)
    left = label_w
    for panel, (_, _, title) in zip(drawn, panels):
        if title_h:
            _draw(grid, title, 2 * text_scale, left + padding, text_scale)
        left += panel.shape[1] + gap.shape[1]
    return _write(grid, path)


def _pad_width(panel: np.ndarray, width: int) -> np.ndarray:
    extra = width - panel.shape[1]
    if extra <= 0:
        return panel
    fill = np.full((panel.shape[0], extra, panel.shape[2]), BACKGROUND, np.uint8)
    return np.concatenate([panel, fill], axis=1)


def _interleave(panels: list[np.ndarray], gap: np.ndarray) -> list[np.ndarray]:
    out = []
    for i, panel in enumerate(panels):
        out.extend([gap, panel] if i else [panel])
    return out


def _write(grid: np.ndarray, path: str | None) -> np.ndarray:
    if path is not None:
        _files.makedirs(_files.dirname(path))
        _files.atomic_write_bytes(path, tf.io.encode_png(grid).numpy())
    return grid


def display_fn_for(metadata) -> Callable[[np.ndarray], np.ndarray]:
    """A ``display_fn`` for :func:`image_grid` that fits the image space of ``metadata``
    (a `tfkip.sets.DistilledMetadata`, or anything with its ``preprocessing`` dict).

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
