"""A small line plot written as PNG with NumPy and TensorFlow's PNG encoder (the
benchmarks need no plotting library): axes with tick labels in tfkip's built-in 5x7
font, one coloured polyline per series, a square marker per point, and a legend."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfkip import files as _files
from tfkip.viz.font import GLYPH_HEIGHT, text_mask, text_width

COLOURS = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (23, 190, 207),
    (140, 86, 75),
]
WIDTH, HEIGHT = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 60  # margins around the plotting area


def _text(canvas, text, top, left, colour=(0, 0, 0), scale=1):
    mask = text_mask(text, scale)
    h = min(mask.shape[0], canvas.shape[0] - top)
    w = min(mask.shape[1], canvas.shape[1] - left)
    if h > 0 and w > 0 and top >= 0 and left >= 0:
        canvas[top : top + h, left : left + w][mask[:h, :w]] = colour


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    span = max(hi - lo, 1e-12)
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw), default=power)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _segment(canvas, p, q, colour, thickness=2):
    n = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) + 1
    rows = np.linspace(p[0], q[0], n).round().astype(int)
    cols = np.linspace(p[1], q[1], n).round().astype(int)
    for dr in range(thickness):
        for dc in range(thickness):
            r = np.clip(rows + dr, 0, canvas.shape[0] - 1)
            c = np.clip(cols + dc, 0, canvas.shape[1] - 1)
            canvas[r, c] = colour


def _marker(canvas, p, colour, half=4):
    r, c = int(round(p[0])), int(round(p[1]))
    canvas[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1] = colour


def line_plot(series, path: str | None, title: str, xlabel: str, ylabel: str) -> np.ndarray:
    """Draws ``series`` and writes the PNG to ``path`` (if given); returns the pixels.

    Args:
      series: ``(name, xs, ys)`` triples; one x drawn as a marker, more as a line with
        a marker on every point.
      title, xlabel, ylabel: texts (upper-cased by the font).

    Returns:
      The uint8 image ``(HEIGHT, WIDTH, 3)``.
    """
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    xs = [x for _, sx, _ in series for x in sx]
    ys = [y for _, _, sy in series for y in sy]
    if not xs:
        raise ValueError(f"Nothing to plot. Received: series={series!r}")
    x_hi = max(xs) * 1.05 or 1.0
    y_lo, y_hi = math.floor(min(ys) * 20) / 20, math.ceil(max(ys) * 20) / 20
    if y_hi <= y_lo:
        y_lo, y_hi = y_lo - 0.05, y_hi + 0.05
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def at(x, y):
        return (
            bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - TOP),
            LEFT + x / x_hi * (right - LEFT),
        )

    grey = (225, 225, 225)
    for x in _ticks(0.0, x_hi):
        col = int(round(at(x, y_lo)[1]))
        canvas[TOP:bottom, col] = grey
        label = _label(x)
        _text(canvas, label, bottom + 6, col - text_width(label) // 2)
    for y in _ticks(y_lo, y_hi):
        row = int(round(at(0.0, y)[0]))
        canvas[row, LEFT:right] = grey
        label = _label(y)
        _text(canvas, label, row - GLYPH_HEIGHT // 2, LEFT - 6 - text_width(label))
    canvas[TOP:bottom, LEFT] = 0
    canvas[bottom, LEFT:right] = 0
    _text(canvas, title, 12, LEFT, scale=2)
    _text(canvas, xlabel, bottom + 26, (LEFT + right - text_width(xlabel)) // 2)
    _text(canvas, ylabel, TOP - 14, 4)
    for i, (name, sx, sy) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        points = [at(x, y) for x, y in sorted(zip(sx, sy))]
        for p, q in zip(points, points[1:]):
            _segment(canvas, p, q, colour)
        for p in points:
            _marker(canvas, p, colour, half=2 if len(points) > 1 else 4)
        top = TOP + 10 + 18 * i
        canvas[top : top + 8, right + 14 : right + 34] = colour
        _text(canvas, name, top, right + 40)
    if path is not None:
        _files.atomic_write_bytes(path, tf.io.encode_png(canvas).numpy())
    return canvas
